//! The JSON admin API (`/api/v1`). Every route authenticates ([`Principal`]), scopes what it
//! reads to what the principal may see (a vendor: its own tenant, anything else is 403), and
//! writes every state-changing action to the audit log. The OpenAPI document
//! ([`super::openapi`]) lists every route here; a test keeps the two equal.

use std::str::FromStr;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use canonical::{ConnectionId, TenantId};
use chrono::{DateTime, Utc};
use queue_schema::{JobId, JobKind, JobState};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{self, Principal};
use super::{ApiError, AppState, mask};
use crate::db::console::{self as store, Role};
use crate::db::mappings::{self as m, Direction};
use crate::db::{self, RunFilter};
use crate::support::{self, Replayed, Resolution, ResolveError};

/// Every API route as (method, path) in the router's syntax; the OpenAPI document must list
/// exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/me"),
    ("post", "/api/v1/session"),
    ("delete", "/api/v1/session"),
    ("get", "/api/v1/tokens"),
    ("post", "/api/v1/tokens"),
    ("delete", "/api/v1/tokens/{id}"),
    ("get", "/api/v1/fleet"),
    ("get", "/api/v1/tenants"),
    ("get", "/api/v1/tenants/{tenant}"),
    ("get", "/api/v1/jobs"),
    ("get", "/api/v1/jobs/{id}"),
    ("post", "/api/v1/jobs/{id}/replay"),
    ("post", "/api/v1/jobs/replay"),
    ("get", "/api/v1/orders/review"),
    ("get", "/api/v1/orders/{id}"),
    ("post", "/api/v1/orders/{id}/resolve"),
    ("get", "/api/v1/connections/{connection}/mappings"),
    (
        "get",
        "/api/v1/connections/{connection}/mappings/{direction}/{version}",
    ),
    (
        "get",
        "/api/v1/connections/{connection}/mappings/{direction}/{version}/diff",
    ),
    (
        "post",
        "/api/v1/connections/{connection}/mappings/{direction}/{version}/activate",
    ),
    (
        "post",
        "/api/v1/connections/{connection}/mappings/{direction}/rollback",
    ),
    ("get", "/api/v1/audit"),
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/session", post(login).delete(logout))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{id}", delete(revoke_token))
        .route("/api/v1/fleet", get(fleet))
        .route("/api/v1/tenants", get(tenants))
        .route("/api/v1/tenants/{tenant}", get(tenant))
        .route("/api/v1/jobs", get(jobs))
        .route("/api/v1/jobs/{id}", get(job))
        .route("/api/v1/jobs/{id}/replay", post(replay_one))
        .route("/api/v1/jobs/replay", post(replay_many))
        .route("/api/v1/orders/review", get(review_list))
        .route("/api/v1/orders/{id}", get(order))
        .route("/api/v1/orders/{id}/resolve", post(resolve))
        .route("/api/v1/connections/{connection}/mappings", get(mappings))
        .route(
            "/api/v1/connections/{connection}/mappings/{direction}/{version}",
            get(mapping_version),
        )
        .route(
            "/api/v1/connections/{connection}/mappings/{direction}/{version}/diff",
            get(mapping_diff),
        )
        .route(
            "/api/v1/connections/{connection}/mappings/{direction}/{version}/activate",
            post(mapping_activate),
        )
        .route(
            "/api/v1/connections/{connection}/mappings/{direction}/rollback",
            post(mapping_rollback),
        )
        .route("/api/v1/audit", get(audit))
}

type ApiResult = Result<Json<Value>, ApiError>;

/// A JSON body, refused with a 400/415/422 that names what was wrong.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) => Err(ApiError::new(
                e.status(),
                format!("bad request body: {}", e.body_text()),
            )),
        }
    }
}

/// Query parameters, refused with a 400 that names the bad parameter.
#[derive(Debug)]
pub struct Q<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Q<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Q(v)),
            Err(e) => Err(ApiError::bad_request(format!(
                "bad query: {}",
                e.body_text()
            ))),
        }
    }
}

