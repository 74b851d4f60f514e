//! The sink suite on SQLite and PostgreSQL, reading back with a plain connection, and on the
//! HTTP sink, reading back what the recording server received.

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
    let pool = cluster
        .pool(&url, dropfolder::sink::postgres::MIGRATIONS)
        .await;
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

#[path = "common/drops.rs"]
mod drops;
#[path = "common/http_server.rs"]
mod http_server;

/// The HTTP sink, its ledger in a SQLite state; what the API holds is what it received,
/// applied request by request as an upsert API does (present keys overwrite).
#[tokio::test]
async fn http_passes_the_sink_suite() {
    let server = http_server::Server::start().await;
    let env = drops::Env::new();
    let text = format!(
        "{}\n[sink]\nkind = \"http\"\nurl = \"{}/records\"\n",
        env.config_text(""),
        server.url
    );
    let config = dropfolder::config::Config::parse(&text, env.dir.path().to_path_buf())
        .expect("config parses");
    let settings = config
        .compile(dropfolder::config::SecretCheck::Require)
        .expect("the config compiles");
    let ledger = std::sync::Arc::new(
        dropfolder::state::SqliteState::open(&env.db())
            .await
            .expect("open state"),
    );
    let sink = dropfolder::sink::AnySink::open(&settings.sink, settings.egress.clone(), ledger)
        .await
        .expect("open the HTTP sink");
    assert!(matches!(sink, dropfolder::sink::AnySink::Http(_)));
    suite::run(&sink, || async { received(&server.requests()) }).await;
    server.stop();
}

/// The records of every request, in the order they arrived, folded by (product key, id).
fn received(requests: &[http_server::Recorded]) -> suite::Stored {
    let mut held: std::collections::BTreeMap<
        (String, String),
        (String, serde_json::Map<String, serde_json::Value>),
    > = std::collections::BTreeMap::new();
    for request in requests {
        let records = match request.json() {
            serde_json::Value::Array(records) => records,
            record => vec![record],
        };
        for record in records {
            let serde_json::Value::Object(mut fields) = record else {
                panic!("a record that is not an object: {record}");
            };
            let text =
                |fields: &mut serde_json::Map<String, serde_json::Value>, name: &str| match fields
                    .remove(name)
                {
                    Some(serde_json::Value::String(s)) => s,
                    _ => String::new(),
                };
            let id = text(&mut fields, "id");
            let entity = text(&mut fields, "_entity");
            let product_key = text(&mut fields, "_product_key");
            assert_eq!(text(&mut fields, "_integration"), "acme-users");
            let entry = held
                .entry((product_key, id))
                .or_insert_with(|| (entity, serde_json::Map::new()));
            entry.1.extend(fields);
        }
    }
    held.into_iter()
        .map(|((product_key, id), (entity, attributes))| {
            (
                entity,
                product_key,
                id,
                serde_json::Value::Object(attributes),
            )
        })
        .collect()
}
