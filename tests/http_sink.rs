//! The HTTP sinks against a real HTTP server on 127.0.0.1: every record delivered, bodies
//! within the limit, retries as the API's table says, 413 splitting a batch, OAuth2 tokens
//! reused and refreshed, and a file recorded in the ledger only when every batch was accepted.

mod common;
#[path = "common/drops.rs"]
mod drops;
#[path = "common/http_server.rs"]
mod http_server;

use std::collections::HashSet;

use common::run_once;
use dropfolder::config::Config;
use dropfolder::worker::Worker;
use drops::Env;
use http_server::{Reply, Server};

const TOKEN: &str = "ingest-token-8c1d-never-logged";

/// A config whose sink is `sink` (the `[sink]` body), with the secrets in files.
fn config(env: &Env, sink: &str) -> Config {
    std::fs::write(env.dir.path().join("token"), TOKEN).expect("token file");
    std::fs::write(env.dir.path().join("client-secret"), "client-secret-value")
        .expect("secret file");
    let text = format!("{}\n[sink]\n{sink}\n", env.config_text(""));
    let config = Config::parse(&text, env.dir.path().to_path_buf()).expect("config parses");
    let problems = config.check(dropfolder::config::SecretCheck::Require);
    assert!(problems.is_empty(), "{problems:?}");
    config
}

fn drop_rows(env: &Env, date: &str, rows: u64) {
    let mut csv = String::from("id,email,score\n");
    for i in 0..rows {
        csv.push_str(&format!("u{i},user{i}@example.com,{i}.5\n"));
    }
    env.csv(date, "users.csv.gz", &csv);
    env.success(date);
}

