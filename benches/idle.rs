//! What integrations with nothing to do cost, at 1,000 of them (or `-- --integrations N`) in
//! one `dropfolder run`:
//!
//! 1. Local folders (an empty `current/` each), the state on SQLite: wall time of the whole
//!    process, and its fsyncs (`strace -f -c`, when strace is installed).
//! 2. The same with the state on PostgreSQL (when `PG_ADMIN_URL` and `DATABASE_URL` are set,
//!    as `source /work/wt/services.env` or `tests/run` set them): wall time, and the state rows
//!    a run rewrites and the transactions that wrote them (each row's `xmin`).
//! 3. S3 on LocalStack (when `LOCALSTACK_ENDPOINT` is set), each integration under its own
//!    prefix with its own role (`role_arn` + `external_id`, the region discovered), through a
//!    counting proxy (`tests/common/counting_proxy.rs`), at `concurrency = 16`: a fresh
//!    `dropfolder run` (every integration assumes its role and finds its region), then two
//!    scans in one process as `watch` makes them (`Worker::run_once` twice, in a child
//!    process: this bench run with `--scan-twice`): requests by kind and time of each scan,
//!    and the child's peak RSS with every integration's credentials and region kept.
//!
//! Every run is measured after one warm-up run (which writes the status rows once). Figures
//! are the median of the runs with their range.
//!
//! Run: `cargo bench --bench idle` (add `-- --quick` for one run of each, `-- --runs N`,
//! `-- --only sqlite|postgres|s3` for one part). Building the release
//! binary takes minutes on a small machine; `cargo bench --profile dev --bench idle` measures
//! a debug build of dropfolder (with optimized dependencies) instead, and says so.

mod support;

#[path = "../tests/common/counting_proxy.rs"]
mod counting_proxy;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{bench_dir, dropfolder, measure};

/// Integrations per run: 1,000, or `-- --integrations N`.
fn integrations() -> usize {
    static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COUNT.get_or_init(|| {
        let args: Vec<String> = std::env::args().collect();
        args.iter()
            .position(|a| a == "--integrations")
            .and_then(|i| args.get(i + 1)?.parse().ok())
            .unwrap_or(1_000)
    })
}
const CONCURRENCY: usize = 16;

/// [`integrations()`] local integrations with an empty `current/` under `dir`, on `state`.
fn local_config(dir: &Path, state: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("bench dir");
    let mut config =
        format!("{state}\n[schedule]\nconcurrency = {CONCURRENCY}\n[schemas.s]\nid = \"string\"\n");
    for i in 0..integrations() {
        let bucket = dir.join(format!("bucket-{i}"));
        std::fs::create_dir_all(bucket.join("current")).expect("bucket");
        let _ = write!(
            config,
            "\n[[integrations]]\nname = \"t{i}\"\nentity = \"user\"\nschema = \"s\"\nbucket = \"file://{}\"\n",
            bucket.display()
        );
    }
    let path = dir.join("dropfolder.toml");
    std::fs::write(&path, config).expect("write config");
    path
}

fn run_command(config: &Path) -> Command {
    let mut command = dropfolder();
    command
        .arg("--config")
        .arg(config)
        .arg("run")
        .stdout(Stdio::null());
    command
}

/// Wall times of `runs` runs of `dropfolder run`, after one warm-up run, and the largest
/// peak RSS (KiB); after each run, `after_each` is called (to count what it wrote).
fn time_runs(config: &Path, runs: usize, mut after_each: impl FnMut()) -> (Vec<Duration>, u64) {
    assert!(measure(&mut run_command(config)).success, "warm-up run");
    after_each();
    let mut rss = 0;
    let times = (0..runs)
        .map(|_| {
            let m = measure(&mut run_command(config));
            assert!(m.success, "dropfolder run failed");
            after_each();
            rss = rss.max(m.max_rss_kib);
            m.wall
        })
        .collect();
    (times, rss)
}

/// "median 0.41 s (range 0.39-0.47 s, 5 runs)".
fn spread(times: &[Duration]) -> String {
    let mut secs: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
    secs.sort_by(f64::total_cmp);
    let (low, high) = (secs[0], secs[secs.len() - 1]);
    format!(
        "median {:.2} s (range {low:.2}-{high:.2} s, {} runs)",
        secs[secs.len() / 2],
        secs.len()
    )
}

