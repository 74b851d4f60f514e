use super::*;

const MINIMAL: &str = r#"
[schemas.users]
id = "string"
email = "string"
signUpDate = "date"

[[integrations]]
name = "acme-users"
entity = "user"
schema = "users"
bucket = "file://drop/acme"
"#;

fn parse(text: &str) -> Config {
    Config::parse(text, PathBuf::from("/etc/dropfolder")).expect("config parses")
}

fn problems(text: &str) -> Vec<String> {
    parse(text)
        .check(SecretCheck::Skip)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn the_defaults_of_a_minimal_file() {
    let config = parse(MINIMAL);
    assert!(config.check(SecretCheck::Skip).is_empty());
    let integration = &config.integrations[0];
    assert_eq!(integration.max_rows, 350_000);
    assert_eq!(integration.date_format, "yyyy-MM-dd'T'HH:mm:ssX");
    assert!(integration.csv.header);
    assert_eq!(integration.csv.delimiter, ',');
    assert_eq!(config.state.url, "sqlite://dropfolder.db");
    let settings = config.compile(SecretCheck::Skip).expect("compiles");
    assert!(matches!(
        settings.sink,
        crate::sink::SinkSettings::Sqlite(path) if path == std::path::Path::new("/etc/dropfolder/dropfolder.db")
    ));
    assert!(matches!(
        settings.schedule.schedule,
        crate::schedule::Schedule::Every(every) if every == std::time::Duration::from_secs(900)
    ));
    assert_eq!(
        integration.location(&config.base_dir),
        Ok(StoreLocation::Local(PathBuf::from(
            "/etc/dropfolder/drop/acme"
        )))
    );
}

#[test]
fn the_whole_spec_example_parses_and_checks() {
    let text = include_str!("../../tests/data/spec-example.toml");
    let config = parse(text);
    assert_eq!(config.check(SecretCheck::Skip), Vec::<Problem>::new());
    assert_eq!(
        config.integrations[0].location(Path::new("")),
        Ok(StoreLocation::S3 {
            bucket: "acme-exports".into(),
            prefix: "px".into()
        })
    );
}

#[test]
fn an_unknown_key_is_an_error_that_names_it() {
    let text = MINIMAL.replace("schema = \"users\"", "schema = \"users\"\nmax_row = 5");
    let error = Config::parse(&text, PathBuf::new()).expect_err("typo must fail");
    assert!(error.contains("max_row"), "{error}");
    let text = format!("{MINIMAL}\n[sink]\nurl = \"sqlite://x.db\"\nbatch = 3\n");
    let error = Config::parse(&text, PathBuf::new()).expect_err("typo must fail");
    assert!(error.contains("batch"), "{error}");
}

#[test]
fn every_problem_is_reported_at_once_with_its_place() {
    let text = MINIMAL
        .replace("schema = \"users\"", "schema = \"userz\"\ndate_format = \"yyyy-mm-dd\"\nmax_rows = 0\nproduct_key = \"AP-1\"\nproduct_key_column = \"pk\"")
        + "\n[schedule]\nevery = \"soon\"\n";
    let found = problems(&text);
    let expect = [
        "integration 'acme-users': schema: no [schemas.userz]",
        "integration 'acme-users': date_format: 'yyyy-mm-dd': 'mm' is minutes",
        "integration 'acme-users': max_rows: must be at least 1",
        "integration 'acme-users': product_key: set product_key or product_key_column",
        "[schedule] every: 'soon' is not a duration",
    ];
    for e in expect {
        assert!(
            found.iter().any(|p| p.starts_with(e)),
            "missing {e:?} in {found:#?}"
        );
    }
    assert_eq!(found.len(), expect.len(), "{found:#?}");
}

#[test]
fn secrets_are_named_never_written() {
    let text = MINIMAL.replace(
        "bucket = \"file://drop/acme\"",
        "bucket = \"acme-bucket\"\nuse_operator_identity = true\ncallback = { url = \"https://example.com/cb\", api_key = \"hunter2\" }",
    );
    let error = Config::parse(&text, PathBuf::new()).expect_err("inline secret must fail");
    assert!(error.contains("api_key"), "{error}");

    let text = MINIMAL.replace(
        "bucket = \"file://drop/acme\"",
        "bucket = \"acme-bucket\"\nuse_operator_identity = true\ncallback = { url = \"https://example.com/cb\", api_key_env = \"DROPFOLDER_TEST_UNSET_KEY\" }",
    );
    let config = parse(&text);
    assert!(config.check(SecretCheck::Skip).is_empty());
    let found: Vec<String> = config
        .check(SecretCheck::Require)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        [
            "integration 'acme-users': callback.api_key_env: environment variable DROPFOLDER_TEST_UNSET_KEY is not set or empty"
        ]
    );
}

