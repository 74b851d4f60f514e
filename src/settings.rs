//! The configuration once checked: only typed, validated values, every default already
//! applied, every preset resolved, every pattern compiled. [`crate::config`] is the only code
//! that builds it (`Config::compile`); everything that runs takes the part it needs, so no
//! module below reads a config string or repeats a default.
//!
//! The parts are the consumers' own types (`schedule::ScheduleSettings`, `validate::FileRules`,
//! `sink::SinkSettings`, `store::StoreSettings`, ...): this module only gathers them.

use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;

use crate::callback::CallbackSettings;
use crate::egress::EgressPolicy;
use crate::events::EventsSettings;
use crate::poll::PollSettings;
use crate::postgres::PostgresSettings;
use crate::schedule::ScheduleSettings;
use crate::secret::SecretRef;
use crate::sink::{Entity, SinkSettings};
use crate::store::StoreSettings;
use crate::validate::FileRules;

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub state: StateSettings,
    /// The sink in effect: the configured one, or the state database.
    pub sink: SinkSettings,
    pub schedule: ScheduleSettings,
    pub server: ServerSettings,
    pub events: Option<EventsSettings>,
    /// Where callbacks, HTTP sinks and token endpoints may connect.
    pub egress: EgressPolicy,
    /// In file order.
    pub integrations: Vec<IntegrationSettings>,
}

impl Settings {
    /// The integration called `name`.
    pub fn integration(&self, name: &str) -> Option<&IntegrationSettings> {
        self.integrations.iter().find(|i| i.name == name)
    }
}

/// The state database: ledger, leases, journal, integration status.
#[derive(Debug, Clone)]
pub struct StateSettings {
    pub database: Database,
    /// How long a replica's claim on a folder lasts without renewal.
    pub lease: Duration,
}

/// A database, located.
#[derive(Debug, Clone)]
pub enum Database {
    /// The file, resolved against the config file's directory.
    Sqlite(PathBuf),
    Postgres(PostgresSettings),
}

/// The `watch` HTTP endpoint.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: std::net::SocketAddr,
    /// The bearer token `/status` and `/metrics` require, when one is configured.
    pub token: Option<SecretRef>,
}

/// One integration, checked.
#[derive(Debug, Clone)]
pub struct IntegrationSettings {
    /// Unique; used in logs, metrics, the ledger and the STS session name.
    pub name: String,
    pub entity: Entity,
    /// Compiled once, shared by every file.
    pub rules: FileRules,
    /// Where its records come from.
    pub source: Source,
    pub callback: Option<CallbackSettings>,
    /// When the integration's access keys expire: Warning within 90 days.
    pub credentials_expire_on: Option<NaiveDate>,
}

impl IntegrationSettings {
    /// The bucket or folder it scans; `None` for an integration whose records are not files
    /// in a bucket (nothing to scan).
    pub fn store(&self) -> Option<&StoreSettings> {
        match &self.source {
            Source::Bucket(store) => Some(store),
            Source::Push(_) | Source::Poll(_) => None,
        }
    }
}

/// Where an integration's records come from: each way in is one variant, so every consumer
/// says what it does with each.
// One per integration, built once: the variants' sizes cost nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Source {
    /// Files the customer drops in a bucket or a local folder (source document 003).
    Bucket(StoreSettings),
    /// Records the customer POSTs to `/stream/v0/data/<name>` (source document 004).
    Push(PushSettings),
    /// Records the poller asks the customer's REST API for, window by window (source
    /// documents 001/002).
    Poll(PollSettings),
}

impl Source {
    /// What `status` and the page call it.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Bucket(_) => "bucket",
            Source::Push(_) => "push",
            Source::Poll(_) => "poll",
        }
    }
}

/// A push integration's endpoint: the token its requests carry, and their size limit.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// Read on each request (so a rotated token takes effect at once), never logged.
    pub token: SecretRef,
    /// Bytes of one request's body; past it, 413.
    pub max_body_bytes: usize,
}
