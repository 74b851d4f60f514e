//! Date patterns as customers write them, compiled once at config time.
//!
//! Java-style letters (`yyyy-MM-dd'T'HH:mm:ssX`) read as Java's `SimpleDateFormat` reads them
//! with `setLenient(false)` wherever the customer plainly meant a date: unpadded digits, month
//! and day names in either length and any case, zone names, the two-digit-year window of
//! 80 years back and 20 ahead. Where Java misreads a mistaken pattern (`YYYY` week-year, `DD`
//! day of year, `u` day of week, `hh` without `a`), the customer's meaning wins and
//! [`DatePattern::notes`] says so. Optional sections `[...]` are read as java.time reads them,
//! and a fraction takes 1 up to its width in digits. Every character of a value must be read,
//! impossible dates (Feb 30, month 13, a Monday that is a Friday) are refused, and values
//! without an offset are UTC. Parsing does not allocate.
use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};

use fixed::Fixed;

mod fixed;

/// A compiled date format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatePattern {
    /// The pattern as configured, for messages.
    source: String,
    kind: Kind,
    /// The fast path, for a pattern of fixed-width fields.
    fixed: Option<Fixed>,
    /// A two-digit year is read into the 100 years from here: 80 years before "today".
    century_start: NaiveDateTime,
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
    /// A run of digits. Next to another field (`yyyyMMdd`) at most `width` digits are read,
    /// as Java does; otherwise all of them (a fraction: 1 up to `width`).
    Number {
        field: Field,
        width: usize,
        abutting: bool,
    },
    /// `MMM` or `MMMM`: `Jun` or `June`, either way, any case.
    MonthName,
    /// `E...`: `Fri` or `Friday`, checked against the date.
    DayName,
    AmPm,
    /// `X`, `x`: `Z`, `+HH`, `+HHMM` or `+HH:MM`.
    IsoOffset,
    /// `z`, `Z`: the ISO forms, `GMT`, `GMT+H:MM`, and the zone abbreviations Java resolves.
    Zone,
    /// `[...]`: read when it matches, skipped when it does not (java.time's optional section).
    Optional(Vec<Token>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// `y`, `Y`, `u`: four digits, or two under `y`/`yy` (then within the century window).
    Year {
        two_digits: bool,
    },
    Month,
    Day,
    Hour(Clock),
    Minute,
    Second,
    Fraction,
}

/// Which hour letter: `H` 0-23, `k` 1-24, `h` 1-12 and `K` 0-11 with `a`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Clock {
    #[default]
    H,
    K,
    LowerH,
    LowerK,
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

/// Zone abbreviations and the fixed offset (minutes east of UTC) Java 17 gives each when
/// parsing with `z` in `Locale.US`, whatever the date: `PST` is always -8, `PDT` -7.
/// Ambiguous ones Java resolves surprisingly (`IST` is Israel, not India; `ACDT`, `SST`,
/// `ECT`) are left out: refused, rather than stored at an instant nobody meant.
const ZONES: [(&str, i32); 45] = [
    ("UTC", 0),
    ("GMT", 0),
    ("WET", 0),
    ("WEST", 60),
    ("BST", 60),
    ("CET", 60),
    ("MET", 60),
    ("WAT", 60),
    ("CEST", 120),
    ("EET", 120),
    ("SAST", 120),
    ("CAT", 120),
    ("EEST", 180),
    ("MSK", 180),
    ("EAT", 180),
    ("PKT", 300),
    ("ICT", 420),
    ("WIB", 420),
    ("HKT", 480),
    ("SGT", 480),
    ("AWST", 480),
    ("JST", 540),
    ("KST", 540),
    ("ACST", 570),
    ("AEST", 600),
    ("AEDT", 660),
    ("NZST", 720),
    ("NZDT", 780),
    ("ART", -180),
    ("BRT", -180),
    ("ADT", -180),
    ("NDT", -150),
    ("NST", -210),
    ("AST", -240),
    ("EDT", -240),
    ("EST", -300),
    ("CDT", -300),
    ("CST", -360),
    ("MDT", -360),
    ("MST", -420),
    ("PDT", -420),
    ("PST", -480),
    ("AKDT", -480),
    ("AKST", -540),
    ("HST", -600),
];

impl DatePattern {
    /// Compiles `pattern` with today's two-digit-year window.
    pub fn compile(pattern: &str) -> Result<DatePattern, PatternError> {
        DatePattern::compile_on(pattern, Utc::now().date_naive())
    }

