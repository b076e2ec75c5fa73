//! A stateful fake of Cel.ro's `market_api`, faithful to the contract where it is known and
//! explicit about what it invents where it is not (the status table, the shapes of importer,
//! updateStockAndPrice, importAWB and getOrderAwbs answers, the over-cap answer).
//!
//! - One POST route per `method/action` the client uses, with and without the trailing slash;
//!   form bodies with PHP bracket nesting and JSON-in-field (both accepted for
//!   `updateStockAndPrice`); multipart for `orders/addOrderInvoice`.
//! - Several merchant accounts, each with its own listings, orders and return requests.
//! - Login hands out random tokens several hundred characters long that expire after
//!   [`CelroFake::set_token_ttl`] or on `/_control/celro/expire-tokens`; an expired token is
//!   answered `{"error":403,"tokenStatus":0}` at HTTP 200 or with HTTP 400
//!   ([`ExpiredAnswer`]).
//! - Business errors are `error: 1` at HTTP 200 with Romanian text.
//! - The 10-connection cap is on by default (harness `Limits { concurrency: Some(10) }`); over
//!   it the fake answers **HTTP 503** with `Retry-After: 1` and an envelope (the real behaviour
//!   is unknown). A rate limit, when set, is answered 429 with `Retry-After`.
//! - Control routes (bypassing faults and limits), all JSON, `account` defaults to the demo one:
//!   `POST /_control/celro/accounts {username,password,pickup_address_id?}`,
//!   `POST /_control/celro/listings {account?,model,stock,price?}`,
//!   `GET /_control/celro/listings/{model}`, `POST /_control/celro/orders {account?,model,quantity}`,
//!   `GET /_control/celro/orders/{id}`, `GET /_control/celro/orders/{id}/invoices` (bytes in base64),
//!   `POST /_control/celro/orders/{id}/cancel`, `POST /_control/celro/orders/{id}/storno`,
//!   `POST /_control/celro/returns {account?,order_id,model,quantity,reason}`,
//!   `POST /_control/celro/settle`, `POST /_control/celro/expire-tokens {answer?}`,
//!   `POST /_control/celro/token-ttl {secs}`, `GET /_control/celro/logins`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use canonical::{ChannelOrderId, OrderStatus, Sku, Tracking, round2};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::conformance::MarketplaceFake;
use crate::fake::{Buyer, Harness, LimitKind, Limits, wrap};

use super::config::ServerTime;
use super::wire::{self, dec, form_decode, int, items, json_in_field, php_nest, to_server_time};

/// The demo merchant of the sandbox and the tests.
pub const DEMO_USERNAME: &str = "demo@megzo.example";
pub const DEMO_PASSWORD: &str = "demo-celro-password";
/// The demo merchant's pickup address (`idAdresaRidicare`).
pub const DEMO_PICKUP_ADDRESS_ID: u64 = 1001;
/// A second merchant, to show accounts are separate.
pub const OTHER_USERNAME: &str = "shop-b@megzo.example";
pub const OTHER_PASSWORD: &str = "shop-b-celro-password";

/// The fake's order status table, served by `orders/getOrderStatusList`. Invented: Cel.ro's
/// real table is not published \[U\]. The names follow Romanian usage so the client's default
/// name rules map them.
pub const STATUSES: &[(i64, &str, OrderStatus)] = &[
    (1, "Comandă nouă", OrderStatus::New),
    (2, "Confirmată", OrderStatus::Accepted),
    (3, "În procesare", OrderStatus::Accepted),
    (4, "AWB emis", OrderStatus::Shipped),
    (5, "Gata de livrare", OrderStatus::Shipped),
    (6, "Finalizată", OrderStatus::Completed),
    (7, "Anulată", OrderStatus::Cancelled),
    (8, "Stornată", OrderStatus::Returned),
];
const NEW: i64 = 1;
const CONFIRMED: i64 = 2;
const PROCESSING: i64 = 3;
const AWB: i64 = 4;
const READY: i64 = 5;
const FINISHED: i64 = 6;
const CANCELLED: i64 = 7;
const STORNO: i64 = 8;

/// `listCancellingStatuses` ids the fake accepts as `motiv`.
pub const CANCEL_REASONS: &[i64] = &[61, 62, 63, 64, 65];
/// Prices above this are rejected at moderation, as on Cel.ro test accounts.
pub const TEST_ACCOUNT_PRICE_LIMIT: i64 = 5000;
/// Return requests per `email/GetReturnRequests` page.
pub const RETURNS_PAGE: usize = 20;
const VAT: u32 = 21;
const SHIPPING_FEE: Decimal = Decimal::from_parts(1599, 0, 0, false, 2);

/// How an expired or unknown token is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ExpiredAnswer {
    /// HTTP 200 `{"error":403,"tokenStatus":0,…}`.
    #[default]
    Envelope,
    /// HTTP 400 with `tokenStatus` 0.
    Http400,
}

/// Moderation state of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Moderation {
    Waiting,
    Approved,
    Rejected,
}

