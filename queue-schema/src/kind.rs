//! The six job kinds and their policies. This file is the one registration point: adding a kind
//! means adding a variant, its string and its policy here, and nowhere else.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a job does. The string of each kind ([`JobKind::as_str`]) is stored in Redis and Postgres
/// and must never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// ERP → marketplace: listings and prices, only what changed.
    CatalogPush,
    /// ERP → marketplace: available stock minus buffer minus open reservations.
    StockPush,
    /// Marketplace → ERP: each order becomes exactly one non-fiscal sales document.
    OrderPull,
    /// ERP → marketplace: the invoice PDF the merchant issued, attached to the order.
    InvoiceAttach,
    /// Courier → marketplace: one AWB per order, tracking number pushed.
    AwbPush,
    /// Marketplace → ERP: returns, cancellations and storno matched to ERP documents.
    ReturnsReconcile,
}

/// Scheduling priority between kinds, as a weighted round robin of fetches: of every ten
/// fetches a worker makes, six serve `High` kinds first, three `Normal` and one `Low` (see
/// [`serve_order`]); a fetch fills what its lead priority cannot with the others, by priority.
/// So orders and stock get most of the fleet, yet a flood of them (a flash sale: every order
/// triggers a stock push) cannot starve AWBs or the catalog, which strict priority did (the
/// fault run found it). Starvation of a tenant by another is prevented by the per-tenant
/// concurrency cap and the per-tenant round robin inside a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    High = 0,
    Normal = 1,
    Low = 2,
}

/// How a kind is run. Policies are code, reviewed like code; they sit beside the kind so a change
/// to one is visible in one diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindPolicy {
    /// Attempts before the job is dead-lettered, counting attempts whose worker crashed.
    pub max_attempts: u32,
    /// Wall-clock limit of one attempt; past it the attempt fails as retryable.
    pub timeout: Duration,
    pub priority: Priority,
    /// First retry delay ceiling; the n-th retry waits a uniform random time in
    /// `[0, min(backoff_cap, backoff_base × 2^(n-1))]` ("full jitter").
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

impl KindPolicy {
    /// The ceiling of the delay before retry number `failed_attempt` (1-based: the delay after the
    /// first failed attempt uses `failed_attempt == 1`).
    pub fn backoff_ceiling(&self, failed_attempt: u32) -> Duration {
        let exp = failed_attempt.saturating_sub(1).min(30);
        let base = self.backoff_base.as_millis() as u64;
        let ceiling = base.saturating_mul(1u64 << exp);
        Duration::from_millis(ceiling.min(self.backoff_cap.as_millis() as u64))
    }

    /// Full-jitter delay: `unit` is a uniform random number in `[0, 1)`, supplied by the caller so
    /// the computation is deterministic under test.
    pub fn retry_delay(&self, failed_attempt: u32, unit: f64) -> Duration {
        let ceiling = self.backoff_ceiling(failed_attempt).as_millis() as f64;
        let unit = unit.clamp(0.0, 1.0);
        Duration::from_millis((ceiling * unit).floor() as u64)
    }
}

/// A kind string that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown job kind {0:?}; expected one of: catalog_push, stock_push, order_pull, invoice_attach, awb_push, returns_reconcile"
)]
pub struct UnknownKind(pub String);

impl JobKind {
    pub const ALL: [JobKind; 6] = [
        JobKind::CatalogPush,
        JobKind::StockPush,
        JobKind::OrderPull,
        JobKind::InvoiceAttach,
        JobKind::AwbPush,
        JobKind::ReturnsReconcile,
    ];

    /// The stable kind string. Part of the schema.
    pub const fn as_str(self) -> &'static str {
        match self {
            JobKind::CatalogPush => "catalog_push",
            JobKind::StockPush => "stock_push",
            JobKind::OrderPull => "order_pull",
            JobKind::InvoiceAttach => "invoice_attach",
            JobKind::AwbPush => "awb_push",
            JobKind::ReturnsReconcile => "returns_reconcile",
        }
    }

    /// The policy of this kind.
    pub const fn policy(self) -> KindPolicy {
        const fn secs(s: u64) -> Duration {
            Duration::from_secs(s)
        }
        match self {
            // Orders are money: many attempts, short backoff, served first.
            JobKind::OrderPull => KindPolicy {
                max_attempts: 12,
                timeout: secs(120),
                priority: Priority::High,
                backoff_base: secs(2),
                backoff_cap: secs(600),
            },
            // Stock is what prevents overselling: as urgent as orders.
            JobKind::StockPush => KindPolicy {
                max_attempts: 10,
                timeout: secs(300),
                priority: Priority::High,
                backoff_base: secs(2),
                backoff_cap: secs(300),
            },
            JobKind::AwbPush => KindPolicy {
                max_attempts: 10,
                timeout: secs(120),
                priority: Priority::Normal,
                backoff_base: secs(5),
                backoff_cap: secs(900),
            },
            JobKind::InvoiceAttach => KindPolicy {
                max_attempts: 10,
                timeout: secs(120),
                priority: Priority::Normal,
                backoff_base: secs(10),
                backoff_cap: secs(1800),
            },
            JobKind::ReturnsReconcile => KindPolicy {
                max_attempts: 8,
                timeout: secs(300),
                priority: Priority::Normal,
                backoff_base: secs(10),
                backoff_cap: secs(1800),
            },
            // A 50,000-SKU catalog is big and can wait: last in line, long timeout.
            JobKind::CatalogPush => KindPolicy {
                max_attempts: 6,
                timeout: secs(1800),
                priority: Priority::Low,
                backoff_base: secs(30),
                backoff_cap: secs(3600),
            },
        }
    }

    /// The dedupe key of a job of this kind: while a job with the key waits to start, enqueueing
    /// another is a no-op. One waiting job per kind, connection and scope: a second webhook for
    /// the same connection while its pull waits adds nothing, while a pull limited to one order
    /// and a full pull are distinct.
    pub fn dedupe_key(self, payload: &crate::JobPayload) -> String {
        format!(
            "{self}:{}:{}:{}",
            payload.tenant(),
            payload.connection(),
            payload.scope().key()
        )
    }

    /// Kinds by priority, then by declaration.
    pub fn by_priority() -> Vec<JobKind> {
        let mut kinds = Self::ALL.to_vec();
        kinds.sort_by_key(|k| k.policy().priority);
        kinds
    }
}

