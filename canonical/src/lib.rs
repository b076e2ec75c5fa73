//! `canonical`: the domain vocabulary of MEGZO Integrator Vortex.
//!
//! Every other crate speaks in these types: identifiers of tenants and connections, the names of
//! the external systems the product talks to, SKUs and marketplace order ids, money, and the
//! commerce model (listings, orders, returns, shipments). Connectors convert their wire formats
//! into these types in one place; queue payloads carry the identifiers.
//!
//! Layout:
//! - [`ids`]: tenant, connection, SKU and channel-order identifiers (newtypes, validated).
//! - [`systems`]: the closed set of ERPs, marketplaces and couriers, with stable string names.
//! - [`money`]: currencies, amounts (`Decimal`), VAT rates (percentages), countries.
//! - [`commerce`]: listings, stock and price updates, orders, returns, shipments, tracking;
//!   personal data only in [`Contact`], whose `Debug` is redacted.
//! - [`mapping`]: tenant-configured field mapping rules (VAT, rounding, currency conversion,
//!   lookups, templates, conditions), validated against system schemas, compiled and applied
//!   with provenance per target field.
//! - [`stock`]: the stock-push arithmetic (buffers, unreflected order units, the delta to send
//!   to a channel): the "never oversell" promise.
//!
//! **This crate does no I/O** and depends on nothing but serde, uuid, chrono, rust_decimal and
//! thiserror, so it can be used from any layer and tested in isolation.

pub mod commerce;
pub mod ids;
pub mod mapping;
pub mod money;
pub mod stock;
pub mod systems;

pub use commerce::{
    CatalogItem, Contact, CustomsLine, InvoicePdf, Listing, MarketPrice, Order, OrderLine,
    OrderStatus, Package, ParcelState, PriceUpdate, ReturnEvent, ReturnKind, ReturnLine,
    SalesDocument, SalesDocumentKind, Shipment, ShipmentRequest, StockLevel, StockUpdate, Tracking,
    TrackingEvent, TrackingStatus,
};
pub use ids::{ChannelOrderId, ConnectionId, IdError, Sku, TenantId};
pub use money::{Country, Currency, Money, UnitError, VatRate, round2};
pub use systems::{Courier, Erp, Marketplace, UnknownSystem};
