//! Conversions between `canonical` and the MyDHL wire types, with the client-side checks that
//! refuse a request DHL would refuse (naming the field) before any call is made.
//!
//! - [`create_request`]: a [`ShipmentRequest`] → `POST /shipments` body. Customs (an export
//!   declaration) when the parcel crosses the EU customs border (RO → NO); the VOEC number on
//!   shipments to Norway; the product code per lane.
//! - [`shipment_from_created`]: the 201 answer → [`Shipment`] (AWB, label PDF decoded).
//! - [`found_shipment`]: a `GET /tracking` by-reference answer → the shipment it found.
//! - [`tracking_status`]: a tracking answer → [`TrackingStatus`], events oldest first, the
//!   state from the latest checkpoint code ([`parcel_state`]).

use base64::Engine as _;
use canonical::{
    Contact, Country, CustomsLine, ParcelState, Shipment, ShipmentRequest, TrackingEvent,
    TrackingStatus,
};
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use rust_decimal::Decimal;

use super::SYSTEM;
use super::config::Config;
use super::wire::{
    AccountRef, CommodityCode, ContactInformation, Content, CreateShipmentRequest,
    CreateShipmentResponse, CustomerDetails, Dimensions, Document, Event, ExportDeclaration,
    ImageOption, Invoice, LineItem, LineWeight, OutputImageProperties, Party, Pickup,
    PostalAddress, Quantity, Reference, RegistrationNumber, TrackedShipment, TrackingResponse,
    WirePackage,
};
use crate::error::{ConnectorError, Result};

const OP_CREATE: &str = "create_shipment";

/// The longest a customer reference may be (`customerReferences[].value`).
pub const MAX_REFERENCE: usize = 35;
/// The furthest ahead a planned shipping date may be.
pub const MAX_DAYS_AHEAD: i64 = 10;
/// A planned time closer than this is sent as `now + MIN_LEAD`: the spec advises against
/// sending "now", which is in the past by the time DHL reads it.
pub const MIN_LEAD_SECS: i64 = 60;
/// The `Message-Reference` header: 1 to 36 characters.
pub const MAX_MESSAGE_REFERENCE: usize = 36;

fn refuse(message: impl Into<String>) -> ConnectorError {
    ConnectorError::permanent(SYSTEM, OP_CREATE, message)
}

/// Checks a customer reference: 1 to 35 characters, no control characters (it goes into the
/// JSON body, a query string and a header).
pub fn check_reference(op: &'static str, reference: &str) -> Result<()> {
    let n = reference.chars().count();
    if reference.trim().is_empty() {
        return Err(ConnectorError::permanent(
            SYSTEM,
            op,
            "reference is empty: DHL needs the order's customer reference (CU)",
        ));
    }
    if n > MAX_REFERENCE {
        return Err(ConnectorError::permanent(
            SYSTEM,
            op,
            format!("reference {reference:?} is {n} characters; DHL takes at most {MAX_REFERENCE}"),
        ));
    }
    if reference.chars().any(char::is_control) || reference != reference.trim() {
        return Err(ConnectorError::permanent(
            SYSTEM,
            op,
            format!("reference {reference:?} has control characters or surrounding spaces"),
        ));
    }
    Ok(())
}

/// Checks an AWB before it goes into a URL path: 1 to 35 letters or digits.
pub fn check_awb(awb: &str) -> Result<()> {
    if awb.is_empty() || awb.len() > 35 || !awb.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ConnectorError::permanent(
            SYSTEM,
            "tracking",
            format!(
                "AWB {awb:?} is not a DHL shipment tracking number (letters and digits, at most 35)"
            ),
        ));
    }
    Ok(())
}

/// The `Message-Reference` header derived from `prefix` and `seed` (the reference or AWB):
/// letters, digits, `-`, `_` and `.` kept, anything else `-`, cut to 36 characters.
pub fn message_reference(prefix: &str, seed: &str) -> String {
    let s: String = prefix
        .chars()
        .chain(seed.chars())
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(MAX_MESSAGE_REFERENCE)
        .collect();
    if s.is_empty() { "megzo".to_owned() } else { s }
}

