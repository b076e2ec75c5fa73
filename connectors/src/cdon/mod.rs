//! CDON marketplace connector, built on CDON's **Merchants API**
//! (`https://merchants-api.cdon.com/api/`, a fork of Fyndiq's), not the legacy
//! `admin.marketplace.cdon.com` API that was switched off on 2026-03-04. The full write-up,
//! with every assumption, is `docs/connectors/cdon.md`.
//!
//! - **Auth**: HTTP Basic `merchant_id:token` on every call, plus `x-merchant-id`.
//! - **Listings** ([`CdonClient`] `upsert_listings`): `POST /v2/articles/bulk` (chunks of
//!   `articles_per_create`, 100) answers 202 with per-item `success`/`failed`; processing is
//!   asynchronous, so accepted items are `Pending` and `poll_batch` reads
//!   `POST /v1/statuses/batch` (ok on every market → `Ok`, any `failed` → `Failed` with the
//!   `error_code`). Create vs update: SKUs that `POST /v1/statuses/sku` shows to exist, and
//!   creates refused with "already exists", are sent as `update_article` +
//!   `update_article_price` + `update_article_quantity` (`PUT /v2/articles/bulk`). A create
//!   that fails later with `sku_already_exists` is `Failed { retryable: true }`: the next
//!   upsert finds that status row and updates. A handle also carries the items refused at
//!   submission (`BatchHandle::refused`), so a poll reports the whole batch.
//! - **Stock/prices**: `update_article_quantity` (chunks of 50) and `update_article_price`
//!   (`vat_rate` as a fraction); "Article not found" fails that SKU alone.
//! - **Orders**: one CDON order is one SKU row. There is no `updated_since`: `list_orders`
//!   walks `CREATED` then `ACCEPTED` page by page (a short page ends a state) with an opaque
//!   cursor; each pass re-lists open orders and the order flow dedupes by order id.
//!   Accept/fulfil/cancel are non-idempotent: an ambiguous failure is `InDoubt` (look at the
//!   order's state), and CDON's 403 "Order row already has `<target>` as state" is
//!   `AlreadyDone`; "Order has passed fulfillment due date" is `Permanent`.
//! - **Not supported**: invoice upload (no API) and push callbacks (CDON has no webhooks).
//!   Returns are Reclaimit errands outside the API; `list_returns` reports cancellations
//!   (`NOT_FULFILLED`).
//! - **Limits**: none documented; the fleet assumes 5 requests/s per merchant
//!   (`workers` `LimitsConfig::cdon_per_second`), and 429/`Retry-After` is honoured.
//!
//! [`fake::CdonFake`] is a stateful server of the same contract for tests and the sandbox.

pub mod capabilities;
pub mod client;
pub mod config;
pub mod convert;
pub mod errors;
pub mod fake;
pub mod wire;

pub use capabilities::capabilities;
pub use client::CdonClient;
pub use config::{Config, Credentials};
pub use fake::{CdonFake, DEMO_MERCHANT_ID, DEMO_TOKEN};

/// The system's stable name.
pub const SYSTEM: &str = "cdon";
