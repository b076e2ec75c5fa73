//! Conversions between `canonical` and WinMentor's formats: the order → `COMANDA` package,
//! export rows → catalog items and stock levels, the deterministic `NrDoc`, document dates.

use canonical::{CatalogItem, Currency, Order, Sku, StockLevel, VatRate};
use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, Offset as _, Utc, Weekday};
use rust_decimal::{Decimal, RoundingStrategy};

use super::config::{ClientCode, Config, DocumentDate, ItemPrices, StockQuantity, TimeZone};
use super::format::{Codec, Package, Section, clean_field, fmt_date};

/// Fields of a `GetNomenclatorArticole` line (W1's list, `Masa` twice included).
pub const ARTICOLE_FIELDS: usize = 24;
/// The function name in the header of `exports/articole.txt`.
pub const ARTICOLE_FUNCTION: &str = "GetNomenclatorArticole";
/// Fields of a `GetStocArticole` line.
pub const STOC_FIELDS: usize = 17;
/// The function name in the header of `exports/stoc.txt`.
pub const STOC_FUNCTION: &str = "GetStocArticole";

/// `GetNomenclatorArticole` field positions (0-based).
pub mod art {
    pub const CODE: usize = 0;
    pub const NAME: usize = 1;
    pub const UNIT: usize = 2;
    pub const PRICE: usize = 3;
    pub const DEFAULT_WAREHOUSE: usize = 8;
    pub const VAT: usize = 10;
    pub const SERVICE: usize = 14;
    pub const PRICE_WITH_VAT: usize = 21;
}

/// `GetStocArticole` field positions (0-based).
pub mod stoc {
    pub const CODE: usize = 0;
    pub const NAME: usize = 1;
    pub const UNIT: usize = 2;
    pub const PRICE: usize = 3;
    pub const STOCK: usize = 4;
    pub const WAREHOUSE: usize = 11;
    pub const WAREHOUSE_NAME: usize = 12;
    pub const VAT: usize = 13;
    pub const VAT_INCLUDED: usize = 14;
    pub const PRICE_WITH_VAT: usize = 15;
    pub const RESERVED: usize = 16;
}

/// Probes tried for a free `NrDoc` before giving up (collisions are rare: 9 digits).
pub const MAX_PROBES: u32 = 8;

/// The `NrDoc` of a marketplace order: FNV-1a (64-bit) of the order id (probe 0) or of
/// `<order id>#<probe>` (probe ≥ 1, only when an earlier candidate belongs to another order),
/// mapped onto exactly `digits` decimal digits (`10^(digits-1) ..= 10^digits - 1`, so never a
/// leading zero). Stable across processes, versions and machines.
pub fn nr_doc(order_id: &str, probe: u32, digits: u8) -> u64 {
    let key = if probe == 0 {
        order_id.to_owned()
    } else {
        format!("{order_id}#{probe}")
    };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let low = 10u64.pow(u32::from(digits) - 1);
    let span = 10u64.pow(u32::from(digits)) - low;
    low + h % span
}

/// The package file name of a `NrDoc`.
pub fn package_file(nr: u64) -> String {
    format!("COMANDA_{nr}.txt")
}

/// The `Observatii` of an order: carries the marketplace order id as a separate word.
pub fn observatii(order: &Order) -> String {
    format!("Comanda marketplace {}", order.id)
}

/// Romania's UTC offset at `at` (EU rule: summer time from the last Sunday of March to the
/// last Sunday of October, switching at 01:00 UTC).
pub fn bucharest_offset(at: DateTime<Utc>) -> FixedOffset {
    let year = at.year();
    let start = last_sunday(year, 3)
        .and_hms_opt(1, 0, 0)
        .map(|t| t.and_utc());
    let end = last_sunday(year, 10)
        .and_hms_opt(1, 0, 0)
        .map(|t| t.and_utc());
    let summer = matches!((start, end), (Some(s), Some(e)) if at >= s && at < e);
    let secs = if summer { 3 * 3600 } else { 2 * 3600 };
    FixedOffset::east_opt(secs).unwrap_or_else(|| Utc.fix())
}

fn last_sunday(year: i32, month: u32) -> NaiveDate {
    let first_next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    }
    .unwrap_or_default();
    let mut d = first_next - Duration::days(1);
    while d.weekday() != Weekday::Sun {
        d -= Duration::days(1);
    }
    d
}

