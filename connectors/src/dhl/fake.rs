//! [`DhlFake`]: a stateful fake of the MyDHL API v3.1.1 subset the connector uses, wrapped by
//! [`crate::fake::wrap`] (faults, limits, `/_control/{stats,faults,limits}`).
//!
//! Like MyDHL it:
//! - answers every error with `application/problem+json` `{instance, detail, title, message,
//!   status[, additionalDetails]}`;
//! - refuses bad HTTP Basic credentials (401) and a missing `x-version` header (400);
//! - refuses a body that breaks the schema with **422** listing every problem in
//!   `additionalDetails` (`#/content: required key [incoterm] not found`, `#: extraneous key
//!   [x] is not permitted`, length and type errors);
//! - refuses business errors with **400** and a numerically coded `detail`: a planned date not
//!   in DHL's format (`998: ShipTimeStamp is not well formatted`, quoted from the spec), in the
//!   past or more than 10 days ahead, an account the user may not use, a product the lane does
//!   not offer, a postal code malformed for its country, a parcel leaving the EU customs union
//!   without `isCustomsDeclarable` / `exportDeclaration` / declared value. Codes other than
//!   998/999 are the fake's own (illustrative, not DHL's catalogue);
//! - mints a new 10-digit AWB (mod-7 check digit) on **every** `POST /shipments` (no
//!   idempotency, like the real API: a blind retry visibly mints two), with a small valid PDF
//!   label in `documents[]`; `validateDataOnly=true` validates and mints nothing;
//! - finds shipments with `GET /tracking` by `shipmentTrackingNumber` (repeatable) or by
//!   `shipmentReference` + `shipmentReferenceType` + `shipperAccountNumber` +
//!   `dateRangeFrom/To` (`YYYY-MM-DD`, the planned shipping date must fall inside), 404 with a
//!   problem body when nothing matches;
//! - tracks with `GET /shipments/{awb}/tracking`: 404 until the shipment has a checkpoint (a
//!   brand-new AWB is not visible yet), then its events, newest first;
//! - has no cancel endpoint (v3.1.1 has none).
//!
//! The API is served at the root and under `/mydhlapi` (like production's path).
//!
//! Control routes (no auth, no faults):
//! - `GET /_control/dhl/shipments`: every shipment (AWB, account, reference, events, body);
//! - `GET /_control/dhl/shipments/{awb}`: one shipment;
//! - `POST /_control/dhl/shipments/{awb}/advance` `{"to": "in_transit"|"delivered"|"exception"}`;
//! - `GET /_control/dhl/references/{reference}/awbs`: the AWBs minted for a reference;
//! - `PUT /_control/dhl/lag` `{"reference_lookup": true}`: hide shipments without a checkpoint
//!   from the reference lookup too (the tracking lag of a real brand-new AWB).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine as _;
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::convert::parse_planned;
use crate::conformance::CourierFake;
use crate::fake::{Harness, LimitKind, basic_user, wrap};

/// The demo user of the fake (`DhlFake::new` creates it).
pub const DEMO_USERNAME: &str = "megzo-demo";
/// Its password.
pub const DEMO_PASSWORD: &str = "demo-Passw0rd!";
/// Its first shipper account (it has a second, [`DEMO_ACCOUNT_2`]).
pub const DEMO_ACCOUNT: &str = "123456789";
/// The demo user's second account.
pub const DEMO_ACCOUNT_2: &str = "123456780";
/// A second user, with an account of its own.
pub const NORDIC_USERNAME: &str = "nordic-shipper";
pub const NORDIC_PASSWORD: &str = "nordic-Passw0rd!";
pub const NORDIC_ACCOUNT: &str = "987654321";

/// Products the fake offers, and where: `(code, lane)`.
const PRODUCTS: [(&str, Lane); 7] = [
    ("U", Lane::Eu),
    ("W", Lane::Eu),
    ("P", Lane::International),
    ("D", Lane::International),
    ("H", Lane::International),
    ("K", Lane::International),
    ("N", Lane::Domestic),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Domestic,
    Eu,
    /// Any cross-border lane, inside or outside the EU.
    International,
}

const EU: [&str; 27] = [
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
];

/// A checkpoint of a fake shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeEvent {
    pub at: DateTime<Utc>,
    pub code: String,
    pub description: String,
    pub location: String,
}

/// A shipment the fake minted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FakeShipment {
    pub awb: String,
    pub account: String,
    pub reference: Option<String>,
    pub product_code: String,
    pub planned: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub shipper_country: String,
    pub receiver_country: String,
    pub customs: bool,
    pub pieces: Vec<String>,
    pub events: Vec<FakeEvent>,
    /// The request body as received.
    pub request: Value,
}

#[derive(Debug, Clone)]
struct User {
    password: String,
    accounts: Vec<String>,
}

#[derive(Debug, Default)]
struct World {
    users: HashMap<String, User>,
    shipments: Vec<FakeShipment>,
    minted: u64,
    lookup_lag: bool,
}

/// The MyDHL fake. Build with [`DhlFake::new`], serve [`DhlFake::router`].
#[derive(Debug)]
pub struct DhlFake {
    harness: Harness,
    state: Mutex<World>,
}

/// Where a parcel should be moved by [`DhlFake::advance_to`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    InTransit,
    Delivered,
    Exception,
}

