//! What is kept per integration from one scan to the next (in `watch`, and within one
//! `run`), so that an idle scan of an S3 bucket costs its LIST and nothing more: the
//! integration's credentials (for a role, AssumeRole's answer, until its expiration is
//! [`REFRESH_MARGIN`] away) and its bucket's discovered region. Both are dropped the moment
//! S3 says they no longer hold: an access or credentials error assumes the role again, a
//! wrong-region answer (301 PermanentRedirect) asks for the region again, and the request
//! is made once more.
//!
//! Tenant isolation: an entry is keyed by the integration's name and remembers the bucket
//! and access settings it was made for; asked for with any other bucket or identity (a
//! reloaded config), it is replaced, never reused. At most `limit` entries are kept.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_credential_types::provider::{self, ProvideCredentials, future};
use aws_sdk_s3::config::{Credentials, IdentityCache, SharedCredentialsProvider};
use aws_smithy_async::time::{SharedTimeSource, SystemTimeSource, TimeSource};

use super::aws;
use super::{BucketAccess, LocalStore, ObjectStore, S3Store, StoreError, StoreLocation};
use super::{StoreSettings, s3};

/// Credentials are assumed again once their expiration is this close: a scan never starts
/// with credentials that could expire under it.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Opens integrations' stores, keeping each one's credentials and region between opens.
pub struct S3Connections {
    /// The base identity, loaded the first time a bucket needs it.
    base: tokio::sync::OnceCell<SdkConfig>,
    /// One STS client per endpoint for every role assumed from `base`.
    sts: aws::StsClients,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    limit: usize,
    clock: SharedTimeSource,
}

impl fmt::Debug for S3Connections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Connections")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl S3Connections {
    /// Keeps at most `limit` integrations' connections (the configured integrations).
    pub fn new(limit: usize) -> S3Connections {
        S3Connections {
            base: tokio::sync::OnceCell::new(),
            sts: aws::StsClients::default(),
            entries: Mutex::new(HashMap::new()),
            limit: limit.max(1),
            clock: SharedTimeSource::new(SystemTimeSource::new()),
        }
    }

    /// Judges credentials' expiry by `clock` instead of the system's (tests).
    pub fn with_clock(mut self, clock: impl TimeSource + 'static) -> S3Connections {
        self.clock = SharedTimeSource::new(clock);
        self
    }

    /// Opens an integration's store: its local folder, or its S3 bucket with the kept
    /// credentials and region (assumed and discovered the first time, or when they no
    /// longer hold).
    pub async fn open(&self, settings: &StoreSettings) -> Result<Box<dyn ObjectStore>, StoreError> {
        let (bucket, prefix) = match &settings.location {
            StoreLocation::Local(path) => return Ok(Box::new(LocalStore::new(path.clone()))),
            StoreLocation::S3 { bucket, prefix } => (bucket, prefix),
        };
        let base = self.base.get_or_init(aws::base_config).await;
        let entry = self.entry(&settings.access, bucket);
        let client = match entry.client(base, &self.sts, &self.clock).await {
            Err(error) if entry.forget(&error).await => {
                entry.client(base, &self.sts, &self.clock).await?
            }
            other => other?,
        };
        Ok(Box::new(S3Store::new(
            client,
            bucket,
            prefix,
            Some(s3::Reconnect {
                entry,
                base: base.clone(),
                sts: self.sts.clone(),
                clock: self.clock.clone(),
            }),
        )))
    }

    /// The entry of this integration, made for exactly this bucket and access.
    fn entry(&self, access: &BucketAccess, bucket: &str) -> Arc<Entry> {
        let mut entries = match self.entries.lock() {
            Ok(entries) => entries,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(entry) = entries.get(&access.name)
            && entry.access == *access
            && entry.bucket == bucket
        {
            return entry.clone();
        }
        if entries.len() >= self.limit && !entries.contains_key(&access.name) {
            // Over the limit only when integrations were added by a reload: any one goes.
            if let Some(name) = entries.keys().next().cloned() {
                entries.remove(&name);
            }
        }
        let entry = Arc::new(Entry {
            access: access.clone(),
            bucket: bucket.to_string(),
            identity: tokio::sync::OnceCell::new(),
            region: Mutex::new(None),
        });
        entries.insert(access.name.clone(), entry.clone());
        entry
    }
}

