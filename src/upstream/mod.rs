//! Providers that actually deliver SMS. Only this module knows a provider's
//! wire format; the rest of stopgate sees [`Provider`].

pub mod http;
pub mod log;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::{UpstreamConfig, UpstreamKind};
use crate::domain::{Category, MessageId, PhoneNumber};
use crate::outbound::segments::Encoding;

/// One SMS to one recipient, final body included.
#[derive(Debug, Clone)]
pub struct OutboundSms {
    pub id: MessageId,
    pub to: PhoneNumber,
    pub from: String,
    pub body: String,
    pub encoding: Encoding,
    pub category: Category,
}

/// The provider took the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's own id for the message.
    pub provider_id: String,
}

/// Why a provider did not take a message, classified by cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider refused this message (bad number, bad sender, ...).
    #[error("provider rejected the message: {code}: {message}")]
    Rejected { code: String, message: String },
    /// The provider asked us to slow down.
    #[error("provider rate limit; retry after {retry_after:?}")]
    RateLimited { retry_after: Option<Duration> },
    /// The provider could not be reached or failed on its side.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// No answer in time: the message may or may not have been sent.
    #[error("provider did not answer in time")]
    Timeout,
    /// An answer we do not understand.
    #[error("unexpected provider response: {0}")]
    Protocol(String),
}

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ProviderError>;
}

/// Builds the provider named by the config.
pub fn from_config(cfg: &UpstreamConfig) -> anyhow::Result<Arc<dyn Provider>> {
    Ok(match cfg.kind {
        UpstreamKind::Log => Arc::new(log::LogProvider),
        UpstreamKind::Http => Arc::new(http::HttpProvider::new(cfg)?),
    })
}

/// The shared HTTP client: pooled keep-alive connections and a timeout on
/// every phase, so a stuck provider cannot hold a request forever.
pub fn http_client(cfg: &UpstreamConfig) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
        .timeout(Duration::from_millis(cfg.timeout_ms))
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(cfg.concurrency)
        .tcp_nodelay(true)
        .user_agent(concat!("stopgate/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// `Retry-After` in seconds (the HTTP-date form is rare from SMS APIs).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Maps a transport error onto our classification.
pub fn classify_transport(e: &reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout
    } else {
        ProviderError::Unavailable(without_url(e))
    }
}

/// reqwest errors print the URL, which may carry credentials in a query string.
fn without_url(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    if let Some(url) = e.url() {
        msg = msg.replace(url.as_str(), "<upstream>");
    }
    msg
}
