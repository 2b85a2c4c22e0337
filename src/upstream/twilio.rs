//! Twilio's Messages API (2010-04-01):
//! `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP Basic
//! auth (account SID, auth token), form-encoded `To`, `From` and/or
//! `MessagingServiceSid`, `Body`, and `StatusCallback` (our `/dlr/twilio`). Success is `201` with the Message resource,
//! whose `sid` (`SM...`) is the provider id. Errors are
//! `{"code", "message", "more_info", "status"}`.

use async_trait::async_trait;
use serde::Deserialize;

use super::{
    base_url, clip, common_status_error, http_client, send_once, Accepted, OutboundSms, Provider,
    ProviderError,
};
use crate::config::UpstreamConfig;

pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

pub struct TwilioProvider {
    client: reqwest::Client,
    url: String,
    account_sid: String,
    auth_token: String,
    /// Used when the message names no Messaging Service of its own.
    messaging_service_sid: Option<String>,
    /// Where Twilio sends this message's status callbacks: our `/dlr/twilio`.
    status_callback: String,
    connect_retries: u32,
}

#[derive(Deserialize)]
struct Created {
    sid: String,
}

#[derive(Deserialize)]
struct TwilioError {
    code: Option<u32>,
    message: Option<String>,
}

impl TwilioProvider {
    pub fn new(cfg: &UpstreamConfig, status_callback: String) -> anyhow::Result<TwilioProvider> {
        Ok(TwilioProvider {
            client: http_client(cfg)?,
            url: format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                base_url(cfg, DEFAULT_BASE_URL),
                cfg.account_sid
            ),
            account_sid: cfg.account_sid.clone(),
            auth_token: cfg.auth_token.expose().to_string(),
            messaging_service_sid: Some(cfg.messaging_service_sid.clone())
                .filter(|s| !s.is_empty()),
            status_callback,
            connect_retries: cfg.connect_retries,
        })
    }
}

#[async_trait]
impl Provider for TwilioProvider {
    fn name(&self) -> &'static str {
        "twilio"
    }

    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ProviderError> {
        let mut form: Vec<(&str, &str)> = vec![
            ("To", sms.to.as_str()),
            ("From", &sms.from),
            ("Body", &sms.body),
            ("StatusCallback", &self.status_callback),
        ];
        // Twilio takes a Messaging Service instead of or in addition to From.
        if let Some(service) = sms
            .messaging_service
            .as_deref()
            .or(self.messaging_service_sid.as_deref())
        {
            form.push(("MessagingServiceSid", service));
        }
        let request = self
            .client
            .post(&self.url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&form);
        let resp = send_once(request, self.connect_retries).await?;
        if let Some(e) = common_status_error(&resp) {
            return Err(e);
        }
        let status = resp.status();
        if status.is_success() {
            let created: Created = resp
                .json()
                .await
                .map_err(|e| ProviderError::Protocol(format!("2xx without a message sid: {e}")))?;
            return Ok(Accepted {
                provider_id: created.sid,
            });
        }
        let text = resp.text().await.unwrap_or_default();
        let err: Option<TwilioError> = serde_json::from_str(&text).ok();
        let code = err
            .as_ref()
            .and_then(|e| e.code)
            .map(|c| c.to_string())
            .unwrap_or_else(|| status.as_u16().to_string());
        let message = err.and_then(|e| e.message).unwrap_or_else(|| clip(&text));
        if status.as_u16() == 401 || status.as_u16() == 403 {
            // Every message would fail the same way: a provider problem, not this message's.
            return Err(ProviderError::Unavailable(format!(
                "Twilio refused our credentials ({code}: {}); check upstream.account_sid and upstream.auth_token",
                clip(&message)
            )));
        }
        Err(ProviderError::Rejected {
            code,
            message: clip(&message),
        })
    }
}
