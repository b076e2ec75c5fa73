//! lexoffice's JSON shapes (contract §2), as the client sends and reads them and the fake
//! serves them. Field names are camelCase on the wire. Reads are lenient (unknown fields
//! ignored, optional fields defaulted); amounts are read as numbers or numeric strings.

use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// lexoffice's date-time format: `yyyy-MM-ddTHH:mm:ss.SSSXXX`, exactly three millisecond
/// digits and an offset with a colon (`+00:00`; we never send `Z`). Anything else is a 406.
pub fn format_datetime(t: DateTime<Utc>) -> String {
    t.fixed_offset()
        .to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// Parses `yyyy-MM-ddTHH:mm:ss.SSSXXX` strictly (3 ms digits; `+hh:mm`, `-hh:mm` or `Z`).
pub fn parse_datetime(s: &str) -> Option<DateTime<FixedOffset>> {
    let b = s.as_bytes();
    let shape_ok = b.len() >= 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[20..23].iter().all(u8::is_ascii_digit)
        && match &b[23..] {
            [b'Z'] => true,
            [sign, h1, h2, b':', m1, m2] => {
                matches!(sign, b'+' | b'-') && [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
            }
            _ => false,
        };
    if !shape_ok {
        return None;
    }
    DateTime::parse_from_rfc3339(s).ok()
}

/// `yyyy-MM-dd`, the format of the voucherlist's date filters.
pub fn format_date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Amounts are JSON numbers; `openAmount` comes as a number or a numeric string.
pub use crate::wire::{decimal_number, opt_decimal_number as opt_decimal, to_decimal};

// ---------------------------------------------------------------------------------------------
// Paging

/// Spring's pageable envelope. Key order is not stable; every field is optional on read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Page<T> {
    pub content: Vec<T>,
    pub first: bool,
    pub last: bool,
    pub total_pages: u64,
    pub total_elements: u64,
    pub number_of_elements: u64,
    pub size: u64,
    pub number: u64,
}

impl<T> Default for Page<T> {
    fn default() -> Self {
        Self {
            content: Vec::new(),
            first: true,
            last: true,
            total_pages: 0,
            total_elements: 0,
            number_of_elements: 0,
            size: 0,
            number: 0,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Articles

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Article {
    pub id: String,
    #[serde(default)]
    pub organization_id: Option<String>,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `PRODUCT` or `SERVICE`.
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub article_number: Option<String>,
    #[serde(default)]
    pub gtin: Option<String>,
    #[serde(default)]
    pub unit_name: Option<String>,
    pub price: ArticlePrice,
    #[serde(default)]
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArticlePrice {
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub net_price: Option<Decimal>,
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub gross_price: Option<Decimal>,
    /// `NET` or `GROSS`: which of the two the merchant maintains.
    pub leading_price: String,
    #[serde(with = "decimal_number")]
    pub tax_rate: Decimal,
}

// ---------------------------------------------------------------------------------------------
// Sales vouchers (order confirmations, invoices, credit notes share the model)

/// The body of `POST /v1/order-confirmations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VoucherCreate {
    pub voucher_date: String,
    pub language: String,
    pub address: Address,
    pub line_items: Vec<LineItem>,
    pub total_price: TotalPriceCurrency,
    pub tax_conditions: TaxConditions,
    pub shipping_conditions: ShippingConditions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineItem {
    /// `custom` (no article link), `text`, `material`/`service` (with an article `id`).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub quantity: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<UnitPrice>,
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub discount_percentage: Option<Decimal>,
    /// Read model only: the line's total as lexoffice computed it.
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub line_item_amount: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitPrice {
    pub currency: String,
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub net_amount: Option<Decimal>,
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub gross_amount: Option<Decimal>,
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub tax_rate_percentage: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TotalPriceCurrency {
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaxConditions {
    pub tax_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShippingConditions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_date: Option<String>,
    pub shipping_type: String,
}

/// The answer of a create: `{id, resourceUri, createdDate, updatedDate, version}` only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    pub id: String,
    #[serde(default)]
    pub resource_uri: Option<String>,
    #[serde(default)]
    pub created_date: Option<String>,
    #[serde(default)]
    pub updated_date: Option<String>,
    #[serde(default)]
    pub version: u64,
}

/// The read model of a sales voucher (`GET /v1/order-confirmations/{id}`, `/v1/invoices/{id}`,
/// `/v1/credit-notes/{id}`), the fields this connector uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Voucher {
    pub id: String,
    #[serde(default)]
    pub organization_id: Option<String>,
    #[serde(default)]
    pub created_date: Option<String>,
    #[serde(default)]
    pub updated_date: Option<String>,
    #[serde(default)]
    pub version: u64,
    /// `draft`, `open`, `paid`, `voided` (credit notes: `paidoff`).
    #[serde(default)]
    pub voucher_status: String,
    /// Absent on drafts (at least on invoice drafts; unknown for order confirmations).
    #[serde(default)]
    pub voucher_number: Option<String>,
    #[serde(default)]
    pub voucher_date: Option<String>,
    #[serde(default)]
    pub address: Option<Address>,
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    #[serde(default)]
    pub total_price: Option<TotalPrice>,
    #[serde(default)]
    pub related_vouchers: Vec<RelatedVoucher>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub introduction: Option<String>,
    #[serde(default)]
    pub remark: Option<String>,
    #[serde(default)]
    pub archived: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TotalPrice {
    pub currency: String,
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub total_net_amount: Option<Decimal>,
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub total_gross_amount: Option<Decimal>,
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub total_tax_amount: Option<Decimal>,
}

/// A voucher linked to this one (the invoice made from an order confirmation, the credit note
/// of an invoice).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelatedVoucher {
    pub id: String,
    #[serde(default)]
    pub voucher_number: Option<String>,
    /// `invoice`, `creditnote`, `orderconfirmation`, `quotation`, `deliverynote`, …
    #[serde(default)]
    pub voucher_type: String,
}

// ---------------------------------------------------------------------------------------------
// Voucherlist, payments

/// One row of `GET /v1/voucherlist`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VoucherListItem {
    pub id: String,
    #[serde(default)]
    pub voucher_type: String,
    #[serde(default)]
    pub voucher_status: String,
    #[serde(default)]
    pub voucher_number: Option<String>,
    #[serde(default)]
    pub voucher_date: Option<String>,
    #[serde(default)]
    pub created_date: Option<String>,
    #[serde(default)]
    pub updated_date: Option<String>,
    #[serde(default)]
    pub due_date: Option<String>,
    #[serde(default)]
    pub contact_id: Option<String>,
    #[serde(default)]
    pub contact_name: Option<String>,
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub total_amount: Option<Decimal>,
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub open_amount: Option<Decimal>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub archived: bool,
}

/// `GET /v1/payments/{voucherId}`. `openAmount` is a number or a numeric string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub open_amount: Option<Decimal>,
    #[serde(default)]
    pub currency: Option<String>,
    /// `balanced`, `openRevenue`, `openExpense`.
    #[serde(default)]
    pub payment_status: Option<String>,
    #[serde(default)]
    pub voucher_type: Option<String>,
    #[serde(default)]
    pub voucher_status: Option<String>,
    #[serde(default)]
    pub paid_date: Option<String>,
    #[serde(default)]
    pub payment_items: Vec<PaymentItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentItem {
    #[serde(default)]
    pub payment_item_type: Option<String>,
    #[serde(default)]
    pub posting_date: Option<String>,
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub amount: Option<Decimal>,
    #[serde(default)]
    pub currency: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Errors

/// The regular error body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RegularError {
    pub timestamp: Option<String>,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub path: Option<String>,
    pub trace_id: Option<String>,
    pub message: Option<String>,
    pub details: Vec<ErrorDetail>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ErrorDetail {
    pub violation: Option<String>,
    pub field: Option<String>,
    pub message: Option<String>,
}

/// The legacy error body of contacts, files and vouchers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LegacyError {
    #[serde(rename = "IssueList")]
    pub issue_list: Vec<Issue>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Issue {
    pub i18n_key: Option<String>,
    pub source: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub additional_data: Option<Value>,
    pub args: Option<Value>,
}

// ---------------------------------------------------------------------------------------------
// Event subscriptions

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionCreate {
    pub event_type: String,
    pub callback_url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub subscription_id: String,
    #[serde(default)]
    pub organization_id: Option<String>,
    #[serde(default)]
    pub created_date: Option<String>,
    pub event_type: String,
    pub callback_url: String,
}

/// The body lexoffice POSTs to a callback URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookBody {
    pub organization_id: String,
    pub event_type: String,
    pub resource_id: String,
    pub event_date: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_have_exactly_three_millisecond_digits_and_a_colon_offset() {
        let t = DateTime::parse_from_rfc3339("2025-01-31T09:05:07.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_datetime(t), "2025-01-31T09:05:07.123+00:00");
        let whole = DateTime::parse_from_rfc3339("2025-01-31T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_datetime(whole), "2025-01-31T00:00:00.000+00:00");
        assert!(parse_datetime("2025-01-31T00:00:00.000+01:00").is_some());
        assert!(parse_datetime("2025-01-31T00:00:00.000Z").is_some());
        assert!(parse_datetime(&format_datetime(t)).is_some());
        for bad in [
            "2025-01-31",
            "2025-01-31T00:00:00+01:00",
            "2025-01-31T00:00:00.00+01:00",
            "2025-01-31T00:00:00.0000+01:00",
            "2025-01-31T00:00:00.000+0100",
            "2025-01-31 00:00:00.000+01:00",
            "2025-13-31T00:00:00.000+01:00",
        ] {
            assert!(parse_datetime(bad).is_none(), "{bad} must be refused");
        }
        assert_eq!(
            format_date(NaiveDate::from_ymd_opt(2025, 3, 4).unwrap()),
            "2025-03-04"
        );
    }

    #[test]
    fn amounts_read_as_numbers_or_strings_and_write_as_numbers() {
        let p: Payment =
            serde_json::from_value(json!({"openAmount": "12.50", "currency": "EUR"})).unwrap();
        assert_eq!(p.open_amount, Some(Decimal::new(1250, 2)));
        let p: Payment = serde_json::from_value(json!({"openAmount": 12.5})).unwrap();
        assert_eq!(p.open_amount, Some(Decimal::new(125, 1)));
        let p: Payment = serde_json::from_value(json!({"openAmount": null})).unwrap();
        assert_eq!(p.open_amount, None);
        assert!(serde_json::from_value::<Payment>(json!({"openAmount": "zwölf"})).is_err());
        let u = UnitPrice {
            currency: "EUR".into(),
            net_amount: None,
            gross_amount: Some(Decimal::new(159460, 4)),
            tax_rate_percentage: Some(Decimal::new(19, 0)),
        };
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            json!({"currency": "EUR", "grossAmount": 15.946, "taxRatePercentage": 19})
        );
    }

    #[test]
    fn pages_read_with_keys_in_any_order_and_missing_fields() {
        let p: Page<VoucherListItem> = serde_json::from_value(json!({
            "last": false, "totalElements": 3, "content": [{"id": "a", "voucherType": "orderconfirmation"}],
            "number": 0
        }))
        .unwrap();
        assert!(!p.last);
        assert_eq!(p.content.len(), 1);
        assert_eq!(p.total_elements, 3);
    }
}
