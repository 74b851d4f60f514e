//! What dropfolder remembers between runs, apart from the records: the journal of drops
//! (which folder goes to which `processed/` target, and how far it got), and each
//! integration's last scan and result. The journal is what lets a run that died half-way be
//! finished by the next one without choosing a second target or applying anything twice.
//!
//! Implementations: [`sqlite`] (the embedded default) and [`postgres`] (shared by replicas).

pub(crate) mod clock;
pub mod postgres;
pub(crate) mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ledger::Ledger;

pub use clock::{Clock, ManualClock, SystemClock};
pub use postgres::PgState;
pub use sqlite::SqliteState;

/// One object of a drop, as listed when the drop began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub key: String,
    pub version: String,
    pub size: u64,
}

/// How far a drop got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Files are being loaded and copied; `status.txt` may not exist yet.
    Loading,
    /// `status.txt` is written and the result recorded; originals are being deleted.
    Reported,
    /// Originals deleted.
    Done,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::Loading => "loading",
            Stage::Reported => "reported",
            Stage::Done => "done",
        }
    }

    fn parse(s: &str) -> Option<Stage> {
        match s {
            "loading" => Some(Stage::Loading),
            "reported" => Some(Stage::Reported),
            "done" => Some(Stage::Done),
            _ => None,
        }
    }
}

/// A folder of `current/` on its way to `processed/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournaledDrop {
    pub integration: String,
    /// `current/dt=20210228/`
    pub folder: String,
    /// `processed/20210228/` or `processed/20210228-2/`
    pub target: String,
    /// Every object of the folder when the drop began, in key order.
    pub manifest: Vec<ManifestEntry>,
    pub stage: Stage,
    pub started_at: DateTime<Utc>,
    /// The fencing token of the lease this replica holds on the integration: the journal
    /// refuses writes for a drop whose lease another replica has taken over.
    pub lease: Option<i64>,
}

/// What a claim on an integration gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    Granted(Lease),
    /// Another replica holds a live claim.
    HeldBy(String),
}

/// A replica's claim on an integration while it works on it. Another replica may take it
/// over once it expires; its token is then larger, and fences the old holder out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub integration: String,
    pub holder: String,
    pub token: i64,
}

/// A drop's result, as the customer was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropResult {
    pub success: bool,
    pub records: u64,
    /// The `status.txt` text.
    pub message: String,
}

/// A reported drop as the customer was told, for the status page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DropSummary {
    pub integration: String,
    /// `processed/20210228/`
    pub target: String,
    pub success: bool,
    pub records: u64,
    /// The `status.txt` text.
    pub message: String,
    pub reported_at: DateTime<Utc>,
}

/// One integration's scan: when, and what was wrong, if anything.
#[derive(Debug, Clone, Default)]
pub struct ScanRecord {
    pub integration: String,
    pub at: DateTime<Utc>,
    /// Why the integration could not be scanned or a folder not finished.
    pub error: Option<String>,
    /// Things the customer should know that are not errors (a non-date folder).
    pub notices: Vec<String>,
}

/// What is remembered of an integration, for `dropfolder status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntegrationState {
    pub integration: String,
    pub last_scan_at: Option<DateTime<Utc>>,
    /// When the state first saw the integration (its first scan or drop): the time it counts
    /// as configured, from which an integration that never received data turns stale.
    pub first_seen_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub notices: Vec<String>,
    /// When a folder was last finished, and its result.
    pub last_data_at: Option<DateTime<Utc>>,
    pub last_target: Option<String>,
    pub last_success: Option<bool>,
    pub last_message: Option<String>,
    /// The last callback that could not be delivered, if the newest attempt failed.
    pub callback_error: Option<String>,
}

/// A callback to deliver, recorded with the result of its folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRequest {
    pub integration: String,
    pub folder_path: String,
    pub success: bool,
    pub message: String,
    /// The same for every attempt at this folder's callback, so a receiver can drop repeats.
    pub idempotency_key: String,
}

/// A callback not yet delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCallback {
    pub id: i64,
    pub request: CallbackRequest,
    /// Deliveries tried so far (each of several HTTP attempts).
    pub deliveries: u32,
}

/// What one delivery of a callback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackOutcome {
    Delivered,
    /// Try again from `retry_at`.
    Failed {
        error: String,
        retry_at: DateTime<Utc>,
    },
    /// Refused for good (a 4xx other than 408/429, or no callback configured any more).
    Abandoned {
        error: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "integration '{integration}': another replica took over the lease (token {token} is no longer current)"
    )]
    LeaseLost { integration: String, token: i64 },
    #[error("state database {database}: {source}")]
    Database {
        database: String,
        #[source]
        source: DatabaseError,
    },
    #[error("state task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// A saved row that cannot be read back: never replaced by a default, which would make
    /// a half-done drop look like a new one (or an old one look new).
    #[error("state of integration '{integration}'{}: {what}: {source}", folder_part(folder.as_deref()))]
    Corrupt {
        integration: String,
        folder: Option<String>,
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What the database driver said.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", crate::postgres::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("{}", crate::postgres::describe(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
}

fn folder_part(folder: Option<&str>) -> String {
    folder.map(|f| format!(", folder {f}")).unwrap_or_default()
}

