//! Read-side of the queue for the CLI, the metrics sampler and support: depth and oldest age per
//! kind, job records with their attempt history, listings by state, dead-set maintenance.
//! Reads are bounded (`LIMIT`, `ZRANGE … 0 n`), never a scan of the whole keyspace.

use std::collections::BTreeMap;

use queue_schema::{AttemptError, JobId, JobKind, JobState};
use serde::Serialize;

use super::{Queue, QueueError};

/// Depth and age of one kind's ready queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindDepth {
    pub kind: JobKind,
    pub ready: u64,
    /// Age of the oldest ready job, in ms; 0 when none is ready.
    pub oldest_age_ms: u64,
}

/// A snapshot of the whole queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    pub kinds: Vec<KindDepth>,
    /// Scheduled and retrying jobs.
    pub delayed: u64,
    pub running: u64,
    pub dead: u64,
    pub workers_alive: u64,
    /// Counters since the namespace was created.
    pub enqueued_total: u64,
    pub succeeded_total: u64,
    pub retried_total: u64,
    pub dead_total: u64,
    pub rescued_total: u64,
}

/// A job as stored in Redis, with every attempt's error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRecord {
    pub id: JobId,
    pub kind: String,
    pub tenant: String,
    pub state: String,
    pub attempts: u32,
    pub max_attempts: u32,
    pub enqueued_at_ms: u64,
    /// The payload as stored (JSON text).
    pub payload: String,
    pub worker: Option<String>,
    pub errors: Vec<AttemptError>,
    /// Errors whose record could not be read, kept verbatim rather than dropped.
    pub unreadable_errors: Vec<String>,
}

