//! The console's JSON API (`megzo serve`) over real HTTP: a console on 127.0.0.1:0 over the
//! test's own database and a Redis namespace of its own, two tenants (A and B) each with a no-op
//! connection, stored credentials, a dead job, an order in review holding personal data and
//! mapping versions, and four users (support `sup`, operator `op`, vendor `va` of A, vendor `vb`
//! of B), each with an API token.
//!
//! What is checked: a vendor reaches nothing of another tenant through any route (the table is
//! driven by `api::ROUTES`, so a new route without a case fails); every route but sign-in needs
//! a valid caller; no answer holds a secret or a personal datum; the support actions (replay,
//! resolve, mapping activation and rollback) do what they say and are audited; sessions set a
//! strict cookie and need their CSRF token; bad input is a 4xx naming what was wrong; the
//! OpenAPI document lists every route.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use canonical::{
    ChannelOrderId, ConnectionId, Contact, Country, Currency, Erp, Marketplace, Order, OrderLine,
    OrderStatus, Sku, TenantId, VatRate,
};
use queue_schema::{
    AttemptError, ErrorClass, JobId, JobKind, JobPayload, JobSpec, JobState, Scope, Trigger,
};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;
use workers::console::api::ROUTES;
use workers::console::{self, AppState, auth};
use workers::db::console::{self as users, NewAudit, Role, User};
use workers::db::mappings::{Direction, save_mapping};
use workers::db::{self, Claim, DeadJob, OrderState};
use workers::queue::{Enqueued, Queue, QueueConfig};
use workers::vault::{Credentials, Vault};

mod support;

// ---------------------------------------------------------------------------------------------
// The world: seeded data, a console, an HTTP client that remembers every answer

/// One tenant's seeded things.
struct Side {
    tenant: db::Tenant,
    conn: db::Connection,
    /// A dead `catalog_push` of the connection (payload v1, Scope::All, manual).
    dead: JobId,
    /// The order in review (row id), its channel order id and the evidence it was parked with.
    order: i64,
    channel_order_id: String,
    evidence: String,
    /// The connection's stored credentials (never to be shown).
    credential_secrets: Vec<String>,
    /// The action of the audit row seeded for this tenant.
    audit_action: String,
}

/// A console user with its password and API token.
struct Cred {
    user: User,
    password: String,
    token: String,
    token_id: Uuid,
}

impl Cred {
    fn secret(&self) -> &str {
        // mgz_<32 hex>_<secret>
        &self.token[4 + 32 + 1..]
    }
}

/// One answer of the console.
#[derive(Debug, Clone)]
struct Resp {
    label: String,
    status: u16,
    text: String,
    json: Value,
    cookies: Vec<String>,
}

impl Resp {
    fn message(&self) -> String {
        self.json["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[track_caller]
    fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "{}: expected {status}, got {}: {}",
            self.label, self.status, self.text
        );
        self
    }

    /// Asserts a refusal: the status, the JSON error shape, and words of the message.
    #[track_caller]
    fn refused(&self, status: u16, words: &[&str]) -> &Self {
        self.expect(status);
        assert_eq!(
            self.json["error"]["status"],
            json!(status),
            "{}: not a JSON error: {}",
            self.label,
            self.text
        );
        let m = self.message();
        for w in words {
            assert!(
                m.contains(w),
                "{}: the message should name {w:?}: {m}",
                self.label
            );
        }
        self
    }
}

/// How a request authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Token(&'a str),
    /// A raw `Authorization` header value.
    Header(&'a str),
    /// A session cookie, the CSRF header (if any) and an `Origin` (if any).
    Session {
        cookie: &'a str,
        csrf: Option<&'a str>,
        origin: Option<&'a str>,
    },
}

struct World {
    pool: PgPool,
    queue: Queue,
    base: String,
    http: reqwest::Client,
    a: Side,
    b: Side,
    sup: Cred,
    op: Cred,
    va: Cred,
    vb: Cred,
    /// Every answer of the test: (request, body).
    seen: Mutex<Vec<(String, String)>>,
    _server: DropGuard,
}

async fn queue() -> Queue {
    let cfg = QueueConfig {
        namespace: format!("t-console-{}", Uuid::new_v4().simple()),
        ..QueueConfig::default()
    };
    Queue::connect(&support::redis_url(), cfg)
        .await
        .expect("Redis must be running")
}

const CUSTOMER_NAME: &str = "Ziggy Personaldata";
const CUSTOMER_EMAIL: &str = "ziggy.pd@example.test";
const CUSTOMER_PHONE: &str = "+40 799 123 456";
/// What must never be in an answer: the buyer's data (also the address, for good measure).
const PERSONAL: &[&str] = &[
    "Ziggy",
    "Personaldata",
    "ziggy.pd@example.test",
    "ziggy.pd",
    "799 123",
    "799123",
    "Zigzag",
    "Zoltopolis",
];

/// A pulled order whose buyer is Ziggy Personaldata.
fn order_json(channel_order_id: &str) -> Value {
    let buyer = Contact {
        name: CUSTOMER_NAME.into(),
        company: None,
        email: Some(CUSTOMER_EMAIL.into()),
        phone: Some(CUSTOMER_PHONE.into()),
        address_line1: "Strada Zigzag 7".into(),
        address_line2: None,
        city: "Zoltopolis".into(),
        postal_code: "400001".into(),
        region: None,
        country: Some(Country::RO),
        tax_id: None,
    };
    let order = Order {
        id: ChannelOrderId::new(channel_order_id).unwrap(),
        group_id: None,
        status: OrderStatus::New,
        raw_status: "CREATED".into(),
        market: Country::RO,
        currency: Currency::Ron,
        placed_at: chrono::Utc::now(),
        updated_at: None,
        ship_by: None,
        lines: vec![OrderLine {
            line_id: Some("1".into()),
            sku: Sku::new("MGZ-MUG-01").unwrap(),
            title: "Cana ceramica".into(),
            quantity: 1,
            unit_price_gross: Decimal::new(4990, 2),
            vat: VatRate::percent(Decimal::from(19)).unwrap(),
        }],
        shipping_fee_gross: Decimal::ZERO,
        total_gross: Decimal::new(4990, 2),
        customer: buyer.clone(),
        ship_to: buyer,
        tracking: Vec::new(),
    };
    serde_json::to_value(order).unwrap()
}

/// Stores a dead job of `kind` for the connection, whose last error is `error`.
async fn dead_job(pool: &PgPool, conn: &db::Connection, kind: JobKind, error: &str) -> JobId {
    let id = JobId::new();
    let payload = JobPayload::v1(conn.tenant_id, conn.id, Scope::All, Trigger::Manual);
    let now = chrono::Utc::now();
    let d = DeadJob {
        job_id: id,
        kind,
        tenant_id: conn.tenant_id,
        connection_id: conn.id,
        payload: serde_json::to_value(&payload).unwrap(),
        attempts: 5,
        max_attempts: 5,
        errors: vec![AttemptError {
            attempt: 5,
            at_ms: now.timestamp_millis() as u64,
            worker: "w-test".into(),
            class: ErrorClass::Permanent,
            chain: vec![format!("{kind} failed"), error.to_owned()],
            retry_after_ms: None,
        }],
        enqueued_at: now - chrono::Duration::minutes(30),
        died_at: now,
        replayed_at: None,
        replayed_as: None,
    };
    assert_eq!(db::insert_dead(pool, &[d]).await.unwrap(), 1);
    id
}

/// Claims an order on `conn`, stores its pulled payload and parks it for review.
async fn order_in_review(
    pool: &PgPool,
    conn: &db::Connection,
    channel_order_id: &str,
    evidence: &str,
) -> i64 {
    let row = match db::claim_order(pool, conn.tenant_id, "noop", channel_order_id)
        .await
        .unwrap()
    {
        Claim::New(r) | Claim::Existing(r) => r,
    };
    db::flows::store_order_payload(pool, row.id, conn.id, &order_json(channel_order_id))
        .await
        .unwrap();
    assert!(
        db::fenced_set_order_state(
            pool,
            conn.tenant_id,
            "noop",
            channel_order_id,
            OrderState::NeedsReview,
            1,
            None,
            Some(evidence),
        )
        .await
        .unwrap()
    );
    row.id
}

/// A rule set the engine compiles: the title from the article's name, trimmed.
fn e2m_rules(n: u32) -> Value {
    json!({"schema": 1, "direction": "erp_to_marketplace", "rules": [
        {"id": format!("title{n}"), "target": "title", "source": {"field": "name"}, "ops": [{"op": "trim"}]}
    ]})
}

fn m2e_rules() -> Value {
    json!({"schema": 1, "direction": "marketplace_to_erp", "rules": [
        {"id": "sku", "target": "sku", "source": {"field": "sku"}}
    ]})
}

