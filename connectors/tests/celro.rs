//! The Cel.ro connector against its fake: every shared conformance check, then Cel.ro's own
//! behaviour (envelope errors, token renewal, the 10-connection cap, paging, multipart
//! invoices, callbacks, storno and return requests, secrets).
#![cfg(feature = "celro")]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use canonical::{
    ChannelOrderId, Country, Currency, Listing, MarketPrice, Money, OrderStatus, PriceUpdate,
    ReturnKind, Sku, StockUpdate, Tracking, VatRate,
};
use connectors::celro::fake::{
    DEMO_PICKUP_ADDRESS_ID, ExpiredAnswer, OTHER_PASSWORD, OTHER_USERNAME,
};
use connectors::celro::{
    CelroClient, CelroFake, Config, Credentials, DEMO_PASSWORD, DEMO_USERNAME,
};
use connectors::conformance::{self, MarketplaceFake, MarketplaceSetup};
use connectors::fake::{Running, serve};
use connectors::gate::{CallGate, GatePermit};
use connectors::http::HttpSettings;
use connectors::marketplace::{InvoiceFile, ItemState, Marketplace, Transition, WakeKind};
use connectors::{ConnectorError, ErrorClass};
use rust_decimal::Decimal;
use tokio::sync::Semaphore;

struct Env {
    setup: MarketplaceSetup,
    fake: Arc<CelroFake>,
    base: String,
    _running: Running,
}

fn settings() -> HttpSettings {
    HttpSettings {
        timeout_ms: 1000,
        connect_timeout_ms: 500,
        inline_retries: 2,
        max_inline_wait_ms: 3000,
        backoff_base_ms: 50,
    }
}

fn config(base: &str) -> Config {
    Config {
        base_url: base.to_owned(),
        http: settings(),
        pickup_address_id: Some(DEMO_PICKUP_ADDRESS_ID),
        ..Config::default()
    }
}

fn client_with(
    cfg: &Config,
    user: &str,
    pass: &str,
    gate: Option<Arc<dyn CallGate>>,
) -> Arc<CelroClient> {
    Arc::new(CelroClient::new(cfg, Credentials::new(user, pass), gate).expect("client"))
}

fn sku(s: &str) -> Sku {
    Sku::new(s).unwrap()
}

fn listing(sku: &Sku) -> Listing {
    Listing {
        sku: sku.clone(),
        parent_sku: None,
        title: format!("Produs de test {sku}"),
        description: "Cana ceramica alba, 300 ml".into(),
        brand: Some("MEGZO".into()),
        gtin: None,
        category: Some("1234".into()),
        images: vec![format!("https://cdn.megzo.example/{sku}.jpg")],
        prices: vec![MarketPrice {
            market: Country::RO,
            gross: Money::new(Decimal::new(9990, 2), Currency::Ron),
            vat: None,
        }],
        vat: VatRate::percent(Decimal::from(21)).unwrap(),
        quantity: 7,
        active: true,
        handling_days: 2,
    }
}

fn invalid_listing() -> Listing {
    let mut l = listing(&sku("CONF-TOO-DEAR"));
    l.prices[0].gross.amount = Decimal::from(6000);
    l
}

async fn env() -> Env {
    env_with(|_| {}).await
}

async fn env_with(tweak: impl Fn(&mut Config)) -> Env {
    let fake = CelroFake::new();
    let running = serve(fake.router(), "127.0.0.1:0")
        .await
        .expect("serve fake");
    let base = format!("{}/", running.base_url());
    let mut cfg = config(&base);
    tweak(&mut cfg);
    let setup = MarketplaceSetup {
        client: client_with(&cfg, DEMO_USERNAME, DEMO_PASSWORD, None),
        bad_auth: client_with(&cfg, DEMO_USERNAME, "wrong-password", None),
        fake: fake.clone(),
        listing,
        invalid: (invalid_listing(), "5000"),
        invoices: true,
        callback: Some((
            "type=1&value=%7B%22list%22%3A%5B700001%5D%7D".into(),
            Vec::new(),
        )),
    };
    Env {
        setup,
        fake,
        base,
        _running: running,
    }
}

macro_rules! conformance_checks {
    ($($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let env = env().await;
                conformance::$check(&env.setup).await;
            }
        )*
    };
}

conformance_checks!(
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
    marketplace_suite,
);

// ---------------------------------------------------------------------------------------------
// Envelope and session

