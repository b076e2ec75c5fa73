//! A fake WinMentor side of the exchange: a tokio task that watches the directory like the
//! Windows bridge would, "imports" packages with DocImpServer-like validation, and writes
//! results and exports.
//!
//! [`WinMentorFake::start`] creates `inbox/`, `results/`, `exports/` and `archive/` under the
//! root, writes the exports, and polls `inbox/` every `poll_interval` (50 ms). For each
//! `*.txt` package not starting with `.` it:
//! - validates it like `ComenziValide` (messages in Romanian, as `GetListaErori` gives them):
//!   package syntax, `Tipdocument` (only `COMANDA`; anything else is refused and remembered,
//!   so tests can prove no fiscal package was written), `AnLucru`/`LunaLucru` (closed months
//!   refused), `NrDoc` numeric, `Data` `dd.mm.yyyy` inside the work month, `CodClient` known
//!   or described by `[ParteneriNoi_<code>]`, `TotalArticole`, each `Item_k` with exactly 7
//!   `;` fields, a known article code, the article's unit, numbers in the configured
//!   separator, delivery dates;
//! - a `NrDoc` already imported with the same `Observatii` is `Status=EXISTA` (the bridge's
//!   duplicate check), with other `Observatii` an error;
//! - imports (records the order, adds new partners, **reserves** stock in the article's
//!   default warehouse), writes `results/<file>.result`, then moves the package to `archive/`
//!   (result first, as the protocol requires), and rewrites the exports.
//!
//! Faults: [`ErpFake::commit_then_timeout_next`] imports the next package at once but writes
//! its result (and archives it) only `late_result_after` later (800 ms: longer than the test
//! client's 500 ms wait, shorter than two of them); [`WinMentorFake::set_stuck`] stops
//! importing (packages stay in the inbox); [`WinMentorFake::write_exports_at`] back-dates the
//! exports (a stopped bridge); [`WinMentorFake::set_exporting`] stops rewriting them.
//! `garbage_pdf_next` is a no-op (WinMentor has no PDFs); throttling and server errors do not
//! exist for a file exchange (`false`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use canonical::{ChannelOrderId, SalesDocument, Sku, round2};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Utc};
use rust_decimal::Decimal;
use tokio::task::JoinHandle;

use super::client::{ARCHIVE, ARTICOLE_FILE, EXPORTS, INBOX, RESULTS, STOC_FILE, result_path};
use super::config::{DecimalSeparator, FileEncoding};
use super::convert::{
    ARTICOLE_FIELDS, ARTICOLE_FUNCTION, STOC_FIELDS, STOC_FUNCTION, art, bucharest_offset, stoc,
};
use super::errors::{ImportResult, ResultStatus};
use super::exchange::LocalDir;
use super::format::{Codec, Package, fmt_date, parse_date, split_fields, write_export};
use crate::conformance::ErpFake;

/// How the fake WinMentor side behaves.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    pub encoding: FileEncoding,
    pub decimal_separator: DecimalSeparator,
    /// The company named in exports and results.
    pub company: String,
    pub poll_interval: Duration,
    /// Delay of the result after [`ErpFake::commit_then_timeout_next`].
    pub late_result_after: Duration,
    /// Partner codes that exist (the constant marketplace customer).
    pub partners: Vec<String>,
    /// Work months (year, month) that are closed.
    pub closed_months: Vec<(i32, u32)>,
}

impl Default for FakeOptions {
    fn default() -> Self {
        Self {
            encoding: FileEncoding::Windows1250,
            decimal_separator: DecimalSeparator::Comma,
            company: "Firma Demo SRL".into(),
            poll_interval: Duration::from_millis(50),
            late_result_after: Duration::from_millis(800),
            partners: vec!["CLIENTI MARKETPLACE".into()],
            closed_months: Vec::new(),
        }
    }
}

/// An article of the fake's nomenclature.
#[derive(Debug, Clone, PartialEq)]
pub struct Article {
    pub code: String,
    pub name: String,
    pub unit: String,
    /// `PretVanzare` (without VAT).
    pub net_price: Decimal,
    /// `PretVCuTVA`.
    pub gross_price: Decimal,
    /// `CotaTVA` (percent).
    pub vat: Decimal,
    /// `GestImplicita`: where orders reserve.
    pub warehouse: String,
    pub service: bool,
}

