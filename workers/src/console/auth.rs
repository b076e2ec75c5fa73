//! Who is asking, and what they may see and do.
//!
//! - **API tokens** (`Authorization: Bearer mgz_<id>_<secret>`): the id finds the row, the
//!   secret is checked against its argon2id hash (a verified token is remembered for a few
//!   minutes by its SHA-256, so each request does not pay argon2's cost; revocation, expiry and
//!   a disabled user are checked on every request all the same).
//! - **Browser sessions**: a random id in a `Secure; HttpOnly; SameSite=Strict` cookie, stored
//!   as its SHA-256; every state-changing request of a session carries the session's CSRF token
//!   (the `csrf` form field, or the `X-CSRF-Token` header), compared in constant time, and its
//!   `Origin`, when sent, must be the console's own.
//! - **Roles**: operator (the fleet; reads every tenant, changes nothing), support (every
//!   tenant; replays, resolves, activates), vendor (one tenant, read-mostly). A vendor asking
//!   for another tenant's anything gets 403 and nothing else.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use canonical::TenantId;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use super::{ApiError, AppState};
use crate::db::console::{self as store, Role, User};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "megzo_session";
/// A browser session lasts this long from sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// A verified token is trusted without argon2 for this long.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(300);

/// How the request proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Token,
    Session,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Token => "token",
            Via::Session => "session",
        }
    }
}

/// The authenticated user of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub via: Via,
    /// The session's CSRF token (sessions only), for the forms a page renders.
    pub csrf: Option<String>,
}

impl Principal {
    pub fn role(&self) -> Role {
        self.user.role
    }

    /// Refuses unless the user has one of `roles`.
    pub fn require(&self, roles: &[Role], what: &str) -> Result<(), ApiError> {
        if roles.contains(&self.user.role) {
            Ok(())
        } else {
            let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::forbidden(format!(
                "{what} needs the {} role; you are {}",
                allowed.join(" or "),
                self.user.role
            )))
        }
    }

    /// Refuses a vendor asking about a tenant that is not its own.
    pub fn see_tenant(&self, tenant: TenantId) -> Result<(), ApiError> {
        match (self.user.role, self.user.tenant_id) {
            (Role::Vendor, Some(own)) if own == tenant => Ok(()),
            (Role::Vendor, _) => Err(ApiError::forbidden(super::api::NOT_YOURS.to_owned())),
            _ => Ok(()),
        }
    }

    /// The tenant a list is limited to: a vendor's own (asking for another is refused), or the
    /// filter given.
    pub fn tenant_scope(&self, asked: Option<TenantId>) -> Result<Option<TenantId>, ApiError> {
        match (self.user.role, self.user.tenant_id) {
            (Role::Vendor, Some(own)) => {
                if let Some(t) = asked {
                    self.see_tenant(t)?;
                }
                Ok(Some(own))
            }
            (Role::Vendor, None) => {
                Err(ApiError::forbidden("this vendor has no tenant".to_owned()))
            }
            _ => Ok(asked),
        }
    }

    /// Checks the CSRF token a session's form or script sent (tokens need none: they are not
    /// sent by the browser on its own).
    pub fn check_csrf(&self, sent: Option<&str>) -> Result<(), ApiError> {
        match (&self.via, &self.csrf) {
            (Via::Token, _) => Ok(()),
            (Via::Session, Some(expected)) => match sent {
                Some(s) if bool::from(s.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
                Some(_) => Err(ApiError::forbidden(
                    "the CSRF token does not match this session (reload the page)".to_owned(),
                )),
                None => Err(ApiError::forbidden(
                    "missing CSRF token: send the csrf form field or the X-CSRF-Token header"
                        .to_owned(),
                )),
            },
            (Via::Session, None) => Err(ApiError::forbidden("session without CSRF token".into())),
        }
    }
}

/// Hashes a password or token secret with argon2id and a random salt (PHC string).
pub fn hash_secret(secret: &str) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| ApiError::internal(e.to_string()))?;
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::internal(format!("hashing failed: {e}")))
}

/// Whether `secret` matches the argon2 PHC string `hash`.
pub fn verify_secret(secret: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(secret.as_bytes(), &h)
            .is_ok()
    })
}

/// Checks a password the way a sign-in does, off the async threads (argon2 is slow on
/// purpose). A missing user costs as much as a wrong password.
pub async fn verify_password(secret: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || match hash {
        Some(h) => verify_secret(&secret, &h),
        None => {
            // Same work either way, so timing does not tell which usernames exist.
            let _ = verify_secret(&secret, &DUMMY_HASH);
            false
        }
    })
    .await
    .unwrap_or(false)
}

/// An argon2id hash of a random secret nobody knows, checked when the username is unknown.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_secret(&random_secret()).unwrap_or_default());

