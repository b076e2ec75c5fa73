//! MyDHL API v3.1.1 wire types (camelCase JSON), the subset this connector sends and reads.
//!
//! Requests carry what the spec requires plus the optional parts we use; answers are read
//! leniently (every field optional, unknown fields ignored) because DHL adds fields between
//! releases. Amounts and weights are JSON **numbers** on the wire (see [`num`]).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// `Decimal` as a JSON number (MyDHL refuses strings where the schema says `number`); reads a
/// number or a numeric string.
pub mod num {
    use rust_decimal::Decimal;
    use rust_decimal::prelude::ToPrimitive;
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        let d = d.normalize();
        if d.scale() == 0
            && let Some(i) = d.to_i64()
        {
            return s.serialize_i64(i);
        }
        match d.to_f64() {
            Some(f) if f.is_finite() => s.serialize_f64(f),
            _ => Err(S::Error::custom(format!(
                "{d} is not representable as a number"
            ))),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        <Decimal as Deserialize>::deserialize(d)
            .map_err(|e| D::Error::custom(format!("not a number: {e}")))
    }

    pub mod opt {
        use rust_decimal::Decimal;
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
            Option::<Decimal>::deserialize(d)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// POST /shipments

/// `POST /shipments` body (`supermodelIoLogisticsExpressCreateShipmentRequest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateShipmentRequest {
    /// `YYYY-MM-DDTHH:MM:SS GMT+01:00`.
    pub planned_shipping_date_and_time: String,
    pub pickup: Pickup,
    pub product_code: String,
    pub accounts: Vec<AccountRef>,
    pub customer_details: CustomerDetails,
    pub content: Content,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub customer_references: Vec<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_image_properties: Option<OutputImageProperties>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pickup {
    pub is_requested: bool,
}

/// `{typeCode: shipper|payer|duties-taxes, number}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountRef {
    pub type_code: String,
    pub number: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerDetails {
    pub shipper_details: Party,
    pub receiver_details: Party,
}

/// A party: **personal data**. `Debug` shows only the country.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Party {
    pub postal_address: PostalAddress,
    pub contact_information: ContactInformation,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registration_numbers: Vec<RegistrationNumber>,
    /// `business`, `private`, … (optional in the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_code: Option<String>,
}

impl std::fmt::Debug for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Party")
            .field("country_code", &self.postal_address.country_code)
            .field("registration_numbers", &self.registration_numbers)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostalAddress {
    pub postal_code: String,
    pub city_name: String,
    pub country_code: String,
    pub address_line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_line2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub county_name: Option<String>,
}

impl std::fmt::Debug for PostalAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostalAddress")
            .field("country_code", &self.country_code)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactInformation {
    pub phone: String,
    pub company_name: String,
    pub full_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl std::fmt::Debug for ContactInformation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContactInformation { .. }")
    }
}

