//! WinMentor: every shared ERP conformance check through the real client against the fake
//! WinMentor process (a task watching a temporary exchange directory), then the
//! WinMentor-specific behaviour: ambiguous hand-overs, refusals with WinMENTOR's error lines,
//! stale/missing/malformed exports, both encodings and separators end to end, a stuck bridge,
//! closed months, new partners, company checks, and that no fiscal package is ever written.

#![cfg(feature = "winmentor")]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use canonical::{
    ChannelOrderId, Contact, Country, Currency, Order, OrderLine, OrderStatus, ReturnEvent,
    ReturnKind, ReturnLine, Sku, VatRate,
};
use chrono::{Datelike, Utc};
use connectors::ErrorClass;
use connectors::conformance::{self, ErpFake, ErpSetup, Recovery};
use connectors::erp::{DocumentOptions, Erp, Lookup, ReturnOutcome};
use connectors::winmentor::client::{ARCHIVE, INBOX, SENT, STOC_FILE, result_path};
use connectors::winmentor::config::{ClientCode, DecimalSeparator, FileEncoding};
use connectors::winmentor::convert::{nr_doc, package_file};
use connectors::winmentor::errors::ResultStatus;
use connectors::winmentor::{Config, FakeOptions, WinMentorClient, WinMentorFake};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

const CLIENT: &str = "CLIENTI MARKETPLACE";

fn sku(s: &str) -> Sku {
    Sku::new(s).expect("test SKU")
}

