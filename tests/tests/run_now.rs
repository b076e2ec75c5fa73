//! `Queue::run_delayed_now` (`megzo jobs run-now`): delayed jobs become due at once, keeping
//! their records; nothing else moves.

use canonical::{ConnectionId, TenantId};
use integration_tests::{delete_namespace, job, queue, test_config};
use queue_schema::{JobKind, JobState};

#[tokio::test]
async fn delayed_jobs_run_now_and_keep_their_records() {
    let q = queue(test_config("run-now")).await;
    let (t, c) = (TenantId::new(), ConnectionId::new());
    let later = q.queue_now_ms().await.unwrap() + 3_600_000;
    let delayed: Vec<_> = (0..3)
        .map(|_| job(JobKind::StockPush, t, c).run_at_ms(later))
        .collect();
    q.enqueue_many(&delayed).await.unwrap();
    q.enqueue(&job(JobKind::CatalogPush, t, c)).await.unwrap();

    let fetch = |q: &workers::queue::Queue| {
        let q = q.clone();
        async move {
            q.fetch(
                "w1",
                10,
                &[JobKind::StockPush],
                &uuid::Uuid::new_v4().to_string(),
            )
            .await
            .unwrap()
        }
    };
    assert!(fetch(&q).await.is_empty(), "nothing due for an hour");
    assert_eq!(
        q.ids_in_state(JobState::Scheduled, None, 10)
            .await
            .unwrap()
            .len(),
        3
    );

    assert_eq!(q.run_delayed_now(2).await.unwrap(), 2, "the limit holds");
    assert_eq!(q.run_delayed_now(10).await.unwrap(), 1, "and the rest");
    assert_eq!(q.run_delayed_now(10).await.unwrap(), 0, "nothing left");

    let got = fetch(&q).await;
    assert_eq!(got.len(), 3, "all three run now: {got:?}");
    for j in got {
        let j = j.expect("a readable job");
        assert_eq!(j.kind, JobKind::StockPush);
        assert_eq!(j.attempt, 1, "the attempt count is the job's own");
    }
    let s = q.stats().await.unwrap();
    assert_eq!(s.delayed, 0);
    delete_namespace(&q).await.unwrap();
}
