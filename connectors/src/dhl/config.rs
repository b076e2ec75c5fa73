//! The DHL connector's settings ([`Config`]) and credentials ([`Credentials`]).
//!
//! `Config` is plain settings (no secrets): unknown keys are refused, everything but
//! `shipper_account` has a default, and [`Config::validate`] names the field of any bad value.
//! `Credentials` hold the MyDHL API user name and password; the password is a
//! [`SecretString`] and never appears in `Debug`, logs or errors.

use std::fmt;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ConnectorError, Result};
use crate::http::HttpSettings;

use super::SYSTEM;

/// Production MyDHL API (the default).
pub const PRODUCTION_URL: &str = "https://express.api.dhl.com/mydhlapi";
/// MyDHL test environment: real validation, AWBs that cannot be tracked.
pub const TEST_URL: &str = "https://express.api.dhl.com/mydhlapi/test";
/// MyDHL mock: fixed sample answers whatever the request.
pub const MOCK_URL: &str = "https://api-mock.dhl.com/mydhlapi";

/// The `x-version` header value of spec 3.1.1 ("do not change").
pub const X_VERSION: &str = "3.1.0";

/// Incoterms MyDHL accepts in `content.incoterm`.
pub const INCOTERMS: [&str; 12] = [
    "EXW", "FCA", "CPT", "CIP", "DPU", "DAP", "DDP", "FAS", "FOB", "CFR", "CIF", "DAT",
];

/// Settings of one DHL connection (one DHL Express shipper account).
///
/// ```json
/// {
///   "base_url": "https://express.api.dhl.com/mydhlapi",
///   "shipper_account": "123456789",
///   "product_code_eu": "U",
///   "product_code_non_eu": "P",
///   "incoterm": "DAP",
///   "voec_number": "2012345",
///   "reference_lookup_days": 10
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// MyDHL API root without a trailing slash: [`PRODUCTION_URL`] (default), [`TEST_URL`],
    /// [`MOCK_URL`], or a fake's `http://127.0.0.1:<port>`.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The `x-version` header. Spec 3.1.1 says "3.1.0, do not change".
    #[serde(default = "default_x_version")]
    pub x_version: String,
    #[serde(default)]
    pub http: HttpSettings,
    /// The DHL Express account number shipments are billed to (`accounts[typeCode=shipper]`,
    /// and `shipperAccountNumber` of the reference lookup). Required: digits only.
    pub shipper_account: String,
    /// Product code for receivers inside the EU customs union. Default `U`: an assumption;
    /// confirm the codes your account may use with `GET /products` for each lane.
    #[serde(default = "default_product_eu")]
    pub product_code_eu: String,
    /// Product code for receivers outside the EU customs union (Norway). Default `P` (EXPRESS
    /// WORLDWIDE non-document): an assumption, confirm with `GET /products`.
    #[serde(default = "default_product_non_eu")]
    pub product_code_non_eu: String,
    /// Product code when shipper and receiver are in the same country. Default `N` (DOMESTIC
    /// EXPRESS): an assumption, confirm with `GET /products`.
    #[serde(default = "default_product_domestic")]
    pub product_code_domestic: String,
    /// `content.incoterm`. Default `DAP` (the receiver pays import duties and taxes).
    #[serde(default = "default_incoterm")]
    pub incoterm: String,
    /// Label encoding. Only `pdf`: the courier trait hands the label on as PDF bytes.
    #[serde(default = "default_encoding")]
    pub encoding_format: String,
    /// Label template (`outputImageProperties.imageOptions[label].templateName`).
    #[serde(default = "default_template")]
    pub label_template: String,
    /// Half-width in days of the `dateRangeFrom/To` window of the reference lookup, around the
    /// date the caller gives (1..=30).
    #[serde(default = "default_lookup_days")]
    pub reference_lookup_days: u32,
    /// Minutes a brand-new shipment may stay invisible to the reference lookup (tracking lag,
    /// 10-30 min). Within this window after an in-doubt create, "not found" means "look again
    /// later"; after it, "route to manual reconcile" (1..=1440).
    #[serde(default = "default_settle")]
    pub in_doubt_settle_minutes: u32,
    /// Norway's VOEC number of the seller, sent as shipper `registrationNumbers[typeCode=SDT,
    /// issuerCountryCode=NO]` on shipments to NO. Optional.
    #[serde(default)]
    pub voec_number: Option<String>,
    /// Validate each shipment with `POST /shipments?validateDataOnly=true` before creating it
    /// (one more call per shipment; refusals then happen before anything exists).
    #[serde(default)]
    pub validate_first: bool,
    /// Public tracking page of an AWB, `{awb}` replaced; used when DHL's answer has no
    /// `trackingUrl` (a shipment found by reference).
    #[serde(default = "default_tracking_url")]
    pub tracking_url_template: String,
}

