//! Conversions between CDON's wire types and `canonical`.
//!
//! - Orders: one CDON order is one SKU row, so it becomes a `canonical::Order` with one line.
//!   `price.amount` excludes VAT and covers all units, so the unit gross price is
//!   `(amount + vat_amount) / quantity`. `customer_order_id` (one checkout) is the `group_id`.
//! - Listings: the title and description are sent under every configured language; HTML in a
//!   description is refused here, before anything is sent, because CDON accepts plain text only.
//! - Carrier names are matched to CDON's approved list and sent in CDON's exact spelling.

use canonical::{
    ChannelOrderId, Contact, Country, Currency, Listing, MarketPrice, Order, OrderLine,
    OrderStatus, ReturnEvent, ReturnKind, ReturnLine, Sku, Tracking, VatRate, round2,
};
use rust_decimal::Decimal;

use super::config::{CarrierMatching, CarrierNames, Config, VatRateMode};
use super::wire::{
    self, Article, ArticleBody, ArticleStatus, LangValue, OrderState, PriceEntry, PriceValue,
    ShippingTime, parse_timestamp,
};

/// CDON's markets.
pub const MARKETS: [Country; 4] = [Country::SE, Country::DK, Country::FI, Country::NO];

/// CDON's content languages.
pub const LANGUAGES: [&str; 5] = ["sv-SE", "en-US", "da-DK", "fi-FI", "nb-NO"];

/// CDON's approved carrier names (support.cdon.com article 38112304131092, as copied by a
/// third-party integration), spelled exactly as CDON wants them.
pub const APPROVED_CARRIERS: [&str; 31] = [
    "Airmee",
    "Asendia",
    "Austrian Post",
    "Bpost",
    "BRT",
    "Budbee",
    "Chronopost",
    "CityMail",
    "Colissimo",
    "Correos",
    "Dachser",
    "DAO",
    "DB Schenker",
    "DHL",
    "DPD",
    "DPD France",
    "Early Bird",
    "FERCAM",
    "GLS",
    "Helthjem",
    "Instabox",
    "Matkahuolto",
    "NACEX",
    "Poste Italiane",
    "Posten Bring",
    "Posti",
    "PostNL",
    "PostNord",
    "SDA",
    "SEUR",
    "Spring GDS",
];

/// The currency of a CDON market: SE→SEK, DK→DKK, FI→EUR, NO→NOK.
pub fn market_currency(market: Country) -> Option<Currency> {
    match market.as_str() {
        "SE" => Some(Currency::Sek),
        "DK" => Some(Currency::Dkk),
        "FI" => Some(Currency::Eur),
        "NO" => Some(Currency::Nok),
        _ => None,
    }
}

/// The key a carrier name is matched on loosely: lower-case letters and digits only.
pub fn carrier_key(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// CDON's exact spelling of `name`, or a message naming the approved list.
pub fn normalize_carrier(name: &str, cfg: &CarrierNames) -> Result<String, String> {
    let name = name.trim();
    let known = || {
        APPROVED_CARRIERS
            .iter()
            .copied()
            .chain(cfg.extra.iter().map(String::as_str))
    };
    let loose = cfg.matching == CarrierMatching::Loose;
    let same = |a: &str, b: &str| {
        if loose {
            carrier_key(a) == carrier_key(b)
        } else {
            a == b
        }
    };
    if let Some(exact) = known().find(|k| same(k, name)) {
        return Ok(exact.to_owned());
    }
    if let Some((_, to)) = cfg.aliases.iter().find(|(from, _)| same(from, name)) {
        return Ok(to.clone());
    }
    let mut list: Vec<&str> = known().collect();
    list.sort_unstable_by_key(|s| s.to_lowercase());
    Err(format!(
        "carrier {name:?} is not on CDON's approved list{}; use one of: {} (or map it in \
         carrier_names.aliases)",
        if loose { "" } else { " (matched exactly)" },
        list.join(", ")
    ))
}

/// The first HTML tag or entity in `s`, if any.
pub fn find_html(s: &str) -> Option<String> {
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'<' {
            let next = b.get(i + 1).copied().unwrap_or(b' ');
            let tagish = next.is_ascii_alphabetic()
                || ((next == b'/' || next == b'!')
                    && b.get(i + 2)
                        .is_some_and(|n| n.is_ascii_alphabetic() || *n == b'-'));
            if tagish && let Some(end) = s[i..].find('>') {
                return Some(s[i..=i + end].chars().take(40).collect());
            }
        }
        if c == b'&'
            && let Some(end) = s[i..].find(';').filter(|e| (2..=10).contains(e))
        {
            let name = &s[i + 1..i + end];
            let named = name.chars().all(|c| c.is_ascii_alphabetic());
            let numeric = name
                .strip_prefix('#')
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric()));
            if named || numeric {
                return Some(s[i..=i + end].to_owned());
            }
        }
    }
    None
}

