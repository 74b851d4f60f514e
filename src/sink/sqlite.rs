//! The embedded default sink: records in a SQLite file, no server.
//!
//! SQLite has one writer at a time for the whole file, shared by every tenant (and the
//! state, by default in the same file). So a file's valid rows are first spooled to a
//! temporary file while the customer's file is downloaded and validated, holding no lock;
//! only once the whole file validated without error is the spool applied, in one short
//! `BEGIN IMMEDIATE` transaction on a blocking thread with one prepared upsert, the ledger row
//! in the same transaction. A file with any error never touches the database. Applies take
//! turns (a tokio mutex) instead of piling up on the busy timeout.
//!
//! A local file read at disk speed (`dropfolder import FILE`, never a bucket or standard
//! input) may instead be applied while it is validated ([`SqliteSink::applying_while_reading`]):
//! the rows go in batches to a writer thread that holds the file's transaction, so inflating
//! and checking on one core overlap the inserts on the other; a file with an error rolls back.

use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::TransactionBehavior;
use tempfile::NamedTempFile;

use super::batch::{self, BatchedLoad, Message};
use super::{FileLoad, Sink, SinkError};
use crate::ledger::{self, AppliedFile, Committed, FileRef, Table, Version};
use crate::validate::{Row, RowConsumer};

/// The spool's write buffer: memory per load stays this, whatever the file's size.
const SPOOL_BUFFER: usize = 256 * 1024;

