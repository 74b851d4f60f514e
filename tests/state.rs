//! The state conformance suite on SQLite and on PostgreSQL: the same contract for both
//! stores (leases, journal, callback outbox), with the clock passed in so that expiry and
//! retry times are tested without sleeping, and corrupt rows written into the database
//! directly, then read.

mod common;
#[path = "common/pg.rs"]
mod pg;
#[path = "state/suite.rs"]
mod suite;

use std::sync::Arc;

use dropfolder::state::{ManualClock, PgState, SqliteState};
use futures_util::future::BoxFuture;

use suite::Harness;

fn sqlite_exec(path: std::path::PathBuf) -> impl Fn(String) -> BoxFuture<'static, ()> {
    move |sql: String| {
        let path = path.clone();
        Box::pin(async move {
            let conn = rusqlite::Connection::open(&path).expect("open the state directly");
            conn.execute_batch(&sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        })
    }
}

#[tokio::test]
async fn sqlite_passes_the_state_suite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let harness = sqlite_harness(&dir.path().join("state.db")).await;
    suite::run(&harness).await;
}

/// SQLite keeps times as text: one that does not parse is corrupt state, not 1970.
#[tokio::test]
async fn sqlite_refuses_a_drop_whose_start_is_unreadable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let harness = sqlite_harness(&dir.path().join("state.db")).await;
    suite::corrupt_drop_is_an_error(&harness, "started_at = 'the day before yesterday'").await;
}

/// The page's last drops: a report time that does not parse is corrupt state, not 1970.
#[tokio::test]
async fn sqlite_refuses_a_report_time_that_is_unreadable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let harness = sqlite_harness(&dir.path().join("state.db")).await;
    suite::corrupt_report_time_is_an_error(&harness, "last tuesday").await;
}

#[tokio::test]
async fn postgres_passes_the_state_suite() {
    let Some(cluster) = pg::cluster() else { return };
    let url = cluster.fresh_database().await;
    let pool = cluster
        .pool(&url, dropfolder::state::postgres::MIGRATIONS)
        .await;
    let client = Arc::new(cluster.client(&url).await);
    let clock = ManualClock::new(chrono::Utc::now());
    let harness = Harness {
        state: Arc::new(PgState::new(pool, &url).with_clock(Arc::new(clock.clone()))),
        clock,
        exec: Box::new(move |sql: String| {
            let client = client.clone();
            Box::pin(async move {
                client
                    .batch_execute(&sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            })
        }),
    };
    suite::run(&harness).await;
}

async fn sqlite_harness(path: &std::path::Path) -> Harness {
    let clock = ManualClock::new(chrono::Utc::now());
    let state = SqliteState::open(path).await.expect("open state");
    Harness {
        state: Arc::new(state.with_clock(Arc::new(clock.clone()))),
        clock,
        exec: Box::new(sqlite_exec(path.to_path_buf())),
    }
}

/// A last scan or data time that does not parse is corrupt state, not "never".
#[tokio::test]
async fn sqlite_refuses_an_integration_whose_times_are_unreadable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let harness = sqlite_harness(&dir.path().join("state.db")).await;
    suite::corrupt_status_is_an_error(&harness, "last_scan_at = 'soon'").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let harness = sqlite_harness(&dir.path().join("state.db")).await;
    suite::corrupt_status_is_an_error(&harness, "last_data_at = 'yesterday'").await;
}

/// A ledger entry whose time does not parse is an error naming the file, not an import
/// of 1970 (which would report the file as imported long ago).
#[tokio::test]
async fn sqlite_refuses_a_ledger_entry_whose_time_is_unreadable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let harness = sqlite_harness(&dir.path().join("state.db")).await;
    suite::corrupt_ledger_entry_is_an_error(&harness, "applied_at = 'a while ago'").await;
}
