//! A first file over two connections. Straight into `records`, the backend holding the file's
//! transaction spent about twice as long as the plain load, and about half of that parsing
//! jsonb; one backend is one core. So a second connection (the parse connection) copies the
//! rows, in chunks, into unlogged staging tables, each chunk a table of its own committed in
//! its own short transaction, and the file's transaction `INSERT ... SELECT`s each committed
//! chunk into `records` while the next is parsed: the file's backend only copies datums. What
//! becomes visible is still one transaction: the chunks' rows in `records`, the chunk tables
//! dropped and the ledger row all commit together.
//!
//! A load's tables are `records_stage_<load>_<chunk>`, `<load>` from a sequence, and the
//! file's transaction holds the advisory lock `<load>` (the one-number lock space; the
//! migration lock's number is far beyond the sequence) from before its first table exists.
//! A table whose load's lock is free belongs to a load that ended without dropping it (a
//! crash, a rollback): the next load, whichever file, drops it ([`remove_abandoned`]). A
//! table per chunk rather than one shared table: a chunk is found without an index or a scan,
//! and is gone with a `DROP`, not a `DELETE` that leaves dead rows to vacuum.

use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use deadpool_postgres::{Object, Pool};
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use super::{Ending, HELD_ROWS, JsonbText, Merge, SeenIds, db_error, finish, stage, start_staging};
use crate::ledger::FileRef;
use crate::sink::batch::Message;
use crate::sink::{OwnedRow, SinkError};

/// Load numbers, for the names of a load's tables and its advisory lock.
pub(super) const MIGRATION: &str = "CREATE SEQUENCE IF NOT EXISTS records_stage_load";

/// Rows per chunk table: about 20 chunks for the bench's 350,000 rows, so the work left
/// after the file's last row (the last chunk parsed, then inserted) is small, and a table's
/// creation (its catalog rows) is paid once per 16,384 rows.
const CHUNK_ROWS: usize = 16_384;
/// Committed chunks and batches of rows queued ahead of the file's connection.
const WORK_IN_FLIGHT: usize = 4;

/// A new load number, and its lock taken until the file's transaction ends.
const ALLOCATE: &str =
    "SELECT l FROM nextval('records_stage_load') AS l, LATERAL pg_advisory_xact_lock(l) AS locked";
/// Staging tables in the schema the connections create them in.
const STAGED_TABLES: &str = r"SELECT relname::text FROM pg_class
    WHERE relkind = 'r' AND relname LIKE 'records\_stage\_%'
      AND relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())";
/// Whether a load has ended: its lock is free (then held by us until our commit).
const LOAD_ENDED: &str = "SELECT pg_try_advisory_xact_lock($1)";
const CHUNK_TYPES: [Type; 3] = [Type::TEXT, Type::TEXT, Type::JSONB];

/// The table of `chunk` of `load`.
fn chunk_table(load: i64, chunk: u32) -> String {
    format!("records_stage_{load}_{chunk}")
}

/// The load a staging table's name belongs to, if it is one of ours.
fn load_of(table: &str) -> Option<i64> {
    let (load, chunk) = table.strip_prefix("records_stage_")?.split_once('_')?;
    chunk.parse::<u32>().ok()?;
    load.parse().ok()
}

/// Drops the staging tables of loads that ended without dropping them, in `tx`: one catalog
/// read when there are none. A load still running holds its lock, and is left alone.
pub(super) async fn remove_abandoned(tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
    let mut tables: Vec<(i64, String)> = Vec::new();
    for row in tx.query(STAGED_TABLES, &[]).await? {
        let name: String = row.try_get(0)?;
        if let Some(load) = load_of(&name) {
            tables.push((load, name));
        }
    }
    tables.sort();
    for group in tables.chunk_by(|a, b| a.0 == b.0) {
        let load = group[0].0;
        let ended: bool = tx.query_one(LOAD_ENDED, &[&load]).await?.try_get(0)?;
        if ended {
            let names: Vec<&str> = group.iter().map(|(_, name)| name.as_str()).collect();
            tx.batch_execute(&format!("DROP TABLE IF EXISTS {}", names.join(", ")))
                .await?;
        }
    }
    Ok(())
}

/// A second connection when the pool has one free (or room to open one) at once, else
/// `None`: a load never waits for its second connection while holding its first, so loads
/// cannot wait for each other's, whatever the pool's size.
pub(super) async fn second_connection(pool: &Pool) -> Option<Object> {
    let mut timeouts = pool.timeouts();
    timeouts.wait = Some(Duration::ZERO);
    pool.timeout_get(&timeouts).await.ok()
}

