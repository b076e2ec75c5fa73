//! The six flow handlers, dispatched by job kind, over the connectors.
//!
//! Each job loads its connection, decrypts its credentials, builds the ERP, marketplace and
//! courier clients (every call through the fleet-wide [`RedisGate`] of the account) and runs
//! one flow; what each flow promises and how it keeps it is in its module:
//! [`catalog`] (mapped listings, only what changed, batch and moderation states per SKU),
//! [`stock`] (available − buffer − unreflected orders, only changes, reconcile passes),
//! [`orders`] (exactly one ERP document per marketplace order, never oversold, accepted after the
//! ERP has it), [`followups`] (the merchant's invoice PDF attached, one AWB per order, tracking
//! on the marketplace order) and [`returns`] (cancellations and returns matched to the ERP
//! document). Progress lives in Postgres (`db::flows`, cursors, the order rows).
//!
//! The built-in `noop ⇄ noop` connection runs without calling anything external: its
//! `catalog_push` maps the no-op ERP's demo catalog through the connection's active mapping
//! version (so a mapping that cannot map an article fails the job naming the SKU, rule and
//! field); its other flows do nothing.

pub mod catalog;
mod clients;
pub mod followups;
pub mod orders;
pub mod returns;
pub mod stock;

use std::sync::Arc;
use std::time::Duration;

use canonical::mapping::{Context, RateFeed};
use canonical::{Erp, Marketplace, TenantId};
use queue_schema::{Job, JobKind, JobPayload, JobSpec, Scope, Trigger};
use sqlx::PgPool;

use crate::db::Connection;
use crate::db::mappings::Direction;
use crate::gate::RedisGate;
use crate::mapping::{MappingCache, connectors_target};
use crate::queue::Queue;
use crate::queue::service::{JobError, note_mapping_version};
use crate::ratelimit::LimitsConfig;
use crate::rates::{MappingConfig, RatesCache};
use crate::runtime::{Handler, handler};
use crate::vault::Vault;

/// What a worker process gives the flows.
#[derive(Debug, Clone)]
pub struct FlowDeps {
    pub pool: PgPool,
    pub queue: Queue,
    /// The credential keys; `None` when `MEGZO_CREDENTIAL_KEYS` is unset (then only the
    /// built-in no-op connection can run, and a real one fails naming the missing keys).
    pub vault: Option<Arc<Vault>>,
    pub limits: LimitsConfig,
    pub mapping: MappingConfig,
    pub options: FlowOptions,
}

impl FlowDeps {
    /// The deps of a worker process: the vault from the environment when it is configured.
    pub fn new(pool: PgPool, queue: Queue, limits: LimitsConfig, mapping: MappingConfig) -> Self {
        let vault = match Vault::from_env() {
            Ok(v) => Some(Arc::new(v)),
            Err(e) => {
                tracing::warn!(error = %e, "no credential keys: connections to real systems cannot run");
                None
            }
        };
        Self {
            pool,
            queue,
            vault,
            limits,
            mapping,
            options: FlowOptions::default(),
        }
    }
}

/// Timings of the flows (configurable for tests and the demo).
#[derive(Debug, Clone)]
pub struct FlowOptions {
    /// How long `catalog_push` polls an asynchronous batch (CDON) before leaving it pending for
    /// the next run.
    pub settle_wait: Duration,
    pub settle_poll: Duration,
    /// The order lock's time to live (renewed while held).
    pub lock_ttl: Duration,
    /// An AWB whose create was in doubt and that the courier's lookup cannot find yet is minted
    /// again only after this long (the courier's tracking lags behind new shipments).
    pub awb_lookup_grace: Duration,
    /// Every this many heartbeats, `stock_push` sends every listed SKU's quantity again instead
    /// of only the changes (the reconcile pass; 0: never).
    pub reconcile_every: i64,
    /// Orders handled per run of the follow-up flows.
    pub batch: i64,
    /// ERP invoice checks per run of `invoice_attach` (the rest wait for the next run).
    pub invoice_batch: i64,
    /// An order whose invoice the ERP does not have yet is asked about again after this long,
    /// doubling each time up to `invoice_recheck_cap`.
    pub invoice_recheck: Duration,
    pub invoice_recheck_cap: Duration,
    /// A follow-up run (`awb_push`) stops taking new orders after this long and leaves them to
    /// the next run, well within its kind's timeout.
    pub run_budget: Duration,
}

impl Default for FlowOptions {
    fn default() -> Self {
        Self {
            settle_wait: Duration::from_secs(5),
            settle_poll: Duration::from_millis(500),
            lock_ttl: Duration::from_secs(30),
            awb_lookup_grace: Duration::from_secs(30 * 60),
            reconcile_every: 12,
            batch: 200,
            invoice_batch: 25,
            invoice_recheck: Duration::from_secs(60),
            invoice_recheck_cap: Duration::from_secs(3600),
            run_budget: Duration::from_secs(60),
        }
    }
}

