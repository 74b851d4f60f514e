//! The record splitter: one pass over the inflated bytes that cuts records and fields, writes
//! field text straight into a batch, counts lines and quotes, and notes what the dialect lets
//! pass in silence.
//!
//! It follows csv-core's reader state for state (`flexible`, `\r`, `\n` or `\r\n` ending a
//! record, blank lines skipped, a doubled quote or the escape byte inside quotes, text after a
//! closing quote kept unquoted, an unclosed quote running to the end), so a file reads as
//! csv-async read it before; a differential test in `split` holds the two side by side. It is
//! faster because it does not go byte by byte: outside quotes one `memchr3` finds the next
//! quote or line end, and the delimiters before it are found 16 bytes at a time (SSE2
//! compares, which also tell whether any byte is outside ASCII or a NUL; a bytewise fallback
//! on other targets); inside quotes one `memchr` finds the closing quote. Text is copied once,
//! into the batch, an unquoted stretch with its delimiters in one copy (a field ends where its
//! delimiter is). Only a record with a byte outside ASCII or a NUL is checked for UTF-8 here
//! and searched for NUL by the checker.
//!
//! Everything the checker's messages need is decided here: each record's physical line (of
//! its first byte), text after a closing quote, a bare carriage return, a record longer than
//! `max_record_bytes` (memory stays bounded: at most that much of one record is held), and
//! whether the quote characters pair up (an unclosed quote runs to the end of the file).

use std::collections::VecDeque;

use super::report::FileError;
use super::split::{Event, Quirks};

/// The dialect, as far as splitting goes.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    pub delimiter: u8,
    pub quote: u8,
    /// The escape byte inside quoted fields; `None` for RFC 4180 (a quote is doubled).
    pub escape: Option<u8>,
}

/// Records being written: each record's fields with the delimiter between two (the text
/// [`super::split::Fields`] reads), each field's end relative to its record's start, and the
/// events in file order.
#[derive(Debug, Default)]
pub(super) struct Filling {
    pub text: Vec<u8>,
    pub ends: Vec<usize>,
    pub events: VecDeque<Event>,
}

/// Where the splitter is, named after csv-core's states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between records: line ends are skipped.
    StartRecord,
    /// A carriage return between records: a bare one if no line feed follows.
    StartRecordCr,
    StartField,
    /// In an unquoted field.
    InField,
    InQuoted,
    /// After the escape byte inside quotes: the next byte is taken as it is.
    Escaped,
    /// After a quote inside a quoted field: a doubled quote, or the closing one.
    AfterQuote,
    /// A record ended at a carriage return; the next byte says whether it was a bare one.
    RecordCr,
}

/// The record being read.
#[derive(Debug, Default, Clone, Copy)]
struct Open {
    line: u64,
    /// Where its text starts in the batch's text, and its first field end in `ends`.
    text_start: usize,
    ends_start: usize,
    /// Stream offset of its first byte.
    offset: u64,
    after_quote: Option<usize>,
    /// Whether its text has a byte outside ASCII or a NUL: only then is it checked for UTF-8,
    /// and only then does the checker search it for NUL.
    unusual: bool,
}

pub(super) struct Lexer {
    delimiter: u8,
    quote: u8,
    escape: Option<u8>,
    record_limit: usize,
    state: State,
    open: Open,
    /// Stream offset of the byte the next `feed` starts with.
    offset: u64,
    /// Line feeds consumed so far.
    newlines: u64,
    /// Quote bytes seen so far.
    quotes: u64,
    /// A bare carriage return between the last record and the next one.
    blank_bare_cr: bool,
    /// The last record ended at a bare carriage return.
    last_ended_by_bare_cr: bool,
    stopped: bool,
    /// Bytes of a byte order mark seen at the start, until it is known whether there is one.
    bom_matched: Option<usize>,
}

const BOM: &[u8] = b"\xef\xbb\xbf";

impl Lexer {
    pub fn new(dialect: Dialect, record_limit: usize) -> Lexer {
        Lexer {
            delimiter: dialect.delimiter,
            quote: dialect.quote,
            escape: dialect.escape,
            record_limit,
            state: State::StartRecord,
            open: Open::default(),
            offset: 0,
            newlines: 0,
            quotes: 0,
            blank_bare_cr: false,
            last_ended_by_bare_cr: false,
            stopped: false,
            bom_matched: Some(0),
        }
    }

