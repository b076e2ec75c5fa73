//! The product's GDPR duties as the merchants' **data processor**: the buyers' personal data is
//! kept only as long as the orders need it, and every merchant (the controller) can export and
//! erase what the product holds about its buyers. See `docs/gdpr.md`.
//!
//! **Personal data** is the canonical [`Contact`] (names, company, e-mail, phone, address, tax
//! id). Postgres holds it in:
//! - `orders.order_json`: the pulled order, with its `customer` and `ship_to` contacts;
//! - free texts written from external answers, which can quote a buyer: `orders.review_reason`,
//!   `invoice_note`, `awb_note` (an ERP's or a courier's refusal: "postal code 077999 of
//!   receiverDetails is invalid"), `return_items.evidence` (a connector's evidence, which quotes
//!   the buyer's return reason), and the error texts of the job history (`job_runs.error`,
//!   `dead_jobs.errors`, `flow_status.last_error`).
//!
//! `orders.document_json` (a `SalesDocument`) holds none (it is walked for contact-shaped
//! objects all the same); the job payloads (tenant, connection, scope, trigger) hold none.
//!
//! **Anonymising** an order replaces every contact-shaped object of its JSON (any object with
//! `name`, `address_line1`, `city` and `postal_code`, so a contact added to `Order` later is
//! covered) by a contact with the name [`ERASED`] and the country only, and replaces the
//! contacts' values in the order's free texts and return items by [`ERASED`]. The business
//! record stays: ids, channel order id, states, amounts, lines and SKUs, ERP document id and
//! numbers, invoice numbers, AWB, dates. It is idempotent and marks the row
//! (`orders.personal_data_erased_at`); a re-listed order never writes its payload back.
//!
//! **Complete** orders (no flow reads their personal data again; [`purge_expired`]):
//! - `cancelled` (never reached the ERP, out of stock, or cancelled before the ERP had it), or
//! - `created` and shipped (`shipped_at`: AWB minted and tracking on the marketplace), or shipped
//!   by the merchant (`awb_state = 'unsupported'`: no courier), or cancelled or reversed after
//!   the document (a closed `cancellation` or `reversal` return item), or
//! - orphaned: its connection was deleted (`connection_id` NULL), so no flow can reach it;
//!
//! and no return item of the order is open. It is complete *since* the latest of its
//! `created_at`, `updated_at`, `accepted_at`, `shipped_at`, `awb_intent_at` and its return items'
//! `created_at` / `closed_at`. `claimed`, `erp_pending` and `needs_review` orders are never
//! complete: support decides those (an [`erase_tenant`] request still anonymises them).
//!
//! Job history error texts older than the retention are reduced to [`ERROR_TEXT_ERASED`] (the
//! class, attempt, worker and times stay): they are free text from external APIs, where
//! personal data cannot be told from the rest.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use canonical::{Contact, Country, TenantId};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db::{self, DbError};

/// Days an order's personal data is kept once the order is complete, unless configured.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;

/// Rows anonymised per transaction.
pub const BATCH: i64 = 500;

/// What replaces a contact's name and any personal value in a free text.
pub const ERASED: &str = "[erased]";

/// What replaces the error texts of a job attempt (the class and times stay). Also in
/// `migrations/0009_gdpr.sql` (the index of the texts still held) and in the SQL below.
pub const ERROR_TEXT_ERASED: &str = "[error text erased]";

/// The text fields of a serialized [`Contact`] (all but `country`), and the keys that make a
/// JSON object contact-shaped. A unit test keeps them equal to [`Contact`]'s fields.
pub const CONTACT_TEXT_FIELDS: [&str; 10] = [
    "name",
    "company",
    "email",
    "phone",
    "address_line1",
    "address_line2",
    "city",
    "postal_code",
    "region",
    "tax_id",
];
const CONTACT_SHAPE: [&str; 4] = ["name", "address_line1", "city", "postal_code"];

/// Values shorter than this are not looked for in free texts (they would match inside ids and
/// words).
const MIN_NEEDLE_CHARS: usize = 3;

/// The retention settings of the scheduler's purge loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days an order's personal data is kept once the order is complete (at least 1).
    pub retention_days: u32,
    /// Hours between two purges (at least 1).
    pub interval_hours: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            retention_days: DEFAULT_RETENTION_DAYS,
            interval_hours: 24,
        }
    }
}

impl RetentionConfig {
    /// The retention as a duration; refuses 0 days.
    pub fn retention(&self) -> Result<Duration, DbError> {
        retention_days(self.retention_days)
    }

    /// The time between two purges; refuses 0 hours.
    pub fn interval(&self) -> Result<std::time::Duration, DbError> {
        if self.interval_hours == 0 {
            return Err(DbError::Invalid {
                what: "GDPR purge interval",
                value: "0 hours".into(),
                reason: "must be at least 1 hour".into(),
            });
        }
        Ok(std::time::Duration::from_secs(
            u64::from(self.interval_hours) * 3600,
        ))
    }
}

/// `days` as a retention: at least one day, at most 100 years.
pub fn retention_days(days: u32) -> Result<Duration, DbError> {
    if !(1..=36_500).contains(&days) {
        return Err(DbError::Invalid {
            what: "GDPR retention",
            value: format!("{days} days"),
            reason: "must be between 1 and 36500 days".into(),
        });
    }
    Ok(Duration::days(i64::from(days)))
}

