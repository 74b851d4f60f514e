//! `errors.csv`: every located error of a rejected file (up to `limits.max_listed_errors`),
//! so a customer can fix a 350,000-row file without guessing from the first 100 messages.
//! Errors are spooled to a temporary file as they are found, not held in memory. The
//! customer opens this file in a spreadsheet, so a cell that would start a formula is
//! neutralised as OWASP's CSV-injection guidance says: prefixed with `'` and quoted.

use std::io::{self, BufWriter, Write};
use std::sync::{Arc, Mutex};

use tempfile::NamedTempFile;

use crate::validate::{ErrorListener, FileError, escape};

const HEADER: &str = "file,line,column,value,message\n";

/// The spool of one file's errors.
pub struct ErrorSpool {
    inner: Arc<Mutex<Spool>>,
}

struct Spool {
    /// The data file's name, in every row.
    file: String,
    out: BufWriter<NamedTempFile>,
    cap: u64,
    listed: u64,
    unlisted: u64,
    /// The first write error; the spool stops writing after it.
    failed: Option<io::Error>,
}

/// The validator's side of a spool.
struct Listener(Arc<Mutex<Spool>>);

impl ErrorSpool {
    /// A spool for the errors of `file`, listing at most `cap`, and the listener to give the
    /// validator.
    pub fn new(file: &str, cap: u64) -> io::Result<(ErrorSpool, Box<dyn ErrorListener>)> {
        let mut out = BufWriter::new(NamedTempFile::new()?);
        out.write_all(HEADER.as_bytes())?;
        let inner = Arc::new(Mutex::new(Spool {
            file: escape(file),
            out,
            cap,
            listed: 0,
            unlisted: 0,
            failed: None,
        }));
        Ok((
            ErrorSpool {
                inner: inner.clone(),
            },
            Box::new(Listener(inner)),
        ))
    }

    /// The finished file, or `None` when there was no error.
    pub fn finish(self) -> io::Result<Option<NamedTempFile>> {
        let spool = match Arc::try_unwrap(self.inner) {
            Ok(mutex) => mutex.into_inner().unwrap_or_else(|p| p.into_inner()),
            Err(_) => return Err(io::Error::other("the error spool is still in use")),
        };
        let Spool {
            file,
            mut out,
            cap,
            listed,
            unlisted,
            failed,
        } = spool;
        if let Some(e) = failed {
            return Err(e);
        }
        if listed == 0 {
            return Ok(None);
        }
        if unlisted > 0 {
            let note = format!(
                "... and {unlisted} more errors, not listed (limits.max_listed_errors = {cap})"
            );
            write_row(&mut out, &[&file, "", "", "", &note])?;
        }
        out.into_inner().map(Some).map_err(|e| e.into_error())
    }
}

impl ErrorListener for Listener {
    fn error(&mut self, error: &FileError) {
        let Ok(mut spool) = self.0.lock() else { return };
        if spool.failed.is_some() {
            return;
        }
        if spool.listed >= spool.cap {
            spool.unlisted += 1;
            return;
        }
        spool.listed += 1;
        let line = error.line.map(|l| l.to_string()).unwrap_or_default();
        let file = spool.file.clone();
        let row = [
            file.as_str(),
            &line,
            error.column.as_deref().unwrap_or(""),
            error.value.as_deref().unwrap_or(""),
            &error.message,
        ];
        if let Err(e) = write_row(&mut spool.out, &row) {
            spool.failed = Some(e);
        }
    }
}

fn write_row(out: &mut impl Write, fields: &[&str]) -> io::Result<()> {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        if starts_formula(field) {
            write!(out, "\"'{}\"", field.replace('"', "\"\""))?;
        } else if field.contains([',', '"', '\n', '\r']) {
            write!(out, "\"{}\"", field.replace('"', "\"\""))?;
        } else {
            out.write_all(field.as_bytes())?;
        }
    }
    out.write_all(b"\n")
}

/// A cell a spreadsheet would read as a formula (OWASP: `=`, `+`, `-`, `@`, tab, CR).
fn starts_formula(field: &str) -> bool {
    field.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_up_to_the_cap_and_states_it() {
        let (spool, mut listener) = ErrorSpool::new("users.csv.gz", 2).expect("spool");
        for line in 2..6 {
            listener.error(&FileError::cell(
                line,
                "score",
                Some("1,5"),
                "is not a number",
            ));
        }
        drop(listener);
        let file = spool.finish().expect("finish").expect("has errors");
        let text = std::fs::read_to_string(file.path()).expect("read spool");
        assert_eq!(
            text,
            "file,line,column,value,message\n\
             users.csv.gz,2,score,\"1,5\",is not a number\n\
             users.csv.gz,3,score,\"1,5\",is not a number\n\
             users.csv.gz,,,,\"... and 2 more errors, not listed (limits.max_listed_errors = 2)\"\n"
        );
    }

    #[test]
    fn cells_that_start_a_formula_are_neutralised() {
        let mut out = Vec::new();
        write_row(
            &mut out,
            &["=cmd.csv.gz", "2", "+a", "-1", "@SUM(A1)", "\t=x", "ok"],
        )
        .expect("write");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "\"'=cmd.csv.gz\",2,\"'+a\",\"'-1\",\"'@SUM(A1)\",\"'\t=x\",ok\n"
        );
    }

    #[test]
    fn no_errors_no_file() {
        let (spool, listener) = ErrorSpool::new("users.csv.gz", 10).expect("spool");
        drop(listener);
        assert!(spool.finish().expect("finish").is_none());
    }
}
