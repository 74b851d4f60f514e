//! `dropfolder import --integration NAME FILE|-`: a local file or stdin straight into the
//! sink, with the same validation and ledger as a bucket file (the "ingest from a local file
//! or stream" of source document 000). The ledger key is `import/NAME` at the content's
//! SHA-256, so importing the same bytes twice applies them once.
//! Exit 0 imported (or imported before), 1 rejected, 2 bad config or usage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use dropfolder::config::SecretCheck;
use dropfolder::finish::status::status_text;
use dropfolder::ledger::{FileRef, Version};
use dropfolder::load::{LoadError, load_file};
use dropfolder::sink::{AnySink, Sink};
use dropfolder::store::ObjectReader;
use futures_util::future::BoxFuture;
use tokio::io::AsyncRead;

use super::UsageError;

pub async fn run(
    config_path: &Path,
    integration: Option<&str>,
    file: &Path,
    errors_csv: Option<&PathBuf>,
) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config_path, SecretCheck::Require)?;
    let integration = super::pick_integration(&config, config_path, integration)?;
    let rules = &integration.rules;
    let stdin = file.as_os_str() == "-";
    if !stdin && !file.is_file() {
        return Err(UsageError(format!("{} is not a readable file", file.display())).into());
    }
    let name = match file.file_name() {
        Some(name) if !stdin => name.to_string_lossy().into_owned(),
        _ => "stdin".to_string(),
    };
    let state = dropfolder::worker::open_state(&config).await?;
    let sink = AnySink::open(&config.sink, config.egress.clone(), state).await?;
    // A local file cannot stall mid-read as a download or a pipe can, so SQLite may hold its
    // write lock while the file is validated and apply rows as they come.
    let sink = if stdin { sink } else { sink.for_local_files() };
    // A sink that cannot roll back reads the file twice (validate whole, then send), and
    // standard input can be read once: it is spooled to a temporary file first.
    let spooled = match (stdin, sink.transactional()) {
        (true, false) => Some(spool_stdin().await?),
        _ => None,
    };
    let path: Option<PathBuf> = match &spooled {
        Some(temp) => Some(temp.path().to_path_buf()),
        None if stdin => None,
        None => Some(file.to_path_buf()),
    };
    let open = || -> BoxFuture<'_, Result<ObjectReader, LoadError>> {
        Box::pin(async {
            let source: Box<dyn AsyncRead + Send + Unpin> =
                match &path {
                    Some(path) => Box::new(tokio::fs::File::open(path).await.map_err(|e| {
                        LoadError::Open {
                            key: name.clone(),
                            message: format!("cannot open {}: {e}", path.display()),
                        }
                    })?),
                    None => Box::new(tokio::io::stdin()),
                };
            Ok(source)
        })
    };
    let file_ref = FileRef {
        integration: integration.name.clone(),
        entity: integration.entity,
        key: format!("import/{name}"),
        version: Version::ContentHash(String::new()), // Filled in once read.
    };
    let loaded = load_file(&sink, rules, &file_ref, &name, open, Utc::now()).await?;
    print!("{}", status_text(std::slice::from_ref(&loaded.result)));
    if let (Some(path), Some(spool)) = (errors_csv, loaded.errors_csv) {
        spool
            .persist(path)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("every error is listed in {}", path.display());
    }
    Ok(if loaded.result.is_imported() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Standard input copied to a temporary file, for a sink that reads a file twice.
async fn spool_stdin() -> anyhow::Result<tempfile::NamedTempFile> {
    let temp =
        tempfile::NamedTempFile::new().context("cannot create a temporary file for stdin")?;
    let mut out =
        tokio::fs::File::from_std(temp.reopen().context("cannot reopen the temporary file")?);
    tokio::io::copy(&mut tokio::io::stdin(), &mut out)
        .await
        .context("cannot read stdin")?;
    Ok(temp)
}
