//! Secrets are named in the config (an env var or a file), never written in it, and once read
//! they are wrapped so that no `Debug`, log line or status file can print them; a URL that
//! may carry one is shown only through [`redact_url`]. Depends on nothing else in the crate,
//! so every module that handles a secret can use it without depending on `config`.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a secret comes from: `*_env = "VAR"` or `*_file = "/run/secrets/x"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

/// Why a named secret could not be read. Says where it looked, never what it found.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set or empty")]
    MissingEnv(String),
    #[error("cannot read secret file {}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret file {} is empty", .0.display())]
    EmptyFile(PathBuf),
}

impl SecretRef {
    /// The reference written as `<key>_env` / `<key>_file`; `None` when neither is set.
    /// Both set is reported by the caller's check as ambiguous.
    pub fn from_keys(env: Option<&String>, file: Option<&String>, base: &Path) -> Option<Self> {
        match (env, file) {
            (Some(var), _) => Some(SecretRef::Env(var.clone())),
            (None, Some(path)) => Some(SecretRef::File(base.join(path))),
            (None, None) => None,
        }
    }

    /// Reads the secret now. Files are trimmed of a trailing newline, as editors add one.
    pub fn read(&self) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Env(var) => match std::env::var(var) {
                Ok(value) if !value.is_empty() => Ok(Secret(value)),
                _ => Err(SecretError::MissingEnv(var.clone())),
            },
            SecretRef::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                })?;
                let value = text.trim_end_matches(['\n', '\r']).to_string();
                if value.is_empty() {
                    Err(SecretError::EmptyFile(path.clone()))
                } else {
                    Ok(Secret(value))
                }
            }
        }
    }
}

/// A secret value. `Debug` prints `Secret(***)`; there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that must send it (a header, a signature).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
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

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case): how the
/// operator's token and a push integration's reach dropfolder.
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Compares two digests without stopping at the first difference. Comparing digests of tokens
/// rather than the tokens keeps the time independent of a token's length too.
pub fn same_digest(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
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
