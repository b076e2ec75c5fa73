//! The OpenAPI 3.1 document of the admin API, served at `/api/openapi.json`. Written out here
//! (one entry per route of [`super::api::ROUTES`]; a test keeps them equal) rather than derived,
//! so that it says what each route is for, who may call it, and what it refuses.

use serde_json::{Map, Value, json};

/// One documented operation.
struct Op {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    roles: &'static str,
    query: &'static [(&'static str, &'static str)],
    body: Option<Value>,
}

fn ops() -> Vec<Op> {
    let job_filter: &'static [(&str, &str)] = &[
        ("tenant", "tenant id or slug (a vendor: its own only)"),
        (
            "kind",
            "catalog_push, stock_push, order_pull, invoice_attach, awb_push, returns_reconcile",
        ),
        (
            "state",
            "dead, succeeded (history), or a live state: ready, running, scheduled, retrying",
        ),
        ("since", "RFC 3339 time, inclusive"),
        ("until", "RFC 3339 time, exclusive"),
        ("limit", "1 to 1000 (default 100)"),
    ];
    let comment = json!({"type": "object", "additionalProperties": false,
        "properties": {"comment": {"type": "string"}}});
    vec![
        Op {
            method: "get",
            path: "/api/v1/me",
            summary: "Who the caller is: username, role, tenant, and the session's CSRF token",
            roles: "any",
            query: &[],
            body: None,
        },
        Op {
            method: "post",
            path: "/api/v1/session",
            summary: "Sign in with username and password: sets the session cookie (Secure, HttpOnly, SameSite=Strict) and returns the CSRF token",
            roles: "anyone",
            query: &[],
            body: Some(
                json!({"type": "object", "required": ["username", "password"], "additionalProperties": false,
                 "properties": {"username": {"type": "string"}, "password": {"type": "string", "format": "password"}}}),
            ),
        },
        Op {
            method: "delete",
            path: "/api/v1/session",
            summary: "Sign out: ends the session and clears the cookie",
            roles: "any",
            query: &[],
            body: None,
        },
        Op {
            method: "get",
            path: "/api/v1/tokens",
            summary: "The caller's API tokens (never their secrets)",
            roles: "any",
            query: &[],
            body: None,
        },
        Op {
            method: "post",
            path: "/api/v1/tokens",
            summary: "Make an API token for the caller; the token is in the answer, once",
            roles: "any",
            query: &[],
            body: Some(
                json!({"type": "object", "required": ["name"], "additionalProperties": false,
                 "properties": {"name": {"type": "string", "maxLength": 100}, "expires_in_days": {"type": "integer", "minimum": 1, "maximum": 3650}}}),
            ),
        },
        Op {
            method: "delete",
            path: "/api/v1/tokens/{id}",
            summary: "Revoke a token (the caller's own; support: anyone's)",
            roles: "any",
            query: &[],
            body: None,
        },
        Op {
            method: "get",
            path: "/api/v1/fleet",
            summary: "Queue depth and oldest job per kind, workers alive, throughput, retries and deaths in the last 5 minutes, dead jobs not replayed",
            roles: "operator, support",
            query: &[],
            body: None,
        },
        Op {
            method: "get",
            path: "/api/v1/tenants",
            summary: "Tenants (a vendor: its own)",
            roles: "any",
            query: &[],
            body: None,
        },
        Op {
            method: "get",
            path: "/api/v1/tenants/{tenant}",
            summary: "A tenant: connections with settings (never credentials) and capability matrix, each flow's last success, freshness and last error, recent runs",
            roles: "any (a vendor: its own)",
            query: &[],
            body: None,
        },
        Op {
            method: "get",
            path: "/api/v1/jobs",
            summary: "Jobs by tenant, kind, state and time: the attempt history, the dead set, or live jobs in Redis",
            roles: "any (a vendor: its own tenant)",
            query: job_filter,
            body: None,
        },
        Op {
            method: "get",
            path: "/api/v1/jobs/{id}",
            summary: "A job: its record in Redis, every attempt with its full error chain (personal data masked), its payload and dead record",
            roles: "any (a vendor: its own tenant)",
            query: &[],
            body: None,
        },
        Op {
            method: "post",
            path: "/api/v1/jobs/{id}/replay",
            summary: "Replay a dead job once (audited); 409 if it was already replayed",
            roles: "support",
            query: &[],
            body: None,
        },
        Op {
            method: "post",
            path: "/api/v1/jobs/replay",
            summary: "Replay every unreplayed dead job matching a filter, or with dry_run only list them (the preview); audited",
            roles: "support",
            query: &[],
            body: Some(
                json!({"type": "object", "additionalProperties": false, "properties": {
                 "tenant": {"type": "string"}, "kind": {"type": "string"}, "state": {"const": "dead"},
                 "since": {"type": "string", "format": "date-time"}, "until": {"type": "string", "format": "date-time"},
                 "limit": {"type": "integer", "minimum": 1, "maximum": 1000}, "dry_run": {"type": "boolean"}}}),
            ),
        },
        Op {
            method: "get",
            path: "/api/v1/orders/review",
            summary: "Orders whose outcome is in doubt (needs_review), oldest first, with their evidence and the buyer masked",
            roles: "any (a vendor: its own tenant)",
            query: &[("tenant", "tenant id or slug"), ("limit", "1 to 1000")],
            body: None,
        },
        Op {
            method: "get",
            path: "/api/v1/orders/{id}",
            summary: "An order row (personal data masked)",
            roles: "any (a vendor: its own tenant)",
            query: &[],
            body: None,
        },
        Op {
            method: "post",
            path: "/api/v1/orders/{id}/resolve",
            summary: "Resolve an order in review: mark_created with the ERP document id, retry_create (the ERP has none), or cancel on the marketplace with a reason; audited. 409 if it is not in review, 422 for a bad document id, 502 if the marketplace refused the cancellation",
            roles: "support",
            query: &[],
            body: Some(json!({"oneOf": [
                 {"type": "object", "required": ["action", "document_id"], "properties": {"action": {"const": "mark_created"}, "document_id": {"type": "string"}}},
                 {"type": "object", "required": ["action"], "properties": {"action": {"const": "retry_create"}}},
                 {"type": "object", "required": ["action", "reason"], "properties": {"action": {"const": "cancel"}, "reason": {"type": "string", "maxLength": 500}}}]})),
        },
        Op {
            method: "get",
            path: "/api/v1/connections/{connection}/mappings",
            summary: "A connection's mapping versions per direction, which is active, and the activation history",
            roles: "any (a vendor: its own tenant)",
            query: &[],
            body: None,
        },
        Op {
            method: "get",
            path: "/api/v1/connections/{connection}/mappings/{direction}/{version}",
            summary: "One mapping version with its rules",
            roles: "any (a vendor: its own tenant)",
            query: &[],
            body: None,
        },
        Op {
            method: "get",
            path: "/api/v1/connections/{connection}/mappings/{direction}/{version}/diff",
            summary: "Preview: what activating the version would change, per sample item and field, against the active version",
            roles: "any (a vendor: its own tenant)",
            query: &[],
            body: None,
        },
        Op {
            method: "post",
            path: "/api/v1/connections/{connection}/mappings/{direction}/{version}/activate",
            summary: "Activate a mapping version (audited); workers use it from their next job",
            roles: "support",
            query: &[],
            body: Some(comment.clone()),
        },
        Op {
            method: "post",
            path: "/api/v1/connections/{connection}/mappings/{direction}/rollback",
            summary: "Roll back to the version active before (audited)",
            roles: "support",
            query: &[],
            body: Some(comment),
        },
        Op {
            method: "get",
            path: "/api/v1/audit",
            summary: "The audit log, newest first",
            roles: "any (a vendor: its own tenant)",
            query: &[
                ("tenant", "tenant id or slug"),
                (
                    "action",
                    "e.g. job.replay, order.mark_created, mapping.activate",
                ),
                ("limit", "1 to 1000"),
            ],
            body: None,
        },
    ]
}

