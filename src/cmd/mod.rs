//! The commands, one module each. They may use anyhow; the library does not.

pub mod check;
pub mod import;
pub mod onboard;
pub mod reach;
pub mod run;
pub mod status;
pub mod validate;
pub mod watch;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use dropfolder::config::{Config, ConfigError, SecretCheck};
use dropfolder::settings::{IntegrationSettings, Settings};

/// Config problems and usage errors exit 2; everything else that fails exits 1.
pub fn exit_code_of(error: &anyhow::Error) -> ExitCode {
    let usage = error
        .chain()
        .any(|e| e.is::<ConfigError>() || e.is::<UsageError>());
    ExitCode::from(if usage { 2 } else { 1 })
}

/// The error and its causes in one line, each cause once: typed errors keep their cause as
/// `source` and many also say it in their own text, which `{:#}` would print twice.
pub fn one_line(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// A command line that cannot be acted on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Loads and compiles the config.
pub fn load_config(path: &Path, secrets: SecretCheck) -> anyhow::Result<Settings> {
    Config::load_checked(path, secrets).context("the config cannot be used")
}

/// The integration named on the command line, or the only one there is.
pub fn pick_integration<'c>(
    config: &'c Settings,
    path: &Path,
    name: Option<&str>,
) -> anyhow::Result<&'c IntegrationSettings> {
    let known = || {
        let names: Vec<&str> = config
            .integrations
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        names.join(", ")
    };
    match name {
        Some(name) => config.integration(name).ok_or_else(|| {
            ConfigError::UnknownIntegration {
                path: path.to_path_buf(),
                name: name.to_string(),
                known: known(),
            }
            .into()
        }),
        None => match config.integrations.as_slice() {
            [only] => Ok(only),
            _ => Err(UsageError(format!(
                "name the integration with --integration (one of: {})",
                known()
            ))
            .into()),
        },
    }
}
