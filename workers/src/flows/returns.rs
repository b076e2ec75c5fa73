//! `returns_reconcile`: cancellations, returns and reversals on the marketplace matched to the
//! order's ERP document, once each (by the marketplace's event id, under a unique constraint).
//!
//! - An order cancelled before it reached the ERP is cancelled here too: its row goes to
//!   `cancelled` and its units go back to the stock.
//! - A cancelled order whose document exists and is not invoiced has its proforma / order
//!   cancelled in the ERP the non-fiscal way where the connector can (`registered`); its units go
//!   back to the stock.
//! - A return or reversal of an invoiced order needs a credit note, which is fiscal and the
//!   merchant's: it becomes an **open item on the merchant's list** with the evidence the
//!   connector gives (`for_merchant`), closed automatically once the ERP shows the invoice
//!   credited, where its API can tell.

use canonical::{ReturnEvent, ReturnKind, SalesDocument, Sku};
use connectors::ErrorClass;
use connectors::erp::ReturnOutcome;

use super::Ctx;
use crate::db::flows::{self as store, OrderWork};
use crate::db::{OrderState, fenced_set_order_state};
use crate::lock::OrderLock;
use crate::queue::service::JobError;

/// The cursor's name in `sync_cursors`.
pub const CURSOR: &str = "returns_reconcile";

fn kind_str(k: ReturnKind) -> &'static str {
    match k {
        ReturnKind::Cancellation => "cancellation",
        ReturnKind::ReturnRequest => "return_request",
        ReturnKind::Reversal => "reversal",
    }
}

pub(crate) async fn run(ctx: &Ctx) -> Result<(), JobError> {
    let mut cursor = crate::db::get_cursor(&ctx.pool, ctx.conn.id, CURSOR)
        .await
        .map_err(JobError::retryable)?;
    loop {
        let page = ctx.market.list_returns(cursor.as_deref()).await?;
        for ev in &page.events {
            reconcile(ctx, ev).await?;
        }
        crate::db::set_cursor(&ctx.pool, ctx.tenant(), ctx.conn.id, CURSOR, &page.cursor)
            .await
            .map_err(JobError::retryable)?;
        cursor = Some(page.cursor);
        if !page.more {
            break;
        }
    }
    close_credited(ctx).await
}

/// Records the event's item once (by its event id); `false` when it was already recorded.
async fn record(
    ctx: &Ctx,
    ev: &ReturnEvent,
    outcome: &str,
    reference: Option<String>,
    evidence: Option<String>,
    open: bool,
) -> Result<bool, JobError> {
    store::record_return(
        &ctx.pool,
        ctx.tenant(),
        ctx.conn.id,
        &ev.event_id,
        ev.order_id.as_str(),
        kind_str(ev.kind),
        outcome,
        reference.as_deref(),
        evidence.as_deref(),
        open,
    )
    .await
    .map_err(JobError::retryable)
}