/// What the flows share within a worker process.
#[derive(Debug, Clone)]
struct Flows {
    pool: PgPool,
    queue: Queue,
    vault: Option<Arc<Vault>>,
    limits: LimitsConfig,
    options: FlowOptions,
    mappings: MappingCache,
    rates: RatesCache,
    clients: Arc<clients::ClientCache>,
}

/// Connections whose clients one worker process keeps (see [`clients`]).
const CLIENT_CACHE_CAPACITY: usize = 10_000;

/// The product's handler: looks the connection up in Postgres and runs the job's flow on it.
pub fn flow_handler(deps: FlowDeps) -> Handler {
    let flows = Arc::new(Flows {
        mappings: MappingCache::new(deps.pool.clone()),
        rates: RatesCache::new(deps.pool.clone(), deps.mapping.clone()),
        clients: Arc::new(clients::ClientCache::new(CLIENT_CACHE_CAPACITY)),
        pool: deps.pool,
        queue: deps.queue,
        vault: deps.vault,
        limits: deps.limits,
        options: deps.options,
    });
    handler(move |job: Job| {
        let flows = flows.clone();
        async move { run_flow(&flows, &job).await }
    })
}

/// SHA-256 of `bytes` in lowercase hex (listing content hashes, short courier references).
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A job's connection with its live clients.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub pool: PgPool,
    pub queue: Queue,
    pub options: FlowOptions,
    pub conn: Connection,
    pub trigger: Trigger,
    pub erp: Arc<dyn connectors::Erp>,
    pub market: Arc<dyn connectors::Marketplace>,
    pub courier: Option<Arc<dyn connectors::Courier>>,
    /// The channel name of the marketplace (`cdon`, `celro`): the order rows' `channel`.
    pub channel: &'static str,
    mappings: MappingCache,
    rates: RatesCache,
    /// Turns true if this run's lock (see `run_flow`) is lost mid-run.
    run_lock: Option<tokio::sync::watch::Receiver<bool>>,
}

impl Ctx {
    /// Whether this run's lock was lost (expired while the process stalled, or taken by another
    /// run): a flow that works order by order stops before its next order, since another run
    /// may now work on the same rows.
    pub fn run_lock_lost(&self) -> bool {
        self.run_lock.as_ref().is_some_and(|lost| *lost.borrow())
    }

    pub fn tenant(&self) -> TenantId {
        self.conn.tenant_id
    }

    /// The ERP keeps no stock the product can read: the product holds it (`megzo stock set`).
    pub fn held_stock(&self) -> bool {
        !self
            .erp
            .capabilities()
            .supports(connectors::Flow::StockPush)
    }

    /// Whether the ERP's stock readings include an order once its sales document exists
    /// (WinMentor reserves on import; SmartBill only with `use_stock`), rather than once the
    /// merchant invoices it.
    pub fn document_moves_stock(&self) -> bool {
        document_moves_stock(&self.conn)
    }

    /// The flows' own settings of the connection (`settings.flows`), e.g. the shipper.
    pub fn flow_setting(&self, name: &str) -> Option<&serde_json::Value> {
        self.conn.settings.get("flows").and_then(|f| f.get(name))
    }

    /// Enqueues an immediate `stock_push` of `skus` on every marketplace connection of the
    /// tenant (this one included): an order on one channel changes what every channel may sell.
    pub async fn push_stock_everywhere(&self, skus: Vec<canonical::Sku>) -> Result<(), JobError> {
        if skus.is_empty() {
            return Ok(());
        }
        let conns = crate::db::list_connections(&self.pool, Some(self.tenant()))
            .await
            .map_err(JobError::retryable)?;
        let specs: Vec<JobSpec> = conns
            .iter()
            .filter(|c| c.enabled && c.marketplace != Marketplace::Noop)
            .map(|c| {
                JobSpec::new(
                    JobKind::StockPush,
                    JobPayload::v1(
                        self.tenant(),
                        c.id,
                        Scope::Skus { skus: skus.clone() },
                        Trigger::Manual,
                    ),
                )
            })
            .collect();
        self.queue
            .enqueue_many(&specs)
            .await
            .map_err(JobError::retryable)?;
        Ok(())
    }
}

/// The catalog as listings through the active `erp_to_marketplace` mapping (or, with none
/// active, as the items are), each with its quantity. Articles that cannot be mapped come back
/// by SKU with the reason; the mapping version used is noted on the run.
pub(crate) async fn map_listings(
    mappings: &MappingCache,
    rates: &RatesCache,
    conn: &Connection,
    items: &[(canonical::CatalogItem, u32)],
) -> Result<
    (
        Vec<canonical::Listing>,
        Vec<(canonical::Sku, String)>,
        String,
    ),
    JobError,
