//! Conversions between Cel.ro payloads and `canonical`: orders (lines, shipping pseudo-line,
//! statuses, contacts), listings to importer rows, return events, push callbacks.
//!
//! Assumptions (contract §2.7, \[U\]): money is RON; `products_price` is the **gross unit price**
//! (VAT included); `tva` is a percentage (a value below 1 is read as a fraction).

use std::collections::HashMap;

use canonical::{
    ChannelOrderId, Contact, Country, Currency, Listing, MarketPrice, Order, OrderLine,
    OrderStatus, ReturnEvent, ReturnKind, ReturnLine, Sku, Tracking, VatRate,
};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Map, Value, json};

use crate::marketplace::{WakeKind, WakeUp};

use super::config::{Config, ServerTime, StatusMap};
use super::wire::{
    self, SHIPPING_MODEL, WireOrder, WireReturn, form_decode, from_server_time, int, items,
    pick_str,
};

// ---------------------------------------------------------------------------------------------
// Statuses

/// The canonical status of a raw Cel.ro status: `by_code` override, else the code's name (from
/// the fetched status list) through the name rules, else a non-numeric raw value read as a
/// name, else [`OrderStatus::Other`].
pub fn resolve_status(raw: &str, names: &HashMap<String, String>, map: &StatusMap) -> OrderStatus {
    let raw = raw.trim();
    if let Some(s) = map.by_code.get(raw) {
        return *s;
    }
    if let Some(name) = names.get(raw) {
        return map.by_name(name).unwrap_or(OrderStatus::Other);
    }
    if !raw.is_empty() && raw.parse::<i64>().is_err() {
        return map.by_name(raw).unwrap_or(OrderStatus::Other);
    }
    OrderStatus::Other
}

// ---------------------------------------------------------------------------------------------
// Orders

fn vat_of(p: Decimal) -> Result<VatRate, String> {
    let p = if p > Decimal::ZERO && p < Decimal::ONE {
        p * Decimal::ONE_HUNDRED
    } else {
        p
    };
    VatRate::percent(p).map_err(|e| e.to_string())
}

fn whole(q: Decimal, what: &str) -> Result<u32, String> {
    let a = q.abs();
    if a.fract() != Decimal::ZERO {
        return Err(format!("{what} quantity {q} is not a whole number"));
    }
    a.to_u32()
        .ok_or_else(|| format!("{what} quantity {q} is too large"))
}

/// A contact from Cel.ro's order maps (delivery first, then billing, then customer).
pub fn contact(primary: &Map<String, Value>, customer: &Map<String, Value>) -> Contact {
    let get = |keys: &[&str]| pick_str(primary, keys);
    Contact {
        name: get(&[
            "nume",
            "name",
            "nume_livrare",
            "persoana_contact",
            "contact",
        ])
        .or_else(|| pick_str(customer, &["name", "nume"]))
        .unwrap_or_default(),
        company: get(&["firma", "company", "nume_firma"])
            .or_else(|| pick_str(customer, &["customer_company", "company"])),
        email: get(&["email", "e-mail"]).or_else(|| pick_str(customer, &["email"])),
        phone: get(&["telefon", "phone", "tel"])
            .or_else(|| pick_str(customer, &["telefon", "phone"])),
        address_line1: get(&["adresa", "address", "strada"]).unwrap_or_default(),
        address_line2: None,
        city: get(&["oras", "localitate", "city"]).unwrap_or_default(),
        postal_code: get(&["cod_postal", "zip", "postal_code", "codpostal"]).unwrap_or_default(),
        region: get(&["judet", "county", "region"]),
        country: get(&["tara", "country"])
            .and_then(|c| c.parse::<Country>().ok())
            .or(Some(Country::RO)),
        tax_id: get(&["cui", "cif", "cod_fiscal"]),
    }
}

