//! The log scan: buyers with distinctive personal data go through all six flows of every seed
//! pair (real flow handler, real clients, the fakes over HTTP, real Redis and Postgres) while a
//! subscriber captures **every** log line at TRACE, as JSON, from every thread (including the
//! `log` records of dependencies, as `megzo`'s own `try_init` does). None of the buyers' names,
//! e-mails, phones or addresses, and none of the connections' secrets, may appear in it.
//!
//! One test per binary: the subscriber is the process's global one.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canonical::{ChannelOrderId, Erp, Marketplace, Order, SalesDocument};
use connectors::conformance::ErpFake;
use connectors::fake::Buyer;
use queue_schema::{Job, JobId, JobKind, JobPayload, Scope, Trigger};
use serde_json::Value;
use sqlx::PgPool;
use tracing::Instrument as _;
use workers::db;
use workers::demo::{self, Seeded};
use workers::flows::{FlowDeps, FlowOptions, flow_handler};
use workers::queue::service::JobError;
use workers::queue::{Queue, QueueConfig};
use workers::runtime::Handler;
use workers::sandbox::{Addrs, Sandbox};

/// A log sink shared with the subscriber.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// The buyer of every order of the scan. The postal code is valid where the order ships to (DHL
/// checks it): Sweden for the CDON pairs, Romania for the Cel.ro pairs.
fn buyer(marketplace: Marketplace) -> Buyer {
    Buyer {
        first_name: "Ziggy".into(),
        last_name: "Personaldata".into(),
        email: Some("ziggy.pd@example.test".into()),
        phone: "+40 799 123 456".into(),
        street: "Strada Zorilor Zigzag 42".into(),
        city: "Zigtown".into(),
        postal_code: match marketplace {
            Marketplace::Cdon => "987 65".into(),
            _ => "077999".into(),
        },
    }
}

/// What must never be logged, lowercase (the scan is case-insensitive). The Romanian postal code
/// (six bare digits) is left out: it could occur by chance inside an id or a timing.
const PERSONAL: [&str; 10] = [
    "zigpc-77",
    "ziggy",
    "personaldata",
    "ziggy.pd@example.test",
    "ziggy.pd",
    "+40 799 123 456",
    "40799123456",
    "zorilor zigzag",
    "zigtown",
    "987 65",
];

async fn queue() -> Queue {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let cfg = QueueConfig {
        namespace: format!("t-pdlogs-{}", uuid::Uuid::new_v4().simple()),
        ..QueueConfig::default()
    };
    Queue::connect(&url, cfg)
        .await
        .expect("Redis must be running")
}

struct World {
    pool: PgPool,
    sb: Sandbox,
    handler: Handler,
}

impl World {
    /// Runs a job as a worker would: inside the `job` span of the queue's ack layer.
    async fn run(&self, s: &Seeded, kind: JobKind) -> Result<(), JobError> {
        let job = Job {
            id: JobId::new(),
            kind,
            payload: JobPayload::v1(s.tenant.id, s.conn.id, Scope::All, Trigger::Manual),
            attempt: 1,
            max_attempts: 5,
            enqueued_at_ms: 0,
            lease: 1,
        };
        let span = tracing::info_span!(
            "job",
            job_id = %job.id,
            job_kind = job.kind.as_str(),
            tenant = %job.payload.tenant(),
            connection = %job.payload.connection(),
            attempt = job.attempt,
        );
        (self.handler)(job).instrument(span).await
    }

    async fn ok(&self, s: &Seeded, kind: JobKind) {
        if let Err(e) = self.run(s, kind).await {
            panic!("{} {kind}: {e}", s.label);
        }
    }

    fn erp_fake(&self, erp: Erp) -> &dyn ErpFake {
        match erp {
            Erp::SmartBill => self.sb.smartbill.as_ref(),
            Erp::Lexoffice => self.sb.lexoffice.as_ref(),
            Erp::Charisma => self.sb.charisma.as_ref(),
            Erp::WinMentor => self.sb.winmentor.as_ref(),
            Erp::Noop => panic!("no fake"),
        }
    }

    fn place(&self, s: &Seeded) -> String {
        self.place_by(s, &buyer(s.conn.marketplace))
    }

