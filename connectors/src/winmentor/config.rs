//! WinMentor connector settings.
//!
//! [`Config`] is plain data (serde, unknown keys refused) checked by [`Config::validate`] before
//! a client is built. `root` and `client_code` are required; everything else has a default.
//!
//! There are **no credentials**: the worker's access to the exchange directory is the
//! credential (file-system permissions on the share; later the SFTP account of an SFTP
//! [`Exchange`](super::exchange::Exchange)). The registry still passes a credentials map;
//! [`Config::check_no_credentials`] refuses any field in it, naming the field, never the value.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::SYSTEM;
use crate::error::{ConnectorError, Result};

/// The WinMentor connector's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The exchange directory (absolute path; a mounted share is fine). It must exist: the
    /// client creates its sub-directories, never the root (a missing mount must not turn into
    /// packages written to the worker's local disk).
    pub root: PathBuf,
    /// Code page of every file in the exchange [U: WinMENTOR's import code page is not
    /// documented; classic installations are Windows-1250].
    #[serde(default)]
    pub encoding: FileEncoding,
    /// Decimal separator of quantities and prices in packages and exports [U: the official
    /// examples show both `1.5` and `4,9842`].
    #[serde(default)]
    pub decimal_separator: DecimalSeparator,
    /// The WinMENTOR company (`SetNumeFirma`) the bridge imports into. When set, exports and
    /// result files naming another company are refused (a bridge pointed at the wrong company).
    #[serde(default)]
    pub company: Option<String>,
    /// Which date a customer order carries (`Data`, and so `AnLucru`/`LunaLucru`).
    #[serde(default)]
    pub document_date: DocumentDate,
    /// The time zone the document date is taken in.
    #[serde(default)]
    pub time_zone: TimeZone,
    /// Which partner (`CodClient`) the orders are for.
    pub client_code: ClientCode,
    /// The warehouse (`SimbolGestiune`) the shop sells from: when set, `stock(None)` reads only
    /// this warehouse (`stock(Some(w))` always reads `w`). The `COMANDA` format has no
    /// warehouse field, so WinMentor reserves in each article's default warehouse.
    #[serde(default)]
    pub warehouse: Option<String>,
    /// `SimbolCarnet` of the orders (empty: WinMentor's default series).
    #[serde(default)]
    pub series: String,
    /// Digits of the derived `NrDoc` (6-9; 9 fits WinMentor's 32-bit document numbers).
    #[serde(default = "default_nr_doc_digits")]
    pub nr_doc_digits: u8,
    /// Whether item prices are sent with VAT (`gross`) or without (`net`, the order line's gross
    /// price divided by its VAT rate). WinMENTOR reads the line price per the article's
    /// VAT-included flag [C W2]: choose what the articles use.
    #[serde(default)]
    pub item_prices: ItemPrices,
    /// The service article the order's shipping fee is put on; `None`: the fee is left out
    /// (the merchant adds it when invoicing).
    #[serde(default)]
    pub shipping_article: Option<ShippingArticle>,
    /// The unit (`DenUM`) sent for an article the catalog export does not list.
    #[serde(default = "default_unit")]
    pub fallback_unit: String,
    /// How long one `create_sales_document` / `find_sales_document` waits for the bridge's
    /// result file, in ms (100-60000). Keep it small: the queue retries, the flow looks up.
    #[serde(default = "default_result_timeout_ms")]
    pub result_timeout_ms: u64,
    /// How often the result directory is looked at while waiting, in ms (10-5000).
    #[serde(default = "default_result_poll_ms")]
    pub result_poll_ms: u64,
    /// An export older than this (by its header timestamp) is refused as stale (retryable).
    #[serde(default = "default_stale_export_after_secs")]
    pub stale_export_after_secs: u64,
    /// Which quantity the stock flow gets.
    #[serde(default)]
    pub stock_quantity: StockQuantity,
    /// What `find_sales_document` answers while a handed-over package has no result yet.
    #[serde(default)]
    pub pending_lookup: PendingLookup,
}

fn default_nr_doc_digits() -> u8 {
    9
}
fn default_unit() -> String {
    "buc".to_owned()
}
fn default_result_timeout_ms() -> u64 {
    3000
}
fn default_result_poll_ms() -> u64 {
    100
}
fn default_stale_export_after_secs() -> u64 {
    3600
}

