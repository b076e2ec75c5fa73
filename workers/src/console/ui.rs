//! The console's pages, rendered on the server (maud escapes every value), plain HTML forms
//! with the session's CSRF token; no script is needed. The pages show what the API returns,
//! through the same functions, so the two cannot disagree on who may see what.

use axum::Router;
use axum::extract::{Form, FromRequestParts, Path, Query, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use queue_schema::JobId;
use serde::Deserialize;
use serde_json::Value;

use super::api::{self, JobFilter};
use super::auth::{self, Principal};
use super::{ApiError, AppState};
use crate::db::console::Role;
use crate::db::mappings::Direction;
use crate::support::Resolution;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/", get(home))
        .route("/ui/tenants", get(tenants))
        .route("/ui/tenants/{tenant}", get(tenant))
        .route("/ui/jobs", get(jobs))
        .route("/ui/jobs/replay", post(replay_many))
        .route("/ui/jobs/{id}", get(job))
        .route("/ui/jobs/{id}/replay", post(replay_one))
        .route("/ui/orders", get(orders))
        .route("/ui/orders/{id}/resolve", post(resolve))
        .route("/ui/connections/{connection}/mappings", get(mappings))
        .route(
            "/ui/connections/{connection}/mappings/{direction}/{version}/diff",
            get(diff),
        )
        .route(
            "/ui/connections/{connection}/mappings/{direction}/{version}/activate",
            post(activate),
        )
        .route(
            "/ui/connections/{connection}/mappings/{direction}/rollback",
            post(rollback),
        )
        .route("/ui/audit", get(audit))
}

/// A signed-in browser user; anyone else is sent to the sign-in page.
#[derive(Debug)]
pub struct UiUser(pub Principal);

impl FromRequestParts<AppState> for UiUser {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match auth::authenticate_session(state, &parts.headers).await {
            Ok(Some(p)) => Ok(UiUser(p)),
            Ok(None) => Err(Redirect::to("/ui/login").into_response()),
            Err(e) => Err(error_page(None, &e)),
        }
    }
}

/// An error as a page, with its status.
#[derive(Debug)]
pub struct UiError(Option<Principal>, ApiError);

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        UiError(None, e)
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        error_page(self.0.as_ref(), &self.1)
    }
}

fn error_page(who: Option<&Principal>, e: &ApiError) -> Response {
    let body = page(
        who,
        "Error",
        html! {
            p.error role="alert" { strong { (e.status.as_u16()) " " (e.status.canonical_reason().unwrap_or("")) } ": " (e.message) }
            p { a href="/ui/" { "Back to the console" } }
        },
    );
    (e.status, body).into_response()
}