/// The whole document.
pub fn document() -> Value {
    let error = json!({"type": "object", "properties": {"error": {"type": "object", "properties": {
        "status": {"type": "integer"}, "message": {"type": "string", "description": "what was wrong"}}}}});
    let mut paths = Map::new();
    for op in ops() {
        let mut params: Vec<Value> = path_params(op.path)
            .into_iter()
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        params.extend(op.query.iter().map(|(n, d)| {
            json!({"name": n, "in": "query", "required": false, "description": d, "schema": {"type": "string"}})
        }));
        let mut o = json!({
            "summary": op.summary,
            "description": format!("Roles: {}.", op.roles),
            "parameters": params,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
                "400": {"description": "malformed request (the message names what)", "content": {"application/json": {"schema": error.clone()}}},
                "401": {"description": "not signed in, or the token is not valid", "content": {"application/json": {"schema": error.clone()}}},
                "403": {"description": "the role may not, another tenant's data, or a bad CSRF token", "content": {"application/json": {"schema": error.clone()}}},
                "404": {"description": "no such thing", "content": {"application/json": {"schema": error.clone()}}},
            },
        });
        if op.path == "/api/v1/session" && op.method == "post" {
            o["security"] = json!([]);
        }
        if let Some(b) = op.body {
            o["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": b}}});
        }
        if let Value::Object(item) = paths.entry(op.path.to_owned()).or_insert_with(|| json!({})) {
            item.insert(op.method.to_owned(), o);
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "MEGZO Integrator Vortex admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The support console's API. Authenticate with `Authorization: Bearer mgz_…` (an API token) or the session cookie of /ui/login (then send the session's CSRF token in X-CSRF-Token on every POST and DELETE). Personal data is masked in every answer.",
        },
        "components": {"securitySchemes": {
            "token": {"type": "http", "scheme": "bearer", "description": "mgz_<id>_<secret>, from POST /api/v1/tokens or `megzo users token`"},
            "session": {"type": "apiKey", "in": "cookie", "name": super::auth::SESSION_COOKIE},
        }},
        "security": [{"token": []}, {"session": []}],
        "paths": paths,
    })
}

fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_exactly_the_routes_the_api_serves() {
        let doc = document();
        let mut documented: Vec<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(p, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .map(|m| (m.clone(), p.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut served: Vec<(String, String)> = super::super::api::ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        documented.sort();
        served.sort();
        assert_eq!(documented, served);
    }
}
