//! What stopgate tells others after the fact: the application (webhooks,
//! per-message callbacks) and the recipient (confirmation replies). A
//! [`Notification`] is written to the outbox in the same commit as the
//! change it reports, and delivered from there at least once. Pure types.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{
    Campaign, Category, Event, MessageId, MessageStatus, PhoneNumber, ShortCode, TenantId,
    UnixMillis,
};

/// The events a tenant's webhook can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WebhookEvent {
    #[serde(rename = "message.status")]
    MessageStatus,
    #[serde(rename = "optout")]
    OptOut,
    #[serde(rename = "optin")]
    OptIn,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 3] = [
        WebhookEvent::MessageStatus,
        WebhookEvent::OptOut,
        WebhookEvent::OptIn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::MessageStatus => "message.status",
            WebhookEvent::OptOut => "optout",
            WebhookEvent::OptIn => "optin",
        }
    }

    pub fn parse(s: &str) -> Option<WebhookEvent> {
        WebhookEvent::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// A webhook signing secret; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(pub String);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// `[tenants.webhooks]`: where a tenant's events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    /// Signs every delivery (`X-Stopgate-Signature`), and the tenant's
    /// per-message `callback_url` deliveries too.
    pub secret: Option<WebhookSecret>,
    pub events: BTreeSet<WebhookEvent>,
}

impl Webhook {
    pub fn wants(&self, event: WebhookEvent) -> bool {
        self.events.contains(&event)
    }
}

/// Where a message's status changes go, besides the tenant's webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Callback {
    /// `callback_url` of `POST /v1/messages`: our JSON, signed with the
    /// tenant's webhook secret.
    Native { url: String },
    /// `StatusCallback` of the Twilio front: Twilio's form fields, signed as
    /// Twilio signs them.
    Twilio { url: String },
    /// `registered_delivery` of an SMPP `submit_sm`: delivery receipts
    /// (`deliver_sm`) to the tenant's receiver binds.
    Smpp(SmppReceipts),
}

impl Callback {
    /// The URL a webhook callback posts to (`None` for SMPP receipts).
    pub fn url(&self) -> Option<&str> {
        match self {
            Callback::Native { url } | Callback::Twilio { url } => Some(url),
            Callback::Smpp(_) => None,
        }
    }
}

/// What an SMPP application asked for with `registered_delivery`, kept on
/// the message's record so that any later status change (a delivery report
/// from any provider path) still finds its way back as a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmppReceipts {
    /// `registered_delivery` 2: receipts for failures only (1: every final outcome).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failures_only: bool,
    /// Outcomes known at submit (blocked, invalid number, refused by the
    /// provider) were accepted in `submit_sm_resp` and are reported by a
    /// receipt (`[tenants.smpp] blocked = "receipt"`); otherwise they were
    /// refused there and the application has no message id to match.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsent: bool,
    /// The application's `source_addr` (TON, NPI, address): the receipt's
    /// destination.
    pub ton: u8,
    pub npi: u8,
    pub addr: String,
}

impl SmppReceipts {
    /// Whether a message that reached `status` (with our or the provider's
    /// error code) gets a receipt. `first`: the message's first status,
    /// decided at submit. Only final outcomes are reported; of those known
    /// at submit, only the permanent ones the front accepted (a temporary
    /// failure was refused in `submit_sm_resp`, so the application retries).
    pub fn wants(&self, first: bool, status: MessageStatus, error: Option<&str>) -> bool {
        use MessageStatus::*;
        if matches!(status, Scheduled | Sent) {
            return false;
        }
        if self.failures_only && status == Delivered {
            return false;
        }
        if !first {
            return true;
        }
        let permanent = match status {
            Blocked | Rejected => true,
            Failed => error == Some("upstream_rejected"),
            _ => false,
        };
        self.unsent && permanent
    }
}

/// A delivery receipt owed to an SMPP application: a message it submitted
/// with `registered_delivery` reached a final status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmppReceipt {
    pub tenant: TenantId,
    /// The id `submit_sm_resp` carried.
    pub id: MessageId,
    /// The recipient (E.164, or the input as given): the receipt's source.
    pub to: String,
    /// Where the receipt goes: the application's own `source_addr`.
    pub esme: SmppReceipts,
    pub status: MessageStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the message was submitted, and when it reached `status`.
    pub submitted: UnixMillis,
    pub done: UnixMillis,
}

