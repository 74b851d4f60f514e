//! SQLite opened the same way everywhere (sink and state): WAL so readers never block the
//! writer, a busy timeout longer than any one file's load, `synchronous = FULL` so a
//! committed ledger row survives a power cut, and versioned migrations applied at open.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// How long a writer waits for another (another integration's file load) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(120);

/// Opens (creating if needed) the database at `path` and applies `migrations` that are not
/// applied yet, each `(version, sql)` in its own transaction.
pub fn open(path: &Path, migrations: &[(i64, &str)]) -> rusqlite::Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // A missing directory would otherwise be a confusing "unable to open database file".
        let _ = std::fs::create_dir_all(dir);
    }
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // 16 KiB pages: fewer, fuller B-tree pages for ~250-byte records (only takes effect when
    // the file is created). Measured 1.16 s vs 1.63 s for 350,000 upserts with 4 KiB pages.
    conn.pragma_update(None, "page_size", 16384)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")?;
    let applied = |conn: &Connection, version: &i64| -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
            [version],
            |row| row.get(0),
        )
    };
    for (version, sql) in migrations {
        // Checked with a read first: every open would otherwise queue for the write lock.
        if applied(&conn, version)? {
            continue;
        }
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if !applied(&tx, version)? {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                rusqlite::params![version, chrono::Utc::now().to_rfc3339()],
            )?;
        }
        tx.commit()?;
    }
    Ok(conn)
}

/// The file path of a `sqlite://PATH` URL, resolved against `base`.
pub fn path_of_url(url: &str, base: &Path) -> Option<std::path::PathBuf> {
    let path = Path::new(url.strip_prefix("sqlite://")?);
    Some(if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    })
}
