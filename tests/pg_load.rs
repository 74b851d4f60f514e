//! The PostgreSQL sink's load paths against a real server: a file into an integration with
//! no records goes straight into `records`, and must still merge an id named again in file
//! order, wait for another load of the same integration, and find a database made before the
//! key was reordered.

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::collections::BTreeMap;

use chrono::Utc;
use dropfolder::config::Entity;
use dropfolder::ledger::{Committed, FileRef, Version};
use dropfolder::sink::{FileLoad, PgSink, Sink};
use dropfolder::validate::validate;
use serde_json::{Map, Value, json};

use common::{gzip, rules_with};

fn file(integration: &str, key: &str) -> FileRef {
    FileRef {
        integration: integration.into(),
        entity: Entity::User,
        key: key.into(),
        version: Version::ETag("v1".into()),
    }
}

/// Validates `csv` into a load begun on `sink`, and commits it.
async fn load(sink: &PgSink, file: &FileRef, csv: &str) -> Committed {
    let rules = rules_with("max_rows = 1000000");
    let mut load = sink.begin(file, Utc::now()).await.expect("begin");
    let report = validate(
        &rules,
        &file.key,
        std::io::Cursor::new(gzip(csv.as_bytes())),
        &mut load,
        None,
    )
    .await
    .expect("validate");
    assert!(report.is_valid(), "{:?}", common::messages(&report));
    load.commit(report.rows, &file.version)
        .await
        .expect("commit")
}

/// What applying `csvs` row by row gives: for each id, its non-empty fields, later ones
/// overwriting earlier ones (the README's merge), as `(id, attributes)`.
fn row_by_row(csvs: &[&str]) -> BTreeMap<String, Value> {
    let mut records: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for csv in csvs {
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().expect("header").split(',').collect();
        for line in lines {
            let fields: Vec<&str> = line.split(',').collect();
            let record = records.entry(fields[0].to_string()).or_default();
            for (name, value) in header.iter().zip(&fields).skip(1) {
                if !value.is_empty() {
                    let value = match *name {
                        "score" => json!(value.parse::<i64>().expect("a whole number")),
                        _ => json!(value),
                    };
                    record.insert(name.to_string(), value);
                }
            }
        }
    }
    records
        .into_iter()
        .map(|(id, attributes)| (id, Value::Object(attributes)))
        .collect()
}

async fn stored(client: &tokio_postgres::Client, integration: &str) -> BTreeMap<String, Value> {
    client
        .query(
            "SELECT id, attributes::text FROM records WHERE integration = $1",
            &[&integration],
        )
        .await
        .expect("read records")
        .iter()
        .map(|row| {
            let json: String = row.get(1);
            (
                row.get(0),
                serde_json::from_str(&json).expect("attributes are JSON"),
            )
        })
        .collect()
}

/// `rows` rows of ids `u0..`, where every `every`-th row names again an id from 7 rows back
/// (with a new email, and a score only sometimes).
fn ids_named_again(rows: usize, every: usize) -> String {
    let mut csv = String::from("id,email,score\n");
    for n in 0..rows {
        let id = if n >= 7 && n % every == 0 { n - 7 } else { n };
        let score = if n % 3 == 0 {
            format!("{n}")
        } else {
            String::new()
        };
        csv.push_str(&format!("u{id},e{n}@x.com,{score}\n"));
    }
    csv
}

async fn sink_on_fresh_database() -> Option<(PgSink, tokio_postgres::Client)> {
    let cluster = pg::cluster()?;
    let url = cluster.fresh_database().await;
    let pool = cluster
        .pool(&url, dropfolder::sink::postgres::MIGRATIONS)
        .await;
    Some((PgSink::new(pool, &url), cluster.client(&url).await))
}

