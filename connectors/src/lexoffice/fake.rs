//! A stateful fake of lexoffice's public API (same contract as the client), for tests, the
//! sandbox and the demo. Served at the root (point `base_url` at the fake), wrapped by
//! [`crate::fake::wrap`] (faults, limits, `/_control/{stats,faults,limits}`).
//!
//! What it does, per the contract (§2):
//! - Organizations keyed by their API key (`Authorization: Bearer <key>`); a missing or unknown
//!   key is `401 {"message":"Unauthorized"}`. The demo key is [`DEMO_API_KEY`].
//! - **2 requests/s per key** by default (the harness' sliding window, stricter than
//!   lexoffice's token bucket); over it `429` in lexoffice's regular error shape, without
//!   `Retry-After` (none is documented).
//! - `GET /v1/articles` (Spring pages: `page` from 0, `size` clamped to 250, sorted by title,
//!   filters `articleNumber`, `gtin`, `type`), `GET /v1/articles/{id}`.
//! - `POST /v1/order-confirmations` (drafts, no number), `POST /v1/invoices[?finalize=true]`
//!   and `POST /v1/credit-notes[?finalize=true][&precedingSalesVoucherId=]` (counted: the
//!   client must never call them) validate like lexoffice: **EUR only**, the exact date format,
//!   German tax rates valid today (0, 7, 19), supported country codes, 1–300 lines, gross or net
//!   amounts per `taxType`, `shippingDate` unless `shippingType` is `none`; refusals are `406`
//!   with German `details`. Creates answer `201 {id, resourceUri, createdDate, updatedDate,
//!   version}` only; `GET` returns the read model with totals and `relatedVouchers`.
//! - `GET /v1/invoices/{id}/file` (also credit notes, order confirmations): the PDF
//!   (`erp::minimal_pdf`), `409` for drafts, `406` for an `Accept` it cannot serve, `404` for
//!   unknown ids; after `garbage_pdf_next` one answer is `200` with a JSON body.
//! - `GET /v1/voucherlist` (`voucherType` and `voucherStatus` required, date filters as
//!   `yyyy-MM-dd`, `voucherNumber`, sorted by voucher date descending, `size` ≤ 250) refuses
//!   pages beyond 10 000 results ("Maximum search window size exceeded").
//! - `GET /v1/payments/{id}`: `openAmount` alternates between a number and a numeric string.
//! - `…/event-subscriptions`: create (HEAD check of the callback URL, 409 for a duplicate
//!   event type), list (`{content:[…]}`), get, delete. Events are POSTed signed with the
//!   **test-only** key [`FAKE_WEBHOOK_PRIVATE_KEY_PEM`] (`X-Lxo-Signature`).
//! - Any stock, inventory or warehouse path is `404`; other unknown paths get the gateway's
//!   `403`.
//!
//! Control API (no auth; `api_key` defaults to the demo key):
//! `POST /_control/lexoffice/accounts {api_key}`, `POST /_control/lexoffice/articles`
//! ([`SeedArticle`]), `GET /_control/lexoffice/orders/{order_id}/documents` (vouchers whose
//! remark names the order), `POST /_control/lexoffice/order-confirmations/{id}/invoice
//! {finalize}` (the merchant invoices the confirmation), `POST
//! /_control/lexoffice/invoices/{id}/finalize`, `POST /_control/lexoffice/invoices/{id}/credit-note`
//! (the merchant credits the invoice), `POST /_control/lexoffice/webhooks/fire {event_type,
//! resource_id}`, `GET /_control/lexoffice/counts` ([`Counts`]), `POST
//! /_control/lexoffice/garbage_pdf_next`, `POST /_control/lexoffice/rate_limit_500_next` (the
//! next API call answers lexoffice's ambiguous `500 "Internal server error or rate limit
//! exceeded"`), `POST /_control/lexoffice/seed_demo`.

// Handlers return axum responses as their errors: the error is the answer.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use canonical::{ChannelOrderId, SalesDocument, Sku, round2};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::convert::{remark_names_order, round_unit};
use super::wire::{
    self, Address, Article, ArticlePrice, ErrorDetail, LineItem, PaymentItem, RelatedVoucher,
    Subscription, format_datetime, parse_datetime,
};
use crate::conformance::ErpFake;
use crate::erp::minimal_pdf;
use crate::fake::{Harness, LimitKind, Limits, RateRule, wrap};

/// The sandbox's demo organization's API key (a fake's credential, not a real one).
pub const DEMO_API_KEY: &str = "demo-lexoffice-api-key";

/// **TEST/FAKE ONLY.** The private key the fake signs its webhooks with (RSA 2048, PKCS#8),
/// generated for this repository with `openssl genpkey -algorithm RSA -pkeyopt
/// rsa_keygen_bits:2048`. It is public by being committed: it proves nothing about lexoffice
/// and must never be configured anywhere but against the fake.
pub const FAKE_WEBHOOK_PRIVATE_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDXZJ1lBr0/Z0eu
u3lXIGRYrj85sciPVM15YikkVKOGEfd/+CT4BbUGavLdkuB/I76KY+V5Ucr6PTOf
6S+Xw1l27Bi5zQjNUa6pE0LP9Rk2ejxIpZ2hu/wHGwfztr+CPtuvJvr9y5wKqkYq
+t/6UnPJc/6FQqCOuyUd+L7HVemO5I5qi2dO6+HFkevGzMMAt2k6vI0iMzEzOYmq
6VpWw7h8DaeyYRNR4JVtYVuEPbvfgP+m8ZH5qepuBRA6rcLrYHt/VPj2NTJGjL/q
3OW3m6vRAdmjAMurnwYKElpMrhIsBzTU/fEDc92gmkQVESdYyoV5uGPjPipff0SQ
owlGiQwNAgMBAAECggEAYxgIDX2PPYc/hFT92yas49uufNWdBswmCA0wDmXeIYVM
j5RTNcQyZ3R2rZewLu378GFLJoiJ0JytjolSewjFtR+jtH9u6D8HEwQofdIuOlD8
QRPotIruxToba3WNH9fZa/iMCo1NCd8Sjx2CRAEBAhKaayafBWt2BRb2dnDBFhqZ
yQ6g3mh4qz7IJ+XfN0xuoKu2sFNTBo/xpQgcUiSxdQyNcfB/fBguxPvIpvUlOo2w
Si4gxEpIdOEpq0RnzOQOvro8vHBP2cOkstdOVCq5pbjF1dgNltmCTG1ptQRNiSPw
HS2CzL1xncGmCAis5CALwg86pJfReeI34vIoD8GoBQKBgQD/6P4MMn10CLe38ZaS
yZyFlShjAKm1MaejQHPLYbkFcgwYV4LH4qK03tcgt+sIW71FutEX6YlaHLlXHau5
g/OQwSUct6iDM8IKYKAR0yezE9lIBtS5zkcYHjtLu99wxFb+aBZASsYt+X3h+Lek
ssKHFrApK3IvnxZ9B+MhL36NjwKBgQDXd/rRO2BvfTp9raUvWQcoYJb6+32WCg1i
s5C5sC7Ui5BkonP69KPrF5uC2f6gMVJRlSDvjWWlOFQDhXERVOrLDKG5SpJjGVEg
22YxRJme2ohJfFVWwhZ7i4IZTXfX6TD+7gzalh6iL1t0BSW35RDiZHeYNZ1zT+cp
9tr3UHt2owKBgQC17u6tvTdzRr9WBmsF8E9WqLQNrmr4ZlTHuwqXjOH8/RecNprD
gFwsOkC3AgoV5yKocCg219DOP52EUZPEUArY3neD8w3aOPG6bvddtMCEj5fpnPGf
JwdkHhoJvYccpHk0ZMts6bv682SLQkdMz8l8QKT8n+aN9IwIV5MiBKH0AQKBgQCu
81dvXjPeMqM0erL+L9509YCBx4PgOMdHlh9z9k7/+1ZBr/pWER+rel6lr5Vkwsdh
QKIegAPBVGw687Wr6fQ+7EHALoGP/3V1JU/jvxyw9CXm7RJpwGv64nq/Srx9TnWe
+PDs5yl2bNdn6+oFV/QOrp7Asv/mKkG7PBns56dn2wKBgGE6OPZ8eeKbDv1ojtGj
JO7AR09Kor6E7OIzFxk36kxPinQr7rGSQr0SMQpZOkAbQQPYvKVudHN7QJAks2yZ
vClYG0lXtTPTwG0R5eVDn6FOu+B4DAXKSuQ41m5aZytCq84yGa+Oe3jwPgH2kTUj
Ell/+xFFVeFxCe3j8Z1oxGYK
-----END PRIVATE KEY-----
";

/// **TEST/FAKE ONLY.** The public half of [`FAKE_WEBHOOK_PRIVATE_KEY_PEM`] (`openssl pkey
/// -pubout`): configure it as `webhook_public_key_pem` only for a client talking to the fake.
pub const FAKE_WEBHOOK_PUBLIC_KEY_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA12SdZQa9P2dHrrt5VyBk
WK4/ObHIj1TNeWIpJFSjhhH3f/gk+AW1Bmry3ZLgfyO+imPleVHK+j0zn+kvl8NZ
duwYuc0IzVGuqRNCz/UZNno8SKWdobv8BxsH87a/gj7bryb6/cucCqpGKvrf+lJz
yXP+hUKgjrslHfi+x1XpjuSOaotnTuvhxZHrxszDALdpOryNIjMxMzmJqulaVsO4
fA2nsmETUeCVbWFbhD2734D/pvGR+anqbgUQOq3C62B7f1T49jUyRoy/6tzlt5ur
0QHZowDLq58GChJaTK4SLAc01P3xA3PdoJpEFREnWMqFebhj4z4qX39EkKMJRokM
DQIDAQAB
-----END PUBLIC KEY-----
";

