//! Peak RSS of `dropfolder run` while the customer's callback answers 500 with a 3 GB body
//! (generated as it is read, never stored), served on 127.0.0.1 by this bench: what a hostile
//! or broken receiver costs the process every other tenant shares. Also how many bytes of
//! the body left the server (read by the client, or held in socket buffers).
//!
//! Run: `cargo bench --profile dev --bench hostile_callback` (the debug binary, whose HTTP
//! stack is optimized as in every test build; a release build bench is the same command
//! without `--profile dev`). Add `-- --quick` for one run.

mod support;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use support::{bench_dir, dropfolder, measure, mib};

const BODY_BYTES: u64 = 3_000_000_000;
const CHUNK: usize = 64 * 1024;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 1 } else { 5 };
    let dir = bench_dir().join("hostile-callback");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let streamed = Arc::new(AtomicU64::new(0));
    let counter = streamed.clone();
    let app = Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            let chunk = Bytes::from(vec![b'x'; CHUNK]);
            let body = futures_util::stream::unfold(BODY_BYTES, move |left| {
                let (chunk, counter) = (chunk.clone(), counter.clone());
                async move {
                    let n = left.min(CHUNK as u64);
                    if n == 0 {
                        return None;
                    }
                    counter.fetch_add(n, Ordering::Relaxed);
                    Some((
                        Ok::<_, std::convert::Infallible>(chunk.slice(..n as usize)),
                        left - n,
                    ))
                }
            });
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [("content-length", BODY_BYTES.to_string())],
                Body::from_stream(body),
            )
        }
    });
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let url = format!("http://{}/cb", listener.local_addr().expect("addr"));
    runtime.spawn(async move { axum::serve(listener, app).await });

    let mut peaks = Vec::new();
    let mut sent = Vec::new();
    for _ in 0..runs {
        // A fresh bucket and state each run: one ready folder, one callback to deliver.
        let _ = std::fs::remove_dir_all(&dir);
        let folder = dir.join("bucket/current/dt=20210228");
        std::fs::create_dir_all(&folder).expect("bucket");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"id,email\nu1,a@example.com\n").expect("gzip");
        std::fs::write(folder.join("users.csv.gz"), gz.finish().expect("gzip")).expect("file");
        std::fs::write(folder.join("_SUCCESS"), b"").expect("_SUCCESS");
        std::fs::write(dir.join("callback.key"), "bench-key").expect("key");
        let config = dir.join("dropfolder.toml");
        std::fs::write(
            &config,
            format!(
                "[state]\nurl = \"sqlite://{db}\"\n[outbound]\nallow_networks = [\"127.0.0.0/8\"]\n[schemas.users]\nid = \"string\"\nemail = \"string\"\n[[integrations]]\nname = \"bench\"\nentity = \"user\"\nschema = \"users\"\nbucket = \"file://{bucket}\"\ncallback = {{ url = \"{url}\", api_key_file = \"callback.key\", timeout_seconds = 180 }}\n",
                db = dir.join("state.db").display(),
                bucket = dir.join("bucket").display(),
            ),
        )
        .expect("config");
        streamed.store(0, Ordering::Relaxed);
        let mut command = dropfolder();
        command
            .arg("--config")
            .arg(&config)
            .arg("run")
            .stdout(std::process::Stdio::null());
        let m = measure(&mut command);
        assert!(m.success, "dropfolder run failed");
        peaks.push(m.max_rss_kib);
        sent.push(streamed.load(Ordering::Relaxed));
    }
    peaks.sort_unstable();
    sent.sort_unstable();
    println!("| what | runs | median | range |");
    println!("|---|---:|---:|---:|");
    println!(
        "| peak RSS of `run` (callback answers 500 with {} GB) | {runs} | {:.1} MiB | {:.1}-{:.1} MiB |",
        BODY_BYTES / 1_000_000_000,
        mib(peaks[runs / 2]),
        mib(peaks[0]),
        mib(peaks[runs - 1])
    );
    println!(
        "| body bytes that left the server (3 attempts) | {runs} | {:.2} MiB | {:.2}-{:.2} MiB |",
        sent[runs / 2] as f64 / 1048576.0,
        sent[0] as f64 / 1048576.0,
        sent[runs - 1] as f64 / 1048576.0
    );
}
