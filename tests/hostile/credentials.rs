//! Credentials kept between scans: an integration's assumed-role credentials sign requests
//! for its own bucket only, whatever the order of scans, and an integration whose bucket or
//! role changed under the same name (a reloaded config) never inherits the old ones.

use std::collections::BTreeMap;

use dropfolder::config::{Config, SecretCheck};
use dropfolder::settings::Settings;
use dropfolder::store::S3Connections;
use dropfolder::worker::Worker;

use crate::counting_proxy::CountingProxy;
use crate::localstack;

struct Two {
    proxy: CountingProxy,
    settings: Settings,
    /// Bucket -> the role of the integration it belongs to.
    roles: BTreeMap<String, String>,
    _dir: tempfile::TempDir,
}

/// Integrations `a` and `b`, each with its own bucket and its own role, through one proxy.
async fn two_integrations() -> Option<Two> {
    let endpoint = localstack::endpoint()?;
    let ls = localstack::LocalStack::connect(endpoint.clone()).await;
    let proxy = CountingProxy::start(&endpoint).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut text = format!(
        "[state]\nurl = \"sqlite://{}\"\n[schemas.s]\nid = \"string\"\n",
        dir.path().join("dropfolder.db").display()
    );
    let mut roles = BTreeMap::new();
    for name in ["a", "b"] {
        let bucket = ls.bucket().await;
        let external_id = format!("SUB-{name}");
        let role = ls.role(&bucket, &external_id).await;
        text.push_str(&format!(
            "\n[[integrations]]\nname = \"{name}\"\nentity = \"user\"\nschema = \"s\"\nbucket = \"{bucket}/px\"\nendpoint = \"{}\"\nrole_arn = \"{role}\"\nexternal_id = \"{external_id}\"\n",
            proxy.url
        ));
        roles.insert(bucket, role);
    }
    let settings = Config::parse(&text, dir.path().to_path_buf())
        .expect("config parses")
        .compile(SecretCheck::Require)
        .expect("config compiles");
    Some(Two {
        proxy,
        settings,
        roles,
        _dir: dir,
    })
}

impl Two {
    /// Every S3 request was signed with a key AssumeRole gave for its bucket's role.
    fn assert_each_bucket_signed_by_its_role(&self) {
        let issued = self.proxy.issued();
        let signed = self.proxy.signed();
        assert!(!signed.is_empty());
        for request in &signed {
            let role = issued.get(&request.key_id);
            assert_eq!(
                role,
                self.roles.get(&request.bucket),
                "{request:?} signed with a key issued for {role:?}; issued: {issued:?}"
            );
        }
    }
}

/// Three scans of both integrations at once in one worker: one AssumeRole each, and every
/// request signed by the role of the bucket it went to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_credentials_sign_only_their_own_integrations_requests() {
    let Some(two) = two_integrations().await else {
        return;
    };
    let worker = Worker::open(two.settings.clone()).await.expect("worker");
    for _ in 0..3 {
        let report = worker.run_once().await;
        assert!(!report.failed(), "{:?}", report.integrations);
    }
    let counts = two.proxy.counts();
    assert_eq!(counts.get("sts:AssumeRole"), Some(&2), "{counts:?}");
    assert_eq!(counts.get("s3:ListObjectsV2"), Some(&6), "{counts:?}");
    two.assert_each_bucket_signed_by_its_role();
}

/// `a` reconfigured with `b`'s bucket and role under its own name: its kept credentials and
/// region are not reused for the other bucket; the role is assumed for the new settings, and
/// back again when the settings go back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_reconfigured_with_another_bucket_and_role_starts_afresh() {
    let Some(two) = two_integrations().await else {
        return;
    };
    let before = two.settings.integrations[0]
        .store()
        .expect("an S3 integration")
        .clone();
    let mut after = two.settings.integrations[1]
        .store()
        .expect("an S3 integration")
        .clone();
    after.access.name = before.access.name.clone();
    let connections = S3Connections::new(2);
    for store in [&before, &after, &before] {
        let store = connections.open(store).await.expect("open");
        store.list_page("current/", None).await.expect("list");
    }
    let counts = two.proxy.counts();
    assert_eq!(counts.get("sts:AssumeRole"), Some(&3), "{counts:?}");
    assert_eq!(counts.get("s3:GetBucketLocation"), Some(&3), "{counts:?}");
    two.assert_each_bucket_signed_by_its_role();
}
