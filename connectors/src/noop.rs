//! The built-in no-op connector: accepts every flow and does nothing. Demo tenants run on it until
//! the real connectors land, so the fleet (scheduler, queue, workers, job history) can be run and
//! measured end to end without any external system.

use crate::{Capabilities, Flow, Support};

/// The no-op system supports every flow.
pub fn capabilities() -> Capabilities {
    Capabilities {
        system: "noop",
        flows: Flow::ALL.iter().map(|f| (*f, Support::Supported)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noop_supports_every_flow() {
        let c = capabilities();
        assert!(Flow::ALL.iter().all(|f| c.supports(*f)));
    }
}
