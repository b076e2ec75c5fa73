//! Webhook → order in the ERP, end to end on the fakes: the design target **p99 ≤ 1 s at 50
//! orders/s**.
//!
//! ```text
//! cargo bench -p integration-tests --bench webhook_to_erp
//! BENCH_SECS=60 BENCH_RATE=50 BENCH_COPIES=50 BENCH_WORKERS=3 cargo bench -p integration-tests --bench webhook_to_erp
//! ```
//!
//! The product runs as in production, in this process: the probe server of
//! `workers::process::Sidecars` (which serves the wake-up URLs), `BENCH_WORKERS` workers
//! (`runtime::start_worker` + `flows::flow_handler`, the default `[worker]` settings, each with
//! its own Redis connection and its own Postgres pool of `db_pool` connections), the default
//! `[ratelimits]`, real Redis (a namespace of this run) and real Postgres (a database of this
//! run, `megzo_bench_<uuid>`, dropped at the end). Every fake runs on loopback
//! (`sandbox::Sandbox`); `BENCH_COPIES` (K) copies of the seed pairs are seeded
//! (`demo::seed_with`), each with its own tenants and its own accounts in every fake, so each
//! merchant's API limits are its own. Orders go to the Cel.ro connections only (Cel.ro is the
//! marketplace that calls back): `smartbill+celro` and `lexoffice+celro`, 2·K merchants, with
//! stock enough that no order is refused for stock.
//!
//! Warm-up (not measured): one `catalog_push` of every connection of those merchants (listings
//! exist, so the stock pushes an order triggers reach the marketplaces, as in production) and one
//! `order_pull` (the cursor exists), then the queue must be idle.
//!
//! Drive: an open-loop schedule, order `i` at `start + i / BENCH_RATE`, round robin over the
//! merchants: the order is placed on the Cel.ro fake, then its callback (`type=1`,
//! `value={"list":[id]}`, a form body) is POSTed over HTTP to the connection's wake-up URL;
//! t0 is taken just before the POST. A poller looks for the order's document in the ERP fake
//! every 5 ms (`documents_of` / `documents_for_order`; every 20 ms once the order is 2 s old);
//! latency = first seen − t0. An order without its document 30 s after the drive ends is a miss.
//!
//! Exits non-zero when something is broken (a miss, a dead job, a failed setup), not for missing
//! the target. Every key of the run's namespace is deleted at the end and the database dropped.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use canonical::{Erp, Marketplace};
use integration_tests::bench_world::{
    Cleanup, Fleet, admin_url, cleanup, connect_admin, cpu_now, cpu_shares, create_database,
    env_f64, env_u64, load_average, wait_idle, with_database,
};
use integration_tests::redis_url;
use queue_schema::{JobKind, JobPayload, JobSpec, Scope, Trigger};
use rust_decimal::Decimal;
use secrecy::ExposeSecret as _;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use workers::demo::{self, SeedOptions, Seeded};
use workers::queue::{Queue, QueueConfig};
use workers::sandbox::{Addrs, Sandbox};
use workers::vault::Vault;

const COMMAND: &str = "cargo bench -p integration-tests --bench webhook_to_erp";
/// The design target.
const TARGET_P99: Duration = Duration::from_secs(1);
/// How long after the drive an order may still reach its ERP before it is a miss.
const DRAIN: Duration = Duration::from_secs(30);
/// How often the ERP fakes are looked at for an order during its first `FINE` (then every 4th
/// time: an order that late is far past the target, and asking the fakes for every late order
/// every 5 ms would take CPU from the product when it is behind).
const POLL: Duration = Duration::from_millis(5);
const FINE: Duration = Duration::from_secs(2);
/// Stock per SKU and merchant: no order is ever refused for stock.
const STOCK: i64 = 1_000_000;
/// The SmartBill articles of the seed (demo.rs), to reseed them with `STOCK` units.
const SB_ITEMS: [(&str, &str, i64); 3] = [
    ("MGZ-MUG-01", "Cana ceramica 350 ml", 4990),
    ("MGZ-LAMP-02", "Lampa de birou LED", 18900),
    ("MGZ-VASE-03", "Vaza sticla", 7450),
];

#[derive(Debug, Clone)]
struct Settings {
    secs: u64,
    rate: f64,
    copies: usize,
    workers: usize,
}

