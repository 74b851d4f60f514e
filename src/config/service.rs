//! The deployment-wide sections: state, sink, schedule, server, events.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::integration::{
    check_attempts, check_http_url, default_retry_count, default_timeout_seconds,
};
use super::{Problem, SecretCheck, SecretRef};

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
    /// A database sink at `url` with every other option at its default.
    pub fn database(url: &str) -> SinkConfig {
        SinkConfig {
            kind: None,
            url: Some(url.to_string()),
            password_env: None,
            password_file: None,
            pool_size: None,
            preset: None,
            auth: None,
            headers: BTreeMap::new(),
            format: None,
            max_body_bytes: None,
            retry_count: default_retry_count(),
            timeout_seconds: default_timeout_seconds(),
            rate_limit_qps: None,
            rule_id: None,
            stream_name: None,
        }
    }

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

    fn check(&self, secrets: SecretCheck, base: &Path, report: &mut impl FnMut(&str, String)) {
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

impl ScheduleConfig {
    /// The fixed interval, when the schedule is one. Checked by `check`.
    pub fn interval(&self) -> Option<Duration> {
        match (&self.every, &self.cron) {
            (_, Some(_)) => None,
            (Some(every), None) => humantime::parse_duration(every).ok(),
            (None, None) => Some(Duration::from_secs(15 * 60)),
        }
    }

    pub fn stale_after(&self) -> Duration {
        humantime::parse_duration(&self.stale_after).unwrap_or(Duration::from_secs(86_400))
    }

    pub fn grace_period(&self) -> Duration {
        humantime::parse_duration(&self.grace_period).unwrap_or(Duration::from_secs(300))
    }

    pub(super) fn check(&self, problems: &mut Vec<Problem>) {
        let mut report = |key: &str, message: String| {
            problems.push(Problem::section("schedule", key, message));
        };
        if self.every.is_some() && self.cron.is_some() {
            report("every", "set every or cron, not both".into());
        }
        if let Some(every) = &self.every {
            match humantime::parse_duration(every) {
                Ok(d) if d >= Duration::from_secs(1) => {}
                _ => report(
                    "every",
                    format!("'{every}' is not a duration like 15m or 1h"),
                ),
            }
        }
        if let Some(cron) = &self.cron
            && let Err(e) = crate::schedule::parse_cron(cron)
        {
            report("cron", e);
        }
        if let Some(tz) = &self.timezone {
            if self.cron.is_none() {
                report("timezone", "a timezone only applies to cron".into());
            }
            if tz.parse::<chrono_tz::Tz>().is_err() {
                report(
                    "timezone",
                    format!("'{tz}' is not an IANA time zone like Europe/Berlin"),
                );
            }
        }
        if self.concurrency == 0 {
            report("concurrency", "must be at least 1".into());
        }
        for (key, value) in [
            ("stale_after", &self.stale_after),
            ("grace_period", &self.grace_period),
        ] {
            if humantime::parse_duration(value).is_err() {
                report(key, format!("'{value}' is not a duration like 24h"));
            }
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

/// A URL as it may be shown (logs, errors, `status`, `/status`, callback errors): the
/// password of a `user:password@` part, a bare `token@` userinfo, every query value and the
/// fragment are replaced with `***`; the scheme, host, path and query names stay. Works on
/// text that is not a valid URL too, so a typo never leaks a secret.
pub fn redact_url(url: &str) -> String {
    const MASK: &str = "***";
    let (url, fragment) = match url.split_once('#') {
        Some((url, _)) => (url, Some(MASK)),
        None => (url, None),
    };
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        // A password may hold an unescaped `/`: the userinfo ends at the last `@`, unless
        // that `@` is in the path (a `/` before it, and no `user:` before the `/`).
        Some((scheme, rest)) => match rest.rsplit_once('@').filter(|(userinfo, _)| {
            !userinfo.contains('/') || userinfo.split('/').next().is_some_and(|h| h.contains(':'))
        }) {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _password)) => format!("{scheme}://{user}:{MASK}@{host}"),
                None => format!("{scheme}://{MASK}@{host}"),
            },
            None => base.to_string(),
        },
        None => base.to_string(),
    };
    if let Some(query) = query {
        let shown: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _value)) => format!("{name}={MASK}"),
                None if pair.is_empty() => String::new(),
                None => MASK.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&shown.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

#[cfg(test)]
mod redact_tests {
    use super::redact_url;

    #[test]
    fn secrets_in_a_url_are_masked_and_the_rest_stays() {
        for (url, shown) in [
            (
                "https://user:hunter2@api.example.com/cb?token=abc&tenant=acme#frag",
                "https://user:***@api.example.com/cb?token=***&tenant=***#***",
            ),
            (
                "https://ghp_secret@api.example.com/x",
                "https://***@api.example.com/x",
            ),
            (
                "postgres://app:pa/ss@db.internal/app",
                "postgres://app:***@db.internal/app",
            ),
            (
                "https://api.example.com/cb?SECRET",
                "https://api.example.com/cb?***",
            ),
            ("https://api.example.com/cb", "https://api.example.com/cb"),
            (
                "https://api.example.com/u/a@b",
                "https://api.example.com/u/a@b",
            ),
            ("not a url ?key=v", "not a url ?key=***"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
