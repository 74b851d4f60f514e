//! `dropfolder run`: one scan of every integration, then exit (for cron and scheduled tasks).
//! Exit 0 when the scan ran (customer file errors are results), 1 when an integration could
//! not be scanned or a folder not finished.

use std::path::Path;
use std::process::ExitCode;

use dropfolder::config::SecretCheck;
use dropfolder::worker::{RunReport, Worker};

pub async fn run(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config_path, SecretCheck::Require)?;
    let grace = config.schedule.grace_period();
    let worker = Worker::open(config).await?;
    let stop = worker.stop_token();
    dropfolder::shutdown::cancel_on_signal(stop.clone());
    let Some(report) = dropfolder::shutdown::within_grace(&stop, grace, worker.run_once()).await
    else {
        eprintln!(
            "error: the grace period ran out before the folder in hand was finished; the next run resumes it"
        );
        return Ok(ExitCode::from(1));
    };
    print_summary(&report);
    Ok(if report.failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// One line per folder and per problem, on stdout; the details are in the logs.
pub fn print_summary(report: &RunReport) {
    for integration in &report.integrations {
        for folder in &integration.folders {
            let records = match folder.records {
                1 => "1 record".to_string(),
                n => format!("{n} records"),
            };
            let result = match folder.success {
                Some(true) => format!("SUCCESS, {records}"),
                Some(false) => format!("ERROR, {records}"),
                None => "finished (reported by an earlier run)".to_string(),
            };
            println!(
                "{}: {} -> {} {result}",
                integration.name, folder.folder, folder.target
            );
            for key in &folder.left {
                println!(
                    "{}: {key} changed while being imported; left for the next run",
                    integration.name
                );
            }
        }
        for folder in &integration.waiting {
            println!("{}: {folder} waiting for _SUCCESS", integration.name);
        }
        for notice in &integration.notices {
            println!("{}: {notice}", integration.name);
        }
        if let Some(why) = &integration.skipped {
            println!("{}: skipped: {why}", integration.name);
        }
        if let Some(error) = &integration.error {
            println!("{}: FAILED: {error}", integration.name);
        }
        if integration.stopped {
            println!(
                "{}: stopped by a signal; what is left waits for the next run",
                integration.name
            );
        } else if integration.folders.is_empty()
            && integration.waiting.is_empty()
            && integration.error.is_none()
            && integration.skipped.is_none()
        {
            println!("{}: nothing ready", integration.name);
        }
    }
}
