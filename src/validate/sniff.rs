//! What a file's dates look like, when the configured pattern does not read them: the common
//! patterns real tools write, tried against a column's values. It names the Java pattern to
//! configure, in `status.txt` (a date column that fails) and in `dropfolder validate
//! --suggest` (a file's dialect and `date_format`, as DuckDB's `read_csv` sniffs them).

use std::sync::LazyLock;

use super::DatePattern;
use super::report::ErrorList;

/// The patterns tried, most specific first; `MM/dd` before `dd/MM`, whose values fit both
/// when every day is 12 or less.
const COMMON: [&str; 27] = [
    "yyyy-MM-dd'T'HH:mm:ss[.SSSSSSSSS]X",
    "yyyy-MM-dd'T'HH:mm:ss[.SSSSSSSSS]",
    "yyyy-MM-dd HH:mm:ss[.SSSSSSSSS]X",
    "yyyy-MM-dd HH:mm:ss[.SSSSSSSSS]",
    "yyyy-MM-dd HH:mm",
    "yyyy-MM-dd",
    "yyyyMMdd",
    "yyyy/MM/dd",
    "MM/dd/yyyy HH:mm:ss",
    "dd/MM/yyyy HH:mm:ss",
    "MM/dd/yyyy HH:mm",
    "dd/MM/yyyy HH:mm",
    "MM/dd/yyyy hh:mm[:ss] a",
    "dd/MM/yyyy hh:mm[:ss] a",
    "MM/dd/yyyy",
    "dd/MM/yyyy",
    "dd.MM.yyyy HH:mm[:ss]",
    "dd.MM.yyyy",
    "MM-dd-yyyy",
    "dd-MM-yyyy",
    "EEE MMM dd HH:mm:ss zzz yyyy",
    "EEE, dd MMM yyyy HH:mm:ss Z",
    "dd MMM yyyy",
    "MMM d, yyyy",
    "dd-MMM-yyyy",
    "UnixTimestamp",
    "UnixTimestampInMills",
];

/// The US and the European order of one layout, as indexes into [`COMMON`].
const DAY_MONTH_SWAPS: [(usize, usize); 5] = [(8, 9), (10, 11), (12, 13), (14, 15), (18, 19)];

static PATTERNS: LazyLock<Vec<DatePattern>> = LazyLock::new(|| {
    COMMON
        .iter()
        .filter_map(|p| DatePattern::compile(p).ok())
        .collect()
});

/// The common patterns that read every value seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateGuess {
    /// Bit `i`: `COMMON[i]` read every value.
    fits: u32,
    values: u64,
}

impl Default for DateGuess {
    fn default() -> Self {
        DateGuess {
            fits: (1u32 << COMMON.len()) - 1,
            values: 0,
        }
    }
}

impl DateGuess {
    /// Tries `value` (spaces and tabs around it trimmed; empty values say nothing).
    pub fn observe(&mut self, value: &str) {
        let value = value.trim_matches([' ', '\t']);
        if value.is_empty() {
            return;
        }
        self.values += 1;
        if self.fits == 0 {
            return;
        }
        for (i, pattern) in PATTERNS.iter().enumerate() {
            if self.fits & (1 << i) != 0 && !fits(pattern, value) {
                self.fits &= !(1 << i);
            }
        }
    }

    /// The index of the first common pattern that read every value.
    fn first(&self) -> Option<usize> {
        if self.values == 0 {
            return None;
        }
        (0..COMMON.len()).find(|i| self.fits & (1 << i) != 0)
    }

    /// The first common pattern that read every value, and its day/month twin if that did
    /// too; `None` when no value was seen or none fits them all.
    pub fn pattern(&self) -> Option<(&'static str, Option<&'static str>)> {
        let first = self.first()?;
        let twin = DAY_MONTH_SWAPS
            .iter()
            .find(|&&(a, b)| a == first && self.fits & (1 << b) != 0)
            .map(|&(_, b)| COMMON[b]);
        Some((COMMON[first], twin))
    }

    /// `MM/dd/yyyy`, or `MM/dd/yyyy (or dd/MM/yyyy: every day is 12 or less)`.
    pub fn describe(&self) -> Option<String> {
        let (pattern, twin) = self.pattern()?;
        Some(match twin {
            None => pattern.to_string(),
            Some(twin) => format!("{pattern} (or {twin}: every day is 12 or less)"),
        })
    }
}