fn over_limit(kind: LimitKind, wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let detail = match kind {
        LimitKind::Rate => "Too many requests for this account: rate limit exceeded",
        LimitKind::Concurrency => "Too many concurrent requests for this account",
    };
    let mut r = problem(
        StatusCode::TOO_MANY_REQUESTS,
        "",
        "Too Many Requests",
        detail,
        vec![],
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    r
}

/// A problem+json answer like MyDHL's.
fn problem(
    status: StatusCode,
    instance: &str,
    title: &str,
    detail: &str,
    additional: Vec<String>,
) -> Response {
    let mut body = json!({
        "instance": format!("/expressapi{instance}"),
        "detail": detail,
        "title": title,
        "message": status.canonical_reason().unwrap_or(title),
        "status": status.as_u16().to_string(),
    });
    if !additional.is_empty() {
        body["additionalDetails"] = json!(additional);
    }
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

fn bad_request(instance: &str, detail: impl AsRef<str>) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        instance,
        "Bad request",
        detail.as_ref(),
        vec![],
    )
}

/// A refusal built while checking a request (boxed: a `Response` is large).
type Refusal = Box<Response>;

fn refuse_400(instance: &str, detail: impl AsRef<str>) -> Refusal {
    Box::new(bad_request(instance, detail))
}

fn not_found(instance: &str, detail: impl AsRef<str>) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        instance,
        "Info Not Found",
        detail.as_ref(),
        vec![],
    )
}

/// A small valid one-page PDF showing the AWB.
pub fn label_pdf(awb: &str) -> Vec<u8> {
    let text: String = awb.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    crate::erp::minimal_pdf(&format!("DHL EXPRESS AWB {text}"))
}

/// Whether `code` is a well-formed postal code of `country` (the countries the fake knows;
/// others pass).
fn postal_code_ok(country: &str, code: &str) -> bool {
    let digits = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_digit());
    let c = code.trim();
    match country {
        "SE" => digits(&c.replace(' ', ""), 5),
        "FI" | "DE" => digits(c, 5),
        "NO" | "DK" => digits(c, 4),
        "RO" => digits(c, 6),
        _ => true,
    }
}

fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = q.filter(|q| !q.is_empty()) else {
        return Vec::new();
    };
    reqwest::Url::parse(&format!("http://fake/?{q}"))
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Collects JSON-schema style problems (`#/path: …`).
#[derive(Debug, Default)]
struct Schema {
    errors: Vec<String>,
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "Null",
        Value::Bool(_) => "Boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "Integer",
        Value::Number(_) => "Number",
        Value::String(_) => "String",
        Value::Array(_) => "JSONArray",
        Value::Object(_) => "JSONObject",
    }
}

impl Schema {
    fn missing(&mut self, path: &str, key: &str) {
        self.errors
            .push(format!("#{path}: required key [{key}] not found"));
    }

    fn wrong(&mut self, path: &str, expected: &str, v: &Value) {
        self.errors.push(format!(
            "#{path}: expected type: {expected}, found: {}",
            kind(v)
        ));
    }

    fn get<'a>(
        &mut self,
        o: &'a Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<&'a Value> {
        match o.get(key) {
            Some(v) => Some(v),
            None => {
                if required {
                    self.missing(path, key);
                }
                None
            }
        }
    }

    fn object<'a>(
        &mut self,
        o: &'a Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<&'a Map<String, Value>> {
        let v = self.get(o, path, key, required)?;
        match v.as_object() {
            Some(m) => Some(m),
            None => {
                self.wrong(&format!("{path}/{key}"), "JSONObject", v);
                None
            }
        }
    }

