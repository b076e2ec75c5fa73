//! The HTTP machinery every connector shares: one `reqwest` client (rustls, timeouts, a sane
//! User-Agent), the [`CallGate`] before every call, transport failures and statuses classified
//! into [`ConnectorError`], `Retry-After` honoured, bounded in-process retries of safe calls.
//!
//! Each connector supplies what is its own: how to read its error bodies ([`ErrorBody`]), and
//! which calls are safe to repeat ([`Safety`]).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Once};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{ConnectorError, NOT_SENT, Result};
use crate::gate::{CallGate, Unlimited};

/// Whether repeating a call can do harm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Safety {
    /// Reads, and writes that set a value (stock, price): repeat freely.
    Idempotent,
    /// Creates and state transitions (create shipment, accept, fulfil): an ambiguous failure
    /// is [`ConnectorError::InDoubt`], repeated only when the API provably refused it.
    NonIdempotent,
}

/// Transport settings shared by every connector's config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Whole-request timeout in ms.
    pub timeout_ms: u64,
    /// TCP + TLS connect timeout in ms.
    pub connect_timeout_ms: u64,
    /// Retries of a retryable failure inside one job attempt (0 = let the queue retry).
    pub inline_retries: u32,
    /// Longest `Retry-After` waited inline; longer hints go back to the queue.
    pub max_inline_wait_ms: u64,
    /// First backoff step of inline retries (full jitter, doubling).
    pub backoff_base_ms: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            timeout_ms: 30_000,
            connect_timeout_ms: 5_000,
            inline_retries: 2,
            max_inline_wait_ms: 5_000,
            backoff_base_ms: 200,
        }
    }
}

impl HttpSettings {
    pub fn validate(&self, system: &'static str) -> Result<()> {
        let bad = |m: &str| Err(ConnectorError::config(system, m.to_owned()));
        if self.timeout_ms == 0 || self.timeout_ms > 300_000 {
            return bad("http.timeout_ms must be 1..=300000");
        }
        if self.connect_timeout_ms == 0 || self.connect_timeout_ms > self.timeout_ms {
            return bad("http.connect_timeout_ms must be 1..=timeout_ms");
        }
        if self.inline_retries > 10 {
            return bad("http.inline_retries must be at most 10");
        }
        Ok(())
    }
}

/// Reads an API's error body into its own message.
pub type ErrorBody = fn(&[u8]) -> Option<String>;

