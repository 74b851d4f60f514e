//! What the keys and bytes in a customer's folder can do: forge or block result files, names
//! and values the pipeline cannot handle, spreadsheet formulas, forged output lines.

use crate::drops;
use crate::workdir;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use dropfolder::worker::{RunReport, Worker};
use drops::{Env, HEADER};

use crate::common::{check_csv, messages, rules};

async fn run(env: &Env) -> RunReport {
    let worker = Worker::open(
        env.config("")
            .compile(dropfolder::config::SecretCheck::Require)
            .expect("config compiles"),
    )
    .await
    .expect("worker opens");
    worker.run_once().await
}

/// A valid one-row file and `_SUCCESS` for `date`.
fn valid_drop(env: &Env, date: &str) {
    env.csv(
        date,
        "users.csv.gz",
        &format!("{HEADER}u1,a@x.com,2021-02-28,1.5,true\n"),
    );
    env.success(date);
}

/// Keys under `processed/` (its date folders' contents included).
fn processed(env: &Env) -> Vec<String> {
    env.keys()
        .into_iter()
        .filter(|k| k.starts_with("processed/"))
        .collect()
}

#[tokio::test]
async fn a_150000_column_header_is_judged_once_and_its_errors_capped() {
    let env = Env::new();
    // 150,000 distinct unknown names of 4 characters: 750 kB, under max_record_bytes.
    let names: Vec<String> = (0..150_000u32)
        .map(|n| {
            let digit = |p: u32| char::from_digit(n / 36u32.pow(p) % 36, 36).unwrap_or('0');
            [digit(3), digit(2), digit(1), digit(0)].iter().collect()
        })
        .collect();
    let header = format!("id,{}\n", names.join(","));
    env.csv("20210228", "users.csv.gz", &format!("{header}u1\n"));
    env.success("20210228");
    let report = run(&env).await;
    assert!(!report.failed(), "{report:?}");
    let status = env.read("processed/20210228/status.txt");
    assert!(status.starts_with("ERROR\nusers.csv.gz: Parsing Errors:[ Unknown Column: "));
    assert!(
        status.contains("... and 149900 more ]"),
        "100 problems listed, the rest counted: {}",
        &status[status.len().saturating_sub(300)..]
    );
    assert_eq!(status.matches("Unknown Column: ").count(), 100);
    assert!(status.len() < 8_000, "status.txt is {} bytes", status.len());
    let json = env.read("processed/20210228/status.json");
    assert!(json.len() < 16_000, "status.json is {} bytes", json.len());
}

#[tokio::test]
async fn a_re_drop_carrying_the_old_status_txt_gets_its_own_result() {
    let env = Env::new();
    valid_drop(&env, "20210228");
    let old = "ERROR\nusers.csv.gz: line 2, column 'score': 'x' is not a number\n";
    env.put("current/dt=20210228/status.txt", old.as_bytes());
    let report = run(&env).await;
    assert!(!report.failed(), "{report:?}");
    let status = env.read("processed/20210228/status.txt");
    assert!(
        status.starts_with("SUCCESS\n1 record was uploaded\n"),
        "{status}"
    );
    assert!(
        status.contains("status.txt: not imported") && status.contains("customer-files/status.txt"),
        "{status}"
    );
    assert_eq!(
        env.read("processed/20210228/customer-files/status.txt"),
        old
    );
    assert!(!env.exists("current/dt=20210228"), "{:?}", env.keys());
}

