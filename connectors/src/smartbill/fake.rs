//! A stateful fake of the SmartBill Cloud API (same contract as the client), for tests, the
//! sandbox and the demo. Served under `/SBORO/api` (point `base_url` at
//! `<fake>/SBORO/api/`), wrapped by [`crate::fake::wrap`] (faults, limits,
//! `/_control/{stats,faults,limits}`).
//!
//! What it does, per the contract (§1):
//! - Accounts (login e-mail + token), each with one company (its CIF). Basic auth on every
//!   call; a wrong login **or a CIF that is not the account's** is 401 (JSON `errorText`, or
//!   the `HTTP Status 401 - Unauthorized` HTML page on the PDF endpoints).
//! - **SmartBill's own rate limit**: more than `calls_per_window` (30) calls of an account in a
//!   window of `window_ms` (10 s, opened by its first call) → 403 and the account blocked for
//!   `block_secs` (600 s); every answer carries `X-RateLimit-Limit/Remaining/Reset` (reset in
//!   unix seconds). [`SmartBillFake::blocks_entered`] counts blocks.
//! - `GET /tax`, `GET /series?type=f|p|c` (zero-padded `nextNumber` strings), `GET /stocks`
//!   (`date` required, `warehouseName` case-sensitive, products without a code have no
//!   `productCode`), `POST /estimate` and `POST /invoice` (validation: series, client name,
//!   Romanian county, Bucharest sector, lines, the tax name/percentage pair; a number consumed
//!   per document, none for drafts), `GET /estimate/invoices`, `GET /estimate/pdf` and
//!   `GET /invoice/pdf` (real PDFs from [`crate::erp::minimal_pdf`] showing the series,
//!   number, client, total and `mentions`), `PUT /estimate/cancel`,
//!   `GET /invoice/paymentstatus`, `POST /invoice/reverse` (one storno per invoice; a second is
//!   refused in Romanian).
//! - Error texts: the contract's Romanian `errorText`s verbatim where it lists them ("Seria nu
//!   a fost gasita! Folositi o serie creata in contul de cloud.", "Proforma nu a fost
//!   gasita!", "Factura nu a fost gasita"); the others are inferred and marked so in the docs.
//!   With [`FakeSettings::errors_with_200`] business refusals come as HTTP 200 + `errorText`.
//! - It counts invoices and stornos made **through the API** (the product must make none).
//!
//! Control API (no auth; `email` defaults to the demo account), under `/_control/smartbill`:
//! `POST /accounts {email, token, cif}`, `POST /items` ([`SeedItem`]),
//! `GET /documents/{order_id}` (proformas naming the order), `POST /invoice_estimate
//! {series, number}` (the merchant invoices a proforma), `POST /credit {series, number}` (the
//! merchant reverses an invoice), `GET /block` ([`BlockState`]), `PUT /clock {offset_secs}`
//! (e.g. +600 to end a block), `GET|PUT /settings` ([`FakeSettings`]), `POST /garbage_pdf`,
//! `GET /counters`, `POST /seed_demo`.

// Handlers return axum responses as their errors: the error is the answer.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine as _;
use canonical::{ChannelOrderId, SalesDocument, Sku, round2};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::convert::{self, mentions_order};
use super::errors::fold;
use super::wire::{self, DocRef, Tax};
use crate::conformance::ErpFake;
use crate::erp::minimal_pdf;
use crate::fake::{Harness, LimitKind, basic_user, wrap};

/// The sandbox's demo login.
pub const DEMO_EMAIL: &str = "demo@megzo.example";
/// The demo login's API token (a fake's credential, not a real one).
pub const DEMO_TOKEN: &str = "demo-smartbill-token";
/// The demo company's CIF (a valid check digit).
pub const DEMO_CIF: &str = "RO12345674";

/// S1's text for the 403 block.
pub const BLOCKED_TEXT: &str =
    "Utilizatorul a fost blocat pentru ca s-a depasit limita maxima de apeluri permise.";
pub const SERIES_NOT_FOUND: &str =
    "Seria nu a fost gasita! Folositi o serie creata in contul de cloud.";
pub const ESTIMATE_NOT_FOUND: &str = "Proforma nu a fost gasita!";
pub const INVOICE_NOT_FOUND: &str = "Factura nu a fost gasita";

const UNAUTHORIZED_HTML: &str = "<html><head><title>Apache Tomcat - Error report</title></head>\
    <body><h1>HTTP Status 401 - Unauthorized</h1></body></html>";

/// The fake's behaviour switches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FakeSettings {
    /// Calls per window before the block (SmartBill: 30).
    pub calls_per_window: u32,
    /// Window length in ms (SmartBill: 10 000), opened by an account's first call.
    pub window_ms: u64,
    /// Block length in seconds (SmartBill: 600).
    pub block_secs: u64,
    /// Business refusals and "not found" answers come as HTTP 200 + `errorText` (3P S4 saw
    /// this) instead of 400.
    pub errors_with_200: bool,
}

impl Default for FakeSettings {
    fn default() -> Self {
        Self {
            calls_per_window: 30,
            window_ms: 10_000,
            block_secs: 600,
            errors_with_200: false,
        }
    }
}

/// An article to put in a warehouse of the fake (with its stock and the merchant's price).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeedItem {
    pub email: Option<String>,
    /// `productCode`; empty: a product without a code.
    pub sku: String,
    pub name: String,
    pub gross: Decimal,
    pub quantity: Decimal,
    pub warehouse: String,
    pub unit: Option<String>,
}

/// An account's rate window and block, as `GET /_control/smartbill/block` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockState {
    pub calls_in_window: u32,
    pub blocked_until: Option<DateTime<Utc>>,
    pub blocks_entered: u64,
}

#[derive(Debug, Clone)]
struct FakeSeries {
    kind: char,
    next: u32,
    width: usize,
}

#[derive(Debug, Clone)]
struct StockItem {
    name: String,
    unit: String,
    quantity: Decimal,
}

#[derive(Debug, Clone)]
struct Estimate {
    client: String,
    total: Decimal,
    currency: String,
    mentions: String,
    observations: String,
    cancelled: bool,
    invoices: Vec<(String, u32)>,
}

