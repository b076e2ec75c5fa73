//! Field mapping: end to end (SmartBill-like RON item → CDON SE/NO/DK/FI), engine behaviour
//! and errors, a table of invalid rule sets, and property tests.

use canonical::mapping::{
    ApplyErrorKind, CompiledRuleSet, Context, CurrencySource, DateSource, Expr, NO_RULE, Op,
    Origin, RateEntry, RateFeed, RateOrigin, RateSource, Record, RoundMode, Rule, RuleSet, Schema,
    ValidationErrorKind, Value, ValueType, ops,
};
use canonical::{CatalogItem, Currency, Sku, VatRate};
use chrono::NaiveDate;
use proptest::prelude::*;
use rust_decimal::{Decimal, dec};

const FIXTURE: &str = include_str!("fixtures/smartbill_to_cdon.json");

fn rule_set() -> RuleSet {
    serde_json::from_str(FIXTURE).expect("fixture parses")
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn ctx() -> Context<'static> {
    Context::on(date("2025-03-04"))
}

/// The SmartBill side: a catalog item plus SmartBill's extra fields.
fn smartbill_schema() -> Schema {
    Schema::new()
        .required("sku", ValueType::Text)
        .required("name", ValueType::Text)
        .required("price", ValueType::Decimal)
        .required("price_includes_vat", ValueType::Bool)
        .enumerated(
            "vat_percent",
            ValueType::Decimal,
            [dec!(19), dec!(9), dec!(0)],
        )
        .enumerated("currency", ValueType::Text, ["RON"])
        .enumerated("unit", ValueType::Text, ["buc", "set", "kg"])
        .field("brand", ValueType::Text)
        .field("description", ValueType::Text)
        .field("category", ValueType::Text)
        .field("stock", ValueType::Integer)
        .field("active", ValueType::Bool)
        .field("price_date", ValueType::Date)
}

/// The CDON side for markets SE, NO, DK, FI.
fn cdon_schema() -> Schema {
    let mut s = Schema::new()
        .required("title.sv-SE", ValueType::Text)
        .required("description.sv-SE", ValueType::Text)
        .field("currency.SE", ValueType::Text)
        .field("unit", ValueType::Text)
        .field("vat_code", ValueType::Text)
        .field("category", ValueType::Text)
        .required("stock", ValueType::Integer);
    for market in ["SE", "NO", "DK", "FI"] {
        s = s.required(format!("price.{market}"), ValueType::Decimal);
    }
    s
}

fn item() -> Record {
    let item = CatalogItem {
        sku: Sku::new("CANA-01").unwrap(),
        name: "Cană ceramică 350 ml".into(),
        price: dec!(99.90),
        price_includes_vat: false,
        vat: Some(VatRate::percent(dec!(19)).unwrap()),
        currency: Currency::Ron,
        unit: "buc".into(),
    };
    Record::from(&item)
        .with("brand", "Acme")
        .with("description", Value::Null)
        .with("category", "CANI")
        .with("stock", 7i64)
        .with("active", true)
        .with("price_date", date("2025-03-02"))
}

