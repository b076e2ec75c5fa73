//! `order_pull`: every marketplace order becomes **exactly one** ERP sales document (a proforma,
//! order confirmation or customer order, never an invoice), and no order is accepted that the
//! stock cannot cover.
//!
//! For each order listed since the connection's cursor (kept in Postgres):
//! 1. **Claim** its row (`orders`, unique per tenant, channel and order id; the pulled order is
//!    stored on it, so a crash after this point loses nothing: every run first resumes the rows
//!    left `claimed` or `erp_pending`).
//! 2. Take the Redis **order lock**, whose fencing token every state write carries: a holder
//!    whose lock expired under it is refused by Postgres, not trusted.
//! 3. **Reserve** its units against the tenant's stock under row locks, all lines or none: an
//!    order the stock cannot cover (two channels selling the last unit at once) is cancelled on
//!    the marketplace with the reason, and never reaches the ERP.
//! 4. Write `erp_pending`, then create the document. An `erp_pending` row found at the start
//!    (a crash, a lost answer) is **looked up first** with the connector's recovery strategy;
//!    an ambiguous create is looked up at once: found → recorded; absent → created on the next
//!    attempt; the ERP cannot tell → `needs_review` with the evidence, never a second document.
//! 5. Accept the order on the marketplace, only once the ERP has it.
//! 6. Push the SKUs' new stock to every channel of the tenant.
//!
//! Lines go through the connection's active `marketplace_to_erp` mapping (ERP article codes,
//! titles, VAT); an ERP that keeps another currency (lexoffice: EUR) gets the feed's rate of
//! the order date on the document.

use canonical::mapping::Context;
use canonical::{ChannelOrderId, Currency, Erp, Order, OrderStatus, SalesDocument, Sku};
use connectors::erp::{DocumentOptions, ExchangeRate, Lookup};
use connectors::{ConnectorError, ErrorClass};

use super::Ctx;
use crate::db::flows::{self as store, Reservation};
use crate::db::mappings::Direction;
use crate::db::{Claim, OrderState, claim_order, fenced_set_order_state};
use crate::lock::OrderLock;
use crate::queue::service::{JobError, note_mapping_version};

/// The cursor's name in `sync_cursors`.
pub const CURSOR: &str = "order_pull";

/// What happened to one order in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// The document exists (made now or before) and the order is accepted.
    Created(String),
    /// Cancelled on the marketplace: the stock could not cover it.
    OutOfStock(String),
    /// Parked for support with the evidence.
    NeedsReview(String),
    /// Another worker holds the order right now.
    Busy,
    /// Nothing to do (already done, cancelled, or not an order to take).
    Skipped,
}

pub(crate) async fn run(ctx: &Ctx) -> Result<(), JobError> {
    let mut deferred: Vec<String> = Vec::new();
    // Rows left half-way by a crash or a failed attempt.
    let open = store::orders_in(
        &ctx.pool,
        ctx.conn.id,
        &["claimed", "erp_pending"],
        ctx.options.batch,
    )
    .await
    .map_err(JobError::retryable)?;
    for row in open {
        let Some(order) = row
            .order_json
            .and_then(|j| serde_json::from_value::<Order>(j).ok())
        else {
            continue;
        };
        if let Err(e) = handle(ctx, &order).await {
            deferred.push(format!("{}: {e}", order.id));
        }
    }
    // New orders since the cursor.
    let mut cursor = crate::db::get_cursor(&ctx.pool, ctx.conn.id, CURSOR)
        .await
        .map_err(JobError::retryable)?;
    loop {
        let page = ctx.market.list_orders(cursor.as_deref()).await?;
        let ids: Vec<String> = page
            .orders
            .iter()
            .map(|o| o.id.as_str().to_owned())
            .collect();
        let settled = store::settled_orders(&ctx.pool, ctx.tenant(), ctx.channel, &ids)
            .await
            .map_err(JobError::retryable)?;
        for order in page
            .orders
            .iter()
            .filter(|o| !settled.contains(o.id.as_str()))
        {
            if let Err(e) = handle(ctx, order).await {
                // Stored on its row: resumed by the next run. A failure before the claim
                // keeps the cursor where it is.
                if !claimed(ctx, &order.id).await {
                    return Err(e);
                }
                deferred.push(format!("{}: {e}", order.id));
            }
        }
        crate::db::set_cursor(&ctx.pool, ctx.tenant(), ctx.conn.id, CURSOR, &page.cursor)
            .await
            .map_err(JobError::retryable)?;
        cursor = Some(page.cursor);
        if !page.more {
            break;
        }
    }
    // Accept what the ERP has and an earlier attempt could not accept.
    let created = store::orders_in(&ctx.pool, ctx.conn.id, &["created"], ctx.options.batch)
        .await
        .map_err(JobError::retryable)?;
    for row in created.into_iter().filter(|r| r.accepted_at.is_none()) {
        if let Err(e) = accept(ctx, row.id, &row.channel_order_id).await {
            deferred.push(format!("{}: accept: {e}", row.channel_order_id));
        }
    }
    if deferred.is_empty() {
        Ok(())
    } else {
        Err(JobError::retryable(format!(
            "{} orders not finished (resumed by the retry): {}",
            deferred.len(),
            deferred.join("; ")
        )))
    }
}

