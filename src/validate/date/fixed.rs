//! The fast path for a pattern of fixed-width numbers and literals (`yyyy-MM-dd'T'HH:mm:ssX`,
//! `yyyyMMdd`, `dd/MM/yyyy HH:mm:ss.SSS`): what most files use, read by position instead of
//! token by token. A value it does not take (another width, padding, a name) goes to the
//! general reader, so it changes no verdict, only the cost of the common one: the general
//! reader spends about 700 instructions on an ISO date, most of a date column's checking.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};

use super::{Clock, Field, Token, parse_offset};

/// A compiled fixed-width pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fixed {
    /// The length of the fixed part, before an offset.
    len: usize,
    /// Each literal byte of the fixed part, with its position.
    literals: Vec<(usize, u8)>,
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
            len: 0,
            literals: Vec::new(),
            numbers: Vec::new(),
            offset: false,
        };
        for (i, token) in tokens.iter().enumerate() {
            match token {
                Token::Literal(text) => {
                    if text.bytes().any(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    for b in text.bytes() {
                        fixed.literals.push((fixed.len, b));
                        fixed.len += 1;
                    }
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
                    fixed.numbers.push((*field, fixed.len, *width));
                    fixed.len += width;
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
        if bytes.len() < self.len || !value.is_char_boundary(self.len) {
            return None;
        }
        // Literals by their positions, digits as the numbers read them: one look at each byte.
        if !self.literals.iter().all(|&(at, b)| bytes[at] == b) {
            return None;
        }
        let (mut year, mut month, mut day) = (0, 0, 0);
        let (mut hour, mut minute, mut second, mut nanos) = (0, 0, 0, 0);
        for &(field, start, width) in &self.numbers {
            let mut n = 0u32;
            for &b in &bytes[start..start + width] {
                let digit = b.wrapping_sub(b'0');
                if digit > 9 {
                    return None;
                }
                n = n * 10 + u32::from(digit);
            }
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
        let rest = &value[self.len..];
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
        // As the general reader resolves a 24-hour time without a two-digit year.
        let at = NaiveDateTime::new(
            NaiveDate::from_ymd_opt(year, month, day)?,
            NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?,
        );
        let at = if offset_seconds == 0 {
            at
        } else {
            at.checked_sub_signed(TimeDelta::seconds(i64::from(offset_seconds)))?
        };
        Some(at.and_utc())
    }
}
