//! What SmartBill can take part in, and why not where it cannot.

use crate::{Capabilities, Flow, Support};

/// Why the catalog is unsupported without a price list.
pub const NO_PRODUCT_LIST: &str = "SmartBill's API has no product or price list (only GET \
    /stocks, without prices or VAT): the catalog comes from the tenant's price list \
    (`price_list` in the connector settings), which is empty";

/// Why AWBs are not an ERP's business.
pub const NO_AWB: &str = "an ERP takes no part in AWB minting";

/// SmartBill's flows. `CatalogPush` is supported only when the tenant configured a price list
/// (the catalog is that list, named from `GET /stocks`); stock, orders (a **proforma** per
/// order, never an invoice), invoices (the merchant's invoice PDF, read) and returns (a
/// proforma cancelled, or reported for the merchant's storno) are supported.
pub fn capabilities(has_price_list: bool) -> Capabilities {
    Capabilities {
        system: super::SYSTEM,
        flows: vec![
            (
                Flow::CatalogPush,
                if has_price_list {
                    Support::Supported
                } else {
                    Support::Unsupported {
                        why: NO_PRODUCT_LIST,
                    }
                },
            ),
            (Flow::StockPush, Support::Supported),
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
    fn every_flow_is_declared_once_and_the_catalog_depends_on_the_price_list() {
        for with_list in [false, true] {
            let c = capabilities(with_list);
            assert_eq!(c.system, "smartbill");
            for f in Flow::ALL {
                assert_eq!(c.flows.iter().filter(|(g, _)| *g == f).count(), 1, "{f:?}");
            }
            assert_eq!(c.supports(Flow::CatalogPush), with_list);
            assert!(!c.supports(Flow::AwbPush));
            for f in [
                Flow::StockPush,
                Flow::OrderPull,
                Flow::InvoiceAttach,
                Flow::ReturnsReconcile,
            ] {
                assert!(c.supports(f), "{f:?}");
            }
        }
        let c = capabilities(false);
        assert!(
            c.flows
                .contains(&(Flow::AwbPush, Support::Unsupported { why: NO_AWB }))
        );
    }
}