/// The words of a value that is not what was saved.
#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not one of the values written")]
struct Unexpected(String);

fn corrupt(
    integration: &str,
    folder: Option<&str>,
    what: &'static str,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> StateError {
    StateError::Corrupt {
        integration: integration.to_string(),
        folder: folder.map(str::to_string),
        what,
        source: source.into(),
    }
}

/// A journal row as the database returns it, before it is checked.
struct SavedDrop {
    folder: String,
    target: String,
    manifest: String,
    stage: String,
    /// Text in SQLite (checked here), a `timestamptz` in PostgreSQL.
    started_at: Result<DateTime<Utc>, String>,
}

impl SavedDrop {
    fn read(self, integration: &str) -> Result<JournaledDrop, StateError> {
        let folder = Some(self.folder.as_str());
        let manifest = serde_json::from_str::<Vec<ManifestEntry>>(&self.manifest)
            .map_err(|e| corrupt(integration, folder, "unreadable manifest", e))?;
        let stage = Stage::parse(&self.stage)
            .ok_or_else(|| corrupt(integration, folder, "unknown stage", Unexpected(self.stage)))?;
        let started_at = self
            .started_at
            .map_err(|s| corrupt(integration, folder, "unreadable start time", Unexpected(s)))?;
        Ok(JournaledDrop {
            integration: integration.to_string(),
            folder: self.folder,
            target: self.target,
            manifest,
            stage,
            started_at,
            lease: None,
        })
    }
}

/// An integration's saved notices (a JSON list of strings).
fn read_notices(integration: &str, saved: &str) -> Result<Vec<String>, StateError> {
    serde_json::from_str(saved).map_err(|e| corrupt(integration, None, "unreadable notices", e))
}

/// The state database. It is also the [`Ledger`] of a sink that keeps none itself (HTTP).
#[async_trait]
pub trait StateStore: Ledger + Send + Sync + std::fmt::Debug {
    /// Claims `integration` for `ttl` if no other replica holds a live claim, or if the one
    /// that does is `dead` (known to have died: see `worker`).
    async fn claim(
        &self,
        integration: &str,
        holder: &str,
        ttl: std::time::Duration,
        dead: Option<&str>,
    ) -> Result<Claim, StateError>;

    /// Extends a claim; `false` if it was taken over.
    async fn renew(&self, lease: &Lease, ttl: std::time::Duration) -> Result<bool, StateError>;

    /// Gives a claim up (it expires at once; the token stays, so tokens only grow).
    async fn release(&self, lease: &Lease) -> Result<(), StateError>;

    /// The integrations with a drop not yet done or a callback due at `now`: one read tells a
    /// whole run which integrations need more than a LIST (partial indexes keep it small).
    async fn integrations_with_work(
        &self,
        now: DateTime<Utc>,
    ) -> Result<std::collections::HashSet<String>, StateError>;

    /// Drops of `integration` not yet done, oldest first.
    async fn open_drops(&self, integration: &str) -> Result<Vec<JournaledDrop>, StateError>;

    /// Records a new drop (stage `Loading`).
    async fn begin_drop(&self, drop: &JournaledDrop) -> Result<(), StateError>;

    /// Records the drop's result, moves it to `Reported`, and queues its callback, all in one
    /// transaction: a finished folder never loses its callback.
    async fn report_drop(
        &self,
        drop: &JournaledDrop,
        result: &DropResult,
        callback: Option<&CallbackRequest>,
    ) -> Result<(), StateError>;

    /// Moves the drop to `Done`.
    async fn finish_drop(&self, drop: &JournaledDrop) -> Result<(), StateError>;

    /// Records a scan of an integration.
    async fn record_scan(&self, scan: &ScanRecord) -> Result<(), StateError>;

    /// Records many scans at once: the scans of integrations with nothing to do are kept
    /// and written together, one write per run instead of one per integration.
    async fn record_scans(&self, scans: &[ScanRecord]) -> Result<(), StateError> {
        for scan in scans {
            self.record_scan(scan).await?;
        }
        Ok(())
    }

    /// Records a batch of pushed records applied at `at`: the integration's last data and last
    /// contact, its error cleared (a push integration has no scan and no folder).
    async fn record_push(&self, integration: &str, at: DateTime<Utc>) -> Result<(), StateError>;

    /// Every integration the state has seen, by name.
    async fn integrations(&self) -> Result<Vec<IntegrationState>, StateError>;

    /// The folder (or poll window) `integration` last reported, if any: one row read, for
    /// work that asks about one integration among thousands (the poller's next window).
    async fn last_target(&self, integration: &str) -> Result<Option<String>, StateError>;

    /// The newest `per_integration` reported drops of every integration, by integration and
    /// newest first (the status page's history).
    async fn recent_drops(&self, per_integration: usize) -> Result<Vec<DropSummary>, StateError>;

    /// Callbacks of `integration` due for delivery at `now`, oldest first.
    async fn due_callbacks(
        &self,
        integration: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<PendingCallback>, StateError>;

    /// Records a delivery of a pending callback.
    async fn callback_delivery(&self, id: i64, outcome: &CallbackOutcome)
    -> Result<(), StateError>;
}
