//! One run: every integration scanned, integrations worked on concurrently (up to
//! `schedule.concurrency`), one failing integration never stopping the others. Within an
//! integration, drops left open by an earlier run are finished first, then ready folders
//! oldest date first; a folder that cannot be finished stops that integration, so a later
//! date is never applied before an earlier one.

mod folder;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::StreamExt;

use crate::callback::Callbacks;
use crate::config::{Config, IntegrationConfig};
use crate::sink::{AnySink, SinkError};
use crate::state::{ScanRecord, SqliteState, StateError, StateStore};
use crate::store::{ObjectStore, StoreError};
use crate::telemetry::{LeftAlone, RunFailed, RunFinished};
use crate::validate::{FileRules, RulesError};

pub use folder::{FolderError, FolderReport};

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the sink: {0}")]
    Sink(#[from] SinkError),
    #[error("cannot open the state database: {0}")]
    State(#[from] StateError),
    #[error("state url {0}: only sqlite:// state is available in this build")]
    StateUrl(String),
    #[error("{0}")]
    Callback(#[from] crate::callback::CallbackError),
}

/// Why an integration could not be worked on.
#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    #[error("{0}")]
    Rules(#[from] RulesError),
    #[error("cannot reach the bucket: {0}")]
    Store(#[from] StoreError),
    #[error("state: {0}")]
    State(#[from] StateError),
    #[error("folder {folder}: {error}")]
    Folder { folder: String, error: FolderError },
}

/// What a run did for one integration.
#[derive(Debug, Default)]
pub struct IntegrationReport {
    pub name: String,
    pub folders: Vec<FolderReport>,
    /// Set when the integration could not be scanned or a folder not finished.
    pub error: Option<String>,
    pub notices: Vec<String>,
    /// Date folders still waiting for their `_SUCCESS`.
    pub waiting: Vec<String>,
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
    pub config: Arc<Config>,
    pub sink: AnySink,
    pub state: Arc<dyn StateStore>,
    pub callbacks: Callbacks,
    /// Stores given instead of opening one from the config, by integration name.
    stores: std::collections::HashMap<String, Arc<dyn ObjectStore>>,
    /// The base AWS identity, loaded the first time an S3 bucket needs it.
    aws: tokio::sync::OnceCell<aws_config::SdkConfig>,
}

impl Worker {
    /// Opens the sink and the state database of a checked config.
    pub async fn open(config: Config) -> Result<Worker, StartError> {
        let state = open_state(&config).await?;
        let sink = AnySink::open(&config, state.clone()).await?;
        let callbacks = Callbacks::from_config(&config)?;
        Ok(Worker {
            config: Arc::new(config),
            sink,
            state,
            callbacks,
            stores: Default::default(),
            aws: tokio::sync::OnceCell::new(),
        })
    }

    /// Uses `store` for `integration` instead of the one its config names (tests wrap a real
    /// store to act as a customer at a precise moment).
    pub fn use_store(&mut self, integration: &str, store: Arc<dyn ObjectStore>) {
        self.stores.insert(integration.to_string(), store);
    }

    /// Scans every integration once.
    pub async fn run_once(&self) -> RunReport {
        let started = Instant::now();
        let concurrency = self.config.schedule.concurrency.max(1);
        let integrations = futures_util::stream::iter(&self.config.integrations)
            .map(|integration| self.run_integration(integration))
            .buffered(concurrency)
            .collect::<Vec<_>>()
            .await;
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

    async fn run_integration(&self, integration: &IntegrationConfig) -> IntegrationReport {
        let mut report = IntegrationReport {
            name: integration.name.clone(),
            ..IntegrationReport::default()
        };
        let result = self.work_on(integration, &mut report).await;
        if let Err(e) = &result {
            let error = e.to_string();
            let what = if matches!(e, IntegrationError::Folder { .. }) {
                "folder"
            } else {
                "scan"
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
        if let Err(e) = self.state.record_scan(&scan).await {
            let error = e.to_string();
            RunFailed {
                integration: &integration.name,
                what: "state",
                error: &error,
            }
            .emit();
            report.error.get_or_insert(error);
        }
        report
    }

    async fn work_on(
        &self,
        integration: &IntegrationConfig,
        report: &mut IntegrationReport,
    ) -> Result<(), IntegrationError> {
        let rules = FileRules::for_integration(&self.config, integration)?;
        let store: Arc<dyn ObjectStore> = match self.stores.get(&integration.name) {
            Some(store) => store.clone(),
            None => Arc::from(crate::store::open(&self.config, integration, &self.aws).await?),
        };
        let ctx = folder::Context {
            worker: self,
            integration,
            rules: &rules,
            store: store.as_ref(),
        };
        // Callbacks an earlier run could not deliver, then drops it left open: both are older
        // than anything ready now. Each folder's callback goes out once the folder is finished.
        let deliver = || {
            self.callbacks
                .deliver_due(self.state.as_ref(), &integration.name)
        };
        deliver().await?;
        for drop in self.state.open_drops(&integration.name).await? {
            let folder = drop.folder.clone();
            let done = folder::process(&ctx, drop, true).await;
            report
                .folders
                .push(done.map_err(|error| IntegrationError::Folder { folder, error })?);
            deliver().await?;
        }
        let scan = crate::scan::scan(store.as_ref()).await?;
        for notice in &scan.notices {
            LeftAlone {
                integration: &integration.name,
                notice,
            }
            .emit();
        }
        report.notices = scan.notices;
        report.waiting = scan.waiting;
        for ready in scan.ready {
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
            deliver().await?;
        }
        Ok(())
    }
}

/// The state database of a config.
pub async fn open_state(config: &Config) -> Result<Arc<dyn StateStore>, StartError> {
    match crate::sqlite::path_of_url(&config.state.url, &config.base_dir) {
        Some(path) => Ok(Arc::new(SqliteState::open(&path).await?)),
        None => Err(StartError::StateUrl(crate::config::redact_url(
            &config.state.url,
        ))),
    }
}
