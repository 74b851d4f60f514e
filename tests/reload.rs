//! `watch` changes its config without a restart: the real binary on a config directory (a
//! service file and one file per integration), reloaded on SIGHUP and when the files' content
//! changes (a ConfigMap's `..data` swap included); a config with a problem refused whole while
//! the old one keeps running; an integration removed while its folder is in hand finishing
//! that folder and then left alone.

mod common;
#[path = "common/daemon.rs"]
mod daemon;
#[path = "common/workdir.rs"]
mod workdir;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::gzip;
use daemon::Daemon;
use workdir::Workdir;

const SECOND: Duration = Duration::from_secs(1);

/// The service file: state in the work dir, a free port, `schedule` as given.
fn service(wd: &Workdir, every: &str) -> String {
    format!(
        r#"
[state]
url = "sqlite://{db}"

[server]
listen = "127.0.0.1:0"

[schedule]
every = "{every}"

[schemas.users]
id = "string"
email = "string"
"#,
        db = wd.path("dropfolder.db").display()
    )
}

/// One integration's file, its bucket a folder of the work dir; `extra` lines added.
fn integration(wd: &Workdir, name: &str, extra: &str) -> String {
    format!(
        "[[integrations]]\nname = \"{name}\"\nentity = \"user\"\nschema = \"users\"\nbucket = \"file://{}\"\n{extra}",
        wd.path(&format!("drop/{name}")).display()
    )
}

/// A ready folder of one file of `rows` records in `name`'s bucket.
fn drop_folder(wd: &Workdir, name: &str, date: &str, rows: usize) {
    let mut csv = String::from("id,email\n");
    for i in 0..rows {
        csv.push_str(&format!("u{i},u{i}@example.com\n"));
    }
    wd.write(
        &format!("drop/{name}/current/dt={date}/users.csv.gz"),
        gzip(csv.as_bytes()),
    );
    wd.write(&format!("drop/{name}/current/dt={date}/_SUCCESS"), "");
}

fn status_text(wd: &Workdir, name: &str, date: &str) -> Option<String> {
    std::fs::read_to_string(wd.path(&format!("drop/{name}/processed/{date}/status.txt"))).ok()
}

/// Polls `condition` every 50 ms until it holds, panicking with `what` and the log after
/// `timeout`.
fn wait_until(watch: &Daemon, what: &str, timeout: Duration, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?}:\n{}",
            watch.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The names `/status` lists.
