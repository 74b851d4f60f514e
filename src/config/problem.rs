//! What is wrong with a config file, said with the place it is wrong in.

use std::fmt;
use std::path::PathBuf;

/// Where in the file a problem sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A top-level section such as `sink` or `schemas.acme_users`.
    Section(String),
    /// One `[[integrations]]` entry, by name.
    Integration(String),
    /// The message says its own place: an unknown key (`unknown key 'x' in [schedule]: ...`),
    /// a file at odds with another.
    Whole,
}

/// One problem found by [`Config::check`](super::Config::check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub scope: Scope,
    /// The key inside the scope, e.g. `date_format` or `callback.url`.
    pub key: String,
    pub message: String,
}

impl Problem {
    pub fn section(section: &str, key: &str, message: impl Into<String>) -> Problem {
        Problem {
            scope: Scope::Section(section.to_string()),
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// A problem whose message says where it is.
    pub fn whole(message: impl Into<String>) -> Problem {
        Problem {
            scope: Scope::Whole,
            key: String::new(),
            message: message.into(),
        }
    }

    pub fn integration(name: &str, key: &str, message: impl Into<String>) -> Problem {
        Problem {
            scope: Scope::Integration(name.to_string()),
            key: key.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            Scope::Section(section) => write!(f, "[{section}] {}: {}", self.key, self.message),
            Scope::Integration(name) => {
                write!(f, "integration '{name}': {}: {}", self.key, self.message)
            }
            Scope::Whole => f.write_str(&self.message),
        }
    }
}

/// Why a config could not be used. Every variant means exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {} is not valid: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("config {} has {} problem(s):\n{}", path.display(), problems.len(), list(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
    #[error("config {} has no integration named '{name}' (it has: {known})", path.display())]
    UnknownIntegration {
        path: PathBuf,
        name: String,
        known: String,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}
