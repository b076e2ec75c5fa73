//! A stateful fake of a Charisma installation's SOAP service (the contract the client assumes,
//! see `docs/connectors/charisma.md`), for tests, the sandbox and the demo. Served at
//! [`SERVICE_PATH`] (point `endpoint` at `<fake>/CharismaWS/Service.svc`), wrapped by
//! [`crate::fake::wrap`] (faults, limits, `/_control/{stats,faults,limits}`).
//!
//! What it does:
//! - SOAP 1.1 (`text/xml`, `SOAPAction` required: empty, or ending in the operation's name) and
//!   SOAP 1.2 (`application/soap+xml`); another content type is `415`. It answers in the
//!   request's version; faults are HTTP 500 (1.2 `Sender` faults: 400) with a proper envelope.
//! - The `IdentificationMessage` header (namespace `totalsoft.charisma.commonMessages`) must
//!   carry a known `ApplicationId`, else `Client` fault `Invalid ApplicationId`
//!   ([`DEMO_APPLICATION_ID`] is known; add more with the control API).
//! - `GetItem`, `getPrice{PriceListDate}` (`YYYY-MM-DD`, else a fault), `getCity`,
//!   `getPartner{FiscalRegistration}`, `createPartner{PartnerReq}` (duplicate
//!   `FiscalRegistration`, unknown `CityId`, bad `PartnerType` → faults), `createOrder{OrderReq}`
//!   (unknown `PartnerId`/`ItemId`/`VATId`/`CurrencyId`, amounts that do not add up → faults;
//!   a repeated `ExternalId` → fault `Duplicate ExternalId …` naming the order in its detail,
//!   unless `unique_external_id` is off), and the lookup `getOrder{ExternalId}` (its name is a
//!   setting; `None` switches it off, as on an installation without one).
//! - Faults of its own (control API `POST /_control/charisma/faults`): the next `createOrder`
//!   commits and then hangs `hang_ms` (the ambiguous create, aimed at `createOrder` and not at
//!   whichever POST comes next, since every SOAP call is a POST), the next `getPartner` misses
//!   (replication lag: exercises the duplicate-partner path), the next calls get a `Server`
//!   fault.
//! - No rate limit is known for Charisma: [`crate::fake::AccountOf`] cannot read the
//!   `ApplicationId` (it is in the body), so the fake names no account and limits, if set,
//!   are not applied per account. The harness's 429/5xx/garbage/timeout faults apply to every
//!   call.
//!
//! Control API (no auth): `POST /_control/charisma/items` ([`SeedItem`]), `GET
//! /_control/charisma/items`, `DELETE /_control/charisma/items/{code}`, `GET
//! /_control/charisma/orders`, `GET /_control/charisma/documents/{order_id}` (how many orders
//! carry that marketplace order id in `Comments`), `GET|POST /_control/charisma/partners`
//! ([`SeedPartner`]), `POST /_control/charisma/application_ids {application_id}`, `GET|PUT
//! /_control/charisma/settings` ([`FakeSettings`]), `POST /_control/charisma/faults`
//! ([`FakeFaults`]), `POST /_control/charisma/seed_demo`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use canonical::{ChannelOrderId, SalesDocument, Sku, VatRate, round2};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::soap::{self, El, IDENTIFICATION_NS, Node, SoapVersion};
use super::wire::parse_decimal;
use crate::conformance::ErpFake;
use crate::fake::{Harness, LimitKind, wrap};

/// The demo installation's `ApplicationId` (a fake's credential, not a real one).
pub const DEMO_APPLICATION_ID: &str = "demo-charisma-application";
/// Where the fake serves the SOAP endpoint.
pub const SERVICE_PATH: &str = "/CharismaWS/Service.svc";
/// The generic marketplace partner every fake starts with, and its address.
pub const GENERIC_PARTNER_ID: &str = "228587";
pub const GENERIC_ADDRESS_ID: &str = "234010";

/// The fake's VAT nomenclature: `VATId` → percent.
const VATS: [(&str, i64); 6] = [
    ("28", 19),
    ("29", 9),
    ("30", 5),
    ("31", 0),
    ("32", 21),
    ("33", 11),
];
/// The fake's currencies: `CurrencyId` → ISO code.
const CURRENCIES: [(&str, &str); 2] = [("25", "RON"), ("26", "EUR")];
/// A few localities: `(CityId, CityName, DistrictName)`.
const CITIES: [(&str, &str, &str); 8] = [
    ("420", "Bucuresti Sector 4", "Bucuresti"),
    ("417", "Bucuresti Sector 1", "Bucuresti"),
    ("1010", "Cluj-Napoca", "Cluj"),
    ("1200", "Iași", "Iași"),
    ("1300", "Timișoara", "Timiș"),
    ("1400", "Brașov", "Brașov"),
    ("1501", "Sălcioara", "Ialomița"),
    ("1502", "Sălcioara", "Dâmbovița"),
];

/// Behaviour switches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FakeSettings {
    /// The name of the order lookup by `ExternalId`; `None`: the installation has none.
    pub lookup_operation: Option<String>,
    /// `createOrder` refuses a repeated `ExternalId` (the assumed dedup behaviour).
    pub unique_external_id: bool,
    /// How long the committed-then-hanging `createOrder` hangs, in ms.
    pub hang_ms: u64,
}