/// A first file that names some ids twice or more, a few of them (held back and merged
/// after the rest) and then very many (more than a load holds back, so the rest of the file
/// goes through staging): each id ends as if the rows were applied one by one.
#[tokio::test]
async fn a_first_file_naming_ids_again_is_merged_in_file_order() {
    let Some((sink, client)) = sink_on_fresh_database().await else {
        return;
    };
    for (integration, every) in [("few-again", 997), ("many-again", 2)] {
        let csv = ids_named_again(20_000, every);
        let committed = load(&sink, &file(integration, "day1.csv.gz"), &csv).await;
        assert_eq!(committed, Committed::Applied);
        assert_eq!(
            stored(&client, integration).await,
            row_by_row(&[&csv]),
            "{integration}"
        );
        // The next file merges into what the first loaded.
        let next = "id,email,score\nu1,next@x.com,\nu20001,new@x.com,5\n";
        load(&sink, &file(integration, "day2.csv.gz"), next).await;
        assert_eq!(
            stored(&client, integration).await,
            row_by_row(&[&csv, next]),
            "{integration}"
        );
    }
}

/// Two loads of one new integration at once: the second waits for the first to commit, then
/// merges into what it loaded, instead of colliding with its rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_loads_into_one_new_integration_at_once_both_apply() {
    let Some((sink, client)) = sink_on_fresh_database().await else {
        return;
    };
    let rules = rules_with("");
    let first = "id,email,score\nu1,a@x.com,1\nu2,b@x.com,2\n";
    let second = "id,email\nu1,later@x.com\nu3,c@x.com\n";
    let (one, two) = (file("both", "one.csv.gz"), file("both", "two.csv.gz"));
    let mut load_one = sink.begin(&one, Utc::now()).await.expect("begin one");
    let mut load_two = sink.begin(&two, Utc::now()).await.expect("begin two");
    let mut rows = Vec::new();
    for (load, csv, name) in [
        (&mut load_one, first, "one"),
        (&mut load_two, second, "two"),
    ] {
        let report = validate(
            &rules,
            name,
            std::io::Cursor::new(gzip(csv.as_bytes())),
            load,
            None,
        )
        .await
        .expect("validate");
        rows.push(report.rows);
    }
    // Both writers at work on the server (loading, or waiting for the other) before either
    // commits: otherwise the second would only find the first's rows committed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let active: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                 AND application_name = 'dropfolder' AND state = 'active'",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if active == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{active} writers at work, not 2"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let committed_one = load_one
        .commit(rows[0], &one.version)
        .await
        .expect("commit one");
    let committed_two = load_two
        .commit(rows[1], &two.version)
        .await
        .expect("commit two");
    assert_eq!(
        (committed_one, committed_two),
        (Committed::Applied, Committed::Applied)
    );
    assert_eq!(stored(&client, "both").await, row_by_row(&[first, second]));
}

/// A database made by migration 1 (the key `id` first) gets the key integration first, keeps
/// its records, and the next file merges into them.
#[tokio::test]
async fn a_database_from_before_the_key_was_reordered_migrates() {
    let Some(cluster) = pg::cluster() else { return };
    let url = cluster.fresh_database().await;
    let migrations = dropfolder::sink::postgres::MIGRATIONS;
    let first = &migrations[..1];
    assert_eq!(first[0].0, 1);
    drop(cluster.pool(&url, first).await);
    let client = cluster.client(&url).await;
    client
        .batch_execute(
            "INSERT INTO records VALUES ('old', 'user', '', 'u1', '{\"email\": \"old@x.com\", \"score\": 1}', now())",
        )
        .await
        .expect("a record made before");
    let sink = PgSink::new(cluster.pool(&url, migrations).await, &url);
    let key: String = client
        .query_one(
            "SELECT string_agg(a.attname, ',' ORDER BY k.n)
             FROM pg_index i, unnest(i.indkey) WITH ORDINALITY k(attnum, n), pg_attribute a
             WHERE i.indrelid = 'records'::regclass AND i.indisprimary
               AND a.attrelid = i.indrelid AND a.attnum = k.attnum",
            &[],
        )
        .await
        .expect("primary key columns")
        .get(0);
    assert_eq!(key, "integration,entity,product_key,id");
    load(
        &sink,
        &file("old", "day2.csv.gz"),
        "id,email\nu1,new@x.com\n",
    )
    .await;
    assert_eq!(
        stored(&client, "old").await,
        BTreeMap::from([("u1".to_string(), json!({"email": "new@x.com", "score": 1}))])
    );
}
