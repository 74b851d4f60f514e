//! Pushed requests, queued per integration and applied many to a sink transaction: a batch
//! opens with the first request waiting and takes what comes within `batch_wait` (up to
//! `batch_records`), then commits every record with each request's idempotency entry in one
//! load. Each request is answered only once its batch committed (or failed). One task per
//! integration, started by its first request, so integrations never wait for each other's
//! sink writes in this queue; a task that ended (a panic) is started again by the next request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::PushLimits;
use crate::ledger::{Committed, Entity, FileRef, Version};
use crate::load_records::{content_version, load_records_also};
use crate::settings::IntegrationSettings;
use crate::sink::{AnySink, Sink};
use crate::state::{ScanRecord, StateStore};
use crate::validate::ValidRecords;

/// How a request's records were applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// By this request's batch.
    Now,
    /// Before: the ledger had the request's idempotency key with this body (with its record
    /// count).
    Before { records: u64 },
    /// Not at all: the key was used before with another body.
    KeyUsedForAnotherBody,
}

/// `Err(())`: the sink failed and nothing was applied (the cause is logged, not told).
pub(super) type Outcome = Result<Applied, ()>;

/// A validated request waiting for its batch.
pub(super) struct Pending {
    pub key: Option<String>,
    /// The SHA-256 of the request's body, hex: a replay must match it.
    pub body_digest: String,
    pub records: ValidRecords,
    pub reply: oneshot::Sender<Outcome>,
    /// Its place in the process's queue, given back when the request is dropped.
    pub _slot: Slot,
}

/// What a queue holds: requests, and the bytes of their bodies (from the moment a body
/// starts to arrive).
#[derive(Debug, Default)]
pub(super) struct Queued {
    pub requests: AtomicUsize,
    pub bytes: AtomicUsize,
}

impl Queued {
    /// Adds `amount` to `counter` if it stays within `limit`.
    fn add(counter: &AtomicUsize, amount: usize, limit: usize) -> bool {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n + amount <= limit).then_some(n + amount)
            })
            .is_ok()
    }
}

/// Why a request found no place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Full {
    Process,
    Integration,
}

/// One request's place in the process's queue and in its integration's share of its bytes,
/// taken before its body is read and given back when the request is answered.
pub(super) struct Slot {
    process: Arc<Queued>,
    integration: Arc<Queued>,
    bytes: usize,
}

impl Slot {
    /// A place for a request of up to `bytes`, if the process stays within `limits` and the
    /// integration within its share (at least `max_body_bytes`, so that its largest body fits).
    pub fn take(
        process: &Arc<Queued>,
        integration: &Arc<Queued>,
        limits: &PushLimits,
        max_body_bytes: usize,
        bytes: usize,
    ) -> Result<Slot, Full> {
        let share = limits.queued_bytes_per_integration.max(max_body_bytes);
        if !Queued::add(&integration.bytes, bytes, share) {
            return Err(Full::Integration);
        }
        if !Queued::add(&process.requests, 1, limits.queued_requests) {
            integration.bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(Full::Process);
        }
        if !Queued::add(&process.bytes, bytes, limits.queued_bytes) {
            integration.bytes.fetch_sub(bytes, Ordering::AcqRel);
            process.requests.fetch_sub(1, Ordering::AcqRel);
            return Err(Full::Process);
        }
        Ok(Slot {
            process: process.clone(),
            integration: integration.clone(),
            bytes,
        })
    }

