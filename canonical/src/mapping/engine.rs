//! The engine: a [`RuleSet`] compiled once into a [`CompiledRuleSet`], applied to many records.
//!
//! Compiling parses templates, turns currencies into [`Currency`], VAT rates into factors,
//! lookup tables into hash maps keyed by text, integer and decimal, and the dated rates into a
//! sorted table per currency pair (inverse pairs derived once). Field names become shared
//! [`FieldName`]s, so applying allocates no names; [`CompiledRuleSet::apply_into`] also reuses
//! the output's buffers.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use super::fx::{FeedMiss, RateFeed};
use super::ops;
use super::record::{CATALOG_NAMES, FieldName, Record, Value};
use super::rules::{
    Condition, CurrencySource, DateSource, Expr, LookupTable, Op, RateSource, RoundMode, RuleSet,
};
use super::validate::{ValidationError, ValidationErrorKind};
use crate::money::Currency;

/// What a rule set is applied with, besides the record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Context<'a> {
    /// The date of `"today"` conversions (the flow's run date; the engine reads no clock).
    pub today: NaiveDate,
    /// The rates feed, for pairs the rule set has no rates of its own for ([`super::fx`]).
    pub feed: Option<&'a RateFeed>,
}

impl<'a> Context<'a> {
    /// Conversions on `today`, with no feed (only the rule set's own rates).
    pub fn on(today: NaiveDate) -> Self {
        Self { today, feed: None }
    }

    /// The same context with a rates feed.
    pub fn with_feed(self, feed: &'a RateFeed) -> Self {
        Self {
            feed: Some(feed),
            ..self
        }
    }
}

/// Where a conversion's rate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateOrigin {
    /// The rule set's own `rates` (pinned by the merchant).
    RuleSet,
    /// The rates feed ([`RateFeed`]).
    Feed,
}

/// The exchange rate a conversion used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FxUsed {
    pub from: Currency,
    pub to: Currency,
    /// `1 from = rate to`; the converted value is exactly `input × rate`.
    pub rate: Decimal,
    /// The date of the table entry used (the latest on or before `requested`).
    pub rate_date: NaiveDate,
    /// The date asked for.
    pub requested: NaiveDate,
    /// The table had `to → from` only, and `rate` is its inverse.
    pub inverted: bool,
    pub origin: RateOrigin,
    /// The pivot of a crossed feed rate (RON→EUR→SEK); `rate` is the product of both legs.
    pub via: Option<Currency>,
}

/// One op's result in a rule's pipeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// The op's JSON name (`vat_add`, `round`, …).
    pub op: &'static str,
    pub value: Value,
    /// For `convert`: the rate used.
    pub fx: Option<FxUsed>,
}

/// Why a target got its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The source expression through the ops.
    Source,
    /// The rule's default: the source was null or absent.
    DefaultNoSource,
    /// The rule's default: its `when` was false.
    DefaultWhenFalse,
}

#[derive(Debug, Clone, PartialEq)]
struct Provenance {
    rule: FieldName,
    origin: Origin,
    source: Value,
    steps: (u32, u32),
}

/// How one target field was computed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Trace<'a> {
    pub rule: &'a str,
    pub target: &'a str,
    pub origin: Origin,
    /// The source expression's value (the default, when one was used).
    pub source: &'a Value,
    /// Each op's value, in order (empty for a default or a null source).
    pub steps: &'a [Step],
}

impl Trace<'_> {
    /// The rate of the (first) conversion, if any.
    pub fn fx(&self) -> Option<&FxUsed> {
        self.steps.iter().find_map(|s| s.fx.as_ref())
    }
}

/// The target record and, per target field, its provenance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    pub record: Record,
    provenance: Vec<Provenance>,
    steps: Vec<Step>,
}

impl Output {
    pub fn new() -> Self {
        Self::default()
    }

    fn clear(&mut self) {
        self.record.clear();
        self.provenance.clear();
        self.steps.clear();
    }