fn check_retention(retention: Duration) -> Result<(), DbError> {
    if retention < Duration::days(1) {
        return Err(DbError::Invalid {
            what: "GDPR retention",
            value: format!("{} seconds", retention.num_seconds()),
            reason: "must be at least one day".into(),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Anonymising values

/// Whether a JSON object is a serialized [`Contact`] (or shaped like one).
fn is_contact(m: &Map<String, Value>) -> bool {
    CONTACT_SHAPE
        .iter()
        .all(|k| m.get(*k).is_some_and(Value::is_string))
}

/// The personal values of a contact worth looking for in free texts: every text field, the
/// name's words, and the phone's digits.
fn contact_needles(m: &Map<String, Value>, out: &mut BTreeSet<String>) {
    let mut add = |s: &str| {
        let s = s.trim();
        if s.chars().count() >= MIN_NEEDLE_CHARS && s != ERASED {
            out.insert(s.to_owned());
        }
    };
    for key in CONTACT_TEXT_FIELDS {
        if let Some(s) = m.get(key).and_then(Value::as_str) {
            add(s);
        }
    }
    for key in ["name", "company"] {
        if let Some(s) = m.get(key).and_then(Value::as_str) {
            s.split_whitespace().for_each(&mut add);
        }
    }
    if let Some(phone) = m.get("phone").and_then(Value::as_str) {
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        if digits.len() >= 6 {
            add(&digits);
        }
    }
}

/// The anonymised form of a contact: the name [`ERASED`], the country kept, nothing else.
fn redacted_contact(m: &Map<String, Value>) -> Result<Value, DbError> {
    let country: Option<Country> = m
        .get("country")
        .cloned()
        .and_then(|c| serde_json::from_value(c).ok());
    // Every field named: a field added to `Contact` must be decided on here.
    let c = Contact {
        name: ERASED.to_owned(),
        company: None,
        email: None,
        phone: None,
        address_line1: String::new(),
        address_line2: None,
        city: String::new(),
        postal_code: String::new(),
        region: None,
        country,
        tax_id: None,
    };
    serde_json::to_value(c).map_err(|source| DbError::Json {
        what: "an anonymised contact",
        source,
    })
}

/// Replaces every contact-shaped object in `v` by its anonymised form, collecting the personal
/// values it held. Returns whether anything changed.
fn redact_contacts(v: &mut Value, needles: &mut BTreeSet<String>) -> Result<bool, DbError> {
    match v {
        Value::Object(m) if is_contact(m) => {
            contact_needles(m, needles);
            let r = redacted_contact(m)?;
            if *v == r {
                Ok(false)
            } else {
                *v = r;
                Ok(true)
            }
        }
        Value::Object(m) => {
            let mut changed = false;
            for child in m.values_mut() {
                changed |= redact_contacts(child, needles)?;
            }
            Ok(changed)
        }
        Value::Array(items) => {
            let mut changed = false;
            for child in items {
                changed |= redact_contacts(child, needles)?;
            }
            Ok(changed)
        }
        _ => Ok(false),
    }
}

/// The length in bytes of the prefix of `hay` that equals `needle` ignoring case, if any.
fn match_len_ignoring_case(hay: &str, needle: &str) -> Option<usize> {
    let mut h = hay.char_indices();
    for nc in needle.chars() {
        let (_, hc) = h.next()?;
        if hc != nc && !hc.to_lowercase().eq(nc.to_lowercase()) {
            return None;
        }
    }
    Some(h.next().map_or(hay.len(), |(i, _)| i))
}

/// `text` with every occurrence of a needle (ignoring case) replaced by [`ERASED`]; longer
/// needles first, so a full name goes before its words.
pub fn scrub<'a>(text: &'a str, needles: &[String]) -> Cow<'a, str> {
    if needles.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut sorted: Vec<&str> = needles.iter().map(String::as_str).collect();
    sorted.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        if let Some(len) = sorted.iter().find_map(|n| match_len_ignoring_case(rest, n)) {
            out.push_str(ERASED);
            i += len;
            changed = true;
            continue;
        }
        let Some(c) = rest.chars().next() else { break };
        out.push(c);
        i += c.len_utf8();
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// Scrubs every string (and key) of a JSON value. Returns whether anything changed.
fn scrub_json(v: &mut Value, needles: &[String]) -> bool {
    match v {
        Value::String(s) => match scrub(s, needles) {
            Cow::Owned(new) => {
                *s = new;
                true
            }
            Cow::Borrowed(_) => false,
        },
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |acc, c| scrub_json(c, needles) | acc),
        Value::Object(m) => {
            let old = std::mem::take(m);
            let mut changed = false;
            for (k, mut child) in old {
                changed |= scrub_json(&mut child, needles);
                let key = match scrub(&k, needles) {
                    Cow::Owned(new) => {
                        changed = true;
                        new
                    }
                    Cow::Borrowed(_) => k,
                };
                m.insert(key, child);
            }
            changed
        }
        _ => false,
    }
}

fn scrub_opt(text: &Option<String>, needles: &[String]) -> (Option<String>, bool) {
    match text.as_deref().map(|t| scrub(t, needles)) {
        Some(Cow::Owned(new)) => (Some(new), true),
        _ => (text.clone(), false),
    }
}

// ---------------------------------------------------------------------------------------------
// Anonymising order rows

/// Whether writes are kept (`Apply`) or rolled back after counting (`Preview`: `--dry-run`,
/// `erase` without `--yes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Apply,
    Preview,
}

async fn finish(tx: Transaction<'_, Postgres>, mode: Mode) -> Result<(), DbError> {
    match mode {
        Mode::Apply => tx.commit().await?,
        Mode::Preview => tx.rollback().await?,
    }
    Ok(())
}

/// An order row still holding personal data, as the anonymiser needs it.
#[derive(Debug)]
struct HeldOrder {
    id: i64,
    connection_id: Option<Uuid>,
    channel_order_id: String,
    order_json: Option<Value>,
    document_json: Option<Value>,
    review_reason: Option<String>,
    invoice_note: Option<String>,
    awb_note: Option<String>,
}

/// What anonymising some orders changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OrderCounts {
    /// Order rows anonymised (contacts replaced, or found with none left and marked).
    pub orders_anonymised: u64,
    /// Free texts of those rows (`review_reason`, `invoice_note`, `awb_note`) that quoted a
    /// contact's values.
    pub texts_scrubbed: u64,
    /// Return items of those orders whose evidence quoted a contact's values.
    pub return_items_scrubbed: u64,
    /// Console audit entries about those orders (`order.*` actions: support's notes and
    /// reasons) that quoted a contact's values.
    pub audit_entries_scrubbed: u64,
}

