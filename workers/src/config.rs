//! Typed configuration, loaded in layers: built-in defaults, then a TOML file (`--config`, or
//! `MEGZO_CONFIG`, or `megzo.toml` in the working directory if present), then environment
//! variables (`MEGZO_…` with `__` between levels, e.g. `MEGZO_QUEUE__TENANT_CAP=4`), then the
//! conventional `DATABASE_URL` and `REDIS_URL`. Command-line flags override the result.
//!
//! Secrets (the URLs carry passwords) are [`SecretString`]s: their `Debug` prints nothing, and
//! `megzo config` prints them redacted.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::queue::QueueConfig;
use crate::telemetry::LogFormat;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub database_url: SecretString,
    pub redis_url: SecretString,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub worker: WorkerConfig,
    #[serde(default)]
    pub scheduler: SchedulerConfig,
    /// Rate limits of the external accounts (the contracts' figures, with the assumptions
    /// where nothing is documented); see `docs/configuration.md`.
    #[serde(default)]
    pub ratelimits: crate::ratelimit::LimitsConfig,
    /// Field mapping: the exchange-rate feed's age limit and refresh.
    #[serde(default)]
    pub mapping: crate::rates::MappingConfig,
    /// Timings of the six flows.
    #[serde(default)]
    pub flows: FlowsConfig,
    /// Personal data retention: the scheduler's purge (see `docs/gdpr.md`).
    #[serde(default)]
    pub gdpr: crate::gdpr::RetentionConfig,
    #[serde(default = "default_log_format")]
    pub log_format: LogFormat,
}

fn default_log_format() -> LogFormat {
    LogFormat::Json
}

/// A worker process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    pub concurrency: usize,
    pub prefetch: usize,
    pub batch: usize,
    pub poll_interval_ms: u64,
    pub reap_interval_ms: u64,
    /// Seconds in-flight jobs get to finish after SIGTERM; the rest is released to the queue.
    /// Keep it below the orchestrator's kill grace (Kubernetes `terminationGracePeriodSeconds`).
    pub grace_secs: u64,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub http_addr: String,
    /// Postgres connections of one worker process.
    pub db_pool: u32,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 64,
            prefetch: 8,
            batch: 32,
            poll_interval_ms: 100,
            reap_interval_ms: 5_000,
            grace_secs: 25,
            http_addr: "127.0.0.1:9464".to_owned(),
            db_pool: 8,
        }
    }
}

/// The heartbeat scheduler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    pub interval_secs: u64,
    /// How often a standby replica tries to become the leader, and the leader checks that its
    /// Postgres session (which holds the election's advisory lock) is alive (`leader.rs`).
    pub leader_check_secs: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            interval_secs: 300,
            leader_check_secs: 5,
        }
    }
}

/// Timings of the six flows (see `docs/flows.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowsConfig {
    /// How long `catalog_push` follows an asynchronous batch (CDON) before leaving it pending.
    pub settle_wait_ms: u64,
    pub settle_poll_ms: u64,
    /// The order lock's time to live (renewed while held).
    pub lock_ttl_ms: u64,
    /// An AWB whose create was in doubt and that the courier cannot find yet is minted again
    /// only after this long (the courier's search lags behind new shipments).
    pub awb_lookup_grace_secs: u64,
    /// Every this many heartbeats `stock_push` re-sends every listed SKU (0: never).
    pub reconcile_every: u32,
    /// Orders handled per run of `awb_push` (and stored orders resumed per `order_pull`).
    pub batch: u32,
    /// ERP invoice checks per run of `invoice_attach`.
    pub invoice_batch: u32,
    /// An order the merchant has not invoiced yet is checked again after this many seconds,
    /// doubling each time up to `invoice_recheck_cap_secs`.
    pub invoice_recheck_secs: u64,
    pub invoice_recheck_cap_secs: u64,
    /// A follow-up run stops taking new orders after this many seconds (the next run goes on).
    pub run_budget_secs: u64,
}

impl Default for FlowsConfig {
    fn default() -> Self {
        let o = crate::flows::FlowOptions::default();
        Self {
            settle_wait_ms: o.settle_wait.as_millis() as u64,
            settle_poll_ms: o.settle_poll.as_millis() as u64,
            lock_ttl_ms: o.lock_ttl.as_millis() as u64,
            awb_lookup_grace_secs: o.awb_lookup_grace.as_secs(),
            reconcile_every: u32::try_from(o.reconcile_every).unwrap_or(0),
            batch: u32::try_from(o.batch).unwrap_or(1),
            invoice_batch: u32::try_from(o.invoice_batch).unwrap_or(1),
            invoice_recheck_secs: o.invoice_recheck.as_secs(),
            invoice_recheck_cap_secs: o.invoice_recheck_cap.as_secs(),
            run_budget_secs: o.run_budget.as_secs(),
        }
    }
}