/// One imported customer order.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeOrder {
    pub file: String,
    pub nr_doc: u64,
    pub series: String,
    pub date: NaiveDate,
    pub client: String,
    pub observatii: String,
    pub lines: Vec<FakeLine>,
    /// The merchant issued the invoice for it (in WinMENTOR).
    pub invoiced: bool,
    /// The merchant reversed that invoice.
    pub credited: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FakeLine {
    pub code: String,
    pub unit: String,
    pub quantity: Decimal,
    pub price: Decimal,
}

#[derive(Debug, Default)]
struct StockRow {
    stock: Decimal,
    reserved: Decimal,
}

#[derive(Debug)]
struct Delayed {
    due: Instant,
    file: String,
    result: ImportResult,
}

#[derive(Debug, Default)]
struct State {
    articles: BTreeMap<String, Article>,
    stock: BTreeMap<(String, String), StockRow>,
    partners: BTreeSet<String>,
    closed: BTreeSet<(i32, u32)>,
    orders: Vec<FakeOrder>,
    /// Package files in the order they were processed, with their status.
    processed: Vec<(String, ResultStatus)>,
    /// Packages whose `Tipdocument` was not `COMANDA`.
    other_types: Vec<(String, String)>,
    delayed: Vec<Delayed>,
    commit_then_timeout: u32,
    stuck: bool,
    exporting: bool,
    export_time: Option<DateTime<FixedOffset>>,
}

/// The fake WinMentor side of one exchange directory.
#[derive(Debug)]
pub struct WinMentorFake {
    dir: LocalDir,
    codec: Codec,
    options: FakeOptions,
    state: Mutex<State>,
}

