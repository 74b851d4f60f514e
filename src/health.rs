//! Each integration's status, as source document 000 defines it, with the reason and since
//! when: Ready (configured, nothing received yet), Active (data processed recently), Warning
//! (no data for `schedule.stale_after`, default 24 h, counted from the last data or, for an
//! integration that never received any, from when the state first saw it; credentials
//! expiring within 90 days; a callback that could not be delivered), Failed (the last scan
//! or folder failed: access denied, the database, ...; or `credentials_expire_on` is past).
//! Computed from the state, so `dropfolder status`, `/status` and `/metrics` always agree.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;

use crate::settings::Settings;
use crate::state::IntegrationState;

/// How far ahead expiring credentials turn an integration to Warning (source 000: 3 months).
const EXPIRY_NOTICE_DAYS: i64 = 90;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    Ready,
    Active,
    Warning,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ready => "Ready",
            Status::Active => "Active",
            Status::Warning => "Warning",
            Status::Failed => "Failed",
        }
    }
}

/// `24h`, `90m`, `45s`: the way `stale_after` is written in the config.
fn span(d: Duration) -> String {
    match d.as_secs() {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// One integration's status and what it is based on.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub integration: String,
    /// How its records arrive: `bucket` (files) or `push` (the push endpoint).
    pub kind: &'static str,
    pub status: Status,
    pub reason: String,
    /// When the fact behind the status happened (the scan, the data), if known.
    pub since: Option<DateTime<Utc>>,
    pub last_scan_at: Option<DateTime<Utc>>,
    pub last_data_at: Option<DateTime<Utc>>,
    pub last_target: Option<String>,
    pub last_result: Option<String>,
    /// The last drop's `status.txt` text, as the customer read it.
    pub last_message: Option<String>,
    /// When the state first saw the integration (counts as configured).
    pub first_seen_at: Option<DateTime<Utc>>,
    pub notices: Vec<String>,
    pub callback_error: Option<String>,
    /// No data for longer than `stale_after` (counted from when it was first seen if none
    /// ever came), whatever the status shows first.
    pub stale: bool,
}

/// The status of an integration given what the state remembers of it and when its
/// credentials expire, at `now`.
pub fn assess(
    credentials_expire_on: Option<NaiveDate>,
    state: &IntegrationState,
    stale_after: Duration,
    now: DateTime<Utc>,
) -> Health {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let today = now.date_naive();
    // Credentials are valid through the day they expire on.
    let expired = credentials_expire_on.filter(|d| *d < today);
    let expiring = credentials_expire_on.filter(|d| (*d - today).num_days() <= EXPIRY_NOTICE_DAYS);
    let stale = chrono::Duration::from_std(stale_after).unwrap_or(chrono::Duration::MAX);
    let no_data_for_long = state
        .last_data_at
        .or(state.first_seen_at)
        .is_some_and(|since| now - since > stale);
    let (status, reason, since) = if let Some(error) = &state.last_error {
        (Status::Failed, error.clone(), state.last_scan_at)
    } else if let Some(date) = expired {
        (
            Status::Failed,
            format!("credentials expired on {date}: rotate them"),
            date.and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc() + chrono::Duration::days(1)),
        )
    } else if let Some(date) = expiring {
        (
            Status::Warning,
            format!("credentials expire on {date}: rotate them"),
            None,
        )
    } else if let Some(error) = &state.callback_error {
        (
            Status::Warning,
            format!("the last callback was not delivered: {error}"),
            state.last_data_at,
        )
    } else {
        match (state.last_data_at, state.first_seen_at) {
            (None, Some(seen)) if now - seen > stale => (
                Status::Warning,
                format!(
                    "no data received since first seen at {} (more than {})",
                    time(seen),
                    span(stale_after)
                ),
                Some(seen),
            ),
            (None, _) => (
                Status::Ready,
                "configured; no data received yet".to_string(),
                state.last_scan_at,
            ),
            (Some(at), _) if now - at > stale => (
                Status::Warning,
                format!(
                    "no data since {} (more than {})",
                    time(at),
                    span(stale_after)
                ),
                Some(at),
            ),
            (Some(at), _) => (
                Status::Active,
                format!("data processed at {}", time(at)),
                Some(at),
            ),
        }
    };
    Health {
        integration: state.integration.clone(),
        kind: "bucket",
        status,
        reason,
        since,
        last_scan_at: state.last_scan_at,
        last_data_at: state.last_data_at,
        last_target: state.last_target.clone(),
        last_result: state
            .last_success
            .map(|ok| if ok { "SUCCESS" } else { "ERROR" }.to_string()),
        last_message: state.last_message.clone(),
        first_seen_at: state.first_seen_at,
        notices: state.notices.clone(),
        callback_error: state.callback_error.clone(),
        stale: no_data_for_long,
    }
}

