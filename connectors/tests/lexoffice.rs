//! lexoffice: every shared ERP conformance check through the real client against the fake
//! (EUR orders, and once with a RON order and a rate), then the lexoffice-specific behaviour:
//! the 2 requests/s limit with and without a gate, EUR-only conversion, recovery through the
//! voucherlist, webhooks signed end to end, no fiscal document ever created, credentials kept
//! out of every text.

#![cfg(feature = "lexoffice")]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::HeaderMap;
use canonical::{
    ChannelOrderId, Contact, Country, Currency, Order, OrderLine, OrderStatus, ReturnEvent,
    ReturnKind, Sku, VatRate,
};
use chrono::{Days, NaiveDate, Utc};
use connectors::conformance::{self, ErpFake, ErpSetup, Recovery};
use connectors::erp::{DocumentOptions, Erp, ExchangeRate, Lookup, ReturnOutcome};
use connectors::error::ConnectorError;
use connectors::fake::{Running, serve};
use connectors::gate::{CallGate, GatePermit};
use connectors::http::HttpSettings;
use connectors::lexoffice::fake::{FAKE_WEBHOOK_PUBLIC_KEY_PEM, SeedArticle};
use connectors::lexoffice::{Config, Credentials, DEMO_API_KEY, LexofficeClient, LexofficeFake};
use connectors::{ErrorClass, Flow};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

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

/// A local stand-in for the fleet gate: at most `count` calls in any window of `per` (the
/// fleet adds a margin to lexoffice's second; so does this), and a 429 holds every caller off.
#[derive(Debug)]
struct WindowGate {
    count: usize,
    per: Duration,
    inner: Mutex<(VecDeque<Instant>, Option<Instant>)>,
}

impl WindowGate {
    fn lexoffice() -> Arc<dyn CallGate> {
        Arc::new(Self {
            count: 2,
            per: Duration::from_millis(1_100),
            inner: Mutex::new((VecDeque::new(), None)),
        })
    }
}

