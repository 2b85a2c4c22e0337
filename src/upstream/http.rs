//! The generic HTTP adapter (DESIGN.md §4):
//! `POST {url}` with `Authorization: Bearer {token}` and
//! `{"to", "from", "body", "reference"}`; a 2xx with `{"id"}` is success.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

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

impl HttpProvider {
    pub fn new(cfg: &UpstreamConfig) -> anyhow::Result<HttpProvider> {
        let url =
            reqwest::Url::parse(&cfg.url).map_err(|e| anyhow::anyhow!("upstream.url: {e}"))?;
        let mut auth =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {}", cfg.token.expose()))
                .map_err(|_| anyhow::anyhow!("upstream.token: not a valid header value"))?;
        auth.set_sensitive(true);
        Ok(HttpProvider {
            client: http_client(cfg)?,
            url,
            auth,
            connect_retries: cfg.connect_retries,
        })
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
