//! Rule-set files as people write them: JSON, or YAML (`.yaml`/`.yml`, or any file that is not
//! JSON). Both become the same JSON value, which is what Postgres stores.
//!
//! **Decimals in YAML must be quoted** (`step: "0.01"`): YAML reads `0.01` as a binary float,
//! and money is never a float, so an unquoted fractional number is refused naming its path.
//! Whole numbers (`n: 150`) may stay bare, and integer mapping keys (`19:` in a VAT-code table)
//! are read as the text keys they are.

use std::path::Path;

use serde_json::{Map, Value};

/// Reads a rule-set (or sample) file as JSON or YAML. Errors name the file and the problem.
pub fn read_structured(path: &Path) -> Result<Value, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let yaml_ext = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    if !yaml_ext {
        match serde_json::from_str(&text) {
            Ok(v) => return Ok(v),
            Err(e) if path.extension().is_some_and(|e| e == "json") => {
                return Err(format!("{} is not valid JSON: {e}", path.display()));
            }
            Err(_) => {}
        }
    }
    parse_yaml(&text).map_err(|e| format!("{} is not valid YAML: {e}", path.display()))
}

/// YAML text → JSON value (see the module docs for numbers).
pub fn parse_yaml(text: &str) -> Result<Value, String> {
    let y: yaml_serde::Value = yaml_serde::from_str(text).map_err(|e| e.to_string())?;
    to_json(&y, "$")
}

fn to_json(y: &yaml_serde::Value, at: &str) -> Result<Value, String> {
    use yaml_serde::Value as Y;
    Ok(match y {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                return Err(format!(
                    "{at}: {n} is a YAML float; write decimals as quoted strings (\"{n}\") so they stay exact"
                ));
            }
        }
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| to_json(v, &format!("{at}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s.clone(),
                    Y::Number(n) if n.as_i64().is_some() || n.as_u64().is_some() => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => {
                        return Err(format!("{at}: mapping key {other:?} is not text"));
                    }
                };
                let value = to_json(v, &format!("{at}.{key}"))?;
                out.insert(key, value);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => return Err(format!("{at}: YAML tags ({}) are not used here", t.tag)),
    })
}

/// A JSON value as YAML (decimals stay the quoted strings they are in JSON).
pub fn to_yaml(v: &Value) -> Result<String, String> {
    yaml_serde::to_string(v).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use canonical::mapping::RuleSet;

    const YAML: &str = r#"
schema: 1
direction: erp_to_marketplace
vat_table: { SE: "25" }
tables:
  vat_codes:
    entries:
      19: { text: S }
      9: { text: R }
rules:
  - id: price_se
    target: price.SE
    source: { field: price_net }
    ops:
      - { op: vat_add, rate: { table: SE } }
      - { op: round, mode: half_up, step: "1", ending: "0.99" }
  - id: title
    target: title.sv-SE
    source: { template: "{name}" }
    ops: [ { op: truncate, n: 150 } ]
"#;

    #[test]
    fn yaml_rule_sets_read_like_json_and_round_trip() {
        let v = parse_yaml(YAML).unwrap();
        let set: RuleSet = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(set.rules.len(), 2);
        assert!(set.tables["vat_codes"].entries.contains_key("19"));
        set.compile().unwrap();
        let back = parse_yaml(&to_yaml(&v).unwrap()).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn unquoted_decimals_and_bad_yaml_are_refused_by_path() {
        let e = parse_yaml(&YAML.replace("ending: \"0.99\"", "ending: 0.99")).unwrap_err();
        assert!(
            e.contains("$.rules[0].ops[1].ending") && e.contains("quoted"),
            "{e}"
        );
        let e = parse_yaml("rules: [ { id: a").unwrap_err();
        assert!(!e.is_empty());
        let e = parse_yaml("a: !custom 1").unwrap_err();
        assert!(e.contains("$.a") && e.contains("tags"), "{e}");
    }
}
