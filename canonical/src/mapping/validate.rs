//! Validation of a [`RuleSet`]: on its own ([`RuleSet::check`], done by `compile`) and against
//! the source and target systems' [`Schema`]s ([`RuleSet::validate`]). Every error names the
//! rule id and the field.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use rust_decimal::Decimal;

use super::engine::parse_template;
use super::fx::RateFeed;
use super::ops;
use super::record::{Value, ValueType};
use super::rules::{
    Condition, CurrencySource, DateSource, Expr, Op, RateSource, Rule, RuleSet, SCHEMA_VERSION,
};
use crate::money::Currency;

/// The `rule` of errors that belong to no rule (a required target no rule writes).
pub const NO_RULE: &str = "(no rule)";

/// One field a system has.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSpec {
    pub ty: ValueType,
    /// A target every rule set must write.
    pub required: bool,
    /// The only values the field takes (an enum), when declared.
    pub values: Option<Vec<Value>>,
}

/// The fields of a source or target system, with their types.
///
/// ```
/// use canonical::mapping::{Schema, ValueType};
/// let cdon = Schema::new()
///     .required("title.sv-SE", ValueType::Text)
///     .required("price.SE", ValueType::Decimal)
///     .field("category", ValueType::Text);
/// assert!(cdon.get("price.SE").unwrap().required);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schema {
    fields: BTreeMap<String, FieldSpec>,
}

impl Schema {
    pub fn new() -> Self {
        Self::default()
    }

    /// An optional field.
    pub fn field(mut self, name: impl Into<String>, ty: ValueType) -> Self {
        self.fields.insert(
            name.into(),
            FieldSpec {
                ty,
                required: false,
                values: None,
            },
        );
        self
    }

    /// A required field (for a target: every rule set must write it).
    pub fn required(mut self, name: impl Into<String>, ty: ValueType) -> Self {
        self.fields.insert(
            name.into(),
            FieldSpec {
                ty,
                required: true,
                values: None,
            },
        );
        self
    }

    /// An optional field that takes only `values`.
    pub fn enumerated<V: Into<Value>>(
        mut self,
        name: impl Into<String>,
        ty: ValueType,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        self.fields.insert(
            name.into(),
            FieldSpec {
                ty,
                required: false,
                values: Some(values.into_iter().map(Into::into).collect()),
            },
        );
        self
    }

    pub fn get(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &FieldSpec)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// A rejected rule set: which rule, which field, what.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("rule `{rule}`, field `{field}`: {kind}")]
pub struct ValidationError {
    /// The rule's id; `rates` or `vat_table` for those tables, [`NO_RULE`] for a required
    /// target no rule writes, `schema` for the format version.
    pub rule: String,
    pub field: String,
    pub kind: ValidationErrorKind,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationErrorKind {
    #[error("unsupported rule-set schema {0}; this build reads schema 1")]
    SchemaVersion(u32),
    #[error("duplicate rule id")]
    DuplicateRuleId,
    #[error("target also written by rule `{0}`")]
    DuplicateTarget(String),
    #[error("unknown source field")]
    UnknownSourceField,
    #[error("unknown target field")]
    UnknownTargetField,
    #[error("{at} needs {expected}, got {found}")]
    TypeMismatch {
        at: String,
        expected: String,
        found: String,
    },
    #[error("required target is written by no rule")]
    MissingRequiredTarget,
    #[error("lookup table `{0}` does not exist")]
    UnknownTable(String),
    #[error("lookup table `{table}` has no entry for {missing:?} and the lookup has no default")]
    LookupNotCovering { table: String, missing: Vec<String> },
    #[error("lookup table `{0}` mixes value types")]
    MixedTable(String),
    #[error("invalid rounding: {0}")]
    InvalidRounding(&'static str),
    #[error("VAT rate {0} % is outside 0-100 %")]
    VatOutOfRange(Decimal),
    #[error("VAT table has no entry `{0}`")]
    UnknownVatKey(String),
    #[error("unknown currency {0:?}")]
    UnknownCurrency(String),
    #[error("no {from}→{to} rate in the rule set's rates or the rates feed")]
    NoRate { from: String, to: String },
    #[error("rate must be positive, got {0}")]
    InvalidRate(Decimal),
    #[error("{0}")]
    Invalid(String),
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(
                f,
                "{k}: {}{}",
                v.ty,
                if v.required { " (required)" } else { "" }
            )?;
        }
        Ok(())
    }
}

fn key_text(v: &Value) -> String {
    match v {
        Value::Decimal(d) => d.normalize().to_string(),
        v => v.to_string(),
    }
}

fn is_numeric(t: ValueType) -> bool {
    matches!(t, ValueType::Decimal | ValueType::Integer)
}

fn compatible(a: ValueType, b: ValueType) -> bool {
    a == b || (is_numeric(a) && is_numeric(b))
}

struct Checker<'a> {
    set: &'a RuleSet,
    source: Option<&'a Schema>,
    target: Option<&'a Schema>,
    /// Currency pairs with at least one rate (either direction), the feed's included.
    pairs: BTreeSet<(Currency, Currency)>,
    /// Whether conversions must have a rate available (not by [`RuleSet::check`], which
    /// cannot know the feed).
    check_rates: bool,
    errors: Vec<ValidationError>,
}