/// Signs `body` as lexoffice signs webhooks (RSA-SHA512, PKCS#1 v1.5, base64) with the
/// **test-only** [`FAKE_WEBHOOK_PRIVATE_KEY_PEM`].
pub fn sign_webhook_body(body: &[u8]) -> String {
    use ring::rand::SystemRandom;
    use ring::signature::{RSA_PKCS1_SHA512, RsaKeyPair};
    let b64: String = FAKE_WEBHOOK_PRIVATE_KEY_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .unwrap_or_else(|e| panic!("the fake's embedded key is not base64: {e}"));
    let pair = RsaKeyPair::from_pkcs8(&der)
        .unwrap_or_else(|e| panic!("the fake's embedded key is not PKCS#8 RSA: {e}"));
    let mut sig = vec![0u8; pair.public().modulus_len()];
    pair.sign(&RSA_PKCS1_SHA512, &SystemRandom::new(), body, &mut sig)
        .unwrap_or_else(|e| panic!("signing with the fake's key failed: {e}"));
    base64::engine::general_purpose::STANDARD.encode(sig)
}

/// German VAT rates the fake accepts on vouchers dated today (contract: 0/7/19 as of 2024-03).
const TAX_RATES: [i64; 3] = [0, 7, 19];
/// Country codes the fake accepts in addresses (EU plus a few others lexoffice lists).
const COUNTRIES: [&str; 32] = [
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "CH", "NO", "GB", "US", "LI",
];
const TAX_TYPES: [&str; 9] = [
    "net",
    "gross",
    "vatfree",
    "intraCommunitySupply",
    "constructionService13b",
    "externalService13b",
    "thirdPartyCountryService",
    "thirdPartyCountryDelivery",
    "photovoltaicEquipment",
];
const SHIPPING_TYPES: [&str; 5] = [
    "service",
    "serviceperiod",
    "delivery",
    "deliveryperiod",
    "none",
];
const EVENT_TYPES: [&str; 22] = [
    "article.created",
    "article.changed",
    "article.deleted",
    "contact.created",
    "contact.changed",
    "contact.deleted",
    "credit-note.created",
    "credit-note.changed",
    "credit-note.deleted",
    "credit-note.status.changed",
    "invoice.created",
    "invoice.changed",
    "invoice.deleted",
    "invoice.status.changed",
    "order-confirmation.created",
    "order-confirmation.changed",
    "order-confirmation.deleted",
    "order-confirmation.status.changed",
    "quotation.created",
    "quotation.changed",
    "payment.changed",
    "token.revoked",
];
const VOUCHER_STATUSES: [&str; 12] = [
    "draft",
    "open",
    "overdue",
    "paid",
    "paidoff",
    "voided",
    "transferred",
    "sepadebit",
    "accepted",
    "rejected",
    "unchecked",
    "any",
];
const MAX_WINDOW: u64 = 10_000;

/// A sales voucher's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    OrderConfirmation,
    Invoice,
    CreditNote,
}

impl Kind {
    /// The `voucherType` of the voucherlist and `relatedVouchers`.
    pub fn voucher_type(self) -> &'static str {
        match self {
            Kind::OrderConfirmation => "orderconfirmation",
            Kind::Invoice => "invoice",
            Kind::CreditNote => "creditnote",
        }
    }

    fn collection(self) -> &'static str {
        match self {
            Kind::OrderConfirmation => "order-confirmations",
            Kind::Invoice => "invoices",
            Kind::CreditNote => "credit-notes",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Kind::OrderConfirmation => "AB",
            Kind::Invoice => "RE",
            Kind::CreditNote => "GS",
        }
    }

    /// Parses a voucherlist `voucherType` word: `Some(None)` for a valid type the fake holds
    /// none of, `None` for an unknown word.
    fn from_list_word(w: &str) -> Option<Option<Kind>> {
        match w {
            "orderconfirmation" => Some(Some(Kind::OrderConfirmation)),
            "invoice" | "salesinvoice" => Some(Some(Kind::Invoice)),
            "creditnote" | "salescreditnote" => Some(Some(Kind::CreditNote)),
            "purchaseinvoice" | "purchasecreditnote" | "downpaymentinvoice" | "quotation"
            | "deliverynote" | "dunning" => Some(None),
            _ => None,
        }
    }
}

/// One voucher held by the fake.
#[derive(Debug, Clone)]
struct FakeVoucher {
    id: String,
    kind: Kind,
    status: String,
    number: Option<String>,
    voucher_date: String,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
    version: u64,
    address: Address,
    line_items: Vec<LineItem>,
    tax_type: String,
    net: Decimal,
    gross: Decimal,
    tax: Decimal,
    title: Option<String>,
    introduction: Option<String>,
    remark: Option<String>,
    related: Vec<RelatedVoucher>,
    payment_items: Vec<PaymentItem>,
}

impl FakeVoucher {
    fn open_amount(&self) -> Decimal {
        let settled: Decimal = self
            .payment_items
            .iter()
            .filter_map(|p| p.amount)
            .map(|a| a.abs())
            .sum();
        (self.gross - settled).max(Decimal::ZERO)
    }

    fn read_model(&self, org: &str) -> Value {
        let mut v = json!({
            "id": self.id,
            "organizationId": org,
            "createdDate": format_datetime(self.created),
            "updatedDate": format_datetime(self.updated),
            "version": self.version,
            "language": "de",
            "archived": false,
            "voucherStatus": self.status,
            "voucherDate": self.voucher_date,
            "address": self.address,
            "lineItems": self.line_items,
            "totalPrice": {
                "currency": "EUR",
                "totalNetAmount": self.net,
                "totalGrossAmount": self.gross,
                "totalTaxAmount": self.tax,
            },
            "taxConditions": {"taxType": self.tax_type},
            "relatedVouchers": self.related,
            "electronicDocumentProfile": "NONE",
        });
        if let Some(n) = &self.number {
            v["voucherNumber"] = json!(n);
        }
        for (k, val) in [
            ("title", &self.title),
            ("introduction", &self.introduction),
            ("remark", &self.remark),
        ] {
            if let Some(s) = val {
                v[k] = json!(s);
            }
        }
        // Amounts as JSON numbers, like lexoffice.
        if let Some(t) = v.get_mut("totalPrice") {
            for k in ["totalNetAmount", "totalGrossAmount", "totalTaxAmount"] {
                if let Some(x) = t.get(k).and_then(wire::to_decimal) {
                    t[k] = number(x);
                }
            }
        }
        v
    }

    fn list_row(&self) -> Value {
        json!({
            "id": self.id,
            "voucherType": self.kind.voucher_type(),
            "voucherStatus": self.status,
            "voucherNumber": self.number,
            "voucherDate": self.voucher_date,
            "createdDate": format_datetime(self.created),
            "updatedDate": format_datetime(self.updated),
            "dueDate": Value::Null,
            "contactId": Value::Null,
            "contactName": self.address.name,
            "totalAmount": number(self.gross),
            "openAmount": match self.kind {
                Kind::OrderConfirmation => Value::Null,
                _ => number(self.open_amount()),
            },
            "currency": "EUR",
            "archived": false,
        })
    }
}

fn number(d: Decimal) -> Value {
    serde_json::to_value(DecimalNumber(d)).unwrap_or(Value::Null)
}

struct DecimalNumber(Decimal);

impl Serialize for DecimalNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        wire::decimal_number::serialize(&self.0, s)
    }
}

/// One organization.
#[derive(Debug)]
struct Account {
    organization_id: String,
    articles: Vec<Article>,
    vouchers: Vec<FakeVoucher>,
    subscriptions: Vec<Subscription>,
    next_number: HashMap<Kind, u32>,
}

impl Account {
    fn new() -> Self {
        Self {
            organization_id: Uuid::new_v4().to_string(),
            articles: Vec::new(),
            vouchers: Vec::new(),
            subscriptions: Vec::new(),
            next_number: HashMap::new(),
        }
    }

    fn number(&mut self, kind: Kind) -> String {
        let n = self.next_number.entry(kind).or_insert(0);
        *n += 1;
        format!("{}{:04}", kind.prefix(), n)
    }

    fn voucher(&self, id: &str) -> Option<&FakeVoucher> {
        self.vouchers.iter().find(|v| v.id == id)
    }

    fn voucher_mut(&mut self, id: &str) -> Option<&mut FakeVoucher> {
        self.vouchers.iter_mut().find(|v| v.id == id)
    }

    fn relate(&mut self, a: &str, b: &str) {
        let info = |acc: &Account, id: &str| {
            acc.voucher(id).map(|v| RelatedVoucher {
                id: v.id.clone(),
                voucher_number: v.number.clone(),
                voucher_type: v.kind.voucher_type().to_owned(),
            })
        };
        let (Some(ra), Some(rb)) = (info(self, a), info(self, b)) else {
            return;
        };
        if let Some(v) = self.voucher_mut(a) {
            v.related.push(rb);
        }
        if let Some(v) = self.voucher_mut(b) {
            v.related.push(ra);
        }
    }

    /// Refreshes the numbers other vouchers show for `id` in their `relatedVouchers`.
    fn refresh_related(&mut self, id: &str) {
        let Some(number) = self.voucher(id).map(|v| v.number.clone()) else {
            return;
        };
        for v in &mut self.vouchers {
            for r in v.related.iter_mut().filter(|r| r.id == id) {
                r.voucher_number = number.clone();
            }
        }
    }
}

/// What the fake counts (the tests check the client never creates fiscal documents).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// `POST /v1/order-confirmations` that created one.
    pub order_confirmations_created: u64,
    /// `POST /v1/invoices` calls (any outcome): the client must never make one.
    pub invoice_posts: u64,
    /// `POST /v1/credit-notes` calls (any outcome): the client must never make one.
    pub credit_note_posts: u64,
    /// Invoices the merchant made (control API).
    pub invoices_by_merchant: u64,
    /// Credit notes the merchant made (control API).
    pub credit_notes_by_merchant: u64,
    /// Webhook deliveries answered 2xx.
    pub webhooks_delivered: u64,
}

#[derive(Debug, Default)]
struct FakeState {
    accounts: HashMap<String, Account>,
    counts: Counts,
    garbage_pdf_next: u32,
    rate_limit_500_next: u32,
    /// Flips on every payments read: `openAmount` as a number, then as a string.
    open_amount_as_string: bool,
}

/// The fake lexoffice server.
#[derive(Debug)]
pub struct LexofficeFake {
    harness: Harness,
    state: Mutex<FakeState>,
    client: Option<reqwest::Client>,
}

