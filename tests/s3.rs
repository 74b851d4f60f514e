//! S3 for real, through LocalStack (started by `tests/run` on a free port): the store suite on
//! a bucket under a prefix, whole drops with an assumed role and with static keys, listings of
//! more than 1,000 keys, the customer replacing a file mid-import, and the request counts the
//! README quotes.

mod common;
#[path = "common/customer.rs"]
mod customer;
#[path = "common/localstack.rs"]
mod localstack;
#[path = "store/suite.rs"]
mod suite;

use std::sync::Arc;

use common::gzip;
use dropfolder::config::{Config, SecretCheck};
use dropfolder::store::{ObjectStore, S3Store, aws::base_config};
use dropfolder::worker::Worker;
use localstack::LocalStack;

const HEADER: &str = "id,email,signUpDate,score,isTrial\n";

/// A config with one integration on `bucket/px`, reached as `access` says.
fn config(ls: &LocalStack, bucket: &str, access: &str, db: &std::path::Path) -> Config {
    let text = format!(
        r#"
[state]
url = "sqlite://{db}"

[schemas.users]
id = "string"
email = "string"
signUpDate = "date"
score = "number"
isTrial = "boolean"

[[integrations]]
name = "acme-users"
entity = "user"
schema = "users"
bucket = "{bucket}/px"
endpoint = "{endpoint}"
date_format = "yyyy-MM-dd"
{access}
"#,
        db = db.display(),
        endpoint = ls.endpoint
    );
    let config = Config::parse(&text, std::path::PathBuf::new()).expect("config parses");
    assert_eq!(
        config.check(SecretCheck::Require),
        vec![],
        "config problems"
    );
    config
}

/// Static keys from the environment `tests/run` sets (LocalStack takes any).
const STATIC_KEYS: &str =
    "access_key_id_env = \"AWS_ACCESS_KEY_ID\"\nsecret_access_key_env = \"AWS_SECRET_ACCESS_KEY\"";

async fn store(config: &Config) -> S3Store {
    let base = base_config().await;
    let settings = config
        .compile(SecretCheck::Require)
        .expect("config compiles");
    S3Store::connect(
        &base,
        &settings.integrations[0]
            .store()
            .expect("an S3 integration")
            .access,
        bucket_of(config),
        "px",
    )
    .await
    .expect("connect to LocalStack")
}

fn bucket_of(config: &Config) -> &str {
    config.integrations[0]
        .bucket
        .as_deref()
        .unwrap_or_default()
        .split('/')
        .next()
        .unwrap_or_default()
}