/// One merchant the orders go to: a Cel.ro connection and its ERP account.
#[derive(Debug)]
struct Target {
    seeded: Seeded,
    /// The connection's wake-up URL (holds its key).
    url: String,
}

impl Target {
    fn erp(&self) -> Erp {
        self.seeded.conn.erp
    }
}

/// An order waiting for its ERP document.
#[derive(Debug)]
struct Pending {
    target: usize,
    order: String,
    t0: Instant,
    /// lexoffice only: the fake's count of order confirmations when the order was last looked
    /// for; while it has not moved, no new document can be there.
    lx_count: Option<u64>,
}

/// What the driver and the poller record.
#[derive(Debug, Default)]
struct Record {
    pending: Mutex<Vec<Pending>>,
    /// (target, latency) per order seen in its ERP.
    seen: Mutex<Vec<(usize, Duration)>>,
    /// Send time minus scheduled time, per order.
    lag: Mutex<Vec<Duration>>,
    /// The wake-up call's own answer time, per order.
    answer: Mutex<Vec<Duration>>,
    first_send: Mutex<Option<Instant>>,
    last_send: Mutex<Option<Instant>>,
    /// Orders placed whose document was not seen yet.
    outstanding: AtomicU64,
    /// Time the poller spent asking the fakes.
    poll_busy_ns: AtomicU64,
    enqueued: AtomicU64,
    deduplicated: AtomicU64,
    refused: AtomicU64,
    not_placed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Record {
    fn error(&self, e: String) {
        let mut f = self.first_error.lock().unwrap();
        if f.is_none() {
            *f = Some(e);
        }
    }
}

/// The `_sum` and `_count` of every histogram series in a Prometheus text page, by series
/// (`name{labels}` without the suffix).
fn histograms(page: &str) -> BTreeMap<String, (f64, f64)> {
    let mut out: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let key = |n: &str| {
            if labels.is_empty() {
                n.to_owned()
            } else {
                format!("{n}{{{labels}")
            }
        };
        if let Some(n) = name.strip_suffix("_sum") {
            out.entry(key(n)).or_default().0 = v;
        } else if let Some(n) = name.strip_suffix("_count") {
            out.entry(key(n)).or_default().1 = v;
        }
    }
    out
}

async fn scrape(
    client: &reqwest::Client,
    addr: std::net::SocketAddr,
) -> BTreeMap<String, (f64, f64)> {
    match client.get(format!("http://{addr}/metrics")).send().await {
        Ok(r) => histograms(&r.text().await.unwrap_or_default()),
        Err(_) => BTreeMap::new(),
    }
}

