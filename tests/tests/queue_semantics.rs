//! The queue's semantics, checked against the real Redis: dedupe and once-keys, priorities,
//! per-tenant caps and round-robin fairness, retry timing, stale acks, rescue of lost leases,
//! bounded promotion, large backlogs and record retention.
//!
//! Time is a [`ManualClock`] wherever leases or delays matter, so every timing assertion is exact
//! and nothing waits for a wall-clock deadline.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use canonical::{ChannelOrderId, ConnectionId, TenantId};
use integration_tests::{
    TestWorker, delete_namespace, eventually, job, live_total, pttl, queue, queue_with_clock,
    ready_total, test_config, test_worker_options, zcard, zscore_ms,
};
use queue_schema::{ErrorClass, Job, JobId, JobKind, JobPayload, JobSpec, OnceKey, Scope, Trigger};
use tokio::sync::mpsc;
use workers::queue::admin::JobRecord;
use workers::queue::service::JobError;
use workers::queue::{
    Ack, AckOutcome, AckStatus, Clock, Enqueued, ManualClock, Queue, QueueConfig,
};
use workers::runtime::handler;

/// Where every manual clock starts: a realistic Unix time in ms.
const T0: u64 = 1_750_000_000_000;

fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(T0))
}

/// Leases up to `want` jobs of `kinds`, asserting every payload was readable.
async fn lease(q: &Queue, worker: &str, want: usize, kinds: &[JobKind]) -> Vec<Job> {
    q.fetch(worker, want, kinds, &uuid::Uuid::new_v4().to_string())
        .await
        .expect("fetch")
        .into_iter()
        .map(|r| r.expect("readable payload"))
        .collect()
}

async fn record(q: &Queue, id: JobId) -> JobRecord {
    q.job(id)
        .await
        .expect("read the job record")
        .unwrap_or_else(|| panic!("job {id} has no record"))
}

fn ack(job: &Job, outcome: AckOutcome) -> Ack {
    Ack {
        id: job.id,
        lease: job.lease,
        attempt: job.attempt,
        outcome,
    }
}

/// The running count of every tenant, as the cap sees it.
async fn running_by_tenant(q: &Queue) -> std::collections::BTreeMap<String, i64> {
    redis::cmd("HGETALL")
        .arg(q.keys().running())
        .query_async(&mut q.connection())
        .await
        .expect("HGETALL running")
}

// ---------------------------------------------------------------------------------------------
// 1. Dedupe and once-keys
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn dedupe_covers_waiting_jobs_only_and_once_keys_enqueue_once() {
    let clock = manual_clock();
    let q = queue_with_clock(test_config("dedupe"), clock.clone()).await;
    let (t, c) = (TenantId::new(), ConnectionId::new());
    let payload = JobPayload::v1(t, c, Scope::All, Trigger::Webhook);
    let spec = || JobSpec::new(JobKind::OrderPull, payload.clone());

    let first = spec();
    let second = spec();
    assert!(first.dedupe_key.is_some() && first.dedupe_key == second.dedupe_key);
    assert_eq!(q.enqueue(&first).await.unwrap(), Enqueued::New(first.id));
    assert_eq!(
        q.enqueue(&second).await.unwrap(),
        Enqueued::Duplicate(first.id)
    );
    // Duplicates inside one batch are caught as well.
    let batch = [spec(), spec()];
    assert_eq!(
        q.enqueue_many(&batch).await.unwrap(),
        [Enqueued::Duplicate(first.id), Enqueued::Duplicate(first.id)]
    );
    let s = q.stats().await.unwrap();
    assert_eq!((ready_total(&s), s.enqueued_total), (1, 1), "{s:?}");
    assert!(
        q.job(second.id).await.unwrap().is_none(),
        "a duplicate creates no record"
    );

    // Once a worker has started the job, the key no longer dedupes: a wake-up that arrives while
    // the pull runs gets its own pull.
    let leased = lease(&q, "w1", 10, &JobKind::by_priority()).await;
    assert_eq!(leased.iter().map(|j| j.id).collect::<Vec<_>>(), [first.id]);
    let third = spec();
    assert_eq!(q.enqueue(&third).await.unwrap(), Enqueued::New(third.id));
    // ... and the new waiting job dedupes the next one.
    assert_eq!(
        q.enqueue(&spec()).await.unwrap(),
        Enqueued::Duplicate(third.id)
    );
    let s = q.stats().await.unwrap();
    assert_eq!(
        (ready_total(&s), s.running, s.enqueued_total),
        (1, 1, 2),
        "{s:?}"
    );

    // A scheduled job is waiting too.
    let order = Scope::Order {
        order: ChannelOrderId::new("A-1").unwrap(),
    };
    let scheduled = || {
        JobSpec::new(
            JobKind::OrderPull,
            JobPayload::v1(t, c, order.clone(), Trigger::Webhook),
        )
        .run_at_ms(T0 + 60_000)
    };
    let s1 = scheduled();
    assert_eq!(q.enqueue(&s1).await.unwrap(), Enqueued::New(s1.id));
    assert_eq!(
        q.enqueue(&scheduled()).await.unwrap(),
        Enqueued::Duplicate(s1.id)
    );

    // Once-keys: the same (scope, member) enqueues once per window, even without a dedupe key.
    let once = OnceKey {
        scope: "hb:1".into(),
        member: "m-1".into(),
        ttl_ms: 60_000,
    };
    let o1 = job(JobKind::StockPush, t, c).once(once.clone());
    let o2 = job(JobKind::StockPush, t, c).once(once.clone());
    assert_eq!(q.enqueue(&o1).await.unwrap(), Enqueued::New(o1.id));
    assert_eq!(q.enqueue(&o2).await.unwrap(), Enqueued::AlreadyOnce);
    let other = OnceKey {
        member: "m-2".into(),
        ..once.clone()
    };
    let pair = [
        job(JobKind::StockPush, t, c).once(other.clone()),
        job(JobKind::StockPush, t, c).once(other),
    ];
    assert_eq!(
        q.enqueue_many(&pair).await.unwrap(),
        [Enqueued::New(pair[0].id), Enqueued::AlreadyOnce],
        "the same once-key twice in one batch"
    );
    let ttl = pttl(&q, &q.keys().once("hb:1")).await;
    assert!(
        ttl > 0 && ttl <= 60_000,
        "the once window expires as a whole: PTTL {ttl}"
    );
    let s = q.stats().await.unwrap();
    assert_eq!(s.enqueued_total, 5, "{s:?}");
}

