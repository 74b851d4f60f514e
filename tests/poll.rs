//! The REST API poller against a real API on 127.0.0.1 (an axum server holding timestamped
//! records and answering the ones of the asked window as CSV, gzipped or not): windows and
//! their catch-up, a crash in the middle of a window (repeated, harmlessly), 429 then 200,
//! 400 not retried; the records in the sink compared exactly each time. `dropfolder run`
//! polls into each sink: SQLite, PostgreSQL (with the services) and an HTTP API.
//!
//! Needs the `failpoints` feature: `cargo test --features failpoints --test poll`.
#![cfg(feature = "failpoints")]

mod common;
#[path = "common/drops.rs"]
mod drops;
#[path = "common/http_server.rs"]
mod http_server;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/workdir.rs"]
mod workdir;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use dropfolder::config::poll_paging::{PagingConfig, ResponseConfig};
use dropfolder::egress::{EgressPolicy, Network};
use dropfolder::ledger::Entity;
use dropfolder::poll::{PollMethod, PollRun, PollSettings, Poller, TimeFormat, endpoint};
use dropfolder::sink::SqliteSink;
use dropfolder::state::{Claim, SqliteState, StateStore};
use tokio_util::sync::CancellationToken;

const HEADER: &str = "id,email,signUpDate,score,isTrial";
const FORMAT: &str = "yyyy-MM-dd'T'HH:mm:ssX";

/// A request's arrival and query.
type Asked = (Instant, Vec<(String, String)>);

/// The customer's API: records by update time, answered by window.
#[derive(Default)]
struct Api {
    /// (updated, CSV line)
    records: Mutex<Vec<(DateTime<Utc>, String)>>,
    /// Statuses answered (with a Retry-After) before the records, one per request.
    script: Mutex<VecDeque<(u16, Option<u64>)>>,
    /// Each request's arrival and query string.
    requests: Mutex<Vec<Asked>>,
    gzip: bool,
    /// `http://127.0.0.1:PORT`, for the links of paged answers.
    base: Mutex<String>,
    /// How long each JSON page takes to be answered (a slow API).
    page_delay: Mutex<std::time::Duration>,
}

async fn users(
    State(api): State<Arc<Api>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    api.requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((Instant::now(), query.clone()));
    let scripted = api
        .script
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pop_front();
    if let Some((status, retry_after)) = scripted {
        let mut headers = HeaderMap::new();
        if let Some(seconds) = retry_after {
            headers.insert("retry-after", HeaderValue::from(seconds));
        }
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, headers, "slow down or fix the request").into_response();
    }
    let time = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| DateTime::parse_from_rfc3339(v).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let (Some(from), Some(until)) = (time("from"), time("until")) else {
        return (StatusCode::BAD_REQUEST, "from and until are required").into_response();
    };
    let mut csv = format!("{HEADER}\n");
    for (updated, line) in api.records.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        if from <= *updated && *updated < until {
            csv.push_str(line);
            csv.push('\n');
        }
    }
    if api.gzip {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/gzip"));
        return (headers, common::gzip(csv.as_bytes())).into_response();
    }
    csv.into_response()
}

/// Records per page of the JSON API.
const PAGE: usize = 2;

