//! The heartbeat enqueuer: idempotent per bucket without a leader, even when replicas fire at the
//! same moment, and scheduling only enabled connections of active tenants.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use canonical::{ConnectionId, Erp, Marketplace, TenantId};
use integration_tests::{queue_with_clock, ready_total, test_config};
use queue_schema::{Job, JobKind, JobPayload, JobState, Trigger};
use sqlx::PgPool;
use workers::db::{add_connection, add_tenant};
use workers::heartbeat::{bucket_of, enqueue_heartbeat, enqueue_heartbeat_for};
use workers::queue::{ManualClock, Queue};

const INTERVAL: Duration = Duration::from_secs(300);

/// The middle of a bucket, so nothing here depends on where the wall clock is.
fn mid_bucket_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(1_750_000_150_000))
}

/// Every ready job's (kind, tenant, connection), with its trigger, read from the job records.
async fn ready_jobs(q: &Queue) -> BTreeMap<(JobKind, TenantId, ConnectionId), Vec<Trigger>> {
    let mut out: BTreeMap<_, Vec<Trigger>> = BTreeMap::new();
    for kind in JobKind::ALL {
        let ids = q
            .ids_in_state(JobState::Ready, Some(kind), 10_000)
            .await
            .unwrap();
        for id in ids {
            let rec = q.job(id).await.unwrap().expect("a ready job has a record");
            let p = JobPayload::from_json(&rec.payload).expect("readable payload");
            out.entry((kind, p.tenant(), p.connection()))
                .or_default()
                .push(p.trigger().clone());
        }
    }
    out
}

