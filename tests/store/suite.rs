//! The store contract, one suite for every implementation (object_store's
//! `put_get_delete_list`, for our trait): local folders here, S3 through LocalStack in
//! `tests/s3.rs`.

use bytes::Bytes;
use dropfolder::store::{ObjectStore, PutBody, PutMode, StoreError, list_all};
use tokio::io::AsyncReadExt;

async fn read(store: &dyn ObjectStore, key: &str) -> Vec<u8> {
    let (_, mut reader) = store.get(key).await.expect("get");
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).await.expect("read body");
    bytes
}

async fn put(store: &dyn ObjectStore, key: &str, body: &'static [u8]) -> String {
    store
        .put(
            key,
            PutBody::Bytes(Bytes::from_static(body)),
            PutMode::Overwrite,
        )
        .await
        .expect("put")
        .version
}

/// Runs every check against an empty store.
pub async fn run(store: &dyn ObjectStore) {
    put_get_head(store).await;
    list_with_delimiter_and_pages(store).await;
    copy_only_the_version_read(store).await;
    delete_only_the_version_read(store).await;
    create_refuses_to_overwrite(store).await;
    keys_that_leave_the_root_are_refused(store).await;
    keys_the_pipeline_cannot_handle_are_refused_by_name(store).await;
}

async fn put_get_head(store: &dyn ObjectStore) {
    let version = put(store, "a/one.txt", b"hello").await;
    let head = store
        .head("a/one.txt")
        .await
        .expect("head")
        .expect("exists");
    assert_eq!((head.size, head.version.as_str()), (5, version.as_str()));
    assert_eq!(read(store, "a/one.txt").await, b"hello");
    let (meta, _) = store.get("a/one.txt").await.expect("get");
    assert_eq!(meta.version, version);
    assert!(store.head("a/missing").await.expect("head").is_none());
    assert!(
        matches!(store.get("a/missing").await, Err(StoreError::NotFound { key }) if key == "a/missing")
    );
    let replaced = put(store, "a/one.txt", b"hello again").await;
    assert_ne!(replaced, version, "a replaced object has a new version");
}

async fn list_with_delimiter_and_pages(store: &dyn ObjectStore) {
    for i in 0..25 {
        let key = format!("list/current/f{i:02}.csv.gz");
        store
            .put(
                &key,
                PutBody::Bytes(Bytes::from(vec![b'x'; i])),
                PutMode::Overwrite,
            )
            .await
            .expect("put");
    }
    put(store, "list/current/dt=20210228/_SUCCESS", b"").await;
    put(store, "list/current/dt=20210301/users.csv.gz", b"x").await;
    let all = list_all(store, "list/current/").await.expect("list");
    assert_eq!(all.objects.len(), 25);
    assert_eq!(all.objects[3].key, "list/current/f03.csv.gz");
    assert_eq!(all.objects[3].size, 3);
    assert!(
        all.objects.windows(2).all(|w| w[0].key < w[1].key),
        "key order"
    );
    assert_eq!(
        all.prefixes,
        ["list/current/dt=20210228/", "list/current/dt=20210301/"]
    );
    put(store, "list/processed/20210228/status.txt", b"SUCCESS\n").await;
    put(store, "list/processed/20210228-2/status.txt", b"ERROR\n").await;
    put(store, "list/processed/20210301/status.txt", b"SUCCESS\n").await;
    let partial = list_all(store, "list/processed/20210228")
        .await
        .expect("partial prefix");
    assert_eq!(
        partial.prefixes,
        ["list/processed/20210228-2/", "list/processed/20210228/"]
    );
    let empty = list_all(store, "list/nothing-here/")
        .await
        .expect("empty list");
    assert!(empty.objects.is_empty() && empty.prefixes.is_empty());
}

async fn copy_only_the_version_read(store: &dyn ObjectStore) {
    let version = put(store, "copy/src.csv.gz", b"original").await;
    let copied = store
        .copy("copy/src.csv.gz", "copy/dst/src.csv.gz", &version, 8)
        .await
        .expect("copy");
    assert_eq!(copied.size, 8);
    assert_eq!(read(store, "copy/dst/src.csv.gz").await, b"original");
    put(store, "copy/src.csv.gz", b"replaced by the customer").await;
    let refused = store
        .copy("copy/src.csv.gz", "copy/dst2/src.csv.gz", &version, 8)
        .await;
    assert!(
        matches!(refused, Err(StoreError::Changed { .. })),
        "{refused:?}"
    );
    assert!(
        store
            .head("copy/dst2/src.csv.gz")
            .await
            .expect("head")
            .is_none()
    );
}

async fn delete_only_the_version_read(store: &dyn ObjectStore) {
    let version = put(store, "del/current/dt=20210228/x.csv.gz", b"v1").await;
    let newer = put(
        store,
        "del/current/dt=20210228/x.csv.gz",
        b"v2 from the customer",
    )
    .await;
    let refused = store
        .delete("del/current/dt=20210228/x.csv.gz", &version)
        .await;
    assert!(
        matches!(refused, Err(StoreError::Changed { .. })),
        "{refused:?}"
    );
    assert_eq!(
        read(store, "del/current/dt=20210228/x.csv.gz").await,
        b"v2 from the customer"
    );
    store
        .delete("del/current/dt=20210228/x.csv.gz", &newer)
        .await
        .expect("delete");
    assert!(
        store
            .head("del/current/dt=20210228/x.csv.gz")
            .await
            .expect("head")
            .is_none()
    );
    // Deleting again is fine (a re-run repeats deletes), and the empty prefix is gone.
    store
        .delete("del/current/dt=20210228/x.csv.gz", &newer)
        .await
        .expect("second delete");
    let listing = list_all(store, "del/current/").await.expect("list");
    assert!(listing.prefixes.is_empty(), "{:?}", listing.prefixes);
}

async fn create_refuses_to_overwrite(store: &dyn ObjectStore) {
    let body = || PutBody::Bytes(Bytes::from_static(b"SUCCESS\n"));
    store
        .put("create/status.txt", body(), PutMode::Create)
        .await
        .expect("first create");
    let second = store
        .put("create/status.txt", body(), PutMode::Create)
        .await;
    assert!(
        matches!(second, Err(StoreError::AlreadyExists { .. })),
        "{second:?}"
    );
}

async fn keys_that_leave_the_root_are_refused(store: &dyn ObjectStore) {
    for key in ["../outside", "a/../../outside", "/etc/passwd"] {
        let result = store.head(key).await;
        assert!(
            matches!(result, Err(StoreError::BadKey { .. })),
            "{key}: {result:?}"
        );
    }
}

/// Legal on S3 but not handled by the pipeline: refused by name with the reason the customer
/// reads in `status.txt`, on every store alike (never a NotFound, never another error).
async fn keys_the_pipeline_cannot_handle_are_refused_by_name(store: &dyn ObjectStore) {
    let key = "odd/current/dt=20210228/a\\b.csv.gz";
    let refused = |result: Result<(), StoreError>| match result {
        Err(StoreError::BadKey { key: k, reason }) => {
            assert_eq!((k.as_str(), reason), (key, "a backslash in the key"))
        }
        other => panic!("{key}: {other:?}"),
    };
    refused(store.get(key).await.map(|_| ()));
    refused(store.copy(key, "odd/processed/x", "v", 1).await.map(|_| ()));
    refused(store.delete(key, "v").await);
    refused(
        store
            .put(
                key,
                PutBody::Bytes(Bytes::from_static(b"x")),
                PutMode::Create,
            )
            .await
            .map(|_| ()),
    );
}
