//! Scaling on real flows: **jobs/s per worker process, and how many worker processes 1,000
//! tenants need at a 5-minute heartbeat**, measured instead of derived.
//!
//! ```text
//! cargo bench -p integration-tests --bench scale
//! BENCH_COPIES=66 BENCH_WORKERS_LIST=1,2 BENCH_LATENCY_MS=0 BENCH_DRAIN_SECS=900 cargo bench -p integration-tests --bench scale
//! ```
//!
//! Knobs (environment):
//! - `BENCH_COPIES` (K, default 66): copies of the demo seed pairs, seeded with
//!   `demo::seed_with`. Copy 0 has the five pairs (4 tenants: the SmartBill merchant sells on
//!   CDON and Cel.ro), every other copy the four without WinMentor (3 tenants, 4 connections),
//!   each copy with its own tenants and its own accounts in every fake, so API limits are per
//!   merchant as in production. K = 66 gives 199 tenants and 265 connections.
//! - `BENCH_WORKERS_LIST` (default `1,2`): the worker counts measured, one run each.
//! - `BENCH_LATENCY_MS` (default 0): latency added to every answer of the HTTP fakes (their
//!   `Faults::latency_ms`), to see the figures with slower APIs than loopback fakes.
//! - `BENCH_DRAIN_SECS` (default 900): how long a heartbeat may take to drain before the run is
//!   declared broken.
//! - `BENCH_INTERVAL_SECS` (default 300) and `BENCH_FLEET_TENANTS` (default 1,000): the heartbeat
//!   interval and the fleet size of the sizing lines.
//!
//! For each W of `BENCH_WORKERS_LIST`, from the same state (a fresh database
//! `megzo_bench_<run>w<W>`, migrated and dropped at the end; a fresh Redis namespace
//! `bench-scale-<run>-w<W>`, its keys deleted at the end; fresh fakes; the K copies seeded):
//! 1. W workers start in this process as in `webhook_to_erp`: `bench_world::Fleet`, i.e. the
//!    sidecars (run recorder, housekeeping) and W × (`runtime::start_worker` +
//!    `flows::flow_handler`, default `[worker]` settings, its own Redis connection, its own
//!    Postgres pool), the default `[ratelimits]`, real Redis and Postgres.
//! 2. **First heartbeat** (cold): `heartbeat::enqueue_heartbeat`, the scheduler's own call, enqueues
//!    every flow of every enabled connection; the clock runs until the queue is idle (ready +
//!    running + delayed = 0, looked at every 20 ms). Full catalog pushes, first stock pushes,
//!    first order pulls.
//! 3. The marketplaces finish their moderation (`settle_all` on CDON and Cel.ro, as after
//!    `webhook_to_erp`'s warm-up), then the **steady heartbeat**: the next heartbeat bucket, the
//!    same call, measured the same way. Nothing changed in between (no orders, no price or stock
//!    changes), so it is a quiet merchant's heartbeat: listing hashes unchanged, stock deltas
//!    empty, pulls that find nothing new; every call still goes to the fakes and through the
//!    account's limits. The bench's heartbeats use 1-second buckets so that the second one is a
//!    new bucket without waiting 5 minutes; the bucket only names a heartbeat (its once-keys)
//!    and picks `stock_push`'s reconcile pass (every `reconcile_every`-th bucket), which the
//!    steady heartbeat is chosen not to be.
//!
//! Measured per heartbeat: jobs completed (the queue's counters) and their attempts per kind
//! with mean and p95 handler time (`job_runs`), wall time from the enqueue to an idle queue,
//! jobs/s, and CPU seconds: of the product (this process less the fakes, which run on a runtime
//! of their own whose threads are named `megzo-fakes`), of the fakes, and of the Redis and
//! Postgres server processes of this machine (`/proc/<pid>/stat` of every `redis-server` and
//! `postgres` process: anything else using them at the time is counted too).
//!
//! The sizing lines take the smallest W's steady heartbeat: jobs per tenant per heartbeat ×
//! `BENCH_FLEET_TENANTS`, over `BENCH_INTERVAL_SECS`, is the rate needed; divided by the jobs/s of
//! one worker, the worker processes needed. The fakes answer on loopback in their configured
//! latency (`BENCH_LATENCY_MS`); real APIs are slower, and a flow job waits on them, so a worker's
//! rate is at most `concurrency ÷ mean job time` (also printed). The CPU seconds per 1,000 jobs
//! are what sizes a node.
//!
//! Exits non-zero when something is broken (a dead job, a heartbeat not drained within
//! `BENCH_DRAIN_SECS`, a failed setup or cleanup), never for a slow figure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use integration_tests::bench_world::{
    Cleanup, Cpu, Fleet, admin_url, cleanup, connect_admin, cpu_now, cpu_shares, create_database,
    env_u64, load_average, stat_ticks, wait_idle_every, with_database,
};
use integration_tests::redis_url;
use sqlx::PgPool;
use workers::config::WorkerConfig;
use workers::demo::{self, SeedOptions};
use workers::heartbeat::{HeartbeatReport, bucket_of, enqueue_heartbeat};
use workers::queue::{Queue, QueueConfig};
use workers::sandbox::{Addrs, Sandbox};
use workers::vault::Vault;

