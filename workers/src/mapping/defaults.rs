//! The rule sets a new connection starts with, per seed pair, so a new tenant works at once.
//! They are ordinary versions (saved and activated by [`super::install_defaults`], author
//! `megzo`), edited like any other.
//!
//! - **→ CDON** (from SmartBill, WinMentor, Charisma, or any ERP): the ERP's net price plus each
//!   market's VAT (SE, NO, DK 25 %, FI 25.5 %), converted into the market's currency at the
//!   rates feed's rate of the day, rounded half-up to whole kronor (SE, NO, DK) or to the cent
//!   (FI, EUR); the market's VAT rate sent with each price; the Swedish title and description
//!   from the ERP's article name (ERPs hold no marketing text: replace the description rule
//!   when you have one).
//! - **→ Cel.ro** (from SmartBill, lexoffice, …): the gross price (the ERP's, or net plus the
//!   article's VAT) converted into RON when the ERP quotes another currency (lexoffice: EUR),
//!   rounded half-up to the bani; category and brand from per-SKU lookup tables, empty at
//!   first, so an article without an entry is refused by name until the merchant fills them
//!   (Cel.ro refuses a product without them).
//! - **Orders (marketplace → ERP)**: the order's SKU, gross unit price, currency and VAT as
//!   they are; into **lexoffice** (EUR only) the price is converted from the order's currency
//!   on the order's date and rounded to the cent.
//!
//! No default carries exchange rates: conversions use the feed (`megzo rates import`), so
//! nothing in a default goes stale.

use canonical::mapping::RuleSet;
use canonical::{Country, Erp, Marketplace};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::connectors_target;
use crate::db::Connection;
use crate::db::mappings::Direction;

/// Each CDON market's standard VAT rate (percent) for a distance sale taxed at destination.
fn cdon_vat(market: Country) -> Option<Decimal> {
    match market.as_str() {
        "SE" | "NO" | "DK" => Some(Decimal::from(25)),
        "FI" => Some(Decimal::new(255, 1)),
        _ => None,
    }
}

fn text(s: &str) -> Value {
    json!({ "text": s })
}

/// The default rule set of `conn` in `direction`; `None` when the pair has none (the no-op
/// connector, which takes records as they are).
pub fn default_rule_set(
    conn: &Connection,
    direction: Direction,
) -> Result<Option<RuleSet>, String> {
    let json = match direction {
        Direction::ErpToMarketplace => catalog_defaults(conn)?,
        Direction::MarketplaceToErp => order_defaults(conn),
    };
    json.map(|j| {
        serde_json::from_value(j).map_err(|e| format!("a built-in default does not parse: {e}"))
    })
    .transpose()
}

fn catalog_defaults(conn: &Connection) -> Result<Option<Value>, String> {
    let target = connectors_target(conn).map_err(|e| e.to_string())?;
    let name = |field: &str, id: &str| json!({ "id": id, "target": field, "source": { "field": "name" }, "ops": [ { "op": "trim" } ] });
    let mut rules = Vec::new();
    let mut tables = serde_json::Map::new();
    let mut vat_table = serde_json::Map::new();
    match conn.marketplace {
        Marketplace::Cdon => {
            rules.push(name(&target.title, "title"));
            rules.push(name(&target.description, "description"));
            for (market, currency) in &target.markets {
                let vat =
                    cdon_vat(*market).ok_or_else(|| format!("{market} is not a CDON market"))?;
                let m = market.as_str();
                vat_table.insert(m.to_owned(), json!(vat.to_string()));
                let step = if currency.as_str() == "EUR" {
                    "0.01"
                } else {
                    "1"
                };
                rules.push(json!({
                    "id": format!("price_{}", m.to_lowercase()),
                    "target": format!("price.{m}"),
                    "source": { "field": "price_net" },
                    "ops": [
                        { "op": "vat_add", "rate": { "table": m } },
                        { "op": "convert", "to": currency.as_str(), "from": { "field": "currency" } },
                        { "op": "round", "mode": "half_up", "step": step }
                    ]
                }));
                rules.push(json!({
                    "id": format!("vat_{}", m.to_lowercase()),
                    "target": format!("vat.{m}"),
                    "source": { "literal": { "decimal": vat.to_string() } }
                }));
            }
        }
        Marketplace::Celro => {
            rules.push(name("title", "title"));
            rules.push(name("description", "description"));
            rules.push(json!({
                "id": "price_ro",
                "target": "price.RO",
                "source": { "field": "price_gross" },
                "ops": [
                    { "op": "convert", "to": "RON", "from": { "field": "currency" } },
                    { "op": "round", "mode": "half_up", "step": "0.01" }
                ]
            }));
            for (id, table) in [("category", "celro_categories"), ("brand", "celro_brands")] {
                tables.insert(table.to_owned(), json!({ "entries": {} }));
                rules.push(json!({
                    "id": id, "target": id, "source": { "field": "sku" },
                    "ops": [ { "op": "lookup", "table": table } ]
                }));
            }
        }
        Marketplace::Noop => return Ok(None),
    }
    Ok(Some(json!({
        "schema": 1,
        "direction": Direction::ErpToMarketplace.as_str(),
        "rules": rules,
        "tables": tables,
        "vat_table": vat_table,
    })))
}

fn order_defaults(conn: &Connection) -> Option<Value> {
    if conn.erp == Erp::Noop {
        return None;
    }
    let copy = |f: &str| json!({ "id": f, "target": f, "source": { "field": f } });
    let (price, currency) = if conn.erp == Erp::Lexoffice {
        (
            json!({
                "id": "unit_price_gross", "target": "unit_price_gross",
                "source": { "field": "unit_price_gross" },
                "ops": [
                    { "op": "convert", "to": "EUR", "from": { "field": "currency" },
                      "date": { "field": "order_date" } },
                    { "op": "round", "mode": "half_up", "step": "0.01" }
                ]
            }),
            json!({ "id": "currency", "target": "currency", "source": { "literal": text("EUR") } }),
        )
    } else {
        (copy("unit_price_gross"), copy("currency"))
    };
    Some(json!({
        "schema": 1,
        "direction": Direction::MarketplaceToErp.as_str(),
        "rules": [copy("sku"), price, currency, copy("vat_percent")],
    }))
}
