//! Charisma: every shared ERP conformance check through the real client against the fake, then
//! the Charisma-specific behaviour (SOAP faults, partners, cities, recovery by `ExternalId`,
//! `ApplicationId`, garbled envelopes, SOAP 1.2, credentials).

#![cfg(feature = "charisma")]

use std::collections::BTreeMap;
use std::sync::Arc;

use canonical::{
    ChannelOrderId, Contact, Country, Currency, Order, OrderLine, OrderStatus, ReturnEvent,
    ReturnKind, Sku, VatRate,
};
use chrono::Utc;
use connectors::ErrorClass;
use connectors::charisma::fake::{
    FakeFaults, FakeSettings, GENERIC_ADDRESS_ID, GENERIC_PARTNER_ID, SERVICE_PATH, SeedItem,
    SeedPartner,
};
use connectors::charisma::soap::SoapVersion;
use connectors::charisma::{
    CharismaClient, CharismaFake, Config, Credentials, DEMO_APPLICATION_ID, Operations,
    PartnerStrategy,
};
use connectors::conformance::{self, ErpFake, ErpSetup, Recovery};
use connectors::erp::{DocumentOptions, Erp, Lookup, ReturnOutcome};
use connectors::fake::{Running, serve};
use connectors::http::HttpSettings;
use rust_decimal::Decimal;
use serde_json::{Map, json};

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

fn contact(city: &str, tax_id: Option<&str>) -> Contact {
    Contact {
        name: "Ana Popescu".into(),
        company: tax_id.map(|_| "Firma Test SRL".into()),
        email: Some("ana@example.ro".into()),
        phone: Some("+40722000000".into()),
        address_line1: "Str. Lalelelor 3".into(),
        address_line2: None,
        city: city.into(),
        postal_code: "040000".into(),
        region: Some("Bucuresti".into()),
        country: Some(Country::RO),
        tax_id: tax_id.map(str::to_owned),
    }
}

fn order_with(id: &str, lines: &[(&Sku, u32, Decimal, u32)], customer: Contact) -> Order {
    let lines: Vec<OrderLine> = lines
        .iter()
        .map(|(s, q, p, v)| OrderLine {
            line_id: None,
            sku: (*s).clone(),
            title: format!("Article {s}"),
            quantity: *q,
            unit_price_gross: *p,
            vat: VatRate::percent(Decimal::from(*v)).expect("vat"),
        })
        .collect();
    let total = lines
        .iter()
        .map(|l| l.unit_price_gross * Decimal::from(l.quantity))
        .sum();
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
        lines,
        shipping_fee_gross: Decimal::ZERO,
        total_gross: total,
        customer: customer.clone(),
        ship_to: customer,
        tracking: Vec::new(),
    }
}

/// An order Charisma accepts: two units at 59.50 gross, 19 % VAT.
fn order(id: &str, s: &Sku) -> Order {
    order_with(
        id,
        &[(s, 2, Decimal::new(5950, 2), 19)],
        contact("Bucuresti Sector 4", None),
    )
}

/// The article of the invalid order: sold at 5 %, which `vat_ids` maps to a VATId the
/// installation does not have.
const INVALID_SKU: &str = "CONF-VAT-5";

fn invalid_order() -> Order {
    order_with(
        "CONF-INVALID-1",
        &[(&sku(INVALID_SKU), 1, Decimal::new(2100, 2), 5)],
        contact("Bucuresti Sector 4", None),
    )
}

struct Env {
    setup: ErpSetup,
    fake: Arc<CharismaFake>,
    client: Arc<CharismaClient>,
    config: Config,
    _running: Running,
}

impl Env {
    fn client_with(&self, app_id: &str, change: impl FnOnce(&mut Config)) -> CharismaClient {
        let mut c = self.config.clone();
        change(&mut c);
        CharismaClient::new(&c, Credentials::new(app_id).expect("creds"), None).expect("client")
    }

    fn requests(&self) -> u64 {
        self.fake.harness().stats().requests
    }

    fn seed(&self, code: &str) -> Sku {
        let k = sku(code);
        self.fake
            .seed_item(&k, "Test article", Decimal::new(5950, 2), 3, "Depozit");
        k
    }
}