/// Why a listing cannot be sent; becomes a non-retryable per-item failure.
pub type Refusal = String;

/// The price entries of `prices` on the configured markets (in configuration order).
pub fn price_entries(
    sku: &Sku,
    prices: &[MarketPrice],
    vat: VatRate,
    cfg: &Config,
) -> Result<Vec<PriceEntry>, Refusal> {
    let mut out = Vec::new();
    for market in &cfg.markets {
        let mut found = prices.iter().filter(|p| p.market == *market);
        let Some(p) = found.next() else { continue };
        if found.next().is_some() {
            return Err(format!("price: {sku} has two prices for market {market}"));
        }
        let want =
            market_currency(*market).ok_or_else(|| format!("{market} is not a CDON market"))?;
        if p.gross.currency != want {
            return Err(format!(
                "price: the {market} price is in {}, but CDON's {market} market sells in {want}",
                p.gross.currency
            ));
        }
        if p.gross.amount <= Decimal::ZERO {
            return Err(format!("price: the {market} price must be above zero"));
        }
        out.push(PriceEntry {
            market: market.to_string(),
            value: PriceValue {
                amount_including_vat: round2(p.gross.amount),
                currency: want.to_string(),
                vat_rate: match cfg.vat_rate {
                    VatRateMode::Listing => Some(p.vat.unwrap_or(vat).as_fraction()),
                    VatRateMode::MarketDefault => None,
                },
            },
        });
    }
    if out.is_empty() {
        let markets: Vec<String> = cfg.markets.iter().map(ToString::to_string).collect();
        return Err(format!(
            "price: {sku} has no price for any configured CDON market ({})",
            markets.join(", ")
        ));
    }
    Ok(out)
}

fn lang_values(text: &str, cfg: &Config) -> Vec<LangValue> {
    cfg.languages
        .iter()
        .map(|l| LangValue {
            language: l.clone(),
            value: text.trim().to_owned(),
        })
        .collect()
}

/// The `update_article` body of a listing (its markets are those it has prices for).
pub fn article_body(l: &Listing, markets: &[String], cfg: &Config) -> Result<ArticleBody, Refusal> {
    if let Some(tag) = find_html(&l.description) {
        return Err(format!(
            "description: HTML is not allowed on CDON (found {tag:?}); send plain text"
        ));
    }
    let mut images = l.images.iter().map(|s| s.trim()).filter(|s| !s.is_empty());
    let main_image = images
        .next()
        .ok_or_else(|| "main_image: the listing has no image; CDON requires one".to_owned())?
        .to_owned();
    let days = cfg.default_shipping_time;
    let min = days.min.max(l.handling_days.clamp(1, 9));
    let max = days.max.max(min);
    Ok(ArticleBody {
        status: if l.active {
            ArticleStatus::ForSale
        } else {
            ArticleStatus::Paused
        },
        main_image,
        images: images.map(str::to_owned).collect(),
        markets: markets.to_vec(),
        title: lang_values(&l.title, cfg),
        description: lang_values(&l.description, cfg),
        shipping_time: markets
            .iter()
            .map(|m| ShippingTime {
                market: m.clone(),
                min,
                max,
            })
            .collect(),
        parent_sku: l.parent_sku.clone().filter(|s| !s.trim().is_empty()),
        category: l.category.clone().filter(|s| !s.trim().is_empty()),
        brand: l.brand.clone().filter(|s| !s.trim().is_empty()),
        gtin: l.gtin.clone().filter(|s| !s.trim().is_empty()),
    })
}

/// The article `POST /v2/articles/bulk` creates from a listing.
pub fn listing_to_article(l: &Listing, cfg: &Config) -> Result<Article, Refusal> {
    if l.quantity > 500_000 {
        return Err(format!(
            "quantity: {} exceeds CDON's maximum of 500000",
            l.quantity
        ));
    }
    let price = price_entries(&l.sku, &l.prices, l.vat, cfg)?;
    let markets: Vec<String> = price.iter().map(|p| p.market.clone()).collect();
    Ok(Article {
        sku: l.sku.to_string(),
        quantity: l.quantity,
        price,
        body: article_body(l, &markets, cfg)?,
    })
}