async fn reconcile(ctx: &Ctx, ev: &ReturnEvent) -> Result<(), JobError> {
    let db = |e: crate::db::DbError| JobError::retryable(e);
    let kind = kind_str(ev.kind);
    let row = store::order_work(&ctx.pool, ctx.tenant(), ctx.channel, ev.order_id.as_str())
        .await
        .map_err(db)?;
    let Some(row) = row else {
        record(
            ctx,
            ev,
            "no_document",
            None,
            Some("the order was never pulled: nothing in the ERP to match".into()),
            false,
        )
        .await?;
        return Ok(());
    };
    match row.state.as_str() {
        "claimed" | "erp_pending" => {
            // Not in the ERP yet: the order is cancelled here, under its lock (a pull may be
            // creating its document right now; the lock holder's fence decides).
            let resource = format!("order:{}:{}", ctx.channel, ev.order_id);
            let Some(lock) = OrderLock::try_acquire(
                &ctx.queue,
                &ctx.tenant().to_string(),
                &resource,
                ctx.options.lock_ttl,
            )
            .await
            .map_err(JobError::retryable)?
            else {
                return Err(JobError::retryable(format!(
                    "order {} is being worked on; its {kind} is matched on retry",
                    ev.order_id
                )));
            };
            let current =
                crate::db::get_order(&ctx.pool, ctx.tenant(), ctx.channel, ev.order_id.as_str())
                    .await
                    .map_err(db)?;
            let result = match current.map(|c| c.state) {
                Some(OrderState::Claimed) if ev.kind == ReturnKind::Cancellation => {
                    fenced_set_order_state(
                        &ctx.pool,
                        ctx.tenant(),
                        ctx.channel,
                        ev.order_id.as_str(),
                        OrderState::Cancelled,
                        lock.fence(),
                        None,
                        Some("cancelled on the marketplace before it reached the ERP"),
                    )
                    .await
                    .map_err(db)?;
                    release(ctx, &row).await?;
                    record(
                        ctx,
                        ev,
                        "registered",
                        None,
                        Some("cancelled before the ERP had it".into()),
                        false,
                    )
                    .await
                }
                _ => Err(JobError::retryable(format!(
                    "order {} is on its way to the ERP; its {kind} is matched once the document exists",
                    ev.order_id
                ))),
            };
            let _ = lock.release().await;
            result.map(|_| ())
        }
        "created" => {
            let Some(doc) = row
                .document_json
                .clone()
                .and_then(|d| serde_json::from_value::<SalesDocument>(d).ok())
            else {
                return Err(JobError::permanent(format!(
                    "order {} is created but its document is not stored",
                    ev.order_id
                )));
            };
            match ctx.erp.register_return(&doc, ev).await {
                Ok(ReturnOutcome::Registered { reference }) => {
                    let fresh = record(ctx, ev, "registered", Some(reference), None, false).await?;
                    if fresh && ev.kind == ReturnKind::Cancellation {
                        release(ctx, &row).await?;
                    }
                    Ok(())
                }
                Ok(ReturnOutcome::ForMerchant { evidence }) => {
                    record(ctx, ev, "for_merchant", None, Some(evidence), true).await?;
                    Ok(())
                }
                Err(e) if e.class() == ErrorClass::Retryable => Err(e.into()),
                Err(e) => {
                    record(
                        ctx,
                        ev,
                        "for_merchant",
                        None,
                        Some(format!("the ERP could not register it: {e}")),
                        true,
                    )
                    .await?;
                    Ok(())
                }
            }
        }
        other => {
            record(
                ctx,
                ev,
                "no_document",
                None,
                Some(format!("the order is {other}: no ERP document to match")),
                false,
            )
            .await?;
            Ok(())
        }
    }
}

async fn release(ctx: &Ctx, row: &OrderWork) -> Result<(), JobError> {
    let skus = store::release_order(&ctx.pool, row.id)
        .await
        .map_err(JobError::retryable)?;
    let skus: Vec<Sku> = skus.iter().filter_map(|s| Sku::new(s).ok()).collect();
    ctx.push_stock_everywhere(skus).await
}

/// Closes open items whose invoice the ERP shows credited (where its API can tell).
async fn close_credited(ctx: &Ctx) -> Result<(), JobError> {
    let open = store::return_items(&ctx.pool, ctx.conn.id, false)
        .await
        .map_err(JobError::retryable)?;
    for item in open {
        let Some(row) =
            store::order_work(&ctx.pool, ctx.tenant(), ctx.channel, &item.channel_order_id)
                .await
                .map_err(JobError::retryable)?
        else {
            continue;
        };
        let Some(number) = row.invoice_number.clone() else {
            continue;
        };
        let invoice = canonical::InvoicePdf {
            series: row.invoice_series.clone(),
            number,
            pdf: Vec::new(),
        };
        match ctx.erp.invoice_credited(&invoice).await {
            Ok(Some(true)) => {
                store::update_return(&ctx.pool, item.id, "for_merchant", None, None, false)
                    .await
                    .map_err(JobError::retryable)?;
            }
            Ok(_) => {}
            Err(e) if e.class() == ErrorClass::Retryable => return Err(e.into()),
            Err(e) => tracing::warn!(error = %e, "whether the invoice was credited cannot be read"),
        }
    }
    Ok(())
}
