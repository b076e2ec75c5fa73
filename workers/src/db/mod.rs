//! The Postgres layer: the system of record of the fleet.
//!
//! Redis holds work in flight and can be lost; everything that must survive lives here, and the
//! schema is `migrations/` at the workspace root (applied by [`migrate`], embedded in
//! [`MIGRATOR`]).
//!
//! Layout:
//! - this file: pool setup ([`connect`], [`migrate`]), the error type [`DbError`] and the mapping
//!   of named constraint violations to typed errors;
//! - [`tenants`]: tenants and their connections, and the heartbeat's target list;
//! - [`runs`]: the job history, one row per attempt event, batch-inserted;
//! - [`dead`]: jobs that exhausted their attempts, and their one-time replay;
//! - [`orders`]: the order idempotency table with fenced writes;
//! - [`cursors`]: where each flow of each connection got to.
//! - [`rates`]: the exchange-rate feed (`fx_rates`).
//! - [`credentials`]: the credentials of connections, encrypted at rest (see [`crate::vault`]).
//! - [`wakeups`]: the key hashes of the wake-up URLs (see [`crate::wakeup`]).
//! - [`freshness`]: the latest success and failure of each flow of each connection
//!   (`flow_status`, kept by the run recorder; see [`crate::freshness`]).
//!
//! Invariants this module keeps:
//! - **Postgres is the authority for orders.** One row per `(tenant, channel, channel_order_id)`
//!   under a unique constraint; [`claim_order`] tells exactly one caller it created the row, no
//!   matter how many race. The Redis order lock is only an optimisation on top.
//! - **Fenced writes.** [`fenced_set_order_state`] applies only when the caller's fencing token is
//!   strictly greater than the stored one, so a worker whose lock expired under it (GC pause,
//!   network partition) cannot overwrite the work of the holder that replaced it. A `created`
//!   order never goes back to `claimed`/`erp_pending`, and a known ERP document id is never
//!   erased: either would invite a second ERP document.
//! - **Job history is append-only and idempotent.** [`insert_runs`] and [`insert_dead`] ignore
//!   rows they already hold, so a worker may re-flush history after a crash without duplicating
//!   it. A dead job is replayed at most once ([`mark_replayed`]).
//! - **Bad input is an error, never a panic**: every refusal is a [`DbError`] variant that names
//!   what was wrong.
//!
//! All SQL goes through sqlx's checked macros; the offline query data lives in `.sqlx/` at the
//! workspace root so builds need no database (`SQLX_OFFLINE=true`).

use std::time::Duration;

use sqlx::PgPool;
use sqlx::error::ErrorKind;
use sqlx::postgres::PgPoolOptions;

pub mod console;
pub mod credentials;
pub mod cursors;
pub mod dead;
pub mod flows;
pub mod freshness;
pub mod mappings;
pub mod orders;
pub mod rates;
pub mod review;
pub mod runs;
pub mod tenants;
pub mod wakeups;

pub use credentials::{
    CredentialError, credential_status, load_credentials, load_sealed, rotate_credentials,
    store_credentials,
};
pub use cursors::{get_cursor, set_cursor};
pub use dead::{DeadFilter, DeadJob, get_dead, insert_dead, list_dead, mark_replayed};
pub use freshness::{FlowFreshness, flow_freshness, record_flow_status};
pub use orders::{Claim, OrderRow, OrderState, claim_order, fenced_set_order_state, get_order};
pub use runs::{RunFilter, RunOutcome, RunRecord, RunRow, insert_runs, list_runs};
pub use tenants::{
    Connection, Tenant, add_connection, add_tenant, find_tenant, heartbeat_targets,
    list_connections, list_tenants, set_tenant_cap, tenant_caps,
};
pub use wakeups::{WakeTarget, set_wakeup_secret, wakeup_target};

