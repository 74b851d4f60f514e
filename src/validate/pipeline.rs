//! The loop of the hot path: decoded bytes → CSV records (split on a thread of their own) →
//! header plan → typed cells → rows for the consumer. One cell buffer is reused for the whole
//! file.

use std::io;
use std::time::Instant;

use tokio::io::AsyncRead;

use super::AttributeType;
use super::cell::{self, Cell};
use super::decode;
use super::header::{ColumnPlan, Role, parsing_errors};
use super::lex::{Dialect, Lexer};
use super::report::{ErrorList, ErrorListener, FileError, FileReport, expected_message};
use super::row::{Row, RowConsumer};
use super::rules::FileRules;
use super::sniff::DateHints;
use super::split::{self, Event, Fields, Item, Quirks};

/// Why a file has no verdict: nothing about its content, so it is retried later.
#[derive(Debug, thiserror::Error)]
pub enum FileFailure<E: std::error::Error + 'static> {
    #[error("reading the file failed: {0}")]
    Source(#[source] io::Error),
    #[error("the sink refused a row: {0}")]
    Consumer(#[source] E),
}

/// Validates one file, handing its rows to `consumer` while it has no error.
pub async fn validate<R, C>(
    rules: &FileRules,
    name: &str,
    source: R,
    consumer: &mut C,
    listener: Option<Box<dyn ErrorListener>>,
) -> Result<FileReport, FileFailure<C::Error>>
where
    R: AsyncRead + Send + Unpin + 'static,
    C: RowConsumer,
{
    let started = Instant::now();
    let limits = &rules.limits;
    let (decoded, progress) = decode::spawn(source, limits.max_decompressed_bytes);
    let lexer = Lexer::new(
        Dialect {
            delimiter: rules.csv.delimiter as u8,
            quote: rules.csv.quote as u8,
            escape: rules.csv.escape.map(|c| c as u8),
        },
        limits.max_record_bytes,
    );
    let mut errors = ErrorList::new(limits.max_status_errors, listener);
    let mut rows = 0;
    let mut hints = DateHints::default();
    let records = split::spawn(decoded, lexer);
    let result = read_file(rules, records, consumer, &mut errors, &mut hints, &mut rows).await;
    hints.annotate(&mut errors);
    let report = FileReport {
        name: name.to_string(),
        rows,
        compressed_bytes: progress.compressed(),
        decompressed_bytes: progress.decompressed(),
        elapsed: started.elapsed(),
        errors,
    };
    result.map(|()| report)
}

async fn read_file<C: RowConsumer>(
    rules: &FileRules,
    mut records: split::Records,
    consumer: &mut C,
    errors: &mut ErrorList,
    hints: &mut DateHints,
    rows: &mut u64,
) -> Result<(), FileFailure<C::Error>> {
    let plan = if rules.csv.header {
        match records.next().await {
            Item::Record {
                quirks:
                    Quirks {
                        after_quote: Some(field),
                        ..
                    },
                ..
            } => {
                let message = format!("the header, field {}: {}", field + 1, after_quote(rules));
                errors.push(FileError::line(1, message));
                return Ok(());
            }
            Item::Record { fields, .. } => ColumnPlan::from_header(fields, rules),
            Item::Other(Event::End { .. }) => {
                errors.push(FileError::file("the file has no header row: it is empty"));
                return Ok(());
            }
            Item::Other(Event::Utf8 {
                line,
                field,
                valid_up_to,
            }) => {
                errors.push(FileError::line(
                    line,
                    format!(
                        "the header, field {}, {}",
                        field + 1,
                        utf8_message(valid_up_to)
                    ),
                ));
                return Ok(());
            }
            Item::Other(Event::Fatal(e)) => {
                errors.push(*e);
                return Ok(());
            }
            Item::Other(Event::Failed(e)) => return Err(FileFailure::Source(e)),
            Item::Other(Event::Record { .. }) => {
                return Err(FileFailure::Source(io::Error::other(
                    "a record out of place",
                )));
            }
        }
    } else {
        ColumnPlan::new(rules.csv.columns.iter().map(String::as_str), rules)
    };
    let plan = match plan {
        Ok(plan) => plan,
        Err(problems) => {
            errors.push(FileError::file(parsing_errors(&problems)));
            return Ok(());
        }
    };
    let mut cells = vec![Cell::Absent; plan.len()];
    // The canonical text of a numeric id, reused for every row.
    let mut numeric_id = String::new();
    let id_is_number =
        plan.columns.get(plan.id_index).map(|c| c.role) == Some(Role::Id(AttributeType::Number));
    let mut last_line = 1;
    let quotes_balanced = loop {
        let item = if records.ready() {
            records.take()
        } else {
            records.next().await
        };
        let (line, quirks, fields) = match item {
            Item::Record {
                line,
                quirks,
                fields,
            } => (line, quirks, fields),
            Item::Other(Event::End { quotes_balanced }) => break quotes_balanced,
            Item::Other(Event::Fatal(e)) => {
                errors.push(*e);
                return Ok(());
            }
            Item::Other(Event::Failed(e)) => return Err(FileFailure::Source(e)),
            Item::Other(Event::Utf8 {
                line,
                field,
                valid_up_to,
            }) => {
                let message = utf8_message(valid_up_to);
                match plan.columns.get(field) {
                    Some(column) => {
                        *rows += 1;
                        errors.push(FileError::cell(line, &column.name, None, message));
                        continue;
                    }
                    None => {
                        errors.push(FileError::line(
                            line,
                            format!("the header, field {}, {message}", field + 1),
                        ));
                        return Ok(());
                    }
                }
            }
            Item::Other(Event::Record { .. }) => {
                return Err(FileFailure::Source(io::Error::other(
                    "a record out of place",
                )));
            }
        };
        last_line = line;
        *rows += 1;
        if *rows > rules.max_rows {
            errors.push(FileError::line(
                line,
                format!(
                    "more than {} data rows, the limit per file (max_rows); the file was not read further",
                    rules.max_rows
                ),
            ));
            return Ok(());
        }
        if let Some(field) = quirks.after_quote {
            let column = plan.columns.get(field).map_or("", |c| c.name.as_str());
            errors.push(FileError::cell(line, column, None, after_quote(rules)));
            continue;
        }
        let row_ok = check_row(
            rules, &plan, fields, line, quirks, &mut cells, errors, hints,
        );
        if row_ok && errors.is_empty() {
            let id = if id_is_number {
                cell::canonical_number(
                    fields.get(plan.id_index).unwrap_or_default(),
                    &mut numeric_id,
                );
                numeric_id.as_str()
            } else {
                fields.get(plan.id_index).unwrap_or_default()
            };
            let row = Row {
                line,
                id,
                record: fields,
                plan: &plan,
                cells: &cells,
                fixed_product_key: rules.fixed_product_key(),
            };
            consumer.accept(&row).await.map_err(FileFailure::Consumer)?;
        }
    };
    if !quotes_balanced {
        // An unclosed quote runs to the end, so it opened in the last record read.
        errors.push(FileError::line(
            last_line,
            format!(
                "a quoted field is not closed: the file has an odd number of {} characters \
             (a quote inside a field must be doubled, and such a field quoted)",
                rules.csv.quote
            ),
        ));
    }
    Ok(())
}

/// A field that is not UTF-8, `valid_up_to` bytes in.
fn utf8_message(valid_up_to: usize) -> String {
    format!(
        "is not valid UTF-8 (at byte {} of the value)",
        valid_up_to + 1
    )
}

/// The message for text after a closing quote, with the likely fix.
fn after_quote(rules: &FileRules) -> String {
    let mut message = String::from("text after the closing quote");
    if rules.csv.escape.is_none() {
        // Spark's default, and other writers': `\"` inside quotes.
        message
            .push_str("; if the file escapes quotes with a backslash, set csv.escape = \"\\\\\"");
    }
    message
}

/// Checks every cell of a record, filling `cells`; false if any was wrong.
// The per-row state of `read_file`, passed apart so that each borrow stays as narrow as the
// hot loop needs; bundling it would only move these names into a struct.
#[allow(clippy::too_many_arguments)]
fn check_row(
    rules: &FileRules,
    plan: &ColumnPlan,
    record: Fields<'_>,
    line: u64,
    quirks: Quirks,
    cells: &mut [Cell],
    errors: &mut ErrorList,
    hints: &mut DateHints,
) -> bool {
    if record.len() != plan.len() {
        let source = if rules.csv.header {
            "the header"
        } else {
            "csv.columns"
        };
        let mut message = format!("{} fields, but {source} has {}", record.len(), plan.len());
        if quirks.ended_by_bare_cr {
            message.push_str(
                "; a bare carriage return (CR) ended the record inside a value \
                 (a value containing a line break must be quoted)",
            );
        } else if quirks.follows_bare_cr {
            message.push_str(
                "; this is the rest of a record that a bare carriage return (CR) ended early",
            );
        }
        errors.push(FileError::line(line, message));
        return false;
    }
    let mut ok = true;
    // The fields are searched only when the record holds a NUL.
    let has_nul = record.has_nul();
    for (i, (column, span)) in plan.columns.iter().zip(record.spans()).enumerate() {
        let length = span.1.saturating_sub(span.0);
        if length > rules.limits.max_field_bytes {
            errors.push(FileError::cell(
                line,
                &column.name,
                None,
                format!(
                    "field longer than {} bytes (limits.max_field_bytes)",
                    rules.limits.max_field_bytes
                ),
            ));
            ok = false;
            continue;
        }
        if !has_nul && column.role == Role::Attribute(AttributeType::String) {
            // Most cells: a string's check needs only its length, not its text.
            cells[i] = cell::string(length);
            continue;
        }
        let field = record.text_at(span);
        // PostgreSQL refuses U+0000 in text, so no sink gets it: a located error everywhere.
        if has_nul && field.contains('\0') {
            errors.push(FileError::cell(
                line,
                &column.name,
                Some(field),
                "contains a NUL byte (U+0000), which cannot be stored",
            ));
            ok = false;
            continue;
        }
        let parsed = match column.role {
            Role::Attribute(ty) => cell::parse(field, ty, &rules.dates),
            Role::Id(_) | Role::ProductKey if field.is_empty() => {
                let what = if column.role == Role::ProductKey {
                    "a product key"
                } else {
                    "an id"
                };
                errors.push(FileError::cell(
                    line,
                    &column.name,
                    None,
                    format!("is empty; every row needs {what}"),
                ));
                ok = false;
                continue;
            }
            // An id is kept as text; a numeric id must still be a number.
            Role::Id(ty) => cell::parse(field, ty, &rules.dates).map(|_| Cell::Text),
            Role::ProductKey => Ok(Cell::Text),
        };
        match parsed {
            Ok(cell) => {
                if let Cell::Date(_) = cell {
                    hints.read(i);
                }
                cells[i] = cell;
            }
            Err(expected) => {
                if expected == cell::Expected::Date {
                    hints.refused(i, &column.name, field);
                }
                errors.push(FileError::cell(
                    line,
                    &column.name,
                    Some(field),
                    expected_message(expected, &rules.dates),
                ));
                ok = false;
            }
        }
    }
    ok
}