/// `plannedShippingDateAndTime` in DHL's format (`YYYY-MM-DDTHH:MM:SS GMT+00:00`, sent in
/// UTC). Refuses a time in the past or more than 10 days ahead of `now`.
pub fn planned_shipping_date(ship_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<String> {
    if ship_at < now {
        return Err(refuse(format!(
            "ship_at {} is in the past (now {}): DHL refuses a planned shipping date in the past",
            ship_at.format("%Y-%m-%d %H:%M:%S UTC"),
            now.format("%Y-%m-%d %H:%M:%S UTC")
        )));
    }
    if ship_at > now + Duration::days(MAX_DAYS_AHEAD) {
        return Err(refuse(format!(
            "ship_at {} is more than {MAX_DAYS_AHEAD} days ahead: DHL refuses it",
            ship_at.format("%Y-%m-%d %H:%M:%S UTC")
        )));
    }
    let at = ship_at.max(now + Duration::seconds(MIN_LEAD_SECS));
    Ok(format_planned(at))
}

/// Formats a time as DHL's `YYYY-MM-DDTHH:MM:SS GMT+00:00` (UTC).
pub fn format_planned(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S GMT+00:00").to_string()
}

/// Parses DHL's `YYYY-MM-DDTHH:MM:SS GMT+01:00`.
pub fn parse_planned(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S GMT%:z")
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// The `dateRangeFrom` and `dateRangeTo` (`YYYY-MM-DD`) of a reference lookup around a date.
pub fn lookup_window(around: DateTime<Utc>, days: u32) -> (String, String) {
    let d = Duration::days(i64::from(days));
    (
        (around - d).format("%Y-%m-%d").to_string(),
        (around + d).format("%Y-%m-%d").to_string(),
    )
}

/// Whether a parcel from `shipper` to `receiver` crosses the EU customs border.
pub fn needs_customs(shipper: Country, receiver: Country) -> bool {
    shipper != receiver && !(shipper.in_eu_customs_union() && receiver.in_eu_customs_union())
}

/// The product code for the lane (see [`Config`]: assumptions to confirm with `/products`).
pub fn product_code(cfg: &Config, shipper: Country, receiver: Country) -> &str {
    if shipper == receiver {
        &cfg.product_code_domestic
    } else if needs_customs(shipper, receiver) {
        &cfg.product_code_non_eu
    } else {
        &cfg.product_code_eu
    }
}

fn text(who: &str, field: &str, dhl: &str, value: Option<&str>, max: usize) -> Result<String> {
    let v = value.map(str::trim).unwrap_or("");
    if v.is_empty() {
        return Err(refuse(format!("{who}.{field} is required (DHL {dhl})")));
    }
    let n = v.chars().count();
    if n > max {
        return Err(refuse(format!(
            "{who}.{field} is {n} characters; DHL {dhl} takes at most {max}"
        )));
    }
    Ok(v.to_owned())
}

fn optional(
    who: &str,
    field: &str,
    dhl: &str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => text(who, field, dhl, Some(v), max).map(Some),
    }
}

/// A contact → a DHL party. `companyName` is required by DHL: a private person's name is used
/// when there is no company.
pub fn party(who: &str, c: &Contact) -> Result<(Party, Country)> {
    let country = c.country.ok_or_else(|| {
        refuse(format!(
            "{who}.country is required (DHL postalAddress.countryCode)"
        ))
    })?;
    let full_name = text(
        who,
        "name",
        "contactInformation.fullName",
        Some(&c.name),
        255,
    )?;
    let company = optional(
        who,
        "company",
        "contactInformation.companyName",
        c.company.as_deref(),
        100,
    )?;
    let company_name = match &company {
        Some(co) => co.clone(),
        None => text(
            who,
            "name",
            "contactInformation.companyName",
            Some(&c.name),
            100,
        )?,
    };
    let postal_address = PostalAddress {
        postal_code: text(
            who,
            "postal_code",
            "postalAddress.postalCode",
            Some(&c.postal_code),
            12,
        )?,
        city_name: text(who, "city", "postalAddress.cityName", Some(&c.city), 45)?,
        country_code: country.as_str().to_owned(),
        address_line1: text(
            who,
            "address_line1",
            "postalAddress.addressLine1",
            Some(&c.address_line1),
            45,
        )?,
        address_line2: optional(
            who,
            "address_line2",
            "postalAddress.addressLine2",
            c.address_line2.as_deref(),
            45,
        )?,
        county_name: optional(
            who,
            "region",
            "postalAddress.countyName",
            c.region.as_deref(),
            45,
        )?,
    };
    let contact_information = ContactInformation {
        phone: text(
            who,
            "phone",
            "contactInformation.phone",
            c.phone.as_deref(),
            70,
        )?,
        company_name,
        full_name,
        email: optional(
            who,
            "email",
            "contactInformation.email",
            c.email.as_deref(),
            70,
        )?,
    };
    Ok((
        Party {
            postal_address,
            contact_information,
            registration_numbers: Vec::new(),
            type_code: Some(
                if company.is_some() {
                    "business"
                } else {
                    "private"
                }
                .to_owned(),
            ),
        },
        country,
    ))
}

fn weight(what: &str, kg: Decimal) -> Result<Decimal> {
    let w = kg.round_dp(3);
    if w < Decimal::new(1, 3) {
        return Err(refuse(format!(
            "{what} weight {kg} kg is below DHL's minimum of 0.001 kg"
        )));
    }
    if w > Decimal::from(1000) {
        return Err(refuse(format!("{what} weight {kg} kg is over 1000 kg")));
    }
    Ok(w)
}

fn line_item(i: usize, l: &CustomsLine) -> Result<LineItem> {
    let who = format!("lines[{i}]");
    let description = text(
        &who,
        "description",
        "lineItems.description",
        Some(&l.description),
        512,
    )?;
    if l.quantity == 0 {
        return Err(refuse(format!(
            "{who}.quantity must be at least 1 (sku {})",
            l.sku
        )));
    }
    if l.unit_value <= Decimal::ZERO {
        return Err(refuse(format!(
            "{who}.unit_value must be above zero for customs (sku {})",
            l.sku
        )));
    }
    let unit_kg = weight(&format!("{who} (sku {})", l.sku), l.weight_kg)?;
    let line_kg = (unit_kg * Decimal::from(l.quantity)).round_dp(3);
    let mut commodity_codes = Vec::new();
    if let Some(hs) = l
        .hs_code
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let digits: String = hs.chars().filter(|c| !matches!(c, '.' | ' ')).collect();
        if !(4..=20).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(refuse(format!(
                "{who}.hs_code {hs:?} must be an HS code of 4 to 20 digits (sku {})",
                l.sku
            )));
        }
        commodity_codes.push(CommodityCode {
            type_code: "outbound".to_owned(),
            value: digits,
        });
    }
    Ok(LineItem {
        number: u32::try_from(i + 1).unwrap_or(u32::MAX),
        description,
        price: l.unit_value.round_dp(3),
        quantity: Quantity {
            value: l.quantity,
            unit_of_measurement: "PCS".to_owned(),
        },
        commodity_codes,
        manufacturer_country: l.origin.as_str().to_owned(),
        weight: LineWeight {
            net_value: line_kg,
            gross_value: line_kg,
        },
    })
}

