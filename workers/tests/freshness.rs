//! Freshness against a fresh Postgres database per test: the run recorder keeps each flow's
//! newest success and failure whatever order its batches arrive in, `megzo tenants status`
//! shows ages, errors and stale flows, and the gauges are exported per tenant and flow.

use std::time::Duration;

use canonical::{ConnectionId, Erp, Marketplace, TenantId};
use chrono::{DateTime, Utc};
use queue_schema::{AttemptError, ErrorClass, Job, JobId, JobKind, JobPayload, Scope, Trigger};
use sqlx::PgPool;
use tokio::sync::mpsc;
use workers::db::{self, RunOutcome, RunRecord};
use workers::queue::AckStatus;
use workers::queue::backend::AttemptReport;

mod support;
use support::{megzo_command, noop_tenant, stderr_of_failure, stdout};

fn ms(t: DateTime<Utc>) -> u64 {
    t.timestamp_millis() as u64
}

/// What a worker reports for an attempt of `kind` on the connection that ended at `at`.
fn report(
    tenant: TenantId,
    connection: ConnectionId,
    kind: JobKind,
    status: AckStatus,
    at: DateTime<Utc>,
    error: Option<&str>,
) -> AttemptReport {
    let id = JobId::new();
    AttemptReport {
        id,
        kind,
        attempt: 1,
        job: Some(Job {
            id,
            kind,
            payload: JobPayload::v1(tenant, connection, Scope::All, Trigger::Manual),
            attempt: 1,
            max_attempts: 5,
            enqueued_at_ms: ms(at) - 1_000,
            lease: 1,
        }),
        tenant: tenant.to_string(),
        status,
        lost: false,
        error: error.map(|e| AttemptError {
            attempt: 1,
            at_ms: ms(at),
            worker: "w-1".into(),
            class: ErrorClass::Retryable,
            chain: e.split(": ").map(str::to_owned).collect(),
            retry_after_ms: None,
        }),
        started_ms: ms(at) - 500,
        finished_ms: ms(at),
        worker: "w-1".into(),
        notes: Default::default(),
    }
}

