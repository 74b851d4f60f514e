//! The splitter against the reading it replaced: csv-async (csv-core) with the metered
//! input's quirk scan, kept here as the oracle. Both read generated files; every record, its
//! line and quirks, every UTF-8 error and the end must be the same, whatever sizes of chunk
//! the splitter is fed.
//!
//! One difference is corrected, not copied: csv-async places a record at the end of the one
//! before it, so after blank lines the old reading named a line too early. The oracle's lines
//! here are those of the record's first byte; `a_record_after_blank_lines_is_named_at_its_line`
//! shows the old count.

use csv_async::{AsyncReaderBuilder, ErrorKind, StringRecord};

use super::*;
use crate::validate::input::{MeteredInput, Quirk, Quoting};
use crate::validate::lex::Dialect;

/// What a reading of a file gave, comparable.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Record {
        line: u64,
        quirks: Quirks,
        fields: Vec<String>,
        /// Whether the checker finds a NUL in it (so the splitter's hint must not hide one).
        has_nul: bool,
    },
    Utf8 {
        line: u64,
        field: usize,
        valid_up_to: usize,
    },
    Fatal(String),
    End {
        quotes_balanced: bool,
    },
}

/// The physical line of the record csv-async placed at byte `offset`: of its first byte,
/// past the line ends csv-core skips.
fn line_of(input: &[u8], newlines: &[usize], offset: u64) -> u64 {
    let mut at = offset as usize;
    if at == 0 && input.starts_with(b"\xef\xbb\xbf") {
        at = 3;
    }
    while input.get(at).is_some_and(|&b| b == b'\r' || b == b'\n') {
        at += 1;
    }
    1 + newlines.partition_point(|&n| n < at) as u64
}

/// The old reading: csv-async over the metered input, in one piece (so the quirk scan is
/// ahead of the parser, as it was for any record not cut by a read).
async fn oracle(input: &[u8], dialect: Dialect) -> Vec<Seen> {
    let metered = MeteredInput::new(
        input,
        1 << 30,
        64 * 1024,
        dialect.escape.is_none().then_some(dialect.quote),
        Quoting {
            delimiter: dialect.delimiter,
            quote: dialect.quote,
            escape: dialect.escape,
        },
    );
    let mut csv = AsyncReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(dialect.delimiter)
        .quote(dialect.quote)
        .escape(dialect.escape)
        .double_quote(dialect.escape.is_none())
        .buffer_capacity(64 * 1024)
        .create_reader(metered);
    let mut record = StringRecord::new();
    let mut seen = Vec::new();
    let newlines: Vec<usize> = memchr::memchr_iter(b'\n', input).collect();
    loop {
        let start = csv.position().byte();
        csv.get_mut().quirks_before(start).for_each(drop);
        let follows_bare_cr = csv.get_ref().follows_bare_cr(start);
        let result = csv.read_record(&mut record).await;
        csv.get_mut().record_done();
        match result {
            Ok(true) => {
                let end = csv.position().byte();
                let mut quirks = Quirks {
                    follows_bare_cr,
                    ..Quirks::default()
                };
                for quirk in csv.get_mut().quirks_before(end) {
                    match quirk {
                        Quirk::AfterClosingQuote { field, .. } => {
                            quirks.after_quote = quirks.after_quote.or(Some(field));
                        }
                        Quirk::BareCr { .. } => quirks.ended_by_bare_cr = true,
                    }
                }
                let start = record.position().map_or(0, |p| p.byte());
                seen.push(Seen::Record {
                    line: line_of(input, &newlines, start),
                    quirks,
                    fields: record.iter().map(String::from).collect(),
                    has_nul: record.iter().any(|field| field.contains('\0')),
                });
            }
            Ok(false) => {
                seen.push(Seen::End {
                    quotes_balanced: csv.get_ref().quotes_balanced(),
                });
                return seen;
            }
            Err(error) => match error.kind() {
                ErrorKind::Utf8 { pos, err } => seen.push(Seen::Utf8 {
                    line: line_of(input, &newlines, pos.as_ref().map_or(start, |p| p.byte())),
                    field: err.field(),
                    valid_up_to: err.valid_up_to(),
                }),
                _ => {
                    seen.push(Seen::Fatal(error.to_string()));
                    return seen;
                }
            },
        }
    }
}

