//! A first file over two connections (src/sink/postgres/stage.rs), against a real server: a
//! crash after a chunk was staged leaves no records and its chunk tables are removed by the
//! next load, which applies the file once; a failure of the parse connection fails the file
//! cleanly; and loads at once never wait for each other's second connection, whatever the
//! pool's size.

mod common;
#[path = "common/drops.rs"]
mod drops;
#[path = "common/pg.rs"]
mod pg;

use std::time::Duration;

use chrono::Utc;
use dropfolder::config::Entity;
use dropfolder::ledger::{Committed, FileRef, Version};
use dropfolder::sink::{FileLoad, PgSink, Sink};
use dropfolder::validate::validate;

use common::{gzip, rules_with};

/// Enough rows for several chunks (16,384 rows each).
const ROWS: usize = 40_000;

fn users(rows: usize) -> String {
    let mut csv = String::from("id,email,score\n");
    for n in 0..rows {
        csv.push_str(&format!("u{n},e{n}@x.com,{n}\n"));
    }
    csv
}

fn file(integration: &str, key: &str) -> FileRef {
    FileRef {
        integration: integration.into(),
        entity: Entity::User,
        key: key.into(),
        version: Version::ETag("v1".into()),
    }
}

/// Validates `csv` into a load begun on `sink` and commits it.
async fn load(sink: &PgSink, file: &FileRef, csv: &str) -> Result<Committed, String> {
    let rules = rules_with("max_rows = 1000000");
    let mut load = sink
        .begin(file, Utc::now())
        .await
        .map_err(|e| e.to_string())?;
    let report = validate(
        &rules,
        &file.key,
        std::io::Cursor::new(gzip(csv.as_bytes())),
        &mut load,
        None,
    )
    .await;
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            let _ = load.rollback().await;
            return Err(e.to_string());
        }
    };
    assert!(report.is_valid(), "{:?}", common::messages(&report));
    load.commit(report.rows, &file.version)
        .await
        .map_err(|e| e.to_string())
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

const STAGE_TABLES: &str =
    "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname LIKE 'records\\_stage\\_%'";

/// Loads that took the two-connection path so far in this database.
async fn staged_loads(client: &tokio_postgres::Client) -> i64 {
    count(
        client,
        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM records_stage_load",
    )
    .await
}

/// `dropfolder import` aborted after the file's transaction inserted a staged chunk: no
/// records, no ledger row, chunk tables left behind; the next import removes them and
/// applies the file once, and a third finds it applied.
#[cfg(feature = "failpoints")]
#[test]
fn a_crash_after_a_staged_chunk_keeps_nothing_and_the_next_load_cleans_up() {
    let Some(cluster) = pg::cluster() else { return };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let url = runtime.block_on(cluster.fresh_database());
    let env = drops::Env::new();
    let config = env.dir.path().join("dropfolder.toml");
    let state = format!("[state]\nurl = \"{url}\"\npassword_env = \"DATABASE_PASSWORD\"");
    std::fs::write(&config, env.config_text_with(&state, "max_rows = 1000000"))
        .expect("write config");
    let csv = env.dir.path().join("users.csv.gz");
    std::fs::write(&csv, gzip(users(ROWS).as_bytes())).expect("write file");
    let import = |failpoints: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_dropfolder"));
        command
            .arg("--config")
            .arg(&config)
            .arg("import")
            .arg(&csv)
            .env("RUST_LOG", "warn");
        match failpoints {
            Some(actions) => command.env("FAILPOINTS", actions),
            None => command.env_remove("FAILPOINTS"),
        };
        command.output().expect("run dropfolder import")
    };
    let client = runtime.block_on(cluster.client(&url));

    // The second chunk inserted, the third (at least) staged and not yet inserted.
    let crashed = import(Some("postgres-after-chunk=1*off->return"));
    assert_eq!(crashed.status.code(), None, "{crashed:?}");
    runtime.block_on(async {
        assert_eq!(count(&client, "SELECT count(*) FROM records").await, 0);
        assert_eq!(count(&client, "SELECT count(*) FROM file_ledger").await, 0);
        assert!(
            count(&client, STAGE_TABLES).await >= 2,
            "chunk tables of the crashed load are left"
        );
    });

    let applied = import(None);
    assert_eq!(applied.status.code(), Some(0), "{applied:?}");
    assert_eq!(
        String::from_utf8_lossy(&applied.stdout),
        format!("SUCCESS\n{ROWS} records were uploaded\n")
    );
    runtime.block_on(async {
        assert_eq!(
            count(&client, "SELECT count(*) FROM records").await,
            ROWS as i64
        );
        assert_eq!(count(&client, "SELECT count(*) FROM file_ledger").await, 1);
        assert_eq!(count(&client, STAGE_TABLES).await, 0, "no chunk table left");
        assert_eq!(staged_loads(&client).await, 2, "both loads were staged");
    });

    let again = import(None);
    assert_eq!(again.status.code(), Some(0), "{again:?}");
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already imported"),
        "{again:?}"
    );
    runtime.block_on(async {
        assert_eq!(
            count(&client, "SELECT count(*) FROM records").await,
            ROWS as i64
        );
        assert_eq!(
            count(
                &client,
                "SELECT count(*) FROM records WHERE attributes->>'email' = 'e39999@x.com'"
            )
            .await,
            1
        );
    });
}