    /// Provenance `i` is of record field `i`: both are pushed together.
    fn make_trace<'a>(&'a self, target: &'a str, p: &'a Provenance) -> Trace<'a> {
        Trace {
            rule: &p.rule,
            target,
            origin: p.origin,
            source: &p.source,
            steps: &self.steps[p.steps.0 as usize..p.steps.1 as usize],
        }
    }

    /// How `target` was computed; `None` when no rule wrote it.
    pub fn trace(&self, target: &str) -> Option<Trace<'_>> {
        self.traces().find(|t| t.target == target)
    }

    /// Every written target's trace, in rule order.
    pub fn traces(&self) -> impl Iterator<Item = Trace<'_>> {
        self.record
            .iter()
            .zip(&self.provenance)
            .map(|((name, _), p)| self.make_trace(name, p))
    }
}

/// A rule failed on a record. Names the rule, its target and the field concerned (the source
/// field that was missing or bad, else the target).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("rule `{rule}` (target `{target}`), field `{field}`: {kind}")]
pub struct ApplyError {
    pub rule: Box<str>,
    pub target: Box<str>,
    pub field: Box<str>,
    pub kind: ApplyErrorKind,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApplyErrorKind {
    #[error("source field is missing from the record and the rule has no default")]
    MissingField,
    #[error("lookup table `{table}` has no entry for {key:?} and the op has no default")]
    NoLookupEntry { table: String, key: String },
    #[error("`{op}` needs a {expected} value, got {found}")]
    TypeMismatch {
        op: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("no {from}→{to} rate on or before {date}")]
    NoRate {
        from: Currency,
        to: Currency,
        date: NaiveDate,
    },
    #[error(
        "the newest {from}→{to} rate of the feed is from {rate_date}, more than {max_age_days} days before {date} (import current rates: `megzo rates import`)"
    )]
    StaleRate {
        from: Currency,
        to: Currency,
        date: NaiveDate,
        rate_date: NaiveDate,
        max_age_days: u32,
    },
    #[error("unknown currency {0:?}")]
    UnknownCurrency(String),
    #[error("VAT rate {0} % is outside 0-100 %")]
    VatOutOfRange(Decimal),
    #[error("`{0}` overflowed the decimal range")]
    Overflow(&'static str),
}

/// An error before the rule and target are known.
struct Fail {
    field: Option<FieldName>,
    kind: ApplyErrorKind,
}

impl Fail {
    fn at(field: &FieldName, kind: ApplyErrorKind) -> Self {
        Fail {
            field: Some(field.clone()),
            kind,
        }
    }
    fn here(kind: ApplyErrorKind) -> Self {
        Fail { field: None, kind }
    }
}

/// A field reference with the position it was last found at.
#[derive(Debug)]
struct Slot {
    name: FieldName,
    hint: AtomicUsize,
}

#[derive(Debug)]
enum TemplatePart {
    Text(String),
    Field(Slot),
}

#[derive(Debug)]
enum CExpr {
    Field(Slot),
    Literal(Value),
    Template(Vec<TemplatePart>),
    Concat {
        parts: Vec<CExpr>,
        separator: String,
    },
}

#[derive(Debug)]
enum CRate {
    Factor(Decimal),
    Field(Slot),
}

#[derive(Debug)]
enum CCurrency {
    Fixed(Currency),
    Field(Slot),
}

#[derive(Debug)]
enum CDate {
    Today,
    Field(Slot),
}

#[derive(Debug, Default)]
struct CTable {
    name: String,
    text: HashMap<Box<str>, Value>,
    integer: HashMap<i64, Value>,
    decimal: HashMap<Decimal, Value>,
}

impl CTable {
    fn new(name: &str, t: &LookupTable) -> Self {
        let mut c = CTable {
            name: name.to_owned(),
            ..CTable::default()
        };
        for (k, v) in &t.entries {
            c.text.insert(k.as_str().into(), v.clone());
            if let Ok(i) = k.trim().parse::<i64>() {
                c.integer.entry(i).or_insert_with(|| v.clone());
            }
            if let Ok(d) = k.trim().parse::<Decimal>() {
                c.decimal.entry(d).or_insert_with(|| v.clone());
            }
        }
        c
    }