/// Anonymises one order row (see the module docs); returns the personal values it held.
async fn anonymise_order(
    tx: &mut PgConnection,
    row: HeldOrder,
    now: DateTime<Utc>,
    counts: &mut OrderCounts,
) -> Result<Vec<String>, DbError> {
    let mut found = BTreeSet::new();
    let mut order_json = row.order_json;
    if let Some(v) = order_json.as_mut() {
        redact_contacts(v, &mut found)?;
    }
    let mut document_json = row.document_json;
    if let Some(v) = document_json.as_mut() {
        redact_contacts(v, &mut found)?;
    }
    let needles: Vec<String> = found.into_iter().collect();
    let (review_reason, a) = scrub_opt(&row.review_reason, &needles);
    let (invoice_note, b) = scrub_opt(&row.invoice_note, &needles);
    let (awb_note, c) = scrub_opt(&row.awb_note, &needles);
    counts.texts_scrubbed += u64::from(a) + u64::from(b) + u64::from(c);
    sqlx::query!(
        "UPDATE orders SET order_json = $2, document_json = $3, review_reason = $4,
                invoice_note = $5, awb_note = $6,
                personal_data_erased_at = COALESCE(personal_data_erased_at, $7)
         WHERE id = $1",
        row.id,
        order_json,
        document_json,
        review_reason,
        invoice_note,
        awb_note,
        now,
    )
    .execute(&mut *tx)
    .await?;
    counts.orders_anonymised += 1;
    if let Some(connection) = row.connection_id
        && !needles.is_empty()
    {
        let items = sqlx::query!(
            r#"SELECT id, evidence AS "evidence!" FROM return_items
               WHERE connection_id = $1 AND channel_order_id = $2 AND evidence IS NOT NULL
               ORDER BY id"#,
            connection,
            row.channel_order_id,
        )
        .fetch_all(&mut *tx)
        .await?;
        for item in items {
            if let Cow::Owned(evidence) = scrub(&item.evidence, &needles) {
                sqlx::query!(
                    "UPDATE return_items SET evidence = $2 WHERE id = $1",
                    item.id,
                    evidence
                )
                .execute(&mut *tx)
                .await?;
                counts.return_items_scrubbed += 1;
            }
        }
    }
    if !needles.is_empty() {
        // Support's notes about the order (a cancellation reason, a document id) are audited
        // under the order's row id; the index covers exactly this predicate.
        let entries = sqlx::query!(
            "SELECT id, detail FROM audit_log
             WHERE action LIKE 'order.%' AND target = $1 ORDER BY id",
            row.id.to_string(),
        )
        .fetch_all(&mut *tx)
        .await?;
        for mut entry in entries {
            if scrub_json(&mut entry.detail, &needles) {
                sqlx::query!(
                    "UPDATE audit_log SET detail = $2 WHERE id = $1",
                    entry.id,
                    entry.detail
                )
                .execute(&mut *tx)
                .await?;
                counts.audit_entries_scrubbed += 1;
            }
        }
    }
    Ok(needles)
}

// ---------------------------------------------------------------------------------------------
// The retention purge

/// What a retention purge did (or, as a preview, would do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// Orders complete before this instant (now − retention) were anonymised, and job history
    /// error texts older than it erased.
    pub cutoff: DateTime<Utc>,
    #[serde(flatten)]
    pub orders: OrderCounts,
    /// Failed job attempts whose error texts were erased.
    pub job_runs_erased: u64,
    /// Dead jobs whose attempts' error texts were erased.
    pub dead_jobs_erased: u64,
    /// Flows whose latest error text was erased.
    pub flow_status_erased: u64,
    /// Transactions committed (or rolled back, in a preview).
    pub batches: u64,
}

/// Anonymises the personal data of every order complete for longer than `retention` at `now`
/// (see the module docs for "complete"), and erases the job history's error texts older than
/// that, in transactions of [`BATCH`] rows. Idempotent. Rows a flow holds locked right now are
/// left for the next purge.
pub async fn purge_expired(
    pool: &PgPool,
    retention: Duration,
    now: DateTime<Utc>,
) -> Result<PurgeReport, DbError> {
    purge(pool, retention, now, Mode::Apply).await
}

/// What [`purge_expired`] would do at `now`, without changing anything (every batch is rolled
/// back).
pub async fn purge_preview(
    pool: &PgPool,
    retention: Duration,
    now: DateTime<Utc>,
) -> Result<PurgeReport, DbError> {
    purge(pool, retention, now, Mode::Preview).await
}

async fn purge(
    pool: &PgPool,
    retention: Duration,
    now: DateTime<Utc>,
    mode: Mode,
) -> Result<PurgeReport, DbError> {
    check_retention(retention)?;
    let cutoff = now - retention;
    let mut report = PurgeReport {
        cutoff,
        ..PurgeReport::default()
    };
    let mut after = 0_i64;
    loop {
        let mut tx = pool.begin().await?;
        let rows = sqlx::query_as!(
            HeldOrder,
            "SELECT o.id, o.connection_id, o.channel_order_id, o.order_json, o.document_json,
                    o.review_reason, o.invoice_note, o.awb_note
             FROM orders o
             WHERE o.personal_data_erased_at IS NULL
               AND o.updated_at < $1
               AND o.id > $2
               AND GREATEST(o.created_at, o.updated_at, o.accepted_at, o.shipped_at,
                            o.awb_intent_at) < $1
               AND (o.state = 'cancelled'
                    OR o.connection_id IS NULL
                    OR (o.state = 'created'
                        AND (o.shipped_at IS NOT NULL
                             OR o.awb_state = 'unsupported'
                             OR EXISTS (SELECT 1 FROM return_items r
                                        WHERE r.connection_id = o.connection_id
                                          AND r.channel_order_id = o.channel_order_id
                                          AND r.kind IN ('cancellation', 'reversal')
                                          AND r.state = 'closed'))))
               AND NOT EXISTS (SELECT 1 FROM return_items r
                               WHERE r.connection_id = o.connection_id
                                 AND r.channel_order_id = o.channel_order_id
                                 AND (r.state = 'open'
                                      OR GREATEST(r.created_at, r.closed_at) >= $1))
             ORDER BY o.id
             LIMIT $3
             FOR UPDATE OF o SKIP LOCKED",
            cutoff,
            after,
            BATCH,
        )
        .fetch_all(&mut *tx)
        .await?;
        let n = rows.len();
        for row in rows {
            after = after.max(row.id);
            anonymise_order(&mut tx, row, now, &mut report.orders).await?;
        }
        finish(tx, mode).await?;
        report.batches += 1;
        if n < BATCH as usize {
            break;
        }
    }
    let (runs, dead, status, batches) = erase_old_error_texts(pool, cutoff, mode).await?;
    report.job_runs_erased = runs;
    report.dead_jobs_erased = dead;
    report.flow_status_erased = status;
    report.batches += batches;
    Ok(report)
}

