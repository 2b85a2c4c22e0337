//! Consent to marketing: per tenant, number and list, whether the person said
//! yes, with the proof of it, beside (never instead of) the suppression
//! state. Pure: the transitions the stores apply under their locks, and the
//! decision the send pipeline makes.
//!
//! A record moves by events, appended to its history only when they change
//! it ([`apply`]):
//! - `requested`: a double opt-in request went out (by SMS from a short
//!   code, or with a confirmation link). It can be answered until it
//!   expires; a consent already given stays given meanwhile (a
//!   re-confirmation).
//! - `given`: through the API or an import (with a proof), or as the answer
//!   to an open request (a YES to its short code, a click on its link).
//!   Given again, it is renewed: consent lapses `ttl` after the last time.
//! - `withdrawn`: through the API, or by an opt-out of the number (a STOP
//!   withdraws every list's consent in the opt-out's own transaction).
//!
//! [`gate`] decides a marketing message: an opt-out always wins; else it
//! needs consent given, not lapsed, and given after the last change of the
//! number's suppression state (so that a consent older than an opt-out
//! never comes back when the opt-out is lifted).

use serde::{Deserialize, Serialize};

use super::{LinkCode, PhoneNumber, ShortCode, Source, TenantId, UnixMillis};

/// What a consent covers: `marketing` unless a tenant names its lists
/// (`newsletter`, `promotions-fr`). `[a-z0-9_-]{1,64}`, so it is safe in
/// store keys, URLs and CSV files.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConsentList(String);

impl ConsentList {
    pub const DEFAULT: &'static str = "marketing";

    pub fn marketing() -> ConsentList {
        ConsentList(Self::DEFAULT.into())
    }

    pub fn parse(s: &str) -> Result<ConsentList, &'static str> {
        if !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            Ok(ConsentList(s.to_string()))
        } else {
            Err("must be 1 to 64 characters of a-z, 0-9, - and _")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ConsentList {
    fn default() -> Self {
        ConsentList::marketing()
    }
}

impl TryFrom<String> for ConsentList {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, &'static str> {
        ConsentList::parse(&s)
    }
}

impl From<ConsentList> for String {
    fn from(l: ConsentList) -> String {
        l.0
    }
}

impl std::fmt::Display for ConsentList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentAction {
    Requested,
    Given,
    Withdrawn,
}

impl ConsentAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentAction::Requested => "requested",
            ConsentAction::Given => "given",
            ConsentAction::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<ConsentAction> {
        [
            ConsentAction::Requested,
            ConsentAction::Given,
            ConsentAction::Withdrawn,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// Where the answer to a double opt-in request is expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum RequestVia {
    /// A reply of a yes keyword to this short code.
    Sms { shortcode: ShortCode },
    /// A click on the confirmation page of this code.
    Link { code: LinkCode },
}

/// One append-only record of a consent's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentEvent {
    pub at: UnixMillis,
    pub tenant: TenantId,
    pub number: PhoneNumber,
    pub list: ConsentList,
    pub action: ConsentAction,
    pub source: Source,
    /// The evidence: a form id, IP address and wording shown (API, import),
    /// the reply text (SMS), the page and client (link), the opt-out (a STOP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
    /// Who recorded it, when the API caller says (an agent, a system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_by: Option<String>,
    /// `requested`: until when it can be answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<UnixMillis>,
    /// `requested`: where the answer is expected; `given` as an answer:
    /// where it came (it must be where it was expected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<RequestVia>,
}

impl ConsentEvent {
    pub fn new(
        tenant: TenantId,
        number: &PhoneNumber,
        list: ConsentList,
        action: ConsentAction,
        source: Source,
        at: UnixMillis,
    ) -> ConsentEvent {
        ConsentEvent {
            at,
            tenant,
            number: number.clone(),
            list,
            action,
            source,
            proof: None,
            recorded_by: None,
            expires: None,
            via: None,
        }
    }

