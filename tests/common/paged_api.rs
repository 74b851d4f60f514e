//! A paged JSON (and CSV) API on 127.0.0.1:0, one route per paging type of source document
//! 001, for the poller's tests: it serves a list of records page by page and records every
//! request.
//!
//! Routes (GET or POST, the same answer), each paging the records the window selects
//! (`from` <= `updated` < `until`, compared as text, when the query has them), `limit`
//! records a page (default 2):
//! - `/none`: every record, `{"value": [...]}`.
//! - `/link`: `Link: <...>; rel="next"` (relative, with other links and quoted parameters
//!   around it), page number in `page`.
//! - `/link_body`: `{"value": [...], "metadata": {"links": {"next": "<absolute URL>"}}}`.
//! - `/next_url`: `{"data": [...], "paging": {"next": "<relative URL>", "has_more": bool}}`
//!   (the last page still has a `next`: only the flag says it is the last).
//! - `/token`: `{"value": [...], "next": "<token>"}`, the token sent back as `cursor`.
//! - `/token_header`: the token in the `X-Next-Token` answer header, sent back in the
//!   `X-Page-Token` request header.
//! - `/offset`: `{"items": [...]}`, by `offset`.
//! - `/csv`: gzipped CSV (a header row, columns sorted by name), by `offset`.
//! - `/loop`: token paging whose second page gives the first token again.
//! - `/endless`: token paging that never ends.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Records a page when the request has no `limit`.
pub const DEFAULT_LIMIT: usize = 2;

/// One request the API received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
}

#[derive(Default)]
struct Inner {
    records: Vec<Value>,
    requests: Vec<Seen>,
    /// Statuses answered before any page (429 with `Retry-After: 1`).
    failures: VecDeque<u16>,
}

pub struct PagedApi {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    handle: tokio::task::JoinHandle<()>,
}

impl PagedApi {
    pub async fn start(records: Vec<Value>) -> PagedApi {
        let inner = Arc::new(Mutex::new(Inner {
            records,
            ..Inner::default()
        }));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        PagedApi { url, inner, handle }
    }

    /// `n` records `{"id": "u1", "email": "u1@example.com", "updated": "2026-01-01T00:0n:00Z"}`,
    /// one a minute from midnight.
    pub fn users(n: usize) -> Vec<Value> {
        (1..=n)
            .map(|i| {
                json!({
                    "id": format!("u{i}"),
                    "email": format!("u{i}@example.com"),
                    "updated": format!("2026-01-01T{:02}:{:02}:00Z", i / 60, i % 60),
                })
            })
            .collect()
    }

    /// The URL of a route.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub fn add_records(&self, records: impl IntoIterator<Item = Value>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.records.extend(records);
        }
    }

    /// Answers these statuses to the next requests, before serving pages again.
    pub fn fail_next(&self, statuses: impl IntoIterator<Item = u16>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.failures.extend(statuses);
        }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.inner
            .lock()
            .map(|i| i.requests.clone())
            .unwrap_or_default()
    }
}