/// A path segment parsed with its own type's rules, refused with a 400 naming it.
pub fn parse<T: FromStr>(what: &str, raw: &str) -> Result<T, ApiError>
where
    T::Err: std::fmt::Display,
{
    raw.parse()
        .map_err(|e| ApiError::bad_request(format!("invalid {what} {raw:?}: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Who am I, sign in and out, tokens

async fn me(who: Principal) -> ApiResult {
    Ok(Json(json!({
        "username": who.user.username,
        "role": who.user.role,
        "tenant": who.user.tenant_id,
        "via": who.via.as_str(),
        "csrf": who.csrf,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
}

async fn login(State(st): State<AppState>, Body(l): Body<Login>) -> Result<Response, ApiError> {
    let (id, csrf, user) = sign_in(&st, &l.username, &l.password).await?;
    let mut resp =
        Json(json!({"username": user.username, "role": user.role, "csrf": csrf})).into_response();
    set_cookie(&mut resp, &auth::session_cookie(&st, Some(&id)));
    Ok(resp)
}

/// Checks a username and password and starts a session: the cookie value, the CSRF token and
/// the user. One message for every failure, so it does not tell which usernames exist.
pub async fn sign_in(
    st: &AppState,
    username: &str,
    password: &str,
) -> Result<(String, String, store::User), ApiError> {
    let refused = || ApiError::unauthorized("wrong username or password");
    if username.is_empty() || username.len() > 64 || password.is_empty() || password.len() > 1024 {
        return Err(refused());
    }
    let found = store::user_for_login(&st.pool, username).await?;
    let (user, hash) = match found {
        Some((u, h)) if !u.disabled => (Some(u), h),
        _ => (None, None),
    };
    let ok = auth::verify_password(password.to_owned(), hash).await;
    let user = match (ok, user) {
        (true, Some(u)) => u,
        _ => return Err(refused()),
    };
    let (id, csrf) = auth::start_session(st, &user).await?;
    Ok((id, csrf, user))
}

pub fn set_cookie(resp: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

async fn logout(
    State(st): State<AppState>,
    // Signed in, and (for a session) with its CSRF token and from this site: a stranger
    // cannot sign anyone out.
    _who: Principal,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(id) = auth::cookie(&headers, auth::SESSION_COOKIE) {
        store::delete_session(&st.pool, &auth::sha256(id)).await?;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    set_cookie(&mut resp, &auth::session_cookie(&st, None));
    Ok(resp)
}

async fn list_tokens(State(st): State<AppState>, who: Principal) -> ApiResult {
    let tokens = store::list_tokens(&st.pool, who.user.id).await?;
    Ok(Json(json!({ "tokens": tokens })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    /// Days until the token expires (default: never).
    expires_in_days: Option<u32>,
}

async fn create_token(
    State(st): State<AppState>,
    who: Principal,
    Body(t): Body<NewToken>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let expires = match t.expires_in_days {
        Some(0) | Some(3651..) => {
            return Err(ApiError::bad_request(
                "expires_in_days must be 1 to 3650 (or absent: never)",
            ));
        }
        Some(d) => Some(Utc::now() + chrono::Duration::days(i64::from(d))),
        None => None,
    };
    let (id, token) = auth::create_token(&st.pool, &who.user, &t.name, expires).await?;
    st.audit(
        &who,
        "token.create",
        who.user.tenant_id,
        Some(&id.to_string()),
        "done",
        json!({"name": t.name}),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": id, "name": t.name, "token": token, "expires_at": expires,
                    "note": "shown once: store it now"}),
        ),
    ))
}

async fn revoke_token(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: uuid::Uuid = parse("token id", &id)?;
    // Support may revoke anyone's token; others only their own.
    let owner = (who.role() != Role::Support).then_some(who.user.id);
    if !store::revoke_token(&st.pool, id, owner).await? {
        return Err(ApiError::not_found(format!("no live token {id} of yours")));
    }
    st.audit(
        &who,
        "token.revoke",
        who.user.tenant_id,
        Some(&id.to_string()),
        "done",
        json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Fleet and tenants

/// The fleet: queue depth and oldest job per kind, workers alive, throughput, retries, dead.
pub async fn fleet_view(st: &AppState) -> Result<Value, ApiError> {
    let stats = st.queue.stats().await?;
    let since = Utc::now() - chrono::Duration::minutes(5);
    let counts = db::runs::outcome_counts_since(&st.pool, since).await?;
    let mut per_kind = serde_json::Map::new();
    for k in JobKind::ALL {
        let count = |o: db::RunOutcome| {
            counts
                .iter()
                .filter(|(kind, outcome, _)| kind == k.as_str() && outcome == o.as_str())
                .map(|(_, _, n)| n)
                .sum::<i64>()
        };
        per_kind.insert(
            k.as_str().to_owned(),
            json!({
                "succeeded_5m": count(db::RunOutcome::Succeeded),
                "retried_5m": count(db::RunOutcome::Retried),
                "died_5m": count(db::RunOutcome::Dead),
            }),
        );
    }
    Ok(json!({
        "queue": stats,
        "throughput_5m": per_kind,
        "dead_unreplayed": db::dead::count_unreplayed(&st.pool).await?,
        "at": Utc::now(),
    }))
}

async fn fleet(State(st): State<AppState>, who: Principal) -> ApiResult {
    who.require(&[Role::Operator, Role::Support], "the fleet view")?;
    Ok(Json(fleet_view(&st).await?))
}

async fn tenants(State(st): State<AppState>, who: Principal, Q(q): Q<TenantOnly>) -> ApiResult {
    let asked = match q.tenant.as_deref().filter(|s| !s.is_empty()) {
        Some(raw) => Some(visible_tenant(&st, &who, raw).await?.id),
        None => None,
    };
    let scope = who.tenant_scope(asked)?;
    let all = db::list_tenants(&st.pool).await?;
    let shown: Vec<_> = all
        .into_iter()
        .filter(|t| scope.is_none_or(|s| s == t.id))
        .collect();
    Ok(Json(json!({ "tenants": shown })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantOnly {
    tenant: Option<String>,
}

/// What a vendor is told about anything that is not its own, whether or not it exists.
pub const NOT_YOURS: &str = "not yours: a vendor sees only its own tenant";

/// Finds a tenant by id or slug and checks the principal may see it.
pub async fn visible_tenant(
    st: &AppState,
    who: &Principal,
    raw: &str,
) -> Result<db::Tenant, ApiError> {
    let t = db::find_tenant(&st.pool, raw).await?;
    match t {
        Some(t) => {
            who.see_tenant(t.id)?;
            Ok(t)
        }
        // A vendor learns nothing about other tenants, not even whether they exist.
        None if who.role() == Role::Vendor => Err(ApiError::forbidden(NOT_YOURS.to_owned())),
        None => Err(ApiError::not_found(format!(
            "no tenant {raw:?} (by id or slug)"
        ))),
    }
}

/// A tenant's page: connections (settings, never credentials), capability matrix of their
/// systems, each flow's freshness and last error, recent runs.
pub async fn tenant_view(st: &AppState, t: &db::Tenant) -> Result<Value, ApiError> {
    let conns = db::list_connections(&st.pool, Some(t.id)).await?;
    let fresh = db::flow_freshness(&st.pool, Some(t.id), false).await?;
    let runs = db::list_runs(
        &st.pool,
        &RunFilter {
            tenant: Some(t.id),
            limit: 50,
            ..Default::default()
        },
    )
    .await?;
    let matrix = crate::connect::capability_matrix();
    let connections: Vec<Value> = conns
        .iter()
        .map(|c| {
            let systems: Vec<&str> = [Some(c.erp.as_str()), Some(c.marketplace.as_str()), c.courier.map(|x| x.as_str())]
                .into_iter()
                .flatten()
                .collect();
            let caps: Vec<Value> = matrix
                .iter()
                .filter(|m| systems.contains(&m.system))
                .map(|m| {
                    json!({"system": m.system, "flows": m.flows.iter().map(|(f, s)| json!({"flow": format!("{f:?}"), "support": format!("{s:?}")})).collect::<Vec<_>>()})
                })
                .collect();
            json!({
                "id": c.id, "erp": c.erp.as_str(), "marketplace": c.marketplace.as_str(),
                "courier": c.courier.map(|x| x.as_str()), "enabled": c.enabled,
                "settings": c.settings, "capabilities": caps,
            })
        })
        .collect();
    let flows: Vec<Value> = fresh
        .iter()
        .map(|f| {
            json!({
                "connection": f.connection_id, "kind": f.kind.as_str(),
                "last_success": f.last_success_at,
                "freshness_seconds": f.last_success_at.map(|at| (Utc::now() - at).num_seconds()),
                "last_failure": f.last_failure_at,
                "last_error": f.last_error.as_deref().map(mask::text),
            })
        })
        .collect();
    let recent: Vec<Value> = runs.iter().map(run_json).collect();
    Ok(json!({"tenant": t, "connections": connections, "flows": flows, "recent_runs": recent}))
}

async fn tenant(State(st): State<AppState>, who: Principal, Path(raw): Path<String>) -> ApiResult {
    let t = visible_tenant(&st, &who, &raw).await?;
    Ok(Json(tenant_view(&st, &t).await?))
}

fn run_json(r: &db::RunRow) -> Value {
    json!({
        "job": r.job_id, "attempt": r.attempt, "kind": r.kind.as_str(), "tenant": r.tenant_id,
        "outcome": r.outcome.as_str(), "started_at": r.started_at, "duration_ms": r.duration_ms,
        "worker": r.worker, "mapping_version": r.mapping_version,
        "error": r.error.as_ref().map(|e| e.chain.iter().map(|c| mask::text(c)).collect::<Vec<_>>()),
    })
}

// ---------------------------------------------------------------------------------------------
// Jobs

/// Filters of the job lists (and of a replay by filter).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFilter {
    pub tenant: Option<String>,
    pub kind: Option<String>,
    /// `dead`, `succeeded` (history), or a live state (`ready`, `running`, `scheduled`,
    /// `retrying`); absent: the attempt history.
    pub state: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<i64>,
}

/// A filter made safe: the tenant resolved and checked, the kind and state parsed.
#[derive(Debug)]
pub struct CheckedFilter {
    pub tenant: Option<TenantId>,
    pub kind: Option<JobKind>,
    pub state: Option<JobState>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: i64,
}

pub async fn check_filter(
    st: &AppState,
    who: &Principal,
    f: &JobFilter,
) -> Result<CheckedFilter, ApiError> {
    let asked = match f.tenant.as_deref().filter(|s| !s.is_empty()) {
        Some(raw) => Some(visible_tenant(st, who, raw).await?.id),
        None => None,
    };
    let kind = match f.kind.as_deref().filter(|s| !s.is_empty()) {
        Some(k) => Some(parse::<JobKind>("kind", k)?),
        None => None,
    };
    let state = match f.state.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(parse::<JobState>("state", s)?),
        None => None,
    };
    let limit = f.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to 1000, not {limit}"
        )));
    }
    if let (Some(a), Some(b)) = (f.since, f.until)
        && a >= b
    {
        return Err(ApiError::bad_request("since must be before until"));
    }
    Ok(CheckedFilter {
        tenant: who.tenant_scope(asked)?,
        kind,
        state,
        since: f.since,
        until: f.until,
        limit,
    })
}

fn dead_json(d: &db::DeadJob) -> Value {
    json!({
        "id": d.job_id, "kind": d.kind.as_str(), "tenant": d.tenant_id, "connection": d.connection_id,
        "state": "dead", "attempts": d.attempts, "max_attempts": d.max_attempts,
        "enqueued_at": d.enqueued_at, "died_at": d.died_at, "replayed_as": d.replayed_as,
        "last_error": d.errors.last().map(|e| mask::text(&e.chain.join(": "))),
    })
}

/// The jobs matching a checked filter, as JSON rows.
pub async fn job_rows(st: &AppState, f: &CheckedFilter) -> Result<Vec<Value>, ApiError> {
    Ok(match f.state {
        Some(JobState::Dead) => db::list_dead(
            &st.pool,
            &db::DeadFilter {
                tenant: f.tenant,
                kind: f.kind,
                since: f.since,
                until: f.until,
                include_replayed: false,
                limit: f.limit,
            },
        )
        .await?
        .iter()
        .map(dead_json)
        .collect(),
        Some(JobState::Succeeded) | None => db::list_runs(
            &st.pool,
            &RunFilter {
                tenant: f.tenant,
                kind: f.kind,
                outcome: f.state.map(|_| db::RunOutcome::Succeeded),
                since: f.since,
                until: f.until,
                job: None,
                limit: f.limit,
            },
        )
        .await?
        .iter()
        .map(run_json)
        .collect(),
        Some(live) => {
            let ids = st
                .queue
                .ids_in_state(live, f.kind, f.limit as usize * 4)
                .await?;
            let mut out = Vec::new();
            for id in ids {
                let Some(rec) = st.queue.job(id).await? else {
                    continue;
                };
                if f.tenant.is_some_and(|t| t.to_string() != rec.tenant)
                    || (matches!(live, JobState::Scheduled | JobState::Retrying)
                        && rec.state != live.as_str())
                {
                    continue;
                }
                out.push(
                    serde_json::to_value(&rec).map_err(|e| ApiError::internal(e.to_string()))?,
                );
                if out.len() as i64 >= f.limit {
                    break;
                }
            }
            out
        }
    })
}

async fn jobs(State(st): State<AppState>, who: Principal, Q(f): Q<JobFilter>) -> ApiResult {
    let f = check_filter(&st, &who, &f).await?;
    Ok(Json(json!({ "jobs": job_rows(&st, &f).await? })))
}

/// One job: its record in Redis (if any), every attempt with its full error chain, the dead
/// record; the payload as stored (it holds ids, never personal data; error text is masked).
pub async fn job_view(st: &AppState, who: &Principal, id: JobId) -> Result<Value, ApiError> {
    let live = st.queue.job(id).await?;
    let dead = db::get_dead(&st.pool, id).await?;
    let runs = db::list_runs(
        &st.pool,
        &RunFilter {
            job: Some(id),
            limit: 1000,
            ..Default::default()
        },
    )
    .await?;
    let tenant = dead
        .as_ref()
        .map(|d| d.tenant_id)
        .or_else(|| runs.first().map(|r| r.tenant_id))
        .or_else(|| {
            live.as_ref()
                .and_then(|r| r.tenant.parse().ok().map(TenantId))
        });
    match tenant {
        Some(t) => who.see_tenant(t)?,
        None if who.role() == Role::Vendor => {
            return Err(ApiError::forbidden(NOT_YOURS.to_owned()));
        }
        None => {
            return Err(ApiError::not_found(format!(
                "no job {id} (in Redis or Postgres)"
            )));
        }
    }
    let attempts: Vec<Value> = runs.iter().rev().map(run_json).collect();
    Ok(json!({
        "id": id,
        "tenant": tenant,
        "live": live,
        "dead": dead.as_ref().map(|d| json!({
            "kind": d.kind.as_str(), "payload": d.payload, "attempts": d.attempts,
            "max_attempts": d.max_attempts, "died_at": d.died_at, "replayed_as": d.replayed_as,
            "errors": d.errors.iter().map(|e| json!({
                "attempt": e.attempt, "class": e.class, "at_ms": e.at_ms,
                "chain": e.chain.iter().map(|c| mask::text(c)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })),
        "attempts": attempts,
    }))
}

async fn job(State(st): State<AppState>, who: Principal, Path(id): Path<String>) -> ApiResult {
    let id: JobId = parse("job id", &id)?;
    Ok(Json(job_view(&st, &who, id).await?))
}

/// Replays one dead job the principal may see, auditing it.
pub async fn replay_job(st: &AppState, who: &Principal, id: JobId) -> Result<Replayed, ApiError> {
    let target = id.to_string();
    let dead = db::get_dead(&st.pool, id).await?;
    st.guard(
        who,
        "job.replay",
        dead.as_ref().map(|d| d.tenant_id).or(who.user.tenant_id),
        Some(&target),
        who.require(&[Role::Support], "replaying a job"),
    )
    .await?;
    let Some(d) = dead else {
        return Err(ApiError::not_found(format!(
            "job {id} is not a dead job (see the jobs list with state=dead)"
        )));
    };
    st.guard(
        who,
        "job.replay",
        Some(d.tenant_id),
        Some(&target),
        who.see_tenant(d.tenant_id),
    )
    .await?;
    let outcome = support::replay_dead(&st.pool, &st.queue, &d)
        .await
        .map_err(|e| ApiError::internal(format!("replay failed: {e}")))?;
    let (result, detail) = match &outcome {
        Replayed::Replayed { new_id, .. } => {
            ("done", json!({"new_id": new_id, "kind": d.kind.as_str()}))
        }
        Replayed::AlreadyReplayed { .. } => ("refused", json!({"reason": "already replayed"})),
        Replayed::Unreadable { reason, .. } => ("failed", json!({"reason": reason})),
    };
    st.audit(
        who,
        "job.replay",
        Some(d.tenant_id),
        Some(&id.to_string()),
        result,
        detail,
    )
    .await?;
    Ok(outcome)
}

async fn replay_one(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult {
    let id: JobId = parse("job id", &id)?;
    let out = replay_job(&st, &who, id).await?;
    match out {
        Replayed::AlreadyReplayed { job } => Err(ApiError::conflict(format!(
            "job {job} was already replayed"
        ))),
        other => Ok(Json(serde_json::to_value(other).unwrap_or(Value::Null))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayMany {
    #[serde(flatten)]
    filter: JobFilter,
    /// `true`: only show what would be replayed.
    #[serde(default)]
    dry_run: bool,
}

/// Replays (or, dry, previews) every unreplayed dead job matching a filter.
pub async fn replay_by_filter(
    st: &AppState,
    who: &Principal,
    filter: &JobFilter,
    dry_run: bool,
) -> Result<Value, ApiError> {
    st.guard(
        who,
        "job.replay_many",
        who.user.tenant_id,
        None,
        who.require(&[Role::Support], "replaying jobs"),
    )
    .await?;
    if filter.state.as_deref().is_some_and(|s| s != "dead") {
        return Err(ApiError::bad_request(
            "only dead jobs can be replayed: state must be dead or absent",
        ));
    }
    let f = check_filter(st, who, filter).await?;
    let dead = db::list_dead(
        &st.pool,
        &db::DeadFilter {
            tenant: f.tenant,
            kind: f.kind,
            since: f.since,
            until: f.until,
            include_replayed: false,
            limit: f.limit,
        },
    )
    .await?;
    if dry_run {
        return Ok(
            json!({"dry_run": true, "would_replay": dead.iter().map(dead_json).collect::<Vec<_>>()}),
        );
    }
    let mut results = Vec::new();
    for d in &dead {
        results.push(replay_job(st, who, d.job_id).await?);
    }
    st.audit(
        who,
        "job.replay_many",
        f.tenant,
        None,
        "done",
        json!({"filter": {"tenant": f.tenant, "kind": f.kind.map(|k| k.as_str()), "since": f.since, "until": f.until}, "count": results.len()}),
    )
    .await?;
    Ok(json!({"dry_run": false, "results": results}))
}

async fn replay_many(
    State(st): State<AppState>,
    who: Principal,
    Body(r): Body<ReplayMany>,
) -> ApiResult {
    Ok(Json(
        replay_by_filter(&st, &who, &r.filter, r.dry_run).await?,
    ))
}

// ---------------------------------------------------------------------------------------------
// Orders in review

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantQuery {
    tenant: Option<String>,
    limit: Option<i64>,
}

pub async fn review_rows(
    st: &AppState,
    who: &Principal,
    tenant: Option<&str>,
    limit: i64,
) -> Result<Vec<Value>, ApiError> {
    let asked = match tenant.filter(|s| !s.is_empty()) {
        Some(raw) => Some(visible_tenant(st, who, raw).await?.id),
        None => None,
    };
    let scope = who.tenant_scope(asked)?;
    let rows = db::review::orders_in_review(&st.pool, scope, limit).await?;
    Ok(rows.iter().map(review_json).collect())
}

fn review_json(r: &db::review::ReviewOrder) -> Value {
    json!({
        "id": r.id, "tenant": r.tenant_id, "connection": r.connection_id, "channel": r.channel,
        "channel_order_id": r.channel_order_id,
        "evidence": r.evidence.as_deref().map(mask::text),
        "parked_at": r.updated_at, "claimed_at": r.created_at,
        "order": r.order_json.as_ref().map(mask::order),
        "actions": ["mark_created", "retry_create", "cancel"],
    })
}

async fn review_list(
    State(st): State<AppState>,
    who: Principal,
    Q(q): Q<TenantQuery>,
) -> ApiResult {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to 1000, not {limit}"
        )));
    }
    Ok(Json(
        json!({ "orders": review_rows(&st, &who, q.tenant.as_deref(), limit).await? }),
    ))
}

/// One order row the principal may see, personal data masked.
pub async fn order_view(st: &AppState, who: &Principal, id: i64) -> Result<Value, ApiError> {
    let Some(o) = db::review::order_by_id(&st.pool, id).await? else {
        return Err(if who.role() == Role::Vendor {
            ApiError::forbidden(NOT_YOURS.to_owned())
        } else {
            ApiError::not_found(format!("no order {id}"))
        });
    };
    who.see_tenant(TenantId(o.tenant_id))?;
    Ok(json!({
        "id": o.id, "tenant": o.tenant_id, "connection": o.connection_id, "channel": o.channel,
        "channel_order_id": o.channel_order_id, "state": o.state,
        "erp_document_id": o.erp_document_id, "evidence": o.evidence.as_deref().map(mask::text),
        "order": o.order_json.as_ref().map(mask::order),
    }))
}

async fn order(State(st): State<AppState>, who: Principal, Path(id): Path<String>) -> ApiResult {
    let id: i64 = parse("order id", &id)?;
    Ok(Json(order_view(&st, &who, id).await?))
}

/// Applies a resolution to an order in review, auditing it whatever happens.
pub async fn resolve_order(
    st: &AppState,
    who: &Principal,
    id: i64,
    resolution: &Resolution,
) -> Result<&'static str, ApiError> {
    let action = format!("order.{}", resolution.name());
    let target = id.to_string();
    let found = db::review::order_by_id(&st.pool, id).await?;
    st.guard(
        who,
        &action,
        found
            .as_ref()
            .map(|o| TenantId(o.tenant_id))
            .or(who.user.tenant_id),
        Some(&target),
        who.require(&[Role::Support], "resolving an order"),
    )
    .await?;
    let Some(o) = found else {
        return Err(ApiError::not_found(format!("no order {id}")));
    };
    let tenant = TenantId(o.tenant_id);
    st.guard(
        who,
        &action,
        Some(tenant),
        Some(&target),
        who.see_tenant(tenant),
    )
    .await?;
    let vault = st.vault.clone();
    let pool = st.pool.clone();
    let result = support::resolve_order(
        &st.pool,
        &st.queue,
        id,
        resolution,
        &who.user.username,
        |conn, order_id, reason| async move {
            cancel_on_marketplace(&pool, vault.as_deref(), &conn, &order_id, &reason).await
        },
    )
    .await;
    let detail = json!({"resolution": resolution, "channel_order_id": o.channel_order_id});
    let target = id.to_string();
    match result {
        Ok(done) => {
            st.audit(
                who,
                &format!("order.{}", resolution.name()),
                Some(tenant),
                Some(&target),
                "done",
                detail,
            )
            .await?;
            Ok(done)
        }
        Err(e) => {
            let outcome = if matches!(e, ResolveError::Other(_)) {
                "failed"
            } else {
                "refused"
            };
            let mut detail = detail;
            detail["error"] = json!(e.to_string());
            st.audit(
                who,
                &format!("order.{}", resolution.name()),
                Some(tenant),
                Some(&target),
                outcome,
                detail,
            )
            .await?;
            Err(match e {
                ResolveError::UnknownOrder(_) => ApiError::not_found(e.to_string()),
                ResolveError::NotInReview { .. } => ApiError::conflict(e.to_string()),
                ResolveError::Invalid(_) => {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
                }
                ResolveError::Marketplace(_) => {
                    ApiError::new(StatusCode::BAD_GATEWAY, e.to_string())
                }
                ResolveError::Other(_) => {
                    tracing::error!(error = %e, "console: resolving an order failed");
                    ApiError::internal(
                        "resolving the order failed; the error is in the server's log",
                    )
                }
            })
        }
    }
}

/// Cancels an order on its marketplace with the connection's stored credentials.
async fn cancel_on_marketplace(
    pool: &sqlx::PgPool,
    vault: Option<&crate::vault::Vault>,
    conn: &db::Connection,
    order: &canonical::ChannelOrderId,
    reason: &str,
) -> Result<(), String> {
    let vault = vault.ok_or_else(|| {
        format!(
            "this console has no credential keys ({}), so it cannot call the marketplace",
            crate::vault::KEYS_ENV
        )
    })?;
    let creds = db::load_credentials(pool, vault, conn.id)
        .await
        .map_err(|e| format!("the connection's credentials cannot be read: {e}"))?;
    let settings = conn.settings.as_object().cloned().unwrap_or_default();
    let market = crate::connect::marketplace(conn.marketplace, &settings, creds.as_ref(), None)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "the no-op marketplace has no orders".to_owned())?;
    market
        .cancel_order(order, reason)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

async fn resolve(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Body(r): Body<Resolution>,
) -> ApiResult {
    let id: i64 = parse("order id", &id)?;
    let done = resolve_order(&st, &who, id, &r).await?;
    Ok(Json(json!({"order": id, "result": done})))
}

// ---------------------------------------------------------------------------------------------
// Mappings

/// A connection the principal may see.
pub async fn visible_connection(
    st: &AppState,
    who: &Principal,
    raw: &str,
) -> Result<db::Connection, ApiError> {
    let id: ConnectionId = parse("connection id", raw)?;
    let scope = who.tenant_scope(None)?;
    let conns = db::list_connections(&st.pool, scope).await?;
    match conns.into_iter().find(|c| c.id == id) {
        Some(c) => Ok(c),
        None if who.role() == Role::Vendor => Err(ApiError::forbidden(NOT_YOURS.to_owned())),
        None => Err(ApiError::not_found(format!("no connection {id}"))),
    }
}

fn version_json(v: &m::MappingVersion) -> Value {
    json!({"version": v.version, "direction": v.direction.as_str(), "author": v.author,
           "comment": v.comment, "created_at": v.created_at, "active": v.active})
}

pub async fn mappings_view(st: &AppState, conn: &db::Connection) -> Result<Value, ApiError> {
    let mut out = serde_json::Map::new();
    for d in [Direction::ErpToMarketplace, Direction::MarketplaceToErp] {
        let versions = m::list_mappings(&st.pool, conn.id, d).await?;
        let history = m::mapping_audit(&st.pool, conn.id, d).await?;
        out.insert(
            d.as_str().to_owned(),
            json!({
                "versions": versions.iter().map(version_json).collect::<Vec<_>>(),
                "history": history.iter().map(|h| json!({"action": h.action, "version": h.version,
                    "previous_version": h.previous_version, "actor": h.actor, "comment": h.comment, "at": h.at})).collect::<Vec<_>>(),
            }),
        );
    }
    Ok(json!({"connection": conn.id, "mappings": out}))
}

async fn mappings(State(st): State<AppState>, who: Principal, Path(c): Path<String>) -> ApiResult {
    let conn = visible_connection(&st, &who, &c).await?;
    Ok(Json(mappings_view(&st, &conn).await?))
}

async fn find_version(
    st: &AppState,
    conn: &db::Connection,
    d: &str,
    v: &str,
) -> Result<(Direction, m::MappingVersion), ApiError> {
    let d: Direction = d.parse()?;
    let v: i32 = parse("version", v)?;
    let found = m::get_mapping(&st.pool, conn.id, d, v)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "connection {} has no {d} mapping version {v}",
                conn.id
            ))
        })?;
    Ok((d, found))
}

async fn mapping_version(
    State(st): State<AppState>,
    who: Principal,
    Path((c, d, v)): Path<(String, String, String)>,
) -> ApiResult {
    let conn = visible_connection(&st, &who, &c).await?;
    let (_, found) = find_version(&st, &conn, &d, &v).await?;
    let mut out = version_json(&found);
    out["rules"] = found.rules;
    Ok(Json(out))
}

/// What activating `version` would change: per sample record, every field whose value differs
/// from what the active version gives. Samples: the connection's latest pulled order lines for
/// `marketplace_to_erp`; the ERP's catalog (first 20 articles) for `erp_to_marketplace`.
pub async fn diff_view(
    st: &AppState,
    conn: &db::Connection,
    d: Direction,
    version: &m::MappingVersion,
) -> Result<Value, ApiError> {
    let set: canonical::mapping::RuleSet = serde_json::from_value(version.rules.clone())
        .map_err(|e| ApiError::internal(format!("stored version does not parse: {e}")))?;
    let draft = set.compile().map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("version does not compile: {e:?}"),
        )
    })?;
    let cache = crate::mapping::MappingCache::new(st.pool.clone());
    let active = cache
        .active(conn.id, d)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let samples = match d {
        Direction::MarketplaceToErp => db::review::recent_order_payloads(&st.pool, conn.id, 20)
            .await?
            .into_iter()
            .filter_map(|j| serde_json::from_value::<canonical::Order>(j).ok())
            .flat_map(|o| {
                o.lines
                    .iter()
                    .map(|l| connectors::mapping::order_line_record(&o, l))
                    .collect::<Vec<_>>()
            })
            .take(20)
            .collect(),
        Direction::ErpToMarketplace => {
            crate::mapping::catalog_sample(&st.pool, st.vault.as_deref(), conn, 20)
                .await
                .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, format!("{e:#}")))?
        }
    };
    let rates = crate::rates::RatesCache::new(st.pool.clone(), Default::default());
    let feed = rates
        .feed()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let ctx = canonical::mapping::Context::on(Utc::now().date_naive()).with_feed(&feed);
    let p = crate::mapping::preview(
        &draft,
        active.as_ref().map(|a| a.rules.as_ref()),
        &samples,
        &ctx,
    );
    Ok(json!({
        "version": version.version,
        "against": active.as_ref().map(|a| a.version),
        "items": p.items,
        "diffs": p.diffs.iter().map(|f| json!({"item": f.item, "field": f.field, "active": f.active, "draft": f.draft})).collect::<Vec<_>>(),
        "errors": p.draft_errors.iter().map(|(i, e)| json!({"item": i, "error": e})).collect::<Vec<_>>(),
    }))
}

async fn mapping_diff(
    State(st): State<AppState>,
    who: Principal,
    Path((c, d, v)): Path<(String, String, String)>,
) -> ApiResult {
    let conn = visible_connection(&st, &who, &c).await?;
    let (d, found) = find_version(&st, &conn, &d, &v).await?;
    Ok(Json(diff_view(&st, &conn, d, &found).await?))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Comment {
    #[serde(default)]
    pub comment: String,
}

/// An optional JSON body `{"comment": "…"}` (empty: no comment).
fn optional_comment(body: &[u8]) -> Result<String, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(String::new());
    }
    serde_json::from_slice::<Comment>(body)
        .map(|c| c.comment)
        .map_err(|e| {
            ApiError::bad_request(format!(
                "bad request body: expected {{\"comment\": \"text\"}} (the field `comment`, a string): {e}"
            ))
        })
}

