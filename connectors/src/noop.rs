//! The built-in no-op connector: accepts every flow and does nothing. Demo tenants run on it until
//! the real connectors land, so the fleet (scheduler, queue, workers, job history) can be run and
//! measured end to end without any external system.

use canonical::{CatalogItem, Currency, Sku, VatRate};
use rust_decimal::Decimal;

use crate::{Capabilities, Flow, Support};

/// The no-op ERP's catalog: three articles in RON, prices including 21 % VAT, so the no-op
/// flows have something to map (a tenant's mapping version is exercised without any external
/// system).
pub fn demo_catalog() -> Vec<CatalogItem> {
    [
        ("DEMO-MUG", "Cana ceramica alba", 4990),
        ("DEMO-TEA", "Ceai verde 100 g", 2450),
        ("DEMO-BAG", "Sacosa bumbac", 1500),
    ]
    .into_iter()
    .filter_map(|(sku, name, bani)| {
        Some(CatalogItem {
            sku: Sku::new(sku).ok()?,
            name: name.to_owned(),
            price: Decimal::new(bani, 2),
            price_includes_vat: true,
            vat: VatRate::percent(Decimal::from(21)).ok(),
            currency: Currency::Ron,
            unit: "buc".to_owned(),
        })
    })
    .collect()
}

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
    fn demo_catalog_has_three_valid_articles() {
        assert_eq!(demo_catalog().len(), 3);
    }

    #[test]
    fn noop_supports_every_flow() {
        let c = capabilities();
        assert!(Flow::ALL.iter().all(|f| c.supports(*f)));
    }
}
