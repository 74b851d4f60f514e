//! The HTTP endpoint of `watch` (`[server] listen`, 127.0.0.1:9090 by default): `/healthz`
//! (the process runs), `/readyz` (the state database answers), `/metrics` (Prometheus text:
//! the counters of [`telemetry`](crate::telemetry) and each integration's status) and
//! `/status` (each integration's status as JSON, the same as `dropfolder status`).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::health::{Status, statuses};
use crate::state::StateStore;

#[derive(Clone)]
struct App {
    config: Arc<Config>,
    state: Arc<dyn StateStore>,
}

/// Serves until `stop` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Arc<Config>,
    state: Arc<dyn StateStore>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(App { config, state });
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

async fn ready(State(app): State<App>) -> Response {
    match app.state.integrations().await {
        Ok(_) => "ready\n".into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("state database: {e}\n"),
        )
            .into_response(),
    }
}

async fn status(State(app): State<App>) -> Response {
    match statuses(&app.config, app.state.as_ref()).await {
        Ok(all) => axum::Json(all).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("state database: {e}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(app): State<App>) -> Response {
    let mut text = crate::telemetry::metrics().render();
    if let Ok(all) = statuses(&app.config, app.state.as_ref()).await {
        text.push_str("# TYPE dropfolder_integration_status gauge\n");
        for health in &all {
            for status in [
                Status::Ready,
                Status::Active,
                Status::Warning,
                Status::Failed,
            ] {
                let value = u8::from(health.status == status);
                text.push_str(&format!(
                    "dropfolder_integration_status{{integration=\"{}\",status=\"{}\"}} {value}\n",
                    health.integration,
                    status.as_str()
                ));
            }
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
