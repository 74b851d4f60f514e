//! Every observable event is one struct that both logs and counts (Vector's internal events):
//! the log line and the metric can never drift apart. Counters and histograms live in a
//! process-wide `prometheus-client` registry that `watch` serves as Prometheus text.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A series' labels, in the order they are written.
type Labels = Vec<(&'static str, String)>;

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

type Counters = Family<Labels, Counter>;
type Gauges = Family<Labels, Gauge>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Upper bounds (seconds) of an integration's scan, its folders included. 900 s is the
/// `every = "15m"` of `deploy/config`: the alert on a scan overrunning its schedule counts the
/// scans above it. Ten series per integration, so thousands of integrations stay affordable.
pub const SCAN_BUCKETS: [f64; 9] = [0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0];
/// Upper bounds (seconds) of one data file read, judged and loaded.
pub const FILE_BUCKETS: [f64; 9] = [0.05, 0.25, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0];

fn scan_histogram() -> Histogram {
    Histogram::new(SCAN_BUCKETS)
}

fn file_histogram() -> Histogram {
    Histogram::new(FILE_BUCKETS)
}

/// Every series name `/metrics` can show (`deploy/lint` checks that the alert rules and the
/// dashboard use only these; a unit test checks that they are what the registry writes).
pub const METRIC_NAMES: &[&str] = &[
    "dropfolder_scans_total",
    "dropfolder_scan_seconds_bucket",
    "dropfolder_scan_seconds_sum",
    "dropfolder_scan_seconds_count",
    "dropfolder_files_started_total",
    "dropfolder_files_total",
    "dropfolder_rows_total",
    "dropfolder_bytes_total",
    "dropfolder_file_seconds_bucket",
    "dropfolder_file_seconds_sum",
    "dropfolder_file_seconds_count",
    "dropfolder_folders_total",
    "dropfolder_failures_total",
    "dropfolder_left_alone_total",
    "dropfolder_runs_total",
    "dropfolder_last_run_failed_integrations",
    "dropfolder_callbacks_total",
    "dropfolder_lease_skips_total",
    "dropfolder_events_total",
    "dropfolder_poll_windows_total",
    "dropfolder_poll_pages_total",
    "dropfolder_poll_records_total",
    "dropfolder_push_requests_total",
    "dropfolder_push_records_total",
    "dropfolder_integration_status",
    "dropfolder_integration_stale",
    "dropfolder_integration_callback_undelivered",
    "dropfolder_integration_last_scan_timestamp_seconds",
    "dropfolder_integration_last_data_timestamp_seconds",
    "dropfolder_config_reloads_total",
    "dropfolder_config_loaded_timestamp_seconds",
    "dropfolder_config_info",
];

/// The process-wide metrics, registered once with `prometheus-client`, which writes the
/// exposition text (escaping, types, histogram buckets).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    scans: Counters,
    scan_seconds: Histograms,
    files_started: Counters,
    files: Counters,
    rows: Counters,
    bytes: Counters,
    file_seconds: Histograms,
    folders: Counters,
    failures: Counters,
    left_alone: Counters,
    runs: Counter,
    last_run_failed_integrations: Gauge,
    callbacks: Counters,
    lease_skips: Counters,
    events: Counters,
    poll_windows: Counters,
    poll_pages: Counters,
    poll_records: Counters,
    push_requests: Counters,
    push_records: Counters,
    integration_status: Gauges,
    integration_stale: Gauges,
    integration_callback_undelivered: Gauges,
    integration_last_scan: Gauges,
    integration_last_data: Gauges,
    config_reloads: Counters,
    config_loaded: Gauge,
    config_info: Gauges,
    scrape: std::sync::Mutex<()>,
}

