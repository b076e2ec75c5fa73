//! The connectors' [`CallGate`] over Redis: every call of an external account passes the
//! account's contract limits ([`limits_for_with`]) fleet-wide — a slot of each concurrency
//! limit (Cel.ro's 10 connections) held for the call's duration, then one admission of each
//! rate limit. A 429's `Retry-After` pauses the account for every process.

use std::time::Duration;

use async_trait::async_trait;
use connectors::ConnectorError;
use connectors::gate::{CallGate, GatePermit};

use crate::queue::Queue;
use crate::ratelimit::{
    DistributedSemaphore, GcraLimiter, Limit, LimitError, LimitsConfig, limits_for_with,
};

/// The gate of one external account of one system.
#[derive(Debug, Clone)]
pub struct RedisGate {
    system: &'static str,
    account: String,
    limits: Vec<(&'static str, Limit)>,
    limiter: GcraLimiter,
    semaphore: DistributedSemaphore,
}

impl RedisGate {
    /// `system` is its stable name (`"celro"`); `account` identifies the external account
    /// (a connection id or a hash of the credentials' identity, never a secret or an e-mail).
    pub fn new(queue: &Queue, system: &'static str, account: &str, cfg: &LimitsConfig) -> Self {
        Self::with_limits(queue, system, account, limits_for_with(system, cfg))
    }

    /// A gate with explicit limits (tests, benchmarks).
    pub fn with_limits(
        queue: &Queue,
        system: &'static str,
        account: &str,
        limits: Vec<(&'static str, Limit)>,
    ) -> Self {
        Self {
            system,
            account: account.to_owned(),
            limits,
            limiter: GcraLimiter::new(queue, system),
            semaphore: DistributedSemaphore::new(queue, system),
        }
    }

    /// How long a call may wait for its slot before the job is handed back to the queue.
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.limiter = self.limiter.with_max_wait(max_wait);
        self.semaphore = self.semaphore.with_max_wait(max_wait);
        self
    }

    fn refused(&self, e: LimitError) -> ConnectorError {
        match e {
            LimitError::WaitExceeded { retry_after, .. } => ConnectorError::Retryable {
                system: self.system,
                op: "rate limit",
                status: None,
                reason: e.to_string(),
                retry_after: Some(retry_after),
            },
            other => ConnectorError::retryable(self.system, "rate limit", other.to_string()),
        }
    }
}

#[async_trait]
impl CallGate for RedisGate {
    async fn acquire(&self) -> Result<GatePermit, ConnectorError> {
        let mut held = Vec::new();
        for (api, limit) in &self.limits {
            if let Limit::Concurrency(n) = limit {
                let permit = self.semaphore.acquire(&self.account, api, *n).await;
                held.push(permit.map_err(|e| self.refused(e))?);
            }
        }
        for (api, limit) in &self.limits {
            if let Limit::Rate(rate) = limit {
                let admitted = self.limiter.acquire(&self.account, api, *rate).await;
                admitted.map_err(|e| self.refused(e))?;
            }
        }
        Ok(if held.is_empty() {
            GatePermit::free()
        } else {
            GatePermit::holding(held)
        })
    }

    async fn penalize(&self, retry_after: Duration) {
        for (api, limit) in &self.limits {
            if let Limit::Rate(rate) = limit {
                let paused = self
                    .limiter
                    .penalize(&self.account, api, *rate, retry_after);
                if let Err(e) = paused.await {
                    tracing::warn!(system = self.system, api, error = %e, "could not pause the account");
                }
            }
        }
    }
}
