//! Providers that actually deliver SMS. Only this module knows a provider's
//! wire format; the rest of stopgate sees [`Provider`].

pub mod batch;
pub mod breaker;
pub mod cm;
pub mod guard;
pub mod http;
pub mod log;
pub mod percore;
pub mod smpp;
pub mod twilio;
pub mod vonage;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::{UpstreamConfig, UpstreamKind};
use crate::domain::phone::scrub_numbers;
use crate::domain::segments::Encoding;
use crate::domain::{Category, MessageId, PhoneNumber};

/// One SMS to one recipient, final body included.
#[derive(Debug, Clone)]
pub struct OutboundSms {
    pub id: MessageId,
    pub to: PhoneNumber,
    pub from: String,
    pub body: String,
    pub encoding: Encoding,
    pub category: Category,
    /// A Twilio Messaging Service named by the application (Twilio only).
    pub messaging_service: Option<String>,
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
    // Providers echo the recipient in their error texts; every text they
    // wrote is scrubbed of numbers before it is shown or logged.
    #[error("provider rejected the message: {code}: {}", scrub_numbers(.message))]
    Rejected { code: String, message: String },
    /// The provider asked us to slow down.
    #[error("provider rate limit; retry after {retry_after:?}")]
    RateLimited { retry_after: Option<Duration> },
    /// The provider could not be reached or failed on its side.
    #[error("provider unavailable: {}", scrub_numbers(.0))]
    Unavailable(String),
    /// No answer in time: the message may or may not have been sent.
    #[error("provider did not answer in time")]
    Timeout,
    /// An answer we do not understand.
    #[error("unexpected provider response: {}", scrub_numbers(.0))]
    Protocol(String),
    /// Not attempted: the provider kept failing and the circuit breaker is open.
    #[error("provider circuit open after repeated failures; not attempted")]
    CircuitOpen { retry_after: Duration },
}

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ProviderError>;
}

/// Builds the provider named by the config, behind the global concurrency
/// bound, the `Retry-After` pause and the circuit breaker. Providers that
/// take a delivery-report URL per message get theirs under
/// `public_base_url` (Twilio's `StatusCallback`: `/dlr/twilio`). The SMPP
/// upstream comes with its sessions, for the app to start
/// ([`smpp::Sessions::start`]). Adapters with a batch call (CM; `http`
/// with `batch_url`) get the [`batch::Coalescer`] between the guard and
/// them, unless `batch_wait_us` is 0.
pub fn from_config(
    cfg: &UpstreamConfig,
    public_base_url: &str,
    cores: usize,
) -> anyhow::Result<(Arc<dyn Provider>, Option<smpp::Sessions>)> {
    let mut sessions = None;
    // HTTP adapters: one per core (each with its own pool), see [`percore`].
    fn each<T>(cores: usize, make: impl Fn() -> anyhow::Result<T>) -> anyhow::Result<Vec<Arc<T>>> {
        (0..cores.max(1)).map(|_| make().map(Arc::new)).collect()
    }
    fn single(mut v: Vec<Arc<dyn Provider>>) -> Arc<dyn Provider> {
        match v.len() {
            1 => v.pop().expect("one"),
            _ => Arc::new(percore::PerCore::new(v)),
        }
    }
    let coalesce =
        |mut v: Vec<Arc<dyn batch::BatchProvider>>| -> anyhow::Result<Arc<dyn Provider>> {
            let p: Arc<dyn batch::BatchProvider> = match v.len() {
                1 => v.pop().expect("one"),
                _ => Arc::new(percore::PerCore::new(v)),
            };
            Ok(Arc::new(batch::Coalescer::new(
                p,
                Duration::from_micros(cfg.batch_wait_us),
                cfg.batch_max,
                cfg.concurrency,
            )?))
        };
    let coalescing = cfg.batch_wait_us > 0;
    let adapter: Arc<dyn Provider> = match cfg.kind {
        UpstreamKind::Log => Arc::new(log::LogProvider),
        UpstreamKind::Http => {
            let p = each(cores, || http::HttpProvider::new(cfg))?;
            if coalescing && !cfg.batch_url.is_empty() {
                coalesce(p.into_iter().map(|p| p as _).collect())?
            } else {
                single(p.into_iter().map(|p| p as _).collect())
            }
        }
        UpstreamKind::Twilio => single(
            each(cores, || {
                twilio::TwilioProvider::new(
                    cfg,
                    format!("{}/dlr/twilio", public_base_url.trim_end_matches('/')),
                )
            })?
            .into_iter()
            .map(|p| p as _)
            .collect(),
        ),
        UpstreamKind::Cm => {
            let p = each(cores, || cm::CmProvider::new(cfg))?;
            if coalescing {
                coalesce(p.into_iter().map(|p| p as _).collect())?
            } else {
                single(p.into_iter().map(|p| p as _).collect())
            }
        }
        UpstreamKind::Vonage => single(
            each(cores, || vonage::VonageProvider::new(cfg))?
                .into_iter()
                .map(|p| p as _)
                .collect(),
        ),
        // Its sessions run on core 0, shared by every core.
        UpstreamKind::Smpp => {
            let (provider, s) = smpp::SmppProvider::new(cfg)?;
            sessions = Some(s);
            Arc::new(provider)
        }
    };
    Ok((Arc::new(guard::Guarded::new(adapter, cfg)), sessions))
}

