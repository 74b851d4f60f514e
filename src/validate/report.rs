//! What validation found in one file: located errors (the first few kept for `status.txt`,
//! all of them counted and offered to a listener that writes `errors.csv`), and the counts.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::escape::escape;

/// One located problem. Column names and values are already escaped and cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileError {
    /// The line the record starts on (header = line 1); `None` for whole-file problems.
    pub line: Option<u64>,
    pub column: Option<String>,
    pub value: Option<String>,
    /// What is wrong, e.g. `is not a date in format yyyy-MM-dd`.
    pub message: String,
}

impl FileError {
    pub fn file(message: impl Into<String>) -> FileError {
        FileError {
            line: None,
            column: None,
            value: None,
            message: message.into(),
        }
    }

    pub fn line(line: u64, message: impl Into<String>) -> FileError {
        FileError {
            line: Some(line),
            ..FileError::file(message)
        }
    }

    pub fn cell(
        line: u64,
        column: &str,
        value: Option<&str>,
        message: impl Into<String>,
    ) -> FileError {
        FileError {
            line: Some(line),
            column: Some(escape(column)),
            value: value.map(escape),
            message: message.into(),
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}")?;
            if let Some(column) = &self.column {
                write!(f, ", column '{column}'")?;
            }
            f.write_str(": ")?;
        }
        if let Some(value) = &self.value {
            write!(f, "'{value}' ")?;
        }
        f.write_str(&self.message)
    }
}

/// Receives every error as it is found (up to its own cap), e.g. to write `errors.csv`
/// without holding 350,000 messages in memory.
pub trait ErrorListener: Send {
    fn error(&mut self, error: &FileError);
}

/// The errors of one file.
#[derive(Default)]
pub struct ErrorList {
    /// The first `keep` errors, for `status.txt`.
    pub first: Vec<FileError>,
    /// Every error found.
    pub total: u64,
    keep: usize,
    listener: Option<Box<dyn ErrorListener>>,
}

impl fmt::Debug for ErrorList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorList")
            .field("first", &self.first)
            .field("total", &self.total)
            .finish()
    }
}

impl ErrorList {
    pub fn new(keep: usize, listener: Option<Box<dyn ErrorListener>>) -> ErrorList {
        ErrorList {
            first: Vec::new(),
            total: 0,
            keep,
            listener,
        }
    }

    pub fn push(&mut self, error: FileError) {
        self.total += 1;
        if let Some(listener) = &mut self.listener {
            listener.error(&error);
        }
        if self.first.len() < self.keep {
            self.first.push(error);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Errors found but not in `first`.
    pub fn more(&self) -> u64 {
        self.total - self.first.len() as u64
    }
}

/// The verdict on one file, with what it took.
#[derive(Debug)]
pub struct FileReport {
    /// The file name shown to the customer (the key's last part).
    pub name: String,
    /// Data rows read (header excluded).
    pub rows: u64,
    pub compressed_bytes: u64,
    pub decompressed_bytes: u64,
    pub elapsed: Duration,
    pub errors: ErrorList,
}

impl FileReport {
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    /// A file rejected before reading, e.g. because its name is not `*.csv.gz`.
    pub fn rejected(name: &str, error: FileError) -> FileReport {
        let mut errors = ErrorList::new(1, None);
        errors.push(error);
        FileReport {
            name: name.to_string(),
            rows: 0,
            compressed_bytes: 0,
            decompressed_bytes: 0,
            elapsed: Duration::ZERO,
            errors,
        }
    }

    /// Rows per second over the file, for progress events.
    pub fn rows_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.rows as f64 / secs
        } else {
            0.0
        }
    }
}

/// A cell message: `is not a number (...)` and friends.
pub fn expected_message(expected: super::cell::Expected, dates: &super::DatePattern) -> String {
    use super::cell::Expected;
    match expected {
        Expected::Number => {
            "is not a number (digits with '.' for decimals, no thousands separators)".into()
        }
        Expected::Boolean => "is not a boolean (true or false)".into(),
        Expected::Date => format!("is not a date in format {}", escape(dates.as_str())),
    }
}
