//! The shared conformance suites: every marketplace and every courier connector runs the same
//! checks, through its **real client** against its **fake**, covering every trait operation and
//! every error class. A system's tests build a [`MarketplaceSetup`] (or [`CourierSetup`]) and
//! call each `pub async fn` here from a `#[tokio::test]` of its own (one test per check, so a
//! failure names the check). The checks panic with a message naming what broke.
//!
//! Setups must build clients with short timeouts (`timeout_ms` ≈ 1000) so the hang faults
//! finish quickly, `inline_retries` ≥ 2 and `max_inline_wait_ms` ≥ 2000.

use std::sync::Arc;
use std::time::{Duration, Instant};

use canonical::{
    ChannelOrderId, Listing, OrderStatus, ShipmentRequest, Sku, StockUpdate, Tracking,
};
use chrono::Utc;
use rust_decimal::Decimal;

use crate::courier::Courier;
use crate::error::ErrorClass;
use crate::fake::{Faults, Harness};
use crate::marketplace::{InvoiceFile, ItemState, Marketplace, Transition};

/// What the marketplace suite needs to see inside a fake.
pub trait MarketplaceFake: Send + Sync {
    fn harness(&self) -> &Harness;
    /// Puts a live, approved listing on the marketplace (as if created long ago).
    fn seed_listing(&self, sku: &Sku, quantity: u32);
    /// Places an order for `quantity` of `sku` (seeding the listing if needed).
    fn seed_order(&self, sku: &Sku, quantity: u32) -> ChannelOrderId;
    /// The stock the marketplace shows for `sku`.
    fn listing_quantity(&self, sku: &Sku) -> Option<u32>;
    /// The gross price the marketplace shows for `sku` on its first market.
    fn listing_price(&self, sku: &Sku) -> Option<Decimal>;
    fn order_status(&self, id: &ChannelOrderId) -> Option<OrderStatus>;
    fn order_tracking(&self, id: &ChannelOrderId) -> Vec<Tracking>;
    /// Invoice files attached to the order.
    fn invoice_count(&self, id: &ChannelOrderId) -> usize;
    /// The marketplace (or the customer) cancels the order; it must then appear in returns.
    fn cancel_as_marketplace(&self, id: &ChannelOrderId);
    /// Finishes asynchronous processing (CDON status rows leave `pending`); no-op elsewhere.
    fn settle(&self);
    /// Invalidates every session token (Cel.ro); no-op for APIs without sessions.
    fn expire_sessions(&self);
}

