//! The deployment-wide sections: state, sink, schedule, server, events.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::integration::{
    check_attempts, check_http_url, default_retry_count, default_timeout_seconds,
};
use super::{Problem, SecretCheck, SecretRef, redact_url};
use crate::outbound::{AuthKind, AuthSettings, RetryOn};
use crate::schedule::{Schedule, ScheduleSettings};
use crate::sink::{HttpBodyFormat, HttpSinkSettings};

/// `[state]`: the ledger, leases and integration status.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `sqlite://PATH` (relative to the config file) or `postgres://user@host/db`.
    /// Default `sqlite://dropfolder.db`.
    #[serde(default = "default_database_url")]
    pub url: String,
    /// For PostgreSQL: the password, when the URL has none.
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    /// Connections to a PostgreSQL state database. Default 4.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// How long a replica's claim on a folder lasts without renewal. Default 300 s.
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u64,
}

fn default_database_url() -> String {
    "sqlite://dropfolder.db".to_string()
}

const fn default_pool_size() -> usize {
    4
}

const fn default_lease_seconds() -> u64 {
    300
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            url: default_database_url(),
            password_env: None,
            password_file: None,
            pool_size: default_pool_size(),
            lease_seconds: default_lease_seconds(),
        }
    }
}

impl StateConfig {
    pub fn password(&self, base: &Path) -> Option<SecretRef> {
        SecretRef::from_keys(
            self.password_env.as_ref(),
            self.password_file.as_ref(),
            base,
        )
    }

    pub(super) fn check(&self, secrets: SecretCheck, base: &Path, problems: &mut Vec<Problem>) {
        check_password(
            "state",
            self.password_env.as_ref(),
            self.password_file.as_ref(),
            (secrets, base),
            problems,
        );
        if database_kind(&self.url).is_none() {
            problems.push(Problem::section(
                "state",
                "url",
                format!(
                    "'{}' is not sqlite://PATH or postgres://...",
                    redact_url(&self.url)
                ),
            ));
        }
        if self.pool_size == 0 || self.lease_seconds < 5 {
            problems.push(Problem::section(
                "state",
                "pool_size",
                "pool_size must be at least 1 and lease_seconds at least 5",
            ));
        }
    }
}

/// The three kinds of sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    Sqlite,
    Postgres,
    Http,
}

/// HTTP sink presets built on the generic JSON-records sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HttpPreset {
    /// Source document 004: JSON objects, bearer token, tenant header, 254 KB bodies.
    StreamingIngest,
    /// Source documents 001/002: a data collection rule (endpoint + rule id + `Custom-` stream).
    Dcr,
}

/// `[sink]`: a database URL, or `kind = "http"` with the request options of 001/002/004.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Default: from the URL scheme (`sqlite://`, `postgres://`).
    pub kind: Option<SinkKind>,
    pub url: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    pub pool_size: Option<usize>,
    pub preset: Option<HttpPreset>,
    pub auth: Option<AuthConfig>,
    /// Extra request headers, e.g. `{ "X-Tenant" = "acme" }`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Default: `json-array`; `single` for the streaming-ingest preset.
    pub format: Option<HttpBodyFormat>,
    /// Largest request body. Default 1,048,576; 254,000 for the streaming-ingest preset.
    pub max_body_bytes: Option<usize>,
    /// Attempts per request, 1..=6. Default 3.
    #[serde(default = "default_retry_count")]
    pub retry_count: u32,
    /// Per attempt, 1..=180 seconds. Default 20.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// Requests per second; unlimited when absent.
    pub rate_limit_qps: Option<f64>,
    /// `dcr` preset: the rule's immutable id (`dcr-...`).
    pub rule_id: Option<String>,
    /// `dcr` preset: the stream declared in the rule (`Custom-...`).
    pub stream_name: Option<String>,
}

impl SinkConfig {
    /// The database password's reference, when the sink names one.
    pub fn password_of(&self, base: &Path) -> Option<SecretRef> {
        SecretRef::from_keys(
            self.password_env.as_ref(),
            self.password_file.as_ref(),
            base,
        )
    }