async fn claimed(ctx: &Ctx, id: &ChannelOrderId) -> bool {
    matches!(
        store::order_work(&ctx.pool, ctx.tenant(), ctx.channel, id.as_str()).await,
        Ok(Some(r)) if r.order_json.is_some()
    )
}

/// Takes one order to its ERP document (see the module docs).
pub(crate) async fn handle(ctx: &Ctx, order: &Order) -> Result<Handled, JobError> {
    let row = match claim_order(&ctx.pool, ctx.tenant(), ctx.channel, order.id.as_str())
        .await
        .map_err(JobError::retryable)?
    {
        Claim::New(row) => {
            // Only orders waiting for the merchant are taken; older ones (shipped, cancelled
            // before the connection existed) are recorded and left alone.
            if !matches!(order.status, OrderStatus::New | OrderStatus::Accepted) {
                fenced_set_order_state(
                    &ctx.pool,
                    ctx.tenant(),
                    ctx.channel,
                    order.id.as_str(),
                    OrderState::Cancelled,
                    1,
                    None,
                    Some(&format!(
                        "not taken: the order was {:?} ({}) when first pulled",
                        order.status, order.raw_status
                    )),
                )
                .await
                .map_err(JobError::retryable)?;
                return Ok(Handled::Skipped);
            }
            let json = serde_json::to_value(order).map_err(JobError::permanent)?;
            store::store_order_payload(&ctx.pool, row.id, ctx.conn.id, &json)
                .await
                .map_err(JobError::retryable)?;
            row
        }
        Claim::Existing(row) => {
            let json = serde_json::to_value(order).map_err(JobError::permanent)?;
            store::store_order_payload(&ctx.pool, row.id, ctx.conn.id, &json)
                .await
                .map_err(JobError::retryable)?;
            if row.state == OrderState::Created {
                if let Some(w) =
                    store::order_work(&ctx.pool, ctx.tenant(), ctx.channel, order.id.as_str())
                        .await
                        .map_err(JobError::retryable)?
                    && w.accepted_at.is_none()
                {
                    accept(ctx, w.id, order.id.as_str()).await?;
                }
                return Ok(Handled::Skipped);
            }
            if matches!(row.state, OrderState::Cancelled | OrderState::NeedsReview) {
                return Ok(Handled::Skipped);
            }
            row
        }
    };
    let resource = format!("order:{}:{}", ctx.channel, order.id);
    let Some(lock) = OrderLock::try_acquire(
        &ctx.queue,
        &ctx.tenant().to_string(),
        &resource,
        ctx.options.lock_ttl,
    )
    .await
    .map_err(JobError::retryable)?
    else {
        return Ok(Handled::Busy);
    };
    let result = locked(ctx, order, row.id, lock.fence()).await;
    if lock.lost() {
        tracing::warn!(order = %order.id, "order lock lost while working; fenced writes decided");
    }
    let _ = lock.release().await;
    result
}

