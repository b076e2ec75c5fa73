//! [`RedisBackend`]: the apalis `Backend` over [`Queue`].
//!
//! apalis drives a backend by polling it from one future; nothing in that poll path may block or
//! fail on a Redis hiccup, because a backend error ends the worker (the apalis-redis defect this
//! replaces). So all Redis I/O happens in background tasks the backend owns, and they retry
//! transient errors forever with backoff:
//!
//! - the **fetcher** leases batches of jobs while the worker has room (a semaphore of
//!   `concurrency + prefetch` permits, each held from lease to ack) and hands them to `poll_next`
//!   through a channel; when the queue is empty it sleeps `poll_interval`;
//! - the **acker** applies outcomes in batches (one script call for up to 512 acks);
//! - the **lease keeper** renews the leases of every job this process holds, every third of the
//!   lease, and records the worker's heartbeat;
//! - the **reaper** rescues jobs of any process whose lease expired (every `reap_interval`).
//!
//! On shutdown (`poll_close`, or [`BackendHandle::shutdown`] when the grace period ran out) the
//! fetcher stops, leased-but-unstarted jobs and jobs still running are released back to the
//! head of their queues without spending an attempt, and pending acks are flushed.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::task::Task;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::{RandomId, TaskId};
use apalis_core::worker::context::WorkerContext;
use queue_schema::{AttemptError, ErrorClass, Job, JobId, JobKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::service::{AckLayer, RunNotes};
use super::{Ack, AckOutcome, AckStatus, Queue, Reaped};
use crate::telemetry::metrics as m;

/// Options of one worker process's backend.
#[derive(Debug, Clone)]
pub struct BackendOptions {
    /// Unique per process; shown in the fleet view and in every attempt's record.
    pub worker_id: String,
    /// Kinds this worker runs (served by [`queue_schema::serve_order`]: a weighted round robin
    /// of priorities).
    pub kinds: Vec<JobKind>,
    /// Jobs run at once by this process.
    pub concurrency: usize,
    /// Jobs leased ahead of free slots, so a slot never waits for a Redis round trip.
    pub prefetch: usize,
    /// Jobs leased per fetch, at most (1 to 1,000).
    pub batch: usize,
    /// Sleep between fetches when the queue is empty.
    pub poll_interval: Duration,
    pub reap_interval: Duration,
    /// Overrides every kind's timeout (tests).
    pub timeout_override: Option<Duration>,
    /// Seeds the jitter generator (tests); `None` seeds from the OS.
    pub jitter_seed: Option<u64>,
}

impl BackendOptions {
    pub fn new(worker_id: impl Into<String>) -> Self {
        Self {
            worker_id: worker_id.into(),
            kinds: JobKind::by_priority(),
            concurrency: 64,
            prefetch: 8,
            batch: 32,
            poll_interval: Duration::from_millis(100),
            reap_interval: Duration::from_secs(5),
            timeout_override: None,
            jitter_seed: None,
        }
    }
}

/// What happened to one attempt, for the run history in Postgres and the metrics.
#[derive(Debug, Clone)]
pub struct AttemptReport {
    pub id: JobId,
    pub kind: JobKind,
    pub attempt: u32,
    /// The job (payload included), when the worker had it; a lost attempt found by the reaper
    /// has only the ids.
    pub job: Option<Job>,
    pub tenant: String,
    pub status: AckStatus,
    /// The attempt was lost with its worker (found by the reaper); `status` then says whether
    /// the job was rescued (`Retrying`) or, out of attempts, is `Dead`.
    pub lost: bool,
    pub error: Option<AttemptError>,
    pub started_ms: u64,
    pub finished_ms: u64,
    pub worker: String,
    /// What the handler noted (the mapping version it applied).
    pub notes: RunNotes,
}

struct Held {
    attempt: u32,
    lease: u64,
    kind: JobKind,
    /// Order of leasing in this process, so jobs released at shutdown keep their queue order.
    seq: u64,
    _permit: OwnedSemaphorePermit,
}

struct PendingAck {
    ack: Ack,
    job: Option<Job>,
    tenant: String,
    kind: JobKind,
    started_ms: u64,
    notes: RunNotes,
}

/// State shared by the backend, its background tasks and the ack service.
pub(crate) struct Shared {
    pub(crate) queue: Queue,
    pub(crate) worker_id: String,
    opts: BackendOptions,
    held: Mutex<HashMap<JobId, Held>>,
    fetch_seq: std::sync::atomic::AtomicU64,
    ack_tx: mpsc::UnboundedSender<PendingAck>,
    pending_acks: AtomicUsize,
    acks_flushed: Notify,
    reports: Option<mpsc::UnboundedSender<AttemptReport>>,
    rng: Mutex<StdRng>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("worker_id", &self.worker_id)
            .field("held", &self.held_count())
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn timeout_for(&self, kind: JobKind) -> Duration {
        self.opts
            .timeout_override
            .unwrap_or_else(|| kind.policy().timeout)
    }

    pub(crate) fn jitter(&self) -> f64 {
        self.rng
            .lock()
            .map(|mut r| r.random::<f64>())
            .unwrap_or(0.5)
    }

    fn held_count(&self) -> usize {
        self.held.lock().map(|h| h.len()).unwrap_or(0)
    }

    /// Leases held, most recently leased first: (job, lease generation, attempt, kind).
    fn held_leases(&self) -> Vec<(JobId, u64, u32, JobKind)> {
        let mut held: Vec<_> = self
            .held
            .lock()
            .map(|h| {
                h.iter()
                    .map(|(id, x)| (x.seq, *id, x.lease, x.attempt, x.kind))
                    .collect()
            })
            .unwrap_or_default();
        held.sort_unstable_by_key(|h| std::cmp::Reverse(h.0));
        held.into_iter()
            .map(|(_, id, lease, attempt, kind)| (id, lease, attempt, kind))
            .collect()
    }

    fn hold(
        &self,
        id: JobId,
        lease: u64,
        attempt: u32,
        kind: JobKind,
        permit: OwnedSemaphorePermit,
    ) {
        let seq = self.fetch_seq.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut h) = self.held.lock() {
            h.insert(
                id,
                Held {
                    attempt,
                    lease,
                    kind,
                    seq,
                    _permit: permit,
                },
            );
        }
    }

    /// Queues an attempt's outcome for the acker.
    pub(crate) fn report(
        &self,
        job: &Job,
        outcome: AckOutcome,
        started_ms: u64,
        took: Duration,
        notes: RunNotes,
    ) {
        m::job_finished(job.kind, &outcome, took);
        self.send_ack(PendingAck {
            ack: Ack {
                id: job.id,
                lease: job.lease,
                attempt: job.attempt,
                outcome,
            },
            job: Some(job.clone()),
            tenant: job.payload.tenant().to_string(),
            kind: job.kind,
            started_ms,
            notes,
        });
    }

    fn send_ack(&self, p: PendingAck) {
        self.pending_acks.fetch_add(1, Ordering::SeqCst);
        if self.ack_tx.send(p).is_err() {
            // The acker is gone only after shutdown; the lease will expire and the job be
            // rescued, so nothing is lost.
            self.pending_acks.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(
                "ack dropped after shutdown; the job will be rescued when its lease expires"
            );
        }
    }
}