/// Every configured integration's status, in config order.
pub async fn statuses(
    settings: &Settings,
    state: &dyn crate::state::StateStore,
) -> Result<Vec<Health>, crate::state::StateError> {
    let known = state.integrations().await?;
    let now = Utc::now();
    Ok(settings
        .integrations
        .iter()
        .map(|integration| {
            let remembered = known
                .iter()
                .find(|s| s.integration == integration.name)
                .cloned()
                .unwrap_or_else(|| IntegrationState {
                    integration: integration.name.clone(),
                    ..IntegrationState::default()
                });
            let mut health = assess(
                integration.credentials_expire_on,
                &remembered,
                settings.schedule.stale_after,
                now,
            );
            health.kind = integration.source.kind();
            health
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integration(expire: Option<&str>) -> Option<NaiveDate> {
        expire.map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").expect("date"))
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .expect("time")
    }

    #[test]
    fn the_four_statuses() {
        let now = at("2026-11-23T12:00:00Z");
        let day = Duration::from_secs(86_400);
        let mut state = IntegrationState::default();
        assert_eq!(
            assess(integration(None), &state, day, now).status,
            Status::Ready
        );
        state.last_data_at = Some(at("2026-11-23T11:00:00Z"));
        assert_eq!(
            assess(integration(None), &state, day, now).status,
            Status::Active
        );
        state.last_data_at = Some(at("2026-11-21T11:00:00Z"));
        let stale = assess(integration(None), &state, day, now);
        assert_eq!(stale.status, Status::Warning);
        assert_eq!(
            stale.reason,
            "no data since 2026-11-21T11:00:00Z (more than 24h)"
        );
        state.last_data_at = Some(at("2026-11-23T11:00:00Z"));
        state.callback_error = Some("HTTP 503".into());
        let undelivered = assess(integration(None), &state, day, now);
        assert_eq!(
            (undelivered.status, undelivered.reason.as_str()),
            (
                Status::Warning,
                "the last callback was not delivered: HTTP 503"
            )
        );
        state.last_error = Some("cannot get credentials (AccessDenied)".into());
        let failed = assess(integration(None), &state, day, now);
        assert_eq!(
            (failed.status, failed.reason.as_str()),
            (Status::Failed, "cannot get credentials (AccessDenied)")
        );
    }

    #[test]
    fn expired_credentials_are_failed() {
        let now = at("2026-11-23T12:00:00Z");
        let state = IntegrationState {
            last_data_at: Some(now),
            ..IntegrationState::default()
        };
        let day = Duration::from_secs(86_400);
        let expired = assess(integration(Some("2026-11-22")), &state, day, now);
        assert_eq!(
            (expired.status, expired.reason.as_str()),
            (
                Status::Failed,
                "credentials expired on 2026-11-22: rotate them"
            )
        );
        assert_eq!(expired.since, Some(at("2026-11-23T00:00:00Z")));
        // Valid through the day they expire on.
        assert_eq!(
            assess(integration(Some("2026-11-23")), &state, day, now).status,
            Status::Warning
        );
    }

    #[test]
    fn never_received_data_is_stale_after_stale_after_since_first_seen() {
        let now = at("2026-11-23T12:00:00Z");
        let day = Duration::from_secs(86_400);
        let mut state = IntegrationState {
            first_seen_at: Some(at("2026-11-22T13:00:00Z")),
            ..IntegrationState::default()
        };
        assert_eq!(
            assess(integration(None), &state, day, now).status,
            Status::Ready
        );
        state.first_seen_at = Some(at("2026-11-22T11:00:00Z"));
        let stale = assess(integration(None), &state, day, now);
        assert_eq!(
            (stale.status, stale.reason.as_str()),
            (
                Status::Warning,
                "no data received since first seen at 2026-11-22T11:00:00Z (more than 24h)"
            )
        );
        assert_eq!(stale.since, state.first_seen_at);
        assert!(stale.stale);
    }

    #[test]
    fn credentials_expiring_within_three_months_warn() {
        let now = at("2026-11-23T12:00:00Z");
        let state = IntegrationState {
            last_data_at: Some(now),
            ..IntegrationState::default()
        };
        let day = Duration::from_secs(86_400);
        assert_eq!(
            assess(integration(Some("2027-01-15")), &state, day, now).status,
            Status::Warning
        );
        assert_eq!(
            assess(integration(Some("2027-12-31")), &state, day, now).status,
            Status::Active
        );
    }
}