/// The JSON API, paged as `/v2/<paging>/users` says: the records of the window as objects
/// under `value`, two a page; the next page named by a `Link` header (`link_header`), a
/// `nextLink` in the body (`next_page_url`), a `next` token sent back as `cursor`
/// (`next_page_token`), or asked by `offset` and `limit` (`offset`).
async fn json_users(
    State(api): State<Arc<Api>>,
    axum::extract::Path(paging): axum::extract::Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    api.requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((Instant::now(), query.clone()));
    let delay = *api.page_delay.lock().unwrap_or_else(|p| p.into_inner());
    tokio::time::sleep(delay).await;
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let time = |name: &str| {
        param(name)
            .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let (Some(from), Some(until)) = (time("from"), time("until")) else {
        return (StatusCode::BAD_REQUEST, "from and until are required").into_response();
    };
    let all: Vec<serde_json::Value> = api
        .records
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(updated, _)| from <= *updated && *updated < until)
        .map(|(_, line)| {
            let f: Vec<&str> = line.split(',').collect();
            serde_json::json!({
                "id": f[0], "email": f[1], "signUpDate": f[2],
                "score": f[3].parse::<f64>().unwrap_or_default(), "isTrial": f[4] == "true",
            })
        })
        .collect();
    let start = match paging.as_str() {
        "offset" => param("offset").and_then(|o| o.parse().ok()).unwrap_or(0),
        "next_page_token" => param("cursor")
            .and_then(|c| c.strip_prefix("tok-").and_then(|n| n.parse().ok()))
            .unwrap_or(0),
        _ => param("page").and_then(|p| p.parse().ok()).unwrap_or(0),
    };
    let size = param("limit").and_then(|l| l.parse().ok()).unwrap_or(PAGE);
    let page: Vec<serde_json::Value> = all.iter().skip(start).take(size).cloned().collect();
    let more = start + size < all.len();
    let base = api.base.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let next_url = format!(
        "{base}/v2/{paging}/users?from={}&until={}&page={}",
        from.format("%Y-%m-%dT%H:%M:%SZ"),
        until.format("%Y-%m-%dT%H:%M:%SZ"),
        start + size
    );
    let mut body = serde_json::json!({ "value": page });
    let mut headers = HeaderMap::new();
    match paging.as_str() {
        "link_header" if more => {
            let link = format!("<{next_url}>; rel=\"next\"");
            if let Ok(value) = HeaderValue::from_str(&link) {
                headers.insert("link", value);
            }
        }
        "next_page_url" if more => body["nextLink"] = serde_json::json!(next_url),
        "next_page_token" if more => {
            body["next"] = serde_json::json!(format!("tok-{}", start + size))
        }
        _ => {}
    }
    (headers, axum::Json(body)).into_response()
}

struct Harness {
    api: Arc<Api>,
    url: String,
    server: tokio::task::JoinHandle<()>,
    dir: tempfile::TempDir,
    state: SqliteState,
    sink: SqliteSink,
    settings: PollSettings,
    rules: dropfolder::validate::FileRules,
    /// Fail points are the process's: one test at a time configures them.
    _points: fail::FailScenario<'static>,
}

/// 2026-12-01T00:00:00Z plus `minutes`.
fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
        + TimeDelta::minutes(minutes)
}

impl Harness {
    async fn start(gzip: bool) -> Harness {
        let points = fail::FailScenario::setup();
        let api = Arc::new(Api {
            gzip,
            ..Api::default()
        });
        let app = axum::Router::new()
            .route("/v1/users", axum::routing::get(users))
            .route("/v2/{paging}/users", axum::routing::get(json_users))
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr: SocketAddr = listener.local_addr().expect("local address");
        *api.base.lock().unwrap_or_else(|p| p.into_inner()) = format!("http://{addr}");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("dropfolder.db");
        let state = SqliteState::open(&db).await.expect("state");
        let sink = SqliteSink::open(&db).await.expect("sink");
        let settings = PollSettings {
            endpoint: format!("http://{addr}/v1/users"),
            method: PollMethod::Get,
            headers: vec![("Accept".into(), "text/csv".into())],
            query: Vec::new(),
            start_attribute: Some("from".into()),
            end_attribute: Some("until".into()),
            time_format: TimeFormat::compile(FORMAT).expect("format"),
            window: TimeDelta::minutes(5),
            auth: None,
            rate_limit_qps: None,
            attempts: 3,
            timeout: std::time::Duration::from_secs(5),
            max_windows_per_run: 288,
            max_run: std::time::Duration::from_secs(60),
            paging: PagingConfig::default().compile().expect("paging"),
            response: toml::from_str::<ResponseConfig>(&format!("format = \"csv\"\ngzip = {gzip}"))
                .expect("response table")
                .compile()
                .expect("response"),
        };
        Harness {
            api,
            url: format!("http://{addr}"),
            server,
            dir,
            state,
            sink,
            settings,
            rules: common::rules(),
            _points: points,
        }
    }

