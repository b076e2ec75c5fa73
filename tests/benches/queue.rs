//! Queue benchmarks against the local Redis, ours beside apalis-redis 1.0.0, in one run:
//!
//! ```text
//! cargo bench -p integration-tests --bench queue          # BENCH_BACKLOG=200000 for a shorter run
//! BENCH_ONLY=heartbeat cargo bench -p integration-tests --bench queue   # one section (or =backlog)
//! ```
//!
//! - **ours**: enqueue 200,000 no-op jobs (`enqueue_many`), drain them through ONE in-process
//!   worker (`start_worker`, concurrency/prefetch/batch 256, no reports); jobs/s from the first to
//!   the last ack (polling `stats().succeeded_total`), and the enqueue rate;
//! - **apalis-redis 1.0.0, default config** (`RedisStorage::new(conn)` + `Config::default()`, a
//!   unique queue name being the only change): 7,900 no-op tasks pushed then drained by one worker
//!   (`poll_with_interval(100 ms)` as in their examples), jobs/s first → last ack (polling `SCARD
//!   <queue>:done`). It fails with ≥ ~8,000 due tasks (job-queues.md §A4), hence 7,900. A tuned
//!   apalis-redis row (batch 100, `lock_tasks(false)`) and ours on the same 7,900 jobs are beside it;
//! - **backlog**: 1,000,000 jobs (`BENCH_BACKLOG`) enqueued in chunks, `INFO memory` used_memory
//!   before/after → bytes per queued job, then drained by one worker: rate and errors;
//! - **heartbeat**: `enqueue_heartbeat_for` 10,000 targets × 6 flows, then a second fire in the same
//!   bucket (must add nothing).
//!
//! Every key lives under this run's own prefixes (`{bench-<run>-…}` for ours, `bench-<run>-…` for
//! apalis-redis) and is deleted at the end by SCAN MATCH on those prefixes only.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use apalis::prelude::*;
use canonical::{ConnectionId, TenantId};
use integration_tests::{delete_matching, glob_escape, job, redis_url};
use queue_schema::{JobKind, JobSpec};
use serde::{Deserialize, Serialize};
use workers::queue::RedisConn;
use workers::queue::backend::BackendOptions;
use workers::queue::{ManualClock, Queue, QueueConfig};
use workers::runtime::{handler, start_worker};

const COMMAND: &str = "cargo bench -p integration-tests --bench queue";
const OURS_N: usize = 200_000;
const APALIS_N: usize = 7_900;
const HB_TARGETS: usize = 10_000;
/// How long a drain may make no progress before it is reported as stuck.
const STALL: Duration = Duration::from_secs(60);

struct Table {
    rows: Vec<(String, String, String)>,
}

impl Table {
    fn row(&mut self, figure: impl Into<String>, value: impl Into<String>, how: impl Into<String>) {
        let (f, v, h) = (figure.into(), value.into(), how.into());
        eprintln!("  {f}: {v}");
        self.rows.push((f, v, h));
    }
}

fn rate(n: u64, d: Duration) -> String {
    if d.is_zero() {
        return "n/a".to_owned();
    }
    group(n as f64 / d.as_secs_f64())
}

/// 12345.6 → "12,346".
fn group(x: f64) -> String {
    let s = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn used_memory(
    conn: &mut (impl redis::aio::ConnectionLike + Send),
) -> anyhow::Result<(u64, u64)> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
    };
    Ok((
        field("used_memory").context("used_memory in INFO")?,
        field("lazyfree_pending_objects").unwrap_or(0),
    ))
}