/// The apalis backend. Built by [`RedisBackend::start`], which spawns its background tasks.
pub struct RedisBackend {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Job>,
    handle: BackendHandle,
    closing: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

/// A handle on a running backend, kept by the process after handing the backend to apalis:
/// shutdown and inspection.
#[derive(Debug, Clone)]
pub struct BackendHandle {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    fetcher: Arc<Mutex<Option<JoinHandle<()>>>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("shared", &self.shared)
            .field("closing", &self.closing.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// Starts the background tasks. `reports` receives every attempt's outcome (for the run
    /// history); pass `None` when nothing records runs (benchmarks).
    pub fn start(
        queue: Queue,
        opts: BackendOptions,
        reports: Option<mpsc::UnboundedSender<AttemptReport>>,
    ) -> Self {
        let mut opts = opts;
        opts.batch = opts.batch.clamp(1, super::MAX_BATCH as usize);
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let rng = match opts.jitter_seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let shared = Arc::new(Shared {
            worker_id: opts.worker_id.clone(),
            queue,
            held: Mutex::new(HashMap::new()),
            fetch_seq: std::sync::atomic::AtomicU64::new(0),
            ack_tx,
            pending_acks: AtomicUsize::new(0),
            acks_flushed: Notify::new(),
            reports,
            rng: Mutex::new(rng),
            opts,
        });
        let cancel = CancellationToken::new();
        let (tx, rx) = mpsc::channel(shared.opts.prefetch.max(1) + shared.opts.concurrency);
        let permits = Arc::new(Semaphore::new(
            shared.opts.concurrency + shared.opts.prefetch,
        ));
        let fetcher = tokio::spawn(fetcher(shared.clone(), tx, permits, cancel.clone()));
        let tasks = vec![
            tokio::spawn(acker(shared.clone(), ack_rx)),
            tokio::spawn(lease_keeper(shared.clone(), cancel.clone())),
            tokio::spawn(reaper(shared.clone(), cancel.clone())),
        ];
        let handle = BackendHandle {
            shared: shared.clone(),
            cancel,
            fetcher: Arc::new(Mutex::new(Some(fetcher))),
            tasks: Arc::new(Mutex::new(tasks)),
        };
        Self {
            shared,
            rx,
            handle,
            closing: None,
        }
    }

    pub fn handle(&self) -> BackendHandle {
        self.handle.clone()
    }
}

impl BackendHandle {
    /// Jobs this process holds a lease on (running or prefetched).
    pub fn held(&self) -> usize {
        self.shared.held_count()
    }