    /// The JSON API paged as `paging` (its table), records under `value`.
    async fn json_api(paging: &str, table: &str) -> Harness {
        let mut h = Harness::start(false).await;
        h.settings.endpoint = format!("{}/v2/{paging}/users", h.url);
        h.settings.paging = toml::from_str::<PagingConfig>(table)
            .expect("paging table")
            .compile()
            .expect("paging");
        h.settings.response = toml::from_str::<ResponseConfig>("events_json_paths = [\"$.value\"]")
            .expect("response table")
            .compile()
            .expect("response");
        h
    }

    /// A record updated at `minute`: `u<minute>`.
    fn add(&self, minute: i64) {
        self.add_at(at(minute), minute);
    }

    /// A record of this CSV line, updated at `updated`.
    fn add_line(&self, updated: DateTime<Utc>, line: &str) {
        self.api
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((updated, line.to_string()));
    }

    /// The record `u<n>`, updated at `updated`.
    fn add_at(&self, updated: DateTime<Utc>, minute: i64) {
        let line = format!(
            "u{minute:03},u{minute}@example.com,2026-11-{:02},{minute}.5,false",
            1 + minute % 28
        );
        self.api
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((updated, line));
    }

    fn script(&self, replies: &[(u16, Option<u64>)]) {
        self.api
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(replies.iter().copied());
    }