async fn side(pool: &PgPool, vault: &Vault, slug: &str, name: &str, tag: &str) -> Side {
    let tenant = db::add_tenant(pool, slug, name).await.unwrap();
    let conn = db::add_connection(
        pool,
        tenant.id,
        Erp::Noop,
        Marketplace::Noop,
        None,
        json!({}),
    )
    .await
    .unwrap();
    let credential_secrets = vec![
        format!("cred-token-{tag}-{}", Uuid::new_v4().simple()),
        format!("cred-password-{tag}-{}", Uuid::new_v4().simple()),
    ];
    let creds = Credentials::new(
        json!({"api_token": credential_secrets[0], "password": credential_secrets[1]})
            .as_object()
            .unwrap()
            .clone(),
    );
    db::store_credentials(pool, vault, conn.id, &creds)
        .await
        .unwrap();
    let dead = dead_job(
        pool,
        &conn,
        JobKind::CatalogPush,
        &format!("marketplace 422: buyer {CUSTOMER_EMAIL} refused ({tag}-error-marker)"),
    )
    .await;
    let channel_order_id = format!("{}-ORD-4471", tag.to_uppercase());
    let evidence = format!(
        "the ERP timed out after the create call; client {CUSTOMER_EMAIL}; look the document up first ({tag}-evidence-7Q)"
    );
    let order = order_in_review(pool, &conn, &channel_order_id, &evidence).await;
    for n in 1..=2 {
        save_mapping(
            pool,
            conn.id,
            Direction::ErpToMarketplace,
            &e2m_rules(n),
            "ana",
            "",
        )
        .await
        .unwrap();
    }
    save_mapping(
        pool,
        conn.id,
        Direction::MarketplaceToErp,
        &m2e_rules(),
        "ana",
        "",
    )
    .await
    .unwrap();
    let audit_action = format!("seed.{tag}-only");
    users::insert_audit(
        pool,
        &NewAudit {
            actor: "seeder",
            role: "support",
            via: "cli",
            action: &audit_action,
            tenant_id: Some(tenant.id),
            target: None,
            outcome: "done",
            detail: json!({}),
        },
    )
    .await
    .unwrap();
    Side {
        tenant,
        conn,
        dead,
        order,
        channel_order_id,
        evidence,
        credential_secrets,
        audit_action,
    }
}

async fn user(pool: &PgPool, name: &str, role: Role, tenant: Option<TenantId>) -> Cred {
    let password = format!("pw-{name}-{}", Uuid::new_v4().simple());
    let hash = auth::hash_secret(&password).unwrap();
    let user = users::create_user(pool, name, role, tenant, Some(&hash))
        .await
        .unwrap();
    let (token_id, token) = auth::create_token(pool, &user, "test", None).await.unwrap();
    Cred {
        user,
        password,
        token,
        token_id,
    }
}

async fn world(pool: PgPool) -> World {
    // reqwest (rustls without a built-in provider) needs a process crypto provider even for
    // plain HTTP; the connectors' shared client installs ring's.
    let _ = connectors::http::Http::new("console-test", &Default::default(), None, |_| None);
    let queue = queue().await;
    let vault = Arc::new(Vault::parse(&Vault::generate_key()).unwrap());
    let a = side(&pool, &vault, "shop-alpha", "Alpha Mugs", "alpha").await;
    let b = side(&pool, &vault, "shop-bravo", "Bravo Unique Teas", "bravo").await;
    let sup = user(&pool, "sup", Role::Support, None).await;
    let op = user(&pool, "op", Role::Operator, None).await;
    let va = user(&pool, "va", Role::Vendor, Some(a.tenant.id)).await;
    let vb = user(&pool, "vb", Role::Vendor, Some(b.tenant.id)).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let cancel = CancellationToken::new();
    let state = AppState::new(pool.clone(), queue.clone(), Some(vault));
    tokio::spawn(console::serve(listener, state, cancel.clone()));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    World {
        pool,
        queue,
        base,
        http,
        a,
        b,
        sup,
        op,
        va,
        vb,
        seen: Mutex::new(Vec::new()),
        _server: cancel.drop_guard(),
    }
}

impl World {
    async fn request(
        &self,
        auth: Auth<'_>,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Resp {
        let m = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let mut rb = self.http.request(m, format!("{}{path}", self.base));
        rb = match auth {
            Auth::None => rb,
            Auth::Token(t) => rb.bearer_auth(t),
            Auth::Header(h) => rb.header(reqwest::header::AUTHORIZATION, h),
            Auth::Session {
                cookie,
                csrf,
                origin,
            } => {
                let mut rb = rb.header(
                    reqwest::header::COOKIE,
                    format!("{}={cookie}", auth::SESSION_COOKIE),
                );
                if let Some(c) = csrf {
                    rb = rb.header("X-CSRF-Token", c);
                }
                if let Some(o) = origin {
                    rb = rb.header(reqwest::header::ORIGIN, o);
                }
                rb
            }
        };
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let who = self.who(auth);
        self.send(
            format!("{} {path} as {who}", method.to_ascii_uppercase()),
            rb,
        )
        .await
    }

    /// Sends a request built by hand (raw bodies, odd headers), remembering the answer.
    async fn send(&self, label: String, rb: reqwest::RequestBuilder) -> Resp {
        let r = rb.send().await.unwrap_or_else(|e| panic!("{label}: {e}"));
        let status = r.status().as_u16();
        let cookies = r
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .collect();
        let text = r.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        self.seen
            .lock()
            .unwrap()
            .push((label.clone(), text.clone()));
        Resp {
            label,
            status,
            text,
            json,
            cookies,
        }
    }

    fn raw(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    async fn get(&self, token: &str, path: &str) -> Resp {
        self.request(Auth::Token(token), "get", path, None).await
    }

    async fn post(&self, token: &str, path: &str, body: Option<Value>) -> Resp {
        self.request(Auth::Token(token), "post", path, body.as_ref())
            .await
    }

    /// Signs in: the session cookie's value and the CSRF token.
    async fn login(&self, username: &str, password: &str) -> (String, String) {
        let r = self
            .request(
                Auth::None,
                "post",
                "/api/v1/session",
                Some(&json!({"username": username, "password": password})),
            )
            .await;
        r.expect(200);
        let cookie = session_cookie(&r).expect("a session cookie is set");
        let csrf = r.json["csrf"]
            .as_str()
            .expect("csrf in the answer")
            .to_owned();
        (cookie, csrf)
    }

    fn markers_of_b(&self) -> Vec<String> {
        let b = &self.b;
        vec![
            b.tenant.id.to_string(),
            b.tenant.id.0.simple().to_string(),
            b.tenant.slug.clone(),
            b.tenant.name.clone(),
            b.conn.id.to_string(),
            b.dead.to_string(),
            b.channel_order_id.clone(),
            "bravo-evidence-7Q".into(),
            "bravo-error-marker".into(),
            b.audit_action.clone(),
        ]
    }

    /// Everything secret: tokens (and their secret parts), passwords, argon2 hashes, stored
    /// connection credentials.
    fn secrets(&self) -> Vec<String> {
        let mut out = vec!["$argon2".to_owned()];
        for c in [&self.sup, &self.op, &self.va, &self.vb] {
            out.push(c.token.clone());
            out.push(c.secret().to_owned());
            out.push(c.password.clone());
        }
        for s in [&self.a, &self.b] {
            out.extend(s.credential_secrets.iter().cloned());
        }
        out
    }

    /// Who a request is made as, for the labels of answers.
    fn who(&self, auth: Auth<'_>) -> &'static str {
        match auth {
            Auth::None => "anonymous",
            Auth::Header(_) => "raw-header",
            Auth::Session { .. } => "session",
            Auth::Token(t) => {
                if t == self.sup.token {
                    "sup"
                } else if t == self.op.token {
                    "op"
                } else if t == self.va.token {
                    "va"
                } else if t == self.vb.token {
                    "vb"
                } else {
                    "other-token"
                }
            }
        }
    }

    /// Every (request, forbidden string) of the answers seen so far.
    fn leaks(&self, forbidden: &[String]) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        let mut out = Vec::new();
        for (label, body) in seen.iter() {
            for f in forbidden {
                if body.contains(f.as_str()) {
                    out.push(format!("{label} answered {f:?}: {body}"));
                }
            }
        }
        out
    }
}

fn session_cookie(r: &Resp) -> Option<String> {
    r.cookies.iter().find_map(|c| {
        c.strip_prefix(&format!("{}=", auth::SESSION_COOKIE))
            .map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
            .filter(|v| !v.is_empty())
    })
}

/// The rows of a list answer (`key` is `tenants`, `jobs`, `orders` or `entries`).
fn rows<'a>(r: &'a Resp, key: &str) -> &'a Vec<Value> {
    r.json[key]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no {key} list: {}", r.label, r.text))
}

/// A route's path with its parameters filled in with tenant A's things (`{id}` by the route:
/// a job, an order or a token).
fn path_of_a(w: &World, route: &str) -> String {
    let id = if route.starts_with("/api/v1/jobs/") {
        w.a.dead.to_string()
    } else if route.starts_with("/api/v1/orders/") {
        w.a.order.to_string()
    } else {
        w.va.token_id.to_string()
    };
    route
        .replace("{tenant}", &w.a.tenant.id.to_string())
        .replace("{id}", &id)
        .replace("{connection}", &w.a.conn.id.to_string())
        .replace("{direction}", "erp_to_marketplace")
        .replace("{version}", "1")
}

