//! Jobs as they are enqueued ([`JobSpec`]) and as a worker receives them ([`Job`]), and the record
//! kept for every failed attempt ([`AttemptError`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{JobKind, JobPayload};

/// A job's id: a UUID v7, so ids sort by creation time and stay unique across a Redis flush
/// (they are also the key of the job's rows in Postgres).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub Uuid);

impl JobId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim()).map(Self)
    }
}

/// "Enqueue this only once per window": a member of a set that expires as a whole. The heartbeat
/// uses `scope = "hb:<bucket>"` and `member = "<tenant>:<connection>:<kind>"`, so any number of
/// cron fires or scheduler replicas in the same bucket enqueue each job once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnceKey {
    pub scope: String,
    pub member: String,
    pub ttl_ms: u64,
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    pub id: JobId,
    pub kind: JobKind,
    pub payload: JobPayload,
    /// Unix milliseconds before which the job must not run; `None` runs it now.
    pub run_at_ms: Option<u64>,
    /// While a job with this key is waiting to start, enqueueing another is a no-op that returns
    /// the waiting job's id. Released when a worker starts the job, so a wake-up that arrives while
    /// a pull is running still gets its own pull.
    pub dedupe_key: Option<String>,
    pub once: Option<OnceKey>,
    /// Overrides the kind's `max_attempts` (tests, manual runs).
    pub max_attempts: Option<u32>,
}

impl JobSpec {
    /// A job of `kind` with the kind's dedupe key ([`JobKind::dedupe_key`]).
    pub fn new(kind: JobKind, payload: JobPayload) -> Self {
        let dedupe_key = Some(kind.dedupe_key(&payload));
        Self {
            id: JobId::new(),
            kind,
            payload,
            run_at_ms: None,
            dedupe_key,
            once: None,
            max_attempts: None,
        }
    }

    pub fn run_at_ms(mut self, at: u64) -> Self {
        self.run_at_ms = Some(at);
        self
    }

    pub fn without_dedupe(mut self) -> Self {
        self.dedupe_key = None;
        self
    }

    pub fn once(mut self, once: OnceKey) -> Self {
        self.once = Some(once);
        self
    }

    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n.max(1));
        self
    }

    pub fn effective_max_attempts(&self) -> u32 {
        self.max_attempts
            .unwrap_or_else(|| self.kind.policy().max_attempts)
    }
}

/// A job as a worker receives it for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: JobId,
    pub kind: JobKind,
    pub payload: JobPayload,
    /// 1-based number of this attempt, counting attempts whose worker crashed.
    pub attempt: u32,
    pub max_attempts: u32,
    pub enqueued_at_ms: u64,
    /// The generation of this attempt's lease: grows with every lease of the job (a snoozed or
    /// released job keeps its attempt number but gets a new lease), so an ack or renewal of an
    /// older lease is recognised and refused.
    pub lease: u64,
}

/// How an attempt failed. Stable strings: stored in Redis and Postgres.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Transient: retried after a backoff (or the hint the handler gave).
    Retryable,
    /// Will never succeed as is: dead-lettered at once.
    Permanent,
    /// The attempt ran past its kind's timeout.
    Timeout,
    /// The handler panicked.
    Panic,
    /// The worker running it stopped renewing its lease (crashed, killed, or stalled).
    Lost,
    /// The payload could not be read (unknown version, bad id).
    BadPayload,
}

impl ErrorClass {
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Retryable => "retryable",
            ErrorClass::Permanent => "permanent",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Panic => "panic",
            ErrorClass::Lost => "lost",
            ErrorClass::BadPayload => "bad_payload",
        }
    }

    /// Whether a failure of this class may be retried if attempts remain.
    pub const fn retries(self) -> bool {
        !matches!(self, ErrorClass::Permanent | ErrorClass::BadPayload)
    }
}

/// The record of one failed attempt: kept with the job in Redis, copied to Postgres with the run
/// and with the dead job, so a dead job shows why each of its attempts failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    pub attempt: u32,
    /// Unix milliseconds when the attempt ended (or was found lost).
    pub at_ms: u64,
    pub worker: String,
    pub class: ErrorClass,
    /// The error and its sources, outermost first.
    pub chain: Vec<String>,
    /// The delay the handler asked for before the next attempt, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl AttemptError {
    /// Builds the chain from an error and all its sources. NUL characters (which an API's
    /// binary error body can carry, and Postgres text refuses) are replaced, so a record can always
    /// be stored.
    pub fn chain_of(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
        let mut chain = vec![storable(err.to_string())];
        let mut cur = err.source();
        while let Some(e) = cur {
            chain.push(storable(e.to_string()));
            cur = e.source();
        }
        chain
    }
}

/// Replaces NUL characters, which Postgres text and jsonb refuse, with U+FFFD.
pub fn storable(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Scope, Trigger};
    use canonical::{ConnectionId, TenantId};

    #[test]
    fn default_dedupe_key_names_kind_connection_and_scope() {
        let t = TenantId::new();
        let c = ConnectionId::new();
        let spec = JobSpec::new(
            JobKind::StockPush,
            JobPayload::v1(t, c, Scope::All, Trigger::Webhook),
        );
        assert_eq!(
            spec.dedupe_key.as_deref(),
            Some(format!("stock_push:{t}:{c}:all").as_str())
        );
        assert_eq!(spec.effective_max_attempts(), 10);
        assert_eq!(spec.clone().max_attempts(0).effective_max_attempts(), 1);
    }

    #[test]
    fn error_chain_lists_every_source() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(AttemptError::chain_of(&e), vec!["outer", "inner"]);
        let nul = std::io::Error::other("bad\0body");
        assert_eq!(AttemptError::chain_of(&nul), vec!["bad\u{FFFD}body"]);
        let rec = AttemptError {
            attempt: 1,
            at_ms: 5,
            worker: "w".into(),
            class: ErrorClass::Lost,
            chain: vec!["x".into()],
            retry_after_ms: None,
        };
        let json = serde_json::to_string(&rec).unwrap();
        assert!(json.contains("\"class\":\"lost\""), "{json}");
        assert_eq!(serde_json::from_str::<AttemptError>(&json).unwrap(), rec);
    }
}