    fn get(&self, key: &Value) -> Option<&Value> {
        match key {
            Value::Text(s) => self.text.get(&**s),
            Value::Integer(i) => self.integer.get(i),
            Value::Decimal(d) => self.decimal.get(d),
            Value::Bool(b) => self.text.get(if *b { "true" } else { "false" }),
            Value::Date(d) => self.text.get(d.format("%Y-%m-%d").to_string().as_str()),
            Value::Null => None,
        }
    }
}

#[derive(Debug)]
enum COp {
    Vat {
        add: bool,
        rate: CRate,
    },
    Round {
        mode: RoundMode,
        step: Decimal,
        ending: Option<Decimal>,
        /// `Some(d)` when the step is `10^-d` and there is no ending: then rounding to `d`
        /// decimals is the same grid, without dividing.
        dp: Option<u32>,
    },
    Convert {
        to: Currency,
        from: CCurrency,
        date: CDate,
    },
    Lookup {
        table: usize,
        default: Option<Value>,
    },
    Upper,
    Lower,
    Trim,
    Truncate(usize),
    Multiply(Decimal),
    Add(Decimal),
}

impl COp {
    const fn name(&self) -> &'static str {
        match self {
            COp::Vat { add: true, .. } => "vat_add",
            COp::Vat { add: false, .. } => "vat_strip",
            COp::Round { .. } => "round",
            COp::Convert { .. } => "convert",
            COp::Lookup { .. } => "lookup",
            COp::Upper => "upper",
            COp::Lower => "lower",
            COp::Trim => "trim",
            COp::Truncate(_) => "truncate",
            COp::Multiply(_) => "multiply",
            COp::Add(_) => "add",
        }
    }
}

#[derive(Debug)]
enum CCond {
    Cmp(Ordering, bool, Slot, Value),
    Ne(Slot, Value),
    In(Slot, Vec<Value>),
    IsNull(Slot),
    And(Vec<CCond>),
    Or(Vec<CCond>),
    Not(Box<CCond>),
}

#[derive(Debug)]
struct CRule {
    id: FieldName,
    target: FieldName,
    source: CExpr,
    ops: Vec<COp>,
    when: Option<CCond>,
    default: Option<Value>,
}

/// `(date, rate, inverted)`.
type DatedRate = (NaiveDate, Decimal, bool);

#[derive(Debug, Default)]
struct Rates {
    /// Per pair, `(date, rate, inverted)` sorted by date; direct entries win over inverted
    /// ones of the same date.
    pairs: HashMap<(Currency, Currency), Vec<DatedRate>>,
}

impl Rates {
    /// `None`: the rule set has no rate for the pair (the feed may); `Some(None)`: it has the
    /// pair (pinned) but nothing on or before `date`.
    fn find(&self, from: Currency, to: Currency, date: NaiveDate) -> Option<Option<FxUsed>> {
        let fx = |rate, rate_date, inverted| FxUsed {
            from,
            to,
            rate,
            rate_date,
            requested: date,
            inverted,
            origin: RateOrigin::RuleSet,
            via: None,
        };
        if from == to {
            return Some(Some(fx(Decimal::ONE, date, false)));
        }
        let list = self.pairs.get(&(from, to))?;
        let n = list.partition_point(|(d, _, _)| *d <= date);
        Some(
            n.checked_sub(1)
                .and_then(|i| list.get(i))
                .map(|&(rate_date, rate, inverted)| fx(rate, rate_date, inverted)),
        )
    }
}

/// A rule set ready to apply: see the module docs.
#[derive(Debug)]
pub struct CompiledRuleSet {
    direction: String,
    rules: Vec<CRule>,
    tables: Vec<CTable>,
    rates: Rates,
    /// The source field names the rules read, shared with their slots.
    names: HashMap<String, FieldName>,
    /// The ops of all rules: the most steps one record can record.
    op_count: usize,
}

