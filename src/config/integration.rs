//! One `[[integrations]]` entry: a customer's bucket, how to reach it, and how to read it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{Problem, SecretCheck, SecretRef};
use crate::sink::Entity;
use crate::store::StoreLocation;
use crate::validate::{CsvDialect, DatePattern, FileRules, Limits, ProductKey, Schema};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationConfig {
    /// Unique; used in logs, metrics, the ledger and the STS session name.
    pub name: String,
    pub entity: Entity,
    /// A key of `[schemas]`.
    pub schema: String,
    /// `bucket[/prefix]`, `s3://bucket[/prefix]`, or a local folder `file:///srv/drop/acme`
    /// (`file://drop/acme` is relative to the config file). Every integration names where its
    /// records come from; today that is a bucket or folder.
    pub bucket: Option<String>,
    /// Or records POSTed to `/stream/v0/data/<name>` by the customer (source document 004).
    pub push: Option<super::push::PushConfig>,
    /// S3 API endpoint override (LocalStack, MinIO); path-style addressing is used with it.
    pub endpoint: Option<String>,
    /// STS endpoint override for the AssumeRole call; default: `endpoint` when set, else AWS.
    pub sts_endpoint: Option<String>,
    /// The bucket's region; discovered with GetBucketLocation when absent.
    pub region: Option<String>,
    /// The customer's role, assumed with `external_id` (required with it: the confused deputy).
    pub role_arn: Option<String>,
    /// Written in the file (it is an identifier, not a password) or named by env var; never logged.
    pub external_id: Option<String>,
    /// When the integration's access keys expire (`YYYY-MM-DD`): Warning within 90 days.
    pub credentials_expire_on: Option<String>,
    pub external_id_env: Option<String>,
    pub access_key_id_env: Option<String>,
    pub secret_access_key_env: Option<String>,
    pub session_token_env: Option<String>,
    /// Reach the bucket as the operator's own (base) identity: for the operator's own buckets
    /// only. Default false: an S3 integration names a role or keys, or `check` refuses it.
    #[serde(default)]
    pub use_operator_identity: bool,
    /// Java-style pattern, `UnixTimestamp` or `UnixTimestampInMills`.
    #[serde(default = "default_date_format")]
    pub date_format: String,
    /// One product key for every record of this integration.
    pub product_key: Option<String>,
    /// Or a column carrying the full product key on each row (then required in every file).
    pub product_key_column: Option<String>,
    /// Data rows allowed per file, header excluded. Default 350,000.
    #[serde(default = "default_max_rows")]
    pub max_rows: u64,
    #[serde(default)]
    pub limits: Limits,
    pub callback: Option<CallbackConfig>,
    #[serde(default)]
    pub csv: CsvDialect,
    /// The customer's REST API, polled window by window, instead of a bucket.
    pub poll: Option<super::PollConfig>,
}

/// What an integration without a way in is told.
const NO_SOURCE: &str = "say where its records come from: bucket = \"s3://BUCKET/PREFIX\" or \"file:///srv/drop/NAME\", push = { token_env = \"VAR\" }, or an [integrations.poll] table";

/// `yyyy-MM-dd'T'HH:mm:ssX`: ISO 8601 in UTC or with an offset, the source document's example.
fn default_date_format() -> String {
    "yyyy-MM-dd'T'HH:mm:ssX".to_string()
}

/// The source document's per-file cap.
const fn default_max_rows() -> u64 {
    350_000
}

/// Where the result is POSTed when a folder is finished.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackConfig {
    pub url: String,
    /// Sent as the `x-api-key` header.
    pub api_key_env: Option<String>,
    pub api_key_file: Option<String>,
    /// Attempts per delivery, 1..=6. Default 3.
    #[serde(default = "default_retry_count")]
    pub retry_count: u32,
    /// Per attempt, 1..=180 seconds. Default 20.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
}

pub(super) const fn default_retry_count() -> u32 {
    3
}

