//! The durable job queue on Redis, and the apalis backend over it.
//!
//! Why lists and bounded Lua scripts rather than Streams: every decision the queue makes needs to
//! look at several things atomically (is the tenant at its cap? which kind comes first? is the
//! lease still held by this attempt?), and Streams' consumer groups answer none of them: a
//! consumer group delivers in stream order, so a 50,000-SKU catalog appended first would be
//! delivered first, and XAUTOCLAIM rescues by idle time without counting the attempt the way the
//! product needs. Lists per (kind, tenant), a round-robin ring of tenants per kind, a lease zset
//! and a delayed zset give priorities, per-tenant fairness and caps, dedupe and counted rescue,
//! each script doing a bounded amount of work. ARCHITECTURE.md has the full argument.
//!
//! Layout of this module:
//! - [`Queue`]: the client every process uses: enqueue, fetch, ack, renew, reap, inspect;
//! - [`backend`]: [`backend::RedisBackend`], the apalis `Backend` a worker runs on;
//! - [`service`]: the tower layer that turns a handler's result into an ack, enforcing the
//!   kind's timeout and catching panics;
//! - [`admin`]: read-side helpers for the CLI and metrics (depth, oldest age, job records).
//!
//! **Invariants** (kept by the scripts, checked by the tests):
//! - **a job is in exactly one of: the delayed zset, one ready list, the lease zset, the dead
//!   zset, or nowhere (succeeded);**
//! - **an attempt is counted when it is leased, so a crashed attempt counts;**
//! - **an ack or a renewal applies only to the lease it was made for (its generation).**

pub mod admin;
pub mod backend;
pub mod conn;
mod scripts;
pub mod service;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use canonical::TenantId;
use queue_schema::{
    AttemptError, Job, JobId, JobKind, JobPayload, JobSpec, KeyLayout, PayloadError,
};
use serde::{Deserialize, Serialize};

pub use conn::{ConnTimeouts, RedisConn, RedisTarget};
use scripts::SCRIPTS;

/// Jobs per enqueue script call; calls are pipelined over one multiplexed connection.
const PUSH_CHUNK: usize = 500;

/// Tunables of the queue. Defaults are the production values; every one is documented in
/// `docs/configuration.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// The key namespace (and Redis Cluster hash tag) of the queue.
    pub namespace: String,
    /// How long a leased job stays leased without renewal before any process may rescue it.
    pub lease_ms: u64,
    /// Default maximum of jobs running at once per tenant across the fleet; 0 = no cap.
    pub tenant_cap: u32,
    /// Jobs taken from one tenant before the round robin moves on.
    pub quantum: u32,
    /// Delayed jobs promoted per fetch, at most.
    pub max_promote: u32,
    /// Ring rotations per kind per fetch, at most.
    pub max_scan: u32,
    /// How long the record of a succeeded job is kept in Redis (its runs stay in Postgres).
    pub retention_ms: u64,
    /// How long a dead job is kept in Redis; Postgres keeps it until it is replayed or purged.
    pub dead_retention_ms: u64,
    /// Redis response timeout. Long enough to ride out a stall of several seconds; failures
    /// are retried by the callers, never fatal.
    pub response_timeout_ms: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            namespace: "megzo".to_owned(),
            lease_ms: 30_000,
            tenant_cap: 8,
            quantum: 8,
            max_promote: 1_000,
            max_scan: 256,
            retention_ms: 24 * 3_600_000,
            dead_retention_ms: 30 * 24 * 3_600_000,
            response_timeout_ms: 10_000,
        }
    }
}

/// Most jobs taken per tenant per round-robin turn, and per fetch: keeps every script's
/// `unpack` far below Lua's stack limit.
pub const MAX_BATCH: u32 = 1_000;

impl QueueConfig {
    /// Refuses values that would stop the queue or break a script, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        let check = |ok: bool, key: &str, value: u64, rule: &str| {
            if ok {
                Ok(())
            } else {
                Err(format!("queue.{key} is {value}; it must be {rule}"))
            }
        };
        check(
            self.lease_ms >= 1_000,
            "lease_ms",
            self.lease_ms,
            "at least 1000",
        )?;
        check(
            (1..=MAX_BATCH).contains(&self.quantum),
            "quantum",
            self.quantum.into(),
            "between 1 and 1000",
        )?;
        check(
            self.max_promote >= 1,
            "max_promote",
            self.max_promote.into(),
            "at least 1",
        )?;
        check(
            self.max_scan >= 1,
            "max_scan",
            self.max_scan.into(),
            "at least 1",
        )?;
        check(
            self.response_timeout_ms >= 100,
            "response_timeout_ms",
            self.response_timeout_ms,
            "at least 100",
        )
    }
}

