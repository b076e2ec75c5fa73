//! The queue, the order locks and the rate limiter on a 3-primary Redis Cluster, started locally
//! by `deploy/redis-cluster.sh` (three redis-server processes in cluster mode, joined with
//! `redis-cli --cluster create`).
//!
//! These tests check what is particular to a cluster: that the client really is on one, where
//! the keys land (a queue on one slot, locks and limits spread over the primaries), a whole
//! worker run, the refusals an operator gets for a wrong URL, and a failover of the queue's
//! primary under running workers (on a second cluster with replicas). The queue's core suites
//! (`queue_semantics`, `crash_recovery`, `order_lock`, `queue_smoke`, `run_now`, `heartbeat`,
//! `shared_account`, and the workers' `ratelimit`, `gate`, `wakeups` and `flows_cycle`) run
//! unchanged against the same cluster in `deploy/test.sh`, with `REDIS_URL` set to its URL.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use std::time::Duration;

use canonical::{ConnectionId, TenantId};
use integration_tests::{
    delete_namespace, eventually, job, redis_cluster_url, redis_ha_cluster_url, test_config,
};
use queue_schema::JobKind;
use queue_schema::keys::cluster_slot;
use workers::lock::OrderLock;
use workers::queue::backend::BackendOptions;
use workers::queue::{Queue, QueueConfig};
use workers::ratelimit::{GcraLimiter, RateLimit};
use workers::runtime::{handler, start_worker};

async fn cluster_queue(cfg: QueueConfig) -> Queue {
    Queue::connect(&redis_cluster_url(), cfg)
        .await
        .expect("the local Redis Cluster answers (deploy/redis-cluster.sh up)")
}

/// Slot ranges of each primary, from `CLUSTER SLOTS`: (first, last, "host:port").
async fn slot_owners(q: &Queue) -> Vec<(u16, u16, String)> {
    slot_table(q)
        .await
        .into_iter()
        .map(|(a, b, primary, _)| (a, b, primary))
        .collect()
}

/// `CLUSTER SLOTS`: (first, last, primary "host:port", replicas "host:port").
async fn slot_table(q: &Queue) -> Vec<(u16, u16, String, Vec<String>)> {
    let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut q.connection())
        .await
        .expect("CLUSTER SLOTS");
    slots
        .into_iter()
        .map(|range| {
            // [first, last, [host, port, id, …] of the primary, replicas…]
            let range: Vec<redis::Value> = redis::from_redis_value(range).expect("a slot range");
            let slot = |v: &redis::Value| -> u16 { redis::from_redis_value(v.clone()).unwrap() };
            let node = |v: &redis::Value| -> String {
                let node: Vec<redis::Value> = redis::from_redis_value(v.clone()).unwrap();
                let host: String = redis::from_redis_value(node[0].clone()).unwrap();
                let port: u16 = redis::from_redis_value(node[1].clone()).unwrap();
                format!("{host}:{port}")
            };
            (
                slot(&range[0]),
                slot(&range[1]),
                node(&range[2]),
                range[3..].iter().map(node).collect(),
            )
        })
        .collect()
}

fn owner_of(owners: &[(u16, u16, String)], key: &str) -> String {
    let slot = cluster_slot(key);
    owners
        .iter()
        .find(|(a, b, _)| (*a..=*b).contains(&slot))
        .map(|(_, _, node)| node.clone())
        .unwrap_or_else(|| panic!("no primary owns slot {slot} of {key}"))
}

#[tokio::test]
async fn the_cluster_has_three_primaries_covering_every_slot() {
    let q = cluster_queue(test_config("cluster-topology")).await;
    assert!(q.connection().is_cluster());
    let owners = slot_owners(&q).await;
    let primaries: BTreeSet<_> = owners.iter().map(|(_, _, n)| n.clone()).collect();
    assert_eq!(primaries.len(), 3, "three primaries: {owners:?}");
    let covered: u32 = owners.iter().map(|(a, b, _)| u32::from(b - a) + 1).sum();
    assert_eq!(covered, 16_384, "every slot is served: {owners:?}");
}

