//! What support does, shared by the CLI (`megzo jobs replay`) and the console (`megzo serve`):
//! replay a dead job, and resolve an order whose outcome is in doubt.

use canonical::{ChannelOrderId, Erp, Marketplace, SalesDocument, SalesDocumentKind, Sku};
use queue_schema::{JobId, JobKind, JobPayload, JobSpec, Scope, Trigger};
use serde::Serialize;
use sqlx::PgPool;

use crate::db::{self, DeadJob};
use crate::queue::{Enqueued, Queue};

/// What replaying one dead job did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Replayed {
    /// Enqueued again as `new_id`; the dead record points at it.
    Replayed { job: JobId, new_id: JobId },
    /// Someone replayed it first.
    AlreadyReplayed { job: JobId },
    /// Its stored payload cannot be read: fix the cause and enqueue by hand.
    Unreadable { job: JobId, reason: String },
}

/// Enqueues a dead job again (same kind, connection and scope; triggered as a replay of it) and
/// marks it replayed, at most once.
pub async fn replay_dead(pool: &PgPool, queue: &Queue, d: &DeadJob) -> anyhow::Result<Replayed> {
    if d.replayed_as.is_some() {
        return Ok(Replayed::AlreadyReplayed { job: d.job_id });
    }
    let payload = match serde_json::from_value::<JobPayload>(d.payload.clone()) {
        Ok(p) => p,
        Err(e) => {
            return Ok(Replayed::Unreadable {
                job: d.job_id,
                reason: format!("its payload is unreadable ({e})"),
            });
        }
    };
    let replay = JobPayload::v1(
        payload.tenant(),
        payload.connection(),
        payload.scope().clone(),
        Trigger::Replay { of: d.job_id },
    );
    let spec = JobSpec::new(d.kind, replay);
    let new_id = match queue.enqueue(&spec).await? {
        Enqueued::New(id) | Enqueued::Duplicate(id) => id,
        Enqueued::AlreadyOnce => spec.id,
    };
    if db::mark_replayed(pool, d.job_id, new_id).await? {
        queue.forget_dead(d.job_id).await?;
        Ok(Replayed::Replayed {
            job: d.job_id,
            new_id,
        })
    } else {
        Ok(Replayed::AlreadyReplayed { job: d.job_id })
    }
}

/// How support resolves an order parked for review.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Resolution {
    /// The ERP has the order's document (support found it): record it, so the order is accepted
    /// on the marketplace and its follow-ups run.
    MarkCreated { document_id: String },
    /// The ERP has no document for the order (support checked): create it on the next pull.
    /// (`{}`, not a unit variant: serde refuses unknown fields only on struct variants.)
    RetryCreate {},
    /// Cancel the order on the marketplace (the merchant will not fulfil it), then record it
    /// cancelled and give its units back.
    Cancel { reason: String },
}

impl Resolution {
    pub fn name(&self) -> &'static str {
        match self {
            Resolution::MarkCreated { .. } => "mark_created",
            Resolution::RetryCreate {} => "retry_create",
            Resolution::Cancel { .. } => "cancel",
        }
    }
}

