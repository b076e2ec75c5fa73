//! How Charisma's answers become [`ConnectorError`]s.
//!
//! Every SOAP call goes through the shared HTTP layer as **non-idempotent**, so the layer never
//! repeats a call on its own after an ambiguous failure: a SOAP 1.1 fault comes as HTTP 500,
//! and only its body tells a refusal (nothing happened) from a server failure. The layer turns
//! the fault into a one-line message ([`super::soap::error_body`]); [`reclassify`] reads it:
//!
//! | answer | read (`GetItem`, `getPrice`, `getCity`, `getPartner`, lookup) | create (`createPartner`, `createOrder`) |
//! |---|---|---|
//! | fault `Client`/`Sender` naming `ApplicationId` | `Auth` | `Auth` |
//! | other `Client`/`Sender` fault (unknown ItemId/VATId/CityId, duplicate partner, …) | `Permanent`, the faultstring and detail | `Permanent` (the service refused before acting) |
//! | `Server`/`Receiver` fault, HTML 500, 502, 504, timeout after sending | `Retryable`, retried inline | `InDoubt` |
//! | 429, 503, connect failure (not sent) | `Retryable` (the layer retries inline, `Retry-After` honoured) | same |
//! | 401 | `Auth` | `Auth` |
//! | other 4xx (e.g. 404: wrong endpoint, 415: wrong SOAP version) | `Permanent` | `Permanent` |
//! | 2xx that is not a SOAP envelope, or lacks the expected record | `Retryable`, body start shown | `InDoubt`, body start shown |

use crate::error::{ConnectorError, NOT_SENT};
use crate::http::snippet;

use super::SYSTEM;
use super::soap::{Fault, parse_fault_message};

/// Whether a call may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Read,
    Create,
}

/// Reclassifies the shared layer's error for a SOAP call. The flag says whether the failure is
/// one the client retries inline (a server-side failure of a read).
pub fn reclassify(e: ConnectorError, kind: CallKind) -> (ConnectorError, bool) {
    let (op, status, message) = match &e {
        ConnectorError::Retryable {
            op, status, reason, ..
        } => (*op, *status, reason.clone()),
        ConnectorError::InDoubt { op, reason, .. } => (*op, None, reason.clone()),
        ConnectorError::Permanent {
            op,
            status,
            message,
            ..
        }
        | ConnectorError::Auth {
            op,
            status,
            message,
            ..
        } => (*op, *status, message.clone()),
        _ => return (e, false),
    };
    if let Some((code, text)) = parse_fault_message(&message) {
        return by_fault(op, kind, status, code, text, &message);
    }
    match (e, kind) {
        (ConnectorError::InDoubt { op, reason, .. }, CallKind::Read) => (
            ConnectorError::Retryable {
                system: SYSTEM,
                op,
                status: None,
                reason,
                retry_after: None,
            },
            true,
        ),
        (other, _) => (other, false),
    }
}

/// The class of a fault read from a 2xx envelope (some services answer faults with 200).
pub fn fault_error(op: &'static str, kind: CallKind, status: u16, f: &Fault) -> ConnectorError {
    let m = f.message();
    let text = parse_fault_message(&m).map_or(m.as_str(), |(_, t)| t);
    by_fault(op, kind, Some(status), &f.code, text, &m).0
}

fn by_fault(
    op: &'static str,
    kind: CallKind,
    status: Option<u16>,
    code: &str,
    text: &str,
    whole: &str,
) -> (ConnectorError, bool) {
    let client = code.starts_with("Client") || code.starts_with("Sender");
    if client && text.to_ascii_lowercase().contains("applicationid") {
        return (
            ConnectorError::Auth {
                system: SYSTEM,
                op,
                status,
                message: text.to_owned(),
            },
            false,
        );
    }
    if client {
        return (
            ConnectorError::Permanent {
                system: SYSTEM,
                op,
                status,
                message: text.to_owned(),
            },
            false,
        );
    }
    match kind {
        CallKind::Read => (
            ConnectorError::Retryable {
                system: SYSTEM,
                op,
                status,
                reason: whole.to_owned(),
                retry_after: None,
            },
            true,
        ),
        CallKind::Create => (
            ConnectorError::in_doubt(
                SYSTEM,
                op,
                format!("the service failed while handling the request: {whole}"),
            ),
            false,
        ),
    }
}

/// A 2xx whose body is not what was expected: retryable for a read, in doubt for a create
/// (it may have been carried out), naming the problem and showing the body's start.
pub fn garbled(
    op: &'static str,
    kind: CallKind,
    status: u16,
    why: &str,
    body: &[u8],
) -> ConnectorError {
    let reason = format!(
        "unreadable answer (HTTP {status}): {why}; body starts {:?}",
        snippet(body)
    );
    match kind {
        CallKind::Read => ConnectorError::retryable(SYSTEM, op, reason),
        CallKind::Create => ConnectorError::in_doubt(SYSTEM, op, reason),
    }
}

