//! The CDON Merchants API client: [`CdonClient`] implements [`Marketplace`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use canonical::{
    ChannelOrderId, Listing, Marketplace as System, Order, PriceUpdate, Sku, StockUpdate, Tracking,
};
use reqwest::header::ACCEPT;
use reqwest::{Method, Url};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::capabilities::NO_INVOICE_UPLOAD;
use super::config::{Config, Credentials};
use super::convert;
use super::errors::{self, OrderAction};
use super::wire::{
    self, BulkCreateRequest, BulkCreateResponse, BulkUpdateRequest, BulkUpdateResponse,
    FulfillRequest, OrderState, PriceBody, QuantityBody, SkuStatusRequest, SkuStatusResponse,
    StatusBatchRequest, StatusBatchResponse, StatusRow, TrackingInformation, UpdateAction, action,
};
use super::{SYSTEM, capabilities};
use crate::error::{ConnectorError, Result};
use crate::gate::CallGate;
use crate::http::{Answer, Http, Safety};
use crate::marketplace::{
    BatchHandle, BatchReport, InvoiceFile, ItemResult, ItemState, Marketplace, OrderPage,
    ReturnsPage, Transition, WakeUp,
};
use crate::{Capabilities, ErrorClass};

/// Why `parse_callback` is unsupported.
pub const NO_WEBHOOKS: &str = "CDON's Merchants API has no webhooks (the client starts every \
    exchange); orders are polled";

/// The largest quantity CDON accepts.
const MAX_QUANTITY: u32 = 500_000;

/// The states `list_orders` walks, in order.
const ORDER_STATES: [OrderState; 2] = [OrderState::Created, OrderState::Accepted];
/// The state `list_returns` walks.
const RETURN_STATES: [OrderState; 1] = [OrderState::NotFulfilled];

/// A CDON Merchants API client for one merchant. `Debug` never shows the credentials.
#[derive(Debug)]
pub struct CdonClient {
    http: Http,
    base: Url,
    config: Config,
    credentials: Credentials,
}

/// The actions sent for one input item (an index into the caller's slice).
struct Group {
    index: usize,
    sku: String,
    actions: Vec<UpdateAction>,
}

/// Per-item outcomes being collected, in input order.
struct Outcomes {
    states: Vec<Option<ItemState>>,
    batch_ids: Vec<String>,
    /// A call failed after earlier chunks were accepted: send nothing more.
    stopped: bool,
}

impl Outcomes {
    fn new(n: usize) -> Self {
        Self {
            states: vec![None; n],
            batch_ids: Vec::new(),
            stopped: false,
        }
    }

    /// A chunk's call failed. With nothing accepted yet the whole call fails (`Err`);
    /// otherwise the accepted items keep their handle and every item not sent yet fails with
    /// the error (retryable when the error is).
    fn stop(&mut self, e: ConnectorError) -> Result<()> {
        if !self.states.contains(&Some(ItemState::Pending)) {
            return Err(e);
        }
        let retryable = matches!(e.class(), ErrorClass::Retryable | ErrorClass::InDoubt);
        for s in self.states.iter_mut().filter(|s| s.is_none()) {
            *s = Some(ItemState::Failed {
                message: format!("not applied: {e}"),
                retryable,
            });
        }
        self.stopped = true;
        Ok(())
    }

    fn set(&mut self, i: usize, s: ItemState) {
        self.states[i] = Some(s);
    }

    fn fail(&mut self, i: usize, message: impl Into<String>, retryable: bool) {
        self.set(
            i,
            ItemState::Failed {
                message: message.into(),
                retryable,
            },
        );
    }

    fn add_batch(&mut self, id: String) {
        if !self.batch_ids.contains(&id) {
            self.batch_ids.push(id);
        }
    }

