//! Resilience around any [`Provider`]: a global bound on messages in flight,
//! a pause while the provider's `Retry-After` runs, and the circuit breaker.
//! Everything refused here fails fast, without a request to the provider.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Semaphore;

use super::breaker::{Admission, Breaker, Outcome, State};
use super::{Accepted, OutboundSms, Provider, ProviderError};
use crate::config::UpstreamConfig;

/// A 429 without `Retry-After` still pauses sending this long.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// A provider asking for a longer pause is not believed beyond this.
const MAX_PAUSE: Duration = Duration::from_secs(300);

pub struct Guarded {
    inner: Arc<dyn Provider>,
    /// Shared by every request, so the provider never sees more than
    /// `upstream.concurrency` messages at once from this process.
    permits: Semaphore,
    /// How long a message may wait for a permit before it fails.
    queue_timeout: Duration,
    breaker: Mutex<Breaker>,
    paused_until: Mutex<Option<Instant>>,
}

impl Guarded {
    pub fn new(inner: Arc<dyn Provider>, cfg: &UpstreamConfig) -> Guarded {
        Guarded {
            inner,
            permits: Semaphore::new(cfg.concurrency.max(1)),
            queue_timeout: Duration::from_millis(cfg.timeout_ms),
            breaker: Mutex::new(Breaker::new(&cfg.breaker)),
            paused_until: Mutex::new(None),
        }
    }

    fn lock_breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        // A panic while holding the lock leaves a consistent state machine.
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pause_remaining(&self, now: Instant) -> Option<Duration> {
        let until = (*self.paused_until.lock().unwrap_or_else(|e| e.into_inner()))?;
        (now < until).then(|| until - now)
    }

    fn pause(&self, now: Instant, retry_after: Option<Duration>) {
        let until = now + retry_after.unwrap_or(DEFAULT_PAUSE).min(MAX_PAUSE);
        let mut p = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(*p, Some(old) if old >= until) {
            *p = Some(until);
        }
    }

    fn record(&self, admission: Admission, outcome: Outcome) {
        let mut b = self.lock_breaker();
        if b.record(Instant::now(), admission, outcome) {
            tracing::warn!(
                provider = self.inner.name(),
                "circuit breaker open: the provider keeps failing; messages fail fast until a probe succeeds"
            );
            metrics::counter!("stopgate_upstream_circuit_opened_total", "provider" => self.inner.name())
                .increment(1);
        }
        let state = match b.state() {
            State::Closed => 0.0,
            State::HalfOpen { .. } => 1.0,
            State::Open { .. } => 2.0,
        };
        metrics::gauge!("stopgate_upstream_circuit_state", "provider" => self.inner.name())
            .set(state);
    }
}

/// Records `Ignored` if the call is dropped before it ends (the client went
/// away), so a half-open probe can never hold the breaker forever.
struct Ticket<'a> {
    guard: &'a Guarded,
    admission: Admission,
    done: bool,
}

impl Ticket<'_> {
    fn finish(mut self, outcome: Outcome) {
        self.done = true;
        self.guard.record(self.admission, outcome);
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.guard.record(self.admission, Outcome::Ignored);
        }
    }
}

#[async_trait]
impl Provider for Guarded {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ProviderError> {
        if let Some(left) = self.pause_remaining(Instant::now()) {
            return Err(ProviderError::RateLimited {
                retry_after: Some(left),
            });
        }
        let _permit = match tokio::time::timeout(self.queue_timeout, self.permits.acquire()).await {
            Ok(Ok(p)) => p,
            // Our own backlog, not the provider's health: not a breaker failure.
            _ => {
                return Err(ProviderError::Unavailable(
                    "too many messages waiting for the provider".into(),
                ))
            }
        };
        // A pause may have begun while this message waited for its permit.
        if let Some(left) = self.pause_remaining(Instant::now()) {
            return Err(ProviderError::RateLimited {
                retry_after: Some(left),
            });
        }
        let admission = self.lock_breaker().admit(Instant::now());
        if let Admission::Refused { retry_in } = admission {
            return Err(ProviderError::CircuitOpen {
                retry_after: retry_in,
            });
        }
        let ticket = Ticket {
            guard: self,
            admission,
            done: false,
        };
        let result = self.inner.send(sms).await;
        let outcome = match &result {
            Ok(_) | Err(ProviderError::Rejected { .. }) => Outcome::Success,
            Err(ProviderError::RateLimited { retry_after }) => {
                self.pause(Instant::now(), *retry_after);
                Outcome::Ignored
            }
            Err(ProviderError::CircuitOpen { .. }) => Outcome::Ignored,
            Err(
                ProviderError::Unavailable(_) | ProviderError::Timeout | ProviderError::Protocol(_),
            ) => Outcome::Failure,
        };
        ticket.finish(outcome);
        result
    }
}
