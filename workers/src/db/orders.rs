//! The order idempotency table: the exactly-once authority for marketplace orders.
//!
//! One row per `(tenant, channel, channel_order_id)` under a unique constraint. A worker first
//! claims the order ([`claim_order`]: exactly one caller ever gets [`Claim::New`]), then moves it
//! through `claimed → erp_pending → created | needs_review` with fenced writes
//! ([`fenced_set_order_state`]): the fencing token comes with the Redis order lock and grows with
//! every new holder, so a holder whose lock expired under it is refused instead of overwriting
//! the newer holder's progress. The Redis lock avoids duplicate work; this table prevents
//! duplicate documents.

use std::fmt;
use std::str::FromStr;

use canonical::{ChannelOrderId, TenantId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::error::ErrorKind;
use uuid::Uuid;

use super::{DbError, check_text, violated};

/// Where an order is on its way to exactly one ERP document. Stored strings
/// ([`OrderState::as_str`]) must not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Seen and owned by this system; no ERP call made yet.
    Claimed,
    /// An ERP call is (or may be) in flight: after a crash, look the document up before creating.
    ErpPending,
    /// The ERP document exists; `erp_document_id` names it.
    Created,
    /// An ambiguous failure support must resolve (duplicates are worse than delay).
    NeedsReview,
    /// The marketplace cancelled the order. Terminal.
    Cancelled,
}

impl OrderState {
    /// Every state, in declaration order.
    pub const ALL: [OrderState; 5] = [
        OrderState::Claimed,
        OrderState::ErpPending,
        OrderState::Created,
        OrderState::NeedsReview,
        OrderState::Cancelled,
    ];

    /// The stable string stored in `orders.state`.
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderState::Claimed => "claimed",
            OrderState::ErpPending => "erp_pending",
            OrderState::Created => "created",
            OrderState::NeedsReview => "needs_review",
            OrderState::Cancelled => "cancelled",
        }
    }

    /// Whether a fenced write may move an order from `self` to `to`. Two moves are refused:
    /// leaving `created` for `claimed`/`erp_pending` (that would let a second ERP document be
    /// made) and leaving `cancelled` (terminal). Re-writing the same state is allowed.
    pub const fn can_move_to(self, to: OrderState) -> bool {
        use OrderState::*;
        match (self, to) {
            (Cancelled, Cancelled) => true,
            (Cancelled, _) => false,
            (Created, Claimed | ErpPending) => false,
            _ => true,
        }
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderState {
    type Err = DbError;
    /// Parses the stored string; the error lists the valid ones.
    fn from_str(s: &str) -> Result<Self, DbError> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| DbError::Invalid {
                what: "order state",
                value: s.to_owned(),
                reason: "expected one of: claimed, erp_pending, created, needs_review, cancelled"
                    .into(),
            })
    }
}

/// A stored order row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    pub id: i64,
    pub tenant_id: TenantId,
    pub channel: String,
    pub channel_order_id: String,
    pub state: OrderState,
    /// The fencing token of the last write that applied (0 right after the claim).
    pub fence: i64,
    pub erp_document_id: Option<String>,
    pub review_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// The result of [`claim_order`]: whether this call created the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This call inserted the row (state `claimed`, fence 0): exactly one caller sees this.
    New(OrderRow),
    /// The order was already known; its row as it is now.
    Existing(OrderRow),
}