/// The schema migrations, embedded at compile time from `migrations/` at the workspace root.
/// Used by [`migrate`] and by `#[sqlx::test(migrator = "crate::db::MIGRATOR")]`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// How long a caller waits for a pooled connection before getting an error instead of hanging.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the Postgres layer can refuse or fail with. Each variant names what was wrong so the
/// support CLI can print it as is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// A tenant slug that does not follow the slug rules.
    #[error("invalid tenant slug {slug:?}: {reason}")]
    InvalidSlug { slug: String, reason: String },
    /// Some other argument was refused before reaching the database.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: String,
    },
    /// The tenant (slug or id) does not exist.
    #[error("unknown tenant {0}")]
    UnknownTenant(String),
    /// The connection does not exist, or does not belong to the tenant given with it.
    #[error("unknown connection {connection} of tenant {tenant}")]
    UnknownConnection { tenant: String, connection: String },
    /// No order row for this key: it was never claimed (or its tenant was deleted).
    #[error("unknown order {channel}/{channel_order_id} of tenant {tenant}")]
    UnknownOrder {
        tenant: String,
        channel: String,
        channel_order_id: String,
    },
    /// No dead job with this id.
    #[error("unknown dead job {0}")]
    UnknownDeadJob(String),
    /// The connection id names no connection.
    #[error("unknown connection {0}")]
    UnknownConnectionId(String),
    /// No such saved mapping version.
    #[error("connection {connection} has no {direction} mapping version {version}")]
    UnknownMappingVersion {
        connection: String,
        direction: String,
        version: i32,
    },
    /// A rollback with nothing to roll back to.
    #[error("connection {connection} has no earlier active {direction} mapping to roll back to")]
    NothingToRollBack {
        connection: String,
        direction: String,
    },
    /// A unique key is already taken.
    #[error("{what} {value:?} already exists")]
    Duplicate { what: &'static str, value: String },
    /// The order state change would break the exactly-once rules (e.g. leaving `created` for
    /// `erp_pending`, which would invite a second ERP document).
    #[error("order {channel_order_id} cannot move from {from} to {to}")]
    IllegalTransition {
        channel_order_id: String,
        from: String,
        to: String,
    },
    /// A stored value this code cannot read (a hand-edited row, or a newer schema).
    #[error("unreadable {column} in {table} row {row}: {reason}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        row: String,
        reason: String,
    },
    /// The pool could not be built or its first connection failed.
    #[error("cannot connect to Postgres: {0}")]
    Connect(#[source] sqlx::Error),
    /// Applying the schema migrations failed.
    #[error("migrating the schema failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A value could not be converted to JSON for storage.
    #[error("cannot encode {what} as JSON: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// Any other database error.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

/// A JSON value Postgres `jsonb` accepts: NUL characters (which an API's binary error body or an
/// unreadable payload can carry, and `jsonb` refuses) are replaced with U+FFFD in every string and
/// key, so one such value cannot block a batch of job history or the dead-job outbox.
/// Cuts `text` to at most `max` characters, marking the cut with `…` (stored messages, tables).
pub(crate) fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

pub(crate) fn storable_json(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(queue_schema::job::storable(s)),
        Value::Array(items) => Value::Array(items.into_iter().map(storable_json).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (queue_schema::job::storable(k), storable_json(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Opens a pool of at most `max_connections` connections to `url` and checks that it connects.
/// Waiting for a free connection is bounded by [`ACQUIRE_TIMEOUT`] so an exhausted pool surfaces
/// as an error, not a hang.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, DbError> {
    if max_connections == 0 {
        return Err(DbError::Invalid {
            what: "max_connections",
            value: "0".into(),
            reason: "a pool needs at least one connection".into(),
        });
    }
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect(url)
        .await
        .map_err(DbError::Connect)
}

/// Brings the schema up to date. Safe to run from several processes at once (sqlx takes an
/// advisory lock) and a no-op when nothing is pending.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// The constraint a database error violated, with the kind of violation, if it is one.
pub(crate) fn violated(err: &sqlx::Error) -> Option<(ErrorKind, String)> {
    match err {
        sqlx::Error::Database(db) => Some((db.kind(), db.constraint()?.to_owned())),
        _ => None,
    }
}

/// Refuses text that is empty (after trimming), longer than `max` bytes, or holds control
/// characters: keys and names end up in logs, URLs and Redis keys.
pub(crate) fn check_text(what: &'static str, value: &str, max: usize) -> Result<(), DbError> {
    let reason = if value.trim().is_empty() {
        "must not be empty".to_owned()
    } else if value.len() > max {
        format!("is {} bytes long; at most {max} are allowed", value.len())
    } else if let Some(c) = value.chars().find(|c| c.is_control()) {
        format!("contains the control character {c:?}")
    } else {
        return Ok(());
    };
    Err(DbError::Invalid {
        what,
        value: value.to_owned(),
        reason,
    })
}

/// Maps a bad limit (0 or negative) to the default and caps huge ones, so listings stay bounded.
pub(crate) fn effective_limit(limit: i64) -> i64 {
    const DEFAULT: i64 = 100;
    const MAX: i64 = 10_000;
    if limit <= 0 { DEFAULT } else { limit.min(MAX) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_checks_name_the_problem() {
        assert!(check_text("flow", "orders", 64).is_ok());
        let err = check_text("flow", "  ", 64).unwrap_err().to_string();
        assert!(err.contains("flow") && err.contains("empty"), "{err}");
        let err = check_text("flow", "a\nb", 64).unwrap_err().to_string();
        assert!(err.contains("control character"), "{err}");
        let err = check_text("flow", &"x".repeat(65), 64)
            .unwrap_err()
            .to_string();
        assert!(err.contains("65 bytes"), "{err}");
    }

    #[test]
    fn limits_default_and_cap() {
        assert_eq!(effective_limit(0), 100);
        assert_eq!(effective_limit(-5), 100);
        assert_eq!(effective_limit(7), 7);
        assert_eq!(effective_limit(i64::MAX), 10_000);
    }

    #[tokio::test]
    async fn a_pool_of_zero_connections_is_refused() {
        let err = connect("postgres://nobody@127.0.0.1:1/x", 0)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                DbError::Invalid {
                    what: "max_connections",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_bad_url_is_a_connect_error() {
        // (An unreachable server is retried until the acquire timeout, 10 s: too slow for a test.)
        let err = connect("postgres://nobody@127.0.0.1:notaport/x", 1)
            .await
            .unwrap_err();
        assert!(matches!(err, DbError::Connect(_)), "{err}");
        assert!(
            err.to_string().starts_with("cannot connect to Postgres"),
            "{err}"
        );
    }

    #[sqlx::test(migrations = false)]
    async fn migrate_builds_the_schema_and_is_idempotent(pool: PgPool) {
        migrate(&pool).await.unwrap();
        migrate(&pool).await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'
             ORDER BY table_name",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let want = [
            "audit_log",
            "connection_credentials",
            "connections",
            "console_sessions",
            "console_tokens",
            "console_users",
            "dead_jobs",
            "flow_status",
            "fx_rates",
            "job_runs",
            "listing_state",
            "mapping_active",
            "mapping_audit",
            "mapping_versions",
            "orders",
            "return_items",
            "stock_buffers",
            "stock_levels",
            "stock_pushed",
            "stock_reservations",
            "sync_cursors",
            "tenants",
            "wakeup_secrets",
        ];
        assert_eq!(tables, want);
    }
}
