//! The result a customer reads: what happened to each file of a folder, and the text of
//! `status.txt`. Customers never see our logs, so this text alone must tell them what was
//! imported and exactly what to fix.
//!
//! ```text
//! SUCCESS                                  ERROR
//! 4155 records were uploaded               users.csv.gz: Parsing Errors:[ Unknown Column: 'x' ]
//!                                          accounts.csv.gz: 120 records were uploaded
//! ```
//! The first line is `SUCCESS` when every data file was imported, else `ERROR`. On success
//! the second line is the total; with several files each then gets a line. On error, each
//! file says what it loaded or lists its errors, capped with "... and N more".

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::validate::{FileError, FileReport, escape};

/// What happened to one file of a folder.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Outcome {
    /// Loaded now.
    Imported { records: u64 },
    /// The same file (key and version) was loaded before; not applied again.
    AlreadyImported {
        records: u64,
        imported_at: DateTime<Utc>,
    },
    /// Skipped whole because of these errors.
    Rejected {
        errors: Vec<FileError>,
        total_errors: u64,
    },
    /// Replaced or removed by the customer while the folder was being processed; the new
    /// version stays in `current/` for the next run.
    Changed,
    /// Not a data file: moved along, not read.
    NotImported,
    /// A key the pipeline cannot handle (a backslash, a name that is not UTF-8, not a regular
    /// file, ...): not read, not moved, left where it is; the folder is finished all the same.
    #[serde(rename = "not_imported")]
    Unhandled { reason: String },
}

/// One file of a folder and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileResult {
    /// The name shown to the customer (the key's part below the folder); `status.json`
    /// shows it escaped as `file`.
    #[serde(skip)]
    pub name: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The file listing every error, when there is one (`users.errors.csv`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors_file: Option<String>,
    /// Something else the customer should know about this file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl FileResult {
    /// The result of validating a file that is (or would be) loaded when valid.
    pub fn from_report(report: &FileReport) -> FileResult {
        let outcome = if report.is_valid() {
            Outcome::Imported {
                records: report.rows,
            }
        } else {
            Outcome::Rejected {
                errors: report.errors.first.clone(),
                total_errors: report.errors.total,
            }
        };
        FileResult {
            name: report.name.clone(),
            outcome,
            errors_file: None,
            note: None,
        }
    }

    /// A file with an outcome but no report (not read, or skipped).
    pub fn new(name: &str, outcome: Outcome) -> FileResult {
        FileResult {
            name: name.to_string(),
            outcome,
            errors_file: None,
            note: None,
        }
    }

    /// Whether this is a data file (`*.csv.gz` directly in the folder), imported or not.
    pub fn is_data(&self) -> bool {
        match self.outcome {
            Outcome::NotImported => false,
            Outcome::Unhandled { .. } => super::is_data_file(&self.name),
            _ => true,
        }
    }

    pub fn is_imported(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::Imported { .. } | Outcome::AlreadyImported { .. }
        )
    }

    /// Records this file contributed to the folder's total.
    pub fn records(&self) -> u64 {
        match self.outcome {
            Outcome::Imported { records } => records,
            _ => 0,
        }
    }

    /// The status lines of this file, each prefixed with its name.
    fn lines(&self, out: &mut Vec<String>) {
        let name = escape(&self.name);
        match &self.outcome {
            Outcome::Imported { records } => out.push(format!("{name}: {}", uploaded(*records))),
            Outcome::AlreadyImported {
                records,
                imported_at,
            } => out.push(format!(
                "{name}: already imported on {} ({}); not applied again",
                imported_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                uploaded(*records)
                    .replace(" were", " were then")
                    .replace(" was", " was then"),
            )),
            Outcome::Rejected {
                errors,
                total_errors,
            } => {
                out.extend(errors.iter().map(|e| format!("{name}: {e}")));
                let more = total_errors - errors.len() as u64;
                if more > 0 {
                    let listed = match &self.errors_file {
                        Some(file) => format!(" (all in {})", escape(file)),
                        None => String::new(),
                    };
                    out.push(format!("{name}: ... and {more} more{listed}"));
                }
            }
            Outcome::Changed => out.push(format!(
                "{name}: replaced or removed while it was being imported; not imported now \
                 (a new version stays in current/ and is imported next)"
            )),
            Outcome::NotImported => out.push(format!(
                "{name}: not imported (only files named *.csv.gz are imported)"
            )),
            Outcome::Unhandled { reason } => out.push(format!(
                "{name}: not imported: {reason}; left in current/ as it is"
            )),
        }
        if let Some(note) = &self.note {
            out.push(format!("{name}: {note}"));
        }
    }
}

/// Whether every data file of a folder was imported (and there was one).
pub fn is_success(files: &[FileResult]) -> bool {
    let mut data = files.iter().filter(|f| f.is_data()).peekable();
    data.peek().is_some() && data.all(FileResult::is_imported)
}

/// Records loaded from the folder now.
pub fn records_uploaded(files: &[FileResult]) -> u64 {
    files.iter().map(FileResult::records).sum()
}

/// The `status.txt` text for the files of a folder (in key order).
pub fn status_text(files: &[FileResult]) -> String {
    let mut lines = Vec::new();
    let data: Vec<&FileResult> = files.iter().filter(|f| f.is_data()).collect();
    if is_success(files) {
        lines.push("SUCCESS".to_string());
        lines.push(uploaded(records_uploaded(files)));
        let plain =
            |f: &&FileResult| matches!(f.outcome, Outcome::Imported { .. }) && f.note.is_none();
        if data.len() > 1 || !data.iter().all(plain) {
            data.iter().for_each(|f| f.lines(&mut lines));
        }
    } else {
        lines.push("ERROR".to_string());
        if data.is_empty() {
            lines
                .push("no data file in this folder: only files named *.csv.gz are imported".into());
        }
        data.iter().for_each(|f| f.lines(&mut lines));
    }
    files
        .iter()
        .filter(|f| !f.is_data())
        .for_each(|f| f.lines(&mut lines));
    lines.push(String::new());
    lines.join("\n")
}

fn uploaded(n: u64) -> String {
    if n == 1 {
        "1 record was uploaded".to_string()
    } else {
        format!("{n} records were uploaded")
    }
}
