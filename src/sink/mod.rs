//! Where valid rows go. A sink loads one file at a time: [`Sink::begin`] gives a
//! [`FileLoad`], the validator hands it rows, and the load commits (rows and ledger entry
//! together) or rolls back. The [`crate::ledger`] makes loading idempotent: the same file
//! version is never applied twice, even across a crash.
//!
//! Implementations: [`sqlite`] (the embedded default: rows spooled, then applied in one short
//! transaction), [`postgres`] (production: rows streamed through [`batch`] into the file's
//! transaction); and [`http`] (ingest APIs, which cannot roll back; its ledger is a
//! [`Ledger`] given to it). `tests/sink.rs` runs one suite against every implementation.

pub(crate) mod batch;
pub(crate) mod http;
pub mod postgres;
mod settings;
pub(crate) mod sqlite;

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::ledger::{AppliedFile, Committed, FileRef, Ledger, LedgerError, Version};
use crate::validate::RowConsumer;

pub use crate::ledger::Entity;
pub use batch::BatchedLoad;
pub use http::{HttpLoad, HttpSink};
pub use postgres::PgSink;
pub use settings::{HttpBodyFormat, HttpSinkSettings, SinkSettings};
pub use sqlite::{SqliteLoad, SqliteSink};

/// Why a sink could not do its part. Never a customer error: the file is retried later.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// `message` is the driver's error with its causes, in one line; `source` keeps it typed.
    #[error("database {database}: {message}")]
    Database {
        database: String,
        message: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The sink cannot be opened as configured (set up from config, whose checks say more).
    #[error("cannot open the sink: {0}")]
    Unavailable(String),
    #[error("sink task failed: {0}")]
    Join(#[source] tokio::task::JoinError),
    /// A load's writer task ended without the result of the file.
    #[error("sink task failed: the {writer} {what}")]
    WriterStopped {
        writer: &'static str,
        what: &'static str,
    },
    #[error("cannot spool the valid rows to a temporary file: {0}")]
    Spool(#[source] std::io::Error),
    #[error("{0}")]
    Http(#[source] crate::outbound::OutboundError),
    #[error(
        "line {line}: a record of {bytes} bytes is larger than the API's body limit of {max} bytes (lower limits.max_record_bytes or raise max_body_bytes)"
    )]
    RecordTooLarge { line: u64, bytes: usize, max: usize },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Postgres(#[from] crate::postgres::PgError),
}

/// A consumer that cannot fail (counting rows) never gives a sink error.
impl From<std::convert::Infallible> for SinkError {
    fn from(never: std::convert::Infallible) -> SinkError {
        match never {}
    }
}

/// A sink: SQLite, PostgreSQL or an HTTP API.
pub trait Sink: Send + Sync {
    type Load: FileLoad;

    /// Whether a load can be rolled back. A sink that cannot (an HTTP API) gets a file only
    /// after the whole file was validated.
    fn transactional(&self) -> bool {
        true
    }

    /// The ledger entry for `file`, if it was applied before.
    fn applied(
        &self,
        file: &FileRef,
    ) -> impl Future<Output = Result<Option<AppliedFile>, SinkError>> + Send;

    /// Starts loading `file`. `updated_at` stamps every record it writes.
    fn begin(
        &self,
        file: &FileRef,
        updated_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Self::Load, SinkError>> + Send;
}

/// One file being loaded: receives rows, then commits or rolls back.
pub trait FileLoad: RowConsumer<Error = SinkError> + Sized {
    /// Makes the rows and the ledger entry durable together, unless the ledger already had
    /// the file at `version` (then nothing changes). The version is given here because a
    /// stream's content hash is known only once it has been read.
    fn commit(
        self,
        rows: u64,
        version: &Version,
    ) -> impl Future<Output = Result<Committed, SinkError>> + Send;

    /// Discards every row received.
    fn rollback(self) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// More ledger entries to write with this load's own, in the same transaction (a batch of
    /// pushed requests, each applied once under its own idempotency key): each is recorded as
    /// applied with its rows when the load commits; one the ledger has already stays as it is.
    fn also_record(&mut self, entries: Vec<(FileRef, u64)>);
}

/// A row in owned form, for the trip to a sink's writer thread.
#[derive(Debug, Clone)]
pub struct OwnedRow {
    pub id: String,
    pub product_key: String,
    /// The attributes as a JSON object.
    pub attributes: String,
}

impl OwnedRow {
    /// `size_hint`: the previous row's JSON length, so one allocation usually fits.
    pub fn from_row(row: &crate::validate::Row<'_>, size_hint: usize) -> OwnedRow {
        let mut json = Vec::with_capacity(size_hint + 16);
        row.write_attributes_json(&mut json);
        OwnedRow {
            id: row.id().to_string(),
            product_key: row.product_key().to_string(),
            // The writer emits only str contents and ASCII, so this never loses anything.
            attributes: String::from_utf8(json)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        }
    }
}

/// The configured sink, whichever it is.
#[derive(Debug, Clone)]
pub enum AnySink {
    Sqlite(SqliteSink),
    Postgres(PgSink),
    Http(HttpSink),
}

/// A file load of [`AnySink`].
pub enum AnyLoad {
    Sqlite(SqliteLoad),
    Database(BatchedLoad),
    Http(HttpLoad),
}

impl AnySink {
    /// Opens the sink of checked settings; `ledger` is the ledger of sinks without their own.
    pub async fn open(
        settings: &SinkSettings,
        egress: crate::egress::EgressPolicy,
        ledger: std::sync::Arc<dyn Ledger>,
    ) -> Result<AnySink, SinkError> {
        match settings {
            SinkSettings::Sqlite(path) => Ok(AnySink::Sqlite(SqliteSink::open(path).await?)),
            SinkSettings::Http(http) => Ok(AnySink::Http(HttpSink::new(http, egress, ledger)?)),
            SinkSettings::Postgres(database) => {
                let pool = crate::postgres::connect(
                    &database.url,
                    database.password.as_ref(),
                    database.pool_size,
                    postgres::MIGRATIONS,
                )
                .await?;
                Ok(AnySink::Postgres(PgSink::new(pool, &database.url)))
            }
        }
    }
}

impl AnySink {
    /// The sink for files read from a local disk (`dropfolder import FILE`): SQLite applies
    /// their rows while they are validated (see [`SqliteSink::applying_while_reading`]); the
    /// other sinks are unchanged.
    pub fn for_local_files(self) -> AnySink {
        match self {
            AnySink::Sqlite(sink) => AnySink::Sqlite(sink.applying_while_reading()),
            other => other,
        }
    }
}

impl Sink for AnySink {
    type Load = AnyLoad;

    fn transactional(&self) -> bool {
        match self {
            AnySink::Sqlite(sink) => sink.transactional(),
            AnySink::Postgres(sink) => sink.transactional(),
            AnySink::Http(sink) => sink.transactional(),
        }
    }

    async fn applied(&self, file: &FileRef) -> Result<Option<AppliedFile>, SinkError> {
        match self {
            AnySink::Sqlite(sink) => sink.applied(file).await,
            AnySink::Postgres(sink) => sink.applied(file).await,
            AnySink::Http(sink) => sink.applied(file).await,
        }
    }

    async fn begin(&self, file: &FileRef, updated_at: DateTime<Utc>) -> Result<AnyLoad, SinkError> {
        match self {
            AnySink::Sqlite(sink) => sink.begin(file, updated_at).await.map(AnyLoad::Sqlite),
            AnySink::Postgres(sink) => sink.begin(file, updated_at).await.map(AnyLoad::Database),
            AnySink::Http(sink) => sink.begin(file, updated_at).await.map(AnyLoad::Http),
        }
    }
}

impl RowConsumer for AnyLoad {
    type Error = SinkError;

    async fn accept(&mut self, row: &crate::validate::Row<'_>) -> Result<(), SinkError> {
        match self {
            AnyLoad::Sqlite(load) => load.accept(row).await,
            AnyLoad::Database(load) => load.accept(row).await,
            AnyLoad::Http(load) => load.accept(row).await,
        }
    }
}

impl FileLoad for AnyLoad {
    async fn commit(self, rows: u64, version: &Version) -> Result<Committed, SinkError> {
        match self {
            AnyLoad::Sqlite(load) => load.commit(rows, version).await,
            AnyLoad::Database(load) => load.commit(rows, version).await,
            AnyLoad::Http(load) => load.commit(rows, version).await,
        }
    }

    async fn rollback(self) -> Result<(), SinkError> {
        match self {
            AnyLoad::Sqlite(load) => load.rollback().await,
            AnyLoad::Database(load) => load.rollback().await,
            AnyLoad::Http(load) => load.rollback().await,
        }
    }

    fn also_record(&mut self, entries: Vec<(FileRef, u64)>) {
        match self {
            AnyLoad::Sqlite(load) => load.also_record(entries),
            AnyLoad::Database(load) => load.also_record(entries),
            AnyLoad::Http(load) => load.also_record(entries),
        }
    }
}