    /// An answer to a request (a YES, a click) rather than a consent
    /// recorded by the tenant: it needs an open request.
    pub fn is_answer(&self) -> bool {
        self.action == ConsentAction::Given && matches!(self.source, Source::Sms | Source::Link)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    /// Asked, not (yet) answered: no consent.
    Pending,
    Given,
    Withdrawn,
}

impl ConsentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentStatus::Pending => "pending",
            ConsentStatus::Given => "given",
            ConsentStatus::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<ConsentStatus> {
        [
            ConsentStatus::Pending,
            ConsentStatus::Given,
            ConsentStatus::Withdrawn,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// The last double opt-in request of a record. It stays after it is
/// answered, so that a second click on its link says "confirmed" rather
/// than "unknown"; a withdrawal or a new request ends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRequest {
    pub at: UnixMillis,
    pub expires: UnixMillis,
    pub via: RequestVia,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered: Option<UnixMillis>,
}

impl ConsentRequest {
    /// Not answered, and not expired at `now`.
    pub fn open_at(&self, now: UnixMillis) -> bool {
        self.answered.is_none() && now < self.expires
    }
}

/// The current consent of one (tenant, number, list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentState {
    pub status: ConsentStatus,
    /// When the status began.
    pub since: UnixMillis,
    /// The source of the event that set it.
    pub source: Source,
    /// `given`: the last time it was given or renewed; the consent lapses
    /// `ttl` after this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_at: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<ConsentRequest>,
    /// The proof and recorder of the event that set the status (kept here
    /// too, so that a listing or an export needs no history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_by: Option<String>,
    /// The last event applied.
    pub updated: UnixMillis,
}

impl ConsentState {
    /// Given and not lapsed at `now`.
    pub fn valid_at(&self, now: UnixMillis, ttl_ms: i64) -> bool {
        self.status == ConsentStatus::Given
            && self
                .given_at
                .is_some_and(|g| now < g.saturating_add(ttl_ms))
    }

    /// When a given consent lapses.
    pub fn expires(&self, ttl_ms: i64) -> Option<UnixMillis> {
        (self.status == ConsentStatus::Given)
            .then_some(self.given_at)
            .flatten()
            .map(|g| g.saturating_add(ttl_ms))
    }
}

/// Why an event cannot apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("there is no request for confirmation to answer")]
    NoOpenRequest,
    #[error("the request for confirmation was answered already")]
    AlreadyAnswered,
    #[error("the request for confirmation has expired")]
    RequestExpired,
    #[error("the answer did not come where the request expected it")]
    WrongChannel,
}

/// Applies one event to a record (`None`: none yet). `Ok(Some)` is the new
/// state, and the event is appended; `Ok(None)` changes nothing (a
/// withdrawal of nothing), so nothing is appended.
pub fn apply(
    state: Option<&ConsentState>,
    e: &ConsentEvent,
) -> Result<Option<ConsentState>, Refusal> {
    match e.action {
        ConsentAction::Requested => {
            let request = ConsentRequest {
                at: e.at,
                expires: e.expires.unwrap_or(e.at),
                via: e.via.clone().ok_or(Refusal::WrongChannel)?,
                answered: None,
            };
            Ok(Some(match state {
                // A re-confirmation: the consent holds while it is asked.
                Some(s) if s.status == ConsentStatus::Given => ConsentState {
                    request: Some(request),
                    updated: e.at,
                    ..s.clone()
                },
                _ => ConsentState {
                    status: ConsentStatus::Pending,
                    since: e.at,
                    source: e.source,
                    given_at: None,
                    request: Some(request),
                    proof: e.proof.clone(),
                    recorded_by: e.recorded_by.clone(),
                    updated: e.at,
                },
            }))
        }
        ConsentAction::Given => {
            let mut request = state.and_then(|s| s.request.clone());
            if e.is_answer() {
                let r = request.as_mut().ok_or(Refusal::NoOpenRequest)?;
                if r.answered.is_some() {
                    return Err(Refusal::AlreadyAnswered);
                }
                if e.at >= r.expires {
                    return Err(Refusal::RequestExpired);
                }
                if e.via.as_ref() != Some(&r.via) {
                    return Err(Refusal::WrongChannel);
                }
                r.answered = Some(e.at);
            }
            let since = match state {
                Some(s) if s.status == ConsentStatus::Given => s.since,
                _ => e.at,
            };
            Ok(Some(ConsentState {
                status: ConsentStatus::Given,
                since,
                source: e.source,
                given_at: Some(e.at),
                request,
                proof: e.proof.clone(),
                recorded_by: e.recorded_by.clone(),
                updated: e.at,
            }))
        }
        ConsentAction::Withdrawn => Ok(match state {
            Some(s) if s.status != ConsentStatus::Withdrawn => Some(ConsentState {
                status: ConsentStatus::Withdrawn,
                since: e.at,
                source: e.source,
                given_at: None,
                request: None,
                proof: e.proof.clone(),
                recorded_by: e.recorded_by.clone(),
                updated: e.at,
            }),
            _ => None,
        }),
    }
}