/// Reduces the error texts of job attempts, dead jobs and flow states older than `cutoff` to
/// [`ERROR_TEXT_ERASED`]. Returns (runs, dead jobs, flow states, batches).
async fn erase_old_error_texts(
    pool: &PgPool,
    cutoff: DateTime<Utc>,
    mode: Mode,
) -> Result<(u64, u64, u64, u64), DbError> {
    let (mut runs, mut dead, mut batches) = (0_u64, 0_u64, 0_u64);
    let mut after = 0_i64;
    loop {
        let mut tx = pool.begin().await?;
        // The literal marker (not a parameter) lets the planner use job_runs_error_held_idx.
        let ids = sqlx::query_scalar!(
            r#"WITH picked AS (
                   SELECT id FROM job_runs
                   WHERE error IS NOT NULL
                     AND (error -> 'chain' ->> 0) IS DISTINCT FROM '[error text erased]'
                     AND started_at < $1 AND finished_at < $1 AND id > $2
                   ORDER BY id LIMIT $3
               )
               UPDATE job_runs j SET error = CASE
                   WHEN jsonb_typeof(j.error) = 'object'
                       THEN jsonb_set(j.error, '{chain}', '["[error text erased]"]'::jsonb)
                   ELSE '{"chain": ["[error text erased]"]}'::jsonb END
               FROM picked WHERE j.id = picked.id
               RETURNING j.id"#,
            cutoff,
            after,
            BATCH,
        )
        .fetch_all(&mut *tx)
        .await?;
        finish(tx, mode).await?;
        batches += 1;
        runs += ids.len() as u64;
        after = ids.iter().copied().max().unwrap_or(after);
        if ids.len() < BATCH as usize {
            break;
        }
    }
    let mut after = Uuid::nil();
    loop {
        let mut tx = pool.begin().await?;
        let ids = sqlx::query_scalar!(
            r#"WITH picked AS (
                   SELECT d.job_id FROM dead_jobs d
                   WHERE d.died_at < $1 AND d.job_id > $2
                     AND EXISTS (SELECT 1 FROM jsonb_array_elements(d.errors) e
                                 WHERE (e -> 'chain' ->> 0) IS DISTINCT FROM '[error text erased]')
                   ORDER BY d.job_id LIMIT $3
               )
               UPDATE dead_jobs d SET errors = COALESCE(
                   (SELECT jsonb_agg(CASE
                        WHEN jsonb_typeof(x.e) = 'object'
                            THEN jsonb_set(x.e, '{chain}', '["[error text erased]"]'::jsonb)
                        ELSE '{"chain": ["[error text erased]"]}'::jsonb END ORDER BY x.n)
                    FROM jsonb_array_elements(d.errors) WITH ORDINALITY AS x(e, n)),
                   '[]'::jsonb)
               FROM picked WHERE d.job_id = picked.job_id
               RETURNING d.job_id"#,
            cutoff,
            after,
            BATCH,
        )
        .fetch_all(&mut *tx)
        .await?;
        finish(tx, mode).await?;
        batches += 1;
        dead += ids.len() as u64;
        after = ids.iter().copied().max().unwrap_or(after);
        if ids.len() < BATCH as usize {
            break;
        }
    }
    let mut tx = pool.begin().await?;
    let status = sqlx::query!(
        "UPDATE flow_status SET last_error = '[error text erased]'
         WHERE last_error IS NOT NULL AND last_error <> '[error text erased]'
           AND last_failure_at < $1",
        cutoff
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    finish(tx, mode).await?;
    batches += 1;
    Ok((runs, dead, status, batches))
}