// ---------------------------------------------------------------------------------------------
// 2. Priorities
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn orders_and_stock_are_served_before_a_catalog_enqueued_earlier() {
    let cfg = QueueConfig {
        tenant_cap: 0,
        ..test_config("priority")
    };
    let q = queue(cfg).await;
    let tenants: Vec<_> = (0..3).map(|_| TenantId::new()).collect();
    let c = ConnectionId::new();
    let catalog: Vec<_> = tenants
        .iter()
        .flat_map(|t| (0..10).map(move |_| job(JobKind::CatalogPush, *t, c)))
        .collect();
    q.enqueue_many(&catalog).await.unwrap();
    let urgent: Vec<_> = (0..3)
        .map(|i| job(JobKind::OrderPull, tenants[i], c))
        .chain((0..3).map(|i| job(JobKind::StockPush, tenants[i], c)))
        .collect();
    q.enqueue_many(&urgent).await.unwrap();
    let urgent_ids: HashSet<JobId> = urgent.iter().map(|s| s.id).collect();

    let got = lease(&q, "w", 10, &JobKind::by_priority()).await;
    assert_eq!(got.len(), 10);
    let kinds: Vec<JobKind> = got.iter().map(|j| j.kind).collect();
    let first_catalog = kinds
        .iter()
        .position(|k| *k == JobKind::CatalogPush)
        .expect("catalog jobs fill the rest");
    assert_eq!(
        first_catalog, 6,
        "all 6 order/stock jobs come before any catalog job: {kinds:?}"
    );
    assert_eq!(
        got[..6].iter().map(|j| j.id).collect::<HashSet<_>>(),
        urgent_ids
    );
    assert!(got[6..].iter().all(|j| j.kind == JobKind::CatalogPush));

    // A later order still jumps the remaining 26 catalog jobs.
    let late = job(JobKind::OrderPull, tenants[0], c);
    q.enqueue(&late).await.unwrap();
    let got = lease(&q, "w", 1, &JobKind::by_priority()).await;
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), [late.id]);
}

// ---------------------------------------------------------------------------------------------
// 3. Per-tenant caps
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_tenant_never_runs_more_than_its_cap_across_kinds() {
    let cfg = QueueConfig {
        tenant_cap: 2,
        ..test_config("cap-mixed")
    };
    let q = queue(cfg).await;
    let (a, b, c) = (TenantId::new(), TenantId::new(), ConnectionId::new());
    let a_jobs: Vec<_> = (0..50).map(|_| job(JobKind::CatalogPush, a, c)).collect();
    q.enqueue_many(&a_jobs).await.unwrap();
    let b_jobs: Vec<_> = (0..3).map(|_| job(JobKind::OrderPull, b, c)).collect();
    q.enqueue_many(&b_jobs).await.unwrap();
    let kinds = JobKind::by_priority();
    let (sa, sb) = (a.to_string(), b.to_string());
    let count = |jobs: &[Job], t: TenantId| jobs.iter().filter(|j| j.payload.tenant() == t).count();

    let first = lease(&q, "w", 10, &kinds).await;
    assert_eq!(
        (count(&first, a), count(&first, b), first.len()),
        (2, 2, 4),
        "each tenant gets its cap of 2, no more"
    );
    assert!(
        first[..2].iter().all(|j| j.kind == JobKind::OrderPull),
        "B's orders first"
    );
    let running = running_by_tenant(&q).await;
    assert_eq!((running[&sa], running[&sb]), (2, 2));

    // Both at the cap: nothing more, however much is asked.
    assert!(lease(&q, "w", 10, &kinds).await.is_empty());

    // Acking one of A's gives A exactly one more slot.
    let a_done = first.iter().find(|j| j.payload.tenant() == a).unwrap();
    assert_eq!(
        q.ack(&[ack(a_done, AckOutcome::Succeeded)]).await.unwrap(),
        [AckStatus::Succeeded]
    );
    let next = lease(&q, "w", 10, &kinds).await;
    assert_eq!(
        (count(&next, a), count(&next, b)),
        (1, 0),
        "one freed slot of A"
    );
    // Acking one of B's lets B's third order run.
    let b_done = first.iter().find(|j| j.payload.tenant() == b).unwrap();
    q.ack(&[ack(b_done, AckOutcome::Succeeded)]).await.unwrap();
    let next = lease(&q, "w", 10, &kinds).await;
    assert_eq!(next.len(), 1);
    assert_eq!(
        (next[0].payload.tenant(), next[0].kind),
        (b, JobKind::OrderPull)
    );
    let running = running_by_tenant(&q).await;
    assert_eq!((running[&sa], running[&sb]), (2, 2));
}

