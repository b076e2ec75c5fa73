//! Cel.ro wire formats: the `{error, tokenStatus, message}` envelope, PHP-style form bodies
//! (bracket nesting, JSON-in-field), server timestamps, and lenient readers of the payloads.
//!
//! Payload shapes are only partly documented (contract §2.5, §2.9.8: the wiki and the code
//! disagree on names, numbers arrive as strings or ints), so readers here work on
//! `serde_json::Value` and accept every spelling seen: `cantitate` or `products_quantity`,
//! `"12.50"` or `12.5`, a list or an object keyed by index.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc, Weekday};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::config::ServerTime;

// ---------------------------------------------------------------------------------------------
// Envelope

/// Cel.ro's answer envelope. `error == 0 && tokenStatus == 1` is success; the payload is in
/// `message` (object, array, string or number).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub error: Option<i64>,
    pub token_status: Option<i64>,
    pub message: Value,
}

impl Envelope {
    /// Reads an envelope; `Err` (with the parse problem) when the body is not JSON or is not an
    /// object with an `error` field.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(mut o) = v else {
            return Err("JSON but not an object".into());
        };
        if !o.contains_key("error") && !o.contains_key("tokenStatus") {
            return Err("JSON object without error/tokenStatus".into());
        }
        Ok(Self {
            error: o.get("error").and_then(int),
            token_status: o.get("tokenStatus").and_then(int),
            message: o.remove("message").unwrap_or(Value::Null),
        })
    }

    /// `message` as text: itself when a string, else compact JSON (at most 500 characters).
    pub fn text(&self) -> String {
        text_of(&self.message)
    }
}

/// A value as text for an error message.
pub fn text_of(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut out: String = s.chars().take(500).collect();
    if s.chars().count() > 500 {
        out.push('…');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Lenient scalars

/// An integer from a number or a numeric string.
pub fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// A decimal from a number or a string (`"12.50"`, `"12,50"`).
pub fn dec(v: &Value) -> Option<Decimal> {
    let s = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let t = s.trim();
            if t.contains(',') && !t.contains('.') {
                t.replace(',', ".")
            } else {
                t.replace(',', "")
            }
        }
        _ => return None,
    };
    s.parse::<Decimal>()
        .ok()
        .or_else(|| Decimal::from_scientific(&s).ok())
}

/// A string from a string or a number; blank is `None`.
pub fn string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The first of `keys` present (and not null) in `o`.
pub fn pick<'a>(o: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().filter_map(|k| o.get(*k)).find(|v| !v.is_null())
}

pub fn pick_str(o: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().filter_map(|k| o.get(*k)).find_map(string)
}

pub fn pick_dec(o: &Map<String, Value>, keys: &[&str]) -> Option<Decimal> {
    keys.iter().filter_map(|k| o.get(*k)).find_map(dec)
}

/// The items of a list, or of an object keyed by index (`{"0": …, "1": …}`, what PHP arrays
/// turn into), or of a JSON string holding either. Anything else has no items.
pub fn items(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Object(o) if !o.is_empty() && o.keys().all(|k| k.parse::<u64>().is_ok()) => {
            let mut kv: Vec<_> = o.iter().collect();
            kv.sort_by_key(|(k, _)| k.parse::<u64>().unwrap_or(u64::MAX));
            kv.into_iter().map(|(_, v)| v.clone()).collect()
        }
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(inner @ (Value::Array(_) | Value::Object(_))) => items(&inner),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// A field that may hold JSON as a string: parsed when it does, itself otherwise.
pub fn json_in_field(v: &Value) -> Value {
    match v {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| v.clone()),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Form bodies

/// Flattens a JSON value into PHP form pairs (`products[0][model]=X`), as `http_build_query`
/// does: booleans become `1`/`0`, nulls are left out.
pub fn php_flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Null => {}
        Value::Bool(b) => out.push((prefix.to_owned(), if *b { "1" } else { "0" }.to_owned())),
        Value::Number(n) => out.push((prefix.to_owned(), n.to_string())),
        Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                php_flatten(&format!("{prefix}[{i}]"), x, out);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}[{k}]")
                };
                php_flatten(&key, x, out);
            }
        }
    }
}

