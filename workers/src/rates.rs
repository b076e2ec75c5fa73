//! The exchange-rate feed as the workers use it: reading central-bank publications into
//! `fx_rates` ([`parse_rates`], `megzo rates import`) and serving the stored rates to the
//! mapping engine as a [`RateFeed`] ([`RatesCache`]).
//!
//! Accepted publications (detected from the content):
//! - the **ECB**'s euro foreign exchange reference rates (`eurofxref-daily.xml`, or the
//!   90-day / historical XML): `<Cube time="…"><Cube currency="RON" rate="…"/>` → `1 EUR = rate`;
//! - the **BNR**'s reference rates (`nbrfxrates.xml`, or a yearly XML): `<Cube date="…">
//!   <Rate currency="EUR" [multiplier="100"]>…</Rate>` → `multiplier units = rate RON`;
//! - **CSV** with the header `date,base,quote,rate` (a rate set by hand or another source).
//!
//! Currencies the product does not handle are skipped and counted, never guessed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canonical::Currency;
use canonical::mapping::RateFeed;
use chrono::{DateTime, NaiveDate, Utc};
use quick_xml::events::Event;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::db::DbError;
use crate::db::rates::{FxRate, feed_stamp, rates_since};

/// Parsed rates and what was left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedRates {
    pub rates: Vec<FxRate>,
    /// Currency codes skipped because the product does not handle them.
    pub skipped: Vec<String>,
    /// `ecb`, `bnr` or `csv`.
    pub format: &'static str,
}

fn supported(code: &str) -> bool {
    code.parse::<Currency>().is_ok()
}

fn decimal(what: &str, s: &str) -> Result<Decimal, String> {
    let d: Decimal = s
        .trim()
        .parse()
        .map_err(|e| format!("{what}: {s:?} is not a decimal number ({e})"))?;
    if d <= Decimal::ZERO {
        return Err(format!("{what}: {s:?} must be above zero"));
    }
    Ok(d)
}

fn date(what: &str, s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|e| format!("{what}: {s:?} is not a YYYY-MM-DD date ({e})"))
}

/// Reads an ECB or BNR XML publication, or a `date,base,quote,rate` CSV. Errors name the line
/// or element and the value.
pub fn parse_rates(text: &str) -> Result<ParsedRates, String> {
    let head = text.trim_start();
    let parsed = if head.starts_with('<') {
        parse_xml(text)?
    } else {
        parse_csv(text)?
    };
    if parsed.rates.is_empty() {
        return Err(format!(
            "no usable rate in the {} publication (skipped currencies: {})",
            parsed.format,
            if parsed.skipped.is_empty() {
                "none".to_owned()
            } else {
                parsed.skipped.join(", ")
            }
        ));
    }
    Ok(parsed)
}

fn parse_csv(text: &str) -> Result<ParsedRates, String> {
    let mut out = ParsedRates {
        format: "csv",
        ..ParsedRates::default()
    };
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    match lines.next() {
        Some((_, h))
            if h.trim()
                .replace(' ', "")
                .eq_ignore_ascii_case("date,base,quote,rate") => {}
        Some((_, h)) => {
            return Err(format!(
                "not an ECB or BNR XML file, and the CSV header is {h:?}, not \"date,base,quote,rate\""
            ));
        }
        None => return Err("the rates file is empty".into()),
    }
    for (i, line) in lines {
        let at = format!("line {}", i + 1);
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        let [d, base, quote, rate] = cols[..] else {
            return Err(format!("{at}: expected 4 columns, found {}", cols.len()));
        };
        let (base, quote) = (base.to_ascii_uppercase(), quote.to_ascii_uppercase());
        if base == quote {
            return Err(format!("{at}: {base}→{quote} is not a pair"));
        }
        let mut ok = true;
        for c in [&base, &quote] {
            if !supported(c) {
                out.skipped.push(c.clone());
                ok = false;
            }
        }
        let (d, rate) = (date(&at, d)?, decimal(&at, rate)?);
        if ok {
            out.rates.push(FxRate {
                date: d,
                base,
                quote,
                rate,
                source: "csv".into(),
            });
        }
    }
    out.skipped.sort();
    out.skipped.dedup();
    Ok(out)
}

