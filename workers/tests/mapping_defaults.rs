//! Mapping rule sets as a new tenant meets them: invalid rule sets refused on save naming the
//! rule and the field, the defaults of the five seed pairs installed and mapping real articles
//! and orders to exact prices, and the exchange-rate feed imported, listed and used from the
//! command line. One database per test.

use std::path::PathBuf;

use canonical::mapping::{
    ApplyError, ApplyErrorKind, Context, NO_RULE, RateFeed, RuleSet, ValidationErrorKind,
};
use canonical::{
    CatalogItem, ChannelOrderId, Contact, Country, Currency, Erp, Listing, Marketplace, Money,
    Order, OrderLine, OrderStatus, Sku, VatRate,
};
use chrono::{NaiveDate, Utc};
use connectors::mapping::{ErpLineTarget, MappedLine, catalog_record, order_line_record};
use rust_decimal::{Decimal, dec};
use serde_json::{Value as Json, json};
use sqlx::PgPool;
use workers::db::mappings::{Direction, activate_mapping, active_mapping, list_mappings};
use workers::db::rates::{FxRate, upsert_rates};
use workers::db::{self, Connection};
use workers::mapping::defaults::default_rule_set;
use workers::mapping::{
    RuleSetRejected, SaveError, connectors_target, install_defaults, save_validated, validate_for,
};
use workers::rates::{MappingConfig, RatesCache};

mod support;
use support::{megzo_command, stderr_of_failure, stdout};

const E2M: Direction = Direction::ErpToMarketplace;
const M2E: Direction = Direction::MarketplaceToErp;

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// A feed of EUR-based rates (as the ECB publishes them) dated today, refusing rates older than
/// 7 days.
fn eur_feed(rates: &[(Currency, Decimal)]) -> RateFeed {
    let mut feed = RateFeed::new(7);
    for (quote, rate) in rates {
        feed.insert(today(), Currency::Eur, *quote, *rate).unwrap();
    }
    feed
}

/// The connection's built-in default rule set of `direction`, as the JSON an operator edits.
fn default_json(conn: &Connection, direction: Direction) -> Json {
    let set = default_rule_set(conn, direction)
        .unwrap()
        .expect("every seed pair has a default");
    serde_json::to_value(set).unwrap()
}

fn rules_of(v: &mut Json) -> &mut Vec<Json> {
    v["rules"].as_array_mut().unwrap()
}

fn rule_of<'a>(v: &'a mut Json, id: &str) -> &'a mut Json {
    rules_of(v)
        .iter_mut()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("the default has no rule `{id}`"))
}

async fn connection(
    pool: &PgPool,
    tenant: canonical::TenantId,
    erp: Erp,
    marketplace: Marketplace,
    settings: Json,
) -> Connection {
    db::add_connection(pool, tenant, erp, marketplace, None, settings)
        .await
        .unwrap()
}