/// The canonical status of a CDON order state.
pub fn order_status(state: &OrderState) -> OrderStatus {
    match state {
        OrderState::Created => OrderStatus::New,
        OrderState::Accepted => OrderStatus::Accepted,
        OrderState::Fulfilled => OrderStatus::Shipped,
        OrderState::NotFulfilled => OrderStatus::Cancelled,
        OrderState::Other(_) => OrderStatus::Other,
    }
}

fn blank_to_none(s: &Option<String>) -> Option<String> {
    s.as_ref()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The customer of an order. B2B orders have no first/last name: `full_name` is then the
/// company, and also the name.
pub fn contact(a: &wire::ShippingAddress, market: Country) -> Contact {
    let first = blank_to_none(&a.first_name);
    let last = blank_to_none(&a.last_name);
    let full = blank_to_none(&a.full_name);
    let person = match (&first, &last) {
        (None, None) => None,
        _ => Some(
            [first.as_deref(), last.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" "),
        ),
    };
    let company = if person.is_none() { full.clone() } else { None };
    Contact {
        name: person.or(full).unwrap_or_default(),
        company,
        email: None,
        phone: blank_to_none(&a.phone_number),
        address_line1: a.street_address.trim().to_owned(),
        address_line2: None,
        city: a.city.trim().to_owned(),
        postal_code: a.postal_code.trim().to_owned(),
        region: None,
        country: a.country.parse().ok().or(Some(market)),
        tax_id: None,
    }
}

/// A CDON order (one SKU row) as a canonical order with one line.
pub fn order_to_canonical(o: &wire::Order) -> Result<Order, String> {
    let id = ChannelOrderId::new(o.id.trim()).map_err(|e| format!("order id: {e}"))?;
    let ctx = |m: String| format!("order {id}: {m}");
    let market: Country = o.market.parse().map_err(|e| ctx(format!("market: {e}")))?;
    let currency = match o.price.currency.as_deref().map(str::parse::<Currency>) {
        Some(Ok(c)) => c,
        Some(Err(e)) => return Err(ctx(format!("price.currency: {e}"))),
        None => market_currency(market)
            .ok_or_else(|| ctx(format!("market {market} is not a CDON market")))?,
    };
    if o.quantity == 0 {
        return Err(ctx("quantity is 0".into()));
    }
    let sku = Sku::new(o.article_sku.trim()).map_err(|e| ctx(format!("article_sku: {e}")))?;
    let gross_total = o.price.amount + o.price.vat_amount;
    let vat_fraction = match o.price.vat_rate {
        Some(r) => r,
        None if o.price.amount > Decimal::ZERO => (o.price.vat_amount / o.price.amount).round_dp(4),
        None => Decimal::ZERO,
    };
    let vat = VatRate::fraction(vat_fraction).map_err(|e| ctx(format!("price.vat_rate: {e}")))?;
    let placed_at = parse_timestamp(&o.created_at).ok_or_else(|| {
        ctx(format!(
            "created_at {:?} is not YYYY-MM-DD HH:MM:SS",
            o.created_at
        ))
    })?;
    let optional_time = |field: &str, v: &Option<String>| -> Result<_, String> {
        match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => parse_timestamp(s)
                .map(Some)
                .ok_or_else(|| ctx(format!("{field} {s:?} is not YYYY-MM-DD HH:MM:SS"))),
        }
    };
    let c = contact(&o.shipping_address, market);
    Ok(Order {
        group_id: blank_to_none(&o.customer_order_id),
        status: order_status(&o.state),
        raw_status: o.state.as_str().to_owned(),
        market,
        currency,
        placed_at,
        updated_at: optional_time("updated_at", &o.updated_at)?,
        ship_by: optional_time("fulfillment_deadline", &o.fulfillment_deadline)?,
        lines: vec![OrderLine {
            line_id: None,
            title: blank_to_none(&o.title).unwrap_or_else(|| sku.to_string()),
            sku,
            quantity: o.quantity,
            unit_price_gross: round2(gross_total / Decimal::from(o.quantity)),
            vat,
        }],
        shipping_fee_gross: Decimal::ZERO,
        total_gross: gross_total,
        customer: c.clone(),
        ship_to: c,
        tracking: o
            .tracking_information
            .iter()
            .map(|t| Tracking {
                carrier: t.carrier_name.clone().unwrap_or_default(),
                number: t.tracking_number.clone(),
            })
            .collect(),
        id,
    })
}

