//! Helpers shared by the integration tests: configs, gzip, and validating bytes in memory.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;

use dropfolder::config::{Config, SecretCheck};
use dropfolder::validate::{FileReport, FileRules, Row, RowConsumer, validate};
use flate2::Compression;
use flate2::write::GzEncoder;

/// The SPEC's example schema, with `integration` lines added to the one integration.
pub fn config_with(integration_extra: &str) -> Config {
    let text = format!(
        r#"
[schemas.users]
id = "string"
email = "string"
signUpDate = "date"
score = "number"
isTrial = "boolean"

[[integrations]]
name = "acme-users"
entity = "user"
schema = "users"
bucket = "file:///tmp/unused"
{date_format}
{integration_extra}
"#,
        date_format = if integration_extra.contains("date_format") {
            ""
        } else {
            "date_format = \"yyyy-MM-dd\""
        },
    );
    let config = Config::parse(&text, PathBuf::new()).expect("test config parses");
    let problems = config.check(SecretCheck::Skip);
    assert!(
        problems.is_empty(),
        "test config has problems: {problems:?}"
    );
    config
}

pub fn rules_with(integration_extra: &str) -> FileRules {
    config_with(integration_extra)
        .compile(SecretCheck::Skip)
        .expect("rules build")
        .integrations
        .remove(0)
        .rules
}

pub fn rules() -> FileRules {
    rules_with("")
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(data).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

/// Collects each row as `id|product_key|attributes-json`.
#[derive(Default)]
pub struct Collect(pub Vec<String>);

impl RowConsumer for Collect {
    type Error = std::convert::Infallible;

    async fn accept(&mut self, row: &Row<'_>) -> Result<(), Self::Error> {
        let mut json = Vec::new();
        row.write_attributes_json(&mut json);
        self.0.push(format!(
            "{}|{}|{}",
            row.id(),
            row.product_key(),
            String::from_utf8_lossy(&json)
        ));
        Ok(())
    }
}

/// Validates `bytes` (already gzipped) as `name`, collecting the rows handed over.
pub async fn check_bytes(rules: &FileRules, bytes: Vec<u8>) -> (FileReport, Vec<String>) {
    let mut rows = Collect::default();
    let report = validate(
        rules,
        "users.csv.gz",
        std::io::Cursor::new(bytes),
        &mut rows,
        None,
    )
    .await
    .expect("an in-memory source cannot fail");
    (report, rows.0)
}

/// Validates CSV text, gzipped first.
pub async fn check_csv(rules: &FileRules, csv: &str) -> (FileReport, Vec<String>) {
    check_bytes(rules, gzip(csv.as_bytes())).await
}

/// Every error of a report as `status.txt` lines show them.
pub fn messages(report: &FileReport) -> Vec<String> {
    report
        .errors
        .first
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// A name unique to this test process and call, usable as a database name.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{n}_{nanos:x}", std::process::id())
}

/// One scan of every integration of `config`, with a worker opened for it.
pub async fn run_once(config: &Config) -> dropfolder::worker::RunReport {
    dropfolder::worker::Worker::open(
        config
            .compile(dropfolder::config::SecretCheck::Require)
            .expect("config compiles"),
    )
    .await
    .expect("worker")
    .run_once()
    .await
}

/// The first integration's last callback error, as the state keeps it.
pub async fn callback_error(config: &Config) -> Option<String> {
    let state = dropfolder::worker::open_state(
        &config
            .compile(dropfolder::config::SecretCheck::Require)
            .expect("config compiles"),
    )
    .await
    .expect("state");
    state
        .integrations()
        .await
        .expect("status")
        .into_iter()
        .next()
        .and_then(|s| s.callback_error)
}