#[derive(Debug, Clone)]
struct Invoice {
    client: String,
    total: Decimal,
    currency: String,
    mentions: String,
    reversed_by: Option<(String, u32)>,
    storno_of: Option<(String, u32)>,
    paid: Decimal,
}

#[derive(Debug, Clone)]
struct Account {
    token: String,
    cif: String,
    vat_payer: bool,
    taxes: Vec<Tax>,
    series: BTreeMap<String, FakeSeries>,
    stock: BTreeMap<String, BTreeMap<String, StockItem>>,
    prices: BTreeMap<String, Decimal>,
    estimates: BTreeMap<(String, u32), Estimate>,
    invoices: BTreeMap<(String, u32), Invoice>,
}

impl Account {
    fn new(token: &str, cif: &str) -> Self {
        let taxes = [
            ("Normala", 21),
            ("Redusa", 11),
            ("Scutita", 0),
            ("Normala", 19),
        ]
        .iter()
        .map(|(n, p)| Tax {
            name: (*n).to_owned(),
            percentage: Decimal::from(*p),
        })
        .collect();
        let mut series = BTreeMap::new();
        for (name, kind) in [("PRO", 'p'), ("FCT", 'f'), ("CH", 'c')] {
            series.insert(
                name.to_owned(),
                FakeSeries {
                    kind,
                    next: 1,
                    width: 4,
                },
            );
        }
        Self {
            token: token.to_owned(),
            cif: norm_cif(cif),
            vat_payer: true,
            taxes,
            series,
            stock: BTreeMap::new(),
            prices: BTreeMap::new(),
            estimates: BTreeMap::new(),
            invoices: BTreeMap::new(),
        }
    }

    fn number(&self, series: &str, n: u32) -> String {
        let w = self.series.get(series).map_or(4, |s| s.width);
        convert::format_number(n, w)
    }

    fn take_number(&mut self, series: &str) -> Option<u32> {
        let s = self.series.get_mut(series)?;
        let n = s.next;
        s.next += 1;
        Some(n)
    }

    /// The merchant issues the invoice of a proforma (in the first invoice series).
    fn invoice_estimate(&mut self, series: &str, n: u32) -> Result<(String, u32), String> {
        let inv_series = self
            .series
            .iter()
            .find(|(_, s)| s.kind == 'f')
            .map(|(k, _)| k.clone())
            .ok_or("no invoice series")?;
        let est = self
            .estimates
            .get(&(series.to_owned(), n))
            .ok_or(ESTIMATE_NOT_FOUND)?
            .clone();
        if est.cancelled {
            return Err("Proforma este anulata!".into());
        }
        let num = self.take_number(&inv_series).ok_or(SERIES_NOT_FOUND)?;
        self.invoices.insert(
            (inv_series.clone(), num),
            Invoice {
                client: est.client.clone(),
                total: est.total,
                currency: est.currency.clone(),
                mentions: est.mentions.clone(),
                reversed_by: None,
                storno_of: None,
                paid: Decimal::ZERO,
            },
        );
        if let Some(e) = self.estimates.get_mut(&(series.to_owned(), n)) {
            e.invoices.push((inv_series.clone(), num));
        }
        Ok((inv_series, num))
    }

    /// A storno of an invoice; refused when it has one already.
    fn reverse(&mut self, series: &str, n: u32) -> Result<(String, u32), String> {
        let inv = self
            .invoices
            .get(&(series.to_owned(), n))
            .ok_or(INVOICE_NOT_FOUND)?
            .clone();
        let shown = self.number(series, n);
        if inv.reversed_by.is_some() {
            return Err(format!(
                "Factura {series} {shown} a fost deja stornata! Nu se poate emite o noua storno."
            ));
        }
        if inv.storno_of.is_some() {
            return Err(format!(
                "Factura {series} {shown} este o factura storno si nu poate fi stornata."
            ));
        }
        let num = self.take_number(series).ok_or(SERIES_NOT_FOUND)?;
        self.invoices.insert(
            (series.to_owned(), num),
            Invoice {
                client: inv.client.clone(),
                total: -inv.total,
                currency: inv.currency.clone(),
                mentions: format!("Storno la factura {series} {shown}"),
                reversed_by: None,
                storno_of: Some((series.to_owned(), n)),
                paid: Decimal::ZERO,
            },
        );
        if let Some(i) = self.invoices.get_mut(&(series.to_owned(), n)) {
            i.reversed_by = Some((series.to_owned(), num));
        }
        Ok((series.to_owned(), num))
    }
}

#[derive(Debug, Default)]
struct Rate {
    window_start: Option<DateTime<Utc>>,
    count: u32,
    blocked_until: Option<DateTime<Utc>>,
    blocks: u64,
}

#[derive(Debug, Default)]
struct FakeState {
    accounts: BTreeMap<String, Account>,
    rates: HashMap<String, Rate>,
    settings: FakeSettings,
    clock_offset_secs: i64,
    blocks_entered: u64,
    api_invoices: u64,
    api_reversals: u64,
    garbage_pdf: u32,
}

impl FakeState {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::seconds(self.clock_offset_secs)
    }
}

/// The SmartBill fake. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct SmartBillFake {
    harness: Harness,
    state: Mutex<FakeState>,
}

fn norm_cif(c: &str) -> String {
    let t = c.trim().to_ascii_uppercase();
    t.strip_prefix("RO").unwrap_or(&t).trim().to_owned()
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn sb_error(status: StatusCode, text: &str) -> Response {
    reply(
        status,
        json!({"errorText": text, "message": "", "number": ""}),
    )
}

fn over_limit(_kind: LimitKind, _wait: Duration) -> Response {
    sb_error(StatusCode::FORBIDDEN, BLOCKED_TEXT)
}

fn unauthorized(html: bool) -> Response {
    if html {
        let mut r = (StatusCode::UNAUTHORIZED, UNAUTHORIZED_HTML).into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        r
    } else {
        sb_error(
            StatusCode::UNAUTHORIZED,
            "Autentificare esuata: utilizatorul, tokenul sau CIF-ul companiei nu sunt corecte.",
        )
    }
}

fn pdf_response(bytes: Vec<u8>, filename: &str) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}.pdf\""),
        )
        .body(Body::from(bytes))
        .unwrap_or_default()
}

