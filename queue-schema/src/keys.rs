//! The Redis key layout, all of it, in one place.
//!
//! Every key the queue's scripts touch carries the same hash tag, `{<namespace>}`, so every
//! script runs inside one Redis Cluster slot (no CROSSSLOT errors) and a test can isolate itself
//! by picking a unique namespace. Order locks and their fencing counters are tagged by tenant
//! instead (`<namespace>:lock:{<tenant>}:…`), so lock traffic spreads across a cluster while a
//! lock and its fence still share a slot. Rate limits and semaphores of external APIs are tagged
//! by the external account (`<namespace>:rl:{<account>}:…`), so all of an account's limiter keys
//! share a slot and different accounts spread.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{ns}:job:<id>` | hash | one job: `k` kind, `t` tenant, `p` payload, `a` attempts started, `m` max attempts, `s` state, `e` enqueued ms, `d` dedupe key, `w` lease owner, `f<n>` error of attempt n; expires after the retention once succeeded |
//! | `{ns}:ready:<kind>:<tenant>` | list | ready job ids of one tenant and kind, FIFO |
//! | `{ns}:ring:<kind>` | list | tenants with ready jobs of the kind, rotated on every take (round robin) |
//! | `{ns}:queued:<kind>` | zset | ready job ids by time they became ready (depth and oldest age per kind) |
//! | `{ns}:delayed` | zset | scheduled and retrying job ids by due time (ms) |
//! | `{ns}:leases` | zset | running job ids by lease deadline (ms); past it the job is rescued |
//! | `{ns}:running` | hash | tenant → jobs running now (the per-tenant cap) |
//! | `{ns}:caps` | hash | tenant → its own concurrency cap, overriding the default |
//! | `{ns}:dedupe` | hash | dedupe key → id of the job waiting with it |
//! | `{ns}:once:<scope>` | set | members enqueued once in a window; the key expires with the window |
//! | `{ns}:dead` | zset | dead job ids by time of death |
//! | `{ns}:outbox` | list | dead job ids not yet copied to Postgres |
//! | `{ns}:workers` | zset | worker id → last heartbeat (ms), for the fleet view |
//! | `{ns}:stats` | hash | counters since the namespace was created (enqueued, succeeded, dead, rescued) |
//! | `ns:lock:{<tenant>}:<resource>` | string | an order lock's random token, with a TTL |
//! | `ns:lock:{<tenant>}:fence` | string | the tenant's fencing-token counter |
//! | `ns:rl:{<account>}:<api>` | string | GCRA theoretical arrival time (µs, Redis server clock) of one external account's API (`workers::ratelimit` passes `<system>:<api>`); expires once the account is idle |
//! | `ns:sem:{<account>}:<api>` | zset | concurrency-permit tokens of one external account's API by lease expiry (ms); expires with its last lease |

use crate::JobKind;

/// Builds every key of one queue namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLayout {
    ns: String,
    tag: String,
}

