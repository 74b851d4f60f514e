//! `dropfolder validate` and `dropfolder check --offline` as a user runs them.

mod common;
#[path = "common/workdir.rs"]
mod workdir;

use common::gzip;
use workdir::Workdir;

const CONFIG: &str = r#"
[schemas.users]
id = "string"
email = "string"
signUpDate = "date"

[[integrations]]
name = "acme-users"
entity = "user"
schema = "users"
bucket = "file://drop/acme"
date_format = "yyyy-MM-dd"
callback = { url = "https://example.com/cb", api_key_env = "DROPFOLDER_TEST_CB_KEY" }
"#;

fn setup() -> Workdir {
    let wd = Workdir::new();
    wd.write("dropfolder.toml", CONFIG);
    wd.write(
        "good.csv.gz",
        gzip(b"id,email,signUpDate\nu1,a@x.com,2021-02-28\nu2,b@x.com,\n"),
    );
    wd.write("bad.csv.gz", gzip(b"id,emial,flantana_carteret\nu1,a,b\n"));
    wd
}

#[test]
fn a_valid_file_prints_success_and_exits_0() {
    let wd = setup();
    let run = wd.run(&["validate", "good.csv.gz"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, "SUCCESS\n2 records were uploaded\n", "{run:?}");
    assert!(
        run.stderr.contains("validated"),
        "progress is logged: {run:?}"
    );
}

#[test]
fn an_invalid_file_prints_the_errors_and_exits_1() {
    let wd = setup();
    let run = wd.run(&["validate", "--integration", "acme-users", "bad.csv.gz"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(
        run.stdout,
        "ERROR\nbad.csv.gz: Parsing Errors:[ Unknown Column: 'emial' (did you mean 'email'?), Unknown Column: 'flantana_carteret' ]\n",
        "{run:?}"
    );
}

#[test]
fn several_files_print_each_then_the_folder() {
    let wd = setup();
    let run = wd.run(&["validate", "good.csv.gz", "bad.csv.gz"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let expected = "==> good.csv.gz <==\nSUCCESS\n2 records were uploaded\n\n\
        ==> bad.csv.gz <==\nERROR\nbad.csv.gz: Parsing Errors:[ Unknown Column: 'emial' (did you mean 'email'?), Unknown Column: 'flantana_carteret' ]\n\n\
        ==> all 2 files, as one folder <==\nERROR\ngood.csv.gz: 2 records were uploaded\n\
        bad.csv.gz: Parsing Errors:[ Unknown Column: 'emial' (did you mean 'email'?), Unknown Column: 'flantana_carteret' ]\n";
    assert_eq!(run.stdout, expected, "{run:?}");
}

#[test]
fn standard_input_is_read_with_a_dash() {
    let wd = setup();
    let run = wd.run_with_stdin(&["validate", "-"], &gzip(b"id\nu1\nu2\nu3\n"));
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, "SUCCESS\n3 records were uploaded\n");
}

#[test]
fn usage_and_config_errors_exit_2() {
    let wd = setup();
    let run = wd.run(&["validate", "missing.csv.gz"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("missing.csv.gz is not a readable file"),
        "{run:?}"
    );

    let run = wd.run(&["validate", "--integration", "nope", "good.csv.gz"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr
            .contains("no integration named 'nope' (it has: acme-users)"),
        "{run:?}"
    );

    let run = wd.run(&["validate"]);
    assert_eq!(run.code, Some(2), "clap usage error: {run:?}");

    wd.write("typo.toml", CONFIG.replace("date_format", "date_fromat"));
    let run = wd.run(&["--config", "typo.toml", "validate", "good.csv.gz"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains(
            "unknown key 'date_fromat' in integration 'acme-users': did you mean 'date_format'?"
        ),
        "{run:?}"
    );

    wd.write("minutes.toml", CONFIG.replace("yyyy-MM-dd", "yyyy-mm-dd"));
    let run = wd.run(&["--config", "minutes.toml", "validate", "good.csv.gz"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("integration 'acme-users': date_format: 'yyyy-mm-dd': 'mm' is minutes, and there is no hour: the month is 'MM'"),
        "{run:?}"
    );
}

#[test]
fn check_offline_needs_the_named_secrets() {
    let wd = setup();
    let run = wd.run(&["check", "--offline"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("integration 'acme-users': callback.api_key_env: environment variable DROPFOLDER_TEST_CB_KEY is not set or empty"),
        "{run:?}"
    );
    let run = wd.run_env(
        &["check", "--offline"],
        &[("DROPFOLDER_TEST_CB_KEY", "s3cr3t-value")],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("acme-users: ok"), "{run:?}");
    assert!(!run.stdout.contains("s3cr3t-value") && !run.stderr.contains("s3cr3t-value"));
}

#[test]
fn date_pattern_mistakes_are_refused_or_noted_by_check() {
    let wd = setup();
    // A field named twice stored 2021-07-25T13:00:00Z for 2021-06-25 13:07 on main.
    wd.write(
        "twice.toml",
        CONFIG.replace("yyyy-MM-dd", "yyyy-MM-dd HH:MM"),
    );
    let run = wd.run(&["--config", "twice.toml", "validate", "good.csv.gz"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr
            .contains("date_format: 'yyyy-MM-dd HH:MM': names the month twice: minutes are 'mm'"),
        "{run:?}"
    );
    // Letters Java misreads are read as meant, and check says how.
    wd.write(
        "java.toml",
        CONFIG.replace("yyyy-MM-dd", "YYYY-MM-DD hh:mm"),
    );
    let key = [("DROPFOLDER_TEST_CB_KEY", "k")];
    let run = wd.run_env(&["--config", "java.toml", "check", "--offline"], &key);
    assert_eq!(run.code, Some(0), "{run:?}");
    for note in [
        "acme-users: note: date_format 'YYYY-MM-DD hh:mm': 'YYYY' is read as the calendar year",
        "acme-users: note: date_format 'YYYY-MM-DD hh:mm': 'DD' is read as the day of the month",
        "acme-users: note: date_format 'YYYY-MM-DD hh:mm': 'hh' without 'a' is read as the hour 0-23",
    ] {
        assert!(run.stdout.contains(note), "{note}: {run:?}");
    }
    let run = wd.run_env(&["check", "--offline"], &key);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!run.stdout.contains("note:"), "{run:?}");
}

#[test]
fn suggest_prints_the_dialect_and_date_format_that_read_a_file() {
    let wd = Workdir::new();
    wd.write(
        "export.csv.gz",
        gzip(b"id;signUpDate;score\nu1;06/25/2021;12\nu2;1/5/2021 ;7\nu3;;1\n"),
    );
    // No config is needed.
    let run = wd.run(&["validate", "--suggest", "export.csv.gz"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stdout,
        "# export.csv.gz: 4 records read\n\
         csv = { delimiter = \";\", header = true }\n\
         # column 'signUpDate': MM/dd/yyyy\n\
         date_format = \"MM/dd/yyyy\"\n",
        "{run:?}"
    );
}

#[test]
fn a_failing_date_column_says_what_its_values_look_like() {
    let wd = setup();
    wd.write(
        "us.csv.gz",
        gzip(b"id,email,signUpDate\nu1,a@x.com,06/25/2021\nu2,b@x.com,1/5/2021\n"),
    );
    let run = wd.run(&["validate", "us.csv.gz"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout.contains(
            "line 2, column 'signUpDate': '06/25/2021' is not a date in format yyyy-MM-dd; \
             the values in this column look like MM/dd/yyyy"
        ),
        "{run:?}"
    );
    // The hint is said once, on the column's first error.
    assert_eq!(run.stdout.matches("look like").count(), 1, "{run:?}");
}

#[test]
fn a_backslash_escaped_quote_is_an_error_that_names_the_fix() {
    let wd = setup();
    wd.write(
        "spark.csv.gz",
        gzip(b"id,email\nu1,\"The \\\"Best\\\" Shop\"\nu2,\"x\"\n"),
    );
    let run = wd.run(&["validate", "spark.csv.gz"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(
        run.stdout,
        "ERROR\nspark.csv.gz: line 2, column 'email': text after the closing quote; if the file escapes quotes with a backslash, set csv.escape = \"\\\\\"\n",
        "{run:?}"
    );
}
