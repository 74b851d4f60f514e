//! A local folder as a bucket (`bucket = "file:///srv/drop/acme"`): the embedded default, and
//! the store every pipeline test can run without a server.
//!
//! It keeps S3's semantics rather than the file system's: a listing is sorted by key and paged;
//! "folders" exist only while they hold objects (empty directories are removed after a
//! delete); writes are atomic (a temporary file renamed into place, `Create` by hard link so it
//! fails if the key exists); and a version is `inode-mtime-size`, which changes whenever a
//! file is replaced. Keys that would leave the root (`..`, absolute, symlinks pointing out)
//! are refused.
//!
//! A customer's folder may hold what S3 cannot: symlinks, FIFOs, devices, names that are not
//! UTF-8. They are listed as objects (a symlink is never followed, even to a folder) and
//! refused by name ([`StoreError::BadKey`]) on every read, copy and delete, so they are
//! reported and left alone instead of hanging a read or blocking the integration. A
//! temporary file a killed process left behind is removed by the next write into its folder.

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    ListPage, ObjectMeta, ObjectReader, ObjectStore, PutBody, PutMode, StoreError, check_key,
};

/// Names of in-flight writes; never listed.
const TEMP_PREFIX: &str = ".dropfolder-tmp-";

/// A temporary file untouched for this long was left by a process that died: a live write
/// touches its file as it goes, and one integration has one writer at a time (its lease).
const STALE_TEMP_AFTER: Duration = Duration::from_secs(15 * 60);

/// What a file name that is not valid UTF-8 shows as in a key (`to_string_lossy`); such a
/// key names no file, so it is refused rather than looked up.
const NOT_UTF8: char = char::REPLACEMENT_CHARACTER;

/// Flags for opening a customer's file: a FIFO must not block the open, and a symlink swapped
/// in after the check must not be followed.
const OPEN_FLAGS: i32 = libc::O_NONBLOCK | libc::O_NOFOLLOW;

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    /// Keys plus prefixes per listing page; 1,000 as on S3.
    page_size: usize,
    /// Folders already swept of stale temporary files by this store.
    swept: Arc<Mutex<HashSet<PathBuf>>>,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> LocalStore {
        LocalStore {
            root: root.into(),
            page_size: 1000,
            swept: Arc::default(),
        }
    }

    /// Smaller pages, so tests exercise paging without thousands of files.
    pub fn with_page_size(mut self, page_size: usize) -> LocalStore {
        self.page_size = page_size.max(1);
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of `key`, refused if it is not a plain key or resolves outside the root.
    fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key)?;
        if key.contains(NOT_UTF8) {
            return Err(StoreError::BadKey {
                key: key.to_string(),
                reason: "a file name that is not valid UTF-8",
            });
        }
        let path = self.root.join(key);
        let root = self
            .root
            .canonicalize()
            .map_err(|_| StoreError::NoSuchBucket {
                key: self.root.display().to_string(),
            })?;
        // The deepest existing ancestor decides where the path really goes.
        let mut existing = path.as_path();
        while !existing.exists() {
            match existing.parent() {
                Some(parent) => existing = parent,
                None => break,
            }
        }
        if !canonical(existing, key)?.starts_with(&root) {
            return Err(StoreError::BadKey {
                key: key.to_string(),
                reason: "resolves outside the root",
            });
        }
        Ok(path)
    }
}

fn canonical(path: &Path, key: &str) -> Result<PathBuf, StoreError> {
    path.canonicalize().map_err(|e| io_error(key, e))
}

fn io_error(key: &str, error: io::Error) -> StoreError {
    let key = key.to_string();
    match error.kind() {
        io::ErrorKind::NotFound => StoreError::NotFound { key },
        io::ErrorKind::AlreadyExists => StoreError::AlreadyExists { key },
        io::ErrorKind::PermissionDenied => StoreError::AccessDenied {
            key,
            message: error.to_string(),
        },
        _ => StoreError::Io { key, source: error },
    }
}

fn meta(key: &str, m: &std::fs::Metadata) -> ObjectMeta {
    let mtime_nanos = m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128;
    ObjectMeta {
        key: key.to_string(),
        size: m.len(),
        version: format!("{:x}-{:x}-{:x}", m.ino(), mtime_nanos, m.len()),
        last_modified: m.modified().ok().map(DateTime::<Utc>::from),
    }
}

/// Runs blocking file-system work off the async workers.
async fn blocking<T: Send + 'static>(
    key: &str,
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(StoreError::Task {
            key: key.to_string(),
            source: e,
        })
    })
}

