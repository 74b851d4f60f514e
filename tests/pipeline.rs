//! The whole pipeline on the embedded default: a local folder as the bucket, SQLite as state
//! and sink, driven through the worker as `dropfolder run` drives it.

mod common;
#[path = "common/customer.rs"]
mod customer;
#[path = "common/drops.rs"]
mod drops;

use std::sync::Arc;

use dropfolder::worker::{RunReport, Worker};
use drops::{Env, HEADER};
use serde_json::json;

async fn run(env: &Env, extra: &str) -> RunReport {
    let worker = Worker::open(
        env.config(extra)
            .compile(dropfolder::config::SecretCheck::Require)
            .expect("config compiles"),
    )
    .await
    .expect("worker opens");
    worker.run_once().await
}

#[tokio::test]
async fn a_valid_drop_is_loaded_and_moved() {
    let env = Env::new();
    env.csv(
        "20210228",
        "users.csv.gz",
        &format!("{HEADER}u1,a@x.com,2021-02-28,1.5,true\nu2,b@x.com,,,\n"),
    );
    env.success("20210228");
    let original = std::fs::read(env.path("current/dt=20210228/users.csv.gz")).expect("read");
    let report = run(&env, "").await;
    assert!(!report.failed(), "{report:?}");
    assert_eq!(
        env.keys(),
        [
            "processed/20210228/_SUCCESS",
            "processed/20210228/status.json",
            "processed/20210228/status.txt",
            "processed/20210228/users.csv.gz",
        ]
    );
    assert_eq!(
        env.read("processed/20210228/status.txt"),
        "SUCCESS\n2 records were uploaded\n"
    );
    assert_eq!(
        std::fs::read(env.path("processed/20210228/users.csv.gz")).expect("read"),
        original
    );
    let status: serde_json::Value =
        serde_json::from_str(&env.read("processed/20210228/status.json")).expect("json");
    assert_eq!(status["success"], true);
    assert_eq!(status["files"][0]["file"], "users.csv.gz");
    assert_eq!(status["files"][0]["verdict"], "imported");
    assert_eq!(status["files"][0]["records"], 2);
    assert!(
        status["folder_path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/bucket/processed/20210228")),
        "{status}"
    );
    let records = env.records();
    assert_eq!(
        records["/u1"],
        json!({"email": "a@x.com", "signUpDate": "2021-02-28T00:00:00Z", "score": 1.5, "isTrial": true})
    );
    assert_eq!(env.ledger(), ["current/dt=20210228/users.csv.gz 2"]);
}

#[tokio::test]
async fn an_invalid_drop_loads_nothing_but_still_moves_and_says_why() {
    let env = Env::new();
    env.csv(
        "20210228",
        "users.csv.gz",
        &format!("{HEADER}u1,a@x.com,2021-02-30,,\nu2,b@x.com,,,\n"),
    );
    env.success("20210228");
    let report = run(&env, "").await;
    assert!(!report.failed(), "customer errors are results: {report:?}");
    assert!(env.records().is_empty());
    assert!(env.ledger().is_empty());
    assert_eq!(
        env.read("processed/20210228/status.txt"),
        "ERROR\nusers.csv.gz: line 2, column 'signUpDate': '2021-02-30' is not a date in format yyyy-MM-dd\n"
    );
    assert_eq!(
        env.read("processed/20210228/users.errors.csv"),
        "file,line,column,value,message\nusers.csv.gz,2,signUpDate,2021-02-30,is not a date in format yyyy-MM-dd\n"
    );
    assert!(env.exists("processed/20210228/users.csv.gz"));
    assert!(!env.exists("current/dt=20210228"));
}

#[tokio::test]
async fn unready_and_odd_folders_are_left_alone_and_reported() {
    let env = Env::new();
    env.csv("20210228", "users.csv.gz", &format!("{HEADER}u1,,,,\n"));
    env.csv("20210230", "users.csv.gz", &format!("{HEADER}u1,,,,\n"));
    env.success("20210230");
    env.put("current/backup/users.csv.gz", b"x");
    env.put("current/stray.csv.gz", b"x");
    let before = env.keys();
    let report = run(&env, "").await;
    assert!(!report.failed(), "{report:?}");
    assert_eq!(env.keys(), before, "nothing moved or deleted");
    let notices = &report.integrations[0].notices;
    assert_eq!(
        notices,
        &[
            "current/stray.csv.gz: not in a dt=YYYYMMDD folder; left alone",
            "current/backup/: not a dt=YYYYMMDD folder with a real date; left alone",
            "current/dt=20210230/: not a dt=YYYYMMDD folder with a real date; left alone",
        ]
    );
    assert_eq!(report.integrations[0].waiting, ["current/dt=20210228/"]);
    // The integration status remembers the notices for `dropfolder status`.
    let state = dropfolder::worker::open_state(
        &env.config("")
            .compile(dropfolder::config::SecretCheck::Require)
            .expect("config compiles"),
    )
    .await
    .expect("state");
    let known = state.integrations().await.expect("status");
    assert_eq!(&known[0].notices, notices);
}

