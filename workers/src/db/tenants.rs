//! Tenants (merchants) and their connections (one ERP ⇄ marketplace pair each), and the list of
//! everything the heartbeat must schedule.

use canonical::{ConnectionId, Courier, Erp, Marketplace, TenantId};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::error::ErrorKind;
use uuid::Uuid;

use super::{DbError, violated};

/// A merchant: the unit of isolation, quota and data ownership.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tenant {
    pub id: TenantId,
    /// Human-friendly unique handle used by the CLI and in URLs; see [`validate_slug`].
    pub slug: String,
    pub name: String,
    /// Inactive tenants keep their data but get no heartbeat work.
    pub active: bool,
    /// Overrides the fleet-wide per-tenant concurrency default when set.
    pub concurrency_cap: Option<i32>,
    pub created_at: DateTime<Utc>,
}

/// One ERP ⇄ marketplace pair of a tenant, with its courier and settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub id: ConnectionId,
    pub tenant_id: TenantId,
    pub erp: Erp,
    pub marketplace: Marketplace,
    pub courier: Option<Courier>,
    /// Connector settings: always a JSON object.
    pub settings: serde_json::Value,
    /// Disabled connections keep their data but get no heartbeat work.
    pub enabled: bool,
}

struct TenantDb {
    id: Uuid,
    slug: String,
    name: String,
    active: bool,
    concurrency_cap: Option<i32>,
    created_at: DateTime<Utc>,
}

impl From<TenantDb> for Tenant {
    fn from(r: TenantDb) -> Self {
        Tenant {
            id: TenantId(r.id),
            slug: r.slug,
            name: r.name,
            active: r.active,
            concurrency_cap: r.concurrency_cap,
            created_at: r.created_at,
        }
    }
}

struct ConnectionDb {
    id: Uuid,
    tenant_id: Uuid,
    erp: String,
    marketplace: String,
    courier: Option<String>,
    settings: serde_json::Value,
    enabled: bool,
}

impl TryFrom<ConnectionDb> for Connection {
    type Error = DbError;
    fn try_from(r: ConnectionDb) -> Result<Self, DbError> {
        let corrupt = |column, reason: String| DbError::Corrupt {
            table: "connections",
            column,
            row: r.id.to_string(),
            reason,
        };
        let erp = r.erp.parse().map_err(|e| corrupt("erp", format!("{e}")))?;
        let marketplace = r
            .marketplace
            .parse()
            .map_err(|e| corrupt("marketplace", format!("{e}")))?;
        let courier = match &r.courier {
            Some(c) => Some(c.parse().map_err(|e| corrupt("courier", format!("{e}")))?),
            None => None,
        };
        Ok(Connection {
            id: ConnectionId(r.id),
            tenant_id: TenantId(r.tenant_id),
            erp,
            marketplace,
            courier,
            settings: r.settings,
            enabled: r.enabled,
        })
    }
}

/// The slug rules: 1 to 64 characters, lowercase ASCII letters, digits and `-`, and not something
/// that reads as a UUID (so [`find_tenant`] can tell slugs and ids apart). The error names the
/// slug and the rule it broke.
pub fn validate_slug(slug: &str) -> Result<(), DbError> {
    let reason = if slug.is_empty() {
        "must not be empty".to_owned()
    } else if slug.len() > 64 {
        format!("is {} characters long; at most 64 are allowed", slug.len())
    } else if let Some(c) = slug
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        format!("contains {c:?}; only lowercase letters, digits and '-' are allowed")
    } else if Uuid::parse_str(slug).is_ok() {
        "reads as a UUID, which would be ambiguous with tenant ids".to_owned()
    } else {
        return Ok(());
    };
    Err(DbError::InvalidSlug {
        slug: slug.to_owned(),
        reason,
    })
}

/// Creates an active tenant with a fresh id. Refuses a bad slug ([`DbError::InvalidSlug`]), a
/// blank name, and a slug already in use ([`DbError::Duplicate`]).
pub async fn add_tenant(pool: &PgPool, slug: &str, name: &str) -> Result<Tenant, DbError> {
    validate_slug(slug)?;
    super::check_text("tenant name", name, 200)?;
    let id = TenantId::new();
    let row = sqlx::query_as!(
        TenantDb,
        "INSERT INTO tenants (id, slug, name) VALUES ($1, $2, $3)
         RETURNING id, slug, name, active, concurrency_cap, created_at",
        id.0,
        slug,
        name,
    )
    .fetch_one(pool)
    .await
    .map_err(|e| match violated(&e) {
        Some((ErrorKind::UniqueViolation, c)) if c == "tenants_slug_key" => DbError::Duplicate {
            what: "tenant slug",
            value: slug.to_owned(),
        },
        _ => e.into(),
    })?;
    Ok(row.into())
}

