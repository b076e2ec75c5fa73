//! Conversions between SmartBill's wire types and `canonical`: the proforma built from a
//! marketplace order (client per ANAF's rules, gross lines with SmartBill's tax names, the
//! shipping fee as a service line, the order id printed in `mentions`), stock rows, the
//! catalog from the tenant's price list, and document numbers.

use std::collections::BTreeMap;

use canonical::{CatalogItem, Contact, Country, Currency, Order, Sku, StockLevel, VatRate, round2};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::SYSTEM;
use super::config::Config;
use super::errors::fold;
use super::wire::{Client, Document, Product, StocksResponse, Tax};
use crate::erp::DocumentOptions;
use crate::error::{ConnectorError, Result};

const OP: &str = "create_sales_document";

/// The 41 Romanian counties and Bucharest, as SmartBill's ANAF check expects them.
pub const COUNTIES: [&str; 42] = [
    "Alba",
    "Arad",
    "Arges",
    "Bacau",
    "Bihor",
    "Bistrita-Nasaud",
    "Botosani",
    "Braila",
    "Brasov",
    "Bucuresti",
    "Buzau",
    "Calarasi",
    "Caras-Severin",
    "Cluj",
    "Constanta",
    "Covasna",
    "Dambovita",
    "Dolj",
    "Galati",
    "Giurgiu",
    "Gorj",
    "Harghita",
    "Hunedoara",
    "Ialomita",
    "Iasi",
    "Ilfov",
    "Maramures",
    "Mehedinti",
    "Mures",
    "Neamt",
    "Olt",
    "Prahova",
    "Salaj",
    "Satu Mare",
    "Sibiu",
    "Suceava",
    "Teleorman",
    "Timis",
    "Tulcea",
    "Valcea",
    "Vaslui",
    "Vrancea",
];

/// Tax names preferred when `GET /tax` lists several for one percentage.
const PREFERRED_TAXES: [&str; 4] = ["Normala", "Redusa", "Redusa 2", "Scutita"];

fn refuse(message: String) -> ConnectorError {
    ConnectorError::permanent(SYSTEM, OP, message)
}

/// A county name reduced for comparison: folded, without "judetul", spaces and hyphens.
fn county_key(s: &str) -> String {
    let f = fold(s.trim());
    let f = f
        .strip_prefix("judetul ")
        .or_else(|| f.strip_prefix("jud. "))
        .or_else(|| f.strip_prefix("jud "))
        .unwrap_or(&f)
        .to_owned();
    f.chars().filter(|c| c.is_ascii_alphanumeric()).collect()
}

/// The county as SmartBill spells it, or `None` when `s` is not a Romanian county.
pub fn county(s: &str) -> Option<&'static str> {
    let k = county_key(s);
    if matches!(
        k.as_str(),
        "municipiulbucuresti" | "bucharest" | "bucuresti"
    ) {
        return Some("Bucuresti");
    }
    COUNTIES.iter().copied().find(|c| county_key(c) == k)
}

/// The Bucharest sector named in `text` ("Sector 3", "sectorul 3", "S3"), if any.
fn sector_in(text: &str) -> Option<u8> {
    let f = fold(text);
    let mut rest = f.as_str();
    while let Some(i) = rest.find("sector") {
        let after = rest[i + "sector".len()..]
            .trim_start_matches("ul")
            .trim_start();
        if let Some(d) = after.chars().next().and_then(|c| c.to_digit(10))
            && (1..=6).contains(&d)
            && !after[1..].starts_with(|c: char| c.is_ascii_digit())
        {
            return Some(d as u8);
        }
        rest = &rest[i + "sector".len()..];
    }
    None
}

/// The sector from a Bucharest postal code (`0N....`, N the sector).
fn sector_of_postal_code(code: &str) -> Option<u8> {
    let c: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let b = c.as_bytes();
    if b.len() == 6 && b.iter().all(u8::is_ascii_digit) && b[0] == b'0' {
        let s = b[1] - b'0';
        return (1..=6).contains(&s).then_some(s);
    }
    None
}

