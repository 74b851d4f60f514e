//! `dropfolder import` of 350,000 rows into a fresh PostgreSQL database (validation, jsonb
//! upsert, ledger, state) against `gzip -dc FILE | psql -c "\copy t from stdin csv header"`
//! into a fresh table of text columns with `id` as its primary key (no validation, no JSON,
//! no merge), side by side in one run. The bench starts its own cluster with `tests/pg/start`.
//!
//! Run: `cargo bench --bench import_postgres` (add `-- --quick` for one run of each).

mod support;

use std::collections::HashMap;
use std::process::Command;

use support::{bench_dir, compare, datagen, dropfolder, mib};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 1 } else { 5 };
    let rows = 350_000u64;
    let dir = bench_dir();
    let file = dir.join(format!("users-{rows}.csv.gz"));
    datagen::ensure_file(&file, rows).expect("generate bench data");

    let root = env!("CARGO_MANIFEST_DIR");
    let started = Command::new(format!("{root}/tests/pg/start"))
        .output()
        .expect("tests/pg/start");
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let env: HashMap<String, String> = String::from_utf8_lossy(&started.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (port, admin, password) = (
        &env["PG_PORT"],
        &env["PG_ADMIN_URL"],
        &env["DATABASE_PASSWORD"],
    );
    let psql = |url: &str, sql: &str| {
        let out = Command::new("psql")
            .arg(url)
            .arg("-qtAc")
            .arg(sql)
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let app = |db: &str| format!("postgres://dropfolder:{password}@127.0.0.1:{port}/{db}");
    let next = std::cell::Cell::new(0);
    let fresh = |prefix: &str| {
        next.set(next.get() + 1);
        let db = format!("{prefix}_{}", next.get());
        psql(admin, &format!("DROP DATABASE IF EXISTS {db}"));
        psql(admin, &format!("CREATE DATABASE {db} OWNER dropfolder"));
        db
    };
    let columns: Vec<String> = datagen::HEADER
        .trim()
        .split(',')
        .map(|c| {
            if c == "id" {
                "id text PRIMARY KEY".into()
            } else {
                format!("\"{c}\" text")
            }
        })
        .collect();
    let create = format!("CREATE TABLE t ({})", columns.join(", "));
    let config = dir.join("import-postgres.toml");
    let (mut plain_db, mut ours_db) = (String::new(), String::new());

    let results = compare(
        runs,
        &mut [
            ("psql \\copy", &mut || {
                plain_db = fresh("plain");
                psql(&app(&plain_db), &create);
                let script = format!(
                    "gzip -dc '{}' | psql '{}' -qc '\\copy t from stdin csv header'",
                    file.display(),
                    app(&plain_db)
                );
                let mut c = Command::new("sh");
                c.arg("-c").arg(script);
                c
            }),
            ("dropfolder import", &mut || {
                ours_db = fresh("ours");
                let state = format!(
                    "[state]\nurl = \"postgres://dropfolder@127.0.0.1:{port}/{ours_db}\"\npassword_env = \"DATABASE_PASSWORD\"\n"
                );
                std::fs::write(&config, datagen::config("file:///tmp/unused", rows, &state))
                    .expect("write config");
                let mut c = dropfolder();
                c.arg("--config")
                    .arg(&config)
                    .arg("import")
                    .arg(&file)
                    .env("DATABASE_PASSWORD", password);
                c
            }),
        ],
    );
    assert_eq!(
        psql(&app(&plain_db), "SELECT count(*) FROM t"),
        rows.to_string()
    );
    assert_eq!(
        psql(&app(&ours_db), "SELECT count(*) FROM records"),
        rows.to_string()
    );
    assert_eq!(
        psql(&app(&ours_db), "SELECT count(*) FROM file_ledger"),
        "1"
    );
    let (plain, ours) = (results[0], results[1]);
    println!(
        "| rows | psql \\copy (plain keyed load) | dropfolder import (validate + jsonb upsert + ledger) | ratio | rows/s | peak RSS dropfolder |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {rows} | {:.3} s | {:.3} s | {:.2}× | {:.0} | {:.1} MiB |",
        plain.wall.as_secs_f64(),
        ours.wall.as_secs_f64(),
        ours.wall.as_secs_f64() / plain.wall.as_secs_f64(),
        rows as f64 / ours.wall.as_secs_f64(),
        mib(ours.max_rss_kib)
    );
    let _ = Command::new(format!("{root}/tests/pg/stop"))
        .arg(port)
        .output();
}
