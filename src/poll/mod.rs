//! The REST API poller (source documents 001/002): an integration whose records sit behind
//! the customer's API is asked for them window by window, and what it answers goes through
//! the integration's validator into the sink, as a bucket's files do.
//!
//! A window is one load: every page of it is fetched (bounded), judged, and applied in one
//! transaction with a ledger entry naming the window ([`Window::key`]), so it is applied
//! whole or not at all, and never twice. The journal of drops remembers the window in hand
//! (begun before the first request, finished after the commit), so a run that dies in the
//! middle of a window asks exactly that window again, and the ledger makes the repeat
//! harmless; the last finished window is where the next one starts.

pub mod page;
pub mod response;
mod run;
pub mod template;
pub mod window;

use std::time::Duration;

use chrono::TimeDelta;

use crate::outbound::AuthSettings;
use page::PagingSettings;
use response::ResponseSettings;

pub use run::{PollError, PollRun, Poller, WindowReport, endpoint, probe, request};
pub use template::TimeFormat;
pub use window::Window;

/// Bytes of one window's pages kept at most before they are applied.
pub const MAX_WINDOW_BYTES: usize = 256 * 1024 * 1024;

/// A poll integration's checked `[integrations.poll]`.
#[derive(Debug, Clone)]
pub struct PollSettings {
    pub endpoint: String,
    pub method: PollMethod,
    /// Values may hold the window placeholders.
    pub headers: Vec<(String, String)>,
    /// Values may hold the window placeholders.
    pub query: Vec<(String, String)>,
    /// Query parameters that carry the window's start and end, when set.
    pub start_attribute: Option<String>,
    pub end_attribute: Option<String>,
    pub time_format: TimeFormat,
    pub window: TimeDelta,
    pub auth: Option<AuthSettings>,
    pub rate_limit_qps: Option<f64>,
    /// Attempts per request, 1..=6.
    pub attempts: u32,
    pub timeout: Duration,
    /// Windows asked at most in one run: a long downtime is caught up over several runs.
    pub max_windows_per_run: usize,
    /// How long one run may work: no window starts after it, and a window still paging
    /// then stops uncommitted.
    pub max_run: Duration,
    pub paging: PagingSettings,
    pub response: ResponseSettings,
}

/// How the API is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollMethod {
    Get,
    /// POST with this JSON payload (it may hold the window placeholders).
    Post {
        payload: Option<String>,
    },
}