    fn requests(&self) -> Vec<Asked> {
        self.api
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One run of the poller at `now`, under a lease.
    async fn poll(&self, now: DateTime<Utc>) -> PollRun {
        let ttl = std::time::Duration::from_secs(60);
        // A run that crashed left its lease: taken over, as from a holder that died.
        let lease = match self.state.claim("vendor-users", "test", ttl, None).await {
            Ok(Claim::Granted(lease)) => lease,
            Ok(Claim::HeldBy(holder)) => match self
                .state
                .claim("vendor-users", "test", ttl, Some(&holder))
                .await
            {
                Ok(Claim::Granted(lease)) => lease,
                other => panic!("no lease: {other:?}"),
            },
            other => panic!("no lease: {other:?}"),
        };
        let egress = EgressPolicy::new(vec![Network::parse("127.0.0.1").expect("network")]);
        let endpoint = endpoint(&self.settings, egress).expect("endpoint");
        let poller = Poller {
            integration: "vendor-users",
            entity: Entity::User,
            rules: &self.rules,
            settings: &self.settings,
            endpoint: &endpoint,
            sink: &self.sink,
            state: &self.state,
            lease: Some(lease.token),
        };
        let run = poller.run(now, &CancellationToken::new()).await;
        self.state.release(&lease).await.expect("release");
        run
    }

    /// The records in the sink: `id attributes`, by id.
    fn records(&self) -> Vec<String> {
        let conn = rusqlite::Connection::open(self.dir.path().join("dropfolder.db")).expect("db");
        let mut statement = conn
            .prepare("SELECT id, attributes FROM records ORDER BY id")
            .expect("select");
        statement
            .query_map([], |row| {
                Ok(format!(
                    "{} {}",
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?
                ))
            })
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    /// The windows in the ledger: `key rows`.
    fn ledger(&self) -> Vec<String> {
        drops::ledger_of(&self.dir.path().join("dropfolder.db"))
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The record `u<minute>` as the sink keeps it.
fn stored(minute: i64) -> String {
    format!(
        "u{minute:03} {{\"email\":\"u{minute}@example.com\",\"signUpDate\":\"2026-11-{:02}T00:00:00Z\",\"score\":{minute}.5,\"isTrial\":false}}",
        1 + minute % 28
    )
}

/// `id attributes` lines with the attributes parsed, so their order does not matter.
fn as_json(records: Vec<String>) -> Vec<(String, serde_json::Value)> {
    records
        .iter()
        .map(|r| {
            let (id, attributes) = r.split_once(' ').unwrap_or((r, "null"));
            let value = serde_json::from_str(attributes).unwrap_or(serde_json::Value::Null);
            (id.to_string(), value)
        })
        .collect()
}

fn windows(run: &PollRun) -> Vec<(String, u64)> {
    run.windows
        .iter()
        .map(|w| (w.window.key(), w.records))
        .collect()
}

#[tokio::test]
async fn windows_follow_each_other_and_a_gzipped_csv_api_is_imported_exactly() {
    let h = Harness::start(true).await;
    for minute in [1, 4, 5, 9, 12, 14, 15, 22] {
        h.add(minute);
    }
    // The first poll covers one window up to now.
    let first = h.poll(at(5)).await;
    assert!(first.error.is_none(), "{:?}", first.error);
    assert_eq!(
        windows(&first),
        [(
            "poll/2026-12-01T00:00:00.000Z..2026-12-01T00:05:00.000Z".to_string(),
            2
        )]
    );
    // Later: from where the last one ended, complete windows only, one by one.
    let later = h.poll(at(19)).await;
    assert!(later.error.is_none(), "{:?}", later.error);
    assert_eq!(
        windows(&later),
        [
            (
                "poll/2026-12-01T00:05:00.000Z..2026-12-01T00:10:00.000Z".to_string(),
                2
            ),
            (
                "poll/2026-12-01T00:10:00.000Z..2026-12-01T00:15:00.000Z".to_string(),
                2
            ),
        ]
    );
    let asked: Vec<Vec<(String, String)>> = h.requests().into_iter().map(|(_, q)| q).collect();
    assert_eq!(
        asked[1],
        [
            ("from".to_string(), "2026-12-01T00:05:00Z".to_string()),
            ("until".to_string(), "2026-12-01T00:10:00Z".to_string())
        ]
    );
    assert_eq!(h.records(), [1, 4, 5, 9, 12, 14].map(stored));
    assert_eq!(h.ledger().len(), 3);
}

#[tokio::test]
async fn a_downtime_is_caught_up_window_by_window_bounded_per_run() {
    let mut h = Harness::start(false).await;
    h.settings.max_windows_per_run = 3;
    for minute in [2, 7, 13, 18, 24, 26, 31] {
        h.add(minute);
    }
    assert_eq!(windows(&h.poll(at(5)).await).len(), 1);
    // 30 minutes later: six windows are due, three are asked now, the rest next run.
    let first = h.poll(at(35)).await;
    assert_eq!(
        windows(&first).iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        [1, 1, 1]
    );
    assert_eq!(first.windows[2].window.end, at(20));
    let second = h.poll(at(35)).await;
    assert_eq!(
        windows(&second).iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        [1, 1, 1]
    );
    assert_eq!(second.windows[2].window.end, at(35));
    assert!(h.poll(at(35)).await.windows.is_empty(), "nothing is due");
    assert_eq!(h.records(), [2, 7, 13, 18, 24, 26, 31].map(stored));
}

#[tokio::test]
async fn a_429_is_asked_again_after_its_retry_after_then_imported() {
    let h = Harness::start(false).await;
    h.add(3);
    h.script(&[(429, Some(1))]);
    let run = h.poll(at(5)).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    let requests = h.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[1].0 - requests[0].0 >= std::time::Duration::from_secs(1));
    assert_eq!(h.records(), [stored(3)]);
}

#[tokio::test]
async fn a_400_is_not_asked_again_and_its_window_is_not_skipped() {
    let h = Harness::start(false).await;
    h.add(3);
    h.add(7);
    h.script(&[(400, None)]);
    let failed = h.poll(at(10)).await;
    let error = failed
        .error
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        error.contains("answered 400") && error.contains("slow down or fix the request"),
        "{error}"
    );
    assert_eq!(h.requests().len(), 1, "a 400 is not retried");
    assert_eq!(h.records(), Vec::<String>::new());
    // The next run asks the same window first: nothing is skipped.
    let next = h.poll(at(5)).await;
    assert!(next.error.is_none(), "{:?}", next.error);
    assert_eq!(
        windows(&next),
        [(
            "poll/2026-12-01T00:05:00.000Z..2026-12-01T00:10:00.000Z".to_string(),
            1
        )]
    );
    assert_eq!(h.records(), [stored(7)]);
}

/// A run that dies at the crash point `point` (a panic there, as a bug would), then a run
/// without it.
async fn crash_at(point: &str) -> Harness {
    let h = Harness::start(false).await;
    for minute in [1, 4, 6] {
        h.add(minute);
    }
    fail::cfg(point, "1*panic").expect("fail point");
    let crashed =
        futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(h.poll(at(5)))).await;
    assert!(crashed.is_err(), "the run did not reach {point}");
    fail::remove(point);
    h
}

#[tokio::test]
async fn a_crash_before_a_window_is_committed_repeats_exactly_that_window() {
    let h = crash_at("poll-before-window-commit").await;
    assert_eq!(
        h.records(),
        Vec::<String>::new(),
        "nothing of the window was applied"
    );
    assert_eq!(h.ledger(), Vec::<String>::new());
    let next = h.poll(at(12)).await;
    assert!(next.error.is_none(), "{:?}", next.error);
    assert_eq!(
        windows(&next),
        [
            (
                "poll/2026-12-01T00:00:00.000Z..2026-12-01T00:05:00.000Z".to_string(),
                2
            ),
            (
                "poll/2026-12-01T00:05:00.000Z..2026-12-01T00:10:00.000Z".to_string(),
                1
            ),
        ]
    );
    assert_eq!(h.records(), [1, 4, 6].map(stored));
    assert_eq!(h.requests().len(), 3, "the crashed window was asked again");
}

#[tokio::test]
async fn a_crash_after_a_window_is_committed_finishes_it_from_the_ledger_without_asking_again() {
    let h = crash_at("poll-after-window-commit").await;
    assert_eq!(h.records(), [1, 4].map(stored));
    let next = h.poll(at(12)).await;
    assert!(next.error.is_none(), "{:?}", next.error);
    assert_eq!(
        next.windows
            .iter()
            .map(|w| (w.window.end, w.records, w.already_applied))
            .collect::<Vec<_>>(),
        [(at(5), 2, true), (at(10), 1, false)]
    );
    assert_eq!(
        h.requests().len(),
        2,
        "the applied window was not asked again"
    );
    assert_eq!(h.records(), [1, 4, 6].map(stored));
    assert_eq!(
        h.ledger(),
        [
            "poll/2026-12-01T00:00:00.000Z..2026-12-01T00:05:00.000Z 2",
            "poll/2026-12-01T00:05:00.000Z..2026-12-01T00:10:00.000Z 1",
        ]
    );
}

/// A config of one poll integration asking the harness's API, state and sink in `db`.
fn poll_config(h: &Harness, extra: &str) -> String {
    format!(
        r#"
[state]
url = "sqlite://{db}"

[outbound]
allow_networks = ["127.0.0.1"]

[schemas.users]
id = "string"
email = "string"
signUpDate = "date"
score = "number"
isTrial = "boolean"

[[integrations]]
name = "vendor-users"
entity = "user"
schema = "users"
date_format = "yyyy-MM-dd"

[integrations.poll]
api_endpoint = "{url}/v1/users"
start_time_attribute = "from"
end_time_attribute = "until"
query_time_format = "yyyy-MM-dd'T'HH:mm:ssX"
query_window_minutes = 5
retry_count = 2
response = {{ format = "csv" }}
{extra}
"#,
        db = h.dir.path().join("dropfolder.db").display(),
        url = h.url,
    )
}

async fn dropfolder(
    work: &std::sync::Arc<workdir::Workdir>,
    args: &[&str],
    env: &[(&str, &str)],
) -> workdir::Run {
    let work = work.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        work.run_env(&args, &env)
    })
    .await
    .expect("the command ran")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropfolder_run_polls_and_a_run_killed_mid_window_is_repeated_exactly_by_the_next() {
    let h = Harness::start(false).await;
    let now = Utc::now();
    h.add_at(now - TimeDelta::minutes(2), 1);
    h.add_at(now - TimeDelta::seconds(150), 4);
    h.add_at(now - TimeDelta::minutes(20), 9); // long before the first window
    let work = std::sync::Arc::new(workdir::Workdir::new());
    work.write("dropfolder.toml", poll_config(&h, ""));
    let check = dropfolder(&work, &["check", "--offline"], &[]).await;
    assert_eq!(check.code, Some(0), "{check:?}");
    assert!(
        check.stdout.contains("/v1/users not contacted (--offline)"),
        "{check:?}"
    );

    let killed = dropfolder(
        &work,
        &["run"],
        &[("FAILPOINTS", "poll-before-window-commit=return")],
    )
    .await;
    assert_ne!(killed.code, Some(0), "{killed:?}");
    assert!(
        killed
            .stderr
            .contains("crash point poll-before-window-commit reached"),
        "{killed:?}"
    );
    assert_eq!(h.records(), Vec::<String>::new());

    let next = dropfolder(&work, &["run"], &[]).await;
    assert_eq!(next.code, Some(0), "{next:?}");
    assert!(
        next.stdout.contains("-> the sink SUCCESS, 2 records"),
        "{next:?}"
    );
    assert_eq!(h.records(), [1, 4].map(stored));
    let asked: Vec<Vec<(String, String)>> = h.requests().into_iter().map(|(_, q)| q).collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(
        asked[0], asked[1],
        "the killed window was asked again exactly"
    );
    assert_eq!(h.ledger().len(), 1);

    let status = dropfolder(&work, &["status"], &[]).await;
    assert!(
        status.stdout.contains("last result: SUCCESS poll/"),
        "{status:?}"
    );
}

