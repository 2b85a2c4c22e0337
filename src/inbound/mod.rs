//! Replies from recipients (MO messages): what they mean and what to do.
//!
//! [`Inbound::handle_mo`] is the one entry point for every webhook shape (the native
//! `/v1/inbound`, and provider-shaped ones): classify the text with the
//! keyword lists of the sender's country, attribute it to tenants, record
//! each change as an audit event with the tenants' webhook notifications,
//! queue one confirmation from the short code in the outbox, and make it all
//! durable before the answer. A confirmation the provider refuses never
//! undoes an opt-out.

pub mod attribution;
pub mod keywords;
pub mod signature;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::domain::{
    now_millis, Action, ConsentAction, ConsentEvent, Country, Event, Notification, PhoneError,
    PhoneNumber, RequestVia, ShortCode, Source, Tenant, TenantId,
};
use crate::outbox::{for_subscription, Signal};
use crate::rules::RuleSet;
use crate::store::{idempotency, Once, PossibleOptOut, Replay, Store, StoreError};
use attribution::Attribution;
use keywords::{Intent, Scope};

/// Longest reply text kept in an audit event or a possible opt-out.
const MAX_KEPT_TEXT: usize = 1600;

/// What a reply did, as the webhook answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoAction {
    OptedOut,
    OptedIn,
    Help,
    /// A yes to a double opt-in request: consent recorded.
    Consented,
    None,
}

impl MoAction {
    pub fn as_str(self) -> &'static str {
        match self {
            MoAction::OptedOut => "opted_out",
            MoAction::OptedIn => "opted_in",
            MoAction::Help => "help",
            MoAction::Consented => "consented",
            MoAction::None => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub action: MoAction,
    /// The tenants concerned (opted out, re-subscribed, or helped).
    pub tenants: Vec<TenantId>,
    /// The confirmation or help text for the recipient, if any.
    pub reply: Option<String>,
}

/// Who delivers the confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyVia {
    /// We send it through the upstream provider, from the short code.
    Upstream,
    /// The webhook's caller does (Twilio sends a TwiML `<Message>` itself).
    Caller,
}