async fn lease_all(q: &Queue) -> Vec<Job> {
    let mut all = Vec::new();
    loop {
        let request = uuid::Uuid::new_v4().to_string();
        let got = q
            .fetch("w", 1_000, &JobKind::by_priority(), &request)
            .await
            .unwrap();
        if got.is_empty() {
            return all;
        }
        all.extend(got.into_iter().map(|r| r.expect("readable payload")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_firing_together_enqueue_each_job_once_per_bucket() {
    let clock = mid_bucket_clock();
    let cfg = test_config("heartbeat-race");
    // Two scheduler replicas: separate connections, same namespace and clock.
    let q1 = queue_with_clock(cfg.clone(), clock.clone()).await;
    let q2 = queue_with_clock(cfg, clock.clone()).await;
    let targets: Vec<(TenantId, ConnectionId)> = (0..200)
        .map(|_| (TenantId::new(), ConnectionId::new()))
        .collect();
    let kinds = JobKind::ALL.len();
    let expected = targets.len() * kinds;
    assert_eq!(expected, 1_200);

    let (r1, r2) = tokio::join!(
        enqueue_heartbeat_for(&q1, &targets, INTERVAL),
        enqueue_heartbeat_for(&q2, &targets, INTERVAL)
    );
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    let bucket = bucket_of(clock_now(&clock), INTERVAL);
    assert_eq!((r1.bucket, r2.bucket), (bucket, bucket));
    assert_eq!(r1.enqueued + r2.enqueued, expected, "{r1:?} {r2:?}");
    for r in [&r1, &r2] {
        assert_eq!(r.connections, 200);
        assert_eq!(r.enqueued + r.already_in_bucket, expected, "{r:?}");
        assert_eq!(r.deduplicated, 0, "{r:?}");
    }
    let s = q1.stats().await.unwrap();
    assert_eq!(
        (ready_total(&s), s.enqueued_total),
        (expected as u64, expected as u64),
        "{s:?}"
    );
    let jobs = ready_jobs(&q1).await;
    assert_eq!(jobs.len(), expected, "one job per target and kind");
    for ((kind, t, c), triggers) in &jobs {
        assert!(targets.contains(&(*t, *c)), "{kind} for an unknown target");
        assert_eq!(triggers, &[Trigger::Heartbeat { bucket }]);
    }

    // A third fire in the same bucket adds nothing.
    let r3 = enqueue_heartbeat_for(&q2, &targets, INTERVAL)
        .await
        .unwrap();
    assert_eq!((r3.enqueued, r3.already_in_bucket), (0, expected), "{r3:?}");

    // Next bucket, while the previous jobs still wait: the dedupe keys stand for them.
    clock.advance(INTERVAL);
    let r4 = enqueue_heartbeat_for(&q1, &targets, INTERVAL)
        .await
        .unwrap();
    assert_eq!(
        (r4.bucket, r4.enqueued, r4.deduplicated),
        (bucket + 1, 0, expected),
        "{r4:?}"
    );
    assert_eq!(ready_total(&q1.stats().await.unwrap()), expected as u64);

    // Once workers have started them, the next bucket enqueues a fresh round.
    assert_eq!(lease_all(&q1).await.len(), expected);
    clock.advance(INTERVAL);
    let r5 = enqueue_heartbeat_for(&q2, &targets, INTERVAL)
        .await
        .unwrap();
    assert_eq!((r5.bucket, r5.enqueued), (bucket + 2, expected), "{r5:?}");
}

fn clock_now(clock: &ManualClock) -> u64 {
    use workers::queue::Clock;
    clock.now_ms()
}

#[sqlx::test(migrator = "workers::db::MIGRATOR")]
async fn only_enabled_connections_of_active_tenants_get_heartbeat_jobs(pool: PgPool) {
    let clock = mid_bucket_clock();
    let q = queue_with_clock(test_config("heartbeat-db"), clock.clone()).await;
    let acme = add_tenant(&pool, "acme", "Acme").await.unwrap();
    let beta = add_tenant(&pool, "beta", "Beta").await.unwrap();
    let gone = add_tenant(&pool, "gone", "Gone").await.unwrap();
    let settings = serde_json::json!({});
    let conn = |t: TenantId, m: Marketplace| {
        let (pool, settings) = (pool.clone(), settings.clone());
        async move {
            add_connection(&pool, t, Erp::Noop, m, None, settings)
                .await
                .unwrap()
                .id
        }
    };
    let acme_cdon = conn(acme.id, Marketplace::Cdon).await;
    let acme_celro = conn(acme.id, Marketplace::Celro).await;
    let beta_cdon = conn(beta.id, Marketplace::Cdon).await;
    let gone_cdon = conn(gone.id, Marketplace::Cdon).await;
    sqlx::query("UPDATE connections SET enabled = false WHERE id = $1")
        .bind(acme_celro.0)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE tenants SET active = false WHERE id = $1")
        .bind(gone.id.0)
        .execute(&pool)
        .await
        .unwrap();

    let r = enqueue_heartbeat(&q, &pool, INTERVAL).await.unwrap();
    let kinds = JobKind::ALL.len();
    assert_eq!(r.connections, 2, "{r:?}");
    assert_eq!(r.enqueued, 2 * kinds, "{r:?}");
    let jobs = ready_jobs(&q).await;
    let scheduled: BTreeSet<(TenantId, ConnectionId)> =
        jobs.keys().map(|(_, t, c)| (*t, *c)).collect();
    assert_eq!(
        scheduled,
        BTreeSet::from([(acme.id, acme_cdon), (beta.id, beta_cdon)])
    );
    assert_eq!(
        jobs.len(),
        2 * kinds,
        "every kind for each scheduled connection"
    );
    assert!(
        !scheduled.iter().any(|(_, c)| *c == acme_celro),
        "disabled connection"
    );
    assert!(
        !scheduled.iter().any(|(_, c)| *c == gone_cdon),
        "inactive tenant"
    );

    // Enabling the connection brings it into the next heartbeat.
    sqlx::query("UPDATE connections SET enabled = true WHERE id = $1")
        .bind(acme_celro.0)
        .execute(&pool)
        .await
        .unwrap();
    clock.advance(INTERVAL);
    let r = enqueue_heartbeat(&q, &pool, INTERVAL).await.unwrap();
    assert_eq!(
        (r.connections, r.enqueued, r.deduplicated),
        (3, kinds, 2 * kinds),
        "{r:?}"
    );
}
