//! The active field-mapping rule sets as the workers use them: **live without a restart**. Each
//! job asks [`MappingCache::active`] for its connection's rule set; that costs one indexed read
//! of the active version number, and the rule set is parsed and compiled again only when the
//! number changed (an operator activated or rolled back a version). The version returned is the
//! one the job applied, for its run record.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use canonical::ConnectionId;
use canonical::mapping::{CompiledRuleSet, RuleSet};
use sqlx::PgPool;

use crate::db::DbError;
use crate::db::mappings::{Direction, active_mapping};

/// Why the active rule set cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// The stored version does not parse or compile (saved before a stricter engine, or edited
    /// outside the product): activate another version.
    #[error(
        "{direction} mapping version {version} of connection {connection} is unusable: {reason}"
    )]
    Unusable {
        connection: ConnectionId,
        direction: Direction,
        version: i32,
        reason: String,
    },
}

/// A compiled active rule set and its version.
#[derive(Debug, Clone)]
pub struct ActiveRules {
    pub version: i32,
    pub rules: Arc<CompiledRuleSet>,
}

/// Per-process cache of compiled active rule sets. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MappingCache {
    pool: PgPool,
    entries: Arc<Mutex<HashMap<(ConnectionId, Direction), ActiveRules>>>,
}

impl MappingCache {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            entries: Arc::default(),
        }
    }

    /// The active rule set of `connection` in `direction` now (`None`: none activated).
    pub async fn active(
        &self,
        connection: ConnectionId,
        direction: Direction,
    ) -> Result<Option<ActiveRules>, MappingError> {
        let current = sqlx::query_scalar!(
            "SELECT version FROM mapping_active WHERE connection_id = $1 AND direction = $2",
            connection.0,
            direction.as_str(),
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(DbError::from)?;
        let Some(version) = current else {
            self.entries
                .lock()
                .unwrap()
                .remove(&(connection, direction));
            return Ok(None);
        };
        if let Some(hit) = self.entries.lock().unwrap().get(&(connection, direction))
            && hit.version == version
        {
            return Ok(Some(hit.clone()));
        }
        // Changed (or first use): load and compile what is active now, which may already be
        // newer than `version`.
        let Some(stored) = active_mapping(&self.pool, connection, direction).await? else {
            return Ok(None);
        };
        let unusable = |reason: String| MappingError::Unusable {
            connection,
            direction,
            version: stored.version,
            reason,
        };
        let set: RuleSet = serde_json::from_value(stored.rules.clone())
            .map_err(|e| unusable(format!("it does not parse: {e}")))?;
        let compiled = set.compile().map_err(|errors| {
            let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
            unusable(shown.join("; "))
        })?;
        let active = ActiveRules {
            version: stored.version,
            rules: Arc::new(compiled),
        };
        tracing::info!(
            %connection,
            direction = direction.as_str(),
            version = stored.version,
            "mapping rule set loaded"
        );
        self.entries
            .lock()
            .unwrap()
            .insert((connection, direction), active.clone());
        Ok(Some(active))
    }
}

/// One difference a draft rule set makes for one sample record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDiff {
    /// The record's `sku` (or its position in the sample).
    pub item: String,
    pub field: String,
    /// `None`: the field is absent on that side (or that side failed, see `errors`).
    pub active: Option<String>,
    pub draft: Option<String>,
}

/// What activating a draft would change on a sample.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preview {
    pub items: usize,
    pub diffs: Vec<FieldDiff>,
    /// Items the draft cannot map, with the error (naming rule and field).
    pub draft_errors: Vec<(String, String)>,
}

/// Applies `draft` and the `active` rule set (if any) to every sample record and lists the
/// fields whose values differ, per item.
pub fn preview(
    draft: &CompiledRuleSet,
    active: Option<&CompiledRuleSet>,
    samples: &[canonical::mapping::Record],
    ctx: &canonical::mapping::Context,
) -> Preview {
    let mut out = Preview {
        items: samples.len(),
        ..Preview::default()
    };
    for (i, rec) in samples.iter().enumerate() {
        let item = rec
            .get("sku")
            .map(ToString::to_string)
            .unwrap_or_else(|| format!("#{}", i + 1));
        let fields = |o: &canonical::mapping::Output| -> Vec<(String, String)> {
            o.record
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_string()))
                .collect()
        };
        let new = match draft.apply(rec, ctx) {
            Ok(o) => fields(&o),
            Err(e) => {
                out.draft_errors.push((item, e.to_string()));
                continue;
            }
        };
        let old = active
            .and_then(|a| a.apply(rec, ctx).ok())
            .map(|o| fields(&o))
            .unwrap_or_default();
        let mut names: Vec<&String> = new.iter().chain(old.iter()).map(|(k, _)| k).collect();
        names.sort();
        names.dedup();
        for name in names {
            let find =
                |v: &[(String, String)]| v.iter().find(|(k, _)| k == name).map(|(_, x)| x.clone());
            let (a, d) = (find(&old), find(&new));
            if a != d {
                out.diffs.push(FieldDiff {
                    item: item.clone(),
                    field: name.clone(),
                    active: a,
                    draft: d,
                });
            }
        }
    }
    out
}

/// Sample records from plain JSON objects: `YYYY-MM-DD` strings are dates, other strings text,
/// whole numbers integers, other numbers decimals, booleans booleans, `null` null. Anything else
/// is refused naming the item and field.
pub fn records_from_json(v: &serde_json::Value) -> Result<Vec<canonical::mapping::Record>, String> {
    use canonical::mapping::{Record, Value};
    let items = v
        .as_array()
        .ok_or("the sample must be a JSON array of objects")?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let obj = item
                .as_object()
                .ok_or_else(|| format!("sample item #{} is not an object", i + 1))?;
            let mut r = Record::with_capacity(obj.len());
            for (k, v) in obj {
                let value = match v {
                    serde_json::Value::String(s) => {
                        match chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                            Ok(d) if s.len() == 10 => Value::from(d),
                            _ => Value::from(s.as_str()),
                        }
                    }
                    serde_json::Value::Number(n) if n.is_i64() => {
                        Value::from(n.as_i64().unwrap_or_default())
                    }
                    serde_json::Value::Bool(b) => Value::from(*b),
                    serde_json::Value::Null => Value::Null,
                    serde_json::Value::Number(n) => n
                        .to_string()
                        .parse::<rust_decimal::Decimal>()
                        .or_else(|_| rust_decimal::Decimal::from_scientific(&n.to_string()))
                        .map(Value::from)
                        .map_err(|e| format!("sample item #{}, field `{k}`: {e}", i + 1))?,
                    _ => {
                        return Err(format!(
                            "sample item #{}, field `{k}`: nested values are not fields",
                            i + 1
                        ));
                    }
                };
                r.insert(k.as_str(), value);
            }
            Ok(r)
        })
        .collect()
}