#[tokio::test]
async fn two_files_one_bad_the_good_one_is_loaded_and_others_move_along() {
    let env = Env::new();
    env.csv(
        "20210228",
        "a-good.csv.gz",
        &format!("{HEADER}u1,a@x.com,,,\n"),
    );
    env.csv("20210228", "b-bad.csv.gz", "id,emial\nu2,b@x.com\n");
    env.put("current/dt=20210228/notes.txt", b"hello");
    env.success("20210228");
    run(&env, "").await;
    assert_eq!(
        env.read("processed/20210228/status.txt"),
        "ERROR\na-good.csv.gz: 1 record was uploaded\n\
         b-bad.csv.gz: Parsing Errors:[ Unknown Column: 'emial' (did you mean 'email'?) ]\n\
         notes.txt: not imported (only files named *.csv.gz are imported)\n"
    );
    assert_eq!(env.records().keys().collect::<Vec<_>>(), ["/u1"]);
    assert_eq!(env.read("processed/20210228/notes.txt"), "hello");
}

#[tokio::test]
async fn a_re_drop_of_a_processed_date_goes_to_a_numbered_folder() {
    let env = Env::new();
    env.csv(
        "20210228",
        "users.csv.gz",
        &format!("{HEADER}u1,first@x.com,,,\n"),
    );
    env.success("20210228");
    run(&env, "").await;
    env.csv(
        "20210228",
        "users.csv.gz",
        &format!("{HEADER}u1,second@x.com,,,\n"),
    );
    env.success("20210228");
    run(&env, "").await;
    env.csv("20210228", "users.csv.gz", "id,bogus\n1,2\n");
    env.success("20210228");
    run(&env, "").await;
    assert_eq!(
        env.read("processed/20210228/status.txt"),
        "SUCCESS\n1 record was uploaded\n"
    );
    assert_eq!(
        env.read("processed/20210228-2/status.txt"),
        "SUCCESS\n1 record was uploaded\n"
    );
    assert!(
        env.read("processed/20210228-3/status.txt")
            .starts_with("ERROR\n")
    );
    assert_eq!(env.records()["/u1"]["email"], "second@x.com");
}

#[tokio::test]
async fn attributes_merge_across_days_oldest_first() {
    let env = Env::new();
    // Both days are ready in one run: the older one must be applied first.
    env.csv(
        "20210301",
        "users.csv.gz",
        "id,email,score\nu1,new@x.com,\nu2,,5\n",
    );
    env.success("20210301");
    env.csv(
        "20210228",
        "users.csv.gz",
        &format!("{HEADER}u1,old@x.com,2021-02-28,1,false\n"),
    );
    env.success("20210228");
    run(&env, "").await;
    let records = env.records();
    assert_eq!(
        records["/u1"],
        json!({"email": "new@x.com", "signUpDate": "2021-02-28T00:00:00Z", "score": 1, "isTrial": false})
    );
    assert_eq!(records["/u2"], json!({"score": 5}));
}

#[tokio::test]
async fn product_keys_come_from_a_column() {
    let env = Env::new();
    env.csv(
        "20210228",
        "users.csv.gz",
        "id,productKey,email\nu1,AP-A-2-1,a@x.com\nu1,AP-B-2-1,b@x.com\n",
    );
    env.success("20210228");
    run(&env, "product_key_column = \"productKey\"").await;
    let records = env.records();
    assert_eq!(records["AP-A-2-1/u1"], json!({"email": "a@x.com"}));
    assert_eq!(records["AP-B-2-1/u1"], json!({"email": "b@x.com"}));
}

