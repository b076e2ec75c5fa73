//! Conversion between lexoffice's shapes and `canonical`: articles → catalog items, a
//! marketplace order → the order-confirmation body (EUR only, converted with a recorded rate),
//! and the order reference written into (and read back from) the document's `remark`.

use canonical::{CatalogItem, Contact, Currency, Order, Sku, VatRate, round2};
use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};

use super::SYSTEM;
use super::config::{Config, ShippingType, TaxType};
use super::wire::{
    Address, Article, LineItem, ShippingConditions, TaxConditions, TotalPriceCurrency, UnitPrice,
    VoucherCreate, format_datetime,
};
use crate::erp::ExchangeRate;
use crate::error::{ConnectorError, Result};

/// The only currency of lexoffice sales vouchers.
pub const DOCUMENT_CURRENCY: &str = "EUR";

/// Decimals of unit amounts lexoffice keeps (totals are rounded to 2).
pub const UNIT_DECIMALS: u32 = 4;

/// The line of `remark` that names the marketplace order: the recovery lookup matches it
/// exactly, whatever the document language.
const ORDER_MARKER: &str = "Marketplace order: ";
/// The line of `remark` that records a currency conversion.
const RATE_MARKER: &str = "Exchange rate: 1 EUR = ";

/// The `remark` line naming the order (`Marketplace order: <id>`).
pub fn order_marker(order_id: &str) -> String {
    format!("{ORDER_MARKER}{order_id}")
}

/// Whether a remark names this order (a whole line, so `ORD-1` never matches `ORD-12`).
pub fn remark_names_order(remark: Option<&str>, order_id: &str) -> bool {
    let want = order_marker(order_id);
    remark.is_some_and(|r| r.lines().any(|l| l.trim() == want))
}

/// The order id a remark names, if any.
pub fn order_in_remark(remark: &str) -> Option<&str> {
    remark
        .lines()
        .find_map(|l| l.trim().strip_prefix(ORDER_MARKER))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The exchange rate recorded in a remark (order-currency units per EUR), if any.
pub fn rate_in_remark(remark: &str) -> Option<Decimal> {
    let line = remark
        .lines()
        .find_map(|l| l.trim().strip_prefix(RATE_MARKER))?;
    line.split_whitespace().next()?.parse().ok()
}

/// Rounds a unit amount to lexoffice's 4 decimals, half away from zero.
pub fn round_unit(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(UNIT_DECIMALS, RoundingStrategy::MidpointAwayFromZero)
        .normalize()
}

/// An article as a catalog item: the SKU is `articleNumber`, the price the one the merchant
/// leads with (`GROSS` → gross, VAT included; `NET` → net), the VAT its `taxRate`, in EUR.
/// `Err` (with the reason) for articles that cannot be one: archived, no article number, one
/// that is not a valid SKU, or no price on the leading side.
pub fn catalog_item(a: &Article, default_unit: &str) -> std::result::Result<CatalogItem, String> {
    if a.archived {
        return Err("archived".into());
    }
    let number = a
        .article_number
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or("no articleNumber (the SKU)")?;
    let sku = Sku::new(number).map_err(|e| format!("articleNumber is not a SKU: {e}"))?;
    let (price, gross) = match a.price.leading_price.to_ascii_uppercase().as_str() {
        "GROSS" => (a.price.gross_price, true),
        "NET" => (a.price.net_price, false),
        other => return Err(format!("unknown leadingPrice {other:?}")),
    };
    let price = price.ok_or("no price on the leading side")?;
    let vat = VatRate::percent(a.price.tax_rate).map_err(|e| e.to_string())?;
    Ok(CatalogItem {
        sku,
        name: a.title.clone(),
        price,
        price_includes_vat: gross,
        vat: Some(vat),
        currency: Currency::Eur,
        unit: a
            .unit_name
            .clone()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| default_unit.to_owned()),
    })
}

/// How order amounts become EUR.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion {
    /// Order-currency units per EUR; `None` for EUR orders.
    pub rate: Option<ExchangeRate>,
    pub from: Currency,
}