/// What the parse connection's task hands to the file's transaction, in file order.
enum Work {
    /// A chunk table, committed: insert its rows into `records`.
    Chunk(String),
    /// Rows for the temporary staging table, with their place in the file: the rows held
    /// back, and after too many of those the rest of the file.
    Stage(Vec<(i64, OwnedRow)>),
    /// The file's rows are all in.
    Commit { merge: Merge, ending: Ending },
}

/// The file's side of a first file: `tx` has found no records of (integration, entity); the
/// file's rows go through `parse` into chunk tables, and each committed chunk into
/// `records` here.
pub(super) async fn write_first_file(
    tx: Transaction<'_>,
    parse: Object,
    file: &FileRef,
    updated_at: DateTime<Utc>,
    rx: mpsc::Receiver<Message>,
    url: &str,
) -> Result<(), SinkError> {
    let db = |e| db_error(url, e);
    let load: i64 = tx
        .query_one(ALLOCATE, &[])
        .await
        .map_err(db)?
        .try_get(0)
        .map_err(db)?;
    let (work_tx, mut work) = mpsc::channel(WORK_IN_FLIGHT);
    let router = Router {
        load,
        work: work_tx,
        chunks: 0,
        open: None,
        seen: SeenIds::new(),
        held: Vec::new(),
        seq: 0,
        overflowed: false,
    };
    let parser = tokio::spawn(router.run(parse, rx, url.to_string()));
    let entity = file.entity.as_str();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
        [&file.integration, &entity, &updated_at];
    let mut inserted: Vec<String> = Vec::new();
    let mut staging = None;
    while let Some(next) = work.recv().await {
        match next {
            Work::Chunk(table) => {
                let insert = format!(
                    "INSERT INTO records (integration, entity, product_key, id, attributes, updated_at)
                     SELECT $1, $2, product_key, id, attributes, $3 FROM {table}"
                );
                tx.execute(&insert, &params).await.map_err(db)?;
                inserted.push(table);
                crate::crash_point!("postgres-after-chunk");
            }
            Work::Stage(rows) => {
                if staging.is_none() {
                    staging = Some(start_staging(&tx).await.map_err(db)?);
                }
                if let Some(writer) = staging.as_mut() {
                    for (seq, row) in &rows {
                        stage(writer, *seq, row).await.map_err(db)?;
                    }
                }
            }
            Work::Commit { merge, ending } => {
                if let Some(mut writer) = staging.take() {
                    writer.as_mut().finish().await.map_err(db)?;
                }
                return finish(tx, file, updated_at, merge, ending, &inserted)
                    .await
                    .map_err(db);
            }
        }
    }
    // No commit: the parse task's error, if it had one, says why; dropping `tx` rolls back.
    match parser.await {
        Ok(result) => result,
        Err(e) => Err(SinkError::Join(e)),
    }
}

/// A chunk being copied on the parse connection, in its own transaction.
struct OpenChunk {
    table: String,
    writer: Pin<Box<BinaryCopyInWriter>>,
    rows: usize,
}

/// The parse connection's task: routes the validator's rows, as the one-connection path
/// does: a row whose (product key, id) the file has not named before into the open chunk,
/// the others held back for the file's transaction to merge after.
struct Router {
    load: i64,
    work: mpsc::Sender<Work>,
    /// Chunks begun so far.
    chunks: u32,
    open: Option<OpenChunk>,
    seen: SeenIds,
    held: Vec<(i64, OwnedRow)>,
    /// The last row's place in the file.
    seq: i64,
    /// Past [`HELD_ROWS`] held rows, the rest of the file goes to the staging table.
    overflowed: bool,
}

/// Why the parse task stopped early.
enum Stopped {
    Database(tokio_postgres::Error),
    /// The file's transaction ended first (its own error says why).
    FileWriter,
}

impl From<tokio_postgres::Error> for Stopped {
    fn from(e: tokio_postgres::Error) -> Stopped {
        Stopped::Database(e)
    }
}

impl Router {
    /// Runs the task; the connection goes back to the pool only when no transaction of ours
    /// is open on it, else it is closed (which rolls the transaction back).
    async fn run(
        mut self,
        mut parse: Object,
        rx: mpsc::Receiver<Message>,
        url: String,
    ) -> Result<(), SinkError> {
        let result = self.route(&mut parse, rx).await;
        if self.open.is_some() || result.is_err() {
            drop(Object::take(parse));
        }
        match result {
            Ok(()) => Ok(()),
            Err(Stopped::Database(e)) => Err(db_error(&url, e)),
            Err(Stopped::FileWriter) => Err(SinkError::WriterStopped {
                writer: "PostgreSQL writer",
                what: "stopped early",
            }),
        }
    }

