//! CM.com Business Messaging, JSON gateway:
//! `POST {base}/v1.0/message` with the product token in `X-CM-PRODUCTTOKEN`
//! and `{"messages": {"msg": [{"allowedChannels": ["SMS"], "from", "to":
//! [{"number": "00..."}], "body": {"content"}, "reference", "dcs"?,
//! "maximumNumberOfMessageParts"}]}}`.
//!
//! The answer carries `errorCode` for the request and `messageErrorCode` /
//! `status` ("Accepted" | "Rejected") per message. CM returns no message id
//! of its own: status reports carry our `reference`, so that is the provider id.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{
    base_url, clip, common_status_error, http_client, send_once, Accepted, OutboundSms, Provider,
    ProviderError,
};
use crate::config::UpstreamConfig;
use crate::domain::segments::{analyze, Encoding};

pub const DEFAULT_BASE_URL: &str = "https://gw.messaging.cm.com";
/// CM concatenates at most 8 parts.
const MAX_PARTS: usize = 8;

pub struct CmProvider {
    client: reqwest::Client,
    url: String,
    product_token: String,
    connect_retries: u32,
}

#[derive(Serialize)]
struct Envelope<'a> {
    messages: Messages<'a>,
}

#[derive(Serialize)]
struct Messages<'a> {
    msg: [Msg<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Msg<'a> {
    allowed_channels: [&'static str; 1],
    from: &'a str,
    to: [Number; 1],
    body: Body<'a>,
    reference: &'a str,
    /// 8 = UCS-2. Absent means GSM-7, so CM encodes exactly as we counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    dcs: Option<u8>,
    /// Without it a longer text is not concatenated.
    maximum_number_of_message_parts: usize,
}

#[derive(Serialize)]
struct Number {
    number: String,
}

#[derive(Serialize)]
struct Body<'a> {
    content: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    #[serde(default)]
    details: Option<String>,
    #[serde(default)]
    error_code: i64,
    #[serde(default)]
    messages: Vec<MessageAnswer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageAnswer {
    #[serde(default)]
    status: String,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    message_details: Option<String>,
    #[serde(default)]
    message_error_code: i64,
}

impl CmProvider {
    pub fn new(cfg: &UpstreamConfig) -> anyhow::Result<CmProvider> {
        Ok(CmProvider {
            client: http_client(cfg)?,
            url: format!("{}/v1.0/message", base_url(cfg, DEFAULT_BASE_URL)),
            product_token: cfg.product_token.expose().to_string(),
            connect_retries: cfg.connect_retries,
        })
    }
}

/// Request-level error codes from CM's "Responses & Errors - JSON".
fn request_error(code: i64, details: &str) -> ProviderError {
    match code {
        101 | 103 => ProviderError::Unavailable(format!(
            "CM refused our product token ({code}: {details}); check upstream.product_token"
        )),
        102 => ProviderError::Unavailable(format!("CM account balance insufficient ({code})")),
        202 | 203 => ProviderError::Protocol(format!(
            "CM says the request is malformed ({code}: {details})"
        )),
        _ => ProviderError::Unavailable(format!("CM error {code}: {details}")),
    }
}

#[async_trait]
impl Provider for CmProvider {
    fn name(&self) -> &'static str {
        "cm"
    }

    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ProviderError> {
        let parts = analyze(&sms.body).segments;
        if parts > MAX_PARTS {
            return Err(ProviderError::Rejected {
                code: "too_many_parts".into(),
                message: format!("{parts} SMS parts; CM sends at most {MAX_PARTS}"),
            });
        }
        let envelope = Envelope {
            messages: Messages {
                msg: [Msg {
                    allowed_channels: ["SMS"],
                    from: &sms.from,
                    // CM's documented number format: 00, country code, number.
                    to: [Number {
                        number: format!("00{}", &sms.to.as_str()[1..]),
                    }],
                    body: Body { content: &sms.body },
                    reference: sms.id.as_str(),
                    dcs: (sms.encoding == Encoding::Ucs2).then_some(8),
                    maximum_number_of_message_parts: parts.max(1),
                }],
            },
        };
        let request = self
            .client
            .post(&self.url)
            .header("X-CM-PRODUCTTOKEN", &self.product_token)
            .json(&envelope);
        let resp = send_once(request, self.connect_retries).await?;
        if let Some(e) = common_status_error(&resp) {
            return Err(e);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let answer: Answer = serde_json::from_str(&text).map_err(|_| {
            ProviderError::Protocol(format!("HTTP {status} without CM's JSON: {}", clip(&text)))
        })?;
        let details = answer.details.unwrap_or_default();
        let Some(msg) = answer.messages.into_iter().next() else {
            // No per-message verdict: the whole request was refused.
            return Err(request_error(answer.error_code, &details));
        };
        if msg.status.eq_ignore_ascii_case("accepted") && msg.message_error_code == 0 {
            return Ok(Accepted {
                provider_id: msg.reference.unwrap_or_else(|| sms.id.to_string()),
            });
        }
        Err(ProviderError::Rejected {
            code: msg.message_error_code.to_string(),
            message: clip(&msg.message_details.unwrap_or(details)),
        })
    }
}
