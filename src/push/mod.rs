//! The push endpoint (source documents 004 and 000): a customer who cannot write to a bucket
//! POSTs its records to `/stream/v0/data/<integration>` on `watch`'s `[server]` listener.
//!
//! A request is one JSON object (one record) or an array of objects (not NDJSON), with
//! `Authorization: Bearer <token>` (the integration's `push.token_env`/`token_file`, compared
//! in constant time) and `Content-Type: application/json`. Its records are judged by the
//! integration's schema as a file's rows are ([`crate::validate::validate_records`]); a valid
//! request joins its integration's queue, and [`batch`] applies the queued requests many to a
//! sink transaction. The answers are 004's:
//!
//! | code | when |
//! |------|------|
//! | 202 | every record validated and durably applied (its batch committed), or a replay |
//! | 400 | not JSON, not objects, or a record invalid (located errors, capped); nothing applied |
//! | 401 | no token, a wrong one, or an integration that is not a push integration (same body) |
//! | 413 | a body over `max_body_bytes` (read no further) |
//! | 422 | an `Idempotency-Key` used before with another body; nothing applied |
//! | 429 | the integration's queue or its share of the bytes, or the process's queue, is full (`Retry-After`); a body counts from its first byte |
//! | 500 | the sink failed (the records were not applied; retry) |
//! | 503 | stopping, or the batch did not commit within the wait (`Retry-After`) |
//!
//! `Idempotency-Key: <key>` names a request: its ledger entries (the key with its body's
//! SHA-256, and that the key was used) are committed with its batch; a request with a key
//! the ledger has with the same body is answered 202 and not applied again, with another
//! body 422 and not applied.

mod batch;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt;
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::reload::LiveSettings;
use crate::secret::{bearer, same_digest};
use crate::settings::{IntegrationSettings, PushSettings, Settings, Source};
use crate::sink::AnySink;
use crate::state::StateStore;
use crate::telemetry::PushAnswered;
use crate::validate::{JsonRecord, RecordErrors, validate_records};

pub use batch::Applied;

/// The route, with `{integration}` the integration's name.
pub const ROUTE: &str = "/stream/v0/data/{integration}";

/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Bounds on what waits: requests queued (memory) and how long one waits (time).
#[derive(Debug, Clone)]
pub struct PushLimits {
    /// Requests waiting for their batch, across every integration; past it, 429.
    pub queued_requests: usize,
    /// Bytes of the bodies of those requests (their records are held until they are
    /// applied); past it, 429. At least the largest `max_body_bytes` (16 MiB).
    pub queued_bytes: usize,
    /// Bytes one integration's requests may hold of that (reading or queued), so that one
    /// tenant's stalled or large bodies cannot take every other's place; at least its
    /// `max_body_bytes`. Past it, 429.
    pub queued_bytes_per_integration: usize,
    /// How long the body of a request may take to arrive; past it, 400.
    pub body_within: Duration,
    /// Requests waiting for one integration's batch (its rate); past it, 429.
    pub queued_per_integration: usize,
    /// How long a batch stays open for more requests after its first.
    pub batch_wait: Duration,
    /// Records a batch takes at most (a request is never split).
    pub batch_records: usize,
    /// How long a request waits for its batch to commit before it is answered 503. The
    /// batch may still commit: a retry with the same `Idempotency-Key` is then a replay.
    pub answer_within: Duration,
    /// `Retry-After` of a 429 or 503.
    pub retry_after: Duration,
}

impl Default for PushLimits {
    fn default() -> Self {
        PushLimits {
            queued_requests: 1024,
            queued_bytes: 64 * 1024 * 1024,
            queued_bytes_per_integration: 16 * 1024 * 1024,
            body_within: Duration::from_secs(30),
            queued_per_integration: 128,
            batch_wait: Duration::from_millis(20),
            batch_records: 10_000,
            answer_within: Duration::from_secs(30),
            retry_after: Duration::from_secs(1),
        }
    }
}

/// The endpoint's shared part: where records go, the queues, and the stop signal.
#[derive(Clone)]
pub struct Push {
    inner: Arc<Inner>,
}

