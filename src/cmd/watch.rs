//! `dropfolder watch`: scan now and on the schedule (and on S3 events), serve health,
//! metrics and status, until SIGTERM or SIGINT; then finish the folder in hand and exit 0.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use dropfolder::config::SecretCheck;
use dropfolder::events::{Queue, targets};
use dropfolder::worker::Worker;

pub async fn run(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config_path, SecretCheck::Require)?;
    let schedule = config.schedule.schedule.clone();
    let grace = config.schedule.grace_period;
    let listen = config.server.listen;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen} ([server] listen)"))?;
    // The bound address, which differs from `listen` for port 0.
    let listen = listener.local_addr().unwrap_or(listen);
    let queue = match &config.events {
        Some(events) => {
            let base = dropfolder::store::aws::base_config().await;
            let targets = targets(
                config
                    .integrations
                    .iter()
                    .filter_map(|i| Some((i.name.as_str(), &i.store()?.location))),
            );
            Some(Queue::new(&base, events, targets))
        }
        None => None,
    };
    let token = match &config.server.token {
        Some(secret) => Some(secret.read().context("[server] token_env / token_file")?),
        None => None,
    };
    let worker = Arc::new(Worker::open(config).await?);
    let stop = worker.stop_token();
    dropfolder::shutdown::cancel_on_signal(stop.clone());
    let push = dropfolder::push::Push::new(
        worker.settings.clone(),
        worker.sink.clone(),
        worker.state.clone(),
        stop.clone(),
        dropfolder::push::PushLimits::default(),
    );
    let server = tokio::spawn(dropfolder::server::serve(
        listener,
        worker.settings.clone(),
        worker.state.clone(),
        token,
        Some(push),
        stop.clone(),
    ));
    tracing::info!(listen = %listen, events = queue.is_some(), "watching");
    let clean = dropfolder::watch::watch(worker, schedule, queue, grace).await;
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
