//! The connectors' call gate over Redis (`workers::gate::RedisGate`): a concurrency limit holds
//! across gates (processes) for the whole call, a rate limit spaces calls, a 429's pause stops
//! every gate of the account, and a wait too long for a job becomes a retryable connector error
//! with the limiter's hint. Counts, not timings, are asserted (besides the pause lower bound).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use connectors::ErrorClass;
use connectors::gate::CallGate;
use workers::gate::RedisGate;
use workers::queue::service::JobError;
use workers::queue::{Queue, QueueConfig};
use workers::ratelimit::{Limit, LimitsConfig, RateLimit};

async fn queue() -> Queue {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let cfg = QueueConfig {
        namespace: format!("t-gate-{}", uuid::Uuid::new_v4().simple()),
        ..QueueConfig::default()
    };
    Queue::connect(&url, cfg)
        .await
        .expect("Redis must be running")
}

#[tokio::test]
async fn concurrency_holds_across_gates_for_the_whole_call() {
    let q = queue().await;
    let limits = vec![("connections", Limit::Concurrency(3))];
    let gates: Vec<Arc<dyn CallGate>> = (0..4)
        .map(|_| {
            Arc::new(RedisGate::with_limits(
                &q,
                "celro",
                "acct-1",
                limits.clone(),
            )) as Arc<dyn CallGate>
        })
        .collect();
    let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for i in 0..24 {
        let gate = gates[i % gates.len()].clone();
        let (now, peak) = (now.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire().await.expect("a slot within the wait");
            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            now.fetch_sub(1, Ordering::SeqCst);
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        peak.load(Ordering::SeqCst),
        3,
        "at most 3 in flight, and the limit was reached"
    );
}

#[tokio::test]
async fn a_pause_from_one_gate_holds_every_gate_of_the_account() {
    let q = queue().await;
    let limits = vec![(
        "api",
        Limit::Rate(RateLimit::new(100, Duration::from_secs(1))),
    )];
    let a = RedisGate::with_limits(&q, "cdon", "acct-2", limits.clone());
    let b = RedisGate::with_limits(&q, "cdon", "acct-2", limits.clone());
    let other = RedisGate::with_limits(&q, "cdon", "acct-3", limits);
    a.penalize(Duration::from_millis(800)).await;
    let start = Instant::now();
    other
        .acquire()
        .await
        .expect("another account is not paused");
    let other_waited = start.elapsed();
    b.acquire().await.expect("after the pause");
    assert!(
        start.elapsed() >= Duration::from_millis(750),
        "b waited {:?}",
        start.elapsed()
    );
    assert!(
        other_waited < Duration::from_millis(750),
        "other waited {other_waited:?}"
    );
}

#[tokio::test]
async fn a_wait_longer_than_a_job_allows_is_retryable_with_the_hint() {
    let q = queue().await;
    let gate = RedisGate::new(&q, "dhl", "acct-4", &LimitsConfig::default())
        .with_max_wait(Duration::from_millis(100));
    gate.penalize(Duration::from_secs(30)).await;
    let e = gate.acquire().await.expect_err("paused for 30 s");
    assert_eq!(e.class(), ErrorClass::Retryable, "{e}");
    let hint = e.retry_after().expect("a hint");
    assert!(
        hint > Duration::from_secs(25) && hint <= Duration::from_secs(31),
        "{hint:?}"
    );
    assert!(e.to_string().contains("acct-4"), "names the account: {e}");
    match JobError::from(e) {
        JobError::Retryable { retry_after, .. } => assert_eq!(retry_after, Some(hint)),
        other => panic!("expected a retry, got {other:?}"),
    }
}

#[test]
fn connector_failures_map_to_queue_outcomes() {
    use connectors::ConnectorError;
    let in_doubt = ConnectorError::in_doubt("dhl", "create_shipment", "timed out");
    assert!(
        matches!(JobError::from(in_doubt), JobError::Permanent { .. }),
        "never retried blindly"
    );
    let refused =
        ConnectorError::permanent("cdon", "accept", "Order has passed fulfillment due date");
    assert!(matches!(
        JobError::from(refused),
        JobError::Permanent { .. }
    ));
    let flaky = ConnectorError::retryable("celro", "getOrders", "HTTP 502");
    assert!(matches!(
        JobError::from(flaky),
        JobError::Retryable {
            retry_after: None,
            ..
        }
    ));
}