/// Decodes `application/x-www-form-urlencoded` text into pairs (`+` is a space).
pub fn form_decode(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Percent-decoding with `+` as space; invalid escapes are kept verbatim.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match b.get(i + 1..i + 3) {
                Some(h) if h.iter().all(u8::is_ascii_hexdigit) => {
                    let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                    out.push(hex(h[0]) * 16 + hex(h[1]));
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Nests PHP-style keys into a JSON object: `a[b][0]=x` → `{"a":{"b":{"0":"x"}}}`; `a[]=x`
/// appends. Index keys stay object keys (read them with [`items`]).
pub fn php_nest(pairs: &[(String, String)]) -> Map<String, Value> {
    let mut root = Map::new();
    for (k, v) in pairs {
        let segs = key_segments(k);
        if segs.is_empty() {
            continue;
        }
        insert(&mut root, &segs, Value::String(v.clone()));
    }
    root
}

fn key_segments(k: &str) -> Vec<String> {
    let Some(open) = k.find('[') else {
        return vec![k.to_owned()];
    };
    let mut segs = vec![k[..open].to_owned()];
    let mut rest = &k[open..];
    while let Some(stripped) = rest.strip_prefix('[') {
        match stripped.find(']') {
            Some(close) => {
                segs.push(stripped[..close].to_owned());
                rest = &stripped[close + 1..];
            }
            None => {
                // PHP keeps a malformed key as one name.
                return vec![k.to_owned()];
            }
        }
    }
    segs
}

fn insert(node: &mut Map<String, Value>, segs: &[String], v: Value) {
    let key = if segs[0].is_empty() {
        node.len().to_string()
    } else {
        segs[0].clone()
    };
    if segs.len() == 1 {
        node.insert(key, v);
        return;
    }
    let child = node.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !child.is_object() {
        *child = Value::Object(Map::new());
    }
    if let Value::Object(m) = child {
        insert(m, &segs[1..], v);
    }
}

// ---------------------------------------------------------------------------------------------
// Time

/// Romania's UTC offset at `utc`, in seconds: +3 h from the last Sunday of March 01:00 UTC to
/// the last Sunday of October 01:00 UTC (the EU rule), +2 h otherwise.
pub fn bucharest_offset_secs(utc: DateTime<Utc>) -> i64 {
    let y = utc.year();
    let last_sunday = |month: u32| -> DateTime<Utc> {
        let mut d = NaiveDate::from_ymd_opt(y, month, 31).unwrap_or_default();
        while d.weekday() != Weekday::Sun {
            d = d.pred_opt().unwrap_or(d);
        }
        Utc.from_utc_datetime(&d.and_hms_opt(1, 0, 0).unwrap_or_default())
    };
    if utc >= last_sunday(3) && utc < last_sunday(10) {
        3 * 3600
    } else {
        2 * 3600
    }
}

/// `YYYY-MM-DD HH:MM:SS` in the server's zone.
pub fn to_server_time(utc: DateTime<Utc>, zone: ServerTime) -> String {
    let off = match zone {
        ServerTime::Utc => 0,
        ServerTime::EuropeBucharest => bucharest_offset_secs(utc),
    };
    (utc + chrono::Duration::seconds(off))
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Reads a server timestamp: `YYYY-MM-DD HH:MM:SS`, `…HH:MM`, `YYYY-MM-DD` (midnight), or
/// RFC 3339 (which carries its own zone).
pub fn from_server_time(s: &str, zone: ServerTime) -> Option<DateTime<Utc>> {
    let t = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S"))
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M"))
        .or_else(|_| {
            NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
        })
        .ok()?;
    Some(local_to_utc(naive, zone))
}

fn local_to_utc(local: NaiveDateTime, zone: ServerTime) -> DateTime<Utc> {
    match zone {
        ServerTime::Utc => Utc.from_utc_datetime(&local),
        ServerTime::EuropeBucharest => {
            // Try summer time first; keep it when the instant it gives is in summer time.
            let summer = Utc.from_utc_datetime(&local) - chrono::Duration::hours(3);
            if bucharest_offset_secs(summer) == 3 * 3600 {
                summer
            } else {
                Utc.from_utc_datetime(&local) - chrono::Duration::hours(2)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Payloads

/// The pseudo product of an order that carries the shipping fee (R4).
pub const SHIPPING_MODEL: &str = "taxa_transport";

/// One order line as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct WireLine {
    pub line_id: Option<String>,
    pub model: String,
    pub name: String,
    pub quantity: Option<Decimal>,
    pub unit_price: Option<Decimal>,
    pub vat_percent: Option<Decimal>,
}

/// One order as sent (`orders/getOrders` list items and `orders/getOrder`).
#[derive(Debug, Clone, PartialEq)]
pub struct WireOrder {
    pub id: String,
    /// `status`: a numeric code (or, leniently, a name).
    pub status: String,
    pub placed: Option<String>,
    pub last_changed: Option<String>,
    pub total: Option<Decimal>,
    pub lines: Vec<WireLine>,
    pub customer: Map<String, Value>,
    pub delivery: Map<String, Value>,
    pub billing: Map<String, Value>,
    pub awbs: Vec<String>,
    /// The original order of a storno (minus) order, where the payload names it.
    pub storno_of: Option<String>,
    pub cancel_reason: Option<String>,
}

fn object(v: Option<&Value>) -> Map<String, Value> {
    match v.map(json_in_field) {
        Some(Value::Object(o)) => o,
        _ => Map::new(),
    }
}

/// Reads one order; `Err` names what is missing.
pub fn parse_order(v: &Value) -> Result<WireOrder, String> {
    let Value::Object(o) = v else {
        return Err(format!("order is not an object: {}", text_of(v)));
    };
    let id = pick_str(o, &["id_comanda", "orders_id", "order_id", "id", "cmd"])
        .ok_or_else(|| format!("order without id_comanda: {}", text_of(v)))?;
    let status = pick(o, &["status", "orders_status", "status_id", "id_status"])
        .and_then(string)
        .unwrap_or_default();
    let placed = match (
        pick_str(o, &["data", "date_purchased", "data_comanda"]),
        pick_str(o, &["ora", "time"]),
    ) {
        (Some(d), Some(t)) if !d.contains(':') => Some(format!("{d} {t}")),
        (Some(d), _) => Some(d),
        (None, _) => None,
    };
    let last_changed = pick_str(
        o,
        &[
            "last_changed",
            "data_modificare",
            "last_modified",
            "date_modified",
        ],
    );
    let lines = items(pick(o, &["products", "produse"]).unwrap_or(&Value::Null))
        .iter()
        .map(parse_line)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("order {id}: {e}"))?;
    let awbs = items(pick(o, &["awbs", "awb_list"]).unwrap_or(&Value::Null))
        .iter()
        .filter_map(|a| match a {
            Value::Object(m) => pick_str(m, &["awb", "awb_number", "numar_awb", "nr_awb"]),
            other => string(other),
        })
        .chain(pick_str(o, &["awb"]))
        .collect();
    Ok(WireOrder {
        status,
        placed,
        last_changed,
        total: pick_dec(
            o,
            &["valoarecomanda", "valoare_comanda", "total", "order_total"],
        ),
        lines,
        customer: object(pick(o, &["customers", "customer", "client"])),
        delivery: object(pick(o, &["delivery_info", "livrare", "shipping_info"])),
        billing: object(pick(o, &["billing_info", "facturare"])),
        awbs,
        storno_of: pick_str(
            o,
            &[
                "storno_for",
                "id_comanda_stornata",
                "comanda_originala",
                "original_order",
            ],
        ),
        cancel_reason: pick_str(o, &["motiv_anulare", "cancel_reason", "motiv"]),
        id,
    })
}

fn parse_line(v: &Value) -> Result<WireLine, String> {
    let Value::Object(o) = v else {
        return Err(format!("order line is not an object: {}", text_of(v)));
    };
    let model = pick_str(o, &["products_model", "model", "product_model"])
        .ok_or_else(|| format!("order line without products_model: {}", text_of(v)))?;
    Ok(WireLine {
        line_id: pick_str(o, &["id_prod_com", "orders_products_id", "id"]),
        name: pick_str(o, &["product_name", "products_name", "name"]).unwrap_or_default(),
        quantity: pick_dec(o, &["cantitate", "products_quantity", "quantity", "qty"]),
        unit_price: pick_dec(o, &["products_price", "pret", "price", "final_price"]),
        vat_percent: pick_dec(o, &["tva", "products_tax", "vat"]),
        model,
    })
}

/// A page of `orders/getOrders`: grouped by status (`{"<status>": {list, moreavailable}}`) or
/// not (`{list, moreavailable}` or a bare list). Grouped pages are flattened.
#[derive(Debug, Clone, PartialEq)]
pub struct OrdersPage {
    pub orders: Vec<Value>,
    pub more: bool,
}

pub fn parse_orders_page(msg: &Value) -> Result<OrdersPage, String> {
    let list_and_more = |o: &Map<String, Value>| -> Option<(Vec<Value>, bool)> {
        let list = o.get("list")?;
        let more = o.get("moreavailable").and_then(int).unwrap_or(0) != 0;
        Some((items(list), more))
    };
    match msg {
        Value::Array(a) => Ok(OrdersPage {
            orders: a.clone(),
            more: false,
        }),
        Value::Null => Ok(OrdersPage {
            orders: vec![],
            more: false,
        }),
        Value::String(s) if s.trim().is_empty() => Ok(OrdersPage {
            orders: vec![],
            more: false,
        }),
        Value::Object(o) => {
            if let Some((orders, more)) = list_and_more(o) {
                return Ok(OrdersPage { orders, more });
            }
            let mut page = OrdersPage {
                orders: vec![],
                more: false,
            };
            for (group, g) in o {
                match g {
                    Value::Object(go) => match list_and_more(go) {
                        Some((orders, more)) => {
                            page.orders.extend(orders);
                            page.more |= more;
                        }
                        None => {
                            return Err(format!("status group {group:?} has no list"));
                        }
                    },
                    Value::Array(a) => page.orders.extend(a.iter().cloned()),
                    other => {
                        return Err(format!(
                            "status group {group:?} is not an object: {}",
                            text_of(other)
                        ));
                    }
                }
            }
            Ok(page)
        }
        other => Err(format!("orders page is not a list: {}", text_of(other))),
    }
}

/// `orders/getOrderStatusList`: `[{id, name}]` under any usual spelling, or `{"<code>": "<name>"}`.
pub fn parse_status_list(msg: &Value) -> Vec<(String, String)> {
    const IDS: &[&str] = &[
        "id",
        "status_id",
        "id_status",
        "orders_status_id",
        "cod",
        "code",
    ];
    const NAMES: &[&str] = &[
        "name",
        "nume",
        "denumire",
        "orders_status_name",
        "status_name",
        "status",
        "text",
    ];
    let from_item = |v: &Value| -> Option<(String, String)> {
        let o = v.as_object()?;
        Some((pick_str(o, IDS)?, pick_str(o, NAMES)?))
    };
    match msg {
        Value::Object(o) if o.values().all(|v| v.is_string()) => o
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), string(v)?)))
            .collect(),
        other => items(other).iter().filter_map(from_item).collect(),
    }
}

/// Approval state of an imported product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportState {
    Approved,
    Waiting,
    Rejected(String),
    /// Cel.ro does not know the model (yet).
    Unknown,
}

impl ImportState {
    fn from_text(status: &str, reason: Option<String>) -> Self {
        let s = super::config::fold_name(status);
        if ["reject", "respins", "refuz"].iter().any(|k| s.contains(k)) {
            ImportState::Rejected(reason.unwrap_or_else(|| status.to_owned()))
        } else if [
            "not_found",
            "not found",
            "inexistent",
            "nu exista",
            "unknown",
        ]
        .iter()
        .any(|k| s.contains(k))
        {
            ImportState::Unknown
        } else if ["wait", "astept", "pending", "moderare", "verificare"]
            .iter()
            .any(|k| s.contains(k))
        {
            ImportState::Waiting
        } else if ["approv", "aprob", "activ", "ok", "import"]
            .iter()
            .any(|k| s.contains(k))
        {
            ImportState::Approved
        } else {
            ImportState::Unknown
        }
    }
}

/// `import/productImportStatus`: a list of `{products_model, status, motiv}` or an object keyed
/// by model (value: a status text or such an object).
pub fn parse_import_status(msg: &Value) -> Vec<(String, ImportState)> {
    const REASON: &[&str] = &["motiv", "reason", "mesaj", "message", "observatii"];
    let from_obj =
        |model: Option<String>, o: &Map<String, Value>| -> Option<(String, ImportState)> {
            let model = model.or_else(|| pick_str(o, &["products_model", "model"]))?;
            let status = pick_str(o, &["status", "stare", "state"]).unwrap_or_default();
            Some((model, ImportState::from_text(&status, pick_str(o, REASON))))
        };
    match msg {
        Value::Object(o) if !o.keys().all(|k| k.parse::<u64>().is_ok()) => o
            .iter()
            .filter_map(|(k, v)| match v {
                Value::Object(m) => from_obj(Some(k.clone()), m),
                other => Some((k.clone(), ImportState::from_text(&string(other)?, None))),
            })
            .collect(),
        other => items(other)
            .iter()
            .filter_map(|v| from_obj(None, v.as_object()?))
            .collect(),
    }
}

/// Per-item outcome lists (`updated`, `notUpdated`, `exceptions`, `error`, as saveProducts
/// answers; `inserted`/`errors` as the fake's importer does). Entries are models, or objects
/// with a model and a message, or `{model: message}` maps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemLists {
    pub ok: Vec<String>,
    /// Refused: `(model, message, retryable)`.
    pub failed: Vec<(String, String, bool)>,
    /// Whether the payload had any list at all.
    pub recognized: bool,
}

