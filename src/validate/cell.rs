//! One cell against its attribute type: the typed value a sink stores, or why there is none.

use chrono::{DateTime, Utc};

use super::DatePattern;
use crate::config::AttributeType;

/// A validated cell. Text stays in the CSV record; only parsed types are held here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    /// An empty field: no value in this file, the stored attribute stays as it is.
    Absent,
    Text,
    Int(i64),
    Float(f64),
    Bool(bool),
    Date(DateTime<Utc>),
}

/// What a cell should have been, for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Number,
    Boolean,
    Date,
}

/// Parses `field` as `ty`; an empty field is [`Cell::Absent`]. Spaces and tabs around a
/// number, boolean or date are padding exporters add, not part of the value, and are trimmed;
/// a string is kept as written. A typed field of only spaces and tabs is empty.
#[inline]
pub fn parse(field: &str, ty: AttributeType, dates: &DatePattern) -> Result<Cell, Expected> {
    if field.is_empty() {
        return Ok(Cell::Absent);
    }
    if let AttributeType::String = ty {
        return Ok(Cell::Text);
    }
    let field = field.trim_matches([' ', '\t']);
    if field.is_empty() {
        return Ok(Cell::Absent);
    }
    match ty {
        AttributeType::String => Ok(Cell::Text),
        AttributeType::Number => parse_number(field).ok_or(Expected::Number),
        AttributeType::Boolean => parse_boolean(field)
            .map(Cell::Bool)
            .ok_or(Expected::Boolean),
        AttributeType::Date => dates.parse(field).map(Cell::Date).ok_or(Expected::Date),
    }
}

/// `true` or `false` in any case.
fn parse_boolean(field: &str) -> Option<bool> {
    if field.eq_ignore_ascii_case("true") {
        Some(true)
    } else if field.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// `[+-]digits[.digits][e[+-]digits]`, also `.5` and `5.`: what exporters write for a
/// decimal. Thousands separators, spaces, `NaN` and `Infinity` are refused. Integers that fit
/// stay exact as `i64`; the rest become finite `f64`.
pub fn parse_number(field: &str) -> Option<Cell> {
    let bytes = field.as_bytes();
    let mut i = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let int_digits = count_digits(&bytes[i..]);
    i += int_digits;
    let mut frac_digits = 0;
    let mut integer = true;
    if bytes.get(i) == Some(&b'.') {
        integer = false;
        i += 1;
        frac_digits = count_digits(&bytes[i..]);
        i += frac_digits;
    }
    if int_digits + frac_digits == 0 {
        return None;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        integer = false;
        i += 1;
        i += usize::from(matches!(bytes.get(i), Some(b'+' | b'-')));
        let exp_digits = count_digits(&bytes[i..]);
        if exp_digits == 0 {
            return None;
        }
        i += exp_digits;
    }
    if i != bytes.len() {
        return None;
    }
    if integer && let Ok(n) = field.parse::<i64>() {
        return Some(Cell::Int(n));
    }
    let f: f64 = field.parse().ok()?;
    f.is_finite().then_some(Cell::Float(f))
}

fn count_digits(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_exporters_write_them() {
        assert_eq!(parse_number("12345"), Some(Cell::Int(12345)));
        assert_eq!(parse_number("-7"), Some(Cell::Int(-7)));
        assert_eq!(parse_number("+7"), Some(Cell::Int(7)));
        assert_eq!(parse_number("12345.60"), Some(Cell::Float(12345.6)));
        assert_eq!(parse_number(".5"), Some(Cell::Float(0.5)));
        assert_eq!(parse_number("5."), Some(Cell::Float(5.0)));
        assert_eq!(parse_number("1.5E+07"), Some(Cell::Float(15_000_000.0)));
        assert_eq!(parse_number("1e-5"), Some(Cell::Float(0.00001)));
        // Too big for i64 is still a number.
        assert_eq!(
            parse_number("99999999999999999999"),
            Some(Cell::Float(1e20))
        );
    }

    #[test]
    fn not_numbers() {
        for bad in [
            "12,345.60",
            "1 000",
            " 12",
            "12 ",
            "NaN",
            "nan",
            "Infinity",
            "-inf",
            "0x1F",
            "1e",
            "1e+",
            ".",
            "-",
            "+",
            "",
            "1.2.3",
            "12abc",
            "1e999",
            "١٢",
            "1_000",
        ] {
            assert_eq!(parse_number(bad), None, "{bad:?} must not be a number");
        }
    }

    #[test]
    fn booleans_in_any_case() {
        assert_eq!(parse_boolean("TRUE"), Some(true));
        assert_eq!(parse_boolean("False"), Some(false));
        for bad in ["yes", "1", "0", "t", "true ", "truee"] {
            assert_eq!(parse_boolean(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn spaces_and_tabs_around_typed_values_are_trimmed_never_around_strings() {
        let dates = DatePattern::compile("MM/dd/yyyy").expect("valid pattern");
        assert_eq!(
            parse(" 12\t", AttributeType::Number, &dates),
            Ok(Cell::Int(12))
        );
        assert_eq!(
            parse("\tTRUE ", AttributeType::Boolean, &dates),
            Ok(Cell::Bool(true))
        );
        let date = parse("06/25/2021 ", AttributeType::Date, &dates);
        assert!(matches!(date, Ok(Cell::Date(_))), "{date:?}");
        assert_eq!(parse(" ", AttributeType::Date, &dates), Ok(Cell::Absent));
        assert_eq!(parse(" x ", AttributeType::String, &dates), Ok(Cell::Text));
        // Only spaces and tabs: other whitespace is not padding.
        assert_eq!(
            parse("12\n", AttributeType::Number, &dates),
            Err(Expected::Number)
        );
        assert_eq!(
            parse("1 2", AttributeType::Number, &dates),
            Err(Expected::Number)
        );
    }

    #[test]
    fn empty_is_absent_for_every_type() {
        let dates = DatePattern::compile("yyyyMMdd").expect("valid pattern");
        for ty in [
            AttributeType::String,
            AttributeType::Number,
            AttributeType::Boolean,
            AttributeType::Date,
        ] {
            assert_eq!(parse("", ty, &dates), Ok(Cell::Absent));
        }
        assert_eq!(
            parse("x", AttributeType::Number, &dates),
            Err(Expected::Number)
        );
    }
}