/// Splits a template into text and `{field}` parts; `{{` and `}}` are literal braces.
pub(crate) fn parse_template(t: &str) -> Result<Vec<(bool, String)>, String> {
    let mut parts: Vec<(bool, String)> = Vec::new();
    let mut text = String::new();
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some('{') | None => {
                            return Err(format!("unclosed `{{` in template {t:?}"));
                        }
                        Some(ch) => name.push(ch),
                    }
                }
                let name = name.trim();
                if name.is_empty() {
                    return Err(format!("empty `{{}}` in template {t:?}"));
                }
                if !text.is_empty() {
                    parts.push((false, std::mem::take(&mut text)));
                }
                parts.push((true, name.to_owned()));
            }
            '}' => return Err(format!("unmatched `}}` in template {t:?}")),
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        parts.push((false, text));
    }
    Ok(parts)
}

struct Compiler<'a> {
    set: &'a RuleSet,
    names: HashMap<String, FieldName>,
    table_index: HashMap<&'a str, usize>,
}

impl Compiler<'_> {
    /// A slot for a source field; catalog fields share the names records are built with,
    /// so they compare by pointer.
    fn name(&mut self, s: &str) -> Slot {
        let name = self
            .names
            .entry(s.to_owned())
            .or_insert_with(|| {
                CATALOG_NAMES
                    .iter()
                    .find(|n| &***n == s)
                    .cloned()
                    .unwrap_or_else(|| FieldName::from(s))
            })
            .clone();
        Slot {
            name,
            hint: AtomicUsize::new(0),
        }
    }

    fn expr(&mut self, e: &Expr) -> Result<CExpr, String> {
        Ok(match e {
            Expr::Field(f) => CExpr::Field(self.name(f)),
            Expr::Literal(v) => CExpr::Literal(v.clone()),
            Expr::Template(t) => CExpr::Template(
                parse_template(t)?
                    .into_iter()
                    .map(|(is_field, s)| {
                        if is_field {
                            TemplatePart::Field(self.name(&s))
                        } else {
                            TemplatePart::Text(s)
                        }
                    })
                    .collect(),
            ),
            Expr::Concat { parts, separator } => CExpr::Concat {
                parts: parts
                    .iter()
                    .map(|p| self.expr(p))
                    .collect::<Result<_, _>>()?,
                separator: separator.clone(),
            },
        })
    }

    fn rate(&mut self, r: &RateSource) -> Result<CRate, String> {
        Ok(match r {
            RateSource::FromField(f) => CRate::Field(self.name(f)),
            RateSource::Fixed(p) => CRate::Factor(ops::vat_factor(*p)),
            RateSource::Table(k) => {
                let p = self
                    .set
                    .vat_table
                    .get(k)
                    .ok_or_else(|| format!("no VAT table entry {k:?}"))?;
                CRate::Factor(ops::vat_factor(*p))
            }
        })
    }

    fn op(&mut self, op: &Op) -> Result<COp, String> {
        let currency = |s: &str| s.parse::<Currency>().map_err(|e| e.to_string());
        Ok(match op {
            Op::VatAdd { rate } => COp::Vat {
                add: true,
                rate: self.rate(rate)?,
            },
            Op::VatStrip { rate } => COp::Vat {
                add: false,
                rate: self.rate(rate)?,
            },
            Op::Round { mode, step, ending } => COp::Round {
                mode: *mode,
                step: *step,
                ending: *ending,
                dp: {
                    let n = step.normalize();
                    (ending.is_none() && n.mantissa() == 1).then(|| n.scale())
                },
            },
            Op::Convert { to, from, date } => COp::Convert {
                to: currency(to)?,
                from: match from {
                    CurrencySource::Fixed(c) => CCurrency::Fixed(currency(c)?),
                    CurrencySource::Field(f) => CCurrency::Field(self.name(f)),
                },
                date: match date {
                    DateSource::Today => CDate::Today,
                    DateSource::Field(f) => CDate::Field(self.name(f)),
                },
            },
            Op::Lookup { table, default } => COp::Lookup {
                table: *self
                    .table_index
                    .get(table.as_str())
                    .ok_or_else(|| format!("no lookup table {table:?}"))?,
                default: default.clone(),
            },
            Op::Upper => COp::Upper,
            Op::Lower => COp::Lower,
            Op::Trim => COp::Trim,
            Op::Truncate { n } => COp::Truncate(*n),
            Op::Multiply { factor } => COp::Multiply(*factor),
            Op::Add { amount } => COp::Add(*amount),
        })
    }

    fn cond(&mut self, c: &Condition) -> CCond {
        match c {
            Condition::Eq(x) => {
                CCond::Cmp(Ordering::Equal, false, self.name(&x.field), x.value.clone())
            }
            Condition::Ne(x) => CCond::Ne(self.name(&x.field), x.value.clone()),
            Condition::Gt(x) => CCond::Cmp(
                Ordering::Greater,
                true,
                self.name(&x.field),
                x.value.clone(),
            ),
            Condition::Lt(x) => {
                CCond::Cmp(Ordering::Less, true, self.name(&x.field), x.value.clone())
            }
            Condition::In { field, values } => CCond::In(self.name(field), values.clone()),
            Condition::IsNull { field } => CCond::IsNull(self.name(field)),
            Condition::And(cs) => CCond::And(cs.iter().map(|c| self.cond(c)).collect()),
            Condition::Or(cs) => CCond::Or(cs.iter().map(|c| self.cond(c)).collect()),
            Condition::Not(c) => CCond::Not(Box::new(self.cond(c))),
        }
    }
}