fn default_base_url() -> String {
    PRODUCTION_URL.to_owned()
}
fn default_x_version() -> String {
    X_VERSION.to_owned()
}
fn default_product_eu() -> String {
    "U".to_owned()
}
fn default_product_non_eu() -> String {
    "P".to_owned()
}
fn default_product_domestic() -> String {
    "N".to_owned()
}
fn default_incoterm() -> String {
    "DAP".to_owned()
}
fn default_encoding() -> String {
    "pdf".to_owned()
}
fn default_template() -> String {
    "ECOM26_84_001".to_owned()
}
fn default_lookup_days() -> u32 {
    10
}
fn default_settle() -> u32 {
    30
}
fn default_tracking_url() -> String {
    "https://www.dhl.com/global-en/home/tracking/tracking-express.html?submit=1&tracking-id={awb}"
        .to_owned()
}

impl Config {
    /// The defaults, with the one required field.
    pub fn new(shipper_account: impl Into<String>) -> Self {
        Self {
            base_url: default_base_url(),
            x_version: default_x_version(),
            http: HttpSettings::default(),
            shipper_account: shipper_account.into(),
            product_code_eu: default_product_eu(),
            product_code_non_eu: default_product_non_eu(),
            product_code_domestic: default_product_domestic(),
            incoterm: default_incoterm(),
            encoding_format: default_encoding(),
            label_template: default_template(),
            reference_lookup_days: default_lookup_days(),
            in_doubt_settle_minutes: default_settle(),
            voec_number: None,
            validate_first: false,
            tracking_url_template: default_tracking_url(),
        }
    }

    /// Reads settings from JSON, naming an unknown or malformed field.
    pub fn from_json(value: Value) -> Result<Self> {
        let c: Config = serde_json::from_value(value)
            .map_err(|e| ConnectorError::config(SYSTEM, format!("settings: {e}")))?;
        c.validate()?;
        Ok(c)
    }

    /// The API root without a trailing slash.
    pub fn root(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }

    /// Refuses bad values, naming the field and what is expected.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ConnectorError::config(SYSTEM, m));
        let root = self.root();
        let rest = root
            .strip_prefix("https://")
            .or_else(|| root.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.starts_with('/') => {}
            _ => {
                return bad(format!(
                    "base_url {:?} must be an http(s) URL such as {PRODUCTION_URL}",
                    self.base_url
                ));
            }
        }
        if root.contains(['?', '#', ' ']) {
            return bad("base_url must not contain a query, fragment or spaces".into());
        }
        if self.x_version.is_empty()
            || !self
                .x_version
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.')
        {
            return bad(format!(
                "x_version {:?} must look like {X_VERSION}",
                self.x_version
            ));
        }
        self.http.validate(SYSTEM)?;
        let acct = self.shipper_account.trim();
        if acct.is_empty() {
            return bad("shipper_account is required: the DHL Express account number".into());
        }
        if acct.len() > 12 || !acct.chars().all(|c| c.is_ascii_digit()) {
            return bad(format!(
                "shipper_account {:?} must be the DHL Express account number: 1 to 12 digits",
                self.shipper_account
            ));
        }
        for (field, code) in [
            ("product_code_eu", &self.product_code_eu),
            ("product_code_non_eu", &self.product_code_non_eu),
            ("product_code_domestic", &self.product_code_domestic),
        ] {
            if code.is_empty() || code.len() > 6 || !code.chars().all(|c| c.is_ascii_alphanumeric())
            {
                return bad(format!(
                    "{field} {code:?} must be a DHL global product code: 1 to 6 letters or digits"
                ));
            }
        }
        if !INCOTERMS.contains(&self.incoterm.as_str()) {
            return bad(format!(
                "incoterm {:?} must be one of {}",
                self.incoterm,
                INCOTERMS.join(", ")
            ));
        }
        if self.encoding_format != "pdf" {
            return bad(format!(
                "encoding_format {:?} is not supported: only \"pdf\" (the label is handed on as a PDF)",
                self.encoding_format
            ));
        }
        let t = &self.label_template;
        if t.is_empty() || t.len() > 25 || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return bad(format!(
                "label_template {t:?} must be a DHL template name such as ECOM26_84_001"
            ));
        }
        if !(1..=30).contains(&self.reference_lookup_days) {
            return bad(format!(
                "reference_lookup_days {} must be 1..=30",
                self.reference_lookup_days
            ));
        }
        if !(1..=1440).contains(&self.in_doubt_settle_minutes) {
            return bad(format!(
                "in_doubt_settle_minutes {} must be 1..=1440",
                self.in_doubt_settle_minutes
            ));
        }
        if let Some(v) = &self.voec_number {
            let v = v.trim();
            if v.is_empty() || v.len() > 35 || !v.chars().all(|c| c.is_ascii_alphanumeric()) {
                return bad(
                    "voec_number must be 1 to 35 letters or digits (the Norwegian VOEC number), or absent"
                        .into(),
                );
            }
        }
        let u = &self.tracking_url_template;
        if !u.contains("{awb}") || !(u.starts_with("https://") || u.starts_with("http://")) {
            return bad(format!(
                "tracking_url_template {u:?} must be an http(s) URL containing {{awb}}"
            ));
        }
        Ok(())
    }
}

