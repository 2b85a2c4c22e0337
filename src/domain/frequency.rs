//! The frequency cap's ledger of one recipient (per tenant): when each
//! counted marketing message goes out, so that no rolling window of the
//! cap's length ever holds more than `max` of them. Pure; the store keeps
//! one ledger per (tenant, number) and changes it atomically.
//!
//! A message counts at the instant it goes: now for one sent now, its
//! `deliver_after` for one held. So five messages held overnight for an
//! 08:00 opening under a cap of three are three held and two refused at
//! once, not five sent at 08:00. Each entry has a key (chosen by the
//! caller), so that a held message can move its entry when it is released
//! later than planned, and give it back when it is not sent after all.

use serde::{Deserialize, Serialize};

use super::{FrequencyCap, UnixMillis};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendLedger {
    /// (when it goes, key), in no particular order; few (at most about
    /// `max` per window), so scans are cheap.
    pub entries: Vec<(UnixMillis, u64)>,
}

impl SendLedger {
    /// Counts the message `key` at `at` if the cap allows it; its earlier
    /// entry, if any, is replaced (a move). `false`: over the cap, and the
    /// key has no entry any more. Entries that no window reaching `now` or
    /// later can hold are dropped first.
    pub fn reserve(
        &mut self,
        key: u64,
        at: UnixMillis,
        cap: FrequencyCap,
        now: UnixMillis,
    ) -> bool {
        self.prune(now, cap.per_ms);
        self.forget(key);
        let times: Vec<UnixMillis> = self.entries.iter().map(|(t, _)| *t).collect();
        if fits(&times, at, cap) {
            self.entries.push((at, key));
            true
        } else {
            false
        }
    }

    /// The message `key` does not count any more (not sent after all).
    pub fn forget(&mut self, key: u64) {
        self.entries.retain(|(_, k)| *k != key);
    }

    /// Drops entries no window of length `per_ms` that reaches `now` or
    /// later can hold.
    pub fn prune(&mut self, now: UnixMillis, per_ms: i64) {
        self.entries.retain(|(t, _)| *t > now - per_ms);
    }

    /// The newest entry, for purging ledgers nobody needs any more.
    pub fn newest(&self) -> Option<UnixMillis> {
        self.entries.iter().map(|(t, _)| *t).max()
    }
}

/// Whether one more message at `at` keeps every window of `cap.per_ms`
/// (half-open, `[s, s + per)`) at `cap.max` messages or fewer, given the
/// instants already counted.
///
/// Only windows holding `at` change, i.e. starts `s` in `(at - per, at]`.
/// Sliding `s` up, a message at `t` enters the window at `s = t - per + 1`
/// (in milliseconds), so the fullest window starts at one of those points
/// or at the lowest start: only those are counted.
pub fn fits(times: &[UnixMillis], at: UnixMillis, cap: FrequencyCap) -> bool {
    let per = cap.per_ms.max(1);
    let (low, high) = (at - per + 1, at);
    let in_window = |s: UnixMillis| times.iter().filter(|t| s <= **t && **t < s + per).count();
    let fullest = std::iter::once(low)
        .chain(times.iter().map(|t| (t - per + 1).clamp(low, high)))
        .map(in_window)
        .max()
        .unwrap_or(0);
    fullest < cap.max as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const H: i64 = 3_600_000;

    fn cap(max: u32, hours: i64) -> FrequencyCap {
        FrequencyCap {
            max,
            per_ms: hours * H,
        }
    }

    #[test]
    fn three_in_a_day_then_refused_until_the_first_leaves_the_window() {
        let c = cap(3, 24);
        let mut l = SendLedger::default();
        assert!(l.reserve(1, 10 * H, c, 10 * H));
        assert!(l.reserve(2, 11 * H, c, 11 * H));
        assert!(l.reserve(3, 12 * H, c, 12 * H));
        assert!(!l.reserve(4, 13 * H, c, 13 * H), "the 4th within 24 h");
        // 24 h after the first, exactly: the window [10h+1ms, 34h+1ms) holds two.
        assert!(!l.reserve(5, 34 * H - 1, c, 34 * H - 1));
        assert!(l.reserve(6, 34 * H, c, 34 * H));
        assert_eq!(l.entries.len(), 3, "the first was pruned: {l:?}");
    }

    #[test]
    fn a_held_message_counts_at_its_time_for_sends_before_and_after_it() {
        let c = cap(1, 24);
        let mut l = SendLedger::default();
        // Held on Sunday for Monday 08:00 (hour 32).
        assert!(l.reserve(1, 32 * H, c, 14 * H));
        // Sunday 20:00 (hour 20): within 24 h of the held one.
        assert!(!l.reserve(2, 20 * H, c, 20 * H));
        // Tuesday 09:00 (hour 57): more than 24 h after it.
        assert!(l.reserve(3, 57 * H, c, 20 * H));
    }

    #[test]
    fn a_move_replaces_the_entry_and_a_forget_gives_it_back() {
        let c = cap(2, 24);
        let mut l = SendLedger::default();
        assert!(l.reserve(1, 8 * H, c, 0));
        assert!(l.reserve(2, 9 * H, c, 0));
        assert!(!l.reserve(3, 10 * H, c, 0));
        // Released an hour late: still one entry for key 1.
        assert!(l.reserve(1, 9 * H, c, 9 * H));
        assert_eq!(l.entries.len(), 2);
        l.forget(2);
        assert!(l.reserve(3, 10 * H, c, 10 * H));
    }

    /// Every window of `per` milliseconds, by brute force over a small domain.
    fn fits_brute(times: &[i64], at: i64, per: i64, max: u32) -> bool {
        let mut all = times.to_vec();
        all.push(at);
        let lo = all.iter().min().unwrap() - per;
        let hi = all.iter().max().unwrap() + 1;
        (lo..=hi).all(|s| all.iter().filter(|t| s <= **t && **t < s + per).count() <= max as usize)
    }

    proptest! {
        #[test]
        fn fits_agrees_with_every_window(
            times in proptest::collection::vec(0i64..60, 0..8),
            at in 0i64..60,
            per in 1i64..20,
            max in 1u32..5,
        ) {
            // Only ledgers the cap itself could have built.
            let mut kept: Vec<i64> = Vec::new();
            for t in times {
                if fits_brute(&kept, t, per, max) {
                    kept.push(t);
                }
            }
            let c = FrequencyCap { max, per_ms: per };
            prop_assert_eq!(fits(&kept, at, c), fits_brute(&kept, at, per, max));
        }
    }
}
