//! Field-mapping rule sets in Postgres: **immutable versions** per (connection, direction)
//! (`mapping_versions`; a trigger refuses any UPDATE), **one active version** each
//! (`mapping_active`), and **an audit row for every change** (`mapping_audit`: save, activate,
//! rollback, with actor, comment, time and the version it replaced). The rule set is a JSON
//! document; the mapping engine validates it before it is saved.
//!
//! Version numbers are allocated under a row lock on the connection, so concurrent saves get
//! consecutive versions and never collide.

use std::fmt;
use std::str::FromStr;

use canonical::ConnectionId;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;

use super::{DbError, check_text};

/// Which way a rule set maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// ERP catalog, prices, stock → marketplace listings.
    ErpToMarketplace,
    /// Marketplace orders and returns → ERP documents.
    MarketplaceToErp,
}

impl Direction {
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::ErpToMarketplace => "erp_to_marketplace",
            Direction::MarketplaceToErp => "marketplace_to_erp",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Direction {
    type Err = DbError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "erp_to_marketplace" => Ok(Direction::ErpToMarketplace),
            "marketplace_to_erp" => Ok(Direction::MarketplaceToErp),
            other => Err(DbError::Invalid {
                what: "mapping direction",
                value: other.to_owned(),
                reason: "expected erp_to_marketplace or marketplace_to_erp".into(),
            }),
        }
    }
}

/// One saved version of a rule set.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingVersion {
    pub connection: ConnectionId,
    pub direction: Direction,
    pub version: i32,
    pub rules: Value,
    pub author: String,
    pub comment: String,
    pub created_at: DateTime<Utc>,
    /// Whether this is the active version now.
    pub active: bool,
}

/// One change of a connection's rule sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub action: String,
    pub version: i32,
    pub previous_version: Option<i32>,
    pub actor: String,
    pub comment: String,
    pub at: DateTime<Utc>,
}

fn unknown_version(c: ConnectionId, d: Direction, version: i32) -> DbError {
    DbError::UnknownMappingVersion {
        connection: c.to_string(),
        direction: d.to_string(),
        version,
    }
}

/// Locks the connection row (serializing version changes of one connection); fails if there is
/// no such connection.
async fn lock_connection(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    c: ConnectionId,
) -> Result<(), DbError> {
    let found = sqlx::query_scalar!("SELECT id FROM connections WHERE id = $1 FOR UPDATE", c.0)
        .fetch_optional(&mut **tx)
        .await?;
    found
        .map(drop)
        .ok_or_else(|| DbError::UnknownConnectionId(c.to_string()))
}

/// Saves `rules` (a JSON object) as the next version; returns its number. It is not active
/// until [`activate_mapping`].
pub async fn save_mapping(
    pool: &PgPool,
    connection: ConnectionId,
    direction: Direction,
    rules: &Value,
    author: &str,
    comment: &str,
) -> Result<i32, DbError> {
    check_text("author", author, 200)?;
    if comment.len() > 2000 {
        return Err(DbError::Invalid {
            what: "comment",
            value: comment.chars().take(40).collect(),
            reason: format!("is {} bytes long; at most 2000 are allowed", comment.len()),
        });
    }
    if !rules.is_object() {
        return Err(DbError::Invalid {
            what: "rule set",
            value: rules.to_string().chars().take(40).collect(),
            reason: "must be a JSON object".into(),
        });
    }
    let mut tx = pool.begin().await?;
    lock_connection(&mut tx, connection).await?;
    let version = sqlx::query_scalar!(
        r#"INSERT INTO mapping_versions (connection_id, direction, version, rules, author, comment)
           SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4, $5
           FROM mapping_versions WHERE connection_id = $1 AND direction = $2
           RETURNING version"#,
        connection.0,
        direction.as_str(),
        rules,
        author,
        comment,
    )
    .fetch_one(&mut *tx)
    .await?;
    audit(
        &mut tx, connection, direction, "save", version, None, author, comment,
    )
    .await?;
    tx.commit().await?;
    Ok(version)
}

