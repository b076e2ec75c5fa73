//! What the six flows keep in Postgres (migration 0005): listings by content hash, the stock the
//! product counts with and the reservations of pulled orders, what each channel was last sent,
//! buffers, each order's follow-ups (document, acceptance, invoice, AWB, tracking) and the
//! returns on the merchant's list. Progress lives here so a Redis loss costs nothing but a
//! re-run.

use std::collections::HashMap;

use canonical::stock::{Buffer, BufferRules, StockInput};
use canonical::{ConnectionId, Sku, TenantId};
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::{DbError, check_text, clip};

// ---------------------------------------------------------------------------------------------
// Listings

/// A listing as last sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingRow {
    pub sku: String,
    pub content_hash: String,
    pub state: String,
    pub message: Option<String>,
    pub batch: Option<serde_json::Value>,
}

/// Every listing state of a connection, by SKU.
pub async fn listing_states(
    pool: &PgPool,
    connection: ConnectionId,
) -> Result<HashMap<String, ListingRow>, DbError> {
    let rows = sqlx::query_as!(
        ListingRow,
        "SELECT sku, content_hash, state, message, batch FROM listing_state WHERE connection_id = $1",
        connection.0,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.sku.clone(), r)).collect())
}

/// Records the listings' states (one statement for the whole batch).
pub async fn upsert_listing_states(
    pool: &PgPool,
    connection: ConnectionId,
    rows: &[ListingRow],
) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    let skus: Vec<String> = rows.iter().map(|r| r.sku.clone()).collect();
    let hashes: Vec<String> = rows.iter().map(|r| r.content_hash.clone()).collect();
    let states: Vec<String> = rows.iter().map(|r| r.state.clone()).collect();
    let messages: Vec<Option<String>> = rows
        .iter()
        .map(|r| r.message.as_ref().map(|m| clip(m, 2000)))
        .collect();
    let batches: Vec<Option<serde_json::Value>> = rows.iter().map(|r| r.batch.clone()).collect();
    sqlx::query!(
        "INSERT INTO listing_state (connection_id, sku, content_hash, state, message, batch)
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[])
         ON CONFLICT (connection_id, sku) DO UPDATE
         SET content_hash = EXCLUDED.content_hash, state = EXCLUDED.state,
             message = EXCLUDED.message, batch = EXCLUDED.batch, updated_at = now()",
        connection.0,
        &skus,
        &hashes,
        &states,
        &messages as &[Option<String>],
        &batches as &[Option<serde_json::Value>],
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Counts of a connection's listings per state.
pub async fn listing_counts(
    pool: &PgPool,
    connection: Option<ConnectionId>,
) -> Result<Vec<(String, i64)>, DbError> {
    let rows = sqlx::query!(
        r#"SELECT state, count(*) AS "n!" FROM listing_state
           WHERE ($1::uuid IS NULL OR connection_id = $1) GROUP BY state ORDER BY state"#,
        connection.map(|c| c.0),
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.state, r.n)).collect())
}

// ---------------------------------------------------------------------------------------------
// Stock

/// Where a tenant's stock figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockSource {
    /// The ERP's readings, replaced by each read.
    Erp,
    /// Held by the product (the ERP keeps no stock): set by the merchant, decremented by orders.
    Held,
}

impl StockSource {
    pub const fn as_str(self) -> &'static str {
        match self {
            StockSource::Erp => "erp",
            StockSource::Held => "held",
        }
    }
}

