//! The commerce model every connector converts to and from: listings, stock and price updates,
//! marketplace orders, returns and cancellations, shipments.
//!
//! **Personal data** (names, addresses, phones, e-mails) lives only in [`Contact`], whose
//! `Debug` is redacted, so a `?order` in a log line cannot leak a customer (GDPR processor).

use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ids::{ChannelOrderId, Sku};
use crate::money::{Country, Currency, Money, VatRate};

/// An offer as the product pushes it to a marketplace. Prices are **gross** (VAT included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listing {
    pub sku: Sku,
    /// Groups variants (CDON `parent_sku`); need not be a real SKU.
    pub parent_sku: Option<String>,
    pub title: String,
    /// Plain text; connectors refuse HTML where the marketplace does.
    pub description: String,
    pub brand: Option<String>,
    pub gtin: Option<String>,
    /// The marketplace's category id, as the tenant's mapping chose it.
    pub category: Option<String>,
    /// Image URLs, the main image first.
    pub images: Vec<String>,
    pub prices: Vec<MarketPrice>,
    pub vat: VatRate,
    pub quantity: u32,
    /// For sale (true) or paused.
    pub active: bool,
    /// Handling time in working days before shipping.
    pub handling_days: u8,
}

/// A gross price on one market (country), in that market's currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketPrice {
    pub market: Country,
    pub gross: Money,
    /// The VAT rate of this market when it differs from the listing's (a distance sale under
    /// OSS is taxed at the buyer's country's rate: 25 % in Sweden, 25.5 % in Finland).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vat: Option<VatRate>,
}

/// A new stock level for one SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockUpdate {
    pub sku: Sku,
    pub quantity: u32,
}

/// New prices for one SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceUpdate {
    pub sku: Sku,
    pub prices: Vec<MarketPrice>,
    pub vat: VatRate,
}

/// The marketplace-independent state of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Placed, waiting for the merchant.
    New,
    /// Accepted or confirmed by the merchant, not shipped yet.
    Accepted,
    /// Handed to the courier (tracking sent).
    Shipped,
    /// Delivered or finished.
    Completed,
    /// Cancelled before shipping; the customer is refunded by the marketplace.
    Cancelled,
    /// Reversed or returned after invoicing (Cel.ro storno, return).
    Returned,
    /// A state this product does not act on; the raw state says which.
    Other,
}

/// One marketplace order, with its lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: ChannelOrderId,
    /// Groups orders of one checkout (CDON `customer_order_id`: one order per SKU row).
    pub group_id: Option<String>,
    pub status: OrderStatus,
    /// The marketplace's own state, verbatim (e.g. `CREATED`, or Cel.ro's numeric code).
    pub raw_status: String,
    pub market: Country,
    pub currency: Currency,
    pub placed_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    /// Accept or ship before this, or the marketplace refuses (CDON 403).
    pub ship_by: Option<DateTime<Utc>>,
    pub lines: Vec<OrderLine>,
    /// Gross shipping fee charged to the customer (Cel.ro `taxa_transport`), zero when none.
    pub shipping_fee_gross: Decimal,
    /// Gross total of lines and shipping, as the marketplace states it.
    pub total_gross: Decimal,
    pub customer: Contact,
    /// Where to ship; the customer's address when the marketplace gives only one.
    pub ship_to: Contact,
    /// Tracking numbers already on the order.
    pub tracking: Vec<Tracking>,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The marketplace's line id, where it has one (Cel.ro `id_prod_com`).
    pub line_id: Option<String>,
    pub sku: Sku,
    pub title: String,
    pub quantity: u32,
    /// Gross price of one unit.
    pub unit_price_gross: Decimal,
    pub vat: VatRate,
}

/// A person or company with an address. **Personal data**: `Debug` shows only the country.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Contact {
    pub name: String,
    pub company: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address_line1: String,
    pub address_line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// County or region (Romanian `judet`), where given.
    pub region: Option<String>,
    pub country: Option<Country>,
    /// VAT or company registration number, for companies.
    pub tax_id: Option<String>,
}

impl fmt::Debug for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contact")
            .field("country", &self.country)
            .finish_non_exhaustive()
    }
}

/// A carrier and tracking number sent to (or read from) a marketplace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracking {
    /// The carrier's name as the marketplace spells it (CDON: exactly from its list).
    pub carrier: String,
    pub number: String,
}

