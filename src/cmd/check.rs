//! `dropfolder check`: the whole config, every problem at once, by integration; then, unless
//! `--offline`, each integration's bucket reached as a scan would (credentials, region, a
//! LIST of `current/`), one line each saying ok (and, for S3, the identity it acts as) or
//! what is wrong and what to do.
//! A date pattern with letters Java would misread (`YYYY`, `DD`, `u`, `hh` without `a`) gets a
//! note saying how dropfolder reads it; notes are not problems.
//! Exit 0 all ok, 1 a bucket could not be reached, 2 the config has problems.

use std::path::Path;
use std::process::ExitCode;

use dropfolder::config::SecretCheck;
use dropfolder::scan::scan;
use dropfolder::settings::IntegrationSettings;
use dropfolder::store::StoreLocation;

pub async fn run(path: &Path, offline: bool) -> anyhow::Result<ExitCode> {
    let config = super::load_config(path, SecretCheck::Require)?;
    println!(
        "config {}: ok ({} integration(s))",
        path.display(),
        config.integrations.len()
    );
    let aws = tokio::sync::OnceCell::new();
    let mut failed = false;
    for integration in &config.integrations {
        let pattern = &integration.rules.dates;
        for note in pattern.notes() {
            println!(
                "{}: note: date_format '{pattern}': {note}",
                integration.name
            );
        }
        let location = match &integration.store.location {
            StoreLocation::Local(dir) => format!("folder {}", dir.display()),
            StoreLocation::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        };
        if offline {
            println!(
                "{}: ok, {location} not contacted (--offline)",
                integration.name
            );
            continue;
        }
        let reached = match dropfolder::store::open(&integration.store, &aws).await {
            Ok(store) => scan(store.as_ref()).await,
            Err(e) => Err(e),
        };
        match reached {
            Ok(found) => println!(
                "{}: ok, {location} reachable{}: {} folder(s) ready, {} waiting for _SUCCESS",
                integration.name,
                identity(integration, &aws).await,
                found.ready.len(),
                found.waiting.len()
            ),
            Err(e) => {
                failed = true;
                println!("{}: FAILED: {e}", integration.name);
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// ` as <ARN>` for an S3 integration: who its requests are made as, from STS. Informational:
/// the scan already succeeded, so a failure here is shown, not counted.
async fn identity(
    integration: &IntegrationSettings,
    aws: &tokio::sync::OnceCell<aws_config::SdkConfig>,
) -> String {
    let StoreLocation::S3 { bucket, .. } = &integration.store.location else {
        return String::new();
    };
    let base = aws.get_or_init(dropfolder::store::aws::base_config).await;
    match dropfolder::store::aws::caller_arn(base, &integration.store.access, bucket).await {
        Ok(arn) => format!(" as {arn}"),
        Err(e) => format!(" (identity not shown: {e})"),
    }
}
