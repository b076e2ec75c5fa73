//! What DHL can take part in: AWB push only.
//!
//! DHL is a courier. It mints AWBs with labels, finds them by our reference and tracks them;
//! it has no catalog, stock, orders, invoices or returns of ours to sync. MyDHL API v3.1.1 has
//! **no cancel/void endpoint** for shipments (only pickups can be cancelled), so an AWB, once
//! minted, stays; an AWB that is never tendered is generally not billed (inferred).

use crate::{Capabilities, Flow, Support};

use super::SYSTEM;

/// DHL's declared capabilities.
pub fn capabilities() -> Capabilities {
    let flows = Flow::ALL
        .iter()
        .map(|f| {
            let support = match f {
                Flow::AwbPush => Support::Supported,
                Flow::CatalogPush => Support::Unsupported {
                    why: "a courier takes no part in catalog push: DHL has no product listings",
                },
                Flow::StockPush => Support::Unsupported {
                    why: "a courier takes no part in stock push: DHL holds no stock levels",
                },
                Flow::OrderPull => Support::Unsupported {
                    why: "a courier takes no part in order pull: orders come from the marketplace",
                },
                Flow::InvoiceAttach => Support::Unsupported {
                    why: "a courier takes no part in invoice attach: invoices go to the marketplace (a customs invoice travels inside the shipment request)",
                },
                Flow::ReturnsReconcile => Support::Unsupported {
                    why: "a courier takes no part in returns reconcile: returns and cancellations come from the marketplace",
                },
            };
            (*f, support)
        })
        .collect();
    Capabilities {
        system: SYSTEM,
        flows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_awb_push_is_supported_and_every_refusal_says_why() {
        let c = capabilities();
        assert_eq!(c.system, "dhl");
        assert_eq!(c.flows.len(), Flow::ALL.len());
        for (f, s) in &c.flows {
            match (f, s) {
                (Flow::AwbPush, Support::Supported) => {}
                (_, Support::Unsupported { why }) => {
                    assert!(why.starts_with("a courier takes no part in"), "{why}")
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(c.supports(Flow::AwbPush));
        assert!(!c.supports(Flow::OrderPull));
    }
}
