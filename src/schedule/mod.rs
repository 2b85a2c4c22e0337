//! Scheduling, the core service: releases held messages when they are due,
//! and cancels them (`DELETE /v1/messages/{id}`). Holding them is the send
//! pipeline's part (`outbound/schedule.rs`); [`when`] is the pure decision
//! both use.
//!
//! The releaser, one per node: a few workers, each claiming up to
//! `release_concurrency` due messages at a time under a lease (so that with
//! several nodes on one database each message is released by one node),
//! then for each, at the instant of its release:
//! - marketing is checked against suppressions again (an opt-out during
//!   the hold blocks it), against the send window again (released late,
//!   after the window closed again: held until it opens next), and against
//!   the frequency cap (its entry moves to the instant it really goes);
//! - the rest is marked begun (durably) and handed to the provider, at most
//!   `release_concurrency` at once across the workers, at most
//!   `release_per_second`, never past the upstream guard's pause: a
//!   `429`/open circuit hands the rest back, due when the pause ends, and
//!   the workers wait it out;
//! - outcomes are written on the records (`sent`, `failed`, `blocked`,
//!   `rejected`) with counters and notifications, like any status change.
//!
//! A crash between "begun" and the outcome leaves a message that may have
//! gone out: it is never sent again (`failed`, `release_interrupted`). A
//! crash before "begun" loses nothing: the lease ends and it is released.
//! A provider that cannot be reached hands messages back (due again in
//! [`RETRY_UNAVAILABLE`]), so an outage delays held messages, it does not
//! fail them.

pub mod when;

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{watch, Semaphore};

use crate::clock::Clock;
use crate::domain::{
    Campaign, MessageId, MessageStatus, PhoneNumber, ShortCode, Tenant, TenantId, UnixMillis,
};
use crate::outbound::{upstream_failure, ErrorCode};
use crate::outbox::{for_message, Signal};
use crate::rules::windows::{self, Verdict};
use crate::rules::RuleSet;
use crate::store::{
    Cancel, CapEntry, Claimed, HeldMessage, MessageRecord, Release, StatusChange, Store, StoreError,
};
use crate::upstream::{OutboundSms, Provider, ProviderError};

/// Workers per node: one's store round trips overlap another's sends.
const WORKERS: usize = 2;
/// A held message the provider could not take is tried again after this.
pub const RETRY_UNAVAILABLE: Duration = Duration::from_secs(30);
/// When the store fails mid-release, the claimed messages wait this long.
const RETRY_STORE: Duration = Duration::from_secs(10);
/// The longest pause a provider's `Retry-After` gets (as the guard's).
const MAX_PAUSE: Duration = Duration::from_secs(300);

/// `[schedule]`, resolved.
#[derive(Debug, Clone)]
pub struct ReleaseConfig {
    pub concurrency: usize,
    pub per_second: u32,
    pub poll: Duration,
    /// The upstream's timeout: a lease outlasts the longest round.
    pub upstream_timeout: Duration,
}

pub struct Scheduler {
    store: Arc<dyn Store>,
    provider: Arc<dyn Provider>,
    rules: Arc<RuleSet>,
    tenants: HashMap<TenantId, Arc<Tenant>>,
    clock: Arc<dyn Clock>,
    outbox: Signal,
    cfg: ReleaseConfig,
    lease_ms: i64,
    in_flight: Semaphore,
    limiter: Option<governor::DefaultDirectRateLimiter>,
    /// No sends before this (the provider asked for a pause).
    paused_until: Mutex<Option<tokio::time::Instant>>,
}

/// What became of one claimed message before or without a send.
enum Step {
    Finish(Release),
    Postpone(Claimed, UnixMillis),
    Send(Box<HeldMessage>),
}