    /// The report, with a handle when items are pending. The handle names every item (in
    /// input order) and carries the refusals made at submission, so that polling it reports
    /// the whole batch.
    fn report(self, skus: Vec<Sku>) -> BatchReport {
        let items: Vec<ItemResult> = skus
            .into_iter()
            .zip(self.states)
            .map(|(sku, state)| ItemResult {
                sku,
                state: state.unwrap_or(ItemState::Failed {
                    message: "not sent (internal: no outcome recorded)".into(),
                    retryable: true,
                }),
            })
            .collect();
        if !items.iter().any(|i| i.state == ItemState::Pending) {
            return BatchReport {
                items,
                handle: None,
            };
        }
        let batch_ids = self.batch_ids;
        let (mut skus, mut refused): (Vec<Sku>, Vec<ItemResult>) = (Vec::new(), Vec::new());
        for item in &items {
            if skus.contains(&item.sku) {
                continue;
            }
            skus.push(item.sku.clone());
            if matches!(item.state, ItemState::Failed { .. }) {
                refused.push(item.clone());
            }
        }
        BatchReport {
            items,
            handle: Some(BatchHandle {
                batch_ids,
                skus,
                refused,
            }),
        }
    }
}

const NOT_MENTIONED: &str = "CDON's answer did not mention this SKU; send it again";
const NO_BATCH_ID: &str =
    "CDON accepted the item but returned no batch_id to follow; send it again";

impl CdonClient {
    /// Builds a client; `config` is validated first (errors are `ConnectorError::Config`).
    pub fn new(
        config: &Config,
        credentials: Credentials,
        gate: Option<Arc<dyn CallGate>>,
    ) -> Result<Self> {
        config.validate()?;
        let base = config.base()?;
        let http = Http::new(SYSTEM, &config.http, gate, errors::error_body)?;
        Ok(Self {
            http,
            base,
            config: config.clone(),
            credentials,
        })
    }

    /// Builds a client from a connection's stored settings (`{}` or `null`: defaults) and
    /// credentials (`{"merchant_id", "token"}`).
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

    /// One call with Basic auth and `x-merchant-id`, JSON body if any.
    async fn send<B: Serialize + ?Sized>(
        &self,
        op: &'static str,
        safety: Safety,
        method: Method,
        url: &Url,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<Answer> {
        let user = self.credentials.merchant_id.as_str();
        let token = self.credentials.token.expose_secret();
        self.http
            .send(op, safety, || {
                let mut r = self
                    .http
                    .request(method.clone(), url.as_str())
                    .basic_auth(user, Some(token))
                    .header("x-merchant-id", user)
                    .header(ACCEPT, "application/json");
                if !query.is_empty() {
                    r = r.query(query);
                }
                if let Some(b) = body {
                    r = r.json(b);
                }
                r
            })
            .await
    }

    async fn call<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        op: &'static str,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<R> {
        let url = self.url(segments)?;
        self.send(op, Safety::Idempotent, method, &url, query, body)
            .await?
            .json(SYSTEM, op)
    }

    /// The SKUs CDON's status rows (`POST /v1/statuses/sku`) prove to exist.
    async fn existing_skus(&self, op: &'static str, skus: Vec<String>) -> Result<HashSet<String>> {
        let resp: SkuStatusResponse = self
            .call(
                op,
                Method::POST,
                &["v1", "statuses", "sku"],
                &[],
                Some(&SkuStatusRequest { skus }),
            )
            .await?;
        let mut exists: HashMap<&str, (bool, bool)> = HashMap::new();
        for row in &resp.statuses {
            let (yes, gone) = exists.entry(row.sku.as_str()).or_default();
            match existence(row) {
                Existence::Exists => *yes = true,
                Existence::Gone => *gone = true,
                Existence::Unknown => {}
            }
        }
        Ok(exists
            .into_iter()
            .filter(|(_, (yes, gone))| *yes && !*gone)
            .map(|(s, _)| s.to_owned())
            .collect())
    }

