//! lexoffice connector settings and credentials.
//!
//! [`Config`] is plain data (serde, unknown keys refused, every field defaulted) checked by
//! [`Config::validate`] before a client is built. [`Credentials`] hold the API key, which is
//! never printed (`Debug` is redacted, errors name fields, not values).

use std::fmt;

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::SYSTEM;
use crate::error::{ConnectorError, Result};
use crate::http::HttpSettings;

/// The current API gateway (since the 2025 rebrand to Lexware Office).
pub const PRODUCTION_URL: &str = "https://api.lexware.io";
/// The historical gateway (served until December 2025).
pub const LEGACY_URL: &str = "https://api.lexoffice.io";
/// Where Lexware publishes the webhook signature key (not fetched by this crate: configure it).
pub const PUBLISHED_KEY_URL: &str =
    "https://developers.lexware.io/webhookSignature/public/public_key.pub";

/// How prices are sent on the order confirmation (`taxConditions.taxType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaxType {
    /// Unit prices are gross (`unitPrice.grossAmount`): marketplace prices are gross, so the
    /// customer's amounts carry over exactly.
    #[default]
    Gross,
    /// Unit prices are net (`unitPrice.netAmount`), derived from the gross price at 4 decimals.
    Net,
}

impl TaxType {
    pub fn as_str(self) -> &'static str {
        match self {
            TaxType::Gross => "gross",
            TaxType::Net => "net",
        }
    }
}

/// `shippingConditions.shippingType` of the order confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShippingType {
    /// Goods delivered on `shippingDate` (the order's `ship_by`, else the order date).
    #[default]
    Delivery,
    /// A service rendered on `shippingDate`.
    Service,
    /// No delivery date on the document.
    None,
}

impl ShippingType {
    pub fn as_str(self) -> &'static str {
        match self {
            ShippingType::Delivery => "delivery",
            ShippingType::Service => "service",
            ShippingType::None => "none",
        }
    }
}

/// The lexoffice connector's settings. Every field has a default, so `{}` is a valid config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Root of the public API (`https://api.lexware.io`); paths `/v1/...` are appended.
    pub base_url: String,
    /// Transport settings; the timeout is a little over lexoffice's 30 s gateway timeout, so
    /// the gateway's own 504 arrives before ours.
    pub http: HttpSettings,
    /// Document language: `de` or `en`.
    pub language: String,
    /// `gross` (default: marketplace prices are gross) or `net`.
    pub tax_type: TaxType,
    /// Unit name of every line (`Stück`).
    pub unit_name: String,
    /// `delivery` (default), `service` or `none`.
    pub shipping_type: ShippingType,
    /// How far back (days) recovery searches the voucherlist for an order's confirmation. An
    /// order placed longer ago than this is never reported `Absent` (only `NeedsReview`).
    pub lookup_window_days: u32,
    /// At most this many order confirmations are read one by one during a recovery lookup;
    /// more candidates park the order for review instead.
    pub lookup_max_candidates: usize,
    /// The PEM ("PUBLIC KEY", SPKI) of Lexware's webhook signing key. Required to verify
    /// webhooks in production: this crate embeds no production key (see the docs).
    pub webhook_public_key_pem: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            base_url: PRODUCTION_URL.to_owned(),
            http: HttpSettings {
                timeout_ms: 35_000,
                ..HttpSettings::default()
            },
            language: "de".to_owned(),
            tax_type: TaxType::Gross,
            unit_name: "Stück".to_owned(),
            shipping_type: ShippingType::Delivery,
            lookup_window_days: 14,
            lookup_max_candidates: 100,
            webhook_public_key_pem: None,
        }
    }
}

impl Config {
    /// Refuses bad values with a message naming the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(ConnectorError::config(SYSTEM, m.to_owned()));
        parse_base_url(&self.base_url)?;
        self.http.validate(SYSTEM)?;
        if !matches!(self.language.as_str(), "de" | "en") {
            return bad("language must be \"de\" or \"en\"");
        }
        let unit = self.unit_name.trim();
        if unit.is_empty() || unit.chars().count() > 255 {
            return bad("unit_name must be 1-255 characters");
        }
        if !(1..=366).contains(&self.lookup_window_days) {
            return bad("lookup_window_days must be 1..=366");
        }
        if !(1..=1000).contains(&self.lookup_max_candidates) {
            return bad("lookup_max_candidates must be 1..=1000");
        }
        if let Some(pem) = &self.webhook_public_key_pem {
            super::webhook::WebhookKey::from_pem(pem).map_err(|e| {
                ConnectorError::config(SYSTEM, format!("webhook_public_key_pem: {e}"))
            })?;
        }
        Ok(())
    }

    /// The base URL, parsed, ending in `/` (validated by [`Config::validate`]).
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
        return bad(
            "base_url must not carry credentials; put the API key in the credentials".into(),
        );
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

