//! The time the state stores go by, passed in so that lease expiry and retry times can be
//! tested by moving a clock rather than by sleeping. The real one by default.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;

    /// The time a shared database should write instead of its own clock; `None` for the real
    /// time, so that every replica goes by one clock, the database's.
    fn instead_of_database(&self) -> Option<DateTime<Utc>> {
        Some(self.now())
    }
}

/// The real time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn instead_of_database(&self) -> Option<DateTime<Utc>> {
        None
    }
}

/// A clock that moves only when told to (for tests); clones share the time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock(Arc::new(Mutex::new(start)))
    }

    pub fn advance(&self, by: std::time::Duration) {
        let mut now = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *now += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