/// What went wrong talking to the queue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The Redis error's own text says everything; it is not also chained as a source, which
    /// would print it twice in an error chain (`{:#}`).
    #[error("redis: {0}")]
    Redis(redis::RedisError),
    #[error("invalid queue configuration: {0}")]
    Config(String),
    #[error("unexpected reply from the {script} script: {detail}")]
    Protocol {
        script: &'static str,
        detail: String,
    },
    #[error("job {id} has an unreadable payload")]
    Payload {
        id: String,
        #[source]
        source: PayloadError,
    },
}

impl From<redis::RedisError> for QueueError {
    fn from(e: redis::RedisError) -> Self {
        QueueError::Redis(e)
    }
}

impl QueueError {
    /// Whether retrying the same call later can succeed (connection loss, timeout, restart).
    pub fn is_transient(&self) -> bool {
        match self {
            QueueError::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_unrecoverable_error()
                    || matches!(
                        e.kind(),
                        redis::ErrorKind::Server(
                            redis::ServerErrorKind::BusyLoading
                                | redis::ServerErrorKind::TryAgain
                                | redis::ServerErrorKind::ClusterDown
                                | redis::ServerErrorKind::MasterDown
                                // A Redis Cluster in a failover: the slot map is moving (the
                                // client follows redirections, but only so many times), or a
                                // demoted primary refuses writes until the client sees the new one.
                                | redis::ServerErrorKind::Moved
                                | redis::ServerErrorKind::Ask
                                | redis::ServerErrorKind::ReadOnly
                        )
                    )
            }
            _ => false,
        }
    }
}

/// Where the queue gets "now" from. Injected so retry timing can be tested with a manual clock.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> u64;

    /// True for the wall clock: the queue's scripts then use the Redis server's clock instead,
    /// so workers whose clocks drift apart still agree on leases and due times.
    fn is_wall_clock(&self) -> bool {
        false
    }
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn is_wall_clock(&self) -> bool {
        true
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(start_ms: u64) -> Self {
        Self(AtomicU64::new(start_ms))
    }
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The result of enqueueing one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job was created.
    New(JobId),
    /// A job with the same dedupe key is waiting; it stands for this one.
    Duplicate(JobId),
    /// The job's once-key was already used in this window (heartbeat already fired).
    AlreadyOnce,
}

impl Enqueued {
    pub fn is_new(&self) -> bool {
        matches!(self, Enqueued::New(_))
    }
}

/// What a worker reports for an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckOutcome {
    Succeeded,
    /// Retry after `delay_ms` (counted from the queue's clock) if attempts remain, else dead.
    Retry {
        delay_ms: u64,
        error: AttemptError,
    },
    /// Dead now (permanent failure or unreadable payload).
    Dead {
        error: AttemptError,
    },
    /// Run again after `delay_ms`; the attempt is given back.
    Snooze {
        delay_ms: u64,
    },
    /// Leased but never run (shutdown); back to the head of the queue, attempt given back.
    Release,
}

/// One ack to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub id: JobId,
    /// The lease generation the outcome belongs to ([`Job::lease`]).
    pub lease: u64,
    pub attempt: u32,
    pub outcome: AckOutcome,
}

/// How the queue applied an ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckStatus {
    Succeeded,
    Retrying,
    Dead,
    Snoozed,
    Released,
    /// The lease had expired and the job was rescued (or is gone): nothing was changed.
    Stale,
}

/// A job rescued from a lost lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaped {
    pub id: JobId,
    /// True if the lost attempt was the last one and the job is now dead.
    pub dead: bool,
    pub attempt: u32,
    pub kind: JobKind,
    pub tenant: String,
    pub worker: String,
    pub lease_started_ms: u64,
}

/// The queue client. Cheap to clone: one multiplexed, self-reconnecting connection (to one
/// Redis or a Redis Cluster, see [`conn`]) shared by every clone.
#[derive(Clone, Debug)]
pub struct Queue {
    conn: RedisConn,
    keys: Arc<KeyLayout>,
    cfg: Arc<QueueConfig>,
    clock: Arc<dyn Clock>,
}

impl Queue {
    /// Connects to Redis. Fails if Redis cannot be reached now; callers that must wait for
    /// Redis (workers starting before it) retry this.
    pub async fn connect(redis_url: &str, cfg: QueueConfig) -> Result<Self, QueueError> {
        Self::connect_with_clock(redis_url, cfg, Arc::new(SystemClock)).await
    }

