//! `dropfolder check` as an operator runs it: every problem at once (unknown keys with the key
//! meant), and everything a run needs reached before the run.

mod common;
#[path = "common/http_server.rs"]
mod http_server;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/workdir.rs"]
mod workdir;

use workdir::Workdir;

const CONFIG: &str = r#"
[schemas.users]
id = "string"
email = "string"

[[integrations]]
name = "acme"
entity = "user"
schema = "users"
bucket = "file://drop/acme"
date_format = "yyyy-MM-dd"
"#;

#[test]
fn check_reports_every_unknown_key_with_the_key_meant_and_the_other_problems() {
    let wd = Workdir::new();
    std::fs::create_dir_all(wd.path("drop/acme")).expect("drop folder");
    let config = CONFIG.replace("date_format", "date_fromat").replace(
        "[schemas.users]",
        "[schedule]\nevery = \"soon\"\nconcurency = 4\n\n[schemas.users]",
    ) + "csv = { delimiter = \";\", hedaer = false }\nlimits = { max_rows_per_file = 5 }\n";
    wd.write("dropfolder.toml", config);
    let run = wd.run(&["check", "--offline"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    for expected in [
        "unknown key 'date_fromat' in integration 'acme': did you mean 'date_format'?",
        "unknown key 'csv.hedaer' in integration 'acme': did you mean 'csv.header'?",
        "unknown key 'concurency' in [schedule]: did you mean 'concurrency'?",
        // No key is close: the keys that are known there are listed.
        "unknown key 'limits.max_rows_per_file' in integration 'acme'; the keys of limits are max_field_bytes,",
        // The problems serde would never have reached are reported with them.
        "[schedule] every: 'soon' is not a duration like 15m or 1h",
    ] {
        assert!(run.stderr.contains(expected), "{expected}: {run:?}");
    }
    assert!(run.stderr.contains("has 5 problem(s)"), "{run:?}");
}

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

#[test]
fn check_reaches_the_state_database_and_fails_when_it_is_down() {
    let wd = Workdir::new();
    std::fs::create_dir_all(wd.path("drop/acme")).expect("drop folder");
    let port = closed_port();
    wd.write(
        "dropfolder.toml",
        format!("[state]\nurl = \"postgres://dropfolder@127.0.0.1:{port}/dropfolder\"\n{CONFIG}"),
    );
    // On main this said ok, and the first `run` failed.
    let run = wd.run(&["check"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout.contains(&format!(
            "state postgres://***@127.0.0.1:{port}/dropfolder: FAILED: cannot connect"
        )),
        "{run:?}"
    );
    // --offline contacts nothing, as CI uses it.
    let offline = wd.run(&["check", "--offline"]);
    assert_eq!(offline.code, Some(0), "{offline:?}");
    assert!(!offline.stdout.contains("FAILED"), "{offline:?}");
}

#[test]
fn check_connects_to_a_live_state_database_without_changing_it() {
    let Some(cluster) = pg::cluster() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let url = runtime.block_on(cluster.fresh_database());
    let wd = Workdir::new();
    std::fs::create_dir_all(wd.path("drop/acme")).expect("drop folder");
    wd.write(
        "dropfolder.toml",
        format!("[state]\nurl = \"{url}\"\npassword_env = \"DATABASE_PASSWORD\"\n{CONFIG}"),
    );
    let run = wd.run(&["check"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    // The user name is masked, as everywhere a database URL is shown.
    let shown = url.replace("dropfolder@", "***@");
    assert!(
        run.stdout
            .contains(&format!("state {shown}: ok, connected")),
        "{run:?}"
    );
    // Reaching is not migrating: check leaves the database as it found it.
    let tables: i64 = runtime.block_on(async {
        cluster
            .client(&url)
            .await
            .query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
                &[],
            )
            .await
            .expect("count tables")
            .get(0)
    });
    assert_eq!(tables, 0);
}

#[test]
fn check_connects_to_callback_and_sink_hosts_without_sending_anything() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(http_server::Server::start());
    let live = server.url.clone();
    let dead = format!("http://127.0.0.1:{}", closed_port());
    // The live server speaks plain HTTP: an https URL to it must fail its TLS handshake.
    let tls = live.replace("http://", "https://");
    let wd = Workdir::new();
    let mut config = format!(
        "[outbound]\nallow_networks = [\"127.0.0.1\"]\n\n[sink]\nkind = \"http\"\nurl = \"{live}/records\"\n\n{CONFIG}callback = {{ url = \"{live}/cb\", api_key_env = \"CB_KEY\" }}\n"
    );
    for (name, url) in [("beta", &dead), ("gamma", &tls)] {
        std::fs::create_dir_all(wd.path(&format!("drop/{name}"))).expect("drop folder");
        config += &CONFIG
            .replace("[schemas.users]\nid = \"string\"\nemail = \"string\"\n", "")
            .replace("acme", name);
        config += &format!("callback = {{ url = \"{url}/cb\", api_key_env = \"CB_KEY\" }}\n");
    }
    std::fs::create_dir_all(wd.path("drop/acme")).expect("drop folder");
    wd.write("dropfolder.toml", config);
    let run = wd.run_env(&["check"], &[("CB_KEY", "k")]);
    assert_eq!(run.code, Some(1), "{run:?}");
    for expected in [
        format!("sink {live}: ok, connected"),
        format!("callback {live} (acme): ok, connected"),
        format!("callback {dead} (beta): FAILED: cannot connect"),
        format!("callback {tls} (gamma): FAILED: TLS handshake with 127.0.0.1 failed"),
    ] {
        assert!(run.stdout.contains(&expected), "{expected}: {run:?}");
    }
    assert!(server.requests().is_empty(), "nothing is sent");
}

#[test]
fn an_unreachable_s3_endpoint_is_one_line_with_what_to_do_and_no_imds_noise() {
    let wd = Workdir::new();
    let port = closed_port();
    wd.write("aws-config", "");
    wd.write(
        "dropfolder.toml",
        CONFIG.replace(
            "bucket = \"file://drop/acme\"",
            &format!(
                "bucket = \"acme-bucket/px\"\nendpoint = \"http://127.0.0.1:{port}\"\nregion = \"us-east-1\"\nuse_operator_identity = true"
            ),
        ),
    );
    let mut command = wd.command(&["check"]);
    // No region in the environment and IMDS enabled: the SDK used to look for a region there
    // and warn three times although the integration names its own.
    command
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_CONFIG_FILE", wd.path("aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", wd.path("aws-config"));
    let output = command.output().expect("run dropfolder");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("acme: FAILED"))
        .unwrap_or_default();
    assert!(
        line.contains("cannot reach the S3 endpoint")
            && line.contains("Connection refused")
            && line.contains("check `endpoint`"),
        "{stdout}\n{stderr}"
    );
    assert!(!line.contains("DispatchFailure("), "no Debug dump: {line}");
    assert!(!stderr.contains("IMDS"), "{stderr}");
}
