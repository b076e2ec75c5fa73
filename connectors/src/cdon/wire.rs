//! Wire types of the CDON Merchants API, as the contract (`marketplaces-cdon-celro.md` §1.2)
//! shows them. Both the client and the fake use them.
//!
//! Reads are lenient where CDON's own examples disagree: ids may be strings or numbers, amounts
//! numbers or strings, order states may carry a space (`NOT FULFILLED`), timestamps are kept
//! verbatim here and parsed by [`parse_timestamp`] (`YYYY-MM-DD HH:MM:SS`, UTC).

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// CDON's timestamp format (no zone; the docs say UTC).
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

pub fn format_timestamp(t: DateTime<Utc>) -> String {
    t.format(TIMESTAMP_FORMAT).to_string()
}

/// Parses `YYYY-MM-DD HH:MM:SS` (UTC), also with fractions, a `T`, or an RFC 3339 zone.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    None
}

pub use crate::wire::{decimal_number, opt_decimal_number, to_decimal};

/// An id CDON may send as a string or a number; always held as a string.
fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or number id, got {other}"
        ))),
    }
}

fn opt_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or number id, got {other}"
        ))),
    }
}

/// `{language, value}`: one language's title or description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LangValue {
    pub language: String,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArticleStatus {
    #[serde(rename = "for sale")]
    ForSale,
    #[serde(rename = "paused")]
    Paused,
}

/// `{market, value:{amount_including_vat, currency, vat_rate}}`; `vat_rate` is a fraction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceEntry {
    pub market: String,
    pub value: PriceValue,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceValue {
    #[serde(with = "decimal_number")]
    pub amount_including_vat: Decimal,
    pub currency: String,
    #[serde(
        default,
        with = "opt_decimal_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub vat_rate: Option<Decimal>,
}

/// `{market, min, max}` delivery days (1-9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingTime {
    pub market: String,
    pub min: u8,
    pub max: u8,
}

/// The fields of an article that `update_article` may carry (everything but `sku`, `price`
/// and `quantity`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArticleBody {
    pub status: ArticleStatus,
    pub main_image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    pub markets: Vec<String>,
    pub title: Vec<LangValue>,
    pub description: Vec<LangValue>,
    pub shipping_time: Vec<ShippingTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtin: Option<String>,
}

/// An article as `POST /v2/articles/bulk` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Article {
    pub sku: String,
    pub quantity: u32,
    pub price: Vec<PriceEntry>,
    #[serde(flatten)]
    pub body: ArticleBody,
}

/// A1 request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BulkCreateRequest {
    pub articles: Vec<Article>,
}

/// A per-field problem inside `failed[].errors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub message: String,
    #[serde(default)]
    pub field: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedItem {
    #[serde(default)]
    pub sku: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default)]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedItem {
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub id: Option<String>,
    pub sku: String,
}

/// A1 response (202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkCreateResponse {
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub batch_id: Option<String>,
    #[serde(default)]
    pub success: Vec<CreatedItem>,
    #[serde(default)]
    pub failed: Vec<FailedItem>,
}

/// The A2 action names.
pub mod action {
    pub const UPDATE_ARTICLE: &str = "update_article";
    pub const UPDATE_PRICE: &str = "update_article_price";
    pub const UPDATE_QUANTITY: &str = "update_article_quantity";
    pub const DELETE: &str = "delete_article";
    /// What the status rows of a create say (not an A2 action).
    pub const CREATE: &str = "create_article";
}

/// One A2 action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateAction {
    pub sku: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

/// A2 request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BulkUpdateRequest {
    pub actions: Vec<UpdateAction>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdatedItem {
    pub sku: String,
    pub action: String,
}

/// A2 response (202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkUpdateResponse {
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub batch_id: Option<String>,
    #[serde(default)]
    pub success: Vec<UpdatedItem>,
    #[serde(default)]
    pub failed: Vec<FailedItem>,
}

