//! Charisma connector settings and credentials.
//!
//! Charisma has no public API: each installation exposes its own SOAP service (WSDL per
//! installation, read by a person at onboarding, **never fetched at runtime**). So almost
//! every setting here is something the installation must confirm; the defaults are the values
//! the one known client used [3P C1] or the choice that can do no harm (see
//! `docs/connectors/charisma.md`). [`Config::validate`] names the bad field.
//!
//! [`Credentials`] hold the `ApplicationId` the `IdentificationMessage` header carries; it is
//! never printed (`Debug` redacted, errors name the field, not the value).

use std::collections::BTreeMap;
use std::fmt;

use canonical::{Currency, VatRate};
use chrono::NaiveDate;
use reqwest::Url;
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::SYSTEM;
use super::soap::SoapVersion;
use crate::error::{ConnectorError, Result};
use crate::http::HttpSettings;

/// The connector's settings. `endpoint` and the partner have no usable default: `validate`
/// refuses a config without them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The installation's service URL (the WSDL's `soap:address`), e.g.
    /// `https://erp.example.ro/CharismaWS/Service.svc`. Required.
    pub endpoint: String,
    /// `1.1` (default) or `1.2`.
    pub soap_version: SoapVersion,
    /// The WSDL's `targetNamespace` of the operations' messages (default `http://tempuri.org/`,
    /// the .NET default when a service declares none).
    pub service_namespace: String,
    /// The `SOAPAction` template: `{namespace}` and `{operation}` are replaced (default
    /// `{namespace}{operation}`); an empty string sends `SOAPAction: ""`.
    pub soap_action: String,
    /// The operation names of this installation.
    pub operations: Operations,
    pub http: HttpSettings,
    /// `getPrice`'s `PriceListDate`: `today` (UTC date of the call, default) or a fixed
    /// `YYYY-MM-DD`.
    pub price_list_date: String,
    /// VAT percent → Charisma `VATId` (e.g. `{"19": "28"}`). A rate not listed uses the
    /// article's own `VATId` when its `VATPercent` is the line's rate.
    pub vat_ids: BTreeMap<String, String>,
    /// Currency → Charisma `CurrencyId` (e.g. `{"RON": "25"}`). An order in a currency not
    /// listed is refused; catalogue prices in a `CurrencyId` not listed are skipped.
    pub currency_ids: BTreeMap<Currency, String>,
    /// Which partner an order is booked to.
    pub partner: PartnerStrategy,
    /// `PaymentType` of every order (C1: `Card`; marketplaces collect the money).
    pub payment_type: String,
    /// `OrderState` of every order (default `Draft`: the merchant confirms in Charisma).
    pub order_state: String,
    /// A warehouse id sent as `WarehouseId` on the order, only if the installation's
    /// `OrderReq` has that field [U] (default: not sent).
    pub warehouse: Option<String>,
    /// Prefix of the `ExternalId` made from the marketplace order id (one per connection, so
    /// two marketplaces' equal order ids never collide).
    pub external_id_prefix: String,
    /// Longest `ExternalId` sent (longer ids are shortened deterministically with a hash).
    pub max_external_id_len: usize,
    /// The installation guarantees that `createOrder` refuses a repeated `ExternalId` with a
    /// fault naming the existing `OrderId` (then a repeated create returns that order).
    pub external_id_unique: bool,
    /// `ItemCode` of the service article that carries the shipping fee; an order with a fee
    /// is refused while this is unset.
    pub shipping_item_code: Option<String>,
    /// How long the nomenclature (`GetItem`, ItemCode → ItemId) is reused for orders, in s.
    pub nomenclature_cache_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            soap_version: SoapVersion::V11,
            service_namespace: "http://tempuri.org/".into(),
            soap_action: "{namespace}{operation}".into(),
            operations: Operations::default(),
            http: HttpSettings::default(),
            price_list_date: "today".into(),
            vat_ids: BTreeMap::new(),
            currency_ids: BTreeMap::new(),
            partner: PartnerStrategy::default(),
            payment_type: "Card".into(),
            order_state: "Draft".into(),
            warehouse: None,
            external_id_prefix: "MGZ-".into(),
            max_external_id_len: 50,
            external_id_unique: false,
            shipping_item_code: None,
            nomenclature_cache_secs: 900,
        }
    }
}

/// The SOAP operation names (C1's spelling by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Operations {
    pub get_item: String,
    pub get_price: String,
    pub get_partner: String,
    pub get_city: String,
    pub create_partner: String,
    pub create_order: String,
    /// The order lookup by `ExternalId` (`<op><ExternalId>…</ExternalId></op>` answering the
    /// orders with `OrderId` and `ExternalId`), **only if the installation has one**: no such
    /// operation is known [U]. `None` (default): recovery parks the order for review.
    pub get_order: Option<String>,
}