/// `at` in the configured time zone.
pub fn local_time(at: DateTime<Utc>, tz: TimeZone) -> DateTime<FixedOffset> {
    match tz {
        TimeZone::Utc => at.fixed_offset(),
        TimeZone::EuropeBucharest => at.with_timezone(&bucharest_offset(at)),
    }
}

/// The date the order's document carries.
pub fn document_date(order: &Order, config: &Config, now: DateTime<Utc>) -> NaiveDate {
    let at = match config.document_date {
        DocumentDate::OrderPlaced => order.placed_at,
        DocumentDate::Handover => now,
    };
    local_time(at, config.time_zone).date_naive()
}

/// WinMENTOR's currency symbol: `LEI` for RON, the ISO code otherwise.
pub fn moneda(c: Currency) -> &'static str {
    match c {
        Currency::Ron => "LEI",
        other => other.as_str(),
    }
}

fn round4(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero)
}

/// A line price as configured: gross, or net of the line's VAT to 4 decimals.
pub fn item_price(gross: Decimal, vat: VatRate, mode: ItemPrices) -> Decimal {
    match mode {
        ItemPrices::Gross => gross,
        ItemPrices::Net => round4(gross / (Decimal::ONE + vat.as_fraction())),
    }
}

/// The partner code of an order under the configured strategy.
pub fn client_code(config: &Config, nr: u64) -> String {
    match &config.client_code {
        ClientCode::Constant { code } => code.clone(),
        ClientCode::NewPartnerPerOrder { prefix } => format!("{prefix}{nr}"),
    }
}

/// A `COMANDA` package for one order, and the gross total it carries. `unit_of` gives the
/// WinMENTOR unit name of an article. Refuses (with the reason) an order that cannot be one.
pub fn order_package(
    order: &Order,
    config: &Config,
    codec: &Codec,
    nr: u64,
    now: DateTime<Utc>,
    unit_of: &dyn Fn(&Sku) -> String,
) -> Result<(Package, Decimal), String> {
    if order.lines.is_empty() {
        return Err(format!("order {} has no lines", order.id));
    }
    let date = document_date(order, config, now);
    let delivery = order
        .ship_by
        .map(|t| local_time(t, config.time_zone).date_naive())
        .filter(|d| *d >= date)
        .unwrap_or(date);
    let code = client_code(config, nr);
    let mut items = Section::new("Items_1");
    let mut total = Decimal::ZERO;
    let mut n = 0usize;
    for line in &order.lines {
        if line.quantity == 0 {
            return Err(format!(
                "order {} line {} has quantity 0",
                order.id, line.sku
            ));
        }
        if line.unit_price_gross < Decimal::ZERO {
            return Err(format!(
                "order {} line {} has a negative price (a storno is the merchant's)",
                order.id, line.sku
            ));
        }
        n += 1;
        total += line.unit_price_gross * Decimal::from(line.quantity);
        let note: String = clean_field(&line.title).chars().take(60).collect();
        let fields = [
            clean_field(line.sku.as_str()),
            clean_field(&unit_of(&line.sku)),
            line.quantity.to_string(),
            codec.fmt_decimal(item_price(
                line.unit_price_gross,
                line.vat,
                config.item_prices,
            )),
            "0".to_owned(),
            fmt_date(delivery),
            note,
        ];
        items.set(&format!("Item_{n}"), fields.join(";"));
    }
    if order.shipping_fee_gross > Decimal::ZERO {
        match &config.shipping_article {
            Some(ship) => {
                n += 1;
                total += order.shipping_fee_gross;
                let vat = order
                    .lines
                    .first()
                    .map(|l| l.vat)
                    .unwrap_or(VatRate::percent(Decimal::from(19)).map_err(|e| e.to_string())?);
                let fields = [
                    ship.code.clone(),
                    ship.unit.clone(),
                    "1".to_owned(),
                    codec.fmt_decimal(item_price(
                        order.shipping_fee_gross,
                        vat,
                        config.item_prices,
                    )),
                    "0".to_owned(),
                    fmt_date(delivery),
                    "Transport".to_owned(),
                ];
                items.set(&format!("Item_{n}"), fields.join(";"));
            }
            None => tracing::info!(
                system = super::SYSTEM,
                order = %order.id,
                "shipping fee left out of the WinMentor order (no shipping_article configured)"
            ),
        }
    }

    let mut p = Package::default();
    let mut info = Section::new("InfoPachet");
    info.set("AnLucru", date.year().to_string())
        .set("LunaLucru", date.month().to_string())
        .set("Tipdocument", "COMANDA")
        .set("TotalComenzi", "1");
    p.push(info);
    let mut c = Section::new("Comanda_1");
    c.set("NrDoc", nr.to_string())
        .set("SimbolCarnet", &config.series)
        .set("Data", fmt_date(date))
        .set("CodClient", &code)
        .set("Locatie", "")
        .set("Moneda", moneda(order.currency))
        .set("Agent", "")
        .set("Discount", "0")
        .set("TotalArticole", n.to_string())
        .set("Observatii", observatii(order));
    p.push(c);
    p.push(items);
    if let ClientCode::NewPartnerPerOrder { .. } = config.client_code {
        p.push(new_partner(order, &code));
    }
    Ok((p, total))
}