/// The process-wide registry.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// One integration's status as `/metrics` shows it (set from the state at each scrape).
#[derive(Debug, Clone)]
pub struct IntegrationGauges<'a> {
    pub integration: &'a str,
    /// `Ready`, `Active`, `Warning` or `Failed`.
    pub status: &'static str,
    /// No data (or none ever) for longer than `stale_after`.
    pub stale: bool,
    /// The newest callback attempt failed: a callback waits in the outbox.
    pub callback_undelivered: bool,
    pub last_scan_at: Option<i64>,
    pub last_data_at: Option<i64>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("dropfolder");
        let counters = |registry: &mut Registry, name: &str, help: &str| {
            let family = Counters::default();
            registry.register(name, help, family.clone());
            family
        };
        let gauges = |registry: &mut Registry, name: &str, help: &str| {
            let family = Gauges::default();
            registry.register(name, help, family.clone());
            family
        };
        let r = &mut registry;
        let scans = counters(r, "scans", "Integration scans, by result");
        let scan_seconds = Histograms::new_with_constructor(scan_histogram as fn() -> Histogram);
        r.register(
            "scan_seconds",
            "Seconds an integration's scan took, its folders included",
            scan_seconds.clone(),
        );
        let files_started = counters(r, "files_started", "Data files opened");
        let files = counters(r, "files", "Data files judged, by verdict");
        let rows = counters(r, "rows", "Rows read from data files");
        let bytes = counters(r, "bytes", "Decompressed bytes read from data files");
        let file_seconds = Histograms::new_with_constructor(file_histogram as fn() -> Histogram);
        r.register(
            "file_seconds",
            "Seconds a data file took to read, judge and load",
            file_seconds.clone(),
        );
        let folders = counters(r, "folders", "Folders moved to processed/, by result");
        let failures = counters(r, "failures", "Scans or folders that failed, by what");
        let left_alone = counters(r, "left_alone", "Things left alone under current/");
        let runs = Counter::default();
        r.register("runs", "Runs over every integration", runs.clone());
        let last_run_failed_integrations = Gauge::default();
        r.register(
            "last_run_failed_integrations",
            "Integrations that failed in the last run",
            last_run_failed_integrations.clone(),
        );
        let callbacks = counters(r, "callbacks", "Callback deliveries, by result");
        let lease_skips = counters(
            r,
            "lease_skips",
            "Scans skipped: another replica held the lease",
        );
        let events = counters(r, "events", "S3 events that triggered an integration");
        let poll_windows = counters(r, "poll_windows", "API query windows polled, by result");
        let poll_pages = counters(r, "poll_pages", "API pages fetched by the poller");
        let poll_records = counters(r, "poll_records", "Records applied from polled APIs");
        let push_requests = counters(
            r,
            "push_requests",
            "Requests to the push endpoint, by answer code",
        );
        let push_records = counters(r, "push_records", "Pushed records applied");
        let integration_status = gauges(
            r,
            "integration_status",
            "1 for the integration's current status (source document 000), 0 for the others",
        );
        let integration_stale = gauges(
            r,
            "integration_stale",
            "1 when no data came for longer than stale_after (since first seen, if never)",
        );
        let integration_callback_undelivered = gauges(
            r,
            "integration_callback_undelivered",
            "1 when the newest callback attempt failed and it waits in the outbox",
        );
        let integration_last_scan = gauges(
            r,
            "integration_last_scan_timestamp_seconds",
            "Unix time of the integration's last scan",
        );
        let integration_last_data = gauges(
            r,
            "integration_last_data_timestamp_seconds",
            "Unix time of the integration's last finished folder",
        );
        let config_reloads = counters(
            r,
            "config_reloads",
            "Config reloads of watch, by result (applied, refused)",
        );
        let config_loaded = Gauge::default();
        r.register(
            "config_loaded_timestamp_seconds",
            "Unix time the config in force was loaded (at start or by the last applied reload)",
            config_loaded.clone(),
        );
        let config_info = gauges(
            r,
            "config_info",
            "1, labelled with the content hash of the config in force",
        );
        Metrics {
            registry,
            scans,
            scan_seconds,
            files_started,
            files,
            rows,
            bytes,
            file_seconds,
            folders,
            failures,
            left_alone,
            runs,
            last_run_failed_integrations,
            callbacks,
            lease_skips,
            events,
            poll_windows,
            poll_pages,
            poll_records,
            push_requests,
            push_records,
            integration_status,
            integration_stale,
            integration_callback_undelivered,
            integration_last_scan,
            integration_last_data,
            config_reloads,
            config_loaded,
            config_info,
            scrape: std::sync::Mutex::new(()),
        }
    }

    /// The exposition with the per-integration status gauges replaced by `all`
    /// (integrations no longer configured disappear). Scrapes take turns, so one never
    /// writes the gauges half-replaced by another.
    pub fn render_with_integrations(&self, all: &[IntegrationGauges<'_>]) -> String {
        let _turn = self.scrape.lock();
        self.set_integrations(all);
        self.render()
    }

    fn set_integrations(&self, all: &[IntegrationGauges<'_>]) {
        self.integration_status.clear();
        self.integration_stale.clear();
        self.integration_callback_undelivered.clear();
        self.integration_last_scan.clear();
        self.integration_last_data.clear();
        for one in all {
            let name = [("integration", one.integration)];
            for status in ["Ready", "Active", "Warning", "Failed"] {
                self.integration_status
                    .get_or_create(&labels(&[
                        ("integration", one.integration),
                        ("status", status),
                    ]))
                    .set(i64::from(one.status == status));
            }
            self.integration_stale
                .get_or_create(&labels(&name))
                .set(i64::from(one.stale));
            self.integration_callback_undelivered
                .get_or_create(&labels(&name))
                .set(i64::from(one.callback_undelivered));
            if let Some(at) = one.last_scan_at {
                self.integration_last_scan
                    .get_or_create(&labels(&name))
                    .set(at);
            }
            if let Some(at) = one.last_data_at {
                self.integration_last_data
                    .get_or_create(&labels(&name))
                    .set(at);
            }
        }
    }

    /// The Prometheus text exposition (version 0.0.4) of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// The `Content-Type` of [`Metrics::render`].
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

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
        m.scans
            .get_or_create(&labels(&[
                ("integration", self.integration),
                ("result", result),
            ]))
            .inc();
        m.scan_seconds
            .get_or_create(&labels(&[("integration", self.integration)]))
            .observe(seconds);
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
        metrics()
            .files_started
            .get_or_create(&labels(&[("integration", self.integration)]))
            .inc();
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
        let integration = labels(&[("integration", self.integration)]);
        m.files
            .get_or_create(&labels(&[
                ("integration", self.integration),
                ("verdict", self.verdict),
            ]))
            .inc();
        m.rows.get_or_create(&integration).inc_by(self.rows);
        m.bytes
            .get_or_create(&integration)
            .inc_by(self.decompressed_bytes);
        m.file_seconds.get_or_create(&integration).observe(secs);
    }
}

