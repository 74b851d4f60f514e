//! Records split from the decoded bytes on a thread of their own, handed to the checker in
//! batches: the second core of the hot path.
//!
//! The splitter ([`super::lex`]) reads the decoder's chunks where they lie and writes field
//! text straight into a batch; the checker's core only checks cells. Batches are about
//! [`BATCH_TEXT_BYTES`] of field text (more only for one record longer than that, itself
//! capped at `max_record_bytes`), at most [`BATCHES_IN_FLIGHT`] of them queued: memory stays
//! bounded whatever the file. A batch is handed over only between records. Everything a
//! record's messages need (its line, its quirks, UTF-8 and read errors) is decided here.

use std::collections::VecDeque;
use std::io;
use std::ops::Range;

use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use super::decode::{self, DecodedReader};
use super::lex::{Filling, Lexer};
use super::report::FileError;

/// Field text per batch before it is handed over.
const BATCH_TEXT_BYTES: usize = 32 * 1024;
/// Records per batch at most, so that a file of tiny records hands over as often.
const BATCH_RECORDS: usize = 256;
/// Batches queued between the splitter and the checker; as many again are recycled.
const BATCHES_IN_FLIGHT: usize = 2;
/// Fields per record a batch has room for before it grows.
const FIELDS_PER_RECORD: usize = 8;

/// What the dialect let pass in silence in a record, from the raw bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Quirks {
    /// The field (from 0) with text after its closing quote.
    pub after_quote: Option<usize>,
    /// The record ended at a bare carriage return (or one was skipped just before it).
    pub ended_by_bare_cr: bool,
    /// The record starts right after a bare carriage return.
    pub follows_bare_cr: bool,
}

/// One step of reading the file, in file order.
#[derive(Debug)]
pub(super) enum Event {
    /// A record; its fields are `ends` of the batch, its text starts at `text_start`.
    Record {
        line: u64,
        quirks: Quirks,
        text_start: usize,
        ends: Range<usize>,
        /// Whether its text may hold a NUL (it has a NUL or a byte outside ASCII).
        unusual: bool,
    },
    /// A field is not UTF-8: a bad cell for a data row, the end for the header. Reading goes
    /// on after it.
    Utf8 {
        line: u64,
        field: usize,
        valid_up_to: usize,
    },
    /// The stream cannot be read further; the last event. Boxed: a batch holds hundreds of
    /// events, all as large as the largest.
    Fatal(Box<FileError>),
    /// The end of the file; the last event.
    End { quotes_balanced: bool },
    /// Reading the source failed (not the file's fault); the last event.
    Failed(io::Error),
}

/// Records and events, with the field text of the records.
#[derive(Debug, Default)]
struct Batch {
    text: String,
    /// Each field's end, relative to its record's `text_start`.
    ends: Vec<usize>,
    events: VecDeque<Event>,
}

impl Batch {
    /// A batch of the records written into `filling`, whose text is UTF-8 record by record.
    fn sealed(filling: Filling) -> Batch {
        let Filling { text, ends, events } = filling;
        let text = String::from_utf8(text)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Batch { text, ends, events }
    }

    /// Empties a batch for reuse, keeping its buffers unless a long record grew them (or it
    /// has none: the checker's first, empty one).
    fn recycle(self) -> Option<Filling> {
        if self.text.capacity() == 0
            || self.text.capacity() > 2 * BATCH_TEXT_BYTES
            || self.ends.capacity() > 2 * BATCH_RECORDS * FIELDS_PER_RECORD
        {
            return None;
        }
        let Batch {
            text,
            mut ends,
            mut events,
        } = self;
        let mut text = text.into_bytes();
        text.clear();
        ends.clear();
        events.clear();
        Some(Filling { text, ends, events })
    }
}

fn new_filling() -> Filling {
    Filling {
        // A little over the mark, so that the record that crosses it rarely grows it.
        text: Vec::with_capacity(BATCH_TEXT_BYTES + BATCH_TEXT_BYTES / 4),
        ends: Vec::with_capacity(BATCH_RECORDS * FIELDS_PER_RECORD),
        events: VecDeque::with_capacity(BATCH_RECORDS + 1),
    }
}

fn is_full(filling: &Filling) -> bool {
    filling.text.len() >= BATCH_TEXT_BYTES || filling.events.len() >= BATCH_RECORDS
}

