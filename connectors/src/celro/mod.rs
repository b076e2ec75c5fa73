//! Cel.ro (placeholder docs; replaced below).

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