impl FlowsConfig {
    /// The flows' options.
    pub fn options(&self) -> crate::flows::FlowOptions {
        use std::time::Duration;
        crate::flows::FlowOptions {
            settle_wait: Duration::from_millis(self.settle_wait_ms),
            settle_poll: Duration::from_millis(self.settle_poll_ms.max(1)),
            lock_ttl: Duration::from_millis(self.lock_ttl_ms),
            awb_lookup_grace: Duration::from_secs(self.awb_lookup_grace_secs),
            reconcile_every: i64::from(self.reconcile_every),
            batch: i64::from(self.batch.max(1)),
            invoice_batch: i64::from(self.invoice_batch.max(1)),
            invoice_recheck: Duration::from_secs(self.invoice_recheck_secs.max(1)),
            invoice_recheck_cap: Duration::from_secs(
                self.invoice_recheck_cap_secs
                    .max(self.invoice_recheck_secs.max(1)),
            ),
            run_budget: Duration::from_secs(self.run_budget_secs.max(1)),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Check(String),
}

impl Config {
    /// Loads the layers. `file` is the `--config` flag, if given.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::new().merge(Serialized::defaults(Defaults::default()));
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("MEGZO_CONFIG").map(PathBuf::from));
        match file {
            Some(f) if !f.exists() => return Err(ConfigError::MissingFile(f)),
            Some(f) => fig = fig.merge(Toml::file(f)),
            None if Path::new("megzo.toml").exists() => fig = fig.merge(Toml::file("megzo.toml")),
            None => {}
        }
        fig = fig
            .merge(
                Env::prefixed("MEGZO_")
                    .split("__")
                    .ignore(&["config", "credential_keys"]),
            )
            .merge(Env::raw().only(&["database_url", "redis_url"]));
        let cfg: Config = fig.extract().map_err(Box::new)?;
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.worker.concurrency == 0 {
            return Err(ConfigError::Check(
                "worker.concurrency must be at least 1".into(),
            ));
        }
        if self.scheduler.interval_secs == 0 {
            return Err(ConfigError::Check(
                "scheduler.interval_secs must be at least 1".into(),
            ));
        }
        if !(1..=300).contains(&self.scheduler.leader_check_secs) {
            return Err(ConfigError::Check(
                "scheduler.leader_check_secs must be between 1 and 300".into(),
            ));
        }
        if self.flows.lock_ttl_ms < 1_000 {
            return Err(ConfigError::Check(
                "flows.lock_ttl_ms must be at least 1000 (the lock is renewed at a third of it)"
                    .into(),
            ));
        }
        queue_schema::KeyLayout::new(&self.queue.namespace).map_err(ConfigError::Check)?;
        self.queue.validate().map_err(ConfigError::Check)?;
        self.gdpr
            .retention()
            .and_then(|_| self.gdpr.interval())
            .map_err(|e| ConfigError::Check(format!("[gdpr]: {e}")))?;
        Ok(())
    }

    /// The configuration as TOML with secrets redacted (`megzo config`).
    pub fn redacted(&self) -> String {
        format!(
            "database_url = {:?}\nredis_url = {:?}\nlog_format = {:?}\n\n[queue]\n{}\n[worker]\n{}\n[scheduler]\n{}\n[ratelimits]\n{}\n[flows]\n{}\n[gdpr]\n{}",
            redact_url(self.database_url.expose_secret()),
            redact_url(self.redis_url.expose_secret()),
            self.log_format,
            toml_of(&self.queue),
            toml_of(&self.worker),
            toml_of(&self.scheduler),
            toml_of(&self.ratelimits),
            toml_of(&self.flows),
            toml_of(&self.gdpr),
        )
    }
}

fn toml_of<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .map(|o| {
            o.iter()
                .map(|(k, v)| format!("{k} = {v}\n"))
                .collect::<String>()
        })
        .unwrap_or_default()
}

/// Replaces the password of a URL with `***`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            if creds.contains(':') {
                format!("{}{user}:***{}", &url[..s + 3], &url[at..])
            } else {
                url.to_owned()
            }
        }
        _ => url.to_owned(),
    }
}

/// The defaults layer (the URLs point at the local services `deploy/services.sh` starts).
#[derive(Debug, Serialize)]
struct Defaults {
    database_url: &'static str,
    redis_url: &'static str,
    log_format: &'static str,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            database_url: "postgres://postgres@127.0.0.1:5432/megzo",
            redis_url: "redis://127.0.0.1:6379",
            log_format: "json",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(redact_url("redis://:pw@h:6379/0"), "redis://:***@h:6379/0");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own (large) error type
    fn layers_apply_in_order_and_bad_values_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "megzo.toml",
                "[queue]\ntenant_cap = 3\n[worker]\nconcurrency = 5\n",
            )?;
            jail.set_env("MEGZO_WORKER__CONCURRENCY", "7");
            jail.set_env("REDIS_URL", "redis://:pw@elsewhere:6379");
            let cfg = Config::load(None).expect("loads");
            assert_eq!(cfg.queue.tenant_cap, 3);
            assert_eq!(cfg.worker.concurrency, 7, "env overrides the file");
            assert_eq!(cfg.redis_url.expose_secret(), "redis://:pw@elsewhere:6379");
            assert!(
                !format!("{cfg:?}").contains("pw@"),
                "Debug never shows secrets"
            );
            assert!(cfg.redacted().contains("redis://:***@elsewhere"));
            jail.set_env("MEGZO_QUEUE__LEASE_MS", "soon");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(
                err.to_lowercase().contains("lease_ms") && err.contains("soon"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_missing_config_file_is_named() {
        let err = Config::load(Some(Path::new("/nope/megzo.toml"))).unwrap_err();
        assert!(err.to_string().contains("/nope/megzo.toml"));
    }
}
