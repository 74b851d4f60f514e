//! The push endpoint end to end (issue 16): a real server on 127.0.0.1:0 (the `[server]`
//! router with the push route merged), a real SQLite sink, real HTTP requests; the records in
//! the sink compared exactly. PostgreSQL: `push_to_postgres_applies_once` (with the services).

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dropfolder::config::{Config, SecretCheck, SecretRef};
use dropfolder::push::{Push, PushLimits};
use dropfolder::worker::Worker;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "push-token-5f1c2a";
const OTHER_TOKEN: &str = "other-push-token-9d3e";
const OPERATOR_TOKEN: &str = "operator-token-77";
const MAX_BODY: usize = 2000;

struct Server {
    _dir: tempfile::TempDir,
    db: PathBuf,
    url: String,
    push: Push,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn config_text(db: &Path, state: &str) -> String {
    format!(
        r#"
{state}

[schemas.users]
id = "string"
email = "string"
signUpDate = "date"
score = "number"
isTrial = "boolean"

[[integrations]]
name = "acme-push"
entity = "user"
schema = "users"
date_format = "yyyy-MM-dd"
product_key = "crm"
push = {{ token_file = "push.token", max_body_bytes = {MAX_BODY} }}

[[integrations]]
name = "other-push"
entity = "user"
schema = "users"
push = {{ token_file = "other.token", max_body_bytes = {MAX_BODY} }}

[[integrations]]
name = "acme-files"
entity = "user"
schema = "users"
bucket = "file://{drop}"
"#,
        drop = db.with_file_name("drop").display()
    )
}

/// The server of `watch` (operator token on), with `limits`, over a fresh SQLite state and
/// sink, or the `[state]` given. `serve_gracefully` false: the router served without the
/// graceful shutdown, so the stop token reaches the handler (the 503 case).
async fn start(limits: PushLimits, state: Option<&str>, serve_gracefully: bool) -> Server {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("state.db");
    std::fs::create_dir_all(dir.path().join("drop")).expect("the drop folder");
    std::fs::write(dir.path().join("push.token"), format!("{TOKEN}\n")).expect("token file");
    std::fs::write(dir.path().join("other.token"), OTHER_TOKEN).expect("token file");
    let state = state
        .map(str::to_string)
        .unwrap_or_else(|| format!("[state]\nurl = \"sqlite://{}\"", db.display()));
    let path = dir.path().join("dropfolder.toml");
    std::fs::write(&path, config_text(&db, &state)).expect("config");
    let settings =
        Config::load_checked(&path, SecretCheck::Require).unwrap_or_else(|e| panic!("config: {e}"));
    let worker = Worker::open(settings).await.expect("open the worker");
    let stop = CancellationToken::new();
    let push = Push::new(
        worker.live(),
        worker.sink.clone(),
        worker.state.clone(),
        stop.clone(),
        limits,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    std::fs::write(dir.path().join("operator.token"), OPERATOR_TOKEN).expect("token file");
    let operator = SecretRef::File(dir.path().join("operator.token"))
        .read()
        .expect("the operator token");
    let task = if serve_gracefully {
        let (settings, state, push) = (worker.live(), worker.state.clone(), push.clone());
        let stop = stop.clone();
        tokio::spawn(async move {
            let _ = dropfolder::server::serve(
                listener,
                settings,
                state,
                Some(operator),
                Some(push),
                stop,
            )
            .await;
        })
    } else {
        let router = push.clone().router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        })
    };
    Server {
        _dir: dir,
        db,
        url,
        push,
        stop,
        task,
    }
}

fn limits() -> PushLimits {
    PushLimits {
        batch_wait: Duration::from_millis(5),
        ..PushLimits::default()
    }
}

struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

async fn post(
    server: &Server,
    integration: &str,
    token: Option<&str>,
    key: Option<&str>,
    body: &str,
) -> Answer {
    let mut request = reqwest::Client::new()
        .post(format!("{}/stream/v0/data/{integration}", server.url))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        retry_after,
        body,
    }
}