/// The order's state as stored now (the lock holder reads it again: a previous holder may
/// have moved it).
async fn current(ctx: &Ctx, order: &Order) -> Result<crate::db::OrderRow, JobError> {
    crate::db::get_order(&ctx.pool, ctx.tenant(), ctx.channel, order.id.as_str())
        .await
        .map_err(JobError::retryable)?
        .ok_or_else(|| JobError::retryable(format!("order {} vanished", order.id)))
}

async fn set_state(
    ctx: &Ctx,
    order: &Order,
    state: OrderState,
    fence: i64,
    document: Option<&str>,
    reason: Option<&str>,
) -> Result<(), JobError> {
    let applied = fenced_set_order_state(
        &ctx.pool,
        ctx.tenant(),
        ctx.channel,
        order.id.as_str(),
        state,
        fence,
        document,
        reason,
    )
    .await
    .map_err(JobError::permanent)?;
    if applied {
        Ok(())
    } else {
        Err(JobError::retryable(format!(
            "order {}: a newer lock holder wrote it (fence {fence} refused); stopping",
            order.id
        )))
    }
}

async fn locked(ctx: &Ctx, order: &Order, row_id: i64, fence: i64) -> Result<Handled, JobError> {
    let row = current(ctx, order).await?;
    match row.state {
        OrderState::Created => return Ok(Handled::Skipped),
        OrderState::Cancelled | OrderState::NeedsReview => return Ok(Handled::Skipped),
        OrderState::Claimed | OrderState::ErpPending => {}
    }
    // Never oversell: all lines reserved or none.
    let lines: Vec<(String, u32)> = order
        .lines
        .iter()
        .map(|l| (l.sku.as_str().to_owned(), l.quantity))
        .collect();
    // An order that arrives before the ERP's stock was ever read is not short: read it first.
    let skus: Vec<String> = lines.iter().map(|l| l.0.clone()).collect();
    if !ctx.held_stock()
        && store::stock_never_read(&ctx.pool, ctx.tenant(), &skus)
            .await
            .map_err(JobError::retryable)?
    {
        super::stock::refresh_erp_stock(ctx).await?;
    }
    match store::reserve_order(&ctx.pool, ctx.tenant(), row_id, &lines)
        .await
        .map_err(JobError::retryable)?
    {
        Reservation::Reserved | Reservation::AlreadyReserved => {}
        Reservation::Short { sku, wanted, left } => {
            let reason = format!("out of stock: {sku} has {left} left, the order wants {wanted}");
            match ctx.market.cancel_order(&order.id, &reason).await {
                Ok(_) => {}
                Err(e) if e.class() == ErrorClass::Retryable => return Err(e.into()),
                Err(e) => {
                    let why = format!("{reason}; cancelling it on {} failed: {e}", ctx.channel);
                    set_state(ctx, order, OrderState::NeedsReview, fence, None, Some(&why)).await?;
                    return Ok(Handled::NeedsReview(why));
                }
            }
            set_state(
                ctx,
                order,
                OrderState::Cancelled,
                fence,
                None,
                Some(&reason),
            )
            .await?;
            let skus = order.lines.iter().map(|l| l.sku.clone()).collect();
            ctx.push_stock_everywhere(skus).await?;
            return Ok(Handled::OutOfStock(reason));
        }
    }
    let for_erp = erp_order(ctx, order).await?;
    let options = document_options(ctx, order).await?;
    // An earlier attempt may have made the document: look it up before creating anything.
    if row.state == OrderState::ErpPending {
        match ctx.erp.find_sales_document(&for_erp).await? {
            Lookup::Found(doc) => return created(ctx, order, row_id, fence, doc).await,
            Lookup::Absent => {}
            Lookup::NeedsReview { evidence } => {
                return review(ctx, order, fence, &evidence).await;
            }
        }
    }
    set_state(ctx, order, OrderState::ErpPending, fence, None, None).await?;
    match ctx.erp.create_sales_document(&for_erp, &options).await {
        Ok(doc) => created(ctx, order, row_id, fence, doc).await,
        Err(e) if e.class() == ErrorClass::InDoubt => {
            tracing::warn!(order = %order.id, error = %e, "document create in doubt: looking it up");
            match ctx.erp.find_sales_document(&for_erp).await {
                Ok(Lookup::Found(doc)) => created(ctx, order, row_id, fence, doc).await,
                Ok(Lookup::Absent) => Err(JobError::retryable(format!(
                    "order {}: the create was in doubt and the ERP has no document for it: created on retry ({e})",
                    order.id
                ))),
                Ok(Lookup::NeedsReview { evidence }) => {
                    review(ctx, order, fence, &format!("{e}; {evidence}")).await
                }
                // The row stays erp_pending: the retry looks up again before anything else.
                Err(l) => Err(JobError::retryable(format!(
                    "order {}: the create was in doubt ({e}) and the lookup failed ({l})",
                    order.id
                ))),
            }
        }
        Err(e) if e.class() == ErrorClass::Retryable => Err(e.into()),
        Err(e) => {
            // The ERP refused the order (unknown article, bad data): support decides.
            let why = format!("the ERP refused the order: {e}");
            review(ctx, order, fence, &why).await
        }
    }
}

