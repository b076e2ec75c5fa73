//! Crash tests: real worker processes (the `test-worker` binary) on the real Redis, killed with
//! SIGKILL mid-job, killed by their own job, or stopped with SIGTERM.
//!
//! What they prove (the apalis-redis defects of job-queues.md §A6 they are measured against):
//! - a job whose worker was SIGKILLed is rescued by another worker once its lease expires, and
//!   the crashed attempt counts (`attempts == 2`, an error of class `lost` naming the dead worker);
//! - the rescue needs no other live worker: the same worker id restarted rescues it too;
//! - a job that kills every worker that runs it ends dead after `max_attempts` instead of looping,
//!   and does not take the rest of the queue with it;
//! - SIGTERM drains: running jobs finish, leased-but-unstarted jobs go back to the ready queue
//!   with their attempt given back, and nothing stays leased.

use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use canonical::{ConnectionId, TenantId};
use integration_tests::{delete_namespace, eventually, order_job, queue, test_config};
use queue_schema::{ErrorClass, JobId, JobKind};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use workers::queue::Queue;

const BIN: &str = env!("CARGO_BIN_EXE_test-worker");

/// A `test-worker` child process and the lines it printed on stdout.
struct WorkerProc {
    id: String,
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl WorkerProc {
    /// Starts a worker on namespace `ns` with id `id`; `env` overrides `LEASE_MS` etc.
    fn spawn(ns: &str, id: &str, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.env("REDIS_URL", integration_tests::redis_url())
            .env("QUEUE_NS", ns)
            .env("WORKER_ID", id)
            .env(
                "RUST_LOG",
                std::env::var("TEST_WORKER_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn the test-worker binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        let tag = id.to_owned();
        tokio::spawn(async move {
            let mut r = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = r.next_line().await {
                eprintln!("[{tag}] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            id: id.to_owned(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("the worker has not been reaped yet")
    }

    /// Waits until the worker printed `started <id> attempt <n>`; returns `n`.
    async fn wait_started(&mut self, id: JobId, within: Duration) -> u32 {
        let prefix = format!("started {id} attempt ");
        let found = |seen: &[String]| {
            seen.iter()
                .find_map(|l| l.strip_prefix(&prefix).map(|n| n.trim().parse::<u32>()))
        };
        if let Some(n) = found(&self.seen) {
            return n.expect("attempt number");
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line);
                    if let Some(n) = found(&self.seen[self.seen.len() - 1..]) {
                        return n.expect("attempt number");
                    }
                }
                Ok(None) => panic!(
                    "worker {} exited before starting job {id}; it printed {:?}",
                    self.id, self.seen
                ),
                Err(_) => panic!(
                    "worker {} did not start job {id} within {within:?}; it printed {:?}",
                    self.id, self.seen
                ),
            }
        }
    }

    /// Every line printed so far (drains what is buffered).
    fn printed(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// SIGKILL, and reap the process.
    async fn sigkill(&mut self) -> ExitStatus {
        self.child.kill().await.expect("SIGKILL the worker");
        self.child.wait().await.expect("reap the worker")
    }

    /// SIGTERM (through `kill`, no libc needed).
    fn sigterm(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM {} failed", self.pid());
    }

    /// Waits for the process to exit; panics after `within`.
    async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(s) => s.expect("wait for the worker"),
            Err(_) => panic!("worker {} did not exit within {within:?}", self.id),
        }
    }

    /// SIGTERM and wait for a clean exit (status 0) within 15 s.
    async fn stop(mut self) {
        self.sigterm();
        let status = self.wait_exit(Duration::from_secs(15)).await;
        assert!(
            status.success(),
            "worker {} exited with {status} after SIGTERM",
            self.id
        );
    }
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

async fn in_done_set(q: &Queue, id: JobId) -> bool {
    redis::cmd("SISMEMBER")
        .arg(format!("{}:test:done", q.keys().tag()))
        .arg(id.to_string())
        .query_async(&mut q.connection())
        .await
        .expect("SISMEMBER")
}

async fn runs_of(q: &Queue, id: JobId) -> u64 {
    let n: Option<u64> = redis::cmd("GET")
        .arg(format!("{}:test:runs:{id}", q.keys().tag()))
        .query_async(&mut q.connection())
        .await
        .expect("GET runs");
    n.unwrap_or(0)
}

async fn state_of(q: &Queue, id: JobId) -> Option<String> {
    q.job(id).await.expect("read job record").map(|r| r.state)
}

/// (a) Worker A is SIGKILLed while running a 5 s job, with the production lease (30 s) and reap
/// interval (5 s). Worker B (another id) rescues it after the lease and runs it to completion:
/// the crashed attempt is counted and recorded as `lost`, naming A.
#[tokio::test]
async fn sigkill_mid_job_is_rescued_by_another_worker_and_the_lost_attempt_counts() {
    let q = queue(test_config("crash-a")).await;
    let ns = q.keys().namespace().to_owned();
    let (t, c) = (TenantId::new(), ConnectionId::new());
    let spec = order_job(JobKind::OrderPull, t, c, "sleep-5000");
    let id = spec.id;
    assert!(q.enqueue(&spec).await.unwrap().is_new());

    let a_id = format!("crash-a-A-{}", short_id());
    let b_id = format!("crash-a-B-{}", short_id());
    let env = [("LEASE_MS", "30000"), ("REAP_INTERVAL_MS", "5000")];
    let mut a = WorkerProc::spawn(&ns, &a_id, &env);
    assert_eq!(a.wait_started(id, Duration::from_secs(30)).await, 1);
    let status = a.sigkill().await;
    let killed = Instant::now();
    assert!(!status.success(), "A was killed: {status}");
    assert_eq!(state_of(&q, id).await.as_deref(), Some("running"));

    let mut b = WorkerProc::spawn(&ns, &b_id, &env);
    let within = Duration::from_secs(60);
    eventually(
        within,
        "the job completes in B within 60 s of the kill",
        || {
            let q = q.clone();
            async move {
                (in_done_set(&q, id).await
                    && state_of(&q, id).await.as_deref() == Some("succeeded"))
                .then_some(())
            }
        },
    )
    .await;
    let took = killed.elapsed();
    eprintln!("(a) job rescued and completed by B {took:?} after A was SIGKILLed");
    assert!(took <= within, "completed {took:?} after the kill");
    assert_eq!(
        b.wait_started(id, Duration::from_secs(1)).await,
        2,
        "B ran attempt 2"
    );

    let rec = q.job(id).await.unwrap().expect("the job record is kept");
    assert_eq!(rec.state, "succeeded");
    assert_eq!(rec.attempts, 2, "the crashed attempt counts: {rec:?}");
    assert_eq!(rec.errors.len(), 1, "{rec:?}");
    assert_eq!(rec.errors[0].class, ErrorClass::Lost, "{rec:?}");
    assert_eq!(rec.errors[0].attempt, 1, "{rec:?}");
    assert_eq!(rec.errors[0].worker, a_id, "the error names A: {rec:?}");
    assert!(
        rec.errors[0].chain.iter().any(|l| l.contains(&a_id)),
        "{rec:?}"
    );
    assert_eq!(runs_of(&q, id).await, 1, "ran to completion once");
    let stats = q.stats().await.unwrap();
    assert_eq!(stats.running, 0);
    assert_eq!(stats.rescued_total, 1);
    assert_eq!(stats.succeeded_total, 1);

    b.stop().await;
    delete_namespace(&q).await.unwrap();
}

/// (b) No other worker is alive: A is SIGKILLed mid-job and restarted with the same id. The
/// restarted A rescues its own crashed attempt (the apalis-redis same-name guard refused this
/// restart, and rescue needed another live worker).
#[tokio::test]
async fn the_same_worker_id_restarted_alone_rescues_its_crashed_job() {
    let q = queue(test_config("crash-b")).await;
    let ns = q.keys().namespace().to_owned();
    let (t, c) = (TenantId::new(), ConnectionId::new());
    let spec = order_job(JobKind::OrderPull, t, c, "sleep-2000");
    let id = spec.id;
    assert!(q.enqueue(&spec).await.unwrap().is_new());

    let a_id = format!("crash-b-A-{}", short_id());
    let env = [("LEASE_MS", "3000"), ("REAP_INTERVAL_MS", "500")];
    let mut a = WorkerProc::spawn(&ns, &a_id, &env);
    assert_eq!(a.wait_started(id, Duration::from_secs(30)).await, 1);
    a.sigkill().await;
    let killed = Instant::now();

    let mut a2 = WorkerProc::spawn(&ns, &a_id, &env);
    eventually(
        Duration::from_secs(30),
        "the restarted A completes the job",
        || {
            let q = q.clone();
            async move {
                (in_done_set(&q, id).await
                    && state_of(&q, id).await.as_deref() == Some("succeeded"))
                .then_some(())
            }
        },
    )
    .await;
    eprintln!(
        "(b) job rescued and completed by the restarted A {:?} after the kill",
        killed.elapsed()
    );
    assert_eq!(a2.wait_started(id, Duration::from_secs(1)).await, 2);
    let rec = q.job(id).await.unwrap().expect("the job record is kept");
    assert_eq!(rec.attempts, 2, "the crashed attempt counts: {rec:?}");
    assert_eq!(rec.errors.len(), 1, "{rec:?}");
    assert_eq!(rec.errors[0].class, ErrorClass::Lost, "{rec:?}");
    assert_eq!(rec.errors[0].worker, a_id, "{rec:?}");
    assert_eq!(runs_of(&q, id).await, 1);

    a2.stop().await;
    delete_namespace(&q).await.unwrap();
}

/// (c) A job that kills every worker running it (max 3 attempts) ends in the dead set with three
/// `lost` errors, one per killed worker, and in the outbox; the jobs enqueued alongside it still
/// succeed. Workers are restarted whenever the previous one died, as a supervisor would.
#[tokio::test]
async fn a_job_that_kills_its_worker_ends_dead_after_max_attempts() {
    let q = queue(test_config("crash-c")).await;
    let ns = q.keys().namespace().to_owned();
    let (t, c) = (TenantId::new(), ConnectionId::new());
    let poison = order_job(JobKind::OrderPull, t, c, "crash").max_attempts(3);
    let pid = poison.id;
    let others: Vec<_> = (0..20)
        .map(|i| order_job(JobKind::OrderPull, t, c, &format!("ok-{i}")))
        .collect();
    let other_ids: Vec<JobId> = others.iter().map(|s| s.id).collect();
    assert!(q.enqueue(&poison).await.unwrap().is_new());
    assert!(
        q.enqueue_many(&others)
            .await
            .unwrap()
            .iter()
            .all(|r| r.is_new())
    );

    let env = [("LEASE_MS", "2000"), ("REAP_INTERVAL_MS", "300")];
    let started = Instant::now();
    let deadline = started + Duration::from_secs(90);
    let mut spawned: Vec<String> = Vec::new();
    let mut crashes = 0usize;
    let mut current: Option<WorkerProc> = None;
    loop {
        let dead = state_of(&q, pid).await.as_deref() == Some("dead");
        let mut others_done = true;
        for id in &other_ids {
            if !in_done_set(&q, *id).await {
                others_done = false;
                break;
            }
        }
        if dead && others_done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not settled after 90 s: dead={dead} others_done={others_done} spawned={spawned:?} crashes={crashes}"
        );
        match current.as_mut() {
            None => {
                assert!(
                    spawned.len() < 10,
                    "restart loop bound reached: {spawned:?}"
                );
                let id = format!("crash-c-w{}-{}", spawned.len(), short_id());
                current = Some(WorkerProc::spawn(&ns, &id, &env));
                spawned.push(id);
            }
            Some(w) => {
                if let Some(status) = w.child.try_wait().expect("try_wait") {
                    assert!(
                        !status.success(),
                        "worker {} exited by itself with {status}",
                        w.id
                    );
                    crashes += 1;
                    current = None;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "(c) poison job dead after {crashes} crashed workers, {:?}; workers started: {}",
        started.elapsed(),
        spawned.len()
    );

    // Settle the surviving worker's acks before reading the counters.
    let survivor = current.expect("a worker is alive once the poison job is dead");
    survivor.stop().await;

    assert_eq!(
        crashes, 3,
        "the poison job killed exactly max_attempts workers"
    );
    let rec = q.job(pid).await.unwrap().expect("dead jobs are kept");
    assert_eq!(rec.state, "dead", "{rec:?}");
    assert_eq!(rec.attempts, 3, "{rec:?}");
    assert_eq!(rec.errors.len(), 3, "{rec:?}");
    for (i, e) in rec.errors.iter().enumerate() {
        assert_eq!(e.class, ErrorClass::Lost, "attempt {}: {rec:?}", i + 1);
        assert_eq!(e.attempt, i as u32 + 1, "{rec:?}");
        assert_eq!(
            e.worker,
            spawned[i],
            "attempt {} names the worker it killed",
            i + 1
        );
    }
    let stats = q.stats().await.unwrap();
    assert_eq!(stats.dead, 1, "{stats:?}");
    assert_eq!(stats.dead_total, 1, "{stats:?}");
    assert_eq!(stats.running, 0, "{stats:?}");
    assert_eq!(stats.succeeded_total, other_ids.len() as u64, "{stats:?}");
    let outbox = q.outbox_peek(100).await.unwrap();
    assert_eq!(outbox, vec![pid], "the dead job waits in the outbox");
    for id in &other_ids {
        assert_eq!(state_of(&q, *id).await.as_deref(), Some("succeeded"));
        assert!(runs_of(&q, *id).await >= 1);
    }

    delete_namespace(&q).await.unwrap();
}

/// (d) SIGTERM with 5 jobs running (concurrency 5) and 100 waiting: the worker exits 0 within
/// its 10 s grace, the running jobs complete, the others are all back in the ready queue with
/// no attempt spent, and no lease is left behind.
#[tokio::test]
async fn sigterm_drains_running_jobs_and_gives_back_the_rest() {
    let q = queue(test_config("crash-d")).await;
    let ns = q.keys().namespace().to_owned();
    let (t, c) = (TenantId::new(), ConnectionId::new());
    let running: Vec<_> = (0..5)
        .map(|_| order_job(JobKind::OrderPull, t, c, "sleep-1500"))
        .collect();
    let waiting: Vec<_> = (0..100)
        .map(|i| order_job(JobKind::OrderPull, t, c, &format!("queued-{i}")))
        .collect();
    let running_ids: Vec<JobId> = running.iter().map(|s| s.id).collect();
    let waiting_ids: Vec<JobId> = waiting.iter().map(|s| s.id).collect();
    q.enqueue_many(&running).await.unwrap();
    q.enqueue_many(&waiting).await.unwrap();

    let w_id = format!("crash-d-{}", short_id());
    let mut w = WorkerProc::spawn(&ns, &w_id, &[("CONCURRENCY", "5")]);
    for id in &running_ids {
        assert_eq!(w.wait_started(*id, Duration::from_secs(30)).await, 1);
    }
    let leased_before = q.stats().await.unwrap().running;
    w.sigterm();
    let term = Instant::now();
    let status = w.wait_exit(Duration::from_secs(20)).await;
    let took = term.elapsed();
    let stats = q.stats().await.unwrap();
    eprintln!(
        "(d) exited {status} {took:?} after SIGTERM; leased before: {leased_before}; after: {stats:?}"
    );
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(
        took < Duration::from_secs(10),
        "exited within the grace: {took:?}"
    );
    assert_eq!(stats.running, 0, "nothing left leased: {stats:?}");
    let running_hash: u64 = redis::cmd("HLEN")
        .arg(q.keys().running())
        .query_async(&mut q.connection())
        .await
        .unwrap();
    assert_eq!(running_hash, 0, "no tenant slot left taken");

    for id in &running_ids {
        assert!(in_done_set(&q, *id).await, "running job {id} completed");
        assert_eq!(runs_of(&q, *id).await, 1);
        let rec = q.job(*id).await.unwrap().expect("record kept");
        assert_eq!(rec.state, "succeeded", "{rec:?}");
        assert_eq!(rec.attempts, 1, "{rec:?}");
    }
    let printed = w.printed().to_vec();
    for id in &waiting_ids {
        assert!(!in_done_set(&q, *id).await, "waiting job {id} did not run");
        assert!(
            !printed.iter().any(|l| l.contains(&id.to_string())),
            "waiting job {id} was started after SIGTERM"
        );
        let rec = q.job(*id).await.unwrap().expect("record kept");
        assert_eq!(rec.attempts, 0, "attempt given back: {rec:?}");
        assert_eq!(rec.state, "ready", "{rec:?}");
        assert_eq!(rec.worker, None, "{rec:?}");
    }
    let ready: u64 = stats.kinds.iter().map(|k| k.ready).sum();
    assert_eq!(ready, 100, "every unstarted job is ready again: {stats:?}");
    assert_eq!(stats.delayed, 0, "{stats:?}");
    assert_eq!(stats.succeeded_total, 5, "{stats:?}");
    // Released jobs went back to the head of their list: the next fetch takes them first (the
    // worker had leased the 3 oldest waiting jobs ahead: tenant cap 8 = 5 running + 3).
    let fetched = q
        .fetch("crash-d-check", 3, &[JobKind::OrderPull], "check")
        .await
        .unwrap();
    let mut fetched: Vec<JobId> = fetched.into_iter().map(|j| j.unwrap().id).collect();
    let mut oldest = waiting_ids[..3].to_vec();
    fetched.sort();
    oldest.sort();
    assert_eq!(fetched, oldest, "released jobs went back to the head");

    delete_namespace(&q).await.unwrap();
}