/// One marketplace's fixture for the suite.
#[allow(missing_debug_implementations)]
pub struct MarketplaceSetup {
    pub client: Arc<dyn Marketplace>,
    /// The same client with wrong credentials.
    pub bad_auth: Arc<dyn Marketplace>,
    pub fake: Arc<dyn MarketplaceFake>,
    /// A listing this marketplace accepts, for `sku`.
    pub listing: fn(&Sku) -> Listing,
    /// A listing this marketplace refuses, and a fragment of the refusal's text.
    pub invalid: (Listing, &'static str),
    /// Whether [`Marketplace::attach_invoice`] is supported (else `Unsupported` is checked).
    pub invoices: bool,
    /// A valid push callback `(query, body)`, if the marketplace has push.
    pub callback: Option<(String, Vec<u8>)>,
}

fn sku(s: &str) -> Sku {
    Sku::new(s).expect("test SKU")
}

/// Upserting listings reports per SKU, settles (polling where the API is asynchronous), and
/// the marketplace shows the stock; one invalid item does not fail its neighbours.
pub async fn upsert_reports_per_item(s: &MarketplaceSetup) {
    let good = (s.listing)(&sku("CONF-UP-1"));
    let report = s
        .client
        .upsert_listings(&[good.clone(), s.invalid.0.clone()])
        .await
        .expect("a batch with one bad item is not an error of the call");
    s.fake.settle();
    let report = match report.handle.clone() {
        Some(h) if !report.is_settled() => {
            report.merge(s.client.poll_batch(&h).await.expect("poll"))
        }
        _ => report,
    };
    let state = |k: &Sku| {
        report
            .items
            .iter()
            .find(|i| &i.sku == k)
            .map(|i| i.state.clone())
    };
    assert_eq!(state(&good.sku), Some(ItemState::Ok), "{report:?}");
    match state(&s.invalid.0.sku) {
        Some(ItemState::Failed { message, retryable }) => {
            assert!(
                message.contains(s.invalid.1),
                "message {message:?} lacks {:?}",
                s.invalid.1
            );
            assert!(!retryable, "a validation failure is not retryable");
        }
        other => panic!("invalid item should fail, got {other:?} in {report:?}"),
    }
    assert_eq!(s.fake.listing_quantity(&good.sku), Some(good.quantity));
}

/// Stock and price updates land, per SKU; an unknown SKU fails alone.
pub async fn stock_and_price_updates(s: &MarketplaceSetup) {
    let known = sku("CONF-STOCK-1");
    s.fake.seed_listing(&known, 5);
    let unknown = sku("CONF-NOPE-404");
    let report = s
        .client
        .update_stock(&[
            StockUpdate {
                sku: known.clone(),
                quantity: 17,
            },
            StockUpdate {
                sku: unknown.clone(),
                quantity: 1,
            },
        ])
        .await
        .expect("stock update call");
    s.fake.settle();
    let report = match report.handle.clone() {
        Some(h) if !report.is_settled() => {
            report.merge(s.client.poll_batch(&h).await.expect("poll"))
        }
        _ => report,
    };
    assert_eq!(s.fake.listing_quantity(&known), Some(17), "{report:?}");
    assert!(
        report.failed().any(|(k, _, _)| k == &unknown),
        "unknown SKU must fail on its own: {report:?}"
    );
    let mut listing = (s.listing)(&known);
    let mut prices = listing.prices.clone();
    for p in &mut prices {
        p.gross.amount = Decimal::new(10550, 2);
    }
    listing.prices = prices.clone();
    let report = s
        .client
        .update_prices(&[canonical::PriceUpdate {
            sku: known.clone(),
            prices,
            vat: listing.vat,
        }])
        .await
        .expect("price update call");
    s.fake.settle();
    if let Some(h) = report.handle.as_ref().filter(|_| !report.is_settled()) {
        s.client.poll_batch(h).await.expect("poll");
    }
    assert_eq!(s.fake.listing_price(&known), Some(Decimal::new(10550, 2)));
}

/// Orders come back in pages from a cursor; every seeded order is seen, with lines and money.
pub async fn orders_page_from_a_cursor(s: &MarketplaceSetup) {
    let k = sku("CONF-ORD-1");
    let ids: Vec<_> = (0..5).map(|_| s.fake.seed_order(&k, 2)).collect();
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    for _ in 0..50 {
        let page = s
            .client
            .list_orders(cursor.as_deref())
            .await
            .expect("list orders");
        seen.extend(page.orders.iter().map(|o| o.id.clone()));
        for o in &page.orders {
            assert!(!o.lines.is_empty(), "order {} has no lines", o.id);
            assert!(o.total_gross > Decimal::ZERO, "order {} has no total", o.id);
        }
        cursor = Some(page.cursor);
        if !page.more {
            break;
        }
    }
    for id in &ids {
        assert!(seen.contains(id), "order {id} not listed; saw {seen:?}");
    }
    let one = s.client.get_order(&ids[0]).await.expect("get order");
    assert_eq!(one.status, OrderStatus::New);
    assert_eq!(one.lines[0].sku, k);
    assert_eq!(one.lines[0].quantity, 2);
}

/// Accept and ship move the order; repeating either is `AlreadyDone`, never an error.
pub async fn accept_and_ship_are_idempotent(s: &MarketplaceSetup) {
    let id = s.fake.seed_order(&sku("CONF-SHIP-1"), 1);
    assert_eq!(
        s.client.accept_order(&id).await.expect("accept"),
        Transition::Done
    );
    assert_eq!(s.fake.order_status(&id), Some(OrderStatus::Accepted));
    assert_eq!(
        s.client.accept_order(&id).await.expect("accept again"),
        Transition::AlreadyDone
    );
    let t = [Tracking {
        carrier: "DHL".into(),
        number: "1234567890".into(),
    }];
    assert_eq!(
        s.client.ship_order(&id, &t).await.expect("ship"),
        Transition::Done
    );
    assert_eq!(s.fake.order_status(&id), Some(OrderStatus::Shipped));
    assert_eq!(s.fake.order_tracking(&id), t.to_vec());
    assert_eq!(
        s.client.ship_order(&id, &t).await.expect("ship again"),
        Transition::AlreadyDone
    );
}

/// Cancelling a new order works; the cancellation shows up among returns/cancellations.
pub async fn cancellations_are_listed(s: &MarketplaceSetup) {
    let ours = s.fake.seed_order(&sku("CONF-CANC-1"), 1);
    assert_eq!(
        s.client
            .cancel_order(&ours, "out of stock")
            .await
            .expect("cancel"),
        Transition::Done
    );
    assert_eq!(s.fake.order_status(&ours), Some(OrderStatus::Cancelled));
    let theirs = s.fake.seed_order(&sku("CONF-CANC-2"), 1);
    s.fake.cancel_as_marketplace(&theirs);
    let mut cursor = None;
    let mut seen = Vec::new();
    for _ in 0..50 {
        let page = s
            .client
            .list_returns(cursor.as_deref())
            .await
            .expect("list returns");
        seen.extend(page.events.iter().map(|e| e.order_id.clone()));
        cursor = Some(page.cursor);
        if !page.more {
            break;
        }
    }
    assert!(
        seen.contains(&theirs),
        "marketplace cancellation not listed: {seen:?}"
    );
}

/// The invoice PDF attaches (or the marketplace declares it unsupported and says why).
pub async fn invoice_attach(s: &MarketplaceSetup) {
    let id = s.fake.seed_order(&sku("CONF-INV-1"), 1);
    let inv = InvoiceFile {
        series: "MGZ".into(),
        number: "1001".into(),
        pdf: b"%PDF-1.4\n%conformance\n".to_vec(),
    };
    let r = s.client.attach_invoice(&id, &inv).await;
    if s.invoices {
        r.expect("attach invoice");
        assert_eq!(s.fake.invoice_count(&id), 1);
        assert!(s.client.capabilities().supports(crate::Flow::InvoiceAttach));
    } else {
        let e = r.expect_err("unsupported");
        assert_eq!(e.class(), ErrorClass::Unsupported, "{e}");
        assert!(!s.client.capabilities().supports(crate::Flow::InvoiceAttach));
    }
}

/// A push callback parses into a wake-up; a malformed one is refused with a reason.
pub async fn callbacks_parse_or_refuse(s: &MarketplaceSetup) {
    match &s.callback {
        Some((q, b)) => {
            let w = s.client.parse_callback(q, b).expect("valid callback");
            assert!(!w.orders.is_empty(), "{w:?}");
            let e = s
                .client
                .parse_callback("type=1&value=%7Bnot-json", b"")
                .expect_err("garbage");
            assert_eq!(e.class(), ErrorClass::Permanent, "{e}");
        }
        None => {
            let e = s.client.parse_callback("", b"").expect_err("no push");
            assert_eq!(e.class(), ErrorClass::Unsupported, "{e}");
        }
    }
}

/// Wrong credentials are an `Auth` error, not retried.
pub async fn bad_credentials_are_auth_errors(s: &MarketplaceSetup) {
    let before = s.fake.harness().stats().requests;
    let e = s
        .bad_auth
        .list_orders(None)
        .await
        .expect_err("bad credentials");
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");
    let calls = s.fake.harness().stats().requests - before;
    assert!(
        calls <= 2,
        "auth failures must not be retried ({calls} calls)"
    );
}

/// 429 is retried after the hinted delay, and the call then succeeds.
pub async fn throttling_is_retried_after_the_hint(s: &MarketplaceSetup) {
    s.fake.harness().update_faults(|f| {
        f.next_429 = 1;
        f.retry_after_secs = 1;
    });
    let start = Instant::now();
    s.client
        .list_orders(None)
        .await
        .expect("succeeds after the 429");
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "waited only {:?}",
        start.elapsed()
    );
    s.fake.harness().set_faults(Faults::default());
}

