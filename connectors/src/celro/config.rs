//! Cel.ro connector settings and credentials.
//!
//! Every setting has a default, so `{}` is a valid configuration; [`Config::validate`] refuses
//! bad values with a message naming the field. Credentials are separate, and their `Debug`
//! never shows the password.

use std::collections::BTreeMap;
use std::fmt;

use canonical::OrderStatus;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ConnectorError, Result};
use crate::http::HttpSettings;

use super::SYSTEM;

/// The production endpoint of the Cel.ro marketplace API (R1 `Config`).
pub const DEFAULT_BASE_URL: &str = "https://api-mp.cel.ro/market_api/";

/// How Cel.ro's `YYYY-MM-DD HH:MM:SS` timestamps are to be read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ServerTime {
    /// Romanian civil time (EET/EEST, the EU daylight-saving rule). ASSUMPTION \[I\]: Cel.ro is a
    /// Romanian PHP application; no source states the zone.
    #[default]
    EuropeBucharest,
    /// UTC.
    Utc,
}

/// What `ship_order` does after the AWB is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AfterAwb {
    /// Nothing more (the merchant finishes the order in the Cel.ro panel).
    None,
    /// `orders/SetReadyForDelivery`: the parcel is with the courier.
    #[default]
    ReadyForDelivery,
    /// `orders/finishOrder`: closes the order (needs the invoice attached first).
    Finish,
}

/// One rule of the status-name mapping: a name containing `contains` (case- and
/// diacritics-insensitive) maps to `status`. Rules are tried in order; the first match wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameRule {
    pub contains: String,
    pub status: OrderStatus,
}

impl NameRule {
    fn new(contains: &str, status: OrderStatus) -> Self {
        Self {
            contains: contains.to_owned(),
            status,
        }
    }
}

/// How Cel.ro's numeric order statuses become canonical ones.
///
/// The real status table is not published \[U\]: the client fetches `orders/getOrderStatusList`
/// at run time, then maps a code by `by_code` (exact, wins), else by the code's *name* through
/// `by_name`, else [`OrderStatus::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusMap {
    /// Exact overrides: numeric code (as a string) → status.
    pub by_code: BTreeMap<String, OrderStatus>,
    /// Name rules, first match wins.
    pub by_name: Vec<NameRule>,
}

impl Default for StatusMap {
    fn default() -> Self {
        use OrderStatus::*;
        Self {
            by_code: BTreeMap::new(),
            by_name: vec![
                NameRule::new("anulat", Cancelled),
                NameRule::new("storn", Returned),
                NameRule::new("retur", Returned),
                NameRule::new("finaliz", Completed),
                NameRule::new("livrat", Completed),
                NameRule::new("gata de livrare", Shipped),
                NameRule::new("awb", Shipped),
                NameRule::new("expedi", Shipped),
                NameRule::new("neconfirm", New),
                NameRule::new("confirm", Accepted),
                NameRule::new("procesare", Accepted),
                NameRule::new("nou", New),
            ],
        }
    }
}

/// Lower case, Romanian diacritics folded (ă â î ș ş ț ţ), trimmed.
pub fn fold_name(s: &str) -> String {
    s.trim()
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'ă' | 'â' => 'a',
            'î' => 'i',
            'ș' | 'ş' => 's',
            'ț' | 'ţ' => 't',
            c => c,
        })
        .collect()
}

impl StatusMap {
    /// The canonical status of a status *name*, by the rules.
    pub fn by_name(&self, name: &str) -> Option<OrderStatus> {
        let folded = fold_name(name);
        self.by_name
            .iter()
            .find(|r| folded.contains(&fold_name(&r.contains)))
            .map(|r| r.status)
    }
}