#[allow(clippy::too_many_arguments)]
async fn audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    connection: ConnectionId,
    direction: Direction,
    action: &str,
    version: i32,
    previous: Option<i32>,
    actor: &str,
    comment: &str,
) -> Result<(), DbError> {
    sqlx::query!(
        "INSERT INTO mapping_audit
           (connection_id, direction, action, version, previous_version, actor, comment)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        connection.0,
        direction.as_str(),
        action,
        version,
        previous,
        actor,
        comment,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The active version now, locked for the transaction.
async fn active_locked(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    connection: ConnectionId,
    direction: Direction,
) -> Result<Option<i32>, DbError> {
    Ok(sqlx::query_scalar!(
        "SELECT version FROM mapping_active WHERE connection_id = $1 AND direction = $2 FOR UPDATE",
        connection.0,
        direction.as_str(),
    )
    .fetch_optional(&mut **tx)
    .await?)
}

async fn set_active(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    connection: ConnectionId,
    direction: Direction,
    version: i32,
    actor: &str,
) -> Result<(), DbError> {
    sqlx::query!(
        "INSERT INTO mapping_active (connection_id, direction, version, activated_by)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (connection_id, direction)
         DO UPDATE SET version = EXCLUDED.version, activated_by = EXCLUDED.activated_by,
                       activated_at = now()",
        connection.0,
        direction.as_str(),
        version,
        actor,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Makes `version` the active one; returns the version it replaced. Activating the active
/// version again changes nothing but is audited.
pub async fn activate_mapping(
    pool: &PgPool,
    connection: ConnectionId,
    direction: Direction,
    version: i32,
    actor: &str,
    comment: &str,
) -> Result<Option<i32>, DbError> {
    check_text("actor", actor, 200)?;
    let mut tx = pool.begin().await?;
    lock_connection(&mut tx, connection).await?;
    let exists = sqlx::query_scalar!(
        "SELECT version FROM mapping_versions
         WHERE connection_id = $1 AND direction = $2 AND version = $3",
        connection.0,
        direction.as_str(),
        version,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if exists.is_none() {
        return Err(unknown_version(connection, direction, version));
    }
    let previous = active_locked(&mut tx, connection, direction).await?;
    set_active(&mut tx, connection, direction, version, actor).await?;
    audit(
        &mut tx, connection, direction, "activate", version, previous, actor, comment,
    )
    .await?;
    tx.commit().await?;
    Ok(previous)
}

/// Goes back to the version that was active before the current one was activated; returns it.
/// Rolling back again goes further back, until the first activation
/// ([`DbError::NothingToRollBack`]).
pub async fn rollback_mapping(
    pool: &PgPool,
    connection: ConnectionId,
    direction: Direction,
    actor: &str,
    comment: &str,
) -> Result<i32, DbError> {
    check_text("actor", actor, 200)?;
    let nothing = || DbError::NothingToRollBack {
        connection: connection.to_string(),
        direction: direction.to_string(),
    };
    let mut tx = pool.begin().await?;
    lock_connection(&mut tx, connection).await?;
    let current = active_locked(&mut tx, connection, direction)
        .await?
        .ok_or_else(nothing)?;
    // The activation that made `current` active names what was active before it.
    let before = sqlx::query_scalar!(
        "SELECT previous_version FROM mapping_audit
         WHERE connection_id = $1 AND direction = $2 AND action = 'activate' AND version = $3
         ORDER BY id DESC LIMIT 1",
        connection.0,
        direction.as_str(),
        current,
    )
    .fetch_optional(&mut *tx)
    .await?
    .flatten()
    .ok_or_else(nothing)?;
    set_active(&mut tx, connection, direction, before, actor).await?;
    audit(
        &mut tx,
        connection,
        direction,
        "rollback",
        before,
        Some(current),
        actor,
        comment,
    )
    .await?;
    tx.commit().await?;
    Ok(before)
}

fn version_row(
    connection: ConnectionId,
    direction: Direction,
    (version, rules, author, comment, created_at, active): (
        i32,
        Value,
        String,
        String,
        DateTime<Utc>,
        bool,
    ),
) -> MappingVersion {
    MappingVersion {
        connection,
        direction,
        version,
        rules,
        author,
        comment,
        created_at,
        active,
    }
}

/// Every saved version, newest first.
pub async fn list_mappings(
    pool: &PgPool,
    connection: ConnectionId,
    direction: Direction,
) -> Result<Vec<MappingVersion>, DbError> {
    let rows = sqlx::query!(
        r#"SELECT v.version, v.rules, v.author, v.comment, v.created_at,
                  (a.version IS NOT NULL) AS "active!"
           FROM mapping_versions v
           LEFT JOIN mapping_active a ON a.connection_id = v.connection_id
                AND a.direction = v.direction AND a.version = v.version
           WHERE v.connection_id = $1 AND v.direction = $2
           ORDER BY v.version DESC"#,
        connection.0,
        direction.as_str(),
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let t = (
                r.version,
                r.rules,
                r.author,
                r.comment,
                r.created_at,
                r.active,
            );
            version_row(connection, direction, t)
        })
        .collect())
}

/// One saved version (`None`: no such version).
pub async fn get_mapping(
    pool: &PgPool,
    connection: ConnectionId,
    direction: Direction,
    version: i32,
) -> Result<Option<MappingVersion>, DbError> {
    let row = sqlx::query!(
        r#"SELECT v.version, v.rules, v.author, v.comment, v.created_at,
                  (a.version IS NOT NULL) AS "active!"
           FROM mapping_versions v
           LEFT JOIN mapping_active a ON a.connection_id = v.connection_id
                AND a.direction = v.direction AND a.version = v.version
           WHERE v.connection_id = $1 AND v.direction = $2 AND v.version = $3"#,
        connection.0,
        direction.as_str(),
        version,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| {
        let t = (
            r.version,
            r.rules,
            r.author,
            r.comment,
            r.created_at,
            r.active,
        );
        version_row(connection, direction, t)
    }))
}

/// The active version (`None`: none activated yet).
pub async fn active_mapping(
    pool: &PgPool,
    connection: ConnectionId,
    direction: Direction,
) -> Result<Option<MappingVersion>, DbError> {
    let row = sqlx::query!(
        r#"SELECT v.version, v.rules, v.author, v.comment, v.created_at
           FROM mapping_active a
           JOIN mapping_versions v USING (connection_id, direction, version)
           WHERE a.connection_id = $1 AND a.direction = $2"#,
        connection.0,
        direction.as_str(),
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| {
        let t = (r.version, r.rules, r.author, r.comment, r.created_at, true);
        version_row(connection, direction, t)
    }))
}

/// Every change, oldest first.
pub async fn mapping_audit(
    pool: &PgPool,
    connection: ConnectionId,
    direction: Direction,
) -> Result<Vec<AuditRow>, DbError> {
    let rows = sqlx::query_as!(
        AuditRow,
        "SELECT action, version, previous_version, actor, comment, at FROM mapping_audit
         WHERE connection_id = $1 AND direction = $2 ORDER BY id",
        connection.0,
        direction.as_str(),
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}
