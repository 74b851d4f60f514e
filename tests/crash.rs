//! Crash safety: the run is aborted (no unwinding, no cleanup) at every crash point, at its
//! first, second, ... hit, then run again until it is quiet. Whatever the point, the end
//! state must equal a run that never crashed: every row applied exactly once, every original
//! exactly once in `processed/` and byte-identical, one `status.txt` per folder with the same
//! text, nothing left in `current/` but the folder still waiting for `_SUCCESS`. The sweep runs
//! with SQLite as state and sink, and again with PostgreSQL.
//!
//! Needs the `failpoints` feature: `cargo test --features failpoints --test crash`.
#![cfg(feature = "failpoints")]

mod common;
#[path = "common/drops.rs"]
mod drops;
#[path = "common/pg.rs"]
mod pg;

use std::collections::BTreeMap;
use std::process::Command;

use drops::{Env, HEADER};

/// The crash points of a run, in the order it meets them; the sink's own last point varies.
fn points(sink_commit: &'static str) -> [&'static str; 10] {
    [
        "after-begin",
        "before-file-commit",
        sink_commit,
        "after-file",
        "after-copy",
        "after-result-file",
        "after-status",
        "after-report",
        "after-delete",
        "before-done",
    ]
}

/// Where state and records live.
#[derive(Clone)]
enum Db {
    Sqlite,
    Postgres(String),
}

/// Reads records and ledger back, whichever the database.
struct Reader {
    runtime: tokio::runtime::Runtime,
    cluster: Option<pg::Cluster>,
}

impl Reader {
    fn state_section(&self, env: &Env, db: &Db) -> String {
        match db {
            Db::Sqlite => format!("[state]\nurl = \"sqlite://{}\"", env.db().display()),
            Db::Postgres(url) => {
                format!("[state]\nurl = \"{url}\"\npassword_env = \"DATABASE_PASSWORD\"")
            }
        }
    }

    fn fresh(&self, db: &Db) -> Db {
        match (db, &self.cluster) {
            (Db::Postgres(_), Some(cluster)) => {
                Db::Postgres(self.runtime.block_on(cluster.fresh_database()))
            }
            _ => Db::Sqlite,
        }
    }

    fn records_and_ledger(
        &self,
        env: &Env,
        db: &Db,
    ) -> (BTreeMap<String, serde_json::Value>, Vec<String>) {
        let (Db::Postgres(url), Some(cluster)) = (db, &self.cluster) else {
            return (env.records(), env.ledger());
        };
        self.runtime.block_on(async {
            let client = cluster.client(url).await;
            let records = client
                .query("SELECT product_key, id, attributes::text FROM records", &[])
                .await
                .expect("records")
                .iter()
                .map(|r| {
                    let json: String = r.get(2);
                    (
                        format!("{}/{}", r.get::<_, String>(0), r.get::<_, String>(1)),
                        serde_json::from_str(&json).unwrap_or_default(),
                    )
                })
                .collect();
            let ledger = client
                .query(
                    "SELECT file_key, rows FROM file_ledger ORDER BY file_key",
                    &[],
                )
                .await
                .expect("ledger")
                .iter()
                .map(|r| format!("{} {}", r.get::<_, String>(0), r.get::<_, i64>(1)))
                .collect();
            (records, ledger)
        })
    }
}

fn scenario(env: &Env) {
    env.csv(
        "20210228",
        "users.csv.gz",
        &format!("{HEADER}u1,a@x.com,2021-02-28,1,true\nu2,b@x.com,,,\nu3,c@x.com,,2.5,\n"),
    );
    env.put("current/dt=20210228/notes.txt", b"customer notes");
    env.success("20210228");
    env.csv(
        "20210301",
        "a-good.csv.gz",
        "id,email\nu1,a2@x.com\nu4,d@x.com\n",
    );
    env.csv("20210301", "b-bad.csv.gz", "id,score\nu5,1,5\nu6,x\n");
    env.success("20210301");
    env.csv("20210302", "users.csv.gz", &format!("{HEADER}u9,,,,\n"));
}

/// Runs `dropfolder run`; `None` exit code means it was killed (aborted).
fn run(env: &Env, state: &str, failpoints: Option<&str>) -> Option<i32> {
    let config = env.dir.path().join("dropfolder.toml");
    std::fs::write(&config, env.config_text_with(state, "")).expect("write config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_dropfolder"));
    command
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("RUST_LOG", "warn");
    match failpoints {
        Some(actions) => command.env("FAILPOINTS", actions),
        None => command.env_remove("FAILPOINTS"),
    };
    let output = command.output().expect("run dropfolder");
    output.status.code()
}