    /// Sends update groups (never splitting a group) in requests of at most `per_request`
    /// actions, recording each group's outcome.
    async fn put_updates(
        &self,
        op: &'static str,
        groups: Vec<Group>,
        per_request: usize,
        out: &mut Outcomes,
    ) -> Result<()> {
        let mut chunks: Vec<Vec<Group>> = Vec::new();
        let mut count = 0;
        for g in groups {
            if chunks.is_empty() || count + g.actions.len() > per_request {
                chunks.push(Vec::new());
                count = 0;
            }
            count += g.actions.len();
            if let Some(last) = chunks.last_mut() {
                last.push(g);
            }
        }
        for chunk in chunks {
            let actions: Vec<UpdateAction> = chunk
                .iter()
                .flat_map(|g| g.actions.iter().cloned())
                .collect();
            let resp: BulkUpdateResponse = match self
                .call(
                    op,
                    Method::PUT,
                    &["v2", "articles", "bulk"],
                    &[],
                    Some(&BulkUpdateRequest { actions }),
                )
                .await
            {
                Ok(r) => r,
                Err(e) => return out.stop(e),
            };
            let mut pending = false;
            for g in &chunk {
                let failures: Vec<String> = resp
                    .failed
                    .iter()
                    .filter(|f| f.sku == g.sku)
                    .map(|f| match &f.action {
                        Some(a) => format!("{a}: {}", errors::item_message(&f.errors)),
                        None => errors::item_message(&f.errors),
                    })
                    .collect();
                let accepted = resp.success.iter().filter(|s| s.sku == g.sku).count();
                if !failures.is_empty() {
                    out.fail(g.index, failures.join("; "), false);
                } else if accepted == 0 {
                    out.fail(g.index, NOT_MENTIONED, true);
                } else if resp.batch_id.is_none() {
                    out.fail(g.index, NO_BATCH_ID, true);
                } else {
                    out.set(g.index, ItemState::Pending);
                    pending = true;
                }
            }
            if pending && let Some(id) = resp.batch_id {
                out.add_batch(id);
            }
        }
        Ok(())
    }

    /// One chunk of `upsert_listings`: existence check, creates, updates.
    async fn upsert_chunk(
        &self,
        op: &'static str,
        chunk: &[(usize, wire::Article)],
        out: &mut Outcomes,
    ) -> Result<()> {
        let existing = if self.config.check_existing_skus {
            let skus = chunk.iter().map(|(_, a)| a.sku.clone()).collect();
            self.existing_skus(op, skus).await?
        } else {
            HashSet::new()
        };
        let (mut updates, creates): (Vec<_>, Vec<_>) =
            chunk.iter().partition(|(_, a)| existing.contains(&a.sku));
        if !creates.is_empty() {
            let articles = creates.iter().map(|(_, a)| a.clone()).collect();
            let resp: BulkCreateResponse = self
                .call(
                    op,
                    Method::POST,
                    &["v2", "articles", "bulk"],
                    &[],
                    Some(&BulkCreateRequest { articles }),
                )
                .await?;
            let mut pending = false;
            for item in creates {
                let (i, a) = item;
                if let Some(f) = resp.failed.iter().find(|f| f.sku == a.sku) {
                    if errors::is_already_exists(f) {
                        updates.push(item);
                    } else {
                        out.fail(*i, errors::item_message(&f.errors), false);
                    }
                } else if !resp.success.iter().any(|s| s.sku == a.sku) {
                    out.fail(*i, NOT_MENTIONED, true);
                } else if resp.batch_id.is_none() {
                    out.fail(*i, NO_BATCH_ID, true);
                } else {
                    out.set(*i, ItemState::Pending);
                    pending = true;
                }
            }
            if pending && let Some(id) = resp.batch_id {
                out.add_batch(id);
            }
        }
        if !updates.is_empty() {
            let mut groups = Vec::new();
            for (i, a) in updates {
                let body = |v: Result<Value, serde_json::Error>| {
                    v.map_err(|e| {
                        ConnectorError::permanent(SYSTEM, op, format!("encoding {}: {e}", a.sku))
                    })
                };
                let sku = a.sku.clone();
                let act = |name: &str, body: Value| UpdateAction {
                    sku: sku.clone(),
                    action: name.to_owned(),
                    body: Some(body),
                };
                groups.push(Group {
                    index: *i,
                    sku: sku.clone(),
                    actions: vec![
                        act(action::UPDATE_ARTICLE, body(serde_json::to_value(&a.body))?),
                        act(
                            action::UPDATE_PRICE,
                            body(serde_json::to_value(PriceBody {
                                price: a.price.clone(),
                            }))?,
                        ),
                        act(
                            action::UPDATE_QUANTITY,
                            body(serde_json::to_value(QuantityBody {
                                quantity: a.quantity,
                            }))?,
                        ),
                    ],
                });
            }
            let per = self.config.updates_per_request;
            self.put_updates(op, groups, per, out).await?;
        }
        Ok(())
    }