fn is_bucharest(contact: &Contact) -> bool {
    let city = fold(&contact.city);
    let region = contact.region.as_deref().map(county);
    region == Some(Some("Bucuresti")) || city.contains("bucuresti") || city.contains("bucharest")
}

fn country_name(c: Country) -> String {
    match c.as_str() {
        "RO" => "Romania".to_owned(),
        "MD" => "Moldova".to_owned(),
        "HU" => "Ungaria".to_owned(),
        "BG" => "Bulgaria".to_owned(),
        other => other.to_owned(),
    }
}

fn dash_if_blank(s: &str) -> String {
    let t = s.trim();
    if t.is_empty() {
        "-".to_owned()
    } else {
        t.to_owned()
    }
}

/// The client of the proforma, per ANAF's rules on SmartBill's `POST /invoice`: companies with
/// their CIF, individuals with their CNP when given (13 digits) or `-`; address and city `-`
/// when blank; a Romanian client's county must be a real county; a Bucharest client has its
/// sector as city ("Sector 3", from the address or the postal code) and "Bucuresti" as county.
pub fn client(contact: &Contact, market: Country) -> Result<Client> {
    let country = contact.country.unwrap_or(market);
    let person = contact.name.trim();
    let company = contact
        .company
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let tax_id = contact
        .tax_id
        .as_deref()
        .map(|t| t.trim().replace(' ', "").to_ascii_uppercase())
        .filter(|t| !t.is_empty());
    let is_cnp = |t: &str| t.len() == 13 && t.bytes().all(|b| b.is_ascii_digit());
    let (name, vat_code, is_tax_payer, contact_name) = match (company, &tax_id) {
        (Some(c), Some(t)) if !is_cnp(t) => (
            c.to_owned(),
            t.clone(),
            t.starts_with("RO"),
            (!person.is_empty()).then(|| person.to_owned()),
        ),
        _ => {
            let name = if person.is_empty() {
                company.unwrap_or_default()
            } else {
                person
            };
            let vat = tax_id
                .filter(|t| is_cnp(t))
                .unwrap_or_else(|| "-".to_owned());
            (name.to_owned(), vat, false, None)
        }
    };
    if name.trim().is_empty() {
        return Err(refuse(
            "the customer has no name (SmartBill requires client.name)".into(),
        ));
    }
    let mut address = contact.address_line1.trim().to_owned();
    if let Some(l2) = contact
        .address_line2
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if !address.is_empty() {
            address.push_str(", ");
        }
        address.push_str(l2);
    }
    let (city, county_name) = if country.as_str() == "RO" {
        if is_bucharest(contact) {
            let sector = [
                contact.city.as_str(),
                contact.address_line1.as_str(),
                contact.address_line2.as_deref().unwrap_or(""),
                contact.region.as_deref().unwrap_or(""),
            ]
            .iter()
            .find_map(|t| sector_in(t))
            .or_else(|| sector_of_postal_code(&contact.postal_code))
            .ok_or_else(|| {
                refuse(
                    "a Bucharest address needs its sector (ANAF: city \"Sector N\", county \
                     \"Bucuresti\"), and neither the address nor the postal code gives one"
                        .into(),
                )
            })?;
            (format!("Sector {sector}"), "Bucuresti".to_owned())
        } else {
            let region = contact.region.as_deref().unwrap_or("").trim();
            let c = county(region).ok_or_else(|| {
                refuse(format!(
                    "the customer's county {region:?} is not a Romanian county (ANAF requires a \
                     real county)"
                ))
            })?;
            (dash_if_blank(&contact.city), c.to_owned())
        }
    } else {
        (
            dash_if_blank(&contact.city),
            dash_if_blank(contact.region.as_deref().unwrap_or("")),
        )
    };
    Ok(Client {
        name,
        vat_code,
        is_tax_payer,
        address: dash_if_blank(&address),
        city,
        county: county_name,
        country: country_name(country),
        email: contact.email.clone().filter(|e| !e.trim().is_empty()),
        phone: contact.phone.clone().filter(|p| !p.trim().is_empty()),
        contact: contact_name,
        save_to_db: false,
    })
}