/// The fsync and fdatasync calls of one run under `strace -f -c`, or `None` without strace.
fn fsyncs(config: &Path) -> Option<u64> {
    let summary = bench_dir().join("idle-strace.txt");
    let status = Command::new("strace")
        .args(["-f", "-c", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&summary)
        .arg(env!("CARGO_BIN_EXE_dropfolder"))
        .arg("--config")
        .arg(config)
        .arg("run")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    if !status.success() {
        return None;
    }
    let text = std::fs::read_to_string(&summary).ok()?;
    // "% time seconds usecs/call calls [errors] syscall": calls is the 4th column.
    Some(
        text.lines()
            .filter(|l| l.ends_with(" fsync") || l.ends_with(" fdatasync"))
            .filter_map(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok())
            .sum(),
    )
}

fn sqlite(runs: usize) {
    let dir = bench_dir().join("idle-sqlite");
    let _ = std::fs::remove_dir_all(&dir);
    let db = dir.join("dropfolder.db");
    let config = local_config(
        &dir,
        &format!("[state]\nurl = \"sqlite://{}\"", db.display()),
    );
    let (times, rss) = time_runs(&config, runs, || {});
    let fsyncs = fsyncs(&config).map_or("n/a (no strace)".to_string(), |n| {
        format!(
            "{n} ({:.3} per integration)",
            n as f64 / integrations() as f64
        )
    });
    println!(
        "sqlite state, {} idle integrations: {}, peak RSS {:.1} MiB; fsyncs in one run: {fsyncs}",
        integrations(),
        spread(&times),
        support::mib(rss)
    );
}

async fn pg_client(url: &str, password: Option<&str>) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = url.parse().expect("postgres url");
    if let Some(password) = password {
        config.password(password);
    }
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Each state row with the transaction that last wrote it.
async fn pg_rows(client: &tokio_postgres::Client) -> Vec<String> {
    let mut rows = Vec::new();
    for table in ["leases", "integration_status", "drops", "callbacks"] {
        for row in client
            .query(
                &format!("SELECT xmin::text || ' ' || row_to_json(t)::text FROM {table} t"),
                &[],
            )
            .await
            .expect("select")
        {
            rows.push(format!("{table} {}", row.get::<_, String>(0)));
        }
    }
    rows
}

async fn postgres(runs: usize) {
    let (Ok(admin_url), Ok(app_url)) =
        (std::env::var("PG_ADMIN_URL"), std::env::var("DATABASE_URL"))
    else {
        println!("postgres state: skipped (PG_ADMIN_URL and DATABASE_URL are not set)");
        return;
    };
    let password = std::env::var("DATABASE_PASSWORD").ok();
    let name = format!("idle_bench_{}", std::process::id());
    let admin = pg_client(&admin_url, None).await;
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\" OWNER dropfolder"))
        .await
        .expect("create database");
    let base = app_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&app_url);
    let url = format!("{base}/{name}");
    let dir = bench_dir().join("idle-postgres");
    let _ = std::fs::remove_dir_all(&dir);
    let config = local_config(
        &dir,
        &format!("[state]\nurl = \"{url}\"\npassword_env = \"DATABASE_PASSWORD\""),
    );
    let client = pg_client(&url, password.as_deref()).await;
    let handle = tokio::runtime::Handle::current();
    let mut before: Vec<String> = Vec::new();
    let mut written = Vec::new();
    let (times, _) = tokio::task::block_in_place(|| {
        time_runs(&config, runs, || {
            let rows = handle.block_on(pg_rows(&client));
            let changed: Vec<&String> = rows.iter().filter(|r| !before.contains(*r)).collect();
            let transactions: std::collections::BTreeSet<&str> =
                changed.iter().filter_map(|r| r.split(' ').nth(1)).collect();
            written.push((changed.len(), transactions.len()));
            before = rows;
        })
    });
    drop(client);
    // The warm-up run's writes are the first entry: the status rows, created once.
    let per_run = &written[1..];
    println!(
        "postgres state, {} idle integrations: {}; state rows written per run: {:?}, by {:?} transactions",
        integrations(),
        spread(&times),
        per_run.iter().map(|w| w.0).collect::<Vec<_>>(),
        per_run.iter().map(|w| w.1).collect::<Vec<_>>(),
    );
    let _ = admin
        .batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .await;
}