/// The code page of the exchange files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FileEncoding {
    /// Windows-1250 (Central European). `ș`/`ț` (comma below) are written as `ş`/`ţ`
    /// (cedilla), the only forms the code page has, and read back as `ș`/`ț`.
    #[default]
    #[serde(rename = "windows-1250")]
    Windows1250,
    /// UTF-8 without BOM (a BOM is accepted when reading).
    #[serde(rename = "utf-8")]
    Utf8,
}

/// The decimal separator of numbers in the exchange files (no thousands separator, ever).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DecimalSeparator {
    #[serde(rename = ".")]
    Dot,
    /// The Romanian Windows locale's separator (default).
    #[default]
    #[serde(rename = ",")]
    Comma,
}

impl DecimalSeparator {
    pub const fn as_char(self) -> char {
        match self {
            DecimalSeparator::Dot => '.',
            DecimalSeparator::Comma => ',',
        }
    }
}

/// Which date a customer order is dated with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentDate {
    /// The marketplace order's date (default). An order handed over after its month was
    /// closed in WinMENTOR is refused by the import (the merchant reopens the month or
    /// switches to `handover`).
    #[default]
    OrderPlaced,
    /// The day the package is handed over (always in the current month).
    Handover,
}

/// The time zone of document dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeZone {
    /// Romania: EET (UTC+2), EEST (UTC+3) from the last Sunday of March to the last Sunday of
    /// October, switching at 01:00 UTC (EU rule).
    #[default]
    EuropeBucharest,
    Utc,
}

/// The partner the orders are for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "strategy", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientCode {
    /// One partner for all marketplace customers (e.g. `CLIENTI MARKETPLACE`), which must exist
    /// in WinMENTOR under this code (per the bridge's `SetIDPartField`). No personal data
    /// leaves the product.
    Constant { code: String },
    /// A new partner per order, code `<prefix><NrDoc>`, described by a `[ParteneriNoi_<code>]`
    /// section (name, address, phone, e-mail of the customer: personal data written to the
    /// exchange directory).
    NewPartnerPerOrder { prefix: String },
}

/// How item prices are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemPrices {
    /// The marketplace's gross unit price (articles flagged VAT-included).
    Gross,
    /// The unit price without VAT, to 4 decimals (WinMENTOR's usual `PretVanzare`).
    #[default]
    Net,
}

/// The article the shipping fee goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShippingArticle {
    /// Article code of a service article (e.g. `TRANSPORT`).
    pub code: String,
    #[serde(default = "default_unit")]
    pub unit: String,
}

/// Which stock quantity is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockQuantity {
    /// `Stoc − StocRezervat` (never below zero): what is left to sell (default).
    #[default]
    Available,
    /// `Stoc` as WinMENTOR counts it (orders not yet invoiced still in it).
    Physical,
}

/// What a lookup answers while a handed-over package waits for WinMentor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingLookup {
    /// A retryable error "waiting for WinMentor to import …": the queue looks again later
    /// (default). The package is certainly not refused yet, and nothing is created.
    #[default]
    Retry,
    /// `NeedsReview` with that evidence: a person decides.
    Review,
}

impl Config {
    /// A config with defaults for everything but the two required fields.
    pub fn new(root: impl Into<PathBuf>, client_code: ClientCode) -> Self {
        Self {
            root: root.into(),
            encoding: FileEncoding::default(),
            decimal_separator: DecimalSeparator::default(),
            company: None,
            document_date: DocumentDate::default(),
            time_zone: TimeZone::default(),
            client_code,
            warehouse: None,
            series: String::new(),
            nr_doc_digits: default_nr_doc_digits(),
            item_prices: ItemPrices::default(),
            shipping_article: None,
            fallback_unit: default_unit(),
            result_timeout_ms: default_result_timeout_ms(),
            result_poll_ms: default_result_poll_ms(),
            stale_export_after_secs: default_stale_export_after_secs(),
            stock_quantity: StockQuantity::default(),
            pending_lookup: PendingLookup::default(),
        }
    }

