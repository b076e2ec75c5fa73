//! CDON connector settings and credentials.
//!
//! [`Config`] is plain data (serde, unknown keys refused, every field defaulted) checked by
//! [`Config::validate`] before a client is built. [`Credentials`] hold the merchant id and the
//! access token; neither is ever printed (`Debug` is redacted, errors name fields, not values).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use canonical::Country;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::SYSTEM;
use super::convert::{APPROVED_CARRIERS, LANGUAGES, MARKETS, carrier_key};
use crate::error::{ConnectorError, Result};
use crate::http::HttpSettings;

/// The production Merchants API (not the legacy `admin.marketplace.cdon.com` API).
pub const PRODUCTION_URL: &str = "https://merchants-api.cdon.com/api/";
/// CDON's sandbox (credentials on request).
pub const SANDBOX_URL: &str = "https://merchants-api.sandbox.cdon.com/api/";

/// The CDON connector's settings. Every field has a default, so `{}` is a valid config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Root of the Merchants API, ending in `/api/`.
    pub base_url: String,
    /// The markets the merchant sells on (a listing goes to those it has a price for).
    pub markets: Vec<Country>,
    /// Languages the listing's title and description are sent under (the same text in each).
    /// `sv-SE` is required by CDON unless the merchant is in a translation programme.
    pub languages: Vec<String>,
    pub http: HttpSettings,
    /// Articles per `POST /v2/articles/bulk` (CDON documents no maximum; Fyndiq allows 100).
    pub articles_per_create: usize,
    /// Actions per `PUT /v2/articles/bulk` (Fyndiq's documented maximum is 200).
    pub updates_per_request: usize,
    /// `update_article_quantity` actions per request (stock pushes are small and frequent).
    pub quantity_updates_per_request: usize,
    /// `limit` of `GET /v1/orders/` (1-1000).
    pub orders_page_size: u32,
    /// How carrier names are matched to CDON's approved list.
    pub carrier_names: CarrierNames,
    /// Delivery time (working days) sent as `shipping_time` on every market.
    pub default_shipping_time: ShippingDays,
    /// Which `vat_rate` goes into each price entry.
    pub vat_rate: VatRateMode,
    /// Ask CDON (`POST /v1/statuses/sku`) which SKUs already exist before an upsert, and send
    /// those as updates instead of creates.
    pub check_existing_skus: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            base_url: PRODUCTION_URL.to_owned(),
            markets: MARKETS.to_vec(),
            languages: vec!["sv-SE".to_owned()],
            http: HttpSettings::default(),
            articles_per_create: 100,
            updates_per_request: 200,
            quantity_updates_per_request: 50,
            orders_page_size: 100,
            carrier_names: CarrierNames::default(),
            default_shipping_time: ShippingDays::default(),
            vat_rate: VatRateMode::default(),
            check_existing_skus: true,
        }
    }
}

/// Carrier-name handling: CDON accepts only names from its approved list, spelled exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CarrierNames {
    /// `loose` (default) matches ignoring case, spaces, dots and hyphens and always sends
    /// CDON's own spelling (`postnord` → `PostNord`); `exact` accepts only the exact spelling.
    pub matching: CarrierMatching,
    /// Our names for carriers → CDON's name (e.g. `"DHL Express" = "DHL"`). Targets must be on
    /// the approved list (or in `extra`).
    pub aliases: BTreeMap<String, String>,
    /// Names CDON approved after this build (its list changes; support article 38112304131092).
    pub extra: Vec<String>,
}