#[tokio::test]
async fn a_queue_lives_on_one_slot_while_locks_and_limits_spread_over_the_primaries() {
    let q = cluster_queue(test_config("cluster-keys")).await;
    let owners = slot_owners(&q).await;
    let tenants: Vec<TenantId> = (0..40).map(|_| TenantId::new()).collect();

    // Queue traffic of 40 tenants and every job state the core keys hold.
    let specs: Vec<_> = tenants
        .iter()
        .flat_map(|t| {
            let c = ConnectionId::new();
            [
                job(JobKind::OrderPull, *t, c),
                job(JobKind::StockPush, *t, c),
            ]
        })
        .collect();
    q.enqueue_many(&specs).await.unwrap();
    let leased = q
        .fetch("cluster-keys-worker", 10, &[JobKind::OrderPull], "req-1")
        .await
        .unwrap();
    assert_eq!(leased.len(), 10);

    // An order lock and a rate-limit slot per tenant.
    let mut locks = Vec::new();
    let limiter = GcraLimiter::new(&q, "cdon");
    for t in &tenants {
        let lock = OrderLock::try_acquire(&q, &t.to_string(), "order:x", Duration::from_secs(30))
            .await
            .unwrap()
            .expect("a free lock is taken");
        locks.push(lock);
        limiter
            .try_acquire(
                &t.to_string(),
                "orders",
                RateLimit::new(10, Duration::from_secs(1)),
            )
            .await
            .unwrap();
    }

    let mut conn = q.connection();
    let queue_keys = conn
        .scan_match(&format!("{}*", q.keys().tag()))
        .await
        .unwrap();
    assert!(
        queue_keys.len() > 80,
        "jobs, lists and zsets: {queue_keys:?}"
    );
    let slots: BTreeSet<u16> = queue_keys.iter().map(|k| cluster_slot(k)).collect();
    assert_eq!(
        slots.len(),
        1,
        "every queue key shares the namespace's slot"
    );

    let ns = q.keys().namespace();
    let mut nodes_by_family: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    // Per tenant: a lock and its fence counter; one limiter key.
    for (family, pattern, want) in [
        ("lock", format!("{ns}:lock:*"), 80),
        ("rate", format!("{ns}:rl:*"), 40),
    ] {
        let keys = conn.scan_match(&pattern).await.unwrap();
        assert_eq!(keys.len(), want, "{family}: {keys:?}");
        nodes_by_family.insert(family, keys.iter().map(|k| owner_of(&owners, k)).collect());
    }
    for (family, nodes) in &nodes_by_family {
        assert!(
            nodes.len() >= 2,
            "{family} keys of 40 tenants spread over the primaries, found on {nodes:?}"
        );
    }

    for lock in locks {
        assert!(lock.release().await.unwrap());
    }
    for pattern in [format!("{ns}:lock:*"), format!("{ns}:rl:*")] {
        integration_tests::delete_matching(&mut conn, &pattern)
            .await
            .unwrap();
    }
    delete_namespace(&q).await.unwrap();
}

/// `jobs` stock pushes over 10 tenants, enqueued, then `workers` workers draining them and
/// counting how often each job ran (after `delay` each).
struct Drain {
    runs: Arc<std::sync::Mutex<BTreeMap<String, u32>>>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    workers: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

async fn enqueue_backlog(q: &Queue, jobs: usize) {
    let tenants: Vec<TenantId> = (0..10).map(|_| TenantId::new()).collect();
    let specs: Vec<_> = (0..jobs)
        .map(|i| job(JobKind::StockPush, tenants[i % 10], ConnectionId::new()))
        .collect();
    let res = q.enqueue_many(&specs).await.unwrap();
    assert!(res.iter().all(|r| r.is_new()));
}

impl Drain {
    fn start(q: &Queue, workers: usize, name: &str, delay: Duration) -> Self {
        let runs = Arc::new(std::sync::Mutex::new(BTreeMap::<String, u32>::new()));
        let (mut stops, mut handles) = (Vec::new(), Vec::new());
        for w in 0..workers {
            let runs = runs.clone();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            stops.push(stop_tx);
            let worker = start_worker(
                q.clone(),
                BackendOptions::new(format!("{name}-{w}")),
                handler(move |j: queue_schema::Job| {
                    let runs = runs.clone();
                    async move {
                        tokio::time::sleep(delay).await;
                        *runs.lock().unwrap().entry(j.id.to_string()).or_default() += 1;
                        Ok(())
                    }
                }),
                None,
                async move {
                    let _ = stop_rx.await;
                },
                Duration::from_secs(5),
            );
            handles.push(tokio::spawn(worker.run));
        }
        Self {
            runs,
            stops,
            workers: handles,
        }
    }

    fn ran(&self) -> usize {
        self.runs.lock().unwrap().len()
    }

