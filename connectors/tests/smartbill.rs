//! SmartBill: every shared ERP conformance check through the real client against the fake,
//! then the SmartBill-specific behaviour (200 + `errorText`, the 403 block and the
//! `X-RateLimit-Remaining` slow-down, the non-fiscal rule, PDF errors, storno once, recovery by
//! probing proformas, the catalog from the price list, credentials, the control API).

#![cfg(feature = "smartbill")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use canonical::{
    ChannelOrderId, Contact, Country, Currency, Order, OrderLine, OrderStatus, ReturnEvent,
    ReturnKind, ReturnLine, Sku, VatRate,
};
use chrono::Utc;
use connectors::conformance::{self, ErpFake, ErpSetup, Recovery};
use connectors::erp::{DocumentOptions, Erp, Lookup, ReturnOutcome};
use connectors::error::ConnectorError;
use connectors::fake::{Running, serve};
use connectors::gate::{CallGate, GatePermit};
use connectors::http::HttpSettings;
use connectors::smartbill::fake::FakeSettings;
use connectors::smartbill::{
    Config, Credentials, DEMO_CIF, DEMO_EMAIL, DEMO_TOKEN, SmartBillClient, SmartBillFake,
};
use connectors::{ErrorClass, Flow};
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

fn customer() -> Contact {
    Contact {
        name: "Ana Popescu".into(),
        email: Some("ana@example.ro".into()),
        phone: Some("0722000000".into()),
        address_line1: "Str. Lalelelor 3".into(),
        city: "Cluj-Napoca".into(),
        postal_code: "400001".into(),
        region: Some("Cluj".into()),
        country: Some(Country::RO),
        ..Contact::default()
    }
}

/// An order SmartBill accepts: one line at 119.00 (21 % VAT) and 15.00 shipping.
fn order_with(id: &str, sku: &Sku, vat: i64) -> Order {
    let line = OrderLine {
        line_id: None,
        sku: sku.clone(),
        title: "Conformance article".into(),
        quantity: 1,
        unit_price_gross: Decimal::new(11900, 2),
        vat: VatRate::percent(Decimal::from(vat)).expect("vat"),
    };
    Order {
        id: ChannelOrderId::new(id).expect("order id"),
        group_id: None,
        status: OrderStatus::New,
        raw_status: "new".into(),
        market: Country::RO,
        currency: Currency::Ron,
        placed_at: Utc::now(),
        updated_at: None,
        ship_by: None,
        lines: vec![line],
        shipping_fee_gross: Decimal::new(1500, 2),
        total_gross: Decimal::new(13400, 2),
        customer: customer(),
        ship_to: customer(),
        tracking: Vec::new(),
    }
}

fn order(id: &str, sku: &Sku) -> Order {
    order_with(id, sku, 21)
}

struct Env {
    setup: ErpSetup,
    fake: Arc<SmartBillFake>,
    client: Arc<SmartBillClient>,
    config: Config,
    running: Running,
}

impl Env {
    fn client_with(&self, change: impl FnOnce(&mut Config)) -> SmartBillClient {
        let mut c = self.config.clone();
        change(&mut c);
        let creds = Credentials::new(DEMO_EMAIL, DEMO_TOKEN).expect("credentials");
        SmartBillClient::new(&c, creds, None).expect("client")
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.base_url())
    }

    fn requests(&self) -> u64 {
        self.fake.harness().stats().requests
    }
}