#[tokio::test]
async fn a_planted_success_cannot_hide_a_real_error() {
    let env = Env::new();
    env.csv(
        "20210228",
        "users.csv.gz",
        &format!("{HEADER}u1,a@x.com,2021-02-30,1.5,true\n"),
    );
    env.success("20210228");
    let planted = "SUCCESS\n1000000 records were uploaded\n";
    env.put("current/dt=20210228/status.txt", planted.as_bytes());
    env.put("current/dt=20210228/status.json", br#"{"success":true}"#);
    env.put("current/dt=20210228/users.errors.csv", b"file,line\n");
    env.put(
        "current/dt=20210228/customer-files/status.txt",
        b"nested, and named like where a planted file goes\n",
    );
    let report = run(&env).await;
    assert!(!report.failed(), "{report:?}");
    let status = env.read("processed/20210228/status.txt");
    assert!(
        status.starts_with("ERROR\nusers.csv.gz: line 2"),
        "{status}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.read("processed/20210228/status.json")).expect("ours");
    assert_eq!(json["success"], false, "{json}");
    assert!(
        env.read("processed/20210228/users.errors.csv")
            .starts_with("file,line,column,value,message\nusers.csv.gz,2,signUpDate,")
    );
    // Every customer file is kept, each under its own name, none over another.
    assert_eq!(
        env.read("processed/20210228/customer-files/status.txt"),
        planted
    );
    assert_eq!(
        env.read("processed/20210228/customer-files/users.errors.csv"),
        "file,line\n"
    );
    assert_eq!(
        env.read("processed/20210228/customer-files/customer-files/status.txt"),
        "nested, and named like where a planted file goes\n"
    );
    assert!(!env.exists("current/dt=20210228"), "{:?}", env.keys());
}

#[tokio::test]
async fn a_data_file_name_at_the_file_system_limit_is_finished() {
    let env = Env::new();
    let name = format!("{}.csv.gz", "a".repeat(248)); // 255 bytes, the limit.
    env.csv(
        "20210228",
        &name,
        &format!("{HEADER}u1,a@x.com,2021-02-30,1.5,true\n"),
    );
    env.success("20210228");
    valid_drop(&env, "20210301");
    let report = run(&env).await;
    assert!(!report.failed(), "{report:?}");
    let status = env.read("processed/20210228/status.txt");
    assert!(status.starts_with("ERROR\naaaa"), "{status}");
    assert!(env.exists(&format!("processed/20210228/{name}")));
    let errors: Vec<String> = processed(&env)
        .into_iter()
        .filter(|k| k.ends_with(".errors.csv"))
        .collect();
    assert_eq!(errors.len(), 1, "{:?}", env.keys());
    assert!(errors[0].rsplit('/').next().is_some_and(|n| n.len() <= 255));
    assert!(
        env.read("processed/20210301/status.txt")
            .starts_with("SUCCESS")
    );
    assert!(!env.exists("current/dt=20210228"), "{:?}", env.keys());
}

#[tokio::test]
async fn a_key_with_a_backslash_is_listed_and_later_dates_go_on() {
    let env = Env::new();
    valid_drop(&env, "20210228");
    env.csv(
        "20210228",
        "a\\b.csv.gz",
        &format!("{HEADER}u2,b@x.com,,,\n"),
    );
    valid_drop(&env, "20210301");
    let report = run(&env).await;
    assert!(!report.failed(), "{report:?}");
    let status = env.read("processed/20210228/status.txt");
    assert!(
        status.starts_with("ERROR\n") && status.contains("a\\\\b.csv.gz: not imported"),
        "{status}"
    );
    assert!(
        status.contains("users.csv.gz: 1 record was uploaded"),
        "{status}"
    );
    assert!(
        env.read("processed/20210301/status.txt")
            .starts_with("SUCCESS")
    );
    // Left where it is, untouched; the folder is no longer ready, so it is not redone.
    assert!(env.exists("current/dt=20210228/a\\b.csv.gz"));
    assert!(!env.exists("current/dt=20210228/_SUCCESS"));
    let report = run(&env).await;
    assert!(!report.failed(), "{report:?}");
    assert!(!env.exists("processed/20210228-2"), "{:?}", env.keys());
}

#[tokio::test]
async fn a_nul_byte_in_a_value_is_a_located_error() {
    let (report, rows) = check_csv(
        &rules(),
        &format!("{HEADER}u1,a\0b@x.com,2021-02-28,1,true\nu\02,c@x.com,,,\n"),
    )
    .await;
    assert!(rows.is_empty(), "{rows:?}");
    let messages = messages(&report);
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0].starts_with("line 2, column 'email': 'a\\0b@x.com' contains a NUL byte"),
        "{messages:?}"
    );
    assert!(
        messages[1].starts_with("line 3, column 'id': 'u\\02' contains a NUL byte"),
        "{messages:?}"
    );
}

#[tokio::test]
async fn a_fifo_in_the_folder_does_not_hang_the_run() {
    let env = Env::new();
    valid_drop(&env, "20210228");
    let fifo = env.path("current/dt=20210228/pipe.csv.gz");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
    valid_drop(&env, "20210301");
    let report = tokio::time::timeout(Duration::from_secs(20), run(&env)).await;
    let Ok(report) = report else {
        // Release the reader stuck in open(2), so the test can end, then fail.
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo);
        panic!("the run hung on the FIFO");
    };
    assert!(!report.failed(), "{report:?}");
    let status = env.read("processed/20210228/status.txt");
    assert!(
        status.starts_with("ERROR\n") && status.contains("pipe.csv.gz: not imported"),
        "{status}"
    );
    assert!(
        env.read("processed/20210301/status.txt")
            .starts_with("SUCCESS")
    );
    assert!(fifo.exists(), "left where it is");
}

#[tokio::test]
async fn a_non_utf8_file_name_is_finished_once() {
    let env = Env::new();
    valid_drop(&env, "20210228");
    let dir = env.path("current/dt=20210228");
    std::fs::write(
        dir.join(std::ffi::OsStr::from_bytes(b"caf\xe9.csv.gz")),
        b"latin-1 name",
    )
    .expect("write");
    for _ in 0..2 {
        let report = run(&env).await;
        assert!(!report.failed(), "{report:?}");
    }
    let folders: Vec<String> = processed(&env)
        .iter()
        .filter_map(|k| k.split('/').nth(1).map(String::from))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(folders, ["20210228"], "{:?}", env.keys());
    let status = env.read("processed/20210228/status.txt");
    assert!(
        status.starts_with("ERROR\n") && status.contains("caf\u{fffd}.csv.gz: not imported"),
        "{status}"
    );
}