/// Which priority leads each fetch of a cycle of ten: six `High`, three `Normal`, one `Low`,
/// spread out.
const LEADS: [Priority; 10] = [
    Priority::High,
    Priority::Normal,
    Priority::High,
    Priority::High,
    Priority::Low,
    Priority::High,
    Priority::Normal,
    Priority::High,
    Priority::High,
    Priority::Normal,
];

/// The order in which fetch number `round` of a worker serves `kinds`: the kinds of the
/// round's lead priority first, then the others by priority; inside each priority the kinds
/// take turns (rotated by `round`), because a fetch usually fills one freed slot and would
/// otherwise always go to the same kind (a stock push after every order starving the order
/// pulls, invoice checks starving the AWBs). Every kind is always in the list, so a fetch whose
/// first kinds have nothing ready takes the next work at no cost.
pub fn serve_order(kinds: &[JobKind], round: u64) -> Vec<JobKind> {
    let lead = LEADS[(round % LEADS.len() as u64) as usize];
    let mut groups: std::collections::BTreeMap<(bool, Priority), Vec<JobKind>> =
        std::collections::BTreeMap::new();
    for k in kinds {
        let p = k.policy().priority;
        groups.entry((p != lead, p)).or_default().push(*k);
    }
    let mut out = Vec::with_capacity(kinds.len());
    for (_, mut group) in groups {
        let turn = (round % group.len() as u64) as usize;
        group.rotate_left(turn);
        out.extend(group);
    }
    out
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_priority_leads_its_share_of_fetches_and_every_kind_is_always_served() {
        let all = JobKind::by_priority();
        let mut leads = std::collections::HashMap::new();
        for round in 0..100 {
            let order = serve_order(&all, round);
            let mut sorted = order.clone();
            sorted.sort_by_key(|k| k.as_str());
            let mut expected = all.clone();
            expected.sort_by_key(|k| k.as_str());
            assert_eq!(sorted, expected, "round {round}: every kind, once");
            *leads.entry(order[0].policy().priority).or_insert(0) += 1;
            // After the lead group, by priority.
            let lead = order[0].policy().priority;
            let rest: Vec<_> = order
                .iter()
                .map(|k| k.policy().priority)
                .filter(|p| *p != lead)
                .collect();
            assert!(rest.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
        }
        assert_eq!(leads[&Priority::High], 60);
        assert_eq!(leads[&Priority::Normal], 30);
        assert_eq!(leads[&Priority::Low], 10);
        // Inside a priority the kinds take turns at being first.
        let mut firsts = std::collections::HashSet::new();
        for round in 0..100 {
            firsts.insert(serve_order(&all, round)[0]);
        }
        assert_eq!(firsts.len(), JobKind::ALL.len(), "{firsts:?}");
        // A worker limited to some kinds gets only those.
        let only = serve_order(&[JobKind::CatalogPush, JobKind::AwbPush], 4);
        assert_eq!(
            only,
            vec![JobKind::CatalogPush, JobKind::AwbPush],
            "round 4 is led by Low"
        );
    }

    #[test]
    fn kind_strings_are_stable() {
        // These strings are persisted. This test is the tripwire for an accidental rename.
        let got: Vec<_> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            got,
            [
                "catalog_push",
                "stock_push",
                "order_pull",
                "invoice_attach",
                "awb_push",
                "returns_reconcile"
            ]
        );
        for k in JobKind::ALL {
            assert_eq!(k.as_str().parse::<JobKind>().unwrap(), k);
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        assert!("CatalogPush".parse::<JobKind>().is_err());
    }

    #[test]
    fn orders_and_stock_come_before_catalog() {
        let order = JobKind::by_priority();
        let pos = |k| order.iter().position(|x| *x == k).unwrap();
        assert!(pos(JobKind::OrderPull) < pos(JobKind::CatalogPush));
        assert!(pos(JobKind::StockPush) < pos(JobKind::CatalogPush));
        assert_eq!(*order.last().unwrap(), JobKind::CatalogPush);
    }

    #[test]
    fn backoff_is_exponential_capped_and_fully_jittered() {
        let p = JobKind::OrderPull.policy();
        assert_eq!(p.backoff_ceiling(1), Duration::from_secs(2));
        assert_eq!(p.backoff_ceiling(2), Duration::from_secs(4));
        assert_eq!(p.backoff_ceiling(5), Duration::from_secs(32));
        assert_eq!(p.backoff_ceiling(20), Duration::from_secs(600));
        assert_eq!(p.backoff_ceiling(u32::MAX), Duration::from_secs(600));
        assert_eq!(p.retry_delay(3, 0.0), Duration::ZERO);
        assert_eq!(p.retry_delay(3, 0.5), Duration::from_secs(4));
        assert!(p.retry_delay(3, 0.999_999) < Duration::from_secs(8));
    }

    #[test]
    fn every_policy_is_sane() {
        for k in JobKind::ALL {
            let p = k.policy();
            assert!(p.max_attempts >= 1, "{k}");
            assert!(p.backoff_base <= p.backoff_cap, "{k}");
            assert!(p.timeout >= Duration::from_secs(1), "{k}");
        }
    }
}
