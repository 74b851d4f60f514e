//! The HTTP endpoint of `watch` (`[server] listen`, 127.0.0.1:9090 by default): `/healthz`
//! (the process runs), `/readyz` (the state database answers), `/metrics` (Prometheus text:
//! the counters of [`telemetry`](crate::telemetry) and each integration's status) and
//! `/status` (each integration's status as JSON, the same as `dropfolder status`).
//!
//! The status holds what customers' callback servers answered, for the operator only: with
//! `[server] token_env` / `token_file` every path but the probes' `/healthz` and `/readyz`
//! requires `Authorization: Bearer <token>`, compared in constant time.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::health::{Status, statuses};
use crate::secret::Secret;
use crate::settings::Settings;
use crate::state::StateStore;

#[derive(Clone)]
struct App {
    settings: Arc<Settings>,
    state: Arc<dyn StateStore>,
}

/// Serves until `stop` is cancelled. With a `token`, every path but `/healthz` and `/readyz`
/// requires it as a bearer token.
pub async fn serve(
    listener: tokio::net::TcpListener,
    settings: Arc<Settings>,
    state: Arc<dyn StateStore>,
    token: Option<Secret>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let token = Arc::new(token.map(|t| Sha256::digest(t.expose().as_bytes())));
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .layer(middleware::from_fn_with_state(token, require_token))
        .with_state(App { settings, state });
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
    match statuses(&app.settings, app.state.as_ref()).await {
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
    if let Ok(all) = statuses(&app.settings, app.state.as_ref()).await {
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

/// The probes' paths, open so that liveness and readiness need no secret.
const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// Lets a request through when no token is configured, when it is for a probe, or when it
/// carries the token; otherwise 401 with `WWW-Authenticate: Bearer`.
async fn require_token(
    State(token): State<Arc<Option<sha2::digest::Output<Sha256>>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = token.as_ref() else {
        return next.run(request).await;
    };
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    match bearer(request.headers()) {
        Some(given) if same_digest(&Sha256::digest(given.as_bytes()), expected) => {
            next.run(request).await
        }
        given => {
            let challenge = if given.is_some() {
                "Bearer realm=\"dropfolder\", error=\"invalid_token\""
            } else {
                "Bearer realm=\"dropfolder\""
            };
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, challenge)],
                "a bearer token is required ([server] token_env / token_file)\n",
            )
                .into_response()
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Compares two digests without stopping at the first difference. Comparing digests rather
/// than the tokens keeps the time independent of the token's length too.
fn same_digest(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}
