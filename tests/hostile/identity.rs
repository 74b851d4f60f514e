//! How an integration gets in and what it can reach: explicit identities, overlapping roots,
//! the status endpoint's token.

use crate::daemon;
use crate::drops;
use crate::localstack;
use crate::workdir;

use daemon::Daemon;
use drops::{Env, HEADER};
use workdir::Workdir;

const SCHEMA: &str = "[schemas.users]\nid = \"string\"\nemail = \"string\"\n";

fn s3_integration(name: &str, bucket: &str, access: &str) -> String {
    format!(
        "\n[[integrations]]\nname = \"{name}\"\nentity = \"user\"\nschema = \"users\"\nbucket = \"{bucket}\"\nendpoint = \"http://127.0.0.1:9\"\nregion = \"us-east-1\"\n{access}\n"
    )
}

/// An S3 integration that names no identity used to run as the operator's own (the base
/// identity), and one with a role but no external ID assumed it unchecked: the confused
/// deputy. Both are refused by `check`, each with its integration and key, and at start-up.
#[test]
fn an_s3_integration_must_name_its_identity_and_a_role_its_external_id() {
    let wd = Workdir::new();
    let config = format!(
        "[state]\nurl = \"sqlite://dropfolder.db\"\n\n{SCHEMA}{}{}{}",
        s3_integration("no-identity", "acme-exports/px", ""),
        s3_integration(
            "role-only",
            "other-exports/px",
            "role_arn = \"arn:aws:iam::444455556666:role/dropfolder-import\""
        ),
        s3_integration(
            "keys",
            "third-exports/px",
            "access_key_id_env = \"K\"\nsecret_access_key_env = \"S\""
        ),
    );
    wd.write("dropfolder.toml", config);
    let keys = [("K", "key-id"), ("S", "secret-key")];
    let check = wd.run_env(&["check", "--offline"], &keys);
    assert_eq!(check.code, Some(2), "{check:?}");
    for expected in [
        "integration 'no-identity': role_arn: an S3 integration names how it gets in",
        "integration 'role-only': external_id: a role_arn needs the customer's external_id",
    ] {
        assert!(check.stderr.contains(expected), "{expected:?}: {check:?}");
    }
    assert!(check.stderr.contains("has 2 problem(s)"), "{check:?}");
    // Every command checks the config first: nothing is contacted, nothing runs.
    let run = wd.run_env(&["run"], &keys);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
}

/// Two integrations over the same folder (or one inside the other) each imported the same
/// drop under its own name. Now the file is refused and the drop is left untouched.
#[test]
fn integrations_whose_roots_overlap_are_refused_and_import_nothing() {
    let env = Env::new();
    env.csv(
        "20210301",
        "users.csv.gz",
        &format!("{HEADER}u1,a@x.com,,,\n"),
    );
    env.success("20210301");
    let bucket = env.bucket();
    let sibling = env.dir.path().join("bucket2");
    std::fs::create_dir_all(&sibling).expect("sibling folder");
    let more = format!(
        r#"
[[integrations]]
name = "same-folder"
entity = "user"
schema = "users"
bucket = "file://{dotted}"
date_format = "yyyy-MM-dd"

[[integrations]]
name = "inside"
entity = "account"
schema = "users"
bucket = "file://{bucket}/current"
date_format = "yyyy-MM-dd"

[[integrations]]
name = "sibling"
entity = "user"
schema = "users"
bucket = "file://{sibling}"
date_format = "yyyy-MM-dd"
"#,
        dotted = bucket.join("..").join("bucket").display(),
        bucket = bucket.display(),
        sibling = sibling.display(),
    );
    let wd = Workdir::new();
    wd.write("dropfolder.toml", env.config_text(&more));
    let check = wd.run(&["check", "--offline"]);
    assert_eq!(check.code, Some(2), "{check:?}");
    for expected in [
        "integration 'same-folder': bucket: the same root as integration 'acme-users'",
        "integration 'inside': bucket: a root overlapping integration 'acme-users'",
    ] {
        assert!(check.stderr.contains(expected), "{expected:?}: {check:?}");
    }
    // `bucket2` only starts with the same letters: not inside `bucket`.
    assert!(!check.stderr.contains("'sibling'"), "{check:?}");
    assert!(check.stderr.contains("has 3 problem(s)"), "{check:?}");

    let run = wd.run(&["run"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        env.exists("current/dt=20210301/_SUCCESS"),
        "{:?}",
        env.keys()
    );
    assert!(!env.db().exists(), "nothing was imported");
}

/// `/status` and `/metrics` show what customers' callback servers answered: for the operator
/// only. With a token configured they answer 401 and a Bearer challenge without it; the
/// probes' `/healthz` and `/readyz` stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_endpoint_requires_the_token_and_the_probes_do_not() {
    let env = Env::new();
    let state = format!(
        "[state]\nurl = \"sqlite://{}\"\n\n[server]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"DROPFOLDER_TEST_STATUS_TOKEN\"\n",
        env.db().display()
    );
    let config = env.dir.path().join("dropfolder.toml");
    std::fs::write(&config, env.config_text_with(&state, "")).expect("write config");
    let token = "s3cret-status-token";
    let watch = Daemon::watch(&config, &[("DROPFOLDER_TEST_STATUS_TOKEN", token)]);
    let client = reqwest::Client::new();
    let get = |path: &str, auth: Option<&str>| {
        let mut request = client.get(format!("http://{}{path}", watch.addr));
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        async move {
            let response = request.send().await.expect("GET");
            let challenge = response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            (response.status().as_u16(), challenge)
        }
    };
    for path in ["/", "/status", "/metrics", "/nowhere"] {
        for auth in [None, Some("Bearer wrong-token"), Some(token)] {
            let (code, challenge) = get(path, auth).await;
            assert_eq!(code, 401, "{path} with {auth:?}");
            assert!(
                challenge.is_some_and(|c| c.starts_with("Bearer")),
                "{path} with {auth:?}"
            );
        }
    }
    let right = format!("Bearer {token}");
    assert_eq!(get("/status", Some(&right)).await.0, 200);
    assert_eq!(get("/metrics", Some(&right)).await.0, 200);
    assert_eq!(get("/", Some(&right)).await.0, 200);
    assert_eq!(
        get("/status", Some(&format!("bearer {token}"))).await.0,
        200
    );
    for probe in ["/healthz", "/readyz"] {
        assert_eq!(get(probe, None).await, (200, None), "{probe}");
    }
    let log = watch.log().join("\n");
    assert!(!log.contains(token), "the token reached the log:\n{log}");
}

