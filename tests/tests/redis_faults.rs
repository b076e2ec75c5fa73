//! Redis failing under a running worker, with real processes: a private `redis-server` (AOF,
//! `appendfsync always`) is shut down and restarted, or stalled, while an in-process apalis worker
//! drains a backlog. The worker must ride it out without being restarted, and no job may be lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use canonical::{ConnectionId, TenantId};
use integration_tests::{
    RedisServer, TestWorker, eventually, job, live_total, test_config, test_worker_options,
};
use queue_schema::{Job, JobKind};
use workers::queue::{Queue, QueueConfig};
use workers::runtime::handler;

const JOBS: usize = 2_000;

/// A queue on the private server, with a short lease so attempts lost with a reply (a fetch
/// applied by Redis whose answer never arrived) are rescued within the test.
async fn private_queue(server: &RedisServer, test: &str, response_timeout_ms: u64) -> Queue {
    let cfg = QueueConfig {
        lease_ms: 5_000,
        response_timeout_ms,
        ..test_config(test)
    };
    Queue::connect(&server.url(), cfg)
        .await
        .expect("connect to the private redis-server")
}

async fn enqueue_backlog(q: &Queue) {
    let tenants: Vec<_> = (0..50).map(|_| TenantId::new()).collect();
    let c = ConnectionId::new();
    let specs: Vec<_> = (0..JOBS)
        .map(|i| job(JobKind::StockPush, tenants[i % tenants.len()], c))
        .collect();
    let res = q.enqueue_many(&specs).await.unwrap();
    assert!(res.iter().all(|r| r.is_new()));
}

/// Sleeps 2 ms per job and counts runs.
fn slow_handler(runs: Arc<AtomicUsize>) -> workers::runtime::Handler {
    handler(move |_job: Job| {
        let runs = runs.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
}

fn worker_options(id: &str) -> workers::queue::backend::BackendOptions {
    let mut opts = test_worker_options(id);
    opts.concurrency = 16;
    opts.prefetch = 16;
    opts.batch = 16;
    opts.reap_interval = Duration::from_millis(500);
    opts
}

/// Waits until every job succeeded and nothing is left in any state, asserting all along that
/// the worker was never stopped. Stats errors (Redis still coming back) are retried.
async fn wait_all_succeeded(q: &Queue, w: &TestWorker, within: Duration) {
    let s = eventually(within, "every job succeeds", || async {
        assert!(w.alive(), "the worker stopped");
        let s = q.stats().await.ok()?;
        (s.succeeded_total == JOBS as u64).then_some(s)
    })
    .await;
    // Give a just-applied retry of a lost fetch a moment to show; there must be nothing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s2 = q.stats().await.unwrap();
    assert_eq!(s2.succeeded_total, JOBS as u64, "{s2:?}");
    assert_eq!(live_total(&s2), 0, "no job left behind or lost: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_under_a_running_worker_loses_no_job() {
    let mut server = RedisServer::start().await;
    let q = private_queue(&server, "restart", 10_000).await;
    enqueue_backlog(&q).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let w = TestWorker::spawn(
        &q,
        worker_options("restart-worker"),
        slow_handler(runs.clone()),
    );

    eventually(Duration::from_secs(30), "500 jobs run", || async {
        (runs.load(Ordering::SeqCst) >= 500).then_some(())
    })
    .await;
    server.shutdown().await;
    let at_shutdown = runs.load(Ordering::SeqCst);
    assert!(
        at_shutdown < JOBS,
        "the restart must hit a busy queue ({at_shutdown} of {JOBS} had run)"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(w.alive(), "Redis being down does not stop the worker");
    let restarted = Instant::now();
    server.restart().await;

    wait_all_succeeded(&q, &w, Duration::from_secs(45)).await;
    eprintln!(
        "restart: {at_shutdown} runs before the shutdown, {} runs in all, recovered {:?} after the restart",
        runs.load(Ordering::SeqCst),
        restarted.elapsed()
    );
    assert!(runs.load(Ordering::SeqCst) >= JOBS);
    assert!(w.alive());
    w.stop().await;
}

/// `DEBUG SLEEP 4` on the server, running for about 4 s; returns how long the stall lasted.
async fn stall_redis(server: &RedisServer) -> Duration {
    let started = Instant::now();
    let status = server
        .cli_in_background(&["DEBUG", "SLEEP", "4"])
        .wait()
        .await
        .expect("redis-cli DEBUG SLEEP");
    assert!(status.success(), "DEBUG SLEEP failed: {status}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(3_500),
        "the stall happened: {took:?}"
    );
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_stall_shorter_than_the_response_timeout_is_waited_out() {
    let server = RedisServer::start().await;
    let q = private_queue(&server, "stall", 10_000).await;
    enqueue_backlog(&q).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let w = TestWorker::spawn(
        &q,
        worker_options("stall-worker"),
        slow_handler(runs.clone()),
    );
    eventually(Duration::from_secs(30), "300 jobs run", || async {
        (runs.load(Ordering::SeqCst) >= 300).then_some(())
    })
    .await;
    let before = runs.load(Ordering::SeqCst);
    stall_redis(&server).await;
    assert!(before < JOBS, "the stall must hit a busy queue");
    assert!(w.alive());
    wait_all_succeeded(&q, &w, Duration::from_secs(45)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        JOBS,
        "no reply was lost, so every job ran exactly once"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_stall_longer_than_the_response_timeout_is_retried_through() {
    let server = RedisServer::start().await;
    // Calls time out after 1 s while Redis sleeps 4 s: they fail, are retried, and any that Redis
    // applied after the caller gave up are reconciled (stale acks, rescued leases).
    let q = private_queue(&server, "stall-timeout", 1_000).await;
    enqueue_backlog(&q).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let w = TestWorker::spawn(
        &q,
        worker_options("stall-timeout-worker"),
        slow_handler(runs.clone()),
    );
    eventually(Duration::from_secs(30), "300 jobs run", || async {
        (runs.load(Ordering::SeqCst) >= 300).then_some(())
    })
    .await;
    stall_redis(&server).await;
    assert!(
        runs.load(Ordering::SeqCst) < JOBS,
        "the stall must hit a busy queue"
    );
    assert!(w.alive());
    wait_all_succeeded(&q, &w, Duration::from_secs(45)).await;
    w.stop().await;
}