/// The fields of one record, borrowed from its batch.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    text: &'a str,
    ends: &'a [usize],
    /// Bytes between one field's end and the next one's start: 1 in a batch (the delimiter,
    /// copied with the text around it), 0 for JSON records.
    gap: usize,
    /// False only when the splitter saw that the text holds no NUL.
    may_hold_nul: bool,
}

impl<'a> Fields<'a> {
    /// Fields one after the other in `text`, `ends[i]` where field `i` ends in it. JSON
    /// records ([`super::record`]) use this.
    pub(super) fn from_parts(text: &'a str, ends: &'a [usize]) -> Fields<'a> {
        Fields {
            text,
            ends,
            gap: 0,
            may_hold_nul: true,
        }
    }

    /// Fields as a batch holds them: as [`from_parts`](Self::from_parts), with one byte
    /// between two fields; `unusual` as the splitter saw the record.
    pub(super) fn separated(text: &'a str, ends: &'a [usize], unusual: bool) -> Fields<'a> {
        Fields {
            text,
            ends,
            gap: 1,
            may_hold_nul: unusual,
        }
    }

    /// Whether any field holds a NUL: searched only when the splitter saw a byte that may be
    /// one.
    pub fn has_nul(&self) -> bool {
        self.may_hold_nul && memchr::memchr(0, self.text.as_bytes()).is_some()
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The field `i` (from 0), if the record has it.
    pub fn get(&self, i: usize) -> Option<&'a str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 {
            0
        } else {
            self.ends[i - 1] + self.gap
        };
        self.text.get(start..end)
    }

    /// Where each field starts and ends in the record's text: a field's length, without
    /// slicing its text (which checks both ends for a character boundary).
    pub fn spans(&self) -> impl Iterator<Item = (usize, usize)> + 'a {
        let (ends, gap) = (self.ends, self.gap);
        ends.iter().scan(0, move |start, &end| {
            let span = (*start, end);
            *start = end + gap;
            Some(span)
        })
    }

    /// The text of the field at `span` (one of [`spans`](Self::spans)).
    pub fn text_at(&self, (start, end): (usize, usize)) -> &'a str {
        self.text.get(start..end).unwrap_or_default()
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let fields = *self;
        self.spans().map(move |span| fields.text_at(span))
    }
}

/// What the checker reads next.
pub(super) enum Item<'a> {
    Record {
        line: u64,
        quirks: Quirks,
        fields: Fields<'a>,
    },
    Other(Event),
}

/// The checker's end of the hand-over.
pub(super) struct Records {
    rx: mpsc::Receiver<Batch>,
    /// Read batches go back to the splitter, so that the same few buffers serve the file.
    recycled: mpsc::Sender<Filling>,
    batch: Batch,
}

impl Records {
    /// The next event; after the last one (`Fatal`, `End`, `Failed`), a `Failed`.
    pub async fn next(&mut self) -> Item<'_> {
        while self.batch.events.is_empty() {
            match self.rx.recv().await {
                Some(batch) => {
                    let read = std::mem::replace(&mut self.batch, batch);
                    if let Some(empty) = read.recycle() {
                        // Full only if the splitter has stopped taking them: then dropped.
                        let _ = self.recycled.try_send(empty);
                    }
                }
                None => {
                    return Item::Other(Event::Failed(io::Error::other(
                        "the record splitter stopped before the end of the file",
                    )));
                }
            }
        }
        self.take()
    }

    /// Whether the next event is already here, so that [`take`](Self::take) gives it
    /// without a wait. Most calls find one; a future made and polled for each cost about 30
    /// instructions a row.
    pub fn ready(&self) -> bool {
        !self.batch.events.is_empty()
    }

    /// The next event of the batch at hand ([`ready`](Self::ready)); a `Failed` if none.
    pub fn take(&mut self) -> Item<'_> {
        match self.batch.events.pop_front() {
            Some(Event::Record {
                line,
                quirks,
                text_start,
                ends,
                unusual,
            }) => {
                let ends = self.batch.ends.get(ends).unwrap_or_default();
                let text_end = text_start + ends.last().copied().unwrap_or(0);
                Item::Record {
                    line,
                    quirks,
                    fields: Fields::separated(
                        self.batch
                            .text
                            .get(text_start..text_end)
                            .unwrap_or_default(),
                        ends,
                        unusual,
                    ),
                }
            }
            Some(other) => Item::Other(other),
            None => Item::Other(Event::Failed(io::Error::other("no record"))),
        }
    }
}