fn parse_xml(text: &str) -> Result<ParsedRates, String> {
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut out = ParsedRates::default();
    let mut day: Option<NaiveDate> = None;
    // BNR: the currency and multiplier of the <Rate> being read.
    let mut bnr_rate: Option<(String, Decimal)> = None;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| format!("not valid XML at byte {}: {e}", reader.buffer_position()))?;
        match ev {
            Event::Start(e) | Event::Empty(e) => {
                let name = e.local_name();
                let attr = |key: &[u8]| -> Result<Option<String>, String> {
                    for a in e.attributes() {
                        let a = a.map_err(|e| format!("bad XML attribute: {e}"))?;
                        if a.key.local_name().as_ref() == key {
                            let v = a
                                .unescape_value()
                                .map_err(|e| format!("bad XML attribute value: {e}"))?;
                            return Ok(Some(v.into_owned()));
                        }
                    }
                    Ok(None)
                };
                match name.as_ref() {
                    b"Cube" => {
                        if let Some(t) = attr(b"time")? {
                            out.format = "ecb";
                            day = Some(date("ECB <Cube time>", &t)?);
                        } else if let Some(t) = attr(b"date")? {
                            out.format = "bnr";
                            day = Some(date("BNR <Cube date>", &t)?);
                        } else if let (Some(c), Some(r)) = (attr(b"currency")?, attr(b"rate")?) {
                            let d = day.ok_or("ECB <Cube currency> outside a dated <Cube time>")?;
                            let c = c.to_ascii_uppercase();
                            if supported(&c) && c != "EUR" {
                                out.rates.push(FxRate {
                                    date: d,
                                    base: "EUR".into(),
                                    rate: decimal(&format!("ECB {c} rate on {d}"), &r)?,
                                    quote: c,
                                    source: "ecb".into(),
                                });
                            } else if c != "EUR" {
                                out.skipped.push(c);
                            }
                        }
                    }
                    b"Rate" => {
                        let c = attr(b"currency")?
                            .ok_or("BNR <Rate> without a currency attribute")?
                            .to_ascii_uppercase();
                        let m = match attr(b"multiplier")? {
                            Some(m) => decimal(&format!("BNR {c} multiplier"), &m)?,
                            None => Decimal::ONE,
                        };
                        bnr_rate = Some((c, m));
                    }
                    _ => {}
                }
            }
            Event::Text(t) => {
                if let Some((c, m)) = bnr_rate.take() {
                    let d = day.ok_or("BNR <Rate> outside a dated <Cube date>")?;
                    let raw = t
                        .decode()
                        .map_err(|e| format!("BNR {c} rate on {d}: {e}"))?
                        .into_owned();
                    let per_unit = decimal(&format!("BNR {c} rate on {d}"), &raw)? / m;
                    if supported(&c) && c != "RON" {
                        out.rates.push(FxRate {
                            date: d,
                            base: c,
                            quote: "RON".into(),
                            rate: per_unit,
                            source: "bnr".into(),
                        });
                    } else if c != "RON" {
                        out.skipped.push(c);
                    }
                }
            }
            Event::End(e) if e.local_name().as_ref() == b"Rate" => bnr_rate = None,
            Event::Eof => break,
            _ => {}
        }
    }
    if out.format.is_empty() {
        return Err(
            "XML, but neither the ECB's <Cube time> nor the BNR's <Cube date> layout".into(),
        );
    }
    out.skipped.sort();
    out.skipped.dedup();
    Ok(out)
}

/// How the workers use the feed (the `[mapping]` section of the configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MappingConfig {
    /// A feed rate older than this many days before the conversion date is refused (the item
    /// fails naming the pair and the date) rather than used.
    pub rate_max_age_days: u32,
    /// How often a worker looks for newly imported rates.
    pub rate_refresh_secs: u64,
    /// Days of history loaded (conversions dated from a source field may look back).
    pub rate_history_days: u32,
}

impl Default for MappingConfig {
    fn default() -> Self {
        Self {
            rate_max_age_days: 7,
            rate_refresh_secs: 30,
            rate_history_days: 400,
        }
    }
}

struct Loaded {
    stamp: (Option<DateTime<Utc>>, i64),
    feed: Arc<RateFeed>,
    checked: Instant,
}

/// Per-process cache of the feed: reloaded when an import changed it (checked at most every
/// `rate_refresh_secs`). Cheap to clone.
#[derive(Clone)]
pub struct RatesCache {
    pool: PgPool,
    cfg: MappingConfig,
    loaded: Arc<Mutex<Option<Loaded>>>,
}