struct Inner {
    /// Looked up on each request, never copied at start: what the config says now (a
    /// reload reaches the next request).
    settings: LiveSettings,
    sink: AnySink,
    state: Arc<dyn StateStore>,
    stop: CancellationToken,
    limits: PushLimits,
    /// What every integration's queue holds.
    queued: Arc<batch::Queued>,
    /// What each push integration holds of it, by name (configured names only).
    shares: Mutex<HashMap<String, Arc<batch::Queued>>>,
    queues: batch::Queues,
}

impl Inner {
    /// What `integration` holds of the queue (made at its first request).
    fn share(&self, integration: &str) -> Arc<batch::Queued> {
        // A panic elsewhere while holding the lock left the map whole: keep using it.
        let mut shares = self.shares.lock().unwrap_or_else(|p| p.into_inner());
        shares.entry(integration.to_string()).or_default().clone()
    }
}

impl Push {
    pub fn new(
        settings: LiveSettings,
        sink: AnySink,
        state: Arc<dyn StateStore>,
        stop: CancellationToken,
        limits: PushLimits,
    ) -> Push {
        Push {
            inner: Arc::new(Inner {
                settings,
                sink,
                state,
                stop,
                limits,
                queued: Arc::new(batch::Queued::default()),
                shares: Mutex::default(),
                queues: batch::Queues::default(),
            }),
        }
    }

    /// `POST /stream/v0/data/{integration}`, to merge into the server's router (outside its
    /// operator token: a push request carries its integration's own).
    pub fn router(self) -> Router {
        Router::new().route(ROUTE, post(receive)).with_state(self)
    }
}

/// A push integration's settings, if `name` is one.
fn push_integration<'s>(
    settings: &'s Settings,
    name: &str,
) -> Option<(&'s IntegrationSettings, &'s PushSettings)> {
    let integration = settings.integration(name)?;
    match &integration.source {
        Source::Push(push) => Some((integration, push)),
        _ => None,
    }
}

async fn receive(State(push): State<Push>, Path(name): Path<String>, request: Request) -> Response {
    let inner = &push.inner;
    let (response, label) = answer(inner, &name, request).await;
    PushAnswered {
        // Only configured names become labels: a prober cannot grow the metrics.
        integration: label.as_deref().unwrap_or(""),
        code: response.status().as_u16(),
        records: applied_records(&response),
    }
    .emit();
    response
}

/// The records a 202 applied, for the metrics (carried in the response's extensions).
fn applied_records(response: &Response) -> u64 {
    response
        .extensions()
        .get::<AppliedCount>()
        .map_or(0, |c| c.0)
}

#[derive(Debug, Clone, Copy)]
struct AppliedCount(u64);