/// A Cel.ro order in canonical terms. The `taxa_transport` pseudo-line becomes
/// `shipping_fee_gross`; a storno (minus) order keeps its sign in the totals and absolute
/// quantities on its lines.
pub fn order(w: &WireOrder, status: OrderStatus, zone: ServerTime) -> Result<Order, String> {
    let id = ChannelOrderId::new(w.id.clone()).map_err(|e| format!("order id {:?}: {e}", w.id))?;
    let placed_at = w
        .placed
        .as_deref()
        .or(w.last_changed.as_deref())
        .and_then(|s| from_server_time(s, zone))
        .ok_or_else(|| format!("order {}: no readable purchase date (data/ora)", w.id))?;
    let mut lines = Vec::new();
    let mut shipping = Decimal::ZERO;
    for l in &w.lines {
        let what = format!(
            "order {} line {}",
            w.id,
            l.line_id.as_deref().unwrap_or(&l.model)
        );
        let qty = l.quantity.unwrap_or(Decimal::ONE);
        let price = l
            .unit_price
            .ok_or_else(|| format!("{what}: no products_price"))?;
        if l.model == SHIPPING_MODEL {
            shipping += price * qty;
            continue;
        }
        let sku = Sku::new(l.model.clone()).map_err(|e| {
            format!(
                "{what}: products_model {:?} is not a usable SKU: {e}",
                l.model
            )
        })?;
        let vat = vat_of(l.vat_percent.ok_or_else(|| format!("{what}: no tva"))?)
            .map_err(|e| format!("{what}: {e}"))?;
        lines.push(OrderLine {
            line_id: l.line_id.clone(),
            sku,
            title: l.name.clone(),
            quantity: whole(qty, &what)?,
            unit_price_gross: price,
            vat,
        });
    }
    if lines.is_empty() {
        return Err(format!("order {}: no product lines", w.id));
    }
    let sum: Decimal = lines
        .iter()
        .map(|l| l.unit_price_gross * Decimal::from(l.quantity))
        .sum::<Decimal>()
        + shipping;
    let customer = contact(
        if w.billing.is_empty() {
            &w.customer
        } else {
            &w.billing
        },
        &w.customer,
    );
    let ship_to = if w.delivery.is_empty() {
        customer.clone()
    } else {
        contact(&w.delivery, &w.customer)
    };
    Ok(Order {
        id,
        group_id: None,
        status,
        raw_status: w.status.clone(),
        market: Country::RO,
        currency: Currency::Ron,
        placed_at,
        updated_at: w
            .last_changed
            .as_deref()
            .and_then(|s| from_server_time(s, zone)),
        ship_by: None,
        lines,
        shipping_fee_gross: shipping,
        total_gross: w.total.unwrap_or(sum),
        customer,
        ship_to,
        tracking: w
            .awbs
            .iter()
            .map(|a| Tracking {
                carrier: String::new(),
                number: a.clone(),
            })
            .collect(),
    })
}

/// A storno (minus) order: negative total.
pub fn is_minus_order(w: &WireOrder) -> bool {
    w.total.is_some_and(|t| t < Decimal::ZERO)
}

// ---------------------------------------------------------------------------------------------
// Listings

/// The RON gross price of a listing: the RO market's, else any RON price.
pub fn ron_price(prices: &[MarketPrice]) -> Result<Decimal, String> {
    let p = prices
        .iter()
        .find(|p| p.market == Country::RO && p.gross.currency == Currency::Ron)
        .or_else(|| prices.iter().find(|p| p.gross.currency == Currency::Ron))
        .ok_or_else(|| "no RON price (Cel.ro sells in RON on market RO)".to_owned())?;
    if p.gross.amount <= Decimal::ZERO {
        return Err(format!("price {} must be positive", p.gross));
    }
    Ok(p.gross.amount.round_dp(2))
}

/// A price as Cel.ro's forms carry it: two decimals.
pub fn money_text(d: Decimal) -> String {
    format!("{d:.2}")
}

