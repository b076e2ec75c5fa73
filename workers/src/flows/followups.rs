//! What follows an order's ERP document: the merchant's invoice PDF (`invoice_attach`) and the
//! parcel (`awb_push`).
//!
//! **`invoice_attach` never creates an invoice**: invoices are fiscal and the merchant's, issued
//! in the ERP (there is no code path here that could issue one or call e-Factura/ANAF). Once the
//! ERP has the invoice for an order's document, its PDF (checked to be a PDF) is attached where
//! the marketplace takes one (Cel.ro); where it does not (CDON) or the ERP cannot hand out PDFs
//! (WinMentor, Charisma), the order records `unsupported` with the reason. An invoice also tells
//! the stock flow that an ERP whose documents do not move stock (SmartBill proformas) now shows
//! the order's units.
//!
//! **`awb_push` mints one AWB per order**: the intent (a deterministic reference of at most 35
//! characters) is written to the order's row before the courier is called; an intent found by a
//! later attempt, or a create whose outcome is unknown, is looked up by that reference first.
//! A lookup that finds nothing right after an ambiguous create waits
//! [`super::FlowOptions::awb_lookup_grace`] (the courier's search lags) before minting again.
//! Then the marketplace order is shipped with the carrier and tracking number.

use canonical::{
    ChannelOrderId, Contact, Country, CustomsLine, Money, Order, Package, SalesDocument,
    ShipmentRequest, Tracking,
};
use chrono::Utc;
use connectors::marketplace::InvoiceFile;
use connectors::{ConnectorError, ErrorClass, Flow};
use rust_decimal::Decimal;

use super::Ctx;
use crate::db::flows::{self as store, Need, OrderWork};
use crate::queue::service::JobError;

fn parse<T: serde::de::DeserializeOwned>(
    what: &str,
    row: &OrderWork,
    v: &Option<serde_json::Value>,
) -> Result<T, JobError> {
    let v = v.clone().ok_or_else(|| {
        JobError::permanent(format!(
            "order {} has no stored {what}",
            row.channel_order_id
        ))
    })?;
    serde_json::from_value(v).map_err(|e| {
        JobError::permanent(format!(
            "order {}: the stored {what} cannot be read: {e}",
            row.channel_order_id
        ))
    })
}