fn param<'a>(q: &'a BTreeMap<String, String>, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|n| q.get(*n))
        .map(String::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn dec(v: Option<&Value>) -> Option<Decimal> {
    match v? {
        Value::Number(n) => n.to_string().parse().ok(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).map_or("", str::trim)
}

fn flag(v: &Value, k: &str) -> bool {
    match v.get(k) {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => matches!(s.as_str(), "true" | "1"),
        _ => false,
    }
}

/// What an API handler gets.
struct Ctx<'a> {
    acc: &'a mut Account,
    settings: &'a FakeSettings,
    api_invoices: &'a mut u64,
    api_reversals: &'a mut u64,
    garbage_pdf: &'a mut u32,
}

impl Ctx<'_> {
    /// A business refusal: 400, or 200 with `errorText` under `errors_with_200`.
    fn refuse(&self, text: &str) -> Response {
        let status = if self.settings.errors_with_200 {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        sb_error(status, text)
    }
}

impl SmartBillFake {
    /// A fake with the demo account (company [`DEMO_CIF`], series PRO/FCT/CH, the 2025 VAT
    /// rates) and no articles (see [`SmartBillFake::seed_demo`]).
    pub fn new() -> Arc<Self> {
        let mut state = FakeState::default();
        state
            .accounts
            .insert(DEMO_EMAIL.to_owned(), Account::new(DEMO_TOKEN, DEMO_CIF));
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

    /// Runs `f` on the authenticated caller's account; `cif` must be the account's.
    fn api(
        &self,
        headers: &HeaderMap,
        cif: Option<&str>,
        html_401: bool,
        f: impl FnOnce(Ctx<'_>) -> Response,
    ) -> Response {
        let mut st = self.lock();
        let Some((user, token)) = credentials(headers) else {
            return unauthorized(html_401);
        };
        let FakeState {
            accounts,
            settings,
            api_invoices,
            api_reversals,
            garbage_pdf,
            ..
        } = &mut *st;
        let Some(acc) = accounts.get_mut(&user).filter(|a| a.token == token) else {
            return unauthorized(html_401);
        };
        let Some(cif) = cif.filter(|c| !c.trim().is_empty()) else {
            return sb_error(
                StatusCode::BAD_REQUEST,
                "CIF-ul companiei este obligatoriu (cif / companyVatCode).",
            );
        };
        if norm_cif(cif) != acc.cif {
            return unauthorized(html_401);
        }
        f(Ctx {
            acc,
            settings,
            api_invoices,
            api_reversals,
            garbage_pdf,
        })
    }

    /// The routes of the fake (under `/SBORO/api`), with SmartBill's rate limit, wrapped with
    /// the shared harness.
    pub fn router(self: &Arc<Self>) -> Router {
        let api = Router::new()
            .route("/tax", get(taxes))
            .route("/series", get(series))
            .route("/stocks", get(stocks))
            .route("/estimate", post(create_estimate))
            .route("/invoice", post(create_invoice))
            .route("/estimate/invoices", get(estimate_invoices))
            .route("/estimate/pdf", get(estimate_pdf))
            .route("/estimate/cancel", put(cancel_estimate))
            .route("/invoice/pdf", get(invoice_pdf))
            .route("/invoice/paymentstatus", get(payment_status))
            .route("/invoice/reverse", post(reverse_invoice))
            .fallback(|| async { sb_error(StatusCode::NOT_FOUND, "Metoda apelata nu exista.") })
            .layer(middleware::from_fn_with_state(Arc::clone(self), rate_layer));
        let control = Router::new()
            .route("/_control/smartbill/accounts", post(ctl_account))
            .route("/_control/smartbill/items", post(ctl_item))
            .route("/_control/smartbill/documents/{order}", get(ctl_documents))
            .route("/_control/smartbill/invoice_estimate", post(ctl_invoice))
            .route("/_control/smartbill/credit", post(ctl_credit))
            .route("/_control/smartbill/block", get(ctl_block))
            .route("/_control/smartbill/clock", put(ctl_clock))
            .route(
                "/_control/smartbill/settings",
                get(ctl_settings).put(ctl_set_settings),
            )
            .route("/_control/smartbill/garbage_pdf", post(ctl_garbage_pdf))
            .route("/_control/smartbill/counters", get(ctl_counters))
            .route("/_control/smartbill/seed_demo", post(ctl_seed_demo));
        let app = Router::new()
            .nest("/SBORO/api", api)
            .merge(control)
            .with_state(Arc::clone(self));
        wrap(app, &self.harness)
    }

    /// Adds an account with its company (or replaces its token and CIF, keeping its data).
    pub fn add_account(&self, email: &str, token: &str, cif: &str) {
        let mut st = self.lock();
        let acc = st
            .accounts
            .entry(email.to_owned())
            .or_insert_with(|| Account::new(token, cif));
        acc.token = token.to_owned();
        acc.cif = norm_cif(cif);
    }

    pub fn settings(&self) -> FakeSettings {
        self.lock().settings.clone()
    }

    pub fn set_settings(&self, s: FakeSettings) {
        self.lock().settings = s;
    }

    /// Moves the fake's clock (windows, blocks) by `offset` from real time.
    pub fn set_clock_offset(&self, offset: chrono::Duration) {
        self.lock().clock_offset_secs = offset.num_seconds();
    }

    /// How many times an account was blocked (more than the window's calls).
    pub fn blocks_entered(&self) -> u64 {
        self.lock().blocks_entered
    }

    /// An account's window and block.
    pub fn block_state(&self, email: Option<&str>) -> BlockState {
        let st = self.lock();
        let now = st.now();
        let r = st.rates.get(email.unwrap_or(DEMO_EMAIL));
        BlockState {
            calls_in_window: r.map_or(0, |r| r.count),
            blocked_until: r.and_then(|r| r.blocked_until).filter(|t| *t > now),
            blocks_entered: r.map_or(0, |r| r.blocks),
        }
    }

    /// Invoices issued through `POST /invoice` (the product must issue none).
    pub fn api_invoices_created(&self) -> u64 {
        self.lock().api_invoices
    }

    /// Stornos issued through `POST /invoice/reverse` (the product must issue none).
    pub fn api_reversals(&self) -> u64 {
        self.lock().api_reversals
    }

    /// The next `GET /invoice/pdf` answers 200 with a JSON `errorText` instead of a PDF.
    pub fn garbage_pdf(&self) {
        self.lock().garbage_pdf += 1;
    }

    /// Puts an article with stock in a warehouse (and records the merchant's price).
    pub fn seed_item_with(&self, s: &SeedItem) -> Result<(), String> {
        if s.warehouse.trim().is_empty() {
            return Err("warehouse is required".into());
        }
        let mut st = self.lock();
        let acc = st
            .accounts
            .get_mut(s.email.as_deref().unwrap_or(DEMO_EMAIL))
            .ok_or("no such account")?;
        let code = s.sku.trim().to_owned();
        let name = if s.name.trim().is_empty() {
            code.clone()
        } else {
            s.name.clone()
        };
        acc.stock.entry(s.warehouse.clone()).or_default().insert(
            if code.is_empty() {
                format!("~{name}")
            } else {
                code.clone()
            },
            StockItem {
                name,
                unit: s.unit.clone().unwrap_or_else(|| "buc".to_owned()),
                quantity: s.quantity,
            },
        );
        if !code.is_empty() {
            acc.prices.insert(code, s.gross);
        }
        Ok(())
    }

    /// Proformas (`series-number`) whose mentions or observations name the order.
    pub fn documents_of(&self, email: Option<&str>, order_id: &str) -> Vec<String> {
        let st = self.lock();
        let Some(acc) = st.accounts.get(email.unwrap_or(DEMO_EMAIL)) else {
            return Vec::new();
        };
        acc.estimates
            .iter()
            .filter(|(_, e)| {
                mentions_order(e.mentions.as_bytes(), order_id)
                    || mentions_order(e.observations.as_bytes(), order_id)
            })
            .map(|((s, n), _)| format!("{s}-{}", acc.number(s, *n)))
            .collect()
    }

    /// Whether a proforma is cancelled (`None`: no such proforma).
    pub fn estimate_cancelled(
        &self,
        email: Option<&str>,
        series: &str,
        number: u32,
    ) -> Option<bool> {
        let st = self.lock();
        let acc = st.accounts.get(email.unwrap_or(DEMO_EMAIL))?;
        acc.estimates
            .get(&(series.to_owned(), number))
            .map(|e| e.cancelled)
    }

    /// The merchant invoices a proforma in SmartBill's UI: `series-number` of the invoice.
    pub fn merchant_invoice(
        &self,
        email: Option<&str>,
        series: &str,
        number: u32,
    ) -> Result<String, String> {
        let mut st = self.lock();
        let acc = st
            .accounts
            .get_mut(email.unwrap_or(DEMO_EMAIL))
            .ok_or("no such account")?;
        let (s, n) = acc.invoice_estimate(series, number)?;
        Ok(format!("{s}-{}", acc.number(&s, n)))
    }

    /// The merchant reverses an invoice (storno) in SmartBill's UI.
    pub fn merchant_credit(
        &self,
        email: Option<&str>,
        series: &str,
        number: u32,
    ) -> Result<String, String> {
        let mut st = self.lock();
        let acc = st
            .accounts
            .get_mut(email.unwrap_or(DEMO_EMAIL))
            .ok_or("no such account")?;
        let (s, n) = acc.reverse(series, number)?;
        Ok(format!("{s}-{}", acc.number(&s, n)))
    }

    /// The invoices made from a proforma.
    fn invoices_of(&self, series: &str, number: u32) -> Vec<(String, u32)> {
        let st = self.lock();
        st.accounts
            .get(DEMO_EMAIL)
            .and_then(|a| a.estimates.get(&(series.to_owned(), number)))
            .map(|e| e.invoices.clone())
            .unwrap_or_default()
    }

    /// Demo data: articles in two warehouses (one without a product code).
    pub fn seed_demo(&self) {
        let items = [
            ("MGZ-MUG-01", "Cana ceramica 350 ml", 4990, 40, "Depozit"),
            ("MGZ-LAMP-02", "Lampa de birou LED", 18900, 12, "Depozit"),
            ("MGZ-VASE-03", "Vaza sticla", 7450, 5, "Magazin"),
            ("", "Punga cadou (fara cod)", 200, 300, "Magazin"),
        ];
        for (sku, name, cents, qty, wh) in items {
            let _ = self.seed_item_with(&SeedItem {
                email: None,
                sku: sku.to_owned(),
                name: name.to_owned(),
                gross: Decimal::new(cents, 2),
                quantity: Decimal::from(qty),
                warehouse: wh.to_owned(),
                unit: None,
            });
        }
    }

    // -----------------------------------------------------------------------------------------
    // API handlers

    fn taxes(&self, h: &HeaderMap, q: &BTreeMap<String, String>) -> Response {
        self.api(h, param(q, &["cif"]), false, |c| {
            reply(
                StatusCode::OK,
                json!({"errorText": "", "message": "", "taxes": c.acc.taxes}),
            )
        })
    }

    fn series(&self, h: &HeaderMap, q: &BTreeMap<String, String>) -> Response {
        self.api(h, param(q, &["cif"]), false, |c| {
            let kind = param(q, &["type"]).and_then(|t| t.chars().next());
            let list: Vec<Value> = c
                .acc
                .series
                .iter()
                .filter(|(_, s)| kind.is_none_or(|k| k == s.kind))
                .map(|(name, s)| {
                    json!({"name": name, "nextNumber": convert::format_number(s.next, s.width), "type": s.kind.to_string()})
                })
                .collect();
            reply(StatusCode::OK, json!({"errorText": "", "message": "", "list": list}))
        })
    }

    fn stocks(&self, h: &HeaderMap, q: &BTreeMap<String, String>) -> Response {
        self.api(h, param(q, &["cif"]), false, |c| {
            if param(q, &["date"]).is_none_or(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err()) {
                return c.refuse("Data este obligatorie si trebuie sa aiba formatul AAAA-LL-ZZ.");
            }
            let wh = param(q, &["warehouseName"]);
            let code = param(q, &["productCode"]);
            let pname = param(q, &["productName"]);
            let list: Vec<Value> = c
                .acc
                .stock
                .iter()
                .filter(|(w, _)| wh.is_none_or(|x| x == w.as_str()))
                .map(|(w, items)| {
                    let products: Vec<Value> = items
                        .iter()
                        .filter(|(k, i)| {
                            code.is_none_or(|x| x == k.as_str())
                                && pname.is_none_or(|x| x == i.name.as_str())
                        })
                        .map(|(k, i)| {
                            let mut p = json!({"productName": i.name, "measuringUnit": i.unit,
                                "quantity": i.quantity.to_string().parse::<f64>().unwrap_or(0.0)});
                            if !k.starts_with('~') {
                                p["productCode"] = json!(k);
                            }
                            p
                        })
                        .collect();
                    json!({"warehouse": {"warehouseName": w, "warehouseType": "en detail"}, "products": products})
                })
                .collect();
            reply(StatusCode::OK, json!({"errorText": "", "message": "", "list": list}))
        })
    }

    fn create(&self, h: &HeaderMap, body: &Bytes, kind: char) -> Response {
        let doc: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return sb_error(StatusCode::BAD_REQUEST, &format!("Continut invalid: {e}")),
        };
        let cif = text(&doc, "companyVatCode").to_owned();
        self.api(h, Some(&cif), false, |c| create_document(c, &doc, kind))
    }

    fn estimate_invoices(&self, h: &HeaderMap, q: &BTreeMap<String, String>) -> Response {
        self.api(h, param(q, &["cif"]), false, |c| {
            let Some(key) = doc_key(q) else {
                return c.refuse(ESTIMATE_NOT_FOUND);
            };
            let Some(e) = c.acc.estimates.get(&key) else {
                return c.refuse(ESTIMATE_NOT_FOUND);
            };
            let invoices: Vec<DocRef> = e
                .invoices
                .iter()
                .map(|(s, n)| DocRef {
                    series: s.clone(),
                    number: c.acc.number(s, *n),
                })
                .collect();
            reply(
                StatusCode::OK,
                json!({"errorText": "", "message": "", "areInvoicesCreated": !invoices.is_empty(), "invoices": invoices}),
            )
        })
    }

    fn estimate_pdf(&self, h: &HeaderMap, q: &BTreeMap<String, String>) -> Response {
        self.api(h, param(q, &["cif"]), true, |c| {
            let Some(e) = doc_key(q).and_then(|k| c.acc.estimates.get(&k).map(|e| (k, e))) else {
                return c.refuse(ESTIMATE_NOT_FOUND);
            };
            let ((s, n), e) = e;
            let number = c.acc.number(&s, n);
            let pdf = minimal_pdf(&format!(
                "PROFORMA {s} {number}{} | Client: {} | Total: {} {} | {}",
                if e.cancelled { " ANULATA" } else { "" },
                e.client,
                e.total,
                e.currency,
                e.mentions
            ));
            pdf_response(pdf, &format!("Proforma_{s}{number}"))
        })
    }

    fn cancel_estimate(&self, h: &HeaderMap, q: &BTreeMap<String, String>) -> Response {
        self.api(h, param(q, &["cif"]), false, |c| {
            let Some(key) = doc_key(q) else {
                return c.refuse(ESTIMATE_NOT_FOUND);
            };
            let refuse_invoiced = match c.acc.estimates.get(&key) {
                None => return c.refuse(ESTIMATE_NOT_FOUND),
                Some(e) => !e.invoices.is_empty(),
            };
            if refuse_invoiced {
                return c.refuse("Proforma a fost facturata si nu mai poate fi anulata!");
            }
            if let Some(e) = c.acc.estimates.get_mut(&key) {
                e.cancelled = true;
            }
            reply(
                StatusCode::OK,
                json!({"errorText": "", "message": "Proforma a fost anulata.", "number": ""}),
            )
        })
    }

    fn invoice_pdf(&self, h: &HeaderMap, q: &BTreeMap<String, String>) -> Response {
        self.api(h, param(q, &["cif"]), true, |c| {
            if *c.garbage_pdf > 0 {
                *c.garbage_pdf -= 1;
                return sb_error(
                    StatusCode::OK,
                    "Documentul nu a putut fi generat in format PDF. Incercati din nou.",
                );
            }
            let Some(((s, n), i)) = doc_key(q).and_then(|k| c.acc.invoices.get(&k).map(|i| (k, i)))
            else {
                return c.refuse(INVOICE_NOT_FOUND);
            };
            let number = c.acc.number(&s, n);
            let pdf = minimal_pdf(&format!(
                "FACTURA {s} {number} | Client: {} | Total: {} {} | {}",
                i.client, i.total, i.currency, i.mentions
            ));
            pdf_response(pdf, &format!("Factura_{s}{number}"))
        })
    }

    fn payment_status(&self, h: &HeaderMap, q: &BTreeMap<String, String>) -> Response {
        self.api(h, param(q, &["cif"]), false, |c| {
            let Some(((s, n), i)) = doc_key(q).and_then(|k| c.acc.invoices.get(&k).map(|i| (k, i)))
            else {
                return c.refuse(INVOICE_NOT_FOUND);
            };
            let unpaid = i.total - i.paid;
            reply(
                StatusCode::OK,
                json!(wire::PaymentStatus {
                    error_text: String::new(),
                    message: String::new(),
                    number: c.acc.number(&s, n),
                    invoice_total_amount: i.total,
                    paid_amount: i.paid,
                    unpaid_amount: unpaid,
                    paid: unpaid <= Decimal::ZERO,
                }),
            )
        })
    }

    fn reverse(&self, h: &HeaderMap, body: &Bytes) -> Response {
        let req: wire::ReverseRequest = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return sb_error(StatusCode::BAD_REQUEST, &format!("Continut invalid: {e}")),
        };
        let cif = req.company_vat_code.clone();
        self.api(h, Some(&cif), false, |c| {
            let Some(n) = convert::parse_number(&req.number).map(|(n, _)| n) else {
                return c.refuse(INVOICE_NOT_FOUND);
            };
            match c.acc.reverse(&req.series_name, n) {
                Ok((s, num)) => {
                    *c.api_reversals += 1;
                    reply(
                        StatusCode::OK,
                        json!({"errorText": "", "message": "", "series": s, "number": c.acc.number(&s, num),
                            "documentId": num, "documentUrl": "", "documentViewUrl": ""}),
                    )
                }
                Err(t) => c.refuse(&t),
            }
        })
    }
}

/// `POST /estimate` (`kind` p) and `POST /invoice` (`kind` f).
fn create_document(c: Ctx<'_>, doc: &Value, kind: char) -> Response {
    let series = text(doc, "seriesName").to_owned();
    if c.acc.series.get(&series).is_none_or(|s| s.kind != kind) {
        return c.refuse(SERIES_NOT_FOUND);
    }
    // An invoice from a proforma copies its client and total.
    if kind == 'f' && flag(doc, "useEstimateDetails") {
        let est = doc.get("estimate").cloned().unwrap_or(Value::Null);
        let key = (
            text(&est, "seriesName").to_owned(),
            convert::parse_number(text(&est, "number")).map_or(0, |(n, _)| n),
        );
        let Some(e) = c.acc.estimates.get(&key).cloned() else {
            return c.refuse(ESTIMATE_NOT_FOUND);
        };
        let Some(n) = c.acc.take_number(&series) else {
            return c.refuse(SERIES_NOT_FOUND);
        };
        c.acc.invoices.insert(
            (series.clone(), n),
            Invoice {
                client: e.client,
                total: e.total,
                currency: e.currency,
                mentions: e.mentions,
                reversed_by: None,
                storno_of: None,
                paid: Decimal::ZERO,
            },
        );
        if let Some(e) = c.acc.estimates.get_mut(&key) {
            e.invoices.push((series.clone(), n));
        }
        *c.api_invoices += 1;
        let number = c.acc.number(&series, n);
        return reply(
            StatusCode::OK,
            json!({"errorText": "", "message": "", "number": number, "series": series, "url": ""}),
        );
    }
    let client = doc.get("client").cloned().unwrap_or(Value::Null);
    let name = text(&client, "name");
    if name.is_empty() {
        return c.refuse("Numele clientului este obligatoriu!");
    }
    let country = fold(text(&client, "country"));
    if country.is_empty() || country == "romania" || country == "ro" {
        let county = text(&client, "county");
        match convert::county(county) {
            None => return c.refuse(&format!("Judetul clientului ({county}) nu este valid!")),
            Some("Bucuresti") => {
                let city = fold(text(&client, "city"));
                let ok = city
                    .strip_prefix("sector ")
                    .and_then(|d| d.trim().parse::<u8>().ok())
                    .is_some_and(|d| (1..=6).contains(&d));
                if !ok {
                    return c.refuse(
                        "Pentru clientii din Bucuresti completati sectorul (Sector 1-6) in campul localitate!",
                    );
                }
            }
            Some(_) => {}
        }
        if text(&client, "city").is_empty() || text(&client, "address").is_empty() {
            return c
                .refuse("Adresa si localitatea clientului sunt obligatorii (se accepta \"-\").");
        }
    }
    let Some(products) = doc
        .get("products")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
    else {
        return c.refuse("Documentul trebuie sa contina cel putin un produs!");
    };
    let mut total = Decimal::ZERO;
    for (i, p) in products.iter().enumerate() {
        let pos = i + 1;
        if text(p, "name").is_empty() {
            return c.refuse(&format!("Produsul {pos}: denumirea este obligatorie!"));
        }
        if text(p, "measuringUnitName").is_empty() {
            return c.refuse(&format!(
                "Produsul {pos}: unitatea de masura este obligatorie!"
            ));
        }
        if text(p, "currency").is_empty() {
            return c.refuse(&format!("Produsul {pos}: moneda este obligatorie!"));
        }
        let (Some(qty), Some(price)) = (dec(p.get("quantity")), dec(p.get("price"))) else {
            return c.refuse(&format!(
                "Produsul {pos}: cantitatea si pretul sunt obligatorii!"
            ));
        };
        let pct = dec(p.get("taxPercentage")).unwrap_or(Decimal::ZERO);
        if c.acc.vat_payer {
            let tax_name = text(p, "taxName");
            if !c
                .acc
                .taxes
                .iter()
                .any(|t| t.name == tax_name && t.percentage == pct)
            {
                return c.refuse(&format!(
                    "Cota TVA {tax_name} ({pct}%) nu este definita in contul de cloud."
                ));
            }
        }
        let line = qty * price;
        total += if flag(p, "isTaxIncluded") {
            round2(line)
        } else {
            round2(line * (Decimal::ONE + pct / Decimal::ONE_HUNDRED))
        };
    }
    if flag(doc, "isDraft") {
        // Drafts get no number and cannot be reached through the API.
        return reply(
            StatusCode::OK,
            json!({"errorText": "", "message": "", "number": "", "series": series, "url": ""}),
        );
    }
    let Some(n) = c.acc.take_number(&series) else {
        return c.refuse(SERIES_NOT_FOUND);
    };
    let currency = match text(doc, "currency") {
        "" => "RON".to_owned(),
        cur => cur.to_owned(),
    };
    let mentions = text(doc, "mentions").to_owned();
    if kind == 'p' {
        c.acc.estimates.insert(
            (series.clone(), n),
            Estimate {
                client: name.to_owned(),
                total,
                currency,
                mentions,
                observations: text(doc, "observations").to_owned(),
                cancelled: false,
                invoices: Vec::new(),
            },
        );
    } else {
        c.acc.invoices.insert(
            (series.clone(), n),
            Invoice {
                client: name.to_owned(),
                total,
                currency,
                mentions,
                reversed_by: None,
                storno_of: None,
                paid: Decimal::ZERO,
            },
        );
        *c.api_invoices += 1;
    }
    let number = c.acc.number(&series, n);
    reply(
        StatusCode::OK,
        json!({"errorText": "", "message": "", "number": number, "series": series, "url": ""}),
    )
}

/// `seriesname` (or `seriesName`) and `number` of the query.
fn doc_key(q: &BTreeMap<String, String>) -> Option<(String, u32)> {
    let s = param(q, &["seriesname", "seriesName"])?;
    let (n, _) = convert::parse_number(param(q, &["number"])?)?;
    Some((s.to_owned(), n))
}

/// The Basic credentials of a request.
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let raw = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (u, t) = text.split_once(':')?;
    Some((u.to_owned(), t.to_owned()))
}