impl WinMentorFake {
    /// Creates the directories, writes the (empty) exports and starts watching. The task stops
    /// by itself once every `Arc` of the fake is dropped (or abort the handle).
    pub fn start(root: PathBuf, options: FakeOptions) -> (Arc<Self>, JoinHandle<()>) {
        for d in [INBOX, RESULTS, EXPORTS, ARCHIVE] {
            if let Err(e) = std::fs::create_dir_all(root.join(d)) {
                tracing::warn!(error = %e, dir = d, "fake WinMentor: cannot create directory");
            }
        }
        let state = State {
            partners: options.partners.iter().cloned().collect(),
            closed: options.closed_months.iter().copied().collect(),
            exporting: true,
            ..State::default()
        };
        let fake = Arc::new(Self {
            dir: LocalDir::new(root),
            codec: Codec::new(options.encoding, options.decimal_separator),
            options,
            state: Mutex::new(state),
        });
        fake.write_exports(&mut fake.lock());
        let weak: Weak<Self> = Arc::downgrade(&fake);
        let every = fake.options.poll_interval;
        let handle = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(f) = weak.upgrade() else { break };
                f.tick();
            }
        });
        (fake, handle)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One pass of the watcher: late results that are due, then new packages.
    pub fn tick(&self) {
        let mut st = self.lock();
        if st.stuck {
            return;
        }
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut st.delayed)
            .into_iter()
            .partition(|d| d.due <= now);
        st.delayed = later;
        for d in due {
            self.finish(&d.file, &d.result);
        }
        let names = match self.dir.list_blocking(INBOX) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "fake WinMentor: cannot list the inbox");
                return;
            }
        };
        let mut changed = false;
        for name in names {
            if name.starts_with('.')
                || !name.to_ascii_lowercase().ends_with(".txt")
                || st.delayed.iter().any(|d| d.file == name)
            {
                continue;
            }
            let bytes = match self.dir.read_blocking(&format!("{INBOX}/{name}")) {
                Ok(Some(b)) => b,
                _ => continue,
            };
            let result = self.import(&mut st, &name, &bytes);
            st.processed.push((name.clone(), result.status));
            changed |= result.imported > 0;
            if st.commit_then_timeout > 0 {
                st.commit_then_timeout -= 1;
                st.delayed.push(Delayed {
                    due: Instant::now() + self.options.late_result_after,
                    file: name,
                    result,
                });
            } else {
                self.finish(&name, &result);
            }
        }
        if changed {
            self.write_exports(&mut st);
        }
    }

    /// Result first, then the package to `archive/` (the protocol's order).
    fn finish(&self, file: &str, result: &ImportResult) {
        let bytes = self.codec.encode(&result.to_package().to_text());
        if let Err(e) = self.dir.write_atomic_blocking(&result_path(file), &bytes) {
            tracing::warn!(error = %e, file, "fake WinMentor: cannot write the result");
            return;
        }
        if let Err(e) = self
            .dir
            .rename_blocking(&format!("{INBOX}/{file}"), &format!("{ARCHIVE}/{file}"))
        {
            tracing::warn!(error = %e, file, "fake WinMentor: cannot archive the package");
        }
    }

    fn result(&self, file: &str, status: ResultStatus, imported: u32) -> ImportResult {
        ImportResult {
            file: file.to_owned(),
            company: Some(self.options.company.clone()),
            status,
            imported,
            at: Some(self.now().to_rfc3339()),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn refused(&self, file: &str, errors: Vec<String>) -> ImportResult {
        ImportResult {
            errors,
            ..self.result(file, ResultStatus::Refused, 0)
        }
    }

    fn now(&self) -> DateTime<FixedOffset> {
        let now = Utc::now();
        now.with_timezone(&bucharest_offset(now))
    }

    /// `ComenziValide` + `ImportaComenzi` + `GetListaErori` over one package.
    fn import(&self, st: &mut State, file: &str, bytes: &[u8]) -> ImportResult {
        let text = match self.codec.decode(bytes) {
            Ok(t) => t,
            Err(e) => return self.refused(file, vec![format!("Fisierul nu poate fi citit: {e}")]),
        };
        let p = match Package::parse(&text) {
            Ok(p) => p,
            Err((n, m)) => return self.refused(file, vec![format!("Linia {n}: {m}")]),
        };
        let Some(info) = p.section("InfoPachet") else {
            return self.refused(file, vec!["Lipseste sectiunea [InfoPachet]".into()]);
        };
        let tip = info.get("Tipdocument").unwrap_or_default().to_owned();
        if !tip.eq_ignore_ascii_case("COMANDA") {
            st.other_types.push((file.to_owned(), tip.clone()));
            return self.refused(
                file,
                vec![format!(
                    "Tipdocument \"{tip}\" nu este acceptat de importul de comenzi (se asteapta COMANDA)"
                )],
            );
        }
        let an = info.get("AnLucru").and_then(|v| v.parse::<i32>().ok());
        let luna = info
            .get("LunaLucru")
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|m| (1..=12).contains(m));
        let (Some(an), Some(luna)) = (an, luna) else {
            return self.refused(
                file,
                vec!["AnLucru/LunaLucru lipsesc sau sunt invalide".into()],
            );
        };
        if st.closed.contains(&(an, luna)) {
            return self.refused(
                file,
                vec![format!(
                    "Luna de lucru {luna:02}/{an} este inchisa: documentele nu mai pot fi importate"
                )],
            );
        }
        let Some(total) = info
            .get("TotalComenzi")
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n >= 1)
        else {
            return self.refused(file, vec!["TotalComenzi lipseste sau este invalid".into()]);
        };
        let mut errors = Vec::new();
        let mut new_orders = Vec::new();
        let mut new_partners = Vec::new();
        let mut existing = 0usize;
        for i in 1..=total {
            let Some(c) = p.section(&format!("Comanda_{i}")) else {
                errors.push(format!("Lipseste sectiunea [Comanda_{i}]"));
                continue;
            };
            let field = |k: &str| c.get(k).unwrap_or_default().to_owned();
            let nr_raw = field("NrDoc");
            let Ok(nr) = nr_raw.parse::<u64>() else {
                errors.push(format!("Comanda {i}: NrDoc \"{nr_raw}\" nu este numeric"));
                continue;
            };
            let series = field("SimbolCarnet");
            let date = match parse_date(&field("Data")) {
                Ok(d) => d,
                Err(_) => {
                    errors.push(format!(
                        "Comanda {i}: data \"{}\" este invalida (format asteptat zz.ll.aaaa)",
                        field("Data")
                    ));
                    continue;
                }
            };
            if (date.year(), date.month()) != (an, luna) {
                errors.push(format!(
                    "Comanda {i}: data {} nu apartine lunii de lucru {luna:02}/{an}",
                    fmt_date(date)
                ));
            }
            let client = field("CodClient");
            let partner_section = format!("ParteneriNoi_{client}");
            if client.is_empty() {
                errors.push(format!("Comanda {i}: CodClient lipseste"));
            } else if !st.partners.contains(&client) {
                match p.section(&partner_section).and_then(|s| s.get("Denumire")) {
                    Some(name) if !name.is_empty() => new_partners.push(client.clone()),
                    _ => errors.push(format!(
                        "Comanda {i}: partener inexistent: cod \"{client}\""
                    )),
                }
            }
            let declared = field("TotalArticole").parse::<usize>().ok();
            let items = p.section(&format!("Items_{i}"));
            let present = items
                .map(|s| {
                    s.entries
                        .iter()
                        .filter(|(k, _)| {
                            k.to_ascii_lowercase().starts_with("item_")
                                && k[5..].chars().all(|c| c.is_ascii_digit())
                        })
                        .count()
                })
                .unwrap_or(0);
            let Some(n) = declared.filter(|n| *n == present && *n > 0) else {
                errors.push(format!(
                    "Comanda {i}: TotalArticole={} dar sectiunea [Items_{i}] are {present} articole",
                    field("TotalArticole")
                ));
                continue;
            };
            let mut lines = Vec::new();
            for k in 1..=n {
                let Some(line) = items.and_then(|s| s.get(&format!("Item_{k}"))) else {
                    errors.push(format!("Comanda {i}: lipseste Item_{k}"));
                    continue;
                };
                let f = split_fields(line);
                if f.len() != 7 {
                    errors.push(format!(
                        "Comanda {i}, Item_{k}: numar gresit de campuri ({} in loc de 7)",
                        f.len()
                    ));
                    continue;
                }
                let Some(a) = st.articles.get(&f[0]) else {
                    errors.push(format!(
                        "Articol inexistent in nomenclator: cod \"{}\"",
                        f[0]
                    ));
                    continue;
                };
                if !f[1].eq_ignore_ascii_case(&a.unit) {
                    errors.push(format!(
                        "Unitate de masura necunoscuta \"{}\" pentru articolul \"{}\" (se asteapta \"{}\")",
                        f[1], f[0], a.unit
                    ));
                }
                let quantity = match self.codec.parse_decimal(&f[2]) {
                    Ok(q) if q > Decimal::ZERO => q,
                    _ => {
                        errors.push(format!(
                            "Comanda {i}, Item_{k}: cantitate invalida \"{}\"",
                            f[2]
                        ));
                        continue;
                    }
                };
                let price = match self.codec.parse_decimal(&f[3]) {
                    Ok(v) if v >= Decimal::ZERO => v,
                    _ => {
                        errors.push(format!("Comanda {i}, Item_{k}: pret invalid \"{}\"", f[3]));
                        continue;
                    }
                };
                if !f[4].is_empty() && self.codec.parse_decimal(&f[4]).is_err() {
                    errors.push(format!(
                        "Comanda {i}, Item_{k}: discount invalid \"{}\"",
                        f[4]
                    ));
                }
                if !f[5].is_empty() && parse_date(&f[5]).is_err() {
                    errors.push(format!(
                        "Comanda {i}, Item_{k}: data livrarii \"{}\" este invalida (format asteptat zz.ll.aaaa)",
                        f[5]
                    ));
                }
                lines.push(FakeLine {
                    code: f[0].clone(),
                    unit: a.unit.clone(),
                    quantity,
                    price,
                });
            }
            let observatii = field("Observatii");
            match st
                .orders
                .iter()
                .find(|o| o.nr_doc == nr && o.series == series)
            {
                Some(o) if o.observatii == observatii => {
                    existing += 1;
                    continue;
                }
                Some(_) => {
                    errors.push(format!(
                        "Comanda {i}: exista deja o comanda cu numarul {nr} (alt document)"
                    ));
                    continue;
                }
                None => {}
            }
            new_orders.push(FakeOrder {
                file: file.to_owned(),
                nr_doc: nr,
                series,
                date,
                client,
                observatii,
                lines,
                invoiced: false,
                credited: false,
            });
        }
        if !errors.is_empty() {
            return self.refused(file, errors);
        }
        if new_orders.is_empty() && existing > 0 {
            return self.result(file, ResultStatus::Exists, 0);
        }
        st.partners.extend(new_partners);
        let imported = u32::try_from(new_orders.len()).unwrap_or(u32::MAX);
        for o in new_orders {
            for l in &o.lines {
                let wh = st
                    .articles
                    .get(&l.code)
                    .map(|a| a.warehouse.clone())
                    .unwrap_or_default();
                st.stock.entry((l.code.clone(), wh)).or_default().reserved += l.quantity;
            }
            st.orders.push(o);
        }
        let mut r = self.result(file, ResultStatus::Ok, imported);
        if existing > 0 {
            r.warnings.push(format!(
                "{existing} comenzi existau deja si nu au fost importate"
            ));
        }
        r
    }

    /// Rewrites `exports/stoc.txt` and `exports/articole.txt` (unless exporting is off).
    fn write_exports(&self, st: &mut State) {
        if !st.exporting {
            return;
        }
        let at = st.export_time.unwrap_or_else(|| self.now());
        let d = |v: Decimal| self.codec.fmt_decimal(v);
        let mut stock_rows = Vec::new();
        for ((code, wh), row) in &st.stock {
            let Some(a) = st.articles.get(code) else {
                continue;
            };
            let mut f = vec![String::new(); STOC_FIELDS];
            f[stoc::CODE] = a.code.clone();
            f[stoc::NAME] = a.name.clone();
            f[stoc::UNIT] = a.unit.clone();
            f[stoc::PRICE] = d(a.net_price);
            f[stoc::STOCK] = d(row.stock);
            f[stoc::WAREHOUSE] = wh.clone();
            f[stoc::WAREHOUSE_NAME] = format!("Gestiunea {wh}");
            f[stoc::VAT] = d(a.vat);
            f[stoc::VAT_INCLUDED] = "N".into();
            f[stoc::PRICE_WITH_VAT] = d(a.gross_price);
            f[stoc::RESERVED] = d(row.reserved);
            stock_rows.push(f);
        }
        let mut article_rows = Vec::new();
        for a in st.articles.values() {
            let mut f = vec![String::new(); ARTICOLE_FIELDS];
            f[art::CODE] = a.code.clone();
            f[art::NAME] = a.name.clone();
            f[art::UNIT] = a.unit.clone();
            f[art::PRICE] = d(a.net_price);
            f[art::DEFAULT_WAREHOUSE] = a.warehouse.clone();
            f[9] = a.code.clone();
            f[art::VAT] = d(a.vat);
            f[art::SERVICE] = if a.service { "D" } else { "N" }.into();
            f[19] = fmt_date(at.date_naive());
            f[art::PRICE_WITH_VAT] = d(a.gross_price);
            article_rows.push(f);
        }
        let company = &self.options.company;
        for (file, function, rows) in [
            (STOC_FILE, STOC_FUNCTION, stock_rows),
            (ARTICOLE_FILE, ARTICOLE_FUNCTION, article_rows),
        ] {
            let text = write_export(function, company, at, &rows);
            if let Err(e) = self
                .dir
                .write_atomic_blocking(file, &self.codec.encode(&text))
            {
                tracing::warn!(error = %e, file, "fake WinMentor: cannot write the export");
            }
        }
    }

    // ---- seeding, faults and inspectors ----

    /// Adds (or replaces) an article with `stock` in its default warehouse.
    pub fn seed_article(&self, article: Article, stock: Decimal) {
        let mut st = self.lock();
        let key = (article.code.clone(), article.warehouse.clone());
        st.stock.entry(key).or_default().stock = stock;
        st.articles.insert(article.code.clone(), article);
        self.write_exports(&mut st);
    }

    pub fn add_partner(&self, code: &str) {
        self.lock().partners.insert(code.to_owned());
    }

    pub fn close_month(&self, year: i32, month: u32) {
        self.lock().closed.insert((year, month));
    }

    /// Stuck: nothing is imported, packages stay in the inbox.
    pub fn set_stuck(&self, stuck: bool) {
        self.lock().stuck = stuck;
    }

    /// Whether the exports are rewritten on changes (off: a bridge that stopped exporting).
    pub fn set_exporting(&self, on: bool) {
        self.lock().exporting = on;
    }

    /// Rewrites the exports stamped `at` (and keeps stamping them so); `None`: the clock.
    pub fn write_exports_at(&self, at: Option<DateTime<FixedOffset>>) {
        let mut st = self.lock();
        st.export_time = at;
        self.write_exports(&mut st);
    }

    /// Every imported order.
    pub fn orders(&self) -> Vec<FakeOrder> {
        self.lock().orders.clone()
    }

    /// Package files processed, in order, with the status their result got.
    pub fn processed_packages(&self) -> Vec<(String, ResultStatus)> {
        self.lock().processed.clone()
    }

    /// Packages of another `Tipdocument` than `COMANDA` (file, type): must stay empty.
    pub fn other_document_types(&self) -> Vec<(String, String)> {
        self.lock().other_types.clone()
    }

    /// `(stock, reserved)` of an article in a warehouse.
    pub fn stock_of(&self, code: &str, warehouse: &str) -> Option<(Decimal, Decimal)> {
        self.lock()
            .stock
            .get(&(code.to_owned(), warehouse.to_owned()))
            .map(|r| (r.stock, r.reserved))
    }

    fn orders_matching(st: &State, order: &ChannelOrderId) -> Vec<usize> {
        st.orders
            .iter()
            .enumerate()
            .filter(|(_, o)| o.observatii.split_whitespace().any(|w| w == order.as_str()))
            .map(|(i, _)| i)
            .collect()
    }

    fn mark(&self, document: &SalesDocument, f: impl Fn(&mut FakeOrder)) {
        let mut st = self.lock();
        let nr = document
            .number
            .as_deref()
            .and_then(|n| n.parse::<u64>().ok());
        for i in Self::orders_matching(&st, &document.order_id) {
            if nr.is_none_or(|n| st.orders[i].nr_doc == n) {
                f(&mut st.orders[i]);
            }
        }
    }
}