/// A product offer of one merchant.
#[derive(Debug, Clone, Serialize)]
pub struct FakeListing {
    pub model: String,
    pub name: String,
    pub category: String,
    pub brand: String,
    pub stock: u32,
    /// Gross (VAT included).
    pub price: Decimal,
    pub active: bool,
    pub handling_days: u32,
    pub moderation: Moderation,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FakeLine {
    pub id: u64,
    pub model: String,
    pub name: String,
    pub quantity: i64,
    pub price: Decimal,
    pub vat: u32,
    pub status_livrare: u8,
}

#[derive(Debug, Clone, Serialize)]
pub struct FakeAwb {
    pub awb_id: u64,
    pub awb: String,
    pub courier: String,
    pub pickup_address_id: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FakeInvoice {
    pub series: String,
    pub number: String,
    pub provider_id: u64,
    pub file_name: Option<String>,
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FakeOrder {
    pub id: u64,
    pub placed: DateTime<Utc>,
    pub last_changed: DateTime<Utc>,
    pub status: i64,
    pub lines: Vec<FakeLine>,
    pub awbs: Vec<FakeAwb>,
    pub invoices: Vec<FakeInvoice>,
    pub cancel_reason: Option<String>,
    pub storno_of: Option<u64>,
    pub customer: String,
    pub city: String,
    /// Instead of the built-in buyer (`customer`, `city` and the fixed address), when set.
    pub buyer: Option<Buyer>,
}

impl FakeOrder {
    fn total(&self) -> Decimal {
        self.lines
            .iter()
            .map(|l| l.price * Decimal::from(l.quantity))
            .sum()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FakeReturn {
    pub id: String,
    pub order_id: u64,
    pub model: String,
    pub quantity: u32,
    pub reason: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug)]
struct Account {
    password: String,
    logins: u64,
    pickup_addresses: Vec<u64>,
    listings: BTreeMap<String, FakeListing>,
    orders: BTreeMap<u64, FakeOrder>,
    returns: Vec<FakeReturn>,
}

impl Account {
    fn new(password: &str, pickup: u64) -> Self {
        Self {
            password: password.to_owned(),
            logins: 0,
            pickup_addresses: vec![pickup],
            listings: BTreeMap::new(),
            orders: BTreeMap::new(),
            returns: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct Session {
    account: String,
    issued: Instant,
    revoked: bool,
}

#[derive(Debug, Default)]
struct Counters {
    order: u64,
    line: u64,
    awb: u64,
    ret: u64,
}

#[derive(Debug)]
struct FakeState {
    accounts: BTreeMap<String, Account>,
    sessions: HashMap<String, Session>,
    token_ttl: Duration,
    expired: ExpiredAnswer,
    next: Counters,
}

/// The Cel.ro fake server.
#[derive(Debug)]
pub struct CelroFake {
    harness: Harness,
    state: Mutex<FakeState>,
}

type Outcome = Result<Value, String>;

fn envelope(status: StatusCode, error: i64, token_status: i64, message: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": error, "tokenStatus": token_status, "message": message}).to_string(),
    )
        .into_response()
}

fn answer(o: Outcome) -> Response {
    match o {
        Ok(v) => envelope(StatusCode::OK, 0, 1, v),
        Err(m) => envelope(StatusCode::OK, 1, 1, Value::String(m)),
    }
}

/// The account a request belongs to: the user name the fake embeds in its tokens (a fake-only
/// convenience; validity is checked against the session table). Logins carry no token and
/// are not counted against the limits.
fn account_of(req: &Request) -> Option<String> {
    let token = bearer(req.headers())?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    let end = raw.iter().position(|b| *b == b'\n')?;
    String::from_utf8(raw[..end].to_vec()).ok()
}

fn bearer(h: &HeaderMap) -> Option<&str> {
    h.get("auth")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn over_limit(kind: LimitKind, wait: Duration) -> Response {
    let secs = wait.as_secs().max(1);
    let (status, text) = match kind {
        LimitKind::Concurrency => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Numarul maxim de conexiuni simultane (10) pentru acest cont a fost depasit".to_owned(),
        ),
        LimitKind::Rate => (
            StatusCode::TOO_MANY_REQUESTS,
            format!("Prea multe cereri; reincercati peste {secs} secunde"),
        ),
    };
    let mut r = envelope(status, 429, 1, Value::String(text));
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

fn server_time(t: DateTime<Utc>) -> String {
    to_server_time(t, ServerTime::EuropeBucharest)
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    wire::from_server_time(s, ServerTime::EuropeBucharest)
}

fn status_name(code: i64) -> &'static str {
    STATUSES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map_or("Necunoscut", |(_, n, _)| n)
}

/// A form field as text.
fn field(f: &Map<String, Value>, k: &str) -> Option<String> {
    f.get(k).and_then(wire::string)
}

fn order_id_field(f: &Map<String, Value>, keys: &[&str]) -> Result<u64, String> {
    let raw = keys
        .iter()
        .find_map(|k| field(f, k))
        .ok_or_else(|| format!("Parametrul {} lipseste", keys[0]))?;
    raw.parse()
        .map_err(|_| format!("Parametrul {} este invalid: {raw}", keys[0]))
}

fn order_json(o: &FakeOrder) -> Value {
    let lines: Vec<Value> = o
        .lines
        .iter()
        .map(|l| {
            let mut line = json!({
                "id_prod_com": l.id,
                "id_comanda": o.id,
                "products_model": l.model,
                "product_name": l.name,
                "products_price": format!("{:.2}", l.price),
                "tva": l.vat,
                "status_livrare": l.status_livrare,
                "furnizor": "MEGZO",
            });
            // The wiki says `cantitate`, the code and third parties `products_quantity`.
            let key = if l.id % 2 == 0 {
                "cantitate"
            } else {
                "products_quantity"
            };
            line[key] = if l.id % 3 == 0 {
                json!(l.quantity.to_string())
            } else {
                json!(l.quantity)
            };
            line
        })
        .collect();
    let (customer, billing) = match &o.buyer {
        Some(b) => {
            let name = format!("{} {}", b.first_name, b.last_name);
            (
                json!({"name": name, "customer_company": "", "email": b.email}),
                json!({"nume": name, "adresa": b.street, "oras": b.city, "judet": "Ilfov",
                       "cod_postal": b.postal_code, "telefon": b.phone, "email": b.email}),
            )
        }
        None => (
            json!({"name": o.customer, "customer_company": ""}),
            json!({"nume": o.customer, "adresa": "Str. Exemplului 1", "oras": o.city, "judet": "Cluj",
                   "cod_postal": "400001", "telefon": "0700000000"}),
        ),
    };
    let delivery = billing.clone();
    json!({
        "id_comanda": o.id,
        "data": o.placed_day(),
        "ora": o.placed_time(),
        "status": o.status,
        "valoarecomanda": format!("{:.2}", o.total()),
        "last_changed": server_time(o.last_changed),
        "mod_plata": "ramburs",
        "mod_livrare": "curier",
        "avans_confirmat": 0,
        "platit": 0,
        "colete": 1,
        "kg": 1,
        "source": "cel.ro",
        "storno_for": o.storno_of,
        "motiv_anulare": o.cancel_reason,
        "customers": customer,
        "billing_info": billing,
        "delivery_info": delivery,
        "products": lines,
    })
}

impl FakeOrder {
    fn placed_day(&self) -> String {
        server_time(self.placed)[..10].to_owned()
    }
    fn placed_time(&self) -> String {
        server_time(self.placed)[11..].to_owned()
    }
}

fn new_token(account: &str) -> String {
    let mut raw = account.as_bytes().to_vec();
    raw.push(b'\n');
    for _ in 0..6 {
        raw.extend_from_slice(&rand::random::<[u8; 32]>());
    }
    base64::engine::general_purpose::STANDARD.encode(raw)
}

impl CelroFake {
    /// A fake with the demo merchant and a second one, the 10-connection cap on, and tokens
    /// living one hour.
    pub fn new() -> Arc<Self> {
        let harness = Harness::new(account_of, over_limit);
        harness.set_limits(Limits {
            concurrency: Some(10),
            ..Limits::default()
        });
        let mut accounts = BTreeMap::new();
        accounts.insert(
            DEMO_USERNAME.to_owned(),
            Account::new(DEMO_PASSWORD, DEMO_PICKUP_ADDRESS_ID),
        );
        accounts.insert(
            OTHER_USERNAME.to_owned(),
            Account::new(OTHER_PASSWORD, 2002),
        );
        Arc::new(Self {
            harness,
            state: Mutex::new(FakeState {
                accounts,
                sessions: HashMap::new(),
                token_ttl: Duration::from_secs(3_600),
                expired: ExpiredAnswer::default(),
                next: Counters {
                    order: 700_000,
                    line: 10,
                    awb: 0,
                    ret: 0,
                },
            }),
        })
    }

    pub fn harness(&self) -> &Harness {
        &self.harness
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The app, wrapped with the shared harness (faults, limits, `/_control/{stats,faults,limits}`).
    pub fn router(self: &Arc<Self>) -> Router {
        use Action::*;
        const ROUTES: &[(&str, Action)] = &[
            ("login/actionLogin", Login),
            ("orders/getOrderStatusList", StatusList),
            ("orders/getOrders", GetOrders),
            ("orders/getOrder", GetOrder),
            ("orders/confirmOrder", Confirm),
            ("orders/cancelOrder", Cancel),
            ("orders/importAWB", ImportAwb),
            ("orders/getOrderAwbs", GetAwbs),
            ("orders/SetReadyForDelivery", Ready),
            ("orders/finishOrder", Finish),
            ("orders/getOrderInvoices", GetInvoices),
            ("orders/StornareComanda", Storno),
            ("email/GetReturnRequests", ReturnRequests),
            ("import/importer", Importer),
            ("import/productImportStatus", ImportStatus),
            ("products/updateStockAndPrice", StockPrice),
        ];
        let mut app: Router<Arc<CelroFake>> = Router::new();
        for (path, action) in ROUTES {
            let action = *action;
            let handler = post(
                move |State(f): State<Arc<CelroFake>>, headers: HeaderMap, body: Bytes| async move {
                    f.handle(action, &headers, &body)
                },
            );
            app = app
                .route(&format!("/{path}"), handler.clone())
                .route(&format!("/{path}/"), handler);
        }
        app = app
            .route("/orders/addOrderInvoice", post(add_invoice))
            .route("/orders/addOrderInvoice/", post(add_invoice))
            .route("/_control/celro/accounts", post(ctl_account))
            .route("/_control/celro/listings", post(ctl_seed_listing))
            .route("/_control/celro/listings/{model}", get(ctl_listing))
            .route("/_control/celro/orders", post(ctl_seed_order))
            .route("/_control/celro/orders/{id}", get(ctl_order))
            .route("/_control/celro/orders/{id}/invoices", get(ctl_invoices))
            .route("/_control/celro/orders/{id}/cancel", post(ctl_cancel))
            .route("/_control/celro/orders/{id}/storno", post(ctl_storno))
            .route("/_control/celro/returns", post(ctl_return))
            .route("/_control/celro/settle", post(ctl_settle))
            .route("/_control/celro/expire-tokens", post(ctl_expire))
            .route("/_control/celro/token-ttl", post(ctl_ttl))
            .route("/_control/celro/logins", get(ctl_logins));
        wrap(app.with_state(self.clone()), &self.harness)
    }

    // -----------------------------------------------------------------------------------------
    // Test and sandbox helpers

    /// Adds (or resets the password of) a merchant account.
    pub fn add_account(&self, username: &str, password: &str, pickup_address_id: u64) {
        let mut st = self.lock();
        match st.accounts.get_mut(username) {
            Some(a) => a.password = password.to_owned(),
            None => {
                st.accounts.insert(
                    username.to_owned(),
                    Account::new(password, pickup_address_id),
                );
            }
        }
    }

    /// Tokens live this long from login.
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.lock().token_ttl = ttl;
    }

    /// Invalidates every token; later uses are answered as `how` says.
    pub fn expire_tokens(&self, how: ExpiredAnswer) {
        let mut st = self.lock();
        st.expired = how;
        for s in st.sessions.values_mut() {
            s.revoked = true;
        }
    }

    /// The tokens handed to an account (for tests proving they never leak).
    pub fn session_tokens(&self, account: &str) -> Vec<String> {
        self.lock()
            .sessions
            .iter()
            .filter(|(_, s)| s.account == account)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Successful logins of an account.
    pub fn logins(&self, account: &str) -> u64 {
        self.lock().accounts.get(account).map_or(0, |a| a.logins)
    }

    /// An approved listing for `account` (price gross, RON).
    pub fn seed_listing_for(&self, account: &str, model: &str, stock: u32, price: Decimal) {
        let mut st = self.lock();
        if let Some(a) = st.accounts.get_mut(account) {
            a.listings.insert(
                model.to_owned(),
                FakeListing {
                    model: model.to_owned(),
                    name: format!("Produs {model}"),
                    category: "1000".into(),
                    brand: "MEGZO".into(),
                    stock,
                    price,
                    active: true,
                    handling_days: 2,
                    moderation: Moderation::Approved,
                    reason: None,
                },
            );
        }
    }

    pub fn listing(&self, account: &str, model: &str) -> Option<FakeListing> {
        self.lock()
            .accounts
            .get(account)?
            .listings
            .get(model)
            .cloned()
    }

    /// A new order of `account` for `quantity` of `model` (listing seeded at 100 RON if absent),
    /// plus the shipping pseudo-line.
    pub fn seed_order_for(&self, account: &str, model: &str, quantity: u32) -> Option<u64> {
        let mut st = self.lock();
        let FakeState { accounts, next, .. } = &mut *st;
        let a = accounts.get_mut(account)?;
        let l = a
            .listings
            .entry(model.to_owned())
            .or_insert_with(|| FakeListing {
                model: model.to_owned(),
                name: format!("Produs {model}"),
                category: "1000".into(),
                brand: "MEGZO".into(),
                stock: 100,
                price: Decimal::ONE_HUNDRED,
                active: true,
                handling_days: 2,
                moderation: Moderation::Approved,
                reason: None,
            })
            .clone();
        next.order += 1;
        let id = next.order;
        let mut line = |model: &str, name: &str, q: i64, price: Decimal| {
            next.line += 1;
            FakeLine {
                id: next.line,
                model: model.to_owned(),
                name: name.to_owned(),
                quantity: q,
                price,
                vat: VAT,
                status_livrare: 0,
            }
        };
        let lines = vec![
            line(model, &l.name, i64::from(quantity), l.price),
            line(wire::SHIPPING_MODEL, "Taxa transport", 1, SHIPPING_FEE),
        ];
        let now = Utc::now();
        a.orders.insert(
            id,
            FakeOrder {
                id,
                placed: now,
                last_changed: now,
                status: NEW,
                lines,
                awbs: vec![],
                invoices: vec![],
                cancel_reason: None,
                storno_of: None,
                customer: "Ioana Popescu".into(),
                city: "Cluj-Napoca".into(),
                buyer: None,
            },
        );
        Some(id)
    }

    /// As [`Self::seed_order_for`], with `buyer` on the order instead of the built-in one.
    pub fn seed_order_by(
        &self,
        account: &str,
        model: &str,
        quantity: u32,
        buyer: &Buyer,
    ) -> Option<u64> {
        let id = self.seed_order_for(account, model, quantity)?;
        let mut st = self.lock();
        let o = st.accounts.get_mut(account)?.orders.get_mut(&id)?;
        o.buyer = Some(buyer.clone());
        Some(id)
    }

    pub fn order(&self, account: &str, id: u64) -> Option<FakeOrder> {
        self.lock().accounts.get(account)?.orders.get(&id).cloned()
    }

    /// Invoice files of an order: `(series, number, bytes)`.
    pub fn invoice_files(&self, account: &str, id: u64) -> Vec<(String, String, Vec<u8>)> {
        self.order(account, id)
            .map(|o| {
                o.invoices
                    .into_iter()
                    .map(|i| (i.series, i.number, i.bytes))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The marketplace (or the customer) cancels an order.
    pub fn cancel_for(&self, account: &str, id: u64, reason: &str) -> bool {
        let mut st = self.lock();
        let Some(o) = st
            .accounts
            .get_mut(account)
            .and_then(|a| a.orders.get_mut(&id))
        else {
            return false;
        };
        o.status = CANCELLED;
        o.cancel_reason = Some(reason.to_owned());
        o.last_changed = Utc::now();
        true
    }

    /// Reverses an order (storno): a minus order is created. Its id, or the refusal.
    pub fn storno_for(&self, account: &str, id: u64, reason: &str) -> Result<u64, String> {
        let mut st = self.lock();
        let FakeState { accounts, next, .. } = &mut *st;
        let a = accounts
            .get_mut(account)
            .ok_or_else(|| format!("Contul {account} nu exista"))?;
        storno(a, next, id, reason)
    }

    /// A customer's return request on an order.
    pub fn add_return_request(
        &self,
        account: &str,
        order_id: u64,
        model: &str,
        quantity: u32,
        reason: &str,
    ) -> Option<String> {
        let mut st = self.lock();
        let FakeState { accounts, next, .. } = &mut *st;
        let a = accounts.get_mut(account)?;
        next.ret += 1;
        let id = format!("RR{:06}", next.ret);
        a.returns.push(FakeReturn {
            id: id.clone(),
            order_id,
            model: model.to_owned(),
            quantity,
            reason: reason.to_owned(),
            at: Utc::now(),
        });
        Some(id)
    }

    /// Moderates every waiting listing like a test account: approved at a price up to 5000,
    /// rejected above.
    pub fn settle_all(&self) {
        let mut st = self.lock();
        for a in st.accounts.values_mut() {
            for l in a.listings.values_mut() {
                if l.moderation == Moderation::Waiting {
                    if l.price > Decimal::from(TEST_ACCOUNT_PRICE_LIMIT) {
                        l.moderation = Moderation::Rejected;
                        l.reason = Some(format!(
                            "Produs respins: pretul de {} lei depaseste limita de {TEST_ACCOUNT_PRICE_LIMIT} lei a conturilor de test",
                            l.price
                        ));
                    } else {
                        l.moderation = Moderation::Approved;
                        l.reason = None;
                    }
                }
            }
        }
    }

    /// Demo data for the sandbox: approved listings and new orders on the demo account.
    pub fn seed_demo(&self) {
        let products = [
            ("DEMO-CANA-01", 40, "39.90"),
            ("DEMO-TRICOU-M", 25, "79.00"),
            ("DEMO-RUCSAC-20L", 12, "189.99"),
            ("DEMO-LAMPA-LED", 8, "129.50"),
            ("DEMO-CARTE-RO", 60, "45.00"),
        ];
        for (m, stock, price) in products {
            let price = price.parse().unwrap_or(Decimal::ONE_HUNDRED);
            self.seed_listing_for(DEMO_USERNAME, m, stock, price);
        }
        for (m, q) in [
            ("DEMO-CANA-01", 2),
            ("DEMO-TRICOU-M", 1),
            ("DEMO-RUCSAC-20L", 1),
        ] {
            self.seed_order_for(DEMO_USERNAME, m, q);
        }
    }

    fn demo_order_id(id: &ChannelOrderId) -> Option<u64> {
        id.as_str().parse().ok()
    }

    // -----------------------------------------------------------------------------------------
    // The API

    fn expired_answer(&self, how: ExpiredAnswer) -> Response {
        match how {
            ExpiredAnswer::Envelope => envelope(
                StatusCode::OK,
                403,
                0,
                json!("Sesiunea a expirat. Va rugam sa va autentificati din nou."),
            ),
            ExpiredAnswer::Http400 => envelope(
                StatusCode::BAD_REQUEST,
                1,
                0,
                json!("Token invalid sau expirat"),
            ),
        }
    }

    /// The account of a valid token, or how to answer the expired (or unknown) one.
    fn authenticate(&self, headers: &HeaderMap) -> Result<String, ExpiredAnswer> {
        let st = self.lock();
        match bearer(headers).and_then(|t| st.sessions.get(t)) {
            Some(s) if !s.revoked && s.issued.elapsed() < st.token_ttl => Ok(s.account.clone()),
            _ => Err(st.expired),
        }
    }

    fn login(&self, f: &Map<String, Value>) -> Response {
        let (Some(user), Some(pass)) = (
            field(f, "username"),
            f.get("password").and_then(Value::as_str),
        ) else {
            return envelope(
                StatusCode::OK,
                405,
                0,
                json!("Utilizatorul si parola sunt obligatorii"),
            );
        };
        let mut st = self.lock();
        match st.accounts.get_mut(&user) {
            Some(a) if a.password == pass => {
                a.logins += 1;
                let token = new_token(&user);
                st.sessions.insert(
                    token.clone(),
                    Session {
                        account: user,
                        issued: Instant::now(),
                        revoked: false,
                    },
                );
                envelope(StatusCode::OK, 0, 1, Value::String(token))
            }
            _ => envelope(
                StatusCode::OK,
                403,
                0,
                json!("Utilizator sau parola incorecta"),
            ),
        }
    }

    fn handle(&self, action: Action, headers: &HeaderMap, body: &[u8]) -> Response {
        let form = php_nest(&form_decode(&String::from_utf8_lossy(body)));
        if action == Action::Login {
            return self.login(&form);
        }
        let account = match self.authenticate(headers) {
            Ok(a) => a,
            Err(how) => return self.expired_answer(how),
        };
        let mut st = self.lock();
        let FakeState { accounts, next, .. } = &mut *st;
        let Some(a) = accounts.get_mut(&account) else {
            return answer(Err(format!("Contul {account} nu exista")));
        };
        answer(match action {
            // Answered above, before any token is needed.
            Action::Login => Err("login/actionLogin nu foloseste token".into()),
            Action::StatusList => Ok(Value::Array(
                STATUSES
                    .iter()
                    .map(|(c, n, _)| json!({"id": c.to_string(), "nume": n}))
                    .collect(),
            )),
            Action::GetOrders => get_orders(a, &form),
            Action::GetOrder => order_id_field(&form, &["order", "orders_id"]).and_then(|id| {
                a.orders
                    .get(&id)
                    .map(order_json)
                    .ok_or_else(|| format!("Comanda {id} nu exista"))
            }),
            Action::Confirm => with_order(a, &form, &["order"], |o| match o.status {
                NEW => {
                    o.status = CONFIRMED;
                    Ok(json!("Comanda a fost confirmata"))
                }
                CANCELLED => Err(format!("Comanda {} este anulata si nu mai poate fi confirmata", o.id)),
                _ => Err(format!("Comanda {} a fost deja confirmata", o.id)),
            }),
            Action::Cancel => cancel(a, &form),
            Action::ImportAwb => import_awb(a, next, &form),
            Action::GetAwbs => order_id_field(&form, &["orders_id"]).and_then(|id| {
                let o = a.orders.get(&id).ok_or_else(|| format!("Comanda {id} nu exista"))?;
                Ok(Value::Array(o.awbs.iter().map(|w| json!(w)).collect()))
            }),
            Action::Ready => with_order(a, &form, &["orders_id"], |o| match o.status {
                CONFIRMED | PROCESSING | AWB => {
                    o.status = READY;
                    Ok(json!("Comanda este gata de livrare"))
                }
                READY => Err(format!("Comanda {} este deja gata de livrare", o.id)),
                _ => Err(format!("Comanda {} nu poate fi marcata gata de livrare in starea {}", o.id, status_name(o.status))),
            }),
            Action::Finish => with_order(a, &form, &["orders_id"], |o| match o.status {
                AWB | READY => {
                    o.status = FINISHED;
                    Ok(json!("Comanda a fost finalizata"))
                }
                FINISHED => Err(format!("Comanda {} este deja finalizata", o.id)),
                _ => Err(format!("Comanda {} nu poate fi finalizata in starea {}", o.id, status_name(o.status))),
            }),
            Action::GetInvoices => order_id_field(&form, &["orders_id"]).and_then(|id| {
                let o = a.orders.get(&id).ok_or_else(|| format!("Comanda {id} nu exista"))?;
                Ok(Value::Array(
                    o.invoices
                        .iter()
                        .map(|i| json!({"series": i.series, "number": i.number, "providerId": i.provider_id, "file_size": i.bytes.len()}))
                        .collect(),
                ))
            }),
            Action::Storno => order_id_field(&form, &["orders_id"]).and_then(|id| {
                let reason = field(&form, "reason").unwrap_or_default();
                storno(a, next, id, &reason).map(|minus| json!({"orders_id": minus}))
            }),
            Action::ReturnRequests => return_requests(a, &form),
            Action::Importer => importer(a, &form),
            Action::ImportStatus => import_status(a, &form),
            Action::StockPrice => stock_and_price(a, &form),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Login,
    StatusList,
    GetOrders,
    GetOrder,
    Confirm,
    Cancel,
    ImportAwb,
    GetAwbs,
    Ready,
    Finish,
    GetInvoices,
    Storno,
    ReturnRequests,
    Importer,
    ImportStatus,
    StockPrice,
}

fn with_order(
    a: &mut Account,
    f: &Map<String, Value>,
    keys: &[&str],
    change: impl FnOnce(&mut FakeOrder) -> Outcome,
) -> Outcome {
    let id = order_id_field(f, keys)?;
    let o = a
        .orders
        .get_mut(&id)
        .ok_or_else(|| format!("Comanda {id} nu exista"))?;
    let r = change(o)?;
    o.last_changed = Utc::now();
    Ok(r)
}

/// A `{minDate, maxDate}` filter, each bound optional.
type Window = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

fn get_orders(a: &Account, f: &Map<String, Value>) -> Outcome {
    let filters = match f.get("filters").map(json_in_field) {
        Some(Value::Object(o)) => o,
        Some(Value::String(s)) if !s.trim().is_empty() => {
            return Err(format!("Parametrul filters nu este JSON valid: {s}"));
        }
        _ => Map::new(),
    };
    let start = field(f, "start")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    let limit = field(f, "limit")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(50)
        .clamp(1, 1000);
    let range = |k: &str| -> Result<Window, String> {
        let Some(Value::Object(r)) = filters.get(k).map(json_in_field) else {
            return Ok((None, None));
        };
        let one = |n: &str| -> Result<Option<DateTime<Utc>>, String> {
            match r.get(n).and_then(wire::string) {
                None => Ok(None),
                Some(s) => parse_time(&s)
                    .map(Some)
                    .ok_or_else(|| format!("Data {k}.{n} invalida: {s}")),
            }
        };
        Ok((one("minDate")?, one("maxDate")?))
    };
    let (lc_min, lc_max) = range("last_changed")?;
    let (d_min, d_max) = range("date")?;
    let status = filters
        .get("order_status")
        .and_then(int)
        .filter(|s| !matches!(s, 0 | 99));
    let only = filters.get("order").and_then(int);
    let grouped = filters.get("group_by_status").is_none_or(|g| {
        !matches!(g, Value::Bool(false)) && int(g) != Some(0) && g.as_str() != Some("false")
    });
    let asc = filters
        .get("order_by_date_purchased")
        .and_then(Value::as_str)
        .is_some_and(|s| s.eq_ignore_ascii_case("ASC"));
    let secs = |t: DateTime<Utc>| t.timestamp();
    let mut list: Vec<&FakeOrder> = a
        .orders
        .values()
        .filter(|o| lc_min.is_none_or(|m| secs(o.last_changed) >= secs(m)))
        .filter(|o| lc_max.is_none_or(|m| secs(o.last_changed) <= secs(m)))
        .filter(|o| d_min.is_none_or(|m| secs(o.placed) >= secs(m)))
        .filter(|o| d_max.is_none_or(|m| secs(o.placed) <= secs(m)))
        .filter(|o| status.is_none_or(|s| o.status == s))
        .filter(|o| only.is_none_or(|id| o.id as i64 == id))
        .collect();
    list.sort_by_key(|o| (o.placed, o.id));
    if !asc {
        list.reverse();
    }
    let page = |orders: &[&FakeOrder]| -> Value {
        let slice: Vec<Value> = orders
            .iter()
            .skip(start)
            .take(limit)
            .map(|o| order_json(o))
            .collect();
        json!({
            "limit": limit,
            "start": start,
            "moreavailable": u8::from(orders.len() > start + limit),
            "list": slice,
        })
    };
    if !grouped {
        return Ok(page(&list));
    }
    let mut groups: BTreeMap<i64, Vec<&FakeOrder>> = BTreeMap::new();
    for o in list {
        groups.entry(o.status).or_default().push(o);
    }
    Ok(Value::Object(
        groups
            .into_iter()
            .map(|(s, os)| (s.to_string(), page(&os)))
            .collect(),
    ))
}

fn cancel(a: &mut Account, f: &Map<String, Value>) -> Outcome {
    let motiv = field(f, "motiv");
    let obs = field(f, "observatii").filter(|o| o.chars().count() > 4);
    if let Some(m) = &motiv
        && !m.parse::<i64>().is_ok_and(|m| CANCEL_REASONS.contains(&m))
    {
        return Err(format!("Motivul de anulare {m} nu exista"));
    }
    if motiv.is_none() && obs.is_none() {
        return Err(
            "Trebuie sa specificati motivul anularii (motiv) sau observatii de peste 4 caractere"
                .into(),
        );
    }
    with_order(a, f, &["order"], |o| match o.status {
        NEW | CONFIRMED | PROCESSING => {
            o.status = CANCELLED;
            o.cancel_reason = obs.clone().or(motiv.clone().map(|m| format!("motiv {m}")));
            Ok(json!("Comanda a fost anulata"))
        }
        CANCELLED => Err(format!("Comanda {} este deja anulata", o.id)),
        s => Err(format!(
            "Comanda {} nu mai poate fi anulata (stare: {})",
            o.id,
            status_name(s)
        )),
    })
}

fn import_awb(a: &mut Account, next: &mut Counters, f: &Map<String, Value>) -> Outcome {
    let awb = field(f, "awb").ok_or("Parametrul awb lipseste")?;
    let pickup: u64 = field(f, "idAdresaRidicare")
        .ok_or("Parametrul idAdresaRidicare lipseste")?
        .parse()
        .map_err(|_| "Parametrul idAdresaRidicare este invalid".to_owned())?;
    if !a.pickup_addresses.contains(&pickup) {
        return Err(format!(
            "Adresa de ridicare {pickup} nu exista in contul dumneavoastra"
        ));
    }
    let courier = field(f, "courier").unwrap_or_default();
    with_order(a, f, &["orders_id"], |o| {
        if matches!(o.status, CANCELLED | STORNO) {
            return Err(format!(
                "Comanda {} este anulata; nu se poate atasa AWB",
                o.id
            ));
        }
        // Re-sending an AWB is undefined on Cel.ro [U]; the fake refuses the same number.
        if o.awbs.iter().any(|w| w.awb == awb) {
            return Err(format!("AWB-ul {awb} este deja asociat comenzii {}", o.id));
        }
        next.awb += 1;
        o.awbs.push(FakeAwb {
            awb_id: next.awb,
            awb: awb.clone(),
            courier,
            pickup_address_id: pickup,
        });
        if matches!(o.status, NEW | CONFIRMED | PROCESSING) {
            o.status = AWB;
        }
        Ok(json!({"success": 1}))
    })
}

fn storno(a: &mut Account, next: &mut Counters, id: u64, reason: &str) -> Result<u64, String> {
    let o = a
        .orders
        .get_mut(&id)
        .ok_or_else(|| format!("Comanda {id} nu exista"))?;
    match o.status {
        AWB | READY | FINISHED => {}
        STORNO => return Err(format!("Comanda {id} a fost deja stornata")),
        s => {
            return Err(format!(
                "Comanda {id} nu poate fi stornata in starea {}",
                status_name(s)
            ));
        }
    }
    o.status = STORNO;
    o.last_changed = Utc::now();
    o.cancel_reason = Some(reason.to_owned()).filter(|r| !r.is_empty());
    let mut minus = o.clone();
    next.order += 1;
    minus.id = next.order;
    minus.storno_of = Some(id);
    minus.awbs.clear();
    minus.invoices.clear();
    for l in &mut minus.lines {
        next.line += 1;
        l.id = next.line;
        l.price = -l.price;
    }
    a.orders.insert(minus.id, minus);
    Ok(next.order)
}

fn return_requests(a: &Account, f: &Map<String, Value>) -> Outcome {
    let t = |k: &str| -> Result<Option<DateTime<Utc>>, String> {
        match field(f, k) {
            None => Ok(None),
            Some(s) => parse_time(&s)
                .map(Some)
                .ok_or_else(|| format!("Data {k} invalida: {s}")),
        }
    };
    let (min, max) = (t("minDate")?, t("maxDate")?);
    let model = field(f, "product_model");
    let start = field(f, "start")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    let list: Vec<Value> = a
        .returns
        .iter()
        .filter(|r| min.is_none_or(|m| r.at.timestamp() >= m.timestamp()))
        .filter(|r| max.is_none_or(|m| r.at.timestamp() <= m.timestamp()))
        .filter(|r| model.as_ref().is_none_or(|m| &r.model == m))
        .skip(start)
        .take(RETURNS_PAGE)
        .map(|r| {
            json!({"uniqueID": r.id, "orders_id": r.order_id, "products_model": r.model,
                   "cantitate": r.quantity, "motiv": r.reason, "data": server_time(r.at)})
        })
        .collect();
    Ok(Value::Array(list))
}

fn products_field(f: &Map<String, Value>) -> Result<Vec<Value>, String> {
    match f.get("products") {
        None => Err("Parametrul products lipseste".into()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v) => Ok(items(&v)),
            Err(e) => Err(format!("Parametrul products nu este JSON valid: {e}")),
        },
        Some(v) => Ok(items(v)),
    }
}

fn jump_refused(old: Decimal, new: Decimal, row: &Map<String, Value>) -> bool {
    let override_price = row.get("overridePrice").and_then(int).unwrap_or(0) != 0;
    !override_price && old > Decimal::ZERO && ((new - old).abs() / old) > Decimal::new(10, 2)
}

fn gross(row: &Map<String, Value>, price: Decimal) -> Decimal {
    if row.get("hasTVA").and_then(int).unwrap_or(0) != 0 {
        price
    } else {
        round2(price * Decimal::new(121, 2))
    }
}

fn importer(a: &mut Account, f: &Map<String, Value>) -> Outcome {
    let rows = products_field(f)?;
    let (mut inserted, mut updated, mut errors) = (vec![], vec![], vec![]);
    for row in rows {
        let Some(row) = row.as_object() else {
            errors.push(json!({"products_model": "", "message": "Produs invalid"}));
            continue;
        };
        let Some(model) = row.get("products_model").and_then(wire::string) else {
            errors.push(
                json!({"products_model": "", "message": "Campul products_model este obligatoriu"}),
            );
            continue;
        };
        let mut fail = |m: String| errors.push(json!({"products_model": model, "message": m}));
        let price = row.get("pretf").and_then(dec);
        let stock = row.get("stoc").and_then(int);
        if stock.is_some_and(|s| s < 0) {
            fail(format!("Stocul produsului {model} nu poate fi negativ"));
            continue;
        }
        let kind = row
            .get("type")
            .and_then(wire::string)
            .unwrap_or_else(|| "insert".into());
        let existing = a.listings.get(&model).cloned();
        if let (Some(l), Some(p)) = (&existing, price)
            && l.moderation == Moderation::Approved
            && jump_refused(l.price, gross(row, p), row)
        {
            fail(format!(
                "Pretul produsului {model} nu poate fi modificat cu mai mult de 10% fara overridePrice"
            ));
            continue;
        }
        match kind.as_str() {
            "update" => {
                let Some(mut l) = existing else {
                    fail(format!("Produsul {model} nu exista; folositi type insert"));
                    continue;
                };
                if let Some(p) = price {
                    l.price = gross(row, p);
                }
                if let Some(s) = stock {
                    l.stock = u32::try_from(s).unwrap_or(u32::MAX);
                }
                if let Some(s) = row.get("status").and_then(int) {
                    l.active = s != 0;
                }
                a.listings.insert(model.clone(), l);
                updated.push(json!(model));
            }
            "insert" => {
                let need = |k: &str| row.get(k).and_then(wire::string);
                let missing = [
                    "products_name",
                    "categories_id",
                    "manufacturers_name",
                    "products_image",
                    "pretf",
                ]
                .into_iter()
                .find(|k| need(k).is_none());
                if let Some(k) = missing {
                    fail(format!(
                        "Campul {k} este obligatoriu pentru produsul {model}"
                    ));
                    continue;
                }
                let Some(p) = price.filter(|p| *p > Decimal::ZERO) else {
                    fail(format!("Pretul produsului {model} este invalid"));
                    continue;
                };
                let moderation = match existing.as_ref().map(|l| l.moderation) {
                    Some(Moderation::Approved) => Moderation::Approved,
                    _ => Moderation::Waiting,
                };
                a.listings.insert(
                    model.clone(),
                    FakeListing {
                        model: model.clone(),
                        name: need("products_name").unwrap_or_default(),
                        category: need("categories_id").unwrap_or_default(),
                        brand: need("manufacturers_name").unwrap_or_default(),
                        stock: stock.and_then(|s| u32::try_from(s).ok()).unwrap_or(0),
                        price: gross(row, p),
                        active: row.get("status").and_then(int).unwrap_or(1) != 0,
                        handling_days: row
                            .get("procesare_in")
                            .and_then(int)
                            .and_then(|d| u32::try_from(d).ok())
                            .unwrap_or(2),
                        moderation,
                        reason: None,
                    },
                );
                inserted.push(json!(model));
            }
            other => fail(format!(
                "Tipul de import {other} nu este cunoscut (insert sau update)"
            )),
        }
    }
    Ok(json!({"inserted": inserted, "updated": updated, "errors": errors}))
}

fn import_status(a: &Account, f: &Map<String, Value>) -> Outcome {
    let models = products_field(f)?;
    Ok(Value::Array(
        models
            .iter()
            .filter_map(wire::string)
            .map(|m| match a.listings.get(&m) {
                None => json!({"products_model": m, "status": "not_found"}),
                Some(l) => json!({
                    "products_model": m,
                    "status": match l.moderation {
                        Moderation::Waiting => "waiting",
                        Moderation::Approved => "approved",
                        Moderation::Rejected => "rejected",
                    },
                    "motiv": l.reason,
                }),
            })
            .collect(),
    ))
}

fn stock_and_price(a: &mut Account, f: &Map<String, Value>) -> Outcome {
    let rows = products_field(f)?;
    let (mut updated, mut not_updated, mut errors) = (vec![], vec![], vec![]);
    for row in rows {
        let Some(row) = row.as_object() else {
            errors.push(json!({"products_model": "", "message": "Produs invalid"}));
            continue;
        };
        let Some(model) = row.get("products_model").and_then(wire::string) else {
            errors.push(
                json!({"products_model": "", "message": "Campul products_model este obligatoriu"}),
            );
            continue;
        };
        let Some(l) = a.listings.get_mut(&model) else {
            not_updated.push(json!({"products_model": model, "message": format!("Produsul {model} nu exista in contul dumneavoastra")}));
            continue;
        };
        let stock = match row.get("stoc") {
            None => None,
            Some(v) => match int(v).and_then(|s| u32::try_from(s).ok()) {
                Some(s) => Some(s),
                None => {
                    errors.push(json!({"products_model": model, "message": format!("Stoc invalid pentru produsul {model}")}));
                    continue;
                }
            },
        };
        let price = match row.get("pretf") {
            None => None,
            Some(v) => match dec(v).filter(|p| *p > Decimal::ZERO) {
                Some(p) => Some(gross(row, p)),
                None => {
                    errors.push(json!({"products_model": model, "message": format!("Pret invalid pentru produsul {model}")}));
                    continue;
                }
            },
        };
        if let Some(p) = price
            && jump_refused(l.price, p, row)
        {
            not_updated.push(json!({"products_model": model, "message": format!(
                "Pretul produsului {model} nu poate fi modificat cu mai mult de 10% fara overridePrice"
            )}));
            continue;
        }
        if let Some(s) = stock {
            l.stock = s;
        }
        if let Some(p) = price {
            l.price = p;
        }
        updated.push(json!(model));
    }
    Ok(json!({"updated": updated, "notUpdated": not_updated, "exceptions": [], "error": errors}))
}

async fn add_invoice(
    State(f): State<Arc<CelroFake>>,
    headers: HeaderMap,
    mp: Result<Multipart, MultipartRejection>,
) -> Response {
    let account = match f.authenticate(&headers) {
        Ok(a) => a,
        Err(how) => return f.expired_answer(how),
    };
    let mut mp = match mp {
        Ok(m) => m,
        Err(e) => {
            return answer(Err(format!(
                "Cererea trebuie trimisa ca multipart/form-data: {e}"
            )));
        }
    };
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut file: Option<(Option<String>, Vec<u8>)> = None;
    loop {
        match mp.next_field().await {
            Ok(Some(part)) => {
                let name = part.name().unwrap_or_default().to_owned();
                let file_name = part.file_name().map(str::to_owned);
                match part.bytes().await {
                    Ok(b) if name == "file" => file = Some((file_name, b.to_vec())),
                    Ok(b) => {
                        fields.insert(name, String::from_utf8_lossy(&b).trim().to_owned());
                    }
                    Err(e) => return answer(Err(format!("Fisier incomplet: {e}"))),
                }
            }
            Ok(None) => break,
            Err(e) => return answer(Err(format!("Cerere multipart invalida: {e}"))),
        }
    }
    let get = |k: &str| fields.get(k).filter(|v| !v.is_empty()).cloned();
    let outcome = (|| -> Outcome {
        let id: u64 = get("oid")
            .ok_or("Parametrul oid lipseste")?
            .parse()
            .map_err(|_| "Parametrul oid este invalid".to_owned())?;
        let provider: u64 = get("providerId").and_then(|p| p.parse().ok()).unwrap_or(0);
        let (series, number) = (get("series"), get("number"));
        if provider == 0 {
            if series.is_none() || number.is_none() {
                return Err("Seria si numarul facturii sunt obligatorii".into());
            }
            if file.as_ref().is_none_or(|(_, b)| b.is_empty()) {
                return Err("Fisierul facturii lipseste".into());
            }
        }
        let mut st = f.lock();
        let a = st.accounts.get_mut(&account).ok_or("Cont inexistent")?;
        let o = a
            .orders
            .get_mut(&id)
            .ok_or_else(|| format!("Comanda {id} nu exista"))?;
        let (series, number) = (series.unwrap_or_default(), number.unwrap_or_default());
        if o.invoices
            .iter()
            .any(|i| i.series == series && i.number == number)
        {
            return Err(format!(
                "Factura {series} {number} exista deja pentru comanda {id}"
            ));
        }
        let (file_name, bytes) = file.clone().unwrap_or_default();
        o.invoices.push(FakeInvoice {
            series,
            number,
            provider_id: provider,
            file_name,
            bytes,
        });
        o.last_changed = Utc::now();
        Ok(json!("Factura a fost adaugata"))
    })();
    answer(outcome)
}

// ---------------------------------------------------------------------------------------------
// Control routes

type Ctl = State<Arc<CelroFake>>;
type Q = Query<HashMap<String, String>>;

fn account_param(q: &HashMap<String, String>, body: Option<&Value>) -> String {
    body.and_then(|b| b.get("account"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| q.get("account").cloned())
        .unwrap_or_else(|| DEMO_USERNAME.to_owned())
}

fn bad(m: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": m.into()})),
    )
        .into_response()
}

#[derive(Deserialize)]
struct AccountBody {
    username: String,
    password: String,
    pickup_address_id: Option<u64>,
}

async fn ctl_account(State(f): Ctl, axum::Json(b): axum::Json<AccountBody>) -> Response {
    f.add_account(
        &b.username,
        &b.password,
        b.pickup_address_id.unwrap_or(DEMO_PICKUP_ADDRESS_ID),
    );
    StatusCode::NO_CONTENT.into_response()
}

async fn ctl_seed_listing(
    State(f): Ctl,
    Query(q): Q,
    axum::Json(b): axum::Json<Value>,
) -> Response {
    let account = account_param(&q, Some(&b));
    let Some(model) = b.get("model").and_then(Value::as_str) else {
        return bad("model is required");
    };
    let stock = b
        .get("stock")
        .and_then(int)
        .and_then(|s| u32::try_from(s).ok())
        .unwrap_or(0);
    let price = b.get("price").and_then(dec).unwrap_or(Decimal::ONE_HUNDRED);
    f.seed_listing_for(&account, model, stock, price);
    match f.listing(&account, model) {
        Some(l) => axum::Json(json!(l)).into_response(),
        None => bad(format!("no account {account}")),
    }
}

async fn ctl_listing(State(f): Ctl, Path(model): Path<String>, Query(q): Q) -> Response {
    match f.listing(&account_param(&q, None), &model) {
        Some(l) => axum::Json(json!(l)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn ctl_seed_order(State(f): Ctl, Query(q): Q, axum::Json(b): axum::Json<Value>) -> Response {
    let account = account_param(&q, Some(&b));
    let Some(model) = b.get("model").and_then(Value::as_str) else {
        return bad("model is required");
    };
    let quantity = b
        .get("quantity")
        .and_then(int)
        .and_then(|s| u32::try_from(s).ok())
        .unwrap_or(1);
    match f.seed_order_for(&account, model, quantity) {
        Some(id) => axum::Json(json!({"id": id})).into_response(),
        None => bad(format!("no account {account}")),
    }
}

async fn ctl_order(State(f): Ctl, Path(id): Path<u64>, Query(q): Q) -> Response {
    match f.order(&account_param(&q, None), id) {
        Some(o) => {
            let canonical = STATUSES
                .iter()
                .find(|(c, _, _)| *c == o.status)
                .map(|(_, _, s)| *s);
            let mut v = json!(o);
            v["status_name"] = json!(status_name(o.status));
            v["canonical_status"] = json!(canonical);
            v["total"] = json!(o.total());
            axum::Json(v).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn ctl_invoices(State(f): Ctl, Path(id): Path<u64>, Query(q): Q) -> Response {
    let files: Vec<Value> = f
        .invoice_files(&account_param(&q, None), id)
        .into_iter()
        .map(|(s, n, b)| {
            json!({"series": s, "number": n, "size": b.len(),
                   "base64": base64::engine::general_purpose::STANDARD.encode(b)})
        })
        .collect();
    axum::Json(Value::Array(files)).into_response()
}

async fn ctl_cancel(State(f): Ctl, Path(id): Path<u64>, Query(q): Q) -> Response {
    if f.cancel_for(&account_param(&q, None), id, "Anulata de client") {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn ctl_storno(State(f): Ctl, Path(id): Path<u64>, Query(q): Q) -> Response {
    match f.storno_for(&account_param(&q, None), id, "Storno din panou") {
        Ok(minus) => axum::Json(json!({"orders_id": minus})).into_response(),
        Err(m) => bad(m),
    }
}

async fn ctl_return(State(f): Ctl, Query(q): Q, axum::Json(b): axum::Json<Value>) -> Response {
    let account = account_param(&q, Some(&b));
    let (Some(order), Some(model)) = (
        b.get("order_id").and_then(int),
        b.get("model").and_then(Value::as_str),
    ) else {
        return bad("order_id and model are required");
    };
    let quantity = b
        .get("quantity")
        .and_then(int)
        .and_then(|s| u32::try_from(s).ok())
        .unwrap_or(1);
    let reason = b
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("Produs defect");
    match f.add_return_request(
        &account,
        u64::try_from(order).unwrap_or(0),
        model,
        quantity,
        reason,
    ) {
        Some(id) => axum::Json(json!({"id": id})).into_response(),
        None => bad(format!("no account {account}")),
    }
}

async fn ctl_settle(State(f): Ctl) -> Response {
    f.settle_all();
    StatusCode::NO_CONTENT.into_response()
}

async fn ctl_expire(State(f): Ctl, body: Bytes) -> Response {
    let how = if body.is_empty() {
        ExpiredAnswer::default()
    } else {
        match serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("answer").cloned())
            .map(serde_json::from_value::<ExpiredAnswer>)
        {
            None => ExpiredAnswer::default(),
            Some(Ok(h)) => h,
            Some(Err(e)) => return bad(format!("answer must be \"envelope\" or \"http400\": {e}")),
        }
    };
    f.expire_tokens(how);
    StatusCode::NO_CONTENT.into_response()
}

async fn ctl_ttl(State(f): Ctl, axum::Json(b): axum::Json<Value>) -> Response {
    match b.get("secs").and_then(Value::as_u64) {
        Some(s) => {
            f.set_token_ttl(Duration::from_secs(s));
            StatusCode::NO_CONTENT.into_response()
        }
        None => bad("secs (a whole number of seconds) is required"),
    }
}

async fn ctl_logins(State(f): Ctl, Query(q): Q) -> Response {
    axum::Json(json!({"logins": f.logins(&account_param(&q, None))})).into_response()
}

// ---------------------------------------------------------------------------------------------

impl MarketplaceFake for CelroFake {
    fn harness(&self) -> &Harness {
        &self.harness
    }

    fn seed_listing(&self, sku: &Sku, quantity: u32) {
        self.seed_listing_for(DEMO_USERNAME, sku.as_str(), quantity, Decimal::ONE_HUNDRED);
    }

    fn seed_order(&self, sku: &Sku, quantity: u32) -> ChannelOrderId {
        let id = self
            .seed_order_for(DEMO_USERNAME, sku.as_str(), quantity)
            .unwrap_or_default();
        ChannelOrderId::new(id.to_string()).expect("decimal digits are a valid order id")
    }

    fn listing_quantity(&self, sku: &Sku) -> Option<u32> {
        self.listing(DEMO_USERNAME, sku.as_str()).map(|l| l.stock)
    }

    fn listing_price(&self, sku: &Sku) -> Option<Decimal> {
        self.listing(DEMO_USERNAME, sku.as_str()).map(|l| l.price)
    }

    fn order_status(&self, id: &ChannelOrderId) -> Option<OrderStatus> {
        let o = self.order(DEMO_USERNAME, Self::demo_order_id(id)?)?;
        STATUSES
            .iter()
            .find(|(c, _, _)| *c == o.status)
            .map(|(_, _, s)| *s)
    }

    fn order_tracking(&self, id: &ChannelOrderId) -> Vec<Tracking> {
        Self::demo_order_id(id)
            .and_then(|i| self.order(DEMO_USERNAME, i))
            .map(|o| {
                o.awbs
                    .into_iter()
                    .map(|a| Tracking {
                        carrier: a.courier,
                        number: a.awb,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn invoice_count(&self, id: &ChannelOrderId) -> usize {
        Self::demo_order_id(id)
            .and_then(|i| self.order(DEMO_USERNAME, i))
            .map_or(0, |o| o.invoices.len())
    }

    fn cancel_as_marketplace(&self, id: &ChannelOrderId) {
        if let Some(i) = Self::demo_order_id(id) {
            self.cancel_for(DEMO_USERNAME, i, "Anulata de client");
        }
    }

    fn settle(&self) {
        self.settle_all();
    }

    fn expire_sessions(&self) {
        let how = self.lock().expired;
        self.expire_tokens(how);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Map<String, Value> {
        php_nest(
            &pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn tokens_embed_the_account_and_are_long() {
        let t = new_token("shop@x.ro");
        assert!(t.len() > 250, "{}", t.len());
        let req = Request::builder()
            .header("AUTH", format!("Bearer {t}"))
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(account_of(&req).as_deref(), Some("shop@x.ro"));
        assert_ne!(new_token("a"), new_token("a"));
    }

    #[test]
    fn stock_updates_accept_json_in_field_and_nested_forms_and_refuse_jumps() {
        let f = CelroFake::new();
        f.seed_listing_for(DEMO_USERNAME, "A", 1, Decimal::ONE_HUNDRED);
        let mut st = f.lock();
        let a = st.accounts.get_mut(DEMO_USERNAME).unwrap();
        let r = stock_and_price(
            a,
            &form(&[("products", r#"[{"products_model":"A","stoc":5}]"#)]),
        )
        .unwrap();
        assert_eq!(r["updated"], json!(["A"]));
        let r = stock_and_price(
            a,
            &form(&[
                ("products[0][products_model]", "A"),
                ("products[0][stoc]", "6"),
            ]),
        )
        .unwrap();
        assert_eq!(r["updated"], json!(["A"]));
        assert_eq!(a.listings["A"].stock, 6);
        let r = stock_and_price(
            a,
            &form(&[(
                "products",
                r#"[{"products_model":"A","pretf":"150","hasTVA":1}]"#,
            )]),
        )
        .unwrap();
        assert!(
            r["notUpdated"][0]["message"]
                .as_str()
                .unwrap()
                .contains("10%")
        );
        let r = stock_and_price(
            a,
            &form(&[("products", r#"[{"products_model":"A","pretf":"150","hasTVA":1,"overridePrice":1},{"products_model":"Z","stoc":1}]"#)]),
        )
        .unwrap();
        assert_eq!(r["updated"], json!(["A"]));
        assert!(
            r["notUpdated"][0]["message"]
                .as_str()
                .unwrap()
                .contains("nu exista")
        );
        assert_eq!(a.listings["A"].price, Decimal::from(150));
        assert!(
            stock_and_price(a, &form(&[("products", "{oops")]))
                .unwrap_err()
                .contains("JSON")
        );
    }

    #[test]
    fn orders_group_by_status_and_page_with_moreavailable() {
        let f = CelroFake::new();
        for _ in 0..3 {
            f.seed_order_for(DEMO_USERNAME, "A", 1);
        }
        let first = f.lock().accounts[DEMO_USERNAME]
            .orders
            .keys()
            .next()
            .copied()
            .unwrap();
        f.cancel_for(DEMO_USERNAME, first, "x");
        let st = f.lock();
        let a = &st.accounts[DEMO_USERNAME];
        let grouped = get_orders(a, &form(&[("limit", "1")])).unwrap();
        assert_eq!(grouped["1"]["moreavailable"], json!(1));
        assert_eq!(grouped["7"]["list"].as_array().unwrap().len(), 1);
        let flat = get_orders(
            a,
            &form(&[
                ("start", "2"),
                ("limit", "2"),
                (
                    "filters",
                    r#"{"group_by_status":false,"order_by_date_purchased":"ASC"}"#,
                ),
            ]),
        )
        .unwrap();
        assert_eq!(flat["moreavailable"], json!(0));
        assert_eq!(flat["list"].as_array().unwrap().len(), 1);
        let bad = get_orders(
            a,
            &form(&[("filters", r#"{"last_changed":{"minDate":"ieri"}}"#)]),
        )
        .unwrap_err();
        assert!(bad.contains("last_changed.minDate"), "{bad}");
    }

    #[test]
    fn moderation_settles_like_a_test_account() {
        let f = CelroFake::new();
        let mut st = f.lock();
        let a = st.accounts.get_mut(DEMO_USERNAME).unwrap();
        let row = |m: &str, p: &str| {
            format!(
                r#"{{"products_model":"{m}","products_name":"N","categories_id":"1","manufacturers_name":"B","products_image":"http://i","pretf":"{p}","hasTVA":1,"stoc":3,"type":"insert"}}"#
            )
        };
        let r = importer(
            a,
            &form(&[(
                "products",
                &format!("[{},{}]", row("OK", "10"), row("BIG", "6000")),
            )]),
        )
        .unwrap();
        assert_eq!(r["inserted"], json!(["OK", "BIG"]));
        let r = importer(
            a,
            &form(&[("products", r#"[{"products_model":"X","type":"insert"}]"#)]),
        )
        .unwrap();
        assert!(
            r["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("products_name")
        );
        drop(st);
        f.settle_all();
        assert_eq!(
            f.listing(DEMO_USERNAME, "OK").unwrap().moderation,
            Moderation::Approved
        );
        let big = f.listing(DEMO_USERNAME, "BIG").unwrap();
        assert_eq!(big.moderation, Moderation::Rejected);
        assert!(big.reason.unwrap().contains("5000"));
    }
}
