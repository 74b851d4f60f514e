//! The shape of the files an integration accepts: its schema, CSV dialect and caps. Written
//! in the config (hence `Deserialize`), checked there, and read here by the validator.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// The type of an attribute, as written in `[schemas.NAME]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttributeType {
    String,
    /// Integer or decimal, `.` as the decimal separator, no thousands separators.
    Number,
    /// `true` or `false`, any case.
    Boolean,
    /// In the integration's `date_format`; stored as RFC 3339 UTC.
    Date,
}

impl fmt::Display for AttributeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttributeType::String => "string",
            AttributeType::Number => "number",
            AttributeType::Boolean => "boolean",
            AttributeType::Date => "date",
        })
    }
}

/// `apiName = type` for one entity type. `id` is always allowed (a string unless declared).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Schema {
    pub attributes: BTreeMap<String, AttributeType>,
}

impl Schema {
    pub fn get(&self, api_name: &str) -> Option<AttributeType> {
        self.attributes.get(api_name).copied()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.attributes.keys().map(String::as_str)
    }
}

/// Caps that keep one hostile file from taking unbounded time, memory or report size.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Bytes of one field. Default 65,536 (64 KiB).
    pub max_field_bytes: usize,
    /// Bytes of one record, quoted newlines included; also bounds reader memory.
    /// Default 1,048,576 (1 MiB).
    pub max_record_bytes: usize,
    /// Decompressed bytes of one file (the decompression-bomb cap). Default 2 GiB.
    pub max_decompressed_bytes: u64,
    /// Errors listed in `status.txt` before "... and N more". Default 100.
    pub max_status_errors: usize,
    /// Errors listed in `errors.csv`. Default 100,000.
    pub max_listed_errors: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_field_bytes: 64 * 1024,
            max_record_bytes: 1024 * 1024,
            max_decompressed_bytes: 2 * 1024 * 1024 * 1024,
            max_status_errors: 100,
            max_listed_errors: 100_000,
        }
    }
}

/// The CSV dialect. The default is RFC 4180 with a header row.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CsvDialect {
    /// Default `,`.
    pub delimiter: char,
    /// Default `"`.
    pub quote: char,
    /// Escape character inside quoted fields. Default: none, quotes are doubled (RFC 4180).
    pub escape: Option<char>,
    /// Whether the first row names the columns. Default true.
    pub header: bool,
    /// The column apiNames, in order, for files without a header row.
    pub columns: Vec<String>,
}

impl Default for CsvDialect {
    fn default() -> Self {
        CsvDialect {
            delimiter: ',',
            quote: '"',
            escape: None,
            header: true,
            columns: Vec::new(),
        }
    }
}
