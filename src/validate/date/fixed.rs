//! The fast path for a pattern of fixed-width numbers and literals (`yyyy-MM-dd'T'HH:mm:ssX`,
//! `yyyyMMdd`, `dd/MM/yyyy HH:mm:ss.SSS`): what most files use, read by position instead of
//! token by token. A value it does not take (another width, padding, a name) goes to the
//! general reader, so it changes no verdict, only the cost of the common one: the general
//! reader spends about 1,200 instructions on an ISO date, most of a date column's checking.

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use super::{Clock, Field, Token, parse_offset};

/// A digit in the template; no literal byte can be 0xFF (it is never in UTF-8).
const DIGIT: u8 = 0xFF;

/// 1970-01-01 as `Datelike::num_days_from_ce` counts it.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// A compiled fixed-width pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fixed {
    /// The bytes of the fixed part: a literal byte, or [`DIGIT`].
    template: Vec<u8>,
    /// Each number: what it is, where it starts, its width.
    numbers: Vec<(Field, usize, usize)>,
    /// An ISO offset (`X`) follows the fixed part.
    offset: bool,
}

impl Fixed {
    /// The fast path for `tokens`, if they are only literals without digits, four-digit years,
    /// two-digit months, days, 24-hour hours, minutes and seconds, fractions, and at most one
    /// ISO offset at the end. Only there does reading by position give what the general
    /// reader gives for every value of the template's shape: a number next to a literal or
    /// the end reads all its digits there, and the shape puts none but its own.
    pub(super) fn compile(tokens: &[Token]) -> Option<Fixed> {
        let mut fixed = Fixed {
            template: Vec::new(),
            numbers: Vec::new(),
            offset: false,
        };
        for (i, token) in tokens.iter().enumerate() {
            match token {
                Token::Literal(text) => {
                    if text.bytes().any(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    fixed.template.extend_from_slice(text.as_bytes());
                }
                Token::Number { field, width, .. } => {
                    let fits = match field {
                        Field::Year { two_digits } => !two_digits && *width == 4,
                        Field::Hour(clock) => *clock == Clock::H && *width == 2,
                        Field::Month | Field::Day | Field::Minute | Field::Second => *width == 2,
                        Field::Fraction => (1..=9).contains(width),
                    };
                    if !fits {
                        return None;
                    }
                    fixed.numbers.push((*field, fixed.template.len(), *width));
                    fixed.template.extend(std::iter::repeat_n(DIGIT, *width));
                }
                Token::IsoOffset if i + 1 == tokens.len() => fixed.offset = true,
                _ => return None,
            }
        }
        Some(fixed)
    }

    /// The instant `value` names, if it has the template's shape and is a real one; `None`
    /// means the general reader decides.
    #[inline]
    pub(super) fn parse(&self, value: &str) -> Option<DateTime<Utc>> {
        let bytes = value.as_bytes();
        let head = bytes.get(..self.template.len())?;
        let shaped = head.iter().zip(&self.template).all(|(&b, &t)| {
            if t == DIGIT {
                b.is_ascii_digit()
            } else {
                b == t
            }
        });
        if !shaped {
            return None;
        }
        let rest = &value[self.template.len()..];
        let offset_seconds = if self.offset {
            match parse_offset(rest)? {
                (seconds, len) if len == rest.len() => seconds,
                _ => return None,
            }
        } else if rest.is_empty() {
            0
        } else {
            return None;
        };
        let (mut year, mut month, mut day) = (0, 0, 0);
        let (mut hour, mut minute, mut second, mut nanos) = (0, 0, 0, 0);
        for &(field, start, width) in &self.numbers {
            let n = head[start..start + width]
                .iter()
                .fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
            match field {
                Field::Year { .. } => year = n as i32,
                Field::Month => month = n,
                Field::Day => day = n,
                Field::Hour(_) => hour = n,
                Field::Minute => minute = n,
                Field::Second => second = n,
                Field::Fraction => nanos = n * 10u32.pow(9 - width as u32),
            }
        }
        // What `NaiveTime::from_hms_nano_opt` takes, less its leap second (not reachable
        // from a fraction of at most 9 digits).
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let date = NaiveDate::from_ymd_opt(year, month, day)?;
        let seconds = i64::from(date.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE) * 86_400
            + i64::from(hour * 3600 + minute * 60 + second)
            - i64::from(offset_seconds);
        DateTime::from_timestamp(seconds, nanos)
    }
}
