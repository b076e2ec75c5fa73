//! What a `megzo worker` process runs beside the apalis worker:
//!
//! - the **run recorder**: every attempt's outcome, batched into `job_runs` (one INSERT per
//!   batch of up to 1,000), so Postgres has the history even when Redis loses its data; the same
//!   batch updates each flow's latest success and failure (`flow_status`, for freshness);
//! - the **dead-job syncer**: copies dead jobs from the Redis outbox into `dead_jobs` before
//!   removing them from the outbox (at-least-once, idempotent on the job id), so replay works
//!   after Redis was flushed;
//! - **housekeeping**: copies tenants' concurrency caps to Redis, drops dead jobs past their Redis retention, forgets silent workers,
//!   publishes queue depth and age as gauges, and every 15 s the flows' freshness;
//! - the **HTTP server**: `/healthz` (the process is up), `/readyz` (Redis and Postgres answer
//!   and the backend is fetching), `/metrics` (Prometheus), and with Postgres the wake-up URLs
//!   `/wakeup/{connection}/{key}` ([`crate::wakeup`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use chrono::{DateTime, TimeZone, Utc};
use queue_schema::{AttemptError, JobPayload};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::db::{self, DeadJob, RunOutcome, RunRecord};
use crate::queue::backend::AttemptReport;
use crate::queue::{AckStatus, Queue};
use crate::telemetry;

fn ts(ms: u64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms as i64)
        .single()
        .unwrap_or_else(Utc::now)
}

/// Maps an attempt report to a `job_runs` row; `None` for reports that record nothing (a stale
/// ack: the rescued attempt was recorded as lost).
pub fn run_record(r: &AttemptReport) -> Option<RunRecord> {
    let outcome = if r.lost {
        RunOutcome::Lost
    } else {
        match r.status {
            AckStatus::Succeeded => RunOutcome::Succeeded,
            AckStatus::Retrying => RunOutcome::Retried,
            AckStatus::Dead => RunOutcome::Dead,
            AckStatus::Snoozed => RunOutcome::Snoozed,
            AckStatus::Released => RunOutcome::Released,
            AckStatus::Stale => return None,
        }
    };
    let (tenant, connection, trigger, payload) = match &r.job {
        Some(j) => (
            j.payload.tenant(),
            j.payload.connection(),
            j.payload.trigger().as_str().to_owned(),
            serde_json::to_value(&j.payload).unwrap_or_default(),
        ),
        None => (
            r.tenant
                .parse()
                .unwrap_or_else(|_| uuid::Uuid::nil().into()),
            uuid::Uuid::nil().into(),
            "unknown".to_owned(),
            serde_json::Value::Null,
        ),
    };
    Some(RunRecord {
        job_id: r.id,
        attempt: r.attempt as i32,
        kind: r.kind,
        tenant_id: tenant,
        connection_id: connection,
        trigger,
        payload,
        outcome,
        error: r.error.clone(),
        started_at: ts(r.started_ms),
        finished_at: ts(r.finished_ms.max(r.started_ms)),
        worker: r.worker.clone(),
        mapping_version: r.notes.mapping_version,
    })
}

