//! Freshness: how long ago each flow of each tenant last succeeded.
//!
//! The run recorder keeps `flow_status` (per connection and flow: the latest success and failure,
//! [`crate::db::freshness`]); this module turns it into
//! - the gauges `megzo_flow_freshness_seconds{tenant,flow}` and
//!   `megzo_flow_never_succeeded{tenant,flow}`, published by every worker process's housekeeping
//!   every 15 s from one query ([`publish`]): per tenant and flow, the **worst** (oldest)
//!   connection counts, and a connection whose flow never succeeded counts from the connection's
//!   creation (so one alert rule on the age covers both) and sets the "never" gauge;
//! - the report of `megzo tenants status` ([`report`], [`render`]): per tenant and connection,
//!   each flow's last success (its age), last failure with its error, and a stale marker.
//!
//! **Only flows the connection can run count** ([`support`]): a flow one of its systems does
//! not support (SmartBill's catalog without a price list, an ERP's AWBs, CDON's ...) is shown as
//! such and exported as nothing, so it cannot look stale forever.

use std::collections::BTreeMap;
use std::time::Duration;

use canonical::{ConnectionId, Courier, Erp, Marketplace, TenantId};
use chrono::{DateTime, Utc};
use connectors::{Capabilities, Flow};
use queue_schema::JobKind;
use serde::Serialize;
use sqlx::PgPool;

use crate::db::{self, DbError, FlowFreshness};
use crate::telemetry;

/// How many heartbeat intervals without a success make a flow stale.
pub const STALE_AFTER_INTERVALS: u32 = 3;

/// The connectors' name of a job kind's flow.
pub fn flow_of(kind: JobKind) -> Flow {
    match kind {
        JobKind::CatalogPush => Flow::CatalogPush,
        JobKind::StockPush => Flow::StockPush,
        JobKind::OrderPull => Flow::OrderPull,
        JobKind::InvoiceAttach => Flow::InvoiceAttach,
        JobKind::AwbPush => Flow::AwbPush,
        JobKind::ReturnsReconcile => Flow::ReturnsReconcile,
    }
}

fn erp_caps(erp: Erp, has_price_list: bool) -> Capabilities {
    match erp {
        Erp::SmartBill => connectors::smartbill::capabilities(has_price_list),
        Erp::Lexoffice => connectors::lexoffice::capabilities(),
        Erp::WinMentor => connectors::winmentor::capabilities(),
        Erp::Charisma => connectors::charisma::capabilities(),
        Erp::Noop => connectors::noop::capabilities(),
    }
}

fn marketplace_caps(m: Marketplace) -> Capabilities {
    match m {
        Marketplace::Cdon => connectors::cdon::capabilities(),
        Marketplace::Celro => connectors::celro::capabilities(),
        Marketplace::Noop => connectors::noop::capabilities(),
    }
}

fn courier_caps(c: Courier) -> Capabilities {
    match c {
        Courier::Dhl => connectors::dhl::capabilities(),
        Courier::Noop => connectors::noop::capabilities(),
    }
}

fn check(caps: &Capabilities, flow: Flow) -> Result<(), String> {
    if caps.supports(flow) {
        return Ok(());
    }
    Err(match caps.why_not(flow) {
        Some(why) => format!("{}: {why}", caps.system),
        None => format!("{}: not declared", caps.system),
    })
}

/// Whether a connection of these systems can run `kind`, and why not when it cannot. The
/// systems taking part: the marketplace in every flow; the ERP in every flow but `awb_push`;
/// the courier in `awb_push` (a connection without one cannot push AWBs, unless its
/// marketplace is the no-op one, which needs none).
pub fn support(
    erp: Erp,
    marketplace: Marketplace,
    courier: Option<Courier>,
    has_price_list: bool,
    kind: JobKind,
) -> Result<(), String> {
    let flow = flow_of(kind);
    check(&marketplace_caps(marketplace), flow)?;
    if kind == JobKind::AwbPush {
        return match courier {
            Some(c) => check(&courier_caps(c), flow),
            None if marketplace == Marketplace::Noop => Ok(()),
            None => Err("no courier on this connection".to_owned()),
        };
    }
    check(&erp_caps(erp, has_price_list), flow)
}

fn row_support(r: &FlowFreshness) -> Result<(), String> {
    support(r.erp, r.marketplace, r.courier, r.has_price_list, r.kind)
}

/// Seconds from `then` to `now`, never negative.
fn age_secs(now: DateTime<Utc>, then: DateTime<Utc>) -> u64 {
    (now - then).num_seconds().max(0) as u64
}

/// The freshness of one flow of one tenant: its worst connection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantFlow {
    pub tenant: String,
    pub kind: JobKind,
    /// Seconds since the oldest "last success" among the tenant's connections running the flow
    /// (a connection that never succeeded counts from its creation).
    pub age_secs: u64,
    /// Some connection of the tenant never ran the flow successfully.
    pub never: bool,
}

