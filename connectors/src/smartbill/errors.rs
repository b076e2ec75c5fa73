//! SmartBill error bodies and SmartBill-specific classification.
//!
//! | answer | class |
//! |---|---|
//! | 200 with a non-empty `errorText` | `Permanent`, SmartBill's Romanian text (a business refusal) |
//! | 200/400/404 `errorText` containing "nu a fost gasit(a)" on a lookup | not an error: absent |
//! | 400, 404, 405, 410, 415 | `Permanent`, `errorText` |
//! | 401 (bad credentials **or** a CIF the credentials cannot use) | `Auth` |
//! | 403 (the account is blocked 10 minutes for exceeding 30 calls per 10 s) | `Retryable`, `retry_after` 600 s, the gate penalized |
//! | 500, 502, 503, 504 | `Retryable`; on `POST /estimate` everything but 503 is `InDoubt` |
//! | timeout after sending `POST /estimate` | `InDoubt` |
//! | 2xx that is not the JSON expected | reads: `Retryable`; the create: `InDoubt` |

use std::time::Duration;

use serde_json::Value;

use super::SYSTEM;
use crate::error::ConnectorError;

/// How long SmartBill blocks an account that exceeded its rate (S1: 10 minutes).
pub const BLOCK: Duration = Duration::from_secs(600);

/// What 401 means on SmartBill.
pub const AUTH_HINT: &str = "SmartBill refused the credentials: wrong e-mail or API token, or \
    the configured CIF is not a company these credentials can use";

/// Reads SmartBill's error bodies: `{"errorText": …, "message": …}` (either non-empty), and the
/// `HTTP Status 401` HTML page of the PDF endpoints; `None` for anything else.
pub fn error_body(body: &[u8]) -> Option<String> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return error_text(&v);
    }
    let text = String::from_utf8_lossy(body);
    if let Some(start) = text.find("HTTP Status ") {
        let rest = &text[start..];
        let end = rest.find('<').unwrap_or(rest.len()).min(120);
        return Some(rest[..end].trim().to_owned());
    }
    None
}

/// The `errorText` (else `message`, which error answers sometimes use) of a JSON error answer,
/// when non-empty.
pub fn error_text(v: &Value) -> Option<String> {
    first_error(v).or_else(|| {
        v.get("message")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    })
}

/// The `errorText` of a JSON answer, non-empty: the failure signal on any status.
pub fn first_error(v: &Value) -> Option<String> {
    v.get("errorText")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Whether SmartBill's text says the looked-up document does not exist ("Factura nu a fost
/// gasita", "Proforma nu a fost gasita!").
pub fn is_not_found(text: &str) -> bool {
    let t = fold(text);
    t.contains("nu a fost gasit") || t.contains("nu exista")
}

/// Whether the text says the series does not exist.
pub fn is_unknown_series(text: &str) -> bool {
    fold(text).contains("seria nu a fost gasita")
}

/// Lower case without Romanian diacritics, for matching SmartBill's texts.
pub fn fold(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'ă' | 'â' | 'Ă' | 'Â' => 'a',
            'î' | 'Î' => 'i',
            'ș' | 'ş' | 'Ș' | 'Ş' => 's',
            'ț' | 'ţ' | 'Ț' | 'Ţ' => 't',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// A business refusal in a 2xx answer.
pub fn refused_with_200(op: &'static str, text: String) -> ConnectorError {
    ConnectorError::Permanent {
        system: SYSTEM,
        op,
        status: Some(200),
        message: text,
    }
}

/// SmartBill-specific meaning of a failure already classified by `http`: 401 gets its hint,
/// 403 is the 10-minute block (retryable after 600 s).
pub fn reclassify(err: ConnectorError) -> ConnectorError {
    match err {
        ConnectorError::Auth {
            system,
            op,
            status,
            message,
        } => ConnectorError::Auth {
            system,
            op,
            status,
            message: format!("{AUTH_HINT} ({message})"),
        },
        ConnectorError::Permanent {
            system,
            op,
            status: Some(403),
            message,
        } => blocked(system, op, BLOCK, &message),
        other => other,
    }
}

/// The 10-minute block, as a retryable error with its hint.
pub fn blocked(
    system: &'static str,
    op: &'static str,
    wait: Duration,
    message: &str,
) -> ConnectorError {
    ConnectorError::Retryable {
        system,
        op,
        status: Some(403),
        reason: format!(
            "SmartBill blocked the account for exceeding 30 calls per 10 s (it lasts 10 \
             minutes): {message}"
        ),
        retry_after: Some(wait),
    }
}

/// Whether an error is SmartBill's rate-limit block.
pub fn is_block(err: &ConnectorError) -> bool {
    matches!(
        err,
        ConnectorError::Retryable {
            status: Some(403),
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    #[test]
    fn error_bodies_read_error_text_and_the_html_401_page() {
        assert_eq!(
            error_body(br#"{"errorText":"Seria nu a fost gasita! Folositi o serie creata in contul de cloud.","message":"","number":""}"#).as_deref(),
            Some("Seria nu a fost gasita! Folositi o serie creata in contul de cloud.")
        );
        assert_eq!(
            error_body(b"<html><head><title>HTTP Status 401 - Unauthorized</title></head></html>")
                .as_deref(),
            Some("HTTP Status 401 - Unauthorized")
        );
        assert_eq!(error_body(b"<html>Bad Gateway</html>"), None);
        assert_eq!(error_body(br#"{"errorText":"","message":""}"#), None);
        let v: Value = serde_json::from_str(r#"{"errorText":"  ","message":"ok"}"#).unwrap();
        assert_eq!(first_error(&v), None);
        let v: Value = serde_json::from_str(r#"{"errorText":"Factura nu a fost gasita"}"#).unwrap();
        assert!(is_not_found(&first_error(&v).unwrap()));
        assert!(is_not_found("Proforma nu a fost găsită!"));
        assert!(!is_not_found("Documentul nu este ultimul din serie!"));
        assert!(is_unknown_series(
            "Seria nu a fost gasita! Folositi o serie creata in contul de cloud."
        ));
    }

    #[test]
    fn a_403_is_the_ten_minute_block_and_a_401_explains_the_cif() {
        let e = reclassify(ConnectorError::Permanent {
            system: SYSTEM,
            op: "stock",
            status: Some(403),
            message: "Utilizatorul a fost blocat".into(),
        });
        assert_eq!(e.class(), ErrorClass::Retryable);
        assert_eq!(e.retry_after(), Some(BLOCK));
        assert!(is_block(&e));
        let e = reclassify(ConnectorError::Auth {
            system: SYSTEM,
            op: "stock",
            status: Some(401),
            message: "Unauthorized".into(),
        });
        assert!(e.to_string().contains("CIF"), "{e}");
        let p = ConnectorError::permanent(SYSTEM, "x", "400");
        assert_eq!(reclassify(p.clone()), p);
    }
}
