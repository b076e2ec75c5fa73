//! What the Cel.ro connector can do: every flow, with the API each one uses.

use crate::{Capabilities, Flow, Support};

/// Cel.ro supports every flow.
pub fn capabilities() -> Capabilities {
    Capabilities {
        system: super::SYSTEM,
        flows: Flow::ALL.iter().map(|f| (*f, Support::Supported)).collect(),
    }
}

/// What each flow uses on Cel.ro, and what to know about it (shown next to the capability).
pub const NOTES: &[(Flow, &str)] = &[
    (
        Flow::CatalogPush,
        "import/importer (insert form for new products, update form for approved ones) and \
         import/productImportStatus; new products wait for Cel.ro's manual approval (Pending) \
         and may be rejected with a reason",
    ),
    (
        Flow::StockPush,
        "products/updateStockAndPrice with per-product results; a price change above 10 % is \
         refused unless override_price_jumps is set",
    ),
    (
        Flow::OrderPull,
        "orders/getOrders polled by last_changed with an overlapping window (deduplicate by \
         id); push callbacks only wake a poll",
    ),
    (
        Flow::InvoiceAttach,
        "orders/addOrderInvoice (multipart PDF), after orders/getOrderInvoices shows the same \
         series and number is not there yet",
    ),
    (
        Flow::AwbPush,
        "orders/importAWB with the pickup address (idAdresaRidicare), then \
         orders/SetReadyForDelivery by default; AWBs already on the order are not sent again",
    ),
    (
        Flow::ReturnsReconcile,
        "email/GetReturnRequests (return requests), cancelled and storno orders from \
         orders/getOrders",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flow_is_supported_and_explained() {
        let c = capabilities();
        assert_eq!(c.system, "celro");
        for f in Flow::ALL {
            assert!(c.supports(f), "{f:?}");
            assert!(NOTES.iter().any(|(n, _)| *n == f), "{f:?} has no note");
        }
    }
}
