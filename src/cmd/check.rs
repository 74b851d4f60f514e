//! `dropfolder check`: the whole config, every problem at once, by integration; then, unless
//! `--offline`, everything a run will need, reached as the run would reach it: the state and
//! sink databases, the hosts of the HTTP sink and the callbacks (connected to, nothing sent;
//! [`super::reach`]), and each integration's bucket (credentials, region, a LIST of
//! `current/`). One line each saying ok (and, for S3, the identity it acts as) or what is
//! wrong and what to do. Every probe has a time limit and they run concurrently.
//! A date pattern with letters Java would misread (`YYYY`, `DD`, `u`, `hh` without `a`) gets a
//! note saying how dropfolder reads it; notes are not problems.
//! Exit 0 all ok, 1 something could not be reached, 2 the config has problems.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use dropfolder::config::{SecretCheck, SecretRef};
use dropfolder::scan::scan;
use dropfolder::settings::{IntegrationSettings, Settings, Source};
use dropfolder::store::{StoreError, StoreLocation, StoreSettings};
use futures_util::StreamExt;

/// How long reaching one bucket may take (assuming a role, discovering the region, a LIST),
/// the SDK's retries included.
const BUCKET_TIMEOUT: Duration = Duration::from_secs(30);

/// Buckets reached at once.
const BUCKETS_AT_ONCE: usize = 16;