    /// The kind in effect: explicit, or from the URL scheme.
    pub fn kind(&self) -> Option<SinkKind> {
        self.kind
            .or_else(|| self.url.as_deref().and_then(database_kind))
    }

    pub(super) fn check(&self, secrets: SecretCheck, base: &Path, problems: &mut Vec<Problem>) {
        check_password(
            "sink",
            self.password_env.as_ref(),
            self.password_file.as_ref(),
            (secrets, base),
            problems,
        );
        let mut report = |key: &str, message: String| {
            problems.push(Problem::section("sink", key, message));
        };
        let url = self.url.as_deref().unwrap_or("");
        match self.kind() {
            None => report(
                "url",
                format!(
                    "'{}' is not sqlite://PATH or postgres://...; for an HTTP API set kind = \"http\"",
                    redact_url(url)
                ),
            ),
            Some(SinkKind::Http) => self.check_http(url, secrets, base, &mut report),
            Some(kind) => {
                if database_kind(url) != Some(kind) {
                    report(
                        "url",
                        format!("a {kind:?} sink needs a matching database URL"),
                    );
                }
                if self.preset.is_some() || self.auth.is_some() || !self.headers.is_empty() {
                    report(
                        "kind",
                        "preset, auth and headers are for kind = \"http\"".into(),
                    );
                }
            }
        }
    }

    fn check_http(
        &self,
        url: &str,
        secrets: SecretCheck,
        base: &Path,
        report: &mut impl FnMut(&str, String),
    ) {
        check_http_url(url).unwrap_or_else(|m| report("url", m));
        check_attempts(self.retry_count, self.timeout_seconds, "", report);
        if self
            .rate_limit_qps
            .is_some_and(|q| !(q > 0.0 && q.is_finite()))
        {
            report("rate_limit_qps", "must be a positive number".into());
        }
        if self.max_body_bytes.is_some_and(|b| b < 1024) {
            report("max_body_bytes", "must be at least 1024".into());
        }
        if self.preset == Some(HttpPreset::Dcr) {
            if self
                .rule_id
                .as_deref()
                .is_none_or(|r| !r.starts_with("dcr-"))
            {
                report(
                    "rule_id",
                    "the dcr preset needs the rule's immutable id (dcr-...)".into(),
                );
            }
            if self
                .stream_name
                .as_deref()
                .is_none_or(|s| !s.starts_with("Custom-"))
            {
                report(
                    "stream_name",
                    "the dcr preset needs a stream named Custom-...".into(),
                );
            }
            if !matches!(self.auth, Some(AuthConfig::Oauth2 { .. })) {
                report("auth", "the dcr preset authenticates with oauth2".into());
            }
        }
        if let Some(auth) = &self.auth {
            auth.check(secrets, base, report);
        }
    }
}

/// The Logs Ingestion API's body limit and version (the `dcr` preset).
const DCR_MAX_BODY: usize = 1_000_000;
const DCR_API_VERSION: &str = "2023-01-01";
const DCR_SCOPE: &str = "https://monitor.azure.com//.default";
/// Source document 004: "Amperity limits the maximum payload size to 254 kb".
const STREAMING_INGEST_MAX_BODY: usize = 254_000;
const GENERIC_MAX_BODY: usize = 1024 * 1024;

