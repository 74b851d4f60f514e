//! The validator's side of a PostgreSQL load: rows owned and batched, handed over a bounded
//! channel to the writer task that holds the file's one transaction, then commit or
//! rollback. The bound keeps memory flat and both sides busy. (SQLite, with one writer for
//! the whole database, spools instead: see [`super::sqlite`].)

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{FileLoad, OwnedRow, SinkError};
use crate::ledger::{Committed, FileRef, Version};
use crate::validate::{Row, RowConsumer};

/// Rows per message to the writer.
const BATCH_ROWS: usize = 2048;
/// Batches queued ahead of the writer.
const BATCHES_IN_FLIGHT: usize = 4;

/// What the writer receives: rows in file order, then at most one `Commit`. A channel that
/// closes without a `Commit` means roll back.
pub(super) enum Message {
    Rows(Vec<OwnedRow>),
    Commit {
        rows: u64,
        version: Version,
        /// More ledger entries, written with the file's ([`FileLoad::also_record`]).
        also: Vec<(FileRef, u64)>,
        reply: oneshot::Sender<Committed>,
    },
}

/// The channel from a load to its writer.
pub(super) fn channel() -> (mpsc::Sender<Message>, mpsc::Receiver<Message>) {
    mpsc::channel(BATCHES_IN_FLIGHT)
}

/// A file being loaded into a database sink.
pub struct BatchedLoad {
    tx: Option<mpsc::Sender<Message>>,
    batch: Vec<OwnedRow>,
    /// Taken when awaited: a finished task must not be polled again, and its result was
    /// already given to whoever closed the load.
    writer: Option<JoinHandle<Result<(), SinkError>>>,
    /// The last row's JSON length, to size the next buffer.
    json_size: usize,
    /// The writer, named in errors ("the PostgreSQL writer").
    writer_name: &'static str,
    also: Vec<(FileRef, u64)>,
}

impl BatchedLoad {
    pub(super) fn new(
        tx: mpsc::Sender<Message>,
        writer: JoinHandle<Result<(), SinkError>>,
        writer_name: &'static str,
    ) -> BatchedLoad {
        BatchedLoad {
            tx: Some(tx),
            batch: Vec::with_capacity(BATCH_ROWS),
            writer: Some(writer),
            json_size: 64,
            writer_name,
            also: Vec::new(),
        }
    }

    async fn send(&mut self, message: Message) -> Result<(), SinkError> {
        let sent = match &self.tx {
            Some(tx) => tx.send(message).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The writer stopped: its own error says why.
        match self.close().await {
            Ok(()) => Err(SinkError::WriterStopped {
                writer: self.writer_name,
                what: "stopped early",
            }),
            Err(e) => Err(e),
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let rows = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_ROWS));
        self.send(Message::Rows(rows)).await
    }

    /// Closes the channel and waits for the writer's result. Once the writer's result was
    /// taken (a send found it stopped), closing again has nothing more to say.
    async fn close(&mut self) -> Result<(), SinkError> {
        self.tx = None;
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        match writer.await {
            Ok(result) => result,
            Err(e) => Err(SinkError::Join(e)),
        }
    }
}

impl RowConsumer for BatchedLoad {
    type Error = SinkError;

    async fn accept(&mut self, row: &Row<'_>) -> Result<(), SinkError> {
        let owned = OwnedRow::from_row(row, self.json_size);
        self.json_size = owned.attributes.len();
        self.batch.push(owned);
        if self.batch.len() >= BATCH_ROWS {
            self.flush().await?;
        }
        Ok(())
    }
}

impl FileLoad for BatchedLoad {
    async fn commit(mut self, rows: u64, version: &Version) -> Result<Committed, SinkError> {
        self.flush().await?;
        let (reply, answer) = oneshot::channel();
        let version = version.clone();
        let also = std::mem::take(&mut self.also);
        self.send(Message::Commit {
            rows,
            version,
            also,
            reply,
        })
        .await?;
        self.tx = None;
        let outcome = answer.await;
        self.close().await?;
        outcome.map_err(|_| SinkError::WriterStopped {
            writer: self.writer_name,
            what: "gave no answer",
        })
    }

    async fn rollback(mut self) -> Result<(), SinkError> {
        // Closing the channel without a commit rolls the transaction back.
        self.close().await
    }

    fn also_record(&mut self, entries: Vec<(FileRef, u64)>) {
        self.also.extend(entries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{
        AttributeType, CsvDialect, DatePattern, FileRules, Limits, ProductKey, Schema, validate,
    };

    /// A writer that fails at its first batch, as a full disk would, while the validator
    /// still has rows to send: the load fails with the writer's error, and rolling it back
    /// after that (what `load_file` does) must not poll the finished writer again.
    #[tokio::test]
    async fn a_writer_failing_mid_file_fails_the_load_without_a_panic() {
        let (tx, mut rx) = channel();
        let writer = tokio::spawn(async move {
            let _ = rx.recv().await;
            Err(SinkError::Database {
                database: "test.db".into(),
                message: "database or disk is full".into(),
                source: "database or disk is full".into(),
            })
        });
        let mut load = BatchedLoad::new(tx, writer, "test writer");
        let rules = FileRules {
            schema: Schema {
                attributes: [("id".to_string(), AttributeType::String)].into(),
            },
            product_key: ProductKey::None,
            dates: DatePattern::compile("yyyy-MM-dd").expect("date pattern"),
            csv: CsvDialect::default(),
            max_rows: 350_000,
            limits: Limits::default(),
        };
        let mut csv = String::from("id\n");
        for i in 0..BATCH_ROWS * (BATCHES_IN_FLIGHT + 4) {
            csv.push_str(&format!("u{i}\n"));
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, csv.as_bytes()).expect("gzip");
        let bytes = gz.finish().expect("gzip");
        let source = std::io::Cursor::new(bytes);
        let failure = validate(&rules, "f.csv.gz", source, &mut load, None).await;
        assert!(failure.is_err(), "the writer's failure stops the file");
        // What load_file does next: must return, not panic.
        let _ = load.rollback().await;
    }
}
