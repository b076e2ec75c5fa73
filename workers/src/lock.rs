//! The Redis order-lock: keeps two workers from working on the same order at the same time.
//!
//! `SET key token NX PX ttl` with a random token; release is compare-and-delete, renewal is
//! compare-and-pexpire, both in Lua so they act only for the holder. Acquiring also takes a
//! **fencing token** from the tenant's counter (same slot as the lock): the Postgres write that
//! the lock protects stores the fence and refuses a smaller one
//! ([`crate::db::fenced_set_order_state`]). The lock is not the safety net: a process paused past
//! its TTL (GC, swap, a stalled VM) wakes up believing it still holds it, and only the fence
//! stops its write.
//!
//! A fence is never below the Redis server's clock in microseconds: if Redis lost the counter
//! (restart without persistence) or came back with an older value (an old snapshot, a lagging
//! replica), the clock still moves it past every fence issued before (unless more than a million
//! fences per second were issued), so fences stay monotonic across a Redis data loss.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::queue::{Queue, QueueError};

static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
-- KEYS[1] lock, KEYS[2] fence counter; ARGV token, ttl ms
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  -- A fence is never below the server's clock in microseconds (one clock for every worker, so no
  -- skew between them). If Redis lost the counter, or came back with an older value (a restart
  -- from an old snapshot, a failover to a lagging replica), the clock still moves it past every
  -- fence issued before.
  local fence = redis.call('INCR', KEYS[2])
  local t = redis.call('TIME')
  local floor = t[1] .. string.format('%06d', tonumber(t[2]))
  if fence < tonumber(floor) then
    redis.call('SET', KEYS[2], floor)
    fence = tonumber(floor)
  end
  return fence
end
return false
",
    )
});

static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// A held lock. Renewed in the background every third of its TTL while held; if a renewal finds
/// the lock gone or taken, [`OrderLock::lost`] turns true and the holder must stop before its
/// next write (the fence would refuse it anyway).
#[derive(Debug)]
pub struct OrderLock {
    queue: Queue,
    key: String,
    token: String,
    fence: i64,
    lost: watch::Receiver<bool>,
    renewer: Option<JoinHandle<()>>,
}

impl OrderLock {
    /// Tries once to take the lock on `resource` of `tenant` (for example
    /// `order:cdon:12345`). `None` if another holder has it.
    pub async fn try_acquire(
        queue: &Queue,
        tenant: &str,
        resource: &str,
        ttl: Duration,
    ) -> Result<Option<OrderLock>, QueueError> {
        Self::try_acquire_with(queue, tenant, resource, ttl, true).await
    }

    /// As [`try_acquire`](Self::try_acquire); `renew = false` leaves renewal to the caller
    /// (tests that simulate a paused holder).
    pub async fn try_acquire_with(
        queue: &Queue,
        tenant: &str,
        resource: &str,
        ttl: Duration,
        renew: bool,
    ) -> Result<Option<OrderLock>, QueueError> {
        let key = queue.keys().lock(tenant, resource);
        let fence_key = queue.keys().fence(tenant);
        let token = uuid::Uuid::new_v4().simple().to_string();
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let fence: Option<i64> = ACQUIRE
            .key(&key)
            .key(&fence_key)
            .arg(&token)
            .arg(ttl_ms)
            .invoke_async(&mut queue.connection())
            .await?;
        let Some(fence) = fence else {
            return Ok(None);
        };
        let (tx, rx) = watch::channel(false);
        let renewer = renew.then(|| {
            let q = queue.clone();
            let (key, token) = (key.clone(), token.clone());
            tokio::spawn(async move {
                let every = Duration::from_millis((ttl_ms / 3).max(1));
                loop {
                    tokio::time::sleep(every).await;
                    let res: Result<i64, _> = RENEW
                        .key(&key)
                        .arg(&token)
                        .arg(ttl_ms)
                        .invoke_async(&mut q.connection())
                        .await;
                    match res {
                        Ok(1) => {}
                        Ok(_) => {
                            let _ = tx.send(true);
                            tracing::warn!(lock = %key, "order lock lost: taken over or expired");
                            return;
                        }
                        // A transient error is retried at the next tick; if the TTL runs out
                        // meanwhile, the next renewal sees the lock gone and reports it lost.
                        Err(e) => tracing::warn!(lock = %key, error = %e, "lock renewal failed"),
                    }
                }
            })
        });
        Ok(Some(OrderLock {
            queue: queue.clone(),
            key,
            token,
            fence,
            lost: rx,
            renewer,
        }))
    }

    /// The fencing token: strictly greater than any earlier holder's of any lock of the tenant.
    pub fn fence(&self) -> i64 {
        self.fence
    }

    /// True once a renewal found the lock gone or taken by someone else.
    pub fn lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// A handle that turns true when [`lost`](Self::lost) does, for work that holds the lock
    /// elsewhere (a flow run checks it between orders).
    pub fn lost_signal(&self) -> watch::Receiver<bool> {
        self.lost.clone()
    }

    /// Releases the lock if this holder still has it. Returns whether it did.
    pub async fn release(mut self) -> Result<bool, QueueError> {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        let n: i64 = RELEASE
            .key(&self.key)
            .arg(&self.token)
            .invoke_async(&mut self.queue.connection())
            .await?;
        Ok(n == 1)
    }
}

impl Drop for OrderLock {
    fn drop(&mut self) {
        // A lock dropped without release just expires after its TTL; stop renewing it.
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
    }
}
