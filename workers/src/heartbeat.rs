//! The heartbeat enqueuer: every connection of every active tenant gets each of its flows enqueued
//! once per time bucket (5 minutes by default).
//!
//! Idempotence is by construction, not by leadership: each job carries a once-key
//! `(hb:<bucket>, <tenant>:<connection>:<kind>)`, so any number of cron fires, `megzo scheduler`
//! replicas or retries within the same bucket enqueue each job once; and each carries its kind's
//! dedupe key, so a bucket whose previous job of the same flow is still waiting adds nothing.
//! Two replicas of the scheduler are therefore safe without electing a leader.

use std::future::Future;
use std::time::Duration;

use canonical::{ConnectionId, TenantId};
use queue_schema::{JobKind, JobPayload, JobSpec, OnceKey, Scope, Trigger};
use serde::Serialize;
use sqlx::PgPool;

use crate::queue::{Enqueued, Queue};

/// What one heartbeat did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct HeartbeatReport {
    pub bucket: i64,
    pub connections: usize,
    /// Jobs created.
    pub enqueued: usize,
    /// Jobs already waiting with the same dedupe key.
    pub deduplicated: usize,
    /// Jobs already enqueued in this bucket (another replica or an earlier fire).
    pub already_in_bucket: usize,
}

/// The bucket index of `now_ms` for `interval`.
pub fn bucket_of(now_ms: u64, interval: Duration) -> i64 {
    (now_ms / interval.as_millis().max(1) as u64) as i64
}

/// The jobs of one heartbeat, in a deterministic order.
pub fn heartbeat_specs(
    targets: &[(TenantId, ConnectionId)],
    kinds: &[JobKind],
    bucket: i64,
    interval: Duration,
) -> Vec<JobSpec> {
    let scope = format!("hb:{bucket}");
    // The once-set outlives its bucket by one interval, so a late fire of the previous bucket
    // is still recognised.
    let ttl_ms = 2 * interval.as_millis() as u64;
    let mut specs = Vec::with_capacity(targets.len() * kinds.len());
    for (tenant, connection) in targets {
        for kind in kinds {
            let payload = JobPayload::v1(
                *tenant,
                *connection,
                Scope::All,
                Trigger::Heartbeat { bucket },
            );
            specs.push(JobSpec::new(*kind, payload).once(OnceKey {
                scope: scope.clone(),
                member: format!("{tenant}:{connection}:{kind}"),
                ttl_ms,
            }));
        }
    }
    specs
}

/// Enqueues one heartbeat for every enabled connection of every active tenant.
pub async fn enqueue_heartbeat(
    queue: &Queue,
    pool: &PgPool,
    interval: Duration,
) -> anyhow::Result<HeartbeatReport> {
    let targets = crate::db::heartbeat_targets(pool).await?;
    enqueue_heartbeat_for(queue, &targets, interval).await
}

/// As [`enqueue_heartbeat`], for a given target list (benchmarks, tests).
pub async fn enqueue_heartbeat_for(
    queue: &Queue,
    targets: &[(TenantId, ConnectionId)],
    interval: Duration,
) -> anyhow::Result<HeartbeatReport> {
    // The bucket comes from the queue's clock (the Redis server's), so schedulers whose own
    // clocks disagree near a bucket boundary still pick the same bucket.
    let bucket = bucket_of(queue.queue_now_ms().await?, interval);
    // Every flow of the no-op connector is supported; the real connectors' capability matrix
    // will filter here (the scheduler never enqueues what cannot run).
    let specs = heartbeat_specs(targets, &JobKind::by_priority(), bucket, interval);
    let results = queue.enqueue_many(&specs).await?;
    let mut report = HeartbeatReport {
        bucket,
        connections: targets.len(),
        ..HeartbeatReport::default()
    };
    for r in results {
        match r {
            Enqueued::New(_) => report.enqueued += 1,
            Enqueued::Duplicate(_) => report.deduplicated += 1,
            Enqueued::AlreadyOnce => report.already_in_bucket += 1,
        }
    }
    Ok(report)
}

/// Runs the heartbeat at the start of every bucket until `shutdown` resolves. Failures are
/// logged and retried a few seconds later within the same bucket (idempotence makes that safe).
pub async fn run_scheduler(
    queue: Queue,
    pool: PgPool,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let wait = match enqueue_heartbeat(&queue, &pool, interval).await {
            Ok(r) => {
                tracing::info!(
                    bucket = r.bucket,
                    connections = r.connections,
                    enqueued = r.enqueued,
                    deduplicated = r.deduplicated,
                    already_in_bucket = r.already_in_bucket,
                    "heartbeat"
                );
                metrics::counter!("megzo_heartbeat_jobs_enqueued_total")
                    .increment(r.enqueued as u64);
                let interval_ms = interval.as_millis() as u64;
                let now = queue
                    .queue_now_ms()
                    .await
                    .unwrap_or_else(|_| queue.now_ms());
                Duration::from_millis(interval_ms - now % interval_ms)
            }
            Err(e) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "heartbeat failed; retrying in 5 s"
                );
                Duration::from_secs(5)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut shutdown => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_job_per_connection_and_flow_each_with_a_bucket_once_key() {
        let targets = vec![
            (TenantId::new(), ConnectionId::new()),
            (TenantId::new(), ConnectionId::new()),
        ];
        let specs = heartbeat_specs(&targets, &JobKind::ALL, 7, Duration::from_secs(300));
        assert_eq!(specs.len(), 12);
        let members: std::collections::HashSet<_> = specs
            .iter()
            .map(|s| s.once.as_ref().unwrap().member.clone())
            .collect();
        assert_eq!(
            members.len(),
            12,
            "once-keys are distinct per tenant, connection and flow"
        );
        assert!(
            specs
                .iter()
                .all(|s| s.once.as_ref().unwrap().scope == "hb:7")
        );
        assert!(specs.iter().all(|s| s.dedupe_key.is_some()));
    }

    #[test]
    fn buckets_split_time_by_interval() {
        let i = Duration::from_secs(300);
        assert_eq!(bucket_of(0, i), 0);
        assert_eq!(bucket_of(299_999, i), 0);
        assert_eq!(bucket_of(300_000, i), 1);
    }
}
