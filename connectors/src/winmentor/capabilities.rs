//! What WinMentor (through the file exchange) can take part in, and why not where it cannot.

use crate::{Capabilities, Flow, Support};

/// Why invoices are not attached from WinMentor.
pub const NO_INVOICE_PDF: &str = "WinMENTOR (classic) has no way to hand out an invoice as \
    PDF: DocImpServer, the automation interface the exchange bridge uses, has no print or PDF \
    function (none among its 100+ functions), and the import/export text formats carry no \
    documents; attach the invoice from the marketplace's own tools or another source";

/// Why shipments are not pushed to WinMentor.
pub const NO_AWB: &str = "WinMentor is an ERP, not a courier: AWBs are created with the courier \
    connector, and the COMANDA import format has no tracking field";

/// WinMentor's flows: catalog and stock from the bridge's exports, orders as `COMANDA` import
/// packages, returns and cancellations **reported** for the merchant (the import formats have
/// no non-fiscal cancellation, and a return needs a storno invoice, a fiscal document the
/// product never writes); no invoice PDFs, no AWBs.
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
    fn every_flow_is_declared_once_and_the_unsupported_ones_say_why() {
        let c = capabilities();
        assert_eq!(c.system, "winmentor");
        for f in Flow::ALL {
            assert_eq!(c.flows.iter().filter(|(g, _)| *g == f).count(), 1, "{f:?}");
        }
        for f in [
            Flow::CatalogPush,
            Flow::StockPush,
            Flow::OrderPull,
            Flow::ReturnsReconcile,
        ] {
            assert!(c.supports(f), "{f:?}");
        }
        assert!(!c.supports(Flow::InvoiceAttach));
        assert!(!c.supports(Flow::AwbPush));
        assert!(NO_INVOICE_PDF.contains("DocImpServer"));
    }
}
