//! The send pipeline: for each recipient, normalize the number, and for
//! marketing check the suppression list (and, for a consent-only tenant,
//! the consents: `consent.rs`) and add the country's opt-out footer; make
//! minted links durable; then forward to the provider.
//!
//! Order matters: a link is on disk before any message carrying it leaves,
//! so a recipient never gets a link that a crash could forget.
//!
//! When a message may go (send windows, `send_at`) and how much marketing a
//! recipient may get (frequency cap) is `schedule.rs`: it plans each
//! recipient once suppressions are checked, and holds the ones due later
//! once their footers are in.

mod consent;
pub mod footer;
mod schedule;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;

use crate::domain::segments::{analyze, Encoding};
use crate::domain::{
    now_millis, Campaign, Category, ConsentList, Country, MessageId, MessageStatus, PhoneNumber,
    Sender, ShortCode, Tenant, UnixMillis,
};
use crate::links;
use crate::rules::RuleSet;
use crate::store::{Callback, MessageRecord, StatusChange, Store};
use crate::upstream::{OutboundSms, Provider, ProviderError};
use footer::FooterPlan;

/// Everything the pipeline needs, built once at startup.
pub struct Outbound {
    pub store: Arc<dyn Store>,
    pub provider: Arc<dyn Provider>,
    pub rules: Arc<RuleSet>,
    /// Shared short codes by country.
    pub shortcodes: BTreeMap<Country, ShortCode>,
    pub public_base_url: String,
    /// Messages in flight to the provider per request.
    pub concurrency: usize,
    /// Keep marketing bodies in the message records (`[messages] keep_body`).
    pub keep_body: bool,
    /// Wakes the outbox dispatcher when a record's status is to be told.
    pub outbox: crate::outbox::Signal,
    /// What time it is: send windows, `send_at`, frequency caps, records.
    pub clock: Arc<dyn crate::clock::Clock>,
}

/// A validated send request.
#[derive(Debug, Clone)]
pub struct SendRequest {
    pub tenant: Arc<Tenant>,
    /// Recipients as the client wrote them; each is parsed on its own.
    pub to: Vec<String>,
    pub from: Sender,
    pub body: String,
    pub category: Category,
    pub campaign: Option<Campaign>,
    /// A Twilio Messaging Service SID, from the Twilio-compatible front.
    pub messaging_service: Option<String>,
    /// Where this request's status changes go, besides the tenant's webhooks.
    pub callback: Option<Callback>,
    /// Not before this (`send_at`): marketing and transactional messages
    /// are held until then. Never set for OTPs (the API refuses it).
    pub send_at: Option<UnixMillis>,
    /// The consent list marketing is checked against, for a tenant with
    /// `marketing_requires = "consent"`.
    pub list: ConsentList,
}

/// Per-recipient error codes, part of the API contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidNumber,
    DuplicateRecipient,
    RecipientOptedOut,
    /// The provider's answer was not understood.
    UpstreamError,
    /// The provider refused this message (bad number or sender, barred, ...).
    UpstreamRejected,
    /// The provider asked us to slow down; not sent.
    UpstreamRateLimited,
    /// The provider could not be reached, failed, or the circuit is open; not sent.
    UpstreamUnavailable,
    /// No answer in time: the message may or may not have been sent.
    UpstreamTimeout,
    /// Marketing not forwarded: the store (suppressions, links) cannot be
    /// reached, and marketing never goes out unchecked.
    StoreUnavailable,
    /// Marketing outside the recipient's send window, with the tenant's
    /// `quiet_hours = "reject"` (or a window that never opens in all of
    /// the recipient's time zones).
    OutsideSendWindow,
    /// Over the tenant's `frequency_cap` for this recipient.
    FrequencyCapped,
    /// A held message whose release was cut short (a crash) after it was
    /// handed to the provider: it may or may not have gone out, and is
    /// not sent again.
    ReleaseInterrupted,
    /// A consent-only tenant's marketing to a number without confirmed,
    /// unexpired consent for the list.
    NoConsent,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidNumber => "invalid_number",
            ErrorCode::DuplicateRecipient => "duplicate_recipient",
            ErrorCode::RecipientOptedOut => "recipient_opted_out",
            ErrorCode::UpstreamError => "upstream_error",
            ErrorCode::UpstreamRejected => "upstream_rejected",
            ErrorCode::UpstreamRateLimited => "upstream_rate_limited",
            ErrorCode::UpstreamUnavailable => "upstream_unavailable",
            ErrorCode::UpstreamTimeout => "upstream_timeout",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::OutsideSendWindow => "outside_send_window",
            ErrorCode::FrequencyCapped => "frequency_capped",
            ErrorCode::ReleaseInterrupted => "release_interrupted",
            ErrorCode::NoConsent => "no_consent",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
    /// The provider's own error code, when it gave one.
    pub provider_code: Option<String>,
    /// Seconds before trying again is worthwhile, when known.
    pub retry_after: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptOut {
    ShortCode(ShortCode),
    Url(String),
}

