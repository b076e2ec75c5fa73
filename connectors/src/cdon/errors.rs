//! CDON error bodies and CDON-specific classification.
//!
//! | answer | class |
//! |---|---|
//! | 401 | `Auth` |
//! | 403 `Order row already has <state> as state`, `<state>` the one the call leads to | `Ok(AlreadyDone)` |
//! | 403 `Order has passed fulfillment due date` | `Permanent`, CDON's text |
//! | other 403, 400, 404, 409 | `Permanent`, CDON's `description` (+ `errors`) |
//! | 429, 5xx | `Retryable` (`Retry-After` honoured); on accept/fulfil/cancel a 500/502/504 is `InDoubt` |
//! | timeout after sending accept/fulfil/cancel | `InDoubt` |
//! | 2xx with a body that is not JSON where JSON is needed | `Retryable`, showing the body |
//! | per item: `failed[].errors` of a bulk call | `ItemState::Failed`, not retryable |
//! | per item: status row `failed` with `error_code` | `ItemState::Failed`; retryable only for `sku_already_exists` |

use serde_json::Value;

use crate::error::{ConnectorError, Result};
use crate::marketplace::Transition;

use super::wire::{FailedItem, FieldError};

/// Reads CDON's error bodies: `{"description": …}` and `{"description", "errors": {field:
/// [messages or nested objects]}}` into one line; `None` when the body is not one of those.
pub fn error_body(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object()?;
    let description = obj
        .get("description")
        .or_else(|| obj.get("message"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let mut details = Vec::new();
    if let Some(errors) = obj.get("errors") {
        flatten(errors, &mut String::new(), &mut details);
    }
    match (description, details.is_empty()) {
        (Some(d), true) => Some(d.to_owned()),
        (Some(d), false) => Some(format!("{d}: {}", details.join("; "))),
        (None, false) => Some(details.join("; ")),
        (None, true) => None,
    }
}

fn flatten(v: &Value, path: &mut String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                flatten(v, path, out);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for item in items {
                flatten(item, path, out);
            }
        }
        Value::String(s) => out.push(if path.is_empty() {
            s.clone()
        } else {
            format!("{path}: {s}")
        }),
        Value::Null => {}
        other => out.push(format!("{path}: {other}")),
    }
}

