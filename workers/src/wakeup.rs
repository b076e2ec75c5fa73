//! Wake-up endpoints: a marketplace's push callback (or an ERP's signed webhook) turned into an
//! immediate, debounced job.
//!
//! Every connection can have one wake-up URL, `<base>/wakeup/<connection>/<key>`, served by the
//! HTTP server of every worker process (beside `/metrics`, see [`crate::process`]). Cel.ro's
//! callbacks carry no signature, so **the URL is the credential**: the key is 32 random bytes
//! (base64url), shown once by `megzo connections wakeup-url`, and only its SHA-256 is stored
//! (`wakeup_secrets`); a presented key is hashed and compared in constant time. Making a new URL
//! replaces the old one.
//!
//! What a call gets:
//! - `404` for an unknown connection, a connection without a URL, or a wrong key: the same
//!   answer for each, so a caller learns nothing about which connections exist;
//! - `413` for a body over [`MAX_BODY`], before anything is looked up;
//! - `409` when the connection cannot be woken: disabled (or its tenant inactive), or its
//!   marketplace has no callbacks (CDON, the no-op connector), naming why;
//! - `400` with the parser's message when the callback cannot be read;
//! - `503` when Postgres or Redis failed (the caller's retry is welcome);
//! - `202 {"enqueued": bool, "job": id, "kind": …}` otherwise. New or changed orders enqueue an
//!   `order_pull`, cancellations a `returns_reconcile`, both for the whole connection
//!   (`Scope::All`) with `Trigger::Webhook`.
//!
//! **The debounce is the queue's dedupe key** (`JobKind::dedupe_key`: kind, tenant, connection,
//! scope): while a pull of the connection waits to start, every further callback returns that
//! job (`"enqueued": false`), so a burst of 20 callbacks costs one pull; a callback that arrives
//! while the pull runs gets a new one, so no order is missed. A heartbeat's waiting pull counts
//! too.
//!
//! lexoffice (an ERP) signs its webhooks (`X-Lxo-Signature`, RSA-SHA512 over the body): a call
//! carrying that header, on a lexoffice connection with `webhook_public_key_pem` in its settings,
//! is verified and an `invoice.*` or `voucher.*` event enqueues an `invoice_attach` (a
//! `credit-note.*` event a `returns_reconcile`). The URL's key is required as well.
//!
//! Refused calls are logged at debug level with the connection and the reason, never the key.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use canonical::{ConnectionId, Erp, Marketplace};
use connectors::marketplace::{WakeKind, WakeUp};
use queue_schema::{JobId, JobKind, JobPayload, JobSpec, Scope, Trigger};
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;

use crate::db::{self, DbError, WakeTarget};
use crate::queue::{Enqueued, Queue};
use crate::telemetry;

/// The largest callback body read; a larger one is answered `413`.
pub const MAX_BODY: usize = 64 * 1024;

/// The path of a connection's wake-up URL, without the key.
pub const PATH_PREFIX: &str = "/wakeup";

/// A fresh wake-up key: 32 random bytes, base64url without padding (43 characters).
pub fn new_key() -> SecretString {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    raw.fill(0);
    SecretString::from(key)
}

/// The SHA-256 of a key, as stored.
pub fn key_sha256(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Whether `presented` is the key whose hash is `stored`, in constant time (the comparison of
/// the hashes does not stop at the first differing byte).
pub fn key_matches(presented: &str, stored: &[u8]) -> bool {
    let h = key_sha256(presented);
    stored.len() == h.len() && bool::from(h.as_slice().ct_eq(stored))
}

/// The full URL of a connection's wake-up endpoint under `base` (e.g. `https://hooks.example`).
pub fn wakeup_url(base: &str, connection: ConnectionId, key: &SecretString) -> String {
    format!(
        "{}{PATH_PREFIX}/{connection}/{}",
        base.trim_end_matches('/'),
        key.expose_secret()
    )
}

/// Makes (or replaces) the wake-up URL of a connection and returns it; the only time the key
/// exists outside the caller's memory is in the returned URL. Refuses an unknown connection.
pub async fn create_wakeup_url(
    pool: &PgPool,
    connection: ConnectionId,
    base: &str,
) -> Result<SecretString, DbError> {
    let key = new_key();
    db::set_wakeup_secret(pool, connection, &key_sha256(key.expose_secret())).await?;
    Ok(SecretString::from(wakeup_url(base, connection, &key)))
}

/// Why a marketplace cannot wake a connection, when it cannot.
pub fn no_callbacks(marketplace: Marketplace) -> Option<&'static str> {
    match marketplace {
        Marketplace::Celro => None,
        Marketplace::Cdon => Some(connectors::cdon::client::NO_WEBHOOKS),
        Marketplace::Noop => Some("the no-op marketplace sends no callbacks"),
    }
}

/// The job a wake-up asks for.
pub fn job_for(kind: WakeKind) -> JobKind {
    match kind {
        WakeKind::Cancelled => JobKind::ReturnsReconcile,
        WakeKind::NewOrders | WakeKind::Other => JobKind::OrderPull,
    }
}

/// The job a lexoffice event asks for; `None` for events no flow needs.
pub fn job_for_lexoffice(event_type: &str) -> Option<JobKind> {
    let resource = event_type.split('.').next().unwrap_or_default();
    match resource {
        "invoice" | "voucher" if !event_type.ends_with(".deleted") => Some(JobKind::InvoiceAttach),
        "credit-note" => Some(JobKind::ReturnsReconcile),
        _ => None,
    }
}

/// What the wake-up routes share.
#[derive(Debug, Clone)]
pub struct WakeState {
    pub queue: Queue,
    pub pool: PgPool,
}

/// `GET|POST /wakeup/{connection}/{key}`, with the body limit.
pub fn router(queue: Queue, pool: PgPool) -> Router {
    Router::new()
        .route(
            &format!("{PATH_PREFIX}/{{connection}}/{{key}}"),
            get(wake).post(wake),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(WakeState { queue, pool })
}

/// The answer to a call that enqueued (or found waiting) a job.
#[derive(Debug, Serialize)]
struct Accepted {
    enqueued: bool,
    job: Option<JobId>,
    kind: Option<JobKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ignored: Option<String>,
}

/// A refusal: status, the result label of `megzo_wakeups_total`, and the message.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    result: &'static str,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, result: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            result,
            message: message.into(),
        }
    }
    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "unauthorized", "no such wake-up URL")
    }
    fn unavailable(what: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "error",
            format!("{what} is unavailable; try again"),
        )
    }
}