/// An article to put on the fake directly (as if the merchant created it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeedArticle {
    pub api_key: Option<String>,
    pub article_number: String,
    pub title: String,
    /// With `leading_price = "GROSS"` (default) the gross price; the net one is derived.
    pub gross_price: Option<Decimal>,
    pub net_price: Option<Decimal>,
    /// `GROSS` (default) or `NET`.
    pub leading_price: Option<String>,
    /// Default 19.
    pub tax_rate: Option<Decimal>,
    pub unit_name: Option<String>,
    pub archived: bool,
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let key = v.strip_prefix("Bearer ")?.trim();
    (!key.is_empty()).then(|| key.to_owned())
}

fn account_of(req: &Request) -> Option<String> {
    bearer(req.headers())
}

fn error_response(
    status: StatusCode,
    path: &str,
    message: &str,
    details: Vec<ErrorDetail>,
) -> Response {
    let body = json!({
        "timestamp": format_datetime(Utc::now()),
        "status": status.as_u16(),
        "error": status.canonical_reason().unwrap_or(""),
        "path": path,
        "traceId": Uuid::new_v4().simple().to_string()[..16].to_owned(),
        "message": message,
        "details": details,
    });
    (status, Json(body)).into_response()
}

fn detail(violation: &str, field: impl Into<String>, message: impl Into<String>) -> ErrorDetail {
    ErrorDetail {
        violation: Some(violation.to_owned()),
        field: Some(field.into()),
        message: Some(message.into()),
    }
}

fn not_found(path: &str) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        path,
        "Ressource nicht gefunden",
        vec![],
    )
}