/// SmartBill's tax for a VAT percentage: the config's override, else the one `GET /tax` lists
/// at that percentage (preferring Normala/Redusa/Scutita when several share it). The pair must
/// exist in the account, so an override not in `taxes` is refused before sending.
pub fn resolve_tax(config: &Config, taxes: &[Tax], percent: Decimal) -> Result<(String, Decimal)> {
    let p = percent.normalize();
    let listed: Vec<&Tax> = taxes
        .iter()
        .filter(|t| t.percentage.normalize() == p)
        .collect();
    let shown = || {
        taxes
            .iter()
            .map(|t| format!("{} {} %", t.name, t.percentage.normalize()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(name) = config.tax_override(p) {
        if !taxes.is_empty() && !listed.iter().any(|t| t.name == name) {
            return Err(refuse(format!(
                "tax_names maps {p} % to {name:?}, which the SmartBill account does not have at \
                 {p} % (GET /tax lists: {})",
                shown()
            )));
        }
        return Ok((name.to_owned(), p));
    }
    match listed.as_slice() {
        [] => Err(refuse(format!(
            "SmartBill has no VAT rate of {p} % in this account (GET /tax lists: {}); add it in \
             SmartBill or fix the order's VAT",
            shown()
        ))),
        [one] => Ok((one.name.clone(), p)),
        several => several
            .iter()
            .find(|t| PREFERRED_TAXES.contains(&t.name.as_str()))
            .map(|t| (t.name.clone(), p))
            .ok_or_else(|| {
                refuse(format!(
                    "SmartBill lists several taxes at {p} % ({}); choose one in tax_names",
                    several
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }),
    }
}

/// The printed reference of the order on its proforma (`mentions`), which recovery searches.
pub fn mentions(order: &Order) -> String {
    format!("Comanda marketplace {}", order.id)
}

/// Whether `text` names the order id as a whole token (`ORD-1` is not in `ORD-10`).
pub fn mentions_order(text: &[u8], order_id: &str) -> bool {
    let id = order_id.as_bytes();
    if id.is_empty() || text.len() < id.len() {
        return false;
    }
    let part = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/');
    text.windows(id.len()).enumerate().any(|(i, w)| {
        w == id
            && (i == 0 || !part(text[i - 1]))
            && text.get(i + id.len()).is_none_or(|b| !part(*b))
    })
}

/// The gross total of the lines and shipping, as SmartBill computes it from gross prices.
pub fn document_total(order: &Order) -> Decimal {
    let lines: Decimal = order
        .lines
        .iter()
        .map(|l| round2(l.unit_price_gross * Decimal::from(l.quantity)))
        .sum();
    round2(lines + order.shipping_fee_gross)
}

/// SmartBill's `exchangeRate` (RON per unit of the document currency) from the flow's rate,
/// which is order-currency units per RON. `None` for RON documents or without a rate (then
/// SmartBill applies the BNR rate of the day).
pub fn smartbill_rate(currency: Currency, options: &DocumentOptions) -> Option<Decimal> {
    if currency == Currency::Ron {
        return None;
    }
    let r = options.exchange_rate.as_ref()?.rate;
    (r > Decimal::ZERO).then(|| (Decimal::ONE / r).round_dp(4))
}

/// The proforma for `order`.
pub fn document(
    config: &Config,
    order: &Order,
    options: &DocumentOptions,
    taxes: &[Tax],
    today: NaiveDate,
) -> Result<Document> {
    if order.lines.is_empty() {
        return Err(refuse(format!("order {} has no lines", order.id)));
    }
    let currency = order.currency.as_str().to_owned();
    let mut tax_of: BTreeMap<Decimal, (String, Decimal)> = BTreeMap::new();
    let mut tax = |rate: VatRate| -> Result<(Option<String>, Option<Decimal>)> {
        if !config.vat_payer {
            return Ok((None, None));
        }
        let p = rate.as_percent();
        if let Some(t) = tax_of.get(&p) {
            return Ok((Some(t.0.clone()), Some(t.1)));
        }
        let t = resolve_tax(config, taxes, p)?;
        tax_of.insert(p, t.clone());
        Ok((Some(t.0), Some(t.1)))
    };
    let warehouse = config
        .use_stock
        .then(|| {
            options
                .warehouse
                .clone()
                .or_else(|| config.warehouse.clone())
        })
        .flatten();
    let mut products = Vec::new();
    for l in &order.lines {
        if l.quantity == 0 {
            return Err(refuse(format!(
                "order {}: line {} has quantity 0",
                order.id, l.sku
            )));
        }
        if l.unit_price_gross < Decimal::ZERO {
            return Err(refuse(format!(
                "order {}: line {} has a negative price",
                order.id, l.sku
            )));
        }
        let (tax_name, tax_percentage) = tax(l.vat)?;
        let name = if l.title.trim().is_empty() {
            l.sku.to_string()
        } else {
            l.title.trim().to_owned()
        };
        products.push(Product {
            name,
            code: Some(l.sku.to_string()),
            measuring_unit_name: config.measuring_unit.clone(),
            currency: currency.clone(),
            quantity: Decimal::from(l.quantity),
            price: l.unit_price_gross,
            is_tax_included: true,
            tax_name,
            tax_percentage,
            warehouse_name: warehouse.clone(),
            is_service: false,
            save_to_db: false,
        });
    }
    if order.shipping_fee_gross > Decimal::ZERO {
        let rate = match config.shipping_vat_percent {
            Some(p) => VatRate::percent(p).map_err(|e| refuse(e.to_string()))?,
            None => order
                .lines
                .iter()
                .map(|l| l.vat)
                .max()
                .unwrap_or_else(|| order.lines[0].vat),
        };
        let (tax_name, tax_percentage) = tax(rate)?;
        products.push(Product {
            name: config.shipping_name.clone(),
            code: None,
            measuring_unit_name: config.shipping_unit.clone(),
            currency: currency.clone(),
            quantity: Decimal::ONE,
            price: order.shipping_fee_gross,
            is_tax_included: true,
            tax_name,
            tax_percentage,
            warehouse_name: None,
            is_service: true,
            save_to_db: false,
        });
    }
    let total = document_total(order);
    let tolerance = Decimal::new(1, 2) * Decimal::from(order.lines.len() as u64 + 1);
    if (total - order.total_gross).abs() > tolerance {
        return Err(refuse(format!(
            "order {}: its total {} {} differs from its lines and shipping ({} {}); a discount \
             the marketplace applied cannot be put on the proforma safely, issue it by hand",
            order.id, order.total_gross, currency, total, currency
        )));
    }
    Ok(Document {
        company_vat_code: config.cif.trim().to_owned(),
        series_name: config.proforma_series.clone(),
        is_draft: false,
        issue_date: today.format("%Y-%m-%d").to_string(),
        currency,
        exchange_rate: smartbill_rate(order.currency, options),
        language: config.language.clone(),
        precision: 2,
        mentions: mentions(order),
        observations: format!(
            "MEGZO Integrator Vortex: marketplace order {} placed {}",
            order.id,
            order.placed_at.format("%Y-%m-%d %H:%M UTC")
        ),
        use_stock: config.use_stock,
        client: client(&order.customer, order.market)?,
        products,
    })
}

/// Stock rows: `productCode` is the SKU; products without a code (or with one that is not a
/// valid SKU) are skipped.
pub fn stock_levels(resp: &StocksResponse) -> Vec<StockLevel> {
    let mut out = Vec::new();
    for w in &resp.list {
        for p in &w.products {
            let Some(code) = p
                .product_code
                .as_deref()
                .map(str::trim)
                .filter(|c| !c.is_empty())
            else {
                continue;
            };
            match Sku::new(code) {
                Ok(sku) => out.push(StockLevel {
                    sku,
                    warehouse: w.warehouse.warehouse_name.clone(),
                    quantity: p.quantity,
                }),
                Err(e) => tracing::debug!(system = SYSTEM, error = %e, "stock row skipped"),
            }
        }
    }
    out
}

/// The catalog: every price-list entry, named (and its unit) from the stock list when the SKU
/// is there.
pub fn catalog(config: &Config, stocks: &StocksResponse) -> Result<Vec<CatalogItem>> {
    let mut known: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for w in &stocks.list {
        for p in &w.products {
            if let Some(code) = p.product_code.as_deref() {
                known
                    .entry(code.trim())
                    .or_insert((p.product_name.as_str(), p.measuring_unit.as_str()));
            }
        }
    }
    config
        .price_list
        .iter()
        .map(|e| {
            let (name, unit) = known.get(e.sku.as_str()).copied().unwrap_or(("", ""));
            let name = [name, e.name.as_deref().unwrap_or("")]
                .into_iter()
                .find(|n| !n.trim().is_empty())
                .map_or_else(|| e.sku.to_string(), |n| n.trim().to_owned());
            Ok(CatalogItem {
                sku: e.sku.clone(),
                name,
                price: e.gross,
                price_includes_vat: true,
                vat: Some(VatRate::percent(e.vat).map_err(|err| {
                    ConnectorError::config(SYSTEM, format!("price_list {}: {err}", e.sku))
                })?),
                currency: e.currency,
                unit: if unit.trim().is_empty() {
                    config.measuring_unit.clone()
                } else {
                    unit.to_owned()
                },
            })
        })
        .collect()
}

/// A document number (`"0023"`) as its value and its zero-padded width.
pub fn parse_number(s: &str) -> Option<(u32, usize)> {
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((t.parse().ok()?, t.len()))
}

/// `n` zero-padded to `width` (SmartBill's `"0023"`).
pub fn format_number(n: u32, width: usize) -> String {
    format!("{n:0width$}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use canonical::{ChannelOrderId, OrderLine, OrderStatus};
    use chrono::Utc;

    fn contact(city: &str, region: Option<&str>, postal: &str) -> Contact {
        Contact {
            name: "Ana Popescu".into(),
            address_line1: "Str. Lalelelor 3".into(),
            city: city.into(),
            postal_code: postal.into(),
            region: region.map(str::to_owned),
            country: Some(Country::RO),
            ..Contact::default()
        }
    }

    fn cfg() -> Config {
        Config {
            cif: "RO12345674".into(),
            proforma_series: "PRO".into(),
            ..Config::default()
        }
    }

    fn taxes() -> Vec<Tax> {
        [
            ("Normala", 21),
            ("Redusa", 11),
            ("Scutita", 0),
            ("TVA Inclus", 21),
        ]
        .iter()
        .map(|(n, p)| Tax {
            name: (*n).into(),
            percentage: Decimal::from(*p),
        })
        .collect()
    }

    fn order(lines: &[(u32, i64, i64)], shipping: i64) -> Order {
        let lines: Vec<OrderLine> = lines
            .iter()
            .enumerate()
            .map(|(i, (q, cents, vat))| OrderLine {
                line_id: None,
                sku: Sku::new(format!("SKU-{i}")).unwrap(),
                title: format!("Article {i}"),
                quantity: *q,
                unit_price_gross: Decimal::new(*cents, 2),
                vat: VatRate::percent(Decimal::from(*vat)).unwrap(),
            })
            .collect();
        let mut o = Order {
            id: ChannelOrderId::new("ORD-7").unwrap(),
            group_id: None,
            status: OrderStatus::New,
            raw_status: "new".into(),
            market: Country::RO,
            currency: Currency::Ron,
            placed_at: Utc::now(),
            updated_at: None,
            ship_by: None,
            lines,
            shipping_fee_gross: Decimal::new(shipping, 2),
            total_gross: Decimal::ZERO,
            customer: contact("Cluj-Napoca", Some("Cluj"), "400001"),
            ship_to: Contact::default(),
            tracking: Vec::new(),
        };
        o.total_gross = document_total(&o);
        o
    }

    #[test]
    fn anaf_rules_for_individuals_companies_and_bucharest() {
        let c = client(
            &contact("Cluj-Napoca", Some("Judetul Cluj"), "400001"),
            Country::RO,
        )
        .unwrap();
        assert_eq!(
            (c.vat_code.as_str(), c.county.as_str(), c.country.as_str()),
            ("-", "Cluj", "Romania")
        );
        assert!(!c.is_tax_payer && !c.save_to_db);
        let c = client(&contact("București", None, "030167"), Country::RO).unwrap();
        assert_eq!(
            (c.city.as_str(), c.county.as_str()),
            ("Sector 3", "Bucuresti")
        );
        let c = client(
            &contact("Bucuresti Sectorul 5", Some("Bucuresti"), ""),
            Country::RO,
        )
        .unwrap();
        assert_eq!(c.city, "Sector 5");
        let e = client(&contact("Bucuresti", None, "999999"), Country::RO).unwrap_err();
        assert!(e.to_string().contains("sector"), "{e}");
        let e = client(
            &contact("Cluj-Napoca", Some("Transilvania"), "400001"),
            Country::RO,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a Romanian county"), "{e}");
        let mut co = contact("Iasi", Some("Iași"), "700001");
        co.company = Some("Firma SRL".into());
        co.tax_id = Some("ro 12345674".into());
        co.address_line1 = String::new();
        let c = client(&co, Country::RO).unwrap();
        assert_eq!(
            (c.name.as_str(), c.vat_code.as_str(), c.is_tax_payer),
            ("Firma SRL", "RO12345674", true)
        );
        assert_eq!((c.address.as_str(), c.county.as_str()), ("-", "Iasi"));
        assert_eq!(c.contact.as_deref(), Some("Ana Popescu"));
        let mut cnp = contact("Arad", Some("Arad"), "310001");
        cnp.tax_id = Some("1900101123456".into());
        assert_eq!(client(&cnp, Country::RO).unwrap().vat_code, "1900101123456");
        let mut abroad = contact("", None, "");
        abroad.country = Some(Country::SE);
        let c = client(&abroad, Country::RO).unwrap();
        assert_eq!(
            (c.city.as_str(), c.county.as_str(), c.country.as_str()),
            ("-", "-", "SE")
        );
        let mut nameless = contact("Arad", Some("Arad"), "");
        nameless.name = " ".into();
        assert!(client(&nameless, Country::RO).is_err());
    }

    #[test]
    fn taxes_come_from_the_account_and_overrides_must_exist_there() {
        let c = cfg();
        assert_eq!(
            resolve_tax(&c, &taxes(), Decimal::from(21)).unwrap().0,
            "Normala"
        );
        assert_eq!(
            resolve_tax(&c, &taxes(), Decimal::new(110, 1)).unwrap().0,
            "Redusa"
        );
        let e = resolve_tax(&c, &taxes(), Decimal::from(7)).unwrap_err();
        assert!(e.to_string().contains("no VAT rate of 7 %"), "{e}");
        let mut o = cfg();
        o.tax_names.insert("21".into(), "TVA Inclus".into());
        assert_eq!(
            resolve_tax(&o, &taxes(), Decimal::from(21)).unwrap().0,
            "TVA Inclus"
        );
        o.tax_names.insert("21".into(), "Inventata".into());
        assert!(resolve_tax(&o, &taxes(), Decimal::from(21)).is_err());
        let odd = vec![
            Tax {
                name: "A".into(),
                percentage: Decimal::from(5),
            },
            Tax {
                name: "B".into(),
                percentage: Decimal::from(5),
            },
        ];
        assert!(
            resolve_tax(&c, &odd, Decimal::from(5))
                .unwrap_err()
                .to_string()
                .contains("several")
        );
    }

    #[test]
    fn a_proforma_has_gross_lines_shipping_as_a_service_and_the_order_in_mentions() {
        let o = order(&[(2, 5950, 21), (1, 1000, 11)], 1500);
        let d = document(
            &cfg(),
            &o,
            &DocumentOptions::default(),
            &taxes(),
            NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
        )
        .unwrap();
        assert_eq!(d.series_name, "PRO");
        assert_eq!(d.issue_date, "2026-03-02");
        assert!(!d.is_draft && !d.use_stock);
        assert_eq!(d.products.len(), 3);
        assert!(d.products.iter().all(|p| p.is_tax_included));
        assert_eq!(d.products[1].tax_name.as_deref(), Some("Redusa"));
        let ship = &d.products[2];
        assert!(ship.is_service && ship.code.is_none());
        assert_eq!(ship.tax_percentage, Some(Decimal::from(21)));
        assert!(mentions_order(d.mentions.as_bytes(), "ORD-7"));
        assert_eq!(d.exchange_rate, None);
        assert_eq!(document_total(&o), Decimal::new(14400, 2));
        let mut off = o.clone();
        off.total_gross -= Decimal::from(10);
        assert!(
            document(
                &cfg(),
                &off,
                &DocumentOptions::default(),
                &taxes(),
                NaiveDate::MIN
            )
            .unwrap_err()
            .to_string()
            .contains("differs")
        );
        let mut eur = o;
        eur.currency = Currency::Eur;
        let opts = DocumentOptions {
            exchange_rate: Some(crate::erp::ExchangeRate {
                rate: Decimal::new(2, 1),
                date: NaiveDate::MIN,
                source: "BNR".into(),
            }),
            warehouse: Some("Depozit".into()),
        };
        let d = document(&cfg(), &eur, &opts, &taxes(), NaiveDate::MIN).unwrap();
        assert_eq!(
            (d.currency.as_str(), d.exchange_rate),
            ("EUR", Some(Decimal::from(5)))
        );
        assert!(
            d.products.iter().all(|p| p.warehouse_name.is_none()),
            "no stock use, no warehouse"
        );
        let mut stock = cfg();
        stock.use_stock = true;
        stock.warehouse = Some("Central".into());
        let d = document(&stock, &eur, &opts, &taxes(), NaiveDate::MIN).unwrap();
        assert_eq!(d.products[0].warehouse_name.as_deref(), Some("Depozit"));
        let mut non_payer = cfg();
        non_payer.vat_payer = false;
        let d = document(&non_payer, &eur, &opts, &taxes(), NaiveDate::MIN).unwrap();
        assert!(
            d.products
                .iter()
                .all(|p| p.tax_name.is_none() && p.tax_percentage.is_none())
        );
    }

    #[test]
    fn order_ids_match_as_whole_tokens() {
        assert!(mentions_order(b"(Comanda marketplace ORD-1) Tj", "ORD-1"));
        assert!(!mentions_order(b"Comanda marketplace ORD-10", "ORD-1"));
        assert!(!mentions_order(b"XORD-1 ", "ORD-1"));
        assert!(!mentions_order(b"", "ORD-1"));
    }

    #[test]
    fn stock_rows_without_a_code_are_skipped_and_the_catalog_is_the_price_list() {
        let resp: StocksResponse = serde_json::from_value(serde_json::json!({"list":[
            {"warehouse":{"warehouseName":"Depozit"},"products":[
                {"productCode":"MUG-1","productName":"Cana","measuringUnit":"buc","quantity":7},
                {"productName":"Fara cod","measuringUnit":"buc","quantity":3},
                {"productCode":"bad code","productName":"x","measuringUnit":"buc","quantity":1}]}]}))
        .unwrap();
        let levels = stock_levels(&resp);
        assert_eq!(levels.len(), 1);
        assert_eq!(
            (levels[0].sku.as_str(), levels[0].warehouse.as_str()),
            ("MUG-1", "Depozit")
        );
        let mut c = cfg();
        c.price_list = serde_json::from_value(serde_json::json!([
            {"sku": "MUG-1", "gross": "59.50", "vat": 21},
            {"sku": "NEW-1", "gross": 10, "vat": 11, "name": "Nou"}]))
        .unwrap();
        let items = catalog(&c, &resp).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(
            (items[0].name.as_str(), items[0].price),
            ("Cana", Decimal::new(5950, 2))
        );
        assert_eq!(
            (items[1].name.as_str(), items[1].unit.as_str()),
            ("Nou", "buc")
        );
        assert!(items.iter().all(|i| i.price_includes_vat));
    }

    #[test]
    fn numbers_keep_their_padding() {
        assert_eq!(parse_number("0023"), Some((23, 4)));
        assert_eq!(parse_number("7"), Some((7, 1)));
        assert_eq!(parse_number("A1"), None);
        assert_eq!(format_number(9, 4), "0009");
        assert_eq!(format_number(12345, 4), "12345");
    }
}
