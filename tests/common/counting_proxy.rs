//! A counting proxy in front of LocalStack: a real HTTP server on 127.0.0.1:0 that forwards
//! every request unchanged (LocalStack does not check signatures, so the changed `Host` is
//! fine) and counts it by kind: the STS action, or the S3 operation its method and query
//! name. Integrations reach it through their `endpoint` (S3 and, by default, STS). Shared by
//! `tests/idle.rs` and `benches/idle.rs`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;

/// The largest request body forwarded (the requests of a scan are bodiless or tiny).
const MAX_BODY: usize = 64 * 1024 * 1024;

pub struct CountingProxy {
    pub url: String,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Forward {
    upstream: String,
    client: reqwest::Client,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl CountingProxy {
    pub async fn start(upstream: &str) -> CountingProxy {
        let counts = Arc::new(Mutex::new(BTreeMap::new()));
        let forward = Forward {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("HTTP client"),
            counts: counts.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let app = Router::new().fallback(forward_one).with_state(forward);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        CountingProxy {
            url,
            counts,
            server,
        }
    }

    /// Requests seen so far, by kind (`sts:AssumeRole`, `s3:ListObjectsV2`, ...).
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn reset(&self) {
        if let Ok(mut counts) = self.counts.lock() {
            counts.clear();
        }
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn forward_one(State(forward): State<Forward>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return status(StatusCode::PAYLOAD_TOO_LARGE);
    };
    let kind = kind(&parts.method, parts.uri.query().unwrap_or_default(), &body);
    if let Ok(mut counts) = forward.counts.lock() {
        *counts.entry(kind).or_default() += 1;
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut upstream = forward
        .client
        .request(parts.method.clone(), format!("{}{path}", forward.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    let Ok(answer) = upstream.send().await else {
        return status(StatusCode::BAD_GATEWAY);
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != "content-length" && name != "transfer-encoding" {
            response = response.header(name, value);
        }
    }
    let Ok(bytes) = answer.bytes().await else {
        return status(StatusCode::BAD_GATEWAY);
    };
    response
        .body(Body::from(bytes))
        .unwrap_or_else(|_| status(StatusCode::BAD_GATEWAY))
}

fn status(code: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = code;
    response
}

/// `sts:ACTION` for a form-encoded STS call, else `s3:OPERATION` from method and query.
fn kind(method: &Method, query: &str, body: &[u8]) -> String {
    let form = String::from_utf8_lossy(body);
    if let Some(action) = form
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
    {
        return format!("sts:{action}");
    }
    let has = |name: &str| {
        query
            .split('&')
            .any(|pair| pair == name || pair.starts_with(&format!("{name}=")))
    };
    let operation = match *method {
        Method::GET if has("list-type") => "ListObjectsV2",
        Method::GET if has("location") => "GetBucketLocation",
        Method::GET => "GetObject",
        Method::HEAD => "HeadObject",
        Method::PUT if has("partNumber") => "UploadPart(Copy)",
        Method::PUT => "PutObject/CopyObject",
        Method::DELETE => "DeleteObject",
        Method::POST => "Post",
        _ => "Other",
    };
    format!("s3:{operation}")
}
