//! Secrets are named in the config (an env var or a file), never written in it, and once read
//! they are wrapped so that no `Debug`, log line or status file can print them.

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
