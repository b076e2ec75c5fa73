//! Sync cursors: where each flow of each connection got to (a marketplace's order cursor, an
//! ERP's change token, ...). Progress lives here, not in Redis, so a Redis loss only costs a
//! re-run from the last saved cursor.

use canonical::{ConnectionId, TenantId};
use sqlx::PgPool;
use sqlx::error::ErrorKind;

use super::{DbError, check_text, violated};

/// The saved cursor of `flow` on `connection`, or `None` if the flow never saved one (start from
/// the beginning, or from the connector's default window).
pub async fn get_cursor(
    pool: &PgPool,
    connection: ConnectionId,
    flow: &str,
) -> Result<Option<String>, DbError> {
    let cursor = sqlx::query_scalar!(
        "SELECT cursor FROM sync_cursors WHERE connection_id = $1 AND flow = $2",
        connection.0,
        flow,
    )
    .fetch_optional(pool)
    .await?;
    Ok(cursor)
}

/// Saves (inserts or replaces) the cursor of `flow` on `connection`. Call it only after the work
/// up to the cursor is durably done. The connection must exist and belong to `tenant`
/// ([`DbError::UnknownConnection`] otherwise); `flow` is a short name, `cursor` non-empty.
pub async fn set_cursor(
    pool: &PgPool,
    tenant: TenantId,
    connection: ConnectionId,
    flow: &str,
    cursor: &str,
) -> Result<(), DbError> {
    check_text("flow", flow, 64)?;
    check_text("cursor", cursor, 8192)?;
    // A conflicting row of another tenant is left alone (the WHERE of the DO UPDATE), which shows
    // as zero rows affected: the connection is not this tenant's.
    let unknown = || DbError::UnknownConnection {
        tenant: tenant.to_string(),
        connection: connection.to_string(),
    };
    let done = sqlx::query!(
        "INSERT INTO sync_cursors (tenant_id, connection_id, flow, cursor) VALUES ($1, $2, $3, $4)
         ON CONFLICT (connection_id, flow)
         DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = now()
         WHERE sync_cursors.tenant_id = EXCLUDED.tenant_id",
        tenant.0,
        connection.0,
        flow,
        cursor,
    )
    .execute(pool)
    .await
    .map_err(|e| match violated(&e) {
        Some((ErrorKind::ForeignKeyViolation, c)) if c == "sync_cursors_connection_fkey" => {
            unknown()
        }
        _ => e.into(),
    })?;
    if done.rows_affected() == 0 {
        return Err(unknown());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use canonical::{Erp, Marketplace};
    use serde_json::json;

    use super::*;
    use crate::db::{add_connection, add_tenant};

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn cursors_upsert_per_connection_and_flow(pool: PgPool) {
        let t = add_tenant(&pool, "acme", "Acme").await.unwrap().id;
        let c = add_connection(&pool, t, Erp::Noop, Marketplace::Cdon, None, json!({}))
            .await
            .unwrap()
            .id;
        assert_eq!(get_cursor(&pool, c, "orders").await.unwrap(), None);
        set_cursor(&pool, t, c, "orders", "2025-03-01T12:00:00Z")
            .await
            .unwrap();
        set_cursor(&pool, t, c, "returns", "r-7").await.unwrap();
        set_cursor(&pool, t, c, "orders", "2025-03-01T12:05:00Z")
            .await
            .unwrap();
        assert_eq!(
            get_cursor(&pool, c, "orders").await.unwrap().as_deref(),
            Some("2025-03-01T12:05:00Z")
        );
        assert_eq!(
            get_cursor(&pool, c, "returns").await.unwrap().as_deref(),
            Some("r-7")
        );

        let err = set_cursor(&pool, t, ConnectionId::new(), "orders", "x")
            .await
            .unwrap_err();
        assert!(matches!(err, DbError::UnknownConnection { .. }), "{err}");
        // Another tenant can neither create nor overwrite this connection's cursors.
        let other = add_tenant(&pool, "other", "Other").await.unwrap().id;
        let err = set_cursor(&pool, other, c, "orders", "hijack")
            .await
            .unwrap_err();
        assert!(matches!(err, DbError::UnknownConnection { .. }), "{err}");
        let err = set_cursor(&pool, other, c, "stock", "hijack")
            .await
            .unwrap_err();
        assert!(matches!(err, DbError::UnknownConnection { .. }), "{err}");
        assert_eq!(
            get_cursor(&pool, c, "orders").await.unwrap().as_deref(),
            Some("2025-03-01T12:05:00Z")
        );
        let err = set_cursor(&pool, t, c, "", "x").await.unwrap_err();
        assert!(
            matches!(err, DbError::Invalid { what: "flow", .. }),
            "{err}"
        );
    }
}
