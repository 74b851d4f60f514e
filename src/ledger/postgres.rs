//! The ledger in PostgreSQL, on a pooled client or inside the caller's transaction. Entries
//! are stamped with the transaction's `now()`.

use chrono::Utc;
use deadpool_postgres::GenericClient;

use super::{AppliedFile, Committed, FileRef, Table};

/// The ledger table, `CREATE TABLE IF NOT EXISTS $name (...)`, for the migrations of the
/// database that keeps it (`file_ledger` beside the records, `state_ledger` in the state).
macro_rules! create_table {
    ($name:literal) => {
        concat!(
            "CREATE TABLE IF NOT EXISTS ",
            $name,
            " (
        integration text NOT NULL,
        file_key text NOT NULL,
        version text NOT NULL,
        rows bigint NOT NULL,
        applied_at timestamptz NOT NULL,
        PRIMARY KEY (integration, file_key, version)
    );"
        )
    };
}
pub(crate) use create_table;

/// The entry for `file`, if any.
pub async fn applied(
    client: &impl GenericClient,
    table: Table,
    file: &FileRef,
) -> Result<Option<AppliedFile>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT rows, applied_at FROM {} WHERE integration = $1 AND file_key = $2 AND version = $3",
        table.name()
    );
    let row = client
        .query_opt(
            &sql,
            &[&file.integration, &file.key, &file.version.as_str()],
        )
        .await?;
    Ok(row.map(|row| AppliedFile {
        rows: row.get::<_, i64>(0) as u64,
        applied_at: row.get(1),
    }))
}

/// Records `file` as applied, unless the ledger has it (applied meanwhile by another
/// replica, or before a crash): then the entry there, and the caller keeps nothing else.
pub async fn record(
    client: &impl GenericClient,
    table: Table,
    file: &FileRef,
    rows: u64,
) -> Result<Committed, tokio_postgres::Error> {
    let sql = format!(
        "INSERT INTO {} (integration, file_key, version, rows, applied_at)
         VALUES ($1, $2, $3, $4, now()) ON CONFLICT DO NOTHING",
        table.name()
    );
    let inserted = client
        .execute(
            &sql,
            &[
                &file.integration,
                &file.key,
                &file.version.as_str(),
                &(rows as i64),
            ],
        )
        .await?;
    if inserted == 1 {
        return Ok(Committed::Applied);
    }
    let prior = applied(client, table, file).await?;
    // Outside a transaction the entry may be gone again by now; it was there a moment ago.
    Ok(Committed::AlreadyApplied(prior.unwrap_or(AppliedFile {
        rows,
        applied_at: Utc::now(),
    })))
}
