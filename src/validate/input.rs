//! The reading the record splitter ([`super::lex`]) replaced, kept as the oracle of its
//! differential test: the decompressed bytes on their way into csv-async, metered.
//!
//! csv-async grows its record buffer until a record ends; this reader counted the bytes the
//! parser pulled between two records and failed the read once a record could not fit
//! `max_record_bytes`. It also counts quote characters (an odd count at the end means a quoted
//! field was never closed, which csv-core silently runs to EOF), and follows the dialect's
//! quoting, byte by byte, to see what csv-core lets pass in silence: text after a closing
//! quote, and a bare carriage return outside quotes. Each is noted with its byte offset.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// The read failed because one record is longer than the limit.
#[derive(Debug, thiserror::Error)]
#[error("record longer than {limit} bytes")]
pub struct RecordTooLong {
    pub limit: usize,
}

/// The dialect, as far as quoting goes.
#[derive(Debug, Clone, Copy)]
pub struct Quoting {
    pub delimiter: u8,
    pub quote: u8,
    /// The escape byte inside quoted fields; `None` for RFC 4180 (a quote is doubled).
    pub escape: Option<u8>,
}

/// Where the scanner is, as csv-core would be after the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// At the start of a field.
    FieldStart,
    Unquoted,
    Quoted,
    /// After the escape byte inside quotes: the next byte is taken as it is.
    Escaped,
    /// After a quote inside a quoted field: a doubled quote, or the closing one.
    AfterQuote,
}

/// Something csv-core accepts in silence, at a byte offset of the decompressed stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quirk {
    /// Text after the closing quote of field `field` (from 0) of its record.
    AfterClosingQuote { offset: u64, field: usize },
    /// A carriage return outside quotes not followed by a line feed: csv-core ends the record
    /// there.
    BareCr { offset: u64 },
}

impl Quirk {
    fn offset(&self) -> u64 {
        match *self {
            Quirk::AfterClosingQuote { offset, .. } | Quirk::BareCr { offset } => offset,
        }
    }
}

pub struct MeteredInput<R> {
    inner: R,
    quoting: Quoting,
    scan: Scan,
    /// The field of the current record the scanner is in.
    field: usize,
    /// The offset of a carriage return outside quotes whose next byte is not seen yet.
    pending_cr: Option<u64>,
    /// Quirks seen but not yet behind a record end, in offset order. Bounded by the parser's
    /// read-ahead, as `newlines` is.
    quirks: VecDeque<Quirk>,
    /// The last bare carriage return taken with a record.
    last_bare_cr: Option<u64>,
    /// Bytes handed to the parser since the last record ended.
    since_record: usize,
    /// `since_record` may exceed the record limit by the parser's read-ahead buffer.
    allowed: usize,
    record_limit: usize,
    /// The quote byte, when pairs of quotes are meaningful (no escape character).
    quote: Option<u8>,
    quotes: u64,
    /// Bytes handed to the parser so far.
    offset: u64,
}

impl<R> MeteredInput<R> {
    pub fn new(
        inner: R,
        record_limit: usize,
        parser_buffer: usize,
        quote: Option<u8>,
        quoting: Quoting,
    ) -> Self {
        MeteredInput {
            inner,
            quoting,
            scan: Scan::FieldStart,
            field: 0,
            pending_cr: None,
            quirks: VecDeque::new(),
            last_bare_cr: None,
            since_record: 0,
            allowed: record_limit.saturating_add(parser_buffer),
            record_limit,
            quote,
            quotes: 0,
            offset: 0,
        }
    }

    /// The parser returned a record: what it read ahead is all it holds now.
    pub fn record_done(&mut self) {
        self.since_record = 0;
    }