/// What happened to one recipient.
#[derive(Debug, Clone)]
pub struct RecipientResult {
    /// E.164 when the number parsed, else the input as given.
    pub to: String,
    pub status: MessageStatus,
    /// Every recipient has one, sent or not: its record's id.
    pub id: MessageId,
    /// Whether the provider was asked (it took it, or refused it).
    pub forwarded: bool,
    pub country: Option<Country>,
    /// The body as sent (or as it would have been).
    pub body: String,
    pub encoding: Encoding,
    pub segments: usize,
    pub optout: Option<OptOut>,
    pub provider_id: Option<String>,
    pub error: Option<Failure>,
    /// `scheduled`: when it is released. `outside_send_window`: when the
    /// window opens next, if it does.
    pub deliver_after: Option<UnixMillis>,
}

/// A recipient that passed every check and waits to be forwarded.
struct Ready {
    result: RecipientResult,
    sms: OutboundSms,
}

/// One recipient on its way through [`Outbound::send`].
enum Slot {
    /// Parsed, not yet checked.
    Parsed(PhoneNumber),
    /// Checked and footered.
    Ready(Ready),
    /// Not forwarded (rejected, blocked, failed): its result is final.
    Done(RecipientResult),
}

impl Outbound {
    /// Sends one request. Every outcome is a per-recipient result: when the
    /// store cannot be reached, marketing fails closed (`store_unavailable`,
    /// never forwarded unchecked), while OTP and transactional messages,
    /// which never depend on it, are forwarded as usual.
    pub async fn send(&self, req: &SendRequest) -> Vec<RecipientResult> {
        let mut seen = HashSet::new();
        let mut slots: Vec<Slot> = req
            .to
            .iter()
            .map(|raw| match PhoneNumber::parse(raw) {
                Err(e) => Slot::Done(unsent(
                    req,
                    raw.to_string(),
                    MessageStatus::Rejected,
                    None,
                    ErrorCode::InvalidNumber,
                    e.to_string(),
                )),
                Ok(n) if !seen.insert(n.as_str().to_string()) => Slot::Done(unsent(
                    req,
                    n.as_str().into(),
                    MessageStatus::Rejected,
                    Some(n.country()),
                    ErrorCode::DuplicateRecipient,
                    "the same number appears earlier in this request".into(),
                )),
                Ok(n) => Slot::Parsed(n),
            })
            .collect();
        if req.category.is_marketing() {
            self.check_suppressions(req, &mut slots).await;
            self.check_consent(req, &mut slots).await;
        }
        let timing = schedule::plan(self, req, &mut slots).await;
        if req.category.is_marketing() {
            self.add_footers(req, &mut slots).await;
        } else {
            for slot in &mut slots {
                if let Slot::Parsed(n) = slot {
                    let n = n.clone();
                    *slot = Slot::Ready(ready(req, n, req.body.clone(), None));
                }
            }
        }
        timing.hold(self, req, &mut slots).await;
        let results = futures::stream::iter(slots)
            .map(|slot| async move {
                match slot {
                    Slot::Ready(ready) => self.forward(ready).await,
                    Slot::Done(done) => done,
                    Slot::Parsed(_) => unreachable!("every parsed recipient is planned"),
                }
            })
            .buffered(self.concurrency)
            .collect::<Vec<_>>()
            .await;
        timing.settle(self, req, &results).await;
        self.keep_records(req, &results).await;
        let sent: Vec<&RecipientResult> = results
            .iter()
            .filter(|r| r.status == MessageStatus::Sent)
            .collect();
        if req.category.is_marketing() && !sent.is_empty() {
            let segments = sent.iter().map(|r| r.segments as u64).sum();
            if let Err(e) = self
                .store
                .count_marketing_sent(
                    &req.tenant.id,
                    req.campaign.as_ref(),
                    sent.len() as u64,
                    segments,
                )
                .await
            {
                // Insights are best effort; the messages are already sent.
                tracing::warn!(error = %e, "could not count sent marketing");
            }
        }
        let blocked = results
            .iter()
            .filter(|r| r.status == MessageStatus::Blocked)
            .count() as u64;
        if req.category.is_marketing() && blocked > 0 {
            if let Err(e) = self
                .store
                .count_marketing_blocked(&req.tenant.id, req.campaign.as_ref(), blocked)
                .await
            {
                tracing::warn!(error = %e, "could not count blocked marketing");
            }
        }
        for r in &results {
            metrics::counter!("stopgate_messages_total", "category" => req.category.as_str(), "status" => r.status.as_str())
                .increment(1);
        }
        results
    }