#[tokio::test]
async fn a_big_tenant_at_its_cap_leaves_room_for_others_and_overrides_apply() {
    let cfg = QueueConfig {
        tenant_cap: 2,
        ..test_config("cap-catalog")
    };
    let q = queue(cfg).await;
    let (a, b, c) = (TenantId::new(), TenantId::new(), ConnectionId::new());
    let a_jobs: Vec<_> = (0..50).map(|_| job(JobKind::CatalogPush, a, c)).collect();
    q.enqueue_many(&a_jobs).await.unwrap();
    let b_jobs: Vec<_> = (0..5).map(|_| job(JobKind::CatalogPush, b, c)).collect();
    q.enqueue_many(&b_jobs).await.unwrap();
    let kinds = JobKind::by_priority();
    let count = |jobs: &[Job], t: TenantId| jobs.iter().filter(|j| j.payload.tenant() == t).count();

    let first = lease(&q, "w", 10, &kinds).await;
    assert_eq!(
        (count(&first, a), count(&first, b)),
        (2, 2),
        "each tenant gets its cap of 2"
    );
    assert!(lease(&q, "w", 10, &kinds).await.is_empty());

    // A's own cap overrides the default, both ways.
    q.set_tenant_cap(a, Some(5)).await.unwrap();
    let more_a = lease(&q, "w", 10, &kinds).await;
    assert_eq!(
        (count(&more_a, a), count(&more_a, b)),
        (3, 0),
        "A up to its cap of 5"
    );
    q.set_tenant_cap(b, Some(0)).await.unwrap();
    let more = lease(&q, "w", 10, &kinds).await;
    assert_eq!(
        (count(&more, a), count(&more, b)),
        (0, 3),
        "cap 0 is unlimited: B's other 3"
    );
    // Clearing A's override brings back the default of 2: A runs 5, so it gets nothing until
    // four of its jobs have finished, and then exactly one more.
    q.set_tenant_cap(a, None).await.unwrap();
    assert!(lease(&q, "w", 10, &kinds).await.is_empty());
    let a_running: Vec<&Job> = first
        .iter()
        .chain(&more_a)
        .filter(|j| j.payload.tenant() == a)
        .collect();
    assert_eq!(a_running.len(), 5);
    let done: Vec<Ack> = a_running[..3]
        .iter()
        .map(|j| ack(j, AckOutcome::Succeeded))
        .collect();
    q.ack(&done).await.unwrap();
    assert!(
        lease(&q, "w", 10, &kinds).await.is_empty(),
        "A runs 2 = its cap again"
    );
    q.ack(&[ack(a_running[3], AckOutcome::Succeeded)])
        .await
        .unwrap();
    let last = lease(&q, "w", 10, &kinds).await;
    assert_eq!((count(&last, a), count(&last, b)), (1, 0));
    let running = running_by_tenant(&q).await;
    assert_eq!(running[&a.to_string()], 2);
    assert_eq!(running[&b.to_string()], 5);
}