#[test]
fn smartbill_ron_net_item_maps_to_cdon_gross_prices_with_provenance() {
    let set = rule_set();
    set.validate(&smartbill_schema(), &cdon_schema())
        .expect("fixture is valid");
    let compiled = set.compile().unwrap();
    assert_eq!(compiled.direction(), "erp_to_marketplace");
    let out = compiled.apply(&item(), &ctx()).unwrap();
    let r = &out.record;
    assert_eq!(r.get("price.SE"), Some(&Value::Decimal(dec!(290))));
    assert_eq!(r.get("price.NO"), Some(&Value::Decimal(dec!(293))));
    assert_eq!(r.get("price.DK"), Some(&Value::Decimal(dec!(187.95))));
    assert_eq!(r.get("price.FI"), Some(&Value::Decimal(dec!(25.20))));
    assert_eq!(r.get("currency.SE"), Some(&Value::Text("SEK".into())));
    assert_eq!(
        r.get("title.sv-SE"),
        Some(&Value::Text("Acme Cană ceramică 350 ml".into()))
    );
    assert_eq!(
        r.get("description.sv-SE"),
        Some(&Value::Text("Se bilder".into()))
    );
    assert_eq!(r.get("unit"), Some(&Value::Text("pcs".into())));
    assert_eq!(r.get("vat_code"), Some(&Value::Text("S".into())));
    assert_eq!(r.get("category"), Some(&Value::Text("kitchen/mugs".into())));
    assert_eq!(r.get("stock"), Some(&Value::Integer(7)));

    // SE: 99.90 × 1.25 = 124.875 RON; today's rate is the 03-03 one (2.32), not 03-01's.
    let se = out.trace("price.SE").unwrap();
    assert_eq!(se.rule, "price_se");
    assert_eq!(se.origin, Origin::Source);
    assert_eq!(se.source, &Value::Decimal(dec!(99.90)));
    let ops: Vec<_> = se.steps.iter().map(|s| s.op).collect();
    assert_eq!(ops, ["vat_add", "convert", "round"]);
    assert_eq!(se.steps[0].value, Value::Decimal(dec!(124.875)));
    assert_eq!(se.steps[1].value, Value::Decimal(dec!(289.71)));
    let fx = se.fx().unwrap();
    assert_eq!(
        (
            fx.from,
            fx.to,
            fx.rate,
            fx.rate_date,
            fx.requested,
            fx.inverted
        ),
        (
            Currency::Ron,
            Currency::Sek,
            dec!(2.32),
            date("2025-03-03"),
            date("2025-03-04"),
            false
        )
    );

    // FI: dated by the item's price_date, from the EUR→RON entry inverted.
    let fi = out.trace("price.FI").unwrap();
    let fx = fi.fx().unwrap();
    assert!(fx.inverted);
    assert_eq!(fx.rate_date, date("2025-03-01"));
    assert_eq!(fx.requested, date("2025-03-02"));
    assert_eq!(fx.rate, Decimal::ONE / dec!(4.9750));
    assert_eq!(fi.steps[0].value, Value::Decimal(dec!(125.3745)));
    assert_eq!(
        fi.steps[1].value,
        Value::Decimal(dec!(125.3745) * fx.rate),
        "the recorded rate reproduces the converted value"
    );

    let desc = out.trace("description.sv-SE").unwrap();
    assert_eq!(desc.origin, Origin::DefaultNoSource);
    assert!(desc.steps.is_empty());
    assert_eq!(out.traces().count(), 11);
}

#[test]
fn conditions_choose_default_or_skip() {
    let compiled = rule_set().compile().unwrap();
    let inactive = item().with("active", false);
    let out = compiled.apply(&inactive, &ctx()).unwrap();
    assert_eq!(out.record.get("stock"), Some(&Value::Integer(0)));
    assert_eq!(out.trace("stock").unwrap().origin, Origin::DefaultWhenFalse);
    // Without a default, a false condition writes nothing.
    let mut set = rule_set();
    let stock = set.rules.iter_mut().find(|r| r.id == "stock").unwrap();
    stock.default = None;
    let out = set
        .compile()
        .unwrap()
        .apply(&item().with("stock", 0i64), &ctx())
        .unwrap();
    assert!(out.record.get("stock").is_none() && out.trace("stock").is_none());
}

#[test]
fn lookups_match_numbers_by_value_and_fall_back_to_default() {
    let compiled = rule_set().compile().unwrap();
    let out = compiled
        .apply(&item().with("vat_percent", dec!(9.00)), &ctx())
        .unwrap();
    assert_eq!(out.record.get("vat_code"), Some(&Value::Text("R".into())));
    let out = compiled
        .apply(&item().with("vat_percent", dec!(5)), &ctx())
        .unwrap();
    assert_eq!(out.record.get("vat_code"), Some(&Value::Text("S".into())));
    let out = compiled
        .apply(&item().with("category", "Necunoscut"), &ctx())
        .unwrap();
    assert_eq!(
        out.record.get("category"),
        Some(&Value::Text("other".into()))
    );
}

fn apply_err(record: &Record, ctx: &Context) -> canonical::mapping::ApplyError {
    rule_set()
        .compile()
        .unwrap()
        .apply(record, ctx)
        .expect_err("should fail")
}

#[test]
fn runtime_errors_name_rule_and_field() {
    // A lookup with no entry and no default.
    let e = apply_err(&item().with("unit", "palet"), &ctx());
    assert_eq!((&*e.rule, &*e.field), ("unit", "unit"));
    assert!(matches!(e.kind, ApplyErrorKind::NoLookupEntry { ref key, .. } if key == "palet"));
    assert!(e.to_string().contains("`unit`") && e.to_string().contains("palet"));

    // A missing source field (no default).
    let mut r = Record::new();
    for (k, v) in item().iter() {
        if k != "price" {
            r.insert(k, v.clone());
        }
    }
    let e = apply_err(&r, &ctx());
    assert_eq!((&*e.rule, &*e.field), ("price_se", "price"));
    assert_eq!(e.kind, ApplyErrorKind::MissingField);

    // A type mismatch at run time.
    let e = apply_err(&item().with("price", "12,50"), &ctx());
    assert_eq!((&*e.rule, &*e.field), ("price_se", "price.SE"));
    assert!(matches!(
        e.kind,
        ApplyErrorKind::TypeMismatch {
            op: "vat_add",
            found: "text",
            ..
        }
    ));

    // No rate on or before the date.
    let early = Context::on(date("2025-02-01"));
    let e = apply_err(&item(), &early);
    assert_eq!((&*e.rule, &*e.field), ("price_se", "price.SE"));
    assert!(matches!(
        e.kind,
        ApplyErrorKind::NoRate {
            to: Currency::Sek,
            ..
        }
    ));

    // An unknown currency in the record.
    let e = apply_err(&item().with("currency", "XXX"), &ctx());
    assert_eq!((&*e.rule, &*e.field), ("price_se", "currency"));
    assert!(matches!(e.kind, ApplyErrorKind::UnknownCurrency(_)));
}

