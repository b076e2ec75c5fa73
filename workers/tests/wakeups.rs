//! Wake-up URLs over real HTTP, Redis (a namespace per test) and a fresh Postgres database per
//! test: a burst of Cel.ro callbacks becomes one `order_pull`, a cancellation a
//! `returns_reconcile`, every refusal gets its 4xx and enqueues nothing, the URL printed by
//! `megzo connections wakeup-url` works (and stops working when replaced), and a signed
//! lexoffice webhook enqueues an `invoice_attach`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use canonical::{Erp, Marketplace};
use queue_schema::{JobKind, JobState};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use workers::db;
use workers::process::{Probes, serve_probes};
use workers::queue::{Queue, QueueConfig};

mod support;
use support::{megzo_command, redis_url, stdout};

/// `type=1` (new orders) naming order 700001, as Cel.ro sends it.
const NEW_ORDER: &str = "type=1&value=%7B%22list%22%3A%5B700001%5D%7D";
/// `type=11` (cancelled) for order 700001.
const CANCELLED: &str = "type=11&value=%7B%22order_id%22%3A700001%7D";

async fn queue(test: &str) -> Queue {
    Queue::connect(
        &redis_url(),
        QueueConfig {
            namespace: format!("t-wake-{test}-{}", uuid::Uuid::new_v4().simple()),
            ..QueueConfig::default()
        },
    )
    .await
    .expect("Redis must be running (deploy/services.sh up)")
}

/// The worker process's HTTP server (probes and wake-ups) on a free loopback port.
async fn serve(pool: &PgPool, queue: &Queue) -> (SocketAddr, CancellationToken) {
    let cancel = CancellationToken::new();
    let probes = Probes {
        queue: queue.clone(),
        pool: Some(pool.clone()),
        serving: Arc::new(AtomicBool::new(true)),
    };
    let addr = serve_probes("127.0.0.1:0", probes, cancel.clone())
        .await
        .unwrap();
    (addr, cancel)
}

/// One HTTP/1.1 request (`Connection: close`): the status and the body.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += "\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    // A server may answer (413) before reading a body it refuses; that is not the test's error.
    let _ = s.write_all(body).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    call(addr, "GET", path, &[], b"").await
}

/// The path of a URL (`http://host:port/path?query` → `/path?query`).
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/')
        .map_or("/".to_owned(), |i| rest[i..].to_owned())
}

async fn connection(
    pool: &PgPool,
    slug: &str,
    erp: Erp,
    marketplace: Marketplace,
    settings: serde_json::Value,
) -> db::Connection {
    let t = db::add_tenant(pool, slug, "Shop").await.unwrap();
    db::add_connection(pool, t.id, erp, marketplace, None, settings)
        .await
        .unwrap()
}

/// A fresh wake-up path (`/wakeup/<connection>/<key>`) for the connection.
async fn wakeup_path(pool: &PgPool, c: &db::Connection) -> String {
    let url = workers::wakeup::create_wakeup_url(pool, c.id, "http://x")
        .await
        .unwrap();
    path_of(url.expose_secret())
}

/// Deletes the test's queue namespace (every key is `{ns}:…`).
async fn forget(q: &Queue) {
    let mut c = q.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{}}}*", q.config().namespace))
        .query_async(&mut c)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut c)
            .await
            .unwrap();
    }
}

async fn enqueued(q: &Queue) -> u64 {
    q.stats().await.unwrap().enqueued_total
}

