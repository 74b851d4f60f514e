//! Date patterns as customers write them, compiled once at config time.
//!
//! Java-style letters (`yyyy-MM-dd'T'HH:mm:ssX`), with the source document's own `YYYYMMDD`
//! read as calendar year/month/day (in Java `Y` is the week-year and `D` the day of year, which
//! no customer means), plus the constants `UnixTimestamp` and `UnixTimestampInMills`.
//! Parsing is strict: every character of the value must match, and impossible dates
//! (Feb 30, month 13) are errors. Values without an offset are UTC.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};

/// A compiled date format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatePattern {
    /// The pattern as configured, for messages.
    source: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    UnixSeconds,
    UnixMillis,
    Fields(Vec<Token>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(String),
    /// Exactly `width` digits, or 1 to `width` when `width_flexible`.
    Number {
        field: Field,
        width: usize,
        flexible: bool,
    },
    MonthName {
        full: bool,
    },
    DayName,
    AmPm,
    /// `X`, `x` or `Z`: `Z`, `+HH`, `+HHMM` or `+HH:MM`.
    Offset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Year,
    TwoDigitYear,
    Month,
    Day,
    Hour24,
    Hour12,
    Minute,
    Second,
    Fraction,
}

/// Why a pattern cannot be used; shown by the config check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{pattern}': {reason}")]
pub struct PatternError {
    pattern: String,
    reason: String,
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

impl DatePattern {
    pub fn compile(pattern: &str) -> Result<DatePattern, PatternError> {
        let fail = |reason: String| PatternError {
            pattern: pattern.to_string(),
            reason,
        };
        let kind = match pattern {
            "UnixTimestamp" => Kind::UnixSeconds,
            // "Mills" is the source document's spelling; "Millis" is what people type.
            "UnixTimestampInMills" | "UnixTimestampInMillis" => Kind::UnixMillis,
            _ => Kind::Fields(tokenize(pattern).map_err(fail)?),
        };
        if let Kind::Fields(tokens) = &kind {
            check_fields(tokens).map_err(fail)?;
        }
        Ok(DatePattern {
            source: pattern.to_string(),
            kind,
        })
    }

    /// The pattern as configured.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Parses one value; `None` when it does not match or is not a real instant.
    pub fn parse(&self, value: &str) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::UnixSeconds => parse_unix_seconds(value),
            Kind::UnixMillis => {
                let ms: i64 = digits_with_sign(value)?.parse().ok()?;
                DateTime::from_timestamp_millis(ms)
            }
            Kind::Fields(tokens) => parse_fields(tokens, value),
        }
    }
}

impl fmt::Display for DatePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn tokenize(pattern: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // 'quoted text', with '' for a quote inside or outside quotes.
            if chars.get(i + 1) == Some(&'\'') {
                literal.push('\'');
                i += 2;
                continue;
            }
            let mut j = i + 1;
            loop {
                match chars.get(j) {
                    None => return Err("a quoted literal is not closed with '".into()),
                    Some('\'') if chars.get(j + 1) == Some(&'\'') => {
                        literal.push('\'');
                        j += 2;
                    }
                    Some('\'') => break,
                    Some(&other) => {
                        literal.push(other);
                        j += 1;
                    }
                }
            }
            i = j + 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            literal.push(c);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&d| d == c).count();
        i += run;
        let token = match letter(c, run)? {
            Some(token) => token,
            None => {
                literal.push(c); // An unquoted `T`, as in yyyy-MM-ddTHH:mm:ss.
                continue;
            }
        };
        if !literal.is_empty() {
            tokens.push(Token::Literal(std::mem::take(&mut literal)));
        }
        tokens.push(token);
    }
    if !literal.is_empty() {
        tokens.push(Token::Literal(literal));
    }
    Ok(tokens)
}

/// The token for a run of `count` pattern letters `c`; `None` for a literal `T`.
fn letter(c: char, count: usize) -> Result<Option<Token>, String> {
    let number = |field, width| Token::Number {
        field,
        width,
        flexible: count == 1,
    };
    Ok(Some(match c {
        'y' | 'Y' | 'u' if count == 2 => number(Field::TwoDigitYear, 2),
        'y' | 'Y' | 'u' => Token::Number {
            field: Field::Year,
            width: 4,
            flexible: false,
        },
        'M' | 'L' if count >= 4 => Token::MonthName { full: true },
        'M' | 'L' if count == 3 => Token::MonthName { full: false },
        'M' | 'L' => number(Field::Month, 2),
        'd' | 'D' if count <= 2 => number(Field::Day, 2),
        'D' => return Err("DDD (day of year) is not supported; D is read as day of month".into()),
        'H' if count <= 2 => number(Field::Hour24, 2),
        'h' if count <= 2 => number(Field::Hour12, 2),
        'm' if count <= 2 => number(Field::Minute, 2),
        's' if count <= 2 => number(Field::Second, 2),
        'S' if count <= 9 => Token::Number {
            field: Field::Fraction,
            width: count,
            flexible: false,
        },
        'a' => Token::AmPm,
        'E' => Token::DayName,
        'X' | 'x' | 'Z' => Token::Offset,
        'T' if count == 1 => return Ok(None),
        _ => {
            return Err(format!(
                "'{}' is not a supported pattern letter (use y M d H h m s S a E X, quote literal text)",
                c.to_string().repeat(count)
            ));
        }
    }))
}

