//! `dropfolder validate` against `gzip -dc FILE > /dev/null`, side by side in one run, on
//! 350,000 and 3,500,000 rows; then time and peak memory on hostile files: a decompression
//! bomb, a 64 MiB field, a 150,000-column header.
//!
//! Run: `cargo bench --bench validate` (add `-- --quick` for one run of each, `-- --hostile`
//! for the hostile files only).

mod support;

use std::process::Command;

use support::{bench_dir, compare, datagen, dropfolder, mib};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 1 } else { 5 };
    let hostile_only = std::env::args().any(|a| a == "--hostile");
    let dir = bench_dir();
    let config = dir.join("validate.toml");
    std::fs::write(
        &config,
        datagen::config("file:///tmp/unused", 3_500_000, ""),
    )
    .expect("write bench config");

    let sizes: &[u64] = if hostile_only {
        &[]
    } else {
        &[350_000, 3_500_000]
    };
    if !hostile_only {
        println!(
            "| rows | file | gzip -dc | dropfolder validate | ratio | rows/s | MB/s | peak RSS gzip / validate |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    }
    for &rows in sizes {
        let file = dir.join(format!("users-{rows}.csv.gz"));
        datagen::ensure_file(&file, rows).expect("generate bench data");
        let compressed = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        let decompressed = decompressed_len(&file);
        let results = compare(
            runs,
            &mut [
                ("gzip -dc", &mut || {
                    let mut c = Command::new("gzip");
                    c.arg("-dc").arg(&file);
                    c
                }),
                ("dropfolder validate", &mut || {
                    let mut c = dropfolder();
                    c.arg("--config").arg(&config).arg("validate").arg(&file);
                    c
                }),
            ],
        );
        let (gzip, ours) = (results[0], results[1]);
        let secs = ours.wall.as_secs_f64();
        println!(
            "| {rows} | {:.1} MB | {:.3} s | {:.3} s | {:.2}× | {:.0} | {:.0} | {:.1} / {:.1} MiB |",
            compressed as f64 / 1e6,
            gzip.wall.as_secs_f64(),
            secs,
            secs / gzip.wall.as_secs_f64(),
            rows as f64 / secs,
            decompressed as f64 / 1e6 / secs,
            mib(gzip.max_rss_kib),
            mib(ours.max_rss_kib),
        );
    }

    println!("\n| hostile file | dropfolder validate | peak RSS |");
    println!("|---|---:|---:|");
    let bomb = dir.join("bomb-4gib.csv.gz");
    datagen::ensure_zero_bomb(&bomb, 1024).expect("generate bomb");
    let field = dir.join("field-64mib.csv.gz");
    datagen::ensure_huge_field(&field, 64 << 20).expect("generate 64 MiB field");
    let rows = dir.join("rows-3gb.csv.gz");
    datagen::ensure_row_bomb(&rows, 300).expect("generate row bomb");
    let header = dir.join("header-150000-columns.csv.gz");
    datagen::ensure_wide_header(&header, 150_000).expect("generate wide header");
    for (name, file) in [
        ("4 GiB of zeros in 1,024 gzip members", &bomb),
        ("3 GB of valid 1 KB rows (stops at the 2 GiB cap)", &rows),
        ("one 64 MiB field", &field),
        ("a header of 150,000 unknown columns", &header),
    ] {
        let results = compare(
            1,
            &mut [(name, &mut || {
                let mut c = dropfolder();
                c.arg("--config").arg(&config).arg("validate").arg(file);
                c
            })],
        );
        println!(
            "| {name} | {:.3} s | {:.1} MiB |",
            results[0].wall.as_secs_f64(),
            mib(results[0].max_rss_kib)
        );
    }
}

/// The decompressed size, from a streaming count (the gzip trailer holds it only mod 4 GiB).
fn decompressed_len(file: &std::path::Path) -> u64 {
    let reader = std::fs::File::open(file).expect("open bench data");
    let mut decoder = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(reader));
    std::io::copy(&mut decoder, &mut std::io::sink()).expect("count decompressed bytes")
}