async fn review(ctx: &Ctx, order: &Order, fence: i64, evidence: &str) -> Result<Handled, JobError> {
    set_state(
        ctx,
        order,
        OrderState::NeedsReview,
        fence,
        None,
        Some(evidence),
    )
    .await?;
    tracing::warn!(order = %order.id, "order parked for review");
    Ok(Handled::NeedsReview(evidence.to_owned()))
}

async fn created(
    ctx: &Ctx,
    order: &Order,
    row_id: i64,
    fence: i64,
    doc: SalesDocument,
) -> Result<Handled, JobError> {
    let json = serde_json::to_value(&doc).map_err(JobError::permanent)?;
    store::store_document(&ctx.pool, row_id, &json)
        .await
        .map_err(JobError::retryable)?;
    set_state(
        ctx,
        order,
        OrderState::Created,
        fence,
        Some(&doc.erp_id),
        None,
    )
    .await?;
    if ctx.held_stock() || ctx.document_moves_stock() {
        store::mark_reflected(&ctx.pool, row_id)
            .await
            .map_err(JobError::retryable)?;
    }
    tracing::info!(order = %order.id, document = %doc.erp_id, "ERP document created");
    accept(ctx, row_id, order.id.as_str()).await?;
    let skus: Vec<Sku> = order.lines.iter().map(|l| l.sku.clone()).collect();
    ctx.push_stock_everywhere(skus).await?;
    Ok(Handled::Created(doc.erp_id))
}

