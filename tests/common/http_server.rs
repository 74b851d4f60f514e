//! A real HTTP server on 127.0.0.1:0 for outbound tests: it records every request and answers
//! from a script (500 n times, 429 with Retry-After, 401, 413, a hang, a redirect, a body of
//! gigabytes streamed without being stored), then with its default. `/token` is an OAuth2
//! token endpoint that counts the tokens it issues (or answers a reply set for it).
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Bytes,
    pub at: std::time::Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// What the server answers.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    /// A status with a `Retry-After` in seconds.
    RetryAfter(u16, u64),
    /// Never answers (until the client gives up).
    Hang,
    /// A status with a `Location` header.
    Redirect(u16, String),
    /// A status with a body of this many bytes, generated as the client reads it (see
    /// [`Server::streamed`]).
    Stream(u16, u64),
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    script: VecDeque<Reply>,
    default: Option<Reply>,
    /// Answer 413 to bodies larger than this.
    max_body: Option<usize>,
    tokens_issued: u32,
    token_lifetime: u64,
    /// Keep only the path and body of each request (for hundreds of thousands of them).
    light: bool,
    /// Answer this status to every body containing this text.
    fail_bodies: Option<(String, u16)>,
    /// Bytes of `Reply::Stream` bodies handed to the connection so far.
    streamed: Arc<std::sync::atomic::AtomicU64>,
    /// What `/token` answers instead of a token.
    token_reply: Option<Reply>,
}

pub struct Server {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    handle: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start() -> Server {
        Server::start_on("127.0.0.1:0").await
    }

    /// Starts on a given address (to come back on the port of a server that was down).
    pub async fn start_on(addr: &str) -> Server {
        let inner = Arc::new(Mutex::new(Inner {
            token_lifetime: 3600,
            ..Inner::default()
        }));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind a local port");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server { url, inner, handle }
    }

    /// Replies for the next requests, in order; then the default (200).
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.script.extend(replies);
        }
    }

    pub fn set_default(&self, reply: Reply) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.default = Some(reply);
        }
    }

    pub fn set_max_body(&self, bytes: usize) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.max_body = Some(bytes);
        }
    }

    /// Answers `status` to every request whose body contains `needle` (`None` stops it).
    pub fn fail_bodies_with(&self, needle: Option<(&str, u16)>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.fail_bodies = needle.map(|(n, s)| (n.to_string(), s));
        }
    }

    pub fn set_light(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.light = true;
        }
    }

    pub fn set_token_lifetime(&self, seconds: u64) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.token_lifetime = seconds;
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner
            .lock()
            .map(|i| i.requests.clone())
            .unwrap_or_default()
    }

    /// Requests to paths other than `/token`.
    pub fn calls(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path != "/token")
            .collect()
    }

    /// Bytes of streamed bodies the server has handed to its connections so far (what a
    /// client read, plus what the socket buffers hold).
    pub fn streamed(&self) -> u64 {
        self.inner
            .lock()
            .map(|i| i.streamed.load(std::sync::atomic::Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// `/token` answers `reply` instead of issuing a token.
    pub fn set_token_reply(&self, reply: Reply) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.token_reply = Some(reply);
        }
    }

    pub fn tokens_issued(&self) -> u32 {
        self.inner.lock().map(|i| i.tokens_issued).unwrap_or(0)
    }

    pub fn stop(self) {
        self.handle.abort();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let light = inner.lock().map(|i| i.light).unwrap_or(false);
    let headers = if light {
        BTreeMap::new()
    } else {
        header_map(&parts.headers)
    };
    let path = parts.uri.path().to_string();
    let streamed = inner.lock().map(|i| i.streamed.clone()).unwrap_or_default();
    let reply = {
        let Ok(mut inner) = inner.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        inner.requests.push(Recorded {
            method: parts.method.to_string(),
            path: path.clone(),
            headers,
            body: body.clone(),
            at: std::time::Instant::now(),
        });
        let token_reply = inner.token_reply.clone().filter(|_| path == "/token");
        if path == "/token" && token_reply.is_none() {
            inner.tokens_issued += 1;
            let token = format!(
                r#"{{"access_token":"token-{}","token_type":"Bearer","expires_in":{}}}"#,
                inner.tokens_issued, inner.token_lifetime
            );
            return ([("content-type", "application/json")], token).into_response();
        }
        let failing = inner
            .fail_bodies
            .as_ref()
            .filter(|(needle, _)| body.windows(needle.len()).any(|w| w == needle.as_bytes()));
        if let Some(reply) = token_reply {
            reply
        } else if let Some((_, status)) = failing {
            Reply::Status(*status)
        } else if inner.max_body.is_some_and(|max| body.len() > max) {
            Reply::Status(413)
        } else {
            inner
                .script
                .pop_front()
                .or_else(|| inner.default.clone())
                .unwrap_or(Reply::Status(200))
        }
    };
    answer(reply, streamed).await
}

async fn answer(reply: Reply, streamed: Arc<std::sync::atomic::AtomicU64>) -> Response {
    match reply {
        Reply::Status(status) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            format!("answered {status}"),
        )
            .into_response(),
        Reply::RetryAfter(status, seconds) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::TOO_MANY_REQUESTS),
            [("retry-after", seconds.to_string())],
            "slow down",
        )
            .into_response(),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        Reply::Redirect(status, location) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::TEMPORARY_REDIRECT),
            [("location", location)],
            "moved",
        )
            .into_response(),
        Reply::Stream(status, bytes) => {
            const CHUNK: usize = 64 * 1024;
            let chunk = Bytes::from(vec![b'x'; CHUNK]);
            let body = futures_util::stream::unfold(bytes, move |left| {
                let (chunk, streamed) = (chunk.clone(), streamed.clone());
                async move {
                    let n = left.min(CHUNK as u64);
                    if n == 0 {
                        return None;
                    }
                    streamed.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    Some((
                        Ok::<_, std::convert::Infallible>(chunk.slice(..n as usize)),
                        left - n,
                    ))
                }
            });
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                [("content-length", bytes.to_string())],
                axum::body::Body::from_stream(body),
            )
                .into_response()
        }
    }
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}
