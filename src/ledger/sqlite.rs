//! The ledger in a SQLite database, on a connection or inside the caller's transaction.
//! Times are kept as RFC 3339 text, at full precision: recovery compares an entry's time
//! with a drop's start to tell that drop's loads from an earlier one's.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{AppliedFile, Committed, FileRef, Table};

/// The ledger table, `CREATE TABLE $name (...)`, for the migrations of the database that keeps
/// it (`file_ledger` beside the records, `state_ledger` in the state).
macro_rules! create_table {
    ($name:literal) => {
        concat!(
            "CREATE TABLE ",
            $name,
            " (
        integration TEXT NOT NULL,
        file_key TEXT NOT NULL,
        version TEXT NOT NULL,
        rows INTEGER NOT NULL,
        applied_at TEXT NOT NULL,
        PRIMARY KEY (integration, file_key, version)
    );"
        )
    };
}
pub(crate) use create_table;

/// A saved `applied_at` that does not parse: an error naming the file, never a default time.
#[derive(Debug, thiserror::Error)]
#[error("ledger entry of integration '{integration}', file {key}: unreadable applied_at: {source}")]
pub struct UnreadableTime {
    integration: String,
    key: String,
    #[source]
    source: chrono::ParseError,
}

/// The entry for `file`, if any.
pub fn applied(
    conn: &Connection,
    table: Table,
    file: &FileRef,
) -> rusqlite::Result<Option<AppliedFile>> {
    let sql = format!(
        "SELECT rows, applied_at FROM {} WHERE integration = ?1 AND file_key = ?2 AND version = ?3",
        table.name()
    );
    conn.prepare_cached(&sql)?
        .query_row(
            params![file.integration, file.key, file.version.as_str()],
            |row| {
                let applied_at: String = row.get(1)?;
                let applied_at = DateTime::parse_from_rfc3339(&applied_at)
                    .map(|d| d.with_timezone(&Utc))
                    .map_err(|source| {
                        rusqlite::Error::FromSqlConversionFailure(
                            1,
                            rusqlite::types::Type::Text,
                            Box::new(UnreadableTime {
                                integration: file.integration.clone(),
                                key: file.key.clone(),
                                source,
                            }),
                        )
                    })?;
                Ok(AppliedFile {
                    rows: row.get::<_, i64>(0)? as u64,
                    applied_at,
                })
            },
        )
        .optional()
}

/// Records `file` as applied at `at`, unless the ledger has it: then the entry there.
pub fn record(
    conn: &Connection,
    table: Table,
    file: &FileRef,
    rows: u64,
    at: DateTime<Utc>,
) -> rusqlite::Result<Committed> {
    let sql = format!(
        "INSERT INTO {} (integration, file_key, version, rows, applied_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT DO NOTHING",
        table.name()
    );
    let inserted = conn.prepare_cached(&sql)?.execute(params![
        file.integration,
        file.key,
        file.version.as_str(),
        rows as i64,
        at.to_rfc3339()
    ])?;
    if inserted == 1 {
        return Ok(Committed::Applied);
    }
    // The insert found the entry, so it is there: read in the same connection.
    applied(conn, table, file)?
        .map(Committed::AlreadyApplied)
        .ok_or(rusqlite::Error::QueryReturnedNoRows)
}