/// Looks a tenant up by id (if the argument parses as a UUID) or else by slug. `Ok(None)` when no
/// such tenant exists; an argument that is neither a UUID nor a valid slug is
/// [`DbError::InvalidSlug`], since nothing could match it.
pub async fn find_tenant(pool: &PgPool, slug_or_id: &str) -> Result<Option<Tenant>, DbError> {
    let key = slug_or_id.trim();
    if let Ok(id) = Uuid::parse_str(key) {
        let row = sqlx::query_as!(
            TenantDb,
            "SELECT id, slug, name, active, concurrency_cap, created_at FROM tenants WHERE id = $1",
            id,
        )
        .fetch_optional(pool)
        .await?;
        return Ok(row.map(Tenant::from));
    }
    validate_slug(key)?;
    let row = sqlx::query_as!(
        TenantDb,
        "SELECT id, slug, name, active, concurrency_cap, created_at FROM tenants WHERE slug = $1",
        key,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Tenant::from))
}

/// Every tenant, active or not, ordered by slug.
pub async fn list_tenants(pool: &PgPool) -> Result<Vec<Tenant>, DbError> {
    let rows = sqlx::query_as!(
        TenantDb,
        "SELECT id, slug, name, active, concurrency_cap, created_at FROM tenants ORDER BY slug",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Tenant::from).collect())
}

/// Sets (or with `None` clears) a tenant's own concurrency cap: the most jobs of the tenant
/// running at once across the fleet. Workers copy caps to Redis (`{ns}:caps`) every minute, so
/// the cap survives a Redis data loss. Refuses a negative cap and an unknown tenant.
pub async fn set_tenant_cap(
    pool: &PgPool,
    tenant: TenantId,
    cap: Option<i32>,
) -> Result<(), DbError> {
    if let Some(c) = cap
        && c < 0
    {
        return Err(DbError::Invalid {
            what: "concurrency cap",
            value: c.to_string(),
            reason: "must be 0 (no cap) or more; leave it unset for the fleet default".into(),
        });
    }
    let done = sqlx::query!(
        "UPDATE tenants SET concurrency_cap = $2 WHERE id = $1",
        tenant.0,
        cap
    )
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(DbError::UnknownTenant(tenant.to_string()));
    }
    Ok(())
}

/// Every tenant that has its own cap, for the workers to copy to Redis.
pub async fn tenant_caps(pool: &PgPool) -> Result<Vec<(TenantId, i32)>, DbError> {
    let rows = sqlx::query!(
        "SELECT id, concurrency_cap AS \"cap!\" FROM tenants WHERE concurrency_cap IS NOT NULL ORDER BY id"
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (TenantId(r.id), r.cap)).collect())
}

/// Adds an enabled connection to `tenant`. `settings` must be a JSON object. Refuses an unknown
/// tenant ([`DbError::UnknownTenant`]) and a second connection of the same ERP/marketplace pair
/// for the same tenant ([`DbError::Duplicate`]).
pub async fn add_connection(
    pool: &PgPool,
    tenant: TenantId,
    erp: Erp,
    marketplace: Marketplace,
    courier: Option<Courier>,
    settings: serde_json::Value,
) -> Result<Connection, DbError> {
    if !settings.is_object() {
        let mut value = settings.to_string();
        value.truncate(200);
        return Err(DbError::Invalid {
            what: "connection settings",
            value,
            reason: "must be a JSON object".into(),
        });
    }
    let id = ConnectionId::new();
    let row = sqlx::query_as!(
        ConnectionDb,
        "INSERT INTO connections (id, tenant_id, erp, marketplace, courier, settings)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING id, tenant_id, erp, marketplace, courier, settings, enabled",
        id.0,
        tenant.0,
        erp.as_str(),
        marketplace.as_str(),
        courier.map(Courier::as_str),
        settings,
    )
    .fetch_one(pool)
    .await
    .map_err(|e| match violated(&e) {
        Some((ErrorKind::ForeignKeyViolation, c)) if c == "connections_tenant_fkey" => {
            DbError::UnknownTenant(tenant.to_string())
        }
        Some((ErrorKind::UniqueViolation, c)) if c == "connections_tenant_erp_marketplace_key" => {
            DbError::Duplicate {
                what: "connection",
                value: format!("{erp}/{marketplace} of tenant {tenant}"),
            }
        }
        _ => e.into(),
    })?;
    row.try_into()
}

