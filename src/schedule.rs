//! When `watch` scans: a fixed interval, or a 5-field cron expression in a time zone (as the
//! courier groups of source document 004 are scheduled). Across DST the wall clock rules:
//! `30 8 * * *` is 08:30 local in winter and summer, and a time that does not exist on the
//! night clocks spring forward (02:30 in Europe/Berlin) runs right after the jump, as Vixie
//! cron does, rather than being skipped; a time that happens twice the night clocks fall back
//! runs once, at the first.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    Every(Duration),
    Cron { cron: Box<Cron>, zone: Tz },
}

/// Parses a POSIX 5-field cron expression (minute hour day-of-month month day-of-week).
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|e| format!("'{expression}' is not a 5-field cron expression: {e}"))
}

/// The checked `[schedule]` section: when `watch` scans, how much at once, and the spans
/// the rest of the service measures against.
#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    pub schedule: Schedule,
    /// Integrations worked on at once; at least 1.
    pub concurrency: usize,
    /// An integration without data for this long is in Warning.
    pub stale_after: Duration,
    /// On SIGTERM, how long the folder in hand may take to finish.
    pub grace_period: Duration,
}

impl Schedule {
    /// The first scan time strictly after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            // An interval too long to add to a date never comes round.
            Schedule::Every(every) => chrono::Duration::from_std(*every)
                .ok()
                .and_then(|every| now.checked_add_signed(every))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            Schedule::Cron { cron, zone } => cron
                .find_next_occurrence(&now.with_timezone(zone), false)
                .map(|t| t.with_timezone(&Utc))
                // A pattern that never matches again (Feb 30) degrades to daily, not a hot loop.
                .unwrap_or(now + chrono::Duration::days(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .expect("test timestamp")
    }

    fn cron(expression: &str, tz: &str) -> Schedule {
        Schedule::Cron {
            cron: Box::new(parse_cron(expression).expect("valid cron")),
            zone: tz.parse().expect("valid time zone"),
        }
    }

    #[test]
    fn every_adds_the_interval() {
        let s = Schedule::Every(Duration::from_secs(15 * 60));
        assert_eq!(
            s.next_after(at("2026-01-01T00:00:00Z")),
            at("2026-01-01T00:15:00Z")
        );
    }

    #[test]
    fn cron_in_a_time_zone_across_spring_forward() {
        // Europe/Berlin jumps from 02:00 CET to 03:00 CEST on 2026-03-29.
        let s = cron("30 8 * * *", "Europe/Berlin");
        // 08:30 CET is 07:30 UTC before the change, 08:30 CEST is 06:30 UTC after it.
        assert_eq!(
            s.next_after(at("2026-03-28T00:00:00Z")),
            at("2026-03-28T07:30:00Z")
        );
        assert_eq!(
            s.next_after(at("2026-03-28T07:30:00Z")),
            at("2026-03-29T06:30:00Z")
        );
        // 02:30 does not exist on the night of the change: the run comes at 03:00 CEST.
        let s = cron("30 2 * * *", "Europe/Berlin");
        assert_eq!(
            s.next_after(at("2026-03-28T02:00:00Z")),
            at("2026-03-29T01:00:00Z")
        );
        assert_eq!(
            s.next_after(at("2026-03-29T01:00:00Z")),
            at("2026-03-30T00:30:00Z")
        );
    }

    #[test]
    fn cron_across_fall_back() {
        // America/New_York falls back from 02:00 EDT to 01:00 EST on 2026-11-01.
        let s = cron("0 12 * * *", "America/New_York");
        assert_eq!(
            s.next_after(at("2026-10-31T12:00:00Z")),
            at("2026-10-31T16:00:00Z")
        );
        assert_eq!(
            s.next_after(at("2026-10-31T16:00:00Z")),
            at("2026-11-01T17:00:00Z")
        );
        // 01:30 happens twice that night (EDT, then EST): it runs once, at the first.
        let s = cron("30 1 * * *", "America/New_York");
        assert_eq!(
            s.next_after(at("2026-10-31T12:00:00Z")),
            at("2026-11-01T05:30:00Z")
        );
        assert_eq!(
            s.next_after(at("2026-11-01T05:30:00Z")),
            at("2026-11-02T06:30:00Z")
        );
    }

    #[test]
    fn six_fields_and_nonsense_are_refused() {
        assert!(parse_cron("0 */15 * * * *").is_err());
        assert!(parse_cron("every day").is_err());
        assert!(parse_cron("*/15 * * * *").is_ok());
    }
}