async fn s3(runs: usize) {
    let Ok(endpoint) = std::env::var("LOCALSTACK_ENDPOINT") else {
        println!("localstack: skipped (LOCALSTACK_ENDPOINT is not set)");
        return;
    };
    let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&endpoint)
        .load()
        .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&base)
            .force_path_style(true)
            .build(),
    );
    let bucket = format!("idle-bench-{}", std::process::id());
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    let proxy = counting_proxy::CountingProxy::start(&endpoint).await;
    let dir = bench_dir().join("idle-s3");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let mut text = format!(
        "[state]\nurl = \"sqlite://{}\"\n[schedule]\nconcurrency = {CONCURRENCY}\n[schemas.s]\nid = \"string\"\n",
        dir.join("dropfolder.db").display()
    );
    for i in 0..integrations() {
        // Each its own role; LocalStack grants any AssumeRole, and a customer's empty prefix
        // lists as empty.
        let _ = write!(
            text,
            "\n[[integrations]]\nname = \"t{i}\"\nentity = \"user\"\nschema = \"s\"\nbucket = \"{bucket}/t{i}\"\nendpoint = \"{}\"\nrole_arn = \"arn:aws:iam::000000000000:role/customer-{i}\"\nexternal_id = \"customer-{i}\"\n",
            proxy.url
        );
    }
    let config = dir.join("dropfolder.toml");
    std::fs::write(&config, &text).expect("write config");

    // A fresh process per run, as cron runs `dropfolder run`.
    let mut times = Vec::new();
    let mut counts = Vec::new();
    let mut rss = 0;
    tokio::task::block_in_place(|| {
        assert!(measure(&mut run_command(&config)).success, "warm-up run");
        for _ in 0..runs {
            proxy.reset();
            let m = measure(&mut run_command(&config));
            assert!(m.success, "dropfolder run failed");
            times.push(m.wall);
            rss = rss.max(m.max_rss_kib);
            counts.push(proxy.counts());
        }
    });
    println!(
        "localstack, {} integrations with their own roles, one `dropfolder run`: {}, peak RSS {:.1} MiB; requests {:?}",
        integrations(),
        spread(&times),
        support::mib(rss),
        counts.last()
    );

    // Two scans in one process, as `watch` makes them: the second reuses the roles' credentials
    // and the regions. In a child process (this bench, run again with `--scan-twice`), so that
    // its peak RSS is its own and not the proxy's.
    let mut firsts = Vec::new();
    let mut seconds = Vec::new();
    let mut rss = 0;
    let mut counts = (Default::default(), Default::default());
    tokio::task::block_in_place(|| {
        for _ in 0..runs {
            let twice = scan_twice(&config, &proxy);
            firsts.push(twice.first);
            seconds.push(twice.second);
            rss = rss.max(twice.max_rss_kib);
            counts = (twice.first_requests, twice.second_requests);
        }
    });
    println!(
        "localstack, two scans in one process: first scan {}; second scan {}; peak RSS {:.1} MiB; requests of the first scan {:?}, of the second {:?}",
        spread(&firsts),
        spread(&seconds),
        support::mib(rss),
        counts.0,
        counts.1
    );
}

struct ScannedTwice {
    first: Duration,
    second: Duration,
    first_requests: std::collections::BTreeMap<String, u64>,
    second_requests: std::collections::BTreeMap<String, u64>,
    max_rss_kib: u64,
}

/// Runs the `--scan-twice` child on `config`, counting each scan's requests apart.
fn scan_twice(config: &Path, proxy: &counting_proxy::CountingProxy) -> ScannedTwice {
    use std::io::{BufRead, BufReader, Write};
    proxy.reset();
    let mut child = Command::new(std::env::current_exe().expect("the bench's own path"))
        .arg("--scan-twice")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the child");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seconds = |tag: &str| -> Duration {
        let line = lines
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("the child ended before its {tag} scan"));
        let secs = line
            .strip_prefix(tag)
            .and_then(|s| s.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("the child said {line:?}"));
        Duration::from_secs_f64(secs)
    };
    let first = seconds("first");
    let first_requests = proxy.counts();
    proxy.reset();
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "go").expect("tell the child");
    let second = seconds("second");
    let second_requests = proxy.counts();
    drop(stdin);
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, and status/usage point to live locals.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4");
    std::mem::forget(child); // Reaped above; Child's drop must not wait again.
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    ScannedTwice {
        first,
        second,
        first_requests,
        second_requests,
        max_rss_kib: usage.ru_maxrss as u64,
    }
}

/// The child of [`scan_twice`]: one worker, a scan, a line on stdin, a second scan; each
/// scan's time on stdout.
async fn scan_twice_child(config: &Path) {
    use std::io::BufRead;
    let text = std::fs::read_to_string(config).expect("read config");
    let dir = config.parent().expect("config dir").to_path_buf();
    let settings = dropfolder::config::Config::parse(&text, dir)
        .expect("config parses")
        .compile(dropfolder::config::SecretCheck::Require)
        .expect("config compiles");
    let worker = dropfolder::worker::Worker::open(settings)
        .await
        .expect("worker");
    for tag in ["first", "second"] {
        if tag == "second" {
            let mut go = String::new();
            tokio::task::block_in_place(|| std::io::stdin().lock().read_line(&mut go))
                .expect("wait for the parent");
        }
        let started = Instant::now();
        let report = worker.run_once().await;
        assert!(!report.failed(), "{tag} scan failed");
        println!("{tag} {}", started.elapsed().as_secs_f64());
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a == "--scan-twice") {
        let config = args.get(2).expect("--scan-twice CONFIG");
        scan_twice_child(Path::new(config)).await;
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(if quick { 1 } else { 5 });
    let only = |part: &str| {
        args.iter()
            .position(|a| a == "--only")
            .and_then(|i| args.get(i + 1))
            .is_none_or(|wanted| wanted == part)
    };
    println!(
        "dropfolder binary: {} ({} profile)",
        env!("CARGO_BIN_EXE_dropfolder"),
        if cfg!(debug_assertions) {
            "dev"
        } else {
            "release"
        }
    );
    if only("sqlite") {
        sqlite(runs);
    }
    if only("postgres") {
        postgres(runs).await;
    }
    if only("s3") {
        s3(runs).await;
    }
}