    async fn route(
        &mut self,
        parse: &mut Object,
        mut rx: mpsc::Receiver<Message>,
    ) -> Result<(), Stopped> {
        // The first chunk at once: its table is made while the validator starts.
        self.open_chunk(parse).await?;
        while let Some(message) = rx.recv().await {
            match message {
                Message::Rows(rows) => {
                    self.rows(parse, rows).await?;
                    if self.open.as_ref().is_some_and(|c| c.rows >= CHUNK_ROWS) {
                        self.close_chunk(parse).await?;
                        self.open_chunk(parse).await?;
                    }
                }
                Message::Commit {
                    rows,
                    version,
                    also,
                    reply,
                } => {
                    self.close_chunk(parse).await?;
                    let merge = if self.overflowed {
                        Merge::Staged
                    } else if self.held.is_empty() {
                        Merge::Nothing
                    } else {
                        let held = std::mem::take(&mut self.held);
                        self.send(Work::Stage(held)).await?;
                        Merge::Held
                    };
                    let ending = Ending {
                        rows,
                        version,
                        also,
                        reply,
                    };
                    return self.send(Work::Commit { merge, ending }).await;
                }
            }
        }
        // The validator closed the load without a commit: roll back.
        Ok(())
    }

    async fn rows(&mut self, parse: &Object, rows: Vec<OwnedRow>) -> Result<(), Stopped> {
        let mut rows = rows.into_iter();
        if self.overflowed {
            let numbered = self.numbered(rows);
            return self.send(Work::Stage(numbered)).await;
        }
        while let Some(row) = rows.next() {
            self.seq += 1;
            if !self.seen.insert(&row.product_key, &row.id) {
                let chunk = self.open_chunk(parse).await?;
                let attributes = JsonbText(&row.attributes);
                chunk
                    .writer
                    .as_mut()
                    .write(&[&row.product_key, &row.id, &attributes])
                    .await?;
                chunk.rows += 1;
                continue;
            }
            self.held.push((self.seq, row));
            if self.held.len() <= HELD_ROWS {
                continue;
            }
            // Many ids named again: the rest of the file goes to the staging table, after
            // the rows held so far, and is merged with what went in.
            self.close_chunk(parse).await?;
            self.overflowed = true;
            let mut staged = std::mem::take(&mut self.held);
            staged.extend(self.numbered(rows));
            return self.send(Work::Stage(staged)).await;
        }
        Ok(())
    }

    /// `rows` with their places in the file.
    fn numbered(&mut self, rows: impl Iterator<Item = OwnedRow>) -> Vec<(i64, OwnedRow)> {
        rows.map(|row| {
            self.seq += 1;
            (self.seq, row)
        })
        .collect()
    }

    /// The open chunk, begun if there is none.
    async fn open_chunk(&mut self, parse: &Object) -> Result<&mut OpenChunk, Stopped> {
        let chunk = match self.open.take() {
            Some(chunk) => chunk,
            None => {
                self.chunks += 1;
                let table = chunk_table(self.load, self.chunks);
                // Not waiting for the commit's flush: an unlogged table is empty after a
                // server crash anyway, and the file's commit, which waits, flushes this too.
                // No autovacuum: its lock would make the file's DROP wait.
                parse
                    .batch_execute(&format!(
                        "BEGIN; SET LOCAL synchronous_commit = off;
                         CREATE UNLOGGED TABLE {table} (product_key text, id text, attributes jsonb)
                         WITH (autovacuum_enabled = off, toast.autovacuum_enabled = off)"
                    ))
                    .await?;
                // FREEZE: the table is new in this transaction, so its rows are written
                // visible to all, and reading them later sets no hint bits.
                let copy = parse
                    .copy_in(&format!("COPY {table} FROM STDIN (FORMAT binary, FREEZE)"))
                    .await?;
                OpenChunk {
                    table,
                    writer: Box::pin(BinaryCopyInWriter::new(copy, &CHUNK_TYPES)),
                    rows: 0,
                }
            }
        };
        Ok(self.open.insert(chunk))
    }

    /// Commits the open chunk, if any, and hands it to the file's transaction.
    async fn close_chunk(&mut self, parse: &Object) -> Result<(), Stopped> {
        let Some(mut chunk) = self.open.take() else {
            return Ok(());
        };
        chunk.writer.as_mut().finish().await?;
        parse.batch_execute("COMMIT").await?;
        self.send(Work::Chunk(chunk.table)).await
    }

    async fn send(&self, work: Work) -> Result<(), Stopped> {
        self.work.send(work).await.map_err(|_| Stopped::FileWriter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_of_chunk_tables_give_a_load() {
        assert_eq!(load_of(&chunk_table(42, 7)), Some(42));
        assert_eq!(load_of("records_stage_load"), None);
        assert_eq!(load_of("records_stage_12"), None);
        assert_eq!(load_of("records_stage_12_x"), None);
        assert_eq!(load_of("records"), None);
    }
}