async fn wake(
    State(s): State<WakeState>,
    Path((connection, key)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match handle(
        &s,
        &connection,
        &key,
        query.as_deref().unwrap_or(""),
        &headers,
        &body,
    )
    .await
    {
        Ok(a) => {
            telemetry::metrics::wakeup(if a.enqueued {
                "enqueued"
            } else if a.ignored.is_some() {
                "ignored"
            } else {
                "deduplicated"
            });
            (StatusCode::ACCEPTED, axum::Json(a)).into_response()
        }
        Err(r) => {
            tracing::debug!(connection = %connection.chars().take(40).collect::<String>(),
                status = r.status.as_u16(), reason = %r.message, "wake-up refused");
            telemetry::metrics::wakeup(r.result);
            (r.status, r.message + "\n").into_response()
        }
    }
}

async fn handle(
    s: &WakeState,
    connection: &str,
    key: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Accepted, Refusal> {
    let target = authenticate(&s.pool, connection, key).await?;
    if let Some(sig) = headers.get(connectors::lexoffice::webhook::SIGNATURE_HEADER) {
        return lexoffice(s, &target, sig.to_str().unwrap_or(""), body).await;
    }
    if !target.scheduled {
        return Err(disabled());
    }
    if let Some(why) = no_callbacks(target.marketplace) {
        return Err(Refusal::new(
            StatusCode::CONFLICT,
            "unsupported",
            format!(
                "connection {} cannot be woken up: {why}",
                target.connection_id
            ),
        ));
    }
    let wake = parse(target.marketplace, query, body)
        .map_err(|m| Refusal::new(StatusCode::BAD_REQUEST, "malformed", m))?;
    let job = job_for(wake.kind);
    tracing::info!(connection = %target.connection_id, tenant = %target.tenant_id,
        marketplace = %target.marketplace, wake = ?wake.kind, orders = wake.orders.len(),
        job_kind = job.as_str(), "wake-up");
    enqueue(&s.queue, &target, job).await
}

/// The connection named by the path, if `key` is its wake-up key; one [`Refusal::not_found`]
/// for every way it is not.
async fn authenticate(pool: &PgPool, connection: &str, key: &str) -> Result<WakeTarget, Refusal> {
    let Ok(id) = connection.parse::<uuid::Uuid>() else {
        return Err(Refusal::not_found());
    };
    let target = db::wakeup_target(pool, ConnectionId(id))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "wake-up: looking the connection up failed");
            Refusal::unavailable("the database")
        })?
        .ok_or_else(Refusal::not_found)?;
    match &target.secret_sha256 {
        Some(h) if key_matches(key, h) => Ok(target),
        _ => Err(Refusal::not_found()),
    }
}

fn disabled() -> Refusal {
    Refusal::new(
        StatusCode::CONFLICT,
        "disabled",
        "the connection is disabled or its tenant inactive: nothing is pulled",
    )
}

/// Reads a callback of `marketplace` without building its client (the parsers need no
/// credentials).
fn parse(marketplace: Marketplace, query: &str, body: &[u8]) -> Result<WakeUp, String> {
    match marketplace {
        Marketplace::Celro => connectors::celro::convert::parse_callback(query, body),
        other => Err(no_callbacks(other).unwrap_or("no callbacks").to_owned()),
    }
}

