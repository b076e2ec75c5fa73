//! `connectors`: one folder per external system (client, wire types, conversion to `canonical`,
//! error classification, capabilities, and a stateful fake of the same contract).
//!
//! Shared pieces:
//! - [`error`]: [`ConnectorError`] and its classes (retryable, permanent, auth, **in-doubt**,
//!   unsupported, config): the table of what each class means is there.
//! - [`http`]: the reqwest client every connector uses (rustls, timeouts, the [`gate::CallGate`]
//!   before every call, `Retry-After`, bounded inline retries of safe calls).
//! - [`gate`]: where an account's limits plug in (the workers enforce them fleet-wide in Redis).
//! - [`marketplace`], [`courier`] and [`erp`]: the traits the flows call.
//! - [`mapping`]: what field-mapping rules read and write per system (schemas, records, the
//!   listing and ERP line built from a mapped record).
//! - [`wire`]: decimals as JSON numbers, read from numbers or numeric strings.
//! - [`settings`]: reading stored settings and credential fields (messages never show values).
//! - [`fake`]: what every fake server shares (fault injection, limits, `/_control`).
//! - [`conformance`]: the suites every marketplace and courier runs against its fake.
//!
//! One folder per system, each with `config`, `client`, `wire`, `convert`, `errors`,
//! `capabilities`, `fake` and tests: `cdon`, `celro`, `dhl`, `smartbill`, `lexoffice`,
//! `winmentor`, `charisma` (one cargo feature each).
//! [`noop`] is the built-in connector of the demo tenants.
//!
//! **This crate never knows about queues or Redis**: it does not depend on `queue-schema`; the
//! workers map a job kind to a [`Flow`] and give clients a [`gate::CallGate`].

pub mod conformance;
pub mod courier;
pub mod erp;
pub mod error;
pub mod fake;
pub mod gate;
pub mod http;
pub mod mapping;
pub mod marketplace;
pub mod noop;
pub mod settings;
pub mod wire;

#[cfg(feature = "cdon")]
pub mod cdon;
#[cfg(feature = "celro")]
pub mod celro;
#[cfg(feature = "dhl")]
pub mod dhl;

#[cfg(feature = "charisma")]
pub mod charisma;
#[cfg(feature = "lexoffice")]
pub mod lexoffice;
#[cfg(feature = "smartbill")]
pub mod smartbill;
#[cfg(feature = "winmentor")]
pub mod winmentor;

pub use courier::Courier;
pub use erp::Erp;
pub use error::{ConnectorError, ErrorClass};
pub use marketplace::Marketplace;

use serde::Serialize;

/// The six flows a connection can run, named as the job kinds that run them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    CatalogPush,
    StockPush,
    OrderPull,
    InvoiceAttach,
    AwbPush,
    ReturnsReconcile,
}

impl Flow {
    pub const ALL: [Flow; 6] = [
        Flow::CatalogPush,
        Flow::StockPush,
        Flow::OrderPull,
        Flow::InvoiceAttach,
        Flow::AwbPush,
        Flow::ReturnsReconcile,
    ];
}

/// Whether a system can take part in a flow, and why not when it cannot. Nothing pretends: the
/// scheduler does not enqueue what cannot run, and the panel shows the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "support", rename_all = "snake_case")]
pub enum Support {
    Supported,
    Unsupported { why: &'static str },
}

/// A system's declared capabilities, one entry per flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    pub system: &'static str,
    pub flows: Vec<(Flow, Support)>,
}

impl Capabilities {
    pub fn supports(&self, flow: Flow) -> bool {
        self.flows
            .iter()
            .any(|(f, s)| *f == flow && *s == Support::Supported)
    }

    /// Why the system cannot take part in `flow`; `None` when it can (or does not declare it).
    pub fn why_not(&self, flow: Flow) -> Option<&'static str> {
        self.flows.iter().find_map(|(f, s)| match s {
            Support::Unsupported { why } if *f == flow => Some(*why),
            _ => None,
        })
    }
}