    fn array<'a>(
        &mut self,
        o: &'a Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
        min: usize,
        max: usize,
    ) -> Option<&'a Vec<Value>> {
        let v = self.get(o, path, key, required)?;
        let p = format!("{path}/{key}");
        match v.as_array() {
            Some(a) if a.len() < min => {
                self.errors.push(format!(
                    "#{p}: expected minimum item count: {min}, found: {}",
                    a.len()
                ));
                None
            }
            Some(a) if a.len() > max => {
                self.errors.push(format!(
                    "#{p}: expected maximum item count: {max}, found: {}",
                    a.len()
                ));
                None
            }
            Some(a) => Some(a),
            None => {
                self.wrong(&p, "JSONArray", v);
                None
            }
        }
    }

    fn string<'a>(
        &mut self,
        o: &'a Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
        min: usize,
        max: usize,
    ) -> Option<&'a str> {
        let v = self.get(o, path, key, required)?;
        let p = format!("{path}/{key}");
        match v.as_str() {
            Some(s) => {
                let n = s.chars().count();
                if n < min {
                    self.errors
                        .push(format!("#{p}: expected minLength: {min}, actual: {n}"));
                    None
                } else if n > max {
                    self.errors
                        .push(format!("#{p}: expected maxLength: {max}, actual: {n}"));
                    None
                } else {
                    Some(s)
                }
            }
            None => {
                self.wrong(&p, "String", v);
                None
            }
        }
    }

    fn number(
        &mut self,
        o: &Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
        min: f64,
    ) -> Option<f64> {
        let v = self.get(o, path, key, required)?;
        let p = format!("{path}/{key}");
        match v.as_f64() {
            Some(n) if n < min => {
                self.errors
                    .push(format!("#{p}: {n} is not greater or equal to {min}"));
                None
            }
            Some(n) => Some(n),
            None => {
                self.wrong(&p, "Number", v);
                None
            }
        }
    }

    fn boolean(
        &mut self,
        o: &Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<bool> {
        let v = self.get(o, path, key, required)?;
        match v.as_bool() {
            Some(b) => Some(b),
            None => {
                self.wrong(&format!("{path}/{key}"), "Boolean", v);
                None
            }
        }
    }

    fn only(&mut self, o: &Map<String, Value>, path: &str, allowed: &[&str]) {
        for k in o.keys() {
            if !allowed.contains(&k.as_str()) {
                self.errors
                    .push(format!("#{path}: extraneous key [{k}] is not permitted"));
            }
        }
    }

    fn party(&mut self, o: &Map<String, Value>, path: &str, key: &str) {
        let Some(p) = self.object(o, path, key, true) else {
            return;
        };
        let path = format!("{path}/{key}");
        self.only(
            p,
            &path,
            &[
                "postalAddress",
                "contactInformation",
                "registrationNumbers",
                "bankDetails",
                "typeCode",
            ],
        );
        if let Some(a) = self.object(p, &path, "postalAddress", true) {
            let ap = format!("{path}/postalAddress");
            self.string(a, &ap, "postalCode", true, 0, 12);
            self.string(a, &ap, "cityName", true, 1, 45);
            self.string(a, &ap, "countryCode", true, 2, 2);
            self.string(a, &ap, "addressLine1", true, 1, 45);
            self.string(a, &ap, "addressLine2", false, 1, 45);
            self.string(a, &ap, "addressLine3", false, 1, 45);
            self.string(a, &ap, "countyName", false, 1, 45);
        }
        if let Some(c) = self.object(p, &path, "contactInformation", true) {
            let cp = format!("{path}/contactInformation");
            self.string(c, &cp, "phone", true, 1, 70);
            self.string(c, &cp, "companyName", true, 1, 100);
            self.string(c, &cp, "fullName", true, 1, 255);
            self.string(c, &cp, "email", false, 1, 70);
        }
        if let Some(regs) = self.array(p, &path, "registrationNumbers", false, 1, 10) {
            for (i, r) in regs.iter().enumerate() {
                let rp = format!("{path}/registrationNumbers/{i}");
                match r.as_object() {
                    Some(r) => {
                        self.string(r, &rp, "typeCode", true, 3, 3);
                        self.string(r, &rp, "number", true, 1, 35);
                        self.string(r, &rp, "issuerCountryCode", true, 2, 2);
                    }
                    None => self.wrong(&rp, "JSONObject", r),
                }
            }
        }
    }

    /// The `POST /shipments` schema (the parts the fake knows).
    fn shipment(&mut self, v: &Value) {
        let Some(root) = v.as_object() else {
            self.wrong("", "JSONObject", v);
            return;
        };
        self.only(
            root,
            "",
            &[
                "plannedShippingDateAndTime",
                "pickup",
                "productCode",
                "localProductCode",
                "getRateEstimates",
                "accounts",
                "valueAddedServices",
                "outputImageProperties",
                "customerReferences",
                "identifiers",
                "customerDetails",
                "content",
                "documentImages",
                "shipmentNotification",
                "getTransliteratedResponse",
                "estimatedDeliveryDate",
                "getAdditionalInformation",
            ],
        );
        self.string(root, "", "plannedShippingDateAndTime", true, 1, 64);
        if let Some(p) = self.object(root, "", "pickup", true) {
            self.boolean(p, "/pickup", "isRequested", true);
        }
        self.string(root, "", "productCode", true, 1, 6);
        if let Some(accts) = self.array(root, "", "accounts", true, 1, 3) {
            for (i, a) in accts.iter().enumerate() {
                let p = format!("/accounts/{i}");
                match a.as_object() {
                    Some(a) => {
                        self.string(a, &p, "typeCode", true, 1, 20);
                        self.string(a, &p, "number", true, 1, 12);
                    }
                    None => self.wrong(&p, "JSONObject", a),
                }
            }
        }
        if let Some(cd) = self.object(root, "", "customerDetails", true) {
            self.party(cd, "/customerDetails", "shipperDetails");
            self.party(cd, "/customerDetails", "receiverDetails");
        }
        if let Some(refs) = self.array(root, "", "customerReferences", false, 1, 10) {
            for (i, r) in refs.iter().enumerate() {
                let p = format!("/customerReferences/{i}");
                match r.as_object() {
                    Some(r) => {
                        self.string(r, &p, "value", true, 1, 35);
                        self.string(r, &p, "typeCode", false, 1, 3);
                    }
                    None => self.wrong(&p, "JSONObject", r),
                }
            }
        }
        let Some(c) = self.object(root, "", "content", true) else {
            return;
        };
        if let Some(pkgs) = self.array(c, "/content", "packages", true, 1, 999) {
            for (i, p) in pkgs.iter().enumerate() {
                let pp = format!("/content/packages/{i}");
                match p.as_object() {
                    Some(p) => {
                        self.number(p, &pp, "weight", true, 0.001);
                        if let Some(d) = self.object(p, &pp, "dimensions", false) {
                            for k in ["length", "width", "height"] {
                                self.number(d, &format!("{pp}/dimensions"), k, true, 1.0);
                            }
                        }
                    }
                    None => self.wrong(&pp, "JSONObject", p),
                }
            }
        }
        self.boolean(c, "/content", "isCustomsDeclarable", true);
        self.number(c, "/content", "declaredValue", false, 0.0);
        self.string(c, "/content", "declaredValueCurrency", false, 3, 3);
        self.string(c, "/content", "description", true, 1, 70);
        self.string(c, "/content", "incoterm", true, 3, 3);
        if let Some(u) = self.string(c, "/content", "unitOfMeasurement", true, 1, 10)
            && !matches!(u, "metric" | "imperial")
        {
            self.errors.push(format!(
                "#/content/unitOfMeasurement: {u} is not a valid enum value"
            ));
        }
        if let Some(ed) = self.object(c, "/content", "exportDeclaration", false) {
            let ep = "/content/exportDeclaration";
            if let Some(items) = self.array(ed, ep, "lineItems", true, 1, 1000) {
                for (i, it) in items.iter().enumerate() {
                    let ip = format!("{ep}/lineItems/{i}");
                    let Some(it) = it.as_object() else {
                        self.wrong(&ip, "JSONObject", it);
                        continue;
                    };
                    self.number(it, &ip, "number", true, 1.0);
                    self.string(it, &ip, "description", true, 1, 512);
                    self.number(it, &ip, "price", true, 0.0);
                    if let Some(q) = self.object(it, &ip, "quantity", true) {
                        self.number(q, &format!("{ip}/quantity"), "value", true, 1.0);
                        self.string(
                            q,
                            &format!("{ip}/quantity"),
                            "unitOfMeasurement",
                            true,
                            1,
                            3,
                        );
                    }
                    self.string(it, &ip, "manufacturerCountry", true, 2, 2);
                    if let Some(w) = self.object(it, &ip, "weight", true) {
                        self.number(w, &format!("{ip}/weight"), "netValue", true, 0.0);
                        self.number(w, &format!("{ip}/weight"), "grossValue", true, 0.0);
                    }
                }
            }
            if let Some(inv) = self.object(ed, ep, "invoice", true) {
                self.string(inv, &format!("{ep}/invoice"), "number", true, 1, 35);
                self.string(inv, &format!("{ep}/invoice"), "date", true, 10, 10);
            }
        }
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

impl DhlFake {
    /// A fake with the demo users ([`DEMO_USERNAME`] with two accounts, [`NORDIC_USERNAME`]).
    pub fn new() -> Arc<Self> {
        let fake = Self {
            harness: Harness::new(basic_user, over_limit),
            state: Mutex::default(),
        };
        fake.add_user(
            DEMO_USERNAME,
            DEMO_PASSWORD,
            &[DEMO_ACCOUNT, DEMO_ACCOUNT_2],
        );
        fake.add_user(NORDIC_USERNAME, NORDIC_PASSWORD, &[NORDIC_ACCOUNT]);
        Arc::new(fake)
    }

    /// Adds (or replaces) an API user and the shipper accounts it may use.
    pub fn add_user(&self, username: &str, password: &str, accounts: &[&str]) {
        self.state.lock().unwrap().users.insert(
            username.to_owned(),
            User {
                password: password.to_owned(),
                accounts: accounts.iter().map(|a| (*a).to_owned()).collect(),
            },
        );
    }

    pub fn harness(&self) -> &Harness {
        &self.harness
    }

    /// The app, wrapped with the shared harness and control routes. The API answers both at
    /// the root and under `/mydhlapi` (the production layout), so `base_url` may be
    /// `http://127.0.0.1:<port>` or `http://127.0.0.1:<port>/mydhlapi`.
    pub fn router(self: &Arc<Self>) -> Router {
        let api: Router<Arc<DhlFake>> = Router::new()
            .route("/shipments", post(create_shipment))
            .route("/tracking", get(track_multi))
            .route("/shipments/{awb}/tracking", get(track_one));
        let app = Router::new()
            .merge(api.clone())
            .nest("/mydhlapi", api)
            .route("/_control/dhl/shipments", get(control_list))
            .route("/_control/dhl/shipments/{awb}", get(control_get))
            .route(
                "/_control/dhl/shipments/{awb}/advance",
                post(control_advance),
            )
            .route(
                "/_control/dhl/references/{reference}/awbs",
                get(control_awbs),
            )
            .route("/_control/dhl/lag", put(control_lag))
            .with_state(self.clone());
        wrap(app, &self.harness)
    }

    /// Every shipment minted, oldest first.
    pub fn shipments(&self) -> Vec<FakeShipment> {
        self.state.lock().unwrap().shipments.clone()
    }

    pub fn shipment(&self, awb: &str) -> Option<FakeShipment> {
        self.state
            .lock()
            .unwrap()
            .shipments
            .iter()
            .find(|s| s.awb == awb)
            .cloned()
    }

    /// How many AWBs were minted since start.
    pub fn minted(&self) -> u64 {
        self.state.lock().unwrap().minted
    }

    /// Hides shipments without a checkpoint from the reference lookup (tracking lag).
    pub fn set_lookup_lag(&self, on: bool) {
        self.state.lock().unwrap().lookup_lag = on;
    }

    /// Moves a shipment along; `false` when the AWB is unknown.
    pub fn advance_to(&self, awb: &str, stage: Stage) -> bool {
        let mut st = self.state.lock().unwrap();
        let Some(s) = st.shipments.iter_mut().find(|s| s.awb == awb) else {
            return false;
        };
        let has = |s: &FakeShipment, code: &str| s.events.iter().any(|e| e.code == code);
        let picked = has(s, "PU");
        let delivered = has(s, "OK");
        let dest = s.receiver_country.clone();
        let customs = s.customs;
        let mut add = |code: &str, description: &str, location: &str| {
            let at = s
                .events
                .last()
                .map_or(s.created_at + chrono::Duration::minutes(45), |e| {
                    e.at + chrono::Duration::minutes(97)
                });
            s.events.push(FakeEvent {
                at,
                code: code.to_owned(),
                description: description.to_owned(),
                location: location.to_owned(),
            });
        };
        if !picked {
            add("PU", "Shipment picked up", "BUCHAREST - ROMANIA");
            add(
                "PL",
                "Processed at BUCHAREST - ROMANIA",
                "BUCHAREST - ROMANIA",
            );
            add(
                "DF",
                "Departed Facility in BUCHAREST - ROMANIA",
                "BUCHAREST - ROMANIA",
            );
        }
        match stage {
            Stage::InTransit => {
                if picked && !delivered {
                    add(
                        "AF",
                        "Arrived at Sort Facility LEIPZIG - GERMANY",
                        "LEIPZIG - GERMANY",
                    );
                    add(
                        "DF",
                        "Departed Facility in LEIPZIG - GERMANY",
                        "LEIPZIG - GERMANY",
                    );
                }
            }
            Stage::Delivered => {
                if !delivered {
                    if customs {
                        add("CR", "Clearance processing complete", &dest);
                    }
                    add("AR", "Arrived at Delivery Facility", &dest);
                    add("WC", "With delivery courier", &dest);
                    add("OK", "Delivered", &dest);
                }
            }
            Stage::Exception => {
                if !delivered {
                    add("RT", "Returned to shipper", &dest);
                }
            }
        }
        true
    }

    fn authenticate(&self, headers: &HeaderMap, instance: &str) -> Result<Vec<String>, Refusal> {
        let refused = || {
            Box::new(problem(
                StatusCode::UNAUTHORIZED,
                instance,
                "Unauthorized",
                "Invalid Credentials",
                vec![],
            ))
        };
        let raw = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(refused)?;
        let (user, pass) = raw.split_once(':').ok_or_else(refused)?;
        let st = self.state.lock().unwrap();
        match st.users.get(user) {
            Some(u) if u.password == pass => Ok(u.accounts.clone()),
            _ => Err(refused()),
        }
    }

    /// Auth, then `x-version`: the checks every operation makes first.
    fn gate(&self, headers: &HeaderMap, instance: &str) -> Result<Vec<String>, Refusal> {
        let accounts = self.authenticate(headers, instance)?;
        match headers.get("x-version").and_then(|v| v.to_str().ok()) {
            Some(v) if !v.trim().is_empty() => Ok(accounts),
            _ => Err(refuse_400(
                instance,
                "Missing mandatory parameters: x-version",
            )),
        }
    }

    /// Business checks of a schema-valid body; the problem answer when one fails.
    fn business_checks(&self, body: &Value, accounts: &[String]) -> Result<Checked, Refusal> {
        let inst = "/shipments";
        let planned_s = str_at(body, "/plannedShippingDateAndTime");
        let planned = parse_planned(planned_s)
            .ok_or_else(|| refuse_400(inst, "998: ShipTimeStamp is not well formatted"))?;
        let now = Utc::now();
        if planned < now - chrono::Duration::seconds(5) {
            return Err(refuse_400(
                inst,
                format!("998: Planned shipping date {planned_s} is in the past"),
            ));
        }
        if planned > now + chrono::Duration::days(10) {
            return Err(refuse_400(
                inst,
                format!("998: Planned shipping date {planned_s} is more than 10 days ahead"),
            ));
        }
        let shipper_account = body["accounts"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["typeCode"] == "shipper"))
            .and_then(|a| a["number"].as_str())
            .ok_or_else(|| refuse_400(inst, "7001: No account with typeCode shipper"))?;
        if !accounts.iter().any(|a| a == shipper_account) {
            return Err(refuse_400(
                inst,
                format!("7001: Account {shipper_account} is not valid for this user"),
            ));
        }
        let from = str_at(
            body,
            "/customerDetails/shipperDetails/postalAddress/countryCode",
        );
        let to = str_at(
            body,
            "/customerDetails/receiverDetails/postalAddress/countryCode",
        );
        for (who, cc) in [("shipperDetails", from), ("receiverDetails", to)] {
            let pc = str_at(
                body,
                &format!("/customerDetails/{who}/postalAddress/postalCode"),
            );
            if !postal_code_ok(cc, pc) {
                return Err(refuse_400(
                    inst,
                    format!("1001: Postal code {pc} of {who} is invalid for country {cc}"),
                ));
            }
        }
        let product = str_at(body, "/productCode");
        let lane = if from == to {
            Lane::Domestic
        } else if EU.contains(&from) && EU.contains(&to) {
            Lane::Eu
        } else {
            Lane::International
        };
        let offered = PRODUCTS
            .iter()
            .find(|(c, _)| *c == product)
            .is_some_and(|(_, l)| *l == lane || (*l == Lane::International && lane == Lane::Eu));
        if !offered {
            return Err(refuse_400(
                inst,
                format!(
                    "7008: Product {product} is not available between this origin ({from}) and destination ({to})"
                ),
            ));
        }
        let customs_needed = from != to && !(EU.contains(&from) && EU.contains(&to));
        let declarable = body["content"]["isCustomsDeclarable"]
            .as_bool()
            .unwrap_or(false);
        let declaration = body["content"].get("exportDeclaration");
        if customs_needed && !declarable {
            return Err(refuse_400(
                inst,
                format!(
                    "8001: Shipment from {from} to {to} is dutiable: isCustomsDeclarable must be true"
                ),
            ));
        }
        if declarable && declaration.is_none() {
            return Err(refuse_400(
                inst,
                "8002: exportDeclaration is required when isCustomsDeclarable is true",
            ));
        }
        if declarable
            && (body["content"]["declaredValue"]
                .as_f64()
                .is_none_or(|v| v <= 0.0)
                || body["content"]["declaredValueCurrency"].as_str().is_none())
        {
            return Err(refuse_400(
                inst,
                "8003: declaredValue and declaredValueCurrency are required when isCustomsDeclarable is true",
            ));
        }
        if let Some(date) = declaration.and_then(|d| d["invoice"]["date"].as_str())
            && NaiveDate::parse_from_str(date, "%Y-%m-%d").is_err()
        {
            return Err(refuse_400(
                inst,
                format!("8004: Invoice date {date} is not well formatted (YYYY-MM-DD)"),
            ));
        }
        let format = body["outputImageProperties"]["encodingFormat"]
            .as_str()
            .unwrap_or("pdf")
            .to_owned();
        if !matches!(format.as_str(), "pdf" | "zpl" | "lp2" | "epl") {
            return Err(refuse_400(
                inst,
                format!("9001: encodingFormat {format} is not supported"),
            ));
        }
        Ok(Checked {
            account: shipper_account.to_owned(),
            planned,
            from: from.to_owned(),
            to: to.to_owned(),
            product: product.to_owned(),
            customs: declarable,
            format,
        })
    }

    fn mint(&self, body: Value, c: Checked) -> FakeShipment {
        let mut st = self.state.lock().unwrap();
        st.minted += 1;
        let base = 123_450_000 + st.minted;
        let awb = format!("{base:09}{}", base % 7);
        let pieces = body["content"]["packages"].as_array().map_or(1, Vec::len);
        let reference = body["customerReferences"]
            .as_array()
            .and_then(|r| {
                r.iter()
                    .find(|r| r["typeCode"].as_str().is_none_or(|t| t == "CU"))
            })
            .and_then(|r| r["value"].as_str())
            .map(str::to_owned);
        let s = FakeShipment {
            pieces: (1..=pieces).map(|i| format!("JD0146{awb}{i:03}")).collect(),
            awb,
            account: c.account,
            reference,
            product_code: c.product,
            planned: c.planned,
            created_at: Utc::now(),
            shipper_country: c.from,
            receiver_country: c.to,
            customs: c.customs,
            events: Vec::new(),
            request: body,
        };
        st.shipments.push(s.clone());
        s
    }

    fn visible<'a>(&self, st: &'a World, accounts: &[String]) -> Vec<&'a FakeShipment> {
        st.shipments
            .iter()
            .filter(|s| accounts.contains(&s.account))
            .collect()
    }
}