async fn lexoffice(
    s: &WakeState,
    target: &WakeTarget,
    signature: &str,
    body: &[u8],
) -> Result<Accepted, Refusal> {
    if target.erp != Erp::Lexoffice {
        return Err(Refusal::new(
            StatusCode::CONFLICT,
            "unsupported",
            format!(
                "a signed lexoffice webhook, but connection {}'s ERP is {}",
                target.connection_id, target.erp
            ),
        ));
    }
    let Some(pem) = &target.lexoffice_webhook_pem else {
        return Err(Refusal::new(
            StatusCode::CONFLICT,
            "unsupported",
            "lexoffice webhooks cannot be verified: the connection's settings have no \
             lexoffice.webhook_public_key_pem",
        ));
    };
    let event = connectors::lexoffice::webhook::verify_webhook(pem, signature, body).map_err(
        |e| match e.class() {
            connectors::ErrorClass::Config => {
                Refusal::new(StatusCode::CONFLICT, "unsupported", e.to_string())
            }
            _ => Refusal::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()),
        },
    )?;
    if !target.scheduled {
        return Err(disabled());
    }
    let Some(job) = job_for_lexoffice(&event.event_type) else {
        return Ok(Accepted {
            enqueued: false,
            job: None,
            kind: None,
            ignored: Some(format!("{} needs no flow", event.event_type)),
        });
    };
    tracing::info!(connection = %target.connection_id, tenant = %target.tenant_id,
        event = %event.event_type, job_kind = job.as_str(), "lexoffice webhook");
    enqueue(&s.queue, target, job).await
}

async fn enqueue(queue: &Queue, target: &WakeTarget, kind: JobKind) -> Result<Accepted, Refusal> {
    let spec = JobSpec::new(
        kind,
        JobPayload::v1(
            target.tenant_id,
            target.connection_id,
            Scope::All,
            Trigger::Webhook,
        ),
    );
    // A Redis that does not answer within a few seconds gets a 503: the caller retries, and a
    // heartbeat pulls anyway.
    let res = tokio::time::timeout(Duration::from_secs(5), queue.enqueue(&spec)).await;
    match res {
        Ok(Ok(Enqueued::New(id))) => Ok(Accepted {
            enqueued: true,
            job: Some(id),
            kind: Some(kind),
            ignored: None,
        }),
        Ok(Ok(Enqueued::Duplicate(id))) => Ok(Accepted {
            enqueued: false,
            job: Some(id),
            kind: Some(kind),
            ignored: None,
        }),
        Ok(Ok(Enqueued::AlreadyOnce)) => Ok(Accepted {
            enqueued: false,
            job: None,
            kind: Some(kind),
            ignored: None,
        }),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "wake-up: enqueue failed");
            Err(Refusal::unavailable("the queue"))
        }
        Err(_) => Err(Refusal::unavailable("the queue")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_base64url_and_match_only_themselves() {
        let (a, b) = (new_key(), new_key());
        assert_eq!(a.expose_secret().len(), 43);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(
            a.expose_secret()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        let h = key_sha256(a.expose_secret());
        assert!(key_matches(a.expose_secret(), &h));
        assert!(!key_matches(b.expose_secret(), &h));
        assert!(!key_matches("", &h));
        assert!(!key_matches(a.expose_secret(), &h[..31]));
        assert!(!format!("{a:?}").contains(a.expose_secret()));
    }

    #[test]
    fn urls_join_the_base_without_a_double_slash() {
        let c = ConnectionId::new();
        let k = SecretString::from("k3y");
        assert_eq!(
            wakeup_url("https://hooks.example/", c, &k),
            format!("https://hooks.example/wakeup/{c}/k3y")
        );
    }

    #[test]
    fn wake_kinds_and_lexoffice_events_map_to_jobs() {
        assert_eq!(job_for(WakeKind::NewOrders), JobKind::OrderPull);
        assert_eq!(job_for(WakeKind::Other), JobKind::OrderPull);
        assert_eq!(job_for(WakeKind::Cancelled), JobKind::ReturnsReconcile);
        assert_eq!(
            job_for_lexoffice("invoice.created"),
            Some(JobKind::InvoiceAttach)
        );
        assert_eq!(
            job_for_lexoffice("invoice.status.changed"),
            Some(JobKind::InvoiceAttach)
        );
        assert_eq!(
            job_for_lexoffice("voucher.created"),
            Some(JobKind::InvoiceAttach)
        );
        assert_eq!(job_for_lexoffice("invoice.deleted"), None);
        assert_eq!(
            job_for_lexoffice("credit-note.created"),
            Some(JobKind::ReturnsReconcile)
        );
        assert_eq!(job_for_lexoffice("token.revoked"), None);
        assert!(no_callbacks(Marketplace::Celro).is_none());
        assert!(no_callbacks(Marketplace::Cdon).is_some());
        assert!(no_callbacks(Marketplace::Noop).is_some());
    }
}
