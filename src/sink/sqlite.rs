//! The embedded default sink: records in a SQLite file, no server.
//!
//! A file is loaded in one `BEGIN IMMEDIATE` transaction on a blocking thread of its own, fed
//! in batches over a channel while the validator is still reading, with one prepared upsert;
//! the ledger row goes into the same transaction. SQLite has one writer at a time, so loads
//! take turns (a tokio mutex) instead of piling up on the busy timeout.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use tokio::sync::{OwnedMutexGuard, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{Applied, Committed, FileLoad, FileRef, OwnedRow, Sink, SinkError};
use crate::validate::{Row, RowConsumer};

/// Rows per message to the writer thread.
const BATCH_ROWS: usize = 2048;
/// Batches queued ahead of the writer: bounds memory, and keeps both threads busy.
const BATCHES_IN_FLIGHT: usize = 4;

/// The primary key is SPEC's four columns, declared most selective first: SQLite compares
/// composite keys left to right, and `integration`, `entity` and `product_key` are the same on
/// every row of a file, so `id` first makes each upsert's two index seeks about 3× cheaper.
/// WITHOUT ROWID: the key is the table, not a second B-tree beside it.
pub const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE records (
        integration TEXT NOT NULL,
        entity TEXT NOT NULL,
        product_key TEXT NOT NULL DEFAULT '',
        id TEXT NOT NULL,
        attributes TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (id, product_key, entity, integration)
    ) WITHOUT ROWID;
    CREATE TABLE file_ledger (
        integration TEXT NOT NULL,
        file_key TEXT NOT NULL,
        version TEXT NOT NULL,
        rows INTEGER NOT NULL,
        applied_at TEXT NOT NULL,
        PRIMARY KEY (integration, file_key, version)
    );",
)];

/// Present keys overwrite, keys not in the file stay: SQLite's json_patch (RFC 7396), and
/// our patches never carry nulls.
const UPSERT: &str =
    "INSERT INTO records (integration, entity, product_key, id, attributes, updated_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)
    ON CONFLICT (id, product_key, entity, integration) DO UPDATE SET
        attributes = json_patch(records.attributes, excluded.attributes),
        updated_at = excluded.updated_at";

#[derive(Debug, Clone)]
pub struct SqliteSink {
    path: PathBuf,
    writer: Arc<tokio::sync::Mutex<()>>,
}

