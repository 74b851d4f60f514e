//! The decompressed bytes on their way into the CSV parser, metered.
//!
//! csv-async grows its record buffer until a record ends, so a 64 MiB field would take
//! 64 MiB. This reader counts the bytes the parser pulls between two records and fails the
//! read once a record cannot fit `max_record_bytes`: memory stays bounded, and the error says
//! where. It also counts quote characters: in RFC 4180 they come in pairs, so an odd count at
//! the end means a quoted field was never closed (which csv-core silently runs to EOF).
//!
//! Line numbers come from here too. csv-core counts `\n` as it consumes them, but with CRLF
//! endings it stops a record at `\r` and leaves the `\n` to the next one, so its count is one
//! short. Knowing where each `\n` passed, a record's line follows from its byte offset.

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

pub struct MeteredInput<R> {
    inner: R,
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
    /// Offsets of the `\n`s handed over but not yet behind a record start.
    newlines: VecDeque<u64>,
    /// `\n`s behind the last record start asked about.
    lines_before: u64,
}

impl<R> MeteredInput<R> {
    pub fn new(inner: R, record_limit: usize, parser_buffer: usize, quote: Option<u8>) -> Self {
        MeteredInput {
            inner,
            since_record: 0,
            allowed: record_limit.saturating_add(parser_buffer),
            record_limit,
            quote,
            quotes: 0,
            offset: 0,
            newlines: VecDeque::new(),
            lines_before: 0,
        }
    }

    /// The physical line (from 1) of the record starting at byte `offset`. Offsets must be
    /// asked in increasing order, as records come. The `\n` at `offset` itself is the end of
    /// the previous line when a CRLF record left it behind, so it counts as before.
    pub fn line_at(&mut self, offset: u64) -> u64 {
        while self.newlines.front().is_some_and(|&n| n <= offset) {
            self.newlines.pop_front();
            self.lines_before += 1;
        }
        self.lines_before + 1
    }

    /// The parser returned a record: what it read ahead is all it holds now.
    pub fn record_done(&mut self) {
        self.since_record = 0;
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
        if let Some(quote) = self.quote {
            self.quotes += memchr::memchr_iter(quote, fresh).count() as u64;
        }
        let start = self.offset;
        self.newlines
            .extend(memchr::memchr_iter(b'\n', fresh).map(|i| start + i as u64));
        self.offset += fresh.len() as u64;
        self.since_record += fresh.len();
        if self.since_record > self.allowed {
            let limit = self.record_limit;
            return Poll::Ready(Err(io::Error::other(RecordTooLong { limit })));
        }
        Poll::Ready(Ok(()))
    }
}
