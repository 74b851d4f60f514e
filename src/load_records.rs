//! Validated JSON records ([`ValidRecords`], pushed or polled) into the sink through the same
//! [`FileLoad`] and ledger as a file: one load, committed with its ledger entry, so a batch
//! named by a [`FileRef`] (a push's idempotency key, a poll's window) is applied once, even
//! when it comes again after a crash.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::ledger::{Committed, FileRef, Version};
use crate::load::LoadError;
use crate::sink::{FileLoad, Sink};
use crate::validate::ValidRecords;

/// Applies `batches`, in order, as one load named `file`: every record with the ledger entry
/// in one transaction (a database sink), or, for a sink that cannot roll back, sent once the
/// ledger said `file` was not applied. A `file` the ledger has already is not applied again:
/// [`Committed::AlreadyApplied`]. A record named twice ends with the later one's values.
/// `updated_at` stamps every record written.
pub async fn load_records<S: Sink>(
    sink: &S,
    file: &FileRef,
    batches: &[&ValidRecords],
    updated_at: DateTime<Utc>,
) -> Result<Committed, LoadError> {
    load_records_also(sink, file, Vec::new(), batches, updated_at).await
}

/// [`load_records`], with more ledger entries (`also`: name and rows) committed in the same
/// transaction as the load's own: a batch of pushed requests, each applied once under its
/// own idempotency key.
pub async fn load_records_also<S: Sink>(
    sink: &S,
    file: &FileRef,
    also: Vec<(FileRef, u64)>,
    batches: &[&ValidRecords],
    updated_at: DateTime<Utc>,
) -> Result<Committed, LoadError> {
    let sink_error = |source| LoadError::Sink {
        key: file.key.clone(),
        source,
    };
    // Saves a transaction on a repeat, and is the only check a sink without rollback has.
    if let Some(prior) = sink.applied(file).await.map_err(sink_error)? {
        return Ok(Committed::AlreadyApplied(prior));
    }
    let mut load = sink.begin(file, updated_at).await.map_err(sink_error)?;
    load.also_record(also);
    let mut rows = 0u64;
    for batch in batches {
        if let Err(e) = batch.feed(&mut load).await {
            let _ = load.rollback().await; // Abandoned either way; the first error says why.
            return Err(sink_error(e));
        }
        rows += batch.len() as u64;
    }
    crate::crash_point!("before-records-commit");
    load.commit(rows, &file.version).await.map_err(sink_error)
}

/// A version for records that have no other: `sha256:<hex>` of what would be stored (each
/// record's id, product key and attributes), so the same records give the same version.
pub fn content_version(batches: &[&ValidRecords]) -> Version {
    let mut hash = Sha256::new();
    let mut json = Vec::new();
    for batch in batches {
        for row in batch.rows() {
            json.clear();
            row.write_attributes_json(&mut json);
            for part in [row.id().as_bytes(), row.product_key().as_bytes(), &json] {
                hash.update((part.len() as u64).to_le_bytes());
                hash.update(part);
            }
        }
    }
    let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Version::ContentHash(format!("sha256:{hex}"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ledger::Entity;
    use crate::sink::SqliteSink;
    use crate::validate::{
        AttributeType, CsvDialect, DatePattern, FileRules, JsonRecord, Limits, ProductKey, Schema,
        validate_records,
    };

    fn rules() -> FileRules {
        let attributes: BTreeMap<String, AttributeType> = [
            ("email".to_string(), AttributeType::String),
            ("age".to_string(), AttributeType::Number),
        ]
        .into_iter()
        .collect();
        FileRules {
            schema: Schema { attributes },
            product_key: ProductKey::None,
            dates: DatePattern::compile("yyyy-MM-dd").expect("a valid pattern"),
            csv: CsvDialect::default(),
            max_rows: 100,
            limits: Limits::default(),
        }
    }

    fn valid(json: &str) -> ValidRecords {
        let records: Vec<JsonRecord> = serde_json::from_str(json).expect("test JSON");
        validate_records(&rules(), &records).unwrap_or_else(|e| panic!("{e}"))
    }

    fn file(key: &str, version: Version) -> FileRef {
        FileRef {
            integration: "acme".into(),
            entity: Entity::User,
            key: key.into(),
            version,
        }
    }

    fn stored(path: &std::path::Path) -> Vec<(String, String)> {
        let conn = rusqlite::Connection::open(path).expect("open the sink database");
        let mut query = conn
            .prepare("SELECT id, attributes FROM records ORDER BY id")
            .expect("query");
        query
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .expect("rows")
    }

    #[tokio::test]
    async fn batches_apply_once_in_one_load_and_a_repeat_changes_nothing() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("sink.db");
        let sink = SqliteSink::open(&path).await.expect("open the sink");
        let first = valid(r#"[{"id": "u1", "email": "a@x", "age": 1}, {"id": "u2", "age": 2}]"#);
        let second = valid(r#"[{"id": "u1", "age": 3}]"#);
        let batches = [&first, &second];
        let version = content_version(&batches);
        assert_eq!(version, content_version(&[&first, &second]));
        assert_ne!(version, content_version(&[&second, &first]));
        let named = file("push/key-1", version);
        let committed = load_records(&sink, &named, &batches, Utc::now()).await;
        assert!(matches!(committed, Ok(Committed::Applied)), "{committed:?}");
        let expected = vec![
            ("u1".to_string(), r#"{"age":3,"email":"a@x"}"#.to_string()),
            ("u2".to_string(), r#"{"age":2}"#.to_string()),
        ];
        assert_eq!(stored(&path), expected);

        // The same name again, even with other records: the ledger has it, nothing changes.
        let other = valid(r#"[{"id": "u9", "age": 9}]"#);
        let again = load_records(&sink, &named, &[&other], Utc::now()).await;
        assert!(
            matches!(again, Ok(Committed::AlreadyApplied(ref prior)) if prior.rows == 3),
            "{again:?}"
        );
        assert_eq!(stored(&path), expected);
    }

    #[tokio::test]
    async fn the_entries_named_also_are_in_the_ledger_with_the_load() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("sink.db");
        let sink = SqliteSink::open(&path).await.expect("open the sink");
        let records = valid(r#"[{"id": "u1", "age": 1}]"#);
        let key = |k: &str| file(k, Version::ETag("request".into()));
        let also = vec![(key("push/key/a"), 1), (key("push/key/b"), 0)];
        let committed =
            load_records_also(&sink, &key("push/batch/1"), also, &[&records], Utc::now()).await;
        assert!(matches!(committed, Ok(Committed::Applied)), "{committed:?}");
        for (name, rows) in [("push/batch/1", 1), ("push/key/a", 1), ("push/key/b", 0)] {
            let entry = sink.applied(&key(name)).await;
            assert!(
                matches!(entry, Ok(Some(ref e)) if e.rows == rows),
                "{name}: {entry:?}"
            );
        }
        assert_eq!(sink.applied(&key("push/key/c")).await.ok(), Some(None));
    }
}