/// Per tenant and supported flow, the worst connection; sorted by tenant, then flow.
pub fn tenant_flows(rows: &[FlowFreshness], now: DateTime<Utc>) -> Vec<TenantFlow> {
    let mut out: BTreeMap<(String, JobKind), TenantFlow> = BTreeMap::new();
    for r in rows.iter().filter(|r| row_support(r).is_ok()) {
        let (age, never) = match r.last_success_at {
            Some(t) => (age_secs(now, t), false),
            None => (age_secs(now, r.connection_created_at), true),
        };
        let e = out
            .entry((r.tenant_slug.clone(), r.kind))
            .or_insert_with(|| TenantFlow {
                tenant: r.tenant_slug.clone(),
                kind: r.kind,
                age_secs: 0,
                never: false,
            });
        e.age_secs = e.age_secs.max(age);
        e.never |= never;
    }
    out.into_values().collect()
}

/// Reads every scheduled connection's flows (one query) and publishes the freshness gauges.
/// Returns how many (tenant, flow) series were published.
pub async fn publish(pool: &PgPool) -> Result<usize, DbError> {
    let rows = db::flow_freshness(pool, None, true).await?;
    let flows = tenant_flows(&rows, Utc::now());
    for f in &flows {
        telemetry::metrics::flow_freshness(&f.tenant, f.kind, f.age_secs as f64, f.never);
    }
    Ok(flows.len())
}

/// One flow of one connection, as `megzo tenants status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowLine {
    pub kind: JobKind,
    pub supported: bool,
    /// Why the connection cannot run the flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why_not: Option<String>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_success_age_secs: Option<u64>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Supported, and no success for [`STALE_AFTER_INTERVALS`] heartbeat intervals (a flow
    /// that never succeeded is stale once its connection is that old).
    pub stale: bool,
}

/// One connection of a tenant with its flows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionStatus {
    pub connection: ConnectionId,
    pub erp: Erp,
    pub marketplace: Marketplace,
    pub courier: Option<Courier>,
    /// Enabled, and its tenant active.
    pub scheduled: bool,
    pub flows: Vec<FlowLine>,
}

/// One tenant with its connections.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantStatus {
    pub tenant: TenantId,
    pub slug: String,
    pub connections: Vec<ConnectionStatus>,
}

/// Groups `rows` (ordered as [`db::flow_freshness`] returns them) by tenant and connection.
pub fn report(rows: &[FlowFreshness], now: DateTime<Utc>, interval: Duration) -> Vec<TenantStatus> {
    let stale_after = interval.as_secs().max(1) * u64::from(STALE_AFTER_INTERVALS);
    let mut out: Vec<TenantStatus> = Vec::new();
    for r in rows {
        if out.last().is_none_or(|t| t.tenant != r.tenant_id) {
            out.push(TenantStatus {
                tenant: r.tenant_id,
                slug: r.tenant_slug.clone(),
                connections: Vec::new(),
            });
        }
        let Some(tenant) = out.last_mut() else {
            continue;
        };
        if tenant
            .connections
            .last()
            .is_none_or(|c| c.connection != r.connection_id)
        {
            tenant.connections.push(ConnectionStatus {
                connection: r.connection_id,
                erp: r.erp,
                marketplace: r.marketplace,
                courier: r.courier,
                scheduled: r.scheduled,
                flows: Vec::new(),
            });
        }
        let Some(conn) = tenant.connections.last_mut() else {
            continue;
        };
        let why_not = row_support(r).err();
        let supported = why_not.is_none();
        let age = r.last_success_at.map(|t| age_secs(now, t));
        let stale = supported
            && r.scheduled
            && age.unwrap_or_else(|| age_secs(now, r.connection_created_at)) > stale_after;
        conn.flows.push(FlowLine {
            kind: r.kind,
            supported,
            why_not,
            last_success_at: r.last_success_at,
            last_success_age_secs: age,
            last_failure_at: r.last_failure_at,
            last_error: r.last_error.clone(),
            stale,
        });
    }
    out
}

