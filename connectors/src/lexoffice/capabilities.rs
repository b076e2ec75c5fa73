//! What lexoffice's public API can take part in, and why not where it cannot.

use crate::{Capabilities, Flow, Support};

/// Why stock is not read from lexoffice.
pub const NO_STOCK: &str = "lexoffice keeps no stock; stock must come from another source (the \
    marketplace's own count or a warehouse system)";

/// Why lexoffice takes no part in AWB minting.
pub const NO_AWB: &str = "an ERP takes no part in AWB minting";

/// lexoffice's flows: the catalog (articles), orders (as **order confirmations**, never
/// invoices), invoice PDFs (of the invoice the merchant makes from the confirmation) and
/// returns (reported to the merchant with evidence; credit notes are the merchant's) are
/// supported. Stock is not: lexoffice has no inventory resource at all.
pub fn capabilities() -> Capabilities {
    Capabilities {
        system: super::SYSTEM,
        flows: vec![
            (Flow::CatalogPush, Support::Supported),
            (Flow::StockPush, Support::Unsupported { why: NO_STOCK }),
            (Flow::OrderPull, Support::Supported),
            (Flow::InvoiceAttach, Support::Supported),
            (Flow::AwbPush, Support::Unsupported { why: NO_AWB }),
            (Flow::ReturnsReconcile, Support::Supported),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flow_is_declared_once_and_stock_and_awb_say_why_not() {
        let c = capabilities();
        assert_eq!(c.system, "lexoffice");
        for f in Flow::ALL {
            assert_eq!(c.flows.iter().filter(|(g, _)| *g == f).count(), 1, "{f:?}");
        }
        assert!(!c.supports(Flow::StockPush));
        assert!(!c.supports(Flow::AwbPush));
        for f in [
            Flow::CatalogPush,
            Flow::OrderPull,
            Flow::InvoiceAttach,
            Flow::ReturnsReconcile,
        ] {
            assert!(c.supports(f), "{f:?}");
        }
        let why = c
            .flows
            .iter()
            .find_map(|(f, s)| match (f, s) {
                (Flow::StockPush, Support::Unsupported { why }) => Some(*why),
                _ => None,
            })
            .unwrap();
        assert!(
            why.contains("marketplace") && why.contains("warehouse"),
            "{why}"
        );
    }
}