impl ItemLists {
    pub fn parse(msg: &Value) -> Self {
        let mut out = ItemLists::default();
        let Value::Object(o) = msg else {
            return out;
        };
        let entries = |v: &Value| -> Vec<(String, Option<String>)> {
            match v {
                Value::Object(m) if !m.keys().all(|k| k.parse::<u64>().is_ok()) => m
                    .iter()
                    .map(|(k, v)| (k.clone(), string(v).or_else(|| Some(text_of(v)))))
                    .collect(),
                other => items(other)
                    .iter()
                    .filter_map(|e| match e {
                        Value::Object(m) => Some((
                            pick_str(m, &["products_model", "model"])?,
                            pick_str(m, &["message", "mesaj", "motiv", "error", "reason"]),
                        )),
                        scalar => Some((string(scalar)?, None)),
                    })
                    .collect(),
            }
        };
        for (key, v) in o {
            let (kind, retryable) = match key.as_str() {
                "updated" | "inserted" | "success" | "ok" => ("ok", false),
                "notUpdated" | "notInserted" | "error" | "errors" | "rejected" | "failed" => {
                    ("failed", false)
                }
                "exceptions" => ("failed", true),
                _ => continue,
            };
            out.recognized = true;
            for (model, msg) in entries(v) {
                if kind == "ok" {
                    out.ok.push(model);
                } else {
                    let m = msg.unwrap_or_else(|| {
                        format!("Cel.ro listed this product under {key:?} without a message")
                    });
                    out.failed.push((model, m, retryable));
                }
            }
        }
        out
    }
}

