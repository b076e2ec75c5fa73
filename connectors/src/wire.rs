//! Wire helpers more than one JSON API needs: decimals written as JSON numbers and read from
//! numbers or numeric strings (APIs send amounts both ways), exactly where the text allows.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Deserializer, Serializer};
use serde_json::Value;

/// A JSON number or numeric string as a decimal: exact from the text (plain or scientific
/// notation); a number no text form of which parses falls back to its `f64`, rounded to 6 places.
pub fn to_decimal(v: &Value) -> Option<Decimal> {
    let exact = |t: &str| {
        t.parse::<Decimal>()
            .ok()
            .or_else(|| Decimal::from_scientific(t).ok())
    };
    match v {
        Value::Number(n) => exact(&n.to_string()).or_else(|| {
            n.as_f64()
                .and_then(|f| Decimal::from_f64_retain(f).map(|d| d.round_dp(6)))
        }),
        Value::String(s) => exact(s.trim()),
        _ => None,
    }
}

/// Decimals as JSON numbers (whole ones as integers); reads numbers or numeric strings.
pub mod decimal_number {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        let n = d.normalize();
        if n.scale() == 0
            && let Some(i) = n.to_i64()
        {
            return s.serialize_i64(i);
        }
        match n.to_f64() {
            Some(f) => s.serialize_f64(f),
            None => Err(serde::ser::Error::custom(format!(
                "amount {d} is not a JSON number"
            ))),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let v = Value::deserialize(d)?;
        to_decimal(&v).ok_or_else(|| serde::de::Error::custom(format!("{v} is not an amount")))
    }
}

/// Optional decimals as [`decimal_number`]; `null` and absent are `None`.
pub mod opt_decimal_number {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => decimal_number::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        let v = Value::deserialize(d)?;
        if v.is_null() {
            return Ok(None);
        }
        to_decimal(&v)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("{v} is not an amount")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;
    use serde_json::json;

    #[test]
    fn amounts_read_exactly_from_numbers_and_strings() {
        assert_eq!(to_decimal(&json!(23.2)), Some(dec!(23.2)));
        assert_eq!(to_decimal(&json!(" 12.50 ")), Some(dec!(12.50)));
        assert_eq!(to_decimal(&json!("1e-2")), Some(dec!(0.01)));
        assert_eq!(to_decimal(&json!("12,50")), None);
        assert_eq!(to_decimal(&json!(true)), None);
        let s = |d: Decimal| {
            decimal_number::serialize(&d, serde_json::value::Serializer)
                .unwrap()
                .to_string()
        };
        assert_eq!(
            (s(dec!(100.00)), s(dec!(199.99))),
            ("100".into(), "199.99".into())
        );
    }
}
