//! The ledger of applied files: which version of which file was applied, with how many rows
//! and when. It makes loading idempotent: the same file version is never applied twice, even
//! across a crash.
//!
//! Two forms. A database sink keeps its ledger in its own database and writes the row in the
//! same transaction as the records ([`sqlite`], [`postgres`]: functions on a connection or
//! transaction, so a crash keeps both or neither). A sink that cannot roll back (HTTP) uses a
//! standalone [`Ledger`], kept by the state store.

pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use serde::Deserialize;

/// Which records an integration imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Entity {
    User,
    Account,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::User => "user",
            Entity::Account => "account",
        }
    }
}

/// How a file's version is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// The object's ETag, as listed: the file is read at this version.
    ETag(String),
    /// The SHA-256 of the content, hex, for a stream that has no ETag (a local import). The
    /// loader hashes what it reads and fills this in before the ledger is consulted, so an
    /// import is built with it empty.
    ContentHash(String),
}

impl Version {
    /// The version of a listed object: its ETag, or, for a store that gave none, the hash of
    /// its content (filled in by the loader).
    pub fn listed(etag: &str) -> Version {
        if etag.is_empty() {
            Version::ContentHash(String::new())
        } else {
            Version::ETag(etag.to_string())
        }
    }

    /// The text kept in the ledger.
    pub fn as_str(&self) -> &str {
        match self {
            Version::ETag(text) | Version::ContentHash(text) => text,
        }
    }
}

/// One version of one file, as the ledger knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    pub integration: String,
    pub entity: Entity,
    /// The object key (relative to the integration's root), or `import/NAME` for a local import.
    pub key: String,
    pub version: Version,
}

/// A ledger entry: the file was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedFile {
    pub rows: u64,
    pub applied_at: DateTime<Utc>,
}

/// What a commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    Applied,
    /// The ledger already had this file: nothing was changed.
    AlreadyApplied(AppliedFile),
}

/// Which table a ledger lives in: the sink database's, or the state's (for sinks without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `file_ledger`, beside the records.
    Sink,
    /// `state_ledger`, in the state database.
    State,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Sink => "file_ledger",
            Table::State => "state_ledger",
        }
    }
}

/// Why the standalone ledger could not answer; the cause is the store's own error.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Store(Box<dyn std::error::Error + Send + Sync>),
}

/// The standalone ledger, for a sink that cannot write it in a transaction with its records.
#[async_trait]
pub trait Ledger: Send + Sync + std::fmt::Debug {
    /// The entry for `file`, if it was applied before.
    async fn applied(&self, file: &FileRef) -> Result<Option<AppliedFile>, LedgerError>;

    /// Records `file` as applied with `rows`, or gives the entry already there.
    async fn record(&self, file: &FileRef, rows: u64) -> Result<Committed, LedgerError>;
}

#[cfg(test)]
mod tests {
    use super::Version;

    #[test]
    fn a_listed_object_without_an_etag_is_versioned_by_its_content() {
        assert_eq!(
            Version::listed("\"9b2cf535f27731c974343645a3985328\""),
            Version::ETag("\"9b2cf535f27731c974343645a3985328\"".into())
        );
        assert_eq!(Version::listed(""), Version::ContentHash(String::new()));
    }
}
