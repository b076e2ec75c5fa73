//! `megzo serve`: the support console and vendor panel. A JSON admin API under `/api/v1` (its
//! OpenAPI document at `/api/openapi.json`) and server-rendered pages under `/ui` (plain HTML
//! forms, no front-end build), over the same Postgres and Redis as the fleet.
//!
//! - [`auth`]: API tokens (argon2id), browser sessions (cookie + CSRF), roles, tenant scoping.
//! - [`api`]: the JSON routes; [`openapi`]: their document; [`ui`]: the pages.
//! - [`mask`]: personal data as shown (masked).
//!
//! Every state-changing action is written to the audit log (`audit_log`), refused ones included.
//! Every malformed request gets a 4xx whose message names what was wrong; a handler never panics
//! a response away (a panic becomes a 500 through the catch-panic layer, and is logged).

pub mod api;
pub mod auth;
pub mod mask;
pub mod openapi;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::db::console::{NewAudit, insert_audit};
use crate::queue::Queue;
use crate::vault::Vault;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub pool: PgPool,
    pub queue: Queue,
    /// The credential keys: needed only to cancel an order on its marketplace.
    pub vault: Option<Arc<Vault>>,
    pub tokens: auth::TokenCache,
    /// Session cookies without `Secure` (only for a console served over plain HTTP on a host
    /// other than localhost; browsers accept `Secure` cookies from http://localhost).
    pub insecure_cookies: bool,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(pool: PgPool, queue: Queue, vault: Option<Arc<Vault>>) -> Self {
        Self(Arc::new(Inner {
            pool,
            queue,
            vault,
            tokens: auth::TokenCache::default(),
            insecure_cookies: false,
        }))
    }

    pub fn with_insecure_cookies(self, yes: bool) -> Self {
        Self(Arc::new(Inner {
            pool: self.pool.clone(),
            queue: self.queue.clone(),
            vault: self.vault.clone(),
            tokens: auth::TokenCache::default(),
            insecure_cookies: yes,
        }))
    }

    /// Writes one audit entry. An action whose audit entry cannot be written fails: support
    /// actions are never unaudited.
    pub async fn audit(
        &self,
        who: &auth::Principal,
        action: &str,
        tenant: Option<canonical::TenantId>,
        target: Option<&str>,
        outcome: &str,
        detail: serde_json::Value,
    ) -> Result<(), ApiError> {
        insert_audit(
            &self.pool,
            &NewAudit {
                actor: &who.user.username,
                role: who.user.role.as_str(),
                via: who.via.as_str(),
                action,
                tenant_id: tenant,
                target,
                outcome,
                detail,
            },
        )
        .await?;
        Ok(())
    }
}

impl AppState {
    /// Passes `check` through; a refusal (the role may not, another tenant's data) is written to
    /// the audit log first, so attempts to act beyond one's rights are on record.
    pub async fn guard(
        &self,
        who: &auth::Principal,
        action: &str,
        tenant: Option<canonical::TenantId>,
        target: Option<&str>,
        check: Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        if let Err(e) = check {
            self.audit(
                who,
                action,
                tenant,
                target,
                "refused",
                json!({"reason": e.message}),
            )
            .await?;
            return Err(e);
        }
        Ok(())
    }
}

/// A refusal or failure, as JSON `{"error": {"status": …, "message": …}}` with its status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, m)
    }
    pub fn forbidden(m: String) -> Self {
        Self::new(StatusCode::FORBIDDEN, m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, m)
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        use crate::db::DbError as D;
        match &e {
            D::Invalid { .. } | D::InvalidSlug { .. } => ApiError::bad_request(e.to_string()),
            D::UnknownTenant(_)
            | D::UnknownConnection { .. }
            | D::UnknownConnectionId(_)
            | D::UnknownOrder { .. }
            | D::UnknownDeadJob(_)
            | D::UnknownMappingVersion { .. } => ApiError::not_found(e.to_string()),
            D::Duplicate { .. } | D::NothingToRollBack { .. } | D::IllegalTransition { .. } => {
                ApiError::conflict(e.to_string())
            }
            _ => {
                tracing::error!(error = %e, "console: database error");
                ApiError::internal("the database failed; the error is in the server's log")
            }
        }
    }
}

impl From<crate::queue::QueueError> for ApiError {
    fn from(e: crate::queue::QueueError) -> Self {
        tracing::error!(error = %e, "console: queue error");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the queue (Redis) failed; the error is in the server's log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            Json(json!({"error": {"status": self.status.as_u16(), "message": self.message}}));
        (self.status, body).into_response()
    }
}

/// The console's routes: API, OpenAPI document, pages.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(ui::routes())
        .route(
            "/api/openapi.json",
            axum::routing::get(|| async { Json(openapi::document()) }),
        )
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::not_found(format!("no route {}", uri.path()))
        })
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                tracing::error!("console: a handler panicked");
                ApiError::internal("internal error; it is in the server's log").into_response()
            },
        ))
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
        .with_state(state)
}

/// Serves the console on `listener` until `cancel`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, "console listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
}
