//! What field-mapping rules read and write for each system: the **schemas** a rule set is
//! validated against on save, the **records** the flows build for the engine, and the
//! [`Listing`] built from a mapped record.
//!
//! Two directions:
//! - `erp_to_marketplace` (catalog): the source is one ERP catalog item
//!   ([`catalog_record`]), the target one marketplace listing ([`ListingTarget`]);
//! - `marketplace_to_erp` (orders): the source is one marketplace order line
//!   ([`order_line_record`]), the target the ERP document line ([`ErpLineTarget`]).
//!
//! The catalog record adds two derived prices to what the ERP says, so one rule set works
//! whichever way an ERP quotes its prices: `price_net` (VAT stripped when the price includes
//! it) and `price_gross` (VAT added when it does not), each `null` when the ERP gives no VAT
//! rate and the other form is needed. Derived values are unrounded (the rules round).

use canonical::mapping::{Record, Schema, Value, ValueType};
use canonical::{
    CatalogItem, Country, Currency, Erp, Listing, MarketPrice, Marketplace, Money, Order,
    OrderLine, Sku, VatRate,
};
use rust_decimal::Decimal;
use serde_json::{Map, Value as Json};

use crate::error::ConnectorError;

/// Field names of a catalog record (the `erp_to_marketplace` source).
pub mod catalog {
    pub const SKU: &str = "sku";
    pub const NAME: &str = "name";
    pub const PRICE: &str = "price";
    pub const PRICE_INCLUDES_VAT: &str = "price_includes_vat";
    pub const PRICE_NET: &str = "price_net";
    pub const PRICE_GROSS: &str = "price_gross";
    pub const VAT_PERCENT: &str = "vat_percent";
    pub const CURRENCY: &str = "currency";
    pub const UNIT: &str = "unit";
    /// Units available to sell (after the tenant's buffer), when the ERP keeps stock.
    pub const STOCK: &str = "stock";
}

/// Field names of an order-line record (the `marketplace_to_erp` source).
pub mod order_line {
    pub const SKU: &str = "sku";
    pub const TITLE: &str = "title";
    pub const QUANTITY: &str = "quantity";
    pub const UNIT_PRICE_GROSS: &str = "unit_price_gross";
    pub const VAT_PERCENT: &str = "vat_percent";
    pub const CURRENCY: &str = "currency";
    pub const MARKET: &str = "market";
    pub const ORDER_DATE: &str = "order_date";
    /// The buyer gave a company tax id.
    pub const B2B: &str = "b2b";
}

/// The currencies an ERP's catalog quotes prices in (validation checks a conversion has a
/// rate for each). `None`: not declared (any).
fn erp_currencies(erp: Erp) -> Option<&'static [&'static str]> {
    match erp {
        // SmartBill price lists and Charisma price entries may be in RON or EUR.
        Erp::SmartBill | Erp::Charisma => Some(&["RON", "EUR"]),
        Erp::WinMentor => Some(&["RON"]),
        // lexoffice keeps EUR only.
        Erp::Lexoffice => Some(&["EUR"]),
        Erp::Noop => None,
    }
}

/// The schema of an ERP's catalog records. Every ERP but lexoffice has `stock` (lexoffice
/// keeps no stock: a rule reading it is refused on save).
pub fn catalog_source_schema(erp: Erp) -> Schema {
    use catalog::*;
    let mut s = Schema::new()
        .required(SKU, ValueType::Text)
        .required(NAME, ValueType::Text)
        .required(PRICE, ValueType::Decimal)
        .required(PRICE_INCLUDES_VAT, ValueType::Bool)
        .field(PRICE_NET, ValueType::Decimal)
        .field(PRICE_GROSS, ValueType::Decimal)
        .field(VAT_PERCENT, ValueType::Decimal)
        .field(UNIT, ValueType::Text);
    s = match erp_currencies(erp) {
        Some(c) => s.enumerated(CURRENCY, ValueType::Text, c.iter().copied()),
        None => s.field(CURRENCY, ValueType::Text),
    };
    if erp != Erp::Lexoffice {
        s = s.field(STOCK, ValueType::Integer);
    }
    s
}

