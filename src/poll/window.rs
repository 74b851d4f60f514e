//! Query windows: which time ranges a run asks the API for. The first poll covers one window
//! up to now; each later one starts where the last committed window ended; a window left
//! open by a crash or a failure is asked again exactly (never skipped); windows that fell
//! behind are caught up one by one, a bounded number per run; only complete windows
//! (`end <= now`) are asked.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

/// A half-open time range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

const PREFIX: &str = "poll/";

impl Window {
    /// The window's name in the ledger and the journal: `poll/<start>..<end>` (RFC 3339, UTC,
    /// to the millisecond), so that the same window always has the same name.
    pub fn key(&self) -> String {
        format!(
            "{PREFIX}{}..{}",
            self.start.to_rfc3339_opts(SecondsFormat::Millis, true),
            self.end.to_rfc3339_opts(SecondsFormat::Millis, true)
        )
    }

    /// The window a [`Window::key`] names; `None` for any other text (a folder of a bucket).
    pub fn from_key(key: &str) -> Option<Window> {
        let (start, end) = key.strip_prefix(PREFIX)?.split_once("..")?;
        let time = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        let window = Window {
            start: time(start)?,
            end: time(end)?,
        };
        (window.start < window.end).then_some(window)
    }
}

/// The windows to ask now, in order: the `open` ones first (left by a crash or a failure,
/// asked exactly again), then from the end of the last of them, or of `last_committed`, one
/// window of `length` after the other while it ends by `now`; the very first poll (nothing
/// open or committed) covers `length` up to `now`. At most `max` in all.
pub fn plan(
    open: &[Window],
    last_committed: Option<Window>,
    length: TimeDelta,
    now: DateTime<Utc>,
    max: usize,
) -> Vec<Window> {
    let mut windows: Vec<Window> = open.iter().copied().take(max).collect();
    let mut from = match (windows.last(), last_committed) {
        (Some(last), _) => last.end,
        (None, Some(last)) => last.end,
        (None, None) => now - length,
    };
    while windows.len() < max && from + length <= now {
        windows.push(Window {
            start: from,
            end: from + length,
        });
        from += length;
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn window(start: &str, end: &str) -> Window {
        Window {
            start: at(start),
            end: at(end),
        }
    }

    const FIVE: TimeDelta = TimeDelta::minutes(5);

    #[test]
    fn the_first_poll_covers_one_window_up_to_now() {
        let now = at("2026-12-01T06:03:10Z");
        assert_eq!(
            plan(&[], None, FIVE, now, 10),
            [window("2026-12-01T05:58:10Z", "2026-12-01T06:03:10Z")]
        );
    }

    #[test]
    fn a_later_poll_starts_where_the_last_committed_window_ended_and_asks_only_complete_windows() {
        let last = window("2026-12-01T05:55:00Z", "2026-12-01T06:00:00Z");
        assert_eq!(
            plan(&[], Some(last), FIVE, at("2026-12-01T06:04:59Z"), 10),
            []
        );
        assert_eq!(
            plan(&[], Some(last), FIVE, at("2026-12-01T06:05:00Z"), 10),
            [window("2026-12-01T06:00:00Z", "2026-12-01T06:05:00Z")]
        );
    }

    #[test]
    fn windows_that_fell_behind_are_caught_up_one_by_one_and_bounded() {
        let last = window("2026-12-01T05:55:00Z", "2026-12-01T06:00:00Z");
        let now = at("2026-12-01T06:17:00Z");
        assert_eq!(
            plan(&[], Some(last), FIVE, now, 10),
            [
                window("2026-12-01T06:00:00Z", "2026-12-01T06:05:00Z"),
                window("2026-12-01T06:05:00Z", "2026-12-01T06:10:00Z"),
                window("2026-12-01T06:10:00Z", "2026-12-01T06:15:00Z"),
            ]
        );
        assert_eq!(plan(&[], Some(last), FIVE, now, 2).len(), 2);
    }

    #[test]
    fn an_open_window_is_asked_again_exactly_before_any_other() {
        let open = window("2026-12-01T05:58:10Z", "2026-12-01T06:03:10Z");
        let now = at("2026-12-01T06:09:00Z");
        assert_eq!(
            plan(&[open], None, FIVE, now, 10),
            [open, window("2026-12-01T06:03:10Z", "2026-12-01T06:08:10Z")]
        );
    }

    #[test]
    fn a_key_names_its_window_and_nothing_else_reads_as_one() {
        let w = window("2026-12-01T05:58:10.5Z", "2026-12-01T06:03:10.5Z");
        assert_eq!(
            w.key(),
            "poll/2026-12-01T05:58:10.500Z..2026-12-01T06:03:10.500Z"
        );
        assert_eq!(Window::from_key(&w.key()), Some(w));
        assert_eq!(Window::from_key("current/dt=20261201/"), None);
        assert_eq!(Window::from_key("poll/x..y"), None);
    }
}
