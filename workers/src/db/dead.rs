//! Dead jobs: jobs that exhausted their attempts (or failed permanently), kept with their payload
//! and the error of every attempt so support can see why, and replay them once.

use canonical::{ConnectionId, TenantId};
use chrono::{DateTime, Utc};
use queue_schema::{AttemptError, JobId, JobKind};
use sqlx::PgPool;
use uuid::Uuid;

use super::{DbError, effective_limit};

/// A dead job with everything needed to understand and replay it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadJob {
    pub job_id: JobId,
    pub kind: JobKind,
    pub tenant_id: TenantId,
    pub connection_id: ConnectionId,
    pub payload: serde_json::Value,
    /// Attempts made, counting attempts whose worker crashed.
    pub attempts: i32,
    pub max_attempts: i32,
    /// Why each attempt failed, oldest first.
    pub errors: Vec<AttemptError>,
    pub enqueued_at: DateTime<Utc>,
    pub died_at: DateTime<Utc>,
    /// When it was replayed, if it was; set together with `replayed_as`.
    pub replayed_at: Option<DateTime<Utc>>,
    /// The id of the job the replay enqueued.
    pub replayed_as: Option<JobId>,
}

/// Which dead jobs [`list_dead`] returns. `None` filters match everything; `since` is inclusive
/// and `until` exclusive, both on `died_at`. Replayed jobs are hidden unless `include_replayed`.
/// `limit` 0 (or negative) means 100, and it is capped at 10,000.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeadFilter {
    pub tenant: Option<TenantId>,
    pub kind: Option<JobKind>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub include_replayed: bool,
    pub limit: i64,
}

struct DeadDb {
    job_id: Uuid,
    kind: String,
    tenant_id: Uuid,
    connection_id: Uuid,
    payload: serde_json::Value,
    attempts: i32,
    max_attempts: i32,
    errors: serde_json::Value,
    enqueued_at: DateTime<Utc>,
    died_at: DateTime<Utc>,
    replayed_at: Option<DateTime<Utc>>,
    replayed_as: Option<Uuid>,
}

impl TryFrom<DeadDb> for DeadJob {
    type Error = DbError;
    fn try_from(r: DeadDb) -> Result<Self, DbError> {
        let corrupt = |column, reason: String| DbError::Corrupt {
            table: "dead_jobs",
            column,
            row: r.job_id.to_string(),
            reason,
        };
        let kind = r
            .kind
            .parse()
            .map_err(|e| corrupt("kind", format!("{e}")))?;
        let errors = serde_json::from_value(r.errors.clone())
            .map_err(|e| corrupt("errors", e.to_string()))?;
        Ok(DeadJob {
            job_id: JobId(r.job_id),
            kind,
            tenant_id: TenantId(r.tenant_id),
            connection_id: ConnectionId(r.connection_id),
            payload: r.payload,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            errors,
            enqueued_at: r.enqueued_at,
            died_at: r.died_at,
            replayed_at: r.replayed_at,
            replayed_as: r.replayed_as.map(JobId),
        })
    }
}

/// Records dead jobs in ONE statement. A job already recorded (same `job_id`) is left as it is,
/// so recording the same death twice is harmless. `replayed_at` and `replayed_as` must be both set
/// or both unset. Returns how many rows were actually inserted.
pub async fn insert_dead(pool: &PgPool, jobs: &[DeadJob]) -> Result<u64, DbError> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let n = jobs.len();
    let mut ids = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut tenants = Vec::with_capacity(n);
    let mut connections = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut max_attempts = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    let mut enqueued = Vec::with_capacity(n);
    let mut died = Vec::with_capacity(n);
    let mut replayed_at: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
    let mut replayed_as: Vec<Option<Uuid>> = Vec::with_capacity(n);
    for j in jobs {
        if j.replayed_at.is_some() != j.replayed_as.is_some() {
            return Err(DbError::Invalid {
                what: "dead job replay fields",
                value: j.job_id.to_string(),
                reason: "replayed_at and replayed_as must be both set or both unset".into(),
            });
        }
        ids.push(j.job_id.0);
        kinds.push(j.kind.as_str().to_owned());
        tenants.push(j.tenant_id.0);
        connections.push(j.connection_id.0);
        payloads.push(super::storable_json(j.payload.clone()));
        attempts.push(j.attempts);
        max_attempts.push(j.max_attempts);
        errors.push(super::storable_json(
            serde_json::to_value(&j.errors).map_err(|source| DbError::Json {
                what: "attempt errors",
                source,
            })?,
        ));
        enqueued.push(j.enqueued_at);
        died.push(j.died_at);
        replayed_at.push(j.replayed_at);
        replayed_as.push(j.replayed_as.map(|id| id.0));
    }
    // The two nullable-element arrays bypass the macro's type check (`as _`): it has no notion of
    // arrays with NULL elements; the encoder still checks them at run time.
    let done = sqlx::query!(
        "INSERT INTO dead_jobs (job_id, kind, tenant_id, connection_id, payload, attempts,
                                max_attempts, errors, enqueued_at, died_at, replayed_at, replayed_as)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::jsonb[],
                              $6::int4[], $7::int4[], $8::jsonb[], $9::timestamptz[],
                              $10::timestamptz[], $11::timestamptz[], $12::uuid[])
         ON CONFLICT (job_id) DO NOTHING",
        &ids,
        &kinds,
        &tenants,
        &connections,
        &payloads,
        &attempts,
        &max_attempts,
        &errors,
        &enqueued,
        &died,
        &replayed_at as _,
        &replayed_as as _,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// The dead jobs matching `f`, most recently dead first.