async fn env() -> Env {
    let fake = SmartBillFake::new();
    let running = serve(fake.router(), "127.0.0.1:0")
        .await
        .expect("serve fake");
    let config = Config {
        base_url: format!("{}/SBORO/api/", running.base_url()),
        http: http(),
        cif: DEMO_CIF.into(),
        proforma_series: "PRO".into(),
        invoice_series: Some("FCT".into()),
        ..Config::default()
    };
    let creds = Credentials::new(DEMO_EMAIL, DEMO_TOKEN).expect("credentials");
    let client = Arc::new(SmartBillClient::new(&config, creds, None).expect("client"));
    let wrong = Credentials::new(DEMO_EMAIL, "not-the-token").expect("credentials");
    let bad_auth = Arc::new(SmartBillClient::new(&config, wrong, None).expect("client"));
    let invalid = order_with("ORD-INVALID-VAT", &sku("INV-1"), 7);
    let setup = ErpSetup {
        client: client.clone(),
        bad_auth: Some(bad_auth),
        fake: fake.clone(),
        order,
        options: DocumentOptions::default(),
        invalid: (invalid, "no VAT rate of 7 %"),
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

macro_rules! conformance {
    ($($check:ident),+ $(,)?) => {$(
        #[tokio::test]
        async fn $check() {
            let e = env().await;
            conformance::$check(&e.setup).await;
            assert_eq!(e.fake.api_invoices_created(), 0, "never an invoice");
            assert_eq!(e.fake.api_reversals(), 0, "never a storno");
            assert_eq!(e.fake.blocks_entered(), 0, "never blocked");
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

fn number(doc: &canonical::SalesDocument) -> u32 {
    doc.number.as_deref().unwrap().parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// errorText, the block, the slow-down

#[tokio::test]
async fn error_text_on_200_is_permanent_with_the_romanian_text() {
    let e = env().await;
    let wrong_series = e.client_with(|c| c.proforma_series = "NUEXISTA".into());
    let o = order("ORD-SERIES-400", &sku("S-1"));
    let err = wrong_series
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert_eq!(err.status(), Some(400));
    assert!(
        err.to_string()
            .contains("Seria nu a fost gasita! Folositi o serie creata in contul de cloud."),
        "{err}"
    );
    e.fake.set_settings(FakeSettings {
        errors_with_200: true,
        ..FakeSettings::default()
    });
    let err = wrong_series
        .create_sales_document(
            &order("ORD-SERIES-200", &sku("S-1")),
            &DocumentOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert_eq!(err.status(), Some(200), "a 200 with errorText is a failure");
    assert!(err.to_string().contains("Seria nu a fost gasita!"), "{err}");
    // A tax override the account does not have is refused before sending.
    let before = e.requests();
    let wrong_tax = e.client_with(|c| {
        c.tax_names.insert("21".into(), "Inventata".into());
    });
    let err = wrong_tax
        .create_sales_document(&order("ORD-TAX", &sku("S-1")), &DocumentOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Inventata"), "{err}");
    assert_eq!(e.requests(), before + 1, "only GET /tax was sent");
    // "nu a fost gasita" on a lookup with 200 is absence, not an error.
    let fresh = e.client_with(|_| {});
    let doc = fresh
        .create_sales_document(&order("ORD-GONE", &sku("S-1")), &DocumentOptions::default())
        .await
        .unwrap();
    let mut gone = doc.clone();
    gone.number = Some("0999".into());
    let err = fresh.invoice_pdf(&gone).await.unwrap_err();
    assert!(err.to_string().contains("no longer exists"), "{err}");
    assert_eq!(fresh.invoice_pdf(&doc).await.unwrap(), None);
}

#[derive(Debug, Default)]
struct RecordingGate(Mutex<Vec<Duration>>);

#[async_trait]
impl CallGate for RecordingGate {
    async fn acquire(&self) -> Result<GatePermit, ConnectorError> {
        Ok(GatePermit::free())
    }

    async fn penalize(&self, retry_after: Duration) {
        self.0.lock().unwrap().push(retry_after);
    }
}

#[tokio::test]
async fn the_fake_blocks_after_31_calls_in_10_s_and_the_client_backs_off_600_s() {
    let e = env().await;
    let raw = reqwest::Client::new();
    let url = e.url(&format!("/SBORO/api/tax?cif={DEMO_CIF}"));
    for i in 1..=30u32 {
        let r = raw
            .get(&url)
            .basic_auth(DEMO_EMAIL, Some(DEMO_TOKEN))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "call {i}");
        assert_eq!(r.headers()["x-ratelimit-limit"], "30");
        assert_eq!(
            r.headers()["x-ratelimit-remaining"].to_str().unwrap(),
            (30 - i).to_string()
        );
        let reset: i64 = r.headers()["x-ratelimit-reset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(reset >= Utc::now().timestamp() && reset <= Utc::now().timestamp() + 11);
    }
    let r = raw
        .get(&url)
        .basic_auth(DEMO_EMAIL, Some(DEMO_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "the 31st call in 10 s");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["errorText"].as_str().unwrap().contains("blocat"),
        "{body}"
    );
    assert_eq!(e.fake.blocks_entered(), 1);
    let state = e.fake.block_state(None);
    assert!(state.blocked_until.unwrap() > Utc::now() + chrono::Duration::seconds(590));
    // The client: a 403 is Retryable after 600 s, the gate is penalized, and it stops calling.
    let gate = Arc::new(RecordingGate::default());
    let creds = Credentials::new(DEMO_EMAIL, DEMO_TOKEN).unwrap();
    let c = SmartBillClient::new(&e.config, creds, Some(gate.clone())).unwrap();
    let err = c.stock(None).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Retryable, "{err}");
    assert_eq!(err.status(), Some(403));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(600)));
    assert!(err.to_string().contains("blocat"), "{err}");
    assert_eq!(*gate.0.lock().unwrap(), vec![Duration::from_secs(600)]);
    let before = e.requests();
    let err = c
        .create_sales_document(
            &order("ORD-BLOCKED", &sku("B-1")),
            &DocumentOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.class(),
        ErrorClass::Retryable,
        "a blocked create is not in doubt: {err}"
    );
    assert!(err.retry_after().unwrap() > Duration::from_secs(590));
    assert_eq!(e.requests(), before, "nothing was sent while blocked");
    assert_eq!(
        e.fake.blocks_entered(),
        1,
        "a blocked account's calls do not block it again"
    );
    // Ten minutes later (the fake's clock) the account works again.
    e.fake.set_clock_offset(chrono::Duration::seconds(601));
    assert!(e.fake.block_state(None).blocked_until.is_none());
    e.client.stock(None).await.expect("after the block");
}

#[tokio::test]
async fn remaining_at_the_floor_slows_the_client_down_instead_of_getting_blocked() {
    let e = env().await;
    e.fake.set_settings(FakeSettings {
        calls_per_window: 10,
        window_ms: 1500,
        ..FakeSettings::default()
    });
    let start = Instant::now();
    for i in 0..25 {
        e.client
            .stock(None)
            .await
            .unwrap_or_else(|err| panic!("call {i}: {err}"));
    }
    assert_eq!(
        e.fake.blocks_entered(),
        0,
        "the floor kept the client under the limit"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(2000),
        "it waited for new windows: {:?}",
        start.elapsed()
    );
    // A caller ignoring the headers gets blocked by the same burst.
    e.fake.set_clock_offset(chrono::Duration::seconds(30));
    let raw = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..11 {
        let r = raw
            .get(e.url(&format!("/SBORO/api/tax?cif={DEMO_CIF}")))
            .basic_auth(DEMO_EMAIL, Some(DEMO_TOKEN))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 403).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        e.fake.blocks_entered(),
        1,
        "a caller ignoring the headers is blocked"
    );
}

// ---------------------------------------------------------------------------------------------
// The non-fiscal rule, PDFs, storno

#[tokio::test]
async fn the_product_never_issues_invoices_and_reports_stornos_for_the_merchant() {
    let e = env().await;
    let k = sku("NF-1");
    e.fake
        .seed_item(&k, "Lampa", Decimal::new(11900, 2), 5, "Depozit");
    // Before invoicing: the proforma is cancelled.
    let o1 = order("ORD-NF-1", &k);
    let d1 = e
        .client
        .create_sales_document(&o1, &DocumentOptions::default())
        .await
        .unwrap();
    assert_eq!(d1.kind, canonical::SalesDocumentKind::Proforma);
    assert_eq!(
        (d1.erp_id.as_str(), d1.total_gross),
        ("PRO-0001", Decimal::new(13400, 2))
    );
    let cancel = ReturnEvent {
        event_id: "ev-1".into(),
        order_id: o1.id.clone(),
        kind: ReturnKind::Cancellation,
        lines: Vec::new(),
        reason: None,
        at: None,
    };
    match e.client.register_return(&d1, &cancel).await.unwrap() {
        ReturnOutcome::Registered { reference } => {
            assert!(reference.contains("PRO-0001"), "{reference}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.fake.estimate_cancelled(None, "PRO", 1), Some(true));
    // A second reconcile of the same event is harmless.
    assert!(matches!(
        e.client.register_return(&d1, &cancel).await.unwrap(),
        ReturnOutcome::Registered { .. }
    ));
    // A partial return before invoicing is the merchant's.
    let o2 = order("ORD-NF-2", &k);
    let d2 = e
        .client
        .create_sales_document(&o2, &DocumentOptions::default())
        .await
        .unwrap();
    let partial = ReturnEvent {
        lines: vec![ReturnLine {
            sku: k.clone(),
            quantity: 1,
        }],
        order_id: o2.id.clone(),
        ..cancel.clone()
    };
    match e.client.register_return(&d2, &partial).await.unwrap() {
        ReturnOutcome::ForMerchant { evidence } => assert!(
            evidence.contains("ORD-NF-2") && evidence.contains("in part"),
            "{evidence}"
        ),
        other => panic!("{other:?}"),
    }
    // After invoicing: the storno is the merchant's, named with the invoice.
    e.fake.merchant_invoices(&d2);
    let ret = ReturnEvent {
        kind: ReturnKind::ReturnRequest,
        lines: Vec::new(),
        ..partial
    };
    match e.client.register_return(&d2, &ret).await.unwrap() {
        ReturnOutcome::ForMerchant { evidence } => {
            assert!(evidence.contains("invoice FCT-0001"), "{evidence}");
            assert!(
                evidence.contains("storno") && evidence.contains("ORD-NF-2"),
                "{evidence}"
            );
            assert!(
                evidence.contains("never issues fiscal documents"),
                "{evidence}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e.fake.estimate_cancelled(None, "PRO", 2),
        Some(false),
        "an invoiced proforma stays"
    );
    // With cancellations off, the merchant cancels.
    let manual = e.client_with(|c| c.cancel_proformas = false);
    let o3 = order("ORD-NF-3", &k);
    let d3 = manual
        .create_sales_document(&o3, &DocumentOptions::default())
        .await
        .unwrap();
    let ev3 = ReturnEvent {
        order_id: o3.id.clone(),
        ..cancel
    };
    assert!(matches!(
        manual.register_return(&d3, &ev3).await.unwrap(),
        ReturnOutcome::ForMerchant { .. }
    ));
    let inv = e.client.invoice_pdf(&d2).await.unwrap().expect("invoiced");
    assert_eq!(
        e.client.invoice_credited(&inv).await.unwrap(),
        None,
        "SmartBill cannot tell"
    );
    assert_eq!(e.fake.api_invoices_created(), 0);
    assert_eq!(e.fake.api_reversals(), 0);
}

#[tokio::test]
async fn pdf_errors_name_what_came_instead() {
    let e = env().await;
    let o = order("ORD-PDF", &sku("P-1"));
    let d = e
        .client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .unwrap();
    e.fake.merchant_invoices(&d);
    let inv = e.client.invoice_pdf(&d).await.unwrap().unwrap();
    assert_eq!(
        (inv.series.as_deref(), inv.number.as_str()),
        (Some("FCT"), "0001")
    );
    assert!(String::from_utf8_lossy(&inv.pdf).contains("FACTURA FCT 0001"));
    e.fake.garbage_pdf();
    let err = e.client.invoice_pdf(&d).await.unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("PDF")
            && shown.contains("errorText")
            && shown.contains("nu a putut fi generat"),
        "{shown}"
    );
    // The PDF endpoints answer 401 as an HTML page.
    let r = reqwest::Client::new()
        .get(e.url(&format!(
            "/SBORO/api/invoice/pdf?cif={DEMO_CIF}&seriesname=FCT&number=0001"
        )))
        .basic_auth(DEMO_EMAIL, Some("wrong"))
        .header("accept", "application/octet-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let body = r.bytes().await.unwrap();
    assert_eq!(
        connectors::smartbill::errors::error_body(&body).as_deref(),
        Some("HTTP Status 401 - Unauthorized")
    );
    // An HTML page with 200 where a PDF belongs fails naming it.
    let err = connectors::erp::check_pdf("smartbill", "invoice_pdf", &body).unwrap_err();
    assert!(
        err.to_string().contains("expected a PDF") && err.to_string().contains("<html>"),
        "{err}"
    );
    // Through the client, wrong credentials on the invoice path are Auth.
    let err = e
        .setup
        .bad_auth
        .as_ref()
        .unwrap()
        .invoice_pdf(&d)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
}

#[tokio::test]
async fn the_fake_reverses_an_invoice_once_and_refuses_the_second_in_romanian() {
    let e = env().await;
    let o = order("ORD-STORNO", &sku("ST-1"));
    let d = e
        .client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .unwrap();
    e.fake.merchant_invoices(&d);
    let raw = reqwest::Client::new();
    let reverse = || {
        raw.post(e.url("/SBORO/api/invoice/reverse"))
            .basic_auth(DEMO_EMAIL, Some(DEMO_TOKEN))
            .json(&json!({"companyVatCode": DEMO_CIF, "seriesName": "FCT", "number": "0001", "issueDate": "2026-03-02"}))
            .send()
    };
    let first: Value = reverse().await.unwrap().json().await.unwrap();
    assert_eq!(
        (first["errorText"].as_str(), first["number"].as_str()),
        (Some(""), Some("0002")),
        "{first}"
    );
    let r = reverse().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let second: Value = r.json().await.unwrap();
    assert!(
        second["errorText"]
            .as_str()
            .unwrap()
            .contains("a fost deja stornata"),
        "{second}"
    );
    assert_eq!(e.fake.api_reversals(), 1);
    let status: Value = raw
        .get(e.url(&format!(
            "/SBORO/api/invoice/paymentstatus?cif={DEMO_CIF}&seriesname=FCT&number=0001"
        )))
        .basic_auth(DEMO_EMAIL, Some(DEMO_TOKEN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["invoiceTotalAmount"].as_f64(), Some(134.0));
    assert_eq!(status["paid"], json!(false));
}

// ---------------------------------------------------------------------------------------------
// Recovery

#[tokio::test]
async fn recovery_finds_one_parks_duplicates_and_proves_absence_only_in_an_empty_series() {
    let e = env().await;
    let o = order("ORD-REC", &sku("R-1"));
    assert_eq!(
        e.client.find_sales_document(&o).await.unwrap(),
        Lookup::Absent,
        "empty series"
    );
    // A garbled answer to the create is in doubt; the lookup finds the one it made. (An order
    // refused locally first caches `GET /tax`, so the garbage hits the create itself.)
    let refused = order_with("ORD-REC-VAT", &sku("R-1"), 7);
    assert!(
        e.client
            .create_sales_document(&refused, &DocumentOptions::default())
            .await
            .is_err()
    );
    e.fake.harness().update_faults(|f| f.next_garbage = 1);
    let err = e
        .client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::InDoubt, "{err}");
    assert_eq!(e.fake.documents_for(&o.id), 1);
    match e.client.find_sales_document(&o).await.unwrap() {
        Lookup::Found(d) => assert_eq!(
            (d.erp_id.as_str(), d.total_gross),
            ("PRO-0001", Decimal::new(13400, 2))
        ),
        other => panic!("{other:?}"),
    }
    // Two proformas for one order (equal totals): a person decides.
    e.client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .unwrap();
    match e.client.find_sales_document(&o).await.unwrap() {
        Lookup::NeedsReview { evidence } => {
            assert!(
                evidence.contains("PRO-0001") && evidence.contains("PRO-0002"),
                "{evidence}"
            )
        }
        other => panic!("{other:?}"),
    }
    // An order whose id is a prefix of another's is not confused with it.
    let o10 = order("ORD-REC0", &sku("R-1"));
    let never = e.client.find_sales_document(&o10).await.unwrap();
    assert!(
        matches!(never, Lookup::NeedsReview { ref evidence } if evidence.contains("no proforma")),
        "{never:?}"
    );
    // Beyond the probed window nothing can be proven.
    let shallow = e.client_with(|c| c.probe_depth = 1);
    let other = order("ORD-OTHER", &sku("R-1"));
    shallow
        .create_sales_document(&other, &DocumentOptions::default())
        .await
        .unwrap();
    assert!(matches!(
        shallow.find_sales_document(&other).await.unwrap(),
        Lookup::Found(_)
    ));
    match shallow.find_sales_document(&o).await.unwrap() {
        Lookup::NeedsReview { evidence } => assert!(evidence.contains("the last 1"), "{evidence}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.fake.documents_for(&o.id), 2, "recovery never creates");
}

#[tokio::test]
async fn a_timed_out_create_is_in_doubt_and_found_once() {
    let e = env().await;
    let o = order("ORD-TIMEOUT", &sku("T-1"));
    e.fake.commit_then_timeout_next();
    let err = e
        .client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::InDoubt, "{err}");
    assert!(matches!(
        e.client.find_sales_document(&o).await.unwrap(),
        Lookup::Found(_)
    ));
    assert_eq!(e.fake.documents_for(&o.id), 1);
    // A 503 before anything happened stays retryable; a 500 on the create is in doubt.
    e.fake.harness().update_faults(|f| {
        f.next_5xx = 3;
        f.status_5xx = Some(500);
    });
    let err = e
        .client
        .create_sales_document(&order("ORD-500", &sku("T-1")), &DocumentOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::InDoubt, "{err}");
}

// ---------------------------------------------------------------------------------------------
// Catalog, stock, ANAF rules

#[tokio::test]
async fn the_catalog_is_the_price_list_named_from_the_stock() {
    let e = env().await;
    e.fake.seed_demo();
    assert_eq!(
        e.client.catalog().await.unwrap_err().class(),
        ErrorClass::Unsupported
    );
    let priced = e.client_with(|c| {
        c.price_list = serde_json::from_value(json!([
            {"sku": "MGZ-MUG-01", "gross": "49.90", "vat": 21},
            {"sku": "NOT-IN-STOCK", "gross": 10, "vat": 11, "name": "Articol nou"}
        ]))
        .unwrap();
    });
    assert!(priced.capabilities().supports(Flow::CatalogPush));
    let items = priced.catalog().await.unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        (items[0].name.as_str(), items[0].price),
        ("Cana ceramica 350 ml", Decimal::new(4990, 2))
    );
    assert_eq!(items[1].name, "Articol nou");
    let all = e.client.stock(None).await.unwrap();
    assert_eq!(
        all.len(),
        3,
        "the product without a code is skipped: {all:?}"
    );
    let depozit = e.client.stock(Some("Depozit")).await.unwrap();
    assert_eq!(depozit.len(), 2);
    assert!(depozit.iter().all(|l| l.warehouse == "Depozit"));
    assert!(
        e.client.stock(Some("depozit")).await.unwrap().is_empty(),
        "warehouse names are case-sensitive"
    );
}

#[tokio::test]
async fn romanian_clients_follow_the_anaf_rules() {
    let e = env().await;
    let mut buc = order("ORD-BUC", &sku("A-1"));
    buc.customer.city = "Bucuresti".into();
    buc.customer.region = Some("Bucuresti".into());
    buc.customer.postal_code = "040011".into();
    e.client
        .create_sales_document(&buc, &DocumentOptions::default())
        .await
        .expect("sector 4 from the postal code");
    let mut nosector = buc.clone();
    nosector.id = ChannelOrderId::new("ORD-BUC-X").unwrap();
    nosector.customer.postal_code = String::new();
    let before = e.requests();
    let err = e
        .client
        .create_sales_document(&nosector, &DocumentOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(err.to_string().contains("sector"), "{err}");
    assert_eq!(
        e.requests(),
        before,
        "refused before sending (taxes cached)"
    );
    // The fake applies the same rule to a client that skips it.
    let raw: Value = reqwest::Client::new()
        .post(e.url("/SBORO/api/estimate"))
        .basic_auth(DEMO_EMAIL, Some(DEMO_TOKEN))
        .json(&json!({"companyVatCode": DEMO_CIF, "seriesName": "PRO", "client": {"name": "X", "city": "Bucuresti", "county": "Bucuresti", "country": "Romania", "address": "-"},
            "products": [{"name": "a", "measuringUnitName": "buc", "currency": "RON", "quantity": 1, "price": 1, "isTaxIncluded": true, "taxName": "Normala", "taxPercentage": 21}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        raw["errorText"].as_str().unwrap().contains("sectorul"),
        "{raw}"
    );
    let mut eur = order("ORD-EUR", &sku("A-1"));
    eur.currency = Currency::Eur;
    let d = e
        .client
        .create_sales_document(&eur, &DocumentOptions::default())
        .await
        .unwrap();
    assert_eq!(d.currency, Currency::Eur);
}

// ---------------------------------------------------------------------------------------------
// Credentials, the CIF, the control API

#[tokio::test]
async fn credentials_never_appear_in_debug_or_errors_and_a_foreign_cif_is_auth() {
    let e = env().await;
    let secret = "tok-Very-Secret-4242";
    e.fake.add_account("secret@shop.ro", secret, "RO76543210");
    let mut map = Map::new();
    map.insert("email".into(), json!("secret@shop.ro"));
    map.insert("token".into(), json!(secret));
    let mut settings = serde_json::to_value(&e.config).unwrap();
    settings["cif"] = json!("RO76543210");
    let c = SmartBillClient::from_json(settings.clone(), &map, None).unwrap();
    assert!(!format!("{c:?}").contains(secret), "{c:?}");
    c.stock(None).await.expect("the right token works");
    // The demo company's CIF with these credentials: 401, explained.
    let foreign =
        SmartBillClient::from_json(serde_json::to_value(&e.config).unwrap(), &map, None).unwrap();
    let err = foreign.stock(None).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth);
    assert!(err.to_string().contains("CIF"), "{err}");
    let wrong = "tok-Wrong-Secret-9999";
    map.insert("token".into(), json!(wrong));
    let bad = SmartBillClient::from_json(settings, &map, None).unwrap();
    let err = bad
        .find_sales_document(&order("ORD-X", &sku("X-1")))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth);
    for shown in [err.to_string(), format!("{err:?}"), format!("{bad:?}")] {
        assert!(
            !shown.contains(wrong) && !shown.contains(secret) && !shown.contains("secret@shop.ro"),
            "{shown}"
        );
    }
    map.insert("token".into(), json!(""));
    let err = SmartBillClient::from_json(Value::Null, &map, None).unwrap_err();
    assert!(err.to_string().contains("`token` is blank"), "{err}");
}

#[tokio::test]
async fn the_control_api() {
    let e = env().await;
    let raw = reqwest::Client::new();
    let ctl = |p: &str| e.url(&format!("/_control/smartbill/{p}"));
    let r = raw.post(ctl("items")).json(&json!({"sku": "CTL-1", "name": "Control", "gross": "10.00", "quantity": 4, "warehouse": "Depozit"})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let levels = e.client.stock(None).await.unwrap();
    assert_eq!(
        levels
            .iter()
            .find(|l| l.sku.as_str() == "CTL-1")
            .unwrap()
            .quantity,
        Decimal::from(4)
    );
    let o = order("ORD-CTL", &sku("CTL-1"));
    let d = e
        .client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .unwrap();
    let docs: Value = raw
        .get(ctl("documents/ORD-CTL"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(docs["documents"], json!(["PRO-0001"]));
    let inv: Value = raw
        .post(ctl("invoice_estimate"))
        .json(&json!({"series": "PRO", "number": d.number}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(inv["invoice"], "FCT-0001");
    let storno: Value = raw
        .post(ctl("credit"))
        .json(&json!({"series": "FCT", "number": "0001"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(storno["storno"], "FCT-0002");
    let again = raw
        .post(ctl("credit"))
        .json(&json!({"series": "FCT", "number": "0001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 400);
    let block: Value = raw
        .get(ctl("block"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        block["calls_in_window"].as_u64().unwrap() >= 3 && block["blocked_until"].is_null(),
        "{block}"
    );
    assert_eq!(
        raw.put(ctl("clock"))
            .json(&json!({"offset_secs": 600}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    let settings: FakeSettings = raw
        .get(ctl("settings"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings, FakeSettings::default());
    assert_eq!(
        raw.post(ctl("garbage_pdf"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    assert!(e.client.invoice_pdf(&d).await.is_err());
    let counters: Value = raw
        .get(ctl("counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        counters,
        json!({"api_invoices": 0, "api_reversals": 0, "blocks_entered": 0})
    );
    assert_eq!(
        raw.post(ctl("seed_demo"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    assert!(
        e.client
            .stock(Some("Magazin"))
            .await
            .unwrap()
            .iter()
            .any(|l| l.sku.as_str() == "MGZ-VASE-03")
    );
    assert_eq!(number(&d), 1);
}
