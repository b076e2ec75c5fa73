//! The smallest end-to-end proof: jobs enqueued are run once each by an apalis worker on the
//! Redis backend, and the queue ends empty.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use canonical::{ConnectionId, TenantId};
use integration_tests::{eventually, job, queue, test_config};
use queue_schema::JobKind;
use workers::queue::backend::BackendOptions;
use workers::runtime::{handler, start_worker};

#[tokio::test]
async fn enqueued_jobs_run_once_each_and_the_queue_ends_empty() {
    let q = queue(test_config("smoke")).await;
    let (t, c) = (TenantId::new(), ConnectionId::new());
    let specs: Vec<_> = (0..200).map(|_| job(JobKind::StockPush, t, c)).collect();
    let res = q.enqueue_many(&specs).await.unwrap();
    assert!(res.iter().all(|r| r.is_new()));

    let count = Arc::new(AtomicUsize::new(0));
    let c2 = count.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let w = start_worker(
        q.clone(),
        BackendOptions::new("smoke-worker"),
        handler(move |_job| {
            let c = c2.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        }),
        None,
        async move {
            let _ = stop_rx.await;
        },
        Duration::from_secs(5),
    );
    let run = tokio::spawn(w.run);
    eventually(Duration::from_secs(20), "200 jobs run", || async {
        (count.load(Ordering::SeqCst) >= 200).then_some(())
    })
    .await;
    let stats = eventually(Duration::from_secs(5), "all acked", || async {
        let s = q.stats().await.unwrap();
        (s.succeeded_total == 200 && s.running == 0).then_some(s)
    })
    .await;
    assert_eq!(stats.kinds.iter().map(|k| k.ready).sum::<u64>(), 0);
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("worker stops within its grace")
        .unwrap()
        .unwrap();
    assert_eq!(
        count.load(Ordering::SeqCst),
        200,
        "each job ran exactly once"
    );
}