/// A message reached a status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEvent {
    pub tenant: TenantId,
    pub id: MessageId,
    /// E.164, or the input as given for a number that did not parse.
    pub to: String,
    pub from: String,
    pub category: Category,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<Campaign>,
    pub status: MessageStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub at: UnixMillis,
}

/// One thing to deliver, to one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notification {
    /// `message.status` to the tenant's webhook.
    MessageStatus(MessageEvent),
    /// A message's status to that message's own callback.
    MessageCallback {
        event: MessageEvent,
        callback: Callback,
    },
    /// `optout` or `optin` (by the event's action) to the tenant's webhook.
    Subscription(Event),
    /// A delivery receipt to the tenant's SMPP receiver binds.
    SmppReceipt(SmppReceipt),
    /// A confirmation SMS (the reply to STOP/START/HELP) from a short code.
    Reply {
        to: PhoneNumber,
        from: ShortCode,
        body: String,
    },
    /// A double opt-in request (a transactional SMS) for a tenant: from the
    /// short code the answer is expected on, or from the tenant's sender
    /// with a confirmation link.
    ConsentRequest {
        tenant: TenantId,
        to: PhoneNumber,
        from: String,
        body: String,
    },
}

impl Notification {
    /// Notifications with the same key are delivered in the order they
    /// were written: a message's statuses, a number's opt-out and opt-in.
    pub fn order_key(&self) -> Option<String> {
        match self {
            Notification::MessageStatus(e) => Some(format!("m:{}", e.id)),
            Notification::MessageCallback { event, .. } => Some(format!("c:{}", event.id)),
            Notification::Subscription(e) => Some(format!("s:{}:{}", e.tenant, e.number.as_str())),
            Notification::SmppReceipt(r) => Some(format!("r:{}", r.id)),
            Notification::Reply { .. } | Notification::ConsentRequest { .. } => None,
        }
    }

    /// The tenant concerned, if any (replies may concern several).
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Notification::MessageStatus(e) | Notification::MessageCallback { event: e, .. } => {
                Some(&e.tenant)
            }
            Notification::Subscription(e) => Some(&e.tenant),
            Notification::SmppReceipt(r) => Some(&r.tenant),
            Notification::ConsentRequest { tenant, .. } => Some(tenant),
            Notification::Reply { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_their_wire_names() {
        for e in WebhookEvent::ALL {
            assert_eq!(WebhookEvent::parse(e.as_str()), Some(e));
        }
        assert_eq!(WebhookEvent::parse("message.sent"), None);
        assert_eq!(
            format!("{:?}", WebhookSecret("s3cret".into())),
            "WebhookSecret(***)"
        );
    }

    fn receipts(failures_only: bool, unsent: bool) -> SmppReceipts {
        SmppReceipts {
            failures_only,
            unsent,
            ton: 5,
            npi: 0,
            addr: "ACME".into(),
        }
    }

    #[test]
    fn smpp_receipts_report_final_outcomes_the_application_can_match() {
        use MessageStatus::*;
        let all = receipts(false, false);
        // Delivery reports: every final status, never "sent".
        for s in [Delivered, Undelivered, Failed, Blocked, Canceled] {
            assert!(all.wants(false, s, None), "{s}");
        }
        assert!(!all.wants(false, Sent, None));
        assert!(!all.wants(false, Scheduled, None));
        // At submit, refuse mode: nothing (the application was refused).
        for s in [Blocked, Rejected, Failed, Sent] {
            assert!(!all.wants(true, s, Some("upstream_rejected")), "{s}");
        }
        // Receipt mode: the permanent outcomes, never a temporary failure.
        let unsent = receipts(false, true);
        assert!(unsent.wants(true, Blocked, Some("recipient_opted_out")));
        assert!(unsent.wants(true, Rejected, Some("invalid_number")));
        assert!(unsent.wants(true, Failed, Some("upstream_rejected")));
        assert!(!unsent.wants(true, Failed, Some("store_unavailable")));
        assert!(!unsent.wants(true, Failed, Some("upstream_rate_limited")));
        assert!(!unsent.wants(true, Sent, None));
        // registered_delivery 2: failures only.
        let failures = receipts(true, true);
        assert!(!failures.wants(false, Delivered, None));
        assert!(failures.wants(false, Undelivered, Some("001")));
        assert!(failures.wants(true, Blocked, None));
    }
}