/// The primary key is SPEC's four columns, declared most selective first: SQLite compares
/// composite keys left to right, and `integration`, `entity` and `product_key` are the same on
/// every row of a file, so `id` first makes each upsert's two index seeks about 3× cheaper.
/// WITHOUT ROWID: the key is the table, not a second B-tree beside it.
pub const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    concat!(
        "CREATE TABLE records (
        integration TEXT NOT NULL,
        entity TEXT NOT NULL,
        product_key TEXT NOT NULL DEFAULT '',
        id TEXT NOT NULL,
        attributes TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (id, product_key, entity, integration)
    ) WITHOUT ROWID;
    ",
        crate::ledger::sqlite::create_table!("file_ledger")
    ),
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
    /// Whether loads take the write lock at their start and apply rows as they come.
    apply_while_reading: bool,
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
            apply_while_reading: false,
        })
    }

    /// This sink for files read from a local disk: each load takes SQLite's write lock when
    /// it begins and applies batches of rows while the rest of the file is validated, instead
    /// of spooling them first. Only for a source that cannot stall (never a download or
    /// standard input): the lock is held for as long as the file takes to read.
    pub fn applying_while_reading(self) -> SqliteSink {
        SqliteSink {
            apply_while_reading: true,
            ..self
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn db_error(path: &Path, e: impl std::error::Error + Send + Sync + 'static) -> SinkError {
    SinkError::Database {
        database: path.display().to_string(),
        message: e.to_string(),
        source: Box::new(e),
    }
}

async fn blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, SinkError> {
    let path = path.to_path_buf();
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(|e| db_error(&path, e)),
        Err(e) => Err(SinkError::Join(e)),
    }
}

impl Sink for SqliteSink {
    type Load = SqliteLoad;

    async fn applied(&self, file: &FileRef) -> Result<Option<AppliedFile>, SinkError> {
        let (path, file) = (self.path.clone(), file.clone());
        blocking(&self.path, move || {
            let conn = crate::sqlite::open(&path, MIGRATIONS)?;
            ledger::sqlite::applied(&conn, Table::Sink, &file)
        })
        .await
    }

    async fn begin(
        &self,
        file: &FileRef,
        updated_at: DateTime<Utc>,
    ) -> Result<SqliteLoad, SinkError> {
        let updated_at = updated_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        if self.apply_while_reading {
            let turn = self.writer.clone().lock_owned().await;
            let (rows, received) = batch::channel();
            let (path, file) = (self.path.clone(), file.clone());
            let writer = tokio::task::spawn_blocking(move || {
                let _turn = turn;
                apply_stream(&path, &file, &updated_at, received)
            });
            return Ok(SqliteLoad(Load::Streamed(BatchedLoad::new(
                rows,
                writer,
                "SQLite writer",
            ))));
        }
        let spool = NamedTempFile::new().map_err(SinkError::Spool)?;
        Ok(SqliteLoad(Load::Spooled(SpooledLoad {
            sink: self.clone(),
            file: file.clone(),
            updated_at,
            spool: BufWriter::with_capacity(SPOOL_BUFFER, spool),
            attributes: Vec::with_capacity(256),
            also: Vec::new(),
        })))
    }
}

/// A file being loaded into SQLite, spooled (the default) or applied as it is read.
pub struct SqliteLoad(Load);

enum Load {
    Spooled(SpooledLoad),
    Streamed(BatchedLoad),
}

/// Valid rows in a temporary file until the commit applies them. Dropped (rolled back) it
/// leaves nothing: the temporary file goes with it.
struct SpooledLoad {
    sink: SqliteSink,
    file: FileRef,
    updated_at: String,
    /// Each row as three length-prefixed fields: id, product key, attributes JSON.
    spool: BufWriter<NamedTempFile>,
    /// Reused for each row's attributes JSON.
    attributes: Vec<u8>,
    /// Ledger entries written with the file's own ([`FileLoad::also_record`]).
    also: Vec<(FileRef, u64)>,
}

fn write_field(out: &mut impl Write, field: &[u8]) -> io::Result<()> {
    let len = u32::try_from(field.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a field over 4 GiB"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(field)
}

/// Reads back a spool this process wrote, one row at a time into buffers reused for every row.
struct SpoolReader<R> {
    input: R,
    id: Vec<u8>,
    product_key: Vec<u8>,
    attributes: Vec<u8>,
}

impl<R: Read> SpoolReader<R> {
    fn new(input: R) -> SpoolReader<R> {
        SpoolReader {
            input,
            id: Vec::new(),
            product_key: Vec::new(),
            attributes: Vec::with_capacity(256),
        }
    }

    /// The next row (id, product key, attributes); `None` at the spool's end.
    fn next_row(&mut self) -> io::Result<Option<(&str, &str, &str)>> {
        if !read_field(&mut self.input, &mut self.id)? {
            return Ok(None);
        }
        let truncated =
            || io::Error::new(io::ErrorKind::UnexpectedEof, "the spool ends inside a row");
        if !read_field(&mut self.input, &mut self.product_key)?
            || !read_field(&mut self.input, &mut self.attributes)?
        {
            return Err(truncated());
        }
        let text = |bytes| {
            std::str::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        };
        Ok(Some((
            text(&self.id)?,
            text(&self.product_key)?,
            text(&self.attributes)?,
        )))
    }
}

/// The next field into `buf`; false at the spool's end.
fn read_field(input: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    // At most 4 GiB, and only what this process wrote: the spool is not read from outside.
    buf.resize(u32::from_le_bytes(len) as usize, 0);
    input.read_exact(buf)?;
    Ok(true)
}

impl RowConsumer for SqliteLoad {
    type Error = SinkError;

    async fn accept(&mut self, row: &Row<'_>) -> Result<(), SinkError> {
        match &mut self.0 {
            Load::Spooled(load) => load.accept(row),
            Load::Streamed(load) => load.accept(row).await,
        }
    }
}

impl SpooledLoad {
    fn accept(&mut self, row: &Row<'_>) -> Result<(), SinkError> {
        self.attributes.clear();
        row.write_attributes_json(&mut self.attributes);
        // A buffered write to a local temporary file: no await needed, as for `errors.csv`.
        write_field(&mut self.spool, row.id().as_bytes())
            .and_then(|()| write_field(&mut self.spool, row.product_key().as_bytes()))
            .and_then(|()| write_field(&mut self.spool, &self.attributes))
            .map_err(SinkError::Spool)
    }

    async fn commit(self, rows: u64, version: &Version) -> Result<Committed, SinkError> {
        let mut spool = self
            .spool
            .into_inner()
            .map_err(|e| SinkError::Spool(e.into_error()))?;
        spool.rewind().map_err(SinkError::Spool)?;
        let file = FileRef {
            version: version.clone(),
            ..self.file
        };
        let _turn = self.sink.writer.clone().lock_owned().await;
        let path = self.sink.path.clone();
        let (updated_at, also) = (self.updated_at, self.also);
        match tokio::task::spawn_blocking(move || {
            apply(&path, &file, &updated_at, rows, spool, &also)
        })
        .await
        {
            Ok(result) => result,
            Err(e) => Err(SinkError::Join(e)),
        }
    }
}

impl FileLoad for SqliteLoad {
    async fn commit(self, rows: u64, version: &Version) -> Result<Committed, SinkError> {
        match self.0 {
            Load::Spooled(load) => load.commit(rows, version).await,
            Load::Streamed(load) => load.commit(rows, version).await,
        }
    }

    async fn rollback(self) -> Result<(), SinkError> {
        match self.0 {
            // Nothing was written to the database; the spool is deleted with the load.
            Load::Spooled(_) => Ok(()),
            // The writer drops its transaction when the channel closes without a commit.
            Load::Streamed(load) => load.rollback().await,
        }
    }

    fn also_record(&mut self, entries: Vec<(FileRef, u64)>) {
        match &mut self.0 {
            Load::Spooled(load) => load.also.extend(entries),
            Load::Streamed(load) => load.also_record(entries),
        }
    }
}

/// The file's one prepared upsert. The columns every row of the file shares are bound once;
/// each row binds only its own three.
struct Upsert<'c>(rusqlite::CachedStatement<'c>);

impl<'c> Upsert<'c> {
    fn prepare(
        conn: &'c rusqlite::Connection,
        file: &FileRef,
        updated_at: &str,
    ) -> rusqlite::Result<Upsert<'c>> {
        let mut statement = conn.prepare_cached(UPSERT)?;
        statement.raw_bind_parameter(1, file.integration.as_str())?;
        statement.raw_bind_parameter(2, file.entity.as_str())?;
        statement.raw_bind_parameter(6, updated_at)?;
        Ok(Upsert(statement))
    }

    fn row(&mut self, id: &str, product_key: &str, attributes: &str) -> rusqlite::Result<()> {
        self.0.raw_bind_parameter(3, product_key)?;
        self.0.raw_bind_parameter(4, id)?;
        self.0.raw_bind_parameter(5, attributes)?;
        self.0.raw_execute().map(drop)
    }
}

