//! The move from `current/dt=DATE/` to `processed/DATE[-N]/`: copy everything, write the
//! result files, delete the originals with `_SUCCESS` last. Copy-then-delete, each step safe to
//! repeat, so a run that dies anywhere is finished by the next one. Copies and deletes are
//! conditional on the version listed, so a file the customer replaced meanwhile is neither
//! archived as the wrong version nor deleted unread.

pub(crate) mod errors_csv;
pub(crate) mod report;
mod sequence;
pub mod status;

pub use sequence::{FinishError, Finished, Finisher, Loaded, Reported, finish_drop};

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use tempfile::NamedTempFile;

use crate::scan::MARKER;
use crate::state::{JournaledDrop, ManifestEntry};
use crate::store::{ObjectStore, PutBody, PutMode, StoreError, list_all};

pub const PROCESSED: &str = "processed/";

/// The result files of a target. They are always the importer's own: a customer file of the
/// same name is copied under [`CUSTOMER_FILES`] instead (see [`archive_name`]).
pub const STATUS_TXT: &str = "status.txt";
pub const STATUS_JSON: &str = "status.json";
/// The end of every errors file's name (`users.errors.csv`).
pub const ERRORS_CSV: &str = ".errors.csv";
/// Where, below the target, customer files named like a result file are kept.
pub const CUSTOMER_FILES: &str = "customer-files/";
/// The longest file name most file systems take (NAME_MAX); result names stay within it.
pub const MAX_NAME_BYTES: usize = 255;

/// Whether `name` (below a target) is reserved for a result file: `status.txt`,
/// `status.json`, or any `*.errors.csv` directly in the target.
pub fn is_result_name(name: &str) -> bool {
    name == STATUS_TXT || name == STATUS_JSON || (!name.contains('/') && name.ends_with(ERRORS_CSV))
}

/// The name below the target a customer's file is copied to: its own, unless that is reserved
/// for a result file, or starts with `customer-files/`; then it goes under `customer-files/`.
/// One-to-one, so no customer file takes a result's name or another customer file's.
pub fn archive_name(name: &str) -> std::borrow::Cow<'_, str> {
    if is_result_name(name) || name.starts_with(CUSTOMER_FILES) {
        format!("{CUSTOMER_FILES}{name}").into()
    } else {
        name.into()
    }
}

/// The errors file of a data file: `users.errors.csv` for `users.csv.gz`. A name that would
/// pass [`MAX_NAME_BYTES`] is cut, and a hash of the whole name keeps it apart from others.
pub fn errors_file_name(data_name: &str) -> String {
    let stem = data_name.strip_suffix(".csv.gz").unwrap_or(data_name);
    let name = format!("{stem}{ERRORS_CSV}");
    if name.len() <= MAX_NAME_BYTES {
        return name;
    }
    use sha2::Digest;
    let hash = sha2::Sha256::digest(data_name.as_bytes());
    let tag: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
    let mut cut = MAX_NAME_BYTES - ERRORS_CSV.len() - tag.len() - 1;
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}~{tag}{ERRORS_CSV}", &stem[..cut])
}

/// Why the pipeline cannot handle `key`, judged from the key alone before anything is read,
/// copied or deleted; the same rule for every store ([`crate::store::check_key`]). Such a
/// file is listed as not imported and left where it is; it never blocks the integration.
pub fn unhandled(key: &str) -> Option<&'static str> {
    match crate::store::check_key(key) {
        Err(StoreError::BadKey { reason, .. }) => Some(reason),
        _ => None,
    }
}

/// The first `processed/DATE/`, `processed/DATE-2/`, ... that does not exist: an earlier
/// result is never overwritten.
pub async fn choose_target(store: &dyn ObjectStore, date: &str) -> Result<String, StoreError> {
    let listing = list_all(store, &format!("{PROCESSED}{date}")).await?;
    let taken: HashSet<&str> = listing.prefixes.iter().map(String::as_str).collect();
    let mut n = 1u32;
    loop {
        let candidate = match n {
            1 => format!("{PROCESSED}{date}/"),
            _ => format!("{PROCESSED}{date}-{n}/"),
        };
        if !taken.contains(candidate.as_str()) {
            return Ok(candidate);
        }
        n += 1;
    }
}

/// What a drop's folder holds now, looked up when a later run resumes the drop: objects may
/// be gone (deleted before the crash) or replaced. Acting only on what is here matters on S3,
/// where a least-privilege role gets 403, not 404, for a key that does not exist.
#[derive(Debug, Default)]
pub struct Present(Option<HashMap<String, String>>);

/// Where a manifest entry stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Presence {
    Here,
    Gone,
    Replaced,
}

impl Present {
    /// A drop that began in this run: its manifest is what the folder holds.
    pub fn as_listed() -> Present {
        Present(None)
    }

    /// Lists the folder of a resumed drop (one LIST).
    pub async fn list(
        store: &dyn ObjectStore,
        drop: &JournaledDrop,
    ) -> Result<Present, StoreError> {
        let objects = crate::scan::list_recursive(store, &drop.folder).await?;
        Ok(Present(Some(
            objects.into_iter().map(|o| (o.key, o.version)).collect(),
        )))
    }

    pub fn of(&self, entry: &ManifestEntry) -> Presence {
        match &self.0 {
            None => Presence::Here,
            Some(now) => match now.get(&entry.key) {
                None => Presence::Gone,
                Some(version) if *version == entry.version => Presence::Here,
                Some(_) => Presence::Replaced,
            },
        }
    }
}

