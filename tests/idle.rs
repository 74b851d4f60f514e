//! An integration with nothing to do costs no write to the state database: no lease taken,
//! no journal row, no status row rewritten per scan. Its scan record is kept and written with
//! the others' in one write (`Worker::record_scans`, at the end of `run` and every few
//! seconds in `watch`). On SQLite (`PRAGMA data_version` from another connection changes on
//! any commit) and on PostgreSQL (each row's `xmin` changes when it is written).
//!
//! And an S3 integration (LocalStack, behind a counting proxy) assumes its role and finds its
//! bucket's region once, then scans with a LIST alone until the credentials near expiry or S3
//! says the credentials or the region no longer hold.

mod common;
#[path = "common/counting_proxy.rs"]
mod counting_proxy;
#[path = "common/localstack.rs"]
mod localstack;
#[path = "common/pg.rs"]
mod pg;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use dropfolder::config::{Config, SecretCheck};
use dropfolder::settings::Settings;
use dropfolder::store::{REFRESH_MARGIN, S3Connections, StoreSettings};
use dropfolder::worker::Worker;

const INTEGRATIONS: usize = 10;

/// `INTEGRATIONS` local integrations under `dir` on the `state` section: t1 has a folder
/// waiting for its `_SUCCESS`, t2 a stray file in `current/`, the others nothing.
fn config(dir: &Path, state: &str) -> Settings {
    let mut text = format!("{state}\n[schemas.s]\nid = \"string\"\n");
    for i in 0..INTEGRATIONS {
        let bucket = dir.join(format!("bucket-{i}"));
        std::fs::create_dir_all(bucket.join("current")).expect("bucket");
        let _ = write!(
            text,
            "\n[[integrations]]\nname = \"t{i}\"\nentity = \"user\"\nschema = \"s\"\nbucket = \"file://{}\"\n",
            bucket.display()
        );
    }
    let waiting = dir.join("bucket-1/current/dt=20210301");
    std::fs::create_dir_all(&waiting).expect("folder");
    std::fs::write(waiting.join("users.csv.gz"), common::gzip(b"id\nu1\n")).expect("data");
    std::fs::write(dir.join("bucket-2/current/stray.txt"), b"x").expect("stray");
    Config::parse(&text, dir.to_path_buf())
        .expect("config parses")
        .compile(SecretCheck::Require)
        .expect("config compiles")
}

/// Scans every integration on its own, as `watch` does, and checks what each found.
async fn scan_each(worker: &Worker) {
    for integration in &worker.settings.integrations {
        let report = worker.run_integration(integration).await;
        assert_eq!(report.error, None, "{}", integration.name);
        assert_eq!(report.skipped, None, "{}", integration.name);
        assert!(report.folders.is_empty(), "{}", integration.name);
        match integration.name.as_str() {
            "t1" => assert_eq!(report.waiting, ["current/dt=20210301/"]),
            "t2" => assert_eq!(report.notices.len(), 1, "{:?}", report.notices),
            _ => assert!(report.waiting.is_empty() && report.notices.is_empty()),
        }
    }
}

/// Every row of the state's tables, as text.
fn sqlite_rows(db: &rusqlite::Connection) -> Vec<String> {
    let mut rows = Vec::new();
    for table in ["leases", "integration_status", "drops", "callbacks"] {
        let mut stmt = db
            .prepare(&format!("SELECT * FROM {table}"))
            .expect("select");
        let columns = stmt.column_count();
        let mut query = stmt.query([]).expect("query");
        while let Some(row) = query.next().expect("row") {
            let values: Vec<String> = (0..columns)
                .map(|c| format!("{:?}", row.get_ref(c).expect("value")))
                .collect();
            rows.push(format!("{table}: {}", values.join(", ")));
        }
    }
    rows
}

fn data_version(db: &rusqlite::Connection) -> i64 {
    db.query_row("PRAGMA data_version", [], |row| row.get(0))
        .expect("data_version")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_integration_is_scanned_without_a_write_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db_path = dir.path().join("dropfolder.db");
    let config = config(
        dir.path(),
        &format!("[state]\nurl = \"sqlite://{}\"", db_path.display()),
    );
    let worker = Worker::open(config).await.expect("worker");
    // A first run: whatever a run writes once (the status rows) is written.
    assert!(!worker.run_once().await.failed());
    let observer = rusqlite::Connection::open(&db_path).expect("open the state");
    let (version, rows) = (data_version(&observer), sqlite_rows(&observer));

    scan_each(&worker).await;
    assert_eq!(
        data_version(&observer),
        version,
        "a commit during idle scans"
    );
    assert_eq!(sqlite_rows(&observer), rows);

    // The kept records, in one write: every integration's scan time moves, t2's notice is kept.
    worker.record_scans().await.expect("record the scans");
    assert_ne!(data_version(&observer), version);
    let scanned: Vec<(String, String, String)> = observer
        .prepare("SELECT integration, last_scan_at, notices FROM integration_status ORDER BY integration")
        .and_then(|mut stmt| {
            stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect()
        })
        .expect("status rows");
    assert_eq!(scanned.len(), INTEGRATIONS);
    for (integration, at, notices) in &scanned {
        assert!(
            !rows.iter().any(|r| r.contains(at.as_str())),
            "{integration}: the scan time did not move"
        );
        assert_eq!(
            notices.contains("stray.txt"),
            integration == "t2",
            "{integration}: {notices}"
        );
    }
}

