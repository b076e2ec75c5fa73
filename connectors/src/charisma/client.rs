//! The Charisma SOAP client: [`CharismaClient`] implements [`Erp`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use canonical::{
    CatalogItem, Contact, Erp as System, InvoicePdf, Order, ReturnEvent, SalesDocument,
    SalesDocumentKind, StockLevel,
};
use chrono::Utc;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, Url};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::capabilities::{NO_INVOICE_PDF, NO_STOCK};
use super::config::{Config, Credentials, PartnerStrategy};
use super::convert::{self, CityMatch};
use super::errors::{self, CallKind};
use super::soap::{self, El, Fields, Scanned, SoapVersion};
use super::wire::{City, Item, OrderRef, OrderReq, PartnerRef, PartnerReq, PriceDetail};
use super::{SYSTEM, capabilities};
use crate::Capabilities;
use crate::erp::{DocumentOptions, Erp, Lookup, ReturnOutcome};
use crate::error::{ConnectorError, Result};
use crate::gate::CallGate;
use crate::http::{Answer, Http, Safety};

/// How long `getCity`'s localities are reused.
const CITY_CACHE: Duration = Duration::from_secs(24 * 3600);

/// A Charisma client for one installation. `Debug` shows the endpoint and settings, never the
/// `ApplicationId` nor cached data.
pub struct CharismaClient {
    http: Http,
    endpoint: Url,
    config: Config,
    credentials: Credentials,
    cache: Mutex<Cache>,
}

impl fmt::Debug for CharismaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CharismaClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("config", &self.config)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Cache {
    /// The nomenclature by `ItemCode`, and when it was read.
    items: Option<(Instant, Arc<HashMap<String, Item>>)>,
    cities: Option<(Instant, Arc<Vec<City>>)>,
}

/// What [`CharismaClient::check_references`] found: the configured ids Charisma's data does
/// not show (worth a look, not an error), and the `CurrencyId`s of prices nobody mapped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReferenceReport {
    pub items: usize,
    pub prices: usize,
    /// `vat_ids` values no article or price uses.
    pub unused_vat_ids: Vec<String>,
    /// `currency_ids` values no price uses.
    pub unused_currency_ids: Vec<String>,
    /// Price `CurrencyId`s missing from `currency_ids`, with how many prices use each.
    pub unmapped_currency_ids: BTreeMap<String, usize>,
}

impl CharismaClient {
    /// Builds a client; `config` is validated first (errors are `ConnectorError::Config`).
    pub fn new(
        config: &Config,
        credentials: Credentials,
        gate: Option<Arc<dyn CallGate>>,
    ) -> Result<Self> {
        config.validate()?;
        let endpoint = config.endpoint_url()?;
        let http = Http::new(SYSTEM, &config.http, gate, soap::error_body)?;
        Ok(Self {
            http,
            endpoint,
            config: config.clone(),
            credentials,
            cache: Mutex::new(Cache::default()),
        })
    }

