//! Shared helpers of the integration tests: isolated queue namespaces on the real Redis, job
//! builders, and waiting with a deadline.
//!
//! Every test gets its own Redis key namespace (so its own hash tag) and, through
//! `#[sqlx::test]`, its own Postgres database: tests run in parallel without seeing each other.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use canonical::{ConnectionId, TenantId};
use queue_schema::{JobKind, JobPayload, JobSpec, Scope, Trigger};
use workers::queue::{Clock, Queue, QueueConfig};

pub mod bench_world;

/// The Redis the tests use (`REDIS_URL`, default the local one).
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Starts (or finds running) the local 3-primary Redis Cluster of `deploy/redis-cluster.sh` and
/// returns its `redis+cluster://` URL. The script is idempotent and serialises concurrent callers.
pub fn redis_cluster_url() -> String {
    redis_cluster_up(&[])
}

/// A local cluster of 3 primaries with a replica each on ports 7111-7116, for failover tests.
pub fn redis_ha_cluster_url() -> String {
    redis_cluster_up(&[
        ("MEGZO_CLUSTER_PORTS", "7111 7112 7113 7114 7115 7116"),
        ("MEGZO_CLUSTER_REPLICAS", "1"),
    ])
}

fn redis_cluster_up(env: &[(&str, &str)]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/redis-cluster.sh");
    let out = std::process::Command::new(script)
        .arg("up")
        .envs(env.iter().copied())
        .output()
        .expect("deploy/redis-cluster.sh runs");
    assert!(
        out.status.success(),
        "deploy/redis-cluster.sh up failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("the script prints a URL")
        .trim()
        .to_owned()
}

/// A namespace no other test uses.
pub fn unique_namespace(test: &str) -> String {
    format!("t-{test}-{}", uuid::Uuid::new_v4().simple())
}

/// A queue config for tests: a unique namespace, the rest default.
pub fn test_config(test: &str) -> QueueConfig {
    QueueConfig {
        namespace: unique_namespace(test),
        ..QueueConfig::default()
    }
}

pub async fn queue(cfg: QueueConfig) -> Queue {
    Queue::connect(&redis_url(), cfg)
        .await
        .expect("Redis must be running for the integration tests (deploy/services.sh up)")
}

pub async fn queue_with_clock(cfg: QueueConfig, clock: Arc<dyn Clock>) -> Queue {
    Queue::connect_with_clock(&redis_url(), cfg, clock)
        .await
        .expect("Redis must be running for the integration tests (deploy/services.sh up)")
}

/// A job of `kind` for a tenant and connection, with a `Manual` trigger and no dedupe key.
pub fn job(kind: JobKind, tenant: TenantId, connection: ConnectionId) -> JobSpec {
    JobSpec::new(
        kind,
        JobPayload::v1(tenant, connection, Scope::All, Trigger::Manual),
    )
    .without_dedupe()
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `within` with `what`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {within:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A job of `kind` whose scope is one marketplace order named `order`, with no dedupe key. The
/// `test-worker` binary chooses its behaviour by this name (`sleep-<ms>`, `crash`, anything
/// else succeeds).
pub fn order_job(
    kind: JobKind,
    tenant: TenantId,
    connection: ConnectionId,
    order: &str,
) -> JobSpec {
    let order = canonical::ChannelOrderId::new(order).expect("a valid order id");
    JobSpec::new(
        kind,
        JobPayload::v1(tenant, connection, Scope::Order { order }, Trigger::Manual),
    )
    .without_dedupe()
}

/// Deletes every key matching `pattern` (SCAN MATCH on every primary, then UNLINK in batches of
/// one hash slot each, so it works on a Redis Cluster too). Returns how many were deleted. Tests
/// and benchmarks use it on their own prefixes only, never on the whole keyspace.
pub async fn delete_matching(
    conn: &mut workers::queue::RedisConn,
    pattern: &str,
) -> redis::RedisResult<u64> {
    let mut by_slot: std::collections::BTreeMap<u16, Vec<String>> = Default::default();
    for key in conn.scan_match(pattern).await? {
        by_slot
            .entry(queue_schema::keys::cluster_slot(&key))
            .or_default()
            .push(key);
    }
    let mut deleted = 0u64;
    for keys in by_slot.values() {
        for chunk in keys.chunks(1_000) {
            let n: u64 = redis::cmd("UNLINK").arg(chunk).query_async(conn).await?;
            deleted += n;
        }
    }
    Ok(deleted)
}

/// Deletes every key of a queue namespace (`{ns}*`): the queue's own keys and the `{ns}:test:*`
/// keys the `test-worker` binary writes.
pub async fn delete_namespace(queue: &Queue) -> redis::RedisResult<u64> {
    let pattern = format!("{}*", glob_escape(queue.keys().tag()));
    delete_matching(&mut queue.connection(), &pattern).await
}

/// Escapes Redis glob metacharacters (`*?[]\`) in a literal prefix.
pub fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Helpers of the queue-semantics, fault, lock and heartbeat tests.
// ---------------------------------------------------------------------------------------------

/// Jobs ready to run, summed over every kind.
pub fn ready_total(s: &workers::queue::admin::QueueStats) -> u64 {
    s.kinds.iter().map(|k| k.ready).sum()
}

/// Jobs the queue still holds in any live state: ready, delayed, running or dead.
pub fn live_total(s: &workers::queue::admin::QueueStats) -> u64 {
    ready_total(s) + s.delayed + s.running + s.dead
}

/// `ZSCORE key member` as whole milliseconds, `None` if absent.
pub async fn zscore_ms(q: &Queue, key: &str, member: &str) -> Option<u64> {
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg(key)
        .arg(member)
        .query_async(&mut q.connection())
        .await
        .expect("ZSCORE");
    score.map(|s| s as u64)
}

/// `ZCARD key`.
pub async fn zcard(q: &Queue, key: &str) -> u64 {
    redis::cmd("ZCARD")
        .arg(key)
        .query_async(&mut q.connection())
        .await
        .expect("ZCARD")
}

/// `PTTL key`: -2 if the key does not exist, -1 if it has no expiry.
pub async fn pttl(q: &Queue, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut q.connection())
        .await
        .expect("PTTL")
}

/// Worker options for tests: quick polling and reaping, the rest default.
pub fn test_worker_options(worker_id: &str) -> workers::queue::backend::BackendOptions {
    let mut opts = workers::queue::backend::BackendOptions::new(worker_id);
    opts.poll_interval = Duration::from_millis(10);
    opts.reap_interval = Duration::from_millis(200);
    opts
}

/// An in-process apalis worker running on its own task, stoppable from the test.
#[derive(Debug)]
pub struct TestWorker {
    pub handle: workers::queue::backend::BackendHandle,
    run: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestWorker {
    /// Starts `handler` on `q` with `opts`, with a grace of 5 s.
    pub fn spawn(
        q: &Queue,
        opts: workers::queue::backend::BackendOptions,
        handler: workers::runtime::Handler,
    ) -> Self {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let w = workers::runtime::start_worker(
            q.clone(),
            opts,
            handler,
            None,
            async move {
                let _ = stop_rx.await;
            },
            Duration::from_secs(5),
        );
        Self {
            handle: w.handle,
            run: Some(tokio::spawn(w.run)),
            stop: Some(stop_tx),
        }
    }

    /// True while the worker has neither stopped its backend nor returned from its run.
    pub fn alive(&self) -> bool {
        self.handle.is_running() && self.run.as_ref().is_some_and(|r| !r.is_finished())
    }

    /// Stops the worker and asserts that it stops cleanly within 15 s.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(run) = self.run.take() {
            tokio::time::timeout(Duration::from_secs(15), run)
                .await
                .expect("the worker stops within its grace")
                .expect("the worker task did not panic")
                .expect("the worker returned without error");
        }
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            run.abort();
        }
    }
}