/// One line for the errors of a failed bulk item: CDON's message and the field it names.
pub fn item_message(errors: &[FieldError]) -> String {
    if errors.is_empty() {
        return "refused by CDON without a reason".to_owned();
    }
    errors
        .iter()
        .map(|e| {
            if e.field.is_empty() {
                e.message.clone()
            } else {
                format!("{} (field: {})", e.message, e.field.join("."))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether a refused create says the SKU exists already (then it is sent as an update).
pub fn is_already_exists(item: &FailedItem) -> bool {
    item.errors.iter().any(|e| {
        let m = e.message.to_ascii_lowercase();
        m.contains("already exist") || m.contains("sku_already_exists")
    })
}

/// Whether a refused update says the article does not exist.
pub fn is_not_found(item: &FailedItem) -> bool {
    item.errors.iter().any(|e| {
        let m = e.message.to_ascii_lowercase();
        m.contains("not found") || m.contains("article_does_not_exist")
    })
}

/// The order actions with state-dependent 403s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderAction {
    Accept,
    Fulfill,
    Cancel,
}

impl OrderAction {
    /// The state the action leads to, as CDON names it in its 403 texts.
    fn target_state(self) -> &'static str {
        match self {
            OrderAction::Accept => "accepted",
            OrderAction::Fulfill => "fulfilled",
            OrderAction::Cancel => "not_fulfilled",
        }
    }

    /// The path segment of the action.
    pub fn path(self) -> &'static str {
        match self {
            OrderAction::Accept => "accept",
            OrderAction::Fulfill => "fulfill",
            OrderAction::Cancel => "cancel",
        }
    }
}

/// The state in `Order row already has <state> as state`, normalized (`not fulfilled` →
/// `not_fulfilled`), or `None` when the text is something else.
pub fn already_state(message: &str) -> Option<String> {
    let m = message.to_ascii_lowercase();
    let rest = &m[m.find("already has ")? + "already has ".len()..];
    let state = &rest[..rest.find(" as state")?];
    Some(state.trim().replace([' ', '-'], "_"))
}

/// Whether the text is CDON's deadline refusal.
pub fn is_past_deadline(message: &str) -> bool {
    message
        .to_ascii_lowercase()
        .contains("passed fulfillment due date")
}

/// Maps the failure of an order action: CDON's 403 "already has `<target>` as state" is
/// success that already happened; every other 403 (deadline passed, wrong state) stays
/// `Permanent` with CDON's own text.
pub fn order_action_outcome(action: OrderAction, err: ConnectorError) -> Result<Transition> {
    if let ConnectorError::Permanent {
        status: Some(403),
        message,
        ..
    } = &err
        && already_state(message).as_deref() == Some(action.target_state())
    {
        return Ok(Transition::AlreadyDone);
    }
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    fn forbidden(op: &'static str, text: &str) -> ConnectorError {
        ConnectorError::Permanent {
            system: "cdon",
            op,
            status: Some(403),
            message: text.to_owned(),
        }
    }

    #[test]
    fn error_bodies_read_description_and_nested_errors() {
        assert_eq!(
            error_body(br#"{"description":"Order has passed fulfillment due date"}"#).as_deref(),
            Some("Order has passed fulfillment due date")
        );
        let e = error_body(
            br#"{"description":"Invalid payload","errors":{"tracking_information":{"0":{"carrier_name":["Not a valid choice."]}}}}"#,
        )
        .unwrap();
        assert_eq!(
            e,
            "Invalid payload: tracking_information.0.carrier_name: Not a valid choice."
        );
        assert_eq!(error_body(b"<html>Bad Gateway</html>"), None);
        assert_eq!(error_body(b"[]"), None);
        assert_eq!(
            error_body(br#"{"errors":{"sku":["Required"]}}"#).unwrap(),
            "sku: Required"
        );
    }

    #[test]
    fn retried_transitions_are_already_done_and_others_stay_permanent() {
        use OrderAction::*;
        let done = |a, t: &str| order_action_outcome(a, forbidden("x", t));
        assert_eq!(
            done(Accept, "Order row already has accepted as state").unwrap(),
            Transition::AlreadyDone
        );
        assert_eq!(
            done(Fulfill, "Order row already has fulfilled as state").unwrap(),
            Transition::AlreadyDone
        );
        assert_eq!(
            done(Cancel, "Order row already has not_fulfilled as state").unwrap(),
            Transition::AlreadyDone
        );
        // "not_fulfilled" must not read as "fulfilled".
        let e = done(Fulfill, "Order row already has not_fulfilled as state").unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent);
        let e = done(Cancel, "Order row already has fulfilled as state").unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent);
        let e = done(Accept, "Order row already has fulfilled as state").unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent);
        let e = done(Accept, "Order has passed fulfillment due date").unwrap_err();
        assert!(is_past_deadline(&e.to_string()));
        assert!(
            e.to_string()
                .contains("Order has passed fulfillment due date")
        );
        // Not a 403: left alone.
        let timeout = ConnectorError::in_doubt("cdon", "accept_order", "timed out");
        assert_eq!(
            order_action_outcome(Accept, timeout).unwrap_err().class(),
            ErrorClass::InDoubt
        );
        assert_eq!(
            already_state("Order row already has NOT FULFILLED as state").as_deref(),
            Some("not_fulfilled")
        );
    }

    #[test]
    fn item_messages_name_the_field() {
        let item = FailedItem {
            sku: "A".into(),
            action: None,
            errors: vec![
                FieldError {
                    message: "Article not found".into(),
                    field: vec!["sku".into()],
                },
                FieldError {
                    message: "SKU already exists".into(),
                    field: vec![],
                },
            ],
        };
        assert_eq!(
            item_message(&item.errors),
            "Article not found (field: sku); SKU already exists"
        );
        assert!(is_already_exists(&item) && is_not_found(&item));
    }
}