/// `[ParteneriNoi_<code>]`: the customer as a new partner (personal data).
fn new_partner(order: &Order, code: &str) -> Section {
    let c = &order.customer;
    let mut s = Section::new(format!("ParteneriNoi_{code}"));
    let company = c.company.as_deref().filter(|x| !x.trim().is_empty());
    let address = [
        Some(c.address_line1.as_str()),
        c.address_line2.as_deref(),
        Some(c.postal_code.as_str()),
    ]
    .into_iter()
    .flatten()
    .map(str::trim)
    .filter(|x| !x.is_empty())
    .collect::<Vec<_>>()
    .join(", ");
    s.set("Denumire", company.unwrap_or(&c.name))
        .set("CodFiscal", c.tax_id.as_deref().unwrap_or_default())
        .set("Localitate", &c.city)
        .set("Judet", c.region.as_deref().unwrap_or_default())
        .set(
            "SimbolTara",
            c.country.map(|k| k.as_str().to_owned()).unwrap_or_default(),
        )
        .set("Adresa", address)
        .set("Telefon", c.phone.as_deref().unwrap_or_default())
        .set("Email", c.email.as_deref().unwrap_or_default())
        .set("PersoanaFizica", if company.is_some() { "N" } else { "D" });
    s
}

fn vat_of(codec: &Codec, s: &str) -> Result<Option<VatRate>, String> {
    let t = s.trim().trim_end_matches('%').trim();
    if t.is_empty() {
        return Ok(None);
    }
    let p = codec
        .parse_decimal(t)
        .map_err(|e| format!("CotaTVA: {e}"))?;
    VatRate::percent(p)
        .map(Some)
        .map_err(|e| format!("CotaTVA: {e}"))
}

fn opt_decimal(codec: &Codec, field: &str, s: &str) -> Result<Option<Decimal>, String> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    codec
        .parse_decimal(s)
        .map(Some)
        .map_err(|e| format!("{field}: {e}"))
}

fn sku_of(code: &str) -> Result<Sku, String> {
    Sku::new(code).map_err(|e| format!("article code {code:?} is not usable as a SKU: {e}"))
}

/// One `GetNomenclatorArticole` row as a catalog item. `Ok(None)`: skipped (a service, or a
/// code that cannot be a SKU; the reason is logged by the caller). Prices are in lei.
pub fn catalog_item(codec: &Codec, f: &[String]) -> Result<Result<CatalogItem, String>, String> {
    let code = &f[art::CODE];
    if code.is_empty() {
        return Err("empty article code".into());
    }
    if f[art::SERVICE].eq_ignore_ascii_case("D") {
        return Ok(Err(format!("article {code:?} is a service")));
    }
    let net = opt_decimal(codec, "PretVanzare", &f[art::PRICE])?;
    let gross = opt_decimal(codec, "PretVCuTVA", &f[art::PRICE_WITH_VAT])?;
    let vat = vat_of(codec, &f[art::VAT])?;
    let (price, includes) = match (gross, net) {
        (Some(g), _) if g > Decimal::ZERO => (g, true),
        (_, Some(n)) => (n, false),
        _ => return Err("neither PretVanzare nor PretVCuTVA is given".into()),
    };
    let sku = match sku_of(code) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(CatalogItem {
        sku,
        name: f[art::NAME].clone(),
        price,
        price_includes_vat: includes,
        vat,
        currency: Currency::Ron,
        unit: f[art::UNIT].clone(),
    }))
}

