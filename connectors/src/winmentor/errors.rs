//! The bridge's result files and WinMentor-specific classification.
//!
//! | what happened | class |
//! |---|---|
//! | result `Status=OK`, `Importate=1` (warnings allowed) | success |
//! | result `Status=EXISTA` (the bridge found our `NrDoc` already imported: a re-sent package) | success, nothing new created |
//! | result `Status=EROARE`, `Importate=0` | `Permanent`, WinMentor's `GetListaErori` lines verbatim |
//! | result inconsistent (`EROARE` with `Importate≥1`, `OK` with 0, unreadable) | `InDoubt` on create, `NeedsReview` on lookup |
//! | package handed over, no result within `result_timeout_ms` | `InDoubt` (create) |
//! | export missing, or older than `stale_export_after_secs` | `Retryable` (the bridge is not running) |
//! | export malformed (header, field count, number, encoding) | `Permanent`, naming file, line and problem |
//! | exchange not reachable (root missing, I/O error) | `Retryable` |
//! | permission denied on the exchange | `Auth` (file access is WinMentor's credential) |
//! | a write whose outcome is unknown (`TimedOut` from a remote exchange) | `InDoubt` |

use std::io;

use super::SYSTEM;
use super::format::{Package, Section};
use crate::error::{ConnectorError, NOT_SENT};

/// `Status=` of a result file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultStatus {
    /// Imported (`ComenziValide` = 1, `ImportaComenzi` = count).
    Ok,
    /// Not imported because a document with this `NrDoc` and our `Observatii` is already
    /// there (`GetInfoComenzi`): a package sent twice.
    Exists,
    /// Refused by `ComenziValide`/`ImportaComenzi`; `errors` holds `GetListaErori`.
    Refused,
}

impl ResultStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            ResultStatus::Ok => "OK",
            ResultStatus::Exists => "EXISTA",
            ResultStatus::Refused => "EROARE",
        }
    }
}

/// A result file `results/<package>.result`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportResult {
    /// The package file name it answers.
    pub file: String,
    pub company: Option<String>,
    pub status: ResultStatus,
    /// Documents imported (`ImportaComenzi`'s return value).
    pub imported: u32,
    /// When the bridge finished (RFC 3339), as it wrote it.
    pub at: Option<String>,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// What a result means for the one order a package carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// In WinMentor (imported now, or earlier).
    Imported,
    /// Refused: nothing imported; the error lines.
    Refused(Vec<String>),
    /// The result contradicts itself: a person must look.
    Inconsistent(String),
}

impl ImportResult {
    pub fn to_package(&self) -> Package {
        let mut p = Package::default();
        let mut r = Section::new("Rezultat");
        r.set("Fisier", &self.file);
        if let Some(c) = &self.company {
            r.set("Firma", c);
        }
        r.set("Status", self.status.as_str());
        r.set("Importate", self.imported.to_string());
        if let Some(at) = &self.at {
            r.set("Data", at);
        }
        p.push(r);
        if !self.errors.is_empty() {
            let mut e = Section::new("Erori");
            for (i, m) in self.errors.iter().enumerate() {
                e.set(&format!("Eroare_{}", i + 1), m);
            }
            p.push(e);
        }
        if !self.warnings.is_empty() {
            let mut w = Section::new("Avertismente");
            for (i, m) in self.warnings.iter().enumerate() {
                w.set(&format!("Avertisment_{}", i + 1), m);
            }
            p.push(w);
        }
        p
    }