/// Every row of the state's tables with its `xmin` (the transaction that last wrote it).
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
            rows.push(format!("{table}: {}", row.get::<_, String>(0)));
        }
    }
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_integration_is_scanned_without_a_write_on_postgres() {
    let Some(cluster) = pg::cluster() else { return };
    let url = cluster.fresh_database().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(
        dir.path(),
        &format!("[state]\nurl = \"{url}\"\npassword_env = \"DATABASE_PASSWORD\""),
    );
    let worker = Worker::open(config).await.expect("worker");
    assert!(!worker.run_once().await.failed());
    let client = cluster.client(&url).await;
    let rows = pg_rows(&client).await;
    assert_eq!(
        rows.iter()
            .filter(|r| r.starts_with("integration_status"))
            .count(),
        INTEGRATIONS
    );

    scan_each(&worker).await;
    assert_eq!(pg_rows(&client).await, rows, "a row written by idle scans");

    worker.record_scans().await.expect("record the scans");
    let after = pg_rows(&client).await;
    assert_eq!(
        after
            .iter()
            .filter(|r| r.starts_with("integration_status") && !rows.contains(r))
            .count(),
        INTEGRATIONS,
        "every scan time written"
    );
    // One statement: every status row written by the same transaction.
    let writers: std::collections::BTreeSet<&str> = after
        .iter()
        .filter(|r| r.starts_with("integration_status"))
        .filter_map(|r| r.split(' ').nth(1))
        .collect();
    assert_eq!(writers.len(), 1, "{after:#?}");
}

/// One S3 integration `t` on `bucket/px` through `proxy` with `role` (external ID
/// `SUB-123`), its region discovered.
fn s3_settings(dir: &Path, bucket: &str, proxy: &str, role: &str) -> Settings {
    let text = format!(
        "[state]\nurl = \"sqlite://{db}\"\n[schemas.s]\nid = \"string\"\n\n[[integrations]]\nname = \"t\"\nentity = \"user\"\nschema = \"s\"\nbucket = \"{bucket}/px\"\nendpoint = \"{proxy}\"\nrole_arn = \"{role}\"\nexternal_id = \"SUB-123\"\n",
        db = dir.join("dropfolder.db").display(),
    );
    Config::parse(&text, dir.to_path_buf())
        .expect("config parses")
        .compile(SecretCheck::Require)
        .expect("config compiles")
}

fn counts(entries: &[(&str, u64)]) -> BTreeMap<String, u64> {
    entries
        .iter()
        .map(|(kind, n)| (kind.to_string(), *n))
        .collect()
}

/// An S3 integration on LocalStack behind a counting proxy, with its own role.
struct S3Setup {
    ls: localstack::LocalStack,
    bucket: String,
    proxy: counting_proxy::CountingProxy,
    settings: Settings,
    _dir: tempfile::TempDir,
}

async fn s3_setup() -> Option<S3Setup> {
    let endpoint = localstack::endpoint()?;
    let ls = localstack::LocalStack::connect(endpoint.clone()).await;
    let bucket = ls.bucket().await;
    let role = ls.role(&bucket, "SUB-123").await;
    let proxy = counting_proxy::CountingProxy::start(&endpoint).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = s3_settings(dir.path(), &bucket, &proxy.url, &role);
    Some(S3Setup {
        ls,
        bucket,
        proxy,
        settings,
        _dir: dir,
    })
}

impl S3Setup {
    fn store(&self) -> &StoreSettings {
        self.settings.integrations[0]
            .store()
            .expect("an S3 integration")
    }

    /// What one scan of `t` sends: open its store, LIST `current/`.
    async fn scan(&self, connections: &S3Connections) -> BTreeMap<String, u64> {
        self.proxy.reset();
        let store = connections.open(self.store()).await.expect("open");
        store.list_page("current/", None).await.expect("list");
        self.proxy.counts()
    }
}

