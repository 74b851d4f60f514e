//! `dropfolder status`: each integration's status (Ready, Active, Warning, Failed) with its
//! reason, last scan and last result; `--json` prints what `watch` serves at `/status`.

use std::path::Path;
use std::process::ExitCode;

use chrono::SecondsFormat;
use dropfolder::config::SecretCheck;
use dropfolder::health::statuses;

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
    let width = all
        .iter()
        .map(|h| h.integration.len())
        .max()
        .unwrap_or(11)
        .max(11);
    println!(
        "{:width$}  {:7}  {:20}  {:20}  REASON",
        "INTEGRATION", "STATUS", "LAST SCAN", "LAST DATA"
    );
    for h in &all {
        println!(
            "{:width$}  {:7}  {:20}  {:20}  {}",
            h.integration,
            h.status.as_str(),
            time(h.last_scan_at),
            time(h.last_data_at),
            h.reason
        );
        if let (Some(result), Some(target)) = (&h.last_result, &h.last_target) {
            println!("{:width$}  last result: {result} {target}", "");
        }
        for notice in &h.notices {
            println!("{:width$}  notice: {notice}", "");
        }
    }
    Ok(ExitCode::SUCCESS)
}