/// One `GetStocArticole` row as a stock level (see [`catalog_item`] for the nesting).
pub fn stock_level(
    codec: &Codec,
    f: &[String],
    mode: StockQuantity,
) -> Result<Result<StockLevel, String>, String> {
    let code = &f[stoc::CODE];
    if code.is_empty() {
        return Err("empty article code".into());
    }
    if f[stoc::WAREHOUSE].is_empty() {
        return Err("empty SimbolGestiune".into());
    }
    let stock = codec
        .parse_decimal(&f[stoc::STOCK])
        .map_err(|e| format!("Stoc: {e}"))?;
    let reserved = opt_decimal(codec, "StocRezervat", &f[stoc::RESERVED])?.unwrap_or_default();
    let sku = match sku_of(code) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let quantity = match mode {
        StockQuantity::Physical => stock,
        StockQuantity::Available => (stock - reserved).max(Decimal::ZERO),
    };
    Ok(Ok(StockLevel {
        sku,
        warehouse: f[stoc::WAREHOUSE].clone(),
        quantity,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::winmentor::config::{DecimalSeparator, FileEncoding};
    use canonical::{ChannelOrderId, Contact, Country, OrderLine, OrderStatus};
    use rust_decimal::dec;

    #[test]
    fn nr_doc_is_deterministic_sized_and_probe_dependent() {
        let a = nr_doc("CDON-1001", 0, 9);
        assert_eq!(a, nr_doc("CDON-1001", 0, 9));
        // Pinned: a change of derivation would orphan every in-flight order's recovery.
        assert_eq!(a, 605_518_400);
        assert_ne!(a, nr_doc("CDON-1002", 0, 9));
        assert_ne!(a, nr_doc("CDON-1001", 1, 9));
        for id in ["1", "x", "ORD-ăș", "999999999999"] {
            for d in 6..=9u8 {
                let n = nr_doc(id, 0, d);
                assert_eq!(n.to_string().len(), usize::from(d), "{id} {d}");
            }
        }
        assert_eq!(package_file(123456789), "COMANDA_123456789.txt");
    }

    #[test]
    fn bucharest_switches_with_eu_summer_time() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        assert_eq!(
            bucharest_offset(t("2025-01-31T22:30:00Z")).local_minus_utc(),
            7200
        );
        assert_eq!(
            bucharest_offset(t("2025-03-30T00:59:59Z")).local_minus_utc(),
            7200
        );
        assert_eq!(
            bucharest_offset(t("2025-03-30T01:00:00Z")).local_minus_utc(),
            10800
        );
        assert_eq!(
            bucharest_offset(t("2025-10-26T00:59:59Z")).local_minus_utc(),
            10800
        );
        assert_eq!(
            bucharest_offset(t("2025-10-26T01:00:00Z")).local_minus_utc(),
            7200
        );
        // 31 January 22:30 UTC is 1 February in Bucharest: the work month is February.
        let local = local_time(t("2025-01-31T22:30:00Z"), TimeZone::EuropeBucharest);
        assert_eq!(
            local.date_naive(),
            NaiveDate::from_ymd_opt(2025, 2, 1).unwrap()
        );
    }

    fn order() -> Order {
        Order {
            id: ChannelOrderId::new("CDON-77").unwrap(),
            group_id: None,
            status: OrderStatus::New,
            raw_status: "CREATED".into(),
            market: Country::RO,
            currency: Currency::Ron,
            placed_at: DateTime::parse_from_rfc3339("2025-01-31T22:30:00Z")
                .unwrap()
                .to_utc(),
            updated_at: None,
            ship_by: None,
            lines: vec![OrderLine {
                line_id: None,
                sku: Sku::new("ABC-1").unwrap(),
                title: "Cană roșie; mare".into(),
                quantity: 2,
                unit_price_gross: dec!(59.50),
                vat: VatRate::percent(dec!(19)).unwrap(),
            }],
            shipping_fee_gross: dec!(15),
            total_gross: dec!(134),
            customer: Contact {
                name: "Ana Popescu".into(),
                city: "Cluj-Napoca".into(),
                address_line1: "Str. Lalelelor 3".into(),
                postal_code: "400000".into(),
                country: Some(Country::RO),
                ..Contact::default()
            },
            ship_to: Contact::default(),
            tracking: Vec::new(),
        }
    }

    #[test]
    fn an_order_becomes_a_comanda_package() {
        let mut cfg = Config::new(
            "/srv/wm",
            ClientCode::NewPartnerPerOrder {
                prefix: "MGZ".into(),
            },
        );
        cfg.shipping_article = Some(crate::winmentor::config::ShippingArticle {
            code: "TRANSPORT".into(),
            unit: "buc".into(),
        });
        let codec = Codec::new(FileEncoding::Windows1250, DecimalSeparator::Comma);
        let (p, total) = order_package(&order(), &cfg, &codec, 123456789, Utc::now(), &|_| {
            "buc".into()
        })
        .unwrap();
        assert_eq!(total, dec!(134));
        let info = p.section("InfoPachet").unwrap();
        assert_eq!(info.get("Tipdocument"), Some("COMANDA"));
        assert_eq!(info.get("AnLucru"), Some("2025"));
        assert_eq!(info.get("LunaLucru"), Some("2"));
        let c = p.section("Comanda_1").unwrap();
        assert_eq!(c.get("NrDoc"), Some("123456789"));
        assert_eq!(c.get("Data"), Some("01.02.2025"));
        assert_eq!(c.get("CodClient"), Some("MGZ123456789"));
        assert_eq!(c.get("Moneda"), Some("LEI"));
        assert_eq!(c.get("TotalArticole"), Some("2"));
        assert_eq!(c.get("Observatii"), Some("Comanda marketplace CDON-77"));
        let items = p.section("Items_1").unwrap();
        assert_eq!(
            items.get("Item_1"),
            Some("ABC-1;buc;2;50;0;01.02.2025;Cană roșie, mare")
        );
        assert_eq!(
            items.get("Item_2"),
            Some("TRANSPORT;buc;1;12,605;0;01.02.2025;Transport")
        );
        let partner = p.section("ParteneriNoi_MGZ123456789").unwrap();
        assert_eq!(partner.get("Denumire"), Some("Ana Popescu"));
        assert_eq!(partner.get("PersoanaFizica"), Some("D"));
        assert!(!p.to_text().contains("FACTURA"));

        let mut empty = order();
        empty.lines.clear();
        assert!(
            order_package(&empty, &cfg, &codec, 1, Utc::now(), &|_| "buc".into())
                .unwrap_err()
                .contains("no lines")
        );
    }

    #[test]
    fn export_rows_become_catalog_items_and_stock() {
        let codec = Codec::new(FileEncoding::Utf8, DecimalSeparator::Comma);
        let mut a = vec![String::new(); ARTICOLE_FIELDS];
        a[art::CODE] = "ABC-1".into();
        a[art::NAME] = "Cană".into();
        a[art::UNIT] = "buc".into();
        a[art::PRICE] = "50".into();
        a[art::VAT] = "19".into();
        a[art::SERVICE] = "N".into();
        a[art::PRICE_WITH_VAT] = "59,5".into();
        let item = catalog_item(&codec, &a).unwrap().unwrap();
        assert_eq!((item.price, item.price_includes_vat), (dec!(59.5), true));
        assert_eq!(item.vat, Some(VatRate::percent(dec!(19)).unwrap()));
        a[art::PRICE_WITH_VAT] = String::new();
        assert_eq!(catalog_item(&codec, &a).unwrap().unwrap().price, dec!(50));
        a[art::SERVICE] = "D".into();
        assert!(catalog_item(&codec, &a).unwrap().is_err());
        a[art::SERVICE] = "N".into();
        a[art::PRICE] = "50.0".into();
        assert!(
            catalog_item(&codec, &a)
                .unwrap_err()
                .contains("PretVanzare")
        );

        let mut s = vec![String::new(); STOC_FIELDS];
        s[stoc::CODE] = "ABC-1".into();
        s[stoc::STOCK] = "7".into();
        s[stoc::WAREHOUSE] = "Depozit".into();
        s[stoc::RESERVED] = "2,5".into();
        let l = stock_level(&codec, &s, StockQuantity::Available)
            .unwrap()
            .unwrap();
        assert_eq!(l.quantity, dec!(4.5));
        let l = stock_level(&codec, &s, StockQuantity::Physical)
            .unwrap()
            .unwrap();
        assert_eq!(l.quantity, dec!(7));
        s[stoc::RESERVED] = "9".into();
        let l = stock_level(&codec, &s, StockQuantity::Available)
            .unwrap()
            .unwrap();
        assert_eq!(l.quantity, Decimal::ZERO);
        s[stoc::CODE] = "A B".into();
        assert!(
            stock_level(&codec, &s, StockQuantity::Available)
                .unwrap()
                .is_err()
        );
    }
}