impl SinkConfig {
    /// A checked `kind = "http"` sink with its preset applied; `None` (with a problem) if
    /// something `check` should have refused is missing.
    pub(super) fn http_settings(&self, base: &Path) -> Result<HttpSinkSettings, Problem> {
        let missing = |key: &str| Problem::section("sink", key, "missing");
        let url = self.url.clone().ok_or_else(|| missing("url"))?;
        let (url, format, max_body, retry_on) = match self.preset {
            Some(HttpPreset::StreamingIngest) => (
                url,
                HttpBodyFormat::Single,
                STREAMING_INGEST_MAX_BODY,
                RetryOn::StreamingIngest,
            ),
            Some(HttpPreset::Dcr) => {
                let rule_id = self.rule_id.as_deref().ok_or_else(|| missing("rule_id"))?;
                let stream = (self.stream_name.as_deref()).ok_or_else(|| missing("stream_name"))?;
                let url = format!(
                    "{}/dataCollectionRules/{rule_id}/streams/{stream}?api-version={DCR_API_VERSION}",
                    url.trim_end_matches('/'),
                );
                (
                    url,
                    HttpBodyFormat::JsonArray,
                    DCR_MAX_BODY,
                    RetryOn::Standard,
                )
            }
            None => (
                url,
                HttpBodyFormat::JsonArray,
                GENERIC_MAX_BODY,
                RetryOn::Standard,
            ),
        };
        let auth = match &self.auth {
            Some(auth) => Some(
                auth.settings(base, self.preset)
                    .ok_or_else(|| missing("auth"))?,
            ),
            None => None,
        };
        Ok(HttpSinkSettings {
            url,
            format: self.format.unwrap_or(format),
            max_body_bytes: self.max_body_bytes.unwrap_or(max_body),
            retry_on,
            attempts: self.retry_count,
            timeout: Duration::from_secs(self.timeout_seconds),
            rate_limit_qps: self.rate_limit_qps,
            auth,
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }
}

/// Outbound authentication, as in source documents 001/002.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum AuthConfig {
    /// `<header>: <prefix> <key>`; header default `Authorization`, prefix default `token`.
    /// `header = ""` sends the bare key in `Authorization`.
    Apikey {
        key_env: Option<String>,
        key_file: Option<String>,
        header: Option<String>,
        prefix: Option<String>,
    },
    Basic {
        username: String,
        password_env: Option<String>,
        password_file: Option<String>,
    },
    /// Client-credentials grant; the token is cached until shortly before it expires.
    Oauth2 {
        token_url: String,
        client_id: String,
        client_secret_env: Option<String>,
        client_secret_file: Option<String>,
        scope: Option<String>,
        #[serde(default)]
        token_headers: BTreeMap<String, String>,
    },
    /// `Authorization: Bearer <token>` (a JWT or any bearer token).
    Bearer {
        token_env: Option<String>,
        token_file: Option<String>,
    },
}

impl AuthConfig {
    /// The secret this auth needs, from its `*_env` / `*_file` keys.
    pub fn secret(&self, base: &Path) -> Option<SecretRef> {
        let (env, file) = match self {
            AuthConfig::Apikey {
                key_env, key_file, ..
            } => (key_env, key_file),
            AuthConfig::Basic {
                password_env,
                password_file,
                ..
            } => (password_env, password_file),
            AuthConfig::Oauth2 {
                client_secret_env,
                client_secret_file,
                ..
            } => (client_secret_env, client_secret_file),
            AuthConfig::Bearer {
                token_env,
                token_file,
            } => (token_env, token_file),
        };
        SecretRef::from_keys(env.as_ref(), file.as_ref(), base)
    }

    /// The checked authentication; `None` when it names no secret.
    pub(super) fn settings(&self, base: &Path, preset: Option<HttpPreset>) -> Option<AuthSettings> {
        let kind = match self {
            AuthConfig::Apikey { header, prefix, .. } => AuthKind::ApiKey {
                header: header.clone(),
                prefix: prefix.clone(),
            },
            AuthConfig::Basic { username, .. } => AuthKind::Basic {
                username: username.clone(),
            },
            AuthConfig::Bearer { .. } => AuthKind::Bearer,
            AuthConfig::Oauth2 {
                token_url,
                client_id,
                scope,
                token_headers,
                ..
            } => AuthKind::OAuth2 {
                token_url: token_url.clone(),
                client_id: client_id.clone(),
                scope: scope
                    .clone()
                    .or_else(|| (preset == Some(HttpPreset::Dcr)).then(|| DCR_SCOPE.to_string())),
                token_headers: token_headers.clone(),
            },
        };
        Some(AuthSettings {
            secret: self.secret(base)?,
            kind,
        })
    }