/// `{typeCode, number, issuerCountryCode}`; `SDT` carries an IOSS/VOEC number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationNumber {
    pub type_code: String,
    pub number: String,
    pub issuer_country_code: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    pub packages: Vec<WirePackage>,
    pub is_customs_declarable: bool,
    #[serde(default, with = "num::opt", skip_serializing_if = "Option::is_none")]
    pub declared_value: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_value_currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_declaration: Option<ExportDeclaration>,
    pub description: String,
    pub incoterm: String,
    /// `metric` (kg, cm) or `imperial`.
    pub unit_of_measurement: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WirePackage {
    #[serde(with = "num")]
    pub weight: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<Dimensions>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dimensions {
    pub length: u32,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportDeclaration {
    pub line_items: Vec<LineItem>,
    pub invoice: Invoice,
    /// `permanent`, `temporary`, `return` (optional in the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_reason_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineItem {
    pub number: u32,
    pub description: String,
    /// Price of one unit, in `declaredValueCurrency`.
    #[serde(with = "num")]
    pub price: Decimal,
    pub quantity: Quantity,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commodity_codes: Vec<CommodityCode>,
    pub manufacturer_country: String,
    pub weight: LineWeight,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quantity {
    pub value: u32,
    /// `PCS` for pieces.
    pub unit_of_measurement: String,
}

/// `{typeCode: outbound|inbound, value: HS code}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommodityCode {
    pub type_code: String,
    pub value: String,
}

/// The line's weights in kg.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineWeight {
    #[serde(with = "num")]
    pub net_value: Decimal,
    #[serde(with = "num")]
    pub gross_value: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invoice {
    pub number: String,
    /// `YYYY-MM-DD`.
    pub date: String,
}

/// `{value ≤ 35 chars, typeCode}`; `CU` is the consignor (our) reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputImageProperties {
    /// `pdf`, `zpl`, `lp2`, `epl`.
    pub encoding_format: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_options: Vec<ImageOption>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageOption {
    /// `label`, `waybillDoc`, `invoice`, …
    pub type_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_requested: Option<bool>,
}

/// The 201 answer of `POST /shipments`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateShipmentResponse {
    #[serde(default)]
    pub shipment_tracking_number: Option<String>,
    #[serde(default)]
    pub tracking_url: Option<String>,
    #[serde(default)]
    pub packages: Vec<ResponsePackage>,
    #[serde(default)]
    pub documents: Vec<Document>,
    #[serde(default)]
    pub estimated_delivery_date: Option<serde_json::Value>,
    #[serde(default)]
    pub warnings: Vec<serde_json::Value>,
    #[serde(default)]
    pub dispatch_confirmation_number: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponsePackage {
    #[serde(default)]
    pub reference_number: Option<u32>,
    #[serde(default)]
    pub tracking_number: Option<String>,
    #[serde(default)]
    pub tracking_url: Option<String>,
}

/// A document of the answer: `content` is base64.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    #[serde(default)]
    pub image_format: Option<String>,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub type_code: Option<String>,
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document")
            .field("image_format", &self.image_format)
            .field("type_code", &self.type_code)
            .field("content_chars", &self.content.len())
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// GET /tracking, GET /shipments/{awb}/tracking

/// `supermodelIoLogisticsExpressTrackingResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackingResponse {
    #[serde(default)]
    pub shipments: Vec<TrackedShipment>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackedShipment {
    #[serde(default)]
    pub shipment_tracking_number: Option<String>,
    /// Status of the tracking request for this shipment (`Success` in the spec's example).
    #[serde(default)]
    pub status: Option<String>,
    /// `YYYY-MM-DDTHH:MM:SS`.
    #[serde(default)]
    pub shipment_timestamp: Option<String>,
    #[serde(default)]
    pub product_code: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub shipper_references: Vec<Reference>,
    #[serde(default)]
    pub events: Vec<Event>,
    #[serde(default)]
    pub number_of_pieces: Option<u32>,
    #[serde(default)]
    pub estimated_delivery_date: Option<String>,
}

/// A checkpoint: `date` `YYYY-MM-DD`, `time` `HH:MM:SS`, `GMTOffset` `+09:00` (only when
/// asked for with `requestGMTOffsetPerEvent=true`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(default)]
    pub date: Option<String>,
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default, rename = "GMTOffset")]
    pub gmt_offset: Option<String>,
    #[serde(default)]
    pub type_code: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub service_area: Vec<ServiceArea>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceArea {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;
    use serde_json::json;

    #[test]
    fn amounts_are_json_numbers() {
        let p = WirePackage {
            weight: dec!(1.250),
            dimensions: None,
        };
        assert_eq!(serde_json::to_value(&p).unwrap(), json!({"weight": 1.25}));
        let l = LineWeight {
            net_value: dec!(2),
            gross_value: dec!(2.5),
        };
        assert_eq!(
            serde_json::to_value(&l).unwrap(),
            json!({"netValue": 2, "grossValue": 2.5})
        );
        let back: LineWeight =
            serde_json::from_value(json!({"netValue": 2, "grossValue": "2.5"})).unwrap();
        assert_eq!(back, l);
    }

    #[test]
    fn tracking_answers_read_leniently() {
        let t: TrackingResponse = serde_json::from_value(json!({"shipments": [{
            "shipmentTrackingNumber": "1234567890", "status": "Success",
            "shipperReferences": [{"value": "ORD-1", "typeCode": "CU"}],
            "events": [{"date": "2020-06-10", "time": "13:06:00", "GMTOffset": "+09:00",
                        "typeCode": "PU", "description": "Shipment picked up",
                        "serviceArea": [{"code": "BNE", "description": "Brisbane-AU"}]}],
            "somethingNew": {"x": 1}
        }]}))
        .unwrap();
        let s = &t.shipments[0];
        assert_eq!(s.events[0].gmt_offset.as_deref(), Some("+09:00"));
        assert_eq!(s.shipper_references[0].type_code.as_deref(), Some("CU"));
    }

    #[test]
    fn party_debug_hides_personal_data() {
        let p = Party {
            postal_address: PostalAddress {
                postal_code: "11122".into(),
                city_name: "Stockholm".into(),
                country_code: "SE".into(),
                address_line1: "Drottninggatan 1".into(),
                address_line2: None,
                county_name: None,
            },
            contact_information: ContactInformation {
                phone: "+46700000000".into(),
                company_name: "Anna Svensson".into(),
                full_name: "Anna Svensson".into(),
                email: None,
            },
            registration_numbers: vec![],
            type_code: None,
        };
        let shown = format!("{p:?}");
        assert!(shown.contains("SE") && !shown.contains("Anna") && !shown.contains("Drottning"));
    }
}