/// A catalog item as the mapping engine reads it (see the module docs for `price_net` and
/// `price_gross`). `stock`: units available to sell, when known.
pub fn catalog_record(item: &CatalogItem, stock: Option<u32>) -> Record {
    use catalog::*;
    let mut r = Record::from(item);
    let (net, gross) = match (item.price_includes_vat, item.vat) {
        (true, Some(v)) => (
            Value::Decimal(v.net_of(item.price)),
            Value::Decimal(item.price),
        ),
        (true, None) => (Value::Null, Value::Decimal(item.price)),
        (false, Some(v)) => (
            Value::Decimal(item.price),
            Value::Decimal(v.gross_of(item.price)),
        ),
        (false, None) => (Value::Decimal(item.price), Value::Null),
    };
    r.insert(PRICE_NET, net);
    r.insert(PRICE_GROSS, gross);
    if let Some(s) = stock {
        r.insert(STOCK, i64::from(s));
    }
    r
}

/// Where a marketplace listing's fields come from in a mapped record.
#[derive(Debug, Clone, PartialEq)]
pub struct ListingTarget {
    pub marketplace: Marketplace,
    /// The markets a price is required for, with the currency of each.
    pub markets: Vec<(Country, Currency)>,
    /// The field holding the title (CDON: `title.sv-SE`, the first configured language).
    pub title: String,
    pub description: String,
    /// Fields a rule set must write beyond title, description and prices.
    pub also_required: &'static [&'static str],
}

/// Optional listing fields every marketplace takes.
const LISTING_OPTIONAL_TEXT: [&str; 6] =
    ["sku", "brand", "gtin", "category", "parent_sku", "image"];

