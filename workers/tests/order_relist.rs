//! A marketplace list that reaches back (Cel.ro's 15 minutes of overlap) hands every
//! `order_pull` the orders it already took. Those that need nothing more are told apart in one
//! query per page (`settled_orders`) and skipped; the others are handled as before.

use canonical::{Erp, Marketplace};
use sqlx::PgPool;
use workers::db::{self, Claim, OrderState};

async fn row(pool: &PgPool, t: canonical::TenantId, c: canonical::ConnectionId, id: &str) -> i64 {
    let Claim::New(r) = db::claim_order(pool, t, "celro", id).await.unwrap() else {
        panic!("{id} claimed twice");
    };
    db::flows::store_order_payload(pool, r.id, c, &serde_json::json!({"id": id}))
        .await
        .unwrap();
    r.id
}

/// A tenant with one lexoffice ⇄ Cel.ro connection.
async fn shop(pool: &PgPool, slug: &str) -> (db::Tenant, db::Connection) {
    let t = db::add_tenant(pool, slug, slug).await.unwrap();
    let c = db::add_connection(
        pool,
        t.id,
        Erp::Lexoffice,
        Marketplace::Celro,
        None,
        serde_json::json!({}),
    )
    .await
    .unwrap();
    (t, c)
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn only_orders_that_need_nothing_more_count_as_settled(pool: PgPool) {
    let (t, c) = shop(&pool, "relist").await;
    let set = |id: &'static str, state: OrderState, doc: Option<&'static str>| {
        let pool = pool.clone();
        async move {
            assert!(
                db::fenced_set_order_state(&pool, t.id, "celro", id, state, 1, doc, None)
                    .await
                    .unwrap()
            );
        }
    };
    // Created and accepted: settled.
    let accepted = row(&pool, t.id, c.id, "1").await;
    set("1", OrderState::Created, Some("DOC-1")).await;
    db::flows::mark_accepted(&pool, accepted).await.unwrap();
    // Created, not accepted yet: the pull must accept it.
    row(&pool, t.id, c.id, "2").await;
    set("2", OrderState::Created, Some("DOC-2")).await;
    // Cancelled, parked: settled.
    row(&pool, t.id, c.id, "3").await;
    set("3", OrderState::Cancelled, None).await;
    row(&pool, t.id, c.id, "4").await;
    set("4", OrderState::NeedsReview, None).await;
    // Claimed, pending: still to do.
    row(&pool, t.id, c.id, "5").await;
    row(&pool, t.id, c.id, "6").await;
    set("6", OrderState::ErpPending, None).await;
    // Claimed by a worker killed before it stored the order: its payload is stored again.
    let Claim::New(_) = db::claim_order(&pool, t.id, "celro", "7").await.unwrap() else {
        panic!()
    };
    let ids: Vec<String> = (1..=8).map(|i| i.to_string()).collect();
    let mut settled: Vec<String> = db::flows::settled_orders(&pool, t.id, "celro", &ids)
        .await
        .unwrap()
        .into_iter()
        .collect();
    settled.sort();
    assert_eq!(settled, ["1", "3", "4"]);
    // Another channel or tenant shares nothing.
    assert!(
        db::flows::settled_orders(&pool, t.id, "cdon", &ids)
            .await
            .unwrap()
            .is_empty()
    );
}

/// `awb_push` lists the orders to ship, then books each parcel. An order the marketplace
/// cancels in between must not get a parcel: the AWB intent, written just before the courier
/// is called, is refused for an order that is no longer `created`.
#[sqlx::test(migrator = "db::MIGRATOR")]
async fn an_order_cancelled_after_the_awb_list_gets_no_awb_intent(pool: PgPool) {
    let (t, c) = shop(&pool, "awb-cancel").await;
    for id in ["10", "11"] {
        let r = row(&pool, t.id, c.id, id).await;
        assert!(
            db::fenced_set_order_state(
                &pool,
                t.id,
                "celro",
                id,
                OrderState::Created,
                1,
                Some("D"),
                None
            )
            .await
            .unwrap()
        );
        db::flows::mark_accepted(&pool, r).await.unwrap();
    }
    let listed = db::flows::orders_needing(&pool, c.id, db::flows::Need::Awb, 10)
        .await
        .unwrap();
    assert_eq!(
        listed.len(),
        2,
        "both created and accepted orders wait for an AWB"
    );

    // "11" is cancelled on the marketplace after the list was read.
    assert!(
        db::fenced_set_order_state(
            &pool,
            t.id,
            "celro",
            "11",
            OrderState::Cancelled,
            2,
            None,
            None
        )
        .await
        .unwrap()
    );
    let by_id = |id: &str| listed.iter().find(|r| r.channel_order_id == id).unwrap().id;
    assert_eq!(
        db::flows::awb_intent(&pool, by_id("10"), "MGZ-CELRO-10")
            .await
            .unwrap()
            .as_deref(),
        Some("MGZ-CELRO-10")
    );
    assert_eq!(
        db::flows::awb_intent(&pool, by_id("11"), "MGZ-CELRO-11")
            .await
            .unwrap(),
        None,
        "no parcel for a cancelled order"
    );
    let left = db::flows::orders_needing(&pool, c.id, db::flows::Need::Awb, 10)
        .await
        .unwrap();
    assert_eq!(
        left.iter()
            .map(|r| r.channel_order_id.as_str())
            .collect::<Vec<_>>(),
        vec!["10"],
        "the cancelled order is not listed again"
    );
}

/// Support's "cancel" of an order in review: `cancelled` and its held units credited back, both
/// or neither; a second call finds no order in review and changes nothing.
#[sqlx::test(migrator = "db::MIGRATOR")]
async fn cancelling_an_order_in_review_gives_its_held_units_back_once(pool: PgPool) {
    let (t, c) = shop(&pool, "review-cancel").await;
    let sku = canonical::Sku::new("HELD-1").unwrap();
    db::flows::set_held_stock(&pool, t.id, &sku, 10)
        .await
        .unwrap();
    let order = row(&pool, t.id, c.id, "20").await;
    let reserved = db::flows::reserve_order(&pool, t.id, order, &[("HELD-1".to_owned(), 3)])
        .await
        .unwrap();
    assert!(matches!(reserved, db::flows::Reservation::Reserved));
    let held = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT available FROM stock_levels WHERE tenant_id = $1 AND sku = 'HELD-1'",
        )
        .bind(t.id.0)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    assert_eq!(held().await, 7, "held stock is decremented at once");

    // Not in review yet: nothing happens.
    assert_eq!(
        db::review::mark_cancelled(&pool, order, "no")
            .await
            .unwrap(),
        None
    );
    assert!(
        db::fenced_set_order_state(
            &pool,
            t.id,
            "celro",
            "20",
            OrderState::NeedsReview,
            1,
            None,
            None
        )
        .await
        .unwrap()
    );
    assert_eq!(
        db::review::mark_cancelled(&pool, order, "the buyer asked")
            .await
            .unwrap(),
        Some(vec!["HELD-1".to_owned()])
    );
    assert_eq!(held().await, 10, "the units are back");
    assert_eq!(
        db::review::mark_cancelled(&pool, order, "again")
            .await
            .unwrap(),
        None,
        "a second cancel finds no order in review"
    );
    assert_eq!(held().await, 10, "and gives nothing back twice");
    let state: String = sqlx::query_scalar("SELECT state FROM orders WHERE id = $1")
        .bind(order)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(state, "cancelled");
}