/// Activates a mapping version (support), audited.
pub async fn activate(
    st: &AppState,
    who: &Principal,
    conn: &db::Connection,
    d: Direction,
    version: i32,
    comment: &str,
) -> Result<Value, ApiError> {
    st.guard(
        who,
        "mapping.activate",
        Some(conn.tenant_id),
        Some(&conn.id.to_string()),
        who.require(&[Role::Support], "activating a mapping version"),
    )
    .await?;
    let comment = if comment.trim().is_empty() {
        "activated in the console"
    } else {
        comment
    };
    let res = m::activate_mapping(&st.pool, conn.id, d, version, &who.user.username, comment).await;
    let outcome = if res.is_ok() { "done" } else { "refused" };
    st.audit(
        who,
        "mapping.activate",
        Some(conn.tenant_id),
        Some(&conn.id.to_string()),
        outcome,
        json!({"direction": d.as_str(), "version": version, "comment": comment}),
    )
    .await?;
    let previous = res?;
    Ok(json!({"active": version, "previous": previous}))
}

/// Rolls a mapping back to the version active before (support), audited.
pub async fn rollback(
    st: &AppState,
    who: &Principal,
    conn: &db::Connection,
    d: Direction,
    comment: &str,
) -> Result<Value, ApiError> {
    st.guard(
        who,
        "mapping.rollback",
        Some(conn.tenant_id),
        Some(&conn.id.to_string()),
        who.require(&[Role::Support], "rolling a mapping back"),
    )
    .await?;
    let comment = if comment.trim().is_empty() {
        "rolled back in the console"
    } else {
        comment
    };
    let res = m::rollback_mapping(&st.pool, conn.id, d, &who.user.username, comment).await;
    let outcome = if res.is_ok() { "done" } else { "refused" };
    st.audit(
        who,
        "mapping.rollback",
        Some(conn.tenant_id),
        Some(&conn.id.to_string()),
        outcome,
        json!({"direction": d.as_str(), "comment": comment}),
    )
    .await?;
    Ok(json!({"active": res?}))
}

