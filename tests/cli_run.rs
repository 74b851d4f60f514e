//! `dropfolder run`, `import` and `status` as an operator runs them.

mod common;
#[path = "common/daemon.rs"]
mod daemon;
#[path = "common/drops.rs"]
mod drops;
#[path = "common/workdir.rs"]
mod workdir;

use common::gzip;
use drops::{Env, HEADER};
use workdir::Workdir;

fn setup(env: &Env, extra_config: &str) -> Workdir {
    let wd = Workdir::new();
    wd.write("dropfolder.toml", env.config_text("") + extra_config);
    wd
}

#[test]
fn run_exits_0_with_customer_errors_and_1_when_an_integration_cannot_be_scanned() {
    let env = Env::new();
    env.csv("20210228", "users.csv.gz", "id,bogus\n1,2\n");
    env.success("20210228");
    let broken = r#"
[[integrations]]
name = "gone"
entity = "account"
schema = "users"
bucket = "file:///nonexistent/dropfolder-test-bucket"
"#;
    let wd = setup(&env, "");
    let run = wd.run(&["run"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .contains("acme-users: current/dt=20210228/ -> processed/20210228/ ERROR, 0 records"),
        "{run:?}"
    );

    env.csv("20210301", "users.csv.gz", &format!("{HEADER}u1,,,,\n"));
    env.success("20210301");
    let wd = setup(&env, broken);
    let run = wd.run(&["run"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout.contains("gone: FAILED: cannot reach the bucket"),
        "{run:?}"
    );
    // The other integration was still processed.
    assert!(
        run.stdout
            .contains("acme-users: current/dt=20210301/ -> processed/20210301/ SUCCESS, 1 record"),
        "{run:?}"
    );
    assert!(run.stderr.contains("run finished"), "{run:?}");

    let status = wd.run(&["status"]);
    assert_eq!(status.code, Some(0), "{status:?}");
    let line = |name: &str| {
        status
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("acme-users").contains("Active"), "{status:?}");
    assert!(
        status
            .stdout
            .contains("last result: SUCCESS processed/20210301/"),
        "{status:?}"
    );
    assert!(
        line("gone").contains("Failed")
            && line("gone").contains("/nonexistent/dropfolder-test-bucket does not exist"),
        "{status:?}"
    );
    let json = wd.run(&["status", "--json"]);
    assert_eq!(json.code, Some(0), "{json:?}");
    let all: serde_json::Value = serde_json::from_str(&json.stdout).expect("status --json");
    assert_eq!(all[0]["integration"], "acme-users", "{all}");
    assert_eq!(all[0]["status"], "Active", "{all}");
    assert_eq!(all[1]["status"], "Failed", "{all}");
}

#[test]
fn sigterm_finishes_the_folder_in_hand_and_starts_no_other() {
    use std::io::Write;
    let env = Env::new();
    // Two dates of a 350,000-row file each: the signal comes while the first one loads.
    let mut csv = HEADER.as_bytes().to_vec();
    for i in 0..350_000 {
        let _ = writeln!(csv, "u{i},u{i}@example.com,2021-03-01,{i},true");
    }
    let big = gzip(&csv);
    for date in ["20210301", "20210302"] {
        env.put(&format!("current/dt={date}/users.csv.gz"), &big);
        env.success(date);
    }
    let wd = setup(&env, "");
    let mut run = daemon::Daemon::start(&wd.path("dropfolder.toml"), &["run"], &[]);
    run.wait_for_line("file started", std::time::Duration::from_secs(30));
    let code = run.terminate(std::time::Duration::from_secs(120));
    let (stdout, log) = (run.stdout(), run.log().join("\n"));
    assert_eq!(code, Some(0), "{stdout}\n{log}");
    assert_eq!(
        stdout,
        "acme-users: current/dt=20210301/ -> processed/20210301/ SUCCESS, 350000 records\n\
         acme-users: stopped by a signal; what is left waits for the next run\n",
        "{log}"
    );
    assert!(env.exists("processed/20210301/status.txt"));
    assert!(env.exists("current/dt=20210302/_SUCCESS"));
    assert_eq!(run.count("file started"), 1, "{log}");

    // The next run takes the rest.
    let rerun = wd.run(&["run"]);
    assert_eq!(rerun.code, Some(0), "{rerun:?}");
    assert!(
        rerun
            .stdout
            .contains("current/dt=20210302/ -> processed/20210302/ SUCCESS"),
        "{rerun:?}"
    );
}

#[test]
fn json_logs_on_request() {
    let env = Env::new();
    let wd = setup(&env, "");
    let run = wd.run(&["--log-format", "json", "run"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("run finished"))
        .expect("summary line");
    let event: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(event["integrations"], 1);
}

#[test]
fn import_loads_a_file_or_stdin_once() {
    let env = Env::new();
    let wd = setup(&env, "");
    let file = wd.write(
        "users.csv.gz",
        gzip(format!("{HEADER}u1,a@x.com,,,\nu2,b@x.com,,,\n").as_bytes()),
    );
    let file = file.to_str().expect("utf-8 path");
    let run = wd.run(&["import", "--integration", "acme-users", file]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, "SUCCESS\n2 records were uploaded\n");
    assert_eq!(env.records().len(), 2);

    let again = wd.run(&["import", file]);
    assert_eq!(again.code, Some(0), "{again:?}");
    assert!(
        again
            .stdout
            .starts_with("SUCCESS\n0 records were uploaded\nusers.csv.gz: already imported on "),
        "{again:?}"
    );

    let stdin = wd.run_with_stdin(&["import", "-"], &gzip(b"id,email\nu3,c@x.com\n"));
    assert_eq!(stdin.code, Some(0), "{stdin:?}");
    assert_eq!(env.records()["/u3"]["email"], "c@x.com");
    assert!(
        env.ledger().iter().any(|l| l == "import/stdin 1"),
        "{:?}",
        env.ledger()
    );
}

#[test]
fn import_of_a_bad_file_exits_1_and_can_list_every_error() {
    let env = Env::new();
    let wd = setup(&env, "");
    let rows: String = (0..150).map(|i| format!("u{i},,,x,\n")).collect();
    wd.write("bad.csv.gz", gzip(format!("{HEADER}{rows}").as_bytes()));
    let run = wd.run(&["import", "bad.csv.gz", "--errors-csv", "bad-errors.csv"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout.ends_with("bad.csv.gz: ... and 50 more\n"),
        "{run:?}"
    );
    let listed = std::fs::read_to_string(wd.path("bad-errors.csv")).expect("errors csv");
    assert_eq!(listed.lines().count(), 151, "header + every error");
    assert!(env.records().is_empty());
}
