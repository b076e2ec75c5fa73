//! [`WinMentorClient`]: the [`Erp`] trait over the file exchange (see the module docs and
//! `docs/connectors/winmentor.md` for the directory protocol).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use canonical::{
    CatalogItem, Currency, Erp as System, InvoicePdf, Order, ReturnEvent, ReturnKind,
    SalesDocument, SalesDocumentKind, Sku, StockLevel,
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::SYSTEM;
use super::capabilities::{NO_INVOICE_PDF, capabilities};
use super::config::{Config, PendingLookup};
use super::convert::{
    ARTICOLE_FIELDS, ARTICOLE_FUNCTION, MAX_PROBES, STOC_FIELDS, STOC_FUNCTION, art, catalog_item,
    nr_doc, order_package, package_file, stock_level,
};
use super::errors::{ImportResult, Outcome, io_error, malformed, write_error};
use super::exchange::{Exchange, LocalDir};
use super::format::{Codec, ExportRow, Package, parse_export};
use crate::Capabilities;
use crate::erp::{DocumentOptions, Erp, Lookup, ReturnOutcome};
use crate::error::{ConnectorError, Result};
use crate::gate::{CallGate, GatePermit};

/// Where we hand packages over (the bridge reads, then moves them to `archive/`).
pub const INBOX: &str = "inbox";
/// Where the bridge writes `<package>.result`.
pub const RESULTS: &str = "results";
/// Where the bridge writes `stoc.txt` and `articole.txt`.
pub const EXPORTS: &str = "exports";
/// Where the bridge moves processed packages (and we move superseded results).
pub const ARCHIVE: &str = "archive";
/// Our own journal: one `<package>.json` per `NrDoc` we claimed. The bridge ignores it.
pub const SENT: &str = "sent";
/// The stock export.
pub const STOC_FILE: &str = "exports/stoc.txt";
/// The catalog export.
pub const ARTICOLE_FILE: &str = "exports/articole.txt";

pub fn inbox_path(file: &str) -> String {
    format!("{INBOX}/{file}")
}
pub fn result_path(file: &str) -> String {
    format!("{RESULTS}/{file}.result")
}
pub fn archive_path(file: &str) -> String {
    format!("{ARCHIVE}/{file}")
}
pub fn sent_path(file: &str) -> String {
    format!("{SENT}/{file}.json")
}

/// A journal entry `sent/<package>.json`: which order a `NrDoc` belongs to. Written once,
/// exclusively, **before** the package is handed over; kept as long as recovery may need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRecord {
    pub order_id: String,
    pub nr_doc: u64,
    pub series: String,
    pub file: String,
    /// The gross total the package carries (WinMENTOR computes its own; the result has none).
    pub total_gross: Decimal,
    pub currency: Currency,
    pub claimed_at: DateTime<Utc>,
}

impl SentRecord {
    fn document(&self, order: &Order) -> SalesDocument {
        let number = self.nr_doc.to_string();
        SalesDocument {
            kind: SalesDocumentKind::CustomerOrder,
            order_id: order.id.clone(),
            erp_id: if self.series.is_empty() {
                number.clone()
            } else {
                format!("{}-{number}", self.series)
            },
            series: Some(self.series.clone()).filter(|s| !s.is_empty()),
            number: Some(number),
            total_gross: self.total_gross,
            currency: self.currency,
            exchange_rate: None,
        }
    }
}

/// The `NrDoc` slot of an order.
enum Slot {
    /// Our journal entry: the order's `NrDoc` is this one.
    Ours(SentRecord),
    /// No entry: this `NrDoc` is free for the order.
    Free(u64),
}

/// Where a claimed package is.
enum State {
    /// The bridge answered (or its answer could not be read: the problem).
    Result(std::result::Result<ImportResult, String>),
    /// In `inbox/`, no result yet: waiting for (or being imported by) WinMentor.
    Pending,
    /// In `archive/` without a result: processed, answer lost.
    ProcessedWithoutResult,
    /// Only our journal entry: the package never reached the exchange.
    NotHandedOver,
}

