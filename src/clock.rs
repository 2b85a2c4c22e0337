//! The clock port: what time it is, for the decisions that depend on it
//! (send windows, `send_at`, frequency caps, releasing held messages).
//!
//! The app runs on [`SystemClock`]. [`ManualClock`] is for tests only: it
//! stands still until a test sets or advances it, so "Sunday 14:00 in
//! Paris" is a value, not a wait. Nothing in the config can select it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::domain::UnixMillis;

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now(&self) -> UnixMillis;
}

/// The host's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixMillis {
        crate::domain::now_millis()
    }
}

/// The clock the app uses unless a test hands it another.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// A clock that only moves when told (tests).
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn at(now: UnixMillis) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicI64::new(now)))
    }

    /// At an RFC 3339 instant (`2026-03-15T14:00:00+01:00`); panics on a
    /// bad one, which in a test is a typo.
    pub fn at_rfc3339(s: &str) -> Arc<ManualClock> {
        Self::at(parse_rfc3339(s))
    }

    pub fn set(&self, now: UnixMillis) {
        self.0.store(now, Ordering::SeqCst);
    }

    pub fn set_rfc3339(&self, s: &str) {
        self.set(parse_rfc3339(s));
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixMillis {
        self.0.load(Ordering::SeqCst)
    }
}

fn parse_rfc3339(s: &str) -> UnixMillis {
    s.parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("{s:?} is not an RFC 3339 instant: {e}"))
        .as_millisecond()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::at_rfc3339("2026-03-15T14:00:00+01:00");
        assert_eq!(c.now(), 1_773_579_600_000);
        c.advance(1_000);
        assert_eq!(c.now(), 1_773_579_601_000);
        c.set(5);
        assert_eq!(c.now(), 5);
        let real = SystemClock.now();
        assert!(real > 1_700_000_000_000, "{real}");
    }
}
