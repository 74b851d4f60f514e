//! The state in a SQLite file (by default the same file as the records).
//!
//! Every write transaction begins `IMMEDIATE`: it takes the write lock first, waiting its
//! turn on the busy timeout. A deferred one reads, then asks for the write lock, and in WAL
//! mode that upgrade is refused at once ("database is locked") when another writer got in
//! between, whatever the timeout.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::ledger::{self, AppliedFile, Committed, FileRef, Ledger, LedgerError, Table};

use super::clock::{Clock, SystemClock};
use super::{
    CallbackOutcome, CallbackRequest, Claim, DropResult, DropSummary, IntegrationState,
    JournaledDrop, Lease, PendingCallback, SavedDrop, ScanRecord, Stage, StateError, StateStore,
    read_notices,
};

pub const MIGRATIONS: &[(i64, &str)] = &[
    (
        101,
        "CREATE TABLE drops (
        integration TEXT NOT NULL,
        folder TEXT NOT NULL,
        target TEXT NOT NULL,
        manifest TEXT NOT NULL,
        stage TEXT NOT NULL,
        started_at TEXT NOT NULL,
        success INTEGER,
        records INTEGER,
        message TEXT,
        reported_at TEXT,
        done_at TEXT,
        PRIMARY KEY (integration, target)
    );
    CREATE INDEX drops_open ON drops (integration, stage);
    CREATE TABLE integration_status (
        integration TEXT PRIMARY KEY,
        last_scan_at TEXT,
        last_error TEXT,
        notices TEXT NOT NULL DEFAULT '[]',
        last_data_at TEXT,
        last_target TEXT,
        last_success INTEGER,
        last_message TEXT
    );",
    ),
    (
        102,
        concat!(
            "CREATE TABLE callbacks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        integration TEXT NOT NULL,
        folder_path TEXT NOT NULL,
        success INTEGER NOT NULL,
        message TEXT NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        deliveries INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT,
        state TEXT NOT NULL DEFAULT 'pending',
        created_at TEXT NOT NULL,
        done_at TEXT
    );
    CREATE INDEX callbacks_due ON callbacks (integration, state, next_attempt_at);
    ALTER TABLE integration_status ADD COLUMN callback_error TEXT;
    ",
            crate::ledger::sqlite::create_table!("state_ledger")
        ),
    ),
    (
        103,
        "CREATE TABLE leases (
        integration TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        token INTEGER NOT NULL,
        expires_at TEXT NOT NULL
    );",
    ),
    (
        104,
        // Integrations seen before this column count as first seen at their last scan.
        "ALTER TABLE integration_status ADD COLUMN first_seen_at TEXT;
    UPDATE integration_status SET first_seen_at = COALESCE(last_scan_at, last_data_at);
    CREATE INDEX drops_reported ON drops (integration, reported_at);",
    ),
    (
        105,
        "CREATE INDEX drops_not_done ON drops (integration) WHERE stage <> 'done';
    CREATE INDEX callbacks_pending ON callbacks (next_attempt_at) WHERE state = 'pending';",
    ),
];

/// Connections kept open between calls. Opening one costs a file open, the WAL and page-size
/// pragmas and the migration check: at 1,000 integrations a run, reopening per call was most
/// of an idle run's time.
const IDLE_CONNECTIONS: usize = 8;

#[derive(Debug, Clone)]
pub struct SqliteState {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    /// Open connections not in use; a call takes one (or opens one) and puts it back.
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl SqliteState {
    pub async fn open(path: &Path) -> Result<SqliteState, StateError> {
        let state = SqliteState {
            path: path.to_path_buf(),
            clock: Arc::new(SystemClock),
            idle: Arc::default(),
        };
        state.with(|_| Ok(())).await?;
        Ok(state)
    }

    /// The same state, going by `clock` (tests of lease expiry).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> SqliteState {
        SqliteState { clock, ..self }
    }