/// The parse connection's backend ends while the file streams: the file fails with the
/// database's error, nothing of it is kept, and it loads in full next time, its chunk tables
/// gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parse_connection_that_fails_fails_the_file_and_keeps_nothing() {
    let Some(cluster) = pg::cluster() else { return };
    let url = cluster.fresh_database().await;
    let sink = PgSink::new(
        cluster
            .pool(&url, dropfolder::sink::postgres::MIGRATIONS)
            .await,
        &url,
    );
    let client = cluster.client(&url).await;
    let first = file("cut", "users.csv.gz");
    let rules = rules_with("max_rows = 1000000");
    let csv = users(ROWS);
    let mut doomed = sink.begin(&first, Utc::now()).await.expect("begin");
    // The parse connection opens its first chunk's COPY at once.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let terminated = loop {
        let ended: i64 = client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = current_database() AND query LIKE 'COPY records\\_stage\\_%'",
                &[],
            )
            .await
            .expect("terminate the parse backend")
            .get(0);
        if ended > 0 || std::time::Instant::now() > deadline {
            break ended;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(terminated, 1, "one parse connection at work");
    let validated = validate(
        &rules,
        "users.csv.gz",
        std::io::Cursor::new(gzip(csv.as_bytes())),
        &mut doomed,
        None,
    )
    .await;
    let failure = match validated {
        Err(e) => {
            let _ = doomed.rollback().await;
            e.to_string()
        }
        Ok(report) => doomed
            .commit(report.rows, &first.version)
            .await
            .expect_err("the file must fail")
            .to_string(),
    };
    assert!(failure.contains("database"), "{failure}");
    assert_eq!(count(&client, "SELECT count(*) FROM records").await, 0);
    assert_eq!(count(&client, "SELECT count(*) FROM file_ledger").await, 0);

    assert_eq!(load(&sink, &first, &csv).await, Ok(Committed::Applied));
    assert_eq!(
        count(&client, "SELECT count(*) FROM records").await,
        ROWS as i64
    );
    assert_eq!(count(&client, "SELECT count(*) FROM file_ledger").await, 1);
    assert_eq!(count(&client, STAGE_TABLES).await, 0, "no chunk table left");
}

/// Two first files of different integrations at once, each load driven by its own task, at
/// pool sizes 1 to 3: both land whatever the size (a load takes a second connection only if
/// one is free at once), and with room for a third connection one of them takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_loads_at_once_both_land_at_any_pool_size() {
    let Some(cluster) = pg::cluster() else { return };
    let password = dropfolder::config::SecretRef::Env("DATABASE_PASSWORD".into());
    let csv = users(ROWS);
    for pool_size in 1..=3 {
        let url = cluster.fresh_database().await;
        let pool = dropfolder::postgres::connect(
            &url,
            Some(&password),
            pool_size,
            dropfolder::sink::postgres::MIGRATIONS,
        )
        .await
        .expect("connect");
        let sink = PgSink::new(pool, &url);
        let loads: Vec<_> = ["one", "two"]
            .into_iter()
            .map(|integration| {
                let (sink, csv) = (sink.clone(), csv.clone());
                tokio::spawn(
                    async move { load(&sink, &file(integration, "users.csv.gz"), &csv).await },
                )
            })
            .collect();
        for handle in loads {
            let committed = tokio::time::timeout(Duration::from_secs(120), handle)
                .await
                .unwrap_or_else(|_| panic!("pool of {pool_size}: the loads wait for each other"))
                .expect("load task");
            assert_eq!(committed, Ok(Committed::Applied), "pool of {pool_size}");
        }
        let client = cluster.client(&url).await;
        for integration in ["one", "two"] {
            let rows: i64 = client
                .query_one(
                    "SELECT count(*) FROM records WHERE integration = $1",
                    &[&integration],
                )
                .await
                .expect("count")
                .get(0);
            assert_eq!(rows, ROWS as i64, "pool of {pool_size}, {integration}");
        }
        // At 2, both loads may hold one connection each before either looks for a second.
        let staged = staged_loads(&client).await;
        match pool_size {
            1 => assert_eq!(staged, 0, "no room for a second connection"),
            3 => assert!(staged >= 1, "pool of 3: no load was staged"),
            _ => {}
        }
        assert_eq!(count(&client, STAGE_TABLES).await, 0, "no chunk table left");
    }
}
