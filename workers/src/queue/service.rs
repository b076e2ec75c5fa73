//! The closed outcome vocabulary of a handler, and the tower layer that maps it to an ack at the
//! worker edge, once.
//!
//! A handler returns `Result<(), JobError>`:
//! - `Ok(())`: done;
//! - [`JobError::Retryable`]: try again after the kind's backoff, or after the delay the handler
//!   asks for (an API's `Retry-After`);
//! - [`JobError::Permanent`]: will never succeed as is; dead-lettered now, replayable;
//! - [`JobError::Snooze`]: not a failure, run again later; the attempt is given back.
//!
//! An outcome whose truth is unknown (an ERP create that timed out after sending) is not a queue
//! outcome: the flow parks the order as `needs_review` in Postgres and returns `Ok(())`, because
//! retrying it blindly could create a second document.
//!
//! [`AckLayer`] sits outermost in the worker's service stack (apalis places a backend's
//! middleware there): it enforces the kind's timeout, turns a panic into a failed attempt, and
//! hands the outcome to the backend's acker.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use apalis_core::error::BoxDynError;
use apalis_core::task::Task;
use futures::FutureExt;
use queue_schema::{AttemptError, ErrorClass, Job};
use tower::{Layer, Service};

use super::AckOutcome;
use super::backend::Shared;

/// How a handler says an attempt failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// Transient: retry after the backoff, or after `retry_after` when the handler knows better.
    #[error("{source}")]
    Retryable {
        #[source]
        source: BoxDynError,
        retry_after: Option<Duration>,
    },
    /// Will never succeed as is: dead-letter now, keep it replayable.
    #[error("{source}")]
    Permanent {
        #[source]
        source: BoxDynError,
    },
    /// Not a failure: run again after the delay, without spending an attempt.
    #[error("snoozed for {0:?}")]
    Snooze(Duration),
}

impl JobError {
    pub fn retryable(e: impl Into<BoxDynError>) -> Self {
        JobError::Retryable {
            source: e.into(),
            retry_after: None,
        }
    }

    pub fn retry_after(e: impl Into<BoxDynError>, after: Duration) -> Self {
        JobError::Retryable {
            source: e.into(),
            retry_after: Some(after),
        }
    }

    pub fn permanent(e: impl Into<BoxDynError>) -> Self {
        JobError::Permanent { source: e.into() }
    }
}

/// What a handler tells its attempt's run record beyond the outcome (kept in `job_runs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunNotes {
    /// The field-mapping version the attempt applied.
    pub mapping_version: Option<i32>,
}

tokio::task_local! {
    static NOTES: Arc<Mutex<RunNotes>>;
}

/// Records, for the current attempt's run record, the field-mapping version it applied. Called
/// from a handler's own task (not from tasks it spawns); outside a job it does nothing.
pub fn note_mapping_version(version: i32) {
    let _ = NOTES.try_with(|n| {
        if let Ok(mut n) = n.lock() {
            n.mapping_version = Some(version);
        }
    });
}

/// Wraps the worker's service stack; see the module doc.
#[derive(Debug, Clone)]
pub struct AckLayer {
    pub(crate) shared: Arc<Shared>,
}