const COMMAND: &str = "cargo bench -p integration-tests --bench scale";
/// The bench's heartbeat buckets (see the header).
const BUCKET: Duration = Duration::from_secs(1);
/// How often the queue is looked at for idleness.
const IDLE_POLL: Duration = Duration::from_millis(20);
/// The name of the fakes' runtime threads, whose CPU is told apart from the product's.
const FAKES_THREAD: &str = "megzo-fakes";

#[derive(Debug, Clone)]
struct Settings {
    copies: usize,
    workers_list: Vec<usize>,
    latency_ms: u64,
    drain: Duration,
    interval_secs: u64,
    fleet_tenants: u64,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let list = std::env::var("BENCH_WORKERS_LIST").unwrap_or_else(|_| "1,2".to_owned());
        let workers_list = list
            .split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(|w| match w.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(anyhow::anyhow!(
                    "BENCH_WORKERS_LIST={list:?}: {w:?} is not a positive worker count"
                )),
            })
            .collect::<anyhow::Result<Vec<usize>>>()?;
        if workers_list.is_empty() {
            bail!("BENCH_WORKERS_LIST={list:?} names no worker count");
        }
        Ok(Self {
            copies: env_u64("BENCH_COPIES", 66).max(1) as usize,
            workers_list,
            latency_ms: env_u64("BENCH_LATENCY_MS", 0),
            drain: Duration::from_secs(env_u64("BENCH_DRAIN_SECS", 900).max(1)),
            interval_secs: env_u64("BENCH_INTERVAL_SECS", 300).max(1),
            fleet_tenants: env_u64("BENCH_FLEET_TENANTS", 1000).max(1),
        })
    }

    fn knobs(&self) -> String {
        format!(
            "BENCH_COPIES={} BENCH_WORKERS_LIST={} BENCH_LATENCY_MS={} BENCH_DRAIN_SECS={} BENCH_INTERVAL_SECS={} BENCH_FLEET_TENANTS={}",
            self.copies,
            self.workers_list
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(","),
            self.latency_ms,
            self.drain.as_secs(),
            self.interval_secs,
            self.fleet_tenants
        )
    }
}

/// Linux reports `/proc` times in clock ticks of `getconf CLK_TCK` (USER_HZ, 100 on every
/// architecture this runs on).
fn ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// CPU ticks of this process's threads named [`FAKES_THREAD`].
fn fakes_ticks() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim_end() == FAKES_THREAD)
        })
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .filter_map(|s| stat_ticks(&s))
        .sum()
}

/// CPU ticks of every `redis-server` and `postgres` process of the machine, by pid.
fn services_ticks() -> BTreeMap<u32, u64> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return BTreeMap::new();
    };
    procs
        .flatten()
        .filter_map(|p| {
            let pid: u32 = p.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(p.path().join("comm")).ok()?;
            if !matches!(comm.trim_end(), "redis-server" | "postgres") {
                return None;
            }
            let ticks = stat_ticks(&std::fs::read_to_string(p.path().join("stat")).ok()?)?;
            Some((pid, ticks))
        })
        .collect()
}