// ---------------------------------------------------------------------------------------------
// 4. Fairness between tenants of one kind
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_small_tenant_is_not_stuck_behind_a_big_backlog() {
    let cfg = QueueConfig {
        tenant_cap: 0,
        quantum: 8,
        ..test_config("fairness")
    };
    let q = queue(cfg).await;
    let (a, b, c) = (TenantId::new(), TenantId::new(), ConnectionId::new());
    let a_jobs: Vec<_> = (0..1_000)
        .map(|_| job(JobKind::CatalogPush, a, c))
        .collect();
    q.enqueue_many(&a_jobs).await.unwrap();
    let b_jobs: Vec<_> = (0..5).map(|_| job(JobKind::CatalogPush, b, c)).collect();
    q.enqueue_many(&b_jobs).await.unwrap();
    let b_ids: HashSet<JobId> = b_jobs.iter().map(|s| s.id).collect();

    let mut order = Vec::new();
    let mut fetches = 0;
    loop {
        let got = lease(&q, "w", 16, &[JobKind::CatalogPush]).await;
        if got.is_empty() {
            break;
        }
        fetches += 1;
        if fetches == 1 {
            let tenants: Vec<bool> = got.iter().map(|j| j.payload.tenant() == b).collect();
            assert_eq!(got.len(), 16);
            assert!(
                tenants[..8].iter().all(|x| !x) && tenants[8..13].iter().all(|x| *x),
                "A's quantum of 8, then all 5 of B, then A again: {tenants:?}"
            );
        }
        order.extend(got.into_iter().map(|j| j.id));
        assert!(fetches <= 100, "the backlog drains");
    }
    let last_b = order
        .iter()
        .rposition(|id| b_ids.contains(id))
        .expect("B's jobs were leased");
    assert!(
        last_b < 16,
        "all of B within the first fetch of 16, not after A's 1,000 (last at {last_b})"
    );
    assert_eq!(order.len(), 1_005);
    assert_eq!(
        order.iter().collect::<HashSet<_>>().len(),
        1_005,
        "each once"
    );
    delete_namespace(&q).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// 5. Retry timing and failure outcomes, through the real apalis worker
// ---------------------------------------------------------------------------------------------

/// A handler that reports each attempt it sees and returns what `outcome(attempt)` says.
fn recording_handler<F>(tx: mpsc::UnboundedSender<u32>, outcome: F) -> workers::runtime::Handler
where
    F: Fn(u32) -> Result<(), JobError> + Send + Sync + 'static,
{
    let outcome = Arc::new(outcome);
    handler(move |job: Job| {
        let (tx, outcome) = (tx.clone(), outcome.clone());
        async move {
            let _ = tx.send(job.attempt);
            outcome(job.attempt)
        }
    })
}

/// Waits until the job has failed its `attempt`-th attempt and waits in the delayed set; returns
/// its due time. The clock is not moved meanwhile, so the job cannot move on by itself.
async fn wait_retrying(q: &Queue, id: JobId, attempt: u32) -> (JobRecord, u64) {
    eventually(
        Duration::from_secs(10),
        &format!("attempt {attempt} fails and is scheduled for retry"),
        || async {
            let r = q.job(id).await.unwrap()?;
            if r.attempts != attempt || r.state != "retrying" {
                return None;
            }
            let due = zscore_ms(q, &q.keys().delayed(), &id.to_string()).await?;
            Some((r, due))
        },
    )
    .await
}

async fn wait_state(q: &Queue, id: JobId, state: &str) -> JobRecord {
    eventually(
        Duration::from_secs(10),
        &format!("job reaches {state}"),
        || async {
            let r = q.job(id).await.unwrap()?;
            (r.state == state).then_some(r)
        },
    )
    .await
}

#[tokio::test]
async fn retry_delays_follow_the_kinds_full_jitter_backoff() {
    let clock = manual_clock();
    let q = queue_with_clock(test_config("backoff"), clock.clone()).await;
    let spec = job(JobKind::OrderPull, TenantId::new(), ConnectionId::new());
    let id = spec.id;
    q.enqueue(&spec).await.unwrap();
    let (tx, mut seen) = mpsc::unbounded_channel();
    let mut opts = test_worker_options("backoff-worker");
    opts.jitter_seed = Some(42);
    let w = TestWorker::spawn(
        &q,
        opts,
        recording_handler(tx, |_| {
            Err(JobError::retryable(std::io::Error::other(
                "marketplace 503",
            )))
        }),
    );

    let policy = JobKind::OrderPull.policy();
    const FAILURES: u32 = 8;
    let mut delays = Vec::new();
    for attempt in 1..=FAILURES {
        let failed_at = clock.now_ms();
        let (rec, due) = wait_retrying(&q, id, attempt).await;
        assert_eq!(seen.recv().await, Some(attempt), "attempts run in order");
        let ceiling = policy.backoff_ceiling(attempt).as_millis() as u64;
        let delay = due
            .checked_sub(failed_at)
            .unwrap_or_else(|| panic!("attempt {attempt}: due {due} before failure {failed_at}"));
        assert!(
            delay <= ceiling,
            "attempt {attempt}: delay {delay} ms outside [0, {ceiling}] ms"
        );
        let err = rec.errors.last().expect("the failure is recorded");
        assert_eq!(
            (err.attempt, err.class, err.at_ms),
            (attempt, ErrorClass::Retryable, failed_at)
        );
        assert_eq!(err.chain, ["marketplace 503"]);
        assert_eq!(err.worker, "backoff-worker");
        assert_eq!(rec.errors.len(), attempt as usize);
        delays.push(delay);
        if delay > 0 {
            // Not due a millisecond early: the job stays put until its time.
            clock.set(due - 1);
            tokio::time::sleep(Duration::from_millis(50)).await;
            let r = record(&q, id).await;
            assert_eq!(
                (r.attempts, r.state.as_str()),
                (attempt, "retrying"),
                "attempt {attempt}: ran before it was due"
            );
        }
        clock.set(due);
    }
    for attempt in 1..FAILURES {
        assert_eq!(
            policy.backoff_ceiling(attempt + 1),
            policy.backoff_ceiling(attempt) * 2,
            "ceilings double below the cap"
        );
    }
    assert!(
        delays
            .iter()
            .zip(1..)
            .any(|(d, a)| *d > 0 && *d < policy.backoff_ceiling(a).as_millis() as u64),
        "delays are jittered, not fixed: {delays:?}"
    );
    let s = q.stats().await.unwrap();
    assert_eq!(s.retried_total, u64::from(FAILURES));
    assert!(w.alive());
    w.stop().await;
}

#[tokio::test]
async fn a_retry_after_hint_is_used_exactly() {
    let clock = manual_clock();
    let q = queue_with_clock(test_config("retry-after"), clock.clone()).await;
    let spec = job(JobKind::StockPush, TenantId::new(), ConnectionId::new());
    q.enqueue(&spec).await.unwrap();
    let (tx, mut seen) = mpsc::unbounded_channel();
    let w = TestWorker::spawn(
        &q,
        test_worker_options("retry-after-worker"),
        recording_handler(tx, |attempt| {
            if attempt == 1 {
                Err(JobError::retry_after(
                    std::io::Error::other("429 Too Many Requests"),
                    Duration::from_secs(7),
                ))
            } else {
                Ok(())
            }
        }),
    );
    let failed_at = clock.now_ms();
    let (rec, due) = wait_retrying(&q, spec.id, 1).await;
    assert_eq!(due, failed_at + 7_000, "due exactly now + 7 s");
    assert_eq!(rec.errors[0].retry_after_ms, Some(7_000));
    assert_eq!(rec.errors[0].class, ErrorClass::Retryable);
    clock.advance(Duration::from_millis(7_000));
    eventually(Duration::from_secs(10), "the retry succeeds", || async {
        (q.stats().await.unwrap().succeeded_total == 1).then_some(())
    })
    .await;
    assert_eq!(seen.recv().await, Some(1));
    assert_eq!(seen.recv().await, Some(2));
    w.stop().await;
}

/// An error with a source, so the recorded chain has two links.
#[derive(Debug)]
struct Rejected(std::io::Error);

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("marketplace rejected the listing")
    }
}

