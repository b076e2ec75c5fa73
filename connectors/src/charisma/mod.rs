//! Charisma ERP (TotalSoft) connector. Charisma has **no public API**: integrations are
//! per-installation SOAP services. What this connector knows comes from one third-party client
//! (costicanu/charismapp, ~2020, "C1"); everything else is an assumption with a safe default,
//! listed in `docs/connectors/charisma.md` with the checklist an installation must confirm.
//!
//! - **Transport**: SOAP 1.1 (default; 1.2 configurable) `POST` to the installation's service
//!   URL (`endpoint`; the WSDL is read by a person at onboarding, never fetched at runtime),
//!   document/literal: `<operation xmlns="service_namespace">…</operation>` in the body.
//! - **Auth**: the SOAP header `IdentificationMessage` in namespace
//!   `totalsoft.charisma.commonMessages` carrying `ApplicationId` ([`Credentials`]). A
//!   `Client` fault naming `ApplicationId` is `Auth`.
//! - **Catalogue** ([`CharismaClient`] `catalog`): `GetItem` (the whole nomenclature, read as a
//!   stream of records) joined by `ItemId` with `getPrice{PriceListDate}`; `ItemCode` is the
//!   SKU, `PriceWithVAT` the price, the currency from `currency_ids`.
//! - **Orders** (`create_sales_document`): a **draft customer order** (`createOrder`,
//!   `OrderState` `Draft`, non-fiscal) with a deterministic `ExternalId` per marketplace order
//!   and per line; the partner is a configured generic one or found/created per customer
//!   (`getPartner` by `FiscalRegistration`, `getCity` matching by name, `createPartner`).
//! - **Recovery** (`find_sales_document`): by `ExternalId` through a lookup operation **only
//!   where the installation has one** (`operations.get_order`); otherwise `NeedsReview` with
//!   the `ExternalId` to look for. Optionally (`external_id_unique`), a repeated create's
//!   duplicate-`ExternalId` fault naming the order resolves to that order.
//! - **Not supported**: stock, invoice PDFs, AWBs (no operation known). Returns are reported
//!   for the merchant (`ForMerchant`): no cancel/credit operation is known and a credit note
//!   is fiscal.
//! - **Errors**: SOAP faults come as HTTP 500; [`errors`] tells a refusal (`Client` fault:
//!   `Permanent`, with the faultstring) from a server failure (`Retryable` for reads, `InDoubt`
//!   for creates).
//!
//! [`fake::CharismaFake`] is a stateful SOAP server of the same (assumed) contract.

pub mod capabilities;
pub mod client;
pub mod config;
pub mod convert;
pub mod errors;
pub mod fake;
pub mod soap;
pub mod wire;

pub use capabilities::capabilities;
pub use client::{CharismaClient, ReferenceReport};
pub use config::{Config, Credentials, Operations, PartnerStrategy};
pub use fake::{CharismaFake, DEMO_APPLICATION_ID};

/// The system's stable name.
pub const SYSTEM: &str = "charisma";