impl<S> Layer<S> for AckLayer {
    type Service = AckService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AckService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// See [`AckLayer`].
#[derive(Debug, Clone)]
pub struct AckService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Task<Job>> for AckService<S>
where
    S: Service<Task<Job>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxDynError>,
{
    type Response = ();
    type Error = BoxDynError;
    type Future = Pin<Box<dyn Future<Output = Result<(), BoxDynError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Job>) -> Self::Future {
        let job = task.args.clone();
        let shared = self.shared.clone();
        let timeout = shared.timeout_for(job.kind);
        let fut = self.inner.call(task);
        Box::pin(async move {
            let started = Instant::now();
            let started_ms = shared.queue.now_ms();
            let span = tracing::info_span!(
                "job",
                job_id = %job.id,
                job_kind = job.kind.as_str(),
                tenant = %job.payload.tenant(),
                connection = %job.payload.connection(),
                attempt = job.attempt,
            );
            let notes = Arc::new(Mutex::new(RunNotes::default()));
            let run =
                AssertUnwindSafe(NOTES.scope(notes.clone(), tokio::time::timeout(timeout, fut)))
                    .catch_unwind();
            let result = tracing::Instrument::instrument(run, span).await;
            let elapsed = started.elapsed();
            let (outcome, ret) = match result {
                Ok(Ok(Ok(_))) => (AckOutcome::Succeeded, Ok(())),
                Ok(Ok(Err(e))) => {
                    let e: BoxDynError = e.into();
                    let outcome = shared.classify(&job, &e);
                    (outcome, Err(e))
                }
                Ok(Err(_elapsed)) => {
                    let msg = format!(
                        "attempt ran past the {} timeout of {timeout:?}",
                        job.kind.as_str()
                    );
                    let outcome = shared.failed(&job, ErrorClass::Timeout, vec![msg.clone()], None);
                    (outcome, Err(msg.into()))
                }
                Err(panic) => {
                    let msg = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "handler panicked".to_owned());
                    let msg = format!("handler panicked: {msg}");
                    let outcome = shared.failed(&job, ErrorClass::Panic, vec![msg.clone()], None);
                    (outcome, Err(msg.into()))
                }
            };
            let notes = notes.lock().map(|n| n.clone()).unwrap_or_default();
            shared.report(&job, outcome, started_ms, elapsed, notes);
            ret
        })
    }
}

impl Shared {
    /// Maps a handler error to the queue outcome.
    pub(crate) fn classify(&self, job: &Job, e: &BoxDynError) -> AckOutcome {
        match e.downcast_ref::<JobError>() {
            Some(JobError::Snooze(d)) => AckOutcome::Snooze {
                delay_ms: capped_ms(*d),
            },
            Some(JobError::Permanent { source }) => {
                let chain = AttemptError::chain_of(source.as_ref());
                self.failed(job, ErrorClass::Permanent, chain, None)
            }
            Some(JobError::Retryable {
                source,
                retry_after,
            }) => {
                let chain = AttemptError::chain_of(source.as_ref());
                self.failed(job, ErrorClass::Retryable, chain, *retry_after)
            }
            None => {
                let chain = AttemptError::chain_of(e.as_ref());
                self.failed(job, ErrorClass::Retryable, chain, None)
            }
        }
    }

    /// The outcome of a failed attempt of `class`: dead if the class never retries, else a retry
    /// at the hinted delay or the kind's full-jitter backoff (the ack script turns it into dead
    /// when no attempt is left).
    pub(crate) fn failed(
        &self,
        job: &Job,
        class: ErrorClass,
        chain: Vec<String>,
        retry_after: Option<Duration>,
    ) -> AckOutcome {
        let now = self.queue.now_ms();
        let error = AttemptError {
            attempt: job.attempt,
            at_ms: now,
            worker: self.worker_id.clone(),
            class,
            chain,
            retry_after_ms: retry_after.map(capped_ms),
        };
        if !class.retries() {
            return AckOutcome::Dead { error };
        }
        let delay = match retry_after {
            Some(d) => d,
            None => job.kind.policy().retry_delay(job.attempt, self.jitter()),
        };
        AckOutcome::Retry {
            delay_ms: capped_ms(delay),
            error,
        }
    }
}

/// The longest delay a handler may ask for (a retry-after or a snooze): 30 days. Longer is a
/// mistake (or an API's garbage header), and would overflow the queue's millisecond clock.
pub const MAX_DELAY: Duration = Duration::from_secs(30 * 24 * 3600);

fn capped_ms(d: Duration) -> u64 {
    d.min(MAX_DELAY).as_millis() as u64
}
