//! `dropfolder status`: each integration's status (Ready, Active, Warning, Failed) with its
//! reason, last scan and last result; `--json` prints what `watch` serves at `/status`.

use std::path::Path;
use std::process::ExitCode;

use chrono::SecondsFormat;
use dropfolder::config::SecretCheck;
use dropfolder::health::statuses;
use dropfolder::validate::{escape, escape_line};

pub async fn run(config_path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config_path, SecretCheck::Skip)?;
    let state = dropfolder::worker::open_state(&config).await?;
    let all = statuses(&config, state.as_ref()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(ExitCode::SUCCESS);
    }
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or("never".to_string(), |t| {
            t.to_rfc3339_opts(SecondsFormat::Secs, true)
        })
    };
    // One line per integration, then its last result and notices, each line starting with
    // the integration's name; what came from a bucket is escaped, so it cannot print a line.
    let width = all.iter().map(|h| h.integration.len()).max().unwrap_or(0);
    for h in &all {
        let name = &h.integration;
        println!(
            "{name:width$}  {:6}  {:7}  last scan {:20}  last data {:20}  {}",
            h.kind,
            h.status.as_str(),
            time(h.last_scan_at),
            time(h.last_data_at),
            escape_line(&h.reason)
        );
        if let (Some(result), Some(target)) = (&h.last_result, &h.last_target) {
            println!(
                "{name:width$}  last result: {}",
                escape_line(&format!("{result} {}", escape(target)))
            );
        }
        for notice in &h.notices {
            println!("{name:width$}  notice: {}", escape_line(notice));
        }
    }
    Ok(ExitCode::SUCCESS)
}
