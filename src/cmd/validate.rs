//! `dropfolder validate`: local files checked offline, printed as the `status.txt` the import
//! would write. Exit 0 when every file is valid, 1 when one is not, 2 on bad config or usage.
//! With `--suggest`, no config: the dialect and the `date_format` that would read each file.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use dropfolder::config::SecretCheck;
use dropfolder::finish::status::{FileResult, status_text};
use dropfolder::validate::sniff::{self, Suggestion};
use dropfolder::validate::{CountRows, FileReport, validate};
use tokio::io::AsyncRead;

use super::UsageError;

pub async fn run(
    config_path: &Path,
    integration: Option<&str>,
    files: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config_path, SecretCheck::Skip)?;
    let integration = super::pick_integration(&config, config_path, integration)?;
    let rules = &integration.rules;
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
        let report = validate(rules, &name, source, &mut CountRows::default(), None)
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

/// How much of a file `--suggest` reads, decompressed: enough rows to see a column's layouts.
const SUGGEST_SAMPLE_BYTES: u64 = 4 * 1024 * 1024;

/// `validate --suggest`: each file's dialect and date format, as config lines to paste.
pub async fn suggest(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    for file in files {
        if file.as_os_str() != "-" && !file.is_file() {
            return Err(UsageError(format!("{} is not a readable file", file.display())).into());
        }
    }
    for (n, file) in files.iter().enumerate() {
        let sample =
            read_sample(file).with_context(|| format!("cannot read {}", file.display()))?;
        let found = sniff::suggest(&sample).await;
        if n > 0 {
            println!();
        }
        print_suggestion(&file.display().to_string(), &found);
    }
    Ok(ExitCode::SUCCESS)
}

/// The start of a file, decompressed when it is gzip; the last, maybe partial, line cut off.
fn read_sample(file: &Path) -> std::io::Result<Vec<u8>> {
    let mut raw: Box<dyn Read> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(file)?)
    };
    let mut magic = [0u8; 2];
    let got = raw.read(&mut magic)?;
    let head = std::io::Cursor::new(magic[..got].to_vec()).chain(raw);
    let mut reader: Box<dyn Read> = if magic[..got] == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(head))
    } else {
        Box::new(head)
    };
    let mut sample = Vec::new();
    (&mut reader)
        .take(SUGGEST_SAMPLE_BYTES)
        .read_to_end(&mut sample)?;
    if sample.len() as u64 == SUGGEST_SAMPLE_BYTES
        && let Some(end) = sample.iter().rposition(|&b| b == b'\n')
    {
        sample.truncate(end + 1);
    }
    Ok(sample)
}

fn print_suggestion(name: &str, found: &Suggestion) {
    let toml_string = |s: &str| toml::Value::String(s.to_string()).to_string();
    println!("# {name}: {} records read", found.records);
    let header = if found.header {
        "header = true".to_string()
    } else {
        "header = false, columns = [...]".to_string()
    };
    println!(
        "csv = {{ delimiter = {}, {header} }}",
        toml_string(&found.delimiter.to_string())
    );
    let mut formats: Vec<&str> = Vec::new();
    for (column, format) in &found.dates {
        // "P (or Q: ...)": the pattern to configure comes first.
        let pattern = format.split(" (or ").next().unwrap_or(format);
        if !formats.contains(&pattern) {
            formats.push(pattern);
        }
        println!(
            "# column '{}': {format}",
            dropfolder::validate::escape(column)
        );
    }
    match formats.as_slice() {
        [] => println!("# no column looks like dates in one common format"),
        [one] => println!("date_format = {}", toml_string(one)),
        several => {
            println!("# the date columns differ; one integration reads one date_format:");
            for format in several {
                println!("# date_format = {}", toml_string(format));
            }
        }
    }
}