/// The endpoint listens on 127.0.0.1 by default; opened to other hosts without a token it is
/// refused rather than served to anyone who can reach the port.
#[test]
fn a_status_endpoint_off_loopback_needs_a_token() {
    let env = Env::new();
    let wd = Workdir::new();
    let open = format!(
        "[state]\nurl = \"sqlite://{}\"\n\n[server]\nlisten = \"0.0.0.0:9090\"\n",
        env.db().display()
    );
    wd.write("dropfolder.toml", env.config_text_with(&open, ""));
    let check = wd.run(&["check", "--offline"]);
    assert_eq!(check.code, Some(2), "{check:?}");
    assert!(
        check
            .stderr
            .contains("[server] listen: '0.0.0.0:9090' is reachable from other hosts"),
        "{check:?}"
    );
    let with_token = open.replace(
        "listen = \"0.0.0.0:9090\"",
        "listen = \"0.0.0.0:9090\"\ntoken_file = \"status-token\"",
    );
    wd.write("status-token", "from-a-file\n");
    wd.write("dropfolder.toml", env.config_text_with(&with_token, ""));
    let check = wd.run(&["check", "--offline"]);
    assert_eq!(check.code, Some(0), "{check:?}");
}

/// `check` says who each S3 integration acts as: for a role, the assumed-role session
/// (STS GetCallerIdentity with the integration's own credentials), not the operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_shows_the_identity_a_role_integration_acts_as() {
    let Some(endpoint) = localstack::endpoint() else {
        return;
    };
    let ls = localstack::LocalStack::connect(endpoint).await;
    let bucket = ls.bucket().await;
    let role = ls.role(&bucket, "SUB-123").await;
    let role_name = role.rsplit('/').next().unwrap_or_default().to_string();
    let wd = Workdir::new();
    let config = format!(
        "[state]\nurl = \"sqlite://dropfolder.db\"\n\n{SCHEMA}{}",
        s3_integration(
            "acme-role",
            &format!("{bucket}/px"),
            &format!("role_arn = \"{role}\"\nexternal_id = \"SUB-123\"")
        )
        .replace("http://127.0.0.1:9", &ls.endpoint),
    );
    wd.write("dropfolder.toml", config);
    let check = wd.run_env(
        &["check"],
        &[
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    assert_eq!(check.code, Some(0), "{check:?}");
    let line = check
        .stdout
        .lines()
        .find(|l| l.starts_with("acme-role: ok"))
        .unwrap_or_else(|| panic!("{check:?}"));
    assert!(
        line.contains(&format!(
            " as arn:aws:sts::000000000000:assumed-role/{role_name}/dropfolder-acme-role:"
        )),
        "{line}"
    );
    assert!(!check.stdout.contains("SUB-123"), "{check:?}");
}
