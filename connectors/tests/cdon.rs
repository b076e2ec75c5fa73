//! CDON: every shared conformance check through the real client against the fake, then the
//! CDON-specific behaviour (paging, deadlines, carriers, HTML, content types, credentials,
//! create-vs-update, per-market failures, accounts, the control API).

#![cfg(feature = "cdon")]

use std::collections::HashSet;
use std::sync::Arc;

use canonical::{
    ChannelOrderId, Country, Currency, Listing, MarketPrice, Money, OrderStatus, PriceUpdate,
    ReturnKind, Sku, StockUpdate, Tracking, VatRate,
};
use connectors::ErrorClass;
use connectors::cdon::config::VatRateMode;
use connectors::cdon::fake::{FakeSettings, SeedListing, SeedOrder};
use connectors::cdon::{CdonClient, CdonFake, Config, Credentials, DEMO_MERCHANT_ID, DEMO_TOKEN};
use connectors::conformance::{self, MarketplaceFake, MarketplaceSetup};
use connectors::fake::{Limits, RateRule, Running, serve};
use connectors::http::HttpSettings;
use connectors::marketplace::{BatchReport, ItemState, Marketplace, Transition};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

fn sku(s: &str) -> Sku {
    Sku::new(s).expect("test SKU")
}

fn http() -> HttpSettings {
    HttpSettings {
        timeout_ms: 1000,
        connect_timeout_ms: 500,
        inline_retries: 2,
        max_inline_wait_ms: 3000,
        backoff_base_ms: 50,
    }
}

fn price(market: Country, amount: i64, currency: Currency) -> MarketPrice {
    MarketPrice {
        market,
        gross: Money::new(Decimal::new(amount, 2), currency),
        vat: None,
    }
}

/// A listing CDON accepts: SE, DK and NO at 25 % VAT (a legal rate on each).
fn listing(sku: &Sku) -> Listing {
    Listing {
        sku: sku.clone(),
        parent_sku: None,
        title: "Closed-back studio headphones".into(),
        description: "Closed-back headphones with a detachable three-metre cable.".into(),
        brand: Some("Acme".into()),
        gtin: None,
        category: Some("3310".into()),
        images: vec!["https://images.example/headphones.jpg".into()],
        prices: vec![
            price(Country::SE, 19900, Currency::Sek),
            price(Country::DK, 14900, Currency::Dkk),
            price(Country::NO, 19900, Currency::Nok),
        ],
        vat: VatRate::percent(Decimal::new(25, 0)).expect("vat"),
        quantity: 12,
        active: true,
        handling_days: 1,
    }
}

/// A listing CDON accepts at once and refuses when processing it: an unknown category.
fn invalid_listing() -> Listing {
    let mut l = listing(&sku("CONF-BAD-CATEGORY"));
    l.category = Some("999999".into());
    l
}

struct Env {
    setup: MarketplaceSetup,
    fake: Arc<CdonFake>,
    client: Arc<CdonClient>,
    config: Config,
    running: Running,
}

impl Env {
    fn client_for(&self, merchant: &str, token: &str) -> CdonClient {
        let creds = Credentials::new(merchant, token).expect("credentials");
        CdonClient::new(&self.config, creds, None).expect("client")
    }

    fn requests(&self) -> u64 {
        self.fake.harness().stats().requests
    }
}

async fn env_with(change: impl FnOnce(&mut Config)) -> Env {
    let fake = CdonFake::new();
    let running = serve(fake.router(), "127.0.0.1:0")
        .await
        .expect("serve fake");
    let mut config = Config {
        base_url: format!("{}/api/", running.base_url()),
        http: http(),
        ..Config::default()
    };
    change(&mut config);
    let creds = Credentials::new(DEMO_MERCHANT_ID, DEMO_TOKEN).expect("credentials");
    let client = Arc::new(CdonClient::new(&config, creds, None).expect("client"));
    let wrong = Credentials::new(DEMO_MERCHANT_ID, "not-the-token").expect("credentials");
    let bad_auth = Arc::new(CdonClient::new(&config, wrong, None).expect("client"));
    let setup = MarketplaceSetup {
        client: client.clone(),
        bad_auth,
        fake: fake.clone(),
        listing,
        invalid: (invalid_listing(), "invalid_category"),
        invoices: false,
        callback: None,
    };
    Env {
        setup,
        fake,
        client,
        config,
        running,
    }
}