    pub fn worker_id(&self) -> &str {
        &self.shared.worker_id
    }

    /// Whether the fetcher is still running (it stops only on shutdown).
    pub fn is_running(&self) -> bool {
        !self.cancel.is_cancelled()
    }

    /// Stops fetching, releases every job still held (their attempt is given back), flushes
    /// pending acks (waiting at most `flush_within`), and stops the background tasks.
    /// Idempotent.
    pub async fn shutdown(&self, flush_within: Duration) {
        self.cancel.cancel();
        // Let a fetch in flight finish, so the jobs it leases are held (and released below)
        // rather than left leased to no one until their lease expires.
        let fetcher = self.fetcher.lock().ok().and_then(|mut f| f.take());
        if let Some(f) = fetcher
            && tokio::time::timeout(flush_within, f).await.is_err()
        {
            tracing::warn!(
                "fetcher did not stop in time; its last jobs will be rescued after the lease"
            );
        }
        // Give in-progress acks a chance first, so a job that just finished is not released.
        self.wait_acks(flush_within / 2).await;
        let leftovers = self.shared.held_leases();
        if !leftovers.is_empty() {
            // Most recently leased first: each release goes to the head of its list, so the
            // earliest-leased job ends up first again.
            tracing::info!(
                count = leftovers.len(),
                "releasing jobs still held at shutdown"
            );
            for (id, lease, attempt, kind) in leftovers {
                self.shared.send_ack(PendingAck {
                    ack: Ack {
                        id,
                        lease,
                        attempt,
                        outcome: AckOutcome::Release,
                    },
                    job: None,
                    tenant: String::new(),
                    kind,
                    started_ms: self.shared.queue.now_ms(),
                    notes: RunNotes::default(),
                });
            }
        }
        self.wait_acks(flush_within / 2).await;
        let tasks: Vec<_> = self
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for t in tasks {
            t.abort();
        }
        if let Err(e) = self.shared.queue.deregister(&self.shared.worker_id).await {
            tracing::warn!(error = %e, "could not deregister worker");
        }
    }

    async fn wait_acks(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.shared.pending_acks.load(Ordering::SeqCst) > 0 {
            let notified = self.shared.acks_flushed.notified();
            if self.shared.pending_acks.load(Ordering::SeqCst) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                tracing::warn!(
                    pending = self.shared.pending_acks.load(Ordering::SeqCst),
                    "acks not flushed in time; their jobs will be rescued after the lease"
                );
                break;
            }
        }
    }
}

impl Backend for RedisBackend {
    type Task = Task<Job>;
    type Error = std::io::Error;