#[tokio::test]
async fn a_file_replaced_while_it_is_imported_is_not_lost() {
    let env = Env::new();
    env.csv(
        "20210228",
        "users.csv.gz",
        &format!("{HEADER}u1,v1@x.com,,,\n"),
    );
    env.success("20210228");
    let mut worker = Worker::open(
        env.config("")
            .compile(dropfolder::config::SecretCheck::Require)
            .expect("config compiles"),
    )
    .await
    .expect("worker");
    let customer = Arc::new(customer::ReplaceOnGet::new(
        Arc::new(dropfolder::store::LocalStore::new(env.bucket())),
        "current/dt=20210228/users.csv.gz",
        common::gzip(format!("{HEADER}u1,v2@x.com,,,\n").as_bytes()),
    ));
    worker.use_store("acme-users", customer);
    let report = worker.run_once().await;
    assert!(!report.failed(), "{report:?}");
    // Version 1 was read and loaded, but version 2 is what the bucket holds now: it stays in
    // current/ with its _SUCCESS, and the status says so.
    assert_eq!(env.records()["/u1"]["email"], "v1@x.com");
    assert!(
        env.exists("current/dt=20210228/users.csv.gz")
            && env.exists("current/dt=20210228/_SUCCESS")
    );
    let status = env.read("processed/20210228/status.txt");
    assert!(status.starts_with("SUCCESS\n1 record was uploaded\nusers.csv.gz: 1 record was uploaded\nusers.csv.gz: replaced by the customer after it was read"), "{status}");
    // The next run imports version 2 as a new drop.
    let report = run(&env, "").await;
    assert!(!report.failed(), "{report:?}");
    assert_eq!(env.records()["/u1"]["email"], "v2@x.com");
    assert_eq!(
        env.read("processed/20210228-2/status.txt"),
        "SUCCESS\n1 record was uploaded\n"
    );
    assert!(!env.exists("current/dt=20210228"));
}

/// A config over `env`'s bucket and database whose schema is `schema` (the `[schemas.s]`
/// body), with `extra` integration lines.
fn config_with_schema(env: &Env, schema: &str, extra: &str) -> dropfolder::config::Config {
    let text = format!(
        "[state]\nurl = \"sqlite://{db}\"\n\n[schemas.s]\n{schema}\n\n[[integrations]]\n\
         name = \"acme\"\nentity = \"user\"\nschema = \"s\"\nbucket = \"file://{bucket}\"\n{extra}\n",
        db = env.db().display(),
        bucket = env.bucket().display(),
    );
    let config = dropfolder::config::Config::parse(&text, env.dir.path().to_path_buf())
        .expect("config parses");
    let problems = config.check(dropfolder::config::SecretCheck::Require);
    assert!(problems.is_empty(), "{problems:?}");
    config
}

async fn run_config(config: dropfolder::config::Config) -> RunReport {
    Worker::open(
        config
            .compile(dropfolder::config::SecretCheck::Require)
            .expect("config compiles"),
    )
    .await
    .expect("worker opens")
    .run_once()
    .await
}

#[tokio::test]
async fn numeric_ids_written_differently_are_one_record() {
    let env = Env::new();
    env.csv(
        "20210228",
        "orders.csv.gz",
        "id,note,total\n42,first,1\n42.0,second,\n042,,3\n4.2e1,fourth,\n7,other,2.50\n",
    );
    env.success("20210228");
    let config = config_with_schema(
        &env,
        "id = \"number\"\nnote = \"string\"\ntotal = \"number\"",
        "",
    );
    let report = run_config(config).await;
    assert!(!report.failed(), "{report:?}");
    let records = env.records();
    assert_eq!(records.keys().collect::<Vec<_>>(), ["/42", "/7"]);
    // Later rows win, empty cells leave a value unchanged: one record, as the file meant.
    assert_eq!(records["/42"], json!({"note": "fourth", "total": 3}));
    assert_eq!(records["/7"], json!({"note": "other", "total": 2.5}));
}

/// The schema of the fixtures in tests/data/real-tools (`updated` stays a string until the
/// date pattern `yyyy-MM-dd HH:mm:ss[.SSSSSS]` can read every tool's timestamps).
const REAL_TOOLS_SCHEMA: &str =
    "name = \"string\"\nscore = \"number\"\nactive = \"boolean\"\nupdated = \"date\"";

/// The pattern that reads every timestamp pandas, DuckDB and Python's `csv` write: the
/// fraction is absent or 1 to 6 digits, in one column.
const PYTHON_TIMESTAMPS: &str = "date_format = \"yyyy-MM-dd HH:mm:ss[.SSSSSS]\"";

