//! The validator's side of a database load, the same for SQLite and PostgreSQL: rows owned
//! and batched, handed over a bounded channel to the writer that holds the file's one
//! transaction (a blocking thread for SQLite, a task for PostgreSQL), then commit or rollback.
//! The bound keeps memory flat and both sides busy.

use tokio::sync::{OwnedMutexGuard, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{Committed, FileLoad, OwnedRow, SinkError};
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
        version: String,
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
    writer: JoinHandle<Result<(), SinkError>>,
    /// The last row's JSON length, to size the next buffer.
    json_size: usize,
    /// The writer, named in errors ("the SQLite writer").
    writer_name: &'static str,
    /// Held until commit or rollback (SQLite's turn as the one writer).
    _turn: Option<OwnedMutexGuard<()>>,
}

impl BatchedLoad {
    pub(super) fn new(
        tx: mpsc::Sender<Message>,
        writer: JoinHandle<Result<(), SinkError>>,
        writer_name: &'static str,
        turn: Option<OwnedMutexGuard<()>>,
    ) -> BatchedLoad {
        BatchedLoad {
            tx: Some(tx),
            batch: Vec::with_capacity(BATCH_ROWS),
            writer,
            json_size: 64,
            writer_name,
            _turn: turn,
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
            Ok(()) => Err(SinkError::Task(format!(
                "the {} stopped early",
                self.writer_name
            ))),
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

    /// Closes the channel and waits for the writer's result.
    async fn close(&mut self) -> Result<(), SinkError> {
        self.tx = None;
        match (&mut self.writer).await {
            Ok(result) => result,
            Err(e) => Err(SinkError::Task(e.to_string())),
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
    async fn commit(mut self, rows: u64, version: &str) -> Result<Committed, SinkError> {
        self.flush().await?;
        let (reply, answer) = oneshot::channel();
        let version = version.to_string();
        self.send(Message::Commit {
            rows,
            version,
            reply,
        })
        .await?;
        self.tx = None;
        let outcome = answer.await;
        self.close().await?;
        outcome.map_err(|_| SinkError::Task(format!("the {} gave no answer", self.writer_name)))
    }

    async fn rollback(mut self) -> Result<(), SinkError> {
        // Closing the channel without a commit rolls the transaction back.
        self.close().await
    }
}
