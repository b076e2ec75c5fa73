//! MyDHL error bodies (RFC 7807 style, `application/problem+json`):
//!
//! ```json
//! {"instance": "/expressapi/shipments", "detail": "998: ShipTimeStamp is not well formatted",
//!  "title": "Bad request", "message": "Bad request", "status": "400",
//!  "additionalDetails": ["#/content: required key [incoterm] not found"]}
//! ```
//!
//! [`error_body`] turns one into the message of a [`ConnectorError`](crate::ConnectorError):
//! the `detail` (which starts with DHL's numeric code on business errors), the `title` when it
//! adds something, and every `additionalDetails` entry (422 schema errors list each problem
//! there). The classification itself is [`crate::http::classify`]'s: 400/422 permanent, 401
//! auth, 429 and 5xx retryable (in doubt on create), `Retry-After` honoured.
//!
//! A body that is **not** a problem document (a proxy's HTML page, an empty body) is reported
//! with the [`NOT_PROBLEM`] prefix, so the client can tell a MyDHL "not found" (404 with a
//! problem body) from a wrong URL (404 from something else).

use serde::Deserialize;
use serde_json::Value;

use crate::http::snippet;

/// Prefix of the message made from an error body that is not a MyDHL problem document.
pub const NOT_PROBLEM: &str = "not a MyDHL problem body: ";

/// The problem document MyDHL answers errors with. `status` is a string in the spec's
/// examples and a number in some answers: both are read.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    #[serde(default)]
    pub instance: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub status: Option<Value>,
    #[serde(default)]
    pub additional_details: Vec<Value>,
}

impl Problem {
    /// Parses a problem document; `None` when the body is not one (not JSON, not an object,
    /// or none of `detail`, `title`, `message` present).
    pub fn parse(body: &[u8]) -> Option<Self> {
        let p: Problem = serde_json::from_slice(body).ok()?;
        let has = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.trim().is_empty());
        (has(&p.detail) || has(&p.title) || has(&p.message)).then_some(p)
    }

    /// DHL's numeric code at the start of `detail` (`998` of `998: ShipTimeStamp …`).
    pub fn code(&self) -> Option<&str> {
        let d = self.detail.as_deref()?.trim_start();
        let (code, _) = d.split_once(':')?;
        (!code.is_empty() && code.chars().all(|c| c.is_ascii_digit())).then_some(code)
    }

    /// One line: `detail` (or `message`, or `title`), prefixed by the title when it adds
    /// something, then the additional details joined with `; `.
    pub fn describe(&self) -> String {
        let clean = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let detail = clean(&self.detail);
        let message = clean(&self.message);
        let title = clean(&self.title);
        let head = detail
            .clone()
            .or_else(|| message.clone())
            .or_else(|| title.clone())
            .unwrap_or_default();
        let mut out = match &title {
            Some(t) if !head.contains(t.as_str()) => format!("{t}: {head}"),
            _ => head,
        };
        let extra: Vec<String> = self
            .additional_details
            .iter()
            .map(|v| match v {
                Value::String(s) => s.trim().to_owned(),
                other => other.to_string(),
            })
            .filter(|s| !s.is_empty())
            .collect();
        if !extra.is_empty() {
            out.push_str(" [");
            out.push_str(&extra.join("; "));
            out.push(']');
        }
        out
    }
}

/// The [`crate::http::ErrorBody`] of MyDHL: a problem document's own words, or the body
/// itself marked with [`NOT_PROBLEM`].
pub fn error_body(body: &[u8]) -> Option<String> {
    match Problem::parse(body) {
        Some(p) => Some(p.describe()),
        None if body.iter().all(u8::is_ascii_whitespace) => Some(format!("{NOT_PROBLEM}empty")),
        None => Some(format!("{NOT_PROBLEM}{}", snippet(body))),
    }
}

/// Whether an error message was made from a MyDHL problem document (see [`error_body`]).
pub fn is_problem_message(message: &str) -> bool {
    !message.starts_with(NOT_PROBLEM)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;
    use crate::http::{Answer, classify};
    use bytes::Bytes;
    use reqwest::StatusCode;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn business_errors_keep_the_numeric_detail() {
        let b = r#"{"instance":"/expressapi/shipments","detail":"998: ShipTimeStamp is not well formatted","title":"Bad request","message":"Bad request","status":"400"}"#;
        let p = Problem::parse(b.as_bytes()).unwrap();
        assert_eq!(p.code(), Some("998"));
        let e = classify("dhl", "create_shipment", &answer(400, b), error_body);
        assert_eq!(e.class(), ErrorClass::Permanent);
        let m = e.to_string();
        assert!(
            m.contains("Bad request: 998: ShipTimeStamp is not well formatted"),
            "{m}"
        );
    }

    #[test]
    fn schema_errors_list_every_additional_detail() {
        let b = r##"{"instance":"/expressapi/shipments","detail":"Multiple problems found, see Additional Details","title":"Validation error","message":"Unprocessable Entity","status":422,"additionalDetails":["#/content: required key [incoterm] not found","#/pickup: required key [isRequested] not found"]}"##;
        let e = classify("dhl", "create_shipment", &answer(422, b), error_body);
        assert_eq!(e.class(), ErrorClass::Permanent);
        let m = e.to_string();
        assert!(
            m.contains(
                "required key [incoterm] not found; #/pickup: required key [isRequested] not found"
            ),
            "{m}"
        );
        assert!(m.contains("HTTP 422"), "{m}");
    }

    #[test]
    fn auth_server_and_throttle_statuses() {
        let b = r#"{"instance":"/expressapi/tracking","detail":"Invalid Credentials","title":"Unauthorized","status":"401"}"#;
        assert_eq!(
            classify("dhl", "tracking", &answer(401, b), error_body).class(),
            ErrorClass::Auth
        );
        let b = r#"{"instance":"/expressapi/shipments","detail":"999: Process failure occurred. Process ID associated for that transaction 1234","title":"Internal Server Error","status":"500"}"#;
        let e = classify("dhl", "create_shipment", &answer(500, b), error_body);
        assert!(e.is_retryable());
        assert_eq!(e.clone().for_unsafe_call().class(), ErrorClass::InDoubt);
        let mut a = answer(
            429,
            r#"{"title":"Too Many Requests","detail":"Rate limit exceeded","status":"429"}"#,
        );
        a.headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        let e = classify("dhl", "create_shipment", &a, error_body);
        assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(3)));
        assert_eq!(e.for_unsafe_call().class(), ErrorClass::Retryable);
    }

    #[test]
    fn bodies_that_are_not_problems_are_marked() {
        let m = error_body(b"<html>Bad Gateway</html>").unwrap();
        assert!(
            m.starts_with(NOT_PROBLEM) && m.contains("Bad Gateway"),
            "{m}"
        );
        assert!(!is_problem_message(&m));
        assert!(!is_problem_message(&error_body(b"").unwrap()));
        assert!(!is_problem_message(&error_body(br#"{"foo":1}"#).unwrap()));
        assert!(is_problem_message(
            &error_body(br#"{"title":"Not Found","detail":"No shipment found","status":"404"}"#)
                .unwrap()
        ));
    }
}
