//! Webhooks to applications, as they go on the wire: the outbox
//! dispatcher's [`Notifier`]. Only `http/` knows these formats.
//!
//! - `message.status`, `optout`, `optin` to `[tenants.webhooks] url`, and a
//!   message's status to its `callback_url`: JSON
//!   `{"id": "evt_...", "type": "...", "created": "<RFC 3339>", "data": {...}}`,
//!   signed `X-Stopgate-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`
//!   with the tenant's webhook secret (unsigned if it has none), with
//!   `X-Stopgate-Event` and `X-Stopgate-Delivery` (the event id: the same id
//!   twice is one event delivered twice, as at-least-once allows).
//! - A message's status to the Twilio front's `StatusCallback`: Twilio's form
//!   fields (`MessageSid`, `MessageStatus`, `ErrorCode`, ...), signed with
//!   `X-Twilio-Signature` under the tenant's Twilio auth token exactly as
//!   Twilio signs, so an application's `RequestValidator` accepts it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::twilio::lookup::{twilio_error_code, twilio_status};
use super::twilio::signature;
use crate::config::TwilioAccount;
use crate::domain::{
    now_millis, rfc3339, Action, Callback, MessageEvent, Notification, Tenant, TenantId,
};
use crate::inbound;
use crate::outbox::{DeliveryError, Notifier};
use crate::store::OutboxItem;

pub struct WebhookNotifier {
    client: reqwest::Client,
    tenants: HashMap<TenantId, Arc<Tenant>>,
    twilio: HashMap<TenantId, (String, Option<String>)>,
}

impl WebhookNotifier {
    pub fn new(
        tenants: &[Arc<Tenant>],
        twilio_accounts: &[TwilioAccount],
        timeout: Duration,
    ) -> anyhow::Result<WebhookNotifier> {
        Ok(WebhookNotifier {
            client: reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(5)))
                .user_agent(concat!("stopgate/", env!("CARGO_PKG_VERSION")))
                .build()?,
            tenants: tenants.iter().map(|t| (t.id.clone(), t.clone())).collect(),
            twilio: twilio_accounts
                .iter()
                .map(|a| {
                    let token = a.signing_token.as_ref().map(|t| t.expose().to_string());
                    (a.tenant.id.clone(), (a.account_sid.clone(), token))
                })
                .collect(),
        })
    }

    fn webhook_url(&self, tenant: &TenantId) -> Option<&str> {
        self.tenants
            .get(tenant)
            .and_then(|t| t.webhook.as_ref())
            .map(|w| w.url.as_str())
    }

    fn secret(&self, tenant: &TenantId) -> Option<&str> {
        self.tenants
            .get(tenant)
            .and_then(|t| t.webhook.as_ref())
            .and_then(|w| w.secret.as_ref())
            .map(|s| s.0.as_str())
    }

    async fn post_json(
        &self,
        url: &str,
        tenant: &TenantId,
        kind: &str,
        event_id: &str,
        body: Vec<u8>,
    ) -> Result<(), DeliveryError> {
        let mut req = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("x-stopgate-event", kind)
            .header("x-stopgate-delivery", event_id);
        if let Some(secret) = self.secret(tenant) {
            let t = now_millis() / 1000;
            req = req.header(
                inbound::signature::HEADER,
                inbound::signature::sign(secret.as_bytes(), t, &body),
            );
        }
        answer(req.body(body).send().await)
    }

    async fn post_twilio(&self, url: &str, event: &MessageEvent) -> Result<(), DeliveryError> {
        let (account_sid, token) = self.twilio.get(&event.tenant).cloned().unwrap_or_default();
        let sid = event.id.sid();
        let status = twilio_status(event.status);
        let mut params: Vec<(String, String)> = vec![
            ("AccountSid".into(), account_sid),
            ("ApiVersion".into(), "2010-04-01".into()),
            ("From".into(), event.from.clone()),
            ("MessageSid".into(), sid.clone()),
            ("MessageStatus".into(), status.into()),
            ("SmsSid".into(), sid),
            ("SmsStatus".into(), status.into()),
            ("To".into(), event.to.clone()),
        ];
        if let Some(code) = twilio_error_code(event.error.as_deref()) {
            params.push(("ErrorCode".into(), code.to_string()));
        }
        let mut req = self.client.post(url).form(&params);
        if let Some(token) = token {
            req = req.header(
                "x-twilio-signature",
                signature::compute(&token, url, &params),
            );
        }
        answer(req.send().await)
    }
}