async fn ready(q: &Queue, kind: JobKind) -> usize {
    q.ids_in_state(JobState::Ready, Some(kind), 100)
        .await
        .unwrap()
        .len()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_burst_of_callbacks_enqueues_one_pull_and_a_cancellation_one_reconcile(pool: PgPool) {
    let c = connection(
        &pool,
        "celro-shop",
        Erp::Noop,
        Marketplace::Celro,
        serde_json::json!({}),
    )
    .await;
    let q = queue("burst").await;
    let (addr, stop) = serve(&pool, &q).await;
    let path = wakeup_path(&pool, &c).await;

    let url = format!("{path}?{NEW_ORDER}");
    let calls = (0..20).map(|_| get(addr, &url));
    let answers = futures::future::join_all(calls).await;
    let mut new = 0;
    let mut jobs = std::collections::BTreeSet::new();
    for (status, body) in &answers {
        assert_eq!(*status, 202, "{body}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["kind"], "order_pull", "{body}");
        if v["enqueued"] == true {
            new += 1;
        }
        jobs.insert(v["job"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        new, 1,
        "one of 20 callbacks enqueues; the rest find it waiting"
    );
    assert_eq!(jobs.len(), 1, "every answer names the same job");
    assert_eq!(enqueued(&q).await, 1);
    assert_eq!(ready(&q, JobKind::OrderPull).await, 1);
    let id: queue_schema::JobId = jobs.first().unwrap().parse().unwrap();
    let rec = q.job(id).await.unwrap().unwrap();
    let payload = queue_schema::JobPayload::from_json(&rec.payload).unwrap();
    assert_eq!(payload.trigger().as_str(), "webhook");
    assert_eq!(payload.connection(), c.id);
    assert_eq!(payload.tenant(), c.tenant_id);

    // The same callback as a form body (POST) is the same waiting pull.
    let (status, body) = call(
        addr,
        "POST",
        &path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        NEW_ORDER.as_bytes(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert!(body.contains("\"enqueued\":false"), "{body}");

    // A cancellation wakes returns reconciliation, debounced the same way.
    for i in 0..3 {
        let (status, body) = get(addr, &format!("{path}?{CANCELLED}")).await;
        assert_eq!(status, 202, "{body}");
        assert!(body.contains("returns_reconcile"), "{body}");
        assert_eq!(body.contains("\"enqueued\":true"), i == 0, "{body}");
    }
    assert_eq!(enqueued(&q).await, 2);
    assert_eq!(ready(&q, JobKind::ReturnsReconcile).await, 1);
    stop.cancel();
    forget(&q).await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn every_refusal_gets_its_4xx_and_enqueues_nothing(pool: PgPool) {
    let celro = connection(
        &pool,
        "celro-shop",
        Erp::Noop,
        Marketplace::Celro,
        serde_json::json!({}),
    )
    .await;
    let cdon = connection(
        &pool,
        "cdon-shop",
        Erp::Noop,
        Marketplace::Cdon,
        serde_json::json!({}),
    )
    .await;
    let noop = connection(
        &pool,
        "noop-shop",
        Erp::Noop,
        Marketplace::Noop,
        serde_json::json!({}),
    )
    .await;
    let no_url = connection(
        &pool,
        "no-url-shop",
        Erp::Noop,
        Marketplace::Celro,
        serde_json::json!({}),
    )
    .await;
    let q = queue("refusals").await;
    let (addr, stop) = serve(&pool, &q).await;
    let good = wakeup_path(&pool, &celro).await;
    let key = good.rsplit('/').next().unwrap().to_owned();

    // Wrong key, unknown connection, a connection without a URL, a path that is no id: one
    // answer for all, which tells nothing about what exists.
    let unknown = uuid::Uuid::new_v4();
    let mut wrong = key.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'A' { 'B' } else { 'A' });
    let wrong_key = format!("/wakeup/{}/{wrong}", celro.id);
    for path in [
        wrong_key,
        format!("/wakeup/{}/", celro.id) + "AAAA",
        format!("/wakeup/{unknown}/{key}"),
        format!("/wakeup/{}/{key}", no_url.id),
        format!("/wakeup/not-a-uuid/{key}"),
    ] {
        let (status, body) = get(addr, &format!("{path}?{NEW_ORDER}")).await;
        assert_eq!(
            (status, body.trim()),
            (404, "no such wake-up URL"),
            "{path}"
        );
    }

    // Marketplaces without callbacks: 409, naming why.
    let (status, body) = get(
        addr,
        &format!("{}?{NEW_ORDER}", wakeup_path(&pool, &cdon).await),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("no webhooks"), "{body}");
    let (status, body) = get(
        addr,
        &format!("{}?{NEW_ORDER}", wakeup_path(&pool, &noop).await),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("no-op marketplace"), "{body}");

    // Malformed callbacks: 400 with the parser's message.
    for (query, needle) in [
        ("type=abc", "is not a number"),
        ("", "no type parameter"),
        ("type=1&value=%7Bnot-json", "not JSON"),
        (
            "type=1&value=%7B%22list%22%3A%5B%5D%7D",
            "names no order ids",
        ),
    ] {
        let (status, body) = get(addr, &format!("{good}?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(needle), "{query}: {body}");
    }

    // A body over 64 KiB: 413, even with the right key.
    let big = vec![b'a'; 70 * 1024];
    let (status, _) = call(addr, "POST", &good, &[], &big).await;
    assert_eq!(status, 413);

    // A disabled connection is not woken.
    sqlx::query("UPDATE connections SET enabled = false WHERE id = $1")
        .bind(celro.id.0)
        .execute(&pool)
        .await
        .unwrap();
    let (status, body) = get(addr, &format!("{good}?{NEW_ORDER}")).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("disabled"), "{body}");

    assert_eq!(enqueued(&q).await, 0, "no refusal enqueued anything");
    let s = q.stats().await.unwrap();
    assert_eq!(s.kinds.iter().map(|k| k.ready).sum::<u64>(), 0);
    assert_eq!(s.delayed, 0);
    stop.cancel();
    forget(&q).await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_cli_prints_a_url_that_works_until_it_is_replaced(pool: PgPool) {
    let c = connection(
        &pool,
        "celro-shop",
        Erp::Noop,
        Marketplace::Celro,
        serde_json::json!({}),
    )
    .await;
    let q = queue("cli").await;
    let (addr, stop) = serve(&pool, &q).await;
    let base = format!("http://{addr}");
    let make_url = || {
        let out = megzo_command(&pool, "json")
            .args([
                "connections",
                "wakeup-url",
                &c.id.to_string(),
                "--base-url",
                &base,
            ])
            .output()
            .unwrap();
        let url = stdout(&out).trim().to_owned();
        let key = url.rsplit('/').next().unwrap().to_owned();
        let logs = String::from_utf8_lossy(&out.stderr);
        assert!(logs.contains("shown once"), "{logs}");
        assert!(!logs.contains(&key), "the key is never logged: {logs}");
        url
    };
    let first = make_url();
    assert!(
        first.starts_with(&format!("{base}/wakeup/{}/", c.id)),
        "{first}"
    );
    let (status, body) = get(addr, &format!("{}?{NEW_ORDER}", path_of(&first))).await;
    assert_eq!(status, 202, "{body}");
    assert!(body.contains("\"enqueued\":true"), "{body}");

    // A new URL replaces the old one.
    let second = make_url();
    assert_ne!(first, second);
    let (status, _) = get(addr, &format!("{}?{NEW_ORDER}", path_of(&first))).await;
    assert_eq!(status, 404);
    let (status, body) = get(addr, &format!("{}?{NEW_ORDER}", path_of(&second))).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(enqueued(&q).await, 1, "the pull was still waiting");

    // An unknown connection is refused by the CLI, by name.
    let other = uuid::Uuid::new_v4().to_string();
    let out = megzo_command(&pool, "text")
        .args(["connections", "wakeup-url", &other])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&other));
    stop.cancel();
    forget(&q).await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_signed_lexoffice_invoice_event_enqueues_an_invoice_attach(pool: PgPool) {
    use connectors::lexoffice::fake::{FAKE_WEBHOOK_PUBLIC_KEY_PEM, sign_webhook_body};
    use connectors::lexoffice::webhook::SIGNATURE_HEADER;
    let c = connection(
        &pool,
        "lexoffice-shop",
        Erp::Lexoffice,
        Marketplace::Noop,
        serde_json::json!({"lexoffice": {"webhook_public_key_pem": FAKE_WEBHOOK_PUBLIC_KEY_PEM}}),
    )
    .await;
    let q = queue("lexoffice").await;
    let (addr, stop) = serve(&pool, &q).await;
    let path = wakeup_path(&pool, &c).await;
    let event = |ty: &str| {
        format!(
            r#"{{"organizationId":"org-1","eventType":"{ty}","resourceId":"inv-1","eventDate":"2026-01-15T12:00:00.000+01:00"}}"#
        )
    };

    let body = event("invoice.created");
    let sig = sign_webhook_body(body.as_bytes());
    let headers = [
        ("Content-Type", "application/json"),
        (SIGNATURE_HEADER, sig.as_str()),
    ];
    let (status, answer) = call(addr, "POST", &path, &headers, body.as_bytes()).await;
    assert_eq!(status, 202, "{answer}");
    assert!(
        answer.contains("invoice_attach") && answer.contains("\"enqueued\":true"),
        "{answer}"
    );

    // A body altered after signing: 401, nothing enqueued.
    let forged = event("voucher.created");
    let (status, answer) = call(addr, "POST", &path, &headers, forged.as_bytes()).await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer.contains("signature"), "{answer}");

    // An event no flow needs is acknowledged and ignored.
    let body = event("token.revoked");
    let sig = sign_webhook_body(body.as_bytes());
    let (status, answer) = call(
        addr,
        "POST",
        &path,
        &[(SIGNATURE_HEADER, sig.as_str())],
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert!(answer.contains("ignored"), "{answer}");

    assert_eq!(enqueued(&q).await, 1);
    assert_eq!(ready(&q, JobKind::InvoiceAttach).await, 1);
    stop.cancel();
    forget(&q).await;
}