/// `(product_key, id, attributes)` of every record, by id.
fn records(db: &Path) -> Vec<(String, String, Value)> {
    let conn = rusqlite::Connection::open(db).expect("open the sink");
    let mut query = conn
        .prepare("SELECT product_key, id, attributes FROM records ORDER BY id")
        .expect("query");
    query
        .query_map([], |r| {
            let json: String = r.get(2)?;
            Ok((
                r.get(0)?,
                r.get(1)?,
                serde_json::from_str(&json).unwrap_or(Value::Null),
            ))
        })
        .and_then(|rows| rows.collect())
        .expect("records")
}

/// The ledger's keys (without the batch names' unique part).
fn ledger_keys(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("open the sink");
    let mut query = conn
        .prepare("SELECT file_key FROM file_ledger ORDER BY file_key")
        .expect("query");
    query
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .expect("ledger")
        .into_iter()
        .map(|k| {
            if k.starts_with("push/batch/") {
                "push/batch/*".to_string()
            } else {
                k
            }
        })
        .collect()
}

#[tokio::test]
async fn valid_records_are_applied_and_answered_202() {
    let server = start(limits(), None, true).await;
    let one = post(
        &server,
        "acme-push",
        Some(TOKEN),
        None,
        r#"{"id": "u1", "email": "a@example.com", "signUpDate": "2021-06-25", "score": 12.5, "isTrial": true}"#,
    )
    .await;
    assert_eq!(
        (one.status, one.body.clone()),
        (202, json!({"status": 202, "records": 1}))
    );
    let two = post(
        &server,
        "acme-push",
        Some(TOKEN),
        None,
        r#"[{"id": "u2", "score": "7"}, {"id": 3, "email": null, "isTrial": "FALSE"}]"#,
    )
    .await;
    assert_eq!(two.status, 202, "{}", two.body);
    assert_eq!(
        records(&server.db),
        vec![
            (
                "crm".to_string(),
                "3".to_string(),
                json!({"isTrial": false})
            ),
            (
                "crm".into(),
                "u1".into(),
                json!({"email": "a@example.com", "signUpDate": "2021-06-25T00:00:00Z", "score": 12.5, "isTrial": true})
            ),
            ("crm".into(), "u2".into(), json!({"score": 7})),
        ]
    );
    // The status says it: Active, its last data the batch just applied.
    let push = push_status(&server).await;
    assert_eq!(push["status"], "Active", "{push}");
    assert_eq!(push["kind"], "push", "{push}");
}

#[tokio::test]
async fn an_invalid_record_rejects_the_request_with_located_errors_and_applies_nothing() {
    let server = start(limits(), None, true).await;
    let answer = post(
        &server,
        "acme-push",
        Some(TOKEN),
        None,
        r#"[{"id": "u1", "score": 1}, {"id": "u2", "signUpDate": "06/25/2021"}, {"id": "u3", "scor": 2}, {"email": "x"}]"#,
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.body,
        json!({
            "status": 400,
            "errors": [
                "record 2, field 'signUpDate': '06/25/2021' is not a date in format yyyy-MM-dd",
                "record 3, field 'scor': is not in the schema (did you mean 'score'?)",
                "record 4: has no field 'id'; every record needs it"
            ],
            "total": 3
        })
    );
    for (body, error) in [
        (
            "{\"id\": \"u1\"}\n{\"id\": \"u2\"}\n",
            "the body is not JSON",
        ),
        ("[{\"id\": \"u1\"}, 5]", "record 2: is not a JSON object"),
        (
            "[{\"id\": \"u1\", \"email\": {\"a\": 1}}]",
            "record 1, field 'email': is an object",
        ),
    ] {
        let answer = post(&server, "acme-push", Some(TOKEN), None, body).await;
        assert_eq!(answer.status, 400, "{body}");
        let first = answer.body["errors"][0]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(first.starts_with(error), "{body}: {first}");
    }
    assert_eq!(records(&server.db), vec![]);
    assert_eq!(ledger_keys(&server.db), Vec::<String>::new());
}

