//! The exchange-rate feed (`fx_rates`): dated rates imported from a central bank's publication
//! or set by hand, read by the workers into a [`canonical::mapping::RateFeed`].

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;

use super::DbError;

/// One published rate: `1 base = rate quote` on `date`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FxRate {
    pub date: NaiveDate,
    pub base: String,
    pub quote: String,
    pub rate: Decimal,
    pub source: String,
}

/// A stored rate and when it was imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFxRate {
    pub rate: FxRate,
    pub imported_at: DateTime<Utc>,
}

/// Stores rates in one statement; a rate of the same day and pair replaces the stored one.
/// Returns how many rows were written.
pub async fn upsert_rates(pool: &PgPool, rates: &[FxRate]) -> Result<u64, DbError> {
    if rates.is_empty() {
        return Ok(0);
    }
    for r in rates {
        if r.rate <= Decimal::ZERO {
            return Err(DbError::Invalid {
                what: "exchange rate",
                value: format!("{} {}→{} {}", r.date, r.base, r.quote, r.rate),
                reason: "must be above zero".into(),
            });
        }
    }
    let dates: Vec<NaiveDate> = rates.iter().map(|r| r.date).collect();
    let bases: Vec<String> = rates.iter().map(|r| r.base.clone()).collect();
    let quotes: Vec<String> = rates.iter().map(|r| r.quote.clone()).collect();
    let values: Vec<Decimal> = rates.iter().map(|r| r.rate).collect();
    let sources: Vec<String> = rates.iter().map(|r| r.source.clone()).collect();
    let done = sqlx::query!(
        "INSERT INTO fx_rates (rate_date, base, quote, rate, source)
         SELECT * FROM UNNEST($1::date[], $2::text[], $3::text[], $4::numeric[], $5::text[])
         ON CONFLICT (rate_date, base, quote)
         DO UPDATE SET rate = EXCLUDED.rate, source = EXCLUDED.source, imported_at = now()",
        &dates,
        &bases,
        &quotes,
        &values,
        &sources,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Every rate published on or after `since`, oldest first.
pub async fn rates_since(pool: &PgPool, since: NaiveDate) -> Result<Vec<StoredFxRate>, DbError> {
    let rows = sqlx::query!(
        "SELECT rate_date, base, quote, rate, source, imported_at FROM fx_rates
         WHERE rate_date >= $1 ORDER BY rate_date, base, quote",
        since
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| StoredFxRate {
            rate: FxRate {
                date: r.rate_date,
                base: r.base,
                quote: r.quote,
                // numeric(28,10) pads to 10 places: give back the number as published.
                rate: r.rate.normalize(),
                source: r.source,
            },
            imported_at: r.imported_at,
        })
        .collect())
}

/// What changes whenever the feed changes: the latest import time and the row count.
pub async fn feed_stamp(pool: &PgPool) -> Result<(Option<DateTime<Utc>>, i64), DbError> {
    let r =
        sqlx::query!(r#"SELECT max(imported_at) AS "latest", count(*) AS "rows!" FROM fx_rates"#)
            .fetch_one(pool)
            .await?;
    Ok((r.latest, r.rows))
}
