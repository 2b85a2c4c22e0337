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
}

impl Callback {
    pub fn url(&self) -> &str {
        match self {
            Callback::Native { url } | Callback::Twilio { url } => url,
        }
    }
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
}
