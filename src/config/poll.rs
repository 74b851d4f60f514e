//! `[integrations.poll]`: an integration whose records come from the customer's REST API
//! (source documents 001/002) instead of a bucket. Read strictly; every problem reported
//! with the others by `Config::compile`; compiled into [`PollSettings`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::integration::{check_attempts, check_http_url};
use super::poll_paging::{PagingConfig, ResponseConfig};
use super::{AuthConfig, SecretCheck};
use crate::egress::EgressPolicy;
use crate::poll::template::{END, START, fill};
use crate::poll::{PollMethod, PollSettings, TimeFormat};
use crate::validate::DatePattern;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollConfig {
    /// The API's URL (http or https); query parameters are added to it.
    pub api_endpoint: String,
    /// `GET` (default) or `POST`.
    #[serde(default = "default_http_method")]
    pub http_method: String,
    /// The JSON body of a POST; it may hold the window placeholders.
    pub post_payload_json: Option<String>,
    /// 001's name for the body of a POST (any text); it may hold the window placeholders.
    pub query_parameters_template: Option<String>,
    /// Sent with every request; values may hold the window placeholders.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Added to the URL; values may hold the window placeholders.
    #[serde(default)]
    pub query_parameters: BTreeMap<String, String>,
    /// Query parameters given the window's start and end, when set.
    pub start_time_attribute: Option<String>,
    pub end_time_attribute: Option<String>,
    /// How times are written: a Java pattern, `UnixTimestamp` or `UnixTimestampInMills`.
    /// Default `yyyy-MM-dd'T'HH:mm:ssX`.
    #[serde(default = "default_query_time_format")]
    pub query_time_format: String,
    /// Minutes per window, at least 1. Default 5.
    #[serde(default = "default_query_window_minutes")]
    pub query_window_minutes: u32,
    /// The sink's auth table: apikey | basic | oauth2 | bearer.
    pub auth: Option<AuthConfig>,
    /// Requests per second at most. Default: no limit.
    pub rate_limit_qps: Option<f64>,
    /// Attempts per request, 1..=6. Default 3.
    #[serde(default = "default_retry_count")]
    pub retry_count: u32,
    /// Per attempt, 1..=180 seconds. Default 20.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// Windows asked at most per run (catching up after a downtime). Default 288 (a day of
    /// 5-minute windows).
    #[serde(default = "default_max_windows_per_run")]
    pub max_windows_per_run: usize,
    /// How long one run may work at this integration, 1..=86,400 seconds. Default 600: no
    /// window starts after it, and a window still paging then stops, uncommitted, to be
    /// asked first next run. A slow or endless API holds a worker for this long at most.
    #[serde(default = "default_max_run_seconds")]
    pub max_run_seconds: u64,
    /// How the API pages: `none` (default), `link_header`, `next_page_url`,
    /// `next_page_token` or `offset`.
    #[serde(default)]
    pub paging: PagingConfig,
    /// Where the records are in a page: `json` (with `events_json_paths`) or `csv`.
    #[serde(default)]
    pub response: ResponseConfig,
}

fn default_http_method() -> String {
    "GET".to_string()
}

fn default_query_time_format() -> String {
    "yyyy-MM-dd'T'HH:mm:ssX".to_string()
}

const fn default_query_window_minutes() -> u32 {
    5
}

const fn default_retry_count() -> u32 {
    3
}

const fn default_timeout_seconds() -> u64 {
    20
}

const fn default_max_windows_per_run() -> usize {
    288
}

const fn default_max_run_seconds() -> u64 {
    600
}

