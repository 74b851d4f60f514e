//! `dropfolder import` of 350,000 rows into an HTTP sink served on 127.0.0.1 by this bench:
//! the generic JSON-records sink (JSON arrays up to 1 MiB, the default) and the streaming
//! ingest preset (one object per request), with rows/s, requests and bytes received.
//!
//! Run: `cargo bench --bench http_sink` (add `-- --quick` for one run of each).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use support::{bench_dir, compare, datagen, dropfolder, mib};

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    bytes: AtomicU64,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 1 } else { 3 };
    let rows = 350_000u64;
    let dir = bench_dir();
    let file = dir.join(format!("users-{rows}.csv.gz"));
    datagen::ensure_file(&file, rows).expect("generate bench data");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let counts = Arc::new(Counts::default());
    let served = counts.clone();
    let app = Router::new().fallback(move |body: Bytes| {
        let counts = served.clone();
        async move {
            counts.requests.fetch_add(1, Ordering::Relaxed);
            counts.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
            "ok"
        }
    });
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    runtime.spawn(async move { axum::serve(listener, app).await });
    std::fs::write(dir.join("ingest-token"), "bench-token").expect("token file");

    println!("| sink | rows | wall | rows/s | requests | MB received | peak RSS |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, sink) in [
        (
            "generic (JSON arrays, 1 MiB bodies)",
            format!("kind = \"http\"\nurl = \"{url}/records\""),
        ),
        (
            "streaming-ingest (one object per request)",
            format!(
                "kind = \"http\"\npreset = \"streaming-ingest\"\nurl = \"{url}/stream/v0/data/is-bench\"\nauth = {{ type = \"bearer\", token_file = \"ingest-token\" }}"
            ),
        ),
    ] {
        let config = dir.join("http-sink.toml");
        let db = dir.join("http-sink.db");
        let state = format!(
            "[state]\nurl = \"sqlite://{}\"\n[outbound]\nallow_networks = [\"127.0.0.0/8\"]\n[sink]\n{sink}\n",
            db.display()
        );
        std::fs::write(&config, datagen::config("file:///tmp/unused", rows, &state))
            .expect("write config");
        counts.requests.store(0, Ordering::Relaxed);
        counts.bytes.store(0, Ordering::Relaxed);
        let results = compare(
            runs,
            &mut [(name, &mut || {
                // A fresh ledger each run, or the file would be "already imported".
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
                }
                let mut c = dropfolder();
                c.arg("--config").arg(&config).arg("import").arg(&file);
                c
            })],
        );
        let m = results[0];
        let requests = counts.requests.load(Ordering::Relaxed) / runs as u64;
        let bytes = counts.bytes.load(Ordering::Relaxed) / runs as u64;
        println!(
            "| {name} | {rows} | {:.2} s | {:.0} | {requests} | {:.1} | {:.1} MiB |",
            m.wall.as_secs_f64(),
            rows as f64 / m.wall.as_secs_f64(),
            bytes as f64 / 1e6,
            mib(m.max_rss_kib)
        );
    }
}