/// What the generator fed the tool for `updated`, as the sink stores a date: RFC 3339 UTC,
/// read here by chrono, independently of dropfolder's own date parser.
fn stored_date(written: &str) -> String {
    let utc = match chrono::DateTime::parse_from_rfc3339(written) {
        Ok(with_offset) => with_offset.with_timezone(&chrono::Utc),
        Err(_) => chrono::NaiveDateTime::parse_from_str(written, "%Y-%m-%d %H:%M:%S%.f")
            .expect("the generator's timestamp")
            .and_utc(),
    };
    utc.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Imports the fixture `name` with `id` of type `id_type` and the CSV options `csv`, and
/// checks every stored value against what the generator fed the tool.
async fn import_real_tool_file(name: &str, id_type: &str, csv: &str) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/real-tools");
    let bytes = std::fs::read(format!("{dir}/{name}.csv.gz")).expect("fixture");
    let expected: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(format!("{dir}/{name}.expected.json")).expect("expected"),
    )
    .expect("expected JSON");
    let env = Env::new();
    env.put(&format!("current/dt=20210228/{name}.csv.gz"), &bytes);
    env.success("20210228");
    let schema = format!("id = \"{id_type}\"\n{REAL_TOOLS_SCHEMA}");
    let report = run_config(config_with_schema(&env, &schema, csv)).await;
    assert!(!report.failed(), "{report:?}");
    assert_eq!(
        env.read("processed/20210228/status.txt"),
        format!("SUCCESS\n{} records were uploaded\n", expected.len()),
        "{name}"
    );
    let records = env.records();
    assert_eq!(records.len(), expected.len(), "{name}");
    for (id, attributes) in &expected {
        let mut attributes = attributes.clone();
        if let Some(serde_json::Value::String(written)) = attributes.get_mut("updated") {
            *written = stored_date(written);
        }
        assert_eq!(
            records.get(&format!("/{id}")),
            Some(&attributes),
            "{name}: record {id}"
        );
    }
}

#[tokio::test]
async fn a_spark_part_file_with_default_options_reads_exactly_with_its_escape() {
    import_real_tool_file(
        "spark-part-00000",
        "string",
        "csv = { escape = \"\\\\\" }\ndate_format = \"yyyy-MM-dd'T'HH:mm:ss.SSSXXX\"",
    )
    .await;
}

#[tokio::test]
async fn a_spark_part_file_read_as_rfc_4180_is_an_error_not_altered_names() {
    let env = Env::new();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/real-tools/spark-part-00000.csv.gz"
    );
    env.put(
        "current/dt=20210228/part-00000.csv.gz",
        &std::fs::read(fixture).expect("fixture"),
    );
    env.success("20210228");
    let schema = format!("id = \"string\"\n{REAL_TOOLS_SCHEMA}");
    let spark_dates = "date_format = \"yyyy-MM-dd'T'HH:mm:ss.SSSXXX\"";
    run_config(config_with_schema(&env, &schema, spark_dates)).await;
    assert!(env.records().is_empty(), "nothing of the file is loaded");
    let status = env.read("processed/20210228/status.txt");
    assert!(
        status.starts_with(
            "ERROR\npart-00000.csv.gz: line 2, column 'name': text after the closing quote; \
             if the file escapes quotes with a backslash, set csv.escape = \"\\\\\"\n"
        ),
        "{status}"
    );
}

#[tokio::test]
async fn a_pandas_file_with_float_ids_and_mixed_fraction_widths() {
    import_real_tool_file("pandas", "number", PYTHON_TIMESTAMPS).await;
}

#[tokio::test]
async fn a_pandas_value_with_a_bare_carriage_return_is_named() {
    let env = Env::new();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/real-tools/pandas-bare-cr.csv.gz"
    );
    env.put(
        "current/dt=20210228/users.csv.gz",
        &std::fs::read(fixture).expect("fixture"),
    );
    env.success("20210228");
    run_config(config_with_schema(
        &env,
        "id = \"string\"\nname = \"string\"",
        "",
    ))
    .await;
    assert!(env.records().is_empty());
    assert_eq!(
        env.read("processed/20210228/status.txt"),
        "ERROR\n\
         users.csv.gz: line 2: 1 fields, but the header has 2; this is the rest of a record that a bare carriage return (CR) ended early\n"
    );
}

#[tokio::test]
async fn a_duckdb_file_with_mixed_fraction_widths() {
    import_real_tool_file("duckdb", "string", PYTHON_TIMESTAMPS).await;
}

#[tokio::test]
async fn an_excel_style_file_with_a_bom_and_crlf() {
    import_real_tool_file("excel-bom-crlf", "string", PYTHON_TIMESTAMPS).await;
}

#[tokio::test]
async fn a_multi_member_gzip_file() {
    import_real_tool_file("multi-member", "string", PYTHON_TIMESTAMPS).await;
}