async fn runs_recorded(pool: &PgPool, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let runs = db::list_runs(
            pool,
            &db::RunFilter {
                limit: 1_000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        if runs.len() >= n {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{n} runs recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status_of(pool: &PgPool, conn: ConnectionId, kind: JobKind) -> db::FlowFreshness {
    db::flow_freshness(pool, None, false)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.connection_id == conn && r.kind == kind)
        .unwrap()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_recorder_keeps_the_newest_success_and_failure_whatever_the_order(pool: PgPool) {
    let (t, c) = noop_tenant(&pool, "shop").await;
    let (tx, rx) = mpsc::unbounded_channel();
    let recorder = tokio::spawn(workers::process::run_recorder(pool.clone(), rx));
    let now = Utc::now();
    let ago = |s: i64| now - chrono::Duration::seconds(s);
    let pull = JobKind::OrderPull;

    // A success, then a failure: both kept.
    tx.send(report(
        t.id,
        c.id,
        pull,
        AckStatus::Succeeded,
        ago(100),
        None,
    ))
    .unwrap();
    runs_recorded(&pool, 1).await;
    tx.send(report(
        t.id,
        c.id,
        pull,
        AckStatus::Retrying,
        ago(50),
        Some("celro: 503 Service Unavailable"),
    ))
    .unwrap();
    runs_recorded(&pool, 2).await;
    let s = status_of(&pool, c.id, pull).await;
    assert_eq!(s.last_success_at.map(ms), Some(ms(ago(100))));
    assert_eq!(s.last_failure_at.map(ms), Some(ms(ago(50))));
    assert_eq!(
        s.last_error.as_deref(),
        Some("celro: 503 Service Unavailable")
    );

    // A late batch with an older success and an older failure moves nothing back; a snooze and
    // a release are neither; a run of a connection that no longer exists is skipped without
    // losing the batch.
    for r in [
        report(t.id, c.id, pull, AckStatus::Succeeded, ago(200), None),
        report(
            t.id,
            c.id,
            pull,
            AckStatus::Dead,
            ago(300),
            Some("an old error"),
        ),
        report(t.id, c.id, pull, AckStatus::Snoozed, ago(1), None),
        report(t.id, c.id, pull, AckStatus::Released, ago(1), None),
        report(
            t.id,
            ConnectionId::new(),
            pull,
            AckStatus::Succeeded,
            ago(1),
            None,
        ),
        report(
            t.id,
            c.id,
            JobKind::StockPush,
            AckStatus::Succeeded,
            ago(10),
            None,
        ),
    ] {
        tx.send(r).unwrap();
    }
    runs_recorded(&pool, 8).await;
    let s = status_of(&pool, c.id, pull).await;
    assert_eq!(s.last_success_at.map(ms), Some(ms(ago(100))));
    assert_eq!(s.last_failure_at.map(ms), Some(ms(ago(50))));
    assert_eq!(
        s.last_error.as_deref(),
        Some("celro: 503 Service Unavailable")
    );
    let stock = status_of(&pool, c.id, JobKind::StockPush).await;
    assert_eq!(stock.last_success_at.map(ms), Some(ms(ago(10))));
    assert_eq!(stock.last_failure_at, None);

    // A newer attempt lost with its worker is the latest failure, with a reason.
    let mut lost = report(t.id, c.id, pull, AckStatus::Retrying, ago(5), None);
    lost.lost = true;
    tx.send(lost).unwrap();
    runs_recorded(&pool, 9).await;
    let s = status_of(&pool, c.id, pull).await;
    assert_eq!(s.last_failure_at.map(ms), Some(ms(ago(5))));
    assert!(s.last_error.unwrap().contains("lost"));
    // The flows that never ran have no status.
    assert_eq!(
        status_of(&pool, c.id, JobKind::AwbPush)
            .await
            .last_success_at,
        None
    );

    drop(tx);
    tokio::time::timeout(Duration::from_secs(5), recorder)
        .await
        .unwrap()
        .unwrap();
}

fn run(
    c: &db::Connection,
    kind: JobKind,
    outcome: RunOutcome,
    at: DateTime<Utc>,
    error: Option<&str>,
) -> RunRecord {
    RunRecord {
        job_id: JobId::new(),
        attempt: 1,
        kind,
        tenant_id: c.tenant_id,
        connection_id: c.id,
        trigger: "heartbeat".into(),
        payload: serde_json::json!({}),
        outcome,
        error: error.map(|e| AttemptError {
            attempt: 1,
            at_ms: ms(at),
            worker: "w".into(),
            class: ErrorClass::Retryable,
            chain: vec![e.to_owned()],
            retry_after_ms: None,
        }),
        started_at: at,
        finished_at: at,
        worker: "w".into(),
        mapping_version: None,
    }
}

async fn record(pool: &PgPool, runs: &[RunRecord]) {
    db::insert_runs(pool, runs).await.unwrap();
    db::record_flow_status(pool, runs).await.unwrap();
}

/// A tenant "shop" with a no-op connection and a Cel.ro one (no courier), and a tenant "other"
/// on SmartBill ⇄ Cel.ro (no price list); runs at known ages.
async fn fleet(pool: &PgPool) -> (db::Connection, db::Connection) {
    let (_, noop) = noop_tenant(pool, "shop").await;
    let celro = db::add_connection(
        pool,
        noop.tenant_id,
        Erp::Noop,
        Marketplace::Celro,
        None,
        serde_json::json!({}),
    )
    .await
    .unwrap();
    let other = db::add_tenant(pool, "other", "Other").await.unwrap();
    db::add_connection(
        pool,
        other.id,
        Erp::SmartBill,
        Marketplace::Celro,
        None,
        serde_json::json!({}),
    )
    .await
    .unwrap();
    let now = Utc::now();
    let ago = |s: i64| now - chrono::Duration::seconds(s);
    record(
        pool,
        &[
            run(
                &noop,
                JobKind::OrderPull,
                RunOutcome::Succeeded,
                ago(133),
                None,
            ),
            run(
                &celro,
                JobKind::OrderPull,
                RunOutcome::Succeeded,
                ago(500),
                None,
            ),
            run(
                &noop,
                JobKind::CatalogPush,
                RunOutcome::Succeeded,
                ago(7_200),
                None,
            ),
            run(
                &noop,
                JobKind::StockPush,
                RunOutcome::Succeeded,
                ago(60),
                None,
            ),
            run(
                &noop,
                JobKind::StockPush,
                RunOutcome::Retried,
                ago(30),
                Some("celro: 503 Service Unavailable"),
            ),
        ],
    )
    .await;
    (noop, celro)
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn tenants_status_shows_ages_errors_unsupported_and_stale_flows(pool: PgPool) {
    let (noop, celro) = fleet(&pool).await;
    let out = stdout(
        &megzo_command(&pool, "text")
            .args(["tenants", "status", "shop"])
            .output()
            .unwrap(),
    );
    assert!(out.contains("tenant shop ("), "{out}");
    assert!(!out.contains("tenant other"), "one tenant asked for: {out}");
    assert!(
        out.contains(&format!("connection {}  noop ⇄ noop", noop.id)),
        "{out}"
    );
    assert!(
        out.contains(&format!("connection {}  noop ⇄ celro", celro.id)),
        "{out}"
    );
    let line = |conn: &str, flow: &str| {
        out.split("  connection ")
            .find(|b| b.starts_with(conn))
            .and_then(|b| b.lines().find(|l| l.trim_start().starts_with(flow)))
            .unwrap_or_else(|| panic!("no {flow} line for {conn}: {out}"))
            .to_owned()
    };
    let (n, c) = (noop.id.to_string(), celro.id.to_string());
    let pull = line(&n, "order_pull");
    assert!(pull.contains("2m1") && pull.contains(" ago"), "{pull}");
    assert!(!pull.contains("STALE"), "{pull}");
    let stock = line(&n, "stock_push");
    assert!(
        stock.contains("30s ago: celro: 503 Service Unavailable")
            || stock.contains("31s ago: celro: 503"),
        "{stock}"
    );
    let catalog = line(&n, "catalog_push");
    assert!(
        catalog.contains("2h00m ago") && catalog.contains("STALE"),
        "2 h > 3 × 5 min: {catalog}"
    );
    let awb = line(&n, "awb_push");
    assert!(
        awb.contains("never") && !awb.contains("STALE"),
        "a new connection is not stale yet: {awb}"
    );
    let awb = line(&c, "awb_push");
    assert!(awb.contains("not supported: no courier"), "{awb}");

    // JSON, every tenant.
    let out = stdout(
        &megzo_command(&pool, "text")
            .args(["tenants", "status", "--json"])
            .output()
            .unwrap(),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let tenants = v.as_array().unwrap();
    assert_eq!(tenants.len(), 2);
    assert_eq!(tenants[0]["slug"], "other");
    let other_catalog = &tenants[0]["connections"][0]["flows"][0];
    assert_eq!(other_catalog["kind"], "catalog_push");
    assert_eq!(other_catalog["supported"], false);
    assert!(
        other_catalog["why_not"]
            .as_str()
            .unwrap()
            .starts_with("smartbill: ")
    );
    let shop_flows = &tenants[1]["connections"][0]["flows"];
    assert_eq!(shop_flows[0]["stale"], true);
    assert_eq!(shop_flows[2]["kind"], "order_pull");
    let age = shop_flows[2]["last_success_age_secs"].as_u64().unwrap();
    assert!((133..140).contains(&age), "{age}");

    let err = stderr_of_failure(
        &megzo_command(&pool, "text")
            .args(["tenants", "status", "nobody"])
            .output()
            .unwrap(),
    );
    assert!(err.contains("no tenant \"nobody\""), "{err}");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_gauges_export_the_worst_connection_per_tenant_and_flow(pool: PgPool) {
    fleet(&pool).await;
    let prom = workers::telemetry::prometheus();
    let published = workers::freshness::publish(&pool).await.unwrap();
    // shop: six flows (awb_push from the no-op connection only); other: all but the catalog
    // (no price list) and AWBs (no courier).
    assert_eq!(published, 6 + 4);
    let text = prom.render();
    let value = |name: &str, tenant: &str, flow: &str| -> f64 {
        text.lines()
            .find(|l| {
                l.starts_with(&format!("{name}{{"))
                    && l.contains(&format!("tenant=\"{tenant}\""))
                    && l.contains(&format!("flow=\"{flow}\""))
            })
            .unwrap_or_else(|| panic!("no {name} for {tenant}/{flow} in:\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let pull = value("megzo_flow_freshness_seconds", "shop", "order_pull");
    assert!(
        (500.0..510.0).contains(&pull),
        "the older connection counts: {pull}"
    );
    assert_eq!(
        value("megzo_flow_never_succeeded", "shop", "order_pull"),
        0.0
    );
    assert_eq!(value("megzo_flow_never_succeeded", "shop", "awb_push"), 1.0);
    assert!(value("megzo_flow_freshness_seconds", "shop", "catalog_push") >= 7_200.0);
    assert_eq!(
        value("megzo_flow_never_succeeded", "other", "stock_push"),
        1.0
    );
    assert!(
        !text.contains("tenant=\"other\",flow=\"catalog_push\""),
        "unsupported flows are not exported"
    );
}