pub(crate) async fn invoices(ctx: &Ctx) -> Result<(), JobError> {
    // Each waiting order has its own check schedule (so a few hundred uninvoiced orders cannot
    // spend the ERP account's budget); an ERP webhook about an invoice checks them at once.
    let woken = matches!(ctx.trigger, queue_schema::Trigger::Webhook);
    let rows = store::orders_needing_when(
        &ctx.pool,
        ctx.conn.id,
        Need::Invoice,
        ctx.options.invoice_batch,
        woken,
    )
    .await
    .map_err(JobError::retryable)?;
    let erp_cannot = ctx.erp.capabilities().why_not(Flow::InvoiceAttach);
    let market_cannot = ctx.market.capabilities().why_not(Flow::InvoiceAttach);
    let mut failures = Vec::new();
    for row in rows {
        if ctx.run_lock_lost() {
            return Err(JobError::retryable(
                "invoice_attach: the run lock was lost (expired or taken by another run); \
                 stopped before the next order",
            ));
        }
        if let Some(why) = erp_cannot {
            store::set_invoice(&ctx.pool, row.id, "unsupported", None, Some(why))
                .await
                .map_err(JobError::retryable)?;
            continue;
        }
        let doc: SalesDocument = parse("document", &row, &row.document_json)?;
        let pdf = match ctx.erp.invoice_pdf(&doc).await {
            Ok(Some(pdf)) => pdf,
            Ok(None) => {
                store::invoice_waiting(
                    &ctx.pool,
                    row.id,
                    ctx.options.invoice_recheck,
                    ctx.options.invoice_recheck_cap,
                )
                .await
                .map_err(JobError::retryable)?;
                continue;
            }
            Err(e) if e.class() == ErrorClass::Retryable => return Err(e.into()),
            Err(e) => {
                let note = format!("the invoice cannot be fetched: {e}");
                store::set_invoice(&ctx.pool, row.id, "failed", None, Some(&note))
                    .await
                    .map_err(JobError::retryable)?;
                failures.push(format!("{}: {note}", row.channel_order_id));
                continue;
            }
        };
        // The merchant's invoice moved the stock in an ERP whose document did not.
        if !ctx.document_moves_stock() {
            let skus = store::mark_reflected(&ctx.pool, row.id)
                .await
                .map_err(JobError::retryable)?;
            let skus = skus
                .iter()
                .filter_map(|s| canonical::Sku::new(s).ok())
                .collect();
            ctx.push_stock_everywhere(skus).await?;
        }
        let invoice = Some((&pdf.series, pdf.number.as_str()));
        if let Some(why) = market_cannot {
            store::set_invoice(&ctx.pool, row.id, "unsupported", invoice, Some(why))
                .await
                .map_err(JobError::retryable)?;
            continue;
        }
        let id = ChannelOrderId::new(&row.channel_order_id).map_err(JobError::permanent)?;
        let (series, number) = series_and_number(pdf.series.as_deref(), &pdf.number);
        let file = InvoiceFile {
            series,
            number,
            pdf: pdf.pdf.clone(),
        };
        match ctx.market.attach_invoice(&id, &file).await {
            Ok(_) => {
                store::set_invoice(&ctx.pool, row.id, "attached", invoice, None)
                    .await
                    .map_err(JobError::retryable)?;
                tracing::info!(order = %id, invoice = %pdf.number, "invoice attached");
            }
            Err(e) if e.class() == ErrorClass::Retryable => return Err(e.into()),
            Err(e) => {
                let note = format!("{} refused the invoice: {e}", ctx.channel);
                store::set_invoice(&ctx.pool, row.id, "failed", invoice, Some(&note))
                    .await
                    .map_err(JobError::retryable)?;
                failures.push(format!("{id}: {note}"));
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(JobError::permanent(format!(
            "{} invoices not attached: {}",
            failures.len(),
            failures.join("; ")
        )))
    }
}

/// An invoice's series and number as a marketplace wants them apart (Cel.ro): the ERP's own
/// series, else the letters before the digits of its number (lexoffice `RE0001` → `RE`,
/// `0001`), else `-` for a number without letters.
pub fn series_and_number(series: Option<&str>, number: &str) -> (String, String) {
    if let Some(s) = series.filter(|s| !s.trim().is_empty()) {
        return (s.to_owned(), number.to_owned());
    }
    let cut = number
        .char_indices()
        .find(|(_, c)| c.is_ascii_digit())
        .map_or(number.len(), |(i, _)| i);
    let (prefix, digits) = number.split_at(cut);
    let prefix = prefix.trim_end_matches(['-', '/', ' ']);
    if prefix.is_empty() || digits.is_empty() {
        ("-".to_owned(), number.to_owned())
    } else {
        (prefix.to_owned(), digits.to_owned())
    }
}

/// The courier reference of an order: deterministic, at most 35 characters.
pub fn shipment_reference(channel: &str, order: &str) -> String {
    let r = format!("MGZ-{}-{order}", channel.to_uppercase());
    if r.len() <= 35 {
        return r;
    }
    format!("MGZ-{}", &super::sha256_hex(r.as_bytes())[..24])
}

/// The shipment of an order: shipper and parcel from the connection's `flows` settings
/// (`shipper`: a contact; `parcel_weight_kg`, default 1), customs lines for a parcel leaving the
/// EU customs union, with the ERP document's number as the export declaration's.
fn shipment_request(
    ctx: &Ctx,
    order: &Order,
    doc: Option<&SalesDocument>,
    reference: &str,
) -> Result<ShipmentRequest, JobError> {
    let shipper: Contact = ctx
        .flow_setting("shipper")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| JobError::permanent(format!("settings flows.shipper: {e}")))?
        .ok_or_else(|| {
            JobError::permanent(
                "no shipper address: set settings.flows.shipper (name, address_line1, city, postal_code, country, phone) on the connection",
            )
        })?;
    let weight = ctx
        .flow_setting("parcel_weight_kg")
        .and_then(|v| {
            v.as_str()
                .map(str::to_owned)
                .or_else(|| Some(v.to_string()))
        })
        .and_then(|s| s.parse::<Decimal>().ok())
        .unwrap_or(Decimal::ONE);
    let origin = shipper.country.unwrap_or(Country::RO);
    let units: u32 = order.lines.iter().map(|l| l.quantity).sum::<u32>().max(1);
    let per_unit = (weight / Decimal::from(units))
        .round_dp(3)
        .max(Decimal::new(1, 3));
    let leaves_union = order
        .ship_to
        .country
        .is_some_and(|c| !c.in_eu_customs_union());
    let lines = if leaves_union {
        order
            .lines
            .iter()
            .map(|l| CustomsLine {
                sku: l.sku.clone(),
                description: l.title.chars().take(70).collect(),
                quantity: l.quantity,
                unit_value: l.unit_price_gross,
                weight_kg: per_unit,
                hs_code: None,
                origin,
            })
            .collect()
    } else {
        Vec::new()
    };
    let description: String = order
        .lines
        .iter()
        .map(|l| l.title.as_str())
        .collect::<Vec<_>>()
        .join(", ")
        .chars()
        .take(70)
        .collect();
    Ok(ShipmentRequest {
        reference: reference.to_owned(),
        shipper,
        receiver: order.ship_to.clone(),
        packages: vec![Package {
            weight_kg: weight,
            dimensions_cm: None,
        }],
        description,
        declared_value: Money::new(order.total_gross, order.currency),
        lines,
        ship_at: Utc::now() + chrono::Duration::minutes(30),
        invoice_number: doc.map(|d| {
            d.number
                .as_ref()
                .map(|n| format!("{}{n}", d.series.clone().unwrap_or_default()))
                .unwrap_or_else(|| d.erp_id.clone())
                .chars()
                .take(35)
                .collect()
        }),
    })
}

pub(crate) async fn awbs(ctx: &Ctx) -> Result<(), JobError> {
    let mut failures = Vec::new();
    let rows = store::orders_needing(&ctx.pool, ctx.conn.id, Need::Awb, ctx.options.batch)
        .await
        .map_err(JobError::retryable)?;
    // The courier's rate limit paces this loop: stop within the run budget and leave the rest
    // to the next run, instead of running into the job's timeout.
    let started = std::time::Instant::now();
    for row in rows {
        if ctx.run_lock_lost() {
            return Err(JobError::retryable(
                "awb_push: the run lock was lost (expired or taken by another run); stopped \
                 before the next order",
            ));
        }
        if started.elapsed() > ctx.options.run_budget {
            tracing::info!("awb_push: run budget spent; the next run goes on");
            break;
        }
        let Some(courier) = ctx.courier.clone() else {
            store::awb_parked(
                &ctx.pool,
                row.id,
                "unsupported",
                "no courier on this connection: the merchant ships and enters tracking on the marketplace",
            )
            .await
            .map_err(JobError::retryable)?;
            continue;
        };
        let order: Order = parse("order", &row, &row.order_json)?;
        let doc: Option<SalesDocument> = parse("document", &row, &row.document_json).ok();
        let reference = shipment_reference(ctx.channel, &row.channel_order_id);
        if let Err(e) = mint(
            ctx,
            courier.as_ref(),
            &row,
            &order,
            doc.as_ref(),
            &reference,
        )
        .await
        {
            failures.push(format!("{}: {e}", row.channel_order_id));
        }
    }
    ship(ctx, &mut failures).await?;
    if failures.is_empty() {
        Ok(())
    } else {
        Err(JobError::retryable(format!(
            "{} orders not shipped yet: {}",
            failures.len(),
            failures.join("; ")
        )))
    }
}

async fn mint(
    ctx: &Ctx,
    courier: &dyn connectors::Courier,
    row: &OrderWork,
    order: &Order,
    doc: Option<&SalesDocument>,
    reference: &str,
) -> Result<(), JobError> {
    let db = |e: crate::db::DbError| JobError::retryable(e);
    // An intent from an earlier attempt: the courier may have made it.
    if row.awb_state.as_deref() == Some("intent") {
        let reference = row.awb_reference.as_deref().unwrap_or(reference);
        if let Some(s) = courier
            .find_by_reference(reference, order.placed_at)
            .await?
        {
            return record_awb(ctx, row, &s.awb).await;
        }
        let since = store::awb_intent_at(&ctx.pool, row.id).await.map_err(db)?;
        let grace = chrono::Duration::from_std(ctx.options.awb_lookup_grace)
            .unwrap_or(chrono::Duration::zero());
        if since.is_some_and(|t| Utc::now() - t < grace) {
            return Err(JobError::retryable(format!(
                "the AWB create for reference {reference} was in doubt and the courier does not show it yet: waiting before minting again"
            )));
        }
    }
    let Some(reference) = store::awb_intent(&ctx.pool, row.id, reference)
        .await
        .map_err(db)?
    else {
        // Cancelled since this run listed it: the intent is the last point before the courier.
        tracing::info!(order = %row.channel_order_id, "awb_push: order cancelled meanwhile; no AWB");
        return Ok(());
    };
    let request = shipment_request(ctx, order, doc, &reference)?;
    match courier.create_shipment(&request).await {
        Ok(s) => record_awb(ctx, row, &s.awb).await,
        Err(e) if e.class() == ErrorClass::InDoubt => {
            match courier.find_by_reference(&reference, order.placed_at).await {
                Ok(Some(s)) => record_awb(ctx, row, &s.awb).await,
                _ => Err(JobError::retryable(format!(
                    "AWB create in doubt ({e}); looked up again by {reference} before any new create"
                ))),
            }
        }
        Err(e) => {
            // Certainly nothing made: the intent goes, the next attempt creates at once.
            store::awb_clear_intent(&ctx.pool, row.id, &e.to_string())
                .await
                .map_err(db)?;
            if e.class() == ErrorClass::Retryable {
                Err(e.into())
            } else {
                store::awb_parked(&ctx.pool, row.id, "needs_review", &e.to_string())
                    .await
                    .map_err(db)?;
                Err(JobError::permanent(format!(
                    "the courier refused the shipment: {e}"
                )))
            }
        }
    }
}

async fn record_awb(ctx: &Ctx, row: &OrderWork, awb: &str) -> Result<(), JobError> {
    let ok = store::awb_created(&ctx.pool, row.id, awb)
        .await
        .map_err(JobError::retryable)?;
    if !ok {
        return Err(JobError::permanent(format!(
            "order {} already has another AWB; {awb} was not recorded (check the courier for a duplicate)",
            row.channel_order_id
        )));
    }
    tracing::info!(order = %row.channel_order_id, awb, "AWB minted");
    Ok(())
}

/// Ships every order with an AWB and no tracking on the marketplace yet.
async fn ship(ctx: &Ctx, failures: &mut Vec<String>) -> Result<(), JobError> {
    let rows = store::orders_needing(&ctx.pool, ctx.conn.id, Need::Ship, ctx.options.batch)
        .await
        .map_err(JobError::retryable)?;
    let carrier = ctx
        .conn
        .courier
        .map(|c| match c {
            canonical::Courier::Dhl => "DHL".to_owned(),
            other => other.as_str().to_owned(),
        })
        .unwrap_or_default();
    for row in rows {
        let Some(awb) = row.awb.clone() else { continue };
        let id = ChannelOrderId::new(&row.channel_order_id).map_err(JobError::permanent)?;
        let tracking = [Tracking {
            carrier: carrier.clone(),
            number: awb,
        }];
        match ctx.market.ship_order(&id, &tracking).await {
            Ok(_) => store::mark_shipped(&ctx.pool, row.id)
                .await
                .map_err(JobError::retryable)?,
            Err(e @ ConnectorError::Unsupported { .. }) => {
                failures.push(format!("{id}: {e}"));
            }
            Err(e) => failures.push(format!("{id}: tracking not sent: {e}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoice_numbers_split_into_series_and_number() {
        assert_eq!(
            series_and_number(Some("FCT"), "0001"),
            ("FCT".into(), "0001".into())
        );
        assert_eq!(
            series_and_number(None, "RE0001"),
            ("RE".into(), "0001".into())
        );
        assert_eq!(
            series_and_number(None, "RE-2026-7"),
            ("RE".into(), "2026-7".into())
        );
        assert_eq!(
            series_and_number(None, "12345"),
            ("-".into(), "12345".into())
        );
        assert_eq!(
            series_and_number(Some(" "), "ABC"),
            ("-".into(), "ABC".into())
        );
    }

    #[test]
    fn shipment_references_are_deterministic_and_short() {
        let a = shipment_reference("cdon", "7000001");
        assert_eq!(a, "MGZ-CDON-7000001");
        let long = "X".repeat(60);
        let b = shipment_reference("celro", &long);
        assert!(b.len() <= 35 && b == shipment_reference("celro", &long));
        assert_ne!(b, shipment_reference("cdon", &long));
    }
}