/// Starts splitting the decoded bytes on a thread of its own. Dropping the returned
/// [`Records`] stops it (and with it the decoder) at its next hand-over.
pub(super) fn spawn(decoded: DecodedReader, lexer: Lexer) -> Records {
    let (tx, rx) = mpsc::channel(BATCHES_IN_FLIGHT);
    let (recycled, recycled_rx) = mpsc::channel(BATCHES_IN_FLIGHT);
    let runtime = tokio::runtime::Handle::current();
    // A thread, not a task, for the reason `decode::spawn` gives.
    tokio::task::spawn_blocking(move || runtime.block_on(split(decoded, lexer, tx, recycled_rx)));
    Records {
        rx,
        recycled,
        batch: Batch::default(),
    }
}

async fn split(
    mut decoded: DecodedReader,
    mut lexer: Lexer,
    tx: mpsc::Sender<Batch>,
    mut recycled: mpsc::Receiver<Filling>,
) {
    let mut filling = new_filling();
    loop {
        let chunk = match decoded.fill_buf().await {
            Ok(chunk) => chunk,
            Err(e) => {
                lexer.abandon(&mut filling);
                filling.events.push_back(read_error(e));
                let _ = tx.send(Batch::sealed(filling)).await;
                return;
            }
        };
        if chunk.is_empty() {
            lexer.finish(&mut filling);
            filling.events.push_back(Event::End {
                quotes_balanced: lexer.quotes_balanced(),
            });
            let _ = tx.send(Batch::sealed(filling)).await;
            return;
        }
        let length = chunk.len();
        let mut taken = 0;
        while taken < length {
            taken += lexer.feed(&chunk[taken..], &mut filling, is_full);
            if lexer.stopped() {
                let _ = tx.send(Batch::sealed(filling)).await;
                return;
            }
            // A record still open stays with its batch, however long (up to the record limit).
            if is_full(&filling) && lexer.between_records() {
                let next = recycled.try_recv().unwrap_or_else(|_| new_filling());
                let full = std::mem::replace(&mut filling, next);
                if tx.send(Batch::sealed(full)).await.is_err() {
                    return; // The checker has stopped (an error, the row cap).
                }
            }
        }
        decoded.consume(length);
    }
}

/// The event for a failed read of the decoded bytes: the file's fault (not gzip, truncated,
/// too large) or the source's.
fn read_error(error: io::Error) -> Event {
    match decode::decode_error(&error) {
        Some(decode_error) if decode_error.is_content() => {
            Event::Fatal(Box::new(FileError::file(decode_error.to_string())))
        }
        _ => Event::Failed(io::Error::new(error.kind(), error.to_string())),
    }
}

#[cfg(test)]
mod differential;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::lex::Dialect;

    #[test]
    fn an_event_stays_small() {
        // A batch holds BATCH_RECORDS of them: the size is memory per file in flight.
        assert!(
            std::mem::size_of::<Event>() <= 64,
            "{}",
            std::mem::size_of::<Event>()
        );
    }

    #[test]
    fn fields_are_read_back_as_written() {
        let mut lexer = Lexer::new(
            Dialect {
                delimiter: b',',
                quote: b'"',
                escape: None,
            },
            1 << 20,
        );
        let mut filling = new_filling();
        lexer.feed("before\na,,ünï,\"x,y\"\n".as_bytes(), &mut filling, is_full);
        let batch = Batch::sealed(filling);
        let Some(Event::Record {
            text_start,
            ends,
            unusual,
            ..
        }) = batch.events.get(1)
        else {
            panic!("the second event is a record");
        };
        let ends = &batch.ends[ends.clone()];
        let fields = Fields::separated(
            &batch.text[*text_start..*text_start + ends.last().copied().unwrap_or(0)],
            ends,
            *unusual,
        );
        assert_eq!(fields.len(), 4);
        assert_eq!(fields.iter().collect::<Vec<_>>(), ["a", "", "ünï", "x,y"]);
        assert_eq!(fields.get(2), Some("ünï"));
        assert_eq!(fields.get(4), None);
        assert_eq!(fields.text, "a,,ünï,x,y");
    }
}