/// SmartBill's rate limit: a window opened by an account's first call; the call over the limit
/// blocks the account. Headers on every answer.
async fn rate_layer(State(f): Fake, req: Request, next: Next) -> Response {
    let Some(user) = basic_user(&req) else {
        return next.run(req).await;
    };
    let (limit, remaining, reset, blocked) = {
        let mut st = f.lock();
        let now = st.now();
        let s = st.settings.clone();
        let window = chrono::Duration::milliseconds(i64::try_from(s.window_ms).unwrap_or(i64::MAX));
        let mut entered = false;
        let r = st.rates.entry(user).or_default();
        let blocked = if let Some(until) = r.blocked_until.filter(|t| *t > now) {
            Some(until)
        } else {
            if r.window_start.is_none_or(|w| now >= w + window) {
                r.window_start = Some(now);
                r.count = 0;
            }
            r.count += 1;
            if r.count > s.calls_per_window {
                let until =
                    now + chrono::Duration::seconds(i64::try_from(s.block_secs).unwrap_or(600));
                r.blocked_until = Some(until);
                r.blocks += 1;
                entered = true;
                Some(until)
            } else {
                None
            }
        };
        let end = r.window_start.map_or(now, |w| w + window);
        let reset = match blocked {
            Some(until) => until.timestamp(),
            None => (end.timestamp_millis() + 999).div_euclid(1000),
        };
        let remaining = s.calls_per_window.saturating_sub(r.count);
        if entered {
            st.blocks_entered += 1;
        }
        (s.calls_per_window, remaining, reset, blocked.is_some())
    };
    let mut resp = if blocked {
        sb_error(StatusCode::FORBIDDEN, BLOCKED_TEXT)
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(limit));
    h.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(if blocked { 0 } else { remaining }),
    );
    h.insert("x-ratelimit-reset", HeaderValue::from(reset));
    resp
}

