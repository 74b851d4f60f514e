//! One data file through the validator into the sink: the rows go to a file load while the
//! file is read, and the load commits (rows and ledger entry together) only if the file had
//! no error. Shared by the folder flow and `dropfolder import`.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;
use tokio::io::{AsyncRead, ReadBuf};

use crate::finish::errors_csv::ErrorSpool;
use crate::finish::status::{FileResult, Outcome};
use crate::ledger::{AppliedFile, Committed, FileRef, Version};
use crate::sink::{FileLoad, Sink, SinkError};
use crate::store::{ObjectReader, StoreError};
use crate::telemetry::{FileProcessed, FileStarted};
use crate::validate::{CountRows, FileFailure, FileRules, validate};

/// Why a file could not be judged or loaded; the folder is retried later.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{key}: {source}")]
    Read { key: String, source: io::Error },
    #[error("{key}: {source}")]
    Sink { key: String, source: SinkError },
    #[error("{key}: cannot write the error list: {source}")]
    Spool { key: String, source: io::Error },
    /// The object is not the version listed any more (replaced, or gone).
    #[error("{key}: changed while it was being imported")]
    Changed { key: String },
    #[error("{key}: {message}")]
    Open { key: String, message: String },
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// A loaded (or rejected) file: its result, and its `errors.csv` when it has errors.
pub struct Loaded {
    pub result: FileResult,
    pub errors_csv: Option<NamedTempFile>,
}

/// Validates `file` and loads it into `sink` when valid. A [`Version::ContentHash`] is
/// filled in with the hash of what was read (local imports). `drop_started` tells a ledger
/// hit from this drop (a re-run after a crash: it counts as imported now) from an earlier
/// drop's.
///
/// `open` opens the file to read, at the version expected; called twice for a sink that
/// cannot roll back (validated whole first, then read again and sent). A closure returning a
/// boxed future rather than an async closure, whose futures the compiler cannot yet prove
/// `Send`.
pub async fn load_file<'o, S: Sink>(
    sink: &S,
    rules: &FileRules,
    file: &FileRef,
    name: &str,
    open: impl Fn() -> BoxFuture<'o, Result<ObjectReader, LoadError>> + Send + Sync,
    drop_started: DateTime<Utc>,
) -> Result<Loaded, LoadError> {
    let key = || file.key.clone();
    FileStarted {
        integration: &file.integration,
        key: &file.key,
    }
    .emit();
    let (spool, listener) = ErrorSpool::new(name, rules.limits.max_listed_errors)
        .map_err(|source| LoadError::Spool { key: key(), source })?;
    // Bucket files have a version (the ETag); only a local import needs the content hash.
    let hashed = matches!(file.version, Version::ContentHash(_));
    let (source, hash) = Hashing::new(open().await?, hashed);
    let mut file = file.clone();
    let (report, committed) = if sink.transactional() {
        let mut load = sink
            .begin(&file, Utc::now())
            .await
            .map_err(|source| LoadError::Sink { key: key(), source })?;
        let report = match validate(rules, name, source, &mut load, Some(listener)).await {
            Ok(report) => report,
            Err(failure) => {
                let _ = load.rollback().await; // Abandoned either way.
                return Err(failed(&file, failure));
            }
        };
        if hashed {
            file.version = Version::ContentHash(hash.hex());
        }
        let sink_error = |source| LoadError::Sink { key: key(), source };
        let committed = if report.is_valid() {
            crate::crash_point!("before-file-commit");
            Some(
                load.commit(report.rows, &file.version)
                    .await
                    .map_err(sink_error)?,
            )
        } else {
            load.rollback().await.map_err(sink_error)?;
            None
        };
        (report, committed)
    } else {
        // Nothing leaves before the whole file is judged: an API cannot take rows back.
        let report = validate(
            rules,
            name,
            source,
            &mut CountRows::default(),
            Some(listener),
        )
        .await
        .map_err(|failure| failed(&file, failure))?;
        if hashed {
            file.version = Version::ContentHash(hash.hex());
        }
        let committed = if !report.is_valid() {
            None
        } else if let Some(prior) = sink
            .applied(&file)
            .await
            .map_err(|source| LoadError::Sink { key: key(), source })?
        {
            Some(Committed::AlreadyApplied(prior))
        } else {
            Some(send_again(sink, rules, &file, name, open().await?, report.rows).await?)
        };
        (report, committed)
    };
    let mut result = FileResult::from_report(&report);
    if let Some(Committed::AlreadyApplied(prior)) = committed {
        result.outcome = already(prior, drop_started);
    }
    FileProcessed {
        integration: &file.integration,
        key: &file.key,
        verdict: verdict(&result.outcome),
        rows: report.rows,
        compressed_bytes: report.compressed_bytes,
        decompressed_bytes: report.decompressed_bytes,
        elapsed: report.elapsed,
    }
    .emit();
    drop(report); // Releases the spool's listener.
    let errors_csv = spool
        .finish()
        .map_err(|source| LoadError::Spool { key: key(), source })?;
    Ok(Loaded { result, errors_csv })
}