async fn mapping_activate(
    State(st): State<AppState>,
    who: Principal,
    Path((c, d, v)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> ApiResult {
    let conn = visible_connection(&st, &who, &c).await?;
    let d: Direction = d.parse()?;
    let v: i32 = parse("version", &v)?;
    let comment = optional_comment(&body)?;
    Ok(Json(activate(&st, &who, &conn, d, v, &comment).await?))
}

async fn mapping_rollback(
    State(st): State<AppState>,
    who: Principal,
    Path((c, d)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult {
    let conn = visible_connection(&st, &who, &c).await?;
    let d: Direction = d.parse()?;
    let comment = optional_comment(&body)?;
    Ok(Json(rollback(&st, &who, &conn, d, &comment).await?))
}

// ---------------------------------------------------------------------------------------------
// Audit log

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    tenant: Option<String>,
    action: Option<String>,
    limit: Option<i64>,
}

pub async fn audit_rows(
    st: &AppState,
    who: &Principal,
    tenant: Option<&str>,
    action: Option<&str>,
    limit: i64,
) -> Result<Vec<store::AuditEntry>, ApiError> {
    let asked = match tenant.filter(|s| !s.is_empty()) {
        Some(raw) => Some(visible_tenant(st, who, raw).await?.id),
        None => None,
    };
    let scope = who.tenant_scope(asked)?;
    Ok(store::list_audit(&st.pool, scope, action.filter(|s| !s.is_empty()), limit).await?)
}

async fn audit(State(st): State<AppState>, who: Principal, Q(q): Q<AuditQuery>) -> ApiResult {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to 1000, not {limit}"
        )));
    }
    let rows = audit_rows(&st, &who, q.tenant.as_deref(), q.action.as_deref(), limit).await?;
    Ok(Json(json!({ "entries": rows })))
}
