//! SmartBill connector settings and credentials.
//!
//! [`Config`] is plain data (serde, unknown keys refused, every optional field defaulted) checked
//! by [`Config::validate`]: `cif` and `proforma_series` are required. [`Credentials`] hold the
//! SmartBill login e-mail and the API token; neither is ever printed (`Debug` is redacted,
//! errors name fields, not values).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use canonical::{Currency, Sku};
use reqwest::Url;
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::SYSTEM;
use crate::error::{ConnectorError, Result};
use crate::http::HttpSettings;

/// The production SmartBill Cloud REST API (HTTPS only; plain HTTP is rejected by SmartBill).
pub const PRODUCTION_URL: &str = "https://ws.smartbill.ro/SBORO/api/";

/// The SmartBill connector's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Root of the API, ending in `/api/`.
    pub base_url: String,
    pub http: HttpSettings,
    /// The company's CIF (VAT code), `RO` prefix optional: sent as `cif` / `companyVatCode`
    /// on every call. Required; the check digit is verified.
    pub cif: String,
    /// The proforma (estimate) series the product creates its documents in. Required.
    pub proforma_series: String,
    /// The series the merchant invoices in (informational: invoices are found through their
    /// proforma, `GET /estimate/invoices`, whatever their series).
    pub invoice_series: Option<String>,
    /// Warehouse (`warehouseName`, case-sensitive) put on lines when `use_stock` is on and the
    /// flow gives none.
    pub warehouse: Option<String>,
    /// `measuringUnitName` of article lines.
    pub measuring_unit: String,
    /// `measuringUnitName` of the shipping line.
    pub shipping_unit: String,
    /// Name of the shipping-fee service line.
    pub shipping_name: String,
    /// VAT percentage of the shipping line; `None`: the highest rate among the order's lines.
    pub shipping_vat_percent: Option<Decimal>,
    /// Overrides of SmartBill tax names, percentage (`"21"`) → name (`"Normala"`). Without an
    /// override the name comes from `GET /tax`, read at runtime and cached.
    pub tax_names: BTreeMap<String, String>,
    /// Whether the company is a VAT payer (`false`: lines carry no `taxName`/`taxPercentage`).
    pub vat_payer: bool,
    /// `useStock` on the proforma. Default `false`: a proforma does not discharge stock.
    pub use_stock: bool,
    /// Whether a cancellation before invoicing cancels the proforma (`PUT /estimate/cancel`).
    /// `false`: every return is reported for the merchant.
    pub cancel_proformas: bool,
    /// How many of the most recent proforma numbers recovery probes.
    pub probe_depth: u32,
    /// Pause until `X-RateLimit-Reset` when `X-RateLimit-Remaining` is at or below this. 0 (the
    /// default) waits only when the window is used up: the fleet gate already spaces calls, so
    /// the header is the backstop for another integration sharing the account; raise it (4 is
    /// SmartBill's own plugin's choice) when one does.
    pub remaining_floor: u32,
    /// How long the `GET /tax` answer is cached, in seconds.
    pub tax_cache_secs: u64,
    /// Document language (`RO`, `EN`, …).
    pub language: String,
    /// The tenant's prices: SmartBill has no product list, so the catalog is this list
    /// (enriched with names and units from `GET /stocks`). Empty: no catalog.
    pub price_list: Vec<PriceEntry>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            base_url: PRODUCTION_URL.to_owned(),
            http: HttpSettings::default(),
            cif: String::new(),
            proforma_series: String::new(),
            invoice_series: None,
            warehouse: None,
            measuring_unit: "buc".to_owned(),
            shipping_unit: "buc".to_owned(),
            shipping_name: "Transport".to_owned(),
            shipping_vat_percent: None,
            tax_names: BTreeMap::new(),
            vat_payer: true,
            use_stock: false,
            cancel_proformas: true,
            probe_depth: 10,
            remaining_floor: 0,
            tax_cache_secs: 3600,
            language: "RO".to_owned(),
            price_list: Vec::new(),
        }
    }
}