#[test]
fn vat_from_field_is_range_checked_at_run_time() {
    let mut set = rule_set();
    set.rules[0].ops[0] = Op::VatAdd {
        rate: RateSource::FromField("vat_percent".into()),
    };
    let compiled = set.compile().unwrap();
    let out = compiled.apply(&item(), &ctx()).unwrap();
    // 99.90 × 1.19 = 118.881 RON × 2.32 = 275.80392 → 276
    assert_eq!(out.record.get("price.SE"), Some(&Value::Decimal(dec!(276))));
    let e = compiled
        .apply(&item().with("vat_percent", dec!(190)), &ctx())
        .unwrap_err();
    assert_eq!((&*e.rule, &*e.field), ("price_se", "vat_percent"));
    assert_eq!(e.kind, ApplyErrorKind::VatOutOfRange(dec!(190)));
}

#[test]
fn concat_skips_nulls_and_text_ops_apply() {
    let set = RuleSet {
        schema: 1,
        direction: "erp_to_marketplace".into(),
        rules: vec![Rule {
            id: "sku_title".into(),
            target: "title".into(),
            source: Expr::Concat {
                parts: vec![
                    Expr::Field("brand".into()),
                    Expr::Field("description".into()),
                    Expr::Literal(Value::Integer(350)),
                    Expr::Template("{{{sku}}}".into()),
                ],
                separator: " / ".into(),
            },
            ops: vec![Op::Upper, Op::Truncate { n: 17 }],
            when: None,
            default: None,
        }],
        tables: Default::default(),
        rates: vec![],
        vat_table: Default::default(),
    };
    let out = set.compile().unwrap().apply(&item(), &ctx()).unwrap();
    let t = out.trace("title").unwrap();
    assert_eq!(t.source, &Value::Text("Acme / 350 / {CANA-01}".into()));
    assert_eq!(
        t.steps[0].value,
        Value::Text("ACME / 350 / {CANA-01}".into())
    );
    assert_eq!(
        out.record.get("title"),
        Some(&Value::Text("ACME / 350 / {CAN".into()))
    );
}

#[test]
fn json_is_strict_and_round_trips() {
    let set = rule_set();
    let back: RuleSet = serde_json::from_str(&serde_json::to_string(&set).unwrap()).unwrap();
    assert_eq!(back, set);
    let typo = FIXTURE.replacen("\"ops\"", "\"opz\"", 1);
    assert!(serde_json::from_str::<RuleSet>(&typo).is_err());
    let bad_op = FIXTURE.replacen("\"step\": \"1\"", "\"step\": \"1\", \"stepp\": 2", 1);
    assert!(serde_json::from_str::<RuleSet>(&bad_op).is_err());
}

