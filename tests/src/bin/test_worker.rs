//! `test-worker`: a worker process for the crash tests. It runs the real worker runtime
//! ([`workers::runtime::start_worker`]) on the real Redis queue, with handler behaviours chosen by
//! the job's scope, so a test can kill it mid-job, make a job kill it, or stop it with SIGTERM.
//!
//! Configuration (environment):
//! - `REDIS_URL` (default `redis://127.0.0.1:6379`), `QUEUE_NS` (required), `WORKER_ID` (required);
//! - `LEASE_MS` (default 30000), `REAP_INTERVAL_MS` (default 5000), `CONCURRENCY` (default 64);
//! - optional: `PREFETCH`, `BATCH` (backend defaults), `TENANT_CAP` (queue default),
//!   `POLL_INTERVAL_MS` (backend default).
//!
//! Handler, by the job's scope:
//! - `Scope::Order { order: "sleep-<ms>" }`: sleeps, then succeeds;
//! - `Scope::Order { order: "crash" }`: the process SIGKILLs itself;
//! - anything else: succeeds at once.
//!
//! Every attempt prints `started <job_id> attempt <n>` on stdout when it starts. Every successful
//! run records `SADD {ns}:test:done <job_id>` and `INCR {ns}:test:runs:<job_id>`. SIGTERM (or
//! SIGINT) stops the worker cleanly with a 10 s grace; the process then exits 0.

use std::io::Write;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use queue_schema::{Job, Scope};
use tokio::signal::unix::{SignalKind, signal};
use workers::queue::backend::BackendOptions;
use workers::queue::service::JobError;
use workers::queue::{Queue, QueueConfig};
use workers::runtime::{handler, start_worker};
use workers::telemetry::{LogFormat, init_logs};

const GRACE: Duration = Duration::from_secs(10);

fn env_or<T: FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("{name}={v:?}: {e}")),
        Err(_) => Ok(default),
    }
}

fn required(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} must be set"))
}

/// Kills this process the way an OOM killer or `kill -9` would: no unwinding, no shutdown.
fn die_now() -> ! {
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status();
    // `kill` is missing or the signal did not arrive yet: abort is just as abrupt.
    std::thread::sleep(Duration::from_millis(200));
    std::process::abort()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logs(LogFormat::Text);
    let redis_url =
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let namespace = required("QUEUE_NS")?;
    let worker_id = required("WORKER_ID")?;
    let defaults = QueueConfig::default();
    let cfg = QueueConfig {
        namespace,
        lease_ms: env_or("LEASE_MS", 30_000u64)?,
        tenant_cap: env_or("TENANT_CAP", defaults.tenant_cap)?,
        ..defaults
    };
    let queue = Queue::connect(&redis_url, cfg)
        .await
        .context("connecting to Redis")?;

    let mut opts = BackendOptions::new(worker_id.clone());
    opts.reap_interval = Duration::from_millis(env_or("REAP_INTERVAL_MS", 5_000u64)?);
    opts.concurrency = env_or("CONCURRENCY", 64usize)?.max(1);
    opts.prefetch = env_or("PREFETCH", opts.prefetch)?;
    opts.batch = env_or("BATCH", opts.batch)?.max(1);
    opts.poll_interval = Duration::from_millis(env_or(
        "POLL_INTERVAL_MS",
        opts.poll_interval.as_millis() as u64,
    )?);

    let tag = queue.keys().tag().to_owned();
    let conn = queue.connection();
    let h = handler(move |job: Job| {
        let mut conn = conn.clone();
        let tag = tag.clone();
        async move {
            {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "started {} attempt {}", job.id, job.attempt);
                let _ = out.flush();
            }
            if let Scope::Order { order } = job.payload.scope() {
                let order = order.as_str();
                if order == "crash" {
                    die_now();
                }
                if let Some(ms) = order.strip_prefix("sleep-") {
                    let ms: u64 = ms
                        .parse()
                        .map_err(|e| JobError::permanent(format!("bad sleep {ms:?}: {e}")))?;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
            }
            let id = job.id.to_string();
            redis::pipe()
                .cmd("SADD")
                .arg(format!("{tag}:test:done"))
                .arg(&id)
                .ignore()
                .cmd("INCR")
                .arg(format!("{tag}:test:runs:{id}"))
                .ignore()
                .query_async::<()>(&mut conn)
                .await
                .map_err(JobError::retryable)?;
            Ok(())
        }
    });

    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("stop signal received; draining");
    };
    let worker = start_worker(queue, opts, h, None, shutdown, GRACE);
    tracing::info!(worker = %worker_id, "test worker running");
    worker.run.await?;
    tracing::info!(worker = %worker_id, "test worker stopped");
    Ok(())
}