/// 5xx is retried with backoff and then succeeds; persistent 5xx is a retryable error.
pub async fn server_errors_are_retried(s: &MarketplaceSetup) {
    let h = s.fake.harness();
    h.update_faults(|f| f.next_5xx = 1);
    let before = h.stats().requests;
    s.client
        .list_orders(None)
        .await
        .expect("succeeds after one 503");
    assert!(h.stats().requests - before >= 2, "the 503 was not retried");
    h.update_faults(|f| f.rate_5xx = 1.0);
    let e = s.client.list_orders(None).await.expect_err("always 503");
    assert_eq!(e.class(), ErrorClass::Retryable, "{e}");
    assert_eq!(e.status(), Some(503), "{e}");
    h.set_faults(Faults::default());
}

/// A garbled answer fails visibly, naming what came back.
pub async fn garbage_fails_visibly(s: &MarketplaceSetup) {
    let h = s.fake.harness();
    h.update_faults(|f| f.rate_garbage = 1.0);
    let e = s.client.list_orders(None).await.expect_err("garbage body");
    h.set_faults(Faults::default());
    assert_eq!(e.class(), ErrorClass::Retryable, "{e}");
    assert!(
        e.to_string().contains("Cloudflare"),
        "the body is shown: {e}"
    );
}

/// A ship that commits and then times out is `InDoubt`, never blindly retried; the retry the
/// flow makes after looking finds it `AlreadyDone`.
pub async fn ambiguous_ship_is_in_doubt(s: &MarketplaceSetup) {
    let id = s.fake.seed_order(&sku("CONF-DOUBT-1"), 1);
    s.client.accept_order(&id).await.expect("accept");
    let h = s.fake.harness();
    h.update_faults(|f| {
        f.next_commit_then_timeout = 1;
        f.hang_ms = Some(3_000);
    });
    let before = h.stats().requests;
    let t = [Tracking {
        carrier: "DHL".into(),
        number: "JD0001".into(),
    }];
    let e = s.client.ship_order(&id, &t).await.expect_err("times out");
    assert_eq!(e.class(), ErrorClass::InDoubt, "{e}");
    assert_eq!(
        h.stats().requests - before,
        1,
        "an in-doubt call must not be repeated"
    );
    h.set_faults(Faults::default());
    assert_eq!(s.fake.order_status(&id), Some(OrderStatus::Shipped));
    assert_eq!(
        s.client.ship_order(&id, &t).await.expect("retry"),
        Transition::AlreadyDone
    );
}