fn over_limit(_kind: LimitKind, _wait: Duration) -> Response {
    let body = json!({
        "status": 429,
        "error": "Too Many Requests",
        "message": "Rate limit exceeded",
    });
    (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response()
}

fn lock(m: &Mutex<FakeState>) -> MutexGuard<'_, FakeState> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A validated voucher body.
struct Validated {
    voucher_date: String,
    address: Address,
    line_items: Vec<LineItem>,
    tax_type: String,
    net: Decimal,
    gross: Decimal,
    tax: Decimal,
    title: Option<String>,
    introduction: Option<String>,
    remark: Option<String>,
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn dec_field(v: &Value, key: &str) -> Option<Decimal> {
    v.get(key)
        .filter(|x| !x.is_null())
        .and_then(wire::to_decimal)
}

/// Validates a sales voucher body as lexoffice does, computing the totals.
fn validate_voucher(v: &Value, articles: &[Article]) -> Result<Validated, Vec<ErrorDetail>> {
    let mut errs = Vec::new();
    const NOT_EMPTY: &str = "darf nicht leer sein";
    let voucher_date = match str_field(v, "voucherDate") {
        None => {
            errs.push(detail("NOTNULL", "voucherDate", NOT_EMPTY));
            String::new()
        }
        Some(s) if parse_datetime(s).is_none() => {
            errs.push(detail(
                "PATTERN",
                "voucherDate",
                format!("Ungültiges Datumsformat '{s}', erwartet yyyy-MM-dd'T'HH:mm:ss.SSSXXX"),
            ));
            String::new()
        }
        Some(s) => s.to_owned(),
    };
    let address: Address = match v.get("address") {
        Some(a) if a.is_object() => serde_json::from_value(a.clone()).unwrap_or_default(),
        _ => {
            errs.push(detail("NOTNULL", "address", NOT_EMPTY));
            Address::default()
        }
    };
    if v.get("address").is_some_and(Value::is_object) && address.contact_id.is_none() {
        if address.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
            errs.push(detail("NOTNULL", "address.name", NOT_EMPTY));
        }
        match address.country_code.as_deref() {
            None => errs.push(detail("NOTNULL", "address.countryCode", NOT_EMPTY)),
            Some(c) if !COUNTRIES.contains(&c) => errs.push(detail(
                "VALID_COUNTRY",
                "address.countryCode",
                format!(
                    "Ländercode '{c}' wird nicht unterstützt. Unterstützte Ländercodes: {}",
                    COUNTRIES.join(", ")
                ),
            )),
            Some(_) => {}
        }
    }
    let tax_type = v
        .get("taxConditions")
        .and_then(|t| str_field(t, "taxType"))
        .unwrap_or("")
        .to_owned();
    if tax_type.is_empty() {
        errs.push(detail("NOTNULL", "taxConditions.taxType", NOT_EMPTY));
    } else if !TAX_TYPES.contains(&tax_type.as_str()) {
        errs.push(detail(
            "ENUM",
            "taxConditions.taxType",
            format!("Unbekannter Steuertyp '{tax_type}'"),
        ));
    }
    match v.get("totalPrice").and_then(|t| str_field(t, "currency")) {
        None => errs.push(detail("NOTNULL", "totalPrice.currency", NOT_EMPTY)),
        Some("EUR") => {}
        Some(c) => errs.push(detail(
            "CURRENCY",
            "totalPrice.currency",
            format!("Währung '{c}' wird nicht unterstützt; es ist nur EUR erlaubt"),
        )),
    }
    if let Some(sc) = v.get("shippingConditions") {
        let st = str_field(sc, "shippingType").unwrap_or("");
        if !SHIPPING_TYPES.contains(&st) {
            errs.push(detail(
                "ENUM",
                "shippingConditions.shippingType",
                format!("Unbekannte Lieferart '{st}'"),
            ));
        }
        if st != "none" {
            match str_field(sc, "shippingDate") {
                None => errs.push(detail(
                    "NOTNULL",
                    "shippingConditions.shippingDate",
                    NOT_EMPTY,
                )),
                Some(d) if parse_datetime(d).is_none() => errs.push(detail(
                    "PATTERN",
                    "shippingConditions.shippingDate",
                    format!("Ungültiges Datumsformat '{d}', erwartet yyyy-MM-dd'T'HH:mm:ss.SSSXXX"),
                )),
                Some(_) => {}
            }
        }
    } else {
        errs.push(detail("NOTNULL", "shippingConditions", NOT_EMPTY));
    }
    let items = v.get("lineItems").and_then(Value::as_array);
    let mut lines = Vec::new();
    // Per VAT rate: the sum of line amounts (gross or net per taxType).
    let mut groups: Vec<(Decimal, Decimal)> = Vec::new();
    match items {
        None => errs.push(detail("NOTNULL", "lineItems", NOT_EMPTY)),
        Some(list) if list.is_empty() || list.len() > 300 => errs.push(detail(
            "SIZE",
            "lineItems",
            "Anzahl muss zwischen 1 und 300 liegen",
        )),
        Some(list) => {
            for (i, item) in list.iter().enumerate() {
                let f = |k: &str| format!("lineItems[{i}].{k}");
                let kind = str_field(item, "type").unwrap_or("");
                let name = str_field(item, "name").unwrap_or("").trim().to_owned();
                match kind {
                    "text" => {
                        if name.is_empty() {
                            errs.push(detail("NOTNULL", f("name"), NOT_EMPTY));
                        }
                        lines.push(LineItem {
                            kind: "text".into(),
                            id: None,
                            name,
                            description: str_field(item, "description").map(str::to_owned),
                            quantity: None,
                            unit_name: None,
                            unit_price: None,
                            discount_percentage: None,
                            line_item_amount: None,
                        });
                        continue;
                    }
                    "custom" | "material" | "service" => {}
                    other => {
                        errs.push(detail(
                            "ENUM",
                            f("type"),
                            format!("Unbekannter Positionstyp '{other}'"),
                        ));
                        continue;
                    }
                }
                let mut article_unit = None;
                if kind != "custom" {
                    match str_field(item, "id") {
                        Some(id) if articles.iter().any(|a| a.id == id) => {
                            article_unit = articles
                                .iter()
                                .find(|a| a.id == id)
                                .and_then(|a| a.unit_name.clone());
                        }
                        _ => errs.push(detail("NOTFOUND", f("id"), "Artikel wurde nicht gefunden")),
                    }
                }
                if name.is_empty() {
                    errs.push(detail("NOTNULL", f("name"), NOT_EMPTY));
                }
                let qty = dec_field(item, "quantity");
                match qty {
                    None => errs.push(detail("NOTNULL", f("quantity"), NOT_EMPTY)),
                    Some(q) if q <= Decimal::ZERO => {
                        errs.push(detail("POSITIVE", f("quantity"), "muss größer als 0 sein"))
                    }
                    Some(q) if q.normalize().scale() > 4 => errs.push(detail(
                        "DIGITS",
                        f("quantity"),
                        "höchstens 4 Nachkommastellen erlaubt",
                    )),
                    Some(_) => {}
                }
                let unit_name = str_field(item, "unitName")
                    .map(str::to_owned)
                    .or(article_unit);
                if kind == "custom" && unit_name.as_deref().is_none_or(|u| u.trim().is_empty()) {
                    errs.push(detail("NOTNULL", f("unitName"), NOT_EMPTY));
                }
                let Some(up) = item.get("unitPrice").filter(|u| u.is_object()) else {
                    errs.push(detail("NOTNULL", f("unitPrice"), NOT_EMPTY));
                    continue;
                };
                match str_field(up, "currency") {
                    Some("EUR") => {}
                    None => errs.push(detail("NOTNULL", f("unitPrice.currency"), NOT_EMPTY)),
                    Some(c) => errs.push(detail(
                        "CURRENCY",
                        f("unitPrice.currency"),
                        format!("Währung '{c}' wird nicht unterstützt; es ist nur EUR erlaubt"),
                    )),
                }
                let rate = dec_field(up, "taxRatePercentage");
                match rate {
                    None => errs.push(detail(
                        "NOTNULL",
                        f("unitPrice.taxRatePercentage"),
                        NOT_EMPTY,
                    )),
                    Some(r) if !TAX_RATES.iter().any(|t| Decimal::from(*t) == r) => {
                        errs.push(detail(
                            "TAX_RATE",
                            f("unitPrice.taxRatePercentage"),
                            format!(
                                "Der Steuersatz {} % ist zum Belegdatum nicht gültig (erlaubt: 0, 7, 19)",
                                r.normalize()
                            ),
                        ))
                    }
                    Some(_) => {}
                }
                let gross_side = tax_type == "gross";
                let (key, amount) = if gross_side {
                    ("grossAmount", dec_field(up, "grossAmount"))
                } else {
                    ("netAmount", dec_field(up, "netAmount"))
                };
                match amount {
                    None => errs.push(detail("NOTNULL", f(&format!("unitPrice.{key}")), NOT_EMPTY)),
                    Some(a) if a.normalize().scale() > 4 => errs.push(detail(
                        "DIGITS",
                        f(&format!("unitPrice.{key}")),
                        "höchstens 4 Nachkommastellen erlaubt",
                    )),
                    Some(_) => {}
                }
                let discount = dec_field(item, "discountPercentage").unwrap_or_default();
                if discount < Decimal::ZERO || discount > Decimal::ONE_HUNDRED {
                    errs.push(detail(
                        "RANGE",
                        f("discountPercentage"),
                        "muss zwischen 0 und 100 liegen",
                    ));
                }
                let (Some(q), Some(a), Some(r)) = (qty, amount, rate) else {
                    continue;
                };
                let r = if tax_type == "vatfree" {
                    Decimal::ZERO
                } else {
                    r
                };
                let factor = Decimal::ONE - discount / Decimal::ONE_HUNDRED;
                let line_amount = round2(q * a * factor);
                match groups.iter_mut().find(|(gr, _)| *gr == r) {
                    Some((_, sum)) => *sum += line_amount,
                    None => groups.push((r, line_amount)),
                }
                let one = Decimal::ONE + r / Decimal::ONE_HUNDRED;
                let (net_amount, gross_amount) = if gross_side {
                    (round_unit(a / one), a)
                } else {
                    (a, round_unit(a * one))
                };
                lines.push(LineItem {
                    kind: kind.to_owned(),
                    id: str_field(item, "id").map(str::to_owned),
                    name,
                    description: str_field(item, "description").map(str::to_owned),
                    quantity: Some(q),
                    unit_name,
                    unit_price: Some(wire::UnitPrice {
                        currency: "EUR".into(),
                        net_amount: Some(net_amount),
                        gross_amount: Some(gross_amount),
                        tax_rate_percentage: Some(r),
                    }),
                    discount_percentage: (discount > Decimal::ZERO).then_some(discount),
                    line_item_amount: Some(line_amount),
                });
            }
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let (mut net, mut gross, mut tax) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    for (r, sum) in groups {
        let one = Decimal::ONE + r / Decimal::ONE_HUNDRED;
        if tax_type == "gross" {
            let t = round2(sum - sum / one);
            gross += sum;
            tax += t;
            net += sum - t;
        } else {
            let t = round2(sum * r / Decimal::ONE_HUNDRED);
            net += sum;
            tax += t;
            gross += sum + t;
        }
    }
    let text = |k: &str| str_field(v, k).map(str::to_owned);
    Ok(Validated {
        voucher_date,
        address,
        line_items: lines,
        tax_type,
        net,
        gross,
        tax,
        title: text("title"),
        introduction: text("introduction"),
        remark: text("remark"),
    })
}

fn parse_list_date(q: &HashMap<String, String>, key: &str) -> Result<Option<NaiveDate>, String> {
    match q.get(key) {
        None => Ok(None),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| format!("Parameter '{key}' muss dem Format yyyy-MM-dd entsprechen")),
    }
}

fn page_params(q: &HashMap<String, String>, path: &str) -> Result<(u64, u64), Response> {
    let bad = |m: &str| error_response(StatusCode::BAD_REQUEST, path, m, vec![]);
    let page = match q.get("page") {
        None => 0,
        Some(p) => p
            .parse::<u64>()
            .map_err(|_| bad("Parameter 'page' ist keine Zahl"))?,
    };
    let size = match q.get("size") {
        None => 25,
        Some(s) => s
            .parse::<u64>()
            .map_err(|_| bad("Parameter 'size' ist keine Zahl"))?
            .clamp(1, 250),
    };
    Ok((page, size))
}

fn page_of(all: Vec<Value>, page: u64, size: u64) -> Value {
    let total = all.len() as u64;
    let total_pages = total.div_ceil(size);
    let content: Vec<Value> = all
        .into_iter()
        .skip((page * size) as usize)
        .take(size as usize)
        .collect();
    json!({
        "content": content,
        "first": page == 0,
        "last": page + 1 >= total_pages,
        "totalPages": total_pages,
        "totalElements": total,
        "numberOfElements": content.len(),
        "size": size,
        "number": page,
        "sort": [],
    })
}

impl LexofficeFake {
    /// A fake with the demo organization, limited to 2 requests/s per key.
    pub fn new() -> Arc<Self> {
        let harness = Harness::new(account_of, over_limit);
        harness.set_limits(Limits {
            rate: Some(RateRule {
                count: 2,
                per_ms: 1000,
            }),
            concurrency: None,
        });
        let mut state = FakeState::default();
        state
            .accounts
            .insert(DEMO_API_KEY.to_owned(), Account::new());
        // Fails only when another provider was installed first, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .ok();
        Arc::new(Self {
            harness,
            state: Mutex::new(state),
            client,
        })
    }

    pub fn harness(&self) -> &Harness {
        &self.harness
    }

    /// What the fake counted.
    pub fn counts(&self) -> Counts {
        lock(&self.state).counts.clone()
    }

    /// Adds an organization with its own API key (no-op if it exists).
    pub fn add_account(&self, api_key: &str) {
        lock(&self.state)
            .accounts
            .entry(api_key.to_owned())
            .or_insert_with(Account::new);
    }

    /// The organization id of an account.
    pub fn organization_id(&self, api_key: &str) -> Option<String> {
        lock(&self.state)
            .accounts
            .get(api_key)
            .map(|a| a.organization_id.clone())
    }

    /// The next `/file` download answers 200 with a JSON body instead of the PDF.
    pub fn garbage_pdf_next(&self) {
        lock(&self.state).garbage_pdf_next += 1;
    }

    /// The next API call answers `500 "Internal server error or rate limit exceeded"`.
    pub fn rate_limit_500_next(&self) {
        lock(&self.state).rate_limit_500_next += 1;
    }

    fn with_account<T>(
        &self,
        api_key: &str,
        f: impl FnOnce(&mut Account, &mut Counts) -> T,
    ) -> Result<T, String> {
        let mut st = lock(&self.state);
        let FakeState {
            accounts, counts, ..
        } = &mut *st;
        let acc = accounts
            .get_mut(api_key)
            .ok_or_else(|| "no account with that API key".to_owned())?;
        Ok(f(acc, counts))
    }

    /// Puts an article on the fake; returns its id.
    pub fn seed_article(&self, s: &SeedArticle) -> Result<String, String> {
        if s.article_number.trim().is_empty() {
            return Err("article_number is required".into());
        }
        let key = s.api_key.clone().unwrap_or_else(|| DEMO_API_KEY.to_owned());
        let rate = s.tax_rate.unwrap_or(Decimal::from(19));
        let one = Decimal::ONE + rate / Decimal::ONE_HUNDRED;
        let leading = s
            .leading_price
            .clone()
            .unwrap_or_else(|| "GROSS".into())
            .to_ascii_uppercase();
        let (net, gross) = match (leading.as_str(), s.gross_price, s.net_price) {
            ("GROSS", Some(g), n) => (n.unwrap_or_else(|| round2(g / one)), g),
            ("NET", g, Some(n)) => (n, g.unwrap_or_else(|| round2(n * one))),
            _ => return Err("a GROSS article needs gross_price, a NET one net_price".into()),
        };
        self.with_account(&key, |acc, _| {
            let id = Uuid::new_v4().to_string();
            acc.articles
                .retain(|a| a.article_number.as_deref() != Some(s.article_number.as_str()));
            acc.articles.push(Article {
                id: id.clone(),
                organization_id: Some(acc.organization_id.clone()),
                archived: s.archived,
                title: if s.title.is_empty() {
                    s.article_number.clone()
                } else {
                    s.title.clone()
                },
                description: None,
                kind: "PRODUCT".into(),
                article_number: Some(s.article_number.clone()),
                gtin: None,
                unit_name: Some(s.unit_name.clone().unwrap_or_else(|| "Stück".into())),
                price: ArticlePrice {
                    net_price: Some(net),
                    gross_price: Some(gross),
                    leading_price: leading.clone(),
                    tax_rate: rate,
                },
                version: 1,
            });
            id
        })
    }

    /// The read models of the vouchers whose remark names `order_id`.
    pub fn documents_for_order(&self, api_key: &str, order_id: &str) -> Vec<Value> {
        self.with_account(api_key, |acc, _| {
            acc.vouchers
                .iter()
                .filter(|v| remark_names_order(v.remark.as_deref(), order_id))
                .map(|v| {
                    let mut m = v.read_model(&acc.organization_id);
                    m["voucherType"] = json!(v.kind.voucher_type());
                    m
                })
                .collect()
        })
        .unwrap_or_default()
    }

    /// The read model of a voucher, by id.
    pub fn voucher_json(&self, api_key: &str, id: &str) -> Option<Value> {
        self.with_account(api_key, |acc, _| {
            acc.voucher(id).map(|v| {
                let mut m = v.read_model(&acc.organization_id);
                m["voucherType"] = json!(v.kind.voucher_type());
                m
            })
        })
        .ok()
        .flatten()
    }

    /// The merchant turns an order confirmation into an invoice (finalized: `open` with a
    /// number; else a draft). Returns `(id, number)`.
    pub fn invoice_order_confirmation(
        &self,
        api_key: &str,
        oc_id: &str,
        finalize: bool,
    ) -> Result<(String, Option<String>), String> {
        self.with_account(api_key, |acc, counts| {
            let oc = acc
                .voucher(oc_id)
                .filter(|v| v.kind == Kind::OrderConfirmation)
                .cloned()
                .ok_or_else(|| format!("no order confirmation {oc_id}"))?;
            let now = Utc::now();
            let number = finalize.then(|| acc.number(Kind::Invoice));
            let inv = FakeVoucher {
                id: Uuid::new_v4().to_string(),
                kind: Kind::Invoice,
                status: if finalize { "open" } else { "draft" }.into(),
                number: number.clone(),
                voucher_date: format_datetime(now),
                created: now,
                updated: now,
                version: 0,
                related: Vec::new(),
                payment_items: Vec::new(),
                ..oc
            };
            let id = inv.id.clone();
            acc.vouchers.push(inv);
            acc.relate(oc_id, &id);
            counts.invoices_by_merchant += 1;
            Ok((id, number))
        })?
    }

    /// The merchant finalizes a draft invoice (it gets its number).
    pub fn finalize_invoice(&self, api_key: &str, id: &str) -> Result<String, String> {
        self.with_account(api_key, |acc, _| {
            let kind = acc.voucher(id).map(|v| (v.kind, v.status.clone()));
            match kind {
                Some((Kind::Invoice, s)) if s == "draft" => {
                    let n = acc.number(Kind::Invoice);
                    if let Some(v) = acc.voucher_mut(id) {
                        v.status = "open".into();
                        v.number = Some(n.clone());
                        v.updated = Utc::now();
                        v.version += 1;
                    }
                    acc.refresh_related(id);
                    Ok(n)
                }
                Some((Kind::Invoice, s)) => Err(format!("invoice {id} is {s}, not a draft")),
                _ => Err(format!("no invoice {id}")),
            }
        })?
    }

    /// The merchant issues a credit note for an invoice (open, numbered, settling the
    /// invoice). Returns `(id, number)`.
    pub fn credit_invoice(
        &self,
        api_key: &str,
        invoice_id: &str,
    ) -> Result<(String, String), String> {
        self.with_account(api_key, |acc, counts| {
            let inv = acc
                .voucher(invoice_id)
                .filter(|v| v.kind == Kind::Invoice)
                .cloned()
                .ok_or_else(|| format!("no invoice {invoice_id}"))?;
            if inv.status == "draft" {
                return Err(format!(
                    "invoice {invoice_id} is a draft; it cannot be credited"
                ));
            }
            let now = Utc::now();
            let number = acc.number(Kind::CreditNote);
            let cn = FakeVoucher {
                id: Uuid::new_v4().to_string(),
                kind: Kind::CreditNote,
                status: "open".into(),
                number: Some(number.clone()),
                voucher_date: format_datetime(now),
                created: now,
                updated: now,
                version: 0,
                related: Vec::new(),
                payment_items: Vec::new(),
                introduction: Some(format!(
                    "Gutschrift zur Rechnung {}",
                    inv.number.clone().unwrap_or_default()
                )),
                ..inv.clone()
            };
            let id = cn.id.clone();
            acc.vouchers.push(cn);
            acc.relate(invoice_id, &id);
            if let Some(v) = acc.voucher_mut(invoice_id) {
                let open = v.open_amount();
                v.payment_items.push(PaymentItem {
                    payment_item_type: Some("creditNote".into()),
                    posting_date: Some(format_datetime(now)),
                    amount: Some(open),
                    currency: Some("EUR".into()),
                });
                v.status = "paid".into();
                v.updated = now;
            }
            counts.credit_notes_by_merchant += 1;
            Ok((id, number))
        })?
    }

    /// POSTs a signed event to every callback subscribed to `event_type` in the account;
    /// returns `(callback URL, HTTP status or error)` per delivery.
    pub async fn fire_webhook(
        &self,
        api_key: &str,
        event_type: &str,
        resource_id: &str,
    ) -> Result<Vec<(String, Result<u16, String>)>, String> {
        let (org, urls) = self.with_account(api_key, |acc, _| {
            (
                acc.organization_id.clone(),
                acc.subscriptions
                    .iter()
                    .filter(|s| s.event_type == event_type)
                    .map(|s| s.callback_url.clone())
                    .collect::<Vec<_>>(),
            )
        })?;
        let client = self.client.as_ref().ok_or("the fake has no HTTP client")?;
        let body = serde_json::to_vec(&wire::WebhookBody {
            organization_id: org,
            event_type: event_type.to_owned(),
            resource_id: resource_id.to_owned(),
            event_date: format_datetime(Utc::now()),
        })
        .map_err(|e| e.to_string())?;
        let signature = sign_webhook_body(&body);
        let mut out = Vec::new();
        for url in urls {
            let r = client
                .post(&url)
                .header(header::CONTENT_TYPE, "application/json")
                .header(super::webhook::SIGNATURE_HEADER, &signature)
                .body(body.clone())
                .send()
                .await;
            let r = match r {
                Ok(resp) => {
                    if resp.status().is_success() {
                        lock(&self.state).counts.webhooks_delivered += 1;
                    }
                    Ok(resp.status().as_u16())
                }
                Err(e) => Err(e.to_string()),
            };
            out.push((url, r));
        }
        Ok(out)
    }

    /// Demo articles in the demo organization.
    pub fn seed_demo(&self) {
        self.seed_demo_for(DEMO_API_KEY);
    }

    /// The demo articles in the organization of `api_key` (added if missing).
    pub fn seed_demo_for(&self, api_key: &str) {
        self.add_account(api_key);
        let demo = [
            ("MUG-BLUE", "Tasse blau", 1290, "GROSS"),
            ("LAMP-DESK", "Schreibtischlampe", 4990, "GROSS"),
            ("CHAIR-OAK", "Stuhl Eiche", 12900, "NET"),
        ];
        for (number, title, cents, leading) in demo {
            let price = Decimal::new(cents, 2);
            let (gross_price, net_price) = if leading == "GROSS" {
                (Some(price), None)
            } else {
                (None, Some(price))
            };
            let _ = self.seed_article(&SeedArticle {
                api_key: Some(api_key.to_owned()),
                article_number: number.into(),
                title: title.into(),
                gross_price,
                net_price,
                leading_price: Some(leading.into()),
                ..SeedArticle::default()
            });
        }
    }

    /// Authenticates an API call: the account key, or the answer to give instead.
    fn auth(&self, headers: &HeaderMap, path: &str) -> Result<String, Response> {
        let unauthorized = || {
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"message": "Unauthorized"})),
            )
                .into_response()
        };
        let key = bearer(headers).ok_or_else(unauthorized)?;
        let mut st = lock(&self.state);
        if !st.accounts.contains_key(&key) {
            return Err(unauthorized());
        }
        if st.rate_limit_500_next > 0 {
            st.rate_limit_500_next -= 1;
            return Err(error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                path,
                "Internal server error or rate limit exceeded",
                vec![],
            ));
        }
        Ok(key)
    }

    pub fn router(self: &Arc<Self>) -> Router {
        let api = Router::new()
            .route("/v1/articles", get(list_articles))
            .route("/v1/articles/{id}", get(get_article))
            .route("/v1/order-confirmations", post(create_order_confirmation))
            .route("/v1/order-confirmations/{id}", get(get_order_confirmation))
            .route(
                "/v1/order-confirmations/{id}/file",
                get(file_order_confirmation),
            )
            .route("/v1/invoices", post(create_invoice))
            .route("/v1/invoices/{id}", get(get_invoice))
            .route("/v1/invoices/{id}/file", get(file_invoice))
            .route("/v1/credit-notes", post(create_credit_note))
            .route("/v1/credit-notes/{id}", get(get_credit_note))
            .route("/v1/credit-notes/{id}/file", get(file_credit_note))
            .route("/v1/voucherlist", get(voucherlist))
            .route("/v1/payments/{id}", get(payments))
            .route(
                "/v1/event-subscriptions",
                get(list_subscriptions).post(create_subscription),
            )
            .route(
                "/v1/event-subscriptions/{id}",
                get(get_subscription).delete(delete_subscription),
            )
            .fallback(fallback);
        let control = Router::new()
            .route("/_control/lexoffice/accounts", post(ctl_account))
            .route("/_control/lexoffice/articles", post(ctl_article))
            .route(
                "/_control/lexoffice/orders/{order_id}/documents",
                get(ctl_documents),
            )
            .route(
                "/_control/lexoffice/order-confirmations/{id}/invoice",
                post(ctl_invoice),
            )
            .route(
                "/_control/lexoffice/invoices/{id}/finalize",
                post(ctl_finalize),
            )
            .route(
                "/_control/lexoffice/invoices/{id}/credit-note",
                post(ctl_credit),
            )
            .route("/_control/lexoffice/webhooks/fire", post(ctl_fire))
            .route("/_control/lexoffice/counts", get(ctl_counts))
            .route("/_control/lexoffice/garbage_pdf_next", post(ctl_garbage))
            .route(
                "/_control/lexoffice/rate_limit_500_next",
                post(ctl_rate_500),
            )
            .route("/_control/lexoffice/seed_demo", post(ctl_seed_demo));
        let app = Router::new()
            .merge(api)
            .merge(control)
            .with_state(Arc::clone(self));
        wrap(app, &self.harness)
    }
}