/// An age as people read it: `45s`, `2m13s`, `3h05m`, `2d04h`.
pub fn human_age(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// The report as text: a block per tenant, a line per flow.
pub fn render(report: &[TenantStatus], now: DateTime<Utc>) -> String {
    let mut out = String::new();
    for t in report {
        out += &format!("tenant {} ({})\n", t.slug, t.tenant);
        for c in &t.connections {
            out += &format!(
                "  connection {}  {} ⇄ {}{}{}\n",
                c.connection,
                c.erp,
                c.marketplace,
                c.courier.map(|x| format!(" + {x}")).unwrap_or_default(),
                if c.scheduled {
                    ""
                } else {
                    "  (disabled: not scheduled)"
                }
            );
            out += &format!(
                "    {:<18} {:<16} {}\n",
                "flow", "last success", "last failure"
            );
            for f in &c.flows {
                if let Some(why) = &f.why_not {
                    out += &format!(
                        "    {:<18} not supported: {}\n",
                        f.kind.as_str(),
                        db::clip(why, 100)
                    );
                    continue;
                }
                let success = match f.last_success_age_secs {
                    Some(a) => format!("{} ago", human_age(a)),
                    None => "never".to_owned(),
                };
                let failure = match (f.last_failure_at, &f.last_error) {
                    (Some(at), err) => format!(
                        "{} ago: {}",
                        human_age(age_secs(now, at)),
                        db::clip(err.as_deref().unwrap_or("?"), 100)
                    ),
                    (None, _) => "never".to_owned(),
                };
                out += &format!(
                    "    {:<18} {:<16} {failure}{}\n",
                    f.kind.as_str(),
                    success,
                    if f.stale { "  STALE" } else { "" }
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn row(
        slug: &str,
        conn: ConnectionId,
        kind: JobKind,
        success: Option<DateTime<Utc>>,
    ) -> FlowFreshness {
        FlowFreshness {
            tenant_id: TenantId(uuid::Uuid::nil()),
            tenant_slug: slug.into(),
            connection_id: conn,
            erp: Erp::SmartBill,
            marketplace: Marketplace::Celro,
            courier: None,
            has_price_list: false,
            scheduled: true,
            connection_created_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            kind,
            last_success_at: success,
            last_failure_at: None,
            last_error: None,
        }
    }

    #[test]
    fn support_follows_the_systems_taking_part() {
        use Marketplace::*;
        assert!(support(Erp::Noop, Noop, None, false, JobKind::AwbPush).is_ok());
        let e = support(Erp::SmartBill, Celro, None, false, JobKind::CatalogPush).unwrap_err();
        assert!(e.starts_with("smartbill: "), "{e}");
        assert!(support(Erp::SmartBill, Celro, None, true, JobKind::CatalogPush).is_ok());
        // An ERP's "no AWBs" does not matter: AWBs are the courier's and marketplace's.
        assert!(
            support(
                Erp::SmartBill,
                Celro,
                Some(Courier::Dhl),
                false,
                JobKind::AwbPush
            )
            .is_ok()
        );
        let e = support(Erp::SmartBill, Celro, None, false, JobKind::AwbPush).unwrap_err();
        assert!(e.contains("no courier"), "{e}");
        assert!(support(Erp::Lexoffice, Cdon, None, false, JobKind::StockPush).is_err());
    }

    #[test]
    fn the_worst_connection_counts_and_never_counts_from_creation() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0).unwrap();
        let (a, b) = (ConnectionId::new(), ConnectionId::new());
        let rows = [
            row(
                "shop",
                a,
                JobKind::OrderPull,
                Some(now - chrono::Duration::seconds(30)),
            ),
            row(
                "shop",
                b,
                JobKind::OrderPull,
                Some(now - chrono::Duration::seconds(90)),
            ),
            row(
                "shop",
                a,
                JobKind::StockPush,
                Some(now - chrono::Duration::seconds(5)),
            ),
            row("shop", b, JobKind::StockPush, None),
            // Unsupported (no price list): exported as nothing.
            row("shop", a, JobKind::CatalogPush, None),
        ];
        let flows = tenant_flows(&rows, now);
        assert_eq!(flows.len(), 2, "{flows:?}");
        let pull = flows.iter().find(|f| f.kind == JobKind::OrderPull).unwrap();
        assert_eq!((pull.age_secs, pull.never), (90, false));
        let stock = flows.iter().find(|f| f.kind == JobKind::StockPush).unwrap();
        assert_eq!((stock.age_secs, stock.never), (3_600, true));
    }

    #[test]
    fn report_marks_stale_flows_and_renders_ages() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0).unwrap();
        let c = ConnectionId::new();
        let mut failed = row(
            "shop",
            c,
            JobKind::StockPush,
            Some(now - chrono::Duration::seconds(133)),
        );
        failed.last_failure_at = Some(now - chrono::Duration::seconds(20));
        failed.last_error = Some("celro: 503 Service Unavailable".into());
        let rows = [
            row("shop", c, JobKind::CatalogPush, None),
            failed,
            row(
                "shop",
                c,
                JobKind::OrderPull,
                Some(now - chrono::Duration::seconds(1_000)),
            ),
            row("shop", c, JobKind::ReturnsReconcile, None),
        ];
        let r = report(&rows, now, Duration::from_secs(300));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].connections.len(), 1);
        let flows = &r[0].connections[0].flows;
        assert!(!flows[0].supported && !flows[0].stale);
        assert!(!flows[1].stale);
        assert!(flows[2].stale, "1,000 s > 3 × 300 s");
        assert!(flows[3].stale, "never, on a connection an hour old");
        let text = render(&r, now);
        assert!(text.contains("2m13s ago"), "{text}");
        assert!(text.contains("20s ago: celro: 503"), "{text}");
        assert!(
            text.contains("catalog_push       not supported: smartbill:"),
            "{text}"
        );
        assert!(text.contains("STALE"), "{text}");
    }

    #[test]
    fn ages_read_like_people_write_them() {
        assert_eq!(human_age(0), "0s");
        assert_eq!(human_age(45), "45s");
        assert_eq!(human_age(133), "2m13s");
        assert_eq!(human_age(3 * 3600 + 5 * 60 + 9), "3h05m");
        assert_eq!(human_age(2 * 86_400 + 4 * 3600), "2d04h");
    }
}