fn parse_doc(doc: &SalesDocument) -> (String, u32) {
    let (s, n) = match (&doc.series, &doc.number) {
        (Some(s), Some(n)) => (s.clone(), n.clone()),
        _ => doc
            .erp_id
            .rsplit_once('-')
            .map(|(s, n)| (s.to_owned(), n.to_owned()))
            .unwrap_or_else(|| panic!("document {} has no series-number", doc.erp_id)),
    };
    let n = convert::parse_number(&n)
        .unwrap_or_else(|| panic!("document number {n:?} is not a number"))
        .0;
    (s, n)
}

impl ErpFake for SmartBillFake {
    fn seed_item(&self, sku: &Sku, name: &str, gross: Decimal, stock: u32, warehouse: &str) {
        self.seed_item_with(&SeedItem {
            email: None,
            sku: sku.to_string(),
            name: name.to_owned(),
            gross,
            quantity: Decimal::from(stock),
            warehouse: warehouse.to_owned(),
            unit: None,
        })
        .unwrap_or_else(|e| panic!("seeding {sku}: {e}"));
    }

    fn documents_for(&self, order: &ChannelOrderId) -> usize {
        self.documents_of(None, order.as_str()).len()
    }

    fn merchant_invoices(&self, document: &SalesDocument) {
        let (s, n) = parse_doc(document);
        self.merchant_invoice(None, &s, n)
            .unwrap_or_else(|e| panic!("invoicing {}: {e}", document.erp_id));
    }