    pub(super) fn check(
        &self,
        secrets: SecretCheck,
        base: &Path,
        report: &mut impl FnMut(&str, String),
    ) {
        match self.secret(base) {
            None => report("auth", "name its secret with a *_env or *_file key".into()),
            Some(secret) if secrets == SecretCheck::Require => {
                if let Err(e) = secret.read() {
                    report("auth", e.to_string());
                }
            }
            Some(_) => {}
        }
        if let AuthConfig::Oauth2 { token_url, .. } = self {
            check_http_url(token_url).unwrap_or_else(|m| report("auth.token_url", m));
        }
    }
}

/// `[schedule]`: when `watch` scans, and how much at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// A fixed interval such as `15m`. Default `15m` unless `cron` is set.
    pub every: Option<String>,
    /// A 5-field cron expression, e.g. `*/15 * * * *`.
    pub cron: Option<String>,
    /// IANA time zone for `cron`. Default UTC.
    pub timezone: Option<String>,
    /// Integrations worked on at once. Default 8.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// An integration without data for this long is in Warning. Default 24h.
    #[serde(default = "default_stale_after")]
    pub stale_after: String,
    /// On SIGTERM, how long the folder in hand may take to finish. Default 5m.
    #[serde(default = "default_grace_period")]
    pub grace_period: String,
}

const fn default_concurrency() -> usize {
    8
}

fn default_stale_after() -> String {
    "24h".to_string()
}

fn default_grace_period() -> String {
    "5m".to_string()
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            every: None,
            cron: None,
            timezone: None,
            concurrency: default_concurrency(),
            stale_after: default_stale_after(),
            grace_period: default_grace_period(),
        }
    }
}

/// The interval `watch` scans at when the file sets neither `every` nor `cron`.
const DEFAULT_EVERY: Duration = Duration::from_secs(15 * 60);

impl ScheduleConfig {
    /// The checked schedule, or `None` with its problems added to `problems`.
    pub(super) fn compile(&self, problems: &mut Vec<Problem>) -> Option<ScheduleSettings> {
        let before = problems.len();
        let mut report = |key: &str, message: String| {
            problems.push(Problem::section("schedule", key, message));
        };
        if self.every.is_some() && self.cron.is_some() {
            report("every", "set every or cron, not both".into());
        }
        let mut every = DEFAULT_EVERY;
        if let Some(text) = &self.every {
            match humantime::parse_duration(text) {
                Ok(d) if d >= Duration::from_secs(1) => every = d,
                _ => report(
                    "every",
                    format!("'{text}' is not a duration like 15m or 1h"),
                ),
            }
        }
        let mut schedule = Schedule::Every(every);
        if let Some(cron) = &self.cron {
            match crate::schedule::parse_cron(cron) {
                Ok(cron) => {
                    schedule = Schedule::Cron {
                        cron: Box::new(cron),
                        zone: chrono_tz::Tz::UTC,
                    }
                }
                Err(e) => report("cron", e),
            }
        }
        if let Some(tz) = &self.timezone {
            if self.cron.is_none() {
                report("timezone", "a timezone only applies to cron".into());
            }
            match tz.parse::<chrono_tz::Tz>() {
                Ok(tz) => {
                    if let Schedule::Cron { zone, .. } = &mut schedule {
                        *zone = tz;
                    }
                }
                Err(_) => report(
                    "timezone",
                    format!("'{tz}' is not an IANA time zone like Europe/Berlin"),
                ),
            }
        }
        if self.concurrency == 0 {
            report("concurrency", "must be at least 1".into());
        }
        let mut span = |key: &str, value: &str| {
            humantime::parse_duration(value)
                .inspect_err(|_| report(key, format!("'{value}' is not a duration like 24h")))
                .ok()
        };
        let stale_after = span("stale_after", &self.stale_after);
        let grace_period = span("grace_period", &self.grace_period);
        match (stale_after, grace_period) {
            (Some(stale_after), Some(grace_period)) if problems.len() == before => {
                Some(ScheduleSettings {
                    schedule,
                    concurrency: self.concurrency,
                    stale_after,
                    grace_period,
                })
            }
            _ => None,
        }
    }
}

