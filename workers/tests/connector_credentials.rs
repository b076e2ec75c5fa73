//! A connection's credentials go into Postgres encrypted, come out only inside the connector
//! client, and never appear in any log line — not even at TRACE, where the HTTP stack logs its
//! requests — nor in errors. The client talks to the CDON and DHL fakes for real.

use std::io::Write;
use std::sync::{Arc, Mutex};

use canonical::{Courier, Erp, Marketplace};
use chrono::Utc;
use connectors::cdon::fake::{CdonFake, DEMO_MERCHANT_ID, DEMO_TOKEN};
use connectors::dhl::fake::{DEMO_ACCOUNT, DEMO_PASSWORD, DEMO_USERNAME, DhlFake};
use connectors::fake::serve;
use sqlx::PgPool;
use workers::db;
use workers::vault::{Credentials, Vault};

/// A log sink shared with the subscriber.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn credentials_are_encrypted_at_rest_and_never_logged(pool: PgPool) {
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .json()
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let cdon = CdonFake::new();
    cdon.seed_demo();
    let cdon_server = serve(cdon.router(), "127.0.0.1:0").await.unwrap();
    let dhl = DhlFake::new();
    let dhl_server = serve(dhl.router(), "127.0.0.1:0").await.unwrap();

    let t = db::add_tenant(&pool, "secret-shop", "Shop").await.unwrap();
    let settings = serde_json::json!({
        "cdon": { "base_url": format!("{}/api/", cdon_server.base_url()) },
        "dhl": { "base_url": format!("{}/mydhlapi", dhl_server.base_url()), "shipper_account": DEMO_ACCOUNT },
    });
    let c = db::add_connection(
        &pool,
        t.id,
        Erp::Noop,
        Marketplace::Cdon,
        Some(Courier::Dhl),
        settings.clone(),
    )
    .await
    .unwrap();
    let vault = Vault::parse(&Vault::generate_key()).unwrap();
    let fields = serde_json::json!({
        "cdon": { "merchant_id": DEMO_MERCHANT_ID, "token": DEMO_TOKEN },
        "dhl": { "username": DEMO_USERNAME, "password": DEMO_PASSWORD },
    });
    let creds = Credentials::new(fields.as_object().unwrap().clone());
    db::store_credentials(&pool, &vault, c.id, &creds)
        .await
        .unwrap();

    // At rest: no secret in any column, in clear or base64.
    let row: String =
        sqlx::query_scalar("SELECT row_to_json(cc)::text FROM connection_credentials cc")
            .fetch_one(&pool)
            .await
            .unwrap();
    for secret in [DEMO_TOKEN, DEMO_PASSWORD] {
        assert!(
            !row.contains(secret) && !row.contains(&b64(secret)),
            "stored in clear: {row}"
        );
    }

    // In use: the clients built from the opened credentials work against the fakes.
    let opened = db::load_credentials(&pool, &vault, c.id)
        .await
        .unwrap()
        .unwrap();
    let settings = settings.as_object().unwrap();
    let market = workers::connect::marketplace(Marketplace::Cdon, settings, Some(&opened), None)
        .unwrap()
        .unwrap();
    let courier = workers::connect::courier(Courier::Dhl, settings, Some(&opened), None)
        .unwrap()
        .unwrap();
    let page = market
        .list_orders(None)
        .await
        .expect("CDON answers with the stored credentials");
    tracing::info!(orders = page.orders.len(), client = ?market, "listed");
    let found = courier
        .find_by_reference("NO-SUCH-REF", Utc::now())
        .await
        .expect("DHL answers");
    tracing::info!(?found, client = ?courier, "looked up");

    // Wrong credentials: the error names the problem, not the secret.
    let wrong = serde_json::json!({ "cdon": { "merchant_id": DEMO_MERCHANT_ID, "token": "wrong-s3cr3t-value" } });
    let wrong = Credentials::new(wrong.as_object().unwrap().clone());
    let bad = workers::connect::marketplace(Marketplace::Cdon, settings, Some(&wrong), None)
        .unwrap()
        .unwrap();
    let err = bad.list_orders(None).await.expect_err("refused");
    tracing::error!(error = %err, debug = ?err, "refused as expected");
    assert!(!err.to_string().contains("wrong-s3cr3t-value"), "{err}");

    let logs = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("listed") && logs.contains("\"level\":\"DEBUG\""),
        "debug logs were captured"
    );
    for secret in [DEMO_TOKEN, DEMO_PASSWORD, "wrong-s3cr3t-value"] {
        assert!(!logs.contains(secret), "a secret leaked into the logs");
    }
    for pair in [
        format!("{DEMO_MERCHANT_ID}:{DEMO_TOKEN}"),
        format!("{DEMO_USERNAME}:{DEMO_PASSWORD}"),
    ] {
        assert!(
            !logs.contains(&b64(&pair)),
            "a Basic auth header leaked into the logs"
        );
    }
}

#[test]
fn missing_credentials_name_the_system_not_a_value() {
    let none =
        workers::connect::marketplace(Marketplace::Celro, &serde_json::Map::new(), None, None)
            .expect_err("no credentials");
    assert!(
        none.to_string().contains("no credentials stored for celro"),
        "{none}"
    );
}