/// Builds the `POST /shipments` body, refusing (permanently, naming the field) what DHL would
/// refuse: a ship time in the past or more than 10 days ahead, a reference over 35 characters,
/// a missing address or contact field, no package, no customs lines or invoice number for a
/// parcel leaving the EU customs union.
pub fn create_request(
    cfg: &Config,
    r: &ShipmentRequest,
    now: DateTime<Utc>,
) -> Result<CreateShipmentRequest> {
    check_reference(OP_CREATE, &r.reference)?;
    let planned = planned_shipping_date(r.ship_at, now)?;
    let (mut shipper, from) = party("shipper", &r.shipper)?;
    let (receiver, to) = party("receiver", &r.receiver)?;
    if r.packages.is_empty() {
        return Err(refuse("packages is empty: DHL needs at least one package"));
    }
    if r.packages.len() > 999 {
        return Err(refuse(format!(
            "{} packages: DHL takes at most 999 per shipment",
            r.packages.len()
        )));
    }
    let packages = r
        .packages
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let dimensions = match p.dimensions_cm {
                None => None,
                Some((l, w, h)) if l > 0 && w > 0 && h > 0 => Some(Dimensions {
                    length: l,
                    width: w,
                    height: h,
                }),
                Some(d) => {
                    return Err(refuse(format!(
                        "packages[{i}].dimensions_cm {d:?} must all be at least 1 cm"
                    )));
                }
            };
            Ok(WirePackage {
                weight: weight(&format!("packages[{i}]"), p.weight_kg)?,
                dimensions,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let description = text(
        "shipment",
        "description",
        "content.description",
        Some(&r.description),
        70,
    )?;
    if r.declared_value.amount < Decimal::ZERO {
        return Err(refuse(format!(
            "declared_value {} is negative",
            r.declared_value
        )));
    }
    let customs = needs_customs(from, to);
    let export_declaration = if customs {
        if r.lines.is_empty() {
            return Err(refuse(format!(
                "lines is empty: a parcel from {from} to {to} leaves the EU customs union and DHL needs an export declaration with one line per item"
            )));
        }
        if r.declared_value.amount <= Decimal::ZERO {
            return Err(refuse(format!(
                "declared_value must be above zero for customs ({from} to {to})"
            )));
        }
        let number = text(
            "shipment",
            "invoice_number",
            "exportDeclaration.invoice.number",
            r.invoice_number.as_deref(),
            35,
        )
        .map_err(|_| {
            refuse(format!(
                "invoice_number is required: a parcel from {from} to {to} needs an export declaration with the invoice (or proforma) number, at most 35 characters"
            ))
        })?;
        let line_items = r
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| line_item(i, l))
            .collect::<Result<Vec<_>>>()?;
        Some(ExportDeclaration {
            line_items,
            invoice: Invoice {
                number,
                date: r.ship_at.format("%Y-%m-%d").to_string(),
            },
            export_reason_type: Some("permanent".to_owned()),
        })
    } else {
        None
    };
    if to == Country::NO
        && let Some(voec) = &cfg.voec_number
    {
        shipper.registration_numbers.push(RegistrationNumber {
            type_code: "SDT".to_owned(),
            number: voec.trim().to_owned(),
            issuer_country_code: "NO".to_owned(),
        });
    }
    shipper.type_code = Some("business".to_owned());
    let declared = (r.declared_value.amount > Decimal::ZERO).then_some(r.declared_value);
    Ok(CreateShipmentRequest {
        planned_shipping_date_and_time: planned,
        pickup: Pickup {
            is_requested: false,
        },
        product_code: product_code(cfg, from, to).to_owned(),
        accounts: vec![AccountRef {
            type_code: "shipper".to_owned(),
            number: cfg.shipper_account.trim().to_owned(),
        }],
        customer_details: CustomerDetails {
            shipper_details: shipper,
            receiver_details: receiver,
        },
        content: Content {
            packages,
            is_customs_declarable: customs,
            declared_value: declared.map(|m| m.amount.round_dp(3)),
            declared_value_currency: declared.map(|m| m.currency.as_str().to_owned()),
            export_declaration,
            description,
            incoterm: cfg.incoterm.clone(),
            unit_of_measurement: "metric".to_owned(),
        },
        customer_references: vec![Reference {
            value: r.reference.clone(),
            type_code: Some("CU".to_owned()),
        }],
        output_image_properties: Some(OutputImageProperties {
            encoding_format: cfg.encoding_format.clone(),
            image_options: vec![ImageOption {
                type_code: "label".to_owned(),
                template_name: Some(cfg.label_template.clone()),
                is_requested: None,
            }],
        }),
    })
}

/// The public tracking page of an AWB.
pub fn tracking_url(cfg: &Config, awb: &str) -> String {
    cfg.tracking_url_template.replace("{awb}", awb)
}

/// The label of a 201 answer as PDF bytes: the `documents[]` entry with `typeCode` `label`
/// (base64, whitespace tolerated). A missing, undecodable or non-PDF label is an error that
/// names the AWB (the shipment exists: never create it again, find it by reference).
pub fn decode_label(documents: &[Document], awb: &str) -> Result<Vec<u8>> {
    let doc = documents
        .iter()
        .find(|d| d.type_code.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("label")))
        .ok_or_else(|| {
            refuse(format!(
                "DHL created AWB {awb} but sent no label document; the shipment exists (find it by reference, do not create it again)"
            ))
        })?;
    let b64: String = doc
        .content
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let pdf = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| {
            refuse(format!(
                "DHL created AWB {awb} but its label is not valid base64 ({e}); the shipment exists"
            ))
        })?;
    if !pdf.starts_with(b"%PDF") {
        return Err(refuse(format!(
            "DHL created AWB {awb} but its label is not a PDF (imageFormat {:?}); the shipment exists",
            doc.image_format
        )));
    }
    Ok(pdf)
}