/// The full importer row of a new product (`type: insert`), or what makes it unsendable.
pub fn insert_row(l: &Listing, cfg: &Config) -> Result<Value, String> {
    let price = ron_price(&l.prices)?;
    if l.title.trim().is_empty() {
        return Err("title (products_name) is empty".into());
    }
    let category = l
        .category
        .as_deref()
        .filter(|c| !c.trim().is_empty())
        .ok_or("category (categories_id) is required for a new Cel.ro product")?;
    let brand = l
        .brand
        .as_deref()
        .filter(|b| !b.trim().is_empty())
        .ok_or("brand (manufacturers_name) is required for a new Cel.ro product")?;
    let (main, rest) = l
        .images
        .split_first()
        .ok_or("at least one image (products_image) is required for a new Cel.ro product")?;
    let images: Vec<Value> = rest
        .iter()
        .enumerate()
        .map(|(i, u)| json!({"id": i + 1, "url": u}))
        .collect();
    Ok(json!({
        "products_name": l.title.trim(),
        "products_model": l.sku.as_str(),
        "manufacturers_name": brand,
        "categories_id": category,
        "stoc": l.quantity,
        "pretf": money_text(price),
        "hasTVA": 1,
        "moneda": "RON",
        "products_image": main,
        "image": images,
        "products_description": l.description,
        "garantie": cfg.warranty_months,
        "status": u8::from(l.active),
        "procesare_in": l.handling_days,
        "type": "insert",
        "overridePrice": u8::from(cfg.override_price_jumps),
    }))
}

/// The short importer row of an approved product (`type: update`).
pub fn update_row(l: &Listing, cfg: &Config) -> Result<Value, String> {
    let price = ron_price(&l.prices)?;
    Ok(json!({
        "products_model": l.sku.as_str(),
        "pretf": money_text(price),
        "stoc": l.quantity,
        "hasTVA": 1,
        "type": "update",
        "status": u8::from(l.active),
        "procesare_in": l.handling_days,
        "overridePrice": u8::from(cfg.override_price_jumps),
    }))
}

// ---------------------------------------------------------------------------------------------
// Returns

/// The events an order's state implies: a cancellation, or a reversal (storno status, or a
/// minus order, which is attributed to its original order when the payload names it).
pub fn order_events(
    w: &WireOrder,
    status: OrderStatus,
    zone: ServerTime,
) -> Result<Vec<ReturnEvent>, String> {
    let at = w
        .last_changed
        .as_deref()
        .or(w.placed.as_deref())
        .and_then(|s| from_server_time(s, zone));
    let oid =
        |s: &str| ChannelOrderId::new(s.to_owned()).map_err(|e| format!("order id {s:?}: {e}"));
    let mut out = Vec::new();
    if status == OrderStatus::Cancelled {
        out.push(ReturnEvent {
            event_id: format!("celro:cancellation:{}", w.id),
            order_id: oid(&w.id)?,
            kind: ReturnKind::Cancellation,
            lines: vec![],
            reason: w.cancel_reason.clone(),
            at,
        });
    } else if is_minus_order(w) || status == OrderStatus::Returned {
        let original = w.storno_of.clone().unwrap_or_else(|| w.id.clone());
        let lines = if is_minus_order(w) {
            w.lines
                .iter()
                .filter(|l| l.model != SHIPPING_MODEL)
                .filter_map(|l| {
                    Some(ReturnLine {
                        sku: Sku::new(l.model.clone()).ok()?,
                        quantity: whole(l.quantity.unwrap_or(Decimal::ONE), "storno line").ok()?,
                    })
                })
                .collect()
        } else {
            vec![]
        };
        out.push(ReturnEvent {
            event_id: format!("celro:reversal:{original}"),
            order_id: oid(&original)?,
            kind: ReturnKind::Reversal,
            lines,
            reason: w.cancel_reason.clone(),
            at,
        });
    }
    Ok(out)
}

/// A customer's return request.
pub fn return_request_event(r: &WireReturn, zone: ServerTime) -> Result<ReturnEvent, String> {
    let order_id = ChannelOrderId::new(r.order_id.clone())
        .map_err(|e| format!("return request {}: order id {:?}: {e}", r.id, r.order_id))?;
    let lines = match &r.model {
        Some(m) => vec![ReturnLine {
            sku: Sku::new(m.clone())
                .map_err(|e| format!("return request {}: model {m:?}: {e}", r.id))?,
            quantity: whole(r.quantity.unwrap_or(Decimal::ONE), "return request")?,
        }],
        None => vec![],
    };
    Ok(ReturnEvent {
        event_id: format!("celro:return-request:{}", r.id),
        order_id,
        kind: ReturnKind::ReturnRequest,
        lines,
        reason: r.reason.clone(),
        at: r.at.as_deref().and_then(|s| from_server_time(s, zone)),
    })
}

// ---------------------------------------------------------------------------------------------
// Callbacks

