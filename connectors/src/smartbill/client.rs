//! The SmartBill Cloud API client: [`SmartBillClient`] implements [`Erp`].
//!
//! Every call goes through [`SmartBillClient::send`]: Basic `email:token` (preemptive), the
//! company CIF (`cif` in the query of reads, `companyVatCode` in bodies), SmartBill's own
//! pacing (a pause until `X-RateLimit-Reset` once `X-RateLimit-Remaining` is at the configured
//! floor) and its 403 block (remembered per client, and the gate penalized for 10 minutes).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use canonical::{
    CatalogItem, Erp as System, InvoicePdf, Order, ReturnEvent, ReturnKind, SalesDocument,
    SalesDocumentKind, StockLevel,
};
use chrono::Utc;
use reqwest::header::{ACCEPT, HeaderMap};
use reqwest::{Method, Url};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::SYSTEM;
use super::capabilities::{NO_PRODUCT_LIST, capabilities};
use super::config::{Config, Credentials};
use super::convert;
use super::errors::{self, BLOCK};
use super::wire::{Created, EstimateInvoices, SeriesResponse, StocksResponse, Tax, TaxesResponse};
use crate::Capabilities;
use crate::erp::{DocumentOptions, Erp, Lookup, ReturnOutcome, check_pdf};
use crate::error::{ConnectorError, Result};
use crate::gate::{CallGate, Unlimited};
use crate::http::{Answer, Http, Safety, snippet};

const JSON: &str = "application/json";
const OCTETS: &str = "application/octet-stream";
/// The longest pause the client takes for `X-RateLimit-Reset` (one window and a margin).
const MAX_PACE: Duration = Duration::from_secs(11);

/// What the client knows of the account's rate window, from the last answers.
#[derive(Debug, Default)]
struct Pace {
    remaining: Option<u32>,
    reset_unix: Option<i64>,
    /// No call before this (the window's reset, once `remaining` hit the floor).
    paused_until: Option<Instant>,
    /// SmartBill answered 403: the account is blocked until then.
    blocked_until: Option<Instant>,
}

/// A SmartBill client for one company of one account. `Debug` never shows the credentials.
#[derive(Debug)]
pub struct SmartBillClient {
    http: Http,
    gate: Arc<dyn CallGate>,
    base: Url,
    config: Config,
    credentials: Credentials,
    taxes: Mutex<Option<(Instant, Vec<Tax>)>>,
    pace: Mutex<Pace>,
}

/// What a probe of one proforma number found.
enum Probe {
    Missing,
    Pdf(bytes::Bytes),
}

impl SmartBillClient {
    /// Builds a client; `config` is validated first (errors are `ConnectorError::Config`).
    pub fn new(
        config: &Config,
        credentials: Credentials,
        gate: Option<Arc<dyn CallGate>>,
    ) -> Result<Self> {
        config.validate()?;
        let base = config.base()?;
        let gate: Arc<dyn CallGate> = gate.unwrap_or_else(|| Arc::new(Unlimited));
        let http = Http::new(SYSTEM, &config.http, Some(gate.clone()), errors::error_body)?;
        Ok(Self {
            http,
            gate,
            base,
            config: config.clone(),
            credentials,
            taxes: Mutex::new(None),
            pace: Mutex::new(Pace::default()),
        })
    }

    /// Builds a client from a connection's stored settings and credentials
    /// (`{"email", "token"}`).
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