/// A new API token for `user`: returned in full once, stored as id + hash.
pub async fn create_token(
    pool: &sqlx::PgPool,
    user: &User,
    name: &str,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<(Uuid, String), ApiError> {
    let id = Uuid::new_v4();
    let secret = random_secret();
    let hash = {
        let s = secret.clone();
        tokio::task::spawn_blocking(move || hash_secret(&s))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??
    };
    store::insert_token(pool, id, user.id, name, &hash, expires_at).await?;
    Ok((id, format!("mgz_{}_{secret}", id.simple())))
}

/// 32 random bytes, URL-safe base64 without padding.
pub fn random_secret() -> String {
    use base64::Engine as _;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

pub fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Tokens verified recently: token id → SHA-256 of the whole token, and when.
#[derive(Debug, Default)]
pub struct TokenCache(Mutex<HashMap<Uuid, ([u8; 32], Instant)>>);

impl TokenCache {
    fn fresh(&self, id: Uuid, digest: &[u8; 32]) -> bool {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&id)
            .is_some_and(|(d, at)| d == digest && at.elapsed() < TOKEN_CACHE_TTL)
    }

    fn remember(&self, id: Uuid, digest: [u8; 32]) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.clear();
        }
        map.insert(id, (digest, Instant::now()));
    }
}

/// Parses `mgz_<32 hex>_<secret>` into the token's id and secret.
fn parse_token(raw: &str) -> Option<(Uuid, &str)> {
    let rest = raw.strip_prefix("mgz_")?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 32 || secret.is_empty() {
        return None;
    }
    Some((Uuid::parse_str(id).ok()?, secret))
}

/// The user of a bearer token, or why not.
pub async fn authenticate_token(state: &AppState, raw: &str) -> Result<Principal, ApiError> {
    let bad = || {
        ApiError::unauthorized(
            "the API token is not valid (malformed, unknown, revoked or expired)",
        )
    };
    let (id, secret) = parse_token(raw).ok_or_else(bad)?;
    let (token, user) = store::token_with_user(&state.pool, id)
        .await?
        .ok_or_else(bad)?;
    if token.revoked_at.is_some()
        || token.expires_at.is_some_and(|e| e <= chrono::Utc::now())
        || user.disabled
    {
        return Err(bad());
    }
    let digest = sha256(raw);
    if !state.tokens.fresh(id, &digest) {
        let (s, h) = (secret.to_owned(), token.secret_hash.clone());
        let ok = tokio::task::spawn_blocking(move || verify_secret(&s, &h))
            .await
            .unwrap_or(false);
        if !ok {
            return Err(bad());
        }
        state.tokens.remember(id, digest);
    }
    store::touch_token(&state.pool, id).await?;
    Ok(Principal {
        user,
        via: Via::Token,
        csrf: None,
    })
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The user of a session cookie, if it names a live session.
pub async fn authenticate_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Principal>, ApiError> {
    let Some(id) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let Some(s) = store::session(&state.pool, &sha256(id)).await? else {
        return Ok(None);
    };
    if s.user.disabled {
        return Ok(None);
    }
    Ok(Some(Principal {
        user: s.user,
        via: Via::Session,
        csrf: Some(s.csrf_token),
    }))
}

/// Starts a session for `user`: the cookie's value (to set) and the session's CSRF token.
pub async fn start_session(state: &AppState, user: &User) -> Result<(String, String), ApiError> {
    let id = random_secret();
    let csrf = random_secret();
    let expires = chrono::Utc::now()
        + chrono::Duration::from_std(SESSION_TTL).unwrap_or(chrono::Duration::hours(12));
    store::insert_session(&state.pool, &sha256(&id), user.id, &csrf, expires).await?;
    Ok((id, csrf))
}

/// The `Set-Cookie` value of a session cookie (or of its removal, with `None`).
pub fn session_cookie(state: &AppState, id: Option<&str>) -> String {
    let secure = if state.insecure_cookies {
        ""
    } else {
        "; Secure"
    };
    match id {
        Some(id) => format!(
            "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            SESSION_TTL.as_secs()
        ),
        None => format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

/// A state-changing request carrying a session cookie must come from the console's own pages:
/// its `Origin` (when the browser sends one) must name the host it was sent to.
fn same_origin(parts: &Parts) -> bool {
    let Some(origin) = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, h)| h.trim_end_matches('/') == host)
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(auth) = parts.headers.get(header::AUTHORIZATION) {
            let raw = auth
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| {
                    ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
                })?;
            return authenticate_token(state, raw.trim()).await;
        }
        let principal = authenticate_session(state, &parts.headers)
            .await?
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "sign in first (a session cookie from /ui/login, or an API token in the Authorization header)",
                )
            })?;
        let unsafe_method = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if unsafe_method && !same_origin(parts) {
            return Err(ApiError::forbidden(
                "cross-origin request refused (the Origin header names another site)".into(),
            ));
        }
        // JSON endpoints used from a session carry the token in a header; forms check their
        // own field (see the UI handlers).
        if unsafe_method && parts.uri.path().starts_with("/api/") {
            let sent = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok());
            principal.check_csrf(sent)?;
        }
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_parses_only_in_its_own_format() {
        let id = Uuid::new_v4();
        let raw = format!("mgz_{}_secretpart", id.simple());
        assert_eq!(parse_token(&raw), Some((id, "secretpart")));
        for bad in [
            "",
            "mgz_",
            "mgz_abc_def",
            "xyz_00000000000000000000000000000000_s",
            &format!("mgz_{}_", id.simple()),
        ] {
            assert!(parse_token(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_secret_verifies_against_its_hash_only() {
        let h = hash_secret("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_secret("correct horse", &h));
        assert!(!verify_secret("correct horsf", &h));
        assert!(!verify_secret("correct horse", "not a hash"));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "a=1; megzo_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
