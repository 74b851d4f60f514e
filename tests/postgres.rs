//! PostgreSQL as the shared state and sink of several replicas: `dropfolder run` processes
//! started at once apply every file exactly once; a replica killed mid-file is finished by
//! another once its lease expires; a database that is down moves nothing.

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::gzip;

const INTEGRATIONS: usize = 4;

/// Four integrations, each a bucket with two ready days (one with a bad file), and one day
/// still waiting.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn new(database_url: &str, lease_seconds: u64) -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut text = format!(
            "[state]\nurl = \"{database_url}\"\npassword_env = \"DATABASE_PASSWORD\"\nlease_seconds = {lease_seconds}\n\n[schemas.users]\nid = \"string\"\nemail = \"string\"\nscore = \"number\"\n"
        );
        for n in 0..INTEGRATIONS {
            let bucket = dir.path().join(format!("bucket-{n}"));
            let put = |key: &str, bytes: &[u8]| {
                let path = bucket.join(key);
                std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
                std::fs::write(path, bytes).expect("write");
            };
            put(
                "current/dt=20210228/users.csv.gz",
                &gzip(b"id,email,score\nu1,a@x.com,1\nu2,b@x.com,2\nu3,c@x.com,3\n"),
            );
            put("current/dt=20210228/_SUCCESS", b"");
            put(
                "current/dt=20210301/users.csv.gz",
                &gzip(b"id,email\nu1,a2@x.com\nu4,d@x.com\n"),
            );
            put(
                "current/dt=20210301/bad.csv.gz",
                &gzip(b"id,score\nu5,abc\n"),
            );
            put("current/dt=20210301/_SUCCESS", b"");
            put("current/dt=20210302/users.csv.gz", &gzip(b"id\nu9\n"));
            text.push_str(&format!(
                "\n[[integrations]]\nname = \"acme-{n}\"\nentity = \"user\"\nschema = \"users\"\nbucket = \"file://{}\"\n",
                bucket.display()
            ));
        }
        let config = dir.path().join("dropfolder.toml");
        std::fs::write(&config, text).expect("write config");
        Setup { dir, config }
    }

    fn bucket(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("bucket-{n}"))
    }

    /// `dropfolder run` as replica `host` (a different host each: no dead-holder shortcut).
    fn replica(&self, host: &str, failpoints: Option<&str>) -> Child {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dropfolder"));
        command
            .arg("--config")
            .arg(&self.config)
            .arg("run")
            .env("HOSTNAME", host)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match failpoints {
            Some(actions) => command.env("FAILPOINTS", actions),
            None => command.env_remove("FAILPOINTS"),
        };
        command.spawn().expect("start dropfolder")
    }
}

