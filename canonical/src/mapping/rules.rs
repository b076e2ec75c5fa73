//! The rule-set model: what a tenant configures per connection and direction, as JSON or YAML.
//!
//! Everything here is plain data (serde, `deny_unknown_fields`, `"schema": 1`). Currencies are
//! kept as their ISO codes (strings) so that an unknown one is reported by validation with the
//! rule and field that use it, not as an anonymous parse error.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::record::Value;

/// The only version of the rule-set format so far.
pub const SCHEMA_VERSION: u32 = 1;

/// The rules for one connection and direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    /// Format version; must be [`SCHEMA_VERSION`].
    pub schema: u32,
    /// E.g. `erp_to_marketplace` or `marketplace_to_erp`.
    pub direction: String,
    pub rules: Vec<Rule>,
    /// Lookup tables by name: key (as text) → value.
    #[serde(default)]
    pub tables: BTreeMap<String, LookupTable>,
    /// Dated currency rates.
    #[serde(default)]
    pub rates: Vec<RateEntry>,
    /// VAT rates (percent) by key, e.g. a market (`SE`) or a VAT category (`standard`).
    #[serde(default)]
    pub vat_table: BTreeMap<String, Decimal>,
}

/// One target field and how it is computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable name, unique in the set; every error and every provenance entry names it.
    pub id: String,
    /// The target field written.
    pub target: String,
    pub source: Expr,
    /// Applied in order to the source value.
    #[serde(default)]
    pub ops: Vec<Op>,
    /// The rule applies only when this holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    /// The target value (as is, no ops) when the source is null or absent, or `when` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

/// Where a rule's value comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Expr {
    /// A source field: `{"field": "price"}`.
    Field(String),
    /// A constant: `{"literal": {"text": "SEK"}}`.
    Literal(Value),
    /// Text with `{field}` placeholders (`{{` and `}}` for literal braces):
    /// `{"template": "{brand} {name}"}`. A null field renders as nothing.
    Template(String),
    /// The parts' texts joined by `separator`, null parts skipped.
    Concat {
        parts: Vec<Expr>,
        #[serde(default)]
        separator: String,
    },
}

/// One typed operation of a rule's pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// net → gross: `v × (1 + rate/100)`, unrounded.
    VatAdd {
        rate: RateSource,
    },
    /// gross → net: `v / (1 + rate/100)`, unrounded.
    VatStrip {
        rate: RateSource,
    },
    /// To the grid `k × step + ending` (see [`super::ops::round`]).
    Round {
        mode: RoundMode,
        step: Decimal,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ending: Option<Decimal>,
    },
    /// Into `to` at the rate of the dated table on or before `date`; the rate is recorded.
    Convert {
        to: String,
        from: CurrencySource,
        #[serde(default)]
        date: DateSource,
    },
    /// Replaces the value by its entry in `table` (keys compared as text), else `default`.
    Lookup {
        table: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default: Option<Value>,
    },
    Upper,
    Lower,
    Trim,
    /// Keeps the first `n` characters.
    Truncate {
        n: usize,
    },
    /// `v × factor` (a markup: 1.15).
    Multiply {
        factor: Decimal,
    },
    /// `v + amount` (a fixed fee).
    Add {
        amount: Decimal,
    },
}

impl Op {
    /// The op's name as written in JSON, for errors and provenance.
    pub const fn name(&self) -> &'static str {
        match self {
            Op::VatAdd { .. } => "vat_add",
            Op::VatStrip { .. } => "vat_strip",
            Op::Round { .. } => "round",
            Op::Convert { .. } => "convert",
            Op::Lookup { .. } => "lookup",
            Op::Upper => "upper",
            Op::Lower => "lower",
            Op::Trim => "trim",
            Op::Truncate { .. } => "truncate",
            Op::Multiply { .. } => "multiply",
            Op::Add { .. } => "add",
        }
    }
}

/// Where a VAT rate (percent) comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RateSource {
    /// A decimal source field holding the percentage (`vat_percent`).
    FromField(String),
    Fixed(Decimal),
    /// A key of the rule set's `vat_table`.
    Table(String),
}

/// Rounding direction, applied to the multiple of the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundMode {
    /// Nearest; a tie goes to the even multiple (banker's).
    HalfEven,
    /// Nearest; a tie goes away from zero.
    HalfUp,
    /// Away from zero.
    Up,
    /// Toward zero.
    Down,
}

/// The currency a value is in before a conversion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CurrencySource {
    /// A text source field with an ISO code (`currency`).
    Field(String),
    /// An ISO code.
    Fixed(String),
}

/// The date whose rate a conversion uses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DateSource {
    /// The context's `today`.
    #[default]
    Today,
    /// A date source field.
    Field(String),
}

/// A lookup table: text keys to values of one type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupTable {
    pub entries: BTreeMap<String, Value>,
}

/// `1 from = rate to`, valid from `date` until a later entry of the same pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateEntry {
    pub date: NaiveDate,
    pub from: String,
    pub to: String,
    pub rate: Decimal,
}

/// A condition on source fields. A field absent from the record counts as null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    Eq(Comparison),
    Ne(Comparison),
    /// Numbers, dates and texts; false when either side is null.
    Gt(Comparison),
    Lt(Comparison),
    In {
        field: String,
        values: Vec<Value>,
    },
    IsNull {
        field: String,
    },
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
}

/// `field <op> value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    pub field: String,
    pub value: Value,
}
