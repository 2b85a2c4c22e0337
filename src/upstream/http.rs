//! The generic HTTP adapter (DESIGN.md §4):
//! `POST {url}` with `Authorization: Bearer {token}` and
//! `{"to", "from", "body", "reference"}`; a 2xx with `{"id"}` is success.
//!
//! The optional batch form (docs/http-batch.md), when `upstream.batch_url`
//! is set: `POST {batch_url}` with `{"messages": [{"to", "from", "body",
//! "reference"}, ...]}`, answered 2xx `{"results": [{"reference", "id"} |
//! {"reference", "error": {"code", "message"}}, ...]}` in any order.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::batch::BatchProvider;
use super::{
    clip, common_status_error, http_client, send_once, Accepted, OutboundSms, Provider,
    ProviderError,
};
use crate::config::UpstreamConfig;

pub struct HttpProvider {
    client: reqwest::Client,
    /// Parsed once: parsing it per message (URL + IDNA) was ~3% of a send.
    url: reqwest::Url,
    /// `Bearer {token}`, built once, marked sensitive.
    auth: reqwest::header::HeaderValue,
    connect_retries: u32,
    /// Where the batch form goes, when the provider has one.
    batch_url: Option<reqwest::Url>,
}

#[derive(Serialize)]
struct Request<'a> {
    to: &'a str,
    from: &'a str,
    body: &'a str,
    reference: &'a str,
}

#[derive(Deserialize)]
struct Response {
    id: String,
}

#[derive(Serialize)]
struct BatchRequest<'a> {
    messages: Vec<Request<'a>>,
}

#[derive(Deserialize)]
struct BatchAnswer {
    results: Vec<BatchResult>,
}

#[derive(Deserialize)]
struct BatchResult {
    reference: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    error: Option<ResultError>,
}

#[derive(Deserialize)]
struct ResultError {
    code: String,
    #[serde(default)]
    message: String,
}

type Verdict = Result<Accepted, ProviderError>;

/// The batch answer's results matched back to our messages by `reference`.
fn match_results(references: &[&str], results: Vec<BatchResult>) -> Vec<Verdict> {
    let mut by_reference: HashMap<String, BatchResult> = HashMap::with_capacity(results.len());
    for r in results {
        by_reference.entry(r.reference.clone()).or_insert(r);
    }
    references
        .iter()
        .map(|r| match by_reference.remove(*r) {
            Some(BatchResult {
                id: Some(id),
                error: None,
                ..
            }) => Ok(Accepted { provider_id: id }),
            Some(BatchResult {
                id: None,
                error: Some(e),
                ..
            }) => Err(ProviderError::Rejected {
                code: clip(&e.code),
                message: clip(&e.message),
            }),
            Some(_) => Err(ProviderError::Protocol(
                "a batch result needs exactly one of id and error".into(),
            )),
            None => Err(ProviderError::Protocol(
                "the batch answer has no result for this message".into(),
            )),
        })
        .collect()
}

impl HttpProvider {
    pub fn new(cfg: &UpstreamConfig) -> anyhow::Result<HttpProvider> {
        let url =
            reqwest::Url::parse(&cfg.url).map_err(|e| anyhow::anyhow!("upstream.url: {e}"))?;
        let mut auth =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {}", cfg.token.expose()))
                .map_err(|_| anyhow::anyhow!("upstream.token: not a valid header value"))?;
        auth.set_sensitive(true);
        let batch_url = (!cfg.batch_url.is_empty())
            .then(|| reqwest::Url::parse(&cfg.batch_url))
            .transpose()
            .map_err(|e| anyhow::anyhow!("upstream.batch_url: {e}"))?;
        Ok(HttpProvider {
            client: http_client(cfg)?,
            url,
            auth,
            connect_retries: cfg.connect_retries,
            batch_url,
        })
    }

