//! A validated row as sinks see it: id, product key, and typed attributes, borrowed from the
//! reader's buffers so nothing is copied until a sink decides how to store it.

use std::future::Future;
use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};

use super::cell::Cell;
use super::header::{ColumnPlan, Role};
use super::split::Fields;

/// A typed attribute value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    Date(DateTime<Utc>),
}

/// One valid row of a file.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    /// The line the row starts on (the header is line 1).
    pub line: u64,
    /// The id as stored: the field's text, or the canonical text of a numeric id.
    pub(super) id: &'a str,
    pub(super) record: Fields<'a>,
    pub(super) plan: &'a ColumnPlan,
    /// Aligned with `plan.columns`.
    pub(super) cells: &'a [Cell],
    pub(super) fixed_product_key: &'a str,
}

impl<'a> Row<'a> {
    /// The record's key: the `id` field, or for an id of type number its canonical text, so
    /// that `42`, `42.0` and `4.2e1` name one record.
    pub fn id(&self) -> &'a str {
        self.id
    }

    /// The row's product key: from its column, or the integration's fixed one, or `""`.
    pub fn product_key(&self) -> &'a str {
        match self.plan.product_key_index {
            Some(i) => self.record.get(i).unwrap_or_default(),
            None => self.fixed_product_key,
        }
    }

    /// The attributes present in this row (empty fields are left out).
    pub fn attributes(&self) -> impl Iterator<Item = (&'a str, Value<'a>)> + 'a {
        let (record, plan, cells) = (self.record, self.plan, self.cells);
        plan.columns
            .iter()
            .enumerate()
            .filter_map(move |(i, column)| {
                if !matches!(column.role, Role::Attribute(_)) {
                    return None;
                }
                let value = match cells[i] {
                    Cell::Absent => return None,
                    Cell::Text => Value::Str(record.get(i).unwrap_or_default()),
                    Cell::Int(n) => Value::Int(n),
                    Cell::Float(f) => Value::Float(f),
                    Cell::Bool(b) => Value::Bool(b),
                    Cell::Date(d) => Value::Date(d),
                };
                Some((column.name.as_str(), value))
            })
    }

    /// Appends the attributes as one JSON object: numbers as numbers, booleans as booleans,
    /// dates as RFC 3339 UTC strings.
    pub fn write_attributes_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        self.write_attribute_members(out, false);
        out.push(b'}');
    }

    /// Appends the attributes as JSON object members (`"a":1,"b":true`), each preceded by a
    /// comma when `after_others`, for an object that has other members too.
    pub fn write_attribute_members(&self, out: &mut Vec<u8>, after_others: bool) {
        for (n, (name, value)) in self.attributes().enumerate() {
            if n > 0 || after_others {
                out.push(b',');
            }
            write_json_str(out, name);
            out.push(b':');
            write_json_value(out, value);
        }
    }
}

/// Appends `value` as JSON.
pub fn write_json_value(out: &mut Vec<u8>, value: Value<'_>) {
    // Writes into a Vec cannot fail, so the io::Results below carry nothing.
    match value {
        Value::Str(s) => write_json_str(out, s),
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        // The shortest text that reads back the same, always with a `.` or an exponent so it
        // reads back as a decimal (`1e21`, `1.5e300`, `42.0`), never a 301-digit integer as
        // f64's Display writes. Zero has no sign: `-0.0` is stored as `0.0`.
        Value::Float(f) => {
            let f = if f == 0.0 { 0.0 } else { f };
            // serde_json writes a finite f64 in its shortest round-trip digits; its exponent
            // sign `e+21` says nothing, so it goes (`1e21`).
            let start = out.len();
            let _ = serde_json::to_writer(&mut *out, &f);
            if let Some(plus) = out[start..].iter().position(|&b| b == b'+') {
                out.remove(start + plus);
            }
        }
        Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Value::Date(d) => {
            out.push(b'"');
            out.extend_from_slice(rfc3339(d).as_bytes());
            out.push(b'"');
        }
    }
}

/// A date as stored: RFC 3339 in UTC, with a fraction only when there is one.
pub fn rfc3339(d: DateTime<Utc>) -> String {
    d.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Appends `s` as a JSON string literal.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&s.as_bytes()[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&s.as_bytes()[start..]);
    out.push(b'"');
}

/// Receives the valid rows of a file, one at a time, while the file has no error so far.
///
/// A file with an error is rejected whole, so a consumer must hold what it received until
/// it is told the file's outcome (a database transaction does exactly that).
pub trait RowConsumer: Send {
    type Error: std::error::Error + Send + Sync + 'static;

    fn accept(&mut self, row: &Row<'_>) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Counts rows and stores nothing: `dropfolder validate`, and the first pass of a sink that
/// cannot roll back.
#[derive(Debug, Default)]
pub struct CountRows(pub u64);

impl RowConsumer for CountRows {
    type Error = std::convert::Infallible;

    async fn accept(&mut self, _row: &Row<'_>) -> Result<(), Self::Error> {
        self.0 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> String {
        let mut out = Vec::new();
        write_json_str(&mut out, s);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn json_strings_round_trip_through_serde() {
        for s in [
            "plain",
            "quote \" and \\",
            "line\nbreak\r\t",
            "\u{1}\u{1f}",
            "é ✓ 😀",
            "",
        ] {
            let text = json(s);
            let back: String =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(back, s);
        }
    }

    #[test]
    fn values_are_json() {
        let date = DateTime::parse_from_rfc3339("2021-06-25T13:55:42.5+02:00")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        let mut out = Vec::new();
        for v in [
            Value::Int(-3),
            Value::Float(12345.6),
            Value::Float(1.5e300),
            Value::Float(-0.0),
            Value::Float(1e21),
            Value::Float(42.0),
            Value::Float(1e-7),
            Value::Bool(true),
            Value::Date(date),
        ] {
            write_json_value(&mut out, v);
            out.push(b' ');
        }
        assert_eq!(
            String::from_utf8_lossy(&out),
            "-3 12345.6 1.5e300 0.0 1e21 42.0 1e-7 true \"2021-06-25T11:55:42.500Z\" "
        );
    }
}
