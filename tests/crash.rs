//! Crash safety: the run is aborted (no unwinding, no cleanup) at every crash point, at its
//! first, second, ... hit, then run again until it is quiet. Whatever the point, the end
//! state must equal a run that never crashed: every row applied exactly once, every original
//! exactly once in `processed/` and byte-identical, one `status.txt` per folder with the same
//! text, nothing left in `current/` but the folder still waiting for `_SUCCESS`.
//!
//! Needs the `failpoints` feature: `cargo test --features failpoints --test crash`.
#![cfg(feature = "failpoints")]

mod common;
#[path = "common/drops.rs"]
mod drops;

use std::collections::BTreeMap;
use std::process::Command;

use drops::{Env, HEADER};

/// Every crash point in the code, in the order a run meets them.
const POINTS: &[&str] = &[
    "after-begin",
    "before-file-commit",
    "sqlite-before-commit",
    "after-file",
    "after-copy",
    "after-result-file",
    "after-status",
    "after-report",
    "after-delete",
    "before-done",
];

fn scenario(env: &Env) {
    env.csv(
        "20210228",
        "users.csv.gz",
        &format!("{HEADER}u1,a@x.com,2021-02-28,1,true\nu2,b@x.com,,,\nu3,c@x.com,,2.5,\n"),
    );
    env.put("current/dt=20210228/notes.txt", b"customer notes");
    env.success("20210228");
    env.csv(
        "20210301",
        "a-good.csv.gz",
        "id,email\nu1,a2@x.com\nu4,d@x.com\n",
    );
    env.csv("20210301", "b-bad.csv.gz", "id,score\nu5,1,5\nu6,x\n");
    env.success("20210301");
    env.csv("20210302", "users.csv.gz", &format!("{HEADER}u9,,,,\n"));
}

/// Runs `dropfolder run`; `None` exit code means it was killed (aborted).
fn run(env: &Env, failpoints: Option<&str>) -> Option<i32> {
    let config = env.dir.path().join("dropfolder.toml");
    std::fs::write(&config, env.config_text("")).expect("write config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_dropfolder"));
    command
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("RUST_LOG", "warn");
    match failpoints {
        Some(actions) => command.env("FAILPOINTS", actions),
        None => command.env_remove("FAILPOINTS"),
    };
    let output = command.output().expect("run dropfolder");
    output.status.code()
}

/// Everything a customer or an operator could observe afterwards.
#[derive(Debug, PartialEq)]
struct Observed {
    keys: Vec<String>,
    files: BTreeMap<String, Vec<u8>>,
    records: BTreeMap<String, serde_json::Value>,
    ledger: Vec<String>,
}

fn observe(env: &Env) -> Observed {
    let keys = env.keys();
    let files = keys
        .iter()
        // status.json carries a timestamp and the temp path; its content is checked below.
        .filter(|k| !k.ends_with("status.json"))
        .map(|k| (k.clone(), std::fs::read(env.path(k)).expect("read")))
        .collect();
    Observed {
        keys,
        files,
        records: env.records(),
        ledger: env.ledger(),
    }
}

#[test]
fn every_crash_point_is_recovered_exactly_once() {
    let reference = Env::new();
    scenario(&reference);
    let originals: BTreeMap<String, Vec<u8>> = reference
        .keys()
        .into_iter()
        .map(|k| {
            let bytes = std::fs::read(reference.path(&k)).expect("read");
            (k, bytes)
        })
        .collect();
    assert_eq!(run(&reference, None), Some(0));
    let expected = observe(&reference);
    // The reference itself: originals byte-identical in processed/, each once.
    for (key, bytes) in &originals {
        let moved = key.replacen("current/dt=", "processed/", 1);
        if key.contains("20210302") {
            assert_eq!(expected.files.get(key), Some(bytes), "{key} stays");
        } else {
            assert_eq!(expected.files.get(&moved), Some(bytes), "{moved}");
        }
    }
    assert_eq!(
        expected.ledger,
        [
            "current/dt=20210228/users.csv.gz 3",
            "current/dt=20210301/a-good.csv.gz 2"
        ]
    );

    let mut crashes = 0;
    for point in POINTS {
        for hit in 1.. {
            let env = Env::new();
            scenario(&env);
            let actions = if hit == 1 {
                format!("{point}=return")
            } else {
                format!("{point}={}*off->return", hit - 1)
            };
            let first = run(&env, Some(&actions));
            if first.is_some() {
                // The point is reached fewer times than `hit`: the run went through.
                assert_eq!(first, Some(0), "{actions}");
                break;
            }
            crashes += 1;
            assert_eq!(
                run(&env, None),
                Some(0),
                "the run after {actions} must succeed"
            );
            let settled = observe(&env);
            assert_eq!(run(&env, None), Some(0), "a third run after {actions}");
            let observed = observe(&env);
            assert_eq!(
                observed, settled,
                "the run after recovery must be quiet ({actions})"
            );
            assert_eq!(observed, expected, "state after a crash at {actions}");
            for folder in ["20210228", "20210301"] {
                let json: serde_json::Value =
                    serde_json::from_str(&env.read(&format!("processed/{folder}/status.json")))
                        .expect("status.json");
                let reference: serde_json::Value = serde_json::from_str(
                    &reference.read(&format!("processed/{folder}/status.json")),
                )
                .expect("status.json");
                assert_eq!(json["files"], reference["files"], "{actions}");
                assert_eq!(json["success"], reference["success"], "{actions}");
            }
        }
    }
    eprintln!("{crashes} crashes provoked and recovered");
    assert!(
        crashes >= POINTS.len() * 2,
        "only {crashes} crashes were provoked"
    );
}