impl KeyLayout {
    /// `namespace` must be non-empty and free of braces (it becomes the hash tag).
    pub fn new(namespace: &str) -> Result<Self, String> {
        if namespace.is_empty()
            || namespace
                .chars()
                .any(|c| matches!(c, '{' | '}') || c.is_whitespace())
        {
            return Err(format!(
                "queue namespace {namespace:?} must be non-empty and contain no braces or spaces"
            ));
        }
        Ok(Self {
            ns: namespace.to_owned(),
            tag: format!("{{{namespace}}}"),
        })
    }

    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// The `{ns}` prefix every queue key starts with; the Lua scripts build keys from it.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    pub fn job(&self, id: &str) -> String {
        format!("{}:job:{id}", self.tag)
    }
    pub fn ready(&self, kind: JobKind, tenant: &str) -> String {
        format!("{}:ready:{kind}:{tenant}", self.tag)
    }
    pub fn ring(&self, kind: JobKind) -> String {
        format!("{}:ring:{kind}", self.tag)
    }
    pub fn queued(&self, kind: JobKind) -> String {
        format!("{}:queued:{kind}", self.tag)
    }
    pub fn delayed(&self) -> String {
        format!("{}:delayed", self.tag)
    }
    pub fn leases(&self) -> String {
        format!("{}:leases", self.tag)
    }
    pub fn running(&self) -> String {
        format!("{}:running", self.tag)
    }
    pub fn caps(&self) -> String {
        format!("{}:caps", self.tag)
    }
    pub fn dedupe(&self) -> String {
        format!("{}:dedupe", self.tag)
    }
    pub fn once(&self, scope: &str) -> String {
        format!("{}:once:{scope}", self.tag)
    }
    pub fn dead(&self) -> String {
        format!("{}:dead", self.tag)
    }
    pub fn outbox(&self) -> String {
        format!("{}:outbox", self.tag)
    }
    pub fn workers(&self) -> String {
        format!("{}:workers", self.tag)
    }
    pub fn stats(&self) -> String {
        format!("{}:stats", self.tag)
    }
    /// An order lock (or any per-tenant resource lock).
    pub fn lock(&self, tenant: &str, resource: &str) -> String {
        format!("{}:lock:{{{tenant}}}:{resource}", self.ns)
    }
    /// The fencing counter shared by all locks of a tenant (same slot as its locks).
    pub fn fence(&self, tenant: &str) -> String {
        format!("{}:lock:{{{tenant}}}:fence", self.ns)
    }
    /// The GCRA state of one external `account`'s `api` (a rate limit shared by the whole fleet).
    /// Tagged by account: every limiter key of an account shares a slot. `account` and `api` must
    /// be free of braces (the caller checks).
    pub fn rate(&self, account: &str, api: &str) -> String {
        format!("{}:rl:{{{account}}}:{api}", self.ns)
    }
    /// The concurrency permits of one external `account`'s `api` (same slot as its rate limits).
    pub fn semaphore(&self, account: &str, api: &str) -> String {
        format!("{}:sem:{{{account}}}:{api}", self.ns)
    }
}

/// The Redis Cluster hash slot of a key (CRC16/XMODEM of the hash tag, mod 16384), so tests can
/// prove that keys which must share a slot do.
pub fn cluster_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = match key.find('{') {
        Some(open) => match key[open + 1..].find('}') {
            Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
            _ => bytes,
        },
        None => bytes,
    };
    let mut crc: u16 = 0;
    for &b in hashed {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_function_matches_redis_reference_values() {
        // Values from the Redis Cluster specification / CLUSTER KEYSLOT.
        assert_eq!(cluster_slot("123456789"), 12739);
        assert_eq!(cluster_slot("foo"), 12182);
        assert_eq!(
            cluster_slot("{user1000}.following"),
            cluster_slot("user1000")
        );
    }

    #[test]
    fn every_queue_key_shares_one_slot() {
        let k = KeyLayout::new("megzo").unwrap();
        let slot = cluster_slot(k.tag());
        let mut keys = vec![
            k.job("x"),
            k.delayed(),
            k.leases(),
            k.running(),
            k.caps(),
            k.dedupe(),
            k.once("hb:1"),
            k.dead(),
            k.outbox(),
            k.workers(),
            k.stats(),
        ];
        for kind in JobKind::ALL {
            keys.push(k.ready(kind, "t1"));
            keys.push(k.ring(kind));
            keys.push(k.queued(kind));
        }
        for key in keys {
            assert_eq!(cluster_slot(&key), slot, "{key}");
        }
        assert_eq!(
            cluster_slot(&k.lock("t1", "order:cdon:1")),
            cluster_slot(&k.fence("t1"))
        );
        // An account's rate limits and semaphores share a slot, whatever the api.
        let acct = cluster_slot(&k.rate("acct-1", "smartbill:rest"));
        assert_eq!(cluster_slot(&k.rate("acct-1", "lexoffice:api")), acct);
        assert_eq!(
            cluster_slot(&k.semaphore("acct-1", "celro:connections")),
            acct
        );
        assert_eq!(acct, cluster_slot("acct-1"));
        assert_ne!(k.rate("acct-1", "x"), k.semaphore("acct-1", "x"));
    }

    #[test]
    fn namespace_must_be_usable_as_a_tag() {
        assert!(KeyLayout::new("").is_err());
        assert!(KeyLayout::new("a{b").is_err());
        assert!(KeyLayout::new("a b").is_err());
    }
}
