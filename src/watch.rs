//! `watch`: scans every integration at start and on the schedule, and one integration at
//! once when an S3 event says a folder of it is ready. Each integration runs on its own, up
//! to `schedule.concurrency` at a time, so a slow or failing one never holds up the others;
//! one still running when its next tick or event comes is run again right after, not twice
//! at once. On stop nothing new starts, and what runs finishes the folder in hand within the
//! grace period.
//!
//! The config is reloaded on SIGHUP and when the content of its file(s) changes ([`Reload`]):
//! a new config is checked whole and refused whole (logged, counted, the one in force kept);
//! once applied, added integrations are scanned at once, removed ones finish the folder in
//! hand and get no more work, changed ones take the new settings at their next folder
//! ([`Worker::apply`]), and S3 events are routed to the new set.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::events::{Message, Queue};
use crate::reload::{ConfigFiles, fixed_changes};
use crate::settings::Settings;
use crate::shutdown::Hangups;
use crate::telemetry::{ConfigLoaded, ConfigRefused};
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
    /// A reload changed the integration while it ran: run it again with the new settings.
    superseded: bool,
}

/// Loads and checks the config at the path `watch` was started with: the settings, or every
/// problem as `dropfolder check` prints them. Blocking (file and secret reads).
pub type LoadConfig = Arc<dyn Fn() -> Result<Settings, Vec<String>> + Send + Sync>;

/// How `watch` reloads its config.
pub struct Reload {
    pub files: ConfigFiles,
    pub load: LoadConfig,
    /// The content hash of the config last seen (at start: taken before it was loaded, so a
    /// change made while it loaded is seen), or why it could not be read: a refused config,
    /// or one that cannot be read, is reported once, not at every check.
    pub hash: String,
    /// A new content seen by the last check, loaded only if the next check sees it again: a
    /// file caught half-written (an editor writing in place) is not loaded, its final
    /// content is. SIGHUP loads at once.
    pub pending: Option<String>,
    /// How often the content of the files is compared with the config in force.
    pub check_every: Duration,
    /// SIGHUP reloads at once, even when the content looks the same.
    pub hangups: Option<Hangups>,
}

/// How often the content of the config files is compared with the config in force: a
/// ConfigMap update reaches the pod's volume within a minute or so anyway.
pub const CHECK_CONFIG_EVERY: Duration = Duration::from_secs(5);

/// Runs until `worker.stop_token()` is cancelled; `false` if the grace period ran out.
pub async fn watch(worker: Arc<Worker>, queue: Option<Queue>, reload: Option<Reload>) -> bool {
    let stop = worker.stop_token();
    let (mut reload, mut hangups) = match reload {
        Some(mut reload) => {
            let hangups = reload.hangups.take();
            (Some(reload), hangups)
        }
        None => (None, None),
    };
    let mut check_config = tokio::time::interval(
        reload
            .as_ref()
            .map_or(Duration::from_secs(3600), |r| r.check_every),
    );
    check_config.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is at once: the config was just loaded.
    check_config.tick().await;
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
        route(&queue, &worker.current());
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
            () = async { if let Some(h) = hangups.as_mut() { h.recv().await } else { std::future::pending().await } } => {
                if let Some(reload) = reload.as_mut() {
                    tracing::info!("SIGHUP: reloading the config");
                    if let Some(rescheduled) = watcher.reload(reload, true).await {
                        next_tick = rescheduled;
                    }
                }
            }
            _ = check_config.tick(), if reload.is_some() => {
                if let Some(reload) = reload.as_mut()
                    && let Some(rescheduled) = watcher.reload(reload, false).await
                {
                    next_tick = rescheduled;
                }
            }
            () = tokio::time::sleep_until(next_tick) => {
                let settings = worker.current();
                tracing::info!(integrations = settings.integrations.len(), "scheduled scan");
                for integration in &settings.integrations {
                    watcher.start(&integration.name, Vec::new());
                }
                next_tick = next_scan(&settings);
            }
        }
    }
    // Stopping: what runs finishes the folder in hand (the worker checks the token).
    let grace = worker.current().schedule.grace_period;
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

