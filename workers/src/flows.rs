//! The six flow handlers, dispatched by job kind.
//!
//! Today every connection of a demo tenant is `noop ⇄ noop`: its flows succeed without calling
//! anything, so the fleet (scheduler, queue, workers, history) runs end to end. A connection whose
//! ERP or marketplace is a real system fails permanently with a message that says so until the
//! flows over the connectors land (the marketplace and courier clients exist, in `connectors`;
//! the ERP connectors and the flows are the next issues): nothing pretends to have synced.

use canonical::{Erp, Marketplace};
use queue_schema::Job;
use sqlx::PgPool;

use crate::queue::service::JobError;
use crate::runtime::{Handler, handler};

/// The product's handler: looks the connection up in Postgres and runs the job's flow on it.
pub fn flow_handler(pool: PgPool) -> Handler {
    handler(move |job: Job| {
        let pool = pool.clone();
        async move { run_flow(&pool, &job).await }
    })
}

async fn run_flow(pool: &PgPool, job: &Job) -> Result<(), JobError> {
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
            tracing::debug!(job_kind = job.kind.as_str(), "no-op flow ran");
            Ok(())
        }
        (erp, marketplace) => Err(JobError::permanent(format!(
            "{} for {erp} ⇄ {marketplace} cannot run: this build runs flows only on the built-in no-op connector (the flows over real connectors are not built yet)",
            job.kind
        ))),
    }
}