fn answer(sent: Result<reqwest::Response, reqwest::Error>) -> Result<(), DeliveryError> {
    match sent {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(DeliveryError::Retry(format!(
            "HTTP {}",
            r.status().as_u16()
        ))),
        Err(e) if e.is_timeout() => Err(DeliveryError::Retry("no answer in time".into())),
        Err(e) if e.is_connect() => Err(DeliveryError::Retry("cannot connect".into())),
        Err(e) => Err(DeliveryError::Retry(crate::upstream::without_url(&e))),
    }
}

fn message_data(e: &MessageEvent) -> serde_json::Value {
    json!({
        "id": e.id.as_str(),
        "to": e.to,
        "from": e.from,
        "category": e.category.as_str(),
        "campaign": e.campaign.as_ref().map(|c| c.as_str()),
        "status": e.status.as_str(),
        "error": e.error,
        "at": rfc3339(e.at),
    })
}

fn envelope(id: &str, kind: &str, created: i64, data: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id,
        "type": kind,
        "created": rfc3339(created),
        "data": data,
    }))
    .expect("an event serializes")
}

#[async_trait]
impl Notifier for WebhookNotifier {
    fn endpoint(&self, n: &Notification) -> Option<String> {
        match n {
            Notification::MessageStatus(e) => self.webhook_url(&e.tenant).map(str::to_string),
            Notification::Subscription(e) => self.webhook_url(&e.tenant).map(str::to_string),
            Notification::MessageCallback { callback, .. } => callback.url().map(str::to_string),
            Notification::SmppReceipt(_)
            | Notification::Reply { .. }
            | Notification::ConsentRequest { .. } => None,
        }
    }

    async fn deliver(&self, item: &OutboxItem) -> Result<(), DeliveryError> {
        let event_id = format!("evt_{}", item.id);
        let gone =
            |what: &str| DeliveryError::Permanent(format!("{what}: not configured any more"));
        match &item.notification {
            Notification::MessageStatus(e) => {
                let url = self
                    .webhook_url(&e.tenant)
                    .ok_or_else(|| gone("tenants.webhooks"))?;
                let body = envelope(&event_id, "message.status", item.created, message_data(e));
                self.post_json(url, &e.tenant, "message.status", &event_id, body)
                    .await
            }
            Notification::MessageCallback { event, callback } => match callback {
                Callback::Native { url } => {
                    let body = envelope(
                        &event_id,
                        "message.status",
                        item.created,
                        message_data(event),
                    );
                    self.post_json(url, &event.tenant, "message.status", &event_id, body)
                        .await
                }
                Callback::Twilio { url } => self.post_twilio(url, event).await,
                Callback::Smpp(_) => Err(DeliveryError::Permanent(
                    "an SMPP receipt is the SMPP front's to deliver".into(),
                )),
            },
            Notification::SmppReceipt(_) => Err(DeliveryError::Permanent(
                "an SMPP receipt is the SMPP front's to deliver".into(),
            )),
            Notification::Subscription(e) => {
                let kind = match e.action {
                    Action::OptOut => "optout",
                    Action::OptIn => "optin",
                };
                let url = self
                    .webhook_url(&e.tenant)
                    .ok_or_else(|| gone("tenants.webhooks"))?;
                let data = json!({
                    "number": e.number.as_str(),
                    "country": e.number.country().as_str(),
                    "source": e.source.as_str(),
                    "campaign": e.campaign.as_ref().map(|c| c.as_str()),
                    "reason": e.reason,
                    "at": rfc3339(e.at),
                });
                let body = envelope(&event_id, kind, item.created, data);
                self.post_json(url, &e.tenant, kind, &event_id, body).await
            }
            Notification::Reply { .. } | Notification::ConsentRequest { .. } => Err(
                DeliveryError::Permanent("an SMS is the provider's to send".into()),
            ),
        }
    }
}