    /// Whether a fatal error ended the splitting (its event is the last in the batch).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Whether no record is open: a batch can be handed over only then.
    pub fn between_records(&self) -> bool {
        matches!(self.state, State::StartRecord | State::StartRecordCr)
    }

    /// Whether the quote characters seen pair up. Counted only for RFC 4180 quoting (without
    /// an escape byte), where an odd count means a quoted field was never closed: csv-core
    /// runs it to the end of the file in silence.
    pub fn quotes_balanced(&self) -> bool {
        self.escape.is_some() || self.quotes % 2 == 0
    }

    /// Splits `bytes`, the next of the stream, into `out`. Returns how many bytes were taken:
    /// all of them, or fewer right after a record that filled `out` (`full` says when), or
    /// after a fatal error (then [`stopped`](Self::stopped)).
    pub fn feed(
        &mut self,
        bytes: &[u8],
        out: &mut Filling,
        full: impl Fn(&Filling) -> bool,
    ) -> usize {
        let mut skipped = 0;
        if let Some(matched) = self.bom_matched {
            // csv-core drops a UTF-8 byte order mark at the start of the file.
            let mut matched = matched;
            while matched < BOM.len() && bytes.get(skipped) == Some(&BOM[matched]) {
                matched += 1;
                skipped += 1;
            }
            if matched < BOM.len() && skipped == bytes.len() {
                self.bom_matched = Some(matched);
                self.offset += skipped as u64;
                return skipped;
            }
            self.bom_matched = None;
            if matched < BOM.len() {
                // Not a byte order mark: what matched of it is text.
                self.offset -= (matched - skipped) as u64;
                self.split(&BOM[..matched], out, |_| false);
                self.offset += matched as u64;
            } else {
                self.offset += skipped as u64;
            }
        }
        let taken = self.split(&bytes[skipped..], out, full);
        self.offset += taken as u64;
        skipped + taken
    }

    fn split(&mut self, bytes: &[u8], out: &mut Filling, full: impl Fn(&Filling) -> bool) -> usize {
        let mut i = 0;
        while i < bytes.len() && !self.stopped {
            match self.state {
                State::StartRecord => match bytes[i] {
                    b'\n' => {
                        self.newlines += 1;
                        i += 1;
                    }
                    b'\r' => {
                        self.state = State::StartRecordCr;
                        i += 1;
                    }
                    _ => {
                        self.open = Open {
                            line: self.newlines + 1,
                            text_start: out.text.len(),
                            ends_start: out.ends.len(),
                            offset: self.offset + i as u64,
                            after_quote: None,
                            unusual: false,
                        };
                        self.state = State::StartField;
                    }
                },
                State::StartRecordCr => {
                    if bytes[i] == b'\n' {
                        self.newlines += 1;
                        i += 1;
                    } else {
                        // csv-core skips it as a line end; the next record is told.
                        self.blank_bare_cr = true;
                    }
                    self.state = State::StartRecord;
                }
                State::StartField => {
                    let b = bytes[i];
                    if b == self.quote {
                        self.quotes += 1;
                        self.state = State::InQuoted;
                        i += 1;
                    } else if b == self.delimiter {
                        // Empty fields cost memory too (their ends).
                        if !self.fits(i + 1, out) {
                            break;
                        }
                        self.end_field_at_delimiter(out);
                        i += 1;
                    } else if b == b'\n' || b == b'\r' {
                        i += 1;
                        if self.end_record(b, out) && full(out) {
                            return i;
                        }
                    } else {
                        self.state = State::InField;
                    }
                }
                State::InField => {
                    // Up to the next quote or line end; the delimiters before it cut fields.
                    let rest = &bytes[i..];
                    let n = memchr::memchr3(self.quote, b'\n', b'\r', rest).unwrap_or(rest.len());
                    if !self.fits(i + n, out) {
                        break;
                    }
                    let from = self.cut_fields(&rest[..n], out);
                    if n > 0 && from == n {
                        self.state = State::StartField;
                    }
                    i += n;
                    let Some(&b) = bytes.get(i) else { break };
                    if self.state == State::StartField {
                        continue; // A quote opening the field after a delimiter.
                    }
                    i += 1;
                    if b == self.quote {
                        // Inside an unquoted field a quote is a character of it (csv-core).
                        self.quotes += 1;
                        self.push(b, out);
                    } else if self.end_record(b, out) && full(out) {
                        return i;
                    }
                }
                State::InQuoted => {
                    let rest = &bytes[i..];
                    let next = match self.escape {
                        Some(escape) => memchr::memchr2(self.quote, escape, rest),
                        None => memchr::memchr(self.quote, rest),
                    };
                    let n = next.unwrap_or(rest.len());
                    if !self.fits(i + n, out) {
                        break;
                    }
                    let span = &rest[..n];
                    self.newlines += memchr::memchr_iter(b'\n', span).count() as u64;
                    self.open.unusual |= has_unusual(span);
                    out.text.extend_from_slice(span);
                    i += n;
                    let Some(&b) = bytes.get(i) else { break };
                    i += 1;
                    if b == self.quote {
                        self.quotes += 1;
                        self.state = State::AfterQuote;
                    } else {
                        self.state = State::Escaped;
                    }
                }
                State::Escaped => {
                    if !self.fits(i + 1, out) {
                        break;
                    }
                    let b = bytes[i];
                    self.count(b);
                    self.push(b, out);
                    self.state = State::InQuoted;
                    i += 1;
                }
                State::AfterQuote => {
                    let b = bytes[i];
                    if b == self.quote && self.escape.is_none() {
                        if !self.fits(i + 1, out) {
                            break;
                        }
                        self.quotes += 1;
                        self.push(b, out);
                        self.state = State::InQuoted;
                        i += 1;
                    } else if b == self.delimiter {
                        self.end_field_at_delimiter(out);
                        self.state = State::StartField;
                        i += 1;
                    } else if b == b'\n' || b == b'\r' {
                        i += 1;
                        if self.end_record(b, out) && full(out) {
                            return i;
                        }
                    } else {
                        // csv-core goes on with the field unquoted, the text appended.
                        let field = out.ends.len() - self.open.ends_start;
                        self.open.after_quote = self.open.after_quote.or(Some(field));
                        if b == self.quote {
                            // Only with an escape byte: a quote is then a character here.
                            if !self.fits(i + 1, out) {
                                break;
                            }
                            self.quotes += 1;
                            self.push(b, out);
                            i += 1;
                        }
                        self.state = State::InField;
                    }
                }
                State::RecordCr => {
                    let bare = bytes[i] != b'\n';
                    if !bare {
                        self.newlines += 1;
                        i += 1;
                    }
                    self.state = State::StartRecord;
                    self.emit(bare, out);
                    if full(out) {
                        return i;
                    }
                }
            }
        }
        i
    }

