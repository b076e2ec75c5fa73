//! The secrets of the wake-up URLs (`wakeup_secrets`): one per connection, stored as the SHA-256
//! of the key, never the key (see [`crate::wakeup`]).

use canonical::{ConnectionId, Erp, Marketplace, TenantId};
use sqlx::PgPool;
use sqlx::error::ErrorKind;

use super::{DbError, violated};

/// What the wake-up endpoint needs to know about a connection, in one lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakeTarget {
    pub connection_id: ConnectionId,
    pub tenant_id: TenantId,
    pub erp: Erp,
    pub marketplace: Marketplace,
    /// The connection is enabled and its tenant active (what the heartbeat schedules).
    pub scheduled: bool,
    /// The SHA-256 of the current key; `None` when no wake-up URL was ever made.
    pub secret_sha256: Option<Vec<u8>>,
    /// The lexoffice webhook signing key (`settings.lexoffice.webhook_public_key_pem`), when the
    /// connection has one: signed lexoffice webhooks are verified with it.
    pub lexoffice_webhook_pem: Option<String>,
}

/// Stores (or replaces: the old URL stops working) the key hash of a connection's wake-up URL.
/// Refuses an unknown connection ([`DbError::UnknownConnectionId`]) and a hash that is not 32
/// bytes.
pub async fn set_wakeup_secret(
    pool: &PgPool,
    connection: ConnectionId,
    secret_sha256: &[u8],
) -> Result<(), DbError> {
    if secret_sha256.len() != 32 {
        return Err(DbError::Invalid {
            what: "wake-up secret hash",
            value: format!("{} bytes", secret_sha256.len()),
            reason: "must be a SHA-256 (32 bytes)".into(),
        });
    }
    sqlx::query!(
        "INSERT INTO wakeup_secrets (connection_id, secret_sha256) VALUES ($1, $2)
         ON CONFLICT (connection_id)
         DO UPDATE SET secret_sha256 = EXCLUDED.secret_sha256, created_at = now()",
        connection.0,
        secret_sha256,
    )
    .execute(pool)
    .await
    .map_err(|e| match violated(&e) {
        Some((ErrorKind::ForeignKeyViolation, c)) if c == "wakeup_secrets_connection_fkey" => {
            DbError::UnknownConnectionId(connection.to_string())
        }
        _ => e.into(),
    })?;
    Ok(())
}

/// The connection with its key hash, or `None` when the connection does not exist.
pub async fn wakeup_target(
    pool: &PgPool,
    connection: ConnectionId,
) -> Result<Option<WakeTarget>, DbError> {
    let row = sqlx::query!(
        "SELECT c.id, c.tenant_id, c.erp, c.marketplace, (c.enabled AND t.active) AS \"scheduled!\",
                w.secret_sha256 AS \"secret_sha256?\",
                c.settings #>> '{lexoffice,webhook_public_key_pem}' AS lexoffice_webhook_pem
         FROM connections c
         JOIN tenants t ON t.id = c.tenant_id
         LEFT JOIN wakeup_secrets w ON w.connection_id = c.id
         WHERE c.id = $1",
        connection.0,
    )
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    let corrupt = |column, reason: String| DbError::Corrupt {
        table: "connections",
        column,
        row: r.id.to_string(),
        reason,
    };
    Ok(Some(WakeTarget {
        connection_id: ConnectionId(r.id),
        tenant_id: TenantId(r.tenant_id),
        erp: r.erp.parse().map_err(|e| corrupt("erp", format!("{e}")))?,
        marketplace: r
            .marketplace
            .parse()
            .map_err(|e| corrupt("marketplace", format!("{e}")))?,
        scheduled: r.scheduled,
        secret_sha256: r.secret_sha256,
        lexoffice_webhook_pem: r.lexoffice_webhook_pem,
    }))
}
