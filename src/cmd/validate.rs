//! `dropfolder validate`: local files checked offline, printed as the `status.txt` the import
//! would write. Exit 0 when every file is valid, 1 when one is not, 2 on bad config or usage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use dropfolder::config::SecretCheck;
use dropfolder::finish::status::{FileResult, status_text};
use dropfolder::validate::{CountRows, FileReport, FileRules, validate};
use tokio::io::AsyncRead;

use super::UsageError;

pub async fn run(
    config_path: &Path,
    integration: Option<&str>,
    files: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config_path, SecretCheck::Skip)?;
    let integration = super::pick_integration(&config, config_path, integration)?;
    let rules = FileRules::for_integration(&config, integration)?;
    for file in files {
        if file.as_os_str() != "-" && !file.is_file() {
            return Err(UsageError(format!("{} is not a readable file", file.display())).into());
        }
    }
    let mut reports = Vec::with_capacity(files.len());
    for file in files {
        let (name, source) = open(file).await?;
        if !name.ends_with(".csv.gz") && file.as_os_str() != "-" {
            eprintln!(
                "note: the import reads only files named *.csv.gz; {name} would not be imported"
            );
        }
        let report = validate(&rules, &name, source, &mut CountRows::default(), None)
            .await
            .with_context(|| format!("cannot read {}", file.display()))?;
        tracing::info!(
            file = %name,
            rows = report.rows,
            bytes = report.decompressed_bytes,
            rows_per_second = report.rows_per_second() as u64,
            valid = report.is_valid(),
            "validated"
        );
        reports.push(report);
    }
    print_reports(&reports);
    Ok(if reports.iter().all(FileReport::is_valid) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One file: its status text. Several: each file's, then all of them as one folder.
fn print_reports(reports: &[FileReport]) {
    let results: Vec<FileResult> = reports.iter().map(FileResult::from_report).collect();
    if let [only] = results.as_slice() {
        print!("{}", status_text(std::slice::from_ref(only)));
        return;
    }
    for result in &results {
        println!("==> {} <==", result.name);
        print!("{}", status_text(std::slice::from_ref(result)));
        println!();
    }
    println!("==> all {} files, as one folder <==", results.len());
    print!("{}", status_text(&results));
}

async fn open(file: &Path) -> anyhow::Result<(String, Box<dyn AsyncRead + Send + Unpin>)> {
    if file.as_os_str() == "-" {
        return Ok(("stdin".to_string(), Box::new(tokio::io::stdin())));
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string());
    let handle = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot open {}", file.display()))?;
    Ok((name, Box::new(handle)))
}
