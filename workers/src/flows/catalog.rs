//! `catalog_push`: the ERP's articles, mapped through the connection's active rule set, listed on
//! the marketplace with their mapped prices and the stock the channel may sell.
//!
//! **Only what changed is sent**: each listing's content hash (SHA-256 of its canonical JSON) is
//! kept per SKU and channel in `listing_state`; an unchanged listing is not sent again. The
//! marketplace's verdict is kept per SKU too and never hidden:
//! - CDON processes asynchronously: the batch is polled until every SKU is `ok` or failed, and a
//!   batch still processing after [`super::FlowOptions::settle_wait`] stays `pending` with its
//!   handle, polled again by the next run;
//! - Cel.ro moderates: a product waiting for review is `moderation`; a refusal (a rejected
//!   product, Cel.ro's refusal of a price change above 10 %) is `rejected` with Cel.ro's text.
//!
//! An article the mapping cannot map is `failed` with the rule's message, and the job then fails
//! permanently naming every such SKU (the others are listed), so a broken mapping is seen.
//! A SKU refused with a retryable error is sent again by the job's retry.

use std::collections::{HashMap, HashSet};

use canonical::stock::pushable;
use canonical::{Listing, Marketplace, Sku};
use connectors::marketplace::{BatchHandle, BatchReport, ItemState};
use connectors::{ConnectorError, ErrorClass};

use super::Ctx;
use crate::db::flows::{self as store, ListingRow};
use crate::queue::service::JobError;

/// The content hash of a listing: what decides whether it is sent again.
pub fn content_hash(listing: &Listing) -> String {
    let json = serde_json::to_vec(listing).unwrap_or_default();
    super::sha256_hex(&json)
}

/// The stored state of an item's verdict on this marketplace.
fn state_of(marketplace: Marketplace, state: &ItemState) -> (&'static str, Option<String>) {
    match (state, marketplace) {
        (ItemState::Ok, _) => ("ok", None),
        (ItemState::Pending, Marketplace::Celro) => {
            ("moderation", Some("waiting for Cel.ro's moderation".into()))
        }
        (ItemState::Pending, _) => ("pending", None),
        (ItemState::Failed { message, retryable }, Marketplace::Celro) if !retryable => {
            ("rejected", Some(message.clone()))
        }
        (ItemState::Failed { message, .. }, _) => ("failed", Some(message.clone())),
    }
}

