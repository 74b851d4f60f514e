//! `dropfolder status`: each integration's last scan and last result, from the state database.

use std::path::Path;
use std::process::ExitCode;

use chrono::SecondsFormat;
use dropfolder::config::SecretCheck;
use dropfolder::state::IntegrationState;

pub async fn run(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config_path, SecretCheck::Skip)?;
    let state = dropfolder::worker::open_state(&config).await?;
    let known = state.integrations().await?;
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or("never".to_string(), |t| {
            t.to_rfc3339_opts(SecondsFormat::Secs, true)
        })
    };
    for integration in &config.integrations {
        let s = known
            .iter()
            .find(|s| s.integration == integration.name)
            .cloned()
            .unwrap_or_else(|| IntegrationState {
                integration: integration.name.clone(),
                ..IntegrationState::default()
            });
        let last = match (s.last_success, &s.last_target) {
            (Some(ok), Some(target)) => {
                format!("{} {target}", if ok { "SUCCESS" } else { "ERROR" })
            }
            _ => "no folder yet".to_string(),
        };
        println!(
            "{}: last scan {}, last data {} ({last}){}",
            s.integration,
            time(s.last_scan_at),
            time(s.last_data_at),
            s.last_error
                .map(|e| format!(", error: {e}"))
                .unwrap_or_default()
        );
        for notice in &s.notices {
            println!("  notice: {notice}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