/// The Cel.ro connector's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `https://api-mp.cel.ro/market_api/`; a trailing `/` is added when missing.
    pub base_url: String,
    /// Timeouts and inline retries (the wrapper's 30 s total and 5 s connect by default).
    pub http: HttpSettings,
    /// Sent as `api_version` on every call, as the official wrapper does.
    pub api_version: String,
    /// Send `test=1` on every call like the official wrapper (hard-wired there). Its server-side
    /// meaning is unknown \[U\], so it is off unless asked for.
    pub send_test_flag: bool,
    /// `idAdresaRidicare`: the pickup address id `orders/importAWB` needs (from the Cel.ro panel
    /// or `admininfo/getAffiliateAddresses`). Required by `ship_order` only.
    pub pickup_address_id: Option<u64>,
    /// `providerId` of `orders/addOrderInvoice` (0: the merchant's own invoice file).
    pub invoice_provider_id: u64,
    /// Send `overridePrice=1`: Cel.ro refuses a price change above 10 % without it.
    pub override_price_jumps: bool,
    /// Numeric order status → canonical status (see [`StatusMap`]).
    pub status_map: StatusMap,
    /// How long the fetched status list is cached.
    pub status_list_ttl_secs: u64,
    /// `motiv` of `orders/cancelOrder` (a `listCancellingStatuses` id; 65 in the examples).
    /// `None`: only the free-text reason (`observatii`, more than 4 characters) is sent.
    pub cancel_reason_id: Option<u32>,
    /// Products per `import/importer` call.
    pub import_batch_size: usize,
    /// Products per `products/updateStockAndPrice` call.
    pub stock_batch_size: usize,
    /// Models per `import/productImportStatus` call.
    pub status_batch_size: usize,
    /// Orders (and return requests) asked per page (`limit`).
    pub orders_page_size: u32,
    /// Logins tried for one call whose token keeps being refused (the wrapper uses 10).
    pub max_relogin: u32,
    /// How far each polling window reaches back before the previous one's start (clock skew,
    /// second resolution, DST). Orders seen twice are deduplicated by id downstream.
    pub poll_overlap_secs: u64,
    /// How far back the first poll (no cursor) looks.
    pub initial_lookback_days: u32,
    /// The time zone of Cel.ro's timestamps.
    pub server_time: ServerTime,
    /// What `ship_order` does after `orders/importAWB`.
    pub after_awb: AfterAwb,
    /// Send the carrier's name as an extra `courier` field of `orders/importAWB` (not in the
    /// wrapper \[I\]; PHP endpoints ignore fields they do not read).
    pub send_courier_name: bool,
    /// `garantie` (months) of new products.
    pub warranty_months: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            http: HttpSettings::default(),
            api_version: "2.2.0".to_owned(),
            send_test_flag: false,
            pickup_address_id: None,
            invoice_provider_id: 0,
            override_price_jumps: false,
            status_map: StatusMap::default(),
            status_list_ttl_secs: 3_600,
            cancel_reason_id: Some(65),
            import_batch_size: 50,
            stock_batch_size: 100,
            status_batch_size: 100,
            orders_page_size: 50,
            max_relogin: 3,
            poll_overlap_secs: 900,
            initial_lookback_days: 30,
            server_time: ServerTime::default(),
            after_awb: AfterAwb::default(),
            send_courier_name: true,
            warranty_months: 24,
        }
    }
}

impl Config {
    /// Reads a configuration from JSON (`{}` or `null` for the defaults) and validates it.
    pub fn from_json(v: Value) -> Result<Self> {
        let v = if v.is_null() {
            Value::Object(Map::new())
        } else {
            v
        };
        let c: Config = serde_json::from_value(v)
            .map_err(|e| ConnectorError::config(SYSTEM, format!("invalid settings: {e}")))?;
        c.validate()?;
        Ok(c)
    }

    /// Refuses bad values, naming the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ConnectorError::config(SYSTEM, m));
        match reqwest::Url::parse(&self.base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                if u.query().is_some() || u.fragment().is_some() {
                    return bad("base_url must not have a query or fragment".into());
                }
            }
            Ok(u) => {
                return bad(format!(
                    "base_url must be an http(s) URL with a host, got scheme {:?}",
                    u.scheme()
                ));
            }
            Err(e) => return bad(format!("base_url is not a URL: {e}")),
        }
        self.http.validate(SYSTEM)?;
        if self.api_version.trim().is_empty() {
            return bad("api_version must not be empty".into());
        }
        for (field, n, max) in [
            ("import_batch_size", self.import_batch_size, 500),
            ("stock_batch_size", self.stock_batch_size, 1_000),
            ("status_batch_size", self.status_batch_size, 1_000),
        ] {
            if n == 0 || n > max {
                return bad(format!("{field} must be 1..={max}, got {n}"));
            }
        }
        if self.orders_page_size == 0 || self.orders_page_size > 1_000 {
            return bad(format!(
                "orders_page_size must be 1..=1000, got {}",
                self.orders_page_size
            ));
        }
        if self.max_relogin == 0 || self.max_relogin > 10 {
            return bad(format!(
                "max_relogin must be 1..=10, got {}",
                self.max_relogin
            ));
        }
        if self.poll_overlap_secs > 86_400 {
            return bad(format!(
                "poll_overlap_secs must be at most 86400 (one day), got {}",
                self.poll_overlap_secs
            ));
        }
        if self.initial_lookback_days == 0 || self.initial_lookback_days > 365 {
            return bad(format!(
                "initial_lookback_days must be 1..=365, got {}",
                self.initial_lookback_days
            ));
        }
        if self.status_list_ttl_secs == 0 {
            return bad("status_list_ttl_secs must be at least 1".into());
        }
        if self.pickup_address_id == Some(0) {
            return bad("pickup_address_id must be a Cel.ro address id (not 0)".into());
        }
        if self.cancel_reason_id == Some(0) {
            return bad("cancel_reason_id must be a Cel.ro reason id (not 0) or null".into());
        }
        for code in self.status_map.by_code.keys() {
            if code.trim().parse::<i64>().is_err() {
                return bad(format!(
                    "status_map.by_code key {code:?} is not a numeric Cel.ro status code"
                ));
            }
        }
        for (i, r) in self.status_map.by_name.iter().enumerate() {
            if r.contains.trim().is_empty() {
                return bad(format!(
                    "status_map.by_name[{i}].contains must not be empty"
                ));
            }
        }
        if self.warranty_months > 240 {
            return bad(format!(
                "warranty_months must be at most 240, got {}",
                self.warranty_months
            ));
        }
        Ok(())
    }

    /// `base_url` with exactly one trailing slash.
    pub fn base(&self) -> String {
        format!("{}/", self.base_url.trim_end_matches('/'))
    }
}