#[derive(Debug)]
struct Checked {
    account: String,
    planned: DateTime<Utc>,
    from: String,
    to: String,
    product: String,
    customs: bool,
    format: String,
}

fn echo_reference(headers: &HeaderMap) -> String {
    headers
        .get("message-reference")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

fn with_reference(mut r: Response, headers: &HeaderMap) -> Response {
    if let Ok(v) = HeaderValue::from_str(&echo_reference(headers)) {
        r.headers_mut().insert("message-reference", v);
    }
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        r.headers_mut().insert("invocation-id", v);
    }
    r
}

async fn create_shipment(
    State(fake): State<Arc<DhlFake>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let r = create_inner(&fake, &headers, q.as_deref(), &body);
    with_reference(r, &headers)
}

fn create_inner(fake: &DhlFake, headers: &HeaderMap, q: Option<&str>, body: &[u8]) -> Response {
    let inst = "/shipments";
    let accounts = match fake.gate(headers, inst) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let body: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return bad_request(inst, format!("JSON is not well formed: {e}"));
        }
    };
    let mut schema = Schema::default();
    schema.shipment(&body);
    if !schema.errors.is_empty() {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            inst,
            "Validation error",
            "Multiple problems found, see Additional Details",
            schema.errors,
        );
    }
    let checked = match fake.business_checks(&body, &accounts) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let pairs = query_pairs(q);
    if param(&pairs, "validateDataOnly") == Some("true") {
        return (
            StatusCode::OK,
            axum::Json(json!({"warnings": ["validateDataOnly: the request is valid; no shipment was created"]})),
        )
            .into_response();
    }
    let format = checked.format.clone();
    let s = fake.mint(body, checked);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let (image_format, content) = if format == "pdf" {
        ("PDF", label_pdf(&s.awb))
    } else {
        (
            "ZPL",
            format!("^XA^FO50,50^A0N,40^FDAWB {}^FS^XZ", s.awb).into_bytes(),
        )
    };
    let body = json!({
        "url": format!("http://{host}/shipments"),
        "shipmentTrackingNumber": s.awb,
        "cancelPickupUrl": null,
        "trackingUrl": format!("http://{host}/shipments/{}/tracking", s.awb),
        "dispatchConfirmationNumber": null,
        "packages": s.pieces.iter().enumerate().map(|(i, p)| json!({
            "referenceNumber": i + 1,
            "trackingNumber": p,
            "trackingUrl": format!("http://{host}/shipments/{}/tracking?pieceTrackingNumber={p}", s.awb),
        })).collect::<Vec<_>>(),
        "documents": [{
            "imageFormat": image_format,
            "content": base64::engine::general_purpose::STANDARD.encode(content),
            "typeCode": "label",
        }],
        "shipmentDetails": [{"serviceHandlingFeatureCodes": [], "volumetricWeight": 0.0}],
        "estimatedDeliveryDate": {
            "estimatedDeliveryDate": (s.planned + chrono::Duration::days(2)).format("%Y-%m-%d").to_string(),
            "estimatedDeliveryType": "QDDC",
        },
        "warnings": [],
    });
    let mut r = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/shipments/{}", s.awb)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A shipment as the tracking endpoints show it. `view`: all-checkpoints (default),