impl Default for Operations {
    fn default() -> Self {
        Self {
            get_item: "GetItem".into(),
            get_price: "getPrice".into(),
            get_partner: "getPartner".into(),
            get_city: "getCity".into(),
            create_partner: "createPartner".into(),
            create_order: "createOrder".into(),
            get_order: None,
        }
    }
}

/// Which partner orders are booked to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum PartnerStrategy {
    /// One partner for the marketplace's customers (the merchant creates it in Charisma,
    /// e.g. "Clienti CDON"): no personal data enters Charisma through us.
    Generic {
        partner_id: String,
        /// `BillingAddressId` of the order (the partner's address), when required.
        billing_address_id: Option<String>,
    },
    /// A partner per customer: companies by `FiscalRegistration` (their VAT id), private
    /// persons per order (marketplaces give no stable customer id) with the partner's
    /// `ExternalId` as `FiscalRegistration`, as C1 did. Looked up with `getPartner` first.
    PerCustomer {
        /// `CityId` used when the customer's city is not in `getCity` (`None`: refuse).
        fallback_city_id: Option<String>,
    },
}

impl Default for PartnerStrategy {
    fn default() -> Self {
        PartnerStrategy::Generic {
            partner_id: String::new(),
            billing_address_id: None,
        }
    }
}

