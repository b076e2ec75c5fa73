//! The connector clients of each connection, built once per worker process and kept while the
//! connection's systems, settings and stored credentials stay the same.
//!
//! A client is more than its configuration: it holds a connection pool to its API, Cel.ro's
//! login token and status list, SmartBill's VAT table, each read with rate-limited calls.
//! Building the clients for every job threw all of that away and cost each job those calls
//! again (and, before the HTTP client was shared, a reload of the TLS roots), which is what
//! made the webhook → ERP latency miss its target under load (docs/benchmarks.md).
//!
//! **A cached client is used only while it is current**: its key is a SHA-256 over everything
//! it was built from (the tenant, the three systems, the settings and the sealed credentials
//! row, whose nonce is new at every store or rotation), checked against Postgres at every job.
//! A change to settings or credentials therefore takes effect at the next job, with no restart
//! and no invalidation message. Nothing secret is kept beyond what the clients already hold.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use canonical::ConnectionId;

use crate::db::Connection;
use crate::vault::Sealed;

/// The clients of one connection.
#[derive(Clone)]
pub(crate) struct Clients {
    pub erp: Arc<dyn connectors::Erp>,
    pub market: Arc<dyn connectors::Marketplace>,
    pub courier: Option<Arc<dyn connectors::Courier>>,
}

/// What a connection's clients were built from, as a digest.
pub(crate) type Fingerprint = [u8; 32];

/// The digest of everything a connection's clients are built from.
pub(crate) fn fingerprint(conn: &Connection, sealed: Option<&Sealed>) -> Fingerprint {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        // Length-prefixed, so two different tuples can never hash the same.
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(conn.tenant_id.to_string().as_bytes());
    field(conn.erp.as_str().as_bytes());
    field(conn.marketplace.as_str().as_bytes());
    field(conn.courier.map_or("", |c| c.as_str()).as_bytes());
    field(conn.settings.to_string().as_bytes());
    match sealed {
        Some(s) => {
            field(s.key_id.as_bytes());
            field(&s.nonce);
            field(&s.ciphertext);
        }
        None => field(b"no credentials"),
    }
    h.finalize().into()
}

/// Connection id → the clients built for it and what they were built from. Bounded: past
/// `capacity` connections the cache starts over (a worker serving more connections than that
/// rebuilds clients more often, which is correct, only slower).
pub(crate) struct ClientCache {
    entries: Mutex<HashMap<ConnectionId, (Fingerprint, Clients)>>,
    capacity: usize,
}

impl std::fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.entries.lock().map_or(0, |e| e.len());
        f.debug_struct("ClientCache")
            .field("connections", &len)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl ClientCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The clients of `connection` if they were built from `fingerprint`.
    pub fn get(&self, connection: ConnectionId, fingerprint: &Fingerprint) -> Option<Clients> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(&connection)
            .filter(|(f, _)| f == fingerprint)
            .map(|(_, c)| c.clone())
    }

    /// Keeps `clients` for `connection`, replacing any built from something older.
    pub fn put(&self, connection: ConnectionId, fingerprint: Fingerprint, clients: Clients) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&connection) {
            entries.clear();
        }
        entries.insert(connection, (fingerprint, clients));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canonical::{Courier, Erp, Marketplace, TenantId};
    use uuid::Uuid;

    fn conn(settings: serde_json::Value) -> Connection {
        Connection {
            id: ConnectionId(Uuid::from_u128(1)),
            tenant_id: TenantId(Uuid::from_u128(2)),
            erp: Erp::SmartBill,
            marketplace: Marketplace::Celro,
            courier: Some(Courier::Dhl),
            settings,
            enabled: true,
        }
    }

    fn sealed(nonce: u8) -> Sealed {
        Sealed {
            key_id: "k1".into(),
            nonce: vec![nonce; 12],
            ciphertext: vec![7; 32],
        }
    }

    #[test]
    fn the_fingerprint_changes_with_everything_a_client_is_built_from() {
        let base = conn(serde_json::json!({"celro": {"shop": "a"}}));
        let f = fingerprint(&base, Some(&sealed(1)));
        assert_eq!(f, fingerprint(&base, Some(&sealed(1))), "deterministic");
        // New credentials (a new seal draws a new nonce).
        assert_ne!(f, fingerprint(&base, Some(&sealed(2))));
        assert_ne!(f, fingerprint(&base, None));
        // New settings.
        let other = conn(serde_json::json!({"celro": {"shop": "b"}}));
        assert_ne!(f, fingerprint(&other, Some(&sealed(1))));
        // Another courier, or none.
        let mut no_courier = base.clone();
        no_courier.courier = None;
        assert_ne!(f, fingerprint(&no_courier, Some(&sealed(1))));
    }

    fn clients() -> Clients {
        let erp: Arc<dyn connectors::Erp> = Arc::new(
            connectors::lexoffice::LexofficeClient::from_json(
                serde_json::Value::Null,
                serde_json::json!({"api_key": "x"}).as_object().unwrap(),
                None,
            )
            .unwrap(),
        );
        let market: Arc<dyn connectors::Marketplace> = Arc::new(
            connectors::celro::CelroClient::from_json(
                serde_json::Value::Null,
                serde_json::json!({"username": "u", "password": "p"})
                    .as_object()
                    .unwrap(),
                None,
            )
            .unwrap(),
        );
        Clients {
            erp,
            market,
            courier: None,
        }
    }

    #[test]
    fn a_client_is_served_only_for_the_fingerprint_it_was_built_from_and_the_cache_is_bounded() {
        let cache = ClientCache::new(2);
        let a = ConnectionId(Uuid::from_u128(10));
        let c = clients();
        cache.put(a, [1; 32], c.clone());
        let got = cache.get(a, &[1; 32]).expect("current");
        assert!(
            Arc::ptr_eq(&got.erp, &c.erp),
            "the same client, not a new one"
        );
        assert!(cache.get(a, &[2; 32]).is_none(), "stale after a change");
        cache.put(a, [2; 32], clients());
        assert!(cache.get(a, &[1; 32]).is_none());
        assert_eq!(cache.len(), 1, "replaced, not added");
        cache.put(ConnectionId(Uuid::from_u128(11)), [3; 32], clients());
        cache.put(ConnectionId(Uuid::from_u128(12)), [4; 32], clients());
        assert!(cache.len() <= 2, "bounded: {}", cache.len());
        assert!(
            cache
                .get(ConnectionId(Uuid::from_u128(12)), &[4; 32])
                .is_some()
        );
    }
}