#[tokio::test]
async fn business_errors_at_http_200_are_permanent_with_celros_message() {
    let env = env().await;
    let c = &env.setup.client;
    let e = c
        .get_order(&ChannelOrderId::new("999999").unwrap())
        .await
        .expect_err("unknown order");
    assert_eq!(e.class(), ErrorClass::Permanent, "{e}");
    assert_eq!(e.status(), Some(200), "{e}");
    assert!(e.to_string().contains("Comanda 999999 nu exista"), "{e}");

    let id = env.fake.seed_order(&sku("BIZ-1"), 1);
    c.accept_order(&id).await.unwrap();
    c.ship_order(
        &id,
        &[Tracking {
            carrier: "DHL".into(),
            number: "AWB-BIZ-1".into(),
        }],
    )
    .await
    .unwrap();
    let e = c
        .cancel_order(&id, "fara stoc")
        .await
        .expect_err("cannot cancel a shipped order");
    assert_eq!(e.class(), ErrorClass::Permanent, "{e}");
    assert!(e.to_string().contains("nu mai poate fi anulata"), "{e}");
}

async fn expiry_renews_once(how: ExpiredAnswer) {
    let env = env().await;
    let c = &env.setup.client;
    c.list_orders(None).await.expect("first call");
    assert_eq!(env.fake.logins(DEMO_USERNAME), 1);
    env.fake.expire_tokens(how);
    let id = env.fake.seed_order(&sku("EXP-1"), 1);
    // A non-idempotent call is repeated after renewal: the refusal proves it did nothing.
    assert_eq!(
        c.accept_order(&id).await.expect("accept after expiry"),
        Transition::Done
    );
    assert_eq!(env.fake.logins(DEMO_USERNAME), 2, "exactly one new login");
    env.fake.expire_tokens(how);
    c.list_orders(None).await.expect("read after expiry");
    assert_eq!(env.fake.logins(DEMO_USERNAME), 3);
}

#[tokio::test]
async fn token_expiry_as_an_envelope_renews_once() {
    expiry_renews_once(ExpiredAnswer::Envelope).await;
}

#[tokio::test]
async fn token_expiry_as_http_400_renews_once() {
    expiry_renews_once(ExpiredAnswer::Http400).await;
}

#[tokio::test]
async fn tokens_refused_at_once_stop_after_max_relogin() {
    let env = env_with(|c| c.max_relogin = 2).await;
    env.fake.set_token_ttl(Duration::ZERO);
    let e = env
        .setup
        .client
        .list_orders(None)
        .await
        .expect_err("every token is dead");
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");
    assert!(
        e.to_string().contains("refusing fresh session tokens"),
        "{e}"
    );
    assert_eq!(
        env.fake.logins(DEMO_USERNAME),
        3,
        "one login and two renewals"
    );

    let env = env_with(|c| c.max_relogin = 1).await;
    env.fake.expire_tokens(ExpiredAnswer::Http400);
    env.fake.set_token_ttl(Duration::ZERO);
    let e = env
        .setup
        .client
        .list_orders(None)
        .await
        .expect_err("400 every time");
    assert_eq!(e.status(), Some(400), "{e}");
    assert!(e.to_string().contains("Token invalid"), "{e}");
    assert_eq!(env.fake.logins(DEMO_USERNAME), 2);
}

#[tokio::test]
async fn bad_credentials_are_auth_after_a_single_login() {
    let env = env().await;
    let before = env.fake.harness().stats().requests;
    let e = env
        .setup
        .bad_auth
        .get_order(&ChannelOrderId::new("1").unwrap())
        .await
        .expect_err("bad password");
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");
    assert!(
        e.to_string().contains("Utilizator sau parola incorecta"),
        "{e}"
    );
    assert!(!e.to_string().contains("wrong-password"), "{e}");
    assert_eq!(
        env.fake.harness().stats().requests - before,
        1,
        "one login attempt"
    );
    let unknown = client_with(&config(&env.base), "nobody@x.ro", "whatever-pass", None);
    assert_eq!(
        unknown.list_orders(None).await.unwrap_err().class(),
        ErrorClass::Auth
    );
}

