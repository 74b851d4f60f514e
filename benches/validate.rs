//! `dropfolder validate` against `gzip -dc FILE > /dev/null`, side by side in one run, on
//! 350,000 and 3,500,000 rows; then time and peak memory on hostile files: a decompression
//! bomb, a 64 MiB field, a 150,000-column header.
//!
//! Run: `cargo bench --bench validate` (add `-- --quick` for one run of each, `-- --hostile`
//! for the hostile files only). The ratio is the median of the pairs' own ratios, with their
//! range; `DROPFOLDER_BASELINE=<another dropfolder binary>` adds that binary to each pair (an
//! earlier build, for an A/B of a change in the same run).

mod support;

use std::process::Command;

use support::{
    bench_dir, compare, datagen, dropfolder, mib, paired_ratio, run_interleaved, summarize,
};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 1 } else { 7 };
    let baseline = std::env::var_os("DROPFOLDER_BASELINE");
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
            "| rows | file | gzip -dc | dropfolder validate | ratio (median of {runs} pairs, range) | rows/s | MB/s | peak RSS gzip / validate |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    }
    for &rows in sizes {
        let file = dir.join(format!("users-{rows}.csv.gz"));
        datagen::ensure_file(&file, rows).expect("generate bench data");
        let compressed = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        let decompressed = decompressed_len(&file);
        let mut gzip_dc = || {
            let mut c = Command::new("gzip");
            c.arg("-dc").arg(&file);
            c
        };
        let mut ours = || {
            let mut c = dropfolder();
            c.arg("--config").arg(&config).arg("validate").arg(&file);
            c
        };
        let mut earlier = || {
            let mut c = Command::new(baseline.clone().unwrap_or_default());
            c.env("RUST_LOG", "warn")
                .stderr(std::process::Stdio::null())
                .arg("--config")
                .arg(&config)
                .arg("validate")
                .arg(&file);
            c
        };
        let mut commands: Vec<(&str, &mut dyn FnMut() -> Command)> = vec![
            ("gzip -dc", &mut gzip_dc),
            ("dropfolder validate", &mut ours),
        ];
        if baseline.is_some() {
            commands.push(("baseline validate", &mut earlier));
        }
        let runs_of = run_interleaved(runs, &mut commands);
        let ratio = paired_ratio(&runs_of[0], &runs_of[1]);
        let earlier_ratio = runs_of.get(2).map(|b| paired_ratio(&runs_of[0], b));
        let results = summarize(runs_of);
        let (gzip, ours) = (results[0], results[1]);
        let secs = ours.wall.as_secs_f64();
        println!(
            "| {rows} | {:.1} MB | {:.3} s | {:.3} s | {ratio} | {:.0} | {:.0} | {:.1} / {:.1} MiB |",
            compressed as f64 / 1e6,
            gzip.wall.as_secs_f64(),
            secs,
            rows as f64 / secs,
            decompressed as f64 / 1e6 / secs,
            mib(gzip.max_rss_kib),
            mib(ours.max_rss_kib),
        );
        if let (Some(ratio), Some(b)) = (earlier_ratio, results.get(2)) {
            println!(
                "| {rows} | baseline binary | | {:.3} s | {ratio} | | | {:.1} MiB |",
                b.wall.as_secs_f64(),
                mib(b.max_rss_kib),
            );
        }
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