impl Default for FakeSettings {
    fn default() -> Self {
        Self {
            lookup_operation: Some("getOrder".into()),
            unique_external_id: true,
            hang_ms: 5_000,
        }
    }
}

/// Faults of the fake's own, added to those pending.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FakeFaults {
    /// The next N `createOrder`s commit, then hang `hang_ms`.
    pub commit_then_timeout_create_order: u32,
    /// The next N `getPartner`s find nothing.
    pub stale_partner_lookup: u32,
    /// The next N SOAP calls get a `Server` fault before doing anything.
    pub server_fault: u32,
}

/// An article to seed (control API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeedItem {
    pub code: String,
    pub name: String,
    /// Gross price in `currency`; `None`: not on the price list.
    pub gross: Option<Decimal>,
    pub vat_percent: Decimal,
    pub currency: String,
    pub unit: String,
    pub valid: bool,
    pub stock: u32,
    pub warehouse: String,
}

impl Default for SeedItem {
    fn default() -> Self {
        Self {
            code: String::new(),
            name: String::new(),
            gross: None,
            vat_percent: Decimal::from(19),
            currency: "RON".into(),
            unit: "buc".into(),
            valid: true,
            stock: 0,
            warehouse: "Depozit".into(),
        }
    }
}

/// A partner to seed (control API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeedPartner {
    pub fiscal_registration: String,
    pub name: String,
    pub partner_type: String,
    pub external_id: String,
}

#[derive(Debug, Clone)]
struct FakeItem {
    item_id: u64,
    code: String,
    name: String,
    vat_id: String,
    unit: String,
    valid: bool,
    price: Option<(Decimal, Decimal, String)>,
    /// Kept for the control API only: no stock operation is known.
    stock: BTreeMap<String, u32>,
}

/// A partner as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FakePartner {
    pub partner_id: u64,
    pub external_id: String,
    pub fiscal_registration: String,
    pub partner_type: String,
    pub name: String,
    pub address_id: u64,
    pub city_id: String,
}

/// An order line as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FakeLine {
    pub external_id: String,
    pub item_id: String,
    pub quantity: Decimal,
    pub price_with_vat: Decimal,
    pub vat_id: String,
    pub currency_id: String,
}

/// An order as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FakeOrder {
    pub order_id: u64,
    pub number: String,
    pub external_id: String,
    pub partner_id: String,
    pub comments: String,
    pub state: String,
    pub payment_type: String,
    pub lines: Vec<FakeLine>,
    /// The merchant invoiced it in Charisma (not visible through any known operation).
    pub invoiced: bool,
    pub credited: bool,
}

#[derive(Debug)]
struct FakeState {
    app_ids: BTreeSet<String>,
    items: BTreeMap<u64, FakeItem>,
    partners: Vec<FakePartner>,
    orders: Vec<FakeOrder>,
    settings: FakeSettings,
    faults: FakeFaults,
    next_id: u64,
}

/// The fake Charisma installation.
#[derive(Debug)]
pub struct CharismaFake {
    harness: Harness,
    state: Mutex<FakeState>,
}

/// A SOAP answer being made: status and envelope.
struct Reply {
    status: StatusCode,
    xml: String,
    hang: Option<Duration>,
}

fn vat_percent(id: &str) -> Option<Decimal> {
    VATS.iter()
        .find(|(v, _)| *v == id)
        .map(|(_, p)| Decimal::from(*p))
}

fn vat_id_of(percent: Decimal) -> Option<&'static str> {
    VATS.iter()
        .find(|(_, p)| Decimal::from(*p) == percent.normalize())
        .map(|(v, _)| *v)
}

fn currency_id_of(code: &str) -> Option<&'static str> {
    CURRENCIES
        .iter()
        .find(|(_, c)| c.eq_ignore_ascii_case(code.trim()))
        .map(|(id, _)| *id)
}

fn over_limit(_kind: LimitKind, wait: Duration) -> Response {
    let xml = soap::fault_envelope(SoapVersion::V11, false, "Server Too Busy", &[]);
    let mut r = (StatusCode::SERVICE_UNAVAILABLE, xml).into_response();
    r.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(wait.as_secs().max(1)),
    );
    r
}

impl CharismaFake {
    /// A fake knowing [`DEMO_APPLICATION_ID`] and the generic marketplace partner, with no
    /// articles (see [`CharismaFake::seed_demo`]).
    pub fn new() -> Arc<Self> {
        let mut state = FakeState {
            app_ids: BTreeSet::from([DEMO_APPLICATION_ID.to_owned()]),
            items: BTreeMap::new(),
            partners: Vec::new(),
            orders: Vec::new(),
            settings: FakeSettings::default(),
            faults: FakeFaults::default(),
            next_id: 3000,
        };
        state.partners.push(FakePartner {
            partner_id: GENERIC_PARTNER_ID.parse().unwrap_or(228_587),
            external_id: "MARKETPLACE".into(),
            fiscal_registration: "MARKETPLACE-CUSTOMERS".into(),
            partner_type: "PJ".into(),
            name: "Clienti marketplace".into(),
            address_id: GENERIC_ADDRESS_ID.parse().unwrap_or(234_010),
            city_id: "420".into(),
        });
        Arc::new(Self {
            harness: Harness::new(|_| None, over_limit),
            state: Mutex::new(state),
        })
    }

