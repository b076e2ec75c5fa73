//! Computes the stock delta for 100,000 SKUs on two channels (`cdon`, `celro`) with realistic
//! buffers: a tenant buffer of 2 units, 10 % on `cdon`, a few hundred SKU and channel+SKU
//! buffers; unreflected order units on ~1 % of SKUs; and `shown` maps (what each channel was
//! last pushed) where ~1 % of SKUs changed since, plus 50 SKUs that left the ERP. Prints the
//! median and best of 7 runs of both channels together (the figure against the target: ≤ 250 ms
//! on the 2-core VM), each channel alone, and both channels in the steady state where no SKU left
//! the ERP (the delta then skips its second pass over `shown`). Checks that each channel gets
//! exactly the changed SKUs, so the bench fails if the delta sends everything.
//!
//! `cargo bench -p canonical --bench stock_delta`

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use canonical::Sku;
use canonical::StockUpdate;
use canonical::stock::{Buffer, BufferRules, StockInput, pushable, stock_delta};
use rust_decimal::Decimal;

const SKUS: usize = 100_000;
const RUNS: usize = 7;
const CHANNELS: [&str; 2] = ["cdon", "celro"];
/// SKUs that were in `shown` but have left the ERP, per channel.
const VANISHED: usize = 50;
/// The target for both channels together, in ms.
const TARGET_MS: f64 = 250.0;

fn sku(i: usize) -> Sku {
    Sku::new(format!("SKU-{i:06}")).expect("sku")
}

fn rules() -> BufferRules {
    let mut rules = BufferRules {
        tenant: Some(Buffer::Units(2)),
        channels: HashMap::from([("cdon".to_owned(), Buffer::Percent(Decimal::from(10)))]),
        ..BufferRules::default()
    };
    // 300 SKU buffers (fast sellers), 100 channel+SKU ones on each channel.
    for i in (0..SKUS).step_by(SKUS / 300) {
        rules.skus.insert(sku(i), Buffer::Units(5));
    }
    for i in (7..SKUS).step_by(SKUS / 100) {
        for (channel, buffer) in [
            ("cdon", Buffer::Percent(Decimal::new(125, 1))),
            ("celro", Buffer::Units(3)),
        ] {
            rules
                .channel_skus
                .insert((channel.to_owned(), sku(i)), buffer);
        }
    }
    rules
}

fn inputs() -> HashMap<Sku, StockInput> {
    (0..SKUS)
        .map(|i| {
            let input = StockInput {
                // 0..499 with some oversold (negative) SKUs.
                available: (i as i64 * 7_919) % 520 - 20,
                unreflected: if i % 100 == 3 { 1 + (i % 4) as u32 } else { 0 },
            };
            (sku(i), input)
        })
        .collect()
}

/// What `channel` was last pushed: the right quantity for every SKU except ~1 % (changed since),
/// plus `vanished` SKUs no longer in the ERP. Returns the map and how many updates it must cause.
fn shown(
    channel: &str,
    offset: usize,
    vanished: usize,
    rules: &BufferRules,
    inputs: &HashMap<Sku, StockInput>,
) -> (HashMap<Sku, u32>, usize) {
    let mut shown = HashMap::with_capacity(inputs.len() + vanished);
    let mut changed = 0;
    for (i, (sku, input)) in inputs.iter().enumerate() {
        let right = pushable(*input, rules.buffer_for(channel, sku));
        if (i + offset).is_multiple_of(100) {
            shown.insert(sku.clone(), right + 1 + (i % 3) as u32);
            changed += 1;
        } else {
            shown.insert(sku.clone(), right);
        }
    }
    for i in 0..vanished {
        shown.insert(sku(SKUS + i), 4);
    }
    (shown, changed + vanished)
}

/// Runs `stock_delta` for both channels `RUNS` times; the times of each run.
fn time_both(
    rules: &BufferRules,
    inputs: &HashMap<Sku, StockInput>,
    shown: &[Shown],
) -> Vec<Duration> {
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let all: Vec<Vec<StockUpdate>> = CHANNELS
            .iter()
            .zip(shown)
            .map(|(channel, (shown, _))| stock_delta(channel, rules, inputs, shown))
            .collect();
        times.push(start.elapsed());
        black_box(&all);
    }
    times
}