/// One invalid rule set: the default of `conn` changed by `mutate`, validated with `feed`.
struct Case<'a> {
    what: &'static str,
    conn: &'a Connection,
    feed: &'a RateFeed,
    mutate: fn(&mut Json),
    /// The error expected among those returned, by rule and field.
    rule: &'static str,
    field: &'static str,
    kind: fn(&ValidationErrorKind) -> bool,
    /// How many errors validation returns in all.
    errors: usize,
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn invalid_rule_sets_are_refused_on_save_naming_rule_and_field(pool: PgPool) {
    let t = db::add_tenant(&pool, "refusals", "Shop").await.unwrap();
    let cdon = connection(
        &pool,
        t.id,
        Erp::SmartBill,
        Marketplace::Cdon,
        json!({"cdon": {"markets": ["SE", "FI"], "languages": ["sv-SE"]}}),
    )
    .await;
    let celro = connection(&pool, t.id, Erp::Lexoffice, Marketplace::Celro, json!({})).await;
    let feed = eur_feed(&[
        (Currency::Ron, dec!(5.0000)),
        (Currency::Sek, dec!(11.0000)),
    ]);
    let empty = RateFeed::new(7);

    // The unmodified defaults are valid with that feed: every case below fails because of its
    // one change. (SmartBill quotes RON or EUR: RON→SEK is crossed through EUR, RON→EUR is
    // the inverse of EUR→RON; lexoffice quotes EUR: EUR→RON is published.)
    for conn in [&cdon, &celro] {
        let (direction, set) = validate_for(conn, &default_json(conn, E2M), &feed)
            .unwrap_or_else(|e| panic!("{} → {}: {e}", conn.erp, conn.marketplace));
        assert_eq!(direction, E2M);
        assert_eq!(set, default_rule_set(conn, E2M).unwrap().unwrap());
    }

    let cases = [
        Case {
            what: "CDON's Swedish description written by no rule",
            conn: &cdon,
            feed: &feed,
            mutate: |v| rules_of(v).retain(|r| r["id"] != "description"),
            rule: NO_RULE,
            field: "description.sv-SE",
            kind: |k| matches!(k, ValidationErrorKind::MissingRequiredTarget),
            errors: 1,
        },
        Case {
            what: "a price for Norway, a market the connection does not sell on",
            conn: &cdon,
            feed: &feed,
            mutate: |v| {
                rules_of(v).push(json!({
                    "id": "price_no", "target": "price.NO", "source": { "field": "price_gross" }
                }));
            },
            rule: "price_no",
            field: "price.NO",
            kind: |k| matches!(k, ValidationErrorKind::UnknownTargetField),
            errors: 1,
        },
        Case {
            what: "a title reading `brand`, which SmartBill articles do not have",
            conn: &cdon,
            feed: &feed,
            mutate: |v| rule_of(v, "title")["source"] = json!({ "template": "{brand} {name}" }),
            rule: "title",
            field: "brand",
            kind: |k| matches!(k, ValidationErrorKind::UnknownSourceField),
            errors: 1,
        },
        Case {
            // Also refused: the rounded (decimal) value does not fit the text target.
            what: "rounding the title text",
            conn: &cdon,
            feed: &feed,
            mutate: |v| {
                rule_of(v, "title")["ops"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({ "op": "round", "mode": "half_up", "step": "1" }));
            },
            rule: "title",
            field: "title.sv-SE",
            kind: |k| {
                *k == ValidationErrorKind::TypeMismatch {
                    at: "op 2 `round`".into(),
                    expected: "decimal".into(),
                    found: "text".into(),
                }
            },
            errors: 2,
        },
        Case {
            what: "a lookup over SmartBill's currencies (RON, EUR) whose table lacks EUR",
            conn: &cdon,
            feed: &feed,
            mutate: |v| {
                v["tables"]["brand_by_currency"] =
                    json!({ "entries": { "RON": { "text": "Acme Romania" } } });
                rules_of(v).push(json!({
                    "id": "brand", "target": "brand", "source": { "field": "currency" },
                    "ops": [ { "op": "lookup", "table": "brand_by_currency" } ]
                }));
            },
            rule: "brand",
            field: "currency",
            kind: |k| {
                *k == ValidationErrorKind::LookupNotCovering {
                    table: "brand_by_currency".into(),
                    missing: vec!["EUR".into()],
                }
            },
            errors: 1,
        },
        Case {
            what: "lexoffice handling days from `stock`: lexoffice keeps no stock",
            conn: &celro,
            feed: &feed,
            mutate: |v| {
                rules_of(v).push(json!({
                    "id": "handling", "target": "handling_days", "source": { "field": "stock" }
                }));
            },
            rule: "handling",
            field: "stock",
            kind: |k| matches!(k, ValidationErrorKind::UnknownSourceField),
            errors: 1,
        },
        Case {
            what: "Cel.ro without a brand rule",
            conn: &celro,
            feed: &feed,
            mutate: |v| rules_of(v).retain(|r| r["id"] != "brand"),
            rule: NO_RULE,
            field: "brand",
            kind: |k| matches!(k, ValidationErrorKind::MissingRequiredTarget),
            errors: 1,
        },
        Case {
            // price_se: RON→SEK and EUR→SEK; price_fi: RON→EUR (EUR→EUR needs none).
            what: "conversions with no rate in the rule set or the (empty) feed",
            conn: &cdon,
            feed: &empty,
            mutate: |_| {},
            rule: "price_se",
            field: "price.SE",
            kind: |k| {
                *k == ValidationErrorKind::NoRate {
                    from: "RON".into(),
                    to: "SEK".into(),
                }
            },
            errors: 3,
        },
    ];
    for c in &cases {
        let mut v = default_json(c.conn, E2M);
        (c.mutate)(&mut v);
        let errors = match validate_for(c.conn, &v, c.feed) {
            Err(RuleSetRejected::Invalid(errors)) => errors,
            Err(other) => panic!("{}: refused for another reason: {other}", c.what),
            Ok(_) => panic!("{}: accepted", c.what),
        };
        assert!(
            errors
                .iter()
                .any(|e| e.rule == c.rule && e.field == c.field && (c.kind)(&e.kind)),
            "{}: no error naming rule `{}` and field `{}` as expected; got {errors:#?}",
            c.what,
            c.rule,
            c.field
        );
        assert_eq!(errors.len(), c.errors, "{}: {errors:#?}", c.what);
        // What the operator reads names both too.
        let shown = RuleSetRejected::Invalid(errors).to_string();
        assert!(
            shown.contains(&format!("rule `{}`, field `{}`: ", c.rule, c.field)),
            "{}: {shown}",
            c.what
        );
    }

    // Not a rule set at all, an unknown direction, settings that configure no CDON target.
    let mut v = default_json(&cdon, E2M);
    v["direction"] = json!("sideways");
    let e = validate_for(&cdon, &v, &feed).unwrap_err();
    assert!(
        matches!(&e, RuleSetRejected::Direction(d) if d == "sideways"),
        "{e}"
    );

    let mut v = default_json(&cdon, E2M);
    rule_of(&mut v, "title")["colour"] = json!("red");
    let e = validate_for(&cdon, &v, &feed).unwrap_err();
    assert!(
        matches!(&e, RuleSetRejected::Parse(m) if m.contains("unknown field `colour`")),
        "{e}"
    );

    let germany = Connection {
        settings: json!({"cdon": {"markets": ["DE"]}}),
        ..cdon.clone()
    };
    let e = validate_for(&germany, &default_json(&cdon, E2M), &feed).unwrap_err();
    assert!(
        matches!(&e, RuleSetRejected::Settings(m) if m.contains("DE")),
        "{e}"
    );

    // Saving validates first: a refused rule set leaves no version behind.
    let mut v = default_json(&cdon, E2M);
    rules_of(&mut v).retain(|r| r["id"] != "price_fi");
    let e = save_validated(&pool, &cdon, &v, &feed, "ana", "no Finland")
        .await
        .unwrap_err();
    match &e {
        SaveError::Rejected(RuleSetRejected::Invalid(errors)) => assert!(
            errors.iter().any(|x| x.rule == NO_RULE
                && x.field == "price.FI"
                && x.kind == ValidationErrorKind::MissingRequiredTarget),
            "{errors:#?}"
        ),
        other => panic!("not refused as invalid: {other}"),
    }
    for direction in [E2M, M2E] {
        assert!(
            list_mappings(&pool, cdon.id, direction)
                .await
                .unwrap()
                .is_empty()
        );
    }
    // … so the first valid save is version 1.
    let saved = save_validated(&pool, &cdon, &default_json(&cdon, E2M), &feed, "ana", "")
        .await
        .unwrap();
    assert_eq!(saved, (E2M, 1));
}