    pub fn harness(&self) -> &Harness {
        &self.harness
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The routes of the fake, wrapped with the shared harness.
    pub fn router(self: &Arc<Self>) -> Router {
        let app = Router::new()
            .route(SERVICE_PATH, post(soap_endpoint))
            .route(
                "/_control/charisma/items",
                post(ctl_seed_item).get(ctl_items),
            )
            .route(
                "/_control/charisma/items/{code}",
                axum::routing::delete(ctl_delete_item),
            )
            .route("/_control/charisma/orders", get(ctl_orders))
            .route(
                "/_control/charisma/documents/{order_id}",
                get(ctl_documents),
            )
            .route(
                "/_control/charisma/partners",
                get(ctl_partners).post(ctl_seed_partner),
            )
            .route("/_control/charisma/application_ids", post(ctl_app_id))
            .route(
                "/_control/charisma/settings",
                get(ctl_settings).put(ctl_set_settings),
            )
            .route("/_control/charisma/faults", post(ctl_faults))
            .route("/_control/charisma/seed_demo", post(ctl_seed_demo))
            .with_state(Arc::clone(self));
        wrap(app, &self.harness)
    }

    pub fn add_application_id(&self, id: &str) {
        self.lock().app_ids.insert(id.to_owned());
    }

    pub fn settings(&self) -> FakeSettings {
        self.lock().settings.clone()
    }

    pub fn set_settings(&self, s: FakeSettings) {
        self.lock().settings = s;
    }

    /// Adds faults of the fake's own to those pending.
    pub fn add_faults(&self, f: &FakeFaults) {
        let mut st = self.lock();
        st.faults.commit_then_timeout_create_order += f.commit_then_timeout_create_order;
        st.faults.stale_partner_lookup += f.stale_partner_lookup;
        st.faults.server_fault += f.server_fault;
    }

    /// Drops the fake's own pending faults.
    pub fn clear_faults(&self) {
        self.lock().faults = FakeFaults::default();
    }

    /// Seeds (or replaces, by code) an article; answers its `ItemId`.
    pub fn seed_item_with(&self, s: &SeedItem) -> Result<u64, String> {
        if s.code.trim().is_empty() {
            return Err("code is required".into());
        }
        let vat_id = vat_id_of(s.vat_percent)
            .ok_or_else(|| format!("no VATId at {} % in the fake", s.vat_percent))?;
        let currency_id = currency_id_of(&s.currency)
            .ok_or_else(|| format!("unknown currency {}", s.currency))?;
        let rate = VatRate::percent(s.vat_percent).map_err(|e| e.to_string())?;
        let mut st = self.lock();
        let existing = st
            .items
            .values()
            .find(|i| i.code == s.code)
            .map(|i| i.item_id);
        let item_id = match existing {
            Some(id) => id,
            None => {
                st.next_id += 1;
                st.next_id
            }
        };
        let mut stock = BTreeMap::new();
        stock.insert(s.warehouse.clone(), s.stock);
        st.items.insert(
            item_id,
            FakeItem {
                item_id,
                code: s.code.clone(),
                name: if s.name.is_empty() {
                    s.code.clone()
                } else {
                    s.name.clone()
                },
                vat_id: vat_id.to_owned(),
                unit: s.unit.clone(),
                valid: s.valid,
                price: s.gross.map(|g| (rate.net_of(g), g, currency_id.to_owned())),
                stock,
            },
        );
        Ok(item_id)
    }

    /// Removes an article (its `ItemId` becomes unknown); whether one was there.
    pub fn delete_item(&self, code: &str) -> bool {
        let mut st = self.lock();
        let before = st.items.len();
        st.items.retain(|_, i| i.code != code);
        st.items.len() != before
    }

    /// Adds a partner (as if the merchant created it); answers its `PartnerId`.
    pub fn seed_partner(&self, s: &SeedPartner) -> u64 {
        let mut st = self.lock();
        st.next_id += 2;
        let id = st.next_id - 1;
        let partner = FakePartner {
            partner_id: id,
            external_id: s.external_id.clone(),
            fiscal_registration: s.fiscal_registration.clone(),
            partner_type: if s.partner_type.is_empty() {
                "PJ".into()
            } else {
                s.partner_type.clone()
            },
            name: s.name.clone(),
            address_id: id + 1,
            city_id: "420".into(),
        };
        st.partners.push(partner);
        id
    }

    pub fn partners(&self) -> Vec<FakePartner> {
        self.lock().partners.clone()
    }

    pub fn orders(&self) -> Vec<FakeOrder> {
        self.lock().orders.clone()
    }

    /// The orders whose `Comments` is the marketplace order id (what the client sends).
    pub fn orders_for(&self, order_id: &str) -> Vec<FakeOrder> {
        self.lock()
            .orders
            .iter()
            .filter(|o| o.comments == order_id)
            .cloned()
            .collect()
    }

    /// A few articles with prices (RON and one in EUR) for the demo.
    pub fn seed_demo(&self) {
        let demo = [
            ("MGZ-MUG-01", "Cana ceramica 350 ml", "59.50", 19, "RON"),
            ("MGZ-LAMP-02", "Lampa de birou LED", "119.00", 19, "RON"),
            ("MGZ-BOOK-03", "Carte de bucate", "45.00", 5, "RON"),
            ("MGZ-TEA-04", "Ceai verde 100 g", "21.80", 9, "RON"),
            ("MGZ-CHAIR-05", "Scaun ergonomic", "249.00", 19, "EUR"),
        ];
        for (code, name, gross, vat, currency) in demo {
            let seeded = self.seed_item_with(&SeedItem {
                code: code.into(),
                name: name.into(),
                gross: parse_decimal(gross),
                vat_percent: Decimal::from(vat),
                currency: currency.into(),
                stock: 25,
                ..SeedItem::default()
            });
            if let Err(e) = seeded {
                tracing::error!(error = %e, "seeding the Charisma demo");
            }
        }
    }

    /// Handles one SOAP request.
    fn handle(&self, headers: &HeaderMap, body: &[u8]) -> Reply {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let version = if ct.starts_with("text/xml") {
            SoapVersion::V11
        } else if ct.starts_with("application/soap+xml") {
            SoapVersion::V12
        } else {
            return Reply {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                xml: format!(
                    "Cannot process the message because the content type '{ct}' was not the expected type 'text/xml; charset=utf-8'."
                ),
                hang: None,
            };
        };
        let fault = |client: bool, text: &str| fault_reply(version, client, text, &[]);
        let doc = match soap::parse(body) {
            Ok(d) => d,
            Err(e) => return fault(true, &format!("The request is not well-formed XML: {e}")),
        };
        if doc.name != "Envelope" || doc.ns.as_deref() != Some(version.envelope_ns()) {
            return fault(
                true,
                "VersionMismatch: the envelope's namespace does not match the content type",
            );
        }
        let Some(op) = doc.child("Body").and_then(|b| b.children.first()) else {
            return fault(true, "The SOAP Body is empty");
        };
        if version == SoapVersion::V11 {
            let Some(action) = headers.get("soapaction").and_then(|v| v.to_str().ok()) else {
                return fault(true, "The SOAPAction header is missing");
            };
            let action = action.trim().trim_matches('"');
            if !action.is_empty() && !action.ends_with(op.name.as_str()) {
                return fault(
                    true,
                    &format!(
                        "ActionNotSupported: the message with Action '{action}' cannot be processed"
                    ),
                );
            }
        }
        let app_id = doc
            .child("Header")
            .and_then(|h| h.child("IdentificationMessage"))
            .filter(|m| m.ns.as_deref() == Some(IDENTIFICATION_NS))
            .and_then(|m| m.field("ApplicationId"));
        let mut st = self.lock();
        if !app_id.is_some_and(|a| st.app_ids.contains(a)) {
            return fault(true, "Invalid ApplicationId");
        }
        if st.faults.server_fault > 0 {
            st.faults.server_fault -= 1;
            return fault(
                false,
                "Timeout expired. The timeout period elapsed prior to completion of the operation.",
            );
        }
        let result = match op.name.as_str() {
            "GetItem" => Ok(get_item(&st)),
            "getPrice" => get_price(&st, op),
            "getCity" => Ok(get_city()),
            "getPartner" => get_partner(&mut st, op),
            "createPartner" => create_partner(&mut st, op),
            "createOrder" => create_order(&mut st, op),
            name if st.settings.lookup_operation.as_deref() == Some(name) => get_order(&st, op),
            name => Err(Refusal::new(format!(
                "ActionNotSupported: the operation {name} is not supported by this service"
            ))),
        };
        match result {
            Ok(inner) => {
                let hang = (op.name == "createOrder"
                    && st.faults.commit_then_timeout_create_order > 0)
                    .then(|| {
                        st.faults.commit_then_timeout_create_order -= 1;
                        Duration::from_millis(st.settings.hang_ms)
                    });
                Reply {
                    status: StatusCode::OK,
                    xml: response_envelope(version, &op.name, &inner),
                    hang,
                }
            }
            Err(r) => fault_reply(version, true, &r.text, &r.detail),
        }
    }
}

/// A `Client` fault's text and detail.
struct Refusal {
    text: String,
    detail: Vec<El>,
}

impl Refusal {
    fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            detail: Vec::new(),
        }
    }
}

