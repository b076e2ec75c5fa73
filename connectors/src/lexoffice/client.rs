//! The lexoffice public API client: [`LexofficeClient`] implements [`Erp`].

use std::sync::Arc;

use async_trait::async_trait;
use canonical::{
    CatalogItem, ChannelOrderId, Currency, Erp as System, InvoicePdf, Order, ReturnEvent,
    ReturnKind, SalesDocument, SalesDocumentKind, StockLevel,
};
use chrono::{Days, Utc};
use reqwest::header::ACCEPT;
use reqwest::{Method, Url};
use rust_decimal::Decimal;
use secrecy::ExposeSecret;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::capabilities::NO_STOCK;
use super::config::{Config, Credentials};
use super::convert::{self, rate_in_remark, remark_names_order};
use super::webhook::{WebhookEvent, WebhookKey};
use super::wire::{
    Article, Created, Page, Payment, Subscription, SubscriptionCreate, Voucher, VoucherListItem,
    format_date,
};
use super::{SYSTEM, capabilities, errors};
use crate::Capabilities;
use crate::erp::{DocumentOptions, Erp, Lookup, ReturnOutcome, check_pdf};
use crate::error::{ConnectorError, Result};
use crate::gate::CallGate;
use crate::http::{Answer, Http, Safety};

/// Largest page size of articles and the voucherlist.
const PAGE_SIZE: u32 = 250;
/// The voucherlist's result window: `page × size` beyond it is refused.
const SEARCH_WINDOW: u64 = 10_000;
/// Safety stop for paging loops.
const MAX_PAGES: u32 = 1_000;

/// A lexoffice public API client for one organization (one API key). `Debug` never shows the
/// key.
#[derive(Debug)]
pub struct LexofficeClient {
    http: Http,
    base: Url,
    config: Config,
    credentials: Credentials,
    webhook_key: Option<WebhookKey>,
}

/// The rows of a voucherlist search, and whether the result window cut it short.
struct Rows {
    rows: Vec<VoucherListItem>,
    truncated: bool,
}

fn is_invoice(kind: &str) -> bool {
    kind.eq_ignore_ascii_case("invoice") || kind.eq_ignore_ascii_case("salesinvoice")
}

fn is_credit_note(kind: &str) -> bool {
    let k = kind.to_ascii_lowercase();
    k == "creditnote" || k == "salescreditnote" || k == "credit-note"
}

fn looks_like_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

impl LexofficeClient {
    /// Builds a client; `config` is validated first (errors are `ConnectorError::Config`).
    pub fn new(
        config: &Config,
        credentials: Credentials,
        gate: Option<Arc<dyn CallGate>>,
    ) -> Result<Self> {
        config.validate()?;
        let base = config.base()?;
        let webhook_key = match &config.webhook_public_key_pem {
            Some(pem) => Some(WebhookKey::from_pem(pem).map_err(|e| {
                ConnectorError::config(SYSTEM, format!("webhook_public_key_pem: {e}"))
            })?),
            None => None,
        };
        let http = Http::new(SYSTEM, &config.http, gate, errors::error_body)?;
        Ok(Self {
            http,
            base,
            config: config.clone(),
            credentials,
            webhook_key,
        })
    }

