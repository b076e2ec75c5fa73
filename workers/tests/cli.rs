//! The `megzo` binary as operators and support use it, against real Redis and a fresh Postgres
//! database per test: two cron fires of `megzo enqueue heartbeat` in the same bucket, and the
//! replay of a dead job from Postgres after Redis lost everything.

use std::process::{Command, Stdio};
use std::time::Duration;

use queue_schema::{AttemptError, ErrorClass, JobKind, JobPayload, JobSpec, Scope, Trigger};
use sqlx::PgPool;
use workers::db;
use workers::queue::{Ack, AckOutcome, AckStatus, Queue, QueueConfig};

mod support;
use support::{megzo_command, noop_tenant, redis_url, stderr_of_failure, stdout};

/// `megzo` on the test's database, in the test's queue namespace.
fn megzo(pool: &PgPool, ns: &str, args: &[&str]) -> Command {
    let mut c = megzo_command(pool, "text");
    c.args(args).env("MEGZO_QUEUE__NAMESPACE", ns);
    c
}

/// A minimal HTTP/1.1 GET (the probes are plain HTTP on loopback): status line, headers, body.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

async fn queue(ns: &str) -> Queue {
    Queue::connect(
        &redis_url(),
        QueueConfig {
            namespace: ns.to_owned(),
            ..QueueConfig::default()
        },
    )
    .await
    .expect("Redis must be running (deploy/services.sh up)")
}

