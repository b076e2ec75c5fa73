//! Every metric the workers export, in one place (the spec is `docs/telemetry.md`). Counters end
//! in `_total`; a retry is counted as a retry, not as a failure.

use std::time::Duration;

use metrics::{counter, gauge, histogram};
use queue_schema::JobKind;

use crate::queue::admin::QueueStats;
use crate::queue::{AckOutcome, AckStatus};

pub fn job_started(kind: JobKind) {
    counter!("megzo_jobs_started_total", "kind" => kind.as_str()).increment(1);
}

/// Called when the handler returns, with the outcome the worker asks for.
pub fn job_finished(kind: JobKind, outcome: &AckOutcome, took: Duration) {
    let result = match outcome {
        AckOutcome::Succeeded => "succeeded",
        AckOutcome::Retry { .. } => "failed",
        AckOutcome::Dead { .. } => "failed",
        AckOutcome::Snooze { .. } => "snoozed",
        AckOutcome::Release => "released",
    };
    histogram!("megzo_job_duration_seconds", "kind" => kind.as_str(), "result" => result)
        .record(took.as_secs_f64());
}

/// Called when the queue applied an ack: the authoritative outcome.
pub fn ack_applied(kind: JobKind, status: AckStatus) {
    let name = match status {
        AckStatus::Succeeded => "megzo_jobs_succeeded_total",
        AckStatus::Retrying => "megzo_jobs_retried_total",
        AckStatus::Dead => "megzo_jobs_dead_total",
        AckStatus::Snoozed => "megzo_jobs_snoozed_total",
        AckStatus::Released => "megzo_jobs_released_total",
        AckStatus::Stale => "megzo_acks_stale_total",
    };
    counter!(name, "kind" => kind.as_str()).increment(1);
}

pub fn job_rescued(kind: JobKind, dead: bool) {
    counter!("megzo_jobs_rescued_total", "kind" => kind.as_str()).increment(1);
    if dead {
        counter!("megzo_jobs_dead_total", "kind" => kind.as_str()).increment(1);
    }
}

pub fn redis_error(op: &'static str) {
    counter!("megzo_redis_errors_total", "op" => op).increment(1);
}

/// Publishes a queue snapshot as gauges.
pub fn queue_stats(s: &QueueStats) {
    for k in &s.kinds {
        gauge!("megzo_queue_depth", "kind" => k.kind.as_str()).set(k.ready as f64);
        gauge!("megzo_queue_oldest_age_seconds", "kind" => k.kind.as_str())
            .set(k.oldest_age_ms as f64 / 1000.0);
    }
    gauge!("megzo_queue_delayed").set(s.delayed as f64);
    gauge!("megzo_queue_running").set(s.running as f64);
    gauge!("megzo_queue_dead").set(s.dead as f64);
    gauge!("megzo_workers_alive").set(s.workers_alive as f64);
}

/// Publishes the freshness of one flow of one tenant (its worst connection): seconds since its
/// last success, and whether some connection never succeeded (then the age counts from that
/// connection's creation).
pub fn flow_freshness(tenant: &str, kind: JobKind, age_secs: f64, never: bool) {
    let labels = [
        ("tenant", tenant.to_owned()),
        ("flow", kind.as_str().to_owned()),
    ];
    gauge!("megzo_flow_freshness_seconds", &labels).set(age_secs);
    gauge!("megzo_flow_never_succeeded", &labels).set(if never { 1.0 } else { 0.0 });
}

/// Counts a call of a wake-up URL by what came of it (`enqueued`, `deduplicated`, `ignored`,
/// `unauthorized`, `unsupported`, `disabled`, `malformed`, `error`).
pub fn wakeup(result: &'static str) {
    counter!("megzo_wakeups_total", "result" => result).increment(1);
}
