//! [`Record`]: a flat, typed field map, the input and the output of a rule set.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::commerce::CatalogItem;

/// A field name. Shared (`Arc`) so that compiled rules and records built from the same names
/// do not allocate a string per record.
pub type FieldName = Arc<str>;

/// One typed value of a record field.
///
/// In JSON a value is tagged with its type: `{"decimal": "12.50"}`, `{"text": "buc"}`,
/// `{"bool": true}`, `{"integer": 3}`, `{"date": "2025-03-01"}`, or `"null"`.
///
/// Text is an `Arc<str>`: copying a value into provenance, or out of a lookup table or a
/// literal, is then a reference-count increment, not an allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    Decimal(Decimal),
    Text(#[serde(with = "arc_str")] Arc<str>),
    Bool(bool),
    Integer(i64),
    Date(NaiveDate),
    Null,
}

/// The type of a [`Value`] (`Null` has none: it fits every type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    Decimal,
    Text,
    Bool,
    Integer,
    Date,
}

impl ValueType {
    pub const fn as_str(self) -> &'static str {
        match self {
            ValueType::Decimal => "decimal",
            ValueType::Text => "text",
            ValueType::Bool => "bool",
            ValueType::Integer => "integer",
            ValueType::Date => "date",
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Value {
    /// The value's type; `None` for `Null`.
    pub fn value_type(&self) -> Option<ValueType> {
        Some(match self {
            Value::Decimal(_) => ValueType::Decimal,
            Value::Text(_) => ValueType::Text,
            Value::Bool(_) => ValueType::Bool,
            Value::Integer(_) => ValueType::Integer,
            Value::Date(_) => ValueType::Date,
            Value::Null => return None,
        })
    }

    /// The type name, `null` included, for error messages.
    pub fn type_name(&self) -> &'static str {
        self.value_type().map_or("null", ValueType::as_str)
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A number as a decimal (integers widen); `None` for other types.
    pub fn as_decimal(&self) -> Option<Decimal> {
        match self {
            Value::Decimal(d) => Some(*d),
            Value::Integer(i) => Some(Decimal::from(*i)),
            _ => None,
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

mod arc_str {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &Arc<str>, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Arc<str>, D::Error> {
        String::deserialize(de).map(Arc::from)
    }
}

impl fmt::Display for Value {
    /// As a template renders it: text verbatim, numbers and dates in their canonical form,
    /// `Null` as nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Decimal(d) => write!(f, "{d}"),
            Value::Text(s) => f.write_str(s),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Integer(i) => write!(f, "{i}"),
            Value::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            Value::Null => Ok(()),
        }
    }
}

impl From<Decimal> for Value {
    fn from(d: Decimal) -> Self {
        Value::Decimal(d)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(Arc::from(s))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(Arc::from(s))
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Integer(i)
    }
}

impl From<NaiveDate> for Value {
    fn from(d: NaiveDate) -> Self {
        Value::Date(d)
    }
}

/// A flat map of field name to [`Value`], in insertion order.
///
/// Source records are what an ERP item becomes (see `From<&CatalogItem>`, plus any
/// ERP-specific extra fields); target records are what a rule set produces, with names such as
/// `price.SE`, `currency.SE`, `title.sv-SE` or `stock`, from which the flows build listings.
///
/// Records are small (tens of fields), so lookup is a linear scan, which beats hashing here;
/// names shared with the compiled rule set compare by pointer first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    fields: Vec<(FieldName, Value)>,
}

impl Record {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Self {
            fields: Vec::with_capacity(n),
        }
    }

    /// Sets `name` to `value`, replacing an earlier value of the same name.
    pub fn insert(&mut self, name: impl Into<FieldName>, value: impl Into<Value>) {
        let name = name.into();
        let value = value.into();
        match self.position(&name) {
            Some(i) => self.fields[i].1 = value,
            None => self.fields.push((name, value)),
        }
    }

    /// Builder form of [`Record::insert`].
    pub fn with(mut self, name: impl Into<FieldName>, value: impl Into<Value>) -> Self {
        self.insert(name, value);
        self
    }

    /// Appends without checking for an existing field of the same name (the engine's fast
    /// path: its targets are unique by validation).
    pub(crate) fn push_unique(&mut self, name: FieldName, value: Value) {
        self.fields.push((name, value));
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|(n, _)| &**n == name)
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v)
    }

    /// Like [`Record::get`], trying position `hint` first (records of one source share a
    /// layout) and comparing by pointer before comparing bytes. Updates `hint` on a miss.
    pub(crate) fn get_hinted(&self, name: &FieldName, hint: &AtomicUsize) -> Option<&Value> {
        let same = |n: &FieldName| Arc::ptr_eq(n, name) || **n == **name;
        let h = hint.load(Ordering::Relaxed);
        if let Some((n, v)) = self.fields.get(h)
            && same(n)
        {
            return Some(v);
        }
        let i = self.fields.iter().position(|(n, _)| same(n))?;
        hint.store(i, Ordering::Relaxed);
        Some(&self.fields[i].1)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn clear(&mut self) {
        self.fields.clear();
    }

    /// The fields in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.fields.iter().map(|(n, v)| (&**n, v))
    }
}

