//! The **rates feed**: dated exchange rates published outside the rule set (a central bank's
//! daily reference rates, loaded by the workers from Postgres). A conversion uses the rule set's
//! own `rates` for a pair when it has any (the merchant pinned them) and the feed otherwise, so
//! a default rule set carries no rate that could go stale.
//!
//! The feed answers a pair directly, inverted (`1 / rate` of the opposite pair), or crossed
//! through a pivot currency (RON→SEK through EUR with the ECB's EUR-based table), taking the
//! newest answer on or before the date asked for. A derived rate is rounded to 10 decimal
//! places **before** it is used, so the recorded rate reproduces the converted value exactly.
//! A rate older than the feed's `max_age_days` is refused rather than used: a price computed
//! from a months-old rate is worse than a failed job that says why.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::engine::{FxUsed, RateOrigin};
use crate::money::Currency;

/// Decimal places of a derived (inverted or crossed) rate.
pub const DERIVED_RATE_DP: u32 = 10;

/// Dated rates from outside the rule set. See the module docs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateFeed {
    /// `(base, quote)` → date → `1 base = rate quote`, as published.
    pairs: HashMap<(Currency, Currency), BTreeMap<NaiveDate, Decimal>>,
    /// A rate older than this many days before the date asked for is stale.
    max_age_days: u32,
}

/// Why the feed has no usable rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedMiss {
    /// No rate for the pair (directly, inverted or through a pivot) on or before the date.
    None,
    /// The newest rate is older than the feed allows.
    Stale {
        rate_date: NaiveDate,
        max_age_days: u32,
    },
}

impl RateFeed {
    /// An empty feed refusing rates older than `max_age_days` (days before the date asked for).
    pub fn new(max_age_days: u32) -> Self {
        Self {
            pairs: HashMap::new(),
            max_age_days,
        }
    }

    pub fn max_age_days(&self) -> u32 {
        self.max_age_days
    }

    /// Adds `1 base = rate quote` published for `date` (a later insert of the same day and pair
    /// replaces the earlier one). Refuses a non-positive rate or a pair of one currency.
    pub fn insert(
        &mut self,
        date: NaiveDate,
        base: Currency,
        quote: Currency,
        rate: Decimal,
    ) -> Result<(), String> {
        if base == quote {
            return Err(format!("{base}→{quote} is not a pair"));
        }
        if rate <= Decimal::ZERO {
            return Err(format!("{base}→{quote} rate must be positive, got {rate}"));
        }
        self.pairs
            .entry((base, quote))
            .or_default()
            .insert(date, rate);
        Ok(())
    }