impl std::fmt::Debug for RatesCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RatesCache")
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl RatesCache {
    pub fn new(pool: PgPool, cfg: MappingConfig) -> Self {
        Self {
            pool,
            cfg,
            loaded: Arc::default(),
        }
    }

    /// The feed as of now (or of the last check within `rate_refresh_secs`).
    pub async fn feed(&self) -> Result<Arc<RateFeed>, DbError> {
        let fresh_for = Duration::from_secs(self.cfg.rate_refresh_secs);
        if let Some(l) = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            && l.checked.elapsed() < fresh_for
        {
            return Ok(l.feed.clone());
        }
        let stamp = feed_stamp(&self.pool).await?;
        {
            let mut guard = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(l) = guard.as_mut()
                && l.stamp == stamp
            {
                l.checked = Instant::now();
                return Ok(l.feed.clone());
            }
        }
        let since =
            Utc::now().date_naive() - chrono::Days::new(u64::from(self.cfg.rate_history_days));
        let mut feed = RateFeed::new(self.cfg.rate_max_age_days);
        for r in rates_since(&self.pool, since).await? {
            let (Ok(b), Ok(q)) = (r.rate.base.parse(), r.rate.quote.parse()) else {
                continue;
            };
            if let Err(e) = feed.insert(r.rate.date, b, q, r.rate.rate) {
                tracing::warn!(error = %e, "skipping a stored rate");
            }
        }
        let feed = Arc::new(feed);
        tracing::info!(rates = feed.len(), "exchange-rate feed loaded");
        *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = Some(Loaded {
            stamp,
            feed: feed.clone(),
            checked: Instant::now(),
        });
        Ok(feed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    const ECB: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">
  <gesmes:subject>Reference rates</gesmes:subject>
  <Cube>
    <Cube time="2026-11-20">
      <Cube currency="USD" rate="1.0812"/>
      <Cube currency="JPY" rate="163.40"/>
      <Cube currency="SEK" rate="11.1500"/>
      <Cube currency="RON" rate="5.0850"/>
    </Cube>
  </Cube>
</gesmes:Envelope>"#;

    const BNR: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<DataSet xmlns="http://www.bnr.ro/xsd">
  <Header><Publisher>National Bank of Romania</Publisher></Header>
  <Body>
    <Subject>Reference rates</Subject>
    <OrigCurrency>RON</OrigCurrency>
    <Cube date="2026-11-20">
      <Rate currency="EUR">5.0850</Rate>
      <Rate currency="HUF" multiplier="100">1.2990</Rate>
      <Rate currency="SEK">0.4561</Rate>
      <Rate currency="DKK">0.6812</Rate>
    </Cube>
  </Body>
</DataSet>"#;

    #[test]
    fn ecb_rates_are_eur_based_and_unknown_currencies_skipped() {
        let p = parse_rates(ECB).unwrap();
        assert_eq!(p.format, "ecb");
        assert_eq!(p.skipped, ["JPY"]);
        let pairs: Vec<_> = p
            .rates
            .iter()
            .map(|r| (r.base.as_str(), r.quote.as_str(), r.rate))
            .collect();
        assert_eq!(
            pairs,
            [
                ("EUR", "USD", dec!(1.0812)),
                ("EUR", "SEK", dec!(11.1500)),
                ("EUR", "RON", dec!(5.0850))
            ]
        );
        assert!(p.rates.iter().all(|r| r.date.to_string() == "2026-11-20"));
    }

    #[test]
    fn bnr_rates_are_ron_quoted_per_unit() {
        let p = parse_rates(BNR).unwrap();
        assert_eq!(p.format, "bnr");
        assert_eq!(p.skipped, ["HUF"]);
        let sek = p.rates.iter().find(|r| r.base == "SEK").unwrap();
        assert_eq!((sek.quote.as_str(), sek.rate), ("RON", dec!(0.4561)));
        assert_eq!(p.rates.len(), 3);
    }

    #[test]
    fn csv_and_bad_inputs_are_named() {
        let p = parse_rates("date,base,quote,rate\n2026-11-20,eur,ron,5.085\n").unwrap();
        assert_eq!(p.rates[0].base, "EUR");
        for (text, needle) in [
            ("", "empty"),
            ("when,from,to\n", "CSV header"),
            (
                "date,base,quote,rate\n2026-11-20,EUR,RON\n",
                "line 2: expected 4 columns",
            ),
            (
                "date,base,quote,rate\n2026-13-20,EUR,RON,5\n",
                "line 2: \"2026-13-20\"",
            ),
            (
                "date,base,quote,rate\n2026-11-20,EUR,RON,-5\n",
                "must be above zero",
            ),
            ("date,base,quote,rate\n2026-11-20,EUR,EUR,1\n", "not a pair"),
            (
                "date,base,quote,rate\n2026-11-20,GBP,JPY,1\n",
                "no usable rate",
            ),
            ("<html><body>maintenance</body></html>", "neither the ECB"),
            (
                "<Cube><Cube time=\"2026-11-20\"><Cube currency=\"RON\" rate=\"abc\"/></Cube></Cube>",
                "ECB RON rate",
            ),
            ("<Cube><Cube time=\"2026-11-20\">", "no usable rate"),
        ] {
            let e = parse_rates(text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
