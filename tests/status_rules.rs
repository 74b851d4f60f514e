//! The status rules of source document 000, end to end through `dropfolder run` and
//! `dropfolder status --json`: expired credentials are Failed, and an integration that has
//! never received data turns Warning once `stale_after` has passed since it was first seen.

mod common;
#[path = "common/drops.rs"]
mod drops;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/workdir.rs"]
mod workdir;

use drops::Env;
use workdir::Workdir;

fn status_of(wd: &Workdir) -> serde_json::Value {
    let json = wd.run(&["status", "--json"]);
    assert_eq!(json.code, Some(0), "{json:?}");
    let all: serde_json::Value = serde_json::from_str(&json.stdout).expect("status --json");
    all[0].clone()
}

#[test]
fn expired_credentials_are_failed_not_warning() {
    let env = Env::new();
    let wd = Workdir::new();
    wd.write(
        "dropfolder.toml",
        env.config_text("credentials_expire_on = \"2020-01-31\""),
    );
    let run = wd.run(&["run"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let status = status_of(&wd);
    assert_eq!(status["status"], "Failed", "{status}");
    assert_eq!(
        status["reason"], "credentials expired on 2020-01-31: rotate them",
        "{status}"
    );
    let text = wd.run(&["status"]);
    assert!(text.stdout.contains("Failed"), "{text:?}");
}

#[test]
fn no_data_since_first_seen_past_stale_after_is_warning() {
    let env = Env::new();
    first_seen_counts_toward_stale(&env, &env.config_text(""));
}

/// The same with the state in PostgreSQL (its own migration of `first_seen_at`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_since_first_seen_is_warning_with_the_state_in_postgres() {
    let Some(cluster) = pg::cluster() else { return };
    let url = cluster.fresh_database().await;
    let env = Env::new();
    let state = format!("[state]\nurl = \"{url}\"\npassword_env = \"DATABASE_PASSWORD\"");
    let config = env.config_text_with(&state, "");
    tokio::task::spawn_blocking(move || first_seen_counts_toward_stale(&env, &config))
        .await
        .expect("test body");
}

fn first_seen_counts_toward_stale(_env: &Env, config: &str) {
    let wd = Workdir::new();
    wd.write(
        "dropfolder.toml",
        format!("{config}\n[schedule]\nstale_after = \"1s\"\n"),
    );
    let run = wd.run(&["run"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let fresh = status_of(&wd);
    assert_eq!(fresh["status"], "Ready", "{fresh}");
    // Past `stale_after` (1 s) since the first scan saw it, with nothing received. A second
    // run must not move the time it was first seen.
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let run = wd.run(&["run"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let stale = status_of(&wd);
    assert_eq!(stale["status"], "Warning", "{stale}");
    let reason = stale["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("no data received since first seen at ")
            && reason.ends_with("(more than 1s)"),
        "{stale}"
    );
}