fn ids(bodies: &[serde_json::Value]) -> Vec<String> {
    bodies
        .iter()
        .flat_map(|b| match b {
            serde_json::Value::Array(records) => records.clone(),
            record => vec![record.clone()],
        })
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_ingest_gets_every_one_of_350000_records_one_per_request() {
    let server = Server::start().await;
    server.set_light();
    // A few answers the API's table says to retry, among the first requests.
    server.script([
        Reply::Status(503),
        Reply::RetryAfter(429, 0),
        Reply::Status(500),
        Reply::Status(504),
    ]);
    let env = Env::new();
    let rows = 350_000;
    drop_rows(&env, "20210228", rows);
    let sink = format!(
        "kind = \"http\"\npreset = \"streaming-ingest\"\nurl = \"{}/stream/v0/data/is-AbCDefGH\"\nauth = {{ type = \"bearer\", token_file = \"token\" }}\nheaders = {{ \"X-Amperity-Tenant\" = \"acme\" }}",
        server.url
    );
    let config = config(&env, &sink);
    let report = run_once(&config).await;
    assert!(!report.failed(), "{report:?}");
    assert_eq!(
        env.read("processed/20210228/status.txt"),
        format!("SUCCESS\n{rows} records were uploaded\n")
    );
    let calls = server.calls();
    assert_eq!(
        calls.len() as u64,
        rows + 4,
        "one request per record, plus the 4 retried"
    );
    assert!(
        calls
            .iter()
            .all(|c| c.body.len() <= 254_000 && c.path == "/stream/v0/data/is-AbCDefGH")
    );
    let bodies: Vec<serde_json::Value> = calls.iter().map(|c| c.json()).collect();
    assert!(
        bodies.iter().all(serde_json::Value::is_object),
        "one JSON object per request, not NDJSON or arrays"
    );
    let delivered: HashSet<String> = ids(&bodies).into_iter().collect();
    assert_eq!(delivered.len() as u64, rows, "every id arrived");
    assert!(delivered.contains("u0") && delivered.contains("u349999"));
    let first = bodies.iter().find(|b| b["id"] == "u7").expect("u7");
    assert_eq!(
        *first,
        serde_json::json!({"id": "u7", "_integration": "acme-users", "_entity": "user", "email": "user7@example.com", "score": 7.5})
    );
}

#[tokio::test]
async fn headers_and_the_bearer_token_go_with_each_request() {
    let server = Server::start().await;
    let env = Env::new();
    drop_rows(&env, "20210228", 3);
    let sink = format!(
        "kind = \"http\"\npreset = \"streaming-ingest\"\nurl = \"{}/stream/v0/data/is-1\"\nauth = {{ type = \"bearer\", token_file = \"token\" }}\nheaders = {{ \"X-Amperity-Tenant\" = \"acme\" }}",
        server.url
    );
    run_once(&config(&env, &sink)).await;
    let calls = server.calls();
    assert_eq!(calls.len(), 3);
    for call in &calls {
        assert_eq!(
            call.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(call.header("x-amperity-tenant"), Some("acme"));
        assert_eq!(call.header("content-type"), Some("application/json"));
    }
}

#[tokio::test]
async fn streaming_ingest_never_retries_400_401_or_413() {
    for status in [400, 401, 413] {
        let server = Server::start().await;
        server.set_default(Reply::Status(status));
        let env = Env::new();
        drop_rows(&env, "20210228", 1);
        let sink = format!(
            "kind = \"http\"\npreset = \"streaming-ingest\"\nurl = \"{}/s\"\nauth = {{ type = \"bearer\", token_file = \"token\" }}\nretry_count = 6",
            server.url
        );
        let config = config(&env, &sink);
        let report = run_once(&config).await;
        assert!(report.failed(), "{status}: the file could not be delivered");
        let error = report.integrations[0].error.clone().unwrap_or_default();
        assert!(error.contains(&format!("answered {status}")), "{error}");
        assert!(!error.contains(TOKEN), "{error}");
        assert_eq!(server.calls().len(), 1, "{status} is not retried");
        assert!(
            env.exists("current/dt=20210228/_SUCCESS"),
            "the folder waits for the next run"
        );
        let conn = rusqlite::Connection::open(env.db()).expect("db");
        let recorded: i64 = conn
            .query_row("SELECT count(*) FROM state_ledger", [], |r| r.get(0))
            .expect("ledger");
        assert_eq!(recorded, 0);
    }
}

#[tokio::test]
async fn a_file_is_in_the_ledger_only_when_every_batch_was_accepted() {
    let server = Server::start().await;
    let env = Env::new();
    drop_rows(&env, "20210228", 1000);
    let sink = format!(
        "kind = \"http\"\nurl = \"{}/records\"\nmax_body_bytes = 4096\nretry_count = 2",
        server.url
    );
    let config = config(&env, &sink);
    // The batch holding u500 is refused until its attempts are spent.
    server.fail_bodies_with(Some(("\"u500\"", 502)));
    let report = run_once(&config).await;
    assert!(report.failed(), "{report:?}");
    assert!(
        env.exists("current/dt=20210228/users.csv.gz"),
        "the folder waits for the next run"
    );
    let conn = rusqlite::Connection::open(env.db()).expect("db");
    let recorded: i64 = conn
        .query_row("SELECT count(*) FROM state_ledger", [], |r| r.get(0))
        .expect("ledger");
    assert_eq!(recorded, 0, "not every batch was accepted");
    server.fail_bodies_with(None);
    // The next run sends the whole file again and records it.
    let report = run_once(&config).await;
    assert!(!report.failed(), "{report:?}");
    let bodies: Vec<serde_json::Value> = server.calls().iter().map(|c| c.json()).collect();
    let delivered: HashSet<String> = ids(&bodies).into_iter().collect();
    assert_eq!(delivered.len(), 1000);
    assert!(
        server.calls().iter().all(|c| c.body.len() <= 4096),
        "no body over max_body_bytes"
    );
    assert_eq!(
        env.read("processed/20210228/status.txt"),
        "SUCCESS\n1000 records were uploaded\n"
    );
    let recorded: i64 = conn
        .query_row("SELECT count(*) FROM state_ledger", [], |r| r.get(0))
        .expect("ledger");
    assert_eq!(recorded, 1);
}

#[tokio::test]
async fn a_413_splits_the_batch() {
    let server = Server::start().await;
    server.set_max_body(1500);
    let env = Env::new();
    drop_rows(&env, "20210228", 200);
    let sink = format!(
        "kind = \"http\"\nurl = \"{}/records\"\nformat = \"ndjson\"\nmax_body_bytes = 8192",
        server.url
    );
    let report = run_once(&config(&env, &sink)).await;
    assert!(!report.failed(), "{report:?}");
    let calls = server.calls();
    assert!(
        calls.iter().any(|c| c.body.len() > 1500),
        "some bodies were refused"
    );
    let accepted: HashSet<String> = calls
        .iter()
        .filter(|c| c.body.len() <= 1500)
        .flat_map(|c| {
            String::from_utf8_lossy(&c.body)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(&line).ok())
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        accepted.len(),
        200,
        "every record arrived in the split bodies"
    );
    assert!(
        calls
            .iter()
            .all(|c| c.header("content-type") == Some("application/x-ndjson"))
    );
}

#[tokio::test]
async fn the_dcr_preset_fetches_an_oauth2_token_once_and_refreshes_it() {
    let server = Server::start().await;
    server.set_token_lifetime(2);
    let env = Env::new();
    drop_rows(&env, "20210228", 100);
    let sink = format!(
        "kind = \"http\"\npreset = \"dcr\"\nurl = \"{url}\"\nrule_id = \"dcr-0123456789abcdef\"\nstream_name = \"Custom-Users\"\nmax_body_bytes = 2048\nauth = {{ type = \"oauth2\", token_url = \"{url}/token\", client_id = \"app-1\", client_secret_file = \"client-secret\" }}",
        url = server.url
    );
    let config = config(&env, &sink);
    let worker = Worker::open(
        config
            .compile(dropfolder::config::SecretCheck::Require)
            .expect("config compiles"),
    )
    .await
    .expect("worker");
    assert!(!worker.run_once().await.failed());
    let calls = server.calls();
    assert!(calls.len() > 1, "several batches: {}", calls.len());
    assert_eq!(server.tokens_issued(), 1, "one token for every request");
    assert!(
        calls
            .iter()
            .all(|c| c.path == "/dataCollectionRules/dcr-0123456789abcdef/streams/Custom-Users")
    );
    assert!(
        calls
            .iter()
            .all(|c| c.header("authorization") == Some("Bearer token-1"))
    );
    let token_request = server
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .expect("token request");
    let form = String::from_utf8_lossy(&token_request.body).into_owned();
    assert!(
        form.contains("grant_type=client_credentials") && form.contains("client_id=app-1"),
        "{form}"
    );
    assert!(
        form.contains("scope=https%3A%2F%2Fmonitor.azure.com%2F%2F.default"),
        "{form}"
    );
    // Two seconds of life: refreshed after the first, as less than half remains.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    drop_rows(&env, "20210301", 100);
    assert!(!worker.run_once().await.failed());
    assert_eq!(
        server.tokens_issued(),
        2,
        "refreshed once it was about to expire"
    );
    assert!(
        server
            .calls()
            .last()
            .is_some_and(|c| c.header("authorization") == Some("Bearer token-2"))
    );
}

#[tokio::test]
async fn a_files_rows_for_one_id_arrive_in_file_order() {
    let server = Server::start().await;
    // The first request is told to come back in a second: on main, the other 15 in flight
    // overtook it, and the receiver ended with an older value of u1.
    server.script([Reply::RetryAfter(429, 1)]);
    let env = Env::new();
    let mut csv = String::from("id,email,score\n");
    for i in 0..30 {
        csv.push_str(&format!("u1,v{i}@example.com,{i}\n"));
    }
    for i in 0..10 {
        csv.push_str(&format!("o{i},o{i}@example.com,\n"));
    }
    env.csv("20210228", "users.csv.gz", &csv);
    env.success("20210228");
    let sink = format!(
        "kind = \"http\"\npreset = \"streaming-ingest\"\nurl = \"{}/stream/v0/data/is-1\"\nauth = {{ type = \"bearer\", token_file = \"token\" }}",
        server.url
    );
    let report = run_once(&config(&env, &sink)).await;
    assert!(!report.failed(), "{report:?}");
    let calls = server.calls();
    assert_eq!(calls.len(), 41, "40 records, one retried");
    // The receiver applies requests as they arrive; the one answered 429 applied nothing.
    let applied: Vec<serde_json::Value> = calls[1..].iter().map(|c| c.json()).collect();
    let u1: Vec<&str> = applied
        .iter()
        .filter(|b| b["id"] == "u1")
        .filter_map(|b| b["email"].as_str())
        .collect();
    let expected: Vec<String> = (0..30).map(|i| format!("v{i}@example.com")).collect();
    assert_eq!(u1, expected, "u1's values arrive in file order");
    assert_eq!(ids(&applied).len(), 40);
}