/// One integration's kept connection facts.
#[derive(Debug)]
pub(crate) struct Entry {
    access: BucketAccess,
    bucket: String,
    /// Made on first use; an error (a secret not set) is not kept.
    identity: tokio::sync::OnceCell<Identity>,
    /// The discovered region (`access.region`, when set, is used instead and never asked).
    region: Mutex<Option<String>>,
}

#[derive(Debug, Clone)]
enum Identity {
    /// Static keys or an assumed role, kept by us.
    Kept(Arc<KeptCredentials>),
    /// The operator's own identity (opted in): the SDK's chain with its own cache.
    Operator,
}

impl Entry {
    /// An S3 client for the bucket's region with the kept credentials.
    pub(crate) async fn client(
        &self,
        base: &SdkConfig,
        sts: &aws::StsClients,
        clock: &SharedTimeSource,
    ) -> Result<aws_sdk_s3::Client, StoreError> {
        let identity = self
            .identity
            .get_or_try_init(|| async {
                Ok::<_, StoreError>(
                    match aws::credentials(base, sts, &self.access, &self.bucket).await? {
                        Some(source) => Identity::Kept(Arc::new(KeptCredentials {
                            source,
                            kept: tokio::sync::Mutex::new(None),
                            clock: clock.clone(),
                        })),
                        None => Identity::Operator,
                    },
                )
            })
            .await?;
        let config = |region: &str| {
            let credentials = match identity {
                Identity::Kept(kept) => {
                    Some(SharedCredentialsProvider::new(KeptProvider(kept.clone())))
                }
                Identity::Operator => None,
            };
            let config = aws::client_config(base, &self.access, region, credentials);
            match identity {
                // Ours is the only cache: what it forgets, no other cache still holds.
                Identity::Kept(_) => config.identity_cache(IdentityCache::no_cache()),
                Identity::Operator => config,
            }
        };
        let region = match self.access.region.clone().or_else(|| self.kept_region()) {
            Some(region) => region,
            None => {
                let probe = aws_sdk_s3::Client::from_conf(config("us-east-1").build());
                let region = aws::discover_region(&probe, &self.bucket).await?;
                if let Ok(mut kept) = self.region.lock() {
                    *kept = Some(region.clone());
                }
                region
            }
        };
        Ok(aws_sdk_s3::Client::from_conf(config(&region).build()))
    }

    fn kept_region(&self) -> Option<String> {
        self.region.lock().ok().and_then(|r| r.clone())
    }

    /// Drops what `error` says no longer holds; true when something was dropped, so that
    /// asking again may succeed.
    pub(crate) async fn forget(&self, error: &StoreError) -> bool {
        match error {
            StoreError::WrongRegion { .. } if self.access.region.is_none() => self
                .region
                .lock()
                .map(|mut r| r.take().is_some())
                .unwrap_or(false),
            StoreError::AccessDenied { .. } | StoreError::Credentials { .. } => {
                match self.identity.get() {
                    Some(Identity::Kept(kept)) => kept.forget().await,
                    _ => false,
                }
            }
            _ => false,
        }
    }
}

/// An integration's credentials, asked of their source (STS, for a role) only when none are
/// kept or the kept ones are within [`REFRESH_MARGIN`] of their expiration.
pub(crate) struct KeptCredentials {
    source: SharedCredentialsProvider,
    /// Locked across the refresh, so concurrent requests share one AssumeRole.
    kept: tokio::sync::Mutex<Option<Credentials>>,
    clock: SharedTimeSource,
}

impl fmt::Debug for KeptCredentials {
    // Never the credentials themselves.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeptCredentials").finish_non_exhaustive()
    }
}

impl KeptCredentials {
    async fn get(&self) -> provider::Result {
        let mut kept = self.kept.lock().await;
        let now = self.clock.now();
        if let Some(credentials) = kept.as_ref()
            && credentials.expiry().is_none_or(|expiry| {
                expiry
                    .duration_since(now)
                    .is_ok_and(|left| left > REFRESH_MARGIN)
            })
        {
            return Ok(credentials.clone());
        }
        let fresh = self.source.provide_credentials().await?;
        *kept = Some(fresh.clone());
        Ok(fresh)
    }

    /// Drops temporary credentials; true if there were any (static keys stay what they are).
    async fn forget(&self) -> bool {
        self.kept
            .lock()
            .await
            .take()
            .is_some_and(|c| c.expiry().is_some())
    }
}

#[derive(Debug, Clone)]
struct KeptProvider(Arc<KeptCredentials>);

impl ProvideCredentials for KeptProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.0.get())
    }
}
