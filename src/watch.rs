//! `watch`: scans every integration at start and on the schedule, and one integration at
//! once when an S3 event says a folder of it is ready. Each integration runs on its own, up
//! to `schedule.concurrency` at a time, so a slow or failing one never holds up the others;
//! one still running when its next tick or event comes is run again right after, not twice
//! at once. On stop nothing new starts, and what runs finishes the folder in hand within the
//! grace period.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::events::{Message, Queue};
use crate::schedule::Schedule;
use crate::worker::Worker;

/// How often the scan records of integrations that had nothing to do are written, in one
/// write: `/status` and `dropfolder status` see a scan at most this late.
const RECORD_SCANS_EVERY: Duration = Duration::from_secs(2);

/// What an integration run left to do with the messages that triggered it.
struct Finished {
    integration: String,
    receipts: Vec<String>,
    /// The run finished its folders (not failed, stopped or skipped for another replica).
    done: bool,
}

/// Runs until `worker.stop_token()` is cancelled; `false` if the grace period ran out.
pub async fn watch(
    worker: Arc<Worker>,
    schedule: Schedule,
    queue: Option<Queue>,
    grace: Duration,
) -> bool {
    let stop = worker.stop_token();
    let mut watcher = Watcher {
        worker: worker.clone(),
        queue: queue.clone(),
        permits: Arc::new(Semaphore::new(worker.settings.schedule.concurrency)),
        running: HashSet::new(),
        again: HashMap::new(),
        holders: HashMap::new(),
        task_names: HashMap::new(),
        tasks: JoinSet::new(),
        deletes: JoinSet::new(),
    };
    let (event_tx, mut events) = mpsc::channel::<Message>(64);
    if let Some(queue) = queue {
        tokio::spawn(receive(queue, event_tx, stop.clone()));
    }
    let recorder = tokio::spawn(record_scans(worker.clone(), stop.clone()));
    let mut next_tick = tokio::time::Instant::now();
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            Some(joined) = watcher.tasks.join_next_with_id() => watcher.joined(joined),
            Some(_) = watcher.deletes.join_next() => {}
            Some(message) = events.recv() => {
                for integration in &message.integrations {
                    watcher.start(integration, vec![message.receipt.clone()]);
                }
                *watcher.holders.entry(message.receipt.clone()).or_default() += message.integrations.len();
            }
            () = tokio::time::sleep_until(next_tick) => {
                let names: Vec<String> = worker.settings.integrations.iter().map(|i| i.name.clone()).collect();
                tracing::info!(integrations = names.len(), "scheduled scan");
                for name in &names {
                    watcher.start(name, Vec::new());
                }
                let now = Utc::now();
                let wait = (schedule.next_after(now) - now).to_std().unwrap_or(Duration::from_secs(1));
                next_tick = tokio::time::Instant::now() + wait;
            }
        }
    }
    // Stopping: what runs finishes the folder in hand (the worker checks the token).
    let drained = tokio::time::timeout(grace, async {
        while let Some(joined) = watcher.tasks.join_next_with_id().await {
            watcher.joined(joined);
        }
        while watcher.deletes.join_next().await.is_some() {}
        // Callbacks of the folders just finished, each within its own timeout and retries.
        worker.outbox.drain().await;
        let _ = recorder.await;
        // Failures are reported by the worker; the records of this process end with it.
        let _ = worker.record_scans().await;
    })
    .await;
    drained.is_ok()
}

struct Watcher {
    worker: Arc<Worker>,
    queue: Option<Queue>,
    permits: Arc<Semaphore>,
    running: HashSet<String>,
    /// Integrations to run again when their current run ends, with the receipts waiting.
    again: HashMap<String, Vec<String>>,
    /// Integrations a message still waits for, by receipt: deleted at zero.
    holders: HashMap<String, usize>,
    tasks: JoinSet<Finished>,
    /// Which integration each task runs, to report one that died without a result.
    task_names: HashMap<tokio::task::Id, (String, Vec<String>)>,
    /// Deletions of handled messages, awaited before exit.
    deletes: JoinSet<()>,
}