/// `cfg.url` without a trailing slash, or the provider's production base URL.
fn base_url(cfg: &UpstreamConfig, default: &str) -> String {
    if cfg.url.is_empty() {
        default.to_string()
    } else {
        cfg.url.trim_end_matches('/').to_string()
    }
}

/// Sends a request, retrying only when the connection could not be opened:
/// then nothing was written, so a retry cannot deliver the message twice.
/// A timeout or a failure after connecting is never retried.
pub async fn send_once(
    request: reqwest::RequestBuilder,
    connect_retries: u32,
) -> Result<reqwest::Response, ProviderError> {
    let mut attempt = 0;
    loop {
        let this = request
            .try_clone()
            .ok_or_else(|| ProviderError::Protocol("request body cannot be replayed".into()))?;
        match this.send().await {
            Ok(resp) => return Ok(resp),
            Err(e) if e.is_connect() && attempt < connect_retries => {
                attempt += 1;
                tracing::debug!(attempt, error = %without_url(&e), "upstream connect failed; retrying");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            Err(e) => return Err(classify_transport(&e)),
        }
    }
}

/// The answers every provider gives alike: 429 and 5xx. `None` for the rest,
/// which each adapter reads in its own format.
pub fn common_status_error(resp: &reqwest::Response) -> Option<ProviderError> {
    let status = resp.status();
    if status.as_u16() == 429 {
        return Some(ProviderError::RateLimited {
            retry_after: retry_after(resp.headers()),
        });
    }
    if status.is_server_error() {
        return Some(ProviderError::Unavailable(format!("HTTP {status}")));
    }
    None
}

/// At most 200 characters of a provider's text, for error messages.
pub fn clip(s: &str) -> String {
    s.chars().take(200).collect()
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

/// Maps a transport error onto our classification. A connect failure (even
/// a connect timeout) means nothing was sent; only a timeout after that is
/// "may or may not have been sent".
pub fn classify_transport(e: &reqwest::Error) -> ProviderError {
    if e.is_connect() {
        ProviderError::Unavailable(format!("cannot connect: {}", without_url(e)))
    } else if e.is_timeout() {
        ProviderError::Timeout
    } else {
        ProviderError::Unavailable(without_url(e))
    }
}

/// reqwest errors print the URL, which may carry credentials in a query string.
pub fn without_url(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    if let Some(url) = e.url() {
        msg = msg.replace(url.as_str(), "<upstream>");
    }
    msg
}