    /// Runs `work` on a connection, off the async workers.
    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StateError> {
        let (path, idle) = (self.path.clone(), self.idle.clone());
        let result = tokio::task::spawn_blocking(move || {
            let reused = idle.lock().ok().and_then(|mut idle| idle.pop());
            let mut conn = match reused {
                Some(conn) => conn,
                None => crate::sqlite::open(&path, MIGRATIONS)?,
            };
            let result = work(&mut conn);
            // A transaction `work` left open (it cannot: rusqlite rolls back on drop) would
            // hold the write lock in the pool; such a connection is closed instead.
            if conn.is_autocommit() {
                if let Ok(mut idle) = idle.lock() {
                    if idle.len() < IDLE_CONNECTIONS {
                        idle.push(conn);
                    }
                }
            }
            result
        })
        .await;
        match result {
            Ok(result) => result.map_err(|e| StateError::Database {
                database: self.path.display().to_string(),
                source: e.into(),
            }),
            Err(e) => Err(StateError::Task(e)),
        }
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

/// A time of an integration's status, if one was saved; one that does not parse is corrupt.
fn saved_time(
    integration: &str,
    what: &'static str,
    saved: Option<String>,
) -> Result<Option<DateTime<Utc>>, StateError> {
    saved
        .map(|text| {
            DateTime::parse_from_rfc3339(&text)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|e| super::corrupt(integration, None, what, e))
        })
        .transpose()
}

fn parse_time(s: Option<String>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|d| d.with_timezone(&Utc))
}

#[async_trait]
impl StateStore for SqliteState {
    async fn integrations_with_work(
        &self,
        now: DateTime<Utc>,
    ) -> Result<std::collections::HashSet<String>, StateError> {
        let now = time(now);
        self.with(move |conn| {
            let mut stmt = conn.prepare(INTEGRATIONS_WITH_WORK)?;
            let rows = stmt.query_map([now], |row| row.get(0))?;
            rows.collect()
        })
        .await
    }

    async fn open_drops(&self, integration: &str) -> Result<Vec<JournaledDrop>, StateError> {
        let owned = integration.to_string();
        let saved = self
            .with(move |conn| {
                let mut stmt = conn.prepare(
                    "SELECT folder, target, manifest, stage, started_at FROM drops
                     WHERE integration = ?1 AND stage <> 'done' ORDER BY started_at, folder",
                )?;
                let rows = stmt.query_map([&owned], |row| {
                    let started_at: String = row.get(4)?;
                    Ok(SavedDrop {
                        folder: row.get(0)?,
                        target: row.get(1)?,
                        manifest: row.get(2)?,
                        stage: row.get(3)?,
                        started_at: parse_time(Some(started_at.clone())).ok_or(started_at),
                    })
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        saved
            .into_iter()
            .map(|saved| saved.read(integration))
            .collect()
    }

    async fn begin_drop(&self, drop: &JournaledDrop) -> Result<(), StateError> {
        let fence = drop.clone();
        let drop = drop.clone();
        let manifest = serde_json::to_string(&drop.manifest).unwrap_or_else(|_| "[]".into());
        let held = self
            .with(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if !holds(&tx, &drop)? {
                    return Ok(false);
                }
                tx.execute(
                    "INSERT INTO drops (integration, folder, target, manifest, stage, started_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        drop.integration,
                        drop.folder,
                        drop.target,
                        manifest,
                        Stage::Loading.as_str(),
                        time(drop.started_at)
                    ],
                )?;
                tx.commit().map(|()| true)
            })
            .await?;
        fenced(held, &fence)
    }

    async fn report_drop(
        &self,
        drop: &JournaledDrop,
        result: &DropResult,
        callback: Option<&CallbackRequest>,
    ) -> Result<(), StateError> {
        let fence = drop.clone();
        let (drop, result, callback) = (drop.clone(), result.clone(), callback.cloned());
        let now = self.clock.now();
        let held = self.with(move |conn| {
            let now = time(now);
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if !holds(&tx, &drop)? {
                return Ok(false);
            }
            tx.execute(
                "UPDATE drops SET stage = 'reported', success = ?3, records = ?4, message = ?5, reported_at = ?6
                 WHERE integration = ?1 AND target = ?2",
                params![drop.integration, drop.target, result.success, result.records as i64, result.message, now],
            )?;
            tx.execute(
                "INSERT INTO integration_status (integration, last_data_at, last_target, last_success, last_message, first_seen_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?2)
                 ON CONFLICT (integration) DO UPDATE SET last_data_at = ?2, last_target = ?3,
                    last_success = ?4, last_message = ?5",
                params![drop.integration, now, drop.target, result.success, result.message],
            )?;
            if let Some(cb) = callback {
                // A repeat of the same step (after a crash) finds the callback already queued.
                tx.execute(
                    "INSERT INTO callbacks (integration, folder_path, success, message, idempotency_key, next_attempt_at, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT (idempotency_key) DO NOTHING",
                    params![cb.integration, cb.folder_path, cb.success, cb.message, cb.idempotency_key, now],
                )?;
            }
            tx.commit().map(|()| true)
        })
        .await?;
        fenced(held, &fence)
    }

    async fn finish_drop(&self, drop: &JournaledDrop) -> Result<(), StateError> {
        let fence = drop.clone();
        let drop = drop.clone();
        let now = self.clock.now();
        let held = self
            .with(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if !holds(&tx, &drop)? {
                    return Ok(false);
                }
                tx.execute(
                    "UPDATE drops SET stage = 'done', done_at = ?3 WHERE integration = ?1 AND target = ?2",
                    params![drop.integration, drop.target, time(now)],
                )?;
                tx.commit().map(|()| true)
            })
            .await?;
        fenced(held, &fence)
    }

    async fn claim(
        &self,
        integration: &str,
        holder: &str,
        ttl: std::time::Duration,
        dead: Option<&str>,
    ) -> Result<Claim, StateError> {
        let (integration, holder, dead) = (
            integration.to_string(),
            holder.to_string(),
            dead.map(str::to_string),
        );
        let now = self.clock.now();
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: Option<(String, i64, String)> = tx
                .query_row(
                    "SELECT holder, token, expires_at FROM leases WHERE integration = ?1",
                    [&integration],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?;
            let token = match current {
                None => 1,
                Some((by, token, until))
                    if by == holder
                        || Some(&by) == dead.as_ref()
                        || parse_time(Some(until.clone())).is_none_or(|t| t <= now) =>
                {
                    token + 1
                }
                Some((by, _, _)) => return Ok(Claim::HeldBy(by)),
            };
            let until = now + chrono::Duration::from_std(ttl).unwrap_or_default();
            tx.execute(
                "INSERT INTO leases (integration, holder, token, expires_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (integration) DO UPDATE SET holder = ?2, token = ?3, expires_at = ?4",
                params![integration, holder, token, time(until)],
            )?;
            tx.commit()?;
            Ok(Claim::Granted(Lease {
                integration,
                holder,
                token,
            }))
        })
        .await
    }

