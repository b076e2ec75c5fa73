//! Helpers shared by the tests that drive the `megzo` binary: the test's own database URL, the
//! binary with a clean environment, output checks, a tenant on the no-op connector.

#![allow(dead_code)] // each test binary uses its own subset

use std::process::{Command, Output};

use canonical::{Erp, Marketplace};
use sqlx::PgPool;
use workers::db;

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The URL of the test's own database (same server as DATABASE_URL, the test's database name).
pub fn db_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".to_owned());
    let name = pool
        .connect_options()
        .get_database()
        .expect("sqlx::test pools name their database")
        .to_owned();
    match base.rfind('/') {
        Some(i) => format!("{}/{name}", &base[..i]),
        None => panic!("DATABASE_URL {base:?} has no database part"),
    }
}

/// `megzo --log-format <format>` on the test's database and Redis, with no ambient config file.
pub fn megzo_command(pool: &PgPool, log_format: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_megzo"));
    c.args(["--log-format", log_format])
        .env("DATABASE_URL", db_url(pool))
        .env("REDIS_URL", redis_url())
        .env_remove("MEGZO_CONFIG");
    c
}

/// The process's stdout, after asserting it succeeded (its output is shown when it did not).
pub fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "megzo failed: {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A tenant with one no-op connection.
pub async fn noop_tenant(pool: &PgPool, slug: &str) -> (db::Tenant, db::Connection) {
    let t = db::add_tenant(pool, slug, "Shop").await.unwrap();
    let c = db::add_connection(
        pool,
        t.id,
        Erp::Noop,
        Marketplace::Noop,
        None,
        serde_json::json!({}),
    )
    .await
    .unwrap();
    (t, c)
}

/// The process's stderr, after asserting it failed (a refusal is part of the contract).
pub fn stderr_of_failure(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "megzo was expected to refuse, but succeeded: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}