    /// Walks `states` page by page from `cursor`; see [`Cursor`].
    async fn walk(
        &self,
        op: &'static str,
        kind: &'static str,
        states: &[OrderState],
        cursor: Option<&str>,
    ) -> Result<(Vec<wire::Order>, String, bool)> {
        let at = Cursor::decode(op, kind, states, cursor)?;
        let limit = self.config.orders_page_size;
        let orders: Vec<wire::Order> = self
            .call::<(), _>(
                op,
                Method::GET,
                &["v1", "orders", ""],
                &[
                    ("state", states[at.state].as_str().to_owned()),
                    ("limit", limit.to_string()),
                    ("page", at.page.to_string()),
                ],
                None,
            )
            .await?;
        let full = orders.len() >= limit as usize;
        let (next, more) = if full {
            (
                Cursor {
                    page: at.page + 1,
                    ..at
                },
                true,
            )
        } else if at.state + 1 < states.len() {
            (
                Cursor {
                    state: at.state + 1,
                    page: 1,
                },
                true,
            )
        } else {
            (Cursor::START, false)
        };
        Ok((orders, next.encode(kind, states), more))
    }

    async fn transition(
        &self,
        op: &'static str,
        id: &ChannelOrderId,
        act: OrderAction,
        body: Option<&Value>,
    ) -> Result<Transition> {
        let url = self.url(&["v1", "orders", id.as_str(), act.path()])?;
        match self
            .send(op, Safety::NonIdempotent, Method::PUT, &url, &[], body)
            .await
        {
            Ok(answer) => {
                let said = errors::error_body(&answer.body).unwrap_or_default();
                tracing::debug!(system = SYSTEM, op, order = %id, description = %said, "order action accepted");
                Ok(Transition::Done)
            }
            Err(e) => errors::order_action_outcome(act, e),
        }
    }

    fn convert_orders(op: &'static str, orders: &[wire::Order]) -> Result<Vec<Order>> {
        orders
            .iter()
            .map(|o| {
                convert::order_to_canonical(o).map_err(|m| ConnectorError::permanent(SYSTEM, op, m))
            })
            .collect()
    }
}

/// What a status row says about whether its article exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existence {
    /// Processed ok, refused as `sku_already_exists`, or an update CDON took.
    Exists,
    /// Deleted, or refused as `article_does_not_exist`.
    Gone,
    /// A create not (yet) processed ok: says nothing.
    Unknown,
}

pub fn existence(row: &StatusRow) -> Existence {
    let code = |c: &str| {
        row.markets
            .iter()
            .any(|m| m.error_code.as_deref() == Some(c))
    };
    if code("sku_already_exists") {
        return Existence::Exists;
    }
    if code("article_does_not_exist") {
        return Existence::Gone;
    }
    let any_ok = row.markets.iter().any(|m| m.status == "ok");
    match row.action.as_deref() {
        Some(action::DELETE) if any_ok => Existence::Gone,
        Some(action::DELETE) => Existence::Unknown,
        Some(a) if a.starts_with("update_") => Existence::Exists,
        _ if any_ok => Existence::Exists,
        _ => Existence::Unknown,
    }
}

/// Folds the status rows of one SKU: any `failed` market → `Failed` (with the error codes;
/// retryable only when every code is `sku_already_exists`), every market of every row `ok` →
/// `Ok`, otherwise `Pending`.
pub fn fold_status(rows: &[&StatusRow]) -> ItemState {
    let mut failures = Vec::new();
    let mut all_ok = !rows.is_empty();
    let mut only_exists = true;
    for row in rows {
        if row.markets.is_empty() {
            all_ok = false;
        }
        for m in &row.markets {
            match m.status.to_ascii_lowercase().as_str() {
                "ok" => {}
                "failed" => {
                    let code = m.error_code.as_deref().unwrap_or("no error code");
                    only_exists &= code == "sku_already_exists";
                    failures.push(format!(
                        "{} failed on {}: {code}",
                        row.action.as_deref().unwrap_or("action"),
                        m.market
                    ));
                }
                _ => all_ok = false,
            }
        }
    }
    if !failures.is_empty() {
        let mut message = failures.join("; ");
        if only_exists {
            message.push_str(
                " (the article already exists on CDON; upserting it again sends an update)",
            );
        }
        ItemState::Failed {
            message,
            retryable: only_exists,
        }
    } else if all_ok {
        ItemState::Ok
    } else {
        ItemState::Pending
    }
}

/// Where an order walk stands: a state (index into the walked states) and a page (from 1).
/// Encoded `cdon:<kind>:<STATE>:<page>`; opaque to the flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub state: usize,
    pub page: u32,
}