/// The existing `OrderId` a refused `createOrder` names, when the refusal is a duplicate
/// `ExternalId` (the fake's `Duplicate ExternalId …` fault with `OrderId` in its detail).
pub fn duplicate_order_id(e: &ConnectorError) -> Option<String> {
    let ConnectorError::Permanent { message, .. } = e else {
        return None;
    };
    let lower = message.to_ascii_lowercase();
    if !(lower.contains("externalid") && (lower.contains("duplicate") || lower.contains("exist"))) {
        return None;
    }
    let at = message.find("OrderId=")? + "OrderId=".len();
    let id: String = message[at..]
        .chars()
        .take_while(|c| !matches!(c, ';' | ']') && !c.is_whitespace())
        .collect();
    (!id.is_empty()).then_some(id)
}

/// Whether a refused `createPartner` says the `FiscalRegistration` exists already.
pub fn is_duplicate_partner(e: &ConnectorError) -> bool {
    let ConnectorError::Permanent { message, .. } = e else {
        return false;
    };
    let lower = message.to_ascii_lowercase();
    lower.contains("fiscalregistration") && (lower.contains("exist") || lower.contains("duplicate"))
}

/// Whether the error proves the request never reached the service.
pub fn not_sent(e: &ConnectorError) -> bool {
    matches!(e, ConnectorError::Retryable { reason, .. } if reason.starts_with(NOT_SENT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    fn retryable500(reason: &str) -> ConnectorError {
        ConnectorError::Retryable {
            system: SYSTEM,
            op: "GetItem",
            status: Some(500),
            reason: reason.into(),
            retry_after: None,
        }
    }

    #[test]
    fn faults_are_told_apart_by_code() {
        let (e, retry) = reclassify(
            ConnectorError::in_doubt(
                SYSTEM,
                "createOrder",
                "SOAP fault Client: Unknown VATId 999",
            ),
            CallKind::Create,
        );
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(!retry);
        assert!(e.to_string().contains("Unknown VATId 999"), "{e}");
        let (e, _) = reclassify(
            retryable500("SOAP fault Client: Invalid ApplicationId"),
            CallKind::Read,
        );
        assert_eq!(e.class(), ErrorClass::Auth);
        assert_eq!(e.status(), Some(500));
        let (e, retry) = reclassify(retryable500("SOAP fault Server: deadlock"), CallKind::Read);
        assert_eq!(e.class(), ErrorClass::Retryable);
        assert!(retry);
        let (e, retry) = reclassify(
            ConnectorError::in_doubt(SYSTEM, "createOrder", "SOAP fault Receiver: deadlock"),
            CallKind::Create,
        );
        assert_eq!(e.class(), ErrorClass::InDoubt);
        assert!(!retry);
    }

    #[test]
    fn ambiguous_failures_of_reads_are_retryable_and_of_creates_in_doubt() {
        let timeout = || ConnectorError::in_doubt(SYSTEM, "getPartner", "timed out");
        let (e, retry) = reclassify(timeout(), CallKind::Read);
        assert!(e.is_retryable() && retry);
        let (e, retry) = reclassify(timeout(), CallKind::Create);
        assert_eq!(e.class(), ErrorClass::InDoubt);
        assert!(!retry);
        let not_found = ConnectorError::Permanent {
            system: SYSTEM,
            op: "GetItem",
            status: Some(404),
            message: "Not Found".into(),
        };
        assert_eq!(
            reclassify(not_found, CallKind::Read).0.class(),
            ErrorClass::Permanent
        );
        let g = garbled(
            "createOrder",
            CallKind::Create,
            200,
            "no OrderId",
            b"<html>oops</html>",
        );
        assert_eq!(g.class(), ErrorClass::InDoubt);
        assert!(g.to_string().contains("<html>oops"), "{g}");
    }

    #[test]
    fn duplicates_are_recognised() {
        let dup = ConnectorError::permanent(
            SYSTEM,
            "createOrder",
            "Duplicate ExternalId MGZ-1 [DuplicateOrder.ExternalId=MGZ-1; DuplicateOrder.OrderId=500001]",
        );
        assert_eq!(duplicate_order_id(&dup).as_deref(), Some("500001"));
        let other =
            ConnectorError::permanent(SYSTEM, "createOrder", "Unknown ItemId 5 [OrderId=1]");
        assert_eq!(duplicate_order_id(&other), None);
        let p = ConnectorError::permanent(
            SYSTEM,
            "createPartner",
            "Partner with FiscalRegistration RO1 already exists",
        );
        assert!(is_duplicate_partner(&p));
        assert!(!is_duplicate_partner(&other));
    }
}
