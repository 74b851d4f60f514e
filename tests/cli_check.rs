//! `dropfolder check` as an operator runs it: every problem at once (unknown keys with the key
//! meant), and everything a run needs reached before the run.

mod common;
#[path = "common/workdir.rs"]
mod workdir;

use workdir::Workdir;

const CONFIG: &str = r#"
[schemas.users]
id = "string"
email = "string"

[[integrations]]
name = "acme"
entity = "user"
schema = "users"
bucket = "file://drop/acme"
date_format = "yyyy-MM-dd"
"#;

#[test]
fn check_reports_every_unknown_key_with_the_key_meant_and_the_other_problems() {
    let wd = Workdir::new();
    std::fs::create_dir_all(wd.path("drop/acme")).expect("drop folder");
    let config = CONFIG.replace("date_format", "date_fromat").replace(
        "[schemas.users]",
        "[schedule]\nevery = \"soon\"\nconcurency = 4\n\n[schemas.users]",
    ) + "csv = { delimiter = \";\", hedaer = false }\nlimits = { max_rows_per_file = 5 }\n";
    wd.write("dropfolder.toml", config);
    let run = wd.run(&["check", "--offline"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    for expected in [
        "unknown key 'date_fromat' in integration 'acme': did you mean 'date_format'?",
        "unknown key 'csv.hedaer' in integration 'acme': did you mean 'csv.header'?",
        "unknown key 'concurency' in [schedule]: did you mean 'concurrency'?",
        // No key is close: the keys that are known there are listed.
        "unknown key 'limits.max_rows_per_file' in integration 'acme'; the keys of limits are max_field_bytes,",
        // The problems serde would never have reached are reported with them.
        "[schedule] every: 'soon' is not a duration like 15m or 1h",
    ] {
        assert!(run.stderr.contains(expected), "{expected}: {run:?}");
    }
    assert!(run.stderr.contains("has 5 problem(s)"), "{run:?}");
}