    /// Waits until every job is acked, stops the workers and checks each job ran exactly once.
    async fn finish(
        self,
        q: &Queue,
        jobs: usize,
        within: Duration,
    ) -> workers::queue::admin::QueueStats {
        let stats = eventually(within, "every job acked", || async {
            let s = q.stats().await.ok()?;
            (s.succeeded_total == jobs as u64 && s.running == 0).then_some(s)
        })
        .await;
        for stop in self.stops {
            let _ = stop.send(());
        }
        for w in self.workers {
            tokio::time::timeout(Duration::from_secs(10), w)
                .await
                .expect("a worker stops within its grace")
                .unwrap()
                .unwrap();
        }
        let runs = std::mem::take(&mut *self.runs.lock().unwrap());
        assert_eq!(runs.len(), jobs, "every job ran");
        let twice: Vec<_> = runs.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "jobs run more than once: {twice:?}");
        stats
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_drain_a_backlog_on_the_cluster_each_job_once() {
    const JOBS: usize = 600;
    let q = cluster_queue(test_config("cluster-drain")).await;
    enqueue_backlog(&q, JOBS).await;
    let drain = Drain::start(&q, 3, "cluster-worker", Duration::ZERO);
    let stats = drain.finish(&q, JOBS, Duration::from_secs(60)).await;
    assert_eq!(stats.dead, 0);
    delete_namespace(&q).await.unwrap();
}

#[tokio::test]
async fn a_wrong_redis_url_is_refused_saying_what_to_write() {
    let url = redis_cluster_url();
    let seed = url
        .trim_start_matches("redis+cluster://")
        .split(',')
        .next()
        .unwrap()
        .to_owned();

    // A cluster node addressed as a single Redis.
    let err = Queue::connect(&format!("redis://{seed}"), test_config("cluster-url"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Redis Cluster node") && err.contains("redis+cluster://"),
        "{err}"
    );

    // A malformed cluster URL.
    let err = Queue::connect("redis+cluster://127.0.0.1", test_config("cluster-url"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("has no port"), "{err}");

    // A cluster whose seeds are all down fails instead of hanging.
    let started = std::time::Instant::now();
    let err = Queue::connect("redis+cluster://127.0.0.1:1", test_config("cluster-url")).await;
    assert!(err.is_err(), "no seed answers");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_of_the_queues_primary_under_running_workers_loses_no_job() {
    const JOBS: usize = 3_000;
    let cfg = test_config("cluster-failover");
    let q = Queue::connect(&redis_ha_cluster_url(), cfg)
        .await
        .expect("the local HA Redis Cluster answers (deploy/redis-cluster.sh)");
    enqueue_backlog(&q, JOBS).await;
    let slot = cluster_slot(&q.keys().leases());
    // The primary of the queue's slot, and a replica of it that is in sync. Asked of the replica
    // itself: after an earlier run's failover, a node's view of the roles lags until gossip
    // has spread them.
    let (old_primary, replica, mut to_replica) = eventually(
        Duration::from_secs(30),
        "a synced replica of the queue's primary",
        || async {
            let (_, _, primary, replicas) = slot_table(&q)
                .await
                .into_iter()
                .find(|(a, b, _, _)| (*a..=*b).contains(&slot))?;
            for replica in replicas {
                let mut c = redis::Client::open(format!("redis://{replica}"))
                    .ok()?
                    .get_multiplexed_async_connection()
                    .await
                    .ok()?;
                if role_of(&mut c).await.as_deref()
                    == Some(&format!("slave of {primary} connected"))
                {
                    return Some((primary, replica, c));
                }
            }
            None
        },
    )
    .await;

    let drain = Drain::start(&q, 2, "failover-worker", Duration::from_millis(2));

    // Mid-drain, the replica of the primary holding the queue's slot takes over (a manual
    // failover, as for maintenance of that node).
    eventually(
        Duration::from_secs(30),
        "a third of the jobs run",
        || async { (drain.ran() >= JOBS / 3).then_some(()) },
    )
    .await;
    let promoted_at = std::time::Instant::now();
    // A manual failover that does not complete in time is aborted by Redis; ask again.
    let mut promoted = false;
    for _ in 0..3 {
        let _: () = redis::cmd("CLUSTER")
            .arg("FAILOVER")
            .query_async(&mut to_replica)
            .await
            .expect("the replica accepts a manual failover");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if role_of(&mut to_replica).await.as_deref() == Some("master") {
                promoted = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if promoted {
            break;
        }
    }
    assert!(promoted, "{replica} did not take over from {old_primary}");
    let run_before = drain.ran();
    eprintln!(
        "failover: {old_primary} -> {replica} in {:?}, {run_before} of {JOBS} jobs run before",
        promoted_at.elapsed(),
    );
    assert!(
        run_before < JOBS,
        "the failover happened while jobs were still running"
    );

    let stats = drain.finish(&q, JOBS, Duration::from_secs(90)).await;
    assert_eq!(stats.dead, 0, "no job died in the failover");
    // SCAN over the primaries works through the changed topology.
    assert!(
        delete_namespace(&q).await.unwrap() > 0,
        "the queue's keys are found"
    );
}

/// `ROLE` of one node: "master", or "slave of host:port <state>".
async fn role_of(c: &mut redis::aio::MultiplexedConnection) -> Option<String> {
    let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(c).await.ok()?;
    let kind: String = redis::from_redis_value(role.first()?.clone()).ok()?;
    if kind != "slave" {
        return Some(kind);
    }
    let host: String = redis::from_redis_value(role.get(1)?.clone()).ok()?;
    let port: u16 = redis::from_redis_value(role.get(2)?.clone()).ok()?;
    let state: String = redis::from_redis_value(role.get(3)?.clone()).ok()?;
    Some(format!("slave of {host}:{port} {state}"))
}