/// Mean per observation of the series of `name` between two scrapes: (series labels, count,
/// mean seconds).
fn means(
    before: &BTreeMap<String, (f64, f64)>,
    after: &BTreeMap<String, (f64, f64)>,
    name: &str,
) -> Vec<(String, u64, f64)> {
    after
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{name}{{")))
        .filter_map(|(k, (sum, count))| {
            let (s0, c0) = before.get(k).copied().unwrap_or_default();
            let n = count - c0;
            (n > 0.0).then(|| (k[name.len()..].to_owned(), n as u64, (sum - s0) / n))
        })
        .collect()
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[derive(Debug, Clone, Copy, Default)]
struct FakeCounts {
    requests: u64,
    over_limit: u64,
}

fn fake_counts(sb: &Sandbox) -> BTreeMap<&'static str, FakeCounts> {
    let c = |s: connectors::fake::Stats| FakeCounts {
        requests: s.requests,
        over_limit: s.over_limit,
    };
    BTreeMap::from([
        ("smartbill", c(sb.smartbill.harness().stats())),
        ("lexoffice", c(sb.lexoffice.harness().stats())),
        ("celro", c(sb.celro.harness().stats())),
        ("cdon", c(sb.cdon.harness().stats())),
        ("dhl", c(sb.dhl.harness().stats())),
    ])
}

/// Everything measured, for the report.
#[derive(Debug, Default)]
struct Outcome {
    orders: usize,
    rate_achieved: f64,
    latencies: Vec<Duration>,
    by_erp: BTreeMap<&'static str, Vec<Duration>>,
    misses: Vec<String>,
    misses_late: usize,
    load_before: String,
    lag_p99: Duration,
    lag_max: Duration,
    answer_p50: Duration,
    answer_p99: Duration,
    enqueued: u64,
    deduplicated: u64,
    refused: u64,
    not_placed: u64,
    first_error: Option<String>,
    dead_warmup: u64,
    dead: u64,
    retried: u64,
    live_after: u64,
    fakes: BTreeMap<&'static str, FakeCounts>,
    sb_blocks: u64,
    measured_secs: f64,
    drive_epoch: f64,
    order_states: Vec<(String, i64)>,
    runs: Vec<(String, String, i64, f64)>,
    retry_reasons: Vec<(String, i64)>,
    warmup_secs: f64,
    seed_secs: f64,
    machine_busy: f64,
    own_cpu: f64,
    poll_busy: f64,
    gate_waits: Vec<(String, u64, f64)>,
    job_durations: Vec<(String, u64, f64)>,
}

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::var_os("RUST_LOG").is_some() {
        workers::telemetry::init_logs(workers::telemetry::LogFormat::Text);
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = Settings {
        secs: env_u64("BENCH_SECS", 60).max(1),
        rate: env_f64("BENCH_RATE", 50.0),
        copies: env_u64("BENCH_COPIES", 50).max(1) as usize,
        workers: env_u64("BENCH_WORKERS", 3).max(1) as usize,
    };
    let run = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let admin_url = admin_url();
    let db_name = format!("megzo_bench_{run}");
    let namespace = format!("bench-w2e-{run}");
    eprintln!(
        "webhook → ERP benchmark run {run}: database {db_name}, Redis namespace {namespace} at {}",
        redis_url()
    );

    let admin = match connect_admin(&admin_url).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = create_database(&admin, &db_name).await {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    let qcfg = QueueConfig {
        namespace: namespace.clone(),
        ..QueueConfig::default()
    };
    let db_url = with_database(&admin_url, &db_name);
    let winmentor_dir = Addrs::any().winmentor_dir;

    let result = bench(&settings, &db_url, &qcfg, &winmentor_dir).await;

    // Cleanup, whatever happened: the run's database, its Redis keys, the sandbox directory.
    let Cleanup {
        removed,
        problems: cleanup,
    } = cleanup(&admin, &db_name, &qcfg, &winmentor_dir).await;
    admin.close().await;

    let code = match result {
        Ok(o) => report(&settings, &run, &o),
        Err(e) => {
            eprintln!("benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
    };
    println!(
        "Cleanup: database {db_name} dropped, {removed} Redis keys of `{{{namespace}}}*` and `{namespace}:*` deleted{}",
        if cleanup.is_empty() {
            String::new()
        } else {
            format!("; PROBLEMS: {}", cleanup.join("; "))
        }
    );
    if cleanup.is_empty() {
        code
    } else {
        ExitCode::FAILURE
    }
}

async fn bench(
    settings: &Settings,
    db_url: &str,
    qcfg: &QueueConfig,
    winmentor_dir: &std::path::Path,
) -> anyhow::Result<Outcome> {
    let pool = workers::db::connect(db_url, 4).await?;
    workers::db::migrate(&pool).await?;
    let queue = Queue::connect(&redis_url(), qcfg.clone())
        .await
        .context("Redis must be running (deploy/services.sh up)")?;
    let addrs = Addrs {
        winmentor_dir: winmentor_dir.to_path_buf(),
        ..Addrs::any()
    };
    let sb = Arc::new(Sandbox::start(&addrs, false).await?);
    let vault = Arc::new(Vault::parse(&Vault::generate_key())?);

    // K merchants of every pair; the Cel.ro ones take the orders.
    let seeding = Instant::now();
    let mut merchants: Vec<Seeded> = Vec::new();
    for copy in 0..settings.copies {
        let seeded = demo::seed_with(
            &pool,
            &vault,
            &sb,
            &SeedOptions {
                copy,
                http: demo::http_fast(),
            },
        )
        .await
        .with_context(|| format!("seeding copy {copy}"))?;
        merchants.extend(
            seeded
                .into_iter()
                .filter(|s| s.conn.marketplace == Marketplace::Celro),
        );
    }
    for s in &merchants {
        match s.conn.erp {
            Erp::SmartBill => {
                for (sku, name, cents) in SB_ITEMS {
                    sb.smartbill
                        .seed_item_with(&connectors::smartbill::fake::SeedItem {
                            email: Some(s.erp_account.clone()),
                            sku: sku.into(),
                            name: name.into(),
                            gross: Decimal::new(cents, 2),
                            quantity: Decimal::from(STOCK),
                            warehouse: "Depozit".into(),
                            unit: None,
                        })
                        .map_err(anyhow::Error::msg)?;
                }
            }
            Erp::Lexoffice => {
                for sku in &s.skus {
                    workers::db::flows::set_held_stock(&pool, s.tenant.id, sku, STOCK).await?;
                }
            }
            other => bail!("unexpected ERP {other} on a Cel.ro seed pair"),
        }
    }
    let seed_secs = seeding.elapsed().as_secs_f64();

    let fleet = Fleet::start(settings.workers, "bench-w2e", db_url, qcfg, &queue, &vault).await?;
    let res = measured(settings, &pool, &queue, &sb, &fleet, merchants, seed_secs).await;
    fleet.stop().await;
    let mut o = res?;

    // What Postgres recorded (the recorder flushed when the fleet stopped).
    o.order_states = sqlx::query_as::<_, (String, i64)>(
        "SELECT state, count(*) FROM orders WHERE channel = 'celro' GROUP BY state ORDER BY state",
    )
    .fetch_all(&pool)
    .await?;
    o.runs = sqlx::query_as::<_, (String, String, i64, f64)>(
        "SELECT kind, outcome, count(*), avg(duration_ms)::float8 FROM job_runs
         WHERE started_at >= to_timestamp($1)
         GROUP BY kind, outcome ORDER BY kind, outcome",
    )
    .bind(o.drive_epoch)
    .fetch_all(&pool)
    .await?;
    o.retry_reasons = sqlx::query_as::<_, (String, i64)>(
        "SELECT left(kind || ': ' || coalesce(error->'chain'->>0, '?'), 160) AS reason, count(*)
         FROM job_runs WHERE outcome <> 'succeeded'
         GROUP BY reason ORDER BY count(*) DESC LIMIT 5",
    )
    .fetch_all(&pool)
    .await?;
    pool.close().await;
    Ok(o)
}

async fn measured(
    settings: &Settings,
    pool: &PgPool,
    queue: &Queue,
    sb: &Arc<Sandbox>,
    fleet: &Fleet,
    merchants: Vec<Seeded>,
    seed_secs: f64,
) -> anyhow::Result<Outcome> {
    let base = format!("http://{}", fleet.sidecars.addr);
    let mut targets = Vec::new();
    for s in merchants {
        // The library call of `megzo connections wakeup-url`.
        let url = workers::wakeup::create_wakeup_url(pool, s.conn.id, &base).await?;
        targets.push(Target {
            url: url.expose_secret().to_owned(),
            seeded: s,
        });
    }

    // Warm-up: listings on every channel of the merchants, cursors in place.
    let warming = Instant::now();
    let mut specs = Vec::new();
    for t in &targets {
        let tenant = t.seeded.tenant.id;
        for c in workers::db::list_connections(pool, Some(tenant)).await? {
            specs.push(JobSpec::new(
                JobKind::CatalogPush,
                JobPayload::v1(tenant, c.id, Scope::All, Trigger::Manual),
            ));
        }
        specs.push(JobSpec::new(
            JobKind::OrderPull,
            JobPayload::v1(tenant, t.seeded.conn.id, Scope::All, Trigger::Manual),
        ));
    }
    queue.enqueue_many(&specs).await?;
    let live = wait_idle(queue, Duration::from_secs(300)).await?;
    sb.celro.settle_all();
    sb.cdon.settle_all();
    if live > 0 {
        bail!("the warm-up did not finish in 300 s: {live} jobs still live");
    }
    let warmup_secs = warming.elapsed().as_secs_f64();
    let dead_warmup = queue.stats().await?.dead_total;
    eprintln!(
        "seeded {} Cel.ro merchants in {seed_secs:.1} s; warm-up ({} jobs) {warmup_secs:.1} s, {dead_warmup} dead",
        targets.len(),
        specs.len()
    );

    let targets = Arc::new(targets);
    let record = Arc::new(Record::default());
    let before = fake_counts(sb);
    let metrics_client = reqwest::Client::new();
    let metrics_before = scrape(&metrics_client, fleet.sidecars.addr).await;
    let cpu_before = cpu_now();
    let load_before = load_average();
    let stats_before = queue.stats().await?;
    let drive_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());

    // The poller: every POLL, each pending order looked for in its ERP fake.
    let stop_poll = CancellationToken::new();
    let poller = {
        let (targets, record, sb, stop) = (
            targets.clone(),
            record.clone(),
            sb.clone(),
            stop_poll.clone(),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut ticks: u64 = 0;
            loop {
                tokio::select! { _ = tick.tick() => {}, _ = stop.cancelled() => return }
                ticks += 1;
                let began = Instant::now();
                // Taken out of the lock while the fakes are asked, so the driver never waits.
                let batch = std::mem::take(&mut *record.pending.lock().unwrap());
                let lx_now = sb.lexoffice.counts().order_confirmations_created;
                let mut found = Vec::new();
                let mut left = Vec::with_capacity(batch.len());
                for mut p in batch {
                    // Every tick during the first FINE after t0, every 4th after that.
                    if (p.t0.elapsed() > FINE && !ticks.is_multiple_of(4))
                        || p.lx_count == Some(lx_now)
                    {
                        left.push(p);
                        continue;
                    }
                    let t = &targets[p.target];
                    let account = t.seeded.erp_account.as_str();
                    let there = match t.erp() {
                        Erp::SmartBill => !sb
                            .smartbill
                            .documents_of(Some(account), &p.order)
                            .is_empty(),
                        _ => {
                            p.lx_count = Some(lx_now);
                            !sb.lexoffice
                                .documents_for_order(account, &p.order)
                                .is_empty()
                        }
                    };
                    if there {
                        found.push((p.target, p.t0.elapsed()));
                    } else {
                        left.push(p);
                    }
                }
                record.pending.lock().unwrap().extend(left);
                record
                    .outstanding
                    .fetch_sub(found.len() as u64, Ordering::SeqCst);
                record
                    .poll_busy_ns
                    .fetch_add(began.elapsed().as_nanos() as u64, Ordering::Relaxed);
                if !found.is_empty() {
                    record.seen.lock().unwrap().extend(found);
                }
            }
        })
    };

    // The drive: open loop, order i at start + i / rate.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let n = (settings.rate * settings.secs as f64).round() as usize;
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut sends = Vec::with_capacity(n);
    eprintln!(
        "driving {n} orders at {}/s over {} merchants for {} s",
        settings.rate,
        targets.len(),
        settings.secs
    );
    for i in 0..n {
        let at = start + Duration::from_secs_f64(i as f64 / settings.rate);
        tokio::time::sleep_until(at).await;
        let (targets, record, sb, client) =
            (targets.clone(), record.clone(), sb.clone(), client.clone());
        sends.push(tokio::spawn(async move {
            let ti = i % targets.len();
            let t = &targets[ti];
            let sku = &t.seeded.skus[(i / targets.len()) % t.seeded.skus.len()];
            let order = match demo::place_order(&sb, &t.seeded, sku, 1) {
                Ok(o) => o,
                Err(e) => {
                    record.not_placed.fetch_add(1, Ordering::Relaxed);
                    record.error(format!("order not placed: {e:#}"));
                    return;
                }
            };
            let body = format!("type=1&value=%7B%22list%22%3A%5B{order}%5D%7D");
            let t0 = Instant::now();
            record
                .lag
                .lock()
                .unwrap()
                .push(tokio::time::Instant::now().saturating_duration_since(at));
            {
                let mut f = record.first_send.lock().unwrap();
                if f.is_none_or(|f| f > t0) {
                    *f = Some(t0);
                }
            }
            record.outstanding.fetch_add(1, Ordering::SeqCst);
            record.pending.lock().unwrap().push(Pending {
                target: ti,
                order,
                t0,
                lx_count: None,
            });
            let answer = client
                .post(&t.url)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await;
            let took = t0.elapsed();
            {
                let mut l = record.last_send.lock().unwrap();
                if l.is_none_or(|l| l < t0) {
                    *l = Some(t0);
                }
            }
            record.answer.lock().unwrap().push(took);
            match answer {
                Ok(r) if r.status().as_u16() == 202 => {
                    let text = r.text().await.unwrap_or_default();
                    if text.contains("\"enqueued\":true") {
                        record.enqueued.fetch_add(1, Ordering::Relaxed);
                    } else {
                        record.deduplicated.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(r) => {
                    record.refused.fetch_add(1, Ordering::Relaxed);
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    record.error(format!("wake-up answered {status}: {}", text.trim()));
                }
                Err(e) => {
                    record.refused.fetch_add(1, Ordering::Relaxed);
                    record.error(format!("wake-up call failed: {e}"));
                }
            }
        }));
    }
    for s in sends {
        s.await?;
    }
    let drive_end = Instant::now();
    // The drain: orders still without their document after DRAIN are misses.
    while Instant::now() < drive_end + DRAIN && record.outstanding.load(Ordering::SeqCst) > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_poll.cancel();
    poller.await?;
    let measured_secs = start.elapsed().as_secs_f64();
    let (machine_busy, own_cpu) = cpu_shares(cpu_before, cpu_now());
    let calls = fake_counts(sb);
    // The follow-ups of the last orders (stock pushes) finish before the rest is read.
    let live_after = wait_idle(queue, Duration::from_secs(30)).await?;
    let after = fake_counts(sb);
    let metrics_after = scrape(&metrics_client, fleet.sidecars.addr).await;
    let stats = queue.stats().await?;

    // A miss whose document appeared after the deadline (the fleet was behind) is told apart
    // from one that never reached its ERP.
    let mut misses_late = 0;
    let misses: Vec<String> = record
        .pending
        .lock()
        .unwrap()
        .iter()
        .map(|p| {
            let t = &targets[p.target];
            let account = t.seeded.erp_account.as_str();
            let late = match t.erp() {
                Erp::SmartBill => !sb
                    .smartbill
                    .documents_of(Some(account), &p.order)
                    .is_empty(),
                _ => !sb
                    .lexoffice
                    .documents_for_order(account, &p.order)
                    .is_empty(),
            };
            if late {
                misses_late += 1;
            }
            format!(
                "{} order {}{}",
                t.seeded.account,
                p.order,
                if late {
                    " (in its ERP after the deadline)"
                } else {
                    " (not in its ERP)"
                }
            )
        })
        .collect();
    let seen = std::mem::take(&mut *record.seen.lock().unwrap());
    let mut latencies: Vec<Duration> = seen.iter().map(|(_, d)| *d).collect();
    latencies.sort();
    let mut by_erp: BTreeMap<&'static str, Vec<Duration>> = BTreeMap::new();
    for (t, d) in &seen {
        by_erp.entry(targets[*t].seeded.label).or_default().push(*d);
    }
    for v in by_erp.values_mut() {
        v.sort();
    }
    let mut lag = std::mem::take(&mut *record.lag.lock().unwrap());
    lag.sort();
    let mut answer = std::mem::take(&mut *record.answer.lock().unwrap());
    answer.sort();
    let first = *record.first_send.lock().unwrap();
    let last = *record.last_send.lock().unwrap();
    let rate_achieved = match (first, last) {
        (Some(f), Some(l)) if l > f && n > 1 => (n - 1) as f64 / (l - f).as_secs_f64(),
        _ => 0.0,
    };
    // Requests while measured (drive and drain); over-limit answers of the whole run.
    let fakes = after
        .iter()
        .map(|(k, a)| {
            let b = before.get(k).copied().unwrap_or_default();
            let c = calls.get(k).copied().unwrap_or_default();
            (
                *k,
                FakeCounts {
                    requests: c.requests - b.requests,
                    over_limit: a.over_limit,
                },
            )
        })
        .collect();
    Ok(Outcome {
        orders: n,
        rate_achieved,
        latencies,
        by_erp,
        misses,
        misses_late,
        load_before,
        lag_p99: percentile(&lag, 0.99),
        lag_max: lag.last().copied().unwrap_or_default(),
        answer_p50: percentile(&answer, 0.50),
        answer_p99: percentile(&answer, 0.99),
        enqueued: record.enqueued.load(Ordering::Relaxed),
        deduplicated: record.deduplicated.load(Ordering::Relaxed),
        refused: record.refused.load(Ordering::Relaxed),
        not_placed: record.not_placed.load(Ordering::Relaxed),
        first_error: record.first_error.lock().unwrap().clone(),
        dead_warmup,
        dead: stats.dead_total,
        retried: stats
            .retried_total
            .saturating_sub(stats_before.retried_total),
        live_after,
        fakes,
        sb_blocks: sb.smartbill.blocks_entered(),
        measured_secs,
        drive_epoch,
        order_states: Vec::new(),
        runs: Vec::new(),
        retry_reasons: Vec::new(),
        warmup_secs,
        seed_secs,
        machine_busy,
        own_cpu,
        poll_busy: record.poll_busy_ns.load(Ordering::Relaxed) as f64 / 1e9 / measured_secs,
        gate_waits: means(
            &metrics_before,
            &metrics_after,
            "megzo_ratelimit_wait_seconds",
        ),
        job_durations: means(
            &metrics_before,
            &metrics_after,
            "megzo_job_duration_seconds",
        ),
    })
}

fn report(s: &Settings, run: &str, o: &Outcome) -> ExitCode {
    let merchants = 2 * s.copies;
    let per_account = s.rate / merchants as f64;
    let l = &o.latencies;
    let (p50, p90, p99, max) = (
        percentile(l, 0.50),
        percentile(l, 0.90),
        percentile(l, 0.99),
        l.last().copied().unwrap_or_default(),
    );
    let over: u64 = o.fakes.values().map(|f| f.over_limit).sum();
    let met = o.misses.is_empty() && !l.is_empty() && p99 <= TARGET_P99;
    let broken = !o.misses.is_empty() || o.dead > 0 || o.not_placed > 0 || o.refused > 0;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let sb_calls = o.fakes.get("smartbill").map_or(0, |f| f.requests);
    let lx_calls = o.fakes.get("lexoffice").map_or(0, |f| f.requests);
    let cr_calls = o.fakes.get("celro").map_or(0, |f| f.requests);

    println!();
    println!(
        "Command: `{COMMAND}` (BENCH_SECS={} BENCH_RATE={} BENCH_COPIES={} BENCH_WORKERS={}); run `{run}`, {cores} CPU cores",
        s.secs, s.rate, s.copies, s.workers
    );
    println!(
        "Setup: K = {} copies of the seed pairs -> {merchants} Cel.ro merchants ({} smartbill+celro, {} lexoffice+celro), {:.2} orders/s per merchant account (one order every {:.1} s); seeding {:.1} s, warm-up {:.1} s",
        s.copies,
        s.copies,
        s.copies,
        per_account,
        1.0 / per_account,
        o.seed_secs,
        o.warmup_secs
    );
    println!("Load average before the drive: {}", o.load_before);
    println!(
        "Drive: {} orders, rate achieved {:.2}/s (target {}); send lag p99 {:.1} ms, max {:.1} ms; wake-up answer p50 {:.1} ms, p99 {:.1} ms",
        o.orders,
        o.rate_achieved,
        s.rate,
        ms(o.lag_p99),
        ms(o.lag_max),
        ms(o.answer_p50),
        ms(o.answer_p99)
    );
    println!(
        "Callbacks: {} enqueued a pull, {} found one waiting (debounced), {} refused or failed, {} orders not placed{}",
        o.enqueued,
        o.deduplicated,
        o.refused,
        o.not_placed,
        o.first_error
            .as_ref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!("| orders in their ERP | {} of {} |", l.len(), o.orders);
    println!("| latency p50 | {:.0} ms |", ms(p50));
    println!("| latency p90 | {:.0} ms |", ms(p90));
    println!("| latency p99 | {:.0} ms |", ms(p99));
    println!("| latency max | {:.0} ms |", ms(max));
    for (label, v) in &o.by_erp {
        println!(
            "| {label}: p50 / p99 / max | {:.0} / {:.0} / {:.0} ms ({} orders) |",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.99)),
            ms(v.last().copied().unwrap_or_default()),
            v.len()
        );
    }
    println!(
        "| misses (no document {} s after the drive) | {} ({} of them in their ERP by the end of the run) |",
        DRAIN.as_secs(),
        o.misses.len(),
        o.misses_late
    );
    println!(
        "| dead jobs | {} ({} in the warm-up) |",
        o.dead, o.dead_warmup
    );
    println!("| attempts retried while measured | {} |", o.retried);
    println!(
        "| jobs still live 30 s after the drain | {} |",
        o.live_after
    );
    println!(
        "| over-limit answers of the fakes | {over} ({}) |",
        o.fakes
            .iter()
            .map(|(k, f)| format!("{k} {}", f.over_limit))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("| SmartBill accounts blocked | {} |", o.sb_blocks);
    println!(
        "| CPU while measured (of both cores) | machine {:.0} % busy, this process {:.0} % (of which the bench's poller {:.1} %) |",
        o.machine_busy * 100.0,
        o.own_cpu * 100.0,
        o.poll_busy * 100.0 / cores.max(1) as f64
    );
    println!(
        "| rate-limit waits: acquisitions, mean wait | {} |",
        o.gate_waits
            .iter()
            .map(|(k, n, m)| format!("{k} {n}, {:.0} ms", m * 1000.0))
            .collect::<Vec<_>>()
            .join("; ")
    );
    println!(
        "| handler time: attempts, mean | {} |",
        o.job_durations
            .iter()
            .map(|(k, n, m)| format!("{k} {n}, {:.0} ms", m * 1000.0))
            .collect::<Vec<_>>()
            .join("; ")
    );
    println!(
        "| calls per account while measured | SmartBill {:.1} per 10 s (limit 30), lexoffice {:.2}/s (limit 2), Cel.ro {:.2}/s (limit 4) |",
        sb_calls as f64 / s.copies as f64 / o.measured_secs * 10.0,
        lx_calls as f64 / s.copies as f64 / o.measured_secs,
        cr_calls as f64 / merchants as f64 / o.measured_secs,
    );
    println!(
        "| Cel.ro orders by state | {} |",
        o.order_states
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| job runs (kind outcome count avg ms) | {} |",
        o.runs
            .iter()
            .map(|(k, out, n, avg)| format!("{k} {out} {n} {avg:.0}"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    if !o.retry_reasons.is_empty() {
        println!(
            "| failed attempts, top reasons | {} |",
            o.retry_reasons
                .iter()
                .map(|(r, n)| format!("{n}× {r}"))
                .collect::<Vec<_>>()
                .join("; ")
                .replace('|', "/")
        );
    }
    println!();
    for m in o.misses.iter().take(10) {
        println!("missed: {m}");
    }
    println!(
        "Verdict: p99 {:.0} ms against the target p99 <= {} ms at {} orders/s: {}{}",
        ms(p99),
        TARGET_P99.as_millis(),
        s.rate,
        if met { "MET" } else { "MISSED" },
        if broken {
            " -- and something is BROKEN (misses, dead jobs or failed callbacks above)"
        } else {
            ""
        }
    );
    let json = serde_json::json!({
        "bench": "webhook_to_erp",
        "run": run,
        "k": s.copies,
        "merchants": merchants,
        "workers": s.workers,
        "secs": s.secs,
        "rate_target": s.rate,
        "rate_achieved": (o.rate_achieved * 100.0).round() / 100.0,
        "per_account_orders_per_s": per_account,
        "orders": o.orders,
        "seen": l.len(),
        "p50_ms": ms(p50).round(),
        "p90_ms": ms(p90).round(),
        "p99_ms": ms(p99).round(),
        "max_ms": ms(max).round(),
        "misses": o.misses.len(),
        "misses_in_erp_later": o.misses_late,
        "dead_jobs": o.dead,
        "over_limit": o.fakes.iter().map(|(k, f)| (k.to_string(), f.over_limit)).collect::<BTreeMap<_, _>>(),
        "smartbill_blocks": o.sb_blocks,
        "callbacks_enqueued": o.enqueued,
        "callbacks_debounced": o.deduplicated,
        "callbacks_failed": o.refused,
        "target_p99_ms": TARGET_P99.as_millis() as u64,
        "target_met": met,
        "cores": cores,
        "machine_busy_pct": (o.machine_busy * 100.0).round(),
        "process_cpu_pct": (o.own_cpu * 100.0).round(),
    });
    println!("{json}");
    if broken {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