#[tokio::test]
async fn s3_passes_the_store_suite_under_a_prefix() {
    let Some(endpoint) = localstack::endpoint() else {
        return;
    };
    let ls = LocalStack::connect(endpoint).await;
    let bucket = ls.bucket().await;
    let db = tempfile::tempdir().expect("temp dir");
    let config = config(&ls, &bucket, STATIC_KEYS, &db.path().join("x.db"));
    suite::run(&store(&config).await).await;
    // Everything the suite wrote stayed under the prefix.
    let keys = ls.keys(&bucket).await;
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k.starts_with("px/")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn the_region_is_discovered_and_copies_above_the_limit_go_in_parts() {
    let Some(endpoint) = localstack::endpoint() else {
        return;
    };
    let ls = LocalStack::connect(endpoint).await;
    let bucket = localstack::unique("df-eu");
    let location = aws_sdk_s3::types::CreateBucketConfiguration::builder()
        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
        .build();
    ls.s3
        .create_bucket()
        .bucket(&bucket)
        .create_bucket_configuration(location)
        .send()
        .await
        .expect("bucket in eu-west-1");
    let db = tempfile::tempdir().expect("temp dir");
    let config = config(&ls, &bucket, STATIC_KEYS, &db.path().join("x.db"));
    assert!(config.integrations[0].region.is_none());
    // 12 MiB copied in 5 MiB parts, each conditional on the version read.
    let store = store(&config).await.with_copy_limits(8 << 20, 5 << 20);
    let body: Vec<u8> = (0..12u32 << 20).map(|i| (i % 251) as u8).collect();
    ls.put(&bucket, "px/big.bin", body.clone()).await;
    let head = store.head("big.bin").await.expect("head").expect("exists");
    store
        .copy("big.bin", "copy/big.bin", &head.version, head.size)
        .await
        .expect("multipart copy");
    assert_eq!(
        ls.get(&bucket, "px/copy/big.bin").await.as_deref(),
        Some(body.as_slice())
    );
    assert_eq!(store.requests().get("UploadPartCopy"), Some(&3));
    ls.put(&bucket, "px/big.bin", b"replaced".to_vec()).await;
    let refused = store
        .copy("big.bin", "copy/big2.bin", &head.version, head.size)
        .await;
    assert!(
        matches!(refused, Err(dropfolder::store::StoreError::Changed { .. })),
        "{refused:?}"
    );
}

/// The drop scenarios of the local-folder tests, on a real bucket under a prefix.
async fn drops(ls: &LocalStack, bucket: &str, access: &str) {
    let db = tempfile::tempdir().expect("temp dir");
    let config = config(ls, bucket, access, &db.path().join("dropfolder.db"));
    let put_csv = |date: &str, name: &str, csv: String| {
        let key = format!("px/current/dt={date}/{name}");
        async move { ls.put(bucket, &key, gzip(csv.as_bytes())).await }
    };
    put_csv(
        "20210228",
        "users.csv.gz",
        format!("{HEADER}u1,a@x.com,2021-02-28,1,true\n"),
    )
    .await;
    ls.put(bucket, "px/current/dt=20210228/_SUCCESS", b"".to_vec())
        .await;
    put_csv(
        "20210301",
        "a-good.csv.gz",
        format!("{HEADER}u2,b@x.com,,,\n"),
    )
    .await;
    put_csv("20210301", "b-bad.csv.gz", "id,emial\nu3,c@x.com\n".into()).await;
    ls.put(bucket, "px/current/dt=20210301/_SUCCESS", b"".to_vec())
        .await;
    put_csv("20210302", "users.csv.gz", format!("{HEADER}u4,,,,\n")).await;
    ls.put(bucket, "px/current/backup/old.csv.gz", b"x".to_vec())
        .await;

    let worker = Worker::open(
        config
            .compile(dropfolder::config::SecretCheck::Require)
            .expect("config compiles"),
    )
    .await
    .expect("worker");
    let report = worker.run_once().await;
    assert!(!report.failed(), "{report:?}");
    assert_eq!(
        ls.text(bucket, "px/processed/20210228/status.txt").await,
        "SUCCESS\n1 record was uploaded\n"
    );
    assert_eq!(
        ls.text(bucket, "px/processed/20210301/status.txt").await,
        "ERROR\na-good.csv.gz: 1 record was uploaded\nb-bad.csv.gz: Parsing Errors:[ Unknown Column: 'emial' (did you mean 'email'?) ]\n"
    );
    let status: serde_json::Value = serde_json::from_slice(
        &ls.get(bucket, "px/processed/20210301/status.json")
            .await
            .expect("status.json"),
    )
    .expect("json");
    assert_eq!(
        status["folder_path"],
        format!("s3://{bucket}/px/processed/20210301")
    );
    let keys = ls.keys(bucket).await;
    assert!(
        keys.contains(&"px/current/dt=20210302/users.csv.gz".to_string()),
        "not ready: left alone"
    );
    assert!(
        keys.contains(&"px/current/backup/old.csv.gz".to_string()),
        "not a date: left alone"
    );
    assert!(
        !keys
            .iter()
            .any(|k| k.starts_with("px/current/dt=20210228")
                || k.starts_with("px/current/dt=20210301")),
        "{keys:?}"
    );
    assert_eq!(
        report.integrations[0].notices,
        ["current/backup/: not a dt=YYYYMMDD folder with a real date; left alone"]
    );

    // A re-drop of a processed date goes to -2.
    put_csv(
        "20210228",
        "users.csv.gz",
        format!("{HEADER}u1,again@x.com,,,\n"),
    )
    .await;
    ls.put(bucket, "px/current/dt=20210228/_SUCCESS", b"".to_vec())
        .await;
    let report = worker.run_once().await;
    assert!(!report.failed(), "{report:?}");
    assert_eq!(
        ls.text(bucket, "px/processed/20210228-2/status.txt").await,
        "SUCCESS\n1 record was uploaded\n"
    );
    assert_eq!(
        ls.text(bucket, "px/processed/20210228/status.txt").await,
        "SUCCESS\n1 record was uploaded\n"
    );
    let conn = rusqlite::Connection::open(db.path().join("dropfolder.db")).expect("db");
    let email: String = conn
        .query_row(
            "SELECT json_extract(attributes, '$.email') FROM records WHERE id = 'u1'",
            [],
            |r| r.get(0),
        )
        .expect("u1");
    assert_eq!(email, "again@x.com");
}

#[tokio::test]
async fn drops_through_an_assumed_role_with_an_external_id() {
    let Some(endpoint) = localstack::endpoint() else {
        return;
    };
    let ls = LocalStack::connect(endpoint).await;
    let bucket = ls.bucket().await;
    let role = ls.role(&bucket, "SUB-123").await;
    drops(
        &ls,
        &bucket,
        &format!("role_arn = \"{role}\"\nexternal_id = \"SUB-123\"\nregion = \"us-east-1\""),
    )
    .await;
}

#[tokio::test]
async fn drops_with_static_keys_and_a_discovered_region() {
    let Some(endpoint) = localstack::endpoint() else {
        return;
    };
    let ls = LocalStack::connect(endpoint).await;
    let bucket = ls.bucket().await;
    drops(&ls, &bucket, STATIC_KEYS).await;
}

#[tokio::test]
async fn a_folder_of_more_than_1000_keys_is_listed_page_by_page() {
    let Some(endpoint) = localstack::endpoint() else {
        return;
    };
    let ls = LocalStack::connect(endpoint).await;
    let bucket = ls.bucket().await;
    let db = tempfile::tempdir().expect("temp dir");
    let config = config(&ls, &bucket, STATIC_KEYS, &db.path().join("dropfolder.db"));
    use futures_util::StreamExt;
    futures_util::stream::iter(0..1100)
        .for_each_concurrent(32, |i| {
            let (ls, bucket) = (&ls, &bucket);
            async move {
                ls.put(
                    bucket,
                    &format!("px/current/dt=20210228/part-{i:04}.txt"),
                    b"x".to_vec(),
                )
                .await
            }
        })
        .await;
    ls.put(
        &bucket,
        "px/current/dt=20210228/users.csv.gz",
        gzip(format!("{HEADER}u1,,,,\n").as_bytes()),
    )
    .await;
    ls.put(&bucket, "px/current/dt=20210228/_SUCCESS", b"".to_vec())
        .await;
    let store = Arc::new(store(&config).await);
    let mut worker = Worker::open(
        config
            .compile(dropfolder::config::SecretCheck::Require)
            .expect("config compiles"),
    )
    .await
    .expect("worker");
    worker.use_store("acme-users", store.clone());
    let report = worker.run_once().await;
    assert!(!report.failed(), "{report:?}");
    let keys = ls.keys(&bucket).await;
    assert_eq!(
        keys.iter()
            .filter(|k| k.starts_with("px/processed/20210228/part-"))
            .count(),
        1100
    );
    assert!(
        !keys.iter().any(|k| k.starts_with("px/current/")),
        "everything moved"
    );
    let status = ls.text(&bucket, "px/processed/20210228/status.txt").await;
    assert!(
        status.starts_with("SUCCESS\n1 record was uploaded\n"),
        "{status}"
    );
    assert!(
        store.requests()["ListObjectsV2"] >= 3,
        "the folder took two pages: {:?}",
        store.requests()
    );
}

#[tokio::test]
async fn a_file_replaced_between_read_and_delete_is_kept_and_imported_next() {
    let Some(endpoint) = localstack::endpoint() else {
        return;
    };
    let ls = LocalStack::connect(endpoint).await;
    let bucket = ls.bucket().await;
    let db = tempfile::tempdir().expect("temp dir");
    let config = config(&ls, &bucket, STATIC_KEYS, &db.path().join("dropfolder.db"));
    ls.put(
        &bucket,
        "px/current/dt=20210228/users.csv.gz",
        gzip(format!("{HEADER}u1,v1@x.com,,,\n").as_bytes()),
    )
    .await;
    ls.put(&bucket, "px/current/dt=20210228/_SUCCESS", b"".to_vec())
        .await;
    let v2 = gzip(format!("{HEADER}u1,v2@x.com,,,\n").as_bytes());
    let s3: Arc<dyn ObjectStore> = Arc::new(store(&config).await);
    let mut worker = Worker::open(
        config
            .compile(dropfolder::config::SecretCheck::Require)
            .expect("config compiles"),
    )
    .await
    .expect("worker");
    worker.use_store(
        "acme-users",
        Arc::new(customer::ReplaceOnGet::new(
            s3,
            "current/dt=20210228/users.csv.gz",
            v2.clone(),
        )),
    );
    let report = worker.run_once().await;
    assert!(!report.failed(), "{report:?}");
    assert_eq!(
        report.integrations[0].folders[0].left,
        [
            "current/dt=20210228/users.csv.gz",
            "current/dt=20210228/_SUCCESS"
        ]
    );
    assert_eq!(
        ls.get(&bucket, "px/current/dt=20210228/users.csv.gz").await,
        Some(v2),
        "the new version is not deleted"
    );
    let status = ls.text(&bucket, "px/processed/20210228/status.txt").await;
    assert!(
        status.contains("users.csv.gz: replaced by the customer after it was read"),
        "{status}"
    );
    // The next run imports the new version as a new drop.
    let report = Worker::open(
        config
            .compile(dropfolder::config::SecretCheck::Require)
            .expect("config compiles"),
    )
    .await
    .expect("worker")
    .run_once()
    .await;
    assert!(!report.failed(), "{report:?}");
    assert_eq!(
        ls.text(&bucket, "px/processed/20210228-2/status.txt").await,
        "SUCCESS\n1 record was uploaded\n"
    );
    assert!(
        !ls.keys(&bucket)
            .await
            .iter()
            .any(|k| k.starts_with("px/current/"))
    );
}

#[tokio::test]
async fn requests_per_folder_in_steady_state() {
    let Some(endpoint) = localstack::endpoint() else {
        return;
    };
    let ls = LocalStack::connect(endpoint).await;
    let bucket = ls.bucket().await;
    let db = tempfile::tempdir().expect("temp dir");
    let config = config(&ls, &bucket, STATIC_KEYS, &db.path().join("dropfolder.db"));
    for name in ["a.csv.gz", "b.csv.gz", "c.csv.gz"] {
        ls.put(
            &bucket,
            &format!("px/current/dt=20210228/{name}"),
            gzip(format!("{HEADER}u1,,,,\n").as_bytes()),
        )
        .await;
    }
    ls.put(&bucket, "px/current/dt=20210228/_SUCCESS", b"".to_vec())
        .await;
    let store = Arc::new(store(&config).await);
    let mut worker = Worker::open(
        config
            .compile(dropfolder::config::SecretCheck::Require)
            .expect("config compiles"),
    )
    .await
    .expect("worker");
    worker.use_store("acme-users", store.clone());
    assert!(!worker.run_once().await.failed());
    let requests = store.requests();
    // One folder of 3 data files: LIST current/ and the folder (a look without the lease,
    // then again under it), and processed/20210228; a GET, COPY and DELETE per data file,
    // COPY and DELETE of _SUCCESS; status.json and status.txt.
    // LocalStack answers NotImplemented to the first conditional DELETE, so the store sends
    // one DELETE that fails and then a HEAD before each of the 4 deletes.
    let expected: std::collections::BTreeMap<&str, u64> = [
        ("ListObjectsV2", 5),
        ("GetObject", 3),
        ("CopyObject", 4),
        ("PutObject", 2),
        ("DeleteObject", 5),
        ("HeadObject", 4),
    ]
    .into();
    assert_eq!(requests, expected);
}
