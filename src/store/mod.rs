//! What the pipeline needs of a bucket, as one small trait with S3's semantics: keys (not
//! paths), delimiter listings page by page, an opaque version per object (the ETag), and
//! conditional writes and deletes. [`local`] implements it on a folder for the embedded
//! default; the S3 implementation follows the same contract, and `tests/store.rs` runs one
//! suite against both. [`S3Connections`] opens stores keeping each integration's
//! credentials and region from one scan to the next.

pub mod aws;
pub(crate) mod kept;
pub(crate) mod local;
pub(crate) mod s3;

use std::fmt;
use std::path::PathBuf;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::io::AsyncRead;

pub use kept::{REFRESH_MARGIN, S3Connections};
pub use local::LocalStore;
pub use s3::S3Store;

/// One object: its key relative to the integration's root, size, and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// Changes whenever the object is replaced: the ETag on S3, mtime and size locally.
    pub version: String,
    pub last_modified: Option<DateTime<Utc>>,
}

/// One page of a delimiter listing.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// Objects directly under the prefix, in key order.
    pub objects: Vec<ObjectMeta>,
    /// "Folders": the next level of keys, each ending in `/`, in key order.
    pub prefixes: Vec<String>,
    /// Pass back to get the next page; `None` on the last one.
    pub next: Option<String>,
}

/// An object's bytes, streamed.
pub type ObjectReader = Box<dyn AsyncRead + Send + Unpin>;

/// What to write.
#[derive(Debug, Clone)]
pub enum PutBody {
    Bytes(Bytes),
    /// A local file, streamed (e.g. a spooled `errors.csv`).
    File(PathBuf),
}

/// Whether a write may replace an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    Overwrite,
    /// Fail with [`StoreError::AlreadyExists`] if the key exists (S3 `If-None-Match: *`).
    Create,
}

/// Why a store operation failed. Every variant names the key it was about.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{key}: not found")]
    NotFound { key: String },
    #[error("{key}: already exists")]
    AlreadyExists { key: String },
    /// The object is not the version we read: the customer replaced it meanwhile.
    #[error("{key}: changed since it was read (expected version {expected})")]
    Changed { key: String, expected: String },
    #[error("{key}: the key is not allowed ({reason})")]
    BadKey { key: String, reason: &'static str },
    /// A listing longer than [`MAX_LISTED`]: read no further, so that one bucket cannot make
    /// the process hold millions of keys.
    #[error(
        "{key}: the scan passed {limit} keys and folders here, the most one scan reads; move what is not a dt=YYYYMMDD folder to import out of current/"
    )]
    TooMany { key: String, limit: usize },
    #[error(
        "{key}: access denied ({message}); check that the role's policy allows ListBucket, GetBucketLocation, GetObject, PutObject and DeleteObject on this bucket and prefix (deploy/iam/role-policy.json)"
    )]
    AccessDenied { key: String, message: String },
    #[error("bucket {key} does not exist; check `bucket` in the config")]
    NoSuchBucket { key: String },
    #[error(
        "{key}: cannot get credentials ({message}); check role_arn, the external ID and the role's trust policy, or the access keys"
    )]
    Credentials { key: String, message: String },
    #[error(
        "{key}: the bucket is in another region ({message}); remove `region` to discover it, or set the right one"
    )]
    WrongRegion { key: String, message: String },
    /// A local file-system operation failed.
    #[error("{key}: {source}")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
    /// The task doing blocking file-system work ended without an answer.
    #[error("{key}: file-system task failed: {source}")]
    Task {
        key: String,
        #[source]
        source: tokio::task::JoinError,
    },
    /// No answer from the S3 endpoint (`causes` is the SDK's chain of causes, in one line).
    #[error(
        "{key}: cannot reach the S3 endpoint ({causes}); check `endpoint` (or, without one, DNS, the proxy and the network path to AWS) and that the endpoint is up"
    )]
    Unreachable {
        key: String,
        causes: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An S3 answer or SDK failure none of the variants above describes; `message` is what
    /// the service or the SDK said, in one line.
    #[error("{key}: {message}")]
    S3 {
        key: String,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl StoreError {
    pub fn key(&self) -> &str {
        match self {
            StoreError::NotFound { key }
            | StoreError::AlreadyExists { key }
            | StoreError::Changed { key, .. }
            | StoreError::BadKey { key, .. }
            | StoreError::TooMany { key, .. }
            | StoreError::AccessDenied { key, .. }
            | StoreError::NoSuchBucket { key }
            | StoreError::Credentials { key, .. }
            | StoreError::WrongRegion { key, .. }
            | StoreError::Io { key, .. }
            | StoreError::Task { key, .. }
            | StoreError::Unreachable { key, .. }
            | StoreError::S3 { key, .. } => key,
        }
    }
}

/// A bucket (or folder) as the pipeline sees it. Keys are relative to the integration's root
/// and use `/`. A listing prefix is a plain string prefix, as on S3: `current/` lists a
/// "folder", `processed/20210228` every name in `processed/` that starts with `20210228`.
#[async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// Where the root is, for messages and `status.json` (`s3://bucket/prefix`, a path).
    fn describe(&self) -> String;

    /// One page of the objects and sub-prefixes that start with `prefix`, grouped at the
    /// next `/` (a delimiter listing).
    async fn list_page(&self, prefix: &str, token: Option<String>) -> Result<ListPage, StoreError>;

    /// The object's metadata, or `None` if there is none.
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError>;

    /// Opens the object for streaming, with the metadata of the version being read.
    async fn get(&self, key: &str) -> Result<(ObjectMeta, ObjectReader), StoreError>;

    /// Writes a (small) object.
    async fn put(&self, key: &str, body: PutBody, mode: PutMode) -> Result<ObjectMeta, StoreError>;

    /// Copies `from` (of `size` bytes) to `to`, failing with [`StoreError::Changed`] unless
    /// `from` is still at `version` (S3 `x-amz-copy-source-if-match`).
    async fn copy(
        &self,
        from: &str,
        to: &str,
        version: &str,
        size: u64,
    ) -> Result<ObjectMeta, StoreError>;

    /// Deletes the object if it is still at `version`; [`StoreError::Changed`] if it is not.
    /// Deleting a missing object succeeds (S3 semantics), so a re-run can repeat a delete.
    async fn delete(&self, key: &str, version: &str) -> Result<(), StoreError>;
}

/// Where an integration's files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

/// How an integration reaches its S3 bucket. Secrets are named (env vars), read when the
/// bucket is opened; the config has checked which combinations are allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketAccess {
    /// The integration's name: the STS session name.
    pub name: String,
    /// S3 API endpoint override (LocalStack, MinIO); path-style addressing is used with it.
    pub endpoint: Option<String>,
    /// STS endpoint override; default: `endpoint` when set, else AWS.
    pub sts_endpoint: Option<String>,
    /// The bucket's region; discovered with GetBucketLocation when absent.
    pub region: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub external_id_env: Option<String>,
    pub access_key_id_env: Option<String>,
    pub secret_access_key_env: Option<String>,
    pub session_token_env: Option<String>,
    pub use_operator_identity: bool,
}

