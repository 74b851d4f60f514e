//! `dropfolder import` of 350,000 rows into a fresh SQLite file, against
//! `gzip -dc FILE | sqlite3 DB ".import --csv --skip 1 /dev/stdin t"` into a fresh table of
//! text columns keyed by `id` (a plain keyed load: no validation, no JSON, no merge), side by
//! side in one run, with peak RSS.
//!
//! `dropfolder import FILE` applies rows while the local file is validated; the same file on
//! standard input (`import -`) takes the path of a bucket file (`run`): valid rows spooled,
//! then applied under the write lock. Both are timed.
//!
//! Run: `cargo bench --bench import_sqlite` (add `-- --quick` for one run of each). With
//! `DROPFOLDER_BASELINE=/path/to/an/older/release/dropfolder`, that binary runs in the same
//! comparison too, so a change's cost is a ratio from one run on one machine.

mod support;

use std::process::Command;

use support::{
    bench_dir, compare, datagen, dropfolder, mib, paired_ratio, run_interleaved, summarize,
};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 1 } else { 7 };
    let rows = 350_000u64;
    let dir = bench_dir();
    let file = dir.join(format!("users-{rows}.csv.gz"));
    datagen::ensure_file(&file, rows).expect("generate bench data");
    let ours_db = dir.join("import-ours.db");
    let spooled_db = dir.join("import-spooled.db");
    let plain_db = dir.join("import-plain.db");
    let baseline_db = dir.join("import-baseline.db");
    let baseline = std::env::var_os("DROPFOLDER_BASELINE").map(std::path::PathBuf::from);
    let baseline_config = dir.join("import-sqlite-baseline.toml");
    let baseline_state = format!("[state]\nurl = \"sqlite://{}\"\n", baseline_db.display());
    std::fs::write(
        &baseline_config,
        datagen::config("file:///tmp/unused", rows, &baseline_state),
    )
    .expect("write config");
    let config = dir.join("import-sqlite.toml");
    let state = format!("[state]\nurl = \"sqlite://{}\"\n", ours_db.display());
    std::fs::write(&config, datagen::config("file:///tmp/unused", rows, &state))
        .expect("write config");
    let spooled_config = dir.join("import-sqlite-spooled.toml");
    let spooled_state = format!("[state]\nurl = \"sqlite://{}\"\n", spooled_db.display());
    std::fs::write(
        &spooled_config,
        datagen::config("file:///tmp/unused", rows, &spooled_state),
    )
    .expect("write config");
    let columns: Vec<String> = datagen::HEADER
        .trim()
        .split(',')
        .map(|c| {
            if c == "id" {
                "id TEXT PRIMARY KEY".into()
            } else {
                format!("{c} TEXT")
            }
        })
        .collect();
    let create = format!("CREATE TABLE t ({});", columns.join(", "));
    let fresh = |db: &std::path::Path| {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
    };

    let mut sqlite3 = || {
        fresh(&plain_db);
        let script = format!(
            "gzip -dc '{}' | sqlite3 '{}' '{create}' '.import --csv --skip 1 /dev/stdin t'",
            file.display(),
            plain_db.display()
        );
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        c
    };
    let mut ours = || {
        fresh(&ours_db);
        let mut c = dropfolder();
        c.arg("--config").arg(&config).arg("import").arg(&file);
        c
    };
    let mut spooled = || {
        fresh(&spooled_db);
        let mut c = dropfolder();
        c.arg("--config")
            .arg(&spooled_config)
            .arg("import")
            .arg("-")
            .stdin(std::fs::File::open(&file).expect("open the bench file"));
        c
    };
    let mut older = || {
        fresh(&baseline_db);
        let mut c = Command::new(baseline.as_deref().unwrap_or(std::path::Path::new("false")));
        c.env("RUST_LOG", "warn")
            .stderr(std::process::Stdio::null())
            .arg("--config")
            .arg(&baseline_config)
            .arg("import")
            .arg(&file);
        c
    };
    let mut commands: Vec<(&str, &mut dyn FnMut() -> Command)> = vec![
        ("sqlite3 .import", &mut sqlite3),
        ("dropfolder import", &mut ours),
        ("dropfolder import - (spooled)", &mut spooled),
    ];
    if baseline.is_some() {
        commands.push(("baseline dropfolder import", &mut older));
    }
    let runs_of = run_interleaved(runs, &mut commands);
    let ratio = paired_ratio(&runs_of[0], &runs_of[1]);
    let spooled_ratio = paired_ratio(&runs_of[0], &runs_of[2]);
    let older_ratio = runs_of.get(3).map(|b| paired_ratio(&runs_of[0], b));
    let results = summarize(runs_of);
    let count = |db: &std::path::Path, table: &str| {
        let out = Command::new("sqlite3")
            .arg(db)
            .arg(format!("SELECT count(*) FROM {table}"))
            .output()
            .expect("sqlite3");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        count(&plain_db, "t"),
        rows.to_string(),
        "the baseline loaded every row"
    );
    assert_eq!(
        count(&ours_db, "records"),
        rows.to_string(),
        "dropfolder loaded every row"
    );
    assert_eq!(
        count(&spooled_db, "records"),
        rows.to_string(),
        "dropfolder loaded every row from stdin"
    );
    let (plain, ours) = (results[0], results[1]);
    println!(
        "spooled (import -, as run): {:.3} s, ratio {spooled_ratio}, peak RSS {:.1} MiB",
        results[2].wall.as_secs_f64(),
        mib(results[2].max_rss_kib),
    );
    if let (Some(older), Some(older_ratio)) = (results.get(3), older_ratio) {
        println!(
            "baseline: {:.3} s, ratio {older_ratio}, peak RSS {:.1} MiB (this build: ratio {ratio})",
            older.wall.as_secs_f64(),
            mib(older.max_rss_kib),
        );
    }
    println!(
        "| rows | sqlite3 .import (plain keyed load) | dropfolder import (validate + JSON + upsert + ledger) | ratio (median of {runs} pairs, range) | rows/s | peak RSS sqlite3 / dropfolder |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {rows} | {:.3} s | {:.3} s | {ratio} | {:.0} | {:.1} / {:.1} MiB |",
        plain.wall.as_secs_f64(),
        ours.wall.as_secs_f64(),
        rows as f64 / ours.wall.as_secs_f64(),
        mib(plain.max_rss_kib),
        mib(ours.max_rss_kib),
    );

    // Memory stays flat with ten times the rows (the cap raised for the bench).
    let big_rows = 3_500_000u64;
    let big = dir.join(format!("users-{big_rows}.csv.gz"));
    datagen::ensure_file(&big, big_rows).expect("generate bench data");
    std::fs::write(
        &config,
        datagen::config("file:///tmp/unused", big_rows, &state),
    )
    .expect("write config");
    let results = compare(
        1,
        &mut [("dropfolder import 3.5M", &mut || {
            fresh(&ours_db);
            let mut c = dropfolder();
            c.arg("--config").arg(&config).arg("import").arg(&big);
            c
        })],
    );
    assert_eq!(count(&ours_db, "records"), big_rows.to_string());
    println!(
        "| {big_rows} | | {:.3} s | | {:.0} | — / {:.1} MiB |",
        results[0].wall.as_secs_f64(),
        big_rows as f64 / results[0].wall.as_secs_f64(),
        mib(results[0].max_rss_kib)
    );
}
