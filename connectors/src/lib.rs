//! `connectors`: one folder per external system (client, wire types, conversion to `canonical`,
//! error classification, capabilities, and a stateful fake of the same contract).
//!
//! Today it holds the shared vocabulary ([`Flow`], [`Capabilities`]) and the built-in
//! [`noop`] connector that the demo tenants use until the real connectors land (CDON, Cel.ro, DHL,
//! SmartBill, lexoffice, WinMentor, Charisma are the next issues).
//!
//! **This crate never knows about queues**: it does not depend on `queue-schema`; the workers map
//! a job kind to a [`Flow`].

pub mod noop;

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
}