/// Drains attempt reports into `job_runs` in batches until the channel closes.
///
/// A batch that fails because Postgres is unreachable is kept and retried with backoff for as
/// long as it takes (a restart or failover loses nothing). A batch that Postgres refuses for its
/// content is split and written row by row, so one bad row cannot take the others with it; a row
/// refused on its own is logged with the reason (the job's record in Redis keeps its errors).
pub async fn run_recorder(pool: PgPool, mut rx: mpsc::UnboundedReceiver<AttemptReport>) {
    const MAX: usize = 1_000;
    while let Some(first) = rx.recv().await {
        let mut batch: Vec<RunRecord> = run_record(&first).into_iter().collect();
        while batch.len() < MAX {
            match rx.try_recv() {
                Ok(r) => batch.extend(run_record(&r)),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            insert_runs_patiently(&pool, &batch).await;
        }
    }
}

async fn insert_runs_patiently(pool: &PgPool, batch: &[RunRecord]) {
    let mut wait = Duration::from_millis(200);
    loop {
        // Both writes are idempotent, so a retry after either failed repeats both safely. The
        // flows' status goes first: once a run is in `job_runs`, the freshness it implies is
        // already readable (a reader that saw the run never sees the status behind it).
        let written = match db::record_flow_status(pool, batch).await {
            Ok(_) => db::insert_runs(pool, batch).await,
            Err(e) => Err(e),
        };
        match written {
            Ok(_) => return,
            Err(e) if refused_for_content(&e) => {
                tracing::warn!(error = %e, rows = batch.len(), "a run batch was refused; writing it row by row");
                for row in batch {
                    if let Err(e) = db::insert_runs(pool, std::slice::from_ref(row)).await {
                        tracing::error!(job_id = %row.job_id, attempt = row.attempt, error = %e,
                            "run record refused by Postgres; it stays in the job's Redis record only");
                    }
                    if let Err(e) = db::record_flow_status(pool, std::slice::from_ref(row)).await {
                        tracing::warn!(job_id = %row.job_id, error = %e,
                            "flow status not updated for this run");
                    }
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, rows = batch.len(), "recording runs failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Whether Postgres refused the statement for what it contained (a constraint, an invalid
/// value), as opposed to being unreachable: retrying the same rows cannot help.
fn refused_for_content(e: &db::DbError) -> bool {
    matches!(
        e,
        db::DbError::Sqlx(sqlx::Error::Database(_))
            | db::DbError::Json { .. }
            | db::DbError::Invalid { .. }
    )
}

/// Copies dead jobs from the Redis outbox to Postgres. Returns how many were copied.
pub async fn sync_dead(queue: &Queue, pool: &PgPool) -> anyhow::Result<usize> {
    let ids = queue.outbox_peek(200).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let mut rows = Vec::with_capacity(ids.len());
    for id in &ids {
        // A job gone from Redis (trimmed, or flushed) can no longer be copied; its runs are in
        // Postgres already.
        let Some(rec) = queue.job(*id).await? else {
            continue;
        };
        let payload: serde_json::Value = serde_json::from_str(&rec.payload)
            .ok()
            .filter(|_| !rec.payload.contains("\\u0000"))
            .unwrap_or_else(|| {
                serde_json::Value::String(queue_schema::job::storable(rec.payload.clone()))
            });
        let parsed = JobPayload::from_json(&rec.payload).ok();
        let mut errors: Vec<AttemptError> = rec.errors.clone();
        errors.sort_by_key(|e| e.attempt);
        let died_ms = errors.last().map(|e| e.at_ms).unwrap_or(queue.now_ms());
        rows.push(DeadJob {
            job_id: *id,
            kind: rec.kind.parse().unwrap_or(queue_schema::JobKind::OrderPull),
            tenant_id: parsed
                .as_ref()
                .map(|p| p.tenant())
                .or_else(|| rec.tenant.parse().ok())
                .unwrap_or_else(|| uuid::Uuid::nil().into()),
            connection_id: parsed
                .as_ref()
                .map(|p| p.connection())
                .unwrap_or_else(|| uuid::Uuid::nil().into()),
            payload,
            attempts: rec.attempts as i32,
            max_attempts: rec.max_attempts as i32,
            errors,
            enqueued_at: ts(rec.enqueued_at_ms),
            died_at: ts(died_ms),
            replayed_at: None,
            replayed_as: None,
        });
    }
    let copied = match db::insert_dead(pool, &rows).await {
        Ok(_) => rows.len(),
        Err(e) if refused_for_content(&e) => {
            // One bad row must not block the outbox: write them one by one, and leave a row
            // Postgres refuses in Redis's dead set (where support still sees it) with the reason.
            let mut copied = 0;
            for row in &rows {
                match db::insert_dead(pool, std::slice::from_ref(row)).await {
                    Ok(_) => copied += 1,
                    Err(e) => tracing::error!(job_id = %row.job_id, error = %e,
                        "dead job refused by Postgres; it stays in the Redis dead set only"),
                }
            }
            copied
        }
        Err(e) => return Err(e.into()),
    };
    queue.outbox_remove(&ids).await?;
    Ok(copied)
}

/// Copies tenants' own concurrency caps from Postgres (the authority) to Redis, where the fetch
/// script reads them.
pub async fn sync_caps(queue: &Queue, pool: &PgPool) -> anyhow::Result<()> {
    for (tenant, cap) in db::tenant_caps(pool).await? {
        queue
            .set_tenant_cap(tenant, Some(cap.max(0) as u32))
            .await?;
    }
    Ok(())
}

/// Housekeeping loop; see the module doc.
pub async fn housekeeping(queue: Queue, pool: PgPool, cancel: CancellationToken) {
    let mut tick: u64 = 0;
    loop {
        match sync_dead(&queue, &pool).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "dead jobs copied to Postgres"),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "dead-job sync failed"),
        }
        if tick.is_multiple_of(5) {
            match queue.stats().await {
                Ok(s) => telemetry::metrics::queue_stats(&s),
                Err(e) => tracing::warn!(error = %e, "queue stats failed"),
            }
        }
        if tick.is_multiple_of(15)
            && let Err(e) = crate::freshness::publish(&pool).await
        {
            tracing::warn!(error = %e, "freshness metrics failed");
        }
        if tick.is_multiple_of(60) {
            if let Err(e) = sync_caps(&queue, &pool).await {
                tracing::warn!(error = format!("{e:#}"), "tenant cap sync failed");
            }
            let _ = queue.trim_dead(1_000).await;
            let _ = queue.prune_workers(10 * queue.config().lease_ms).await;
        }
        tick += 1;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

/// Shared state of the probe endpoints.
#[derive(Debug, Clone)]
pub struct Probes {
    pub queue: Queue,
    pub pool: Option<PgPool>,
    /// Set while the process is serving (cleared when shutdown starts).
    pub serving: Arc<AtomicBool>,
}

/// The router of `/healthz`, `/readyz`, `/metrics`, and with a pool the wake-up URLs.
pub fn probe_router(p: Probes) -> Router {
    let prom = telemetry::prometheus();
    let wakeups = p
        .pool
        .clone()
        .map(|pool| crate::wakeup::router(p.queue.clone(), pool));
    let probes = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(move || {
                let prom = prom.clone();
                async move { prom.render() }
            }),
        )
        .with_state(p);
    match wakeups {
        Some(w) => probes.merge(w),
        None => probes,
    }
}

async fn readyz(State(p): State<Probes>) -> (StatusCode, String) {
    if !p.serving.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down".into());
    }
    let redis: Result<String, _> = redis::cmd("PING")
        .query_async(&mut p.queue.connection())
        .await;
    if let Err(e) = redis {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("redis: {e}"));
    }
    if let Some(pool) = &p.pool
        && let Err(e) = sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(pool)
            .await
    {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("postgres: {e}"));
    }
    (StatusCode::OK, "ready".into())
}

/// The services a process runs beside its workers: the probe server, the run recorder and
/// housekeeping. Workers send their attempt reports to [`Sidecars::reports`].
#[derive(Debug)]
pub struct Sidecars {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub addr: std::net::SocketAddr,
    pub reports: mpsc::UnboundedSender<AttemptReport>,
    /// Cleared when shutdown starts, so `/readyz` says so.
    pub serving: Arc<AtomicBool>,
    cancel: CancellationToken,
    recorder: tokio::task::JoinHandle<()>,
    housekeeping: tokio::task::JoinHandle<()>,
}

impl Sidecars {
    pub async fn start(queue: &Queue, pool: &PgPool, http_addr: &str) -> anyhow::Result<Self> {
        let cancel = CancellationToken::new();
        let serving = Arc::new(AtomicBool::new(true));
        let probes = Probes {
            queue: queue.clone(),
            pool: Some(pool.clone()),
            serving: serving.clone(),
        };
        let addr = serve_probes(http_addr, probes, cancel.clone()).await?;
        let (reports, rx) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(run_recorder(pool.clone(), rx));
        let housekeeping = tokio::spawn(housekeeping(queue.clone(), pool.clone(), cancel.clone()));
        Ok(Self {
            addr,
            reports,
            serving,
            cancel,
            recorder,
            housekeeping,
        })
    }

    /// Stops housekeeping and the probe server, and lets the recorder write what it still has
    /// (it ends when the last report sender, held by the workers, is dropped; at most 5 s).
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.housekeeping.await;
        drop(self.reports);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.recorder).await;
    }
}

/// Serves the probes on `addr` until `cancel`.
pub async fn serve_probes(
    addr: &str,
    probes: Probes,
    cancel: CancellationToken,
) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let app = probe_router(probes);
    tokio::spawn(async move {
        let res = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "probe server failed");
        }
    });
    Ok(local)
}