/// `[server]`: the `watch` HTTP endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Default `127.0.0.1:9090`: loopback unless the operator opens it.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The bearer token `/status` and `/metrics` require (everything but `/healthz` and
    /// `/readyz`): the env var or file it is in. Required when `listen` is not loopback.
    pub token_env: Option<String>,
    pub token_file: Option<String>,
}

fn default_listen() -> String {
    "127.0.0.1:9090".to_string()
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            token_env: None,
            token_file: None,
        }
    }
}

impl ServerConfig {
    /// The status token's reference, when one is configured.
    pub fn token(&self, base: &Path) -> Option<SecretRef> {
        SecretRef::from_keys(self.token_env.as_ref(), self.token_file.as_ref(), base)
    }

    pub(super) fn check(&self, secrets: SecretCheck, base: &Path, problems: &mut Vec<Problem>) {
        let mut report = |key: &str, message: String| {
            problems.push(Problem::section("server", key, message));
        };
        match self.listen.parse::<std::net::SocketAddr>() {
            Err(_) => report(
                "listen",
                format!("'{}' is not an address like 127.0.0.1:9090", self.listen),
            ),
            // The status carries what customers' callback servers answered: for the operator
            // only. Off loopback it is refused without a token rather than served to anyone.
            Ok(addr) if !addr.ip().is_loopback() && self.token(base).is_none() => report(
                "listen",
                format!(
                    "'{}' is reachable from other hosts: set token_env or token_file so /status and /metrics require a bearer token",
                    self.listen
                ),
            ),
            Ok(_) => {}
        }
        if self.token_env.is_some() && self.token_file.is_some() {
            report("token_env", "set token_env or token_file, not both".into());
        }
        if secrets == SecretCheck::Require
            && let Some(Err(e)) = self.token(base).map(|r| r.read())
        {
            report("token_env", e.to_string());
        }
    }
}

/// `[events]`: S3 event notifications through SQS, for `watch`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    pub queue_url: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Long-poll wait per receive, 1..=20 seconds. Default 20.
    #[serde(default = "default_wait_seconds")]
    pub wait_seconds: i32,
    /// How long a received message stays hidden; extended while its folder is in hand.
    /// Default 120 s.
    #[serde(default = "default_visibility_seconds")]
    pub visibility_timeout_seconds: i32,
}

const fn default_wait_seconds() -> i32 {
    20
}

const fn default_visibility_seconds() -> i32 {
    120
}

impl EventsConfig {
    pub(super) fn check(&self, problems: &mut Vec<Problem>) {
        let mut report = |key: &str, message: String| {
            problems.push(Problem::section("events", key, message));
        };
        check_http_url(&self.queue_url).unwrap_or_else(|m| report("queue_url", m));
        if let Some(endpoint) = &self.endpoint {
            check_http_url(endpoint).unwrap_or_else(|m| report("endpoint", m));
        }
        if !(1..=20).contains(&self.wait_seconds) {
            report("wait_seconds", "must be 1 to 20".into());
        }
        if !(2..=43_200).contains(&self.visibility_timeout_seconds) {
            report("visibility_timeout_seconds", "must be 2 to 43200".into());
        }
    }
}

/// A database password named by `password_env` / `password_file`: not both, and readable
/// when secrets are required.
fn check_password(
    section: &str,
    env: Option<&String>,
    file: Option<&String>,
    (secrets, base): (SecretCheck, &Path),
    problems: &mut Vec<Problem>,
) {
    if env.is_some() && file.is_some() {
        problems.push(Problem::section(
            section,
            "password_env",
            "set password_env or password_file, not both",
        ));
    }
    if secrets == SecretCheck::Require
        && let Some(Err(e)) = SecretRef::from_keys(env, file, base).map(|r| r.read())
    {
        problems.push(Problem::section(section, "password_env", e.to_string()));
    }
}

/// The database behind a URL, by scheme.
fn database_kind(url: &str) -> Option<SinkKind> {
    if url.strip_prefix("sqlite://").is_some_and(|p| !p.is_empty()) {
        Some(SinkKind::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(SinkKind::Postgres)
    } else {
        None
    }
}