    /// Gives back what the body did not use (a chunked body reserved the most it could be).
    pub fn shrink_to(&mut self, bytes: usize) {
        let unused = self.bytes.saturating_sub(bytes);
        self.process.bytes.fetch_sub(unused, Ordering::AcqRel);
        self.integration.bytes.fetch_sub(unused, Ordering::AcqRel);
        self.bytes -= unused;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.process.requests.fetch_sub(1, Ordering::AcqRel);
        self.process.bytes.fetch_sub(self.bytes, Ordering::AcqRel);
        self.integration
            .bytes
            .fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// What a batch task works with.
#[derive(Clone)]
pub(super) struct Context {
    pub sink: AnySink,
    pub state: Arc<dyn StateStore>,
    pub limits: PushLimits,
    pub stop: CancellationToken,
}

/// The integration a task applies for.
#[derive(Debug, Clone)]
struct Target {
    integration: String,
    entity: Entity,
}

/// Each integration's queue, by name.
#[derive(Default)]
pub(super) struct Queues(Mutex<HashMap<String, mpsc::Sender<Pending>>>);

impl Queues {
    /// Queues `pending` for `integration`, starting its task if it has none running; the
    /// request back when the integration's queue is full.
    pub fn send(
        &self,
        integration: &IntegrationSettings,
        pending: Pending,
        context: Context,
    ) -> Result<(), Box<Pending>> {
        // A panic elsewhere while holding the lock left the map whole: keep using it.
        let mut queues = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let running = queues
            .get(&integration.name)
            .is_some_and(|tx| !tx.is_closed());
        if !running {
            let (tx, rx) = mpsc::channel(context.limits.queued_per_integration.max(1));
            let target = Target {
                integration: integration.name.clone(),
                entity: integration.entity,
            };
            tokio::spawn(run(target, rx, context));
            queues.insert(integration.name.clone(), tx);
        }
        match queues.get(&integration.name) {
            Some(tx) => tx.try_send(pending).map_err(|e| Box::new(e.into_inner())),
            None => Err(Box::new(pending)),
        }
    }
}

/// One integration's task: a batch at a time, until the queue is dropped.
async fn run(target: Target, mut queue: mpsc::Receiver<Pending>, context: Context) {
    while let Some(first) = queue.recv().await {
        let mut records = first.records.len();
        let mut batch = vec![first];
        let closes = tokio::time::Instant::now() + context.limits.batch_wait;
        // Stopping: what is queued is applied at once, without waiting for more.
        while records < context.limits.batch_records && !context.stop.is_cancelled() {
            match tokio::time::timeout_at(closes, queue.recv()).await {
                Ok(Some(pending)) => {
                    records += pending.records.len();
                    batch.push(pending);
                }
                Ok(None) | Err(_) => break,
            }
        }
        apply(&target, batch, &context).await;
    }
}

/// The ledger entry of an idempotency key with the body it was used with.
fn key_entry(target: &Target, key: &str, body_digest: &str) -> FileRef {
    FileRef {
        integration: target.integration.clone(),
        entity: target.entity,
        key: format!("push/key/{key}"),
        version: Version::ETag(format!("sha256:{body_digest}")),
    }
}

/// The ledger entry that a key was used, whatever the body.
fn used_entry(target: &Target, key: &str) -> FileRef {
    FileRef {
        integration: target.integration.clone(),
        entity: target.entity,
        key: format!("push/used/{key}"),
        version: Version::ETag("idempotency-key".into()),
    }
}

/// The entry of a key used before bodies were compared (its body is not known).
fn unchecked_entry(target: &Target, key: &str) -> FileRef {
    FileRef {
        integration: target.integration.clone(),
        entity: target.entity,
        key: format!("push/key/{key}"),
        version: Version::ETag("idempotency-key".into()),
    }
}

/// What the ledger says of a keyed request: applied before with this body, used with
/// another, or (`None`) new.
async fn prior(
    sink: &AnySink,
    target: &Target,
    key: &str,
    body_digest: &str,
) -> Result<Option<Applied>, crate::sink::SinkError> {
    if let Some(prior) = sink.applied(&key_entry(target, key, body_digest)).await? {
        return Ok(Some(Applied::Before {
            records: prior.rows,
        }));
    }
    if sink.applied(&used_entry(target, key)).await?.is_some() {
        return Ok(Some(Applied::KeyUsedForAnotherBody));
    }
    Ok(sink
        .applied(&unchecked_entry(target, key))
        .await?
        .map(|prior| Applied::Before {
            records: prior.rows,
        }))
}

/// Applies one batch and answers each of its requests.
async fn apply(target: &Target, batch: Vec<Pending>, context: &Context) {
    // A key twice in one batch (a client retrying while the first is queued): the first
    // request is applied, the others answered as its replays.
    let mut leaders: Vec<Pending> = Vec::with_capacity(batch.len());
    let mut repeats: Vec<(usize, Pending)> = Vec::new();
    let mut first_with: HashMap<String, usize> = HashMap::new();
    for pending in batch {
        if let Some(key) = &pending.key {
            if let Some(&leader) = first_with.get(key) {
                repeats.push((leader, pending));
                continue;
            }
            first_with.insert(key.clone(), leaders.len());
        }
        leaders.push(pending);
    }
    let mut outcomes: Vec<Option<Outcome>> = vec![None; leaders.len()];
    for (i, pending) in leaders.iter().enumerate() {
        let Some(key) = &pending.key else { continue };
        match prior(&context.sink, target, key, &pending.body_digest).await {
            Ok(Some(applied)) => outcomes[i] = Some(Ok(applied)),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(integration = %target.integration, error = %e, "push: cannot read the ledger");
                outcomes[i] = Some(Err(()));
            }
        }
    }
    let fresh: Vec<usize> = (0..leaders.len())
        .filter(|&i| outcomes[i].is_none())
        .collect();
    if !fresh.is_empty() {
        let batches: Vec<&ValidRecords> = fresh.iter().map(|&i| &leaders[i].records).collect();
        let also: Vec<(FileRef, u64)> = fresh
            .iter()
            .filter_map(|&i| {
                let pending = &leaders[i];
                let key = pending.key.as_ref()?;
                let rows = pending.records.len() as u64;
                Some([
                    (key_entry(target, key, &pending.body_digest), rows),
                    (used_entry(target, key), rows),
                ])
            })
            .flatten()
            .collect();
        let now = Utc::now();
        let file = FileRef {
            integration: target.integration.clone(),
            entity: target.entity,
            key: format!(
                "push/batch/{}-{:016x}",
                now.format("%Y%m%dT%H%M%S%.6fZ"),
                fastrand::u64(..)
            ),
            version: content_version(&batches),
        };
        let records: u64 = batches.iter().map(|b| b.len() as u64).sum();
        let outcome = match load_records_also(&context.sink, &file, also, &batches, now).await {
            // A fresh batch name is never in the ledger; were it, its records are there.
            Ok(Committed::Applied | Committed::AlreadyApplied(_)) => {
                tracing::info!(
                    integration = %target.integration,
                    batch = %file.key,
                    requests = fresh.len(),
                    records,
                    "push batch applied"
                );
                record(context, target, None).await;
                Ok(Applied::Now)
            }
            Err(e) => {
                tracing::error!(integration = %target.integration, batch = %file.key, error = %e, "push batch not applied");
                record(context, target, Some(format!("push: the sink failed: {e}"))).await;
                Err(())
            }
        };
        for &i in &fresh {
            outcomes[i] = Some(outcome);
        }
    }
    let counts: Vec<u64> = leaders.iter().map(|p| p.records.len() as u64).collect();
    let digests: Vec<String> = leaders.iter().map(|p| p.body_digest.clone()).collect();
    for (i, pending) in leaders.into_iter().enumerate() {
        let _ = pending.reply.send(outcomes[i].unwrap_or(Err(())));
    }
    for (leader, pending) in repeats {
        if pending.body_digest != digests[leader] {
            let _ = pending.reply.send(Ok(Applied::KeyUsedForAnotherBody));
            continue;
        }
        let outcome = match outcomes[leader] {
            Some(Ok(Applied::Now)) => Ok(Applied::Before {
                records: counts[leader],
            }),
            Some(other) => other,
            None => Err(()),
        };
        let _ = pending.reply.send(outcome);
    }
}

/// Tells the state how the batch went: its status (Active, or Failed with the reason).
async fn record(context: &Context, target: &Target, error: Option<String>) {
    let at = Utc::now();
    let written = match &error {
        None => context.state.record_push(&target.integration, at).await,
        Some(_) => {
            context
                .state
                .record_scan(&ScanRecord {
                    integration: target.integration.clone(),
                    at,
                    error,
                    notices: Vec::new(),
                })
                .await
        }
    };
    if let Err(e) = written {
        tracing::warn!(integration = %target.integration, error = %e, "push: cannot record the status");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queues_are_bounded_by_requests_by_bytes_and_by_each_integrations_share() {
        let process = Arc::new(Queued::default());
        let (acme, other) = (Arc::new(Queued::default()), Arc::new(Queued::default()));
        let limits = PushLimits {
            queued_requests: 3,
            queued_bytes: 100,
            queued_bytes_per_integration: 50,
            ..PushLimits::default()
        };
        let take = |integration: &Arc<Queued>, bytes| {
            Slot::take(&process, integration, &limits, 10, bytes)
        };
        let first = take(&acme, 40);
        assert!(first.is_ok());
        assert_eq!(take(&acme, 20).err(), Some(Full::Integration));
        assert_eq!(acme.bytes.load(Ordering::Acquire), 40, "given back");
        let mut second = take(&other, 50).expect("the other integration's share");
        assert_eq!(take(&other, 20).err(), Some(Full::Integration));
        second.shrink_to(5);
        assert_eq!(process.bytes.load(Ordering::Acquire), 45);
        assert_eq!(other.bytes.load(Ordering::Acquire), 5);
        let third = take(&other, 45).expect("room again");
        assert_eq!(
            take(&other, 0).err(),
            Some(Full::Process),
            "over the requests"
        );
        assert_eq!(other.bytes.load(Ordering::Acquire), 50, "given back");
        drop(first);
        drop(third);
        assert_eq!(process.bytes.load(Ordering::Acquire), 5);
        assert_eq!(process.requests.load(Ordering::Acquire), 1);
        let big = PushLimits {
            queued_bytes: 1000,
            ..limits
        };
        assert!(
            Slot::take(&process, &acme, &big, 200, 200).is_ok(),
            "the share is at least the integration's largest body"
        );
        drop(second);
    }
}