fn ids_of(v: Option<&Value>) -> Vec<Value> {
    match v {
        None | Some(Value::Null) => vec![],
        Some(v @ (Value::Array(_) | Value::Object(_))) => items(v),
        Some(Value::String(s)) if s.contains(',') => s
            .split(',')
            .map(|p| Value::String(p.trim().to_owned()))
            .collect(),
        Some(scalar) => vec![scalar.clone()],
    }
}

/// Reads a push callback (R4: GET `type` and `value`, a URL-encoded JSON object; the same
/// pair in a form or JSON body is accepted too). The callback is unauthenticated, so the
/// result only names orders to look at: nothing in it is trusted as data.
pub fn parse_callback(query: &str, body: &[u8]) -> Result<WakeUp, String> {
    let mut pairs = form_decode(query.trim().trim_start_matches('?'));
    if !pairs.iter().any(|(k, _)| k == "type") && !body.is_empty() {
        let text =
            std::str::from_utf8(body).map_err(|_| "callback body is not UTF-8 text".to_owned())?;
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(o)) => {
                for (k, v) in o {
                    let s = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    pairs.push((k, s));
                }
            }
            _ => pairs.extend(form_decode(text.trim())),
        }
    }
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let ty = get("type").ok_or("callback has no type parameter")?;
    let ty: i64 = ty
        .trim()
        .parse()
        .map_err(|_| format!("callback type {ty:?} is not a number"))?;
    let value = match get("value") {
        Some(v) if !v.trim().is_empty() => Some(
            serde_json::from_str::<Value>(v)
                .map_err(|e| format!("callback type {ty}: value is not JSON ({e})"))?,
        ),
        _ => None,
    };
    let obj = match &value {
        Some(Value::Object(o)) => Some(o),
        Some(other) => {
            return Err(format!(
                "callback type {ty}: value is not a JSON object: {}",
                wire::text_of(other)
            ));
        }
        None => None,
    };
    let field = |k: &str| obj.and_then(|o| o.get(k));
    let (kind, raw) = match ty {
        1 => (WakeKind::NewOrders, ids_of(field("list"))),
        11 | 24 => {
            let mut ids = ids_of(field("order_id"));
            if ids.is_empty() {
                ids = ids_of(field("cmd"));
            }
            (WakeKind::Cancelled, ids)
        }
        _ => {
            let mut ids = ids_of(field("list"));
            ids.extend(ids_of(field("order_id")));
            ids.extend(ids_of(field("cmd")));
            (WakeKind::Other, ids)
        }
    };
    let mut orders = Vec::new();
    for v in raw {
        let s = wire::string(&v)
            .filter(|_| int(&v).is_some())
            .ok_or_else(|| {
                format!(
                    "callback type {ty}: order id {} is not a number",
                    wire::text_of(&v)
                )
            })?;
        let id = ChannelOrderId::new(s).map_err(|e| format!("callback type {ty}: {e}"))?;
        if !orders.contains(&id) {
            orders.push(id);
        }
    }
    if orders.is_empty() && kind != WakeKind::Other {
        let want = if ty == 1 {
            "value.list"
        } else {
            "value.order_id or value.cmd"
        };
        return Err(format!("callback type {ty} names no order ids ({want})"));
    }
    Ok(WakeUp { kind, orders })
}

#[cfg(test)]
mod tests {
    use super::*;
    use canonical::Money;
    use rust_decimal::dec;

