//! The state in a SQLite file (by default the same file as the records).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::{
    Drop, DropResult, IntegrationState, ManifestEntry, ScanRecord, Stage, StateError, StateStore,
};

pub const MIGRATIONS: &[(i64, &str)] = &[(
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
)];

#[derive(Debug, Clone)]
pub struct SqliteState {
    path: PathBuf,
}

impl SqliteState {
    pub async fn open(path: &Path) -> Result<SqliteState, StateError> {
        let state = SqliteState {
            path: path.to_path_buf(),
        };
        state.with(|_| Ok(())).await?;
        Ok(state)
    }

    /// Runs `work` on a connection, off the async workers.
    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StateError> {
        let path = self.path.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut conn = crate::sqlite::open(&path, MIGRATIONS)?;
            work(&mut conn)
        })
        .await;
        match result {
            Ok(result) => result.map_err(|e| StateError::Database {
                database: self.path.display().to_string(),
                message: e.to_string(),
            }),
            Err(e) => Err(StateError::Task(e.to_string())),
        }
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

fn parse_time(s: Option<String>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|d| d.with_timezone(&Utc))
}

#[async_trait]
impl StateStore for SqliteState {
    async fn open_drops(&self, integration: &str) -> Result<Vec<Drop>, StateError> {
        let integration = integration.to_string();
        self.with(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT folder, target, manifest, stage, started_at FROM drops
                 WHERE integration = ?1 AND stage <> 'done' ORDER BY started_at, folder",
            )?;
            let rows = stmt.query_map([&integration], |row| {
                let manifest: String = row.get(2)?;
                let stage: String = row.get(3)?;
                Ok(Drop {
                    integration: integration.clone(),
                    folder: row.get(0)?,
                    target: row.get(1)?,
                    manifest: serde_json::from_str::<Vec<ManifestEntry>>(&manifest)
                        .unwrap_or_default(),
                    stage: Stage::parse(&stage),
                    started_at: parse_time(row.get(4)?).unwrap_or_default(),
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn begin_drop(&self, drop: &Drop) -> Result<(), StateError> {
        let drop = drop.clone();
        let manifest = serde_json::to_string(&drop.manifest).unwrap_or_else(|_| "[]".into());
        self.with(move |conn| {
            conn.execute(
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
            )
            .map(drop_count)
        })
        .await
    }

    async fn report_drop(&self, drop: &Drop, result: &DropResult) -> Result<(), StateError> {
        let (drop, result) = (drop.clone(), result.clone());
        self.with(move |conn| {
            let now = time(Utc::now());
            let tx = conn.transaction()?;
            tx.execute(
                "UPDATE drops SET stage = 'reported', success = ?3, records = ?4, message = ?5, reported_at = ?6
                 WHERE integration = ?1 AND target = ?2",
                params![drop.integration, drop.target, result.success, result.records as i64, result.message, now],
            )?;
            tx.execute(
                "INSERT INTO integration_status (integration, last_data_at, last_target, last_success, last_message)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (integration) DO UPDATE SET last_data_at = ?2, last_target = ?3,
                    last_success = ?4, last_message = ?5",
                params![drop.integration, now, drop.target, result.success, result.message],
            )?;
            tx.commit()
        })
        .await
    }

    async fn finish_drop(&self, drop: &Drop) -> Result<(), StateError> {
        let drop = drop.clone();
        self.with(move |conn| {
            conn.execute(
                "UPDATE drops SET stage = 'done', done_at = ?3 WHERE integration = ?1 AND target = ?2",
                params![drop.integration, drop.target, time(Utc::now())],
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
                "INSERT INTO integration_status (integration, last_scan_at, last_error, notices)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (integration) DO UPDATE SET last_scan_at = ?2, last_error = ?3, notices = ?4",
                params![scan.integration, time(scan.at), scan.error, notices],
            )
            .map(drop_count)
        })
        .await
    }

    async fn integrations(&self) -> Result<Vec<IntegrationState>, StateError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT integration, last_scan_at, last_error, notices, last_data_at, last_target,
                        last_success, last_message
                 FROM integration_status ORDER BY integration",
            )?;
            let rows = stmt.query_map([], |row| {
                let notices: String = row.get(3)?;
                Ok(IntegrationState {
                    integration: row.get(0)?,
                    last_scan_at: parse_time(row.get(1)?),
                    last_error: row.get(2)?,
                    notices: serde_json::from_str(&notices).unwrap_or_default(),
                    last_data_at: parse_time(row.get(4)?),
                    last_target: row.get(5)?,
                    last_success: row.get(6)?,
                    last_message: row.get(7)?,
                })
            })?;
            rows.collect()
        })
        .await
    }
}

fn drop_count(_: usize) {}