async fn status_names(watch: &Daemon) -> Vec<String> {
    let status = watch.status().await;
    let mut names: Vec<String> = status
        .as_array()
        .unwrap_or_else(|| panic!("/status is not a list: {status}"))
        .iter()
        .filter_map(|i| i["integration"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// A config directory laid out as Kubernetes projects a ConfigMap: the files in a
/// timestamped directory, `..data` a link to it, each name a link through `..data`. An
/// update writes a new timestamped directory and swaps `..data` in one rename.
struct ConfigMap {
    dir: PathBuf,
    version: usize,
}

impl ConfigMap {
    fn new(dir: PathBuf, files: &[(&str, String)]) -> ConfigMap {
        std::fs::create_dir_all(&dir).expect("config dir");
        let mut map = ConfigMap { dir, version: 0 };
        map.update(files);
        map
    }

    fn update(&mut self, files: &[(&str, String)]) {
        self.version += 1;
        let version = format!("..2026_12_01_00_00_{:02}", self.version);
        let data = self.dir.join(&version);
        std::fs::create_dir_all(&data).expect("version dir");
        for (name, text) in files {
            std::fs::write(data.join(name), text).expect("write config file");
            let link = self.dir.join(name);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(format!("..data/{name}"), &link).expect("link");
            }
        }
        let staged = self.dir.join("..data_tmp");
        let _ = std::fs::remove_file(&staged);
        std::os::unix::fs::symlink(&version, &staged).expect("stage ..data");
        std::fs::rename(&staged, self.dir.join("..data")).expect("swap ..data");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integration_file_added_then_sighup_is_scanned_at_once() {
    let wd = Workdir::new();
    wd.write("conf/service.toml", service(&wd, "1h"));
    wd.write("conf/acme.toml", integration(&wd, "acme", ""));
    std::fs::create_dir_all(wd.path("drop/acme")).expect("acme bucket");
    drop_folder(&wd, "beta", "20210301", 2);
    let mut watch = Daemon::watch(&wd.path("conf"), &[]);
    watch.wait_for_line("integration scanned", 30 * SECOND);

    // SIGHUP reloads even when nothing changed: nothing added, removed or changed.
    watch.hangup();
    let line = watch.wait_for_line("config reloaded", 30 * SECOND);
    assert!(
        line.contains("added=[] removed=[] changed=[]"),
        "{line}\n{:?}",
        watch.log()
    );

    wd.write("conf/beta.toml", integration(&wd, "beta", ""));
    watch.hangup();
    let line = watch.wait_for_count("config reloaded", 2, 30 * SECOND);
    assert!(line.contains("added=[\"beta\"]"), "{line}");
    // The schedule is hourly: only the reload can have scanned it.
    wait_until(&watch, "beta's folder imported", 30 * SECOND, || {
        status_text(&wd, "beta", "20210301").is_some()
    });
    assert_eq!(
        status_text(&wd, "beta", "20210301").as_deref(),
        Some("SUCCESS\n2 records were uploaded\n")
    );
    assert_eq!(watch.count("scheduled scan"), 1, "{:?}", watch.log());
    assert_eq!(status_names(&watch).await, ["acme", "beta"]);
    let (_, metrics) = watch.get("/metrics").await;
    assert!(
        metrics.contains("dropfolder_config_reloads_total{result=\"applied\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dropfolder_config_info{hash=\""),
        "{metrics}"
    );
    assert_eq!(watch.terminate(30 * SECOND), Some(0), "{:?}", watch.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_update_without_sighup_is_picked_up_by_the_content_check() {
    let wd = Workdir::new();
    let mut map = ConfigMap::new(
        wd.path("conf"),
        &[
            ("service.toml", service(&wd, "1h")),
            ("acme.toml", integration(&wd, "acme", "")),
        ],
    );
    std::fs::create_dir_all(wd.path("drop/acme")).expect("acme bucket");
    drop_folder(&wd, "beta", "20210302", 1);
    let mut watch = Daemon::watch(&wd.path("conf"), &[]);
    watch.wait_for_line("integration scanned", 30 * SECOND);
    let (_, before) = watch.get("/metrics").await;

    // Kubernetes keeps the links' own times: only the content says what changed.
    map.update(&[
        ("service.toml", service(&wd, "1h")),
        ("acme.toml", integration(&wd, "acme", "max_rows = 10\n")),
        ("beta.toml", integration(&wd, "beta", "")),
    ]);
    let line = watch.wait_for_line("config reloaded", 60 * SECOND);
    assert!(
        line.contains("added=[\"beta\"] removed=[] changed=[\"acme\"]"),
        "{line}"
    );
    wait_until(&watch, "beta's folder imported", 30 * SECOND, || {
        status_text(&wd, "beta", "20210302").is_some()
    });
    assert_eq!(watch.count("SIGHUP"), 0);
    let (_, after) = watch.get("/metrics").await;
    let hash = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("dropfolder_config_info{"))
            .map(str::to_string)
    };
    assert!(hash(&before).is_some(), "{before}");
    assert_ne!(hash(&before), hash(&after), "{after}");
    // Unchanged content is not reloaded again.
    let reloads = watch.count("config reloaded");
    watch.wait_for_count("integration scanned", 2, 30 * SECOND);
    assert_eq!(watch.count("config reloaded"), reloads);
    assert_eq!(watch.terminate(30 * SECOND), Some(0), "{:?}", watch.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_with_problems_is_refused_whole_and_the_old_one_keeps_running() {
    let wd = Workdir::new();
    wd.write("conf/service.toml", service(&wd, "1s"));
    wd.write("conf/acme.toml", integration(&wd, "acme", ""));
    std::fs::create_dir_all(wd.path("drop/acme")).expect("acme bucket");
    drop_folder(&wd, "beta", "20210303", 1);
    let mut watch = Daemon::watch(&wd.path("conf"), &[]);
    watch.wait_for_line("integration scanned", 30 * SECOND);

    // A valid new integration next to a broken one, and a part that cannot change live. The
    // content check loads nothing between the writes: it waits for two checks to agree.
    wd.write(
        "conf/gamma.toml",
        integration(&wd, "gamma", "").replace("entity", "entitty"),
    );
    wd.write("conf/beta.toml", integration(&wd, "beta", ""));
    wd.write(
        "conf/service.toml",
        service(&wd, "1s").replace("dropfolder.db", "other.db"),
    );
    watch.hangup();
    watch.wait_for_line("config refused", 30 * SECOND);
    let problems: Vec<String> = watch
        .log()
        .into_iter()
        .filter(|l| l.contains("config problem"))
        .collect();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("unknown key 'entitty'") && p.contains("did you mean 'entity'?")),
        "{problems:?}"
    );
    assert!(
        !problems.iter().any(|p| p.contains("[state]")),
        "{problems:?}"
    );
    // Once the file's problems are fixed, the part that cannot change live refuses it.
    wd.write("conf/gamma.toml", integration(&wd, "gamma", ""));
    watch.hangup();
    // The sink defaults to the state database: both parts are named.
    let refused = watch.wait_for_count("config refused", 2, 30 * SECOND);
    assert!(
        refused.contains("problems=2"),
        "{refused}\n{:?}",
        watch.log()
    );
    assert!(
        watch.log().iter().any(|l| l.contains("config problem")
            && l.contains("[state] cannot change while watch runs")),
        "{:?}",
        watch.log()
    );
    assert_eq!(watch.count("config reloaded"), 0, "{:?}", watch.log());

    // The old config runs on: acme imports, beta was never started.
    drop_folder(&wd, "acme", "20210304", 3);
    wait_until(&watch, "acme's folder imported", 30 * SECOND, || {
        status_text(&wd, "acme", "20210304").is_some()
    });
    assert_eq!(
        status_text(&wd, "acme", "20210304").as_deref(),
        Some("SUCCESS\n3 records were uploaded\n")
    );
    assert!(status_text(&wd, "beta", "20210303").is_none());
    assert_eq!(status_names(&watch).await, ["acme"]);
    let (_, metrics) = watch.get("/metrics").await;
    assert!(
        metrics.contains("dropfolder_config_reloads_total{result=\"refused\"} 2"),
        "{metrics}"
    );
    // A refused content is not tried again every few seconds: only when it changes.
    let scans = watch.count("scheduled scan");
    watch.wait_for_count("scheduled scan", scans + 7, 30 * SECOND);
    assert_eq!(watch.count("config refused"), 2, "{:?}", watch.log());
    assert_eq!(watch.terminate(30 * SECOND), Some(0), "{:?}", watch.log());
}

/// Whether `integration` has a drop begun and not done in the journal.
fn drop_in_hand(db: &std::path::Path, integration: &str) -> bool {
    let Ok(conn) = rusqlite::Connection::open(db) else {
        return false;
    };
    conn.query_row(
        "SELECT count(*) FROM drops WHERE integration = ?1 AND stage <> 'done'",
        [integration],
        |r| r.get::<_, i64>(0),
    )
    .is_ok_and(|n| n > 0)
}

#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integration_removed_while_its_folder_loads_finishes_it_then_is_left_alone() {
    let wd = Workdir::new();
    wd.write("conf/service.toml", service(&wd, "1s"));
    wd.write("conf/acme.toml", integration(&wd, "acme", ""));
    wd.write("conf/beta.toml", integration(&wd, "beta", ""));
    std::fs::create_dir_all(wd.path("drop/beta")).expect("beta bucket");
    drop_folder(&wd, "acme", "20210305", 2);
    drop_folder(&wd, "acme", "20210306", 2);
    // Each folder is held just after it is begun, long enough to remove its integration.
    let mut watch = Daemon::watch(
        &wd.path("conf"),
        &[("FAILPOINTS", "after-begin=sleep(4000)")],
    );
    let db = wd.path("dropfolder.db");
    wait_until(&watch, "acme's first folder in hand", 30 * SECOND, || {
        drop_in_hand(&db, "acme")
    });
    std::fs::remove_file(wd.path("conf/acme.toml")).expect("remove acme");
    watch.hangup();
    let line = watch.wait_for_line("config reloaded", 30 * SECOND);
    assert!(line.contains("removed=[\"acme\"]"), "{line}");
    assert!(
        status_text(&wd, "acme", "20210305").is_none(),
        "the folder in hand finished before the reload: the test did not hold it"
    );

    // The folder in hand finishes with the settings it started with ...
    let finished = watch.wait_for_line("folder finished", 30 * SECOND);
    assert!(finished.contains("result=\"success\""), "{finished}");
    assert_eq!(
        status_text(&wd, "acme", "20210305").as_deref(),
        Some("SUCCESS\n2 records were uploaded\n")
    );
    watch.wait_for_line("removed from the config", 30 * SECOND);
    // ... and nothing more of it is begun, however many scans come.
    let scans = watch.count("scheduled scan");
    watch.wait_for_count("scheduled scan", scans + 3, 30 * SECOND);
    let beta_scans = watch.count("integration=\"beta\"");
    assert!(beta_scans >= 3, "{:?}", watch.log());
    assert!(wd.exists("drop/acme/current/dt=20210306/_SUCCESS"));
    assert!(status_text(&wd, "acme", "20210306").is_none());
    assert_eq!(watch.count("folder finished"), 1, "{:?}", watch.log());
    assert!(!drop_in_hand(&db, "acme"));
    // Its lease was released, not left to expire.
    let conn = rusqlite::Connection::open(&db).expect("open state");
    let expires: String = conn
        .query_row(
            "SELECT expires_at FROM leases WHERE integration = 'acme'",
            [],
            |r| r.get(0),
        )
        .expect("acme's lease row");
    let expires = chrono::DateTime::parse_from_rfc3339(&expires).expect("an RFC 3339 time");
    assert!(expires <= chrono::Utc::now(), "lease expires {expires}");
    assert_eq!(status_names(&watch).await, ["beta"]);
    assert_eq!(watch.terminate(30 * SECOND), Some(0), "{:?}", watch.log());
}

/// Checked settings of a config directory.
fn settings(dir: &std::path::Path) -> dropfolder::settings::Settings {
    dropfolder::config::Config::load_checked(dir, dropfolder::config::SecretCheck::Skip)
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn changes_name_the_integrations_added_removed_and_changed_and_fixed_parts() {
    use dropfolder::reload::{Changes, fixed_changes};
    let wd = Workdir::new();
    wd.write("old/service.toml", service(&wd, "1h"));
    wd.write("old/acme.toml", integration(&wd, "acme", ""));
    wd.write("old/beta.toml", integration(&wd, "beta", ""));
    wd.write("old/gamma.toml", integration(&wd, "gamma", ""));
    wd.write("new/service.toml", service(&wd, "5m"));
    wd.write("new/acme.toml", integration(&wd, "acme", ""));
    wd.write("new/beta.toml", integration(&wd, "beta", "max_rows = 5\n"));
    wd.write("new/delta.toml", integration(&wd, "delta", ""));
    let (old, new) = (settings(&wd.path("old")), settings(&wd.path("new")));
    assert_eq!(
        Changes::between(&old, &new),
        Changes {
            added: vec!["delta".into()],
            removed: vec!["gamma".into()],
            changed: vec!["beta".into()],
        }
    );
    assert!(Changes::between(&old, &settings(&wd.path("old"))).is_empty());
    // The schedule may change live; the state database may not.
    assert!(fixed_changes(&old, &new).is_empty());
    wd.write(
        "new/service.toml",
        service(&wd, "1h").replace("127.0.0.1:0", "127.0.0.1:9999")
            + "[outbound]\nallow_networks = [\"10.0.0.0/8\"]\n",
    );
    assert_eq!(
        fixed_changes(&old, &settings(&wd.path("new"))),
        ["[server]", "[outbound]"]
    );
}

#[test]
fn the_fingerprint_follows_content_not_links_or_times_and_is_bounded() {
    use dropfolder::reload::{ConfigFiles, FingerprintError};
    let wd = Workdir::new();
    let mut map = ConfigMap::new(wd.path("conf"), &[("service.toml", service(&wd, "1h"))]);
    let files = ConfigFiles::new(&wd.path("conf"));
    let first = files.fingerprint().expect("fingerprint");
    // The same content under a new `..data`: nothing to reload.
    map.update(&[("service.toml", service(&wd, "1h"))]);
    assert_eq!(files.fingerprint().expect("fingerprint"), first);
    // Neither files the loader skips.
    wd.write("conf/README", "not a config");
    wd.write("conf/.hidden.toml", "x = 1");
    assert_eq!(files.fingerprint().expect("fingerprint"), first);
    map.update(&[("service.toml", service(&wd, "2h"))]);
    let second = files.fingerprint().expect("fingerprint");
    assert_ne!(second, first);
    // A file renamed with the same content is another config.
    std::fs::rename(wd.path("conf/service.toml"), wd.path("conf/z.toml")).expect("rename");
    assert_ne!(files.fingerprint().expect("fingerprint"), second);
    // A single file, and the bound on what is read.
    let file = wd.write("one.toml", "x".repeat(100));
    let one = ConfigFiles::new(&file);
    assert!(one.fingerprint().is_ok());
    assert!(one.clone().with_max_bytes(100).fingerprint().is_ok());
    assert!(matches!(
        one.with_max_bytes(99).fingerprint(),
        Err(FingerprintError::TooLarge { max_bytes: 99, .. })
    ));
    assert!(matches!(
        ConfigFiles::new(&wd.path("absent")).fingerprint(),
        Err(FingerprintError::Read { .. })
    ));
}

#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_reaches_the_next_folder_not_the_one_in_hand() {
    let wd = Workdir::new();
    wd.write("conf/service.toml", service(&wd, "1h"));
    wd.write("conf/acme.toml", integration(&wd, "acme", ""));
    drop_folder(&wd, "acme", "20210307", 2);
    drop_folder(&wd, "acme", "20210308", 2);
    let mut watch = Daemon::watch(
        &wd.path("conf"),
        &[("FAILPOINTS", "after-begin=sleep(4000)")],
    );
    let db = wd.path("dropfolder.db");
    wait_until(&watch, "acme's first folder in hand", 30 * SECOND, || {
        drop_in_hand(&db, "acme")
    });
    // From now on a file may hold one row: the folder in hand (2 rows) was begun before.
    wd.write("conf/acme.toml", integration(&wd, "acme", "max_rows = 1\n"));
    watch.hangup();
    let line = watch.wait_for_line("config reloaded", 30 * SECOND);
    assert!(line.contains("changed=[\"acme\"]"), "{line}");
    assert!(status_text(&wd, "acme", "20210307").is_none());
    wait_until(&watch, "both folders finished", 60 * SECOND, || {
        status_text(&wd, "acme", "20210308").is_some()
    });
    assert_eq!(
        status_text(&wd, "acme", "20210307").as_deref(),
        Some("SUCCESS\n2 records were uploaded\n")
    );
    let second = status_text(&wd, "acme", "20210308").unwrap_or_default();
    assert!(
        second.starts_with("ERROR") && second.contains("more than 1 data rows"),
        "{second}"
    );
    assert_eq!(watch.terminate(30 * SECOND), Some(0), "{:?}", watch.log());
}