/// The MyDHL API user name and password DHL issued to the shipper (HTTP Basic).
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: SecretString,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: SecretString::from(password.into()),
        }
    }

    /// Reads `{"username": "...", "password": "..."}`. A missing, blank or non-string field is
    /// named; no value is ever repeated in the message.
    pub fn from_map(map: &serde_json::Map<String, Value>) -> Result<Self> {
        let [username, password] =
            crate::settings::credential_fields(SYSTEM, map, ["username", "password"])?;
        if username.contains(':') {
            return Err(ConnectorError::config(
                SYSTEM,
                "credentials: field `username` must not contain ':' (HTTP Basic)",
            ));
        }
        Ok(Self {
            username,
            password: SecretString::from(password),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;
    use serde_json::json;

    #[test]
    fn defaults_fill_everything_but_the_account() {
        let c = Config::from_json(json!({"shipper_account": "123456789"})).unwrap();
        assert_eq!(c, Config::new("123456789"));
        assert_eq!(c.base_url, PRODUCTION_URL);
        assert_eq!(c.x_version, "3.1.0");
        assert_eq!(
            (
                c.product_code_eu.as_str(),
                c.product_code_non_eu.as_str(),
                c.incoterm.as_str()
            ),
            ("U", "P", "DAP")
        );
        let e = Config::from_json(json!({})).unwrap_err();
        assert!(e.to_string().contains("shipper_account"), "{e}");
        assert_eq!(e.class(), ErrorClass::Config);
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            (json!({"shipper_account": "12AB"}), "shipper_account"),
            (json!({"shipper_account": ""}), "shipper_account"),
            (
                json!({"shipper_account": "1", "base_url": "ftp://x"}),
                "base_url",
            ),
            (
                json!({"shipper_account": "1", "incoterm": "XYZ"}),
                "incoterm",
            ),
            (
                json!({"shipper_account": "1", "encoding_format": "zpl"}),
                "encoding_format",
            ),
            (
                json!({"shipper_account": "1", "product_code_eu": "TOOLONG7"}),
                "product_code_eu",
            ),
            (
                json!({"shipper_account": "1", "reference_lookup_days": 0}),
                "reference_lookup_days",
            ),
            (
                json!({"shipper_account": "1", "voec_number": " "}),
                "voec_number",
            ),
            (
                json!({"shipper_account": "1", "tracking_url_template": "https://x/"}),
                "tracking_url_template",
            ),
            (
                json!({"shipper_account": "1", "label_template": "a b"}),
                "label_template",
            ),
            (
                json!({"shipper_account": "1", "http": {"timeout_ms": 0}}),
                "timeout_ms",
            ),
            (json!({"shipper_account": "1", "colour": "red"}), "colour"),
        ];
        for (v, field) in cases {
            let e = Config::from_json(v.clone()).expect_err(&v.to_string());
            assert!(e.to_string().contains(field), "{v}: {e}");
            assert_eq!(e.class(), ErrorClass::Config);
        }
    }

    #[test]
    fn credentials_name_the_field_never_the_value() {
        let ok = json!({"username": "apiuser", "password": "s3cr3t-Pa55"});
        let c = Credentials::from_map(ok.as_object().unwrap()).unwrap();
        let shown = format!("{c:?}");
        assert!(
            shown.contains("apiuser") && !shown.contains("s3cr3t"),
            "{shown}"
        );
        for (v, needle) in [
            (json!({"password": "s3cr3t-Pa55"}), "`username` is missing"),
            (json!({"username": "u"}), "`password` is missing"),
            (
                json!({"username": "u", "password": "  "}),
                "`password` is blank",
            ),
            (json!({"username": "u", "password": 5}), "must be a string"),
            (
                json!({"username": "u", "password": "s3cr3t-Pa55", "key": "s3cr3t-Pa55"}),
                "unknown credentials field `key`",
            ),
        ] {
            let e = Credentials::from_map(v.as_object().unwrap()).unwrap_err();
            let m = e.to_string();
            assert!(m.contains(needle), "{m}");
            assert!(!m.contains("s3cr3t"), "a value leaked: {m}");
        }
    }
}
