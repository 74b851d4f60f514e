//! What a customer's callback server or ingest API can do: huge bodies, redirects, addresses
//! inside the operator's network, secrets in URLs and logs.

use crate::drops;
use crate::http_server;
use crate::sts_stub;

use dropfolder::config::{Config, SecretCheck};
use dropfolder::egress::EgressPolicy;
use dropfolder::worker::Worker;

use crate::common::{callback_error, run_once};
use drops::{ALLOW_LOOPBACK, Env, HEADER};
use http_server::{Reply, Server};

const KEY: &str = "cb-key-0d9e71-never-logged";
const TOKEN: &str = "ingest-bearer-4a11c2-never-logged";
/// A body far larger than anything dropfolder should read of an error answer.
const HUGE: u64 = 256 * 1024 * 1024;
/// What may have left the server once the client stopped reading: what it read, and what
/// the loopback socket buffers and the server's own buffers held.
const READ_AT_MOST: u64 = 32 * 1024 * 1024;

/// A ready drop, the callback key in a file, and `extra` integration lines.
fn env_with_drop() -> Env {
    let env = Env::new();
    env.csv(
        "20210228",
        "users.csv.gz",
        &format!("{HEADER}u1,a@x.com,,,\n"),
    );
    env.success("20210228");
    std::fs::write(env.dir.path().join("callback.key"), KEY).expect("key file");
    std::fs::write(env.dir.path().join("token"), TOKEN).expect("token file");
    std::fs::write(env.dir.path().join("client-secret"), "client-secret-value")
        .expect("secret file");
    env
}

fn callback(url: &str, options: &str) -> String {
    format!("callback = {{ url = \"{url}\", api_key_file = \"callback.key\"{options} }}")
}

/// The config text, checked (with the loopback allow-list the test servers need).
fn checked(env: &Env, text: &str) -> Config {
    let config = Config::parse(text, env.dir.path().to_path_buf()).expect("config parses");
    let problems = config.check(SecretCheck::Require);
    assert!(problems.is_empty(), "{problems:?}");
    config
}