impl Config {
    /// Refuses bad values with a message naming the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ConnectorError::config(SYSTEM, m));
        self.endpoint_url()?;
        if self.service_namespace.trim().is_empty() {
            return bad("service_namespace must not be blank (the WSDL's targetNamespace)".into());
        }
        if !self.soap_action.is_empty() && !self.soap_action.contains("{operation}") {
            return bad("soap_action must contain {operation}, or be empty".into());
        }
        let o = &self.operations;
        for (field, name) in [
            ("get_item", &o.get_item),
            ("get_price", &o.get_price),
            ("get_partner", &o.get_partner),
            ("get_city", &o.get_city),
            ("create_partner", &o.create_partner),
            ("create_order", &o.create_order),
        ]
        .into_iter()
        .chain(o.get_order.as_ref().map(|g| ("get_order", g)))
        {
            if !is_xml_name(name) {
                return bad(format!(
                    "operations.{field} must be an XML element name (letters, digits, _ - .)"
                ));
            }
        }
        self.http.validate(SYSTEM)?;
        self.price_list_date()?;
        let mut seen = BTreeMap::new();
        for (pct, id) in &self.vat_ids {
            let rate = parse_percent(pct).ok_or_else(|| {
                ConnectorError::config(
                    SYSTEM,
                    format!("vat_ids: {pct:?} is not a VAT percent 0-100 (e.g. \"19\")"),
                )
            })?;
            if id.trim().is_empty() {
                return bad(format!("vat_ids: the VATId of {pct} % is blank"));
            }
            if seen.insert(rate, pct).is_some() {
                return bad(format!("vat_ids: {pct} % is listed twice"));
            }
        }
        let mut ids = BTreeMap::new();
        for (cur, id) in &self.currency_ids {
            if id.trim().is_empty() {
                return bad(format!("currency_ids: the CurrencyId of {cur} is blank"));
            }
            if let Some(other) = ids.insert(id.trim(), cur) {
                return bad(format!(
                    "currency_ids: {other} and {cur} have the same CurrencyId {id}"
                ));
            }
        }
        match &self.partner {
            PartnerStrategy::Generic {
                partner_id,
                billing_address_id,
            } => {
                if partner_id.trim().is_empty() {
                    return bad(
                        "partner.partner_id must be set (the Charisma PartnerId orders \
                                are booked to), or use mode per_customer"
                            .into(),
                    );
                }
                if billing_address_id
                    .as_ref()
                    .is_some_and(|b| b.trim().is_empty())
                {
                    return bad("partner.billing_address_id is blank".into());
                }
            }
            PartnerStrategy::PerCustomer { fallback_city_id } => {
                if fallback_city_id
                    .as_ref()
                    .is_some_and(|c| c.trim().is_empty())
                {
                    return bad("partner.fallback_city_id is blank".into());
                }
            }
        }
        if self.payment_type.trim().is_empty() {
            return bad("payment_type must not be blank (C1 used Card)".into());
        }
        if self.order_state.trim().is_empty() {
            return bad("order_state must not be blank (default Draft)".into());
        }
        if self.warehouse.as_ref().is_some_and(|w| w.trim().is_empty()) {
            return bad("warehouse is blank; remove it or name the WarehouseId".into());
        }
        if self.external_id_prefix.chars().any(char::is_control) {
            return bad("external_id_prefix must be printable".into());
        }
        if !(20..=255).contains(&self.max_external_id_len)
            || self.external_id_prefix.chars().count() + 17 > self.max_external_id_len
        {
            return bad(
                "max_external_id_len must be 20..=255 and leave 17 characters after \
                        external_id_prefix"
                    .into(),
            );
        }
        if self
            .shipping_item_code
            .as_ref()
            .is_some_and(|s| s.trim().is_empty())
        {
            return bad("shipping_item_code is blank".into());
        }
        if self.nomenclature_cache_secs > 86_400 {
            return bad("nomenclature_cache_secs must be at most 86400".into());
        }
        Ok(())
    }

    /// The endpoint, parsed.
    pub(crate) fn endpoint_url(&self) -> Result<Url> {
        let bad = |m: String| Err(ConnectorError::config(SYSTEM, m));
        if self.endpoint.trim().is_empty() {
            return bad(
                "endpoint must be set to the installation's service URL (the WSDL's \
                        soap:address)"
                    .into(),
            );
        }
        let url = match Url::parse(self.endpoint.trim()) {
            Ok(u) => u,
            Err(e) => return bad(format!("endpoint is not a URL: {e}")),
        };
        if !matches!(url.scheme(), "https" | "http") {
            return bad(format!(
                "endpoint must be http or https, not {}",
                url.scheme()
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return bad("endpoint must not carry credentials".into());
        }
        if url.fragment().is_some() {
            return bad("endpoint must not have a fragment".into());
        }
        if url.query().is_some_and(|q| q.eq_ignore_ascii_case("wsdl")) {
            return bad("endpoint is the service URL, not the WSDL URL: drop ?wsdl".into());
        }
        Ok(url)
    }

    /// The `PriceListDate` policy: `None` means today.
    pub fn price_list_date(&self) -> Result<Option<NaiveDate>> {
        let s = self.price_list_date.trim();
        if s.eq_ignore_ascii_case("today") {
            return Ok(None);
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| {
                ConnectorError::config(
                    SYSTEM,
                    format!("price_list_date must be \"today\" or YYYY-MM-DD, not {s:?}"),
                )
            })
    }

    /// The configured `VATId` of a rate.
    pub fn vat_id(&self, rate: VatRate) -> Option<&str> {
        self.vat_ids
            .iter()
            .find(|(p, _)| parse_percent(p) == Some(rate.as_percent()))
            .map(|(_, id)| id.trim())
    }

    /// The currency of a `CurrencyId` (reverse of `currency_ids`).
    pub fn currency_of(&self, currency_id: &str) -> Option<Currency> {
        self.currency_ids
            .iter()
            .find(|(_, id)| id.trim() == currency_id.trim())
            .map(|(c, _)| *c)
    }

    /// The `SOAPAction` of an operation.
    pub fn action_for(&self, operation: &str) -> String {
        self.soap_action
            .replace("{namespace}", &self.service_namespace)
            .replace("{operation}", operation)
    }
}

fn parse_percent(s: &str) -> Option<Decimal> {
    let d: Decimal = s.trim().trim_end_matches('%').trim().parse().ok()?;
    VatRate::percent(d).ok().map(VatRate::as_percent)
}

fn is_xml_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The installation's `ApplicationId` (the `IdentificationMessage` header). Never printed.
#[derive(Clone)]
pub struct Credentials {
    pub application_id: SecretString,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("application_id", &"[redacted]")
            .finish()
    }
}

impl Credentials {
    pub fn new(application_id: impl Into<String>) -> Result<Self> {
        let id: String = application_id.into();
        if id.trim().is_empty() {
            return Err(ConnectorError::config(SYSTEM, "`application_id` is blank"));
        }
        if id.chars().any(char::is_control) {
            return Err(ConnectorError::config(
                SYSTEM,
                "`application_id` contains control characters",
            ));
        }
        Ok(Self {
            application_id: SecretString::from(id),
        })
    }

