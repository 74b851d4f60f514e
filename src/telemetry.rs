//! Every observable event is one struct that both logs and counts (Vector's internal events):
//! the log line and the metric can never drift apart. Counters live in a process-wide
//! registry that `watch` serves as Prometheus text.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// A metric's name and labels.
type Key = (&'static str, Vec<(&'static str, String)>);

/// Counters and sums by name and labels.
#[derive(Debug, Default)]
pub struct Metrics {
    values: Mutex<BTreeMap<Key, f64>>,
}

/// The process-wide registry.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

impl Metrics {
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let key = (
            name,
            labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        );
        if let Ok(mut values) = self.values.lock() {
            *values.entry(key).or_default() += value;
        }
    }

    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let key = (
            name,
            labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        );
        if let Ok(mut values) = self.values.lock() {
            values.insert(key, value);
        }
    }

    /// The current value, 0 if never set.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let Ok(values) = self.values.lock() else {
            return 0.0;
        };
        values
            .iter()
            .find(|((n, l), _)| {
                *n == name
                    && l.len() == labels.len()
                    && l.iter()
                        .zip(labels)
                        .all(|((k1, v1), (k2, v2))| k1 == k2 && v1 == v2)
            })
            .map_or(0.0, |(_, v)| *v)
    }

    /// The Prometheus text exposition of every value.
    pub fn render(&self) -> String {
        let Ok(values) = self.values.lock() else {
            return String::new();
        };
        let mut out = String::new();
        let mut last = "";
        for ((name, labels), value) in values.iter() {
            if *name != last {
                let kind = if name.ends_with("_total") || name.ends_with("_sum") {
                    "counter"
                } else {
                    "gauge"
                };
                let _ = writeln!(out, "# TYPE dropfolder_{name} {kind}");
                last = name;
            }
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}=\"{}\"",
                        v.replace('\\', "\\\\")
                            .replace('"', "\\\"")
                            .replace('\n', "\\n")
                    )
                })
                .collect();
            let _ = writeln!(out, "dropfolder_{name}{{{}}} {value}", labels.join(","));
        }
        out
    }
}

/// An integration was worked on: its scan, and the folders it finished.
pub struct IntegrationScanned<'a> {
    pub integration: &'a str,
    pub folders: usize,
    pub waiting: usize,
    pub failed: bool,
    pub elapsed: Duration,
}

impl IntegrationScanned<'_> {
    pub fn emit(&self) {
        let result = if self.failed { "failed" } else { "ok" };
        let seconds = self.elapsed.as_secs_f64();
        tracing::info!(
            integration = self.integration,
            folders = self.folders,
            waiting = self.waiting,
            result,
            seconds,
            "integration scanned"
        );
        let m = metrics();
        m.add(
            "scans_total",
            &[("integration", self.integration), ("result", result)],
            1.0,
        );
        m.add(
            "scan_seconds_sum",
            &[("integration", self.integration)],
            seconds,
        );
    }
}

/// A data file is being opened: with `file processed`, the progress of a long folder.
pub struct FileStarted<'a> {
    pub integration: &'a str,
    pub key: &'a str,
}

impl FileStarted<'_> {
    pub fn emit(&self) {
        tracing::info!(
            integration = self.integration,
            file = self.key,
            "file started"
        );
        let labels = [("integration", self.integration)];
        metrics().add("files_started_total", &labels, 1.0);
    }
}

/// A data file was read and judged (and loaded, when valid).
pub struct FileProcessed<'a> {
    pub integration: &'a str,
    pub key: &'a str,
    pub verdict: &'static str,
    pub rows: u64,
    pub compressed_bytes: u64,
    pub decompressed_bytes: u64,
    pub elapsed: Duration,
}

impl FileProcessed<'_> {
    pub fn emit(&self) {
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.rows as f64 / secs
        } else {
            0.0
        };
        tracing::info!(
            integration = self.integration,
            file = self.key,
            verdict = self.verdict,
            rows = self.rows,
            bytes = self.decompressed_bytes,
            compressed_bytes = self.compressed_bytes,
            seconds = secs,
            rows_per_second = rate.round() as u64,
            "file processed"
        );
        let m = metrics();
        let labels = [("integration", self.integration)];
        m.add(
            "files_total",
            &[("integration", self.integration), ("verdict", self.verdict)],
            1.0,
        );
        m.add("rows_total", &labels, self.rows as f64);
        m.add("bytes_total", &labels, self.decompressed_bytes as f64);
        m.add("file_seconds_sum", &labels, secs);
    }
}

