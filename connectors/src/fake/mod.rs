//! What every fake server shares: starting on a port (0 in tests), fault injection, the
//! account limits the real API enforces (a rate, a connection cap) with a count of every
//! over-limit answer, and the `/_control` API common to all fakes.
//!
//! Each system's fake (`cdon::fake`, `celro::fake`, `dhl::fake`) is a stateful axum app of its
//! own contract, wrapped by [`wrap`], which adds the layers below and these routes:
//!
//! - `GET /_control/stats`: [`Stats`] (requests, over-limit answers, faults injected, peak
//!   concurrency).
//! - `GET|PUT /_control/faults`: the [`Faults`] in force (PUT replaces them).
//! - `POST /_control/limits`: replace the [`Limits`] (JSON).
//!
//! Control routes bypass faults and limits.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A buyer a fake marketplace puts on an order instead of its built-in one, so a test can follow
/// distinctive personal data through the product (the GDPR log scan). Where the marketplace's
/// API has no field for a value (CDON: e-mail), the fake leaves it out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Buyer {
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: String,
    pub street: String,
    pub city: String,
    pub postal_code: String,
}

/// Injected failures. Counters (`next_*`) hit the next N requests deterministically (tests);
/// rates hit a random share (the demo, soak runs). Rates are 0.0..=1.0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every answer.
    pub latency_ms: u64,
    /// The next N requests get 429 with `Retry-After: retry_after_secs`.
    pub next_429: u32,
    pub rate_429: f64,
    pub retry_after_secs: u64,
    /// The next N requests get a 5xx (`status_5xx`, default 503) before doing anything.
    pub next_5xx: u32,
    pub rate_5xx: f64,
    pub status_5xx: Option<u16>,
    /// The next N requests hang for `hang_ms` without doing anything, then get a 504.
    pub next_timeout: u32,
    pub rate_timeout: f64,
    /// The next N requests get a 200 with an HTML page instead of the API's body.
    pub next_garbage: u32,
    pub rate_garbage: f64,
    /// The next N **mutating** requests (not GET) are carried out, then the answer hangs for
    /// `hang_ms` (the client times out): the ambiguous create.
    pub next_commit_then_timeout: u32,
    /// A random share of mutating requests is carried out, then hangs (a timeout that did
    /// commit: what a real network gives as often as the timeout that did not).
    pub rate_commit_then_timeout: f64,
    /// How long a hang lasts (default 60 s: longer than any client timeout).
    pub hang_ms: Option<u64>,
}

/// The real API's per-account limits, enforced by the fake and counted when exceeded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// At most `count` requests per account in any sliding window of `per_ms`.
    pub rate: Option<RateRule>,
    /// At most this many requests of one account in flight at once.
    pub concurrency: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateRule {
    pub count: u32,
    pub per_ms: u64,
}

/// Counters since start (or the last reset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub requests: u64,
    /// Requests refused because the account was over its rate or connection limit.
    pub over_limit: u64,
    pub faults_injected: u64,
    /// Most requests of one account seen in flight at once.
    pub peak_concurrency: u64,
    /// Time from the first to the last request counted, in ms (0 with fewer than two).
    pub span_ms: u64,
}

/// How a system's fake answers a request over its limits (its own error body and status).
pub type OverLimitResponse = fn(LimitKind, Duration) -> Response;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Rate,
    Concurrency,
}

/// Names the account a request belongs to (its credentials' identity), `None` when it has none
/// (refused later by auth, not counted against a limit).
pub type AccountOf = fn(&Request) -> Option<String>;

#[derive(Debug, Default)]
struct Accounts {
    windows: HashMap<String, VecDeque<Instant>>,
    in_flight: HashMap<String, u64>,
}

/// The shared part of a fake: faults, limits, counters. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Harness(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    faults: Mutex<Faults>,
    limits: Mutex<Limits>,
    accounts: Mutex<Accounts>,
    requests: AtomicU64,
    over_limit: AtomicU64,
    faults_injected: AtomicU64,
    peak: AtomicU64,
    /// First and last counted request.
    seen: Mutex<Option<(Instant, Instant)>>,
    account_of: AccountOf,
    over_limit_response: OverLimitResponse,
}