/// One article of the tenant's price list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceEntry {
    pub sku: Sku,
    /// Gross price of one unit.
    pub gross: Decimal,
    /// VAT percentage (21 means 21 %).
    pub vat: Decimal,
    /// Name when the stock list has none for the SKU.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "ron")]
    pub currency: Currency,
}

fn ron() -> Currency {
    Currency::Ron
}

impl Config {
    /// Refuses bad values with a message naming the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ConnectorError::config(SYSTEM, m));
        parse_base_url(&self.base_url)?;
        self.http.validate(SYSTEM)?;
        if self.cif.trim().is_empty() {
            return bad("cif is required (the company's CIF, e.g. RO12345674)".into());
        }
        if let Err(why) = check_cif(&self.cif) {
            return bad(format!("cif is not a valid Romanian CIF: {why}"));
        }
        series_name("proforma_series", &self.proforma_series)?;
        if let Some(s) = &self.invoice_series {
            series_name("invoice_series", s)?;
        }
        if let Some(w) = &self.warehouse
            && (w.trim().is_empty() || w.chars().any(char::is_control))
        {
            return bad("warehouse is blank or has a control character".into());
        }
        if self.use_stock && self.warehouse.is_none() {
            return bad(
                "use_stock needs a warehouse (SmartBill discharges stock per warehouse)".into(),
            );
        }
        for (name, v) in [
            ("measuring_unit", &self.measuring_unit),
            ("shipping_unit", &self.shipping_unit),
            ("shipping_name", &self.shipping_name),
            ("language", &self.language),
        ] {
            if v.trim().is_empty() {
                return bad(format!("{name} must not be blank"));
            }
        }
        if let Some(p) = self.shipping_vat_percent
            && !(Decimal::ZERO..=Decimal::ONE_HUNDRED).contains(&p)
        {
            return bad("shipping_vat_percent must be 0..=100".into());
        }
        for (pct, name) in &self.tax_names {
            match pct.trim().parse::<Decimal>() {
                Ok(p) if (Decimal::ZERO..=Decimal::ONE_HUNDRED).contains(&p) => {}
                _ => {
                    return bad(format!(
                        "tax_names: key {pct:?} is not a percentage 0..=100 (write \"21\", not \"21%\")"
                    ));
                }
            }
            if name.trim().is_empty() {
                return bad(format!("tax_names: the name for {pct} % is blank"));
            }
        }
        if !(1..=50).contains(&self.probe_depth) {
            return bad(
                "probe_depth must be 1..=50 (each probe is one call of 30 per 10 s)".into(),
            );
        }
        if self.remaining_floor > 29 {
            return bad(
                "remaining_floor must be 0..=29 (SmartBill allows 30 calls per 10 s)".into(),
            );
        }
        if self.tax_cache_secs > 86_400 {
            return bad("tax_cache_secs must be at most 86400".into());
        }
        let mut seen = BTreeSet::new();
        for (i, e) in self.price_list.iter().enumerate() {
            if !seen.insert(e.sku.as_str()) {
                return bad(format!("price_list[{i}]: SKU {} is listed twice", e.sku));
            }
            if e.gross < Decimal::ZERO {
                return bad(format!(
                    "price_list[{i}] ({}): gross must not be negative",
                    e.sku
                ));
            }
            if !(Decimal::ZERO..=Decimal::ONE_HUNDRED).contains(&e.vat) {
                return bad(format!("price_list[{i}] ({}): vat must be 0..=100", e.sku));
            }
        }
        Ok(())
    }

    /// The base URL, parsed (validated by [`Config::validate`]).
    pub(crate) fn base(&self) -> Result<Url> {
        parse_base_url(&self.base_url)
    }

    /// The override for a VAT percentage, if the config has one.
    pub fn tax_override(&self, percent: Decimal) -> Option<&str> {
        self.tax_names
            .iter()
            .find(|(k, _)| k.trim().parse::<Decimal>().ok() == Some(percent))
            .map(|(_, v)| v.as_str())
    }
}