/// A request to the push endpoint was answered (`integration` empty when the name is not a
/// push integration's: unknown names never become labels).
pub struct PushAnswered<'a> {
    pub integration: &'a str,
    pub code: u16,
    /// Records applied by this request (0 unless a 202 that was not a replay).
    pub records: u64,
}

impl PushAnswered<'_> {
    pub fn emit(&self) {
        tracing::debug!(
            integration = self.integration,
            code = self.code,
            records = self.records,
            "push request answered"
        );
        let m = metrics();
        m.push_requests
            .get_or_create(&labels(&[
                ("integration", self.integration),
                ("code", &self.code.to_string()),
            ]))
            .inc();
        if self.records > 0 {
            m.push_records
                .get_or_create(&labels(&[("integration", self.integration)]))
                .inc_by(self.records);
        }
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
        metrics()
            .folders
            .get_or_create(&labels(&[
                ("integration", self.integration),
                ("result", result),
            ]))
            .inc();
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
        metrics()
            .failures
            .get_or_create(&labels(&[
                ("integration", self.integration),
                ("what", self.what),
            ]))
            .inc();
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
        metrics()
            .left_alone
            .get_or_create(&labels(&[("integration", self.integration)]))
            .inc();
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
        m.runs.inc();
        m.last_run_failed_integrations
            .set(i64::try_from(self.failed).unwrap_or(i64::MAX));
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
        metrics()
            .callbacks
            .get_or_create(&labels(&[
                ("integration", self.integration),
                ("result", result),
            ]))
            .inc();
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
        metrics()
            .lease_skips
            .get_or_create(&labels(&[("integration", self.integration)]))
            .inc();
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
            metrics()
                .events
                .get_or_create(&labels(&[("integration", integration)]))
                .inc();
        }
    }
}

/// A query window of a poll integration was done (or failed, and is asked again next run).
pub struct WindowPolled<'a> {
    pub integration: &'a str,
    pub window: &'a str,
    pub pages: usize,
    pub records: u64,
    /// `applied`, `already_applied` or `failed`.
    pub result: &'static str,
}

impl WindowPolled<'_> {
    pub fn emit(&self) {
        tracing::info!(
            integration = self.integration,
            window = self.window,
            pages = self.pages,
            records = self.records,
            result = self.result,
            "window polled"
        );
        let m = metrics();
        let integration = labels(&[("integration", self.integration)]);
        m.poll_windows
            .get_or_create(&labels(&[
                ("integration", self.integration),
                ("result", self.result),
            ]))
            .inc();
        m.poll_pages
            .get_or_create(&integration)
            .inc_by(self.pages as u64);
        if self.result == "applied" {
            m.poll_records
                .get_or_create(&integration)
                .inc_by(self.records);
        }
    }
}

