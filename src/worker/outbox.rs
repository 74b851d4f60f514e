//! Who delivers the callback outbox, and when: a bounded set of callback workers of its own,
//! handed an integration once one of its folders is finished (or when it is scanned, for
//! callbacks an earlier run could not deliver). A callback never holds a folder or an
//! integration's slot, so a receiver that never answers delays only its own callbacks: one
//! worker per integration at a time (its callbacks go out in order), at most
//! [`CALLBACK_WORKERS`] integrations' at once.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::FutureExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::callback::Callbacks;
use crate::state::StateStore;
use crate::telemetry::RunFailed;

/// Integrations whose callbacks are delivered at once. Each holds a worker for at most its
/// callback's `timeout_seconds` × attempts per callback due.
pub const CALLBACK_WORKERS: usize = 16;

/// The callback workers of a process.
pub struct Outbox {
    callbacks: Arc<Callbacks>,
    state: Arc<dyn StateStore>,
    workers: Arc<Semaphore>,
    /// Integrations a worker is delivering for (or waiting to); `true`: something was queued
    /// meanwhile, look again before leaving.
    active: Arc<Mutex<HashMap<String, bool>>>,
    tasks: Mutex<JoinSet<()>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Outbox {
    pub fn new(callbacks: Arc<Callbacks>, state: Arc<dyn StateStore>) -> Outbox {
        Outbox {
            callbacks,
            state,
            workers: Arc::new(Semaphore::new(CALLBACK_WORKERS)),
            active: Default::default(),
            tasks: Mutex::new(JoinSet::new()),
        }
    }

    /// Has the due callbacks of `integration` delivered, in the background; returns at once.
    pub fn deliver(&self, integration: &str) {
        {
            let mut active = lock(&self.active);
            if let Some(again) = active.get_mut(integration) {
                *again = true;
                return;
            }
            active.insert(integration.to_string(), false);
        }
        let (callbacks, state, workers, active) = (
            self.callbacks.clone(),
            self.state.clone(),
            self.workers.clone(),
            self.active.clone(),
        );
        let integration = integration.to_string();
        let work = async move {
            let _worker = workers.acquire_owned().await;
            loop {
                let delivered =
                    AssertUnwindSafe(callbacks.deliver_due(state.as_ref(), &integration))
                        .catch_unwind()
                        .await;
                let error = match delivered {
                    Ok(Ok(_)) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(panic) => Some(format!("panicked: {}", super::panic_message(&*panic))),
                };
                if let Some(error) = error {
                    // The callbacks stay queued: the next scan of the integration tries again.
                    RunFailed {
                        integration: &integration,
                        what: "callback",
                        error: &error,
                    }
                    .emit();
                }
                let mut active = lock(&active);
                match active.get_mut(&integration) {
                    Some(again) if *again => *again = false,
                    _ => {
                        active.remove(&integration);
                        return;
                    }
                }
            }
        };
        let mut tasks = lock(&self.tasks);
        while tasks.try_join_next().is_some() {}
        tasks.spawn(work);
    }

    /// Waits until every delivery started so far (and any they started) has ended.
    pub async fn drain(&self) {
        loop {
            let mut tasks = std::mem::take(&mut *lock(&self.tasks));
            if tasks.is_empty() {
                return;
            }
            while tasks.join_next().await.is_some() {}
        }
    }
}