/// An expired session is renewed transparently (APIs with sessions); others just work.
pub async fn expired_sessions_renew(s: &MarketplaceSetup) {
    s.client.list_orders(None).await.expect("first call");
    s.fake.expire_sessions();
    s.client.list_orders(None).await.expect("after expiry");
}

/// Runs every marketplace check in order (for a quick smoke run).
pub async fn marketplace_suite(s: &MarketplaceSetup) {
    upsert_reports_per_item(s).await;
    stock_and_price_updates(s).await;
    orders_page_from_a_cursor(s).await;
    accept_and_ship_are_idempotent(s).await;
    cancellations_are_listed(s).await;
    invoice_attach(s).await;
    callbacks_parse_or_refuse(s).await;
    bad_credentials_are_auth_errors(s).await;
    throttling_is_retried_after_the_hint(s).await;
    server_errors_are_retried(s).await;
    garbage_fails_visibly(s).await;
    ambiguous_ship_is_in_doubt(s).await;
    expired_sessions_renew(s).await;
}

/// What the courier suite needs to see inside a fake.
pub trait CourierFake: Send + Sync {
    fn harness(&self) -> &Harness;
    /// AWBs minted for a customer reference.
    fn awbs_for(&self, reference: &str) -> Vec<String>;
    /// Moves a shipment along (so tracking has events): delivered when `delivered`.
    fn advance(&self, awb: &str, delivered: bool);
}

