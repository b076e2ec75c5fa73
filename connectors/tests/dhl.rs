//! DHL (MyDHL API) through the real client against the fake: every courier conformance check,
//! then the DHL-specific behaviour (in-doubt recovery with the AWB count, schema errors, the
//! client-side refusals, tracking lag, credentials never shown).

#![cfg(feature = "dhl")]

use std::sync::Arc;

use canonical::{
    Contact, Country, Currency, CustomsLine, Money, Package, ParcelState, ShipmentRequest, Sku,
};
use chrono::Utc;
use connectors::conformance::{self, CourierFake, CourierSetup};
use connectors::courier::Courier;
use connectors::dhl::config::{Config, Credentials};
use connectors::dhl::fake::{
    DEMO_ACCOUNT, DEMO_PASSWORD, DEMO_USERNAME, DhlFake, NORDIC_ACCOUNT, Stage,
};
use connectors::dhl::{DhlClient, Recovery};
use connectors::fake::{Faults, Limits, RateRule, Running, serve};
use connectors::http::{Http, HttpSettings, Safety};
use connectors::{ErrorClass, Flow};
use reqwest::Method;
use rust_decimal::dec;
use serde_json::{Value, json};

fn settings() -> HttpSettings {
    HttpSettings {
        timeout_ms: 1000,
        connect_timeout_ms: 500,
        inline_retries: 2,
        max_inline_wait_ms: 3000,
        backoff_base_ms: 50,
    }
}

fn config(base_url: &str) -> Config {
    Config {
        base_url: base_url.to_owned(),
        http: settings(),
        ..Config::new(DEMO_ACCOUNT)
    }
}

fn client(base_url: &str, username: &str, password: &str) -> DhlClient {
    DhlClient::new(
        &config(base_url),
        Credentials::new(username, password),
        None,
    )
    .expect("client")
}

fn contact(name: &str, country: Country, postal: &str, city: &str) -> Contact {
    Contact {
        name: name.into(),
        company: None,
        email: Some("buyer@example.com".into()),
        phone: Some("+46700000001".into()),
        address_line1: "Storgatan 1".into(),
        address_line2: None,
        city: city.into(),
        postal_code: postal.into(),
        region: None,
        country: Some(country),
        tax_id: None,
    }
}

fn shipper() -> Contact {
    Contact {
        company: Some("Megzo Shop SRL".into()),
        phone: Some("+40722000000".into()),
        address_line1: "Str. Fabricii 10".into(),
        ..contact("Ion Ionescu", Country::RO, "400001", "Cluj-Napoca")
    }
}

fn request_to(reference: &str, receiver: Contact) -> ShipmentRequest {
    ShipmentRequest {
        reference: reference.to_owned(),
        shipper: shipper(),
        receiver,
        packages: vec![Package {
            weight_kg: dec!(1.5),
            dimensions_cm: Some((30, 20, 15)),
        }],
        description: "Kitchenware".into(),
        declared_value: Money::new(dec!(59.90), Currency::Eur),
        lines: vec![],
        ship_at: Utc::now() + chrono::Duration::hours(1),
        invoice_number: None,
    }
}

fn request_eu(reference: &str) -> ShipmentRequest {
    request_to(
        reference,
        contact("Anna Svensson", Country::SE, "111 22", "Stockholm"),
    )
}

fn request_non_eu(reference: &str) -> ShipmentRequest {
    let mut r = request_to(
        reference,
        contact("Ola Nordmann", Country::NO, "0150", "Oslo"),
    );
    r.declared_value = Money::new(dec!(699), Currency::Nok);
    r.invoice_number = Some("MGZ-2026-0042".into());
    r.lines = vec![
        CustomsLine {
            sku: Sku::new("MUG-BLUE").unwrap(),
            description: "Ceramic mug, blue".into(),
            quantity: 2,
            unit_value: dec!(199.5),
            weight_kg: dec!(0.35),
            hs_code: Some("6912.00".into()),
            origin: Country::RO,
        },
        CustomsLine {
            sku: Sku::new("PLATE-1").unwrap(),
            description: "Stoneware plate".into(),
            quantity: 1,
            unit_value: dec!(300),
            weight_kg: dec!(0.6),
            hs_code: None,
            origin: Country::RO,
        },
    ];
    r
}