    /// Compiles `pattern` with the two-digit-year window of `today` (80 years back, 20 ahead,
    /// as `SimpleDateFormat` sets it when it is made).
    pub fn compile_on(pattern: &str, today: NaiveDate) -> Result<DatePattern, PatternError> {
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
        let century_start = today
            .checked_sub_months(chrono::Months::new(12 * 80))
            .unwrap_or(NaiveDate::MIN)
            .and_time(NaiveTime::MIN);
        let fixed = match &kind {
            Kind::Fields(tokens) => Fixed::compile(tokens),
            Kind::UnixSeconds | Kind::UnixMillis => None,
        };
        Ok(DatePattern {
            source: pattern.to_string(),
            kind,
            fixed,
            century_start,
        })
    }

    /// The pattern as configured.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// How this pattern's letters are read where Java's `SimpleDateFormat` would read them
    /// differently, one note per letter, for `dropfolder check`.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if matches!(self.kind, Kind::Fields(_)) {
            mistaken_letters(&self.source, &mut notes);
        }
        notes
    }

    /// Parses one value; `None` when it does not match or is not a real instant.
    pub fn parse(&self, value: &str) -> Option<DateTime<Utc>> {
        if let Some(fixed) = &self.fixed
            && let Some(at) = fixed.parse(value)
        {
            return Some(at);
        }
        self.parse_general(value)
    }

    /// Parses one value token by token, whatever the pattern.
    fn parse_general(&self, value: &str) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::UnixSeconds => parse_unix_seconds(value),
            Kind::UnixMillis => {
                let ms: i64 = digits_with_sign(value)?.parse().ok()?;
                DateTime::from_timestamp_millis(ms)
            }
            Kind::Fields(tokens) => {
                let mut rest = value;
                let mut parts = Parts::default();
                read_tokens(tokens, &mut rest, &mut parts)?;
                if !rest.is_empty() {
                    return None;
                }
                parts.resolve(self.century_start)
            }
        }
    }
}

impl fmt::Display for DatePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// The pattern's letters outside quotes, as (letter, run length).
fn letter_runs(pattern: &str) -> Vec<(char, usize)> {
    let mut runs: Vec<(char, usize)> = Vec::new();
    let mut quoted = false;
    let mut previous = None;
    for c in pattern.chars() {
        if c == '\'' {
            quoted = !quoted;
            previous = None;
            continue;
        }
        if quoted || !c.is_ascii_alphabetic() {
            previous = None;
            continue;
        }
        if previous == Some(c)
            && let Some((_, n)) = runs.last_mut()
        {
            *n += 1;
        } else {
            runs.push((c, 1));
        }
        previous = Some(c);
    }
    runs
}

fn mistaken_letters(pattern: &str, notes: &mut Vec<String>) {
    let runs = letter_runs(pattern);
    let has = |c: char| runs.iter().any(|&(l, _)| l == c);
    for &(c, n) in &runs {
        let letters = c.to_string().repeat(n);
        let note = match c {
            'Y' => format!(
                "'{letters}' is read as the calendar year (Java's SimpleDateFormat reads the \
                 week year, which differs around New Year; 'yyyy' is the calendar year)"
            ),
            'D' => format!(
                "'{letters}' is read as the day of the month (Java reads the day of the year; \
                 'dd' is the day of the month)"
            ),
            'u' => format!(
                "'{letters}' is read as the year, as java.time reads it (SimpleDateFormat reads \
                 the day number of the week)"
            ),
            'h' | 'K' if !has('a') => format!(
                "'{letters}' without 'a' is read as the hour 0-23, as 'HH' (Java reads a \
                 12-hour clock in the morning: 13 is refused and 12:30 is 00:30)"
            ),
            'S' if n != 3 => format!(
                "'{letters}' is a fraction of a second of 1 to {n} digits (SimpleDateFormat \
                 reads S as a number of milliseconds: .5 would be 5 ms)"
            ),
            _ => continue,
        };
        notes.push(note);
    }
}