pub(super) const fn default_timeout_seconds() -> u64 {
    20
}

impl IntegrationConfig {
    /// Parses `bucket` into a location; `base` resolves relative local folders.
    pub fn location(&self, base: &Path) -> Result<StoreLocation, String> {
        let Some(bucket) = self.bucket.as_deref() else {
            return Err(NO_SOURCE.into());
        };
        if let Some(path) = bucket.strip_prefix("file://") {
            if path.is_empty() {
                return Err("a local folder needs a path: file:///srv/drop/acme".into());
            }
            let path = Path::new(path);
            return Ok(StoreLocation::Local(if path.is_absolute() {
                path.to_path_buf()
            } else {
                base.join(path)
            }));
        }
        let rest = bucket.strip_prefix("s3://").unwrap_or(bucket);
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
        if !valid {
            return Err(format!(
                "'{bucket}' is not an S3 bucket name (3 to 63 letters, digits, '.', '-')"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|part| part == ".." || part == ".") {
            return Err("the prefix cannot contain '.' or '..' segments".into());
        }
        Ok(StoreLocation::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The callback key's reference, when a callback is configured.
    pub fn callback_key(&self, base: &Path) -> Option<SecretRef> {
        let cb = self.callback.as_ref()?;
        SecretRef::from_keys(cb.api_key_env.as_ref(), cb.api_key_file.as_ref(), base)
    }

    /// Checks the entry; its file rules when they compile (the schema exists and the date
    /// pattern is valid), whatever else is wrong.
    pub(super) fn check(
        &self,
        schemas: &BTreeMap<String, Schema>,
        secrets: SecretCheck,
        base: &Path,
        problems: &mut Vec<Problem>,
    ) -> Option<FileRules> {
        let mut report = |key: &str, message: String| {
            problems.push(Problem::integration(&self.name, key, message));
        };
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 48
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            report(
                "name",
                "use 1 to 48 letters, digits, '-', '_' or '.'".into(),
            );
        }
        let schema = schemas.get(&self.schema);
        if schema.is_none() {
            let known: Vec<_> = schemas.keys().map(String::as_str).collect();
            report(
                "schema",
                format!(
                    "no [schemas.{}] (defined: {})",
                    self.schema,
                    known.join(", ")
                ),
            );
        }
        let ways_in = [
            ("bucket", self.bucket.is_some()),
            ("push", self.push.is_some()),
            ("poll", self.poll.is_some()),
        ];
        let named: Vec<&str> = ways_in
            .iter()
            .filter(|(_, given)| *given)
            .map(|(key, _)| *key)
            .collect();
        if named.len() > 1 {
            report(
                named[1],
                format!(
                    "an integration has one way in; this one names {}",
                    named.join(" and ")
                ),
            );
        }
        if let Some(bucket) = &self.bucket {
            let local = match self.location(Path::new("")) {
                Ok(location) => matches!(location, StoreLocation::Local(_)),
                Err(message) => {
                    report("bucket", message);
                    // Still judged by its scheme, so a bad local path is not also told to name
                    // an S3 identity.
                    bucket.starts_with("file://")
                }
            };
            self.check_access(local, secrets, &mut report);
        } else if let Some(&kind) = named.first() {
            // A poll's own keys are checked by `Config::compile`, with the egress rule.
            if self.role_arn.is_some()
                || self.access_key_id_env.is_some()
                || self.secret_access_key_env.is_some()
                || self.use_operator_identity
                || self.endpoint.is_some()
                || self.region.is_some()
            {
                report(
                    kind,
                    format!(
                        "a {kind} integration takes no role_arn, access keys, use_operator_identity, endpoint or region (they are a bucket's)"
                    ),
                );
            }
        } else {
            report("bucket", NO_SOURCE.into());
        }
        if let Some(push) = &self.push {
            push.check(base, secrets, &mut report);
        }
        let dates = DatePattern::compile(&self.date_format)
            .inspect_err(|e| report("date_format", e.to_string()))
            .ok();
        match (&self.product_key, &self.product_key_column) {
            (Some(_), Some(_)) => report(
                "product_key",
                "set product_key or product_key_column, not both".into(),
            ),
            (Some(key), None) if key.trim().is_empty() => {
                report("product_key", "cannot be empty".into())
            }
            (None, Some(column)) if schema.is_some_and(|s| s.get(column).is_some()) => report(
                "product_key_column",
                format!("'{column}' is also an attribute of the schema; use another column"),
            ),
            _ => {}
        }
        if let Some(date) = &self.credentials_expire_on
            && chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_err()
        {
            report(
                "credentials_expire_on",
                format!("'{date}' is not a date like 2027-03-31"),
            );
        }
        if self.max_rows == 0 {
            report("max_rows", "must be at least 1".into());
        }
        self.limits.check(&mut report);
        self.csv.check(schema, &mut report);
        if let Some(cb) = &self.callback {
            check_http_url(&cb.url).unwrap_or_else(|m| report("callback.url", m));
            check_attempts(cb.retry_count, cb.timeout_seconds, "callback", &mut report);
            match (&cb.api_key_env, &cb.api_key_file) {
                (Some(_), Some(_)) => report(
                    "callback.api_key_env",
                    "set api_key_env or api_key_file, not both".into(),
                ),
                (None, None) => report(
                    "callback.api_key_env",
                    "the callback needs its x-api-key: api_key_env or api_key_file".into(),
                ),
                _ => {}
            }
            if secrets == SecretCheck::Require
                && let Some(Err(e)) = self.callback_key(base).map(|r| r.read())
            {
                report("callback.api_key_env", e.to_string());
            }
        }
        let product_key = match (&self.product_key, &self.product_key_column) {
            (_, Some(column)) => ProductKey::Column(column.clone()),
            (Some(key), None) => ProductKey::Fixed(key.clone()),
            (None, None) => ProductKey::None,
        };
        Some(FileRules {
            schema: schema?.clone(),
            product_key,
            dates: dates?,
            csv: self.csv.clone(),
            max_rows: self.max_rows,
            limits: self.limits.clone(),
        })
    }

    fn check_access(
        &self,
        local: bool,
        secrets: SecretCheck,
        report: &mut impl FnMut(&str, String),
    ) {
        let static_keys = self.access_key_id_env.is_some() || self.secret_access_key_env.is_some();
        let external = self.external_id.is_some() || self.external_id_env.is_some();
        if local
            && (self.role_arn.is_some()
                || static_keys
                || self.use_operator_identity
                || self.endpoint.is_some()
                || self.region.is_some())
        {
            report(
                "bucket",
                "a local folder takes no role_arn, access keys, use_operator_identity, endpoint or region"
                    .into(),
            );
        }
        if !local && self.role_arn.is_none() && !static_keys && !self.use_operator_identity {
            report(
                "role_arn",
                "an S3 integration names how it gets in: role_arn with external_id (the customer's role), access_key_id_env with secret_access_key_env, or use_operator_identity = true (the operator's own buckets only)"
                    .into(),
            );
        }
        if self.use_operator_identity && (self.role_arn.is_some() || static_keys) {
            report(
                "use_operator_identity",
                "the operator's identity is one way in; remove it, or remove role_arn and the access keys"
                    .into(),
            );
        }
        if let Some(arn) = &self.role_arn
            && !is_role_arn(arn)
        {
            report(
                "role_arn",
                format!("'{arn}' is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"),
            );
        }
        if self.role_arn.is_some() && static_keys {
            report(
                "role_arn",
                "use role_arn or static access keys, not both".into(),
            );
        }
        if self.role_arn.is_some() && !external {
            report(
                "external_id",
                "a role_arn needs the customer's external_id (or external_id_env): without it, anyone who learns the role's ARN can have dropfolder read that bucket for them (the confused deputy)"
                    .into(),
            );
        }
        if external && self.role_arn.is_none() {
            report("external_id", "an external ID needs a role_arn".into());
        }
        if self.external_id.is_some() && self.external_id_env.is_some() {
            report(
                "external_id",
                "set external_id or external_id_env, not both".into(),
            );
        }
        if static_keys && (self.access_key_id_env.is_none() || self.secret_access_key_env.is_none())
        {
            report(
                "access_key_id_env",
                "static keys need both access_key_id_env and secret_access_key_env".into(),
            );
        }
        for (key, url) in [
            ("endpoint", &self.endpoint),
            ("sts_endpoint", &self.sts_endpoint),
        ] {
            if let Some(url) = url {
                check_http_url(url).unwrap_or_else(|m| report(key, m));
            }
        }
        if secrets == SecretCheck::Require {
            let named = [
                ("access_key_id_env", &self.access_key_id_env),
                ("secret_access_key_env", &self.secret_access_key_env),
                ("session_token_env", &self.session_token_env),
                ("external_id_env", &self.external_id_env),
            ];
            for (key, var) in named {
                if let Some(var) = var
                    && let Err(e) = SecretRef::Env(var.clone()).read()
                {
                    report(key, e.to_string());
                }
            }
        }
    }
}

impl Limits {
    fn check(&self, report: &mut impl FnMut(&str, String)) {
        if self.max_field_bytes == 0 || self.max_record_bytes < self.max_field_bytes {
            report(
                "limits.max_record_bytes",
                "must be at least max_field_bytes, which must be at least 1".into(),
            );
        }
        if self.max_decompressed_bytes == 0 || self.max_status_errors == 0 {
            report(
                "limits",
                "max_decompressed_bytes and max_status_errors must be at least 1".into(),
            );
        }
    }
}

impl CsvDialect {
    fn check(&self, schema: Option<&Schema>, report: &mut impl FnMut(&str, String)) {
        for (key, c) in [
            ("csv.delimiter", Some(self.delimiter)),
            ("csv.quote", Some(self.quote)),
        ]
        .into_iter()
        .chain([("csv.escape", self.escape)])
        {
            if let Some(c) = c
                && (!c.is_ascii() || c == '\n' || c == '\r')
            {
                report(
                    key,
                    format!("{c:?} must be one ASCII character, not a newline"),
                );
            }
        }
        if self.delimiter == self.quote {
            report("csv.quote", "the quote cannot be the delimiter".into());
        }
        if self.header && !self.columns.is_empty() {
            report(
                "csv.columns",
                "columns name the fields of files without a header; set header = false".into(),
            );
        }
        if !self.header {
            if !self.columns.iter().any(|c| c == "id") {
                report(
                    "csv.columns",
                    "files without a header need columns = [...] naming every field, `id` included"
                        .into(),
                );
            }
            if let Some(schema) = schema {
                for column in &self.columns {
                    if column != "id" && schema.get(column).is_none() {
                        report(
                            "csv.columns",
                            format!("'{column}' is not an attribute of the schema"),
                        );
                    }
                }
            }
        }
    }
}

fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
        if partition.starts_with("aws")
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && resource.strip_prefix("role/").is_some_and(|r| !r.is_empty()))
}

/// An absolute http(s) URL with a host.
pub(super) fn check_http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(format!(
            "'{}' is not an http(s) URL",
            super::redact_url(url)
        )),
    }
}

/// The outbound request bounds of source documents 001/002; keys under `prefix` (or none).
pub(super) fn check_attempts(
    retry_count: u32,
    timeout_seconds: u64,
    prefix: &str,
    report: &mut impl FnMut(&str, String),
) {
    let key = |name: &str| match prefix {
        "" => name.to_string(),
        _ => format!("{prefix}.{name}"),
    };
    if !(1..=6).contains(&retry_count) {
        report(&key("retry_count"), "must be 1 to 6".into());
    }
    if !(1..=180).contains(&timeout_seconds) {
        report(&key("timeout_seconds"), "must be 1 to 180".into());
    }
}