pub async fn list_dead(pool: &PgPool, f: &DeadFilter) -> Result<Vec<DeadJob>, DbError> {
    let rows = sqlx::query_as!(
        DeadDb,
        "SELECT job_id, kind, tenant_id, connection_id, payload, attempts, max_attempts, errors,
                enqueued_at, died_at, replayed_at, replayed_as
         FROM dead_jobs
         WHERE ($1::uuid IS NULL OR tenant_id = $1)
           AND ($2::text IS NULL OR kind = $2)
           AND ($3::timestamptz IS NULL OR died_at >= $3)
           AND ($4::timestamptz IS NULL OR died_at < $4)
           AND ($5::bool OR replayed_at IS NULL)
         ORDER BY died_at DESC, job_id DESC
         LIMIT $6",
        f.tenant.map(|t| t.0),
        f.kind.map(JobKind::as_str),
        f.since,
        f.until,
        f.include_replayed,
        effective_limit(f.limit),
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(DeadJob::try_from).collect()
}

/// One dead job by id, replayed or not.
pub async fn get_dead(pool: &PgPool, id: JobId) -> Result<Option<DeadJob>, DbError> {
    let row = sqlx::query_as!(
        DeadDb,
        "SELECT job_id, kind, tenant_id, connection_id, payload, attempts, max_attempts, errors,
                enqueued_at, died_at, replayed_at, replayed_as
         FROM dead_jobs WHERE job_id = $1",
        id.0,
    )
    .fetch_optional(pool)
    .await?;
    row.map(DeadJob::try_from).transpose()
}

/// Marks dead job `id` as replayed as `new_id`, only if it was not replayed yet. Returns `true`
/// if this call did it and `false` if it had already been replayed: the row lock taken by the
/// conditional UPDATE makes two concurrent replays see one `true` and one `false`, so a dead job
/// is replayed at most once (mark first, enqueue only on `true`). An unknown `id` is
/// [`DbError::UnknownDeadJob`].
pub async fn mark_replayed(pool: &PgPool, id: JobId, new_id: JobId) -> Result<bool, DbError> {
    let r = sqlx::query!(
        r#"WITH marked AS (
               UPDATE dead_jobs SET replayed_at = now(), replayed_as = $2
               WHERE job_id = $1 AND replayed_at IS NULL
               RETURNING 1
           )
           SELECT EXISTS (SELECT 1 FROM marked) AS "marked!",
                  EXISTS (SELECT 1 FROM dead_jobs WHERE job_id = $1) AS "known!""#,
        id.0,
        new_id.0,
    )
    .fetch_one(pool)
    .await?;
    if !r.known {
        return Err(DbError::UnknownDeadJob(id.to_string()));
    }
    Ok(r.marked)
}

