//! The active field-mapping rule sets as the workers use them: **live without a restart**. Each
//! job asks [`MappingCache::active`] for its connection's rule set; that costs one indexed read
//! of the active version number, and the rule set is parsed and compiled again only when the
//! number changed (an operator activated or rolled back a version). The version returned is the
//! one the job applied, for its run record.
//!
//! Also here: **validation on save** against the connection's systems ([`schemas`],
//! [`validate_for`], [`save_validated`]), the **defaults** per seed pair ([`defaults`],
//! [`install_defaults`]) and the **preview** of a draft against the active version.

pub mod defaults;
pub mod files;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use canonical::ConnectionId;
use canonical::mapping::{CompiledRuleSet, RateFeed, RuleSet, Schema, ValidationError};
use connectors::ConnectorError;
use connectors::mapping::{
    ErpLineTarget, ListingTarget, catalog_source_schema, order_line_source_schema,
};
use sqlx::PgPool;

use crate::db::mappings::{
    Direction, activate_mapping, active_mapping, list_mappings, save_mapping,
};
use crate::db::{Connection, DbError};

/// The listing target of a connection's marketplace, as its settings configure it.
pub fn connectors_target(conn: &Connection) -> Result<ListingTarget, ConnectorError> {
    let settings = conn.settings.as_object().cloned().unwrap_or_default();
    ListingTarget::of(conn.marketplace, &settings)
}

/// The source and target schemas a rule set of `direction` for `conn` is validated against;
/// `None` for a side that declares none (the no-op connector takes anything).
pub fn schemas(
    conn: &Connection,
    direction: Direction,
) -> Result<(Option<Schema>, Option<Schema>), ConnectorError> {
    Ok(match direction {
        Direction::ErpToMarketplace => (
            Some(catalog_source_schema(conn.erp)),
            connectors_target(conn)?.schema(),
        ),
        Direction::MarketplaceToErp => (
            Some(order_line_source_schema(conn.marketplace)),
            ErpLineTarget { erp: conn.erp }.schema(),
        ),
    })
}

/// Why a rule set was refused on save. Every validation error names its rule and field.
#[derive(Debug, thiserror::Error)]
pub enum RuleSetRejected {
    #[error("not a rule set: {0}")]
    Parse(String),
    #[error("unknown direction {0:?} (erp_to_marketplace or marketplace_to_erp)")]
    Direction(String),
    #[error("the connection's settings do not configure its systems: {0}")]
    Settings(String),
    #[error("{}", Invalid(.0))]
    Invalid(Vec<ValidationError>),
}

struct Invalid<'a>(&'a [ValidationError]);

impl fmt::Display for Invalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error(s):", self.0.len())?;
        for e in self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

/// Validation on save: the rule set parses, compiles, fits the connection's source and target
/// schemas (unknown fields, types, required targets, lookups covering enumerated values), and
/// every conversion has a rate in the set or the `feed`.
pub fn validate_for(
    conn: &Connection,
    json: &serde_json::Value,
    feed: &RateFeed,
) -> Result<(Direction, RuleSet), RuleSetRejected> {
    let set: RuleSet =
        serde_json::from_value(json.clone()).map_err(|e| RuleSetRejected::Parse(e.to_string()))?;
    let direction: Direction = set
        .direction
        .parse()
        .map_err(|_| RuleSetRejected::Direction(set.direction.clone()))?;
    let (source, target) =
        schemas(conn, direction).map_err(|e| RuleSetRejected::Settings(e.to_string()))?;
    set.validate_with_feed(source.as_ref(), target.as_ref(), feed)
        .map_err(RuleSetRejected::Invalid)?;
    set.compile().map_err(RuleSetRejected::Invalid)?;
    Ok((direction, set))
}

/// Why saving failed.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error(transparent)]
    Rejected(#[from] RuleSetRejected),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Validates `json` for `conn` ([`validate_for`]) and saves it as the connection's next
/// version of its direction (not active yet). Returns the direction and version.
pub async fn save_validated(
    pool: &PgPool,
    conn: &Connection,
    json: &serde_json::Value,
    feed: &RateFeed,
    author: &str,
    comment: &str,
) -> Result<(Direction, i32), SaveError> {
    let (direction, _) = validate_for(conn, json, feed)?;
    let v = save_mapping(pool, conn.id, direction, json, author, comment).await?;
    Ok((direction, v))
}

/// Saves and activates the connection's default rule sets ([`defaults`]) in each direction
/// that has a default and no saved version yet. Returns what it activated. The defaults are
/// checked against the schemas first (not against the feed: rates may be imported later, and a
/// conversion without one fails its item naming the pair).
pub async fn install_defaults(
    pool: &PgPool,
    conn: &Connection,
    actor: &str,
) -> Result<Vec<(Direction, i32)>, SaveError> {
    let mut done = Vec::new();
    for direction in [Direction::ErpToMarketplace, Direction::MarketplaceToErp] {
        let set = defaults::default_rule_set(conn, direction).map_err(RuleSetRejected::Settings)?;
        let Some(set) = set else { continue };
        if !list_mappings(pool, conn.id, direction).await?.is_empty() {
            continue;
        }
        let (source, target) =
            schemas(conn, direction).map_err(|e| RuleSetRejected::Settings(e.to_string()))?;
        set.validate_schemas(source.as_ref(), target.as_ref())
            .map_err(RuleSetRejected::Invalid)?;
        let json = serde_json::to_value(&set).map_err(|e| RuleSetRejected::Parse(e.to_string()))?;
        let comment = format!("defaults for {} → {}", conn.erp, conn.marketplace);
        let v = save_mapping(pool, conn.id, direction, &json, actor, &comment).await?;
        activate_mapping(pool, conn.id, direction, v, actor, &comment).await?;
        done.push((direction, v));
    }
    Ok(done)
}

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
                .unwrap_or_else(|e| e.into_inner())
                .remove(&(connection, direction));
            return Ok(None);
        };
        if let Some(hit) = self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(connection, direction))
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
            .unwrap_or_else(|e| e.into_inner())
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

/// The first `limit` catalog items of the connection's ERP, as mapping records (the no-op ERP's
/// demo catalog for a no-op connection). Reading a real ERP needs the credential keys.
pub async fn catalog_sample(
    pool: &PgPool,
    vault: Option<&crate::vault::Vault>,
    conn: &Connection,
    limit: usize,
) -> anyhow::Result<Vec<canonical::mapping::Record>> {
    use anyhow::Context as _;
    let items = if conn.erp == canonical::Erp::Noop {
        connectors::noop::demo_catalog()
    } else {
        let creds = match vault {
            Some(v) => crate::db::load_credentials(pool, v, conn.id).await?,
            None => None,
        };
        let settings = conn.settings.as_object().cloned().unwrap_or_default();
        let erp =
            crate::connect::erp(conn.erp, &settings, creds.as_ref(), None)?.with_context(|| {
                format!("{} has no catalog to sample: pass --sample FILE", conn.erp)
            })?;
        erp.catalog()
            .await
            .with_context(|| format!("reading the {} catalog (or pass --sample FILE)", conn.erp))?
    };
    Ok(items
        .iter()
        .take(limit)
        .map(|i| connectors::mapping::catalog_record(i, None))
        .collect())
}