    fn merchant_credits(&self, document: &SalesDocument) {
        let (s, n) = parse_doc(document);
        let invoices = self.invoices_of(&s, n);
        let (is, inum) = invoices
            .first()
            .unwrap_or_else(|| panic!("{} has no invoice to credit", document.erp_id));
        self.merchant_credit(None, is, *inum)
            .unwrap_or_else(|e| panic!("crediting the invoice of {}: {e}", document.erp_id));
    }

    fn commit_then_timeout_next(&self) {
        self.harness.update_faults(|f| {
            f.next_commit_then_timeout += 1;
            f.hang_ms = Some(3_000);
        });
    }

    fn garbage_pdf_next(&self) {
        self.garbage_pdf();
    }

    /// SmartBill never throttles with a short hint: over its limit it blocks the account for
    /// 10 minutes (403), which the SmartBill tests cover instead.
    fn throttle_next(&self) -> bool {
        false
    }

    fn server_error_next(&self) -> bool {
        self.harness.update_faults(|f| {
            f.next_5xx += 1;
            f.status_5xx = Some(500);
        });
        true
    }
}

// ---------------------------------------------------------------------------------------------
// Async handlers

type Fake = State<Arc<SmartBillFake>>;
type Q = Query<BTreeMap<String, String>>;

async fn taxes(State(f): Fake, h: HeaderMap, Query(q): Q) -> Response {
    f.taxes(&h, &q)
}

