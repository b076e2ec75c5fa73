//! Reading a connection's stored settings and credentials for one connector: the parts every
//! connector's `from_json` shares. Messages name the field that is wrong, **never a value**.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{ConnectorError, Result};

/// A connector's settings from their stored JSON: `null` means the defaults (which the
/// connector's `validate` may still refuse, naming a required field).
pub fn from_value<T: DeserializeOwned + Default>(system: &'static str, v: Value) -> Result<T> {
    match v {
        Value::Null => Ok(T::default()),
        v => serde_json::from_value(v).map_err(|e| {
            ConnectorError::config(system, format!("invalid connector settings: {e}"))
        }),
    }
}

/// Exactly the credential fields `names`, each a non-blank string, in that order. An unknown
/// field, a missing one, a non-string or a blank one is refused, naming the field.
pub fn credential_fields<const N: usize>(
    system: &'static str,
    map: &Map<String, Value>,
    names: [&'static str; N],
) -> Result<[String; N]> {
    let bad = |m: String| ConnectorError::config(system, m);
    if let Some(k) = map.keys().find(|k| !names.contains(&k.as_str())) {
        return Err(bad(format!(
            "unknown credentials field `{k}`; expected {}",
            names.join(", ")
        )));
    }
    let mut out: [String; N] = std::array::from_fn(|_| String::new());
    for (slot, name) in out.iter_mut().zip(names) {
        *slot = match map.get(name) {
            None | Some(Value::Null) => {
                return Err(bad(format!("credentials field `{name}` is missing")));
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                return Err(bad(format!("credentials field `{name}` is blank")));
            }
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(bad(format!("credentials field `{name}` must be a string"))),
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn fields_are_read_in_order_and_refusals_name_the_field_not_the_value() {
        let ok = credential_fields("x", &map(json!({"b": "2", "a": "1"})), ["a", "b"]).unwrap();
        assert_eq!(ok, ["1".to_owned(), "2".to_owned()]);
        let cases = [
            (json!({"a": "1"}), "`b` is missing"),
            (json!({"a": "1", "b": "  "}), "`b` is blank"),
            (json!({"a": "1", "b": 4242}), "`b` must be a string"),
            (
                json!({"a": "1", "b": "s3cret", "c": "s3cret"}),
                "unknown credentials field `c`",
            ),
        ];
        for (v, want) in cases {
            let e = credential_fields("x", &map(v), ["a", "b"])
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(want) && !e.contains("4242") && !e.contains("s3cret"),
                "{e}"
            );
        }
    }

    #[test]
    fn null_settings_are_the_defaults_and_bad_ones_name_the_problem() {
        #[derive(Debug, Default, serde::Deserialize, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct S {
            #[serde(default)]
            n: u32,
        }
        assert_eq!(from_value::<S>("x", Value::Null).unwrap(), S::default());
        let e = from_value::<S>("x", json!({"m": 1}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("invalid connector settings") && e.contains("`m`"),
            "{e}"
        );
    }
}
