//! The circuit breaker as a pure state machine: no clock of its own (every
//! call takes `now`), no I/O, so every transition is unit-tested.
//!
//! Closed: calls pass; it opens after `consecutive_failures` failures in a
//! row, or when `failure_ratio` of the last `window` calls failed (once
//! `min_calls` are known). Open: calls are refused until `cooldown` has
//! passed. Half-open: exactly one probe passes; its success closes the
//! breaker, its failure opens it for another cooldown.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::BreakerConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// What the breaker says about one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// The single call that tests a half-open breaker.
    Probe,
    Refused {
        retry_in: Duration,
    },
}

/// How a call ended, as far as the provider's health goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The provider answered (it may have refused the message: still healthy).
    Success,
    /// Unreachable, 5xx, timeout, or an answer we cannot read.
    Failure,
    /// Says nothing about health (rate limited, cancelled).
    Ignored,
}

#[derive(Debug, Clone)]
pub struct Breaker {
    consecutive_limit: u32,
    failure_ratio: f64,
    window: usize,
    min_calls: usize,
    cooldown: Duration,
    state: State,
    consecutive: u32,
    /// Last `window` outcomes, `true` = failure.
    recent: VecDeque<bool>,
}

impl Breaker {
    pub fn new(cfg: &BreakerConfig) -> Breaker {
        Breaker {
            consecutive_limit: cfg.consecutive_failures.max(1),
            failure_ratio: cfg.failure_ratio,
            window: cfg.window.max(1),
            min_calls: cfg.min_calls.clamp(1, cfg.window.max(1)),
            cooldown: Duration::from_millis(cfg.cooldown_ms),
            state: State::Closed,
            consecutive: 0,
            recent: VecDeque::new(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn admit(&mut self, now: Instant) -> Admission {
        match self.state {
            State::Closed => Admission::Allowed,
            State::Open { until } if now < until => Admission::Refused {
                retry_in: until - now,
            },
            State::Open { .. } | State::HalfOpen { probing: false } => {
                self.state = State::HalfOpen { probing: true };
                Admission::Probe
            }
            State::HalfOpen { probing: true } => Admission::Refused {
                retry_in: Duration::from_secs(1),
            },
        }
    }

    /// Records how an admitted call ended. Returns true when this opened the breaker.
    pub fn record(&mut self, now: Instant, admission: Admission, outcome: Outcome) -> bool {
        match (admission, self.state) {
            (Admission::Refused { .. }, _) => false,
            (Admission::Probe, State::HalfOpen { .. }) => match outcome {
                Outcome::Success => {
                    self.close();
                    false
                }
                Outcome::Failure => {
                    self.open(now);
                    true
                }
                Outcome::Ignored => {
                    self.state = State::HalfOpen { probing: false };
                    false
                }
            },
            // Calls admitted before the breaker opened that end late say
            // nothing the probe will not say better.
            (_, State::Open { .. } | State::HalfOpen { .. }) => false,
            (_, State::Closed) => {
                let failed = match outcome {
                    Outcome::Ignored => return false,
                    Outcome::Success => false,
                    Outcome::Failure => true,
                };
                self.consecutive = if failed { self.consecutive + 1 } else { 0 };
                self.recent.push_back(failed);
                if self.recent.len() > self.window {
                    self.recent.pop_front();
                }
                let failures = self.recent.iter().filter(|f| **f).count();
                let ratio_tripped = self.recent.len() >= self.min_calls
                    && failures as f64 >= self.failure_ratio * self.recent.len() as f64;
                if failed && (self.consecutive >= self.consecutive_limit || ratio_tripped) {
                    self.open(now);
                    true
                } else {
                    false
                }
            }
        }
    }

    fn open(&mut self, now: Instant) {
        self.state = State::Open {
            until: now + self.cooldown,
        };
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.consecutive = 0;
        self.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(consecutive: u32, ratio: f64, window: usize, min_calls: usize) -> Breaker {
        Breaker::new(&BreakerConfig {
            consecutive_failures: consecutive,
            failure_ratio: ratio,
            window,
            min_calls,
            cooldown_ms: 10_000,
        })
    }

    fn call(b: &mut Breaker, now: Instant, outcome: Outcome) -> Admission {
        let a = b.admit(now);
        b.record(now, a, outcome);
        a
    }

    #[test]
    fn opens_after_consecutive_failures_and_refuses_until_the_cooldown() {
        let t0 = Instant::now();
        let mut b = breaker(3, 1.0, 100, 100);
        call(&mut b, t0, Outcome::Failure);
        call(&mut b, t0, Outcome::Failure);
        assert_eq!(b.state(), State::Closed);
        let a = b.admit(t0);
        assert!(
            b.record(t0, a, Outcome::Failure),
            "the third failure opens it"
        );
        assert_eq!(
            b.admit(t0 + Duration::from_secs(4)),
            Admission::Refused {
                retry_in: Duration::from_secs(6)
            }
        );
    }

    #[test]
    fn a_success_resets_the_consecutive_count() {
        let t0 = Instant::now();
        let mut b = breaker(3, 1.0, 100, 100);
        for _ in 0..10 {
            call(&mut b, t0, Outcome::Failure);
            call(&mut b, t0, Outcome::Failure);
            call(&mut b, t0, Outcome::Success);
        }
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn opens_on_the_failure_ratio_once_enough_calls_are_known() {
        let t0 = Instant::now();
        let mut b = breaker(100, 0.5, 10, 6);
        // F S F S F: 60% failed but only 5 calls known.
        for o in [Outcome::Failure, Outcome::Success]
            .into_iter()
            .cycle()
            .take(5)
        {
            call(&mut b, t0, o);
        }
        assert_eq!(b.state(), State::Closed);
        call(&mut b, t0, Outcome::Success);
        assert_eq!(
            b.state(),
            State::Closed,
            "3 of 6 failed, but the last call succeeded"
        );
        call(&mut b, t0, Outcome::Failure);
        assert!(matches!(b.state(), State::Open { .. }), "4 of 7 failed");
    }

    #[test]
    fn the_window_forgets_old_calls() {
        let t0 = Instant::now();
        let mut b = breaker(100, 0.5, 4, 4);
        call(&mut b, t0, Outcome::Failure);
        for _ in 0..4 {
            call(&mut b, t0, Outcome::Success);
        }
        call(&mut b, t0, Outcome::Failure);
        assert_eq!(b.state(), State::Closed, "1 of the last 4 failed");
    }

    #[test]
    fn half_open_lets_one_probe_through_and_its_result_decides() {
        let t0 = Instant::now();
        let mut b = breaker(1, 1.0, 10, 10);
        call(&mut b, t0, Outcome::Failure);
        let later = t0 + Duration::from_secs(10);
        let probe = b.admit(later);
        assert_eq!(probe, Admission::Probe);
        assert!(
            matches!(b.admit(later), Admission::Refused { .. }),
            "only one probe at a time"
        );
        // A failed probe opens it for another full cooldown.
        assert!(b.record(later, probe, Outcome::Failure));
        assert!(matches!(
            b.admit(later + Duration::from_secs(9)),
            Admission::Refused { .. }
        ));
        let even_later = later + Duration::from_secs(10);
        let probe = b.admit(even_later);
        assert_eq!(probe, Admission::Probe);
        assert!(!b.record(even_later, probe, Outcome::Success));
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.admit(even_later), Admission::Allowed);
    }

    #[test]
    fn an_inconclusive_probe_frees_the_slot_for_another() {
        let t0 = Instant::now();
        let mut b = breaker(1, 1.0, 10, 10);
        call(&mut b, t0, Outcome::Failure);
        let later = t0 + Duration::from_secs(10);
        let probe = b.admit(later);
        b.record(later, probe, Outcome::Ignored);
        assert_eq!(b.admit(later), Admission::Probe);
    }

    #[test]
    fn late_results_of_calls_admitted_before_opening_change_nothing() {
        let t0 = Instant::now();
        let mut b = breaker(1, 1.0, 10, 10);
        let early = b.admit(t0);
        call(&mut b, t0, Outcome::Failure);
        let state = b.state();
        b.record(t0, early, Outcome::Success);
        assert_eq!(b.state(), state, "still open");
        let later = t0 + Duration::from_secs(10);
        let probe = b.admit(later);
        b.record(later, early, Outcome::Failure);
        assert_eq!(b.state(), State::HalfOpen { probing: true });
        b.record(later, probe, Outcome::Success);
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn ignored_outcomes_do_not_count() {
        let t0 = Instant::now();
        let mut b = breaker(2, 0.5, 4, 2);
        for _ in 0..10 {
            call(&mut b, t0, Outcome::Ignored);
        }
        call(&mut b, t0, Outcome::Failure);
        assert_eq!(b.state(), State::Closed);
    }
}
