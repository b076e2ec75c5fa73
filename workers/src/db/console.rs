//! The console's users, API tokens, browser sessions and audit log (migration
//! `0008_console.sql`). Secrets never reach this layer in clear form except to be hashed:
//! passwords and token secrets as argon2id, session ids as SHA-256.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use sqlx::error::ErrorKind;
use uuid::Uuid;

use super::{DbError, violated};
use canonical::TenantId;

/// What a console user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Watches the fleet: queue depth, workers, throughput; reads every tenant, changes nothing.
    Operator,
    /// Every tenant: replays jobs, resolves orders in doubt, activates and rolls back mappings.
    Support,
    /// One tenant, read-mostly: its own sync, jobs, orders and mappings.
    Vendor,
}

impl Role {
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Support => "support",
            Role::Vendor => "vendor",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = DbError;
    fn from_str(s: &str) -> Result<Self, DbError> {
        match s {
            "operator" => Ok(Role::Operator),
            "support" => Ok(Role::Support),
            "vendor" => Ok(Role::Vendor),
            _ => Err(DbError::Invalid {
                what: "role",
                value: s.to_owned(),
                reason: "expected operator, support or vendor".into(),
            }),
        }
    }
}

/// A console user (never with its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub role: Role,
    /// The vendor's tenant; `None` for operators and support.
    pub tenant_id: Option<TenantId>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

struct UserDb {
    id: Uuid,
    username: String,
    role: String,
    tenant_id: Option<Uuid>,
    disabled: bool,
    created_at: DateTime<Utc>,
}

impl TryFrom<UserDb> for User {
    type Error = DbError;
    fn try_from(r: UserDb) -> Result<Self, DbError> {
        Ok(User {
            id: r.id,
            role: r.role.parse().map_err(|_| DbError::Corrupt {
                table: "console_users",
                column: "role",
                row: r.id.to_string(),
                reason: format!("unknown role {:?}", r.role),
            })?,
            username: r.username,
            tenant_id: r.tenant_id.map(TenantId),
            disabled: r.disabled,
            created_at: r.created_at,
        })
    }
}

/// Checks a username against the rules the table enforces, with a message naming the rule.
pub fn validate_username(name: &str) -> Result<(), DbError> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._@-".contains(c));
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if (2..=64).contains(&name.len()) && ok_chars && first_ok {
        Ok(())
    } else {
        Err(DbError::Invalid {
            what: "username",
            value: name.to_owned(),
            reason: "2 to 64 characters: lowercase letters, digits and . _ @ -, starting with a letter or digit".into(),
        })
    }
}

/// Adds a user. A vendor needs its tenant, the other roles take none.
pub async fn create_user(
    pool: &PgPool,
    username: &str,
    role: Role,
    tenant: Option<TenantId>,
    password_hash: Option<&str>,
) -> Result<User, DbError> {
    validate_username(username)?;
    if (role == Role::Vendor) != tenant.is_some() {
        return Err(DbError::Invalid {
            what: "user tenant",
            value: tenant.map(|t| t.to_string()).unwrap_or_default(),
            reason:
                "a vendor belongs to exactly one tenant (--tenant); operators and support to none"
                    .into(),
        });
    }
    let row = sqlx::query_as!(
        UserDb,
        "INSERT INTO console_users (id, username, role, tenant_id, password_hash)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING id, username, role, tenant_id, disabled, created_at",
        Uuid::now_v7(),
        username,
        role.as_str(),
        tenant.map(|t| t.0),
        password_hash,
    )
    .fetch_one(pool)
    .await
    .map_err(|e| match violated(&e) {
        Some((ErrorKind::UniqueViolation, _)) => DbError::Duplicate {
            what: "username",
            value: username.to_owned(),
        },
        Some((ErrorKind::ForeignKeyViolation, _)) => {
            DbError::UnknownTenant(tenant.map(|t| t.to_string()).unwrap_or_default())
        }
        _ => e.into(),
    })?;
    row.try_into()
}