/// A table of invalid rule sets: each must be rejected with an error naming the rule and the
/// field, of the expected kind.
#[test]
fn invalid_rule_sets_are_rejected_naming_rule_and_field() {
    type Edit = fn(&mut RuleSet);
    type Kind = fn(&ValidationErrorKind) -> bool;
    fn rule<'a>(s: &'a mut RuleSet, id: &str) -> &'a mut Rule {
        s.rules.iter_mut().find(|r| r.id == id).unwrap()
    }
    let cases: Vec<(&str, Edit, &str, &str, Kind)> = vec![
        (
            "unknown source field in a template",
            |s| rule(s, "title_se").source = Expr::Template("{brand} {nmae}".into()),
            "title_se",
            "nmae",
            |k| matches!(k, ValidationErrorKind::UnknownSourceField),
        ),
        (
            "unknown target field",
            |s| rule(s, "currency_se").target = "currency.XX".into(),
            "currency_se",
            "currency.XX",
            |k| matches!(k, ValidationErrorKind::UnknownTargetField),
        ),
        (
            "rounding a text",
            |s| {
                rule(s, "title_se").ops.push(Op::Round {
                    mode: RoundMode::HalfUp,
                    step: dec!(1),
                    ending: None,
                })
            },
            "title_se",
            "title.sv-SE",
            |k| matches!(k, ValidationErrorKind::TypeMismatch { expected, found, .. } if expected == "decimal" && found == "text"),
        ),
        (
            "target of the wrong type",
            |s| rule(s, "stock").source = Expr::Field("name".into()),
            "stock",
            "stock",
            |k| matches!(k, ValidationErrorKind::TypeMismatch { at, .. } if at == "target"),
        ),
        (
            "missing required target",
            |s| s.rules.retain(|r| r.id != "description_se"),
            NO_RULE,
            "description.sv-SE",
            |k| matches!(k, ValidationErrorKind::MissingRequiredTarget),
        ),
        (
            "missing required price for a configured market",
            |s| s.rules.retain(|r| r.id != "price_dk"),
            NO_RULE,
            "price.DK",
            |k| matches!(k, ValidationErrorKind::MissingRequiredTarget),
        ),
        (
            "lookup table missing",
            |s| {
                rule(s, "unit").ops = vec![Op::Lookup {
                    table: "unitz".into(),
                    default: None,
                }]
            },
            "unit",
            "unit",
            |k| matches!(k, ValidationErrorKind::UnknownTable(t) if t == "unitz"),
        ),
        (
            "lookup without default not covering the source enum",
            |s| {
                s.tables.get_mut("units").unwrap().entries.remove("kg");
            },
            "unit",
            "unit",
            |k| matches!(k, ValidationErrorKind::LookupNotCovering { missing, .. } if missing == &["kg".to_string()]),
        ),
        (
            "decimal-keyed lookup without default not covering",
            |s| {
                rule(s, "vat_code").ops = vec![Op::Lookup {
                    table: "vat_codes".into(),
                    default: None,
                }];
                s.tables.get_mut("vat_codes").unwrap().entries.remove("9");
            },
            "vat_code",
            "vat_percent",
            |k| matches!(k, ValidationErrorKind::LookupNotCovering { missing, .. } if missing == &["9".to_string()]),
        ),
        (
            "duplicate rule id",
            |s| rule(s, "price_no").id = "price_se".into(),
            "price_se",
            "price.NO",
            |k| matches!(k, ValidationErrorKind::DuplicateRuleId),
        ),
        (
            "duplicate target",
            |s| rule(s, "price_no").target = "price.SE".into(),
            "price_no",
            "price.SE",
            |k| matches!(k, ValidationErrorKind::DuplicateTarget(other) if other == "price_se"),
        ),
        (
            "zero rounding step",
            |s| {
                rule(s, "price_se").ops[2] = Op::Round {
                    mode: RoundMode::HalfUp,
                    step: dec!(0),
                    ending: None,
                }
            },
            "price_se",
            "price.SE",
            |k| matches!(k, ValidationErrorKind::InvalidRounding(_)),
        ),
        (
            "charm ending not below the step",
            |s| {
                rule(s, "price_dk").ops[2] = Op::Round {
                    mode: RoundMode::Up,
                    step: dec!(0.10),
                    ending: Some(dec!(0.99)),
                }
            },
            "price_dk",
            "price.DK",
            |k| matches!(k, ValidationErrorKind::InvalidRounding(_)),
        ),
        (
            "fixed VAT rate out of range",
            |s| {
                rule(s, "price_no").ops[0] = Op::VatAdd {
                    rate: RateSource::Fixed(dec!(125)),
                }
            },
            "price_no",
            "price.NO",
            |k| matches!(k, ValidationErrorKind::VatOutOfRange(r) if *r == dec!(125)),
        ),
        (
            "VAT table entry out of range",
            |s| {
                s.vat_table.insert("SE".into(), dec!(-5));
            },
            "vat_table",
            "SE",
            |k| matches!(k, ValidationErrorKind::VatOutOfRange(_)),
        ),
        (
            "VAT table key unknown",
            |s| {
                rule(s, "price_fi").ops[0] = Op::VatAdd {
                    rate: RateSource::Table("FIN".into()),
                }
            },
            "price_fi",
            "price.FI",
            |k| matches!(k, ValidationErrorKind::UnknownVatKey(key) if key == "FIN"),
        ),
        (
            "VAT rate field of the wrong type",
            |s| {
                rule(s, "price_fi").ops[0] = Op::VatStrip {
                    rate: RateSource::FromField("unit".into()),
                }
            },
            "price_fi",
            "unit",
            |k| matches!(k, ValidationErrorKind::TypeMismatch { .. }),
        ),
        (
            "unknown target currency",
            |s| {
                rule(s, "price_se").ops[1] = Op::Convert {
                    to: "SEKK".into(),
                    from: CurrencySource::Field("currency".into()),
                    date: DateSource::Today,
                }
            },
            "price_se",
            "price.SE",
            |k| matches!(k, ValidationErrorKind::UnknownCurrency(c) if c == "SEKK"),
        ),
        (
            "unknown currency in the rates table",
            |s| {
                s.rates.push(RateEntry {
                    date: date("2025-03-01"),
                    from: "RON".into(),
                    to: "GBP".into(),
                    rate: dec!(0.17),
                })
            },
            "rates",
            "rates[5]",
            |k| matches!(k, ValidationErrorKind::UnknownCurrency(c) if c == "GBP"),
        ),
        (
            "conversion without any rate",
            |s| {
                rule(s, "price_se").ops[1] = Op::Convert {
                    to: "USD".into(),
                    from: CurrencySource::Fixed("RON".into()),
                    date: DateSource::Today,
                }
            },
            "price_se",
            "price.SE",
            |k| matches!(k, ValidationErrorKind::NoRate { from, to } if from == "RON" && to == "USD"),
        ),
        (
            "a declared source currency without a rate",
            |s| s.rates.retain(|r| r.to != "NOK"),
            "price_no",
            "price.NO",
            |k| matches!(k, ValidationErrorKind::NoRate { from, to } if from == "RON" && to == "NOK"),
        ),
        (
            "non-positive rate",
            |s| s.rates[0].rate = dec!(0),
            "rates",
            "rates[0]",
            |k| matches!(k, ValidationErrorKind::InvalidRate(_)),
        ),
        (
            "conversion date field not a date",
            |s| {
                rule(s, "price_fi").ops[1] = Op::Convert {
                    to: "EUR".into(),
                    from: CurrencySource::Field("currency".into()),
                    date: DateSource::Field("sku".into()),
                }
            },
            "price_fi",
            "sku",
            |k| matches!(k, ValidationErrorKind::TypeMismatch { expected, .. } if expected == "date"),
        ),
        (
            "unclosed template",
            |s| rule(s, "title_se").source = Expr::Template("{brand {name}".into()),
            "title_se",
            "title.sv-SE",
            |k| matches!(k, ValidationErrorKind::Invalid(m) if m.contains("unclosed")),
        ),
        (
            "condition on an unknown field",
            |s| {
                rule(s, "stock").when = Some(canonical::mapping::Condition::IsNull {
                    field: "actve".into(),
                })
            },
            "stock",
            "actve",
            |k| matches!(k, ValidationErrorKind::UnknownSourceField),
        ),
        (
            "condition comparing a number to text",
            |s| {
                rule(s, "stock").when = Some(canonical::mapping::Condition::Gt(
                    canonical::mapping::Comparison {
                        field: "stock".into(),
                        value: Value::Text("0".into()),
                    },
                ))
            },
            "stock",
            "stock",
            |k| matches!(k, ValidationErrorKind::TypeMismatch { .. }),
        ),
        (
            "default of the wrong type",
            |s| rule(s, "description_se").default = Some(Value::Integer(1)),
            "description_se",
            "description.sv-SE",
            |k| matches!(k, ValidationErrorKind::TypeMismatch { at, .. } if at == "default"),
        ),
        (
            "lookup table mixing types",
            |s| {
                s.tables
                    .get_mut("units")
                    .unwrap()
                    .entries
                    .insert("cutie".into(), Value::Integer(12));
            },
            "tables.units",
            "units",
            |k| matches!(k, ValidationErrorKind::MixedTable(_)),
        ),
        (
            "unsupported schema version",
            |s| s.schema = 2,
            "schema",
            "schema",
            |k| matches!(k, ValidationErrorKind::SchemaVersion(2)),
        ),
    ];
    assert!(
        rule_set()
            .validate(&smartbill_schema(), &cdon_schema())
            .is_ok()
    );
    for (name, edit, want_rule, want_field, kind) in cases {
        let mut set = rule_set();
        edit(&mut set);
        let errors = set
            .validate(&smartbill_schema(), &cdon_schema())
            .expect_err(name);
        let hit = errors
            .iter()
            .find(|e| e.rule == want_rule && e.field == want_field && kind(&e.kind));
        let Some(hit) = hit else {
            panic!("{name}: no error for rule {want_rule:?} field {want_field:?} in {errors:#?}");
        };
        let shown = hit.to_string();
        assert!(
            shown.contains(want_rule) && shown.contains(want_field),
            "{name}: {shown}"
        );
    }
}