fn fault_reply(version: SoapVersion, client: bool, text: &str, detail: &[El]) -> Reply {
    let status = match (version, client) {
        (SoapVersion::V12, true) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Reply {
        status,
        xml: soap::fault_envelope(version, client, text, detail),
        hang: None,
    }
}

fn response_envelope(version: SoapVersion, op: &str, inner: &[El]) -> String {
    let body: String = inner.iter().map(El::to_xml).collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><s:Envelope xmlns:s=\"{}\"><s:Body>\
         <{op}Response xmlns=\"http://tempuri.org/\">{body}</{op}Response></s:Body></s:Envelope>",
        version.envelope_ns()
    )
}

fn leaf(name: &str, v: impl ToString) -> El {
    El::leaf(name, v.to_string())
}

fn get_item(st: &FakeState) -> Vec<El> {
    st.items
        .values()
        .map(|i| {
            El::node(
                "ItemList",
                vec![
                    leaf("ItemId", i.item_id),
                    leaf("ItemCode", &i.code),
                    leaf("ItemName", &i.name),
                    leaf("ItemTypeId", 1),
                    leaf("ItemType", "Marfa"),
                    leaf("MeasuringUnitId", 1),
                    leaf("MeasuringUnitName", &i.unit),
                    leaf("MeasuringUnitCode", i.unit.to_ascii_uppercase()),
                    leaf("VATId", &i.vat_id),
                    leaf("VATPercent", vat_percent(&i.vat_id).unwrap_or_default()),
                    leaf("IsValid", i.valid),
                    leaf("IsStockable", true),
                    leaf("IsComposite", false),
                    El::node("ItemProperties", vec![leaf("PropertyValue", "Marketplace")]),
                    El::node(
                        "ItemMeasuringUnits",
                        vec![
                            leaf("ConversionRate", 1),
                            leaf("BaseMeasuringUnitId", 1),
                            leaf("BaseMeasuringUnitName", &i.unit),
                            leaf("BaseMeasuringUnitCode", i.unit.to_ascii_uppercase()),
                        ],
                    ),
                    El::node(
                        "ItemBarCodes",
                        vec![
                            leaf("BarCodeId", i.item_id),
                            leaf("SiteId", 1),
                            leaf("BarCode", format!("594{:010}", i.item_id)),
                            leaf("IsVariable", false),
                        ],
                    ),
                ],
            )
        })
        .collect()
}

