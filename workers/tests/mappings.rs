//! Mapping rule sets in Postgres: versions are numbered per connection and direction, never
//! change once saved, one is active, activation and rollback move between them, and every change
//! leaves an audit row. One database per test.

use canonical::{ConnectionId, Erp, Marketplace};
use serde_json::json;
use sqlx::PgPool;
use workers::db::mappings::{
    Direction, activate_mapping, active_mapping, get_mapping, list_mappings, mapping_audit,
    rollback_mapping, save_mapping,
};
use workers::db::{self, DbError};

const E2M: Direction = Direction::ErpToMarketplace;

async fn connection(pool: &PgPool) -> ConnectionId {
    let t = db::add_tenant(pool, "map-shop", "Shop").await.unwrap();
    db::add_connection(
        pool,
        t.id,
        Erp::SmartBill,
        Marketplace::Cdon,
        None,
        json!({}),
    )
    .await
    .unwrap()
    .id
}

fn rules(n: u32) -> serde_json::Value {
    json!({ "schema": 1, "direction": "erp_to_marketplace", "rules": [{ "id": format!("r{n}") }] })
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn versions_are_numbered_immutable_and_activated_one_at_a_time(pool: PgPool) {
    let c = connection(&pool).await;
    assert_eq!(active_mapping(&pool, c, E2M).await.unwrap(), None);
    let v1 = save_mapping(&pool, c, E2M, &rules(1), "ana", "first")
        .await
        .unwrap();
    let v2 = save_mapping(&pool, c, E2M, &rules(2), "ana", "second")
        .await
        .unwrap();
    assert_eq!((v1, v2), (1, 2));
    // The other direction numbers on its own.
    let back = Direction::MarketplaceToErp;
    assert_eq!(
        save_mapping(&pool, c, back, &rules(9), "ion", "")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        active_mapping(&pool, c, E2M).await.unwrap(),
        None,
        "saving activates nothing"
    );

    assert_eq!(
        activate_mapping(&pool, c, E2M, 1, "ana", "go")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        activate_mapping(&pool, c, E2M, 2, "ion", "new prices")
            .await
            .unwrap(),
        Some(1)
    );
    let active = active_mapping(&pool, c, E2M).await.unwrap().unwrap();
    assert_eq!((active.version, active.rules.clone()), (2, rules(2)));
    let listed = list_mappings(&pool, c, E2M).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|v| (v.version, v.active))
            .collect::<Vec<_>>(),
        [(2, true), (1, false)]
    );
    assert_eq!(
        get_mapping(&pool, c, E2M, 1)
            .await
            .unwrap()
            .unwrap()
            .comment,
        "first"
    );

    // A saved version cannot be edited, even by hand.
    let edit = sqlx::query("UPDATE mapping_versions SET comment = 'x' WHERE version = 1")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(edit.to_string().contains("is immutable"), "{edit}");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn rollback_walks_back_through_activations_and_everything_is_audited(pool: PgPool) {
    let c = connection(&pool).await;
    for n in 1..=3 {
        save_mapping(&pool, c, E2M, &rules(n), "ana", "")
            .await
            .unwrap();
    }
    for v in [1, 3, 2] {
        activate_mapping(&pool, c, E2M, v, "ana", "").await.unwrap();
    }
    assert_eq!(
        rollback_mapping(&pool, c, E2M, "ion", "bad prices")
            .await
            .unwrap(),
        3
    );
    assert_eq!(rollback_mapping(&pool, c, E2M, "ion", "").await.unwrap(), 1);
    let e = rollback_mapping(&pool, c, E2M, "ion", "")
        .await
        .unwrap_err();
    assert!(matches!(e, DbError::NothingToRollBack { .. }), "{e}");
    assert_eq!(
        active_mapping(&pool, c, E2M)
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );

    let audit = mapping_audit(&pool, c, E2M).await.unwrap();
    let seen: Vec<_> = audit
        .iter()
        .map(|a| (a.action.as_str(), a.version, a.previous_version))
        .collect();
    assert_eq!(
        seen,
        [
            ("save", 1, None),
            ("save", 2, None),
            ("save", 3, None),
            ("activate", 1, None),
            ("activate", 3, Some(1)),
            ("activate", 2, Some(3)),
            ("rollback", 3, Some(2)),
            ("rollback", 1, Some(3)),
        ]
    );
    assert_eq!(audit[6].actor, "ion");
    assert_eq!(audit[6].comment, "bad prices");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn bad_requests_name_what_was_wrong(pool: PgPool) {
    let c = connection(&pool).await;
    let e = activate_mapping(&pool, c, E2M, 7, "ana", "")
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("no erp_to_marketplace mapping version 7"),
        "{e}"
    );
    let e = save_mapping(&pool, c, E2M, &json!([1, 2]), "ana", "")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("must be a JSON object"), "{e}");
    let e = save_mapping(&pool, c, E2M, &rules(1), " ", "")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("author"), "{e}");
    let nobody = ConnectionId::new();
    let e = save_mapping(&pool, nobody, E2M, &rules(1), "ana", "")
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("unknown connection {nobody}")),
        "{e}"
    );
    assert!(
        "sideways"
            .parse::<Direction>()
            .unwrap_err()
            .to_string()
            .contains("erp_to_marketplace")
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn concurrent_saves_get_consecutive_versions(pool: PgPool) {
    let c = connection(&pool).await;
    let saves = (0..8).map(|n| {
        let pool = pool.clone();
        async move {
            save_mapping(&pool, c, E2M, &rules(n), "ana", "")
                .await
                .unwrap()
        }
    });
    let mut got = futures::future::join_all(saves).await;
    got.sort_unstable();
    assert_eq!(got, (1..=8).collect::<Vec<_>>());
}

/// A valid rule set (the engine's SmartBill → CDON fixture) with its first rate set to `rate`,
/// so two versions differ.
fn valid_rules(rate: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(include_str!(
        "../../canonical/tests/fixtures/smartbill_to_cdon.json"
    ))
    .unwrap();
    v["rates"][0]["rate"] = json!(rate);
    v
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_running_process_uses_a_newly_activated_version_from_its_next_call(pool: PgPool) {
    use workers::mapping::{MappingCache, MappingError};
    let c = connection(&pool).await;
    let cache = MappingCache::new(pool.clone());
    assert!(
        cache.active(c, E2M).await.unwrap().is_none(),
        "nothing active yet"
    );
    let v1 = save_mapping(&pool, c, E2M, &valid_rules("2.30"), "ana", "")
        .await
        .unwrap();
    activate_mapping(&pool, c, E2M, v1, "ana", "")
        .await
        .unwrap();
    let first = cache.active(c, E2M).await.unwrap().unwrap();
    assert_eq!(first.version, v1);
    let again = cache.active(c, E2M).await.unwrap().unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&first.rules, &again.rules),
        "unchanged: not recompiled"
    );

    // Another process (the CLI) activates version 2: the same cache sees it on its next call.
    let v2 = save_mapping(&pool, c, E2M, &valid_rules("2.31"), "ion", "")
        .await
        .unwrap();
    activate_mapping(&pool, c, E2M, v2, "ion", "")
        .await
        .unwrap();
    assert_eq!(cache.active(c, E2M).await.unwrap().unwrap().version, v2);
    rollback_mapping(&pool, c, E2M, "ion", "").await.unwrap();
    assert_eq!(cache.active(c, E2M).await.unwrap().unwrap().version, v1);

    // A stored version the engine cannot use fails naming it, and nothing stale is served.
    let v3 = save_mapping(
        &pool,
        c,
        E2M,
        &json!({"schema": 1, "bogus": true}),
        "ion",
        "",
    )
    .await
    .unwrap();
    activate_mapping(&pool, c, E2M, v3, "ion", "")
        .await
        .unwrap();
    let e = cache.active(c, E2M).await.unwrap_err();
    assert!(
        matches!(e, MappingError::Unusable { version, .. } if version == v3),
        "{e}"
    );
    assert!(e.to_string().contains("version 3"), "{e}");
}