/// Why a resolution was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("order {0} does not exist")]
    UnknownOrder(i64),
    #[error("order {id} is {state}, not in review: nothing to resolve")]
    NotInReview { id: i64, state: String },
    #[error("{0}")]
    Invalid(String),
    /// The marketplace refused or failed the cancellation: nothing was changed.
    #[error("the marketplace did not cancel the order: {0}")]
    Marketplace(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<db::DbError> for ResolveError {
    fn from(e: db::DbError) -> Self {
        ResolveError::Other(e.into())
    }
}

/// The document support names for an order, as the flows record one: the kind the ERP makes,
/// the order's total and currency, SmartBill's `series-number` split.
pub fn support_document(
    erp: Erp,
    order: &canonical::Order,
    document_id: &str,
) -> Result<SalesDocument, String> {
    let id = document_id.trim();
    if id.is_empty() || id.len() > 200 || id.chars().any(char::is_control) {
        return Err(format!(
            "document_id {document_id:?} must be 1 to 200 printable characters"
        ));
    }
    let kind = match erp {
        Erp::SmartBill => SalesDocumentKind::Proforma,
        Erp::Lexoffice => SalesDocumentKind::OrderConfirmation,
        Erp::WinMentor | Erp::Charisma => SalesDocumentKind::CustomerOrder,
        Erp::Noop => return Err("the no-op ERP keeps no documents".into()),
    };
    let (series, number) = match (erp, id.rsplit_once('-')) {
        (Erp::SmartBill, Some((s, n))) if !s.is_empty() && !n.is_empty() => {
            (Some(s.to_owned()), Some(n.to_owned()))
        }
        (Erp::SmartBill, _) => {
            return Err(format!(
                "a SmartBill document id is series-number (e.g. PRO-0042), not {id:?}"
            ));
        }
        _ => (None, Some(id.to_owned())),
    };
    Ok(SalesDocument {
        kind,
        order_id: order.id.clone(),
        erp_id: id.to_owned(),
        series,
        number,
        total_gross: order.total_gross,
        currency: order.currency,
        exchange_rate: None,
    })
}

/// Applies `resolution` to the order row `id` and enqueues what follows it. `cancel_on_market`
/// cancels the order on its marketplace (the caller builds the client); it is called only for
/// [`Resolution::Cancel`], before anything is written.
pub async fn resolve_order<F, Fut>(
    pool: &PgPool,
    queue: &Queue,
    id: i64,
    resolution: &Resolution,
    actor: &str,
    cancel_on_market: F,
) -> Result<&'static str, ResolveError>
where
    F: FnOnce(db::Connection, ChannelOrderId, String) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let row = db::review::order_by_id(pool, id)
        .await?
        .ok_or(ResolveError::UnknownOrder(id))?;
    if row.state != "needs_review" {
        return Err(ResolveError::NotInReview {
            id,
            state: row.state,
        });
    }
    let tenant = canonical::TenantId(row.tenant_id);
    let conn = match row.connection_id {
        Some(c) => db::list_connections(pool, Some(tenant))
            .await?
            .into_iter()
            .find(|x| x.id.0 == c),
        None => None,
    }
    .ok_or_else(|| {
        ResolveError::Invalid(format!(
            "order {id} has no connection any more (deleted?): it cannot be resolved here"
        ))
    })?;
    let order_id = ChannelOrderId::new(&row.channel_order_id)
        .map_err(|e| ResolveError::Invalid(e.to_string()))?;
    let pull_it = JobSpec::new(
        JobKind::OrderPull,
        JobPayload::v1(
            tenant,
            conn.id,
            Scope::Order {
                order: order_id.clone(),
            },
            Trigger::Manual,
        ),
    );
    match resolution {
        Resolution::MarkCreated { document_id } => {
            let order: canonical::Order = row
                .order_json
                .as_ref()
                .and_then(|j| serde_json::from_value(j.clone()).ok())
                .ok_or_else(|| {
                    ResolveError::Invalid(format!(
                        "order {id} has no readable pulled order stored: retry the create instead"
                    ))
                })?;
            let doc =
                support_document(conn.erp, &order, document_id).map_err(ResolveError::Invalid)?;
            let json = serde_json::to_value(&doc).map_err(anyhow::Error::from)?;
            let note = format!("marked created with {} by {actor}", doc.erp_id);
            if !db::review::mark_created(pool, id, &doc.erp_id, &json, &note).await? {
                return Err(ResolveError::NotInReview {
                    id,
                    state: "resolved meanwhile".into(),
                });
            }
            if document_reflects_stock(&conn) {
                db::flows::mark_reflected(pool, id).await?;
            }
            // The pull of the order accepts it on the marketplace; the follow-ups take it.
            queue.enqueue(&pull_it).await.map_err(anyhow::Error::from)?;
            Ok("marked created")
        }
        Resolution::RetryCreate {} => {
            let note = format!("sent back to be created by {actor}");
            if !db::review::send_back_to_create(pool, id, &note).await? {
                return Err(ResolveError::NotInReview {
                    id,
                    state: "resolved meanwhile".into(),
                });
            }
            queue.enqueue(&pull_it).await.map_err(anyhow::Error::from)?;
            Ok("sent back to be created")
        }
        Resolution::Cancel { reason } => {
            let reason = reason.trim();
            if reason.is_empty() || reason.len() > 500 {
                return Err(ResolveError::Invalid(
                    "a cancellation needs a reason of 1 to 500 characters".into(),
                ));
            }
            if conn.marketplace == Marketplace::Noop {
                return Err(ResolveError::Invalid(
                    "the no-op marketplace has no orders to cancel".into(),
                ));
            }
            cancel_on_market(conn.clone(), order_id, reason.to_owned())
                .await
                .map_err(ResolveError::Marketplace)?;
            let note = format!("cancelled by {actor}: {reason}");
            let Some(skus) = db::review::mark_cancelled(pool, id, &note).await? else {
                return Err(ResolveError::NotInReview {
                    id,
                    state: "resolved meanwhile".into(),
                });
            };
            let skus: Vec<Sku> = skus.iter().filter_map(|s| Sku::new(s).ok()).collect();
            if !skus.is_empty() {
                let specs: Vec<JobSpec> = db::list_connections(pool, Some(tenant))
                    .await?
                    .iter()
                    .filter(|c| c.enabled && c.marketplace != Marketplace::Noop)
                    .map(|c| {
                        JobSpec::new(
                            JobKind::StockPush,
                            JobPayload::v1(
                                tenant,
                                c.id,
                                Scope::Skus { skus: skus.clone() },
                                Trigger::Manual,
                            ),
                        )
                    })
                    .collect();
                queue
                    .enqueue_many(&specs)
                    .await
                    .map_err(anyhow::Error::from)?;
            }
            Ok("cancelled")
        }
    }
}

/// Whether the ERP's stock readings include an order once its sales document exists: the ERP
/// keeps no stock the product can read (the product holds it), or its document reserves stock.
/// The flows ask the same of a live client (`Ctx::held_stock`, `Ctx::document_moves_stock`).
pub fn document_reflects_stock(conn: &db::Connection) -> bool {
    let held = crate::connect::capability_matrix()
        .into_iter()
        .find(|c| c.system == conn.erp.as_str())
        .is_some_and(|c| !c.supports(connectors::Flow::StockPush));
    held || crate::flows::document_moves_stock(conn)
}
