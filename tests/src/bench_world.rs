//! What the end-to-end benchmarks on the fakes share (`benches/webhook_to_erp.rs`,
//! `benches/scale.rs`): the knobs from the environment, the run's own Postgres database and its
//! cleanup with the run's Redis keys, the product's workers in this process ([`Fleet`]), waiting
//! for an idle queue, and CPU readings from `/proc`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::watch;
use workers::config::WorkerConfig;
use workers::flows::{FlowDeps, flow_handler};
use workers::queue::backend::BackendOptions;
use workers::queue::{Queue, QueueConfig};
use workers::vault::Vault;

use crate::{delete_matching, delete_namespace, glob_escape, ready_total, redis_url};

/// An unsigned knob (`_` allowed as a thousands separator), `default` when unset or unreadable.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// A positive real knob, `default` when unset, unreadable or not positive.
pub fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v: &f64| *v > 0.0)
        .unwrap_or(default)
}

/// The Postgres server the benchmarks create their databases on (`DATABASE_URL`, default the
/// local one).
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `url` with its database replaced by `db` (query parameters kept).
pub fn with_database(url: &str, db: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (url, None),
    };
    let after_scheme = main.find("://").map_or(0, |i| i + 3);
    let path_at = main[after_scheme..]
        .find('/')
        .map_or(main.len(), |i| after_scheme + i);
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("{}/{db}{query}", &main[..path_at])
}

/// One connection to the server at `admin_url`, to create and drop the run's databases.
pub async fn connect_admin(admin_url: &str) -> anyhow::Result<PgPool> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(admin_url)
        .await
        .map_err(|e| anyhow::anyhow!("Postgres at DATABASE_URL is not reachable: {e}"))
}

/// Creates the run's database `db_name` (migrated later by the bench, with the product's call).
pub async fn create_database(admin: &PgPool, db_name: &str) -> anyhow::Result<()> {
    sqlx::query(&format!("CREATE DATABASE \"{db_name}\""))
        .execute(admin)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the database {db_name}: {e}"))?;
    Ok(())
}

/// What [`cleanup`] did.
#[derive(Debug, Default)]
pub struct Cleanup {
    /// Redis keys deleted.
    pub removed: u64,
    /// What could not be cleaned up, one line each (empty: everything was).
    pub problems: Vec<String>,
}

/// Removes what a run made, whatever happened to it: its database (`WITH (FORCE)`), every key
/// of its queue namespace (`{ns}*`) and of its locks and limiters (`ns:*`), and the sandbox's
/// WinMentor exchange directory.
pub async fn cleanup(
    admin: &PgPool,
    db_name: &str,
    qcfg: &QueueConfig,
    winmentor_dir: &Path,
) -> Cleanup {
    let mut c = Cleanup::default();
    if let Err(e) = sqlx::query(&format!(
        "DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)"
    ))
    .execute(admin)
    .await
    {
        c.problems
            .push(format!("database {db_name} not dropped: {e}"));
    }
    match Queue::connect(&redis_url(), qcfg.clone()).await {
        Ok(q) => {
            match delete_namespace(&q).await {
                Ok(n) => c.removed += n,
                Err(e) => c.problems.push(format!("queue keys not deleted: {e}")),
            }
            let pattern = format!("{}:*", glob_escape(&qcfg.namespace));
            match delete_matching(&mut q.connection(), &pattern).await {
                Ok(n) => c.removed += n,
                Err(e) => c
                    .problems
                    .push(format!("lock and limiter keys not deleted: {e}")),
            }
        }
        Err(e) => c.problems.push(format!("Redis keys not deleted: {e}")),
    }
    if winmentor_dir.exists()
        && let Err(e) = std::fs::remove_dir_all(winmentor_dir)
    {
        c.problems
            .push(format!("{} not removed: {e}", winmentor_dir.display()));
    }
    c
}

/// The product in this process: the sidecars (probe server with the wake-up URLs, run recorder,
/// housekeeping) and `workers` workers, each as a `megzo worker` process would run it: its own
/// Redis connection, its own Postgres pool of `db_pool` connections, the product's
/// `flows::flow_handler` and the default `[worker]` settings.
#[derive(Debug)]
pub struct Fleet {
    pub sidecars: workers::process::Sidecars,
    stop: watch::Sender<bool>,
    runs: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pools: Vec<PgPool>,
}

