//! The TOML file (or a directory of them, `dir.rs`), read strictly and checked as a whole
//! before anything runs.
//!
//! Parsing rejects unknown keys, so a typo never falls back to a default silently; every
//! one is reported, with the key meant (`keys.rs`). [`Config::compile`] then reports every
//! remaining problem at once, each with the integration and key it belongs to, so an operator
//! fixes the file in one pass; or, when there is none, builds the [`Settings`] everything else
//! runs on. Nothing outside this module reads the file's strings, and nothing here is
//! imported by the modules that run. Secrets are never in the
//! file: keys ending in `_env` or `_file` name where they are ([`SecretRef`]).

mod compile;
mod dir;
mod integration;
mod keys;
mod outbound;
mod poll;
pub mod poll_paging;
mod problem;
mod push;
mod roots;
mod schema;
mod service;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::settings::Settings;

pub use crate::secret::{SecretRef, redact_url};
pub use crate::sink::{Entity, HttpBodyFormat};
pub use crate::store::StoreLocation;
pub use crate::validate::{AttributeType, CsvDialect as CsvConfig, Limits, Schema};
pub use integration::{CallbackConfig, IntegrationConfig};
pub use outbound::OutboundConfig;
pub use poll::PollConfig;
pub use problem::{ConfigError, Problem, Scope};
pub use service::{
    AuthConfig, EventsConfig, HttpPreset, ScheduleConfig, ServerConfig, SinkConfig, SinkKind,
    StateConfig,
};

/// The default config file name, looked up in the working directory.
pub const DEFAULT_PATH: &str = "dropfolder.toml";

/// The whole configuration, as written in the TOML file (see SPEC.md "Configuration").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Ledger, leases, integration status. Default: `sqlite://dropfolder.db`.
    #[serde(default)]
    pub state: StateConfig,
    /// Where records go. Default: the state database.
    #[serde(default)]
    pub sink: Option<SinkConfig>,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub events: Option<EventsConfig>,
    /// Where callbacks, HTTP sinks and token endpoints may connect. Default: public
    /// addresses only.
    #[serde(default)]
    pub outbound: OutboundConfig,
    /// Attribute schemas by name: `apiName = type`.
    #[serde(default)]
    pub schemas: BTreeMap<String, Schema>,
    #[serde(default)]
    pub integrations: Vec<IntegrationConfig>,
    /// The directory relative paths in the file are resolved against (the file's own).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// Whether [`Config::check`] also requires every named secret to be readable now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretCheck {
    /// Offline validation of files needs no secret.
    Skip,
    /// `check`, `run` and `watch` need them all.
    Require,
}

impl Config {
    /// Reads and parses `path`; does not [`check`](Config::check) it. A directory is read as
    /// [`load_checked`](Config::load_checked) reads it; its problems of reading refuse it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        if path.is_dir() {
            return match dir::load(path)? {
                (Some(config), problems) if problems.is_empty() => Ok(config),
                (_, problems) => Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    problems,
                }),
            };
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::parse(&text, base_dir).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TOML text; relative paths in it will resolve against `base_dir`.
    pub fn parse(text: &str, base_dir: PathBuf) -> Result<Config, String> {
        let mut config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.base_dir = base_dir;
        Ok(config)
    }

    /// Loads and compiles in one step: the form every command uses. Every problem at once:
    /// unknown keys (each with the key meant) and what [`compile`](Config::compile) finds.
    /// `path` may be a directory: every `*.toml` in it is a part of the config (see
    /// `config/dir.rs`), relative paths resolve against the directory.
    pub fn load_checked(path: &Path, secrets: SecretCheck) -> Result<Settings, ConfigError> {
        let (config, mut problems) = Config::load_all(path)?;
        let compiled = config.map(|config| config.compile(secrets));
        match compiled {
            Some(Ok(settings)) if problems.is_empty() => Ok(settings),
            Some(Err(more)) => {
                problems.extend(more);
                Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    problems,
                })
            }
            _ => Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            }),
        }
    }

    /// The config at `path` (a file or a directory) and every problem in reading it, before
    /// [`compile`](Config::compile).
    fn load_all(path: &Path) -> Result<(Option<Config>, Vec<Problem>), ConfigError> {
        if path.is_dir() {
            return dir::load(path);
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        keys::parse_all(&text, base_dir).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Every problem in the file, in file order; empty when the config can run (when
    /// [`compile`](Config::compile) succeeds).
    pub fn check(&self, secrets: SecretCheck) -> Vec<Problem> {
        self.compile(secrets).err().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