/// Polling into PostgreSQL: a window is one transaction of that sink with its ledger entry
/// beside the records, so a run killed before the commit leaves nothing and the next applies
/// the window once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropfolder_run_polls_into_postgres_and_a_killed_window_is_applied_once() {
    let Some(cluster) = pg::cluster() else {
        return;
    };
    let url = cluster.fresh_database().await;
    let h = Harness::start(false).await;
    let now = Utc::now();
    h.add_at(now - TimeDelta::minutes(2), 1);
    h.add_at(now - TimeDelta::seconds(150), 4);
    let work = std::sync::Arc::new(workdir::Workdir::new());
    let sink = format!("\n[sink]\nurl = \"{url}\"\npassword_env = \"DATABASE_PASSWORD\"\n");
    work.write("dropfolder.toml", poll_config(&h, &sink));
    let killed = dropfolder(
        &work,
        &["run"],
        &[("FAILPOINTS", "poll-before-window-commit=return")],
    )
    .await;
    assert!(
        killed
            .stderr
            .contains("crash point poll-before-window-commit reached"),
        "{killed:?}"
    );
    let client = cluster.client(&url).await;
    let records = || async {
        let rows = client
            .query("SELECT id, attributes::text FROM records ORDER BY id", &[])
            .await
            .expect("records");
        as_json(
            rows.iter()
                .map(|r| format!("{} {}", r.get::<_, &str>(0), r.get::<_, &str>(1)))
                .collect(),
        )
    };
    assert_eq!(records().await, Vec::new());

    let next = dropfolder(&work, &["run"], &[]).await;
    assert_eq!(next.code, Some(0), "{next:?}");
    assert!(
        next.stdout.contains("-> the sink SUCCESS, 2 records"),
        "{next:?}"
    );
    assert_eq!(records().await, as_json([1, 4].map(stored).to_vec()));
    let ledger = client
        .query(
            "SELECT file_key, rows FROM file_ledger WHERE integration = 'vendor-users'",
            &[],
        )
        .await
        .expect("ledger");
    let ledger: Vec<(String, i64)> = ledger.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    assert!(ledger[0].0.starts_with("poll/"), "{ledger:?}");
    assert_eq!(ledger[0].1, 2);
    let asked: Vec<Vec<(String, String)>> = h.requests().into_iter().map(|(_, q)| q).collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(
        asked[0], asked[1],
        "the killed window was asked again exactly"
    );
}