    fn poll_ready(
        &mut self,
        _: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        self.rx.poll_recv(cx).map(|job| {
            job.map(|job| {
                let id = TaskId::from_string(job.id.to_string());
                let attempt = job.attempt as usize;
                Ok(TaskBuilder::new(job).task_id(id).attempt(attempt).build())
            })
        })
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        if self.closing.is_none() {
            // Jobs still in the channel were leased but never started: give them back.
            self.rx.close();
            let handle = self.handle.clone();
            self.closing = Some(Box::pin(async move {
                handle.shutdown(Duration::from_secs(10)).await;
            }));
        }
        match self.closing.as_mut() {
            Some(f) => f.as_mut().poll(cx).map(Ok),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl BackendConfig for RedisBackend {
    type Args = Job;
    type Id = RandomId;
    type Kind = Ephemeral;
    type Config = BackendOptions;
    type Layer = AckLayer;

    fn config(&self) -> &Self::Config {
        &self.shared.opts
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        AckLayer {
            shared: self.shared.clone(),
        }
    }
}

/// Backoff for retrying Redis calls in the background tasks: 50 ms doubling to 2 s, with jitter,
/// forever. A Redis restart or stall is waited out, never fatal.
fn redis_backoff() -> impl Iterator<Item = Duration> {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(2))
        .with_jitter()
        .without_max_times()
        .build()
}

async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = cancel.cancelled() => false,
    }
}

async fn fetcher(
    shared: Arc<Shared>,
    tx: mpsc::Sender<Job>,
    permits: Arc<Semaphore>,
    cancel: CancellationToken,
) {
    let opts = shared.opts.clone();
    let mut backoff = redis_backoff();
    let mut round: u64 = 0;
    loop {
        let first = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let mut slots = vec![first];
        while slots.len() < opts.batch.max(1) {
            match permits.clone().try_acquire_owned() {
                Ok(p) => slots.push(p),
                Err(_) => break,
            }
        }
        // Retried with the same request id until it succeeds, so jobs leased by a call whose
        // reply was lost come back to this worker instead of waiting out their lease. Not
        // abandoned on shutdown: shutdown waits for this loop, then releases what it got.
        let request = uuid::Uuid::new_v4().simple().to_string();
        let kinds = queue_schema::serve_order(&opts.kinds, round);
        round = round.wrapping_add(1);
        let jobs = loop {
            match shared
                .queue
                .fetch(&shared.worker_id, slots.len(), &kinds, &request)
                .await
            {
                Ok(jobs) => {
                    backoff = redis_backoff();
                    break jobs;
                }
                Err(e) => {
                    m::redis_error("fetch");
                    tracing::warn!(error = %e, "fetch failed; retrying the same request");
                    tokio::time::sleep(backoff.next().unwrap_or(Duration::from_secs(2))).await;
                }
            }
        };
        if jobs.is_empty() {
            drop(slots);
            if !sleep_or_cancel(opts.poll_interval, &cancel).await {
                return;
            }
            continue;
        }
        for (fetched, permit) in jobs.into_iter().zip(slots.drain(..)) {
            match fetched {
                Ok(job) => {
                    m::job_started(job.kind);
                    shared.hold(job.id, job.lease, job.attempt, job.kind, permit);
                    if let Err(mpsc::error::SendError(job)) = tx.send(job).await {
                        // The worker stopped polling (shutdown): give the job back.
                        shared.send_ack(PendingAck {
                            ack: Ack {
                                id: job.id,
                                lease: job.lease,
                                attempt: job.attempt,
                                outcome: AckOutcome::Release,
                            },
                            tenant: job.payload.tenant().to_string(),
                            kind: job.kind,
                            started_ms: shared.queue.now_ms(),
                            job: Some(job),
                            notes: RunNotes::default(),
                        });
                    }
                }
                Err(bad) => {
                    shared.hold(bad.id, bad.lease, bad.attempt, bad.kind, permit);
                    tracing::error!(job_id = %bad.id, reason = %bad.reason, "unreadable payload; dead-lettering");
                    let now = shared.queue.now_ms();
                    shared.send_ack(PendingAck {
                        ack: Ack {
                            id: bad.id,
                            lease: bad.lease,
                            attempt: bad.attempt,
                            outcome: AckOutcome::Dead {
                                error: AttemptError {
                                    attempt: bad.attempt,
                                    at_ms: now,
                                    worker: shared.worker_id.clone(),
                                    class: ErrorClass::BadPayload,
                                    chain: vec![queue_schema::job::storable(bad.reason.clone())],
                                    retry_after_ms: None,
                                },
                            },
                        },
                        job: None,
                        tenant: bad.tenant.clone(),
                        kind: bad.kind,
                        started_ms: now,
                        notes: RunNotes::default(),
                    });
                }
            }
        }
    }
}

async fn acker(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<PendingAck>) {
    const MAX_BATCH: usize = 512;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let acks: Vec<Ack> = batch.iter().map(|p| p.ack.clone()).collect();
        let mut backoff = redis_backoff();
        let statuses = loop {
            match shared.queue.ack(&acks).await {
                Ok(s) => break s,
                Err(e) => {
                    m::redis_error("ack");
                    tracing::warn!(error = %e, count = acks.len(), "ack failed; retrying");
                    tokio::time::sleep(backoff.next().unwrap_or(Duration::from_secs(2))).await;
                }
            }
        };
        let finished_ms = shared.queue.now_ms();
        if let Ok(mut h) = shared.held.lock() {
            for p in &batch {
                // Only the lease this ack was for: the same job may hold a newer lease already.
                if h.get(&p.ack.id).is_some_and(|x| x.lease == p.ack.lease) {
                    h.remove(&p.ack.id);
                }
            }
        }
        for (p, status) in batch.into_iter().zip(statuses) {
            m::ack_applied(p.kind, status);
            if status == AckStatus::Stale {
                tracing::warn!(job_id = %p.ack.id, attempt = p.ack.attempt,
                    "ack refused as stale: the lease expired and the job was rescued");
            }
            if let Some(tx) = &shared.reports {
                let error = match &p.ack.outcome {
                    AckOutcome::Retry { error, .. } | AckOutcome::Dead { error } => {
                        Some(error.clone())
                    }
                    _ => None,
                };
                let _ = tx.send(AttemptReport {
                    id: p.ack.id,
                    kind: p.kind,
                    attempt: p.ack.attempt,
                    job: p.job,
                    tenant: p.tenant,
                    status,
                    lost: false,
                    error,
                    started_ms: p.started_ms,
                    finished_ms,
                    worker: shared.worker_id.clone(),
                    notes: p.notes,
                });
            }
            shared.pending_acks.fetch_sub(1, Ordering::SeqCst);
        }
        shared.acks_flushed.notify_waiters();
    }
}