impl Cursor {
    pub const START: Cursor = Cursor { state: 0, page: 1 };

    pub fn encode(self, kind: &str, states: &[OrderState]) -> String {
        format!("cdon:{kind}:{}:{}", states[self.state].as_str(), self.page)
    }

    /// `None` or `""` is the start; anything not made by [`Cursor::encode`] for this walk is
    /// refused (clear the stored cursor to start over: every pass re-lists open orders).
    pub fn decode(
        op: &'static str,
        kind: &str,
        states: &[OrderState],
        cursor: Option<&str>,
    ) -> Result<Cursor> {
        let Some(c) = cursor.map(str::trim).filter(|c| !c.is_empty()) else {
            return Ok(Cursor::START);
        };
        let bad = || {
            let names: Vec<&str> = states.iter().map(OrderState::as_str).collect();
            ConnectorError::permanent(
                SYSTEM,
                op,
                format!(
                    "unreadable cursor {c:?}: expected cdon:{kind}:<{}>:<page ≥ 1>; clear the \
                     stored cursor to start over",
                    names.join("|")
                ),
            )
        };
        let mut parts = c.split(':');
        let (Some("cdon"), Some(k), Some(state), Some(page), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad());
        };
        if k != kind {
            return Err(bad());
        }
        let state = states
            .iter()
            .position(|s| s.as_str() == state)
            .ok_or_else(bad)?;
        let page: u32 = page.parse().ok().filter(|p| *p >= 1).ok_or_else(bad)?;
        Ok(Cursor { state, page })
    }
}

fn duplicate(sku: &Sku) -> String {
    format!("sku: {sku} appears more than once in this batch; send it once")
}

#[async_trait]
impl Marketplace for CdonClient {
    fn system(&self) -> System {
        System::Cdon
    }

    fn capabilities(&self) -> Capabilities {
        capabilities()
    }

    async fn upsert_listings(&self, listings: &[Listing]) -> Result<BatchReport> {
        let op = "upsert_listings";
        let mut out = Outcomes::new(listings.len());
        let mut seen = HashSet::new();
        let mut ready = Vec::new();
        for (i, l) in listings.iter().enumerate() {
            if !seen.insert(&l.sku) {
                out.fail(i, duplicate(&l.sku), false);
                continue;
            }
            match convert::listing_to_article(l, &self.config) {
                Ok(a) => ready.push((i, a)),
                Err(m) => out.fail(i, m, false),
            }
        }
        for chunk in ready.chunks(self.config.articles_per_create) {
            if let Err(e) = self.upsert_chunk(op, chunk, &mut out).await {
                out.stop(e)?;
            }
            if out.stopped {
                break;
            }
        }
        Ok(out.report(listings.iter().map(|l| l.sku.clone()).collect()))
    }

    async fn poll_batch(&self, handle: &BatchHandle) -> Result<BatchReport> {
        let op = "poll_batch";
        let batch_ids = handle.batch_ids.clone();
        let refused: HashMap<String, ItemState> = handle
            .refused
            .iter()
            .map(|i| (i.sku.to_string(), i.state.clone()))
            .collect();
        if batch_ids.is_empty() && refused.is_empty() {
            return Err(ConnectorError::permanent(
                SYSTEM,
                op,
                "the batch handle names no CDON batch_id",
            ));
        }
        let resp = if batch_ids.is_empty() {
            StatusBatchResponse {
                batches: Vec::new(),
            }
        } else {
            self.call(
                op,
                Method::POST,
                &["v1", "statuses", "batch"],
                &[],
                Some(&StatusBatchRequest {
                    batch_ids: batch_ids.clone(),
                }),
            )
            .await?
        };
        let mut rows: HashMap<&str, Vec<&StatusRow>> = HashMap::new();
        for b in &resp.batches {
            if batch_ids.contains(&b.id) {
                for r in &b.statuses {
                    rows.entry(r.sku.as_str()).or_default().push(r);
                }
            }
        }
        let items: Vec<ItemResult> = handle
            .skus
            .iter()
            .map(|sku| ItemResult {
                sku: sku.clone(),
                state: match refused.get(sku.as_str()) {
                    Some(r) => r.clone(),
                    None => fold_status(rows.get(sku.as_str()).map_or(&[][..], Vec::as_slice)),
                },
            })
            .collect();
        let pending = items.iter().any(|i| i.state == ItemState::Pending);
        Ok(BatchReport {
            items,
            handle: pending.then(|| handle.clone()),
        })
    }