#[tokio::test]
async fn a_body_over_max_body_bytes_is_413_and_read_no_further() {
    let server = start(limits(), None, true).await;
    let address = server.url.trim_start_matches("http://").to_string();
    // A declared length over the limit: answered before a byte of the body is sent.
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let head = format!(
        "POST /stream/v0/data/acme-push HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {TOKEN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        MAX_BODY + 1
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("send the head");
    let answer = read_answer(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Chunked, no length said: refused at the chunk that crosses the limit, the rest unsent.
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let head = format!(
        "POST /stream/v0/data/acme-push HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {TOKEN}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("send the head");
    let chunk = "x".repeat(MAX_BODY / 2 + 1);
    for _ in 0..2 {
        let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
        stream
            .write_all(framed.as_bytes())
            .await
            .expect("send a chunk");
    }
    // No last chunk: the body never ends, so only the limit can end the request.
    let answer = read_answer(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    assert_eq!(records(&server.db), vec![]);
    // At the limit exactly it is read and applied.
    let prefix = r#"{"id": "big", "email": ""#;
    let email = "x".repeat(MAX_BODY - prefix.len() - 2);
    let at_limit = format!("{prefix}{email}\"}}");
    assert_eq!(at_limit.len(), MAX_BODY);
    let answer = post(&server, "acme-push", Some(TOKEN), None, &at_limit).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(
        records(&server.db),
        vec![(
            "crm".to_string(),
            "big".to_string(),
            json!({ "email": email })
        )]
    );
}

/// The status line and headers of an answer (the server answers before the body ends).
async fn read_answer(stream: &mut tokio::net::TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("an answer before the body is sent")
        .expect("read");
    String::from_utf8_lossy(&buf[..read]).into_owned()
}

#[tokio::test]
async fn a_repeated_idempotency_key_is_applied_once() {
    let server = start(limits(), None, true).await;
    let first = post(
        &server,
        "acme-push",
        Some(TOKEN),
        Some("req-1"),
        r#"[{"id": "u1", "score": 1}, {"id": "u2", "score": 2}]"#,
    )
    .await;
    assert_eq!(
        (first.status, first.body),
        (202, json!({"status": 202, "records": 2}))
    );
    // A later change to u1, then the first request retried: the retry must not undo it.
    let change = post(
        &server,
        "acme-push",
        Some(TOKEN),
        Some("req-2"),
        r#"{"id": "u1", "score": 5}"#,
    )
    .await;
    assert_eq!(change.status, 202);
    let retry = post(
        &server,
        "acme-push",
        Some(TOKEN),
        Some("req-1"),
        r#"[{"id": "u1", "score": 1}, {"id": "u2", "score": 2}]"#,
    )
    .await;
    assert_eq!(
        (retry.status, retry.body),
        (202, json!({"status": 202, "records": 2, "replay": true}))
    );
    assert_eq!(
        records(&server.db),
        vec![
            ("crm".to_string(), "u1".to_string(), json!({"score": 5})),
            ("crm".into(), "u2".into(), json!({"score": 2})),
        ]
    );
    assert_eq!(
        ledger_keys(&server.db),
        vec![
            "push/batch/*",
            "push/batch/*",
            "push/key/req-1",
            "push/key/req-2",
            "push/used/req-1",
            "push/used/req-2"
        ]
    );
}

/// A key used again with another body is refused with 422 and applies nothing: answering it
/// as a replay would tell the client that records were stored that never were. Within one
/// batch too.
#[tokio::test]
async fn an_idempotency_key_used_again_with_another_body_is_422_and_applies_nothing() {
    let server = Arc::new(
        start(
            PushLimits {
                batch_wait: Duration::from_millis(300),
                ..PushLimits::default()
            },
            None,
            true,
        )
        .await,
    );
    let first = r#"{"id": "u1", "score": 1}"#;
    let applied = post(&server, "acme-push", Some(TOKEN), Some("k1"), first).await;
    assert_eq!(applied.status, 202);
    let other = post(
        &server,
        "acme-push",
        Some(TOKEN),
        Some("k1"),
        r#"{"id": "u9", "score": 9}"#,
    )
    .await;
    assert_eq!(
        (other.status, other.body),
        (
            422,
            json!({"status": 422, "error": "Idempotency-Key 'k1' was used with another body: nothing applied; use a new key for new records"})
        )
    );
    let retry = post(&server, "acme-push", Some(TOKEN), Some("k1"), first).await;
    assert_eq!(
        (retry.status, retry.body),
        (202, json!({"status": 202, "records": 1, "replay": true}))
    );
    // Two bodies with one new key in the same batch: the first applied, the other refused.
    let mut requests = tokio::task::JoinSet::new();
    for body in [r#"{"id": "u2"}"#, r#"{"id": "u3"}"#] {
        let server = server.clone();
        requests.spawn(async move {
            let answer = post(&server, "acme-push", Some(TOKEN), Some("k2"), body).await;
            (answer.status, body)
        });
    }
    let mut answers = requests.join_all().await;
    answers.sort();
    assert_eq!(
        answers.iter().map(|a| a.0).collect::<Vec<_>>(),
        vec![202, 422]
    );
    let applied_id = if answers[0].1.contains("u2") {
        "u2"
    } else {
        "u3"
    };
    assert_eq!(
        records(&server.db),
        vec![
            ("crm".to_string(), "u1".to_string(), json!({"score": 1})),
            ("crm".into(), applied_id.into(), json!({})),
        ]
    );
}

#[tokio::test]
async fn many_small_requests_share_a_transaction_and_each_waits_for_its_commit() {
    let server = start(
        PushLimits {
            batch_wait: Duration::from_millis(300),
            ..PushLimits::default()
        },
        None,
        true,
    )
    .await;
    let server = Arc::new(server);
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..8 {
        let server = server.clone();
        requests.spawn(async move {
            let key = format!("k{n}");
            let body = format!(r#"{{"id": "u{n}", "score": {n}}}"#);
            post(&server, "acme-push", Some(TOKEN), Some(&key), &body)
                .await
                .status
        });
    }
    let statuses: Vec<u16> = requests.join_all().await;
    assert_eq!(statuses, vec![202; 8]);
    // Every record is there when its 202 is sent; far fewer transactions than requests.
    assert_eq!(records(&server.db).len(), 8);
    let keys = ledger_keys(&server.db);
    let batches = keys.iter().filter(|k| *k == "push/batch/*").count();
    assert!((1..=2).contains(&batches), "{keys:?}");
    assert_eq!(
        keys.len() - batches,
        16,
        "two entries per key (with its body, and used): {keys:?}"
    );
}

#[tokio::test]
async fn a_wrong_or_missing_token_and_an_unknown_integration_get_the_same_401() {
    let server = start(limits(), None, true).await;
    let body = r#"{"id": "u1"}"#;
    let mut answers = Vec::new();
    for (integration, token) in [
        ("acme-push", None),
        ("acme-push", Some("wrong")),
        ("acme-push", Some(OPERATOR_TOKEN)),
        ("no-such-integration", Some(TOKEN)),
        ("acme-files", Some(TOKEN)),
    ] {
        let answer = post(&server, integration, token, None, body).await;
        answers.push((answer.status, answer.body));
    }
    let unauthorized = (401, json!({"status": 401, "error": "unauthorized"}));
    assert_eq!(answers, vec![unauthorized; 5]);
    assert_eq!(records(&server.db), vec![]);
}

#[tokio::test]
async fn a_full_queue_is_429_with_retry_after() {
    let server = start(
        PushLimits {
            queued_requests: 1,
            batch_wait: Duration::from_millis(1500),
            ..PushLimits::default()
        },
        None,
        true,
    )
    .await;
    let server = Arc::new(server);
    let waiting = {
        let server = server.clone();
        tokio::spawn(async move {
            post(&server, "acme-push", Some(TOKEN), None, r#"{"id": "u1"}"#).await
        })
    };
    // The first request holds the only place until its batch closes.
    for _ in 0..200 {
        if server.push.queued() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(server.push.queued(), 1);
    let refused = post(&server, "acme-push", Some(TOKEN), None, r#"{"id": "u2"}"#).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.retry_after.as_deref(), Some("1"));
    let first = waiting.await.expect("the first request");
    assert_eq!(first.status, 202);
    assert_eq!(
        records(&server.db),
        vec![("crm".to_string(), "u1".to_string(), json!({}))]
    );
    assert_eq!(server.push.queued(), 0);
}

/// A body still arriving holds its place: a client that declares a body and stalls cannot
/// make the process hold more than `queued_bytes`, nor take more than its integration's
/// share of it, so another integration's requests still get in.
#[tokio::test]
async fn a_body_still_arriving_holds_its_place_in_the_queues() {
    let server = start(
        PushLimits {
            queued_bytes: 2100,
            queued_bytes_per_integration: MAX_BODY,
            ..limits()
        },
        None,
        true,
    )
    .await;
    let address = server.url.trim_start_matches("http://").to_string();
    let mut stalled = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    stalled
        .write_all(
            format!(
                "POST /stream/v0/data/acme-push HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {TOKEN}\r\ncontent-type: application/json\r\ncontent-length: 1995\r\n\r\n[{{\"id\": \"u"
            )
            .as_bytes(),
        )
        .await
        .expect("send the start of a request");
    for _ in 0..200 {
        if server.push.queued() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(server.push.queued(), 1, "the stalled body holds a place");
    let small = r#"{"id": "u2"}"#;
    let same = post(&server, "acme-push", Some(TOKEN), None, small).await;
    assert_eq!(
        (same.status, same.retry_after.as_deref()),
        (429, Some("1")),
        "{}",
        same.body
    );
    let other = post(
        &server,
        "other-push",
        Some(OTHER_TOKEN),
        None,
        r#"{"id": "o1"}"#,
    )
    .await;
    assert_eq!(other.status, 202, "{}", other.body);
    let padded = format!(r#"{{"id": "o2", "email": "{}"}}"#, "x".repeat(200));
    let over = post(&server, "other-push", Some(OTHER_TOKEN), None, &padded).await;
    assert_eq!(over.status, 429, "the process holds at most 2100 bytes");
    // The stalled client goes: its place is given back.
    drop(stalled);
    for _ in 0..200 {
        if server.push.queued() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let after = post(&server, "acme-push", Some(TOKEN), None, small).await;
    assert_eq!(after.status, 202, "{}", after.body);
    assert_eq!(
        records(&server.db),
        vec![
            ("".to_string(), "o1".to_string(), json!({})),
            ("crm".to_string(), "u2".to_string(), json!({})),
        ]
    );
}

#[tokio::test]
async fn stopping_is_503_with_retry_after() {
    let server = start(limits(), None, false).await;
    let before = post(&server, "acme-push", Some(TOKEN), None, r#"{"id": "u1"}"#).await;
    assert_eq!(before.status, 202);
    server.stop.cancel();
    let after = post(&server, "acme-push", Some(TOKEN), None, r#"{"id": "u2"}"#).await;
    assert_eq!(after.status, 503, "{}", after.body);
    assert_eq!(after.retry_after.as_deref(), Some("1"));
    assert_eq!(
        records(&server.db),
        vec![("crm".to_string(), "u1".to_string(), json!({}))]
    );
}

#[tokio::test]
async fn push_to_postgres_applies_each_key_once_in_the_batch_transaction() {
    let Some(cluster) = pg::cluster() else {
        return;
    };
    let url = cluster.fresh_database().await;
    let state = format!("[state]\nurl = \"{url}\"\npassword_env = \"DATABASE_PASSWORD\"");
    let server = Arc::new(
        start(
            PushLimits {
                batch_wait: Duration::from_millis(300),
                ..PushLimits::default()
            },
            Some(&state),
            true,
        )
        .await,
    );
    // Two keyed requests in one batch, then the first retried.
    let mut requests = tokio::task::JoinSet::new();
    for (key, body) in [
        (
            "a",
            r#"[{"id": "u1", "score": 1}, {"id": "u2", "isTrial": true}]"#,
        ),
        ("b", r#"{"id": "u3", "signUpDate": "2021-06-25"}"#),
    ] {
        let server = server.clone();
        requests.spawn(async move {
            post(&server, "acme-push", Some(TOKEN), Some(key), body)
                .await
                .status
        });
    }
    assert_eq!(requests.join_all().await, vec![202, 202]);
    let change = post(
        &server,
        "acme-push",
        Some(TOKEN),
        None,
        r#"{"id": "u1", "score": 9}"#,
    )
    .await;
    assert_eq!(change.status, 202);
    let retry = post(
        &server,
        "acme-push",
        Some(TOKEN),
        Some("a"),
        r#"[{"id": "u1", "score": 1}, {"id": "u2", "isTrial": true}]"#,
    )
    .await;
    assert_eq!(
        (retry.status, retry.body),
        (202, json!({"status": 202, "records": 2, "replay": true}))
    );
    let client = cluster.client(&url).await;
    let rows = client
        .query(
            "SELECT product_key, id, attributes::text FROM records ORDER BY id",
            &[],
        )
        .await
        .expect("records");
    let stored: Vec<(String, String, Value)> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                serde_json::from_str(r.get::<_, &str>(2)).unwrap_or(Value::Null),
            )
        })
        .collect();
    assert_eq!(
        stored,
        vec![
            ("crm".to_string(), "u1".to_string(), json!({"score": 9})),
            ("crm".into(), "u2".into(), json!({"isTrial": true})),
            (
                "crm".into(),
                "u3".into(),
                json!({"signUpDate": "2021-06-25T00:00:00Z"})
            ),
        ]
    );
    let keys: Vec<String> = client
        .query(
            "SELECT file_key FROM file_ledger WHERE file_key LIKE 'push/key/%' ORDER BY file_key",
            &[],
        )
        .await
        .expect("ledger")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(keys, vec!["push/key/a", "push/key/b"]);
    // The PostgreSQL state recorded the batches.
    let status = push_status(&server).await;
    assert_eq!(
        (status["status"].as_str(), status["last_target"].as_str()),
        (Some("Active"), Some("push")),
        "{status}"
    );
}

/// The status of `acme-push` as `/status` serves it.
async fn push_status(server: &Server) -> Value {
    let status = reqwest::Client::new()
        .get(format!("{}/status", server.url))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .expect("status");
    let status: Value = status.json().await.expect("status JSON");
    status
        .as_array()
        .and_then(|all| all.iter().find(|h| h["integration"] == "acme-push"))
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_failed_sink_write_is_500_applies_nothing_and_marks_the_integration_failed() {
    let server = start(limits(), None, true).await;
    // The records table gone: every write of the sink fails, as a broken database would.
    let conn = rusqlite::Connection::open(&server.db).expect("open the sink");
    conn.execute_batch("ALTER TABLE records RENAME TO records_away")
        .expect("move the table away");
    let failed = post(
        &server,
        "acme-push",
        Some(TOKEN),
        Some("k1"),
        r#"{"id": "u1"}"#,
    )
    .await;
    assert_eq!(failed.status, 500, "{}", failed.body);
    let status = push_status(&server).await;
    assert_eq!(status["status"], "Failed", "{status}");
    assert!(
        status["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("push: the sink failed")),
        "{status}"
    );
    // Back: the retry with the same key is applied (the failed batch left no entry).
    conn.execute_batch("ALTER TABLE records_away RENAME TO records")
        .expect("put the table back");
    let retried = post(
        &server,
        "acme-push",
        Some(TOKEN),
        Some("k1"),
        r#"{"id": "u1"}"#,
    )
    .await;
    assert_eq!(
        (retried.status, retried.body),
        (202, json!({"status": 202, "records": 1}))
    );
    assert_eq!(
        records(&server.db),
        vec![("crm".to_string(), "u1".to_string(), json!({}))]
    );
    assert_eq!(push_status(&server).await["status"], "Active");
}
