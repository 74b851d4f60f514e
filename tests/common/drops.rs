//! A customer's bucket as a local folder, and what the pipeline left in it and in SQLite.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dropfolder::config::{Config, SecretCheck};
use serde_json::Value;

use crate::common::gzip;

pub const HEADER: &str = "id,email,signUpDate,score,isTrial\n";

/// Lets the test's own servers on 127.0.0.1 be reached: outbound requests refuse loopback
/// unless the operator allow-lists it. Part of every config below; a test of the refusal
/// removes it.
pub const ALLOW_LOOPBACK: &str = "[outbound]\nallow_networks = [\"127.0.0.0/8\"]\n";

/// A temp dir holding the bucket (`bucket/`) and the database (`dropfolder.db`).
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let env = Env {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        std::fs::create_dir_all(env.bucket()).expect("bucket dir");
        env
    }

    pub fn bucket(&self) -> PathBuf {
        self.dir.path().join("bucket")
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("dropfolder.db")
    }

    pub fn path(&self, key: &str) -> PathBuf {
        self.bucket().join(key)
    }

    /// Writes `bytes` at `key` in the bucket.
    pub fn put(&self, key: &str, bytes: &[u8]) {
        let path = self.path(key);
        std::fs::create_dir_all(path.parent().expect("key has a parent")).expect("dirs");
        std::fs::write(path, bytes).expect("write object");
    }

    /// A gzipped CSV at `current/dt=DATE/NAME`.
    pub fn csv(&self, date: &str, name: &str, csv: &str) {
        self.put(&format!("current/dt={date}/{name}"), &gzip(csv.as_bytes()));
    }

    pub fn success(&self, date: &str) {
        self.put(&format!("current/dt={date}/_SUCCESS"), b"");
    }

    pub fn exists(&self, key: &str) -> bool {
        self.path(key).exists()
    }

    pub fn read(&self, key: &str) -> String {
        std::fs::read_to_string(self.path(key)).unwrap_or_else(|e| panic!("read {key}: {e}"))
    }

    /// Every key in the bucket, sorted.
    pub fn keys(&self) -> Vec<String> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else if let Ok(rel) = path.strip_prefix(root) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        let mut keys = Vec::new();
        walk(&self.bucket(), &self.bucket(), &mut keys);
        keys.sort();
        keys
    }

    /// The config text for one integration over this bucket, with `extra` integration lines.
    pub fn config_text(&self, extra: &str) -> String {
        self.config_text_with(
            &format!("[state]\nurl = \"sqlite://{}\"", self.db().display()),
            extra,
        )
    }

    /// The same with another `[state]` section.
    pub fn config_text_with(&self, state: &str, extra: &str) -> String {
        format!(
            r#"
{state}

{ALLOW_LOOPBACK}
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
bucket = "file://{bucket}"
date_format = "yyyy-MM-dd"
{extra}
"#,
            bucket = self.bucket().display()
        )
    }

    pub fn config(&self, extra: &str) -> Config {
        let config = Config::parse(&self.config_text(extra), self.dir.path().to_path_buf())
            .expect("config parses");
        let problems = config.check(SecretCheck::Require);
        assert!(problems.is_empty(), "{problems:?}");
        config
    }

    /// Records by `product_key/id`.
    pub fn records(&self) -> BTreeMap<String, Value> {
        let conn = rusqlite::Connection::open(self.db()).expect("open db");
        let mut stmt = conn
            .prepare("SELECT product_key, id, attributes FROM records")
            .expect("prepare");
        stmt.query_map([], |row| {
            let (pk, id, json): (String, String, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
            Ok((
                format!("{pk}/{id}"),
                serde_json::from_str(&json).unwrap_or(Value::Null),
            ))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
    }

    /// Ledger entries as `key rows`.
    pub fn ledger(&self) -> Vec<String> {
        ledger_of(&self.db())
    }
}

/// The sink ledger of the SQLite database at `db`, as `key rows`, by key.
pub fn ledger_of(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("open db");
    let mut stmt = conn
        .prepare("SELECT file_key, rows FROM file_ledger ORDER BY file_key")
        .expect("prepare");
    stmt.query_map([], |row| {
        Ok(format!(
            "{} {}",
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)?
        ))
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}
