//! The state contract, one suite for both stores. `exec` runs SQL on the store's database
//! directly, to write what a bug, a bad migration or a hand edit could leave there.

use std::sync::Arc;

use chrono::Utc;
use dropfolder::state::{Drop, ManifestEntry, ScanRecord, Stage, StateStore};
use futures_util::future::BoxFuture;

pub struct Harness {
    pub state: Arc<dyn StateStore>,
    pub exec: Box<dyn Fn(String) -> BoxFuture<'static, ()> + Send + Sync>,
}

pub async fn run(harness: &Harness) {
    corrupt_drop_is_an_error(harness, "manifest = 'not a manifest'").await;
    corrupt_drop_is_an_error(harness, "stage = 'halfway'").await;
    corrupt_notices_are_an_error(harness).await;
}

fn drop_of(integration: &str, day: &str) -> Drop {
    Drop {
        integration: integration.into(),
        folder: format!("current/dt={day}/"),
        target: format!("processed/{day}/"),
        manifest: vec![ManifestEntry {
            key: format!("current/dt={day}/users.csv.gz"),
            version: "\"etag-1\"".into(),
            size: 10,
        }],
        stage: Stage::Loading,
        started_at: Utc::now(),
        lease: None,
    }
}

/// A drop row with `set` applied is refused with an error naming its integration and
/// folder, never read as a default (an empty manifest, 1970, `Loading`).
pub async fn corrupt_drop_is_an_error(harness: &Harness, set: &str) {
    let integration = common_name("corrupt");
    let drop = drop_of(&integration, "20240102");
    harness.state.begin_drop(&drop).await.expect("begin drop");
    (harness.exec)(format!(
        "UPDATE drops SET {set} WHERE integration = '{integration}'"
    ))
    .await;
    match harness.state.open_drops(&integration).await {
        Ok(drops) => panic!("corrupt drop ({set}) read as {drops:?}"),
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains(&integration) && message.contains(&drop.folder),
                "({set}) the error names neither integration nor folder: {message}"
            );
        }
    }
}

/// Unreadable notices are an error naming the integration, not an empty list.
async fn corrupt_notices_are_an_error(harness: &Harness) {
    let integration = common_name("notices");
    harness
        .state
        .record_scan(&ScanRecord {
            integration: integration.clone(),
            at: Utc::now(),
            error: None,
            notices: vec!["a folder that is not a date".into()],
        })
        .await
        .expect("record scan");
    (harness.exec)(format!(
        "UPDATE integration_status SET notices = '[1, 2' WHERE integration = '{integration}'"
    ))
    .await;
    match harness.state.integrations().await {
        Ok(states) => panic!("corrupt notices read as {states:?}"),
        Err(e) => assert!(
            e.to_string().contains(&integration),
            "the error does not name the integration: {e}"
        ),
    }
}

fn common_name(prefix: &str) -> String {
    crate::common::unique_name(prefix)
}