impl Harness {
    pub fn new(account_of: AccountOf, over_limit_response: OverLimitResponse) -> Self {
        Self(Arc::new(Inner {
            faults: Mutex::default(),
            limits: Mutex::default(),
            accounts: Mutex::default(),
            requests: AtomicU64::new(0),
            over_limit: AtomicU64::new(0),
            faults_injected: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            seen: Mutex::new(None),
            account_of,
            over_limit_response,
        }))
    }

    pub fn set_faults(&self, f: Faults) {
        *self.0.faults.lock().unwrap() = f;
    }

    pub fn faults(&self) -> Faults {
        self.0.faults.lock().unwrap().clone()
    }

    /// Changes the faults in place.
    pub fn update_faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.0.faults.lock().unwrap());
    }

    pub fn set_limits(&self, l: Limits) {
        *self.0.limits.lock().unwrap() = l;
        *self.0.accounts.lock().unwrap() = Accounts::default();
    }

    pub fn stats(&self) -> Stats {
        Stats {
            requests: self.0.requests.load(Ordering::Relaxed),
            over_limit: self.0.over_limit.load(Ordering::Relaxed),
            faults_injected: self.0.faults_injected.load(Ordering::Relaxed),
            peak_concurrency: self.0.peak.load(Ordering::Relaxed),
            span_ms: self.0.seen.lock().unwrap().map_or(0, |(first, last)| {
                last.duration_since(first).as_millis() as u64
            }),
        }
    }

    pub fn reset_stats(&self) {
        for c in [
            &self.0.requests,
            &self.0.over_limit,
            &self.0.faults_injected,
            &self.0.peak,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        *self.0.seen.lock().unwrap() = None;
    }

    /// Picks the fault for the next request, consuming a counter if one applies.
    fn draw(&self, mutating: bool) -> (Option<Fault>, Duration, u64) {
        let mut f = self.0.faults.lock().unwrap();
        let latency = Duration::from_millis(f.latency_ms);
        let hang = f.hang_ms.unwrap_or(60_000);
        let roll = |rate: f64| rate > 0.0 && rand::random::<f64>() < rate;
        let fault = if take(&mut f.next_429) || roll(f.rate_429) {
            Some(Fault::TooMany(f.retry_after_secs))
        } else if take(&mut f.next_5xx) || roll(f.rate_5xx) {
            Some(Fault::Server(f.status_5xx.unwrap_or(503)))
        } else if take(&mut f.next_timeout) || roll(f.rate_timeout) {
            Some(Fault::Timeout)
        } else if take(&mut f.next_garbage) || roll(f.rate_garbage) {
            Some(Fault::Garbage)
        } else if mutating
            && (take(&mut f.next_commit_then_timeout) || roll(f.rate_commit_then_timeout))
        {
            Some(Fault::CommitThenTimeout)
        } else {
            None
        };
        (fault, latency, hang)
    }

    /// Admits a request of `account` against the limits, or says which one it breaks.
    fn admit(&self, account: &str) -> Result<(), (LimitKind, Duration)> {
        let limits = self.0.limits.lock().unwrap().clone();
        let mut acc = self.0.accounts.lock().unwrap();
        if let Some(max) = limits.concurrency {
            let n = acc.in_flight.get(account).copied().unwrap_or(0);
            if n >= u64::from(max) {
                return Err((LimitKind::Concurrency, Duration::from_secs(1)));
            }
        }
        if let Some(rule) = limits.rate {
            let per = Duration::from_millis(rule.per_ms);
            let now = Instant::now();
            let w = acc.windows.entry(account.to_owned()).or_default();
            while w.front().is_some_and(|t| now.duration_since(*t) >= per) {
                w.pop_front();
            }
            if w.len() >= rule.count as usize {
                let wait = per.saturating_sub(now.duration_since(w[0]));
                return Err((LimitKind::Rate, wait.max(Duration::from_millis(1))));
            }
            w.push_back(now);
        }
        let n = acc.in_flight.entry(account.to_owned()).or_insert(0);
        *n += 1;
        self.0.peak.fetch_max(*n, Ordering::Relaxed);
        Ok(())
    }

    fn leave(&self, account: &str) {
        if let Some(n) = self.0.accounts.lock().unwrap().in_flight.get_mut(account) {
            *n = n.saturating_sub(1);
        }
    }
}