> {
    let active = mappings
        .active(conn.id, Direction::ErpToMarketplace)
        .await
        .map_err(|e| match e {
            crate::mapping::MappingError::Db(e) => JobError::retryable(e),
            e => JobError::permanent(e),
        })?;
    let feed: Arc<RateFeed> = rates.feed().await.map_err(JobError::retryable)?;
    let target = connectors_target(conn).map_err(JobError::permanent)?;
    if let Some(a) = &active {
        note_mapping_version(a.version);
    }
    let ctx = Context::on(chrono::Utc::now().date_naive()).with_feed(&feed);
    let mut listings = Vec::with_capacity(items.len());
    let mut refused = Vec::new();
    for (item, qty) in items {
        let record = connectors::mapping::catalog_record(item, Some(*qty));
        let mapped = match &active {
            Some(a) => a
                .rules
                .apply(&record, &ctx)
                .map(|o| o.record)
                .map_err(|e| e.to_string()),
            None => Ok(record),
        };
        match mapped.and_then(|m| target.listing(item, &m, *qty)) {
            Ok(l) => listings.push(l),
            Err(e) => refused.push((item.sku.clone(), e)),
        }
    }
    let version = active.map_or("no mapping".to_owned(), |a| {
        format!("mapping v{}", a.version)
    });
    Ok((listings, refused, version))
}

/// The no-op catalog through the active mapping: every refused article fails the job by SKU.
async fn noop_catalog(flows: &Flows, conn: &Connection) -> Result<(), JobError> {
    let items: Vec<_> = connectors::noop::demo_catalog()
        .into_iter()
        .map(|i| (i, 0))
        .collect();
    let (listings, refused, version) =
        map_listings(&flows.mappings, &flows.rates, conn, &items).await?;
    if !refused.is_empty() {
        let list: Vec<String> = refused.iter().map(|(s, e)| format!("{s}: {e}")).collect();
        return Err(JobError::permanent(format!(
            "{} of {} articles cannot be mapped with {version}: {}",
            refused.len(),
            items.len(),
            list.join("; ")
        )));
    }
    tracing::debug!(listings = listings.len(), "no-op catalog mapped");
    Ok(())
}

/// The clients of a connection, from its settings and decrypted credentials, each call through
/// the account's fleet-wide gate. The account of a system is the tenant's: a tenant's
/// connections to one system share its limits. Clients are kept per connection while what they
/// were built from is unchanged ([`clients`]), so their connection pools, login tokens and
/// reference tables outlive one job.
async fn context(flows: &Flows, conn: Connection, trigger: Trigger) -> Result<Ctx, JobError> {
    let clients = connection_clients(flows, &conn).await?;
    Ok(Ctx {
        pool: flows.pool.clone(),
        queue: flows.queue.clone(),
        options: flows.options.clone(),
        channel: conn.marketplace.as_str(),
        conn,
        trigger,
        erp: clients.erp,
        market: clients.market,
        courier: clients.courier,
        mappings: flows.mappings.clone(),
        rates: flows.rates.clone(),
        run_lock: None,
    })
}

/// The current clients of `conn`: the cached ones if its systems, settings and sealed
/// credentials are those they were built from, else new ones (then cached).
async fn connection_clients(
    flows: &Flows,
    conn: &Connection,
) -> Result<clients::Clients, JobError> {
    let vault = flows.vault.as_ref().ok_or_else(|| {
        JobError::permanent(format!(
            "connection {} needs its credentials, but this worker has no credential keys (set {})",
            conn.id,
            crate::vault::KEYS_ENV
        ))
    })?;
    let sealed = crate::db::load_sealed(&flows.pool, conn.id)
        .await
        .map_err(JobError::retryable)?;
    let fingerprint = clients::fingerprint(conn, sealed.as_ref());
    if let Some(c) = flows.clients.get(conn.id, &fingerprint) {
        return Ok(c);
    }
    let creds = match &sealed {
        Some(s) => Some(vault.open(conn.id, s).map_err(JobError::permanent)?),
        None => None,
    };
    let settings = conn.settings.as_object().cloned().unwrap_or_default();
    let gate = |system: &'static str| -> Option<Arc<dyn connectors::gate::CallGate>> {
        Some(Arc::new(RedisGate::new(
            &flows.queue,
            system,
            &conn.tenant_id.to_string(),
            &flows.limits,
        )))
    };
    let erp = crate::connect::erp(conn.erp, &settings, creds.as_ref(), gate(conn.erp.as_str()))?
        .ok_or_else(|| JobError::permanent("the no-op ERP has no client"))?;
    let market = crate::connect::marketplace(
        conn.marketplace,
        &settings,
        creds.as_ref(),
        gate(conn.marketplace.as_str()),
    )?
    .ok_or_else(|| JobError::permanent("the no-op marketplace has no client"))?;
    let courier = match conn.courier {
        Some(c) => crate::connect::courier(c, &settings, creds.as_ref(), gate(c.as_str()))?,
        None => None,
    };
    let built = clients::Clients {
        erp,
        market,
        courier,
    };
    flows.clients.put(conn.id, fingerprint, built.clone());
    Ok(built)
}