/// The config text as given, not checked: what `run` would meet if a name the check let
/// through later resolved elsewhere.
fn unchecked(env: &Env, text: &str) -> Config {
    Config::parse(text, env.dir.path().to_path_buf()).expect("config parses")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_answering_500_with_a_huge_body_is_read_only_a_few_kib() {
    let server = Server::start().await;
    server.set_default(Reply::Stream(500, HUGE));
    let env = env_with_drop();
    let text = env.config_text(&callback(
        &format!("{}/cb", server.url),
        ", retry_count = 1, timeout_seconds = 60",
    ));
    let config = checked(&env, &text);
    let report = run_once(&config).await;
    assert!(!report.failed(), "{report:?}");
    assert_eq!(server.calls().len(), 1);
    let error = callback_error(&config).await.expect("not delivered");
    assert!(error.contains("answered 500"), "{error}");
    assert!(error.len() < 1024, "a short message: {} bytes", error.len());
    let streamed = server.streamed();
    assert!(
        streamed < READ_AT_MOST,
        "{streamed} bytes of the error body left the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_sink_answering_500_with_a_huge_body_is_read_only_a_few_kib() {
    let server = Server::start().await;
    server.set_default(Reply::Stream(500, HUGE));
    let env = env_with_drop();
    let text = format!(
        "{}\n[sink]\nkind = \"http\"\nurl = \"{}/records\"\nretry_count = 1\ntimeout_seconds = 60\n",
        env.config_text(""),
        server.url
    );
    let config = checked(&env, &text);
    let report = run_once(&config).await;
    let shown = format!("{report:?}");
    assert!(shown.contains("answered 500"), "{shown}");
    let streamed = server.streamed();
    assert!(
        streamed < READ_AT_MOST,
        "{streamed} bytes of the error body left the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth2_token_endpoint_answering_a_huge_body_is_read_only_a_few_kib() {
    let server = Server::start().await;
    server.set_token_reply(Reply::Stream(200, HUGE));
    let env = env_with_drop();
    let text = format!(
        "{}\n[sink]\nkind = \"http\"\nurl = \"{url}/records\"\nretry_count = 1\ntimeout_seconds = 60\nauth = {{ type = \"oauth2\", token_url = \"{url}/token\", client_id = \"app-1\", client_secret_file = \"client-secret\" }}\n",
        env.config_text(""),
        url = server.url
    );
    let config = checked(&env, &text);
    let report = run_once(&config).await;
    let shown = format!("{report:?}");
    assert!(shown.contains("token"), "{shown}");
    assert!(server.calls().is_empty(), "no records without a token");
    let streamed = server.streamed();
    assert!(
        streamed < READ_AT_MOST,
        "{streamed} bytes of the token answer left the server"
    );
}

#[test]
fn check_refuses_internal_addresses_in_every_spelling() {
    let env = env_with_drop();
    for host in [
        "127.0.0.1:8080",
        "localhost",
        "2852039166",
        "0xA9FEA9FE",
        "169.254.169.254",
        "[fd00:ec2::254]",
        "[::ffff:127.0.0.1]",
        "[::1]",
        "0.0.0.0",
        "10.0.0.7",
        "172.20.1.1",
        "192.168.0.1",
        "100.64.0.1",
        "[fe80::1]",
        "224.0.0.1",
    ] {
        let url = format!("http://{host}/x");
        let text = format!(
            "{}\n[sink]\nkind = \"http\"\nurl = \"{url}\"\nauth = {{ type = \"oauth2\", token_url = \"{url}\", client_id = \"app-1\", client_secret_file = \"client-secret\" }}\n",
            env.config_text(&callback(&url, ""))
                .replace(ALLOW_LOOPBACK, "")
        );
        let problems: Vec<String> = unchecked(&env, &text)
            .check(SecretCheck::Require)
            .iter()
            .map(ToString::to_string)
            .collect();
        for key in [
            "[sink] url:",
            "[sink] auth.token_url:",
            "integration 'acme-users': callback.url:",
        ] {
            assert!(
                problems
                    .iter()
                    .any(|p| p.starts_with(key) && p.contains("allow_networks")),
                "{url} for {key} was accepted: {problems:?}"
            );
        }
    }
    // The operator's allow-list opens exactly its networks.
    let allowed = format!(
        "[outbound]\nallow_networks = [\"10.0.0.0/8\", \"fd00:ec2::254/128\"]\n{}",
        env.config_text(&callback("http://10.1.2.3/cb", ""))
            .replace(ALLOW_LOOPBACK, "")
    );
    assert_eq!(unchecked(&env, &allowed).check(SecretCheck::Require), []);
    let bad = env.config_text("").replace("127.0.0.0/8", "127.0.0.0/33");
    let problems = unchecked(&env, &bad).check(SecretCheck::Require);
    assert!(
        problems
            .iter()
            .any(|p| p.to_string().starts_with("[outbound] allow_networks:")),
        "{problems:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_is_refused_when_connecting_to_an_internal_address() {
    let server = Server::start().await;
    let port = server.url.rsplit(':').next().expect("port").to_string();
    // A name resolving to loopback (refused by the resolver), and IP literals, which no
    // resolver sees; the run's policy is not the one checked, as if the name had resolved
    // elsewhere then.
    for (url, class) in [
        (format!("http://localhost:{port}/cb"), "loopback"),
        (format!("http://127.0.0.1:{port}/cb"), "loopback"),
        (format!("http://[::ffff:127.0.0.1]:{port}/cb"), "loopback"),
    ] {
        let env = env_with_drop();
        let config = checked(&env, &env.config_text(&callback(&url, ", retry_count = 1")));
        let mut settings = config
            .compile(SecretCheck::Require)
            .expect("config compiles");
        settings.egress = EgressPolicy::new(Vec::new());
        let report = Worker::open(settings)
            .await
            .expect("worker")
            .run_once()
            .await;
        assert!(!report.failed(), "{report:?}");
        assert!(server.calls().is_empty(), "{url} was reached");
        let error = callback_error(&config).await.expect("not delivered");
        assert!(
            error.contains(class) && error.contains("allow_networks"),
            "{url}: {error}"
        );
    }
    // Allow-listed, the same callback arrives.
    let env = env_with_drop();
    let config = checked(
        &env,
        &env.config_text(&callback(&format!("http://localhost:{port}/cb"), "")),
    );
    run_once(&config).await;
    assert_eq!(server.calls().len(), 1);
    assert_eq!(callback_error(&config).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_sink_never_follows_a_redirect_with_the_records() {
    let sink = Server::start().await;
    let elsewhere = Server::start().await;
    sink.set_default(Reply::Redirect(307, format!("{}/stolen", elsewhere.url)));
    let env = env_with_drop();
    let text = format!(
        "{}\n[sink]\nkind = \"http\"\nurl = \"{}/records\"\nheaders = {{ \"X-Tenant\" = \"acme\" }}\n",
        env.config_text(""),
        sink.url
    );
    let config = checked(&env, &text);
    let report = run_once(&config).await;
    assert!(
        elsewhere.requests().is_empty(),
        "the records went where the redirect pointed: {:?}",
        elsewhere.requests()
    );
    assert_eq!(sink.calls().len(), 1, "a redirect is not retried");
    let shown = format!("{report:?}");
    assert!(
        shown.contains("answered 307") && shown.contains("redirects are not followed"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_redirect_is_a_failure_that_is_not_retried() {
    let server = Server::start().await;
    let elsewhere = Server::start().await;
    server.set_default(Reply::Redirect(307, format!("{}/other", elsewhere.url)));
    let env = env_with_drop();
    let config = checked(
        &env,
        &env.config_text(&callback(
            &format!("{}/cb", server.url),
            ", retry_count = 3",
        )),
    );
    run_once(&config).await;
    let error = callback_error(&config).await.expect("not delivered");
    assert!(
        error.contains("answered 307") && error.contains("redirects are not followed"),
        "{error}"
    );
    // The next run does not send it again: the receiver wants it elsewhere, which it will
    // not get.
    run_once(&config).await;
    assert_eq!(server.calls().len(), 1, "{:?}", server.calls());
    assert!(elsewhere.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_in_urls_are_redacted_in_errors_logs_and_status() {
    const PASSWORD: &str = "url-password-5b7e";
    const QUERY: &str = "query-token-93ac";
    let server = Server::start().await;
    server.set_default(Reply::Status(500));
    let env = env_with_drop();
    let url = server
        .url
        .replace("http://", &format!("http://cbuser:{PASSWORD}@"));
    let config_path = env.dir.path().join("dropfolder.toml");
    std::fs::write(
        &config_path,
        env.config_text(&callback(
            &format!("{url}/cb?token={QUERY}&tenant=acme"),
            ", retry_count = 2",
        )),
    )
    .expect("write config");
    let mut outputs = Vec::new();
    for args in [&["run"][..], &["status"], &["status", "--json"]] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_dropfolder"))
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .env("RUST_LOG", "debug")
            .output()
            .await
            .expect("run dropfolder");
        outputs.push(format!(
            "{args:?} exit {:?}\n--- stdout\n{}--- stderr\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let all = outputs.join("\n");
    assert_eq!(server.calls().len(), 2, "{all}");
    assert!(
        all.contains("cbuser:***@127.0.0.1") && all.contains("token=***&tenant=***"),
        "the URL is shown, redacted: {all}"
    );
    for secret in [PASSWORD, QUERY, KEY] {
        assert!(!all.contains(secret), "{secret} was shown:\n{all}");
    }
    let error = callback_error(&unchecked(
        &env,
        &std::fs::read_to_string(&config_path).expect("config"),
    ))
    .await
    .expect("not delivered");
    assert!(
        !error.contains(PASSWORD) && !error.contains(QUERY),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_log_even_at_trace() {
    const BASE_SECRET: &str = "base-secret-key-17f0c3";
    const BASE_SESSION: &str = "base-session-token-6ad2e9";
    const EXTERNAL_ID: &str = "external-id-c41b08";
    let granted = sts_stub::Granted {
        access_key_id: "ASIAASSUMEDKEY000001",
        secret_access_key: "assumed-secret-key-2e88d1",
        session_token: "assumed-session-token-9f03b7",
    };
    let sts = sts_stub::StsStub::granting(&granted).await;
    // Stands in for the role's bucket (answers every S3 call 200 with a body the SDK
    // rejects: the requests are signed, and so logged, all the same), the callback
    // receiver and the ingest API.
    let server = Server::start().await;
    let env = env_with_drop();
    let assumed = format!(
        "\n[[integrations]]\nname = \"acme-role\"\nentity = \"user\"\nschema = \"users\"\nbucket = \"acme-exports/px\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nrole_arn = \"arn:aws:iam::123456789012:role/s3-export-role\"\nexternal_id_env = \"DROPFOLDER_TEST_EXTERNAL_ID\"\nsts_endpoint = \"{}\"\n",
        server.url, sts.url
    );
    let text = format!(
        "{}{assumed}\n[sink]\nkind = \"http\"\nurl = \"{}/records\"\nauth = {{ type = \"bearer\", token_file = \"token\" }}\n",
        env.config_text(&callback(&format!("{}/cb", server.url), "")),
        server.url
    );
    let config_path = env.dir.path().join("dropfolder.toml");
    std::fs::write(&config_path, &text).expect("write config");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_dropfolder"))
        .arg("--config")
        .arg(&config_path)
        .arg("run")
        .env("RUST_LOG", "trace")
        .env("AWS_ACCESS_KEY_ID", "ASIABASEKEY000000001")
        .env("AWS_SECRET_ACCESS_KEY", BASE_SECRET)
        .env("AWS_SESSION_TOKEN", BASE_SESSION)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("DROPFOLDER_TEST_EXTERNAL_ID", EXTERNAL_ID)
        .output()
        .await
        .expect("run dropfolder");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    let shown = || {
        let tail: String = stderr
            .chars()
            .skip(stderr.chars().count().saturating_sub(4000))
            .collect();
        format!("--- stdout\n{stdout}--- stderr (tail)\n{tail}")
    };
    // Everything that carries a secret happened: AssumeRole with the external ID, signed
    // S3 requests, the callback with its key, records with the bearer token.
    assert!(
        sts.bodies().iter().any(|b| b.contains(EXTERNAL_ID)),
        "no AssumeRole: {}",
        shown()
    );
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.header("x-amz-security-token") == Some(granted.session_token)),
        "no S3 request with the assumed role: {}",
        shown()
    );
    assert!(
        requests.iter().any(|r| r.header("x-api-key") == Some(KEY)),
        "no callback: {}",
        shown()
    );
    let bearer = format!("Bearer {TOKEN}");
    assert!(
        requests
            .iter()
            .any(|r| r.header("authorization") == Some(bearer.as_str())),
        "no records: {}",
        shown()
    );
    assert!(stderr.contains(" TRACE "), "trace logging was on");
    for secret in [
        BASE_SECRET,
        BASE_SESSION,
        EXTERNAL_ID,
        granted.secret_access_key,
        granted.session_token,
        KEY,
        TOKEN,
    ] {
        let line = stderr.lines().find(|l| l.contains(secret));
        assert!(line.is_none(), "{secret} was logged: {line:?}");
        assert!(!stdout.contains(secret), "{secret} was printed");
    }
}
