//! Records split from the decoded bytes on a thread of their own, handed to the checker in
//! batches: the second core of the hot path.
//!
//! Inflating takes about a fifth of a file's CPU, splitting records (csv-core, the quirk scan,
//! line numbers, UTF-8) about half of the rest. With the split here, the checker's core only
//! checks cells, and the three stages share both cores. Batches are about
//! [`BATCH_TEXT_BYTES`] of field text (more only for one record longer than that, itself
//! capped at `max_record_bytes`), at most [`BATCHES_IN_FLIGHT`] of them queued: memory stays
//! bounded whatever the file. Everything a record's messages need (its line, its quirks, the
//! errors of csv-core and of the metered input) is decided here, as it was in one loop.

use std::collections::VecDeque;
use std::io;
use std::ops::Range;

use csv_async::{AsyncReader, ErrorKind, StringRecord};
use tokio::sync::mpsc;

use super::decode::{self, DecodedReader};
use super::input::{MeteredInput, Quirk, RecordTooLong};
use super::report::FileError;

/// Field text per batch before it is handed over.
const BATCH_TEXT_BYTES: usize = 32 * 1024;
/// Records per batch at most, so that a file of tiny records hands over as often.
const BATCH_RECORDS: usize = 256;
/// Batches queued between the splitter and the checker; as many again are recycled.
const BATCHES_IN_FLIGHT: usize = 2;
/// Fields per record a batch has room for before it grows.
const FIELDS_PER_RECORD: usize = 8;

pub(super) type Csv = AsyncReader<MeteredInput<DecodedReader>>;

/// What csv-core let pass in silence in a record, from the raw bytes.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Quirks {
    /// The field (from 0) with text after its closing quote.
    pub after_quote: Option<usize>,
    /// The record ended at a bare carriage return.
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
    fn new() -> Batch {
        Batch {
            // A little over the mark, so that the record that crosses it rarely grows it.
            text: String::with_capacity(BATCH_TEXT_BYTES + BATCH_TEXT_BYTES / 4),
            ends: Vec::with_capacity(BATCH_RECORDS * FIELDS_PER_RECORD),
            events: VecDeque::with_capacity(BATCH_RECORDS + 1),
        }
    }

    /// Empties a batch for reuse, keeping its buffers unless a long record grew them (or it
    /// has none: the checker's first, empty one).
    fn recycle(mut self) -> Option<Batch> {
        if self.text.capacity() == 0
            || self.text.capacity() > 2 * BATCH_TEXT_BYTES
            || self.ends.capacity() > 2 * BATCH_RECORDS * FIELDS_PER_RECORD
        {
            return None;
        }
        self.text.clear();
        self.ends.clear();
        self.events.clear();
        Some(self)
    }

    fn is_full(&self) -> bool {
        self.text.len() >= BATCH_TEXT_BYTES || self.events.len() >= BATCH_RECORDS
    }

    fn push_record(&mut self, record: &StringRecord, line: u64, quirks: Quirks) {
        let text_start = self.text.len();
        let first = self.ends.len();
        self.text.push_str(record.as_slice());
        let mut end = 0;
        for field in record.iter() {
            end += field.len();
            self.ends.push(end);
        }
        self.events.push_back(Event::Record {
            line,
            quirks,
            text_start,
            ends: first..self.ends.len(),
        });
    }
}

/// The fields of one record, borrowed from its batch.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    text: &'a str,
    ends: &'a [usize],
}

impl<'a> Fields<'a> {
    /// Fields laid out as a batch holds them: `text` is every field one after the other,
    /// `ends[i]` where field `i` ends in it. JSON records ([`super::record`]) use this too.
    pub(super) fn from_parts(text: &'a str, ends: &'a [usize]) -> Fields<'a> {
        Fields { text, ends }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The field `i` (from 0), if the record has it.
    pub fn get(&self, i: usize) -> Option<&'a str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start..end)
    }

    /// All fields' text, one after the other.
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let (text, ends) = (self.text, self.ends);
        ends.iter().scan(0, move |start, &end| {
            let field = text.get(*start..end).unwrap_or_default();
            *start = end;
            Some(field)
        })
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
    recycled: mpsc::Sender<Batch>,
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
        match self.batch.events.pop_front() {
            Some(Event::Record {
                line,
                quirks,
                text_start,
                ends,
            }) => {
                let ends = self.batch.ends.get(ends).unwrap_or_default();
                let text_end = text_start + ends.last().copied().unwrap_or(0);
                Item::Record {
                    line,
                    quirks,
                    fields: Fields {
                        text: self
                            .batch
                            .text
                            .get(text_start..text_end)
                            .unwrap_or_default(),
                        ends,
                    },
                }
            }
            Some(other) => Item::Other(other),
            None => Item::Other(Event::Failed(io::Error::other("no record"))),
        }
    }
}

