//! Live reload of field mappings: a `megzo worker` process keeps running while an operator saves
//! and activates versions from the command line; each next job applies the version active when
//! it starts, and its run in Postgres records that version.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use queue_schema::{JobId, JobKind, JobPayload, JobSpec, Scope, Trigger};
use serde_json::json;
use sqlx::PgPool;
use workers::db;
use workers::queue::{Queue, QueueConfig};

mod support;
use support::{megzo_command, noop_tenant, redis_url, stdout};

fn rules_file(v: &serde_json::Value) -> PathBuf {
    let p = std::env::temp_dir().join(format!("megzo-live-{}.json", uuid::Uuid::new_v4().simple()));
    std::fs::write(&p, v.to_string()).unwrap();
    p
}

/// A rule set for the no-op connection: the title from a template (the demo catalog's
/// articles all map).
fn titles(prefix: &str) -> serde_json::Value {
    json!({
        "schema": 1,
        "direction": "erp_to_marketplace",
        "rules": [
            { "id": "title", "target": "title", "source": { "template": format!("{prefix} {{name}}") } }
        ]
    })
}

/// A rule set that compiles and validates but cannot map any article: a lookup by SKU in an
/// empty table with no default.
fn unmappable() -> serde_json::Value {
    json!({
        "schema": 1,
        "direction": "erp_to_marketplace",
        "tables": { "brands": { "entries": {} } },
        "rules": [
            { "id": "brand", "target": "brand", "source": { "field": "sku" },
              "ops": [ { "op": "lookup", "table": "brands" } ] }
        ]
    })
}

/// Waits for the run of `job` and returns it.
async fn run_of(pool: &PgPool, job: JobId) -> db::RunRow {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let runs = db::list_runs(
            pool,
            &db::RunFilter {
                job: Some(job),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        if let Some(r) = runs.into_iter().next() {
            return r;
        }
        assert!(Instant::now() < deadline, "job {job} recorded within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_version_activated_while_a_worker_runs_is_used_from_its_next_job(pool: PgPool) {
    let (t, c) = noop_tenant(&pool, "live-map").await;
    let ns = format!("t-live-map-{}", uuid::Uuid::new_v4().simple());
    let q = Queue::connect(
        &redis_url(),
        QueueConfig {
            namespace: ns.clone(),
            ..QueueConfig::default()
        },
    )
    .await
    .unwrap();
    let conn = c.id.to_string();
    let megzo = |args: &[&str]| {
        let mut cmd = megzo_command(&pool, "text");
        cmd.args(args).env("MEGZO_QUEUE__NAMESPACE", &ns);
        cmd
    };
    let save_and_activate = |rules: serde_json::Value, version: &str| {
        let f = rules_file(&rules);
        let out = stdout(
            &megzo(&[
                "mapping",
                "save",
                &conn,
                "--file",
                f.to_str().unwrap(),
                "--author",
                "ana",
            ])
            .output()
            .unwrap(),
        );
        assert!(out.contains(&format!("version {version}")), "{out}");
        let out = stdout(
            &megzo(&["mapping", "activate", &conn, version, "--actor", "ana"])
                .output()
                .unwrap(),
        );
        assert!(out.contains(&format!("v{version} is active")), "{out}");
        let _ = std::fs::remove_file(f);
    };
    let catalog_push = || async {
        let spec = JobSpec::new(
            JobKind::CatalogPush,
            JobPayload::v1(t.id, c.id, Scope::All, Trigger::Manual),
        );
        q.enqueue(&spec).await.unwrap();
        spec.id
    };

    save_and_activate(titles("v1"), "1");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut worker = megzo(&[
        "worker",
        "--id",
        "live-w",
        "--http",
        &format!("127.0.0.1:{port}"),
    ])
    .spawn()
    .unwrap();

    let first = run_of(&pool, catalog_push().await).await;
    assert_eq!(first.outcome, db::RunOutcome::Succeeded, "{first:?}");
    assert_eq!(first.mapping_version, Some(1));
    assert_eq!(first.worker, "live-w");

    // Activated from the CLI while the same worker process keeps running.
    save_and_activate(unmappable(), "2");
    let second = run_of(&pool, catalog_push().await).await;
    assert_eq!(second.outcome, db::RunOutcome::Dead, "{second:?}");
    assert_eq!(second.mapping_version, Some(2));
    let chain = second.error.expect("the reason is kept").chain.join(" | ");
    assert!(
        chain.contains("3 of 3 articles cannot be mapped with mapping v2")
            && chain.contains("DEMO-MUG")
            && chain.contains("rule `brand`")
            && chain.contains("lookup table `brands` has no entry"),
        "{chain}"
    );

    save_and_activate(titles("v3"), "3");
    let third_id = catalog_push().await;
    let third = run_of(&pool, third_id).await;
    assert_eq!(third.outcome, db::RunOutcome::Succeeded, "{third:?}");
    assert_eq!(third.mapping_version, Some(3));

    // A rollback is live too: back to v2, and the next job fails with it again.
    let out = stdout(
        &megzo(&["mapping", "rollback", &conn, "--actor", "ion"])
            .output()
            .unwrap(),
    );
    assert!(out.contains("v2 is active"), "{out}");
    let fourth = run_of(&pool, catalog_push().await).await;
    assert_eq!(
        (fourth.outcome, fourth.mapping_version),
        (db::RunOutcome::Dead, Some(2))
    );

    // Support sees the version in the job's history.
    let shown = stdout(
        &megzo(&["jobs", "show", &third_id.to_string()])
            .output()
            .unwrap(),
    );
    assert!(shown.contains("mapping v3"), "{shown}");
    assert!(worker.try_wait().unwrap().is_none(), "never restarted");

    Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(worker.wait().unwrap().success());
}