#[allow(missing_debug_implementations)]
pub struct CourierSetup {
    pub client: Arc<dyn Courier>,
    pub bad_auth: Arc<dyn Courier>,
    pub fake: Arc<dyn CourierFake>,
    /// A valid request with this reference, to an EU country.
    pub request_eu: fn(&str) -> ShipmentRequest,
    /// A valid request with this reference, to a non-EU country (customs).
    pub request_non_eu: fn(&str) -> ShipmentRequest,
    /// A request the courier refuses, and a fragment of its message.
    pub invalid: (ShipmentRequest, &'static str),
}

/// Create returns an AWB and a PDF label; the reference finds it again; tracking works.
pub async fn create_find_track(s: &CourierSetup) {
    let r = format!("CONF-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let shipment = s
        .client
        .create_shipment(&(s.request_eu)(&r))
        .await
        .expect("create");
    assert!(!shipment.awb.is_empty());
    assert!(shipment.label_pdf.starts_with(b"%PDF"), "label is a PDF");
    assert_eq!(s.fake.awbs_for(&r), vec![shipment.awb.clone()]);
    let found = s
        .client
        .find_by_reference(&r, Utc::now())
        .await
        .expect("find");
    assert_eq!(found.map(|f| f.awb), Some(shipment.awb.clone()));
    assert!(
        s.client
            .find_by_reference("CONF-NEVER", Utc::now())
            .await
            .expect("find none")
            .is_none()
    );
    s.fake.advance(&shipment.awb, true);
    let t = s.client.tracking(&shipment.awb).await.expect("tracking");
    assert_eq!(t.state, canonical::ParcelState::Delivered, "{t:?}");
}

/// Outside the EU the courier gets a customs declaration and still mints one AWB.
pub async fn non_eu_needs_customs(s: &CourierSetup) {
    let r = format!(
        "CONF-NO-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    s.client
        .create_shipment(&(s.request_non_eu)(&r))
        .await
        .expect("create to a non-EU country");
    assert_eq!(s.fake.awbs_for(&r).len(), 1);
    let mut no_lines = (s.request_non_eu)(&format!("{r}-X"));
    no_lines.lines.clear();
    let e = s
        .client
        .create_shipment(&no_lines)
        .await
        .expect_err("no customs lines");
    assert!(
        matches!(e.class(), ErrorClass::Permanent | ErrorClass::Config),
        "{e}"
    );
}

/// A refused request is permanent with the courier's own message; bad credentials are `Auth`.
pub async fn refusals_are_permanent(s: &CourierSetup) {
    let e = s
        .client
        .create_shipment(&s.invalid.0)
        .await
        .expect_err("invalid");
    assert_eq!(e.class(), ErrorClass::Permanent, "{e}");
    assert!(
        e.to_string().contains(s.invalid.1),
        "{e} lacks {:?}",
        s.invalid.1
    );
    let e = s
        .bad_auth
        .find_by_reference("X", Utc::now())
        .await
        .expect_err("auth");
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");
}

/// A create that commits then times out is in doubt, is not repeated, and the lookup by
/// reference finds the one AWB it made: never a second one.
pub async fn ambiguous_create_resolves_by_reference(s: &CourierSetup) {
    let r = format!(
        "CONF-AMB-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let h = s.fake.harness();
    h.update_faults(|f| {
        f.next_commit_then_timeout = 1;
        f.hang_ms = Some(3_000);
    });
    let before = h.stats().requests;
    let e = s
        .client
        .create_shipment(&(s.request_eu)(&r))
        .await
        .expect_err("times out");
    h.set_faults(Faults::default());
    assert_eq!(e.class(), ErrorClass::InDoubt, "{e}");
    assert_eq!(
        h.stats().requests - before,
        1,
        "an in-doubt create must not be repeated"
    );
    let found = s
        .client
        .find_by_reference(&r, Utc::now())
        .await
        .expect("lookup");
    let awbs = s.fake.awbs_for(&r);
    assert_eq!(awbs.len(), 1, "exactly one AWB minted");
    assert_eq!(found.map(|f| f.awb), Some(awbs[0].clone()));
}

/// 429 is retried after the hint; a 5xx on the (safe) lookup is retried; a 500 on create is
/// in doubt.
pub async fn throttling_and_server_errors(s: &CourierSetup) {
    let h = s.fake.harness();
    h.update_faults(|f| {
        f.next_429 = 1;
        f.retry_after_secs = 1;
    });
    let start = Instant::now();
    s.client
        .find_by_reference("CONF-T", Utc::now())
        .await
        .expect("after 429");
    assert!(start.elapsed() >= Duration::from_millis(950));
    h.update_faults(|f| {
        f.next_5xx = 1;
        f.status_5xx = Some(500);
    });
    s.client
        .find_by_reference("CONF-T", Utc::now())
        .await
        .expect("after 500");
    h.update_faults(|f| {
        f.next_5xx = 1;
        f.status_5xx = Some(500);
    });
    let r = format!(
        "CONF-500-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let e = s
        .client
        .create_shipment(&(s.request_eu)(&r))
        .await
        .expect_err("500 on create");
    assert_eq!(e.class(), ErrorClass::InDoubt, "{e}");
    h.set_faults(Faults::default());
}

pub async fn courier_suite(s: &CourierSetup) {
    create_find_track(s).await;
    non_eu_needs_customs(s).await;
    refusals_are_permanent(s).await;
    ambiguous_create_resolves_by_reference(s).await;
    throttling_and_server_errors(s).await;
}

/// What the ERP suite needs to see inside (and do to) a fake.
pub trait ErpFake: Send + Sync {
    /// Puts an article in the ERP with its gross price (VAT 19 %) and stock in `warehouse`.
    fn seed_item(&self, sku: &Sku, name: &str, gross: Decimal, stock: u32, warehouse: &str);
    /// How many sales documents the ERP holds for the marketplace order.
    fn documents_for(&self, order: &ChannelOrderId) -> usize;
    /// The merchant issues the invoice for the document (SmartBill: invoice from the proforma).
    fn merchant_invoices(&self, document: &canonical::SalesDocument);
    /// The merchant credits (reverses) that invoice.
    fn merchant_credits(&self, document: &canonical::SalesDocument);
    /// The next create is carried out, but its answer never comes in time.
    fn commit_then_timeout_next(&self);
    /// The next invoice download answers with something that is not a PDF.
    fn garbage_pdf_next(&self);
    /// The next call is throttled with a 1 s hint; `false` if the ERP has no such thing.
    fn throttle_next(&self) -> bool;
    /// The next call fails with a server error; `false` if the ERP has no such thing.
    fn server_error_next(&self) -> bool;
}

/// How an ERP recovers from an ambiguous create, as its docs state it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// The lookup finds the one document the lost call made.
    Finds,
    /// No trustworthy lookup: the order is parked as `NeedsReview`.
    ParksForReview,
}

/// One ERP's fixture for the suite.
#[allow(missing_debug_implementations)]
pub struct ErpSetup {
    pub client: Arc<dyn crate::erp::Erp>,
    /// The same client with wrong credentials; `None` where the ERP has none (file exchange).
    pub bad_auth: Option<Arc<dyn crate::erp::Erp>>,
    pub fake: Arc<dyn ErpFake>,
    /// A marketplace order for `sku` (seeded first) with this id, that the ERP accepts.
    pub order: fn(&str, &Sku) -> canonical::Order,
    /// Options the ERP needs for that order (an exchange rate for lexoffice).
    pub options: crate::erp::DocumentOptions,
    /// An order the ERP refuses, and a fragment of the refusal's text.
    pub invalid: (canonical::Order, &'static str),
    pub recovery: Recovery,
}

fn order_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// The catalog and stock come back with the seeded article (or are declared unsupported, with
/// the capability off).
pub async fn erp_catalog_and_stock(s: &ErpSetup) {
    let k = sku(&order_id("CAT"));
    s.fake
        .seed_item(&k, "Conformance mug", Decimal::new(5950, 2), 7, "Depozit");
    match s.client.catalog().await {
        Ok(items) => {
            let item = items
                .iter()
                .find(|i| i.sku == k)
                .unwrap_or_else(|| panic!("{k} not in catalog"));
            assert!(item.price > Decimal::ZERO, "{item:?}");
            assert!(s.client.capabilities().supports(crate::Flow::CatalogPush));
        }
        Err(e) => {
            assert_eq!(e.class(), ErrorClass::Unsupported, "{e}");
            assert!(!s.client.capabilities().supports(crate::Flow::CatalogPush));
        }
    }
    match s.client.stock(None).await {
        Ok(levels) => {
            let l = levels
                .iter()
                .find(|l| l.sku == k)
                .unwrap_or_else(|| panic!("{k} has no stock row"));
            assert_eq!(l.quantity, Decimal::from(7), "{l:?}");
            assert!(s.client.capabilities().supports(crate::Flow::StockPush));
        }
        Err(e) => {
            assert_eq!(e.class(), ErrorClass::Unsupported, "{e}");
            assert!(!s.client.capabilities().supports(crate::Flow::StockPush));
        }
    }
}

/// A created document is non-fiscal, and the lookup finds it (or parks it for review).
pub async fn erp_create_then_find(s: &ErpSetup) {
    let k = sku(&order_id("DOC"));
    s.fake
        .seed_item(&k, "Conformance lamp", Decimal::new(11900, 2), 5, "Depozit");
    let order = (s.order)(&order_id("ORD"), &k);
    assert_eq!(s.fake.documents_for(&order.id), 0);
    let doc = s
        .client
        .create_sales_document(&order, &s.options)
        .await
        .expect("create");
    assert_eq!(doc.order_id, order.id);
    assert_eq!(s.fake.documents_for(&order.id), 1);
    match (
        s.client.find_sales_document(&order).await.expect("find"),
        s.recovery,
    ) {
        (crate::erp::Lookup::Found(found), Recovery::Finds) => assert_eq!(found.erp_id, doc.erp_id),
        (crate::erp::Lookup::NeedsReview { evidence }, Recovery::ParksForReview) => {
            assert!(!evidence.is_empty())
        }
        (other, r) => panic!("lookup {other:?} does not match the stated recovery {r:?}"),
    }
    let other = (s.order)(&order_id("NEVER"), &k);
    let none = s
        .client
        .find_sales_document(&other)
        .await
        .expect("find none");
    assert!(
        matches!(
            none,
            crate::erp::Lookup::Absent | crate::erp::Lookup::NeedsReview { .. }
        ),
        "an order never sent has no document: {none:?}"
    );
}

/// An ambiguous create is in doubt, is not repeated, and recovery makes no second document.
pub async fn erp_ambiguous_create_makes_no_second_document(s: &ErpSetup) {
    let k = sku(&order_id("AMB"));
    s.fake.seed_item(
        &k,
        "Conformance chair",
        Decimal::new(23800, 2),
        5,
        "Depozit",
    );
    let order = (s.order)(&order_id("ORD"), &k);
    s.fake.commit_then_timeout_next();
    let e = s
        .client
        .create_sales_document(&order, &s.options)
        .await
        .expect_err("times out");
    assert_eq!(e.class(), ErrorClass::InDoubt, "{e}");
    assert_eq!(
        s.fake.documents_for(&order.id),
        1,
        "the lost call did create it, once"
    );
    match (
        s.client.find_sales_document(&order).await.expect("lookup"),
        s.recovery,
    ) {
        (crate::erp::Lookup::Found(doc), Recovery::Finds) => assert_eq!(doc.order_id, order.id),
        (crate::erp::Lookup::NeedsReview { .. }, Recovery::ParksForReview) => {}
        (other, r) => panic!("lookup {other:?} does not match the stated recovery {r:?}"),
    }
    assert_eq!(
        s.fake.documents_for(&order.id),
        1,
        "recovery made no second document"
    );
}

/// No invoice before the merchant issues one; then a valid PDF; a non-PDF answer fails clearly.
pub async fn erp_invoice_pdf(s: &ErpSetup) {
    let k = sku(&order_id("PDF"));
    s.fake
        .seed_item(&k, "Conformance desk", Decimal::new(59900, 2), 5, "Depozit");
    let order = (s.order)(&order_id("ORD"), &k);
    let doc = s
        .client
        .create_sales_document(&order, &s.options)
        .await
        .expect("create");
    match s.client.invoice_pdf(&doc).await {
        Ok(None) => {}
        Err(e) if e.class() == ErrorClass::Unsupported => {
            assert!(!s.client.capabilities().supports(crate::Flow::InvoiceAttach));
            return;
        }
        other => panic!("no invoice yet, got {other:?}"),
    }
    s.fake.merchant_invoices(&doc);
    let inv = s
        .client
        .invoice_pdf(&doc)
        .await
        .expect("pdf")
        .expect("invoiced");
    crate::erp::check_pdf("test", "invoice_pdf", &inv.pdf).expect("valid PDF bytes");
    s.fake.garbage_pdf_next();
    let e = s.client.invoice_pdf(&doc).await.expect_err("not a PDF");
    assert!(
        e.to_string().contains("PDF"),
        "the error says what was expected: {e}"
    );
    match s.client.invoice_credited(&inv).await.expect("credited?") {
        None => {}
        Some(false) => {
            s.fake.merchant_credits(&doc);
            assert_eq!(
                s.client.invoice_credited(&inv).await.expect("credited?"),
                Some(true)
            );
        }
        Some(true) => panic!("not credited yet"),
    }
}

/// A cancellation is registered the non-fiscal way or reported for the merchant with evidence.
pub async fn erp_returns(s: &ErpSetup) {
    let k = sku(&order_id("RET"));
    s.fake
        .seed_item(&k, "Conformance vase", Decimal::new(4990, 2), 5, "Depozit");
    let order = (s.order)(&order_id("ORD"), &k);
    let doc = s
        .client
        .create_sales_document(&order, &s.options)
        .await
        .expect("create");
    let event = canonical::ReturnEvent {
        event_id: format!("conf:{}", order.id),
        order_id: order.id.clone(),
        kind: canonical::ReturnKind::Cancellation,
        lines: Vec::new(),
        reason: Some("customer cancelled".into()),
        at: Some(Utc::now()),
    };
    match s
        .client
        .register_return(&doc, &event)
        .await
        .expect("register")
    {
        crate::erp::ReturnOutcome::Registered { reference } => assert!(!reference.is_empty()),
        crate::erp::ReturnOutcome::ForMerchant { evidence } => {
            assert!(
                evidence.contains(order.id.as_str()),
                "evidence names the order: {evidence}"
            )
        }
    }
}

/// Refusals are permanent with the ERP's message; wrong credentials are `Auth`; throttling and
/// server errors are retried where the ERP has them.
pub async fn erp_errors(s: &ErpSetup) {
    let e = s
        .client
        .create_sales_document(&s.invalid.0, &s.options)
        .await
        .expect_err("invalid order");
    assert!(
        matches!(e.class(), ErrorClass::Permanent | ErrorClass::Config),
        "{e}"
    );
    assert!(
        e.to_string().contains(s.invalid.1),
        "{e} lacks {:?}",
        s.invalid.1
    );
    if let Some(bad) = &s.bad_auth {
        let e = bad.stock(None).await.expect_err("bad credentials");
        assert!(
            matches!(e.class(), ErrorClass::Auth | ErrorClass::Unsupported),
            "{e}"
        );
        if e.class() == ErrorClass::Unsupported {
            let o = (s.order)(&order_id("AUTH"), &sku("AUTH-1"));
            let e = bad
                .find_sales_document(&o)
                .await
                .expect_err("bad credentials");
            assert_eq!(e.class(), ErrorClass::Auth, "{e}");
        }
    }
    let o = (s.order)(&order_id("THR"), &sku("THR-1"));
    if s.fake.throttle_next() {
        let start = Instant::now();
        s.client
            .find_sales_document(&o)
            .await
            .expect("after the throttle");
        assert!(
            start.elapsed() >= Duration::from_millis(950),
            "{:?}",
            start.elapsed()
        );
    }
    if s.fake.server_error_next() {
        s.client
            .find_sales_document(&o)
            .await
            .expect("after one server error");
    }
}

pub async fn erp_suite(s: &ErpSetup) {
    erp_catalog_and_stock(s).await;
    erp_create_then_find(s).await;
    erp_ambiguous_create_makes_no_second_document(s).await;
    erp_invoice_pdf(s).await;
    erp_returns(s).await;
    erp_errors(s).await;
}
