//! SmartBill's JSON, as the contract (§1, S1/S2) describes it. Amounts go out as JSON numbers
//! (SmartBill's examples: `"price":10`), never strings; they come back as numbers or strings
//! (both are read). Document numbers are zero-padded **strings** (`"0023"`).

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Serializes a [`Decimal`] as a JSON number (amounts have at most 4 decimals, exact in `f64`
/// at the shortest representation).
pub fn num<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    match d.normalize().to_i64() {
        Some(i) if d.fract().is_zero() => s.serialize_i64(i),
        _ => s.serialize_f64(d.to_f64().unwrap_or(0.0)),
    }
}

/// [`num`] for an optional amount.
pub fn opt_num<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => num(d, s),
        None => s.serialize_none(),
    }
}

/// Reads a string or a number (or null) as a string (`number: "0023"` or `23`).
pub fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => String::new(),
        Value::String(s) => s,
        other => other.to_string(),
    })
}

/// Reads a number, a numeric string or null (→ 0) as a [`Decimal`].
pub fn lenient_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(Decimal::ZERO),
        Value::String(s) if s.trim().is_empty() => Ok(Decimal::ZERO),
        Value::String(s) => s.trim().parse().map_err(D::Error::custom),
        Value::Number(n) => n.to_string().parse().or_else(|_| {
            n.as_f64()
                .and_then(Decimal::from_f64_retain)
                .ok_or_else(|| D::Error::custom(format!("{n} is not a decimal")))
        }),
        other => Err(D::Error::custom(format!("expected a number, got {other}"))),
    }
}

/// Reads `true`/`false`, `1`/`0` or `"true"`/`"1"` (S1: booleans may be either).
pub fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => matches!(s.trim(), "true" | "1" | "TRUE" | "True"),
        _ => false,
    })
}

/// The fields every answer carries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Status {
    pub error_text: String,
    pub message: String,
    #[serde(deserialize_with = "lenient_string")]
    pub number: String,
}

/// `GET /tax` → `{taxes:[{name, percentage}]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaxesResponse {
    pub error_text: String,
    pub taxes: Vec<Tax>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tax {
    pub name: String,
    #[serde(deserialize_with = "lenient_decimal", serialize_with = "num")]
    pub percentage: Decimal,
}

/// `GET /series?type=` → `{list:[{name, nextNumber:"0117", type}]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SeriesResponse {
    pub error_text: String,
    pub list: Vec<Series>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    pub name: String,
    #[serde(deserialize_with = "lenient_string")]
    pub next_number: String,
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// `GET /stocks` → `{list:[{warehouse:{warehouseName, warehouseType}, products:[…]}]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StocksResponse {
    pub error_text: String,
    pub list: Vec<WarehouseStock>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WarehouseStock {
    pub warehouse: Warehouse,
    #[serde(default)]
    pub products: Vec<StockProduct>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Warehouse {
    pub warehouse_name: String,
    #[serde(default)]
    pub warehouse_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockProduct {
    /// Only present when the company uses product codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_code: Option<String>,
    #[serde(default)]
    pub product_name: String,
    #[serde(default)]
    pub measuring_unit: String,
    #[serde(deserialize_with = "lenient_decimal", serialize_with = "num")]
    pub quantity: Decimal,
}

/// `POST /estimate` (and `POST /invoice`): the document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    pub company_vat_code: String,
    pub series_name: String,
    pub is_draft: bool,
    pub issue_date: String,
    pub currency: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_num"
    )]
    pub exchange_rate: Option<Decimal>,
    pub language: String,
    pub precision: u8,
    /// Printed on the document.
    pub mentions: String,
    /// Internal, not printed.
    pub observations: String,
    pub use_stock: bool,
    pub client: Client,
    pub products: Vec<Product>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Client {
    pub name: String,
    /// Company CIF; for individuals the CNP or `-` (ANAF accepts `-`).
    pub vat_code: String,
    pub is_tax_payer: bool,
    pub address: String,
    pub city: String,
    pub county: String,
    pub country: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    pub save_to_db: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub measuring_unit_name: String,
    pub currency: String,
    #[serde(serialize_with = "num")]
    pub quantity: Decimal,
    #[serde(serialize_with = "num")]
    pub price: Decimal,
    pub is_tax_included: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_num"
    )]
    pub tax_percentage: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse_name: Option<String>,
    pub is_service: bool,
    pub save_to_db: bool,
}

