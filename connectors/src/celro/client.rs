//! The Cel.ro marketplace client: `POST {base}{method}/{action}/`, form-encoded, `AUTH: Bearer
//! <token>`, every answer in the `{error, tokenStatus, message}` envelope.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use canonical::{
    ChannelOrderId, Listing, Order, OrderStatus, PriceUpdate, Sku, StockUpdate, Tracking,
};
use chrono::{DateTime, Utc};
use reqwest::header::HeaderValue;
use reqwest::{Method, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use crate::Capabilities;
use crate::error::{ConnectorError, ErrorClass, Result};
use crate::gate::CallGate;
use crate::http::{Http, Safety};
use crate::marketplace::{
    BatchHandle, BatchReport, InvoiceFile, ItemResult, ItemState, Marketplace, OrderPage,
    ReturnsPage, Transition, WakeUp,
};

use super::SYSTEM;
use super::config::{AfterAwb, Config, Credentials};
use super::convert;
use super::errors::{self, Verdict};
use super::wire::{self, Envelope, ImportState, ItemLists, WireAwb, WireOrder};

/// Orders remembered as having had an AWB sent by this client (bounded).
const SENT_AWBS_CAP: usize = 10_000;

struct Session {
    token: Option<SecretString>,
    generation: u64,
}

struct StatusCache {
    at: Instant,
    names: HashMap<String, String>,
}

enum Payload {
    Form(Vec<(String, String)>),
    Multipart {
        fields: Vec<(String, String)>,
        file: Vec<u8>,
    },
}

/// The Cel.ro client. Cheap to share (`Arc`); the session token is cached and renewed by one
/// caller at a time.
pub struct CelroClient {
    cfg: Config,
    base: String,
    http: Http,
    credentials: Credentials,
    session: Mutex<Session>,
    statuses: Mutex<Option<StatusCache>>,
    sent_awbs: std::sync::Mutex<HashSet<String>>,
}

impl fmt::Debug for CelroClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CelroClient")
            .field("base_url", &self.base)
            .field("username", &self.credentials.username)
            .field("credentials", &"<redacted>")
            .field("session", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// An offset page walk over a `last_changed` (or date) window: `min` is the lower bound,
/// `sweep` when the walk started (the upper bound is a day after it, so records changing during
/// the walk stay in the window and offsets stay stable), `start` the offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Sweep {
    min: i64,
    start: u32,
    sweep: i64,
}

impl Sweep {
    fn fresh(cfg: &Config, now: DateTime<Utc>) -> Self {
        let min = now - chrono::Duration::days(i64::from(cfg.initial_lookback_days));
        Self {
            min: min.timestamp(),
            start: 0,
            sweep: now.timestamp(),
        }
    }

    /// At the first page, the walk starts now.
    fn begin(mut self, now: DateTime<Utc>) -> Self {
        if self.start == 0 {
            self.sweep = now.timestamp();
        }
        self
    }

    fn window(&self, cfg: &Config) -> (String, String) {
        let at = |t: i64| DateTime::<Utc>::from_timestamp(t, 0).unwrap_or_default();
        (
            wire::to_server_time(at(self.min), cfg.server_time),
            wire::to_server_time(at(self.sweep + 86_400), cfg.server_time),
        )
    }

    fn next_page(self, advance: u32) -> Self {
        Self {
            start: self.start + advance,
            ..self
        }
    }

    /// The next walk reaches back `poll_overlap_secs` before this one's start.
    fn next_walk(self, cfg: &Config) -> Self {
        let overlap = i64::try_from(cfg.poll_overlap_secs).unwrap_or(0);
        Self {
            min: (self.sweep - overlap).max(self.min),
            start: 0,
            sweep: self.sweep,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct OrdersCursor {
    v: u8,
    orders: Sweep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct ReturnsCursor {
    v: u8,
    orders: Sweep,
    orders_done: bool,
    requests: Sweep,
    requests_done: bool,
}

fn parse_cursor<T: for<'de> Deserialize<'de>>(op: &'static str, c: &str) -> Result<T> {
    serde_json::from_str(c).map_err(|e| {
        ConnectorError::permanent(
            SYSTEM,
            op,
            format!(
                "cursor {:?} is not a Cel.ro {op} cursor: {e}",
                crate::http::snippet(c.as_bytes())
            ),
        )
    })
}

fn is_business(e: &ConnectorError) -> bool {
    matches!(
        e,
        ConnectorError::Permanent {
            status: Some(200),
            ..
        }
    )
}

fn sku_list(skus: &[&Sku]) -> String {
    Value::Array(skus.iter().map(|s| json!(s.as_str())).collect()).to_string()
}

impl CelroClient {
    pub fn new(
        config: &Config,
        credentials: Credentials,
        gate: Option<Arc<dyn CallGate>>,
    ) -> Result<Self> {
        config.validate()?;
        if credentials.username.trim().is_empty() {
            return Err(ConnectorError::config(
                SYSTEM,
                "credentials: field username is blank",
            ));
        }
        if credentials.password().trim().is_empty() {
            return Err(ConnectorError::config(
                SYSTEM,
                "credentials: field password is blank",
            ));
        }
        let http = Http::new(SYSTEM, &config.http, gate, errors::error_body)?;
        Ok(Self {
            base: config.base(),
            cfg: config.clone(),
            http,
            credentials,
            session: Mutex::new(Session {
                token: None,
                generation: 0,
            }),
            statuses: Mutex::new(None),
            sent_awbs: std::sync::Mutex::new(HashSet::new()),
        })
    }

    /// From stored JSON: settings (`{}`/null for the defaults) and the credentials map.
    pub fn from_json(
        config: Value,
        credentials: &Map<String, Value>,
        gate: Option<Arc<dyn CallGate>>,
    ) -> Result<Self> {
        let cfg = Config::from_json(config)?;
        Self::new(&cfg, Credentials::from_map(credentials)?, gate)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    // -----------------------------------------------------------------------------------------
    // Transport

    fn common_fields(&self) -> Vec<(String, String)> {
        let mut f = vec![("api_version".to_owned(), self.cfg.api_version.clone())];
        if self.cfg.send_test_flag {
            f.push(("test".into(), "1".into()));
        }
        f
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}/", self.base, path.trim_matches('/'))
    }

    async fn login(&self) -> Result<SecretString> {
        let url = self.url("login/actionLogin");
        let mut fields = self.common_fields();
        fields.push(("username".into(), self.credentials.username.clone()));
        fields.push(("password".into(), self.credentials.password().to_owned()));
        let answer = self
            .http
            .send("login", Safety::Idempotent, || {
                self.http.request(Method::POST, &url).form(&fields)
            })
            .await
            .map_err(|e| match e {
                ConnectorError::Permanent {
                    status: status @ Some(400 | 403),
                    message,
                    ..
                } => ConnectorError::Auth {
                    system: SYSTEM,
                    op: "login",
                    status,
                    message,
                },
                other => other,
            })?;
        let env = Envelope::parse(&answer.body).map_err(|why| {
            errors::garbled(
                "login",
                answer.status.as_u16(),
                &answer.body,
                &why,
                Safety::Idempotent,
            )
        })?;
        let token = errors::login_token(&env)?;
        if HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
            return Err(ConnectorError::Auth {
                system: SYSTEM,
                op: "login",
                status: Some(200),
                message: "login answered with a token that cannot be sent in a header".into(),
            });
        }
        tracing::debug!(system = SYSTEM, user = %self.credentials.username, "logged in");
        Ok(SecretString::from(token))
    }

    /// The cached token (logging in first when there is none) and its generation.
    async fn token(&self) -> Result<(SecretString, u64)> {
        let mut s = self.session.lock().await;
        if let Some(t) = &s.token {
            return Ok((t.clone(), s.generation));
        }
        let t = self.login().await?;
        s.token = Some(t.clone());
        s.generation += 1;
        Ok((t, s.generation))
    }

    /// Logs in again unless another caller already replaced the token of `stale` generation.
    async fn renew(&self, stale: u64) -> Result<()> {
        let mut s = self.session.lock().await;
        if s.generation != stale && s.token.is_some() {
            return Ok(());
        }
        s.token = None;
        let t = self.login().await?;
        s.token = Some(t);
        s.generation += 1;
        Ok(())
    }

    fn build(&self, url: &str, token: &SecretString, payload: &Payload) -> RequestBuilder {
        let mut rb = self.http.request(Method::POST, url);
        if let Ok(mut auth) = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())) {
            auth.set_sensitive(true);
            rb = rb.header("AUTH", auth);
        }
        let mut fields = self.common_fields();
        match payload {
            Payload::Form(f) => {
                fields.extend(f.iter().cloned());
                rb.form(&fields)
            }
            Payload::Multipart { fields: f, file } => {
                fields.extend(f.iter().cloned());
                let mut form = reqwest::multipart::Form::new();
                for (k, v) in fields {
                    form = form.text(k, v);
                }
                form = form.part(
                    "file",
                    reqwest::multipart::Part::bytes(file.clone()).file_name("file"),
                );
                rb.multipart(form)
            }
        }
    }

    async fn call(
        &self,
        op: &'static str,
        path: &str,
        fields: Vec<(String, String)>,
        safety: Safety,
    ) -> Result<Value> {
        self.call_payload(op, path, Payload::Form(fields), safety)
            .await
    }

    /// One API call: the token, the envelope, token renewal (at most `max_relogin` times).
    async fn call_payload(
        &self,
        op: &'static str,
        path: &str,
        payload: Payload,
        safety: Safety,
    ) -> Result<Value> {
        let url = self.url(path);
        let mut renewals = 0;
        loop {
            let (token, generation) = self.token().await?;
            let refused = match self
                .http
                .send(op, safety, || self.build(&url, &token, &payload))
                .await
            {
                // The wrapper renews its token on HTTP 400.
                Err(e) if e.status() == Some(400) => e,
                Err(e) => return Err(e),
                Ok(answer) => {
                    let env = Envelope::parse(&answer.body).map_err(|why| {
                        errors::garbled(op, answer.status.as_u16(), &answer.body, &why, safety)
                    })?;
                    match errors::classify(&env) {
                        Verdict::Success(v) => return Ok(v),
                        Verdict::Business { message, .. } => {
                            return Err(errors::business(op, message));
                        }
                        Verdict::TokenExpired { code, message } => ConnectorError::Auth {
                            system: SYSTEM,
                            op,
                            status: Some(200),
                            message: format!(
                                "Cel.ro keeps refusing fresh session tokens (error {}): {message}",
                                code.unwrap_or(0)
                            ),
                        },
                    }
                }
            };
            if renewals >= self.cfg.max_relogin {
                return Err(refused);
            }
            renewals += 1;
            tracing::debug!(
                system = SYSTEM,
                op,
                renewals,
                "session token refused; logging in again"
            );
            self.renew(generation).await?;
        }
    }

    // -----------------------------------------------------------------------------------------
    // Statuses and orders

    async fn status_names(&self, force: bool) -> Result<HashMap<String, String>> {
        let mut cache = self.statuses.lock().await;
        let ttl = Duration::from_secs(self.cfg.status_list_ttl_secs);
        if let Some(c) = cache.as_ref()
            && !force
            && c.at.elapsed() < ttl
        {
            return Ok(c.names.clone());
        }
        let msg = self
            .call(
                "order_statuses",
                "orders/getOrderStatusList",
                vec![("dummy".into(), "1".into())],
                Safety::Idempotent,
            )
            .await?;
        let names: HashMap<String, String> = wire::parse_status_list(&msg).into_iter().collect();
        if names.is_empty() {
            tracing::warn!(
                system = SYSTEM,
                "orders/getOrderStatusList returned no statuses"
            );
        }
        *cache = Some(StatusCache {
            at: Instant::now(),
            names: names.clone(),
        });
        Ok(names)
    }

    /// The status names, refreshed (at most once a minute) when a code is unknown.
    async fn names_for(&self, raws: &[&str]) -> Result<HashMap<String, String>> {
        let names = self.status_names(false).await?;
        let unknown = raws.iter().any(|r| {
            let r = r.trim();
            r.parse::<i64>().is_ok()
                && !names.contains_key(r)
                && !self.cfg.status_map.by_code.contains_key(r)
        });
        let old = self
            .statuses
            .lock()
            .await
            .as_ref()
            .is_none_or(|c| c.at.elapsed() > Duration::from_secs(60));
        if unknown && old {
            return self.status_names(true).await;
        }
        Ok(names)
    }

    fn parse_orders(&self, op: &'static str, raw: &[Value]) -> Result<Vec<WireOrder>> {
        raw.iter()
            .map(|v| {
                wire::parse_order(v).map_err(|m| {
                    ConnectorError::permanent(
                        SYSTEM,
                        op,
                        format!("unreadable order from Cel.ro: {m}"),
                    )
                })
            })
            .collect()
    }

    async fn orders_page(&self, op: &'static str, sw: &Sweep) -> Result<(Vec<WireOrder>, bool)> {
        let (min, max) = sw.window(&self.cfg);
        let filters = json!({
            "last_changed": {"minDate": min, "maxDate": max},
            "group_by_status": false,
            "order_by_date_purchased": "ASC",
        });
        let msg = self
            .call(
                op,
                "orders/getOrders",
                vec![
                    ("start".into(), sw.start.to_string()),
                    ("limit".into(), self.cfg.orders_page_size.to_string()),
                    ("filters".into(), filters.to_string()),
                ],
                Safety::Idempotent,
            )
            .await?;
        let page = wire::parse_orders_page(&msg).map_err(|m| {
            ConnectorError::permanent(SYSTEM, op, format!("unreadable orders page: {m}"))
        })?;
        Ok((self.parse_orders(op, &page.orders)?, page.more))
    }

    async fn convert_orders(&self, ws: &[WireOrder]) -> Result<Vec<(WireOrder, OrderStatus)>> {
        let raws: Vec<&str> = ws.iter().map(|w| w.status.as_str()).collect();
        let names = self.names_for(&raws).await?;
        Ok(ws
            .iter()
            .map(|w| {
                (
                    w.clone(),
                    convert::resolve_status(&w.status, &names, &self.cfg.status_map),
                )
            })
            .collect())
    }

    fn to_order(&self, op: &'static str, w: &WireOrder, status: OrderStatus) -> Result<Order> {
        convert::order(w, status, self.cfg.server_time)
            .map_err(|m| ConnectorError::permanent(SYSTEM, op, m))
    }

    async fn fetch_order(
        &self,
        op: &'static str,
        id: &ChannelOrderId,
    ) -> Result<(WireOrder, OrderStatus)> {
        let msg = self
            .call(
                op,
                "orders/getOrder",
                vec![("order".into(), id.to_string())],
                Safety::Idempotent,
            )
            .await?;
        let raw = match &msg {
            Value::Array(a) => a.first().cloned().unwrap_or(Value::Null),
            Value::Object(o) if o.contains_key("order") && !o.contains_key("id_comanda") => {
                o["order"].clone()
            }
            other => other.clone(),
        };
        let w = self.parse_orders(op, std::slice::from_ref(&raw))?.remove(0);
        let mut out = self.convert_orders(std::slice::from_ref(&w)).await?;
        Ok(out.remove(0))
    }

    async fn awbs(&self, op: &'static str, id: &ChannelOrderId) -> Result<Vec<WireAwb>> {
        let msg = self
            .call(
                op,
                "orders/getOrderAwbs",
                vec![("orders_id".into(), id.to_string())],
                Safety::Idempotent,
            )
            .await?;
        Ok(wire::parse_awbs(&msg))
    }

    async fn invoices(
        &self,
        op: &'static str,
        id: &ChannelOrderId,
    ) -> Result<Vec<(String, String)>> {
        let msg = self
            .call(
                op,
                "orders/getOrderInvoices",
                vec![("orders_id".into(), id.to_string())],
                Safety::Idempotent,
            )
            .await?;
        Ok(wire::parse_invoices(&msg))
    }

    fn remember_awb(&self, id: &ChannelOrderId) {
        let mut s = self.sent_awbs.lock().unwrap_or_else(|p| p.into_inner());
        if s.len() >= SENT_AWBS_CAP {
            s.clear();
        }
        s.insert(id.to_string());
    }

    fn awb_sent_before(&self, id: &ChannelOrderId) -> bool {
        self.sent_awbs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id.as_str())
    }

    async fn after_awb(&self, id: &ChannelOrderId) -> Result<()> {
        let (path, op) = match self.cfg.after_awb {
            AfterAwb::None => return Ok(()),
            AfterAwb::ReadyForDelivery => ("orders/SetReadyForDelivery", "ship_order"),
            AfterAwb::Finish => ("orders/finishOrder", "ship_order"),
        };
        match self
            .call(
                op,
                path,
                vec![("orders_id".into(), id.to_string())],
                Safety::NonIdempotent,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_business(&e) => {
                let (_, st) = self.fetch_order(op, id).await?;
                if matches!(st, OrderStatus::Shipped | OrderStatus::Completed) {
                    Ok(())
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Catalogue

    async fn import_states(
        &self,
        op: &'static str,
        skus: &[&Sku],
    ) -> Result<HashMap<String, ImportState>> {
        let mut out = HashMap::new();
        for chunk in skus.chunks(self.cfg.status_batch_size) {
            let msg = self
                .call(
                    op,
                    "import/productImportStatus",
                    vec![("products".into(), sku_list(chunk))],
                    Safety::Idempotent,
                )
                .await?;
            out.extend(wire::parse_import_status(&msg));
        }
        Ok(out)
    }

    fn state_of(states: &HashMap<String, ImportState>, sku: &Sku) -> ItemState {
        match states.get(sku.as_str()) {
            Some(ImportState::Approved) => ItemState::Ok,
            Some(ImportState::Rejected(reason)) => ItemState::Failed {
                message: reason.clone(),
                retryable: false,
            },
            // Waiting for moderation, or not visible yet right after the import.
            Some(ImportState::Waiting | ImportState::Unknown) | None => ItemState::Pending,
        }
    }

    /// Maps a call that failed for a whole chunk onto its items; credentials and configuration
    /// problems fail the whole call.
    fn chunk_failed(skus: &[&Sku], e: ConnectorError) -> Result<Vec<ItemResult>> {
        match e.class() {
            ErrorClass::Auth | ErrorClass::Config | ErrorClass::Unsupported => Err(e),
            class => Ok(skus
                .iter()
                .map(|s| ItemResult {
                    sku: (*s).clone(),
                    state: ItemState::Failed {
                        message: e.to_string(),
                        retryable: matches!(class, ErrorClass::Retryable | ErrorClass::InDoubt),
                    },
                })
                .collect()),
        }
    }

    /// Per-SKU results of an answer with saveProducts-style lists. ASSUMPTION \[U\]: an answer
    /// without any such list means every product was applied.
    fn results_from_lists(skus: &[&Sku], msg: &Value) -> Vec<ItemResult> {
        let lists = ItemLists::parse(msg);
        skus.iter()
            .map(|s| {
                let state = if let Some((_, m, r)) =
                    lists.failed.iter().find(|(m, _, _)| m == s.as_str())
                {
                    ItemState::Failed {
                        message: m.clone(),
                        retryable: *r,
                    }
                } else if !lists.recognized || lists.ok.iter().any(|m| m == s.as_str()) {
                    ItemState::Ok
                } else {
                    ItemState::Failed {
                        message: "Cel.ro's answer does not mention this product".into(),
                        retryable: true,
                    }
                };
                ItemResult {
                    sku: (*s).clone(),
                    state,
                }
            })
            .collect()
    }

    async fn stock_and_price(
        &self,
        op: &'static str,
        rows: Vec<(Sku, Value)>,
    ) -> Result<Vec<ItemResult>> {
        let mut out = Vec::new();
        for chunk in rows.chunks(self.cfg.stock_batch_size) {
            let skus: Vec<&Sku> = chunk.iter().map(|(s, _)| s).collect();
            let products = Value::Array(chunk.iter().map(|(_, r)| r.clone()).collect());
            match self
                .call(
                    op,
                    "products/updateStockAndPrice",
                    vec![("products".into(), products.to_string())],
                    Safety::Idempotent,
                )
                .await
            {
                Ok(msg) => out.extend(Self::results_from_lists(&skus, &msg)),
                Err(e) => out.extend(Self::chunk_failed(&skus, e)?),
            }
        }
        Ok(out)
    }

    async fn upsert_chunk(&self, chunk: &[Listing]) -> Result<Vec<ItemResult>> {
        const OP: &str = "upsert_listings";
        let skus: Vec<&Sku> = chunk.iter().map(|l| &l.sku).collect();
        let before = match self.import_states(OP, &skus).await {
            Ok(s) => s,
            Err(e) => return Self::chunk_failed(&skus, e),
        };
        let mut out = Vec::new();
        let mut rows = Vec::new();
        let mut sent: Vec<&Sku> = Vec::new();
        for l in chunk {
            let approved = before.get(l.sku.as_str()) == Some(&ImportState::Approved);
            let row = if approved {
                convert::update_row(l, &self.cfg)
            } else {
                convert::insert_row(l, &self.cfg)
            };
            match row {
                Ok(r) => {
                    rows.push(r);
                    sent.push(&l.sku);
                }
                Err(m) => out.push(ItemResult {
                    sku: l.sku.clone(),
                    state: ItemState::Failed {
                        message: format!("not sent to Cel.ro: {m}"),
                        retryable: false,
                    },
                }),
            }
        }
        if sent.is_empty() {
            return Ok(out);
        }
        let mut fields = Vec::new();
        wire::php_flatten("", &json!({ "products": rows }), &mut fields);
        let lists = match self
            .call(OP, "import/importer", fields, Safety::Idempotent)
            .await
        {
            Ok(msg) => ItemLists::parse(&msg),
            Err(e) => {
                out.extend(Self::chunk_failed(&sent, e)?);
                return Ok(out);
            }
        };
        let after = match self.import_states(OP, &sent).await {
            Ok(s) => s,
            Err(e) => {
                out.extend(Self::chunk_failed(&sent, e)?);
                return Ok(out);
            }
        };
        for sku in sent {
            let state = match lists.failed.iter().find(|(m, _, _)| m == sku.as_str()) {
                Some((_, m, r)) => ItemState::Failed {
                    message: m.clone(),
                    retryable: *r,
                },
                None => Self::state_of(&after, sku),
            };
            out.push(ItemResult {
                sku: sku.clone(),
                state,
            });
        }
        Ok(out)
    }

    // -----------------------------------------------------------------------------------------
    // Returns

    async fn return_requests_page(&self, sw: &Sweep) -> Result<(Vec<wire::WireReturn>, bool)> {
        let (min, max) = sw.window(&self.cfg);
        let msg = self
            .call(
                "list_returns",
                "email/GetReturnRequests",
                vec![
                    ("minDate".into(), min),
                    ("maxDate".into(), max),
                    ("start".into(), sw.start.to_string()),
                ],
                Safety::Idempotent,
            )
            .await?;
        let (list, more) = wire::parse_return_requests(&msg);
        // The page size is undocumented [U]: without a flag, walk until an empty page.
        let more = more.unwrap_or(!list.is_empty());
        Ok((list, more))
    }
}

fn report(items: Vec<ItemResult>) -> BatchReport {
    let pending: Vec<Sku> = items
        .iter()
        .filter(|i| i.state == ItemState::Pending)
        .map(|i| i.sku.clone())
        .collect();
    BatchReport {
        items,
        handle: (!pending.is_empty()).then_some(BatchHandle {
            batch_ids: vec![],
            skus: pending,
            refused: vec![],
        }),
    }
}

#[async_trait]
impl Marketplace for CelroClient {
    fn system(&self) -> canonical::Marketplace {
        canonical::Marketplace::Celro
    }

    fn capabilities(&self) -> Capabilities {
        super::capabilities()
    }

    async fn upsert_listings(&self, listings: &[Listing]) -> Result<BatchReport> {
        let mut items = Vec::new();
        for chunk in listings.chunks(self.cfg.import_batch_size) {
            items.extend(self.upsert_chunk(chunk).await?);
        }
        Ok(report(items))
    }

    async fn poll_batch(&self, handle: &BatchHandle) -> Result<BatchReport> {
        let skus: Vec<&Sku> = handle.skus.iter().collect();
        let states = self.import_states("poll_batch", &skus).await?;
        Ok(report(
            handle
                .skus
                .iter()
                .map(|s| ItemResult {
                    sku: s.clone(),
                    state: Self::state_of(&states, s),
                })
                .collect(),
        ))
    }

    async fn update_stock(&self, updates: &[StockUpdate]) -> Result<BatchReport> {
        let rows = updates
            .iter()
            .map(|u| {
                (
                    u.sku.clone(),
                    json!({"products_model": u.sku.as_str(), "stoc": u.quantity}),
                )
            })
            .collect();
        Ok(report(self.stock_and_price("update_stock", rows).await?))
    }

    async fn update_prices(&self, updates: &[PriceUpdate]) -> Result<BatchReport> {
        let mut items = Vec::new();
        let mut rows = Vec::new();
        for u in updates {
            match convert::ron_price(&u.prices) {
                Ok(p) => {
                    let mut row = json!({"products_model": u.sku.as_str(), "pretf": convert::money_text(p), "hasTVA": 1});
                    if self.cfg.override_price_jumps {
                        row["overridePrice"] = json!(1);
                    }
                    rows.push((u.sku.clone(), row));
                }
                Err(m) => items.push(ItemResult {
                    sku: u.sku.clone(),
                    state: ItemState::Failed {
                        message: format!("not sent to Cel.ro: {m}"),
                        retryable: false,
                    },
                }),
            }
        }
        items.extend(self.stock_and_price("update_prices", rows).await?);
        Ok(report(items))
    }

    async fn list_orders(&self, cursor: Option<&str>) -> Result<OrderPage> {
        const OP: &str = "list_orders";
        let now = Utc::now();
        let sw = match cursor {
            None => Sweep::fresh(&self.cfg, now),
            Some(c) => parse_cursor::<OrdersCursor>(OP, c)?.orders,
        }
        .begin(now);
        let (ws, more) = self.orders_page(OP, &sw).await?;
        let mut orders = Vec::new();
        for (w, st) in self.convert_orders(&ws).await? {
            // Storno (minus) orders are not sales: they surface through list_returns.
            if convert::is_minus_order(&w) {
                continue;
            }
            orders.push(self.to_order(OP, &w, st)?);
        }
        let next = if more {
            sw.next_page(self.cfg.orders_page_size)
        } else {
            sw.next_walk(&self.cfg)
        };
        let cursor =
            serde_json::to_string(&OrdersCursor { v: 1, orders: next }).unwrap_or_default();
        Ok(OrderPage {
            orders,
            cursor,
            more,
        })
    }

    async fn get_order(&self, id: &ChannelOrderId) -> Result<Order> {
        const OP: &str = "get_order";
        let (w, st) = self.fetch_order(OP, id).await?;
        let mut order = self.to_order(OP, &w, st)?;
        for a in self.awbs(OP, id).await? {
            match order.tracking.iter_mut().find(|t| t.number == a.number) {
                Some(t) if t.carrier.is_empty() => t.carrier = a.courier,
                Some(_) => {}
                None => order.tracking.push(Tracking {
                    carrier: a.courier,
                    number: a.number,
                }),
            }
        }
        Ok(order)
    }

    async fn accept_order(&self, id: &ChannelOrderId) -> Result<Transition> {
        const OP: &str = "accept_order";
        match self
            .call(
                OP,
                "orders/confirmOrder",
                vec![("order".into(), id.to_string())],
                Safety::NonIdempotent,
            )
            .await
        {
            Ok(_) => Ok(Transition::Done),
            Err(e) if is_business(&e) => {
                let (_, st) = self.fetch_order(OP, id).await?;
                match st {
                    OrderStatus::Accepted | OrderStatus::Shipped | OrderStatus::Completed => {
                        Ok(Transition::AlreadyDone)
                    }
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn ship_order(&self, id: &ChannelOrderId, tracking: &[Tracking]) -> Result<Transition> {
        const OP: &str = "ship_order";
        let pickup = self.cfg.pickup_address_id.ok_or_else(|| {
            ConnectorError::config(
                SYSTEM,
                "pickup_address_id (idAdresaRidicare) is required to ship Cel.ro orders",
            )
        })?;
        if tracking.is_empty() {
            return Err(ConnectorError::permanent(
                SYSTEM,
                OP,
                "no tracking number to attach",
            ));
        }
        if let Some(t) = tracking.iter().find(|t| t.number.trim().is_empty()) {
            return Err(ConnectorError::permanent(
                SYSTEM,
                OP,
                format!("empty tracking number (carrier {:?})", t.carrier),
            ));
        }
        // An AWB this client sent before (maybe in doubt) is looked up instead of re-sent.
        let mut present: Vec<String> = if self.awb_sent_before(id) {
            self.awbs(OP, id)
                .await?
                .into_iter()
                .map(|a| a.number)
                .collect()
        } else {
            Vec::new()
        };
        let mut sent_any = false;
        for t in tracking {
            let number = t.number.trim();
            if present.iter().any(|p| p == number) {
                continue;
            }
            let mut fields = vec![
                ("orders_id".into(), id.to_string()),
                ("awb".into(), number.to_owned()),
                ("idAdresaRidicare".into(), pickup.to_string()),
            ];
            if self.cfg.send_courier_name && !t.carrier.trim().is_empty() {
                fields.push(("courier".into(), t.carrier.trim().to_owned()));
            }
            self.remember_awb(id);
            match self
                .call(OP, "orders/importAWB", fields, Safety::NonIdempotent)
                .await
            {
                Ok(_) => sent_any = true,
                Err(e) if is_business(&e) => {
                    // Refused: already there (a retry), or a real refusal.
                    present = self
                        .awbs(OP, id)
                        .await?
                        .into_iter()
                        .map(|a| a.number)
                        .collect();
                    if !present.iter().any(|p| p == number) {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        if sent_any {
            self.after_awb(id).await?;
            return Ok(Transition::Done);
        }
        // Every AWB was already there: finish what an earlier attempt may have left undone.
        if self.cfg.after_awb != AfterAwb::None {
            let (_, st) = self.fetch_order(OP, id).await?;
            if matches!(st, OrderStatus::New | OrderStatus::Accepted) {
                self.after_awb(id).await?;
            }
        }
        Ok(Transition::AlreadyDone)
    }

    async fn cancel_order(&self, id: &ChannelOrderId, reason: &str) -> Result<Transition> {
        const OP: &str = "cancel_order";
        let mut fields = vec![("order".into(), id.to_string())];
        if let Some(m) = self.cfg.cancel_reason_id {
            fields.push(("motiv".into(), m.to_string()));
        }
        let reason = reason.trim();
        if reason.chars().count() > 4 {
            fields.push(("observatii".into(), reason.to_owned()));
        } else if self.cfg.cancel_reason_id.is_none() {
            return Err(ConnectorError::permanent(
                SYSTEM,
                OP,
                format!(
                    "reason {reason:?} is too short: Cel.ro needs more than 4 characters when no \
                     cancel_reason_id is configured"
                ),
            ));
        }
        match self
            .call(OP, "orders/cancelOrder", fields, Safety::NonIdempotent)
            .await
        {
            Ok(_) => Ok(Transition::Done),
            Err(e) if is_business(&e) => {
                let (_, st) = self.fetch_order(OP, id).await?;
                if st == OrderStatus::Cancelled {
                    Ok(Transition::AlreadyDone)
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn attach_invoice(
        &self,
        id: &ChannelOrderId,
        invoice: &InvoiceFile,
    ) -> Result<Transition> {
        const OP: &str = "attach_invoice";
        let series = invoice.series.trim();
        let number = invoice.number.trim();
        if series.is_empty() || number.is_empty() {
            return Err(ConnectorError::permanent(
                SYSTEM,
                OP,
                "invoice series and number are required",
            ));
        }
        if invoice.pdf.is_empty() {
            return Err(ConnectorError::permanent(
                SYSTEM,
                OP,
                "invoice file is empty",
            ));
        }
        let has = |list: &[(String, String)]| list.iter().any(|(s, n)| s == series && n == number);
        if has(&self.invoices(OP, id).await?) {
            return Ok(Transition::AlreadyDone);
        }
        let payload = Payload::Multipart {
            fields: vec![
                ("oid".into(), id.to_string()),
                ("series".into(), series.to_owned()),
                ("number".into(), number.to_owned()),
                (
                    "providerId".into(),
                    self.cfg.invoice_provider_id.to_string(),
                ),
            ],
            file: invoice.pdf.clone(),
        };
        match self
            .call_payload(OP, "orders/addOrderInvoice", payload, Safety::NonIdempotent)
            .await
        {
            Ok(_) => Ok(Transition::Done),
            Err(e) if is_business(&e) => {
                if has(&self.invoices(OP, id).await?) {
                    Ok(Transition::AlreadyDone)
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn list_returns(&self, cursor: Option<&str>) -> Result<ReturnsPage> {
        const OP: &str = "list_returns";
        let now = Utc::now();
        let mut c = match cursor {
            None => ReturnsCursor {
                v: 1,
                orders: Sweep::fresh(&self.cfg, now),
                orders_done: false,
                requests: Sweep::fresh(&self.cfg, now),
                requests_done: false,
            },
            Some(s) => parse_cursor::<ReturnsCursor>(OP, s)?,
        };
        let mut events = Vec::new();
        if !c.orders_done {
            let sw = c.orders.begin(now);
            let (ws, more) = self.orders_page(OP, &sw).await?;
            for (w, st) in self.convert_orders(&ws).await? {
                events.extend(
                    convert::order_events(&w, st, self.cfg.server_time)
                        .map_err(|m| ConnectorError::permanent(SYSTEM, OP, m))?,
                );
            }
            c.orders = if more {
                sw.next_page(self.cfg.orders_page_size)
            } else {
                sw.next_walk(&self.cfg)
            };
            c.orders_done = !more;
        }
        if !c.requests_done {
            let sw = c.requests.begin(now);
            let (list, more) = self.return_requests_page(&sw).await?;
            for r in &list {
                events.push(
                    convert::return_request_event(r, self.cfg.server_time)
                        .map_err(|m| ConnectorError::permanent(SYSTEM, OP, m))?,
                );
            }
            let advance = u32::try_from(list.len()).unwrap_or(u32::MAX);
            c.requests = if more {
                sw.next_page(advance)
            } else {
                sw.next_walk(&self.cfg)
            };
            c.requests_done = !more;
        }
        let more = !(c.orders_done && c.requests_done);
        if !more {
            c.orders_done = false;
            c.requests_done = false;
        }
        let mut seen = HashSet::new();
        events.retain(|e| seen.insert(e.event_id.clone()));
        Ok(ReturnsPage {
            events,
            cursor: serde_json::to_string(&c).unwrap_or_default(),
            more,
        })
    }

    fn parse_callback(&self, query: &str, body: &[u8]) -> Result<WakeUp> {
        convert::parse_callback(query, body)
            .map_err(|m| ConnectorError::permanent(SYSTEM, "parse_callback", m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> CelroClient {
        CelroClient::new(
            &Config::default(),
            Credentials::new("shop@x.ro", "pa55-w0rd-secret"),
            None,
        )
        .unwrap()
    }

    #[test]
    fn debug_hides_credentials_and_session() {
        let c = client();
        let shown = format!("{c:?}");
        assert!(!shown.contains("pa55-w0rd-secret"), "{shown}");
        assert!(
            shown.contains("shop@x.ro") && shown.contains("redacted"),
            "{shown}"
        );
    }

    #[test]
    fn from_json_refuses_bad_settings_and_credentials_as_config_errors() {
        let creds = json!({"username": "u", "password": "p"});
        let ok = CelroClient::from_json(Value::Null, creds.as_object().unwrap(), None).unwrap();
        assert_eq!(
            ok.url("orders/getOrders"),
            "https://api-mp.cel.ro/market_api/orders/getOrders/"
        );
        let e =
            CelroClient::from_json(json!({"max_relogin": 99}), creds.as_object().unwrap(), None)
                .unwrap_err();
        assert_eq!(e.class(), ErrorClass::Config);
        let e = CelroClient::from_json(
            json!({}),
            json!({"username": "u"}).as_object().unwrap(),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("`password` is missing"), "{e}");
    }

    #[test]
    fn sweeps_page_then_restart_with_overlap() {
        let cfg = Config::default();
        let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let s = Sweep::fresh(&cfg, now).begin(now);
        assert_eq!(s.min, 1_800_000_000 - 30 * 86_400);
        let p2 = s.next_page(50);
        assert_eq!((p2.start, p2.sweep), (50, s.sweep));
        // A later page keeps its walk's start; a new walk restarts it.
        let later = now + chrono::Duration::hours(1);
        assert_eq!(p2.begin(later).sweep, s.sweep);
        let n = p2.next_walk(&cfg);
        assert_eq!((n.min, n.start), (1_800_000_000 - 900, 0));
        assert_eq!(n.begin(later).sweep, later.timestamp());
        let (min, max) = s.window(&cfg);
        assert!(min < max, "{min} {max}");
        let c = serde_json::to_string(&OrdersCursor { v: 1, orders: n }).unwrap();
        assert_eq!(
            parse_cursor::<OrdersCursor>("list_orders", &c)
                .unwrap()
                .orders,
            n
        );
        let e = parse_cursor::<OrdersCursor>("list_orders", "garbage").unwrap_err();
        assert!(e.to_string().contains("cursor"), "{e}");
    }

    #[test]
    fn item_lists_map_per_sku_and_silence_means_applied() {
        let a = Sku::new("A").unwrap();
        let b = Sku::new("B").unwrap();
        let c = Sku::new("C").unwrap();
        let r = CelroClient::results_from_lists(
            &[&a, &b, &c],
            &json!({"updated": ["A"], "notUpdated": [{"products_model": "B", "message": "Pret >10%"}]}),
        );
        assert_eq!(r[0].state, ItemState::Ok);
        assert_eq!(
            r[1].state,
            ItemState::Failed {
                message: "Pret >10%".into(),
                retryable: false
            }
        );
        assert!(matches!(
            r[2].state,
            ItemState::Failed {
                retryable: true,
                ..
            }
        ));
        let r = CelroClient::results_from_lists(&[&a], &json!(true));
        assert_eq!(r[0].state, ItemState::Ok);
        let failed =
            CelroClient::chunk_failed(&[&a], ConnectorError::retryable(SYSTEM, "x", "timed out"))
                .unwrap();
        assert!(matches!(
            failed[0].state,
            ItemState::Failed {
                retryable: true,
                ..
            }
        ));
        assert!(CelroClient::chunk_failed(&[&a], ConnectorError::config(SYSTEM, "x")).is_err());
    }
}