/// A reading of every CPU counter the bench reports.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    cpu: Cpu,
    fakes: u64,
    services: BTreeMap<u32, u64>,
}

impl Sample {
    fn now() -> Self {
        Self {
            at: Instant::now(),
            cpu: cpu_now(),
            fakes: fakes_ticks(),
            services: services_ticks(),
        }
    }
}

/// CPU used between two samples, in seconds.
#[derive(Debug, Clone, Copy, Default)]
struct CpuUse {
    /// This process less the fakes: the workers, the sidecars and the bench's idle polling.
    product: f64,
    fakes: f64,
    /// Redis and Postgres (a process that appeared in between counts from zero).
    services: f64,
    /// Share of the whole machine that was busy.
    machine_busy: f64,
}

fn cpu_use(a: &Sample, b: &Sample, hz: f64) -> CpuUse {
    let own = b.cpu.own.saturating_sub(a.cpu.own);
    let fakes = b.fakes.saturating_sub(a.fakes);
    let services: u64 = b
        .services
        .iter()
        .map(|(pid, t)| t.saturating_sub(a.services.get(pid).copied().unwrap_or(0)))
        .sum();
    CpuUse {
        product: own.saturating_sub(fakes) as f64 / hz,
        fakes: fakes as f64 / hz,
        services: services as f64 / hz,
        machine_busy: cpu_shares(a.cpu, b.cpu).0,
    }
}

/// The fakes, on a runtime of their own so that their CPU is told apart from the product's.
#[derive(Debug)]
struct Fakes {
    sb: Arc<Sandbox>,
    rt: tokio::runtime::Runtime,
}

impl Fakes {
    async fn start(winmentor_dir: &Path, latency_ms: u64) -> anyhow::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(FAKES_THREAD)
            .enable_all()
            .build()
            .context("the fakes' runtime cannot be built")?;
        let addrs = Addrs {
            winmentor_dir: winmentor_dir.to_path_buf(),
            ..Addrs::any()
        };
        let sb = rt
            .spawn(async move { Sandbox::start(&addrs, false).await })
            .await
            .context("the sandbox's start task failed")?
            .context("the sandbox did not start")?;
        if latency_ms > 0 {
            for h in [
                sb.cdon.harness(),
                sb.celro.harness(),
                sb.dhl.harness(),
                sb.smartbill.harness(),
                sb.lexoffice.harness(),
                sb.charisma.harness(),
            ] {
                h.update_faults(|f| f.latency_ms = latency_ms);
            }
        }
        Ok(Self {
            sb: Arc::new(sb),
            rt,
        })
    }

    /// Answers over the accounts' limits since the start, all fakes together.
    fn over_limit(&self) -> u64 {
        let sb = &self.sb;
        [
            sb.cdon.harness().stats(),
            sb.celro.harness().stats(),
            sb.dhl.harness().stats(),
            sb.smartbill.harness().stats(),
            sb.lexoffice.harness().stats(),
            sb.charisma.harness().stats(),
        ]
        .iter()
        .map(|s| s.over_limit)
        .sum()
    }

    fn stop(self) {
        // The servers stop with the sandbox; its runtime is not waited for (an async context).
        drop(self.sb);
        self.rt.shutdown_background();
    }
}

/// Attempts of one kind in a heartbeat, from `job_runs`.
#[derive(Debug, Clone, Default)]
struct KindRuns {
    kind: String,
    attempts: i64,
    succeeded: i64,
    mean_ms: f64,
    p95_ms: f64,
    max_ms: i64,
}

/// One measured heartbeat.
#[derive(Debug, Clone, Default)]
struct Phase {
    name: &'static str,
    report: HeartbeatReport,
    reconcile: bool,
    enqueue_secs: f64,
    wall_secs: f64,
    /// Jobs completed (the queue's counter), failed attempts retried, jobs dead.
    succeeded: u64,
    retried: u64,
    dead: u64,
    cpu: CpuUse,
    /// Unix time of the enqueue: `job_runs` started from here belong to this heartbeat or later.
    from_epoch: f64,
    kinds: Vec<KindRuns>,
}