fn uid(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// A marketplace order for one unit of `sku` at 59.50 lei, 19 % VAT.
fn order(id: &str, sku: &Sku) -> Order {
    Order {
        id: ChannelOrderId::new(id).expect("order id"),
        group_id: None,
        status: OrderStatus::New,
        raw_status: "CREATED".into(),
        market: Country::RO,
        currency: Currency::Ron,
        placed_at: Utc::now(),
        updated_at: None,
        ship_by: None,
        lines: vec![OrderLine {
            line_id: Some("1".into()),
            sku: sku.clone(),
            title: "Cană roșie țesută".into(),
            quantity: 1,
            unit_price_gross: Decimal::new(5950, 2),
            vat: VatRate::percent(Decimal::from(19)).expect("vat"),
        }],
        shipping_fee_gross: Decimal::ZERO,
        total_gross: Decimal::new(5950, 2),
        customer: Contact {
            name: "Ana Popescu-Știrbei".into(),
            email: Some("ana@example.ro".into()),
            phone: Some("+40722000000".into()),
            address_line1: "Str. Lalelelor 3".into(),
            city: "Brașov".into(),
            postal_code: "500000".into(),
            region: Some("Brașov".into()),
            country: Some(Country::RO),
            ..Contact::default()
        },
        ship_to: Contact::default(),
        tracking: Vec::new(),
    }
}

struct Env {
    root: PathBuf,
    fake: Arc<WinMentorFake>,
    client: Arc<WinMentorClient>,
    config: Config,
    handle: JoinHandle<()>,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.handle.abort();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn temp_root() -> PathBuf {
    let root = std::env::temp_dir().join(format!("winmentor-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&root).expect("temp dir");
    root
}

fn config(root: &Path, encoding: FileEncoding, decimal: DecimalSeparator) -> Config {
    let mut c = Config::new(
        root,
        ClientCode::Constant {
            code: CLIENT.into(),
        },
    );
    c.encoding = encoding;
    c.decimal_separator = decimal;
    c.result_timeout_ms = 500;
    c.result_poll_ms = 20;
    c.stale_export_after_secs = 600;
    c
}

fn env_with(encoding: FileEncoding, decimal: DecimalSeparator, edit: impl Fn(&mut Config)) -> Env {
    let root = temp_root();
    let (fake, handle) = WinMentorFake::start(
        root.clone(),
        FakeOptions {
            encoding,
            decimal_separator: decimal,
            ..FakeOptions::default()
        },
    );
    let mut config = config(&root, encoding, decimal);
    edit(&mut config);
    let client = Arc::new(WinMentorClient::new(&config).expect("client"));
    Env {
        root,
        fake,
        client,
        config,
        handle,
    }
}

fn env() -> Env {
    env_with(FileEncoding::Windows1250, DecimalSeparator::Comma, |_| {})
}

fn setup(e: &Env) -> ErpSetup {
    ErpSetup {
        client: e.client.clone(),
        bad_auth: None,
        fake: e.fake.clone(),
        order,
        options: DocumentOptions::default(),
        invalid: (
            order("INVALID-1", &sku("NOT-IN-NOMENCLATOR")),
            "Articol inexistent in nomenclator",
        ),
        recovery: Recovery::Finds,
    }
}

fn files(root: &Path, dir: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join(dir))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn file_of(o: &Order) -> String {
    package_file(nr_doc(o.id.as_str(), 0, 9))
}

async fn wait_for(path: &Path, within: Duration) {
    let until = std::time::Instant::now() + within;
    while !path.exists() {
        assert!(
            std::time::Instant::now() < until,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// No package anywhere in the exchange is anything but a COMANDA.
fn assert_no_fiscal_package(e: &Env) {
    for dir in [INBOX, ARCHIVE] {
        for f in files(&e.root, dir) {
            if f.ends_with(".result") {
                continue;
            }
            let bytes = std::fs::read(e.root.join(dir).join(&f)).expect("read package");
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                text.contains("Tipdocument=COMANDA") && !text.contains("FACTURA"),
                "{dir}/{f} is not a COMANDA package:\n{text}"
            );
        }
    }
    assert_eq!(e.fake.other_document_types(), Vec::new());
}

// ---- the shared ERP conformance suite, one test per check ----

#[tokio::test]
async fn erp_catalog_and_stock() {
    let e = env();
    conformance::erp_catalog_and_stock(&setup(&e)).await;
}

#[tokio::test]
async fn erp_create_then_find() {
    let e = env();
    conformance::erp_create_then_find(&setup(&e)).await;
    assert_no_fiscal_package(&e);
}

#[tokio::test]
async fn erp_ambiguous_create_makes_no_second_document() {
    let e = env();
    conformance::erp_ambiguous_create_makes_no_second_document(&setup(&e)).await;
}

#[tokio::test]
async fn erp_invoice_pdf() {
    let e = env();
    conformance::erp_invoice_pdf(&setup(&e)).await;
}

#[tokio::test]
async fn erp_returns() {
    let e = env();
    conformance::erp_returns(&setup(&e)).await;
    assert_no_fiscal_package(&e);
}

#[tokio::test]
async fn erp_errors() {
    let e = env();
    conformance::erp_errors(&setup(&e)).await;
}

// ---- WinMentor-specific behaviour ----

#[tokio::test]
async fn a_late_result_is_in_doubt_then_found_once_and_never_resent() {
    let e = env();
    let k = sku(&uid("LATE"));
    e.fake
        .seed_item(&k, "Scaun", Decimal::new(23800, 2), 5, "Depozit");
    let o = order(&uid("ORD"), &k);
    e.fake.commit_then_timeout_next();
    let err = e
        .client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect_err("no result in time");
    assert_eq!(err.class(), ErrorClass::InDoubt, "{err}");
    let file = file_of(&o);
    assert!(err.to_string().contains(&file), "{err}");
    assert_eq!(e.fake.documents_for(&o.id), 1, "imported once already");
    wait_for(&e.root.join(result_path(&file)), Duration::from_secs(3)).await;
    let doc = match e.client.find_sales_document(&o).await.expect("find") {
        Lookup::Found(d) => d,
        other => panic!("expected Found, got {other:?}"),
    };
    assert_eq!(doc.number.as_deref(), Some(&file[8..17]));
    assert_eq!(doc.total_gross, Decimal::new(5950, 2));
    // A blind retry of the create writes nothing and answers the same document.
    let again = e
        .client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect("create again");
    assert_eq!(again, doc);
    assert_eq!(e.fake.documents_for(&o.id), 1);
    assert_eq!(e.fake.orders().len(), 1);
    assert_eq!(e.fake.processed_packages().len(), 1, "one package only");
    assert_eq!(files(&e.root, SENT), vec![format!("{file}.json")]);
    // Stock is reserved by the imported order.
    assert_eq!(
        e.fake.stock_of(k.as_str(), "Depozit"),
        Some((Decimal::from(5), Decimal::ONE))
    );
    let levels = e.client.stock(None).await.expect("stock");
    let l = levels.iter().find(|l| l.sku == k).expect("row");
    assert_eq!(l.quantity, Decimal::from(4), "available = stock − reserved");
}

#[tokio::test]
async fn an_unknown_code_is_permanent_with_the_fakes_line_and_can_be_resent_after_the_fix() {
    let e = env();
    let k = sku(&uid("NOPE"));
    let o = order(&uid("ORD"), &k);
    let err = e
        .client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect_err("unknown code");
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    let line = format!("Articol inexistent in nomenclator: cod \"{k}\"");
    assert!(err.to_string().contains(&line), "{err}");
    assert_eq!(
        e.client.find_sales_document(&o).await.expect("find"),
        Lookup::Absent,
        "a refused package left no document"
    );
    // The merchant adds the article and replays: the same NrDoc is sent again, once.
    e.fake
        .seed_item(&k, "Vază", Decimal::new(4990, 2), 3, "Depozit");
    let doc = e
        .client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect("accepted after the fix");
    assert_eq!(doc.number, Some(nr_doc(o.id.as_str(), 0, 9).to_string()));
    assert_eq!(e.fake.documents_for(&o.id), 1);
    let archived = files(&e.root, ARCHIVE);
    assert!(
        archived.iter().any(|f| f.contains(".refused-")),
        "the refusal is kept: {archived:?}"
    );
    let statuses: Vec<_> = e
        .fake
        .processed_packages()
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(statuses, vec![ResultStatus::Refused, ResultStatus::Ok]);
}

#[tokio::test]
async fn a_stuck_bridge_is_in_doubt_then_waited_for_and_never_written_twice() {
    let e = env();
    let k = sku(&uid("STUCK"));
    e.fake
        .seed_item(&k, "Lampă", Decimal::new(11900, 2), 2, "Depozit");
    e.fake.set_stuck(true);
    let o = order(&uid("ORD"), &k);
    let err = e
        .client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect_err("stuck");
    assert_eq!(err.class(), ErrorClass::InDoubt, "{err}");
    let file = file_of(&o);
    assert_eq!(files(&e.root, INBOX), vec![file.clone()]);
    let err = e
        .client
        .find_sales_document(&o)
        .await
        .expect_err("still waiting");
    assert_eq!(err.class(), ErrorClass::Retryable, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("waiting for WinMentor to import inbox/{file}")),
        "{err}"
    );
    let modified = std::fs::metadata(e.root.join(INBOX).join(&file))
        .and_then(|m| m.modified())
        .expect("mtime");
    let err = e
        .client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect_err("still stuck");
    assert_eq!(err.class(), ErrorClass::InDoubt, "{err}");
    assert_eq!(
        std::fs::metadata(e.root.join(INBOX).join(&file))
            .and_then(|m| m.modified())
            .expect("mtime"),
        modified,
        "the pending package was not written again"
    );
    // With `pending_lookup = review` a person decides instead.
    let mut review = e.config.clone();
    review.pending_lookup = connectors::winmentor::config::PendingLookup::Review;
    let reviewer = WinMentorClient::new(&review).expect("client");
    match reviewer.find_sales_document(&o).await.expect("lookup") {
        Lookup::NeedsReview { evidence } => assert!(evidence.contains(&file), "{evidence}"),
        other => panic!("expected NeedsReview, got {other:?}"),
    }
    e.fake.set_stuck(false);
    match e.client.find_sales_document(&o).await.expect("find") {
        Lookup::Found(d) => assert_eq!(d.order_id, o.id),
        other => panic!("expected Found, got {other:?}"),
    }
    assert_eq!(e.fake.documents_for(&o.id), 1);
    assert!(files(&e.root, INBOX).is_empty());
}

#[tokio::test]
async fn stale_and_missing_exports_are_retryable_and_say_so() {
    let e = env();
    e.fake
        .seed_item(&sku("OLD-1"), "Masă", Decimal::new(100, 0), 1, "Depozit");
    let old = (Utc::now() - chrono::Duration::hours(2)).fixed_offset();
    e.fake.write_exports_at(Some(old));
    let err = e.client.stock(None).await.expect_err("stale");
    assert_eq!(err.class(), ErrorClass::Retryable, "{err}");
    assert!(
        err.to_string().contains("exports/stoc.txt is stale")
            && err.to_string().contains("stale_export_after_secs = 600"),
        "{err}"
    );
    let err = e.client.catalog().await.expect_err("stale");
    assert!(
        err.to_string().contains("exports/articole.txt is stale"),
        "{err}"
    );
    e.fake.write_exports_at(None);
    e.client.stock(None).await.expect("fresh again");
    e.fake.set_exporting(false);
    std::fs::remove_file(e.root.join(STOC_FILE)).expect("remove export");
    let err = e.client.stock(None).await.expect_err("missing");
    assert_eq!(err.class(), ErrorClass::Retryable, "{err}");
    assert!(
        err.to_string().contains("no export yet: exports/stoc.txt"),
        "{err}"
    );
}

#[tokio::test]
async fn a_malformed_export_line_is_permanent_naming_file_and_line() {
    let e = env();
    e.fake.set_exporting(false);
    let header = format!(
        "#EXPORT;GetStocArticole;Firma Demo SRL;{};2",
        Utc::now().to_rfc3339()
    );
    let good = "A-1;Cană;buc;10;5;;;;;;;Depozit;Depozit;19;N;11,9;0";
    let short = "A-2;Cană;buc;10;5";
    let text = format!("{header}\r\n{good}\r\n{short}\r\n");
    std::fs::write(e.root.join(STOC_FILE), text).expect("write");
    let err = e.client.stock(None).await.expect_err("malformed");
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert!(
        err.to_string()
            .contains("exports/stoc.txt line 3: 5 fields separated by `;`, expected 17"),
        "{err}"
    );
    let bad_number = good.replace(";5;", ";cinci;");
    let text = format!("{header}\r\n{good}\r\n{bad_number}\r\n");
    std::fs::write(e.root.join(STOC_FILE), text).expect("write");
    let err = e.client.stock(None).await.expect_err("malformed");
    assert!(
        err.to_string().contains("exports/stoc.txt line 3: Stoc:"),
        "{err}"
    );
}

#[tokio::test]
async fn windows_1250_with_comma_end_to_end() {
    let e = env_with(FileEncoding::Windows1250, DecimalSeparator::Comma, |_| {});
    let k = sku(&uid("DIA"));
    let name = "Cană roșie țesută ĂÂÎȘȚ";
    e.fake
        .seed_item(&k, name, Decimal::new(5950, 2), 7, "Depozit");
    let raw = std::fs::read(e.root.join("exports/articole.txt")).expect("export");
    assert!(
        std::str::from_utf8(&raw).is_err(),
        "the export is not UTF-8"
    );
    assert!(
        raw.windows(2).any(|w| w == [0xBA, b'i']),
        "ș written as 0xBA (ş)"
    );
    let item = e
        .client
        .catalog()
        .await
        .expect("catalog")
        .into_iter()
        .find(|i| i.sku == k)
        .expect("item");
    assert_eq!(item.name, name);
    assert_eq!(item.price, Decimal::new(5950, 2));
    assert!(item.price_includes_vat);
    let o = order(&uid("ORD"), &k);
    e.client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect("create");
    let package = std::fs::read(e.root.join(ARCHIVE).join(file_of(&o))).expect("archived");
    assert!(
        std::str::from_utf8(&package).is_err(),
        "the package is Windows-1250"
    );
    let text = encoding_rs::WINDOWS_1250.decode(&package).0.into_owned();
    assert!(
        text.contains(";buc;1;50;0;"),
        "net price with comma rules: {text}"
    );
    assert!(text.contains("Cană roşie ţesută"), "{text}");
    assert!(text.contains("\r\n"), "CRLF line ends");
}

#[tokio::test]
async fn utf8_with_dot_end_to_end() {
    let e = env_with(FileEncoding::Utf8, DecimalSeparator::Dot, |_| {});
    let k = sku(&uid("U8"));
    e.fake
        .seed_item(&k, "Ceașcă ȚȘ", Decimal::new(1234, 2), 3, "Magazin");
    let raw = std::fs::read_to_string(e.root.join("exports/stoc.txt")).expect("utf-8 export");
    assert!(
        raw.contains("Ceașcă ȚȘ") && raw.contains(";12.34;"),
        "{raw}"
    );
    let levels = e.client.stock(Some("Magazin")).await.expect("stock");
    assert_eq!(levels.len(), 1);
    assert_eq!(levels[0].quantity, Decimal::from(3));
    assert!(
        e.client
            .stock(Some("Depozit"))
            .await
            .expect("stock")
            .is_empty()
    );
    let mut o2 = order(&uid("ORD"), &k);
    o2.lines[0].unit_price_gross = Decimal::new(1234, 2);
    e.client
        .create_sales_document(&o2, &DocumentOptions::default())
        .await
        .expect("create");
    let text =
        std::fs::read_to_string(e.root.join(ARCHIVE).join(file_of(&o2))).expect("utf-8 package");
    assert!(text.contains(";buc;1;10.3697;0;"), "{text}");
    assert!(text.contains("Cană roșie țesută"), "{text}");
}

#[tokio::test]
async fn a_separator_mismatch_fails_visibly() {
    // The bridge writes commas, the connection is set to dots.
    let e = env_with(FileEncoding::Windows1250, DecimalSeparator::Comma, |c| {
        c.decimal_separator = DecimalSeparator::Dot;
    });
    e.fake
        .seed_item(&sku("SEP-1"), "Pahar", Decimal::new(5950, 2), 1, "Depozit");
    let err = e.client.catalog().await.expect_err("mismatch");
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert!(
        err.to_string().contains("exports/articole.txt line 2")
            && err.to_string().contains("decimal_separator"),
        "{err}"
    );
}

#[tokio::test]
async fn a_closed_month_is_refused_with_winmentors_message() {
    let e = env();
    let k = sku(&uid("CLOSED"));
    e.fake
        .seed_item(&k, "Raft", Decimal::new(9900, 2), 1, "Depozit");
    let o = order(&uid("ORD"), &k);
    let local = connectors::winmentor::convert::local_time(
        o.placed_at,
        connectors::winmentor::config::TimeZone::EuropeBucharest,
    );
    e.fake.close_month(local.year(), local.month());
    let err = e
        .client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect_err("closed");
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert!(err.to_string().contains("este inchisa"), "{err}");
}

#[tokio::test]
async fn new_partner_per_order_sends_the_customer_once() {
    let e = env_with(FileEncoding::Windows1250, DecimalSeparator::Comma, |c| {
        c.client_code = ClientCode::NewPartnerPerOrder {
            prefix: "MGZ".into(),
        };
    });
    let k = sku(&uid("PART"));
    e.fake
        .seed_item(&k, "Covor", Decimal::new(30000, 2), 2, "Depozit");
    let o = order(&uid("ORD"), &k);
    e.client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect("create");
    let imported = e.fake.orders();
    assert_eq!(imported.len(), 1);
    assert_eq!(
        imported[0].client,
        format!("MGZ{}", nr_doc(o.id.as_str(), 0, 9))
    );
    let package = std::fs::read(e.root.join(ARCHIVE).join(file_of(&o))).expect("archived");
    let text = encoding_rs::WINDOWS_1250.decode(&package).0.into_owned();
    assert!(text.contains("[ParteneriNoi_MGZ"), "{text}");
    assert!(text.contains("Denumire=Ana Popescu-Ştirbei"), "{text}");
}

#[tokio::test]
async fn returns_after_invoicing_are_for_the_merchant_and_write_nothing() {
    let e = env();
    let k = sku(&uid("REV"));
    e.fake
        .seed_item(&k, "Oglindă", Decimal::new(15000, 2), 2, "Depozit");
    let o = order(&uid("ORD"), &k);
    let doc = e
        .client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect("create");
    e.fake.merchant_invoices(&doc);
    assert!(e.fake.orders()[0].invoiced);
    let before = (files(&e.root, INBOX), files(&e.root, ARCHIVE));
    for kind in [
        ReturnKind::Reversal,
        ReturnKind::ReturnRequest,
        ReturnKind::Cancellation,
    ] {
        let event = ReturnEvent {
            event_id: format!("ev:{}:{kind:?}", o.id),
            order_id: o.id.clone(),
            kind,
            lines: vec![ReturnLine {
                sku: k.clone(),
                quantity: 1,
            }],
            reason: Some("defect".into()),
            at: Some(Utc::now()),
        };
        match e
            .client
            .register_return(&doc, &event)
            .await
            .expect("return")
        {
            ReturnOutcome::ForMerchant { evidence } => {
                let nr = doc.number.clone().expect("number");
                assert!(
                    evidence.contains(o.id.as_str()) && evidence.contains(&nr),
                    "{evidence}"
                );
                if kind != ReturnKind::Cancellation {
                    assert!(evidence.contains("storno"), "{evidence}");
                }
            }
            other => panic!("expected ForMerchant, got {other:?}"),
        }
    }
    assert_eq!((files(&e.root, INBOX), files(&e.root, ARCHIVE)), before);
    assert_no_fiscal_package(&e);
    assert_eq!(
        e.client
            .invoice_credited(&canonical::InvoicePdf {
                series: None,
                number: "1".into(),
                pdf: Vec::new(),
            })
            .await
            .expect("credited"),
        None
    );
}

#[tokio::test]
async fn company_mismatch_and_missing_root_are_reported() {
    let e = env_with(FileEncoding::Windows1250, DecimalSeparator::Comma, |c| {
        c.company = Some("Alta Firma SRL".into());
    });
    let err = e.client.stock(None).await.expect_err("other company");
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert!(
        err.to_string().contains("\"Firma Demo SRL\"")
            && err.to_string().contains("\"Alta Firma SRL\""),
        "{err}"
    );
    let gone = std::env::temp_dir().join(format!("winmentor-missing-{}", uuid::Uuid::new_v4()));
    let c = config(&gone, FileEncoding::Utf8, DecimalSeparator::Dot);
    let client = WinMentorClient::new(&c).expect("client");
    let err = client.stock(None).await.expect_err("no root");
    assert_eq!(err.class(), ErrorClass::Retryable, "{err}");
    assert!(err.to_string().contains("mounted"), "{err}");
    let k = sku("ANY-1");
    let err = client
        .create_sales_document(&order(&uid("ORD"), &k), &DocumentOptions::default())
        .await
        .expect_err("no root");
    assert_eq!(err.class(), ErrorClass::Retryable, "{err}");
    assert!(!gone.exists(), "the root is never created");
}

#[tokio::test]
async fn from_json_builds_and_refuses_credentials() {
    let root = temp_root();
    let settings = json!({
        "root": root, "encoding": "utf-8", "decimal_separator": ".",
        "client_code": {"strategy": "constant", "code": CLIENT},
    });
    let c = WinMentorClient::from_json(settings.clone(), &Map::new(), None).expect("client");
    assert_eq!(c.config().encoding, FileEncoding::Utf8);
    assert_eq!(c.system(), canonical::Erp::WinMentor);
    let mut creds = Map::new();
    creds.insert("api_key".into(), Value::String("secret-value".into()));
    let err = WinMentorClient::from_json(settings, &creds, None).expect_err("credentials");
    assert_eq!(err.class(), ErrorClass::Config);
    assert!(
        err.to_string().contains("`api_key`") && !err.to_string().contains("secret-value"),
        "{err}"
    );
    let err = WinMentorClient::from_json(Value::Null, &Map::new(), None).expect_err("null");
    assert!(err.to_string().contains("root"), "{err}");
    let err = WinMentorClient::from_json(json!({"root": root, "client_code": {"strategy": "constant", "code": "X"}, "encoding": "cp852"}), &Map::new(), None)
        .expect_err("bad encoding");
    assert!(err.to_string().contains("`encoding`"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}