#[derive(Debug, thiserror::Error)]
pub enum MoError {
    #[error("from: {0}")]
    InvalidNumber(PhoneError),
    #[error("to: {0:?} is not a short code served here")]
    UnknownShortCode(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The sender as providers write it: E.164 (`+33612345678`), or the same
/// digits without the `+` (`33612345678`, how several providers send MSISDNs).
pub fn parse_sender(from: &str) -> Result<PhoneNumber, PhoneError> {
    let t = from.trim();
    if !t.is_empty() && !t.starts_with('0') && t.bytes().all(|b| b.is_ascii_digit()) {
        PhoneNumber::parse(&format!("+{t}"))
    } else {
        PhoneNumber::parse(t)
    }
}

/// The inbound service: everything a reply needs, built once by the app.
pub struct Inbound {
    pub store: Arc<dyn Store>,
    pub rules: Arc<RuleSet>,
    pub tenants: Arc<[Arc<Tenant>]>,
    /// Shared short codes by country.
    pub shortcodes: BTreeMap<Country, ShortCode>,
    /// A STOP on a shared code goes to the tenants that sent marketing to
    /// the number through it within this long.
    pub attribution_window: Duration,
    /// Wakes the outbox dispatcher for a confirmation or a webhook.
    pub outbox: Signal,
}

impl Inbound {
    /// Events, each with its notification to the tenant's webhook.
    fn with_notifications(&self, events: Vec<Event>) -> Vec<(Event, Vec<Notification>)> {
        events
            .into_iter()
            .map(|e| {
                let tenant = self.tenants.iter().find(|t| t.id == e.tenant);
                let notes = for_subscription(tenant.map(|t| t.as_ref()), &e);
                (e, notes)
            })
            .collect()
    }

    /// Handles one reply `text` from `from` to short code `to`. Returns once
    /// every change is on disk, with the confirmation in the outbox
    /// (`ReplyVia::Upstream`), or in the outcome for the caller to send
    /// (`ReplyVia::Caller`).
    pub async fn handle_mo(
        &self,
        from: &str,
        to: &str,
        text: &str,
        via: ReplyVia,
    ) -> Result<Outcome, MoError> {
        let read = self.read(from, to, text)?;
        Ok(self.act(read, text, via, None).await?.done()?)
    }

    /// [`Inbound::handle_mo`] under a webhook's replay record: done only if
    /// `replay` is new (else [`Once::Seen`], and nothing is done), with
    /// `answer`'s answer kept in the record. A STOP's or START's record goes
    /// in its events' write where the store can (`Store::record_once`);
    /// every other reply's work runs once its record was begun.
    pub async fn handle_mo_once(
        &self,
        from: &str,
        to: &str,
        text: &str,
        via: ReplyVia,
        replay: &Replay,
        answer: MoAnswer<'_>,
    ) -> Result<Once<Outcome>, MoError> {
        let read = self.read(from, to, text)?;
        if matches!(read.intent, Intent::OptOut(_) | Intent::OptIn(_)) {
            return self.act(read, text, via, Some((replay, answer))).await;
        }
        idempotency::once(self.store.as_ref(), replay, || async {
            let outcome = self.act(read, text, via, None).await?.done()?;
            let kept = answer(outcome.action, &outcome.tenants);
            Ok((outcome, kept))
        })
        .await
    }

    /// Who wrote, to which code, the tenants on it, and what the text
    /// means. No I/O.
    fn read(&self, from: &str, to: &str, text: &str) -> Result<Read, MoError> {
        let number = parse_sender(from).map_err(MoError::InvalidNumber)?;
        let unknown = || MoError::UnknownShortCode(to.chars().take(20).collect());
        let code = ShortCode::parse(to.trim().trim_start_matches('+')).map_err(|_| unknown())?;
        let on_code = attribution::tenants_on_code(&code, &self.tenants, &self.shortcodes);
        if on_code.is_empty() {
            return Err(unknown());
        }
        let rules = self.rules.for_country(number.country());
        let tenant_keywords: BTreeSet<String> =
            on_code.iter().filter_map(|t| t.keyword.clone()).collect();
        let intent = keywords::classify(text, &rules.keywords, &tenant_keywords);
        Ok(Read {
            number,
            code,
            on_code,
            intent,
        })
    }

    /// What a reply does. With a replay record (a STOP or START only: see
    /// [`Inbound::handle_mo_once`]), the record goes in the events' write
    /// and a reply seen before does nothing.
    async fn act(
        &self,
        read: Read,
        text: &str,
        via: ReplyVia,
        once: Option<(&Replay, MoAnswer<'_>)>,
    ) -> Result<Once<Outcome>, MoError> {
        let Read {
            number,
            code,
            on_code,
            intent,
        } = read;
        let rules = self.rules.for_country(number.country());
        let store = self.store.as_ref();
        let kept_text: String = text.chars().take(MAX_KEPT_TEXT).collect();

        // A STOP or START leaves its events to record with its confirmation.
        let (action, attr, template, to_record, mut changed) = match &intent {
            Intent::OptOut(scope) => {
                // One read: who sent marketing through the code (the window
                // attributes a shared code's STOP) and in which campaign (the
                // opt-out is credited to the last, however old).
                let sends = store.marketing_sends(&number, &code).await?;
                let recent: Vec<TenantId> = if attribution::stop_needs_senders(scope, &on_code) {
                    let since = now_millis() - self.attribution_window.as_millis() as i64;
                    sends
                        .iter()
                        .filter(|(_, s)| s.at >= since)
                        .map(|(t, _)| t.clone())
                        .collect()
                } else {
                    Vec::new()
                };
                let attr = attribution::attribute_stop(scope, &on_code, &recent);
                let mut events = Vec::with_capacity(attr.tenants.len());
                for t in &attr.tenants {
                    let campaign = sends
                        .iter()
                        .find(|(id, _)| *id == t.id)
                        .and_then(|(_, s)| s.campaign.clone());
                    let mut event = Event::new(t.id.clone(), &number, Action::OptOut, Source::Sms);
                    event.campaign = campaign;
                    event.text = Some(kept_text.clone());
                    events.push(event);
                }
                let template = if matches!(scope, Scope::All) {
                    &rules.replies.stopall
                } else {
                    &rules.replies.stop
                };
                (
                    MoAction::OptedOut,
                    attr,
                    Some(template),
                    Some(events),
                    false,
                )
            }
            Intent::OptIn(keyword) => {
                let mut opted_out_by = Vec::new();
                for t in &on_code {
                    if let Some(s) = store.suppression(&t.id, &number).await? {
                        if s.suppressed {
                            opted_out_by.push((t.id.clone(), s.source));
                        }
                    }
                }
                let attr =
                    attribution::attribute_start(keyword.as_deref(), &on_code, &opted_out_by);
                let events: Vec<Event> = attr
                    .tenants
                    .iter()
                    .map(|t| {
                        let mut event =
                            Event::new(t.id.clone(), &number, Action::OptIn, Source::Sms);
                        event.text = Some(kept_text.clone());
                        event
                    })
                    .collect();
                let template = Some(&rules.replies.start);
                (MoAction::OptedIn, attr, template, Some(events), false)
            }
            Intent::Help(keyword) => {
                let attr = attribution::attribute_help(keyword.as_deref(), &on_code);
                // Always answered, changing nothing: never capped.
                (MoAction::Help, attr, Some(&rules.replies.help), None, true)
            }
            Intent::Yes(keyword) => {
                let (attr, changed) = self
                    .consent_answer(&number, &code, &on_code, keyword.as_deref(), &kept_text)
                    .await?;
                if changed {
                    let template = Some(&rules.consent.confirmed);
                    (MoAction::Consented, attr, template, None, true)
                } else {
                    (MoAction::None, Attribution::none(), None, None, false)
                }
            }
            Intent::PossibleOptOut => {
                store
                    .note_possible_optout(&PossibleOptOut {
                        at: now_millis(),
                        number: number.clone(),
                        shortcode: code.clone(),
                        tenants: on_code.iter().map(|t| t.id.clone()).collect(),
                        text: kept_text,
                    })
                    .await?;
                (MoAction::None, Attribution::none(), None, None, false)
            }
            Intent::None => (MoAction::None, Attribution::none(), None, None, false),
        };
        let mut reply = template
            .filter(|_| !attr.tenants.is_empty())
            .map(|t| render_reply(t, &attr.tenants, &code));
        // The confirmation goes to the outbox before the answer, so that a
        // crash after the answer still sends it; Twilio's caller sends its own.
        let upstream = |body: &String| match via {
            ReplyVia::Upstream => Some(Notification::Reply {
                to: number.clone(),
                from: code.clone(),
                body: body.clone(),
            }),
            ReplyVia::Caller => None,
        };
        let mut queued = false;
        let mut kept = Vec::new();
        debug_assert!(
            once.is_none() || to_record.is_some(),
            "a replay record unused"
        );
        if let Some(events) = to_record {
            let changes = self.with_notifications(events);
            // A change is always confirmed. A STOP or START that changes
            // nothing (the number was already in that state) is confirmed
            // again at most once per 24 h per number and short code, so two
            // auto-responders answering each other cannot run up a bill.
            // The cap, the events, the confirmation and the webhook's
            // replay record are one write where the store can.
            let confirm = reply.as_ref().map(|body| {
                let cap = format!("confirm:{}:{}", number.as_str(), code);
                (cap, upstream(body))
            });
            let confirm = confirm
                .as_ref()
                .map(|(cap, note)| (cap.as_str(), note.as_ref()));
            let (flags, confirmed) = match once {
                Some((replay, answer)) => {
                    kept = answer(action, &attr.ids());
                    let recorded = store
                        .record_once(&changes, confirm, replay, kept.clone())
                        .await?;
                    match recorded {
                        Once::Done { value, .. } => value,
                        Once::Seen(seen) => return Ok(Once::Seen(seen)),
                    }
                }
                None => match confirm {
                    Some((cap, note)) => store.record_confirming(&changes, cap, note).await?,
                    None => (store.record_notifying(&changes).await?, false),
                },
            };
            changed = flags.contains(&true);
            if reply.is_some() && !confirmed {
                metrics::counter!("stopgate_inbound_replies_total", "status" => "capped")
                    .increment(1);
                tracing::info!(from = %number, to = %code, "repeat confirmed within 24 h: not confirmed again");
                reply = None;
            }
            queued = reply.is_some() && via == ReplyVia::Upstream;
        } else if let Some(note) = reply.as_ref().and_then(upstream) {
            store.enqueue(&[note]).await?;
            queued = true;
        }
        if queued {
            metrics::counter!("stopgate_inbound_replies_total", "status" => "queued").increment(1);
        }
        // Always, even when nothing changed: a repeat of a STOP whose first
        // attempt crashed before its flush must not be acknowledged from memory.
        if queued
            || matches!(
                intent,
                Intent::OptOut(_) | Intent::OptIn(_) | Intent::Yes(_) | Intent::PossibleOptOut
            )
        {
            store.durable().await?;
        }
        if queued || changed {
            self.outbox.wake();
        }
        metrics::counter!("stopgate_inbound_total", "action" => action.as_str()).increment(1);
        tracing::info!(
            from = %number,
            to = %code,
            action = action.as_str(),
            tenants = ?attr.ids().iter().map(TenantId::as_str).collect::<Vec<_>>(),
            rule = if attr.tenants.is_empty() { "-" } else { attr.rule.as_str() },
            possible_optout = intent == Intent::PossibleOptOut,
            "inbound reply handled"
        );
        Ok(Once::Done {
            value: Outcome {
                action,
                tenants: attr.ids(),
                reply,
            },
            answer: kept,
        })
    }
}

/// The answer a webhook keeps for a reply, from what it did (the action
/// and the tenants): made before the reply's write, so that its replay
/// record can go in that write.
pub type MoAnswer<'a> = &'a (dyn Fn(MoAction, &[TenantId]) -> Vec<u8> + Send + Sync);

/// A reply as [`Inbound::handle_mo`] reads it, before it does anything.
struct Read {
    number: PhoneNumber,
    code: ShortCode,
    on_code: Vec<Arc<Tenant>>,
    intent: Intent,
}

/// Fills a reply template from the rules: `{tenants}` (or `{tenant}`, in
/// the double opt-in texts) is the tenants' names, `{shortcode}` the code.
/// Pure.
pub fn render_reply(template: &str, tenants: &[Arc<Tenant>], code: &ShortCode) -> String {
    let names: Vec<&str> = tenants.iter().map(|t| t.name.as_str()).collect();
    template
        .replace("{tenants}", &names.join(", "))
        .replace("{tenant}", &names.join(", "))
        .replace("{shortcode}", code.as_str())
}

impl Inbound {
    /// A yes keyword answers the open double opt-in requests sent to the
    /// number through this short code (for the tenant named, with `OUI
    /// ACME`): each becomes a consent given by SMS with the reply as its
    /// proof. Returns the tenants whose consent was recorded.
    async fn consent_answer(
        &self,
        number: &PhoneNumber,
        code: &ShortCode,
        on_code: &[Arc<Tenant>],
        keyword: Option<&str>,
        text: &str,
    ) -> Result<(Attribution, bool), StoreError> {
        let now = now_millis();
        let via = RequestVia::Sms {
            shortcode: code.clone(),
        };
        let mut events = Vec::new();
        let mut asked = Vec::new();
        for t in on_code {
            if keyword.is_some_and(|k| t.keyword.as_deref() != Some(k)) {
                continue;
            }
            for (list, state) in self.store.consents(&t.id, number).await? {
                let Some(r) = state.request.as_ref().filter(|r| r.open_at(now)) else {
                    continue;
                };
                if r.via != via {
                    continue;
                }
                let mut e = ConsentEvent::new(
                    t.id.clone(),
                    number,
                    list,
                    ConsentAction::Given,
                    Source::Sms,
                    now,
                );
                e.proof = Some(format!("SMS reply {text:?} to {code}"));
                e.via = Some(via.clone());
                events.push((e, Vec::new()));
                asked.push(t.clone());
            }
        }
        if events.is_empty() {
            return Ok((Attribution::none(), false));
        }
        let outcomes = self.store.record_consents(&events).await?;
        let mut tenants: Vec<Arc<Tenant>> = Vec::new();
        for (t, outcome) in asked.into_iter().zip(outcomes) {
            if outcome == Ok(true) && !tenants.iter().any(|x| x.id == t.id) {
                tenants.push(t);
            }
        }
        let changed = !tenants.is_empty();
        Ok((
            Attribution {
                tenants,
                rule: attribution::Rule::OpenRequest,
            },
            changed,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_may_omit_the_plus() {
        assert_eq!(
            parse_sender("33612345678").unwrap().as_str(),
            "+33612345678"
        );
        assert_eq!(
            parse_sender(" +33612345678 ").unwrap().as_str(),
            "+33612345678"
        );
        assert_eq!(
            parse_sender("0612345678"),
            Err(PhoneError::NotInternational)
        );
        assert!(parse_sender("").is_err());
        assert!(parse_sender("ACME").is_err());
    }
}
