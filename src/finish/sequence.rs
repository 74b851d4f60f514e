//! The finish sequence of a drop whose files are loaded: copy to `processed/`, write the
//! result files (`status.txt` last), record the result with its callback, delete the
//! originals (`_SUCCESS` last), close the drop. It lives here, beside the steps it orders, so
//! the worker only loads files and calls it; each step is safe to repeat after a crash.

use crate::callback::Callbacks;
use crate::state::{DropResult, JournaledDrop, Stage, StateError, StateStore};
use crate::store::{ObjectStore, StoreError};
use crate::telemetry::FolderFinished;

use super::report::StatusJson;
use super::status::{FileResult, Outcome, is_success, records_uploaded, status_text};
use super::{
    Present, ResultFile, STATUS_JSON, STATUS_TXT, copy_all, delete_originals, relative,
    write_results,
};

/// Why the finish sequence stopped; the drop is resumed by the next run.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    State(#[from] StateError),
}

/// Where the finish sequence writes: the integration's bucket, the state, the callbacks.
pub struct Finisher<'a> {
    pub store: &'a dyn ObjectStore,
    pub state: &'a dyn StateStore,
    pub callbacks: &'a Callbacks,
}

/// What loading a drop's files gave: one result per file and the result files (errors files)
/// to write beside `status.txt`.
pub struct Loaded {
    pub files: Vec<FileResult>,
    pub results: Vec<ResultFile>,
}

/// The result recorded by this run.
#[derive(Debug, Clone, Copy)]
pub struct Reported {
    pub success: bool,
    pub records: u64,
    /// Data files in the drop.
    pub files: usize,
}

/// What the finish sequence did.
#[derive(Debug)]
pub struct Finished {
    /// `None` when a resumed drop had already been reported by an earlier run.
    pub reported: Option<Reported>,
    /// Objects left in `current/` because the customer changed them meanwhile.
    pub left: Vec<String>,
}

/// Finishes a drop. `loaded` is `Some` for a drop at [`Stage::Loading`] (its files were just
/// loaded), `None` for one an earlier run already reported, which only needs its originals
/// deleted and the drop closed.
pub async fn finish_drop(
    to: &Finisher<'_>,
    mut drop: JournaledDrop,
    loaded: Option<Loaded>,
    present: &Present,
) -> Result<Finished, FinishError> {
    let mut reported = None;
    let mut changed = Vec::new();
    if let Some(Loaded { mut files, results }) = loaded {
        let copied = copy_all(to.store, &drop, present).await?;
        refused(&drop, &mut files, &copied.refused);
        changed = copied.changed;
        for file in files.iter_mut().filter(|f| f.is_imported()) {
            if changed.iter().any(|key| relative(&drop, key) == file.name) {
                file.note = Some(
                    "replaced by the customer after it was read: the version imported is not \
                     archived here, and the new version is imported next"
                        .into(),
                );
            }
        }
        let folder_path = format!(
            "{}/{}",
            to.store.describe(),
            drop.target.trim_end_matches('/')
        );
        let mut results = results;
        results.push(ResultFile::Text {
            name: STATUS_JSON,
            body: StatusJson::new(folder_path.clone(), &drop.folder, &files).to_json(),
        });
        let text = status_text(&files);
        results.push(ResultFile::Text {
            name: STATUS_TXT,
            body: text.clone(),
        });
        write_results(to.store, &drop.target, results).await?;
        crate::crash_point!("after-status");
        let result = DropResult {
            success: is_success(&files),
            records: records_uploaded(&files),
            message: text,
        };
        let callback = to
            .callbacks
            .request(&drop.integration, &folder_path, &drop.target, &result);
        to.state
            .report_drop(&drop, &result, callback.as_ref())
            .await?;
        drop.stage = Stage::Reported;
        crate::crash_point!("after-report");
        FolderFinished {
            integration: &drop.integration,
            folder: &drop.folder,
            target: &drop.target,
            success: result.success,
            records: result.records,
        }
        .emit();
        reported = Some(Reported {
            success: result.success,
            records: result.records,
            files: files.iter().filter(|f| f.is_data()).count(),
        });
    }
    let left = delete_originals(to.store, &drop, &changed, present).await?;
    if !left.is_empty() {
        tracing::warn!(
            integration = %drop.integration,
            folder = %drop.folder,
            left = ?left,
            "changed while being imported: left in current/ for the next run"
        );
    }
    crate::crash_point!("before-done");
    to.state.finish_drop(&drop).await?;
    Ok(Finished { reported, left })
}

/// Marks the files the store refused to copy: left where they are, and said so.
fn refused(drop: &JournaledDrop, files: &mut [FileResult], refused: &[(String, &'static str)]) {
    for (key, reason) in refused {
        let name = relative(drop, key);
        for file in files.iter_mut().filter(|f| f.name == name) {
            if file.outcome == Outcome::NotImported {
                file.note = None;
                file.outcome = Outcome::Unhandled {
                    reason: reason.to_string(),
                };
            } else {
                file.note = Some(format!("not moved: {reason}; left in current/ as it is"));
            }
        }
    }
}
