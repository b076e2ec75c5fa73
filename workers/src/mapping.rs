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
