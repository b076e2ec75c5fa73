//! lexoffice error bodies and lexoffice-specific classification.
//!
//! | answer | class |
//! |---|---|
//! | 401 `{"message":"Unauthorized"}` (key wrong, revoked or regenerated) | `Auth` |
//! | 400, 403 (wrong URL/method at the gateway), 404, 406 (validation, German `details`), 409, 415 | `Permanent`, the API's `message` + `field: message` of each detail |
//! | 409 on `GET /v1/invoices/{id}/file` | not an error: the invoice is still a draft → `Ok(None)` |
//! | 429 | `Retryable` (no `Retry-After` is documented: backoff, and the gate is penalized 1 s) |
//! | 500 "Internal server error or rate limit exceeded", 502, 503, 504 | `Retryable` on reads; on the create a 500/502/504 is `InDoubt` (the text may mean a refused call, but nothing proves it) |
//! | timeout after sending the create | `InDoubt` |
//! | 2xx body that is not the JSON expected | `Retryable` on reads, `InDoubt` on the create |
//!
//! Messages come from the body (`message`, each `details[]` as `field: message (violation)`,
//! legacy `IssueList[]` as `source: i18nKey (type)`); nothing of the request is echoed, so no
//! key can leak.

use serde_json::Value;

use super::wire::{LegacyError, RegularError};

/// Reads lexoffice's error bodies (regular, legacy `IssueList`, gateway `{"message"}`) into one
/// line; `None` when the body is none of those.
pub fn error_body(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object()?;
    if obj.contains_key("IssueList") {
        let legacy: LegacyError = serde_json::from_value(v.clone()).ok()?;
        let issues: Vec<String> = legacy
            .issue_list
            .iter()
            .map(|i| {
                let key = i.i18n_key.as_deref().unwrap_or("issue");
                let mut s = match i.source.as_deref().filter(|s| !s.is_empty()) {
                    Some(src) => format!("{src}: {key}"),
                    None => key.to_owned(),
                };
                if let Some(t) = i.kind.as_deref().filter(|t| !t.is_empty()) {
                    s.push_str(&format!(" ({t})"));
                }
                s
            })
            .collect();
        return (!issues.is_empty()).then(|| issues.join("; "));
    }
    let regular: RegularError = serde_json::from_value(v.clone()).ok()?;
    let message = regular
        .message
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .or_else(|| obj.get("description").and_then(Value::as_str))
        .or(regular.error.as_deref())
        .map(str::to_owned);
    let details: Vec<String> = regular
        .details
        .iter()
        .map(|d| {
            let text = d.message.as_deref().unwrap_or("ungültig");
            let mut s = match d.field.as_deref().filter(|f| !f.is_empty()) {
                Some(f) => format!("{f}: {text}"),
                None => text.to_owned(),
            };
            if let Some(v) = d.violation.as_deref().filter(|v| !v.is_empty()) {
                s.push_str(&format!(" ({v})"));
            }
            s
        })
        .collect();
    match (message, details.is_empty()) {
        (Some(m), true) => Some(m),
        (Some(m), false) => Some(format!("{m}: {}", details.join("; "))),
        (None, false) => Some(details.join("; ")),
        (None, true) => None,
    }
}

/// Whether a message is lexoffice's ambiguous 500 text (an internal error **or** the rate
/// limit).
pub fn maybe_rate_limit(message: &str) -> bool {
    message.to_ascii_lowercase().contains("rate limit")
}

/// Whether a voucherlist refusal is the 10 000-result window.
pub fn is_search_window_exceeded(message: &str) -> bool {
    message
        .to_ascii_lowercase()
        .contains("maximum search window")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_bodies_give_message_and_each_detail() {
        let body = br#"{"timestamp":"2025-01-31T10:00:00.000+01:00","status":406,"error":"Not Acceptable","path":"/v1/order-confirmations","traceId":"90d78d0777be","message":"Validation failed for request. Please see details list for specific causes.","details":[{"violation":"NOTNULL","field":"lineItems[0].unitPrice.taxRatePercentage","message":"darf nicht leer sein"}]}"#;
        let m = error_body(body).unwrap();
        assert!(m.starts_with("Validation failed for request."), "{m}");
        assert!(
            m.contains("lineItems[0].unitPrice.taxRatePercentage: darf nicht leer sein (NOTNULL)"),
            "{m}"
        );
        assert_eq!(
            error_body(br#"{"message":"Unauthorized"}"#).as_deref(),
            Some("Unauthorized")
        );
        assert_eq!(
            error_body(br#"{"status":404,"error":"Not Found","path":"/v1/invoices/x"}"#).as_deref(),
            Some("Not Found")
        );
    }

    #[test]
    fn legacy_issue_lists_are_read() {
        let body = br#"{"IssueList":[{"i18nKey":"missing_entity","source":"company.name","type":"validation_failure","additionalData":null,"args":null},{"i18nKey":"invalid_value","source":"","type":null}]}"#;
        assert_eq!(
            error_body(body).as_deref(),
            Some("company.name: missing_entity (validation_failure); invalid_value")
        );
        assert_eq!(error_body(br#"{"IssueList":[]}"#), None);
    }

    #[test]
    fn other_bodies_are_not_messages() {
        assert_eq!(error_body(b"<html>Bad Gateway</html>"), None);
        assert_eq!(error_body(b"null"), None);
        assert_eq!(error_body(b"[]"), None);
        assert_eq!(error_body(b""), None);
        assert!(maybe_rate_limit(
            "Internal server error or rate limit exceeded"
        ));
        assert!(!maybe_rate_limit("Internal server error"));
        assert!(is_search_window_exceeded(
            "Maximum search window size exceeded"
        ));
    }
}
