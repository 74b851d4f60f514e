//! One cell against its attribute type: the typed value a sink stores, or why there is none.

use chrono::{DateTime, Utc};

use super::AttributeType;
use super::DatePattern;

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
// Always inlined: a dispatch on the type for every cell, whose call costs about as much as a
// string's whole check; with a plain hint the compiler's choice flips with small changes.
#[inline(always)]
pub fn parse(field: &str, ty: AttributeType, dates: &DatePattern) -> Result<Cell, Expected> {
    if field.is_empty() {
        return Ok(Cell::Absent);
    }
    if let AttributeType::String = ty {
        return Ok(string(field.len()));
    }
    let field = trim_padding(field);
    if field.is_empty() {
        return Ok(Cell::Absent);
    }
    match ty {
        AttributeType::String => Ok(Cell::Text),
        AttributeType::Number => parse_number(field).ok_or(Expected::Number),
        AttributeType::Boolean => parse_boolean(field.as_bytes())
            .map(Cell::Bool)
            .ok_or(Expected::Boolean),
        AttributeType::Date => dates.parse(field).map(Cell::Date).ok_or(Expected::Date),
    }
}

/// A string of `length` bytes: kept as written, or absent when empty.
#[inline(always)]
pub fn string(length: usize) -> Cell {
    if length == 0 {
        Cell::Absent
    } else {
        Cell::Text
    }
}

/// `field` without the spaces and tabs around it. Most fields have none: two byte compares
/// decide that, where `trim_matches` walks a char pattern from both ends.
#[inline]
fn trim_padding(field: &str) -> &str {
    let padding = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    let bytes = field.as_bytes();
    if padding(bytes.first()) || padding(bytes.last()) {
        field.trim_matches([' ', '\t'])
    } else {
        field
    }
}

/// `true` or `false` in any case. Every byte of both is a letter, so setting the case bit
/// (0x20) of each is an exact case-insensitive compare.
fn parse_boolean(field: &[u8]) -> Option<bool> {
    match field {
        [a, b, c, d] if [a | 0x20, b | 0x20, c | 0x20, d | 0x20] == *b"true" => Some(true),
        [a, b, c, d, e] if [a | 0x20, b | 0x20, c | 0x20, d | 0x20, e | 0x20] == *b"false" => {
            Some(false)
        }
        _ => None,
    }
}

/// `[+-]digits[.digits][e[+-]digits]`, also `.5` and `5.`: what exporters write for a
/// decimal. Thousands separators, spaces, `NaN` and `Infinity` are refused. Integers that fit
/// stay exact as `i64`; the rest become finite `f64`.
pub fn parse_number(field: &str) -> Option<Cell> {
    let bytes = field.as_bytes();
    let mut i = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    // The digits' value is gathered on the way; it is used only when there are at most 15.
    let mut mantissa = 0u64;
    let int_digits = read_digits(bytes, &mut i, &mut mantissa);
    let mut frac_digits = 0;
    let mut integer = true;
    if bytes.get(i) == Some(&b'.') {
        integer = false;
        i += 1;
        frac_digits = read_digits(bytes, &mut i, &mut mantissa);
    }
    if int_digits + frac_digits == 0 {
        return None;
    }
    let mantissa_end = i;
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
    if mantissa_end == bytes.len() && int_digits + frac_digits <= 15 {
        return Some(small_decimal(
            bytes.first() == Some(&b'-'),
            mantissa,
            frac_digits,
            integer,
        ));
    }
    if integer && let Ok(n) = field.parse::<i64>() {
        return Some(Cell::Int(n));
    }
    let f: f64 = field.parse().ok()?;
    f.is_finite().then_some(Cell::Float(f))
}

/// Reads the digits at `*i`, moving past them and adding them to `mantissa` (wrapping: the
/// value counts only for 15 digits or fewer); how many there were.
#[inline]
fn read_digits(bytes: &[u8], i: &mut usize, mantissa: &mut u64) -> usize {
    let start = *i;
    while let Some(&b) = bytes.get(*i) {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        *mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(digit));
        *i += 1;
    }
    *i - start
}

/// Powers of ten that are exact in an `f64`. A `static`: as a `const` the table was copied
/// onto the stack at every call.
static EXACT_POWERS_OF_TEN: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// The value of a number of at most 15 digits without exponent (`-1505.68`), from the value
/// of its digits read once: most numbers in a file, and `str::parse` costs several times
/// more. `m / 10^k` with both exact is one correctly rounded division, so it is the same
/// `f64` the full parser gives (Clinger's fast path); integers are exact.
fn small_decimal(negative: bool, mantissa: u64, frac_digits: usize, integer: bool) -> Cell {
    if integer {
        let n = mantissa as i64; // below 10^15
        return Cell::Int(if negative { -n } else { n });
    }
    let f = mantissa as f64 / EXACT_POWERS_OF_TEN[frac_digits];
    Cell::Float(if negative { -f } else { f })
}

/// Plain notation up to this many characters; past it, `d.ddde±N`.
const MAX_PLAIN_ID: usize = 40;