/// The 201 answer → the shipment. No AWB in a 2xx answer is in doubt (something may exist).
pub fn shipment_from_created(
    cfg: &Config,
    reference: &str,
    resp: CreateShipmentResponse,
) -> Result<Shipment> {
    let awb = resp
        .shipment_tracking_number
        .filter(|a| !a.trim().is_empty())
        .ok_or_else(|| {
            ConnectorError::in_doubt(
                SYSTEM,
                OP_CREATE,
                "DHL answered 2xx without shipmentTrackingNumber: look the shipment up by reference",
            )
        })?;
    let label_pdf = decode_label(&resp.documents, &awb)?;
    let tracking_url = resp
        .tracking_url
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| tracking_url(cfg, &awb));
    Ok(Shipment {
        awb,
        reference: reference.to_owned(),
        tracking_url: Some(tracking_url),
        label_pdf,
    })
}

fn carries_reference(s: &TrackedShipment, reference: &str) -> bool {
    s.shipper_references.is_empty()
        || s.shipper_references.iter().any(|r| {
            r.value.trim().eq_ignore_ascii_case(reference)
                && r.type_code
                    .as_deref()
                    .is_none_or(|t| t.eq_ignore_ascii_case("CU"))
        })
}

/// The shipment a by-reference lookup found: those whose `shipperReferences` carry ours (or
/// carry none: DHL did the matching), the oldest first when there are several. The label is
/// not part of a tracking answer, so `label_pdf` is empty. Returns every AWB found as well.
pub fn found_shipment(
    cfg: &Config,
    reference: &str,
    resp: &TrackingResponse,
) -> (Option<Shipment>, Vec<String>) {
    let mut hits: Vec<&TrackedShipment> = resp
        .shipments
        .iter()
        .filter(|s| {
            s.shipment_tracking_number
                .as_deref()
                .is_some_and(|a| !a.trim().is_empty())
        })
        .filter(|s| carries_reference(s, reference))
        .collect();
    hits.sort_by(|a, b| a.shipment_timestamp.cmp(&b.shipment_timestamp));
    let awbs: Vec<String> = hits
        .iter()
        .filter_map(|s| s.shipment_tracking_number.clone())
        .collect();
    let first = awbs.first().map(|awb| Shipment {
        awb: awb.clone(),
        reference: reference.to_owned(),
        tracking_url: Some(tracking_url(cfg, awb)),
        label_pdf: Vec::new(),
    });
    (first, awbs)
}

