//! Freshness: per connection and flow, the latest successful and failed run (`flow_status`),
//! kept by the run recorder from the same batches it writes to `job_runs`, and read by the
//! freshness metric and `megzo tenants status`.
//!
//! **Times only move forward**: the upsert takes the `GREATEST` of the stored and the new time,
//! so a batch that arrives late (a recorder that retried through a Postgres outage, two worker
//! processes flushing out of order) never makes a flow look older than it is. `last_error` goes
//! with `last_failure_at`: it is replaced only by a newer failure.

use std::collections::HashMap;

use canonical::{ConnectionId, Courier, Erp, Marketplace, TenantId};
use chrono::{DateTime, Utc};
use queue_schema::JobKind;
use sqlx::PgPool;
use uuid::Uuid;

use super::{DbError, RunOutcome, RunRecord};

/// The longest error text kept per flow (the full chain stays in `job_runs`).
pub const MAX_ERROR_CHARS: usize = 2_000;

/// The latest success and failure of one flow of one connection, from one batch of runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowUpdate {
    pub connection_id: ConnectionId,
    pub kind: JobKind,
    pub tenant_id: TenantId,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// Folds a batch of run records into one update per (connection, flow): the newest success (an
/// attempt that `succeeded`) and the newest failure (`retried`, `dead` or `lost`) with its error.
/// Snoozes and releases are neither. Records without a connection (an unreadable payload) are
/// skipped. Sorted by connection and flow, so concurrent recorders lock rows in one order.
pub fn flow_updates(runs: &[RunRecord]) -> Vec<FlowUpdate> {
    let mut by_key: HashMap<(Uuid, JobKind), FlowUpdate> = HashMap::new();
    for r in runs {
        if r.connection_id.0.is_nil() {
            continue;
        }
        let success = r.outcome == RunOutcome::Succeeded;
        let failure = matches!(
            r.outcome,
            RunOutcome::Retried | RunOutcome::Dead | RunOutcome::Lost
        );
        if !success && !failure {
            continue;
        }
        let u = by_key
            .entry((r.connection_id.0, r.kind))
            .or_insert_with(|| FlowUpdate {
                connection_id: r.connection_id,
                kind: r.kind,
                tenant_id: r.tenant_id,
                last_success_at: None,
                last_failure_at: None,
                last_error: None,
            });
        let at = r.finished_at;
        if success {
            u.last_success_at = u.last_success_at.max(Some(at));
        } else if u.last_failure_at.is_none_or(|t| at > t) {
            u.last_failure_at = Some(at);
            u.last_error = Some(error_text(r));
        }
    }
    let mut out: Vec<FlowUpdate> = by_key.into_values().collect();
    out.sort_by_key(|u| (u.connection_id.0, u.kind));
    out
}