#[async_trait]
impl CallGate for WindowGate {
    async fn acquire(&self) -> Result<GatePermit, ConnectorError> {
        loop {
            let wait = {
                let mut g = self.inner.lock().unwrap();
                let now = Instant::now();
                let (times, blocked) = &mut *g;
                if let Some(until) = *blocked
                    && until > now
                {
                    until - now
                } else {
                    while times
                        .front()
                        .is_some_and(|t| now.duration_since(*t) >= self.per)
                    {
                        times.pop_front();
                    }
                    if times.len() < self.count {
                        times.push_back(now);
                        return Ok(GatePermit::free());
                    }
                    self.per - now.duration_since(times[0])
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn penalize(&self, retry_after: Duration) {
        self.inner.lock().unwrap().1 = Some(Instant::now() + retry_after);
    }
}

fn contact() -> Contact {
    Contact {
        name: "Erika Mustermann".into(),
        email: Some("erika@example.com".into()),
        address_line1: "Hauptstraße 5".into(),
        city: "Berlin".into(),
        postal_code: "10115".into(),
        country: Some(Country::DE),
        ..Contact::default()
    }
}

fn order_in(id: &str, sku: &Sku, currency: Currency, unit: Decimal, vat: i64) -> Order {
    let shipping = match currency {
        Currency::Eur => Decimal::new(490, 2),
        _ => Decimal::new(2000, 2),
    };
    Order {
        id: ChannelOrderId::new(id).expect("order id"),
        group_id: None,
        status: OrderStatus::New,
        raw_status: "CREATED".into(),
        market: Country::DE,
        currency,
        placed_at: Utc::now(),
        updated_at: None,
        ship_by: None,
        lines: vec![OrderLine {
            line_id: Some("1".into()),
            sku: sku.clone(),
            title: "Conformance article".into(),
            quantity: 2,
            unit_price_gross: unit,
            vat: VatRate::percent(Decimal::from(vat)).expect("vat"),
        }],
        shipping_fee_gross: shipping,
        total_gross: unit * Decimal::from(2) + shipping,
        customer: contact(),
        ship_to: contact(),
        tracking: vec![],
    }
}

fn eur_order(id: &str, sku: &Sku) -> Order {
    order_in(id, sku, Currency::Eur, Decimal::new(5950, 2), 19)
}

fn ron_order(id: &str, sku: &Sku) -> Order {
    order_in(id, sku, Currency::Ron, Decimal::new(29600, 2), 19)
}

fn bnr() -> ExchangeRate {
    ExchangeRate {
        rate: Decimal::new(49771, 4),
        date: NaiveDate::from_ymd_opt(2025, 1, 30).expect("date"),
        source: "BNR".into(),
    }
}

/// An order lexoffice refuses: a 21 % line (Romania's rate) is not valid on a German voucher.
fn invalid_order() -> Order {
    order_in(
        "INVALID-1",
        &sku("INVALID-1"),
        Currency::Eur,
        Decimal::new(1000, 2),
        21,
    )
}

struct Env {
    setup: ErpSetup,
    fake: Arc<LexofficeFake>,
    client: Arc<LexofficeClient>,
    config: Config,
    running: Running,
}

impl Env {
    fn client_with(&self, key: &str, gate: Option<Arc<dyn CallGate>>) -> LexofficeClient {
        LexofficeClient::new(&self.config, Credentials::new(key).expect("key"), gate)
            .expect("client")
    }

    fn requests(&self) -> u64 {
        self.fake.harness().stats().requests
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.running.base_url()))
            .json(&body)
            .send()
            .await
            .expect("control call");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }
}

async fn env_with(ron: bool, change: impl FnOnce(&mut Config)) -> Env {
    let fake = LexofficeFake::new();
    let running = serve(fake.router(), "127.0.0.1:0")
        .await
        .expect("serve fake");
    let mut config = Config {
        base_url: running.base_url(),
        http: http(),
        ..Config::default()
    };
    change(&mut config);
    let creds = Credentials::new(DEMO_API_KEY).expect("credentials");
    let client = Arc::new(
        LexofficeClient::new(&config, creds, Some(WindowGate::lexoffice())).expect("client"),
    );
    let wrong = Credentials::new("not-the-key").expect("credentials");
    let bad_auth = Arc::new(
        LexofficeClient::new(&config, wrong, Some(WindowGate::lexoffice())).expect("client"),
    );
    let setup = ErpSetup {
        client: client.clone(),
        bad_auth: Some(bad_auth),
        fake: fake.clone(),
        order: if ron { ron_order } else { eur_order },
        options: DocumentOptions {
            exchange_rate: ron.then(bnr),
            warehouse: None,
        },
        invalid: (invalid_order(), "taxRatePercentage"),
        recovery: Recovery::Finds,
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
    env_with(false, |_| {}).await
}

macro_rules! conformance {
    ($($check:ident),+ $(,)?) => {$(
        #[tokio::test]
        async fn $check() {
            let e = env().await;
            conformance::$check(&e.setup).await;
            assert_eq!(e.fake.harness().stats().over_limit, 0, "the gate kept every call under 2/s");
        }
    )+};
}

conformance!(
    erp_catalog_and_stock,
    erp_create_then_find,
    erp_ambiguous_create_makes_no_second_document,
    erp_invoice_pdf,
    erp_returns,
    erp_errors,
);

#[tokio::test]
async fn conformance_create_then_find_with_a_ron_order_and_a_rate() {
    let e = env_with(true, |_| {}).await;
    conformance::erp_create_then_find(&e.setup).await;
    conformance::erp_ambiguous_create_makes_no_second_document(&e.setup).await;
}

// ---------------------------------------------------------------------------------------------
// Limits

#[tokio::test]
async fn more_than_two_calls_a_second_are_throttled_without_a_gate_and_never_with_one() {
    let e = env().await;
    let ungated = Arc::new(e.client_with(DEMO_API_KEY, None));
    let burst: Vec<_> = (0..6)
        .map(|_| {
            let c = ungated.clone();
            tokio::spawn(async move { c.catalog().await })
        })
        .collect();
    for h in burst {
        let _ = h.await.expect("task");
    }
    let throttled = e.fake.harness().stats().over_limit;
    assert!(throttled > 0, "6 calls at once must exceed 2/s");

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    e.fake.harness().reset_stats();
    let gate = WindowGate::lexoffice();
    let gated = Arc::new(e.client_with(DEMO_API_KEY, Some(gate)));
    let start = Instant::now();
    let burst: Vec<_> = (0..6)
        .map(|_| {
            let c = gated.clone();
            tokio::spawn(async move { c.catalog().await })
        })
        .collect();
    for h in burst {
        h.await.expect("task").expect("every gated call succeeds");
    }
    let s = e.fake.harness().stats();
    assert_eq!(s.over_limit, 0, "{s:?}");
    assert_eq!(s.requests, 6, "no retries were needed: {s:?}");
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "6 calls at 2/s take over 2 s"
    );
}

#[tokio::test]
async fn the_ambiguous_500_is_in_doubt_on_create_and_retried_on_reads() {
    let e = env().await;
    e.fake.rate_limit_500_next();
    let items = e
        .client
        .catalog()
        .await
        .expect("a read is retried after the 500");
    assert!(items.is_empty());
    let k = sku("AMB500-1");
    let order = eur_order("AMB500-ORDER", &k);
    e.fake.rate_limit_500_next();
    let before = e.requests();
    let err = e
        .client
        .create_sales_document(&order, &DocumentOptions::default())
        .await
        .expect_err("500 on create");
    assert_eq!(err.class(), ErrorClass::InDoubt, "{err}");
    assert!(err.to_string().contains("rate limit exceeded"), "{err}");
    assert_eq!(
        e.requests() - before,
        1,
        "an in-doubt create is not repeated"
    );
    // This 500 came before lexoffice did anything: the lookup proves it.
    assert_eq!(e.fake.documents_for(&order.id), 0);
    assert_eq!(
        e.client.find_sales_document(&order).await.expect("lookup"),
        Lookup::Absent
    );
}

// ---------------------------------------------------------------------------------------------
// EUR only

#[tokio::test]
async fn a_ron_order_without_a_rate_is_refused_before_anything_is_sent() {
    let e = env().await;
    let order = ron_order("RON-NORATE-1", &sku("RON-1"));
    let before = e.requests();
    let err = e
        .client
        .create_sales_document(&order, &DocumentOptions::default())
        .await
        .expect_err("no rate");
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    let shown = err.to_string();
    assert!(
        shown.contains("EUR only") && shown.contains("RON") && shown.contains("exchange_rate"),
        "{shown}"
    );
    assert_eq!(e.requests(), before, "nothing was sent");
    assert_eq!(e.fake.counts().order_confirmations_created, 0);
}

#[tokio::test]
async fn the_rate_its_date_and_source_are_recorded_on_the_document() {
    let e = env_with(true, |_| {}).await;
    let order = ron_order("RON-RATE-1", &sku("RON-2"));
    let doc = e
        .client
        .create_sales_document(&order, &e.setup.options)
        .await
        .expect("create");
    assert_eq!(doc.currency, Currency::Eur);
    assert_eq!(doc.exchange_rate, Some(Decimal::new(49771, 4)));
    // 296.00 / 4.9771 = 59.4724 → 2 × = 118.94; 20.00 / 4.9771 = 4.0184 → 4.02; = 122.96
    assert_eq!(doc.total_gross, Decimal::new(12296, 2));
    let stored = e
        .fake
        .voucher_json(DEMO_API_KEY, &doc.erp_id)
        .expect("stored");
    let remark = stored["remark"].as_str().expect("remark");
    assert!(remark.contains("Marketplace order: RON-RATE-1"), "{remark}");
    assert!(
        remark.contains("1 EUR = 4.9771 RON (BNR, 2025-01-30)"),
        "{remark}"
    );
    assert!(remark.contains("order total 612.00 RON"), "{remark}");
    let intro = stored["introduction"].as_str().expect("introduction");
    assert!(intro.contains("4.9771") && intro.contains("BNR") && intro.contains("30.01.2025"));
    assert_eq!(stored["lineItems"][0]["unitPrice"]["currency"], "EUR");
    assert_eq!(
        stored["lineItems"][0]["unitPrice"]["grossAmount"],
        json!(59.4724)
    );
    assert_eq!(stored["totalPrice"]["currency"], "EUR");
    // The lookup reads the rate back from the remark.
    match e.client.find_sales_document(&order).await.expect("find") {
        Lookup::Found(found) => {
            assert_eq!(found.erp_id, doc.erp_id);
            assert_eq!(found.exchange_rate, Some(Decimal::new(49771, 4)));
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Recovery through the voucherlist

#[tokio::test]
async fn two_confirmations_for_one_order_are_parked_for_review_naming_both() {
    let e = env().await;
    let order = eur_order("DUP-ORDER-1", &sku("DUP-1"));
    let a = e
        .client
        .create_sales_document(&order, &DocumentOptions::default())
        .await
        .expect("first");
    let b = e
        .client
        .create_sales_document(&order, &DocumentOptions::default())
        .await
        .expect("second (as a person might)");
    match e.client.find_sales_document(&order).await.expect("find") {
        Lookup::NeedsReview { evidence } => {
            assert!(
                evidence.contains(&a.erp_id) && evidence.contains(&b.erp_id),
                "{evidence}"
            );
            assert!(evidence.contains("DUP-ORDER-1"), "{evidence}");
        }
        other => panic!("several candidates must be reviewed: {other:?}"),
    }
}

#[tokio::test]
async fn an_order_older_than_the_window_is_never_reported_absent() {
    let e = env_with(false, |c| c.lookup_window_days = 3).await;
    let mut order = eur_order("OLD-ORDER-1", &sku("OLD-1"));
    order.placed_at = Utc::now() - Days::new(30);
    match e.client.find_sales_document(&order).await.expect("find") {
        Lookup::NeedsReview { evidence } => {
            assert!(evidence.contains("lookup_window_days = 3"), "{evidence}")
        }
        other => panic!("{other:?}"),
    }
    // Created today, though placed 30 days ago: the window still covers its creation.
    let doc = e
        .client
        .create_sales_document(&order, &DocumentOptions::default())
        .await
        .expect("create");
    match e.client.find_sales_document(&order).await.expect("find") {
        Lookup::Found(f) => assert_eq!(f.erp_id, doc.erp_id),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn too_many_candidates_park_instead_of_answering_absent() {
    let e = env_with(false, |c| c.lookup_max_candidates = 1).await;
    for i in 0..2 {
        let o = eur_order(&format!("OTHER-{i}"), &sku("CAND-1"));
        e.client
            .create_sales_document(&o, &DocumentOptions::default())
            .await
            .expect("create");
    }
    let never = eur_order("NEVER-SENT", &sku("CAND-1"));
    match e.client.find_sales_document(&never).await.expect("find") {
        Lookup::NeedsReview { evidence } => {
            assert!(evidence.contains("lookup_max_candidates"), "{evidence}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_voucherlist_refuses_pages_beyond_ten_thousand_results() {
    let e = env().await;
    let base = e.running.base_url();
    let c = reqwest::Client::new();
    let get = |q: &'static str| {
        c.get(format!("{base}/v1/voucherlist?{q}"))
            .bearer_auth(DEMO_API_KEY)
            .send()
    };
    let r = get("voucherType=orderconfirmation&voucherStatus=any&page=40&size=250")
        .await
        .expect("call");
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("Maximum search window size exceeded"),
        "{body}"
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let r = get("voucherStatus=any").await.expect("call");
    assert_eq!(r.status(), 400, "voucherType is required");
    let r = get("voucherType=orderconfirmation&voucherStatus=any&createdDateFrom=31.01.2025")
        .await
        .expect("call");
    assert_eq!(r.status(), 400, "dates are yyyy-MM-dd");
}

// ---------------------------------------------------------------------------------------------
// Invoices, credit notes, returns: read only

#[tokio::test]
async fn the_client_never_creates_an_invoice_or_a_credit_note() {
    let e = env().await;
    let order = eur_order("FISCAL-1", &sku("FISCAL-1"));
    let doc = e
        .client
        .create_sales_document(&order, &DocumentOptions::default())
        .await
        .expect("create");
    assert_eq!(doc.kind, canonical::SalesDocumentKind::OrderConfirmation);
    let event = ReturnEvent {
        event_id: "ev-fiscal-1".into(),
        order_id: order.id.clone(),
        kind: ReturnKind::Cancellation,
        lines: vec![],
        reason: Some("customer cancelled".into()),
        at: Some(Utc::now()),
    };
    match e
        .client
        .register_return(&doc, &event)
        .await
        .expect("return")
    {
        ReturnOutcome::ForMerchant { evidence } => {
            assert!(
                evidence.contains("FISCAL-1") && evidence.contains("not invoiced"),
                "{evidence}"
            );
            assert!(evidence.contains("cannot delete or void"), "{evidence}");
        }
        other => panic!("{other:?}"),
    }
    // A draft invoice is not an invoice yet.
    let (inv_id, _) = e
        .fake
        .invoice_order_confirmation(DEMO_API_KEY, &doc.erp_id, false)
        .expect("draft invoice");
    assert!(e.client.invoice_pdf(&doc).await.expect("pdf").is_none());
    let number = e
        .fake
        .finalize_invoice(DEMO_API_KEY, &inv_id)
        .expect("finalize");
    let pdf = e
        .client
        .invoice_pdf(&doc)
        .await
        .expect("pdf")
        .expect("open invoice");
    assert_eq!(pdf.number, number);
    // openAmount arrives as a number, then as a string: both read.
    assert_eq!(
        e.client.invoice_credited(&pdf).await.expect("credited"),
        Some(false)
    );
    assert_eq!(
        e.client.invoice_credited(&pdf).await.expect("credited"),
        Some(false)
    );
    match e
        .client
        .register_return(&doc, &event)
        .await
        .expect("return")
    {
        ReturnOutcome::ForMerchant { evidence } => {
            assert!(
                evidence.contains(&number) && evidence.contains("credit note"),
                "{evidence}"
            )
        }
        other => panic!("{other:?}"),
    }
    e.fake
        .credit_invoice(DEMO_API_KEY, &inv_id)
        .expect("merchant credits");
    assert_eq!(
        e.client.invoice_credited(&pdf).await.expect("credited"),
        Some(true)
    );
    let counts = e.fake.counts();
    assert_eq!(counts.invoice_posts, 0, "{counts:?}");
    assert_eq!(counts.credit_note_posts, 0, "{counts:?}");
    assert_eq!(counts.order_confirmations_created, 1, "{counts:?}");
    assert_eq!(counts.invoices_by_merchant, 1, "{counts:?}");
}

#[tokio::test]
async fn stock_is_unsupported_and_every_stock_path_is_404() {
    let e = env().await;
    let err = e.client.stock(None).await.expect_err("no stock");
    assert_eq!(err.class(), ErrorClass::Unsupported);
    assert!(err.to_string().contains("marketplace's own count"), "{err}");
    assert!(!e.client.capabilities().supports(Flow::StockPush));
    assert_eq!(e.requests(), 0, "stock never calls lexoffice");
    let r = reqwest::Client::new()
        .get(format!("{}/v1/stock", e.running.base_url()))
        .bearer_auth(DEMO_API_KEY)
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn the_catalog_walks_every_page_and_skips_archived_articles() {
    let e = env().await;
    for i in 0..260 {
        e.fake
            .seed_article(&SeedArticle {
                article_number: format!("PAGED-{i:03}"),
                title: format!("Artikel {i:03}"),
                gross_price: Some(Decimal::new(1000 + i, 2)),
                ..SeedArticle::default()
            })
            .expect("seed");
    }
    e.fake
        .seed_article(&SeedArticle {
            article_number: "ARCHIVED-1".into(),
            title: "Alt".into(),
            net_price: Some(Decimal::from(10)),
            leading_price: Some("NET".into()),
            archived: true,
            ..SeedArticle::default()
        })
        .expect("seed");
    let before = e.requests();
    let items = e.client.catalog().await.expect("catalog");
    assert_eq!(e.requests() - before, 2, "two pages of 250");
    assert_eq!(items.len(), 260);
    let one = items
        .iter()
        .find(|i| i.sku == sku("PAGED-007"))
        .expect("PAGED-007");
    assert_eq!(one.price, Decimal::new(1007, 2));
    assert!(one.price_includes_vat);
    assert_eq!(one.currency, Currency::Eur);
    assert!(!items.iter().any(|i| i.sku == sku("ARCHIVED-1")));
}

#[tokio::test]
async fn refusals_carry_lexoffices_german_details() {
    let e = env().await;
    let mut order = eur_order("JP-1", &sku("JP-1"));
    order.customer.country = Some("JP".parse().expect("country"));
    let err = e
        .client
        .create_sales_document(&order, &DocumentOptions::default())
        .await
        .expect_err("unsupported country");
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert_eq!(err.status(), Some(406));
    let shown = err.to_string();
    assert!(
        shown.contains("address.countryCode")
            && shown.contains("Ländercode 'JP' wird nicht unterstützt"),
        "{shown}"
    );
    let r = reqwest::Client::new()
        .post(format!("{}/v1/order-confirmations", e.running.base_url()))
        .bearer_auth(DEMO_API_KEY)
        .json(&json!({"voucherDate": "2025-01-31T10:00:00+01:00"}))
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 406);
    let body: Value = r.json().await.expect("json");
    let text = body.to_string();
    assert!(
        text.contains("voucherDate") && text.contains("yyyy-MM-dd'T'HH:mm:ss.SSSXXX"),
        "{text}"
    );
    assert!(text.contains("darf nicht leer sein"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Webhooks

async fn receiver() -> (Running, mpsc::UnboundedReceiver<(HeaderMap, Bytes)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body));
                axum::http::StatusCode::OK
            }
        })
        .head(|| async { axum::http::StatusCode::OK }),
    );
    (serve(app, "127.0.0.1:0").await.expect("receiver"), rx)
}

#[tokio::test]
async fn webhooks_are_signed_by_the_fake_and_verified_by_the_client() {
    let e = env_with(false, |c| {
        c.webhook_public_key_pem = Some(FAKE_WEBHOOK_PUBLIC_KEY_PEM.to_owned())
    })
    .await;
    let (hook, mut rx) = receiver().await;
    let url = format!("{}/hook", hook.base_url());
    let id = e
        .client
        .subscribe("invoice.created", &url)
        .await
        .expect("subscribe");
    let again = e
        .client
        .subscribe("invoice.created", &url)
        .await
        .expect("subscribe again");
    assert_eq!(
        id, again,
        "a duplicate (409) resolves to the existing subscription"
    );
    let subs = e.client.subscriptions().await.expect("list");
    assert_eq!(subs.len(), 1);
    let err = e
        .client
        .subscribe("invoice.changed", "http://127.0.0.1:9/unreachable")
        .await
        .expect_err("unreachable callback");
    assert_eq!(err.status(), Some(406), "{err}");

    let resource = uuid::Uuid::new_v4().to_string();
    let out = e
        .control(
            "/_control/lexoffice/webhooks/fire",
            json!({"event_type": "invoice.created", "resource_id": resource}),
        )
        .await;
    assert_eq!(out["deliveries"][0]["status"], 200, "{out}");
    let (headers, body) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("delivered in time")
        .expect("a delivery");
    let sig = headers
        .get("x-lxo-signature")
        .and_then(|v| v.to_str().ok())
        .expect("signature header")
        .to_owned();
    let event = e.client.verify_webhook(&sig, &body).expect("verifies");
    assert_eq!(event.event_type, "invoice.created");
    assert_eq!(event.resource_id, resource);
    assert_eq!(
        Some(event.organization_id.clone()),
        e.fake.organization_id(DEMO_API_KEY)
    );
    let mut tampered = body.to_vec();
    let at = tampered.len() - 5;
    tampered[at] ^= 0x01;
    let err = e
        .client
        .verify_webhook(&sig, &tampered)
        .expect_err("tampered");
    assert!(err.to_string().contains("bad X-Lxo-Signature"), "{err}");
    let err = e.client.verify_webhook("", &body).expect_err("missing");
    assert!(err.to_string().contains("missing X-Lxo-Signature"), "{err}");
    let err = connectors::lexoffice::verify_webhook(FAKE_WEBHOOK_PUBLIC_KEY_PEM, &sig, b"{}")
        .expect_err("another body");
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert_eq!(e.fake.counts().webhooks_delivered, 1);
}

// ---------------------------------------------------------------------------------------------
// Credentials

#[tokio::test]
async fn the_api_key_never_appears_in_debug_output_or_errors() {
    let e = env().await;
    let secret = "sk-live-VERY-SECRET-0042";
    let client = e.client_with(secret, None);
    let shown = format!("{client:?}");
    assert!(!shown.contains(secret), "{shown}");
    let err = client.catalog().await.expect_err("unknown key");
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    assert!(err.to_string().contains("Unauthorized"), "{err}");
    assert!(!err.to_string().contains(secret) && !format!("{err:?}").contains(secret));
    let creds = Credentials::new(secret).expect("creds");
    assert!(!format!("{creds:?}").contains(secret));
    let mut m = Map::new();
    m.insert("api_key".into(), json!(secret));
    m.insert("apiKey".into(), json!(secret));
    let err = LexofficeClient::from_json(Value::Null, &m, None).expect_err("unknown field");
    assert!(!err.to_string().contains(secret), "{err}");
    m.remove("apiKey");
    let ok = LexofficeClient::from_json(json!({"base_url": e.running.base_url()}), &m, None)
        .expect("from_json");
    assert!(!format!("{ok:?}").contains(secret));
}
