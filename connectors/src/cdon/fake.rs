//! A stateful fake of CDON's Merchants API (same contract as the client), for tests, the
//! sandbox and the demo. Served under `/api` (point `base_url` at `<fake>/api/`), wrapped by
//! [`crate::fake::wrap`] (faults, limits, `/_control/{stats,faults,limits}`).
//!
//! What it does, per the contract (§1.3):
//! - Several merchants (accounts), each with its own token; `401` on missing or wrong Basic
//!   auth. The demo account is [`DEMO_MERCHANT_ID`] / [`DEMO_TOKEN`].
//! - `POST|PUT /v2/articles/bulk` validate the Article model (lengths, required fields, no HTML,
//!   markets, prices with a fractional `vat_rate`, shipping time) into `failed[].errors`
//!   `{message, field}` inside a 202 with a fresh UUID `batch_id`; at most 100 creates and 200
//!   actions per call (400 above). Creating a live SKU fails at once ("SKU already exists");
//!   creating one whose create is still pending fails later (`sku_already_exists`).
//! - Status rows stay `pending` until [`CdonFake::settle`] (or `settle_after_polls` polls of
//!   `POST /v1/statuses/batch`), then become `ok` or `failed` per market (`invalid_category`,
//!   `invalid_vat_rate`, `article_does_not_exist`, `sku_already_exists`), and only then do the
//!   changes apply. `POST /v1/statuses/sku` shows the latest row of each SKU.
//! - `GET /v1/orders/` returns a bare array filtered by `state` (default `CREATED`), `limit`
//!   ≤ 1000 (default 100), `page` from 1. Accept/fulfil/cancel follow the state machine with
//!   CDON's exact 403 `description` texts, and a fake clock for `fulfillment_deadline`; orders
//!   still open `auto_cancel_days` after creation become `NOT_FULFILLED`. `POST /v1/orders/`
//!   creates a sandbox order (O6). Orders decrement stock.
//! - Order actions answer 202 with `Content-Type: text/html` and a JSON body (as CDON's
//!   documented examples do); with `html_202` the bulk endpoints do too.
//! - Over a limit: `429 {"description":"Too Many Requests"}` with `Retry-After`.
//!
//! Control API (no auth; `merchant_id` defaults to the demo account):
//! `POST /_control/cdon/merchants {merchant_id, token}`, `POST /_control/cdon/listings`
//! ([`SeedListing`]), `GET /_control/cdon/listings/{sku}`, `POST /_control/cdon/orders`
//! ([`SeedOrder`]), `GET /_control/cdon/orders/{id}`, `POST /_control/cdon/orders/{id}/cancel`
//! (CDON or the customer cancels), `POST /_control/cdon/settle`, `PUT /_control/cdon/clock
//! {offset_secs}`, `GET|PUT /_control/cdon/settings` ([`FakeSettings`]),
//! `POST /_control/cdon/seed_demo`.

// Handlers return axum responses as their errors: the error is the answer.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine as _;
use canonical::{ChannelOrderId, OrderStatus, Sku, Tracking, round2};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::convert::{APPROVED_CARRIERS, LANGUAGES, find_html, market_currency};
use super::wire::{
    self, Category, CreatedItem, FailedItem, FieldError, LangValue, MarketStatus, OrderPrice,
    OrderState, ShippingAddress, ShippingTime, StatusRow, TrackingInformation, UpdatedItem, action,
    format_timestamp, parse_timestamp, to_decimal,
};
use crate::conformance::MarketplaceFake;
use crate::fake::{Buyer, Harness, LimitKind, basic_user, wrap};

/// The sandbox's demo merchant.
pub const DEMO_MERCHANT_ID: &str = "demo-merchant";
/// The demo merchant's token (a fake's credential, not a real one).
pub const DEMO_TOKEN: &str = "demo-cdon-token";

const MARKET_CODES: [&str; 4] = ["SE", "DK", "FI", "NO"];
const MAX_QUANTITY: u64 = 500_000;

/// A demo category tree (K1): `(id, name, path)`.
const CATEGORIES: [(u64, &str, &str); 6] = [
    (1000, "Home", "1000"),
    (1124, "Kitchen", "1000.1124"),
    (2000, "Fashion", "2000"),
    (2210, "T-shirts", "2000.2210"),
    (3000, "Electronics", "3000"),
    (3310, "Headphones", "3000.3310"),
];

/// The fake's behaviour switches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FakeSettings {
    /// Status rows settle after this many `POST /v1/statuses/batch` polls of their batch
    /// (0: only on [`CdonFake::settle`]).
    pub settle_after_polls: u32,
    /// Bulk endpoints answer 202 with `Content-Type: text/html` (order actions always do).
    pub html_202: bool,
    /// Titles and descriptions must include `sv-SE`.
    pub require_swedish: bool,
    /// Orders neither fulfilled nor cancelled this many days after creation are auto-cancelled
    /// (0: never).
    pub auto_cancel_days: u32,
    /// Articles per create call (400 above).
    pub max_articles_per_create: usize,
    /// Actions per update call (400 above).
    pub max_actions_per_update: usize,
}

impl Default for FakeSettings {
    fn default() -> Self {
        Self {
            settle_after_polls: 2,
            html_202: false,
            require_swedish: true,
            auto_cancel_days: 7,
            max_articles_per_create: 100,
            max_actions_per_update: 200,
        }
    }
}

/// A listing to put on the fake directly (as if created long ago in the back office).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeedListing {
    pub merchant_id: Option<String>,
    pub sku: String,
    pub quantity: u32,
    /// Empty: all four markets.
    pub markets: Vec<String>,
    /// Gross prices per market; missing markets get a default price.
    pub prices: BTreeMap<String, Decimal>,
    pub title: Option<String>,
    /// Also leave an `ok` create status row (as if created through the API recently).
    pub status_row: bool,
}