/// last-checkpoint, shipment-details-only.
fn tracked(s: &FakeShipment, view: &str, offsets: bool) -> Value {
    let tz = FixedOffset::east_opt(3600).expect("+01:00 is a valid offset");
    let mut events: Vec<Value> = s
        .events
        .iter()
        .map(|e| {
            let local = e.at.with_timezone(&tz);
            let mut v = json!({
                "date": local.format("%Y-%m-%d").to_string(),
                "time": local.format("%H:%M:%S").to_string(),
                "typeCode": e.code,
                "description": e.description,
                "serviceArea": [{"code": "XXX", "description": e.location}],
                "signedBy": if e.code == "OK" { "RECEIVER" } else { "" },
            });
            if offsets {
                v["GMTOffset"] = json!("+01:00");
            }
            v
        })
        .collect();
    events.reverse(); // newest first
    match view {
        "shipment-details-only" => events.clear(),
        "last-checkpoint" => events.truncate(1),
        _ => {}
    }
    let weight: f64 = s.request["content"]["packages"]
        .as_array()
        .map_or(0.0, |p| p.iter().filter_map(|p| p["weight"].as_f64()).sum());
    json!({
        "shipmentTrackingNumber": s.awb,
        "status": "Success",
        "shipmentTimestamp": s.created_at.format("%Y-%m-%dT%H:%M:%S").to_string(),
        "productCode": s.product_code,
        "description": s.request["content"]["description"],
        "shipperDetails": {"name": "", "postalAddress": {"countryCode": s.shipper_country}},
        "receiverDetails": {"name": "", "postalAddress": {"countryCode": s.receiver_country}},
        "totalWeight": weight,
        "unitOfMeasurements": "metric",
        "shipperReferences": s.reference.iter().map(|r| json!({"value": r, "typeCode": "CU"})).collect::<Vec<_>>(),
        "events": events,
        "numberOfPieces": s.pieces.len(),
        "estimatedDeliveryDate": (s.planned + chrono::Duration::days(2)).format("%Y-%m-%d").to_string(),
    })
}

