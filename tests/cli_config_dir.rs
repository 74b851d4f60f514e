//! `--config DIR`: every `*.toml` in a directory read as one config (a service file and one
//! file per integration), as several ConfigMaps projected into one volume would be; and a
//! duplicate or conflict named with both files.

mod common;
#[path = "common/workdir.rs"]
mod workdir;

use common::gzip;
use workdir::Workdir;

const SERVICE: &str = r#"
[state]
url = "sqlite://../state/dropfolder.db"

[schedule]
every = "15m"

[schemas.users]
id = "string"
email = "string"
"#;

fn integration(name: &str) -> String {
    format!(
        "[[integrations]]\nname = \"{name}\"\nentity = \"user\"\nschema = \"users\"\nbucket = \"file://../drop/{name}\"\n"
    )
}

#[test]
fn a_directory_of_files_is_one_config_and_runs() {
    let wd = Workdir::new();
    wd.write("conf/service.toml", SERVICE);
    wd.write("conf/acme.toml", integration("acme"));
    wd.write("conf/beta.toml", integration("beta"));
    // What a ConfigMap volume holds besides its files, and a file that is not TOML.
    wd.write("conf/..data/acme.toml", integration("hidden"));
    wd.write("conf/README", "not a config");
    std::fs::create_dir_all(wd.path("state")).expect("state dir");
    for name in ["acme", "beta"] {
        wd.write(
            &format!("drop/{name}/current/dt=20210228/users.csv.gz"),
            gzip(b"id,email\nu1,a@x.com\n"),
        );
        wd.write(&format!("drop/{name}/current/dt=20210228/_SUCCESS"), "");
    }
    let check = wd.run(&["--config", "conf", "check", "--offline"]);
    assert_eq!(check.code, Some(0), "{check:?}");
    assert!(check.stdout.contains("ok (2 integration(s))"), "{check:?}");
    let run = wd.run(&["--config", "conf", "run"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    for name in ["acme", "beta"] {
        assert!(
            run.stdout.contains(&format!(
                "{name}: current/dt=20210228/ -> processed/20210228/ SUCCESS, 1 record"
            )),
            "{run:?}"
        );
    }
    // Relative paths resolve against the directory.
    assert!(wd.exists("state/dropfolder.db"), "{run:?}");
}

#[test]
fn duplicates_and_conflicts_name_both_files_all_at_once() {
    let wd = Workdir::new();
    wd.write("conf/service.toml", SERVICE);
    wd.write(
        "conf/acme.toml",
        integration("acme") + "\n[schemas.users]\nid = \"string\"\n",
    );
    wd.write("conf/acme-again.toml", integration("acme"));
    wd.write("conf/other.toml", "[state]\nurl = \"sqlite://other.db\"\n");
    wd.write(
        "conf/typo.toml",
        integration("typo").replace("entity", "entitty"),
    );
    wd.write(
        "conf/types.toml",
        integration("types") + "max_rows = \"many\"\n",
    );
    let run = wd.run(&["--config", "conf", "check", "--offline"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    for expected in [
        "integration 'acme' is defined in acme-again.toml and in acme.toml; names must be unique",
        "schema 'users' is defined in acme.toml and in service.toml; define it once",
        "[state] is in other.toml and in service.toml; a section may be in one file only",
        "typo.toml: unknown key 'entitty' in integration 'typo': did you mean 'entity'?",
        "types.toml: integrations[0].max_rows: invalid type: string \"many\"",
    ] {
        assert!(run.stderr.contains(expected), "{expected}: {run:?}");
    }

    let empty = Workdir::new();
    std::fs::create_dir_all(empty.path("conf")).expect("dir");
    let run = empty.run(&["--config", "conf", "check", "--offline"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("no *.toml file in conf"), "{run:?}");
}