#[test]
fn compile_rejects_what_needs_no_schema() {
    let mut set = rule_set();
    set.rules[0].ops[2] = Op::Round {
        mode: RoundMode::Down,
        step: dec!(-1),
        ending: None,
    };
    let errors = set.compile().unwrap_err();
    assert!(errors.iter().any(|e| e.rule == "price_se"
        && e.field == "price.SE"
        && matches!(e.kind, ValidationErrorKind::InvalidRounding(_))));
    // Unknown fields pass `compile` (no schema) and fail at run time instead.
    let mut set = rule_set();
    set.rules[0].source = Expr::Field("pret".into());
    let compiled: CompiledRuleSet = set.compile().unwrap();
    let e = compiled.apply(&item(), &ctx()).unwrap_err();
    assert_eq!((&*e.rule, &*e.field), ("price_se", "pret"));
}

// ---- property tests -------------------------------------------------------------------------

fn steps() -> impl Strategy<Value = Decimal> {
    prop::sample::select(vec![dec!(0.01), dec!(0.05), dec!(0.10), dec!(1)])
}

fn half_modes() -> impl Strategy<Value = RoundMode> {
    prop::sample::select(vec![RoundMode::HalfEven, RoundMode::HalfUp])
}

fn all_modes() -> impl Strategy<Value = RoundMode> {
    prop::sample::select(vec![
        RoundMode::HalfEven,
        RoundMode::HalfUp,
        RoundMode::Up,
        RoundMode::Down,
    ])
}