    /// Builds a client from a connection's stored settings (`null`: defaults, refused for
    /// lacking `endpoint`) and credentials (`{"application_id": "…"}`).
    pub fn from_json(
        config: Value,
        credentials: &Map<String, Value>,
        gate: Option<Arc<dyn CallGate>>,
    ) -> Result<Self> {
        // No settings at all: the defaults, which `validate` refuses naming `endpoint`.
        let config: Config = crate::settings::from_value(SYSTEM, config)?;
        let credentials = Credentials::from_map(credentials)?;
        Self::new(&config, credentials, gate)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// One SOAP call. Sent as non-idempotent to the shared layer (which then repeats only what
    /// provably did nothing: 429, 503, connect failures); a read's server-side failure is
    /// retried here, up to `http.inline_retries` times with jittered backoff.
    async fn call(
        &self,
        op: &'static str,
        operation: &str,
        kind: CallKind,
        children: &[El],
    ) -> Result<Answer> {
        let version = self.config.soap_version;
        let xml = soap::envelope(
            version,
            &self.config.service_namespace,
            self.credentials.application_id.expose_secret(),
            operation,
            children,
        );
        let action = self.config.action_for(operation);
        let content_type = version.content_type(&action);
        let build = || {
            let r = self
                .http
                .request(Method::POST, self.endpoint.as_str())
                .header(CONTENT_TYPE, content_type.as_str())
                .header(ACCEPT, "text/xml, application/soap+xml")
                .body(xml.clone());
            match version {
                SoapVersion::V11 => r.header("SOAPAction", format!("\"{action}\"")),
                SoapVersion::V12 => r,
            }
        };
        let settings = &self.config.http;
        let mut attempt: u32 = 0;
        loop {
            match self.http.send(op, Safety::NonIdempotent, &build).await {
                Ok(a) => return Ok(a),
                Err(e) => {
                    let (e, retry) = errors::reclassify(e, kind);
                    if !retry || attempt >= settings.inline_retries {
                        return Err(e);
                    }
                    let cap = settings
                        .backoff_base_ms
                        .saturating_mul(1 << attempt.min(16))
                        .min(settings.max_inline_wait_ms)
                        .max(1);
                    let wait = rand::random_range(cap / 2..=cap);
                    tracing::debug!(system = SYSTEM, op, error = %e, wait_ms = wait, "retrying read");
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Reads the records keyed by `key` from an answer; a fault or a body that is not an
    /// envelope is an error of the call's kind.
    fn records(
        op: &'static str,
        kind: CallKind,
        answer: &Answer,
        key: &str,
        on_record: impl FnMut(Fields),
    ) -> Result<Scanned> {
        let status = answer.status.as_u16();
        let s = soap::scan(&answer.body, Some(key), on_record)
            .map_err(|why| errors::garbled(op, kind, status, &why, &answer.body))?;
        match &s.fault {
            Some(f) => Err(errors::fault_error(op, kind, status, f)),
            None => Ok(s),
        }
    }

    /// `GetItem`: the whole nomenclature (no paging is known), read record by record.
    async fn get_items(&self) -> Result<Vec<Item>> {
        let ops = &self.config.operations;
        let a = self
            .call("GetItem", &ops.get_item, CallKind::Read, &[])
            .await?;
        let mut items = Vec::new();
        Self::records("GetItem", CallKind::Read, &a, "ItemId", |f| {
            items.push(Item::from_fields(&f))
        })?;
        Ok(items)
    }

    /// `getPrice{PriceListDate}`, by `ItemId` (the first entry of an item wins).
    async fn get_prices(&self) -> Result<HashMap<String, PriceDetail>> {
        let date = self
            .config
            .price_list_date()?
            .unwrap_or_else(|| Utc::now().date_naive());
        let a = self
            .call(
                "getPrice",
                &self.config.operations.get_price,
                CallKind::Read,
                &[El::leaf(
                    "PriceListDate",
                    date.format("%Y-%m-%d").to_string(),
                )],
            )
            .await?;
        let mut prices = HashMap::new();
        Self::records("getPrice", CallKind::Read, &a, "ItemId", |f| {
            let p = PriceDetail::from_fields(&f);
            prices.entry(p.item_id.clone()).or_insert(p);
        })?;
        Ok(prices)
    }

    fn index(items: &[Item]) -> HashMap<String, Item> {
        let mut by_code: HashMap<String, Item> = HashMap::with_capacity(items.len());
        for i in items {
            if i.item_code.is_empty() {
                continue;
            }
            match by_code.get(&i.item_code) {
                // A valid article wins over an invalid one of the same code.
                Some(prev) if prev.is_valid || !i.is_valid => {
                    tracing::warn!(system = SYSTEM, item_code = %i.item_code, "ItemCode used by several articles; the first valid one is used");
                }
                _ => {
                    by_code.insert(i.item_code.clone(), i.clone());
                }
            }
        }
        by_code
    }

    /// The nomenclature for an order: the cached one while fresh and holding every code the
    /// order needs, else read again (once).
    async fn items_for(&self, codes: &[&str]) -> Result<Arc<HashMap<String, Item>>> {
        let mut cache = self.cache.lock().await;
        let ttl = Duration::from_secs(self.config.nomenclature_cache_secs);
        if let Some((at, items)) = &cache.items
            && at.elapsed() < ttl
            && codes.iter().all(|c| items.contains_key(*c))
        {
            return Ok(Arc::clone(items));
        }
        let items = Arc::new(Self::index(&self.get_items().await?));
        cache.items = Some((Instant::now(), Arc::clone(&items)));
        Ok(items)
    }

    async fn forget_items(&self) {
        self.cache.lock().await.items = None;
    }

    /// `getCity`'s localities (cached for a day).
    async fn cities(&self) -> Result<Arc<Vec<City>>> {
        let mut cache = self.cache.lock().await;
        if let Some((at, c)) = &cache.cities
            && at.elapsed() < CITY_CACHE
        {
            return Ok(Arc::clone(c));
        }
        let a = self
            .call(
                "getCity",
                &self.config.operations.get_city,
                CallKind::Read,
                &[],
            )
            .await?;
        let mut cities = Vec::new();
        Self::records("getCity", CallKind::Read, &a, "CityId", |f| {
            cities.push(City::from_fields(&f))
        })?;
        let cities = Arc::new(cities);
        cache.cities = Some((Instant::now(), Arc::clone(&cities)));
        Ok(cities)
    }

    /// Checks the configured `vat_ids` and `currency_ids` against the installation's
    /// nomenclature and price list (run at onboarding and startup). A `VATId` configured for a
    /// rate while Charisma's articles carry it at another rate is a `Config` error; ids not
    /// seen at all are reported.
    pub async fn check_references(&self) -> Result<ReferenceReport> {
        let items = self.get_items().await?;
        let prices = self.get_prices().await?;
        let mut seen_vat: HashMap<String, BTreeSet<String>> = HashMap::new();
        let pairs = items
            .iter()
            .map(|i| (&i.vat_id, i.vat_percent))
            .chain(prices.values().map(|p| (&p.vat_id, p.vat_percent)));
        for (id, pct) in pairs {
            if let (Some(id), Some(p)) = (id, pct) {
                seen_vat
                    .entry(id.clone())
                    .or_default()
                    .insert(p.normalize().to_string());
            }
        }
        let mut report = ReferenceReport {
            items: items.len(),
            prices: prices.len(),
            ..ReferenceReport::default()
        };
        for (pct, id) in &self.config.vat_ids {
            let want = pct.trim().trim_end_matches('%').trim();
            let want = want
                .parse::<rust_decimal::Decimal>()
                .map(|d| d.normalize().to_string())
                .unwrap_or_else(|_| want.to_owned());
            match seen_vat.get(id.trim()) {
                None => report.unused_vat_ids.push(id.clone()),
                Some(rates) if !rates.contains(&want) => {
                    return Err(ConnectorError::config(
                        SYSTEM,
                        format!(
                            "vat_ids: {pct} % maps to VATId {id}, but Charisma's articles carry \
                             VATId {id} at {} %",
                            rates.iter().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        let mut used: BTreeMap<String, usize> = BTreeMap::new();
        for p in prices.values() {
            if let Some(c) = &p.currency_id {
                *used.entry(c.clone()).or_default() += 1;
            }
        }
        for id in self.config.currency_ids.values() {
            if !used.contains_key(id.trim()) {
                report.unused_currency_ids.push(id.clone());
            }
        }
        report.unmapped_currency_ids = used
            .into_iter()
            .filter(|(id, _)| self.config.currency_of(id).is_none())
            .collect();
        let mut cache = self.cache.lock().await;
        cache.items = Some((Instant::now(), Arc::new(Self::index(&items))));
        Ok(report)
    }

    /// `getPartner{FiscalRegistration}`: the first partner listed, if any.
    async fn find_partner(&self, fiscal: &str) -> Result<Option<PartnerRef>> {
        let a = self
            .call(
                "getPartner",
                &self.config.operations.get_partner,
                CallKind::Read,
                &[El::leaf("FiscalRegistration", fiscal)],
            )
            .await?;
        let mut found = Vec::new();
        Self::records("getPartner", CallKind::Read, &a, "PartnerId", |f| {
            found.push(PartnerRef::from_fields(&f))
        })?;
        found.retain(|p| !p.partner_id.is_empty());
        if found.len() > 1 {
            tracing::warn!(
                system = SYSTEM,
                partners = found.len(),
                "several partners share a FiscalRegistration; the first is used"
            );
        }
        Ok(found.into_iter().next())
    }

    /// The locality of an address: by name (and county), else the configured fallback.
    async fn city_for(&self, c: &Contact, fallback: Option<&str>) -> Result<(String, String)> {
        let cities = self.cities().await?;
        match convert::match_city(&cities, &c.city, c.region.as_deref()) {
            CityMatch::One(city) => Ok((city.city_id.clone(), city.city_name.clone())),
            CityMatch::Several(same) => {
                tracing::warn!(
                    system = SYSTEM,
                    candidates = same.len(),
                    "several localities share the city's name and the county did not decide; the first is used"
                );
                Ok((same[0].city_id.clone(), same[0].city_name.clone()))
            }
            CityMatch::None => match fallback {
                Some(id) => Ok((id.trim().to_owned(), c.city.clone())),
                None => Err(ConnectorError::permanent(
                    SYSTEM,
                    "getCity",
                    format!(
                        "city {:?} ({}) is not among Charisma's localities (getCity); add it in \
                         Charisma or set partner.fallback_city_id",
                        c.city,
                        c.region.as_deref().unwrap_or("no county")
                    ),
                )),
            },
        }
    }

    /// The partner (and address) an order is booked to, per the strategy.
    async fn partner_for(&self, order: &Order) -> Result<(String, Option<String>)> {
        let fallback = match &self.config.partner {
            PartnerStrategy::Generic {
                partner_id,
                billing_address_id,
            } => return Ok((partner_id.trim().to_owned(), billing_address_id.clone())),
            PartnerStrategy::PerCustomer { fallback_city_id } => fallback_city_id.as_deref(),
        };
        let customer = &order.customer;
        let address = if order.ship_to.address_line1.trim().is_empty() {
            customer
        } else {
            &order.ship_to
        };
        let tax_id = customer
            .tax_id
            .as_deref()
            .map(|t| {
                t.split_whitespace()
                    .collect::<String>()
                    .to_ascii_uppercase()
            })
            .filter(|t| !t.is_empty());
        let external_id = convert::partner_external_id(&self.config, &order.id);
        let (partner_type, fiscal, vat_payer) = match &tax_id {
            Some(t) => ("PJ", t.clone(), t.starts_with("RO")),
            None => ("PF", external_id.clone(), false),
        };
        if let Some(p) = self.find_partner(&fiscal).await? {
            return Ok((p.partner_id, p.address_id));
        }
        let (city_id, city_name) = self.city_for(address, fallback).await?;
        let name = match (&customer.company, partner_type) {
            (Some(company), "PJ") if !company.trim().is_empty() => company.clone(),
            _ => customer.name.clone(),
        };
        let street = match &address.address_line2 {
            Some(l2) if !l2.trim().is_empty() => format!("{}, {l2}", address.address_line1),
            _ => address.address_line1.clone(),
        };
        let req = PartnerReq {
            external_id,
            partner_type,
            partner_name: name,
            fiscal_registration: fiscal.clone(),
            is_vat_payer: vat_payer,
            email: customer.email.clone().filter(|e| !e.trim().is_empty()),
            address_name: address.name.clone(),
            street,
            city_id,
            city_name,
            person_name: customer.name.clone(),
            phone: customer
                .phone
                .clone()
                .or_else(|| address.phone.clone())
                .filter(|p| !p.trim().is_empty()),
        };
        let created = async {
            let a = self
                .call(
                    "createPartner",
                    &self.config.operations.create_partner,
                    CallKind::Create,
                    &[req.to_el()],
                )
                .await?;
            let mut p = None;
            Self::records("createPartner", CallKind::Create, &a, "PartnerId", |f| {
                p.get_or_insert(PartnerRef::from_fields(&f));
            })?;
            p.filter(|p| !p.partner_id.is_empty()).ok_or_else(|| {
                errors::garbled(
                    "createPartner",
                    CallKind::Create,
                    a.status.as_u16(),
                    "no PartnerId in the answer",
                    &a.body,
                )
            })
        }
        .await;
        match created {
            Ok(p) => Ok((p.partner_id, p.address_id)),
            // Created meanwhile (another worker, or a lookup that lagged): use it.
            Err(e) if errors::is_duplicate_partner(&e) => match self.find_partner(&fiscal).await? {
                Some(p) => Ok((p.partner_id, p.address_id)),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    fn document(&self, order: &Order, found: &OrderRef) -> SalesDocument {
        SalesDocument {
            kind: SalesDocumentKind::CustomerOrder,
            order_id: order.id.clone(),
            erp_id: found.order_id.clone(),
            series: None,
            number: found.number.clone(),
            total_gross: convert::document_total(order),
            currency: order.currency,
            exchange_rate: None,
        }
    }
}

#[async_trait]
impl Erp for CharismaClient {
    fn system(&self) -> System {
        System::Charisma
    }

    fn capabilities(&self) -> Capabilities {
        capabilities()
    }

    async fn catalog(&self) -> Result<Vec<CatalogItem>> {
        let items = self.get_items().await?;
        let prices = self.get_prices().await?;
        let (out, skipped) = convert::catalog_items(&self.config, &items, &prices);
        if out.is_empty() && !skipped.unknown_currency.is_empty() {
            let mut ids: Vec<&String> = skipped.unknown_currency.keys().collect();
            ids.sort();
            return Err(ConnectorError::config(
                SYSTEM,
                format!(
                    "every priced article is in a CurrencyId missing from currency_ids: {}",
                    ids.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if skipped != convert::Skipped::default() {
            tracing::warn!(
                system = SYSTEM,
                invalid = skipped.invalid,
                no_price = skipped.no_price,
                bad_sku = skipped.bad_sku,
                unknown_currency = skipped.unknown_currency.values().sum::<usize>(),
                "catalogue entries skipped"
            );
        }
        let mut cache = self.cache.lock().await;
        cache.items = Some((Instant::now(), Arc::new(Self::index(&items))));
        Ok(out)
    }

    async fn stock(&self, _warehouse: Option<&str>) -> Result<Vec<StockLevel>> {
        Err(ConnectorError::Unsupported {
            system: SYSTEM,
            op: "stock",
            why: NO_STOCK,
        })
    }

    async fn create_sales_document(
        &self,
        order: &Order,
        _options: &DocumentOptions,
    ) -> Result<SalesDocument> {
        let external_id = convert::order_external_id(&self.config, &order.id);
        let currency_id = self
            .config
            .currency_ids
            .get(&order.currency)
            .map(|c| c.trim().to_owned())
            .ok_or_else(|| {
                ConnectorError::config(
                    SYSTEM,
                    format!(
                        "currency_ids has no CurrencyId for {} (order {})",
                        order.currency, order.id
                    ),
                )
            })?;
        let mut codes: Vec<&str> = order.lines.iter().map(|l| l.sku.as_str()).collect();
        if let Some(s) = &self.config.shipping_item_code
            && order.shipping_fee_gross > rust_decimal::Decimal::ZERO
        {
            codes.push(s.trim());
        }
        let items = self.items_for(&codes).await?;
        // Everything the order needs is checked before a partner is made for it.
        convert::order_lines(
            &self.config,
            order,
            &external_id,
            &items,
            &currency_id,
            None,
        )?;
        let (partner_id, address_id) = self.partner_for(order).await?;
        let req = OrderReq {
            external_id: external_id.clone(),
            partner_id,
            billing_address_id: address_id.clone(),
            order_date: order.placed_at.date_naive().format("%Y-%m-%d").to_string(),
            payment_type: self.config.payment_type.trim().to_owned(),
            comments: order.id.to_string(),
            order_state: self.config.order_state.trim().to_owned(),
            warehouse_id: self.config.warehouse.clone(),
            lines: convert::order_lines(
                &self.config,
                order,
                &external_id,
                &items,
                &currency_id,
                address_id.as_deref(),
            )?,
        };
        let sent = self
            .call(
                "createOrder",
                &self.config.operations.create_order,
                CallKind::Create,
                &[req.to_el()],
            )
            .await;
        let a = match sent {
            Ok(a) => a,
            Err(e) => {
                if self.config.external_id_unique
                    && let Some(id) = errors::duplicate_order_id(&e)
                {
                    tracing::info!(system = SYSTEM, order = %order.id, erp_id = %id, "order already in Charisma (duplicate ExternalId)");
                    return Ok(self.document(
                        order,
                        &OrderRef {
                            order_id: id,
                            external_id: Some(external_id),
                            number: None,
                            state: None,
                        },
                    ));
                }
                if e.class() == crate::ErrorClass::Permanent {
                    // An ItemId may have gone stale: read the nomenclature again next time.
                    self.forget_items().await;
                }
                return Err(e);
            }
        };
        let mut created = None;
        Self::records("createOrder", CallKind::Create, &a, "OrderId", |f| {
            created.get_or_insert(OrderRef::from_fields(&f));
        })?;
        let created = created.filter(|o| !o.order_id.is_empty()).ok_or_else(|| {
            errors::garbled(
                "createOrder",
                CallKind::Create,
                a.status.as_u16(),
                &format!("no OrderId in the answer (look it up by ExternalId {external_id})"),
                &a.body,
            )
        })?;
        Ok(self.document(order, &created))
    }

    async fn find_sales_document(&self, order: &Order) -> Result<Lookup> {
        let external_id = convert::order_external_id(&self.config, &order.id);
        let Some(op_name) = &self.config.operations.get_order else {
            return Ok(Lookup::NeedsReview {
                evidence: format!(
                    "Charisma has no order lookup configured for this installation \
                     (operations.get_order): look in Charisma for a customer order with \
                     ExternalId {external_id} (Comments {}) for marketplace order {} before \
                     creating it again",
                    order.id, order.id
                ),
            });
        };
        let a = self
            .call(
                "getOrder",
                op_name,
                CallKind::Read,
                &[El::leaf("ExternalId", &external_id)],
            )
            .await?;
        let mut records = Vec::new();
        Self::records("getOrder", CallKind::Read, &a, "OrderId", |f| {
            records.push(OrderRef::from_fields(&f))
        })?;
        let matching: Vec<&OrderRef> = records
            .iter()
            .filter(|r| r.external_id.as_deref() == Some(external_id.as_str()))
            .collect();
        let unverifiable = records.iter().filter(|r| r.external_id.is_none()).count();
        match (matching.as_slice(), unverifiable) {
            ([one], _) => Ok(Lookup::Found(self.document(order, one))),
            ([], 0) => Ok(Lookup::Absent),
            ([], n) => Ok(Lookup::NeedsReview {
                evidence: format!(
                    "{op_name} for ExternalId {external_id} (marketplace order {}) answered {n} \
                     order(s) without an ExternalId: cannot tell whether one is ours",
                    order.id
                ),
            }),
            (several, _) => Ok(Lookup::NeedsReview {
                evidence: format!(
                    "{op_name}: {} Charisma orders carry ExternalId {external_id} (marketplace \
                     order {}): OrderIds {}",
                    several.len(),
                    order.id,
                    several
                        .iter()
                        .map(|o| o.order_id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }

    async fn invoice_pdf(&self, _document: &SalesDocument) -> Result<Option<InvoicePdf>> {
        Err(ConnectorError::Unsupported {
            system: SYSTEM,
            op: "invoice_pdf",
            why: NO_INVOICE_PDF,
        })
    }

    async fn register_return(
        &self,
        document: &SalesDocument,
        event: &ReturnEvent,
    ) -> Result<ReturnOutcome> {
        let external_id = convert::order_external_id(&self.config, &document.order_id);
        let what = match event.kind {
            canonical::ReturnKind::Cancellation => "was cancelled",
            canonical::ReturnKind::ReturnRequest => "has a return request",
            canonical::ReturnKind::Reversal => "was reversed",
        };
        let lines = if event.lines.is_empty() {
            "the whole order".to_owned()
        } else {
            event
                .lines
                .iter()
                .map(|l| format!("{} × {}", l.quantity, l.sku))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Ok(ReturnOutcome::ForMerchant {
            evidence: format!(
                "marketplace order {} {what} ({lines}{}); its Charisma customer order is \
                 OrderId {} (ExternalId {external_id}). No cancel or credit operation of \
                 Charisma's service is known: cancel the draft order in Charisma, or issue the \
                 credit note there if it was invoiced (a fiscal document is the merchant's)",
                document.order_id,
                event
                    .reason
                    .as_deref()
                    .map(|r| format!("; reason: {r}"))
                    .unwrap_or_default(),
                document.erp_id,
            ),
        })
    }

    async fn invoice_credited(&self, _invoice: &InvoicePdf) -> Result<Option<bool>> {
        Ok(None)
    }
}