/// The active rule set of `conn` in `direction`, compiled from its stored JSON, with its
/// version.
async fn active_rules(
    pool: &PgPool,
    conn: &Connection,
    direction: Direction,
) -> (i32, canonical::mapping::CompiledRuleSet) {
    let stored = active_mapping(pool, conn.id, direction)
        .await
        .unwrap()
        .expect("a version is active");
    let set: RuleSet = serde_json::from_value(stored.rules).unwrap();
    (stored.version, set.compile().unwrap())
}

/// The listing the active catalog rule set of `conn` makes of `item`, with 5 units to sell.
async fn list_with_active(
    pool: &PgPool,
    conn: &Connection,
    item: &CatalogItem,
    feed: &RateFeed,
) -> Result<Listing, ApplyError> {
    let (_, rules) = active_rules(pool, conn, E2M).await;
    let stock = (conn.erp != Erp::Lexoffice).then_some(5);
    let mapped = rules.apply(
        &catalog_record(item, stock),
        &Context::on(today()).with_feed(feed),
    )?;
    Ok(connectors_target(conn)
        .unwrap()
        .listing(item, &mapped.record, 5)
        .unwrap())
}

fn article(
    sku: &str,
    name: &str,
    price: Decimal,
    includes_vat: bool,
    currency: Currency,
) -> CatalogItem {
    CatalogItem {
        sku: Sku::new(sku).unwrap(),
        name: name.into(),
        price,
        price_includes_vat: includes_vat,
        vat: Some(VatRate::percent(dec!(21)).unwrap()),
        currency,
        unit: if currency == Currency::Eur {
            "Stück"
        } else {
            "buc"
        }
        .into(),
    }
}

