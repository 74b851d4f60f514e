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
use tokio::sync::mpsc;

use super::batch::{BatchedLoad, Message, channel};
use super::{Applied, Committed, FileRef, Sink, SinkError};

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
    type Load = BatchedLoad;

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
    ) -> Result<BatchedLoad, SinkError> {
        let turn = self.writer.clone().lock_owned().await;
        let (tx, rx) = channel();
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
        Ok(BatchedLoad::new(tx, writer, "SQLite writer", Some(turn)))
    }
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
