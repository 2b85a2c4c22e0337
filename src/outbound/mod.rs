//! The send pipeline: for each recipient, normalize the number, and for
//! marketing check the suppression list and add the country's opt-out
//! footer; make minted links durable; then forward to the provider.
//!
//! Order matters: a link is on disk before any message carrying it leaves,
//! so a recipient never gets a link that a crash could forget.

pub mod footer;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;

use crate::domain::segments::{analyze, Encoding};
use crate::domain::{
    now_millis, Campaign, Category, Country, MessageId, PhoneNumber, Sender, ShortCode, Tenant,
};
use crate::links;
use crate::rules::RuleSet;
use crate::store::{Store, StoreError};
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Sent,
    /// Marketing to an opted-out recipient: not forwarded.
    Blocked,
    /// Refused before sending (bad or duplicate number).
    Rejected,
    /// The provider did not take it.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Blocked => "blocked",
            Status::Rejected => "rejected",
            Status::Failed => "failed",
        }
    }
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
    pub status: Status,
    pub id: Option<MessageId>,
    pub country: Option<Country>,
    /// The body as sent (or as it would have been).
    pub body: String,
    pub encoding: Encoding,
    pub segments: usize,
    pub optout: Option<OptOut>,
    pub provider_id: Option<String>,
    pub error: Option<Failure>,
}

/// A recipient that passed every check and waits to be forwarded.
struct Ready {
    result: RecipientResult,
    sms: OutboundSms,
}

impl Outbound {
    /// Sends one request. Only a storage failure fails the whole request;
    /// everything else is a per-recipient result.
    pub async fn send(&self, req: &SendRequest) -> Result<Vec<RecipientResult>, StoreError> {
        let mut seen = HashSet::new();
        let mut needs_commit = false;
        let mut planned: Vec<Result<Ready, RecipientResult>> = Vec::with_capacity(req.to.len());
        for raw in &req.to {
            planned.push(self.plan(req, raw, &mut seen, &mut needs_commit)?);
        }
        if needs_commit {
            self.store.durable().await?;
        }
        let results = futures::stream::iter(planned)
            .map(|p| async move {
                match p {
                    Ok(ready) => self.forward(ready).await,
                    Err(done) => done,
                }
            })
            .buffered(self.concurrency)
            .collect::<Vec<_>>()
            .await;
        let sent_marketing = results.iter().filter(|r| r.status == Status::Sent).count() as u64;
        if req.category.is_marketing() && sent_marketing > 0 {
            let campaign = req.campaign.as_ref().map(Campaign::as_str);
            if let Err(e) =
                self.store
                    .count_marketing_sent(&req.tenant.id, campaign, sent_marketing)
            {
                // Insights are best effort; the messages are already sent.
                tracing::warn!(error = %e, "could not count sent marketing");
            }
        }
        for r in &results {
            metrics::counter!("stopgate_messages_total", "category" => req.category.as_str(), "status" => r.status.as_str())
                .increment(1);
        }
        Ok(results)
    }

    fn plan(
        &self,
        req: &SendRequest,
        raw: &str,
        seen: &mut HashSet<String>,
        needs_commit: &mut bool,
    ) -> Result<Result<Ready, RecipientResult>, StoreError> {
        let unsent = |to: String, status, country, code: ErrorCode, message: String| {
            let info = analyze(&req.body);
            RecipientResult {
                to,
                status,
                id: None,
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
            }
        };
        let number = match PhoneNumber::parse(raw) {
            Ok(n) => n,
            Err(e) => {
                return Ok(Err(unsent(
                    raw.to_string(),
                    Status::Rejected,
                    None,
                    ErrorCode::InvalidNumber,
                    e.to_string(),
                )));
            }
        };
        let country = Some(number.country());
        if !seen.insert(number.as_str().to_string()) {
            let msg = "the same number appears earlier in this request".to_string();
            return Ok(Err(unsent(
                number.as_str().into(),
                Status::Rejected,
                country,
                ErrorCode::DuplicateRecipient,
                msg,
            )));
        }

        let tenant = &req.tenant;
        let mut body = req.body.clone();
        let mut optout = None;
        if req.category.is_marketing() {
            if self.store.is_suppressed(&tenant.id, number.as_str())? {
                tracing::info!(tenant = %tenant.id, to = %number, "blocked: recipient opted out");
                let msg = "the recipient opted out of this sender's marketing".to_string();
                return Ok(Err(unsent(
                    number.as_str().into(),
                    Status::Blocked,
                    country,
                    ErrorCode::RecipientOptedOut,
                    msg,
                )));
            }
            let rules = self.rules.for_country(number.country());
            let shortcode = tenant
                .shortcodes
                .get(&number.country())
                .or_else(|| self.shortcodes.get(&number.country()));
            let text = match footer::plan(rules, tenant, shortcode) {
                FooterPlan::ShortCode {
                    shortcode,
                    template,
                } => {
                    self.store.note_marketing_send(
                        number.as_str(),
                        shortcode.as_str(),
                        &tenant.id,
                        now_millis(),
                        req.campaign.as_ref().map(Campaign::as_str),
                    )?;
                    let text =
                        footer::render(&template, Some(shortcode.as_str()), None, &tenant.name);
                    optout = Some(OptOut::ShortCode(shortcode));
                    text
                }
                FooterPlan::Link { template } => {
                    let (url, _minted) = links::link_for(
                        self.store.as_ref(),
                        &self.public_base_url,
                        tenant,
                        &number,
                        req.campaign.as_ref(),
                    )?;
                    // Even an existing link may have been minted by a concurrent
                    // request whose flush has not finished yet.
                    *needs_commit = true;
                    let text = footer::render(&template, None, Some(&url), &tenant.name);
                    optout = Some(OptOut::Url(url));
                    text
                }
            };
            body = footer::append(&body, &text);
        }
        let info = analyze(&body);
        let id = MessageId::generate();
        Ok(Ok(Ready {
            result: RecipientResult {
                to: number.as_str().to_string(),
                status: Status::Sent,
                id: Some(id.clone()),
                country,
                body: body.clone(),
                encoding: info.encoding,
                segments: info.segments,
                optout,
                provider_id: None,
                error: None,
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
        }))
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
                result.status = Status::Failed;
                result.error = Some(upstream_failure(&e));
            }
        }
        result
    }
}

fn upstream_failure(e: &ProviderError) -> Failure {
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
