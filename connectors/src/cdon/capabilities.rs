//! What CDON's Merchants API can take part in, and why not where it cannot.

use crate::{Capabilities, Flow, Support};

/// Why invoices are not attached on CDON.
pub const NO_INVOICE_UPLOAD: &str = "CDON's Merchants API has no invoice upload: CDON sends \
    the customer its own delivery confirmation with the tracking link when the order is \
    fulfilled; keep the merchant's invoice in the ERP";

/// CDON's flows: catalog, stock, orders and tracking are supported; invoices are not.
/// Returns reconcile covers **cancellations** only (orders in `NOT_FULFILLED`, cancelled and
/// refunded, by the merchant or by CDON's 7-day auto-cancel): returns, complaints and refunds
/// after delivery are errands in Reclaimit, CDON's customer-service portal, which has no API.
pub fn capabilities() -> Capabilities {
    Capabilities {
        system: super::SYSTEM,
        flows: vec![
            (Flow::CatalogPush, Support::Supported),
            (Flow::StockPush, Support::Supported),
            (Flow::OrderPull, Support::Supported),
            (
                Flow::InvoiceAttach,
                Support::Unsupported {
                    why: NO_INVOICE_UPLOAD,
                },
            ),
            (Flow::AwbPush, Support::Supported),
            (Flow::ReturnsReconcile, Support::Supported),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flow_is_declared_once_and_invoices_say_why_not() {
        let c = capabilities();
        assert_eq!(c.system, "cdon");
        for f in Flow::ALL {
            assert_eq!(c.flows.iter().filter(|(g, _)| *g == f).count(), 1, "{f:?}");
        }
        assert!(!c.supports(Flow::InvoiceAttach));
        for f in [
            Flow::CatalogPush,
            Flow::StockPush,
            Flow::OrderPull,
            Flow::AwbPush,
            Flow::ReturnsReconcile,
        ] {
            assert!(c.supports(f), "{f:?}");
        }
    }
}
