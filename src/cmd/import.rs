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
use dropfolder::load::load_file;
use dropfolder::sink::{AnySink, FileRef};
use dropfolder::validate::FileRules;
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
    let rules = FileRules::for_integration(&config, integration)?;
    let (name, source): (String, Box<dyn AsyncRead + Send + Unpin>) = if file.as_os_str() == "-" {
        ("stdin".into(), Box::new(tokio::io::stdin()))
    } else {
        let handle = tokio::fs::File::open(file)
            .await
            .map_err(|e| UsageError(format!("cannot open {}: {e}", file.display())))?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (name, Box::new(handle))
    };
    let sink = AnySink::open(&config).await?;
    let file_ref = FileRef {
        integration: integration.name.clone(),
        entity: integration.entity,
        key: format!("import/{name}"),
        version: String::new(), // The content hash, once read.
    };
    let loaded = load_file(&sink, &rules, &file_ref, &name, source, Utc::now()).await?;
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