fn get_price(st: &FakeState, op: &Node) -> Result<Vec<El>, Refusal> {
    let date = op.field("PriceListDate").unwrap_or("");
    if NaiveDate::parse_from_str(date, "%Y-%m-%d").is_err() {
        return Err(Refusal::new(format!(
            "Invalid PriceListDate '{date}': expected YYYY-MM-DD"
        )));
    }
    let details = st
        .items
        .values()
        .filter_map(|i| {
            let (net, gross, currency) = i.price.as_ref()?;
            Some(El::node(
                "PriceListDetail",
                vec![
                    leaf("ItemId", i.item_id),
                    leaf("Price", net),
                    leaf("PriceWithVAT", gross),
                    leaf("CurrencyId", currency),
                    leaf("VATPercent", vat_percent(&i.vat_id).unwrap_or_default()),
                    leaf("VATId", &i.vat_id),
                    leaf("MeasuringUnitId", 1),
                ],
            ))
        })
        .collect();
    Ok(vec![El::node("PriceList", details)])
}

fn get_city() -> Vec<El> {
    CITIES
        .iter()
        .enumerate()
        .map(|(n, (id, name, district))| {
            El::node(
                "City",
                vec![
                    leaf("CityId", id),
                    leaf("CityCode", format!("C{id}")),
                    leaf("CityName", name),
                    leaf("DistrictId", 40 + n),
                    leaf("DistrictName", district),
                ],
            )
        })
        .collect()
}

fn city_name(id: &str) -> Option<&'static str> {
    CITIES.iter().find(|(c, _, _)| *c == id).map(|(_, n, _)| *n)
}

fn partner_el(name: &str, p: &FakePartner) -> El {
    El::node(
        name,
        vec![
            leaf("PartnerId", p.partner_id),
            leaf("PartnerName", &p.name),
            leaf("PartnerType", &p.partner_type),
            leaf("FiscalRegistration", &p.fiscal_registration),
            leaf("ExternalId", &p.external_id),
            El::node(
                "DeliveryAddressList",
                vec![
                    leaf("PartnerAddressId", p.address_id),
                    El::node(
                        "City",
                        vec![
                            leaf("CityId", &p.city_id),
                            leaf("CityName", city_name(&p.city_id).unwrap_or("")),
                        ],
                    ),
                ],
            ),
        ],
    )
}

fn get_partner(st: &mut FakeState, op: &Node) -> Result<Vec<El>, Refusal> {
    let Some(fiscal) = op.field("FiscalRegistration") else {
        return Err(Refusal::new("FiscalRegistration is required"));
    };
    if st.faults.stale_partner_lookup > 0 {
        st.faults.stale_partner_lookup -= 1;
        return Ok(Vec::new());
    }
    Ok(st
        .partners
        .iter()
        .filter(|p| p.fiscal_registration.eq_ignore_ascii_case(fiscal))
        .map(|p| partner_el("PartnerList", p))
        .collect())
}

