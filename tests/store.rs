//! The store suite on a local folder, plus what only a file system can do wrong.

#[path = "store/suite.rs"]
mod suite;

use dropfolder::store::{LocalStore, ObjectStore, StoreError};

#[tokio::test]
async fn local_folder_passes_the_store_suite() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Pages of 7 so that 27 entries take four pages.
    suite::run(&LocalStore::new(dir.path()).with_page_size(7)).await;
}

#[tokio::test]
async fn symlinks_out_of_the_root_are_refused() {
    let outside = tempfile::tempdir().expect("temp dir");
    std::fs::write(outside.path().join("secret.txt"), b"not yours").expect("write");
    let root = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink(outside.path(), root.path().join("escape")).expect("symlink");
    let store = LocalStore::new(root.path());
    let result = store.get("escape/secret.txt").await;
    assert!(
        matches!(
            result,
            Err(StoreError::BadKey {
                reason: "resolves outside the root",
                ..
            })
        ),
        "{:?}",
        result.err()
    );
}

#[tokio::test]
async fn a_missing_root_is_an_error_not_an_empty_bucket() {
    let store = LocalStore::new("/nonexistent/dropfolder/root");
    assert!(store.list_page("current/", None).await.is_err());
}
