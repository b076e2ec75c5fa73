//! The one error type of every connector, classified so the queue knows what to do with it.
//!
//! | class | when | what the worker does |
//! |---|---|---|
//! | [`Retryable`](ConnectorError::Retryable) | 429, 5xx on a safe call, network failure before the request left, a garbled answer to a read | retry, after `retry_after` when the API hinted one |
//! | [`Permanent`](ConnectorError::Permanent) | other 4xx, a business error (Cel.ro `error ≠ 0`, SmartBill `errorText`), a payload the API refuses | dead set at once, with the API's own message |
//! | [`Auth`](ConnectorError::Auth) | credentials refused (401, Cel.ro login refused) | dead set; the operator fixes the credentials and replays |
//! | [`InDoubt`](ConnectorError::InDoubt) | a non-idempotent call (create shipment, accept, fulfil, create document) whose outcome is unknown: timeout after sending, 500/502/504, a garbled 2xx | **never retried blindly**: the flow looks the result up (DHL by `CU` reference, the order's state) before anything else |
//! | [`Unsupported`](ConnectorError::Unsupported) | the API has no such operation (CDON invoice upload) | the flow is not scheduled; calling it is a bug, reported permanently |
//! | [`Config`](ConnectorError::Config) | invalid connector settings or credentials shape | refused before anything is built |
//!
//! No variant ever carries a credential: messages come from API bodies and our own text, and
//! URLs are logged without query strings.

use std::time::Duration;

/// The outcome class of a failed call. See the module docs for the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    Retryable,
    Permanent,
    Auth,
    InDoubt,
    Unsupported,
    Config,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    #[error("{system} {op}: temporary failure{}: {reason}{}", status_suffix(*status), after_suffix(*retry_after))]
    Retryable {
        system: &'static str,
        op: &'static str,
        status: Option<u16>,
        reason: String,
        /// The API's hint (`Retry-After`), when it gave one.
        retry_after: Option<Duration>,
    },
    #[error("{system} {op}: refused{}: {message}", status_suffix(*status))]
    Permanent {
        system: &'static str,
        op: &'static str,
        status: Option<u16>,
        /// The API's own message, verbatim where it gave one.
        message: String,
    },
    #[error("{system} {op}: credentials refused{}: {message}", status_suffix(*status))]
    Auth {
        system: &'static str,
        op: &'static str,
        status: Option<u16>,
        message: String,
    },
    #[error(
        "{system} {op}: outcome unknown (the call may have taken effect; look it up before retrying): {reason}"
    )]
    InDoubt {
        system: &'static str,
        op: &'static str,
        reason: String,
    },
    #[error("{system} does not support {op}: {why}")]
    Unsupported {
        system: &'static str,
        op: &'static str,
        why: &'static str,
    },
    #[error("{system} configuration: {message}")]
    Config {
        system: &'static str,
        message: String,
    },
}

fn status_suffix(s: Option<u16>) -> String {
    s.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

fn after_suffix(d: Option<Duration>) -> String {
    d.map(|d| format!("; retry after {} ms", d.as_millis()))
        .unwrap_or_default()
}

impl ConnectorError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ConnectorError::Retryable { .. } => ErrorClass::Retryable,
            ConnectorError::Permanent { .. } => ErrorClass::Permanent,
            ConnectorError::Auth { .. } => ErrorClass::Auth,
            ConnectorError::InDoubt { .. } => ErrorClass::InDoubt,
            ConnectorError::Unsupported { .. } => ErrorClass::Unsupported,
            ConnectorError::Config { .. } => ErrorClass::Config,
        }
    }

    /// The API's `Retry-After` hint, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ConnectorError::Retryable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status the API answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ConnectorError::Retryable { status, .. }
            | ConnectorError::Permanent { status, .. }
            | ConnectorError::Auth { status, .. } => *status,
            _ => None,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }

    pub fn config(system: &'static str, message: impl Into<String>) -> Self {
        ConnectorError::Config {
            system,
            message: message.into(),
        }
    }

    pub fn permanent(system: &'static str, op: &'static str, message: impl Into<String>) -> Self {
        ConnectorError::Permanent {
            system,
            op,
            status: None,
            message: message.into(),
        }
    }

    pub fn retryable(system: &'static str, op: &'static str, reason: impl Into<String>) -> Self {
        ConnectorError::Retryable {
            system,
            op,
            status: None,
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub fn in_doubt(system: &'static str, op: &'static str, reason: impl Into<String>) -> Self {
        ConnectorError::InDoubt {
            system,
            op,
            reason: reason.into(),
        }
    }

    /// The same failure seen from a non-idempotent call: anything that may have reached the
    /// API becomes [`InDoubt`](ConnectorError::InDoubt). Refusals the API made before acting
    /// (429, 503, auth, validation) stay what they are.
    pub fn for_unsafe_call(self) -> Self {
        match self {
            ConnectorError::Retryable {
                system,
                op,
                status,
                reason,
                ..
            } if !matches!(status, Some(429) | Some(503)) && !reason.starts_with(NOT_SENT) => {
                ConnectorError::InDoubt { system, op, reason }
            }
            other => other,
        }
    }
}

/// Prefix of a retryable reason that proves the request never left (connect failure).
pub const NOT_SENT: &str = "not sent: ";

pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_calls_turn_ambiguous_failures_into_in_doubt() {
        let timeout = ConnectorError::retryable("dhl", "create_shipment", "timed out");
        assert_eq!(timeout.for_unsafe_call().class(), ErrorClass::InDoubt);
        let not_sent =
            ConnectorError::retryable("dhl", "create_shipment", format!("{NOT_SENT}refused"));
        assert_eq!(not_sent.for_unsafe_call().class(), ErrorClass::Retryable);
        let throttled = ConnectorError::Retryable {
            system: "dhl",
            op: "create_shipment",
            status: Some(429),
            reason: "Too Many Requests".into(),
            retry_after: Some(Duration::from_secs(2)),
        };
        let shown = throttled.to_string();
        assert!(
            shown.contains("HTTP 429") && shown.contains("2000 ms"),
            "{shown}"
        );
        assert_eq!(throttled.for_unsafe_call().class(), ErrorClass::Retryable);
    }
}