    /// One record per recipient, written in one batch once the provider has
    /// answered. No fsync of its own: records are made durable with the next
    /// group commit (or the store's periodic flush); what must survive a
    /// power loss before the answer (opt-outs, links) already has. Held
    /// messages are not among them: their records went with them.
    async fn keep_records(&self, req: &SendRequest, results: &[RecipientResult]) {
        let now = self.clock.now();
        let records: Vec<MessageRecord> = results
            .iter()
            .filter(|r| r.status != MessageStatus::Scheduled)
            .map(|r| self.record(req, r, now))
            .collect();
        let notifications: Vec<_> = records
            .iter()
            .flat_map(|r| crate::outbox::for_message(Some(&req.tenant), r))
            .collect();
        if let Err(e) = self.store.put_messages(&records, &notifications).await {
            // The messages went out; only their records are missing.
            metrics::counter!("stopgate_message_records_failed_total")
                .increment(records.len() as u64);
            tracing::error!(error = %e, count = records.len(), "message records not written");
        } else if !notifications.is_empty() {
            self.outbox.wake();
        }
    }

    /// The record of one recipient's result, as it stands at `now`.
    fn record(&self, req: &SendRequest, r: &RecipientResult, now: UnixMillis) -> MessageRecord {
        MessageRecord {
            id: r.id.clone(),
            tenant: req.tenant.id.clone(),
            to: r.to.chars().take(40).collect(),
            country: r.country,
            category: req.category,
            campaign: req.campaign.clone(),
            sender: req.from.as_str().to_string(),
            encoding: r.encoding,
            segments: r.segments,
            provider: r.forwarded.then(|| self.provider.name().to_string()),
            provider_id: r.provider_id.clone(),
            body: (self.keep_body && req.category.is_marketing()).then(|| r.body.clone()),
            callback: req.callback.clone(),
            deliver_after: r
                .deliver_after
                .filter(|_| r.status == MessageStatus::Scheduled),
            history: vec![StatusChange {
                status: r.status,
                at: now,
                error: r.error.as_ref().map(|e| e.code.as_str().to_string()),
            }],
        }
    }