/// Polling into an HTTP ingest API: the window's records reach it as the file's rows do,
/// each once, with the integration's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropfolder_run_polls_into_an_http_sink() {
    let api = http_server::Server::start().await;
    let h = Harness::start(false).await;
    let now = Utc::now();
    h.add_at(now - TimeDelta::minutes(2), 1);
    h.add_at(now - TimeDelta::seconds(150), 4);
    let work = std::sync::Arc::new(workdir::Workdir::new());
    let sink = format!("\n[sink]\nkind = \"http\"\nurl = \"{}/records\"\n", api.url);
    work.write("dropfolder.toml", poll_config(&h, &sink));
    let run = dropfolder(&work, &["run"], &[]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("-> the sink SUCCESS, 2 records"),
        "{run:?}"
    );
    let mut received = Vec::new();
    for request in api.requests() {
        assert_eq!(request.path, "/records");
        let records = match request.json() {
            serde_json::Value::Array(records) => records,
            record => vec![record],
        };
        for mut record in records {
            let fields = record.as_object_mut().expect("a record is an object");
            let id = fields
                .remove("id")
                .and_then(|v| v.as_str().map(String::from));
            assert_eq!(
                fields.remove("_integration"),
                Some(serde_json::json!("vendor-users"))
            );
            fields.retain(|k, _| !k.starts_with('_'));
            received.push((id.unwrap_or_default(), record));
        }
    }
    received.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(received, as_json([1, 4].map(stored).to_vec()));
    // The next run finds no new complete window with records: nothing is sent twice.
    let again = dropfolder(&work, &["run"], &[]).await;
    assert_eq!(again.code, Some(0), "{again:?}");
    let sent: usize = api
        .requests()
        .iter()
        .map(|r| match r.json() {
            serde_json::Value::Array(records) => records.len(),
            _ => 1,
        })
        .sum();
    assert_eq!(sent, 2, "each record sent once");
    api.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_the_api_refuses_marks_the_integration_failed_with_its_answer() {
    let h = Harness::start(false).await;
    h.script(&[(400, None), (400, None)]);
    let work = std::sync::Arc::new(workdir::Workdir::new());
    work.write("dropfolder.toml", poll_config(&h, ""));
    // `check` asks the API for the first page of the last window.
    let check = dropfolder(&work, &["check"], &[]).await;
    assert_eq!(check.code, Some(1), "{check:?}");
    assert!(
        check
            .stdout
            .contains("vendor-users: FAILED: http://127.0.0.1:"),
        "{check:?}"
    );
    assert!(check.stdout.contains("answered 400"), "{check:?}");
    let run = dropfolder(&work, &["run"], &[]).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.contains("FAILED: window poll/"), "{run:?}");
    assert!(run.stdout.contains("answered 400"), "{run:?}");
    let status = dropfolder(&work, &["status"], &[]).await;
    assert!(status.stdout.contains("Failed"), "{status:?}");
    assert!(
        status.stdout.contains("slow down or fix the request"),
        "{status:?}"
    );
    assert_eq!(h.requests().len(), 2, "a 400 is not asked again");
    // Once the API answers, `check` says so.
    h.add_at(Utc::now() - TimeDelta::minutes(1), 1);
    let check = dropfolder(&work, &["check"], &[]).await;
    assert_eq!(check.code, Some(0), "{check:?}");
    assert!(
        check.stdout.contains(
            "/v1/users answered 200 with 1 record(s) on the first page of the last 5 minute(s)"
        ),
        "{check:?}"
    );
}

