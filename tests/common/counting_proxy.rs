//! A counting proxy in front of LocalStack: a real HTTP server on 127.0.0.1:0 that forwards
//! every request unchanged (LocalStack does not check signatures, so the changed `Host` is
//! fine) and counts it by kind: the STS action, or the S3 operation its method and query
//! name. Integrations reach it through their `endpoint` (S3 and, by default, STS). Shared by
//! `tests/idle.rs`, `tests/hostile.rs` and `benches/idle.rs`.
//!
//! It also records which access key signed each S3 request and which role each AssumeRole
//! answer's key belongs to, and plays the two S3 answers LocalStack never gives: a bucket
//! addressed in the wrong region (AWS's 301 PermanentRedirect) and an expired session token.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
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
    seen: Arc<Mutex<Seen>>,
    server: tokio::task::JoinHandle<()>,
}

/// One S3 request: its kind, the bucket of its path, the access key that signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub kind: String,
    pub bucket: String,
    pub key_id: String,
}

#[derive(Default)]
struct Seen {
    signed: Vec<Signed>,
    /// Access key id -> the role AssumeRole gave it for.
    issued: BTreeMap<String, String>,
    /// Bucket -> the only region S3 requests for it may be signed for.
    regions: BTreeMap<String, String>,
    /// Access keys answered with ExpiredToken.
    expired: BTreeSet<String>,
}

#[derive(Clone)]
struct Forward {
    upstream: String,
    client: reqwest::Client,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    seen: Arc<Mutex<Seen>>,
}

impl CountingProxy {
    pub async fn start(upstream: &str) -> CountingProxy {
        let counts = Arc::new(Mutex::new(BTreeMap::new()));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let forward = Forward {
            seen: seen.clone(),
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
            seen,
            server,
        }
    }

    /// S3 requests for `bucket` signed for any other region are answered as AWS does (301
    /// PermanentRedirect), except GetBucketLocation, which every region answers.
    pub fn require_region(&self, bucket: &str, region: &str) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.regions.insert(bucket.to_string(), region.to_string());
        }
    }

    /// S3 requests signed with `key_id` are answered 400 ExpiredToken from now on.
    pub fn expire(&self, key_id: &str) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.expired.insert(key_id.to_string());
        }
    }

    /// Every S3 request so far: kind, bucket, signing key.
    pub fn signed(&self) -> Vec<Signed> {
        self.seen
            .lock()
            .map(|s| s.signed.clone())
            .unwrap_or_default()
    }

    /// The access keys AssumeRole answered with, and the role each was for.
    pub fn issued(&self) -> BTreeMap<String, String> {
        self.seen
            .lock()
            .map(|s| s.issued.clone())
            .unwrap_or_default()
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
        *counts.entry(kind.clone()).or_default() += 1;
    }
    // `Credential=KEY/DATE/REGION/SERVICE/aws4_request`
    let credential: Vec<String> = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .map(|c| c.split([',', ' ']).next().unwrap_or_default())
        .map(|c| c.split('/').map(str::to_string).collect())
        .unwrap_or_default();
    let key_id = credential.first().cloned().unwrap_or_default();
    let region = credential.get(2).cloned().unwrap_or_default();
    if kind.starts_with("s3:") {
        let bucket = parts
            .uri
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let mut refusal = None;
        if let Ok(mut seen) = forward.seen.lock() {
            seen.signed.push(Signed {
                kind: kind.clone(),
                bucket: bucket.clone(),
                key_id: key_id.clone(),
            });
            if seen.expired.contains(&key_id) {
                refusal = Some((
                    StatusCode::BAD_REQUEST,
                    None,
                    "<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>".to_string(),
                ));
            } else if let Some(required) = seen.regions.get(&bucket)
                && *required != region
                && kind != "s3:GetBucketLocation"
            {
                refusal = Some((
                    StatusCode::MOVED_PERMANENTLY,
                    Some(required.clone()),
                    format!(
                        "<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint. Please send all future requests to this endpoint.</Message><Bucket>{bucket}</Bucket><Endpoint>s3.{required}.amazonaws.com</Endpoint></Error>"
                    ),
                ));
            }
        }
        if let Some((code, bucket_region, body)) = refusal {
            let mut response = Response::builder()
                .status(code)
                .header("content-type", "application/xml");
            if let Some(bucket_region) = bucket_region {
                response = response.header("x-amz-bucket-region", bucket_region);
            }
            let body = if parts.method == Method::HEAD {
                Body::empty()
            } else {
                Body::from(body)
            };
            return response
                .body(body)
                .unwrap_or_else(|_| status(StatusCode::BAD_GATEWAY));
        }
    }
    let role = (kind == "sts:AssumeRole")
        .then(|| {
            String::from_utf8_lossy(&body)
                .split('&')
                .find_map(|pair| pair.strip_prefix("RoleArn="))
                .map(|arn| {
                    percent_encoding::percent_decode_str(arn)
                        .decode_utf8_lossy()
                        .to_string()
                })
        })
        .flatten();
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
    if let Some(role) = role {
        let text = String::from_utf8_lossy(&bytes);
        if let Some(key) = text
            .split("<AccessKeyId>")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            && let Ok(mut seen) = forward.seen.lock()
        {
            seen.issued.insert(key.to_string(), role);
        }
    }
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