async fn env() -> Env {
    env_with(|_| {}).await
}

macro_rules! conformance {
    ($($check:ident),+ $(,)?) => {$(
        #[tokio::test]
        async fn $check() {
            let e = env().await;
            conformance::$check(&e.setup).await;
        }
    )+};
}

conformance!(
    upsert_reports_per_item,
    stock_and_price_updates,
    orders_page_from_a_cursor,
    accept_and_ship_are_idempotent,
    cancellations_are_listed,
    invoice_attach,
    callbacks_parse_or_refuse,
    bad_credentials_are_auth_errors,
    throttling_is_retried_after_the_hint,
    server_errors_are_retried,
    garbage_fails_visibly,
    ambiguous_ship_is_in_doubt,
    expired_sessions_renew,
);

fn state_of(r: &BatchReport, k: &Sku) -> ItemState {
    r.items
        .iter()
        .find(|i| &i.sku == k)
        .map(|i| i.state.clone())
        .unwrap_or_else(|| panic!("{k} missing from {r:?}"))
}

/// Settles the fake and polls the report's handle once.
async fn settle_and_poll(e: &Env, r: &BatchReport) -> BatchReport {
    e.fake.settle_all();
    let h = r.handle.as_ref().expect("a pending report has a handle");
    e.client.poll_batch(h).await.expect("poll")
}

// ---------------------------------------------------------------------------------------------
// Orders

#[tokio::test]
async fn orders_are_walked_state_by_state_across_many_pages() {
    let e = env_with(|c| c.orders_page_size = 3).await;
    let ids: Vec<ChannelOrderId> = (0..7)
        .map(|_| MarketplaceFake::seed_order(&*e.fake, &sku("PAGE-1"), 1))
        .collect();
    for id in &ids[..3] {
        assert_eq!(e.client.accept_order(id).await.unwrap(), Transition::Done);
    }
    // CREATED: 4 orders (pages of 3 and 1); ACCEPTED: 3 (a full page, then an empty one).
    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    let mut seen = Vec::new();
    loop {
        let page = e.client.list_orders(cursor.as_deref()).await.expect("page");
        pages.push((page.orders.len(), page.cursor.clone(), page.more));
        for o in &page.orders {
            seen.push(o.id.clone());
            assert!(matches!(o.status, OrderStatus::New | OrderStatus::Accepted));
        }
        cursor = Some(page.cursor);
        if !page.more {
            break;
        }
        assert!(pages.len() < 10, "the walk does not end: {pages:?}");
    }
    let shape: Vec<(usize, &str, bool)> =
        pages.iter().map(|(n, c, m)| (*n, c.as_str(), *m)).collect();
    assert_eq!(
        shape,
        vec![
            (3, "cdon:orders:CREATED:2", true),
            (1, "cdon:orders:ACCEPTED:1", true),
            (3, "cdon:orders:ACCEPTED:2", true),
            (0, "cdon:orders:CREATED:1", false),
        ]
    );
    assert_eq!(seen.len(), 7, "each order once per pass: {seen:?}");
    assert_eq!(
        seen.iter().collect::<HashSet<_>>(),
        ids.iter().collect::<HashSet<_>>()
    );
    // The next pass starts over and lists the open orders again (the flow dedupes by id).
    let again = e.client.list_orders(cursor.as_deref()).await.unwrap();
    assert_eq!(again.orders.len(), 3);
    let e2 = e.client.list_orders(Some("page-7")).await.unwrap_err();
    assert_eq!(e2.class(), ErrorClass::Permanent);
    assert!(e2.to_string().contains("unreadable cursor"), "{e2}");
}