/// The config in force: loaded at start, or put in force by a reload.
pub struct ConfigLoaded<'a> {
    /// Content hash of the config file(s) (`reload::ConfigFiles::fingerprint`).
    pub hash: &'a str,
    pub integrations: usize,
    /// What a reload changed: the integrations added, removed and changed; `None` at start.
    pub changes: Option<[&'a [String]; 3]>,
}

impl ConfigLoaded<'_> {
    pub fn emit(&self) {
        let m = metrics();
        if let Some([added, removed, changed]) = self.changes {
            tracing::info!(
                hash = self.hash,
                integrations = self.integrations,
                added = ?added,
                removed = ?removed,
                changed = ?changed,
                "config reloaded"
            );
            m.config_reloads
                .get_or_create(&labels(&[("result", "applied")]))
                .inc();
        }
        m.config_loaded.set(chrono::Utc::now().timestamp());
        m.config_info.clear();
        m.config_info
            .get_or_create(&labels(&[("hash", self.hash)]))
            .set(1);
    }
}

/// A new config was refused whole; the one in force is kept.
pub struct ConfigRefused<'a> {
    /// Content hash of what was refused, if the files could be read.
    pub hash: Option<&'a str>,
    /// Every problem, as `dropfolder check` prints them.
    pub problems: &'a [String],
}

impl ConfigRefused<'_> {
    pub fn emit(&self) {
        for problem in self.problems {
            tracing::error!(hash = self.hash, problem = %problem, "config problem");
        }
        tracing::error!(
            hash = self.hash,
            problems = self.problems.len(),
            "config refused: the config in force is kept"
        );
        metrics()
            .config_reloads
            .get_or_create(&labels(&[("result", "refused")]))
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The series names in an exposition text.
    fn names(text: &str) -> std::collections::BTreeSet<String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn metric_names_are_what_the_registry_writes() {
        let integration = "names-test";
        IntegrationScanned {
            integration,
            folders: 1,
            waiting: 0,
            failed: false,
            elapsed: Duration::from_millis(20),
        }
        .emit();
        FileStarted {
            integration,
            key: "k",
        }
        .emit();
        FileProcessed {
            integration,
            key: "k",
            verdict: "valid",
            rows: 3,
            compressed_bytes: 10,
            decompressed_bytes: 30,
            elapsed: Duration::from_millis(2),
        }
        .emit();
        FolderFinished {
            integration,
            folder: "f",
            target: "t",
            success: true,
            records: 3,
        }
        .emit();
        RunFailed {
            integration,
            what: "scan",
            error: "e",
        }
        .emit();
        LeftAlone {
            integration,
            notice: "n",
        }
        .emit();
        RunFinished {
            integrations: 1,
            failed: 0,
            folders: 1,
            files: 1,
            rows: 3,
            elapsed: Duration::from_millis(30),
        }
        .emit();
        CallbackAttempted {
            integration,
            folder_path: "p",
            outcome: &crate::state::CallbackOutcome::Delivered,
        }
        .emit();
        LeaseHeld { integration }.emit();
        PushAnswered {
            integration,
            code: 202,
            records: 2,
        }
        .emit();
        EventReceived {
            integrations: &[integration.to_string()],
        }
        .emit();
        WindowPolled {
            integration,
            window: "poll/w",
            pages: 2,
            records: 3,
            result: "applied",
        }
        .emit();
        ConfigLoaded {
            hash: "0123",
            integrations: 1,
            changes: Some([&[], &[], &[]]),
        }
        .emit();
        ConfigRefused {
            hash: None,
            problems: &["p".to_string()],
        }
        .emit();
        let text = metrics().render_with_integrations(&[IntegrationGauges {
            integration,
            status: "Active",
            stale: false,
            callback_undelivered: false,
            last_scan_at: Some(1),
            last_data_at: Some(1),
        }]);
        let expected: std::collections::BTreeSet<String> =
            METRIC_NAMES.iter().map(|n| n.to_string()).collect();
        assert_eq!(names(&text), expected, "{text}");
        assert!(
            text.contains("# TYPE dropfolder_file_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains("dropfolder_rows_total{integration=\"names-test\"} 3"),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        LeftAlone {
            integration: "a\"b\\c\nd",
            notice: "n",
        }
        .emit();
        let text = metrics().render();
        assert!(
            text.contains(r#"dropfolder_left_alone_total{integration="a\"b\\c\nd"} 1"#),
            "{text}"
        );
    }
}