    /// One request in the batch form; one verdict per message, in order.
    async fn send_many(&self, url: &reqwest::Url, batch: &[OutboundSms]) -> Vec<Verdict> {
        let messages: Vec<Request> = batch
            .iter()
            .map(|sms| Request {
                to: sms.to.as_str(),
                from: &sms.from,
                body: &sms.body,
                reference: sms.id.as_str(),
            })
            .collect();
        let references: Vec<&str> = messages.iter().map(|m| m.reference).collect();
        let request = self
            .client
            .post(url.clone())
            .header(reqwest::header::AUTHORIZATION, self.auth.clone())
            .json(&BatchRequest { messages });
        let resp = match send_once(request, self.connect_retries).await {
            Ok(resp) => resp,
            Err(e) => return vec![Err(e); batch.len()],
        };
        if let Some(e) = common_status_error(&resp) {
            return vec![Err(e); batch.len()];
        }
        let status = resp.status();
        if !status.is_success() {
            // Refused as a whole, as the single form's non-2xx is.
            let text = resp.text().await.unwrap_or_default();
            let e = ProviderError::Rejected {
                code: status.as_u16().to_string(),
                message: clip(&text),
            };
            return vec![Err(e); batch.len()];
        }
        match resp.json::<BatchAnswer>().await {
            Ok(answer) => match_results(&references, answer.results),
            Err(e) => {
                let e = ProviderError::Protocol(format!("2xx without a JSON results list: {e}"));
                vec![Err(e); batch.len()]
            }
        }
    }
}

#[async_trait]
impl BatchProvider for HttpProvider {
    fn name(&self) -> &'static str {
        "http"
    }

    async fn send_batch(&self, batch: &[OutboundSms]) -> Vec<Verdict> {
        match &self.batch_url {
            Some(url) => self.send_many(url, batch).await,
            // No batch form configured: one single request each.
            None => futures::future::join_all(batch.iter().map(|m| Provider::send(self, m))).await,
        }
    }
}

#[async_trait]
impl Provider for HttpProvider {
    fn name(&self) -> &'static str {
        "http"
    }

    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ProviderError> {
        let request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::AUTHORIZATION, self.auth.clone())
            .json(&Request {
                to: sms.to.as_str(),
                from: &sms.from,
                body: &sms.body,
                reference: sms.id.as_str(),
            });
        let resp = send_once(request, self.connect_retries).await?;
        if let Some(e) = common_status_error(&resp) {
            return Err(e);
        }
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(ProviderError::Rejected {
                code: status.as_u16().to_string(),
                message: clip(&text),
            });
        }
        let body: Response = resp
            .json()
            .await
            .map_err(|e| ProviderError::Protocol(format!("2xx without a JSON id: {e}")))?;
        Ok(Accepted {
            provider_id: body.id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(v: serde_json::Value) -> Vec<BatchResult> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn results_are_matched_by_reference_in_any_order() {
        let v = match_results(
            &["a", "b", "c"],
            results(serde_json::json!([
                {"reference": "c", "id": "p-c"},
                {"reference": "b", "error": {"code": "invalid_number", "message": "no such number"}},
                {"reference": "a", "id": "p-a"},
            ])),
        );
        assert_eq!(v[0].as_ref().unwrap().provider_id, "p-a");
        assert!(
            matches!(&v[1], Err(ProviderError::Rejected { code, message })
                if code == "invalid_number" && message == "no such number"),
            "{:?}",
            v[1]
        );
        assert_eq!(v[2].as_ref().unwrap().provider_id, "p-c");
    }

    #[test]
    fn a_missing_or_ambiguous_result_is_a_protocol_error() {
        let v = match_results(
            &["a", "b", "c"],
            results(serde_json::json!([
                {"reference": "a", "id": "p-a", "error": {"code": "x"}},
                {"reference": "b"},
                {"reference": "zz", "id": "p-zz"},
            ])),
        );
        assert!(
            v.iter()
                .all(|r| matches!(r, Err(ProviderError::Protocol(_)))),
            "{v:?}"
        );
    }
}