fn create_partner(st: &mut FakeState, op: &Node) -> Result<Vec<El>, Refusal> {
    let Some(req) = op.child("PartnerReq") else {
        return Err(Refusal::new("PartnerReq is required"));
    };
    let ptype = req.field("PartnerType").unwrap_or("");
    if !matches!(ptype, "PF" | "PJ") {
        return Err(Refusal::new(format!(
            "Invalid PartnerType '{ptype}': expected PF or PJ"
        )));
    }
    let (Some(name), Some(fiscal)) = (req.field("PartnerName"), req.field("FiscalRegistration"))
    else {
        return Err(Refusal::new(
            "PartnerName and FiscalRegistration are required",
        ));
    };
    if let Some(p) = st
        .partners
        .iter()
        .find(|p| p.fiscal_registration.eq_ignore_ascii_case(fiscal))
    {
        return Err(Refusal::new(format!(
            "Partner with FiscalRegistration {fiscal} already exists (PartnerId {})",
            p.partner_id
        )));
    }
    let city_id = req
        .child("DeliveryAddressList")
        .and_then(|a| a.child("City"))
        .and_then(|c| c.field("CityId"))
        .unwrap_or("");
    if city_name(city_id).is_none() {
        return Err(Refusal::new(format!("Unknown CityId '{city_id}'")));
    }
    st.next_id += 2;
    let p = FakePartner {
        partner_id: st.next_id - 1,
        external_id: req.field("ExternalId").unwrap_or("").to_owned(),
        fiscal_registration: fiscal.to_owned(),
        partner_type: ptype.to_owned(),
        name: name.to_owned(),
        address_id: st.next_id,
        city_id: city_id.to_owned(),
    };
    let resp = El::node(
        "PartnerResp",
        vec![
            leaf("PartnerId", p.partner_id),
            El::node(
                "DeliveryAddressList",
                vec![leaf("PartnerAddressId", p.address_id)],
            ),
        ],
    );
    st.partners.push(p);
    Ok(vec![resp])
}

fn create_order(st: &mut FakeState, op: &Node) -> Result<Vec<El>, Refusal> {
    let Some(req) = op.child("OrderReq") else {
        return Err(Refusal::new("OrderReq is required"));
    };
    let Some(external_id) = req.field("ExternalId") else {
        return Err(Refusal::new("ExternalId is required"));
    };
    if st.settings.unique_external_id
        && let Some(o) = st.orders.iter().find(|o| o.external_id == external_id)
    {
        return Err(Refusal {
            text: format!(
                "Duplicate ExternalId {external_id}: order {} already exists",
                o.order_id
            ),
            detail: vec![El::node(
                "DuplicateOrder",
                vec![leaf("OrderId", o.order_id), leaf("ExternalId", external_id)],
            )],
        });
    }
    let partner_id = req.field("PartnerId").unwrap_or("");
    if !st
        .partners
        .iter()
        .any(|p| p.partner_id.to_string() == partner_id)
    {
        return Err(Refusal::new(format!("Unknown PartnerId '{partner_id}'")));
    }
    for (field, ok) in [
        (
            "OrderDate",
            req.field("OrderDate")
                .is_some_and(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok()),
        ),
        ("PaymentType", req.field("PaymentType").is_some()),
        ("OrderState", req.field("OrderState").is_some()),
    ] {
        if !ok {
            return Err(Refusal::new(format!("{field} is missing or invalid")));
        }
    }
    let mut lines = Vec::new();
    let mut seen = BTreeSet::new();
    for l in req.children_named("ItemList") {
        let ext = l.field("ExternalId").unwrap_or("");
        if ext.is_empty() || !seen.insert(ext.to_owned()) {
            return Err(Refusal::new(format!(
                "Every ItemList entry needs its own ExternalId (got '{ext}')"
            )));
        }
        let item_id = l.field("ItemId").unwrap_or("");
        if !st.items.values().any(|i| i.item_id.to_string() == item_id) {
            return Err(Refusal::new(format!("Unknown ItemId '{item_id}'")));
        }
        let vat_id = l.field("VATId").unwrap_or("");
        if vat_percent(vat_id).is_none() {
            return Err(Refusal::new(format!("Unknown VATId '{vat_id}'")));
        }
        let currency_id = l.field("CurrencyId").unwrap_or("");
        if !CURRENCIES.iter().any(|(c, _)| *c == currency_id) {
            return Err(Refusal::new(format!("Unknown CurrencyId '{currency_id}'")));
        }
        let num = |f: &str| l.field(f).and_then(parse_decimal);
        let (Some(q), Some(pwv), Some(amount), Some(vat_amount)) = (
            num("Quantity"),
            num("PriceWithVAT"),
            num("Amount"),
            num("VATAmount"),
        ) else {
            return Err(Refusal::new(format!(
                "Line {ext}: Quantity, PriceWithVAT, Amount and VATAmount must be numbers"
            )));
        };
        if q <= Decimal::ZERO {
            return Err(Refusal::new(format!(
                "Line {ext}: Quantity must be positive"
            )));
        }
        if (amount + vat_amount - round2(q * pwv)).abs() > Decimal::new(1, 2) {
            return Err(Refusal::new(format!(
                "Line {ext}: Amount + VATAmount ({}) differs from Quantity × PriceWithVAT ({})",
                amount + vat_amount,
                round2(q * pwv)
            )));
        }
        lines.push(FakeLine {
            external_id: ext.to_owned(),
            item_id: item_id.to_owned(),
            quantity: q,
            price_with_vat: pwv,
            vat_id: vat_id.to_owned(),
            currency_id: currency_id.to_owned(),
        });
    }
    if lines.is_empty() {
        return Err(Refusal::new("ItemList is empty"));
    }
    st.next_id += 1;
    let order = FakeOrder {
        order_id: st.next_id + 500_000,
        number: format!("CMD{:06}", st.next_id),
        external_id: external_id.to_owned(),
        partner_id: partner_id.to_owned(),
        comments: req.field("Comments").unwrap_or("").to_owned(),
        state: req.field("OrderState").unwrap_or("").to_owned(),
        payment_type: req.field("PaymentType").unwrap_or("").to_owned(),
        lines,
        invoiced: false,
        credited: false,
    };
    let resp = El::node(
        "OrderResp",
        vec![
            leaf("OrderId", order.order_id),
            leaf("OrderNumber", &order.number),
            leaf("ExternalId", &order.external_id),
            leaf("OrderState", &order.state),
        ],
    );
    st.orders.push(order);
    Ok(vec![resp])
}