/// A window of five records through the JSON API paged as `paging` (its table), into the
/// sink: every page asked, every record applied once.
async fn paged_json_window(paging: &str, table: &str) {
    let h = Harness::json_api(paging, table).await;
    for minute in [0, 1, 2, 3, 4, 6] {
        h.add(minute);
    }
    let run = h.poll(at(5)).await;
    assert!(run.error.is_none(), "{paging}: {:?}", run.error);
    let pages = if paging == "none" { 1 } else { 3 };
    assert_eq!(
        run.windows
            .iter()
            .map(|w| (w.pages, w.records))
            .collect::<Vec<_>>(),
        [(pages, if paging == "none" { 2 } else { 5 })],
        "{paging}"
    );
    let minutes: &[i64] = if paging == "none" {
        &[0, 1]
    } else {
        &[0, 1, 2, 3, 4]
    };
    // A JSON record's attributes are kept in the record's order: compared as JSON values.
    assert_eq!(
        as_json(h.records()),
        as_json(minutes.iter().map(|m| stored(*m)).collect()),
        "{paging}"
    );
    assert_eq!(h.requests().len(), pages, "{paging}");
}

#[tokio::test]
async fn a_paged_json_api_is_imported_whole_for_each_paging_type() {
    paged_json_window("link_header", "type = \"link_header\"").await;
    paged_json_window(
        "next_page_url",
        "type = \"next_page_url\"\nlink_json_path = \"$.nextLink\"",
    )
    .await;
    paged_json_window(
        "next_page_token",
        "type = \"next_page_token\"\ntoken_json_path = \"$.next\"\nparameter = \"cursor\"",
    )
    .await;
    paged_json_window(
        "offset",
        "type = \"offset\"\nparameter = \"offset\"\npage_size = 2\npage_size_parameter = \"limit\"",
    )
    .await;
    paged_json_window("none", "type = \"none\"").await;
}