type UiResult = Result<Markup, UiError>;

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1c2430}\
header{background:#1c2430;color:#fff;padding:.6em 1.2em;display:flex;gap:1.2em;align-items:center}\
header a{color:#cfe3ff;text-decoration:none}header form{margin-left:auto}main{padding:1em 1.4em}\
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #d5dbe3;padding:.3em .6em;text-align:left;vertical-align:top}\
th{background:#f2f5f8}.error{color:#a40000}.ok{color:#116611}pre{background:#f6f8fa;padding:.6em;overflow:auto;max-width:100%}\
form.inline{display:inline}input,select,button{font:inherit}";

fn page(who: Option<&Principal>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · MEGZO console" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "MEGZO console" }
                    @if let Some(p) = who {
                        @if p.role() != Role::Vendor { a href="/ui/" { "Fleet" } }
                        a href="/ui/tenants" { "Tenants" }
                        a href="/ui/jobs" { "Jobs" }
                        a href="/ui/jobs?state=dead" { "Dead jobs" }
                        a href="/ui/orders" { "Orders in review" }
                        a href="/ui/audit" { "Audit log" }
                        form.inline method="post" action="/ui/logout" {
                            (csrf(p))
                            span #whoami { (p.user.username) " (" (p.role()) ")" } " "
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

fn csrf(p: &Principal) -> Markup {
    html! { input type="hidden" name="csrf" value=(p.csrf.clone().unwrap_or_default()); }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "—".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A redirect after a successful form, with a message shown on the next page.
fn done(to: &str, msg: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    let encoded: String = form_urlencoded(msg);
    Redirect::to(&format!("{to}{sep}flash={encoded}")).into_response()
}

fn form_urlencoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Deserialize, Default)]
struct Flash {
    flash: Option<String>,
}

fn flash(f: &Option<String>) -> Markup {
    html! { @if let Some(m) = f { p.ok #flash role="status" { (m) } } }
}

// ---------------------------------------------------------------------------------------------
// Sign in and out

async fn login_page() -> Markup {
    login_form(None)
}

fn login_form(error: Option<&str>) -> Markup {
    page(
        None,
        "Sign in",
        html! {
            @if let Some(e) = error { p.error #login-error role="alert" { (e) } }
            form method="post" action="/ui/login" {
                p { label { "Username " input #username name="username" autocomplete="username" required; } }
                p { label { "Password " input #password name="password" type="password" autocomplete="current-password" required; } }
                button #sign-in type="submit" { "Sign in" }
            }
        },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login(State(st): State<AppState>, Form(f): Form<LoginForm>) -> Response {
    match api::sign_in(&st, &f.username, &f.password).await {
        Ok((id, _, _)) => {
            let mut resp = Redirect::to("/ui/").into_response();
            api::set_cookie(&mut resp, &auth::session_cookie(&st, Some(&id)));
            resp
        }
        Err(e) => (e.status, login_form(Some(&e.message))).into_response(),
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: Option<String>,
}

async fn logout(
    State(st): State<AppState>,
    UiUser(who): UiUser,
    headers: HeaderMap,
    Form(f): Form<CsrfOnly>,
) -> Result<Response, UiError> {
    who.check_csrf(f.csrf.as_deref())?;
    if let Some(id) = auth::cookie(&headers, auth::SESSION_COOKIE) {
        crate::db::console::delete_session(&st.pool, &auth::sha256(id))
            .await
            .map_err(ApiError::from)?;
    }
    let mut resp = Redirect::to("/ui/login").into_response();
    api::set_cookie(&mut resp, &auth::session_cookie(&st, None));
    Ok(resp)
}

// ---------------------------------------------------------------------------------------------
// Fleet and tenants

async fn home(State(st): State<AppState>, UiUser(who): UiUser) -> Result<Response, UiError> {
    if who.role() == Role::Vendor {
        let t = who
            .user
            .tenant_id
            .map(|t| t.to_string())
            .unwrap_or_default();
        return Ok(Redirect::to(&format!("/ui/tenants/{t}")).into_response());
    }
    let f = api::fleet_view(&st)
        .await
        .map_err(|e| UiError(Some(who.clone()), e))?;
    let q = &f["queue"];
    Ok(page(
        Some(&who),
        "Fleet",
        html! {
            p { "Workers alive: " strong #workers-alive { (s(&q["workers_alive"])) }
                " · running: " strong #running { (s(&q["running"])) }
                " · delayed (scheduled and retrying): " strong #delayed { (s(&q["delayed"])) }
                " · dead in Redis: " strong { (s(&q["dead"])) }
                " · dead jobs not replayed: " strong #dead-count { (s(&f["dead_unreplayed"])) } }
            p { "Since the start: " (s(&q["enqueued_total"])) " enqueued, " (s(&q["succeeded_total"])) " succeeded, "
                (s(&q["retried_total"])) " retried, " (s(&q["dead_total"])) " dead, " (s(&q["rescued_total"])) " rescued from lost workers" }
            table #fleet {
                tr { th { "kind" } th { "ready" } th { "oldest ready job" } th { "succeeded 5 min" } th { "retried 5 min" } th { "died 5 min" } }
                @for k in q["kinds"].as_array().cloned().unwrap_or_default() {
                    @let name = s(&k["kind"]);
                    @let t = &f["throughput_5m"][name.as_str()];
                    tr {
                        td { (name) } td { (s(&k["ready"])) }
                        td { (k["oldest_age_ms"].as_u64().map_or("—".to_owned(), |ms| format!("{:.1} s", ms as f64 / 1000.0))) }
                        td { (s(&t["succeeded_5m"])) } td { (s(&t["retried_5m"])) } td { (s(&t["died_5m"])) }
                    }
                }
            }
            details { summary { "Raw" } pre { (serde_json::to_string_pretty(&f).unwrap_or_default()) } }
        },
    )
    .into_response())
}

async fn tenants(State(st): State<AppState>, UiUser(who): UiUser) -> UiResult {
    let scope = who.tenant_scope(None)?;
    let all = crate::db::list_tenants(&st.pool)
        .await
        .map_err(ApiError::from)?;
    Ok(page(
        Some(&who),
        "Tenants",
        html! {
            table #tenants {
                tr { th { "slug" } th { "name" } th { "active" } }
                @for t in all.iter().filter(|t| scope.is_none_or(|s| s == t.id)) {
                    tr { td { a href={"/ui/tenants/" (t.id)} { (t.slug) } } td { (t.name) } td { (t.active) } }
                }
            }
        },
    ))
}

async fn tenant(
    State(st): State<AppState>,
    UiUser(who): UiUser,
    Path(raw): Path<String>,
) -> UiResult {
    let wrap = |e| UiError(Some(who.clone()), e);
    let t = api::visible_tenant(&st, &who, &raw).await.map_err(wrap)?;
    let v = api::tenant_view(&st, &t).await.map_err(wrap)?;
    Ok(page(
        Some(&who),
        &format!("Tenant {}", t.slug),
        html! {
            p #tenant-name { (t.name) " · " code { (t.id) } }
            h2 { "Connections" }
            @for c in v["connections"].as_array().cloned().unwrap_or_default() {
                h3 { (s(&c["erp"])) " ⇄ " (s(&c["marketplace"])) @if !c["courier"].is_null() { " + " (s(&c["courier"])) } }
                p { "enabled: " (s(&c["enabled"])) " · " a href={"/ui/connections/" (s(&c["id"])) "/mappings"} { "mappings" } " · " a href={"/ui/jobs?tenant=" (t.id)} { "jobs" } }
                table.caps {
                    tr { th { "system" } th { "flows" } }
                    @for cap in c["capabilities"].as_array().cloned().unwrap_or_default() {
                        tr { td { (s(&cap["system"])) } td {
                            @for f in cap["flows"].as_array().cloned().unwrap_or_default() {
                                (s(&f["flow"])) ": " (s(&f["support"])) br;
                            }
                        } }
                    }
                }
            }
            h2 { "Flows" }
            table #flows {
                tr { th { "connection" } th { "flow" } th { "last success" } th { "freshness (s)" } th { "last failure" } th { "last error" } }
                @for f in v["flows"].as_array().cloned().unwrap_or_default() {
                    tr { td { code { (s(&f["connection"])) } } td { (s(&f["kind"])) } td { (s(&f["last_success"])) } td { (s(&f["freshness_seconds"])) } td { (s(&f["last_failure"])) } td { (s(&f["last_error"])) } }
                }
            }
            h2 { "Recent runs" }
            (runs_table(&v["recent_runs"]))
        },
    ))
}

fn runs_table(runs: &Value) -> Markup {
    html! {
        table.runs {
            tr { th { "job" } th { "attempt" } th { "kind" } th { "outcome" } th { "started" } th { "ms" } th { "error" } }
            @for r in runs.as_array().cloned().unwrap_or_default() {
                tr {
                    td { a href={"/ui/jobs/" (s(&r["job"]))} { code { (s(&r["job"])) } } }
                    td { (s(&r["attempt"])) } td { (s(&r["kind"])) } td { (s(&r["outcome"])) }
                    td { (s(&r["started_at"])) } td { (s(&r["duration_ms"])) }
                    td { @for c in r["error"].as_array().cloned().unwrap_or_default() { (s(&c)) br; } }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Jobs

/// The jobs page's query: every value as text (a form sends text), checked by the same
/// rules as the API's filter, with the error page naming the bad one.
#[derive(Deserialize, Default)]
struct JobsQuery {
    tenant: Option<String>,
    kind: Option<String>,
    state: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    flash: Option<String>,
}

impl JobsQuery {
    fn filter(&self) -> Result<JobFilter, ApiError> {
        let some = |o: &Option<String>| o.clone().filter(|s| !s.trim().is_empty());
        let time = |what: &str,
                    o: &Option<String>|
         -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
            some(o)
                .map(|t| {
                    chrono::DateTime::parse_from_rfc3339(&t)
                        .map(|d| d.to_utc())
                        .map_err(|e| ApiError::bad_request(format!("invalid {what} {t:?}: {e} (expected RFC 3339, e.g. 2026-11-22T10:00:00Z)")))
                })
                .transpose()
        };
        Ok(JobFilter {
            tenant: some(&self.tenant),
            kind: some(&self.kind),
            state: some(&self.state),
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            limit: some(&self.limit)
                .map(|l| api::parse::<i64>("limit", &l))
                .transpose()?,
        })
    }
}

/// Query parameters of a page; a malformed query gets the error page naming what was wrong.
#[derive(Debug)]
pub struct UiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for UiQuery<T> {
    type Rejection = UiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, UiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| UiQuery(v))
            .map_err(|e| {
                UiError(
                    None,
                    ApiError::bad_request(format!("bad query: {}", e.body_text())),
                )
            })
    }
}

fn filter_form(f: &JobFilter) -> Markup {
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    html! {
        form #job-filter method="get" action="/ui/jobs" {
            label { "tenant " input name="tenant" value=(v(&f.tenant)) size="14"; } " "
            label { "kind " input name="kind" value=(v(&f.kind)) size="14"; } " "
            label { "state " select name="state" {
                @for st in ["", "dead", "succeeded", "ready", "running", "scheduled", "retrying"] {
                    option value=(st) selected[f.state.as_deref().unwrap_or("") == st] { (if st.is_empty() { "history" } else { st }) }
                }
            } } " "
            label { "since " input name="since" value=(f.since.map(|t| t.to_rfc3339()).unwrap_or_default()) size="22" placeholder="2026-11-22T10:00:00Z"; } " "
            label { "until " input name="until" value=(f.until.map(|t| t.to_rfc3339()).unwrap_or_default()) size="22"; } " "
            button type="submit" { "Filter" }
        }
    }
}

async fn jobs(
    State(st): State<AppState>,
    UiUser(who): UiUser,
    UiQuery(q): UiQuery<JobsQuery>,
) -> UiResult {
    let wrap = |e| UiError(Some(who.clone()), e);
    let filter = q.filter().map_err(wrap)?;
    let checked = api::check_filter(&st, &who, &filter).await.map_err(wrap)?;
    let rows = api::job_rows(&st, &checked).await.map_err(wrap)?;
    let dead = filter.state.as_deref() == Some("dead");
    Ok(page(
        Some(&who),
        "Jobs",
        html! {
            (flash(&q.flash))
            (filter_form(&filter))
            @if dead && who.role() == Role::Support && !rows.is_empty() {
                form #replay-preview method="post" action="/ui/jobs/replay" {
                    (csrf(&who))
                    input type="hidden" name="tenant" value=(filter.tenant.clone().unwrap_or_default());
                    input type="hidden" name="kind" value=(filter.kind.clone().unwrap_or_default());
                    input type="hidden" name="dry_run" value="true";
                    button type="submit" { "Replay all matching… (preview first)" }
                }
            }
            table #jobs {
                tr { th { "job" } th { "kind" } th { "state / outcome" } th { "tenant" } th { "when" } th { "error" } }
                @for r in &rows {
                    @let id = if r["id"].is_null() { s(&r["job"]) } else { s(&r["id"]) };
                    tr.job {
                        td { a href={"/ui/jobs/" (id)} { code { (id) } } }
                        td { (s(&r["kind"])) }
                        td { (if r["state"].is_null() { s(&r["outcome"]) } else { s(&r["state"]) }) }
                        td { code { (s(&r["tenant"])) } }
                        td { (if r["died_at"].is_null() { s(&r["started_at"]) } else { s(&r["died_at"]) }) }
                        td { (if r["last_error"].is_null() { r["error"].as_array().map(|c| c.iter().map(s).collect::<Vec<_>>().join(": ")).unwrap_or_default() } else { s(&r["last_error"]) }) }
                    }
                }
            }
            @if rows.is_empty() { p #no-jobs { "No job matches." } }
        },
    ))
}

async fn job(
    State(st): State<AppState>,
    UiUser(who): UiUser,
    Path(raw): Path<String>,
    UiQuery(fl): UiQuery<Flash>,
) -> UiResult {
    let wrap = |e| UiError(Some(who.clone()), e);
    let id: JobId = api::parse("job id", &raw).map_err(wrap)?;
    let v = api::job_view(&st, &who, id).await.map_err(wrap)?;
    let dead = &v["dead"];
    Ok(page(
        Some(&who),
        &format!("Job {id}"),
        html! {
            (flash(&fl.flash))
            @if let Some(live) = v["live"].as_object() {
                p #job-state { "In Redis: " strong { (s(&live["state"].clone())) } " · attempts " (s(&live["attempts"])) "/" (s(&live["max_attempts"])) }
            }
            @if !dead.is_null() {
                p #dead-state { "Dead since " (s(&dead["died_at"])) " after " (s(&dead["attempts"])) " attempts"
                    @if !dead["replayed_as"].is_null() { " · replayed as " a #replayed-as href={"/ui/jobs/" (s(&dead["replayed_as"]))} { (s(&dead["replayed_as"])) } } }
                @if dead["replayed_as"].is_null() && who.role() == Role::Support {
                    form #replay method="post" action={"/ui/jobs/" (id) "/replay"} {
                        (csrf(&who))
                        button #replay-button type="submit" { "Replay this job" }
                    }
                }
                h2 { "Errors of each attempt" }
                @for e in dead["errors"].as_array().cloned().unwrap_or_default() {
                    p { "attempt " (s(&e["attempt"])) " (" (s(&e["class"])) ")" }
                    ol { @for c in e["chain"].as_array().cloned().unwrap_or_default() { li { (s(&c)) } } }
                }
                h2 { "Payload" }
                pre #payload { (serde_json::to_string_pretty(&dead["payload"]).unwrap_or_default()) }
            }
            h2 { "Attempt history" }
            (runs_table(&v["attempts"]))
        },
    ))
}

async fn replay_one(
    State(st): State<AppState>,
    UiUser(who): UiUser,
    Path(raw): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Result<Response, UiError> {
    let wrap = |e| UiError(Some(who.clone()), e);
    who.check_csrf(f.csrf.as_deref()).map_err(wrap)?;
    let id: JobId = api::parse("job id", &raw).map_err(wrap)?;
    let out = api::replay_job(&st, &who, id).await.map_err(wrap)?;
    let msg = match out {
        crate::support::Replayed::Replayed { new_id, .. } => format!("Replayed as {new_id}"),
        crate::support::Replayed::AlreadyReplayed { .. } => "It was already replayed".to_owned(),
        crate::support::Replayed::Unreadable { reason, .. } => format!("Cannot replay: {reason}"),
    };
    Ok(done(&format!("/ui/jobs/{id}"), &msg))
}

#[derive(Deserialize)]
struct ReplayForm {
    csrf: Option<String>,
    tenant: Option<String>,
    kind: Option<String>,
    dry_run: Option<String>,
}

async fn replay_many(
    State(st): State<AppState>,
    UiUser(who): UiUser,
    Form(f): Form<ReplayForm>,
) -> Result<Response, UiError> {
    let wrap = |e| UiError(Some(who.clone()), e);
    who.check_csrf(f.csrf.as_deref()).map_err(wrap)?;
    let filter = JobFilter {
        tenant: f.tenant.clone().filter(|s| !s.is_empty()),
        kind: f.kind.clone().filter(|s| !s.is_empty()),
        state: Some("dead".into()),
        ..JobFilter::default()
    };
    let dry = f.dry_run.as_deref() == Some("true");
    let v = api::replay_by_filter(&st, &who, &filter, dry)
        .await
        .map_err(wrap)?;
    if !dry {
        let n = v["results"].as_array().map_or(0, Vec::len);
        return Ok(done("/ui/jobs?state=dead", &format!("{n} jobs replayed")));
    }
    let would = v["would_replay"].as_array().cloned().unwrap_or_default();
    Ok(page(
        Some(&who),
        "Replay preview",
        html! {
            p { (would.len()) " dead jobs would be replayed:" }
            table #preview {
                tr { th { "job" } th { "kind" } th { "tenant" } th { "died" } th { "last error" } }
                @for r in &would { tr { td { code { (s(&r["id"])) } } td { (s(&r["kind"])) } td { code { (s(&r["tenant"])) } } td { (s(&r["died_at"])) } td { (s(&r["last_error"])) } } }
            }
            @if !would.is_empty() {
                form #replay-confirm method="post" action="/ui/jobs/replay" {
                    (csrf(&who))
                    input type="hidden" name="tenant" value=(f.tenant.clone().unwrap_or_default());
                    input type="hidden" name="kind" value=(f.kind.clone().unwrap_or_default());
                    input type="hidden" name="dry_run" value="false";
                    button type="submit" { "Replay these " (would.len()) " jobs" }
                }
            }
        },
    )
    .into_response())
}

// ---------------------------------------------------------------------------------------------
// Orders in review

#[derive(Deserialize, Default)]
struct TenantQ {
    tenant: Option<String>,
    flash: Option<String>,
}

async fn orders(
    State(st): State<AppState>,
    UiUser(who): UiUser,
    UiQuery(q): UiQuery<TenantQ>,
) -> UiResult {
    let wrap = |e| UiError(Some(who.clone()), e);
    let rows = api::review_rows(&st, &who, q.tenant.as_deref(), 200)
        .await
        .map_err(wrap)?;
    Ok(page(
        Some(&who),
        "Orders in review",
        html! {
            (flash(&q.flash))
            @if rows.is_empty() { p #no-orders { "No order is waiting for review." } }
            @for o in &rows {
                section.order id={"order-" (s(&o["id"]))} {
                    h2 { (s(&o["channel"])) " order " (s(&o["channel_order_id"])) }
                    p { "Parked " (s(&o["parked_at"])) " · tenant " code { (s(&o["tenant"])) } }
                    p { strong { "Evidence: " } (s(&o["evidence"])) }
                    details { summary { "Order (buyer masked)" } pre { (serde_json::to_string_pretty(&o["order"]).unwrap_or_default()) } }
                    @if who.role() == Role::Support {
                        form.inline method="post" action={"/ui/orders/" (s(&o["id"])) "/resolve"} {
                            (csrf(&who)) input type="hidden" name="action" value="mark_created";
                            label { "ERP document id " input name="document_id" required size="16"; } " "
                            button type="submit" { "Mark created" }
                        } " · "
                        form.inline method="post" action={"/ui/orders/" (s(&o["id"])) "/resolve"} {
                            (csrf(&who)) input type="hidden" name="action" value="retry_create";
                            button type="submit" { "Retry the create" }
                        } " · "
                        form.inline method="post" action={"/ui/orders/" (s(&o["id"])) "/resolve"} {
                            (csrf(&who)) input type="hidden" name="action" value="cancel";
                            label { "reason " input name="reason" required size="20"; } " "
                            button type="submit" { "Cancel on the marketplace" }
                        }
                    }
                }
            }
        },
    ))
}

#[derive(Deserialize)]
struct ResolveForm {
    csrf: Option<String>,
    action: String,
    document_id: Option<String>,
    reason: Option<String>,
}

async fn resolve(
    State(st): State<AppState>,
    UiUser(who): UiUser,
    Path(raw): Path<String>,
    Form(f): Form<ResolveForm>,
) -> Result<Response, UiError> {
    let wrap = |e| UiError(Some(who.clone()), e);
    who.check_csrf(f.csrf.as_deref()).map_err(wrap)?;
    let id: i64 = api::parse("order id", &raw).map_err(wrap)?;
    let r = match f.action.as_str() {
        "mark_created" => Resolution::MarkCreated {
            document_id: f.document_id.unwrap_or_default(),
        },
        "retry_create" => Resolution::RetryCreate {},
        "cancel" => Resolution::Cancel {
            reason: f.reason.unwrap_or_default(),
        },
        other => {
            return Err(wrap(ApiError::bad_request(format!(
                "unknown action {other:?}: mark_created, retry_create or cancel"
            ))));
        }
    };
    let result = api::resolve_order(&st, &who, id, &r).await.map_err(wrap)?;
    Ok(done("/ui/orders", &format!("Order {id}: {result}")))
}

// ---------------------------------------------------------------------------------------------
// Mappings

async fn mappings(
    State(st): State<AppState>,
    UiUser(who): UiUser,
    Path(c): Path<String>,
    UiQuery(fl): UiQuery<Flash>,
) -> UiResult {
    let wrap = |e| UiError(Some(who.clone()), e);
    let conn = api::visible_connection(&st, &who, &c).await.map_err(wrap)?;
    let v = api::mappings_view(&st, &conn).await.map_err(wrap)?;
    Ok(page(
        Some(&who),
        "Mappings",
        html! {
            (flash(&fl.flash))
            p { "Connection " code { (conn.id) } ": " (conn.erp) " ⇄ " (conn.marketplace) }
            @for d in [Direction::ErpToMarketplace, Direction::MarketplaceToErp] {
                @let m = &v["mappings"][d.as_str()];
                h2 { (d.as_str()) }
                table {
                    tr { th { "version" } th { "author" } th { "comment" } th { "saved" } th { "" } }
                    @for ver in m["versions"].as_array().cloned().unwrap_or_default() {
                        tr {
                            td { "v" (s(&ver["version"])) @if ver["active"] == Value::Bool(true) { " (active)" } }
                            td { (s(&ver["author"])) } td { (s(&ver["comment"])) } td { (s(&ver["created_at"])) }
                            td {
                                a href={"/ui/connections/" (conn.id) "/mappings/" (d.as_str()) "/" (s(&ver["version"])) "/diff"} { "preview diff" }
                                @if who.role() == Role::Support && ver["active"] != Value::Bool(true) {
                                    " "
                                    form.inline method="post" action={"/ui/connections/" (conn.id) "/mappings/" (d.as_str()) "/" (s(&ver["version"])) "/activate"} {
                                        (csrf(&who)) button type="submit" { "Activate" }
                                    }
                                }
                            }
                        }
                    }
                }
                @if who.role() == Role::Support {
                    form method="post" action={"/ui/connections/" (conn.id) "/mappings/" (d.as_str()) "/rollback"} {
                        (csrf(&who)) button type="submit" { "Roll back to the previous active version" }
                    }
                }
            }
        },
    ))
}

async fn diff(
    State(st): State<AppState>,
    UiUser(who): UiUser,
    Path((c, d, v)): Path<(String, String, String)>,
) -> UiResult {
    let wrap = |e| UiError(Some(who.clone()), e);
    let conn = api::visible_connection(&st, &who, &c).await.map_err(wrap)?;
    let dir: Direction = d.parse().map_err(|e: crate::db::DbError| wrap(e.into()))?;
    let ver: i32 = api::parse("version", &v).map_err(wrap)?;
    let found = crate::db::mappings::get_mapping(&st.pool, conn.id, dir, ver)
        .await
        .map_err(|e| wrap(e.into()))?
        .ok_or_else(|| {
            wrap(ApiError::not_found(format!(
                "no {dir} mapping version {ver}"
            )))
        })?;
    let p = api::diff_view(&st, &conn, dir, &found)
        .await
        .map_err(wrap)?;
    Ok(page(
        Some(&who),
        &format!("v{ver} against the active version"),
        html! {
            p { (s(&p["items"])) " sample items; against " (if p["against"].is_null() { "no active version".to_owned() } else { format!("v{}", s(&p["against"])) }) }
            table #diff {
                tr { th { "item" } th { "field" } th { "active" } th { "this version" } }
                @for f in p["diffs"].as_array().cloned().unwrap_or_default() {
                    tr { td { (s(&f["item"])) } td { (s(&f["field"])) } td { (s(&f["active"])) } td { (s(&f["draft"])) } }
                }
            }
            @for e in p["errors"].as_array().cloned().unwrap_or_default() {
                p.error { (s(&e["item"])) ": " (s(&e["error"])) }
            }
        },
    ))
}

async fn activate(
    State(st): State<AppState>,
    UiUser(who): UiUser,
    Path((c, d, v)): Path<(String, String, String)>,
    Form(f): Form<CsrfOnly>,
) -> Result<Response, UiError> {
    let wrap = |e| UiError(Some(who.clone()), e);
    who.check_csrf(f.csrf.as_deref()).map_err(wrap)?;
    let conn = api::visible_connection(&st, &who, &c).await.map_err(wrap)?;
    let dir: Direction = d.parse().map_err(|e: crate::db::DbError| wrap(e.into()))?;
    let ver: i32 = api::parse("version", &v).map_err(wrap)?;
    api::activate(&st, &who, &conn, dir, ver, "")
        .await
        .map_err(wrap)?;
    Ok(done(
        &format!("/ui/connections/{}/mappings", conn.id),
        &format!("v{ver} is active"),
    ))
}

async fn rollback(
    State(st): State<AppState>,
    UiUser(who): UiUser,
    Path((c, d)): Path<(String, String)>,
    Form(f): Form<CsrfOnly>,
) -> Result<Response, UiError> {
    let wrap = |e| UiError(Some(who.clone()), e);
    who.check_csrf(f.csrf.as_deref()).map_err(wrap)?;
    let conn = api::visible_connection(&st, &who, &c).await.map_err(wrap)?;
    let dir: Direction = d.parse().map_err(|e: crate::db::DbError| wrap(e.into()))?;
    let v = api::rollback(&st, &who, &conn, dir, "")
        .await
        .map_err(wrap)?;
    Ok(done(
        &format!("/ui/connections/{}/mappings", conn.id),
        &format!("rolled back: v{} is active", s(&v["active"])),
    ))
}

// ---------------------------------------------------------------------------------------------
// Audit log

async fn audit(
    State(st): State<AppState>,
    UiUser(who): UiUser,
    UiQuery(q): UiQuery<TenantQ>,
) -> UiResult {
    let wrap = |e| UiError(Some(who.clone()), e);
    let rows = api::audit_rows(&st, &who, q.tenant.as_deref(), None, 200)
        .await
        .map_err(wrap)?;
    Ok(page(
        Some(&who),
        "Audit log",
        html! {
            table #audit {
                tr { th { "when" } th { "who" } th { "via" } th { "action" } th { "tenant" } th { "target" } th { "outcome" } th { "detail" } }
                @for a in &rows {
                    tr { td { (a.at) } td { (a.actor) " (" (a.role) ")" } td { (a.via) } td { (a.action) }
                         td { code { (a.tenant_id.map(|t| t.to_string()).unwrap_or_default()) } } td { (a.target.clone().unwrap_or_default()) }
                         td { (a.outcome) } td { code { (a.detail) } } }
                }
            }
        },
    ))
}