/// Everything a customer or an operator could observe afterwards.
#[derive(Debug, PartialEq)]
struct Observed {
    keys: Vec<String>,
    files: BTreeMap<String, Vec<u8>>,
    records: BTreeMap<String, serde_json::Value>,
    ledger: Vec<String>,
}

fn observe(env: &Env, reader: &Reader, db: &Db) -> Observed {
    let keys = env.keys();
    let files = keys
        .iter()
        // status.json carries a timestamp and the temp path; its content is checked below.
        .filter(|k| !k.ends_with("status.json"))
        .map(|k| (k.clone(), std::fs::read(env.path(k)).expect("read")))
        .collect();
    let (records, ledger) = reader.records_and_ledger(env, db);
    Observed {
        keys,
        files,
        records,
        ledger,
    }
}

/// Crashes at every hit of every point, recovers, and compares with a run without a crash.
fn sweep(reader: &Reader, db: &Db, sink_commit: &'static str) -> usize {
    let reference = Env::new();
    scenario(&reference);
    let originals: BTreeMap<String, Vec<u8>> = reference
        .keys()
        .into_iter()
        .map(|k| {
            let bytes = std::fs::read(reference.path(&k)).expect("read");
            (k, bytes)
        })
        .collect();
    let reference_db = reader.fresh(db);
    assert_eq!(
        run(
            &reference,
            &reader.state_section(&reference, &reference_db),
            None
        ),
        Some(0)
    );
    let expected = observe(&reference, reader, &reference_db);
    // The reference itself: originals byte-identical in processed/, each once.
    for (key, bytes) in &originals {
        let moved = key.replacen("current/dt=", "processed/", 1);
        if key.contains("20210302") {
            assert_eq!(expected.files.get(key), Some(bytes), "{key} stays");
        } else {
            assert_eq!(expected.files.get(&moved), Some(bytes), "{moved}");
        }
    }
    assert_eq!(
        expected.ledger,
        [
            "current/dt=20210228/users.csv.gz 3",
            "current/dt=20210301/a-good.csv.gz 2"
        ]
    );

    let mut crashes = 0;
    for point in points(sink_commit) {
        for hit in 1.. {
            let env = Env::new();
            scenario(&env);
            let db = reader.fresh(db);
            let state = reader.state_section(&env, &db);
            let actions = if hit == 1 {
                format!("{point}=return")
            } else {
                format!("{point}={}*off->return", hit - 1)
            };
            let first = run(&env, &state, Some(&actions));
            if first.is_some() {
                // The point is reached fewer times than `hit`: the run went through.
                assert_eq!(first, Some(0), "{actions}");
                break;
            }
            crashes += 1;
            assert_eq!(
                run(&env, &state, None),
                Some(0),
                "the run after {actions} must succeed"
            );
            let settled = observe(&env, reader, &db);
            assert_eq!(
                run(&env, &state, None),
                Some(0),
                "a third run after {actions}"
            );
            let observed = observe(&env, reader, &db);
            assert_eq!(
                observed, settled,
                "the run after recovery must be quiet ({actions})"
            );
            assert_eq!(observed, expected, "state after a crash at {actions}");
            for folder in ["20210228", "20210301"] {
                let status = |env: &Env| -> serde_json::Value {
                    serde_json::from_str(&env.read(&format!("processed/{folder}/status.json")))
                        .expect("status.json")
                };
                let (json, reference) = (status(&env), status(&reference));
                assert_eq!(json["files"], reference["files"], "{actions}");
                assert_eq!(json["success"], reference["success"], "{actions}");
            }
        }
    }
    crashes
}

#[test]
fn every_crash_point_is_recovered_exactly_once() {
    let reader = Reader {
        runtime: tokio::runtime::Runtime::new().expect("runtime"),
        cluster: None,
    };
    let crashes = sweep(&reader, &Db::Sqlite, "sqlite-before-commit");
    eprintln!("{crashes} crashes provoked and recovered with SQLite");
    assert!(crashes >= 20, "only {crashes} crashes were provoked");
}

#[test]
fn every_crash_point_is_recovered_exactly_once_with_postgres() {
    let Some(cluster) = pg::cluster() else { return };
    let reader = Reader {
        runtime: tokio::runtime::Runtime::new().expect("runtime"),
        cluster: Some(cluster),
    };
    let crashes = sweep(
        &reader,
        &Db::Postgres(String::new()),
        "postgres-before-commit",
    );
    eprintln!("{crashes} crashes provoked and recovered with PostgreSQL");
    assert!(crashes >= 20, "only {crashes} crashes were provoked");
}
