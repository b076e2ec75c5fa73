//! Charisma's messages as the one known client used them [3P C1], read from the flat records
//! [`super::soap::scan`] yields and written as [`El`] trees.
//!
//! Values are read leniently (SOAP sends every scalar as text): a decimal accepts `12.5` or
//! `12,5`, a boolean `true`/`1`. A record without its key field is not a record (the scan
//! guarantees the key); other missing fields are `None`/empty and the conversion decides.

use rust_decimal::Decimal;

use super::soap::{El, Fields};

/// An article of `GetItem` (`ItemList[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub item_id: String,
    pub item_code: String,
    pub item_name: String,
    pub measuring_unit_name: String,
    pub vat_id: Option<String>,
    pub vat_percent: Option<Decimal>,
    /// `IsValid`: absent counts as valid.
    pub is_valid: bool,
    pub is_stockable: Option<bool>,
}

impl Item {
    pub fn from_fields(f: &Fields) -> Self {
        Item {
            item_id: text(f, "ItemId"),
            item_code: text(f, "ItemCode"),
            item_name: text(f, "ItemName"),
            measuring_unit_name: text(f, "MeasuringUnitName"),
            vat_id: opt(f, "VATId"),
            vat_percent: decimal(f, "VATPercent"),
            is_valid: boolean(f, "IsValid").unwrap_or(true),
            is_stockable: boolean(f, "IsStockable"),
        }
    }
}

/// A price of `getPrice` (`PriceList.PriceListDetail[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceDetail {
    pub item_id: String,
    pub price: Option<Decimal>,
    pub price_with_vat: Option<Decimal>,
    pub currency_id: Option<String>,
    pub vat_percent: Option<Decimal>,
    pub vat_id: Option<String>,
}

impl PriceDetail {
    pub fn from_fields(f: &Fields) -> Self {
        PriceDetail {
            item_id: text(f, "ItemId"),
            price: decimal(f, "Price"),
            price_with_vat: decimal(f, "PriceWithVAT"),
            currency_id: opt(f, "CurrencyId"),
            vat_percent: decimal(f, "VATPercent"),
            vat_id: opt(f, "VATId"),
        }
    }
}

/// A locality of `getCity` (`City[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct City {
    pub city_id: String,
    pub city_name: String,
    pub district_name: String,
}

impl City {
    pub fn from_fields(f: &Fields) -> Self {
        City {
            city_id: text(f, "CityId"),
            city_name: text(f, "CityName"),
            district_name: text(f, "DistrictName"),
        }
    }
}

/// A partner of `getPartner` (`PartnerList[]`) or `createPartner` (`PartnerResp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerRef {
    pub partner_id: String,
    /// The first `PartnerAddressId` found in the record (its delivery address).
    pub address_id: Option<String>,
}

impl PartnerRef {
    pub fn from_fields(f: &Fields) -> Self {
        let address_id = opt(f, "DeliveryAddressList.PartnerAddressId")
            .or_else(|| opt(f, "PartnerAddressId"))
            .or_else(|| {
                let mut keys: Vec<&String> = f
                    .keys()
                    .filter(|k| k.ends_with(".PartnerAddressId"))
                    .collect();
                keys.sort();
                keys.first().and_then(|k| opt(f, k))
            });
        PartnerRef {
            partner_id: text(f, "PartnerId"),
            address_id,
        }
    }
}

/// An order record: the answer of `createOrder` (assumed `OrderResp{OrderId, OrderNumber?}`
/// [U]) and of the lookup operation (`OrderList[]{OrderId, ExternalId, OrderNumber?}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRef {
    pub order_id: String,
    pub external_id: Option<String>,
    /// `OrderNumber` or `DocumentNumber`, when the installation sends one.
    pub number: Option<String>,
    pub state: Option<String>,
}

impl OrderRef {
    pub fn from_fields(f: &Fields) -> Self {
        OrderRef {
            order_id: text(f, "OrderId"),
            external_id: opt(f, "ExternalId"),
            number: opt(f, "OrderNumber").or_else(|| opt(f, "DocumentNumber")),
            state: opt(f, "OrderState"),
        }
    }
}