impl Default for CarrierNames {
    fn default() -> Self {
        Self {
            matching: CarrierMatching::Loose,
            aliases: BTreeMap::new(),
            extra: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CarrierMatching {
    Exact,
    Loose,
}

/// A `shipping_time` range in working days (CDON: 1-9 each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShippingDays {
    pub min: u8,
    pub max: u8,
}

impl Default for ShippingDays {
    fn default() -> Self {
        Self { min: 1, max: 3 }
    }
}

/// Where a price entry's `vat_rate` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VatRateMode {
    /// The listing's VAT rate, as a fraction, on every market.
    #[default]
    Listing,
    /// No `vat_rate`: CDON applies each market's default rate.
    MarketDefault,
}

impl Config {
    /// Refuses bad values with a message naming the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ConnectorError::config(SYSTEM, m));
        parse_base_url(&self.base_url)?;
        if self.markets.is_empty() {
            return bad("markets must name at least one of SE, DK, FI, NO".into());
        }
        let mut seen = BTreeSet::new();
        for m in &self.markets {
            if !MARKETS.contains(m) {
                return bad(format!(
                    "markets: {m} is not a CDON market; expected SE, DK, FI or NO"
                ));
            }
            if !seen.insert(*m) {
                return bad(format!("markets: {m} is listed twice"));
            }
        }
        if self.languages.is_empty() {
            return bad(format!(
                "languages must name at least one of {}",
                LANGUAGES.join(", ")
            ));
        }
        let mut seen = BTreeSet::new();
        for l in &self.languages {
            if !LANGUAGES.contains(&l.as_str()) {
                return bad(format!(
                    "languages: {l:?} is not a CDON language; expected one of {}",
                    LANGUAGES.join(", ")
                ));
            }
            if !seen.insert(l) {
                return bad(format!("languages: {l} is listed twice"));
            }
        }
        self.http.validate(SYSTEM)?;
        if !(1..=100).contains(&self.articles_per_create) {
            return bad("articles_per_create must be 1..=100".into());
        }
        if !(3..=200).contains(&self.updates_per_request) {
            return bad(
                "updates_per_request must be 3..=200 (an upsert update takes 3 actions)".into(),
            );
        }
        if !(1..=200).contains(&self.quantity_updates_per_request) {
            return bad("quantity_updates_per_request must be 1..=200".into());
        }
        if !(1..=1000).contains(&self.orders_page_size) {
            return bad("orders_page_size must be 1..=1000".into());
        }
        let ShippingDays { min, max } = self.default_shipping_time;
        if !(1..=9).contains(&min) || !(1..=9).contains(&max) || min > max {
            return bad(format!(
                "default_shipping_time must have 1 <= min <= max <= 9 (got min {min}, max {max})"
            ));
        }
        self.carrier_names.validate()
    }

    /// The base URL, parsed (validated by [`Config::validate`]).
    pub(crate) fn base(&self) -> Result<Url> {
        parse_base_url(&self.base_url)
    }
}

fn parse_base_url(s: &str) -> Result<Url> {
    let bad = |m: String| Err(ConnectorError::config(SYSTEM, m));
    let mut url = match Url::parse(s.trim()) {
        Ok(u) => u,
        // The parse error never includes the URL itself.
        Err(e) => return bad(format!("base_url is not a URL: {e}")),
    };
    if !matches!(url.scheme(), "https" | "http") {
        return bad(format!(
            "base_url must be http or https, not {}",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return bad("base_url must not carry credentials; put them in the credentials".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return bad("base_url must not have a query or fragment".into());
    }
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(url)
}

impl CarrierNames {
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ConnectorError::config(SYSTEM, m));
        for e in &self.extra {
            if e.trim().is_empty() || e.chars().count() > 64 {
                return bad("carrier_names.extra: names must be 1-64 characters".into());
            }
        }
        for (from, to) in &self.aliases {
            if from.trim().is_empty() {
                return bad("carrier_names.aliases: an alias name is blank".into());
            }
            let known = APPROVED_CARRIERS.contains(&to.as_str()) || self.extra.contains(to);
            if !known {
                return bad(format!(
                    "carrier_names.aliases: {from:?} maps to {to:?}, which is not on CDON's \
                     approved list (spell it exactly, or add it to carrier_names.extra)"
                ));
            }
        }
        let mut keys = BTreeMap::new();
        for from in self.aliases.keys() {
            if let Some(prev) = keys.insert(carrier_key(from), from)
                && self.matching == CarrierMatching::Loose
            {
                return bad(format!(
                    "carrier_names.aliases: {prev:?} and {from:?} are the same name when \
                     matched loosely"
                ));
            }
        }
        Ok(())
    }
}

/// The merchant's Merchants API credentials: Basic auth `merchant_id:token`.
#[derive(Clone)]
pub struct Credentials {
    pub merchant_id: String,
    pub token: SecretString,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("merchant_id", &"[redacted]")
            .field("token", &"[redacted]")
            .finish()
    }
}

impl Credentials {
    pub fn new(merchant_id: impl Into<String>, token: impl Into<String>) -> Result<Self> {
        let c = Self {
            merchant_id: merchant_id.into(),
            token: SecretString::from(token.into()),
        };
        c.validate()?;
        Ok(c)
    }