/// What happened to an order after it was placed, that the ERP must learn about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReturnEvent {
    /// Stable across polls, so reconciling twice does nothing twice.
    pub event_id: String,
    pub order_id: ChannelOrderId,
    pub kind: ReturnKind,
    /// The lines concerned; empty means the whole order.
    pub lines: Vec<ReturnLine>,
    pub reason: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturnKind {
    /// Cancelled before shipping (CDON `NOT_FULFILLED`, Cel.ro cancel).
    Cancellation,
    /// A customer's return request (Cel.ro), goods coming back.
    ReturnRequest,
    /// A reversal after invoicing (Cel.ro storno: a minus order).
    Reversal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnLine {
    pub sku: Sku,
    pub quantity: u32,
}

/// A parcel to ship for an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipmentRequest {
    /// Deterministic per order (and parcel), at most 35 characters: the courier's customer
    /// reference, so an ambiguous create can be found again instead of made twice.
    pub reference: String,
    pub shipper: Contact,
    pub receiver: Contact,
    pub packages: Vec<Package>,
    /// What is in the parcel, in a few words.
    pub description: String,
    /// Declared value of the goods.
    pub declared_value: Money,
    /// One line per SKU: required by customs outside the EU (Norway).
    pub lines: Vec<CustomsLine>,
    /// When the parcel will be handed over; must not be in the past.
    pub ship_at: DateTime<Utc>,
    /// The merchant's invoice (or proforma) number, for an export declaration.
    pub invoice_number: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Package {
    pub weight_kg: Decimal,
    /// Length, width, height in cm, where known.
    pub dimensions_cm: Option<(u32, u32, u32)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomsLine {
    pub sku: Sku,
    pub description: String,
    pub quantity: u32,
    /// Value of one unit.
    pub unit_value: Decimal,
    pub weight_kg: Decimal,
    /// Harmonized System code, where the catalog has one.
    pub hs_code: Option<String>,
    pub origin: Country,
}

/// A shipment the courier created: the AWB and its label.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    pub awb: String,
    pub reference: String,
    pub tracking_url: Option<String>,
    /// The label as PDF bytes; empty when found by lookup (fetch it separately).
    #[serde(skip)]
    pub label_pdf: Vec<u8>,
}

impl fmt::Debug for Shipment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shipment")
            .field("awb", &self.awb)
            .field("reference", &self.reference)
            .field("tracking_url", &self.tracking_url)
            .field("label_pdf_bytes", &self.label_pdf.len())
            .finish()
    }
}

/// Where a parcel is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackingStatus {
    pub awb: String,
    pub state: ParcelState,
    /// The courier's events, oldest first.
    pub events: Vec<TrackingEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParcelState {
    /// Label made, not handed over yet.
    Created,
    InTransit,
    Delivered,
    /// Returned to the shipper, or failed.
    Exception,
    /// Not visible in tracking yet (new AWBs lag 10-30 minutes).
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackingEvent {
    pub at: Option<DateTime<Utc>>,
    pub code: String,
    pub description: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_debug_hides_personal_data() {
        let c = Contact {
            name: "Ana Popescu".into(),
            phone: Some("+40722000000".into()),
            address_line1: "Str. Lalelelor 3".into(),
            country: Some(Country::RO),
            ..Contact::default()
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("Ana") && !shown.contains("0722") && !shown.contains("Lalele"));
        assert!(shown.contains("RO"), "{shown}");
    }
}

/// One article of an ERP's catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogItem {
    pub sku: Sku,
    pub name: String,
    /// The ERP's selling price of one unit.
    pub price: Decimal,
    /// Whether `price` includes VAT.
    pub price_includes_vat: bool,
    /// `None` when the ERP does not say (the tenant's mapping supplies it).
    pub vat: Option<VatRate>,
    pub currency: Currency,
    /// Unit of measure as the ERP names it (`buc`, `Stück`, `PCS`).
    pub unit: String,
}

/// The quantity of one SKU in one warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    pub sku: Sku,
    pub warehouse: String,
    /// ERPs keep fractional quantities; marketplaces get the floor.
    pub quantity: Decimal,
}

/// The non-fiscal document the product creates in the ERP for a marketplace order. **Never an
/// invoice**: invoices are the merchant's, issued in the ERP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SalesDocumentKind {
    /// SmartBill estimate (proforma).
    Proforma,
    /// lexoffice order confirmation.
    OrderConfirmation,
    /// WinMentor `COMANDA`, Charisma order.
    CustomerOrder,
}

/// A sales document the ERP holds for an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalesDocument {
    pub kind: SalesDocumentKind,
    pub order_id: ChannelOrderId,
    /// The ERP's own id (lexoffice UUID, Charisma id), or `series-number`.
    pub erp_id: String,
    pub series: Option<String>,
    pub number: Option<String>,
    /// Gross total in `currency`, as the ERP computed it.
    pub total_gross: Decimal,
    pub currency: Currency,
    /// The exchange rate recorded on the document when it is in another currency than the
    /// order (lexoffice: EUR only), as order currency units per document currency unit.
    pub exchange_rate: Option<Decimal>,
}

/// The merchant's invoice for an order, fetched from the ERP.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoicePdf {
    pub series: Option<String>,
    pub number: String,
    /// Valid PDF bytes (checked: they start with `%PDF-`).
    #[serde(skip)]
    pub pdf: Vec<u8>,
}

impl fmt::Debug for InvoicePdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvoicePdf")
            .field("series", &self.series)
            .field("number", &self.number)
            .field("pdf_bytes", &self.pdf.len())
            .finish()
    }
}
