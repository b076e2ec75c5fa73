//! The Redis connection the queue, the locks and the rate limiter share: one node or a Redis
//! Cluster, chosen by the URL.
//!
//! - `redis://host:6379/0` (or `rediss://` for TLS): one Redis, through redis-rs's
//!   self-reconnecting [`ConnectionManager`]; a Sentinel-managed or managed (ElastiCache,
//!   Memorystore) primary is reached this way too, by its stable endpoint.
//! - `redis+cluster://[user:password@]host1:7000,host2:7001,...` (or `rediss+cluster://`): a
//!   Redis Cluster, through redis-rs's cluster client, which learns the slot map from any seed,
//!   follows `MOVED`/`ASK` and refreshes the map after a failover. One seed is enough; more seeds
//!   let the process start while a seed is down.
//!
//! Nothing above this module knows which one it runs on: every key a script touches shares a
//! hash tag (`queue_schema::keys`), so each script call and each pipeline goes to one slot. The
//! two things that do differ are here: the server clock is read on the node that owns the
//! caller's key (the scripts use that node's clock), and `SCAN` walks every primary.

use std::time::Duration;

use queue_schema::keys::cluster_slot;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult, Value};

/// Where Redis is, parsed from the configured URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One Redis server (or a primary behind a stable endpoint).
    Single(String),
    /// The seed nodes of a Redis Cluster, each as a `redis://` (or `rediss://`) URL.
    Cluster(Vec<String>),
}

impl RedisTarget {
    /// Parses `redis://…`, `rediss://…`, `redis+cluster://…` or `rediss+cluster://…`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| "the Redis URL has no scheme (expected redis://host:port)".to_owned())?;
        let node_scheme = match scheme {
            "redis" | "rediss" | "unix" | "redis+unix" => return Ok(Self::Single(url.to_owned())),
            "redis+cluster" => "redis",
            "rediss+cluster" => "rediss",
            other => {
                return Err(format!(
                    "unknown Redis URL scheme {other:?} (expected redis, rediss, redis+cluster \
                     or rediss+cluster)"
                ));
            }
        };
        // Credentials, if any, are given once before the first host and apply to every node.
        let (auth, hosts) = match rest.rsplit_once('@') {
            Some((auth, hosts)) => (Some(auth), hosts),
            None => (None, rest),
        };
        let hosts = hosts.trim_end_matches('/');
        if hosts.contains('/') || hosts.contains('?') {
            return Err(
                "a Redis Cluster URL takes no database or options: a cluster has only database 0"
                    .to_owned(),
            );
        }
        let mut seeds = Vec::new();
        for host in hosts.split(',').map(str::trim) {
            if host.is_empty() {
                return Err("the Redis Cluster URL has an empty seed (two commas?)".to_owned());
            }
            let (name, port) = host.rsplit_once(':').ok_or_else(|| {
                format!("the Redis Cluster seed {host:?} has no port (expected host:port)")
            })?;
            if name.is_empty() || port.parse::<u16>().is_err() {
                return Err(format!(
                    "the Redis Cluster seed {host:?} is not host:port with a port number"
                ));
            }
            seeds.push(match auth {
                Some(auth) => format!("{node_scheme}://{auth}@{host}"),
                None => format!("{node_scheme}://{host}"),
            });
        }
        Ok(Self::Cluster(seeds))
    }
}

/// Timeouts of a connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnTimeouts {
    /// How long one reply may take before the call fails as a timeout.
    pub response: Duration,
    /// How long opening a connection may take.
    pub connect: Duration,
}

/// A multiplexed, self-reconnecting connection to one Redis or to a Redis Cluster. Cheap to
/// clone: clones share the connection.
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Single(_) => f.write_str("RedisConn::Single"),
            Self::Cluster(_) => f.write_str("RedisConn::Cluster"),
        }
    }
}