fn invalid() -> (ShipmentRequest, &'static str) {
    // Passes every client-side check; DHL (the fake) refuses the Swedish postal code.
    let r = request_to(
        "CONF-INVALID-1",
        contact("Anna Svensson", Country::SE, "ABC12", "Stockholm"),
    );
    (r, "is invalid for country SE")
}

struct Env {
    setup: CourierSetup,
    fake: Arc<DhlFake>,
    client: DhlClient,
    running: Running,
}

async fn env() -> Env {
    let fake = DhlFake::new();
    let running = serve(fake.router(), "127.0.0.1:0").await.expect("serve");
    let base = running.base_url();
    let client = client(&base, DEMO_USERNAME, DEMO_PASSWORD);
    let bad = client_bad(&base);
    let setup = CourierSetup {
        client: Arc::new(client.clone()),
        bad_auth: Arc::new(bad),
        fake: fake.clone(),
        request_eu,
        request_non_eu,
        invalid: invalid(),
    };
    Env {
        setup,
        fake,
        client,
        running,
    }
}

fn client_bad(base: &str) -> DhlClient {
    client(base, DEMO_USERNAME, "not-the-Passw0rd")
}

fn reference(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

// --- the shared courier conformance suite, one test per check --------------------------------

#[tokio::test]
async fn conformance_create_find_track() {
    let e = env().await;
    conformance::create_find_track(&e.setup).await;
}

#[tokio::test]
async fn conformance_non_eu_needs_customs() {
    let e = env().await;
    conformance::non_eu_needs_customs(&e.setup).await;
}

#[tokio::test]
async fn conformance_refusals_are_permanent() {
    let e = env().await;
    conformance::refusals_are_permanent(&e.setup).await;
}

#[tokio::test]
async fn conformance_ambiguous_create_resolves_by_reference() {
    let e = env().await;
    conformance::ambiguous_create_resolves_by_reference(&e.setup).await;
}

#[tokio::test]
async fn conformance_throttling_and_server_errors() {
    let e = env().await;
    conformance::throttling_and_server_errors(&e.setup).await;
}

// --- DHL-specific -----------------------------------------------------------------------------

/// The create commits, then the answer never comes: in doubt, not repeated, found by its
/// reference, one AWB minted, and the in-doubt rule says "use it".
#[tokio::test]
async fn commit_then_timeout_is_in_doubt_and_resolved_by_reference_never_a_second_awb() {
    let e = env().await;
    let h = e.fake.harness();
    let r = reference("ORD-AMB");
    let request = request_eu(&r);
    assert_eq!(e.fake.minted(), 0);
    h.update_faults(|f| {
        f.next_commit_then_timeout = 1;
        f.hang_ms = Some(2_000);
    });
    let before = h.stats().requests;
    let attempted_at = Utc::now();
    let err = e
        .client
        .create_shipment(&request)
        .await
        .expect_err("the answer never arrives");
    h.set_faults(Faults::default());
    assert_eq!(err.class(), ErrorClass::InDoubt, "{err}");
    assert!(err.to_string().contains("look it up"), "{err}");
    assert_eq!(
        h.stats().requests - before,
        1,
        "the create was not repeated"
    );
    assert_eq!(
        e.fake.minted(),
        1,
        "DHL did mint the AWB the client never saw"
    );

    let found = e
        .client
        .find_by_reference(&r, request.ship_at)
        .await
        .expect("lookup")
        .expect("the lost shipment is found");
    assert_eq!(e.fake.awbs_for(&r), vec![found.awb.clone()]);
    assert!(found.label_pdf.is_empty(), "a lookup carries no label");
    assert!(
        found
            .tracking_url
            .as_deref()
            .unwrap_or("")
            .contains(&found.awb)
    );

    match e
        .client
        .resolve_in_doubt(&r, attempted_at, request.ship_at)
        .await
        .expect("resolve")
    {
        Recovery::Found(s) => assert_eq!(s.awb, found.awb),
        other => panic!("expected Found, got {other:?}"),
    }
    assert_eq!(e.fake.minted(), 1, "recovery never creates");
    assert_eq!(e.fake.awbs_for(&r).len(), 1, "never a second AWB");
}

/// MyDHL has no idempotency: the fake mints a new AWB on every POST, so a blind retry would
/// make two (this is why the client never retries a create after an ambiguous failure).
#[tokio::test]
async fn every_post_mints_a_new_awb_so_blind_retries_would_duplicate() {
    let e = env().await;
    let r = reference("ORD-DUP");
    let a = e
        .client
        .create_shipment(&request_eu(&r))
        .await
        .expect("first");
    let b = e
        .client
        .create_shipment(&request_eu(&r))
        .await
        .expect("second");
    assert_ne!(a.awb, b.awb);
    assert_eq!(e.fake.awbs_for(&r), vec![a.awb.clone(), b.awb.clone()]);
    // The lookup returns the oldest of the two.
    let found = e
        .client
        .find_by_reference(&r, Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.awb, a.awb);
}

/// Tracking lag: a shipment invisible to the lookup right after an in-doubt create means
/// "look again later", never "create again".
#[tokio::test]
async fn lookup_lag_means_look_again_later_not_create_again() {
    let e = env().await;
    e.fake.set_lookup_lag(true);
    let h = e.fake.harness();
    let r = reference("ORD-LAG");
    let request = request_eu(&r);
    h.update_faults(|f| {
        f.next_commit_then_timeout = 1;
        f.hang_ms = Some(2_000);
    });
    let attempted_at = Utc::now();
    let err = e
        .client
        .create_shipment(&request)
        .await
        .expect_err("in doubt");
    h.set_faults(Faults::default());
    assert_eq!(err.class(), ErrorClass::InDoubt, "{err}");
    match e
        .client
        .resolve_in_doubt(&r, attempted_at, request.ship_at)
        .await
        .unwrap()
    {
        Recovery::LookAgainAt(at) => {
            let wait = at - attempted_at;
            assert_eq!(wait.num_minutes(), 30, "the default settle window");
        }
        other => panic!("expected LookAgainAt, got {other:?}"),
    }
    assert_eq!(e.fake.minted(), 1);
    // Once DHL shows it (first checkpoint), the lookup finds it.
    let awb = e.fake.awbs_for(&r).remove(0);
    e.fake.advance_to(&awb, Stage::InTransit);
    match e
        .client
        .resolve_in_doubt(&r, attempted_at, request.ship_at)
        .await
        .unwrap()
    {
        Recovery::Found(s) => assert_eq!(s.awb, awb),
        other => panic!("expected Found, got {other:?}"),
    }
}

/// A garbled 2xx to a create is in doubt too: the shipment exists.
#[tokio::test]
async fn garbled_answer_to_a_create_is_in_doubt() {
    let e = env().await;
    let r = reference("ORD-GRB");
    e.fake.harness().update_faults(|f| f.next_garbage = 1);
    let err = e
        .client
        .create_shipment(&request_eu(&r))
        .await
        .expect_err("garbage");
    assert_eq!(err.class(), ErrorClass::InDoubt, "{err}");
    assert!(
        err.to_string().contains("Cloudflare"),
        "the body is shown: {err}"
    );
    assert_eq!(e.fake.awbs_for(&r).len(), 1);
    let found = e.client.find_by_reference(&r, Utc::now()).await.unwrap();
    assert_eq!(found.map(|s| s.awb), e.fake.awbs_for(&r).pop());
}

/// A schema error (422) lists every problem DHL found; a missing x-version is a 400.
#[tokio::test]
async fn schema_errors_list_the_details() {
    let e = env().await;
    let http = Http::new(
        "dhl",
        &settings(),
        None,
        connectors::dhl::errors::error_body,
    )
    .unwrap();
    let url = format!("{}/shipments", e.running.base_url());
    let mut body = serde_json::to_value(
        connectors::dhl::convert::create_request(
            &config("http://x"),
            &request_eu("ORD-422"),
            Utc::now(),
        )
        .unwrap(),
    )
    .unwrap();
    body["content"].as_object_mut().unwrap().remove("incoterm");
    body["pickup"] = json!({});
    body["colour"] = json!("red");
    let err = http
        .send("create_shipment", Safety::NonIdempotent, || {
            http.request(Method::POST, &url)
                .basic_auth(DEMO_USERNAME, Some(DEMO_PASSWORD))
                .header("x-version", "3.1.0")
                .json(&body)
        })
        .await
        .expect_err("422");
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert_eq!(err.status(), Some(422));
    let m = err.to_string();
    for needle in [
        "Multiple problems found",
        "#/content: required key [incoterm] not found",
        "#/pickup: required key [isRequested] not found",
        "#: extraneous key [colour] is not permitted",
    ] {
        assert!(m.contains(needle), "{needle:?} missing from {m}");
    }
    assert_eq!(e.fake.minted(), 0);

    let err = http
        .send("tracking", Safety::Idempotent, || {
            http.request(
                Method::GET,
                &format!("{}/shipments/1234567890/tracking", e.running.base_url()),
            )
            .basic_auth(DEMO_USERNAME, Some(DEMO_PASSWORD))
        })
        .await
        .expect_err("no x-version");
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(err.to_string().contains("x-version"), "{err}");
}

/// DHL's 400 business errors keep their numeric detail (the planned date seen by DHL, the lane).
#[tokio::test]
async fn business_errors_keep_dhls_numeric_detail() {
    let e = env().await;
    let mut cfg = config(&e.running.base_url());
    cfg.product_code_non_eu = "U".into(); // an EU-only product on the Norwegian lane
    let c = DhlClient::new(&cfg, Credentials::new(DEMO_USERNAME, DEMO_PASSWORD), None).unwrap();
    let err = c
        .create_shipment(&request_non_eu(&reference("ORD-LANE")))
        .await
        .expect_err("lane");
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert_eq!(err.status(), Some(400));
    assert!(
        err.to_string().contains("7008: Product U is not available"),
        "{err}"
    );
    // An account the user may not use.
    let mut cfg = config(&e.running.base_url());
    cfg.shipper_account = NORDIC_ACCOUNT.into();
    let c = DhlClient::new(&cfg, Credentials::new(DEMO_USERNAME, DEMO_PASSWORD), None).unwrap();
    let err = c
        .find_by_reference("ORD-X", Utc::now())
        .await
        .expect_err("not this user's account");
    assert!(
        err.to_string().contains("is not valid for this user"),
        "{err}"
    );
    assert_eq!(e.fake.minted(), 0);
}

/// A ship date in the past, a reference over 35 characters and a Norwegian parcel without
/// customs lines are refused before any call.
#[tokio::test]
async fn client_side_refusals_make_no_call() {
    let e = env().await;
    let before = e.fake.harness().stats().requests;
    let mut past = request_eu(&reference("ORD-PAST"));
    past.ship_at = Utc::now() - chrono::Duration::hours(2);
    let err = e.client.create_shipment(&past).await.expect_err("past");
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert!(err.to_string().contains("in the past"), "{err}");
    let mut far = request_eu(&reference("ORD-FAR"));
    far.ship_at = Utc::now() + chrono::Duration::days(12);
    assert!(
        e.client
            .create_shipment(&far)
            .await
            .unwrap_err()
            .to_string()
            .contains("10 days")
    );
    let long = request_eu(&"R".repeat(36));
    let err = e
        .client
        .create_shipment(&long)
        .await
        .expect_err("long reference");
    assert!(err.to_string().contains("at most 35"), "{err}");
    let err = e
        .client
        .find_by_reference(&"R".repeat(36), Utc::now())
        .await
        .expect_err("long");
    assert!(err.to_string().contains("at most 35"), "{err}");
    let mut no_lines = request_non_eu(&reference("ORD-NOL"));
    no_lines.lines.clear();
    let err = e
        .client
        .create_shipment(&no_lines)
        .await
        .expect_err("no customs lines");
    assert!(err.to_string().contains("lines is empty"), "{err}");
    let mut no_invoice = request_non_eu(&reference("ORD-NOI"));
    no_invoice.invoice_number = None;
    let err = e
        .client
        .create_shipment(&no_invoice)
        .await
        .expect_err("no invoice number");
    assert!(err.to_string().contains("invoice_number"), "{err}");
    let mut no_phone = request_eu(&reference("ORD-NOP"));
    no_phone.receiver.phone = None;
    let err = e
        .client
        .create_shipment(&no_phone)
        .await
        .expect_err("no phone");
    assert!(err.to_string().contains("receiver.phone"), "{err}");
    let err = e.client.tracking("12/../34").await.expect_err("bad awb");
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert_eq!(
        e.fake.harness().stats().requests,
        before,
        "no call was made"
    );
}

/// The Norwegian shipment carries the export declaration and the VOEC number.
#[tokio::test]
async fn norway_gets_the_export_declaration_and_voec() {
    let e = env().await;
    let mut cfg = config(&e.running.base_url());
    cfg.voec_number = Some("2012345".into());
    let c = DhlClient::new(&cfg, Credentials::new(DEMO_USERNAME, DEMO_PASSWORD), None).unwrap();
    let s = c
        .create_shipment(&request_non_eu(&reference("ORD-NO")))
        .await
        .expect("create");
    let stored = e.fake.shipment(&s.awb).unwrap();
    assert!(stored.customs);
    assert_eq!(stored.product_code, "P");
    let body = &stored.request;
    assert_eq!(body["content"]["isCustomsDeclarable"], json!(true));
    assert_eq!(body["content"]["declaredValueCurrency"], json!("NOK"));
    let decl = &body["content"]["exportDeclaration"];
    assert_eq!(decl["invoice"]["number"], json!("MGZ-2026-0042"));
    assert_eq!(decl["lineItems"].as_array().unwrap().len(), 2);
    assert_eq!(
        decl["lineItems"][0]["quantity"],
        json!({"value": 2, "unitOfMeasurement": "PCS"})
    );
    assert_eq!(
        decl["lineItems"][0]["weight"],
        json!({"netValue": 0.7, "grossValue": 0.7})
    );
    assert_eq!(
        body["customerDetails"]["shipperDetails"]["registrationNumbers"],
        json!([{"typeCode": "SDT", "number": "2012345", "issuerCountryCode": "NO"}])
    );
    // The EU lane has none of it.
    let s = c
        .create_shipment(&request_eu(&reference("ORD-SE")))
        .await
        .expect("create");
    let body = e.fake.shipment(&s.awb).unwrap().request;
    assert_eq!(body["content"]["isCustomsDeclarable"], json!(false));
    assert!(body["content"].get("exportDeclaration").is_none());
    assert!(
        body["customerDetails"]["shipperDetails"]
            .get("registrationNumbers")
            .is_none()
    );
    assert_eq!(body["productCode"], json!("U"));
    let planned = body["plannedShippingDateAndTime"].as_str().unwrap();
    assert!(
        planned.ends_with(" GMT+00:00") && planned.len() == 29,
        "{planned}"
    );
}

/// A brand-new AWB is not in tracking yet: Unknown, not an error. Then events, oldest first.
#[tokio::test]
async fn tracking_a_new_awb_is_unknown_then_follows_the_parcel() {
    let e = env().await;
    let s = e
        .client
        .create_shipment(&request_eu(&reference("ORD-TRK")))
        .await
        .unwrap();
    let t = e
        .client
        .tracking(&s.awb)
        .await
        .expect("tracking a new AWB is not an error");
    assert_eq!(t.state, ParcelState::Unknown);
    assert!(t.events.is_empty());
    e.fake.advance_to(&s.awb, Stage::InTransit);
    let t = e.client.tracking(&s.awb).await.unwrap();
    assert_eq!(t.state, ParcelState::InTransit);
    let codes: Vec<_> = t.events.iter().map(|e| e.code.as_str()).collect();
    assert_eq!(codes, ["PU", "PL", "DF"], "oldest first");
    assert!(
        t.events.iter().all(|e| e.at.is_some()),
        "GMT offsets were asked for"
    );
    assert!(t.events.windows(2).all(|w| w[0].at <= w[1].at));
    e.fake.advance_to(&s.awb, Stage::Exception);
    assert_eq!(
        e.client.tracking(&s.awb).await.unwrap().state,
        ParcelState::Exception
    );
    // An AWB DHL never heard of is Unknown too (indistinguishable from lag).
    assert_eq!(
        e.client.tracking("9999999999").await.unwrap().state,
        ParcelState::Unknown
    );
}

/// The password never shows: not in Debug, not in errors, not in config errors.
#[tokio::test]
async fn credentials_never_leak() {
    let e = env().await;
    let secret = "not-the-Passw0rd";
    let bad = client_bad(&e.running.base_url());
    let shown = format!("{bad:?}");
    assert!(!shown.contains(secret), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
    let err = bad
        .find_by_reference("ORD-1", Utc::now())
        .await
        .expect_err("auth");
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    assert!(!err.to_string().contains(secret) && !format!("{err:?}").contains(secret));
    let err = bad
        .create_shipment(&request_eu(&reference("ORD-AUTH")))
        .await
        .expect_err("auth");
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    assert!(!err.to_string().contains(secret));
    let creds = json!({"username": DEMO_USERNAME, "password": secret});
    let err = DhlClient::from_json(
        json!({"shipper_account": "12x"}),
        creds.as_object().unwrap(),
        None,
    )
    .expect_err("bad account");
    assert!(!err.to_string().contains(secret), "{err}");
    let err = DhlClient::from_json(
        json!({"shipper_account": DEMO_ACCOUNT}),
        json!({"username": DEMO_USERNAME}).as_object().unwrap(),
        None,
    )
    .expect_err("no password");
    assert!(err.to_string().contains("`password` is missing"), "{err}");
    assert_eq!(e.fake.minted(), 0);
}

/// With `validate_first`, DHL checks the shipment (`validateDataOnly=true`) before it is made:
/// a refusal happens with nothing minted; a valid shipment costs two calls and one AWB.
#[tokio::test]
async fn validate_first_checks_before_creating() {
    let e = env().await;
    let mut cfg = config(&e.running.base_url());
    cfg.validate_first = true;
    let c = DhlClient::new(&cfg, Credentials::new(DEMO_USERNAME, DEMO_PASSWORD), None).unwrap();
    let (bad, fragment) = invalid();
    let err = c
        .create_shipment(&bad)
        .await
        .expect_err("refused by validation");
    assert!(err.to_string().contains(fragment), "{err}");
    assert_eq!(e.fake.minted(), 0);
    let before = e.fake.harness().stats().requests;
    let r = reference("ORD-VAL");
    c.create_shipment(&request_eu(&r)).await.expect("create");
    assert_eq!(e.fake.harness().stats().requests - before, 2);
    assert_eq!(e.fake.awbs_for(&r).len(), 1);
}

/// The fake's own per-account limit answers 429 problem+json with Retry-After; the client
/// waits and succeeds.
#[tokio::test]
async fn over_the_account_limit_the_client_waits() {
    let e = env().await;
    e.fake.harness().set_limits(Limits {
        rate: Some(RateRule {
            count: 1,
            per_ms: 1_000,
        }),
        concurrency: None,
    });
    e.client
        .find_by_reference("ORD-L1", Utc::now())
        .await
        .unwrap();
    e.client
        .find_by_reference("ORD-L2", Utc::now())
        .await
        .expect("after the wait");
    assert!(e.fake.harness().stats().over_limit >= 1);
}

/// A 404 that is not MyDHL's (wrong base URL) is not mistaken for "not found".
#[tokio::test]
async fn a_foreign_404_is_not_not_found() {
    let e = env().await;
    let c = client(
        &format!("{}/wrong", e.running.base_url()),
        DEMO_USERNAME,
        DEMO_PASSWORD,
    );
    let err = c
        .find_by_reference("ORD-1", Utc::now())
        .await
        .expect_err("wrong url");
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(err.to_string().contains("check base_url"), "{err}");
    let err = c.tracking("1234567890").await.expect_err("wrong url");
    assert!(err.to_string().contains("check base_url"), "{err}");
}

/// The fake also answers under `/mydhlapi`, like production's URL layout.
#[tokio::test]
async fn the_fake_answers_under_mydhlapi_too() {
    let e = env().await;
    let c = client(
        &format!("{}/mydhlapi/", e.running.base_url()),
        DEMO_USERNAME,
        DEMO_PASSWORD,
    );
    let r = reference("ORD-PFX");
    let s = c.create_shipment(&request_eu(&r)).await.expect("create");
    assert_eq!(e.fake.awbs_for(&r), vec![s.awb.clone()]);
    let found = c.find_by_reference(&r, Utc::now()).await.unwrap();
    assert_eq!(found.map(|f| f.awb), Some(s.awb));
}

/// Users see only their own accounts' shipments.
#[tokio::test]
async fn accounts_are_isolated() {
    let e = env().await;
    let r = reference("ORD-ISO");
    let s = e.client.create_shipment(&request_eu(&r)).await.unwrap();
    let mut cfg = config(&e.running.base_url());
    cfg.shipper_account = NORDIC_ACCOUNT.into();
    let nordic = DhlClient::new(
        &cfg,
        Credentials::new(
            connectors::dhl::fake::NORDIC_USERNAME,
            connectors::dhl::fake::NORDIC_PASSWORD,
        ),
        None,
    )
    .unwrap();
    assert!(
        nordic
            .find_by_reference(&r, Utc::now())
            .await
            .unwrap()
            .is_none()
    );
    e.fake.advance_to(&s.awb, Stage::InTransit);
    assert_eq!(
        nordic.tracking(&s.awb).await.unwrap().state,
        ParcelState::Unknown
    );
    assert_eq!(
        e.client.tracking(&s.awb).await.unwrap().state,
        ParcelState::InTransit
    );
}

/// The control API over HTTP.
#[tokio::test]
async fn control_routes() {
    let e = env().await;
    let base = e.running.base_url();
    let r = reference("ORD-CTL");
    let s = e.client.create_shipment(&request_eu(&r)).await.unwrap();
    let http = Http::new(
        "dhl",
        &settings(),
        None,
        connectors::dhl::errors::error_body,
    )
    .unwrap();
    let get = |path: String| {
        let http = http.clone();
        async move {
            http.send("control", Safety::Idempotent, || {
                http.request(Method::GET, &path)
            })
            .await
            .unwrap()
            .json::<Value>("dhl", "control")
            .unwrap()
        }
    };
    assert_eq!(
        get(format!("{base}/_control/dhl/references/{r}/awbs")).await,
        json!([s.awb])
    );
    let advance = http
        .send("control", Safety::Idempotent, || {
            http.request(
                Method::POST,
                &format!("{base}/_control/dhl/shipments/{}/advance", s.awb),
            )
            .json(&json!({"to": "delivered"}))
        })
        .await
        .unwrap()
        .json::<Value>("dhl", "control")
        .unwrap();
    assert_eq!(
        advance.as_array().unwrap().last().unwrap()["code"],
        json!("OK")
    );
    let one = get(format!("{base}/_control/dhl/shipments/{}", s.awb)).await;
    assert_eq!(one["reference"], json!(r));
    assert_eq!(one["account"], json!(DEMO_ACCOUNT));
    assert_eq!(
        get(format!("{base}/_control/dhl/shipments"))
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    http.send("control", Safety::Idempotent, || {
        http.request(Method::PUT, &format!("{base}/_control/dhl/lag"))
            .json(&json!({"reference_lookup": true}))
    })
    .await
    .unwrap();
    let r2 = reference("ORD-CTL2");
    e.client.create_shipment(&request_eu(&r2)).await.unwrap();
    assert!(
        e.client
            .find_by_reference(&r2, Utc::now())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        e.client.tracking(&s.awb).await.unwrap().state,
        ParcelState::Delivered
    );
    // No cancel endpoint: MyDHL v3.1.1 has none.
    let err = http
        .send("cancel", Safety::NonIdempotent, || {
            http.request(Method::DELETE, &format!("{base}/shipments/{}", s.awb))
                .basic_auth(DEMO_USERNAME, Some(DEMO_PASSWORD))
                .header("x-version", "3.1.0")
        })
        .await
        .expect_err("no cancel");
    assert!(matches!(err.status(), Some(404 | 405)), "{err}");
}

#[test]
fn capabilities_are_awb_push_only() {
    let c = connectors::dhl::capabilities();
    assert_eq!(c.system, "dhl");
    assert!(c.supports(Flow::AwbPush));
    for f in [
        Flow::CatalogPush,
        Flow::StockPush,
        Flow::OrderPull,
        Flow::InvoiceAttach,
        Flow::ReturnsReconcile,
    ] {
        assert!(!c.supports(f), "{f:?}");
    }
}
