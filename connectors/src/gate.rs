//! The gate every outgoing call passes: the external account's limits, enforced by whoever
//! builds the client. The workers build it over Redis (fleet-wide GCRA rate plus a distributed
//! semaphore, `workers::ratelimit`); tests and the sandbox use [`Unlimited`] or a local one.
//! A connector never knows where the limits live.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::ConnectorError;

/// Held while a call is in flight; dropping it frees a concurrency slot.
pub struct GatePermit(Option<Box<dyn Send + Sync>>);

impl GatePermit {
    /// A permit that holds nothing (no concurrency limit).
    pub fn free() -> Self {
        Self(None)
    }

    /// A permit that releases `guard` when dropped.
    pub fn holding(guard: impl Send + Sync + 'static) -> Self {
        Self(Some(Box::new(guard)))
    }
}

impl Debug for GatePermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "GatePermit(held)"
        } else {
            "GatePermit(free)"
        })
    }
}

#[async_trait]
pub trait CallGate: Send + Sync + Debug {
    /// Waits until one more call to the account conforms to every limit, counts it, and
    /// returns the permit to hold while it runs. Fails (retryable, with a hint) when the wait
    /// would be too long for a job.
    async fn acquire(&self) -> Result<GatePermit, ConnectorError>;

    /// The API said 429: hold every caller of the account off for `retry_after`.
    async fn penalize(&self, retry_after: Duration);
}

/// No limits.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unlimited;

#[async_trait]
impl CallGate for Unlimited {
    async fn acquire(&self) -> Result<GatePermit, ConnectorError> {
        Ok(GatePermit::free())
    }

    async fn penalize(&self, _retry_after: Duration) {}
}