/// `update_article_price` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PriceBody {
    pub price: Vec<PriceEntry>,
}

/// `update_article_quantity` body.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct QuantityBody {
    pub quantity: u32,
}

/// S1 request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusBatchRequest {
    pub batch_ids: Vec<String>,
}

/// S1 response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusBatchResponse {
    #[serde(default)]
    pub batches: Vec<StatusBatch>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusBatch {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default)]
    pub statuses: Vec<StatusRow>,
}

/// S2 request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SkuStatusRequest {
    pub skus: Vec<String>,
}

/// S2 response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuStatusResponse {
    #[serde(default)]
    pub statuses: Vec<StatusRow>,
}

/// The processing state of one action on one article, per market (`"*"`: all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRow {
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub correlation_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub article_id: Option<String>,
    pub sku: String,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub markets: Vec<MarketStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketStatus {
    pub market: String,
    /// `ok`, `pending` or `failed`.
    pub status: String,
    #[serde(default)]
    pub error_code: Option<String>,
}

/// An order's state. Reads accept spaces, hyphens and any case (`NOT FULFILLED`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OrderState {
    Created,
    Accepted,
    Fulfilled,
    NotFulfilled,
    /// A state this build does not know, verbatim.
    Other(String),
}

impl OrderState {
    pub fn as_str(&self) -> &str {
        match self {
            OrderState::Created => "CREATED",
            OrderState::Accepted => "ACCEPTED",
            OrderState::Fulfilled => "FULFILLED",
            OrderState::NotFulfilled => "NOT_FULFILLED",
            OrderState::Other(s) => s,
        }
    }

    pub fn parse(s: &str) -> Self {
        let norm: String = s
            .trim()
            .chars()
            .map(|c| match c {
                ' ' | '-' => '_',
                c => c.to_ascii_uppercase(),
            })
            .collect();
        match norm.as_str() {
            "CREATED" => OrderState::Created,
            "ACCEPTED" => OrderState::Accepted,
            "FULFILLED" => OrderState::Fulfilled,
            "NOT_FULFILLED" | "NOTFULFILLED" => OrderState::NotFulfilled,
            _ => OrderState::Other(s.to_owned()),
        }
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for OrderState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for OrderState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(OrderState::parse(&s))
    }
}

/// `price` / `total_price` of an order: `amount` **excludes** VAT and covers all units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPrice {
    #[serde(with = "decimal_number")]
    pub amount: Decimal,
    #[serde(with = "decimal_number")]
    pub vat_amount: Decimal,
    #[serde(
        default,
        with = "opt_decimal_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub vat_rate: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// The delivery address. `first_name`/`last_name` are absent on B2B orders. **Personal data**:
/// `Debug` shows only the country.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ShippingAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
    #[serde(default)]
    pub street_address: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub postal_code: String,
    #[serde(default)]
    pub country: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
}

impl fmt::Debug for ShippingAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShippingAddress")
            .field("country", &self.country)
            .finish_non_exhaustive()
    }
}

/// One tracking entry of a fulfilment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackingInformation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier_name: Option<String>,
    pub tracking_number: String,
}

/// O4 request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FulfillRequest {
    pub tracking_information: Vec<TrackingInformation>,
}

/// An order: **one SKU row** with a quantity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub article_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub customer_order_id: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    pub article_sku: String,
    pub price: OrderPrice,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_price: Option<OrderPrice>,
    pub quantity: u32,
    #[serde(default)]
    pub shipping_address: ShippingAddress,
    pub market: String,
    pub state: OrderState,
    pub created_at: String,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub fulfillment_deadline: Option<String>,
    #[serde(default)]
    pub tracking_information: Vec<TrackingInformation>,
}

/// `{"description": "…"}`: the answer to order actions and the body of most errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description {
    pub description: String,
}

/// O6 request (sandbox only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxOrderRequest {
    pub article_id: String,
    pub quantity: u32,
}