impl Conversion {
    /// The conversion for `order`: none for EUR; otherwise `rate` is required and positive.
    pub fn for_order(order: &Order, rate: Option<&ExchangeRate>) -> Result<Self> {
        if order.currency == Currency::Eur {
            return Ok(Self {
                rate: None,
                from: Currency::Eur,
            });
        }
        let Some(rate) = rate else {
            return Err(ConnectorError::permanent(
                SYSTEM,
                "create_sales_document",
                format!(
                    "lexoffice accepts EUR only and order {} is in {}: an exchange rate \
                     ({} per EUR, with its date and source) is required in \
                     DocumentOptions.exchange_rate; nothing was sent",
                    order.id, order.currency, order.currency
                ),
            ));
        };
        if rate.rate <= Decimal::ZERO {
            return Err(ConnectorError::permanent(
                SYSTEM,
                "create_sales_document",
                format!(
                    "exchange rate {} {} per EUR is not positive; nothing was sent",
                    rate.rate, order.currency
                ),
            ));
        }
        if rate.source.trim().is_empty() {
            return Err(ConnectorError::permanent(
                SYSTEM,
                "create_sales_document",
                "the exchange rate has no source (e.g. BNR, ECB): it is recorded on the \
                 document; nothing was sent",
            ));
        }
        Ok(Self {
            rate: Some(rate.clone()),
            from: order.currency,
        })
    }

    /// An order-currency amount in EUR, at unit precision (4 decimals).
    pub fn unit(&self, amount: Decimal) -> Decimal {
        match &self.rate {
            None => round_unit(amount),
            Some(r) => round_unit(amount / r.rate),
        }
    }

    /// The rate as recorded on the document (`None` for EUR orders).
    pub fn rate_value(&self) -> Option<Decimal> {
        self.rate.as_ref().map(|r| r.rate)
    }
}

/// The order confirmation's body and what we expect lexoffice to compute from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub body: VoucherCreate,
    /// The gross total in EUR as lexoffice computes it (lines rounded to cents, summed).
    pub expected_total: Decimal,
    pub conversion: Conversion,
}

fn language_text(config: &Config, de: &str, en: &str) -> String {
    if config.language == "de" {
        de.to_owned()
    } else {
        en.to_owned()
    }
}

/// The billing address: the customer's (the ship-to address when the customer has none).
fn address(order: &Order) -> Result<Address> {
    let c: &Contact = if order.customer.name.trim().is_empty()
        && order
            .customer
            .company
            .as_deref()
            .is_none_or(|c| c.trim().is_empty())
    {
        &order.ship_to
    } else {
        &order.customer
    };
    let company = c
        .company
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let person = Some(c.name.trim()).filter(|s| !s.is_empty());
    let (name, mut supplement) = match (company, person) {
        (Some(co), p) => (co.to_owned(), p.map(str::to_owned)),
        (None, Some(p)) => (p.to_owned(), None),
        (None, None) => {
            return Err(ConnectorError::permanent(
                SYSTEM,
                "create_sales_document",
                format!(
                    "order {} has no customer name or company (lexoffice requires address.name); \
                     nothing was sent",
                    order.id
                ),
            ));
        }
    };
    let line2 = c
        .address_line2
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let mut street = c.address_line1.trim().to_owned();
    match (line2, &supplement) {
        (Some(l2), None) => supplement = Some(l2.to_owned()),
        (Some(l2), Some(_)) => street = format!("{street}, {l2}"),
        (None, _) => {}
    }
    let country = c.country.unwrap_or(order.market);
    let opt = |s: String| Some(s).filter(|s| !s.trim().is_empty());
    Ok(Address {
        contact_id: None,
        name: Some(name),
        supplement,
        street: opt(street),
        city: opt(c.city.trim().to_owned()),
        zip: opt(c.postal_code.trim().to_owned()),
        country_code: Some(country.as_str().to_owned()),
    })
}