    fn place_by(&self, s: &Seeded, buyer: &Buyer) -> String {
        let sku = &s.skus[0];
        match s.conn.marketplace {
            Marketplace::Cdon => self
                .sb
                .cdon
                .seed_order_with(&connectors::cdon::fake::SeedOrder {
                    merchant_id: Some(s.account.clone()),
                    sku: sku.as_str().into(),
                    quantity: 1,
                    buyer: Some(buyer.clone()),
                    ..Default::default()
                })
                .unwrap_or_else(|e| panic!("{}: CDON order refused: {e}", s.label)),
            Marketplace::Celro => self
                .sb
                .celro
                .seed_order_by(&s.account, sku.as_str(), 1, buyer)
                .unwrap_or_else(|| panic!("{}: unknown Cel.ro account", s.label))
                .to_string(),
            Marketplace::Noop => panic!("the no-op marketplace takes no orders"),
        }
    }

    async fn row(&self, s: &Seeded, id: &str) -> db::flows::OrderWork {
        db::flows::order_work(&self.pool, s.tenant.id, s.conn.marketplace.as_str(), id)
            .await
            .expect("db")
            .unwrap_or_else(|| panic!("{}: order {id} has no row", s.label))
    }
}

/// Every string value of a JSON tree.
fn leaves(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| leaves(v, out)),
        Value::Object(m) => m.values().for_each(|v| leaves(v, out)),
        _ => {}
    }
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The secrets of the seeded connections (every credential value but the account identifiers
/// the connectors name in their logs on purpose: user names, merchant ids, login e-mails), and
/// the `Basic` headers made of them.
async fn secrets(pool: &PgPool, vault: &workers::vault::Vault, seeded: &[Seeded]) -> Vec<String> {
    const IDENTIFIERS: [&str; 3] = ["username", "merchant_id", "email"];
    let mut out = Vec::new();
    for s in seeded {
        let creds = db::load_credentials(pool, vault, s.conn.id)
            .await
            .expect("credentials open")
            .unwrap_or_else(|| panic!("{}: no credentials stored", s.label));
        for (system, fields) in creds.expose() {
            let Some(fields) = fields.as_object() else {
                continue;
            };
            let id = IDENTIFIERS
                .iter()
                .find_map(|k| fields.get(*k).and_then(Value::as_str));
            for (key, value) in fields {
                if IDENTIFIERS.contains(&key.as_str()) {
                    continue;
                }
                let mut values = Vec::new();
                leaves(value, &mut values);
                for v in values {
                    assert!(v.len() >= 8, "{system}.{key} is too short to scan for");
                    if let Some(id) = id {
                        out.push(b64(&format!("{id}:{v}")));
                    }
                    out.push(v);
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn personal_data_and_secrets_never_reach_the_logs(pool: PgPool) {
    let sink = Sink::default();
    let writer = sink.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("the only subscriber of this test binary");

    let sb = Sandbox::start(&Addrs::any(), false).await.expect("sandbox");
    let vault = demo::demo_vault().expect("vault");
    let seeded = demo::seed(&pool, &vault, &sb).await.expect("seed");
    let deps = FlowDeps {
        pool: pool.clone(),
        queue: queue().await,
        vault: Some(vault.clone()),
        limits: Default::default(),
        mapping: Default::default(),
        options: FlowOptions {
            settle_wait: Duration::from_secs(3),
            settle_poll: Duration::from_millis(50),
            awb_lookup_grace: Duration::from_millis(10),
            invoice_recheck: Duration::ZERO,
            ..FlowOptions::default()
        },
    };
    let w = World {
        pool: pool.clone(),
        sb,
        handler: flow_handler(deps),
    };

    let mut placed = 0;
    for s in &seeded {
        let erp = w.erp_fake(s.conn.erp);
        // Catalog (settled by the marketplaces) and stock.
        w.ok(s, JobKind::CatalogPush).await;
        w.sb.cdon.settle_all();
        w.sb.celro.settle_all();
        w.ok(s, JobKind::CatalogPush).await;
        w.ok(s, JobKind::StockPush).await;

        // The order, its ERP document, the merchant's invoice, the AWB and the tracking.
        let id = w.place(s);
        placed += 1;
        w.ok(s, JobKind::OrderPull).await;
        w.ok(s, JobKind::OrderPull).await;
        let row = w.row(s, &id).await;
        assert_eq!(row.state, "created", "{}: {row:?}", s.label);
        let order: Order = serde_json::from_value(row.order_json.clone().expect("stored"))
            .expect("a canonical order");
        assert_eq!(
            order.ship_to.name, "Ziggy Personaldata",
            "{}: the buyer went through the product",
            s.label
        );
        let doc: SalesDocument =
            serde_json::from_value(row.document_json.clone().expect("document")).unwrap();
        erp.merchant_invoices(&doc);
        w.ok(s, JobKind::InvoiceAttach).await;
        w.ok(s, JobKind::AwbPush).await;
        w.ok(s, JobKind::AwbPush).await;
        let row = w.row(s, &id).await;
        assert!(
            row.awb.is_some() && row.shipped_at.is_some(),
            "{}: AWB and tracking: {row:?}",
            s.label
        );

        // A cancellation (CDON: a second order of the same buyer) or a return whose reason
        // names the buyer (Cel.ro), reconciled with the ERP.
        match s.conn.marketplace {
            Marketplace::Cdon => {
                let id2 = w.place(s);
                placed += 1;
                w.ok(s, JobKind::OrderPull).await;
                assert!(w.sb.cdon.cancel_order_as_cdon(Some(&s.account), &id2));
                w.ok(s, JobKind::ReturnsReconcile).await;
            }
            Marketplace::Celro => {
                w.sb.celro
                    .add_return_request(
                        &s.account,
                        id.parse().expect("Cel.ro ids are numbers"),
                        s.skus[0].as_str(),
                        1,
                        "Ziggy Personaldata: too small, call +40 799 123 456",
                    )
                    .unwrap_or_else(|| panic!("{}: return refused by the fake", s.label));
                w.ok(s, JobKind::ReturnsReconcile).await;
                erp.merchant_credits(&doc);
            }
            Marketplace::Noop => unreachable!(),
        }
        w.ok(s, JobKind::ReturnsReconcile).await;
        let items = db::flows::return_items(&pool, s.conn.id, true)
            .await
            .unwrap();
        assert!(!items.is_empty(), "{}: the return is matched", s.label);
        assert_eq!(
            erp.documents_for(&ChannelOrderId::new(&id).unwrap()),
            1,
            "{}",
            s.label
        );

        // A buyer whose address the courier refuses, quoting it (CDON pairs ship to Sweden,
        // where DHL checks the postal code): the refusal reaches the order's row and the job's
        // error (the job history, erased by the GDPR purge), never a log line.
        if s.conn.marketplace == Marketplace::Cdon {
            let mut refused = buyer(Marketplace::Cdon);
            refused.postal_code = "ZIGPC-77".into();
            let id3 = w.place_by(s, &refused);
            placed += 1;
            w.ok(s, JobKind::OrderPull).await;
            let err = w
                .run(s, JobKind::AwbPush)
                .await
                .expect_err("DHL refuses the postal code");
            assert!(
                err.to_string().contains("ZIGPC-77"),
                "{}: the courier's refusal quotes the address: {err}",
                s.label
            );
            let row = w.row(s, &id3).await;
            assert_eq!(row.awb_state.as_deref(), Some("needs_review"), "{row:?}");
        }
    }
    assert_eq!(
        placed, 11,
        "five pairs, a second and a third order on each CDON pair"
    );

    let secrets = secrets(&pool, &vault, &seeded).await;
    assert!(secrets.len() >= 10, "{} secrets to scan for", secrets.len());
    let logs = sink.text();
    let lower = logs.to_lowercase();
    // The capture is real: the flows' own lines and the HTTP stack's DEBUG/TRACE lines are in it.
    for expected in [
        "ERP document created",
        "AWB minted",
        "external call",
        "\"level\":\"DEBUG\"",
    ] {
        assert!(logs.contains(expected), "the logs lack {expected:?}");
    }
    assert!(
        logs.len() > 100_000,
        "only {} bytes of logs were captured",
        logs.len()
    );
    let leaked = |needle: &str| -> Option<String> {
        let at = lower.find(needle)?;
        let start = lower[..at].rfind('\n').map_or(0, |i| i + 1);
        let end = lower[at..].find('\n').map_or(lower.len(), |i| at + i);
        Some(logs[start..end].to_owned())
    };
    for pd in PERSONAL {
        if let Some(line) = leaked(pd) {
            panic!("personal data {pd:?} reached the logs: {line}");
        }
    }
    for secret in &secrets {
        if let Some(line) = leaked(&secret.to_lowercase()) {
            // The line is not printed: it holds a secret.
            panic!(
                "a connection secret ({} characters) reached the logs, in a line of {} characters",
                secret.len(),
                line.len()
            );
        }
    }
}