/// Dead jobs not replayed yet, counted in Postgres.
pub async fn count_unreplayed(pool: &PgPool) -> Result<i64, DbError> {
    Ok(
        sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM dead_jobs WHERE replayed_at IS NULL"#)
            .fetch_one(pool)
            .await?,
    )
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use queue_schema::ErrorClass;
    use serde_json::json;

    use super::*;

    fn dead(tenant: TenantId, kind: JobKind, died_min: i64) -> DeadJob {
        let t0 = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap();
        let err = |attempt| AttemptError {
            attempt,
            at_ms: 1_740_830_400_000 + u64::from(attempt),
            worker: "w-1".into(),
            class: ErrorClass::Retryable,
            chain: vec![format!("attempt {attempt} failed")],
            retry_after_ms: None,
        };
        DeadJob {
            job_id: JobId::new(),
            kind,
            tenant_id: tenant,
            connection_id: ConnectionId::new(),
            payload: json!({"v": 1, "scope": "all"}),
            attempts: 3,
            max_attempts: 3,
            errors: vec![err(1), err(2), err(3)],
            enqueued_at: t0,
            died_at: t0 + Duration::minutes(died_min),
            replayed_at: None,
            replayed_as: None,
        }
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn dead_jobs_insert_once_list_and_round_trip(pool: PgPool) {
        let (a, b) = (TenantId::new(), TenantId::new());
        let jobs = vec![
            dead(a, JobKind::OrderPull, 1),
            dead(a, JobKind::StockPush, 2),
            dead(b, JobKind::OrderPull, 3),
        ];
        assert_eq!(insert_dead(&pool, &jobs).await.unwrap(), 3);
        assert_eq!(insert_dead(&pool, &jobs).await.unwrap(), 0, "idempotent");
        let mut changed = jobs[0].clone();
        changed.attempts = 99;
        assert_eq!(
            insert_dead(&pool, &[changed]).await.unwrap(),
            0,
            "first record wins"
        );

        assert_eq!(
            get_dead(&pool, jobs[0].job_id).await.unwrap().as_ref(),
            Some(&jobs[0])
        );
        assert_eq!(get_dead(&pool, JobId::new()).await.unwrap(), None);

        let ids = |v: Vec<DeadJob>| v.into_iter().map(|j| j.job_id).collect::<Vec<_>>();
        let newest_first = list_dead(&pool, &DeadFilter::default()).await.unwrap();
        assert_eq!(
            ids(newest_first),
            [jobs[2].job_id, jobs[1].job_id, jobs[0].job_id]
        );
        let of_a = DeadFilter {
            tenant: Some(a),
            ..Default::default()
        };
        assert_eq!(
            ids(list_dead(&pool, &of_a).await.unwrap()),
            [jobs[1].job_id, jobs[0].job_id]
        );
        let orders = DeadFilter {
            kind: Some(JobKind::OrderPull),
            ..Default::default()
        };
        assert_eq!(
            ids(list_dead(&pool, &orders).await.unwrap()),
            [jobs[2].job_id, jobs[0].job_id]
        );
        let window = DeadFilter {
            since: Some(jobs[1].died_at),
            until: Some(jobs[2].died_at),
            ..Default::default()
        };
        assert_eq!(
            ids(list_dead(&pool, &window).await.unwrap()),
            [jobs[1].job_id]
        );
        let one = DeadFilter {
            limit: 1,
            ..Default::default()
        };
        assert_eq!(ids(list_dead(&pool, &one).await.unwrap()), [jobs[2].job_id]);

        let mut half_replayed = dead(a, JobKind::AwbPush, 4);
        half_replayed.replayed_as = Some(JobId::new());
        let err = insert_dead(&pool, &[half_replayed]).await.unwrap_err();
        assert!(matches!(err, DbError::Invalid { .. }), "{err}");
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_dead_job_is_replayed_once(pool: PgPool) {
        let job = dead(TenantId::new(), JobKind::InvoiceAttach, 1);
        insert_dead(&pool, std::slice::from_ref(&job))
            .await
            .unwrap();
        let (first, second) = (JobId::new(), JobId::new());
        assert!(mark_replayed(&pool, job.job_id, first).await.unwrap());
        assert!(!mark_replayed(&pool, job.job_id, second).await.unwrap());
        let stored = get_dead(&pool, job.job_id).await.unwrap().unwrap();
        assert_eq!(stored.replayed_as, Some(first));
        assert!(stored.replayed_at.is_some());

        // Replayed jobs are hidden unless asked for.
        assert!(
            list_dead(&pool, &DeadFilter::default())
                .await
                .unwrap()
                .is_empty()
        );
        let with = DeadFilter {
            include_replayed: true,
            ..Default::default()
        };
        assert_eq!(list_dead(&pool, &with).await.unwrap(), [stored]);

        let ghost = JobId::new();
        let err = mark_replayed(&pool, ghost, JobId::new()).await.unwrap_err();
        assert!(
            matches!(&err, DbError::UnknownDeadJob(id) if *id == ghost.to_string()),
            "{err}"
        );
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn concurrent_replays_have_one_winner(pool: PgPool) {
        let job = dead(TenantId::new(), JobKind::OrderPull, 1);
        insert_dead(&pool, std::slice::from_ref(&job))
            .await
            .unwrap();
        let id = job.job_id;
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { mark_replayed(&pool, id, JobId::new()).await })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            wins += usize::from(t.await.unwrap().unwrap());
        }
        assert_eq!(wins, 1);
    }
}
