//! The query window's times as the customer's API wants them: `query_time_format` (a Java
//! pattern, `UnixTimestamp` or `UnixTimestampInMills`), put in place of the placeholders
//! `{_QueryWindowStartTime}` and `{_QueryWindowEndTime}` in query parameters, headers and the
//! POST payload (source documents 001/002). The pattern is checked by the config with the
//! date-pattern reader; this side only writes, always in UTC.

use chrono::{DateTime, Datelike, Timelike, Utc};

/// The placeholder of the window's start.
pub const START: &str = "{_QueryWindowStartTime}";
/// The placeholder of the window's end.
pub const END: &str = "{_QueryWindowEndTime}";

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// How a time is written in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    UnixSeconds,
    UnixMillis,
    Pattern(Vec<Piece>),
}

/// One part of a compiled Java pattern: a letter run, or literal text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Letters(char, usize),
    Literal(String),
}

/// Why a pattern cannot be written (a letter this writer does not know).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{pattern}': the letter '{letter}' cannot be used in query_time_format")]
pub struct FormatError {
    pub pattern: String,
    pub letter: char,
}

impl TimeFormat {
    /// Compiles `UnixTimestamp`, `UnixTimestampInMills` (or `...Millis`) or a Java pattern of
    /// the letters `yMdHhkKmsSEaXxZz`, with `'quoted'` text.
    pub fn compile(pattern: &str) -> Result<TimeFormat, FormatError> {
        match pattern {
            "UnixTimestamp" => return Ok(TimeFormat::UnixSeconds),
            "UnixTimestampInMills" | "UnixTimestampInMillis" => return Ok(TimeFormat::UnixMillis),
            _ => {}
        }
        let mut pieces: Vec<Piece> = Vec::new();
        let mut chars = pattern.chars().peekable();
        let mut literal = String::new();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    literal.push('\'');
                    continue;
                }
                // Quoted text up to the closing quote ('' inside is a quote).
                while let Some(q) = chars.next() {
                    if q == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                            literal.push('\'');
                            continue;
                        }
                        break;
                    }
                    literal.push(q);
                }
                continue;
            }
            if !c.is_ascii_alphabetic() {
                literal.push(c);
                continue;
            }
            if !"yMdHhkKmsSEaXxZz".contains(c) {
                return Err(FormatError {
                    pattern: pattern.to_string(),
                    letter: c,
                });
            }
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            let mut n = 1;
            while chars.peek() == Some(&c) {
                chars.next();
                n += 1;
            }
            pieces.push(Piece::Letters(c, n));
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(TimeFormat::Pattern(pieces))
    }

    /// `at` written in this format, in UTC.
    pub fn format(&self, at: DateTime<Utc>) -> String {
        let pieces = match self {
            TimeFormat::UnixSeconds => return at.timestamp().to_string(),
            TimeFormat::UnixMillis => return at.timestamp_millis().to_string(),
            TimeFormat::Pattern(pieces) => pieces,
        };
        let mut out = String::new();
        let num = |out: &mut String, value: i64, width: usize| {
            out.push_str(&format!("{value:0width$}"));
        };
        for piece in pieces {
            let (letter, n) = match piece {
                Piece::Literal(text) => {
                    out.push_str(text);
                    continue;
                }
                Piece::Letters(letter, n) => (*letter, *n),
            };
            match letter {
                'y' if n == 2 => num(&mut out, i64::from(at.year()).rem_euclid(100), 2),
                'y' => num(&mut out, i64::from(at.year()), n.max(4)),
                'M' if n >= 4 => out.push_str(MONTHS[at.month0() as usize]),
                'M' if n == 3 => out.push_str(&MONTHS[at.month0() as usize][..3]),
                'M' => num(&mut out, i64::from(at.month()), n),
                'd' => num(&mut out, i64::from(at.day()), n),
                'H' => num(&mut out, i64::from(at.hour()), n),
                'k' => num(
                    &mut out,
                    i64::from(if at.hour() == 0 { 24 } else { at.hour() }),
                    n,
                ),
                'K' => num(&mut out, i64::from(at.hour() % 12), n),
                'h' => num(&mut out, i64::from(at.hour12().1), n),
                'm' => num(&mut out, i64::from(at.minute()), n),
                's' => num(&mut out, i64::from(at.second()), n),
                'S' => {
                    // A fraction of the second, `n` digits (java.time's reading).
                    let nanos = format!("{:09}", at.nanosecond() % 1_000_000_000);
                    let digits: String = nanos
                        .chars()
                        .chain(std::iter::repeat('0'))
                        .take(n)
                        .collect();
                    out.push_str(&digits);
                }
                'E' if n >= 4 => out.push_str(DAYS[at.weekday().num_days_from_monday() as usize]),
                'E' => out.push_str(&DAYS[at.weekday().num_days_from_monday() as usize][..3]),
                'a' => out.push_str(if at.hour() < 12 { "AM" } else { "PM" }),
                'X' => out.push('Z'),
                'x' => out.push_str(match n {
                    1 => "+00",
                    2 | 4 => "+0000",
                    _ => "+00:00",
                }),
                'Z' => out.push_str("+0000"),
                _ => out.push_str("UTC"), // 'z', the only letter left
            }
        }
        out
    }
}

/// `text` with the placeholders replaced by the window's times.
pub fn fill(text: &str, start: &str, end: &str) -> String {
    text.replace(START, start).replace(END, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn java_patterns_are_written_in_utc() {
        let t = at("2019-09-01T17:05:09.123Z");
        let cases = [
            ("yyyy-MM-dd'T'HH:mm:ssX", "2019-09-01T17:05:09Z"),
            (
                "yyyy-MM-dd'T'HH:mm:ss.SSSSSSS",
                "2019-09-01T17:05:09.1230000",
            ),
            ("MM/dd/yyyy hh:mm:ss a", "09/01/2019 05:05:09 PM"),
            ("EEE, d MMM yy HH:mm:ss Z", "Sun, 1 Sep 19 17:05:09 +0000"),
            ("yyyyMMdd'T'HHmm'''x'", "20190901T1705'x"),
            ("yyyy-MM-dd'T'HH:mm:ssXXX", "2019-09-01T17:05:09Z"),
        ];
        for (pattern, expected) in cases {
            let format = TimeFormat::compile(pattern);
            assert_eq!(
                format.map(|f| f.format(t)),
                Ok(expected.to_string()),
                "{pattern}"
            );
        }
    }

    #[test]
    fn unix_timestamps_in_seconds_and_milliseconds() {
        let t = at("2019-09-01T17:05:09.123Z");
        let seconds = TimeFormat::compile("UnixTimestamp").map(|f| f.format(t));
        let millis = TimeFormat::compile("UnixTimestampInMills").map(|f| f.format(t));
        assert_eq!(seconds, Ok("1567357509".to_string()));
        assert_eq!(millis, Ok("1567357509123".to_string()));
    }

    #[test]
    fn an_unknown_letter_is_refused_by_name() {
        let refused = TimeFormat::compile("yyyy-ww");
        assert_eq!(
            refused.map_err(|e| e.to_string()),
            Err("'yyyy-ww': the letter 'w' cannot be used in query_time_format".to_string())
        );
    }

    #[test]
    fn both_placeholders_are_filled_everywhere() {
        let text = "updated gt {_QueryWindowStartTime} and updated lt {_QueryWindowEndTime} ({_QueryWindowStartTime})";
        assert_eq!(fill(text, "A", "B"), "updated gt A and updated lt B (A)");
    }
}