pub async fn run(path: &Path, offline: bool, only: Option<&str>) -> anyhow::Result<ExitCode> {
    let config = super::load_config(path, SecretCheck::Require)?;
    if let Some(name) = only {
        // Names it, or says which there are.
        super::pick_integration(&config, path, Some(name))?;
    }
    println!(
        "config {}: ok ({} integration(s))",
        path.display(),
        config.integrations.len()
    );
    let chosen: Vec<&IntegrationSettings> = config
        .integrations
        .iter()
        .filter(|i| only.is_none_or(|name| name == i.name))
        .collect();
    for integration in &chosen {
        let pattern = &integration.rules.dates;
        for note in pattern.notes() {
            println!(
                "{}: note: date_format '{pattern}': {note}",
                integration.name
            );
        }
    }
    // A push integration has nothing to reach: its token was read with the config.
    for integration in &chosen {
        if let Source::Push(push) = &integration.source {
            let token = match &push.token {
                SecretRef::Env(var) => format!("environment variable {var}"),
                SecretRef::File(path) => format!("file {}", path.display()),
            };
            println!(
                "{}: ok, push endpoint POST /stream/v0/data/{} on {} (token from {token}, max_body_bytes {})",
                integration.name, integration.name, config.server.listen, push.max_body_bytes
            );
        }
    }
    if offline {
        for integration in &chosen {
            if let Some(store) = integration.store() {
                println!(
                    "{}: ok, {} not contacted (--offline)",
                    integration.name,
                    location(store)
                );
            }
            if let Source::Poll(poll) = &integration.source {
                println!(
                    "{}: ok, {} not contacted (--offline)",
                    integration.name,
                    dropfolder::config::redact_url(&poll.endpoint)
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let aws = tokio::sync::OnceCell::new();
    if every_bucket_names_its_region(&config) {
        // Otherwise the SDK asks IMDS for a region no request will use, and warns where
        // there is none.
        let _ = aws
            .get_or_init(dropfolder::store::aws::base_config_without_imds_region)
            .await;
    }
    let services = super::reach::probe_all(&config, only);
    let with_buckets = chosen
        .iter()
        .filter_map(|integration| Some((*integration, integration.store()?)));
    let buckets = futures_util::stream::iter(with_buckets)
        .map(|(integration, store)| bucket(integration, store, &aws))
        .buffered(BUCKETS_AT_ONCE)
        .collect::<Vec<_>>();
    let (services, buckets) = tokio::join!(services, buckets);
    let mut failed = false;
    for probe in services {
        match probe.outcome {
            Ok(how) => println!("{}: ok, {how}", probe.what),
            Err(why) => {
                failed = true;
                println!("{}: FAILED: {why}", probe.what);
            }
        }
    }
    for (lines, ok) in buckets {
        failed |= !ok;
        for line in lines {
            println!("{line}");
        }
    }
    failed |= !poll_apis(&config, &chosen).await;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Asks each poll integration's API for the first page of its last window (nothing is
/// applied); a line each. Whether every one answered with a page that reads.
async fn poll_apis(config: &Settings, chosen: &[&IntegrationSettings]) -> bool {
    let polls = chosen
        .iter()
        .filter_map(|integration| match &integration.source {
            Source::Poll(poll) => Some((*integration, poll)),
            Source::Bucket(_) | Source::Push(_) => None,
        });
    let answers = futures_util::stream::iter(polls)
        .map(|(integration, poll)| async move {
            let shown = dropfolder::config::redact_url(&poll.endpoint);
            let asked = dropfolder::poll::probe(poll, config.egress.clone(), chrono::Utc::now());
            match asked.await {
                Ok(how) => (format!("{}: ok, {shown} {how}", integration.name), true),
                Err(e) => (format!("{}: FAILED: {shown}: {e}", integration.name), false),
            }
        })
        .buffered(BUCKETS_AT_ONCE)
        .collect::<Vec<_>>()
        .await;
    let mut ok = true;
    for (line, answered) in answers {
        ok &= answered;
        println!("{}", dropfolder::validate::escape_line(&line));
    }
    ok
}

/// `folder PATH` or `s3://bucket/prefix`, as the check lines say it.
fn location(store: &StoreSettings) -> String {
    match &store.location {
        StoreLocation::Local(dir) => format!("folder {}", dir.display()),
        StoreLocation::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
    }
}

fn every_bucket_names_its_region(config: &Settings) -> bool {
    config.integrations.iter().all(|integration| {
        integration.store().is_none_or(|store| {
            store.access.region.is_some() || matches!(store.location, StoreLocation::Local(_))
        })
    })
}

/// One integration's lines, and whether its bucket was reached. A failure with a customer's
/// role gets a second line saying what the customer has to change, in their terms.
async fn bucket(
    integration: &IntegrationSettings,
    store: &StoreSettings,
    aws: &tokio::sync::OnceCell<aws_config::SdkConfig>,
) -> (Vec<String>, bool) {
    let location = location(store);
    let reached = tokio::time::timeout(BUCKET_TIMEOUT, async {
        match dropfolder::store::open(store, aws).await {
            Ok(store) => scan(store.as_ref()).await,
            Err(e) => Err(e),
        }
    })
    .await;
    let name = &integration.name;
    match reached {
        Ok(Ok(found)) => (
            vec![format!(
                "{name}: ok, {location} reachable{}: {} folder(s) ready, {} waiting for _SUCCESS",
                identity(store, aws).await,
                found.ready.len(),
                found.waiting.len()
            )],
            true,
        ),
        Ok(Err(e)) => {
            let mut lines = vec![format!("{name}: FAILED: {e}")];
            if let Some(said) = for_the_customer(integration, store, &location, &e) {
                lines.push(format!("{name}: for the customer: {said}"));
            }
            (lines, false)
        }
        Err(_) => (
            vec![format!(
                "{name}: FAILED: {location}: no answer within {} s; check `endpoint`, `region` and that the network lets dropfolder reach S3",
                BUCKET_TIMEOUT.as_secs()
            )],
            false,
        ),
    }
}

/// What a customer with a role has to change, when the failure is on their side.
fn for_the_customer(
    integration: &IntegrationSettings,
    store: &StoreSettings,
    location: &str,
    error: &StoreError,
) -> Option<String> {
    let role = store.access.role_arn.as_ref()?;
    let onboard = format!("`dropfolder onboard {}` prints it", integration.name);
    Some(match error {
        StoreError::Credentials { .. } => format!(
            "we cannot assume your role {role}: its trust policy must allow sts:AssumeRole to our principal with the external ID we gave you ({onboard})"
        ),
        StoreError::AccessDenied { .. } => format!(
            "your role {role} may not list or use {location}: its permissions policy must allow s3:GetBucketLocation and s3:ListBucket on the bucket, and s3:GetObject, s3:PutObject and s3:DeleteObject under the prefix ({onboard})"
        ),
        StoreError::NoSuchBucket { .. } => format!(
            "there is no bucket {location}: check its name with us, or create it in the account of {role}"
        ),
        _ => return None,
    })
}

/// ` as <ARN>` for an S3 integration: who its requests are made as, from STS. Informational:
/// the scan already succeeded, so a failure here is shown, not counted.
async fn identity(
    store: &StoreSettings,
    aws: &tokio::sync::OnceCell<aws_config::SdkConfig>,
) -> String {
    let StoreLocation::S3 { bucket, .. } = &store.location else {
        return String::new();
    };
    let base = aws.get_or_init(dropfolder::store::aws::base_config).await;
    let asked = tokio::time::timeout(
        BUCKET_TIMEOUT,
        dropfolder::store::aws::caller_arn(base, &store.access, bucket),
    )
    .await;
    match asked {
        Ok(Ok(arn)) => format!(" as {arn}"),
        Ok(Err(e)) => format!(" (identity not shown: {e})"),
        Err(_) => " (identity not shown: STS did not answer in time)".to_string(),
    }
}