/// Records the ledger row and commits, unless the ledger already has the file (applied by a
/// run that crashed after committing, or the same bytes imported before): then nothing
/// changes.
fn finish(
    path: &Path,
    tx: rusqlite::Transaction<'_>,
    file: &FileRef,
    rows: u64,
    also: &[(FileRef, u64)],
) -> Result<Committed, SinkError> {
    let db = |e: rusqlite::Error| db_error(path, e);
    if let Some(prior) = ledger::sqlite::applied(&tx, Table::Sink, file).map_err(db)? {
        tx.rollback().map_err(db)?;
        return Ok(Committed::AlreadyApplied(prior));
    }
    // Full precision, stamped now: recovery compares it with the drop's start to tell this
    // drop's loads from an earlier drop's.
    ledger::sqlite::record(&tx, Table::Sink, file, rows, Utc::now()).map_err(db)?;
    for (entry, rows) in also {
        ledger::sqlite::record(&tx, Table::Sink, entry, *rows, Utc::now()).map_err(db)?;
    }
    crate::crash_point!("sqlite-before-commit");
    tx.commit().map_err(db)?;
    Ok(Committed::Applied)
}

/// The writer of a load applied while it is read: one transaction from the first batch to
/// the commit message; a channel closed without one drops (rolls back) the transaction.
fn apply_stream(
    path: &Path,
    file: &FileRef,
    updated_at: &str,
    mut received: tokio::sync::mpsc::Receiver<Message>,
) -> Result<(), SinkError> {
    let db = |e: rusqlite::Error| db_error(path, e);
    let mut conn = crate::sqlite::open(path, MIGRATIONS).map_err(db)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    let mut upsert = Upsert::prepare(&tx, file, updated_at).map_err(db)?;
    while let Some(message) = received.blocking_recv() {
        match message {
            Message::Rows(rows) => {
                for row in &rows {
                    upsert
                        .row(&row.id, &row.product_key, &row.attributes)
                        .map_err(db)?;
                }
            }
            Message::Commit {
                rows,
                version,
                also,
                reply,
            } => {
                drop(upsert);
                let file = FileRef {
                    version,
                    ..file.clone()
                };
                let committed = finish(path, tx, &file, rows, &also)?;
                // A load that stopped waiting has nothing to be told.
                let _ = reply.send(committed);
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Applies a spool in one transaction, with the ledger row, unless the ledger already has the
/// file (then nothing changes, and the spool is not read).
fn apply(
    path: &Path,
    file: &FileRef,
    updated_at: &str,
    rows: u64,
    spool: NamedTempFile,
    also: &[(FileRef, u64)],
) -> Result<Committed, SinkError> {
    let db = |e: rusqlite::Error| db_error(path, e);
    let mut conn = crate::sqlite::open(path, MIGRATIONS).map_err(db)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    if let Some(prior) = ledger::sqlite::applied(&tx, Table::Sink, file).map_err(db)? {
        tx.rollback().map_err(db)?;
        return Ok(Committed::AlreadyApplied(prior));
    }
    {
        let mut upsert = Upsert::prepare(&tx, file, updated_at).map_err(db)?;
        let mut input = SpoolReader::new(BufReader::with_capacity(SPOOL_BUFFER, spool.as_file()));
        while let Some((id, product_key, attributes)) =
            input.next_row().map_err(SinkError::Spool)?
        {
            upsert.row(id, product_key, attributes).map_err(db)?;
        }
    }
    finish(path, tx, file, rows, also)
}