    fn url(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| ConnectorError::config(SYSTEM, "base_url cannot take a path"))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    fn pace(&self) -> std::sync::MutexGuard<'_, Pace> {
        self.pace.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses while the account is blocked; waits while the window is nearly used up.
    async fn before(&self, op: &'static str) -> Result<()> {
        let wait = {
            let mut p = self.pace();
            let now = Instant::now();
            if let Some(until) = p.blocked_until {
                if until > now {
                    return Err(errors::blocked(
                        SYSTEM,
                        op,
                        until - now,
                        "not calling until the block is over",
                    ));
                }
                p.blocked_until = None;
            }
            if let (Some(left), Some(reset)) = (p.remaining, p.reset_unix)
                && left <= self.config.remaining_floor
            {
                let now_ms = Utc::now().timestamp_millis();
                let reset_ms = if reset > 100_000_000_000 {
                    reset
                } else {
                    reset * 1000
                };
                let ms = u64::try_from(reset_ms - now_ms).unwrap_or(0) + 50;
                let d = Duration::from_millis(ms).min(MAX_PACE);
                p.paused_until = Some(now + d);
                p.remaining = None;
            }
            p.paused_until.filter(|t| *t > now).map(|t| t - now)
        };
        if let Some(d) = wait {
            tracing::debug!(
                system = SYSTEM,
                op,
                wait_ms = d.as_millis() as u64,
                "X-RateLimit-Remaining at the floor: waiting for the next window"
            );
            tokio::time::sleep(d).await;
        }
        Ok(())
    }

    fn after(&self, headers: &HeaderMap) {
        let read = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        let mut p = self.pace();
        if let Some(r) = read("x-ratelimit-remaining") {
            p.remaining = u32::try_from(r.max(0)).ok();
            p.reset_unix = read("x-ratelimit-reset");
        }
    }

    async fn on_error(&self, e: ConnectorError) -> ConnectorError {
        let e = errors::reclassify(e);
        if errors::is_block(&e) {
            self.pace().blocked_until = Some(Instant::now() + BLOCK);
            tracing::warn!(
                system = SYSTEM,
                "SmartBill 403: account blocked for 10 minutes"
            );
            self.gate.penalize(BLOCK).await;
        }
        e
    }

    /// One call: auth, the CIF in the query of reads, JSON body if any, pacing, the block.
    #[allow(clippy::too_many_arguments)]
    async fn send<B: Serialize + ?Sized>(
        &self,
        op: &'static str,
        safety: Safety,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&B>,
        accept: &'static str,
    ) -> Result<Answer> {
        self.before(op).await?;
        let url = self.url(segments)?;
        let mut q: Vec<(&str, String)> = Vec::with_capacity(query.len() + 1);
        if body.is_none() {
            q.push(("cif", self.config.cif.trim().to_owned()));
        }
        q.extend(query.iter().cloned());
        let user = self.credentials.email.as_str();
        let token = self.credentials.token.expose_secret();
        let r = self
            .http
            .send(op, safety, || {
                let mut r = self
                    .http
                    .request(method.clone(), url.as_str())
                    .basic_auth(user, Some(token))
                    .header(ACCEPT, accept)
                    .query(&q);
                if let Some(b) = body {
                    r = r.json(b);
                }
                r
            })
            .await;
        match r {
            Ok(a) => {
                self.after(&a.headers);
                Ok(a)
            }
            Err(e) => Err(self.on_error(e).await),
        }
    }

    /// A read answering JSON; a non-empty `errorText` (on a 200 too) is `Permanent`.
    async fn get<R: DeserializeOwned>(
        &self,
        op: &'static str,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<R> {
        let a = self
            .send::<()>(
                op,
                Safety::Idempotent,
                Method::GET,
                segments,
                query,
                None,
                JSON,
            )
            .await?;
        parse_ok(op, &a)
    }