    async fn renew(&self, lease: &Lease, ttl: std::time::Duration) -> Result<bool, StateError> {
        let lease = lease.clone();
        let now = self.clock.now();
        self.with(move |conn| {
            let until = now + chrono::Duration::from_std(ttl).unwrap_or_default();
            conn.execute(
                "UPDATE leases SET expires_at = ?3 WHERE integration = ?1 AND token = ?2",
                params![lease.integration, lease.token, time(until)],
            )
            .map(|updated| updated == 1)
        })
        .await
    }

    async fn release(&self, lease: &Lease) -> Result<(), StateError> {
        let lease = lease.clone();
        let now = self.clock.now();
        self.with(move |conn| {
            conn.execute(
                "UPDATE leases SET expires_at = ?3 WHERE integration = ?1 AND token = ?2",
                params![lease.integration, lease.token, time(now)],
            )
            .map(drop_count)
        })
        .await
    }

    async fn record_scan(&self, scan: &ScanRecord) -> Result<(), StateError> {
        let scan = scan.clone();
        let notices = serde_json::to_string(&scan.notices).unwrap_or_else(|_| "[]".into());
        self.with(move |conn| {
            conn.execute(
                RECORD_SCAN,
                params![scan.integration, time(scan.at), scan.error, notices],
            )
            .map(drop_count)
        })
        .await
    }

