//! Stopping gracefully: SIGTERM or SIGINT cancels a token. What runs checks it between
//! folders, so the folder in hand is finished and no new one is started; what a hard kill
//! interrupts anyway is resumed by the next start (the journal). SIGHUP is no stop: `watch`
//! reloads its config on it ([`Hangups`]).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGTERM or SIGINT.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let signal = wait_for_signal().await;
        tracing::info!(
            signal,
            "stopping: no new folder is started, the one in hand is finished"
        );
        token.cancel();
    });
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// The SIGHUPs the process receives. Once made, SIGHUP no longer ends the process (its
/// default): make it before saying the process is up, so an early SIGHUP is not fatal.
pub struct Hangups(tokio::signal::unix::Signal);

impl Hangups {
    /// Catches SIGHUP from now on; `None` if the handler cannot be installed.
    pub fn catch() -> Option<Hangups> {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::hangup()).ok().map(Hangups)
    }

    /// The next SIGHUP (several since the last call count as one).
    pub async fn recv(&mut self) {
        if self.0.recv().await.is_none() {
            // The signal driver is gone (the runtime is shutting down): no more SIGHUPs.
            std::future::pending::<()>().await;
        }
    }
}

/// Waits for `work` at most `grace` once `token` is cancelled; `None` if it ran over.
pub async fn within_grace<T>(
    token: &CancellationToken,
    grace: Duration,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::pin!(work);
    tokio::select! {
        done = &mut work => return Some(done),
        () = token.cancelled() => {}
    }
    tokio::time::timeout(grace, work).await.ok()
}