    /// The account's VAT rates (`GET /tax`), cached `tax_cache_secs`.
    async fn taxes(&self) -> Result<Vec<Tax>> {
        if !self.config.vat_payer {
            return Ok(Vec::new());
        }
        let ttl = Duration::from_secs(self.config.tax_cache_secs);
        if let Some((at, t)) = &*self.taxes.lock().unwrap_or_else(PoisonError::into_inner)
            && at.elapsed() < ttl
        {
            return Ok(t.clone());
        }
        let resp: TaxesResponse = self.get("taxes", &["tax"], &[]).await?;
        *self.taxes.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Instant::now(), resp.taxes.clone()));
        Ok(resp.taxes)
    }

    async fn stocks(&self, op: &'static str, warehouse: Option<&str>) -> Result<StocksResponse> {
        let mut q = vec![(
            "date",
            Utc::now().date_naive().format("%Y-%m-%d").to_string(),
        )];
        if let Some(w) = warehouse {
            q.push(("warehouseName", w.to_owned()));
        }
        self.get(op, &["stocks"], &q).await
    }

    /// The proforma series' `nextNumber` as (value, zero-padded width).
    async fn next_proforma_number(&self, op: &'static str) -> Result<(u32, usize)> {
        let resp: SeriesResponse = self
            .get(op, &["series"], &[("type", "p".to_owned())])
            .await?;
        let name = &self.config.proforma_series;
        let s = resp.list.iter().find(|s| &s.name == name).ok_or_else(|| {
            ConnectorError::permanent(
                SYSTEM,
                op,
                format!(
                    "the proforma series {name:?} is not in the account (GET /series?type=p lists: {})",
                    resp.list.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        convert::parse_number(&s.next_number).ok_or_else(|| {
            ConnectorError::retryable(
                SYSTEM,
                op,
                format!(
                    "series {name:?} has an unreadable nextNumber {:?}",
                    s.next_number
                ),
            )
        })
    }

    /// `GET /estimate/pdf` of one proforma number.
    async fn probe(&self, number: &str) -> Result<Probe> {
        let op = "find_sales_document";
        let q = [
            ("seriesname", self.config.proforma_series.clone()),
            ("number", number.to_owned()),
        ];
        let a = match self
            .send::<()>(
                op,
                Safety::Idempotent,
                Method::GET,
                &["estimate", "pdf"],
                &q,
                None,
                OCTETS,
            )
            .await
        {
            Ok(a) => a,
            Err(ConnectorError::Permanent { message, .. }) if errors::is_not_found(&message) => {
                return Ok(Probe::Missing);
            }
            Err(e) => return Err(e),
        };
        if a.body.starts_with(b"%PDF-") {
            return Ok(Probe::Pdf(a.body));
        }
        match serde_json::from_slice::<Value>(&a.body)
            .ok()
            .as_ref()
            .and_then(errors::first_error)
        {
            Some(t) if errors::is_not_found(&t) => Ok(Probe::Missing),
            Some(t) => Err(errors::refused_with_200(op, t)),
            None => Err(ConnectorError::retryable(
                SYSTEM,
                op,
                format!(
                    "expected the PDF of proforma {} {number}, got {} bytes starting {:?}",
                    self.config.proforma_series,
                    a.body.len(),
                    snippet(&a.body)
                ),
            )),
        }
    }

    /// `GET /estimate/invoices`; `None` when SmartBill says the proforma does not exist.
    async fn estimate_invoices(
        &self,
        op: &'static str,
        series: &str,
        number: &str,
    ) -> Result<Option<EstimateInvoices>> {
        let q = [
            ("seriesname", series.to_owned()),
            ("number", number.to_owned()),
        ];
        match self
            .get::<EstimateInvoices>(op, &["estimate", "invoices"], &q)
            .await
        {
            Ok(r) => Ok(Some(r)),
            Err(ConnectorError::Permanent { message, .. }) if errors::is_not_found(&message) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn sales_document(&self, order: &Order, number: String) -> SalesDocument {
        let series = self.config.proforma_series.clone();
        SalesDocument {
            kind: SalesDocumentKind::Proforma,
            order_id: order.id.clone(),
            erp_id: format!("{series}-{number}"),
            series: Some(series),
            number: Some(number),
            total_gross: convert::document_total(order),
            currency: order.currency,
            exchange_rate: None,
        }
    }
}

/// The series and number of a proforma we made.
fn series_number(op: &'static str, doc: &SalesDocument) -> Result<(String, String)> {
    let from_id = || {
        doc.erp_id
            .rsplit_once('-')
            .map(|(s, n)| (s.to_owned(), n.to_owned()))
    };
    match (&doc.series, &doc.number) {
        (Some(s), Some(n)) if !s.is_empty() && !n.is_empty() => Ok((s.clone(), n.clone())),
        _ => from_id().ok_or_else(|| {
            ConnectorError::permanent(
                SYSTEM,
                op,
                format!("document {:?} has no series and number", doc.erp_id),
            )
        }),
    }
}

/// A JSON answer whose `errorText` is empty, parsed.
fn parse_ok<R: DeserializeOwned>(op: &'static str, a: &Answer) -> Result<R> {
    let v: Value = a.json(SYSTEM, op)?;
    if let Some(t) = errors::first_error(&v) {
        return Err(errors::refused_with_200(op, t));
    }
    serde_json::from_value(v).map_err(|e| {
        ConnectorError::retryable(
            SYSTEM,
            op,
            format!("unexpected answer: {e}; body starts {:?}", snippet(&a.body)),
        )
    })
}

/// Whether a PDF's content streams are compressed (their text cannot be searched).
fn compressed(pdf: &[u8]) -> bool {
    pdf.windows(7).any(|w| w == b"/Filter")
}

#[async_trait]
impl Erp for SmartBillClient {
    fn system(&self) -> System {
        System::SmartBill
    }

    fn capabilities(&self) -> Capabilities {
        capabilities(!self.config.price_list.is_empty())
    }

    async fn catalog(&self) -> Result<Vec<CatalogItem>> {
        if self.config.price_list.is_empty() {
            return Err(ConnectorError::Unsupported {
                system: SYSTEM,
                op: "catalog",
                why: NO_PRODUCT_LIST,
            });
        }
        let stocks = self.stocks("catalog", None).await?;
        convert::catalog(&self.config, &stocks)
    }

    async fn stock(&self, warehouse: Option<&str>) -> Result<Vec<StockLevel>> {
        let resp = self.stocks("stock", warehouse).await?;
        Ok(convert::stock_levels(&resp))
    }

    async fn create_sales_document(
        &self,
        order: &Order,
        options: &DocumentOptions,
    ) -> Result<SalesDocument> {
        let op = "create_sales_document";
        let taxes = self.taxes().await?;
        let doc = convert::document(
            &self.config,
            order,
            options,
            &taxes,
            Utc::now().date_naive(),
        )?;
        let a = self
            .send(
                op,
                Safety::NonIdempotent,
                Method::POST,
                &["estimate"],
                &[],
                Some(&doc),
                JSON,
            )
            .await?;
        let garbled = |why: String| {
            ConnectorError::in_doubt(
                SYSTEM,
                op,
                format!(
                    "{why}; the proforma may exist: look it up before creating again (body \
                     starts {:?})",
                    snippet(&a.body)
                ),
            )
        };
        let v: Value = serde_json::from_slice(&a.body)
            .map_err(|e| garbled(format!("unreadable answer to POST /estimate: {e}")))?;
        if let Some(t) = errors::first_error(&v) {
            return Err(errors::refused_with_200(op, t));
        }
        let created: Created = serde_json::from_value(v)
            .map_err(|e| garbled(format!("unexpected answer to POST /estimate: {e}")))?;
        if created.number.trim().is_empty() {
            return Err(garbled("POST /estimate answered without a number".into()));
        }
        if !created.series.is_empty() && created.series != self.config.proforma_series {
            return Err(garbled(format!(
                "POST /estimate answered series {:?}, not {:?}",
                created.series, self.config.proforma_series
            )));
        }
        Ok(self.sales_document(order, created.number.trim().to_owned()))
    }

    /// Recovery: SmartBill has no search, so the last `probe_depth` proformas of the series
    /// (`GET /series?type=p` → `nextNumber`) are read as PDFs (`GET /estimate/pdf`) and searched
    /// for the order id printed in `mentions`. One match: `Found`; an empty series: `Absent`;
    /// anything else `NeedsReview` (absence beyond the window, or in compressed PDFs, cannot
    /// be proven).
    async fn find_sales_document(&self, order: &Order) -> Result<Lookup> {
        let op = "find_sales_document";
        let (next, width) = self.next_proforma_number(op).await?;
        let series = &self.config.proforma_series;
        let last = next.saturating_sub(1);
        if last == 0 {
            return Ok(Lookup::Absent);
        }
        let first = last.saturating_sub(self.config.probe_depth - 1).max(1);
        let (mut matches, mut missing, mut unreadable) = (Vec::new(), 0usize, 0usize);
        for n in (first..=last).rev() {
            let number = convert::format_number(n, width);
            match self.probe(&number).await? {
                Probe::Missing => missing += 1,
                Probe::Pdf(pdf) => {
                    if convert::mentions_order(&pdf, order.id.as_str()) {
                        matches.push(number);
                    } else if compressed(&pdf) {
                        unreadable += 1;
                    }
                }
            }
        }
        let window = format!(
            "proformas {series} {} to {} (the last {} of the series; {missing} no longer exist)",
            convert::format_number(first, width),
            convert::format_number(last, width),
            last - first + 1
        );
        Ok(match matches.as_slice() {
            [one] => Lookup::Found(self.sales_document(order, one.clone())),
            [] => Lookup::NeedsReview {
                evidence: format!(
                    "no proforma among {window} names order {} in its printed mentions{}; \
                     SmartBill cannot be searched, so older proformas (or one whose text was \
                     not readable) may still be this order's: check in SmartBill before \
                     creating it again",
                    order.id,
                    if unreadable > 0 {
                        format!(" ({unreadable} PDFs are compressed and could not be searched)")
                    } else {
                        String::new()
                    }
                ),
            },
            several => Lookup::NeedsReview {
                evidence: format!(
                    "{} proformas among {window} name order {}: {}; keep one and cancel the \
                     others in SmartBill",
                    several.len(),
                    order.id,
                    several
                        .iter()
                        .map(|n| format!("{series}-{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
        })
    }

    async fn invoice_pdf(&self, document: &SalesDocument) -> Result<Option<InvoicePdf>> {
        let op = "invoice_pdf";
        let (series, number) = series_number(op, document)?;
        let inv = self
            .estimate_invoices(op, &series, &number)
            .await?
            .ok_or_else(|| {
                ConnectorError::permanent(
                    SYSTEM,
                    op,
                    format!(
                        "proforma {series}-{number} of order {} no longer exists in SmartBill",
                        document.order_id
                    ),
                )
            })?;
        if !inv.are_invoices_created || inv.invoices.is_empty() {
            return Ok(None);
        }
        let chosen = self
            .config
            .invoice_series
            .as_ref()
            .and_then(|s| inv.invoices.iter().find(|i| &i.series == s))
            .unwrap_or(&inv.invoices[0]);
        let q = [
            ("seriesname", chosen.series.clone()),
            ("number", chosen.number.clone()),
        ];
        let a = self
            .send::<()>(
                op,
                Safety::Idempotent,
                Method::GET,
                &["invoice", "pdf"],
                &q,
                None,
                OCTETS,
            )
            .await?;
        check_pdf(SYSTEM, op, &a.body)?;
        Ok(Some(InvoicePdf {
            series: Some(chosen.series.clone()),
            number: chosen.number.clone(),
            pdf: a.body.to_vec(),
        }))
    }

    async fn register_return(
        &self,
        document: &SalesDocument,
        event: &ReturnEvent,
    ) -> Result<ReturnOutcome> {
        let op = "register_return";
        let (series, number) = series_number(op, document)?;
        let order = &event.order_id;
        let what = match event.kind {
            ReturnKind::Cancellation => "cancelled",
            ReturnKind::ReturnRequest => "returned",
            ReturnKind::Reversal => "reversed by the marketplace",
        };
        let Some(inv) = self.estimate_invoices(op, &series, &number).await? else {
            return Ok(ReturnOutcome::ForMerchant {
                evidence: format!(
                    "order {order} was {what}, but its proforma {series}-{number} no longer \
                     exists in SmartBill (deleted by hand?): check that nothing else was issued \
                     for it"
                ),
            });
        };
        if inv.are_invoices_created && !inv.invoices.is_empty() {
            let invoices = inv
                .invoices
                .iter()
                .map(|i| format!("{}-{}", i.series, i.number))
                .collect::<Vec<_>>()
                .join(", ");
            return Ok(ReturnOutcome::ForMerchant {
                evidence: format!(
                    "order {order} was {what} after invoicing: invoice {invoices} (from proforma \
                     {series}-{number}) must be reversed (storno) by the merchant in SmartBill; \
                     the product never issues fiscal documents{}",
                    if event.lines.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (lines: {})",
                            event
                                .lines
                                .iter()
                                .map(|l| format!("{} x{}", l.sku, l.quantity))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                ),
            });
        }
        if !event.lines.is_empty() {
            return Ok(ReturnOutcome::ForMerchant {
                evidence: format!(
                    "order {order} was partly {what} before invoicing ({}): edit proforma \
                     {series}-{number} in SmartBill; a proforma cannot be cancelled in part",
                    event
                        .lines
                        .iter()
                        .map(|l| format!("{} x{}", l.sku, l.quantity))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        if !self.config.cancel_proformas {
            return Ok(ReturnOutcome::ForMerchant {
                evidence: format!(
                    "order {order} was {what} before invoicing: cancel proforma \
                     {series}-{number} in SmartBill (cancel_proformas is off)"
                ),
            });
        }
        let q = [("seriesname", series.clone()), ("number", number.clone())];
        let a = self
            .send::<()>(
                op,
                Safety::Idempotent,
                Method::PUT,
                &["estimate", "cancel"],
                &q,
                None,
                JSON,
            )
            .await?;
        let _: Value = parse_ok(op, &a)?;
        Ok(ReturnOutcome::Registered {
            reference: format!("proforma {series}-{number} cancelled (order {order} {what})"),
        })
    }

    /// SmartBill's API cannot tell whether an invoice was reversed (no storno state is
    /// readable; `/invoice/paymentstatus` shows payments only), so `None`.
    async fn invoice_credited(&self, _invoice: &InvoicePdf) -> Result<Option<bool>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> Value {
        json!({"cif": "RO12345674", "proforma_series": "PRO", "base_url": "http://127.0.0.1:9/api/"})
    }

    #[test]
    fn clients_are_built_from_json_and_never_show_the_token() {
        let mut m = Map::new();
        m.insert("email".into(), json!("ana@shop.ro"));
        m.insert("token".into(), json!("s3cr3t-T0KEN"));
        let c = SmartBillClient::from_json(settings(), &m, None).unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("ana@shop"),
            "{shown}"
        );
        assert_eq!(c.system(), System::SmartBill);
        assert!(!c.capabilities().supports(crate::Flow::CatalogPush));
        let e = SmartBillClient::from_json(Value::Null, &m, None).unwrap_err();
        assert!(e.to_string().contains("cif is required"), "{e}");
        let e = SmartBillClient::from_json(json!({"cif": 1}), &m, None).unwrap_err();
        assert_eq!(e.class(), crate::ErrorClass::Config);
        assert_eq!(
            c.url(&["estimate", "pdf"]).unwrap().as_str(),
            "http://127.0.0.1:9/api/estimate/pdf"
        );
    }

    #[test]
    fn documents_name_their_series_and_number() {
        let doc = SalesDocument {
            kind: SalesDocumentKind::Proforma,
            order_id: canonical::ChannelOrderId::new("O-1").unwrap(),
            erp_id: "PRO-0007".into(),
            series: None,
            number: None,
            total_gross: rust_decimal::Decimal::ONE,
            currency: canonical::Currency::Ron,
            exchange_rate: None,
        };
        assert_eq!(
            series_number("x", &doc).unwrap(),
            ("PRO".into(), "0007".into())
        );
        assert!(compressed(b"<< /Length 5 /Filter /FlateDecode >>"));
        assert!(!compressed(&crate::erp::minimal_pdf("x")));
    }

    #[tokio::test]
    async fn the_floor_pauses_until_the_reset_and_a_block_refuses_locally() {
        let mut m = Map::new();
        m.insert("email".into(), json!("ana@shop.ro"));
        m.insert("token".into(), json!("t"));
        let c = SmartBillClient::from_json(settings(), &m, None).unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        let reset = Utc::now().timestamp() + 1;
        h.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
        c.after(&h);
        let t = Instant::now();
        c.before("x").await.unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(40),
            "{:?}",
            t.elapsed()
        );
        let t = Instant::now();
        c.before("x").await.unwrap();
        assert!(t.elapsed() < Duration::from_millis(30), "paused once only");
        c.pace().blocked_until = Some(Instant::now() + Duration::from_secs(60));
        let e = c.before("x").await.unwrap_err();
        assert!(
            errors::is_block(&e) && e.retry_after().unwrap() > Duration::from_secs(50),
            "{e}"
        );
    }
}
