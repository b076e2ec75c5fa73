//! Orders whose outcome is in doubt (`needs_review`) and what support does about them: mark the
//! order created with the ERP document support found, send it back to be created (support
//! checked that the ERP has none), or record it cancelled once the marketplace has it
//! cancelled. Every change is guarded by `state = 'needs_review'`, so two people resolving the
//! same order at once cannot both succeed, and a resolved order is never resolved again.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::DbError;
use canonical::TenantId;

/// An order parked for review, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewOrder {
    pub id: i64,
    pub tenant_id: Uuid,
    pub connection_id: Option<Uuid>,
    pub channel: String,
    pub channel_order_id: String,
    /// Why it was parked: what the ERP or the marketplace answered.
    pub evidence: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The order as pulled (holds personal data: mask before showing it).
    #[serde(skip)]
    pub order_json: Option<serde_json::Value>,
}

/// Orders in review, oldest first, of one tenant or every tenant.
pub async fn orders_in_review(
    pool: &PgPool,
    tenant: Option<TenantId>,
    limit: i64,
) -> Result<Vec<ReviewOrder>, DbError> {
    Ok(sqlx::query_as!(
        ReviewOrder,
        "SELECT id, tenant_id, connection_id, channel, channel_order_id,
                review_reason AS evidence, created_at, updated_at, order_json
         FROM orders
         WHERE state = 'needs_review' AND ($1::uuid IS NULL OR tenant_id = $1)
         ORDER BY updated_at, id LIMIT $2",
        tenant.map(|t| t.0),
        limit.clamp(1, 1000),
    )
    .fetch_all(pool)
    .await?)
}

/// One order row by id, whatever its state (for the review page and the actions' checks).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderSummary {
    pub id: i64,
    pub tenant_id: Uuid,
    pub connection_id: Option<Uuid>,
    pub channel: String,
    pub channel_order_id: String,
    pub state: String,
    pub erp_document_id: Option<String>,
    pub evidence: Option<String>,
    #[serde(skip)]
    pub order_json: Option<serde_json::Value>,
}

pub async fn order_by_id(pool: &PgPool, id: i64) -> Result<Option<OrderSummary>, DbError> {
    Ok(sqlx::query_as!(
        OrderSummary,
        "SELECT id, tenant_id, connection_id, channel, channel_order_id, state, erp_document_id,
                review_reason AS evidence, order_json
         FROM orders WHERE id = $1",
        id,
    )
    .fetch_optional(pool)
    .await?)
}

/// Support found the order's document in the ERP: the order is `created` with it (and the
/// document as the flows record it), so its follow-ups run. `false`: the order was not in
/// review (any more).
pub async fn mark_created(
    pool: &PgPool,
    id: i64,
    document_id: &str,
    document_json: &serde_json::Value,
    note: &str,
) -> Result<bool, DbError> {
    super::check_text("ERP document id", document_id, 200)?;
    let done = sqlx::query!(
        "UPDATE orders SET state = 'created', erp_document_id = $2, document_json = $3,
                review_reason = $4, updated_at = now()
         WHERE id = $1 AND state = 'needs_review'",
        id,
        document_id,
        document_json,
        note,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Support checked that the ERP has no document for the order: it goes back to `claimed`, so
/// the next `order_pull` of it creates one (its stock reservation, if any, is kept).
pub async fn send_back_to_create(pool: &PgPool, id: i64, note: &str) -> Result<bool, DbError> {
    let done = sqlx::query!(
        "UPDATE orders SET state = 'claimed', review_reason = $2, updated_at = now()
         WHERE id = $1 AND state = 'needs_review'",
        id,
        note,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The marketplace has the order cancelled: `cancelled` (terminal), its units given back, in
/// one transaction (a failure leaves the order in review with its units held, to be done
/// again). Returns the SKUs whose stock changed, or `None` if the order was not in review.
pub async fn mark_cancelled(
    pool: &PgPool,
    id: i64,
    note: &str,
) -> Result<Option<Vec<String>>, DbError> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query!(
        "UPDATE orders SET state = 'cancelled', review_reason = $2, updated_at = now()
         WHERE id = $1 AND state = 'needs_review'",
        id,
        note,
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    let skus = super::flows::release_order_in(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Some(skus))
}

/// The latest pulled orders of a connection (canonical JSON, personal data included: for
/// mapping previews, never shown as they are).
pub async fn recent_order_payloads(
    pool: &PgPool,
    connection: canonical::ConnectionId,
    limit: i64,
) -> Result<Vec<serde_json::Value>, DbError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT order_json AS "order_json!" FROM orders
           WHERE connection_id = $1 AND order_json IS NOT NULL
           ORDER BY created_at DESC, id DESC LIMIT $2"#,
        connection.0,
        limit.clamp(1, 1000),
    )
    .fetch_all(pool)
    .await?)
}