/// Accepts the order on the marketplace (the ERP has it). "Already accepted" is success.
async fn accept(ctx: &Ctx, row_id: i64, id: &str) -> Result<(), JobError> {
    let id = ChannelOrderId::new(id).map_err(JobError::permanent)?;
    match ctx.market.accept_order(&id).await {
        Ok(_) => {}
        Err(ConnectorError::Unsupported { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    store::mark_accepted(&ctx.pool, row_id)
        .await
        .map_err(JobError::retryable)
}

/// The order as the ERP gets it: lines through the active `marketplace_to_erp` mapping (article
/// code, title, VAT; prices stay in the order's currency, converted by the ERP with the
/// document's rate where it keeps another).
async fn erp_order(ctx: &Ctx, order: &Order) -> Result<Order, JobError> {
    let active = ctx
        .mappings
        .active(ctx.conn.id, Direction::MarketplaceToErp)
        .await
        .map_err(|e| match e {
            crate::mapping::MappingError::Db(e) => JobError::retryable(e),
            e => JobError::permanent(e),
        })?;
    let Some(active) = active else {
        return Ok(order.clone());
    };
    note_mapping_version(active.version);
    let feed = ctx.rates.feed().await.map_err(JobError::retryable)?;
    let mctx = Context::on(order.placed_at.date_naive()).with_feed(&feed);
    let target = connectors::mapping::ErpLineTarget { erp: ctx.conn.erp };
    let mut out = order.clone();
    let mut refused = Vec::new();
    let mut currencies = Vec::new();
    for line in &mut out.lines {
        let record = connectors::mapping::order_line_record(order, line);
        let mapped = active
            .rules
            .apply(&record, &mctx)
            .map_err(|e| e.to_string())
            .and_then(|o| target.line(order, line, &o.record));
        match mapped {
            Ok(m) => {
                line.sku = m.sku;
                if let Some(t) = m.title {
                    line.title = t;
                }
                if let Some(v) = m.vat {
                    line.vat = v;
                }
                // lexoffice converts itself with the document's rate; every other ERP gets the
                // order in the mapped currency.
                if m.currency == order.currency || ctx.conn.erp != Erp::Lexoffice {
                    line.unit_price_gross = m.unit_price_gross;
                }
                currencies.push(m.currency);
            }
            Err(e) => refused.push(format!("{}: {e}", line.sku)),
        }
    }
    if !refused.is_empty() {
        return Err(JobError::permanent(format!(
            "order {}: lines cannot be mapped with mapping v{}: {}",
            order.id,
            active.version,
            refused.join("; ")
        )));
    }
    currencies.dedup();
    match currencies.as_slice() {
        [c] if *c != order.currency && ctx.conn.erp != Erp::Lexoffice => {
            // The order's other amounts at the rate the lines were converted with.
            let fx = feed
                .find(order.currency, *c, order.placed_at.date_naive())
                .map_err(|_| {
                    JobError::retryable(format!(
                        "order {}: no {} → {c} rate for {} in the feed",
                        order.id,
                        order.currency,
                        order.placed_at.date_naive()
                    ))
                })?;
            out.currency = *c;
            out.shipping_fee_gross = canonical::round2(order.shipping_fee_gross * fx.rate);
            out.total_gross = out
                .lines
                .iter()
                .map(|l| l.unit_price_gross * rust_decimal::Decimal::from(l.quantity))
                .sum::<rust_decimal::Decimal>()
                + out.shipping_fee_gross;
        }
        [_] | [] => {}
        many => {
            return Err(JobError::permanent(format!(
                "order {}: mapping v{} maps its lines to several currencies ({many:?}); one document has one currency",
                order.id, active.version
            )));
        }
    }
    Ok(out)
}

/// The exchange rate the ERP needs when it keeps another currency than the order's.
async fn document_options(ctx: &Ctx, order: &Order) -> Result<DocumentOptions, JobError> {
    let mut options = DocumentOptions::default();
    if ctx.conn.erp == Erp::Lexoffice && order.currency != Currency::Eur {
        let feed = ctx.rates.feed().await.map_err(JobError::retryable)?;
        let fx = feed
            .find(Currency::Eur, order.currency, order.placed_at.date_naive())
            .map_err(|e| {
                let why = match e {
                    canonical::mapping::FeedMiss::None => "the rate feed has no EUR rate".to_owned(),
                    canonical::mapping::FeedMiss::Stale {
                        rate_date,
                        max_age_days,
                    } => format!(
                        "the newest EUR rate is of {rate_date}, older than {max_age_days} days"
                    ),
                };
                JobError::retryable(format!(
                    "order {} is in {} and lexoffice keeps EUR: {why} (import the day's rates with `megzo rates import`)",
                    order.id, order.currency
                ))
            })?;
        options.exchange_rate = Some(ExchangeRate {
            rate: fx.rate,
            date: fx.rate_date,
            source: "MEGZO rate feed".into(),
        });
    }
    Ok(options)
}