fn check_fields(tokens: &[Token]) -> Result<(), String> {
    let has = |wanted: &[Field]| {
        tokens
            .iter()
            .any(|t| matches!(t, Token::Number { field, .. } if wanted.contains(field)))
    };
    let hour = has(&[Field::Hour24, Field::Hour12]);
    if has(&[Field::Minute]) && !hour {
        return Err("'mm' is minutes, and there is no hour: the month is 'MM'".into());
    }
    let month = has(&[Field::Month]) || tokens.iter().any(|t| matches!(t, Token::MonthName { .. }));
    if !has(&[Field::Year, Field::TwoDigitYear]) || !month || !has(&[Field::Day]) {
        return Err("a date pattern needs a year (yyyy), a month (MM) and a day (dd)".into());
    }
    if tokens.contains(&Token::AmPm) && !has(&[Field::Hour12]) {
        return Err("'a' (AM/PM) goes with the 12-hour clock 'hh'".into());
    }
    Ok(())
}

/// The fields of a value as they are read, before they make a date.
#[derive(Default)]
struct Parts {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    pm: Option<bool>,
    minute: u32,
    second: u32,
    nanos: u32,
    offset_seconds: i32,
}

fn parse_fields(tokens: &[Token], value: &str) -> Option<DateTime<Utc>> {
    let mut rest = value;
    let mut p = Parts::default();
    for token in tokens {
        rest = match token {
            Token::Literal(text) => rest.strip_prefix(text.as_str())?,
            Token::Number {
                field,
                width,
                flexible,
            } => {
                let len = if *flexible {
                    rest.bytes()
                        .take(*width)
                        .take_while(u8::is_ascii_digit)
                        .count()
                } else {
                    *width
                };
                let digits = rest.get(..len)?;
                if len == 0 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                // At most 9 digits: no overflow in u32.
                let n = digits
                    .bytes()
                    .fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
                match field {
                    Field::Year => p.year = n as i32,
                    // 00-69 is 2000-2069, 70-99 is 1970-1999 (POSIX strptime's pivot).
                    Field::TwoDigitYear => p.year = if n < 70 { 2000 } else { 1900 } + n as i32,
                    Field::Month => p.month = n,
                    Field::Day => p.day = n,
                    Field::Hour24 | Field::Hour12 => p.hour = n,
                    Field::Minute => p.minute = n,
                    Field::Second => p.second = n,
                    Field::Fraction => p.nanos = n * 10u32.pow(9 - len as u32),
                }
                &rest[len..]
            }
            Token::MonthName { full } => {
                let (index, len) = match_name(rest, &MONTHS, *full)?;
                p.month = index as u32 + 1;
                &rest[len..]
            }
            Token::DayName => {
                let (_, len) =
                    match_name(rest, &DAYS, true).or_else(|| match_name(rest, &DAYS, false))?;
                &rest[len..]
            }
            Token::AmPm => {
                let marker = rest.get(..2)?;
                p.pm = Some(match marker.to_ascii_lowercase().as_str() {
                    "am" => false,
                    "pm" => true,
                    _ => return None,
                });
                &rest[2..]
            }
            Token::Offset => {
                let (seconds, len) = parse_offset(rest)?;
                p.offset_seconds = seconds;
                &rest[len..]
            }
        };
    }
    if !rest.is_empty() {
        return None;
    }
    if let Some(pm) = p.pm {
        if !(1..=12).contains(&p.hour) {
            return None;
        }
        p.hour = p.hour % 12 + if pm { 12 } else { 0 };
    }
    let date = NaiveDate::from_ymd_opt(p.year, p.month, p.day)?;
    let time = NaiveTime::from_hms_nano_opt(p.hour, p.minute, p.second, p.nanos)?;
    let local = NaiveDateTime::new(date, time);
    let utc = local.checked_sub_signed(TimeDelta::seconds(i64::from(p.offset_seconds)))?;
    Some(utc.and_utc())
}

/// Matches a month or day name (3-letter abbreviation or full), any case.
fn match_name(rest: &str, names: &[&str], full: bool) -> Option<(usize, usize)> {
    names.iter().enumerate().find_map(|(i, name)| {
        let candidate = if full { name } else { &name[..3] };
        let head = rest.get(..candidate.len())?;
        head.eq_ignore_ascii_case(candidate)
            .then_some((i, candidate.len()))
    })
}

/// `Z`, `+HH`, `+HHMM` or `+HH:MM`; returns seconds east of UTC and the length read.
fn parse_offset(rest: &str) -> Option<(i32, usize)> {
    if rest.starts_with('Z') || rest.starts_with('z') {
        return Some((0, 1));
    }
    let sign = match rest.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let two = |s: &str| -> Option<i32> {
        let d = s.get(..2)?;
        d.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| d.parse().ok())?
    };
    let hours = two(&rest[1..])?;
    let (minutes, len) = if let Some(m) = rest.get(3..).filter(|r| r.starts_with(':')) {
        (two(&m[1..])?, 6)
    } else if let Some(m) = rest.get(3..).and_then(two) {
        (m, 5)
    } else {
        (0, 3)
    };
    if hours > 18 || minutes > 59 {
        return None;
    }
    Some((sign * (hours * 3600 + minutes * 60), len))
}

fn digits_with_sign(value: &str) -> Option<&str> {
    let digits = value.strip_prefix('-').unwrap_or(value);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(value)
}

/// Whole seconds, or seconds with a fraction as Python's `time.time()` writes them.
fn parse_unix_seconds(value: &str) -> Option<DateTime<Utc>> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let seconds: i64 = digits_with_sign(whole)?.parse().ok()?;
    let nanos = match fraction {
        "" => 0,
        // A fraction on a negative timestamp is ambiguous; nobody writes one.
        _ if seconds < 0 || fraction.len() > 9 => return None,
        _ if !fraction.bytes().all(|b| b.is_ascii_digit()) => return None,
        _ => fraction.parse::<u32>().ok()? * 10u32.pow(9 - fraction.len() as u32),
    };
    DateTime::from_timestamp(seconds, nanos)
}

#[cfg(test)]
mod tests;
