//! What a Charisma installation can take part in, and why not where it cannot.

use crate::{Capabilities, Flow, Support};

/// Why stock is not read from Charisma.
pub const NO_STOCK: &str = "no stock operation of Charisma's SOAP service is known (the one \
    known client reads only GetItem's IsStockable flag): push stock from the warehouse system \
    or a stock export the installation provides, until TotalSoft or the merchant's partner \
    documents a stock-per-warehouse operation";

/// Why invoices are not fetched from Charisma.
pub const NO_INVOICE_PDF: &str = "no invoice or PDF operation of Charisma's SOAP service is \
    known: the merchant issues the invoice in Charisma and attaches it on the marketplace \
    until the installation documents an invoice-PDF operation";

/// Why AWBs are not pushed to Charisma.
pub const NO_AWB: &str = "Charisma's known operations take no shipment or AWB data";

/// Charisma's flows: catalogue (`GetItem` + `getPrice`) and orders (`createOrder`, a draft
/// customer order) are supported; returns are reported for the merchant (no credit or cancel
/// operation is known, and a credit note is fiscal); stock, invoice PDFs and AWBs are not.
pub fn capabilities() -> Capabilities {
    Capabilities {
        system: super::SYSTEM,
        flows: vec![
            (Flow::CatalogPush, Support::Supported),
            (Flow::StockPush, Support::Unsupported { why: NO_STOCK }),
            (Flow::OrderPull, Support::Supported),
            (
                Flow::InvoiceAttach,
                Support::Unsupported {
                    why: NO_INVOICE_PDF,
                },
            ),
            (Flow::AwbPush, Support::Unsupported { why: NO_AWB }),
            (Flow::ReturnsReconcile, Support::Supported),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flow_is_declared_once_with_reasons() {
        let c = capabilities();
        assert_eq!(c.system, "charisma");
        for f in Flow::ALL {
            assert_eq!(c.flows.iter().filter(|(g, _)| *g == f).count(), 1, "{f:?}");
        }
        for f in [Flow::CatalogPush, Flow::OrderPull, Flow::ReturnsReconcile] {
            assert!(c.supports(f), "{f:?}");
        }
        for f in [Flow::StockPush, Flow::InvoiceAttach, Flow::AwbPush] {
            assert!(!c.supports(f), "{f:?}");
        }
    }
}