impl SqliteSink {
    /// Opens (creating and migrating) the database file.
    pub async fn open(path: &Path) -> Result<SqliteSink, SinkError> {
        let owned = path.to_path_buf();
        blocking(path, move || {
            crate::sqlite::open(&owned, MIGRATIONS).map(drop)
        })
        .await?;
        Ok(SqliteSink {
            path: path.to_path_buf(),
            writer: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn db_error(path: &Path, e: impl std::fmt::Display) -> SinkError {
    SinkError::Database {
        database: path.display().to_string(),
        message: e.to_string(),
    }
}

async fn blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, SinkError> {
    let path = path.to_path_buf();
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(|e| db_error(&path, e)),
        Err(e) => Err(SinkError::Task(e.to_string())),
    }
}

fn ledger_entry(tx: &rusqlite::Connection, file: &FileRef) -> rusqlite::Result<Option<Applied>> {
    tx.query_row(
        "SELECT rows, applied_at FROM file_ledger WHERE integration = ?1 AND file_key = ?2 AND version = ?3",
        params![file.integration, file.key, file.version],
        |row| {
            let applied_at: String = row.get(1)?;
            Ok(Applied {
                rows: row.get::<_, i64>(0)? as u64,
                applied_at: DateTime::parse_from_rfc3339(&applied_at)
                    .map(|d| d.with_timezone(&Utc))
                    .unwrap_or_default(),
            })
        },
    )
    .optional()
}

impl Sink for SqliteSink {
    type Load = SqliteLoad;

    async fn applied(&self, file: &FileRef) -> Result<Option<Applied>, SinkError> {
        let (path, file) = (self.path.clone(), file.clone());
        blocking(&self.path, move || {
            let conn = crate::sqlite::open(&path, MIGRATIONS)?;
            ledger_entry(&conn, &file)
        })
        .await
    }

    async fn begin(
        &self,
        file: &FileRef,
        updated_at: DateTime<Utc>,
    ) -> Result<SqliteLoad, SinkError> {
        let turn = self.writer.clone().lock_owned().await;
        let (tx, rx) = mpsc::channel(BATCHES_IN_FLIGHT);
        let (path, file) = (self.path.clone(), file.clone());
        let writer = tokio::task::spawn_blocking(move || {
            write_file(
                &path,
                &file,
                &updated_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                rx,
            )
            .map_err(|e| db_error(&path, e))
        });
        Ok(SqliteLoad {
            tx: Some(tx),
            batch: Vec::with_capacity(BATCH_ROWS),
            writer,
            json_size: 64,
            _turn: turn,
        })
    }
}

enum Message {
    Rows(Vec<OwnedRow>),
    Commit {
        rows: u64,
        version: String,
        reply: oneshot::Sender<Committed>,
    },
}

/// The writer thread: one transaction, committed only on `Commit`. If the channel closes
/// without one (rollback, or the run died), dropping the transaction rolls it back.
fn write_file(
    path: &Path,
    file: &FileRef,
    updated_at: &str,
    mut rx: mpsc::Receiver<Message>,
) -> rusqlite::Result<()> {
    let mut conn = crate::sqlite::open(path, MIGRATIONS)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let entity = file.entity.as_str();
    let mut upsert = tx.prepare_cached(UPSERT)?;
    while let Some(message) = rx.blocking_recv() {
        match message {
            Message::Rows(rows) => {
                for row in rows {
                    upsert.execute(params![
                        file.integration,
                        entity,
                        row.product_key,
                        row.id,
                        row.attributes,
                        updated_at
                    ])?;
                }
            }
            Message::Commit {
                rows,
                version,
                reply,
            } => {
                drop(upsert);
                let file = FileRef {
                    version,
                    ..file.clone()
                };
                if let Some(prior) = ledger_entry(&tx, &file)? {
                    // Applied before (by a run that crashed after committing): change nothing.
                    tx.rollback()?;
                    let _ = reply.send(Committed::AlreadyApplied(prior));
                    return Ok(());
                }
                // Full precision, stamped now: recovery compares it with the drop's start to
                // tell this drop's loads from an earlier drop's.
                tx.execute(
                    "INSERT INTO file_ledger (integration, file_key, version, rows, applied_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![file.integration, file.key, file.version, rows as i64, Utc::now().to_rfc3339()],
                )?;
                crate::crash_point!("sqlite-before-commit");
                tx.commit()?;
                let _ = reply.send(Committed::Applied);
                return Ok(());
            }
        }
    }
    Ok(())
}

/// A file being loaded into SQLite.
pub struct SqliteLoad {
    tx: Option<mpsc::Sender<Message>>,
    batch: Vec<OwnedRow>,
    writer: JoinHandle<Result<(), SinkError>>,
    /// The last row's JSON length, to size the next buffer.
    json_size: usize,
    /// Our turn as SQLite's one writer, held until commit or rollback.
    _turn: OwnedMutexGuard<()>,
}

impl SqliteLoad {
    async fn send(&mut self, message: Message) -> Result<(), SinkError> {
        let sent = match &self.tx {
            Some(tx) => tx.send(message).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The writer stopped: its own error says why.
        self.tx = None;
        match (&mut self.writer).await {
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => Err(SinkError::Task("the SQLite writer stopped early".into())),
            Err(e) => Err(SinkError::Task(e.to_string())),
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let rows = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_ROWS));
        self.send(Message::Rows(rows)).await
    }
}

impl RowConsumer for SqliteLoad {
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

impl FileLoad for SqliteLoad {
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
        match (&mut self.writer).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(SinkError::Task(e.to_string())),
        }
        outcome.map_err(|_| SinkError::Task("the SQLite writer gave no answer".into()))
    }

    async fn rollback(mut self) -> Result<(), SinkError> {
        self.tx = None; // Closing the channel rolls the transaction back.
        match (&mut self.writer).await {
            Ok(result) => result,
            Err(e) => Err(SinkError::Task(e.to_string())),
        }
    }
}