impl Fleet {
    /// Starts the sidecars and `workers` workers named `<prefix>-<i>`.
    pub async fn start(
        workers: usize,
        prefix: &str,
        db_url: &str,
        qcfg: &QueueConfig,
        queue: &Queue,
        vault: &Arc<Vault>,
    ) -> anyhow::Result<Self> {
        let wcfg = WorkerConfig::default();
        let side_pool = workers::db::connect(db_url, wcfg.db_pool).await?;
        let sidecars = workers::process::Sidecars::start(queue, &side_pool, "127.0.0.1:0").await?;
        let (stop, _) = watch::channel(false);
        let mut runs = Vec::new();
        let mut pools = vec![side_pool];
        for i in 0..workers {
            // As `megzo worker` processes would: each its own Redis connection and pool.
            let q = Queue::connect(&redis_url(), qcfg.clone()).await?;
            let pool = workers::db::connect(db_url, wcfg.db_pool).await?;
            let mut deps = FlowDeps::new(
                pool.clone(),
                q.clone(),
                workers::ratelimit::LimitsConfig::default(),
                workers::rates::MappingConfig::default(),
            );
            deps.vault = Some(vault.clone());
            let mut opts = BackendOptions::new(format!("{prefix}-{i}"));
            opts.concurrency = wcfg.concurrency.max(1);
            opts.prefetch = wcfg.prefetch;
            opts.batch = wcfg.batch.max(1);
            opts.poll_interval = Duration::from_millis(wcfg.poll_interval_ms.max(1));
            opts.reap_interval = Duration::from_millis(wcfg.reap_interval_ms.max(100));
            let mut stopped = stop.subscribe();
            let w = workers::runtime::start_worker(
                q,
                opts,
                flow_handler(deps),
                Some(sidecars.reports.clone()),
                async move {
                    // A dropped sender stops the worker too.
                    let _ = stopped.wait_for(|s| *s).await;
                },
                Duration::from_secs(wcfg.grace_secs),
            );
            runs.push(tokio::spawn(w.run));
            pools.push(pool);
        }
        Ok(Self {
            sidecars,
            stop,
            runs,
            pools,
        })
    }

    /// Stops the workers (each within 30 s), then the sidecars (the run recorder flushes), then
    /// closes the pools.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        for r in self.runs {
            match tokio::time::timeout(Duration::from_secs(30), r).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => eprintln!("worker stopped with: {e:#}"),
                Ok(Err(e)) => eprintln!("worker task failed: {e}"),
                Err(_) => eprintln!("a worker did not stop within 30 s"),
            }
        }
        self.sidecars.stop().await;
        for p in self.pools {
            p.close().await;
        }
    }
}

/// Waits until no job is ready, delayed or running (or `within` passed); returns the live count.
/// Looks every 100 ms.
pub async fn wait_idle(queue: &Queue, within: Duration) -> anyhow::Result<u64> {
    wait_idle_every(queue, within, Duration::from_millis(100)).await
}

/// As [`wait_idle`], looking every `every`.
pub async fn wait_idle_every(
    queue: &Queue,
    within: Duration,
    every: Duration,
) -> anyhow::Result<u64> {
    let deadline = Instant::now() + within;
    loop {
        let s = queue.stats().await?;
        let live = ready_total(&s) + s.delayed + s.running;
        if live == 0 || Instant::now() > deadline {
            return Ok(live);
        }
        tokio::time::sleep(every).await;
    }
}

/// CPU time of the whole machine (busy, total) and of this process, in clock ticks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub busy: u64,
    pub total: u64,
    pub own: u64,
}

/// utime + stime of a `/proc/<pid>/stat` or `/proc/<pid>/task/<tid>/stat` text, in clock ticks.
pub fn stat_ticks(stat: &str) -> Option<u64> {
    // Fields after the command (which may hold spaces and parentheses): state is field 3,
    // utime 14 and stime 15.
    let (_, rest) = stat.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i - 3).and_then(|x| x.parse::<u64>().ok());
    Some(t(14)? + t(15)?)
}

pub fn cpu_now() -> Cpu {
    let mut c = Cpu::default();
    if let Ok(stat) = std::fs::read_to_string("/proc/stat")
        && let Some(line) = stat.lines().next()
    {
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        c.total = v.iter().take(8).sum();
        // idle and iowait
        c.busy = c.total - v.get(3).copied().unwrap_or(0) - v.get(4).copied().unwrap_or(0);
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        c.own = stat_ticks(&stat).unwrap_or(0);
    }
    c
}

/// Machine busy share and this process's share of the machine between two readings.
pub fn cpu_shares(a: Cpu, b: Cpu) -> (f64, f64) {
    let total = b.total.saturating_sub(a.total).max(1) as f64;
    (
        b.busy.saturating_sub(a.busy) as f64 / total,
        b.own.saturating_sub(a.own) as f64 / total,
    )
}

/// The load averages of `/proc/loadavg` (1, 5 and 15 minutes), empty when unreadable.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