impl Scheduler {
    pub fn new(
        store: Arc<dyn Store>,
        provider: Arc<dyn Provider>,
        rules: Arc<RuleSet>,
        tenants: &[Arc<Tenant>],
        clock: Arc<dyn Clock>,
        outbox: Signal,
        cfg: ReleaseConfig,
    ) -> Scheduler {
        let concurrency = cfg.concurrency.max(1);
        // A round is at most `concurrency` sends paced by the rate: the
        // lease outlasts it twice over, so a live node's claim never lapses.
        let pacing_ms = match cfg.per_second {
            0 => 0,
            r => (concurrency as i64 * 1000) / i64::from(r),
        };
        let lease_ms = 2 * (cfg.upstream_timeout.as_millis() as i64 + pacing_ms) + 30_000;
        Scheduler {
            limiter: NonZeroU32::new(cfg.per_second)
                .map(|r| governor::RateLimiter::direct(governor::Quota::per_second(r))),
            in_flight: Semaphore::new(concurrency),
            tenants: tenants.iter().map(|t| (t.id.clone(), t.clone())).collect(),
            store,
            provider,
            rules,
            clock,
            outbox,
            cfg,
            lease_ms,
            paused_until: Mutex::new(None),
        }
    }

    /// Releases due messages until `stop` turns true; a round under way
    /// finishes first (it is bounded by the upstream's timeout).
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let workers = (0..WORKERS).map(|_| self.clone().worker(stop.clone()));
        let stats = self.clone().publish_stats(stop.clone());
        futures::future::join(futures::future::join_all(workers), stats).await;
    }

    async fn worker(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            if let Some(left) = self.pause_left() {
                tokio::select! {
                    _ = tokio::time::sleep(left) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let full = match self.release_round().await {
                Ok(n) => n >= self.cfg.concurrency.max(1),
                Err(e) => {
                    tracing::warn!(error = %e, "releasing held messages failed");
                    false
                }
            };
            if full {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.poll) => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn publish_stats(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            match self.store.held_stats().await {
                Ok(s) => {
                    metrics::gauge!("stopgate_held_messages").set(s.held as f64);
                    let late = s.next_due.map_or(0, |d| self.clock.now() - d).max(0);
                    metrics::gauge!("stopgate_held_overdue_seconds").set(late as f64 / 1000.0);
                }
                Err(e) => tracing::warn!(error = %e, "held message stats unavailable"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    fn pause_left(&self) -> Option<Duration> {
        let until = (*self.paused_until.lock().unwrap_or_else(|e| e.into_inner()))?;
        let now = tokio::time::Instant::now();
        (now < until).then(|| until - now)
    }

    fn pause(&self, d: Duration) {
        let until = tokio::time::Instant::now() + d.min(MAX_PAUSE);
        let mut p = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(*p, Some(old) if old >= until) {
            *p = Some(until);
        }
    }

    /// One round: claims what is due, checks it, sends it, writes the
    /// outcomes. Returns how many messages it claimed.
    pub async fn release_round(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let claimed = self
            .store
            .claim_held(now, self.cfg.concurrency.max(1), self.lease_ms)
            .await?;
        let n = claimed.len();
        if n == 0 {
            return Ok(0);
        }
        // Each claim's cap entry, for giving it back if it does not go.
        let caps: HashMap<MessageId, (TenantId, String, u64)> = claimed
            .iter()
            .filter_map(|h| {
                let k = h.cap_key?;
                Some((h.id().clone(), (h.tenant().clone(), h.record.to.clone(), k)))
            })
            .collect();
        let steps = match self.check(claimed, now).await {
            Ok(steps) => steps,
            Err((e, unbegun)) => {
                // Never sent unchecked: back in the queue for a while. (Begun
                // ones keep their mark; their lease runs out instead.)
                let due = now + RETRY_STORE.as_millis() as i64;
                let back: Vec<(Claimed, UnixMillis)> =
                    unbegun.into_iter().map(|c| (c, due)).collect();
                let _ = self.store.postpone_held(&back).await;
                return Err(e);
            }
        };
        let mut finished: Vec<Release> = Vec::new();
        let mut postponed: Vec<(Claimed, UnixMillis)> = Vec::new();
        let mut sends: Vec<HeldMessage> = Vec::new();
        for s in steps {
            match s {
                Step::Finish(r) => finished.push(r),
                Step::Postpone(c, due) => postponed.push((c, due)),
                Step::Send(h) => sends.push(*h),
            }
        }
        if !postponed.is_empty() {
            self.store.postpone_held(&postponed).await?;
        }
        // Begun, durably, before the provider sees any of them.
        let claims: Vec<Claimed> = sends.iter().map(Claimed::from).collect();
        let ours = self.store.begin_held(&claims).await?;
        self.store.durable().await?;
        // Not ours any more (canceled meanwhile): not sent. A cap entry
        // moved for one stays until it ages out: fewer messages, never more.
        let sends = sends
            .into_iter()
            .zip(ours)
            .filter_map(|(h, ours)| ours.then_some(h));
        let outcomes = futures::stream::iter(sends)
            .map(|h| self.send(h))
            .buffer_unordered(self.cfg.concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        let mut again: Vec<(Claimed, UnixMillis)> = Vec::new();
        let mut noted: Noted = BTreeMap::new();
        for (h, outcome) in outcomes {
            match outcome {
                SendOutcome::Done(r) => {
                    if r.change.status == MessageStatus::Sent {
                        if let (Some(code), Ok(n)) =
                            (&h.shortcode, PhoneNumber::parse(&h.record.to))
                        {
                            noted
                                .entry((h.tenant().clone(), h.record.campaign.clone()))
                                .or_default()
                                .push((n, code.clone()));
                        }
                    }
                    finished.push(r);
                }
                SendOutcome::Again(due) => again.push((Claimed::from(&h), due)),
            }
        }
        let notify =
            |r: &MessageRecord| for_message(self.tenants.get(&r.tenant).map(|t| t.as_ref()), r);
        let written = self.store.finish_held(&finished, &notify).await?;
        if !again.is_empty() {
            self.store.postpone_held(&again).await?;
        }
        self.store.durable().await?;
        self.outbox.wake();
        for (r, w) in finished.iter().zip(&written) {
            if w.is_some() {
                metrics::counter!("stopgate_held_released_total", "status" => r.change.status.as_str())
                    .increment(1);
            }
        }
        metrics::counter!("stopgate_held_postponed_total")
            .increment((postponed.len() + again.len()) as u64);
        // What did not go does not count; what may have gone (a timeout, an
        // interrupted release) does.
        let mut unsent: BTreeMap<TenantId, Vec<(String, u64)>> = BTreeMap::new();
        for (r, w) in finished.iter().zip(&written) {
            let maybe_sent = [ErrorCode::UpstreamTimeout, ErrorCode::ReleaseInterrupted]
                .iter()
                .any(|c| r.change.error.as_deref() == Some(c.as_str()));
            if w.is_none() || r.change.status == MessageStatus::Sent || maybe_sent {
                continue;
            }
            if let Some((tenant, to, k)) = caps.get(&r.claim.id) {
                unsent
                    .entry(tenant.clone())
                    .or_default()
                    .push((to.clone(), *k));
            }
        }
        for (tenant, entries) in unsent {
            if let Err(e) = self.store.cap_forget(&tenant, &entries).await {
                tracing::warn!(error = %e, "frequency cap entries not given back");
            }
        }
        for ((tenant, campaign), sends) in noted {
            // Only helps attribute a later STOP: best effort. On the host's
            // clock, which inbound attribution reads too.
            if let Err(e) = self
                .store
                .note_marketing_sends(
                    &tenant,
                    campaign.as_ref(),
                    crate::domain::now_millis(),
                    &sends,
                )
                .await
            {
                tracing::warn!(error = %e, "released marketing sends not noted for attribution");
            }
        }
        Ok(n)
    }

    /// The checks of a release: interrupted ones, opt-outs, windows, caps.
    /// On a store error, every claim is returned so it can be handed back.
    async fn check(
        &self,
        claimed: Vec<HeldMessage>,
        now: UnixMillis,
    ) -> Result<Vec<Step>, (StoreError, Vec<Claimed>)> {
        let claims: Vec<Claimed> = claimed
            .iter()
            .filter(|h| !h.begun)
            .map(Claimed::from)
            .collect();
        let mut steps: Vec<Option<Step>> = Vec::with_capacity(claimed.len());
        let mut marketing: BTreeMap<TenantId, Vec<(usize, PhoneNumber)>> = BTreeMap::new();
        for (i, h) in claimed.iter().enumerate() {
            let tenant = self.tenants.get(h.tenant());
            let number = PhoneNumber::parse(&h.record.to);
            let finish = |status, code: &str| {
                Some(Step::Finish(release(
                    h,
                    status,
                    now,
                    Some(code.to_string()),
                )))
            };
            let step = match (tenant, number) {
                _ if h.begun => {
                    tracing::warn!(id = %h.id(), "held message interrupted after it was handed to the provider: not sent again");
                    finish(
                        MessageStatus::Failed,
                        ErrorCode::ReleaseInterrupted.as_str(),
                    )
                }
                (None, _) => finish(MessageStatus::Failed, "tenant_unknown"),
                (_, Err(_)) => finish(MessageStatus::Failed, ErrorCode::InvalidNumber.as_str()),
                (Some(_), Ok(n)) if h.record.category.is_marketing() => {
                    marketing
                        .entry(h.tenant().clone())
                        .or_default()
                        .push((i, n));
                    None
                }
                (Some(_), Ok(_)) => Some(Step::Send(Box::new(h.clone()))),
            };
            steps.push(step);
        }
        for (tenant_id, recipients) in marketing {
            let tenant = self.tenants[&tenant_id].clone();
            let numbers: Vec<PhoneNumber> = recipients.iter().map(|(_, n)| n.clone()).collect();
            let suppressed = self
                .store
                .suppressed(&tenant_id, &numbers)
                .await
                .map_err(|e| (e, claims.clone()))?;
            let mut capped: Vec<(usize, CapEntry)> = Vec::new();
            for ((i, n), opted_out) in recipients.into_iter().zip(suppressed) {
                let h = &claimed[i];
                if opted_out {
                    tracing::info!(tenant = %tenant_id, to = %n, "held message blocked at release: recipient opted out");
                    steps[i] = Some(Step::Finish(release(
                        h,
                        MessageStatus::Blocked,
                        now,
                        Some(ErrorCode::RecipientOptedOut.as_str().into()),
                    )));
                    continue;
                }
                match windows::for_recipient(&self.rules, &tenant, &n, ts(now)) {
                    Ok(Verdict::Open) => {}
                    Ok(Verdict::Closed { next_open }) => {
                        steps[i] =
                            Some(Step::Postpone(Claimed::from(h), next_open.as_millisecond()));
                        continue;
                    }
                    Err(_) => {
                        steps[i] = Some(Step::Finish(release(
                            h,
                            MessageStatus::Rejected,
                            now,
                            Some(ErrorCode::OutsideSendWindow.as_str().into()),
                        )));
                        continue;
                    }
                }
                if tenant.schedule.frequency_cap.is_some() {
                    capped.push((
                        i,
                        CapEntry {
                            number: n.as_str().to_string(),
                            key: h.cap_key.unwrap_or_else(rand::random),
                            at: now,
                        },
                    ));
                } else {
                    steps[i] = Some(Step::Send(Box::new(h.clone())));
                }
            }
            let Some(cap) = tenant.schedule.frequency_cap else {
                continue;
            };
            if capped.is_empty() {
                continue;
            }
            let entries: Vec<CapEntry> = capped.iter().map(|(_, e)| e.clone()).collect();
            let fits = self
                .store
                .cap_reserve(&tenant_id, cap, now, &entries)
                .await
                .map_err(|e| (e, claims.clone()))?;
            for ((i, e), fits) in capped.into_iter().zip(fits) {
                let mut h = claimed[i].clone();
                steps[i] = Some(if fits {
                    h.cap_key = Some(e.key);
                    Step::Send(Box::new(h))
                } else {
                    Step::Finish(release(
                        &h,
                        MessageStatus::Rejected,
                        now,
                        Some(ErrorCode::FrequencyCapped.as_str().into()),
                    ))
                });
            }
        }
        Ok(steps.into_iter().flatten().collect())
    }

    async fn send(&self, h: HeldMessage) -> (HeldMessage, SendOutcome) {
        let _permit = self.in_flight.acquire().await.expect("never closed");
        if let Some(l) = &self.limiter {
            l.until_ready().await;
        }
        // A pause begun while this one waited: not even asked.
        if let Some(left) = self.pause_left() {
            let due = self.clock.now() + left.as_millis() as i64;
            return (h, SendOutcome::Again(due));
        }
        let Ok(to) = PhoneNumber::parse(&h.record.to) else {
            let now = self.clock.now();
            let r = release(
                &h,
                MessageStatus::Failed,
                now,
                Some(ErrorCode::InvalidNumber.as_str().into()),
            );
            return (h, SendOutcome::Done(r));
        };
        let sms = OutboundSms {
            id: h.record.id.clone(),
            to,
            from: h.record.sender.clone(),
            body: h.body.clone(),
            encoding: h.record.encoding,
            category: h.record.category,
            messaging_service: h.messaging_service.clone(),
        };
        let outcome = self.provider.send(&sms).await;
        let now = self.clock.now();
        let out = match outcome {
            Ok(accepted) => {
                tracing::debug!(id = %sms.id, to = %sms.to, "held message released");
                let mut r = release(&h, MessageStatus::Sent, now, None);
                r.provider = Some(self.provider.name().to_string());
                r.provider_id = Some(accepted.provider_id);
                SendOutcome::Done(r)
            }
            Err(ProviderError::RateLimited { retry_after }) => {
                let d = retry_after.unwrap_or(Duration::from_secs(1));
                self.pause(d);
                SendOutcome::Again(now + d.min(MAX_PAUSE).as_millis() as i64)
            }
            Err(ProviderError::CircuitOpen { retry_after }) => {
                self.pause(retry_after);
                SendOutcome::Again(now + retry_after.min(MAX_PAUSE).as_millis() as i64)
            }
            Err(ProviderError::Unavailable(e)) => {
                tracing::warn!(id = %sms.id, error = %e, "held message not taken by the provider: tried again later");
                SendOutcome::Again(now + RETRY_UNAVAILABLE.as_millis() as i64)
            }
            Err(e) => {
                tracing::warn!(id = %sms.id, to = %sms.to, error = %e, "held message failed at release");
                let f = upstream_failure(&e);
                let mut r = release(&h, MessageStatus::Failed, now, Some(f.code.as_str().into()));
                // The provider refused it: it was asked.
                if matches!(e, ProviderError::Rejected { .. }) {
                    r.provider = Some(self.provider.name().to_string());
                }
                SendOutcome::Done(r)
            }
        };
        (h, out)
    }

    /// Cancels one of `tenant`'s held messages: `canceled`, notified, and
    /// its frequency-cap entry given back.
    pub async fn cancel(&self, tenant: &Tenant, id: &MessageId) -> Result<Cancel, StoreError> {
        let notify = |r: &MessageRecord| for_message(Some(tenant), r);
        let outcome = self
            .store
            .cancel_held(&tenant.id, id, self.clock.now(), &notify)
            .await?;
        if let Cancel::Canceled { held, .. } = &outcome {
            self.store.durable().await?;
            self.outbox.wake();
            if let Some(k) = held.cap_key {
                let entry = [(held.record.to.clone(), k)];
                if let Err(e) = self.store.cap_forget(&tenant.id, &entry).await {
                    tracing::warn!(error = %e, "frequency cap entry not given back");
                }
            }
            metrics::counter!("stopgate_held_released_total", "status" => "canceled").increment(1);
        }
        Ok(outcome)
    }
}

/// Released marketing sends with a short-code footer, per tenant and
/// campaign: noted for the attribution of STOP replies.
type Noted = BTreeMap<(TenantId, Option<Campaign>), Vec<(PhoneNumber, ShortCode)>>;

enum SendOutcome {
    Done(Release),
    /// Not asked (or refused for now): due again then.
    Again(UnixMillis),
}

fn release(
    h: &HeldMessage,
    status: MessageStatus,
    at: UnixMillis,
    error: Option<String>,
) -> Release {
    Release {
        claim: Claimed::from(h),
        change: StatusChange { status, at, error },
        provider: None,
        provider_id: None,
    }
}

fn ts(ms: UnixMillis) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}