/// The answer, and the integration's name when it is a push integration.
async fn answer(inner: &Inner, name: &str, request: Request) -> (Response, Option<String>) {
    if inner.stop.is_cancelled() {
        return (stopping(&inner.limits), None);
    }
    let settings = inner.settings.current();
    let Some((integration, push)) = push_integration(&settings, name) else {
        return (unauthorized(), None);
    };
    let label = Some(integration.name.clone());
    if !token_matches(request.headers(), push) {
        return (unauthorized(), label);
    }
    let json_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !json_type {
        return (
            bad_request(
                "Content-Type must be application/json (one JSON object or an array of objects)",
            ),
            label,
        );
    }
    let key = match idempotency_key(request.headers()) {
        Ok(key) => key,
        Err(message) => return (bad_request(&message), label),
    };
    // The place is taken before the body is read: a body still arriving counts, so stalled
    // clients cannot make the process hold more than its bound, nor one integration take
    // every other's place.
    let declared = declared_length(request.headers());
    if declared.is_some_and(|n| n > push.max_body_bytes as u64) {
        return (too_large(push.max_body_bytes), label);
    }
    let reserved = declared.map_or(push.max_body_bytes, |n| n as usize);
    let share = inner.share(&integration.name);
    let mut slot = match batch::Slot::take(
        &inner.queued,
        &share,
        &inner.limits,
        push.max_body_bytes,
        reserved,
    ) {
        Ok(slot) => slot,
        Err(batch::Full::Process) => {
            return (
                throttled(&inner.limits, "the process's queue is full"),
                label,
            );
        }
        Err(batch::Full::Integration) => {
            return (
                throttled(&inner.limits, "this integration's queue is full"),
                label,
            );
        }
    };
    let (_, body) = request.into_parts();
    let read = read_body(body, push.max_body_bytes, reserved);
    let body = match tokio::time::timeout(inner.limits.body_within, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(response)) => return (response, label),
        Err(_) => {
            return (
                bad_request("the body did not arrive in time; send it at once"),
                label,
            );
        }
    };
    slot.shrink_to(body.len());
    let records = match parse_records(&body) {
        Ok(records) => records,
        Err(message) => return (bad_request(&message), label),
    };
    let body_digest: String = Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    drop(body);
    let valid = match validate_records(&integration.rules, &records) {
        Ok(valid) => valid,
        Err(errors) => return (invalid(&errors), label),
    };
    drop(records);
    let count = valid.len() as u64;
    if count == 0 && key.is_none() {
        // `[]`: nothing to apply, nothing to remember.
        return (reply_for(0, Applied::Now, None), label);
    }
    let (reply, answered) = oneshot::channel();
    let pending = batch::Pending {
        key: key.clone(),
        body_digest,
        records: valid,
        reply,
        _slot: slot,
    };
    let queued = inner.queues.send(
        integration,
        pending,
        batch::Context {
            sink: inner.sink.clone(),
            state: inner.state.clone(),
            limits: inner.limits.clone(),
            stop: inner.stop.clone(),
        },
    );
    if queued.is_err() {
        return (
            throttled(&inner.limits, "this integration's queue is full"),
            label,
        );
    }
    let response = match tokio::time::timeout(inner.limits.answer_within, answered).await {
        Ok(Ok(Ok(applied))) => reply_for(count, applied, key.as_deref()),
        Ok(Ok(Err(()))) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({
                "status": 500,
                "error": "the records could not be stored; nothing was applied, retry later"
            })),
        )
            .into_response(),
        // The batch task ended without an answer (stopping), or the wait ran out.
        Ok(Err(_)) | Err(_) => stopping(&inner.limits),
    };
    (response, label)
}

/// Whether the request carries the integration's token. The token is read now (a rotated
/// one takes effect at once); digests are compared, in constant time, so neither the token's
/// content nor its length shows in the timing.
fn token_matches(headers: &HeaderMap, push: &PushSettings) -> bool {
    let Some(given) = bearer(headers) else {
        return false;
    };
    let expected = match push.token.read() {
        Ok(secret) => Sha256::digest(secret.expose().as_bytes()),
        Err(e) => {
            // The operator's problem (`check` reports it), told without the token.
            tracing::error!(error = %e, "push token unavailable: every request is refused");
            return false;
        }
    };
    same_digest(&Sha256::digest(given.as_bytes()), &expected)
}

/// `Idempotency-Key`, if given: 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, String> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad =
        || format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters");
    let key = value.to_str().map_err(|_| bad())?;
    let visible = key.bytes().all(|b| b.is_ascii_graphic());
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !visible {
        return Err(bad());
    }
    Ok(Some(key.to_string()))
}

/// The `Content-Length` a request declares, if any.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// The body, at most `max` bytes (a declared length over it was refused before anything was
/// read); a body that grows past it (chunked) is refused at the chunk that crosses it.
async fn read_body(body: Body, max: usize, expected: usize) -> Result<Vec<u8>, Response> {
    let mut out = Vec::with_capacity(expected.min(max));
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|_| bad_request("the request body could not be read"))?;
        if out.len() + chunk.len() > max {
            return Err(too_large(max));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// One object, or an array of objects.
fn parse_records(body: &[u8]) -> Result<Vec<JsonRecord>, String> {
    let parsed: Json = serde_json::from_slice(body).map_err(|e| {
        format!("the body is not JSON ({e}); send one object or an array of objects, not NDJSON")
    })?;
    match parsed {
        Json::Object(record) => Ok(vec![record]),
        Json::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Json::Object(record) => Ok(record),
                _ => Err(format!("record {}: is not a JSON object", i + 1)),
            })
            .collect(),
        _ => Err("the body must be a JSON object or an array of objects".into()),
    }
}