impl RuleSet {
    /// Checks the rule set on its own (see [`RuleSet::check`]) and compiles it. Check it
    /// against the systems' schemas with [`RuleSet::validate`] before storing it.
    pub fn compile(&self) -> Result<CompiledRuleSet, Vec<ValidationError>> {
        self.check()?;
        let mut c = Compiler {
            set: self,
            names: HashMap::new(),
            table_index: HashMap::new(),
        };
        let mut tables = Vec::with_capacity(self.tables.len());
        for (i, (name, t)) in self.tables.iter().enumerate() {
            c.table_index.insert(name.as_str(), i);
            tables.push(CTable::new(name, t));
        }
        let mut rates = Rates::default();
        for r in &self.rates {
            // `check` has accepted every currency and rate.
            let (Ok(from), Ok(to)) = (r.from.parse::<Currency>(), r.to.parse::<Currency>()) else {
                continue;
            };
            rates
                .pairs
                .entry((from, to))
                .or_default()
                .push((r.date, r.rate, false));
            if let Some(inv) = Decimal::ONE.checked_div(r.rate) {
                rates
                    .pairs
                    .entry((to, from))
                    .or_default()
                    .push((r.date, inv, true));
            }
        }
        for list in rates.pairs.values_mut() {
            // Direct (false) before inverted (true) on one date; the last of a date wins, so
            // sort inverted first and keep the direct one last.
            list.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)));
        }
        let mut errors = Vec::new();
        let mut rules = Vec::with_capacity(self.rules.len());
        for r in &self.rules {
            let fail = |e: String| ValidationError {
                rule: r.id.clone(),
                field: r.target.clone(),
                kind: ValidationErrorKind::Invalid(e),
            };
            let source = c.expr(&r.source).map_err(fail);
            let ops: Result<Vec<COp>, _> = r.ops.iter().map(|o| c.op(o)).collect();
            match (source, ops.map_err(fail)) {
                (Ok(source), Ok(ops)) => rules.push(CRule {
                    id: FieldName::from(r.id.as_str()),
                    target: FieldName::from(r.target.as_str()),
                    source,
                    ops,
                    when: r.when.as_ref().map(|w| c.cond(w)),
                    default: r.default.clone(),
                }),
                (s, o) => errors.extend(s.err().into_iter().chain(o.err())),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(CompiledRuleSet {
            names: c.names,
            op_count: rules.iter().map(|r| r.ops.len()).sum(),
            direction: self.direction.clone(),
            rules,
            tables,
            rates,
        })
    }
}

fn numeric(op: &'static str, v: &Value) -> Result<Decimal, Fail> {
    v.as_decimal()
        .ok_or(Fail::here(ApplyErrorKind::TypeMismatch {
            op,
            expected: "decimal",
            found: v.type_name(),
        }))
}