#[test]
fn access_settings_must_agree() {
    let text = MINIMAL.replace(
        "bucket = \"file://drop/acme\"",
        "bucket = \"acme-bucket\"\nrole_arn = \"arn:aws:iam::12:role/x\"\naccess_key_id_env = \"K\"\nexternal_id = \"SUB-1\"",
    );
    let found = problems(&text);
    assert!(
        found
            .iter()
            .any(|p| p.contains("role_arn: 'arn:aws:iam::12:role/x' is not an IAM role ARN")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("use role_arn or static access keys")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("both access_key_id_env and secret_access_key_env")),
        "{found:#?}"
    );
}

#[test]
fn files_without_a_header_name_their_columns() {
    let text = MINIMAL.replace(
        "schema = \"users\"",
        "schema = \"users\"\ncsv = { header = false }",
    );
    assert!(
        problems(&text)
            .iter()
            .any(|p| p.contains("csv.columns: files without a header"))
    );
    let text = MINIMAL.replace(
        "schema = \"users\"",
        "schema = \"users\"\ncsv = { header = false, columns = [\"id\", \"mail\"], delimiter = \";\" }",
    );
    let found = problems(&text);
    assert_eq!(
        found,
        ["integration 'acme-users': csv.columns: 'mail' is not an attribute of the schema"]
    );
}

#[test]
fn http_sink_options_are_bounded() {
    let text = format!(
        "{MINIMAL}\n[sink]\nkind = \"http\"\nurl = \"https://t.example.com/stream/v0/data/is-1\"\nretry_count = 9\ntimeout_seconds = 0\nauth = {{ type = \"bearer\", token_env = \"T\" }}\n"
    );
    let found = problems(&text);
    assert!(
        found
            .iter()
            .any(|p| p == "[sink] retry_count: must be 1 to 6"),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p == "[sink] timeout_seconds: must be 1 to 180"),
        "{found:#?}"
    );
}

#[test]
fn cron_schedules_and_time_zones_are_checked() {
    let text =
        format!("{MINIMAL}\n[schedule]\ncron = \"*/15 * * * *\"\ntimezone = \"Europe/Berlin\"\n");
    assert!(problems(&text).is_empty());
    let text =
        format!("{MINIMAL}\n[schedule]\ncron = \"61 * * * *\"\ntimezone = \"Mars/Olympus\"\n");
    let found = problems(&text);
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("[schedule] cron: '61 * * * *'")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("[schedule] timezone: 'Mars/Olympus'")),
        "{found:#?}"
    );
}

#[test]
fn database_passwords_never_appear_in_messages() {
    let text = format!("{MINIMAL}\n[state]\nurl = \"mysql://admin:hunter2@db/x\"\n");
    let found = problems(&text);
    assert!(
        found.iter().any(|p| p.contains("'mysql://admin:***@db/x'")),
        "{found:#?}"
    );
    assert!(!found.iter().any(|p| p.contains("hunter2")), "{found:#?}");
}

#[test]
fn database_passwords_named_in_the_file_must_be_set() {
    let text = format!(
        "{MINIMAL}\n[state]\nurl = \"postgres://dropfolder@db/x\"\npassword_env = \"DROPFOLDER_TEST_UNSET_PASSWORD\"\n"
    );
    assert!(problems(&text).is_empty());
    let found: Vec<String> = parse(&text)
        .check(SecretCheck::Require)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        [
            "[state] password_env: environment variable DROPFOLDER_TEST_UNSET_PASSWORD is not set or empty"
        ]
    );
}

/// `MINIMAL` with its integration on S3 at `bucket`, reached as `access` says.
fn on_s3(bucket: &str, access: &str) -> String {
    MINIMAL.replace(
        "bucket = \"file://drop/acme\"",
        &format!("bucket = \"{bucket}\"\n{access}"),
    )
}

#[test]
fn an_s3_integration_names_exactly_one_identity() {
    let found = problems(&on_s3("acme-bucket", ""));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with(
            "integration 'acme-users': role_arn: an S3 integration names how it gets in"
        ),
        "{found:#?}"
    );
    let role = "role_arn = \"arn:aws:iam::123456789012:role/x\"";
    let found = problems(&on_s3("acme-bucket", role));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with(
            "integration 'acme-users': external_id: a role_arn needs the customer's external_id"
        ),
        "{found:#?}"
    );
    for fine in [
        format!("{role}\nexternal_id = \"SUB-1\""),
        format!("{role}\nexternal_id_env = \"SUB_ID\""),
        "access_key_id_env = \"K\"\nsecret_access_key_env = \"S\"".to_string(),
        "use_operator_identity = true".to_string(),
    ] {
        assert_eq!(
            problems(&on_s3("acme-bucket", &fine)),
            Vec::<String>::new(),
            "{fine}"
        );
    }
    let found = problems(&on_s3(
        "acme-bucket",
        &format!("{role}\nexternal_id = \"SUB-1\"\nuse_operator_identity = true"),
    ));
    assert!(
        found.iter().any(|p| p.starts_with(
            "integration 'acme-users': use_operator_identity: the operator's identity is one way in"
        )),
        "{found:#?}"
    );
    // A local folder needs no identity, even when its path is wrong, and takes none.
    assert_eq!(
        problems(&MINIMAL.replace("file://drop/acme", "file://")),
        ["integration 'acme-users': bucket: a local folder needs a path: file:///srv/drop/acme"]
    );
    let found = problems(&MINIMAL.replace(
        "bucket = \"file://drop/acme\"",
        "bucket = \"file://drop/acme\"\nuse_operator_identity = true",
    ));
    assert!(
        found
            .iter()
            .any(|p| p.contains("a local folder takes no role_arn")),
        "{found:#?}"
    );
}