/// Exit code, stdout (the summary) and both streams together (for messages).
fn finish(child: Child) -> (Option<i32>, String, String) {
    let output = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let all = format!(
        "{stdout}--- stderr\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), stdout, all)
}

fn keys(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                pending.push(entry.path());
            } else if let Ok(rel) = entry.path().strip_prefix(root) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// Every file applied exactly once, every folder finished once, one status each.
async fn assert_done_once(setup: &Setup, cluster: &pg::Cluster, url: &str) {
    for n in 0..INTEGRATIONS {
        let keys = keys(&setup.bucket(n));
        assert_eq!(
            keys,
            [
                "current/dt=20210302/users.csv.gz",
                "processed/20210228/_SUCCESS",
                "processed/20210228/status.json",
                "processed/20210228/status.txt",
                "processed/20210228/users.csv.gz",
                "processed/20210301/_SUCCESS",
                "processed/20210301/bad.csv.gz",
                "processed/20210301/bad.errors.csv",
                "processed/20210301/status.json",
                "processed/20210301/status.txt",
                "processed/20210301/users.csv.gz",
            ],
            "bucket-{n}"
        );
        let status = std::fs::read_to_string(setup.bucket(n).join("processed/20210301/status.txt"))
            .expect("status");
        assert!(
            status.starts_with("ERROR\nbad.csv.gz: line 2, column 'score': 'abc' is not a number"),
            "{status}"
        );
    }
    let client = cluster.client(url).await;
    let ledger: i64 = client
        .query_one("SELECT count(*) FROM file_ledger", &[])
        .await
        .expect("ledger")
        .get(0);
    assert_eq!(
        ledger,
        2 * INTEGRATIONS as i64,
        "each valid file applied once"
    );
    let records: i64 = client
        .query_one("SELECT count(*) FROM records", &[])
        .await
        .expect("records")
        .get(0);
    assert_eq!(records, 4 * INTEGRATIONS as i64);
    let email: String = client
        .query_one(
            "SELECT attributes->>'email' FROM records WHERE integration = 'acme-0' AND id = 'u1'",
            &[],
        )
        .await
        .expect("u1")
        .get(0);
    assert_eq!(email, "a2@x.com", "the days in order");
    let drops: i64 = client
        .query_one("SELECT count(*) FROM drops WHERE stage = 'done'", &[])
        .await
        .expect("drops")
        .get(0);
    assert_eq!(drops, 2 * INTEGRATIONS as i64, "each folder finished once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_at_once_apply_every_file_exactly_once() {
    let Some(cluster) = pg::cluster() else { return };
    let url = cluster.fresh_database().await;
    let setup = Setup::new(&url, 60);
    let replicas: Vec<Child> = (0..3)
        .map(|i| setup.replica(&format!("replica-{i}"), None))
        .collect();
    let mut worked = 0;
    for child in replicas {
        let (code, stdout, all) = tokio::task::spawn_blocking(move || finish(child))
            .await
            .expect("join");
        assert_eq!(code, Some(0), "{all}");
        worked += stdout
            .lines()
            .filter(|l| l.contains(" -> processed/"))
            .count();
    }
    assert_eq!(
        worked,
        2 * INTEGRATIONS,
        "every folder reported by exactly one replica"
    );
    assert_done_once(&setup, &cluster, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_file_is_finished_by_another_after_its_lease_expires() {
    let Some(cluster) = pg::cluster() else { return };
    let url = cluster.fresh_database().await;
    let lease = 5;
    let setup = Setup::new(&url, lease);
    // Replica A stops in the middle of its first file, holding that integration's lease.
    let mut stuck = setup.replica("replica-a", Some("before-file-commit=sleep(60000)"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let others: Vec<Child> = ["replica-b", "replica-c"]
        .iter()
        .map(|host| setup.replica(host, None))
        .collect();
    let mut skipped = 0;
    for child in others {
        let (code, stdout, all) = tokio::task::spawn_blocking(move || finish(child))
            .await
            .expect("join");
        assert_eq!(code, Some(0), "{all}");
        skipped += stdout
            .matches("skipped: another replica is working on it")
            .count();
    }
    assert!(
        skipped >= 1,
        "A's integration was left to A while its lease lived"
    );
    stuck.kill().expect("kill replica A");
    let _ = stuck.wait();
    // While A's lease lives no one touches its integration; after it expires, one does.
    tokio::time::sleep(Duration::from_secs(lease + 1)).await;
    let (code, _, all) = finish(setup.replica("replica-d", None));
    assert_eq!(code, Some(0), "{all}");
    assert_done_once(&setup, &cluster, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_is_down_moves_nothing_and_the_next_run_imports_all() {
    let Some(cluster) = pg::cluster() else { return };
    // A port nothing listens on: connection refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let down = format!("postgres://dropfolder@127.0.0.1:{closed}/dropfolder");
    let setup = Setup::new(&down, 60);
    let before: Vec<Vec<String>> = (0..INTEGRATIONS).map(|n| keys(&setup.bucket(n))).collect();
    let (code, _, output) = tokio::task::spawn_blocking({
        let child = setup.replica("replica-a", None);
        move || finish(child)
    })
    .await
    .expect("join");
    assert_eq!(code, Some(1), "{output}");
    assert!(
        // The URL is shown redacted: a bare user name may be a token in other URLs.
        output.contains("cannot connect to postgres://***@127.0.0.1"),
        "{output}"
    );
    assert!(
        !output.contains(&std::env::var("DATABASE_PASSWORD").unwrap_or_else(|_| "unset".into())),
        "{output}"
    );
    let after: Vec<Vec<String>> = (0..INTEGRATIONS).map(|n| keys(&setup.bucket(n))).collect();
    assert_eq!(before, after, "nothing moved");
    // The database is back: the next run imports everything.
    let url = cluster.fresh_database().await;
    let text = std::fs::read_to_string(&setup.config)
        .expect("config")
        .replace(&down, &url);
    std::fs::write(&setup.config, text).expect("config");
    let (code, _, all) = finish(setup.replica("replica-a", None));
    assert_eq!(code, Some(0), "{all}");
    assert_done_once(&setup, &cluster, &url).await;
}
