//! `rate-client`: one "worker process" of the shared-account rate-limit tests and benchmarks.
//! It calls a fake through the real client of `SYSTEM` (`cdon`: `list_orders`; `smartbill`:
//! `stock`), every call passing the fleet-wide [`RedisGate`], as fast as `CONCURRENCY` tasks can
//! for `SECS` seconds, then prints one JSON line `{"ok":…, "errors":…, "first_error":…}`.
//!
//! Environment: `REDIS_URL` (default `redis://127.0.0.1:6379`), `QUEUE_NS`, `SYSTEM` (default
//! `cdon`), `BASE_URL`, `USER` and `TOKEN` (the fake's demo credentials), `CIF` (SmartBill),
//! `RATE` (calls per window), `PER_MS` (the window the gate enforces, the API's plus a margin),
//! `SECS`, `CONCURRENCY` (default 8).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use connectors::gate::CallGate;
use connectors::{ConnectorError, Erp as _, Marketplace as _, cdon, smartbill};
use workers::gate::RedisGate;
use workers::queue::{Queue, QueueConfig};
use workers::ratelimit::{Limit, RateLimit};

fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} must be set"))
}

fn num(name: &str, default: Option<u64>) -> anyhow::Result<u64> {
    match (std::env::var(name), default) {
        (Ok(v), _) => v.trim().parse().with_context(|| format!("{name}={v:?}")),
        (Err(_), Some(d)) => Ok(d),
        (Err(_), None) => anyhow::bail!("{name} must be set"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let cfg = QueueConfig {
        namespace: var("QUEUE_NS")?,
        ..QueueConfig::default()
    };
    let queue = Queue::connect(&redis, cfg).await?;
    let system = std::env::var("SYSTEM").unwrap_or_else(|_| "cdon".into());
    let user = var("USER")?;
    let limit = RateLimit::new(
        num("RATE", None)? as u32,
        Duration::from_millis(num("PER_MS", None)?),
    );
    let (name, api): (&'static str, &'static str) = match system.as_str() {
        "cdon" => ("cdon", "merchants-api"),
        "smartbill" => ("smartbill", "rest"),
        other => anyhow::bail!("SYSTEM={other:?}: expected cdon or smartbill"),
    };
    let gate: Arc<dyn CallGate> = Arc::new(
        RedisGate::with_limits(&queue, name, &user, vec![(api, Limit::Rate(limit))])
            .with_max_wait(Duration::from_secs(60)),
    );
    let client: Arc<dyn Call> = if name == "cdon" {
        let config = serde_json::json!({
            "base_url": var("BASE_URL")?, "http": { "inline_retries": 0 },
        });
        let config: cdon::Config = serde_json::from_value(config)?;
        let creds = serde_json::json!({ "merchant_id": user, "token": var("TOKEN")? });
        let creds = cdon::Credentials::from_map(creds.as_object().context("object")?)?;
        Arc::new(cdon::CdonClient::new(&config, creds, Some(gate))?)
    } else {
        let config = serde_json::json!({
            "base_url": var("BASE_URL")?, "cif": var("CIF")?, "proforma_series": "MGZP",
            "http": { "inline_retries": 0 },
        });
        let config: smartbill::Config = serde_json::from_value(config)?;
        let creds = serde_json::json!({ "email": user, "token": var("TOKEN")? });
        let creds = smartbill::Credentials::from_map(creds.as_object().context("object")?)?;
        Arc::new(smartbill::SmartBillClient::new(&config, creds, Some(gate))?)
    };
    let deadline = Instant::now() + Duration::from_secs(num("SECS", None)?);
    let (ok, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let mut tasks = Vec::new();
    for _ in 0..num("CONCURRENCY", Some(8))? {
        let (client, ok, errors, first) = (
            client.clone(),
            ok.clone(),
            errors.clone(),
            first_error.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match client.call().await {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        first.lock().unwrap().get_or_insert_with(|| e.to_string());
                        errors.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let line = serde_json::json!({
        "ok": ok.load(Ordering::Relaxed),
        "errors": errors.load(Ordering::Relaxed),
        "first_error": *first_error.lock().unwrap(),
    });
    println!("{line}");
    Ok(())
}

/// One call of the system under test.
#[async_trait::async_trait]
trait Call: Send + Sync {
    async fn call(&self) -> Result<(), ConnectorError>;
}

#[async_trait::async_trait]
impl Call for cdon::CdonClient {
    async fn call(&self) -> Result<(), ConnectorError> {
        self.list_orders(None).await.map(drop)
    }
}

#[async_trait::async_trait]
impl Call for smartbill::SmartBillClient {
    async fn call(&self) -> Result<(), ConnectorError> {
        self.stock(None).await.map(drop)
    }
}