/// Two S3 integrations named `a` and `b` on `root_a` and `root_b` (`bucket` values, or
/// `bucket` plus more lines).
fn two_on_s3(root_a: &str, root_b: &str) -> Vec<String> {
    let text = format!(
        "{}\n[[integrations]]\nname = \"b\"\nentity = \"user\"\nschema = \"users\"\nbucket = \"{root_b}\"\nuse_operator_identity = true\n",
        on_s3(root_a, "use_operator_identity = true").replace("acme-users", "a")
    );
    problems(&text)
}

#[test]
fn overlapping_s3_roots_are_refused_on_path_boundaries() {
    for (a, b) in [
        ("acme/px", "acme/px"),
        ("acme/px", "s3://acme/px/"),
        ("acme", "acme/px"),
        ("acme/px/eu", "acme/px"),
        ("acme/px", "acme/px/eu/de"),
    ] {
        let found = two_on_s3(a, b);
        assert_eq!(found.len(), 1, "{a} and {b}: {found:#?}");
        assert!(
            found[0].starts_with("integration 'b': bucket: ")
                && found[0].contains("integration 'a'"),
            "{a} and {b}: {found:#?}"
        );
    }
    for (a, b) in [
        ("acme/px", "acme/px2"),
        ("acme/px2", "acme/px"),
        ("acme", "acme2/px"),
        ("acme/px/eu", "acme/px/us"),
        // Another S3 service entirely.
        ("acme/px", "acme/px\"\nendpoint = \"http://127.0.0.1:4566"),
    ] {
        assert_eq!(two_on_s3(a, b), Vec::<String>::new(), "{a} and {b}");
    }
}

#[test]
fn the_status_endpoint_is_loopback_by_default_and_needs_a_token_beyond() {
    let config = parse(MINIMAL);
    assert_eq!(config.server.listen, "127.0.0.1:9090");
    assert!(config.server.token(&config.base_dir).is_none());
    let server = |lines: &str| problems(&format!("{MINIMAL}\n[server]\n{lines}\n"));
    assert_eq!(server("listen = \"[::1]:9090\""), Vec::<String>::new());
    let found = server("listen = \"0.0.0.0:9090\"");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("[server] listen: '0.0.0.0:9090' is reachable from other hosts"),
        "{found:#?}"
    );
    assert_eq!(
        server("listen = \"0.0.0.0:9090\"\ntoken_env = \"STATUS_TOKEN\""),
        Vec::<String>::new()
    );
    assert_eq!(
        server("token_env = \"A\"\ntoken_file = \"b\""),
        ["[server] token_env: set token_env or token_file, not both"]
    );
    let text = format!("{MINIMAL}\n[server]\ntoken_env = \"DROPFOLDER_TEST_UNSET_TOKEN\"\n");
    let found: Vec<String> = parse(&text)
        .check(SecretCheck::Require)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        [
            "[server] token_env: environment variable DROPFOLDER_TEST_UNSET_TOKEN is not set or empty"
        ]
    );
}

#[test]
fn an_integration_says_where_its_records_come_from() {
    let found = problems(&MINIMAL.replace("bucket = \"file://drop/acme\"", ""));
    assert_eq!(
        found,
        [
            "integration 'acme-users': bucket: say where its records come from: bucket = \"s3://BUCKET/PREFIX\" or \"file:///srv/drop/NAME\", push = { token_env = \"VAR\" }, or an [integrations.poll] table"
        ]
    );
}

#[test]
fn a_poll_integration_has_no_bucket_and_its_problems_are_reported_with_the_others() {
    let both = problems(&format!(
        "{MINIMAL}\n[integrations.poll]\napi_endpoint = \"https://api.vendor.example/v1\"\nresponse = {{ format = \"csv\" }}\n"
    ));
    assert_eq!(
        both,
        [
            "integration 'acme-users': poll: an integration has one way in; this one names bucket and poll"
        ]
    );
    let text = MINIMAL.replace("bucket = \"file://drop/acme\"", "")
        + "\n[integrations.poll]\napi_endpoint = \"http://10.1.2.3/v1\"\nquery_window_minutes = 0\nresponse = { format = \"csv\" }\n";
    assert_eq!(
        problems(&text),
        [
            "integration 'acme-users': poll.api_endpoint: 10.1.2.3 is a private address: outbound requests do not go there unless [outbound] allow_networks lists it",
            "integration 'acme-users': poll.query_window_minutes: must be at least 1",
        ]
    );
}