impl ListingTarget {
    /// The listing target of `marketplace` as the connection's settings configure it.
    pub fn of(
        marketplace: Marketplace,
        settings: &Map<String, Json>,
    ) -> Result<Self, ConnectorError> {
        let entry = |system: &str| settings.get(system).cloned().unwrap_or(Json::Null);
        Ok(match marketplace {
            #[cfg(feature = "cdon")]
            Marketplace::Cdon => {
                let cfg: crate::cdon::Config = crate::settings::from_value("cdon", entry("cdon"))?;
                cfg.validate()?;
                let lang = cfg
                    .languages
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "sv-SE".to_owned());
                let markets = cfg
                    .markets
                    .iter()
                    .filter_map(|m| crate::cdon::convert::market_currency(*m).map(|c| (*m, c)))
                    .collect();
                Self {
                    marketplace,
                    markets,
                    title: format!("title.{lang}"),
                    description: format!("description.{lang}"),
                    also_required: &[],
                }
            }
            #[cfg(feature = "celro")]
            Marketplace::Celro => Self {
                marketplace,
                markets: vec![(Country::RO, Currency::Ron)],
                title: "title".into(),
                description: "description".into(),
                // Cel.ro refuses a new product without its category id and brand.
                also_required: &["category", "brand"],
            },
            #[allow(unreachable_patterns)]
            _ => Self {
                marketplace,
                markets: Vec::new(),
                title: "title".into(),
                description: "description".into(),
                also_required: &[],
            },
        })
    }

    /// The target schema; `None` for the no-op marketplace (it takes anything).
    pub fn schema(&self) -> Option<Schema> {
        if self.marketplace == Marketplace::Noop {
            return None;
        }
        let mut s = Schema::new()
            .required(self.title.clone(), ValueType::Text)
            .required(self.description.clone(), ValueType::Text)
            .field("vat_percent", ValueType::Decimal)
            .field("active", ValueType::Bool)
            .field("handling_days", ValueType::Integer);
        for f in LISTING_OPTIONAL_TEXT {
            s = if self.also_required.contains(&f) {
                s.required(f, ValueType::Text)
            } else {
                s.field(f, ValueType::Text)
            };
        }
        for (m, _) in &self.markets {
            s = s
                .required(format!("price.{m}"), ValueType::Decimal)
                .field(format!("vat.{m}"), ValueType::Decimal);
        }
        Some(s)
    }

    /// The listing from a mapped record. `item` supplies the SKU, title and VAT when the rules
    /// did not write them; `quantity` is the stock the flow computed. Errors name the field.
    pub fn listing(
        &self,
        item: &CatalogItem,
        mapped: &Record,
        quantity: u32,
    ) -> Result<Listing, String> {
        let text = |name: &str| -> Result<Option<String>, String> {
            match mapped.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Text(t)) => Ok(Some(t.trim().to_owned()).filter(|t| !t.is_empty())),
                Some(v @ (Value::Integer(_) | Value::Decimal(_))) => Ok(Some(v.to_string())),
                Some(v) => Err(format!(
                    "`{name}` must be text, the rules wrote {}",
                    v.type_name()
                )),
            }
        };
        let decimal = |name: &str| -> Result<Option<Decimal>, String> {
            match mapped.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v.as_decimal().map(Some).ok_or_else(|| {
                    format!(
                        "`{name}` must be a number, the rules wrote {}",
                        v.type_name()
                    )
                }),
            }
        };
        let vat_at = |name: &str| -> Result<Option<VatRate>, String> {
            decimal(name)?
                .map(|p| VatRate::percent(p).map_err(|e| format!("`{name}`: {e}")))
                .transpose()
        };
        let required = |name: &str, fallback: Option<&str>| -> Result<String, String> {
            text(name)?
                .or_else(|| fallback.map(str::to_owned))
                .ok_or_else(|| format!("`{name}` is empty or was not written by the rules"))
        };
        let sku = match text("sku")? {
            Some(s) => Sku::new(s).map_err(|e| format!("`sku`: {e}"))?,
            None => item.sku.clone(),
        };
        let is_noop = self.marketplace == Marketplace::Noop;
        let title = required(&self.title, is_noop.then_some(item.name.as_str()))?;
        let description = required(&self.description, is_noop.then_some(item.name.as_str()))?;
        let vat = match vat_at("vat_percent")?.or(item.vat) {
            Some(v) => v,
            None => {
                return Err(
                    "no VAT rate: the ERP gives none and the rules write no `vat_percent`".into(),
                );
            }
        };
        let mut prices = Vec::with_capacity(self.markets.len());
        for (market, currency) in &self.markets {
            let field = format!("price.{market}");
            let amount = decimal(&field)?
                .ok_or_else(|| format!("`{field}` was not written by the rules"))?;
            if amount <= Decimal::ZERO {
                return Err(format!(
                    "`{field}` must be above zero, the rules computed {amount}"
                ));
            }
            prices.push(MarketPrice {
                market: *market,
                gross: Money::new(amount, *currency),
                vat: vat_at(&format!("vat.{market}"))?,
            });
        }
        let active = match mapped.get("active") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                return Err(format!(
                    "`active` must be true or false, the rules wrote {}",
                    v.type_name()
                ));
            }
        };
        let handling_days = match decimal("handling_days")? {
            None => 1,
            Some(d) => u8::try_from(d.trunc().mantissa())
                .ok()
                .filter(|d| (1..=30).contains(d))
                .ok_or_else(|| format!("`handling_days` must be 1-30, the rules computed {d}"))?,
        };
        for f in self.also_required {
            required(f, None)?;
        }
        Ok(Listing {
            sku,
            parent_sku: text("parent_sku")?,
            title,
            description,
            brand: text("brand")?,
            gtin: text("gtin")?,
            category: text("category")?,
            images: text("image")?.into_iter().collect(),
            prices,
            vat,
            quantity,
            active,
            handling_days,
        })
    }
}

/// The currencies a marketplace's orders come in.
fn marketplace_currencies(m: Marketplace) -> Option<&'static [&'static str]> {
    match m {
        Marketplace::Cdon => Some(&["SEK", "NOK", "DKK", "EUR"]),
        Marketplace::Celro => Some(&["RON"]),
        Marketplace::Noop => None,
    }
}

/// The schema of a marketplace's order-line records (the `marketplace_to_erp` source).
pub fn order_line_source_schema(marketplace: Marketplace) -> Schema {
    use order_line::*;
    let s = Schema::new()
        .required(SKU, ValueType::Text)
        .required(TITLE, ValueType::Text)
        .required(QUANTITY, ValueType::Integer)
        .required(UNIT_PRICE_GROSS, ValueType::Decimal)
        .required(VAT_PERCENT, ValueType::Decimal)
        .required(ORDER_DATE, ValueType::Date)
        .required(B2B, ValueType::Bool);
    let s = match marketplace_currencies(marketplace) {
        Some(c) => s.enumerated(CURRENCY, ValueType::Text, c.iter().copied()),
        None => s.field(CURRENCY, ValueType::Text),
    };
    match marketplace {
        Marketplace::Cdon => s.enumerated(MARKET, ValueType::Text, ["SE", "NO", "DK", "FI"]),
        Marketplace::Celro => s.enumerated(MARKET, ValueType::Text, ["RO"]),
        Marketplace::Noop => s.field(MARKET, ValueType::Text),
    }
}

