//! `dropfolder run`: one scan of every integration, then exit (for cron and scheduled tasks).
//! Exit 0 when the scan ran (customer file errors are results), 1 when an integration could
//! not be scanned or a folder not finished.

use std::path::Path;
use std::process::ExitCode;

use dropfolder::config::SecretCheck;
use dropfolder::validate::{escape, escape_line};
use dropfolder::worker::{RunReport, Worker};

pub async fn run(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config_path, SecretCheck::Require)?;
    let grace = config.schedule.grace_period;
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

/// One line per folder and per problem, on stdout; the details are in the logs. Every line
/// starts with the integration's name, and keys are escaped as in `status.txt`, so a key
/// cannot print a line of its own.
pub fn print_summary(report: &RunReport) {
    for integration in &report.integrations {
        let say = |text: &str| println!("{}: {}", integration.name, escape_line(text));
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
            say(&format!(
                "{} -> {} {result}",
                escape(&folder.folder),
                escape(&folder.target)
            ));
            for key in &folder.left {
                say(&format!(
                    "{} changed while being imported; left for the next run",
                    escape(key)
                ));
            }
        }
        for folder in &integration.waiting {
            say(&format!("{} waiting for _SUCCESS", escape(folder)));
        }
        for notice in &integration.notices {
            say(notice);
        }
        if let Some(why) = &integration.skipped {
            say(&format!("skipped: {why}"));
        }
        if let Some(error) = &integration.error {
            say(&format!("FAILED: {error}"));
        }
        if integration.stopped {
            say("stopped by a signal; what is left waits for the next run");
        } else if integration.folders.is_empty()
            && integration.waiting.is_empty()
            && integration.error.is_none()
            && integration.skipped.is_none()
        {
            say("nothing ready");
        }
    }
}