    /// Builds a client from a connection's stored settings (`{}` or `null`: defaults) and
    /// credentials (`{"api_key"}`).
    pub fn from_json(
        config: Value,
        credentials: &Map<String, Value>,
        gate: Option<Arc<dyn CallGate>>,
    ) -> Result<Self> {
        let config: Config = crate::settings::from_value(SYSTEM, config)?;
        let credentials = Credentials::from_map(credentials)?;
        Self::new(&config, credentials, gate)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn url(&self, path: &str) -> Result<Url> {
        self.base
            .join(path)
            .map_err(|e| ConnectorError::config(SYSTEM, format!("bad path {path}: {e}")))
    }

    /// Sends one call with the Bearer key and `Accept`.
    async fn call(&self, op: &'static str, safety: Safety, req: Req<'_>) -> Result<Answer> {
        let Req {
            method,
            url,
            accept,
            query,
            body,
        } = req;
        let key = self.credentials.api_key.expose_secret();
        self.http
            .send(op, safety, || {
                let mut r = self
                    .http
                    .request(method.clone(), url.as_str())
                    .bearer_auth(key)
                    .header(ACCEPT, accept);
                if !query.is_empty() {
                    r = r.query(query);
                }
                if let Some(b) = body {
                    r = r.json(&b.as_value());
                }
                r
            })
            .await
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        op: &'static str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T> {
        let url = self.url(path)?;
        self.call(
            op,
            Safety::Idempotent,
            Req {
                method: Method::GET,
                url: &url,
                accept: "application/json",
                query,
                body: None,
            },
        )
        .await?
        .json(SYSTEM, op)
    }

    async fn get_voucher(&self, op: &'static str, collection: &str, id: &str) -> Result<Voucher> {
        if !looks_like_uuid(id) {
            return Err(ConnectorError::permanent(
                SYSTEM,
                op,
                format!("{id:?} is not a lexoffice voucher id (a UUID)"),
            ));
        }
        self.get_json(op, &format!("v1/{collection}/{id}"), &[])
            .await
    }

    /// Every row of a voucherlist search (pages of 250), up to the 10 000-result window.
    async fn voucherlist(&self, op: &'static str, filters: &[(&str, String)]) -> Result<Rows> {
        let mut rows = Vec::new();
        let mut page: u32 = 0;
        loop {
            let mut q: Vec<(&str, String)> = filters.to_vec();
            q.push(("page", page.to_string()));
            q.push(("size", PAGE_SIZE.to_string()));
            let p: Page<VoucherListItem> = self.get_json(op, "v1/voucherlist", &q).await?;
            let n = p.content.len();
            rows.extend(p.content);
            let more = if p.total_pages > 0 {
                u64::from(page) + 1 < p.total_pages
            } else {
                !p.last
            };
            if !more || n == 0 {
                return Ok(Rows {
                    rows,
                    truncated: false,
                });
            }
            page += 1;
            if u64::from(page + 1) * u64::from(PAGE_SIZE) > SEARCH_WINDOW || page >= MAX_PAGES {
                return Ok(Rows {
                    rows,
                    truncated: true,
                });
            }
        }
    }

    fn document(
        &self,
        order_id: &ChannelOrderId,
        v: &Voucher,
        fallback_total: Decimal,
        rate: Option<Decimal>,
    ) -> SalesDocument {
        SalesDocument {
            kind: SalesDocumentKind::OrderConfirmation,
            order_id: order_id.clone(),
            erp_id: v.id.clone(),
            series: None,
            number: v.voucher_number.clone().filter(|n| !n.trim().is_empty()),
            total_gross: v
                .total_price
                .as_ref()
                .and_then(|t| t.total_gross_amount)
                .unwrap_or(fallback_total),
            currency: Currency::Eur,
            exchange_rate: rate.or_else(|| v.remark.as_deref().and_then(rate_in_remark)),
        }
    }

    /// Verifies a webhook with the configured key (`webhook_public_key_pem`); without one the
    /// answer is a `Config` error (this crate embeds no production key).
    pub fn verify_webhook(&self, signature_header: &str, body: &[u8]) -> Result<WebhookEvent> {
        match &self.webhook_key {
            Some(k) => k.verify(signature_header, body),
            None => Err(ConnectorError::config(
                SYSTEM,
                format!(
                    "no webhook_public_key_pem configured: set it to Lexware's published key \
                     ({}) to accept webhooks",
                    super::config::PUBLISHED_KEY_URL
                ),
            )),
        }
    }

    /// Subscribes `callback_url` to `event_type` (`POST /v1/event-subscriptions`); an existing
    /// subscription of the same type (409) is looked up and returned. Returns the
    /// subscription id.
    pub async fn subscribe(&self, event_type: &str, callback_url: &str) -> Result<String> {
        let op = "subscribe";
        let url = self.url("v1/event-subscriptions")?;
        let body = SubscriptionCreate {
            event_type: event_type.to_owned(),
            callback_url: callback_url.to_owned(),
        };
        let r = self
            .call(
                op,
                Safety::Idempotent,
                Req {
                    method: Method::POST,
                    url: &url,
                    accept: "application/json",
                    query: &[],
                    body: Some(&body),
                },
            )
            .await;
        match r {
            Ok(a) => Ok(a.json::<Created>(SYSTEM, op)?.id),
            Err(e) if e.status() == Some(409) => {
                let existing = self
                    .subscriptions()
                    .await?
                    .into_iter()
                    .find(|s| s.event_type == event_type);
                match existing {
                    Some(s) if s.callback_url == callback_url => Ok(s.subscription_id),
                    Some(s) => Err(ConnectorError::permanent(
                        SYSTEM,
                        op,
                        format!(
                            "{event_type} is already subscribed to another callback URL \
                             (subscription {}); delete it first",
                            s.subscription_id
                        ),
                    )),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The organization's event subscriptions (`{content:[…]}`, no paging).
    pub async fn subscriptions(&self) -> Result<Vec<Subscription>> {
        #[derive(serde::Deserialize)]
        struct Content {
            #[serde(default)]
            content: Vec<Subscription>,
        }
        let c: Content = self
            .get_json("subscriptions", "v1/event-subscriptions", &[])
            .await?;
        Ok(c.content)
    }

    /// The invoice vouchers related to an order confirmation, read one by one.
    async fn invoices_of(&self, op: &'static str, oc: &Voucher) -> Result<Vec<Voucher>> {
        let mut out = Vec::new();
        for r in oc
            .related_vouchers
            .iter()
            .filter(|r| is_invoice(&r.voucher_type))
        {
            out.push(self.get_voucher(op, "invoices", &r.id).await?);
        }
        Ok(out)
    }

    /// The id of the invoice numbered `number` (or `number` itself when it is an id).
    async fn invoice_id(&self, op: &'static str, number: &str) -> Result<String> {
        if looks_like_uuid(number) {
            return Ok(number.to_owned());
        }
        let rows = self
            .voucherlist(
                op,
                &[
                    ("voucherType", "invoice".to_owned()),
                    ("voucherStatus", "any".to_owned()),
                    ("voucherNumber", number.to_owned()),
                ],
            )
            .await?
            .rows;
        let exact: Vec<&VoucherListItem> = rows
            .iter()
            .filter(|r| r.voucher_number.as_deref() == Some(number))
            .collect();
        match exact.as_slice() {
            [one] => Ok(one.id.clone()),
            [] => Err(ConnectorError::permanent(
                SYSTEM,
                op,
                format!("no invoice numbered {number} in lexoffice"),
            )),
            several => Err(ConnectorError::permanent(
                SYSTEM,
                op,
                format!(
                    "{} invoices are numbered {number} in lexoffice ({})",
                    several.len(),
                    several
                        .iter()
                        .map(|r| r.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
}

/// One request: method, URL, `Accept`, query and JSON body.
struct Req<'a> {
    method: Method,
    url: &'a Url,
    accept: &'static str,
    query: &'a [(&'a str, String)],
    body: Option<&'a dyn ErasedJson>,
}

/// A body that can be sent as JSON, behind a trait object (the retry closure rebuilds it).
trait ErasedJson: Send + Sync {
    fn as_value(&self) -> Value;
}

impl<T: Serialize + Send + Sync> ErasedJson for T {
    fn as_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

fn return_kind(k: ReturnKind) -> &'static str {
    match k {
        ReturnKind::Cancellation => "was cancelled",
        ReturnKind::ReturnRequest => "has a return request",
        ReturnKind::Reversal => "was reversed",
    }
}

fn describe_event(event: &ReturnEvent) -> String {
    let lines = if event.lines.is_empty() {
        "the whole order".to_owned()
    } else {
        event
            .lines
            .iter()
            .map(|l| format!("{} × {}", l.quantity, l.sku))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let reason = event
        .reason
        .as_deref()
        .map(|r| format!("; reason: {r}"))
        .unwrap_or_default();
    format!(
        "Order {} {} ({lines}{reason}; event {})",
        event.order_id,
        return_kind(event.kind),
        event.event_id
    )
}

#[async_trait]
impl Erp for LexofficeClient {
    fn system(&self) -> System {
        System::Lexoffice
    }

    fn capabilities(&self) -> Capabilities {
        capabilities()
    }

    /// `GET /v1/articles` page by page (250, `page` from 0): `articleNumber` is the SKU.
    /// Archived articles and articles without a usable article number are skipped (logged).
    async fn catalog(&self) -> Result<Vec<CatalogItem>> {
        let op = "catalog";
        let mut items = Vec::new();
        let mut page: u32 = 0;
        loop {
            let q = [("page", page.to_string()), ("size", PAGE_SIZE.to_string())];
            let p: Page<Article> = self.get_json(op, "v1/articles", &q).await?;
            let n = p.content.len();
            for a in &p.content {
                match convert::catalog_item(a, &self.config.unit_name) {
                    Ok(i) => items.push(i),
                    Err(why) => tracing::warn!(
                        system = SYSTEM,
                        article = %a.id,
                        why,
                        "article left out of the catalog"
                    ),
                }
            }
            let more = if p.total_pages > 0 {
                u64::from(page) + 1 < p.total_pages
            } else {
                !p.last
            };
            if !more || n == 0 {
                return Ok(items);
            }
            page += 1;
            if page >= MAX_PAGES {
                return Err(ConnectorError::permanent(
                    SYSTEM,
                    op,
                    format!("more than {MAX_PAGES} pages of articles; refusing to go on"),
                ));
            }
        }
    }

    /// lexoffice keeps no stock: always `Unsupported`, without a call.
    async fn stock(&self, _warehouse: Option<&str>) -> Result<Vec<StockLevel>> {
        Err(ConnectorError::Unsupported {
            system: SYSTEM,
            op: "stock",
            why: NO_STOCK,
        })
    }

    /// `POST /v1/order-confirmations` (a draft order confirmation, never an invoice), then
    /// `GET` it for its number and totals. Non-idempotent: a timeout or 500/502/504 is
    /// `InDoubt`, and [`find_sales_document`](Self::find_sales_document) recovers.
    async fn create_sales_document(
        &self,
        order: &Order,
        options: &DocumentOptions,
    ) -> Result<SalesDocument> {
        let op = "create_sales_document";
        let draft = convert::order_confirmation(
            &self.config,
            order,
            options.exchange_rate.as_ref(),
            Utc::now(),
        )?;
        let url = self.url("v1/order-confirmations")?;
        let answer = self
            .call(
                op,
                Safety::NonIdempotent,
                Req {
                    method: Method::POST,
                    url: &url,
                    accept: "application/json",
                    query: &[],
                    body: Some(&draft.body),
                },
            )
            .await?;
        let created: Created = serde_json::from_slice(&answer.body).map_err(|e| {
            ConnectorError::in_doubt(
                SYSTEM,
                op,
                format!(
                    "HTTP {} but the answer is not {{id, …}} ({e}); body starts {:?}",
                    answer.status.as_u16(),
                    crate::http::snippet(&answer.body)
                ),
            )
        })?;
        let rate = draft.conversion.rate_value();
        match self
            .get_voucher(op, "order-confirmations", &created.id)
            .await
        {
            Ok(v) => Ok(self.document(&order.id, &v, draft.expected_total, rate)),
            Err(e) => {
                // Created for certain: never an error (a retry would duplicate it). The total is
                // the one we computed as lexoffice does; the number is read later.
                tracing::warn!(system = SYSTEM, id = %created.id, error = %e, "order confirmation created but not read back");
                Ok(SalesDocument {
                    kind: SalesDocumentKind::OrderConfirmation,
                    order_id: order.id.clone(),
                    erp_id: created.id,
                    series: None,
                    number: None,
                    total_gross: draft.expected_total,
                    currency: Currency::Eur,
                    exchange_rate: rate,
                })
            }
        }
    }

    /// Recovery: `GET /v1/voucherlist?voucherType=orderconfirmation&voucherStatus=any&
    /// createdDateFrom=…` (from the day before the order, at most `lookup_window_days` back),
    /// then `GET` each candidate (those with the expected total first) and match the
    /// `Marketplace order: <id>` line of its `remark`. One match → `Found`; several →
    /// `NeedsReview`; none → `Absent`, unless the search could not cover everything (order
    /// older than the window, 10 000-result window, too many candidates) → `NeedsReview`.
    async fn find_sales_document(&self, order: &Order) -> Result<Lookup> {
        let op = "find_sales_document";
        let today = Utc::now().date_naive();
        let window_start = today
            .checked_sub_days(Days::new(u64::from(self.config.lookup_window_days)))
            .unwrap_or(today);
        let placed = order
            .placed_at
            .date_naive()
            .checked_sub_days(Days::new(1))
            .unwrap_or(today);
        let from = placed.max(window_start);
        let filters = [
            ("voucherType", "orderconfirmation".to_owned()),
            ("voucherStatus", "any".to_owned()),
            ("createdDateFrom", format_date(from)),
        ];
        let listed = match self.voucherlist(op, &filters).await {
            Ok(r) => r,
            Err(e @ ConnectorError::Permanent { .. })
                if errors::is_search_window_exceeded(&e.to_string()) =>
            {
                return Ok(Lookup::NeedsReview {
                    evidence: format!(
                        "order {}: lexoffice refused the voucherlist search from {from} ({e}); \
                         look for an order confirmation whose remark reads \"{}\"",
                        order.id,
                        convert::order_marker(order.id.as_str())
                    ),
                });
            }
            Err(e) => return Err(e),
        };
        // What we would have sent: its total orders the candidates (EUR orders only; a
        // converted order's EUR total depends on a rate the lookup does not know).
        let expected = (order.currency == Currency::Eur)
            .then(|| convert::order_confirmation(&self.config, order, None, Utc::now()).ok())
            .flatten()
            .map(|d| d.expected_total);
        let tolerance = Decimal::new(1, 2) * Decimal::from(order.lines.len() as u64 + 1);
        let close = |r: &VoucherListItem| match (expected, r.total_amount) {
            (Some(e), Some(t)) => (e - t).abs() <= tolerance,
            _ => false,
        };
        let mut candidates: Vec<&VoucherListItem> =
            listed.rows.iter().filter(|r| close(r)).collect();
        candidates.extend(listed.rows.iter().filter(|r| !close(r)));
        let budget = self.config.lookup_max_candidates;
        let checked = candidates.len().min(budget);
        let mut matches = Vec::new();
        for c in &candidates[..checked] {
            let v = self.get_voucher(op, "order-confirmations", &c.id).await?;
            if remark_names_order(v.remark.as_deref(), order.id.as_str()) {
                matches.push(v);
            }
        }
        let marker = convert::order_marker(order.id.as_str());
        match matches.len() {
            1 => {
                let v = &matches[0];
                let total = v
                    .total_price
                    .as_ref()
                    .and_then(|t| t.total_gross_amount)
                    .unwrap_or_default();
                if let Some(e) = expected.filter(|e| (*e - total).abs() > tolerance) {
                    tracing::warn!(system = SYSTEM, order = %order.id, expected = %e, found = %total, "the order's confirmation was found with another total (edited in lexoffice?)");
                }
                Ok(Lookup::Found(self.document(&order.id, v, total, None)))
            }
            0 => {
                let mut gaps = Vec::new();
                if placed < window_start {
                    gaps.push(format!(
                        "the order was placed on {} but only confirmations created since {from} \
                         were searched (lookup_window_days = {})",
                        order.placed_at.date_naive(),
                        self.config.lookup_window_days
                    ));
                }
                if listed.truncated {
                    gaps.push(format!(
                        "more than {SEARCH_WINDOW} confirmations since {from}: the search window \
                         was cut off"
                    ));
                }
                if candidates.len() > checked {
                    gaps.push(format!(
                        "{} candidates since {from}, only {checked} read (lookup_max_candidates)",
                        candidates.len()
                    ));
                }
                if gaps.is_empty() {
                    Ok(Lookup::Absent)
                } else {
                    Ok(Lookup::NeedsReview {
                        evidence: format!(
                            "order {}: no order confirmation with the remark line \"{marker}\" \
                             found, but the search was incomplete: {}",
                            order.id,
                            gaps.join("; ")
                        ),
                    })
                }
            }
            n => Ok(Lookup::NeedsReview {
                evidence: format!(
                    "order {}: {n} order confirmations carry \"{marker}\": {}; keep one, \
                     delete the others in lexoffice",
                    order.id,
                    matches
                        .iter()
                        .map(|v| match &v.voucher_number {
                            Some(n) => format!("{n} ({}, {})", v.id, v.voucher_status),
                            None => format!("{} ({})", v.id, v.voucher_status),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }

    /// The invoice the merchant made from the order confirmation (its `relatedVouchers`),
    /// once it is open, paid or paid off: `GET /v1/invoices/{id}/file` (`Accept:
    /// application/pdf`). `None` before (no invoice, or only drafts; a 409 on the file is a
    /// draft too). Voided invoices are ignored.
    async fn invoice_pdf(&self, document: &SalesDocument) -> Result<Option<InvoicePdf>> {
        let op = "invoice_pdf";
        let oc = self
            .get_voucher(op, "order-confirmations", &document.erp_id)
            .await?;
        let invoices = self.invoices_of(op, &oc).await?;
        let mut issued: Vec<&Voucher> = invoices
            .iter()
            .filter(|v| matches!(v.voucher_status.as_str(), "open" | "paid" | "paidoff"))
            .collect();
        if issued.len() > 1 {
            tracing::warn!(system = SYSTEM, order = %document.order_id, count = issued.len(), "several invoices from one order confirmation; the latest is attached");
            issued.sort_by(|a, b| a.created_date.cmp(&b.created_date));
        }
        let Some(inv) = issued.last() else {
            return Ok(None);
        };
        let url = self.url(&format!("v1/invoices/{}/file", inv.id))?;
        let number = inv
            .voucher_number
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| inv.id.clone());
        let answer = match self
            .call(
                op,
                Safety::Idempotent,
                Req {
                    method: Method::GET,
                    url: &url,
                    accept: "application/pdf",
                    query: &[],
                    body: None,
                },
            )
            .await
        {
            Ok(a) => a,
            Err(e) => {
                return match e.status() {
                    Some(409) => Ok(None),
                    Some(404) => Err(ConnectorError::Permanent {
                        system: SYSTEM,
                        op,
                        status: Some(404),
                        message: format!(
                            "invoice {number} ({}) has no PDF file in lexoffice: {e}",
                            inv.id
                        ),
                    }),
                    Some(406) => Err(ConnectorError::Permanent {
                        system: SYSTEM,
                        op,
                        status: Some(406),
                        message: format!(
                            "lexoffice will not render invoice {number} as application/pdf: {e}"
                        ),
                    }),
                    _ => Err(e),
                };
            }
        };
        check_pdf(SYSTEM, op, &answer.body)?;
        Ok(Some(InvoicePdf {
            series: None,
            number,
            pdf: answer.body.to_vec(),
        }))
    }

    /// Never creates a credit note or touches a voucher: order confirmations cannot be deleted
    /// or voided through the API, and a credit note is fiscal. Always `ForMerchant`, with what
    /// lexoffice holds for the order and what the merchant must do.
    async fn register_return(
        &self,
        document: &SalesDocument,
        event: &ReturnEvent,
    ) -> Result<ReturnOutcome> {
        let op = "register_return";
        let what = describe_event(event);
        let oc = match self
            .get_voucher(op, "order-confirmations", &document.erp_id)
            .await
        {
            Ok(v) => v,
            Err(e) if e.status() == Some(404) => {
                return Ok(ReturnOutcome::ForMerchant {
                    evidence: format!(
                        "{what}. Its lexoffice order confirmation {} no longer exists (deleted in \
                         lexoffice): nothing is left to undo there.",
                        document.erp_id
                    ),
                });
            }
            Err(e) => return Err(e),
        };
        let oc_name = match &oc.voucher_number {
            Some(n) => format!("{n} ({})", oc.id),
            None => oc.id.clone(),
        };
        let invoices: Vec<String> = oc
            .related_vouchers
            .iter()
            .filter(|r| is_invoice(&r.voucher_type))
            .map(|r| match &r.voucher_number {
                Some(n) => format!("{n} ({})", r.id),
                None => format!("draft {}", r.id),
            })
            .collect();
        let evidence = if invoices.is_empty() {
            format!(
                "{what}. lexoffice order confirmation {oc_name} (status {}) is not invoiced. \
                 The public API cannot delete or void an order confirmation, so the integration \
                 changed nothing: do not turn it into an invoice; archive or delete it in \
                 lexoffice.",
                oc.voucher_status
            )
        } else {
            format!(
                "{what}. lexoffice order confirmation {oc_name} was already invoiced: {}. A \
                 credit note (Rechnungskorrektur) is a fiscal document the merchant issues in \
                 lexoffice from that invoice; the integration never creates one and changed \
                 nothing.",
                invoices.join(", ")
            )
        };
        Ok(ReturnOutcome::ForMerchant { evidence })
    }

    /// Finds the invoice by number (voucherlist), then: a related credit note, or status
    /// `voided` → credited; else `GET /v1/payments/{id}`: a credit-note payment item →
    /// credited; otherwise not.
    async fn invoice_credited(&self, invoice: &InvoicePdf) -> Result<Option<bool>> {
        let op = "invoice_credited";
        let id = self.invoice_id(op, &invoice.number).await?;
        let v = self.get_voucher(op, "invoices", &id).await?;
        if v.related_vouchers
            .iter()
            .any(|r| is_credit_note(&r.voucher_type))
            || v.voucher_status == "voided"
        {
            return Ok(Some(true));
        }
        let p: Payment = self.get_json(op, &format!("v1/payments/{id}"), &[]).await?;
        let credited = p.payment_items.iter().any(|i| {
            i.payment_item_type
                .as_deref()
                .is_some_and(|t| t.to_ascii_lowercase().contains("credit"))
        });
        tracing::debug!(system = SYSTEM, invoice = %invoice.number, open_amount = ?p.open_amount, status = ?p.payment_status, credited, "payment state");
        Ok(Some(credited))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn built_from_json_and_never_showing_the_key() {
        let mut creds = Map::new();
        creds.insert("api_key".into(), json!("very-secret-key-123"));
        let c = LexofficeClient::from_json(json!({"base_url": "http://127.0.0.1:9"}), &creds, None)
            .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("very-secret-key-123"), "{shown}");
        assert_eq!(
            c.url("v1/articles").unwrap().as_str(),
            "http://127.0.0.1:9/v1/articles"
        );
        let e = LexofficeClient::from_json(json!({"language": "fr"}), &creds, None).unwrap_err();
        assert_eq!(e.class(), crate::ErrorClass::Config);
        let e = c.verify_webhook("sig", b"{}").unwrap_err();
        assert_eq!(e.class(), crate::ErrorClass::Config);
        assert!(e.to_string().contains("webhook_public_key_pem"), "{e}");
    }

    #[test]
    fn voucher_kinds_are_recognised() {
        assert!(is_invoice("invoice") && is_invoice("salesinvoice"));
        assert!(!is_invoice("orderconfirmation"));
        assert!(is_credit_note("creditnote") && is_credit_note("salescreditnote"));
        assert!(!is_credit_note("invoice"));
    }

    #[test]
    fn return_events_are_described_with_the_order() {
        let e = ReturnEvent {
            event_id: "ev-1".into(),
            order_id: ChannelOrderId::new("ORD-9").unwrap(),
            kind: ReturnKind::ReturnRequest,
            lines: vec![canonical::ReturnLine {
                sku: canonical::Sku::new("MUG-1").unwrap(),
                quantity: 2,
            }],
            reason: Some("broken".into()),
            at: None,
        };
        assert_eq!(
            describe_event(&e),
            "Order ORD-9 has a return request (2 × MUG-1; reason: broken; event ev-1)"
        );
    }
}