/// Moves the events of a filled batch into `seen`, as the checker would read them.
fn drain(filling: Filling, seen: &mut Vec<Seen>) {
    let batch = Batch::sealed(filling);
    for event in &batch.events {
        seen.push(match event {
            Event::Record {
                line,
                quirks,
                text_start,
                ends,
                unusual,
            } => {
                let ends = &batch.ends[ends.clone()];
                let text_end = text_start + ends.last().copied().unwrap_or(0);
                let fields = Fields::separated(&batch.text[*text_start..text_end], ends, *unusual);
                Seen::Record {
                    line: *line,
                    quirks: *quirks,
                    fields: fields.iter().map(String::from).collect(),
                    has_nul: fields.has_nul(),
                }
            }
            Event::Utf8 {
                line,
                field,
                valid_up_to,
            } => Seen::Utf8 {
                line: *line,
                field: *field,
                valid_up_to: *valid_up_to,
            },
            Event::Fatal(e) => Seen::Fatal(e.to_string()),
            Event::End { quotes_balanced } => Seen::End {
                quotes_balanced: *quotes_balanced,
            },
            Event::Failed(e) => Seen::Fatal(format!("failed: {e}")),
        });
    }
}

/// The new reading, fed in chunks of the sizes `sizes` gives, handing over batches as the
/// splitter's thread does.
fn lexed(
    input: &[u8],
    dialect: Dialect,
    record_limit: usize,
    mut sizes: impl FnMut() -> usize,
) -> Vec<Seen> {
    let mut lexer = Lexer::new(dialect, record_limit);
    let mut filling = new_filling();
    let mut seen = Vec::new();
    let mut at = 0;
    while at < input.len() {
        let chunk = &input[at..(at + sizes().max(1)).min(input.len())];
        at += chunk.len();
        let mut taken = 0;
        while taken < chunk.len() {
            taken += lexer.feed(&chunk[taken..], &mut filling, is_full);
            if lexer.stopped() {
                drain(filling, &mut seen);
                return seen;
            }
            if is_full(&filling) && lexer.between_records() {
                drain(std::mem::replace(&mut filling, new_filling()), &mut seen);
            }
        }
    }
    lexer.finish(&mut filling);
    filling.events.push_back(Event::End {
        quotes_balanced: lexer.quotes_balanced(),
    });
    drain(filling, &mut seen);
    seen
}

const RFC4180: Dialect = Dialect {
    delimiter: b',',
    quote: b'"',
    escape: None,
};

/// Pieces a generated field is made of: the dialect's bytes, line ends, multi-byte and
/// broken UTF-8, NUL.
const PIECES: &[&[u8]] = &[
    b"a",
    b"bc",
    b"12",
    b"2026-01-02",
    b" ",
    b",",
    b";",
    b"\t",
    b"\"",
    b"\"\"",
    b"\\",
    b"\\\"",
    b"'",
    b"\r",
    b"\n",
    b"\r\n",
    "é".as_bytes(),
    "日".as_bytes(),
    b"\xff",
    b"\xc3",
    b"\xa9",
    b"\0",
    b"",
];

/// A generated file: records of fields, quoted or not, some with text after the closing
/// quote, blank lines, every line ending, and sometimes raw noise.
fn generate(rng: &mut fastrand::Rng, dialect: Dialect) -> Vec<u8> {
    let mut out = Vec::new();
    match rng.u8(0..8) {
        0 => out.extend_from_slice(b"\xef\xbb\xbf"),
        1 => out.extend_from_slice(b"\xef\xbb"),
        _ => {}
    }
    let records = match rng.u8(0..10) {
        0 => rng.usize(0..3),
        1 => rng.usize(250..600), // more than a batch's records
        _ => rng.usize(1..40),
    };
    let noise = rng.u8(0..6) == 0;
    for _ in 0..records {
        if noise {
            for _ in 0..rng.usize(0..12) {
                out.extend_from_slice(PIECES[rng.usize(0..PIECES.len())]);
            }
        } else {
            let fields = rng.usize(1..8);
            for f in 0..fields {
                if f > 0 {
                    out.push(dialect.delimiter);
                }
                let quoted = rng.bool();
                if quoted {
                    out.push(dialect.quote);
                }
                if rng.u16(0..2000) == 0 {
                    // Longer than a batch's text.
                    out.extend(std::iter::repeat_n(b'x', 40_000));
                }
                for _ in 0..rng.usize(0..4) {
                    let piece = PIECES[rng.usize(0..PIECES.len())];
                    // Mostly well-formed: specials inside quotes, letters outside.
                    if quoted || rng.u8(0..4) == 0 || piece.iter().all(u8::is_ascii_alphanumeric) {
                        out.extend_from_slice(piece);
                    }
                }
                if quoted && rng.u8(0..12) != 0 {
                    out.push(dialect.quote);
                    if rng.u8(0..10) == 0 {
                        out.extend_from_slice(b"x");
                    }
                }
            }
        }
        match rng.u8(0..12) {
            0 => out.extend_from_slice(b"\r"),
            1..=3 => out.extend_from_slice(b"\r\n"),
            4 => out.extend_from_slice(b"\n\n"),
            5 => out.extend_from_slice(b"\r\n\r\n"),
            6 => out.extend_from_slice(b"\n\r"),
            _ => out.extend_from_slice(b"\n"),
        }
    }
    if rng.bool() {
        // No final line end.
        while out.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            out.pop();
        }
    }
    out
}

