//! Changing the config of a running `watch` without a restart: the settings everything reads
//! per use ([`LiveSettings`]), how a change of the config file(s) is noticed
//! ([`ConfigFiles::fingerprint`], a hash of their content: a Kubernetes ConfigMap is updated
//! by swapping a `..data` symlink, so modification times say nothing), and what a new config
//! changes ([`Changes`]) or may not change while running ([`fixed_changes`]).
//!
//! Loading and checking the new config is the caller's (the binary's): this module imports
//! nothing from `config`, like every module that runs.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::settings::{IntegrationSettings, Settings};

/// The settings in force, shared by the loop, the event router and the HTTP server: each
/// reads [`current`](LiveSettings::current) when it needs them, so a reload reaches all of
/// them at once. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LiveSettings(watch::Receiver<Arc<Settings>>);

impl LiveSettings {
    /// Settings that never change (`run`, tests).
    pub fn fixed(settings: Arc<Settings>) -> LiveSettings {
        LiveSettings(watch::channel(settings).1)
    }

    /// The handle on what `sender` publishes.
    pub fn of(sender: &watch::Sender<Arc<Settings>>) -> LiveSettings {
        LiveSettings(sender.subscribe())
    }

    /// The settings in force now. Hold the `Arc` for the work at hand, not longer: a reload
    /// reaches only the next read.
    pub fn current(&self) -> Arc<Settings> {
        self.0.borrow().clone()
    }
}

/// Files of one config read for a fingerprint at most: as many as the config loader reads.
const MAX_FILES: usize = 100_000;
/// Bytes of config read for a fingerprint at most, all files together: far beyond 10,000
/// integrations (about 1 KiB each), and a bound on a path that is not what the operator meant.
pub const MAX_CONFIG_BYTES: u64 = 256 * 1024 * 1024;

/// The config file, or the directory of `*.toml` files, `watch` was started with.
#[derive(Debug, Clone)]
pub struct ConfigFiles {
    path: PathBuf,
    /// Bytes read at most, all files together.
    max_bytes: u64,
}

/// Why the config files could not be fingerprinted; the running config is kept.
#[derive(Debug, thiserror::Error)]
pub enum FingerprintError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds more than {MAX_FILES} *.toml files", path.display())]
    TooManyFiles { path: PathBuf },
    #[error("the config at {} is larger than {max_bytes} bytes", path.display())]
    TooLarge { path: PathBuf, max_bytes: u64 },
}

impl ConfigFiles {
    pub fn new(path: &Path) -> ConfigFiles {
        ConfigFiles {
            path: path.to_path_buf(),
            max_bytes: MAX_CONFIG_BYTES,
        }
    }

    /// Reads at most `max_bytes` (all files together) instead of [`MAX_CONFIG_BYTES`].
    pub fn with_max_bytes(mut self, max_bytes: u64) -> ConfigFiles {
        self.max_bytes = max_bytes;
        self
    }

    /// A hash of the content of the config: the file, or every `*.toml` in the directory that
    /// the loader reads (hidden names skipped, links followed), with their names, in name
    /// order. Equal hashes: nothing to reload. Blocking file reads, bounded by
    /// `MAX_FILES` (100,000) and [`MAX_CONFIG_BYTES`] (or [`ConfigFiles::with_max_bytes`]).
    pub fn fingerprint(&self) -> Result<String, FingerprintError> {
        let read_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| FingerprintError::Read { path, source }
        };
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        if self.path.is_dir() {
            for entry in std::fs::read_dir(&self.path).map_err(read_error(&self.path))? {
                let entry = entry.map_err(read_error(&self.path))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = entry.path();
                // The same choice as the loader's (`config/dir.rs`).
                if name.starts_with('.') || !name.ends_with(".toml") || !path.is_file() {
                    continue;
                }
                files.push((name, path));
                if files.len() > MAX_FILES {
                    return Err(FingerprintError::TooManyFiles {
                        path: self.path.clone(),
                    });
                }
            }
            files.sort();
        } else {
            files.push((String::new(), self.path.clone()));
        }
        let mut hash = Sha256::new();
        let mut budget = self.max_bytes;
        let mut buffer = vec![0u8; 64 * 1024];
        for (name, path) in &files {
            let file = std::fs::File::open(path).map_err(read_error(path))?;
            // One byte over the budget says it is exceeded.
            let mut file = file.take(budget + 1);
            hash.update(name.as_bytes());
            hash.update([0]);
            let mut length = 0u64;
            loop {
                let read = file.read(&mut buffer).map_err(read_error(path))?;
                if read == 0 {
                    break;
                }
                hash.update(&buffer[..read]);
                length += read as u64;
            }
            if length > budget {
                return Err(FingerprintError::TooLarge {
                    path: self.path.clone(),
                    max_bytes: self.max_bytes,
                });
            }
            budget -= length;
            hash.update(length.to_le_bytes());
        }
        Ok(hash
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect())
    }
}