/// The second scan in one process (`watch`, or a `run` that scans again) sends its LIST and
/// nothing else. On main each scan assumed the role and asked for the region again (its
/// test pinned 2 AssumeRole and 2 GetBucketLocation over two scans).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_scan_assumes_no_role_and_asks_no_region() {
    let Some(setup) = s3_setup().await else {
        return;
    };
    let worker = Worker::open(setup.settings.clone()).await.expect("worker");
    let mut scans = Vec::new();
    for _ in 0..2 {
        setup.proxy.reset();
        let report = worker.run_once().await;
        assert!(!report.failed(), "{:?}", report.integrations);
        scans.push(setup.proxy.counts());
    }
    assert_eq!(
        scans,
        [
            counts(&[
                ("sts:AssumeRole", 1),
                ("s3:GetBucketLocation", 1),
                ("s3:ListObjectsV2", 1)
            ]),
            counts(&[("s3:ListObjectsV2", 1)]),
        ],
        "requests of the first and the second scan"
    );
}

/// The system's time moved by a test: credentials' expiry is judged by it.
#[derive(Debug, Clone, Default)]
struct ShiftedClock(Arc<AtomicU64>);

impl ShiftedClock {
    fn set(&self, ahead: Duration) {
        self.0.store(ahead.as_secs(), Ordering::SeqCst);
    }
}

impl aws_smithy_async::time::TimeSource for ShiftedClock {
    fn now(&self) -> SystemTime {
        SystemTime::now() + Duration::from_secs(self.0.load(Ordering::SeqCst))
    }
}

/// LocalStack's AssumeRole answers with credentials valid for an hour. Kept while more than
/// the margin is left, assumed again once it is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_near_expiry_are_assumed_again() {
    let Some(setup) = s3_setup().await else {
        return;
    };
    let clock = ShiftedClock::default();
    let connections = S3Connections::new(1).with_clock(clock.clone());
    assert_eq!(
        setup.scan(&connections).await,
        counts(&[
            ("sts:AssumeRole", 1),
            ("s3:GetBucketLocation", 1),
            ("s3:ListObjectsV2", 1)
        ])
    );
    let hour = Duration::from_secs(3600);
    clock.set(hour - REFRESH_MARGIN - Duration::from_secs(120));
    assert_eq!(
        setup.scan(&connections).await,
        counts(&[("s3:ListObjectsV2", 1)]),
        "two minutes before the margin: kept"
    );
    clock.set(hour - REFRESH_MARGIN + Duration::from_secs(60));
    assert_eq!(
        setup.scan(&connections).await,
        counts(&[("sts:AssumeRole", 1), ("s3:ListObjectsV2", 1)]),
        "within the margin: assumed again, the region still kept"
    );
}

/// A session the customer's side ended (S3 answers ExpiredToken, played by the proxy:
/// LocalStack never does) is assumed again at once, and the scan goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_assumed_again_at_once() {
    let Some(setup) = s3_setup().await else {
        return;
    };
    let connections = S3Connections::new(1);
    setup.scan(&connections).await;
    let issued = setup.proxy.issued();
    assert_eq!(issued.len(), 1, "{issued:?}");
    for key in issued.keys() {
        setup.proxy.expire(key);
    }
    assert_eq!(
        setup.scan(&connections).await,
        counts(&[("sts:AssumeRole", 1), ("s3:ListObjectsV2", 2)]),
        "the refused LIST, AssumeRole, the LIST again"
    );
    assert_eq!(
        setup.scan(&connections).await,
        counts(&[("s3:ListObjectsV2", 1)]),
        "the new credentials kept"
    );
}

/// The customer re-created their bucket in another region: S3 answers the kept region with
/// 301 PermanentRedirect (played by the proxy: LocalStack serves any region), the region is
/// asked again and the LIST made again, within the same scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_answering_from_another_region_is_located_again() {
    let Some(setup) = s3_setup().await else {
        return;
    };
    let connections = S3Connections::new(1);
    setup.scan(&connections).await;
    setup
        .ls
        .s3
        .delete_bucket()
        .bucket(&setup.bucket)
        .send()
        .await
        .expect("delete bucket");
    let eu = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&setup.ls.config)
            .region(aws_sdk_s3::config::Region::new("eu-west-1"))
            .force_path_style(true)
            .build(),
    );
    eu.create_bucket()
        .bucket(&setup.bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .expect("create the bucket in eu-west-1");
    setup.proxy.require_region(&setup.bucket, "eu-west-1");
    assert_eq!(
        setup.scan(&connections).await,
        counts(&[("s3:GetBucketLocation", 1), ("s3:ListObjectsV2", 2)]),
        "the redirected LIST, the region asked, the LIST again"
    );
    assert_eq!(
        setup.scan(&connections).await,
        counts(&[("s3:ListObjectsV2", 1)]),
        "the new region kept"
    );
}