pub(crate) async fn run(ctx: &Ctx) -> Result<(), JobError> {
    let mut known = store::listing_states(&ctx.pool, ctx.conn.id)
        .await
        .map_err(JobError::retryable)?;
    poll_pending(ctx, &mut known).await?;

    let items = match ctx.erp.catalog().await {
        Ok(items) => items,
        Err(e @ ConnectorError::Unsupported { .. }) => {
            tracing::info!(error = %e, "the ERP lists no catalog: nothing to push");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    super::stock::refresh_erp_stock(ctx).await?;
    let skus: Vec<String> = items.iter().map(|i| i.sku.as_str().to_owned()).collect();
    let inputs = store::stock_inputs(&ctx.pool, ctx.tenant(), Some(&skus))
        .await
        .map_err(JobError::retryable)?;
    let rules = store::buffer_rules(&ctx.pool, ctx.tenant())
        .await
        .map_err(JobError::retryable)?;
    let with_qty: Vec<_> = items
        .into_iter()
        .map(|i| {
            let input = inputs.get(&i.sku).copied().unwrap_or_default();
            let qty = pushable(input, rules.buffer_for(ctx.channel, &i.sku));
            (i, qty)
        })
        .collect();
    let (listings, refused, version) =
        super::map_listings(&ctx.mappings, &ctx.rates, &ctx.conn, &with_qty).await?;

    // Each listing hashed once: the hash decides whether it is sent and is what gets stored.
    let changed: Vec<(Listing, String)> = listings
        .into_iter()
        .map(|l| {
            let hash = content_hash(&l);
            (l, hash)
        })
        .filter(|(l, hash)| {
            known.get(l.sku.as_str()).is_none_or(|k| {
                &k.content_hash != hash
                    || !matches!(k.state.as_str(), "ok" | "pending" | "moderation")
            })
        })
        .collect();
    let mut rows: Vec<ListingRow> = refused
        .iter()
        .map(|(sku, e)| ListingRow {
            sku: sku.as_str().to_owned(),
            content_hash: String::new(),
            state: "failed".into(),
            message: Some(format!("{version}: {e}")),
            batch: None,
        })
        .collect();
    let mut retry = Vec::new();
    if !changed.is_empty() {
        let sent: Vec<Listing> = changed.iter().map(|(l, _)| l.clone()).collect();
        let report = ctx
            .market
            .upsert_and_settle(&sent, ctx.options.settle_poll, ctx.options.settle_wait)
            .await?;
        let handle = report
            .handle
            .as_ref()
            .map(|h| serde_json::to_value(h).unwrap_or_default());
        let by_sku: HashMap<&str, &(Listing, String)> =
            changed.iter().map(|c| (c.0.sku.as_str(), c)).collect();
        let mut pushed = Vec::new();
        for item in &report.items {
            let Some((listing, hash)) = by_sku.get(item.sku.as_str()).copied() else {
                continue;
            };
            let (state, message) = state_of(ctx.conn.marketplace, &item.state);
            if let ItemState::Failed {
                retryable: true,
                message,
            } = &item.state
            {
                retry.push(format!("{}: {message}", item.sku));
            }
            if state != "failed" && state != "rejected" {
                pushed.push((item.sku.as_str().to_owned(), listing.quantity));
            }
            rows.push(ListingRow {
                sku: item.sku.as_str().to_owned(),
                // A failed listing keeps no hash, so the next run sends it again.
                content_hash: if state == "failed" {
                    String::new()
                } else {
                    hash.clone()
                },
                state: state.into(),
                message,
                batch: (state == "pending").then(|| handle.clone()).flatten(),
            });
        }
        store::record_pushed(&ctx.pool, ctx.conn.id, &pushed)
            .await
            .map_err(JobError::retryable)?;
        log_report(ctx, &report);
    }
    store::upsert_listing_states(&ctx.pool, ctx.conn.id, &rows)
        .await
        .map_err(JobError::retryable)?;
    if !refused.is_empty() {
        let list: Vec<String> = refused.iter().map(|(s, e)| format!("{s}: {e}")).collect();
        return Err(JobError::permanent(format!(
            "{} articles cannot be mapped with {version} (the others were listed): {}",
            refused.len(),
            list.join("; ")
        )));
    }
    if !retry.is_empty() {
        return Err(JobError::retryable(format!(
            "{} listings refused for now, sent again on retry: {}",
            retry.len(),
            retry.join("; ")
        )));
    }
    Ok(())
}

fn log_report(ctx: &Ctx, report: &BatchReport) {
    let failed = report.failed().count();
    let pending = report.pending().count();
    tracing::info!(
        marketplace = ctx.channel,
        sent = report.items.len(),
        failed,
        pending,
        "listings sent"
    );
}

/// Polls the batches left pending by earlier runs and records their verdicts.
async fn poll_pending(ctx: &Ctx, known: &mut HashMap<String, ListingRow>) -> Result<(), JobError> {
    let mut seen = HashSet::new();
    let mut rows = Vec::new();
    let waiting: Vec<&ListingRow> = known
        .values()
        .filter(|r| r.state == "pending" || r.state == "moderation")
        .collect();
    let mut handles: Vec<serde_json::Value> =
        waiting.iter().filter_map(|r| r.batch.clone()).collect();
    // Without a batch (Cel.ro answers per product at once): ask about the SKUs themselves.
    let loose: Vec<Sku> = waiting
        .iter()
        .filter(|r| r.batch.is_none())
        .filter_map(|r| Sku::new(&r.sku).ok())
        .collect();
    if !loose.is_empty() {
        let h = BatchHandle {
            batch_ids: Vec::new(),
            skus: loose,
            refused: Vec::new(),
        };
        handles.push(serde_json::to_value(h).unwrap_or_default());
    }
    for h in handles {
        let key = h.to_string();
        if !seen.insert(key) {
            continue;
        }
        let Ok(handle) = serde_json::from_value::<BatchHandle>(h) else {
            continue;
        };
        let report = match ctx.market.poll_batch(&handle).await {
            Ok(r) => r,
            Err(e) if e.class() == ErrorClass::Retryable => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, "a pending batch cannot be polled; its listings are sent again");
                for sku in &handle.skus {
                    if let Some(k) = known.get_mut(sku.as_str()) {
                        k.content_hash.clear();
                        k.state = "failed".into();
                        k.message = Some(format!("batch could not be followed: {e}"));
                        rows.push(k.clone());
                    }
                }
                continue;
            }
        };
        for item in &report.items {
            let Some(k) = known.get_mut(item.sku.as_str()) else {
                continue;
            };
            let (state, message) = state_of(ctx.conn.marketplace, &item.state);
            k.state = state.into();
            k.message = message;
            if state == "failed" {
                k.content_hash.clear();
            }
            if state != "pending" && state != "moderation" {
                k.batch = None;
            }
            rows.push(k.clone());
        }
    }
    store::upsert_listing_states(&ctx.pool, ctx.conn.id, &rows)
        .await
        .map_err(JobError::retryable)
}

/// SKUs listed on the channel (any state but failed or rejected): the ones stock is pushed for.
pub(crate) async fn listed_skus(ctx: &Ctx) -> Result<HashSet<Sku>, JobError> {
    let known = store::listing_states(&ctx.pool, ctx.conn.id)
        .await
        .map_err(JobError::retryable)?;
    Ok(known
        .into_values()
        .filter(|r| !matches!(r.state.as_str(), "failed" | "rejected"))
        .filter_map(|r| Sku::new(&r.sku).ok())
        .collect())
}
