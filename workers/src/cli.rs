//! The command line: one subcommand per user of the product (operators run `worker`,
//! `scheduler`, `migrate`; cron runs `enqueue heartbeat`; support runs `jobs`; onboarding runs
//! `tenants`). `anyhow` lives here, at the edge, and nowhere in the library.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::config::Config;
use crate::db;
use crate::queue::backend::BackendOptions;
use crate::queue::{Enqueued, Queue};
use crate::telemetry::{self, LogFormat};
use crate::{flows, heartbeat, process, runtime};
use anyhow::{Context, bail};
use canonical::{ChannelOrderId, ConnectionId, Courier, Erp, Marketplace, Sku, TenantId};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use queue_schema::{JobId, JobKind, JobPayload, JobSpec, JobState, Scope, Trigger};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "megzo", version, about = "MEGZO Integrator Vortex: keeps a merchant's ERP in sync with its marketplaces and couriers, as a durable job-queue worker fleet.", long_about = None)]
pub struct Cli {
    /// Configuration file (TOML); defaults to $MEGZO_CONFIG, then ./megzo.toml if present.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format (logs go to stderr).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Apply the Postgres migrations (idempotent).
    Migrate,
    /// Run a worker process: leases jobs from Redis and runs them until SIGTERM.
    Worker(WorkerArgs),
    /// Enqueue the heartbeat at the start of every interval, forever, and run the retention
    /// purge. Run two or more replicas: they elect a leader in Postgres and the others stand by.
    Scheduler {
        /// Seconds between heartbeats (default from config: 300).
        #[arg(long)]
        interval_secs: Option<u64>,
    },
    /// Enqueue work now.
    #[command(subcommand)]
    Enqueue(EnqueueCmd),
    /// Inspect and replay jobs.
    #[command(subcommand)]
    Jobs(JobsCmd),
    /// Manage tenants and their connections.
    #[command(subcommand)]
    Tenants(TenantsCmd),
    /// Queue depth, age and counters.
    Stats,
    /// Print the effective configuration, secrets redacted.
    Config,
    /// Run the whole fleet for demo tenants in one process: migrations, demo tenants on the
    /// built-in no-op connector, the scheduler and several workers, with a status line.
    Demo(DemoArgs),
    /// Store and inspect the credentials of connections (encrypted at rest with
    /// MEGZO_CREDENTIAL_KEYS; never printed).
    #[command(subcommand)]
    Connections(ConnectionsCmd),
    /// Manage the credential keys: make a new key, re-encrypt everything with the active key.
    #[command(subcommand)]
    Credentials(CredentialsCmd),
    /// Field-mapping rule sets: validate a file, save it as a version, activate, roll back,
    /// list, show, history. Workers use a newly activated version from their next job.
    #[command(subcommand)]
    Mapping(MappingCmd),
    /// The exchange-rate feed conversions use when a rule set has no rate of its own: import a
    /// central bank's publication (ECB or BNR XML) or a CSV, set one rate, list, convert.
    #[command(subcommand)]
    Rates(RatesCmd),
    /// Print which flows each external system supports, and why not where it does not.
    Connectors {
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Start every fake external system (CDON, Cel.ro, DHL, SmartBill, lexoffice, Charisma on
    /// loopback; WinMentor on an exchange directory) with demo data, and print their URLs and
    /// demo credentials; runs until Ctrl-C.
    Sandbox(SandboxArgs),
    /// The support console and vendor panel: JSON admin API (/api/v1, OpenAPI at
    /// /api/openapi.json) and web pages (/ui/), with roles, API tokens and sessions.
    Serve(crate::cli_console::ServeArgs),
    /// The product's duties as a GDPR processor: the retention purge, a tenant's export (for
    /// the controller's subject-access requests) and erasure (of a tenant or one data subject).
    #[command(subcommand)]
    Gdpr(crate::gdpr::GdprCmd),
    /// Console users (operator, support, vendor) and their API tokens.
    #[command(subcommand)]
    Users(crate::cli_console::UsersCmd),
}

#[derive(Debug, Args)]
struct SandboxArgs {
    #[arg(long, default_value = "127.0.0.1:7401")]
    cdon: String,
    #[arg(long, default_value = "127.0.0.1:7402")]
    celro: String,
    #[arg(long, default_value = "127.0.0.1:7403")]
    dhl: String,
    #[arg(long, default_value = "127.0.0.1:7404")]
    smartbill: String,
    #[arg(long, default_value = "127.0.0.1:7405")]
    lexoffice: String,
    #[arg(long, default_value = "127.0.0.1:7406")]
    charisma: String,
    /// The WinMentor exchange directory (default: megzo-sandbox-winmentor in the temp dir).
    #[arg(long)]
    winmentor_dir: Option<PathBuf>,
    /// Start empty (no demo listings or orders).
    #[arg(long)]
    no_seed: bool,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration_secs: Option<u64>,
}

#[derive(Debug, Args)]
struct WorkerArgs {
    /// Jobs run at once by this process.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Only these kinds, comma separated (default: all, by priority).
    #[arg(long, value_delimiter = ',')]
    kinds: Vec<JobKind>,
    /// Worker id (default: <host>-<pid>-<random>, unique per process).
    #[arg(long)]
    id: Option<String>,
    /// Address of /healthz, /readyz and /metrics (default from config).
    #[arg(long)]
    http: Option<String>,
}

#[derive(Debug, Subcommand)]
enum EnqueueCmd {
    /// Enqueue one heartbeat (every flow of every enabled connection), once per interval
    /// however often it is called: for a cron.
    Heartbeat {
        #[arg(long)]
        interval_secs: Option<u64>,
    },
    /// Enqueue one job by hand.
    Job {
        #[arg(long)]
        kind: JobKind,
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        connection: ConnectionId,
        /// Limit the job to one marketplace order.
        #[arg(long, conflicts_with = "skus")]
        order: Option<ChannelOrderId>,
        /// Limit the job to these SKUs (comma separated).
        #[arg(long, value_delimiter = ',')]
        skus: Vec<Sku>,
    },
}

#[derive(Debug, Args, Default)]
struct Filter {
    /// Tenant id or slug.
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long)]
    kind: Option<JobKind>,
    /// Only jobs at or after this time (RFC 3339, e.g. 2026-11-22T10:00:00Z).
    #[arg(long)]
    since: Option<DateTime<Utc>>,
    /// Only jobs before this time (RFC 3339).
    #[arg(long)]
    until: Option<DateTime<Utc>>,
    #[arg(long, default_value_t = 50)]
    limit: i64,
}