/// A received answer: status, headers, body, and the API's request id if it sent one.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// Parses the body as JSON whatever the content type says (CDON sends JSON as text/html);
    /// a body that does not parse is a failure naming the operation and the parse error.
    pub fn json<T: DeserializeOwned>(&self, system: &'static str, op: &'static str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ConnectorError::retryable(
                system,
                op,
                format!(
                    "unreadable answer (HTTP {}): {e}; body starts {:?}",
                    self.status.as_u16(),
                    snippet(&self.body)
                ),
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The first 200 characters of a body, for error messages.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    s
}

static CRYPTO: Once = Once::new();

/// The process's reqwest clients, one per tokio runtime and pair of timeouts (the only
/// client-level settings a connector's config can change). Building a client loads the
/// platform's TLS roots, which costs milliseconds of CPU; sharing one also shares its connection
/// pool, so keep-alive connections to an API outlive the connector client that opened them.
/// Per runtime, because a pooled connection is driven by a task of the runtime that opened it
/// and dies with it (a process has one; a test binary has one per test).
type ClientKey = (Option<tokio::runtime::Id>, u64, u64);
static CLIENTS: LazyLock<Mutex<HashMap<ClientKey, reqwest::Client>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Runtimes × timeout pairs kept before the map starts over (only test binaries get near it).
const SHARED_CLIENTS_MAX: usize = 64;

fn shared_client(settings: &HttpSettings) -> std::result::Result<reqwest::Client, reqwest::Error> {
    let runtime = tokio::runtime::Handle::try_current().ok().map(|h| h.id());
    let key = (runtime, settings.timeout_ms, settings.connect_timeout_ms);
    let mut clients = CLIENTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = clients.get(&key) {
        return Ok(c.clone());
    }
    if clients.len() >= SHARED_CLIENTS_MAX {
        clients.clear();
    }
    CRYPTO.call_once(|| {
        // Fails only when another provider was installed first, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(settings.timeout_ms))
        .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
        .user_agent(concat!(
            "megzo-integrator-vortex/",
            env!("CARGO_PKG_VERSION"),
            " (+https://megzo.example/vortex)"
        ))
        .build()?;
    clients.insert(key, client.clone());
    Ok(client)
}

/// One connector's HTTP client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Http {
    system: &'static str,
    client: reqwest::Client,
    gate: Arc<dyn CallGate>,
    settings: HttpSettings,
    error_body: ErrorBody,
}

impl Http {
    pub fn new(
        system: &'static str,
        settings: &HttpSettings,
        gate: Option<Arc<dyn CallGate>>,
        error_body: ErrorBody,
    ) -> Result<Self> {
        settings.validate(system)?;
        let client = shared_client(settings)
            .map_err(|e| ConnectorError::config(system, format!("HTTP client: {e}")))?;
        Ok(Self {
            system,
            client,
            gate: gate.unwrap_or_else(|| Arc::new(Unlimited)),
            settings: settings.clone(),
            error_body,
        })
    }

    pub fn system(&self) -> &'static str {
        self.system
    }

    /// A request builder on the shared client.
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends the request built by `build` (called again for each retry), returning any answer
    /// with a 2xx status and classifying everything else. Safe calls are retried inline up to
    /// `inline_retries` times (backoff with full jitter, or the API's `Retry-After` when it is
    /// short); an unsafe call is repeated only after a refusal that proves it did nothing.
    pub async fn send(
        &self,
        op: &'static str,
        safety: Safety,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Answer> {
        let s = &self.settings;
        let max_wait = Duration::from_millis(s.max_inline_wait_ms);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(s.backoff_base_ms))
            .with_max_delay(max_wait)
            .with_max_times(s.inline_retries as usize)
            .with_jitter();
        let once = || async {
            let r = self.send_once(op, &build).await;
            match (safety, r) {
                (Safety::NonIdempotent, Err(e)) => Err(e.for_unsafe_call()),
                (_, r) => r,
            }
        };
        once.retry(backoff)
            .when(|e: &ConnectorError| {
                e.is_retryable() && e.retry_after().is_none_or(|d| d <= max_wait)
            })
            .adjust(|e, dur| match e.retry_after() {
                Some(hint) => Some(hint),
                None => dur,
            })
            .notify(|e, dur| {
                tracing::debug!(system = self.system, op, error = %e, wait_ms = dur.as_millis() as u64, "retrying call")
            })
            .await
    }

    async fn send_once(
        &self,
        op: &'static str,
        build: &impl Fn() -> RequestBuilder,
    ) -> Result<Answer> {
        // A call the gate did not admit never left: not in doubt, whatever the call.
        let _permit = self.gate.acquire().await.map_err(not_sent)?;
        let system = self.system;
        let started = std::time::Instant::now();
        let resp = build()
            .send()
            .await
            .map_err(|e| transport(system, op, &e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| ConnectorError::retryable(system, op, format!("body cut off: {e}")))?;
        let request_id = headers
            .get("x-request-id")
            .or_else(|| headers.get("invocation-id"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::debug!(
            system,
            op,
            status = status.as_u16(),
            request_id,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "external call"
        );
        let answer = Answer {
            status,
            headers,
            body,
        };
        if status.is_success() {
            return Ok(answer);
        }
        let err = classify(system, op, &answer, self.error_body);
        if status == StatusCode::TOO_MANY_REQUESTS {
            let hint = err.retry_after().unwrap_or(Duration::from_secs(1));
            self.gate.penalize(hint).await;
        }
        Err(err)
    }
}

/// Marks a retryable failure as one that provably sent nothing (see [`NOT_SENT`]).
fn not_sent(e: ConnectorError) -> ConnectorError {
    match e {
        ConnectorError::Retryable {
            system,
            op,
            status,
            reason,
            retry_after,
        } if !reason.starts_with(NOT_SENT) => ConnectorError::Retryable {
            system,
            op,
            status,
            reason: format!("{NOT_SENT}{reason}"),
            retry_after,
        },
        other => other,
    }
}

/// A reqwest failure: not sent (connect), or sent and then lost (timeout, reset).
fn transport(system: &'static str, op: &'static str, e: &reqwest::Error) -> ConnectorError {
    // `without_url`: a URL may carry a query a log must not see.
    let shown = format!("{}", DisplayChain(e));
    if e.is_connect() {
        ConnectorError::retryable(system, op, format!("{NOT_SENT}{shown}"))
    } else if e.is_builder() {
        ConnectorError::config(system, format!("{op}: {shown}"))
    } else {
        ConnectorError::retryable(system, op, shown)
    }
}

struct DisplayChain<'a>(&'a reqwest::Error);

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.0.is_timeout() {
            "timed out"
        } else if self.0.is_connect() {
            "connection failed"
        } else if self.0.is_body() || self.0.is_decode() {
            "body failed"
        } else {
            "request failed"
        };
        write!(f, "{kind}")?;
        let mut source = std::error::Error::source(self.0);
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// Classifies a non-2xx answer: 429 and 5xx retryable with `Retry-After`, 401 auth, other 4xx
/// permanent with the API's own message.
pub fn classify(
    system: &'static str,
    op: &'static str,
    answer: &Answer,
    error_body: ErrorBody,
) -> ConnectorError {
    let status = answer.status;
    let message = error_body(&answer.body).unwrap_or_else(|| {
        let s = snippet(&answer.body);
        if s.trim().is_empty() {
            status.canonical_reason().unwrap_or("no body").to_owned()
        } else {
            s
        }
    });
    let code = Some(status.as_u16());
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        ConnectorError::Retryable {
            system,
            op,
            status: code,
            reason: message,
            retry_after: retry_after(&answer.headers, Utc::now()),
        }
    } else if status == StatusCode::UNAUTHORIZED {
        ConnectorError::Auth {
            system,
            op,
            status: code,
            message,
        }
    } else {
        ConnectorError::Permanent {
            system,
            op,
            status: code,
            message,
        }
    }
}

/// `Retry-After` as seconds or an HTTP-date, relative to `now`.
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod gate_tests {
    use super::*;

    #[test]
    fn a_call_the_gate_refused_is_not_in_doubt_even_when_unsafe() {
        let refused = ConnectorError::retryable(
            "lexoffice",
            "rate limit",
            "no slot within the maximum wait".to_owned(),
        );
        let e = not_sent(refused).for_unsafe_call();
        assert_eq!(e.class(), crate::error::ErrorClass::Retryable, "{e}");
        // A failure after sending stays in doubt.
        let lost = ConnectorError::retryable("lexoffice", "create", "timed out".to_owned());
        assert_eq!(
            lost.for_unsafe_call().class(),
            crate::error::ErrorClass::InDoubt
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        let now = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 22 Nov 2026 10:00:30 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    fn answer(status: u16, body: &'static str) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn statuses_classify_with_the_apis_own_message() {
        let msg: ErrorBody = |b| {
            serde_json::from_slice::<serde_json::Value>(b)
                .ok()?
                .get("description")?
                .as_str()
                .map(str::to_owned)
        };
        let e = classify(
            "cdon",
            "accept",
            &answer(
                403,
                r#"{"description":"Order row already has fulfilled as state"}"#,
            ),
            msg,
        );
        assert_eq!(e.class(), crate::ErrorClass::Permanent);
        assert!(e.to_string().contains("already has fulfilled"), "{e}");
        assert!(classify("cdon", "x", &answer(503, "<html>"), msg).is_retryable());
        assert_eq!(
            classify("cdon", "x", &answer(401, ""), msg).class(),
            crate::ErrorClass::Auth
        );
    }
}
