//! The send pipeline's part of scheduling (DESIGN.md §3 "Send windows"):
//!
//! 1. [`plan`], once suppressions are checked: when each recipient may get
//!    the message ([`crate::schedule::when`]: send windows for marketing,
//!    `send_at`), refusing marketing outside its window in reject mode;
//!    then the tenant's frequency cap, which counts each marketing message
//!    at the instant it will go (now, or its release) and refuses the ones
//!    over it, in one store call per request.
//! 2. [`Timing::hold`], once footers are in: the recipients due later are
//!    held (final body, footer and link included, with their `scheduled`
//!    records), durably, before the answer says `scheduled`.
//! 3. [`Timing::settle`], once the provider answered: cap entries of
//!    messages that did not go (failed, store errors) are given back.
//!
//! The releaser ([`crate::schedule`]) sends held messages when they are due.

use rand::Rng;

use super::{
    store_failed, unsent, ErrorCode, OptOut, Outbound, RecipientResult, SendRequest, Slot,
};
use crate::domain::{MessageStatus, UnixMillis};
use crate::rules::windows;
use crate::schedule::when::{decide, When};
use crate::store::{CapEntry, HeldMessage};

/// What [`plan`] decided, per slot of the request.
pub(super) struct Timing {
    now: UnixMillis,
    /// Held until then.
    due: Vec<Option<UnixMillis>>,
    /// Its entry in the frequency cap's ledger.
    cap: Vec<Option<u64>>,
}

/// Decides when each parsed recipient goes, and applies the frequency cap.
pub(super) async fn plan(out: &Outbound, req: &SendRequest, slots: &mut [Slot]) -> Timing {
    let now = out.clock.now();
    let mut t = Timing {
        now,
        due: vec![None; slots.len()],
        cap: vec![None; slots.len()],
    };
    let policy = req.tenant.schedule;
    for (i, slot) in slots.iter_mut().enumerate() {
        let Slot::Parsed(n) = slot else { continue };
        let when = decide(req.category, policy.quiet_hours, req.send_at, now, |at| {
            windows::for_recipient(&out.rules, &req.tenant, n, at)
        });
        match when {
            When::Now => {}
            When::Hold(at) => t.due[i] = Some(at),
            When::Refuse { next_open, why } => {
                tracing::info!(tenant = %req.tenant.id, to = %n, "rejected: outside the send window");
                let mut r = unsent(
                    req,
                    n.as_str().into(),
                    MessageStatus::Rejected,
                    Some(n.country()),
                    ErrorCode::OutsideSendWindow,
                    why,
                );
                r.deliver_after = next_open;
                *slot = Slot::Done(r);
            }
        }
    }
    let Some(cap) = policy.frequency_cap.filter(|_| req.category.is_marketing()) else {
        return t;
    };
    let wanted: Vec<(usize, CapEntry)> = {
        let mut rng = rand::rng();
        slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Parsed(n) => Some((
                    i,
                    CapEntry {
                        number: n.as_str().to_string(),
                        key: rng.random(),
                        at: t.due[i].unwrap_or(now),
                    },
                )),
                _ => None,
            })
            .collect()
    };
    if wanted.is_empty() {
        return t;
    }
    let entries: Vec<CapEntry> = wanted.iter().map(|(_, e)| e.clone()).collect();
    match out
        .store
        .cap_reserve(&req.tenant.id, cap, now, &entries)
        .await
    {
        Ok(fits) => {
            for ((i, e), fits) in wanted.into_iter().zip(fits) {
                let Slot::Parsed(n) = &slots[i] else { continue };
                if fits {
                    t.cap[i] = Some(e.key);
                } else {
                    tracing::info!(tenant = %req.tenant.id, to = %n, "rejected: frequency cap");
                    slots[i] = Slot::Done(unsent(
                        req,
                        n.as_str().into(),
                        MessageStatus::Rejected,
                        Some(n.country()),
                        ErrorCode::FrequencyCapped,
                        format!(
                            "this recipient already has {} marketing messages from this sender within {} hours",
                            cap.max,
                            cap.per_ms / 3_600_000
                        ),
                    ));
                }
            }
        }
        Err(e) => {
            // A cap is a legal limit: marketing fails closed, like suppressions.
            tracing::warn!(error = %e, "frequency cap unreadable: marketing not forwarded");
            for (i, _) in wanted {
                if let Slot::Parsed(n) = &slots[i] {
                    let n = n.clone();
                    slots[i] = Slot::Done(store_failed(req, &n));
                }
            }
        }
    }
    t
}

impl Timing {
    /// Holds the ready recipients due later: written with their records,
    /// durable, then answered `scheduled`.
    pub(super) async fn hold(&self, out: &Outbound, req: &SendRequest, slots: &mut [Slot]) {
        let mut held = Vec::new();
        let mut which = Vec::new();
        for (i, slot) in slots.iter().enumerate() {
            let (Some(due), Slot::Ready(r)) = (self.due[i], slot) else {
                continue;
            };
            let mut result = r.result.clone();
            result.status = MessageStatus::Scheduled;
            result.forwarded = false;
            result.deliver_after = Some(due);
            held.push(HeldMessage {
                record: out.record(req, &result, self.now),
                body: r.sms.body.clone(),
                messaging_service: r.sms.messaging_service.clone(),
                shortcode: match &result.optout {
                    Some(OptOut::ShortCode(c)) => Some(c.clone()),
                    _ => None,
                },
                cap_key: self.cap[i],
                due,
                lease_until: 0,
                begun: false,
            });
            which.push((i, result));
        }
        if held.is_empty() {
            return;
        }
        let notes: Vec<_> = held
            .iter()
            .flat_map(|h| crate::outbox::for_message(Some(&req.tenant), &h.record))
            .collect();
        let written = match out.store.hold(&held, &notes).await {
            Ok(()) => out.store.durable().await,
            Err(e) => Err(e),
        };
        match written {
            Ok(()) => {
                if !notes.is_empty() {
                    out.outbox.wake();
                }
                for (i, result) in which {
                    slots[i] = Slot::Done(result);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, count = held.len(), "messages not held: store write failed");
                for (i, result) in which {
                    if let Ok(n) = crate::domain::PhoneNumber::parse(&result.to) {
                        slots[i] = Slot::Done(store_failed(req, &n));
                    }
                }
            }
        }
    }

    /// Gives back the cap entries of messages that neither went nor wait.
    pub(super) async fn settle(
        &self,
        out: &Outbound,
        req: &SendRequest,
        results: &[RecipientResult],
    ) {
        let unsent: Vec<(String, u64)> = results
            .iter()
            .zip(&self.cap)
            .filter_map(|(r, key)| {
                let counted = matches!(r.status, MessageStatus::Sent | MessageStatus::Scheduled);
                key.filter(|_| !counted).map(|k| (r.to.clone(), k))
            })
            .collect();
        if unsent.is_empty() {
            return;
        }
        if let Err(e) = out.store.cap_forget(&req.tenant.id, &unsent).await {
            // Errs on the strict side: the recipient gets fewer, never more.
            tracing::warn!(error = %e, count = unsent.len(), "frequency cap entries not given back");
        }
    }
}