fn series_name(field: &str, s: &str) -> Result<()> {
    if s.trim().is_empty() {
        return Err(ConnectorError::config(
            SYSTEM,
            format!("{field} is required (a series defined in the SmartBill account)"),
        ));
    }
    if s.trim() != s || s.chars().count() > 20 || s.chars().any(char::is_control) {
        return Err(ConnectorError::config(
            SYSTEM,
            format!("{field} has surrounding spaces, a control character or is over 20 characters"),
        ));
    }
    Ok(())
}

/// Checks a Romanian CIF/CUI (`RO` prefix optional): 2-10 digits, the last one the check digit
/// of the others under the key 753217532.
pub fn check_cif(cif: &str) -> std::result::Result<(), &'static str> {
    let s = cif.trim();
    let digits = s
        .strip_prefix("RO")
        .or_else(|| s.strip_prefix("ro"))
        .unwrap_or(s)
        .trim();
    if !(2..=10).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected 2 to 10 digits after an optional RO");
    }
    let d: Vec<u32> = digits.bytes().map(|b| u32::from(b - b'0')).collect();
    let (body, control) = d.split_at(d.len() - 1);
    let key = [7, 5, 3, 2, 1, 7, 5, 3, 2];
    let pad = 9 - body.len();
    let sum: u32 = body.iter().enumerate().map(|(i, x)| x * key[pad + i]).sum();
    let c = (sum * 10) % 11 % 10;
    if c == control[0] {
        Ok(())
    } else {
        Err("the check digit does not match")
    }
}

