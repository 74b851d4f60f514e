//! A customer's S3 bucket (`bucket[/prefix]`) behind the store trait.
//!
//! Every key is under the integration's prefix. Objects are streamed, never buffered whole.
//! Writes of result files use `If-None-Match: *`; copies use `x-amz-copy-source-if-match`, and
//! above 5 GB a multipart copy whose every part carries the same condition; deletes use
//! `If-Match`. Where the server answers `NotImplemented` to a conditional delete (LocalStack
//! 4.9), the store falls back to a HEAD that compares the ETag right before an unconditional
//! delete, and remembers to do so.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_async::time::SharedTimeSource;
use chrono::{DateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::BucketAccess;
use super::aws::{self, error_code, store_error};
use super::kept::Entry;
use super::{
    ListPage, ObjectMeta, ObjectReader, ObjectStore, PutBody, PutMode, StoreError, check_key,
};

/// CopyObject's limit; larger objects are copied in parts.
const SINGLE_COPY_LIMIT: u64 = 5 * 1024 * 1024 * 1024;
/// Part size of a multipart copy.
const COPY_PART_BYTES: u64 = 512 * 1024 * 1024;
/// `x-amz-copy-source` is URL-encoded, keeping `/` between key segments.
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[derive(Debug)]
pub struct S3Store {
    /// Replaced when the kept credentials or region no longer hold ([`Reconnect`]).
    client: RwLock<aws_sdk_s3::Client>,
    reconnect: Option<Reconnect>,
    bucket: String,
    /// The integration's prefix with a trailing `/`, or empty.
    prefix: String,
    /// False once the server said conditional deletes are not implemented.
    conditional_delete: AtomicBool,
    single_copy_limit: u64,
    copy_part_bytes: u64,
    /// Requests sent, by operation (retries by the SDK not counted).
    requests: Mutex<BTreeMap<&'static str, u64>>,
}

impl S3Store {
    /// Connects to an integration's bucket: credentials, then the region (configured or
    /// discovered). Nothing is listed yet.
    pub async fn connect(
        base: &SdkConfig,
        integration: &BucketAccess,
        bucket: &str,
        prefix: &str,
    ) -> Result<S3Store, StoreError> {
        let credentials =
            aws::credentials(base, &aws::StsClients::default(), integration, bucket).await?;
        let client = match &integration.region {
            Some(region) => aws::client(base, integration, region, credentials),
            None => {
                let probe = aws::client(base, integration, "us-east-1", credentials);
                let region = aws::discover_region(&probe, bucket).await?;
                // The probe's own config in the bucket's region: the credentials it got stay
                // in the identity cache they share, one AssumeRole rather than two.
                aws_sdk_s3::Client::from_conf(
                    probe
                        .config()
                        .to_builder()
                        .region(aws_config::Region::new(region))
                        .build(),
                )
            }
        };
        Ok(S3Store::new(client, bucket, prefix, None))
    }

    /// A store on `client`; with `reconnect`, one that drops its integration's kept
    /// credentials or region when S3 says they no longer hold.
    pub(crate) fn new(
        client: aws_sdk_s3::Client,
        bucket: &str,
        prefix: &str,
        reconnect: Option<Reconnect>,
    ) -> S3Store {
        S3Store {
            client: RwLock::new(client),
            reconnect,
            bucket: bucket.to_string(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            conditional_delete: AtomicBool::new(true),
            single_copy_limit: SINGLE_COPY_LIMIT,
            copy_part_bytes: COPY_PART_BYTES,
            requests: Mutex::new(BTreeMap::new()),
        }
    }

    fn client(&self) -> aws_sdk_s3::Client {
        match self.client.read() {
            Ok(client) => client.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// After a failed request: drops what the error says no longer holds (kept credentials
    /// or region) and, if anything was dropped, connects again; true when the request is
    /// worth making once more.
    async fn recover(&self, error: &StoreError) -> bool {
        let Some(reconnect) = &self.reconnect else {
            return false;
        };
        if !reconnect.entry.forget(error).await {
            return false;
        }
        match reconnect
            .entry
            .client(&reconnect.base, &reconnect.sts, &reconnect.clock)
            .await
        {
            Ok(client) => {
                match self.client.write() {
                    Ok(mut current) => *current = client,
                    Err(poisoned) => *poisoned.into_inner() = client,
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Lower multipart-copy thresholds, so tests can copy in parts without 5 GB objects.
    pub fn with_copy_limits(mut self, single_copy_limit: u64, copy_part_bytes: u64) -> S3Store {
        self.single_copy_limit = single_copy_limit;
        self.copy_part_bytes = copy_part_bytes.max(5 * 1024 * 1024);
        self
    }

    /// Requests sent so far, by operation.
    pub fn requests(&self) -> BTreeMap<&'static str, u64> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn count(&self, operation: &'static str) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests.entry(operation).or_default() += 1;
        }
    }

    fn full(&self, key: &str) -> Result<String, StoreError> {
        check_key(key)?;
        Ok(format!("{}{key}", self.prefix))
    }

    fn relative(&self, full: &str) -> String {
        full.strip_prefix(&self.prefix).unwrap_or(full).to_string()
    }

    fn copy_source(&self, full: &str) -> String {
        utf8_percent_encode(&format!("{}/{full}", self.bucket), COPY_SOURCE).to_string()
    }

    async fn copy_in_parts(
        &self,
        from: &str,
        to: &str,
        version: &str,
        size: u64,
    ) -> Result<(), StoreError> {
        self.count("CreateMultipartUpload");
        let upload = self
            .client()
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(to)
            .send()
            .await
            .map_err(|e| store_error(to, e))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_string();
        let mut parts = Vec::new();
        let mut result = Ok(());
        for (i, start) in (0..size).step_by(self.copy_part_bytes as usize).enumerate() {
            let end = (start + self.copy_part_bytes).min(size) - 1;
            self.count("UploadPartCopy");
            let part = self
                .client()
                .upload_part_copy()
                .bucket(&self.bucket)
                .key(to)
                .upload_id(&upload_id)
                .part_number(i as i32 + 1)
                .copy_source(self.copy_source(from))
                .copy_source_range(format!("bytes={start}-{end}"))
                .copy_source_if_match(version)
                .send()
                .await;
            match part {
                Ok(part) => parts.push(
                    CompletedPart::builder()
                        .part_number(i as i32 + 1)
                        .set_e_tag(
                            part.copy_part_result()
                                .and_then(|r| r.e_tag().map(str::to_string)),
                        )
                        .build(),
                ),
                Err(e) => {
                    result = Err(copy_error(from, version, e));
                    break;
                }
            }
        }
        if result.is_ok() {
            self.count("CompleteMultipartUpload");
            let completed = CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build();
            let done = self
                .client()
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(to)
                .upload_id(&upload_id)
                .multipart_upload(completed)
                .send()
                .await;
            match done {
                Ok(_) => return Ok(()),
                Err(e) => result = Err(store_error(to, e)),
            }
        }
        self.count("AbortMultipartUpload");
        let _ = self
            .client()
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(to)
            .upload_id(&upload_id)
            .send()
            .await;
        result
    }
}

fn time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

/// A failed conditional copy: the source changed (412) or is gone.
fn copy_error<E>(
    from: &str,
    version: &str,
    error: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> StoreError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if error_code(&error) == Some("PreconditionFailed") || aws::is_status(&error, 412) {
        StoreError::Changed {
            key: from.to_string(),
            expected: version.to_string(),
        }
    } else {
        store_error(from, error)
    }
}

/// How a store opened through [`super::kept::S3Connections`] connects again.
#[derive(Debug)]
pub(crate) struct Reconnect {
    pub(crate) entry: Arc<Entry>,
    pub(crate) base: aws_config::SdkConfig,
    pub(crate) sts: aws::StsClients,
    pub(crate) clock: SharedTimeSource,
}

/// Every request through the kept connection: an error that says the kept credentials or
/// region no longer hold drops them (so the next scan connects afresh); a LIST, the first
/// request of every scan, is then made once more on a new connection.
#[async_trait]
impl ObjectStore for S3Store {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix.trim_end_matches('/'))
            .trim_end_matches('/')
            .to_string()
    }

    async fn list_page(&self, prefix: &str, token: Option<String>) -> Result<ListPage, StoreError> {
        match self.list_page_once(prefix, token.clone()).await {
            Err(error) if self.recover(&error).await => self.list_page_once(prefix, token).await,
            other => other,
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        let result = self.head_once(key).await;
        self.seen(result).await
    }

    async fn get(&self, key: &str) -> Result<(ObjectMeta, ObjectReader), StoreError> {
        let result = self.get_once(key).await;
        self.seen(result).await
    }

    async fn put(&self, key: &str, body: PutBody, mode: PutMode) -> Result<ObjectMeta, StoreError> {
        let result = self.put_once(key, body, mode).await;
        self.seen(result).await
    }

    async fn copy(
        &self,
        from: &str,
        to: &str,
        version: &str,
        size: u64,
    ) -> Result<ObjectMeta, StoreError> {
        let result = self.copy_once(from, to, version, size).await;
        self.seen(result).await
    }

    async fn delete(&self, key: &str, version: &str) -> Result<(), StoreError> {
        let result = self.delete_once(key, version).await;
        self.seen(result).await
    }
}

impl S3Store {
    /// A result as is, its error first put to [`S3Store::recover`] (for the next request).
    async fn seen<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(error) = &result {
            self.recover(error).await;
        }
        result
    }

    async fn list_page_once(
        &self,
        prefix: &str,
        token: Option<String>,
    ) -> Result<ListPage, StoreError> {
        let full = format!("{}{prefix}", self.prefix);
        self.count("ListObjectsV2");
        let page = self
            .client()
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full)
            .delimiter("/")
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| store_error(&self.bucket, e))?;
        Ok(ListPage {
            objects: page
                .contents()
                .iter()
                .map(|o| ObjectMeta {
                    key: self.relative(o.key().unwrap_or_default()),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    version: o.e_tag().unwrap_or_default().to_string(),
                    last_modified: time(o.last_modified()),
                })
                .collect(),
            prefixes: page
                .common_prefixes()
                .iter()
                .filter_map(|p| p.prefix())
                .map(|p| self.relative(p))
                .collect(),
            next: page
                .next_continuation_token()
                .map(str::to_string)
                .filter(|_| page.is_truncated() == Some(true)),
        })
    }

    async fn head_once(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        let full = self.full(key)?;
        self.count("HeadObject");
        match self
            .client()
            .head_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(head) => Ok(Some(ObjectMeta {
                key: key.to_string(),
                size: head.content_length().unwrap_or(0).max(0) as u64,
                version: head.e_tag().unwrap_or_default().to_string(),
                last_modified: time(head.last_modified()),
            })),
            Err(e) => match store_error(key, e) {
                StoreError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn get_once(&self, key: &str) -> Result<(ObjectMeta, ObjectReader), StoreError> {
        let full = self.full(key)?;
        self.count("GetObject");
        let object = self
            .client()
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| store_error(key, e))?;
        let meta = ObjectMeta {
            key: key.to_string(),
            size: object.content_length().unwrap_or(0).max(0) as u64,
            version: object.e_tag().unwrap_or_default().to_string(),
            last_modified: time(object.last_modified()),
        };
        Ok((meta, Box::new(object.body.into_async_read())))
    }

    async fn put_once(
        &self,
        key: &str,
        body: PutBody,
        mode: PutMode,
    ) -> Result<ObjectMeta, StoreError> {
        let full = self.full(key)?;
        let (size, body) = match body {
            PutBody::Bytes(bytes) => (bytes.len() as u64, ByteStream::from(bytes)),
            PutBody::File(path) => {
                let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                let stream = ByteStream::from_path(&path)
                    .await
                    .map_err(|e| StoreError::S3 {
                        key: key.to_string(),
                        message: format!("cannot read {}: {e}", path.display()),
                        source: Some(Box::new(e)),
                    })?;
                (size, stream)
            }
        };
        let mut request = self
            .client()
            .put_object()
            .bucket(&self.bucket)
            .key(&full)
            .body(body);
        if mode == PutMode::Create {
            request = request.if_none_match("*");
        }
        self.count("PutObject");
        match request.send().await {
            Ok(out) => Ok(ObjectMeta {
                key: key.to_string(),
                size,
                version: out.e_tag().unwrap_or_default().to_string(),
                last_modified: Some(Utc::now()),
            }),
            Err(e)
                if mode == PutMode::Create
                    && (error_code(&e) == Some("PreconditionFailed")
                        || aws::is_status(&e, 412)) =>
            {
                Err(StoreError::AlreadyExists {
                    key: key.to_string(),
                })
            }
            Err(e) => Err(store_error(key, e)),
        }
    }

    async fn copy_once(
        &self,
        from: &str,
        to: &str,
        version: &str,
        size: u64,
    ) -> Result<ObjectMeta, StoreError> {
        let (source, target) = (self.full(from)?, self.full(to)?);
        if size > self.single_copy_limit {
            if let Err(error) = self.copy_in_parts(&source, &target, version, size).await {
                // A part may fail on its byte range before its If-Match is checked (LocalStack
                // does that when the new version is shorter): a changed source says why.
                return Err(match self.head(from).await {
                    Ok(Some(now)) if now.version != version => StoreError::Changed {
                        key: from.to_string(),
                        expected: version.to_string(),
                    },
                    _ => error,
                });
            }
            return Ok(ObjectMeta {
                key: to.to_string(),
                size,
                version: String::new(),
                last_modified: Some(Utc::now()),
            });
        }
        self.count("CopyObject");
        let copied = self
            .client()
            .copy_object()
            .bucket(&self.bucket)
            .key(&target)
            .copy_source(self.copy_source(&source))
            .copy_source_if_match(version)
            .send()
            .await
            .map_err(|e| copy_error(from, version, e))?;
        // The SDK turns a 200 with an <Error> body into an error; a result without an ETag is
        // treated as one too.
        let etag = copied
            .copy_object_result()
            .and_then(|r| r.e_tag())
            .ok_or_else(|| StoreError::S3 {
                key: to.to_string(),
                message: "CopyObject answered without a CopyObjectResult".into(),
                source: None,
            })?;
        Ok(ObjectMeta {
            key: to.to_string(),
            size,
            version: etag.to_string(),
            last_modified: Some(Utc::now()),
        })
    }

    async fn delete_once(&self, key: &str, version: &str) -> Result<(), StoreError> {
        let full = self.full(key)?;
        if self.conditional_delete.load(Ordering::Relaxed) {
            self.count("DeleteObject");
            match self
                .client()
                .delete_object()
                .bucket(&self.bucket)
                .key(&full)
                .if_match(version)
                .send()
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if error_code(&e) == Some("NotImplemented") || aws::is_status(&e, 501) => {
                    tracing::info!(bucket = %self.bucket, "conditional DeleteObject not implemented here: comparing the ETag with HEAD before each delete");
                    self.conditional_delete.store(false, Ordering::Relaxed);
                }
                Err(e)
                    if error_code(&e) == Some("PreconditionFailed") || aws::is_status(&e, 412) =>
                {
                    return Err(StoreError::Changed {
                        key: key.to_string(),
                        expected: version.to_string(),
                    });
                }
                Err(e) => {
                    return match store_error(key, e) {
                        StoreError::NotFound { .. } => Ok(()),
                        other => Err(other),
                    };
                }
            }
        }
        match self.head(key).await? {
            None => return Ok(()),
            Some(current) if current.version != version => {
                return Err(StoreError::Changed {
                    key: key.to_string(),
                    expected: version.to_string(),
                });
            }
            Some(_) => {}
        }
        self.count("DeleteObject");
        self.client()
            .delete_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| store_error(key, e))?;
        Ok(())
    }
}