    /// Blocks opted-out recipients: one look-up for the whole request.
    async fn check_suppressions(&self, req: &SendRequest, slots: &mut [Slot]) {
        let numbers: Vec<PhoneNumber> = slots
            .iter()
            .filter_map(|s| match s {
                Slot::Parsed(n) => Some(n.clone()),
                _ => None,
            })
            .collect();
        if numbers.is_empty() {
            return;
        }
        let tenant = &req.tenant;
        let verdicts = self.store.suppressed(&tenant.id, &numbers).await;
        let mut verdicts = match verdicts {
            Ok(v) => v.into_iter(),
            Err(e) => {
                tracing::warn!(error = %e, "suppressions unreadable: marketing not forwarded");
                fail_parsed(req, slots);
                return;
            }
        };
        for slot in slots {
            let Slot::Parsed(n) = slot else { continue };
            if verdicts.next() == Some(true) {
                tracing::info!(tenant = %tenant.id, to = %n, "blocked: recipient opted out");
                *slot = Slot::Done(unsent(
                    req,
                    n.as_str().into(),
                    MessageStatus::Blocked,
                    Some(n.country()),
                    ErrorCode::RecipientOptedOut,
                    "the recipient opted out of this sender's marketing".into(),
                ));
            }
        }
    }

    /// Appends each recipient's footer. Short-code sends are noted for the
    /// attribution of later STOPs (one write), and minted links are made
    /// durable (one flush) before anything carrying them is forwarded.
    async fn add_footers(&self, req: &SendRequest, slots: &mut [Slot]) {
        let tenant = &req.tenant;
        let plan = |number: &PhoneNumber| {
            let rules = self.rules.for_country(number.country());
            let shortcode = tenant
                .shortcodes
                .get(&number.country())
                .or_else(|| self.shortcodes.get(&number.country()));
            footer::plan(rules, tenant, shortcode)
        };
        // The request's links are asked for all at once, so a store that
        // batches writes (PostgreSQL) mints them in one transaction.
        let wanted: Vec<(usize, PhoneNumber)> = slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| match slot {
                Slot::Parsed(n) if matches!(plan(n), FooterPlan::Link { .. }) => {
                    Some((i, n.clone()))
                }
                _ => None,
            })
            .collect();
        let mints = futures::future::join_all(wanted.iter().map(|(_, number)| {
            links::link_for(
                self.store.as_ref(),
                &self.public_base_url,
                tenant,
                number,
                req.campaign.as_ref(),
            )
        }))
        .await;
        let mut minted: BTreeMap<usize, _> = wanted.iter().map(|(i, _)| *i).zip(mints).collect();
        let mut noted: Vec<(PhoneNumber, ShortCode)> = Vec::new();
        let mut links = false;
        for (i, slot) in slots.iter_mut().enumerate() {
            let Slot::Parsed(number) = slot else { continue };
            let number = number.clone();
            let (text, optout) = match plan(&number) {
                FooterPlan::ShortCode {
                    shortcode,
                    template,
                } => {
                    noted.push((number.clone(), shortcode.clone()));
                    let text =
                        footer::render(&template, Some(shortcode.as_str()), None, &tenant.name);
                    (text, OptOut::ShortCode(shortcode))
                }
                FooterPlan::Link { template } => {
                    let minted = minted.remove(&i).expect("minted above: same plan");
                    let url = match minted {
                        Ok((url, _)) => url,
                        Err(e) => {
                            tracing::warn!(error = %e, to = %number, "link not minted: not forwarded");
                            *slot = Slot::Done(store_failed(req, &number));
                            continue;
                        }
                    };
                    // Even an existing link may have been minted by a concurrent
                    // request whose flush has not finished yet.
                    links = true;
                    let text = footer::render(&template, None, Some(&url), &tenant.name);
                    (text, OptOut::Url(url))
                }
            };
            let body = footer::append(&req.body, &text);
            *slot = Slot::Ready(ready(req, number, body, Some(optout)));
        }
        let mut written = Ok(());
        if !noted.is_empty() {
            written = self
                .store
                .note_marketing_sends(&tenant.id, req.campaign.as_ref(), now_millis(), &noted)
                .await;
        }
        // The notes only help attribute a later STOP: not worth an fsync.
        if written.is_ok() && links {
            written = self.store.durable().await;
        }
        if let Err(e) = written {
            tracing::warn!(error = %e, "store write failed: marketing not forwarded");
            for slot in slots {
                if let Slot::Ready(r) = slot {
                    let number = r.sms.to.clone();
                    *slot = Slot::Done(store_failed(req, &number));
                }
            }
        }
    }

    async fn forward(&self, ready: Ready) -> RecipientResult {
        let Ready { mut result, sms } = ready;
        let started = Instant::now();
        let outcome = self.provider.send(&sms).await;
        metrics::histogram!("stopgate_upstream_seconds", "provider" => self.provider.name())
            .record(started.elapsed().as_secs_f64());
        match outcome {
            Ok(accepted) => {
                tracing::debug!(id = %sms.id, to = %sms.to, provider_id = %accepted.provider_id, "forwarded");
                result.provider_id = Some(accepted.provider_id);
            }
            Err(e) => {
                tracing::warn!(id = %sms.id, to = %sms.to, provider = self.provider.name(), error = %e, "upstream failed");
                result.status = MessageStatus::Failed;
                result.error = Some(upstream_failure(&e));
            }
        }
        result
    }
}