/// An AWB on an order (`orders/getOrderAwbs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireAwb {
    pub number: String,
    pub courier: String,
}

pub fn parse_awbs(msg: &Value) -> Vec<WireAwb> {
    items(msg)
        .iter()
        .filter_map(|v| match v {
            Value::Object(o) => Some(WireAwb {
                number: pick_str(
                    o,
                    &["awb", "awb_number", "numar_awb", "nr_awb", "awbNumber"],
                )?,
                courier: pick_str(o, &["courier", "curier", "courier_name", "nume_curier"])
                    .unwrap_or_default(),
            }),
            other => Some(WireAwb {
                number: string(other)?,
                courier: String::new(),
            }),
        })
        .collect()
}

/// An invoice on an order (`orders/getOrderInvoices`): series and number.
pub fn parse_invoices(msg: &Value) -> Vec<(String, String)> {
    items(msg)
        .iter()
        .filter_map(|v| {
            let o = v.as_object()?;
            Some((
                pick_str(o, &["series", "serie"])?,
                pick_str(o, &["number", "nr_fact", "numar"])?,
            ))
        })
        .collect()
}

/// A return request (`email/GetReturnRequests`).
#[derive(Debug, Clone, PartialEq)]
pub struct WireReturn {
    pub id: String,
    pub order_id: String,
    pub model: Option<String>,
    pub quantity: Option<Decimal>,
    pub reason: Option<String>,
    pub at: Option<String>,
}