/// The second pass of a non-transactional sink: the same rows, sent this time.
async fn send_again<S: Sink>(
    sink: &S,
    rules: &FileRules,
    file: &FileRef,
    name: &str,
    source: ObjectReader,
    rows: u64,
) -> Result<Committed, LoadError> {
    let sink_error = |source| LoadError::Sink {
        key: file.key.clone(),
        source,
    };
    let mut load = sink.begin(file, Utc::now()).await.map_err(sink_error)?;
    let again = match validate(rules, name, source, &mut load, None).await {
        Ok(again) => again,
        Err(failure) => {
            let _ = load.rollback().await;
            return Err(failed(file, failure));
        }
    };
    if !again.is_valid() || again.rows != rows {
        let _ = load.rollback().await;
        return Err(LoadError::Changed {
            key: file.key.clone(),
        });
    }
    crate::crash_point!("before-file-commit");
    load.commit(rows, &file.version).await.map_err(sink_error)
}

fn failed<E: std::error::Error + 'static>(file: &FileRef, failure: FileFailure<E>) -> LoadError
where
    SinkError: From<E>,
{
    match failure {
        FileFailure::Source(source) => LoadError::Read {
            key: file.key.clone(),
            source,
        },
        FileFailure::Consumer(e) => LoadError::Sink {
            key: file.key.clone(),
            source: SinkError::from(e),
        },
    }
}

/// A ledger hit: applied by this drop before a crash counts as imported now.
pub fn already(prior: AppliedFile, drop_started: DateTime<Utc>) -> Outcome {
    if prior.applied_at >= drop_started {
        Outcome::Imported {
            records: prior.rows,
        }
    } else {
        Outcome::AlreadyImported {
            records: prior.rows,
            imported_at: prior.applied_at,
        }
    }
}

pub fn verdict(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Imported { .. } => "imported",
        Outcome::AlreadyImported { .. } => "already_imported",
        Outcome::Rejected { .. } => "rejected",
        Outcome::Changed => "changed",
        Outcome::NotImported | Outcome::Unhandled { .. } => "not_imported",
    }
}

/// Hashes what is read through it (when enabled): the version of a stream that has no ETag.
pub struct Hashing<R> {
    inner: R,
    hash: Option<Arc<Mutex<Sha256>>>,
}

/// The other end of a [`Hashing`] reader.
pub struct HashHandle(Arc<Mutex<Sha256>>);

impl<R> Hashing<R> {
    pub fn new(inner: R, enabled: bool) -> (Hashing<R>, HashHandle) {
        let hash = Arc::new(Mutex::new(Sha256::new()));
        let reader = Hashing {
            inner,
            hash: enabled.then(|| hash.clone()),
        };
        (reader, HashHandle(hash))
    }
}

impl HashHandle {
    /// `sha256:<hex>` of everything read so far.
    pub fn hex(&self) -> String {
        let digest = match self.0.lock() {
            Ok(hash) => hash.clone().finalize(),
            Err(poisoned) => poisoned.into_inner().clone().finalize(),
        };
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Hashing<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result
            && let Some(Ok(mut hash)) = self.hash.as_ref().map(|h| h.lock())
        {
            hash.update(&buf.filled()[before..]);
        }
        result
    }
}
