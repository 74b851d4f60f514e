//! The hot path: one gzipped CSV file judged against an integration's schema, streaming.
//!
//! ```text
//! source ─▶ decode (own thread: gzip, byte cap)
//!        ─▶ split (own thread: lex cuts records into batches: record cap, quirks, UTF-8)
//!        ─▶ header plan ─▶ typed cells ─▶ Row ─▶ RowConsumer
//! ```
//! Memory is bounded whatever the file: chunks in flight, a few batches of records in flight
//! (one record at most `max_record_bytes`), one cell buffer, and the first
//! `max_status_errors` messages. A file with any error is rejected whole, so the consumer gets rows only while there is none.
//!
//! JSON records (pushed or polled) take a shorter way to the same checks: [`validate_records`]
//! judges a batch of them cell by cell as CSV rows are judged, and gives [`ValidRecords`],
//! whose rows a consumer takes as a file's.

mod cell;
mod date;
mod decode;
mod escape;
mod header;
#[cfg(test)]
mod input;
mod lex;
mod pipeline;
mod record;
mod report;
mod row;
mod rules;
mod schema;
pub mod sniff;
mod split;

pub use date::{DatePattern, PatternError};
pub use decode::DecodeError;
pub use escape::{escape, escape_line};
pub use header::{HeaderProblem, HeaderProblems};
pub use pipeline::{FileFailure, validate};
pub use record::{JsonRecord, RecordError, RecordErrors, ValidRecords, validate_records};
pub use report::{ErrorList, ErrorListener, FileError, FileReport};
pub use row::{CountRows, Row, RowConsumer, Value, write_json_str};
pub use rules::{FileRules, ProductKey};
pub use schema::{AttributeType, CsvDialect, Limits, Schema};
