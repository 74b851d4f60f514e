//! The customer's callback against a real HTTP server on 127.0.0.1: key and body, retries,
//! what is not retried, timeouts, redelivery on the next run, and no key in any log.

mod common;
#[path = "common/drops.rs"]
mod drops;
#[path = "common/http_server.rs"]
mod http_server;

use std::time::Duration;

use common::{callback_error, run_once};
use drops::{Env, HEADER};
use http_server::{Reply, Server};

const KEY: &str = "cb-key-5e1f0c-never-logged";

/// A ready drop and a config whose callback goes to `url` with `options`.
fn setup(url: &str, options: &str) -> (Env, dropfolder::config::Config) {
    let env = Env::new();
    env.csv(
        "20210228",
        "users.csv.gz",
        &format!("{HEADER}u1,a@x.com,,,\n"),
    );
    env.success("20210228");
    let key_file = env.dir.path().join("callback.key");
    std::fs::write(&key_file, format!("{KEY}\n")).expect("write key file");
    let callback = format!(
        "callback = {{ url = \"{url}/prd/data-export\", api_key_file = \"{}\"{options} }}",
        key_file.display()
    );
    let config = env.config(&callback);
    (env, config)
}

#[tokio::test]
async fn the_callback_arrives_with_the_key_and_the_result() {
    let server = Server::start().await;
    let (env, config) = setup(&server.url, "");
    let report = run_once(&config).await;
    assert!(!report.failed(), "{report:?}");
    let calls = server.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert_eq!(
        (call.method.as_str(), call.path.as_str()),
        ("POST", "/prd/data-export")
    );
    assert_eq!(call.header("x-api-key"), Some(KEY));
    assert_eq!(call.header("content-type"), Some("application/json"));
    assert!(
        call.header("idempotency-key")
            .is_some_and(|k| k.starts_with("dropfolder-"))
    );
    let folder = format!("file://{}/processed/20210228", env.bucket().display());
    assert_eq!(
        call.json(),
        serde_json::json!({"folder_path": folder, "success": true, "message": "1 record was uploaded"})
    );
    // Delivered once: the next run sends nothing.
    run_once(&config).await;
    assert_eq!(server.calls().len(), 1);
    assert_eq!(callback_error(&config).await, None);
}

#[tokio::test]
async fn two_500s_then_200_is_one_delivery() {
    let server = Server::start().await;
    server.script([Reply::Status(500), Reply::Status(500)]);
    let (_env, config) = setup(&server.url, ", retry_count = 3");
    run_once(&config).await;
    let calls = server.calls();
    assert_eq!(calls.len(), 3);
    let keys: Vec<_> = calls
        .iter()
        .map(|c| c.header("idempotency-key").map(str::to_string))
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] == w[1]),
        "one logical delivery: {keys:?}"
    );
    run_once(&config).await;
    assert_eq!(server.calls().len(), 3, "delivered, so not sent again");
}

#[tokio::test]
async fn a_401_is_not_retried_and_shows_in_the_status() {
    let server = Server::start().await;
    server.script([Reply::Status(401)]);
    let (env, config) = setup(&server.url, ", retry_count = 6");
    let report = run_once(&config).await;
    assert!(
        !report.failed(),
        "a failed callback never undoes an import: {report:?}"
    );
    assert_eq!(server.calls().len(), 1);
    assert!(env.exists("processed/20210228/status.txt"));
    assert_eq!(env.records().len(), 1);
    let error = callback_error(&config)
        .await
        .expect("callback error recorded");
    assert!(error.contains("answered 401"), "{error}");
    assert!(!error.contains(KEY), "{error}");
    run_once(&config).await;
    assert_eq!(server.calls().len(), 1, "a 401 is refused for good");
}

#[tokio::test]
async fn a_429_waits_as_long_as_retry_after_says() {
    let server = Server::start().await;
    server.script([Reply::RetryAfter(429, 1)]);
    let (_env, config) = setup(&server.url, "");
    run_once(&config).await;
    let calls = server.calls();
    assert_eq!(calls.len(), 2);
    let waited = calls[1].at - calls[0].at;
    assert!(waited >= Duration::from_millis(950), "waited {waited:?}");
}

#[tokio::test]
async fn a_hanging_receiver_times_out_and_gets_it_next_run() {
    let server = Server::start().await;
    server.set_default(Reply::Hang);
    let (_env, config) = setup(&server.url, ", retry_count = 1, timeout_seconds = 1");
    let started = std::time::Instant::now();
    let report = run_once(&config).await;
    assert!(!report.failed(), "{report:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the hang was cut short"
    );
    assert!(
        callback_error(&config)
            .await
            .is_some_and(|e| e.contains("timed out") || e.contains("timeout"))
    );
    server.set_default(Reply::Status(200));
    run_once(&config).await;
    assert_eq!(server.calls().len(), 2);
    assert_eq!(callback_error(&config).await, None);
}

#[tokio::test]
async fn a_receiver_down_during_the_run_gets_it_on_the_next_run() {
    let server = Server::start().await;
    let addr = server.url.trim_start_matches("http://").to_string();
    let (_env, config) = setup(&server.url, ", retry_count = 2");
    server.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    run_once(&config).await;
    let error = callback_error(&config).await.expect("not delivered");
    assert!(error.contains("/prd/data-export"), "{error}");
    let server = Server::start_on(&addr).await;
    run_once(&config).await;
    assert_eq!(server.calls().len(), 1, "delivered on the next run");
    assert_eq!(callback_error(&config).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_never_appears_in_the_logs() {
    let server = Server::start().await;
    server.script([Reply::Status(500), Reply::Status(401)]);
    let env = Env::new();
    env.csv("20210228", "users.csv.gz", &format!("{HEADER}u1,,,,\n"));
    env.success("20210228");
    let config = env.dir.path().join("dropfolder.toml");
    let callback = format!(
        "callback = {{ url = \"{}/cb\", api_key_env = \"DROPFOLDER_TEST_CALLBACK_KEY\" }}",
        server.url
    );
    std::fs::write(&config, env.config_text(&callback)).expect("write config");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_dropfolder"))
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("RUST_LOG", "trace")
        .env("DROPFOLDER_TEST_CALLBACK_KEY", KEY)
        .output()
        .await
        .expect("run dropfolder");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(server.calls().len(), 2);
    assert!(stderr.contains("callback refused"), "the failure is logged");
    assert!(
        stderr.contains(" TRACE ") && stderr.contains("hyper_util"),
        "trace logging of the HTTP client was on"
    );
    assert!(
        !stdout.contains(KEY) && !stderr.contains(KEY),
        "the key was logged"
    );
}