    async fn record_push(&self, integration: &str, at: DateTime<Utc>) -> Result<(), StateError> {
        let integration = integration.to_string();
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO integration_status
                    (integration, last_scan_at, last_error, last_data_at, last_target, last_success, first_seen_at)
                 VALUES (?1, ?2, NULL, ?2, 'push', 1, ?2)
                 ON CONFLICT (integration) DO UPDATE SET last_scan_at = ?2, last_error = NULL,
                    last_data_at = ?2, last_target = 'push', last_success = 1,
                    first_seen_at = COALESCE(first_seen_at, ?2)",
                params![integration, time(at)],
            )
            .map(drop_count)
        })
        .await
    }

    async fn record_scans(&self, scans: &[ScanRecord]) -> Result<(), StateError> {
        let scans = scans.to_vec();
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut upsert = tx.prepare(RECORD_SCAN)?;
                for scan in &scans {
                    let notices =
                        serde_json::to_string(&scan.notices).unwrap_or_else(|_| "[]".into());
                    upsert.execute(params![
                        scan.integration,
                        time(scan.at),
                        scan.error,
                        notices
                    ])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn due_callbacks(
        &self,
        integration: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<PendingCallback>, StateError> {
        self.callbacks_impl(integration, now).await
    }

    async fn callback_delivery(
        &self,
        id: i64,
        outcome: &CallbackOutcome,
    ) -> Result<(), StateError> {
        let outcome = outcome.clone();
        let now = self.clock.now();
        self.with(move |conn| {
            let now = time(now);
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (state, retry_at, error) = match &outcome {
                CallbackOutcome::Delivered => ("delivered", now.clone(), None),
                CallbackOutcome::Failed { error, retry_at } => ("pending", time(*retry_at), Some(error.clone())),
                CallbackOutcome::Abandoned { error } => ("abandoned", now.clone(), Some(error.clone())),
            };
            let done = (state != "pending").then(|| now.clone());
            tx.execute(
                "UPDATE callbacks SET deliveries = deliveries + 1, state = ?2, next_attempt_at = ?3, last_error = ?4, done_at = ?5 WHERE id = ?1",
                params![id, state, retry_at, error, done],
            )?;
            tx.execute(
                "UPDATE integration_status SET callback_error = ?2
                 WHERE integration = (SELECT integration FROM callbacks WHERE id = ?1)",
                params![id, error],
            )?;
            tx.commit()
        })
        .await
    }

    async fn recent_drops(&self, per_integration: usize) -> Result<Vec<DropSummary>, StateError> {
        let limit = i64::try_from(per_integration).unwrap_or(i64::MAX);
        self.with(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT integration, target, success, records, message, reported_at FROM (
                    SELECT integration, target, success, records, message, reported_at,
                           row_number() OVER (PARTITION BY integration ORDER BY reported_at DESC, target DESC) AS n
                    FROM drops WHERE reported_at IS NOT NULL)
                 WHERE n <= ?1 ORDER BY integration, reported_at DESC, target DESC",
            )?;
            let rows = stmt.query_map(params![limit], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<bool>>(2)?.unwrap_or(false),
                    row.get::<_, Option<i64>>(3)?.unwrap_or(0).max(0) as u64,
                    row.get::<_, Option<String>>(4)?.unwrap_or_default(),
                    row.get::<_, String>(5)?,
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })
        .await?
        .into_iter()
        .map(|(integration, target, success, records, message, reported_at)| {
            // A report time that does not parse is corrupt, as every saved time is.
            let reported_at = DateTime::parse_from_rfc3339(&reported_at)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| super::corrupt(&integration, Some(&target), "report time", e))?;
            Ok(DropSummary {
                integration,
                target,
                success,
                records,
                message,
                reported_at,
            })
        })
        .collect()
    }

    async fn last_target(&self, integration: &str) -> Result<Option<String>, StateError> {
        let owned = integration.to_string();
        self.with(move |conn| {
            conn.query_row(
                "SELECT last_target FROM integration_status WHERE integration = ?1",
                [&owned],
                |row| row.get(0),
            )
            .optional()
            .map(Option::flatten)
        })
        .await
    }

    async fn integrations(&self) -> Result<Vec<IntegrationState>, StateError> {
        let saved = self
            .with(|conn| {
                let mut stmt = conn.prepare(
                    "SELECT integration, last_scan_at, last_error, notices, last_data_at, last_target,
                            last_success, last_message, callback_error, first_seen_at
                     FROM integration_status ORDER BY integration",
                )?;
                let rows = stmt.query_map([], |row| {
                    let state = IntegrationState {
                        integration: row.get(0)?,
                        last_scan_at: None,
                        last_error: row.get(2)?,
                        notices: Vec::new(),
                        last_data_at: None,
                        last_target: row.get(5)?,
                        last_success: row.get(6)?,
                        last_message: row.get(7)?,
                        callback_error: row.get(8)?,
                        first_seen_at: None,
                    };
                    let saved: (String, Option<String>, Option<String>, Option<String>) =
                        (row.get(3)?, row.get(1)?, row.get(4)?, row.get(9)?);
                    Ok((state, saved))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        saved
            .into_iter()
            .map(
                |(mut state, (notices, last_scan_at, last_data_at, first_seen_at))| {
                    let integration = state.integration.as_str();
                    state.notices = read_notices(integration, &notices)?;
                    state.last_scan_at = saved_time(integration, "last scan time", last_scan_at)?;
                    state.last_data_at = saved_time(integration, "last data time", last_data_at)?;
                    state.first_seen_at =
                        saved_time(integration, "first seen time", first_seen_at)?;
                    Ok(state)
                },
            )
            .collect()
    }
}

/// The ledger of sinks without their own, in `state_ledger`.
#[async_trait]
impl Ledger for SqliteState {
    async fn applied(&self, file: &FileRef) -> Result<Option<AppliedFile>, LedgerError> {
        let file = file.clone();
        self.with(move |conn| ledger::sqlite::applied(conn, Table::State, &file))
            .await
            .map_err(|e| LedgerError::Store(Box::new(e)))
    }

    async fn record(&self, file: &FileRef, rows: u64) -> Result<Committed, LedgerError> {
        let file = file.clone();
        let now = self.clock.now();
        self.with(move |conn| ledger::sqlite::record(conn, Table::State, &file, rows, now))
            .await
            .map_err(|e| LedgerError::Store(Box::new(e)))
    }
}

fn drop_count(_: usize) {}

/// Each part answered from its partial index (`drops_not_done`, `callbacks_pending`).
const INTEGRATIONS_WITH_WORK: &str = "SELECT integration FROM drops WHERE stage <> 'done'
     UNION SELECT integration FROM callbacks WHERE state = 'pending' AND next_attempt_at <= ?1";

/// A scan's row; the first one also records when the integration was first seen.
const RECORD_SCAN: &str = "INSERT INTO integration_status
        (integration, last_scan_at, last_error, notices, first_seen_at)
     VALUES (?1, ?2, ?3, ?4, ?2)
     ON CONFLICT (integration) DO UPDATE SET last_scan_at = ?2, last_error = ?3, notices = ?4,
        first_seen_at = COALESCE(first_seen_at, ?2)";

/// Whether this replica still holds the lease its drop was begun under (always, without one).
fn holds(conn: &Connection, drop: &JournaledDrop) -> rusqlite::Result<bool> {
    let Some(token) = drop.lease else {
        return Ok(true);
    };
    let current: Option<i64> = conn
        .query_row(
            "SELECT token FROM leases WHERE integration = ?1",
            [&drop.integration],
            |row| row.get(0),
        )
        .optional()?;
    Ok(current == Some(token))
}

/// A fenced write that found the lease taken over.
fn fenced(held: bool, drop: &JournaledDrop) -> Result<(), StateError> {
    match (held, drop.lease) {
        (false, Some(token)) => Err(StateError::LeaseLost {
            integration: drop.integration.clone(),
            token,
        }),
        _ => Ok(()),
    }
}

impl SqliteState {
    async fn callbacks_impl(
        &self,
        integration: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<PendingCallback>, StateError> {
        let (integration, now) = (integration.to_string(), time(now));
        self.with(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, folder_path, success, message, idempotency_key, deliveries FROM callbacks
                 WHERE integration = ?1 AND state = 'pending' AND next_attempt_at <= ?2 ORDER BY id",
            )?;
            let rows = stmt.query_map(params![integration, now], |row| {
                Ok(PendingCallback {
                    id: row.get(0)?,
                    request: CallbackRequest {
                        integration: integration.clone(),
                        folder_path: row.get(1)?,
                        success: row.get(2)?,
                        message: row.get(3)?,
                        idempotency_key: row.get(4)?,
                    },
                    deliveries: row.get(5)?,
                })
            })?;
            rows.collect()
        })
        .await
    }
}