/// A merchant's Cel.ro login. `Debug` shows the user name only.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: SecretString,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
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

    /// Reads `{"username": …, "password": …}`. Errors name the field, never a value.
    pub fn from_map(m: &Map<String, Value>) -> Result<Self> {
        let [username, password] =
            crate::settings::credential_fields(SYSTEM, m, ["username", "password"])?;
        Ok(Self {
            username: username.trim().to_owned(),
            password: SecretString::from(password),
        })
    }

    pub(crate) fn password(&self) -> &str {
        self.password.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_and_null_json_give_the_defaults() {
        assert_eq!(Config::from_json(json!({})).unwrap(), Config::default());
        assert_eq!(Config::from_json(Value::Null).unwrap(), Config::default());
        let d = Config::default();
        assert_eq!(d.http.timeout_ms, 30_000);
        assert_eq!(d.http.connect_timeout_ms, 5_000);
        assert_eq!(d.api_version, "2.2.0");
        assert!(!d.send_test_flag);
        assert_eq!(d.cancel_reason_id, Some(65));
        assert_eq!(d.max_relogin, 3);
        assert_eq!(d.base(), DEFAULT_BASE_URL);
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            (json!({"base_url": "ftp://x/"}), "base_url"),
            (json!({"base_url": "not a url"}), "base_url"),
            (json!({"api_version": " "}), "api_version"),
            (json!({"import_batch_size": 0}), "import_batch_size"),
            (json!({"stock_batch_size": 5000}), "stock_batch_size"),
            (json!({"orders_page_size": 0}), "orders_page_size"),
            (json!({"max_relogin": 0}), "max_relogin"),
            (json!({"poll_overlap_secs": 100000}), "poll_overlap_secs"),
            (json!({"initial_lookback_days": 0}), "initial_lookback_days"),
            (json!({"pickup_address_id": 0}), "pickup_address_id"),
            (
                json!({"status_map": {"by_code": {"x": "new"}}}),
                "status_map.by_code",
            ),
            (
                json!({"status_map": {"by_name": [{"contains": "", "status": "new"}]}}),
                "status_map.by_name[0]",
            ),
            (json!({"http": {"timeout_ms": 0}}), "http.timeout_ms"),
            (json!({"surprise": 1}), "surprise"),
        ];
        for (v, field) in cases {
            let e = Config::from_json(v.clone()).expect_err(&v.to_string());
            assert_eq!(e.class(), crate::ErrorClass::Config);
            assert!(e.to_string().contains(field), "{e} lacks {field}");
        }
    }

    #[test]
    fn status_names_map_by_rules_with_diacritics_folded() {
        let m = StatusMap::default();
        assert_eq!(m.by_name("Comandă nouă"), Some(OrderStatus::New));
        assert_eq!(m.by_name("Neconfirmată"), Some(OrderStatus::New));
        assert_eq!(m.by_name("Confirmată"), Some(OrderStatus::Accepted));
        assert_eq!(m.by_name("Anulată"), Some(OrderStatus::Cancelled));
        assert_eq!(m.by_name("Gata de livrare"), Some(OrderStatus::Shipped));
        assert_eq!(m.by_name("AWB emis"), Some(OrderStatus::Shipped));
        assert_eq!(m.by_name("Finalizată"), Some(OrderStatus::Completed));
        assert_eq!(m.by_name("Stornată"), Some(OrderStatus::Returned));
        assert_eq!(m.by_name("Ceva necunoscut"), None);
    }

    #[test]
    fn credentials_name_the_field_and_never_the_value() {
        let ok = json!({"username": "shop@x.ro", "password": "s3cr3t-pa55"});
        let c = Credentials::from_map(ok.as_object().unwrap()).unwrap();
        assert_eq!(c.password(), "s3cr3t-pa55");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cr3t") && shown.contains("shop@x.ro"),
            "{shown}"
        );
        for (v, msg) in [
            (json!({"username": "u"}), "`password` is missing"),
            (
                json!({"username": " ", "password": "hunter22"}),
                "`username` is blank",
            ),
            (
                json!({"username": "u", "password": 5}),
                "`password` must be a string",
            ),
            (
                json!({"username": "u", "password": "p", "token": "zzz-secret"}),
                "unknown credentials field `token`",
            ),
        ] {
            let e = Credentials::from_map(v.as_object().unwrap()).unwrap_err();
            let s = e.to_string();
            assert!(s.contains(msg), "{s}");
            assert!(!s.contains("hunter22") && !s.contains("zzz-secret"), "{s}");
        }
    }
}