/// When the next scheduled scan is due, on the schedule of `settings`.
fn next_scan(settings: &Settings) -> tokio::time::Instant {
    let now = Utc::now();
    let wait = (settings.schedule.schedule.next_after(now) - now)
        .to_std()
        .unwrap_or(Duration::from_secs(1));
    tokio::time::Instant::now() + wait
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
                    superseded: false,
                };
            };
            let keep_hidden = match (&queue, receipts.is_empty()) {
                (Some(queue), false) => {
                    Some(tokio::spawn(keep_hidden(queue.clone(), receipts.clone())))
                }
                _ => None,
            };
            // The settings in force when the run starts; a reload meanwhile reaches its next
            // folder (the worker compares).
            let settings = worker.current();
            let report = match settings.integration(&name) {
                Some(integration) => Some(worker.run_integration(integration).await),
                None => None,
            };
            if let Some(task) = keep_hidden {
                task.abort();
            }
            let superseded = report.as_ref().is_some_and(|r| r.superseded);
            // An integration no longer configured has nothing left to do for its messages.
            let done = report.is_none_or(|r| {
                r.error.is_none() && !r.stopped && r.skipped.is_none() && !r.superseded
            });
            Finished {
                integration: name,
                receipts,
                done,
                superseded,
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
                    superseded: false,
                });
            }
        }
    }

    fn finished(&mut self, finished: Finished) {
        self.running.remove(&finished.integration);
        if finished.superseded {
            // Again at once, with the settings in force and the same messages (still held).
            self.start(&finished.integration, finished.receipts);
            return;
        }
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

impl Watcher {
    /// Reloads the config if `forced` (SIGHUP) or its content changed: refused whole, or put
    /// in force and the added integrations started. The time of the next scheduled scan when
    /// the schedule changed.
    async fn reload(&mut self, reload: &mut Reload, forced: bool) -> Option<tokio::time::Instant> {
        let files = reload.files.clone();
        let hash = match tokio::task::spawn_blocking(move || files.fingerprint()).await {
            Ok(Ok(hash)) => hash,
            Ok(Err(e)) => {
                // Reported once per content seen, like a refused config: not every few seconds.
                let problem = e.to_string();
                if forced || reload.hash != problem {
                    reload.hash = problem.clone();
                    ConfigRefused {
                        hash: None,
                        problems: &[problem],
                    }
                    .emit();
                }
                return None;
            }
            Err(e) => {
                tracing::error!(error = %e, "the config check failed");
                return None;
            }
        };
        if !forced && !crate::reload::settled(&mut reload.pending, &reload.hash, &hash) {
            return None;
        }
        reload.pending = None;
        // Seen: a refused config is tried again when it changes, or on SIGHUP.
        reload.hash = hash.clone();
        let load = reload.load.clone();
        let loaded = match tokio::task::spawn_blocking(move || load()).await {
            Ok(loaded) => loaded,
            Err(e) => Err(vec![format!("loading the config failed: {e}")]),
        };
        let refuse = |problems: &[String]| {
            ConfigRefused {
                hash: Some(&hash),
                problems,
            }
            .emit();
        };
        let new = match loaded {
            Ok(new) => new,
            Err(problems) => {
                refuse(&problems);
                return None;
            }
        };
        let old = self.worker.current();
        let fixed: Vec<String> = fixed_changes(&old, &new)
            .into_iter()
            .map(|part| {
                format!("{part} cannot change while watch runs: restart watch to change it")
            })
            .collect();
        if !fixed.is_empty() {
            refuse(&fixed);
            return None;
        }
        let integrations = new.integrations.len();
        let schedule_changed =
            format!("{:?}", old.schedule.schedule) != format!("{:?}", new.schedule.schedule);
        let changes = match self.worker.apply(new) {
            Ok(changes) => changes,
            Err(e) => {
                refuse(&[e.to_string()]);
                return None;
            }
        };
        if let Some(queue) = &self.queue {
            // The clone the receiver polls with shares the routing.
            route(queue, &self.worker.current());
        }
        ConfigLoaded {
            hash: &hash,
            integrations,
            changes: Some([&changes.added, &changes.removed, &changes.changed]),
        }
        .emit();
        for name in &changes.added {
            self.start(name, Vec::new());
        }
        schedule_changed.then(|| next_scan(&self.worker.current()))
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

/// Routes `queue`'s messages to the S3 integrations of `settings`.
fn route(queue: &Queue, settings: &Settings) {
    queue.route_to(crate::events::targets(
        settings
            .integrations
            .iter()
            .filter_map(|i| Some((i.name.as_str(), &i.store()?.location))),
    ));
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