/// An amount with up to 4 decimals, within ±10^13.
fn amounts() -> impl Strategy<Value = Decimal> {
    (-10_000_000_000_000_i64..10_000_000_000_000_i64, 0u32..=4)
        .prop_map(|(m, s)| Decimal::new(m, s))
}

fn vat_rates() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        prop::sample::select(vec![
            dec!(0),
            dec!(5),
            dec!(9),
            dec!(19),
            dec!(25),
            dec!(25.5)
        ]),
        (0i64..=1000).prop_map(|p| Decimal::new(p, 1)),
    ]
}

fn single_rule(ops: Vec<Op>, rates: Vec<RateEntry>) -> CompiledRuleSet {
    RuleSet {
        schema: 1,
        direction: "erp_to_marketplace".into(),
        rules: vec![Rule {
            id: "p".into(),
            target: "out".into(),
            source: Expr::Field("price".into()),
            ops,
            when: None,
            default: None,
        }],
        tables: Default::default(),
        rates,
        vat_table: Default::default(),
    }
    .compile()
    .unwrap()
}

/// An ECB-like feed: EUR-based rates for a few days.
fn ecb_feed() -> RateFeed {
    let mut f = RateFeed::new(7);
    for (day, ron, sek) in [
        ("2025-03-03", dec!(4.9770), dec!(11.1300)),
        ("2025-03-04", dec!(4.9760), dec!(11.1100)),
    ] {
        f.insert(date(day), Currency::Eur, Currency::Ron, ron)
            .unwrap();
        f.insert(date(day), Currency::Eur, Currency::Sek, sek)
            .unwrap();
    }
    f
}

fn ron_to_sek() -> Vec<Op> {
    vec![Op::Convert {
        to: "SEK".into(),
        from: CurrencySource::Fixed("RON".into()),
        date: DateSource::Today,
    }]
}

#[test]
fn conversions_without_own_rates_use_the_feed_crossed_through_eur() {
    let compiled = single_rule(ron_to_sek(), vec![]);
    let feed = ecb_feed();
    let rec = Record::new().with("price", dec!(100));
    // No feed: no rate, naming rule and field.
    let e = compiled.apply(&rec, &ctx()).unwrap_err();
    assert!(matches!(e.kind, ApplyErrorKind::NoRate { .. }), "{e}");
    assert_eq!((&*e.rule, &*e.field), ("p", "out"));

    let out = compiled.apply(&rec, &ctx().with_feed(&feed)).unwrap();
    let fx = *out.trace("out").unwrap().fx().unwrap();
    assert_eq!(fx.origin, RateOrigin::Feed);
    assert_eq!(fx.via, Some(Currency::Eur));
    assert_eq!(fx.rate_date, date("2025-03-04"));
    let value = out.record.get("out").unwrap().as_decimal().unwrap();
    assert_eq!(value, dec!(100) * fx.rate);
    assert!(value > dec!(223) && value < dec!(224), "{value}");
}

#[test]
fn a_rule_sets_own_rates_are_pinned_over_the_feed() {
    let pinned = vec![RateEntry {
        date: date("2025-01-01"),
        from: "RON".into(),
        to: "SEK".into(),
        rate: dec!(2.0),
    }];
    let compiled = single_rule(ron_to_sek(), pinned);
    let feed = ecb_feed();
    let out = compiled
        .apply(
            &Record::new().with("price", dec!(10)),
            &ctx().with_feed(&feed),
        )
        .unwrap();
    let fx = *out.trace("out").unwrap().fx().unwrap();
    assert_eq!((fx.origin, fx.rate), (RateOrigin::RuleSet, dec!(2.0)));
    assert_eq!(out.record.get("out"), Some(&Value::from(dec!(20.0))));
}

