//! WinMentor (classic WinMENTOR, Mentor Computer) connector over a **file-exchange
//! directory**: WinMENTOR has no HTTP API, so the product writes WinMENTOR's documented import
//! packages into a directory and reads the exports and import results a Windows-side bridge
//! (DocImpServer `SetDocsData` → `ComenziValide` → `ImportaComenzi` → `GetListaErori`, or the
//! operator's manual import) writes back. The full protocol, with every assumption, is
//! `docs/connectors/winmentor.md`.
//!
//! - **Directory** (`root`, [`exchange::Exchange`]; [`exchange::LocalDir`] today, an SFTP
//!   implementation later): `inbox/` (our `COMANDA_<NrDoc>.txt` packages, written atomically
//!   by temp file + rename/link, never replaced), `results/` (the bridge's
//!   `<package>.result`: `Status=OK|EXISTA|EROARE`, `Importate`, the `GetListaErori` lines),
//!   `exports/` (`stoc.txt` in `GetStocArticole` line format, `articole.txt` in
//!   `GetNomenclatorArticole` format, each under a `#EXPORT;<function>;<company>;<time>;<rows>`
//!   header), `archive/` (processed packages), `sent/` (our journal: which order each
//!   `NrDoc` belongs to, written before the hand-over).
//! - **Formats** ([`format`]): INI-like packages with `;` item lines, dates `dd.mm.yyyy`,
//!   Windows-1250 or UTF-8, `.` or `,` decimals (configurable: the real code page and separator
//!   are not documented).
//! - **Orders** ([`WinMentorClient`] `create_sales_document`): a `Tipdocument=COMANDA`
//!   customer order (non-fiscal; a `FACTURA IESIRE` package is never written), `NrDoc` derived
//!   deterministically from the marketplace order id (FNV-1a into 9 digits, probing on a
//!   collision recorded in `sent/`), `Observatii` carrying the order id; then a short wait
//!   (`result_timeout_ms`) for the result: OK → the document; errors → `Permanent` with
//!   WinMENTOR's lines; nothing → `InDoubt`. A repeated create never writes a second package
//!   for a `NrDoc` that may have been imported: it answers from the result, or waits again.
//! - **Recovery** (`find_sales_document`): by the journal and the result files — OK/`EXISTA`
//!   → `Found`, refused → `Absent`, still in the inbox → a bounded wait, then a retryable
//!   "waiting for WinMentor to import …" (or `NeedsReview`, `pending_lookup`).
//! - **Catalog and stock** from the exports; a missing or stale export is retryable, a
//!   malformed line permanent (file, line, problem).
//! - **Not supported**: invoice PDFs (DocImpServer has no print/PDF function), AWBs. Returns
//!   and cancellations are reported to the merchant (`ForMerchant`): the formats have no
//!   non-fiscal cancellation, and a return needs a storno invoice.
//! - **No credentials**: access to the directory is the credential.
//!
//! [`fake::WinMentorFake`] is the other side for tests: a tokio task that watches the
//! directory, validates and "imports" packages like DocImpServer, and writes results and
//! exports.

pub mod capabilities;
pub mod client;
pub mod config;
pub mod convert;
pub mod errors;
pub mod exchange;
pub mod fake;
pub mod format;

pub use capabilities::capabilities;
pub use client::WinMentorClient;
pub use config::Config;
pub use exchange::{Exchange, LocalDir};
pub use fake::{FakeOptions, WinMentorFake};

/// The system's stable name.
pub const SYSTEM: &str = "winmentor";