impl ErpFake for WinMentorFake {
    fn seed_item(&self, sku: &Sku, name: &str, gross: Decimal, stock: u32, warehouse: &str) {
        let vat = Decimal::from(19);
        self.seed_article(
            Article {
                code: sku.as_str().to_owned(),
                name: name.to_owned(),
                unit: "buc".into(),
                net_price: round2(gross / Decimal::new(119, 2)),
                gross_price: gross,
                vat,
                warehouse: warehouse.to_owned(),
                service: false,
            },
            Decimal::from(stock),
        );
    }

    fn documents_for(&self, order: &ChannelOrderId) -> usize {
        Self::orders_matching(&self.lock(), order).len()
    }

    /// Records that the merchant invoiced the order in WinMENTOR (no PDF: there is none).
    fn merchant_invoices(&self, document: &SalesDocument) {
        self.mark(document, |o| o.invoiced = true);
    }

    fn merchant_credits(&self, document: &SalesDocument) {
        self.mark(document, |o| o.credited = true);
    }

    fn commit_then_timeout_next(&self) {
        self.lock().commit_then_timeout += 1;
    }

    /// No-op: WinMentor has no invoice PDFs (the client answers `Unsupported`).
    fn garbage_pdf_next(&self) {}

    fn throttle_next(&self) -> bool {
        false
    }

    fn server_error_next(&self) -> bool {
        false
    }
}
