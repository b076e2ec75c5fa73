//! DHL Express through the **MyDHL API** (REST/JSON, spec v3.1.1, `x-version: 3.1.0`): mint an
//! AWB with its PDF label, find it again by our customer reference, track it.
//! Full notes: `docs/connectors/dhl.md`.
//!
//! - [`config`]: [`Config`] (base URL, account, product codes per lane, incoterm, label, lookup
//!   window, VOEC, validate-first) and [`Credentials`] (API user and password, redacted).
//! - [`client`]: [`DhlClient`], the [`crate::Courier`] over [`crate::http::Http`].
//! - [`wire`] / [`convert`]: the JSON types and the conversions, with the client-side checks.
//! - [`errors`]: the problem+json reader ([`errors::error_body`]).
//! - [`mod@capabilities`]: AWB push only ([`capabilities()`]).
//! - [`fake`]: [`DhlFake`], a stateful fake of the same contract.
//!
//! **Endpoints.** `POST /shipments` (create; `validateDataOnly=true` when `validate_first`),
//! `GET /tracking?shipmentReference=…&shipmentReferenceType=CU&shipperAccountNumber=…&dateRangeFrom=…&dateRangeTo=…`
//! (lookup), `GET /shipments/{awb}/tracking` (events). HTTP Basic, `x-version`,
//! `Message-Reference` (1-36 characters, derived from the reference or AWB).
//!
//! **Errors.** problem+json `{instance, detail, title, message, status, additionalDetails}`:
//! 400 (business, `detail` starts with a numeric code such as `998:`) and 422 (schema, every
//! problem in `additionalDetails`) are permanent with DHL's words; 401 is auth; 429 waits for
//! `Retry-After`; 5xx is retried on reads and **in doubt** on create.
//!
//! **No idempotency, no void.** MyDHL has no idempotency key and v3.1.1 no cancel endpoint, so a
//! create is never repeated after an ambiguous failure (timeout, 500/502/504, garbled 2xx):
//! the order's deterministic `CU` reference finds what the lost call made. Tracking lags 10-30
//! minutes on new AWBs: within `in_doubt_settle_minutes` of the attempt "not found" means look
//! again later; after it, manual reconcile ([`client::Recovery`]), never a blind second create.
//! An AWB never tendered is generally not billed (inferred: ask DHL).
//!
//! **Customs.** A parcel leaving the EU customs union (RO → NO) is `isCustomsDeclarable` with an
//! `exportDeclaration` (one line per item, invoice number and date), refused client-side without
//! lines or invoice number; the seller's VOEC number goes to Norway as registration `SDT`.
//!
//! **Limits.** None documented for MyDHL; the fleet assumes 1 call/s per account
//! (`workers` `LimitsConfig::dhl_per_second`); test credentials reportedly allow 500 calls/day
//! (inferred).

pub mod capabilities;
pub mod client;
pub mod config;
pub mod convert;
pub mod errors;
pub mod fake;
pub mod wire;

pub use capabilities::capabilities;
pub use client::{DhlClient, Recovery, recovery_verdict};
pub use config::{Config, Credentials, MOCK_URL, PRODUCTION_URL, TEST_URL};
pub use fake::{DEMO_ACCOUNT, DEMO_PASSWORD, DEMO_USERNAME, DhlFake};

/// The system's name in errors, logs and capabilities.
pub const SYSTEM: &str = "dhl";