/// `(market, gross amount as written, currency, market VAT %)` of each price, in order.
fn prices(l: &Listing) -> Vec<(String, String, Currency, Option<Decimal>)> {
    l.prices
        .iter()
        .map(|p| {
            (
                p.market.as_str().to_owned(),
                p.gross.amount.to_string(),
                p.gross.currency,
                p.vat.map(VatRate::as_percent),
            )
        })
        .collect()
}

fn order(
    market: Country,
    currency: Currency,
    sku: &str,
    unit_price_gross: Decimal,
    vat: Decimal,
) -> (Order, OrderLine) {
    let line = OrderLine {
        line_id: Some("1".into()),
        sku: Sku::new(sku).unwrap(),
        title: "Cana ceramica".into(),
        quantity: 2,
        unit_price_gross,
        vat: VatRate::percent(vat).unwrap(),
    };
    let buyer = Contact {
        name: "Ana Popescu".into(),
        company: None,
        email: Some("ana@example.com".into()),
        phone: Some("+40700000000".into()),
        address_line1: "Strada Lunga 1".into(),
        address_line2: None,
        city: "Cluj-Napoca".into(),
        postal_code: "400001".into(),
        region: Some("Cluj".into()),
        country: Some(market),
        tax_id: None,
    };
    let order = Order {
        id: ChannelOrderId::new("ORD-1001").unwrap(),
        group_id: None,
        status: OrderStatus::New,
        raw_status: "CREATED".into(),
        market,
        currency,
        placed_at: Utc::now(),
        updated_at: None,
        ship_by: None,
        lines: vec![line.clone()],
        shipping_fee_gross: Decimal::ZERO,
        total_gross: unit_price_gross * Decimal::TWO,
        customer: buyer.clone(),
        ship_to: buyer,
        tracking: Vec::new(),
    };
    (order, line)
}

