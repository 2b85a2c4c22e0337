//! Consent-only tenants (`marketing_requires = "consent"`): after the
//! suppression check, marketing goes only to numbers whose consent for the
//! request's list is given, not lapsed, and given after the number's last
//! opt-out or opt-in (`domain::consent::gate`); the others are `blocked`
//! with `no_consent` and never reach the provider. One look-up per request;
//! when it fails, marketing fails closed like the suppression check.

use super::{fail_parsed, unsent, ErrorCode, Outbound, SendRequest, Slot};
use crate::domain::consent::{gate, Gate};
use crate::domain::{now_millis, MarketingRequires, MessageStatus, PhoneNumber};

impl Outbound {
    pub(super) async fn check_consent(&self, req: &SendRequest, slots: &mut [Slot]) {
        let tenant = &req.tenant;
        if tenant.marketing_requires != MarketingRequires::Consent {
            return;
        }
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
        let facts = match self
            .store
            .consent_gates(&tenant.id, &req.list, &numbers)
            .await
        {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "consents unreadable: marketing not forwarded");
                fail_parsed(req, slots);
                return;
            }
        };
        let now = now_millis();
        let mut facts = facts.into_iter();
        for slot in slots {
            let Slot::Parsed(n) = slot else { continue };
            let f = facts.next().unwrap_or_default();
            // Opted-out numbers were blocked by the suppression check already.
            let message = match gate(false, &f, now, tenant.consent_ttl_ms()) {
                Gate::Permitted => continue,
                Gate::Lapsed => format!(
                    "the recipient's consent to {:?} lapsed: not renewed for {} days",
                    req.list.as_str(),
                    tenant.consent_ttl_days
                ),
                Gate::NoConsent | Gate::OptedOut => format!(
                    "the recipient has not consented to {:?}; this sender needs consent for marketing",
                    req.list.as_str()
                ),
            };
            tracing::info!(tenant = %tenant.id, to = %n, list = %req.list, "blocked: no consent");
            *slot = Slot::Done(unsent(
                req,
                n.as_str().into(),
                MessageStatus::Blocked,
                Some(n.country()),
                ErrorCode::NoConsent,
                message,
            ));
        }
    }
}