/// O6 response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxOrderResponse {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub description: String,
}

/// A K1 category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    pub id: u64,
    pub name: String,
    pub path: String,
    pub search_friendly_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;
    use serde_json::json;

    #[test]
    fn the_documented_order_example_parses() {
        let o: Order = serde_json::from_value(json!({
            "id": 123, "article_id": "a-1", "customer_order_id": "c-9", "title": "Article title",
            "article_sku": "123",
            "price": {"amount": 23.2, "vat_amount": 5.8, "vat_rate": 0.25, "currency": "SEK"},
            "total_price": {"amount": 23.2, "vat_amount": 5.8, "vat_rate": 0.25, "currency": "SEK"},
            "quantity": 2,
            "shipping_address": {"first_name": "A", "last_name": "B", "street_address": "S 1",
                "city": "C", "postal_code": "111 22", "country": "SE", "phone_number": "07"},
            "market": "SE", "state": "NOT FULFILLED",
            "created_at": "2018-01-01 16:57:06", "updated_at": "2018-01-01 16:57:06",
            "fulfillment_deadline": "2018-01-06 16:57:06", "tracking_information": []
        }))
        .unwrap();
        assert_eq!(o.id, "123");
        assert_eq!(o.state, OrderState::NotFulfilled);
        assert_eq!(o.price.amount, dec!(23.2));
        assert_eq!(o.price.vat_rate, Some(dec!(0.25)));
        assert!(!format!("{:?}", o.shipping_address).contains("S 1"));
    }

    #[test]
    fn states_parse_leniently_and_keep_unknown_ones() {
        assert_eq!(OrderState::parse("not_fulfilled"), OrderState::NotFulfilled);
        assert_eq!(OrderState::parse("Not-Fulfilled"), OrderState::NotFulfilled);
        assert_eq!(OrderState::parse("created "), OrderState::Created);
        assert_eq!(
            OrderState::parse("RETURNED"),
            OrderState::Other("RETURNED".into())
        );
        assert_eq!(
            serde_json::to_string(&OrderState::NotFulfilled).unwrap(),
            "\"NOT_FULFILLED\""
        );
    }

    #[test]
    fn timestamps_are_utc_and_lenient() {
        let t = parse_timestamp("2018-01-06 16:57:06").unwrap();
        assert_eq!(t.to_rfc3339(), "2018-01-06T16:57:06+00:00");
        assert_eq!(format_timestamp(t), "2018-01-06 16:57:06");
        assert_eq!(
            parse_timestamp("2018-01-06T16:57:06.5Z")
                .unwrap()
                .timestamp(),
            t.timestamp()
        );
        assert!(parse_timestamp("06/01/2018").is_none());
    }

    #[test]
    fn prices_serialize_as_numbers_with_a_fraction_vat() {
        let p = PriceEntry {
            market: "SE".into(),
            value: PriceValue {
                amount_including_vat: dec!(199.99),
                currency: "SEK".into(),
                vat_rate: Some(dec!(0.25)),
            },
        };
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"market": "SE", "value": {"amount_including_vat": 199.99, "currency": "SEK", "vat_rate": 0.25}})
        );
        let back: PriceEntry = serde_json::from_value(
            json!({"market": "SE", "value": {"amount_including_vat": "10.5", "currency": "SEK"}}),
        )
        .unwrap();
        assert_eq!(back.value.amount_including_vat, dec!(10.5));
        assert_eq!(back.value.vat_rate, None);
    }

    #[test]
    fn bulk_answers_parse_with_missing_lists() {
        let r: BulkCreateResponse = serde_json::from_value(json!({
            "batch_id": "b-1",
            "failed": [{"sku": "X", "errors": [{"message": "Required field missing", "field": ["title"]}]}]
        }))
        .unwrap();
        assert!(r.success.is_empty());
        assert_eq!(r.failed[0].errors[0].field, vec!["title"]);
    }
}