    async fn update_stock(&self, updates: &[StockUpdate]) -> Result<BatchReport> {
        let op = "update_stock";
        let mut out = Outcomes::new(updates.len());
        let mut seen = HashSet::new();
        let mut groups = Vec::new();
        for (i, u) in updates.iter().enumerate() {
            if !seen.insert(&u.sku) {
                out.fail(i, duplicate(&u.sku), false);
            } else if u.quantity > MAX_QUANTITY {
                out.fail(
                    i,
                    format!(
                        "quantity: {} exceeds CDON's maximum of {MAX_QUANTITY}",
                        u.quantity
                    ),
                    false,
                );
            } else {
                groups.push(Group {
                    index: i,
                    sku: u.sku.to_string(),
                    actions: vec![UpdateAction {
                        sku: u.sku.to_string(),
                        action: action::UPDATE_QUANTITY.to_owned(),
                        body: Some(json!({ "quantity": u.quantity })),
                    }],
                });
            }
        }
        let per = self.config.quantity_updates_per_request;
        self.put_updates(op, groups, per, &mut out).await?;
        Ok(out.report(updates.iter().map(|u| u.sku.clone()).collect()))
    }

    async fn update_prices(&self, updates: &[PriceUpdate]) -> Result<BatchReport> {
        let op = "update_prices";
        let mut out = Outcomes::new(updates.len());
        let mut seen = HashSet::new();
        let mut groups = Vec::new();
        for (i, u) in updates.iter().enumerate() {
            if !seen.insert(&u.sku) {
                out.fail(i, duplicate(&u.sku), false);
                continue;
            }
            match convert::price_entries(&u.sku, &u.prices, u.vat, &self.config) {
                Err(m) => out.fail(i, m, false),
                Ok(price) => {
                    let body = serde_json::to_value(PriceBody { price }).map_err(|e| {
                        ConnectorError::permanent(SYSTEM, op, format!("encoding {}: {e}", u.sku))
                    })?;
                    groups.push(Group {
                        index: i,
                        sku: u.sku.to_string(),
                        actions: vec![UpdateAction {
                            sku: u.sku.to_string(),
                            action: action::UPDATE_PRICE.to_owned(),
                            body: Some(body),
                        }],
                    });
                }
            }
        }
        let per = self.config.updates_per_request;
        self.put_updates(op, groups, per, &mut out).await?;
        Ok(out.report(updates.iter().map(|u| u.sku.clone()).collect()))
    }

    async fn list_orders(&self, cursor: Option<&str>) -> Result<OrderPage> {
        let op = "list_orders";
        let (orders, cursor, more) = self.walk(op, "orders", &ORDER_STATES, cursor).await?;
        Ok(OrderPage {
            orders: Self::convert_orders(op, &orders)?,
            cursor,
            more,
        })
    }

    async fn get_order(&self, id: &ChannelOrderId) -> Result<Order> {
        let op = "get_order";
        let o: wire::Order = self
            .call::<(), _>(op, Method::GET, &["v1", "orders", id.as_str()], &[], None)
            .await?;
        let mut orders = Self::convert_orders(op, std::slice::from_ref(&o))?;
        orders
            .pop()
            .ok_or_else(|| ConnectorError::permanent(SYSTEM, op, "no order"))
    }

    async fn accept_order(&self, id: &ChannelOrderId) -> Result<Transition> {
        self.transition("accept_order", id, OrderAction::Accept, None)
            .await
    }

    async fn ship_order(&self, id: &ChannelOrderId, tracking: &[Tracking]) -> Result<Transition> {
        let op = "ship_order";
        let mut entries = Vec::with_capacity(tracking.len());
        for t in tracking {
            let number = t.number.trim();
            if number.is_empty() {
                return Err(ConnectorError::permanent(
                    SYSTEM,
                    op,
                    "tracking_number: a tracking entry has a blank number",
                ));
            }
            let carrier_name = match t.carrier.trim() {
                "" => None,
                c => Some(
                    convert::normalize_carrier(c, &self.config.carrier_names)
                        .map_err(|m| ConnectorError::permanent(SYSTEM, op, m))?,
                ),
            };
            entries.push(TrackingInformation {
                carrier_name,
                tracking_number: number.to_owned(),
            });
        }
        let body = serde_json::to_value(FulfillRequest {
            tracking_information: entries,
        })
        .map_err(|e| ConnectorError::permanent(SYSTEM, op, format!("encoding tracking: {e}")))?;
        self.transition(op, id, OrderAction::Fulfill, Some(&body))
            .await
    }