/// Whether a connection's ERP counts an order in its stock readings once the order's sales
/// document exists (WinMentor reserves on import; SmartBill only with `use_stock`), rather than
/// once the merchant invoices it.
pub fn document_moves_stock(conn: &Connection) -> bool {
    match conn.erp {
        Erp::WinMentor => true,
        Erp::SmartBill => conn
            .settings
            .pointer("/smartbill/use_stock")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
        _ => false,
    }
}

/// A flow's run lock, released when the run ends (and expiring with its TTL if the process
/// dies).
struct RunLock(Option<crate::lock::OrderLock>);

impl Drop for RunLock {
    fn drop(&mut self) {
        if let Some(lock) = self.0.take() {
            tokio::spawn(async move {
                let _ = lock.release().await;
            });
        }
    }
}

async fn run_flow(flows: &Flows, job: &Job) -> Result<(), JobError> {
    let pool = &flows.pool;
    let tenant = job.payload.tenant();
    let connection = job.payload.connection();
    let conns = crate::db::list_connections(pool, Some(tenant))
        .await
        .map_err(JobError::retryable)?;
    let Some(conn) = conns.into_iter().find(|c| c.id == connection) else {
        return Err(JobError::permanent(format!(
            "connection {connection} of tenant {tenant} does not exist (deleted after the job was enqueued?)"
        )));
    };
    if !conn.enabled {
        tracing::info!(
            job_kind = job.kind.as_str(),
            "connection disabled; nothing to do"
        );
        return Ok(());
    }
    match (conn.erp, conn.marketplace) {
        (Erp::Noop, Marketplace::Noop) => {
            if job.kind == JobKind::CatalogPush {
                noop_catalog(flows, &conn).await?;
            }
            tracing::debug!(job_kind = job.kind.as_str(), "no-op flow ran");
            Ok(())
        }
        (Erp::Noop, _) | (_, Marketplace::Noop) => Err(JobError::permanent(format!(
            "{} for {} ⇄ {} cannot run: the no-op connector pairs only with itself",
            job.kind, conn.erp, conn.marketplace
        ))),
        _ => {
            // One run at a time per connection for the flows that work through the same stored
            // rows (two `awb_push` runs at once would both mint an order's AWB). A run that
            // finds another in progress: a heartbeat's is covered by it, a wake-up's runs
            // again shortly (snoozed: not a failed attempt).
            let mut run_lock = if matches!(
                job.kind,
                JobKind::CatalogPush
                    | JobKind::InvoiceAttach
                    | JobKind::AwbPush
                    | JobKind::ReturnsReconcile
            ) {
                let resource = format!("run:{}:{}", job.kind.as_str(), conn.id);
                match crate::lock::OrderLock::try_acquire(
                    &flows.queue,
                    &tenant.to_string(),
                    &resource,
                    flows.options.lock_ttl,
                )
                .await
                .map_err(JobError::retryable)?
                {
                    Some(lock) => Some(RunLock(Some(lock))),
                    None if matches!(job.payload.trigger(), Trigger::Heartbeat { .. }) => {
                        tracing::info!(
                            job_kind = job.kind.as_str(),
                            "another run of this flow is in progress; it covers this one"
                        );
                        return Ok(());
                    }
                    None => return Err(JobError::Snooze(Duration::from_secs(2))),
                }
            } else {
                None
            };
            let mut ctx = context(flows, conn, job.payload.trigger().clone()).await?;
            ctx.run_lock = run_lock
                .as_ref()
                .and_then(|l| l.0.as_ref())
                .map(|l| l.lost_signal());
            let scope = job.payload.scope().clone();
            let result = match job.kind {
                JobKind::CatalogPush => catalog::run(&ctx).await,
                JobKind::StockPush => stock::run(&ctx, &scope).await,
                JobKind::OrderPull => orders::run(&ctx).await,
                JobKind::InvoiceAttach => followups::invoices(&ctx).await,
                JobKind::AwbPush => followups::awbs(&ctx).await,
                JobKind::ReturnsReconcile => returns::run(&ctx).await,
            };
            // Released now, so the next run (a retry, the next heartbeat) finds it free; the
            // drop only covers a run cut short (timeout, panic).
            if let Some(lock) = run_lock.as_mut().and_then(|l| l.0.take()) {
                let _ = lock.release().await;
            }
            result
        }
    }
}