    /// Reads `{"application_id": "…"}`. Messages name a missing, blank, non-string or unknown
    /// field, never a value.
    pub fn from_map(map: &Map<String, Value>) -> Result<Self> {
        let [id] = crate::settings::credential_fields(SYSTEM, map, ["application_id"])?;
        Self::new(id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;
    use serde_json::json;

    fn cfg(v: Value) -> Result<Config> {
        let c: Config =
            serde_json::from_value(v).map_err(|e| ConnectorError::config(SYSTEM, e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    fn base() -> Value {
        json!({
            "endpoint": "https://erp.example.ro/CharismaWS/Service.svc",
            "partner": {"mode": "generic", "partner_id": "228587"},
            "vat_ids": {"19": "28", "9": "29"},
            "currency_ids": {"RON": "25", "EUR": "26"}
        })
    }

    fn with(k: &str, v: Value) -> Value {
        let mut b = base();
        b[k] = v;
        b
    }

    fn err(v: Value) -> String {
        cfg(v).unwrap_err().to_string()
    }

    #[test]
    fn a_minimal_config_validates_with_safe_defaults() {
        let c = cfg(base()).unwrap();
        assert_eq!(c.soap_version, SoapVersion::V11);
        assert_eq!(c.payment_type, "Card");
        assert_eq!(c.order_state, "Draft");
        assert_eq!(c.operations.get_order, None, "no lookup unless confirmed");
        assert!(!c.external_id_unique);
        assert_eq!(c.price_list_date().unwrap(), None);
        assert_eq!(c.vat_id(VatRate::percent(dec!(19.0)).unwrap()), Some("28"));
        assert_eq!(c.vat_id(VatRate::percent(dec!(5)).unwrap()), None);
        assert_eq!(c.currency_of("26"), Some(Currency::Eur));
        assert_eq!(c.action_for("GetItem"), "http://tempuri.org/GetItem");
    }

    #[test]
    fn bad_fields_are_named() {
        assert!(err(json!({})).contains("endpoint must be set"));
        assert!(err(with("endpoint", json!("ftp://x/"))).contains("endpoint must be http"));
        assert!(err(with("endpoint", json!("https://u:p@x/s.svc"))).contains("credentials"));
        assert!(err(with("endpoint", json!("https://x/s.svc?wsdl"))).contains("?wsdl"));
        assert!(
            err(with(
                "partner",
                json!({"mode": "generic", "partner_id": " "})
            ))
            .contains("partner.partner_id")
        );
        assert!(err(with("partner", json!({"mode": "nope"}))).contains("nope"));
        assert!(err(with("partner", json!({"mode": "per_customer", "x": 1}))).contains("x"));
        assert!(err(with("vat_ids", json!({"abc": "1"}))).contains("vat_ids"));
        assert!(err(with("vat_ids", json!({"19": "28", "19.0": "30"}))).contains("twice"));
        assert!(
            err(with("currency_ids", json!({"RON": "25", "EUR": "25"})))
                .contains("same CurrencyId")
        );
        assert!(err(with("currency_ids", json!({"XYZ": "25"}))).contains("XYZ"));
        assert!(err(with("price_list_date", json!("yesterday"))).contains("price_list_date"));
        assert!(err(with("soap_action", json!("urn:fixed"))).contains("soap_action"));
        assert!(
            err(with("operations", json!({"get_order": "get Order"})))
                .contains("operations.get_order")
        );
        assert!(err(with("payment_type", json!(""))).contains("payment_type"));
        assert!(err(with("max_external_id_len", json!(10))).contains("max_external_id_len"));
        assert!(err(with("unknown", json!(1))).contains("unknown"));
        assert!(err(with("http", json!({"timeout_ms": 0}))).contains("http.timeout_ms"));
        let fixed = cfg(with("price_list_date", json!("2026-01-31"))).unwrap();
        assert_eq!(
            fixed.price_list_date().unwrap(),
            NaiveDate::from_ymd_opt(2026, 1, 31)
        );
        cfg(with("soap_version", json!("1.2"))).unwrap();
        cfg(with("soap_action", json!(""))).unwrap();
    }

    #[test]
    fn credentials_name_fields_never_values() {
        let mut m = Map::new();
        assert!(
            Credentials::from_map(&m)
                .unwrap_err()
                .to_string()
                .contains("missing")
        );
        m.insert("application_id".into(), json!(12345));
        let e = Credentials::from_map(&m).unwrap_err().to_string();
        assert!(
            e.contains("must be a string") && !e.contains("12345"),
            "{e}"
        );
        m.insert("application_id".into(), json!("  "));
        assert!(
            Credentials::from_map(&m)
                .unwrap_err()
                .to_string()
                .contains("blank")
        );
        m.insert("application_id".into(), json!("S3CRET-APP"));
        m.insert("password".into(), json!("other-secret"));
        let e = Credentials::from_map(&m).unwrap_err().to_string();
        assert!(
            e.contains("`password`") && !e.contains("other-secret"),
            "{e}"
        );
        m.remove("password");
        let c = Credentials::from_map(&m).unwrap();
        assert!(!format!("{c:?}").contains("S3CRET"));
    }
}