/// The organization's public API key (Bearer). One key is one organization.
#[derive(Clone)]
pub struct Credentials {
    pub api_key: SecretString,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("api_key", &"[redacted]")
            .finish()
    }
}

impl Credentials {
    pub fn new(api_key: impl Into<String>) -> Result<Self> {
        let c = Self {
            api_key: SecretString::from(api_key.into()),
        };
        c.validate()?;
        Ok(c)
    }

    /// Reads `{"api_key": "..."}`. Messages name a missing, blank or malformed field, never a
    /// value.
    pub fn from_map(map: &Map<String, Value>) -> Result<Self> {
        let [key] = crate::settings::credential_fields(SYSTEM, map, ["api_key"])?;
        let c = Self {
            api_key: SecretString::from(key),
        };
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<()> {
        let k = self.api_key.expose_secret();
        if k.trim().is_empty() {
            return Err(ConnectorError::config(
                SYSTEM,
                "credentials field `api_key` is blank",
            ));
        }
        if k.trim() != k || k.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ConnectorError::config(
                SYSTEM,
                "credentials field `api_key` contains whitespace (copy it again from Lexware Office → Erweiterungen → Public API)",
            ));
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
    fn empty_config_is_the_documented_defaults() {
        let c = cfg(json!({})).unwrap();
        assert_eq!(c.base_url, PRODUCTION_URL);
        assert_eq!(c.base().unwrap().as_str(), "https://api.lexware.io/");
        assert_eq!(
            c.http.timeout_ms, 35_000,
            "a bit over the 30 s gateway timeout"
        );
        assert_eq!(c.language, "de");
        assert_eq!(c.tax_type, TaxType::Gross);
        assert_eq!(c.unit_name, "Stück");
        assert_eq!(c.shipping_type, ShippingType::Delivery);
        assert_eq!(c.lookup_window_days, 14);
        assert!(c.webhook_public_key_pem.is_none());
        let c = cfg(json!({"tax_type": "net", "shipping_type": "none", "language": "en"})).unwrap();
        assert_eq!(
            (c.tax_type.as_str(), c.shipping_type.as_str()),
            ("net", "none")
        );
    }

    #[test]
    fn bad_values_are_refused_naming_the_field() {
        assert!(msg(cfg(json!({"language": "ro"}))).contains("language"));
        assert!(msg(cfg(json!({"unit_name": "  "}))).contains("unit_name"));
        assert!(msg(cfg(json!({"lookup_window_days": 0}))).contains("lookup_window_days"));
        assert!(msg(cfg(json!({"lookup_max_candidates": 0}))).contains("lookup_max_candidates"));
        assert!(msg(cfg(json!({"tax_type": "vatfree"}))).contains("vatfree"));
        assert!(msg(cfg(json!({"base_url": "ftp://x/"}))).contains("base_url"));
        let creds = msg(cfg(
            json!({"base_url": "https://u:secretpw@api.lexware.io"}),
        ));
        assert!(
            creds.contains("credentials") && !creds.contains("secretpw"),
            "{creds}"
        );
        assert!(msg(cfg(json!({"http": {"timeout_ms": 0}}))).contains("http.timeout_ms"));
        assert!(msg(cfg(json!({"surprise": 1}))).contains("surprise"));
        let pem = msg(cfg(json!({"webhook_public_key_pem": "not a key"})));
        assert!(pem.contains("webhook_public_key_pem"), "{pem}");
    }

    #[test]
    fn credentials_name_fields_never_values() {
        let mut m = Map::new();
        let e = Credentials::from_map(&m).unwrap_err().to_string();
        assert!(e.contains("`api_key` is missing"), "{e}");
        m.insert("api_key".into(), json!("   "));
        assert!(
            Credentials::from_map(&m)
                .unwrap_err()
                .to_string()
                .contains("blank")
        );
        m.insert("api_key".into(), json!(12345));
        let e = Credentials::from_map(&m).unwrap_err().to_string();
        assert!(
            e.contains("must be a string") && !e.contains("12345"),
            "{e}"
        );
        m.insert("api_key".into(), json!("key with-space"));
        let e = Credentials::from_map(&m).unwrap_err().to_string();
        assert!(e.contains("whitespace") && !e.contains("with-space"), "{e}");
        m.insert("api_key".into(), json!("s3cr3t-KEY"));
        m.insert("token".into(), json!("other-secret"));
        let e = Credentials::from_map(&m).unwrap_err().to_string();
        assert!(e.contains("`token`") && !e.contains("other-secret"), "{e}");
        m.remove("token");
        let c = Credentials::from_map(&m).unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cr3t") && shown.contains("redacted"),
            "{shown}"
        );
    }
}
