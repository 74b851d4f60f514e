//! The result a customer reads: the text of `status.txt` for a folder (or for the files
//! `dropfolder validate` is given). Customers never see our logs, so this text alone must
//! tell them what was imported and exactly what to fix.
//!
//! ```text
//! SUCCESS                                  ERROR
//! 4155 records were uploaded               users.csv.gz: Parsing Errors:[ Unknown Column: 'x' ]
//!                                          accounts.csv.gz: 120 records were uploaded
//! ```
//! The first line is `SUCCESS` when every data file was imported, else `ERROR`. On success
//! the second line is the total; with several files each then gets a line. On error, each
//! file says what it loaded or lists its errors, capped with "... and N more".

use crate::validate::{FileReport, escape};

/// Whether every data file of a folder was imported.
pub fn is_success(files: &[FileReport]) -> bool {
    !files.is_empty() && files.iter().all(FileReport::is_valid)
}

/// Records loaded from the valid files.
pub fn records_uploaded(files: &[FileReport]) -> u64 {
    files.iter().filter(|f| f.is_valid()).map(|f| f.rows).sum()
}

/// The `status.txt` text for `files` (data files, in key order) and `others` (names of
/// files moved along but not imported).
pub fn status_text(files: &[FileReport], others: &[String]) -> String {
    let mut lines = Vec::new();
    if is_success(files) {
        lines.push("SUCCESS".to_string());
        lines.push(uploaded(records_uploaded(files)));
        if files.len() > 1 {
            lines.extend(
                files
                    .iter()
                    .map(|f| format!("{}: {}", escape(&f.name), uploaded(f.rows))),
            );
        }
    } else {
        lines.push("ERROR".to_string());
        if files.is_empty() {
            lines
                .push("no data file in this folder: only files named *.csv.gz are imported".into());
        }
        for file in files {
            let name = escape(&file.name);
            if file.is_valid() {
                lines.push(format!("{name}: {}", uploaded(file.rows)));
                continue;
            }
            lines.extend(file.errors.first.iter().map(|e| format!("{name}: {e}")));
            if file.errors.more() > 0 {
                lines.push(format!("{name}: ... and {} more", file.errors.more()));
            }
        }
    }
    for name in others {
        lines.push(format!(
            "{}: not imported (only files named *.csv.gz are imported)",
            escape(name)
        ));
    }
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
