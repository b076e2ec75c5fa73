//! Job history: one `job_runs` row per attempt event (an attempt that succeeded, was retried, was
//! found lost, ...). Written in batches by the workers, read by the support CLI and the
//! freshness metrics. Append-only and idempotent on `(job_id, attempt, outcome)`.

use std::fmt;
use std::str::FromStr;

use canonical::{ConnectionId, TenantId};
use chrono::{DateTime, Utc};
use queue_schema::{AttemptError, JobId, JobKind};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::{DbError, effective_limit};

/// How an attempt ended. The strings ([`RunOutcome::as_str`]) are stored and must not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// The handler finished; the job is done.
    Succeeded,
    /// The attempt failed and the job was scheduled again.
    Retried,
    /// The handler asked to run again later without counting a failure.
    Snoozed,
    /// The attempt failed and the job went to the dead set.
    Dead,
    /// The worker stopped renewing its lease; the reaper recorded the attempt.
    Lost,
    /// The worker gave the job back unstarted (shutdown, tenant cap).
    Released,
}

impl RunOutcome {
    /// Every outcome, in declaration order.
    pub const ALL: [RunOutcome; 6] = [
        RunOutcome::Succeeded,
        RunOutcome::Retried,
        RunOutcome::Snoozed,
        RunOutcome::Dead,
        RunOutcome::Lost,
        RunOutcome::Released,
    ];

    /// The stable string stored in `job_runs.outcome`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::Retried => "retried",
            RunOutcome::Snoozed => "snoozed",
            RunOutcome::Dead => "dead",
            RunOutcome::Lost => "lost",
            RunOutcome::Released => "released",
        }
    }
}

impl fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunOutcome {
    type Err = DbError;
    /// Parses the stored string; the error lists the valid ones.
    fn from_str(s: &str) -> Result<Self, DbError> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| DbError::Invalid {
                what: "run outcome",
                value: s.to_owned(),
                reason: "expected one of: succeeded, retried, snoozed, dead, lost, released".into(),
            })
    }
}

/// One attempt event to record. `(job_id, attempt, outcome)` identifies it: recording it twice
/// keeps the first.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub job_id: JobId,
    /// 1-based attempt number.
    pub attempt: i32,
    pub kind: JobKind,
    pub tenant_id: TenantId,
    pub connection_id: ConnectionId,
    /// What caused the job (heartbeat, webhook, manual, replay, ...), as the payload names it.
    pub trigger: String,
    pub payload: serde_json::Value,
    pub outcome: RunOutcome,
    /// Why the attempt failed, when it did.
    pub error: Option<AttemptError>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub worker: String,
    /// The field-mapping version the attempt applied, when it applied one.
    pub mapping_version: Option<i32>,
}

/// Which runs [`list_runs`] returns. Every `None` filter matches everything; `since` is
/// inclusive and `until` exclusive, both on `started_at`. `limit` 0 (or negative) means 100, and
/// it is capped at 10,000.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    pub tenant: Option<TenantId>,
    pub kind: Option<JobKind>,
    pub outcome: Option<RunOutcome>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub job: Option<JobId>,
    pub limit: i64,
}

/// A stored run, every column typed.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: i64,
    pub job_id: JobId,
    pub attempt: i32,
    pub kind: JobKind,
    pub tenant_id: TenantId,
    pub connection_id: ConnectionId,
    pub trigger: String,
    pub payload: serde_json::Value,
    pub outcome: RunOutcome,
    pub error: Option<AttemptError>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// `finished_at - started_at` in milliseconds, never negative.
    pub duration_ms: i64,
    pub worker: String,
    /// The field-mapping version the attempt applied, when it applied one.
    pub mapping_version: Option<i32>,
}

struct RunDb {
    id: i64,
    job_id: Uuid,
    attempt: i32,
    kind: String,
    tenant_id: Uuid,
    connection_id: Uuid,
    trigger: String,
    payload: serde_json::Value,
    outcome: String,
    error: Option<serde_json::Value>,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    duration_ms: i64,
    worker: String,
    mapping_version: Option<i32>,
}