/// The user named `username` with its password hash (`None` if it has no password).
pub async fn user_for_login(
    pool: &PgPool,
    username: &str,
) -> Result<Option<(User, Option<String>)>, DbError> {
    let row = sqlx::query!(
        "SELECT id, username, role, tenant_id, disabled, created_at, password_hash
         FROM console_users WHERE username = $1",
        username,
    )
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        let user = UserDb {
            id: r.id,
            username: r.username,
            role: r.role,
            tenant_id: r.tenant_id,
            disabled: r.disabled,
            created_at: r.created_at,
        }
        .try_into()?;
        Ok((user, r.password_hash))
    })
    .transpose()
}

/// Every user, by name.
pub async fn list_users(pool: &PgPool) -> Result<Vec<User>, DbError> {
    let rows = sqlx::query_as!(
        UserDb,
        "SELECT id, username, role, tenant_id, disabled, created_at
         FROM console_users ORDER BY username",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(User::try_from).collect()
}

/// Sets (or clears) a user's password hash.
pub async fn set_password_hash(
    pool: &PgPool,
    username: &str,
    hash: Option<&str>,
) -> Result<(), DbError> {
    let done = sqlx::query!(
        "UPDATE console_users SET password_hash = $2 WHERE username = $1",
        username,
        hash,
    )
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(unknown_user(username));
    }
    Ok(())
}

/// Disables (or enables again) a user: its tokens and sessions stop working at once.
pub async fn set_disabled(pool: &PgPool, username: &str, disabled: bool) -> Result<(), DbError> {
    let done = sqlx::query!(
        "UPDATE console_users SET disabled = $2 WHERE username = $1",
        username,
        disabled,
    )
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(unknown_user(username));
    }
    if disabled {
        sqlx::query!(
            "DELETE FROM console_sessions s USING console_users u
             WHERE s.user_id = u.id AND u.username = $1",
            username,
        )
        .execute(pool)
        .await?;
    }
    Ok(())
}

fn unknown_user(username: &str) -> DbError {
    DbError::Invalid {
        what: "username",
        value: username.to_owned(),
        reason: "no such console user (see `megzo users list`)".into(),
    }
}

/// An API token as stored (its secret only as a hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub secret_hash: String,
}