async fn series(State(f): Fake, h: HeaderMap, Query(q): Q) -> Response {
    f.series(&h, &q)
}

async fn stocks(State(f): Fake, h: HeaderMap, Query(q): Q) -> Response {
    f.stocks(&h, &q)
}

async fn create_estimate(State(f): Fake, h: HeaderMap, body: Bytes) -> Response {
    f.create(&h, &body, 'p')
}

async fn create_invoice(State(f): Fake, h: HeaderMap, body: Bytes) -> Response {
    f.create(&h, &body, 'f')
}

async fn estimate_invoices(State(f): Fake, h: HeaderMap, Query(q): Q) -> Response {
    f.estimate_invoices(&h, &q)
}

async fn estimate_pdf(State(f): Fake, h: HeaderMap, Query(q): Q) -> Response {
    f.estimate_pdf(&h, &q)
}

async fn cancel_estimate(State(f): Fake, h: HeaderMap, Query(q): Q) -> Response {
    f.cancel_estimate(&h, &q)
}

async fn invoice_pdf(State(f): Fake, h: HeaderMap, Query(q): Q) -> Response {
    f.invoice_pdf(&h, &q)
}

async fn payment_status(State(f): Fake, h: HeaderMap, Query(q): Q) -> Response {
    f.payment_status(&h, &q)
}

