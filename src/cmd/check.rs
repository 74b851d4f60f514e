//! `dropfolder check`: the whole config, every problem at once, by integration.

use std::path::Path;
use std::process::ExitCode;

use dropfolder::config::{SecretCheck, StoreLocation};

pub async fn run(path: &Path, offline: bool) -> anyhow::Result<ExitCode> {
    let config = super::load_config(path, SecretCheck::Require)?;
    println!(
        "config {}: ok ({} integration(s))",
        path.display(),
        config.integrations.len()
    );
    for integration in &config.integrations {
        let location = match integration.location(&config.base_dir) {
            Ok(StoreLocation::Local(dir)) => format!("folder {}", dir.display()),
            Ok(StoreLocation::S3 { bucket, prefix }) => format!("s3://{bucket}/{prefix}"),
            Err(e) => e,
        };
        let reach = if offline {
            "not contacted (--offline)"
        } else {
            "not contacted yet"
        };
        println!("{}: ok, {location} {reach}", integration.name);
    }
    Ok(ExitCode::SUCCESS)
}