fn namespace(test: &str) -> String {
    format!("t-{test}-{}", uuid::Uuid::new_v4().simple())
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn two_cron_fires_in_one_bucket_enqueue_each_job_once(pool: PgPool) {
    for i in 0..25 {
        noop_tenant(&pool, &format!("shop-{i}")).await;
    }
    let ns = namespace("cron");
    // A one-hour bucket, so both fires land in the same bucket whatever the clock says.
    let args = ["enqueue", "heartbeat", "--interval-secs", "3600"];
    let a = megzo(&pool, &ns, &args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let b = megzo(&pool, &ns, &args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (a, b) = (stdout(&a), stdout(&b));
    let enqueued = |s: &str| -> usize {
        s.split(" jobs enqueued")
            .next()
            .and_then(|p| p.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count in {s:?}"))
    };
    assert_eq!(enqueued(&a) + enqueued(&b), 25 * 6, "a: {a} b: {b}");
    let q = queue(&ns).await;
    let stats = q.stats().await.unwrap();
    assert_eq!(stats.kinds.iter().map(|k| k.ready).sum::<u64>(), 150);
    assert_eq!(stats.enqueued_total, 150);
    // A third fire in the same bucket adds nothing.
    let c = stdout(&megzo(&pool, &ns, &args).output().unwrap());
    assert!(c.contains(" 0 jobs enqueued"), "{c}");
    assert!(c.contains("150 already enqueued in this bucket"), "{c}");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_dead_job_is_replayed_from_postgres_after_redis_lost_everything(pool: PgPool) {
    let (t, c) = noop_tenant(&pool, "replay-shop").await;
    let ns = namespace("replay");
    let q = queue(&ns).await;
    let spec = JobSpec::new(
        JobKind::OrderPull,
        JobPayload::v1(t.id, c.id, Scope::All, Trigger::Webhook),
    );
    q.enqueue(&spec).await.unwrap();
    let job = q
        .fetch("w1", 1, &[JobKind::OrderPull], "r1")
        .await
        .unwrap()
        .pop()
        .unwrap()
        .unwrap();
    let error = AttemptError {
        attempt: 1,
        at_ms: q.now_ms(),
        worker: "w1".into(),
        class: ErrorClass::Permanent,
        chain: vec!["marketplace said 400".into(), "bad token".into()],
        retry_after_ms: None,
    };
    let st = q
        .ack(&[Ack {
            id: job.id,
            lease: job.lease,
            attempt: 1,
            outcome: AckOutcome::Dead { error },
        }])
        .await
        .unwrap();
    assert_eq!(st, vec![AckStatus::Dead]);
    // The worker's housekeeping copies the dead job to Postgres.
    assert_eq!(workers::process::sync_dead(&q, &pool).await.unwrap(), 1);
    let dead = db::get_dead(&pool, job.id)
        .await
        .unwrap()
        .expect("dead job in Postgres");
    assert_eq!(
        dead.errors[0].chain,
        vec!["marketplace said 400", "bad token"]
    );

    // Redis loses everything of this namespace.
    let mut conn = q.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{ns}}}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(q.job(job.id).await.unwrap().is_none());

    let listed = stdout(
        &megzo(&pool, &ns, &["jobs", "list", "--state", "dead"])
            .output()
            .unwrap(),
    );
    assert!(listed.contains(&job.id.to_string()), "{listed}");
    assert!(listed.contains("marketplace said 400"), "{listed}");

    let dry = stdout(
        &megzo(
            &pool,
            &ns,
            &["jobs", "replay", "--tenant", "replay-shop", "--dry-run"],
        )
        .output()
        .unwrap(),
    );
    assert!(dry.contains(&format!("would replay {}", job.id)), "{dry}");
    assert_eq!(
        q.stats().await.unwrap().enqueued_total,
        0,
        "a dry run changes nothing"
    );

    let out = stdout(
        &megzo(&pool, &ns, &["jobs", "replay", &job.id.to_string()])
            .output()
            .unwrap(),
    );
    assert!(out.contains("1 replayed"), "{out}");
    let stats = q.stats().await.unwrap();
    let ready: u64 = stats.kinds.iter().map(|k| k.ready).sum();
    assert_eq!(ready, 1, "the replayed job is queued again");
    let dead = db::get_dead(&pool, job.id).await.unwrap().unwrap();
    let new_id = dead.replayed_as.expect("replay recorded");
    let rec = q.job(new_id).await.unwrap().expect("new job in Redis");
    assert!(rec.payload.contains("\"replay\""), "{}", rec.payload);
    assert!(
        rec.payload.contains(&job.id.to_string()),
        "replay links the dead job"
    );

    // Replaying twice is refused with the reason.
    let again = megzo(&pool, &ns, &["jobs", "replay", &job.id.to_string()])
        .output()
        .unwrap();
    assert!(stderr_of_failure(&again).contains("already replayed"));
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn worker_serves_probes_runs_jobs_records_history_and_drains_on_sigterm(pool: PgPool) {
    let (t, c) = noop_tenant(&pool, "probe-shop").await;
    let ns = namespace("worker");
    let q = queue(&ns).await;
    for kind in JobKind::ALL {
        q.enqueue(&JobSpec::new(
            kind,
            JobPayload::v1(t.id, c.id, Scope::All, Trigger::Manual),
        ))
        .await
        .unwrap();
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = megzo(
        &pool,
        &ns,
        &[
            "worker",
            "--id",
            "probe-w",
            "--http",
            &format!("127.0.0.1:{port}"),
        ],
    )
    .spawn()
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let runs = db::list_runs(
            &pool,
            &db::RunFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        if runs.len() == 6 {
            assert!(
                runs.iter()
                    .all(|r| r.outcome == db::RunOutcome::Succeeded && r.worker == "probe-w")
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "six runs recorded within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let get = |path: &str| http_get(port, path);
    assert!(get("/healthz").starts_with("HTTP/1.1 200"));
    assert!(
        get("/readyz").starts_with("HTTP/1.1 200"),
        "{}",
        get("/readyz")
    );
    let metrics = get("/metrics");
    assert!(
        metrics.contains("megzo_jobs_succeeded_total{kind=\"order_pull\"} 1"),
        "{metrics}"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM is a clean stop: {status}");
    assert_eq!(
        q.stats().await.unwrap().workers_alive,
        0,
        "a stopped worker deregisters"
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_tenant_cap_is_stored_in_postgres_and_applied_in_redis(pool: PgPool) {
    let t = db::add_tenant(&pool, "capped", "Capped").await.unwrap();
    let ns = namespace("cap");
    let q = queue(&ns).await;
    let out = stdout(
        &megzo(&pool, &ns, &["tenants", "cap", "capped", "--cap", "2"])
            .output()
            .unwrap(),
    );
    assert!(out.contains("may run 2 jobs at once"), "{out}");
    let cap: Option<u32> = redis::cmd("HGET")
        .arg(q.keys().caps())
        .arg(t.id.to_string())
        .query_async(&mut q.connection())
        .await
        .unwrap();
    assert_eq!(cap, Some(2));
    assert_eq!(db::tenant_caps(&pool).await.unwrap(), vec![(t.id, 2)]);
    let list = stdout(&megzo(&pool, &ns, &["tenants", "list"]).output().unwrap());
    assert!(list.contains("(cap 2)"), "{list}");

    // Redis lost it: the worker's housekeeping restores it from Postgres.
    q.set_tenant_cap(t.id, None).await.unwrap();
    workers::process::sync_caps(&q, &pool).await.unwrap();
    let cap: Option<u32> = redis::cmd("HGET")
        .arg(q.keys().caps())
        .arg(t.id.to_string())
        .query_async(&mut q.connection())
        .await
        .unwrap();
    assert_eq!(cap, Some(2));

    stdout(
        &megzo(&pool, &ns, &["tenants", "cap", "capped", "--default"])
            .output()
            .unwrap(),
    );
    assert!(db::tenant_caps(&pool).await.unwrap().is_empty());
    let bad = megzo(&pool, &ns, &["tenants", "cap", "nobody", "--cap", "1"])
        .output()
        .unwrap();
    assert!(stderr_of_failure(&bad).contains("no tenant \"nobody\""));
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_nul_in_an_error_or_payload_cannot_block_the_dead_job_outbox(pool: PgPool) {
    let (t, c) = noop_tenant(&pool, "nul-shop").await;
    let ns = namespace("nul");
    let q = queue(&ns).await;
    for _ in 0..2 {
        q.enqueue(
            &JobSpec::new(
                JobKind::ReturnsReconcile,
                JobPayload::v1(t.id, c.id, Scope::All, Trigger::Manual),
            )
            .without_dedupe(),
        )
        .await
        .unwrap();
    }
    let jobs = q
        .fetch("w1", 2, &[JobKind::ReturnsReconcile], "nul")
        .await
        .unwrap();
    let acks: Vec<Ack> = jobs
        .iter()
        .map(|j| {
            let j = j.as_ref().unwrap();
            Ack {
                id: j.id,
                lease: j.lease,
                attempt: 1,
                outcome: AckOutcome::Dead {
                    error: AttemptError {
                        attempt: 1,
                        at_ms: q.now_ms(),
                        worker: "w1".into(),
                        class: ErrorClass::Permanent,
                        // An API's binary error body, NUL included.
                        chain: vec!["bad body: \0\u{1}".into()],
                        retry_after_ms: None,
                    },
                },
            }
        })
        .collect();
    assert_eq!(q.ack(&acks).await.unwrap(), vec![AckStatus::Dead; 2]);
    assert_eq!(workers::process::sync_dead(&q, &pool).await.unwrap(), 2);
    assert!(
        q.outbox_peek(10).await.unwrap().is_empty(),
        "the outbox drained"
    );
    for a in &acks {
        let dead = db::get_dead(&pool, a.id)
            .await
            .unwrap()
            .expect("in Postgres");
        assert_eq!(dead.errors[0].chain, vec!["bad body: \u{FFFD}\u{1}"]);
    }
}