async fn reverse_invoice(State(f): Fake, h: HeaderMap, body: Bytes) -> Response {
    f.reverse(&h, &body)
}

#[derive(Debug, Deserialize)]
struct AccountBody {
    email: String,
    token: String,
    cif: String,
}

#[derive(Debug, Deserialize)]
struct DocBody {
    email: Option<String>,
    series: String,
    number: String,
}

#[derive(Debug, Deserialize)]
struct ClockBody {
    offset_secs: i64,
}

fn control_error(m: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": m}))).into_response()
}

async fn ctl_account(State(f): Fake, Json(b): Json<AccountBody>) -> Response {
    f.add_account(&b.email, &b.token, &b.cif);
    StatusCode::NO_CONTENT.into_response()
}

async fn ctl_item(State(f): Fake, Json(s): Json<SeedItem>) -> Response {
    match f.seed_item_with(&s) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => control_error(e),
    }
}

async fn ctl_documents(State(f): Fake, Path(order): Path<String>) -> Json<Value> {
    Json(json!({"documents": f.documents_of(None, &order)}))
}

fn doc_body(b: &DocBody) -> Result<u32, Response> {
    convert::parse_number(&b.number)
        .map(|(n, _)| n)
        .ok_or_else(|| control_error(format!("number {:?} is not a number", b.number)))
}

async fn ctl_invoice(State(f): Fake, Json(b): Json<DocBody>) -> Response {
    let n = match doc_body(&b) {
        Ok(n) => n,
        Err(r) => return r,
    };
    match f.merchant_invoice(b.email.as_deref(), &b.series, n) {
        Ok(inv) => Json(json!({"invoice": inv})).into_response(),
        Err(e) => control_error(e),
    }
}

async fn ctl_credit(State(f): Fake, Json(b): Json<DocBody>) -> Response {
    let n = match doc_body(&b) {
        Ok(n) => n,
        Err(r) => return r,
    };
    match f.merchant_credit(b.email.as_deref(), &b.series, n) {
        Ok(storno) => Json(json!({"storno": storno})).into_response(),
        Err(e) => control_error(e),
    }
}

async fn ctl_block(State(f): Fake, Query(q): Q) -> Json<BlockState> {
    Json(f.block_state(q.get("email").map(String::as_str)))
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

async fn ctl_garbage_pdf(State(f): Fake) -> StatusCode {
    f.garbage_pdf();
    StatusCode::NO_CONTENT
}

async fn ctl_counters(State(f): Fake) -> Json<Value> {
    Json(json!({
        "api_invoices": f.api_invoices_created(),
        "api_reversals": f.api_reversals(),
        "blocks_entered": f.blocks_entered(),
    }))
}

async fn ctl_seed_demo(State(f): Fake) -> StatusCode {
    f.seed_demo();
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merchants_invoice_proformas_and_reverse_each_invoice_once() {
        let f = SmartBillFake::new();
        {
            let mut st = f.lock();
            let acc = st.accounts.get_mut(DEMO_EMAIL).unwrap();
            let n = acc.take_number("PRO").unwrap();
            acc.estimates.insert(
                ("PRO".into(), n),
                Estimate {
                    client: "Ana".into(),
                    total: Decimal::new(11900, 2),
                    currency: "RON".into(),
                    mentions: "Comanda marketplace O-1".into(),
                    observations: String::new(),
                    cancelled: false,
                    invoices: Vec::new(),
                },
            );
        }
        assert_eq!(f.documents_of(None, "O-1"), vec!["PRO-0001".to_owned()]);
        assert!(f.documents_of(None, "O-10").is_empty());
        let inv = f.merchant_invoice(None, "PRO", 1).unwrap();
        assert_eq!(inv, "FCT-0001");
        let storno = f.merchant_credit(None, "FCT", 1).unwrap();
        assert_eq!(storno, "FCT-0002");
        let again = f.merchant_credit(None, "FCT", 1).unwrap_err();
        assert!(again.contains("a fost deja stornata"), "{again}");
        assert!(
            f.merchant_credit(None, "FCT", 2)
                .unwrap_err()
                .contains("storno")
        );
        assert_eq!(
            f.merchant_credit(None, "FCT", 9).unwrap_err(),
            INVOICE_NOT_FOUND
        );
        assert_eq!(
            f.api_reversals(),
            0,
            "the merchant's stornos are not the API's"
        );
        assert_eq!(
            f.merchant_invoice(None, "PRO", 7).unwrap_err(),
            ESTIMATE_NOT_FOUND
        );
    }

    #[test]
    fn seeded_items_keep_codes_and_products_without_one() {
        let f = SmartBillFake::new();
        f.seed_demo();
        let st = f.lock();
        let acc = &st.accounts[DEMO_EMAIL];
        assert_eq!(
            acc.stock["Depozit"]["MGZ-MUG-01"].quantity,
            Decimal::from(40)
        );
        assert!(acc.stock["Magazin"].keys().any(|k| k.starts_with('~')));
        assert_eq!(acc.prices["MGZ-LAMP-02"], Decimal::new(18900, 2));
        assert!(f.seed_item_with(&SeedItem::default()).is_err());
    }
}
