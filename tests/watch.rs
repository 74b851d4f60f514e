//! `dropfolder watch` as a service: the real binary on a short schedule, stopped by SIGTERM;
//! S3 `_SUCCESS` events through LocalStack's S3→SQS notifications; and an integration's
//! status (Ready → Active → Failed → Active) as `/status` and `/metrics` show it.

mod common;
#[path = "common/daemon.rs"]
mod daemon;
#[path = "common/drops.rs"]
mod drops;
#[path = "common/localstack.rs"]
mod localstack;
#[path = "common/sts_stub.rs"]
mod sts_stub;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::gzip;
use daemon::Daemon;
use drops::{Env, HEADER};
use localstack::LocalStack;

const SECOND: Duration = Duration::from_secs(1);

/// `[state]` on the env's SQLite, `[server]` on a free port, and `sections` (schedule, events).
fn write_config(env: &Env, sections: &str, integration: &str) -> PathBuf {
    let state = format!(
        "[state]\nurl = \"sqlite://{}\"\n\n[server]\nlisten = \"127.0.0.1:0\"\n\n{sections}",
        env.db().display()
    );
    let path = env.dir.path().join("dropfolder.toml");
    std::fs::write(&path, env.config_text_with(&state, integration)).expect("write config");
    path
}

fn record_count(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("open db");
    conn.query_row("SELECT count(*) FROM records", [], |r| r.get(0))
        .expect("count records")
}

/// `rows` valid rows, gzipped.
fn big_csv(rows: usize) -> Vec<u8> {
    let mut csv = Vec::with_capacity(rows * 48);
    csv.extend_from_slice(HEADER.as_bytes());
    for i in 0..rows {
        let _ = writeln!(csv, "u{i},u{i}@example.com,2021-03-01,{i},true");
    }
    gzip(&csv)
}

#[test]
fn a_folder_dropped_after_start_is_processed_on_the_next_tick() {
    let env = Env::new();
    let config = write_config(&env, "[schedule]\nevery = \"1s\"\n", "");
    let mut watch = Daemon::watch(&config, &[]);
    // After the first scan has looked (not merely started): a folder written between the
    // "scheduled scan" line and the listing would be taken by the first scan.
    watch.wait_for_line("integration scanned", 10 * SECOND);

    env.csv(
        "20210301",
        "users.csv.gz",
        &format!("{HEADER}u1,a@x.com,,,\n"),
    );
    env.success("20210301");
    let line = watch.wait_for_line("folder finished", 30 * SECOND);
    assert!(line.contains("result=\"success\""), "{line}");
    assert!(watch.count("scheduled scan") >= 2, "{:?}", watch.log());
    assert_eq!(watch.terminate(30 * SECOND), Some(0), "{:?}", watch.log());
    assert_eq!(
        env.read("processed/20210301/status.txt"),
        "SUCCESS\n1 record was uploaded\n"
    );
    assert_eq!(record_count(&env.db()), 1);
    assert!(watch.count("stopped") == 1, "{:?}", watch.log());
}

#[test]
fn sigterm_during_a_large_file_finishes_the_folder_and_exits_0() {
    // Three files at the 350,000-row cap; SIGTERM comes while the first is loading.
    const ROWS: usize = 350_000;
    let env = Env::new();
    let config = write_config(&env, "[schedule]\nevery = \"1h\"\n", "");
    let big = big_csv(ROWS);
    for name in ["a", "b", "c"] {
        env.put(&format!("current/dt=20210301/{name}-users.csv.gz"), &big);
    }
    let tail = format!("{HEADER}tail,t@x.com,,,\n");
    env.csv("20210301", "d-users.csv.gz", &tail);
    env.success("20210301");

    let mut watch = Daemon::watch(&config, &[]);
    watch.wait_for_line("file started", 30 * SECOND);
    assert_eq!(watch.terminate(120 * SECOND), Some(0), "{:?}", watch.log());

    // The signal came while the first file was in hand, and the folder was finished after.
    let log = watch.log();
    let at = |needle: &str| {
        log.iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in\n{}", log.join("\n")))
    };
    assert!(at("file started") < at("stopping"), "{}", log.join("\n"));
    assert!(at("stopping") < at("file processed"), "{}", log.join("\n"));
    assert!(at("stopping") < at("folder finished"), "{}", log.join("\n"));
    assert_eq!(watch.count("file processed"), 4, "{}", log.join("\n"));
    // The big files share their ids: 350,000 records, and the tail.
    assert_eq!(record_count(&env.db()), ROWS as i64 + 1);
    let status = env.read("processed/20210301/status.txt");
    let total = format!("SUCCESS\n{} records were uploaded\n", 3 * ROWS + 1);
    assert!(status.starts_with(&total), "{status}");
    assert!(!env.exists("current/dt=20210301/_SUCCESS"));
}

