//! The HTTP endpoint of `watch` (`[server] listen`, 127.0.0.1:9090 by default): `/healthz`
//! (the process runs), `/readyz` (the state database answers), `/metrics` (Prometheus text:
//! the counters of [`telemetry`](crate::telemetry) and each integration's status) and
//! `/status` (each integration's status as JSON, the same as `dropfolder status`) and `/` (the
//! same for people: [`page`](crate::page)).
//!
//! The status holds what customers' callback servers answered, for the operator only: with
//! `[server] token_env` / `token_file` every path but the probes' `/healthz` and `/readyz`
//! requires `Authorization: Bearer <token>`, compared in constant time. A browser cannot send
//! that header on a plain link, so `/?token=<token>` answers with a redirect to `/` that sets
//! an HttpOnly, SameSite=Strict session cookie: a digest of the token (never the token), good
//! for 12 hours, accepted in place of the header.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::health::statuses;
use crate::reload::LiveSettings;
use crate::secret::{Secret, bearer, same_digest};
use crate::state::StateStore;
use crate::telemetry::{self, IntegrationGauges};

#[derive(Clone)]
struct App {
    /// The settings in force: read per request, so a reload shows at once.
    settings: LiveSettings,
    state: Arc<dyn StateStore>,
}

/// Serves until `stop` is cancelled. With a `token`, every path but `/healthz` and `/readyz`
/// requires it as a bearer token; `push`'s route ([`crate::push`]) is served beside them,
/// behind each integration's own token instead.
pub async fn serve(
    listener: tokio::net::TcpListener,
    settings: LiveSettings,
    state: Arc<dyn StateStore>,
    token: Option<Secret>,
    push: Option<crate::push::Push>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let token = Arc::new(token.map(|t| Expected {
        digest: Sha256::digest(t.expose().as_bytes()),
        session: session_value(t.expose()),
    }));
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/", get(page))
        // Its own fallback, under the token's layer: the merged push router's default one
        // would answer an unknown path with 404 to anyone, and paths could be probed.
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(middleware::from_fn_with_state(token, require_token))
        .with_state(App { settings, state });
    // Merged after the operator token's layer, which therefore does not cover it.
    let app = match push {
        Some(push) => app.merge(push.router()),
        None => app,
    };
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
    match statuses(&app.settings.current(), app.state.as_ref()).await {
        Ok(all) => axum::Json(all).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("state database: {e}\n"),
        )
            .into_response(),
    }
}

async fn page(State(app): State<App>) -> Response {
    let read = async {
        let all = statuses(&app.settings.current(), app.state.as_ref()).await?;
        let drops = app.state.recent_drops(crate::page::DROPS_SHOWN).await?;
        Ok::<_, crate::state::StateError>((all, drops))
    };
    match read.await {
        Ok((all, drops)) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
                (
                    header::CONTENT_SECURITY_POLICY,
                    crate::page::content_security_policy(),
                ),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
                (header::REFERRER_POLICY, "no-referrer".to_string()),
                (header::CACHE_CONTROL, "no-store".to_string()),
            ],
            crate::page::render(&all, &drops, chrono::Utc::now()),
        )
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("state database: {e}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(app): State<App>) -> Response {
    // The status gauges are set from the state at each scrape; if the state does not answer
    // they keep their last values, and `/readyz` says why.
    let text = match statuses(&app.settings.current(), app.state.as_ref()).await {
        Ok(all) => {
            let gauges: Vec<IntegrationGauges<'_>> = all
                .iter()
                .map(|h| IntegrationGauges {
                    integration: &h.integration,
                    status: h.status.as_str(),
                    stale: h.stale,
                    callback_undelivered: h.callback_error.is_some(),
                    last_scan_at: h.last_scan_at.map(|t| t.timestamp()),
                    last_data_at: h.last_data_at.map(|t| t.timestamp()),
                })
                .collect();
            telemetry::metrics().render_with_integrations(&gauges)
        }
        Err(_) => telemetry::metrics().render(),
    };
    ([(header::CONTENT_TYPE, telemetry::CONTENT_TYPE)], text).into_response()
}

/// The probes' paths, open so that liveness and readiness need no secret.
const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// What a request must show: the token (by its digest), or the page's session cookie.
struct Expected {
    digest: sha2::digest::Output<Sha256>,
    session: String,
}

/// The page's session cookie.
const SESSION_COOKIE: &str = "dropfolder_session";
/// How long the cookie lasts, in seconds (a working day).
const SESSION_SECONDS: u32 = 12 * 3600;

/// The cookie's value for `token`: a digest under a label of its own, so the cookie never
/// holds the token, and a stolen cookie is no bearer token for `/metrics` scrapers.
fn session_value(token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"dropfolder page session\0")
        .chain_update(token.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lets a request through when no token is configured, when it is for a probe, or when it
/// carries the token (header) or the session cookie; `/?token=` with the token redirects to
/// `/` and sets the cookie; otherwise 401 with `WWW-Authenticate: Bearer`.
async fn require_token(
    State(token): State<Arc<Option<Expected>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = token.as_ref() else {
        return next.run(request).await;
    };
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let given = bearer(request.headers());
    if given.is_some_and(|g| same_digest(&Sha256::digest(g.as_bytes()), &expected.digest)) {
        return next.run(request).await;
    }
    if session(request.headers())
        .is_some_and(|s| same_digest(s.as_bytes(), expected.session.as_bytes()))
    {
        return next.run(request).await;
    }
    if request.uri().path() == "/"
        && let Some(query) = query_token(request.uri().query())
    {
        if same_digest(&Sha256::digest(query.as_bytes()), &expected.digest) {
            let cookie = format!(
                "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}",
                expected.session
            );
            // The token leaves the address bar (and the history) at once; the browser keeps
            // the fragment (the page's filters) across the redirect.
            return (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, "/".to_string()),
                    (header::SET_COOKIE, cookie),
                    (header::CACHE_CONTROL, "no-store".to_string()),
                    (header::REFERRER_POLICY, "no-referrer".to_string()),
                ],
            )
                .into_response();
        }
        return unauthorized(true);
    }
    unauthorized(given.is_some())
}

fn unauthorized(token_given: bool) -> Response {
    let challenge = if token_given {
        "Bearer realm=\"dropfolder\", error=\"invalid_token\""
    } else {
        "Bearer realm=\"dropfolder\""
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
        "a bearer token is required ([server] token_env / token_file); in a browser open /?token=<token>\n",
    )
        .into_response()
}

/// The page's session cookie, if the request has one.
fn session(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// The `token` parameter of a query string, percent-decoded.
fn query_token(query: Option<&str>) -> Option<String> {
    let value = query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))?;
    // Percent-escapes are decoded; a '+' stays a '+' (tokens are often base64).
    let decoded = percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .ok()?
        .into_owned();
    (!decoded.is_empty()).then_some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_token_is_percent_decoded_and_keeps_plus() {
        assert_eq!(query_token(Some("token=a%2Fb+c")), Some("a/b+c".into()));
        assert_eq!(query_token(Some("x=1&token=t")), Some("t".into()));
        assert_eq!(query_token(Some("token=")), None);
        assert_eq!(query_token(Some("tokens=t")), None);
        assert_eq!(query_token(None), None);
    }

    #[test]
    fn the_session_cookie_is_found_among_others_and_is_no_token() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; dropfolder_session=abc; b=2".parse().expect("header"),
        );
        assert_eq!(session(&headers), Some("abc"));
        let value = session_value("s3cret");
        assert_eq!(value.len(), 64);
        assert!(!value.contains("s3cret"));
        assert_ne!(value, session_value("s3cret2"));
    }
}