#[tokio::test]
async fn secrets_never_show_in_debug_or_errors() {
    let env = env().await;
    let c = &env.setup.client;
    c.list_orders(None).await.unwrap();
    let tokens = env.fake.session_tokens(DEMO_USERNAME);
    assert_eq!(tokens.len(), 1);
    let shown = format!("{c:?}");
    assert!(
        !shown.contains(DEMO_PASSWORD) && !shown.contains(&tokens[0]),
        "{shown}"
    );
    assert!(!shown.contains(&tokens[0][..40]), "{shown}");
    env.fake.expire_tokens(ExpiredAnswer::Envelope);
    env.fake.set_token_ttl(Duration::ZERO);
    let e = c.list_orders(None).await.unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(!text.contains(DEMO_PASSWORD), "{text}");
    for t in env.fake.session_tokens(DEMO_USERNAME) {
        assert!(!text.contains(&t[..40]), "{text}");
    }
    let creds = Credentials::new(DEMO_USERNAME, DEMO_PASSWORD);
    assert!(!format!("{creds:?}").contains(DEMO_PASSWORD));
}

// ---------------------------------------------------------------------------------------------
// The 10-connection cap

#[derive(Debug)]
struct SemaphoreGate(Arc<Semaphore>);

#[async_trait]
impl CallGate for SemaphoreGate {
    async fn acquire(&self) -> Result<GatePermit, ConnectorError> {
        let p = self
            .0
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ConnectorError::retryable("celro", "gate", e.to_string()))?;
        Ok(GatePermit::holding(p))
    }

    async fn penalize(&self, _retry_after: Duration) {}
}