/// Return requests and whether the payload said more are available (`None`: it did not say).
pub fn parse_return_requests(msg: &Value) -> (Vec<WireReturn>, Option<bool>) {
    let (list, more) = match msg {
        Value::Object(o) if o.contains_key("list") => (
            o.get("list").cloned().unwrap_or(Value::Null),
            o.get("moreavailable").and_then(int).map(|m| m != 0),
        ),
        other => (other.clone(), None),
    };
    let out = items(&list)
        .iter()
        .filter_map(|v| {
            let o = v.as_object()?;
            Some(WireReturn {
                id: pick_str(o, &["uniqueID", "id", "id_retur", "unique_id"])?,
                order_id: pick_str(o, &["orders_id", "order_id", "id_comanda", "cmd"])?,
                model: pick_str(o, &["products_model", "product_model", "model"]),
                quantity: pick_dec(o, &["cantitate", "quantity", "products_quantity"]),
                reason: pick_str(o, &["motiv", "reason", "mesaj", "message"]),
                at: pick_str(o, &["data", "date", "created_at", "data_adaugare"]),
            })
        })
        .collect();
    (out, more)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;
    use serde_json::json;

    #[test]
    fn envelope_reads_lenient_codes_and_refuses_non_envelopes() {
        let e = Envelope::parse(br#"{"error":"0","tokenStatus":1,"message":{"a":1}}"#).unwrap();
        assert_eq!((e.error, e.token_status), (Some(0), Some(1)));
        assert_eq!(e.message, json!({"a":1}));
        assert!(Envelope::parse(b"<html>").unwrap_err().contains("not JSON"));
        assert!(Envelope::parse(b"[1,2]").is_err());
        assert!(Envelope::parse(br#"{"x":1}"#).is_err());
        let long =
            Envelope::parse(format!(r#"{{"error":1,"message":"{}"}}"#, "a".repeat(900)).as_bytes())
                .unwrap();
        assert_eq!(long.text().chars().count(), 501);
    }

    #[test]
    fn scalars_are_read_from_numbers_and_strings() {
        assert_eq!(int(&json!("42")), Some(42));
        assert_eq!(int(&json!(7.0)), Some(7));
        assert_eq!(dec(&json!("12,50")), Some(dec!(12.50)));
        assert_eq!(dec(&json!("1,234.5")), Some(dec!(1234.5)));
        assert_eq!(dec(&json!(19)), Some(dec!(19)));
        assert_eq!(dec(&json!("abc")), None);
        assert_eq!(string(&json!(" ")), None);
        assert_eq!(string(&json!(123)), Some("123".into()));
    }

    #[test]
    fn php_forms_round_trip_through_flatten_encode_decode_and_nest() {
        let v = json!({"products": [{"model": "A B", "stoc": 3, "image": [{"url": "u&v"}]}], "x": true});
        let mut pairs = Vec::new();
        php_flatten("", &v, &mut pairs);
        assert!(pairs.contains(&("products[0][model]".into(), "A B".into())));
        assert!(pairs.contains(&("x".into(), "1".into())));
        // Encode as a browser would, then decode.
        let encoded: String = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let decoded = form_decode(&encoded);
        assert_eq!(decoded, pairs);
        let nested = php_nest(&decoded);
        let products = items(&nested["products"]);
        assert_eq!(products[0]["model"], json!("A B"));
        assert_eq!(items(&products[0]["image"])[0]["url"], json!("u&v"));
        let appended = php_nest(&[("a[]".into(), "1".into()), ("a[]".into(), "2".into())]);
        assert_eq!(items(&appended["a"]), vec![json!("1"), json!("2")]);
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz+%41"), "%zz A");
    }

    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    #[test]
    fn bucharest_time_follows_the_eu_rule() {
        let winter = Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0).unwrap();
        let summer = Utc.with_ymd_and_hms(2026, 7, 15, 10, 0, 0).unwrap();
        assert_eq!(
            to_server_time(winter, ServerTime::EuropeBucharest),
            "2026-01-15 12:00:00"
        );
        assert_eq!(
            to_server_time(summer, ServerTime::EuropeBucharest),
            "2026-07-15 13:00:00"
        );
        assert_eq!(
            to_server_time(summer, ServerTime::Utc),
            "2026-07-15 10:00:00"
        );
        // 2026: DST from 29 March 01:00 UTC to 25 October 01:00 UTC.
        let before = Utc.with_ymd_and_hms(2026, 3, 29, 0, 59, 59).unwrap();
        let after = Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap();
        assert_eq!(bucharest_offset_secs(before), 7200);
        assert_eq!(bucharest_offset_secs(after), 10800);
        for t in [winter, summer, before, after] {
            let s = to_server_time(t, ServerTime::EuropeBucharest);
            assert_eq!(
                from_server_time(&s, ServerTime::EuropeBucharest),
                Some(t),
                "{s}"
            );
        }
        assert_eq!(
            from_server_time("2026-01-15", ServerTime::Utc),
            Some(Utc.with_ymd_and_hms(2026, 1, 15, 0, 0, 0).unwrap())
        );
        assert_eq!(from_server_time("yesterday", ServerTime::Utc), None);
    }

    #[test]
    fn orders_parse_with_field_name_drift() {
        let o = parse_order(&json!({
            "id_comanda": "700001", "data": "2026-01-05", "ora": "10:22:01", "status": 1,
            "valoarecomanda": "215.99",
            "products": {"0": {"id_prod_com": 11, "products_model": "A", "cantitate": "2", "products_price": "100.00", "tva": "21"},
                         "1": {"id_prod_com": 12, "model": "taxa_transport", "products_quantity": 1, "products_price": 15.99}},
            "delivery_info": "{\"nume\":\"Ion\"}",
            "awbs": [{"awb": "X1"}]
        }))
        .unwrap();
        assert_eq!(o.id, "700001");
        assert_eq!(o.placed.as_deref(), Some("2026-01-05 10:22:01"));
        assert_eq!(o.lines[0].quantity, Some(dec!(2)));
        assert_eq!(o.lines[1].quantity, Some(dec!(1)));
        assert_eq!(o.lines[1].model, SHIPPING_MODEL);
        assert_eq!(o.delivery["nume"], json!("Ion"));
        assert_eq!(o.awbs, vec!["X1".to_owned()]);
        assert!(
            parse_order(&json!({"status": 1}))
                .unwrap_err()
                .contains("id_comanda")
        );
        let e = parse_order(&json!({"id_comanda": 5, "products": [{"cantitate": 1}]})).unwrap_err();
        assert!(e.contains("order 5") && e.contains("products_model"), "{e}");
    }

    #[test]
    fn orders_pages_are_flattened_when_grouped() {
        let grouped = json!({
            "1": {"limit": 2, "start": 0, "moreavailable": 1, "list": [{"id_comanda": 1}, {"id_comanda": 2}]},
            "7": {"limit": 2, "start": 0, "moreavailable": 0, "list": [{"id_comanda": 3}]}
        });
        let p = parse_orders_page(&grouped).unwrap();
        assert_eq!((p.orders.len(), p.more), (3, true));
        let flat =
            json!({"limit": 2, "start": 0, "moreavailable": "0", "list": [{"id_comanda": 1}]});
        let p = parse_orders_page(&flat).unwrap();
        assert_eq!((p.orders.len(), p.more), (1, false));
        assert_eq!(parse_orders_page(&json!([])).unwrap().orders.len(), 0);
        assert!(parse_orders_page(&json!({"1": 5})).is_err());
    }

    #[test]
    fn status_lists_import_states_and_item_lists_are_read_leniently() {
        assert_eq!(
            parse_status_list(
                &json!([{"id": "1", "nume": "Noua"}, {"status_id": 7, "name": "Anulata"}])
            ),
            vec![("1".into(), "Noua".into()), ("7".into(), "Anulata".into())]
        );
        assert_eq!(
            parse_status_list(&json!({"1": "Noua"})),
            vec![("1".into(), "Noua".into())]
        );
        let st = parse_import_status(&json!([
            {"products_model": "A", "status": "approved"},
            {"products_model": "B", "status": "waiting"},
            {"products_model": "C", "status": "rejected", "motiv": "Pret prea mare"},
            {"products_model": "D", "status": "not_found"}
        ]));
        assert_eq!(st[0].1, ImportState::Approved);
        assert_eq!(st[1].1, ImportState::Waiting);
        assert_eq!(st[2].1, ImportState::Rejected("Pret prea mare".into()));
        assert_eq!(st[3].1, ImportState::Unknown);
        let keyed = parse_import_status(
            &json!({"A": "In asteptare", "B": {"status": "Respins", "motiv": "x"}}),
        );
        assert!(keyed.contains(&("A".into(), ImportState::Waiting)));
        assert!(keyed.contains(&("B".into(), ImportState::Rejected("x".into()))));
        let l = ItemLists::parse(&json!({
            "updated": ["A"], "notUpdated": [{"products_model": "B", "message": "nu"}],
            "exceptions": ["C"], "error": {"D": "eroare"}
        }));
        assert!(l.recognized);
        assert_eq!(l.ok, vec!["A".to_owned()]);
        assert!(l.failed.contains(&("B".into(), "nu".into(), false)));
        assert!(l.failed.iter().any(|(m, _, r)| m == "C" && *r));
        assert!(l.failed.contains(&("D".into(), "eroare".into(), false)));
        assert!(!ItemLists::parse(&json!("ok")).recognized);
    }

    #[test]
    fn awbs_invoices_and_returns_parse() {
        assert_eq!(
            parse_awbs(&json!([{"awb": "A1", "courier": "DHL"}, "B2"])),
            vec![
                WireAwb {
                    number: "A1".into(),
                    courier: "DHL".into()
                },
                WireAwb {
                    number: "B2".into(),
                    courier: String::new()
                }
            ]
        );
        assert_eq!(
            parse_invoices(&json!([{"serie": "MGZ", "nr_fact": 12}])),
            vec![("MGZ".into(), "12".into())]
        );
        let (r, more) = parse_return_requests(
            &json!([{"uniqueID": "R1", "orders_id": 5, "products_model": "A", "cantitate": "1"}]),
        );
        assert_eq!((r.len(), more), (1, None));
        assert_eq!(r[0].order_id, "5");
    }
}
