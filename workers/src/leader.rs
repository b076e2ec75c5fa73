//! Leader election for the scheduler, on a Postgres session advisory lock.
//!
//! Every scheduler replica contends for `pg_try_advisory_lock(key)` on a connection of its own
//! (outside the pool). The one that gets it leads: it runs the heartbeat and the retention purge.
//! The others stand by and try again every `check` interval. Postgres releases the lock when the
//! leader's session ends, whether it exits, crashes, or loses its connection, so no lease has to
//! be tuned and nothing here is home-made beyond the loop.
//!
//! The leader checks its session every `check` interval (`SELECT 1`, bounded by the same
//! interval). If the check fails, it stops leading at once (its work is cancelled) and contends
//! again. A graceful shutdown unlocks explicitly, so a standby takes over within one `check`.
//!
//! **Two leaders at once are bounded, and harmless.** Postgres frees the lock as soon as it sees
//! the session gone (a terminated backend, or TCP keepalives after a vanished node). The old
//! leader notices within one `check`. In that window both may enqueue a heartbeat, and the
//! heartbeat's once-key per connection and time bucket (`heartbeat.rs`) makes the second enqueue
//! a no-op. The purge is idempotent and works under row locks. Election therefore saves work and
//! log noise; correctness never depended on it.

use std::future::Future;
use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

/// The advisory-lock key of a named role (e.g. `scheduler:<namespace>`): the first 8 bytes of
/// its SHA-256, so roles never collide by accident and the key is stable across versions.
pub fn lock_key(role: &str) -> i64 {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(role.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// Runs `work` whenever this process leads `role`, until `shutdown` is cancelled.
///
/// `work` gets a token that is cancelled when leadership is lost or the process shuts down; it
/// must return soon after. It may be started again after a later election.
pub async fn run_as_leader<F, Fut>(
    pool: &PgPool,
    role: &str,
    check: Duration,
    shutdown: CancellationToken,
    mut work: F,
) where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let key = lock_key(role);
    let leading = |on: bool| {
        metrics::gauge!("megzo_leader", "role" => role.to_owned()).set(if on { 1.0 } else { 0.0 });
    };
    leading(false);
    while !shutdown.is_cancelled() {
        match try_lead(pool, key).await {
            Ok(Some(conn)) => {
                tracing::info!(role, "leading");
                leading(true);
                let lost = lead(conn, key, check, &shutdown, &mut work).await;
                leading(false);
                match lost {
                    Some(reason) => tracing::warn!(role, %reason, "stopped leading"),
                    None => {
                        tracing::info!(role, "stepped down for shutdown");
                        return;
                    }
                }
            }
            Ok(None) => tracing::debug!(role, "another replica leads; standing by"),
            Err(e) => tracing::warn!(role, error = %e, "cannot contend for leadership now"),
        }
        tokio::select! {
            _ = tokio::time::sleep(check) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// A connection of its own holding the lock, or `None` if another session holds it.
async fn try_lead(pool: &PgPool, key: i64) -> Result<Option<PgConnection>, sqlx::Error> {
    let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut conn)
        .await?;
    if got {
        Ok(Some(conn))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}

/// Leads until the session fails (returns why) or shutdown (returns `None`, lock released).
async fn lead<F, Fut>(
    mut conn: PgConnection,
    key: i64,
    check: Duration,
    shutdown: &CancellationToken,
    work: &mut F,
) -> Option<String>
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let token = shutdown.child_token();
    let mut task = tokio::spawn(work(token.clone()));
    let mut finished = false;
    let lost = loop {
        tokio::select! {
            _ = tokio::time::sleep(check) => {}
            _ = shutdown.cancelled() => break None,
            r = &mut task => {
                // Work that ends on its own (a panic) must not leave a leader doing nothing:
                // step down, so this or another replica starts it again.
                finished = true;
                if shutdown.is_cancelled() {
                    break None;
                }
                break Some(match r {
                    Ok(()) => "the leader's work ended".to_owned(),
                    Err(e) => format!("the leader's work failed: {e}"),
                });
            }
        }
        let alive = tokio::time::timeout(check, sqlx::query("SELECT 1").execute(&mut conn)).await;
        match alive {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => break Some(format!("the leader's Postgres session failed: {e}")),
            Err(_) => {
                break Some(format!(
                    "the leader's Postgres session did not answer within {} ms",
                    check.as_millis()
                ));
            }
        }
    };
    token.cancel();
    if !finished && let Err(e) = task.await {
        tracing::error!(error = %e, "the leader's work failed");
    }
    if lost.is_none() {
        // Unlock now rather than at disconnect, so a standby's next try succeeds.
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(key)
            .execute(&mut conn)
            .await;
    }
    let _ = conn.close().await;
    lost
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_distinct_per_role() {
        assert_eq!(lock_key("scheduler:megzo"), lock_key("scheduler:megzo"));
        assert_ne!(lock_key("scheduler:megzo"), lock_key("scheduler:other"));
    }
}