    /// Reads a result file's text.
    pub fn parse(text: &str) -> Result<ImportResult, String> {
        let p = Package::parse(text).map_err(|(n, m)| format!("line {n}: {m}"))?;
        let r = p
            .section("Rezultat")
            .ok_or_else(|| "no [Rezultat] section".to_owned())?;
        let status = match r.get("Status").map(str::to_ascii_uppercase).as_deref() {
            Some("OK") => ResultStatus::Ok,
            Some("EXISTA") => ResultStatus::Exists,
            Some("EROARE") => ResultStatus::Refused,
            other => {
                return Err(format!(
                    "Status is {other:?}, expected OK, EXISTA or EROARE"
                ));
            }
        };
        let imported = r
            .get("Importate")
            .ok_or_else(|| "no Importate".to_owned())?
            .parse::<u32>()
            .map_err(|_| "Importate is not a number".to_owned())?;
        let lines = |section: &str| -> Vec<String> {
            p.section(section)
                .map(|s| {
                    s.entries
                        .iter()
                        .map(|(_, v)| v.clone())
                        .filter(|v| !v.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(ImportResult {
            file: r.get("Fisier").unwrap_or_default().to_owned(),
            company: r.get("Firma").map(str::to_owned),
            status,
            imported,
            at: r.get("Data").map(str::to_owned),
            errors: lines("Erori"),
            warnings: lines("Avertismente"),
        })
    }

    /// What the result means for a one-order package.
    pub fn outcome(&self) -> Outcome {
        match (self.status, self.imported) {
            (ResultStatus::Ok, 1) | (ResultStatus::Exists, 0) => Outcome::Imported,
            (ResultStatus::Refused, 0) => Outcome::Refused(if self.errors.is_empty() {
                vec!["WinMentor refused the package without an error line".to_owned()]
            } else {
                self.errors.clone()
            }),
            (s, n) => Outcome::Inconsistent(format!(
                "result says Status={} with Importate={n} for a one-order package{}",
                s.as_str(),
                if self.errors.is_empty() {
                    String::new()
                } else {
                    format!(": {}", self.errors.join(" | "))
                }
            )),
        }
    }
}

/// An exchange I/O failure, classified. `what` names the file or directory.
pub fn io_error(op: &'static str, what: &str, e: &io::Error) -> ConnectorError {
    match e.kind() {
        io::ErrorKind::PermissionDenied => ConnectorError::Auth {
            system: SYSTEM,
            op,
            status: None,
            message: format!(
                "permission denied on {what}: give the worker's account read/write access to \
                 the exchange directory ({e})"
            ),
        },
        io::ErrorKind::InvalidInput => {
            ConnectorError::permanent(SYSTEM, op, format!("bad exchange path {what}: {e}"))
        }
        io::ErrorKind::TimedOut => ConnectorError::in_doubt(
            SYSTEM,
            op,
            format!("the exchange did not confirm the write of {what}: {e}"),
        ),
        _ => ConnectorError::retryable(SYSTEM, op, format!("exchange error on {what}: {e}")),
    }
}

/// A write that certainly did not happen (retrying is safe), unless the exchange says the
/// outcome is unknown.
pub fn write_error(op: &'static str, what: &str, e: &io::Error) -> ConnectorError {
    match e.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::InvalidInput | io::ErrorKind::TimedOut => {
            io_error(op, what, e)
        }
        _ => {
            ConnectorError::retryable(SYSTEM, op, format!("{NOT_SENT}could not write {what}: {e}"))
        }
    }
}

/// A malformed file: permanent, naming file, line and problem.
pub fn malformed(op: &'static str, file: &str, line: usize, problem: &str) -> ConnectorError {
    ConnectorError::permanent(SYSTEM, op, format!("{file} line {line}: {problem}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    fn result(status: ResultStatus, imported: u32, errors: &[&str]) -> ImportResult {
        ImportResult {
            file: "COMANDA_123456789.txt".into(),
            company: Some("Firma Test SRL".into()),
            status,
            imported,
            at: Some("2025-01-31T14:03:22+02:00".into()),
            errors: errors.iter().map(|s| (*s).to_owned()).collect(),
            warnings: vec!["Documentul este blocat de alt utilizator".into()],
        }
    }

    #[test]
    fn result_files_round_trip_and_classify() {
        let r = result(
            ResultStatus::Refused,
            0,
            &["Articol inexistent in nomenclator: cod 'X'; verificati"],
        );
        let back = ImportResult::parse(&r.to_package().to_text()).unwrap();
        assert_eq!(back, r);
        assert_eq!(
            back.outcome(),
            Outcome::Refused(vec![
                "Articol inexistent in nomenclator: cod 'X'; verificati".into()
            ])
        );
        assert_eq!(
            result(ResultStatus::Ok, 1, &[]).outcome(),
            Outcome::Imported
        );
        assert_eq!(
            result(ResultStatus::Exists, 0, &[]).outcome(),
            Outcome::Imported
        );
        assert!(matches!(
            result(ResultStatus::Refused, 1, &["x"]).outcome(),
            Outcome::Inconsistent(m) if m.contains("Importate=1")
        ));
        assert!(matches!(
            result(ResultStatus::Ok, 0, &[]).outcome(),
            Outcome::Inconsistent(_)
        ));
        assert!(
            ImportResult::parse("[Rezultat]\nStatus=MAYBE\nImportate=0\n")
                .unwrap_err()
                .contains("MAYBE")
        );
        assert!(
            ImportResult::parse("[Altceva]\n")
                .unwrap_err()
                .contains("[Rezultat]")
        );
    }

    #[test]
    fn io_errors_are_classified() {
        let denied = io::Error::new(io::ErrorKind::PermissionDenied, "denied");
        assert_eq!(
            io_error("stock", "exports/stoc.txt", &denied).class(),
            ErrorClass::Auth
        );
        let gone = io::Error::new(io::ErrorKind::NotFound, "gone");
        assert_eq!(io_error("stock", "x", &gone).class(), ErrorClass::Retryable);
        let lost = io::Error::new(io::ErrorKind::TimedOut, "lost");
        assert_eq!(
            write_error("create", "x", &lost).class(),
            ErrorClass::InDoubt
        );
        let full = io::Error::other("disk full");
        let e = write_error("create", "inbox/A", &full);
        assert_eq!(e.class(), ErrorClass::Retryable);
        assert_eq!(e.for_unsafe_call().class(), ErrorClass::Retryable);
    }
}