fn text(op: &'static str, v: Value) -> Result<Arc<str>, Fail> {
    match v {
        Value::Text(s) => Ok(s),
        other => Err(Fail::here(ApplyErrorKind::TypeMismatch {
            op,
            expected: "text",
            found: other.type_name(),
        })),
    }
}

fn field<'r>(record: &'r Record, slot: &Slot) -> Result<&'r Value, Fail> {
    record
        .get_hinted(&slot.name, &slot.hint)
        .ok_or_else(|| Fail::at(&slot.name, ApplyErrorKind::MissingField))
}

/// Equality across types: numbers compare by value (an integer equals a decimal), other
/// types by value; values of different types are unequal.
fn equal(a: &Value, b: &Value) -> bool {
    match (a.as_decimal(), b.as_decimal()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn compare(name: &FieldName, a: &Value, b: &Value) -> Result<Option<Ordering>, Fail> {
    if a.is_null() || b.is_null() {
        return Ok(None);
    }
    if let (Some(x), Some(y)) = (a.as_decimal(), b.as_decimal()) {
        return Ok(Some(x.cmp(&y)));
    }
    match (a, b) {
        (Value::Text(x), Value::Text(y)) => Ok(Some(x.cmp(y))),
        (Value::Date(x), Value::Date(y)) => Ok(Some(x.cmp(y))),
        _ => Err(Fail::at(
            name,
            ApplyErrorKind::TypeMismatch {
                op: "when",
                expected: b.type_name(),
                found: a.type_name(),
            },
        )),
    }
}

const NULL: Value = Value::Null;

fn eval_cond(c: &CCond, record: &Record) -> Result<bool, Fail> {
    let get = |n: &Slot| record.get_hinted(&n.name, &n.hint).unwrap_or(&NULL);
    Ok(match c {
        CCond::Cmp(Ordering::Equal, false, n, v) => equal(get(n), v),
        CCond::Cmp(ord, _, n, v) => compare(&n.name, get(n), v)? == Some(*ord),
        CCond::Ne(n, v) => !equal(get(n), v),
        CCond::In(n, vs) => {
            let x = get(n);
            vs.iter().any(|v| equal(x, v))
        }
        CCond::IsNull(n) => get(n).is_null(),
        CCond::And(cs) => {
            for c in cs {
                if !eval_cond(c, record)? {
                    return Ok(false);
                }
            }
            true
        }
        CCond::Or(cs) => {
            for c in cs {
                if eval_cond(c, record)? {
                    return Ok(true);
                }
            }
            false
        }
        CCond::Not(c) => !eval_cond(c, record)?,
    })
}

fn eval_expr(e: &CExpr, record: &Record) -> Result<Value, Fail> {
    Ok(match e {
        CExpr::Field(n) => field(record, n)?.clone(),
        CExpr::Literal(v) => v.clone(),
        CExpr::Template(parts) => {
            let mut s = String::with_capacity(64);
            for p in parts {
                match p {
                    TemplatePart::Text(t) => s.push_str(t),
                    TemplatePart::Field(n) => match field(record, n)? {
                        Value::Text(t) => s.push_str(t),
                        v => {
                            let _ = write!(s, "{v}");
                        }
                    },
                }
            }
            Value::Text(s.into())
        }
        CExpr::Concat { parts, separator } => {
            let mut s = String::with_capacity(64);
            let mut first = true;
            for p in parts {
                let v = eval_expr(p, record)?;
                if v.is_null() {
                    continue;
                }
                if !first {
                    s.push_str(separator);
                }
                first = false;
                match v {
                    Value::Text(t) => s.push_str(&t),
                    v => {
                        let _ = write!(s, "{v}");
                    }
                }
            }
            Value::Text(s.into())
        }
    })
}

impl CompiledRuleSet {
    pub fn direction(&self) -> &str {
        &self.direction
    }

    /// The shared name of a source field the rules read (a new one for other names). Records
    /// built with these names are matched by pointer, not by comparing bytes: a flow that
    /// builds many records should take its field names from here once.
    pub fn field_name(&self, name: &str) -> FieldName {
        self.names
            .get(name)
            .cloned()
            .unwrap_or_else(|| FieldName::from(name))
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Applies every rule to `record`, in order.
    pub fn apply(&self, record: &Record, ctx: &Context<'_>) -> Result<Output, ApplyError> {
        let mut out = Output {
            record: Record::with_capacity(self.rules.len()),
            provenance: Vec::with_capacity(self.rules.len()),
            steps: Vec::with_capacity(self.op_count),
        };
        self.apply_into(record, ctx, &mut out)?;
        Ok(out)
    }

    /// Like [`CompiledRuleSet::apply`], into `out` (cleared first), reusing its buffers. On
    /// error `out` holds the targets written before the failing rule.
    pub fn apply_into(
        &self,
        record: &Record,
        ctx: &Context<'_>,
        out: &mut Output,
    ) -> Result<(), ApplyError> {
        out.clear();
        for rule in &self.rules {
            let err = |f: Fail| ApplyError {
                rule: Box::from(&*rule.id),
                target: Box::from(&*rule.target),
                field: Box::from(&**f.field.as_ref().unwrap_or(&rule.target)),
                kind: f.kind,
            };
            if let Some(w) = &rule.when
                && !eval_cond(w, record).map_err(err)?
            {
                if let Some(d) = &rule.default {
                    push_plain(out, rule, Origin::DefaultWhenFalse, d.clone());
                }
                continue;
            }
            let source = match eval_expr(&rule.source, record) {
                Ok(Value::Null)
                | Err(Fail {
                    kind: ApplyErrorKind::MissingField,
                    ..
                }) if rule.default.is_some() => {
                    let d = rule.default.clone().unwrap_or(Value::Null);
                    push_plain(out, rule, Origin::DefaultNoSource, d);
                    continue;
                }
                Ok(Value::Null) => {
                    push_plain(out, rule, Origin::Source, Value::Null);
                    continue;
                }
                Ok(v) => v,
                Err(f) => return Err(err(f)),
            };
            let start = out.steps.len() as u32;
            let mut v = source.clone();
            for op in &rule.ops {
                let (next, fx) = self.apply_op(op, v, record, ctx).map_err(err)?;
                v = next;
                out.steps.push(Step {
                    op: op.name(),
                    value: v.clone(),
                    fx,
                });
            }
            out.record.push_unique(rule.target.clone(), v);
            out.provenance.push(Provenance {
                rule: rule.id.clone(),
                origin: Origin::Source,
                source,
                steps: (start, out.steps.len() as u32),
            });
        }
        Ok(())
    }

    fn apply_op(
        &self,
        op: &COp,
        v: Value,
        record: &Record,
        ctx: &Context<'_>,
    ) -> Result<(Value, Option<FxUsed>), Fail> {
        let name = op.name();
        let overflow = || Fail::here(ApplyErrorKind::Overflow(name));
        let out = match op {
            COp::Vat { add, rate } => {
                let x = numeric(name, &v)?;
                let factor = match rate {
                    CRate::Factor(f) => *f,
                    CRate::Field(n) => {
                        let p = numeric(name, field(record, n)?)
                            .map_err(|f| Fail::at(&n.name, f.kind))?;
                        if !ops::valid_vat(p) {
                            return Err(Fail::at(&n.name, ApplyErrorKind::VatOutOfRange(p)));
                        }
                        ops::vat_factor(p)
                    }
                };
                let r = if *add {
                    x.checked_mul(factor)
                } else {
                    x.checked_div(factor)
                };
                Value::Decimal(r.ok_or_else(overflow)?)
            }
            COp::Round {
                mode,
                step,
                ending,
                dp,
            } => {
                let x = numeric(name, &v)?;
                Value::Decimal(match dp {
                    Some(dp) => {
                        let mut r = x.round_dp_with_strategy(*dp, mode.strategy());
                        r.rescale(step.scale());
                        r
                    }
                    None => ops::round(x, *mode, *step, *ending).ok_or_else(overflow)?,
                })
            }
            COp::Convert { to, from, date } => {
                let x = numeric(name, &v)?;
                let from = match from {
                    CCurrency::Fixed(c) => *c,
                    CCurrency::Field(n) => match field(record, n)? {
                        Value::Text(s) => parse_currency(s).map_err(|_| {
                            Fail::at(&n.name, ApplyErrorKind::UnknownCurrency(s.to_string()))
                        })?,
                        other => {
                            return Err(Fail::at(
                                &n.name,
                                ApplyErrorKind::TypeMismatch {
                                    op: name,
                                    expected: "text",
                                    found: other.type_name(),
                                },
                            ));
                        }
                    },
                };
                let date = match date {
                    CDate::Today => ctx.today,
                    CDate::Field(n) => match field(record, n)? {
                        Value::Date(d) => *d,
                        other => {
                            return Err(Fail::at(
                                &n.name,
                                ApplyErrorKind::TypeMismatch {
                                    op: name,
                                    expected: "date",
                                    found: other.type_name(),
                                },
                            ));
                        }
                    },
                };
                let no_rate = Fail::here(ApplyErrorKind::NoRate {
                    from,
                    to: *to,
                    date,
                });
                // The rule set's own rates when it has the pair (pinned), else the feed.
                let fx = if let Some(own) = self.rates.find(from, *to, date) {
                    own.ok_or(no_rate)?
                } else {
                    match ctx.feed.map(|f| f.find(from, *to, date)) {
                        Some(Ok(fx)) => fx,
                        Some(Err(FeedMiss::Stale {
                            rate_date,
                            max_age_days,
                        })) => {
                            return Err(Fail::here(ApplyErrorKind::StaleRate {
                                from,
                                to: *to,
                                date,
                                rate_date,
                                max_age_days,
                            }));
                        }
                        Some(Err(FeedMiss::None)) | None => return Err(no_rate),
                    }
                };
                let y = x.checked_mul(fx.rate).ok_or_else(overflow)?;
                return Ok((Value::Decimal(y), Some(fx)));
            }
            COp::Lookup { table, default } => {
                let t = &self.tables[*table];
                match t.get(&v).or(default.as_ref()) {
                    Some(found) => found.clone(),
                    None => {
                        return Err(Fail::here(ApplyErrorKind::NoLookupEntry {
                            table: t.name.clone(),
                            key: v.to_string(),
                        }));
                    }
                }
            }
            COp::Upper => Value::Text(text(name, v)?.to_uppercase().into()),
            COp::Lower => Value::Text(text(name, v)?.to_lowercase().into()),
            COp::Trim => {
                let s = text(name, v)?;
                let t = s.trim();
                if t.len() == s.len() {
                    Value::Text(s)
                } else {
                    Value::Text(t.into())
                }
            }
            COp::Truncate(n) => {
                let s = text(name, v)?;
                match s.char_indices().nth(*n) {
                    Some((i, _)) => Value::Text(s[..i].into()),
                    None => Value::Text(s),
                }
            }
            COp::Multiply(f) => {
                Value::Decimal(numeric(name, &v)?.checked_mul(*f).ok_or_else(overflow)?)
            }
            COp::Add(a) => Value::Decimal(numeric(name, &v)?.checked_add(*a).ok_or_else(overflow)?),
        };
        Ok((out, None))
    }
}

/// [`Currency::from_str`] without its allocation for the usual exact upper-case code.
fn parse_currency(s: &str) -> Result<Currency, crate::money::UnitError> {
    const ALL: [Currency; 6] = [
        Currency::Ron,
        Currency::Eur,
        Currency::Sek,
        Currency::Nok,
        Currency::Dkk,
        Currency::Usd,
    ];
    match ALL.iter().find(|c| c.as_str() == s) {
        Some(c) => Ok(*c),
        None => s.parse(),
    }
}

fn push_plain(out: &mut Output, rule: &CRule, origin: Origin, v: Value) {
    let at = out.steps.len() as u32;
    out.record.push_unique(rule.target.clone(), v.clone());
    out.provenance.push(Provenance {
        rule: rule.id.clone(),
        origin,
        source: v,
        steps: (at, at),
    });
}