#[tokio::test]
async fn a_passed_deadline_is_permanent_with_cdons_text() {
    let e = env().await;
    let late = e
        .fake
        .seed_order_with(&SeedOrder {
            sku: "LATE-1".into(),
            quantity: 1,
            deadline_in_hours: Some(-1),
            ..SeedOrder::default()
        })
        .unwrap();
    let late = ChannelOrderId::new(late).unwrap();
    let err = e.client.accept_order(&late).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert_eq!(err.status(), Some(403));
    assert!(
        err.to_string()
            .contains("Order has passed fulfillment due date"),
        "{err}"
    );
    let t = [Tracking {
        carrier: "PostNord".into(),
        number: "00370712345".into(),
    }];
    let err = e.client.ship_order(&late, &t).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert!(
        err.to_string()
            .contains("Order has passed fulfillment due date"),
        "{err}"
    );
    // The fake's clock moves deadlines too.
    let soon = e
        .fake
        .seed_order_with(&SeedOrder {
            sku: "LATE-1".into(),
            deadline_in_hours: Some(2),
            ..SeedOrder::default()
        })
        .unwrap();
    let soon = ChannelOrderId::new(soon).unwrap();
    let o = e.client.get_order(&soon).await.unwrap();
    assert!(o.ship_by.is_some());
    e.fake.set_clock_offset(chrono::Duration::hours(3));
    let err = e.client.accept_order(&soon).await.unwrap_err();
    assert!(
        err.to_string().contains("passed fulfillment due date"),
        "{err}"
    );
}

#[tokio::test]
async fn cancel_after_accept_is_refused_and_a_second_cancel_is_already_done() {
    let e = env().await;
    let a = MarketplaceFake::seed_order(&*e.fake, &sku("CANC-1"), 1);
    e.client.accept_order(&a).await.unwrap();
    let err = e.client.cancel_order(&a, "no stock").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(
        err.to_string().contains("already has accepted as state"),
        "{err}"
    );
    let b = MarketplaceFake::seed_order(&*e.fake, &sku("CANC-1"), 1);
    assert_eq!(
        e.client.cancel_order(&b, "no stock").await.unwrap(),
        Transition::Done
    );
    assert_eq!(
        e.client.cancel_order(&b, "no stock").await.unwrap(),
        Transition::AlreadyDone
    );
    let err = e.client.ship_order(&b, &[]).await.unwrap_err();
    assert!(err.to_string().contains("not_fulfilled as state"), "{err}");
    let missing = ChannelOrderId::new("404404").unwrap();
    let err = e.client.get_order(&missing).await.unwrap_err();
    assert_eq!(
        (err.class(), err.status()),
        (ErrorClass::Permanent, Some(404))
    );
}

#[tokio::test]
async fn unknown_carriers_are_refused_before_sending_and_known_ones_are_respelled() {
    let e = env().await;
    let id = MarketplaceFake::seed_order(&*e.fake, &sku("CARRIER-1"), 1);
    let before = e.requests();
    let fedex = [Tracking {
        carrier: "FedEx".into(),
        number: "7712".into(),
    }];
    let err = e.client.ship_order(&id, &fedex).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);
    let shown = err.to_string();
    assert!(
        shown.contains("FedEx") && shown.contains("PostNord") && shown.contains("Budbee"),
        "{shown}"
    );
    assert_eq!(e.requests(), before, "nothing was sent");
    assert_eq!(e.fake.order_status(&id), Some(OrderStatus::New));
    let blank = [Tracking {
        carrier: "DHL".into(),
        number: "  ".into(),
    }];
    assert!(
        e.client
            .ship_order(&id, &blank)
            .await
            .unwrap_err()
            .to_string()
            .contains("blank")
    );
    let loose = [Tracking {
        carrier: "post nord".into(),
        number: "00370712345".into(),
    }];
    assert_eq!(
        e.client.ship_order(&id, &loose).await.unwrap(),
        Transition::Done
    );
    assert_eq!(
        e.fake.order_tracking(&id),
        vec![Tracking {
            carrier: "PostNord".into(),
            number: "00370712345".into()
        }]
    );
    // An exact-matching configuration refuses the loose spelling.
    let exact =
        env_with(|c| c.carrier_names.matching = connectors::cdon::config::CarrierMatching::Exact)
            .await;
    let id = MarketplaceFake::seed_order(&*exact.fake, &sku("CARRIER-2"), 1);
    let err = exact.client.ship_order(&id, &loose).await.unwrap_err();
    assert!(err.to_string().contains("matched exactly"), "{err}");
}

