//! One drop, from a ready folder to `processed/`: begin it in the journal (target chosen
//! once), load its data files in key order, then hand it to [`finish::finish_drop`] (copy,
//! write the results, record them, delete the originals). Every step can be repeated after a
//! crash without changing the outcome.

use chrono::Utc;
use futures_util::future::BoxFuture;

use super::Worker;
use crate::finish::status::{FileResult, Outcome};
use crate::finish::{
    self, FinishError, Finisher, Loaded, Presence, Present, ResultFile, archive_name,
    errors_file_name, is_data_file, is_folder_marker, relative, unhandled,
};
use crate::ledger::{FileRef, Version};
use crate::load::{LoadError, already, load_file};
use crate::scan::{Folder, MARKER};
use crate::settings::IntegrationSettings;
use crate::sink::{Sink, SinkError};
use crate::state::{JournaledDrop, ManifestEntry, Stage, StateError};
use crate::store::{ObjectReader, ObjectStore, StoreError};
use crate::validate::{FileRules, escape};

/// Why a folder could not be finished; it is resumed by the next run.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Load(#[from] LoadError),
    #[error("{0}")]
    Sink(#[from] SinkError),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("{0}")]
    Finish(#[from] FinishError),
}

/// What happened to a folder.
#[derive(Debug, Clone)]
pub struct FolderReport {
    pub folder: String,
    pub target: String,
    /// `None` when a resumed drop had already been reported by an earlier run.
    pub success: Option<bool>,
    pub records: u64,
    pub files: usize,
    /// Objects left in `current/` because the customer changed them meanwhile.
    pub left: Vec<String>,
}

/// What the steps of a drop share.
pub(super) struct Context<'a> {
    pub worker: &'a Worker,
    pub integration: &'a IntegrationSettings,
    pub rules: &'a FileRules,
    pub store: &'a dyn ObjectStore,
    /// The fencing token of this replica's lease on the integration.
    pub lease: i64,
}

/// Starts a drop for a ready folder: chooses its target and records it before anything is
/// written, so a re-run reuses the same target.
pub(super) async fn begin(
    ctx: &Context<'_>,
    folder: &Folder,
) -> Result<JournaledDrop, FolderError> {
    let target = finish::choose_target(ctx.store, &folder.date_name()).await?;
    let drop = JournaledDrop {
        integration: ctx.integration.name.clone(),
        folder: folder.prefix.clone(),
        target,
        manifest: folder
            .objects
            .iter()
            .map(|o| ManifestEntry {
                key: o.key.clone(),
                version: o.version.clone(),
                size: o.size,
            })
            .collect(),
        stage: Stage::Loading,
        started_at: Utc::now(),
        lease: Some(ctx.lease),
    };
    ctx.worker.state.begin_drop(&drop).await?;
    crate::crash_point!("after-begin");
    Ok(drop)
}

/// Takes a drop from wherever it stopped to done: loads its files if it is still loading,
/// then hands it to [`finish::finish_drop`]. `resumed`: the drop began in an earlier run, so
/// its folder is listed again before anything is read, copied or deleted.
pub(super) async fn process(
    ctx: &Context<'_>,
    drop: JournaledDrop,
    resumed: bool,
) -> Result<FolderReport, FolderError> {
    let present = if resumed {
        Present::list(ctx.store, &drop).await?
    } else {
        Present::as_listed()
    };
    let loaded = if drop.stage == Stage::Loading {
        let (files, results) = load_all(ctx, &drop, &present).await?;
        Some(Loaded { files, results })
    } else {
        None
    };
    let mut report = FolderReport {
        folder: drop.folder.clone(),
        target: drop.target.clone(),
        success: None,
        records: 0,
        files: 0,
        left: Vec::new(),
    };
    let to = Finisher {
        store: ctx.store,
        state: ctx.worker.state.as_ref(),
        callbacks: &ctx.worker.callbacks,
    };
    let finished = finish::finish_drop(&to, drop, loaded, &present).await?;
    if let Some(reported) = finished.reported {
        report.success = Some(reported.success);
        report.records = reported.records;
        report.files = reported.files;
    }
    report.left = finished.left;
    Ok(report)
}

/// Loads every data file of the drop in key order; other files are listed as not imported.
async fn load_all(
    ctx: &Context<'_>,
    drop: &JournaledDrop,
    present: &Present,
) -> Result<(Vec<FileResult>, Vec<ResultFile>), FolderError> {
    let mut files = Vec::new();
    let mut spooled = Vec::new();
    for entry in &drop.manifest {
        let name = relative(drop, &entry.key);
        if name == MARKER || is_folder_marker(name) {
            continue;
        }
        if let Some(reason) = unhandled(&entry.key) {
            let reason = reason.to_string();
            files.push(FileResult::new(name, Outcome::Unhandled { reason }));
            continue;
        }
        if !is_data_file(name) {
            let mut result = FileResult::new(name, Outcome::NotImported);
            let archived = archive_name(name);
            if archived != name {
                result.note = Some(format!(
                    "moved along as {}: this name is kept for the importer's own results",
                    escape(&archived)
                ));
            }
            files.push(result);
            continue;
        }
        let (mut result, errors_csv) = load_entry(ctx, drop, entry, name, present).await?;
        if let Some(file) = errors_csv {
            let errors_name = errors_file_name(name);
            result.errors_file = Some(errors_name.clone());
            spooled.push(ResultFile::Spooled {
                name: errors_name,
                file,
            });
        }
        files.push(result);
        crate::crash_point!("after-file");
    }
    Ok((files, spooled))
}

/// One data file: skipped if the ledger has it, else read at the listed version and loaded.
async fn load_entry(
    ctx: &Context<'_>,
    drop: &JournaledDrop,
    entry: &ManifestEntry,
    name: &str,
    present: &Present,
) -> Result<(FileResult, Option<tempfile::NamedTempFile>), FolderError> {
    let file = FileRef {
        integration: ctx.integration.name.clone(),
        entity: ctx.integration.entity,
        key: entry.key.clone(),
        version: Version::listed(&entry.version),
    };
    let result = |outcome| FileResult::new(name, outcome);
    if let Some(prior) = ctx.worker.sink.applied(&file).await? {
        return Ok((result(already(prior, drop.started_at)), None));
    }
    if present.of(entry) != Presence::Here {
        return Ok((result(Outcome::Changed), None));
    }
    // The version listed, or nothing: a replaced file is the customer's next drop.
    let open = || -> BoxFuture<'_, Result<ObjectReader, LoadError>> {
        Box::pin(async {
            match ctx.store.get(&entry.key).await {
                Ok((meta, reader)) if meta.version == entry.version => Ok(reader),
                Ok(_) | Err(StoreError::NotFound { .. }) => Err(LoadError::Changed {
                    key: entry.key.clone(),
                }),
                Err(e) => Err(e.into()),
            }
        })
    };
    let loaded = match load_file(
        &ctx.worker.sink,
        ctx.rules,
        &file,
        name,
        open,
        drop.started_at,
    )
    .await
    {
        Ok(loaded) => loaded,
        Err(LoadError::Changed { .. }) => return Ok((result(Outcome::Changed), None)),
        // Not something the store can read (a FIFO, a link): listed, left where it is.
        Err(LoadError::Store(StoreError::BadKey { reason, .. })) => {
            let reason = reason.to_string();
            return Ok((result(Outcome::Unhandled { reason }), None));
        }
        Err(e) => return Err(e.into()),
    };
    Ok((loaded.result, loaded.errors_csv))
}