/// Replaces the ERP readings of these SKUs (taken at `read_at`). Held rows are left alone.
pub async fn record_erp_stock(
    pool: &PgPool,
    tenant: TenantId,
    levels: &[(String, i64)],
    read_at: DateTime<Utc>,
) -> Result<(), DbError> {
    if levels.is_empty() {
        return Ok(());
    }
    let skus: Vec<String> = levels.iter().map(|l| l.0.clone()).collect();
    let qty: Vec<i64> = levels.iter().map(|l| l.1).collect();
    sqlx::query!(
        "INSERT INTO stock_levels (tenant_id, sku, available, source, read_at)
         SELECT $1, s, q, 'erp', $4 FROM UNNEST($2::text[], $3::bigint[]) AS u(s, q)
         ON CONFLICT (tenant_id, sku) DO UPDATE
         SET available = EXCLUDED.available, read_at = EXCLUDED.read_at
         WHERE stock_levels.source = 'erp' AND stock_levels.read_at <= EXCLUDED.read_at",
        tenant.0,
        &skus,
        &qty,
        read_at,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Sets the product-held stock of a SKU (an ERP without stock): the merchant's count.
pub async fn set_held_stock(
    pool: &PgPool,
    tenant: TenantId,
    sku: &Sku,
    quantity: i64,
) -> Result<(), DbError> {
    sqlx::query!(
        "INSERT INTO stock_levels (tenant_id, sku, available, source) VALUES ($1, $2, $3, 'held')
         ON CONFLICT (tenant_id, sku) DO UPDATE
         SET available = EXCLUDED.available, source = 'held', read_at = now()",
        tenant.0,
        sku.as_str(),
        quantity,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The stock inputs of a tenant's SKUs (all, or `only`): available, and the units of pulled
/// orders the figure does not include yet.
pub async fn stock_inputs(
    pool: &PgPool,
    tenant: TenantId,
    only: Option<&[String]>,
) -> Result<HashMap<Sku, StockInput>, DbError> {
    let rows = sqlx::query!(
        r#"SELECT l.sku, l.available,
                  COALESCE((SELECT sum(r.quantity) FROM stock_reservations r
                            WHERE r.tenant_id = l.tenant_id AND r.sku = l.sku
                              AND (r.reflected_after IS NULL OR r.reflected_after > l.read_at)), 0)::bigint AS "unreflected!"
           FROM stock_levels l
           WHERE l.tenant_id = $1 AND ($2::text[] IS NULL OR l.sku = ANY($2))"#,
        tenant.0,
        only as Option<&[String]>,
    )
    .fetch_all(pool)
    .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        let Ok(sku) = Sku::new(&r.sku) else { continue };
        out.insert(
            sku,
            StockInput {
                available: r.available,
                unreflected: u32::try_from(r.unreflected.max(0)).unwrap_or(u32::MAX),
            },
        );
    }
    Ok(out)
}

/// What a connection's channel was last sent, by SKU (all, or `only`).
pub async fn pushed_stock(
    pool: &PgPool,
    connection: ConnectionId,
    only: Option<&[String]>,
) -> Result<HashMap<Sku, u32>, DbError> {
    let rows = sqlx::query!(
        "SELECT sku, quantity FROM stock_pushed
         WHERE connection_id = $1 AND ($2::text[] IS NULL OR sku = ANY($2))",
        connection.0,
        only as Option<&[String]>,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some((
                Sku::new(&r.sku).ok()?,
                u32::try_from(r.quantity.max(0)).unwrap_or(0),
            ))
        })
        .collect())
}

/// Records what the channel was sent (or, after a reconcile, shows).
pub async fn record_pushed(
    pool: &PgPool,
    connection: ConnectionId,
    sent: &[(String, u32)],
) -> Result<(), DbError> {
    if sent.is_empty() {
        return Ok(());
    }
    let skus: Vec<String> = sent.iter().map(|s| s.0.clone()).collect();
    let qty: Vec<i32> = sent
        .iter()
        .map(|s| i32::try_from(s.1).unwrap_or(i32::MAX))
        .collect();
    sqlx::query!(
        "INSERT INTO stock_pushed (connection_id, sku, quantity)
         SELECT $1, * FROM UNNEST($2::text[], $3::int[])
         ON CONFLICT (connection_id, sku) DO UPDATE
         SET quantity = EXCLUDED.quantity, pushed_at = now()",
        connection.0,
        &skus,
        &qty,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// A tenant's buffers.
pub async fn buffer_rules(pool: &PgPool, tenant: TenantId) -> Result<BufferRules, DbError> {
    let rows = sqlx::query!(
        "SELECT channel, sku, buffer FROM stock_buffers WHERE tenant_id = $1",
        tenant.0
    )
    .fetch_all(pool)
    .await?;
    let mut rules = BufferRules::default();
    for r in rows {
        let buffer = Buffer::parse(&r.buffer).map_err(|e| DbError::Corrupt {
            table: "stock_buffers",
            column: "buffer",
            row: format!("{}/{}/{}", tenant, r.channel, r.sku),
            reason: e.to_string(),
        })?;
        match (r.channel.is_empty(), Sku::new(&r.sku)) {
            (true, Err(_)) => rules.tenant = Some(buffer),
            (false, Err(_)) => {
                rules.channels.insert(r.channel, buffer);
            }
            (true, Ok(sku)) => {
                rules.skus.insert(sku, buffer);
            }
            (false, Ok(sku)) => {
                rules.channel_skus.insert((r.channel, sku), buffer);
            }
        }
    }
    Ok(rules)
}

/// Sets (or with `None` removes) a buffer for the tenant, a channel, a SKU or both.
pub async fn set_buffer(
    pool: &PgPool,
    tenant: TenantId,
    channel: Option<&str>,
    sku: Option<&Sku>,
    buffer: Option<Buffer>,
) -> Result<(), DbError> {
    let channel = channel.unwrap_or("");
    let sku = sku.map(Sku::as_str).unwrap_or("");
    match buffer {
        Some(b) => {
            sqlx::query!(
                "INSERT INTO stock_buffers (tenant_id, channel, sku, buffer) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant_id, channel, sku) DO UPDATE SET buffer = EXCLUDED.buffer",
                tenant.0,
                channel,
                sku,
                b.to_string(),
            )
            .execute(pool)
            .await?;
        }
        None => {
            sqlx::query!(
                "DELETE FROM stock_buffers WHERE tenant_id = $1 AND channel = $2 AND sku = $3",
                tenant.0,
                channel,
                sku,
            )
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// The outcome of [`reserve_order`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The units are now counted against the stock.
    Reserved,
    /// They already were (a retried pull): nothing changed.
    AlreadyReserved,
    /// Not enough stock for a line: nothing reserved.
    Short { sku: String, wanted: u32, left: i64 },
}

/// Whether any of `skus` has no stock reading from the ERP yet (no row, or only the zero row a
/// reservation creates): the order flow reads the ERP's stock first rather than cancel an order
/// the stock may well cover.
pub async fn stock_never_read(
    pool: &PgPool,
    tenant: TenantId,
    skus: &[String],
) -> Result<bool, DbError> {
    let n = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM UNNEST($2::text[]) AS s(sku)
           LEFT JOIN stock_levels l ON l.tenant_id = $1 AND l.sku = s.sku
           WHERE l.sku IS NULL OR (l.source = 'erp' AND l.read_at = '-infinity')"#,
        tenant.0,
        skus,
    )
    .fetch_one(pool)
    .await?;
    Ok(n > 0)
}

/// Counts an order's units against the tenant's stock, all lines or none, under row locks so
/// that concurrent orders on every channel see each other: **the never-oversell decision**.
/// Held stock is decremented at once (the reservation is then reflected); ERP stock keeps the
/// reservation until a reading includes it ([`mark_reflected`]). A SKU the product has no
/// figure for counts as zero.
pub async fn reserve_order(
    pool: &PgPool,
    tenant: TenantId,
    order_row: i64,
    lines: &[(String, u32)],
) -> Result<Reservation, DbError> {
    let mut merged: Vec<(String, u32)> = Vec::new();
    for (sku, q) in lines {
        match merged.iter_mut().find(|(s, _)| s == sku) {
            Some(m) => m.1 += q,
            None => merged.push((sku.clone(), *q)),
        }
    }
    merged.sort();
    let mut tx = pool.begin().await?;
    // Serialise the orders of this tenant's SKUs: lock the stock rows in SKU order (no deadlock),
    // creating missing ones at zero so there is always a row to lock.
    let skus: Vec<String> = merged.iter().map(|m| m.0.clone()).collect();
    sqlx::query!(
        "INSERT INTO stock_levels (tenant_id, sku, available, source, read_at)
         SELECT $1, s, 0, 'erp', '-infinity' FROM UNNEST($2::text[]) AS s
         ON CONFLICT (tenant_id, sku) DO NOTHING",
        tenant.0,
        &skus,
    )
    .execute(&mut *tx)
    .await?;
    let levels = sqlx::query!(
        r#"SELECT sku, available, source, read_at FROM stock_levels
           WHERE tenant_id = $1 AND sku = ANY($2) ORDER BY sku FOR UPDATE"#,
        tenant.0,
        &skus,
    )
    .fetch_all(&mut *tx)
    .await?;
    let existing = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM stock_reservations WHERE order_row = $1"#,
        order_row
    )
    .fetch_one(&mut *tx)
    .await?;
    if existing > 0 {
        tx.rollback().await?;
        return Ok(Reservation::AlreadyReserved);
    }
    for (sku, wanted) in &merged {
        let Some(level) = levels.iter().find(|l| &l.sku == sku) else {
            return Ok(Reservation::Short {
                sku: sku.clone(),
                wanted: *wanted,
                left: 0,
            });
        };
        let unreflected = sqlx::query_scalar!(
            r#"SELECT COALESCE(sum(quantity), 0)::bigint AS "n!" FROM stock_reservations
               WHERE tenant_id = $1 AND sku = $2
                 AND (reflected_after IS NULL OR reflected_after > $3)"#,
            tenant.0,
            sku,
            level.read_at,
        )
        .fetch_one(&mut *tx)
        .await?;
        let left = level.available - unreflected;
        if i64::from(*wanted) > left {
            tx.rollback().await?;
            return Ok(Reservation::Short {
                sku: sku.clone(),
                wanted: *wanted,
                left: left.max(0),
            });
        }
    }
    for (sku, wanted) in &merged {
        let held = levels
            .iter()
            .any(|l| &l.sku == sku && l.source == StockSource::Held.as_str());
        if held {
            sqlx::query!(
                "UPDATE stock_levels SET available = available - $3
                 WHERE tenant_id = $1 AND sku = $2",
                tenant.0,
                sku,
                i64::from(*wanted),
            )
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query!(
            "INSERT INTO stock_reservations (order_row, tenant_id, sku, quantity, reflected_after)
             VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN '-infinity'::timestamptz END)",
            order_row,
            tenant.0,
            sku,
            i32::try_from(*wanted).unwrap_or(i32::MAX),
            held,
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Reservation::Reserved)
}

/// From now on, ERP readings include the order's units (its document moved the stock, or the
/// merchant's invoice did). Returns the SKUs concerned.
pub async fn mark_reflected(pool: &PgPool, order_row: i64) -> Result<Vec<String>, DbError> {
    let skus = sqlx::query_scalar!(
        "UPDATE stock_reservations SET reflected_after = now()
         WHERE order_row = $1 AND reflected_after IS NULL RETURNING sku",
        order_row
    )
    .fetch_all(pool)
    .await?;
    Ok(skus)
}

/// Gives a cancelled order's units back: held stock is credited, ERP reservations dropped.
/// Returns the SKUs concerned (to push again).
pub async fn release_order(pool: &PgPool, order_row: i64) -> Result<Vec<String>, DbError> {
    let mut tx = pool.begin().await?;
    let skus = release_order_in(&mut tx, order_row).await?;
    tx.commit().await?;
    Ok(skus)
}

/// As [`release_order`], inside the caller's transaction.
pub(crate) async fn release_order_in(
    tx: &mut sqlx::PgConnection,
    order_row: i64,
) -> Result<Vec<String>, DbError> {
    let rows = sqlx::query!(
        "DELETE FROM stock_reservations WHERE order_row = $1 RETURNING tenant_id, sku, quantity",
        order_row
    )
    .fetch_all(&mut *tx)
    .await?;
    for r in &rows {
        sqlx::query!(
            "UPDATE stock_levels SET available = available + $3
             WHERE tenant_id = $1 AND sku = $2 AND source = 'held'",
            r.tenant_id,
            r.sku,
            i64::from(r.quantity),
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(rows.into_iter().map(|r| r.sku).collect())
}

// ---------------------------------------------------------------------------------------------
// Orders after their claim

/// An order row with what the follow-up flows need.
#[derive(Debug, Clone)]
pub struct OrderWork {
    pub id: i64,
    pub channel_order_id: String,
    pub state: String,
    pub order_json: Option<serde_json::Value>,
    pub document_json: Option<serde_json::Value>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub invoice_state: Option<String>,
    pub invoice_series: Option<String>,
    pub invoice_number: Option<String>,
    pub awb_reference: Option<String>,
    pub awb: Option<String>,
    pub awb_state: Option<String>,
    pub shipped_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// Stores the pulled order (canonical JSON) and its connection on its row, unless the row has
/// them already. Called on a new claim and again whenever an existing row is listed: a process
/// killed between the claim and this write leaves a row without them, and the order comes back
/// in the next listing because the cursor did not move. Never on a row whose personal data was
/// anonymised ([`crate::gdpr`]): a re-listed order does not bring it back.
pub async fn store_order_payload(
    pool: &PgPool,
    order_row: i64,
    connection: ConnectionId,
    order: &serde_json::Value,
) -> Result<(), DbError> {
    sqlx::query!(
        "UPDATE orders SET connection_id = $2, order_json = $3
         WHERE id = $1 AND (connection_id IS NULL OR order_json IS NULL)
           AND personal_data_erased_at IS NULL",
        order_row,
        connection.0,
        order,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Stores the ERP document of a created order.
pub async fn store_document(
    pool: &PgPool,
    order_row: i64,
    document: &serde_json::Value,
) -> Result<(), DbError> {
    sqlx::query!(
        "UPDATE orders SET document_json = $2 WHERE id = $1",
        order_row,
        document
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// A connection's orders in the given states (oldest first, at most `limit`).
pub async fn orders_in(
    pool: &PgPool,
    connection: ConnectionId,
    states: &[&str],
    limit: i64,
) -> Result<Vec<OrderWork>, DbError> {
    let states: Vec<String> = states.iter().map(|s| (*s).to_owned()).collect();
    let rows = sqlx::query_as!(
        OrderWork,
        "SELECT id, channel_order_id, state, order_json, document_json, accepted_at,
                invoice_state, invoice_series, invoice_number, awb_reference, awb, awb_state,
                shipped_at, updated_at
         FROM orders WHERE connection_id = $1 AND state = ANY($2)
         ORDER BY id LIMIT $3",
        connection.0,
        &states,
        limit,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Of `ids` (one page of a marketplace's order list), those whose rows need nothing more from
/// `order_pull`: stored, and cancelled, parked for review, or created and accepted. One query
/// per page: a marketplace whose list reaches back (Cel.ro: 15 minutes of overlap) returns the
/// same orders to every run, and each used to cost three queries.
pub async fn settled_orders(
    pool: &PgPool,
    tenant: TenantId,
    channel: &str,
    ids: &[String],
) -> Result<std::collections::HashSet<String>, DbError> {
    let rows = sqlx::query_scalar!(
        "SELECT channel_order_id FROM orders
         WHERE tenant_id = $1 AND channel = $2 AND channel_order_id = ANY($3)
           AND order_json IS NOT NULL
           AND (state IN ('cancelled', 'needs_review')
                OR (state = 'created' AND accepted_at IS NOT NULL))",
        tenant.0,
        channel,
        ids,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// One order's work row by its key.
pub async fn order_work(
    pool: &PgPool,
    tenant: TenantId,
    channel: &str,
    channel_order_id: &str,
) -> Result<Option<OrderWork>, DbError> {
    let row = sqlx::query_as!(
        OrderWork,
        "SELECT id, channel_order_id, state, order_json, document_json, accepted_at,
                invoice_state, invoice_series, invoice_number, awb_reference, awb, awb_state,
                shipped_at, updated_at
         FROM orders WHERE tenant_id = $1 AND channel = $2 AND channel_order_id = $3",
        tenant.0,
        channel,
        channel_order_id,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row)
}

/// Records that the marketplace has the order accepted.
pub async fn mark_accepted(pool: &PgPool, order_row: i64) -> Result<(), DbError> {
    sqlx::query!(
        "UPDATE orders SET accepted_at = COALESCE(accepted_at, now()) WHERE id = $1",
        order_row
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Records the invoice step of an order.
pub async fn set_invoice(
    pool: &PgPool,
    order_row: i64,
    state: &str,
    invoice: Option<(&Option<String>, &str)>,
    note: Option<&str>,
) -> Result<(), DbError> {
    sqlx::query!(
        "UPDATE orders SET invoice_state = $2, invoice_number = COALESCE($3, invoice_number),
                invoice_series = COALESCE($5, invoice_series),
                invoice_note = $4 WHERE id = $1 AND invoice_state IS DISTINCT FROM 'attached'",
        order_row,
        state,
        invoice.map(|i| i.1),
        note.map(|n| clip(n, 2000)),
        invoice.and_then(|i| i.0.as_deref()),
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The ERP has no invoice for the order yet: `waiting`, checked again after
/// `base × 2^(checks so far)`, at most `cap`.
pub async fn invoice_waiting(
    pool: &PgPool,
    order_row: i64,
    base: std::time::Duration,
    cap: std::time::Duration,
) -> Result<(), DbError> {
    sqlx::query!(
        "UPDATE orders SET invoice_state = 'waiting', invoice_checks = invoice_checks + 1,
                invoice_next_check_at = now() + LEAST($3::bigint,
                    $2::bigint * (2 ^ LEAST(invoice_checks, 30))::bigint) * interval '1 millisecond'
         WHERE id = $1 AND invoice_state IS DISTINCT FROM 'attached'",
        order_row,
        base.as_millis() as i64,
        cap.as_millis() as i64,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Writes the AWB intent (the reference) before the courier is called. Returns the reference
/// stored, which is the one an earlier attempt wrote if there was one; `None` if the order is no
/// longer `created` (the marketplace cancelled it after `awb_push` listed it): then no parcel
/// may be booked.
pub async fn awb_intent(
    pool: &PgPool,
    order_row: i64,
    reference: &str,
) -> Result<Option<String>, DbError> {
    check_text("awb reference", reference, 35)?;
    let stored = sqlx::query_scalar!(
        r#"UPDATE orders SET awb_reference = COALESCE(awb_reference, $2),
                  awb_state = 'intent', awb_intent_at = now()
           WHERE id = $1 AND state = 'created' RETURNING awb_reference AS "r!""#,
        order_row,
        reference,
    )
    .fetch_optional(pool)
    .await?;
    Ok(stored)
}

/// Records the minted AWB. Refuses a second, different AWB for the order (`Ok(false)`).
pub async fn awb_created(pool: &PgPool, order_row: i64, awb: &str) -> Result<bool, DbError> {
    check_text("awb", awb, 64)?;
    let done = sqlx::query!(
        "UPDATE orders SET awb = $2, awb_state = 'created', awb_note = NULL, awb_intent_at = NULL
         WHERE id = $1 AND (awb IS NULL OR awb = $2)",
        order_row,
        awb,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Parks the AWB step (in doubt, or unsupported) with the reason.
pub async fn awb_parked(
    pool: &PgPool,
    order_row: i64,
    state: &str,
    note: &str,
) -> Result<(), DbError> {
    sqlx::query!(
        "UPDATE orders SET awb_state = $2, awb_note = $3 WHERE id = $1 AND awb IS NULL",
        order_row,
        state,
        clip(note, 2000),
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Records that the marketplace order carries its tracking.
pub async fn mark_shipped(pool: &PgPool, order_row: i64) -> Result<(), DbError> {
    sqlx::query!(
        "UPDATE orders SET shipped_at = COALESCE(shipped_at, now()) WHERE id = $1",
        order_row
    )
    .execute(pool)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Returns

/// A return, cancellation or reversal on the merchant's list (or registered in the ERP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnItem {
    pub id: i64,
    pub event_id: String,
    pub channel_order_id: String,
    pub kind: String,
    pub outcome: String,
    pub reference: Option<String>,
    pub evidence: Option<String>,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// Records a return event once (by its event id); `false` when it was already recorded.
#[allow(clippy::too_many_arguments)]
pub async fn record_return(
    pool: &PgPool,
    tenant: TenantId,
    connection: ConnectionId,
    event_id: &str,
    channel_order_id: &str,
    kind: &str,
    outcome: &str,
    reference: Option<&str>,
    evidence: Option<&str>,
    open: bool,
) -> Result<bool, DbError> {
    let done = sqlx::query!(
        "INSERT INTO return_items (tenant_id, connection_id, event_id, channel_order_id, kind,
                                   outcome, reference, evidence, state, closed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, CASE WHEN $9 = 'closed' THEN now() END)
         ON CONFLICT (connection_id, event_id) DO NOTHING",
        tenant.0,
        connection.0,
        event_id,
        channel_order_id,
        kind,
        outcome,
        reference,
        evidence.map(|e| clip(e, 4000)),
        if open { "open" } else { "closed" },
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Updates a waiting or open item once more is known.
pub async fn update_return(
    pool: &PgPool,
    id: i64,
    outcome: &str,
    reference: Option<&str>,
    evidence: Option<&str>,
    open: bool,
) -> Result<(), DbError> {
    sqlx::query!(
        "UPDATE return_items SET outcome = $2, reference = COALESCE($3, reference),
                evidence = COALESCE($4, evidence), state = $5,
                closed_at = CASE WHEN $5 = 'closed' THEN now() END
         WHERE id = $1",
        id,
        outcome,
        reference,
        evidence.map(|e| clip(e, 4000)),
        if open { "open" } else { "closed" },
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// A connection's open return items (or all, with `all`).
pub async fn return_items(
    pool: &PgPool,
    connection: ConnectionId,
    all: bool,
) -> Result<Vec<ReturnItem>, DbError> {
    let rows = sqlx::query_as!(
        ReturnItem,
        "SELECT id, event_id, channel_order_id, kind, outcome, reference, evidence, state,
                created_at, closed_at
         FROM return_items WHERE connection_id = $1 AND ($2 OR state = 'open') ORDER BY id",
        connection.0,
        all,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// The demo's and the panel's summary of a connection (or all connections).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowSummary {
    pub listings_ok: i64,
    pub listings_other: i64,
    pub stock_pushed: i64,
    pub orders_created: i64,
    pub orders_cancelled: i64,
    pub orders_in_doubt: i64,
    pub orders_pending: i64,
    pub invoices_attached: i64,
    pub awbs: i64,
    pub shipped: i64,
    pub returns_open: i64,
    pub returns_closed: i64,
}

/// Counts across every connection (one round trip).
pub async fn flow_summary(pool: &PgPool) -> Result<FlowSummary, DbError> {
    let r = sqlx::query!(
        r#"SELECT
            (SELECT count(*) FROM listing_state WHERE state = 'ok') AS "listings_ok!",
            (SELECT count(*) FROM listing_state WHERE state <> 'ok') AS "listings_other!",
            (SELECT count(*) FROM stock_pushed) AS "stock_pushed!",
            (SELECT count(*) FROM orders WHERE state = 'created') AS "created!",
            (SELECT count(*) FROM orders WHERE state = 'cancelled') AS "cancelled!",
            (SELECT count(*) FROM orders WHERE state = 'needs_review') AS "in_doubt!",
            (SELECT count(*) FROM orders WHERE state IN ('claimed', 'erp_pending')) AS "pending!",
            (SELECT count(*) FROM orders WHERE invoice_state = 'attached') AS "attached!",
            (SELECT count(*) FROM orders WHERE awb IS NOT NULL) AS "awbs!",
            (SELECT count(*) FROM orders WHERE shipped_at IS NOT NULL) AS "shipped!",
            (SELECT count(*) FROM return_items WHERE state = 'open') AS "returns_open!",
            (SELECT count(*) FROM return_items WHERE state = 'closed') AS "returns_closed!""#
    )
    .fetch_one(pool)
    .await?;
    Ok(FlowSummary {
        listings_ok: r.listings_ok,
        listings_other: r.listings_other,
        stock_pushed: r.stock_pushed,
        orders_created: r.created,
        orders_cancelled: r.cancelled,
        orders_in_doubt: r.in_doubt,
        orders_pending: r.pending,
        invoices_attached: r.attached,
        awbs: r.awbs,
        shipped: r.shipped,
        returns_open: r.returns_open,
        returns_closed: r.returns_closed,
    })
}

/// Which follow-up an order is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Created in the ERP, invoice not attached or recorded yet.
    Invoice,
    /// Created and accepted, no AWB yet (or an AWB whose create was in doubt).
    Awb,
    /// AWB minted, tracking not on the marketplace order yet.
    Ship,
}

impl Need {
    const fn as_str(self) -> &'static str {
        match self {
            Need::Invoice => "invoice",
            Need::Awb => "awb",
            Need::Ship => "ship",
        }
    }
}

/// A connection's orders waiting for `need`, oldest first, at most `limit`. For
/// [`Need::Invoice`], only the orders whose next check is due (see [`invoice_waiting`]).
pub async fn orders_needing(
    pool: &PgPool,
    connection: ConnectionId,
    need: Need,
    limit: i64,
) -> Result<Vec<OrderWork>, DbError> {
    orders_needing_when(pool, connection, need, limit, false).await
}

/// As [`orders_needing`]; `due_or_not` also takes the invoice checks not due yet (an ERP's
/// webhook said an invoice exists).
pub async fn orders_needing_when(
    pool: &PgPool,
    connection: ConnectionId,
    need: Need,
    limit: i64,
    due_or_not: bool,
) -> Result<Vec<OrderWork>, DbError> {
    let rows = sqlx::query_as!(
        OrderWork,
        "SELECT id, channel_order_id, state, order_json, document_json, accepted_at,
                invoice_state, invoice_series, invoice_number, awb_reference, awb, awb_state,
                shipped_at, updated_at
         FROM orders
         WHERE connection_id = $1 AND state = 'created' AND CASE $2
             WHEN 'invoice' THEN (invoice_state IS NULL OR invoice_state = 'waiting')
                 AND ($4 OR invoice_next_check_at IS NULL OR invoice_next_check_at <= now())
             WHEN 'awb' THEN accepted_at IS NOT NULL AND (awb_state IS NULL OR awb_state = 'intent')
             WHEN 'ship' THEN awb_state = 'created' AND shipped_at IS NULL
             ELSE false END
         ORDER BY invoice_next_check_at NULLS FIRST, id LIMIT $3",
        connection.0,
        need.as_str(),
        limit,
        due_or_not,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// When the AWB intent of an order was written (for the lookup grace), if it is one.
pub async fn awb_intent_at(
    pool: &PgPool,
    order_row: i64,
) -> Result<Option<DateTime<Utc>>, DbError> {
    let at = sqlx::query_scalar!(
        "SELECT awb_intent_at FROM orders WHERE id = $1 AND awb_state = 'intent'",
        order_row
    )
    .fetch_optional(pool)
    .await?;
    Ok(at.flatten())
}

/// Clears an AWB intent after a create that certainly made nothing (refused before or by the
/// courier): the next attempt creates without waiting for a lookup.
pub async fn awb_clear_intent(pool: &PgPool, order_row: i64, note: &str) -> Result<(), DbError> {
    sqlx::query!(
        "UPDATE orders SET awb_state = NULL, awb_intent_at = NULL, awb_note = $2
         WHERE id = $1 AND awb_state = 'intent'",
        order_row,
        clip(note, 2000),
    )
    .execute(pool)
    .await?;
    Ok(())
}