/// What the send pipeline knows of a number for the gate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateFacts {
    /// The consent for the list the message is for.
    pub consent: Option<ConsentState>,
    /// When the number's suppression state last changed (an opt-out, or
    /// the lifting of one), if it ever did.
    pub suppression_changed: Option<UnixMillis>,
}

/// The decision for one marketing message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Permitted,
    /// The number is opted out: whatever its consent says.
    OptedOut,
    /// No consent given (never, withdrawn, only asked, or given before an
    /// opt-out).
    NoConsent,
    /// Given, but longer ago than the tenant's ttl without a renewal.
    Lapsed,
}

/// The consent-only tenant's rule. An opt-out always wins.
pub fn gate(suppressed: bool, facts: &GateFacts, now: UnixMillis, ttl_ms: i64) -> Gate {
    if suppressed {
        return Gate::OptedOut;
    }
    let Some(c) = facts
        .consent
        .as_ref()
        .filter(|c| c.status == ConsentStatus::Given)
    else {
        return Gate::NoConsent;
    };
    let given = c.given_at.unwrap_or(c.since);
    if facts.suppression_changed.is_some_and(|s| s >= given) {
        return Gate::NoConsent;
    }
    if c.valid_at(now, ttl_ms) {
        Gate::Permitted
    } else {
        Gate::Lapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: i64 = 86_400_000;

    fn num() -> PhoneNumber {
        PhoneNumber::parse("+33612345678").unwrap()
    }

    fn ev(action: ConsentAction, source: Source, at: UnixMillis) -> ConsentEvent {
        ConsentEvent::new(
            TenantId::parse("acme").unwrap(),
            &num(),
            ConsentList::marketing(),
            action,
            source,
            at,
        )
    }

    fn sms() -> RequestVia {
        RequestVia::Sms {
            shortcode: ShortCode::parse("36111").unwrap(),
        }
    }

    fn request(at: UnixMillis, expires: UnixMillis) -> ConsentEvent {
        let mut e = ev(ConsentAction::Requested, Source::Api, at);
        e.expires = Some(expires);
        e.via = Some(sms());
        e
    }

    fn yes(at: UnixMillis) -> ConsentEvent {
        let mut e = ev(ConsentAction::Given, Source::Sms, at);
        e.via = Some(sms());
        e.proof = Some("OUI".into());
        e
    }

    #[test]
    fn lists_are_restricted() {
        assert_eq!(ConsentList::default().as_str(), "marketing");
        assert!(ConsentList::parse("promo-fr_2").is_ok());
        for bad in ["", "Promo", "a b", "a/b", &"x".repeat(65)] {
            assert!(ConsentList::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_request_is_answered_once_before_it_expires() {
        let asked = apply(None, &request(0, DAY)).unwrap().unwrap();
        assert_eq!(asked.status, ConsentStatus::Pending);
        assert!(!asked.valid_at(1, 365 * DAY), "asking is not consent");
        let given = apply(Some(&asked), &yes(DAY - 1)).unwrap().unwrap();
        assert_eq!(given.status, ConsentStatus::Given);
        assert_eq!(given.given_at, Some(DAY - 1));
        assert_eq!(given.request.as_ref().unwrap().answered, Some(DAY - 1));
        assert!(!given.request.as_ref().unwrap().open_at(DAY - 1));
        assert_eq!(
            apply(Some(&given), &yes(DAY - 1)),
            Err(Refusal::AlreadyAnswered),
            "the request is used up"
        );
        let gone = apply(
            Some(&given),
            &ev(ConsentAction::Withdrawn, Source::Api, DAY),
        )
        .unwrap()
        .unwrap();
        assert!(gone.request.is_none(), "a withdrawal ends the request");
        assert_eq!(apply(Some(&asked), &yes(DAY)), Err(Refusal::RequestExpired));
        let mut elsewhere = yes(10);
        elsewhere.via = Some(RequestVia::Sms {
            shortcode: ShortCode::parse("36222").unwrap(),
        });
        assert_eq!(apply(Some(&asked), &elsewhere), Err(Refusal::WrongChannel));
        assert_eq!(apply(None, &yes(10)), Err(Refusal::NoOpenRequest));
    }

    #[test]
    fn renewals_keep_since_and_move_given_at() {
        let first = apply(None, &ev(ConsentAction::Given, Source::Api, 5))
            .unwrap()
            .unwrap();
        let again = apply(Some(&first), &ev(ConsentAction::Given, Source::Api, 90))
            .unwrap()
            .unwrap();
        assert_eq!((again.since, again.given_at), (5, Some(90)));
        // A re-confirmation request leaves the consent standing.
        let asked = apply(Some(&again), &request(100, 200)).unwrap().unwrap();
        assert_eq!(asked.status, ConsentStatus::Given);
        assert!(asked.valid_at(150, 1000));
        let renewed = apply(Some(&asked), &yes(150)).unwrap().unwrap();
        assert_eq!((renewed.since, renewed.given_at), (5, Some(150)));
        assert_eq!(renewed.source, Source::Sms);
    }

    #[test]
    fn withdrawing_nothing_changes_nothing() {
        assert_eq!(
            apply(None, &ev(ConsentAction::Withdrawn, Source::Api, 1)),
            Ok(None)
        );
        let given = apply(None, &ev(ConsentAction::Given, Source::Import, 1))
            .unwrap()
            .unwrap();
        let gone = apply(Some(&given), &ev(ConsentAction::Withdrawn, Source::Sms, 2))
            .unwrap()
            .unwrap();
        assert_eq!(gone.status, ConsentStatus::Withdrawn);
        assert_eq!(
            apply(Some(&gone), &ev(ConsentAction::Withdrawn, Source::Api, 3)),
            Ok(None)
        );
    }

    #[test]
    fn the_gate() {
        let given = apply(None, &ev(ConsentAction::Given, Source::Api, 10 * DAY))
            .unwrap()
            .unwrap();
        let facts = |c: Option<&ConsentState>, s: Option<i64>| GateFacts {
            consent: c.cloned(),
            suppression_changed: s,
        };
        let ttl = 30 * DAY;
        assert_eq!(
            gate(false, &facts(Some(&given), None), 11 * DAY, ttl),
            Gate::Permitted
        );
        assert_eq!(
            gate(true, &facts(Some(&given), None), 11 * DAY, ttl),
            Gate::OptedOut
        );
        assert_eq!(
            gate(false, &facts(Some(&given), None), 40 * DAY, ttl),
            Gate::Lapsed
        );
        assert_eq!(
            gate(false, &facts(None, None), 11 * DAY, ttl),
            Gate::NoConsent
        );
        // Opted out and back in after the consent: it does not come back.
        assert_eq!(
            gate(false, &facts(Some(&given), Some(10 * DAY)), 11 * DAY, ttl),
            Gate::NoConsent
        );
        assert_eq!(
            gate(false, &facts(Some(&given), Some(9 * DAY)), 11 * DAY, ttl),
            Gate::Permitted
        );
    }

    /// What a test sequence does, in order: consent events and changes of
    /// the suppression state, each some time after the last.
    #[derive(Debug, Clone)]
    enum Op {
        Give,
        Request,
        Yes,
        Withdraw,
        Stop,
        Start,
    }

    fn op() -> impl Strategy<Value = (Op, i64)> {
        (
            prop_oneof![
                Just(Op::Give),
                Just(Op::Request),
                Just(Op::Yes),
                Just(Op::Withdraw),
                Just(Op::Stop),
                Just(Op::Start),
            ],
            0i64..40 * DAY,
        )
    }

    /// Runs a sequence as the stores do: a consent event goes through
    /// [`apply`]; an opt-out that changes the suppression state withdraws
    /// the consent in the same step. Returns the suppression state, when it
    /// last changed, the consent, its history, and the events the history
    /// should hold (those that changed something), in order.
    type Run = (
        bool,
        Option<i64>,
        Option<ConsentState>,
        Vec<ConsentEvent>,
        i64,
    );

    fn run(ops: &[(Op, i64)]) -> Run {
        let (mut suppressed, mut changed) = (false, None);
        let mut state: Option<ConsentState> = None;
        let mut history = Vec::new();
        let mut t = 0;
        for (op, gap) in ops {
            t += gap + 1;
            let e = match op {
                Op::Give => ev(ConsentAction::Given, Source::Api, t),
                Op::Request => request(t, t + 2 * DAY),
                Op::Yes => yes(t),
                Op::Withdraw => ev(ConsentAction::Withdrawn, Source::Api, t),
                Op::Stop | Op::Start => {
                    let stop = matches!(op, Op::Stop);
                    if suppressed != stop {
                        suppressed = stop;
                        changed = Some(t);
                        if stop {
                            let w = ev(ConsentAction::Withdrawn, Source::Sms, t);
                            if let Ok(Some(s)) = apply(state.as_ref(), &w) {
                                state = Some(s);
                                history.push(w);
                            }
                        }
                    }
                    continue;
                }
            };
            if let Ok(Some(s)) = apply(state.as_ref(), &e) {
                state = Some(s);
                history.push(e);
            }
        }
        (suppressed, changed, state, history, t)
    }

    proptest! {
        /// Opt-out always wins: whatever the consent events, a suppressed
        /// number is never permitted, and a consent given before the last
        /// opt-out never permits again after it is lifted.
        #[test]
        fn an_opt_out_always_wins(ops in prop::collection::vec(op(), 0..40), later in 0i64..60 * DAY) {
            let (suppressed, changed, state, history, t) = run(&ops);
            let facts = GateFacts { consent: state.clone(), suppression_changed: changed };
            let verdict = gate(suppressed, &facts, t + later, 30 * DAY);
            if suppressed {
                prop_assert_eq!(verdict, Gate::OptedOut);
            }
            if verdict == Gate::Permitted {
                // The last event that gave or withdrew the consent gave
                // it (a request for re-confirmation since keeps it), after
                // every change of the suppression state, within the ttl.
                let last = history
                    .iter()
                    .rev()
                    .find(|e| e.action != ConsentAction::Requested)
                    .expect("a permitted consent has a history");
                prop_assert_eq!(last.action, ConsentAction::Given);
                prop_assert!(changed.is_none_or(|c| last.at > c));
                prop_assert!(t + later < last.at + 30 * DAY);
            }
            // The last opt-out withdrew the consent (and nothing gave it since).
            if suppressed {
                let s = state.as_ref();
                prop_assert!(s.is_none_or(|s| s.status != ConsentStatus::Given || s.given_at > changed));
            }
        }

        /// The history holds every event that changed the record, in the
        /// order they happened, and replaying it gives the same state.
        #[test]
        fn history_is_the_order_of_events(ops in prop::collection::vec(op(), 0..40)) {
            let (_, _, state, history, _) = run(&ops);
            prop_assert!(history.windows(2).all(|w| w[0].at < w[1].at));
            let mut replayed: Option<ConsentState> = None;
            for e in &history {
                let next = apply(replayed.as_ref(), e);
                prop_assert!(matches!(next, Ok(Some(_))), "a kept event applies again: {:?}", e);
                replayed = next.unwrap();
            }
            prop_assert_eq!(replayed, state);
        }
    }
}