fn take(n: &mut u32) -> bool {
    if *n > 0 {
        *n -= 1;
        true
    } else {
        false
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    TooMany(u64),
    Server(u16),
    Timeout,
    Garbage,
    CommitThenTimeout,
}

/// Leaves an account's in-flight count when the request ends, however it ends.
struct InFlight(Harness, String);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.leave(&self.1);
    }
}

async fn harness_layer(State(h): State<Harness>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/_control") {
        return next.run(req).await;
    }
    h.0.requests.fetch_add(1, Ordering::Relaxed);
    {
        let now = Instant::now();
        let mut seen = h.0.seen.lock().unwrap();
        *seen = Some(seen.map_or((now, now), |(first, _)| (first, now)));
    }
    let account = (h.0.account_of)(&req);
    let _in_flight = match &account {
        Some(a) => match h.admit(a) {
            Ok(()) => Some(InFlight(h.clone(), a.clone())),
            Err((kind, wait)) => {
                h.0.over_limit.fetch_add(1, Ordering::Relaxed);
                return (h.0.over_limit_response)(kind, wait);
            }
        },
        None => None,
    };
    let (fault, latency, hang) = h.draw(req.method() != Method::GET);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if fault.is_some() {
        h.0.faults_injected.fetch_add(1, Ordering::Relaxed);
    }
    match fault {
        None => next.run(req).await,
        Some(Fault::TooMany(secs)) => {
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                "{\"description\":\"Too Many Requests\"}",
            )
                .into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            r
        }
        Some(Fault::Server(code)) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            "<html><body><h1>Service Unavailable</h1></body></html>",
        )
            .into_response(),
        Some(Fault::Timeout) => {
            tokio::time::sleep(Duration::from_millis(hang)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Some(Fault::Garbage) => {
            let _ = next.run(req).await;
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "text/html")
                .body(Body::from(
                    "<html><body>Attention Required! | Cloudflare</body></html>",
                ))
                .unwrap_or_default()
        }
        Some(Fault::CommitThenTimeout) => {
            let committed = next.run(req).await;
            tokio::time::sleep(Duration::from_millis(hang)).await;
            committed
        }
    }
}

async fn get_stats(State(h): State<Harness>) -> axum::Json<Stats> {
    axum::Json(h.stats())
}

async fn get_faults(State(h): State<Harness>) -> axum::Json<Faults> {
    axum::Json(h.faults())
}

async fn put_faults(State(h): State<Harness>, axum::Json(f): axum::Json<Faults>) -> StatusCode {
    h.set_faults(f);
    StatusCode::NO_CONTENT
}

async fn post_limits(State(h): State<Harness>, axum::Json(l): axum::Json<Limits>) -> StatusCode {
    h.set_limits(l);
    StatusCode::NO_CONTENT
}

/// Adds the harness layer and the common control routes to a fake's router.
pub fn wrap(app: Router, h: &Harness) -> Router {
    let control = Router::new()
        .route("/_control/stats", get(get_stats))
        .route("/_control/faults", get(get_faults).put(put_faults))
        .route("/_control/limits", axum::routing::post(post_limits))
        .with_state(h.clone());
    app.merge(control)
        .layer(middleware::from_fn_with_state(h.clone(), harness_layer))
}

/// A fake listening on loopback.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Running {
    /// `http://127.0.0.1:<port>`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `app` on `addr` (`127.0.0.1:0` for a free port).
pub async fn serve(app: Router, addr: &str) -> std::io::Result<Running> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "fake server stopped");
        }
    });
    Ok(Running { addr, task })
}

/// The account of a request authenticated with HTTP Basic: its user name.
pub fn basic_user(req: &Request) -> Option<String> {
    use base64::Engine as _;
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = v.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let text = String::from_utf8(raw).ok()?;
    Some(
        text.split_once(':')
            .map_or(text.clone(), |(u, _)| u.to_owned()),
    )
}