    /// The end of the stream: the record being read, if any, ends here.
    pub fn finish(&mut self, out: &mut Filling) {
        if let Some(matched) = self.bom_matched.take() {
            // A file shorter than a byte order mark, starting as one.
            self.offset -= matched as u64;
            self.split(&BOM[..matched], out, |_| false);
            self.offset += matched as u64;
        }
        if self.stopped {
            return;
        }
        match self.state {
            State::StartRecord | State::StartRecordCr => {}
            State::RecordCr => self.emit(false, out),
            State::StartField
            | State::InField
            | State::InQuoted
            | State::Escaped
            | State::AfterQuote => {
                self.end_field(out);
                self.emit(false, out);
            }
        }
        self.state = State::StartRecord;
    }

    /// Drops the text of a record left unfinished (the source failed under it), so that a
    /// batch holds only whole records.
    pub fn abandon(&mut self, out: &mut Filling) {
        if self.state == State::RecordCr {
            // Whole already: csv-core had returned it at its carriage return.
            self.state = State::StartRecord;
            self.emit(false, out);
        } else if !self.between_records() {
            out.text.truncate(self.open.text_start);
            out.ends.truncate(self.open.ends_start);
        }
    }

    /// Writes the unquoted text `span` of the open record, in one copy with its delimiters
    /// (each the byte between two fields), and ends a field at each delimiter; returns where
    /// the last field's text began in `span`.
    fn cut_fields(&mut self, span: &[u8], out: &mut Filling) -> usize {
        let before = out.text.len() - self.open.text_start;
        out.text.extend_from_slice(span);
        let mut from = 0;
        let mut base = 0;
        // Gathered here and stored once: a store to `self` per block costs more than the
        // compare.
        let mut unusual = false;
        let mut blocks = span.chunks_exact(BLOCK);
        for block in &mut blocks {
            if let Ok(block) = <&[u8; BLOCK]>::try_from(block) {
                let (delimiters, block_unusual) = classify(block, self.delimiter);
                unusual |= block_unusual;
                cut_at(delimiters, base, before, &mut from, out);
            }
            base += BLOCK;
        }
        let tail = blocks.remainder();
        if !tail.is_empty() {
            // The tail as a block of its own: one compare instead of a loop over its bytes.
            let (delimiters, tail_unusual) = classify(&padded(tail), self.delimiter);
            unusual |= tail_unusual;
            let in_tail = (1u32 << tail.len()) - 1;
            cut_at(delimiters & in_tail, base, before, &mut from, out);
        }
        self.open.unusual |= unusual;
        from
    }