/// The ERP line the active order rule set of `conn` makes of the order's line.
async fn erp_line(
    pool: &PgPool,
    conn: &Connection,
    order: &Order,
    line: &OrderLine,
    feed: &RateFeed,
) -> MappedLine {
    let (_, rules) = active_rules(pool, conn, M2E).await;
    let mapped = rules
        .apply(
            &order_line_record(order, line),
            &Context::on(today()).with_feed(feed),
        )
        .unwrap();
    ErpLineTarget { erp: conn.erp }
        .line(order, line, &mapped.record)
        .unwrap()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn defaults_for_the_five_seed_pairs_install_and_map_real_articles(pool: PgPool) {
    let t = db::add_tenant(&pool, "seed-pairs", "Shop").await.unwrap();
    // 1 EUR = 5 RON = 11 SEK = 11.5 NOK = 7.46 DKK, so through EUR: 1 RON = 2.2 SEK,
    // 2.3 NOK, 1.492 DKK, 0.2 EUR.
    let feed = eur_feed(&[
        (Currency::Ron, dec!(5.0000)),
        (Currency::Sek, dec!(11.0000)),
        (Currency::Nok, dec!(11.5000)),
        (Currency::Dkk, dec!(7.4600)),
    ]);

    let mut conns = Vec::new();
    for (erp, marketplace) in [
        (Erp::SmartBill, Marketplace::Cdon),
        (Erp::WinMentor, Marketplace::Cdon),
        (Erp::Charisma, Marketplace::Cdon),
        (Erp::SmartBill, Marketplace::Celro),
        (Erp::Lexoffice, Marketplace::Celro),
    ] {
        let c = connection(&pool, t.id, erp, marketplace, json!({})).await;
        let done = install_defaults(&pool, &c, "megzo").await.unwrap();
        assert_eq!(done, [(E2M, 1), (M2E, 1)], "{erp} → {marketplace}");
        for direction in [E2M, M2E] {
            let active = active_mapping(&pool, c.id, direction)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{erp} → {marketplace} {direction}: none active"));
            assert_eq!(active.version, 1, "{erp} → {marketplace} {direction}");
            assert_eq!(active.author, "megzo");
            assert_eq!(active.rules, default_json(&c, direction));
        }
        // Installing again installs nothing (each direction has a version already).
        assert_eq!(install_defaults(&pool, &c, "megzo").await.unwrap(), []);
        assert_eq!(list_mappings(&pool, c.id, E2M).await.unwrap().len(), 1);
        conns.push(c);
    }
    let [sb_cdon, wm_cdon, ch_cdon, sb_celro, lx_celro] = &conns[..] else {
        unreachable!()
    };

    // → CDON, all four markets (settings `{}`). Per market: the net price plus the market's
    // VAT, converted at the day's rate through EUR, rounded half-up to whole kronor or cents.
    //   net 100.00 RON × 1.25  = 125.00 RON → SE ×2.2   = 275    SEK
    //                                       → DK ×1.492 = 186.5  → 187 DKK (half-up)
    //   net 100.00 RON × 1.255 = 125.50 RON → FI ×0.2   = 25.10  EUR
    //   net 100.00 RON × 1.25  = 125.00 RON → NO ×2.3   = 287.5  → 288 NOK (half-up)
    let expected_cdon = vec![
        (
            "SE".to_owned(),
            "275".to_owned(),
            Currency::Sek,
            Some(dec!(25)),
        ),
        (
            "DK".to_owned(),
            "187".to_owned(),
            Currency::Dkk,
            Some(dec!(25)),
        ),
        (
            "FI".to_owned(),
            "25.10".to_owned(),
            Currency::Eur,
            Some(dec!(25.5)),
        ),
        (
            "NO".to_owned(),
            "288".to_owned(),
            Currency::Nok,
            Some(dec!(25)),
        ),
    ];
    for (conn, item) in [
        // SmartBill quotes 121.00 RON including 21 % VAT: net 121.00 / 1.21 = 100.00.
        (
            sb_cdon,
            article(
                "CANA-01",
                "Cana ceramica 350 ml",
                dec!(121.00),
                true,
                Currency::Ron,
            ),
        ),
        // WinMentor and Charisma quote the net 100.00 RON.
        (
            wm_cdon,
            article(
                "WM-CANA-01",
                "Cana ceramica 350 ml",
                dec!(100.00),
                false,
                Currency::Ron,
            ),
        ),
        (
            ch_cdon,
            article(
                "CH-CANA-01",
                "Cana ceramica 350 ml",
                dec!(100.00),
                false,
                Currency::Ron,
            ),
        ),
    ] {
        let l = list_with_active(&pool, conn, &item, &feed)
            .await
            .unwrap_or_else(|e| panic!("{} → CDON: {e}", conn.erp));
        assert_eq!(prices(&l), expected_cdon, "{} → CDON", conn.erp);
        assert_eq!(l.sku, item.sku);
        assert_eq!(
            (l.title.as_str(), l.description.as_str()),
            ("Cana ceramica 350 ml", "Cana ceramica 350 ml")
        );
        // The listing's own VAT is the ERP's (21 %); each market price carries its own.
        assert_eq!(l.vat, VatRate::percent(dec!(21)).unwrap());
        assert_eq!((l.quantity, l.active, l.handling_days), (5, true, 1));
        assert_eq!((l.category.as_deref(), l.brand.as_deref()), (None, None));
    }
    // The SEK price used the rate crossed through EUR: 1/5 × 11 = 2.2, dated today.
    let (_, rules) = active_rules(&pool, sb_cdon, E2M).await;
    let item = article("CANA-01", "Cana", dec!(121.00), true, Currency::Ron);
    let out = rules
        .apply(
            &catalog_record(&item, Some(5)),
            &Context::on(today()).with_feed(&feed),
        )
        .unwrap();
    let fx = *out.trace("price.SE").unwrap().fx().unwrap();
    assert_eq!(
        (fx.from, fx.to, fx.rate, fx.via, fx.rate_date),
        (
            Currency::Ron,
            Currency::Sek,
            dec!(2.2),
            Some(Currency::Eur),
            today()
        )
    );

    // → Cel.ro: the gross price in RON, category and brand from per-SKU tables that start
    // empty, so the first article is refused naming the table and the SKU.
    for (conn, item, category, brand) in [
        // 121.00 RON gross, already in RON: 121.00 RON.
        (
            sb_celro,
            article(
                "CANA-01",
                "Cana ceramica 350 ml",
                dec!(121.00),
                true,
                Currency::Ron,
            ),
            "1234",
            "Horeca Lux",
        ),
        // lexoffice: 24.20 EUR gross × 5 = 121.00 RON.
        (
            lx_celro,
            article(
                "TASSE-01",
                "Tasse Keramik 350 ml",
                dec!(24.20),
                true,
                Currency::Eur,
            ),
            "5678",
            "Porzellan AG",
        ),
    ] {
        let sku = item.sku.as_str().to_owned();
        let e = list_with_active(&pool, conn, &item, &feed)
            .await
            .unwrap_err();
        assert_eq!(
            e,
            ApplyError {
                rule: "category".into(),
                target: "category".into(),
                field: "category".into(),
                kind: ApplyErrorKind::NoLookupEntry {
                    table: "celro_categories".into(),
                    key: sku.clone(),
                },
            },
            "{} → Cel.ro",
            conn.erp
        );
        assert!(
            e.to_string().contains(&format!(
                "lookup table `celro_categories` has no entry for \"{sku}\""
            )),
            "{e}"
        );

        // The merchant fills both tables for the SKU: version 2, activated.
        let mut v2 = active_mapping(&pool, conn.id, E2M)
            .await
            .unwrap()
            .unwrap()
            .rules;
        v2["tables"]["celro_categories"]["entries"][&sku] = json!({ "text": category });
        v2["tables"]["celro_brands"]["entries"][&sku] = json!({ "text": brand });
        let saved = save_validated(&pool, conn, &v2, &feed, "ana", "categories and brands")
            .await
            .unwrap();
        assert_eq!(saved, (E2M, 2));
        let replaced = activate_mapping(&pool, conn.id, E2M, 2, "ana", "")
            .await
            .unwrap();
        assert_eq!(replaced, Some(1));
        assert_eq!(active_rules(&pool, conn, E2M).await.0, 2);

        let l = list_with_active(&pool, conn, &item, &feed)
            .await
            .unwrap_or_else(|e| panic!("{} → Cel.ro v2: {e}", conn.erp));
        assert_eq!(
            prices(&l),
            [("RO".to_owned(), "121.00".to_owned(), Currency::Ron, None)],
            "{} → Cel.ro",
            conn.erp
        );
        assert_eq!(l.prices[0].gross, Money::new(dec!(121.00), Currency::Ron));
        assert_eq!(
            (l.category.as_deref(), l.brand.as_deref()),
            (Some(category), Some(brand))
        );
        assert_eq!(l.title, item.name);
        assert_eq!(l.vat, VatRate::percent(dec!(21)).unwrap());
    }

    // Orders into lexoffice (EUR only): 121.00 RON on the order's date × 0.2 = 24.20 EUR.
    let (o, line) = order(
        Country::RO,
        Currency::Ron,
        "TASSE-01",
        dec!(121.00),
        dec!(21),
    );
    let mapped = erp_line(&pool, lx_celro, &o, &line, &feed).await;
    assert_eq!(
        mapped,
        MappedLine {
            sku: Sku::new("TASSE-01").unwrap(),
            unit_price_gross: dec!(24.20),
            currency: Currency::Eur,
            vat: Some(VatRate::percent(dec!(21)).unwrap()),
            unit: None,
            title: None,
        }
    );
    assert_eq!(mapped.unit_price_gross.to_string(), "24.20");

    // Orders into SmartBill keep the marketplace's currency and price as they are.
    let (o, line) = order(
        Country::SE,
        Currency::Sek,
        "CANA-01",
        dec!(299.00),
        dec!(25),
    );
    let mapped = erp_line(&pool, sb_cdon, &o, &line, &feed).await;
    assert_eq!(
        mapped,
        MappedLine {
            sku: Sku::new("CANA-01").unwrap(),
            unit_price_gross: dec!(299.00),
            currency: Currency::Sek,
            vat: Some(VatRate::percent(dec!(25)).unwrap()),
            unit: None,
            title: None,
        }
    );
    assert_eq!(mapped.unit_price_gross.to_string(), "299.00");
}

fn temp_file(contents: &str, ext: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "megzo-rates-{}.{ext}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&p, contents).unwrap();
    p
}

/// The ECB's daily reference rates as published, for `day`.
fn ecb_xml(day: NaiveDate) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">
  <gesmes:subject>Reference rates</gesmes:subject>
  <gesmes:Sender><gesmes:name>European Central Bank</gesmes:name></gesmes:Sender>
  <Cube>
    <Cube time="{day}">
      <Cube currency="USD" rate="1.0812"/>
      <Cube currency="JPY" rate="163.40"/>
      <Cube currency="SEK" rate="11.0000"/>
      <Cube currency="RON" rate="5.0000"/>
    </Cube>
  </Cube>
</gesmes:Envelope>"#
    )
}