/// Checks that each channel gets exactly the changed SKUs, and prints how many.
fn check(rules: &BufferRules, inputs: &HashMap<Sku, StockInput>, shown: &[Shown]) {
    for (channel, (shown, expected)) in CHANNELS.iter().zip(shown) {
        let updates = stock_delta(channel, rules, inputs, shown);
        let vanished = updates
            .iter()
            .filter(|u| !inputs.contains_key(&u.sku))
            .count();
        println!(
            "  {channel}: {} updates ({:.2} % of {} SKUs; {vanished} vanished SKUs zeroed)",
            updates.len(),
            updates.len() as f64 * 100.0 / SKUS as f64,
            SKUS
        );
        assert_eq!(
            updates.len(),
            *expected,
            "{channel}: the delta must send exactly the changed SKUs"
        );
        assert!(
            updates.len() < SKUS / 50,
            "{channel}: the delta sends too much"
        );
    }
}

/// A channel's `shown` map and the number of updates it must cause.
type Shown = (HashMap<Sku, u32>, usize);

fn report(label: &str, mut times: Vec<Duration>) -> Duration {
    times.sort();
    let median = times[times.len() / 2];
    let best = times[0];
    println!(
        "{label}: median {:.1} ms, best {:.1} ms over {RUNS} runs ({:.0} ns/SKU/channel median)",
        median.as_secs_f64() * 1e3,
        best.as_secs_f64() * 1e3,
        median.as_nanos() as f64 / (SKUS * label_channels(label)) as f64,
    );
    median
}

fn label_channels(label: &str) -> usize {
    if label.starts_with("both") { 2 } else { 1 }
}

fn main() {
    let rules = rules();
    let inputs = inputs();
    let with_vanished: Vec<Shown> = CHANNELS
        .iter()
        .enumerate()
        .map(|(n, channel)| shown(channel, n * 37, VANISHED, &rules, &inputs))
        .collect();
    let steady: Vec<Shown> = CHANNELS
        .iter()
        .enumerate()
        .map(|(n, channel)| shown(channel, n * 37, 0, &rules, &inputs))
        .collect();
    println!(
        "{} SKUs, {} channels; buffers: tenant {}, {} channel, {} SKU, {} channel+SKU; \
         {} SKUs with unreflected units; {} threads available",
        inputs.len(),
        CHANNELS.len(),
        rules.tenant.map_or("none".to_owned(), |b| b.to_string()),
        rules.channels.len(),
        rules.skus.len(),
        rules.channel_skus.len(),
        inputs.values().filter(|i| i.unreflected > 0).count(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // Warm up and check the delta sends exactly the changes.
    println!("~1 % changed, {VANISHED} vanished SKUs per channel:");
    check(&rules, &inputs, &with_vanished);
    println!("steady state, ~1 % changed, none vanished:");
    check(&rules, &inputs, &steady);

    // Both channels together: the figure against the target.
    let both = report(
        "both channels, 1 thread",
        time_both(&rules, &inputs, &with_vanished),
    );

    for (channel, (shown, _)) in CHANNELS.iter().zip(&with_vanished) {
        let mut times = Vec::new();
        for _ in 0..RUNS {
            let start = Instant::now();
            let updates = stock_delta(channel, &rules, &inputs, shown);
            times.push(start.elapsed());
            black_box(&updates);
        }
        report(&format!("{channel} alone"), times);
    }

    report(
        "both channels, steady state (none vanished)",
        time_both(&rules, &inputs, &steady),
    );

    let both_ms = both.as_secs_f64() * 1e3;
    println!(
        "target: both channels <= {TARGET_MS} ms: {} ({both_ms:.1} ms median)",
        if both_ms <= TARGET_MS {
            "met"
        } else {
            "MISSED"
        }
    );
}