    async fn cancel_order(&self, id: &ChannelOrderId, reason: &str) -> Result<Transition> {
        // CDON's cancel takes no reason; it is logged here and kept by the flow.
        tracing::info!(system = SYSTEM, order = %id, reason, "cancelling CDON order");
        self.transition("cancel_order", id, OrderAction::Cancel, Some(&json!({})))
            .await
    }

    async fn attach_invoice(
        &self,
        _id: &ChannelOrderId,
        _invoice: &InvoiceFile,
    ) -> Result<Transition> {
        Err(ConnectorError::Unsupported {
            system: SYSTEM,
            op: "attach_invoice",
            why: NO_INVOICE_UPLOAD,
        })
    }

    async fn list_returns(&self, cursor: Option<&str>) -> Result<ReturnsPage> {
        let op = "list_returns";
        let (orders, cursor, more) = self.walk(op, "returns", &RETURN_STATES, cursor).await?;
        Ok(ReturnsPage {
            events: Self::convert_orders(op, &orders)?
                .iter()
                .map(convert::cancellation_event)
                .collect(),
            cursor,
            more,
        })
    }

    fn parse_callback(&self, _query: &str, _body: &[u8]) -> Result<WakeUp> {
        Err(ConnectorError::Unsupported {
            system: SYSTEM,
            op: "parse_callback",
            why: NO_WEBHOOKS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::wire::MarketStatus;
    use super::*;

    fn row(action: &str, markets: &[(&str, &str, Option<&str>)]) -> StatusRow {
        StatusRow {
            correlation_id: None,
            article_id: None,
            sku: "A".into(),
            action: Some(action.into()),
            markets: markets
                .iter()
                .map(|(m, s, c)| MarketStatus {
                    market: (*m).into(),
                    status: (*s).into(),
                    error_code: c.map(str::to_owned),
                })
                .collect(),
        }
    }

    #[test]
    fn cursors_round_trip_and_refuse_foreign_text() {
        let c = Cursor { state: 1, page: 7 };
        let s = c.encode("orders", &ORDER_STATES);
        assert_eq!(s, "cdon:orders:ACCEPTED:7");
        assert_eq!(
            Cursor::decode("x", "orders", &ORDER_STATES, Some(&s)).unwrap(),
            c
        );
        assert_eq!(
            Cursor::decode("x", "orders", &ORDER_STATES, None).unwrap(),
            Cursor::START
        );
        assert_eq!(
            Cursor::decode("x", "orders", &ORDER_STATES, Some(" ")).unwrap(),
            Cursor::START
        );
        for bad in [
            "cdon:orders:FULFILLED:1",
            "cdon:orders:CREATED:0",
            "cdon:orders:CREATED:x",
            "cdon:returns:NOT_FULFILLED:1",
            "42",
            "cdon:orders:CREATED:1:extra",
        ] {
            let e = Cursor::decode("list_orders", "orders", &ORDER_STATES, Some(bad)).unwrap_err();
            assert_eq!(e.class(), ErrorClass::Permanent);
            assert!(e.to_string().contains("unreadable cursor"), "{e}");
        }
        let r = Cursor::START.encode("returns", &RETURN_STATES);
        assert_eq!(r, "cdon:returns:NOT_FULFILLED:1");
    }

    #[test]
    fn status_rows_fold_per_sku() {
        let ok = row("create_article", &[("SE", "ok", None), ("DK", "ok", None)]);
        let pending = row("update_article_price", &[("SE", "pending", None)]);
        let failed = row(
            "create_article",
            &[
                ("SE", "ok", None),
                ("FI", "failed", Some("invalid_vat_rate")),
            ],
        );
        let exists = row(
            "create_article",
            &[("*", "failed", Some("sku_already_exists"))],
        );
        assert_eq!(fold_status(&[]), ItemState::Pending);
        assert_eq!(fold_status(&[&ok]), ItemState::Ok);
        assert_eq!(fold_status(&[&ok, &pending]), ItemState::Pending);
        match fold_status(&[&failed, &pending]) {
            ItemState::Failed { message, retryable } => {
                assert!(
                    message.contains("FI") && message.contains("invalid_vat_rate"),
                    "{message}"
                );
                assert!(!retryable);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            fold_status(&[&exists]),
            ItemState::Failed {
                retryable: true,
                ..
            }
        ));
        assert_eq!(existence(&exists), Existence::Exists);
        assert_eq!(existence(&ok), Existence::Exists);
        assert_eq!(existence(&pending), Existence::Exists);
        assert_eq!(
            existence(&row("create_article", &[("SE", "pending", None)])),
            Existence::Unknown
        );
        assert_eq!(
            existence(&row(
                "create_article",
                &[("SE", "failed", Some("invalid_category"))]
            )),
            Existence::Unknown
        );
        assert_eq!(
            existence(&row("delete_article", &[("*", "ok", None)])),
            Existence::Gone
        );
        assert_eq!(
            existence(&row(
                "update_article",
                &[("*", "failed", Some("article_does_not_exist"))]
            )),
            Existence::Gone
        );
    }

    #[test]
    fn handles_carry_refusals_so_a_poll_reports_the_whole_batch() {
        let mut out = Outcomes::new(3);
        out.set(0, ItemState::Pending);
        out.fail(1, "description: HTML is not allowed", false);
        out.fail(2, duplicate(&Sku::new("A").unwrap()), false);
        out.add_batch("b-1".into());
        let skus = ["A", "B", "A"].map(|s| Sku::new(s).unwrap()).to_vec();
        let r = out.report(skus);
        let h = r.handle.expect("pending items need a handle");
        assert_eq!(h.skus, ["A", "B"].map(|s| Sku::new(s).unwrap()).to_vec());
        assert_eq!(h.batch_ids, vec!["b-1".to_owned()], "{h:?}");
        assert_eq!(h.refused.len(), 1, "{h:?}");
        assert_eq!(h.refused[0].sku.as_str(), "B");
        assert!(matches!(
            h.refused[0].state,
            ItemState::Failed {
                retryable: false,
                ..
            }
        ));
        let mut none_pending = Outcomes::new(1);
        none_pending.fail(0, "x", false);
        assert!(
            none_pending
                .report(vec![Sku::new("C").unwrap()])
                .handle
                .is_none()
        );
    }

    #[test]
    fn a_failure_after_accepted_chunks_keeps_their_handle() {
        let e = || ConnectorError::retryable(SYSTEM, "update_stock", "timed out");
        let mut nothing_yet = Outcomes::new(2);
        nothing_yet.fail(0, "refused", false);
        assert!(
            nothing_yet.stop(e()).is_err(),
            "nothing accepted: the call fails"
        );
        let mut some = Outcomes::new(3);
        some.set(0, ItemState::Pending);
        some.add_batch("b-1".into());
        some.stop(e()).unwrap();
        assert!(some.stopped);
        let r = some.report(["A", "B", "C"].map(|s| Sku::new(s).unwrap()).to_vec());
        assert_eq!(r.items[0].state, ItemState::Pending);
        match &r.items[2].state {
            ItemState::Failed { message, retryable } => {
                assert!(message.contains("timed out") && *retryable, "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.handle.unwrap().batch_ids[0], "b-1");
    }

    #[test]
    fn clients_are_built_from_json_and_never_show_the_token() {
        let mut creds = Map::new();
        creds.insert("merchant_id".into(), json!("m-77"));
        creds.insert("token".into(), json!("tok-SECRET-123"));
        let c = CdonClient::from_json(Value::Null, &creds, None).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("tok-SECRET-123"), "{shown}");
        assert_eq!(
            c.url(&["v1", "orders", ""]).unwrap().as_str(),
            "https://merchants-api.cdon.com/api/v1/orders/"
        );
        assert_eq!(
            c.url(&["v1", "orders", "a/b?c", "accept"])
                .unwrap()
                .as_str(),
            "https://merchants-api.cdon.com/api/v1/orders/a%2Fb%3Fc/accept"
        );
        let e = CdonClient::from_json(json!({"markets": ["XX"]}), &creds, None).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Config);
        let e =
            CdonClient::from_json(json!({"orders_page_size": "ten"}), &creds, None).unwrap_err();
        assert!(e.to_string().contains("invalid connector settings"), "{e}");
    }
}