/// Chunk sizes: single bytes, small and large pieces.
fn sizes(rng: &mut fastrand::Rng) -> impl FnMut() -> usize + '_ {
    let kind = rng.u8(0..4);
    move || match kind {
        0 => 1,
        1 => rng.usize(1..8),
        2 => rng.usize(1..200),
        _ => rng.usize(1..70_000),
    }
}

fn compare(dialect: Dialect, seed: u64, files: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let mut rng = fastrand::Rng::with_seed(seed);
    // What the files held, so that a generator that stopped making a case is noticed.
    let mut after_quote = 0;
    let mut bare_cr = 0;
    let mut follows_cr = 0;
    let mut utf8 = 0;
    let mut unbalanced = 0;
    let mut records = 0;
    for n in 0..files {
        let input = generate(&mut rng, dialect);
        let expected = runtime.block_on(oracle(&input, dialect));
        let got = lexed(&input, dialect, 1 << 20, sizes(&mut rng));
        if got != expected {
            let at = got
                .iter()
                .zip(&expected)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(expected.len()));
            panic!(
                "file {n} of seed {seed}: {:?}\nfirst difference at event {at}:\n got      {:?}\n expected {:?}",
                String::from_utf8_lossy(&input),
                got.get(at),
                expected.get(at)
            );
        }
        for seen in &got {
            match seen {
                Seen::Record { quirks, .. } => {
                    records += 1;
                    after_quote += usize::from(quirks.after_quote.is_some());
                    bare_cr += usize::from(quirks.ended_by_bare_cr);
                    follows_cr += usize::from(quirks.follows_bare_cr);
                }
                Seen::Utf8 { .. } => utf8 += 1,
                Seen::End { quotes_balanced } => unbalanced += usize::from(!quotes_balanced),
                Seen::Fatal(_) => {}
            }
        }
    }
    let cases = [records, after_quote, bare_cr, follows_cr, utf8];
    assert!(cases.iter().all(|&n| n > 10), "{cases:?}");
    assert!(unbalanced > 10 || dialect.escape.is_some(), "{unbalanced}");
}

#[test]
fn the_splitter_reads_as_csv_async_did() {
    compare(RFC4180, 14, 3000);
}

#[test]
fn the_splitter_reads_other_dialects_as_csv_async_did() {
    let semicolon = Dialect {
        delimiter: b';',
        quote: b'\'',
        escape: None,
    };
    compare(semicolon, 15, 1000);
    let escaped = Dialect {
        delimiter: b',',
        quote: b'"',
        escape: Some(b'\\'),
    };
    compare(escaped, 16, 2000);
    let tabs = Dialect {
        delimiter: b'\t',
        quote: b'"',
        escape: None,
    };
    compare(tabs, 17, 1000);
}

#[test]
fn a_record_after_blank_lines_is_named_at_its_line() {
    let input = b"id\n\n\nu1\r\n\r\nu2\n";
    let lines: Vec<u64> = lexed(input, RFC4180, 1 << 20, || 1)
        .iter()
        .filter_map(|seen| match seen {
            Seen::Record { line, .. } => Some(*line),
            _ => None,
        })
        .collect();
    assert_eq!(lines, [1, 4, 6]);
}

#[test]
fn a_record_longer_than_the_limit_stops_the_file_at_its_line() {
    let limit = 100;
    let fits = format!("id\n\"{}\"\n", "x".repeat(limit - 2));
    let too_long = format!("{fits}{}\n", "y,".repeat(limit / 2 + 1));
    for size in [1, 7, 64, 1 << 16] {
        let seen = lexed(fits.as_bytes(), RFC4180, limit, || size);
        assert!(
            matches!(seen.last(), Some(Seen::End { .. })) && seen.len() == 3,
            "{seen:?}"
        );
        let seen = lexed(too_long.as_bytes(), RFC4180, limit, || size);
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(
            seen[2],
            Seen::Fatal(
                "line 3: a record longer than 100 bytes (limits.max_record_bytes); the file \
                 was not read further"
                    .into()
            )
        );
    }
}