    fn sample() -> WireOrder {
        wire::parse_order(&json!({
            "id_comanda": 700001, "data": "2026-01-15", "ora": "12:00:00", "status": "1",
            "last_changed": "2026-01-15 12:30:00",
            "valoarecomanda": "215.99",
            "customers": {"name": "Ana Pop", "customer_company": ""},
            "delivery_info": {"nume": "Ana Pop", "adresa": "Str. Lalelelor 3", "oras": "Cluj-Napoca", "judet": "Cluj", "cod_postal": "400000", "telefon": "0722000000"},
            "products": [
                {"id_prod_com": 11, "products_model": "SKU-1", "product_name": "Cana", "cantitate": "2", "products_price": "100.00", "tva": 21},
                {"id_prod_com": 12, "products_model": "taxa_transport", "products_quantity": 1, "products_price": "15.99", "tva": 21}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn orders_convert_with_shipping_and_bucharest_time() {
        let o = order(&sample(), OrderStatus::New, ServerTime::EuropeBucharest).unwrap();
        assert_eq!(o.id.as_str(), "700001");
        assert_eq!(o.raw_status, "1");
        assert_eq!(o.currency, Currency::Ron);
        assert_eq!(o.lines.len(), 1);
        assert_eq!(o.lines[0].sku.as_str(), "SKU-1");
        assert_eq!(o.lines[0].quantity, 2);
        assert_eq!(o.lines[0].unit_price_gross, dec!(100.00));
        assert_eq!(o.lines[0].vat.as_percent(), dec!(21));
        assert_eq!(o.lines[0].line_id.as_deref(), Some("11"));
        assert_eq!(o.shipping_fee_gross, dec!(15.99));
        assert_eq!(o.total_gross, dec!(215.99));
        assert_eq!(o.placed_at.to_rfc3339(), "2026-01-15T10:00:00+00:00");
        assert_eq!(o.ship_to.city, "Cluj-Napoca");
        assert_eq!(o.ship_to.region.as_deref(), Some("Cluj"));
        assert_eq!(o.customer.name, "Ana Pop");
    }

    #[test]
    fn unusable_orders_name_the_problem() {
        let mut w = sample();
        w.lines[0].model = "has space".into();
        let e = order(&w, OrderStatus::New, ServerTime::Utc).unwrap_err();
        assert!(
            e.contains("order 700001 line 11") && e.contains("has space"),
            "{e}"
        );
        let mut w = sample();
        w.lines[0].quantity = Some(dec!(1.5));
        assert!(
            order(&w, OrderStatus::New, ServerTime::Utc)
                .unwrap_err()
                .contains("whole")
        );
        let mut w = sample();
        w.placed = None;
        w.last_changed = None;
        assert!(
            order(&w, OrderStatus::New, ServerTime::Utc)
                .unwrap_err()
                .contains("purchase date")
        );
        let mut w = sample();
        w.lines.remove(0);
        assert!(
            order(&w, OrderStatus::New, ServerTime::Utc)
                .unwrap_err()
                .contains("no product lines")
        );
    }

    #[test]
    fn statuses_resolve_by_code_override_then_fetched_name() {
        let names: HashMap<String, String> = [
            ("1".into(), "Noua".into()),
            ("7".into(), "Anulata".into()),
            ("9".into(), "Misterioasa".into()),
        ]
        .into();
        let mut map = StatusMap::default();
        assert_eq!(resolve_status("1", &names, &map), OrderStatus::New);
        assert_eq!(resolve_status(" 7 ", &names, &map), OrderStatus::Cancelled);
        assert_eq!(resolve_status("9", &names, &map), OrderStatus::Other);
        assert_eq!(resolve_status("42", &names, &map), OrderStatus::Other);
        assert_eq!(
            resolve_status("Finalizata", &names, &map),
            OrderStatus::Completed
        );
        map.by_code.insert("9".into(), OrderStatus::Shipped);
        assert_eq!(resolve_status("9", &names, &map), OrderStatus::Shipped);
    }

    fn listing() -> Listing {
        Listing {
            sku: Sku::new("SKU-1").unwrap(),
            parent_sku: None,
            title: "Cana ceramica".into(),
            description: "Cana alba".into(),
            brand: Some("Megzo".into()),
            gtin: None,
            category: Some("1234".into()),
            images: vec!["https://img/1.jpg".into(), "https://img/2.jpg".into()],
            prices: vec![MarketPrice {
                market: Country::RO,
                gross: Money::new(dec!(49.9), Currency::Ron),
                vat: None,
            }],
            vat: VatRate::percent(dec!(21)).unwrap(),
            quantity: 7,
            active: true,
            handling_days: 2,
        }
    }

    #[test]
    fn listings_become_insert_and_update_rows() {
        let cfg = Config::default();
        let r = insert_row(&listing(), &cfg).unwrap();
        assert_eq!(r["products_model"], json!("SKU-1"));
        assert_eq!(r["pretf"], json!("49.90"));
        assert_eq!(r["hasTVA"], json!(1));
        assert_eq!(r["type"], json!("insert"));
        assert_eq!(r["products_image"], json!("https://img/1.jpg"));
        assert_eq!(r["image"][0]["url"], json!("https://img/2.jpg"));
        assert_eq!(r["stoc"], json!(7));
        let u = update_row(&listing(), &cfg).unwrap();
        assert_eq!(u["type"], json!("update"));
        assert!(u.get("products_name").is_none());
        let mut no_cat = listing();
        no_cat.category = None;
        assert!(
            insert_row(&no_cat, &cfg)
                .unwrap_err()
                .contains("categories_id")
        );
        let mut eur = listing();
        eur.prices[0].gross.currency = Currency::Eur;
        assert!(insert_row(&eur, &cfg).unwrap_err().contains("no RON price"));
        let mut zero = listing();
        zero.prices[0].gross.amount = Decimal::ZERO;
        assert!(update_row(&zero, &cfg).unwrap_err().contains("positive"));
    }

    #[test]
    fn cancelled_and_storno_orders_become_events_with_stable_ids() {
        let w = sample();
        let e = order_events(&w, OrderStatus::Cancelled, ServerTime::Utc).unwrap();
        assert_eq!(e[0].event_id, "celro:cancellation:700001");
        assert_eq!(e[0].kind, ReturnKind::Cancellation);
        assert!(
            order_events(&w, OrderStatus::New, ServerTime::Utc)
                .unwrap()
                .is_empty()
        );
        let mut minus = sample();
        minus.id = "700009".into();
        minus.total = Some(dec!(-215.99));
        minus.storno_of = Some("700001".into());
        let e = order_events(&minus, OrderStatus::Other, ServerTime::Utc).unwrap();
        assert_eq!(e[0].event_id, "celro:reversal:700001");
        assert_eq!(e[0].order_id.as_str(), "700001");
        assert_eq!(e[0].lines[0].quantity, 2);
        let r = WireReturn {
            id: "R1".into(),
            order_id: "700001".into(),
            model: Some("SKU-1".into()),
            quantity: Some(dec!(1)),
            reason: Some("Defect".into()),
            at: Some("2026-01-20 10:00:00".into()),
        };
        let ev = return_request_event(&r, ServerTime::Utc).unwrap();
        assert_eq!(ev.event_id, "celro:return-request:R1");
        assert_eq!(ev.kind, ReturnKind::ReturnRequest);
    }

    #[test]
    fn callbacks_parse_or_name_what_is_wrong() {
        let w =
            parse_callback("type=1&value=%7B%22list%22%3A%5B123%2C%22124%22%5D%7D", b"").unwrap();
        assert_eq!(w.kind, WakeKind::NewOrders);
        assert_eq!(
            w.orders.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
            ["123", "124"]
        );
        let w = parse_callback("?type=11&value=%7B%22order_id%22%3A55%7D", b"").unwrap();
        assert_eq!((w.kind, w.orders[0].as_str()), (WakeKind::Cancelled, "55"));
        let w = parse_callback("type=24&value=%7B%22cmd%22%3A%2256%22%7D", b"").unwrap();
        assert_eq!((w.kind, w.orders[0].as_str()), (WakeKind::Cancelled, "56"));
        let w = parse_callback("", br#"{"type": 1, "value": "{\"list\":[9]}"}"#).unwrap();
        assert_eq!(w.orders[0].as_str(), "9");
        let w = parse_callback("", b"type=1&value=%7B%22list%22%3A%5B8%5D%7D").unwrap();
        assert_eq!(w.orders[0].as_str(), "8");
        let w = parse_callback("type=5", b"").unwrap();
        assert_eq!((w.kind, w.orders.len()), (WakeKind::Other, 0));
        for (q, msg) in [
            ("", "no type"),
            ("value=%7B%7D", "no type"),
            ("type=abc", "not a number"),
            ("type=1&value=%7Bnot-json", "not JSON"),
            ("type=1&value=5", "not a JSON object"),
            ("type=1&value=%7B%22list%22%3A%5B%5D%7D", "no order ids"),
            ("type=1", "no order ids"),
            ("type=11&value=%7B%7D", "value.order_id or value.cmd"),
            (
                "type=1&value=%7B%22list%22%3A%5B%22x%20y%22%5D%7D",
                "not a number",
            ),
        ] {
            let e = parse_callback(q, b"").unwrap_err();
            assert!(e.contains(msg), "{q}: {e}");
        }
    }
}
