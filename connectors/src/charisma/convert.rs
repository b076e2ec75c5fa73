//! Conversions between `canonical` and Charisma's messages: the deterministic `ExternalId`s,
//! catalogue items, order lines with their amounts, and city matching.

use std::collections::HashMap;

use canonical::{CatalogItem, Order, Sku, VatRate, round2};
use rust_decimal::Decimal;

use super::SYSTEM;
use super::config::Config;
use super::wire::{City, Item, OrderLineReq, PriceDetail};
use crate::error::{ConnectorError, Result};

/// Length of the hash suffix of a shortened id (`-` and 16 hex digits).
const HASH_SUFFIX: usize = 17;

/// The `ExternalId` of the Charisma order made for a marketplace order: the prefix and the
/// order id, shortened deterministically (a prefix of it, `-`, a 64-bit FNV-1a hash of the
/// whole) when longer than `max_len`. The same order always gives the same id.
pub fn order_external_id(config: &Config, order: &canonical::ChannelOrderId) -> String {
    shorten(
        &format!("{}{}", config.external_id_prefix, order.as_str()),
        config.max_external_id_len,
    )
}

/// The `ExternalId` of line `index` (0-based) of an order: `<order ExternalId>-<n>` (`n` from
/// 1, the shipping line `-SHIP`).
pub fn line_external_id(config: &Config, order_external_id: &str, suffix: &str) -> String {
    shorten(
        &format!("{order_external_id}-{suffix}"),
        config.max_external_id_len,
    )
}

/// The `ExternalId` (and, for a private person, the `FiscalRegistration`) of a partner made
/// for one order's customer.
pub fn partner_external_id(config: &Config, order: &canonical::ChannelOrderId) -> String {
    shorten(
        &format!("{}P-{}", config.external_id_prefix, order.as_str()),
        config.max_external_id_len,
    )
}

fn shorten(s: &str, max_len: usize) -> String {
    if s.chars().count() <= max_len {
        return s.to_owned();
    }
    let keep: String = s
        .chars()
        .take(max_len.saturating_sub(HASH_SUFFIX))
        .collect();
    format!("{keep}-{:016x}", fnv1a(s.as_bytes()))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Why catalogue entries were left out, for the log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    pub invalid: usize,
    pub no_price: usize,
    pub bad_sku: usize,
    /// `CurrencyId`s not in `currency_ids`, with how many prices used each.
    pub unknown_currency: HashMap<String, usize>,
}

/// Joins the nomenclature and the price list into catalogue items: `ItemCode` is the SKU, the
/// gross price (`PriceWithVAT`) when the list has one, else the net `Price`; VAT from the
/// price entry, else the item; the currency from `currency_ids`. Items that are not valid,
/// have no price, a code that is not a usable SKU, or a currency not configured are skipped and
/// counted.
pub fn catalog_items(
    config: &Config,
    items: &[Item],
    prices: &HashMap<String, PriceDetail>,
) -> (Vec<CatalogItem>, Skipped) {
    let mut out = Vec::new();
    let mut skipped = Skipped::default();
    for item in items {
        if !item.is_valid {
            skipped.invalid += 1;
            continue;
        }
        let Ok(sku) = Sku::new(item.item_code.clone()) else {
            skipped.bad_sku += 1;
            continue;
        };
        let Some(p) = prices.get(&item.item_id) else {
            skipped.no_price += 1;
            continue;
        };
        let (price, gross) = match (p.price_with_vat, p.price) {
            (Some(g), _) => (g, true),
            (None, Some(n)) => (n, false),
            (None, None) => {
                skipped.no_price += 1;
                continue;
            }
        };
        let currency_id = p.currency_id.clone().unwrap_or_default();
        let Some(currency) = config.currency_of(&currency_id) else {
            *skipped.unknown_currency.entry(currency_id).or_default() += 1;
            continue;
        };
        let vat = p
            .vat_percent
            .or(item.vat_percent)
            .and_then(|v| VatRate::percent(v).ok());
        out.push(CatalogItem {
            sku,
            name: item.item_name.clone(),
            price,
            price_includes_vat: gross,
            vat,
            currency,
            unit: item.measuring_unit_name.clone(),
        });
    }
    (out, skipped)
}