/// DHL Express checkpoint code → parcel state (the table in `docs/connectors/dhl.md`).
///
/// Delivered: `OK` delivery, `DD` delivered damaged. Exception (returned, refused, destroyed,
/// stopped, or undeliverable until someone acts): `RT`, `RD`, `DS`, `SS`, `BA`, `CM`. Every
/// other checkpoint (pickup, facility scans, clearance, delivery attempts, holds) is in
/// transit, including codes this table does not know.
pub fn parcel_state(code: &str) -> ParcelState {
    match code.trim().to_ascii_uppercase().as_str() {
        "OK" | "DD" => ParcelState::Delivered,
        "RT" | "RD" | "DS" | "SS" | "BA" | "CM" => ParcelState::Exception,
        _ => ParcelState::InTransit,
    }
}

fn event_time(e: &Event) -> (Option<DateTime<Utc>>, Option<NaiveDateTime>) {
    let date = e
        .date
        .as_deref()
        .and_then(|d| NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok());
    let time = e
        .time
        .as_deref()
        .and_then(|t| {
            let t = t.trim();
            NaiveTime::parse_from_str(t, "%H:%M:%S")
                .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M"))
                .ok()
        })
        .unwrap_or(NaiveTime::MIN);
    let Some(date) = date else {
        return (None, None);
    };
    let local = date.and_time(time);
    let offset = e.gmt_offset.as_deref().and_then(|o| {
        let o = o.trim();
        DateTime::parse_from_str(&format!("2000-01-01T00:00:00{o}"), "%Y-%m-%dT%H:%M:%S%:z")
            .ok()
            .map(|d| *d.offset())
    });
    let at = offset.and_then(|off: FixedOffset| {
        off.from_local_datetime(&local)
            .single()
            .map(|d| d.with_timezone(&Utc))
    });
    (at, Some(at.map_or(local, |a| a.naive_utc())))
}

/// A tracking answer → the status of `awb`: events oldest first (DHL's order is not
/// documented, so they are sorted by time, in UTC when DHL gave the offset), the state from
/// the latest event's code, `Created` when DHL knows the shipment but has no checkpoint yet,
/// `Unknown` when the answer does not mention the AWB.
pub fn tracking_status(awb: &str, resp: &TrackingResponse) -> TrackingStatus {
    let Some(s) = resp.shipments.iter().find(|s| {
        s.shipment_tracking_number
            .as_deref()
            .is_some_and(|a| a.trim() == awb)
    }) else {
        return unknown(awb);
    };
    let mut events: Vec<(Option<NaiveDateTime>, TrackingEvent)> = s
        .events
        .iter()
        .map(|e| {
            let (at, key) = event_time(e);
            (
                key,
                TrackingEvent {
                    at,
                    code: e.type_code.clone().unwrap_or_default(),
                    description: e.description.clone().unwrap_or_default(),
                },
            )
        })
        .collect();
    events.sort_by_key(|a| a.0);
    let events: Vec<TrackingEvent> = events.into_iter().map(|(_, e)| e).collect();
    let state = events
        .iter()
        .rev()
        .find(|e| !e.code.trim().is_empty())
        .map_or(ParcelState::Created, |e| parcel_state(&e.code));
    TrackingStatus {
        awb: awb.to_owned(),
        state,
        events,
    }
}

