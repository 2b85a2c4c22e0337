//! Vonage (Nexmo) SMS API: `POST {base}/sms/json`, form-encoded `api_key`,
//! `api_secret`, `from`, `to` (international digits, no `+`), `text`,
//! `type` (`unicode` when UCS-2) and `client-ref` (our id).
//!
//! The answer is HTTP 200 even for errors: `{"message-count", "messages":
//! [{"status", "message-id", "error-text", ...}]}`, one entry per part;
//! status "0" is success, any other is the documented error code.

use async_trait::async_trait;
use serde::Deserialize;

use super::{
    base_url, clip, common_status_error, http_client, send_once, Accepted, OutboundSms, Provider,
    ProviderError,
};
use crate::config::UpstreamConfig;
use crate::domain::segments::Encoding;

pub const DEFAULT_BASE_URL: &str = "https://rest.nexmo.com";

pub struct VonageProvider {
    client: reqwest::Client,
    url: String,
    api_key: String,
    api_secret: String,
    connect_retries: u32,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    messages: Vec<Part>,
}

#[derive(Deserialize)]
struct Part {
    status: String,
    #[serde(rename = "message-id")]
    message_id: Option<String>,
    #[serde(rename = "error-text")]
    error_text: Option<String>,
}

impl VonageProvider {
    pub fn new(cfg: &UpstreamConfig) -> anyhow::Result<VonageProvider> {
        Ok(VonageProvider {
            client: http_client(cfg)?,
            url: format!("{}/sms/json", base_url(cfg, DEFAULT_BASE_URL)),
            api_key: cfg.api_key.clone(),
            api_secret: cfg.api_secret.expose().to_string(),
            connect_retries: cfg.connect_retries,
        })
    }
}

/// Vonage's documented SMS API status codes, by what they say about the
/// provider: our account (unavailable), its throughput (rate limited), or
/// this message (rejected).
pub fn classify_status(status: &str, text: &str) -> ProviderError {
    let message = format!("Vonage status {status}: {}", clip(text));
    match status {
        // Throttled; too many existing binds.
        "1" | "10" => ProviderError::RateLimited { retry_after: None },
        // Invalid credentials, internal error, account barred, out of credit,
        // HTTP not enabled, invalid signature, signature/secret disallowed.
        "4" | "5" | "8" | "9" | "11" | "14" | "32" => ProviderError::Unavailable(message),
        // Missing/invalid parameters, unroutable, number barred, too long,
        // invalid sender, network code, callback, non-whitelisted, deactivated...
        _ => ProviderError::Rejected {
            code: status.to_string(),
            message: clip(text),
        },
    }
}

#[async_trait]
impl Provider for VonageProvider {
    fn name(&self) -> &'static str {
        "vonage"
    }

    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ProviderError> {
        let kind = match sms.encoding {
            Encoding::Ucs2 => "unicode",
            Encoding::Gsm7 => "text",
        };
        let form = [
            ("api_key", self.api_key.as_str()),
            ("api_secret", self.api_secret.as_str()),
            ("from", sms.from.as_str()),
            ("to", &sms.to.as_str()[1..]),
            ("text", sms.body.as_str()),
            ("type", kind),
            ("client-ref", sms.id.as_str()),
        ];
        // Credentials go in the body, never the URL, so no log line carries them.
        let request = self.client.post(&self.url).form(&form);
        let resp = send_once(request, self.connect_retries).await?;
        if let Some(e) = common_status_error(&resp) {
            return Err(e);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status.as_u16() == 401 || status.as_u16() == 403 {
            return Err(ProviderError::Unavailable(format!(
                "Vonage refused our credentials (HTTP {status}); check upstream.api_key and upstream.api_secret"
            )));
        }
        let answer: Answer = serde_json::from_str(&text).map_err(|_| {
            ProviderError::Protocol(format!(
                "HTTP {status} without Vonage's JSON: {}",
                clip(&text)
            ))
        })?;
        if answer.messages.is_empty() {
            return Err(ProviderError::Protocol(format!(
                "HTTP {status} with no message status"
            )));
        }
        // A long text is one entry per part. Any part refused fails the
        // message; the ids of all parts are kept for delivery reports.
        if let Some(bad) = answer.messages.iter().find(|p| p.status != "0") {
            return Err(classify_status(
                &bad.status,
                bad.error_text.as_deref().unwrap_or(""),
            ));
        }
        let ids: Vec<&str> = answer
            .messages
            .iter()
            .filter_map(|p| p.message_id.as_deref())
            .collect();
        if ids.is_empty() {
            return Err(ProviderError::Protocol(
                "status 0 without a message-id".into(),
            ));
        }
        Ok(Accepted {
            provider_id: ids.join(","),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_statuses_map_by_cause() {
        assert_eq!(
            classify_status("1", "Throttled"),
            ProviderError::RateLimited { retry_after: None }
        );
        for s in ["4", "5", "8", "9"] {
            assert!(
                matches!(classify_status(s, ""), ProviderError::Unavailable(_)),
                "{s}"
            );
        }
        for s in ["2", "3", "6", "7", "15", "29"] {
            assert!(
                matches!(classify_status(s, ""), ProviderError::Rejected { .. }),
                "{s}"
            );
        }
    }
}