/// The scheduler's purge: [`purge_expired`] at once, then every `interval` (at least a second)
/// until `cancel`. A failed purge is logged and tried again at the next interval; a purge cut
/// by `cancel` rolls its open batch back (committed batches stay done).
pub async fn purge_loop(
    pool: PgPool,
    retention: Duration,
    interval: std::time::Duration,
    cancel: CancellationToken,
) {
    let interval = interval.max(std::time::Duration::from_secs(1));
    while !cancel.is_cancelled() {
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = purge_expired(&pool, retention, Utc::now()) => match r {
                Ok(r) => tracing::info!(
                    cutoff = %r.cutoff,
                    orders = r.orders.orders_anonymised,
                    texts = r.orders.texts_scrubbed,
                    return_items = r.orders.return_items_scrubbed,
                    audit_entries = r.orders.audit_entries_scrubbed,
                    job_runs = r.job_runs_erased,
                    dead_jobs = r.dead_jobs_erased,
                    flow_status = r.flow_status_erased,
                    "GDPR retention purge done"
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    "GDPR retention purge failed; it runs again at the next interval"
                ),
            },
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Erasure on request

/// What an erasure did (or, as a preview, would do). It never names the data subject, so it can
/// be logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ErasureReport {
    pub tenant: TenantId,
    /// Whether one data subject's orders were erased (else every order of the tenant).
    pub one_subject: bool,
    #[serde(flatten)]
    pub orders: OrderCounts,
    /// Of the anonymised orders, those not complete yet: their remaining steps (the ERP
    /// document, the AWB) have no address to work with.
    pub orders_in_progress: u64,
    /// Failed job attempts whose error texts quoted the subject (all the tenant's, for a
    /// whole-tenant erasure).
    pub job_runs_scrubbed: u64,
    pub dead_jobs_scrubbed: u64,
    pub flow_status_scrubbed: u64,
}

/// A data subject's e-mail as given on the command line: trimmed, one `@` with text around it,
/// no spaces. The error does not repeat the value.
pub fn check_subject(email: &str) -> Result<&str, DbError> {
    let e = email.trim();
    let ok = e.len() <= 320
        && !e.chars().any(char::is_whitespace)
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'));
    if ok {
        Ok(e)
    } else {
        Err(DbError::Invalid {
            what: "data subject",
            value: format!("({} characters)", email.chars().count()),
            reason: "is not an e-mail address (expected name@domain)".into(),
        })
    }
}

/// Anonymises the personal data of every order of `tenant`, or with `subject` only the orders
/// whose contacts carry that e-mail (ignoring case), keeping the business records; complete or
/// not (the merchant, as controller, decided). Also erases what the job history may quote:
/// the subject's values from its error texts, or every error text of the tenant. Idempotent.
pub async fn erase_tenant(
    pool: &PgPool,
    tenant: TenantId,
    subject: Option<&str>,
) -> Result<ErasureReport, DbError> {
    erase(pool, tenant, subject, Mode::Apply).await
}

/// What [`erase_tenant`] would do, without changing anything.
pub async fn erasure_preview(
    pool: &PgPool,
    tenant: TenantId,
    subject: Option<&str>,
) -> Result<ErasureReport, DbError> {
    erase(pool, tenant, subject, Mode::Preview).await
}

async fn known_tenant(pool: &PgPool, tenant: TenantId) -> Result<db::Tenant, DbError> {
    db::find_tenant(pool, &tenant.to_string())
        .await?
        .ok_or_else(|| DbError::UnknownTenant(tenant.to_string()))
}

async fn erase(
    pool: &PgPool,
    tenant: TenantId,
    subject: Option<&str>,
    mode: Mode,
) -> Result<ErasureReport, DbError> {
    known_tenant(pool, tenant).await?;
    let subject = subject.map(check_subject).transpose()?;
    let mut report = ErasureReport {
        tenant,
        one_subject: subject.is_some(),
        orders: OrderCounts::default(),
        orders_in_progress: 0,
        job_runs_scrubbed: 0,
        dead_jobs_scrubbed: 0,
        flow_status_scrubbed: 0,
    };
    let mut needles: BTreeSet<String> = subject.iter().map(|s| (*s).to_owned()).collect();
    let now = Utc::now();
    let mut after = 0_i64;
    loop {
        let mut tx = pool.begin().await?;
        let rows = sqlx::query!(
            r#"SELECT o.id, o.connection_id, o.channel_order_id, o.order_json, o.document_json,
                      o.review_reason, o.invoice_note, o.awb_note,
                      (o.state = 'cancelled'
                       OR o.connection_id IS NULL
                       OR (o.state = 'created'
                           AND (o.shipped_at IS NOT NULL
                                OR o.awb_state = 'unsupported'
                                OR EXISTS (SELECT 1 FROM return_items r
                                           WHERE r.connection_id = o.connection_id
                                             AND r.channel_order_id = o.channel_order_id
                                             AND r.kind IN ('cancellation', 'reversal')
                                             AND r.state = 'closed')))) AS "complete!"
               FROM orders o
               WHERE o.tenant_id = $1 AND o.id > $2
                 AND CASE WHEN $3::text IS NULL THEN o.personal_data_erased_at IS NULL
                     ELSE EXISTS (SELECT 1 FROM jsonb_path_query(o.order_json, '$.**.email') e
                                  WHERE jsonb_typeof(e) = 'string'
                                    AND lower(e #>> '{}') = lower($3)) END
               ORDER BY o.id
               LIMIT $4
               FOR UPDATE OF o"#,
            tenant.0,
            after,
            subject,
            BATCH,
        )
        .fetch_all(&mut *tx)
        .await?;
        let n = rows.len();
        for r in rows {
            after = after.max(r.id);
            if !r.complete {
                report.orders_in_progress += 1;
            }
            let held = HeldOrder {
                id: r.id,
                connection_id: r.connection_id,
                channel_order_id: r.channel_order_id,
                order_json: r.order_json,
                document_json: r.document_json,
                review_reason: r.review_reason,
                invoice_note: r.invoice_note,
                awb_note: r.awb_note,
            };
            let found = anonymise_order(&mut tx, held, now, &mut report.orders).await?;
            if subject.is_some() {
                needles.extend(found);
            }
        }
        finish(tx, mode).await?;
        if n < BATCH as usize {
            break;
        }
    }
    if subject.is_some() {
        let needles: Vec<String> = needles.into_iter().collect();
        scrub_tenant_history(pool, tenant, &needles, mode, &mut report).await?;
    } else {
        erase_tenant_history(pool, tenant, mode, &mut report).await?;
    }
    Ok(report)
}

/// Replaces the subject's values in the tenant's job history error texts.
async fn scrub_tenant_history(
    pool: &PgPool,
    tenant: TenantId,
    needles: &[String],
    mode: Mode,
    report: &mut ErasureReport,
) -> Result<(), DbError> {
    let mut after = 0_i64;
    loop {
        let mut tx = pool.begin().await?;
        let rows = sqlx::query!(
            r#"SELECT id, error AS "error!" FROM job_runs
               WHERE tenant_id = $1 AND error IS NOT NULL AND id > $2
               ORDER BY id LIMIT $3"#,
            tenant.0,
            after,
            BATCH,
        )
        .fetch_all(&mut *tx)
        .await?;
        let n = rows.len();
        for mut r in rows {
            after = after.max(r.id);
            if scrub_json(&mut r.error, needles) {
                sqlx::query!(
                    "UPDATE job_runs SET error = $2 WHERE id = $1",
                    r.id,
                    r.error
                )
                .execute(&mut *tx)
                .await?;
                report.job_runs_scrubbed += 1;
            }
        }
        finish(tx, mode).await?;
        if n < BATCH as usize {
            break;
        }
    }
    let mut after = Uuid::nil();
    loop {
        let mut tx = pool.begin().await?;
        let rows = sqlx::query!(
            "SELECT job_id, errors FROM dead_jobs
             WHERE tenant_id = $1 AND job_id > $2
             ORDER BY job_id LIMIT $3",
            tenant.0,
            after,
            BATCH,
        )
        .fetch_all(&mut *tx)
        .await?;
        let n = rows.len();
        for mut r in rows {
            after = after.max(r.job_id);
            if scrub_json(&mut r.errors, needles) {
                sqlx::query!(
                    "UPDATE dead_jobs SET errors = $2 WHERE job_id = $1",
                    r.job_id,
                    r.errors
                )
                .execute(&mut *tx)
                .await?;
                report.dead_jobs_scrubbed += 1;
            }
        }
        finish(tx, mode).await?;
        if n < BATCH as usize {
            break;
        }
    }
    let mut tx = pool.begin().await?;
    let rows = sqlx::query!(
        r#"SELECT connection_id, kind, last_error AS "last_error!" FROM flow_status
           WHERE tenant_id = $1 AND last_error IS NOT NULL"#,
        tenant.0
    )
    .fetch_all(&mut *tx)
    .await?;
    for r in rows {
        if let Cow::Owned(text) = scrub(&r.last_error, needles) {
            sqlx::query!(
                "UPDATE flow_status SET last_error = $3 WHERE connection_id = $1 AND kind = $2",
                r.connection_id,
                r.kind,
                text
            )
            .execute(&mut *tx)
            .await?;
            report.flow_status_scrubbed += 1;
        }
    }
    finish(tx, mode).await
}

/// Erases every error text of the tenant's job history.
async fn erase_tenant_history(
    pool: &PgPool,
    tenant: TenantId,
    mode: Mode,
    report: &mut ErasureReport,
) -> Result<(), DbError> {
    let mut after = 0_i64;
    loop {
        let mut tx = pool.begin().await?;
        let ids = sqlx::query_scalar!(
            r#"WITH picked AS (
                   SELECT id FROM job_runs
                   WHERE tenant_id = $1 AND error IS NOT NULL AND id > $2
                     AND (error -> 'chain' ->> 0) IS DISTINCT FROM '[error text erased]'
                   ORDER BY id LIMIT $3
               )
               UPDATE job_runs j SET error = CASE
                   WHEN jsonb_typeof(j.error) = 'object'
                       THEN jsonb_set(j.error, '{chain}', '["[error text erased]"]'::jsonb)
                   ELSE '{"chain": ["[error text erased]"]}'::jsonb END
               FROM picked WHERE j.id = picked.id
               RETURNING j.id"#,
            tenant.0,
            after,
            BATCH,
        )
        .fetch_all(&mut *tx)
        .await?;
        finish(tx, mode).await?;
        report.job_runs_scrubbed += ids.len() as u64;
        after = ids.iter().copied().max().unwrap_or(after);
        if ids.len() < BATCH as usize {
            break;
        }
    }
    let mut tx = pool.begin().await?;
    let dead = sqlx::query!(
        r#"UPDATE dead_jobs d SET errors = COALESCE(
               (SELECT jsonb_agg(CASE
                    WHEN jsonb_typeof(x.e) = 'object'
                        THEN jsonb_set(x.e, '{chain}', '["[error text erased]"]'::jsonb)
                    ELSE '{"chain": ["[error text erased]"]}'::jsonb END ORDER BY x.n)
                FROM jsonb_array_elements(d.errors) WITH ORDINALITY AS x(e, n)),
               '[]'::jsonb)
           WHERE d.tenant_id = $1
             AND EXISTS (SELECT 1 FROM jsonb_array_elements(d.errors) e
                         WHERE (e -> 'chain' ->> 0) IS DISTINCT FROM '[error text erased]')"#,
        tenant.0
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let status = sqlx::query!(
        "UPDATE flow_status SET last_error = '[error text erased]'
         WHERE tenant_id = $1 AND last_error IS NOT NULL AND last_error <> '[error text erased]'",
        tenant.0
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    finish(tx, mode).await?;
    report.dead_jobs_scrubbed += dead;
    report.flow_status_scrubbed += status;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Export

/// Settings keys that look like secrets are never exported, even if someone put one in the
/// settings instead of the encrypted credentials.
fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "credential",
        "private",
    ]
    .iter()
    .any(|s| k.contains(s))
}

fn without_secrets(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = if secret_key(k) {
                        json!("[not exported]")
                    } else {
                        without_secrets(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_secrets).collect()),
        other => other.clone(),
    }
}

/// Everything the product holds about `tenant`'s orders, personal data included, as one JSON
/// document for the controller (subject-access requests, offboarding): the tenant, its
/// connections with their settings (**never credentials**: they are not read at all, and
/// secret-looking settings keys are left out), its orders as stored and its return items. With
/// `subject`, only the orders whose contacts carry that e-mail (ignoring case) and their return
/// items. Loads the whole selection in memory.
pub async fn export_tenant(
    pool: &PgPool,
    tenant: TenantId,
    subject: Option<&str>,
) -> Result<Value, DbError> {
    let t = known_tenant(pool, tenant).await?;
    let subject = subject.map(check_subject).transpose()?;
    let connections: Vec<Value> = db::list_connections(pool, Some(tenant))
        .await?
        .into_iter()
        .map(|c| {
            json!({
                "id": c.id.to_string(),
                "erp": c.erp.as_str(),
                "marketplace": c.marketplace.as_str(),
                "courier": c.courier.map(|c| c.as_str()),
                "enabled": c.enabled,
                "settings": without_secrets(&c.settings),
            })
        })
        .collect();
    let orders: Vec<Value> = sqlx::query!(
        r#"SELECT o.id, o.connection_id, o.channel, o.channel_order_id, o.state,
                  o.erp_document_id, o.review_reason, o.created_at, o.updated_at, o.order_json,
                  o.document_json, o.accepted_at, o.invoice_state, o.invoice_series,
                  o.invoice_number, o.invoice_note, o.awb_reference, o.awb, o.awb_state,
                  o.awb_note, o.shipped_at, o.personal_data_erased_at
           FROM orders o
           WHERE o.tenant_id = $1
             AND ($2::text IS NULL OR EXISTS (
                 SELECT 1 FROM jsonb_path_query(o.order_json, '$.**.email') e
                 WHERE jsonb_typeof(e) = 'string' AND lower(e #>> '{}') = lower($2)))
           ORDER BY o.id"#,
        tenant.0,
        subject,
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|o| {
        json!({
            "id": o.id,
            "connection_id": o.connection_id,
            "channel": o.channel,
            "channel_order_id": o.channel_order_id,
            "state": o.state,
            "erp_document_id": o.erp_document_id,
            "review_reason": o.review_reason,
            "created_at": o.created_at,
            "updated_at": o.updated_at,
            "order": o.order_json,
            "document": o.document_json,
            "accepted_at": o.accepted_at,
            "invoice": {"state": o.invoice_state, "series": o.invoice_series,
                        "number": o.invoice_number, "note": o.invoice_note},
            "awb": {"reference": o.awb_reference, "number": o.awb, "state": o.awb_state,
                    "note": o.awb_note},
            "shipped_at": o.shipped_at,
            "personal_data_erased_at": o.personal_data_erased_at,
        })
    })
    .collect();
    let returns: Vec<Value> = sqlx::query!(
        r#"SELECT r.id, r.connection_id, r.event_id, r.channel_order_id, r.kind, r.outcome,
                  r.reference, r.evidence, r.state, r.created_at, r.closed_at
           FROM return_items r
           WHERE r.tenant_id = $1
             AND ($2::text IS NULL OR EXISTS (
                 SELECT 1 FROM orders o
                 WHERE o.tenant_id = r.tenant_id AND o.connection_id = r.connection_id
                   AND o.channel_order_id = r.channel_order_id
                   AND EXISTS (SELECT 1 FROM jsonb_path_query(o.order_json, '$.**.email') e
                               WHERE jsonb_typeof(e) = 'string'
                                 AND lower(e #>> '{}') = lower($2))))
           ORDER BY r.id"#,
        tenant.0,
        subject,
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| {
        json!({
            "id": r.id,
            "connection_id": r.connection_id,
            "event_id": r.event_id,
            "channel_order_id": r.channel_order_id,
            "kind": r.kind,
            "outcome": r.outcome,
            "reference": r.reference,
            "evidence": r.evidence,
            "state": r.state,
            "created_at": r.created_at,
            "closed_at": r.closed_at,
        })
    })
    .collect();
    Ok(json!({
        "format": "megzo-gdpr-export/1",
        "exported_at": Utc::now(),
        "tenant": {
            "id": t.id.to_string(),
            "slug": t.slug,
            "name": t.name,
            "active": t.active,
            "created_at": t.created_at,
        },
        "subject": subject.map(|s| json!({"email": s})),
        "connections": connections,
        "orders": orders,
        "returns": returns,
        "notes": [
            "Connection credentials are encrypted at rest and never exported.",
            "Orders whose personal_data_erased_at is set were anonymised: their contacts keep only the country.",
            "The job history (attempts and their error texts) is not exported; its error texts are erased after the retention period."
        ],
    }))
}

// ---------------------------------------------------------------------------------------------
// The command line

/// `megzo gdpr …`: the retention purge, exports and erasures for the merchants (controllers).
#[derive(Debug, clap::Subcommand)]
pub enum GdprCmd {
    /// Anonymise the personal data of orders complete for longer than the retention, and erase
    /// job history error texts older than it (what the scheduler's daily purge does).
    Purge {
        /// Days an order's personal data is kept once the order is complete.
        #[arg(long, default_value_t = DEFAULT_RETENTION_DAYS)]
        retention_days: u32,
        /// Count what would be anonymised; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Export everything held about a tenant's orders (personal data included, credentials
    /// never) as JSON, for the merchant's subject-access requests.
    Export {
        /// The tenant's slug or id.
        tenant: String,
        /// Only the orders of the data subject with this e-mail (ignoring case).
        #[arg(long)]
        subject: Option<String>,
        /// Write to FILE (created with mode 0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Anonymise a tenant's buyers' personal data (or one data subject's), keeping the business
    /// records. Without --yes, only says what it would do.
    Erase {
        /// The tenant's slug or id.
        tenant: String,
        /// Only the orders of the data subject with this e-mail (ignoring case).
        #[arg(long)]
        subject: Option<String>,
        /// Really erase (it cannot be undone).
        #[arg(long)]
        yes: bool,
    },
}

async fn tenant_arg(pool: &PgPool, slug_or_id: &str) -> anyhow::Result<db::Tenant> {
    db::find_tenant(pool, slug_or_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("unknown tenant {slug_or_id}"))
}

fn print_orders(c: &OrderCounts) {
    println!("  orders anonymised:       {}", c.orders_anonymised);
    println!("  order texts scrubbed:    {}", c.texts_scrubbed);
    println!("  return items scrubbed:   {}", c.return_items_scrubbed);
    println!("  audit entries scrubbed:  {}", c.audit_entries_scrubbed);
}

/// Runs a `megzo gdpr` command, printing for a person.
pub async fn run(pool: &PgPool, cmd: GdprCmd) -> anyhow::Result<()> {
    match cmd {
        GdprCmd::Purge {
            retention_days: days,
            dry_run,
        } => {
            let retention = retention_days(days)?;
            let now = Utc::now();
            let r = if dry_run {
                purge_preview(pool, retention, now).await?
            } else {
                purge_expired(pool, retention, now).await?
            };
            println!(
                "{} (retention {days} days: orders complete before {}):",
                if dry_run {
                    "GDPR purge, dry run: nothing was changed; it would do"
                } else {
                    "GDPR purge done"
                },
                r.cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            print_orders(&r.orders);
            println!("  job runs erased:         {}", r.job_runs_erased);
            println!("  dead jobs erased:        {}", r.dead_jobs_erased);
            println!("  flow errors erased:      {}", r.flow_status_erased);
            Ok(())
        }
        GdprCmd::Export {
            tenant,
            subject,
            out,
        } => {
            let t = tenant_arg(pool, &tenant).await?;
            let doc = export_tenant(pool, t.id, subject.as_deref()).await?;
            let count = |k: &str| doc[k].as_array().map_or(0, Vec::len);
            let summary = format!(
                "exported {} orders, {} return items and {} connections of tenant {}{}",
                count("orders"),
                count("returns"),
                count("connections"),
                t.slug,
                if subject.is_some() {
                    " (one data subject)"
                } else {
                    ""
                }
            );
            let text = serde_json::to_string_pretty(&doc)?;
            match out.filter(|p| p.as_os_str() != "-") {
                Some(path) => {
                    let mut f = private_file(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    f.write_all(text.as_bytes())
                        .and_then(|()| f.write_all(b"\n"))
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    println!("{summary} to {}", path.display());
                }
                None => {
                    println!("{text}");
                    eprintln!("{summary}");
                }
            }
            Ok(())
        }
        GdprCmd::Erase {
            tenant,
            subject,
            yes,
        } => {
            let t = tenant_arg(pool, &tenant).await?;
            let whose = if subject.is_some() {
                format!("the data subject's orders of tenant {}", t.slug)
            } else {
                format!("every order of tenant {}", t.slug)
            };
            let r = if yes {
                erase_tenant(pool, t.id, subject.as_deref()).await?
            } else {
                erasure_preview(pool, t.id, subject.as_deref()).await?
            };
            if yes {
                println!("erased the personal data of {whose}:");
            } else {
                println!("nothing was changed (add --yes to erase); erasing {whose} would do:");
            }
            print_orders(&r.orders);
            println!("  job runs scrubbed:       {}", r.job_runs_scrubbed);
            println!("  dead jobs scrubbed:      {}", r.dead_jobs_scrubbed);
            println!("  flow errors scrubbed:    {}", r.flow_status_scrubbed);
            if r.orders_in_progress > 0 {
                println!(
                    "  warning: {} of these orders are not complete (not shipped or cancelled yet): \
                     their remaining steps (ERP document, AWB) have no buyer address left; finish them by hand",
                    r.orders_in_progress
                );
            }
            Ok(())
        }
    }
}

/// Creates (or truncates) `path` readable by its owner only: an export holds personal data.
fn private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    o.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(name: &str, email: Option<&str>) -> Contact {
        Contact {
            name: name.into(),
            company: Some("Zeta Trading SRL".into()),
            email: email.map(Into::into),
            phone: Some("+40 799 123 456".into()),
            address_line1: "Strada Zorilor 42".into(),
            address_line2: Some("ap. 7".into()),
            city: "Zigtown".into(),
            postal_code: "077999".into(),
            region: Some("Ilfov".into()),
            country: Some(Country::RO),
            tax_id: Some("RO99887766".into()),
        }
    }

    #[test]
    fn the_contact_fields_are_the_ones_this_module_knows() {
        let v = serde_json::to_value(Contact::default()).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut known: Vec<&str> = CONTACT_TEXT_FIELDS.to_vec();
        known.push("country");
        known.sort_unstable();
        assert_eq!(
            keys, known,
            "Contact changed: update CONTACT_TEXT_FIELDS and redacted_contact"
        );
        assert!(is_contact(v.as_object().unwrap()));
    }

    #[test]
    fn contacts_anywhere_are_anonymised_to_their_country() {
        let mut v = json!({
            "id": "7000001",
            "total_gross": "99.90",
            "customer": contact("Ziggy Personaldata", Some("Ziggy.PD@example.test")),
            "ship_to": contact("Zoe Receiver", None),
            "nested": [{"billing": contact("Bill Payer", None)}],
            "lines": [{"sku": "MUG-1", "title": "Mug", "quantity": 2}],
        });
        let mut found = BTreeSet::new();
        assert!(redact_contacts(&mut v, &mut found).unwrap());
        let text = v.to_string();
        for gone in [
            "Ziggy",
            "Zoe",
            "Bill Payer",
            "Zorilor",
            "799",
            "Zigtown",
            "077999",
            "Zeta",
            "RO99887766",
            "Ilfov",
            "ap. 7",
        ] {
            assert!(!text.contains(gone), "{gone} survived: {text}");
        }
        assert_eq!(v["customer"]["name"], ERASED);
        assert_eq!(v["customer"]["country"], "RO");
        assert_eq!(v["nested"][0]["billing"]["name"], ERASED);
        assert_eq!(v["lines"][0]["sku"], "MUG-1");
        assert_eq!(v["total_gross"], "99.90");
        let back: Contact = serde_json::from_value(v["ship_to"].clone()).unwrap();
        assert_eq!(back.country, Some(Country::RO));
        for n in [
            "Ziggy Personaldata",
            "Ziggy",
            "Personaldata",
            "Ziggy.PD@example.test",
            "40799123456",
        ] {
            assert!(found.contains(n), "{n} not collected: {found:?}");
        }
        // Idempotent.
        let again = v.clone();
        let mut more = BTreeSet::new();
        assert!(!redact_contacts(&mut v, &mut more).unwrap());
        assert_eq!(v, again);
        assert!(more.is_empty(), "{more:?}");
    }

    #[test]
    fn free_texts_lose_the_values_ignoring_case_and_keep_the_rest() {
        let needles: Vec<String> = ["Ziggy Personaldata", "Ziggy", "077999", "Zigtown", "Ørsted"]
            .map(String::from)
            .to_vec();
        let t = "DHL 1001: Postal code 077999 of receiverDetails is invalid for ZIGTOWN (order 7000001, ZIGGY PERSONALDATA, ørsted)";
        let s = scrub(t, &needles);
        assert_eq!(
            s,
            "DHL 1001: Postal code [erased] of receiverDetails is invalid for [erased] (order 7000001, [erased], [erased])"
        );
        assert!(matches!(scrub("nothing here", &needles), Cow::Borrowed(_)));
        assert_eq!(scrub(&s, &needles), s, "idempotent");
        let mut j = json!({"chain": ["order 1: Ziggy refused"], "class": "permanent"});
        assert!(scrub_json(&mut j, &needles));
        assert_eq!(j["chain"][0], "order 1: [erased] refused");
        assert!(!scrub_json(&mut j, &needles));
    }

    #[test]
    fn settings_lose_secret_looking_keys() {
        let s = json!({"cdon": {"base_url": "https://x", "token": "t0k"},
                       "lexoffice": {"api_key": "k"}, "flows": {"shipper": {"name": "Depozit"}}});
        let out = without_secrets(&s);
        assert_eq!(out["cdon"]["token"], "[not exported]");
        assert_eq!(out["lexoffice"]["api_key"], "[not exported]");
        assert_eq!(out["cdon"]["base_url"], "https://x");
        assert_eq!(out["flows"]["shipper"]["name"], "Depozit");
    }

    #[test]
    fn subjects_and_retentions_are_checked() {
        assert_eq!(
            check_subject(" Ziggy.PD@example.test ").unwrap(),
            "Ziggy.PD@example.test"
        );
        for bad in ["", "ziggy", "@example.test", "ziggy@", "a b@c.d", "a@b@c"] {
            let e = check_subject(bad).unwrap_err().to_string();
            assert!(e.contains("not an e-mail address"), "{e}");
            assert!(
                bad.len() < 3 || !e.contains(bad),
                "the value is not repeated: {e}"
            );
        }
        assert!(retention_days(0).is_err());
        assert_eq!(retention_days(90).unwrap(), Duration::days(90));
        assert_eq!(
            RetentionConfig::default().retention().unwrap(),
            Duration::days(90)
        );
        assert!(
            RetentionConfig {
                interval_hours: 0,
                ..RetentionConfig::default()
            }
            .interval()
            .is_err()
        );
    }
}
