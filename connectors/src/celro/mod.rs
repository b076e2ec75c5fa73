//! Cel.ro marketplace connector (`market_api`, official PHP wrapper v2.2.0 as the reference).
//!
//! Full notes: `docs/connectors/celro.md`. In short:
//!
//! - **Transport**: every call is `POST {base}{method}/{action}/`, form-encoded (PHP bracket
//!   nesting, or one field holding JSON: `filters`, `products`), plus `api_version` (and
//!   `test=1` only when `send_test_flag` is set: its meaning is unknown). Invoices go as
//!   multipart (`oid`, `series`, `number`, `providerId`, part `file` named `file`). Through the
//!   shared [`crate::http::Http`] (rustls, gate, `Retry-After`, inline retries of safe calls).
//! - **Auth**: `login/actionLogin/` with username/password; the token (in `message`) is cached
//!   and sent as `AUTH: Bearer <token>` (not `Authorization`). Expiry (HTTP 400, `error`
//!   302/403/405, `tokenStatus` 0) → one single-flight re-login and a retry, at most
//!   `max_relogin` times per call. A refused login is [`Auth`](crate::ConnectorError::Auth).
//!   Neither password nor token ever appears in `Debug`, logs or errors.
//! - **Errors** ([`errors`]): HTTP 200 with `error ≠ 0` is `Permanent` with Cel.ro's own
//!   (Romanian) message; a body that is not an envelope is `Retryable` for reads and `InDoubt`
//!   for non-idempotent writes; 429/5xx as shared.
//! - **Limits**: 10 simultaneous connections per account (shared with the merchant's site),
//!   enforced by the workers' gate (`LimitsConfig::celro_connections`, `celro_per_second` = 4,
//!   an inferred rate).
//! - **Flows** (all supported, see [`capabilities::NOTES`]): listings through `import/importer`
//!   (insert form unless `import/productImportStatus` says the product is approved) and
//!   moderation polling (`Pending` with a [`BatchHandle`](crate::marketplace::BatchHandle)
//!   without batch ids); stock and prices through `products/updateStockAndPrice` with per-item
//!   lists; orders through `orders/getOrders` by `last_changed` (overlapping windows, dedupe by
//!   id); accept/ship/cancel/invoice as non-idempotent calls whose "already done" refusals are
//!   resolved by looking the order, its AWBs or its invoices up; returns from
//!   `email/GetReturnRequests` plus cancelled and storno orders.
//! - **Unknowns** chosen safely and documented: the status table (fetched at run time and
//!   mapped by name, [`StatusMap`]), the updateStockAndPrice answer, VAT-included line prices,
//!   unauthenticated callbacks (a callback only wakes a poll), the over-cap answer. mTLS
//!   (`apimtls-mp.cel.ro`) is **not supported** yet: the shared HTTP client has no client
//!   certificate setting.
//! - **Fake** ([`fake::CelroFake`]): stateful, several merchants, expiring tokens, the
//!   10-connection cap, moderation, Romanian business errors, `/_control/celro/...`.

pub mod capabilities;
pub mod client;
pub mod config;
pub mod convert;
pub mod errors;
pub mod fake;
pub mod wire;

pub use client::CelroClient;
pub use config::{AfterAwb, Config, Credentials, NameRule, ServerTime, StatusMap};
pub use fake::{CelroFake, DEMO_PASSWORD, DEMO_USERNAME};

/// The system name in errors, logs and capabilities.
pub const SYSTEM: &str = "celro";

/// Cel.ro's capabilities: every flow (see [`capabilities::NOTES`]).
pub fn capabilities() -> crate::Capabilities {
    capabilities::capabilities()
}