type Fake = State<Arc<LexofficeFake>>;
type Answer = Result<Response, Response>;

// ---------------------------------------------------------------------------------------------
// Articles

async fn list_articles(
    State(f): Fake,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let path = uri.path();
    let key = f.auth(&headers, path)?;
    let (page, size) = page_params(&q, path)?;
    let all = f
        .with_account(&key, |acc, _| {
            let mut list: Vec<&Article> = acc
                .articles
                .iter()
                .filter(|a| {
                    q.get("articleNumber")
                        .is_none_or(|n| a.article_number.as_deref() == Some(n.as_str()))
                        && q.get("gtin")
                            .is_none_or(|g| a.gtin.as_deref() == Some(g.as_str()))
                        && q.get("type").is_none_or(|t| a.kind.eq_ignore_ascii_case(t))
                })
                .collect();
            list.sort_by(|a, b| a.title.cmp(&b.title).then(a.id.cmp(&b.id)));
            list.iter()
                .map(|a| serde_json::to_value(a).unwrap_or(Value::Null))
                .collect::<Vec<_>>()
        })
        .map_err(|_| not_found(path))?;
    Ok(Json(page_of(all, page, size)).into_response())
}

async fn get_article(
    State(f): Fake,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Answer {
    let path = uri.path();
    let key = f.auth(&headers, path)?;
    f.with_account(&key, |acc, _| {
        acc.articles
            .iter()
            .find(|a| a.id == id)
            .map(|a| Json(a.clone()).into_response())
    })
    .ok()
    .flatten()
    .ok_or_else(|| not_found(path))
}

// ---------------------------------------------------------------------------------------------
// Sales vouchers

async fn create_voucher(
    f: &LexofficeFake,
    headers: &HeaderMap,
    path: &str,
    kind: Kind,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Answer {
    let key = f.auth(headers, path)?;
    {
        let mut st = lock(&f.state);
        match kind {
            Kind::Invoice => st.counts.invoice_posts += 1,
            Kind::CreditNote => st.counts.credit_note_posts += 1,
            Kind::OrderConfirmation => {}
        }
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        error_response(
            StatusCode::BAD_REQUEST,
            path,
            &format!("Malformed JSON request: {e}"),
            vec![],
        )
    })?;
    let finalize =
        kind != Kind::OrderConfirmation && q.get("finalize").is_some_and(|s| s == "true");
    let preceding = q.get("precedingSalesVoucherId").cloned();
    let result = f.with_account(&key, |acc, counts| {
        let checked = validate_voucher(&v, &acc.articles).map_err(|d| {
            error_response(
                StatusCode::NOT_ACCEPTABLE,
                path,
                "Validation failed for request. Please see details list for specific causes.",
                d,
            )
        })?;
        if let Some(p) = &preceding {
            match acc.voucher(p) {
                None => {
                    return Err(error_response(
                        StatusCode::NOT_ACCEPTABLE,
                        path,
                        "Der vorangehende Beleg wurde nicht gefunden",
                        vec![detail(
                            "NOTFOUND",
                            "precedingSalesVoucherId",
                            "nicht gefunden",
                        )],
                    ));
                }
                Some(pv) if pv.status == "draft" && pv.kind == Kind::Invoice => {
                    return Err(error_response(
                        StatusCode::NOT_ACCEPTABLE,
                        path,
                        "Ein Rechnungsentwurf kann nicht fortgeführt werden",
                        vec![],
                    ));
                }
                Some(_) => {}
            }
        }
        let now = Utc::now();
        let number = finalize.then(|| acc.number(kind));
        let voucher = FakeVoucher {
            id: Uuid::new_v4().to_string(),
            kind,
            status: if finalize { "open" } else { "draft" }.into(),
            number,
            voucher_date: checked.voucher_date,
            created: now,
            updated: now,
            version: 0,
            address: checked.address,
            line_items: checked.line_items,
            tax_type: checked.tax_type,
            net: checked.net,
            gross: checked.gross,
            tax: checked.tax,
            title: checked.title,
            introduction: checked.introduction,
            remark: checked.remark,
            related: Vec::new(),
            payment_items: Vec::new(),
        };
        let id = voucher.id.clone();
        acc.vouchers.push(voucher);
        if let Some(p) = &preceding {
            acc.relate(p, &id);
        }
        if kind == Kind::OrderConfirmation {
            counts.order_confirmations_created += 1;
        }
        let body = json!({
            "id": id,
            "resourceUri": format!("https://api.lexware.io/v1/{}/{id}", kind.collection()),
            "createdDate": format_datetime(now),
            "updatedDate": format_datetime(now),
            "version": 0,
        });
        Ok((StatusCode::CREATED, Json(body)).into_response())
    });
    match result {
        Ok(r) => r,
        Err(_) => Err(not_found(path)),
    }
}

async fn create_order_confirmation(
    State(f): Fake,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Answer {
    create_voucher(&f, &headers, uri.path(), Kind::OrderConfirmation, &q, &body).await
}

async fn create_invoice(
    State(f): Fake,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Answer {
    create_voucher(&f, &headers, uri.path(), Kind::Invoice, &q, &body).await
}

async fn create_credit_note(
    State(f): Fake,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Answer {
    create_voucher(&f, &headers, uri.path(), Kind::CreditNote, &q, &body).await
}

fn get_voucher(f: &LexofficeFake, headers: &HeaderMap, path: &str, kind: Kind, id: &str) -> Answer {
    let key = f.auth(headers, path)?;
    f.with_account(&key, |acc, _| {
        acc.voucher(id)
            .filter(|v| v.kind == kind)
            .map(|v| Json(v.read_model(&acc.organization_id)).into_response())
    })
    .ok()
    .flatten()
    .ok_or_else(|| not_found(path))
}

async fn get_order_confirmation(
    State(f): Fake,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Answer {
    get_voucher(&f, &headers, uri.path(), Kind::OrderConfirmation, &id)
}

async fn get_invoice(
    State(f): Fake,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Answer {
    get_voucher(&f, &headers, uri.path(), Kind::Invoice, &id)
}

async fn get_credit_note(
    State(f): Fake,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Answer {
    get_voucher(&f, &headers, uri.path(), Kind::CreditNote, &id)
}

fn file(f: &LexofficeFake, headers: &HeaderMap, path: &str, kind: Kind, id: &str) -> Answer {
    let key = f.auth(headers, path)?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*")
        .to_ascii_lowercase();
    let wants_pdf = accept.contains("application/pdf") || accept.contains("*/*");
    let (status, number) = f
        .with_account(&key, |acc, _| {
            acc.voucher(id)
                .filter(|v| v.kind == kind)
                .map(|v| (v.status.clone(), v.number.clone()))
        })
        .ok()
        .flatten()
        .ok_or_else(|| not_found(path))?;
    if !wants_pdf {
        if accept.contains("application/xml") {
            // Only XRechnung documents have XML; the fake's are plain.
            return Err(error_response(
                StatusCode::NOT_FOUND,
                path,
                "Für diesen Beleg ist kein XML (XRechnung) verfügbar",
                vec![],
            ));
        }
        return Err(error_response(
            StatusCode::NOT_ACCEPTABLE,
            path,
            &format!("Accept '{accept}' wird nicht unterstützt"),
            vec![],
        ));
    }
    if status == "draft" {
        return Err(error_response(
            StatusCode::CONFLICT,
            path,
            "Für Belege im Entwurfsstatus kann keine Datei erzeugt werden",
            vec![],
        ));
    }
    {
        let mut st = lock(&f.state);
        if st.garbage_pdf_next > 0 {
            st.garbage_pdf_next -= 1;
            return Ok(Json(json!({"documentFileId": Uuid::new_v4().to_string()})).into_response());
        }
    }
    let number = number.unwrap_or_default();
    let title = match kind {
        Kind::Invoice => "Rechnung",
        Kind::CreditNote => "Gutschrift",
        Kind::OrderConfirmation => "Auftragsbestaetigung",
    };
    let pdf = minimal_pdf(&format!("{title} {number}"));
    let mut r = (StatusCode::OK, pdf).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{title}_{number}.pdf\""))
    {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

async fn file_invoice(
    State(f): Fake,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Answer {
    file(&f, &headers, uri.path(), Kind::Invoice, &id)
}

async fn file_credit_note(
    State(f): Fake,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Answer {
    file(&f, &headers, uri.path(), Kind::CreditNote, &id)
}

async fn file_order_confirmation(
    State(f): Fake,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Answer {
    file(&f, &headers, uri.path(), Kind::OrderConfirmation, &id)
}

// ---------------------------------------------------------------------------------------------
// Voucherlist, payments

async fn voucherlist(
    State(f): Fake,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let path = uri.path();
    let key = f.auth(&headers, path)?;
    let bad = |m: &str| error_response(StatusCode::BAD_REQUEST, path, m, vec![]);
    let required = |name: &str| {
        q.get(name)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                bad(&format!(
                    "Required request parameter '{name}' for method parameter type String is not present"
                ))
            })
    };
    let types = required("voucherType")?;
    let statuses = required("voucherStatus")?;
    let mut kinds: BTreeSet<String> = BTreeSet::new();
    for w in types.split(',').map(str::trim) {
        if w == "any" {
            for k in [Kind::OrderConfirmation, Kind::Invoice, Kind::CreditNote] {
                kinds.insert(k.voucher_type().to_owned());
            }
            continue;
        }
        match Kind::from_list_word(w) {
            Some(Some(k)) => {
                kinds.insert(k.voucher_type().to_owned());
            }
            Some(None) => {}
            None => return Err(bad(&format!("Unbekannter voucherType '{w}'"))),
        }
    }
    let mut wanted_status: BTreeSet<&str> = BTreeSet::new();
    for w in statuses.split(',').map(str::trim) {
        if !VOUCHER_STATUSES.contains(&w) {
            return Err(bad(&format!("Unbekannter voucherStatus '{w}'")));
        }
        wanted_status.insert(w);
    }
    let any_status = wanted_status.contains("any");
    let dates = |k: &str| parse_list_date(&q, k).map_err(|m| bad(&m));
    let (vd_from, vd_to) = (dates("voucherDateFrom")?, dates("voucherDateTo")?);
    let (cd_from, cd_to) = (dates("createdDateFrom")?, dates("createdDateTo")?);
    let (ud_from, ud_to) = (dates("updatedDateFrom")?, dates("updatedDateTo")?);
    let (page, size) = page_params(&q, path)?;
    if (page + 1) * size > MAX_WINDOW {
        return Err(bad(
            "Maximum search window size exceeded. page * size must not exceed 10000",
        ));
    }
    let archived = q.get("archived").map(|s| s == "true");
    let number = q.get("voucherNumber").cloned();
    let in_range = |d: Option<NaiveDate>, from: Option<NaiveDate>, to: Option<NaiveDate>| {
        from.is_none_or(|f| d.is_some_and(|d| d >= f))
            && to.is_none_or(|t| d.is_some_and(|d| d <= t))
    };
    let rows = f
        .with_account(&key, |acc, _| {
            let mut list: Vec<&FakeVoucher> = acc
                .vouchers
                .iter()
                .filter(|v| kinds.contains(v.kind.voucher_type()))
                .filter(|v| any_status || wanted_status.contains(v.status.as_str()))
                .filter(|_| archived != Some(true))
                .filter(|v| number.as_ref().is_none_or(|n| v.number.as_ref() == Some(n)))
                .filter(|v| {
                    let vd = parse_datetime(&v.voucher_date).map(|d| d.date_naive());
                    in_range(vd, vd_from, vd_to)
                        && in_range(Some(v.created.date_naive()), cd_from, cd_to)
                        && in_range(Some(v.updated.date_naive()), ud_from, ud_to)
                })
                .collect();
            list.sort_by(|a, b| {
                b.voucher_date
                    .cmp(&a.voucher_date)
                    .then(b.created.cmp(&a.created))
            });
            list.iter().map(|v| v.list_row()).collect::<Vec<_>>()
        })
        .map_err(|_| not_found(path))?;
    let total = rows.len() as u64;
    let mut body = page_of(rows, page, size);
    // Spring caps the reported total at the window.
    body["totalElements"] = json!(total.min(MAX_WINDOW));
    body["totalPages"] = json!(total.min(MAX_WINDOW).div_ceil(size));
    Ok(Json(body).into_response())
}

async fn payments(State(f): Fake, headers: HeaderMap, uri: Uri, Path(id): Path<String>) -> Answer {
    let path = uri.path();
    let key = f.auth(&headers, path)?;
    let found = f
        .with_account(&key, |acc, _| {
            acc.voucher(&id)
                .filter(|v| v.kind != Kind::OrderConfirmation)
                .cloned()
        })
        .ok()
        .flatten()
        .ok_or_else(|| not_found(path))?;
    let as_string = {
        let mut st = lock(&f.state);
        st.open_amount_as_string = !st.open_amount_as_string;
        st.open_amount_as_string
    };
    let open = found.open_amount();
    let open_json = if as_string {
        json!(format!("{:.2}", open))
    } else {
        number(open)
    };
    let status = if open.is_zero() {
        "balanced"
    } else if found.kind == Kind::CreditNote {
        "openExpense"
    } else {
        "openRevenue"
    };
    let items: Vec<Value> = found
        .payment_items
        .iter()
        .map(|p| {
            json!({
                "paymentItemType": p.payment_item_type,
                "postingDate": p.posting_date,
                "amount": p.amount.map(number),
                "currency": p.currency,
            })
        })
        .collect();
    let mut body = json!({
        "openAmount": open_json,
        "currency": "EUR",
        "paymentStatus": status,
        "voucherType": found.kind.voucher_type(),
        "voucherStatus": found.status,
        "paymentItems": items,
    });
    if let Some(last) = found.payment_items.last().filter(|_| open.is_zero()) {
        body["paidDate"] = json!(last.posting_date);
    }
    Ok(Json(body).into_response())
}

// ---------------------------------------------------------------------------------------------
// Event subscriptions

async fn create_subscription(State(f): Fake, headers: HeaderMap, uri: Uri, body: Bytes) -> Answer {
    let path = uri.path();
    let key = f.auth(&headers, path)?;
    let req: wire::SubscriptionCreate = serde_json::from_slice(&body).map_err(|e| {
        error_response(
            StatusCode::BAD_REQUEST,
            path,
            &format!("Malformed JSON request: {e}"),
            vec![],
        )
    })?;
    if !EVENT_TYPES.contains(&req.event_type.as_str()) {
        return Err(error_response(
            StatusCode::NOT_ACCEPTABLE,
            path,
            "Validation failed for request.",
            vec![detail(
                "ENUM",
                "eventType",
                format!("Unbekannter eventType '{}'", req.event_type),
            )],
        ));
    }
    let url_ok = reqwest::Url::parse(&req.callback_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "https" | "http"));
    if url_ok.is_none() {
        return Err(error_response(
            StatusCode::NOT_ACCEPTABLE,
            path,
            "Validation failed for request.",
            vec![detail("URL", "callbackUrl", "keine gültige URL")],
        ));
    }
    let duplicate = f
        .with_account(&key, |acc, _| {
            acc.subscriptions
                .iter()
                .any(|s| s.event_type == req.event_type)
        })
        .unwrap_or(false);
    if duplicate {
        return Err(error_response(
            StatusCode::CONFLICT,
            path,
            &format!(
                "Für den eventType '{}' existiert bereits eine Subscription",
                req.event_type
            ),
            vec![],
        ));
    }
    // lexoffice checks the callback (TLS) with a HEAD request before accepting it.
    let reachable = match &f.client {
        Some(c) => c
            .head(&req.callback_url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok(),
        None => false,
    };
    if !reachable {
        return Err(error_response(
            StatusCode::NOT_ACCEPTABLE,
            path,
            "Die callbackUrl ist nicht erreichbar (HEAD-Anfrage fehlgeschlagen)",
            vec![detail("REACHABLE", "callbackUrl", "nicht erreichbar")],
        ));
    }
    let now = Utc::now();
    let id = Uuid::new_v4().to_string();
    let created = f.with_account(&key, |acc, _| {
        if acc
            .subscriptions
            .iter()
            .any(|s| s.event_type == req.event_type)
        {
            return false;
        }
        acc.subscriptions.push(Subscription {
            subscription_id: id.clone(),
            organization_id: Some(acc.organization_id.clone()),
            created_date: Some(format_datetime(now)),
            event_type: req.event_type.clone(),
            callback_url: req.callback_url.clone(),
        });
        true
    });
    if created != Ok(true) {
        return Err(error_response(
            StatusCode::CONFLICT,
            path,
            "Subscription existiert bereits",
            vec![],
        ));
    }
    let body = json!({
        "id": id,
        "resourceUri": format!("https://api.lexware.io/v1/event-subscriptions/{id}"),
        "createdDate": format_datetime(now),
        "updatedDate": format_datetime(now),
        "version": 0,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn list_subscriptions(State(f): Fake, headers: HeaderMap, uri: Uri) -> Answer {
    let path = uri.path();
    let key = f.auth(&headers, path)?;
    let subs = f
        .with_account(&key, |acc, _| acc.subscriptions.clone())
        .map_err(|_| not_found(path))?;
    Ok(Json(json!({"content": subs})).into_response())
}

async fn get_subscription(
    State(f): Fake,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Answer {
    let path = uri.path();
    let key = f.auth(&headers, path)?;
    f.with_account(&key, |acc, _| {
        acc.subscriptions
            .iter()
            .find(|s| s.subscription_id == id)
            .map(|s| Json(s.clone()).into_response())
    })
    .ok()
    .flatten()
    .ok_or_else(|| not_found(path))
}

async fn delete_subscription(
    State(f): Fake,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Answer {
    let path = uri.path();
    let key = f.auth(&headers, path)?;
    let removed = f
        .with_account(&key, |acc, _| {
            let before = acc.subscriptions.len();
            acc.subscriptions.retain(|s| s.subscription_id != id);
            before != acc.subscriptions.len()
        })
        .unwrap_or(false);
    if removed {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(not_found(path))
    }
}

/// Stock paths are 404 (lexoffice has no inventory); anything else is the gateway's 403.
async fn fallback(State(f): Fake, headers: HeaderMap, uri: Uri) -> Answer {
    let path = uri.path();
    f.auth(&headers, path)?;
    let p = path.to_ascii_lowercase();
    if ["stock", "inventor", "warehouse", "lager"]
        .iter()
        .any(|w| p.contains(w))
    {
        return Err(not_found(path));
    }
    Err((
        StatusCode::FORBIDDEN,
        Json(json!({
            "message": "Authorization header requires 'Credential' parameter. … not a valid key=value pair (missing equal-sign) in Authorization header"
        })),
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------------
// Control API

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct KeyBody {
    api_key: Option<String>,
    finalize: Option<bool>,
    event_type: Option<String>,
    resource_id: Option<String>,
}

fn key_of(b: &KeyBody) -> String {
    b.api_key.clone().unwrap_or_else(|| DEMO_API_KEY.to_owned())
}

fn ctl_error(m: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": m}))).into_response()
}

fn body_or_default(body: &[u8]) -> Result<KeyBody, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(KeyBody::default());
    }
    serde_json::from_slice(body).map_err(|e| ctl_error(e.to_string()))
}

async fn ctl_account(State(f): Fake, body: Bytes) -> Answer {
    let b = body_or_default(&body)?;
    let key = b
        .api_key
        .ok_or_else(|| ctl_error("api_key is required".into()))?;
    f.add_account(&key);
    Ok(Json(json!({"organizationId": f.organization_id(&key)})).into_response())
}

async fn ctl_article(State(f): Fake, Json(s): Json<SeedArticle>) -> Answer {
    let id = f.seed_article(&s).map_err(ctl_error)?;
    Ok(Json(json!({"id": id})).into_response())
}

async fn ctl_documents(
    State(f): Fake,
    Path(order_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let key = q
        .get("api_key")
        .cloned()
        .unwrap_or_else(|| DEMO_API_KEY.to_owned());
    Ok(Json(f.documents_for_order(&key, &order_id)).into_response())
}

async fn ctl_invoice(State(f): Fake, Path(id): Path<String>, body: Bytes) -> Answer {
    let b = body_or_default(&body)?;
    let (id, number) = f
        .invoice_order_confirmation(&key_of(&b), &id, b.finalize.unwrap_or(true))
        .map_err(ctl_error)?;
    Ok(Json(json!({"id": id, "voucherNumber": number})).into_response())
}

async fn ctl_finalize(State(f): Fake, Path(id): Path<String>, body: Bytes) -> Answer {
    let b = body_or_default(&body)?;
    let number = f.finalize_invoice(&key_of(&b), &id).map_err(ctl_error)?;
    Ok(Json(json!({"id": id, "voucherNumber": number})).into_response())
}

async fn ctl_credit(State(f): Fake, Path(id): Path<String>, body: Bytes) -> Answer {
    let b = body_or_default(&body)?;
    let (id, number) = f.credit_invoice(&key_of(&b), &id).map_err(ctl_error)?;
    Ok(Json(json!({"id": id, "voucherNumber": number})).into_response())
}

async fn ctl_fire(State(f): Fake, body: Bytes) -> Answer {
    let b = body_or_default(&body)?;
    let event = b
        .event_type
        .clone()
        .ok_or_else(|| ctl_error("event_type is required".into()))?;
    let resource = b
        .resource_id
        .clone()
        .ok_or_else(|| ctl_error("resource_id is required".into()))?;
    let out = f
        .fire_webhook(&key_of(&b), &event, &resource)
        .await
        .map_err(ctl_error)?;
    let deliveries: Vec<Value> = out
        .into_iter()
        .map(|(url, r)| match r {
            Ok(s) => json!({"callback_url": url, "status": s}),
            Err(e) => json!({"callback_url": url, "error": e}),
        })
        .collect();
    Ok(Json(json!({"deliveries": deliveries})).into_response())
}

async fn ctl_counts(State(f): Fake) -> Json<Counts> {
    Json(f.counts())
}

async fn ctl_garbage(State(f): Fake) -> StatusCode {
    f.garbage_pdf_next();
    StatusCode::NO_CONTENT
}

async fn ctl_rate_500(State(f): Fake) -> StatusCode {
    f.rate_limit_500_next();
    StatusCode::NO_CONTENT
}

async fn ctl_seed_demo(State(f): Fake) -> StatusCode {
    f.seed_demo();
    StatusCode::NO_CONTENT
}

// ---------------------------------------------------------------------------------------------
// Conformance

impl ErpFake for LexofficeFake {
    fn seed_item(&self, sku: &Sku, name: &str, gross: Decimal, _stock: u32, _warehouse: &str) {
        // lexoffice keeps no stock: the quantity and warehouse have nowhere to go.
        if let Err(e) = self.seed_article(&SeedArticle {
            article_number: sku.to_string(),
            title: name.to_owned(),
            gross_price: Some(gross),
            ..SeedArticle::default()
        }) {
            panic!("seeding article {sku}: {e}");
        }
    }

    fn documents_for(&self, order: &ChannelOrderId) -> usize {
        self.documents_for_order(DEMO_API_KEY, order.as_str())
            .iter()
            .filter(|v| v["voucherType"] == "orderconfirmation")
            .count()
    }

    fn merchant_invoices(&self, document: &SalesDocument) {
        if let Err(e) = self.invoice_order_confirmation(DEMO_API_KEY, &document.erp_id, true) {
            panic!("merchant invoicing {}: {e}", document.erp_id);
        }
    }

    fn merchant_credits(&self, document: &SalesDocument) {
        let invoice = self
            .with_account(DEMO_API_KEY, |acc, _| {
                acc.voucher(&document.erp_id).and_then(|oc| {
                    oc.related
                        .iter()
                        .rev()
                        .find(|r| r.voucher_type == "invoice")
                        .map(|r| r.id.clone())
                })
            })
            .ok()
            .flatten()
            .unwrap_or_else(|| {
                panic!(
                    "order confirmation {} has no invoice to credit",
                    document.erp_id
                )
            });
        if let Err(e) = self.credit_invoice(DEMO_API_KEY, &invoice) {
            panic!("merchant crediting {invoice}: {e}");
        }
    }

    fn commit_then_timeout_next(&self) {
        self.harness.update_faults(|f| {
            f.next_commit_then_timeout = 1;
            f.hang_ms = Some(3_000);
        });
    }

    fn garbage_pdf_next(&self) {
        LexofficeFake::garbage_pdf_next(self);
    }

    fn throttle_next(&self) -> bool {
        self.harness.update_faults(|f| {
            f.next_429 = 1;
            f.retry_after_secs = 1;
        });
        true
    }

    fn server_error_next(&self) -> bool {
        self.harness.update_faults(|f| {
            f.next_5xx = 1;
            f.status_5xx = Some(500);
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Value {
        json!({
            "voucherDate": "2025-01-31T10:00:00.000+01:00",
            "language": "de",
            "address": {"name": "Erika Mustermann", "countryCode": "DE"},
            "lineItems": [
                {"type": "custom", "name": "Tasse", "quantity": 3, "unitName": "Stück",
                 "unitPrice": {"currency": "EUR", "grossAmount": 15.946, "taxRatePercentage": 19}},
                {"type": "custom", "name": "Buch", "quantity": 1, "unitName": "Stück",
                 "unitPrice": {"currency": "EUR", "grossAmount": 10.7, "taxRatePercentage": 7}},
                {"type": "text", "name": "Danke für Ihre Bestellung"}
            ],
            "totalPrice": {"currency": "EUR"},
            "taxConditions": {"taxType": "gross"},
            "shippingConditions": {"shippingDate": "2025-01-31T10:00:00.000+01:00", "shippingType": "delivery"},
            "remark": "Marketplace order: X-1"
        })
    }

    fn fields(r: Result<Validated, Vec<ErrorDetail>>) -> Vec<String> {
        match r {
            Ok(_) => panic!("should be refused"),
            Err(d) => d
                .into_iter()
                .map(|d| {
                    format!(
                        "{}: {}",
                        d.field.unwrap_or_default(),
                        d.message.unwrap_or_default()
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn gross_totals_are_computed_per_rate_from_rounded_lines() {
        let v = validate_voucher(&body(), &[]).unwrap_or_else(|d| panic!("{d:?}"));
        // 3 × 15.946 = 47.838 → 47.84; + 10.70 = 58.54 gross.
        assert_eq!(v.gross, Decimal::new(5854, 2));
        // VAT: 47.84 − 47.84/1.19 = 7.64; 10.70 − 10.70/1.07 = 0.70.
        assert_eq!(v.tax, Decimal::new(834, 2));
        assert_eq!(v.net, Decimal::new(5020, 2));
        assert_eq!(v.line_items.len(), 3);
        assert_eq!(
            v.line_items[0].line_item_amount,
            Some(Decimal::new(4784, 2))
        );
    }

    #[test]
    fn net_totals_add_vat_per_rate() {
        let mut b = body();
        b["taxConditions"]["taxType"] = json!("net");
        b["lineItems"][0]["unitPrice"] =
            json!({"currency": "EUR", "netAmount": 10, "taxRatePercentage": 19});
        b["lineItems"][1]["unitPrice"] =
            json!({"currency": "EUR", "netAmount": 10, "taxRatePercentage": 7});
        let v = validate_voucher(&b, &[]).unwrap_or_else(|d| panic!("{d:?}"));
        assert_eq!(v.net, Decimal::from(40));
        assert_eq!(v.tax, Decimal::new(640, 2));
        assert_eq!(v.gross, Decimal::new(4640, 2));
    }

    #[test]
    fn refusals_name_the_field_in_german() {
        let mut b = body();
        b["voucherDate"] = json!("2025-01-31");
        b["lineItems"][0]["unitPrice"]["currency"] = json!("RON");
        b["lineItems"][1]["unitPrice"]["taxRatePercentage"] = json!(21);
        b["totalPrice"]["currency"] = json!("RON");
        b["address"]["countryCode"] = json!("XX");
        b["shippingConditions"] = json!({"shippingType": "delivery"});
        let f = fields(validate_voucher(&b, &[]));
        let has = |s: &str| f.iter().any(|x| x.contains(s));
        assert!(has("voucherDate: Ungültiges Datumsformat"), "{f:?}");
        assert!(
            has("lineItems[0].unitPrice.currency: Währung 'RON'"),
            "{f:?}"
        );
        assert!(
            has("lineItems[1].unitPrice.taxRatePercentage: Der Steuersatz 21"),
            "{f:?}"
        );
        assert!(has("totalPrice.currency"), "{f:?}");
        assert!(has("address.countryCode: Ländercode 'XX'"), "{f:?}");
        assert!(
            has("shippingConditions.shippingDate: darf nicht leer sein"),
            "{f:?}"
        );
        let mut b = body();
        b["lineItems"][0]["unitPrice"] =
            json!({"currency": "EUR", "netAmount": 1, "taxRatePercentage": 19});
        assert!(
            fields(validate_voucher(&b, &[]))
                .iter()
                .any(|x| x.contains("grossAmount"))
        );
        let mut b = body();
        b["lineItems"] = json!([]);
        assert!(
            fields(validate_voucher(&b, &[]))
                .iter()
                .any(|x| x.contains("zwischen 1 und 300"))
        );
        let mut b = body();
        b["lineItems"][0]["type"] = json!("material");
        assert!(
            fields(validate_voucher(&b, &[]))
                .iter()
                .any(|x| x.contains("Artikel"))
        );
        let mut b = body();
        b["shippingConditions"] = json!({"shippingType": "none"});
        assert!(
            validate_voucher(&b, &[]).is_ok(),
            "no date needed without delivery"
        );
    }

    #[test]
    fn merchant_invoices_and_credits_link_the_vouchers() {
        let f = LexofficeFake::new();
        let v = validate_voucher(&body(), &[]).unwrap_or_else(|d| panic!("{d:?}"));
        let oc_id = f
            .with_account(DEMO_API_KEY, |acc, _| {
                let now = Utc::now();
                let oc = FakeVoucher {
                    id: Uuid::new_v4().to_string(),
                    kind: Kind::OrderConfirmation,
                    status: "draft".into(),
                    number: None,
                    voucher_date: v.voucher_date,
                    created: now,
                    updated: now,
                    version: 0,
                    address: v.address,
                    line_items: v.line_items,
                    tax_type: v.tax_type,
                    net: v.net,
                    gross: v.gross,
                    tax: v.tax,
                    title: None,
                    introduction: None,
                    remark: v.remark,
                    related: vec![],
                    payment_items: vec![],
                };
                let id = oc.id.clone();
                acc.vouchers.push(oc);
                id
            })
            .unwrap();
        assert_eq!(f.documents_for_order(DEMO_API_KEY, "X-1").len(), 1);
        let (inv, number) = f
            .invoice_order_confirmation(DEMO_API_KEY, &oc_id, false)
            .unwrap();
        assert_eq!(number, None, "a draft has no number");
        assert!(
            f.credit_invoice(DEMO_API_KEY, &inv)
                .unwrap_err()
                .contains("draft")
        );
        let n = f.finalize_invoice(DEMO_API_KEY, &inv).unwrap();
        assert_eq!(n, "RE0001");
        let oc = f.voucher_json(DEMO_API_KEY, &oc_id).unwrap();
        assert_eq!(oc["relatedVouchers"][0]["voucherNumber"], "RE0001");
        let (_, cn) = f.credit_invoice(DEMO_API_KEY, &inv).unwrap();
        assert_eq!(cn, "GS0001");
        let invoice = f.voucher_json(DEMO_API_KEY, &inv).unwrap();
        let kinds: Vec<&str> = invoice["relatedVouchers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["voucherType"].as_str())
            .collect();
        assert_eq!(kinds, ["orderconfirmation", "creditnote"]);
        assert_eq!(f.counts().credit_notes_by_merchant, 1);
        assert_eq!(f.counts().invoice_posts, 0);
    }

    #[test]
    fn the_fake_signs_with_its_test_key() {
        let sig = sign_webhook_body(b"{}");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .unwrap();
        assert_eq!(raw.len(), 256, "RSA-2048 signature");
    }
}