fn parse_base_url(s: &str) -> Result<Url> {
    let bad = |m: String| Err(ConnectorError::config(SYSTEM, m));
    let mut url = match Url::parse(s.trim()) {
        Ok(u) => u,
        Err(e) => return bad(format!("base_url is not a URL: {e}")),
    };
    if !matches!(url.scheme(), "https" | "http") {
        return bad(format!(
            "base_url must be https (or http for a local fake), not {}",
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

/// The SmartBill API credentials: HTTP Basic `email:token`.
#[derive(Clone)]
pub struct Credentials {
    /// The SmartBill login e-mail.
    pub email: String,
    /// The API token (*Contul meu > Integrari > API*).
    pub token: SecretString,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("email", &"[redacted]")
            .field("token", &"[redacted]")
            .finish()
    }
}

impl Credentials {
    pub fn new(email: impl Into<String>, token: impl Into<String>) -> Result<Self> {
        let c = Self {
            email: email.into(),
            token: SecretString::from(token.into()),
        };
        c.validate()?;
        Ok(c)
    }

    /// Reads `{"email": "...", "token": "..."}`. Messages name a missing, blank or malformed
    /// field, never a value.
    pub fn from_map(map: &Map<String, Value>) -> Result<Self> {
        let [email, token] = crate::settings::credential_fields(SYSTEM, map, ["email", "token"])?;
        let c = Self {
            email,
            token: SecretString::from(token),
        };
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(ConnectorError::config(SYSTEM, m.to_owned()));
        let e = self.email.as_str();
        if e.trim().is_empty() {
            return bad("credentials field `email` is blank");
        }
        if e.trim() != e || e.contains(':') || e.chars().any(char::is_control) || !e.contains('@') {
            return bad(
                "credentials field `email` is not an e-mail address (no spaces around it, no \
                 colon, one @)",
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

    fn base() -> Value {
        json!({"cif": "RO12345674", "proforma_series": "PRO"})
    }

    fn with(k: &str, v: Value) -> Value {
        let mut b = base();
        b[k] = v;
        b
    }

    #[test]
    fn cif_check_digits_are_verified() {
        check_cif("RO12345674").unwrap();
        check_cif("12345674").unwrap();
        check_cif("RO76543210").unwrap();
        assert!(check_cif("RO12345678").is_err());
        assert!(check_cif("RO1").is_err());
        assert!(check_cif("ROABC").is_err());
        assert!(check_cif("12345678901").is_err());
    }

    #[test]
    fn defaults_need_only_the_cif_and_the_proforma_series() {
        let c = cfg(base()).unwrap();
        assert_eq!(c.base_url, PRODUCTION_URL);
        assert_eq!(c.measuring_unit, "buc");
        assert!(!c.use_stock);
        assert_eq!(c.probe_depth, 10);
        assert_eq!(c.remaining_floor, 0);
        assert!(c.price_list.is_empty());
        assert_eq!(c.base().unwrap().as_str(), PRODUCTION_URL);
        assert!(msg(cfg(json!({}))).contains("cif is required"));
        assert!(msg(cfg(json!({"cif": "RO12345674"}))).contains("proforma_series is required"));
    }

    #[test]
    fn bad_values_are_refused_naming_the_field() {
        assert!(msg(cfg(with("cif", json!("RO12345678")))).contains("check digit"));
        assert!(msg(cfg(with("proforma_series", json!(" PRO")))).contains("proforma_series"));
        assert!(msg(cfg(with("invoice_series", json!("")))).contains("invoice_series"));
        assert!(msg(cfg(with("use_stock", json!(true)))).contains("use_stock needs a warehouse"));
        assert!(msg(cfg(with("probe_depth", json!(0)))).contains("probe_depth"));
        assert!(msg(cfg(with("remaining_floor", json!(30)))).contains("remaining_floor"));
        assert!(msg(cfg(with("tax_names", json!({"21%": "Normala"})))).contains("tax_names"));
        assert!(msg(cfg(with("measuring_unit", json!(" ")))).contains("measuring_unit"));
        assert!(msg(cfg(with("base_url", json!("ftp://x/")))).contains("base_url"));
        assert!(msg(cfg(with("surprise", json!(1)))).contains("surprise"));
        let dup =
            json!([{"sku": "A", "gross": 1, "vat": 21}, {"sku": "A", "gross": "2.50", "vat": 21}]);
        assert!(msg(cfg(with("price_list", dup))).contains("listed twice"));
        let neg = json!([{"sku": "A", "gross": -1, "vat": 21}]);
        assert!(msg(cfg(with("price_list", neg))).contains("gross"));
        let c = cfg(with("tax_names", json!({"21": "Normala", "11": "Redusa"}))).unwrap();
        assert_eq!(c.tax_override(Decimal::new(21, 0)), Some("Normala"));
        assert_eq!(c.tax_override(Decimal::new(210, 1)), Some("Normala"));
        assert_eq!(c.tax_override(Decimal::new(9, 0)), None);
        let creds = msg(cfg(with(
            "base_url",
            json!("https://u:p@ws.smartbill.ro/SBORO/api/"),
        )));
        assert!(
            creds.contains("credentials") && !creds.contains("u:p"),
            "{creds}"
        );
    }

    #[test]
    fn credentials_name_fields_never_values() {
        let mut m = Map::new();
        let e = Credentials::from_map(&m).unwrap_err().to_string();
        assert!(e.contains("`email` is missing"), "{e}");
        m.insert("email".into(), json!("ana@shop.ro"));
        m.insert("token".into(), json!(" "));
        let e = Credentials::from_map(&m).unwrap_err().to_string();
        assert!(e.contains("`token` is blank"), "{e}");
        m.insert("token".into(), json!(4242));
        let e = Credentials::from_map(&m).unwrap_err().to_string();
        assert!(e.contains("must be a string") && !e.contains("4242"), "{e}");
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
            !shown.contains("s3cr3t") && !shown.contains("ana@"),
            "{shown}"
        );
        m.insert("email".into(), json!("ana:x@shop.ro"));
        assert!(
            Credentials::from_map(&m)
                .unwrap_err()
                .to_string()
                .contains("colon")
        );
    }
}