/// Unix timestamps only for values of their usual length, or every column of small numbers
/// would look like dates.
fn fits(pattern: &DatePattern, value: &str) -> bool {
    let digits = value.split('.').next().unwrap_or("").len();
    match pattern.as_str() {
        "UnixTimestamp" if !(9..=10).contains(&digits) => false,
        "UnixTimestampInMills" if !(12..=13).contains(&digits) || value.contains('.') => false,
        _ => pattern.parse(value).is_some(),
    }
}

/// The values of date columns the configured pattern refused, by column, so that the first
/// such error in `status.txt` can say what the values look like. Only refused values are
/// tried: a valid file costs nothing.
#[derive(Debug, Default)]
pub struct DateHints {
    /// By column index: the column's name as errors show it, and the guess.
    columns: Vec<Option<(String, DateGuess)>>,
    /// By column index: the configured pattern read one of its values.
    read: Vec<bool>,
}

impl DateHints {
    /// A date cell of column `index` the configured pattern read.
    #[inline]
    pub fn read(&mut self, index: usize) {
        match self.read.get_mut(index) {
            Some(read) => *read = true,
            None => {
                self.read.resize(index + 1, false);
                self.read[index] = true;
            }
        }
    }

    /// A date cell of column `index` (named `column`) the configured pattern refused.
    pub fn refused(&mut self, index: usize, column: &str, value: &str) {
        if self.columns.len() <= index {
            self.columns.resize(index + 1, None);
        }
        self.columns[index]
            .get_or_insert_with(|| (super::escape(column), DateGuess::default()))
            .1
            .observe(value);
    }

    /// Adds `; the values in this column look like P` to the first date error of each column
    /// whose refused values one common pattern reads (`the values refused in this column`
    /// when the configured pattern read some of them).
    pub fn annotate(&self, errors: &mut ErrorList) {
        for (index, (column, guess)) in self
            .columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((i, c.as_ref()?)))
        {
            let Some(looks_like) = guess.describe() else {
                continue;
            };
            let which = if self.read.get(index).copied().unwrap_or(false) {
                "the values refused in this column"
            } else {
                "the values in this column"
            };
            let first = errors.first.iter_mut().find(|e| {
                e.column.as_deref() == Some(column.as_str())
                    && e.message.starts_with("is not a date in format")
            });
            if let Some(error) = first {
                error
                    .message
                    .push_str(&format!("; {which} look like {looks_like}"));
            }
        }
    }
}

/// What `dropfolder validate --suggest` found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub delimiter: char,
    pub header: bool,
    /// Records read (header included).
    pub records: usize,
    /// Columns whose every value one common pattern reads: (column name or `#n`, pattern).
    pub dates: Vec<(String, String)>,
}

/// Columns looked at by `suggest`; a wider sample is no CSV anyone exports.
const MAX_COLUMNS: usize = 4096;

/// The delimiters tried, in order of preference when several split the lines evenly.
const DELIMITERS: [char; 4] = [',', ';', '\t', '|'];

/// Sniffs the dialect and date columns of the decompressed start of a file.
pub async fn suggest(text: &[u8]) -> Suggestion {
    let delimiter = sniff_delimiter(text);
    let mut reader = csv_async::AsyncReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter as u8)
        .create_reader(text);
    let mut records = Vec::new();
    let mut record = csv_async::StringRecord::new();
    // A cut at the end of the sample may leave half a record: only whole lines are read.
    while let Ok(true) = reader.read_record(&mut record).await {
        records.push(record.clone());
    }
    let width = records
        .iter()
        .map(|r| r.len())
        .max()
        .unwrap_or(0)
        .min(MAX_COLUMNS);
    let mut guesses = vec![DateGuess::default(); width];
    for record in records.iter().skip(1) {
        for (guess, value) in guesses.iter_mut().zip(record.iter()) {
            guess.observe(value);
        }
    }
    // A header is a first row none of whose fields is a number or the column's kind of date.
    let looks_like_data = |i: usize, field: &str| {
        let field = field.trim_matches([' ', '\t']);
        super::cell::parse_number(field).is_some()
            || guesses
                .get(i)
                .and_then(DateGuess::first)
                .is_some_and(|p| fits(&PATTERNS[p], field))
    };
    let header = records.first().is_some_and(|first| {
        first
            .iter()
            .enumerate()
            .all(|(i, name)| !name.trim().is_empty() && !looks_like_data(i, name))
    });
    if !header && let Some(first) = records.first() {
        for (guess, value) in guesses.iter_mut().zip(first.iter()) {
            guess.observe(value);
        }
    }
    let dates = guesses
        .iter()
        .enumerate()
        .filter_map(|(i, guess)| {
            let name = match records.first().and_then(|r| r.get(i)) {
                Some(name) if header => name.to_string(),
                _ => format!("#{}", i + 1),
            };
            Some((name, guess.describe()?))
        })
        .collect();
    Suggestion {
        delimiter,
        header,
        records: records.len(),
        dates,
    }
}