impl<'a> Checker<'a> {
    fn err(&mut self, rule: &str, field: &str, kind: ValidationErrorKind) {
        self.errors.push(ValidationError {
            rule: rule.to_owned(),
            field: field.to_owned(),
            kind,
        });
    }

    /// The source field's spec; an error when the schema lacks it.
    fn source_field(&mut self, rule: &str, name: &str) -> Option<&'a FieldSpec> {
        let s = self.source?;
        let spec = s.get(name);
        if spec.is_none() {
            self.err(rule, name, ValidationErrorKind::UnknownSourceField);
        }
        spec
    }

    fn mismatch(&mut self, rule: &str, field: &str, at: String, expected: &str, found: ValueType) {
        self.err(
            rule,
            field,
            ValidationErrorKind::TypeMismatch {
                at,
                expected: expected.to_owned(),
                found: found.as_str().to_owned(),
            },
        );
    }

    fn currency(&mut self, rule: &str, field: &str, code: &str) -> Option<Currency> {
        match code.parse() {
            Ok(c) => Some(c),
            Err(_) => {
                self.err(
                    rule,
                    field,
                    ValidationErrorKind::UnknownCurrency(code.into()),
                );
                None
            }
        }
    }

    fn tables_and_rates(&mut self) {
        if self.set.schema != SCHEMA_VERSION {
            self.err(
                "schema",
                "schema",
                ValidationErrorKind::SchemaVersion(self.set.schema),
            );
        }
        for (name, t) in &self.set.tables {
            let types: BTreeSet<_> = t.entries.values().filter_map(Value::value_type).collect();
            if types.len() > 1 {
                self.err(
                    &format!("tables.{name}"),
                    name,
                    ValidationErrorKind::MixedTable(name.clone()),
                );
            }
        }
        for (k, p) in &self.set.vat_table {
            if !ops::valid_vat(*p) {
                self.err("vat_table", k, ValidationErrorKind::VatOutOfRange(*p));
            }
        }
        for (i, r) in self.set.rates.iter().enumerate() {
            let field = format!("rates[{i}]");
            let from = self.currency("rates", &field, &r.from);
            let to = self.currency("rates", &field, &r.to);
            if r.rate <= Decimal::ZERO {
                self.err("rates", &field, ValidationErrorKind::InvalidRate(r.rate));
            } else if let (Some(f), Some(t)) = (from, to) {
                self.pairs.insert((f, t));
                self.pairs.insert((t, f));
            }
        }
    }

    fn table_type(&self, name: &str) -> Option<ValueType> {
        self.set
            .tables
            .get(name)?
            .entries
            .values()
            .find_map(Value::value_type)
    }

    /// The type of an expression; `None` when unknown (no schema, or null).
    fn expr(&mut self, rule: &Rule, e: &Expr) -> Option<ValueType> {
        match e {
            Expr::Field(f) => self.source_field(&rule.id, f).map(|s| s.ty),
            Expr::Literal(v) => v.value_type(),
            Expr::Template(t) => {
                match parse_template(t) {
                    Ok(parts) => {
                        for (is_field, name) in parts {
                            if is_field {
                                self.source_field(&rule.id, &name);
                            }
                        }
                    }
                    Err(msg) => self.err(&rule.id, &rule.target, ValidationErrorKind::Invalid(msg)),
                }
                Some(ValueType::Text)
            }
            Expr::Concat { parts, .. } => {
                for p in parts {
                    self.expr(rule, p);
                }
                Some(ValueType::Text)
            }
        }
    }

    fn rate(&mut self, rule: &Rule, op: &str, r: &RateSource) {
        match r {
            RateSource::Fixed(p) => {
                if !ops::valid_vat(*p) {
                    self.err(
                        &rule.id,
                        &rule.target,
                        ValidationErrorKind::VatOutOfRange(*p),
                    );
                }
            }
            RateSource::Table(k) => {
                if !self.set.vat_table.contains_key(k) {
                    self.err(
                        &rule.id,
                        &rule.target,
                        ValidationErrorKind::UnknownVatKey(k.clone()),
                    );
                }
            }
            RateSource::FromField(f) => {
                if let Some(spec) = self.source_field(&rule.id, f)
                    && !is_numeric(spec.ty)
                {
                    self.mismatch(&rule.id, f, format!("`{op}` rate"), "decimal", spec.ty);
                }
            }
        }
    }

    /// Checks one op on an input of type `input`; returns the output type.
    fn op(
        &mut self,
        rule: &Rule,
        index: usize,
        op: &Op,
        input: Option<ValueType>,
    ) -> Option<ValueType> {
        let at = format!("op {} `{}`", index + 1, op.name());
        let need = |c: &mut Self, want: &str, ok: fn(ValueType) -> bool| {
            if let Some(t) = input
                && !ok(t)
            {
                c.mismatch(&rule.id, &rule.target, at.clone(), want, t);
            }
        };
        match op {
            Op::VatAdd { rate } | Op::VatStrip { rate } => {
                need(self, "decimal", is_numeric);
                self.rate(rule, op.name(), rate);
                Some(ValueType::Decimal)
            }
            Op::Round { step, ending, .. } => {
                need(self, "decimal", is_numeric);
                if let Err(msg) = ops::valid_grid(*step, *ending) {
                    self.err(
                        &rule.id,
                        &rule.target,
                        ValidationErrorKind::InvalidRounding(msg),
                    );
                }
                Some(ValueType::Decimal)
            }
            Op::Multiply { .. } | Op::Add { .. } => {
                need(self, "decimal", is_numeric);
                Some(ValueType::Decimal)
            }
            Op::Convert { to, from, date } => {
                need(self, "decimal", is_numeric);
                let to = self.currency(&rule.id, &rule.target, to);
                let froms: Vec<Currency> = match from {
                    CurrencySource::Fixed(c) => self
                        .currency(&rule.id, &rule.target, c)
                        .into_iter()
                        .collect(),
                    CurrencySource::Field(f) => match self.source_field(&rule.id, f) {
                        Some(spec) if spec.ty != ValueType::Text => {
                            self.mismatch(&rule.id, f, at.clone(), "text", spec.ty);
                            Vec::new()
                        }
                        Some(FieldSpec {
                            values: Some(vs), ..
                        }) => vs
                            .iter()
                            .filter_map(|v| self.currency(&rule.id, f, &v.to_string()))
                            .collect(),
                        _ => Vec::new(),
                    },
                };
                if let Some(to) = to
                    && self.check_rates
                {
                    let has_any = self.pairs.iter().any(|(_, t)| *t == to);
                    for f in &froms {
                        if *f != to && !self.pairs.contains(&(*f, to)) {
                            self.err(
                                &rule.id,
                                &rule.target,
                                ValidationErrorKind::NoRate {
                                    from: f.to_string(),
                                    to: to.to_string(),
                                },
                            );
                        }
                    }
                    let fixed_same = matches!(from, CurrencySource::Fixed(c)
                        if c.parse::<Currency>().ok() == Some(to));
                    if froms.is_empty() && !has_any && !fixed_same {
                        self.err(
                            &rule.id,
                            &rule.target,
                            ValidationErrorKind::NoRate {
                                from: "any".into(),
                                to: to.to_string(),
                            },
                        );
                    }
                }
                if let DateSource::Field(f) = date
                    && let Some(spec) = self.source_field(&rule.id, f)
                    && spec.ty != ValueType::Date
                {
                    self.mismatch(&rule.id, f, at.clone(), "date", spec.ty);
                }
                Some(ValueType::Decimal)
            }
            Op::Lookup { table, default } => {
                let Some(t) = self.set.tables.get(table) else {
                    self.err(
                        &rule.id,
                        &rule.target,
                        ValidationErrorKind::UnknownTable(table.clone()),
                    );
                    return default.as_ref().and_then(Value::value_type);
                };
                let out = self.table_type(table);
                if let (Some(d), Some(o)) = (default.as_ref().and_then(Value::value_type), out)
                    && d != o
                {
                    self.mismatch(
                        &rule.id,
                        &rule.target,
                        format!("{at} default"),
                        o.as_str(),
                        d,
                    );
                }
                // Coverage: a lookup straight on an enumerated source field, without default.
                if default.is_none()
                    && index == 0
                    && let Expr::Field(f) = &rule.source
                    && let Some(FieldSpec {
                        values: Some(vs), ..
                    }) = self.source.and_then(|s| s.get(f))
                {
                    let keys: BTreeSet<String> = t
                        .entries
                        .keys()
                        .map(|k| match k.trim().parse::<Decimal>() {
                            Ok(d) if vs.iter().any(|v| matches!(v, Value::Decimal(_))) => {
                                d.normalize().to_string()
                            }
                            _ => k.clone(),
                        })
                        .collect();
                    let missing: Vec<String> = vs
                        .iter()
                        .map(key_text)
                        .filter(|k| !keys.contains(k))
                        .collect();
                    if !missing.is_empty() {
                        self.err(
                            &rule.id,
                            f,
                            ValidationErrorKind::LookupNotCovering {
                                table: table.clone(),
                                missing,
                            },
                        );
                    }
                }
                out.or_else(|| default.as_ref().and_then(Value::value_type))
            }
            Op::Upper | Op::Lower | Op::Trim | Op::Truncate { .. } => {
                need(self, "text", |t| t == ValueType::Text);
                Some(ValueType::Text)
            }
        }
    }

    fn cond(&mut self, rule: &Rule, c: &Condition) {
        let cmp = |s: &mut Self, field: &str, v: &Value, ordered: bool| {
            let Some(spec) = s.source_field(&rule.id, field) else {
                return;
            };
            if let Some(t) = v.value_type()
                && !compatible(spec.ty, t)
            {
                s.mismatch(&rule.id, field, "condition".into(), spec.ty.as_str(), t);
            }
            if ordered && spec.ty == ValueType::Bool {
                s.mismatch(
                    &rule.id,
                    field,
                    "ordered comparison".into(),
                    "number, text or date",
                    spec.ty,
                );
            }
        };
        match c {
            Condition::Eq(x) | Condition::Ne(x) => cmp(self, &x.field, &x.value, false),
            Condition::Gt(x) | Condition::Lt(x) => cmp(self, &x.field, &x.value, true),
            Condition::In { field, values } => {
                for v in values {
                    cmp(self, field, v, false);
                }
                if values.is_empty() {
                    self.source_field(&rule.id, field);
                }
            }
            Condition::IsNull { field } => {
                self.source_field(&rule.id, field);
            }
            Condition::And(cs) | Condition::Or(cs) => {
                for c in cs {
                    self.cond(rule, c);
                }
            }
            Condition::Not(c) => self.cond(rule, c),
        }
    }

    fn rules(&mut self) {
        let mut ids: HashMap<&str, ()> = HashMap::new();
        let mut targets: HashMap<&str, &str> = HashMap::new();
        for rule in &self.set.rules {
            if ids.insert(&rule.id, ()).is_some() {
                self.err(&rule.id, &rule.target, ValidationErrorKind::DuplicateRuleId);
            }
            if let Some(other) = targets.insert(&rule.target, &rule.id) {
                self.err(
                    &rule.id,
                    &rule.target,
                    ValidationErrorKind::DuplicateTarget(other.to_owned()),
                );
            }
            let target_spec = match self.target {
                Some(t) => {
                    let s = t.get(&rule.target);
                    if s.is_none() {
                        self.err(
                            &rule.id,
                            &rule.target,
                            ValidationErrorKind::UnknownTargetField,
                        );
                    }
                    s
                }
                None => None,
            };
            let mut ty = self.expr(rule, &rule.source);
            for (i, op) in rule.ops.iter().enumerate() {
                ty = self.op(rule, i, op, ty);
            }
            if let Some(w) = &rule.when {
                self.cond(rule, w);
            }
            if let Some(spec) = target_spec {
                if let Some(t) = ty
                    && t != spec.ty
                {
                    self.mismatch(&rule.id, &rule.target, "target".into(), spec.ty.as_str(), t);
                }
                if let Some(t) = rule.default.as_ref().and_then(Value::value_type)
                    && t != spec.ty
                {
                    self.mismatch(
                        &rule.id,
                        &rule.target,
                        "default".into(),
                        spec.ty.as_str(),
                        t,
                    );
                }
            }
        }
        if let Some(t) = self.target {
            for (name, spec) in t.iter() {
                if spec.required && !targets.contains_key(name) {
                    self.err(NO_RULE, name, ValidationErrorKind::MissingRequiredTarget);
                }
            }
        }
    }
}