    /// Reads the stored settings (an object; `null` is refused: `root` and `client_code` are
    /// required).
    pub fn from_value(v: Value) -> Result<Self> {
        if v.is_null() {
            return Err(ConnectorError::config(
                SYSTEM,
                "settings are required: at least `root` and `client_code`",
            ));
        }
        let c: Config = serde_json::from_value(v.clone()).map_err(|e| {
            let field = culprit(&v)
                .map(|k| format!(" (field `{k}`)"))
                .unwrap_or_default();
            ConnectorError::config(SYSTEM, format!("invalid connector settings{field}: {e}"))
        })?;
        c.validate()?;
        Ok(c)
    }

    /// WinMentor takes no credentials: any field in the stored credentials is refused, named
    /// (never its value), so a secret meant for something else is not silently kept around.
    pub fn check_no_credentials(credentials: &Map<String, Value>) -> Result<()> {
        match credentials.keys().next() {
            None => Ok(()),
            Some(k) => Err(ConnectorError::config(
                SYSTEM,
                format!(
                    "unexpected credentials field `{k}`: WinMentor takes no credentials (access \
                     to the exchange directory is the credential); store none"
                ),
            )),
        }
    }

    /// Refuses bad values with a message naming the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ConnectorError::config(SYSTEM, m));
        let root = self.root.to_string_lossy();
        if root.trim().is_empty() {
            return bad("root must name the exchange directory".into());
        }
        if root.contains("://") {
            return bad(format!(
                "root {root:?} is a URL; only local (or mounted) directories are implemented \
                 (an SFTP exchange is a separate `Exchange` implementation)"
            ));
        }
        if !Path::new(&self.root).is_absolute() {
            return bad(format!("root {root:?} must be an absolute path"));
        }
        if let Some(c) = &self.company {
            check_text("company", c, 100)?;
        }
        match &self.client_code {
            ClientCode::Constant { code } => check_code("client_code.code", code)?,
            ClientCode::NewPartnerPerOrder { prefix } => {
                if prefix.chars().count() > 10 {
                    return bad("client_code.prefix must be at most 10 characters".into());
                }
                if !prefix.is_empty() {
                    check_code("client_code.prefix", prefix)?;
                }
            }
        }
        if let Some(w) = &self.warehouse {
            check_code("warehouse", w)?;
        }
        if self.series.chars().count() > 10
            || !self.series.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return bad(format!(
                "series {:?} must be at most 10 letters or digits",
                self.series
            ));
        }
        if !(6..=9).contains(&self.nr_doc_digits) {
            return bad(format!(
                "nr_doc_digits must be 6..=9 (got {})",
                self.nr_doc_digits
            ));
        }
        if let Some(s) = &self.shipping_article {
            check_code("shipping_article.code", &s.code)?;
            check_code("shipping_article.unit", &s.unit)?;
        }
        check_code("fallback_unit", &self.fallback_unit)?;
        if !(100..=60_000).contains(&self.result_timeout_ms) {
            return bad(format!(
                "result_timeout_ms must be 100..=60000 (got {})",
                self.result_timeout_ms
            ));
        }
        if !(10..=5_000).contains(&self.result_poll_ms) {
            return bad(format!(
                "result_poll_ms must be 10..=5000 (got {})",
                self.result_poll_ms
            ));
        }
        if !(1..=7 * 86_400).contains(&self.stale_export_after_secs) {
            return bad(format!(
                "stale_export_after_secs must be 1..=604800 (got {})",
                self.stale_export_after_secs
            ));
        }
        Ok(())
    }
}

/// The top-level field whose value alone fails to deserialize (serde's messages for enums do
/// not name the field).
fn culprit(v: &Value) -> Option<String> {
    let obj = v.as_object()?;
    let base = || {
        let mut m = Map::new();
        m.insert("root".into(), Value::String("/".into()));
        m.insert(
            "client_code".into(),
            serde_json::json!({"strategy": "constant", "code": "X"}),
        );
        m
    };
    obj.iter().find_map(|(k, val)| {
        let mut m = base();
        m.insert(k.clone(), val.clone());
        serde_json::from_value::<Config>(Value::Object(m))
            .is_err()
            .then(|| k.clone())
    })
}

/// A code written into a `;` line or a section name: no separators, no line breaks.
fn check_code(field: &str, v: &str) -> Result<()> {
    check_text(field, v, 40)?;
    if v.contains([';', '[', ']', '=']) {
        return Err(ConnectorError::config(
            SYSTEM,
            format!("{field} {v:?} must not contain `;`, `[`, `]` or `=`"),
        ));
    }
    Ok(())
}