#[tokio::test]
async fn returns_are_cancellations_with_stable_ids_including_auto_cancels() {
    let e = env().await;
    let by_cdon = MarketplaceFake::seed_order(&*e.fake, &sku("RET-1"), 3);
    e.fake.cancel_as_marketplace(&by_cdon);
    let forgotten = MarketplaceFake::seed_order(&*e.fake, &sku("RET-2"), 1);
    let page = e.client.list_returns(None).await.unwrap();
    assert!(!page.more);
    assert_eq!(page.cursor, "cdon:returns:NOT_FULFILLED:1");
    assert_eq!(page.events.len(), 1);
    let ev = &page.events[0];
    assert_eq!(ev.event_id, format!("cdon:not_fulfilled:{by_cdon}"));
    assert_eq!(ev.kind, ReturnKind::Cancellation);
    assert_eq!(ev.lines[0].quantity, 3);
    // CDON auto-cancels orders left unhandled for 7 days.
    e.fake.set_clock_offset(chrono::Duration::days(8));
    let page = e.client.list_returns(None).await.unwrap();
    let ids: Vec<_> = page.events.iter().map(|e| e.order_id.clone()).collect();
    assert!(
        ids.contains(&forgotten) && ids.contains(&by_cdon),
        "{ids:?}"
    );
    let err = e
        .client
        .list_returns(Some("cdon:orders:CREATED:1"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unreadable cursor"), "{err}");
}

#[tokio::test]
async fn b2b_orders_convert_and_merchants_are_isolated() {
    let e = env().await;
    e.fake.add_merchant("merchant-2", "token-2");
    let theirs = e
        .fake
        .seed_order_with(&SeedOrder {
            merchant_id: Some("merchant-2".into()),
            sku: "ISO-1".into(),
            quantity: 2,
            market: Some("NO".into()),
            b2b: true,
            customer_order_id: Some("CHECKOUT-9".into()),
            ..SeedOrder::default()
        })
        .unwrap();
    let ours = e.client.list_orders(None).await.unwrap();
    assert!(
        ours.orders.iter().all(|o| o.id.as_str() != theirs),
        "another merchant's order leaked"
    );
    let other = e.client_for("merchant-2", "token-2");
    let o = other
        .get_order(&ChannelOrderId::new(theirs).unwrap())
        .await
        .unwrap();
    assert_eq!(o.currency, Currency::Nok);
    assert_eq!(o.group_id.as_deref(), Some("CHECKOUT-9"));
    assert_eq!(o.customer.company.as_deref(), Some("Demo Företag AB"));
    assert_eq!(o.lines[0].quantity, 2);
    assert_eq!(o.lines[0].unit_price_gross, Decimal::new(19900, 2));
    assert_eq!(o.total_gross, Decimal::new(39800, 2));
    let wrong = e.client_for("merchant-2", DEMO_TOKEN);
    assert_eq!(
        wrong.list_orders(None).await.unwrap_err().class(),
        ErrorClass::Auth
    );
}

// ---------------------------------------------------------------------------------------------
// Listings, stock, prices

#[tokio::test]
async fn html_descriptions_are_refused_per_item_before_sending() {
    let e = env().await;
    let good = listing(&sku("HTML-OK"));
    let mut html = listing(&sku("HTML-BAD"));
    html.description = "<p>Closed-back headphones</p> with a cable.".into();
    let r = e
        .client
        .upsert_listings(&[good.clone(), html.clone()])
        .await
        .unwrap();
    match state_of(&r, &html.sku) {
        ItemState::Failed { message, retryable } => {
            assert!(
                message.contains("HTML") && message.contains("<p>"),
                "{message}"
            );
            assert!(!retryable);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(state_of(&r, &good.sku), ItemState::Pending);
    // The handle names the whole batch, so polling reports the refusal too.
    assert_eq!(
        r.handle.as_ref().unwrap().skus,
        vec![good.sku.clone(), html.sku.clone()]
    );
    let r = settle_and_poll(&e, &r).await;
    assert_eq!(state_of(&r, &good.sku), ItemState::Ok);
    assert!(matches!(
        state_of(&r, &html.sku),
        ItemState::Failed {
            retryable: false,
            ..
        }
    ));
    assert!(r.handle.is_none());
    assert_eq!(e.fake.listing(None, "HTML-BAD"), None);
}

#[tokio::test]
async fn the_fake_refuses_invalid_articles_with_messages_and_fields() {
    let e = env().await;
    let mut short = listing(&sku("SHORT-TITLE"));
    short.title = "Hat".into();
    let r = e.client.upsert_listings(&[short.clone()]).await.unwrap();
    match state_of(&r, &short.sku) {
        ItemState::Failed {
            message,
            retryable: false,
        } => {
            assert!(
                message.contains("Must be between 5 and 150 characters (field: title.value)"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(r.handle.is_none());
}

#[tokio::test]
async fn json_sent_as_text_html_is_parsed() {
    let e = env().await;
    e.fake.set_settings(FakeSettings {
        html_202: true,
        ..FakeSettings::default()
    });
    // The fake really says text/html.
    let raw = reqwest::Client::new()
        .post(format!("{}/api/v2/articles/bulk", e.running.base_url()))
        .basic_auth(DEMO_MERCHANT_ID, Some(DEMO_TOKEN))
        .json(&json!({"articles": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 202);
    let ct = raw.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/html"), "{ct}");
    let l = listing(&sku("HTML-CT-1"));
    let r = e
        .client
        .upsert_listings(std::slice::from_ref(&l))
        .await
        .unwrap();
    assert_eq!(state_of(&r, &l.sku), ItemState::Pending);
    let r = settle_and_poll(&e, &r).await;
    assert_eq!(state_of(&r, &l.sku), ItemState::Ok);
    let id = MarketplaceFake::seed_order(&*e.fake, &l.sku, 1);
    assert_eq!(e.client.accept_order(&id).await.unwrap(), Transition::Done);
}

#[tokio::test]
async fn existing_articles_are_updated_instead_of_created() {
    let e = env().await;
    let k = sku("EXISTS-1");
    // Created in the back office: no API status row, so only the create's refusal tells.
    e.fake
        .seed_listing_with(&SeedListing {
            sku: k.to_string(),
            quantity: 1,
            ..SeedListing::default()
        })
        .unwrap();
    let before = e.requests();
    let r = e.client.upsert_listings(&[listing(&k)]).await.unwrap();
    assert_eq!(state_of(&r, &k), ItemState::Pending, "{r:?}");
    assert_eq!(
        e.requests() - before,
        3,
        "status by SKU, create (refused), update"
    );
    let r = settle_and_poll(&e, &r).await;
    assert_eq!(state_of(&r, &k), ItemState::Ok);
    let shown = e.fake.listing(None, k.as_str()).unwrap();
    assert_eq!(shown["quantity"], 12);
    assert_eq!(shown["title"], "Closed-back studio headphones");
    assert_eq!(shown["category"], "3310");
    assert_eq!(shown["markets"], json!(["SE", "DK", "NO"]));
    // Now CDON's status rows know it: the next upsert updates straight away.
    let before = e.requests();
    let r = e.client.upsert_listings(&[listing(&k)]).await.unwrap();
    assert_eq!(state_of(&r, &k), ItemState::Pending);
    assert_eq!(e.requests() - before, 2, "status by SKU, update");
}

#[tokio::test]
async fn a_late_sku_already_exists_is_retryable_and_the_retry_updates() {
    let e = env().await;
    let k = sku("RACE-1");
    let first = e.client.upsert_listings(&[listing(&k)]).await.unwrap();
    let second = e.client.upsert_listings(&[listing(&k)]).await.unwrap();
    e.fake.settle_all();
    let p1 = e
        .client
        .poll_batch(first.handle.as_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(state_of(&p1, &k), ItemState::Ok);
    let p2 = e
        .client
        .poll_batch(second.handle.as_ref().unwrap())
        .await
        .unwrap();
    match state_of(&p2, &k) {
        ItemState::Failed { message, retryable } => {
            assert!(message.contains("sku_already_exists"), "{message}");
            assert!(retryable, "the retry will update");
        }
        other => panic!("{other:?}"),
    }
    let mut changed = listing(&k);
    changed.quantity = 4;
    let third = e.client.upsert_listings(&[changed]).await.unwrap();
    let third = settle_and_poll(&e, &third).await;
    assert_eq!(state_of(&third, &k), ItemState::Ok);
    assert_eq!(e.fake.listing_quantity(&k), Some(4));
}

#[tokio::test]
async fn per_market_failures_name_the_market_and_vat_can_be_left_to_cdon() {
    // 25 % is not a Finnish rate (25.5 %): FI fails, the other markets go live.
    let e = env().await;
    let k = sku("VAT-FI-1");
    let mut l = listing(&k);
    l.prices.push(price(Country::FI, 1990, Currency::Eur));
    let r = e.client.upsert_listings(&[l.clone()]).await.unwrap();
    let r = settle_and_poll(&e, &r).await;
    match state_of(&r, &k) {
        ItemState::Failed {
            message,
            retryable: false,
        } => {
            assert!(message.contains("on FI: invalid_vat_rate"), "{message}");
            assert!(!message.contains("on SE"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e.fake.listing(None, k.as_str()).unwrap()["markets"],
        json!(["SE", "DK", "NO"])
    );
    // Leaving vat_rate out lets CDON apply each market's own rate.
    let e = env_with(|c| c.vat_rate = VatRateMode::MarketDefault).await;
    let r = e.client.upsert_listings(&[l]).await.unwrap();
    let r = settle_and_poll(&e, &r).await;
    assert_eq!(state_of(&r, &k), ItemState::Ok);
}

#[tokio::test]
async fn status_rows_settle_after_polls_without_help() {
    let e = env().await;
    assert_eq!(e.fake.settings().settle_after_polls, 2);
    let k = sku("AUTO-1");
    let r = e.client.upsert_listings(&[listing(&k)]).await.unwrap();
    let h = r.handle.clone().unwrap();
    let p = e.client.poll_batch(&h).await.unwrap();
    assert_eq!(state_of(&p, &k), ItemState::Pending);
    assert!(p.handle.is_some());
    let p = e.client.poll_batch(&h).await.unwrap();
    assert_eq!(state_of(&p, &k), ItemState::Ok);
    assert!(p.handle.is_none());
    let settled = e
        .client
        .upsert_and_settle(
            &[listing(&sku("AUTO-2"))],
            std::time::Duration::from_millis(20),
            std::time::Duration::from_secs(2),
        )
        .await
        .unwrap();
    assert!(settled.is_settled(), "{settled:?}");
}

#[tokio::test]
async fn stock_goes_in_chunks_and_unknown_skus_fail_alone() {
    let e = env_with(|c| c.quantity_updates_per_request = 2).await;
    for i in 0..4 {
        e.fake.seed_listing(&sku(&format!("CHUNK-{i}")), 1);
    }
    let mut updates: Vec<StockUpdate> = (0..4)
        .map(|i| StockUpdate {
            sku: sku(&format!("CHUNK-{i}")),
            quantity: 10 + i,
        })
        .collect();
    updates.push(StockUpdate {
        sku: sku("CHUNK-NOPE"),
        quantity: 1,
    });
    updates.push(StockUpdate {
        sku: sku("CHUNK-0"),
        quantity: 99,
    });
    updates.push(StockUpdate {
        sku: sku("CHUNK-BIG"),
        quantity: 500_001,
    });
    let before = e.requests();
    let r = e.client.update_stock(&updates).await.unwrap();
    assert_eq!(
        e.requests() - before,
        3,
        "5 sendable updates in chunks of 2"
    );
    let failed: Vec<_> = r
        .failed()
        .map(|(k, m, _)| (k.to_string(), m.to_owned()))
        .collect();
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(
        failed[0].1.contains("Article not found (field: sku)"),
        "{failed:?}"
    );
    assert!(failed[1].1.contains("more than once"), "{failed:?}");
    assert!(failed[2].1.contains("500000"), "{failed:?}");
    let p = settle_and_poll(&e, &r).await;
    assert_eq!(p.items.len(), 6, "one result per SKU: {p:?}");
    assert_eq!(
        p.failed().count(),
        2,
        "the refusals are reported again: {p:?}"
    );
    assert_eq!(
        p.items.iter().filter(|i| i.state == ItemState::Ok).count(),
        4,
        "{p:?}"
    );
    assert_eq!(p.handle, None);
    for i in 0..4 {
        assert_eq!(
            e.fake.listing_quantity(&sku(&format!("CHUNK-{i}"))),
            Some(10 + i)
        );
    }
}

#[tokio::test]
async fn prices_carry_a_fractional_vat_and_refuse_wrong_currencies() {
    let e = env().await;
    let k = sku("PRICE-1");
    e.fake.seed_listing(&k, 3);
    let vat = VatRate::percent(Decimal::new(12, 0)).unwrap();
    let r = e
        .client
        .update_prices(&[
            PriceUpdate {
                sku: k.clone(),
                prices: vec![price(Country::SE, 24950, Currency::Sek)],
                vat,
            },
            PriceUpdate {
                sku: sku("PRICE-EUR"),
                prices: vec![price(Country::SE, 100, Currency::Eur)],
                vat,
            },
        ])
        .await
        .unwrap();
    let (bad, msg, _) = r.failed().next().expect("the EUR price fails");
    assert_eq!(bad.as_str(), "PRICE-EUR");
    assert!(msg.contains("EUR") && msg.contains("SEK"), "{msg}");
    settle_and_poll(&e, &r).await;
    let shown = e.fake.listing(None, k.as_str()).unwrap();
    assert_eq!(shown["prices"]["SE"]["amount_including_vat"], "249.5");
    assert_eq!(shown["prices"]["SE"]["vat_rate"], "0.12");
}

#[tokio::test]
async fn the_fakes_own_rate_limit_answers_429_and_the_client_waits() {
    let e = env().await;
    e.fake.harness().set_limits(Limits {
        rate: Some(RateRule {
            count: 1,
            per_ms: 1000,
        }),
        concurrency: None,
    });
    e.client.list_orders(None).await.unwrap();
    let start = std::time::Instant::now();
    e.client.list_orders(None).await.unwrap();
    assert!(
        start.elapsed() >= std::time::Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
    assert!(e.fake.harness().stats().over_limit >= 1);
}

// ---------------------------------------------------------------------------------------------
// Credentials, configuration, the control API

#[tokio::test]
async fn credentials_never_appear_in_debug_or_errors() {
    let e = env().await;
    let secret = "tok-Very-Secret-4242";
    e.fake.add_merchant("m-secret", secret);
    let mut map = Map::new();
    map.insert("merchant_id".into(), json!("m-secret"));
    map.insert("token".into(), json!(secret));
    let creds = Credentials::from_map(&map).unwrap();
    assert!(!format!("{creds:?}").contains(secret));
    let c = CdonClient::from_json(serde_json::to_value(&e.config).unwrap(), &map, None).unwrap();
    assert!(!format!("{c:?}").contains(secret), "{c:?}");
    assert!(c.list_orders(None).await.is_ok(), "the right token works");
    let wrong = "tok-Wrong-Secret-9999";
    map.insert("token".into(), json!(wrong));
    let bad = CdonClient::from_json(serde_json::to_value(&e.config).unwrap(), &map, None).unwrap();
    let err = bad.list_orders(None).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth);
    for shown in [err.to_string(), format!("{err:?}"), format!("{bad:?}")] {
        assert!(!shown.contains(wrong) && !shown.contains(secret), "{shown}");
    }
    map.insert("token".into(), json!(""));
    let err = CdonClient::from_json(Value::Null, &map, None).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Config);
    assert!(err.to_string().contains("`token` is blank"), "{err}");
    map.remove("merchant_id");
    let err = CdonClient::from_json(json!({}), &map, None).unwrap_err();
    assert!(
        err.to_string().contains("`merchant_id` is missing"),
        "{err}"
    );
}

#[tokio::test]
async fn sandbox_orders_and_the_control_api() {
    let e = env().await;
    let base = e.running.base_url();
    let http = reqwest::Client::new();
    let seeded: Value = http
        .post(format!("{base}/_control/cdon/listings"))
        .json(&json!({"sku": "CTL-1", "quantity": 10, "markets": ["DK"], "prices": {"DK": "99.5"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let article_id = seeded["id"].as_str().unwrap().to_owned();
    let o6 = http
        .post(format!("{base}/api/v1/orders/"))
        .json(&json!({"article_id": article_id, "quantity": 3}));
    assert_eq!(o6.send().await.unwrap().status().as_u16(), 401, "no auth");
    let created: Value = http
        .post(format!("{base}/api/v1/orders/"))
        .basic_auth(DEMO_MERCHANT_ID, Some(DEMO_TOKEN))
        .json(&json!({"article_id": article_id, "quantity": 3}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["description"], "Order was created.");
    let id = created["id"].as_str().unwrap().to_owned();
    let listing: Value = http
        .get(format!("{base}/_control/cdon/listings/CTL-1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listing["quantity"], 7, "an order takes stock");
    let o = e
        .client
        .get_order(&ChannelOrderId::new(id.clone()).unwrap())
        .await
        .unwrap();
    assert_eq!((o.market, o.currency), (Country::DK, Currency::Dkk));
    assert_eq!(o.total_gross, Decimal::new(29850, 2));
    let seeded: Value = http
        .post(format!("{base}/_control/cdon/orders"))
        .json(&json!({"sku": "CTL-1", "quantity": 1, "deadline": "2020-01-01 00:00:00"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let late = ChannelOrderId::new(seeded["id"].as_str().unwrap()).unwrap();
    assert!(
        e.client
            .accept_order(&late)
            .await
            .unwrap_err()
            .to_string()
            .contains("due date")
    );
    let status = http
        .post(format!("{base}/_control/cdon/orders/{id}/cancel"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 204);
    let order: Value = http
        .get(format!("{base}/_control/cdon/orders/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(order["state"], "NOT_FULFILLED");
    let bad = http
        .put(format!("{base}/_control/cdon/settings"))
        .json(&json!({"settle_after_polls": 0, "surprise": true}))
        .send()
        .await
        .unwrap();
    assert!(bad.status().is_client_error());
    let ok = http
        .put(format!("{base}/_control/cdon/settings"))
        .json(&json!({"settle_after_polls": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 204);
    assert_eq!(e.fake.settings().settle_after_polls, 0);
    assert_eq!(
        http.post(format!("{base}/_control/cdon/seed_demo"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    assert!(e.fake.listing(None, "DEMO-MUG-1").is_some());
    let unknown = http
        .get(format!("{base}/api/v1/orders/?state=SHIPPED"))
        .basic_auth(DEMO_MERCHANT_ID, Some(DEMO_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 400);
    let cats = http
        .get(format!("{base}/api/v1/categories/SE/sv-SE/"))
        .basic_auth(DEMO_MERCHANT_ID, Some(DEMO_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(cats.status().as_u16(), 200);
}

#[test]
fn capabilities_declare_cdon_and_say_why_not() {
    let c = connectors::cdon::capabilities();
    assert_eq!(c.system, "cdon");
    assert!(!c.supports(connectors::Flow::InvoiceAttach));
    assert!(c.supports(connectors::Flow::ReturnsReconcile));
    let shown = serde_json::to_string(&c).unwrap();
    assert!(shown.contains("no invoice upload"), "{shown}");
}