    fn push(&mut self, b: u8, out: &mut Filling) {
        self.open.unusual |= is_unusual(b);
        out.text.push(b);
    }

    fn count(&mut self, b: u8) {
        if b == b'\n' {
            self.newlines += 1;
        }
        if b == self.quote {
            self.quotes += 1;
        }
    }

    /// Whether the record still fits `max_record_bytes` up to `end` of the current bytes;
    /// if not, the fatal error is written and splitting stops. Inlined: it runs a few times
    /// per record, and the error is out of line.
    #[inline(always)]
    fn fits(&mut self, end: usize, out: &mut Filling) -> bool {
        let length = self.offset + end as u64 - self.open.offset;
        length <= self.record_limit as u64 || self.too_long(out)
    }

    /// Ends splitting at a record longer than `max_record_bytes`; false.
    #[cold]
    #[inline(never)]
    fn too_long(&mut self, out: &mut Filling) -> bool {
        self.abandon(out);
        out.events.push_back(Event::Fatal(Box::new(FileError::line(
            self.open.line,
            format!(
                "a record longer than {} bytes (limits.max_record_bytes); the file was not read further",
                self.record_limit
            ),
        ))));
        self.stopped = true;
        false
    }

    /// Ends the record's last field.
    fn end_field(&mut self, out: &mut Filling) {
        out.ends.push(out.text.len() - self.open.text_start);
    }

    /// Ends a field at a delimiter, which is kept as the byte between it and the next.
    fn end_field_at_delimiter(&mut self, out: &mut Filling) {
        self.end_field(out);
        out.text.push(self.delimiter);
    }

    /// Ends the record at line end `b`; true if it was written (a carriage return waits for
    /// the next byte, to tell a bare one).
    fn end_record(&mut self, b: u8, out: &mut Filling) -> bool {
        self.end_field(out);
        if b == b'\r' {
            self.state = State::RecordCr;
            return false;
        }
        self.newlines += 1;
        self.state = State::StartRecord;
        self.emit(false, out);
        true
    }

    /// Writes the event of the record just read: the record, or its UTF-8 error.
    fn emit(&mut self, ended_by_bare_cr: bool, out: &mut Filling) {
        let open = self.open;
        let quirks = Quirks {
            after_quote: open.after_quote,
            // A bare carriage return skipped before the record counts as csv-async's reading
            // had it: in the bytes the record was read from.
            ended_by_bare_cr: ended_by_bare_cr || self.blank_bare_cr,
            follows_bare_cr: self.last_ended_by_bare_cr,
        };
        self.blank_bare_cr = false;
        self.last_ended_by_bare_cr = ended_by_bare_cr;
        let text = &out.text[open.text_start..];
        let ends = open.ends_start..out.ends.len();
        if open.unusual
            && let Some((field, valid_up_to)) = utf8_error(text, &out.ends[ends.clone()])
        {
            out.text.truncate(open.text_start);
            out.ends.truncate(open.ends_start);
            out.events.push_back(Event::Utf8 {
                line: open.line,
                field,
                valid_up_to,
            });
            return;
        }
        out.events.push_back(Event::Record {
            line: open.line,
            quirks,
            text_start: open.text_start,
            ends,
            unusual: open.unusual,
        });
    }
}

/// Bytes per block of the delimiter search.
const BLOCK: usize = 16;

/// Ends a field at each delimiter of a block's `mask` (bit `i` for byte `base + i` of the
/// span, whose text starts `before` bytes into the record); `from` moves past the last.
fn cut_at(mut mask: u32, base: usize, before: usize, from: &mut usize, out: &mut Filling) {
    while mask != 0 {
        let at = base + mask.trailing_zeros() as usize;
        mask &= mask - 1;
        out.ends.push(before + at);
        *from = at + 1;
    }
}

