//! The ERP trait: what the flows ask of SmartBill, lexoffice, WinMentor and Charisma, in
//! `canonical` terms.
//!
//! **The product never issues a fiscal document.** The sales document it creates for a
//! marketplace order is a proforma, an order confirmation or a customer order; invoices, storno
//! invoices and credit notes are the merchant's, issued in the ERP. The product only reads
//! invoices (their PDFs, whether they were credited) and never calls e-Factura/ANAF.
//!
//! **No ERP here has an idempotency key**, so [`Erp::create_sales_document`] is the dangerous
//! call: an ambiguous failure is [`ConnectorError::InDoubt`](crate::ConnectorError), and the
//! flow calls [`Erp::find_sales_document`] before anything else. Each connector states its
//! recovery strategy; where no lookup can be trusted the answer is [`Lookup::NeedsReview`],
//! never a second document.

use async_trait::async_trait;
use canonical::{
    CatalogItem, Erp as System, InvoicePdf, Order, ReturnEvent, SalesDocument, StockLevel,
};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::Capabilities;
use crate::error::{ConnectorError, Result};

/// What the flow knows beyond the order when it creates a document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DocumentOptions {
    /// Exchange rate to the ERP's document currency (lexoffice: EUR only), as order-currency
    /// units per document-currency unit, with its date; recorded on the document.
    pub exchange_rate: Option<ExchangeRate>,
    /// Warehouse to reserve or discharge stock from, where the ERP takes one.
    pub warehouse: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExchangeRate {
    pub rate: Decimal,
    pub date: NaiveDate,
    /// Where the rate comes from (e.g. "BNR", "ECB").
    pub source: String,
}

/// The answer of [`Erp::find_sales_document`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "lookup", rename_all = "snake_case")]
pub enum Lookup {
    /// The document made for the order: use it, create nothing.
    Found(SalesDocument),
    /// Certainly no document for the order: creating one is safe.
    Absent,
    /// The ERP cannot tell for certain (no search by our reference, or several candidates): a
    /// person decides; the evidence says what was seen. Never resolved by creating again.
    NeedsReview { evidence: String },
}

/// The answer of [`Erp::register_return`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReturnOutcome {
    /// Registered in the ERP by a non-fiscal act (proforma cancelled, return order imported).
    Registered { reference: String },
    /// It needs a fiscal document (storno invoice, credit note) the merchant must issue: the
    /// evidence tells them what and why.
    ForMerchant { evidence: String },
}

#[async_trait]
pub trait Erp: Send + Sync + std::fmt::Debug {
    fn system(&self) -> System;

    fn capabilities(&self) -> Capabilities;

    /// The articles with their prices and VAT, where the API lists them
    /// ([`ConnectorError::Unsupported`] where it cannot, with the reason and where the catalog
    /// must come from instead).
    async fn catalog(&self) -> Result<Vec<CatalogItem>>;

    /// Stock per warehouse (`None`: every warehouse). Unsupported where the ERP keeps none.
    async fn stock(&self, warehouse: Option<&str>) -> Result<Vec<StockLevel>>;

    /// Creates the non-fiscal sales document for a marketplace order. Never retried after an
    /// ambiguous outcome: that is [`ConnectorError::InDoubt`].
    async fn create_sales_document(
        &self,
        order: &Order,
        options: &DocumentOptions,
    ) -> Result<SalesDocument>;

    /// The document previously created for `order`, if the ERP can tell (recovery).
    async fn find_sales_document(&self, order: &Order) -> Result<Lookup>;

    /// The merchant's invoice for the order's document, once the merchant has issued it
    /// (`None` before). The bytes are checked to be a PDF; anything else fails naming what came.
    async fn invoice_pdf(&self, document: &SalesDocument) -> Result<Option<InvoicePdf>>;

    /// Registers a cancellation or return for the order's document where the ERP has a
    /// non-fiscal way, else reports it for the merchant with the evidence.
    async fn register_return(
        &self,
        document: &SalesDocument,
        event: &ReturnEvent,
    ) -> Result<ReturnOutcome>;

    /// Whether the merchant already credited (reversed) the invoice; `None` where the API
    /// cannot tell.
    async fn invoice_credited(&self, invoice: &InvoicePdf) -> Result<Option<bool>>;
}

/// Checks that `bytes` are a PDF (`%PDF-` header, `%%EOF` near the end); the error names what
/// came instead (the start of a JSON or HTML body).
pub fn check_pdf(system: &'static str, op: &'static str, bytes: &[u8]) -> Result<()> {
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    let has_eof = tail.windows(5).any(|w| w == b"%%EOF");
    if bytes.starts_with(b"%PDF-") && has_eof {
        return Ok(());
    }
    Err(ConnectorError::permanent(
        system,
        op,
        format!(
            "expected a PDF, got {} bytes starting {:?}",
            bytes.len(),
            crate::http::snippet(bytes)
        ),
    ))
}

/// A minimal valid one-page PDF showing `text`, for the fakes' PDFs (invoices, labels).
pub fn minimal_pdf(text: &str) -> Vec<u8> {
    let text: String = text
        .chars()
        .filter(|c| c.is_ascii() && !matches!(c, '(' | ')' | '\\'))
        .collect();
    let content = format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_pdfs_pass_the_check_and_bodies_that_are_not_fail_naming_them() {
        let pdf = minimal_pdf("Factura MGZ 0001");
        check_pdf("smartbill", "invoice_pdf", &pdf).unwrap();
        let json = br#"{"errorText":"Factura nu a fost gasita","message":""}"#;
        let e = check_pdf("smartbill", "invoice_pdf", json).unwrap_err();
        assert!(e.to_string().contains("Factura nu a fost gasita"), "{e}");
        assert!(check_pdf("x", "y", b"%PDF-1.4 truncated").is_err());
    }
}