impl RedisConn {
    /// Connects. Fails if Redis (or, for a cluster, every seed) cannot be reached now.
    pub async fn connect(url: &str, timeouts: ConnTimeouts) -> RedisResult<Self> {
        let target = RedisTarget::parse(url).map_err(|reason| {
            RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "invalid Redis URL",
                reason,
            ))
        })?;
        match target {
            RedisTarget::Single(url) => {
                let client = redis::Client::open(url.as_str())?;
                let cfg = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(timeouts.response))
                    .set_connection_timeout(Some(timeouts.connect))
                    .set_number_of_retries(3)
                    .set_max_delay(Duration::from_secs(1));
                let mut conn = ConnectionManager::new_with_config(client, cfg).await?;
                // A cluster node reached as a single Redis would answer MOVED for most keys,
                // job by job: refuse it now, saying what to write instead.
                let info: String = redis::cmd("INFO")
                    .arg("cluster")
                    .query_async(&mut conn)
                    .await?;
                if info.lines().any(|l| l.trim() == "cluster_enabled:1") {
                    return Err(RedisError::from((
                        redis::ErrorKind::InvalidClientConfig,
                        "this Redis is a Redis Cluster node",
                        "use a redis+cluster://host:port,... URL to reach it as a cluster"
                            .to_owned(),
                    )));
                }
                Ok(Self::Single(conn))
            }
            RedisTarget::Cluster(seeds) => {
                let infos = seeds
                    .iter()
                    .map(|s| s.as_str().into_connection_info())
                    .collect::<RedisResult<Vec<_>>>()?;
                let client = ClusterClientBuilder::new(infos)
                    .response_timeout(timeouts.response)
                    .connection_timeout(timeouts.connect)
                    .retries(3)
                    .max_retry_wait(1_000)
                    .build()?;
                Ok(Self::Cluster(client.get_async_connection().await?))
            }
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Sends `cmd` to the primary that owns `slot`: the only node of a single Redis.
    async fn on_primary_of(&mut self, slot: u16, cmd: Cmd) -> RedisResult<Value> {
        match self {
            Self::Single(c) => cmd.query_async(c).await,
            Self::Cluster(c) => {
                let route = Route::new(slot, SlotAddr::Master);
                c.route_command(
                    cmd,
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                )
                .await
            }
        }
    }

    /// The Redis server's clock (ms since the epoch), read on the node that owns `key`: the
    /// clock the scripts touching `key` use.
    pub async fn server_time_ms(&mut self, key: &str) -> RedisResult<u64> {
        let reply = self
            .on_primary_of(cluster_slot(key), redis::cmd("TIME"))
            .await?;
        let (secs, micros): (u64, u64) = redis::from_redis_value(reply)?;
        Ok(secs * 1000 + micros / 1000)
    }

    /// Every key matching `pattern`, over every primary of a cluster (`SCAN MATCH`; keys may be
    /// added or removed meanwhile, as `SCAN` allows). For tests and admin tools, not hot paths.
    pub async fn scan_match(&mut self, pattern: &str) -> RedisResult<Vec<String>> {
        // One slot of each primary, routed by slot rather than by address: through a slot map
        // not yet refreshed after a failover, the SCAN reaches the demoted node, a replica
        // holding the same keys, instead of failing.
        let slots = match self {
            Self::Single(_) => vec![0],
            Self::Cluster(c) => {
                one_slot_per_primary(redis::cmd("CLUSTER").arg("SLOTS").query_async(c).await?)?
            }
        };
        let mut out = Vec::new();
        for slot in slots {
            let mut cursor = 0;
            loop {
                let reply = self.on_primary_of(slot, scan_cmd(cursor, pattern)).await?;
                let (next, keys): (u64, Vec<String>) = redis::from_redis_value(reply)?;
                out.extend(keys);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(out)
    }
}

fn scan_cmd(cursor: u64, pattern: &str) -> Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(1000);
    cmd
}

/// From a `CLUSTER SLOTS` reply (`[[first, last, [host, port, id, …], replicas…], …]`), the
/// first slot of each primary's first range: one slot per primary.
fn one_slot_per_primary(reply: Value) -> RedisResult<Vec<u16>> {
    let ranges: Vec<Vec<Value>> = redis::from_redis_value(reply)?;
    let mut seen = std::collections::BTreeSet::new();
    let mut slots = Vec::new();
    for range in ranges {
        let (Some(first), Some(primary)) = (range.first(), range.get(2)) else {
            continue;
        };
        let first: u16 = redis::from_redis_value(first.clone())?;
        let node: Vec<Value> = redis::from_redis_value(primary.clone())?;
        let (Some(host), Some(port)) = (node.first(), node.get(1)) else {
            continue;
        };
        let host: String = redis::from_redis_value(host.clone())?;
        let port: u16 = redis::from_redis_value(port.clone())?;
        if seen.insert((host, port)) {
            slots.push(first);
        }
    }
    Ok(slots)
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_urls_pass_through() {
        for url in [
            "redis://127.0.0.1:6379",
            "rediss://:pw@h:6380/2",
            "unix:///run/redis.sock",
        ] {
            assert_eq!(RedisTarget::parse(url), Ok(RedisTarget::Single(url.into())));
        }
    }

    #[test]
    fn cluster_urls_become_seeds_with_shared_credentials() {
        assert_eq!(
            RedisTarget::parse("redis+cluster://a:7000,b:7001/"),
            Ok(RedisTarget::Cluster(vec![
                "redis://a:7000".into(),
                "redis://b:7001".into()
            ]))
        );
        assert_eq!(
            RedisTarget::parse("rediss+cluster://u:p%40w@a:7000, b:7001"),
            Ok(RedisTarget::Cluster(vec![
                "rediss://u:p%40w@a:7000".into(),
                "rediss://u:p%40w@b:7001".into()
            ]))
        );
    }

    #[test]
    fn bad_urls_are_refused_by_what_is_wrong() {
        let err = |u: &str| RedisTarget::parse(u).unwrap_err();
        assert!(err("localhost:6379").contains("no scheme"));
        assert!(err("http://h:1").contains("unknown Redis URL scheme \"http\""));
        assert!(err("redis+cluster://a:7000,,b:7001").contains("empty seed"));
        assert!(err("redis+cluster://a").contains("has no port"));
        assert!(err("redis+cluster://a:x").contains("not host:port"));
        assert!(err("redis+cluster://a:7000/1").contains("only database 0"));
    }

    #[test]
    fn one_slot_is_taken_per_primary_from_cluster_slots() {
        let node = |port: i64| {
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let range = |a: i64, b: i64, primary: i64, replica: Option<i64>| {
            let mut v = vec![Value::Int(a), Value::Int(b), node(primary)];
            v.extend(replica.map(node));
            Value::Array(v)
        };
        // 7001 holds two ranges (after a reshard): it is scanned once.
        let reply = Value::Array(vec![
            range(0, 5000, 7001, Some(7004)),
            range(5001, 10000, 7002, None),
            range(10001, 16000, 7003, Some(7005)),
            range(16001, 16383, 7001, Some(7004)),
        ]);
        assert_eq!(one_slot_per_primary(reply).unwrap(), vec![0, 5001, 10001]);
        assert!(one_slot_per_primary(Value::Int(3)).is_err());
    }
}