/// Starts splitting `csv` on a thread of its own. Dropping the returned [`Records`] stops it
/// (and with it the decoder) at its next hand-over.
pub(super) fn spawn(csv: Csv) -> Records {
    let (tx, rx) = mpsc::channel(BATCHES_IN_FLIGHT);
    let (recycled, recycled_rx) = mpsc::channel(BATCHES_IN_FLIGHT);
    let runtime = tokio::runtime::Handle::current();
    // A thread, not a task, for the reason `decode::spawn` gives.
    tokio::task::spawn_blocking(move || runtime.block_on(split(csv, tx, recycled_rx)));
    Records {
        rx,
        recycled,
        batch: Batch::default(),
    }
}

async fn split(mut csv: Csv, tx: mpsc::Sender<Batch>, mut recycled: mpsc::Receiver<Batch>) {
    let mut record = StringRecord::new();
    let mut batch = Batch::new();
    loop {
        let last = match next(&mut csv, &mut record).await {
            Ok(Some(Step::Record { line, quirks })) => {
                batch.push_record(&record, line, quirks);
                false
            }
            Ok(Some(Step::Event(event))) => {
                let last = !matches!(event, Event::Utf8 { .. });
                batch.events.push_back(event);
                last
            }
            Ok(None) => {
                batch.events.push_back(Event::End {
                    quotes_balanced: csv.get_ref().quotes_balanced(),
                });
                true
            }
            Err(e) => {
                batch.events.push_back(Event::Failed(e));
                true
            }
        };
        if last || batch.is_full() {
            let next = recycled.try_recv().unwrap_or_else(|_| Batch::new());
            if tx.send(std::mem::replace(&mut batch, next)).await.is_err() || last {
                return; // The checker has stopped (an error, the row cap), or the file ended.
            }
        }
    }
}

/// What reading one record gave, before it goes into a batch.
enum Step {
    Record { line: u64, quirks: Quirks },
    Event(Event),
}

/// Reads the next record and says what it was: `None` at the end, `Err` only for a source
/// that failed to read.
async fn next(csv: &mut Csv, record: &mut StringRecord) -> Result<Option<Step>, io::Error> {
    let start = csv.position().byte();
    let start_line = csv.get_mut().line_at(start);
    // Quirks of a record that failed to read went with its error.
    csv.get_mut().quirks_before(start).for_each(drop);
    let follows_bare_cr = csv.get_ref().follows_bare_cr(start);
    let result = csv.read_record(record).await;
    csv.get_mut().record_done();
    let error = match result {
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
            let line = csv.get_mut().line_at(start);
            return Ok(Some(Step::Record { line, quirks }));
        }
        Ok(false) => return Ok(None),
        Err(error) => error,
    };
    let event = match error.kind() {
        ErrorKind::Utf8 { pos, err } => Event::Utf8 {
            line: match pos {
                Some(pos) => csv.get_mut().line_at(pos.byte()),
                None => start_line,
            },
            field: err.field(),
            valid_up_to: err.valid_up_to(),
        },
        ErrorKind::Io(io_error) => {
            if let Some(too_long) = io_error
                .get_ref()
                .and_then(|e| e.downcast_ref::<RecordTooLong>())
            {
                Event::Fatal(Box::new(FileError::line(
                    start_line,
                    format!(
                        "a record longer than {} bytes (limits.max_record_bytes); the file was not read further",
                        too_long.limit
                    ),
                )))
            } else if let Some(decode_error) = decode::decode_error(io_error)
                && decode_error.is_content()
            {
                Event::Fatal(Box::new(FileError::file(decode_error.to_string())))
            } else {
                return Err(io::Error::new(io_error.kind(), io_error.to_string()));
            }
        }
        _ => Event::Fatal(Box::new(FileError::line(start_line, error.to_string()))),
    };
    Ok(Some(Step::Event(event)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut batch = Batch::new();
        let record = StringRecord::from(vec!["a", "", "ünï", "x,y"]);
        batch.push_record(&StringRecord::from(vec!["before"]), 1, Quirks::default());
        batch.push_record(&record, 2, Quirks::default());
        let Some(Event::Record {
            text_start, ends, ..
        }) = batch.events.get(1)
        else {
            panic!("the second event is a record");
        };
        let ends = &batch.ends[ends.clone()];
        let fields = Fields {
            text: &batch.text[*text_start..*text_start + ends.last().copied().unwrap_or(0)],
            ends,
        };
        assert_eq!(fields.len(), 4);
        assert_eq!(fields.iter().collect::<Vec<_>>(), ["a", "", "ünï", "x,y"]);
        assert_eq!(fields.get(2), Some("ünï"));
        assert_eq!(fields.get(4), None);
        assert_eq!(fields.as_str(), "aünïx,y");
    }
}
