//! The fast path for a pattern of fixed-width numbers and literals (`yyyy-MM-dd'T'HH:mm:ssX`,
//! `yyyyMMdd`, `dd/MM/yyyy HH:mm:ss.SSS`): what most files use, read by position instead of
//! token by token. A value it does not take (another width, padding, a name) goes to the
//! general reader, so it changes no verdict, only the cost of the common one: the general
//! reader spends about 700 instructions on an ISO date, most of a date column's checking.
//! The commonest layouts (`yyyy-MM-dd`, with `'T'` or a space and `HH:mm:ss`) are read with
//! every position known at compile time, not by walking the template.

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
    /// The fixed part is one of the layouts most files use, read with every position known.
    iso: Option<Iso>,
}

/// `yyyy-MM-dd`, alone or followed by `'T'` or a space and `HH:mm:ss`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Iso {
    Date,
    DateTime { separator: u8 },
}

/// The date and time fields of a value, as read from its digits.
#[derive(Debug, Default)]
struct Parts {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
}

/// The two digits at `at`, as a number.
#[inline(always)]
fn two_digits(bytes: &[u8], at: usize) -> Option<u32> {
    let (tens, ones) = (
        bytes[at].wrapping_sub(b'0'),
        bytes[at + 1].wrapping_sub(b'0'),
    );
    (tens <= 9 && ones <= 9).then_some(u32::from(tens) * 10 + u32::from(ones))
}

impl Iso {
    /// The layout of `fixed`, if it is one of these.
    fn of(fixed: &Fixed) -> Option<Iso> {
        let year = Field::Year { two_digits: false };
        let date = [(year, 0, 4), (Field::Month, 5, 2), (Field::Day, 8, 2)];
        let numbers = fixed.numbers.as_slice();
        let literals = fixed.literals.as_slice();
        if fixed.len == 10 && numbers == date && literals == [(4, b'-'), (7, b'-')] {
            return Some(Iso::Date);
        }
        let time = [
            (Field::Hour(Clock::H), 11, 2),
            (Field::Minute, 14, 2),
            (Field::Second, 17, 2),
        ];
        match literals {
            [
                (4, b'-'),
                (7, b'-'),
                (10, separator),
                (13, b':'),
                (16, b':'),
            ] if fixed.len == 19
                && numbers.len() == 6
                && numbers[..3] == date
                && numbers[3..] == time =>
            {
                Some(Iso::DateTime {
                    separator: *separator,
                })
            }
            _ => None,
        }
    }

    /// The fields of `bytes` (at least the layout's length), if it has the layout's shape.
    #[inline(always)]
    fn read(self, bytes: &[u8]) -> Option<Parts> {
        if bytes[4] != b'-' || bytes[7] != b'-' {
            return None;
        }
        let century = two_digits(bytes, 0)?;
        let mut parts = Parts {
            year: (century * 100 + two_digits(bytes, 2)?) as i32,
            month: two_digits(bytes, 5)?,
            day: two_digits(bytes, 8)?,
            ..Parts::default()
        };
        if let Iso::DateTime { separator } = self {
            if bytes[10] != separator || bytes[13] != b':' || bytes[16] != b':' {
                return None;
            }
            parts.hour = two_digits(bytes, 11)?;
            parts.minute = two_digits(bytes, 14)?;
            parts.second = two_digits(bytes, 17)?;
        }
        Some(parts)
    }
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
            iso: None,
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
        fixed.iso = Iso::of(&fixed);
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
        let parts = match self.iso {
            Some(iso) => iso.read(bytes)?,
            None => self.read(bytes)?,
        };
        let Parts {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanos,
        } = parts;
        let rest = &value[self.len..];
        let offset_seconds = if self.offset {
            match rest.as_bytes() {
                // UTC, what most writers put there: no call to read it.
                [b'Z' | b'z'] => 0,
                _ => match parse_offset(rest)? {
                    (seconds, len) if len == rest.len() => seconds,
                    _ => return None,
                },
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

    /// Whether values are read by one of the [`Iso`] layouts.
    #[cfg(test)]
    pub(super) fn reads_by_layout(&self) -> bool {
        self.iso.is_some()
    }

    /// The fields of `bytes` (at least `len` long) read by the template, token by token.
    fn read(&self, bytes: &[u8]) -> Option<Parts> {
        // Literals by their positions, digits as the numbers read them: one look at each byte.
        if !self.literals.iter().all(|&(at, b)| bytes[at] == b) {
            return None;
        }
        let mut parts = Parts::default();
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
                Field::Year { .. } => parts.year = n as i32,
                Field::Month => parts.month = n,
                Field::Day => parts.day = n,
                Field::Hour(_) => parts.hour = n,
                Field::Minute => parts.minute = n,
                Field::Second => parts.second = n,
                Field::Fraction => parts.nanos = n * 10u32.pow(9 - width as u32),
            }
        }
        Some(parts)
    }
}