/// `PartnerReq` of `createPartner` [3P C1].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerReq {
    pub external_id: String,
    /// `PF` (person) or `PJ` (company).
    pub partner_type: &'static str,
    pub partner_name: String,
    pub fiscal_registration: String,
    pub is_vat_payer: bool,
    pub email: Option<String>,
    pub address_name: String,
    pub street: String,
    pub city_id: String,
    pub city_name: String,
    pub person_name: String,
    pub phone: Option<String>,
}

impl PartnerReq {
    pub fn to_el(&self) -> El {
        let mut p = vec![
            El::leaf("ExternalId", &self.external_id),
            El::leaf("PartnerType", self.partner_type),
            El::leaf("PartnerName", &self.partner_name),
            El::leaf("FiscalRegistration", &self.fiscal_registration),
            El::leaf("IsVATPayer", bool_text(self.is_vat_payer)),
        ];
        if let Some(e) = &self.email {
            p.push(El::leaf("Email", e));
        }
        p.push(El::node(
            "DeliveryAddressList",
            vec![
                El::leaf("Name", &self.address_name),
                El::leaf("Street", &self.street),
                El::node(
                    "City",
                    vec![
                        El::leaf("CityId", &self.city_id),
                        El::leaf("CityName", &self.city_name),
                    ],
                ),
            ],
        ));
        let mut contact = vec![El::leaf("PersonName", &self.person_name)];
        if let Some(e) = &self.email {
            contact.push(El::leaf("Email", e));
        }
        if let Some(m) = &self.phone {
            contact.push(El::leaf("MobileNumber", m));
        }
        p.push(El::node("ContactInfoList", contact));
        El::node("PartnerReq", p)
    }
}

/// `OrderReq` of `createOrder` [3P C1].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderReq {
    pub external_id: String,
    pub partner_id: String,
    pub billing_address_id: Option<String>,
    /// `YYYY-MM-DD`.
    pub order_date: String,
    pub payment_type: String,
    pub comments: String,
    pub order_state: String,
    pub warehouse_id: Option<String>,
    pub lines: Vec<OrderLineReq>,
}

/// One `ItemList` entry of `OrderReq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLineReq {
    pub external_id: String,
    pub item_id: String,
    pub item_name: String,
    pub quantity: Decimal,
    /// Net unit price.
    pub price: Decimal,
    /// Gross unit price (authoritative: `IsPriceWithVAT` is true).
    pub price_with_vat: Decimal,
    pub vat_id: String,
    /// Net line amount.
    pub amount: Decimal,
    pub vat_amount: Decimal,
    pub currency_id: String,
    pub delivery_address_id: Option<String>,
}

impl OrderReq {
    pub fn to_el(&self) -> El {
        let mut o = vec![
            El::leaf("ExternalId", &self.external_id),
            El::leaf("PartnerId", &self.partner_id),
        ];
        if let Some(b) = &self.billing_address_id {
            o.push(El::leaf("BillingAddressId", b));
        }
        o.extend([
            El::leaf("OrderDate", &self.order_date),
            El::leaf("PaymentType", &self.payment_type),
            El::leaf("Comments", &self.comments),
            El::leaf("OrderState", &self.order_state),
        ]);
        if let Some(w) = &self.warehouse_id {
            o.push(El::leaf("WarehouseId", w));
        }
        let items = self
            .lines
            .iter()
            .map(|l| {
                let mut e = vec![
                    El::leaf("ExternalId", &l.external_id),
                    El::leaf("ItemId", &l.item_id),
                    El::leaf("ItemName", &l.item_name),
                    El::leaf("Quantity", l.quantity.to_string()),
                    El::leaf("Price", l.price.to_string()),
                    El::leaf("PriceWithVAT", l.price_with_vat.to_string()),
                    El::leaf("VATId", &l.vat_id),
                    El::leaf("Amount", l.amount.to_string()),
                    El::leaf("VATAmount", l.vat_amount.to_string()),
                    El::leaf("IsPriceWithVAT", "true"),
                    El::leaf("CurrencyId", &l.currency_id),
                ];
                if let Some(d) = &l.delivery_address_id {
                    e.push(El::leaf("DeliveryAddressId", d));
                }
                El::node("ItemList", e)
            })
            .collect::<Vec<_>>();
        o.extend(items);
        El::node("OrderReq", o)
    }
}

fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// A field's trimmed text, empty when absent.
pub fn text(f: &Fields, k: &str) -> String {
    f.get(k).map(|s| s.trim().to_owned()).unwrap_or_default()
}

/// A field's trimmed text, `None` when absent or blank.
pub fn opt(f: &Fields, k: &str) -> Option<String> {
    f.get(k)
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A decimal field (`12.5` or `12,5`), `None` when absent, blank or not a number.
pub fn decimal(f: &Fields, k: &str) -> Option<Decimal> {
    parse_decimal(f.get(k)?)
}

pub fn parse_decimal(s: &str) -> Option<Decimal> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    s.parse()
        .or_else(|_| s.replace(',', ".").parse())
        .or_else(|_| Decimal::from_scientific(s))
        .ok()
}

/// A boolean field (`true`/`false`/`1`/`0`), `None` when absent or blank.
pub fn boolean(f: &Fields, k: &str) -> Option<bool> {
    match f.get(k)?.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn records_read_leniently() {
        let i = Item::from_fields(&fields(&[
            ("ItemId", "3998"),
            ("ItemCode", " MUG-1 "),
            ("VATPercent", "19,00"),
            ("VATId", "28"),
            ("IsValid", "false"),
            ("MeasuringUnitName", "buc"),
        ]));
        assert_eq!(i.item_code, "MUG-1");
        assert_eq!(i.vat_percent, Some(dec!(19.00)));
        assert!(!i.is_valid);
        assert!(Item::from_fields(&fields(&[("ItemId", "1")])).is_valid);
        let p = PriceDetail::from_fields(&fields(&[("ItemId", "1"), ("PriceWithVAT", "1E+2")]));
        assert_eq!(p.price_with_vat, Some(dec!(100)));
        assert_eq!(p.price, None);
        let partner = PartnerRef::from_fields(&fields(&[
            ("PartnerId", "7"),
            ("PartnerResp.x", "y"),
            ("DeliveryAddressList.PartnerAddressId", "70"),
        ]));
        assert_eq!(partner.address_id.as_deref(), Some("70"));
        let o = OrderRef::from_fields(&fields(&[("OrderId", "5"), ("DocumentNumber", "CMD-5")]));
        assert_eq!(o.number.as_deref(), Some("CMD-5"));
    }

    #[test]
    fn requests_carry_c1s_fields() {
        let req = OrderReq {
            external_id: "MGZ-1".into(),
            partner_id: "228587".into(),
            billing_address_id: Some("234010".into()),
            order_date: "2026-01-02".into(),
            payment_type: "Card".into(),
            comments: "1".into(),
            order_state: "Draft".into(),
            warehouse_id: None,
            lines: vec![OrderLineReq {
                external_id: "MGZ-1-1".into(),
                item_id: "3998".into(),
                item_name: "Mug".into(),
                quantity: dec!(2),
                price: dec!(10),
                price_with_vat: dec!(11.9),
                vat_id: "28".into(),
                amount: dec!(20),
                vat_amount: dec!(3.8),
                currency_id: "25".into(),
                delivery_address_id: None,
            }],
        };
        let s = req.to_el().to_xml();
        for needle in [
            "<OrderState>Draft</OrderState>",
            "<IsPriceWithVAT>true</IsPriceWithVAT>",
            "<ItemList><ExternalId>MGZ-1-1</ExternalId><ItemId>3998</ItemId>",
            "<BillingAddressId>234010</BillingAddressId>",
        ] {
            assert!(s.contains(needle), "{needle} in {s}");
        }
        assert!(!s.contains("WarehouseId"));
    }
}