/// A valid body for a route's POST (so nothing but what is tested can refuse it).
fn body_for(w: &World, method: &str, route: &str) -> Option<Value> {
    match (method, route) {
        ("post", "/api/v1/session") => Some(json!({"username": "va", "password": w.va.password})),
        ("post", "/api/v1/tokens") => Some(json!({"name": "another"})),
        ("post", "/api/v1/jobs/replay") => {
            Some(json!({"tenant": w.a.tenant.id.to_string(), "dry_run": true}))
        }
        ("post", "/api/v1/orders/{id}/resolve") => Some(json!({"action": "retry_create"})),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// 1. A vendor and another tenant

/// One request of a case and the status it must get.
struct Probe {
    path: String,
    body: Option<Value>,
    status: u16,
    /// Words the answer must contain (a role refusal names the role; a list names the own row).
    contains: Vec<String>,
}

fn probe(path: impl Into<String>, body: Option<Value>, status: u16, contains: &[&str]) -> Probe {
    Probe {
        path: path.into(),
        body,
        status,
        contains: contains.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// What vendor `va` gets for each route: about its own tenant, and about tenant B's.
struct Case {
    own: Vec<Probe>,
    other: Vec<Probe>,
}

const SUPPORT_ONLY: &[&str] = &["needs the support role", "you are vendor"];

/// `live`: a job of A's and one of B's waiting in Redis.
fn vendor_case(
    w: &World,
    spare_token: Uuid,
    live: (JobId, JobId),
    method: &str,
    route: &str,
) -> Case {
    let (a, b) = (&w.a, &w.b);
    let (a_id, b_id) = (a.tenant.id.to_string(), b.tenant.id.to_string());
    let maps = |s: &Side, tail: &str| format!("/api/v1/connections/{}/mappings{tail}", s.conn.id);
    let deny = |path: String, body: Option<Value>| probe(path, body, 403, &["not yours"]);
    let a_dead = a.dead.to_string();
    match (method, route) {
        ("get", "/api/v1/me") => Case {
            own: vec![probe(route, None, 200, &["vendor", &a_id])],
            other: vec![],
        },
        ("post", "/api/v1/session") => Case {
            own: vec![probe(
                route,
                Some(json!({"username": "va", "password": w.va.password})),
                200,
                &["csrf"],
            )],
            other: vec![],
        },
        ("delete", "/api/v1/session") => Case {
            own: vec![probe(route, None, 204, &[])],
            other: vec![],
        },
        ("get", "/api/v1/tokens") => Case {
            own: vec![probe(route, None, 200, &[&w.va.token_id.to_string()])],
            other: vec![],
        },
        ("post", "/api/v1/tokens") => Case {
            own: vec![probe(
                route,
                Some(json!({"name": "made-by-va"})),
                201,
                &["mgz_"],
            )],
            other: vec![],
        },
        ("delete", "/api/v1/tokens/{id}") => Case {
            own: vec![probe(
                format!("/api/v1/tokens/{spare_token}"),
                None,
                204,
                &[],
            )],
            // Another user's token: not found as far as this user is concerned.
            other: vec![probe(
                format!("/api/v1/tokens/{}", w.vb.token_id),
                None,
                404,
                &["no live token"],
            )],
        },
        ("get", "/api/v1/fleet") => Case {
            own: vec![probe(
                route,
                None,
                403,
                &["needs the operator or support role", "you are vendor"],
            )],
            other: vec![],
        },
        ("get", "/api/v1/tenants") => Case {
            own: vec![probe(route, None, 200, &[&a_id, &a.tenant.slug])],
            // Its `?tenant=` refusal is checked in
            // `the_tenant_list_refuses_a_filter_naming_another_tenant`.
            other: vec![],
        },
        ("get", "/api/v1/tenants/{tenant}") => Case {
            own: vec![
                probe(format!("/api/v1/tenants/{a_id}"), None, 200, &[&a_id]),
                probe(
                    format!("/api/v1/tenants/{}", a.tenant.slug),
                    None,
                    200,
                    &[&a_id],
                ),
            ],
            other: vec![
                deny(format!("/api/v1/tenants/{b_id}"), None),
                deny(format!("/api/v1/tenants/{}", b.tenant.slug), None),
            ],
        },
        ("get", "/api/v1/jobs") => Case {
            own: vec![
                probe("/api/v1/jobs?state=dead", None, 200, &[&a_dead]),
                probe(
                    format!("/api/v1/jobs?state=dead&tenant={}", a.tenant.slug),
                    None,
                    200,
                    &[&a_dead],
                ),
                probe("/api/v1/jobs", None, 200, &["jobs"]),
                probe(
                    "/api/v1/jobs?state=ready",
                    None,
                    200,
                    &[&live.0.to_string()],
                ),
            ],
            other: vec![
                deny(format!("/api/v1/jobs?state=dead&tenant={b_id}"), None),
                deny(format!("/api/v1/jobs?tenant={}", b.tenant.slug), None),
            ],
        },
        ("get", "/api/v1/jobs/{id}") => Case {
            own: vec![probe(
                format!("/api/v1/jobs/{a_dead}"),
                None,
                200,
                &[&a_dead],
            )],
            other: vec![
                deny(format!("/api/v1/jobs/{}", b.dead), None),
                deny(format!("/api/v1/jobs/{}", live.1), None),
            ],
        },
        ("post", "/api/v1/jobs/{id}/replay") => Case {
            own: vec![probe(
                format!("/api/v1/jobs/{a_dead}/replay"),
                None,
                403,
                SUPPORT_ONLY,
            )],
            other: vec![probe(
                format!("/api/v1/jobs/{}/replay", b.dead),
                None,
                403,
                &[],
            )],
        },
        ("post", "/api/v1/jobs/replay") => Case {
            own: vec![
                probe(
                    route,
                    Some(json!({"tenant": a_id, "dry_run": true})),
                    403,
                    SUPPORT_ONLY,
                ),
                probe(route, Some(json!({"tenant": a_id})), 403, SUPPORT_ONLY),
            ],
            other: vec![
                probe(
                    route,
                    Some(json!({"tenant": b_id, "dry_run": true})),
                    403,
                    &[],
                ),
                probe(route, Some(json!({"tenant": b.tenant.slug})), 403, &[]),
            ],
        },
        ("get", "/api/v1/orders/review") => Case {
            own: vec![probe(route, None, 200, &[&a.channel_order_id])],
            other: vec![
                deny(format!("/api/v1/orders/review?tenant={b_id}"), None),
                deny(
                    format!("/api/v1/orders/review?tenant={}", b.tenant.slug),
                    None,
                ),
            ],
        },
        ("get", "/api/v1/orders/{id}") => Case {
            own: vec![probe(
                format!("/api/v1/orders/{}", a.order),
                None,
                200,
                &[&a.channel_order_id, "needs_review"],
            )],
            other: vec![deny(format!("/api/v1/orders/{}", b.order), None)],
        },
        ("post", "/api/v1/orders/{id}/resolve") => Case {
            own: vec![probe(
                format!("/api/v1/orders/{}/resolve", a.order),
                Some(json!({"action": "retry_create"})),
                403,
                SUPPORT_ONLY,
            )],
            other: vec![probe(
                format!("/api/v1/orders/{}/resolve", b.order),
                Some(json!({"action": "retry_create"})),
                403,
                &[],
            )],
        },
        ("get", "/api/v1/connections/{connection}/mappings") => Case {
            own: vec![probe(maps(a, ""), None, 200, &["erp_to_marketplace"])],
            other: vec![deny(maps(b, ""), None)],
        },
        ("get", "/api/v1/connections/{connection}/mappings/{direction}/{version}") => Case {
            own: vec![probe(
                maps(a, "/erp_to_marketplace/1"),
                None,
                200,
                &["title1"],
            )],
            other: vec![deny(maps(b, "/erp_to_marketplace/1"), None)],
        },
        ("get", "/api/v1/connections/{connection}/mappings/{direction}/{version}/diff") => Case {
            own: vec![
                probe(maps(a, "/erp_to_marketplace/2/diff"), None, 200, &["diffs"]),
                probe(maps(a, "/marketplace_to_erp/1/diff"), None, 200, &["diffs"]),
            ],
            other: vec![
                deny(maps(b, "/erp_to_marketplace/2/diff"), None),
                deny(maps(b, "/marketplace_to_erp/1/diff"), None),
            ],
        },
        ("post", "/api/v1/connections/{connection}/mappings/{direction}/{version}/activate") => {
            Case {
                own: vec![probe(
                    maps(a, "/erp_to_marketplace/1/activate"),
                    None,
                    403,
                    SUPPORT_ONLY,
                )],
                other: vec![deny(maps(b, "/erp_to_marketplace/1/activate"), None)],
            }
        }
        ("post", "/api/v1/connections/{connection}/mappings/{direction}/rollback") => Case {
            own: vec![probe(
                maps(a, "/erp_to_marketplace/rollback"),
                None,
                403,
                SUPPORT_ONLY,
            )],
            other: vec![deny(maps(b, "/erp_to_marketplace/rollback"), None)],
        },
        ("get", "/api/v1/audit") => Case {
            own: vec![probe(route, None, 200, &[&a.audit_action])],
            other: vec![
                deny(format!("/api/v1/audit?tenant={b_id}"), None),
                deny(format!("/api/v1/audit?tenant={}", b.tenant.slug), None),
            ],
        },
        _ => panic!(
            "no vendor case for {method} {route}: add one to `vendor_case` (what vendor va gets \
             about its own tenant and about tenant B's)"
        ),
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn every_route_refuses_a_vendor_another_tenants_things(pool: PgPool) {
    let w = world(pool).await;
    let va = w.va.token.clone();
    let spare = auth::create_token(&w.pool, &w.va.user, "spare", None)
        .await
        .unwrap()
        .0;
    let mut live = Vec::new();
    for s in [&w.a, &w.b] {
        let spec = JobSpec::new(
            JobKind::StockPush,
            JobPayload::v1(s.tenant.id, s.conn.id, Scope::All, Trigger::Manual),
        );
        match w.queue.enqueue(&spec).await.unwrap() {
            Enqueued::New(id) => live.push(id),
            other => panic!("{other:?}"),
        }
    }
    let live = (live[0], live[1]);
    let mut failures = Vec::new();
    for (method, route) in ROUTES {
        let case = vendor_case(&w, spare, live, method, route);
        assert!(!case.own.is_empty(), "{method} {route}: no own probe");
        for (p, whose) in case
            .own
            .iter()
            .map(|p| (p, "own"))
            .chain(case.other.iter().map(|p| (p, "B's")))
        {
            let r = w
                .request(Auth::Token(&va), method, &p.path, p.body.as_ref())
                .await;
            if r.status != p.status {
                failures.push(format!(
                    "{} ({whose}): expected {}, got {}: {}",
                    r.label, p.status, r.status, r.text
                ));
                continue;
            }
            for word in &p.contains {
                if !r.text.contains(word.as_str()) {
                    failures.push(format!(
                        "{} ({whose}): the answer should contain {word:?}: {}",
                        r.label, r.text
                    ));
                }
            }
            if r.status >= 400 && r.json["error"]["status"] != json!(r.status) {
                failures.push(format!("{}: not a JSON error: {}", r.label, r.text));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The lists hold A's rows only (and B's exist: the operator sees them).
    let a_id = w.a.tenant.id.to_string();
    for (path, key, tenant_field) in [
        ("/api/v1/tenants", "tenants", "id"),
        ("/api/v1/jobs?state=dead", "jobs", "tenant"),
        ("/api/v1/orders/review", "orders", "tenant"),
        ("/api/v1/audit", "entries", "tenant_id"),
    ] {
        let mine = w.get(&va, path).await;
        mine.expect(200);
        let got = rows(&mine, key);
        assert!(
            !got.is_empty(),
            "{path}: A's rows are missing: {}",
            mine.text
        );
        for row in got {
            assert_eq!(row[tenant_field], json!(a_id), "{path}: not A's row: {row}");
        }
        let all = w.get(&w.op.token, path).await;
        all.expect(200);
        assert!(
            rows(&all, key)
                .iter()
                .any(|r| r[tenant_field] == json!(w.b.tenant.id.to_string())),
            "{path}: the operator should see B's rows: {}",
            all.text
        );
    }

    // va's attempt to revoke vb's token changed nothing.
    w.get(&w.vb.token, "/api/v1/me").await.expect(200);

    // Nothing va was answered names anything of B's. (The audit log lists va's own refused
    // attempts, whose target is what va asked for, e.g. B's job id: va's input, not B's data.)
    let mut markers = w.markers_of_b();
    markers.push(live.1.to_string());
    let seen = w.seen.lock().unwrap().clone();
    let mut leaks = Vec::new();
    for (label, body) in seen.iter().filter(|(l, _)| l.ends_with(" as va")) {
        let mut shown = body.clone();
        if label.starts_with("GET /api/v1/audit")
            && let Ok(mut v) = serde_json::from_str::<Value>(body)
        {
            for e in v["entries"].as_array_mut().into_iter().flatten() {
                if e["actor"] == "va" {
                    e["target"] = Value::Null;
                }
            }
            shown = v.to_string();
        }
        for m in markers.iter().filter(|m| shown.contains(m.as_str())) {
            leaks.push(format!("{label} answered {m:?}: {body}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "B's things reached vendor va:\n{}",
        leaks.join("\n")
    );
}

/// Tenants, jobs, orders, connections: a vendor asking about a missing one gets the same answer
/// as about another tenant's, so it cannot tell that another tenant's exists.
#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_vendor_cannot_tell_another_tenants_thing_from_a_missing_one(pool: PgPool) {
    let w = world(pool).await;
    let va = w.va.token.clone();
    let missing_conn = ConnectionId(Uuid::new_v4());
    let pairs = [
        (
            format!("/api/v1/tenants/{}", w.b.tenant.id),
            format!("/api/v1/tenants/{}", TenantId(Uuid::new_v4())),
        ),
        (
            format!("/api/v1/orders/{}", w.b.order),
            format!("/api/v1/orders/{}", w.b.order + 1000),
        ),
        (
            format!("/api/v1/connections/{}/mappings", w.b.conn.id),
            format!("/api/v1/connections/{missing_conn}/mappings"),
        ),
        (
            format!("/api/v1/jobs/{}", w.b.dead),
            format!("/api/v1/jobs/{}", JobId::new()),
        ),
    ];
    let mut failures = Vec::new();
    for (theirs, missing) in pairs {
        let t = w.get(&va, &theirs).await;
        let m = w.get(&va, &missing).await;
        if (t.status, t.message()) != (m.status, m.message()) {
            failures.push(format!(
                "{} → {} {:?}, but {} → {} {:?}",
                t.label,
                t.status,
                t.message(),
                m.label,
                m.status,
                m.message()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The tenant list takes no filter: asked for another tenant's, it refuses (it does not answer
/// as if the filter were not there), as the other lists do.
#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_tenant_list_refuses_a_filter_naming_another_tenant(pool: PgPool) {
    let w = world(pool).await;
    for path in [
        format!("/api/v1/tenants?tenant={}", w.b.tenant.id),
        format!("/api/v1/tenants?tenant={}", w.b.tenant.slug),
    ] {
        let r = w.get(&w.va.token, &path).await;
        assert!(
            r.status == 403 || r.status == 400,
            "{}: expected 403 (or 400: no such filter), got {}: {}",
            r.label,
            r.status,
            r.text
        );
    }
    let r = w.get(&w.sup.token, "/api/v1/tenants?bogus=1").await;
    r.refused(400, &["bogus"]);
}

// ---------------------------------------------------------------------------------------------
// 2. Authentication

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn every_route_but_sign_in_needs_a_valid_caller(pool: PgPool) {
    let w = world(pool).await;
    // A token that worked (and so is in the console's cache) stops working at once when it is
    // revoked, expires, or its user is disabled.
    w.get(&w.vb.token, "/api/v1/me").await.expect(200);
    w.request(
        Auth::Token(&w.vb.token),
        "delete",
        &format!("/api/v1/tokens/{}", w.vb.token_id),
        None,
    )
    .await
    .expect(204);
    let expired = auth::create_token(
        &w.pool,
        &w.va.user,
        "old",
        Some(chrono::Utc::now() - chrono::Duration::hours(1)),
    )
    .await
    .unwrap()
    .1;
    let vd = user(&w.pool, "vd", Role::Vendor, Some(w.a.tenant.id)).await;
    w.get(&vd.token, "/api/v1/me").await.expect(200);
    let (vd_cookie, vd_csrf) = w.login("vd", &vd.password).await;
    users::set_disabled(&w.pool, "vd", true).await.unwrap();
    let unknown = format!("mgz_{}_{}", Uuid::new_v4().simple(), auth::random_secret());
    let wrong_secret = format!("mgz_{}_{}", w.va.token_id.simple(), auth::random_secret());
    let variants: Vec<(&str, Auth<'_>)> = vec![
        ("no auth", Auth::None),
        ("basic auth", Auth::Header("Basic dmE6cHc=")),
        ("empty bearer", Auth::Header("Bearer ")),
        ("garbage token", Auth::Token("garbage")),
        ("unknown token", Auth::Token(&unknown)),
        ("wrong secret", Auth::Token(&wrong_secret)),
        ("revoked token", Auth::Token(&w.vb.token)),
        ("expired token", Auth::Token(&expired)),
        ("disabled user's token", Auth::Token(&vd.token)),
        (
            "unknown session",
            Auth::Session {
                cookie: "no-such-session",
                csrf: None,
                origin: None,
            },
        ),
        (
            "disabled user's session",
            Auth::Session {
                cookie: &vd_cookie,
                csrf: Some(&vd_csrf),
                origin: None,
            },
        ),
    ];
    let mut failures = Vec::new();
    for (method, route) in ROUTES {
        match (*method, *route) {
            ("post", "/api/v1/session") => continue,
            // See `signing_out_needs_a_signed_in_caller`.
            ("delete", "/api/v1/session") => continue,
            _ => {}
        }
        let path = path_of_a(&w, route);
        let body = body_for(&w, method, route);
        for (what, a) in &variants {
            let r = w.request(*a, method, &path, body.as_ref()).await;
            if r.status != 401 || r.json["error"]["status"] != json!(401) {
                failures.push(format!("{} with {what}: {} {}", r.label, r.status, r.text));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Nothing of that changed anything.
    assert!(
        db::get_dead(&w.pool, w.a.dead)
            .await
            .unwrap()
            .unwrap()
            .replayed_as
            .is_none()
    );
    // The live token of the same user still works.
    w.get(&w.va.token, "/api/v1/me").await.expect(200);
}

/// Signing out is an action of a signed-in caller: without one it is 401, and a session's
/// sign-out needs its CSRF token like every other state-changing request.
#[sqlx::test(migrator = "db::MIGRATOR")]
async fn signing_out_needs_a_signed_in_caller(pool: PgPool) {
    let w = world(pool).await;
    let r = w
        .request(Auth::None, "delete", "/api/v1/session", None)
        .await;
    r.refused(401, &[]);
    let (cookie, _csrf) = w.login("sup", &w.sup.password).await;
    let r = w
        .request(
            Auth::Session {
                cookie: &cookie,
                csrf: None,
                origin: None,
            },
            "delete",
            "/api/v1/session",
            None,
        )
        .await;
    r.refused(403, &["CSRF"]);
    let me = w
        .request(
            Auth::Session {
                cookie: &cookie,
                csrf: None,
                origin: None,
            },
            "get",
            "/api/v1/me",
            None,
        )
        .await;
    me.expect(200);
}

// ---------------------------------------------------------------------------------------------
// 3. No secret, no personal datum

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn no_answer_holds_a_secret_or_a_personal_datum(pool: PgPool) {
    let w = world(pool).await;
    // Every route, as every role, about both tenants; then the support actions.
    for who in [&w.sup, &w.op, &w.va, &w.vb] {
        for side in [&w.a, &w.b] {
            for (method, route) in ROUTES {
                if *method != "get" {
                    continue;
                }
                let id = if route.starts_with("/api/v1/jobs/") {
                    side.dead.to_string()
                } else {
                    side.order.to_string()
                };
                for direction in ["erp_to_marketplace", "marketplace_to_erp"] {
                    let path = route
                        .replace("{tenant}", &side.tenant.slug)
                        .replace("{id}", &id)
                        .replace("{connection}", &side.conn.id.to_string())
                        .replace("{direction}", direction)
                        .replace("{version}", "1");
                    w.get(&who.token, &path).await;
                    if !route.contains("{direction}") {
                        break;
                    }
                }
            }
            for q in [
                "/api/v1/jobs?state=dead",
                "/api/v1/jobs?state=ready",
                "/api/v1/audit?limit=1000",
            ] {
                w.get(&who.token, &format!("{q}&tenant={}", side.tenant.slug))
                    .await;
            }
        }
    }
    let sup = w.sup.token.clone();
    // The order is shown, masked: the test would see a leak if it were not masked.
    let o = w.get(&sup, &format!("/api/v1/orders/{}", w.a.order)).await;
    o.expect(200);
    assert_eq!(o.json["order"]["customer"]["name"], "Z. P.", "{}", o.text);
    w.post(
        &sup,
        &format!("/api/v1/orders/{}/resolve", w.a.order),
        Some(json!({"action": "mark_created", "document_id": "PRO-0042"})),
    )
    .await
    .expect(422);
    w.post(
        &sup,
        &format!("/api/v1/orders/{}/resolve", w.a.order),
        Some(json!({"action": "cancel", "reason": "the buyer asked"})),
    )
    .await
    .expect(422);
    w.post(
        &sup,
        &format!("/api/v1/orders/{}/resolve", w.a.order),
        Some(json!({"action": "retry_create"})),
    )
    .await
    .expect(200);
    w.post(&sup, &format!("/api/v1/jobs/{}/replay", w.a.dead), None)
        .await
        .expect(200);
    w.post(
        &sup,
        "/api/v1/jobs/replay",
        Some(json!({"dry_run": true, "limit": 1000})),
    )
    .await
    .expect(200);
    w.post(
        &sup,
        &format!(
            "/api/v1/connections/{}/mappings/erp_to_marketplace/1/activate",
            w.a.conn.id
        ),
        Some(json!({"comment": "go"})),
    )
    .await
    .expect(200);
    w.post(&sup, "/api/v1/tokens", Some(json!({"name": "cli"})))
        .await
        .expect(201);
    w.get(&sup, "/api/v1/tokens").await.expect(200);
    w.get(&sup, "/api/v1/audit?limit=1000").await.expect(200);
    let (cookie, csrf) = w.login("sup", &w.sup.password).await;
    w.request(
        Auth::Session {
            cookie: &cookie,
            csrf: Some(&csrf),
            origin: None,
        },
        "get",
        "/api/v1/me",
        None,
    )
    .await
    .expect(200);
    w.request(
        Auth::None,
        "post",
        "/api/v1/session",
        Some(&json!({"username": "sup", "password": "wrong"})),
    )
    .await
    .expect(401);

    let mut forbidden = w.secrets();
    forbidden.extend(PERSONAL.iter().map(|s| (*s).to_owned()));
    let leaks = w.leaks(&forbidden);
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
    assert!(
        w.seen.lock().unwrap().len() > 100,
        "the sweep made its requests"
    );
}

/// The evidence of an order in review and a dead job's errors are free text, masked before
/// they are shown: e-mails, and phone numbers however they are written (mask.rs: "runs of 7 or
/// more digits (spaces, dashes and a leading + inside the run count as part of it)").
#[sqlx::test(migrator = "db::MIGRATOR")]
async fn phone_numbers_written_with_spaces_are_masked_in_evidence_and_errors(pool: PgPool) {
    let w = world(pool).await;
    let text =
        format!("the marketplace refused the buyer's phone {CUSTOMER_PHONE} ({CUSTOMER_EMAIL})");
    let order = order_in_review(&w.pool, &w.a.conn, "ALPHA-ORD-PHONE", &text).await;
    let dead = dead_job(&w.pool, &w.a.conn, JobKind::OrderPull, &text).await;
    let sup = w.sup.token.clone();
    w.get(&sup, &format!("/api/v1/orders/{order}"))
        .await
        .expect(200);
    w.get(&sup, "/api/v1/orders/review").await.expect(200);
    w.get(&sup, &format!("/api/v1/jobs/{dead}"))
        .await
        .expect(200);
    w.get(&sup, "/api/v1/jobs?state=dead").await.expect(200);
    let forbidden: Vec<String> = PERSONAL.iter().map(|s| (*s).to_owned()).collect();
    let leaks = w.leaks(&forbidden);
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 4. Support flows

/// The audit entries of tenant A as support sees them.
async fn audit_of_a(w: &World) -> Vec<Value> {
    let r = w
        .get(
            &w.sup.token,
            &format!("/api/v1/audit?tenant={}&limit=1000", w.a.tenant.slug),
        )
        .await;
    r.expect(200);
    rows(&r, "entries").clone()
}

#[track_caller]
fn assert_audited(entries: &[Value], actor: &str, action: &str, target: &str, outcome: &str) {
    assert!(
        entries.iter().any(|e| e["actor"] == actor
            && e["action"] == action
            && e["target"] == target
            && e["outcome"] == outcome),
        "no audit entry ({actor}, {action}, {target}, {outcome}) in:\n{}",
        entries
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn support_replays_dead_jobs_once_and_it_is_audited(pool: PgPool) {
    let w = world(pool).await;
    let sup = w.sup.token.clone();
    let a_dead = w.a.dead.to_string();

    // The operator watches; only support replays.
    w.post(&w.op.token, &format!("/api/v1/jobs/{a_dead}/replay"), None)
        .await
        .refused(403, &["needs the support role", "you are operator"]);

    let r = w
        .post(&sup, &format!("/api/v1/jobs/{a_dead}/replay"), None)
        .await;
    r.expect(200);
    assert_eq!(r.json["outcome"], "replayed", "{}", r.text);
    assert_eq!(r.json["job"], json!(a_dead));
    let new_id: JobId = r.json["new_id"].as_str().unwrap().parse().unwrap();
    assert_ne!(new_id, w.a.dead);
    w.post(&sup, &format!("/api/v1/jobs/{a_dead}/replay"), None)
        .await
        .refused(409, &["already replayed"]);

    // The dead record points at the new job, which is in the queue as a replay of it.
    let j = w.get(&sup, &format!("/api/v1/jobs/{a_dead}")).await;
    j.expect(200);
    assert_eq!(
        j.json["dead"]["replayed_as"],
        json!(new_id.to_string()),
        "{}",
        j.text
    );
    let rec = w
        .queue
        .job(new_id)
        .await
        .unwrap()
        .expect("the replay is in Redis");
    assert_eq!(rec.kind, "catalog_push");
    assert_eq!(rec.tenant, w.a.tenant.id.to_string());
    assert_eq!(rec.state, "ready");
    let payload: JobPayload = serde_json::from_str(&rec.payload).unwrap();
    assert_eq!(payload.connection(), w.a.conn.id);
    assert!(
        rec.payload.contains(&a_dead),
        "a replay of it: {}",
        rec.payload
    );
    let ready = w
        .queue
        .ids_in_state(JobState::Ready, Some(JobKind::CatalogPush), 100)
        .await
        .unwrap();
    assert!(ready.contains(&new_id));
    // It is no longer listed as dead.
    let dead = w
        .get(
            &sup,
            &format!("/api/v1/jobs?state=dead&tenant={}", w.a.tenant.slug),
        )
        .await;
    assert!(!dead.text.contains(&a_dead), "{}", dead.text);

    // Many at once: a dry run lists them and replays nothing; then for real.
    let d2 = dead_job(&w.pool, &w.a.conn, JobKind::StockPush, "boom").await;
    let d3 = dead_job(&w.pool, &w.a.conn, JobKind::AwbPush, "boom").await;
    let filter = json!({"tenant": w.a.tenant.slug, "dry_run": true});
    let dry = w.post(&sup, "/api/v1/jobs/replay", Some(filter)).await;
    dry.expect(200);
    let listed: BTreeSet<String> = rows(&dry, "would_replay")
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        listed,
        BTreeSet::from([d2.to_string(), d3.to_string()]),
        "{}",
        dry.text
    );
    for d in [d2, d3] {
        let row = db::get_dead(&w.pool, d).await.unwrap().unwrap();
        assert!(row.replayed_as.is_none(), "a dry run replayed {d}");
    }
    assert_eq!(
        w.queue
            .ids_in_state(JobState::Ready, None, 100)
            .await
            .unwrap(),
        [new_id],
        "a dry run enqueued nothing"
    );
    let real = w
        .post(
            &sup,
            "/api/v1/jobs/replay",
            Some(json!({"tenant": w.a.tenant.slug})),
        )
        .await;
    real.expect(200);
    let results = rows(&real, "results");
    assert_eq!(results.len(), 2, "{}", real.text);
    assert!(
        results.iter().all(|r| r["outcome"] == "replayed"),
        "{}",
        real.text
    );
    for d in [d2, d3] {
        let row = db::get_dead(&w.pool, d).await.unwrap().unwrap();
        let new = row.replayed_as.expect("replayed");
        assert!(w.queue.job(new).await.unwrap().is_some());
    }
    // B's dead job was not in A's filter.
    let b_row = db::get_dead(&w.pool, w.b.dead).await.unwrap().unwrap();
    assert!(b_row.replayed_as.is_none());
    let again = w
        .post(
            &sup,
            "/api/v1/jobs/replay",
            Some(json!({"tenant": w.a.tenant.slug})),
        )
        .await;
    again.expect(200);
    assert!(rows(&again, "results").is_empty(), "{}", again.text);

    let audit = audit_of_a(&w).await;
    assert_audited(&audit, "sup", "job.replay", &a_dead, "done");
    assert_audited(&audit, "sup", "job.replay", &a_dead, "refused");
    assert_audited(&audit, "sup", "job.replay", &d2.to_string(), "done");
    assert_audited(&audit, "sup", "job.replay", &d3.to_string(), "done");
    assert!(
        audit.iter().any(|e| e["action"] == "job.replay_many"
            && e["outcome"] == "done"
            && e["detail"]["count"] == 2),
        "{audit:?}"
    );
    for e in audit.iter().filter(|e| e["actor"] == "sup") {
        assert_eq!(
            (e["role"].as_str(), e["via"].as_str()),
            (Some("support"), Some("token"))
        );
    }
    // The action filter.
    let only = w.get(&sup, "/api/v1/audit?action=job.replay_many").await;
    assert!(
        rows(&only, "entries")
            .iter()
            .all(|e| e["action"] == "job.replay_many")
            && !rows(&only, "entries").is_empty(),
        "{}",
        only.text
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn support_resolves_orders_in_review_once_and_it_is_audited(pool: PgPool) {
    let w = world(pool).await;
    let sup = w.sup.token.clone();
    let order = w.a.order.to_string();
    let resolve = format!("/api/v1/orders/{order}/resolve");

    // The no-op ERP keeps no documents and the no-op marketplace no orders: refused, naming why,
    // and the order stays in review.
    w.post(
        &sup,
        &resolve,
        Some(json!({"action": "mark_created", "document_id": "DOC-1"})),
    )
    .await
    .refused(422, &["no-op ERP keeps no documents"]);
    w.post(
        &sup,
        &resolve,
        Some(json!({"action": "cancel", "reason": "the buyer asked"})),
    )
    .await
    .refused(422, &["no-op marketplace"]);
    w.post(
        &w.op.token,
        &resolve,
        Some(json!({"action": "retry_create"})),
    )
    .await
    .refused(403, &["needs the support role", "you are operator"]);
    let o = w.get(&sup, &format!("/api/v1/orders/{order}")).await;
    assert_eq!(o.json["state"], "needs_review", "{}", o.text);
    // The evidence is shown (its e-mail masked).
    let shown = o.json["evidence"].as_str().unwrap_or_default();
    let (head, _) = w.a.evidence.split_once(CUSTOMER_EMAIL).unwrap();
    assert!(
        shown.starts_with(head) && shown.ends_with("(alpha-evidence-7Q)"),
        "{shown}"
    );

    // Retry the create: back to claimed, and a pull of that order is queued.
    let r = w
        .post(&sup, &resolve, Some(json!({"action": "retry_create"})))
        .await;
    r.expect(200);
    assert_eq!(r.json["result"], "sent back to be created", "{}", r.text);
    let o = w.get(&sup, &format!("/api/v1/orders/{order}")).await;
    assert_eq!(o.json["state"], "claimed", "{}", o.text);
    let pulls = w
        .queue
        .ids_in_state(JobState::Ready, Some(JobKind::OrderPull), 100)
        .await
        .unwrap();
    let mut found = false;
    for id in pulls {
        let rec = w.queue.job(id).await.unwrap().unwrap();
        let p: JobPayload = serde_json::from_str(&rec.payload).unwrap();
        if p.connection() == w.a.conn.id
            && *p.scope()
                == (Scope::Order {
                    order: ChannelOrderId::new(&w.a.channel_order_id).unwrap(),
                })
        {
            found = true;
        }
    }
    assert!(found, "no order_pull of {} queued", w.a.channel_order_id);
    w.post(&sup, &resolve, Some(json!({"action": "retry_create"})))
        .await
        .refused(409, &["not in review"]);
    let review = w.get(&sup, "/api/v1/orders/review").await;
    assert!(
        review.text.contains(&w.b.channel_order_id) && !review.text.contains(&w.a.channel_order_id),
        "only B's order is still in review: {}",
        review.text
    );

    // An ERP that keeps documents: the document id is checked against its format, then the
    // order is created with it.
    let sb = db::add_connection(
        &w.pool,
        w.a.tenant.id,
        Erp::SmartBill,
        Marketplace::Noop,
        None,
        json!({}),
    )
    .await
    .unwrap();
    let sb_order = order_in_review(&w.pool, &sb, "ALPHA-SB-1", "proforma call timed out").await;
    let sb_resolve = format!("/api/v1/orders/{sb_order}/resolve");
    w.post(
        &sup,
        &sb_resolve,
        Some(json!({"action": "mark_created", "document_id": "0042"})),
    )
    .await
    .refused(422, &["series-number"]);
    let r = w
        .post(
            &sup,
            &sb_resolve,
            Some(json!({"action": "mark_created", "document_id": "PRO-0042"})),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json["result"], "marked created", "{}", r.text);
    let o = w.get(&sup, &format!("/api/v1/orders/{sb_order}")).await;
    assert_eq!(
        (o.json["state"].as_str(), o.json["erp_document_id"].as_str()),
        (Some("created"), Some("PRO-0042")),
        "{}",
        o.text
    );
    w.post(
        &sup,
        &sb_resolve,
        Some(json!({"action": "mark_created", "document_id": "PRO-0043"})),
    )
    .await
    .refused(409, &["not in review"]);
    w.post(
        &sup,
        "/api/v1/orders/999999/resolve",
        Some(json!({"action": "retry_create"})),
    )
    .await
    .refused(404, &["999999"]);

    let audit = audit_of_a(&w).await;
    let sb_target = sb_order.to_string();
    assert_audited(&audit, "sup", "order.mark_created", &order, "refused");
    assert_audited(&audit, "sup", "order.cancel", &order, "refused");
    assert_audited(&audit, "sup", "order.retry_create", &order, "done");
    assert_audited(&audit, "sup", "order.retry_create", &order, "refused");
    assert_audited(&audit, "sup", "order.mark_created", &sb_target, "refused");
    assert_audited(&audit, "sup", "order.mark_created", &sb_target, "done");
    // The vendor of A sees what support did to its orders.
    let mine = w
        .get(&w.va.token, "/api/v1/audit?action=order.retry_create")
        .await;
    assert!(!rows(&mine, "entries").is_empty(), "{}", mine.text);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn support_activates_and_rolls_back_mappings_and_it_is_audited(pool: PgPool) {
    let w = world(pool).await;
    let sup = w.sup.token.clone();
    let conn = w.a.conn.id.to_string();
    let base = format!("/api/v1/connections/{conn}/mappings/erp_to_marketplace");

    w.post(&w.op.token, &format!("{base}/1/activate"), None)
        .await
        .refused(403, &["needs the support role", "you are operator"]);
    let r = w
        .post(
            &sup,
            &format!("{base}/1/activate"),
            Some(json!({"comment": "go live"})),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json, json!({"active": 1, "previous": null}));
    let r = w.post(&sup, &format!("{base}/2/activate"), None).await;
    r.expect(200);
    assert_eq!(r.json, json!({"active": 2, "previous": 1}));
    w.post(&sup, &format!("{base}/99/activate"), None)
        .await
        .refused(404, &["99"]);
    let diff = w.get(&sup, &format!("{base}/1/diff")).await;
    diff.expect(200);
    assert_eq!(diff.json["against"], 2, "{}", diff.text);
    let r = w
        .post(
            &sup,
            &format!("{base}/rollback"),
            Some(json!({"comment": "bad titles"})),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json, json!({"active": 1}));
    w.post(&sup, &format!("{base}/rollback"), None)
        .await
        .refused(409, &["roll back"]);
    let m = w
        .get(&sup, &format!("/api/v1/connections/{conn}/mappings"))
        .await;
    m.expect(200);
    let versions = m.json["mappings"]["erp_to_marketplace"]["versions"]
        .as_array()
        .unwrap();
    let active: Vec<i64> = versions
        .iter()
        .filter(|v| v["active"] == true)
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(active, [1], "{}", m.text);

    let audit = audit_of_a(&w).await;
    assert_audited(&audit, "sup", "mapping.activate", &conn, "done");
    assert_audited(&audit, "sup", "mapping.activate", &conn, "refused");
    assert_audited(&audit, "sup", "mapping.rollback", &conn, "done");
    assert_audited(&audit, "sup", "mapping.rollback", &conn, "refused");
    assert!(
        audit.iter().any(|e| e["action"] == "mapping.activate"
            && e["detail"]["version"] == 1
            && e["detail"]["comment"] == "go live"),
        "{audit:?}"
    );
}

/// "Every state-changing action is written to the audit log, refused ones included"
/// (console/mod.rs): a vendor or an operator trying a support action is refused, and that is in
/// the log too.
#[sqlx::test(migrator = "db::MIGRATOR")]
async fn refused_support_actions_are_audited_too(pool: PgPool) {
    let w = world(pool).await;
    let a = &w.a;
    let conn = a.conn.id.to_string();
    let tries = [
        (
            format!("/api/v1/jobs/{}/replay", a.dead),
            None,
            "job.replay",
            a.dead.to_string(),
        ),
        (
            format!("/api/v1/orders/{}/resolve", a.order),
            Some(json!({"action": "retry_create"})),
            "order.retry_create",
            a.order.to_string(),
        ),
        (
            format!("/api/v1/connections/{conn}/mappings/erp_to_marketplace/1/activate"),
            None,
            "mapping.activate",
            conn.clone(),
        ),
        (
            format!("/api/v1/connections/{conn}/mappings/erp_to_marketplace/rollback"),
            None,
            "mapping.rollback",
            conn.clone(),
        ),
    ];
    for (path, body, _, _) in &tries {
        w.post(&w.va.token, path, body.clone()).await.expect(403);
    }
    let audit = audit_of_a(&w).await;
    let mut missing = Vec::new();
    for (_, _, action, target) in &tries {
        if !audit.iter().any(|e| {
            e["actor"] == "va"
                && e["action"] == *action
                && e["target"] == *target
                && e["outcome"] == "refused"
        }) {
            missing.push(format!("{action} {target}"));
        }
    }
    assert!(
        missing.is_empty(),
        "refused attempts of va not audited: {missing:?}; the log: {audit:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Sessions and CSRF

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_session_has_a_strict_cookie_and_needs_its_csrf_token(pool: PgPool) {
    let w = world(pool).await;
    let login = w
        .request(
            Auth::None,
            "post",
            "/api/v1/session",
            Some(&json!({"username": "sup", "password": w.sup.password})),
        )
        .await;
    login.expect(200);
    let set = login
        .cookies
        .iter()
        .find(|c| c.starts_with("megzo_session="))
        .unwrap_or_else(|| panic!("no session cookie: {:?}", login.cookies))
        .clone();
    let attrs: Vec<String> = set
        .split(';')
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for a in ["httponly", "secure", "samesite=strict"] {
        assert!(attrs.iter().any(|x| x == a), "{a} missing from {set}");
    }
    let cookie = session_cookie(&login).unwrap();
    let csrf = login.json["csrf"].as_str().unwrap().to_owned();
    assert!(csrf.len() >= 32, "{csrf}");
    assert!(
        !login.text.contains(&cookie),
        "the session id is not in the body"
    );

    // Wrong password and unknown user: the same answer.
    let wrong = w
        .request(
            Auth::None,
            "post",
            "/api/v1/session",
            Some(&json!({"username": "sup", "password": "not-it"})),
        )
        .await;
    let unknown = w
        .request(
            Auth::None,
            "post",
            "/api/v1/session",
            Some(&json!({"username": "nobody", "password": "not-it"})),
        )
        .await;
    wrong.refused(401, &[]);
    unknown.refused(401, &[]);
    assert_eq!(wrong.message(), unknown.message());
    assert!(wrong.cookies.is_empty() && unknown.cookies.is_empty());
    users::set_disabled(&w.pool, "op", true).await.unwrap();
    let disabled = w
        .request(
            Auth::None,
            "post",
            "/api/v1/session",
            Some(&json!({"username": "op", "password": w.op.password})),
        )
        .await;
    disabled.refused(401, &[]);
    assert_eq!(disabled.message(), wrong.message());

    let me = w
        .request(
            Auth::Session {
                cookie: &cookie,
                csrf: None,
                origin: None,
            },
            "get",
            "/api/v1/me",
            None,
        )
        .await;
    me.expect(200);
    assert_eq!(
        (
            me.json["username"].as_str(),
            me.json["via"].as_str(),
            me.json["csrf"].as_str()
        ),
        (Some("sup"), Some("session"), Some(csrf.as_str()))
    );

    let evil = "https://evil.example";
    let own_origin = w.base.clone();
    let token_body = json!({"name": "from-session"});
    // (CSRF header, Origin, status, what a refusal names)
    let cases: [(Option<&str>, Option<&str>, u16, &str); 6] = [
        (None, None, 403, "missing CSRF token"),
        (Some("wrong-token"), None, 403, "does not match"),
        (Some(&csrf), Some(evil), 403, "cross-origin"),
        (None, Some(evil), 403, "cross-origin"),
        (Some(&csrf), None, 201, ""),
        (Some(&csrf), Some(&own_origin), 201, ""),
    ];
    for (c, o, status, word) in cases {
        let r = w
            .request(
                Auth::Session {
                    cookie: &cookie,
                    csrf: c,
                    origin: o,
                },
                "post",
                "/api/v1/tokens",
                Some(&token_body),
            )
            .await;
        if status == 201 {
            r.expect(201);
        } else {
            r.refused(status, &[word]);
        }
    }
    // A refused request changed nothing: the dead job is still there.
    w.request(
        Auth::Session {
            cookie: &cookie,
            csrf: None,
            origin: None,
        },
        "post",
        &format!("/api/v1/jobs/{}/replay", w.a.dead),
        None,
    )
    .await
    .refused(403, &["CSRF"]);
    assert!(
        db::get_dead(&w.pool, w.a.dead)
            .await
            .unwrap()
            .unwrap()
            .replayed_as
            .is_none()
    );
    // With the token it works, and the audit says it came from a session.
    w.request(
        Auth::Session {
            cookie: &cookie,
            csrf: Some(&csrf),
            origin: None,
        },
        "post",
        &format!("/api/v1/jobs/{}/replay", w.a.dead),
        None,
    )
    .await
    .expect(200);
    let audit = audit_of_a(&w).await;
    assert!(
        audit.iter().any(|e| e["action"] == "job.replay"
            && e["via"] == "session"
            && e["outcome"] == "done"),
        "{audit:?}"
    );
    let tokens = w.get(&w.sup.token, "/api/v1/tokens").await;
    let made = rows(&tokens, "tokens")
        .iter()
        .filter(|t| t["name"] == "from-session")
        .count();
    assert_eq!(made, 2, "{}", tokens.text);

    // Sign out: the cookie is cleared and the session is gone.
    let out = w
        .request(
            Auth::Session {
                cookie: &cookie,
                csrf: Some(&csrf),
                origin: None,
            },
            "delete",
            "/api/v1/session",
            None,
        )
        .await;
    out.expect(204);
    assert!(
        out.cookies
            .iter()
            .any(|c| c.starts_with("megzo_session=;") && c.contains("Max-Age=0")),
        "{:?}",
        out.cookies
    );
    w.request(
        Auth::Session {
            cookie: &cookie,
            csrf: Some(&csrf),
            origin: None,
        },
        "get",
        "/api/v1/me",
        None,
    )
    .await
    .refused(401, &["sign in"]);
}

// ---------------------------------------------------------------------------------------------
// 6. Bad input

/// A request body: JSON, or raw bytes with a content type.
enum B {
    None,
    Json(Value),
    Raw(&'static str, String),
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn bad_input_is_a_4xx_naming_what_was_wrong(pool: PgPool) {
    let w = world(pool).await;
    let a = &w.a;
    let conn = a.conn.id;
    let order = a.order;
    let maps = format!("/api/v1/connections/{conn}/mappings");
    let json_ct = "application/json";
    let long_name = "n".repeat(101);
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(1_100_000));
    let cases: Vec<(&str, String, B, u16, Vec<&str>)> = vec![
        // Bodies
        (
            "post",
            "/api/v1/jobs/replay".into(),
            B::Raw(json_ct, "{\"dry_run\": tru".into()),
            400,
            vec!["JSON"],
        ),
        (
            "post",
            "/api/v1/jobs/replay".into(),
            B::Json(json!({"dry_run": true, "tenat": a.tenant.slug})),
            422,
            vec!["tenat"],
        ),
        (
            "post",
            "/api/v1/jobs/replay".into(),
            B::Json(json!({"dry_run": "yes"})),
            422,
            vec!["dry_run"],
        ),
        (
            "post",
            "/api/v1/jobs/replay".into(),
            B::Json(json!({"state": "ready"})),
            400,
            vec!["state"],
        ),
        (
            "post",
            "/api/v1/jobs/replay".into(),
            B::Json(json!({"kind": "nonsense_push", "dry_run": true})),
            400,
            vec!["nonsense_push"],
        ),
        (
            "post",
            "/api/v1/jobs/replay".into(),
            B::Raw("text/plain", "{}".into()),
            415,
            vec!["application/json"],
        ),
        (
            "post",
            "/api/v1/tokens".into(),
            B::Json(json!({"name": "x", "bogus": 1})),
            422,
            vec!["bogus"],
        ),
        (
            "post",
            "/api/v1/tokens".into(),
            B::Json(json!({})),
            422,
            vec!["name"],
        ),
        (
            "post",
            "/api/v1/tokens".into(),
            B::Json(json!({"name": "x", "expires_in_days": 0})),
            400,
            vec!["expires_in_days"],
        ),
        (
            "post",
            "/api/v1/tokens".into(),
            B::Json(json!({"name": "x", "expires_in_days": -3})),
            422,
            vec!["expires_in_days"],
        ),
        (
            "post",
            "/api/v1/tokens".into(),
            B::Json(json!({"name": long_name})),
            400,
            vec!["token name"],
        ),
        (
            "post",
            "/api/v1/tokens".into(),
            B::Raw(json_ct, huge),
            413,
            vec![],
        ),
        (
            "post",
            "/api/v1/session".into(),
            B::Raw(json_ct, "not json".into()),
            400,
            vec!["JSON"],
        ),
        (
            "post",
            "/api/v1/session".into(),
            B::Json(json!({"username": "sup"})),
            422,
            vec!["password"],
        ),
        (
            "post",
            format!("/api/v1/orders/{order}/resolve"),
            B::Json(json!({"action": "explode"})),
            422,
            vec!["explode"],
        ),
        (
            "post",
            format!("/api/v1/orders/{order}/resolve"),
            B::Json(json!({"action": "mark_created"})),
            422,
            vec!["document_id"],
        ),
        (
            "post",
            format!("/api/v1/orders/{order}/resolve"),
            B::Json(json!({"action": "retry_create", "why": 1})),
            422,
            vec!["why"],
        ),
        (
            "post",
            format!("/api/v1/orders/{order}/resolve"),
            B::None,
            415,
            vec!["application/json"],
        ),
        (
            "post",
            format!("{maps}/erp_to_marketplace/1/activate"),
            B::Raw(json_ct, "{bad".into()),
            400,
            vec!["bad request body"],
        ),
        (
            "post",
            format!("{maps}/erp_to_marketplace/1/activate"),
            B::Json(json!({"comment": 5})),
            400,
            vec!["comment"],
        ),
        (
            "post",
            format!("{maps}/erp_to_marketplace/1/activate"),
            B::Json(json!({"coment": "x"})),
            400,
            vec!["coment"],
        ),
        // Ids
        (
            "get",
            "/api/v1/jobs/not-a-uuid".into(),
            B::None,
            400,
            vec!["job id", "not-a-uuid"],
        ),
        (
            "post",
            "/api/v1/jobs/not-a-uuid/replay".into(),
            B::None,
            400,
            vec!["job id", "not-a-uuid"],
        ),
        (
            "get",
            "/api/v1/orders/abc".into(),
            B::None,
            400,
            vec!["order id", "abc"],
        ),
        (
            "post",
            "/api/v1/orders/1.5/resolve".into(),
            B::Json(json!({"action": "retry_create"})),
            400,
            vec!["order id"],
        ),
        (
            "get",
            "/api/v1/connections/xyz/mappings".into(),
            B::None,
            400,
            vec!["connection id", "xyz"],
        ),
        (
            "delete",
            "/api/v1/tokens/xyz".into(),
            B::None,
            400,
            vec!["token id", "xyz"],
        ),
        (
            "get",
            "/api/v1/tenants/Not%20A%20Slug!".into(),
            B::None,
            400,
            vec!["slug"],
        ),
        (
            "get",
            "/api/v1/tenants/no-such-shop".into(),
            B::None,
            404,
            vec!["no-such-shop"],
        ),
        (
            "get",
            format!("/api/v1/jobs/{}", JobId::new()),
            B::None,
            404,
            vec!["no job"],
        ),
        (
            "get",
            "/api/v1/orders/987654".into(),
            B::None,
            404,
            vec!["987654"],
        ),
        (
            "get",
            format!("/api/v1/connections/{}/mappings", Uuid::new_v4()),
            B::None,
            404,
            vec!["no connection"],
        ),
        // Mapping paths
        (
            "get",
            format!("{maps}/sideways/1"),
            B::None,
            400,
            vec!["sideways"],
        ),
        (
            "get",
            format!("{maps}/erp_to_marketplace/one"),
            B::None,
            400,
            vec!["version", "one"],
        ),
        (
            "get",
            format!("{maps}/erp_to_marketplace/77"),
            B::None,
            404,
            vec!["77"],
        ),
        (
            "get",
            format!("{maps}/sideways/1/diff"),
            B::None,
            400,
            vec!["sideways"],
        ),
        (
            "post",
            format!("{maps}/sideways/1/activate"),
            B::None,
            400,
            vec!["sideways"],
        ),
        (
            "post",
            format!("{maps}/sideways/rollback"),
            B::None,
            400,
            vec!["sideways"],
        ),
        // Queries
        (
            "get",
            "/api/v1/jobs?kind=bogus_kind".into(),
            B::None,
            400,
            vec!["bogus_kind"],
        ),
        (
            "get",
            "/api/v1/jobs?state=zombie".into(),
            B::None,
            400,
            vec!["zombie"],
        ),
        (
            "get",
            "/api/v1/jobs?limit=0".into(),
            B::None,
            400,
            vec!["limit"],
        ),
        (
            "get",
            "/api/v1/jobs?limit=1001".into(),
            B::None,
            400,
            vec!["limit"],
        ),
        (
            "get",
            "/api/v1/jobs?limit=abc".into(),
            B::None,
            400,
            vec!["limit"],
        ),
        (
            "get",
            "/api/v1/jobs?since=yesterday".into(),
            B::None,
            400,
            vec!["since"],
        ),
        (
            "get",
            "/api/v1/jobs?since=2025-02-01T00:00:00Z&until=2025-01-01T00:00:00Z".into(),
            B::None,
            400,
            vec!["since", "until"],
        ),
        (
            "get",
            "/api/v1/jobs?tenantt=x".into(),
            B::None,
            400,
            vec!["tenantt"],
        ),
        (
            "get",
            "/api/v1/jobs?tenant=no-such-shop".into(),
            B::None,
            404,
            vec!["no-such-shop"],
        ),
        (
            "get",
            "/api/v1/jobs?tenant=Bad%20Slug".into(),
            B::None,
            400,
            vec!["slug"],
        ),
        (
            "get",
            "/api/v1/audit?limit=0".into(),
            B::None,
            400,
            vec!["limit"],
        ),
        (
            "get",
            "/api/v1/audit?limit=100000".into(),
            B::None,
            400,
            vec!["limit"],
        ),
        (
            "get",
            "/api/v1/audit?bogus=1".into(),
            B::None,
            400,
            vec!["bogus"],
        ),
        (
            "get",
            "/api/v1/orders/review?bogus=1".into(),
            B::None,
            400,
            vec!["bogus"],
        ),
        (
            "get",
            "/api/v1/orders/review?limit=x".into(),
            B::None,
            400,
            vec!["limit"],
        ),
        // Routes
        (
            "get",
            "/api/v1/nope".into(),
            B::None,
            404,
            vec!["/api/v1/nope"],
        ),
        ("get", "/nope".into(), B::None, 404, vec!["/nope"]),
        (
            "post",
            "/api/v1/jobs/replay/extra".into(),
            B::None,
            404,
            vec!["/api/v1/jobs/replay/extra"],
        ),
    ];
    let mut failures = Vec::new();
    for (method, path, body, status, words) in cases {
        let m = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let mut rb = w.raw(m, &path).bearer_auth(&w.sup.token);
        rb = match body {
            B::None => rb,
            B::Json(v) => rb.json(&v),
            B::Raw(ct, text) => rb.header(reqwest::header::CONTENT_TYPE, ct).body(text),
        };
        let r = w.send(format!("{method} {path} as sup"), rb).await;
        let m = r.message();
        let shown = if r.text.len() > 400 {
            &r.text[..400]
        } else {
            &r.text
        };
        if r.status != status {
            failures.push(format!(
                "{}: expected {status}, got {}: {shown}",
                r.label, r.status
            ));
        } else if r.json["error"]["status"] != json!(status) {
            failures.push(format!("{}: not a JSON error: {shown}", r.label));
        } else if let Some(word) = words.iter().find(|w| !m.contains(**w)) {
            failures.push(format!(
                "{}: the message should name {word:?}: {m}",
                r.label
            ));
        }
    }
    // A method a route does not have is refused, not a 500.
    let r = w
        .request(Auth::Token(&w.sup.token), "put", "/api/v1/me", None)
        .await;
    if r.status != 405 {
        failures.push(format!("{}: expected 405, got {}", r.label, r.status));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let errors: Vec<String> = w
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, b)| b.contains("\"status\":5"))
        .map(|(l, b)| format!("{l}: {b}"))
        .collect();
    assert!(errors.is_empty(), "5xx answers: {errors:?}");
    // The refused requests enqueued nothing.
    assert!(
        w.queue
            .ids_in_state(JobState::Ready, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Every list's `limit` is 1 to 1000: out of range is a 400 naming it (not clamped silently).
#[sqlx::test(migrator = "db::MIGRATOR")]
async fn every_list_limit_out_of_range_is_refused(pool: PgPool) {
    let w = world(pool).await;
    let mut failures = Vec::new();
    for list in ["/api/v1/jobs", "/api/v1/audit", "/api/v1/orders/review"] {
        for limit in ["0", "-1", "1001"] {
            let r = w.get(&w.sup.token, &format!("{list}?limit={limit}")).await;
            if r.status != 400 || !r.message().contains("limit") {
                failures.push(format!("{}: {} {}", r.label, r.status, r.text));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The job states the API documents for `state` (OpenAPI and `JobFilter`) are the ones it takes.
#[sqlx::test(migrator = "db::MIGRATOR")]
async fn every_job_state_the_api_documents_is_accepted(pool: PgPool) {
    let w = world(pool).await;
    let doc = w
        .request(Auth::None, "get", "/api/openapi.json", None)
        .await;
    let params = doc.json["paths"]["/api/v1/jobs"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .clone();
    let described = params
        .iter()
        .find(|p| p["name"] == "state")
        .and_then(|p| p["description"].as_str())
        .unwrap()
        .to_owned();
    let mut failures = Vec::new();
    for state in described
        .split(|c: char| !c.is_ascii_lowercase())
        .filter(|s| {
            [
                "dead",
                "succeeded",
                "queued",
                "ready",
                "running",
                "scheduled",
                "retrying",
            ]
            .contains(s)
        })
    {
        let r = w
            .get(&w.sup.token, &format!("/api/v1/jobs?state={state}"))
            .await;
        if r.status != 200 {
            failures.push(format!(
                "documented state {state:?} ({described}) refused: {} {}",
                r.status, r.text
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 7. The OpenAPI document

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_openapi_document_lists_every_route(pool: PgPool) {
    let w = world(pool).await;
    let r = w
        .request(Auth::None, "get", "/api/openapi.json", None)
        .await;
    r.expect(200);
    assert!(
        r.json["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{}",
        r.text
    );
    let paths = r.json["paths"].as_object().expect("paths");
    let mut documented = BTreeSet::new();
    for (p, item) in paths {
        for m in item.as_object().unwrap().keys() {
            documented.insert((m.clone(), p.clone()));
        }
    }
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, served);
    // Sign-in is the one operation without security.
    for (m, p) in &served {
        let op = &paths[p.as_str()][m.as_str()];
        let open = op["security"] == json!([]);
        assert_eq!(
            open,
            (m.as_str(), p.as_str()) == ("post", "/api/v1/session"),
            "{m} {p}: {op}"
        );
    }
}
