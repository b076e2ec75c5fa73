//! The six flow handlers, dispatched by job kind.
//!
//! Today every connection of a demo tenant is `noop ⇄ noop`: its flows succeed without calling
//! anything external, so the fleet (scheduler, queue, workers, history) runs end to end. Its
//! `catalog_push` maps the no-op ERP's demo catalog through the connection's **active mapping
//! version** (reloaded live, recorded in the run) into listings, so a mapping that cannot map
//! an article fails the job naming the SKU, rule and field. A connection whose ERP or
//! marketplace is a real system fails permanently with a message that says so until the flows
//! over the connectors land (issue 6): nothing pretends to have synced.

use std::sync::Arc;

use canonical::mapping::{Context, RateFeed};
use canonical::{Erp, Marketplace};
use queue_schema::{Job, JobKind};
use sqlx::PgPool;

use crate::db::Connection;
use crate::db::mappings::Direction;
use crate::mapping::{MappingCache, connectors_target};
use crate::queue::service::{JobError, note_mapping_version};
use crate::rates::{MappingConfig, RatesCache};
use crate::runtime::{Handler, handler};

/// What the flows share within a worker process.
#[derive(Debug, Clone)]
struct Flows {
    pool: PgPool,
    mappings: MappingCache,
    rates: RatesCache,
}

/// The product's handler: looks the connection up in Postgres and runs the job's flow on it.
pub fn flow_handler(pool: PgPool, mapping: MappingConfig) -> Handler {
    let flows = Arc::new(Flows {
        mappings: MappingCache::new(pool.clone()),
        rates: RatesCache::new(pool.clone(), mapping),
        pool,
    });
    handler(move |job: Job| {
        let flows = flows.clone();
        async move { run_flow(&flows, &job).await }
    })
}

/// The catalog as listings through the active `erp_to_marketplace` mapping (or, with none
/// active, as the items are). Every article that cannot be mapped is reported, by SKU.
async fn map_catalog(
    flows: &Flows,
    conn: &Connection,
    items: &[canonical::CatalogItem],
) -> Result<Vec<canonical::Listing>, JobError> {
    let active = flows
        .mappings
        .active(conn.id, Direction::ErpToMarketplace)
        .await
        .map_err(|e| match e {
            crate::mapping::MappingError::Db(e) => JobError::retryable(e),
            e => JobError::permanent(e),
        })?;
    let feed: Arc<RateFeed> = flows.rates.feed().await.map_err(JobError::retryable)?;
    let target = connectors_target(conn).map_err(JobError::permanent)?;
    if let Some(a) = &active {
        note_mapping_version(a.version);
    }
    let ctx = Context::on(chrono::Utc::now().date_naive()).with_feed(&feed);
    let mut listings = Vec::with_capacity(items.len());
    let mut refused = Vec::new();
    for item in items {
        let record = connectors::mapping::catalog_record(item, None);
        let mapped = match &active {
            Some(a) => a
                .rules
                .apply(&record, &ctx)
                .map(|o| o.record)
                .map_err(|e| e.to_string()),
            None => Ok(record),
        };
        match mapped.and_then(|m| target.listing(item, &m, 0)) {
            Ok(l) => listings.push(l),
            Err(e) => refused.push(format!("{}: {e}", item.sku)),
        }
    }
    if !refused.is_empty() {
        let version = active.map_or("no mapping".to_owned(), |a| {
            format!("mapping v{}", a.version)
        });
        return Err(JobError::permanent(format!(
            "{} of {} articles cannot be mapped with {version}: {}",
            refused.len(),
            items.len(),
            refused.join("; ")
        )));
    }
    Ok(listings)
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
                let listings = map_catalog(flows, &conn, &connectors::noop::demo_catalog()).await?;
                tracing::debug!(listings = listings.len(), "no-op catalog mapped");
            }
            tracing::debug!(job_kind = job.kind.as_str(), "no-op flow ran");
            Ok(())
        }
        (erp, marketplace) => Err(JobError::permanent(format!(
            "{} for {erp} ⇄ {marketplace} cannot run: this build runs flows only on the built-in no-op connector (the flows over real connectors are not built yet)",
            job.kind
        ))),
    }
}