#[tokio::test]
async fn a_symlinked_date_folder_does_not_block_later_dates() {
    let env = Env::new();
    let elsewhere = tempfile::tempdir().expect("temp dir");
    std::fs::write(elsewhere.path().join("_SUCCESS"), b"").expect("write");
    std::fs::create_dir_all(env.path("current")).expect("dir");
    std::os::unix::fs::symlink(elsewhere.path(), env.path("current/dt=20210228")).expect("symlink");
    valid_drop(&env, "20210301");
    let report = run(&env).await;
    assert!(!report.failed(), "{report:?}");
    assert!(
        env.read("processed/20210301/status.txt")
            .starts_with("SUCCESS")
    );
    assert!(
        elsewhere.path().join("_SUCCESS").exists(),
        "nothing deleted through it"
    );
    let notices = &report.integrations[0].notices;
    assert!(
        notices.iter().any(|n| n.contains("current/dt=20210228")),
        "reported: {notices:?}"
    );
}

#[tokio::test]
async fn errors_csv_cells_that_start_a_formula_are_neutralised() {
    let env = Env::new();
    env.csv(
        "20210228",
        "-users.csv.gz",
        &format!("{HEADER}u1,a@x.com,@SUM(A1),=1+1,+true\n"),
    );
    env.success("20210228");
    let report = run(&env).await;
    assert!(!report.failed(), "{report:?}");
    let csv = env.read("processed/20210228/-users.errors.csv");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("file,line,column,value,message"));
    for line in lines {
        for cell in line.split(',') {
            let cell = cell.trim_start_matches('"');
            assert!(!cell.starts_with(['=', '+', '-', '@', '\t', '\r']), "{csv}");
        }
    }
    assert!(csv.contains("\"'=1+1\""), "{csv}");
    assert!(csv.contains("\"'-users.csv.gz\""), "{csv}");
    // status.txt shows the value as the customer wrote it, escaped as always.
    let status = env.read("processed/20210228/status.txt");
    assert!(status.contains("'=1+1' is not a number"), "{status}");
}

#[test]
fn a_key_with_a_newline_cannot_forge_a_line_of_run_or_status() {
    let env = Env::new();
    valid_drop(&env, "20210228");
    env.put("current/x\nother-tenant: FAILED: forged", b"");
    env.put("current/dt=20210301\nforged/_SUCCESS", b"");
    env.put("current/dt=20210302/y\nz.csv.gz", b"");
    let wd = workdir::Workdir::new();
    wd.write("dropfolder.toml", env.config_text(""));
    let run = wd.run(&["run"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!run.stdout.is_empty(), "{run:?}");
    for line in run.stdout.lines() {
        assert!(line.starts_with("acme-users: "), "{run:?}");
    }
    assert!(run.stdout.contains("x\\nother-tenant"), "{run:?}");
    let status = wd.run(&["status"]);
    assert_eq!(status.code, Some(0), "{status:?}");
    assert!(status.stdout.contains("x\\nother-tenant"), "{status:?}");
    for line in status.stdout.lines() {
        assert!(line.starts_with("acme-users "), "{status:?}");
    }
}

#[cfg(feature = "failpoints")]
#[test]
fn an_interrupted_copy_leaves_no_temporary_file_for_good() {
    let env = Env::new();
    valid_drop(&env, "20210228");
    let wd = workdir::Workdir::new();
    wd.write("dropfolder.toml", env.config_text(""));
    // The run dies once its target is chosen, and the copy it was making is left half done.
    let crashed = wd.run_env(&["run"], &[("FAILPOINTS", "after-begin=return")]);
    assert_ne!(crashed.code, Some(0), "{crashed:?}");
    let temp = env.path("processed/20210228/.dropfolder-tmp-interrupted");
    std::fs::create_dir_all(temp.parent().expect("parent")).expect("dir");
    std::fs::write(&temp, b"half a cop").expect("write");
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&temp)
        .and_then(|f| f.set_modified(hour_ago))
        .expect("age it");
    let resumed = wd.run(&["run"]);
    assert_eq!(resumed.code, Some(0), "{resumed:?}");
    assert!(
        env.read("processed/20210228/status.txt")
            .starts_with("SUCCESS")
    );
    let left: Vec<String> = env
        .keys()
        .into_iter()
        .filter(|k| k.contains(".dropfolder-tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn a_copied_file_keeps_the_original_permissions() {
    let env = Env::new();
    valid_drop(&env, "20210228");
    env.put("current/dt=20210228/notes.txt", b"read me");
    for (key, mode) in [
        ("current/dt=20210228/users.csv.gz", 0o644),
        ("current/dt=20210228/notes.txt", 0o640),
    ] {
        std::fs::set_permissions(env.path(key), std::fs::Permissions::from_mode(mode))
            .expect("chmod");
    }
    let report = run(&env).await;
    assert!(!report.failed(), "{report:?}");
    let mode = |key: &str| {
        std::fs::metadata(env.path(key))
            .expect("copied")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("processed/20210228/users.csv.gz"), 0o644);
    assert_eq!(mode("processed/20210228/notes.txt"), 0o640);
}