/// An order to place on the fake (the listing is seeded when missing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeedOrder {
    pub merchant_id: Option<String>,
    pub sku: String,
    /// 0 means 1.
    pub quantity: u32,
    /// Default: the listing's first market.
    pub market: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS` (UTC); may be in the past.
    pub deadline: Option<String>,
    /// Deadline relative to the fake's clock (negative: already passed). Default 120 h.
    pub deadline_in_hours: Option<i64>,
    /// A company order: no first/last name, only `full_name`.
    pub b2b: bool,
    pub customer_order_id: Option<String>,
    /// Instead of the market's built-in buyer (a test following personal data).
    pub buyer: Option<Buyer>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Price {
    amount: Decimal,
    currency: String,
    vat_rate: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields {
    status: String,
    main_image: String,
    images: Vec<String>,
    markets: Vec<String>,
    title: Vec<LangValue>,
    description: Vec<LangValue>,
    shipping_time: Vec<ShippingTime>,
    parent_sku: Option<String>,
    category: Option<String>,
    brand: Option<String>,
    gtin: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Article {
    id: String,
    sku: String,
    quantity: u32,
    prices: BTreeMap<String, Price>,
    fields: Fields,
}

#[derive(Debug, Clone)]
enum Change {
    Create(Article),
    Update(Fields),
    Price(BTreeMap<String, Price>),
    Quantity(u32),
    Delete,
}

#[derive(Debug, Clone)]
struct Row {
    correlation_id: String,
    sku: String,
    action: String,
    change: Change,
    article_id: Option<String>,
    /// `None` while pending.
    result: Option<Vec<MarketStatus>>,
}

#[derive(Debug, Clone)]
struct Batch {
    id: String,
    rows: Vec<Row>,
    polls: u32,
    settled: bool,
}

#[derive(Debug, Clone)]
struct FakeOrder {
    id: String,
    article_id: String,
    customer_order_id: String,
    title: String,
    sku: String,
    quantity: u32,
    market: String,
    currency: String,
    gross_total: Decimal,
    vat_rate: Decimal,
    state: OrderState,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    deadline: DateTime<Utc>,
    tracking: Vec<TrackingInformation>,
    b2b: bool,
    buyer: Option<Buyer>,
}

#[derive(Debug, Default)]
struct Account {
    token: String,
    articles: BTreeMap<String, Article>,
    batches: Vec<Batch>,
    orders: Vec<FakeOrder>,
}

#[derive(Debug, Default)]
struct FakeState {
    accounts: BTreeMap<String, Account>,
    settings: FakeSettings,
    clock_offset_secs: i64,
    next_order: u64,
}

impl FakeState {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::seconds(self.clock_offset_secs)
    }
}

/// The fake CDON Merchants API. Build with [`CdonFake::new`], serve [`CdonFake::router`].
#[derive(Debug)]
pub struct CdonFake {
    harness: Harness,
    state: Mutex<FakeState>,
}

// ---------------------------------------------------------------------------------------------
// Responses

fn reply(status: StatusCode, body: &impl Serialize, html: bool) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut r = (status, bytes).into_response();
    let ct = if html {
        "text/html; charset=utf-8"
    } else {
        "application/json"
    };
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    if let Ok(v) = HeaderValue::from_str(&Uuid::new_v4().to_string()) {
        r.headers_mut().insert("x-request-id", v);
    }
    r
}

fn describe(status: StatusCode, text: &str) -> Response {
    reply(status, &json!({ "description": text }), false)
}

fn invalid(errors: Value) -> Response {
    reply(
        StatusCode::BAD_REQUEST,
        &json!({"description": "Invalid payload", "errors": errors}),
        false,
    )
}

fn over_limit(_kind: LimitKind, wait: Duration) -> Response {
    let mut r = describe(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

// ---------------------------------------------------------------------------------------------
// Validation of the Article model

#[derive(Default)]
struct Check {
    errors: Vec<FieldError>,
}

impl Check {
    fn err(&mut self, message: impl Into<String>, field: &[&str]) {
        self.errors.push(FieldError {
            message: message.into(),
            field: field.iter().map(|s| (*s).to_owned()).collect(),
        });
    }

    fn text(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        (min, max): (usize, usize),
        required: bool,
    ) -> Option<String> {
        match obj.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.err("Required field missing", &[key]);
                }
                None
            }
            Some(Value::String(s)) => {
                let n = s.chars().count();
                if n < min || n > max {
                    self.err(
                        format!("Must be between {min} and {max} characters"),
                        &[key],
                    );
                    None
                } else {
                    Some(s.clone())
                }
            }
            Some(_) => {
                self.err("Must be a string", &[key]);
                None
            }
        }
    }

    fn url(&mut self, obj: &Map<String, Value>, key: &str, required: bool) -> Option<String> {
        let u = self.text(obj, key, (1, 1500), required)?;
        if u.starts_with("https://") || u.starts_with("http://") {
            Some(u)
        } else {
            self.err("Not a valid URL", &[key]);
            None
        }
    }

    fn quantity(&mut self, v: Option<&Value>, field: &[&str]) -> Option<u32> {
        match v {
            None | Some(Value::Null) => {
                self.err("Required field missing", field);
                None
            }
            Some(v) => match v.as_u64().filter(|q| *q <= MAX_QUANTITY) {
                Some(q) => u32::try_from(q).ok(),
                None => {
                    self.err(
                        format!("Must be an integer between 0 and {MAX_QUANTITY}"),
                        field,
                    );
                    None
                }
            },
        }
    }

    fn markets(&mut self, obj: &Map<String, Value>) -> Option<Vec<String>> {
        let Some(v) = obj.get("markets").filter(|v| !v.is_null()) else {
            self.err("Required field missing", &["markets"]);
            return None;
        };
        let Some(items) = v.as_array().filter(|a| !a.is_empty()) else {
            self.err("Must be a non-empty list of markets", &["markets"]);
            return None;
        };
        let mut out = Vec::new();
        for m in items {
            match m.as_str() {
                Some(m) if MARKET_CODES.contains(&m) && !out.iter().any(|o: &String| o == m) => {
                    out.push(m.to_owned())
                }
                _ => {
                    self.err(
                        format!("Not a valid market: {m}; use SE, DK, FI or NO, once each"),
                        &["markets"],
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    fn langs(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        (min, max): (usize, usize),
        no_html: bool,
        require_swedish: bool,
    ) -> Option<Vec<LangValue>> {
        let Some(v) = obj.get(key).filter(|v| !v.is_null()) else {
            self.err("Required field missing", &[key]);
            return None;
        };
        let Some(items) = v.as_array().filter(|a| !a.is_empty()) else {
            self.err("Must be a non-empty list of {language, value}", &[key]);
            return None;
        };
        let before = self.errors.len();
        let mut out = Vec::new();
        for item in items {
            let lang = item.get("language").and_then(Value::as_str);
            let value = item.get("value").and_then(Value::as_str);
            match lang {
                Some(l) if LANGUAGES.contains(&l) => {}
                _ => self.err(
                    format!("Not a valid language; use one of {}", LANGUAGES.join(", ")),
                    &[key, "language"],
                ),
            }
            match value {
                None => self.err("Required field missing", &[key, "value"]),
                Some(s) if !(min..=max).contains(&s.chars().count()) => self.err(
                    format!("Must be between {min} and {max} characters"),
                    &[key, "value"],
                ),
                Some(s) if no_html && find_html(s).is_some() => {
                    self.err("HTML is not allowed", &[key, "value"])
                }
                Some(_) => {}
            }
            if let (Some(l), Some(v)) = (lang, value) {
                out.push(LangValue {
                    language: l.to_owned(),
                    value: v.to_owned(),
                });
            }
        }
        if require_swedish && !out.iter().any(|l| l.language == "sv-SE") {
            self.err("A Swedish (sv-SE) text is required", &[key]);
        }
        (self.errors.len() == before).then_some(out)
    }

    fn prices(&mut self, v: Option<&Value>) -> Option<BTreeMap<String, Price>> {
        let Some(v) = v.filter(|v| !v.is_null()) else {
            self.err("Required field missing", &["price"]);
            return None;
        };
        let Some(items) = v.as_array().filter(|a| !a.is_empty()) else {
            self.err("Must be a non-empty list of price entries", &["price"]);
            return None;
        };
        let before = self.errors.len();
        let mut out = BTreeMap::new();
        for item in items {
            let market = item.get("market").and_then(Value::as_str).unwrap_or("");
            if !MARKET_CODES.contains(&market) {
                self.err("Not a valid market", &["price", "market"]);
                continue;
            }
            let value = item.get("value");
            let amount = value.and_then(|v| v.get("amount_including_vat"));
            let Some(amount) = amount else {
                self.err(
                    "Required field missing",
                    &["price", "value", "amount_including_vat"],
                );
                continue;
            };
            let amount = to_decimal(amount).filter(|a| *a > Decimal::ZERO);
            let currency = value
                .and_then(|v| v.get("currency"))
                .and_then(Value::as_str);
            let vat = value
                .and_then(|v| v.get("vat_rate"))
                .filter(|v| !v.is_null());
            let want = market
                .parse()
                .ok()
                .and_then(market_currency)
                .map(|c| c.as_str());
            if amount.is_none() {
                self.err(
                    "Must be a number above 0",
                    &["price", "value", "amount_including_vat"],
                );
            }
            if currency != want {
                self.err(
                    format!(
                        "Currency must be {} on market {market}",
                        want.unwrap_or("?")
                    ),
                    &["price", "value", "currency"],
                );
            }
            let vat_rate = match vat.map(to_decimal) {
                None => None,
                Some(Some(r)) if r >= Decimal::ZERO && r <= Decimal::ONE => Some(r),
                Some(_) => {
                    self.err(
                        "Must be a decimal fraction between 0 and 1 (0.25 means 25%)",
                        &["price", "value", "vat_rate"],
                    );
                    None
                }
            };
            if out.contains_key(market) {
                self.err(format!("Duplicate price for market {market}"), &["price"]);
            }
            if let (Some(amount), Some(currency)) = (amount, currency) {
                out.insert(
                    market.to_owned(),
                    Price {
                        amount,
                        currency: currency.to_owned(),
                        vat_rate,
                    },
                );
            }
        }
        (self.errors.len() == before).then_some(out)
    }

    fn shipping(&mut self, obj: &Map<String, Value>) -> Option<Vec<ShippingTime>> {
        let Some(v) = obj.get("shipping_time").filter(|v| !v.is_null()) else {
            self.err("Required field missing", &["shipping_time"]);
            return None;
        };
        match serde_json::from_value::<Vec<ShippingTime>>(v.clone()) {
            Ok(list)
                if !list.is_empty()
                    && list.iter().all(|s| {
                        MARKET_CODES.contains(&s.market.as_str())
                            && (1..=9).contains(&s.min)
                            && (1..=9).contains(&s.max)
                            && s.min <= s.max
                    }) =>
            {
                Some(list)
            }
            _ => {
                self.err(
                    "Must be a list of {market, min, max} with 1 <= min <= max <= 9",
                    &["shipping_time"],
                );
                None
            }
        }
    }

    /// The fields `update_article` also carries.
    fn fields(&mut self, obj: &Map<String, Value>, require_swedish: bool) -> Option<Fields> {
        let before = self.errors.len();
        let status = match obj.get("status") {
            None | Some(Value::Null) => {
                self.err("Required field missing", &["status"]);
                None
            }
            Some(Value::String(s)) if s == "for sale" || s == "paused" => Some(s.clone()),
            Some(_) => {
                self.err("Must be one of: for sale, paused.", &["status"]);
                None
            }
        };
        let main_image = self.url(obj, "main_image", true);
        let mut images = Vec::new();
        match obj.get("images") {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) if list.len() <= 10 => {
                for i in list {
                    match i.as_str() {
                        Some(u) if u.starts_with("http") && u.chars().count() <= 1500 => {
                            images.push(u.to_owned())
                        }
                        _ => self.err("Not a valid URL", &["images"]),
                    }
                }
            }
            Some(_) => self.err("Must be a list of at most 10 URLs", &["images"]),
        }
        let markets = self.markets(obj);
        let title = self.langs(obj, "title", (5, 150), false, require_swedish);
        let description = self.langs(obj, "description", (10, 4096), true, require_swedish);
        let shipping_time = self.shipping(obj);
        let parent_sku = self.text(obj, "parent_sku", (1, 64), false);
        let category = self.text(obj, "category", (1, 20), false);
        if category
            .as_deref()
            .is_some_and(|c| !c.chars().all(|c| c.is_ascii_digit()))
        {
            self.err("Must be a category id", &["category"]);
        }
        let brand = self.text(obj, "brand", (1, 50), false);
        let gtin = self.text(obj, "gtin", (1, 13), false);
        if let (Some(markets), Some(shipping)) = (&markets, &shipping_time) {
            for m in markets {
                if !shipping.iter().any(|s| &s.market == m) {
                    self.err(
                        format!("Missing shipping_time for market {m}"),
                        &["shipping_time"],
                    );
                }
            }
        }
        if self.errors.len() != before {
            return None;
        }
        Some(Fields {
            status: status?,
            main_image: main_image?,
            images,
            markets: markets?,
            title: title?,
            description: description?,
            shipping_time: shipping_time?,
            parent_sku,
            category,
            brand,
            gtin,
        })
    }
}

fn validate_create(v: &Value, require_swedish: bool) -> Result<Article, Vec<FieldError>> {
    let mut c = Check::default();
    let Some(obj) = v.as_object() else {
        c.err("Must be an object", &[]);
        return Err(c.errors);
    };
    let sku = c.text(obj, "sku", (1, 64), true);
    let quantity = c.quantity(obj.get("quantity"), &["quantity"]);
    let prices = c.prices(obj.get("price"));
    let fields = c.fields(obj, require_swedish);
    if let (Some(p), Some(markets)) = (&prices, obj.get("markets").and_then(Value::as_array)) {
        for m in markets.iter().filter_map(Value::as_str) {
            if MARKET_CODES.contains(&m) && !p.contains_key(m) {
                c.err(format!("Missing price for market {m}"), &["price"]);
            }
        }
    }
    match (sku, quantity, prices, fields) {
        (Some(sku), Some(quantity), Some(prices), Some(fields)) if c.errors.is_empty() => {
            Ok(Article {
                id: Uuid::new_v4().to_string(),
                sku,
                quantity,
                prices,
                fields,
            })
        }
        _ => Err(c.errors),
    }
}

fn default_vat(market: &str) -> Decimal {
    match market {
        "FI" => Decimal::new(255, 3),
        _ => Decimal::new(25, 2),
    }
}

/// The VAT rates (fractions) a market accepts. [I]: national rates as of 2026.
fn vat_allowed(market: &str, rate: Decimal) -> bool {
    let allowed: &[(i64, u32)] = match market {
        "SE" => &[(0, 0), (6, 2), (12, 2), (25, 2)],
        "DK" => &[(0, 0), (25, 2)],
        "FI" => &[(0, 0), (10, 2), (135, 3), (14, 2), (24, 2), (255, 3)],
        "NO" => &[(0, 0), (12, 2), (15, 2), (25, 2)],
        _ => &[],
    };
    allowed.iter().any(|(n, s)| Decimal::new(*n, *s) == rate)
}

fn known_category(c: &str) -> bool {
    c.parse::<u64>()
        .is_ok_and(|id| CATEGORIES.iter().any(|(k, _, _)| *k == id))
}

fn status(market: &str, ok: Result<(), &str>) -> MarketStatus {
    MarketStatus {
        market: market.to_owned(),
        status: if ok.is_ok() { "ok" } else { "failed" }.to_owned(),
        error_code: ok.err().map(str::to_owned),
    }
}

// ---------------------------------------------------------------------------------------------
// Account logic

impl Account {
    fn pending_create(&self, sku: &str) -> bool {
        self.batches.iter().any(|b| {
            b.rows.iter().any(|r| {
                r.sku == sku && r.result.is_none() && matches!(r.change, Change::Create(_))
            })
        })
    }

    fn settle(&mut self) {
        let Account {
            articles, batches, ..
        } = self;
        for b in batches.iter_mut().filter(|b| !b.settled) {
            for row in &mut b.rows {
                let (result, article_id) = apply(articles, row);
                row.result = Some(result);
                row.article_id = article_id.or(row.article_id.take());
            }
            b.settled = true;
        }
    }

    fn status_row(row: &Row) -> StatusRow {
        let markets = row.result.clone().unwrap_or_else(|| {
            let markets: Vec<String> = match &row.change {
                Change::Create(a) => a.fields.markets.clone(),
                Change::Update(f) => f.markets.clone(),
                Change::Price(p) => p.keys().cloned().collect(),
                Change::Quantity(_) | Change::Delete => vec!["*".to_owned()],
            };
            markets
                .into_iter()
                .map(|m| MarketStatus {
                    market: m,
                    status: "pending".into(),
                    error_code: None,
                })
                .collect()
        });
        StatusRow {
            correlation_id: Some(row.correlation_id.clone()),
            article_id: row.article_id.clone(),
            sku: row.sku.clone(),
            action: Some(row.action.clone()),
            markets,
        }
    }

    fn expire_orders(&mut self, now: DateTime<Utc>, days: u32) {
        if days == 0 {
            return;
        }
        for o in &mut self.orders {
            let open = matches!(o.state, OrderState::Created | OrderState::Accepted);
            if open && o.created_at + chrono::Duration::days(i64::from(days)) < now {
                o.state = OrderState::NotFulfilled;
                o.updated_at = now;
            }
        }
    }

    fn order_mut(&mut self, id: &str) -> Option<&mut FakeOrder> {
        self.orders.iter_mut().find(|o| o.id == id)
    }

    fn seed_listing(&mut self, s: &SeedListing) -> Result<String, String> {
        if s.sku.trim().is_empty() || s.sku.chars().count() > 64 {
            return Err("sku must be 1-64 characters".into());
        }
        let markets: Vec<String> = if s.markets.is_empty() {
            MARKET_CODES.iter().map(|m| (*m).to_owned()).collect()
        } else {
            s.markets.clone()
        };
        let mut prices = BTreeMap::new();
        for m in &markets {
            let currency = m
                .parse()
                .ok()
                .and_then(market_currency)
                .ok_or_else(|| format!("{m} is not a CDON market"))?;
            let default = match m.as_str() {
                "FI" => Decimal::new(1990, 2),
                "DK" => Decimal::new(14900, 2),
                _ => Decimal::new(19900, 2),
            };
            prices.insert(
                m.clone(),
                Price {
                    amount: s.prices.get(m).copied().unwrap_or(default),
                    currency: currency.to_string(),
                    vat_rate: Some(default_vat(m)),
                },
            );
        }
        let title = s
            .title
            .clone()
            .unwrap_or_else(|| format!("Demo article {}", s.sku));
        let text = |v: &str| {
            vec![LangValue {
                language: "sv-SE".into(),
                value: v.to_owned(),
            }]
        };
        let article = Article {
            id: Uuid::new_v4().to_string(),
            sku: s.sku.clone(),
            quantity: s.quantity,
            fields: Fields {
                status: "for sale".into(),
                main_image: format!("https://images.example/{}.jpg", s.sku),
                images: Vec::new(),
                shipping_time: markets
                    .iter()
                    .map(|m| ShippingTime {
                        market: m.clone(),
                        min: 1,
                        max: 3,
                    })
                    .collect(),
                markets,
                title: text(&title),
                description: text(&format!("{title}: a seeded demo article.")),
                parent_sku: None,
                category: Some("1124".into()),
                brand: None,
                gtin: None,
            },
            prices,
        };
        let id = article.id.clone();
        if s.status_row {
            self.batches.push(Batch {
                id: Uuid::new_v4().to_string(),
                rows: vec![Row {
                    correlation_id: Uuid::new_v4().to_string(),
                    sku: s.sku.clone(),
                    action: action::CREATE.into(),
                    article_id: Some(id.clone()),
                    result: Some(
                        article
                            .fields
                            .markets
                            .iter()
                            .map(|m| status(m, Ok(())))
                            .collect(),
                    ),
                    change: Change::Create(article.clone()),
                }],
                polls: 0,
                settled: true,
            });
        }
        self.articles.insert(s.sku.clone(), article);
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    fn place_order(
        &mut self,
        next: &mut u64,
        now: DateTime<Utc>,
        sku: &str,
        quantity: u32,
        market: Option<&str>,
        deadline: DateTime<Utc>,
        b2b: bool,
        customer_order_id: Option<String>,
    ) -> Result<String, String> {
        let a = self
            .articles
            .get_mut(sku)
            .ok_or_else(|| format!("article {sku} not found"))?;
        let market = match market {
            Some(m) => m.to_owned(),
            None => a
                .fields
                .markets
                .first()
                .cloned()
                .ok_or("the article has no market")?,
        };
        let price = a
            .prices
            .get(&market)
            .ok_or_else(|| format!("article {sku} has no price on market {market}"))?;
        let quantity = quantity.max(1);
        a.quantity = a.quantity.saturating_sub(quantity);
        *next += 1;
        let id = format!("{}", 7_000_000 + *next);
        let order = FakeOrder {
            customer_order_id: customer_order_id.unwrap_or_else(|| format!("C{id}")),
            id: id.clone(),
            article_id: a.id.clone(),
            title: a
                .fields
                .title
                .first()
                .map(|t| t.value.clone())
                .unwrap_or_default(),
            sku: sku.to_owned(),
            quantity,
            currency: price.currency.clone(),
            gross_total: price.amount * Decimal::from(quantity),
            vat_rate: price.vat_rate.unwrap_or_else(|| default_vat(&market)),
            market,
            state: OrderState::Created,
            created_at: now,
            updated_at: now,
            deadline,
            tracking: Vec::new(),
            b2b,
            buyer: None,
        };
        self.orders.push(order);
        Ok(id)
    }
}

/// Processes one row at settle time: its per-market result and the article id it touched.
fn apply(
    articles: &mut BTreeMap<String, Article>,
    row: &Row,
) -> (Vec<MarketStatus>, Option<String>) {
    let sku = row.sku.as_str();
    let star = |code: &str| vec![status("*", Err(code))];
    match &row.change {
        Change::Create(a) => {
            if articles.contains_key(sku) {
                return (star("sku_already_exists"), None);
            }
            if a.fields
                .category
                .as_deref()
                .is_some_and(|c| !known_category(c))
            {
                let all = a
                    .fields
                    .markets
                    .iter()
                    .map(|m| status(m, Err("invalid_category")))
                    .collect();
                return (all, None);
            }
            let mut result = Vec::new();
            let mut live = a.clone();
            live.fields.markets.clear();
            for m in &a.fields.markets {
                let ok = a
                    .prices
                    .get(m)
                    .is_some_and(|p| p.vat_rate.is_none_or(|r| vat_allowed(m, r)));
                result.push(status(m, if ok { Ok(()) } else { Err("invalid_vat_rate") }));
                if ok {
                    live.fields.markets.push(m.clone());
                } else {
                    live.prices.remove(m);
                }
            }
            let id = a.id.clone();
            if !live.fields.markets.is_empty() {
                articles.insert(sku.to_owned(), live);
            }
            (result, Some(id))
        }
        Change::Update(f) => {
            let Some(a) = articles.get_mut(sku) else {
                return (star("article_does_not_exist"), None);
            };
            if f.category.as_deref().is_some_and(|c| !known_category(c)) {
                let all = f
                    .markets
                    .iter()
                    .map(|m| status(m, Err("invalid_category")))
                    .collect();
                return (all, Some(a.id.clone()));
            }
            a.fields = f.clone();
            let all = f.markets.iter().map(|m| status(m, Ok(()))).collect();
            (all, Some(a.id.clone()))
        }
        Change::Price(prices) => {
            let Some(a) = articles.get_mut(sku) else {
                return (star("article_does_not_exist"), None);
            };
            let mut result = Vec::new();
            for (m, p) in prices {
                if p.vat_rate.is_none_or(|r| vat_allowed(m, r)) {
                    a.prices.insert(m.clone(), p.clone());
                    result.push(status(m, Ok(())));
                } else {
                    result.push(status(m, Err("invalid_vat_rate")));
                }
            }
            (result, Some(a.id.clone()))
        }
        Change::Quantity(q) => match articles.get_mut(sku) {
            Some(a) => {
                a.quantity = *q;
                (vec![status("*", Ok(()))], Some(a.id.clone()))
            }
            None => (star("article_does_not_exist"), None),
        },
        Change::Delete => match articles.remove(sku) {
            Some(a) => (vec![status("*", Ok(()))], Some(a.id)),
            None => (star("article_does_not_exist"), None),
        },
    }
}

fn wire_order(o: &FakeOrder) -> wire::Order {
    let gross = round2(o.gross_total);
    let net = round2(gross / (Decimal::ONE + o.vat_rate));
    let price = OrderPrice {
        amount: net,
        vat_amount: gross - net,
        vat_rate: Some(o.vat_rate),
        currency: Some(o.currency.clone()),
    };
    let (city, street, postal, first, last) = match o.market.as_str() {
        "DK" => ("København", "Strøget 12", "1160", "Mette", "Jensen"),
        "FI" => ("Helsinki", "Mannerheimintie 5", "00100", "Aino", "Virtanen"),
        "NO" => ("Oslo", "Karl Johans gate 3", "0154", "Ola", "Nordmann"),
        _ => ("Stockholm", "Storgatan 1", "111 22", "Anna", "Svensson"),
    };
    let (city, street, postal, first, last, phone) = match &o.buyer {
        Some(b) => (
            b.city.as_str(),
            b.street.as_str(),
            b.postal_code.as_str(),
            b.first_name.as_str(),
            b.last_name.as_str(),
            b.phone.as_str(),
        ),
        None => (city, street, postal, first, last, "+46700000000"),
    };
    let shipping_address = ShippingAddress {
        first_name: (!o.b2b).then(|| first.to_owned()),
        last_name: (!o.b2b).then(|| last.to_owned()),
        full_name: Some(if o.b2b {
            "Demo Företag AB".to_owned()
        } else {
            format!("{first} {last}")
        }),
        street_address: street.to_owned(),
        city: city.to_owned(),
        postal_code: postal.to_owned(),
        country: o.market.clone(),
        phone_number: Some(phone.to_owned()),
    };
    wire::Order {
        id: o.id.clone(),
        article_id: Some(o.article_id.clone()),
        customer_order_id: Some(o.customer_order_id.clone()),
        title: Some(o.title.clone()),
        article_sku: o.sku.clone(),
        total_price: Some(price.clone()),
        price,
        quantity: o.quantity,
        shipping_address,
        market: o.market.clone(),
        state: o.state.clone(),
        created_at: format_timestamp(o.created_at),
        updated_at: Some(format_timestamp(o.updated_at)),
        fulfillment_deadline: Some(format_timestamp(o.deadline)),
        tracking_information: o.tracking.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// The fake

/// Who is calling: the Basic user whose token matches.
fn authenticate(st: &FakeState, headers: &HeaderMap) -> Result<String, Response> {
    let unauthorized = || {
        let mut r = describe(StatusCode::UNAUTHORIZED, "Unauthorized");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"merchants-api\""),
        );
        r
    };
    let raw = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(unauthorized)?;
    let (user, token) = raw.split_once(':').ok_or_else(unauthorized)?;
    match st.accounts.get(user) {
        Some(a) if a.token == token => {}
        _ => return Err(unauthorized()),
    }
    if let Some(m) = headers.get("x-merchant-id").and_then(|v| v.to_str().ok())
        && m != user
    {
        return Err(describe(
            StatusCode::FORBIDDEN,
            "x-merchant-id does not match the credentials",
        ));
    }
    Ok(user.to_owned())
}

fn parse_body(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body)
        .map_err(|e| invalid(json!({ "body": [format!("Invalid JSON: {e}")] })))
}

/// What an API handler gets: the caller's account, the settings, the fake clock, the order
/// counter.
struct Ctx<'a> {
    acc: &'a mut Account,
    settings: &'a FakeSettings,
    now: DateTime<Utc>,
    next_order: &'a mut u64,
}

impl CdonFake {
    /// A fake with the demo merchant and no data (see [`CdonFake::seed_demo`]).
    pub fn new() -> Arc<Self> {
        let mut state = FakeState::default();
        state.accounts.insert(
            DEMO_MERCHANT_ID.to_owned(),
            Account {
                token: DEMO_TOKEN.to_owned(),
                ..Account::default()
            },
        );
        Arc::new(Self {
            harness: Harness::new(basic_user, over_limit),
            state: Mutex::new(state),
        })
    }

    pub fn harness(&self) -> &Harness {
        &self.harness
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the authenticated caller's account.
    fn api(&self, headers: &HeaderMap, f: impl FnOnce(Ctx<'_>) -> Response) -> Response {
        let mut st = self.lock();
        let now = st.now();
        let user = match authenticate(&st, headers) {
            Ok(u) => u,
            Err(r) => return r,
        };
        let FakeState {
            accounts,
            settings,
            next_order,
            ..
        } = &mut *st;
        let Some(acc) = accounts.get_mut(&user) else {
            return describe(StatusCode::UNAUTHORIZED, "Unauthorized");
        };
        acc.expire_orders(now, settings.auto_cancel_days);
        f(Ctx {
            acc,
            settings,
            now,
            next_order,
        })
    }

    /// Runs `f` on a merchant's account (control API and test helpers).
    fn control<T>(
        &self,
        merchant: Option<&str>,
        f: impl FnOnce(&mut Account, DateTime<Utc>, &mut u64, &FakeSettings) -> T,
    ) -> Option<T> {
        let mut st = self.lock();
        let now = st.now();
        let FakeState {
            accounts,
            settings,
            next_order,
            ..
        } = &mut *st;
        let acc = accounts.get_mut(merchant.unwrap_or(DEMO_MERCHANT_ID))?;
        acc.expire_orders(now, settings.auto_cancel_days);
        Some(f(acc, now, next_order, settings))
    }

    /// The routes of the fake (under `/api`), wrapped with the shared harness.
    pub fn router(self: &Arc<Self>) -> Router {
        let api = Router::new()
            .route(
                "/v2/articles/bulk",
                post(create_articles).put(update_articles),
            )
            .route("/v1/statuses/batch", post(statuses_batch))
            .route("/v1/statuses/sku", post(statuses_sku))
            .route("/v1/orders/", get(list_orders).post(sandbox_order))
            .route("/v1/orders", get(list_orders).post(sandbox_order))
            .route("/v1/orders/{id}", get(get_order))
            .route("/v1/orders/{id}/accept", put(accept_order))
            .route("/v1/orders/{id}/fulfill", put(fulfill_order))
            .route("/v1/orders/{id}/cancel", put(cancel_order))
            .route("/v1/categories/{market}/{lang}/", get(categories))
            .route("/v1/categories/{market}/{lang}", get(categories))
            .fallback(|| async { describe(StatusCode::NOT_FOUND, "Not found") });
        let control = Router::new()
            .route("/_control/cdon/merchants", post(ctl_merchant))
            .route("/_control/cdon/listings", post(ctl_seed_listing))
            .route("/_control/cdon/listings/{sku}", get(ctl_listing))
            .route("/_control/cdon/orders", post(ctl_seed_order))
            .route("/_control/cdon/orders/{id}", get(ctl_order))
            .route("/_control/cdon/orders/{id}/cancel", post(ctl_cancel))
            .route("/_control/cdon/settle", post(ctl_settle))
            .route("/_control/cdon/clock", put(ctl_clock))
            .route(
                "/_control/cdon/settings",
                get(ctl_settings).put(ctl_set_settings),
            )
            .route("/_control/cdon/seed_demo", post(ctl_seed_demo));
        let app = Router::new()
            .nest("/api", api)
            .merge(control)
            .with_state(Arc::clone(self));
        wrap(app, &self.harness)
    }

    /// Adds a merchant account (or replaces its token).
    pub fn add_merchant(&self, merchant_id: &str, token: &str) {
        let mut st = self.lock();
        st.accounts.entry(merchant_id.to_owned()).or_default().token = token.to_owned();
    }

    pub fn settings(&self) -> FakeSettings {
        self.lock().settings.clone()
    }

    pub fn set_settings(&self, s: FakeSettings) {
        self.lock().settings = s;
    }

    /// Moves the fake's clock (deadlines, auto-cancel, timestamps) by `offset` from real time.
    pub fn set_clock_offset(&self, offset: chrono::Duration) {
        self.lock().clock_offset_secs = offset.num_seconds();
    }

    /// Settles every pending status row of every merchant (applies the changes).
    pub fn settle_all(&self) {
        for acc in self.lock().accounts.values_mut() {
            acc.settle();
        }
    }

    /// Puts a live listing on a merchant's account. Returns its article id.
    pub fn seed_listing_with(&self, s: &SeedListing) -> Result<String, String> {
        self.control(s.merchant_id.as_deref(), |acc, _, _, _| acc.seed_listing(s))
            .unwrap_or_else(|| Err("unknown merchant".into()))
    }

    /// Places an order (seeding the listing with 100 units when missing). Returns its id.
    pub fn seed_order_with(&self, s: &SeedOrder) -> Result<String, String> {
        self.control(s.merchant_id.as_deref(), |acc, now, next, _| {
            if !acc.articles.contains_key(&s.sku) {
                acc.seed_listing(&SeedListing {
                    sku: s.sku.clone(),
                    quantity: 100.max(s.quantity),
                    ..SeedListing::default()
                })?;
            }
            let deadline = match (&s.deadline, s.deadline_in_hours) {
                (Some(d), _) => parse_timestamp(d)
                    .ok_or_else(|| format!("deadline {d:?} is not YYYY-MM-DD HH:MM:SS"))?,
                (None, Some(h)) => now + chrono::Duration::hours(h),
                (None, None) => now + chrono::Duration::hours(120),
            };
            acc.place_order(
                next,
                now,
                &s.sku,
                s.quantity,
                s.market.as_deref(),
                deadline,
                s.b2b,
                s.customer_order_id.clone(),
            )
            .inspect(|id| {
                if let Some(o) = acc.order_mut(id) {
                    o.buyer = s.buyer.clone();
                }
            })
        })
        .unwrap_or_else(|| Err("unknown merchant".into()))
    }

    /// A merchant's order as the API shows it.
    pub fn order(&self, merchant: Option<&str>, id: &str) -> Option<wire::Order> {
        self.control(merchant, |acc, _, _, _| {
            acc.orders.iter().find(|o| o.id == id).map(wire_order)
        })
        .flatten()
    }

    /// A merchant's listing: `{sku, id, quantity, status, markets, prices, title, category}`.
    pub fn listing(&self, merchant: Option<&str>, sku: &str) -> Option<Value> {
        self.control(merchant, |acc, _, _, _| {
            acc.articles.get(sku).map(|a| {
                let prices: Map<String, Value> = a
                    .prices
                    .iter()
                    .map(|(m, p)| {
                        (
                            m.clone(),
                            json!({"amount_including_vat": p.amount.to_string(),
                                   "currency": p.currency, "vat_rate": p.vat_rate.map(|r| r.to_string())}),
                        )
                    })
                    .collect();
                json!({
                    "sku": a.sku, "id": a.id, "quantity": a.quantity, "status": a.fields.status,
                    "markets": a.fields.markets, "prices": prices,
                    "title": a.fields.title.first().map(|t| t.value.clone()),
                    "category": a.fields.category,
                })
            })
        })
        .flatten()
    }

    /// CDON (or the customer) cancels an order: it becomes `NOT_FULFILLED`.
    pub fn cancel_order_as_cdon(&self, merchant: Option<&str>, id: &str) -> bool {
        self.control(merchant, |acc, now, _, _| match acc.order_mut(id) {
            Some(o) => {
                o.state = OrderState::NotFulfilled;
                o.updated_at = now;
                true
            }
            None => false,
        })
        .unwrap_or(false)
    }

    /// A few listings and `CREATED` orders on the demo account, for the sandbox.
    pub fn seed_demo(&self) {
        let listings = [
            ("DEMO-MUG-1", "Stoneware mug, 350 ml", 40),
            ("DEMO-TEE-M", "Organic cotton t-shirt, M", 25),
            ("DEMO-LAMP-1", "Desk lamp with LED bulb", 8),
        ];
        for (sku, title, quantity) in listings {
            let _ = self.seed_listing_with(&SeedListing {
                sku: sku.into(),
                quantity,
                title: Some(title.into()),
                status_row: true,
                ..SeedListing::default()
            });
        }
        let orders = [
            ("DEMO-MUG-1", 2, "SE", false),
            ("DEMO-TEE-M", 1, "DK", false),
            ("DEMO-LAMP-1", 1, "NO", true),
            ("DEMO-MUG-1", 1, "FI", false),
        ];
        for (sku, quantity, market, b2b) in orders {
            let _ = self.seed_order_with(&SeedOrder {
                sku: sku.into(),
                quantity,
                market: Some(market.into()),
                b2b,
                ..SeedOrder::default()
            });
        }
    }

    // --- API handlers (sync; the async wrappers below only extract) ---

    fn create_articles(&self, headers: &HeaderMap, body: &Bytes) -> Response {
        self.api(headers, |cx| {
            let v = match parse_body(body) {
                Ok(v) => v,
                Err(r) => return r,
            };
            let Some(articles) = v.get("articles").and_then(Value::as_array) else {
                return invalid(json!({"articles": ["Required field missing"]}));
            };
            if articles.len() > cx.settings.max_articles_per_create {
                return invalid(json!({"articles": [format!(
                    "At most {} articles per request", cx.settings.max_articles_per_create
                )]}));
            }
            let batch_id = Uuid::new_v4().to_string();
            let (mut success, mut failed, mut rows) = (Vec::new(), Vec::new(), Vec::new());
            let mut seen = HashSet::new();
            for item in articles {
                let sku = item
                    .get("sku")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let mut fail = |errors: Vec<FieldError>| {
                    failed.push(FailedItem {
                        sku: sku.clone(),
                        action: None,
                        errors,
                    })
                };
                if !sku.is_empty() && !seen.insert(sku.clone()) {
                    fail(vec![FieldError {
                        message: "Duplicate SKU in request".into(),
                        field: vec!["sku".into()],
                    }]);
                    continue;
                }
                if cx.acc.articles.contains_key(&sku) {
                    fail(vec![FieldError {
                        message: "SKU already exists, can not create article!".into(),
                        field: vec!["sku".into()],
                    }]);
                    continue;
                }
                match validate_create(item, cx.settings.require_swedish) {
                    Err(errors) => fail(errors),
                    Ok(article) => {
                        success.push(CreatedItem {
                            id: Some(article.id.clone()),
                            sku: sku.clone(),
                        });
                        rows.push(Row {
                            correlation_id: Uuid::new_v4().to_string(),
                            sku: sku.clone(),
                            action: action::CREATE.into(),
                            article_id: Some(article.id.clone()),
                            change: Change::Create(article),
                            result: None,
                        });
                    }
                }
            }
            cx.acc.batches.push(Batch {
                id: batch_id.clone(),
                rows,
                polls: 0,
                settled: false,
            });
            reply(
                StatusCode::ACCEPTED,
                &wire::BulkCreateResponse {
                    batch_id: Some(batch_id),
                    success,
                    failed,
                },
                cx.settings.html_202,
            )
        })
    }

    fn update_articles(&self, headers: &HeaderMap, body: &Bytes) -> Response {
        self.api(headers, |cx| {
            let v = match parse_body(body) {
                Ok(v) => v,
                Err(r) => return r,
            };
            let Some(actions) = v.get("actions").and_then(Value::as_array) else {
                return invalid(json!({"actions": ["Required field missing"]}));
            };
            if actions.len() > cx.settings.max_actions_per_update {
                return invalid(json!({"actions": [format!(
                    "At most {} actions per request", cx.settings.max_actions_per_update
                )]}));
            }
            let batch_id = Uuid::new_v4().to_string();
            let (mut success, mut failed, mut rows) = (Vec::new(), Vec::new(), Vec::new());
            let mut seen = HashSet::new();
            for item in actions {
                let sku = item.get("sku").and_then(Value::as_str).unwrap_or_default();
                let act = item
                    .get("action")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let body = item.get("body").cloned().unwrap_or(Value::Null);
                let mut c = Check::default();
                if sku.is_empty() {
                    c.err("Required field missing", &["sku"]);
                } else if !cx.acc.articles.contains_key(sku) && !cx.acc.pending_create(sku) {
                    c.err("Article not found", &["sku"]);
                }
                if !seen.insert((sku.to_owned(), act.to_owned())) {
                    c.err(
                        "The same action may not appear twice for one article",
                        &["action"],
                    );
                }
                let change = match act {
                    action::UPDATE_ARTICLE => match body.as_object() {
                        None => {
                            c.err("Required field missing", &["body"]);
                            None
                        }
                        Some(obj) => {
                            for k in ["price", "quantity", "sku"] {
                                if obj.contains_key(k) {
                                    c.err("Not allowed for update_article", &[k]);
                                }
                            }
                            c.fields(obj, cx.settings.require_swedish)
                                .map(Change::Update)
                        }
                    },
                    action::UPDATE_PRICE => c.prices(body.get("price")).map(Change::Price),
                    action::UPDATE_QUANTITY => c
                        .quantity(body.get("quantity"), &["quantity"])
                        .map(Change::Quantity),
                    action::DELETE => Some(Change::Delete),
                    _ => {
                        c.err(
                            "Invalid action; use update_article, update_article_price, \
                             update_article_quantity or delete_article",
                            &["action"],
                        );
                        None
                    }
                };
                match change {
                    Some(change) if c.errors.is_empty() => {
                        success.push(UpdatedItem {
                            sku: sku.to_owned(),
                            action: act.to_owned(),
                        });
                        rows.push(Row {
                            correlation_id: Uuid::new_v4().to_string(),
                            sku: sku.to_owned(),
                            action: act.to_owned(),
                            article_id: cx.acc.articles.get(sku).map(|a| a.id.clone()),
                            change,
                            result: None,
                        });
                    }
                    _ => failed.push(FailedItem {
                        sku: sku.to_owned(),
                        action: Some(act.to_owned()),
                        errors: c.errors,
                    }),
                }
            }
            cx.acc.batches.push(Batch {
                id: batch_id.clone(),
                rows,
                polls: 0,
                settled: false,
            });
            reply(
                StatusCode::ACCEPTED,
                &wire::BulkUpdateResponse {
                    batch_id: Some(batch_id),
                    success,
                    failed,
                },
                cx.settings.html_202,
            )
        })
    }

    fn statuses_batch(&self, headers: &HeaderMap, body: &Bytes) -> Response {
        self.api(headers, |cx| {
            let v = match parse_body(body) {
                Ok(v) => v,
                Err(r) => return r,
            };
            let Some(ids) = v.get("batch_ids").and_then(Value::as_array) else {
                return invalid(json!({"batch_ids": ["Required field missing"]}));
            };
            let ids: Vec<&str> = ids.iter().filter_map(Value::as_str).collect();
            let after = cx.settings.settle_after_polls;
            let mut settle = false;
            for b in cx
                .acc
                .batches
                .iter_mut()
                .filter(|b| ids.contains(&b.id.as_str()))
            {
                b.polls += 1;
                settle |= after > 0 && b.polls >= after && !b.settled;
            }
            if settle {
                cx.acc.settle();
            }
            let batches: Vec<wire::StatusBatch> = cx
                .acc
                .batches
                .iter()
                .filter(|b| ids.contains(&b.id.as_str()))
                .map(|b| wire::StatusBatch {
                    id: b.id.clone(),
                    statuses: b.rows.iter().map(Account::status_row).collect(),
                })
                .collect();
            reply(
                StatusCode::OK,
                &wire::StatusBatchResponse { batches },
                false,
            )
        })
    }

    fn statuses_sku(&self, headers: &HeaderMap, body: &Bytes) -> Response {
        self.api(headers, |cx| {
            let v = match parse_body(body) {
                Ok(v) => v,
                Err(r) => return r,
            };
            let Some(skus) = v.get("skus").and_then(Value::as_array) else {
                return invalid(json!({"skus": ["Required field missing"]}));
            };
            let statuses: Vec<StatusRow> = skus
                .iter()
                .filter_map(Value::as_str)
                .filter_map(|sku| {
                    cx.acc
                        .batches
                        .iter()
                        .rev()
                        .flat_map(|b| b.rows.iter().rev())
                        .find(|r| r.sku == sku)
                        .map(Account::status_row)
                })
                .collect();
            reply(StatusCode::OK, &wire::SkuStatusResponse { statuses }, false)
        })
    }

    fn list_orders(&self, headers: &HeaderMap, q: &BTreeMap<String, String>) -> Response {
        self.api(headers, |cx| {
            let state = match q.get("state").map(|s| OrderState::parse(s)) {
                None => OrderState::Created,
                Some(OrderState::Other(_)) => {
                    return invalid(json!({"state": [
                        "Must be one of: CREATED, ACCEPTED, FULFILLED, NOT_FULFILLED."
                    ]}));
                }
                Some(s) => s,
            };
            let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
                None => 100,
                Some(Ok(l)) if (1..=1000).contains(&l) => l,
                Some(_) => return invalid(json!({"limit": ["Must be between 1 and 1000."]})),
            };
            let page = match q.get("page").map(|p| p.parse::<usize>()) {
                None => 1,
                Some(Ok(p)) if p >= 1 => p,
                Some(_) => return invalid(json!({"page": ["Must be at least 1."]})),
            };
            let orders: Vec<wire::Order> = cx
                .acc
                .orders
                .iter()
                .filter(|o| o.state == state)
                .skip((page - 1).saturating_mul(limit))
                .take(limit)
                .map(wire_order)
                .collect();
            reply(StatusCode::OK, &orders, false)
        })
    }

    fn get_order(&self, headers: &HeaderMap, id: &str) -> Response {
        self.api(headers, |cx| {
            match cx.acc.orders.iter().find(|o| o.id == id) {
                Some(o) => reply(StatusCode::OK, &wire_order(o), false),
                None => describe(StatusCode::NOT_FOUND, "Order not found"),
            }
        })
    }

    fn order_action(&self, headers: &HeaderMap, id: &str, act: &str, body: &Bytes) -> Response {
        self.api(headers, |cx| {
            let now = cx.now;
            let Some(o) = cx.acc.order_mut(id) else {
                return describe(StatusCode::NOT_FOUND, "Order not found");
            };
            let forbidden = |t: &str| describe(StatusCode::FORBIDDEN, t);
            let already = |s: &OrderState| {
                forbidden(&format!(
                    "Order row already has {} as state",
                    s.as_str().to_ascii_lowercase()
                ))
            };
            let done = |t: &str| reply(StatusCode::ACCEPTED, &json!({ "description": t }), true);
            match act {
                "accept" => match o.state {
                    OrderState::Created if now > o.deadline => {
                        forbidden("Order has passed fulfillment due date")
                    }
                    OrderState::Created => {
                        o.state = OrderState::Accepted;
                        o.updated_at = now;
                        done("Order row was accepted")
                    }
                    ref s => already(s),
                },
                "fulfill" => match o.state {
                    OrderState::Created | OrderState::Accepted if now > o.deadline => {
                        forbidden("Order has passed fulfillment due date")
                    }
                    OrderState::Created | OrderState::Accepted => {
                        let tracking = match parse_tracking(body) {
                            Ok(t) => t,
                            Err(r) => return r,
                        };
                        o.state = OrderState::Fulfilled;
                        o.tracking = tracking;
                        o.updated_at = now;
                        done("Order row was fulfilled")
                    }
                    ref s => already(s),
                },
                _ => match o.state {
                    OrderState::Created => {
                        o.state = OrderState::NotFulfilled;
                        o.updated_at = now;
                        done("Order row was cancelled")
                    }
                    ref s => already(s),
                },
            }
        })
    }

    fn sandbox_order(&self, headers: &HeaderMap, body: &Bytes) -> Response {
        self.api(headers, |cx| {
            let v = match parse_body(body) {
                Ok(v) => v,
                Err(r) => return r,
            };
            let article_id = v.get("article_id").and_then(Value::as_str).unwrap_or("");
            let quantity = v.get("quantity").and_then(Value::as_u64);
            let Some(quantity) = quantity.filter(|q| (1..=50).contains(q)) else {
                return invalid(json!({"quantity": ["Must be between 1 and 50."]}));
            };
            let Some(sku) = cx
                .acc
                .articles
                .values()
                .find(|a| a.id == article_id)
                .map(|a| a.sku.clone())
            else {
                return invalid(json!({"article_id": ["Article not found"]}));
            };
            let deadline = cx.now + chrono::Duration::hours(120);
            match cx.acc.place_order(
                cx.next_order,
                cx.now,
                &sku,
                quantity as u32,
                None,
                deadline,
                false,
                None,
            ) {
                Ok(id) => reply(
                    StatusCode::OK,
                    &json!({"id": id, "description": "Order was created."}),
                    false,
                ),
                Err(m) => invalid(json!({ "article_id": [m] })),
            }
        })
    }
}

fn parse_tracking(body: &Bytes) -> Result<Vec<TrackingInformation>, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let v = parse_body(body)?;
    let list = match v.get("tracking_information") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(invalid(
                json!({"tracking_information": ["Must be a list."]}),
            ));
        }
    };
    let mut errors = Map::new();
    let mut out = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let mut e = Map::new();
        let number = t
            .get("tracking_number")
            .and_then(Value::as_str)
            .unwrap_or("");
        if number.trim().is_empty() {
            e.insert("tracking_number".into(), json!(["Required field missing"]));
        }
        let carrier = match t.get("carrier_name") {
            None | Some(Value::Null) => None,
            Some(Value::String(c)) if APPROVED_CARRIERS.contains(&c.as_str()) => Some(c.clone()),
            Some(_) => {
                e.insert(
                    "carrier_name".into(),
                    json!(["Not a valid choice. Use a carrier name from CDON's approved list."]),
                );
                None
            }
        };
        if e.is_empty() {
            out.push(TrackingInformation {
                carrier_name: carrier,
                tracking_number: number.to_owned(),
            });
        } else {
            errors.insert(i.to_string(), Value::Object(e));
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(invalid(json!({ "tracking_information": errors })))
    }
}

impl MarketplaceFake for CdonFake {
    fn harness(&self) -> &Harness {
        &self.harness
    }

    fn seed_listing(&self, sku: &Sku, quantity: u32) {
        if let Err(e) = self.seed_listing_with(&SeedListing {
            sku: sku.to_string(),
            quantity,
            ..SeedListing::default()
        }) {
            panic!("seeding listing {sku}: {e}");
        }
    }

    fn seed_order(&self, sku: &Sku, quantity: u32) -> ChannelOrderId {
        let id = self
            .seed_order_with(&SeedOrder {
                sku: sku.to_string(),
                quantity,
                ..SeedOrder::default()
            })
            .unwrap_or_else(|e| panic!("seeding an order of {sku}: {e}"));
        ChannelOrderId::new(id).unwrap_or_else(|e| panic!("fake order id: {e}"))
    }

    fn listing_quantity(&self, sku: &Sku) -> Option<u32> {
        self.control(None, |acc, _, _, _| {
            acc.articles.get(sku.as_str()).map(|a| a.quantity)
        })
        .flatten()
    }

    fn listing_price(&self, sku: &Sku) -> Option<Decimal> {
        self.control(None, |acc, _, _, _| {
            let a = acc.articles.get(sku.as_str())?;
            let first = a.fields.markets.first()?;
            a.prices.get(first).map(|p| p.amount)
        })
        .flatten()
    }

    fn order_status(&self, id: &ChannelOrderId) -> Option<OrderStatus> {
        self.order(None, id.as_str())
            .map(|o| super::convert::order_status(&o.state))
    }

    fn order_tracking(&self, id: &ChannelOrderId) -> Vec<Tracking> {
        self.order(None, id.as_str())
            .map(|o| {
                o.tracking_information
                    .into_iter()
                    .map(|t| Tracking {
                        carrier: t.carrier_name.unwrap_or_default(),
                        number: t.tracking_number,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn invoice_count(&self, _id: &ChannelOrderId) -> usize {
        // CDON has no invoice upload; nothing can ever be attached.
        0
    }

    fn cancel_as_marketplace(&self, id: &ChannelOrderId) {
        self.cancel_order_as_cdon(None, id.as_str());
    }

    fn settle(&self) {
        self.settle_all();
    }

    fn expire_sessions(&self) {
        // Basic auth on every call: no sessions to expire.
    }
}

// ---------------------------------------------------------------------------------------------
// Async handlers

type Fake = State<Arc<CdonFake>>;

async fn create_articles(State(f): Fake, h: HeaderMap, body: Bytes) -> Response {
    f.create_articles(&h, &body)
}

async fn update_articles(State(f): Fake, h: HeaderMap, body: Bytes) -> Response {
    f.update_articles(&h, &body)
}

async fn statuses_batch(State(f): Fake, h: HeaderMap, body: Bytes) -> Response {
    f.statuses_batch(&h, &body)
}

async fn statuses_sku(State(f): Fake, h: HeaderMap, body: Bytes) -> Response {
    f.statuses_sku(&h, &body)
}

async fn list_orders(
    State(f): Fake,
    h: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    f.list_orders(&h, &q)
}

async fn get_order(State(f): Fake, h: HeaderMap, Path(id): Path<String>) -> Response {
    f.get_order(&h, &id)
}

async fn accept_order(State(f): Fake, h: HeaderMap, Path(id): Path<String>, b: Bytes) -> Response {
    f.order_action(&h, &id, "accept", &b)
}

async fn fulfill_order(State(f): Fake, h: HeaderMap, Path(id): Path<String>, b: Bytes) -> Response {
    f.order_action(&h, &id, "fulfill", &b)
}

async fn cancel_order(State(f): Fake, h: HeaderMap, Path(id): Path<String>, b: Bytes) -> Response {
    f.order_action(&h, &id, "cancel", &b)
}

async fn sandbox_order(State(f): Fake, h: HeaderMap, body: Bytes) -> Response {
    f.sandbox_order(&h, &body)
}

async fn categories(
    State(f): Fake,
    h: HeaderMap,
    Path((market, lang)): Path<(String, String)>,
) -> Response {
    f.api(&h, |_| {
        if !MARKET_CODES.contains(&market.as_str()) || !LANGUAGES.contains(&lang.as_str()) {
            return describe(StatusCode::NOT_FOUND, "Not found");
        }
        let list: Vec<Category> = CATEGORIES
            .iter()
            .map(|(id, name, path)| Category {
                id: *id,
                name: (*name).to_owned(),
                path: (*path).to_owned(),
                search_friendly_name: name.to_lowercase(),
            })
            .collect();
        reply(StatusCode::OK, &list, false)
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MerchantBody {
    merchant_id: String,
    token: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MerchantQuery {
    merchant_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    offset_secs: i64,
}

fn control_error(m: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": m }))).into_response()
}

async fn ctl_merchant(State(f): Fake, Json(b): Json<MerchantBody>) -> Response {
    if b.merchant_id.trim().is_empty() || b.merchant_id.contains(':') || b.token.is_empty() {
        return control_error("merchant_id (no colon) and token must not be blank".into());
    }
    f.add_merchant(&b.merchant_id, &b.token);
    StatusCode::NO_CONTENT.into_response()
}

async fn ctl_seed_listing(State(f): Fake, Json(s): Json<SeedListing>) -> Response {
    match f.seed_listing_with(&s) {
        Ok(id) => (StatusCode::CREATED, Json(json!({"sku": s.sku, "id": id}))).into_response(),
        Err(m) => control_error(m),
    }
}

async fn ctl_listing(
    State(f): Fake,
    Path(sku): Path<String>,
    Query(q): Query<MerchantQuery>,
) -> Response {
    match f.listing(q.merchant_id.as_deref(), &sku) {
        Some(v) => Json(v).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn ctl_seed_order(State(f): Fake, Json(s): Json<SeedOrder>) -> Response {
    match f.seed_order_with(&s) {
        Ok(id) => (StatusCode::CREATED, Json(json!({ "id": id }))).into_response(),
        Err(m) => control_error(m),
    }
}

async fn ctl_order(
    State(f): Fake,
    Path(id): Path<String>,
    Query(q): Query<MerchantQuery>,
) -> Response {
    match f.order(q.merchant_id.as_deref(), &id) {
        Some(o) => Json(o).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn ctl_cancel(
    State(f): Fake,
    Path(id): Path<String>,
    Query(q): Query<MerchantQuery>,
) -> StatusCode {
    if f.cancel_order_as_cdon(q.merchant_id.as_deref(), &id) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn ctl_settle(State(f): Fake) -> StatusCode {
    f.settle_all();
    StatusCode::NO_CONTENT
}

async fn ctl_clock(State(f): Fake, Json(b): Json<ClockBody>) -> StatusCode {
    f.set_clock_offset(chrono::Duration::seconds(b.offset_secs));
    StatusCode::NO_CONTENT
}

async fn ctl_settings(State(f): Fake) -> Json<FakeSettings> {
    Json(f.settings())
}

async fn ctl_set_settings(State(f): Fake, Json(s): Json<FakeSettings>) -> StatusCode {
    f.set_settings(s);
    StatusCode::NO_CONTENT
}

async fn ctl_seed_demo(State(f): Fake) -> StatusCode {
    f.seed_demo();
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    fn article() -> Value {
        json!({
            "sku": "A-1", "status": "for sale", "quantity": 3,
            "main_image": "https://img/1.jpg", "markets": ["SE", "FI"],
            "title": [{"language": "sv-SE", "value": "A fine mug"}],
            "description": [{"language": "sv-SE", "value": "A fine mug for coffee."}],
            "price": [
                {"market": "SE", "value": {"amount_including_vat": 199, "currency": "SEK", "vat_rate": 0.25}},
                {"market": "FI", "value": {"amount_including_vat": 19.9, "currency": "EUR", "vat_rate": 0.25}}
            ],
            "shipping_time": [{"market": "SE", "min": 1, "max": 3}, {"market": "FI", "min": 2, "max": 5}],
            "category": "1124"
        })
    }

    fn messages(v: Value) -> Vec<String> {
        validate_create(&v, true)
            .unwrap_err()
            .into_iter()
            .map(|e| format!("{} {}", e.field.join("."), e.message))
            .collect()
    }

    #[test]
    fn the_article_model_is_validated_field_by_field() {
        validate_create(&article(), true).unwrap();
        let mut v = article();
        v["title"][0]["value"] = json!("abc");
        v["description"][0]["value"] = json!("<b>A fine mug</b> for coffee");
        v["price"][0]["value"]["vat_rate"] = json!(25);
        v["price"][1]["value"]["currency"] = json!("SEK");
        v.as_object_mut().unwrap().remove("main_image");
        let m = messages(v);
        for want in [
            "title.value Must be between 5 and 150 characters",
            "description.value HTML is not allowed",
            "price.value.vat_rate Must be a decimal fraction",
            "price.value.currency Currency must be EUR on market FI",
            "main_image Required field missing",
        ] {
            assert!(m.iter().any(|s| s.starts_with(want)), "{want} not in {m:?}");
        }
        let mut v = article();
        v["title"][0]["language"] = json!("en-US");
        assert!(messages(v).iter().any(|s| s.contains("Swedish")));
        let mut v = article();
        v["markets"] = json!(["SE", "DK"]);
        let m = messages(v);
        assert!(
            m.iter().any(|s| s.contains("Missing price for market DK")),
            "{m:?}"
        );
    }

    #[test]
    fn settling_applies_changes_per_market() {
        let mut acc = Account::default();
        let mut a = validate_create(&article(), true).unwrap();
        // 25 % is not a Finnish rate: FI fails, SE goes live.
        a.prices.get_mut("SE").unwrap().amount = dec!(150);
        acc.batches.push(Batch {
            id: "b".into(),
            rows: vec![Row {
                correlation_id: "c".into(),
                sku: "A-1".into(),
                action: action::CREATE.into(),
                article_id: None,
                change: Change::Create(a),
                result: None,
            }],
            polls: 0,
            settled: false,
        });
        assert!(acc.pending_create("A-1"));
        assert_eq!(
            Account::status_row(&acc.batches[0].rows[0]).markets[0].status,
            "pending"
        );
        acc.settle();
        let row = Account::status_row(&acc.batches[0].rows[0]);
        assert_eq!(row.markets[0], status("SE", Ok(())));
        assert_eq!(row.markets[1], status("FI", Err("invalid_vat_rate")));
        assert_eq!(acc.articles["A-1"].fields.markets, vec!["SE"]);
        assert_eq!(acc.articles["A-1"].prices["SE"].amount, dec!(150));
    }

    #[test]
    fn orders_price_net_and_vat_of_all_units() {
        let mut acc = Account::default();
        acc.seed_listing(&SeedListing {
            sku: "M".into(),
            quantity: 5,
            markets: vec!["SE".into()],
            prices: BTreeMap::from([("SE".into(), dec!(29))]),
            ..SeedListing::default()
        })
        .unwrap();
        let mut next = 0;
        let now = Utc::now();
        let id = acc
            .place_order(&mut next, now, "M", 2, None, now, false, None)
            .unwrap();
        let o = wire_order(&acc.orders[0]);
        assert_eq!(o.id, id);
        assert_eq!(o.price.amount, dec!(46.40));
        assert_eq!(o.price.vat_amount, dec!(11.60));
        assert_eq!(acc.articles["M"].quantity, 3);
        let b2b = acc
            .place_order(&mut next, now, "M", 1, None, now, true, None)
            .unwrap();
        let o = wire_order(acc.orders.iter().find(|o| o.id == b2b).unwrap());
        assert!(o.shipping_address.first_name.is_none() && o.shipping_address.full_name.is_some());
    }
}