/// A queue in LocalStack that the bucket notifies of every `_SUCCESS` created.
async fn notifying_queue(ls: &LocalStack, bucket: &str) -> (aws_sdk_sqs::Client, String) {
    let sqs = aws_sdk_sqs::Client::new(&ls.config);
    let url = sqs
        .create_queue()
        .queue_name(localstack::unique("df-events"))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .expect("queue arn");
    use aws_sdk_s3::types::{
        Event, FilterRule, FilterRuleName, NotificationConfiguration,
        NotificationConfigurationFilter, QueueConfiguration, S3KeyFilter,
    };
    let suffix = FilterRule::builder()
        .name(FilterRuleName::Suffix)
        .value("_SUCCESS")
        .build();
    let queue = QueueConfiguration::builder()
        .queue_arn(arn)
        .events(Event::from("s3:ObjectCreated:*"))
        .filter(
            NotificationConfigurationFilter::builder()
                .key(S3KeyFilter::builder().filter_rules(suffix).build())
                .build(),
        )
        .build()
        .expect("queue configuration");
    ls.s3
        .put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(queue)
                .build(),
        )
        .send()
        .await
        .expect("put bucket notification");
    (sqs, url)
}

/// Messages in the queue, visible or in flight.
async fn messages_left(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as Name;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(Name::ApproximateNumberOfMessages)
        .attribute_names(Name::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .unwrap_or_default();
    attributes
        .values()
        .filter_map(|v| v.parse::<u64>().ok())
        .sum()
}

const STATIC_KEYS: &str =
    "access_key_id_env = \"AWS_ACCESS_KEY_ID\"\nsecret_access_key_env = \"AWS_SECRET_ACCESS_KEY\"";

/// As [`write_config`], with the integration on `bucket/px` in LocalStack.
fn write_s3_config(
    env: &Env,
    sections: &str,
    ls: &LocalStack,
    bucket: &str,
    access: &str,
) -> PathBuf {
    let text = format!(
        r#"[state]
url = "sqlite://{db}"

[server]
listen = "127.0.0.1:0"

{sections}

[schemas.users]
id = "string"
email = "string"

[[integrations]]
name = "acme-users"
entity = "user"
schema = "users"
bucket = "{bucket}/px"
endpoint = "{endpoint}"
{access}
"#,
        db = env.db().display(),
        endpoint = ls.endpoint,
    );
    let path = env.dir.path().join("dropfolder.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// `watch` on a LocalStack bucket whose `_SUCCESS` keys notify an SQS queue, the schedule at
/// 1 h: after the first scan only an event can bring a folder in.
struct Evented {
    ls: LocalStack,
    bucket: String,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    env: Env,
    watch: Daemon,
}

impl Evented {
    /// Started, scanned once, and the queue empty (LocalStack's `s3:TestEvent` deleted).
    async fn start(visibility_seconds: u32) -> Option<Evented> {
        let endpoint = localstack::endpoint()?;
        let ls = LocalStack::connect(endpoint.clone()).await;
        let bucket = ls.bucket().await;
        let (sqs, queue_url) = notifying_queue(&ls, &bucket).await;
        let env = Env::new();
        let sections = format!(
            "[schedule]\nevery = \"1h\"\n\n[events]\nqueue_url = \"{queue_url}\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\nwait_seconds = 1\nvisibility_timeout_seconds = {visibility_seconds}\n"
        );
        let config = write_s3_config(&env, &sections, &ls, &bucket, STATIC_KEYS);
        let mut watch = Daemon::watch(&config, &[]);
        watch.wait_for_line("integration scanned", 30 * SECOND);
        let evented = Evented {
            ls,
            bucket,
            sqs,
            queue_url,
            env,
            watch,
        };
        evented.wait_until_queue_empty().await;
        Some(evented)
    }

    async fn wait_until_queue_empty(&self) {
        let deadline = std::time::Instant::now() + 20 * SECOND;
        while messages_left(&self.sqs, &self.queue_url).await > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "messages left in the queue: {:?}",
                self.watch.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_event_gets_a_folder_processed_long_before_the_next_tick() {
    let Some(mut e) = Evented::start(10).await else {
        return;
    };
    let csv = gzip(b"id,email\nu1,a@x.com\nu2,b@x.com\n");
    e.ls.put(&e.bucket, "px/current/dt=20210301/users.csv.gz", csv)
        .await;
    e.ls.put(&e.bucket, "px/current/dt=20210301/_SUCCESS", b"".to_vec())
        .await;
    let started = std::time::Instant::now();
    let line = e.watch.wait_for_line("folder finished", 60 * SECOND);
    assert!(line.contains("result=\"success\""), "{line}");
    eprintln!("event to folder finished: {:?}", started.elapsed());
    let log = e.watch.log();
    assert_eq!(e.watch.count("S3 event: a folder is ready"), 1, "{log:?}");
    assert_eq!(e.watch.count("scheduled scan"), 1, "{log:?}");
    assert_eq!(
        e.ls.text(&e.bucket, "px/processed/20210301/status.txt")
            .await,
        "SUCCESS\n2 records were uploaded\n"
    );
    assert_eq!(record_count(&e.env.db()), 2);
    // The message is deleted once its folder is finished.
    e.wait_until_queue_empty().await;
    assert_eq!(e.watch.terminate(30 * SECOND), Some(0), "{log:?}");
}

/// Polls `/status` until the integration is `status`; returns its entry.
async fn wait_for_status(watch: &Daemon, status: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + 30 * SECOND;
    loop {
        let all = watch.status().await;
        if all[0]["status"] == status {
            return all[0].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {} rather than {status}: {all}\n{}",
            all[0]["status"],
            watch.log().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `/metrics` shows the integration in `status` and in no other.
async fn assert_metrics_status(watch: &Daemon, status: &str) -> String {
    let (code, metrics) = watch.get("/metrics").await;
    assert_eq!(code, 200, "{metrics}");
    for other in ["Ready", "Active", "Warning", "Failed"] {
        let line = format!(
            "dropfolder_integration_status{{integration=\"acme-users\",status=\"{other}\"}} {}",
            u8::from(other == status)
        );
        assert!(metrics.contains(&line), "no {line:?} in\n{metrics}");
    }
    metrics
}

/// One drop of two rows on `date`.
async fn drop_folder(ls: &LocalStack, bucket: &str, date: &str) {
    let csv = gzip(b"id,email\nu1,a@x.com\nu2,b@x.com\n");
    ls.put(bucket, &format!("px/current/dt={date}/users.csv.gz"), csv)
        .await;
    ls.put(
        bucket,
        &format!("px/current/dt={date}/_SUCCESS"),
        b"".to_vec(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_goes_ready_active_failed_active() {
    let Some(endpoint) = localstack::endpoint() else {
        return;
    };
    let ls = LocalStack::connect(endpoint).await;
    let bucket = ls.bucket().await;
    let role = ls.role(&bucket, "SUB-123").await;
    let good = format!("role_arn = \"{role}\"\nexternal_id = \"SUB-123\"\nregion = \"us-east-1\"");
    let env = Env::new();
    let schedule = "[schedule]\nevery = \"1s\"\n";

    // Ready: configured and scanned, nothing received yet.
    let config = write_s3_config(&env, schedule, &ls, &bucket, &good);
    let mut watch = Daemon::watch(&config, &[]);
    watch.wait_for_line("integration scanned", 30 * SECOND);
    let ready = wait_for_status(&watch, "Ready").await;
    assert_eq!(
        ready["reason"], "configured; no data received yet",
        "{ready}"
    );
    assert_eq!(watch.get("/healthz").await.0, 200);
    assert_eq!(watch.get("/readyz").await.0, 200);
    assert_metrics_status(&watch, "Ready").await;

    // Active: a drop processed.
    drop_folder(&ls, &bucket, "20210301").await;
    let active = wait_for_status(&watch, "Active").await;
    assert_eq!(active["last_result"], "SUCCESS", "{active}");
    assert_eq!(active["last_target"], "processed/20210301/", "{active}");
    let metrics = assert_metrics_status(&watch, "Active").await;
    assert!(
        metrics.contains("dropfolder_rows_total{integration=\"acme-users\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("dropfolder_folders_total{integration=\"acme-users\",result=\"success\"} 1"),
        "{metrics}"
    );
    assert_eq!(watch.terminate(30 * SECOND), Some(0), "{:?}", watch.log());

    // Failed: the role cannot be assumed (the stub STS denies it, as AWS would a wrong
    // external ID; LocalStack accepts any).
    let sts = sts_stub::StsStub::denying().await;
    let denied = format!("{good}\nsts_endpoint = \"{}\"", sts.url);
    let config = write_s3_config(&env, schedule, &ls, &bucket, &denied);
    let mut watch = Daemon::watch(&config, &[]);
    let failed = wait_for_status(&watch, "Failed").await;
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("AccessDenied"), "{failed}");
    assert!(
        !reason.contains("SUB-123"),
        "the external ID is a secret: {failed}"
    );
    assert!(failed["since"].is_string(), "{failed}");
    let metrics = assert_metrics_status(&watch, "Failed").await;
    assert!(
        metrics.contains("dropfolder_failures_total{integration=\"acme-users\""),
        "{metrics}"
    );
    assert!(!sts.bodies().is_empty());
    assert_eq!(watch.terminate(30 * SECOND), Some(0), "{:?}", watch.log());

    // Active again once the role is fixed, with the next drop processed.
    let config = write_s3_config(&env, schedule, &ls, &bucket, &good);
    let mut watch = Daemon::watch(&config, &[]);
    drop_folder(&ls, &bucket, "20210302").await;
    watch.wait_for_line("folder finished", 30 * SECOND);
    let active = wait_for_status(&watch, "Active").await;
    assert_eq!(active["last_target"], "processed/20210302/", "{active}");
    assert_metrics_status(&watch, "Active").await;
    assert_eq!(watch.terminate(30 * SECOND), Some(0), "{:?}", watch.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stays_hidden_from_other_replicas_while_its_long_folder_is_in_hand() {
    const ROWS: usize = 350_000;
    // Hidden for 2 s at a time: the folder takes longer, so only extensions keep it hidden.
    let Some(mut e) = Evented::start(2).await else {
        return;
    };

    let mut csv = Vec::new();
    csv.extend_from_slice(b"id,email\n");
    for i in 0..ROWS {
        let _ = writeln!(csv, "u{i},u{i}@example.com");
    }
    let csv = gzip(&csv);
    for name in ["a", "b", "c"] {
        let key = format!("px/current/dt=20210301/{name}-users.csv.gz");
        e.ls.put(&e.bucket, &key, csv.clone()).await;
    }
    e.ls.put(&e.bucket, "px/current/dt=20210301/_SUCCESS", b"".to_vec())
        .await;
    e.watch.wait_for_line("file started", 30 * SECOND);
    let started = std::time::Instant::now();
    // A second replica polling the queue meanwhile never gets the message.
    while e.watch.count("folder finished") == 0 {
        let taken = e
            .sqs
            .receive_message()
            .queue_url(&e.queue_url)
            .wait_time_seconds(1)
            .visibility_timeout(1)
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default();
        // Only the drop's own event counts: finishing the folder copies `_SUCCESS` into
        // `processed/`, which raises an event of its own before "folder finished" is logged.
        let taken: Vec<_> = taken
            .into_iter()
            .filter(|m| m.body().is_some_and(|b| b.contains("/current/")))
            .collect();
        assert!(
            taken.is_empty() || e.watch.count("folder finished") > 0,
            "another replica received {taken:?} while the folder was in hand"
        );
    }
    let in_hand = started.elapsed();
    assert!(in_hand > 4 * SECOND, "the folder took only {in_hand:?}");
    // Deleted once the folder is finished.
    e.wait_until_queue_empty().await;
    assert_eq!(
        e.watch.count("S3 event: a folder is ready"),
        1,
        "{:?}",
        e.watch.log()
    );
    assert_eq!(
        e.watch.terminate(30 * SECOND),
        Some(0),
        "{:?}",
        e.watch.log()
    );
}

/// The event router follows a reloaded config: an integration added on another prefix of the
/// same bucket gets its folder by event, long before the next (1 h) tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integration_added_by_a_reload_gets_its_s3_events() {
    let Some(mut e) = Evented::start(10).await else {
        return;
    };
    let path = e.env.dir.path().join("dropfolder.toml");
    let config = std::fs::read_to_string(&path).expect("read config");
    let beta = format!(
        "\n[[integrations]]\nname = \"beta\"\nentity = \"user\"\nschema = \"users\"\nbucket = \"{}/py\"\nendpoint = \"{}\"\n{STATIC_KEYS}\n",
        e.bucket, e.ls.endpoint
    );
    std::fs::write(&path, config + &beta).expect("write config");
    e.watch.hangup();
    let line = e.watch.wait_for_line("config reloaded", 30 * SECOND);
    assert!(line.contains("added=[\"beta\"]"), "{line}");
    // Its first scan, at once, found nothing: only an event can bring the folder in now.
    e.watch
        .wait_for_line("integration scanned integration=\"beta\"", 30 * SECOND);
    let csv = gzip(b"id,email\nu1,a@x.com\n");
    e.ls.put(&e.bucket, "py/current/dt=20210301/users.csv.gz", csv)
        .await;
    e.ls.put(&e.bucket, "py/current/dt=20210301/_SUCCESS", b"".to_vec())
        .await;
    let line = e.watch.wait_for_line("folder finished", 60 * SECOND);
    assert!(line.contains("integration=\"beta\""), "{line}");
    assert_eq!(
        e.ls.text(&e.bucket, "py/processed/20210301/status.txt")
            .await,
        "SUCCESS\n1 record was uploaded\n"
    );
    let log = e.watch.log();
    assert_eq!(e.watch.count("scheduled scan"), 1, "{log:?}");
    assert_eq!(e.watch.count("S3 event: a folder is ready"), 1, "{log:?}");
    e.wait_until_queue_empty().await;
    assert_eq!(e.watch.terminate(30 * SECOND), Some(0), "{log:?}");
}
