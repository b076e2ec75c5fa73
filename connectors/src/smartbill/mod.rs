//! SmartBill Cloud connector (`https://ws.smartbill.ro/SBORO/api/`), the merchant's Romanian
//! invoicing/ERP system. The full write-up, with every assumption, is
//! `docs/connectors/smartbill.md`.
//!
//! - **Auth**: HTTP Basic `email:token`, preemptive, on every call; the company CIF goes as
//!   `cif` in the query of reads and `companyVatCode` in bodies. 401 means bad credentials
//!   **or** a CIF these credentials cannot use (`Auth`).
//! - **Non-fiscal rule**: the product creates **proformas only** (`POST /estimate` in
//!   `proforma_series`), never invoices; storno invoices are the merchant's (the client never
//!   calls `/invoice/reverse`), and nothing e-Factura/ANAF is ever called. Returns before
//!   invoicing cancel the proforma (`PUT /estimate/cancel`); after invoicing they are reported
//!   for the merchant with the invoice to reverse.
//! - **Errors**: a non-empty `errorText` is a failure even on HTTP 200 (`Permanent`, the
//!   Romanian text verbatim); "… nu a fost gasita" on a lookup means absent.
//! - **Limits**: 30 calls per 10 s per account, else **403 and a 10-minute block**. The fleet
//!   gate enforces 30/10 s + 1 s margin (`workers` `limits_for("smartbill")`); the client also
//!   pauses until `X-RateLimit-Reset` when `X-RateLimit-Remaining` ≤ `remaining_floor`, and on
//!   a 403 answers `Retryable` after 600 s, refuses locally until then and penalizes the gate.
//! - **Catalog**: no product endpoint; the catalog is the tenant's `price_list` named from
//!   `GET /stocks` (`Unsupported` without one). **Stock**: `GET /stocks`, `productCode` = SKU.
//! - **Recovery** (no idempotency key, no search): the last `probe_depth` proformas of the
//!   series are read as PDFs and searched for the order id printed in `mentions`: one match is
//!   `Found`, an empty series `Absent`, anything else `NeedsReview`.
//! - **Invoices**: `GET /estimate/invoices` → the merchant's invoice → `GET /invoice/pdf`,
//!   checked to be a PDF. Whether an invoice was credited cannot be read (`None`).
//!
//! [`fake::SmartBillFake`] is a stateful server of the same contract (with SmartBill's own
//! rate limit and block) for tests and the sandbox.

pub mod capabilities;
pub mod client;
pub mod config;
pub mod convert;
pub mod errors;
pub mod fake;
pub mod wire;

pub use capabilities::capabilities;
pub use client::SmartBillClient;
pub use config::{Config, Credentials, PriceEntry};
pub use fake::{DEMO_CIF, DEMO_EMAIL, DEMO_TOKEN, SmartBillFake};

/// The system's stable name.
pub const SYSTEM: &str = "smartbill";
