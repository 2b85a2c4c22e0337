//! When one message may go: now, held until an instant, or refused. Pure:
//! the caller passes the clock and the send-window question in.
//!
//! - OTP: now, always (the API refuses `send_at` on one: an OTP is now or
//!   never).
//! - Transactional: at `send_at` if it is later than now, else now. Send
//!   windows never apply.
//! - Marketing: from `start = max(now, send_at)`, the recipient's send
//!   window: open at `start` goes at `start` (now, or held until
//!   `send_at`); closed is held until it opens (`quiet_hours = "defer"`)
//!   or refused with the next opening (`"reject"`). A window that never
//!   opens in all of the recipient's zones is refused either way.

use jiff::Timestamp;

use crate::domain::{Category, QuietHours, UnixMillis};
use crate::rules::windows::{Verdict, WindowError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    Now,
    Hold(UnixMillis),
    /// Outside the send window.
    Refuse {
        next_open: Option<UnixMillis>,
        why: String,
    },
}

pub fn decide(
    category: Category,
    quiet_hours: QuietHours,
    send_at: Option<UnixMillis>,
    now: UnixMillis,
    window: impl FnOnce(Timestamp) -> Result<Verdict, WindowError>,
) -> When {
    let start = send_at.map_or(now, |t| t.max(now));
    let at = |t: UnixMillis| if t > now { When::Hold(t) } else { When::Now };
    match category {
        Category::Otp => When::Now,
        Category::Transactional => at(start),
        Category::Marketing => {
            let Ok(ts) = Timestamp::from_millisecond(start) else {
                return When::Refuse {
                    next_open: None,
                    why: "the send time is out of range".into(),
                };
            };
            match window(ts) {
                Ok(Verdict::Open) => at(start),
                Ok(Verdict::Closed { next_open }) => {
                    let next = next_open.as_millisecond();
                    match quiet_hours {
                        QuietHours::Defer => When::Hold(next),
                        QuietHours::Reject => When::Refuse {
                            next_open: Some(next),
                            why: format!(
                                "outside the recipient's send window; it opens at {}",
                                crate::domain::rfc3339(next)
                            ),
                        },
                    }
                }
                Err(e) => When::Refuse {
                    next_open: None,
                    why: e.to_string(),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMillis = 1_773_579_600_000; // 2026-03-15T13:00:00Z
    const LATER: UnixMillis = NOW + 3_600_000;
    const OPENS: UnixMillis = NOW + 18 * 3_600_000;

    fn open(_: Timestamp) -> Result<Verdict, WindowError> {
        Ok(Verdict::Open)
    }

    fn closed(_: Timestamp) -> Result<Verdict, WindowError> {
        Ok(Verdict::Closed {
            next_open: Timestamp::from_millisecond(OPENS).unwrap(),
        })
    }

    fn never(_: Timestamp) -> Result<Verdict, WindowError> {
        Err(WindowError::NoOpening { days: 14 })
    }

    fn asked_at(expected: UnixMillis) -> impl FnOnce(Timestamp) -> Result<Verdict, WindowError> {
        move |t| {
            assert_eq!(t.as_millisecond(), expected);
            Ok(Verdict::Open)
        }
    }

    #[test]
    fn otp_and_transactional_never_meet_a_window() {
        use Category::*;
        let no_window =
            |_: Timestamp| -> Result<Verdict, WindowError> { panic!("asked for a window") };
        assert_eq!(
            decide(Otp, QuietHours::Reject, None, NOW, no_window),
            When::Now
        );
        assert_eq!(
            decide(Otp, QuietHours::Defer, Some(LATER), NOW, no_window),
            When::Now
        );
        assert_eq!(
            decide(Transactional, QuietHours::Reject, None, NOW, no_window),
            When::Now
        );
        assert_eq!(
            decide(
                Transactional,
                QuietHours::Reject,
                Some(LATER),
                NOW,
                no_window
            ),
            When::Hold(LATER)
        );
        assert_eq!(
            decide(
                Transactional,
                QuietHours::Defer,
                Some(NOW - 5),
                NOW,
                no_window
            ),
            When::Now,
            "a send_at in the past is now"
        );
    }

    #[test]
    fn marketing_follows_the_window_from_send_at() {
        use Category::Marketing;
        assert_eq!(
            decide(Marketing, QuietHours::Defer, None, NOW, open),
            When::Now
        );
        assert_eq!(
            decide(Marketing, QuietHours::Defer, None, NOW, closed),
            When::Hold(OPENS)
        );
        assert_eq!(
            decide(
                Marketing,
                QuietHours::Defer,
                Some(LATER),
                NOW,
                asked_at(LATER)
            ),
            When::Hold(LATER)
        );
        assert_eq!(
            decide(
                Marketing,
                QuietHours::Defer,
                Some(NOW - 1),
                NOW,
                asked_at(NOW)
            ),
            When::Now
        );
        assert_eq!(
            decide(Marketing, QuietHours::Defer, Some(LATER), NOW, closed),
            When::Hold(OPENS)
        );
    }

    #[test]
    fn reject_mode_refuses_with_the_next_opening() {
        use Category::Marketing;
        match decide(Marketing, QuietHours::Reject, None, NOW, closed) {
            When::Refuse { next_open, why } => {
                assert_eq!(next_open, Some(OPENS));
                assert!(why.contains("2026-03-16T07:00:00Z"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decide(Marketing, QuietHours::Reject, None, NOW, open),
            When::Now
        );
        for mode in [QuietHours::Defer, QuietHours::Reject] {
            assert!(matches!(
                decide(Marketing, mode, None, NOW, never),
                When::Refuse {
                    next_open: None,
                    ..
                }
            ));
        }
    }
}
