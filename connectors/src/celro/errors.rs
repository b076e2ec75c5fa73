//! Cel.ro error classification.
//!
//! Cel.ro answers almost everything with HTTP 200 and the envelope `{error, tokenStatus,
//! message}` (contract §2.3), so the HTTP status alone says little:
//!
//! | answer | on | class |
//! |---|---|---|
//! | `error == 0 && tokenStatus == 1` | any | success, payload in `message` |
//! | `error ∈ {302, 403, 405}` or `tokenStatus` 0/missing | a call with a token | token expired: log in again and repeat (bounded) |
//! | HTTP 400 | a call with a token | token expired (the wrapper renews on it) |
//! | `error ≠ 0` (any code) or HTTP 400/401/403 | `login/actionLogin` | [`Auth`](ConnectorError::Auth) |
//! | other `error ≠ 0` | any | [`Permanent`](ConnectorError::Permanent) with Cel.ro's own (Romanian) message |
//! | body not an envelope | a read / a non-idempotent write | [`Retryable`](ConnectorError::Retryable) / [`InDoubt`](ConnectorError::InDoubt), naming the body's start |
//! | 429, 5xx, network | any | the shared classification ([`crate::http`]) |

use serde_json::Value;

use crate::error::ConnectorError;
use crate::http::{Safety, snippet};

use super::SYSTEM;
use super::wire::Envelope;

/// Envelope `error` codes that mean "your token is no longer valid" (R1 Dispatcher).
pub const TOKEN_ERRORS: [i64; 3] = [302, 403, 405];

/// What an envelope means.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Success(Value),
    /// The session token was refused; log in again.
    TokenExpired {
        code: Option<i64>,
        message: String,
    },
    /// Cel.ro refused the request (`error ≠ 0`) with its own message.
    Business {
        code: i64,
        message: String,
    },
}

/// Classifies the envelope of a call made with a token.
pub fn classify(env: &Envelope) -> Verdict {
    let code = env.error.unwrap_or(0);
    if code == 0 && env.token_status == Some(1) {
        return Verdict::Success(env.message.clone());
    }
    if TOKEN_ERRORS.contains(&code) || env.token_status.unwrap_or(0) == 0 {
        return Verdict::TokenExpired {
            code: env.error,
            message: env.text(),
        };
    }
    Verdict::Business {
        code,
        message: business_text(code, &env.text()),
    }
}

fn business_text(code: i64, text: &str) -> String {
    if text.trim().is_empty() {
        format!("Cel.ro error {code} without a message")
    } else {
        format!("{text} (Cel.ro error {code})")
    }
}

/// The token a login envelope carries, or the [`Auth`](ConnectorError::Auth) error saying why
/// the credentials were refused.
pub fn login_token(env: &Envelope) -> Result<String, ConnectorError> {
    let code = env.error.unwrap_or(0);
    match (&env.message, code) {
        (Value::String(t), 0) if !t.trim().is_empty() && env.token_status != Some(0) => {
            Ok(t.trim().to_owned())
        }
        (_, 0) => Err(ConnectorError::Auth {
            system: SYSTEM,
            op: "login",
            status: Some(200),
            message: "login answered without a token".into(),
        }),
        _ => Err(ConnectorError::Auth {
            system: SYSTEM,
            op: "login",
            status: Some(200),
            message: business_text(code, &env.text()),
        }),
    }
}

/// A business refusal as an error.
pub fn business(op: &'static str, message: String) -> ConnectorError {
    ConnectorError::Permanent {
        system: SYSTEM,
        op,
        status: Some(200),
        message,
    }
}

/// A body that is not an envelope: retryable for reads, in doubt for non-idempotent writes.
pub fn garbled(
    op: &'static str,
    status: u16,
    body: &[u8],
    why: &str,
    safety: Safety,
) -> ConnectorError {
    let reason = format!(
        "unreadable answer (HTTP {status}, {why}); body starts {:?}",
        snippet(body)
    );
    match safety {
        Safety::Idempotent => ConnectorError::retryable(SYSTEM, op, reason),
        Safety::NonIdempotent => ConnectorError::in_doubt(SYSTEM, op, reason),
    }
}

/// [`crate::http::ErrorBody`] of Cel.ro: the envelope's message of a non-2xx answer.
pub fn error_body(body: &[u8]) -> Option<String> {
    let env = Envelope::parse(body).ok()?;
    let text = env.text();
    (!text.trim().is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    fn env(s: &str) -> Envelope {
        Envelope::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn envelopes_classify_into_success_expiry_and_business_errors() {
        assert_eq!(
            classify(&env(r#"{"error":0,"tokenStatus":1,"message":[1]}"#)),
            Verdict::Success(serde_json::json!([1]))
        );
        for s in [
            r#"{"error":403,"tokenStatus":0,"message":"Token expirat"}"#,
            r#"{"error":302,"tokenStatus":1,"message":"x"}"#,
            r#"{"error":405,"tokenStatus":1,"message":"x"}"#,
            r#"{"error":0,"tokenStatus":0,"message":"x"}"#,
            r#"{"error":0,"message":"x"}"#,
        ] {
            assert!(
                matches!(classify(&env(s)), Verdict::TokenExpired { .. }),
                "{s}"
            );
        }
        match classify(&env(
            r#"{"error":1,"tokenStatus":1,"message":"Comanda nu exista"}"#,
        )) {
            Verdict::Business { code, message } => {
                assert_eq!(code, 1);
                assert_eq!(message, "Comanda nu exista (Cel.ro error 1)");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn login_refusals_are_auth_errors_with_celros_message() {
        assert_eq!(
            login_token(&env(r#"{"error":0,"tokenStatus":1,"message":"abc+/:="}"#)).unwrap(),
            "abc+/:="
        );
        let e = login_token(&env(
            r#"{"error":403,"tokenStatus":0,"message":"Date de autentificare incorecte"}"#,
        ))
        .unwrap_err();
        assert_eq!(e.class(), ErrorClass::Auth);
        assert!(
            e.to_string().contains("Date de autentificare incorecte"),
            "{e}"
        );
        let e = login_token(&env(r#"{"error":0,"tokenStatus":1,"message":""}"#)).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Auth);
    }

    #[test]
    fn garbled_bodies_are_retryable_for_reads_and_in_doubt_for_writes() {
        let r = garbled(
            "list_orders",
            200,
            b"<html>Cloudflare",
            "not JSON",
            Safety::Idempotent,
        );
        assert_eq!(r.class(), ErrorClass::Retryable);
        assert!(r.to_string().contains("Cloudflare"), "{r}");
        let w = garbled(
            "ship_order",
            200,
            b"<html>",
            "not JSON",
            Safety::NonIdempotent,
        );
        assert_eq!(w.class(), ErrorClass::InDoubt);
    }

    #[test]
    fn error_bodies_give_the_envelope_message() {
        assert_eq!(
            error_body(br#"{"error":1,"tokenStatus":0,"message":"Token invalid"}"#).as_deref(),
            Some("Token invalid")
        );
        assert_eq!(error_body(b"<html>"), None);
    }
}