fn check_text(field: &str, v: &str, max: usize) -> Result<()> {
    if v.trim().is_empty() {
        return Err(ConnectorError::config(
            SYSTEM,
            format!("{field} must not be blank"),
        ));
    }
    if v.trim() != v
        || v.chars().any(char::is_control)
        || v.chars().count() > max
        || v.contains(';')
    {
        return Err(ConnectorError::config(
            SYSTEM,
            format!(
                "{field} {v:?} must be at most {max} characters, without surrounding spaces, \
                 `;` or control characters"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"root": "/srv/winmentor", "client_code": {"strategy": "constant", "code": "MKT"}})
    }

    fn with(k: &str, v: Value) -> Value {
        let mut b = base();
        b[k] = v;
        b
    }

    fn msg(v: Value) -> String {
        Config::from_value(v)
            .expect_err("should be refused")
            .to_string()
    }

    #[test]
    fn defaults_fill_everything_but_root_and_client_code() {
        let c = Config::from_value(base()).unwrap();
        assert_eq!(c.encoding, FileEncoding::Windows1250);
        assert_eq!(c.decimal_separator, DecimalSeparator::Comma);
        assert_eq!(c.nr_doc_digits, 9);
        assert_eq!(c.result_timeout_ms, 3000);
        assert_eq!(c.fallback_unit, "buc");
        assert_eq!(
            c,
            Config::new(
                "/srv/winmentor",
                ClientCode::Constant { code: "MKT".into() }
            )
        );
        let c = Config::from_value(json!({
            "root": "/srv/wm", "encoding": "utf-8", "decimal_separator": ".",
            "client_code": {"strategy": "new_partner_per_order", "prefix": "MGZ"},
            "document_date": "handover", "time_zone": "utc", "item_prices": "gross",
            "shipping_article": {"code": "TRANSPORT"}, "pending_lookup": "review"
        }))
        .unwrap();
        assert_eq!(c.encoding, FileEncoding::Utf8);
        assert_eq!(c.decimal_separator.as_char(), '.');
        assert_eq!(c.shipping_article.unwrap().unit, "buc");
    }

    #[test]
    fn bad_values_are_refused_naming_the_field() {
        assert!(msg(Value::Null).contains("root"));
        assert!(
            msg(json!({"client_code": {"strategy": "constant", "code": "X"}})).contains("root")
        );
        assert!(msg(json!({"root": "/x"})).contains("client_code"));
        assert!(msg(with("root", json!("relative/dir"))).contains("absolute"));
        assert!(msg(with("root", json!("sftp://host/dir"))).contains("SFTP"));
        assert!(msg(with("encoding", json!("latin1"))).contains("encoding"));
        assert!(msg(with("decimal_separator", json!(";"))).contains("decimal_separator"));
        assert!(msg(with("nr_doc_digits", json!(12))).contains("nr_doc_digits"));
        assert!(msg(with("result_timeout_ms", json!(0))).contains("result_timeout_ms"));
        assert!(msg(with("result_poll_ms", json!(0))).contains("result_poll_ms"));
        assert!(msg(with("stale_export_after_secs", json!(0))).contains("stale_export_after_secs"));
        assert!(msg(with("series", json!("A-1"))).contains("series"));
        assert!(msg(with("company", json!(" "))).contains("company"));
        assert!(msg(with("warehouse", json!("a;b"))).contains("warehouse"));
        assert!(msg(with("fallback_unit", json!(""))).contains("fallback_unit"));
        assert!(
            msg(with(
                "client_code",
                json!({"strategy": "constant", "code": "A;B"})
            ))
            .contains("client_code.code")
        );
        assert!(
            msg(with(
                "client_code",
                json!({"strategy": "constant", "code": "A", "extra": 1})
            ))
            .contains("extra")
        );
        assert!(msg(with("surprise", json!(1))).contains("surprise"));
    }

    #[test]
    fn credentials_are_refused_by_name_never_value() {
        Config::check_no_credentials(&Map::new()).unwrap();
        let mut m = Map::new();
        m.insert("password".into(), json!("s3cret"));
        let e = Config::check_no_credentials(&m).unwrap_err().to_string();
        assert!(e.contains("`password`") && !e.contains("s3cret"), "{e}");
    }
}
