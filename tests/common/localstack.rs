//! LocalStack, as `tests/run` starts it: the endpoint, an admin S3 client, fresh buckets and
//! IAM roles for each test. The base identity is the `test` keys `tests/run` exports.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::primitives::ByteStream;

/// The LocalStack endpoint, or `None` to skip. `tests/run` always sets it, and sets
/// `DROPFOLDER_REQUIRE_LOCALSTACK=1` so that CI can never skip these tests silently.
pub fn endpoint() -> Option<String> {
    match std::env::var("LOCALSTACK_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ => {
            assert!(
                std::env::var("DROPFOLDER_REQUIRE_LOCALSTACK").is_err(),
                "LOCALSTACK_ENDPOINT is not set: run the tests with tests/run"
            );
            eprintln!("skipped: LOCALSTACK_ENDPOINT is not set (tests/run starts LocalStack)");
            None
        }
    }
}

/// A name unique to this test process and call, usable as a bucket or role name.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

pub struct LocalStack {
    pub endpoint: String,
    pub config: SdkConfig,
    pub s3: aws_sdk_s3::Client,
}

impl LocalStack {
    pub async fn connect(endpoint: String) -> LocalStack {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .load()
            .await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        );
        LocalStack {
            endpoint,
            config,
            s3,
        }
    }

    pub async fn bucket(&self) -> String {
        let name = unique("df");
        self.s3
            .create_bucket()
            .bucket(&name)
            .send()
            .await
            .expect("create bucket");
        name
    }

    pub async fn put(&self, bucket: &str, key: &str, body: impl Into<Vec<u8>>) {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.into()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    }

    pub async fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let object = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .ok()?;
        Some(
            object
                .body
                .collect()
                .await
                .expect("read body")
                .into_bytes()
                .to_vec(),
        )
    }

    pub async fn text(&self, bucket: &str, key: &str) -> String {
        let bytes = self
            .get(bucket, key)
            .await
            .unwrap_or_else(|| panic!("no {key}"));
        String::from_utf8(bytes).expect("utf-8")
    }

    /// Every key in the bucket, sorted.
    pub async fn keys(&self, bucket: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.expect("list");
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
        }
        keys.sort();
        keys
    }

    /// An IAM role the test's identity may assume with `external_id`, allowed the five
    /// actions on the bucket (LocalStack does not enforce either; the config path is real).
    pub async fn role(&self, bucket: &str, external_id: &str) -> String {
        let iam = aws_sdk_iam::Client::new(&self.config);
        let trust = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::000000000000:root"}},"Action":"sts:AssumeRole","Condition":{{"StringEquals":{{"sts:ExternalId":"{external_id}"}}}}}}]}}"#
        );
        let name = unique("dropfolder-role");
        let role = iam
            .create_role()
            .role_name(&name)
            .assume_role_policy_document(trust)
            .send()
            .await
            .expect("create role");
        let policy = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/iam/role-policy.json"
        ))
        .expect("deploy/iam/role-policy.json")
        .replace("EXAMPLE-BUCKET", bucket)
        .replace("EXAMPLE-PREFIX", "px");
        iam.put_role_policy()
            .role_name(&name)
            .policy_name("dropfolder-s3-import")
            .policy_document(policy)
            .send()
            .await
            .expect("put role policy");
        role.role().map(|r| r.arn().to_string()).expect("role arn")
    }
}