/// One order line as the mapping engine reads it.
pub fn order_line_record(order: &Order, line: &OrderLine) -> Record {
    use order_line::*;
    Record::with_capacity(9)
        .with(SKU, line.sku.as_str())
        .with(TITLE, line.title.as_str())
        .with(QUANTITY, i64::from(line.quantity))
        .with(UNIT_PRICE_GROSS, line.unit_price_gross)
        .with(VAT_PERCENT, line.vat.as_percent())
        .with(CURRENCY, order.currency.as_str())
        .with(MARKET, order.market.as_str())
        .with(ORDER_DATE, order.placed_at.date_naive())
        .with(B2B, order.customer.tax_id.is_some())
}

/// What an ERP document line takes from a mapped order line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErpLineTarget {
    pub erp: Erp,
}

/// The mapped values of one order line.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedLine {
    /// The ERP's article code.
    pub sku: Sku,
    /// Gross unit price in `currency`.
    pub unit_price_gross: Decimal,
    pub currency: Currency,
    pub vat: Option<VatRate>,
    pub unit: Option<String>,
    pub title: Option<String>,
}

impl ErpLineTarget {
    /// The target schema; `None` for the no-op ERP.
    pub fn schema(&self) -> Option<Schema> {
        if self.erp == Erp::Noop {
            return None;
        }
        Some(
            Schema::new()
                .required("sku", ValueType::Text)
                .required("unit_price_gross", ValueType::Decimal)
                .required("currency", ValueType::Text)
                .field("vat_percent", ValueType::Decimal)
                .field("unit", ValueType::Text)
                .field("title", ValueType::Text),
        )
    }