#[test]
fn a_stale_feed_fails_the_item_rather_than_price_it_from_an_old_rate() {
    let compiled = single_rule(ron_to_sek(), vec![]);
    let feed = ecb_feed();
    let late = Context::on(date("2025-03-20")).with_feed(&feed);
    let e = compiled
        .apply(&Record::new().with("price", dec!(10)), &late)
        .unwrap_err();
    assert!(
        matches!(e.kind, ApplyErrorKind::StaleRate { rate_date, max_age_days: 7, .. } if rate_date == date("2025-03-04")),
        "{e}"
    );
    assert!(e.to_string().contains("megzo rates import"), "{e}");
}

#[test]
fn validation_counts_the_feeds_pairs_and_names_the_rule_without_them() {
    let mut set = rule_set();
    set.rates.clear();
    // Only SEK and EUR and RON in the feed: NOK and DKK prices have no rate.
    let errors = set
        .validate_with_feed(Some(&smartbill_schema()), Some(&cdon_schema()), &ecb_feed())
        .unwrap_err();
    let missing: Vec<(&str, &str)> = errors
        .iter()
        .filter(|e| matches!(e.kind, ValidationErrorKind::NoRate { .. }))
        .map(|e| (e.rule.as_str(), e.field.as_str()))
        .collect();
    assert_eq!(
        missing,
        [("price_no", "price.NO"), ("price_dk", "price.DK")]
    );
    let mut feed = ecb_feed();
    feed.insert(date("2025-03-04"), Currency::Eur, Currency::Nok, dec!(11.7))
        .unwrap();
    feed.insert(date("2025-03-04"), Currency::Eur, Currency::Dkk, dec!(7.46))
        .unwrap();
    set.validate_with_feed(Some(&smartbill_schema()), Some(&cdon_schema()), &feed)
        .unwrap();
    // Without the feed, the same set is refused (the rates must be the set's own).
    assert!(set.validate(&smartbill_schema(), &cdon_schema()).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A conversion through the feed (direct, inverted or crossed) is reproduced exactly by
    /// the rate it records.
    #[test]
    fn feed_conversion_with_recorded_rate_reproduces_value(
        amount in amounts(),
        eur_ron in 1i64..100_000,
        eur_sek in 1i64..100_000,
        pair in 0usize..4,
    ) {
        let mut feed = RateFeed::new(7);
        feed.insert(date("2025-03-03"), Currency::Eur, Currency::Ron, Decimal::new(eur_ron, 4)).unwrap();
        feed.insert(date("2025-03-03"), Currency::Eur, Currency::Sek, Decimal::new(eur_sek, 4)).unwrap();
        let (from, to) = [("RON", "SEK"), ("SEK", "RON"), ("EUR", "RON"), ("RON", "EUR")][pair];
        let compiled = single_rule(
            vec![Op::Convert {
                to: to.into(),
                from: CurrencySource::Fixed(from.into()),
                date: DateSource::Today,
            }],
            vec![],
        );
        let res = compiled.apply(&Record::new().with("price", amount), &ctx().with_feed(&feed));
        match res {
            Ok(out) => {
                let fx = *out.trace("out").unwrap().fx().unwrap();
                let value = out.record.get("out").unwrap().as_decimal().unwrap();
                prop_assert_eq!(value, amount * fx.rate);
                prop_assert_eq!(fx.origin, RateOrigin::Feed);
                prop_assert_eq!(fx.via.is_some(), pair < 2);
            }
            // Only an overflow of the decimal range may fail.
            Err(e) => prop_assert!(matches!(e.kind, ApplyErrorKind::Overflow(_)), "{}", e),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// VAT add, round, strip, round returns the input within one rounding step.
    #[test]
    fn vat_add_then_strip_is_within_a_step(
        net in (0i64..100_000_000).prop_map(|c| Decimal::new(c, 2)),
        rate in vat_rates(),
        step in steps(),
        mode in half_modes(),
    ) {
        let round = Op::Round { mode, step, ending: None };
        let compiled = single_rule(
            vec![
                Op::VatAdd { rate: RateSource::Fixed(rate) },
                round.clone(),
                Op::VatStrip { rate: RateSource::Fixed(rate) },
                round,
            ],
            vec![],
        );
        let out = compiled.apply(&Record::new().with("price", net), &ctx()).unwrap();
        let back = out.record.get("out").unwrap().as_decimal().unwrap();
        prop_assert!((back - net).abs() <= step, "{net} at {rate} % step {step}: {back}");
        // The unrounded formulas are exact inverses up to Decimal precision.
        let exact = ops::vat_strip(ops::vat_add(net, rate).unwrap(), rate).unwrap();
        prop_assert!((exact - net).abs() < dec!(0.000000001));
    }

    /// Rounding twice equals rounding once, for every mode, step and valid charm ending.
    #[test]
    fn rounding_is_idempotent(
        v in amounts(),
        mode in all_modes(),
        grid in prop_oneof![
            steps().prop_map(|s| (s, None)),
            prop::sample::select(vec![dec!(0.99), dec!(0.90), dec!(0.95), dec!(0.49)])
                .prop_map(|e| (dec!(1), Some(e))),
            Just((dec!(10), Some(dec!(9.90)))),
        ],
    ) {
        let (step, ending) = grid;
        let once = ops::round(v, mode, step, ending).unwrap();
        let twice = ops::round(once, mode, step, ending).unwrap();
        prop_assert_eq!(once, twice);
        // On the grid k × step + ending.
        let k = (once - ending.unwrap_or_default()) / step;
        prop_assert_eq!(k, k.trunc());
        // And within one step of the input (non-negative inputs may be lifted to the ending).
        if v < Decimal::ZERO || once > ending.unwrap_or_default() {
            prop_assert!((once - v).abs() <= step, "{} -> {}", v, once);
        }
    }

    /// The engine's `round` op (which has a fast path for steps 0.01, 0.1, 1) agrees with
    /// [`ops::round`].
    #[test]
    fn engine_rounding_matches_the_formula(
        v in amounts(),
        mode in all_modes(),
        step in prop::sample::select(vec![dec!(0.01), dec!(0.10), dec!(0.1), dec!(1), dec!(0.05), dec!(10)]),
    ) {
        let compiled = single_rule(vec![Op::Round { mode, step, ending: None }], vec![]);
        let out = compiled.apply(&Record::new().with("price", v), &ctx()).unwrap();
        let got = out.record.get("out").unwrap().as_decimal().unwrap();
        let want = ops::round(v, mode, step, None).unwrap();
        prop_assert_eq!(got, want);
        prop_assert_eq!(got.scale(), want.scale());
    }

    /// A conversion's recorded rate reproduces its value, and is the table's latest rate on
    /// or before the date (or the inverse of the reverse pair's).
    #[test]
    fn conversion_with_recorded_rate_reproduces_value(
        amount in amounts(),
        entries in prop::collection::vec((0u32..60, 1i64..100_000, any::<bool>()), 1..12),
        day in 0u32..90,
    ) {
        let base = date("2025-01-01");
        let rates: Vec<RateEntry> = entries
            .iter()
            .map(|(d, r, reverse)| {
                let (from, to) = if *reverse { ("SEK", "RON") } else { ("RON", "SEK") };
                RateEntry {
                    date: base + chrono::Days::new(u64::from(*d)),
                    from: from.into(),
                    to: to.into(),
                    rate: Decimal::new(*r, 4),
                }
            })
            .collect();
        let compiled = single_rule(
            vec![Op::Convert {
                to: "SEK".into(),
                from: CurrencySource::Fixed("RON".into()),
                date: DateSource::Today,
            }],
            rates.clone(),
        );
        let today = base + chrono::Days::new(u64::from(day));
        let res = compiled.apply(&Record::new().with("price", amount), &Context::on(today));
        let first = rates.iter().map(|r| r.date).min().unwrap();
        if today < first {
            prop_assert!(res.is_err());
            let e = res.unwrap_err();
            prop_assert!(matches!(e.kind, ApplyErrorKind::NoRate { .. }), "{}", e);
            return Ok(());
        }
        let out = res.unwrap();
        let t = out.trace("out").unwrap();
        let fx = *t.fx().unwrap();
        let value = out.record.get("out").unwrap().as_decimal().unwrap();
        prop_assert_eq!(value, amount * fx.rate);
        prop_assert!(fx.rate_date <= today && fx.requested == today);
        let latest = rates.iter().filter(|r| r.date <= today).map(|r| r.date).max().unwrap();
        prop_assert_eq!(fx.rate_date, latest);
        let candidates: Vec<Decimal> = rates
            .iter()
            .filter(|r| r.date == latest)
            .map(|r| if r.from == "RON" { r.rate } else { Decimal::ONE / r.rate })
            .collect();
        prop_assert!(candidates.contains(&fx.rate), "{} not in {:?}", fx.rate, candidates);
        if rates.iter().any(|r| r.date == latest && r.from == "RON") {
            prop_assert!(!fx.inverted, "a direct rate wins over an inverted one");
        }
    }
}
