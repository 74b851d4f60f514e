//! The state contract, one suite for both stores. `exec` runs SQL on the store's database
//! directly, to write what a bug, a bad migration or a hand edit could leave there.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use dropfolder::ledger::{Committed, FileRef, Ledger, Version};
use dropfolder::state::{
    CallbackOutcome, CallbackRequest, Claim, Clock, DropResult, JournaledDrop, ManifestEntry,
    ManualClock, ScanRecord, Stage, StateError, StateStore,
};
use futures_util::future::BoxFuture;

pub struct Harness {
    /// The store, going by `clock`.
    pub state: Arc<dyn StateStore>,
    pub clock: ManualClock,
    pub exec: Box<dyn Fn(String) -> BoxFuture<'static, ()> + Send + Sync>,
}

pub async fn run(harness: &Harness) {
    leases_expire_by_the_clock_and_fence_the_old_holder(harness).await;
    a_drop_goes_through_the_journal(harness).await;
    a_failed_callback_is_due_again_at_its_retry_time(harness).await;
    the_ledger_records_a_file_version_once(harness).await;
    corrupt_drop_is_an_error(harness, "manifest = 'not a manifest'").await;
    corrupt_drop_is_an_error(harness, "stage = 'halfway'").await;
    corrupt_notices_are_an_error(harness).await;
}

