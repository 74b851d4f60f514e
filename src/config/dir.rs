//! A config directory: every `*.toml` in it read as parts of one config (a service file and
//! one file per integration, say), so no single file has to hold thousands of integrations.
//! A Kubernetes ConfigMap holds at most 1 MiB; several of them projected into one directory,
//! or a directory the operator's own control plane writes, have no such ceiling.
//!
//! Each file is read as a config of its own first (unknown keys and wrong types reported with
//! the file's name), then the files are merged: integrations and schemas are gathered from
//! every file, a section such as `[state]` may be in one file only, and an integration or
//! schema defined twice is a problem naming both files. Files are taken in name order;
//! hidden names are skipped (a ConfigMap volume's `..data` and its timestamped directories).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Config, ConfigError, Problem, keys};

/// Files read from one directory at most: far beyond one file per integration at the scale
/// one process serves, and a bound on a directory that is not what the operator meant.
const MAX_FILES: usize = 100_000;

/// The merged config of a directory, or `None` when no part could be read, with every problem
/// found on the way. `Err` only when the directory itself cannot be listed.
pub(super) fn load(dir: &Path) -> Result<(Option<Config>, Vec<Problem>), ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        // `is_file` follows symlinks: a ConfigMap volume's files are links into `..data`.
        if name.starts_with('.') || !name.ends_with(".toml") || !path.is_file() {
            continue;
        }
        files.push((name, path));
        if files.len() > MAX_FILES {
            return Ok((
                None,
                vec![Problem::whole(format!(
                    "more than {MAX_FILES} *.toml files in {}; is it the right directory?",
                    dir.display()
                ))],
            ));
        }
    }
    files.sort();
    let mut problems = Vec::new();
    if files.is_empty() {
        problems.push(Problem::whole(format!(
            "no *.toml file in {}",
            dir.display()
        )));
        return Ok((None, problems));
    }
    let mut merged = Merged::default();
    for (name, path) in &files {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                problems.push(Problem::whole(format!("{name}: cannot read: {e}")));
                continue;
            }
        };
        let mut table: toml::Table = match text.parse() {
            Ok(table) => table,
            Err(e) => {
                let e: toml::de::Error = e;
                problems.push(Problem::whole(format!(
                    "{name}: {}",
                    e.to_string().trim_end()
                )));
                continue;
            }
        };
        keys::remove_unknown_keys(&mut table, Some(name), &mut problems);
        // A wrong type is reported with the file it is in; such a file is left out of the
        // merge (the config is refused anyway).
        if let Err(e) = serde_path_to_error::deserialize::<_, Config>(table.clone()) {
            let message = e.inner().to_string();
            let first_line = message.lines().next().unwrap_or_default();
            problems.push(Problem::whole(format!(
                "{name}: {}: {first_line}",
                e.path()
            )));
            continue;
        }
        merged.add(name, table, &mut problems);
    }
    let config = keys::from_table(merged.table, dir.to_path_buf(), &mut problems);
    Ok((config, problems))
}

/// The files merged so far, and which file each section, schema and integration came from.
#[derive(Default)]
struct Merged {
    table: toml::Table,
    sections: BTreeMap<String, String>,
    schemas: BTreeMap<String, String>,
    integrations: BTreeMap<String, String>,
}

impl Merged {
    fn add(&mut self, file: &str, table: toml::Table, problems: &mut Vec<Problem>) {
        for (key, value) in table {
            match (key.as_str(), value) {
                ("integrations", toml::Value::Array(integrations)) => {
                    for integration in integrations {
                        self.integration(file, integration, problems);
                    }
                }
                ("schemas", toml::Value::Table(schemas)) => {
                    for (name, schema) in schemas {
                        if let Some(first) = self.schemas.get(&name) {
                            problems.push(Problem::whole(format!(
                                "schema '{}' is defined in {first} and in {file}; define it once",
                                keys::quoted(&name)
                            )));
                            continue;
                        }
                        self.schemas.insert(name.clone(), file.to_string());
                        if let toml::Value::Table(all) = self
                            .table
                            .entry("schemas")
                            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                        {
                            all.insert(name, schema);
                        }
                    }
                }
                (section, value) => {
                    if let Some(first) = self.sections.get(section) {
                        problems.push(Problem::whole(format!(
                            "[{section}] is in {first} and in {file}; a section may be in one file only"
                        )));
                        continue;
                    }
                    self.sections.insert(section.to_string(), file.to_string());
                    self.table.insert(section.to_string(), value);
                }
            }
        }
    }

    fn integration(&mut self, file: &str, integration: toml::Value, problems: &mut Vec<Problem>) {
        // The name's absence or form is reported by the check of the merged config.
        if let Some(name) = integration.get("name").and_then(toml::Value::as_str) {
            if let Some(first) = self.integrations.get(name) {
                problems.push(Problem::whole(format!(
                    "integration '{}' is defined in {first} and in {file}; names must be unique",
                    keys::quoted(name)
                )));
                return;
            }
            self.integrations.insert(name.to_string(), file.to_string());
        }
        if let toml::Value::Array(all) = self
            .table
            .entry("integrations")
            .or_insert_with(|| toml::Value::Array(Vec::new()))
        {
            all.push(integration);
        }
    }
}