impl Queue {
    /// Depth, age and counters. A worker is alive if it renewed within two lease periods.
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        let now = self.queue_now_ms().await?;
        let k = self.keys();
        let mut pipe = redis::pipe();
        for kind in JobKind::ALL {
            pipe.cmd("ZCARD").arg(k.queued(kind));
            pipe.cmd("ZRANGE")
                .arg(k.queued(kind))
                .arg(0)
                .arg(0)
                .arg("WITHSCORES");
        }
        pipe.cmd("ZCARD").arg(k.delayed());
        pipe.cmd("ZCARD").arg(k.leases());
        pipe.cmd("ZCARD").arg(k.dead());
        pipe.cmd("ZCOUNT")
            .arg(k.workers())
            .arg(now.saturating_sub(2 * self.config().lease_ms))
            .arg("+inf");
        pipe.cmd("HGETALL").arg(k.stats());
        let mut conn = self.connection();
        let values: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
        let mut it = values.into_iter();
        let mut next = || it.next().unwrap_or(redis::Value::Nil);
        let mut kinds = Vec::new();
        for kind in JobKind::ALL {
            let ready: u64 = redis::from_redis_value(next()).unwrap_or(0);
            let oldest: Vec<(String, f64)> = redis::from_redis_value(next()).unwrap_or_default();
            let oldest_age_ms = oldest
                .first()
                .map(|(_, at)| now.saturating_sub(*at as u64))
                .unwrap_or(0);
            kinds.push(KindDepth {
                kind,
                ready,
                oldest_age_ms,
            });
        }
        let delayed = redis::from_redis_value(next()).unwrap_or(0);
        let running = redis::from_redis_value(next()).unwrap_or(0);
        let dead = redis::from_redis_value(next()).unwrap_or(0);
        let workers_alive = redis::from_redis_value(next()).unwrap_or(0);
        let counters: BTreeMap<String, u64> = redis::from_redis_value(next()).unwrap_or_default();
        let c = |name: &str| counters.get(name).copied().unwrap_or(0);
        Ok(QueueStats {
            kinds,
            delayed,
            running,
            dead,
            workers_alive,
            enqueued_total: c("enqueued"),
            succeeded_total: c("succeeded"),
            retried_total: c("retried"),
            dead_total: c("dead"),
            rescued_total: c("rescued"),
        })
    }

    /// A job's record, or `None` if Redis no longer has it (expired after success, or lost with
    /// Redis; its history is in Postgres either way).
    pub async fn job(&self, id: JobId) -> Result<Option<JobRecord>, QueueError> {
        let fields: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys().job(&id.to_string()))
            .query_async(&mut self.connection())
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let num = |name: &str| {
            fields
                .get(name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let mut errors = Vec::new();
        let mut unreadable_errors = Vec::new();
        let mut attempt_fields: Vec<(u32, &String)> = fields
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix('f')?.parse().ok()?, v)))
            .collect();
        attempt_fields.sort_by_key(|(n, _)| *n);
        for (_, v) in attempt_fields {
            match serde_json::from_str::<AttemptError>(v) {
                Ok(e) => errors.push(e),
                Err(_) => unreadable_errors.push(v.clone()),
            }
        }
        Ok(Some(JobRecord {
            id,
            kind: fields.get("k").cloned().unwrap_or_default(),
            tenant: fields.get("t").cloned().unwrap_or_default(),
            state: fields.get("s").cloned().unwrap_or_default(),
            attempts: num("a") as u32,
            max_attempts: num("m") as u32,
            enqueued_at_ms: num("e"),
            payload: fields.get("p").cloned().unwrap_or_default(),
            worker: fields.get("w").cloned(),
            errors,
            unreadable_errors,
        }))
    }

    /// Ids of live jobs in `state` (ready, scheduled/retrying, running, dead), oldest first, at
    /// most `limit`. Succeeded jobs are not listed here: their runs are in Postgres.
    pub async fn ids_in_state(
        &self,
        state: JobState,
        kind: Option<JobKind>,
        limit: usize,
    ) -> Result<Vec<JobId>, QueueError> {
        let k = self.keys();
        let mut conn = self.connection();
        let stop = limit.max(1) as i64 - 1;
        let raw: Vec<String> = match state {
            JobState::Ready => {
                let mut out = Vec::new();
                for kd in JobKind::ALL
                    .into_iter()
                    .filter(|x| kind.is_none_or(|k| k == *x))
                {
                    let ids: Vec<String> = redis::cmd("ZRANGE")
                        .arg(k.queued(kd))
                        .arg(0)
                        .arg(stop)
                        .query_async(&mut conn)
                        .await?;
                    out.extend(ids);
                }
                out
            }
            JobState::Scheduled | JobState::Retrying => {
                redis::cmd("ZRANGE")
                    .arg(k.delayed())
                    .arg(0)
                    .arg(stop)
                    .query_async(&mut conn)
                    .await?
            }
            JobState::Running => {
                redis::cmd("ZRANGE")
                    .arg(k.leases())
                    .arg(0)
                    .arg(stop)
                    .query_async(&mut conn)
                    .await?
            }
            JobState::Dead => {
                redis::cmd("ZRANGE")
                    .arg(k.dead())
                    .arg(0)
                    .arg(stop)
                    .query_async(&mut conn)
                    .await?
            }
            JobState::Succeeded => Vec::new(),
        };
        Ok(raw
            .iter()
            .filter_map(|s| s.parse().ok())
            .take(limit)
            .collect())
    }

    /// Redis memory of a queued job's record, sampled: the average `MEMORY USAGE` of up to
    /// `sample` ready job hashes. Its id in a ready list and in the `queued` index adds about 270
    /// B more (the benchmark measures the whole: 1,069 B per queued job with Redis's default
    /// `hash-max-listpack-value`). `None` when nothing is queued.
    pub async fn sampled_job_bytes(&self, sample: usize) -> Result<Option<u64>, QueueError> {
        let mut conn = self.connection();
        let mut ids: Vec<String> = Vec::new();
        for kind in JobKind::ALL {
            if ids.len() >= sample {
                break;
            }
            let more: Vec<String> = redis::cmd("ZRANGE")
                .arg(self.keys().queued(kind))
                .arg(0)
                .arg((sample - ids.len()) as i64 - 1)
                .query_async(&mut conn)
                .await?;
            ids.extend(more);
        }
        if ids.is_empty() {
            return Ok(None);
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("MEMORY")
                .arg("USAGE")
                .arg(self.keys().job(id))
                .arg("SAMPLES")
                .arg(0);
        }
        let sizes: Vec<Option<u64>> = pipe.query_async(&mut conn).await?;
        let known: Vec<u64> = sizes.into_iter().flatten().collect();
        if known.is_empty() {
            return Ok(None);
        }
        Ok(Some(known.iter().sum::<u64>() / known.len() as u64))
    }

    /// Dead job ids not yet copied to Postgres, at most `limit`.
    pub async fn outbox_peek(&self, limit: usize) -> Result<Vec<JobId>, QueueError> {
        let raw: Vec<String> = redis::cmd("LRANGE")
            .arg(self.keys().outbox())
            .arg(0)
            .arg(limit.max(1) as i64 - 1)
            .query_async(&mut self.connection())
            .await?;
        Ok(raw.iter().filter_map(|s| s.parse().ok()).collect())
    }

    /// Removes ids from the outbox once Postgres has them.
    pub async fn outbox_remove(&self, ids: &[JobId]) -> Result<(), QueueError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("LREM")
                .arg(self.keys().outbox())
                .arg(1)
                .arg(id.to_string())
                .ignore();
        }
        pipe.query_async::<()>(&mut self.connection()).await?;
        Ok(())
    }

    /// Makes up to `limit` delayed jobs (retries waiting out their backoff, jobs scheduled for
    /// later) due now, so the next fetch runs them: support's "retry now" once an outage is
    /// over. Their attempt counts and histories are kept. Returns how many were moved. A job
    /// promoted or deleted meanwhile is left alone (`ZADD XX` only updates members present).
    pub async fn run_delayed_now(&self, limit: usize) -> Result<usize, QueueError> {
        let delayed = self.keys().delayed();
        let mut conn = self.connection();
        let now = self.queue_now_ms().await?;
        // Only jobs not yet due: those made due by an earlier call (or due anyway) are not
        // counted or moved again.
        let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(&delayed)
            .arg(format!("({now}"))
            .arg("+inf")
            .arg("LIMIT")
            .arg(0)
            .arg(limit.max(1))
            .query_async(&mut conn)
            .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(&delayed).arg("XX").arg("CH");
        for id in &ids {
            cmd.arg(now).arg(id);
        }
        let changed: usize = cmd.query_async(&mut conn).await?;
        Ok(changed)
    }

    /// Removes a dead job from Redis (after it was replayed from Postgres).
    pub async fn forget_dead(&self, id: JobId) -> Result<(), QueueError> {
        let mut pipe = redis::pipe();
        pipe.cmd("ZREM")
            .arg(self.keys().dead())
            .arg(id.to_string())
            .ignore();
        pipe.cmd("DEL")
            .arg(self.keys().job(&id.to_string()))
            .ignore();
        pipe.query_async::<()>(&mut self.connection()).await?;
        Ok(())
    }

    /// Drops dead jobs older than the dead retention from Redis (Postgres keeps them), at most
    /// `limit` per call. Returns how many were dropped.
    pub async fn trim_dead(&self, limit: usize) -> Result<usize, QueueError> {
        let cutoff = self
            .queue_now_ms()
            .await?
            .saturating_sub(self.config().dead_retention_ms);
        let mut conn = self.connection();
        let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys().dead())
            .arg("-inf")
            .arg(cutoff)
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("ZREM").arg(self.keys().dead()).arg(id).ignore();
            pipe.cmd("DEL").arg(self.keys().job(id)).ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        Ok(ids.len())
    }

    /// Forgets workers silent for more than `older_than_ms` in the fleet view.
    pub async fn prune_workers(&self, older_than_ms: u64) -> Result<(), QueueError> {
        redis::cmd("ZREMRANGEBYSCORE")
            .arg(self.keys().workers())
            .arg("-inf")
            .arg(self.queue_now_ms().await?.saturating_sub(older_than_ms))
            .query_async::<()>(&mut self.connection())
            .await?;
        Ok(())
    }
}
