//! Applies a realistic rule set (15 rules: gross prices for SE/NO/DK/FI with VAT add, dated
//! conversion and rounding incl. a charm ending, currencies, a title template, a description
//! default, lookups for unit, VAT code and category, a conditional stock) to 100,000 generated
//! products. Prints the median and best of 5 runs, per product too.
//!
//! `cargo bench -p canonical --bench mapping`

use std::hint::black_box;
use std::time::{Duration, Instant};

use canonical::mapping::{CompiledRuleSet, Context, Expr, Output, Record, Rule, RuleSet, Value};
use canonical::{CatalogItem, Currency, Sku, VatRate};
use chrono::NaiveDate;
use rust_decimal::Decimal;

const PRODUCTS: usize = 100_000;
const RUNS: usize = 5;

fn rule_set() -> RuleSet {
    let mut set: RuleSet =
        serde_json::from_str(include_str!("../tests/fixtures/smartbill_to_cdon.json"))
            .expect("fixture parses");
    for (market, code) in [("NO", "NOK"), ("DK", "DKK"), ("FI", "EUR")] {
        set.rules.push(Rule {
            id: format!("currency_{}", market.to_lowercase()),
            target: format!("currency.{market}"),
            source: Expr::Literal(Value::Text(code.into())),
            ops: vec![],
            when: None,
            default: None,
        });
    }
    set.rules.push(Rule {
        id: "sku".into(),
        target: "sku".into(),
        source: Expr::Field("sku".into()),
        ops: vec![],
        when: None,
        default: None,
    });
    set
}

/// Generates products the way a flow builds records: catalog fields from the `CatalogItem`
/// conversion, extra fields under names taken once from the compiled rule set.
fn products(compiled: &CompiledRuleSet) -> Vec<Record> {
    let [brand, description, category, stock, active, price_date] = [
        "brand",
        "description",
        "category",
        "stock",
        "active",
        "price_date",
    ]
    .map(|n| compiled.field_name(n));
    let units = ["buc", "set", "kg"];
    let vats = [Decimal::from(19), Decimal::from(9), Decimal::ZERO];
    let categories = ["CANI", "ceai", "Altele"];
    let brands = ["Acme", "Horeca Pro", "Zen"];
    let day = NaiveDate::from_ymd_opt(2025, 3, 1).expect("date");
    (0..PRODUCTS)
        .map(|i| {
            let item = CatalogItem {
                sku: Sku::new(format!("SKU-{i:06}")).expect("sku"),
                name: format!("Produs de test numărul {i} cu un nume realist"),
                price: Decimal::new(1_000 + (i as i64 * 7_919) % 500_000, 2),
                price_includes_vat: false,
                vat: Some(VatRate::percent(vats[i % 3]).expect("vat")),
                currency: Currency::Ron,
                unit: units[i % 3].into(),
            };
            Record::from(&item)
                .with(brand.clone(), brands[i % 3])
                .with(
                    description.clone(),
                    if i % 4 == 0 {
                        Value::Null
                    } else {
                        Value::Text(format!("Descriere {i}").into())
                    },
                )
                .with(category.clone(), categories[i % 3])
                .with(stock.clone(), (i % 13) as i64)
                .with(active.clone(), i % 10 != 0)
                .with(price_date.clone(), day + chrono::Days::new((i % 5) as u64))
        })
        .collect()
}

fn report(label: &str, mut times: Vec<Duration>) {
    times.sort();
    let median = times[times.len() / 2];
    let best = times[0];
    println!(
        "{label}: median {:.1} ms, best {:.1} ms over {RUNS} runs of {PRODUCTS} products \
         ({:.0} ns/product median, {:.0} ns/product best)",
        median.as_secs_f64() * 1e3,
        best.as_secs_f64() * 1e3,
        median.as_nanos() as f64 / PRODUCTS as f64,
        best.as_nanos() as f64 / PRODUCTS as f64,
    );
}

fn main() {
    let set = rule_set();
    let compiled = set.compile().expect("valid rule set");
    let ctx = Context::on(NaiveDate::from_ymd_opt(2025, 3, 4).expect("date"));
    let records = products(&compiled);
    println!(
        "rule set: {} rules; {} products; {} threads available",
        compiled.len(),
        records.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    // Warm up and check every product maps.
    for r in &records {
        compiled.apply(r, &ctx).expect("product maps");
    }

    // 1. One thread, a fresh Output per product, all outputs kept (what a flow does).
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let outs: Vec<Output> = records
            .iter()
            .map(|r| compiled.apply(r, &ctx).expect("maps"))
            .collect();
        times.push(start.elapsed());
        black_box(&outs);
    }
    report("apply, 1 thread, outputs kept", times);

    // 2. One thread, one reused Output (buffers reused).
    let mut times = Vec::new();
    let mut out = Output::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        for r in &records {
            compiled.apply_into(r, &ctx, &mut out).expect("maps");
            black_box(&out);
        }
        times.push(start.elapsed());
    }
    report("apply_into, 1 thread, reused output", times);

    // 3. Split over the available cores (2 here), outputs kept.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = records.len().div_ceil(threads);
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let outs: Vec<Vec<Output>> = std::thread::scope(|s| {
            let handles: Vec<_> = records
                .chunks(chunk)
                .map(|part| {
                    let compiled = &compiled;
                    s.spawn(move || {
                        part.iter()
                            .map(|r| compiled.apply(r, &ctx).expect("maps"))
                            .collect::<Vec<Output>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("worker"))
                .collect()
        });
        times.push(start.elapsed());
        black_box(&outs);
    }
    report(&format!("apply, {threads} threads, outputs kept"), times);

    // 4. Split over the available cores, one reused Output per thread (a flow that maps and
    //    pushes in batches).
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        std::thread::scope(|s| {
            for part in records.chunks(chunk) {
                let compiled = &compiled;
                s.spawn(move || {
                    let mut out = Output::new();
                    for r in part {
                        compiled.apply_into(r, &ctx, &mut out).expect("maps");
                        black_box(&out);
                    }
                });
            }
        });
        times.push(start.elapsed());
    }
    report(
        &format!("apply_into, {threads} threads, reused outputs"),
        times,
    );
}
