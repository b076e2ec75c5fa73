//! Running a worker: the apalis `Monitor` and `WorkerBuilder` over [`RedisBackend`], with a
//! handler chosen by the caller (the product's flows in `megzo worker`, test behaviours in the
//! integration tests, a no-op in the benchmarks).
//!
//! Shutdown: when `shutdown` resolves (SIGTERM/SIGINT in the binary), apalis stops pulling
//! from the backend and waits for in-flight handlers; after `grace` the monitor gives up on them,
//! and [`BackendHandle::shutdown`] releases whatever is still held back to the queue (its attempt
//! given back) and flushes acks. Nothing waits for a lease to expire after a clean stop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use apalis::layers::WorkerBuilderExt;
use apalis_core::monitor::Monitor;
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use futures::future::BoxFuture;
use queue_schema::Job;
use tokio::sync::mpsc;

use crate::queue::Queue;
use crate::queue::backend::{AttemptReport, BackendHandle, BackendOptions, RedisBackend};
use crate::queue::service::JobError;

/// A job handler: what a worker does with a job.
pub type Handler = Arc<dyn Fn(Job) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync>;

/// Wraps an async closure as a [`Handler`].
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    Arc::new(move |job| Box::pin(f(job)))
}

async fn dispatch(job: Job, h: Data<Handler>) -> Result<(), JobError> {
    (h.as_ref())(job).await
}

/// A started worker: its backend handle (for readiness and the final release) and the future
/// that runs it to completion.
pub struct RunningWorker {
    pub handle: BackendHandle,
    pub run: BoxFuture<'static, anyhow::Result<()>>,
}

impl std::fmt::Debug for RunningWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningWorker")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

/// Builds a worker over `queue`; poll `run` to drive it. It returns after `shutdown` resolved
/// and in-flight jobs drained (or `grace` passed), with every held job released.
pub fn start_worker(
    queue: Queue,
    opts: BackendOptions,
    handler: Handler,
    reports: Option<mpsc::UnboundedSender<AttemptReport>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> RunningWorker {
    let concurrency = opts.concurrency.max(1);
    let worker_id = opts.worker_id.clone();
    let backend = RedisBackend::start(queue.clone(), opts.clone(), reports.clone());
    let handle = backend.handle();
    let slot = std::sync::Mutex::new(Some(backend));
    let h2 = handle.clone();
    let run = Box::pin(async move {
        let monitor = Monitor::new()
            .register(move |_run| {
                // The backend is built above; apalis calls this again only to restart a failed
                // worker, which ours never is (Redis errors are retried inside the backend), and
                // no restart policy is set. Should that change, a fresh backend is started.
                let backend = slot
                    .lock()
                    .ok()
                    .and_then(|mut s| s.take())
                    .unwrap_or_else(|| {
                        tracing::warn!("worker restarted by the monitor; starting a new backend");
                        RedisBackend::start(queue.clone(), opts.clone(), reports.clone())
                    });
                WorkerBuilder::new(worker_id.clone())
                    .backend(backend)
                    .concurrency(concurrency)
                    .data(handler.clone())
                    .build(dispatch)
            })
            .shutdown_timeout(grace);
        let signal = async move {
            shutdown.await;
            Ok(())
        };
        let res = monitor.run_with_signal(signal).await;
        // Whatever the monitor left (handlers still running after the grace), give it back.
        h2.shutdown(Duration::from_secs(5)).await;
        res.map_err(|e| anyhow::anyhow!("worker monitor: {e}"))
    });
    RunningWorker { handle, run }
}