/// An integration's store, as checked.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub location: StoreLocation,
    pub access: BucketAccess,
}

/// Opens an integration's store once: its local folder, or its S3 bucket with its
/// credentials (connecting assumes the role and discovers the region). `aws` holds the base
/// identity, loaded the first time a bucket needs it. Work that opens stores again and again
/// uses [`S3Connections`], which keeps what connecting found.
pub async fn open(
    settings: &StoreSettings,
    aws: &tokio::sync::OnceCell<aws_config::SdkConfig>,
) -> Result<Box<dyn ObjectStore>, StoreError> {
    match &settings.location {
        StoreLocation::Local(path) => Ok(Box::new(LocalStore::new(path.clone()))),
        StoreLocation::S3 { bucket, prefix } => {
            let base = aws.get_or_init(aws::base_config).await;
            Ok(Box::new(
                S3Store::connect(base, &settings.access, bucket, prefix).await?,
            ))
        }
    }
}

/// Every object and prefix directly under `prefix`, all pages.
pub async fn list_all(store: &dyn ObjectStore, prefix: &str) -> Result<ListPage, StoreError> {
    let mut budget = MAX_LISTED;
    list_within(store, prefix, &mut budget).await
}

/// Keys and folders one scan reads at most under a prefix (about 150 bytes each in memory):
/// more is a located error, not memory the whole process pays for one bucket.
pub const MAX_LISTED: usize = 50_000;

/// [`list_all`], taking the entries read from `budget`: past it, [`StoreError::TooMany`].
pub async fn list_within(
    store: &dyn ObjectStore,
    prefix: &str,
    budget: &mut usize,
) -> Result<ListPage, StoreError> {
    let mut all = ListPage::default();
    let mut token = None;
    loop {
        let page = store.list_page(prefix, token).await?;
        let entries = page.objects.len() + page.prefixes.len();
        if entries > *budget {
            return Err(StoreError::TooMany {
                key: prefix.to_string(),
                limit: MAX_LISTED,
            });
        }
        *budget -= entries;
        all.objects.extend(page.objects);
        all.prefixes.extend(page.prefixes);
        match page.next {
            Some(next) => token = Some(next),
            None => return Ok(all),
        }
    }
}

/// Refuses keys that could leave the root or are not plain relative keys. Every store calls
/// it before touching a key, and the pipeline asks it first (`finish::unhandled`),
/// so a customer key refused here is listed as not imported on every store alike. The
/// reason is shown to the customer.
pub fn check_key(key: &str) -> Result<(), StoreError> {
    let bad = |reason| {
        Err(StoreError::BadKey {
            key: key.to_string(),
            reason,
        })
    };
    if key.starts_with('/') {
        return bad("an absolute key");
    }
    if key.contains('\\') {
        return bad("a backslash in the key");
    }
    if key.split('/').any(|part| part == ".." || part == ".") {
        return bad("a '.' or '..' segment in the key");
    }
    if key.contains('\0') {
        return bad("a NUL byte in the key");
    }
    Ok(())
}