/// A free TCP port on the loopback (bound, read and released; a small race is accepted).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A private `redis-server` process for fault tests: its own port and data directory, AOF with
/// `appendfsync always` so a clean SHUTDOWN and restart keep every acknowledged write. Killed
/// (and its directory removed) on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<tokio::process::Child>,
}

impl RedisServer {
    /// Starts a server and waits until it answers PING.
    pub async fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("megzo-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create the Redis data directory");
        let mut s = Self {
            port: free_port(),
            dir,
            child: None,
        };
        s.spawn().await;
        s
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let child = tokio::process::Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("yes")
            .arg("--appendfsync")
            .arg("always")
            .arg("--enable-debug-command")
            .arg("local")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server must be installed for the fault tests");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if self.cli(&["PING"]).await.is_ok_and(|o| o.trim() == "PONG") {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                panic!("redis-server on port {} did not start: {log}", self.port);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs `redis-cli -p <port> args…` to completion; its stdout, or its stderr as the error.
    pub async fn cli(&self, args: &[&str]) -> Result<String, String> {
        let out = tokio::process::Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| format!("redis-cli: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Starts `redis-cli -p <port> args…` in the background (for commands that block, such as
    /// `DEBUG SLEEP`).
    pub fn cli_in_background(&self, args: &[&str]) -> tokio::process::Child {
        tokio::process::Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-cli must be installed for the fault tests")
    }

    /// `SHUTDOWN` (the AOF is flushed first), then waits for the process to exit.
    pub async fn shutdown(&mut self) {
        // The connection is closed by the server as it exits; the reply does not matter.
        let _ = self.cli(&["SHUTDOWN"]).await;
        if let Some(mut child) = self.child.take() {
            tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .expect("redis-server exits after SHUTDOWN")
                .expect("wait for redis-server");
        }
    }

    /// Starts the server again on the same port and data directory (after [`Self::shutdown`]).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "restart only a stopped server");
        self.spawn().await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            // Reap it so no zombie stays behind; it was just sent SIGKILL.
            let _ = child.try_wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The outcome of [`shared_account_run`].
#[derive(Debug, Clone)]
pub struct SharedAccountRun {
    /// Calls the fake served (within the limit).
    pub served: u64,
    /// Calls the fake refused because the account was over its limit (CDON), or blocks the
    /// account entered (SmartBill).
    pub over_limit: u64,
    /// Calls the API's allowed rate gives from the first call the fake saw to the last (the
    /// sustained rate; a sliding window would also admit one burst of `rate` at the start).
    pub allowed: f64,
    /// Failed calls reported by the processes, and the first failure's text.
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
}

impl SharedAccountRun {
    /// Share of the allowed rate used: calls after the first, over the span, against the rate.
    pub fn utilization(&self) -> f64 {
        self.served.saturating_sub(1) as f64 / self.allowed
    }
}

/// Which fake account [`shared_account_run`] shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedSystem {
    /// The CDON fake with a sliding-window limit of `rate` per `per_ms` (over-limit answers
    /// counted).
    Cdon,
    /// The SmartBill fake with its own contract limit (30 per 10 s; one more and the account is
    /// blocked for 10 minutes, counted as a block entered); `rate`/`per_ms` must be 30/10000.
    SmartBill,
}

/// `processes` separate `rate-client` processes (path `exe`) share one fake account whose API
/// allows `rate` calls per `per_ms` (enforced and counted by the fake); each process's gate
/// enforces the same limit fleet-wide in Redis with `margin_ms` added to the window. Runs
/// `secs` seconds.
#[allow(clippy::too_many_arguments)]
pub async fn shared_account_run(
    exe: &str,
    system: SharedSystem,
    test: &str,
    processes: usize,
    rate: u32,
    per_ms: u64,
    margin_ms: u64,
    secs: u64,
) -> SharedAccountRun {
    use connectors::fake::{Limits, RateRule, serve};
    use connectors::{cdon, smartbill};
    let sb = smartbill::fake::SmartBillFake::new();
    let (router, harness, base, user, token, name) = match system {
        SharedSystem::Cdon => {
            let fake = cdon::fake::CdonFake::new();
            fake.seed_demo();
            fake.harness().set_limits(Limits {
                rate: Some(RateRule {
                    count: rate,
                    per_ms,
                }),
                concurrency: None,
            });
            let (d_user, d_token) = (cdon::fake::DEMO_MERCHANT_ID, cdon::fake::DEMO_TOKEN);
            let harness = fake.harness().clone();
            (fake.router(), harness, "/api/", d_user, d_token, "cdon")
        }
        SharedSystem::SmartBill => {
            assert_eq!(
                (rate, per_ms),
                (30, 10_000),
                "SmartBill's fake enforces its contract limit"
            );
            sb.seed_demo();
            let (d_user, d_token) = (smartbill::fake::DEMO_EMAIL, smartbill::fake::DEMO_TOKEN);
            let harness = sb.harness().clone();
            (
                sb.router(),
                harness,
                "/SBORO/api/",
                d_user,
                d_token,
                "smartbill",
            )
        }
    };
    let server = serve(router, "127.0.0.1:0").await.expect("fake listens");
    let cfg = test_config(test);
    let ns = cfg.namespace.clone();
    let start = std::time::Instant::now();
    let children: Vec<_> = (0..processes)
        .map(|_| {
            tokio::process::Command::new(exe)
                .env("REDIS_URL", redis_url())
                .env("QUEUE_NS", &ns)
                .env("SYSTEM", name)
                .env("BASE_URL", format!("{}{base}", server.base_url()))
                .env("USER", user)
                .env("TOKEN", token)
                .env("CIF", smartbill::fake::DEMO_CIF)
                .env("RATE", rate.to_string())
                .env("PER_MS", (per_ms + margin_ms).to_string())
                .env("SECS", secs.to_string())
                // Enough to keep the gate busy; more only lengthens the wait after the deadline.
                .env("CONCURRENCY", "2")
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("rate-client starts")
        })
        .collect();
    let (mut errors, mut first_error) = (0, None);
    for child in children {
        let out = child.wait_with_output().await.expect("rate-client runs");
        assert!(out.status.success(), "rate-client failed: {out:?}");
        let line: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("rate-client prints JSON");
        errors += line["errors"].as_u64().unwrap_or(0);
        if first_error.is_none() {
            first_error = line["first_error"].as_str().map(str::to_owned);
        }
    }
    let elapsed = start.elapsed();
    let stats = harness.stats();
    let q = queue(cfg).await;
    let _ = delete_namespace(&q).await;
    drop(server);
    SharedAccountRun {
        served: stats.requests - stats.over_limit,
        over_limit: stats.over_limit + sb.blocks_entered(),
        allowed: rate as f64 * stats.span_ms as f64 / per_ms as f64,
        errors,
        first_error,
        elapsed,
    }
}
