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
    assert_eq!(config.effective_sink().kind(), Some(SinkKind::Sqlite));
    assert_eq!(
        config.schedule.interval(),
        Some(std::time::Duration::from_secs(900))
    );
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
        "bucket = \"acme-bucket\"\ncallback = { url = \"https://example.com/cb\", api_key = \"hunter2\" }",
    );
    let error = Config::parse(&text, PathBuf::new()).expect_err("inline secret must fail");
    assert!(error.contains("api_key"), "{error}");

    let text = MINIMAL.replace(
        "bucket = \"file://drop/acme\"",
        "bucket = \"acme-bucket\"\ncallback = { url = \"https://example.com/cb\", api_key_env = \"DROPFOLDER_TEST_UNSET_KEY\" }",
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