/// Writes into `out` the canonical text of a number that [`parse_number`] accepted, the key of
/// a numeric id: its exact decimal value (not through `f64`, so long ids stay distinct),
/// without `+`, leading zeros or trailing fraction zeros, and `0` for any zero. Plain notation
/// (`42`, `1.5`, `-0.00125`) when that takes at most 40 characters, else `1e300`, `1.5e-61`.
pub fn canonical_number(field: &str, out: &mut String) {
    out.clear();
    let field = field.trim_matches([' ', '\t']);
    let negative = field.starts_with('-');
    let body = field.trim_start_matches(['+', '-']);
    let (mantissa, exponent) = body.split_once(['e', 'E']).unwrap_or((body, ""));
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // The digits of the mantissa, point dropped, read in place: this runs once per row of a
    // file keyed by a numeric id, so it allocates nothing but what `out` may grow by.
    let (int, frac) = (int_part.as_bytes(), frac_part.as_bytes());
    let len = int.len() + frac.len();
    let digit = |i: usize| {
        char::from(if i < int.len() {
            int[i]
        } else {
            frac[i - int.len()]
        })
    };
    let Some(first) = (0..len).position(|i| digit(i) != '0') else {
        out.push('0');
        return;
    };
    let last = (0..len).rposition(|i| digit(i) != '0').unwrap_or(first);
    let m = (last + 1 - first) as i64;
    // value = significant × 10^scale; `point` digits stand before the decimal point.
    let trailing_zeros = (len - 1 - last) as i64;
    let scale = exponent_value(exponent) - frac.len() as i64 + trailing_zeros;
    let point = m + scale;
    let plain_len = if scale >= 0 {
        point
    } else if point > 0 {
        m + 1
    } else {
        2 - point + m
    };
    if negative {
        out.push('-');
    }
    if plain_len as usize > MAX_PLAIN_ID {
        out.push(digit(first));
        if m > 1 {
            out.push('.');
            out.extend((first + 1..=last).map(digit));
        }
        out.push('e');
        out.push_str(&(point - 1).to_string());
    } else if scale >= 0 {
        out.extend((first..=last).map(digit));
        out.extend(std::iter::repeat_n('0', scale as usize));
    } else if point > 0 {
        let split = first + point as usize;
        out.extend((first..split).map(digit));
        out.push('.');
        out.extend((split..=last).map(digit));
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.extend((first..=last).map(digit));
    }
}

/// An exponent's value (`+5`, `-12`, `007`), saturating far beyond any `f64`.
fn exponent_value(text: &str) -> i64 {
    let negative = text.starts_with('-');
    let value = text
        .trim_start_matches(['+', '-'])
        .bytes()
        .filter(u8::is_ascii_digit)
        .fold(0i64, |n, d| {
            n.saturating_mul(10)
                .saturating_add(i64::from(d - b'0'))
                .min(1 << 40)
        });
    if negative { -value } else { value }
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
    fn short_decimals_read_exactly_as_the_full_parser_reads_them() {
        for text in [
            "0.1",
            "0.2",
            "0.3",
            "1505.68",
            "-1505.68",
            "2509.08",
            "99999999999999.9",
            "0.000000000000001",
            "123456789012345",
            "-0.0",
            "-0",
            "5.",
            ".5",
            "+7",
            "7",
            "9007199254740993",
            "1.7976931348623157",
            "0.1e1",
        ] {
            let full = if text.contains(['.', 'e']) {
                Some(Cell::Float(text.parse::<f64>().unwrap_or(f64::NAN)))
            } else {
                text.parse::<i64>().ok().map(Cell::Int)
            };
            let ours = parse_number(text);
            assert_eq!(ours, full, "{text}");
            if let (Some(Cell::Float(a)), Some(Cell::Float(b))) = (ours, full) {
                assert_eq!(a.to_bits(), b.to_bits(), "{text}: the sign of zero too");
            }
        }
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
    fn numeric_ids_have_one_canonical_text() {
        let mut out = String::new();
        for (field, canonical) in [
            ("42", "42"),
            ("42.0", "42"),
            ("042", "42"),
            ("4.2e1", "42"),
            ("+4200E-2", "42"),
            ("-0", "0"),
            ("-0.000e5", "0"),
            ("0", "0"),
            ("1.50", "1.5"),
            (".5", "0.5"),
            ("5.", "5"),
            ("-12.5e-3", "-0.0125"),
            ("12345678901234567890123", "12345678901234567890123"),
            ("1e39", "1000000000000000000000000000000000000000"),
            ("1e40", "1e40"),
            ("1.5E300", "1.5e300"),
            ("-15e-62", "-1.5e-61"),
            ("1e-38", "0.00000000000000000000000000000000000001"),
            ("1e-39", "1e-39"),
            ("0e99999999999999999999999", "0"),
            ("7e-99999999999999999999999", "7e-1099511627776"),
        ] {
            assert!(parse_number(field).is_some(), "{field}");
            canonical_number(field, &mut out);
            assert_eq!(out, canonical, "{field}");
        }
    }

    #[test]
    fn booleans_in_any_case() {
        assert_eq!(parse_boolean(b"TRUE"), Some(true));
        assert_eq!(parse_boolean(b"False"), Some(false));
        for bad in ["yes", "1", "0", "t", "true ", "truee", "4RUE", "fa\x0cse"] {
            assert_eq!(parse_boolean(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn the_case_bit_compare_is_the_case_insensitive_one() {
        // The bytes whose case bit set gives a letter of the two words, and others near them.
        let alphabet = b"tTrRuUeEfFaAlLsS4%\x05\x14\x00\xd4\xf4";
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..200_000 {
            let field: Vec<u8> = (0..rng.usize(3..7))
                .map(|_| alphabet[rng.usize(0..alphabet.len())])
                .collect();
            let expected = if field.eq_ignore_ascii_case(b"true") {
                Some(true)
            } else if field.eq_ignore_ascii_case(b"false") {
                Some(false)
            } else {
                None
            };
            assert_eq!(parse_boolean(&field), expected, "{field:?}");
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
