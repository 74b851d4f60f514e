//! `push = { token_env = "ACME_PUSH_TOKEN", max_body_bytes = 254000 }`: an integration whose
//! customer POSTs records to `/stream/v0/data/<name>` instead of dropping files in a bucket
//! (source document 004). Checked here, compiled into [`PushSettings`].

use std::path::Path;

use serde::Deserialize;

use super::{SecretCheck, SecretRef};
use crate::settings::PushSettings;

/// Source document 004's limit: 254 KB a request.
pub const DEFAULT_MAX_BODY_BYTES: usize = 254_000;
/// The most a request may be configured to hold: a body is read whole into memory (and its
/// records held until their batch commits), so this bounds one request's memory.
pub const MAX_BODY_BYTES_LIMIT: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// The bearer token requests must carry, from this environment variable...
    pub token_env: Option<String>,
    /// ... or this file (relative to the config file).
    pub token_file: Option<String>,
    /// Bytes of one request's body; past it, 413. Default 254,000.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

fn default_max_body_bytes() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

impl PushConfig {
    pub fn token(&self, base: &Path) -> Option<SecretRef> {
        SecretRef::from_keys(self.token_env.as_ref(), self.token_file.as_ref(), base)
    }

    /// Reports each problem under `push.<key>`.
    pub fn check(&self, base: &Path, secrets: SecretCheck, report: &mut impl FnMut(&str, String)) {
        match (&self.token_env, &self.token_file) {
            (Some(_), Some(_)) => report(
                "push.token_env",
                "set token_env or token_file, not both".into(),
            ),
            (None, None) => report(
                "push.token_env",
                "a push integration needs the token its requests carry: token_env or token_file"
                    .into(),
            ),
            _ => {}
        }
        if secrets == SecretCheck::Require
            && let Some(Err(e)) = self.token(base).map(|t| t.read())
        {
            report("push.token_env", e.to_string());
        }
        if !(1..=MAX_BODY_BYTES_LIMIT).contains(&self.max_body_bytes) {
            report(
                "push.max_body_bytes",
                format!("must be from 1 to {MAX_BODY_BYTES_LIMIT}"),
            );
        }
    }

    /// The settings of a checked entry; `None` without a token.
    pub fn settings(&self, base: &Path) -> Option<PushSettings> {
        Some(PushSettings {
            token: self.token(base)?,
            max_body_bytes: self.max_body_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::config::{Config, SecretCheck};
    use crate::settings::Source;

    fn config(push: &str) -> String {
        format!(
            r#"
[schemas.users]
id = "string"
email = "string"

[[integrations]]
name = "acme-push"
entity = "user"
schema = "users"
{push}
"#
        )
    }

    fn problems(text: &str) -> Vec<String> {
        match Config::parse(text, PathBuf::from("/etc/dropfolder")) {
            Ok(config) => config
                .check(SecretCheck::Skip)
                .iter()
                .map(ToString::to_string)
                .collect(),
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn a_push_integration_compiles_with_its_token_and_the_default_limit() {
        let text = config(r#"push = { token_file = "secrets/acme" }"#);
        let settings = Config::parse(&text, PathBuf::from("/etc/dropfolder"))
            .map(|c| c.compile(SecretCheck::Skip));
        let source = settings
            .ok()
            .and_then(Result::ok)
            .map(|s| s.integrations[0].source.clone());
        match source {
            Some(Source::Push(push)) => {
                assert_eq!(
                    push.token,
                    crate::secret::SecretRef::File("/etc/dropfolder/secrets/acme".into())
                );
                assert_eq!(push.max_body_bytes, 254_000);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn push_problems_are_reported_together() {
        assert_eq!(
            problems(&config(
                r#"bucket = "file://drop"
push = { max_body_bytes = 0 }"#
            )),
            vec![
                "integration 'acme-push': push: an integration has one way in; this one names bucket and push",
                "integration 'acme-push': push.token_env: a push integration needs the token its requests carry: token_env or token_file",
                "integration 'acme-push': push.max_body_bytes: must be from 1 to 16777216",
            ]
        );
        assert_eq!(
            problems(&config(
                r#"role_arn = "arn:aws:iam::123456789012:role/x"
push = { token_env = "A", token_file = "b" }"#
            )),
            vec![
                "integration 'acme-push': push: a push integration takes no role_arn, access keys, use_operator_identity, endpoint or region (they are a bucket's)",
                "integration 'acme-push': push.token_env: set token_env or token_file, not both",
            ]
        );
        let unknown = problems(&config(r#"push = { token_env = "A", max_body = 1 }"#));
        assert!(
            unknown.len() == 1 && unknown[0].contains("max_body"),
            "{unknown:?}"
        );
    }

    #[test]
    fn an_unset_token_is_a_problem_when_secrets_are_required() {
        let text = config(r#"push = { token_env = "DROPFOLDER_TEST_UNSET_PUSH_TOKEN" }"#);
        let found: Vec<String> = Config::parse(&text, PathBuf::from("/etc/dropfolder"))
            .map(|c| c.check(SecretCheck::Require))
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
            vec![
                "integration 'acme-push': push.token_env: environment variable DROPFOLDER_TEST_UNSET_PUSH_TOKEN is not set or empty"
            ]
        );
    }
}