fn get_order(st: &FakeState, op: &Node) -> Result<Vec<El>, Refusal> {
    let Some(ext) = op.field("ExternalId") else {
        return Err(Refusal::new("ExternalId is required"));
    };
    Ok(st
        .orders
        .iter()
        .filter(|o| o.external_id == ext)
        .map(|o| {
            El::node(
                "OrderList",
                vec![
                    leaf("OrderId", o.order_id),
                    leaf("ExternalId", &o.external_id),
                    leaf("OrderNumber", &o.number),
                    leaf("OrderState", &o.state),
                ],
            )
        })
        .collect())
}

impl ErpFake for CharismaFake {
    fn seed_item(&self, sku: &Sku, name: &str, gross: Decimal, stock: u32, warehouse: &str) {
        if let Err(e) = self.seed_item_with(&SeedItem {
            code: sku.to_string(),
            name: name.to_owned(),
            gross: Some(gross),
            stock,
            warehouse: warehouse.to_owned(),
            ..SeedItem::default()
        }) {
            panic!("seeding {sku}: {e}");
        }
    }

    fn documents_for(&self, order: &ChannelOrderId) -> usize {
        self.orders_for(order.as_str()).len()
    }

    fn merchant_invoices(&self, document: &SalesDocument) {
        let mut st = self.lock();
        if let Some(o) = st
            .orders
            .iter_mut()
            .find(|o| o.order_id.to_string() == document.erp_id)
        {
            o.invoiced = true;
        }
    }

    fn merchant_credits(&self, document: &SalesDocument) {
        let mut st = self.lock();
        if let Some(o) = st
            .orders
            .iter_mut()
            .find(|o| o.order_id.to_string() == document.erp_id)
        {
            o.credited = true;
        }
    }

    fn commit_then_timeout_next(&self) {
        self.add_faults(&FakeFaults {
            commit_then_timeout_create_order: 1,
            ..FakeFaults::default()
        });
    }

    fn garbage_pdf_next(&self) {
        // No invoice operation is known, so there is no download to garble; the client
        // declares invoice_pdf unsupported and the suite stops before asking for this.
    }

    fn throttle_next(&self) -> bool {
        // Charisma documents no throttling, but an installation's IIS/proxy may answer 429/503:
        // the client honours it like any other system's.
        self.harness.update_faults(|f| {
            f.next_429 = 1;
            f.retry_after_secs = 1;
        });
        true
    }

    fn server_error_next(&self) -> bool {
        self.harness.update_faults(|f| f.next_5xx = 1);
        true
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers

type Fake = State<Arc<CharismaFake>>;

async fn soap_endpoint(State(f): Fake, headers: HeaderMap, body: Bytes) -> Response {
    let reply = f.handle(&headers, &body);
    if let Some(hang) = reply.hang {
        tokio::time::sleep(hang).await;
    }
    let ct = if reply.status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        "text/plain"
    } else if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/soap+xml"))
    {
        "application/soap+xml; charset=utf-8"
    } else {
        "text/xml; charset=utf-8"
    };
    Response::builder()
        .status(reply.status)
        .header(header::CONTENT_TYPE, ct)
        .body(Body::from(reply.xml))
        .unwrap_or_default()
}

async fn ctl_seed_item(State(f): Fake, Json(s): Json<SeedItem>) -> Response {
    match f.seed_item_with(&s) {
        Ok(id) => Json(json!({ "item_id": id })).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({ "error": e }))).into_response(),
    }
}

async fn ctl_items(State(f): Fake) -> Response {
    let st = f.lock();
    let items: Vec<_> = st
        .items
        .values()
        .map(|i| {
            json!({
                "item_id": i.item_id, "code": i.code, "name": i.name, "vat_id": i.vat_id,
                "valid": i.valid, "price": i.price.as_ref().map(|(n, g, c)| json!({
                    "net": n, "gross": g, "currency_id": c })),
                "stock": i.stock,
            })
        })
        .collect();
    Json(items).into_response()
}

async fn ctl_delete_item(State(f): Fake, Path(code): Path<String>) -> StatusCode {
    if f.delete_item(&code) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn ctl_orders(State(f): Fake) -> Json<Vec<FakeOrder>> {
    Json(f.orders())
}

async fn ctl_documents(State(f): Fake, Path(order_id): Path<String>) -> Response {
    let orders = f.orders_for(&order_id);
    Json(json!({ "count": orders.len(), "orders": orders })).into_response()
}

async fn ctl_partners(State(f): Fake) -> Json<Vec<FakePartner>> {
    Json(f.partners())
}

async fn ctl_seed_partner(State(f): Fake, Json(s): Json<SeedPartner>) -> Response {
    if s.fiscal_registration.trim().is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "fiscal_registration is required" })),
        )
            .into_response();
    }
    Json(json!({ "partner_id": f.seed_partner(&s) })).into_response()
}