/// The decimal right after `prefix` in `text` (up to the next space).
fn number_after(text: &str, prefix: &str) -> Decimal {
    let at = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} in {text:?}"));
    let rest = &text[at + prefix.len()..];
    let end = rest.find([' ', ')', '\n']).unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|e| panic!("{:?} after {prefix:?}: {e}", &rest[..end]))
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn rates_import_list_and_convert_from_the_command_line(pool: PgPool) {
    let megzo = |args: &[&str]| megzo_command(&pool, "text").args(args).output().unwrap();
    let day = today();
    let day_s = day.to_string();
    // A worker's cache that looks for new rates on every call, created before any import,
    // and one that looks at most once an hour.
    let eager = RatesCache::new(
        pool.clone(),
        MappingConfig {
            rate_refresh_secs: 0,
            ..MappingConfig::default()
        },
    );
    let lazy = RatesCache::new(
        pool.clone(),
        MappingConfig {
            rate_refresh_secs: 3600,
            ..MappingConfig::default()
        },
    );
    assert!(eager.feed().await.unwrap().is_empty());
    assert!(lazy.feed().await.unwrap().is_empty());

    let ecb = temp_file(&ecb_xml(day), "xml");
    let out = stdout(&megzo(&["rates", "import", ecb.to_str().unwrap()]));
    assert!(
        out.contains("3 ecb rates stored for 1 day(s) (skipped, not handled: JPY)"),
        "{out}"
    );

    // 100 RON → EUR → SEK: 100 / 5 × 11 = 220 SEK, at the crossed rate 2.2.
    let out = stdout(&megzo(&["rates", "convert", "100", "RON", "SEK"]));
    assert!(out.starts_with("100 RON = "), "{out}");
    assert_eq!(number_after(&out, "100 RON = "), dec!(220), "{out}");
    assert!(out.contains(" SEK  (rate "), "{out}");
    assert_eq!(number_after(&out, "(rate "), dec!(2.2), "{out}");
    assert!(
        out.contains(&format!(" of {day_s}, crossed through EUR)")),
        "{out}"
    );
    // The inverse of a published rate: 100 RON × 1/5 = 20 EUR.
    let out = stdout(&megzo(&["rates", "convert", "100", "RON", "EUR"]));
    assert_eq!(number_after(&out, "100 RON = "), dec!(20), "{out}");
    assert_eq!(number_after(&out, "(rate "), dec!(0.2), "{out}");
    assert!(out.contains(&format!(" of {day_s}, inverted)")), "{out}");

    let out = stdout(&megzo(&["rates", "set", &day_s, "EUR", "NOK", "11.70"]));
    assert_eq!(out.trim(), format!("{day_s}: 1 EUR = 11.70 NOK"));
    let out = stdout(&megzo(&["rates", "list"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        4,
        "USD, SEK and RON from the ECB, NOK by hand: {out}"
    );
    // Ordered by date, base, quote.
    let listed: Vec<(String, Decimal, &str)> = lines
        .iter()
        .map(|l| {
            assert!(l.starts_with(&format!("{day_s}  1 EUR = ")), "{l}");
            let quote = l.split_whitespace().nth(5).unwrap().to_owned();
            let source = if l.contains("(manual, imported ") {
                "manual"
            } else if l.contains("(ecb, imported ") {
                "ecb"
            } else {
                panic!("no source in {l:?}")
            };
            (quote, number_after(l, "1 EUR = "), source)
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("NOK".to_owned(), dec!(11.70), "manual"),
            ("RON".to_owned(), dec!(5.0000), "ecb"),
            ("SEK".to_owned(), dec!(11.0000), "ecb"),
            ("USD".to_owned(), dec!(1.0812), "ecb"),
        ]
    );

    // Garbage is refused naming the file and what is wrong with it, and stores nothing.
    let html = temp_file("<html><body>maintenance</body></html>", "xml");
    let err = stderr_of_failure(&megzo(&["rates", "import", html.to_str().unwrap()]));
    assert!(err.contains(html.to_str().unwrap()), "{err}");
    assert!(
        err.contains("XML, but neither the ECB's <Cube time> nor the BNR's <Cube date> layout"),
        "{err}"
    );
    let text = temp_file("hello, world\n", "csv");
    let err = stderr_of_failure(&megzo(&["rates", "import", text.to_str().unwrap()]));
    assert!(
        err.contains("the CSV header is \"hello, world\", not \"date,base,quote,rate\""),
        "{err}"
    );
    let err = stderr_of_failure(&megzo(&[
        "rates",
        "convert",
        "100",
        "RON",
        "SEK",
        "--date",
        "2000-01-03",
    ]));
    assert!(
        err.contains("no RON→SEK rate on or before 2000-01-03: import rates first"),
        "{err}"
    );
    assert_eq!(stdout(&megzo(&["rates", "list"])).lines().count(), 4);

    // The eager cache sees what the other process stored at its next call; the lazy one keeps
    // serving the feed it loaded until its hour is up.
    let feed = eager.feed().await.unwrap();
    assert_eq!(feed.len(), 4);
    assert_eq!(
        feed.find(Currency::Eur, Currency::Nok, day).unwrap().rate,
        dec!(11.70)
    );
    assert!(lazy.feed().await.unwrap().is_empty(), "refreshed too early");

    // A newly upserted rate, and a corrected one (same day and pair), on the next call.
    upsert_rates(
        &pool,
        &[
            FxRate {
                date: day,
                base: "EUR".into(),
                quote: "DKK".into(),
                rate: dec!(7.4600),
                source: "manual".into(),
            },
            FxRate {
                date: day,
                base: "EUR".into(),
                quote: "SEK".into(),
                rate: dec!(11.2000),
                source: "manual".into(),
            },
        ],
    )
    .await
    .unwrap();
    let feed = eager.feed().await.unwrap();
    assert_eq!(feed.len(), 5);
    assert_eq!(
        feed.find(Currency::Eur, Currency::Dkk, day).unwrap().rate,
        dec!(7.46)
    );
    assert_eq!(
        feed.find(Currency::Eur, Currency::Sek, day).unwrap().rate,
        dec!(11.2)
    );

    for p in [ecb, html, text] {
        let _ = std::fs::remove_file(p);
    }
}