/// Fewer than [`BLOCK`] bytes as a block, padded with spaces (never [unusual](is_unusual);
/// a space delimiter's matches in the padding are masked off by the caller).
fn padded(tail: &[u8]) -> [u8; BLOCK] {
    let mut block = [b' '; BLOCK];
    let n = tail.len().min(BLOCK);
    block[..n].copy_from_slice(&tail[..n]);
    block
}

/// Where `delimiter` is in `block` (bit `i` for byte `i`), and whether any byte is
/// [unusual](is_unusual): one compare of all 16 bytes at once for each.
#[cfg(target_arch = "x86_64")]
fn classify(block: &[u8; BLOCK], delimiter: u8) -> (u32, bool) {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of every x86_64 target, and the unaligned load reads exactly the
    // 16 bytes `block` borrows.
    unsafe {
        let bytes = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        let delimiters = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(delimiter as i8));
        // Signed, 1 > b holds for 0 and for 0x80-0xff (negative): NUL or outside ASCII.
        let unusual = _mm_cmpgt_epi8(_mm_set1_epi8(1), bytes);
        (
            _mm_movemask_epi8(delimiters) as u32,
            _mm_movemask_epi8(unusual) != 0,
        )
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn classify(block: &[u8; BLOCK], delimiter: u8) -> (u32, bool) {
    classify_bytewise(block, delimiter)
}

/// [`classify`] a byte at a time: the portable fallback, and its reference in a test.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn classify_bytewise(block: &[u8; BLOCK], delimiter: u8) -> (u32, bool) {
    let delimiters = block
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == delimiter)
        .fold(0, |mask, (i, _)| mask | 1 << i);
    (delimiters, block.iter().any(|&b| is_unusual(b)))
}

/// A NUL (which no sink can store, so the checker looks for it) or a byte outside ASCII
/// (which may not be UTF-8): what makes a record worth a second look.
fn is_unusual(b: u8) -> bool {
    b.wrapping_sub(1) >= 0x7f
}

/// Whether any byte of `bytes` [is unusual](is_unusual), a block at a time.
fn has_unusual(bytes: &[u8]) -> bool {
    let mut blocks = bytes.chunks_exact(BLOCK);
    let mut seen = false;
    for block in &mut blocks {
        if let Ok(block) = <&[u8; BLOCK]>::try_from(block) {
            seen |= classify(block, 0).1;
        }
    }
    let tail = blocks.remainder();
    seen || (!tail.is_empty() && classify(&padded(tail), 0).1)
}

/// The first field of a record that is not UTF-8, and how far into it the text is valid.
/// Each field is checked on its own, as csv-async did: a character cut by a delimiter is not
/// one.
fn utf8_error(text: &[u8], ends: &[usize]) -> Option<(usize, usize)> {
    let mut start = 0;
    for (field, &end) in ends.iter().enumerate() {
        if let Err(e) = std::str::from_utf8(&text[start..end]) {
            return Some((field, e.valid_up_to()));
        }
        start = end + 1; // past the delimiter between fields
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_classified_as_byte_by_byte() {
        let mut rng = fastrand::Rng::with_seed(16);
        let alphabet = [b',', b'a', b'"', b'\n', 0x80, 0xff, b';', 0, 1, 0x7f];
        for _ in 0..10_000 {
            let mut block = [0u8; BLOCK];
            block.fill_with(|| alphabet[rng.usize(0..alphabet.len())]);
            let delimiter = alphabet[rng.usize(0..alphabet.len())];
            assert_eq!(
                classify(&block, delimiter),
                classify_bytewise(&block, delimiter),
                "{block:?}"
            );
        }
    }

    #[test]
    fn spans_of_any_length_are_searched_for_unusual_bytes() {
        let mut rng = fastrand::Rng::with_seed(17);
        for _ in 0..10_000 {
            // Mostly ASCII, so that about half the spans have no unusual byte.
            let span: Vec<u8> = (0..rng.usize(0..50))
                .map(|_| match rng.usize(0..60) {
                    0 => 0,
                    1 => 0x80,
                    2 => 0xff,
                    3 => 0x7f,
                    _ => b'a',
                })
                .collect();
            let expected = span.iter().any(|&b| b == 0 || b >= 0x80);
            assert_eq!(has_unusual(&span), expected, "{span:?}");
        }
    }

    #[test]
    fn unusual_bytes_are_nul_and_those_outside_ascii() {
        for b in 0..=u8::MAX {
            assert_eq!(is_unusual(b), b == 0 || !b.is_ascii(), "{b:#04x}");
        }
    }
}