const OP_CREATE: &str = "create_sales_document";
const OP_FIND: &str = "find_sales_document";

/// The WinMentor connector: import packages in, results and exports out, through an
/// [`Exchange`].
#[derive(Debug, Clone)]
pub struct WinMentorClient {
    config: Config,
    codec: Codec,
    exchange: Arc<dyn Exchange>,
    gate: Option<Arc<dyn CallGate>>,
}

impl WinMentorClient {
    /// A client over the local directory `config.root` (validated first).
    pub fn new(config: &Config) -> Result<Self> {
        config.validate()?;
        let exchange = Arc::new(LocalDir::new(&config.root));
        Self::with_exchange(config, exchange)
    }

    /// A client over any exchange (an SFTP one, later); `config.root` is then only a label.
    pub fn with_exchange(config: &Config, exchange: Arc<dyn Exchange>) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config: config.clone(),
            codec: Codec::new(config.encoding, config.decimal_separator),
            exchange,
            gate: None,
        })
    }

    /// Passes every operation through the account's gate (concurrency/rate limits).
    pub fn with_gate(mut self, gate: Option<Arc<dyn CallGate>>) -> Self {
        self.gate = gate;
        self
    }

    /// From a connection's stored settings and credentials. Settings are required (`root`,
    /// `client_code`); credentials must be empty (file access is the credential).
    pub fn from_json(
        config: Value,
        credentials: &Map<String, Value>,
        gate: Option<Arc<dyn CallGate>>,
    ) -> Result<Self> {
        Config::check_no_credentials(credentials)?;
        let config = Config::from_value(config)?;
        Ok(Self::new(&config)?.with_gate(gate))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    async fn permit(&self) -> Result<GatePermit> {
        match &self.gate {
            Some(g) => g.acquire().await,
            None => Ok(GatePermit::free()),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.result_timeout_ms)
    }

    // ---- exports ----

    async fn read_export(
        &self,
        op: &'static str,
        file: &str,
        function: &str,
        fields: usize,
    ) -> Result<Vec<ExportRow>> {
        let bytes = self
            .exchange
            .read(file)
            .await
            .map_err(|e| io_error(op, file, &e))?
            .ok_or_else(|| {
                ConnectorError::retryable(
                    SYSTEM,
                    op,
                    format!(
                        "no export yet: {file} does not exist in {} (the WinMentor bridge \
                         writes it; is it running?)",
                        self.exchange.location()
                    ),
                )
            })?;
        let text = self
            .codec
            .decode(&bytes)
            .map_err(|p| ConnectorError::permanent(SYSTEM, op, format!("{file}: {p}")))?;
        let (header, rows) =
            parse_export(&text, function, fields).map_err(|(n, p)| malformed(op, file, n, &p))?;
        if let Some(company) = &self.config.company
            && !header.company.eq_ignore_ascii_case(company)
        {
            return Err(ConnectorError::permanent(
                SYSTEM,
                op,
                format!(
                    "{file} is an export of company {:?}, but this connection is for {company:?}",
                    header.company
                ),
            ));
        }
        let age = Utc::now().signed_duration_since(header.generated.to_utc());
        let stale = self.config.stale_export_after_secs;
        if age.num_seconds() > i64::try_from(stale).unwrap_or(i64::MAX) {
            return Err(ConnectorError::retryable(
                SYSTEM,
                op,
                format!(
                    "{file} is stale: generated at {} ({} s ago, more than \
                     stale_export_after_secs = {stale}); is the WinMentor bridge running?",
                    header.generated.to_rfc3339(),
                    age.num_seconds()
                ),
            ));
        }
        Ok(rows)
    }

    /// Article code → unit name from the catalog export, best effort (an order is not held up
    /// by a missing or stale catalog: units rarely change, and `fallback_unit` covers the rest).
    async fn units(&self) -> HashMap<String, String> {
        let bytes = match self.exchange.read(ARTICOLE_FILE).await {
            Ok(Some(b)) => b,
            _ => return HashMap::new(),
        };
        let Ok(text) = self.codec.decode(&bytes) else {
            return HashMap::new();
        };
        match parse_export(&text, ARTICOLE_FUNCTION, ARTICOLE_FIELDS) {
            Ok((_, rows)) => rows
                .into_iter()
                .filter(|r| !r.fields[art::UNIT].is_empty())
                .map(|r| (r.fields[art::CODE].clone(), r.fields[art::UNIT].clone()))
                .collect(),
            Err((n, p)) => {
                tracing::warn!(system = SYSTEM, line = n, problem = %p, "catalog export unreadable; using fallback_unit");
                HashMap::new()
            }
        }
    }

    // ---- orders ----

    /// The order's `NrDoc`: the first probe whose journal entry is ours, or the first free one.
    async fn locate(&self, op: &'static str, order: &Order) -> Result<Slot> {
        let mut foreign = Vec::new();
        for probe in 0..MAX_PROBES {
            let nr = nr_doc(order.id.as_str(), probe, self.config.nr_doc_digits);
            let path = sent_path(&package_file(nr));
            let Some(bytes) = self
                .exchange
                .read(&path)
                .await
                .map_err(|e| io_error(op, &path, &e))?
            else {
                return Ok(Slot::Free(nr));
            };
            let rec: SentRecord = serde_json::from_slice(&bytes).map_err(|e| {
                ConnectorError::permanent(
                    SYSTEM,
                    op,
                    format!("journal entry {path} is unreadable: {e}"),
                )
            })?;
            if rec.order_id == order.id.as_str() {
                return Ok(Slot::Ours(rec));
            }
            foreign.push(format!("{nr} ({})", rec.order_id));
        }
        Err(ConnectorError::permanent(
            SYSTEM,
            op,
            format!(
                "every NrDoc candidate of order {} belongs to another order: {}",
                order.id,
                foreign.join(", ")
            ),
        ))
    }

    async fn read_result(
        &self,
        op: &'static str,
        file: &str,
    ) -> Result<Option<std::result::Result<ImportResult, String>>> {
        let path = result_path(file);
        let Some(bytes) = self
            .exchange
            .read(&path)
            .await
            .map_err(|e| io_error(op, &path, &e))?
        else {
            return Ok(None);
        };
        let parsed = self
            .codec
            .decode(&bytes)
            .and_then(|t| ImportResult::parse(&t))
            .map_err(|p| format!("{path} is unreadable: {p}"))
            .and_then(|r| match (&self.config.company, &r.company) {
                (Some(want), Some(got)) if !want.eq_ignore_ascii_case(got) => Err(format!(
                    "{path} names company {got:?}, but this connection is for {want:?}"
                )),
                _ => Ok(r),
            });
        Ok(Some(parsed))
    }

    /// Where the package is. The inbox is looked at before the results: the bridge writes the
    /// result before it moves the package away, so a package that leaves the inbox between the
    /// two looks is seen with its result.
    async fn state(&self, op: &'static str, file: &str) -> Result<State> {
        let inbox = inbox_path(file);
        let pending = self
            .exchange
            .exists(&inbox)
            .await
            .map_err(|e| io_error(op, &inbox, &e))?;
        if let Some(r) = self.read_result(op, file).await? {
            return Ok(State::Result(r));
        }
        if pending {
            return Ok(State::Pending);
        }
        let archived = archive_path(file);
        if self
            .exchange
            .exists(&archived)
            .await
            .map_err(|e| io_error(op, &archived, &e))?
        {
            // The result may have appeared since: look once more.
            if let Some(r) = self.read_result(op, file).await? {
                return Ok(State::Result(r));
            }
            return Ok(State::ProcessedWithoutResult);
        }
        Ok(State::NotHandedOver)
    }

    async fn wait_result(
        &self,
        op: &'static str,
        file: &str,
        deadline: Instant,
    ) -> Result<Option<std::result::Result<ImportResult, String>>> {
        let poll = Duration::from_millis(self.config.result_poll_ms);
        loop {
            if let Some(r) = self.read_result(op, file).await? {
                return Ok(Some(r));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(poll.min(deadline - now)).await;
        }
    }

    fn build(
        &self,
        order: &Order,
        nr: u64,
        units: &HashMap<String, String>,
    ) -> Result<(Package, Decimal)> {
        let fallback = &self.config.fallback_unit;
        let unit_of = |s: &Sku| units.get(s.as_str()).unwrap_or(fallback).clone();
        let (p, total) = order_package(order, &self.config, &self.codec, nr, Utc::now(), &unit_of)
            .map_err(|m| ConnectorError::permanent(SYSTEM, OP_CREATE, m))?;
        ensure_non_fiscal(&p)?;
        Ok((p, total))
    }

    async fn hand_over(&self, file: &str, package: &Package) -> Result<()> {
        let path = inbox_path(file);
        let bytes = self.codec.encode(&package.to_text());
        match self.exchange.write_new(&path, &bytes).await {
            Ok(true) => {
                tracing::info!(system = SYSTEM, file, "package handed over to WinMentor");
                Ok(())
            }
            // Another worker handed the same package over a moment ago.
            Ok(false) => Ok(()),
            Err(e) => Err(write_error(OP_CREATE, &path, &e)),
        }
    }

    async fn record(&self, rec: &SentRecord, exclusive: bool) -> Result<bool> {
        let path = sent_path(&rec.file);
        let json = serde_json::to_vec_pretty(rec)
            .map_err(|e| ConnectorError::permanent(SYSTEM, OP_CREATE, e.to_string()))?;
        let r = if exclusive {
            self.exchange.write_new(&path, &json).await
        } else {
            self.exchange
                .write_atomic(&path, &json)
                .await
                .map(|()| true)
        };
        r.map_err(|e| write_error(OP_CREATE, &path, &e))
    }

    /// Waits for the result of a handed-over package (create's answer).
    async fn await_import(
        &self,
        order: &Order,
        rec: &SentRecord,
        deadline: Instant,
    ) -> Result<SalesDocument> {
        let file = &rec.file;
        match self.wait_result(OP_CREATE, file, deadline).await? {
            Some(Ok(r)) => self.created(order, rec, &r),
            Some(Err(problem)) => Err(ConnectorError::in_doubt(SYSTEM, OP_CREATE, problem)),
            None => Err(ConnectorError::in_doubt(
                SYSTEM,
                OP_CREATE,
                format!(
                    "handed over {} (NrDoc {}) but WinMentor wrote no result within {} ms; the \
                     import may still happen: look it up before anything else",
                    inbox_path(file),
                    rec.nr_doc,
                    self.config.result_timeout_ms
                ),
            )),
        }
    }

    fn created(&self, order: &Order, rec: &SentRecord, r: &ImportResult) -> Result<SalesDocument> {
        match r.outcome() {
            Outcome::Imported => {
                if !r.warnings.is_empty() {
                    tracing::warn!(system = SYSTEM, file = %rec.file, warnings = %r.warnings.join(" | "), "imported with warnings");
                }
                Ok(rec.document(order))
            }
            Outcome::Refused(errors) => Err(ConnectorError::permanent(
                SYSTEM,
                OP_CREATE,
                format!(
                    "WinMentor refused {} (NrDoc {}, order {}): {}",
                    rec.file,
                    rec.nr_doc,
                    order.id,
                    errors.join(" | ")
                ),
            )),
            Outcome::Inconsistent(m) => Err(ConnectorError::in_doubt(
                SYSTEM,
                OP_CREATE,
                format!("{}: {m}", result_path(&rec.file)),
            )),
        }
    }

    /// Builds, journals (updating the total) and hands over the package of an order whose
    /// `NrDoc` is already ours, then waits.
    async fn resend(
        &self,
        order: &Order,
        mut rec: SentRecord,
        units: &HashMap<String, String>,
        deadline: Instant,
    ) -> Result<SalesDocument> {
        let (package, total) = self.build(order, rec.nr_doc, units)?;
        if total != rec.total_gross {
            rec.total_gross = total;
            self.record(&rec, false).await?;
        }
        self.hand_over(&rec.file, &package).await?;
        self.await_import(order, &rec, deadline).await
    }

    fn lookup_of(&self, order: &Order, rec: &SentRecord, r: &ImportResult) -> Lookup {
        match r.outcome() {
            Outcome::Imported => Lookup::Found(rec.document(order)),
            Outcome::Refused(errors) => {
                tracing::info!(
                    system = SYSTEM,
                    order = %order.id,
                    file = %rec.file,
                    errors = %errors.join(" | "),
                    "WinMentor refused the order's package: no document, creating again is safe"
                );
                Lookup::Absent
            }
            Outcome::Inconsistent(m) => Lookup::NeedsReview {
                evidence: format!(
                    "order {}: {} (NrDoc {}): {m}; check WinMentor's orders for NrDoc {}",
                    order.id,
                    result_path(&rec.file),
                    rec.nr_doc,
                    rec.nr_doc
                ),
            },
        }
    }
}

/// The product never writes a fiscal document: refuse any package that is not a `COMANDA`.
fn ensure_non_fiscal(p: &Package) -> Result<()> {
    let tip = p
        .section("InfoPachet")
        .and_then(|s| s.get("Tipdocument"))
        .unwrap_or_default();
    if tip == "COMANDA" && p.section("Factura_1").is_none() {
        return Ok(());
    }
    Err(ConnectorError::permanent(
        SYSTEM,
        OP_CREATE,
        format!("refusing to write a {tip:?} package: only COMANDA (non-fiscal) is allowed"),
    ))
}

#[async_trait]
impl Erp for WinMentorClient {
    fn system(&self) -> System {
        System::WinMentor
    }

    fn capabilities(&self) -> Capabilities {
        capabilities()
    }

    async fn catalog(&self) -> Result<Vec<CatalogItem>> {
        const OP: &str = "catalog";
        let _permit = self.permit().await?;
        let rows = self
            .read_export(OP, ARTICOLE_FILE, ARTICOLE_FUNCTION, ARTICOLE_FIELDS)
            .await?;
        let mut items = Vec::with_capacity(rows.len());
        for r in rows {
            match catalog_item(&self.codec, &r.fields)
                .map_err(|p| malformed(OP, ARTICOLE_FILE, r.line, &p))?
            {
                Ok(item) => items.push(item),
                Err(why) => {
                    tracing::debug!(system = SYSTEM, line = r.line, why = %why, "article skipped")
                }
            }
        }
        Ok(items)
    }

    async fn stock(&self, warehouse: Option<&str>) -> Result<Vec<StockLevel>> {
        const OP: &str = "stock";
        let _permit = self.permit().await?;
        let rows = self
            .read_export(OP, STOC_FILE, STOC_FUNCTION, STOC_FIELDS)
            .await?;
        let only = warehouse.or(self.config.warehouse.as_deref());
        let mut levels = Vec::with_capacity(rows.len());
        for r in rows {
            match stock_level(&self.codec, &r.fields, self.config.stock_quantity)
                .map_err(|p| malformed(OP, STOC_FILE, r.line, &p))?
            {
                Ok(l) if only.is_none_or(|w| l.warehouse == w) => levels.push(l),
                Ok(_) => {}
                Err(why) => {
                    tracing::warn!(system = SYSTEM, line = r.line, why = %why, "stock row skipped")
                }
            }
        }
        Ok(levels)
    }

    async fn create_sales_document(
        &self,
        order: &Order,
        options: &DocumentOptions,
    ) -> Result<SalesDocument> {
        let _permit = self.permit().await?;
        let deadline = Instant::now() + self.timeout();
        if let Some(w) = &options.warehouse {
            tracing::debug!(system = SYSTEM, warehouse = %w, "COMANDA has no warehouse field; WinMentor reserves in the article's default warehouse");
        }
        let units = self.units().await;
        // Refuse an impossible order before claiming a NrDoc for it.
        self.build(order, 0, &units)?;
        for _ in 0..3 {
            match self.locate(OP_CREATE, order).await? {
                Slot::Free(nr) => {
                    let (package, total) = self.build(order, nr, &units)?;
                    let rec = SentRecord {
                        order_id: order.id.as_str().to_owned(),
                        nr_doc: nr,
                        series: self.config.series.clone(),
                        file: package_file(nr),
                        total_gross: total,
                        currency: order.currency,
                        claimed_at: Utc::now(),
                    };
                    if !self.record(&rec, true).await? {
                        // Another worker claimed this NrDoc a moment ago: look again.
                        continue;
                    }
                    self.hand_over(&rec.file, &package).await?;
                    return self.await_import(order, &rec, deadline).await;
                }
                Slot::Ours(rec) => {
                    return match self.state(OP_CREATE, &rec.file).await? {
                        State::Result(Ok(r)) => match r.outcome() {
                            Outcome::Refused(errors) => {
                                // Resubmission after a refusal (the merchant fixed WinMentor's
                                // data and replayed): nothing was imported under this NrDoc.
                                let from = result_path(&rec.file);
                                let to = format!(
                                    "{ARCHIVE}/{}.refused-{}.result",
                                    rec.file,
                                    Utc::now().format("%Y%m%dT%H%M%S%3fZ")
                                );
                                tracing::info!(system = SYSTEM, file = %rec.file, previous = %errors.join(" | "), "re-sending a refused package");
                                self.exchange
                                    .rename(&from, &to)
                                    .await
                                    .map_err(|e| io_error(OP_CREATE, &from, &e))?;
                                self.resend(order, rec, &units, deadline).await
                            }
                            _ => {
                                tracing::info!(system = SYSTEM, file = %rec.file, "order already handed over; nothing written");
                                self.created(order, &rec, &r)
                            }
                        },
                        State::Result(Err(problem)) => {
                            Err(ConnectorError::in_doubt(SYSTEM, OP_CREATE, problem))
                        }
                        State::Pending => {
                            tracing::info!(system = SYSTEM, file = %rec.file, "package already waiting in the inbox; not written again");
                            self.await_import(order, &rec, deadline).await
                        }
                        State::ProcessedWithoutResult => Err(ConnectorError::in_doubt(
                            SYSTEM,
                            OP_CREATE,
                            format!(
                                "{} was processed but {} is missing: check WinMentor's orders \
                                 for NrDoc {}",
                                archive_path(&rec.file),
                                result_path(&rec.file),
                                rec.nr_doc
                            ),
                        )),
                        State::NotHandedOver => self.resend(order, rec, &units, deadline).await,
                    };
                }
            }
        }
        Err(ConnectorError::retryable(
            SYSTEM,
            OP_CREATE,
            format!(
                "{}could not claim a NrDoc for order {}: other writers keep taking them",
                crate::error::NOT_SENT,
                order.id
            ),
        ))
    }

    async fn find_sales_document(&self, order: &Order) -> Result<Lookup> {
        let _permit = self.permit().await?;
        let rec = match self.locate(OP_FIND, order).await? {
            Slot::Free(_) => return Ok(Lookup::Absent),
            Slot::Ours(rec) => rec,
        };
        let result = match self.state(OP_FIND, &rec.file).await? {
            State::Result(r) => r,
            State::NotHandedOver => return Ok(Lookup::Absent),
            State::ProcessedWithoutResult => {
                return Ok(Lookup::NeedsReview {
                    evidence: format!(
                        "order {}: {} was processed by the WinMentor bridge but {} is missing; \
                         check WinMentor's orders for NrDoc {}",
                        order.id,
                        archive_path(&rec.file),
                        result_path(&rec.file),
                        rec.nr_doc
                    ),
                });
            }
            State::Pending => {
                let deadline = Instant::now() + self.timeout();
                match self.wait_result(OP_FIND, &rec.file, deadline).await? {
                    Some(r) => r,
                    None => {
                        let waiting = format!(
                            "waiting for WinMentor to import {} (NrDoc {}, order {}, handed over \
                             {})",
                            inbox_path(&rec.file),
                            rec.nr_doc,
                            order.id,
                            rec.claimed_at.to_rfc3339()
                        );
                        return match self.config.pending_lookup {
                            PendingLookup::Retry => {
                                Err(ConnectorError::retryable(SYSTEM, OP_FIND, waiting))
                            }
                            PendingLookup::Review => Ok(Lookup::NeedsReview { evidence: waiting }),
                        };
                    }
                }
            }
        };
        Ok(match result {
            Ok(r) => self.lookup_of(order, &rec, &r),
            Err(problem) => Lookup::NeedsReview {
                evidence: format!("order {} (NrDoc {}): {problem}", order.id, rec.nr_doc),
            },
        })
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
        if document.kind != SalesDocumentKind::CustomerOrder {
            return Err(ConnectorError::permanent(
                SYSTEM,
                "register_return",
                format!(
                    "document {} is a {:?}, not a WinMentor customer order",
                    document.erp_id, document.kind
                ),
            ));
        }
        let nr = document.number.as_deref().unwrap_or(&document.erp_id);
        let series = document
            .series
            .as_deref()
            .map(|s| format!(" series {s}"))
            .unwrap_or_default();
        let lines = if event.lines.is_empty() {
            "the whole order".to_owned()
        } else {
            event
                .lines
                .iter()
                .map(|l| format!("{} × {}", l.sku, l.quantity))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let reason = event
            .reason
            .as_deref()
            .map(|r| format!(" (reason: {r})"))
            .unwrap_or_default();
        let evidence = match event.kind {
            ReturnKind::Cancellation => format!(
                "Marketplace order {} was cancelled{reason}, {lines}. In WinMENTOR, cancel \
                 (anulați) customer order NrDoc {nr}{series} (Observatii \"Comanda marketplace \
                 {}\") so it stops reserving stock; if it was already invoiced, issue the storno \
                 invoice. The import formats have no cancellation package, so the connector \
                 changes nothing in WinMENTOR.",
                event.order_id, event.order_id
            ),
            ReturnKind::ReturnRequest | ReturnKind::Reversal => format!(
                "Marketplace order {} was {}{reason}, {lines}. If customer order NrDoc \
                 {nr}{series} was invoiced, issue the storno invoice (FACTURA IESIRE with \
                 negative quantities) in WinMENTOR — a fiscal document the connector never \
                 writes; if it was not invoiced, cancel the order.",
                event.order_id,
                if event.kind == ReturnKind::Reversal {
                    "reversed after invoicing"
                } else {
                    "returned by the customer"
                }
            ),
        };
        Ok(ReturnOutcome::ForMerchant { evidence })
    }

    async fn invoice_credited(&self, _invoice: &InvoicePdf) -> Result<Option<bool>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::winmentor::format::Section;

    #[test]
    fn only_comanda_packages_pass_the_fiscal_guard() {
        let mut p = Package::default();
        let mut info = Section::new("InfoPachet");
        info.set("Tipdocument", "COMANDA");
        p.push(info.clone());
        ensure_non_fiscal(&p).unwrap();
        let mut f = Package::default();
        let mut info = Section::new("InfoPachet");
        info.set("Tipdocument", "FACTURA IESIRE");
        f.push(info);
        let e = ensure_non_fiscal(&f).unwrap_err();
        assert!(e.to_string().contains("FACTURA IESIRE"), "{e}");
        p.push(Section::new("Factura_1"));
        assert!(ensure_non_fiscal(&p).is_err());
    }
}
