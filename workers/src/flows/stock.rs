//! `stock_push`: what each channel may sell, sent only when it changes.
//!
//! Pushed = available − buffer − units of orders already pulled but not yet in `available`
//! ([`canonical::stock`]). `available` is the ERP's latest reading (refreshed at the start of
//! every run) or, for an ERP without stock (lexoffice, Charisma), the stock the product holds
//! (`megzo stock set`, decremented by each order). Only SKUs whose quantity differs from what
//! the channel was last sent are sent, and only SKUs listed on the channel.
//!
//! An order pulled on one channel enqueues this flow for its SKUs on every channel of the
//! tenant (scope `skus`). Every [`super::FlowOptions::reconcile_every`]-th heartbeat is a
//! **reconcile pass**: every listed SKU's quantity is sent again, whatever the channel was last
//! sent, correcting anything changed on the channel behind the product's back (the marketplace
//! APIs here have no stock read, so the comparison is with what the channel should show).

use std::collections::HashMap;

use canonical::stock::stock_delta;
use canonical::{Sku, StockUpdate};
use chrono::Utc;
use connectors::ConnectorError;
use connectors::marketplace::ItemState;
use queue_schema::{Scope, Trigger};
use rust_decimal::prelude::ToPrimitive;

use super::Ctx;
use crate::db::flows as store;
use crate::queue::service::JobError;

/// Reads the ERP's stock (every warehouse, summed per SKU, fractions floored) into
/// `stock_levels`. Nothing for an ERP without stock.
pub(crate) async fn refresh_erp_stock(ctx: &Ctx) -> Result<(), JobError> {
    if ctx.held_stock() {
        return Ok(());
    }
    let read_at = Utc::now();
    let levels = match ctx.erp.stock(None).await {
        Ok(l) => l,
        Err(e @ ConnectorError::Unsupported { .. }) => {
            tracing::info!(error = %e, "the ERP reports no stock");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let mut sums: HashMap<String, i64> = HashMap::new();
    for l in levels {
        let q = l.quantity.floor().to_i64().unwrap_or(0);
        *sums.entry(l.sku.as_str().to_owned()).or_default() += q;
    }
    let rows: Vec<(String, i64)> = sums.into_iter().collect();
    store::record_erp_stock(&ctx.pool, ctx.tenant(), &rows, read_at)
        .await
        .map_err(JobError::retryable)
}

pub(crate) async fn run(ctx: &Ctx, scope: &Scope) -> Result<(), JobError> {
    let only: Option<Vec<String>> = match scope {
        Scope::Skus { skus } => Some(skus.iter().map(|s| s.as_str().to_owned()).collect()),
        _ => None,
    };
    refresh_erp_stock(ctx).await?;
    let listed = super::catalog::listed_skus(ctx).await?;
    let mut inputs = store::stock_inputs(&ctx.pool, ctx.tenant(), only.as_deref())
        .await
        .map_err(JobError::retryable)?;
    inputs.retain(|sku, _| listed.contains(sku));
    let rules = store::buffer_rules(&ctx.pool, ctx.tenant())
        .await
        .map_err(JobError::retryable)?;
    let reconcile = match ctx.trigger {
        Trigger::Heartbeat { bucket } => {
            ctx.options.reconcile_every > 0 && bucket % ctx.options.reconcile_every == 0
        }
        _ => false,
    };
    let mut shown = if reconcile {
        HashMap::new()
    } else {
        store::pushed_stock(&ctx.pool, ctx.conn.id, only.as_deref())
            .await
            .map_err(JobError::retryable)?
    };
    // A SKU no longer listed is not this flow's to zero (the listing is gone or refused).
    shown.retain(|sku, _| listed.contains(sku));
    let updates = stock_delta(ctx.channel, &rules, &inputs, &shown);
    send(ctx, &updates, reconcile).await
}

/// Sends the updates and records what each SKU now shows; retryable refusals retry the job.
async fn send(ctx: &Ctx, updates: &[StockUpdate], reconcile: bool) -> Result<(), JobError> {
    if updates.is_empty() {
        return Ok(());
    }
    let report = ctx.market.update_stock(updates).await?;
    let qty: HashMap<&Sku, u32> = updates.iter().map(|u| (&u.sku, u.quantity)).collect();
    let mut sent = Vec::new();
    let mut retry = Vec::new();
    let mut refused = Vec::new();
    for item in &report.items {
        match &item.state {
            ItemState::Ok | ItemState::Pending => {
                if let Some(q) = qty.get(&item.sku) {
                    sent.push((item.sku.as_str().to_owned(), *q));
                }
            }
            ItemState::Failed { message, retryable } => {
                let line = format!("{}: {message}", item.sku);
                if *retryable {
                    retry.push(line);
                } else {
                    refused.push(line);
                }
            }
        }
    }
    store::record_pushed(&ctx.pool, ctx.conn.id, &sent)
        .await
        .map_err(JobError::retryable)?;
    tracing::info!(
        marketplace = ctx.channel,
        sent = sent.len(),
        reconcile,
        "stock pushed"
    );
    if !retry.is_empty() {
        return Err(JobError::retryable(format!(
            "{} stock updates refused for now: {}",
            retry.len(),
            retry.join("; ")
        )));
    }
    if !refused.is_empty() {
        return Err(JobError::permanent(format!(
            "{} stock updates refused by {}: {}",
            refused.len(),
            ctx.channel,
            refused.join("; ")
        )));
    }
    Ok(())
}