    /// Number of published (date, pair) entries.
    pub fn len(&self) -> usize {
        self.pairs.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Every ordered pair the feed can answer on some date (directly, inverted or crossed).
    pub fn reachable_pairs(&self) -> BTreeSet<(Currency, Currency)> {
        let mut direct = BTreeSet::new();
        for &(a, b) in self.pairs.keys() {
            direct.insert((a, b));
            direct.insert((b, a));
        }
        let mut all = direct.clone();
        for &(a, p) in &direct {
            for &(p2, b) in &direct {
                if p == p2 && a != b {
                    all.insert((a, b));
                }
            }
        }
        all
    }

    /// The newest rate on or before `date` for one published pair, either way round.
    fn one_leg(
        &self,
        from: Currency,
        to: Currency,
        date: NaiveDate,
    ) -> Option<(NaiveDate, Decimal, bool)> {
        let latest = |pair| {
            self.pairs
                .get(&pair)
                .and_then(|m: &BTreeMap<NaiveDate, Decimal>| m.range(..=date).next_back())
                .map(|(d, r)| (*d, *r))
        };
        let direct = latest((from, to)).map(|(d, r)| (d, r, false));
        let inverse = latest((to, from)).and_then(|(d, r)| {
            Some((
                d,
                Decimal::ONE.checked_div(r)?.round_dp(DERIVED_RATE_DP),
                true,
            ))
        });
        match (direct, inverse) {
            (Some(a), Some(b)) => Some(if b.0 > a.0 { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// The rate for `from → to` on or before `date`: see the module docs.
    pub fn find(&self, from: Currency, to: Currency, date: NaiveDate) -> Result<FxUsed, FeedMiss> {
        let mut best: Option<FxUsed> = None;
        let mut consider = |fx: FxUsed| {
            // Newest wins; on a tie the earlier candidate (direct before crossed) stays.
            if best.is_none_or(|b| fx.rate_date > b.rate_date) {
                best = Some(fx);
            }
        };
        if let Some((d, rate, inverted)) = self.one_leg(from, to, date) {
            consider(FxUsed {
                from,
                to,
                rate,
                rate_date: d,
                requested: date,
                inverted,
                origin: RateOrigin::Feed,
                via: None,
            });
        }
        let pivots: BTreeSet<Currency> = self
            .pairs
            .keys()
            .flat_map(|&(a, b)| [a, b])
            .filter(|c| *c != from && *c != to)
            .collect();
        for p in pivots {
            let (Some(a), Some(b)) = (self.one_leg(from, p, date), self.one_leg(p, to, date))
            else {
                continue;
            };
            let Some(rate) = a.1.checked_mul(b.1) else {
                continue;
            };
            consider(FxUsed {
                from,
                to,
                rate: rate.round_dp(DERIVED_RATE_DP),
                rate_date: a.0.min(b.0),
                requested: date,
                inverted: false,
                origin: RateOrigin::Feed,
                via: Some(p),
            });
        }
        let fx = best.ok_or(FeedMiss::None)?;
        if (date - fx.rate_date).num_days() > i64::from(self.max_age_days) {
            return Err(FeedMiss::Stale {
                rate_date: fx.rate_date,
                max_age_days: self.max_age_days,
            });
        }
        Ok(fx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// The ECB publishes EUR-based rates; BNR publishes RON-based ones.
    fn ecb() -> RateFeed {
        let mut f = RateFeed::new(7);
        f.insert(d("2026-11-20"), Currency::Eur, Currency::Ron, dec!(5.0850))
            .unwrap();
        f.insert(d("2026-11-20"), Currency::Eur, Currency::Sek, dec!(11.1500))
            .unwrap();
        f.insert(d("2026-11-19"), Currency::Eur, Currency::Sek, dec!(11.2000))
            .unwrap();
        f
    }

    #[test]
    fn direct_inverse_and_crossed_rates() {
        let f = ecb();
        let direct = f
            .find(Currency::Eur, Currency::Sek, d("2026-11-22"))
            .unwrap();
        assert_eq!(
            (direct.rate, direct.rate_date, direct.inverted),
            (dec!(11.1500), d("2026-11-20"), false)
        );
        let older = f
            .find(Currency::Eur, Currency::Sek, d("2026-11-19"))
            .unwrap();
        assert_eq!(older.rate, dec!(11.2000));

        let inv = f
            .find(Currency::Ron, Currency::Eur, d("2026-11-22"))
            .unwrap();
        assert!(inv.inverted);
        assert_eq!(
            inv.rate,
            (Decimal::ONE / dec!(5.0850)).round_dp(DERIVED_RATE_DP)
        );

        let cross = f
            .find(Currency::Ron, Currency::Sek, d("2026-11-22"))
            .unwrap();
        assert_eq!(cross.via, Some(Currency::Eur));
        assert_eq!(cross.origin, RateOrigin::Feed);
        let expected = ((Decimal::ONE / dec!(5.0850)).round_dp(DERIVED_RATE_DP) * dec!(11.15))
            .round_dp(DERIVED_RATE_DP);
        assert_eq!(cross.rate, expected);
        // About 2.19 SEK per RON.
        assert!(
            cross.rate > dec!(2.19) && cross.rate < dec!(2.20),
            "{}",
            cross.rate
        );
    }

    #[test]
    fn nothing_before_the_first_publication_and_stale_after_max_age() {
        let f = ecb();
        assert_eq!(
            f.find(Currency::Eur, Currency::Ron, d("2026-11-18")),
            Err(FeedMiss::None)
        );
        assert_eq!(
            f.find(Currency::Eur, Currency::Ron, d("2026-11-28")),
            Err(FeedMiss::Stale {
                rate_date: d("2026-11-20"),
                max_age_days: 7
            })
        );
        assert!(
            f.find(Currency::Eur, Currency::Ron, d("2026-11-27"))
                .is_ok()
        );
        assert_eq!(
            f.find(Currency::Eur, Currency::Usd, d("2026-11-22")),
            Err(FeedMiss::None)
        );
    }

    #[test]
    fn bad_entries_refused_and_reachable_pairs_include_crosses() {
        let mut f = ecb();
        assert!(
            f.insert(d("2026-11-20"), Currency::Eur, Currency::Eur, dec!(1))
                .is_err()
        );
        assert!(
            f.insert(d("2026-11-20"), Currency::Eur, Currency::Nok, dec!(0))
                .is_err()
        );
        let pairs = f.reachable_pairs();
        for p in [
            (Currency::Eur, Currency::Ron),
            (Currency::Ron, Currency::Eur),
            (Currency::Ron, Currency::Sek),
            (Currency::Sek, Currency::Ron),
        ] {
            assert!(pairs.contains(&p), "{p:?}");
        }
        assert!(!pairs.contains(&(Currency::Ron, Currency::Nok)));
        assert_eq!(f.len(), 3);
    }
}