impl Phase {
    fn jobs_per_sec(&self) -> f64 {
        self.succeeded as f64 / self.wall_secs.max(1e-9)
    }

    fn cpu_per_1000(&self) -> f64 {
        self.cpu.product / (self.succeeded.max(1) as f64) * 1000.0
    }

    /// Mean handler time over every attempt of the heartbeat, in seconds.
    fn mean_job_secs(&self) -> f64 {
        let n: i64 = self.kinds.iter().map(|k| k.attempts).sum();
        let total: f64 = self
            .kinds
            .iter()
            .map(|k| k.mean_ms * k.attempts as f64)
            .sum();
        total / n.max(1) as f64 / 1000.0
    }
}

/// What one W measured.
#[derive(Debug, Clone, Default)]
struct WorkersRun {
    workers: usize,
    tenants: usize,
    connections: usize,
    seed_secs: f64,
    phases: Vec<Phase>,
    over_limit: u64,
    failures: Vec<(String, i64)>,
}

impl WorkersRun {
    fn dead(&self) -> u64 {
        self.phases.iter().map(|p| p.dead).sum()
    }

    fn steady(&self) -> Option<&Phase> {
        self.phases.iter().find(|p| p.name == "steady")
    }

    fn first(&self) -> Option<&Phase> {
        self.phases.iter().find(|p| p.name == "first")
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::var_os("RUST_LOG").is_some() {
        workers::telemetry::init_logs(workers::telemetry::LogFormat::Text);
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::FAILURE;
        }
    };
    let run = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let admin_url = admin_url();
    eprintln!(
        "scale benchmark run {run}: {} on Redis at {}",
        settings.knobs(),
        redis_url()
    );
    let admin = match connect_admin(&admin_url).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let load_before = load_average();
    let started = Instant::now();
    let mut runs = Vec::new();
    let mut broken = false;
    for &w in &settings.workers_list {
        let db_name = format!("megzo_bench_{run}w{w}");
        let namespace = format!("bench-scale-{run}-w{w}");
        eprintln!("W = {w}: database {db_name}, Redis namespace {namespace}");
        if let Err(e) = create_database(&admin, &db_name).await {
            eprintln!("{e}");
            broken = true;
            break;
        }
        let qcfg = QueueConfig {
            namespace: namespace.clone(),
            ..QueueConfig::default()
        };
        let db_url = with_database(&admin_url, &db_name);
        let winmentor_dir = Addrs::any().winmentor_dir;

        let result = workers_run(&settings, w, &db_url, &qcfg, &winmentor_dir).await;

        // Cleanup, whatever happened: the run's database, its Redis keys, the sandbox directory.
        let Cleanup { removed, problems } = cleanup(&admin, &db_name, &qcfg, &winmentor_dir).await;
        println!(
            "Cleanup of W = {w}: database {db_name} dropped, {removed} Redis keys of `{{{namespace}}}*` and `{namespace}:*` deleted{}",
            if problems.is_empty() {
                String::new()
            } else {
                format!("; PROBLEMS: {}", problems.join("; "))
            }
        );
        broken |= !problems.is_empty();
        match result {
            Ok(r) => {
                if r.dead() > 0 {
                    eprintln!("W = {w}: {} jobs died", r.dead());
                    broken = true;
                }
                runs.push(r);
            }
            Err(e) => {
                eprintln!("benchmark failed at W = {w}: {e:#}");
                broken = true;
                break;
            }
        }
    }
    admin.close().await;
    let load_after = load_average();
    if !runs.is_empty() {
        report(
            &settings,
            &run,
            &runs,
            &load_before,
            &load_after,
            started.elapsed(),
        );
    }
    if broken {
        println!("BROKEN: see the messages above (dead jobs, a drain timeout or a failed setup).");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// One W from a fresh state: database migrated, fakes started, copies seeded, workers started,
/// both heartbeats measured.
async fn workers_run(
    settings: &Settings,
    workers: usize,
    db_url: &str,
    qcfg: &QueueConfig,
    winmentor_dir: &Path,
) -> anyhow::Result<WorkersRun> {
    let pool = workers::db::connect(db_url, 4)
        .await
        .context("connecting to the run's database")?;
    workers::db::migrate(&pool)
        .await
        .context("migrating the run's database")?;
    let queue = Queue::connect(&redis_url(), qcfg.clone())
        .await
        .context("Redis must be running (deploy/services.sh up)")?;
    let fakes = Fakes::start(winmentor_dir, settings.latency_ms).await?;
    let result = seeded_run(settings, workers, db_url, qcfg, &pool, &queue, &fakes).await;
    fakes.stop();
    pool.close().await;
    result
}

async fn seeded_run(
    settings: &Settings,
    workers: usize,
    db_url: &str,
    qcfg: &QueueConfig,
    pool: &PgPool,
    queue: &Queue,
    fakes: &Fakes,
) -> anyhow::Result<WorkersRun> {
    let vault = Arc::new(Vault::parse(&Vault::generate_key())?);
    let seeding = Instant::now();
    for copy in 0..settings.copies {
        demo::seed_with(
            pool,
            &vault,
            &fakes.sb,
            &SeedOptions {
                copy,
                http: demo::http_fast(),
            },
        )
        .await
        .with_context(|| format!("seeding copy {copy}"))?;
    }
    let seed_secs = seeding.elapsed().as_secs_f64();
    // What the heartbeat enqueues for: every enabled connection of every active tenant.
    let targets = workers::db::heartbeat_targets(pool)
        .await
        .context("reading the heartbeat's targets")?;
    let tenants = targets
        .iter()
        .map(|(t, _)| *t)
        .collect::<BTreeSet<_>>()
        .len();
    eprintln!(
        "W = {workers}: seeded {} copies, {tenants} tenants, {} connections, in {seed_secs:.1} s",
        settings.copies,
        targets.len()
    );

    let fleet = Fleet::start(workers, "bench-scale", db_url, qcfg, queue, &vault)
        .await
        .context("starting the workers")?;
    let result = heartbeats(settings, workers, pool, queue, fakes).await;
    // The run recorder writes every attempt's row before it stops.
    fleet.stop().await;
    let mut phases = result?;

    let mut ends: Vec<Option<f64>> = phases.iter().skip(1).map(|p| Some(p.from_epoch)).collect();
    ends.push(None);
    for (p, end) in phases.iter_mut().zip(ends) {
        p.kinds = kind_runs(pool, p.from_epoch, end).await?;
    }
    let failures = sqlx::query_as::<_, (String, i64)>(
        "SELECT left(kind || ' ' || outcome || ': ' || coalesce(error->'chain'->>0, '?'), 160) AS reason,
                count(*)
         FROM job_runs WHERE outcome <> 'succeeded'
         GROUP BY reason ORDER BY count(*) DESC LIMIT 5",
    )
    .fetch_all(pool)
    .await
    .context("reading the failed attempts")?;
    Ok(WorkersRun {
        workers,
        tenants,
        connections: targets.len(),
        seed_secs,
        phases,
        over_limit: fakes.over_limit(),
        failures,
    })
}

/// The first heartbeat, the marketplaces' moderation, the steady heartbeat.
async fn heartbeats(
    settings: &Settings,
    workers: usize,
    pool: &PgPool,
    queue: &Queue,
    fakes: &Fakes,
) -> anyhow::Result<Vec<Phase>> {
    let reconcile_every = workers::flows::FlowOptions::default().reconcile_every;
    let hz = ticks_per_sec();
    let first = heartbeat(settings, "first", pool, queue, reconcile_every, hz).await?;
    eprintln!(
        "W = {workers}: first heartbeat, {} jobs in {:.1} s (enqueue {:.2} s)",
        first.succeeded, first.wall_secs, first.enqueue_secs
    );
    // The marketplaces process what the first heartbeat sent.
    fakes.sb.cdon.settle_all();
    fakes.sb.celro.settle_all();
    // The next bucket that is not a reconcile pass, from its start.
    loop {
        let b = bucket_of(queue.queue_now_ms().await?, BUCKET);
        if b > first.report.bucket && !(reconcile_every > 0 && b % reconcile_every == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let steady = heartbeat(settings, "steady", pool, queue, reconcile_every, hz).await?;
    eprintln!(
        "W = {workers}: steady heartbeat, {} jobs in {:.1} s (enqueue {:.2} s)",
        steady.succeeded, steady.wall_secs, steady.enqueue_secs
    );
    if steady.report.bucket == first.report.bucket {
        bail!(
            "the steady heartbeat fell in the first one's bucket {}",
            first.report.bucket
        );
    }
    Ok(vec![first, steady])
}

/// One heartbeat, enqueued as the scheduler does, measured until the queue is idle.
async fn heartbeat(
    settings: &Settings,
    name: &'static str,
    pool: &PgPool,
    queue: &Queue,
    reconcile_every: i64,
    hz: f64,
) -> anyhow::Result<Phase> {
    let stats0 = queue.stats().await?;
    let from_epoch = unix_now();
    let s0 = Sample::now();
    let report = enqueue_heartbeat(queue, pool, BUCKET)
        .await
        .with_context(|| format!("enqueueing the {name} heartbeat"))?;
    let enqueue_secs = s0.at.elapsed().as_secs_f64();
    if report.enqueued == 0 {
        bail!("the {name} heartbeat enqueued nothing: {report:?}");
    }
    let live = wait_idle_every(queue, settings.drain, IDLE_POLL).await?;
    let s1 = Sample::now();
    let stats1 = queue.stats().await?;
    if live > 0 {
        bail!(
            "the {name} heartbeat did not drain within {} s: {live} jobs still ready, running or delayed",
            settings.drain.as_secs()
        );
    }
    Ok(Phase {
        name,
        report,
        reconcile: reconcile_every > 0 && report.bucket % reconcile_every == 0,
        enqueue_secs,
        wall_secs: (s1.at - s0.at).as_secs_f64(),
        succeeded: stats1
            .succeeded_total
            .saturating_sub(stats0.succeeded_total),
        retried: stats1.retried_total.saturating_sub(stats0.retried_total),
        dead: stats1.dead_total.saturating_sub(stats0.dead_total),
        cpu: cpu_use(&s0, &s1, hz),
        from_epoch,
        kinds: Vec::new(),
    })
}

/// Attempts per kind started in `[from, to)` (Unix seconds), with their handler times.
async fn kind_runs(pool: &PgPool, from: f64, to: Option<f64>) -> anyhow::Result<Vec<KindRuns>> {
    let rows = sqlx::query_as::<_, (String, i64, i64, f64, f64, i64)>(
        "SELECT kind, count(*), count(*) FILTER (WHERE outcome = 'succeeded'),
                avg(duration_ms)::float8,
                (percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms))::float8,
                max(duration_ms)
         FROM job_runs
         WHERE started_at >= to_timestamp($1) AND ($2::float8 IS NULL OR started_at < to_timestamp($2))
         GROUP BY kind ORDER BY kind",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
    .context("reading the job runs")?;
    Ok(rows
        .into_iter()
        .map(
            |(kind, attempts, succeeded, mean_ms, p95_ms, max_ms)| KindRuns {
                kind,
                attempts,
                succeeded,
                mean_ms,
                p95_ms,
                max_ms,
            },
        )
        .collect())
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn report(
    s: &Settings,
    run: &str,
    runs: &[WorkersRun],
    load_before: &str,
    load_after: &str,
    took: Duration,
) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let concurrency = WorkerConfig::default().concurrency.max(1);
    println!();
    println!(
        "Command: `{COMMAND}` ({}); run `{run}`, {cores} CPU cores, {:.0} s in all",
        s.knobs(),
        took.as_secs_f64()
    );
    println!("Load average before: {load_before}; after: {load_after}");
    for r in runs {
        println!(
            "W = {}: {} copies -> {} tenants, {} connections, seeded in {:.1} s; over-limit answers of the fakes {}",
            r.workers, s.copies, r.tenants, r.connections, r.seed_secs, r.over_limit
        );
    }
    println!();
    println!(
        "| workers | heartbeat | jobs enqueued | jobs done | wall | jobs/s | product CPU | CPU s per 1,000 jobs | fakes CPU | Redis + Postgres CPU | machine busy | retried | dead |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in runs {
        for p in &r.phases {
            println!(
                "| {} | {}{} | {} | {} | {:.2} s | {:.0} | {:.1} s | {:.2} | {:.1} s | {:.1} s | {:.0} % | {} | {} |",
                r.workers,
                p.name,
                if p.reconcile { " (reconcile)" } else { "" },
                thousands(p.report.enqueued as u64),
                thousands(p.succeeded),
                p.wall_secs,
                p.jobs_per_sec(),
                p.cpu.product,
                p.cpu_per_1000(),
                p.cpu.fakes,
                p.cpu.services,
                p.cpu.machine_busy * 100.0,
                p.retried,
                p.dead
            );
        }
    }
    println!();
    // Handler time per kind: one column per (W, heartbeat).
    let columns: Vec<(usize, &Phase)> = runs
        .iter()
        .flat_map(|r| r.phases.iter().map(move |p| (r.workers, p)))
        .collect();
    let kinds: BTreeSet<&str> = columns
        .iter()
        .flat_map(|(_, p)| p.kinds.iter().map(|k| k.kind.as_str()))
        .collect();
    println!(
        "| kind: attempts, mean / p95 / max handler ms | {} |",
        columns
            .iter()
            .map(|(w, p)| format!("W={w} {}", p.name))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|".repeat(columns.len()));
    for kind in &kinds {
        let cells: Vec<String> = columns
            .iter()
            .map(|(_, p)| {
                p.kinds.iter().find(|k| k.kind == *kind).map_or_else(
                    || "-".to_owned(),
                    |k| {
                        let failed = k.attempts - k.succeeded;
                        format!(
                            "{}{}, {:.0} / {:.0} / {}",
                            k.attempts,
                            if failed > 0 {
                                format!(" ({failed} not succeeded)")
                            } else {
                                String::new()
                            },
                            k.mean_ms,
                            k.p95_ms,
                            k.max_ms
                        )
                    },
                )
            })
            .collect();
        println!("| {kind} | {} |", cells.join(" | "));
    }
    println!(
        "| all kinds: mean handler ms | {} |",
        columns
            .iter()
            .map(|(_, p)| format!("{:.0}", p.mean_job_secs() * 1000.0))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    for r in runs.iter().filter(|r| !r.failures.is_empty()) {
        println!(
            "W = {}: attempts not succeeded, top reasons: {}",
            r.workers,
            r.failures
                .iter()
                .map(|(why, n)| format!("{n}× {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }

    // Sizing, from the smallest W's steady heartbeat.
    let Some(base) = runs.iter().min_by_key(|r| r.workers) else {
        return;
    };
    let (Some(steady), Some(first)) = (base.steady(), base.first()) else {
        return;
    };
    let w = base.workers as f64;
    let per_tenant = steady.succeeded as f64 / base.tenants.max(1) as f64;
    let per_connection = steady.succeeded as f64 / base.connections.max(1) as f64;
    let fleet_jobs = per_tenant * s.fleet_tenants as f64;
    let needed = fleet_jobs / s.interval_secs as f64;
    let per_worker = steady.jobs_per_sec() / w;
    let processes = (needed / per_worker.max(1e-9)).ceil().max(1.0);
    let cpu_per_job = steady.cpu.product / steady.succeeded.max(1) as f64;
    let io_ceiling = concurrency as f64 / steady.mean_job_secs().max(1e-9);
    let first_per_tenant = first.succeeded as f64 / base.tenants.max(1) as f64;
    let first_per_worker = first.jobs_per_sec() / w;
    println!();
    println!(
        "Sizing (W = {} steady heartbeat, {:.0} jobs/s per worker process): {:.2} jobs per tenant per heartbeat ({:.2} per connection; {} connections for {} tenants) -> per {} tenants {} jobs per heartbeat, needed rate {} / {} s = {:.1} jobs/s -> worker processes needed: {} (plus one for availability); a {}-tenant heartbeat drains in {:.1} s on one worker process",
        base.workers,
        per_worker,
        per_tenant,
        per_connection,
        base.connections,
        base.tenants,
        thousands(s.fleet_tenants),
        thousands(fleet_jobs.round() as u64),
        thousands(fleet_jobs.round() as u64),
        s.interval_secs,
        needed,
        processes,
        thousands(s.fleet_tenants),
        fleet_jobs / per_worker.max(1e-9),
    );
    println!(
        "CPU: {:.2} CPU s per 1,000 steady jobs in the product (first heartbeat {:.2}), so {} tenants keep {:.3} cores busy at a {} s heartbeat; fakes {:.2}, Redis + Postgres {:.2} CPU s per 1,000 steady jobs",
        cpu_per_job * 1000.0,
        first.cpu_per_1000(),
        thousands(s.fleet_tenants),
        needed * cpu_per_job,
        s.interval_secs,
        steady.cpu.fakes / steady.succeeded.max(1) as f64 * 1000.0,
        steady.cpu.services / steady.succeeded.max(1) as f64 * 1000.0,
    );
    println!(
        "First heartbeat of {} new tenants: {} jobs, {:.0} s on one worker process at {:.0} jobs/s",
        thousands(s.fleet_tenants),
        thousands((first_per_tenant * s.fleet_tenants as f64).round() as u64),
        first_per_tenant * s.fleet_tenants as f64 / first_per_worker.max(1e-9),
        first_per_worker
    );
    println!(
        "Assumption: the fakes answer on loopback with {} ms added latency. A flow job waits on its APIs, so a worker's rate is at most concurrency / mean job time = {concurrency} / {:.0} ms = {:.0} jobs/s here; with real APIs the mean job time, not the CPU, sets it: rerun with BENCH_LATENCY_MS to see.",
        s.latency_ms,
        steady.mean_job_secs() * 1000.0,
        io_ceiling
    );
    if let Some(top) = runs.iter().max_by_key(|r| r.workers)
        && top.workers > base.workers
        && let Some(ts) = top.steady()
    {
        println!(
            "W = {} against W = {}: steady {:.0} against {:.0} jobs/s ({:.2}×), first {:.0} against {:.0} jobs/s",
            top.workers,
            base.workers,
            ts.jobs_per_sec(),
            steady.jobs_per_sec(),
            ts.jobs_per_sec() / steady.jobs_per_sec().max(1e-9),
            top.first().map_or(0.0, Phase::jobs_per_sec),
            first.jobs_per_sec()
        );
    }
    let json = serde_json::json!({
        "bench": "scale",
        "run": run,
        "copies": s.copies,
        "latency_ms": s.latency_ms,
        "cores": cores,
        "load_before": load_before,
        "load_after": load_after,
        "runs": runs.iter().map(|r| serde_json::json!({
            "workers": r.workers,
            "tenants": r.tenants,
            "connections": r.connections,
            "over_limit": r.over_limit,
            "phases": r.phases.iter().map(|p| serde_json::json!({
                "heartbeat": p.name,
                "bucket": p.report.bucket,
                "enqueued": p.report.enqueued,
                "done": p.succeeded,
                "retried": p.retried,
                "dead": p.dead,
                "enqueue_s": (p.enqueue_secs * 1000.0).round() / 1000.0,
                "wall_s": (p.wall_secs * 1000.0).round() / 1000.0,
                "jobs_per_s": p.jobs_per_sec().round(),
                "product_cpu_s": (p.cpu.product * 100.0).round() / 100.0,
                "fakes_cpu_s": (p.cpu.fakes * 100.0).round() / 100.0,
                "services_cpu_s": (p.cpu.services * 100.0).round() / 100.0,
                "machine_busy_pct": (p.cpu.machine_busy * 100.0).round(),
                "mean_job_ms": (p.mean_job_secs() * 1000.0).round(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "jobs_per_tenant_per_heartbeat": (per_tenant * 100.0).round() / 100.0,
        "fleet_tenants": s.fleet_tenants,
        "needed_jobs_per_s": (needed * 10.0).round() / 10.0,
        "jobs_per_s_per_worker": per_worker.round(),
        "worker_processes_needed": processes,
        "cpu_s_per_1000_jobs": (cpu_per_job * 100_000.0).round() / 100.0,
    });
    println!("{json}");
}