/// A folder reached `processed/` with its status.
pub struct FolderFinished<'a> {
    pub integration: &'a str,
    pub folder: &'a str,
    pub target: &'a str,
    pub success: bool,
    pub records: u64,
}

impl FolderFinished<'_> {
    pub fn emit(&self) {
        let result = if self.success { "success" } else { "error" };
        tracing::info!(
            integration = self.integration,
            folder = self.folder,
            target = self.target,
            result,
            records = self.records,
            "folder finished"
        );
        metrics().add(
            "folders_total",
            &[("integration", self.integration), ("result", result)],
            1.0,
        );
    }
}

/// Something was wrong that the next run retries: an integration could not be scanned, or a
/// folder not finished.
pub struct RunFailed<'a> {
    pub integration: &'a str,
    pub what: &'static str,
    pub error: &'a str,
}

impl RunFailed<'_> {
    pub fn emit(&self) {
        tracing::error!(
            integration = self.integration,
            what = self.what,
            error = self.error,
            "failed"
        );
        metrics().add(
            "failures_total",
            &[("integration", self.integration), ("what", self.what)],
            1.0,
        );
    }
}

/// Something under `current/` is left alone; the customer may want to know.
pub struct LeftAlone<'a> {
    pub integration: &'a str,
    pub notice: &'a str,
}

impl LeftAlone<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            integration = self.integration,
            notice = self.notice,
            "left alone"
        );
        metrics().add(
            "left_alone_total",
            &[("integration", self.integration)],
            1.0,
        );
    }
}

/// A whole run (every integration once) ended.
pub struct RunFinished {
    pub integrations: usize,
    pub failed: usize,
    pub folders: usize,
    pub files: usize,
    pub rows: u64,
    pub elapsed: Duration,
}

impl RunFinished {
    pub fn emit(&self) {
        tracing::info!(
            integrations = self.integrations,
            failed = self.failed,
            folders = self.folders,
            files = self.files,
            rows = self.rows,
            seconds = self.elapsed.as_secs_f64(),
            "run finished"
        );
        let m = metrics();
        m.add("runs_total", &[], 1.0);
        m.set("last_run_failed_integrations", &[], self.failed as f64);
    }
}

/// A callback delivery ended (delivered, to be retried, or abandoned).
pub struct CallbackAttempted<'a> {
    pub integration: &'a str,
    pub folder_path: &'a str,
    pub outcome: &'a crate::state::CallbackOutcome,
}

impl CallbackAttempted<'_> {
    pub fn emit(&self) {
        use crate::state::CallbackOutcome;
        let result = match self.outcome {
            CallbackOutcome::Delivered => {
                tracing::info!(
                    integration = self.integration,
                    folder_path = self.folder_path,
                    "callback delivered"
                );
                "delivered"
            }
            CallbackOutcome::Failed { error, retry_at } => {
                tracing::warn!(integration = self.integration, folder_path = self.folder_path, error = %error, retry_at = %retry_at, "callback not delivered; will retry");
                "failed"
            }
            CallbackOutcome::Abandoned { error } => {
                tracing::error!(integration = self.integration, folder_path = self.folder_path, error = %error, "callback refused; not retried");
                "abandoned"
            }
        };
        metrics().add(
            "callbacks_total",
            &[("integration", self.integration), ("result", result)],
            1.0,
        );
    }
}

/// Another replica holds an integration's lease: this one leaves it alone this time.
pub struct LeaseHeld<'a> {
    pub integration: &'a str,
}

impl LeaseHeld<'_> {
    pub fn emit(&self) {
        tracing::info!(
            integration = self.integration,
            "another replica is working on this integration; skipped"
        );
        metrics().add(
            "lease_skips_total",
            &[("integration", self.integration)],
            1.0,
        );
    }
}

/// An S3 event triggered integrations (`watch` with `[events]`).
pub struct EventReceived<'a> {
    pub integrations: &'a [String],
}

impl EventReceived<'_> {
    pub fn emit(&self) {
        tracing::info!(integrations = ?self.integrations, "S3 event: a folder is ready");
        for integration in self.integrations {
            metrics().add("events_total", &[("integration", integration)], 1.0);
        }
    }
}