async fn track_multi(
    State(fake): State<Arc<DhlFake>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let r = track_multi_inner(&fake, &headers, q.as_deref());
    with_reference(r, &headers)
}

fn track_multi_inner(fake: &DhlFake, headers: &HeaderMap, q: Option<&str>) -> Response {
    let inst = "/tracking";
    let accounts = match fake.gate(headers, inst) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let pairs = query_pairs(q);
    let view = param(&pairs, "trackingView").unwrap_or("all-checkpoints");
    let offsets = param(&pairs, "requestGMTOffsetPerEvent") == Some("true");
    let numbers: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "shipmentTrackingNumber")
        .map(|(_, v)| v.as_str())
        .collect();
    let st = fake.state.lock().unwrap();
    let mine = fake.visible(&st, &accounts);
    let found: Vec<&FakeShipment> = if !numbers.is_empty() {
        if numbers.len() > 200 {
            return bad_request(
                inst,
                "Maximum 200 shipmentTrackingNumber values are allowed",
            );
        }
        mine.into_iter()
            .filter(|s| numbers.contains(&s.awb.as_str()))
            .collect()
    } else if let Some(reference) = param(&pairs, "shipmentReference") {
        let Some(account) =
            param(&pairs, "shipperAccountNumber").or_else(|| param(&pairs, "payerAccountNumber"))
        else {
            return bad_request(inst, "Missing mandatory parameters: shipperAccountNumber");
        };
        if !accounts.iter().any(|a| a == account) {
            return bad_request(
                inst,
                format!("7001: Account {account} is not valid for this user"),
            );
        }
        let (Some(from), Some(to)) = (param(&pairs, "dateRangeFrom"), param(&pairs, "dateRangeTo"))
        else {
            return bad_request(
                inst,
                "Missing mandatory parameters: dateRangeFrom, dateRangeTo (tracking by shipment reference needs a timeframe)",
            );
        };
        let parse = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d");
        let (Ok(from), Ok(to)) = (parse(from), parse(to)) else {
            return bad_request(
                inst,
                "dateRangeFrom and dateRangeTo must be dates (YYYY-MM-DD)",
            );
        };
        let kind = param(&pairs, "shipmentReferenceType").unwrap_or("CU");
        if kind != "CU" {
            return not_found(inst, "No shipments found for the given search criteria");
        }
        mine.into_iter()
            .filter(|s| s.account == account)
            .filter(|s| s.reference.as_deref() == Some(reference))
            .filter(|s| {
                let d = s.planned.date_naive();
                from <= d && d <= to
            })
            .filter(|s| !st.lookup_lag || !s.events.is_empty())
            .collect()
    } else {
        return bad_request(
            inst,
            "Missing mandatory parameters: shipmentTrackingNumber or shipmentReference",
        );
    };
    if found.is_empty() {
        return not_found(inst, "No shipments found for the given search criteria");
    }
    let shipments: Vec<Value> = found.iter().map(|s| tracked(s, view, offsets)).collect();
    (StatusCode::OK, axum::Json(json!({"shipments": shipments}))).into_response()
}