/// The connections of one tenant, or of all tenants when `tenant` is `None`, in creation order
/// within each tenant.
pub async fn list_connections(
    pool: &PgPool,
    tenant: Option<TenantId>,
) -> Result<Vec<Connection>, DbError> {
    let rows = sqlx::query_as!(
        ConnectionDb,
        "SELECT id, tenant_id, erp, marketplace, courier, settings, enabled
         FROM connections
         WHERE ($1::uuid IS NULL OR tenant_id = $1)
         ORDER BY tenant_id, created_at, id",
        tenant.map(|t| t.0),
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(Connection::try_from).collect()
}

/// Every enabled connection of every active tenant, for the heartbeat. One query over a partial
/// index, so it stays fast with 10,000 tenants; ordered by tenant then connection so consecutive
/// heartbeats enqueue in the same order.
pub async fn heartbeat_targets(pool: &PgPool) -> Result<Vec<(TenantId, ConnectionId)>, DbError> {
    let rows = sqlx::query!(
        "SELECT c.tenant_id, c.id
         FROM connections c JOIN tenants t ON t.id = c.tenant_id
         WHERE c.enabled AND t.active
         ORDER BY c.tenant_id, c.id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (TenantId(r.tenant_id), ConnectionId(r.id)))
        .collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn slug_errors_name_the_slug_and_the_rule() {
        for (slug, needle) in [
            ("", "empty"),
            ("Acme", "'A'"),
            ("acme shop", "' '"),
            ("acme_shop", "'_'"),
            ("ümlaut", "'ü'"),
            ("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "UUID"),
        ] {
            let err = validate_slug(slug).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(&err, DbError::InvalidSlug { slug: s, .. } if s == slug),
                "{msg}"
            );
            assert!(msg.contains(&format!("{slug:?}")), "{msg}");
            assert!(msg.contains(needle), "{slug}: {msg}");
        }
        let long = "a".repeat(65);
        assert!(validate_slug(&long).unwrap_err().to_string().contains("65"));
        assert!(validate_slug(&"a".repeat(64)).is_ok());
        assert!(validate_slug("acme-shop-2").is_ok());
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn tenants_are_created_found_and_unique(pool: PgPool) {
        let err = add_tenant(&pool, "Bad Slug", "x").await.unwrap_err();
        assert!(err.to_string().contains("\"Bad Slug\""), "{err}");
        let err = add_tenant(&pool, "acme", " ").await.unwrap_err();
        assert!(
            matches!(
                err,
                DbError::Invalid {
                    what: "tenant name",
                    ..
                }
            ),
            "{err}"
        );

        let acme = add_tenant(&pool, "acme", "Acme SRL").await.unwrap();
        assert!(acme.active);
        assert_eq!(acme.concurrency_cap, None);
        let err = add_tenant(&pool, "acme", "Another").await.unwrap_err();
        assert!(
            matches!(&err, DbError::Duplicate { what: "tenant slug", value } if value == "acme"),
            "{err}"
        );
        add_tenant(&pool, "beta", "Beta").await.unwrap();

        assert_eq!(
            find_tenant(&pool, "acme").await.unwrap().as_ref(),
            Some(&acme)
        );
        let by_id = find_tenant(&pool, &format!(" {} ", acme.id)).await.unwrap();
        assert_eq!(by_id.as_ref(), Some(&acme));
        assert_eq!(find_tenant(&pool, "nobody").await.unwrap(), None);
        assert_eq!(
            find_tenant(&pool, &TenantId::new().to_string())
                .await
                .unwrap(),
            None
        );
        assert!(matches!(
            find_tenant(&pool, "NOPE").await,
            Err(DbError::InvalidSlug { .. })
        ));

        let slugs: Vec<_> = list_tenants(&pool)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.slug)
            .collect();
        assert_eq!(slugs, ["acme", "beta"]);
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn connections_need_a_known_tenant_and_are_unique_per_pair(pool: PgPool) {
        let ghost = TenantId::new();
        let err = add_connection(
            &pool,
            ghost,
            Erp::SmartBill,
            Marketplace::Cdon,
            None,
            json!({}),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, DbError::UnknownTenant(t) if *t == ghost.to_string()),
            "{err}"
        );
        assert!(err.to_string().contains(&ghost.to_string()), "{err}");

        let t = add_tenant(&pool, "acme", "Acme").await.unwrap();
        let err = add_connection(&pool, t.id, Erp::Noop, Marketplace::Noop, None, json!([1]))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                DbError::Invalid {
                    what: "connection settings",
                    ..
                }
            ),
            "{err}"
        );

        let settings = json!({"series": "MGZ"});
        let c = add_connection(
            &pool,
            t.id,
            Erp::SmartBill,
            Marketplace::Celro,
            Some(Courier::Dhl),
            settings.clone(),
        )
        .await
        .unwrap();
        assert_eq!(
            (c.tenant_id, c.erp, c.marketplace),
            (t.id, Erp::SmartBill, Marketplace::Celro)
        );
        assert_eq!(
            (c.courier, &c.settings, c.enabled),
            (Some(Courier::Dhl), &settings, true)
        );

        let err = add_connection(
            &pool,
            t.id,
            Erp::SmartBill,
            Marketplace::Celro,
            None,
            json!({}),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                err,
                DbError::Duplicate {
                    what: "connection",
                    ..
                }
            ),
            "{err}"
        );
        let c2 = add_connection(
            &pool,
            t.id,
            Erp::SmartBill,
            Marketplace::Cdon,
            None,
            json!({}),
        )
        .await
        .unwrap();

        let other = add_tenant(&pool, "other", "Other").await.unwrap();
        let c3 = add_connection(
            &pool,
            other.id,
            Erp::Noop,
            Marketplace::Noop,
            None,
            json!({}),
        )
        .await
        .unwrap();
        let mine: Vec<_> = list_connections(&pool, Some(t.id))
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(mine, [c.id, c2.id]);
        assert_eq!(list_connections(&pool, None).await.unwrap().len(), 3);
        assert_eq!(
            list_connections(&pool, Some(other.id)).await.unwrap()[0],
            c3
        );
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn heartbeat_skips_disabled_connections_and_inactive_tenants(pool: PgPool) {
        let live = add_tenant(&pool, "live", "Live").await.unwrap();
        let asleep = add_tenant(&pool, "asleep", "Asleep").await.unwrap();
        let on = add_connection(
            &pool,
            live.id,
            Erp::Noop,
            Marketplace::Noop,
            None,
            json!({}),
        )
        .await
        .unwrap();
        let off = add_connection(
            &pool,
            live.id,
            Erp::Noop,
            Marketplace::Cdon,
            None,
            json!({}),
        )
        .await
        .unwrap();
        add_connection(
            &pool,
            asleep.id,
            Erp::Noop,
            Marketplace::Noop,
            None,
            json!({}),
        )
        .await
        .unwrap();
        sqlx::query("UPDATE connections SET enabled = false WHERE id = $1")
            .bind(off.id.0)
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("UPDATE tenants SET active = false WHERE id = $1")
            .bind(asleep.id.0)
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(heartbeat_targets(&pool).await.unwrap(), [(live.id, on.id)]);
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn heartbeat_targets_of_ten_thousand_tenants_come_in_one_quick_query(pool: PgPool) {
        sqlx::query(
            "INSERT INTO tenants (id, slug, name, active)
             SELECT gen_random_uuid(), 't-' || i, 'Tenant ' || i, i % 10 <> 0
             FROM generate_series(1, 10000) i",
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO connections (id, tenant_id, erp, marketplace, enabled)
             SELECT gen_random_uuid(), id, 'noop', m, m <> 'celro'
             FROM tenants, unnest(ARRAY['cdon', 'celro']) m",
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("ANALYZE").execute(&pool).await.unwrap();
        // Its speed is measured by the heartbeat benchmark, not asserted here.
        let targets = heartbeat_targets(&pool).await.unwrap();
        // 9,000 active tenants with one enabled connection each.
        assert_eq!(targets.len(), 9_000);
        assert!(
            targets.windows(2).all(|w| w[0] < w[1]),
            "ordered and distinct"
        );
    }
}