fn tokenize(pattern: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    // The sequence being filled is the last; `[` opens a new one, `]` closes it.
    let mut stack: Vec<Vec<Token>> = vec![Vec::new()];
    let mut literal = String::new();
    let mut i = 0;
    fn flush(literal: &mut String, stack: &mut [Vec<Token>]) {
        if !literal.is_empty()
            && let Some(top) = stack.last_mut()
        {
            top.push(Token::Literal(std::mem::take(literal)));
        }
    }
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
        if c == '[' {
            flush(&mut literal, &mut stack);
            stack.push(Vec::new());
            i += 1;
            continue;
        }
        if c == ']' {
            flush(&mut literal, &mut stack);
            if stack.len() < 2 {
                return Err("']' closes no optional section '['".into());
            }
            let section = stack.pop().unwrap_or_default();
            if let Some(top) = stack.last_mut() {
                top.push(Token::Optional(section));
            }
            i += 1;
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
        flush(&mut literal, &mut stack);
        if let Some(top) = stack.last_mut() {
            top.push(token);
        }
    }
    flush(&mut literal, &mut stack);
    if stack.len() != 1 {
        return Err("an optional section '[' is not closed with ']'".into());
    }
    let mut tokens = stack.pop().unwrap_or_default();
    mark_abutting(&mut tokens);
    Ok(tokens)
}

/// A number directly followed by another field keeps its width, as in Java.
fn mark_abutting(tokens: &mut [Token]) {
    for i in 0..tokens.len() {
        let next_is_field = tokens
            .get(i + 1)
            .is_some_and(|t| !matches!(t, Token::Literal(_) | Token::Optional(_)));
        match &mut tokens[i] {
            Token::Number { abutting, .. } => *abutting = next_is_field,
            Token::Optional(inner) => mark_abutting(inner),
            _ => {}
        }
    }
}

/// The token for a run of `count` pattern letters `c`; `None` for a literal `T`.
fn letter(c: char, count: usize) -> Result<Option<Token>, String> {
    let number = |field, width| Token::Number {
        field,
        width,
        abutting: false,
    };
    Ok(Some(match c {
        'y' | 'Y' | 'u' => number(
            Field::Year {
                two_digits: count <= 2,
            },
            count.max(2),
        ),
        'M' | 'L' if count >= 3 => Token::MonthName,
        'M' | 'L' => number(Field::Month, count),
        'd' | 'D' if count <= 2 => number(Field::Day, count),
        'D' => return Err("DDD (day of year) is not supported; D is read as day of month".into()),
        'H' if count <= 2 => number(Field::Hour(Clock::H), count),
        'k' if count <= 2 => number(Field::Hour(Clock::LowerK), count),
        'h' if count <= 2 => number(Field::Hour(Clock::LowerH), count),
        'K' if count <= 2 => number(Field::Hour(Clock::K), count),
        'm' if count <= 2 => number(Field::Minute, count),
        's' if count <= 2 => number(Field::Second, count),
        'S' if count <= 9 => number(Field::Fraction, count),
        'a' => Token::AmPm,
        'E' => Token::DayName,
        'X' | 'x' => Token::IsoOffset,
        'Z' | 'z' => Token::Zone,
        'T' if count == 1 => return Ok(None),
        _ => {
            return Err(format!(
                "'{}' is not a supported pattern letter (use y M d H h k K m s S a E X Z z, \
                 quote literal text)",
                c.to_string().repeat(count)
            ));
        }
    }))
}

/// What a field is, for "named twice" checks: one slot per thing a date has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Fraction,
    DayName,
    AmPm,
    Offset,
}