fn drop_of(integration: &str, day: &str) -> JournaledDrop {
    JournaledDrop {
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

fn granted(claim: Claim) -> dropfolder::state::Lease {
    match claim {
        Claim::Granted(lease) => lease,
        Claim::HeldBy(holder) => panic!("refused: held by {holder}"),
    }
}

async fn claim(harness: &Harness, integration: &str, holder: &str, dead: Option<&str>) -> Claim {
    harness
        .state
        .claim(integration, holder, Duration::from_secs(30), dead)
        .await
        .expect("claim")
}

async fn leases_expire_by_the_clock_and_fence_the_old_holder(harness: &Harness) {
    let integration = common_name("lease");
    let ttl = Duration::from_secs(30);
    let a = granted(claim(harness, &integration, "replica-a", None).await);
    assert_eq!(
        claim(harness, &integration, "replica-b", None).await,
        Claim::HeldBy("replica-a".into())
    );
    harness.clock.advance(Duration::from_secs(29));
    assert_eq!(
        claim(harness, &integration, "replica-b", None).await,
        Claim::HeldBy("replica-a".into()),
        "a lease is live until its time is up"
    );
    assert!(harness.state.renew(&a, ttl).await.expect("renew"));
    harness.clock.advance(Duration::from_secs(29));
    assert_eq!(
        claim(harness, &integration, "replica-b", None).await,
        Claim::HeldBy("replica-a".into()),
        "a renewal counts from when it was made"
    );
    harness.clock.advance(Duration::from_secs(2));
    let b = granted(claim(harness, &integration, "replica-b", None).await);
    assert!(b.token > a.token, "tokens only grow: {a:?} then {b:?}");
    assert!(
        !harness.state.renew(&a, ttl).await.expect("renew"),
        "the old holder cannot renew a lease taken over"
    );
    let mut drop = drop_of(&integration, "20240101");
    drop.lease = Some(a.token);
    assert!(
        matches!(
            harness.state.begin_drop(&drop).await,
            Err(StateError::LeaseLost { token, .. }) if token == a.token
        ),
        "the old holder's journal writes are fenced"
    );
    // A holder known to be dead is taken over at once; a released lease is free at once.
    let c = granted(claim(harness, &integration, "replica-c", Some("replica-b")).await);
    assert!(c.token > b.token);
    harness.state.release(&c).await.expect("release");
    let d = granted(claim(harness, &integration, "replica-d", None).await);
    assert!(d.token > c.token);
}

async fn a_drop_goes_through_the_journal(harness: &Harness) {
    let integration = common_name("journal");
    let lease = granted(claim(harness, &integration, "replica-a", None).await);
    let mut drop = drop_of(&integration, "20240103");
    drop.lease = Some(lease.token);
    harness.state.begin_drop(&drop).await.expect("begin drop");
    let open = harness
        .state
        .open_drops(&integration)
        .await
        .expect("open drops");
    assert_eq!(open.len(), 1);
    assert_eq!(
        (
            &open[0].folder,
            &open[0].target,
            &open[0].manifest,
            open[0].stage
        ),
        (&drop.folder, &drop.target, &drop.manifest, Stage::Loading)
    );
    let result = DropResult {
        success: true,
        records: 2,
        message: "SUCCESS\n2 records were uploaded\n".into(),
    };
    harness
        .state
        .report_drop(&drop, &result, None)
        .await
        .expect("report drop");
    let open = harness
        .state
        .open_drops(&integration)
        .await
        .expect("open drops");
    assert_eq!(open[0].stage, Stage::Reported);
    harness.state.finish_drop(&drop).await.expect("finish drop");
    assert!(
        harness
            .state
            .open_drops(&integration)
            .await
            .expect("open drops")
            .is_empty()
    );
    let states = harness.state.integrations().await.expect("integrations");
    let state = states
        .iter()
        .find(|s| s.integration == integration)
        .expect("the integration is known");
    assert_eq!(state.last_target.as_deref(), Some(drop.target.as_str()));
    assert_eq!(
        harness
            .state
            .last_target(&integration)
            .await
            .expect("last target"),
        Some(drop.target.clone())
    );
    assert_eq!(
        harness
            .state
            .last_target(&common_name("never-seen"))
            .await
            .expect("last target"),
        None
    );
    assert_eq!(state.last_success, Some(true));
    assert_eq!(state.last_message.as_deref(), Some(result.message.as_str()));
}

async fn a_failed_callback_is_due_again_at_its_retry_time(harness: &Harness) {
    let integration = common_name("outbox");
    let drop = drop_of(&integration, "20240104");
    harness.state.begin_drop(&drop).await.expect("begin drop");
    let request = CallbackRequest {
        integration: integration.clone(),
        folder_path: drop.target.clone(),
        success: true,
        message: "ok".into(),
        idempotency_key: common_name("key"),
    };
    let result = DropResult {
        success: true,
        records: 1,
        message: "ok".into(),
    };
    // Twice, as a re-run after a crash would: the callback is queued once.
    for _ in 0..2 {
        harness
            .state
            .report_drop(&drop, &result, Some(&request))
            .await
            .expect("report drop");
    }
    harness.clock.advance(Duration::from_secs(1));
    let due = |at| harness.state.due_callbacks(&integration, at);
    let pending = due(harness.clock.now()).await.expect("due callbacks");
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!((&pending[0].request, pending[0].deliveries), (&request, 0));
    let failed_at = harness.clock.now();
    harness
        .state
        .callback_delivery(
            pending[0].id,
            &CallbackOutcome::Failed {
                error: "HTTP 503".into(),
                retry_at: failed_at + chrono::Duration::seconds(60),
            },
        )
        .await
        .expect("record delivery");
    assert!(
        due(failed_at + chrono::Duration::seconds(30))
            .await
            .expect("due callbacks")
            .is_empty(),
        "not due before its retry time"
    );
    let again = due(failed_at + chrono::Duration::seconds(61))
        .await
        .expect("due callbacks");
    assert_eq!((again.len(), again[0].deliveries), (1, 1), "{again:?}");
    let error_of = || async {
        harness
            .state
            .integrations()
            .await
            .expect("integrations")
            .into_iter()
            .find(|s| s.integration == integration)
            .and_then(|s| s.callback_error)
    };
    assert_eq!(error_of().await.as_deref(), Some("HTTP 503"));
    harness
        .state
        .callback_delivery(again[0].id, &CallbackOutcome::Delivered)
        .await
        .expect("record delivery");
    assert!(
        due(failed_at + chrono::Duration::days(1))
            .await
            .expect("due callbacks")
            .is_empty(),
        "a delivered callback is never due again"
    );
    assert_eq!(error_of().await, None);
}

/// The standalone ledger (of sinks without their own): one entry per file version.
async fn the_ledger_records_a_file_version_once(harness: &Harness) {
    let ledger: &dyn Ledger = harness.state.as_ref();
    let file = FileRef {
        integration: common_name("ledger"),
        entity: dropfolder::config::Entity::User,
        key: "current/dt=20240107/users.csv.gz".into(),
        version: Version::ETag("\"etag-1\"".into()),
    };
    assert_eq!(ledger.applied(&file).await.expect("applied"), None);
    assert_eq!(
        ledger.record(&file, 5).await.expect("record"),
        Committed::Applied
    );
    let entry = ledger
        .applied(&file)
        .await
        .expect("applied")
        .expect("the file is in the ledger");
    assert_eq!(entry.rows, 5);
    assert!(
        matches!(ledger.record(&file, 6).await.expect("record"), Committed::AlreadyApplied(ref prior) if *prior == entry),
        "a second record of the same version gives the first entry"
    );
    let other = FileRef {
        version: Version::ContentHash("ab12".into()),
        ..file.clone()
    };
    assert_eq!(
        ledger.applied(&other).await.expect("applied"),
        None,
        "another version is another file"
    );
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

/// A drop of `integration` begun and reported successfully, with one record.
async fn reported_drop(harness: &Harness, integration: &str, date: &str) -> JournaledDrop {
    let drop = drop_of(integration, date);
    harness.state.begin_drop(&drop).await.expect("begin drop");
    let result = DropResult {
        success: true,
        records: 1,
        message: "ok".into(),
    };
    harness
        .state
        .report_drop(&drop, &result, None)
        .await
        .expect("report drop");
    drop
}

/// A reported drop whose report time was overwritten with `reported_at` is refused by the
/// page's `recent_drops`, naming the integration and the target, rather than read as 1970.
pub async fn corrupt_report_time_is_an_error(harness: &Harness, reported_at: &str) {
    let integration = common_name("reported");
    let drop = reported_drop(harness, &integration, "20240107").await;
    (harness.exec)(format!(
        "UPDATE drops SET reported_at = '{reported_at}' WHERE integration = '{integration}'"
    ))
    .await;
    match harness.state.recent_drops(5).await {
        Ok(drops) => panic!("an unreadable report time read as {drops:?}"),
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains(&integration) && message.contains(&drop.target),
                "the error names neither integration nor target: {message}"
            );
        }
    }
}

/// An integration status row with `set` applied is refused with an error naming it.
pub async fn corrupt_status_is_an_error(harness: &Harness, set: &str) {
    let integration = common_name("status");
    reported_drop(harness, &integration, "20240105").await;
    harness
        .state
        .record_scan(&ScanRecord {
            integration: integration.clone(),
            at: harness.clock.now(),
            error: None,
            notices: Vec::new(),
        })
        .await
        .expect("record scan");
    (harness.exec)(format!(
        "UPDATE integration_status SET {set} WHERE integration = '{integration}'"
    ))
    .await;
    match harness.state.integrations().await {
        Ok(states) => panic!("corrupt status ({set}) read as {states:?}"),
        Err(e) => assert!(
            e.to_string().contains(&integration),
            "({set}) the error does not name the integration: {e}"
        ),
    }
}

/// A ledger row with `set` applied is refused with an error naming integration and file.
pub async fn corrupt_ledger_entry_is_an_error(harness: &Harness, set: &str) {
    let file = FileRef {
        integration: common_name("ledger"),
        entity: dropfolder::config::Entity::User,
        key: "current/dt=20240106/users.csv.gz".into(),
        version: Version::ETag("\"etag-1\"".into()),
    };
    let ledger: &dyn Ledger = harness.state.as_ref();
    assert_eq!(
        ledger.record(&file, 3).await.expect("record"),
        Committed::Applied
    );
    (harness.exec)(format!(
        "UPDATE state_ledger SET {set} WHERE integration = '{}'",
        file.integration
    ))
    .await;
    match ledger.applied(&file).await {
        Ok(entry) => panic!("corrupt ledger entry ({set}) read as {entry:?}"),
        Err(e) => {
            let message = format!("{e}: {:?}", std::error::Error::source(&e));
            assert!(
                message.contains(&file.integration) && message.contains(&file.key),
                "({set}) the error names neither integration nor file: {message}"
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