/// 202 for records applied now or before, 422 for a key used with another body.
fn reply_for(count: u64, applied: Applied, key: Option<&str>) -> Response {
    let body = match applied {
        Applied::Now => json!({ "status": 202, "records": count }),
        Applied::Before { records } => {
            json!({ "status": 202, "records": records, "replay": true })
        }
        Applied::KeyUsedForAnotherBody => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({
                    "status": 422,
                    "error": format!(
                        "Idempotency-Key '{}' was used with another body: nothing applied; use a new key for new records",
                        key.unwrap_or_default()
                    ),
                })),
            )
                .into_response();
        }
    };
    let applied_now = match applied {
        Applied::Now => count,
        Applied::Before { .. } | Applied::KeyUsedForAnotherBody => 0,
    };
    let mut response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    response.extensions_mut().insert(AppliedCount(applied_now));
    response
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "status": 400, "errors": [message], "total": 1 })),
    )
        .into_response()
}

/// The located errors of a rejected request, as many as `limits.max_status_errors`.
fn invalid(errors: &RecordErrors) -> Response {
    let listed: Vec<String> = errors.first.iter().map(ToString::to_string).collect();
    let mut body = json!({ "status": 400, "errors": listed, "total": errors.total });
    if errors.more() > 0 {
        body["more"] = json!(errors.more());
    }
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// The same answer for a wrong token and an unknown integration: names cannot be probed.
fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"dropfolder push\"")],
        axum::Json(json!({ "status": 401, "error": "unauthorized" })),
    )
        .into_response()
}

fn too_large(max: usize) -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        [(header::CONNECTION, "close")],
        axum::Json(json!({
            "status": 413,
            "error": format!("the body is larger than {max} bytes; send fewer records a request")
        })),
    )
        .into_response()
}

fn retry_after(limits: &PushLimits) -> HeaderValue {
    HeaderValue::from(limits.retry_after.as_secs().max(1))
}

fn throttled(limits: &PushLimits, why: &str) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, retry_after(limits))],
        axum::Json(json!({ "status": 429, "error": format!("{why}; retry later") })),
    )
        .into_response()
}

fn stopping(limits: &PushLimits) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, retry_after(limits))],
        axum::Json(json!({ "status": 503, "error": "unavailable; retry later" })),
    )
        .into_response()
}

/// Requests in every queue, for tests and the metrics.
impl Push {
    pub fn queued(&self) -> usize {
        self.inner.queued.requests.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_one_object_or_an_array_of_objects() {
        assert_eq!(parse_records(br#"{"id": "1"}"#).map(|r| r.len()), Ok(1));
        assert_eq!(
            parse_records(br#"[{"id": "1"}, {"id": "2"}]"#).map(|r| r.len()),
            Ok(2)
        );
        assert_eq!(
            parse_records(br#"[{"id": "1"}, 2]"#).err(),
            Some("record 2: is not a JSON object".to_string())
        );
        for bad in [&b"{\"id\": 1}\n{\"id\": 2}\n"[..], b"42", b"", b"[1"] {
            assert!(
                parse_records(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn idempotency_keys_are_short_visible_ascii() {
        let key = |v: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                "idempotency-key",
                HeaderValue::from_str(v).expect("a header value"),
            );
            idempotency_key(&headers)
        };
        assert_eq!(key("req-1"), Ok(Some("req-1".into())));
        assert!(key("").is_err());
        assert!(key("a b").is_err());
        assert!(key(&"k".repeat(256)).is_err());
        assert_eq!(idempotency_key(&HeaderMap::new()), Ok(None));
    }
}
