//! One run: every integration scanned, integrations worked on concurrently (up to
//! `schedule.concurrency`, a finished one's slot taken by the next at once), one failing or
//! panicking integration never stopping the others; callbacks go to the [`Outbox`]'s own
//! workers so they never hold a slot. Within an integration, drops left open by an earlier
//! run are finished first, then ready folders oldest date first; a folder that cannot be
//! finished stops that integration, so a later date is never applied before an earlier one.

mod folder;
mod holder;
mod outbox;
mod poll;

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::callback::{CallbackError, Callbacks};
use crate::reload::{Changes, LiveSettings, same_integration};
use crate::settings::{Database, IntegrationSettings, Settings, Source};
use crate::sink::{AnySink, SinkError};
use crate::state::{Claim, ScanRecord, SqliteState, StateError, StateStore};
use crate::store::{ObjectStore, StoreError};
use crate::telemetry::{IntegrationScanned, LeaseHeld, LeftAlone, RunFailed, RunFinished};

pub use folder::{FolderError, FolderReport};
pub use outbox::Outbox;

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    // The cause is the source, which anyhow prints after the message: not repeated here.
    #[error("cannot open the sink")]
    Sink(#[from] SinkError),
    #[error("cannot open the state database")]
    State(#[from] StateError),
    #[error("cannot open the state database")]
    Postgres(#[from] crate::postgres::PgError),
    #[error(transparent)]
    Callback(#[from] crate::callback::CallbackError),
}

/// Why an integration could not be worked on.
#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    #[error("{}", bucket_failure(.0))]
    Store(#[from] StoreError),
    #[error("state: {0}")]
    State(#[from] StateError),
    #[error("folder {folder}: {error}")]
    Folder { folder: String, error: FolderError },
    /// Asked to scan an integration whose records do not arrive as files.
    #[error("has no bucket or folder to scan")]
    NoBucket,
    #[error("{0}")]
    Poll(#[from] crate::poll::PollError),
    /// A bug, not the customer's doing: caught so it stays this integration's failure.
    #[error("panicked: {0}")]
    Panicked(String),
}

/// A bucket's error as the integration's failure: most say the bucket could not be reached;
/// a listing too long to read was reached, and says so itself.
fn bucket_failure(error: &StoreError) -> String {
    match error {
        StoreError::TooMany { .. } => error.to_string(),
        _ => format!("cannot reach the bucket: {error}"),
    }
}

/// What a run did for one integration.
#[derive(Debug, Default)]
pub struct IntegrationReport {
    pub name: String,
    pub folders: Vec<FolderReport>,
    /// Set when the integration could not be scanned or a folder not finished.
    pub error: Option<String>,
    /// The config changed or removed the integration while it ran: the folder in hand was
    /// finished with the settings it started with, the rest wait for the settings in force.
    pub superseded: bool,
    pub notices: Vec<String>,
    /// Date folders still waiting for their `_SUCCESS`.
    pub waiting: Vec<String>,
    /// Why the integration was not worked on this run (another replica holds it).
    pub skipped: Option<String>,
    /// The run was asked to stop before it got to everything.
    pub stopped: bool,
}

/// What one run did.
#[derive(Debug, Default)]
pub struct RunReport {
    pub integrations: Vec<IntegrationReport>,
    pub elapsed: Duration,
}

impl RunReport {
    /// True when an integration could not be scanned or a folder not finished (exit 1).
    pub fn failed(&self) -> bool {
        self.integrations.iter().any(|i| i.error.is_some())
    }
}

/// Everything a run needs, opened once.
pub struct Worker {
    /// The settings the worker was opened with: what cannot change while it runs (the state
    /// database, the sink, `[server]`, `[events]`, `[outbound]`, `schedule.concurrency`;
    /// [`crate::reload::fixed_changes`]). The integrations and the schedule in force are
    /// [`Worker::current`]'s.
    pub settings: Arc<Settings>,
    /// The settings in force, replaced by [`Worker::apply`] when `watch` reloads its config.
    live: tokio::sync::watch::Sender<Arc<Settings>>,
    pub sink: AnySink,
    pub state: Arc<dyn StateStore>,
    pub callbacks: Arc<Callbacks>,
    /// The callback workers: they deliver what the folders queue, outside the slots.
    pub outbox: Outbox,
    /// Stores given instead of opening one from the config, by integration name.
    stores: HashMap<String, Arc<dyn ObjectStore>>,
    /// Scans of integrations that had nothing to do, written together by [`Worker::record_scans`].
    scans: Mutex<HashMap<String, ScanRecord>>,
    /// Scan records are written one batch at a time, so an older one never lands last.
    recording: tokio::sync::Mutex<()>,
    /// Opens the integrations' stores, keeping S3 credentials and regions between scans.
    connections: crate::store::S3Connections,
    /// Who this replica is, in the leases it takes.
    holder: String,
    stop: CancellationToken,
}

impl Worker {
    /// Opens the sink and the state database of checked settings.
    pub async fn open(settings: Settings) -> Result<Worker, StartError> {
        let state = open_state(&settings).await?;
        let sink = AnySink::open(&settings.sink, settings.egress.clone(), state.clone()).await?;
        let callbacks = Arc::new(Callbacks::new(
            settings
                .integrations
                .iter()
                .filter_map(|i| Some((i.name.as_str(), i.callback.as_ref()?))),
            &settings.egress,
        )?);
        let outbox = Outbox::new(callbacks.clone(), state.clone());
        // Room for the integrations a reload adds beside those it removes (kept until evicted).
        let connections = crate::store::S3Connections::new(2 * settings.integrations.len() + 16);
        let settings = Arc::new(settings);
        Ok(Worker {
            live: tokio::sync::watch::Sender::new(settings.clone()),
            settings,
            sink,
            state,
            callbacks,
            outbox,
            stores: Default::default(),
            scans: Default::default(),
            recording: tokio::sync::Mutex::new(()),
            connections,
            holder: holder::me(),
            stop: CancellationToken::new(),
        })
    }

    /// The settings in force now (the integrations, the schedule): those opened with, or the
    /// last [`Worker::apply`]'d.
    pub fn current(&self) -> Arc<Settings> {
        self.live.borrow().clone()
    }

    /// A handle on the settings in force, for what runs beside the worker (the HTTP server,
    /// the event router).
    pub fn live(&self) -> LiveSettings {
        LiveSettings::of(&self.live)
    }

    /// Puts `new` (a reloaded config, checked whole, with nothing of
    /// [`crate::reload::fixed_changes`] changed) in force: every callback key is read first,
    /// and a key that cannot be read refuses `new` whole. Work in hand goes on with the
    /// settings it started with; each integration's next folder takes the new ones.
    pub fn apply(&self, new: Settings) -> Result<Changes, CallbackError> {
        let old = self.current();
        let changes = Changes::between(&old, &new);
        let callbacks = Callbacks::new(
            new.integrations
                .iter()
                .filter_map(|i| Some((i.name.as_str(), i.callback.as_ref()?))),
            &self.settings.egress,
        )?;
        self.callbacks.replace(callbacks, &changes.removed);
        self.live.send_replace(Arc::new(new));
        Ok(changes)
    }

    /// Uses `store` for `integration` instead of the one its config names (tests wrap a real
    /// store to act as a customer at a precise moment).
    pub fn use_store(&mut self, integration: &str, store: Arc<dyn ObjectStore>) {
        self.stores.insert(integration.to_string(), store);
    }

    /// Scans every integration once: `schedule.concurrency` integrations in flight at all
    /// times, each next one started the moment any finishes (a slow one holds only its own
    /// slot). The report is in config order. Callbacks queued by the run are delivered before
    /// it returns, by the callback workers, outside the integrations' slots.
    pub async fn run_once(&self) -> RunReport {
        let started = Instant::now();
        let concurrency = self.settings.schedule.concurrency;
        let settings = self.current();
        // One read for the run instead of one per integration; without it (the read failed),
        // each integration asks for itself.
        let with_work = self.state.integrations_with_work(Utc::now()).await.ok();
        let with_work = with_work.as_ref();
        let mut integrations = futures_util::stream::iter(settings.integrations.iter())
            .enumerate()
            .map(|(order, integration)| async move {
                (order, self.scan_integration(integration, with_work).await)
            })
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>()
            .await;
        integrations.sort_by_key(|(order, _)| *order);
        let mut integrations: Vec<IntegrationReport> =
            integrations.into_iter().map(|(_, report)| report).collect();
        self.outbox.drain().await;
        if let Err(failed) = self.record_scans().await {
            // As when an integration's own scan record cannot be written: the run failed.
            for report in integrations
                .iter_mut()
                .filter(|r| failed.integrations.contains(&r.name))
            {
                report.error.get_or_insert_with(|| failed.error.clone());
            }
        }
        let report = RunReport {
            integrations,
            elapsed: started.elapsed(),
        };
        let folders = report.integrations.iter().flat_map(|i| &i.folders);
        RunFinished {
            integrations: report.integrations.len(),
            failed: report
                .integrations
                .iter()
                .filter(|i| i.error.is_some())
                .count(),
            folders: folders.clone().count(),
            files: folders.clone().map(|f| f.files).sum(),
            rows: folders.map(|f| f.records).sum(),
            elapsed: report.elapsed,
        }
        .emit();
        report
    }

    /// Cancelled when the process is asked to stop: no new integration or folder is started,
    /// the folder in hand is finished.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    fn stopping(&self, report: &mut IntegrationReport) -> bool {
        report.stopped |= self.stop.is_cancelled();
        report.stopped
    }

    /// Whether a reload removed `integration` or changed its settings since its work
    /// started: then no further folder is begun with the old ones.
    fn superseded(
        &self,
        integration: &IntegrationSettings,
        report: &mut IntegrationReport,
    ) -> bool {
        if report.superseded {
            return true;
        }
        let current = self.current();
        let why = match current.integration(&integration.name) {
            None => "removed from the config: no folder after the one in hand",
            Some(now) if std::ptr::eq(now, integration) || same_integration(now, integration) => {
                return false;
            }
            Some(_) => "changed in the config: its next folder waits for the new settings",
        };
        tracing::info!(integration = %integration.name, "{why}");
        report.superseded = true;
        true
    }

    /// Works on one integration: claims it, finishes its open drops and imports what is ready.
    pub async fn run_integration(&self, integration: &IntegrationSettings) -> IntegrationReport {
        self.scan_integration(integration, None).await
    }

    /// [`Worker::run_integration`], told which integrations have open drops or callbacks due
    /// (`None`: ask the state).
    async fn scan_integration(
        &self,
        integration: &IntegrationSettings,
        with_work: Option<&HashSet<String>>,
    ) -> IntegrationReport {
        let started = Instant::now();
        let mut report = IntegrationReport {
            name: integration.name.clone(),
            ..IntegrationReport::default()
        };
        if self.stopping(&mut report) {
            return report;
        }
        // A look first, without a lease or any write: an integration with nothing to do (no
        // open drop, no ready folder) costs one read of the journal and the LIST of its
        // folders, and its scan record waits to be written with the others'.
        let looked = AssertUnwindSafe(self.look(integration, with_work, &mut report))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(IntegrationError::Panicked(panic_message(&*panic))));
        let (result, lease) = match looked {
            Ok(false) => (Ok(()), None),
            Err(e) => (Err(e), None),
            Ok(true) => match self.lease_and_work(integration, &mut report).await {
                Some((result, lease)) => (result, Some(lease)),
                None => return report,
            },
        };
        if let Err(e) = &result {
            let error = e.to_string();
            let what = match e {
                IntegrationError::Folder { .. } => "folder",
                IntegrationError::Panicked(_) => "panic",
                IntegrationError::Poll(_) => "poll",
                _ => "scan",
            };
            RunFailed {
                integration: &integration.name,
                what,
                error: &error,
            }
            .emit();
            report.error = Some(error);
        }
        let scan = ScanRecord {
            integration: integration.name.clone(),
            at: Utc::now(),
            error: report.error.clone(),
            notices: report.notices.clone(),
        };
        // An integration with nothing to do waits for the batched write; one that worked or
        // failed is written now, so a failure shows as Failed at once.
        if lease.is_none() && scan.error.is_none() {
            lock(&self.scans).insert(integration.name.clone(), scan);
        } else {
            let recorded = {
                let _in_order = self.recording.lock().await;
                lock(&self.scans).remove(&integration.name);
                self.state.record_scan(&scan).await
            };
            if let Err(e) = recorded {
                let error = e.to_string();
                RunFailed {
                    integration: &integration.name,
                    what: "state",
                    error: &error,
                }
                .emit();
                report.error.get_or_insert(error);
            }
        }
        if let Some(lease) = lease {
            // Best effort: an unreleased lease just expires.
            let _ = self.state.release(&lease).await;
        }
        IntegrationScanned {
            integration: &integration.name,
            folders: report.folders.len(),
            waiting: report.waiting.len(),
            failed: report.error.is_some(),
            elapsed: started.elapsed(),
        }
        .emit();
        report
    }

    /// Writes the scan records kept for integrations that had nothing to do, in one write.
    /// `run_once` calls it at its end, `watch` every few seconds. Records that cannot be
    /// written are kept for the next call (unless a newer one came meanwhile).
    pub async fn record_scans(&self) -> Result<(), ScansNotRecorded> {
        let _in_order = self.recording.lock().await;
        let scans: Vec<ScanRecord> = std::mem::take(&mut *lock(&self.scans))
            .into_values()
            .collect();
        if scans.is_empty() {
            return Ok(());
        }
        let Err(e) = self.state.record_scans(&scans).await else {
            return Ok(());
        };
        let error = e.to_string();
        let integrations: Vec<String> = scans.iter().map(|s| s.integration.clone()).collect();
        for integration in &integrations {
            RunFailed {
                integration,
                what: "state",
                error: &error,
            }
            .emit();
        }
        let mut kept = lock(&self.scans);
        for scan in scans {
            kept.entry(scan.integration.clone()).or_insert(scan);
        }
        Err(ScansNotRecorded {
            integrations,
            error,
        })
    }

    /// Whether `integration` has anything to do, without a lease: drops left open, or a
    /// ready folder; when it has not, `report` gets what the scan found (folders waiting,
    /// notices). `with_work` (one read at the start of a run) says whether to ask the
    /// journal: a drop opened since belongs to a replica that holds the lease. Callbacks an
    /// earlier run could not deliver are handed to the outbox.
    async fn look(
        &self,
        integration: &IntegrationSettings,
        with_work: Option<&HashSet<String>>,
        report: &mut IntegrationReport,
    ) -> Result<bool, IntegrationError> {
        if integration.store().is_none() {
            // Its records do not arrive as files: nothing to scan. A poll integration asks
            // its API every run, under its lease.
            return Ok(matches!(integration.source, Source::Poll(_)));
        }
        let store = self.store(integration).await?;
        if with_work.is_none_or(|names| names.contains(&integration.name)) {
            self.outbox.deliver(&integration.name);
            if !self.state.open_drops(&integration.name).await?.is_empty() {
                return Ok(true);
            }
        }
        let scan = crate::scan::scan(store.as_ref()).await?;
        if !scan.ready.is_empty() {
            // Listed again under the lease: another replica may finish it meanwhile.
            return Ok(true);
        }
        left_alone(&integration.name, scan, report);
        Ok(false)
    }

    /// The store of `integration`: given, or opened now with the credentials and region
    /// kept from its last scan (one HTTPS client serves every S3 client).
    async fn store(
        &self,
        integration: &IntegrationSettings,
    ) -> Result<Arc<dyn ObjectStore>, IntegrationError> {
        if let Some(store) = self.stores.get(&integration.name) {
            return Ok(store.clone());
        }
        let settings = integration.store().ok_or(IntegrationError::NoBucket)?;
        Ok(Arc::from(self.connections.open(settings).await?))
    }

    /// Claims the integration and works on it; `None` when it was not worked on (another
    /// replica holds it, or the claim failed: `report` says which).
    async fn lease_and_work(
        &self,
        integration: &IntegrationSettings,
        report: &mut IntegrationReport,
    ) -> Option<(Result<(), IntegrationError>, crate::state::Lease)> {
        // One replica at a time per integration: that keeps its dates in order, and two
        // replicas from choosing targets for the same folder.
        let ttl = self.settings.state.lease;
        let lease = match self.claim(&integration.name, ttl).await {
            Ok(Claim::Granted(lease)) => lease,
            Ok(Claim::HeldBy(_)) => {
                LeaseHeld {
                    integration: &integration.name,
                }
                .emit();
                report.skipped = Some("another replica is working on it".into());
                return None;
            }
            Err(e) => {
                let error = e.to_string();
                RunFailed {
                    integration: &integration.name,
                    what: "state",
                    error: &error,
                }
                .emit();
                report.error = Some(error);
                return None;
            }
        };
        let heartbeat = AbortOnDrop(tokio::spawn(keep_alive(
            self.state.clone(),
            lease.clone(),
            ttl,
        )));
        // A panic in one integration's work is that integration's failure, reported like any
        // other (Failed with the reason, an event, a metric), its lease released below: it
        // never unwinds into the run or leaves the integration marked running.
        let result = AssertUnwindSafe(self.work_on(integration, lease.token, report))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(IntegrationError::Panicked(panic_message(&*panic))));
        drop(heartbeat);
        Some((result, lease))
    }

    /// Claims an integration; a holder that died on this host (a crashed `run`) is taken
    /// over at once, any other only once its claim expires.
    async fn claim(
        &self,
        integration: &str,
        ttl: Duration,
    ) -> Result<Claim, crate::state::StateError> {
        match self
            .state
            .claim(integration, &self.holder, ttl, None)
            .await?
        {
            Claim::HeldBy(holder) if holder::died_here(&holder) => {
                tracing::info!(integration, holder = %holder, "the holder of this integration's lease died on this host: taking over");
                self.state
                    .claim(integration, &self.holder, ttl, Some(&holder))
                    .await
            }
            claim => Ok(claim),
        }
    }

    async fn work_on(
        &self,
        integration: &IntegrationSettings,
        lease: i64,
        report: &mut IntegrationReport,
    ) -> Result<(), IntegrationError> {
        if let Source::Poll(poll) = &integration.source {
            return self.poll(integration, poll, lease, report).await;
        }
        let store = self.store(integration).await?;
        let ctx = folder::Context {
            worker: self,
            integration,
            rules: &integration.rules,
            store: store.as_ref(),
            lease,
        };
        // Drops an earlier run left open (`look` handed its undelivered callbacks to the
        // outbox): older than anything ready now. Each folder's callback goes out once the
        // folder is finished, by the callback workers: this integration goes on meanwhile.
        let deliver = || self.outbox.deliver(&integration.name);
        for mut drop in self.state.open_drops(&integration.name).await? {
            if self.stopping(report) || self.superseded(integration, report) {
                return Ok(());
            }
            drop.lease = Some(lease);
            let folder = drop.folder.clone();
            let done = folder::process(&ctx, drop, true).await;
            report
                .folders
                .push(done.map_err(|error| IntegrationError::Folder { folder, error })?);
            deliver();
        }
        let scan = crate::scan::scan(store.as_ref()).await?;
        let ready = left_alone(&integration.name, scan, report);
        for ready in ready {
            if self.stopping(report) || self.superseded(integration, report) {
                return Ok(());
            }
            let done = match folder::begin(&ctx, &ready).await {
                Ok(drop) => folder::process(&ctx, drop, false).await,
                Err(e) => Err(e),
            };
            report
                .folders
                .push(done.map_err(|error| IntegrationError::Folder {
                    folder: ready.prefix.clone(),
                    error,
                })?);
            deliver();
        }
        Ok(())
    }
}

/// Scan records that could not be written: which integrations', and why.
#[derive(Debug)]
pub struct ScansNotRecorded {
    pub integrations: Vec<String>,
    pub error: String,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Aborts a spawned task when dropped, so a panic unwinding past it stops it too.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The message of a caught panic (a `&str` or `String` payload, as `panic!` makes them).
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        message.to_string()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Renews a lease at a third of its time until aborted; a lease another replica took over
/// is not renewed, and the journal's fencing stops this replica's next write.
async fn keep_alive(state: Arc<dyn StateStore>, lease: crate::state::Lease, ttl: Duration) {
    loop {
        tokio::time::sleep(ttl / 3).await;
        match state.renew(&lease, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(integration = %lease.integration, token = lease.token, "lease taken over by another replica");
                return;
            }
            Err(e) => {
                tracing::warn!(integration = %lease.integration, error = %e, "cannot renew the lease; retrying")
            }
        }
    }
}

/// The state database of checked settings.
pub async fn open_state(settings: &Settings) -> Result<Arc<dyn StateStore>, StartError> {
    match &settings.state.database {
        Database::Sqlite(path) => Ok(Arc::new(SqliteState::open(path).await?)),
        Database::Postgres(database) => {
            let pool = crate::postgres::connect(
                &database.url,
                database.password.as_ref(),
                database.pool_size,
                crate::state::postgres::MIGRATIONS,
            )
            .await?;
            Ok(Arc::new(crate::state::PgState::new(pool, &database.url)))
        }
    }
}

/// Reports what a scan left alone (logged, and kept for the status) and what waits for its
/// `_SUCCESS`; gives back the ready folders.
fn left_alone(
    integration: &str,
    scan: crate::scan::Scan,
    report: &mut IntegrationReport,
) -> Vec<crate::scan::Folder> {
    for notice in &scan.notices {
        LeftAlone {
            integration,
            notice,
        }
        .emit();
    }
    report.notices = scan.notices;
    report.waiting = scan.waiting;
    scan.ready
}
