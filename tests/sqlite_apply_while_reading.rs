//! The SQLite sink for local files (`dropfolder import FILE`), which applies rows while the
//! file is validated: the same sink contract as the spooling default, a file with an error
//! late in it (after batches were applied) leaves nothing, and loads still take turns.

mod common;
#[path = "sink/suite.rs"]
mod suite;

use chrono::Utc;
use dropfolder::config::Entity;
use dropfolder::ledger::{Committed, FileRef, Version};
use dropfolder::sink::{FileLoad, Sink, SqliteSink};
use dropfolder::validate::validate;
use futures_util::FutureExt;

fn read_records(path: &std::path::Path) -> suite::Stored {
    let conn = rusqlite::Connection::open(path).expect("open for reading");
    let mut stmt = conn
        .prepare("SELECT entity, product_key, id, attributes FROM records ORDER BY product_key, id")
        .expect("prepare");
    stmt.query_map([], |row| {
        let json: String = row.get(3)?;
        Ok((
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            serde_json::from_str(&json).unwrap_or_default(),
        ))
    })
    .expect("query")
    .collect::<Result<Vec<_>, _>>()
    .expect("rows")
}

fn file(key: &str) -> FileRef {
    FileRef {
        integration: "acme-users".into(),
        entity: Entity::User,
        key: key.into(),
        version: Version::ContentHash("sha256:0".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_applying_while_reading_passes_the_sink_suite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("records.db");
    let sink = SqliteSink::open(&path)
        .await
        .expect("open sink")
        .applying_while_reading();
    suite::run(&sink, || {
        let path = path.clone();
        async move { read_records(&path) }
    })
    .await;
}

/// 20,000 valid rows (several batches, already inserted in the open transaction) and then
/// a cell error: the load rolls back, and neither a row nor a ledger entry remains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_after_rows_were_applied_leaves_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("records.db");
    let sink = SqliteSink::open(&path)
        .await
        .expect("open sink")
        .applying_while_reading();
    let mut csv = String::from("id,email,score\n");
    for i in 0..20_000 {
        csv.push_str(&format!("u{i},u{i}@x.com,{i}\n"));
    }
    csv.push_str("u-bad,bad@x.com,not-a-number\n");
    let rules = common::rules_with("");
    let bad = file("import/bad.csv.gz");
    let mut load = sink.begin(&bad, Utc::now()).await.expect("begin");
    let source = std::io::Cursor::new(common::gzip(csv.as_bytes()));
    let report = validate(&rules, &bad.key, source, &mut load, None)
        .await
        .expect("validate");
    assert!(!report.is_valid(), "the last row is an error");
    // Every data row was read, so the 20,000 valid ones (more batches than the channel holds)
    // went to the writer before the error.
    assert_eq!(report.rows, 20_001);
    load.rollback().await.expect("roll back");
    assert!(read_records(&path).is_empty(), "no row of the bad file");
    assert!(sink.applied(&bad).await.expect("ledger").is_none());

    // The database is free again: the next file loads.
    let good = file("import/good.csv.gz");
    let mut load = sink.begin(&good, Utc::now()).await.expect("begin");
    let source = std::io::Cursor::new(common::gzip(b"id,email\nu1,a@x.com\n"));
    let report = validate(&rules, &good.key, source, &mut load, None)
        .await
        .expect("validate");
    assert!(report.is_valid());
    let committed = load.commit(report.rows, &good.version).await;
    assert_eq!(committed.expect("commit"), Committed::Applied);
    assert_eq!(read_records(&path).len(), 1);
}

/// A load holds the sink's turn from its start: another load begins only once it is done,
/// rather than waiting on SQLite's busy timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_load_begins_when_the_first_is_done() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("records.db");
    let sink = SqliteSink::open(&path)
        .await
        .expect("open sink")
        .applying_while_reading();
    let rules = common::rules_with("");
    let first = file("import/first.csv.gz");
    let mut load = sink.begin(&first, Utc::now()).await.expect("begin");
    let second = file("import/second.csv.gz");
    let mut waiting = Box::pin(sink.begin(&second, Utc::now()));
    assert!(
        (&mut waiting).now_or_never().is_none(),
        "the second load began while the first holds the write lock"
    );
    let source = std::io::Cursor::new(common::gzip(b"id,email\nu1,a@x.com\n"));
    let report = validate(&rules, &first.key, source, &mut load, None)
        .await
        .expect("validate");
    let committed = load.commit(report.rows, &first.version).await;
    assert_eq!(committed.expect("commit"), Committed::Applied);
    let load = waiting.await.expect("the second load begins");
    load.rollback().await.expect("roll back");
    assert_eq!(read_records(&path).len(), 1);
}