async fn burst(c: &Arc<CelroClient>, n: usize) -> Vec<Result<(), ConnectorError>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.list_orders(None).await.map(|_| ()) })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn a_gate_of_ten_keeps_thirty_calls_under_the_connection_cap() {
    let env = env().await;
    let h = env.fake.harness();
    let cfg = config(&env.base);
    let gate: Arc<dyn CallGate> = Arc::new(SemaphoreGate(Arc::new(Semaphore::new(10))));
    let gated = client_with(&cfg, DEMO_USERNAME, DEMO_PASSWORD, Some(gate));
    gated
        .list_orders(None)
        .await
        .expect("warm up: login and status list");
    h.update_faults(|f| f.latency_ms = 150);
    h.reset_stats();
    let results = burst(&gated, 30).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let s = h.stats();
    assert_eq!(s.over_limit, 0, "{s:?}");
    assert!(s.peak_concurrency <= 10 && s.peak_concurrency >= 5, "{s:?}");

    let open = client_with(&cfg, DEMO_USERNAME, DEMO_PASSWORD, None);
    open.list_orders(None).await.expect("warm up");
    h.reset_stats();
    let results = burst(&open, 30).await;
    let s = h.stats();
    h.set_faults(Default::default());
    assert!(
        s.over_limit > 0,
        "without a gate the cap is exceeded: {s:?}"
    );
    for e in results.into_iter().filter_map(Result::err) {
        assert_eq!(e.class(), ErrorClass::Retryable, "{e}");
        assert!(e.to_string().contains("conexiuni simultane"), "{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Orders, paging, returns

#[tokio::test]
async fn orders_page_with_moreavailable_and_survive_changes_while_paging() {
    let env = env_with(|c| c.orders_page_size = 2).await;
    let c = &env.setup.client;
    let ids: Vec<_> = (0..5)
        .map(|i| env.fake.seed_order(&sku(&format!("PAGE-{i}")), 1))
        .collect();
    let p1 = c.list_orders(None).await.unwrap();
    assert_eq!((p1.orders.len(), p1.more), (2, true));
    // An order changes between pages: offsets must not shift.
    env.fake.cancel_as_marketplace(&ids[0]);
    let p2 = c.list_orders(Some(&p1.cursor)).await.unwrap();
    assert_eq!((p2.orders.len(), p2.more), (2, true));
    let p3 = c.list_orders(Some(&p2.cursor)).await.unwrap();
    assert_eq!((p3.orders.len(), p3.more), (1, false));
    let mut seen: Vec<_> = [p1, p2, p3.clone()]
        .iter()
        .flat_map(|p| p.orders.iter().map(|o| o.id.clone()))
        .collect();
    seen.sort();
    seen.dedup();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(seen, want);
    // The next walk overlaps the last one (clock skew): recent orders come again.
    let again = c.list_orders(Some(&p3.cursor)).await.unwrap();
    assert!(again.orders.iter().any(|o| o.id == ids[0]), "{again:?}");
    assert_eq!(
        again.orders.iter().find(|o| o.id == ids[0]).unwrap().status,
        OrderStatus::Cancelled
    );
    let e = c.list_orders(Some("not-a-cursor")).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Permanent);
}

#[tokio::test]
async fn orders_carry_lines_shipping_vat_and_tracking() {
    let env = env().await;
    let c = &env.setup.client;
    let id = env.fake.seed_order(&sku("LINES-1"), 3);
    let o = c.get_order(&id).await.unwrap();
    assert_eq!(o.currency, Currency::Ron);
    assert_eq!(o.lines.len(), 1, "the shipping pseudo-line is not a line");
    assert_eq!(o.lines[0].quantity, 3);
    assert_eq!(o.lines[0].unit_price_gross, Decimal::ONE_HUNDRED);
    assert_eq!(o.lines[0].vat.as_percent(), Decimal::from(21));
    assert_eq!(o.shipping_fee_gross, Decimal::new(1599, 2));
    assert_eq!(o.total_gross, Decimal::new(31599, 2));
    assert_eq!(o.ship_to.city, "Cluj-Napoca");
    assert_eq!(o.raw_status, "1");
    c.accept_order(&id).await.unwrap();
    let t = [
        Tracking {
            carrier: "Sameday".into(),
            number: "SD123".into(),
        },
        Tracking {
            carrier: "Sameday".into(),
            number: "SD124".into(),
        },
    ];
    assert_eq!(c.ship_order(&id, &t).await.unwrap(), Transition::Done);
    let o = c.get_order(&id).await.unwrap();
    assert_eq!(o.tracking, t.to_vec());
    assert_eq!(o.status, OrderStatus::Shipped);
    let other = client_with(&config(&env.base), OTHER_USERNAME, OTHER_PASSWORD, None);
    let e = other
        .get_order(&id)
        .await
        .expect_err("another merchant's order");
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert!(other.list_orders(None).await.unwrap().orders.is_empty());
}

#[tokio::test]
async fn shipping_needs_a_pickup_address_and_a_tracking_number() {
    let env = env_with(|c| c.pickup_address_id = None).await;
    let id = env.fake.seed_order(&sku("PICK-1"), 1);
    let t = [Tracking {
        carrier: "DHL".into(),
        number: "1".into(),
    }];
    assert_eq!(
        env.setup
            .client
            .ship_order(&id, &t)
            .await
            .unwrap_err()
            .class(),
        ErrorClass::Config
    );
    let env = env_with(|c| c.pickup_address_id = Some(4242)).await;
    let id = env.fake.seed_order(&sku("PICK-2"), 1);
    let e = env.setup.client.ship_order(&id, &t).await.unwrap_err();
    assert!(e.to_string().contains("Adresa de ridicare 4242"), "{e}");
    assert!(env.setup.client.ship_order(&id, &[]).await.is_err());
}

#[tokio::test]
async fn storno_and_return_requests_are_listed_once_and_minus_orders_are_not_sales() {
    let env = env().await;
    let c = &env.setup.client;
    let id = env.fake.seed_order(&sku("RET-1"), 2);
    c.accept_order(&id).await.unwrap();
    c.ship_order(
        &id,
        &[Tracking {
            carrier: "DHL".into(),
            number: "R1".into(),
        }],
    )
    .await
    .unwrap();
    let n: u64 = id.as_str().parse().unwrap();
    let minus = env
        .fake
        .storno_for(DEMO_USERNAME, n, "Client nemultumit")
        .unwrap();
    let rr = env
        .fake
        .add_return_request(DEMO_USERNAME, n, "RET-1", 1, "Produs defect")
        .unwrap();
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let page = c.list_returns(cursor.as_deref()).await.unwrap();
        events.extend(page.events);
        cursor = Some(page.cursor);
        if !page.more {
            break;
        }
    }
    let reversals: Vec<_> = events
        .iter()
        .filter(|e| e.kind == ReturnKind::Reversal)
        .collect();
    assert_eq!(reversals.len(), 1, "{events:?}");
    assert_eq!(reversals[0].order_id, id);
    assert_eq!(reversals[0].event_id, format!("celro:reversal:{id}"));
    let requests: Vec<_> = events
        .iter()
        .filter(|e| e.kind == ReturnKind::ReturnRequest)
        .collect();
    assert_eq!(requests.len(), 1, "{events:?}");
    assert_eq!(requests[0].event_id, format!("celro:return-request:{rr}"));
    assert_eq!(requests[0].lines[0].sku, sku("RET-1"));
    let orders = c.list_orders(None).await.unwrap().orders;
    assert!(
        !orders.iter().any(|o| o.id.as_str() == minus.to_string()),
        "minus order listed as a sale"
    );
}

// ---------------------------------------------------------------------------------------------
// Catalogue

#[tokio::test]
async fn price_jumps_above_ten_percent_fail_that_sku_unless_overridden() {
    let env = env().await;
    let k = sku("JUMP-1");
    env.fake.seed_listing(&k, 3);
    let update = |amount: i64| PriceUpdate {
        sku: k.clone(),
        prices: vec![MarketPrice {
            market: Country::RO,
            gross: Money::new(Decimal::from(amount), Currency::Ron),
            vat: None,
        }],
        vat: VatRate::percent(Decimal::from(21)).unwrap(),
    };
    let r = env
        .setup
        .client
        .update_prices(&[update(150)])
        .await
        .unwrap();
    match &r.items[0].state {
        ItemState::Failed { message, retryable } => {
            assert!(message.contains("10%"), "{message}");
            assert!(!retryable);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(env.fake.listing_price(&k), Some(Decimal::ONE_HUNDRED));
    let mut cfg = config(&env.base);
    cfg.override_price_jumps = true;
    let c = client_with(&cfg, DEMO_USERNAME, DEMO_PASSWORD, None);
    let r = c.update_prices(&[update(150)]).await.unwrap();
    assert_eq!(r.items[0].state, ItemState::Ok);
    assert_eq!(env.fake.listing_price(&k), Some(Decimal::from(150)));
    let mut eur = update(10);
    eur.prices[0].gross.currency = Currency::Eur;
    let r = c.update_prices(&[eur]).await.unwrap();
    assert!(
        matches!(&r.items[0].state, ItemState::Failed { message, retryable: false } if message.contains("RON"))
    );
}

#[tokio::test]
async fn approved_products_use_the_update_form_and_new_ones_wait_for_moderation() {
    let env = env().await;
    let c = &env.setup.client;
    let known = sku("KNOWN-1");
    env.fake.seed_listing(&known, 1);
    let fresh = sku("FRESH-1");
    let mut no_brand = listing(&sku("NOBRAND-1"));
    no_brand.brand = None;
    let r = c
        .upsert_listings(&[listing(&known), listing(&fresh), no_brand])
        .await
        .unwrap();
    let state = |k: &str| {
        r.items
            .iter()
            .find(|i| i.sku.as_str() == k)
            .unwrap()
            .state
            .clone()
    };
    assert_eq!(state("KNOWN-1"), ItemState::Ok);
    assert_eq!(state("FRESH-1"), ItemState::Pending);
    assert!(
        matches!(state("NOBRAND-1"), ItemState::Failed { message, retryable: false } if message.contains("manufacturers_name"))
    );
    assert_eq!(r.handle.as_ref().unwrap().skus, vec![fresh.clone()]);
    assert!(r.handle.as_ref().unwrap().batch_ids.is_empty());
    assert_eq!(env.fake.listing_quantity(&known), Some(7));
    assert_eq!(env.fake.listing_price(&known), Some(Decimal::new(9990, 2)));
    let settled = c
        .upsert_and_settle(
            &[listing(&fresh)],
            Duration::from_millis(50),
            Duration::from_millis(10),
        )
        .await
        .unwrap();
    assert_eq!(settled.items[0].state, ItemState::Pending);
    env.fake.settle();
    let polled = c.poll_batch(r.handle.as_ref().unwrap()).await.unwrap();
    assert_eq!(polled.items[0].state, ItemState::Ok);
    assert!(polled.handle.is_none());
}

#[tokio::test]
async fn stock_updates_report_per_sku() {
    let env = env().await;
    let a = sku("STK-A");
    env.fake.seed_listing(&a, 1);
    let r = env
        .setup
        .client
        .update_stock(&[
            StockUpdate {
                sku: a.clone(),
                quantity: 0,
            },
            StockUpdate {
                sku: sku("STK-NOPE"),
                quantity: 2,
            },
        ])
        .await
        .unwrap();
    assert_eq!(r.items[0].state, ItemState::Ok);
    assert!(
        matches!(&r.items[1].state, ItemState::Failed { message, retryable: false } if message.contains("nu exista"))
    );
    assert_eq!(env.fake.listing_quantity(&a), Some(0));
}

// ---------------------------------------------------------------------------------------------
// Invoices

#[tokio::test]
async fn invoice_bytes_are_stored_exactly_and_not_sent_twice() {
    let env = env().await;
    let c = &env.setup.client;
    let id = env.fake.seed_order(&sku("INV-1"), 1);
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend(0u8..=255);
    pdf.extend(b"\r\n--boundary-lookalike--\r\n%%EOF");
    let inv = InvoiceFile {
        series: "MGZ".into(),
        number: "2026-0042".into(),
        pdf: pdf.clone(),
    };
    assert_eq!(c.attach_invoice(&id, &inv).await.unwrap(), Transition::Done);
    let n: u64 = id.as_str().parse().unwrap();
    assert_eq!(
        env.fake.invoice_files(DEMO_USERNAME, n),
        vec![("MGZ".into(), "2026-0042".into(), pdf)]
    );
    assert_eq!(
        c.attach_invoice(&id, &inv).await.unwrap(),
        Transition::AlreadyDone
    );
    assert_eq!(env.fake.invoice_count(&id), 1);
    let blank = InvoiceFile {
        series: " ".into(),
        ..inv.clone()
    };
    assert_eq!(
        c.attach_invoice(&id, &blank).await.unwrap_err().class(),
        ErrorClass::Permanent
    );
}

#[tokio::test]
async fn the_fake_refuses_an_invoice_without_series_or_number() {
    let env = env().await;
    let id = env.fake.seed_order(&sku("INV-RAW"), 1);
    let http = reqwest::Client::new();
    let login: serde_json::Value = http
        .post(format!("{}login/actionLogin/", env.base))
        .form(&[("username", DEMO_USERNAME), ("password", DEMO_PASSWORD)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["message"].as_str().unwrap().to_owned();
    let form = reqwest::multipart::Form::new()
        .text("oid", id.to_string())
        .text("number", "1")
        .text("providerId", "0")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"%PDF".to_vec()).file_name("file"),
        );
    let v: serde_json::Value = http
        .post(format!("{}orders/addOrderInvoice/", env.base))
        .header("AUTH", format!("Bearer {token}"))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["error"], serde_json::json!(1), "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("Seria si numarul"),
        "{v}"
    );
    assert_eq!(env.fake.invoice_count(&id), 0);
}

// ---------------------------------------------------------------------------------------------
// Callbacks

#[tokio::test]
async fn callbacks_wake_polls_or_name_what_is_wrong() {
    let env = env().await;
    let c = &env.setup.client;
    let w = c
        .parse_callback("type=1&value=%7B%22list%22%3A%5B700001%2C700002%5D%7D", b"")
        .unwrap();
    assert_eq!(w.kind, WakeKind::NewOrders);
    assert_eq!(w.orders.len(), 2);
    let w = c
        .parse_callback("type=11&value=%7B%22order_id%22%3A700003%7D", b"")
        .unwrap();
    assert_eq!(
        (w.kind, w.orders[0].as_str()),
        (WakeKind::Cancelled, "700003")
    );
    let w = c
        .parse_callback("type=24&value=%7B%22cmd%22%3A700004%7D", b"")
        .unwrap();
    assert_eq!(
        (w.kind, w.orders[0].as_str()),
        (WakeKind::Cancelled, "700004")
    );
    let w = c.parse_callback("type=30&value=%7B%7D", b"").unwrap();
    assert_eq!(w.kind, WakeKind::Other);
    for (q, fragment) in [
        ("value=%7B%7D", "no type"),
        ("type=1&value=%7Bnot-json", "not JSON"),
        ("type=1&value=%7B%22list%22%3A%5B%5D%7D", "no order ids"),
        (
            "type=11&value=%7B%22other%22%3A1%7D",
            "value.order_id or value.cmd",
        ),
    ] {
        let e = c.parse_callback(q, b"").unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent, "{e}");
        assert!(e.to_string().contains(fragment), "{q}: {e}");
    }
}

#[tokio::test]
async fn capabilities_declare_every_flow() {
    let env = env().await;
    let caps = env.setup.client.capabilities();
    assert_eq!(caps.system, "celro");
    assert!(connectors::Flow::ALL.iter().all(|f| caps.supports(*f)));
    assert_eq!(connectors::celro::capabilities(), caps);
}