    /// The line from a mapped record; `line` fills what the rules did not write (the no-op
    /// ERP's rule sets may be empty). Errors name the field.
    pub fn line(
        &self,
        order: &Order,
        line: &OrderLine,
        mapped: &Record,
    ) -> Result<MappedLine, String> {
        let text = |name: &str| match mapped.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.to_string()).filter(|s| !s.trim().is_empty()),
        };
        let sku = match text("sku") {
            Some(s) => Sku::new(s).map_err(|e| format!("`sku`: {e}"))?,
            None => line.sku.clone(),
        };
        let unit_price_gross = match mapped.get("unit_price_gross") {
            None | Some(Value::Null) => line.unit_price_gross,
            Some(v) => v.as_decimal().ok_or_else(|| {
                format!(
                    "`unit_price_gross` must be a number, the rules wrote {}",
                    v.type_name()
                )
            })?,
        };
        let currency = match text("currency") {
            Some(c) => c.parse().map_err(|e| format!("`currency`: {e}"))?,
            None => order.currency,
        };
        let vat = match mapped.get("vat_percent") {
            None | Some(Value::Null) => Some(line.vat),
            Some(v) => Some(
                v.as_decimal()
                    .and_then(|p| VatRate::percent(p).ok())
                    .ok_or_else(|| {
                        format!("`vat_percent` must be a VAT percentage, the rules wrote {v}")
                    })?,
            ),
        };
        Ok(MappedLine {
            sku,
            unit_price_gross,
            currency,
            vat,
            unit: text("unit"),
            title: text("title"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;
    use serde_json::json;

    fn item(includes_vat: bool, vat: Option<Decimal>) -> CatalogItem {
        CatalogItem {
            sku: Sku::new("MUG-1").unwrap(),
            name: "Cana".into(),
            price: dec!(121),
            price_includes_vat: includes_vat,
            vat: vat.map(|v| VatRate::percent(v).unwrap()),
            currency: Currency::Ron,
            unit: "buc".into(),
        }
    }

    #[test]
    fn catalog_records_carry_net_and_gross_whichever_way_the_erp_quotes() {
        let r = catalog_record(&item(true, Some(dec!(21))), Some(4));
        assert_eq!(r.get("price_net"), Some(&Value::Decimal(dec!(100))));
        assert_eq!(r.get("price_gross"), Some(&Value::Decimal(dec!(121))));
        assert_eq!(r.get("stock"), Some(&Value::Integer(4)));
        let r = catalog_record(&item(false, Some(dec!(21))), None);
        assert_eq!(r.get("price_net"), Some(&Value::Decimal(dec!(121))));
        assert_eq!(
            r.get("price_gross").and_then(Value::as_decimal),
            Some(dec!(146.41))
        );
        assert!(r.get("stock").is_none());
        let r = catalog_record(&item(true, None), None);
        assert_eq!(r.get("price_net"), Some(&Value::Null));
    }

    #[test]
    fn cdon_target_requires_the_first_language_and_each_configured_market() {
        let settings = json!({"cdon": {"markets": ["SE", "FI"], "languages": ["sv-SE", "fi-FI"]}});
        let t = ListingTarget::of(Marketplace::Cdon, settings.as_object().unwrap()).unwrap();
        let s = t.schema().unwrap();
        for f in ["title.sv-SE", "description.sv-SE", "price.SE", "price.FI"] {
            assert!(s.get(f).is_some_and(|f| f.required), "{f}");
        }
        assert!(s.get("price.NO").is_none());
        assert!(s.get("vat.FI").is_some_and(|f| !f.required));
        // Bad settings are refused naming the field.
        let bad = json!({"cdon": {"markets": ["DE"]}});
        let e = ListingTarget::of(Marketplace::Cdon, bad.as_object().unwrap()).unwrap_err();
        assert!(e.to_string().contains("DE"), "{e}");
    }

    #[test]
    fn celro_requires_category_and_brand_and_builds_a_ron_listing() {
        let t = ListingTarget::of(Marketplace::Celro, &Map::new()).unwrap();
        let s = t.schema().unwrap();
        assert!(s.get("category").unwrap().required && s.get("brand").unwrap().required);
        let mapped = Record::new()
            .with("title", "Cana alba")
            .with("description", "Cana din ceramica")
            .with("price.RO", dec!(49.90))
            .with("category", 1234_i64)
            .with("brand", "Megzo");
        let l = t.listing(&item(true, Some(dec!(21))), &mapped, 7).unwrap();
        assert_eq!(l.prices[0].gross, Money::new(dec!(49.90), Currency::Ron));
        assert_eq!(l.category.as_deref(), Some("1234"));
        assert_eq!((l.quantity, l.active, l.handling_days), (7, true, 1));
        assert_eq!(l.vat.as_percent(), dec!(21));
        let no_brand = mapped.clone().with("brand", Value::Null);
        let e = t
            .listing(&item(true, Some(dec!(21))), &no_brand, 7)
            .unwrap_err();
        assert!(e.contains("`brand`"), "{e}");
        let zero = mapped.with("price.RO", dec!(0));
        let e = t
            .listing(&item(true, Some(dec!(21))), &zero, 7)
            .unwrap_err();
        assert!(e.contains("`price.RO` must be above zero"), "{e}");
    }

    #[test]
    fn listing_needs_a_vat_rate_from_the_erp_or_the_rules() {
        let t = ListingTarget::of(Marketplace::Celro, &Map::new()).unwrap();
        let mapped = Record::new()
            .with("title", "t")
            .with("description", "d")
            .with("price.RO", dec!(10))
            .with("category", "1")
            .with("brand", "b");
        let e = t.listing(&item(true, None), &mapped, 1).unwrap_err();
        assert!(e.contains("no VAT rate"), "{e}");
        let l = t
            .listing(&item(true, None), &mapped.with("vat_percent", dec!(21)), 1)
            .unwrap();
        assert_eq!(l.vat.as_percent(), dec!(21));
    }

    #[test]
    fn lexoffice_has_no_stock_field_and_declares_eur() {
        let s = catalog_source_schema(Erp::Lexoffice);
        assert!(s.get("stock").is_none());
        assert_eq!(
            s.get("currency").unwrap().values.as_deref(),
            Some(&[Value::from("EUR")][..])
        );
        assert!(catalog_source_schema(Erp::SmartBill).get("stock").is_some());
    }
}