impl Drop for PagedApi {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let headers: BTreeMap<String, String> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let path = parts.uri.path().to_string();
    let (records, failure) = {
        let Ok(mut inner) = inner.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        inner.requests.push(Seen {
            method: parts.method.to_string(),
            path: path.clone(),
            query: query.clone(),
            headers: headers.clone(),
        });
        let failure = inner.failures.pop_front();
        let records: Vec<Value> = inner
            .records
            .iter()
            .filter(|r| in_window(r, &query))
            .cloned()
            .collect();
        (records, failure)
    };
    if let Some(status) = failure {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, [("retry-after", "1")], "try again").into_response();
    }
    let limit = number(&query, "limit").unwrap_or(DEFAULT_LIMIT).max(1);
    let page = |start: usize| -> (Vec<Value>, bool) {
        let end = start.saturating_add(limit).min(records.len());
        let start = start.min(end);
        (records[start..end].to_vec(), end < records.len())
    };
    match path.as_str() {
        "/none" => axum::Json(json!({ "value": records })).into_response(),
        "/link" => {
            let number_ = number(&query, "page").unwrap_or(1).max(1);
            let (value, more) = page((number_ - 1) * limit);
            let mut links = vec![format!(
                "<{}>; rel=\"first\"; title=\"page 1, the \\\"first\\\"\"",
                with(&path, &query, "page", "1")
            )];
            if more {
                links.push(format!(
                    "<{}>; rel=\"next\"",
                    with(&path, &query, "page", &(number_ + 1).to_string())
                ));
            }
            let mut response = axum::Json(json!({ "value": value })).into_response();
            if let Ok(link) = HeaderValue::from_str(&links.join(", ")) {
                response.headers_mut().insert("link", link);
            }
            response
        }
        "/link_body" => {
            let number_ = number(&query, "page").unwrap_or(1).max(1);
            let (value, more) = page((number_ - 1) * limit);
            let host = header(&parts.headers, "host");
            let next = more.then(|| {
                format!(
                    "http://{host}{}",
                    with(&path, &query, "page", &(number_ + 1).to_string())
                )
            });
            axum::Json(json!({ "value": value, "metadata": { "links": { "next": next } } }))
                .into_response()
        }
        "/next_url" => {
            let after = number(&query, "after").unwrap_or(0);
            let (value, more) = page(after);
            let next = with(&path, &query, "after", &(after + limit).to_string());
            axum::Json(json!({ "data": value, "paging": { "next": next, "has_more": more } }))
                .into_response()
        }
        "/token" => {
            let start = query.get("cursor").and_then(|t| untoken(t)).unwrap_or(0);
            let (value, more) = page(start);
            let mut body = json!({ "value": value });
            if more {
                body["next"] = json!(token(start + limit));
            }
            axum::Json(body).into_response()
        }
        "/token_header" => {
            let start = headers
                .get("x-page-token")
                .and_then(|t| untoken(t))
                .unwrap_or(0);
            let (value, more) = page(start);
            let mut response = axum::Json(value).into_response();
            if more && let Ok(next) = HeaderValue::from_str(&token(start + limit)) {
                response.headers_mut().insert("x-next-token", next);
            }
            response
        }
        "/offset" => {
            let (value, _) = page(number(&query, "offset").unwrap_or(0));
            axum::Json(json!({ "items": value })).into_response()
        }
        "/csv" => {
            let (value, _) = page(number(&query, "offset").unwrap_or(0));
            let body = gzip(csv(&records, &value).as_bytes());
            ([("content-type", "text/csv")], body).into_response()
        }
        "/loop" => {
            // Page 1 gives "a", the page of "a" gives "b", the page of "b" gives "a" again.
            let next = match query.get("cursor").map(String::as_str) {
                None => "a",
                Some("a") => "b",
                Some(_) => "a",
            };
            axum::Json(json!({ "value": page(0).0, "next": next })).into_response()
        }
        "/endless" => {
            let at = query.get("cursor").and_then(|t| untoken(t)).unwrap_or(0);
            axum::Json(json!({ "value": [], "next": token(at + 1) })).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn in_window(record: &Value, query: &BTreeMap<String, String>) -> bool {
    let updated = record.get("updated").and_then(Value::as_str).unwrap_or("");
    query
        .get("from")
        .is_none_or(|from| updated >= from.as_str())
        && query
            .get("until")
            .is_none_or(|until| updated < until.as_str())
}

fn number(query: &BTreeMap<String, String>, name: &str) -> Option<usize> {
    query.get(name).and_then(|v| v.parse().ok())
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// An opaque-looking token for a position.
fn token(position: usize) -> String {
    format!("tk{:x}", position * 7919 + 13)
}

fn untoken(token: &str) -> Option<usize> {
    let n = usize::from_str_radix(token.strip_prefix("tk")?, 16).ok()?;
    n.checked_sub(13)
        .filter(|n| n % 7919 == 0)
        .map(|n| n / 7919)
}

/// `path?query` with `name` set to `value`.
fn with(path: &str, query: &BTreeMap<String, String>, name: &str, value: &str) -> String {
    let mut pairs = url::form_urlencoded::Serializer::new(String::new());
    for (n, v) in query.iter().filter(|(n, _)| *n != name) {
        pairs.append_pair(n, v);
    }
    pairs.append_pair(name, value);
    format!("{path}?{}", pairs.finish())
}

/// The page as CSV, with a header of every key of the window's records, sorted.
fn csv(all: &[Value], page: &[Value]) -> String {
    let mut columns: Vec<String> = all
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|o| o.keys().cloned())
        .collect();
    columns.sort();
    columns.dedup();
    let mut out = columns.join(",");
    out.push('\n');
    for record in page {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| match record.get(c) {
                Some(Value::String(s)) => quote(s),
                Some(Value::Null) | None => String::new(),
                Some(other) => quote(&other.to_string()),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

fn quote(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}