async fn track_one(
    State(fake): State<Arc<DhlFake>>,
    Path(awb): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let inst = format!("/shipments/{awb}/tracking");
    let r = (|| {
        let accounts = match fake.gate(&headers, &inst) {
            Ok(a) => a,
            Err(r) => return *r,
        };
        let pairs = query_pairs(q.as_deref());
        let view = param(&pairs, "trackingView").unwrap_or("all-checkpoints");
        let offsets = param(&pairs, "requestGMTOffsetPerEvent") == Some("true");
        let st = fake.state.lock().unwrap();
        match fake
            .visible(&st, &accounts)
            .into_iter()
            .find(|s| s.awb == awb && !s.events.is_empty())
        {
            Some(s) => (
                StatusCode::OK,
                axum::Json(json!({"shipments": [tracked(s, view, offsets)]})),
            )
                .into_response(),
            None => not_found(
                &inst,
                format!("No shipment found with tracking number {awb}"),
            ),
        }
    })();
    with_reference(r, &headers)
}

async fn control_list(State(fake): State<Arc<DhlFake>>) -> axum::Json<Vec<FakeShipment>> {
    axum::Json(fake.shipments())
}

async fn control_get(State(fake): State<Arc<DhlFake>>, Path(awb): Path<String>) -> Response {
    match fake.shipment(&awb) {
        Some(s) => axum::Json(s).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no shipment {awb}")).into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceBody {
    to: Stage,
}

async fn control_advance(
    State(fake): State<Arc<DhlFake>>,
    Path(awb): Path<String>,
    axum::Json(b): axum::Json<AdvanceBody>,
) -> Response {
    if fake.advance_to(&awb, b.to) {
        match fake.shipment(&awb) {
            Some(s) => axum::Json(s.events).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        }
    } else {
        (StatusCode::NOT_FOUND, format!("no shipment {awb}")).into_response()
    }
}

async fn control_awbs(
    State(fake): State<Arc<DhlFake>>,
    Path(reference): Path<String>,
) -> axum::Json<Vec<String>> {
    axum::Json(CourierFake::awbs_for(fake.as_ref(), &reference))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LagBody {
    reference_lookup: bool,
}

async fn control_lag(
    State(fake): State<Arc<DhlFake>>,
    axum::Json(b): axum::Json<LagBody>,
) -> StatusCode {
    fake.set_lookup_lag(b.reference_lookup);
    StatusCode::NO_CONTENT
}

impl CourierFake for DhlFake {
    fn harness(&self) -> &Harness {
        &self.harness
    }

    fn awbs_for(&self, reference: &str) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .shipments
            .iter()
            .filter(|s| s.reference.as_deref() == Some(reference))
            .map(|s| s.awb.clone())
            .collect()
    }

    fn advance(&self, awb: &str, delivered: bool) {
        let stage = if delivered {
            Stage::Delivered
        } else {
            Stage::InTransit
        };
        self.advance_to(awb, stage);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_valid_small_pdfs() {
        let pdf = label_pdf("1234500016");
        assert!(pdf.starts_with(b"%PDF-1.4") && pdf.ends_with(b"%%EOF\n"));
        let text = String::from_utf8(pdf.clone()).unwrap();
        // The xref offsets point at the objects.
        let xref_at: usize = text
            .rsplit("startxref\n")
            .next()
            .and_then(|t| t.lines().next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(text[xref_at..].starts_with("xref"));
        let first_obj = text.find("1 0 obj").unwrap();
        assert!(text.contains(&format!("{first_obj:010} 00000 n")));
        assert!(text.contains("AWB 1234500016"));
    }

    #[test]
    fn schema_errors_read_like_mydhls() {
        let mut s = Schema::default();
        s.shipment(&json!({
            "plannedShippingDateAndTime": "2026-11-23T10:00:00 GMT+00:00",
            "pickup": {},
            "productCode": "P",
            "accounts": [{"typeCode": "shipper", "number": "123456789"}],
            "customerDetails": {"shipperDetails": {}, "receiverDetails": {}},
            "content": {"packages": [{"weight": 0}], "isCustomsDeclarable": "no",
                        "description": "x", "unitOfMeasurement": "metric"},
            "colour": "red"
        }));
        let all = s.errors.join("\n");
        for needle in [
            "#: extraneous key [colour] is not permitted",
            "#/pickup: required key [isRequested] not found",
            "#/customerDetails/shipperDetails: required key [postalAddress] not found",
            "#/content: required key [incoterm] not found",
            "#/content/packages/0/weight: 0 is not greater or equal to 0.001",
            "#/content/isCustomsDeclarable: expected type: Boolean, found: String",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
    }

    #[test]
    fn awbs_are_ten_digits_with_a_mod7_check_digit_and_advance_adds_events() {
        let fake = DhlFake::new();
        let checked = Checked {
            account: DEMO_ACCOUNT.into(),
            planned: Utc::now(),
            from: "RO".into(),
            to: "SE".into(),
            product: "U".into(),
            customs: false,
            format: "pdf".into(),
        };
        let body = json!({"customerReferences": [{"value": "R1", "typeCode": "CU"}],
                          "content": {"packages": [{"weight": 1.0}]}});
        let a = fake.mint(body.clone(), checked);
        assert_eq!(a.awb.len(), 10);
        let n: u64 = a.awb[..9].parse().unwrap();
        assert_eq!(a.awb[9..].parse::<u64>().unwrap(), n % 7);
        assert_eq!(fake.awbs_for("R1"), vec![a.awb.clone()]);
        assert!(fake.advance_to(&a.awb, Stage::InTransit));
        assert_eq!(fake.shipment(&a.awb).unwrap().events.len(), 3);
        fake.advance(&a.awb, true);
        let ev = fake.shipment(&a.awb).unwrap().events;
        assert_eq!(ev.last().unwrap().code, "OK");
        assert!(ev.windows(2).all(|w| w[0].at < w[1].at));
        assert!(!fake.advance_to("0000000000", Stage::Delivered));
    }

    #[test]
    fn postal_codes_per_country() {
        assert!(postal_code_ok("SE", "111 22"));
        assert!(postal_code_ok("NO", "0150"));
        assert!(!postal_code_ok("SE", "ABC12"));
        assert!(!postal_code_ok("NO", "01500"));
        assert!(postal_code_ok("XX", "anything"));
    }
}