/// The answer of `POST /estimate` and `POST /invoice`: `{errorText, message, number, series,
/// url}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Created {
    pub error_text: String,
    pub message: String,
    #[serde(deserialize_with = "lenient_string")]
    pub number: String,
    pub series: String,
    pub url: String,
}

/// `GET /estimate/invoices` → `{areInvoicesCreated, invoices:[{series, number}]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EstimateInvoices {
    pub error_text: String,
    pub message: String,
    #[serde(deserialize_with = "lenient_bool")]
    pub are_invoices_created: bool,
    pub invoices: Vec<DocRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocRef {
    pub series: String,
    #[serde(deserialize_with = "lenient_string")]
    pub number: String,
}

/// `GET /invoice/paymentstatus`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PaymentStatus {
    pub error_text: String,
    pub message: String,
    #[serde(deserialize_with = "lenient_string")]
    pub number: String,
    #[serde(deserialize_with = "lenient_decimal", serialize_with = "num")]
    pub invoice_total_amount: Decimal,
    #[serde(deserialize_with = "lenient_decimal", serialize_with = "num")]
    pub paid_amount: Decimal,
    #[serde(deserialize_with = "lenient_decimal", serialize_with = "num")]
    pub unpaid_amount: Decimal,
    #[serde(deserialize_with = "lenient_bool")]
    pub paid: bool,
}

/// `POST /invoice/reverse` (storno). **The client never sends it**: storno is the merchant's;
/// the fake implements it for the merchant's side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReverseRequest {
    pub company_vat_code: String,
    pub series_name: String,
    pub number: String,
    pub issue_date: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_go_out_as_numbers_and_come_back_from_either() {
        let p = Product {
            name: "Cana".into(),
            code: Some("MUG-1".into()),
            measuring_unit_name: "buc".into(),
            currency: "RON".into(),
            quantity: Decimal::new(2, 0),
            price: Decimal::new(5950, 2),
            is_tax_included: true,
            tax_name: Some("Normala".into()),
            tax_percentage: Some(Decimal::new(21, 0)),
            warehouse_name: None,
            is_service: false,
            save_to_db: false,
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["quantity"], json!(2));
        assert_eq!(v["price"], json!(59.5));
        assert_eq!(v["taxPercentage"], json!(21));
        assert_eq!(v["measuringUnitName"], json!("buc"));
        assert!(v.get("warehouseName").is_none());
        let s: StocksResponse = serde_json::from_value(json!({"errorText":"","message":"","list":[
            {"warehouse":{"warehouseName":"GestiuneMagazin1","warehouseType":"en detail"},
             "products":[{"productCode":"IT001","productName":"Revista IT","measuringUnit":"buc","quantity":100},
                         {"productName":"Fara cod","measuringUnit":"buc","quantity":"2.5"}]}]}))
        .unwrap();
        assert_eq!(s.list[0].products[0].quantity, Decimal::from(100));
        assert_eq!(s.list[0].products[1].quantity, Decimal::new(25, 1));
        assert_eq!(s.list[0].products[1].product_code, None);
        let c: Created =
            serde_json::from_value(json!({"errorText":"","number":23,"series":"PRO"})).unwrap();
        assert_eq!(c.number, "23");
        let e: EstimateInvoices = serde_json::from_value(
            json!({"areInvoicesCreated":1,"invoices":[{"series":"FCT","number":"0007"}]}),
        )
        .unwrap();
        assert!(e.are_invoices_created);
        let t: TaxesResponse = serde_json::from_value(json!({"taxes":[{"name":"Normala","percentage":21},{"name":"Redusa","percentage":"11"}]})).unwrap();
        assert_eq!(t.taxes[1].percentage, Decimal::from(11));
    }
}