/// A slow API holds its worker for `max_run_seconds` at most: the window still paging then
/// stops, uncommitted and located, and the next run asks it first and applies it whole.
#[tokio::test]
async fn a_window_still_paging_at_the_runs_time_limit_stops_uncommitted_and_comes_first_next_run() {
    let mut h = Harness::json_api("link_header", "type = \"link_header\"").await;
    for minute in [0, 1, 2, 3, 4] {
        h.add(minute);
    }
    // Three pages of 300 ms against a run of 500 ms: the third is never asked.
    *h.api.page_delay.lock().unwrap_or_else(|p| p.into_inner()) =
        std::time::Duration::from_millis(300);
    h.settings.max_run = std::time::Duration::from_millis(500);
    let run = h.poll(at(5)).await;
    let error = run.error.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        error.starts_with("window poll/") && error.contains(
            "not finished within the run's 500ms (poll.max_run_seconds) after 2 page(s); nothing of it committed, it is asked first next run"
        ),
        "{error}"
    );
    assert!(run.windows.is_empty());
    assert_eq!(h.records(), Vec::<String>::new());
    assert_eq!(h.requests().len(), 2);

    *h.api.page_delay.lock().unwrap_or_else(|p| p.into_inner()) = std::time::Duration::ZERO;
    h.settings.max_run = std::time::Duration::from_secs(60);
    let next = h.poll(at(10)).await;
    assert!(next.error.is_none(), "{:?}", next.error);
    assert_eq!(windows(&next)[0].1, 5, "the stopped window, whole");
    assert_eq!(as_json(h.records()), as_json((0..5).map(stored).collect()));
}

#[tokio::test]
async fn an_invalid_json_record_applies_nothing_of_its_window_and_says_where_it_is() {
    let h = Harness::json_api(
        "next_page_token",
        "type = \"next_page_token\"\ntoken_json_path = \"$.next\"\nparameter = \"cursor\"",
    )
    .await;
    h.add(1);
    h.add(2);
    h.add_line(at(3), "u003,u3@example.com,not-a-date,3.5,false");
    let run = h.poll(at(5)).await;
    let error = run
        .error
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        error.contains("page 2, record 1, field 'signUpDate'"),
        "{error}"
    );
    assert_eq!(h.records(), Vec::<String>::new());
    assert_eq!(h.ledger(), Vec::<String>::new());
}