/// Whether the content `hash` a periodic check found is to be loaded: it differs from the
/// one in force (`current`) and the previous check saw it too (`pending`, updated here). A
/// file caught half-written by one check has changed again by the next, so it is never
/// loaded; its final content is, one check later.
pub fn settled(pending: &mut Option<String>, current: &str, hash: &str) -> bool {
    let seen_before = pending.take().is_some_and(|p| p == hash);
    if hash == current {
        return false;
    }
    if !seen_before {
        *pending = Some(hash.to_string());
    }
    seen_before
}

/// What a new config changes in the integrations, by name, each list in name order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl Changes {
    /// The integrations added, removed and changed from `old` to `new`.
    pub fn between(old: &Settings, new: &Settings) -> Changes {
        // By name: thousands of integrations compared in linear time.
        let (before, after) = (by_name(old), by_name(new));
        let mut changes = Changes::default();
        for (name, integration) in &after {
            match before.get(name) {
                None => changes.added.push(name.to_string()),
                Some(was) if !same_integration(was, integration) => {
                    changes.changed.push(name.to_string())
                }
                Some(_) => {}
            }
        }
        changes.removed = before
            .keys()
            .filter(|name| !after.contains_key(*name))
            .map(|name| name.to_string())
            .collect();
        changes.added.sort();
        changes.removed.sort();
        changes.changed.sort();
        changes
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The integrations of `settings` by name.
fn by_name(settings: &Settings) -> HashMap<&str, &IntegrationSettings> {
    settings
        .integrations
        .iter()
        .map(|i| (i.name.as_str(), i))
        .collect()
}

/// Whether two checked integrations would work the same: every setting compared, compiled
/// ones by what they were compiled from (their `Debug` form, which holds no secret: secrets
/// are named in the settings, never read into them).
pub fn same_integration(a: &IntegrationSettings, b: &IntegrationSettings) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// The parts of the settings a running `watch` cannot take from a new config, each as the
/// config names it, where `new` differs from `old`: the state database and the sink (opened
/// at start, their pools in use), the listen address and token (the socket is bound), the
/// event queue, `[outbound]` (the sink's and callbacks' clients were made with it) and
/// `schedule.concurrency` (the slots in use). A config that changes one is refused whole.
pub fn fixed_changes(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let differ =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let mut fixed = Vec::new();
    if differ(&old.state, &new.state) {
        fixed.push("[state]");
    }
    if differ(&old.sink, &new.sink) {
        fixed.push("[sink]");
    }
    if differ(&old.server, &new.server) {
        fixed.push("[server]");
    }
    if differ(&old.events, &new.events) {
        fixed.push("[events]");
    }
    if differ(&old.egress, &new.egress) {
        fixed.push("[outbound]");
    }
    if old.schedule.concurrency != new.schedule.concurrency {
        fixed.push("schedule.concurrency");
    }
    fixed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_content_is_loaded_once_two_checks_agree() {
        let mut pending = None;
        // Unchanged: nothing.
        assert!(!settled(&mut pending, "a", "a"));
        assert_eq!(pending, None);
        // Half-written, then complete: neither loaded at first sight.
        assert!(!settled(&mut pending, "a", "half"));
        assert!(!settled(&mut pending, "a", "b"));
        // Seen again: loaded.
        assert!(settled(&mut pending, "a", "b"));
        assert_eq!(pending, None);
        // Changed back before it settled: nothing to load.
        assert!(!settled(&mut pending, "b", "c"));
        assert!(!settled(&mut pending, "b", "b"));
        assert!(!settled(&mut pending, "b", "b"));
    }
}