impl PollConfig {
    /// Checks the table, reporting each problem under `poll.<key>`; the settings when it has
    /// none.
    pub(super) fn check(
        &self,
        secrets: SecretCheck,
        base: &Path,
        egress: &EgressPolicy,
        report: &mut impl FnMut(&str, String),
    ) -> Option<PollSettings> {
        let problems_before = std::cell::Cell::new(0usize);
        let mut report = |key: &str, message: String| {
            problems_before.set(problems_before.get() + 1);
            report(&format!("poll.{key}"), message);
        };
        match check_http_url(&self.api_endpoint) {
            Err(message) => report("api_endpoint", message),
            Ok(()) => {
                if reqwest::Url::parse(&self.api_endpoint).is_err() {
                    report(
                        "api_endpoint",
                        format!("'{}' is not a URL", super::redact_url(&self.api_endpoint)),
                    );
                }
                if let Err(e) = egress.check_url(&self.api_endpoint) {
                    report("api_endpoint", e.to_string());
                }
            }
        }
        let body = match (&self.post_payload_json, &self.query_parameters_template) {
            (Some(_), Some(_)) => {
                report(
                    "post_payload_json",
                    "set post_payload_json or query_parameters_template, not both".into(),
                );
                None
            }
            (json, template) => json.as_ref().or(template.as_ref()),
        };
        let method = match self.http_method.to_ascii_uppercase().as_str() {
            "GET" => {
                if body.is_some() {
                    report(
                        "http_method",
                        "a GET has no body: set http_method = \"POST\" or remove post_payload_json / query_parameters_template".into(),
                    );
                }
                Some(PollMethod::Get)
            }
            "POST" => Some(PollMethod::Post {
                payload: body.cloned(),
            }),
            other => {
                report("http_method", format!("'{other}' is not GET or POST"));
                None
            }
        };
        if let Some(json) = &self.post_payload_json {
            // The placeholders stand inside JSON strings; filled, the payload must be JSON.
            let filled = fill(json, "2020-01-01T00:00:00Z", "2020-01-01T00:05:00Z");
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&filled) {
                report(
                    "post_payload_json",
                    format!(
                        "not JSON (line {} column {}) once {START} and {END} are filled in",
                        e.line(),
                        e.column()
                    ),
                );
            }
        }
        for (name, value) in &self.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                report("headers", format!("'{name}' is not a header name"));
            }
            let filled = fill(value, "2020-01-01T00:00:00Z", "2020-01-01T00:05:00Z");
            if reqwest::header::HeaderValue::from_str(&filled).is_err() {
                report(
                    "headers",
                    format!("the value of '{name}' is not a header value"),
                );
            }
        }
        for (key, attribute) in [
            ("start_time_attribute", &self.start_time_attribute),
            ("end_time_attribute", &self.end_time_attribute),
        ] {
            if attribute.as_ref().is_some_and(|a| a.trim().is_empty()) {
                report(key, "cannot be empty".into());
            }
        }
        // The date-pattern reader judges the pattern as it judges date_format; the writer
        // refuses the letters it cannot write.
        let time_format = match DatePattern::compile(&self.query_time_format) {
            Err(e) => {
                report("query_time_format", e.to_string());
                None
            }
            Ok(_) => TimeFormat::compile(&self.query_time_format)
                .inspect_err(|e| report("query_time_format", e.to_string()))
                .ok(),
        };
        if self.query_window_minutes == 0 {
            report("query_window_minutes", "must be at least 1".into());
        }
        if self
            .rate_limit_qps
            .is_some_and(|qps| !qps.is_finite() || qps <= 0.0)
        {
            report("rate_limit_qps", "must be a number above 0".into());
        }
        if self.max_windows_per_run == 0 {
            report("max_windows_per_run", "must be at least 1".into());
        }
        if !(1..=86_400).contains(&self.max_run_seconds) {
            report("max_run_seconds", "must be 1 to 86400".into());
        }
        check_attempts(self.retry_count, self.timeout_seconds, "", &mut report);
        if let Some(auth) = &self.auth {
            auth.check(secrets, base, &mut |key: &str, message| {
                report(key, message)
            });
            if let AuthConfig::Oauth2 { token_url, .. } = auth
                && let Err(e) = egress.check_url(token_url)
            {
                report("auth.token_url", e.to_string());
            }
        }
        let paging = self
            .paging
            .compile()
            .map_err(|problems| {
                for (key, problem) in problems {
                    report(&format!("paging.{key}"), problem);
                }
            })
            .ok();
        let response = self
            .response
            .compile()
            .map_err(|problems| {
                for (key, problem) in problems {
                    report(&format!("response.{key}"), problem);
                }
            })
            .ok();
        if problems_before.get() > 0 {
            return None;
        }
        Some(PollSettings {
            endpoint: self.api_endpoint.clone(),
            method: method?,
            headers: self.headers.clone().into_iter().collect(),
            query: self.query_parameters.clone().into_iter().collect(),
            start_attribute: self.start_time_attribute.clone(),
            end_attribute: self.end_time_attribute.clone(),
            time_format: time_format?,
            window: chrono::TimeDelta::minutes(i64::from(self.query_window_minutes)),
            auth: match &self.auth {
                Some(auth) => Some(auth.settings(base, None)?),
                None => None,
            },
            rate_limit_qps: self.rate_limit_qps,
            attempts: self.retry_count,
            timeout: Duration::from_secs(self.timeout_seconds),
            max_windows_per_run: self.max_windows_per_run,
            max_run: Duration::from_secs(self.max_run_seconds),
            paging: paging?,
            response: response?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::EgressPolicy;

    fn checked(toml_text: &str) -> (Option<PollSettings>, Vec<(String, String)>) {
        let config: PollConfig = match toml::from_str(toml_text) {
            Ok(config) => config,
            Err(e) => return (None, vec![("parse".into(), e.to_string())]),
        };
        let mut problems = Vec::new();
        let settings = config.check(
            SecretCheck::Skip,
            Path::new(""),
            &EgressPolicy::default(),
            &mut |key: &str, message| problems.push((key.to_string(), message)),
        );
        (settings, problems)
    }

    #[test]
    fn the_issue_example_compiles_with_its_defaults() {
        let (settings, problems) = checked(
            r#"
            api_endpoint = "https://api.vendor.example/v1/users"
            headers = { Accept = "application/json" }
            query_parameters = { filter = "updated gt {_QueryWindowStartTime} and updated lt {_QueryWindowEndTime}" }
            start_time_attribute = "from"
            auth = { type = "apikey", key_env = "VENDOR_KEY" }
            rate_limit_qps = 10
            paging = { type = "next_page_token", token_json_path = "$.next", parameter = "cursor", page_size = 500, page_size_parameter = "limit" }
            response = { events_json_paths = ["$.value"], format = "json" }
            "#,
        );
        assert_eq!(problems, []);
        let Some(settings) = settings else {
            panic!("no settings")
        };
        assert_eq!(settings.method, PollMethod::Get);
        assert_eq!(settings.window, chrono::TimeDelta::minutes(5));
        assert_eq!(settings.attempts, 3);
        assert_eq!(settings.timeout, Duration::from_secs(20));
        assert_eq!(settings.rate_limit_qps, Some(10.0));
        assert_eq!(settings.start_attribute.as_deref(), Some("from"));
        assert!(settings.auth.is_some());
    }

    #[test]
    fn every_problem_is_reported_at_once_under_its_key() {
        let (settings, problems) = checked(
            r#"
            api_endpoint = "ftp://vendor"
            http_method = "PUT"
            post_payload_json = "{ not json"
            headers = { "bad header" = "x" }
            query_time_format = "yyyy-ww"
            query_window_minutes = 0
            retry_count = 9
            timeout_seconds = 0
            rate_limit_qps = -1
            auth = { type = "bearer" }
            paging = { type = "offset" }
            "#,
        );
        assert!(settings.is_none());
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "poll.api_endpoint",
                "poll.http_method",
                "poll.post_payload_json",
                "poll.headers",
                "poll.query_time_format",
                "poll.query_window_minutes",
                "poll.rate_limit_qps",
                "poll.retry_count",
                "poll.timeout_seconds",
                "poll.auth",
                "poll.paging.parameter",
                "poll.paging.page_size",
                "poll.response.events_json_paths",
            ],
            "{problems:?}"
        );
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let (_, problems) = checked(
            r#"
            api_endpoint = "https://api.vendor.example/v1/users"
            query_window_minute = 5
            "#,
        );
        assert_eq!(problems.len(), 1);
        assert!(problems[0].1.contains("unknown field"), "{problems:?}");
    }

    #[test]
    fn a_post_body_with_placeholders_must_be_json_once_filled() {
        let (settings, problems) = checked(
            r#"
            api_endpoint = "https://api.vendor.example/search"
            http_method = "POST"
            post_payload_json = '{"from": "{_QueryWindowStartTime}", "to": "{_QueryWindowEndTime}"}'
            response = { format = "csv" }
            "#,
        );
        assert_eq!(problems, []);
        assert!(matches!(
            settings.map(|s| s.method),
            Some(PollMethod::Post { payload: Some(_) })
        ));
    }

    #[test]
    fn an_internal_endpoint_is_refused_unless_allowed() {
        let (_, problems) = checked(
            r#"
            api_endpoint = "http://169.254.169.254/latest"
            response = { format = "csv" }
            "#,
        );
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["poll.api_endpoint"]);
    }
}