/// Stores a token (id and secret hash; the caller shows the token once).
pub async fn insert_token(
    pool: &PgPool,
    id: Uuid,
    user_id: Uuid,
    name: &str,
    secret_hash: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(), DbError> {
    super::check_text("token name", name, 100)?;
    sqlx::query!(
        "INSERT INTO console_tokens (id, user_id, name, secret_hash, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
        id,
        user_id,
        name,
        secret_hash,
        expires_at,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// A token with its user.
pub async fn token_with_user(pool: &PgPool, id: Uuid) -> Result<Option<(TokenRow, User)>, DbError> {
    let row = sqlx::query!(
        "SELECT t.id, t.user_id, t.name, t.created_at, t.expires_at, t.last_used_at,
                t.revoked_at, t.secret_hash,
                u.username, u.role, u.tenant_id, u.disabled, u.created_at AS user_created_at
         FROM console_tokens t JOIN console_users u ON u.id = t.user_id
         WHERE t.id = $1",
        id,
    )
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        let user = UserDb {
            id: r.user_id,
            username: r.username,
            role: r.role,
            tenant_id: r.tenant_id,
            disabled: r.disabled,
            created_at: r.user_created_at,
        }
        .try_into()?;
        let token = TokenRow {
            id: r.id,
            user_id: r.user_id,
            name: r.name,
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
            secret_hash: r.secret_hash,
        };
        Ok((token, user))
    })
    .transpose()
}

/// Notes a token's use (at most once a minute per token, to keep reads cheap).
pub async fn touch_token(pool: &PgPool, id: Uuid) -> Result<(), DbError> {
    sqlx::query!(
        "UPDATE console_tokens SET last_used_at = now()
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        id,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The tokens of a user, newest first.
pub async fn list_tokens(pool: &PgPool, user_id: Uuid) -> Result<Vec<TokenRow>, DbError> {
    Ok(sqlx::query_as!(
        TokenRow,
        "SELECT id, user_id, name, created_at, expires_at, last_used_at, revoked_at, secret_hash
         FROM console_tokens WHERE user_id = $1 ORDER BY created_at DESC",
        user_id,
    )
    .fetch_all(pool)
    .await?)
}

/// Revokes a token of `user_id` (or of anyone, with `None`). `false` if there was none to
/// revoke.
pub async fn revoke_token(pool: &PgPool, id: Uuid, user_id: Option<Uuid>) -> Result<bool, DbError> {
    let done = sqlx::query!(
        "UPDATE console_tokens SET revoked_at = now()
         WHERE id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR user_id = $2)",
        id,
        user_id,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A live browser session with its user.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub user: User,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert_session(
    pool: &PgPool,
    id_hash: &[u8],
    user_id: Uuid,
    csrf_token: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), DbError> {
    // Expired sessions go as new ones come.
    sqlx::query!("DELETE FROM console_sessions WHERE expires_at < now()")
        .execute(pool)
        .await?;
    sqlx::query!(
        "INSERT INTO console_sessions (id_hash, user_id, csrf_token, expires_at)
         VALUES ($1, $2, $3, $4)",
        id_hash,
        user_id,
        csrf_token,
        expires_at,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The unexpired session whose id hashes to `id_hash`.
pub async fn session(pool: &PgPool, id_hash: &[u8]) -> Result<Option<SessionRow>, DbError> {
    let row = sqlx::query!(
        "SELECT s.csrf_token, s.expires_at,
                u.id, u.username, u.role, u.tenant_id, u.disabled, u.created_at
         FROM console_sessions s JOIN console_users u ON u.id = s.user_id
         WHERE s.id_hash = $1 AND s.expires_at > now()",
        id_hash,
    )
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(SessionRow {
            user: UserDb {
                id: r.id,
                username: r.username,
                role: r.role,
                tenant_id: r.tenant_id,
                disabled: r.disabled,
                created_at: r.created_at,
            }
            .try_into()?,
            csrf_token: r.csrf_token,
            expires_at: r.expires_at,
        })
    })
    .transpose()
}

pub async fn delete_session(pool: &PgPool, id_hash: &[u8]) -> Result<(), DbError> {
    sqlx::query!("DELETE FROM console_sessions WHERE id_hash = $1", id_hash)
        .execute(pool)
        .await?;
    Ok(())
}

/// One audited action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub role: String,
    pub via: String,
    pub action: String,
    pub tenant_id: Option<Uuid>,
    pub target: Option<String>,
    pub outcome: String,
    pub detail: serde_json::Value,
}

/// What to write to the audit log.
#[derive(Debug, Clone)]
pub struct NewAudit<'a> {
    pub actor: &'a str,
    pub role: &'a str,
    /// `token`, `session` or `cli`.
    pub via: &'a str,
    pub action: &'a str,
    pub tenant_id: Option<TenantId>,
    pub target: Option<&'a str>,
    /// `done`, `refused` or `failed`.
    pub outcome: &'a str,
    pub detail: serde_json::Value,
}

pub async fn insert_audit(pool: &PgPool, a: &NewAudit<'_>) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar!(
        "INSERT INTO audit_log (actor, role, via, action, tenant_id, target, outcome, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        a.actor,
        a.role,
        a.via,
        a.action,
        a.tenant_id.map(|t| t.0),
        a.target,
        a.outcome,
        a.detail,
    )
    .fetch_one(pool)
    .await?)
}

/// Audit entries, newest first, of one tenant or all.
pub async fn list_audit(
    pool: &PgPool,
    tenant: Option<TenantId>,
    action: Option<&str>,
    limit: i64,
) -> Result<Vec<AuditEntry>, DbError> {
    Ok(sqlx::query_as!(
        AuditEntry,
        "SELECT id, at, actor, role, via, action, tenant_id, target, outcome, detail
         FROM audit_log
         WHERE ($1::uuid IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR action = $2)
         ORDER BY at DESC, id DESC LIMIT $3",
        tenant.map(|t| t.0),
        action,
        limit.clamp(1, 1000),
    )
    .fetch_all(pool)
    .await?)
}
