//! CM.com Business Messaging, JSON gateway:
//! `POST {base}/v1.0/message` with the product token in `X-CM-PRODUCTTOKEN`
//! and `{"messages": {"msg": [{"allowedChannels": ["SMS"], "from", "to":
//! [{"number": "00..."}], "body": {"content"}, "reference", "dcs"?,
//! "maximumNumberOfMessageParts"}]}}`.
//!
//! The answer carries `errorCode` for the request and `messageErrorCode` /
//! `status` ("Accepted" | "Rejected") per message. CM returns no message id
//! of its own: status reports carry our `reference`, so that is the provider id.
//!
//! Batch form (coalesced messages, `upstream.batch_wait_us` > 0): the same
//! request with many `msg` entries. The answer's `messages[]` are matched
//! back by `reference`, never by position while references are present; a
//! message without a verdict in the answer is a protocol error of its own.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::batch::BatchProvider;
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
    msg: Vec<Msg<'a>>,
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

type Verdict = Result<Accepted, ProviderError>;

impl CmProvider {
    /// One request for all of `batch`; one verdict per message, in order.
    async fn send_many(&self, batch: &[OutboundSms]) -> Vec<Verdict> {
        let mut verdicts: Vec<Option<Verdict>> = vec![None; batch.len()];
        let mut msgs = Vec::with_capacity(batch.len());
        let mut sent = Vec::with_capacity(batch.len());
        for (i, sms) in batch.iter().enumerate() {
            let parts = analyze(&sms.body).segments;
            if parts > MAX_PARTS {
                verdicts[i] = Some(Err(ProviderError::Rejected {
                    code: "too_many_parts".into(),
                    message: format!("{parts} SMS parts; CM sends at most {MAX_PARTS}"),
                }));
                continue;
            }
            msgs.push(Msg {
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
            });
            sent.push(i);
        }
        if !msgs.is_empty() {
            let references: Vec<&str> = msgs.iter().map(|m| m.reference).collect();
            let answers = self.request(Envelope {
                messages: Messages { msg: msgs },
            });
            let answers = match answers.await {
                Ok((answer, details)) => match_verdicts(&references, answer, &details),
                Err(e) => vec![Err(e); references.len()],
            };
            for (i, verdict) in sent.into_iter().zip(answers) {
                verdicts[i] = Some(verdict);
            }
        }
        verdicts
            .into_iter()
            .map(|v| v.unwrap_or_else(|| Err(ProviderError::Protocol("no verdict".into()))))
            .collect()
    }

    /// The request; its per-message answers, or the error of the whole request.
    async fn request(
        &self,
        envelope: Envelope<'_>,
    ) -> Result<(Vec<MessageAnswer>, String), ProviderError> {
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
        if answer.messages.is_empty() {
            // No per-message verdict: the whole request was refused.
            return Err(request_error(answer.error_code, &details));
        }
        Ok((answer.messages, details))
    }
}

/// CM's per-message answers matched back to our messages (their
/// references, in request order). One message and one answer: that answer,
/// as ever. Otherwise by `reference`; by position only when no answer
/// carries a reference and the counts agree.
fn match_verdicts(references: &[&str], answers: Vec<MessageAnswer>, details: &str) -> Vec<Verdict> {
    let missing = || {
        Err(ProviderError::Protocol(
            "CM's answer has no verdict for this message".into(),
        ))
    };
    if references.len() == 1 && answers.len() == 1 {
        let answer = answers.into_iter().next().expect("one answer");
        return vec![verdict(answer, references[0], details)];
    }
    if answers.iter().any(|a| a.reference.is_some()) {
        let mut by_reference: HashMap<String, MessageAnswer> = HashMap::new();
        for a in answers {
            if let Some(r) = a.reference.clone() {
                by_reference.entry(r).or_insert(a);
            }
        }
        return references
            .iter()
            .map(|r| match by_reference.remove(*r) {
                Some(a) => verdict(a, r, details),
                None => missing(),
            })
            .collect();
    }
    if answers.len() == references.len() {
        return answers
            .into_iter()
            .zip(references)
            .map(|(a, r)| verdict(a, r, details))
            .collect();
    }
    references.iter().map(|_| missing()).collect()
}

fn verdict(msg: MessageAnswer, reference: &str, details: &str) -> Verdict {
    if msg.status.eq_ignore_ascii_case("accepted") && msg.message_error_code == 0 {
        return Ok(Accepted {
            provider_id: msg.reference.unwrap_or_else(|| reference.to_string()),
        });
    }
    Err(ProviderError::Rejected {
        code: msg.message_error_code.to_string(),
        message: clip(&msg.message_details.unwrap_or_else(|| details.to_string())),
    })
}

#[async_trait]
impl Provider for CmProvider {
    fn name(&self) -> &'static str {
        "cm"
    }

    /// The single-message request (no coalescing): a batch of one.
    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ProviderError> {
        self.send_many(std::slice::from_ref(sms))
            .await
            .pop()
            .expect("one verdict per message")
    }
}

#[async_trait]
impl BatchProvider for CmProvider {
    fn name(&self) -> &'static str {
        "cm"
    }

    async fn send_batch(&self, batch: &[OutboundSms]) -> Vec<Verdict> {
        self.send_many(batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(v: serde_json::Value) -> Vec<MessageAnswer> {
        serde_json::from_value(v).unwrap()
    }

    fn accepted(r: &str) -> serde_json::Value {
        serde_json::json!({"status": "Accepted", "reference": r, "messageErrorCode": 0})
    }

    #[test]
    fn verdicts_follow_references_not_positions() {
        let refused = serde_json::json!({"status": "Rejected", "reference": "b",
            "messageErrorCode": 303, "messageDetails": "not a number"});
        let v = match_verdicts(
            &["a", "b", "c"],
            answers(serde_json::json!([accepted("c"), refused, accepted("a")])),
            "",
        );
        assert_eq!(v[0].as_ref().unwrap().provider_id, "a");
        assert!(
            matches!(&v[1], Err(ProviderError::Rejected { code, .. }) if code == "303"),
            "{:?}",
            v[1]
        );
        assert_eq!(v[2].as_ref().unwrap().provider_id, "c");
    }

    #[test]
    fn a_message_without_a_verdict_is_a_protocol_error_of_its_own() {
        let v = match_verdicts(
            &["a", "b"],
            answers(serde_json::json!([accepted("a"), accepted("zz")])),
            "",
        );
        assert!(v[0].is_ok());
        assert!(
            matches!(v[1], Err(ProviderError::Protocol(_))),
            "{:?}",
            v[1]
        );
    }

    #[test]
    fn without_references_only_matching_counts_go_by_position() {
        let plain = || serde_json::json!({"status": "Accepted", "messageErrorCode": 0});
        let v = match_verdicts(
            &["a", "b"],
            answers(serde_json::json!([plain(), plain()])),
            "",
        );
        assert_eq!(v[0].as_ref().unwrap().provider_id, "a");
        assert_eq!(v[1].as_ref().unwrap().provider_id, "b");
        let v = match_verdicts(&["a", "b"], answers(serde_json::json!([plain()])), "");
        assert!(v
            .iter()
            .all(|r| matches!(r, Err(ProviderError::Protocol(_)))));
    }

    #[test]
    fn one_message_takes_its_one_answer_as_before() {
        let v = match_verdicts(&["a"], answers(serde_json::json!([accepted("echo")])), "");
        assert_eq!(v[0].as_ref().unwrap().provider_id, "echo");
    }
}