struct OrderDb {
    id: i64,
    tenant_id: Uuid,
    channel: String,
    channel_order_id: String,
    state: String,
    fence: i64,
    erp_document_id: Option<String>,
    review_reason: Option<String>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<OrderDb> for OrderRow {
    type Error = DbError;
    fn try_from(r: OrderDb) -> Result<Self, DbError> {
        let state = r.state.parse().map_err(|e| DbError::Corrupt {
            table: "orders",
            column: "state",
            row: r.id.to_string(),
            reason: format!("{e}"),
        })?;
        Ok(OrderRow {
            id: r.id,
            tenant_id: TenantId(r.tenant_id),
            channel: r.channel,
            channel_order_id: r.channel_order_id,
            state,
            fence: r.fence,
            erp_document_id: r.erp_document_id,
            review_reason: r.review_reason,
            updated_at: r.updated_at,
        })
    }
}

fn check_key(channel: &str, channel_order_id: &str) -> Result<(), DbError> {
    check_text("channel", channel, 64)?;
    ChannelOrderId::new(channel_order_id).map_err(|e| DbError::Invalid {
        what: "channel order id",
        value: channel_order_id.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(())
}

/// Claims an order: inserts its row (`claimed`, fence 0) unless it exists, then returns
/// [`Claim::New`] to the one caller whose insert won and [`Claim::Existing`] with the current row
/// to everyone else, however many race. An unknown tenant is [`DbError::UnknownTenant`].
pub async fn claim_order(
    pool: &PgPool,
    tenant: TenantId,
    channel: &str,
    channel_order_id: &str,
) -> Result<Claim, DbError> {
    check_key(channel, channel_order_id)?;
    // The row can only vanish between the two statements if its tenant is deleted meanwhile; a
    // second round then reports the unknown tenant.
    for _ in 0..2 {
        let inserted = sqlx::query_as!(
            OrderDb,
            "INSERT INTO orders (tenant_id, channel, channel_order_id) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, channel, channel_order_id) DO NOTHING
             RETURNING id, tenant_id, channel, channel_order_id, state, fence, erp_document_id,
                       review_reason, updated_at",
            tenant.0,
            channel,
            channel_order_id,
        )
        .fetch_optional(pool)
        .await
        .map_err(|e| match violated(&e) {
            Some((ErrorKind::ForeignKeyViolation, c)) if c == "orders_tenant_fkey" => {
                DbError::UnknownTenant(tenant.to_string())
            }
            _ => e.into(),
        })?;
        if let Some(row) = inserted {
            return Ok(Claim::New(row.try_into()?));
        }
        if let Some(row) = get_order(pool, tenant, channel, channel_order_id).await? {
            return Ok(Claim::Existing(row));
        }
    }
    Err(DbError::UnknownTenant(tenant.to_string()))
}

/// The fenced write. Moves the order to `state` and stores `fence`, only if `fence` is at least
/// the stored fence; returns `Ok(false)` (nothing written) when it is smaller, i.e. when the
/// caller's lock was taken over by a newer holder. An equal fence is the same holder writing
/// again (ERP pending, then created): no two acquisitions ever get the same fence.
///
/// `erp_document_id`: `None` keeps the stored id; a known id is never erased or replaced by a
/// different one ([`DbError::Invalid`]). `review_reason` is stored as given (`None` clears it).
/// `created` requires a document id (given now or stored before). A move that
/// [`OrderState::can_move_to`] forbids is [`DbError::IllegalTransition`]; an order never claimed is
/// [`DbError::UnknownOrder`].
#[allow(clippy::too_many_arguments)]
pub async fn fenced_set_order_state(
    pool: &PgPool,
    tenant: TenantId,
    channel: &str,
    channel_order_id: &str,
    state: OrderState,
    fence: i64,
    erp_document_id: Option<&str>,
    review_reason: Option<&str>,
) -> Result<bool, DbError> {
    check_key(channel, channel_order_id)?;
    if let Some(doc) = erp_document_id {
        check_text("erp document id", doc, 200)?;
    }
    if let Some(reason) = review_reason {
        check_text("review reason", reason, 4000)?;
    }
    let from: Vec<String> = OrderState::ALL
        .into_iter()
        .filter(|s| s.can_move_to(state))
        .map(|s| s.as_str().to_owned())
        .collect();
    let done = sqlx::query!(
        "UPDATE orders
         SET state = $4, fence = $5, erp_document_id = COALESCE($6, erp_document_id),
             review_reason = $7, updated_at = now()
         WHERE tenant_id = $1 AND channel = $2 AND channel_order_id = $3
           AND fence <= $5
           AND state = ANY($8::text[])
           AND ($6::text IS NULL OR erp_document_id IS NULL OR erp_document_id = $6)",
        tenant.0,
        channel,
        channel_order_id,
        state.as_str(),
        fence,
        erp_document_id,
        review_reason,
        &from,
    )
    .execute(pool)
    .await
    .map_err(|e| match violated(&e) {
        Some((ErrorKind::CheckViolation, c)) if c == "orders_created_has_document" => {
            DbError::Invalid {
                what: "erp document id",
                value: "none".into(),
                reason: format!(
                    "order {channel_order_id} cannot be created without the ERP document id"
                ),
            }
        }
        _ => e.into(),
    })?;
    if done.rows_affected() == 1 {
        return Ok(true);
    }
    // Nothing written: say why. The fence check comes first: a stale holder learns only that it
    // is stale, whatever else is wrong with its write.
    let Some(current) = get_order(pool, tenant, channel, channel_order_id).await? else {
        return Err(DbError::UnknownOrder {
            tenant: tenant.to_string(),
            channel: channel.to_owned(),
            channel_order_id: channel_order_id.to_owned(),
        });
    };
    if current.fence > fence {
        return Ok(false);
    }
    if !current.state.can_move_to(state) {
        return Err(DbError::IllegalTransition {
            channel_order_id: channel_order_id.to_owned(),
            from: current.state.to_string(),
            to: state.to_string(),
        });
    }
    if let (Some(stored), Some(given)) = (&current.erp_document_id, erp_document_id)
        && stored != given
    {
        return Err(DbError::Invalid {
            what: "erp document id",
            value: given.to_owned(),
            reason: format!("order {channel_order_id} already has ERP document {stored}"),
        });
    }
    // The row changed between the two statements (a newer holder wrote it): refused.
    Ok(false)
}

/// The order row for this key, if it was ever claimed.
pub async fn get_order(
    pool: &PgPool,
    tenant: TenantId,
    channel: &str,
    channel_order_id: &str,
) -> Result<Option<OrderRow>, DbError> {
    let row = sqlx::query_as!(
        OrderDb,
        "SELECT id, tenant_id, channel, channel_order_id, state, fence, erp_document_id,
                review_reason, updated_at
         FROM orders WHERE tenant_id = $1 AND channel = $2 AND channel_order_id = $3",
        tenant.0,
        channel,
        channel_order_id,
    )
    .fetch_optional(pool)
    .await?;
    row.map(OrderRow::try_from).transpose()
}

#[cfg(test)]
mod tests {
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

    use super::*;
    use crate::db::add_tenant;

    async fn tenant(pool: &PgPool) -> TenantId {
        add_tenant(pool, "acme", "Acme").await.unwrap().id
    }

    #[test]
    fn created_never_goes_back_and_cancelled_is_terminal() {
        use OrderState::*;
        assert!(Claimed.can_move_to(ErpPending));
        assert!(ErpPending.can_move_to(Created));
        assert!(NeedsReview.can_move_to(ErpPending));
        assert!(Created.can_move_to(Created));
        assert!(Created.can_move_to(Cancelled));
        assert!(!Created.can_move_to(ErpPending));
        assert!(!Created.can_move_to(Claimed));
        assert!(!Cancelled.can_move_to(Created));
        for s in OrderState::ALL {
            assert_eq!(s.as_str().parse::<OrderState>().unwrap(), s);
        }
        assert!(
            "done"
                .parse::<OrderState>()
                .unwrap_err()
                .to_string()
                .contains("\"done\"")
        );
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn claim_is_new_once_then_existing(pool: PgPool) {
        let t = tenant(&pool).await;
        let Claim::New(first) = claim_order(&pool, t, "cdon", "A-1").await.unwrap() else {
            panic!("first claim must be New");
        };
        assert_eq!(
            (first.state, first.fence, first.tenant_id),
            (OrderState::Claimed, 0, t)
        );
        assert_eq!(
            (first.channel.as_str(), first.channel_order_id.as_str()),
            ("cdon", "A-1")
        );
        match claim_order(&pool, t, "cdon", "A-1").await.unwrap() {
            Claim::Existing(row) => assert_eq!(row, first),
            other => panic!("second claim must be Existing, got {other:?}"),
        }
        // Same order id on another channel is another order.
        assert!(matches!(
            claim_order(&pool, t, "celro", "A-1").await.unwrap(),
            Claim::New(_)
        ));
        assert_eq!(
            get_order(&pool, t, "cdon", "A-1").await.unwrap(),
            Some(first)
        );
        assert_eq!(get_order(&pool, t, "cdon", "A-2").await.unwrap(), None);

        let ghost = TenantId::new();
        let err = claim_order(&pool, ghost, "cdon", "A-1").await.unwrap_err();
        assert!(
            matches!(&err, DbError::UnknownTenant(g) if *g == ghost.to_string()),
            "{err}"
        );
        let err = claim_order(&pool, t, "cdon", "A 1").await.unwrap_err();
        assert!(
            matches!(
                err,
                DbError::Invalid {
                    what: "channel order id",
                    ..
                }
            ),
            "{err}"
        );
        let err = claim_order(&pool, t, "", "A-1").await.unwrap_err();
        assert!(
            matches!(
                err,
                DbError::Invalid {
                    what: "channel",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn eight_concurrent_claims_have_exactly_one_new(
        opts: PgPoolOptions,
        connect: PgConnectOptions,
    ) {
        let pool = opts.max_connections(8).connect_with(connect).await.unwrap();
        let t = tenant(&pool).await;
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (pool, barrier) = (pool.clone(), barrier.clone());
                tokio::spawn(async move {
                    let mut conn_warm = pool.acquire().await.unwrap();
                    sqlx::query("SELECT 1")
                        .execute(&mut *conn_warm)
                        .await
                        .unwrap();
                    drop(conn_warm);
                    barrier.wait().await;
                    claim_order(&pool, t, "cdon", "RACE-1").await
                })
            })
            .collect();
        let mut new = 0;
        let mut ids = Vec::new();
        for task in tasks {
            match task.await.unwrap().unwrap() {
                Claim::New(row) => {
                    new += 1;
                    ids.push(row.id);
                }
                Claim::Existing(row) => ids.push(row.id),
            }
        }
        assert_eq!(new, 1);
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "one row: {ids:?}");
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rows, 1);
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_stale_fence_is_refused_and_the_newer_write_stays(pool: PgPool) {
        let t = tenant(&pool).await;
        claim_order(&pool, t, "cdon", "F-1").await.unwrap();
        let set = |state, fence, doc, reason| {
            let pool = pool.clone();
            async move {
                fenced_set_order_state(&pool, t, "cdon", "F-1", state, fence, doc, reason).await
            }
        };
        assert!(set(OrderState::ErpPending, 2, None, None).await.unwrap());
        // The old holder (fence 1) wakes up and tries to write: refused, nothing changes.
        assert!(
            !set(OrderState::NeedsReview, 1, None, Some("timeout"))
                .await
                .unwrap()
        );
        assert!(
            set(OrderState::ErpPending, 2, None, None).await.unwrap(),
            "equal is the same holder writing again (fences are never shared)"
        );
        let row = get_order(&pool, t, "cdon", "F-1").await.unwrap().unwrap();
        assert_eq!(
            (row.state, row.fence, row.review_reason),
            (OrderState::ErpPending, 2, None)
        );

        // Created needs a document id; once known it is kept and never replaced.
        let err = set(OrderState::Created, 3, None, None).await.unwrap_err();
        assert!(err.to_string().contains("ERP document id"), "{err}");
        assert!(
            set(OrderState::Created, 3, Some("MGZ-0042"), None)
                .await
                .unwrap()
        );
        assert!(set(OrderState::Created, 4, None, None).await.unwrap());
        let row = get_order(&pool, t, "cdon", "F-1").await.unwrap().unwrap();
        assert_eq!((row.state, row.fence), (OrderState::Created, 4));
        assert_eq!(row.erp_document_id.as_deref(), Some("MGZ-0042"));
        let err = set(OrderState::Created, 5, Some("MGZ-0043"), None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("MGZ-0042"), "{err}");

        // A created order never goes back to erp_pending, even with a newer fence.
        let err = set(OrderState::ErpPending, 6, None, None)
            .await
            .unwrap_err();
        assert!(matches!(err, DbError::IllegalTransition { .. }), "{err}");
        // ... but a stale holder only learns that it is stale.
        assert!(!set(OrderState::ErpPending, 1, None, None).await.unwrap());
        let row = get_order(&pool, t, "cdon", "F-1").await.unwrap().unwrap();
        assert_eq!((row.state, row.fence), (OrderState::Created, 4));

        let err =
            fenced_set_order_state(&pool, t, "cdon", "NOPE", OrderState::Claimed, 9, None, None)
                .await
                .unwrap_err();
        assert!(matches!(err, DbError::UnknownOrder { .. }), "{err}");
    }
}