/// The field names a [`CatalogItem`] becomes, shared by every converted record.
pub mod catalog_fields {
    pub const SKU: &str = "sku";
    pub const NAME: &str = "name";
    pub const PRICE: &str = "price";
    pub const PRICE_INCLUDES_VAT: &str = "price_includes_vat";
    pub const VAT_PERCENT: &str = "vat_percent";
    pub const CURRENCY: &str = "currency";
    pub const UNIT: &str = "unit";
    /// All of them, in the order a converted record holds them.
    pub const ALL: [&str; 7] = [
        SKU,
        NAME,
        PRICE,
        PRICE_INCLUDES_VAT,
        VAT_PERCENT,
        CURRENCY,
        UNIT,
    ];
}

pub(crate) static CATALOG_NAMES: LazyLock<[FieldName; 7]> =
    LazyLock::new(|| catalog_fields::ALL.map(FieldName::from));

impl From<&CatalogItem> for Record {
    /// `sku`, `name`, `unit` and `currency` (ISO code) as text, `price` and `vat_percent` as
    /// decimals (`vat_percent` is `Null` when the ERP does not say), `price_includes_vat` as a
    /// bool. Add ERP-specific fields afterwards with [`Record::insert`].
    fn from(item: &CatalogItem) -> Self {
        let n = &*CATALOG_NAMES;
        let mut r = Record::with_capacity(n.len() + 4);
        r.push_unique(n[0].clone(), Value::Text(item.sku.as_str().into()));
        r.push_unique(n[1].clone(), Value::Text(item.name.as_str().into()));
        r.push_unique(n[2].clone(), Value::Decimal(item.price));
        r.push_unique(n[3].clone(), Value::Bool(item.price_includes_vat));
        r.push_unique(
            n[4].clone(),
            item.vat
                .map_or(Value::Null, |v| Value::Decimal(v.as_percent())),
        );
        r.push_unique(n[5].clone(), Value::Text(item.currency.as_str().into()));
        r.push_unique(n[6].clone(), Value::Text(item.unit.as_str().into()));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Sku;
    use crate::money::{Currency, VatRate};
    use rust_decimal::dec;

    #[test]
    fn catalog_item_becomes_typed_fields_and_takes_extras() {
        let item = CatalogItem {
            sku: Sku::new("AB-1").unwrap(),
            name: "Cană".into(),
            price: dec!(10.50),
            price_includes_vat: false,
            vat: Some(VatRate::percent(dec!(19)).unwrap()),
            currency: Currency::Ron,
            unit: "buc".into(),
        };
        let mut r = Record::from(&item);
        assert_eq!(r.get("sku"), Some(&Value::Text("AB-1".into())));
        assert_eq!(r.get("price"), Some(&Value::Decimal(dec!(10.50))));
        assert_eq!(r.get("vat_percent"), Some(&Value::Decimal(dec!(19))));
        assert_eq!(r.get("price_includes_vat"), Some(&Value::Bool(false)));
        assert_eq!(r.get("currency"), Some(&Value::Text("RON".into())));
        r.insert("brand", "Acme");
        r.insert("brand", "Acme2");
        assert_eq!(r.len(), 8);
        assert_eq!(r.get("brand"), Some(&Value::Text("Acme2".into())));
        let none = CatalogItem { vat: None, ..item };
        assert_eq!(Record::from(&none).get("vat_percent"), Some(&Value::Null));
    }

    #[test]
    fn values_round_trip_through_json_with_their_type() {
        let v: Vec<Value> = serde_json::from_str(
            r#"[{"decimal":"1.50"},{"text":"x"},{"bool":true},{"integer":3},{"date":"2025-01-02"},"null"]"#,
        )
        .unwrap();
        assert_eq!(v[0], Value::Decimal(dec!(1.50)));
        assert_eq!(v[4].type_name(), "date");
        assert_eq!(v[5], Value::Null);
        let back = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::from_str::<Vec<Value>>(&back).unwrap(), v);
    }
}