/// The delimiter that splits the first lines into the same number (above one) of fields.
fn sniff_delimiter(text: &[u8]) -> char {
    let lines: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .take(50)
        .filter(|l| !l.is_empty())
        .collect();
    let mut best = (',', 0usize);
    for delimiter in DELIMITERS {
        let counts: Vec<usize> = lines
            .iter()
            .map(|line| outside_quotes(line, delimiter as u8))
            .collect();
        let Some(&first) = counts.first() else {
            continue;
        };
        // A quoted line break can still split a record: most lines agreeing is enough.
        let agreeing = counts.iter().filter(|&&c| c == first).count();
        if first > 0 && agreeing * 10 >= counts.len() * 9 && first > best.1 {
            best = (delimiter, first);
        }
    }
    best.0
}

/// How many `delimiter` bytes `line` has outside `"`-quoted fields.
fn outside_quotes(line: &[u8], delimiter: u8) -> usize {
    let mut quoted = false;
    let mut count = 0;
    for &b in line {
        if b == b'"' {
            quoted = !quoted;
        } else if b == delimiter && !quoted {
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guess(values: &[&str]) -> Option<String> {
        let mut guess = DateGuess::default();
        for value in values {
            guess.observe(value);
        }
        guess.describe()
    }

    #[test]
    fn every_common_pattern_compiles() {
        assert_eq!(PATTERNS.len(), COMMON.len());
    }

    #[test]
    fn one_pattern_for_all_the_values() {
        assert_eq!(
            guess(&["06/25/2021", "1/5/2021", ""]).as_deref(),
            Some("MM/dd/yyyy")
        );
        assert_eq!(
            guess(&["01/05/2021", "02/03/2021"]).as_deref(),
            Some("MM/dd/yyyy (or dd/MM/yyyy: every day is 12 or less)")
        );
        assert_eq!(guess(&["25/06/2021"]).as_deref(), Some("dd/MM/yyyy"));
        assert_eq!(
            guess(&["2005-05-05 07:24:55.65", "1970-01-01 00:00:00"]).as_deref(),
            Some("yyyy-MM-dd HH:mm:ss[.SSSSSSSSS]")
        );
        assert_eq!(
            guess(&["Fri Jun 25 13:55:42 UTC 2021"]).as_deref(),
            Some("EEE MMM dd HH:mm:ss zzz yyyy")
        );
        assert_eq!(guess(&["1624629342"]).as_deref(), Some("UnixTimestamp"));
        assert_eq!(guess(&["20211225"]).as_deref(), Some("yyyyMMdd"));
        // Mixed layouts, numbers, text: nothing to say.
        assert_eq!(guess(&["06/25/2021", "2021-06-25"]), None);
        assert_eq!(guess(&["12", "7"]), None);
        assert_eq!(guess(&["hello"]), None);
        assert_eq!(guess(&[]), None);
    }

    #[tokio::test]
    async fn a_files_dialect_and_date_format() {
        let found = suggest(b"id;signUpDate;score\nu1;06/25/2021;12\nu2;1/5/2021;7\n").await;
        assert_eq!(
            found,
            Suggestion {
                delimiter: ';',
                header: true,
                records: 3,
                dates: vec![("signUpDate".into(), "MM/dd/yyyy".into())],
            }
        );
        // Delimiters inside quotes do not count.
        let found = suggest(b"id;name\nu1;\"a;b;c\"\nu2;x\n").await;
        assert_eq!((found.delimiter, found.header), (';', true), "{found:?}");
        let found = suggest(b"u1,2021-06-25T13:55:42Z\nu2,2021-06-26T08:00:00+02:00\n").await;
        assert!(!found.header, "{found:?}");
        assert_eq!(found.delimiter, ',');
        assert_eq!(
            found.dates,
            [(
                "#2".to_string(),
                "yyyy-MM-dd'T'HH:mm:ss[.SSSSSSSSS]X".to_string()
            )]
        );
    }
}