    /// Reads `{"merchant_id": "...", "token": "..."}`. Messages name a missing, blank or
    /// malformed field, never a value.
    pub fn from_map(map: &Map<String, Value>) -> Result<Self> {
        let [merchant_id, token] =
            crate::settings::credential_fields(SYSTEM, map, ["merchant_id", "token"])?;
        let c = Self {
            merchant_id,
            token: SecretString::from(token),
        };
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(ConnectorError::config(SYSTEM, m.to_owned()));
        let id = self.merchant_id.as_str();
        if id.trim().is_empty() {
            return bad("credentials field `merchant_id` is blank");
        }
        if id.trim() != id || id.contains(':') || id.chars().any(char::is_control) {
            return bad(
                "credentials field `merchant_id` has surrounding spaces, a colon or a control \
                 character",
            );
        }
        let token = self.token.expose_secret();
        if token.trim().is_empty() {
            return bad("credentials field `token` is blank");
        }
        if token.trim() != token || token.chars().any(char::is_control) {
            return bad("credentials field `token` has surrounding spaces or a control character");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: Value) -> Result<Config> {
        let c: Config =
            serde_json::from_value(v).map_err(|e| ConnectorError::config(SYSTEM, e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    fn msg(r: Result<Config>) -> String {
        r.expect_err("should be refused").to_string()
    }

    #[test]
    fn defaults_are_valid_and_point_at_the_merchants_api() {
        let c = cfg(json!({})).unwrap();
        assert_eq!(c.base_url, PRODUCTION_URL);
        assert_eq!(c.markets, MARKETS.to_vec());
        assert_eq!(c.articles_per_create, 100);
        assert_eq!(c.updates_per_request, 200);
        assert_eq!(c.quantity_updates_per_request, 50);
        assert_eq!(c.base().unwrap().as_str(), PRODUCTION_URL);
        let no_slash = cfg(json!({"base_url": "http://127.0.0.1:9/api"})).unwrap();
        assert_eq!(no_slash.base().unwrap().as_str(), "http://127.0.0.1:9/api/");
    }

    #[test]
    fn bad_values_are_refused_naming_the_field() {
        assert!(msg(cfg(json!({"markets": []}))).contains("markets"));
        assert!(msg(cfg(json!({"markets": ["DE"]}))).contains("DE is not a CDON market"));
        assert!(msg(cfg(json!({"markets": ["SE", "SE"]}))).contains("twice"));
        assert!(msg(cfg(json!({"languages": ["sv"]}))).contains("languages"));
        assert!(msg(cfg(json!({"articles_per_create": 0}))).contains("articles_per_create"));
        assert!(msg(cfg(json!({"updates_per_request": 500}))).contains("updates_per_request"));
        assert!(
            msg(cfg(json!({"quantity_updates_per_request": 0})))
                .contains("quantity_updates_per_request")
        );
        assert!(msg(cfg(json!({"orders_page_size": 1001}))).contains("orders_page_size"));
        assert!(
            msg(cfg(json!({"default_shipping_time": {"min": 5, "max": 2}})))
                .contains("default_shipping_time")
        );
        assert!(msg(cfg(json!({"base_url": "ftp://x/"}))).contains("base_url"));
        let creds = msg(cfg(
            json!({"base_url": "https://u:p@merchants-api.cdon.com/api/"}),
        ));
        assert!(
            creds.contains("credentials") && !creds.contains("u:p"),
            "{creds}"
        );
        assert!(msg(cfg(json!({"http": {"timeout_ms": 0}}))).contains("http.timeout_ms"));
        assert!(msg(cfg(json!({"surprise": 1}))).contains("surprise"));
        let alias = msg(cfg(
            json!({"carrier_names": {"aliases": {"Fedex": "FedEx"}}}),
        ));
        assert!(alias.contains("carrier_names.aliases"), "{alias}");
        cfg(json!({"carrier_names": {"aliases": {"Fedex": "FedEx"}, "extra": ["FedEx"]}})).unwrap();
    }

    #[test]
    fn credentials_name_fields_never_values() {
        let mut m = Map::new();
        assert!(
            Credentials::from_map(&m)
                .unwrap_err()
                .to_string()
                .contains("`merchant_id` is missing")
        );
        m.insert("merchant_id".into(), json!("m-1"));
        m.insert("token".into(), json!("   "));
        let e = Credentials::from_map(&m).unwrap_err();
        assert!(e.to_string().contains("`token` is blank"), "{e}");
        m.insert("token".into(), json!(12345));
        let e = Credentials::from_map(&m).unwrap_err().to_string();
        assert!(
            e.contains("`token` must be a string") && !e.contains("12345"),
            "{e}"
        );
        m.insert("token".into(), json!("s3cr3t-T0KEN"));
        m.insert("password".into(), json!("other-secret"));
        let e = Credentials::from_map(&m).unwrap_err().to_string();
        assert!(
            e.contains("`password`") && !e.contains("other-secret"),
            "{e}"
        );
        m.remove("password");
        let c = Credentials::from_map(&m).unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("m-1"),
            "{shown}"
        );
        m.insert("merchant_id".into(), json!("a:b"));
        assert!(
            Credentials::from_map(&m)
                .unwrap_err()
                .to_string()
                .contains("colon")
        );
    }
}