    pub async fn connect_with_clock(
        redis_url: &str,
        cfg: QueueConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, QueueError> {
        let keys = KeyLayout::new(&cfg.namespace).map_err(QueueError::Config)?;
        cfg.validate().map_err(QueueError::Config)?;
        let timeouts = ConnTimeouts {
            response: Duration::from_millis(cfg.response_timeout_ms),
            connect: Duration::from_secs(2),
        };
        let conn = RedisConn::connect(redis_url, timeouts).await?;
        Ok(Self {
            conn,
            keys: Arc::new(keys),
            cfg: Arc::new(cfg),
            clock,
        })
    }

    pub fn keys(&self) -> &KeyLayout {
        &self.keys
    }

    pub fn config(&self) -> &QueueConfig {
        &self.cfg
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// "Now" by the queue's clock: the Redis server's for the wall clock (what the scripts use),
    /// the injected time otherwise.
    pub async fn queue_now_ms(&self) -> Result<u64, QueueError> {
        if !self.clock.is_wall_clock() {
            return Ok(self.clock.now_ms());
        }
        // The node that holds the queue's keys: the clock its scripts run on.
        Ok(self
            .conn
            .clone()
            .server_time_ms(&self.keys.leases())
            .await?)
    }

    /// The "now" passed to the scripts: 0 (the Redis server's clock) for the wall clock, the
    /// injected time otherwise.
    fn script_now(&self) -> u64 {
        if self.clock.is_wall_clock() {
            0
        } else {
            self.clock.now_ms()
        }
    }

    /// A connection handle for callers that issue their own commands (locks, admin).
    pub fn connection(&self) -> RedisConn {
        self.conn.clone()
    }

    /// Enqueues one job.
    pub async fn enqueue(&self, spec: &JobSpec) -> Result<Enqueued, QueueError> {
        let mut out = self.enqueue_many(std::slice::from_ref(spec)).await?;
        out.pop().ok_or(QueueError::Protocol {
            script: "push",
            detail: "no result for the job".into(),
        })
    }

    /// Enqueues many jobs: chunks of [`PUSH_CHUNK`] per script call, all chunks in flight at
    /// once on the multiplexed connection (pipelined). Results are in input order.
    pub async fn enqueue_many(&self, specs: &[JobSpec]) -> Result<Vec<Enqueued>, QueueError> {
        let now = self.script_now();
        let calls = specs.chunks(PUSH_CHUNK).map(|chunk| {
            let mut conn = self.conn.clone();
            let mut inv = SCRIPTS.push.prepare_invoke();
            inv.key(self.keys.delayed())
                .arg(self.keys.tag())
                .arg(now)
                .arg(chunk.len());
            for s in chunk {
                let (oscope, omember, ottl) = match &s.once {
                    Some(o) => (o.scope.as_str(), o.member.as_str(), o.ttl_ms.max(1)),
                    None => ("", "", 0),
                };
                inv.arg(s.id.to_string())
                    .arg(s.kind.as_str())
                    .arg(s.payload.tenant().to_string())
                    .arg(s.payload.to_json())
                    .arg(s.effective_max_attempts())
                    .arg(s.run_at_ms.unwrap_or(0))
                    .arg(s.dedupe_key.as_deref().unwrap_or(""))
                    .arg(oscope)
                    .arg(omember)
                    .arg(ottl);
            }
            async move { inv.invoke_async::<Vec<String>>(&mut conn).await }
        });
        let replies = futures::future::try_join_all(calls).await?;
        let mut out = Vec::with_capacity(specs.len());
        for reply in replies {
            for pair in reply.chunks(2) {
                let [status, id] = pair else {
                    return Err(QueueError::Protocol {
                        script: "push",
                        detail: format!("odd reply length: {pair:?}"),
                    });
                };
                out.push(match status.as_str() {
                    "new" => Enqueued::New(parse_id("push", id)?),
                    "dup" => Enqueued::Duplicate(parse_id("push", id)?),
                    "once" => Enqueued::AlreadyOnce,
                    other => {
                        return Err(QueueError::Protocol {
                            script: "push",
                            detail: format!("unknown status {other:?}"),
                        });
                    }
                });
            }
        }
        Ok(out)
    }

    /// Leases up to `want` jobs of `kinds` (served in the given order) to `worker`.
    /// Jobs whose payload cannot be read are still returned (as `Err`) so the caller can
    /// dead-letter them with the reason instead of losing them.
    ///
    /// `request` identifies the call: retrying with the same id after an error (a lost reply)
    /// returns the jobs the first call leased, instead of leaving them leased to no one.
    pub async fn fetch(
        &self,
        worker: &str,
        want: usize,
        kinds: &[JobKind],
        request: &str,
    ) -> Result<Vec<Result<Job, FetchedBad>>, QueueError> {
        const FIELDS: usize = 8;
        let mut inv = SCRIPTS.fetch.prepare_invoke();
        inv.key(self.keys.leases())
            .arg(self.keys.tag())
            .arg(self.script_now())
            .arg(self.cfg.lease_ms)
            .arg(worker)
            .arg(want.clamp(1, MAX_BATCH as usize))
            .arg(self.cfg.tenant_cap)
            .arg(self.cfg.quantum)
            .arg(self.cfg.max_promote)
            .arg(self.cfg.max_scan)
            .arg(request);
        for k in kinds {
            inv.arg(k.as_str());
        }
        let reply: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await?;
        if !reply.len().is_multiple_of(FIELDS) {
            return Err(QueueError::Protocol {
                script: "fetch",
                detail: format!(
                    "reply of {} fields is not a multiple of {FIELDS}",
                    reply.len()
                ),
            });
        }
        let mut jobs = Vec::with_capacity(reply.len() / FIELDS);
        for f in reply.chunks_exact(FIELDS) {
            let id = parse_id("fetch", &f[0])?;
            let kind: JobKind = f[1].parse().map_err(|e| QueueError::Protocol {
                script: "fetch",
                detail: format!("job {id}: {e}"),
            })?;
            let attempt = parse_num("fetch", &f[4])? as u32;
            let max_attempts = parse_num("fetch", &f[5])? as u32;
            let enqueued_at_ms = parse_num("fetch", &f[6])?;
            let lease = parse_num("fetch", &f[7])?;
            jobs.push(match JobPayload::from_json(&f[3]) {
                Ok(payload) => Ok(Job {
                    id,
                    kind,
                    payload,
                    attempt,
                    max_attempts,
                    enqueued_at_ms,
                    lease,
                }),
                Err(e) => Err(FetchedBad {
                    id,
                    kind,
                    attempt,
                    lease,
                    tenant: f[2].clone(),
                    reason: e.to_string(),
                }),
            });
        }
        Ok(jobs)
    }

    /// Applies acks in one script call. Statuses are in input order.
    pub async fn ack(&self, acks: &[Ack]) -> Result<Vec<AckStatus>, QueueError> {
        if acks.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = SCRIPTS.ack.prepare_invoke();
        inv.key(self.keys.leases())
            .arg(self.keys.tag())
            .arg(self.script_now())
            .arg(self.cfg.retention_ms)
            .arg(acks.len());
        for a in acks {
            let (outcome, delay, err) = match &a.outcome {
                AckOutcome::Succeeded => ("ok", 0, String::new()),
                AckOutcome::Retry { delay_ms, error } => ("retry", *delay_ms, error_json(error)),
                AckOutcome::Dead { error } => ("dead", 0, error_json(error)),
                AckOutcome::Snooze { delay_ms } => ("snooze", *delay_ms, String::new()),
                AckOutcome::Release => ("release", 0, String::new()),
            };
            inv.arg(a.id.to_string())
                .arg(a.lease)
                .arg(a.attempt)
                .arg(outcome)
                .arg(delay)
                .arg(err);
        }
        let reply: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await?;
        if reply.len() != acks.len() {
            return Err(QueueError::Protocol {
                script: "ack",
                detail: format!("{} statuses for {} acks", reply.len(), acks.len()),
            });
        }
        reply
            .iter()
            .map(|s| {
                Ok(match s.as_str() {
                    "ok" => AckStatus::Succeeded,
                    "retry" => AckStatus::Retrying,
                    "dead" => AckStatus::Dead,
                    "snooze" => AckStatus::Snoozed,
                    "release" => AckStatus::Released,
                    "stale" => AckStatus::Stale,
                    other => {
                        return Err(QueueError::Protocol {
                            script: "ack",
                            detail: format!("unknown status {other:?}"),
                        });
                    }
                })
            })
            .collect()
    }

    /// Extends the leases this worker still holds — `(job, lease generation)` pairs — and
    /// records the worker's heartbeat. A lease already rescued, or now another's, is left alone.
    /// Returns how many leases were extended.
    pub async fn renew(&self, worker: &str, held: &[(JobId, u64)]) -> Result<usize, QueueError> {
        let mut total = 0;
        // One call per 500 leases keeps each script short; an empty list still records the
        // heartbeat.
        let chunks: Vec<&[(JobId, u64)]> = if held.is_empty() {
            vec![&[]]
        } else {
            held.chunks(500).collect()
        };
        for chunk in chunks {
            let mut inv = SCRIPTS.renew.prepare_invoke();
            inv.key(self.keys.leases())
                .arg(self.keys.tag())
                .arg(self.script_now())
                .arg(self.cfg.lease_ms)
                .arg(worker);
            for (id, lease) in chunk {
                inv.arg(id.to_string()).arg(*lease);
            }
            let n: usize = inv.invoke_async(&mut self.conn.clone()).await?;
            total += n;
        }
        Ok(total)
    }

    /// Removes a stopped worker from the fleet view.
    pub async fn deregister(&self, worker: &str) -> Result<(), QueueError> {
        redis::cmd("ZREM")
            .arg(self.keys.workers())
            .arg(worker)
            .query_async::<()>(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Rescues up to `limit` jobs whose lease expired.
    pub async fn reap(&self, limit: usize) -> Result<Vec<Reaped>, QueueError> {
        let mut inv = SCRIPTS.reap.prepare_invoke();
        inv.key(self.keys.leases())
            .arg(self.keys.tag())
            .arg(self.script_now())
            .arg(limit);
        let reply: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await?;
        if !reply.len().is_multiple_of(7) {
            return Err(QueueError::Protocol {
                script: "reap",
                detail: format!("reply of {} fields is not a multiple of 7", reply.len()),
            });
        }
        reply
            .chunks_exact(7)
            .map(|f| {
                Ok(Reaped {
                    id: parse_id("reap", &f[0])?,
                    dead: f[1] == "dead",
                    attempt: parse_num("reap", &f[2])? as u32,
                    kind: f[3].parse().map_err(|e| QueueError::Protocol {
                        script: "reap",
                        detail: format!("{e}"),
                    })?,
                    tenant: f[4].clone(),
                    worker: f[5].clone(),
                    lease_started_ms: parse_num("reap", &f[6])?,
                })
            })
            .collect()
    }

    /// Sets (or, with `None`, clears) a tenant's own concurrency cap.
    pub async fn set_tenant_cap(
        &self,
        tenant: TenantId,
        cap: Option<u32>,
    ) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        match cap {
            Some(c) => {
                redis::cmd("HSET")
                    .arg(self.keys.caps())
                    .arg(tenant.to_string())
                    .arg(c)
                    .query_async::<()>(&mut conn)
                    .await?
            }
            None => {
                redis::cmd("HDEL")
                    .arg(self.keys.caps())
                    .arg(tenant.to_string())
                    .query_async::<()>(&mut conn)
                    .await?
            }
        }
        Ok(())
    }
}

impl Queue {
    /// Tenants that have their own cap in Redis.
    pub async fn capped_tenants(&self) -> Result<Vec<TenantId>, QueueError> {
        let raw: Vec<String> = redis::cmd("HKEYS")
            .arg(self.keys.caps())
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(raw.iter().filter_map(|s| s.parse().ok()).collect())
    }
}

/// A leased job whose payload could not be read: dead-lettered by the worker with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedBad {
    pub id: JobId,
    pub kind: JobKind,
    pub attempt: u32,
    pub lease: u64,
    pub tenant: String,
    pub reason: String,
}

fn error_json(e: &AttemptError) -> String {
    // AttemptError is plain data; serialising it cannot fail.
    serde_json::to_string(e).unwrap_or_else(|err| unreachable!("AttemptError serialises: {err}"))
}

fn parse_id(script: &'static str, s: &str) -> Result<JobId, QueueError> {
    s.parse().map_err(|e| QueueError::Protocol {
        script,
        detail: format!("bad job id {s:?}: {e}"),
    })
}

fn parse_num(script: &'static str, s: &str) -> Result<u64, QueueError> {
    s.parse().map_err(|e| QueueError::Protocol {
        script,
        detail: format!("bad number {s:?}: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(kind: redis::ServerErrorKind) -> QueueError {
        QueueError::Redis(redis::RedisError::from((
            redis::ErrorKind::Server(kind),
            "from the server",
        )))
    }

    #[test]
    fn failover_answers_are_transient_and_script_errors_are_not() {
        use redis::ServerErrorKind as K;
        for kind in [
            K::BusyLoading,
            K::TryAgain,
            K::ClusterDown,
            K::MasterDown,
            K::Moved,
            K::Ask,
            K::ReadOnly,
        ] {
            assert!(server(kind).is_transient(), "{kind:?}");
        }
        for kind in [K::ResponseError, K::CrossSlot, K::NoScript, K::NoPerm] {
            assert!(!server(kind).is_transient(), "{kind:?}");
        }
        assert!(!QueueError::Config("x".into()).is_transient());
    }
}
