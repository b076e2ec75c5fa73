//! The payload every job carries. Versioned: the `v` tag is written with every payload, and a
//! worker refuses (dead-letters, with the reason) a version it does not know instead of guessing.
//! A new version is added beside the old one; the old one is read until no job of it is queued.

use canonical::{ChannelOrderId, ConnectionId, Sku, TenantId};
use serde::{Deserialize, Serialize};

use crate::JobId;

/// What started a job. Recorded with every run so support can tell a heartbeat from a replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Trigger {
    /// The scheduler's periodic heartbeat; `bucket` is the index of the time bucket
    /// (unix seconds / interval) the job was enqueued for.
    Heartbeat { bucket: i64 },
    /// A marketplace callback woke the tenant up.
    Webhook,
    /// Support replayed a dead job.
    Replay { of: JobId },
    /// Someone enqueued it by hand (`megzo enqueue job`).
    Manual,
}

impl Trigger {
    pub fn as_str(&self) -> &'static str {
        match self {
            Trigger::Heartbeat { .. } => "heartbeat",
            Trigger::Webhook => "webhook",
            Trigger::Replay { .. } => "replay",
            Trigger::Manual => "manual",
        }
    }
}

/// What part of a connection a job covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Scope {
    /// Everything the flow covers for the connection.
    #[default]
    All,
    /// Only these SKUs (for example the SKU of an order just pulled, pushed to other channels).
    Skus { skus: Vec<Sku> },
    /// One marketplace order.
    Order { order: ChannelOrderId },
}

impl Scope {
    /// A short, stable key for the scope, used in dedupe keys. SKU lists are order-insensitive.
    pub fn key(&self) -> String {
        match self {
            Scope::All => "all".to_owned(),
            Scope::Order { order } => format!("order={order}"),
            Scope::Skus { skus } => {
                let mut s: Vec<&str> = skus.iter().map(Sku::as_str).collect();
                s.sort_unstable();
                s.dedup();
                format!("skus={}", s.join(","))
            }
        }
    }
}

/// Version 1 of the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadV1 {
    pub tenant: TenantId,
    pub connection: ConnectionId,
    #[serde(default)]
    pub scope: Scope,
    pub trigger: Trigger,
}

/// The versioned payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum JobPayload {
    #[serde(rename = "1")]
    V1(PayloadV1),
}

/// A payload that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("job payload is not a valid versioned payload: {0}")]
pub struct PayloadError(#[from] pub serde_json::Error);

impl JobPayload {
    pub fn v1(tenant: TenantId, connection: ConnectionId, scope: Scope, trigger: Trigger) -> Self {
        JobPayload::V1(PayloadV1 {
            tenant,
            connection,
            scope,
            trigger,
        })
    }

    pub fn tenant(&self) -> TenantId {
        match self {
            JobPayload::V1(p) => p.tenant,
        }
    }

    pub fn connection(&self) -> ConnectionId {
        match self {
            JobPayload::V1(p) => p.connection,
        }
    }

    pub fn scope(&self) -> &Scope {
        match self {
            JobPayload::V1(p) => &p.scope,
        }
    }

    pub fn trigger(&self) -> &Trigger {
        match self {
            JobPayload::V1(p) => &p.trigger,
        }
    }

    pub fn to_json(&self) -> String {
        // A payload is plain data (ids, strings, integers): serialising it cannot fail.
        serde_json::to_string(self).unwrap_or_else(|e| unreachable!("payload serialises: {e}"))
    }

    pub fn from_json(s: &str) -> Result<Self, PayloadError> {
        Ok(serde_json::from_str(s)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_carries_its_version_and_round_trips() {
        let p = JobPayload::v1(
            TenantId::new(),
            ConnectionId::new(),
            Scope::Order {
                order: ChannelOrderId::new("A-1").unwrap(),
            },
            Trigger::Heartbeat { bucket: 42 },
        );
        let json = p.to_json();
        assert!(json.starts_with("{\"v\":\"1\""), "{json}");
        assert_eq!(JobPayload::from_json(&json).unwrap(), p);
    }

    #[test]
    fn unknown_versions_and_bad_ids_are_refused_with_the_reason() {
        let t = TenantId::new();
        let c = ConnectionId::new();
        let v2 = format!(
            r#"{{"v":"2","tenant":"{t}","connection":"{c}","trigger":{{"type":"manual"}}}}"#
        );
        let err = JobPayload::from_json(&v2).unwrap_err().to_string();
        assert!(err.contains("unknown variant `2`"), "{err}");
        let bad_sku = format!(
            r#"{{"v":"1","tenant":"{t}","connection":"{c}","scope":{{"type":"skus","skus":["a b"]}},"trigger":{{"type":"manual"}}}}"#
        );
        let err = JobPayload::from_json(&bad_sku).unwrap_err().to_string();
        assert!(err.contains("SKU contains ' '"), "{err}");
    }

    #[test]
    fn scope_defaults_to_all_and_sku_keys_ignore_order() {
        let t = TenantId::new();
        let c = ConnectionId::new();
        let json = format!(
            r#"{{"v":"1","tenant":"{t}","connection":"{c}","trigger":{{"type":"webhook"}}}}"#
        );
        assert_eq!(JobPayload::from_json(&json).unwrap().scope(), &Scope::All);
        let a = Scope::Skus {
            skus: vec![Sku::new("B").unwrap(), Sku::new("A").unwrap()],
        };
        let b = Scope::Skus {
            skus: vec![
                Sku::new("A").unwrap(),
                Sku::new("B").unwrap(),
                Sku::new("A").unwrap(),
            ],
        };
        assert_eq!(a.key(), b.key());
    }
}
