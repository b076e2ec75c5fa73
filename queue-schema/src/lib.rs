//! `queue-schema`: the contract between whoever enqueues a job and whoever runs it.
//!
//! A job crosses process boundaries and outlives deployments, so everything here is a wire format
//! and is versioned or stable by construction:
//!
//! - [`kind`]: the six job kinds, their stable strings and their policy (attempts, timeout,
//!   priority, backoff, dedupe key), the single registration point for a kind;
//! - [`payload`]: the versioned serde payload every job carries (tenant, connection, scope,
//!   trigger);
//! - [`job`]: a job to enqueue ([`JobSpec`]) and a job as a worker receives it ([`Job`]), the
//!   attempt record kept for each failure ([`AttemptError`]);
//! - [`state`]: the job state machine, enforced by [`JobState::can_move_to`];
//! - [`keys`]: the whole Redis key layout, in one place, hash-tagged for Redis Cluster.
//!
//! **This crate does no I/O and never depends on `connectors`.** A kind string is never a Rust
//! type path: renaming a type must not orphan queued jobs.

pub mod job;
pub mod keys;
pub mod kind;
pub mod payload;
pub mod state;

pub use job::{AttemptError, ErrorClass, Job, JobId, JobSpec, OnceKey};
pub use keys::KeyLayout;
pub use kind::{JobKind, KindPolicy, Priority, UnknownKind, serve_order};
pub use payload::{JobPayload, PayloadError, PayloadV1, Scope, Trigger};
pub use state::JobState;
