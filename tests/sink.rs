//! The sink suite on SQLite, reading back with a plain connection.

mod common;
#[path = "sink/suite.rs"]
mod suite;

use dropfolder::sink::SqliteSink;

#[tokio::test]
async fn sqlite_passes_the_sink_suite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("records.db");
    let sink = SqliteSink::open(&path).await.expect("open sink");
    suite::run(&sink, || {
        let path = path.clone();
        async move {
            let conn = rusqlite::Connection::open(&path).expect("open for reading");
            let mut stmt = conn
                .prepare("SELECT entity, product_key, id, attributes FROM records ORDER BY product_key, id")
                .expect("prepare");
            stmt.query_map([], |row| {
                let json: String = row.get(3)?;
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, serde_json::from_str(&json).unwrap_or_default()))
            })
            .expect("query")
            .collect::<Result<Vec<_>, _>>()
            .expect("rows")
        }
    })
    .await;
}

#[path = "common/pg.rs"]
mod pg;

#[tokio::test]
async fn postgres_passes_the_sink_suite() {
    let Some(cluster) = pg::cluster() else { return };
    let url = cluster.fresh_database().await;
    let password = dropfolder::config::SecretRef::Env("DATABASE_PASSWORD".into());
    let pool = dropfolder::postgres::connect(
        &url,
        Some(&password),
        4,
        dropfolder::sink::postgres::MIGRATIONS,
    )
    .await
    .expect("connect");
    let sink = dropfolder::sink::PgSink::new(pool, &url);
    let client = cluster.client(&url).await;
    suite::run(&sink, || async {
        client
            .query("SELECT entity, product_key, id, attributes::text FROM records ORDER BY product_key, id", &[])
            .await
            .expect("read records")
            .iter()
            .map(|row| {
                let json: String = row.get(3);
                (row.get(0), row.get(1), row.get(2), serde_json::from_str(&json).unwrap_or_default())
            })
            .collect()
    })
    .await;
}