async fn env_with(change: impl FnOnce(&mut Config)) -> Env {
    let fake = CharismaFake::new();
    let running = serve(fake.router(), "127.0.0.1:0")
        .await
        .expect("serve fake");
    let mut config = Config {
        endpoint: format!("{}{SERVICE_PATH}", running.base_url()),
        http: http(),
        partner: PartnerStrategy::Generic {
            partner_id: GENERIC_PARTNER_ID.into(),
            billing_address_id: Some(GENERIC_ADDRESS_ID.into()),
        },
        vat_ids: BTreeMap::from([("19".into(), "28".into()), ("5".into(), "999".into())]),
        currency_ids: BTreeMap::from([(Currency::Ron, "25".into()), (Currency::Eur, "26".into())]),
        operations: Operations {
            get_order: Some("getOrder".into()),
            ..Operations::default()
        },
        ..Config::default()
    };
    change(&mut config);
    fake.seed_item_with(&SeedItem {
        code: INVALID_SKU.into(),
        gross: Some(Decimal::new(2100, 2)),
        vat_percent: Decimal::from(5),
        ..SeedItem::default()
    })
    .expect("seed invalid article");
    let creds = Credentials::new(DEMO_APPLICATION_ID).expect("credentials");
    let client = Arc::new(CharismaClient::new(&config, creds, None).expect("client"));
    let wrong = Credentials::new("not-the-application-id").expect("credentials");
    let bad_auth = Arc::new(CharismaClient::new(&config, wrong, None).expect("client"));
    let recovery = if config.operations.get_order.is_some() {
        Recovery::Finds
    } else {
        Recovery::ParksForReview
    };
    let setup = ErpSetup {
        client: client.clone(),
        bad_auth: Some(bad_auth),
        fake: fake.clone(),
        order,
        options: DocumentOptions::default(),
        invalid: (invalid_order(), "Unknown VATId '999'"),
        recovery,
    };
    Env {
        setup,
        fake,
        client,
        config,
        _running: running,
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
    erp_catalog_and_stock,
    erp_create_then_find,
    erp_ambiguous_create_makes_no_second_document,
    erp_invoice_pdf,
    erp_returns,
    erp_errors,
);

/// Without a lookup operation the same checks hold with recovery parked for review.
#[tokio::test]
async fn without_a_lookup_recovery_parks_for_review() {
    let e = env_with(|c| c.operations.get_order = None).await;
    e.fake.set_settings(FakeSettings {
        lookup_operation: None,
        ..FakeSettings::default()
    });
    assert_eq!(e.setup.recovery, Recovery::ParksForReview);
    conformance::erp_create_then_find(&e.setup).await;
    conformance::erp_ambiguous_create_makes_no_second_document(&e.setup).await;
    let o = order("NEVER-1", &sku("X-1"));
    let before = e.requests();
    match e.client.find_sales_document(&o).await.expect("lookup") {
        Lookup::NeedsReview { evidence } => {
            assert!(evidence.contains("MGZ-NEVER-1"), "{evidence}");
            assert!(evidence.contains("operations.get_order"), "{evidence}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.requests(), before, "no call is made without a lookup");
}

#[tokio::test]
async fn created_orders_carry_the_contract_fields() {
    let e = env().await;
    let k = e.seed("DOC-FIELDS-1");
    let o = order("ORD-FIELDS-1", &k);
    let doc = e
        .client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect("create");
    assert_eq!(doc.kind, canonical::SalesDocumentKind::CustomerOrder);
    assert_eq!(doc.total_gross, Decimal::new(11900, 2));
    assert_eq!(doc.currency, Currency::Ron);
    let orders = e.fake.orders_for("ORD-FIELDS-1");
    assert_eq!(orders.len(), 1);
    let fo = &orders[0];
    assert_eq!(doc.erp_id, fo.order_id.to_string());
    assert_eq!(doc.number.as_deref(), Some(fo.number.as_str()));
    assert_eq!(fo.external_id, "MGZ-ORD-FIELDS-1");
    assert_eq!(fo.state, "Draft");
    assert_eq!(fo.payment_type, "Card");
    assert_eq!(fo.partner_id, GENERIC_PARTNER_ID);
    assert_eq!(fo.lines.len(), 1);
    assert_eq!(fo.lines[0].external_id, "MGZ-ORD-FIELDS-1-1");
    assert_eq!(fo.lines[0].vat_id, "28");
    assert_eq!(fo.lines[0].currency_id, "25");
    assert_eq!(fo.lines[0].quantity, Decimal::from(2));
}

#[tokio::test]
async fn shipping_needs_a_service_article() {
    let e = env().await;
    let k = e.seed("SHIP-GOODS-1");
    let mut o = order("ORD-SHIP-1", &k);
    o.shipping_fee_gross = Decimal::new(1500, 2);
    let err = e
        .client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect_err("no shipping article configured");
    assert_eq!(err.class(), ErrorClass::Config, "{err}");
    assert!(err.to_string().contains("shipping_item_code"), "{err}");
    assert_eq!(e.fake.documents_for(&o.id), 0);
    e.seed("TRANSPORT");
    let c = e.client_with(DEMO_APPLICATION_ID, |c| {
        c.shipping_item_code = Some("TRANSPORT".into())
    });
    let doc = c
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect("create with shipping");
    assert_eq!(doc.total_gross, Decimal::new(13400, 2));
    let lines = &e.fake.orders_for("ORD-SHIP-1")[0].lines;
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1].external_id, "MGZ-ORD-SHIP-1-SHIP");
}

#[tokio::test]
async fn unknown_item_vat_and_city_are_permanent_with_the_faultstring() {
    let e = env().await;
    // Unknown VATId: the fake's fault text, verbatim.
    let err = e
        .client
        .create_sales_document(&invalid_order(), &DocumentOptions::default())
        .await
        .expect_err("unknown VATId");
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert!(err.to_string().contains("Unknown VATId '999'"), "{err}");

    // Unknown ItemId: the cached nomenclature has an article Charisma has since removed.
    let k = e.seed("GONE-1");
    e.client
        .create_sales_document(&order("ORD-GONE-1", &k), &DocumentOptions::default())
        .await
        .expect("create while the article exists");
    assert!(e.fake.delete_item("GONE-1"));
    let err = e
        .client
        .create_sales_document(&order("ORD-GONE-2", &k), &DocumentOptions::default())
        .await
        .expect_err("stale ItemId");
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert!(err.to_string().contains("Unknown ItemId"), "{err}");
    // The refusal dropped the cache: the next attempt reads the nomenclature and says why.
    let err = e
        .client
        .create_sales_document(&order("ORD-GONE-2", &k), &DocumentOptions::default())
        .await
        .expect_err("article gone");
    assert!(
        err.to_string().contains("not in Charisma's nomenclature"),
        "{err}"
    );
    assert_eq!(
        e.fake
            .documents_for(&ChannelOrderId::new("ORD-GONE-2").unwrap()),
        0
    );

    // Unknown CityId: the configured fallback is not a Charisma locality.
    let per_customer = |fallback: Option<&str>| {
        let fallback = fallback.map(str::to_owned);
        e.client_with(DEMO_APPLICATION_ID, move |c| {
            c.partner = PartnerStrategy::PerCustomer {
                fallback_city_id: fallback,
            }
        })
    };
    let k = e.seed("CITY-1");
    let o = order_with(
        "ORD-CITY-1",
        &[(&k, 1, Decimal::new(5950, 2), 19)],
        contact("Atlantis", None),
    );
    let err = per_customer(Some("99999"))
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect_err("unknown CityId");
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert!(err.to_string().contains("Unknown CityId '99999'"), "{err}");
    let err = per_customer(None)
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect_err("city not matched, no fallback");
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert!(err.to_string().contains("fallback_city_id"), "{err}");
    assert_eq!(e.fake.documents_for(&o.id), 0);
}

#[tokio::test]
async fn partners_per_customer_are_found_or_created_once() {
    let e = env_with(|c| {
        c.partner = PartnerStrategy::PerCustomer {
            fallback_city_id: None,
        }
    })
    .await;
    let k = e.seed("PARTNER-1");
    let before = e.fake.partners().len();
    // A company: by its VAT id, created once and found the second time.
    let company = |id: &str| {
        order_with(
            id,
            &[(&k, 1, Decimal::new(5950, 2), 19)],
            contact("Cluj-Napoca", Some("ro 123 456")),
        )
    };
    e.client
        .create_sales_document(&company("ORD-PJ-1"), &DocumentOptions::default())
        .await
        .expect("first company order");
    e.client
        .create_sales_document(&company("ORD-PJ-2"), &DocumentOptions::default())
        .await
        .expect("second company order");
    let partners = e.fake.partners();
    assert_eq!(partners.len(), before + 1, "one partner for the company");
    let pj = partners.last().unwrap();
    assert_eq!(pj.fiscal_registration, "RO123456");
    assert_eq!(pj.partner_type, "PJ");
    assert_eq!(pj.name, "Firma Test SRL");
    assert_eq!(pj.city_id, "1010", "Cluj-Napoca matched by name");
    for id in ["ORD-PJ-1", "ORD-PJ-2"] {
        assert_eq!(
            e.fake.orders_for(id)[0].partner_id,
            pj.partner_id.to_string()
        );
    }
    // A private person: a partner per order, its ExternalId as FiscalRegistration.
    let person = order_with(
        "ORD-PF-1",
        &[(&k, 1, Decimal::new(5950, 2), 19)],
        contact("Iasi", None),
    );
    e.client
        .create_sales_document(&person, &DocumentOptions::default())
        .await
        .expect("person order");
    let pf = e.fake.partners().last().cloned().unwrap();
    assert_eq!(pf.partner_type, "PF");
    assert_eq!(pf.fiscal_registration, "MGZ-P-ORD-PF-1");
    assert_eq!(pf.external_id, "MGZ-P-ORD-PF-1");
    assert_eq!(pf.city_id, "1200", "Iasi matched Iași");
}

#[tokio::test]
async fn a_duplicate_partner_fault_resolves_to_the_existing_partner() {
    let e = env_with(|c| {
        c.partner = PartnerStrategy::PerCustomer {
            fallback_city_id: Some("420".into()),
        }
    })
    .await;
    let existing = e.fake.seed_partner(&SeedPartner {
        fiscal_registration: "RO999".into(),
        name: "Firma Existenta SRL".into(),
        ..SeedPartner::default()
    });
    let before = e.fake.partners().len();
    // The lookup lags (misses the partner), so createPartner meets the duplicate fault.
    e.fake.add_faults(&FakeFaults {
        stale_partner_lookup: 1,
        ..FakeFaults::default()
    });
    let k = e.seed("DUP-PARTNER-1");
    let o = order_with(
        "ORD-DUP-P-1",
        &[(&k, 1, Decimal::new(5950, 2), 19)],
        contact("Bucuresti Sector 4", Some("RO999")),
    );
    e.client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect("booked to the existing partner");
    assert_eq!(e.fake.partners().len(), before, "no second partner");
    assert_eq!(
        e.fake.orders_for("ORD-DUP-P-1")[0].partner_id,
        existing.to_string()
    );
}

#[tokio::test]
async fn an_ambiguous_create_is_recovered_by_external_id() {
    let e = env_with(|c| c.external_id_unique = true).await;
    let k = e.seed("AMB-EXT-1");
    let o = order("ORD-AMB-EXT-1", &k);
    e.fake.commit_then_timeout_next();
    let err = e
        .client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect_err("times out");
    assert_eq!(err.class(), ErrorClass::InDoubt, "{err}");
    let found = match e.client.find_sales_document(&o).await.expect("lookup") {
        Lookup::Found(d) => d,
        other => panic!("{other:?}"),
    };
    // With ExternalId uniqueness guaranteed, even a blind repeat returns the same order.
    let again = e
        .client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect("the duplicate fault names the order");
    assert_eq!(again.erp_id, found.erp_id);
    assert_eq!(e.fake.documents_for(&o.id), 1);
    // Without that guarantee, the repeat is refused with Charisma's text (still one order).
    let plain = e.client_with(DEMO_APPLICATION_ID, |c| c.external_id_unique = false);
    let err = plain
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect_err("duplicate");
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert!(
        err.to_string()
            .contains("Duplicate ExternalId MGZ-ORD-AMB-EXT-1"),
        "{err}"
    );
    assert_eq!(e.fake.documents_for(&o.id), 1);
}

#[tokio::test]
async fn an_invalid_application_id_is_auth_and_never_shown() {
    let e = env().await;
    let secret = "S3CRET-APPLICATION-ID";
    let bad = e.client_with(secret, |_| {});
    let before = e.requests();
    let err = bad.catalog().await.expect_err("refused");
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    assert!(err.to_string().contains("Invalid ApplicationId"), "{err}");
    assert_eq!(e.requests() - before, 1, "an auth fault is not retried");
    let err = bad
        .create_sales_document(
            &order("ORD-AUTH-1", &sku("X-1")),
            &DocumentOptions::default(),
        )
        .await
        .expect_err("refused");
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    for shown in [format!("{bad:?}"), format!("{err:?}"), err.to_string()] {
        assert!(!shown.contains(secret), "{shown}");
    }
    let creds = Credentials::new(secret).unwrap();
    assert!(!format!("{creds:?}").contains(secret));
    let mut m = Map::new();
    m.insert("application_id".into(), json!(secret));
    let from_json = CharismaClient::from_json(json!(e.config), &m, None).expect("from_json");
    assert!(!format!("{from_json:?}").contains(secret));
    assert!(format!("{from_json:?}").contains("[redacted]"));
}

#[tokio::test]
async fn garbled_envelopes_fail_visibly() {
    let e = env().await;
    let k = e.seed("GARBLE-1");
    e.fake.harness().update_faults(|f| f.next_garbage = 3);
    let err = e.client.catalog().await.expect_err("garbage");
    assert_eq!(err.class(), ErrorClass::Retryable, "{err}");
    assert!(
        err.to_string().contains("Cloudflare"),
        "the body is shown: {err}"
    );
    assert!(err.to_string().contains("not a SOAP envelope"), "{err}");
    e.fake
        .harness()
        .set_faults(connectors::fake::Faults::default());
    // Prime the nomenclature so the next create's first call is createOrder itself.
    e.client
        .create_sales_document(&order("ORD-GARBLE-0", &k), &DocumentOptions::default())
        .await
        .expect("create");
    e.fake.harness().update_faults(|f| f.next_garbage = 1);
    let o = order("ORD-GARBLE-1", &k);
    let err = e
        .client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect_err("garbage after the create");
    assert_eq!(err.class(), ErrorClass::InDoubt, "{err}");
    assert!(err.to_string().contains("Cloudflare"), "{err}");
    assert!(matches!(
        e.client.find_sales_document(&o).await.expect("lookup"),
        Lookup::Found(_)
    ));
}

#[tokio::test]
async fn server_faults_are_retried_on_reads_and_in_doubt_on_creates() {
    let e = env().await;
    let k = e.seed("SRV-1");
    e.fake.add_faults(&FakeFaults {
        server_fault: 1,
        ..FakeFaults::default()
    });
    let before = e.requests();
    e.client
        .catalog()
        .await
        .expect("retried after one server fault");
    assert!(e.requests() - before >= 3, "GetItem twice, then getPrice");
    e.fake.add_faults(&FakeFaults {
        server_fault: 10,
        ..FakeFaults::default()
    });
    let err = e.client.catalog().await.expect_err("always failing");
    assert_eq!(err.class(), ErrorClass::Retryable, "{err}");
    assert!(err.to_string().contains("Timeout expired"), "{err}");
    e.fake.clear_faults();
    e.client
        .create_sales_document(&order("ORD-SRV-0", &k), &DocumentOptions::default())
        .await
        .expect("prime");
    e.fake.add_faults(&FakeFaults {
        server_fault: 1,
        ..FakeFaults::default()
    });
    let o = order("ORD-SRV-1", &k);
    let err = e
        .client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect_err("server fault on create");
    assert_eq!(err.class(), ErrorClass::InDoubt, "{err}");
}

#[tokio::test]
async fn soap_12_works_end_to_end() {
    let e = env_with(|c| c.soap_version = SoapVersion::V12).await;
    let k = e.seed("V12-1");
    let o = order("ORD-V12-1", &k);
    let doc = e
        .client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect("create over 1.2");
    match e.client.find_sales_document(&o).await.expect("lookup") {
        Lookup::Found(d) => assert_eq!(d.erp_id, doc.erp_id),
        other => panic!("{other:?}"),
    }
    let err = e
        .client_with("wrong", |_| {})
        .catalog()
        .await
        .expect_err("auth");
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    assert_eq!(err.status(), Some(400), "1.2 sender faults are 400");
}

#[tokio::test]
async fn catalog_maps_prices_currencies_and_checks_references() {
    let e = env().await;
    e.fake.seed_demo();
    let items = e.client.catalog().await.expect("catalog");
    let chair = items
        .iter()
        .find(|i| i.sku.as_str() == "MGZ-CHAIR-05")
        .expect("EUR article");
    assert_eq!(chair.currency, Currency::Eur);
    assert!(chair.price_includes_vat);
    assert_eq!(chair.price, Decimal::new(24900, 2));
    let book = items
        .iter()
        .find(|i| i.sku.as_str() == "MGZ-BOOK-03")
        .unwrap();
    assert_eq!(book.vat, Some(VatRate::percent(Decimal::from(5)).unwrap()));
    assert_eq!(book.unit, "buc");
    // EUR not configured: its articles are left out, the rest stays.
    let ron_only = e.client_with(DEMO_APPLICATION_ID, |c| {
        c.currency_ids.remove(&Currency::Eur);
    });
    let items = ron_only.catalog().await.expect("catalog");
    assert!(items.iter().all(|i| i.sku.as_str() != "MGZ-CHAIR-05"));
    assert!(items.iter().any(|i| i.sku.as_str() == "MGZ-MUG-01"));
    let report = ron_only.check_references().await.expect("references");
    assert_eq!(report.unused_vat_ids, vec!["999".to_owned()]);
    assert_eq!(report.unmapped_currency_ids.get("26"), Some(&1));
    // A VATId configured at the wrong rate is refused, naming the setting.
    let wrong = e.client_with(DEMO_APPLICATION_ID, |c| {
        c.vat_ids.insert("9".into(), "28".into());
    });
    let err = wrong.check_references().await.expect_err("28 is 19 %");
    assert_eq!(err.class(), ErrorClass::Config, "{err}");
    assert!(
        err.to_string().contains("vat_ids: 9 % maps to VATId 28"),
        "{err}"
    );
}

#[tokio::test]
async fn stock_and_pdfs_are_unsupported_and_returns_go_to_the_merchant() {
    let e = env().await;
    let err = e.client.stock(Some("Depozit")).await.expect_err("no stock");
    assert_eq!(err.class(), ErrorClass::Unsupported);
    assert!(err.to_string().contains("stock"), "{err}");
    let k = e.seed("RET-1");
    let o = order("ORD-RET-1", &k);
    let doc = e
        .client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect("create");
    let err = e.client.invoice_pdf(&doc).await.expect_err("no pdf");
    assert_eq!(err.class(), ErrorClass::Unsupported);
    let event = ReturnEvent {
        event_id: "r-1".into(),
        order_id: o.id.clone(),
        kind: ReturnKind::ReturnRequest,
        lines: vec![canonical::ReturnLine {
            sku: k.clone(),
            quantity: 1,
        }],
        reason: Some("damaged".into()),
        at: None,
    };
    match e
        .client
        .register_return(&doc, &event)
        .await
        .expect("return")
    {
        ReturnOutcome::ForMerchant { evidence } => {
            for needle in [
                "ORD-RET-1",
                "MGZ-ORD-RET-1",
                doc.erp_id.as_str(),
                "1 × RET-1",
                "damaged",
            ] {
                assert!(evidence.contains(needle), "{needle} in {evidence}");
            }
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e.fake.documents_for(&o.id),
        1,
        "nothing was created for the return"
    );
}

#[tokio::test]
async fn configuration_mistakes_are_named() {
    let e = env().await;
    let m = Map::from_iter([("application_id".to_owned(), json!(DEMO_APPLICATION_ID))]);
    let err = CharismaClient::from_json(json!({"endpoint": "x"}), &m, None).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Config);
    assert!(err.to_string().contains("endpoint"), "{err}");
    let err = CharismaClient::from_json(serde_json::Value::Null, &m, None).unwrap_err();
    assert!(err.to_string().contains("endpoint must be set"), "{err}");
    let err = CharismaClient::from_json(json!({"surprise": 1}), &m, None).unwrap_err();
    assert!(err.to_string().contains("surprise"), "{err}");
    // A wrong path on the server: the service's 404, permanent.
    let wrong = e.client_with(DEMO_APPLICATION_ID, |c| {
        c.endpoint = c.endpoint.replace("Service.svc", "Nope.svc")
    });
    let err = wrong.catalog().await.expect_err("404");
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert_eq!(err.status(), Some(404));
    // An order in a currency without a CurrencyId is refused before any call.
    let mut o = order("ORD-SEK-1", &sku("X-1"));
    o.currency = Currency::Sek;
    let before = e.requests();
    let err = e
        .client
        .create_sales_document(&o, &DocumentOptions::default())
        .await
        .expect_err("SEK");
    assert_eq!(err.class(), ErrorClass::Config, "{err}");
    assert!(err.to_string().contains("currency_ids"), "{err}");
    assert_eq!(e.requests(), before);
}