impl std::error::Error for Rejected {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[tokio::test]
async fn a_permanent_error_is_dead_after_one_attempt_with_its_error_chain() {
    let clock = manual_clock();
    let q = queue_with_clock(test_config("permanent"), clock.clone()).await;
    let spec = job(JobKind::CatalogPush, TenantId::new(), ConnectionId::new());
    q.enqueue(&spec).await.unwrap();
    let (tx, mut seen) = mpsc::unbounded_channel();
    let w = TestWorker::spawn(
        &q,
        test_worker_options("permanent-worker"),
        recording_handler(tx, |_| {
            Err(JobError::permanent(Rejected(std::io::Error::other(
                "EAN 123 is not valid",
            ))))
        }),
    );
    let rec = wait_state(&q, spec.id, "dead").await;
    assert_eq!(rec.attempts, 1);
    assert_eq!(rec.errors.len(), 1);
    let e = &rec.errors[0];
    assert_eq!((e.attempt, e.class), (1, ErrorClass::Permanent));
    assert_eq!(
        e.chain,
        ["marketplace rejected the listing", "EAN 123 is not valid"]
    );
    let s = q.stats().await.unwrap();
    assert_eq!(
        (s.dead, s.delayed, s.running, s.retried_total),
        (1, 0, 0, 0),
        "{s:?}"
    );
    assert_eq!(q.outbox_peek(10).await.unwrap(), [spec.id]);
    // No second attempt, even much later.
    clock.advance(Duration::from_secs(3_600));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(seen.recv().await, Some(1));
    assert!(seen.try_recv().is_err(), "a dead job never runs again");
    w.stop().await;
}

#[tokio::test]
async fn a_job_out_of_attempts_is_dead_with_every_attempts_error() {
    let clock = manual_clock();
    let q = queue_with_clock(test_config("exhausted"), clock.clone()).await;
    let spec = job(JobKind::AwbPush, TenantId::new(), ConnectionId::new()).max_attempts(3);
    q.enqueue(&spec).await.unwrap();
    let (tx, mut seen) = mpsc::unbounded_channel();
    let w = TestWorker::spawn(
        &q,
        test_worker_options("exhausted-worker"),
        recording_handler(tx, |attempt| {
            Err(JobError::retryable(std::io::Error::other(format!(
                "courier down ({attempt})"
            ))))
        }),
    );
    for attempt in 1..=2 {
        let (_, due) = wait_retrying(&q, spec.id, attempt).await;
        clock.set(due + 1);
    }
    let rec = wait_state(&q, spec.id, "dead").await;
    assert_eq!((rec.attempts, rec.max_attempts), (3, 3));
    let got: Vec<(u32, ErrorClass, Vec<String>)> = rec
        .errors
        .iter()
        .map(|e| (e.attempt, e.class, e.chain.clone()))
        .collect();
    let want: Vec<(u32, ErrorClass, Vec<String>)> = (1..=3)
        .map(|a| {
            (
                a,
                ErrorClass::Retryable,
                vec![format!("courier down ({a})")],
            )
        })
        .collect();
    assert_eq!(got, want, "three errors, in attempt order");
    let s = q.stats().await.unwrap();
    assert_eq!(
        (s.dead, s.delayed, s.running, s.retried_total, s.dead_total),
        (1, 0, 0, 2, 1),
        "{s:?}"
    );
    assert!(
        zscore_ms(&q, &q.keys().dead(), &spec.id.to_string())
            .await
            .is_some()
    );
    for a in 1..=3 {
        assert_eq!(seen.recv().await, Some(a));
    }
    w.stop().await;
}

#[tokio::test]
async fn a_snooze_gives_the_attempt_back() {
    let clock = manual_clock();
    let q = queue_with_clock(test_config("snooze"), clock.clone()).await;
    let spec = job(JobKind::InvoiceAttach, TenantId::new(), ConnectionId::new()).max_attempts(1);
    q.enqueue(&spec).await.unwrap();
    let snoozes = Arc::new(AtomicUsize::new(0));
    let n = snoozes.clone();
    let (tx, mut seen) = mpsc::unbounded_channel();
    let w = TestWorker::spawn(
        &q,
        test_worker_options("snooze-worker"),
        recording_handler(tx, move |_| {
            // Snooze twice (the invoice is not issued yet), then succeed.
            if n.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(JobError::Snooze(Duration::from_secs(60)))
            } else {
                Ok(())
            }
        }),
    );
    for round in 1..=2 {
        assert_eq!(seen.recv().await, Some(1), "run {round} is attempt 1");
        let due = clock.now_ms() + 60_000;
        let rec = eventually(
            Duration::from_secs(10),
            "the snooze is recorded",
            || async {
                let r = q.job(spec.id).await.unwrap()?;
                let at = zscore_ms(&q, &q.keys().delayed(), &spec.id.to_string()).await;
                (r.state == "retrying" && at == Some(due)).then_some(r)
            },
        )
        .await;
        assert_eq!(rec.attempts, 0, "the attempt was given back");
        assert!(rec.errors.is_empty(), "a snooze is not a failure");
        clock.set(due);
    }
    eventually(Duration::from_secs(10), "the job succeeds", || async {
        (q.stats().await.unwrap().succeeded_total == 1).then_some(())
    })
    .await;
    // With max_attempts 1, two snoozes did not use up the only attempt.
    assert_eq!(seen.recv().await, Some(1), "the third run is attempt 1 too");
    let s = q.stats().await.unwrap();
    assert_eq!((s.dead, s.retried_total), (0, 0), "{s:?}");
    w.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 6, 7. Lost leases: stale acks and rescue to dead
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_ack_after_the_lease_was_rescued_is_stale_and_changes_nothing() {
    let clock = manual_clock();
    let q = queue_with_clock(test_config("stale-ack"), clock.clone()).await;
    let spec = job(JobKind::OrderPull, TenantId::new(), ConnectionId::new());
    q.enqueue(&spec).await.unwrap();
    let kinds = JobKind::by_priority();

    let first = lease(&q, "w-old", 1, &kinds).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempt, 1);
    assert!(q.reap(100).await.unwrap().is_empty(), "the lease is fresh");

    clock.advance(Duration::from_millis(q.config().lease_ms + 1));
    let reaped = q.reap(100).await.unwrap();
    assert_eq!(reaped.len(), 1);
    let r = &reaped[0];
    assert_eq!(
        (
            r.id,
            r.dead,
            r.attempt,
            r.worker.as_str(),
            r.lease_started_ms
        ),
        (spec.id, false, 1, "w-old", T0)
    );
    let rec = record(&q, spec.id).await;
    assert_eq!(
        (rec.state.as_str(), rec.attempts),
        ("ready", 1),
        "attempt count kept"
    );
    assert_eq!(rec.errors.len(), 1);
    assert_eq!(
        (rec.errors[0].attempt, rec.errors[0].class),
        (1, ErrorClass::Lost)
    );
    assert!(
        rec.errors[0].chain[0].contains("w-old"),
        "{:?}",
        rec.errors[0]
    );

    // The old holder wakes up and acks: refused, nothing changed.
    let before = q.stats().await.unwrap();
    for outcome in [
        AckOutcome::Succeeded,
        AckOutcome::Release,
        AckOutcome::Snooze { delay_ms: 0 },
    ] {
        assert_eq!(
            q.ack(&[ack(&first[0], outcome)]).await.unwrap(),
            [AckStatus::Stale]
        );
    }
    assert_eq!(q.stats().await.unwrap(), before);
    assert_eq!(record(&q, spec.id).await, rec);
    assert!(
        running_by_tenant(&q).await.is_empty(),
        "no slot double-freed"
    );