/// used_memory once lazily freed objects are gone (after our own UNLINKs).
async fn settled_memory(
    conn: &mut (impl redis::aio::ConnectionLike + Send),
) -> anyhow::Result<u64> {
    for _ in 0..100 {
        let (used, pending) = used_memory(conn).await?;
        if pending == 0 {
            return Ok(used);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(used_memory(conn).await?.0)
}

fn bench_queue_config(run: &str, name: &str) -> QueueConfig {
    QueueConfig {
        namespace: format!("bench-{run}-{name}"),
        ..QueueConfig::default()
    }
}

/// No-op jobs spread round-robin over `tenants` tenants (one connection each).
fn noop_specs(n: usize, tenants: &[(TenantId, ConnectionId)]) -> Vec<JobSpec> {
    (0..n)
        .map(|i| {
            let (t, c) = tenants[i % tenants.len()];
            job(JobKind::StockPush, t, c)
        })
        .collect()
}

fn tenants(n: usize) -> Vec<(TenantId, ConnectionId)> {
    (0..n)
        .map(|_| (TenantId::new(), ConnectionId::new()))
        .collect()
}

struct Drain {
    /// First → last ack.
    first_to_last: Duration,
    acked_in_window: u64,
    /// Worker start → last ack.
    from_start: Duration,
    errors: u64,
}

/// Drains `n` jobs (already enqueued) through one in-process worker with the benchmark options.
async fn drain_ours(queue: &Queue, worker_id: &str, n: u64) -> anyhow::Result<Drain> {
    let base = queue.stats().await?.succeeded_total;
    let mut opts = BackendOptions::new(worker_id);
    opts.concurrency = 256;
    opts.prefetch = 256;
    opts.batch = 256;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let w = start_worker(
        queue.clone(),
        opts,
        handler(|_job| async { Ok(()) }),
        None,
        async move {
            let _ = stop_rx.await;
        },
        Duration::from_secs(10),
    );
    let run = tokio::spawn(w.run);
    let mut first: Option<(Instant, u64)> = None;
    let mut last_progress = (Instant::now(), 0u64);
    let result = loop {
        let s = queue.stats().await?;
        let done = s.succeeded_total - base;
        let at = Instant::now();
        if done > 0 && first.is_none() {
            first = Some((at, done));
        }
        if done >= n {
            let (t0, c0) = first.unwrap_or((started, 0));
            break Ok(Drain {
                first_to_last: at - t0,
                acked_in_window: done - c0,
                from_start: at - started,
                errors: s.retried_total + s.dead_total,
            });
        }
        if done > last_progress.1 {
            last_progress = (at, done);
        } else if at - last_progress.0 > STALL {
            break Err(anyhow::anyhow!(
                "drain stalled at {done}/{n} for {STALL:?}: {s:?}"
            ));
        }
        if run.is_finished() {
            break Err(anyhow::anyhow!("worker stopped at {done}/{n}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let _ = stop_tx.send(());
    match tokio::time::timeout(Duration::from_secs(20), run).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => eprintln!("worker {worker_id} ended with {e:#}"),
        Ok(Err(e)) => eprintln!("worker {worker_id} task: {e}"),
        Err(_) => eprintln!("worker {worker_id} did not stop within 20 s"),
    }
    result
}

/// Ours: enqueue `n` no-op jobs over `tenant_count` tenants with `cfg`, drain through one worker.
async fn ours_round(
    t: &mut Table,
    label: &str,
    cfg: QueueConfig,
    n: usize,
    tenant_count: usize,
    setup: &str,
) -> anyhow::Result<()> {
    let q = Queue::connect(&redis_url(), cfg).await?;
    let specs = noop_specs(n, &tenants(tenant_count));
    let t0 = Instant::now();
    let res = q.enqueue_many(&specs).await?;
    let enq = t0.elapsed();
    drop(specs);
    if res.iter().any(|r| !r.is_new()) {
        bail!("{label}: some jobs were not enqueued as new");
    }
    t.row(
        format!("{label}: enqueue {} jobs", group(n as f64)),
        format!(
            "{} jobs/s ({:.2} s)",
            rate(n as u64, enq),
            enq.as_secs_f64()
        ),
        format!("`enqueue_many` of {n} no-op jobs, {tenant_count} tenant(s); {setup}"),
    );
    let d = drain_ours(&q, &format!("{}-worker", q.keys().namespace()), n as u64).await?;
    t.row(
        format!("{label}: drain {} jobs, 1 worker", group(n as f64)),
        format!(
            "**{} jobs/s** first→last ack ({:.2} s); {} jobs/s incl. worker start; errors {}",
            rate(d.acked_in_window, d.first_to_last),
            d.first_to_last.as_secs_f64(),
            rate(n as u64, d.from_start),
            d.errors
        ),
        format!(
            "`start_worker`, concurrency 256, prefetch 256, batch 256, no reports; {tenant_count} tenant(s); {setup}"
        ),
    );
    integration_tests::delete_namespace(&q).await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Noop {
    i: u32,
}

async fn noop_task(_task: Noop) -> Result<(), BoxDynError> {
    Ok(())
}

/// apalis-redis: push `n` tasks with `cfg`, drain through one worker, count acks in `<q>:done`.
async fn apalis_round(
    t: &mut Table,
    label: &str,
    cfg: apalis_redis::Config,
    n: usize,
    setup: &str,
) -> anyhow::Result<()> {
    let conn = apalis_redis::connect(redis_url()).await?;
    let qname = cfg.queue.as_ref().to_owned();
    let mut producer =
        apalis_redis::RedisStorage::<Noop>::new(conn.clone()).with_config(cfg.clone());
    let t0 = Instant::now();
    for chunk in (0..n as u32).collect::<Vec<_>>().chunks(1_000) {
        producer
            .push_bulk(chunk.iter().map(|&i| Noop { i }).collect())
            .await
            .map_err(|e| anyhow::anyhow!("apalis push_bulk: {e:?}"))?;
    }
    let push = t0.elapsed();
    t.row(
        format!("{label}: push {} tasks", group(n as f64)),
        format!(
            "{} tasks/s ({:.2} s)",
            rate(n as u64, push),
            push.as_secs_f64()
        ),
        format!("`push_bulk` in chunks of 1,000; {setup}"),
    );

    let done_key = cfg.done_jobs_set();
    let backend = apalis_redis::RedisStorage::<Noop>::new(conn.clone())
        .with_config(cfg.clone())
        .poll_with_interval(Duration::from_millis(100));
    let worker = WorkerBuilder::new(format!("{qname}-worker"))
        .backend(backend)
        .build(noop_task);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let run = tokio::spawn(worker.run_until(async move {
        let _ = stop_rx.await;
        Ok::<(), WorkerError>(())
    }));
    let mut c = conn.clone();
    let mut first: Option<(Instant, u64)> = None;
    let mut last_progress = (Instant::now(), 0u64);
    let outcome = loop {
        let done: u64 = redis::cmd("SCARD")
            .arg(&done_key)
            .query_async(&mut c)
            .await?;
        let at = Instant::now();
        if done > 0 && first.is_none() {
            first = Some((at, done));
        }
        if done >= n as u64 {
            let (t0, c0) = first.unwrap_or((started, 0));
            break Ok((at - t0, done - c0, at - started));
        }
        if done > last_progress.1 {
            last_progress = (at, done);
        } else if at - last_progress.0 > STALL {
            break Err(format!("stalled at {done}/{n} for {STALL:?}"));
        }
        if run.is_finished() {
            break Err(format!("worker stopped at {done}/{n}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let _ = stop_tx.send(());
    let ended = match tokio::time::timeout(Duration::from_secs(20), run).await {
        Ok(Ok(Ok(()))) => "stopped cleanly".to_owned(),
        Ok(Ok(Err(e))) => format!("worker error: {e}"),
        Ok(Err(e)) => format!("worker task: {e}"),
        Err(_) => "did not stop within 20 s".to_owned(),
    };
    match outcome {
        Ok((window, acked, from_start)) => t.row(
            format!("{label}: drain {} tasks, 1 worker", group(n as f64)),
            format!(
                "**{} jobs/s** first→last ack ({:.2} s); {} jobs/s incl. worker start",
                rate(acked, window),
                window.as_secs_f64(),
                rate(n as u64, from_start)
            ),
            format!("`WorkerBuilder` + `poll_with_interval(100 ms)`, no-op handler; {setup}"),
        ),
        Err(e) => t.row(
            format!("{label}: drain {} tasks, 1 worker", group(n as f64)),
            format!("FAILED: {e}; {ended}"),
            setup.to_owned(),
        ),
    }
    // This queue's keys, and its entry in apalis-redis' global queue registry.
    delete_matching(
        &mut RedisConn::Single(c.clone()),
        &format!("{}*", glob_escape(&qname)),
    )
    .await?;
    redis::cmd("ZREM")
        .arg("core:apalis:queues:list")
        .arg(cfg.workers_set())
        .query_async::<()>(&mut c)
        .await?;
    Ok(())
}

async fn backlog_round(t: &mut Table, run: &str, n: usize) -> anyhow::Result<()> {
    let cfg = bench_queue_config(run, "backlog");
    let q = Queue::connect(&redis_url(), cfg).await?;
    let mut conn = q.connection();
    let tenant_list = tenants(1_000);
    let before = settled_memory(&mut conn).await?;
    let t0 = Instant::now();
    let mut sample = None;
    let mut left = n;
    while left > 0 {
        let k = left.min(50_000);
        let specs = noop_specs(k, &tenant_list);
        sample.get_or_insert(specs[0].id);
        let res = q.enqueue_many(&specs).await?;
        if res.iter().any(|r| !r.is_new()) {
            bail!("backlog: some jobs were not enqueued as new");
        }
        left -= k;
    }
    let enq = t0.elapsed();
    let after = settled_memory(&mut conn).await?;
    let per_job = after.saturating_sub(before) as f64 / n as f64;
    let job_hash: Option<u64> = match sample {
        Some(id) => redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(q.keys().job(&id.to_string()))
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut conn)
            .await
            .ok(),
        None => None,
    };
    t.row(
        format!("backlog: enqueue {} jobs", group(n as f64)),
        format!(
            "{} jobs/s ({:.1} s)",
            rate(n as u64, enq),
            enq.as_secs_f64()
        ),
        "`enqueue_many` in chunks of 50,000; 1,000 tenants; default `QueueConfig`".to_owned(),
    );
    t.row(
        "backlog: Redis memory per queued job",
        format!(
            "**{:.0} B/job** (used_memory {:.1} MB → {:.1} MB); job hash alone {} B",
            per_job,
            before as f64 / 1e6,
            after as f64 / 1e6,
            job_hash.map_or("n/a".to_owned(), |b| b.to_string())
        ),
        "`INFO memory` used_memory before/after the enqueue (whole server: other clients' keys \
         count too); `MEMORY USAGE` of one job hash"
            .to_owned(),
    );
    let d = drain_ours(&q, &format!("{}-worker", q.keys().namespace()), n as u64).await?;
    let s = q.stats().await?;
    t.row(
        format!("backlog: drain {} jobs, 1 worker", group(n as f64)),
        format!(
            "**{} jobs/s** first→last ack ({:.1} s); errors {}; left ready {} / running {} / dead {}",
            rate(d.acked_in_window, d.first_to_last),
            d.first_to_last.as_secs_f64(),
            d.errors,
            s.kinds.iter().map(|k| k.ready).sum::<u64>(),
            s.running,
            s.dead
        ),
        "`start_worker`, concurrency 256, prefetch 256, batch 256; errors = retried + dead".to_owned(),
    );
    integration_tests::delete_namespace(&q).await?;
    Ok(())
}

/// Microseconds Redis has spent in EVAL/EVALSHA since it started (`INFO commandstats`).
async fn script_usec(conn: &mut (impl redis::aio::ConnectionLike + Send)) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    Ok(info
        .lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split(',')
                .find_map(|f| f.strip_prefix("usec="))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum())
}

async fn heartbeat_round(t: &mut Table, run: &str) -> anyhow::Result<()> {
    let cfg = bench_queue_config(run, "heartbeat");
    // A fixed clock keeps both fires in the same 5-minute bucket whatever the wall clock does.
    let clock = Arc::new(ManualClock::new(now_ms()));
    let q = Queue::connect_with_clock(&redis_url(), cfg, clock).await?;
    let targets = tenants(HB_TARGETS);
    let interval = Duration::from_secs(300);
    // Where the time goes: building the 60,000 specs alone, and Redis' own time in scripts.
    let tb = Instant::now();
    let specs = workers::heartbeat::heartbeat_specs(
        &targets,
        &JobKind::by_priority(),
        workers::heartbeat::bucket_of(q.now_ms(), interval),
        interval,
    );
    let build = tb.elapsed();
    drop(specs);
    let mut conn = q.connection();
    let s0 = script_usec(&mut conn).await?;
    let t0 = Instant::now();
    let first = workers::heartbeat::enqueue_heartbeat_for(&q, &targets, interval).await?;
    let took = t0.elapsed();
    let s1 = script_usec(&mut conn).await?;
    let t1 = Instant::now();
    let second = workers::heartbeat::enqueue_heartbeat_for(&q, &targets, interval).await?;
    let took2 = t1.elapsed();
    let s2 = script_usec(&mut conn).await?;
    let verdict = if took <= Duration::from_secs(2) {
        "PASS"
    } else {
        "FAIL"
    };
    t.row(
        format!("heartbeat: {} targets × 6 flows", group(HB_TARGETS as f64)),
        format!(
            "**{:.2} s** ({verdict}; target ≤ 2 s): {} enqueued, {} deduplicated, {} already in \
             bucket; building the specs alone {:.2} s, Redis executing scripts {:.2} s",
            took.as_secs_f64(),
            first.enqueued,
            first.deduplicated,
            first.already_in_bucket,
            build.as_secs_f64(),
            Duration::from_micros(s1.saturating_sub(s0)).as_secs_f64()
        ),
        "`workers::heartbeat::enqueue_heartbeat_for`, interval 300 s; script time = EVAL/EVALSHA \
         usec delta in `INFO commandstats` (server-wide)"
            .to_owned(),
    );
    t.row(
        "heartbeat: second fire, same bucket",
        format!(
            "**{} new** ({:.2} s; Redis scripts {:.2} s): {} already in bucket, {} deduplicated",
            second.enqueued,
            took2.as_secs_f64(),
            Duration::from_micros(s2.saturating_sub(s1)).as_secs_f64(),
            second.already_in_bucket,
            second.deduplicated
        ),
        "same call again with the same (fixed) clock".to_owned(),
    );
    integration_tests::delete_namespace(&q).await?;
    Ok(())
}

async fn run_all(t: &mut Table, run: &str, backlog: usize) {
    // `BENCH_ONLY=heartbeat` (or `backlog`) runs that section alone, for diagnosis.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if only == "heartbeat" || only == "backlog" {
        let res = if only == "heartbeat" {
            heartbeat_round(t, run).await
        } else {
            backlog_round(t, run, backlog).await
        };
        if let Err(e) = res {
            t.row(format!("{only}: ERROR"), format!("{e:#}"), "section failed");
        }
        return;
    }
    let tenants_main = 1_000;
    let sections: Vec<(&str, anyhow::Result<()>)> = vec![
        (
            "ours 200k",
            ours_round(
                t,
                "ours",
                bench_queue_config(run, "ours"),
                OURS_N,
                tenants_main,
                "default `QueueConfig` (tenant cap 8, quantum 8)",
            )
            .await,
        ),
        (
            "apalis default",
            apalis_round(
                t,
                "apalis-redis 1.0.0, default config",
                apalis_redis::Config::default().queue(format!("bench-{run}-apalis-default")),
                APALIS_N,
                "`Config::default()` (batch 10, lock_tasks true, heartbeat 30 s), only the queue name set",
            )
            .await,
        ),
        (
            "apalis tuned",
            apalis_round(
                t,
                "apalis-redis 1.0.0, tuned",
                apalis_redis::Config::default()
                    .queue(format!("bench-{run}-apalis-tuned"))
                    .batch_size(100)
                    .lock_tasks(false),
                APALIS_N,
                "for reference: `batch_size(100)`, `lock_tasks(false)` (job-queues.md §A13)",
            )
            .await,
        ),
        (
            "ours 7,900 (1 tenant)",
            ours_round(
                t,
                "ours, like-for-like",
                QueueConfig {
                    tenant_cap: 0,
                    ..bench_queue_config(run, "ours7900")
                },
                APALIS_N,
                1,
                "one tenant, tenant cap off (a single FIFO, as apalis-redis)",
            )
            .await,
        ),
        (
            "ours 7,900 (1,000 tenants)",
            ours_round(
                t,
                "ours, 7,900 over 1,000 tenants",
                bench_queue_config(run, "ours7900t"),
                APALIS_N,
                tenants_main,
                "default `QueueConfig`",
            )
            .await,
        ),
        ("backlog", backlog_round(t, run, backlog).await),
        ("heartbeat", heartbeat_round(t, run).await),
    ];
    for (name, res) in sections {
        if let Err(e) = res {
            t.row(
                format!("{name}: ERROR"),
                format!("{e:#}"),
                "section failed".to_owned(),
            );
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; a harness-less bench ignores its arguments.
    let backlog: usize = std::env::var("BENCH_BACKLOG")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let run = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    eprintln!("queue benchmark run {run} against {}", redis_url());
    let mut t = Table { rows: Vec::new() };
    let started = Instant::now();
    run_all(&mut t, &run, backlog).await;

    // Whatever happened, remove every key of this run, by its own prefixes only.
    let mut conn = redis::Client::open(redis_url())?
        .get_connection_manager()
        .await?;
    let mut removed = 0;
    for pattern in [
        format!("{}*", glob_escape(&format!("{{bench-{run}-"))),
        format!("{}*", glob_escape(&format!("bench-{run}-"))),
    ] {
        removed += delete_matching(&mut RedisConn::Single(conn.clone()), &pattern).await?;
    }
    let (mem, _) = used_memory(&mut conn).await?;

    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await?;
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "Command: `{COMMAND}` (BENCH_BACKLOG={backlog}); Redis {version} at {}, {cores} CPU cores, run `{run}`, {:.0} s",
        redis_url(),
        started.elapsed().as_secs_f64()
    );
    println!();
    println!("| figure | value | how |");
    println!("|---|---|---|");
    for (f, v, h) in &t.rows {
        println!("| {f} | {v} | {h} |");
    }
    println!();
    println!(
        "Cleanup: {removed} leftover keys deleted by SCAN MATCH `{{bench-{run}-*` and `bench-{run}-*`; used_memory now {:.1} MB.",
        mem as f64 / 1e6
    );
    Ok(())
}
