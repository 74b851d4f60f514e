//! What a sink is built from: the checked `[sink]` section (or the state database), with the
//! HTTP presets already resolved into a URL, a body format and limits.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::outbound::{AuthSettings, RetryOn};
use crate::postgres::PostgresSettings;

/// The sink in effect.
#[derive(Debug, Clone)]
pub enum SinkSettings {
    /// The database file, resolved against the config file's directory.
    Sqlite(PathBuf),
    Postgres(PostgresSettings),
    Http(HttpSinkSettings),
}

/// How records are laid out in an HTTP sink's request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HttpBodyFormat {
    /// `[{...},{...}]`
    JsonArray,
    /// One JSON object per line.
    Ndjson,
    /// One JSON object per request.
    Single,
}

/// An HTTP sink, its preset (if any) applied.
#[derive(Debug, Clone)]
pub struct HttpSinkSettings {
    /// Where records are POSTed (for the `dcr` preset, the rule's stream URL).
    pub url: String,
    pub format: HttpBodyFormat,
    /// Largest request body.
    pub max_body_bytes: usize,
    pub retry_on: RetryOn,
    /// Attempts per request.
    pub attempts: u32,
    /// Per attempt.
    pub timeout: Duration,
    /// Requests per second; unlimited when absent.
    pub rate_limit_qps: Option<f64>,
    pub auth: Option<AuthSettings>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
}