/// The amounts of a line sold at `unit_gross`, gross being authoritative: the gross total, its
/// VAT (half away from zero, to cents), the net amount as the difference, and the net unit
/// price. `Amount + VATAmount = Quantity × PriceWithVAT` holds exactly.
pub fn line_amounts(quantity: Decimal, unit_gross: Decimal, vat: VatRate) -> LineAmounts {
    let gross_total = round2(quantity * unit_gross);
    let pct = vat.as_percent();
    let vat_amount = round2(gross_total * pct / (Decimal::ONE_HUNDRED + pct));
    LineAmounts {
        unit_net: vat.net_of(unit_gross),
        gross_total,
        vat_amount,
        net_amount: gross_total - vat_amount,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineAmounts {
    pub unit_net: Decimal,
    pub gross_total: Decimal,
    pub vat_amount: Decimal,
    pub net_amount: Decimal,
}

/// The gross total of the document made for `order` (lines and shipping, as sent).
pub fn document_total(order: &Order) -> Decimal {
    order
        .lines
        .iter()
        .map(|l| round2(Decimal::from(l.quantity) * l.unit_price_gross))
        .sum::<Decimal>()
        + round2(order.shipping_fee_gross)
}

/// The `VATId` of a line: `vat_ids` first, else the article's own when its `VATPercent` is
/// the line's rate; refused (naming the rate and the setting) otherwise.
pub fn vat_id_for(config: &Config, item: &Item, rate: VatRate, sku: &str) -> Result<String> {
    if let Some(id) = config.vat_id(rate) {
        return Ok(id.to_owned());
    }
    match (&item.vat_id, item.vat_percent) {
        (Some(id), Some(p)) if p == rate.as_percent() => Ok(id.clone()),
        _ => Err(ConnectorError::permanent(
            SYSTEM,
            "createOrder",
            format!(
                "no Charisma VATId for {rate} on {sku} (the article has {}); add \"{}\" to vat_ids",
                item.vat_percent
                    .map_or_else(|| "no VATPercent".to_owned(), |p| format!("{p} %")),
                rate.as_percent()
            ),
        )),
    }
}

/// Builds the `ItemList` of an order from resolved articles (by `ItemCode`).
pub fn order_lines(
    config: &Config,
    order: &Order,
    external_id: &str,
    items: &HashMap<String, Item>,
    currency_id: &str,
    delivery_address_id: Option<&str>,
) -> Result<Vec<OrderLineReq>> {
    let refuse = |m: String| Err(ConnectorError::permanent(SYSTEM, "createOrder", m));
    if order.lines.is_empty() {
        return refuse(format!("order {} has no lines", order.id));
    }
    let mut lines = Vec::new();
    for (i, l) in order.lines.iter().enumerate() {
        if l.quantity == 0 {
            return refuse(format!("order {} line {} has quantity 0", order.id, i + 1));
        }
        if l.unit_price_gross < Decimal::ZERO {
            return refuse(format!(
                "order {} line {} has a negative price",
                order.id,
                i + 1
            ));
        }
        let Some(item) = items.get(l.sku.as_str()) else {
            return refuse(format!(
                "SKU {} is not in Charisma's nomenclature (no GetItem ItemCode {})",
                l.sku, l.sku
            ));
        };
        if !item.is_valid {
            return refuse(format!(
                "SKU {} is not valid in Charisma (IsValid false)",
                l.sku
            ));
        }
        let vat_id = vat_id_for(config, item, l.vat, l.sku.as_str())?;
        let q = Decimal::from(l.quantity);
        let a = line_amounts(q, l.unit_price_gross, l.vat);
        lines.push(OrderLineReq {
            external_id: line_external_id(config, external_id, &(i + 1).to_string()),
            item_id: item.item_id.clone(),
            item_name: if l.title.trim().is_empty() {
                item.item_name.clone()
            } else {
                l.title.clone()
            },
            quantity: q,
            price: a.unit_net,
            price_with_vat: l.unit_price_gross,
            vat_id,
            amount: a.net_amount,
            vat_amount: a.vat_amount,
            currency_id: currency_id.to_owned(),
            delivery_address_id: delivery_address_id.map(str::to_owned),
        });
    }
    if order.shipping_fee_gross > Decimal::ZERO {
        let Some(code) = &config.shipping_item_code else {
            return Err(ConnectorError::config(
                SYSTEM,
                format!(
                    "order {} has a shipping fee of {} {}; set shipping_item_code to the \
                     Charisma service article that carries it",
                    order.id, order.shipping_fee_gross, order.currency
                ),
            ));
        };
        let Some(item) = items.get(code.trim()) else {
            return refuse(format!(
                "shipping_item_code {code} is not in Charisma's nomenclature"
            ));
        };
        // The service article's own rate; else the goods' rate (shipping follows the goods).
        let Some(rate) = item
            .vat_percent
            .and_then(|p| VatRate::percent(p).ok())
            .or_else(|| order.lines.first().map(|l| l.vat))
        else {
            return refuse(format!("shipping article {code} has no VATPercent"));
        };
        let vat_id = vat_id_for(config, item, rate, code)?;
        let a = line_amounts(Decimal::ONE, order.shipping_fee_gross, rate);
        lines.push(OrderLineReq {
            external_id: line_external_id(config, external_id, "SHIP"),
            item_id: item.item_id.clone(),
            item_name: item.item_name.clone(),
            quantity: Decimal::ONE,
            price: a.unit_net,
            price_with_vat: order.shipping_fee_gross,
            vat_id,
            amount: a.net_amount,
            vat_amount: a.vat_amount,
            currency_id: currency_id.to_owned(),
            delivery_address_id: delivery_address_id.map(str::to_owned),
        });
    }
    Ok(lines)
}

/// A name as compared with Charisma's localities: lower case, Romanian diacritics folded
/// (both cedilla and comma forms), punctuation as spaces, a leading `municipiul`/`oras`/
/// `comuna`/`judetul` dropped.
pub fn normalize_name(s: &str) -> String {
    let folded: String = s
        .chars()
        .map(|c| match c {
            'ă' | 'â' | 'Ă' | 'Â' | 'á' | 'à' | 'ä' => 'a',
            'î' | 'Î' | 'í' => 'i',
            'ș' | 'ş' | 'Ș' | 'Ş' => 's',
            'ț' | 'ţ' | 'Ț' | 'Ţ' => 't',
            'é' | 'è' | 'ë' => 'e',
            'ö' | 'ó' => 'o',
            'ü' | 'ú' => 'u',
            c if c.is_alphanumeric() => c.to_ascii_lowercase(),
            _ => ' ',
        })
        .collect();
    let words: Vec<&str> = folded.split_whitespace().collect();
    let skip = usize::from(
        matches!(
            words.first(),
            Some(&("municipiul" | "mun" | "oras" | "orasul" | "comuna" | "judetul" | "jud"))
        ) && words.len() > 1,
    );
    words[skip..].join(" ")
}

/// How a customer's city matched Charisma's localities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CityMatch<'a> {
    /// One locality of that name (in that district when several share the name).
    One(&'a City),
    /// Several localities of that name and the district did not decide: the first is used,
    /// the others named in the log.
    Several(Vec<&'a City>),
    None,
}

/// Matches a city name (and county, where given) against `getCity`'s localities.
pub fn match_city<'a>(cities: &'a [City], name: &str, region: Option<&str>) -> CityMatch<'a> {
    let want = normalize_name(name);
    if want.is_empty() {
        return CityMatch::None;
    }
    let same: Vec<&City> = cities
        .iter()
        .filter(|c| normalize_name(&c.city_name) == want)
        .collect();
    match same.len() {
        0 => CityMatch::None,
        1 => CityMatch::One(same[0]),
        _ => {
            let district = region.map(normalize_name).filter(|d| !d.is_empty());
            let in_district: Vec<&City> = same
                .iter()
                .copied()
                .filter(|c| district.as_deref() == Some(normalize_name(&c.district_name).as_str()))
                .collect();
            if in_district.len() == 1 {
                CityMatch::One(in_district[0])
            } else {
                CityMatch::Several(same)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canonical::{ChannelOrderId, Contact, Country, Currency, OrderLine, OrderStatus};
    use chrono::Utc;
    use rust_decimal::dec;

    fn config() -> Config {
        let mut c = Config::default();
        c.vat_ids.insert("19".into(), "28".into());
        c.currency_ids.insert(Currency::Ron, "25".into());
        c
    }

    fn item(id: &str, code: &str, vat: Decimal) -> Item {
        Item {
            item_id: id.into(),
            item_code: code.into(),
            item_name: format!("Item {code}"),
            measuring_unit_name: "buc".into(),
            vat_id: Some("VAT-ITEM".into()),
            vat_percent: Some(vat),
            is_valid: true,
            is_stockable: Some(true),
        }
    }

    fn order(lines: Vec<(&str, u32, Decimal, Decimal)>, shipping: Decimal) -> Order {
        Order {
            id: ChannelOrderId::new("CDON-1001").unwrap(),
            group_id: None,
            status: OrderStatus::New,
            raw_status: "CREATED".into(),
            market: Country::RO,
            currency: Currency::Ron,
            placed_at: Utc::now(),
            updated_at: None,
            ship_by: None,
            lines: lines
                .into_iter()
                .map(|(sku, q, p, v)| OrderLine {
                    line_id: None,
                    sku: Sku::new(sku).unwrap(),
                    title: String::new(),
                    quantity: q,
                    unit_price_gross: p,
                    vat: VatRate::percent(v).unwrap(),
                })
                .collect(),
            shipping_fee_gross: shipping,
            total_gross: Decimal::ZERO,
            customer: Contact::default(),
            ship_to: Contact::default(),
            tracking: Vec::new(),
        }
    }

    #[test]
    fn external_ids_are_deterministic_and_bounded() {
        let c = config();
        let id = ChannelOrderId::new("CDON-1001").unwrap();
        assert_eq!(order_external_id(&c, &id), "MGZ-CDON-1001");
        let long = ChannelOrderId::new("X".repeat(120)).unwrap();
        let a = order_external_id(&c, &long);
        assert_eq!(a.chars().count(), 50);
        assert_eq!(a, order_external_id(&c, &long));
        let other = ChannelOrderId::new(format!("{}Y", "X".repeat(119))).unwrap();
        assert_ne!(
            a,
            order_external_id(&c, &other),
            "the hash tells them apart"
        );
        assert_eq!(
            line_external_id(&c, "MGZ-CDON-1001", "2"),
            "MGZ-CDON-1001-2"
        );
        assert_eq!(partner_external_id(&c, &id), "MGZ-P-CDON-1001");
    }

    #[test]
    fn line_amounts_add_up_to_the_gross() {
        let v = VatRate::percent(dec!(19)).unwrap();
        let a = line_amounts(dec!(3), dec!(33.33), v);
        assert_eq!(a.gross_total, dec!(99.99));
        assert_eq!(a.vat_amount, dec!(15.96));
        assert_eq!(a.net_amount + a.vat_amount, dec!(99.99));
        assert_eq!(a.unit_net, dec!(28.01));
        let zero = line_amounts(dec!(1), dec!(10), VatRate::percent(dec!(0)).unwrap());
        assert_eq!((zero.vat_amount, zero.net_amount), (dec!(0), dec!(10)));
    }

    #[test]
    fn order_lines_resolve_items_vat_and_shipping() {
        let mut c = config();
        let mut items = HashMap::new();
        items.insert("MUG-1".to_owned(), item("3998", "MUG-1", dec!(19)));
        items.insert("BOOK-1".to_owned(), item("4000", "BOOK-1", dec!(5)));
        items.insert("SHIP".to_owned(), item("9000", "SHIP", dec!(19)));
        let o = order(
            vec![
                ("MUG-1", 2, dec!(59.50), dec!(19)),
                ("BOOK-1", 1, dec!(21), dec!(5)),
            ],
            dec!(15),
        );
        let e = order_lines(&c, &o, "MGZ-CDON-1001", &items, "25", None).unwrap_err();
        assert_eq!(e.class(), crate::ErrorClass::Config);
        assert!(e.to_string().contains("shipping_item_code"), "{e}");
        c.shipping_item_code = Some("SHIP".into());
        let lines = order_lines(&c, &o, "MGZ-CDON-1001", &items, "25", Some("77")).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].vat_id, "28", "vat_ids first");
        assert_eq!(
            lines[1].vat_id, "VAT-ITEM",
            "the article's own VATId at its rate"
        );
        assert_eq!(lines[0].amount + lines[0].vat_amount, dec!(119.00));
        assert_eq!(lines[0].external_id, "MGZ-CDON-1001-1");
        assert_eq!(lines[2].external_id, "MGZ-CDON-1001-SHIP");
        assert_eq!(lines[2].price_with_vat, dec!(15));
        assert_eq!(lines[2].delivery_address_id.as_deref(), Some("77"));
        assert_eq!(document_total(&o), dec!(155.00));
        let wrong_vat = order(vec![("BOOK-1", 1, dec!(21), dec!(9))], Decimal::ZERO);
        let e = order_lines(&c, &wrong_vat, "X", &items, "25", None).unwrap_err();
        assert!(e.to_string().contains("add \"9\" to vat_ids"), "{e}");
        let unknown = order(vec![("NOPE", 1, dec!(1), dec!(19))], Decimal::ZERO);
        let e = order_lines(&c, &unknown, "X", &items, "25", None).unwrap_err();
        assert!(
            e.to_string().contains("not in Charisma's nomenclature"),
            "{e}"
        );
    }

    #[test]
    fn catalog_joins_items_and_prices() {
        let c = config();
        let mut bad = item("3", "bad code", dec!(19));
        bad.item_code = "has space".into();
        let mut invalid = item("4", "OLD", dec!(19));
        invalid.is_valid = false;
        let items = vec![
            item("1", "MUG-1", dec!(19)),
            item("2", "NOPRICE", dec!(19)),
            bad,
            invalid,
            item("5", "EUR-1", dec!(19)),
        ];
        let mut prices = HashMap::new();
        let p = |id: &str, cur: &str| PriceDetail {
            item_id: id.into(),
            price: Some(dec!(50)),
            price_with_vat: Some(dec!(59.5)),
            currency_id: Some(cur.into()),
            vat_percent: Some(dec!(19)),
            vat_id: Some("28".into()),
        };
        for id in ["1", "3", "4"] {
            prices.insert(id.to_owned(), p(id, "25"));
        }
        prices.insert("5".into(), p("5", "26"));
        let (out, skipped) = catalog_items(&c, &items, &prices);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].sku.as_str(), "MUG-1");
        assert_eq!(out[0].price, dec!(59.5));
        assert!(out[0].price_includes_vat);
        assert_eq!(out[0].currency, Currency::Ron);
        assert_eq!(out[0].unit, "buc");
        assert_eq!(
            (skipped.invalid, skipped.no_price, skipped.bad_sku),
            (1, 1, 1)
        );
        assert_eq!(skipped.unknown_currency.get("26"), Some(&1));
    }

    #[test]
    fn cities_match_by_folded_name_then_district() {
        let city = |id: &str, n: &str, d: &str| City {
            city_id: id.into(),
            city_name: n.into(),
            district_name: d.into(),
        };
        let cities = vec![
            city("1", "Bucureşti Sector 4", "Bucuresti"),
            city("2", "Sălcioara", "Ialomița"),
            city("3", "Salcioara", "Dâmbovița"),
            city("4", "Târgu Mureș", "Mureș"),
        ];
        assert_eq!(
            match_city(&cities, "bucuresti  sector-4", None),
            CityMatch::One(&cities[0])
        );
        assert_eq!(
            match_city(&cities, "Municipiul Targu Mures", None),
            CityMatch::One(&cities[3])
        );
        assert_eq!(
            match_city(&cities, "Salcioara", Some("Judetul Dambovita")),
            CityMatch::One(&cities[2])
        );
        assert!(
            matches!(match_city(&cities, "Salcioara", None), CityMatch::Several(v) if v.len() == 2)
        );
        assert_eq!(match_city(&cities, "Atlantis", None), CityMatch::None);
        assert_eq!(match_city(&cities, "  ", None), CityMatch::None);
    }
}
