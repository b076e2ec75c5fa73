//! The marketplace trait: what the flows ask of CDON and Cel.ro, in `canonical` terms.
//!
//! Every method maps its API's failures into [`ConnectorError`](crate::ConnectorError) classes (see [`crate::error`]).
//! Batch methods report **per item**: one bad SKU never fails its neighbours, and the flow
//! retries only the items whose failure is retryable.

use std::time::Duration;

use async_trait::async_trait;
use canonical::{
    ChannelOrderId, Listing, Marketplace as System, Order, PriceUpdate, ReturnEvent, Sku,
    StockUpdate, Tracking,
};
use serde::{Deserialize, Serialize};

use crate::Capabilities;
use crate::error::Result;

/// The fate of one item of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ItemState {
    /// Applied (or, for CDON, processed `ok` on every market).
    Ok,
    /// Accepted for processing; poll the batch again.
    Pending,
    /// Refused. `retryable` tells whether sending it again may work.
    Failed { message: String, retryable: bool },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemResult {
    pub sku: Sku,
    #[serde(flatten)]
    pub state: ItemState,
}

/// What a batch call returned: per-item results, and a handle to poll when some are pending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchReport {
    pub items: Vec<ItemResult>,
    /// Present when the marketplace processes asynchronously (CDON `batch_id`).
    pub handle: Option<BatchHandle>,
}

impl BatchReport {
    pub fn pending(&self) -> impl Iterator<Item = &Sku> {
        self.items
            .iter()
            .filter(|i| i.state == ItemState::Pending)
            .map(|i| &i.sku)
    }

    pub fn failed(&self) -> impl Iterator<Item = (&Sku, &str, bool)> {
        self.items.iter().filter_map(|i| match &i.state {
            ItemState::Failed { message, retryable } => {
                Some((&i.sku, message.as_str(), *retryable))
            }
            _ => None,
        })
    }

    pub fn is_settled(&self) -> bool {
        self.pending().next().is_none()
    }
}

/// A reference to an asynchronous batch: the marketplace's batch ids, every SKU of the batch,
/// and the items refused at submission (so a poll reports the whole batch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchHandle {
    pub batch_ids: Vec<String>,
    pub skus: Vec<Sku>,
    #[serde(default)]
    pub refused: Vec<ItemResult>,
}

/// A page of orders changed since a cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    /// Where the next call starts; store it once the page is handled.
    pub cursor: String,
    /// More pages are waiting now (call again at once with `cursor`).
    pub more: bool,
}

/// A page of returns and cancellations since a cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReturnsPage {
    pub events: Vec<ReturnEvent>,
    pub cursor: String,
    pub more: bool,
}

/// The result of a state transition that may already have happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// This call made it.
    Done,
    /// It had already happened (a retried accept or fulfil): success, nothing done twice.
    AlreadyDone,
}

/// The merchant's invoice for an order, to attach on the marketplace.
#[derive(Clone, PartialEq, Eq)]
pub struct InvoiceFile {
    pub series: String,
    pub number: String,
    pub pdf: Vec<u8>,
}

impl std::fmt::Debug for InvoiceFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvoiceFile")
            .field("series", &self.series)
            .field("number", &self.number)
            .field("pdf_bytes", &self.pdf.len())
            .finish()
    }
}

/// A push notification turned into work: which orders to look at now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WakeUp {
    pub kind: WakeKind,
    pub orders: Vec<ChannelOrderId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WakeKind {
    NewOrders,
    Cancelled,
    Other,
}

#[async_trait]
pub trait Marketplace: Send + Sync + std::fmt::Debug {
    fn system(&self) -> System;

    fn capabilities(&self) -> Capabilities;

    /// Creates or updates listings (the whole offer, with price and stock). Batches as the API
    /// allows; results per SKU, pending ones pollable with [`Marketplace::poll_batch`].
    async fn upsert_listings(&self, listings: &[Listing]) -> Result<BatchReport>;

    /// The current state of an asynchronous batch.
    async fn poll_batch(&self, handle: &BatchHandle) -> Result<BatchReport>;

    /// Sets stock levels, per SKU results.
    async fn update_stock(&self, updates: &[StockUpdate]) -> Result<BatchReport>;

    /// Sets prices, per SKU results.
    async fn update_prices(&self, updates: &[PriceUpdate]) -> Result<BatchReport>;

    /// Orders changed since `cursor` (`None`: from the start of what the API keeps).
    async fn list_orders(&self, cursor: Option<&str>) -> Result<OrderPage>;

    /// One order, fresh.
    async fn get_order(&self, id: &ChannelOrderId) -> Result<Order>;

    /// Accepts (confirms) an order. Retried after an ambiguous failure, "already accepted" is
    /// [`Transition::AlreadyDone`].
    async fn accept_order(&self, id: &ChannelOrderId) -> Result<Transition>;

    /// Marks an order shipped with its tracking. "Already fulfilled" is
    /// [`Transition::AlreadyDone`].
    async fn ship_order(&self, id: &ChannelOrderId, tracking: &[Tracking]) -> Result<Transition>;

    /// Cancels an order the merchant cannot fulfil (no stock), with a reason.
    async fn cancel_order(&self, id: &ChannelOrderId, reason: &str) -> Result<Transition>;

    /// Attaches the merchant's invoice PDF to an order.
    async fn attach_invoice(
        &self,
        id: &ChannelOrderId,
        invoice: &InvoiceFile,
    ) -> Result<Transition>;

    /// Returns, cancellations and reversals since `cursor`.
    async fn list_returns(&self, cursor: Option<&str>) -> Result<ReturnsPage>;

    /// Parses a push callback (query string or body) into a wake-up. Refuses what it cannot
    /// read with a message naming the problem.
    fn parse_callback(&self, query: &str, body: &[u8]) -> Result<WakeUp>;

    /// Upserts and polls until every item settles or `max_wait` passes (items still pending
    /// stay [`ItemState::Pending`]).
    async fn upsert_and_settle(
        &self,
        listings: &[Listing],
        poll_every: Duration,
        max_wait: Duration,
    ) -> Result<BatchReport> {
        let mut report = self.upsert_listings(listings).await?;
        let deadline = tokio::time::Instant::now() + max_wait;
        while let Some(handle) = report.handle.clone() {
            if report.is_settled() || tokio::time::Instant::now() + poll_every > deadline {
                break;
            }
            tokio::time::sleep(poll_every).await;
            let polled = self.poll_batch(&handle).await?;
            report = report.merge(polled);
        }
        Ok(report)
    }
}

impl BatchReport {
    /// A later report of the same batch: its results replace earlier ones per SKU; the handle
    /// stays.
    pub fn merge(mut self, newer: BatchReport) -> BatchReport {
        for item in newer.items {
            match self.items.iter_mut().find(|i| i.sku == item.sku) {
                Some(slot) => *slot = item,
                None => self.items.push(item),
            }
        }
        self
    }
}