/// The metadata of the file at `path`, not following a symlink: `NotFound` for none (or a
/// folder), `BadKey` for anything but a regular file.
fn regular_file(key: &str, path: &Path) -> Result<std::fs::Metadata, StoreError> {
    let m = std::fs::symlink_metadata(path).map_err(|e| io_error(key, e))?;
    match m.file_type() {
        t if t.is_file() => Ok(m),
        t if t.is_dir() => Err(StoreError::NotFound {
            key: key.to_string(),
        }),
        _ => Err(not_regular(key)),
    }
}

fn not_regular(key: &str) -> StoreError {
    StoreError::BadKey {
        key: key.to_string(),
        reason: "not a regular file (a symlink, FIFO, socket or device)",
    }
}

/// Opens a customer's regular file for reading, with its metadata; never blocks on a FIFO
/// nor follows a symlink, even one swapped in after a check.
fn open_regular(key: &str, path: &Path) -> Result<(std::fs::File, std::fs::Metadata), StoreError> {
    regular_file(key, path)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(OPEN_FLAGS)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => not_regular(key),
            _ => io_error(key, e),
        })?;
    let m = file.metadata().map_err(|e| io_error(key, e))?;
    match m.file_type() {
        t if t.is_file() => Ok((file, m)),
        t if t.is_dir() => Err(StoreError::NotFound {
            key: key.to_string(),
        }),
        _ => Err(not_regular(key)),
    }
}