/// A `NOT_FULFILLED` order (cancelled and refunded) as a cancellation event, with a stable id.
pub fn cancellation_event(o: &Order) -> ReturnEvent {
    ReturnEvent {
        event_id: format!("cdon:not_fulfilled:{}", o.id),
        order_id: o.id.clone(),
        kind: ReturnKind::Cancellation,
        lines: o
            .lines
            .iter()
            .map(|l| ReturnLine {
                sku: l.sku.clone(),
                quantity: l.quantity,
            })
            .collect(),
        reason: Some("CDON order NOT_FULFILLED: cancelled and refunded to the customer".into()),
        at: o.updated_at.or(Some(o.placed_at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canonical::Money;
    use rust_decimal::dec;
    use serde_json::json;

    fn order(v: serde_json::Value) -> wire::Order {
        serde_json::from_value(v).unwrap()
    }

    fn example(address: serde_json::Value) -> serde_json::Value {
        json!({
            "id": "1001", "article_id": "a-1", "customer_order_id": "CO-7", "title": "Mug",
            "article_sku": "MUG-1",
            "price": {"amount": 23.2, "vat_amount": 5.8, "vat_rate": 0.25, "currency": "SEK"},
            "quantity": 2, "shipping_address": address, "market": "SE", "state": "CREATED",
            "created_at": "2018-01-01 16:57:06", "fulfillment_deadline": "2018-01-06 16:57:06",
            "tracking_information": []
        })
    }

    #[test]
    fn an_order_becomes_one_line_with_gross_unit_prices() {
        let o = order_to_canonical(&order(example(json!({
            "first_name": "Anna", "last_name": "Berg", "street_address": "Storgatan 1",
            "city": "Stockholm", "postal_code": "111 22", "country": "SE", "phone_number": "070"
        }))))
        .unwrap();
        assert_eq!(o.id.as_str(), "1001");
        assert_eq!(o.group_id.as_deref(), Some("CO-7"));
        assert_eq!(o.status, OrderStatus::New);
        assert_eq!(o.currency, Currency::Sek);
        assert_eq!(o.total_gross, dec!(29.0));
        assert_eq!(o.lines.len(), 1);
        assert_eq!(o.lines[0].unit_price_gross, dec!(14.50));
        assert_eq!(o.lines[0].quantity, 2);
        assert_eq!(o.lines[0].vat.as_percent(), dec!(25));
        assert_eq!(o.customer.name, "Anna Berg");
        assert_eq!(o.customer.company, None);
        assert_eq!(o.ship_by.unwrap().to_rfc3339(), "2018-01-06T16:57:06+00:00");
    }

    #[test]
    fn b2b_orders_have_only_a_full_name_and_currency_falls_back_to_the_market() {
        let mut v = example(json!({
            "full_name": "Acme AB", "street_address": "Industrivägen 2", "city": "Oslo",
            "postal_code": "0150", "country": "NO"
        }));
        v["market"] = json!("NO");
        v["price"] = json!({"amount": 80, "vat_amount": 20});
        let o = order_to_canonical(&order(v)).unwrap();
        assert_eq!(o.customer.name, "Acme AB");
        assert_eq!(o.customer.company.as_deref(), Some("Acme AB"));
        assert_eq!(o.currency, Currency::Nok);
        assert_eq!(o.lines[0].vat.as_percent(), dec!(25));
        for (m, c) in [
            ("SE", Currency::Sek),
            ("DK", Currency::Dkk),
            ("FI", Currency::Eur),
            ("NO", Currency::Nok),
        ] {
            assert_eq!(market_currency(m.parse().unwrap()), Some(c));
        }
        assert_eq!(market_currency(Country::DE), None);
    }

    #[test]
    fn bad_orders_name_the_field() {
        let mut v = example(json!({}));
        v["created_at"] = json!("yesterday");
        let e = order_to_canonical(&order(v)).unwrap_err();
        assert!(e.contains("created_at") && e.contains("1001"), "{e}");
        let mut v = example(json!({}));
        v["article_sku"] = json!("has space");
        assert!(
            order_to_canonical(&order(v))
                .unwrap_err()
                .contains("article_sku")
        );
        let mut v = example(json!({}));
        v["state"] = json!("NOT FULFILLED");
        let o = order_to_canonical(&order(v)).unwrap();
        assert_eq!(o.status, OrderStatus::Cancelled);
        let ev = cancellation_event(&o);
        assert_eq!(ev.event_id, "cdon:not_fulfilled:1001");
        assert_eq!(ev.kind, ReturnKind::Cancellation);
    }

    fn listing(description: &str) -> Listing {
        Listing {
            sku: Sku::new("MUG-1").unwrap(),
            parent_sku: None,
            title: "A sturdy mug".into(),
            description: description.into(),
            brand: Some("Acme".into()),
            gtin: None,
            category: Some("1124".into()),
            images: vec!["https://img/1.jpg".into(), "https://img/2.jpg".into()],
            prices: vec![
                MarketPrice {
                    market: Country::SE,
                    gross: Money::new(dec!(199), Currency::Sek),
                    vat: None,
                },
                MarketPrice {
                    market: Country::NO,
                    gross: Money::new(dec!(189.5), Currency::Nok),
                    vat: None,
                },
            ],
            vat: VatRate::percent(dec!(25)).unwrap(),
            quantity: 7,
            active: true,
            handling_days: 2,
        }
    }

    #[test]
    fn a_listing_becomes_an_article_on_its_priced_markets() {
        let mut cfg = Config {
            languages: vec!["sv-SE".into(), "en-US".into()],
            ..Config::default()
        };
        let a = listing_to_article(&listing("A mug for coffee and tea."), &cfg).unwrap();
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["sku"], "MUG-1");
        assert_eq!(v["status"], "for sale");
        assert_eq!(v["markets"], json!(["SE", "NO"]));
        assert_eq!(v["main_image"], "https://img/1.jpg");
        assert_eq!(v["images"], json!(["https://img/2.jpg"]));
        assert_eq!(
            v["title"][1],
            json!({"language": "en-US", "value": "A sturdy mug"})
        );
        assert_eq!(
            v["price"][1],
            json!({"market": "NO", "value": {"amount_including_vat": 189.5, "currency": "NOK", "vat_rate": 0.25}})
        );
        assert_eq!(
            v["shipping_time"][0],
            json!({"market": "SE", "min": 2, "max": 3})
        );
        assert!(v.get("parent_sku").is_none());
        // A market's own VAT (a distance sale taxed at the buyer's rate) wins over the listing's.
        let mut fi = listing("A mug for coffee and tea.");
        fi.prices[1].vat = Some(VatRate::percent(dec!(25.5)).unwrap());
        let a = listing_to_article(&fi, &cfg).unwrap();
        assert_eq!(a.price[0].value.vat_rate, Some(dec!(0.25)));
        assert_eq!(a.price[1].value.vat_rate, Some(dec!(0.255)));
        cfg.vat_rate = VatRateMode::MarketDefault;
        let a = listing_to_article(&listing("A mug for coffee and tea."), &cfg).unwrap();
        assert_eq!(a.price[0].value.vat_rate, None);
    }

    #[test]
    fn html_and_unsellable_listings_are_refused_with_the_field() {
        let cfg = Config::default();
        let e = listing_to_article(&listing("<p>A mug</p>"), &cfg).unwrap_err();
        assert!(
            e.starts_with("description: HTML") && e.contains("<p>"),
            "{e}"
        );
        assert!(listing_to_article(&listing("Tom &amp; Jerry mug"), &cfg).is_err());
        assert!(listing_to_article(&listing("Tom & Jerry; a mug < 2 l"), &cfg).is_ok());
        let mut l = listing("plain text here");
        l.images.clear();
        assert!(
            listing_to_article(&l, &cfg)
                .unwrap_err()
                .starts_with("main_image")
        );
        l = listing("plain text here");
        l.prices[0].gross.currency = Currency::Eur;
        let e = listing_to_article(&l, &cfg).unwrap_err();
        assert!(e.contains("EUR") && e.contains("SEK"), "{e}");
        l = listing("plain text here");
        l.prices.clear();
        assert!(
            listing_to_article(&l, &cfg)
                .unwrap_err()
                .contains("no price")
        );
    }

    #[test]
    fn carriers_are_sent_in_cdons_spelling() {
        let mut cfg = CarrierNames::default();
        assert_eq!(normalize_carrier("postnord", &cfg).unwrap(), "PostNord");
        assert_eq!(normalize_carrier(" Post-Nord ", &cfg).unwrap(), "PostNord");
        assert_eq!(
            normalize_carrier("db schenker", &cfg).unwrap(),
            "DB Schenker"
        );
        let e = normalize_carrier("FedEx", &cfg).unwrap_err();
        assert!(
            e.contains("FedEx") && e.contains("PostNord") && e.contains("Budbee"),
            "{e}"
        );
        cfg.aliases.insert("DHL Express".into(), "DHL".into());
        assert_eq!(normalize_carrier("dhl express", &cfg).unwrap(), "DHL");
        cfg.matching = CarrierMatching::Exact;
        assert!(normalize_carrier("postnord", &cfg).is_err());
        assert_eq!(normalize_carrier("PostNord", &cfg).unwrap(), "PostNord");
    }
}
