//! The status rules of source document 000, end to end through `dropfolder run` and
//! `dropfolder status --json`: expired credentials are Failed, and an integration that has
//! never received data turns Warning once `stale_after` has passed since it was first seen;
//! and the state's history of recent drops that the status page shows (SQLite, PostgreSQL).

mod common;
#[path = "common/drops.rs"]
mod drops;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/workdir.rs"]
mod workdir;

use dropfolder::state::{DropResult, JournaledDrop, PgState, SqliteState, Stage, StateStore};
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

/// Three drops of one integration and one of another, reported in order: the newest two of
/// each come back, newest first, with their records and `status.txt` text.
async fn recent_drops_are_the_newest_per_integration(state: &dyn StateStore) {
    let started_at = chrono::Utc::now();
    let report = |integration: &str, day: u32, records: u64| {
        let drop = JournaledDrop {
            integration: integration.to_string(),
            folder: format!("current/dt=202103{day:02}/"),
            target: format!("processed/202103{day:02}/"),
            manifest: vec![],
            stage: Stage::Loading,
            started_at,
            lease: None,
        };
        let result = DropResult {
            success: records > 0,
            records,
            message: format!("{records} records"),
        };
        async move {
            state.begin_drop(&drop).await.expect("begin");
            state
                .report_drop(&drop, &result, None)
                .await
                .expect("report");
            // Reported times are stored to the microsecond at least: keep them apart.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    report("a", 1, 1).await;
    report("a", 2, 0).await;
    report("b", 1, 7).await;
    report("a", 3, 3).await;
    let drops = state.recent_drops(2).await.expect("recent drops");
    let seen: Vec<(&str, &str, bool, u64, &str)> = drops
        .iter()
        .map(|d| {
            (
                d.integration.as_str(),
                d.target.as_str(),
                d.success,
                d.records,
                d.message.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("a", "processed/20210303/", true, 3, "3 records"),
            ("a", "processed/20210302/", false, 0, "0 records"),
            ("b", "processed/20210301/", true, 7, "7 records"),
        ]
    );
    assert!(drops.iter().all(|d| d.reported_at >= started_at));
}

#[tokio::test]
async fn recent_drops_in_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = SqliteState::open(&dir.path().join("state.db"))
        .await
        .expect("open");
    recent_drops_are_the_newest_per_integration(&state).await;
}

#[tokio::test]
async fn recent_drops_in_postgres() {
    let Some(cluster) = pg::cluster() else { return };
    let url = cluster.fresh_database().await;
    let password = dropfolder::config::SecretRef::Env("DATABASE_PASSWORD".into());
    let pool = dropfolder::postgres::connect(
        &url,
        Some(&password),
        2,
        dropfolder::state::postgres::MIGRATIONS,
    )
    .await
    .expect("connect");
    recent_drops_are_the_newest_per_integration(&PgState::new(pool, &url)).await;
}