/// A recipient ready to forward with this final body.
fn ready(req: &SendRequest, number: PhoneNumber, body: String, optout: Option<OptOut>) -> Ready {
    let info = analyze(&body);
    let id = MessageId::generate();
    Ready {
        result: RecipientResult {
            to: number.as_str().to_string(),
            status: MessageStatus::Sent,
            id: id.clone(),
            forwarded: true,
            country: Some(number.country()),
            body: body.clone(),
            encoding: info.encoding,
            segments: info.segments,
            optout,
            provider_id: None,
            error: None,
            deliver_after: None,
        },
        sms: OutboundSms {
            id,
            to: number,
            from: req.from.as_str().to_string(),
            body,
            encoding: info.encoding,
            category: req.category,
            messaging_service: req.messaging_service.clone(),
        },
    }
}

/// The result of a recipient that is not forwarded.
fn unsent(
    req: &SendRequest,
    to: String,
    status: MessageStatus,
    country: Option<Country>,
    code: ErrorCode,
    message: String,
) -> RecipientResult {
    let info = analyze(&req.body);
    RecipientResult {
        to,
        status,
        id: MessageId::generate(),
        forwarded: false,
        country,
        body: req.body.clone(),
        encoding: info.encoding,
        segments: info.segments,
        optout: None,
        provider_id: None,
        error: Some(Failure {
            code,
            message,
            provider_code: None,
            retry_after: None,
        }),
        deliver_after: None,
    }
}

fn store_failed(req: &SendRequest, number: &PhoneNumber) -> RecipientResult {
    unsent(
        req,
        number.as_str().into(),
        MessageStatus::Failed,
        Some(number.country()),
        ErrorCode::StoreUnavailable,
        "stopgate cannot check this recipient's opt-out right now; not sent, retry later".into(),
    )
}

/// Fails every recipient not yet decided: the store could not be asked.
fn fail_parsed(req: &SendRequest, slots: &mut [Slot]) {
    for slot in slots {
        if let Slot::Parsed(n) = slot {
            let n = n.clone();
            *slot = Slot::Done(store_failed(req, &n));
        }
    }
}

/// A provider's refusal as a per-recipient failure (the releaser of held
/// messages records it the same way).
pub(crate) fn upstream_failure(e: &ProviderError) -> Failure {
    let secs = |d: &std::time::Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
    let (code, provider_code, retry_after) = match e {
        ProviderError::Rejected { code, .. } => {
            (ErrorCode::UpstreamRejected, Some(code.clone()), None)
        }
        ProviderError::RateLimited { retry_after } => (
            ErrorCode::UpstreamRateLimited,
            None,
            retry_after.as_ref().map(secs),
        ),
        ProviderError::Unavailable(_) => (ErrorCode::UpstreamUnavailable, None, None),
        ProviderError::CircuitOpen { retry_after } => (
            ErrorCode::UpstreamUnavailable,
            None,
            Some(secs(retry_after)),
        ),
        ProviderError::Timeout => (ErrorCode::UpstreamTimeout, None, None),
        ProviderError::Protocol(_) => (ErrorCode::UpstreamError, None, None),
    };
    let message = match e {
        ProviderError::Timeout => {
            "the provider did not answer in time; the message may or may not have been sent".into()
        }
        other => other.to_string(),
    };
    Failure {
        code,
        message,
        provider_code,
        retry_after,
    }
}