/// The error of a failed run as one line: its cause chain, or what the outcome says.
fn error_text(r: &RunRecord) -> String {
    let text = match &r.error {
        Some(e) if !e.chain.is_empty() => e.chain.join(": "),
        _ => match r.outcome {
            RunOutcome::Lost => "attempt lost (its worker stopped renewing the lease)".to_owned(),
            RunOutcome::Dead => "dead (no error recorded)".to_owned(),
            _ => "failed (no error recorded)".to_owned(),
        },
    };
    let text = queue_schema::job::storable(text);
    match text.char_indices().nth(MAX_ERROR_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

/// Applies the latest success and failure of every (connection, flow) in `runs` to
/// `flow_status` in ONE statement. Rows of connections that no longer exist are skipped.
/// Idempotent: applying a batch again changes nothing. Returns the rows written.
pub async fn record_flow_status(pool: &PgPool, runs: &[RunRecord]) -> Result<u64, DbError> {
    let updates = flow_updates(runs);
    if updates.is_empty() {
        return Ok(0);
    }
    // The Unix epoch stands for "none" (no run is that old) and becomes NULL in the statement,
    // which keeps the array parameters non-nullable and type-checked (as in `insert_runs`).
    let none = DateTime::<Utc>::UNIX_EPOCH;
    let n = updates.len();
    let (mut conns, mut kinds, mut tenants) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut successes, mut failures, mut errors) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for u in &updates {
        conns.push(u.connection_id.0);
        kinds.push(u.kind.as_str().to_owned());
        tenants.push(u.tenant_id.0);
        successes.push(u.last_success_at.unwrap_or(none));
        failures.push(u.last_failure_at.unwrap_or(none));
        errors.push(u.last_error.clone().unwrap_or_default());
    }
    let done = sqlx::query!(
        "INSERT INTO flow_status AS f (connection_id, kind, tenant_id, last_success_at,
                                       last_failure_at, last_error)
         SELECT r.connection_id, r.kind, r.tenant_id, NULLIF(r.success, 'epoch'::timestamptz),
                NULLIF(r.failure, 'epoch'::timestamptz),
                CASE WHEN r.failure = 'epoch'::timestamptz THEN NULL ELSE r.error END
         FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::timestamptz[], $5::timestamptz[],
                     $6::text[]) AS r(connection_id, kind, tenant_id, success, failure, error)
         JOIN connections c ON c.id = r.connection_id
         ON CONFLICT (connection_id, kind) DO UPDATE SET
             tenant_id = EXCLUDED.tenant_id,
             last_success_at = GREATEST(f.last_success_at, EXCLUDED.last_success_at),
             last_error = CASE
                 WHEN EXCLUDED.last_failure_at IS NOT NULL
                      AND (f.last_failure_at IS NULL OR EXCLUDED.last_failure_at > f.last_failure_at)
                 THEN EXCLUDED.last_error
                 ELSE f.last_error END,
             last_failure_at = GREATEST(f.last_failure_at, EXCLUDED.last_failure_at)",
        &conns,
        &kinds,
        &tenants,
        &successes,
        &failures,
        &errors,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// One flow of one connection as freshness sees it: the connection's systems (to tell which
/// flows it supports) and the flow's latest success and failure, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowFreshness {
    pub tenant_id: TenantId,
    pub tenant_slug: String,
    pub connection_id: ConnectionId,
    pub erp: Erp,
    pub marketplace: Marketplace,
    pub courier: Option<Courier>,
    /// SmartBill's catalog needs a price list in the connection's settings.
    pub has_price_list: bool,
    /// The connection is enabled and its tenant active (the heartbeat schedules it).
    pub scheduled: bool,
    pub connection_created_at: DateTime<Utc>,
    pub kind: JobKind,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// Every flow of every connection (of one tenant, or all), with its status; one query. With
/// `scheduled_only`, only enabled connections of active tenants. Ordered by tenant slug,
/// connection (creation order), then flow in [`JobKind::ALL`] order.
pub async fn flow_freshness(
    pool: &PgPool,
    tenant: Option<TenantId>,
    scheduled_only: bool,
) -> Result<Vec<FlowFreshness>, DbError> {
    let kinds: Vec<String> = JobKind::ALL.iter().map(|k| k.as_str().to_owned()).collect();
    let rows = sqlx::query!(
        "SELECT t.id AS \"tenant_id!\", t.slug AS \"slug!\", c.id AS \"connection_id!\",
                c.erp AS \"erp!\", c.marketplace AS \"marketplace!\", c.courier,
                COALESCE(jsonb_typeof(c.settings #> '{smartbill,price_list}') = 'array'
                         AND c.settings #> '{smartbill,price_list}' <> '[]'::jsonb, false)
                    AS \"has_price_list!\",
                (c.enabled AND t.active) AS \"scheduled!\", c.created_at AS \"created_at!\",
                k.kind AS \"kind!\", f.last_success_at AS \"last_success_at?\",
                f.last_failure_at AS \"last_failure_at?\", f.last_error AS \"last_error?\"
         FROM connections c
         JOIN tenants t ON t.id = c.tenant_id
         CROSS JOIN UNNEST($2::text[]) WITH ORDINALITY AS k(kind, n)
         LEFT JOIN flow_status f ON f.connection_id = c.id AND f.kind = k.kind
         WHERE ($1::uuid IS NULL OR c.tenant_id = $1)
           AND (NOT $3::bool OR (c.enabled AND t.active))
         ORDER BY t.slug, c.created_at, c.id, k.n",
        tenant.map(|t| t.0),
        &kinds,
        scheduled_only,
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            let corrupt = |column, reason: String| DbError::Corrupt {
                table: "connections",
                column,
                row: r.connection_id.to_string(),
                reason,
            };
            Ok(FlowFreshness {
                tenant_id: TenantId(r.tenant_id),
                tenant_slug: r.slug.clone(),
                connection_id: ConnectionId(r.connection_id),
                erp: r.erp.parse().map_err(|e| corrupt("erp", format!("{e}")))?,
                marketplace: r
                    .marketplace
                    .parse()
                    .map_err(|e| corrupt("marketplace", format!("{e}")))?,
                courier: match &r.courier {
                    Some(c) => Some(c.parse().map_err(|e| corrupt("courier", format!("{e}")))?),
                    None => None,
                },
                has_price_list: r.has_price_list,
                scheduled: r.scheduled,
                connection_created_at: r.created_at,
                kind: r.kind.parse().map_err(|e| DbError::Corrupt {
                    table: "flow_status",
                    column: "kind",
                    row: r.connection_id.to_string(),
                    reason: format!("{e}"),
                })?,
                last_success_at: r.last_success_at,
                last_failure_at: r.last_failure_at,
                last_error: r.last_error.clone(),
            })
        })
        .collect()
}