/// Removes the temporary files a killed process left in `dir`, once per folder per store.
fn sweep_stale_temps(dir: &Path, swept: &Mutex<HashSet<PathBuf>>) {
    let Ok(mut swept) = swept.lock() else { return };
    if !swept.insert(dir.to_path_buf()) {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let stale_before = SystemTime::now() - STALE_TEMP_AFTER;
    for entry in entries.flatten() {
        let is_temp = entry
            .file_name()
            .as_encoded_bytes()
            .starts_with(TEMP_PREFIX.as_bytes());
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified < stale_before);
        if is_temp && stale {
            // Best effort: a file that cannot be removed now is tried by a later store.
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A temporary file next to `dest`, filled by `fill`, synced; the caller renames or links it.
fn write_temp(
    key: &str,
    dest: &Path,
    swept: &Mutex<HashSet<PathBuf>>,
    fill: impl FnOnce(&mut std::fs::File) -> io::Result<()>,
) -> Result<tempfile::TempPath, StoreError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io_error(key, e))?;
    sweep_stale_temps(dir, swept);
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(|e| io_error(key, e))?;
    fill(temp.as_file_mut())
        .and_then(|()| temp.as_file().sync_all())
        .map_err(|e| io_error(key, e))?;
    Ok(temp.into_temp_path())
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn describe(&self) -> String {
        let root = std::path::absolute(&self.root).unwrap_or_else(|_| self.root.clone());
        format!("file://{}", root.display())
    }

    async fn list_page(&self, prefix: &str, token: Option<String>) -> Result<ListPage, StoreError> {
        // `processed/2021` lists the names in `processed/` that start with `2021`, as on S3.
        let (dir_key, name_prefix) = match prefix.rfind('/') {
            Some(slash) => prefix.split_at(slash + 1),
            None => ("", prefix),
        };
        let dir = if dir_key.is_empty() {
            self.root.clone()
        } else {
            self.path_of(dir_key.trim_end_matches('/'))?
        };
        let (prefix, page_size, root) = (dir_key.to_string(), self.page_size, self.root.clone());
        let name_prefix = name_prefix.to_string();
        blocking(&prefix.clone(), move || {
            if !root.is_dir() {
                return Err(StoreError::NotFound {
                    key: root.display().to_string(),
                });
            }
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                // S3 has no empty prefixes: a missing folder is an empty listing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ListPage::default()),
                Err(e) => return Err(io_error(&prefix, e)),
            };
            // Names and kinds (from the directory entry, no stat) for the whole directory;
            // metadata only for the page's files, so a listing of n entries stats n files,
            // not n per page.
            let mut keys: Vec<(String, std::path::PathBuf, bool)> = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| io_error(&prefix, e))?;
                let file_name = entry.file_name();
                let utf8 = file_name.to_str().is_some();
                let name = file_name.to_string_lossy().into_owned();
                if name.starts_with(TEMP_PREFIX) || !name.starts_with(&name_prefix) {
                    continue;
                }
                let key = format!("{prefix}{name}");
                // Not following symlinks: a link is an object of its own, refused when read.
                let folder = match entry.file_type() {
                    Ok(kind) => kind.is_dir() && utf8,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // Just deleted.
                    Err(e) => return Err(io_error(&key, e)),
                };
                if folder {
                    keys.push((format!("{key}/"), entry.path(), true));
                } else {
                    keys.push((key, entry.path(), false));
                }
            }
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            let start = match &token {
                Some(after) => keys.partition_point(|(k, _, _)| k <= after),
                None => 0,
            };
            let end = (start + page_size).min(keys.len());
            let mut page = ListPage {
                next: (end < keys.len()).then(|| keys[end - 1].0.clone()),
                ..ListPage::default()
            };
            for (key, path, folder) in keys.drain(start..end) {
                if folder {
                    page.prefixes.push(key);
                    continue;
                }
                match std::fs::symlink_metadata(&path) {
                    Ok(m) => page.objects.push(meta(&key, &m)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {} // Just deleted.
                    Err(e) => return Err(io_error(&key, e)),
                }
            }
            Ok(page)
        })
        .await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        let path = self.path_of(key)?;
        let key = key.to_string();
        blocking(&key.clone(), move || {
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_file() => Ok(Some(meta(&key, &m))),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_error(&key, e)),
            }
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<(ObjectMeta, ObjectReader), StoreError> {
        let path = self.path_of(key)?;
        let owned = key.to_string();
        // The metadata of the open handle: the version actually being read.
        let (file, m) = blocking(key, move || open_regular(&owned, &path)).await?;
        Ok((meta(key, &m), Box::new(tokio::fs::File::from_std(file))))
    }

    async fn put(&self, key: &str, body: PutBody, mode: PutMode) -> Result<ObjectMeta, StoreError> {
        let dest = self.path_of(key)?;
        let (key, swept) = (key.to_string(), self.swept.clone());
        blocking(&key.clone(), move || {
            let temp = write_temp(&key, &dest, &swept, |file| match &body {
                PutBody::Bytes(bytes) => io::Write::write_all(file, bytes),
                PutBody::File(source) => {
                    io::copy(&mut std::fs::File::open(source)?, file).map(|_| ())
                }
            })?;
            match mode {
                PutMode::Overwrite => temp.persist(&dest).map_err(|e| io_error(&key, e.error))?,
                // A hard link fails if the name exists: create-only, atomically.
                PutMode::Create => {
                    std::fs::hard_link(&temp, &dest).map_err(|e| io_error(&key, e))?
                }
            }
            let m = std::fs::metadata(&dest).map_err(|e| io_error(&key, e))?;
            Ok(meta(&key, &m))
        })
        .await
    }

    async fn copy(
        &self,
        from: &str,
        to: &str,
        version: &str,
        _size: u64,
    ) -> Result<ObjectMeta, StoreError> {
        let (source, dest) = (self.path_of(from)?, self.path_of(to)?);
        let (from, to, version) = (from.to_string(), to.to_string(), version.to_string());
        let swept = self.swept.clone();
        blocking(&from.clone(), move || {
            let current = |path: &Path| regular_file(&from, path).map(|m| meta(&from, &m).version);
            let changed = || StoreError::Changed {
                key: from.clone(),
                expected: version.clone(),
            };
            if current(&source)? != version {
                return Err(changed());
            }
            let (mut reader, source_meta) = open_regular(&from, &source)?;
            let temp = write_temp(&to, &dest, &swept, |file| {
                io::copy(&mut reader, file)?;
                // The copy is the customer's file: it keeps the original's permissions.
                file.set_permissions(source_meta.permissions())
            })?;
            // Replaced while we copied: the copy may mix two versions, so it is dropped.
            if current(&source)? != version {
                return Err(changed());
            }
            temp.persist(&dest).map_err(|e| io_error(&to, e.error))?;
            let m = std::fs::metadata(&dest).map_err(|e| io_error(&to, e))?;
            Ok(meta(&to, &m))
        })
        .await
    }

    async fn delete(&self, key: &str, version: &str) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        let (key, version, root) = (key.to_string(), version.to_string(), self.root.clone());
        blocking(&key.clone(), move || {
            match regular_file(&key, &path) {
                Err(StoreError::NotFound { .. }) => return Ok(()),
                Err(e) => return Err(e),
                Ok(m) if meta(&key, &m).version != version => {
                    return Err(StoreError::Changed {
                        key,
                        expected: version,
                    });
                }
                Ok(_) => {}
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(&key, e)),
            }
            // Prefixes exist only while they hold objects, as on S3.
            let mut dir = path.parent();
            while let Some(d) = dir.filter(|d| *d != root && d.starts_with(&root)) {
                if std::fs::remove_dir(d).is_err() {
                    break; // Not empty (or already gone): stop climbing.
                }
                dir = d.parent();
            }
            Ok(())
        })
        .await
    }
}