async fn lease_keeper(shared: Arc<Shared>, cancel: CancellationToken) {
    let every = Duration::from_millis(shared.queue.config().lease_ms / 3);
    loop {
        let ids: Vec<(JobId, u64)> = shared
            .held_leases()
            .into_iter()
            .map(|(id, lease, ..)| (id, lease))
            .collect();
        let wait = match shared.queue.renew(&shared.worker_id, &ids).await {
            Ok(_) => every,
            Err(e) => {
                m::redis_error("renew");
                tracing::warn!(error = %e, held = ids.len(), "lease renewal failed; retrying soon");
                Duration::from_millis(500)
            }
        };
        if !sleep_or_cancel(wait, &cancel).await {
            return;
        }
    }
}

async fn reaper(shared: Arc<Shared>, cancel: CancellationToken) {
    const LIMIT: usize = 500;
    loop {
        loop {
            match shared.queue.reap(LIMIT).await {
                Ok(reaped) => {
                    let n = reaped.len();
                    for r in reaped {
                        report_reaped(&shared, r);
                    }
                    if n < LIMIT {
                        break;
                    }
                }
                Err(e) => {
                    m::redis_error("reap");
                    tracing::warn!(error = %e, "reap failed; retrying next round");
                    break;
                }
            }
        }
        if !sleep_or_cancel(shared.opts.reap_interval, &cancel).await {
            return;
        }
    }
}

fn report_reaped(shared: &Shared, r: Reaped) {
    m::job_rescued(r.kind, r.dead);
    tracing::warn!(job_id = %r.id, job_kind = r.kind.as_str(), attempt = r.attempt,
        lost_worker = %r.worker, dead = r.dead, "rescued a job whose lease expired");
    if let Some(tx) = &shared.reports {
        let now = shared.queue.now_ms();
        let _ = tx.send(AttemptReport {
            id: r.id,
            kind: r.kind,
            attempt: r.attempt,
            job: None,
            tenant: r.tenant,
            status: if r.dead {
                AckStatus::Dead
            } else {
                AckStatus::Retrying
            },
            lost: true,
            error: Some(AttemptError {
                attempt: r.attempt,
                at_ms: now,
                worker: r.worker.clone(),
                class: ErrorClass::Lost,
                chain: vec![format!(
                    "lease expired: worker {} stopped renewing it (crashed, killed or stalled)",
                    r.worker
                )],
                retry_after_ms: None,
            }),
            started_ms: r.lease_started_ms,
            finished_ms: now,
            worker: r.worker,
            notes: RunNotes::default(),
        });
    }
}