/// The part of a key below its drop folder (`users.csv.gz`).
pub fn relative<'k>(drop: &JournaledDrop, key: &'k str) -> &'k str {
    key.strip_prefix(drop.folder.as_str()).unwrap_or(key)
}

/// A data file: `*.csv.gz` directly in the folder.
pub fn is_data_file(name: &str) -> bool {
    name.ends_with(".csv.gz") && !name.contains('/')
}

/// A "folder" placeholder object some consoles create (`current/dt=20210228/`): deleted with
/// the folder, not reported or copied.
pub fn is_folder_marker(name: &str) -> bool {
    name.is_empty() || name.ends_with('/')
}

/// The manifest in the order files are copied and deleted: `_SUCCESS` last.
fn marker_last(drop: &JournaledDrop) -> Vec<&ManifestEntry> {
    let mut entries: Vec<&ManifestEntry> = drop.manifest.iter().collect();
    entries.sort_by_key(|e| relative(drop, &e.key) == MARKER);
    entries
}

/// What copying a drop's objects left out.
#[derive(Debug, Default)]
pub struct Copied {
    /// Keys the customer replaced or removed since they were listed (not copied).
    pub changed: Vec<String>,
    /// Keys the store refused to copy, and why (not a regular file, ...): left where they are.
    pub refused: Vec<(String, &'static str)>,
}

/// Copies every object of the drop into its target, each under its [`archive_name`]. Keys
/// that are gone are skipped; keys the pipeline cannot handle are left alone.
pub async fn copy_all(
    store: &dyn ObjectStore,
    drop: &JournaledDrop,
    present: &Present,
) -> Result<Copied, StoreError> {
    let mut copied = Copied::default();
    for entry in marker_last(drop) {
        let name = relative(drop, &entry.key);
        if is_folder_marker(name) || unhandled(&entry.key).is_some() {
            continue;
        }
        match present.of(entry) {
            Presence::Here => {}
            Presence::Gone => continue,
            Presence::Replaced => {
                copied.changed.push(entry.key.clone());
                continue;
            }
        }
        let to = format!("{}{}", drop.target, archive_name(name));
        match store
            .copy(&entry.key, &to, &entry.version, entry.size)
            .await
        {
            Ok(_) => {}
            Err(StoreError::Changed { .. } | StoreError::NotFound { .. }) => {
                copied.changed.push(entry.key.clone())
            }
            Err(StoreError::BadKey { reason, .. }) => {
                copied.refused.push((entry.key.clone(), reason))
            }
            Err(e) => return Err(e),
        }
        crate::crash_point!("after-copy");
    }
    Ok(copied)
}

/// A result file to write into the target.
pub enum ResultFile {
    Text { name: &'static str, body: String },
    Spooled { name: String, file: NamedTempFile },
}

/// Writes the result files, `status.txt` last: its presence marks the target as finished.
/// Each is created only if absent; one that exists was written by an earlier attempt at this
/// same drop, and is kept.
pub async fn write_results(
    store: &dyn ObjectStore,
    target: &str,
    files: Vec<ResultFile>,
) -> Result<(), StoreError> {
    for file in files {
        let (key, body) = match file {
            ResultFile::Text { name, body } => {
                (format!("{target}{name}"), PutBody::Bytes(Bytes::from(body)))
            }
            ResultFile::Spooled { name, file } => {
                let key = format!("{target}{name}");
                let result = store
                    .put(
                        &key,
                        PutBody::File(file.path().to_path_buf()),
                        PutMode::Create,
                    )
                    .await;
                keep_existing(result)?;
                continue;
            }
        };
        keep_existing(store.put(&key, body, PutMode::Create).await)?;
        crate::crash_point!("after-result-file");
    }
    Ok(())
}

fn keep_existing<T>(result: Result<T, StoreError>) -> Result<(), StoreError> {
    match result {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes the originals at the versions listed. A file that was replaced stays, and then so
/// does `_SUCCESS`, so the next run imports the new version as a new drop. A file the pipeline
/// cannot handle stays too, but `_SUCCESS` goes: its folder is finished. Returns what was
/// left in `current/` for the next run.
pub async fn delete_originals(
    store: &dyn ObjectStore,
    drop: &JournaledDrop,
    replaced: &[String],
    present: &Present,
) -> Result<Vec<String>, StoreError> {
    let mut left: Vec<String> = replaced.to_vec();
    for entry in marker_last(drop) {
        if unhandled(&entry.key).is_some() {
            continue; // Left as it is, and listed so in status.txt.
        }
        match present.of(entry) {
            Presence::Gone => continue, // Deleted by the run that crashed.
            Presence::Replaced if !left.contains(&entry.key) => left.push(entry.key.clone()),
            _ => {}
        }
        if left.contains(&entry.key) {
            continue;
        }
        if relative(drop, &entry.key) == MARKER && !left.is_empty() {
            left.push(entry.key.clone());
            continue;
        }
        match store.delete(&entry.key, &entry.version).await {
            Ok(()) => {}
            Err(StoreError::Changed { .. }) => left.push(entry.key.clone()),
            // Not a file the store handles (a FIFO, a link): left as it is, never blocking.
            Err(StoreError::BadKey { .. }) => {}
            Err(e) => return Err(e),
        }
        crate::crash_point!("after-delete");
    }
    Ok(left)
}