#[derive(Debug, Subcommand)]
enum JobsCmd {
    /// List jobs: live ones from Redis by state (ready, scheduled, retrying, running), dead
    /// ones from Postgres (`--state dead`), or without --state the attempt history.
    List {
        #[arg(long)]
        state: Option<JobState>,
        #[command(flatten)]
        filter: Filter,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Everything known about one job: its record, every attempt with its error chain, and
    /// whether it died or was replayed.
    Show { id: JobId },
    /// Replay dead jobs from Postgres (works even after Redis lost its data): one by id, or
    /// every dead job matching the filter.
    Replay {
        /// The dead job to replay; omit to replay by filter.
        id: Option<JobId>,
        #[command(flatten)]
        filter: Filter,
        /// Print what would be replayed, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run the delayed jobs now (retries waiting out their backoff, jobs scheduled for later):
    /// once an outage is over. Attempts and histories are kept.
    RunNow {
        /// At most this many.
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
enum TenantsCmd {
    /// Add a tenant and its first connection.
    Add {
        /// Lowercase letters, digits and dashes.
        slug: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "noop")]
        erp: Erp,
        #[arg(long, default_value = "noop")]
        marketplace: Marketplace,
        #[arg(long)]
        courier: Option<Courier>,
    },
    /// List tenants with their connections.
    List,
    /// Freshness: per tenant and connection, each flow's last success (how long ago), last
    /// failure with its error, and STALE when nothing succeeded for 3 heartbeat intervals.
    Status {
        /// Tenant id or slug (default: every tenant).
        tenant: Option<String>,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Set a tenant's own concurrency cap (jobs running at once across the fleet), or go back to
    /// the fleet default with `--default`.
    Cap {
        /// Tenant id or slug.
        tenant: String,
        #[arg(long, required_unless_present = "default", conflicts_with = "default")]
        cap: Option<u32>,
        #[arg(long)]
        default: bool,
    },
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Extra tenants on the built-in no-op connector (load for the queue, beside the five seed
    /// pairs on the fakes).
    #[arg(long, default_value_t = 0)]
    tenants: usize,
    /// A marketplace order is placed on one of the seed pairs this often (milliseconds).
    #[arg(long, default_value_t = 1500)]
    order_every_ms: u64,
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// Heartbeat interval for the demo (short, so there is something to see).
    #[arg(long, default_value_t = 10)]
    interval_secs: u64,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration_secs: Option<u64>,
    /// Address of the support console (`off`: none).
    #[arg(long, default_value = "127.0.0.1:7400")]
    console: String,
}

/// The whole program: parses the arguments, runs the command, reports an error on stderr.
pub async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut cfg = Config::load(cli.config.as_deref())?;
    if let Some(f) = cli.log_format {
        cfg.log_format = f;
    }
    telemetry::init_logs(cfg.log_format);
    match cli.cmd {
        Cmd::Config => {
            println!("{}", cfg.redacted());
            Ok(())
        }
        Cmd::Migrate => {
            let pool = pg(&cfg).await?;
            db::migrate(&pool).await?;
            println!("migrations applied");
            Ok(())
        }
        Cmd::Worker(args) => worker(cfg, args).await,
        Cmd::Scheduler { interval_secs } => {
            let (queue, pool) = (redis_queue(&cfg).await?, pg(&cfg).await?);
            let interval =
                Duration::from_secs(interval_secs.unwrap_or(cfg.scheduler.interval_secs));
            let cancel = CancellationToken::new();
            let probes = process::Probes {
                queue: queue.clone(),
                pool: Some(pool.clone()),
                serving: Arc::new(AtomicBool::new(true)),
            };
            let addr = process::serve_probes(&cfg.worker.http_addr, probes, cancel.clone()).await?;
            tracing::info!(%addr, interval_secs = interval.as_secs(), "scheduler started");
            // One replica leads (a Postgres advisory lock, `leader.rs`) and runs the heartbeat
            // and the personal-data retention purge; the others stand by. Both stay safe if two
            // ever run at once: the heartbeat's once-keys, the purge's row locks.
            let (retention, purge_every) = (cfg.gdpr.retention()?, cfg.gdpr.interval()?);
            let role = format!("scheduler:{}", cfg.queue.namespace);
            let check = Duration::from_secs(cfg.scheduler.leader_check_secs);
            // On SIGTERM the leader steps down (its work stops, it unlocks), so a standby takes
            // over at once; the probes stop with it.
            let stop = cancel.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                stop.cancel();
            });
            crate::leader::run_as_leader(&pool, &role, check, cancel.clone(), |leading| {
                let (queue, pool) = (queue.clone(), pool.clone());
                async move {
                    let purge = tokio::spawn(crate::gdpr::purge_loop(
                        pool.clone(),
                        retention,
                        purge_every,
                        leading.clone(),
                    ));
                    heartbeat::run_scheduler(queue, pool, interval, leading.cancelled_owned())
                        .await;
                    let _ = purge.await;
                }
            })
            .await;
            // run_as_leader returns only once `cancel` is (SIGTERM): the probes have stopped.
            Ok(())
        }
        Cmd::Enqueue(EnqueueCmd::Heartbeat { interval_secs }) => {
            let (queue, pool) = (redis_queue(&cfg).await?, pg(&cfg).await?);
            let interval =
                Duration::from_secs(interval_secs.unwrap_or(cfg.scheduler.interval_secs));
            let r = heartbeat::enqueue_heartbeat(&queue, &pool, interval).await?;
            println!(
                "bucket {}: {} connections, {} jobs enqueued, {} already waiting, {} already enqueued in this bucket",
                r.bucket, r.connections, r.enqueued, r.deduplicated, r.already_in_bucket
            );
            Ok(())
        }
        Cmd::Enqueue(EnqueueCmd::Job {
            kind,
            tenant,
            connection,
            order,
            skus,
        }) => {
            let (queue, pool) = (redis_queue(&cfg).await?, pg(&cfg).await?);
            let conns = db::list_connections(&pool, Some(tenant)).await?;
            if !conns.iter().any(|c| c.id == connection) {
                bail!("tenant {tenant} has no connection {connection} (see `megzo tenants list`)");
            }
            let scope = match (order, skus.is_empty()) {
                (Some(order), _) => Scope::Order { order },
                (None, false) => Scope::Skus { skus },
                (None, true) => Scope::All,
            };
            let spec = JobSpec::new(
                kind,
                JobPayload::v1(tenant, connection, scope, Trigger::Manual),
            );
            match queue.enqueue(&spec).await? {
                Enqueued::New(id) => println!("enqueued {kind} job {id}"),
                Enqueued::Duplicate(id) => {
                    println!("a {kind} job with the same scope is already waiting: {id}")
                }
                Enqueued::AlreadyOnce => println!("already enqueued in this window"),
            }
            Ok(())
        }
        Cmd::Jobs(cmd) => jobs(cfg, cmd).await,
        Cmd::Tenants(cmd) => tenants(cfg, cmd).await,
        Cmd::Stats => {
            let queue = redis_queue(&cfg).await?;
            let s = queue.stats().await?;
            println!("{:<18} {:>10} {:>14}", "kind", "ready", "oldest age (s)");
            for k in &s.kinds {
                println!(
                    "{:<18} {:>10} {:>14.1}",
                    k.kind.as_str(),
                    k.ready,
                    k.oldest_age_ms as f64 / 1000.0
                );
            }
            println!(
                "delayed {}  running {}  dead {}  workers alive {}\nsince start: enqueued {}  succeeded {}  retried {}  dead {}  rescued {}",
                s.delayed,
                s.running,
                s.dead,
                s.workers_alive,
                s.enqueued_total,
                s.succeeded_total,
                s.retried_total,
                s.dead_total,
                s.rescued_total
            );
            if let Some(bytes) = queue.sampled_job_bytes(20).await? {
                println!(
                    "redis memory: ~{bytes} B per queued job record (sampled; ~270 B more per job for its place in the queues)"
                );
            }
            Ok(())
        }
        Cmd::Demo(args) => demo(cfg, args).await,
        Cmd::Connections(cmd) => connections(cfg, cmd).await,
        Cmd::Credentials(cmd) => credentials(cfg, cmd).await,
        Cmd::Connectors { json } => {
            print!("{}", connectors_matrix(json)?);
            Ok(())
        }
        Cmd::Sandbox(args) => sandbox(args).await,
        Cmd::Serve(args) => {
            let (queue, pool) = (redis_queue(&cfg).await?, pg(&cfg).await?);
            crate::cli_console::serve(pool, queue, args, shutdown_signal()).await
        }
        Cmd::Gdpr(cmd) => crate::gdpr::run(&pg(&cfg).await?, cmd).await,
        Cmd::Users(cmd) => crate::cli_console::users(&pg(&cfg).await?, cmd).await,
        Cmd::Mapping(cmd) => mapping(cfg, cmd).await,
        Cmd::Rates(cmd) => rates(cfg, cmd).await,
    }
}

/// The capability matrix as a table (✓ supported, ✗ not, with the reasons below) or JSON.
fn connectors_matrix(json: bool) -> anyhow::Result<String> {
    use connectors::{Flow, Support};
    let matrix = crate::connect::capability_matrix();
    if json {
        return Ok(serde_json::to_string_pretty(&matrix)? + "\n");
    }
    let flow_name = |f: Flow| {
        serde_json::to_value(f)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let mut out = format!("{:<10}", "system");
    for f in Flow::ALL {
        out += &format!(" {:<17}", flow_name(f));
    }
    out.push('\n');
    let mut notes = String::new();
    for caps in &matrix {
        out += &format!("{:<10}", caps.system);
        for f in Flow::ALL {
            let mark = match caps.flows.iter().find(|(g, _)| *g == f) {
                Some((_, Support::Supported)) => "yes".to_owned(),
                Some((_, Support::Unsupported { why })) => {
                    notes += &format!("- {} {}: {why}\n", caps.system, flow_name(f));
                    "no (see below)".to_owned()
                }
                None => "-".to_owned(),
            };
            out += &format!(" {mark:<17}");
        }
        out = out.trim_end().to_owned() + "\n";
    }
    if !notes.is_empty() {
        out += "\nwhy not:\n";
        out += &notes;
    }
    Ok(out)
}

async fn sandbox(args: SandboxArgs) -> anyhow::Result<()> {
    let addrs = crate::sandbox::Addrs {
        cdon: args.cdon,
        celro: args.celro,
        dhl: args.dhl,
        smartbill: args.smartbill,
        lexoffice: args.lexoffice,
        charisma: args.charisma,
        winmentor_dir: args
            .winmentor_dir
            .unwrap_or_else(|| crate::sandbox::Addrs::default().winmentor_dir),
    };
    let sandbox = crate::sandbox::Sandbox::start(&addrs, !args.no_seed).await?;
    println!("{}", sandbox.describe());
    tracing::info!("sandbox running; Ctrl-C stops it");
    match args.duration_secs {
        Some(s) => {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(s)) => {}
                _ = shutdown_signal() => {}
            }
        }
        None => shutdown_signal().await,
    }
    drop(sandbox);
    Ok(())
}