fn unit_price(config: &Config, gross_eur: Decimal, vat: VatRate) -> UnitPrice {
    let (net_amount, gross_amount) = match config.tax_type {
        TaxType::Gross => (None, Some(gross_eur)),
        TaxType::Net => (
            Some(round_unit(gross_eur / (Decimal::ONE + vat.as_fraction()))),
            None,
        ),
    };
    UnitPrice {
        currency: DOCUMENT_CURRENCY.to_owned(),
        net_amount,
        gross_amount,
        tax_rate_percentage: Some(vat.as_percent()),
    }
}

/// The line total lexoffice computes: quantity × unit amount, rounded to cents. With `net`
/// the gross is the rounded net plus its VAT.
fn line_gross(config: &Config, quantity: Decimal, p: &UnitPrice, vat: VatRate) -> Decimal {
    match config.tax_type {
        TaxType::Gross => round2(quantity * p.gross_amount.unwrap_or_default()),
        TaxType::Net => vat.gross_of(round2(quantity * p.net_amount.unwrap_or_default())),
    }
}

/// Builds the order confirmation for a marketplace order: one `custom` line per order line
/// (gross unit price in EUR at 4 decimals with its VAT rate), shipping as a line, the billing
/// address with its country code, the delivery date, and the order id (plus the conversion,
/// when there was one) in `remark` and `introduction`.
pub fn order_confirmation(
    config: &Config,
    order: &Order,
    rate: Option<&ExchangeRate>,
    now: DateTime<Utc>,
) -> Result<Draft> {
    let conversion = Conversion::for_order(order, rate)?;
    if order.lines.is_empty() {
        return Err(ConnectorError::permanent(
            SYSTEM,
            "create_sales_document",
            format!("order {} has no lines; nothing was sent", order.id),
        ));
    }
    if order.lines.len() + 1 > 300 {
        return Err(ConnectorError::permanent(
            SYSTEM,
            "create_sales_document",
            format!(
                "order {} has {} lines; lexoffice takes at most 300 per document",
                order.id,
                order.lines.len()
            ),
        ));
    }
    let mut lines = Vec::with_capacity(order.lines.len() + 1);
    let mut total = Decimal::ZERO;
    for l in &order.lines {
        if l.quantity == 0 {
            return Err(ConnectorError::permanent(
                SYSTEM,
                "create_sales_document",
                format!("order {} line {} has quantity 0", order.id, l.sku),
            ));
        }
        let qty = Decimal::from(l.quantity);
        let price = unit_price(config, conversion.unit(l.unit_price_gross), l.vat);
        total += line_gross(config, qty, &price, l.vat);
        let name = if l.title.trim().is_empty() {
            l.sku.to_string()
        } else {
            l.title.trim().chars().take(255).collect()
        };
        lines.push(LineItem {
            kind: "custom".into(),
            id: None,
            name,
            description: Some(format!("SKU: {}", l.sku)),
            quantity: Some(qty),
            unit_name: Some(config.unit_name.clone()),
            unit_price: Some(price),
            discount_percentage: None,
            line_item_amount: None,
        });
    }
    if order.shipping_fee_gross > Decimal::ZERO {
        // Shipping follows the highest VAT rate of the goods (the usual German treatment of an
        // ancillary service).
        let vat = order
            .lines
            .iter()
            .map(|l| l.vat)
            .max()
            .unwrap_or(order.lines[0].vat);
        let price = unit_price(config, conversion.unit(order.shipping_fee_gross), vat);
        total += line_gross(config, Decimal::ONE, &price, vat);
        lines.push(LineItem {
            kind: "custom".into(),
            id: None,
            name: language_text(config, "Versand", "Shipping"),
            description: None,
            quantity: Some(Decimal::ONE),
            unit_name: Some(config.unit_name.clone()),
            unit_price: Some(price),
            discount_percentage: None,
            line_item_amount: None,
        });
    }

    let mut remark = vec![order_marker(order.id.as_str())];
    let mut intro = match config.language.as_str() {
        "de" => format!(
            "Marktplatz-Bestellung {} ({}).",
            order.id,
            order.market.as_str()
        ),
        _ => format!(
            "Marketplace order {} ({}).",
            order.id,
            order.market.as_str()
        ),
    };
    if let Some(r) = &conversion.rate {
        let recorded = format!(
            "{RATE_MARKER}{} {} ({}, {}); order total {} {}.",
            r.rate.normalize(),
            conversion.from,
            r.source.trim(),
            r.date.format("%Y-%m-%d"),
            round2(order.total_gross),
            conversion.from
        );
        remark.push(recorded.clone());
        intro.push(' ');
        intro.push_str(&match config.language.as_str() {
            "de" => format!(
                "Umgerechnet aus {} zum Kurs 1 EUR = {} {} ({}, {}).",
                conversion.from,
                r.rate.normalize(),
                conversion.from,
                r.source.trim(),
                r.date.format("%d.%m.%Y")
            ),
            _ => format!(
                "Converted from {} at 1 EUR = {} {} ({}, {}).",
                conversion.from,
                r.rate.normalize(),
                conversion.from,
                r.source.trim(),
                r.date.format("%Y-%m-%d")
            ),
        });
    }

    let voucher_date = order.placed_at.min(now);
    let shipping_date = match config.shipping_type {
        ShippingType::None => None,
        _ => Some(format_datetime(order.ship_by.unwrap_or(voucher_date))),
    };
    let body = VoucherCreate {
        voucher_date: format_datetime(voucher_date),
        language: config.language.clone(),
        address: address(order)?,
        line_items: lines,
        total_price: TotalPriceCurrency {
            currency: DOCUMENT_CURRENCY.to_owned(),
        },
        tax_conditions: TaxConditions {
            tax_type: config.tax_type.as_str().to_owned(),
        },
        shipping_conditions: ShippingConditions {
            shipping_date,
            shipping_type: config.shipping_type.as_str().to_owned(),
        },
        title: None,
        introduction: Some(intro),
        remark: Some(remark.join("\n")),
    };
    Ok(Draft {
        body,
        expected_total: round2(total),
        conversion,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexoffice::wire::ArticlePrice;
    use canonical::{ChannelOrderId, Country, OrderLine, OrderStatus};
    use chrono::NaiveDate;

    fn vat(p: i64) -> VatRate {
        VatRate::percent(Decimal::from(p)).unwrap()
    }

    fn order(currency: Currency, unit: Decimal, qty: u32, shipping: Decimal) -> Order {
        let customer = Contact {
            name: "Erika Mustermann".into(),
            address_line1: "Hauptstr. 1".into(),
            address_line2: Some("2. OG".into()),
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country: Some(Country::DE),
            ..Contact::default()
        };
        Order {
            id: ChannelOrderId::new("ORD-1").unwrap(),
            group_id: None,
            status: OrderStatus::New,
            raw_status: "CREATED".into(),
            market: Country::RO,
            currency,
            placed_at: DateTime::parse_from_rfc3339("2025-01-31T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            updated_at: None,
            ship_by: None,
            lines: vec![OrderLine {
                line_id: None,
                sku: Sku::new("MUG-1").unwrap(),
                title: "Tasse".into(),
                quantity: qty,
                unit_price_gross: unit,
                vat: vat(19),
            }],
            shipping_fee_gross: shipping,
            total_gross: unit * Decimal::from(qty) + shipping,
            customer: customer.clone(),
            ship_to: customer,
            tracking: vec![],
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-02-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn eur_orders_go_over_as_gross_custom_lines_with_shipping_and_the_order_in_the_remark() {
        let o = order(
            Currency::Eur,
            Decimal::new(5950, 2),
            2,
            Decimal::new(490, 2),
        );
        let d = order_confirmation(&Config::default(), &o, None, now()).unwrap();
        let b = &d.body;
        assert_eq!(b.voucher_date, "2025-01-31T10:00:00.000+00:00");
        assert_eq!(b.tax_conditions.tax_type, "gross");
        assert_eq!(b.total_price.currency, "EUR");
        assert_eq!(b.line_items.len(), 2);
        let l = &b.line_items[0];
        assert_eq!(l.kind, "custom");
        assert_eq!(l.unit_name.as_deref(), Some("Stück"));
        let p = l.unit_price.as_ref().unwrap();
        assert_eq!(p.gross_amount, Some(Decimal::new(5950, 2)));
        assert_eq!(p.net_amount, None);
        assert_eq!(p.tax_rate_percentage, Some(Decimal::from(19)));
        assert_eq!(b.line_items[1].name, "Versand");
        assert_eq!(d.expected_total, Decimal::new(12390, 2));
        assert!(remark_names_order(b.remark.as_deref(), "ORD-1"));
        assert!(!remark_names_order(b.remark.as_deref(), "ORD"));
        assert!(!remark_names_order(b.remark.as_deref(), "ORD-12"));
        assert_eq!(order_in_remark(b.remark.as_deref().unwrap()), Some("ORD-1"));
        let a = &b.address;
        assert_eq!(a.name.as_deref(), Some("Erika Mustermann"));
        assert_eq!(a.supplement.as_deref(), Some("2. OG"));
        assert_eq!(a.country_code.as_deref(), Some("DE"));
        assert_eq!(
            b.shipping_conditions.shipping_date.as_deref(),
            Some("2025-01-31T10:00:00.000+00:00")
        );
        assert_eq!(d.conversion.rate_value(), None);
    }

    #[test]
    fn other_currencies_need_a_rate_and_are_converted_and_recorded() {
        let o = order(
            Currency::Ron,
            Decimal::new(9999, 2),
            3,
            Decimal::new(1500, 2),
        );
        let e = order_confirmation(&Config::default(), &o, None, now()).unwrap_err();
        assert_eq!(e.class(), crate::ErrorClass::Permanent);
        let shown = e.to_string();
        assert!(
            shown.contains("EUR only") && shown.contains("exchange rate") && shown.contains("RON"),
            "{shown}"
        );
        let rate = ExchangeRate {
            rate: Decimal::new(49771, 4),
            date: NaiveDate::from_ymd_opt(2025, 1, 30).unwrap(),
            source: "BNR".into(),
        };
        let d = order_confirmation(&Config::default(), &o, Some(&rate), now()).unwrap();
        // 99.99 / 4.9771 = 20.09001... → 20.0900 at 4 decimals; 15 / 4.9771 = 3.01380...
        let p = d.body.line_items[0].unit_price.as_ref().unwrap();
        assert_eq!(p.gross_amount, Some(Decimal::new(200900, 4)));
        assert_eq!(p.currency, "EUR");
        let s = d.body.line_items[1].unit_price.as_ref().unwrap();
        assert_eq!(s.gross_amount, Some(Decimal::new(30138, 4)));
        // 3 × 20.09 = 60.27; + 3.0138 → 3.01; = 63.28
        assert_eq!(d.expected_total, Decimal::new(6328, 2));
        let remark = d.body.remark.as_deref().unwrap();
        assert!(
            remark.contains("1 EUR = 4.9771 RON (BNR, 2025-01-30)"),
            "{remark}"
        );
        assert!(remark.contains("order total 314.97 RON"), "{remark}");
        assert_eq!(rate_in_remark(remark), Some(Decimal::new(49771, 4)));
        let intro = d.body.introduction.as_deref().unwrap();
        assert!(
            intro.contains("4.9771") && intro.contains("30.01.2025"),
            "{intro}"
        );
        assert_eq!(d.conversion.rate_value(), Some(Decimal::new(49771, 4)));
        for bad in [Decimal::ZERO, Decimal::new(-1, 0)] {
            let r = ExchangeRate {
                rate: bad,
                ..rate.clone()
            };
            assert!(order_confirmation(&Config::default(), &o, Some(&r), now()).is_err());
        }
        let r = ExchangeRate {
            source: " ".into(),
            ..rate.clone()
        };
        assert!(order_confirmation(&Config::default(), &o, Some(&r), now()).is_err());
    }

    #[test]
    fn unit_amounts_round_half_away_from_zero_at_four_decimals() {
        assert_eq!(round_unit(Decimal::new(123_455, 5)), Decimal::new(12346, 4));
        assert_eq!(
            round_unit(Decimal::new(-123_455, 5)),
            Decimal::new(-12346, 4)
        );
        assert_eq!(round_unit(Decimal::new(15_946, 3)), Decimal::new(15_946, 3));
    }

    #[test]
    fn net_tax_type_sends_net_amounts_and_computes_gross_from_them() {
        let cfg = Config {
            tax_type: TaxType::Net,
            language: "en".into(),
            ..Config::default()
        };
        let o = order(Currency::Eur, Decimal::new(11900, 2), 1, Decimal::ZERO);
        let d = order_confirmation(&cfg, &o, None, now()).unwrap();
        assert_eq!(d.body.tax_conditions.tax_type, "net");
        let p = d.body.line_items[0].unit_price.as_ref().unwrap();
        assert_eq!(p.net_amount, Some(Decimal::from(100)));
        assert_eq!(p.gross_amount, None);
        assert_eq!(d.expected_total, Decimal::new(11900, 2));
        assert_eq!(
            d.body.line_items.len(),
            1,
            "no shipping line for a zero fee"
        );
        assert!(
            d.body
                .introduction
                .unwrap()
                .starts_with("Marketplace order")
        );
    }

    #[test]
    fn an_order_without_a_name_is_refused_before_sending() {
        let mut o = order(Currency::Eur, Decimal::ONE, 1, Decimal::ZERO);
        o.customer = Contact::default();
        o.ship_to = Contact::default();
        let e = order_confirmation(&Config::default(), &o, None, now()).unwrap_err();
        assert!(e.to_string().contains("address.name"), "{e}");
        let mut o = order(Currency::Eur, Decimal::ONE, 1, Decimal::ZERO);
        o.customer.company = Some("Muster GmbH".into());
        let d = order_confirmation(&Config::default(), &o, None, now()).unwrap();
        assert_eq!(d.body.address.name.as_deref(), Some("Muster GmbH"));
        assert_eq!(
            d.body.address.supplement.as_deref(),
            Some("Erika Mustermann")
        );
        assert_eq!(d.body.address.street.as_deref(), Some("Hauptstr. 1, 2. OG"));
    }

    #[test]
    fn articles_become_catalog_items_by_leading_price() {
        let mut a = Article {
            id: "a1".into(),
            organization_id: None,
            archived: false,
            title: "Tasse".into(),
            description: None,
            kind: "PRODUCT".into(),
            article_number: Some("MUG-1".into()),
            gtin: None,
            unit_name: None,
            price: ArticlePrice {
                net_price: Some(Decimal::new(5000, 2)),
                gross_price: Some(Decimal::new(5950, 2)),
                leading_price: "GROSS".into(),
                tax_rate: Decimal::from(19),
            },
            version: 1,
        };
        let i = catalog_item(&a, "Stück").unwrap();
        assert_eq!(i.price, Decimal::new(5950, 2));
        assert!(i.price_includes_vat);
        assert_eq!(i.currency, Currency::Eur);
        assert_eq!(i.unit, "Stück");
        assert_eq!(i.vat, Some(vat(19)));
        a.price.leading_price = "NET".into();
        let i = catalog_item(&a, "Stück").unwrap();
        assert_eq!(i.price, Decimal::new(5000, 2));
        assert!(!i.price_includes_vat);
        a.article_number = None;
        assert!(
            catalog_item(&a, "Stück")
                .unwrap_err()
                .contains("articleNumber")
        );
        a.article_number = Some("X".into());
        a.archived = true;
        assert!(catalog_item(&a, "Stück").is_err());
    }
}
