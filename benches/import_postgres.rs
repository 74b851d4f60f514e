//! `dropfolder import` of 350,000 rows into a fresh PostgreSQL database (validation, jsonb
//! upsert, ledger, state) against `gzip -dc FILE | psql -c "\copy t from stdin csv header"`
//! into a fresh table of text columns with `id` as its primary key (no validation, no JSON,
//! no merge), side by side in one run: the ratio is the median of the pairs' own ratios, with
//! their range. The bench starts its own cluster with `tests/pg/start`.
//!
//! Run: `cargo bench --bench import_postgres` (add `-- --quick` for one run of each). With
//! `DROPFOLDER_BASELINE=/path/to/an/older/release/dropfolder`, that binary runs in the same
//! comparison too, each into a fresh database of its own, so a change's effect is a ratio from
//! one run on one machine.

mod support;

use std::collections::HashMap;
use std::process::{Command, Stdio};

use support::{bench_dir, datagen, dropfolder, mib, paired_ratio, run_interleaved, summarize};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 1 } else { 7 };
    let baseline = std::env::var_os("DROPFOLDER_BASELINE").map(std::path::PathBuf::from);
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
    let baseline_config = dir.join("import-postgres-baseline.toml");
    let (mut plain_db, mut ours_db, mut older_db) = (String::new(), String::new(), String::new());
    // A fresh database and its config, for one run of `binary`.
    let import = |binary: Command, db: &str, config: &std::path::Path| {
        let state = format!(
            "[state]\nurl = \"postgres://dropfolder@127.0.0.1:{port}/{db}\"\npassword_env = \"DATABASE_PASSWORD\"\n"
        );
        std::fs::write(config, datagen::config("file:///tmp/unused", rows, &state))
            .expect("write config");
        let mut c = binary;
        c.arg("--config")
            .arg(config)
            .arg("import")
            .arg(&file)
            .env("DATABASE_PASSWORD", password);
        c
    };

    let mut plain = || {
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
    };
    let mut ours = || {
        ours_db = fresh("ours");
        import(dropfolder(), &ours_db, &config)
    };
    let mut older = || {
        older_db = fresh("older");
        let mut c = Command::new(baseline.as_deref().unwrap_or(std::path::Path::new("false")));
        c.env("RUST_LOG", "warn").stderr(Stdio::null());
        import(c, &older_db, &baseline_config)
    };
    let mut commands: Vec<(&str, &mut dyn FnMut() -> Command)> = vec![
        ("psql \\copy", &mut plain),
        ("dropfolder import", &mut ours),
    ];
    if baseline.is_some() {
        commands.push(("baseline dropfolder import", &mut older));
    }
    let runs_of = run_interleaved(runs, &mut commands);
    drop(commands);
    let ratio = paired_ratio(&runs_of[0], &runs_of[1]);
    let older_ratio = runs_of.get(2).map(|b| paired_ratio(&runs_of[0], b));
    // This build against the baseline binary, pair by pair.
    let against_older = runs_of.get(2).map(|b| paired_ratio(b, &runs_of[1]));
    let results = summarize(runs_of);
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
    if baseline.is_some() {
        assert_eq!(
            psql(&app(&older_db), "SELECT count(*) FROM records"),
            rows.to_string()
        );
    }
    let (plain, ours) = (results[0], results[1]);
    println!(
        "| rows | psql \\copy (plain keyed load) | dropfolder import (validate + jsonb upsert + ledger) | ratio (median of {runs} pairs, range) | rows/s | peak RSS dropfolder |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {rows} | {:.3} s | {:.3} s | {ratio} | {:.0} | {:.1} MiB |",
        plain.wall.as_secs_f64(),
        ours.wall.as_secs_f64(),
        rows as f64 / ours.wall.as_secs_f64(),
        mib(ours.max_rss_kib)
    );
    if let (Some(older), Some(older_ratio)) = (results.get(2), older_ratio) {
        println!(
            "| {rows} | baseline binary | {:.3} s | {older_ratio} | {:.0} | {:.1} MiB |",
            older.wall.as_secs_f64(),
            rows as f64 / older.wall.as_secs_f64(),
            mib(older.max_rss_kib)
        );
    }
    if let Some(against_older) = against_older {
        println!("this build / the baseline binary: {against_older}");
    }
    let _ = Command::new(format!("{root}/tests/pg/stop"))
        .arg(port)
        .output();
}
