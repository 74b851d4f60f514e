//! Tenants sharing one `dropfolder run` (the release binary), two figures:
//!
//! 1. A hanging callback: 4 tenants at `concurrency = 2`, one folder of 20,000 rows each; the
//!    first tenant's callback goes to a local server that accepts and never answers
//!    (`timeout_seconds = 5`, `retry_count = 1`). Measured: when the other tenants' folders
//!    are finished (their `status.txt` in `processed/`), from the start of the run, against
//!    the same run without any callback (their own work).
//! 2. 20 tenants on the embedded SQLite at the default concurrency, 2 folders of 20,000 rows
//!    each, a fresh database each run: folders failed, and "database is locked" anywhere.
//!
//! Run: `cargo bench --bench tenants` (add `-- --quick` for one run of each).

mod support;

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{bench_dir, datagen, dropfolder};

const ROWS: u64 = 20_000;
/// The bench's callback receiver is on 127.0.0.1, which outbound requests may reach only when
/// the operator allows it.
const ALLOW_LOOPBACK: &str = "[outbound]\nallow_networks = [\"127.0.0.0/8\"]\n";
const DATES: [&str; 2] = ["20210301", "20210302"];

/// A server that accepts connections and never answers, for the life of the bench.
fn hanging_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    format!("http://{addr}")
}

/// `count` tenants over fresh buckets under `dir`, `folders` ready folders each; the config
/// path. `callback(i)` adds lines to tenant `i`.
fn setup(
    dir: &Path,
    data: &Path,
    count: usize,
    folders: usize,
    top: &str,
    callback: impl Fn(usize) -> String,
) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("bench dir");
    let mut config = format!(
        "[state]\nurl = \"sqlite://{}\"\n{top}\n{ALLOW_LOOPBACK}[schemas.bench]\n{}\n",
        dir.join("dropfolder.db").display(),
        datagen::SCHEMA
    );
    for i in 0..count {
        let bucket = dir.join(format!("bucket-{i}"));
        for date in &DATES[..folders] {
            let folder = bucket.join(format!("current/dt={date}"));
            std::fs::create_dir_all(&folder).expect("folder");
            std::fs::copy(data, folder.join("users.csv.gz")).expect("copy data");
            std::fs::write(folder.join("_SUCCESS"), b"").expect("_SUCCESS");
        }
        let _ = write!(
            config,
            "\n[[integrations]]\nname = \"t{i}\"\nentity = \"user\"\nschema = \"bench\"\nbucket = \"file://{}\"\ndate_format = \"{}\"\nmax_rows = {ROWS}\n{}\n",
            bucket.display(),
            datagen::DATE_FORMAT,
            callback(i)
        );
    }
    let path = dir.join("dropfolder.toml");
    std::fs::write(&path, config).expect("write config");
    path
}

/// Runs `dropfolder run`, noting when each tenant's first folder is finished: those times
/// (from the start), the run's wall time, stdout and stderr.
fn run_watching(dir: &Path, config: &Path, count: usize) -> (Vec<Duration>, Duration, String) {
    let started = Instant::now();
    let mut child = dropfolder()
        .arg("--config")
        .arg(config)
        .arg("run")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dropfolder");
    let status = |i: usize| {
        dir.join(format!("bucket-{i}/processed/{}/status.txt", DATES[0]))
            .exists()
    };
    let mut finished: Vec<Option<Duration>> = vec![None; count];
    loop {
        for (i, at) in finished.iter_mut().enumerate() {
            if at.is_none() && status(i) {
                *at = Some(started.elapsed());
            }
        }
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = started.elapsed();
    let output = child.wait_with_output().expect("dropfolder output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let finished = finished.into_iter().map(|at| at.unwrap_or(wall)).collect();
    (finished, wall, text)
}

fn seconds(mut values: Vec<f64>) -> String {
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    format!(
        "{median:.2} s (range {:.2}-{:.2})",
        values[0],
        values[values.len() - 1]
    )
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 1 } else { 5 };
    let root = bench_dir();
    let data = root.join(format!("users-{ROWS}.csv.gz"));
    datagen::ensure_file(&data, ROWS).expect("generate bench data");

    // 1. Others' wait while one tenant's callback hangs.
    let hang = hanging_server();
    let key = root.join("tenants-callback.key");
    std::fs::write(&key, "bench-key\n").expect("key file");
    let dir = root.join("tenants-hang");
    let (mut alone, mut beside, mut walls) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        for hanging in [false, true] {
            let config = setup(&dir, &data, 4, 1, "[schedule]\nconcurrency = 2\n", |i| {
                if hanging && i == 0 {
                    format!(
                        "callback = {{ url = \"{hang}/hook\", api_key_file = \"{}\", timeout_seconds = 5, retry_count = 1 }}",
                        key.display()
                    )
                } else {
                    String::new()
                }
            });
            let (finished, wall, _) = run_watching(&dir, &config, 4);
            let others = finished[1..]
                .iter()
                .map(Duration::as_secs_f64)
                .fold(0.0, f64::max);
            if hanging {
                beside.push(others);
                walls.push(wall.as_secs_f64());
            } else {
                alone.push(others);
            }
        }
    }
    println!("| 4 tenants, concurrency 2, {ROWS} rows each | the other 3 tenants all finished |");
    println!("|---|---:|");
    println!(
        "| no callback anywhere (their own work) | {} |",
        seconds(alone)
    );
    println!(
        "| t0's callback never answers (5 s timeout, 1 attempt) | {} |",
        seconds(beside)
    );
    println!(
        "| (the run itself ends after t0's callback gave up) | {} |",
        seconds(walls)
    );

    // 2. 20 tenants on SQLite, fresh runs.
    let dir = root.join("tenants-sqlite");
    println!();
    println!(
        "| run | 20 tenants × 2 folders × {ROWS} rows, concurrency 8 | folders failed | \"database is locked\" | wall |"
    );
    println!("|---:|---|---:|---:|---:|");
    for run in 1..=runs {
        let config = setup(&dir, &data, 20, 2, "", |_| String::new());
        let (_, wall, text) = run_watching(&dir, &config, 20);
        let failed = (0..20)
            .flat_map(|i| DATES.iter().map(move |d| (i, d)))
            .filter(|(i, d)| {
                !dir.join(format!("bucket-{i}/processed/{d}/status.txt"))
                    .exists()
            })
            .count();
        let locked = text.matches("database is locked").count();
        println!(
            "| {run} | fresh database | {failed} | {locked} | {:.2} s |",
            wall.as_secs_f64()
        );
    }
}