impl Slot {
    fn of(token: &Token) -> Option<Slot> {
        Some(match token {
            Token::Number { field, .. } => match field {
                Field::Year { .. } => Slot::Year,
                Field::Month => Slot::Month,
                Field::Day => Slot::Day,
                Field::Hour(_) => Slot::Hour,
                Field::Minute => Slot::Minute,
                Field::Second => Slot::Second,
                Field::Fraction => Slot::Fraction,
            },
            Token::MonthName => Slot::Month,
            Token::DayName => Slot::DayName,
            Token::AmPm => Slot::AmPm,
            Token::IsoOffset | Token::Zone => Slot::Offset,
            Token::Literal(_) | Token::Optional(_) => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Slot::Year => "the year",
            Slot::Month => "the month",
            Slot::Day => "the day",
            Slot::Hour => "the hour",
            Slot::Minute => "the minute",
            Slot::Second => "the second",
            Slot::Fraction => "the fraction of a second",
            Slot::DayName => "the day of the week",
            Slot::AmPm => "AM/PM",
            Slot::Offset => "the time zone",
        }
    }
}

/// Every field of the pattern with whether it sits in an optional section.
fn slots(tokens: &[Token], optional: bool, out: &mut Vec<(Slot, bool, Option<Field>)>) {
    for token in tokens {
        if let Token::Optional(inner) = token {
            slots(inner, true, out);
        } else if let Some(slot) = Slot::of(token) {
            let field = match token {
                Token::Number { field, .. } => Some(*field),
                _ => None,
            };
            out.push((slot, optional, field));
        }
    }
}

fn check_fields(tokens: &[Token]) -> Result<(), String> {
    let mut found = Vec::new();
    slots(tokens, false, &mut found);
    let has = |slot: Slot| found.iter().any(|&(s, _, _)| s == slot);
    // Two of a field can both be read only if one of them is not optional; alternatives in
    // optional sections (`[ HH:mm:ss][ HH:mm]`) are fine.
    for (i, &(slot, optional, _)) in found.iter().enumerate() {
        let twice = found[i + 1..]
            .iter()
            .any(|&(other, other_optional, _)| other == slot && !(optional && other_optional));
        if twice {
            let hint = match slot {
                Slot::Month if has(Slot::Hour) => ": minutes are 'mm', the month is 'MM'",
                Slot::Minute => ": the month is 'MM', minutes are 'mm'",
                _ => "",
            };
            return Err(format!("names {} twice{hint}", slot.name()));
        }
    }
    if has(Slot::Minute) && !has(Slot::Hour) {
        return Err("'mm' is minutes, and there is no hour: the month is 'MM'".into());
    }
    if !has(Slot::Year) || !has(Slot::Month) || !has(Slot::Day) {
        return Err("a date pattern needs a year (yyyy), a month (MM) and a day (dd)".into());
    }
    let twelve_hour = found.iter().any(|&(_, _, f)| {
        matches!(
            f,
            Some(Field::Hour(Clock::LowerH)) | Some(Field::Hour(Clock::K))
        )
    });
    if has(Slot::AmPm) && !twelve_hour {
        return Err("'a' (AM/PM) goes with the 12-hour clock 'hh'".into());
    }
    Ok(())
}

/// The fields of a value as they are read, before they make a date.
#[derive(Debug, Clone, Copy, Default)]
struct Parts {
    year: i32,
    /// The year was two digits, to be placed in the century window.
    two_digit_year: bool,
    month: u32,
    day: u32,
    hour: u32,
    clock: Clock,
    pm: Option<bool>,
    minute: u32,
    second: u32,
    nanos: u32,
    offset_seconds: i32,
    /// 0 = Monday.
    weekday: Option<u32>,
}

impl Parts {
    fn resolve(self, century_start: NaiveDateTime) -> Option<DateTime<Utc>> {
        let hour = match (self.clock, self.pm) {
            (Clock::LowerH, Some(pm)) if (1..=12).contains(&self.hour) => {
                self.hour % 12 + if pm { 12 } else { 0 }
            }
            (Clock::K, Some(pm)) if self.hour <= 11 => self.hour + if pm { 12 } else { 0 },
            (Clock::LowerH | Clock::K, Some(_)) => return None,
            (Clock::LowerK, _) if (1..=24).contains(&self.hour) => self.hour % 24,
            (Clock::LowerK, _) => return None,
            // `hh` or `KK` without `a`: the customer wrote a 24-hour time.
            _ => self.hour,
        };
        let time = NaiveTime::from_hms_nano_opt(hour, self.minute, self.second, self.nanos)?;
        let offset = TimeDelta::seconds(i64::from(self.offset_seconds));
        let at = |year: i32| -> Option<NaiveDateTime> {
            let date = NaiveDate::from_ymd_opt(year, self.month, self.day)?;
            if let Some(weekday) = self.weekday
                && date.weekday().num_days_from_monday() != weekday
            {
                return None;
            }
            NaiveDateTime::new(date, time).checked_sub_signed(offset)
        };
        let utc = if self.two_digit_year {
            // As SimpleDateFormat: into the 100 years from the century start.
            let start_year = century_start.year();
            let mut year = start_year - start_year.rem_euclid(100) + self.year;
            if year < start_year {
                year += 100;
            }
            match at(year)? {
                utc if utc < century_start => at(year + 100)?,
                utc => utc,
            }
        } else {
            at(self.year)?
        };
        Some(utc.and_utc())
    }
}

/// Reads `tokens` from the front of `rest`, advancing it; `None` when they do not match.
fn read_tokens(tokens: &[Token], rest: &mut &str, p: &mut Parts) -> Option<()> {
    for token in tokens {
        if !matches!(token, Token::Literal(_) | Token::Optional(_)) {
            // Java skips spaces and tabs before every field (ctime's `Jun  5`).
            *rest = rest.trim_start_matches([' ', '\t']);
        }
        match token {
            Token::Literal(text) => *rest = rest.strip_prefix(text.as_str())?,
            Token::Number {
                field,
                width,
                abutting,
            } => {
                let available = rest.bytes().take_while(u8::is_ascii_digit).count();
                let len = if *abutting {
                    available.min(*width)
                } else {
                    available
                };
                let too_long = match field {
                    Field::Fraction => len > *width,
                    _ => len > 9,
                };
                if len == 0 || too_long {
                    return None;
                }
                // At most 9 digits: no overflow in u32.
                let n = rest.as_bytes()[..len]
                    .iter()
                    .fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
                match *field {
                    Field::Year { two_digits } => {
                        p.two_digit_year = len == 2 && two_digits;
                        if len != 4 && !p.two_digit_year {
                            return None;
                        }
                        p.year = n as i32;
                    }
                    Field::Month => p.month = n,
                    Field::Day => p.day = n,
                    Field::Hour(clock) => {
                        p.hour = n;
                        p.clock = clock;
                    }
                    Field::Minute => p.minute = n,
                    Field::Second => p.second = n,
                    Field::Fraction => p.nanos = n * 10u32.pow(9 - len as u32),
                }
                *rest = &rest[len..];
            }
            Token::MonthName => {
                let (index, len) = match_name(rest, &MONTHS)?;
                p.month = index as u32 + 1;
                *rest = &rest[len..];
            }
            Token::DayName => {
                let (index, len) = match_name(rest, &DAYS)?;
                p.weekday = Some(index as u32);
                *rest = &rest[len..];
            }
            Token::AmPm => {
                let marker = rest.get(..2)?;
                p.pm = Some(if marker.eq_ignore_ascii_case("am") {
                    false
                } else if marker.eq_ignore_ascii_case("pm") {
                    true
                } else {
                    return None;
                });
                *rest = &rest[2..];
            }
            Token::IsoOffset => {
                let (seconds, len) = parse_offset(rest)?;
                p.offset_seconds = seconds;
                *rest = &rest[len..];
            }
            Token::Zone => {
                let (seconds, len) = parse_zone(rest)?;
                p.offset_seconds = seconds;
                *rest = &rest[len..];
            }
            Token::Optional(inner) => {
                let (saved_rest, saved_parts) = (*rest, *p);
                if read_tokens(inner, rest, p).is_none() {
                    *rest = saved_rest;
                    *p = saved_parts;
                }
            }
        }
    }
    Some(())
}

/// Matches a month or day name, full or its 3-letter abbreviation, any case; the full name
/// first, so that `June` is not read as `Jun` and a stray `e`.
fn match_name(rest: &str, names: &[&str]) -> Option<(usize, usize)> {
    let starts = |candidate: &str| {
        rest.get(..candidate.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(candidate))
    };
    names
        .iter()
        .position(|name| starts(name))
        .map(|i| (i, names[i].len()))
        .or_else(|| {
            names
                .iter()
                .position(|name| starts(&name[..3]))
                .map(|i| (i, 3))
        })
}

/// `z`/`Z`: `GMT`, `GMT+H:MM`, a zone abbreviation, or an ISO offset.
fn parse_zone(rest: &str) -> Option<(i32, usize)> {
    if rest
        .get(..3)
        .is_some_and(|head| head.eq_ignore_ascii_case("GMT"))
    {
        let after = &rest[3..];
        let sign = match after.as_bytes().first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Some((0, 3)),
        };
        // Java's custom zone: one or two hour digits, a colon, two minute digits.
        let body = &after[1..];
        let hour_digits = body.bytes().take(2).take_while(u8::is_ascii_digit).count();
        let minutes = body.get(hour_digits + 1..hour_digits + 3)?;
        if hour_digits == 0
            || body.as_bytes().get(hour_digits) != Some(&b':')
            || !minutes.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let hours: i32 = body[..hour_digits].parse().ok()?;
        let minutes: i32 = minutes.parse().ok()?;
        if hours > 23 || minutes > 59 {
            return None;
        }
        return Some((
            sign * (hours * 3600 + minutes * 60),
            3 + 1 + hour_digits + 3,
        ));
    }
    let longest = ZONES
        .iter()
        .filter(|(name, _)| {
            rest.get(..name.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(name))
        })
        .max_by_key(|(name, _)| name.len());
    if let Some((name, minutes)) = longest {
        return Some((minutes * 60, name.len()));
    }
    parse_offset(rest)
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