    /// Takes the quirks in the bytes before `end` (the end of the record just read, or the
    /// start of the next), oldest first.
    pub fn quirks_before(&mut self, end: u64) -> impl Iterator<Item = Quirk> + '_ {
        let n = self.quirks.iter().take_while(|q| q.offset() < end).count();
        if let Some(Quirk::BareCr { offset }) = self
            .quirks
            .iter()
            .take(n)
            .rev()
            .find(|q| matches!(q, Quirk::BareCr { .. }))
        {
            self.last_bare_cr = Some(*offset);
        }
        self.quirks.drain(..n)
    }

    /// Whether a record starting at `offset` starts right after a bare carriage return taken
    /// by [`quirks_before`](Self::quirks_before).
    pub fn follows_bare_cr(&self, offset: u64) -> bool {
        self.last_bare_cr.is_some_and(|cr| cr + 1 == offset)
    }

    /// Follows `bytes` (at stream offset `start`) through the dialect's quoting, noting quirks.
    fn scan(&mut self, bytes: &[u8], start: u64) {
        let Quoting {
            delimiter,
            quote,
            escape,
        } = self.quoting;
        // csv-async drops a byte order mark before csv-core sees the first field.
        // Every quote byte stops the scan below, so it counts them on the way.
        let mut quotes = 0u64;
        let mut i = if start == 0 && bytes.starts_with(b"\xef\xbb\xbf") {
            3
        } else {
            0
        };
        while i < bytes.len() {
            let b = bytes[i];
            if let Some(cr) = self.pending_cr.take()
                && b != b'\n'
            {
                self.quirks.push_back(Quirk::BareCr { offset: cr });
            }
            match self.scan {
                Scan::FieldStart if b == quote => {
                    quotes += 1;
                    self.scan = Scan::Quoted;
                }
                Scan::FieldStart | Scan::Unquoted => {
                    // Outside quotes only a quote or a line end changes more than the field
                    // count: jump to the next one (one search per line, not one per field).
                    // The delimiters passed are counted only where the count is used: up to a
                    // quote, or to the end of the bytes in a record that goes on; a line end
                    // starts the count again, so most records are never counted.
                    let rest = &bytes[i..];
                    let n = memchr::memchr3(quote, b'\n', b'\r', rest).unwrap_or(rest.len());
                    let span = &rest[..n];
                    let count = |span: &[u8]| span.iter().filter(|&&c| c == delimiter).count();
                    if let Some(&last) = span.last() {
                        self.scan = if last == delimiter {
                            Scan::FieldStart
                        } else {
                            Scan::Unquoted
                        };
                    }
                    i += n;
                    match bytes.get(i) {
                        None => {
                            self.field += count(span);
                            break;
                        }
                        // A quote inside an unquoted field is a character of it (csv-core).
                        Some(&c) if c == quote => {
                            self.field += count(span);
                            quotes += 1;
                            if self.scan == Scan::FieldStart {
                                self.scan = Scan::Quoted;
                            }
                        }
                        Some(&c) => self.end_record(c, start + i as u64),
                    }
                }
                Scan::Quoted => {
                    let next = match escape {
                        Some(escape) => memchr::memchr2(quote, escape, &bytes[i..]),
                        None => memchr::memchr(quote, &bytes[i..]),
                    };
                    let Some(n) = next else { break };
                    i += n;
                    self.scan = if bytes[i] == quote {
                        quotes += 1;
                        Scan::AfterQuote
                    } else {
                        Scan::Escaped
                    };
                }
                Scan::Escaped => self.scan = Scan::Quoted,
                Scan::AfterQuote => {
                    if b == quote && escape.is_none() {
                        quotes += 1;
                        self.scan = Scan::Quoted;
                    } else if b == delimiter {
                        self.field += 1;
                        self.scan = Scan::FieldStart;
                    } else if b == b'\n' || b == b'\r' {
                        self.end_record(b, start + i as u64);
                    } else {
                        self.quirks.push_back(Quirk::AfterClosingQuote {
                            offset: start + i as u64,
                            field: self.field,
                        });
                        // csv-core goes on with the field unquoted.
                        self.scan = Scan::Unquoted;
                    }
                }
            }
            i += 1;
        }
        if self.quote.is_some() {
            self.quotes += quotes;
        }
    }

    fn end_record(&mut self, byte: u8, offset: u64) {
        self.field = 0;
        self.scan = Scan::FieldStart;
        if byte == b'\r' {
            self.pending_cr = Some(offset);
        }
    }

    /// Whether the quotes seen so far pair up (always true when they are not counted).
    pub fn quotes_balanced(&self) -> bool {
        self.quotes % 2 == 0
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for MeteredInput<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        if let Err(e) = std::task::ready!(Pin::new(&mut self.inner).poll_read(cx, buf)) {
            return Poll::Ready(Err(e));
        }
        let fresh = &buf.filled()[before..];
        let start = self.offset;
        self.scan(fresh, start);
        self.offset += fresh.len() as u64;
        self.since_record += fresh.len();
        if self.since_record > self.allowed {
            let limit = self.record_limit;
            return Poll::Ready(Err(io::Error::other(RecordTooLong { limit })));
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans `bytes` handed over in two pieces, cut at `cut`: the quirks, and the quotes.
    fn scan_in_two(bytes: &[u8], cut: usize) -> (Vec<Quirk>, u64) {
        let quoting = Quoting {
            delimiter: b',',
            quote: b'"',
            escape: None,
        };
        let mut input = MeteredInput::new((), 1 << 20, 0, Some(b'"'), quoting);
        let (head, tail) = bytes.split_at(cut);
        input.scan(head, 0);
        input.scan(tail, head.len() as u64);
        (input.quirks.iter().copied().collect(), input.quotes)
    }

    #[test]
    fn quirks_and_quotes_are_the_same_wherever_the_bytes_are_cut() {
        let bytes =
            b"id,name,note\r\n1,\"a,b\"x,c\r\n2,plain,\"q\"\"q\"\n3,x,\"y\"z\r4,\"\"\"\",w\n";
        let expected = vec![
            Quirk::AfterClosingQuote {
                offset: 21,
                field: 1,
            },
            Quirk::AfterClosingQuote {
                offset: 48,
                field: 2,
            },
            Quirk::BareCr { offset: 49 },
        ];
        for cut in 0..=bytes.len() {
            assert_eq!(
                scan_in_two(bytes, cut),
                (expected.clone(), 12),
                "cut at {cut}"
            );
        }
    }
}
