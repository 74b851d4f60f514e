//! The customer's callback: `POST` to their URL with `x-api-key`, JSON
//! `{"folder_path", "success", "message"}`, sent after the folder is finished. Delivered at
//! least once: the request is queued in the state database in the same transaction that
//! records the folder's result, and every run (or `watch` tick) delivers what is due. A stable
//! `Idempotency-Key` per folder lets the receiver drop repeats. A failed callback never undoes
//! an import; it shows in logs, metrics and the integration's status.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::egress::EgressPolicy;
use crate::outbound::{Auth, Endpoint, EndpointOptions, OutboundError, RetryOn};
use crate::secret::{SecretError, SecretRef};
use crate::state::{CallbackOutcome, CallbackRequest, DropResult, StateError, StateStore};
use crate::telemetry::CallbackAttempted;

/// Between deliveries that failed: the next run or tick after the first failure, then
/// doubling from a minute, at most an hour.
const FIRST_REDELIVERY: Duration = Duration::from_secs(60);
const MAX_REDELIVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("integration '{integration}': callback key: {source}")]
    Secret {
        integration: String,
        source: SecretError,
    },
    #[error("integration '{integration}': callback: {source}")]
    Endpoint {
        integration: String,
        source: OutboundError,
    },
}

/// An integration's callback, as checked.
#[derive(Debug, Clone)]
pub struct CallbackSettings {
    pub url: String,
    /// Sent as the `x-api-key` header.
    pub api_key: SecretRef,
    /// Attempts per delivery.
    pub attempts: u32,
    /// Per attempt.
    pub timeout: Duration,
}

/// The callback endpoints of every integration that has one. `watch` swaps them when its
/// config is reloaded ([`Callbacks::replace`]).
#[derive(Debug, Default)]
pub struct Callbacks {
    /// By integration: the URL and its endpoint.
    targets: RwLock<HashMap<String, Arc<(String, Endpoint)>>>,
}

#[derive(Serialize)]
struct Body<'a> {
    folder_path: &'a str,
    success: bool,
    message: &'a str,
}

impl Callbacks {
    /// Reads each integration's callback key and prepares its endpoint; `integrations` are
    /// (name, callback) pairs.
    pub fn new<'a>(
        integrations: impl IntoIterator<Item = (&'a str, &'a CallbackSettings)>,
        egress: &EgressPolicy,
    ) -> Result<Callbacks, CallbackError> {
        let mut targets = HashMap::new();
        for (name, callback) in integrations {
            let name = name.to_string();
            let key = callback
                .api_key
                .read()
                .map_err(|source| CallbackError::Secret {
                    integration: name.clone(),
                    source,
                })?;
            let endpoint = Auth::api_key(Some("x-api-key"), Some(""), &key)
                .and_then(|auth| {
                    Endpoint::new(EndpointOptions {
                        attempts: callback.attempts,
                        timeout: callback.timeout,
                        rate_limit_qps: None,
                        auth: Some(auth),
                        headers: Vec::new(),
                        retry_on: RetryOn::Standard,
                        egress: egress.clone(),
                    })
                })
                .map_err(|source| CallbackError::Endpoint {
                    integration: name.clone(),
                    source,
                })?;
            targets.insert(name, Arc::new((callback.url.clone(), endpoint)));
        }
        Ok(Callbacks {
            targets: RwLock::new(targets),
        })
    }

    /// Takes the endpoints of `new` (a reloaded config's); the integrations in `removed` (no
    /// longer configured) keep theirs, so the callbacks of their last folders still go out.
    pub fn replace(&self, new: Callbacks, removed: &[String]) {
        let mut targets = new
            .targets
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut current = self
            .targets
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for name in removed {
            if let Some(kept) = current.remove(name) {
                targets.entry(name.clone()).or_insert(kept);
            }
        }
        *current = targets;
    }

    /// The URL and endpoint of `integration`'s callback, if it has one.
    fn target(&self, integration: &str) -> Option<Arc<(String, Endpoint)>> {
        self.targets
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(integration)
            .cloned()
    }

    /// The callback to queue for a finished folder, if the integration has one.
    pub fn request(
        &self,
        integration: &str,
        folder_path: &str,
        target: &str,
        result: &DropResult,
    ) -> Option<CallbackRequest> {
        self.target(integration)?;
        let mut hash = Sha256::new();
        hash.update(integration.as_bytes());
        hash.update([0]);
        hash.update(target.as_bytes());
        let key: String = hash
            .finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        // The first line of status.txt is the `success` flag; the rest is the message.
        let message = result
            .message
            .split_once('\n')
            .map_or("", |(_, rest)| rest)
            .trim_end();
        Some(CallbackRequest {
            integration: integration.to_string(),
            folder_path: folder_path.to_string(),
            success: result.success,
            message: message.to_string(),
            idempotency_key: format!("dropfolder-{key}"),
        })
    }

    /// Delivers every due callback of `integration`; records each outcome.
    pub async fn deliver_due(
        &self,
        state: &dyn StateStore,
        integration: &str,
    ) -> Result<usize, StateError> {
        let due = state.due_callbacks(integration, Utc::now()).await?;
        let delivered = due.len();
        for pending in due {
            let outcome = match self.target(integration) {
                None => CallbackOutcome::Abandoned {
                    error: "the integration has no callback configured any more".into(),
                },
                Some(target) => {
                    let (url, endpoint) = target.as_ref();
                    deliver(url, endpoint, &pending.request, pending.deliveries).await
                }
            };
            CallbackAttempted {
                integration,
                folder_path: &pending.request.folder_path,
                outcome: &outcome,
            }
            .emit();
            state.callback_delivery(pending.id, &outcome).await?;
        }
        Ok(delivered)
    }
}

async fn deliver(
    url: &str,
    endpoint: &Endpoint,
    request: &CallbackRequest,
    deliveries: u32,
) -> CallbackOutcome {
    let body = Body {
        folder_path: &request.folder_path,
        success: request.success,
        message: &request.message,
    };
    let body = match serde_json::to_vec(&body) {
        Ok(body) => Bytes::from(body),
        Err(e) => {
            return CallbackOutcome::Abandoned {
                error: e.to_string(),
            };
        }
    };
    let headers = [("idempotency-key", request.idempotency_key.clone())];
    match endpoint.post(url, body, "application/json", &headers).await {
        Ok(_) => CallbackOutcome::Delivered,
        // Another 4xx or a redirect will not change by asking again: the receiver refuses
        // this request, or wants it sent elsewhere, which dropfolder never does.
        Err(e) if e.is_permanent() => CallbackOutcome::Abandoned {
            error: e.to_string(),
        },
        Err(e) => {
            let wait = match deliveries {
                0 => Duration::ZERO,
                n => FIRST_REDELIVERY
                    .saturating_mul(1 << (n - 1).min(6))
                    .min(MAX_REDELIVERY),
            };
            CallbackOutcome::Failed {
                error: e.to_string(),
                retry_at: Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default(),
            }
        }
    }
}