#[derive(Deserialize)]
struct AppId {
    application_id: String,
}

async fn ctl_app_id(State(f): Fake, Json(a): Json<AppId>) -> StatusCode {
    if a.application_id.trim().is_empty() {
        return StatusCode::BAD_REQUEST;
    }
    f.add_application_id(&a.application_id);
    StatusCode::NO_CONTENT
}

async fn ctl_settings(State(f): Fake) -> Json<FakeSettings> {
    Json(f.settings())
}

async fn ctl_set_settings(State(f): Fake, Json(s): Json<FakeSettings>) -> StatusCode {
    f.set_settings(s);
    StatusCode::NO_CONTENT
}

async fn ctl_faults(State(f): Fake, Json(x): Json<FakeFaults>) -> StatusCode {
    f.add_faults(&x);
    StatusCode::NO_CONTENT
}

async fn ctl_seed_demo(State(f): Fake) -> StatusCode {
    f.seed_demo();
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(f: &CharismaFake, app: &str, op: &str, children: &[El]) -> Reply {
        let xml = soap::envelope(SoapVersion::V11, "http://tempuri.org/", app, op, children);
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=utf-8"),
        );
        h.insert(
            "soapaction",
            HeaderValue::from_str(&format!("\"http://tempuri.org/{op}\"")).unwrap(),
        );
        f.handle(&h, xml.as_bytes())
    }

    fn fault_text(r: &Reply) -> String {
        soap::scan(r.xml.as_bytes(), None, |_| {})
            .unwrap()
            .fault
            .map(|f| f.text)
            .unwrap_or_default()
    }

    #[test]
    fn the_fake_checks_the_header_the_action_and_the_content_type() {
        let f = CharismaFake::new();
        let r = call(&f, "wrong", "GetItem", &[]);
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(fault_text(&r), "Invalid ApplicationId");
        let r = call(&f, DEMO_APPLICATION_ID, "GetItem", &[]);
        assert_eq!(r.status, StatusCode::OK, "{}", r.xml);
        let xml = soap::envelope(SoapVersion::V11, "u", DEMO_APPLICATION_ID, "GetItem", &[]);
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert_eq!(
            f.handle(&h, xml.as_bytes()).status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
        assert!(fault_text(&f.handle(&h, xml.as_bytes())).contains("SOAPAction"));
        h.insert("soapaction", HeaderValue::from_static("\"urn:x/getPrice\""));
        assert!(fault_text(&f.handle(&h, xml.as_bytes())).contains("ActionNotSupported"));
        let r = call(&f, DEMO_APPLICATION_ID, "deleteEverything", &[]);
        assert!(fault_text(&r).contains("not supported"));
    }

    #[test]
    fn orders_are_validated_and_deduplicated_by_external_id() {
        let f = CharismaFake::new();
        let id = f
            .seed_item_with(&SeedItem {
                code: "MUG".into(),
                gross: Some(Decimal::new(1190, 2)),
                ..SeedItem::default()
            })
            .unwrap();
        let line = |vat: &str, amount: &str| {
            El::node(
                "ItemList",
                vec![
                    leaf("ExternalId", "E-1"),
                    leaf("ItemId", id),
                    leaf("Quantity", 2),
                    leaf("PriceWithVAT", "11.90"),
                    leaf("VATId", vat),
                    leaf("Amount", amount),
                    leaf("VATAmount", "3.80"),
                    leaf("CurrencyId", "25"),
                ],
            )
        };
        let order = |vat: &str, amount: &str| {
            [El::node(
                "OrderReq",
                vec![
                    leaf("ExternalId", "E"),
                    leaf("PartnerId", GENERIC_PARTNER_ID),
                    leaf("OrderDate", "2026-01-02"),
                    leaf("PaymentType", "Card"),
                    leaf("Comments", "ORD-1"),
                    leaf("OrderState", "Draft"),
                    line(vat, amount),
                ],
            )]
        };
        let r = call(
            &f,
            DEMO_APPLICATION_ID,
            "createOrder",
            &order("999", "20.00"),
        );
        assert_eq!(fault_text(&r), "Unknown VATId '999'");
        let r = call(
            &f,
            DEMO_APPLICATION_ID,
            "createOrder",
            &order("28", "25.00"),
        );
        assert!(fault_text(&r).contains("differs"), "{}", r.xml);
        let r = call(
            &f,
            DEMO_APPLICATION_ID,
            "createOrder",
            &order("28", "20.00"),
        );
        assert_eq!(r.status, StatusCode::OK, "{}", r.xml);
        let r = call(
            &f,
            DEMO_APPLICATION_ID,
            "createOrder",
            &order("28", "20.00"),
        );
        assert!(
            fault_text(&r).starts_with("Duplicate ExternalId E"),
            "{}",
            r.xml
        );
        assert_eq!(f.orders_for("ORD-1").len(), 1);
    }
}
