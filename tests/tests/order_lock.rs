//! The Redis order lock and its fencing tokens: mutual exclusion, holder-only release, renewal,
//! and the fenced Postgres write that stops a holder whose lock expired under it.

use std::sync::Arc;
use std::time::Duration;

use canonical::TenantId;
use integration_tests::{eventually, pttl, queue, test_config};
use sqlx::PgPool;
use workers::db::{Claim, OrderState, add_tenant, claim_order, fenced_set_order_state, get_order};
use workers::lock::OrderLock;
use workers::queue::Queue;

/// Waits until the lock key of `resource` is gone (its TTL ran out).
async fn wait_expired(q: &Queue, tenant: &str, resource: &str) {
    let key = q.keys().lock(tenant, resource);
    eventually(Duration::from_secs(5), "the lock expires", || async {
        (pttl(q, &key).await == -2).then_some(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 13. Mutual exclusion and release
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_of_two_racers_gets_the_lock_every_round() {
    let cfg = test_config("lock-race");
    // Two separate connections, as two worker processes would have.
    let (q1, q2) = (queue(cfg.clone()).await, queue(cfg).await);
    let tenant = TenantId::new().to_string();
    let resource = "order:cdon:RACE-1";
    let ttl = Duration::from_secs(10);
    let mut last_fence = 0;
    for round in 0..50 {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let racer = |q: Queue| {
            let (barrier, tenant) = (barrier.clone(), tenant.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                OrderLock::try_acquire(&q, &tenant, resource, ttl).await
            })
        };
        let (a, b) = (racer(q1.clone()), racer(q2.clone()));
        let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
        let (winner, loser_q) = match (a, b) {
            (Some(l), None) => (l, &q2),
            (None, Some(l)) => (l, &q1),
            (a, b) => panic!(
                "round {round}: exactly one racer must win, got {} winners",
                usize::from(a.is_some()) + usize::from(b.is_some())
            ),
        };
        assert!(winner.fence() > last_fence, "fences grow with every holder");
        last_fence = winner.fence();
        // While held, nobody else gets it.
        assert!(
            OrderLock::try_acquire(loser_q, &tenant, resource, ttl)
                .await
                .unwrap()
                .is_none()
        );
        assert!(!winner.lost());
        assert!(winner.release().await.unwrap(), "the holder releases");
        // Released: the next acquire succeeds at once.
        let next = OrderLock::try_acquire(loser_q, &tenant, resource, ttl)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("round {round}: free after release"));
        assert!(next.fence() > last_fence);
        last_fence = next.fence();
        assert!(next.release().await.unwrap());
    }
}

#[tokio::test]
async fn only_the_current_holder_can_release() {
    let q = queue(test_config("lock-release")).await;
    let tenant = TenantId::new().to_string();
    let resource = "order:cdon:REL-1";
    let a = OrderLock::try_acquire_with(&q, &tenant, resource, Duration::from_millis(200), false)
        .await
        .unwrap()
        .expect("free");
    wait_expired(&q, &tenant, resource).await;
    let b = OrderLock::try_acquire(&q, &tenant, resource, Duration::from_secs(10))
        .await
        .unwrap()
        .expect("free after A's lock expired");
    assert!(b.fence() > a.fence());
    assert!(
        !a.release().await.unwrap(),
        "A no longer holds the lock: its release is refused"
    );
    assert!(
        OrderLock::try_acquire(&q, &tenant, resource, Duration::from_secs(10))
            .await
            .unwrap()
            .is_none(),
        "A's refused release did not free B's lock"
    );
    assert!(b.release().await.unwrap());
    let c = OrderLock::try_acquire(&q, &tenant, resource, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(c.is_some(), "free after B's release");
}

// ---------------------------------------------------------------------------------------------
// 14. Fencing and renewal
// ---------------------------------------------------------------------------------------------

#[sqlx::test(migrator = "workers::db::MIGRATOR")]
async fn a_holder_whose_lock_expired_cannot_overwrite_the_new_holder(pool: PgPool) {
    let q = queue(test_config("lock-fence")).await;
    let tenant = add_tenant(&pool, "acme", "Acme").await.unwrap().id;
    let t = tenant.to_string();
    let resource = "order:cdon:F-1";
    assert!(matches!(
        claim_order(&pool, tenant, "cdon", "F-1").await.unwrap(),
        Claim::New(_)
    ));

    // A takes the lock and then "pauses" (no renewal) past its TTL.
    let a = OrderLock::try_acquire_with(&q, &t, resource, Duration::from_millis(300), false)
        .await
        .unwrap()
        .expect("free");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let b = OrderLock::try_acquire_with(&q, &t, resource, Duration::from_secs(10), false)
        .await
        .unwrap()
        .expect("A's lock expired, so B gets it");
    assert!(b.fence() > a.fence(), "{} > {}", b.fence(), a.fence());

    // B writes with its fence: applied.
    assert!(
        fenced_set_order_state(
            &pool,
            tenant,
            "cdon",
            "F-1",
            OrderState::ErpPending,
            b.fence(),
            None,
            None
        )
        .await
        .unwrap()
    );
    // A wakes up believing it still holds the lock and writes: refused.
    assert!(
        !fenced_set_order_state(
            &pool,
            tenant,
            "cdon",
            "F-1",
            OrderState::NeedsReview,
            a.fence(),
            None,
            Some("ERP timed out")
        )
        .await
        .unwrap(),
        "the stale fence is refused"
    );
    let row = get_order(&pool, tenant, "cdon", "F-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.state, row.fence, row.review_reason),
        (OrderState::ErpPending, b.fence(), None),
        "the order keeps B's write"
    );
    assert!(!a.release().await.unwrap());
    assert!(b.release().await.unwrap());
}

#[tokio::test]
async fn the_renewer_keeps_a_lock_alive_past_its_ttl_and_reports_a_loss() {
    let q = queue(test_config("lock-renew")).await;
    let tenant = TenantId::new().to_string();
    let resource = "order:cdon:R-1";
    let ttl = Duration::from_millis(300);
    let held = OrderLock::try_acquire(&q, &tenant, resource, ttl)
        .await
        .unwrap()
        .expect("free");
    // Three TTLs later the lock is still held, thanks to the renewer.
    tokio::time::sleep(ttl * 3).await;
    assert!(
        OrderLock::try_acquire(&q, &tenant, resource, ttl)
            .await
            .unwrap()
            .is_none(),
        "the renewed lock is still held"
    );
    let left = pttl(&q, &q.keys().lock(&tenant, resource)).await;
    assert!(left > 0 && left <= 300, "PTTL {left}");
    assert!(!held.lost());
    assert!(held.release().await.unwrap());

    // A holder whose lock is taken over (here: deleted and re-taken, as after an expiry) learns it
    // at its next renewal.
    let first = OrderLock::try_acquire(&q, &tenant, resource, ttl)
        .await
        .unwrap()
        .expect("free");
    redis::cmd("DEL")
        .arg(q.keys().lock(&tenant, resource))
        .query_async::<()>(&mut q.connection())
        .await
        .unwrap();
    let second = OrderLock::try_acquire_with(&q, &tenant, resource, Duration::from_secs(10), false)
        .await
        .unwrap()
        .expect("free after the delete");
    eventually(
        Duration::from_secs(2),
        "the first holder sees the loss",
        || async { first.lost().then_some(()) },
    )
    .await;
    assert!(!first.release().await.unwrap());
    assert!(second.release().await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// 15. Fences stay monotonic across a Redis data loss
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn fences_keep_growing_after_the_counter_is_lost() {
    let q = queue(test_config("lock-fence-loss")).await;
    let tenant = TenantId::new().to_string();
    let ttl = Duration::from_secs(10);
    // Many fences within one millisecond, over several orders of the tenant.
    let mut max_fence = 0;
    for i in 0..100 {
        let l = OrderLock::try_acquire(&q, &tenant, &format!("order:cdon:{}", i % 7), ttl)
            .await
            .unwrap()
            .expect("free");
        assert!(
            l.fence() > max_fence,
            "fences grow across the tenant's locks"
        );
        max_fence = l.fence();
        assert!(l.release().await.unwrap());
    }
    // Redis loses its data (restart without persistence): the counter is gone. It is re-seeded
    // from the Redis server's clock, with no pause in between.
    let fence_key = q.keys().fence(&tenant);
    let deleted: i64 = redis::cmd("DEL")
        .arg(&fence_key)
        .query_async(&mut q.connection())
        .await
        .unwrap();
    assert_eq!(deleted, 1, "the fence counter existed");
    let after = OrderLock::try_acquire(&q, &tenant, "order:cdon:0", ttl)
        .await
        .unwrap()
        .expect("free");
    assert!(
        after.fence() > max_fence,
        "fence after the loss {} must exceed every earlier fence (max {max_fence})",
        after.fence()
    );
    assert!(after.release().await.unwrap());
}

#[tokio::test]
async fn fences_keep_growing_when_redis_comes_back_with_an_older_counter() {
    let q = queue(test_config("lock-fence-rollback")).await;
    let tenant = TenantId::new().to_string();
    let ttl = Duration::from_secs(10);
    let first = OrderLock::try_acquire(&q, &tenant, "order:celro:1", ttl)
        .await
        .unwrap()
        .expect("free");
    let high = first.fence();
    assert!(first.release().await.unwrap());
    // A restart from an old snapshot: the counter exists, with a much older value.
    let _: () = redis::cmd("SET")
        .arg(q.keys().fence(&tenant))
        .arg(5)
        .query_async(&mut q.connection())
        .await
        .unwrap();
    let next = OrderLock::try_acquire(&q, &tenant, "order:celro:1", ttl)
        .await
        .unwrap()
        .expect("free");
    assert!(next.fence() > high, "{} must exceed {high}", next.fence());
    assert!(next.release().await.unwrap());
}