impl TryFrom<RunDb> for RunRow {
    type Error = DbError;
    fn try_from(r: RunDb) -> Result<Self, DbError> {
        let corrupt = |column, reason: String| DbError::Corrupt {
            table: "job_runs",
            column,
            row: r.id.to_string(),
            reason,
        };
        let kind = r
            .kind
            .parse()
            .map_err(|e| corrupt("kind", format!("{e}")))?;
        let outcome = r
            .outcome
            .parse()
            .map_err(|e| corrupt("outcome", format!("{e}")))?;
        let error = match &r.error {
            Some(v) => Some(
                serde_json::from_value(v.clone()).map_err(|e| corrupt("error", e.to_string()))?,
            ),
            None => None,
        };
        Ok(RunRow {
            id: r.id,
            job_id: JobId(r.job_id),
            attempt: r.attempt,
            kind,
            tenant_id: TenantId(r.tenant_id),
            connection_id: ConnectionId(r.connection_id),
            trigger: r.trigger,
            payload: r.payload,
            outcome,
            error,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_ms: r.duration_ms,
            worker: r.worker,
            mapping_version: r.mapping_version,
        })
    }
}

/// Records a batch of attempt events in ONE statement (arrays unnested server side, so the batch
/// size is not limited by the bind-parameter count; 1,000 rows is a normal batch). Events already
/// recorded are skipped. Returns how many rows were actually inserted.
pub async fn insert_runs(pool: &PgPool, runs: &[RunRecord]) -> Result<u64, DbError> {
    if runs.is_empty() {
        return Ok(0);
    }
    let n = runs.len();
    let mut job_ids = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut tenants = Vec::with_capacity(n);
    let mut connections = Vec::with_capacity(n);
    let mut triggers = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut outcomes = Vec::with_capacity(n);
    // JSON `null` stands for "no error" and becomes SQL NULL in the statement (NULLIF), which
    // keeps the array parameter non-nullable and type-checked.
    let mut errors = Vec::with_capacity(n);
    let mut started = Vec::with_capacity(n);
    let mut finished = Vec::with_capacity(n);
    let mut durations = Vec::with_capacity(n);
    let mut workers = Vec::with_capacity(n);
    // 0 stands for "none" (versions start at 1) and becomes NULL in the statement.
    let mut mapping_versions = Vec::with_capacity(n);
    for r in runs {
        job_ids.push(r.job_id.0);
        attempts.push(r.attempt);
        kinds.push(r.kind.as_str().to_owned());
        tenants.push(r.tenant_id.0);
        connections.push(r.connection_id.0);
        triggers.push(r.trigger.clone());
        payloads.push(super::storable_json(r.payload.clone()));
        outcomes.push(r.outcome.as_str().to_owned());
        errors.push(match &r.error {
            Some(e) => {
                super::storable_json(serde_json::to_value(e).map_err(|source| DbError::Json {
                    what: "attempt error",
                    source,
                })?)
            }
            None => serde_json::Value::Null,
        });
        started.push(r.started_at);
        finished.push(r.finished_at);
        durations.push((r.finished_at - r.started_at).num_milliseconds().max(0));
        workers.push(r.worker.clone());
        mapping_versions.push(r.mapping_version.unwrap_or(0));
    }
    let done = sqlx::query!(
        "INSERT INTO job_runs (job_id, attempt, kind, tenant_id, connection_id, trigger, payload,
                               outcome, error, started_at, finished_at, duration_ms, worker,
                               mapping_version)
         SELECT job_id, attempt, kind, tenant_id, connection_id, trigger, payload,
                outcome, NULLIF(error, 'null'::jsonb), started_at, finished_at, duration_ms, worker,
                NULLIF(mapping_version, 0)
         FROM UNNEST($1::uuid[], $2::int4[], $3::text[], $4::uuid[], $5::uuid[], $6::text[],
                     $7::jsonb[], $8::text[], $9::jsonb[], $10::timestamptz[], $11::timestamptz[],
                     $12::int8[], $13::text[], $14::int4[])
              AS r(job_id, attempt, kind, tenant_id, connection_id, trigger, payload,
                   outcome, error, started_at, finished_at, duration_ms, worker, mapping_version)
         ON CONFLICT (job_id, attempt, outcome) DO NOTHING",
        &job_ids,
        &attempts,
        &kinds,
        &tenants,
        &connections,
        &triggers,
        &payloads,
        &outcomes,
        &errors,
        &started,
        &finished,
        &durations,
        &workers,
        &mapping_versions,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// The runs matching `f`, newest first (by `started_at`, then insertion order).
pub async fn list_runs(pool: &PgPool, f: &RunFilter) -> Result<Vec<RunRow>, DbError> {
    let rows = sqlx::query_as!(
        RunDb,
        "SELECT id, job_id, attempt, kind, tenant_id, connection_id, trigger, payload, outcome,
                error, started_at, finished_at, duration_ms, worker, mapping_version
         FROM job_runs
         WHERE ($1::uuid IS NULL OR tenant_id = $1)
           AND ($2::text IS NULL OR kind = $2)
           AND ($3::text IS NULL OR outcome = $3)
           AND ($4::timestamptz IS NULL OR started_at >= $4)
           AND ($5::timestamptz IS NULL OR started_at < $5)
           AND ($6::uuid IS NULL OR job_id = $6)
         ORDER BY started_at DESC, id DESC
         LIMIT $7",
        f.tenant.map(|t| t.0),
        f.kind.map(JobKind::as_str),
        f.outcome.map(RunOutcome::as_str),
        f.since,
        f.until,
        f.job.map(|j| j.0),
        effective_limit(f.limit),
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(RunRow::try_from).collect()
}

/// Attempts per kind and outcome since `since`, counted in Postgres (the fleet view's
/// throughput; no rows are fetched).
pub async fn outcome_counts_since(
    pool: &PgPool,
    since: DateTime<Utc>,
) -> Result<Vec<(String, String, i64)>, DbError> {
    let rows = sqlx::query!(
        r#"SELECT kind, outcome, count(*) AS "n!" FROM job_runs
           WHERE started_at >= $1 GROUP BY kind, outcome"#,
        since,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.kind, r.outcome, r.n)).collect())
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use queue_schema::ErrorClass;
    use serde_json::json;

    use super::*;

    fn base() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap()
    }

    /// Run `i` of a batch, one second apart; tenant, kind and outcome cycle with different
    /// periods so every combination occurs.
    fn record(i: usize, tenants: &[TenantId; 2], conn: ConnectionId) -> RunRecord {
        let outcome = RunOutcome::ALL[(i / 6) % RunOutcome::ALL.len()];
        let started_at = base() + Duration::seconds(i as i64);
        RunRecord {
            job_id: JobId::new(),
            attempt: 1 + (i % 3) as i32,
            kind: JobKind::ALL[i % JobKind::ALL.len()],
            tenant_id: tenants[(i / 7) % 2],
            connection_id: conn,
            trigger: "heartbeat".into(),
            payload: json!({"v": 1, "i": i}),
            outcome,
            error: (outcome == RunOutcome::Retried).then(|| AttemptError {
                attempt: 1,
                at_ms: 1_740_830_400_000,
                worker: "w-1".into(),
                class: ErrorClass::Retryable,
                chain: vec!["smartbill: 503".into(), "connection reset".into()],
                retry_after_ms: Some(2_000),
            }),
            started_at,
            finished_at: started_at + Duration::milliseconds(250),
            worker: format!("w-{}", i % 4),
            mapping_version: i.is_multiple_of(5).then_some(1 + i as i32 % 3),
        }
    }

    #[test]
    fn outcome_strings_round_trip() {
        for o in RunOutcome::ALL {
            assert_eq!(o.as_str().parse::<RunOutcome>().unwrap(), o);
            assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{o}\""));
        }
        let err = "done".parse::<RunOutcome>().unwrap_err().to_string();
        assert!(
            err.contains("\"done\"") && err.contains("succeeded"),
            "{err}"
        );
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_thousand_runs_in_one_call_then_filtered_and_idempotent(pool: PgPool) {
        let tenants = [TenantId::new(), TenantId::new()];
        let conn = ConnectionId::new();
        let runs: Vec<_> = (0..1000).map(|i| record(i, &tenants, conn)).collect();

        assert_eq!(insert_runs(&pool, &[]).await.unwrap(), 0);
        assert_eq!(insert_runs(&pool, &runs).await.unwrap(), 1000);

        // Default listing: 100 rows, newest first.
        let latest = list_runs(&pool, &RunFilter::default()).await.unwrap();
        assert_eq!(latest.len(), 100);
        assert_eq!(latest[0].job_id, runs[999].job_id);
        assert!(latest.windows(2).all(|w| w[0].started_at > w[1].started_at));
        // The mapping version survives the round trip, and "none" stays NULL.
        for row in &latest {
            let sent = runs.iter().find(|r| r.job_id == row.job_id).unwrap();
            assert_eq!(row.mapping_version, sent.mapping_version, "{}", row.job_id);
        }
        assert!(latest.iter().any(|r| r.mapping_version.is_none()));
        assert!(latest.iter().any(|r| r.mapping_version == Some(2)));

        let all = |f: RunFilter| {
            let pool = pool.clone();
            async move {
                list_runs(&pool, &RunFilter { limit: 5000, ..f })
                    .await
                    .unwrap()
            }
        };
        let t0 = all(RunFilter {
            tenant: Some(tenants[0]),
            ..Default::default()
        })
        .await;
        assert_eq!(
            t0.len(),
            runs.iter().filter(|r| r.tenant_id == tenants[0]).count()
        );
        assert!(t0.len() > 400 && t0.len() < 600);
        assert!(t0.iter().all(|r| r.tenant_id == tenants[0]));

        let stock = all(RunFilter {
            kind: Some(JobKind::StockPush),
            ..Default::default()
        })
        .await;
        let want = runs.iter().filter(|r| r.kind == JobKind::StockPush).count();
        assert_eq!(stock.len(), want);
        assert!(stock.iter().all(|r| r.kind == JobKind::StockPush));

        let retried = all(RunFilter {
            outcome: Some(RunOutcome::Retried),
            ..Default::default()
        })
        .await;
        assert_eq!(
            retried.len(),
            runs.iter()
                .filter(|r| r.outcome == RunOutcome::Retried)
                .count()
        );
        assert!(retried.iter().all(|r| r.error.is_some()));

        let combined = all(RunFilter {
            tenant: Some(tenants[1]),
            kind: Some(JobKind::OrderPull),
            outcome: Some(RunOutcome::Dead),
            ..Default::default()
        })
        .await;
        let want = runs
            .iter()
            .filter(|r| {
                r.tenant_id == tenants[1]
                    && r.kind == JobKind::OrderPull
                    && r.outcome == RunOutcome::Dead
            })
            .count();
        assert!(want > 0);
        assert_eq!(combined.len(), want);

        // Time window: since inclusive, until exclusive.
        let window = all(RunFilter {
            since: Some(base() + Duration::seconds(100)),
            until: Some(base() + Duration::seconds(200)),
            ..Default::default()
        })
        .await;
        assert_eq!(window.len(), 100);
        assert_eq!(window.first().unwrap().job_id, runs[199].job_id);
        assert_eq!(window.last().unwrap().job_id, runs[100].job_id);

        // One job, every column round-trips.
        let one = all(RunFilter {
            job: Some(runs[6].job_id),
            ..Default::default()
        })
        .await;
        assert_eq!(one.len(), 1);
        let (got, want) = (&one[0], &runs[6]);
        assert_eq!(got.job_id, want.job_id);
        assert_eq!(got.attempt, want.attempt);
        assert_eq!(got.kind, want.kind);
        assert_eq!(got.tenant_id, want.tenant_id);
        assert_eq!(got.connection_id, want.connection_id);
        assert_eq!(got.trigger, want.trigger);
        assert_eq!(got.payload, want.payload);
        assert_eq!(got.outcome, RunOutcome::Retried);
        assert_eq!(got.error, want.error);
        assert_eq!(got.started_at, want.started_at);
        assert_eq!(got.finished_at, want.finished_at);
        assert_eq!(got.duration_ms, 250);
        assert_eq!(got.worker, want.worker);

        // Re-recording the same events adds nothing, also with duplicates inside one batch.
        assert_eq!(insert_runs(&pool, &runs).await.unwrap(), 0);
        let mut again = runs[..10].to_vec();
        again.extend_from_slice(&runs[..10]);
        assert_eq!(insert_runs(&pool, &again).await.unwrap(), 0);
        assert_eq!(all(RunFilter::default()).await.len(), 1000);

        // A new outcome of the same attempt is a new event.
        let mut lost = runs[0].clone();
        lost.outcome = RunOutcome::Lost;
        assert_eq!(insert_runs(&pool, &[lost.clone(), lost]).await.unwrap(), 1);
    }
}