impl Watcher {
    fn start(&mut self, integration: &str, receipts: Vec<String>) {
        if self.running.contains(integration) {
            self.again
                .entry(integration.to_string())
                .or_default()
                .extend(receipts);
            return;
        }
        self.running.insert(integration.to_string());
        let (worker, permits, queue) = (
            self.worker.clone(),
            self.permits.clone(),
            self.queue.clone(),
        );
        let name = integration.to_string();
        let names = (name.clone(), receipts.clone());
        let task = self.tasks.spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return Finished {
                    integration: name,
                    receipts,
                    done: false,
                };
            };
            let keep_hidden = match (&queue, receipts.is_empty()) {
                (Some(queue), false) => {
                    Some(tokio::spawn(keep_hidden(queue.clone(), receipts.clone())))
                }
                _ => None,
            };
            let report = match worker.settings.integration(&name) {
                Some(integration) => Some(worker.run_integration(integration).await),
                None => None,
            };
            if let Some(task) = keep_hidden {
                task.abort();
            }
            let done =
                report.is_some_and(|r| r.error.is_none() && !r.stopped && r.skipped.is_none());
            Finished {
                integration: name,
                receipts,
                done,
            }
        });
        self.task_names.insert(task.id(), names);
    }

    /// A task ended: with its result, or without one (it panicked outside the integration's
    /// own work, which catches its panics). Either way the integration is no longer running,
    /// so the next tick or event starts it again.
    fn joined(&mut self, joined: Result<(tokio::task::Id, Finished), tokio::task::JoinError>) {
        match joined {
            Ok((id, finished)) => {
                self.task_names.remove(&id);
                self.finished(finished);
            }
            Err(e) => {
                let Some((integration, receipts)) = self.task_names.remove(&e.id()) else {
                    tracing::error!(error = %e, "an integration task failed");
                    return;
                };
                let error = e.to_string();
                crate::telemetry::RunFailed {
                    integration: &integration,
                    what: "panic",
                    error: &error,
                }
                .emit();
                self.finished(Finished {
                    integration,
                    receipts,
                    done: false,
                });
            }
        }
    }

    fn finished(&mut self, finished: Finished) {
        self.running.remove(&finished.integration);
        for receipt in finished.receipts {
            let Some(waiting) = self.holders.get_mut(&receipt) else {
                continue;
            };
            if !finished.done {
                // Not deleted: the message comes back after its visibility timeout.
                self.holders.remove(&receipt);
                continue;
            }
            *waiting = waiting.saturating_sub(1);
            if *waiting == 0 {
                self.holders.remove(&receipt);
                if let Some(queue) = self.queue.clone() {
                    self.deletes.spawn(async move {
                        if let Err(e) = queue.delete(&receipt).await {
                            tracing::warn!(error = %e, "cannot delete a handled event; it will come back and find nothing to do");
                        }
                    });
                }
            }
        }
        if let Some(receipts) = self.again.remove(&finished.integration) {
            self.start(&finished.integration, receipts);
        }
    }
}

/// Writes the kept scan records every [`RECORD_SCANS_EVERY`] until stopped.
async fn record_scans(worker: Arc<Worker>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RECORD_SCANS_EVERY) => {
                // Failures are reported by the worker, and the records kept for the next try.
                let _ = worker.record_scans().await;
            }
        }
    }
}

/// Long-polls the queue until stopped, handing triggering messages over.
async fn receive(queue: Queue, triggers: mpsc::Sender<Message>, stop: CancellationToken) {
    loop {
        let received = tokio::select! {
            () = stop.cancelled() => return,
            received = queue.receive() => received,
        };
        match received {
            Ok(messages) => {
                for message in messages {
                    if triggers.send(message).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot receive events; the schedule still scans");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        }
    }
}

/// Extends the messages' visibility while their integration runs: at once (the time since
/// they were received, waiting for a permit, counts against the timeout), then at a third of
/// the timeout, so that one late tick on a busy runtime still leaves them hidden.
async fn keep_hidden(queue: Queue, receipts: Vec<String>) {
    let every =
        Duration::from_millis(u64::from(queue.visibility_seconds.max(2).unsigned_abs()) * 1000 / 3);
    loop {
        for receipt in &receipts {
            if let Err(e) = queue.extend(receipt).await {
                tracing::warn!(error = %e, "cannot extend an event's visibility");
            }
        }
        tokio::time::sleep(every).await;
    }
}
