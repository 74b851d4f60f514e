//! The sink contract, one suite for every implementation: rows arrive through the real
//! validator, and `read` returns what the sink stored as (entity, product_key, id, attributes).

use chrono::Utc;
use dropfolder::config::Entity;
use dropfolder::ledger::{Committed, FileRef, Version};
use dropfolder::sink::{FileLoad, Sink};
use dropfolder::validate::{CountRows, FileRules, validate};
use serde_json::{Value, json};

use crate::common::{gzip, rules_with};

pub type Stored = Vec<(String, String, String, Value)>;

fn file(key: &str, version: &str) -> FileRef {
    FileRef {
        integration: "acme-users".into(),
        entity: Entity::User,
        key: key.into(),
        version: Version::ETag(version.into()),
    }
}

/// Validates `csv` into a new load of `file` and commits it (or rolls back if invalid). A
/// sink that cannot roll back gets the file as the loader gives it: judged whole first, and
/// not at all if its ledger has it.
async fn load<S: Sink>(
    sink: &S,
    rules: &FileRules,
    file: &FileRef,
    csv: &str,
) -> Option<Committed> {
    if !sink.transactional() {
        let source = std::io::Cursor::new(gzip(csv.as_bytes()));
        let report = validate(rules, &file.key, source, &mut CountRows::default(), None)
            .await
            .expect("validate");
        if !report.is_valid() {
            return None;
        }
        if let Some(prior) = sink.applied(file).await.expect("ledger") {
            return Some(Committed::AlreadyApplied(prior));
        }
    }
    let mut load = sink.begin(file, Utc::now()).await.expect("begin");
    let source = std::io::Cursor::new(gzip(csv.as_bytes()));
    let report = validate(rules, &file.key, source, &mut load, None)
        .await
        .expect("validate");
    if report.is_valid() {
        Some(
            load.commit(report.rows, &file.version)
                .await
                .expect("commit"),
        )
    } else {
        load.rollback().await.expect("rollback");
        None
    }
}

fn find(stored: &Stored, product_key: &str, id: &str) -> Value {
    stored
        .iter()
        .find(|(_, pk, i, _)| pk == product_key && i == id)
        .map(|(_, _, _, attributes)| attributes.clone())
        .unwrap_or(Value::Null)
}

pub async fn run<S, R, F>(sink: &S, read: R)
where
    S: Sink,
    R: Fn() -> F,
    F: std::future::Future<Output = Stored>,
{
    let rules = rules_with("");

    // Typed attributes: numbers as numbers, booleans as booleans, dates as RFC 3339 UTC.
    let day1 = file("current/dt=20210228/users.csv.gz", "v1");
    let committed = load(
        sink,
        &rules,
        &day1,
        "id,email,signUpDate,score,isTrial\nu1,a@x.com,2021-02-28,12.5,TRUE\nu2,b@x.com,,7,\n",
    )
    .await;
    assert_eq!(committed, Some(Committed::Applied));
    let stored = read().await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].0, "user");
    assert_eq!(
        find(&stored, "", "u1"),
        json!({"email": "a@x.com", "signUpDate": "2021-02-28T00:00:00Z", "score": 12.5, "isTrial": true})
    );
    let applied = sink
        .applied(&day1)
        .await
        .expect("ledger")
        .expect("day 1 is in the ledger");
    assert_eq!(applied.rows, 2);

    // Merge: present columns overwrite, empty fields and absent columns leave values alone.
    let day2 = file("current/dt=20210301/users.csv.gz", "v1");
    load(
        sink,
        &rules,
        &day2,
        "id,email,score\nu1,new@x.com,\nu3,c@x.com,1\n",
    )
    .await;
    let stored = read().await;
    assert_eq!(stored.len(), 3);
    assert_eq!(
        find(&stored, "", "u1"),
        json!({"email": "new@x.com", "signUpDate": "2021-02-28T00:00:00Z", "score": 12.5, "isTrial": true})
    );

    // The same file version again changes nothing and says so.
    let again = load(sink, &rules, &day2, "id,email\nu1,overwritten@x.com\n").await;
    assert!(
        matches!(again, Some(Committed::AlreadyApplied(ref a)) if a.rows == 2),
        "{again:?}"
    );
    assert_eq!(find(&read().await, "", "u1")["email"], "new@x.com");

    // A file with an error loads nothing, not even the rows before the error.
    let bad = file("current/dt=20210302/users.csv.gz", "v1");
    let none = load(
        sink,
        &rules,
        &bad,
        "id,email,score\nu1,bad@x.com,1\nu9,z@x.com,abc\n",
    )
    .await;
    assert_eq!(none, None);
    assert_eq!(find(&read().await, "", "u1")["email"], "new@x.com");
    assert!(sink.applied(&bad).await.expect("ledger").is_none());

    // Product keys separate records with the same id.
    let keyed = rules_with("product_key_column = \"productKey\"");
    let day3 = file("current/dt=20210303/users.csv.gz", "v1");
    load(
        sink,
        &keyed,
        &day3,
        "id,productKey,email\nu1,AP-A-1-1,a1@x.com\nu1,AP-B-1-1,b1@x.com\n",
    )
    .await;
    let stored = read().await;
    assert_eq!(stored.len(), 5);
    assert_eq!(
        find(&stored, "AP-A-1-1", "u1"),
        json!({"email": "a1@x.com"})
    );
    assert_eq!(find(&stored, "", "u1")["email"], "new@x.com");

    // A file that names an id twice: merged in file order, as if applied row by row.
    let twice = file("current/dt=20210305/users.csv.gz", "v1");
    let committed = load(
        sink,
        &rules,
        &twice,
        "id,email,score\nu9,first@x.com,1\nu9,,2\nu9,last@x.com,\n",
    )
    .await;
    assert_eq!(committed, Some(Committed::Applied));
    assert_eq!(
        find(&read().await, "", "u9"),
        json!({"email": "last@x.com", "score": 2})
    );

    // Text that needs escaping survives the round trip.
    let day4 = file("current/dt=20210304/users.csv.gz", "v1");
    load(
        sink,
        &rules,
        &day4,
        "id,email\n\"u\"\"4\",\"multi\nline, \"\"quoted\"\" \\ é\"\n",
    )
    .await;
    assert_eq!(
        find(&read().await, "", "u\"4"),
        json!({"email": "multi\nline, \"quoted\" \\ é"})
    );
}