impl RuleSet {
    fn run_checks(
        &self,
        source: Option<&Schema>,
        target: Option<&Schema>,
        rates: Option<Option<&RateFeed>>,
    ) -> Result<(), Vec<ValidationError>> {
        let mut c = Checker {
            set: self,
            source,
            target,
            pairs: rates
                .flatten()
                .map(RateFeed::reachable_pairs)
                .unwrap_or_default(),
            check_rates: rates.is_some(),
            errors: Vec::new(),
        };
        c.tables_and_rates();
        c.rules();
        if c.errors.is_empty() {
            Ok(())
        } else {
            Err(c.errors)
        }
    }

    /// The checks that need no schema: version, duplicate ids and targets, templates,
    /// rounding grids, VAT rates and keys, currencies, lookup tables present and of one type.
    /// Done by [`RuleSet::compile`]. Rates are not required here (the feed may supply them).
    pub fn check(&self) -> Result<(), Vec<ValidationError>> {
        self.run_checks(None, None, None)
    }

    /// Everything [`RuleSet::check`] does, plus against the schemas: unknown source and
    /// target fields, types through each rule's pipeline (e.g. rounding a text), required
    /// targets written, lookups covering the declared values of enumerated source fields,
    /// conversions having a rate in the rule set for each declared source currency.
    pub fn validate(&self, source: &Schema, target: &Schema) -> Result<(), Vec<ValidationError>> {
        self.run_checks(Some(source), Some(target), Some(None))
    }

    /// The schema checks of [`RuleSet::validate`] without requiring rates (they may come from
    /// a feed imported later). `None`: that side is not checked.
    pub fn validate_schemas(
        &self,
        source: Option<&Schema>,
        target: Option<&Schema>,
    ) -> Result<(), Vec<ValidationError>> {
        self.run_checks(source, target, None)
    }

    /// [`RuleSet::validate`], counting a pair the `feed` can answer (directly, inverted or
    /// crossed) as having a rate. `source` or `target` `None`: that side is not checked (a
    /// system with no declared schema).
    pub fn validate_with_feed(
        &self,
        source: Option<&Schema>,
        target: Option<&Schema>,
        feed: &RateFeed,
    ) -> Result<(), Vec<ValidationError>> {
        self.run_checks(source, target, Some(Some(feed)))
    }
}