/// The status of an AWB tracking does not show (yet): new AWBs lag 10-30 minutes, and AWBs
/// made in DHL's test environment never show.
pub fn unknown(awb: &str) -> TrackingStatus {
    TrackingStatus {
        awb: awb.to_owned(),
        state: ParcelState::Unknown,
        events: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canonical::{Currency, Money, Package, Sku};
    use chrono::TimeZone;
    use rust_decimal::dec;
    use serde_json::json;

    fn contact(country: Country, postal: &str) -> Contact {
        Contact {
            name: "Ana Popescu".into(),
            company: None,
            email: Some("ana@example.com".into()),
            phone: Some("+40722000000".into()),
            address_line1: "Str. Lalelelor 3".into(),
            address_line2: None,
            city: "Cluj-Napoca".into(),
            postal_code: postal.into(),
            region: None,
            country: Some(country),
            tax_id: None,
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
    }

    fn request(to: Country, postal: &str) -> ShipmentRequest {
        ShipmentRequest {
            reference: "ORD-CDON-0001".into(),
            shipper: Contact {
                company: Some("Megzo SRL".into()),
                ..contact(Country::RO, "400001")
            },
            receiver: contact(to, postal),
            packages: vec![Package {
                weight_kg: dec!(1.2),
                dimensions_cm: Some((30, 20, 10)),
            }],
            description: "Kitchen goods".into(),
            declared_value: Money::new(dec!(499), Currency::Nok),
            lines: vec![CustomsLine {
                sku: Sku::new("MUG-1").unwrap(),
                description: "Ceramic mug".into(),
                quantity: 2,
                unit_value: dec!(249.5),
                weight_kg: dec!(0.4),
                hs_code: Some("6912.00".into()),
                origin: Country::RO,
            }],
            ship_at: now() + Duration::hours(3),
            invoice_number: Some("MGZ-1001".into()),
        }
    }

    fn cfg() -> Config {
        Config::new("123456789")
    }

    #[test]
    fn planned_date_uses_dhls_format_and_window() {
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 14, 5, 9).unwrap();
        assert_eq!(
            planned_shipping_date(at, now()).unwrap(),
            "2026-11-23T14:05:09 GMT+00:00"
        );
        assert_eq!(parse_planned("2026-11-23T15:05:09 GMT+01:00"), Some(at));
        assert_eq!(parse_planned("2026-11-23 14:05:09"), None);
        // "now" is sent a minute ahead, so it is not in the past when DHL reads it.
        assert_eq!(
            planned_shipping_date(now(), now()).unwrap(),
            "2026-11-22T10:01:00 GMT+00:00"
        );
        let e = planned_shipping_date(now() - Duration::minutes(5), now()).unwrap_err();
        assert!(e.to_string().contains("in the past"), "{e}");
        let e = planned_shipping_date(now() + Duration::days(11), now()).unwrap_err();
        assert!(e.to_string().contains("10 days"), "{e}");
        assert_eq!(e.class(), crate::ErrorClass::Permanent);
    }

    #[test]
    fn customs_only_when_leaving_the_eu_customs_union() {
        let eu = create_request(&cfg(), &request(Country::SE, "11122"), now()).unwrap();
        assert!(!eu.content.is_customs_declarable);
        assert!(eu.content.export_declaration.is_none());
        assert_eq!(eu.product_code, "U");
        let no = create_request(&cfg(), &request(Country::NO, "0150"), now()).unwrap();
        assert!(no.content.is_customs_declarable);
        assert_eq!(no.product_code, "P");
        let decl = no.content.export_declaration.as_ref().unwrap();
        assert_eq!(decl.invoice.number, "MGZ-1001");
        assert_eq!(decl.invoice.date, "2026-11-22");
        let line = serde_json::to_value(&decl.line_items[0]).unwrap();
        assert_eq!(
            line,
            json!({"number": 1, "description": "Ceramic mug", "price": 249.5,
                   "quantity": {"value": 2, "unitOfMeasurement": "PCS"},
                   "commodityCodes": [{"typeCode": "outbound", "value": "691200"}],
                   "manufacturerCountry": "RO",
                   "weight": {"netValue": 0.8, "grossValue": 0.8}})
        );
        assert!(needs_customs(Country::RO, Country::NO));
        assert!(!needs_customs(Country::RO, Country::FI));
        assert!(!needs_customs(Country::RO, Country::RO));
        assert_eq!(product_code(&cfg(), Country::RO, Country::RO), "N");
    }

    #[test]
    fn customs_without_lines_or_invoice_is_refused_by_name() {
        let mut r = request(Country::NO, "0150");
        r.lines.clear();
        let e = create_request(&cfg(), &r, now()).unwrap_err();
        assert!(e.to_string().contains("lines is empty"), "{e}");
        let mut r = request(Country::NO, "0150");
        r.invoice_number = None;
        let e = create_request(&cfg(), &r, now()).unwrap_err();
        assert!(e.to_string().contains("invoice_number"), "{e}");
        // Inside the EU neither is needed.
        let mut r = request(Country::DK, "1050");
        r.lines.clear();
        r.invoice_number = None;
        create_request(&cfg(), &r, now()).unwrap();
    }

    #[test]
    fn voec_goes_to_norway_only() {
        let mut c = cfg();
        c.voec_number = Some("2012345".into());
        let no = create_request(&c, &request(Country::NO, "0150"), now()).unwrap();
        let regs = &no.customer_details.shipper_details.registration_numbers;
        assert_eq!(
            regs,
            &vec![RegistrationNumber {
                type_code: "SDT".into(),
                number: "2012345".into(),
                issuer_country_code: "NO".into()
            }]
        );
        let se = create_request(&c, &request(Country::SE, "11122"), now()).unwrap();
        assert!(
            se.customer_details
                .shipper_details
                .registration_numbers
                .is_empty()
        );
    }

    #[test]
    fn reference_length_is_checked() {
        let mut r = request(Country::SE, "11122");
        r.reference = "R".repeat(35);
        let body = create_request(&cfg(), &r, now()).unwrap();
        assert_eq!(body.customer_references[0].value.len(), 35);
        assert_eq!(body.customer_references[0].type_code.as_deref(), Some("CU"));
        r.reference = "R".repeat(36);
        let e = create_request(&cfg(), &r, now()).unwrap_err();
        assert!(e.to_string().contains("36 characters"), "{e}");
        r.reference = String::new();
        assert!(create_request(&cfg(), &r, now()).is_err());
        assert_eq!(message_reference("L-", "ORD 1/ä"), "L-ORD-1--");
        assert_eq!(message_reference("", &"x".repeat(50)).len(), 36);
    }

    #[test]
    fn missing_contact_fields_are_named() {
        let mut r = request(Country::SE, "11122");
        r.receiver.phone = None;
        let e = create_request(&cfg(), &r, now()).unwrap_err();
        assert!(e.to_string().contains("receiver.phone"), "{e}");
        let mut r = request(Country::SE, "11122");
        r.shipper.city = " ".into();
        let e = create_request(&cfg(), &r, now()).unwrap_err();
        assert!(e.to_string().contains("shipper.city"), "{e}");
        let mut r = request(Country::SE, "11122");
        r.receiver.country = None;
        let e = create_request(&cfg(), &r, now()).unwrap_err();
        assert!(e.to_string().contains("receiver.country"), "{e}");
        let mut r = request(Country::SE, "11122");
        r.packages[0].weight_kg = dec!(0);
        let e = create_request(&cfg(), &r, now()).unwrap_err();
        assert!(e.to_string().contains("packages[0] weight"), "{e}");
        // A private receiver's name fills DHL's required companyName.
        let ok = create_request(&cfg(), &request(Country::SE, "11122"), now()).unwrap();
        let ci = &ok.customer_details.receiver_details.contact_information;
        assert_eq!(ci.company_name, "Ana Popescu");
        assert_eq!(ok.accounts[0].number, "123456789");
        assert!(!ok.pickup.is_requested);
    }

    #[test]
    fn labels_decode_to_pdf_or_fail_naming_the_awb() {
        let pdf = b"%PDF-1.4\n%label\n";
        let b64 = base64::engine::general_purpose::STANDARD.encode(pdf);
        let with_newlines = format!("{}\n{}", &b64[..8], &b64[8..]);
        let docs = vec![
            Document {
                image_format: Some("PDF".into()),
                content: "aW52b2ljZQ==".into(),
                type_code: Some("invoice".into()),
            },
            Document {
                image_format: Some("PDF".into()),
                content: with_newlines,
                type_code: Some("label".into()),
            },
        ];
        assert_eq!(decode_label(&docs, "1234567890").unwrap(), pdf.to_vec());
        let e = decode_label(&docs[..1], "1234567890").unwrap_err();
        assert!(
            e.to_string().contains("1234567890") && e.to_string().contains("no label"),
            "{e}"
        );
        let bad = vec![Document {
            image_format: Some("PDF".into()),
            content: "!!!".into(),
            type_code: Some("label".into()),
        }];
        assert!(
            decode_label(&bad, "1")
                .unwrap_err()
                .to_string()
                .contains("base64")
        );
        let zpl = vec![Document {
            image_format: Some("ZPL".into()),
            content: base64::engine::general_purpose::STANDARD.encode("^XA^XZ"),
            type_code: Some("label".into()),
        }];
        assert!(
            decode_label(&zpl, "1")
                .unwrap_err()
                .to_string()
                .contains("not a PDF")
        );
        let e = shipment_from_created(&cfg(), "R", CreateShipmentResponse::default()).unwrap_err();
        assert_eq!(e.class(), crate::ErrorClass::InDoubt);
    }

    #[test]
    fn tracking_sorts_events_and_maps_states() {
        let resp: TrackingResponse = serde_json::from_value(json!({"shipments": [{
            "shipmentTrackingNumber": "1234567890",
            "events": [
                {"date": "2026-11-24", "time": "09:10:00", "GMTOffset": "+01:00", "typeCode": "OK", "description": "Delivered"},
                {"date": "2026-11-23", "time": "18:00:00", "GMTOffset": "+02:00", "typeCode": "PU", "description": "Picked up"},
                {"date": "2026-11-23", "time": "23:30:00", "GMTOffset": "+01:00", "typeCode": "DF", "description": "Departed"}
            ]}]}))
        .unwrap();
        let t = tracking_status("1234567890", &resp);
        let codes: Vec<_> = t.events.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(codes, ["PU", "DF", "OK"]);
        assert_eq!(t.state, ParcelState::Delivered);
        assert_eq!(
            t.events[0].at,
            Some(Utc.with_ymd_and_hms(2026, 11, 23, 16, 0, 0).unwrap())
        );
        assert_eq!(tracking_status("999", &resp).state, ParcelState::Unknown);
        let created: TrackingResponse = serde_json::from_value(
            json!({"shipments": [{"shipmentTrackingNumber": "1", "events": []}]}),
        )
        .unwrap();
        assert_eq!(tracking_status("1", &created).state, ParcelState::Created);
        assert_eq!(parcel_state("RT"), ParcelState::Exception);
        assert_eq!(parcel_state("wc"), ParcelState::InTransit);
        assert_eq!(parcel_state("ZZ"), ParcelState::InTransit);
    }

    #[test]
    fn lookup_keeps_our_reference_and_the_oldest_awb() {
        let resp: TrackingResponse = serde_json::from_value(json!({"shipments": [
            {"shipmentTrackingNumber": "2222222222", "shipmentTimestamp": "2026-11-22T11:00:00",
             "shipperReferences": [{"value": "ORD-1", "typeCode": "CU"}]},
            {"shipmentTrackingNumber": "1111111111", "shipmentTimestamp": "2026-11-22T10:00:00",
             "shipperReferences": [{"value": "ord-1", "typeCode": "CU"}]},
            {"shipmentTrackingNumber": "3333333333", "shipmentTimestamp": "2026-11-22T09:00:00",
             "shipperReferences": [{"value": "ORD-10", "typeCode": "CU"}]}
        ]}))
        .unwrap();
        let (found, all) = found_shipment(&cfg(), "ORD-1", &resp);
        assert_eq!(all, ["1111111111", "2222222222"]);
        let found = found.unwrap();
        assert_eq!(found.awb, "1111111111");
        assert!(found.tracking_url.unwrap().contains("1111111111"));
        assert!(found.label_pdf.is_empty());
        let (none, _) = found_shipment(&cfg(), "ORD-2", &resp);
        assert!(none.is_none());
        assert_eq!(
            lookup_window(now(), 10),
            ("2026-11-12".to_owned(), "2026-12-02".to_owned())
        );
    }
}
