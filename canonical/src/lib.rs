//! `canonical`: the domain vocabulary of MEGZO Integrator Vortex.
//!
//! Every other crate speaks in these types: identifiers of tenants and connections, the names of
//! the external systems the product talks to, SKUs and marketplace order ids. Connectors convert
//! their wire formats into these types in one place; queue payloads carry them.
//!
//! Layout:
//! - [`ids`]: tenant, connection, SKU and channel-order identifiers (newtypes, validated).
//! - [`systems`]: the closed set of ERPs, marketplaces and couriers, with stable string names.
//!
//! **This crate does no I/O** and depends on nothing but serde, uuid and thiserror, so it can be
//! used from any layer and tested in isolation.

pub mod ids;
pub mod systems;

pub use ids::{ChannelOrderId, ConnectionId, IdError, Sku, TenantId};
pub use systems::{Courier, Erp, Marketplace, UnknownSystem};