async fn pg(cfg: &Config) -> anyhow::Result<PgPool> {
    db::connect(cfg.database_url.expose_secret(), cfg.worker.db_pool)
        .await
        .context("connecting to Postgres (DATABASE_URL)")
}

/// Connects to Redis, waiting for it (a worker may start before Redis is up).
async fn redis_queue(cfg: &Config) -> anyhow::Result<Queue> {
    let url = cfg.redis_url.expose_secret().to_owned();
    let mut wait = Duration::from_millis(200);
    for attempt in 1..=10 {
        match Queue::connect(&url, cfg.queue.clone()).await {
            Ok(q) => return Ok(q),
            Err(e) if attempt < 10 && e.is_transient() => {
                tracing::warn!(error = %e, attempt, "Redis not reachable yet; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e).context("connecting to Redis (REDIS_URL)"),
        }
    }
    bail!("Redis not reachable")
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    )
}

fn backend_options(
    cfg: &Config,
    id: String,
    kinds: Vec<JobKind>,
    concurrency: Option<usize>,
) -> BackendOptions {
    let mut opts = BackendOptions::new(id);
    if !kinds.is_empty() {
        opts.kinds = kinds;
        opts.kinds.sort_by_key(|k| k.policy().priority);
    }
    opts.concurrency = concurrency.unwrap_or(cfg.worker.concurrency).max(1);
    opts.prefetch = cfg.worker.prefetch;
    opts.batch = cfg.worker.batch.max(1);
    opts.poll_interval = Duration::from_millis(cfg.worker.poll_interval_ms.max(1));
    opts.reap_interval = Duration::from_millis(cfg.worker.reap_interval_ms.max(100));
    opts
}

async fn worker(cfg: Config, args: WorkerArgs) -> anyhow::Result<()> {
    let (queue, pool) = (redis_queue(&cfg).await?, pg(&cfg).await?);
    let id = args.id.unwrap_or_else(default_worker_id);
    let opts = backend_options(&cfg, id.clone(), args.kinds, args.concurrency);
    let http = args.http.unwrap_or_else(|| cfg.worker.http_addr.clone());
    let sidecars = process::Sidecars::start(&queue, &pool, &http).await?;
    let queue_for_flows = queue.clone();
    tracing::info!(worker = %id, addr = %sidecars.addr, concurrency = opts.concurrency, kinds = ?opts.kinds, "worker started");
    let serving = sidecars.serving.clone();
    let mut deps = flows::FlowDeps::new(
        pool,
        queue_for_flows,
        cfg.ratelimits.clone(),
        cfg.mapping.clone(),
    );
    deps.options = cfg.flows.options();
    let w = runtime::start_worker(
        queue,
        opts,
        flows::flow_handler(deps),
        Some(sidecars.reports.clone()),
        async move {
            shutdown_signal().await;
            serving.store(false, std::sync::atomic::Ordering::SeqCst);
            tracing::info!("shutdown requested: draining in-flight jobs");
        },
        Duration::from_secs(cfg.worker.grace_secs),
    );
    // Only the run future may keep the backend (and so its report sender) alive, so the
    // recorder ends as soon as the worker has flushed its last report.
    let runtime::RunningWorker { handle, run } = w;
    drop(handle);
    let res = run.await;
    sidecars.stop().await;
    tracing::info!(worker = %id, "worker stopped");
    res
}

async fn resolve_tenant(pool: &PgPool, key: &Option<String>) -> anyhow::Result<Option<TenantId>> {
    match key {
        None => Ok(None),
        Some(k) => match db::find_tenant(pool, k).await? {
            Some(t) => Ok(Some(t.id)),
            None => bail!("no tenant {k:?} (by id or slug; see `megzo tenants list`)"),
        },
    }
}

async fn jobs(cfg: Config, cmd: JobsCmd) -> anyhow::Result<()> {
    let (queue, pool) = (redis_queue(&cfg).await?, pg(&cfg).await?);
    match cmd {
        JobsCmd::List {
            state,
            filter,
            json,
        } => {
            let tenant = resolve_tenant(&pool, &filter.tenant).await?;
            match state {
                Some(JobState::Dead) => {
                    let dead = db::list_dead(&pool, &dead_filter(&filter, tenant)).await?;
                    for d in dead {
                        if json {
                            println!(
                                "{}",
                                serde_json::json!({"id": d.job_id, "kind": d.kind, "tenant": d.tenant_id, "attempts": d.attempts, "died_at": d.died_at, "last_error": d.errors.last().map(|e| e.chain.join(": ")), "replayed_as": d.replayed_as})
                            );
                        } else {
                            println!(
                                "{}  {:<18} tenant {}  attempts {}/{}  died {}  {}",
                                d.job_id,
                                d.kind.as_str(),
                                d.tenant_id,
                                d.attempts,
                                d.max_attempts,
                                d.died_at.format("%F %T"),
                                d.errors
                                    .last()
                                    .map(|e| e.chain.join(": "))
                                    .unwrap_or_default()
                            );
                        }
                    }
                }
                Some(JobState::Succeeded) | None => {
                    let runs = db::list_runs(
                        &pool,
                        &db::RunFilter {
                            tenant,
                            kind: filter.kind,
                            outcome: if state.is_some() {
                                Some(db::RunOutcome::Succeeded)
                            } else {
                                None
                            },
                            since: filter.since,
                            until: filter.until,
                            job: None,
                            limit: filter.limit,
                        },
                    )
                    .await?;
                    for r in runs {
                        if json {
                            println!(
                                "{}",
                                serde_json::json!({"job": r.job_id, "attempt": r.attempt, "kind": r.kind, "tenant": r.tenant_id, "outcome": r.outcome.as_str(), "started_at": r.started_at, "duration_ms": r.duration_ms, "worker": r.worker, "mapping_version": r.mapping_version, "error": r.error})
                            );
                        } else {
                            println!(
                                "{}  #{} {:<18} {:<9} {}  {} ms  {}",
                                r.job_id,
                                r.attempt,
                                r.kind.as_str(),
                                r.outcome.as_str(),
                                r.started_at.format("%F %T"),
                                r.duration_ms,
                                r.error.map(|e| e.chain.join(": ")).unwrap_or_default()
                            );
                        }
                    }
                }
                Some(live) => {
                    let ids = queue
                        .ids_in_state(live, filter.kind, filter.limit.max(1) as usize * 4)
                        .await?;
                    let mut shown = 0;
                    for id in ids {
                        let Some(rec) = queue.job(id).await? else {
                            continue;
                        };
                        if tenant.is_some_and(|t| t.to_string() != rec.tenant)
                            || filter.kind.is_some_and(|k| k.as_str() != rec.kind)
                        {
                            continue;
                        }
                        // Scheduled and retrying jobs share the delayed set: tell them apart.
                        if matches!(live, JobState::Scheduled | JobState::Retrying)
                            && rec.state != live.as_str()
                        {
                            continue;
                        }
                        if json {
                            println!("{}", serde_json::to_string(&rec)?);
                        } else {
                            println!(
                                "{}  {:<18} {:<9} tenant {}  attempts {}/{}",
                                rec.id,
                                rec.kind,
                                rec.state,
                                rec.tenant,
                                rec.attempts,
                                rec.max_attempts
                            );
                        }
                        shown += 1;
                        if shown >= filter.limit {
                            break;
                        }
                    }
                }
            }
            Ok(())
        }
        JobsCmd::Show { id } => {
            match queue.job(id).await? {
                Some(rec) => println!("{}", serde_json::to_string_pretty(&rec)?),
                None => println!(
                    "job {id}: no record in Redis (succeeded and expired, or Redis lost it)"
                ),
            }
            let runs = db::list_runs(
                &pool,
                &db::RunFilter {
                    job: Some(id),
                    limit: 1000,
                    ..Default::default()
                },
            )
            .await?;
            println!("attempt history ({} runs in Postgres):", runs.len());
            for r in runs.iter().rev() {
                println!(
                    "  #{} {:<9} {}  {} ms  worker {}{}",
                    r.attempt,
                    r.outcome.as_str(),
                    r.started_at.format("%F %T%.3f"),
                    r.duration_ms,
                    r.worker,
                    r.mapping_version
                        .map(|v| format!("  mapping v{v}"))
                        .unwrap_or_default()
                );
                if let Some(e) = &r.error {
                    for (i, c) in e.chain.iter().enumerate() {
                        println!(
                            "      {}{c}",
                            if i == 0 { "error: " } else { "caused by: " }
                        );
                    }
                }
            }
            if let Some(d) = db::get_dead(&pool, id).await? {
                println!(
                    "dead since {} after {} attempts{}",
                    d.died_at,
                    d.attempts,
                    d.replayed_as
                        .map(|r| format!("; replayed as {r}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        JobsCmd::RunNow { limit } => {
            let n = queue.run_delayed_now(limit).await?;
            println!("{n} delayed jobs made due now");
            Ok(())
        }
        JobsCmd::Replay {
            id,
            filter,
            dry_run,
        } => {
            let dead = match id {
                Some(id) => match db::get_dead(&pool, id).await? {
                    Some(d) if d.replayed_as.is_some() => bail!(
                        "job {id} was already replayed as {}",
                        d.replayed_as.map(|x| x.to_string()).unwrap_or_default()
                    ),
                    Some(d) => vec![d],
                    None => bail!(
                        "job {id} is not a dead job in Postgres (see `megzo jobs list --state dead`)"
                    ),
                },
                None => {
                    let tenant = resolve_tenant(&pool, &filter.tenant).await?;
                    db::list_dead(&pool, &dead_filter(&filter, tenant)).await?
                }
            };
            if dead.is_empty() {
                println!("no dead job matches");
            }
            let (mut replayed, mut failed) = (0, 0);
            for d in dead {
                if dry_run {
                    println!(
                        "would replay {}  {:<18} tenant {}  (died {} after {} attempts)",
                        d.job_id,
                        d.kind.as_str(),
                        d.tenant_id,
                        d.died_at.format("%F %T"),
                        d.attempts
                    );
                    continue;
                }
                match crate::support::replay_dead(&pool, &queue, &d).await? {
                    crate::support::Replayed::Replayed { job, new_id } => {
                        println!("replayed {job} as {new_id}");
                        replayed += 1;
                    }
                    crate::support::Replayed::AlreadyReplayed { job } => {
                        println!("{job} was replayed concurrently by someone else");
                    }
                    crate::support::Replayed::Unreadable { job, reason } => {
                        println!(
                            "cannot replay {job}: {reason}; fix the cause, then enqueue by hand"
                        );
                        failed += 1;
                    }
                }
            }
            if !dry_run {
                println!("{replayed} replayed, {failed} could not be replayed");
            }
            Ok(())
        }
    }
}

fn dead_filter(f: &Filter, tenant: Option<TenantId>) -> db::DeadFilter {
    db::DeadFilter {
        tenant,
        kind: f.kind,
        since: f.since,
        until: f.until,
        include_replayed: false,
        limit: f.limit,
    }
}

async fn tenants(cfg: Config, cmd: TenantsCmd) -> anyhow::Result<()> {
    let pool = pg(&cfg).await?;
    match cmd {
        TenantsCmd::Cap {
            tenant,
            cap,
            default,
        } => {
            let Some(t) = db::find_tenant(&pool, &tenant).await? else {
                bail!("no tenant {tenant:?} (by id or slug; see `megzo tenants list`)");
            };
            let cap = if default { None } else { cap };
            let as_i32 = cap
                .map(|c| i32::try_from(c).context("the cap is too large"))
                .transpose()?;
            db::set_tenant_cap(&pool, t.id, as_i32).await?;
            redis_queue(&cfg).await?.set_tenant_cap(t.id, cap).await?;
            match cap {
                Some(c) => println!("tenant {} may run {c} jobs at once", t.slug),
                None => println!("tenant {} uses the fleet default cap", t.slug),
            }
            Ok(())
        }
        TenantsCmd::Add {
            slug,
            name,
            erp,
            marketplace,
            courier,
        } => {
            let t = db::add_tenant(&pool, &slug, &name).await?;
            let c = db::add_connection(
                &pool,
                t.id,
                erp,
                marketplace,
                courier,
                serde_json::json!({}),
            )
            .await?;
            println!(
                "tenant {} ({}) added with connection {} ({} ⇄ {})",
                t.slug, t.id, c.id, c.erp, c.marketplace
            );
            for (d, v) in crate::mapping::install_defaults(&pool, &c, "megzo").await? {
                println!("  default {d} mapping active as v{v}");
            }
            Ok(())
        }
        TenantsCmd::Status { tenant, json } => {
            let tenant = resolve_tenant(&pool, &tenant).await?;
            let rows = db::flow_freshness(&pool, tenant, false).await?;
            let now = Utc::now();
            let interval = Duration::from_secs(cfg.scheduler.interval_secs);
            let report = crate::freshness::report(&rows, now, interval);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if report.is_empty() {
                println!("no connections");
            } else {
                print!("{}", crate::freshness::render(&report, now));
            }
            Ok(())
        }
        TenantsCmd::List => {
            let conns = db::list_connections(&pool, None).await?;
            for t in db::list_tenants(&pool).await? {
                println!(
                    "{}  {:<20} {}{}{}",
                    t.id,
                    t.slug,
                    t.name,
                    t.concurrency_cap
                        .map(|c| format!("  (cap {c})"))
                        .unwrap_or_default(),
                    if t.active { "" } else { "  (inactive)" }
                );
                for c in conns.iter().filter(|c| c.tenant_id == t.id) {
                    println!(
                        "    connection {}  {} ⇄ {}{}{}",
                        c.id,
                        c.erp,
                        c.marketplace,
                        c.courier.map(|x| format!(" + {x}")).unwrap_or_default(),
                        if c.enabled { "" } else { "  (disabled)" }
                    );
                }
            }
            Ok(())
        }
    }
}

async fn demo(cfg: Config, args: DemoArgs) -> anyhow::Result<()> {
    let (queue, pool) = (redis_queue(&cfg).await?, pg(&cfg).await?);
    db::migrate(&pool).await?;
    for i in 1..=args.tenants {
        let slug = format!("demo-{i}");
        if db::find_tenant(&pool, &slug).await?.is_none() {
            let t = db::add_tenant(&pool, &slug, &format!("Demo merchant {i}")).await?;
            db::add_connection(
                &pool,
                t.id,
                Erp::Noop,
                Marketplace::Noop,
                None,
                serde_json::json!({}),
            )
            .await?;
        }
    }
    // The fakes on free ports, fresh each run: the seed pairs' settings point at this run's.
    for slug in [
        "demo-smartbill",
        "demo-winmentor",
        "demo-charisma",
        "demo-lexoffice",
    ] {
        if let Some(t) = db::find_tenant(&pool, slug).await? {
            sqlx::query("DELETE FROM tenants WHERE id = $1")
                .bind(t.id.0)
                .execute(&pool)
                .await?;
        }
    }
    let sb = crate::sandbox::Sandbox::start(&crate::sandbox::Addrs::any(), false).await?;
    let vault = crate::demo::demo_vault()?;
    let seeded = crate::demo::seed(&pool, &vault, &sb).await?;
    println!(
        "demo: the five seed pairs ({}) on the fakes, {} no-op tenants, {} workers, heartbeat every {} s, an order every {} ms",
        crate::demo::PAIRS.join(", "),
        args.tenants,
        args.workers,
        args.interval_secs,
        args.order_every_ms
    );
    let cancel = CancellationToken::new();
    let stop = {
        let cancel = cancel.clone();
        let duration = args.duration_secs;
        async move {
            match duration {
                Some(s) => {
                    tokio::select! { _ = tokio::time::sleep(Duration::from_secs(s)) => {}, _ = shutdown_signal() => {} }
                }
                None => shutdown_signal().await,
            }
            cancel.cancel();
        }
    };
    tokio::spawn(stop);
    let sidecars = process::Sidecars::start(&queue, &pool, &cfg.worker.http_addr).await?;
    println!("metrics on http://{}/metrics", sidecars.addr);
    if args.console != "off" {
        crate::cli_console::demo_console(
            &pool,
            &queue,
            vault.clone(),
            &args.console,
            cancel.clone(),
        )
        .await?;
    }
    let sched = {
        let c = cancel.clone();
        tokio::spawn(heartbeat::run_scheduler(
            queue.clone(),
            pool.clone(),
            Duration::from_secs(args.interval_secs.max(1)),
            async move { c.cancelled().await },
        ))
    };
    let mut deps = flows::FlowDeps::new(
        pool.clone(),
        queue.clone(),
        cfg.ratelimits.clone(),
        cfg.mapping.clone(),
    );
    deps.vault = Some(vault.clone());
    deps.options = cfg.flows.options();
    deps.options.settle_wait = deps.options.settle_wait.min(Duration::from_secs(2));
    // The demo's merchants invoice within seconds, not hours.
    deps.options.invoice_recheck = Duration::from_secs(2);
    deps.options.invoice_recheck_cap = Duration::from_secs(10);
    let mut runs = Vec::new();
    for i in 0..args.workers.max(1) {
        let opts = backend_options(
            &cfg,
            format!("{}-demo{i}", default_worker_id()),
            Vec::new(),
            None,
        );
        let c = cancel.clone();
        let w = runtime::start_worker(
            queue.clone(),
            opts,
            flows::flow_handler(deps.clone()),
            Some(sidecars.reports.clone()),
            async move { c.cancelled().await },
            Duration::from_secs(cfg.worker.grace_secs),
        );
        runs.push(tokio::spawn(w.run));
    }
    // Buyers, merchants and marketplaces doing what they do: orders placed continuously; the
    // marketplaces settle their batches and moderation; now and then a merchant issues the
    // invoice of a documented order in the ERP, a buyer cancels a fresh CDON order, or returns
    // a shipped Cel.ro one.
    let sb = Arc::new(sb);
    let actors = {
        let (c, sb, pool, seeded) = (cancel.clone(), sb.clone(), pool.clone(), seeded.clone());
        let every = Duration::from_millis(args.order_every_ms.max(50));
        tokio::spawn(async move {
            let mut n: usize = 0;
            loop {
                tokio::select! { _ = tokio::time::sleep(every) => {}, _ = c.cancelled() => return }
                n += 1;
                let s = &seeded[n % seeded.len()];
                let sku = &s.skus[n % s.skus.len()];
                if let Err(e) = crate::demo::place_order(&sb, s, sku, 1) {
                    tracing::warn!(error = %e, "demo order not placed");
                }
                sb.cdon.settle_all();
                sb.celro.settle_all();
                if n.is_multiple_of(3)
                    && let Err(e) = crate::demo::act_as_merchants(&pool, &sb, &seeded, n).await
                {
                    tracing::warn!(error = %e, "demo merchant step failed");
                }
            }
        })
    };
    let status = {
        let (queue, pool, c) = (queue.clone(), pool.clone(), cancel.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! { _ = tokio::time::sleep(Duration::from_secs(5)) => {}, _ = c.cancelled() => return }
                let (Ok(s), Ok(f)) = (queue.stats().await, db::flows::flow_summary(&pool).await)
                else {
                    continue;
                };
                let ready: u64 = s.kinds.iter().map(|k| k.ready).sum();
                println!(
                    "listings {} ok/{} other | stock levels on channels {} | orders {} synced, {} cancelled (no stock or by buyer), {} pending, {} in doubt | PDFs {} | AWBs {} ({} shipped) | returns {} open/{} closed | jobs: ready {ready}, running {}, dead {}",
                    f.listings_ok,
                    f.listings_other,
                    f.stock_pushed,
                    f.orders_created,
                    f.orders_cancelled,
                    f.orders_pending,
                    f.orders_in_doubt,
                    f.invoices_attached,
                    f.awbs,
                    f.shipped,
                    f.returns_open,
                    f.returns_closed,
                    s.running,
                    s.dead,
                );
            }
        })
    };
    for r in runs {
        r.await??;
    }
    let _ = sched.await;
    let _ = status.await;
    let _ = actors.await;
    sidecars.stop().await;
    let f = db::flows::flow_summary(&pool).await?;
    println!(
        "demo stopped: {} orders synced, {} AWBs, {} PDFs attached, {} in doubt",
        f.orders_created, f.awbs, f.invoices_attached, f.orders_in_doubt
    );
    Ok(())
}

#[derive(Debug, Subcommand)]
enum ConnectionsCmd {
    /// Encrypt and store the credentials of a connection (replacing any it had), read as a JSON
    /// object from a file, or from stdin with `-`. The values are never printed or logged.
    SetCredentials {
        connection: ConnectionId,
        /// The JSON object, e.g. {"api_token": "..."}; `-` reads stdin.
        #[arg(long, value_name = "FILE.json")]
        from_file: PathBuf,
    },
    /// List every connection with whether it has credentials and which key encrypted them
    /// (never the values).
    CredentialsStatus,
    /// Make (or replace: the old one stops working) the connection's wake-up URL, for its
    /// marketplace's push callbacks, and print it. Only a hash is stored: the URL is shown this
    /// once.
    WakeupUrl {
        connection: ConnectionId,
        /// Where the workers' HTTP server is reachable from the marketplace (default:
        /// http://<worker.http_addr>).
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum CredentialsCmd {
    /// Print a fresh key as one `key_id:base64` line, to put first in MEGZO_CREDENTIAL_KEYS.
    NewKey,
    /// Re-encrypt every stored credential with the active key (the first of
    /// MEGZO_CREDENTIAL_KEYS), in batches. Idempotent; run it before removing an old key.
    Rotate {
        /// Rows re-encrypted per transaction.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
        batch: u32,
    },
}

async fn connections(cfg: Config, cmd: ConnectionsCmd) -> anyhow::Result<()> {
    use crate::vault::{Credentials, Vault, VaultError};
    use secrecy::zeroize::Zeroizing;
    use std::io::Read;
    match cmd {
        ConnectionsCmd::WakeupUrl {
            connection,
            base_url,
        } => {
            let base = base_url.unwrap_or_else(|| format!("http://{}", cfg.worker.http_addr));
            if !(base.starts_with("http://") || base.starts_with("https://")) {
                bail!("--base-url {base:?} must start with http:// or https://");
            }
            let pool = pg(&cfg).await?;
            let url = crate::wakeup::create_wakeup_url(&pool, connection, &base).await?;
            tracing::info!(%connection, "wake-up URL made (the key is not logged)");
            println!("{}", url.expose_secret());
            if let Some(c) = db::list_connections(&pool, None)
                .await?
                .into_iter()
                .find(|c| c.id == connection)
                && let Some(why) = crate::wakeup::no_callbacks(c.marketplace)
            {
                eprintln!(
                    "note: {} cannot call it back ({why}); the URL answers 409",
                    c.marketplace
                );
            }
            eprintln!(
                "this URL is shown once (only its hash is stored); any earlier URL of the connection no longer works"
            );
            Ok(())
        }
        ConnectionsCmd::SetCredentials {
            connection,
            from_file,
        } => {
            let vault = Vault::from_env()?;
            let mut text = Zeroizing::new(Vec::new());
            let source = if from_file.as_os_str() == "-" {
                std::io::stdin()
                    .read_to_end(&mut text)
                    .context("reading the credentials from stdin")?;
                "stdin".to_owned()
            } else {
                *text = std::fs::read(&from_file)
                    .with_context(|| format!("reading {}", from_file.display()))?;
                from_file.display().to_string()
            };
            let creds = Credentials::from_json(&text)
                .with_context(|| format!("reading the credentials from {source}"))?;
            drop(text);
            let pool = pg(&cfg).await?;
            let key = db::store_credentials(&pool, &vault, connection, &creds).await?;
            tracing::info!(%connection, key = %key, fields = creds.len(), "credentials stored");
            println!("credentials stored (encrypted with key {key})");
            Ok(())
        }
        ConnectionsCmd::CredentialsStatus => {
            let vault = match Vault::from_env() {
                Ok(v) => Some(v),
                Err(VaultError::NotConfigured) => None,
                Err(e) => {
                    eprintln!("note: {e}");
                    None
                }
            };
            let pool = pg(&cfg).await?;
            let status = db::credential_status(&pool).await?;
            let conns = db::list_connections(&pool, None).await?;
            let tenants = db::list_tenants(&pool).await?;
            let (mut with, mut stale) = (0, 0);
            for (id, key) in &status {
                let conn = conns.iter().find(|c| c.id == *id);
                let slug = conn
                    .and_then(|c| tenants.iter().find(|t| t.id == c.tenant_id))
                    .map_or("?", |t| t.slug.as_str());
                let pair = conn
                    .map(|c| format!("{} ⇄ {}", c.erp, c.marketplace))
                    .unwrap_or_default();
                let state = match (key, &vault) {
                    (None, _) => "no credentials".to_owned(),
                    (Some(k), None) => format!("encrypted with key {k}"),
                    (Some(k), Some(v)) if k == v.active_key_id() => {
                        format!("encrypted with key {k} (active)")
                    }
                    (Some(k), Some(v)) if v.has_key(k) => {
                        format!("encrypted with key {k} (not the active key: rotate)")
                    }
                    (Some(k), Some(_)) => {
                        format!("encrypted with key {k} (NOT in MEGZO_CREDENTIAL_KEYS)")
                    }
                };
                if let Some(k) = key {
                    with += 1;
                    if vault.as_ref().is_some_and(|v| v.active_key_id() != k) {
                        stale += 1;
                    }
                }
                println!("{id}  {slug:<20} {pair:<22} {state}");
            }
            print!(
                "{} connections: {with} with credentials, {} without",
                status.len(),
                status.len() - with
            );
            match &vault {
                Some(v) => println!("; {stale} not on the active key {}", v.active_key_id()),
                None => println!(" (MEGZO_CREDENTIAL_KEYS not set: key status unknown)"),
            }
            Ok(())
        }
    }
}

async fn credentials(cfg: Config, cmd: CredentialsCmd) -> anyhow::Result<()> {
    use crate::vault::Vault;
    match cmd {
        CredentialsCmd::NewKey => {
            println!("{}", Vault::generate_key());
            eprintln!(
                "put this line first in MEGZO_CREDENTIAL_KEYS (comma-separated, keep the old keys \
                 after it), deploy, then run `megzo credentials rotate`"
            );
            Ok(())
        }
        CredentialsCmd::Rotate { batch } => {
            let vault = Vault::from_env()?;
            let pool = pg(&cfg).await?;
            let (rotated, current) = db::rotate_credentials(&pool, &vault, batch).await?;
            println!(
                "{rotated} rotated, {current} already current (active key {})",
                vault.active_key_id()
            );
            Ok(())
        }
    }
}

#[derive(Debug, Subcommand)]
enum MappingCmd {
    /// Check a rule-set file (JSON or YAML). With `--connection`: against that connection's
    /// systems (unknown fields, types, required targets, lookups, rates in the set or the
    /// feed), exactly as `save` does; without: that it parses and compiles. Every error names
    /// its rule and field.
    Validate {
        file: PathBuf,
        #[arg(long)]
        connection: Option<ConnectionId>,
    },
    /// Validate a rule-set file against the connection and save it as its next version (not
    /// active yet).
    Save {
        connection: ConnectionId,
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        author: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Every saved version of a connection's rule set, newest first (* marks the active one).
    List {
        connection: ConnectionId,
        #[arg(long, default_value = "erp_to_marketplace")]
        direction: String,
    },
    /// Print one version (default: the active one) as JSON or YAML.
    Show {
        connection: ConnectionId,
        #[arg(long)]
        version: Option<i32>,
        #[arg(long, default_value = "erp_to_marketplace")]
        direction: String,
        #[arg(long, value_enum, default_value_t = RuleFormat::Json)]
        format: RuleFormat,
    },
    /// Make a saved version the active one; workers use it from their next job.
    Activate {
        connection: ConnectionId,
        version: i32,
        #[arg(long)]
        actor: String,
        #[arg(long, default_value = "")]
        comment: String,
        #[arg(long, default_value = "erp_to_marketplace")]
        direction: String,
    },
    /// Go back to the version that was active before the current one.
    Rollback {
        connection: ConnectionId,
        #[arg(long)]
        actor: String,
        #[arg(long, default_value = "")]
        comment: String,
        #[arg(long, default_value = "erp_to_marketplace")]
        direction: String,
    },
    /// Apply a draft rule-set file and the active version to sample items and show, per item,
    /// every field the draft would change. Samples: `--sample FILE` (a JSON or YAML array of
    /// objects), or the first `--limit` items of the connection's ERP catalog.
    Preview {
        connection: ConnectionId,
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        sample: Option<PathBuf>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Every save, activation and rollback, oldest first.
    History {
        connection: ConnectionId,
        #[arg(long, default_value = "erp_to_marketplace")]
        direction: String,
    },
    /// The built-in default rule sets of the connection's pair: printed (a starting point to
    /// edit), or with `--install` saved and activated in each direction that has no version.
    Defaults {
        connection: ConnectionId,
        #[arg(long)]
        install: bool,
        #[arg(long, default_value = "megzo")]
        actor: String,
        #[arg(long, value_enum, default_value_t = RuleFormat::Json)]
        format: RuleFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RuleFormat {
    Json,
    Yaml,
}

fn print_rules(v: &serde_json::Value, format: RuleFormat) -> anyhow::Result<()> {
    match format {
        RuleFormat::Json => println!("{}", serde_json::to_string_pretty(v)?),
        RuleFormat::Yaml => print!(
            "{}",
            crate::mapping::files::to_yaml(v).map_err(anyhow::Error::msg)?
        ),
    }
    Ok(())
}

/// Reads a rule-set file (JSON or YAML), parses and compiles it; the errors name the file,
/// rule and field.
fn read_rule_set(
    file: &std::path::Path,
) -> anyhow::Result<(serde_json::Value, canonical::mapping::RuleSet)> {
    use canonical::mapping::RuleSet;
    let json = crate::mapping::files::read_structured(file).map_err(anyhow::Error::msg)?;
    let set: RuleSet = serde_json::from_value(json.clone())
        .with_context(|| format!("{} is not a rule set", file.display()))?;
    if let Err(errors) = set.compile() {
        let shown: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
        bail!(
            "{} has {} error(s):\n{}",
            file.display(),
            errors.len(),
            shown.join("\n")
        );
    }
    Ok((json, set))
}

async fn find_connection(pool: &PgPool, id: ConnectionId) -> anyhow::Result<db::Connection> {
    db::list_connections(pool, None)
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .with_context(|| format!("unknown connection {id}"))
}

async fn mapping(cfg: Config, cmd: MappingCmd) -> anyhow::Result<()> {
    use crate::db::mappings::{self as m, Direction};
    use crate::mapping as wm;
    let dir = |s: &str| s.parse::<Direction>().map_err(anyhow::Error::from);
    if let MappingCmd::Validate {
        file,
        connection: None,
    } = &cmd
    {
        let (_, set) = read_rule_set(file)?;
        println!(
            "{}: valid ({} rules; not checked against a connection's systems: pass --connection)",
            file.display(),
            set.rules.len()
        );
        return Ok(());
    }
    let pool = pg(&cfg).await?;
    let rates = crate::rates::RatesCache::new(pool.clone(), cfg.mapping.clone());
    match cmd {
        MappingCmd::Validate {
            file,
            connection: Some(connection),
        } => {
            let conn = find_connection(&pool, connection).await?;
            let json = wm::files::read_structured(&file).map_err(anyhow::Error::msg)?;
            let feed = rates.feed().await?;
            let (d, set) = wm::validate_for(&conn, &json, &feed)
                .with_context(|| format!("{} for connection {connection}", file.display()))?;
            println!(
                "{}: valid for {} ⇄ {} {d} ({} rules)",
                file.display(),
                conn.erp,
                conn.marketplace,
                set.rules.len()
            );
            Ok(())
        }
        MappingCmd::Validate { .. } => Ok(()),
        MappingCmd::Save {
            connection,
            file,
            author,
            comment,
        } => {
            let conn = find_connection(&pool, connection).await?;
            let json = wm::files::read_structured(&file).map_err(anyhow::Error::msg)?;
            let feed = rates.feed().await?;
            let (direction, v) = wm::save_validated(&pool, &conn, &json, &feed, &author, &comment)
                .await
                .with_context(|| format!("{} was not saved", file.display()))?;
            println!(
                "saved {direction} version {v}; activate it with `megzo mapping activate {connection} {v} --direction {direction} --actor …`"
            );
            Ok(())
        }
        MappingCmd::List {
            connection,
            direction,
        } => {
            for v in m::list_mappings(&pool, connection, dir(&direction)?).await? {
                let mark = if v.active { "*" } else { " " };
                println!(
                    "{mark} v{:<4} {}  {:<20} {}",
                    v.version,
                    v.created_at.format("%Y-%m-%d %H:%M"),
                    v.author,
                    v.comment
                );
            }
            Ok(())
        }
        MappingCmd::Show {
            connection,
            version,
            direction,
            format,
        } => {
            let d = dir(&direction)?;
            let found = match version {
                Some(v) => m::get_mapping(&pool, connection, d, v).await?,
                None => m::active_mapping(&pool, connection, d).await?,
            };
            let Some(found) = found else {
                bail!(
                    "connection {connection} has no {d} mapping {}",
                    version.map_or("active".to_owned(), |v| format!("version {v}"))
                );
            };
            print_rules(&found.rules, format)
        }
        MappingCmd::Activate {
            connection,
            version,
            actor,
            comment,
            direction,
        } => {
            let d = dir(&direction)?;
            let before =
                m::activate_mapping(&pool, connection, d, version, &actor, &comment).await?;
            let was = before.map_or("none".to_owned(), |v| format!("v{v}"));
            println!("{d} mapping v{version} is active (was {was})");
            Ok(())
        }
        MappingCmd::Rollback {
            connection,
            actor,
            comment,
            direction,
        } => {
            let d = dir(&direction)?;
            let now = m::rollback_mapping(&pool, connection, d, &actor, &comment).await?;
            println!("{d} mapping rolled back: v{now} is active");
            Ok(())
        }
        MappingCmd::Preview {
            connection,
            file,
            sample,
            limit,
        } => {
            let (json, set) = read_rule_set(&file)?;
            let draft = set
                .compile()
                .map_err(|e| anyhow::anyhow!("{} does not compile: {e:?}", file.display()))?;
            let d = dir(json["direction"].as_str().unwrap_or_default())?;
            let samples = match sample {
                Some(path) => {
                    let v = wm::files::read_structured(&path).map_err(anyhow::Error::msg)?;
                    let mut r = wm::records_from_json(&v).map_err(anyhow::Error::msg)?;
                    r.truncate(limit);
                    r
                }
                None => catalog_sample(&pool, connection, limit).await?,
            };
            let cache = wm::MappingCache::new(pool.clone());
            let active = cache.active(connection, d).await?;
            let feed = rates.feed().await?;
            let ctx = canonical::mapping::Context::on(Utc::now().date_naive()).with_feed(&feed);
            let p = wm::preview(
                &draft,
                active.as_ref().map(|a| a.rules.as_ref()),
                &samples,
                &ctx,
            );
            let against = active.map_or("no active version".to_owned(), |a| {
                format!("active v{}", a.version)
            });
            println!(
                "{} items, {} changed fields, {} items the draft cannot map (against {against})",
                p.items,
                p.diffs.len(),
                p.draft_errors.len()
            );
            for f in &p.diffs {
                let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".to_owned());
                println!(
                    "{:<20} {:<24} {} → {}",
                    f.item,
                    f.field,
                    show(&f.active),
                    show(&f.draft)
                );
            }
            for (item, e) in &p.draft_errors {
                println!("{item:<20} error: {e}");
            }
            Ok(())
        }
        MappingCmd::History {
            connection,
            direction,
        } => {
            for a in m::mapping_audit(&pool, connection, dir(&direction)?).await? {
                let prev = a
                    .previous_version
                    .map(|p| format!(" (was v{p})"))
                    .unwrap_or_default();
                println!(
                    "{}  {:<8} v{}{prev}  by {}  {}",
                    a.at.format("%Y-%m-%d %H:%M:%S"),
                    a.action,
                    a.version,
                    a.actor,
                    a.comment
                );
            }
            Ok(())
        }
        MappingCmd::Defaults {
            connection,
            install,
            actor,
            format,
        } => {
            let conn = find_connection(&pool, connection).await?;
            if install {
                let done = wm::install_defaults(&pool, &conn, &actor).await?;
                if done.is_empty() {
                    println!(
                        "nothing installed: {} ⇄ {} has no default, or every direction already has a version",
                        conn.erp, conn.marketplace
                    );
                }
                for (d, v) in done {
                    println!("{d}: default saved and activated as v{v}");
                }
                return Ok(());
            }
            for d in [Direction::ErpToMarketplace, Direction::MarketplaceToErp] {
                match wm::defaults::default_rule_set(&conn, d).map_err(anyhow::Error::msg)? {
                    Some(set) => print_rules(&serde_json::to_value(&set)?, format)?,
                    None => eprintln!("{d}: no default for {} ⇄ {}", conn.erp, conn.marketplace),
                }
            }
            Ok(())
        }
    }
}

/// The first `limit` catalog items of the connection's ERP, as mapping records.
async fn catalog_sample(
    pool: &PgPool,
    connection: ConnectionId,
    limit: usize,
) -> anyhow::Result<Vec<canonical::mapping::Record>> {
    let conn = find_connection(pool, connection).await?;
    let vault = crate::vault::Vault::from_env().ok();
    crate::mapping::catalog_sample(pool, vault.as_ref(), &conn, limit).await
}

#[derive(Debug, Subcommand)]
enum RatesCmd {
    /// Store the rates of a publication: the ECB's eurofxref XML, the BNR's nbrfxrates XML,
    /// or a CSV with the header `date,base,quote,rate`. A rate of the same day and pair
    /// replaces the stored one.
    Import { file: PathBuf },
    /// Store one rate by hand: `1 BASE = RATE QUOTE` on DATE (YYYY-MM-DD).
    Set {
        date: chrono::NaiveDate,
        base: canonical::Currency,
        quote: canonical::Currency,
        rate: rust_decimal::Decimal,
    },
    /// The stored rates of the last `--days` days.
    List {
        #[arg(long, default_value_t = 7)]
        days: u32,
    },
    /// Convert an amount as a mapping rule would today (or on `--date`), showing the rate used.
    Convert {
        amount: rust_decimal::Decimal,
        from: canonical::Currency,
        to: canonical::Currency,
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
    },
}

async fn rates(cfg: Config, cmd: RatesCmd) -> anyhow::Result<()> {
    use crate::db::rates::{FxRate, rates_since, upsert_rates};
    let pool = pg(&cfg).await?;
    match cmd {
        RatesCmd::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let parsed = crate::rates::parse_rates(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let n = upsert_rates(&pool, &parsed.rates).await?;
            let days: std::collections::BTreeSet<_> = parsed.rates.iter().map(|r| r.date).collect();
            println!(
                "{}: {n} {} rates stored for {} day(s){}",
                file.display(),
                parsed.format,
                days.len(),
                if parsed.skipped.is_empty() {
                    String::new()
                } else {
                    format!(" (skipped, not handled: {})", parsed.skipped.join(", "))
                }
            );
            Ok(())
        }
        RatesCmd::Set {
            date,
            base,
            quote,
            rate,
        } => {
            if base == quote {
                bail!("{base}→{quote} is not a pair");
            }
            upsert_rates(
                &pool,
                &[FxRate {
                    date,
                    base: base.to_string(),
                    quote: quote.to_string(),
                    rate,
                    source: "manual".into(),
                }],
            )
            .await?;
            println!("{date}: 1 {base} = {rate} {quote}");
            Ok(())
        }
        RatesCmd::List { days } => {
            let since = Utc::now().date_naive() - chrono::Days::new(u64::from(days));
            for r in rates_since(&pool, since).await? {
                println!(
                    "{}  1 {} = {} {}  ({}, imported {})",
                    r.rate.date,
                    r.rate.base,
                    r.rate.rate,
                    r.rate.quote,
                    r.rate.source,
                    r.imported_at.format("%F %T")
                );
            }
            Ok(())
        }
        RatesCmd::Convert {
            amount,
            from,
            to,
            date,
        } => {
            let cache = crate::rates::RatesCache::new(pool.clone(), cfg.mapping.clone());
            let feed = cache.feed().await?;
            let day = date.unwrap_or_else(|| Utc::now().date_naive());
            let fx = feed.find(from, to, day).map_err(|miss| match miss {
                canonical::mapping::FeedMiss::None => {
                    anyhow::anyhow!("no {from}→{to} rate on or before {day}: import rates first")
                }
                canonical::mapping::FeedMiss::Stale {
                    rate_date,
                    max_age_days,
                } => anyhow::anyhow!(
                    "the newest {from}→{to} rate is from {rate_date}, more than {max_age_days} days before {day}"
                ),
            })?;
            println!(
                "{amount} {from} = {} {to}  (rate {} of {}{}{})",
                (amount * fx.rate).normalize(),
                fx.rate.normalize(),
                fx.rate_date,
                fx.via
                    .map(|v| format!(", crossed through {v}"))
                    .unwrap_or_default(),
                if fx.inverted { ", inverted" } else { "" }
            );
            Ok(())
        }
    }
}