    // The next fetch runs attempt 2; the old holder's ack still cannot touch it.
    let second = lease(&q, "w-new", 1, &kinds).await;
    assert_eq!((second[0].id, second[0].attempt), (spec.id, 2));
    assert_eq!(
        q.ack(&[ack(&first[0], AckOutcome::Succeeded)])
            .await
            .unwrap(),
        [AckStatus::Stale]
    );
    let s = q.stats().await.unwrap();
    assert_eq!((s.running, s.succeeded_total), (1, 0));
    assert_eq!(
        q.ack(&[ack(&second[0], AckOutcome::Succeeded)])
            .await
            .unwrap(),
        [AckStatus::Succeeded]
    );
    let s = q.stats().await.unwrap();
    assert_eq!((s.running, s.succeeded_total, live_total(&s)), (0, 1, 0));
}

#[tokio::test]
async fn a_job_whose_lease_expires_on_every_attempt_ends_dead_and_in_the_outbox() {
    let clock = manual_clock();
    let q = queue_with_clock(test_config("reap-dead"), clock.clone()).await;
    let spec = job(JobKind::StockPush, TenantId::new(), ConnectionId::new()).max_attempts(2);
    q.enqueue(&spec).await.unwrap();
    let kinds = JobKind::by_priority();
    let lease_ms = q.config().lease_ms;

    for attempt in 1..=2u32 {
        let got = lease(&q, &format!("w{attempt}"), 1, &kinds).await;
        assert_eq!(
            got.iter().map(|j| (j.id, j.attempt)).collect::<Vec<_>>(),
            [(spec.id, attempt)]
        );
        clock.advance(Duration::from_millis(lease_ms + 1));
        let reaped = q.reap(100).await.unwrap();
        assert_eq!(reaped.len(), 1);
        assert_eq!(
            (reaped[0].attempt, reaped[0].dead),
            (attempt, attempt == 2),
            "the last lost attempt kills the job"
        );
    }
    let s = q.stats().await.unwrap();
    assert_eq!(
        (
            s.dead,
            s.running,
            s.delayed,
            ready_total(&s),
            s.rescued_total
        ),
        (1, 0, 0, 0, 2),
        "{s:?}"
    );
    let rec = record(&q, spec.id).await;
    assert_eq!(rec.state, "dead");
    assert_eq!(
        rec.errors
            .iter()
            .map(|e| (e.attempt, e.class, e.worker.as_str()))
            .collect::<Vec<_>>(),
        [(1, ErrorClass::Lost, "w1"), (2, ErrorClass::Lost, "w2")]
    );
    assert_eq!(q.outbox_peek(10).await.unwrap(), [spec.id]);
    assert!(
        lease(&q, "w3", 1, &kinds).await.is_empty(),
        "dead is not fetched"
    );
    assert!(running_by_tenant(&q).await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// 8, 9. Large backlogs
// ---------------------------------------------------------------------------------------------

const BIG: usize = 20_000;

fn big_backlog(run_at_ms: Option<u64>) -> Vec<JobSpec> {
    // 100 tenants, so the default per-tenant cap of 8 never limits a worker of 64.
    let tenants: Vec<_> = (0..100).map(|_| TenantId::new()).collect();
    let c = ConnectionId::new();
    (0..BIG)
        .map(|i| {
            let s = job(JobKind::StockPush, tenants[i % tenants.len()], c);
            match run_at_ms {
                Some(at) => s.run_at_ms(at),
                None => s,
            }
        })
        .collect()
}

fn counting_handler(count: Arc<AtomicUsize>) -> workers::runtime::Handler {
    handler(move |_job: Job| {
        let count = count.clone();
        async move {
            count.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_due_jobs_drain_through_one_worker() {
    let q = queue(test_config("drain-20k")).await;
    let res = q.enqueue_many(&big_backlog(None)).await.unwrap();
    assert!(res.iter().all(Enqueued::is_new));
    assert_eq!(ready_total(&q.stats().await.unwrap()), BIG as u64);

    let count = Arc::new(AtomicUsize::new(0));
    let mut opts = test_worker_options("drain-worker");
    opts.concurrency = 64;
    let started = Instant::now();
    let w = TestWorker::spawn(&q, opts, counting_handler(count.clone()));
    let s = eventually(Duration::from_secs(45), "20,000 jobs succeed", || async {
        assert!(w.alive(), "the worker stopped while draining");
        let s = q.stats().await.unwrap();
        (s.succeeded_total == BIG as u64).then_some(s)
    })
    .await;
    let took = started.elapsed();
    assert_eq!(
        (ready_total(&s), s.running, s.dead, s.delayed),
        (0, 0, 0, 0),
        "{s:?}"
    );
    assert_eq!(count.load(Ordering::Relaxed), BIG, "each job ran once");
    assert!(w.alive(), "no fetch ever ended the worker");
    eprintln!("20,000 jobs drained in {took:?}");
    w.stop().await;
    delete_namespace(&q).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_of_due_jobs_is_bounded_per_fetch_and_still_drains() {
    let clock = manual_clock();
    let cfg = QueueConfig {
        max_promote: 100,
        ..test_config("promote")
    };
    let q = queue_with_clock(cfg, clock.clone()).await;
    q.enqueue_many(&big_backlog(Some(T0 + 1_000)))
        .await
        .unwrap();
    let s = q.stats().await.unwrap();
    assert_eq!((s.delayed, ready_total(&s)), (BIG as u64, 0));
    assert!(
        lease(&q, "w", 10, &[JobKind::StockPush]).await.is_empty(),
        "nothing is due yet"
    );
    clock.advance(Duration::from_secs(2));

    let delayed_key = q.keys().delayed();
    let mut leased = Vec::new();
    for round in 1..=3u64 {
        let got = lease(&q, "w", 1, &[JobKind::StockPush]).await;
        assert_eq!(got.len(), 1);
        leased.extend(got);
        assert_eq!(
            zcard(&q, &delayed_key).await,
            BIG as u64 - 100 * round,
            "fetch {round} promoted exactly max_promote"
        );
        let s = q.stats().await.unwrap();
        assert_eq!(ready_total(&s), 100 * round - round);
    }
    let acks: Vec<Ack> = leased
        .iter()
        .map(|j| ack(j, AckOutcome::Succeeded))
        .collect();
    q.ack(&acks).await.unwrap();

    let count = Arc::new(AtomicUsize::new(0));
    let w = TestWorker::spawn(
        &q,
        test_worker_options("promote-worker"),
        counting_handler(count.clone()),
    );
    let s = eventually(
        Duration::from_secs(45),
        "every promoted job runs",
        || async {
            assert!(w.alive(), "the worker stopped while draining");
            let s = q.stats().await.unwrap();
            (s.succeeded_total == BIG as u64).then_some(s)
        },
    )
    .await;
    assert_eq!(live_total(&s), 0, "{s:?}");
    assert_eq!(count.load(Ordering::Relaxed), BIG - 3);
    w.stop().await;
    delete_namespace(&q).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// 10. Retention
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn succeeded_job_records_expire_after_the_retention() {
    let cfg = QueueConfig {
        retention_ms: 1_000,
        ..test_config("retention")
    };
    let q = queue(cfg).await;
    let spec = job(JobKind::OrderPull, TenantId::new(), ConnectionId::new());
    q.enqueue(&spec).await.unwrap();
    let key = q.keys().job(&spec.id.to_string());
    assert_eq!(pttl(&q, &key).await, -1, "a waiting job does not expire");
    let got = lease(&q, "w", 1, &JobKind::by_priority()).await;
    assert_eq!(pttl(&q, &key).await, -1, "a running job does not expire");
    assert_eq!(
        q.ack(&[ack(&got[0], AckOutcome::Succeeded)]).await.unwrap(),
        [AckStatus::Succeeded]
    );
    let ttl = pttl(&q, &key).await;
    assert!(ttl > 0 && ttl <= 1_000, "PTTL {ttl} after success");
    assert_eq!(record(&q, spec.id).await.state, "succeeded");

    // With retention 0 the record goes at once.
    let q0 = queue(QueueConfig {
        retention_ms: 0,
        ..q.config().clone()
    })
    .await;
    let spec = job(JobKind::OrderPull, TenantId::new(), ConnectionId::new());
    q0.enqueue(&spec).await.unwrap();
    let got = lease(&q0, "w", 1, &JobKind::by_priority()).await;
    q0.ack(&[ack(&got[0], AckOutcome::Succeeded)])
        .await
        .unwrap();
    assert!(q0.job(spec.id).await.unwrap().is_none());
}

// ---------------------------------------------------------------------------------------------
// Review follow-ups: dedupe after rescue, lease renewal by the holder only, per-kind scan budget
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_rescued_job_waits_with_its_dedupe_key_again() {
    let clock = manual_clock();
    let q = queue_with_clock(test_config("dedupe-rescue"), clock.clone()).await;
    let (t, c) = (TenantId::new(), ConnectionId::new());
    let spec = || {
        JobSpec::new(
            JobKind::OrderPull,
            JobPayload::v1(t, c, Scope::All, Trigger::Webhook),
        )
    };
    let Enqueued::New(id) = q.enqueue(&spec()).await.unwrap() else {
        panic!("first enqueue creates the job");
    };
    assert_eq!(lease(&q, "w1", 1, &[JobKind::OrderPull]).await.len(), 1);
    clock.advance(Duration::from_millis(q.config().lease_ms + 1));
    let reaped = q.reap(10).await.unwrap();
    assert_eq!(reaped.len(), 1);
    assert!(!reaped[0].dead);
    assert_eq!(
        q.enqueue(&spec()).await.unwrap(),
        Enqueued::Duplicate(id),
        "the rescued job waits again, so the same work is not queued twice"
    );
    assert_eq!(ready_total(&q.stats().await.unwrap()), 1);
    delete_namespace(&q).await.unwrap();
}

#[tokio::test]
async fn a_stalled_former_holder_cannot_extend_the_new_holders_lease() {
    let clock = manual_clock();
    let q = queue_with_clock(test_config("renew-holder"), clock.clone()).await;
    let (t, c) = (TenantId::new(), ConnectionId::new());
    q.enqueue(&job(JobKind::StockPush, t, c)).await.unwrap();
    let first = lease(&q, "w1", 1, &[JobKind::StockPush]).await;
    let id = first[0].id;
    clock.advance(Duration::from_millis(q.config().lease_ms + 1));
    assert_eq!(q.reap(10).await.unwrap().len(), 1);
    let second = lease(&q, "w2", 1, &[JobKind::StockPush]).await;
    assert_eq!(second[0].attempt, 2);
    let leases = q.keys().leases();
    let w2_deadline = zscore_ms(&q, &leases, &id.to_string()).await.unwrap();
    clock.advance(Duration::from_secs(5));
    assert_eq!(
        q.renew("w1", &[(id, first[0].lease)]).await.unwrap(),
        0,
        "w1 no longer holds it"
    );
    assert_eq!(
        zscore_ms(&q, &leases, &id.to_string()).await.unwrap(),
        w2_deadline,
        "the lease keeps w2's deadline, so if w2 dies the job is rescued on time"
    );
    assert_eq!(
        q.renew("w2", &[(id, first[0].lease)]).await.unwrap(),
        0,
        "not with w1's lease generation"
    );
    assert_eq!(q.renew("w2", &[(id, second[0].lease)]).await.unwrap(), 1);
    assert!(zscore_ms(&q, &leases, &id.to_string()).await.unwrap() > w2_deadline);
    delete_namespace(&q).await.unwrap();
}

#[tokio::test]
async fn capped_tenants_in_one_kind_do_not_use_up_the_scan_budget_of_the_next() {
    let cfg = QueueConfig {
        tenant_cap: 1,
        max_scan: 4,
        ..test_config("scan-budget")
    };
    let q = queue(cfg).await;
    let c = ConnectionId::new();
    // Ten tenants, each running one order pull (at its cap of 1) with one more waiting.
    let tenants: Vec<TenantId> = (0..10).map(|_| TenantId::new()).collect();
    for t in &tenants {
        q.enqueue_many(&[
            job(JobKind::OrderPull, *t, c),
            job(JobKind::OrderPull, *t, c),
        ])
        .await
        .unwrap();
    }
    let mut running = 0;
    while running < 10 {
        let got = lease(&q, "w", 10, &[JobKind::OrderPull]).await;
        assert!(!got.is_empty(), "every tenant gets its one slot");
        running += got.len();
    }
    let other = TenantId::new();
    q.enqueue(&job(JobKind::CatalogPush, other, c))
        .await
        .unwrap();
    let got = lease(&q, "w", 1, &JobKind::by_priority()).await;
    assert_eq!(
        got.len(),
        1,
        "the catalog job of an uncapped tenant is served"
    );
    assert_eq!(got[0].kind, JobKind::CatalogPush);
    delete_namespace(&q).await.unwrap();
}

#[tokio::test]
async fn a_resent_ack_of_an_older_lease_cannot_touch_the_new_one() {
    let clock = manual_clock();
    let q = queue_with_clock(test_config("ack-generation"), clock.clone()).await;
    let (t, c) = (TenantId::new(), ConnectionId::new());
    q.enqueue(&job(JobKind::OrderPull, t, c)).await.unwrap();
    let first = lease(&q, "w1", 1, &[JobKind::OrderPull]).await;
    let snooze = ack(&first[0], AckOutcome::Snooze { delay_ms: 0 });
    assert_eq!(
        q.ack(std::slice::from_ref(&snooze)).await.unwrap(),
        [AckStatus::Snoozed]
    );
    clock.advance(Duration::from_millis(1));
    let second = lease(&q, "w2", 1, &[JobKind::OrderPull]).await;
    assert_eq!(second[0].attempt, 1, "a snooze gives the attempt back");
    assert!(
        second[0].lease > first[0].lease,
        "but never the lease generation"
    );
    // w1's snooze is delivered a second time (its first reply was lost and it was resent).
    assert_eq!(q.ack(&[snooze]).await.unwrap(), [AckStatus::Stale]);
    let leases = q.keys().leases();
    assert!(
        zscore_ms(&q, &leases, &second[0].id.to_string())
            .await
            .is_some(),
        "w2 still holds its lease"
    );
    assert_eq!(
        q.ack(&[ack(&second[0], AckOutcome::Succeeded)])
            .await
            .unwrap(),
        [AckStatus::Succeeded]
    );
    delete_namespace(&q).await.unwrap();
}

#[tokio::test]
async fn a_fetch_retried_with_its_request_id_gets_the_same_jobs_back() {
    let q = queue(test_config("fetch-idempotent")).await;
    let (t, c) = (TenantId::new(), ConnectionId::new());
    let specs: Vec<_> = (0..5).map(|_| job(JobKind::StockPush, t, c)).collect();
    q.enqueue_many(&specs).await.unwrap();
    let first = q
        .fetch("w1", 3, &[JobKind::StockPush], "req-1")
        .await
        .unwrap();
    // The reply was lost; the worker retries the same request.
    let again = q
        .fetch("w1", 3, &[JobKind::StockPush], "req-1")
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(first.len(), 3);
    let s = q.stats().await.unwrap();
    assert_eq!(
        (s.running, ready_total(&s)),
        (3, 2),
        "nothing leased twice: {s:?}"
    );
    let next = q
        .fetch("w1", 3, &[JobKind::StockPush], "req-2")
        .await
        .unwrap();
    assert_eq!(next.len(), 2, "a new request leases the rest");
    delete_namespace(&q).await.unwrap();
}

#[tokio::test]
async fn settings_that_would_break_a_script_are_refused_by_name() {
    for (cfg, key) in [
        (
            QueueConfig {
                quantum: 9_000,
                ..test_config("cfg")
            },
            "quantum",
        ),
        (
            QueueConfig {
                quantum: 0,
                ..test_config("cfg")
            },
            "quantum",
        ),
        (
            QueueConfig {
                max_promote: 0,
                ..test_config("cfg")
            },
            "max_promote",
        ),
        (
            QueueConfig {
                max_scan: 0,
                ..test_config("cfg")
            },
            "max_scan",
        ),
        (
            QueueConfig {
                lease_ms: 10,
                ..test_config("cfg")
            },
            "lease_ms",
        ),
    ] {
        let err = Queue::connect(&integration_tests::redis_url(), cfg)
            .await
            .expect_err("refused");
        assert!(err.to_string().contains(&format!("queue.{key}")), "{err}");
    }
}

#[tokio::test]
async fn the_memory_of_queued_jobs_is_reported() {
    let q = queue(test_config("memory")).await;
    assert_eq!(
        q.sampled_job_bytes(20).await.unwrap(),
        None,
        "nothing queued"
    );
    let (t, c) = (TenantId::new(), ConnectionId::new());
    let specs: Vec<_> = (0..10).map(|_| job(JobKind::CatalogPush, t, c)).collect();
    q.enqueue_many(&specs).await.unwrap();
    let bytes = q
        .sampled_job_bytes(20)
        .await
        .unwrap()
        .expect("jobs are queued");
    // A job record holds its payload (about 200 bytes of JSON) and a dozen fields.
    assert!((200..4_000).contains(&bytes), "{bytes} B per job record");
    delete_namespace(&q).await.unwrap();
}
