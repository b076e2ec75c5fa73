//! Dynamic field mapping: per connection and direction, each target field is computed from a
//! source expression through a pipeline of typed operations (VAT, rounding, currency
//! conversion, lookups, text), optionally under a condition, with a default.
//!
//! - [`record`]: [`Record`], the flat typed field map rules read and write.
//! - [`rules`]: the serde model of a [`RuleSet`] (JSON/YAML, `"schema": 1`).
//! - [`ops`]: the arithmetic of the ops (rounding grids, VAT), as pure functions.
//! - [`engine`]: [`RuleSet::compile`] → [`CompiledRuleSet::apply`] → [`Output`] (the target
//!   record plus, per field, which rule, the source value, each op's value and the FX rate).
//! - [`validate`]: [`RuleSet::validate`] against source and target [`Schema`]s.
//!
//! - [`fx`]: the [`RateFeed`] of dated exchange rates a conversion falls back to when the rule
//!   set has no rate of its own for the pair.
//!
//! Money is [`rust_decimal::Decimal`], never a float. No I/O: tables are in the rule set, rates
//! in the rule set or the feed the caller passes, and "today" comes from the [`Context`]. See
//! `docs/mapping.md`.

pub mod engine;
pub mod fx;
pub mod ops;
pub mod record;
pub mod rules;
pub mod validate;

pub use engine::{
    ApplyError, ApplyErrorKind, CompiledRuleSet, Context, FxUsed, Origin, Output, RateOrigin, Step,
    Trace,
};
pub use fx::{FeedMiss, RateFeed};
pub use record::{FieldName, Record, Value, ValueType};
pub use rules::{
    Comparison, Condition, CurrencySource, DateSource, Expr, LookupTable, Op, RateEntry,
    RateSource, RoundMode, Rule, RuleSet, SCHEMA_VERSION,
};
pub use validate::{FieldSpec, NO_RULE, Schema, ValidationError, ValidationErrorKind};
