//! lexoffice (Lexware Office) connector, built on the **public API**
//! (`https://api.lexware.io/v1/...`, formerly `api.lexoffice.io`). The full write-up, with
//! every assumption, is `docs/connectors/lexoffice.md`.
//!
//! - **Auth**: `Authorization: Bearer <API key>`; one key is one organization. A 401 is `Auth`.
//! - **Limits**: 2 requests/s per key (token bucket, 429 beyond; no `Retry-After`
//!   documented). The fleet gate enforces it (`workers` `LimitsConfig::lexoffice_per_second`
//!   plus `margin_ms`). The gateway times out at 30 s (504, the call may still have run); our
//!   timeout is 35 s.
//! - **Catalog** ([`LexofficeClient`] `catalog`): `GET /v1/articles` in pages of 250;
//!   `articleNumber` is the SKU, the price the article's leading one (gross or net), VAT its
//!   `taxRate`, EUR.
//! - **No stock**: lexoffice has no inventory; `stock` is `Unsupported` and stock must come
//!   from the marketplace's own count or a warehouse system.
//! - **Orders**: `POST /v1/order-confirmations`: an **order confirmation (draft), never an
//!   invoice**; `custom` lines with gross unit prices (`taxType` gross), shipping as a line,
//!   the marketplace order id on its own line of `remark`. **EUR only**: another currency is
//!   converted with `DocumentOptions::exchange_rate` (required; recorded in `remark` and
//!   `introduction`). Non-idempotent: ambiguous failures are `InDoubt`.
//! - **Recovery**: `GET /v1/voucherlist` (order confirmations created since the order, within
//!   `lookup_window_days`), then each candidate's `remark` → `Found` / `Absent` /
//!   `NeedsReview`.
//! - **Invoices**: the merchant turns the confirmation into an invoice in lexoffice; its
//!   `relatedVouchers` lead to the invoice, whose PDF is `GET /v1/invoices/{id}/file` (409 for
//!   drafts → not yet). Credit notes are the merchant's too: `register_return` reports, and
//!   `invoice_credited` reads `relatedVouchers`/payments. The client never creates an invoice
//!   or a credit note.
//! - **Webhooks** ([`webhook`]): `X-Lxo-Signature` (RSA-SHA512, base64) verified with `ring`
//!   against the configured key; no production key is embedded.
//!
//! [`fake::LexofficeFake`] is a stateful server of the same contract for tests and the
//! sandbox.

pub mod capabilities;
pub mod client;
pub mod config;
pub mod convert;
pub mod errors;
pub mod fake;
pub mod webhook;
pub mod wire;

pub use capabilities::capabilities;
pub use client::LexofficeClient;
pub use config::{Config, Credentials};
pub use fake::{DEMO_API_KEY, LexofficeFake};
pub use webhook::{WebhookEvent, verify_webhook};

/// The system's stable name.
pub const SYSTEM: &str = "lexoffice";
