//! `dropfolder watch`: scan now and on the schedule (and on S3 events), serve health,
//! metrics and status, until SIGTERM or SIGINT; then finish the folder in hand and exit 0.
//! SIGHUP, or a change of the config file(s), reloads the config (`dropfolder::watch`).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use dropfolder::config::{Config, ConfigError, SecretCheck};
use dropfolder::events::Queue;
use dropfolder::reload::ConfigFiles;
use dropfolder::shutdown::Hangups;
use dropfolder::telemetry::ConfigLoaded;
use dropfolder::watch::{CHECK_CONFIG_EVERY, Reload};
use dropfolder::worker::Worker;

pub async fn run(config_path: &Path) -> anyhow::Result<ExitCode> {
    // Before anything reloads: SIGHUP would otherwise end the process.
    let hangups = Hangups::catch();
    let files = ConfigFiles::new(config_path);
    // Taken before loading: a change made while it loads is seen by the first check.
    let hash = files.fingerprint().unwrap_or_default();
    let config = super::load_config(config_path, SecretCheck::Require)?;
    let listen = config.server.listen;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen} ([server] listen)"))?;
    // The bound address, which differs from `listen` for port 0.
    let listen = listener.local_addr().unwrap_or(listen);
    let queue = match &config.events {
        // Routed to the integrations in force by the watch loop.
        Some(events) => {
            let base = dropfolder::store::aws::base_config().await;
            Some(Queue::new(&base, events, Vec::new()))
        }
        None => None,
    };
    let token = match &config.server.token {
        Some(secret) => Some(secret.read().context("[server] token_env / token_file")?),
        None => None,
    };
    ConfigLoaded {
        hash: &hash,
        integrations: config.integrations.len(),
        changes: None,
    }
    .emit();
    let worker = Arc::new(Worker::open(config).await?);
    let stop = worker.stop_token();
    dropfolder::shutdown::cancel_on_signal(stop.clone());
    let push = dropfolder::push::Push::new(
        worker.live(),
        worker.sink.clone(),
        worker.state.clone(),
        stop.clone(),
        dropfolder::push::PushLimits::default(),
    );
    let server = tokio::spawn(dropfolder::server::serve(
        listener,
        worker.live(),
        worker.state.clone(),
        token,
        Some(push),
        stop.clone(),
    ));
    let path = config_path.to_path_buf();
    let reload = Reload {
        files,
        load: Arc::new(move || load_problems(&path)),
        hash,
        pending: None,
        check_every: CHECK_CONFIG_EVERY,
        hangups,
    };
    tracing::info!(listen = %listen, events = queue.is_some(), "watching");
    let clean = dropfolder::watch::watch(worker, queue, Some(reload)).await;
    let _ = server.await;
    if clean {
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: the grace period ran out before the folders in hand were finished; the next start resumes them"
        );
        Ok(ExitCode::from(1))
    }
}

/// The config at `path`, checked as at start (secrets required), or every problem as `check`
/// prints them.
fn load_problems(path: &Path) -> Result<dropfolder::settings::Settings, Vec<String>> {
    Config::load_checked(path, SecretCheck::Require).map_err(|e| match e {
        ConfigError::Invalid { problems, .. } => problems.iter().map(ToString::to_string).collect(),
        other => vec![other.to_string()],
    })
}
