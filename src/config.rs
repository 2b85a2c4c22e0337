//! Configuration: a TOML file, then `STOPGATE_...` environment overrides,
//! then validation into [`Settings`], the checked form the app runs on.
//!
//! Environment keys are the TOML path in upper case with `__` between
//! levels: `STOPGATE_SERVER__API_LISTEN=0.0.0.0:8080`,
//! `STOPGATE_UPSTREAM__TOKEN=...`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::domain::segments::is_gsm7;
use crate::domain::text::normalize;
use crate::domain::{
    ApiKeyHash, Country, FrequencyCap, MarketingRequires, QuietHours, SchedulePolicy, SendWindows,
    ShortCode, Tenant, TenantId, Webhook, WebhookEvent, WebhookSecret,
};
use crate::rules::{check_footer, Method, RuleSet};

mod providers;
mod smpp;
pub use providers::{
    is_sid, BreakerConfig, SmppBindMode, TwilioAccount, TwilioFrontConfig, UpstreamSmppConfig,
};
pub(crate) use smpp::read_pem;
pub use smpp::{BlockedMode, SmppAccount, SmppConfig, SmppListen, TenantSmppConfig};

/// A configuration problem: which key, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// A string that never prints: tokens, secrets, API keys.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub upstream: UpstreamConfig,
    pub inbound: InboundConfig,
    /// Country -> short code that routes STOP replies here.
    pub shortcodes: BTreeMap<String, String>,
    pub tenants: Vec<TenantConfig>,
    pub rules: RulesConfig,
    pub limits: LimitsConfig,
    pub log: LogConfig,
    pub attribution: AttributionConfig,
    pub links: LinksConfig,
    pub ratelimit: RateLimitConfig,
    pub messages: MessagesConfig,
    pub webhooks: WebhookDeliveryConfig,
    /// The optional SMPP listener.
    pub smpp: SmppConfig,
    /// Releasing held (scheduled) messages.
    pub schedule: ScheduleConfig,
    pub consent: ConsentConfig,
}

/// `[consent]`: double opt-in requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentConfig {
    /// A request for confirmation can be answered for this long.
    pub request_ttl_hours: u32,
}

impl Default for ConsentConfig {
    fn default() -> Self {
        ConsentConfig {
            request_ttl_hours: 72,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Applications and admin; never expose publicly.
    pub api_listen: String,
    /// Link pages and provider webhooks.
    pub public_listen: String,
    /// Prefix of minted links, e.g. `https://stp.example`.
    pub public_base_url: String,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_grace_secs: u64,
    /// A request head (line and headers) must arrive whole within this,
    /// from the accept or from the first byte of a next request.
    pub header_read_timeout_ms: u64,
    /// A request body must arrive whole within this, from its head (a
    /// streamed CSV import: between chunks instead).
    pub body_timeout_ms: u64,
    /// A kept-alive connection with no request in progress is closed after this.
    pub idle_timeout_ms: u64,
    /// Open connections per listener; beyond, new ones wait in the kernel's
    /// backlog. Each listener has its own, so one cannot starve the other.
    pub api_max_connections: usize,
    pub public_max_connections: usize,
    /// How requests are scheduled onto threads (an experiment: issue 16).
    pub runtime: RuntimeMode,
}

/// `server.runtime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeMode {
    /// One tokio multi-thread runtime, a worker per core (work stealing).
    #[default]
    MultiThread,
    /// One current-thread runtime per core, each with its own `SO_REUSEPORT`
    /// listeners and upstream connections; background work stays on core 0.
    PerCore,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            api_listen: "127.0.0.1:8080".into(),
            public_listen: "127.0.0.1:8081".into(),
            public_base_url: "http://127.0.0.1:8081".into(),
            shutdown_grace_secs: 10,
            header_read_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            // Longer than the 60 s a TLS proxy or load balancer keeps an idle
            // connection to its backend (nginx's upstream keepalive_timeout,
            // AWS ALB): the proxy closes first, so it never sends a webhook
            // onto a connection we are closing at that very moment.
            idle_timeout_ms: 75_000,
            api_max_connections: 4096,
            public_max_connections: 1024,
            runtime: RuntimeMode::MultiThread,
        }
    }
}

/// Which backend holds the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// Embedded, one process (the default).
    #[default]
    Sled,
    /// A PostgreSQL database that any number of nodes share.
    Postgres,
}

/// `[storage]`. `Debug` never shows the database URL (it may hold a
/// password): `url` is a [`Secret`], and [`StorageConfig::describe`] names
/// host, port, database and user only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub kind: StorageKind,
    /// sled: the store's directory.
    pub path: PathBuf,
    /// sled: upper bound of the page cache, in MiB.
    pub cache_mb: u64,
    /// postgres: `postgres://user:password@host:port/db?sslmode=disable`, or
    /// the `key=value` form; usually from `STOPGATE_STORAGE__URL`.
    pub url: Secret,
    /// postgres: connections per node.
    pub pool_size: usize,
    /// postgres: one connection attempt, and the longest wait for a free
    /// connection of the pool.
    pub connect_timeout_ms: u64,
    /// postgres: the server cancels a statement that runs longer (bulk
    /// imports and `store copy` lift it for their own statements).
    pub statement_timeout_ms: u64,
    /// postgres: how long startup keeps retrying (with backoff) a database
    /// it cannot reach before giving up; 0 tries once.
    pub connect_retry_secs: u64,
}

impl StorageConfig {
    /// Where the store is, for messages and logs: never the password (nor
    /// the rest of the URL's text, which may hold it in any spelling).
    pub fn describe(&self) -> String {
        match self.kind {
            StorageKind::Sled => format!("sled at {}", self.path.display()),
            StorageKind::Postgres => match self.pg_config() {
                Ok(c) => describe_pg(&c),
                Err(_) => "postgres (storage.url does not parse)".into(),
            },
        }
    }

    /// The parsed connection settings of `url` (postgres).
    pub fn pg_config(&self) -> Result<tokio_postgres::Config, ConfigError> {
        self.url
            .expose()
            .parse::<tokio_postgres::Config>()
            // The parser's message may quote the URL: not repeated.
            .map_err(|_| {
                ConfigError::new(
                    "storage.url",
                    "is not a PostgreSQL URL (postgres://user@host:5432/db) nor key=value settings",
                )
            })
    }
}

/// `database "stopgate" on db:5432 as "stopgate"`: what an operator needs to
/// find the database, never a password.
pub fn describe_pg(c: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = c
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            };
            let port = c.get_ports().get(i).or(c.get_ports().first()).copied();
            format!("{host}:{}", port.unwrap_or(5432))
        })
        .collect();
    let user = c.get_user().unwrap_or("(default user)");
    format!(
        "postgres database {:?} on {} as {:?}",
        c.get_dbname().unwrap_or(user),
        if hosts.is_empty() {
            "localhost:5432".to_string()
        } else {
            hosts.join(",")
        },
        user
    )
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            kind: StorageKind::Sled,
            path: PathBuf::from("data/stopgate"),
            cache_mb: 256,
            url: Secret::default(),
            pool_size: 16,
            connect_timeout_ms: 5_000,
            statement_timeout_ms: 10_000,
            connect_retry_secs: 30,
        }
    }
}

/// `[storage]`: the keys of the backend it names.
fn validate_storage(s: &StorageConfig) -> Result<(), ConfigError> {
    match s.kind {
        StorageKind::Sled => {
            // An empty path would open the store in the working directory,
            // wherever the service happens to start: never what was meant.
            if s.path.to_string_lossy().trim().is_empty() {
                return Err(ConfigError::new(
                    "storage.path",
                    "must name a directory for the store (e.g. \"data/stopgate\")",
                ));
            }
        }
        StorageKind::Postgres => {
            if s.url.expose().trim().is_empty() {
                return Err(ConfigError::new(
                    "storage.url",
                    "required when storage.kind = \"postgres\" (or set STOPGATE_STORAGE__URL)",
                ));
            }
            let c = s.pg_config()?;
            if c.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
                return Err(ConfigError::new(
                    "storage.url",
                    "sslmode=require: TLS to the database is not supported yet; use sslmode=disable on a private network or a local TLS tunnel",
                ));
            }
            if !(1..=1_000).contains(&s.pool_size) {
                return Err(ConfigError::new(
                    "storage.pool_size",
                    format!("{} must be from 1 to 1000", s.pool_size),
                ));
            }
            for (key, ms) in [
                ("storage.connect_timeout_ms", s.connect_timeout_ms),
                ("storage.statement_timeout_ms", s.statement_timeout_ms),
            ] {
                if !(1..=3_600_000).contains(&ms) {
                    return Err(ConfigError::new(
                        key,
                        format!("{ms} must be from 1 to 3600000 (one hour)"),
                    ));
                }
            }
            if s.connect_retry_secs > 3_600 {
                return Err(ConfigError::new(
                    "storage.connect_retry_secs",
                    format!("{} must be at most 3600", s.connect_retry_secs),
                ));
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamKind {
    /// Dry run: log (masked) and accept.
    #[default]
    Log,
    /// The generic JSON adapter.
    Http,
    /// Twilio Messages API.
    Twilio,
    /// CM.com Business Messaging (JSON gateway).
    Cm,
    /// Vonage SMS API.
    Vonage,
    /// An SMSC over SMPP 3.4 (`[upstream.smpp]`).
    Smpp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    pub kind: UpstreamKind,
    pub url: String,
    pub token: Secret,
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Messages in flight to the provider at once, across all requests.
    pub concurrency: usize,
    // Provider credentials (see `config/providers.rs` for which kind needs which).
    pub account_sid: String,
    pub auth_token: Secret,
    pub api_key: String,
    pub api_secret: Secret,
    pub product_token: Secret,
    /// Twilio: used when a message names no Messaging Service of its own.
    pub messaging_service_sid: String,
    /// Retries of a request whose connection could not be opened (never sent).
    pub connect_retries: u32,
    pub breaker: BreakerConfig,
    /// The SMSC, for `kind = "smpp"`.
    pub smpp: UpstreamSmppConfig,
    /// Providers with a batch call (CM; `http` with `batch_url`): while a
    /// request is in flight, concurrent messages gather at most this long
    /// and go as one request. 0: one request per message.
    pub batch_wait_us: u64,
    /// The most messages in one batch request.
    pub batch_max: usize,
    /// `kind = "http"`: the provider's batch endpoint (docs/http-batch.md).
    /// Unset: no batch form, one request per message to `url`.
    pub batch_url: String,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            kind: UpstreamKind::Log,
            url: String::new(),
            token: Secret::default(),
            timeout_ms: 10_000,
            connect_timeout_ms: 2_000,
            concurrency: 64,
            account_sid: String::new(),
            auth_token: Secret::default(),
            api_key: String::new(),
            api_secret: Secret::default(),
            product_token: Secret::default(),
            messaging_service_sid: String::new(),
            connect_retries: 1,
            breaker: BreakerConfig::default(),
            smpp: UpstreamSmppConfig::default(),
            batch_wait_us: 500,
            batch_max: 100,
            batch_url: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboundConfig {
    /// HMAC-SHA256 key for `X-Stopgate-Signature` on `/v1/inbound`.
    pub secret: Secret,
    /// Auth token of the Twilio account that owns the short codes, for
    /// `X-Twilio-Signature` on `/inbound/twilio`. Defaults to
    /// `upstream.auth_token` when the upstream is Twilio.
    pub twilio_auth_token: Secret,
    /// Largest distance between a native signature's `t=` and now.
    pub signature_tolerance_secs: u32,
    /// Accept the old untimed `sha256=<hex>` signature too (a migration
    /// aid: such a request can be replayed while its replay record is kept).
    pub legacy_signature: bool,
    /// Vonage's signature secret: when set, `/dlr/vonage` requires `sig`.
    pub vonage_signature_secret: Secret,
    /// The signing method chosen in Vonage's dashboard.
    pub vonage_signature_method: VonageSignatureMethod,
    /// The token in CM's status report URL (`/dlr/cm?token=...`).
    pub cm_status_token: Secret,
}

/// Vonage's signature methods, as its dashboard names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VonageSignatureMethod {
    /// MD5 of the parameters and the secret: Vonage's default.
    #[default]
    Md5hash,
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl Default for InboundConfig {
    fn default() -> Self {
        InboundConfig {
            secret: Secret::default(),
            twilio_auth_token: Secret::default(),
            signature_tolerance_secs: 300,
            legacy_signature: false,
            vonage_signature_secret: Secret::default(),
            vonage_signature_method: VonageSignatureMethod::default(),
            cm_status_token: Secret::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyword: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_footer: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shortcodes: BTreeMap<String, String>,
    /// Credentials and defaults of the Twilio-compatible front.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twilio: Option<TwilioFrontConfig>,
    /// Whether the country rules' send windows hold this tenant's marketing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_windows: Option<SendWindowsConfig>,
    /// Outside a send window: `defer` (hold, the default) or `reject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<String>,
    /// At most `max` marketing messages per recipient in `per_hours`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_cap: Option<FrequencyCapConfig>,
    /// Where this tenant's events (message statuses, opt-outs) go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<WebhooksConfig>,
    /// SMPP bind credentials and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smpp: Option<TenantSmppConfig>,
    /// `no_optout` (default) or `consent`: marketing only to numbers with
    /// confirmed, unexpired consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketing_requires: Option<MarketingRequires>,
    /// A consent lapses after this many days without an interaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_ttl_days: Option<u32>,
}

/// `send_windows = false` (no window holds this tenant's marketing), or per
/// country: `send_windows = { FR = false }`. Unset: every window applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum SendWindowsConfig {
    All(bool),
    Countries(BTreeMap<String, bool>),
}

// By hand rather than `untagged`, for an error that says what is expected.
impl<'de> Deserialize<'de> for SendWindowsConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SendWindowsConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, or a table of countries, e.g. { FR = false }")
            }
            fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Self::Value, E> {
                Ok(SendWindowsConfig::All(b))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut m = BTreeMap::new();
                while let Some((k, v)) = map.next_entry::<String, bool>()? {
                    m.insert(k, v);
                }
                Ok(SendWindowsConfig::Countries(m))
            }
        }
        d.deserialize_any(V)
    }
}

/// `frequency_cap = { max = 3, per_hours = 24 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCapConfig {
    pub max: u32,
    pub per_hours: u32,
}

/// `[schedule]`: how held messages (send windows, `send_at`) are released.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Held messages in flight to the provider at once, per node. They
    /// take from `upstream.concurrency`, which live traffic (OTPs) shares:
    /// 0 (the default) is half of it, at most 32.
    pub release_concurrency: usize,
    /// At most this many held messages released per second per node
    /// (0: as fast as the provider and `release_concurrency` allow).
    pub release_per_second: u32,
    /// How often the queue is looked at when nothing was due.
    pub poll_ms: u64,
}

impl ScheduleConfig {
    /// `release_concurrency`, with 0 resolved against the upstream's bound.
    pub fn concurrency(&self, upstream: &UpstreamConfig) -> usize {
        match self.release_concurrency {
            0 => (upstream.concurrency / 2).clamp(1, 32),
            n => n,
        }
    }
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            release_concurrency: 0,
            release_per_second: 0,
            poll_ms: 1_000,
        }
    }
}

/// `[tenants.webhooks]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    pub url: String,
    /// Signs deliveries: `X-Stopgate-Signature: t=<unix>,v1=<hex>`.
    #[serde(default)]
    pub secret: Secret,
    /// Default: all of `message.status`, `optout`, `optin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// A directory of `XX.toml` files overriding or adding to the built-in rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_recipients: usize,
    /// Largest request body accepted, in bytes.
    pub max_request_bytes: usize,
    /// Longest message body accepted, in characters (10 UCS-2 parts is 670).
    pub max_body_chars: usize,
    /// API requests per second per tenant (0: unlimited); 429 beyond.
    pub tenant_requests_per_second: u32,
    /// Requests a tenant may make at once above that rate.
    pub tenant_burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_recipients: 1000,
            max_request_bytes: 1024 * 1024,
            max_body_chars: 1600,
            tenant_requests_per_second: 500,
            tenant_burst: 1000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `stopgate=debug,info`.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

/// How a STOP on a shared short code finds the tenants it is meant for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttributionConfig {
    /// A STOP goes to the tenants that sent marketing to the number through
    /// the short code within this many days (else to every tenant on it).
    pub window_days: u32,
}

impl Default for AttributionConfig {
    fn default() -> Self {
        AttributionConfig { window_days: 30 }
    }
}

/// How webhooks to applications are delivered (`[webhooks]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookDeliveryConfig {
    /// A delivery that has not answered after this long is tried again later.
    pub timeout_ms: u64,
    /// A webhook still undelivered this long after its event is given up
    /// and listed in `GET /v1/webhooks/failed`.
    pub give_up_after_secs: u64,
    /// How long an outbox item claimed by a node is that node's: longer
    /// than any delivery may take (`timeout_ms`, and the provider's
    /// `upstream.timeout_ms` for confirmation SMS), so a live node's item
    /// is never taken by another; a dead node's items wait this long.
    pub lease_ms: u64,
}

impl Default for WebhookDeliveryConfig {
    fn default() -> Self {
        WebhookDeliveryConfig {
            timeout_ms: 10_000,
            give_up_after_secs: 86_400,
            lease_ms: 45_000,
        }
    }
}

/// The outbox lease outlasts every delivery, so a delivery still running is
/// never handed to another node (which would send it twice): a webhook
/// takes at most `webhooks.timeout_ms`; a confirmation SMS may wait
/// `upstream.timeout_ms` for a free slot to the provider, then as long for
/// its answer.
fn validate_lease(w: &WebhookDeliveryConfig, u: &UpstreamConfig) -> Result<(), ConfigError> {
    let longest = w.timeout_ms.max(u.timeout_ms.saturating_mul(2));
    if w.lease_ms <= longest || w.lease_ms > 3_600_000 {
        return Err(ConfigError::new(
            "webhooks.lease_ms",
            format!(
                "{} must be longer than any delivery ({longest} ms: webhooks.timeout_ms, twice upstream.timeout_ms) and at most 3600000",
                w.lease_ms
            ),
        ));
    }
    Ok(())
}

/// Message records: one per recipient of every send.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessagesConfig {
    /// Records (and their delivery history) are removed after this many days.
    pub retention_days: u32,
    /// Keep the final body of marketing messages in their records. OTP and
    /// transactional bodies are never kept.
    pub keep_body: bool,
}

impl Default for MessagesConfig {
    fn default() -> Self {
        MessagesConfig {
            retention_days: 30,
            keep_body: false,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinksConfig {
    /// A link older than this many days answers the "unknown link" page.
    /// 0 (the default): links never expire, since an opt-out must stay possible.
    pub expire_days: u32,
}

/// Per-client-IP limit on the link pages (`/{code}`), so codes cannot be
/// enumerated. Signed provider webhooks are not limited: see docs/inbound.md.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Sustained requests per minute per client (an IPv4 address or an IPv6 /64).
    pub per_minute: u32,
    /// Requests a client may make at once before the sustained rate applies.
    pub burst: u32,
    /// Peers (your TLS proxy) whose `X-Forwarded-For` names the real client.
    pub trusted_proxies: Vec<String>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        // Generous: mobile carriers put many recipients behind one CGNAT
        // address, and a campaign makes them click at the same time. Guessing
        // one of 62^8 codes stays hopeless at this rate.
        RateLimitConfig {
            per_minute: 120,
            burst: 60,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Config {
    /// Reads a TOML file (if given) and applies `STOPGATE_...` overrides.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new(path.display().to_string(), format!("cannot read: {e}"))
            })?;
            fig = fig.merge(Toml::string(&text));
        }
        fig = fig.merge(Env::prefixed("STOPGATE_").split("__").ignore(&["config"]));
        fig.extract().map_err(|e| {
            let key = if e.path.is_empty() {
                file.map(|p| p.display().to_string())
                    .unwrap_or_else(|| "config".into())
            } else {
                e.path.join(".")
            };
            ConfigError::new(key, e.kind.to_string())
        })
    }
}

/// The checked configuration the app runs on.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: Config,
    pub api_listen: SocketAddr,
    pub public_listen: SocketAddr,
    pub public_base_url: String,
    pub tenants: Vec<Arc<Tenant>>,
    /// Shared short codes by country.
    pub shortcodes: BTreeMap<Country, ShortCode>,
    pub rules: RuleSet,
    /// Things that work but an operator should know at startup.
    pub warnings: Vec<String>,
    /// Tenants reachable through the Twilio-compatible front.
    pub twilio_accounts: Vec<TwilioAccount>,
    /// The SMPP listener, when `[smpp] listen` is set.
    pub smpp_listen: Option<SmppListen>,
    /// Tenants that may bind over SMPP.
    pub smpp_accounts: Vec<SmppAccount>,
}

impl Settings {
    pub fn from_config(config: Config) -> Result<Settings, ConfigError> {
        let addr = |key: &str, v: &str| {
            v.parse::<SocketAddr>().map_err(|_| {
                ConfigError::new(key, format!("{v:?} is not an address like 127.0.0.1:8080"))
            })
        };
        let api_listen = addr("server.api_listen", &config.server.api_listen)?;
        let public_listen = addr("server.public_listen", &config.server.public_listen)?;
        let public_base_url = validate_base_url(&config.server.public_base_url)?;
        validate_server_limits(&config.server)?;
        if config.upstream.kind == UpstreamKind::Http && config.upstream.url.is_empty() {
            return Err(ConfigError::new(
                "upstream.url",
                "required when upstream.kind = \"http\"",
            ));
        }
        providers::validate_upstream(&config.upstream)?;
        validate_storage(&config.storage)?;
        if config.upstream.concurrency == 0 {
            return Err(ConfigError::new(
                "upstream.concurrency",
                "must be at least 1",
            ));
        }
        if config.limits.max_recipients == 0 {
            return Err(ConfigError::new(
                "limits.max_recipients",
                "must be at least 1",
            ));
        }
        validate_ratelimit(&config.ratelimit)?;
        if !(1..=30_000).contains(&config.webhooks.timeout_ms) {
            return Err(ConfigError::new(
                "webhooks.timeout_ms",
                "must be 1 to 30000",
            ));
        }
        validate_lease(&config.webhooks, &config.upstream)?;
        if config.webhooks.give_up_after_secs == 0 {
            return Err(ConfigError::new(
                "webhooks.give_up_after_secs",
                "must be at least 1",
            ));
        }
        if config.messages.retention_days == 0 {
            return Err(ConfigError::new(
                "messages.retention_days",
                "must be at least 1",
            ));
        }
        validate_schedule(&config.schedule, &config.upstream)?;
        if !(1..=720).contains(&config.consent.request_ttl_hours) {
            return Err(ConfigError::new(
                "consent.request_ttl_hours",
                "must be 1 to 720 (30 days)",
            ));
        }
        if !(1..=3600).contains(&config.inbound.signature_tolerance_secs) {
            return Err(ConfigError::new(
                "inbound.signature_tolerance_secs",
                "must be 1 to 3600",
            ));
        }
        let rules = RuleSet::load(config.rules.dir.as_deref())
            .map_err(|e| ConfigError::new("rules.dir", e.to_string()))?;

        let mut shortcodes = BTreeMap::new();
        for (country, code) in &config.shortcodes {
            let key = format!("shortcodes.{country}");
            shortcodes.insert(
                parse_country(&key, country)?,
                ShortCode::parse(code).map_err(|m| ConfigError::new(&key, m))?,
            );
        }

        let mut tenants = Vec::new();
        let mut ids = HashSet::new();
        let mut keywords = HashSet::new();
        for (i, tc) in config.tenants.iter().enumerate() {
            let tenant = validate_tenant(i, tc, &rules)?;
            if !ids.insert(tenant.id.clone()) {
                return Err(ConfigError::new(
                    format!("tenants[{i}].id"),
                    format!("{:?} is used twice", tc.id),
                ));
            }
            if let Some(k) = &tenant.keyword {
                if !keywords.insert(k.clone()) {
                    return Err(ConfigError::new(
                        format!("tenants[{i}].keyword"),
                        format!("{k:?} is used by another tenant"),
                    ));
                }
            }
            if tenants
                .iter()
                .any(|t: &Arc<Tenant>| t.api_key.matches(&tenant.api_key))
            {
                return Err(ConfigError::new(
                    format!("tenants[{i}]"),
                    "two tenants share one API key",
                ));
            }
            tenants.push(Arc::new(tenant));
        }

        let twilio_accounts = providers::twilio_accounts(&config.tenants, &tenants)?;
        let smpp_listen = smpp::validate_listener(&config.smpp)?;
        let smpp_accounts = smpp::accounts(&config.tenants, &tenants)?;
        let mut warnings = startup_warnings(&config, &rules, &shortcodes, &tenants);
        if smpp_listen.is_none() && !smpp_accounts.is_empty() {
            warnings.push(
                "tenants have [tenants.smpp] credentials but smpp.listen is not set: no SMPP listener".into(),
            );
        }
        Ok(Settings {
            smpp_listen,
            smpp_accounts,
            twilio_accounts,
            api_listen,
            public_listen,
            public_base_url,
            tenants,
            shortcodes,
            rules,
            warnings,
            config,
        })
    }
}

fn parse_country(key: &str, s: &str) -> Result<Country, ConfigError> {
    Country::parse(s).ok_or_else(|| {
        ConfigError::new(
            key,
            format!("{s:?} is not an ISO 3166 two-letter country code (the UK is GB)"),
        )
    })
}

fn validate_ratelimit(r: &RateLimitConfig) -> Result<(), ConfigError> {
    if r.per_minute == 0 {
        return Err(ConfigError::new(
            "ratelimit.per_minute",
            "must be at least 1",
        ));
    }
    if r.burst == 0 {
        return Err(ConfigError::new("ratelimit.burst", "must be at least 1"));
    }
    for (i, p) in r.trusted_proxies.iter().enumerate() {
        if p.parse::<std::net::IpAddr>().is_err() {
            return Err(ConfigError::new(
                format!("ratelimit.trusted_proxies[{i}]"),
                format!("{p:?} is not an IP address"),
            ));
        }
    }
    Ok(())
}

/// Timeouts from 1 ms to 1 hour, caps from 1 to 1,000,000: 0 would disable
/// the protection (or the listener), and beyond these nothing is sane.
fn validate_server_limits(s: &ServerConfig) -> Result<(), ConfigError> {
    for (key, ms) in [
        ("server.header_read_timeout_ms", s.header_read_timeout_ms),
        ("server.body_timeout_ms", s.body_timeout_ms),
        ("server.idle_timeout_ms", s.idle_timeout_ms),
    ] {
        if !(1..=3_600_000).contains(&ms) {
            return Err(ConfigError::new(
                key,
                format!("{ms} must be from 1 to 3600000 (one hour)"),
            ));
        }
    }
    for (key, n) in [
        ("server.api_max_connections", s.api_max_connections),
        ("server.public_max_connections", s.public_max_connections),
    ] {
        if !(1..=1_000_000).contains(&n) {
            return Err(ConfigError::new(
                key,
                format!("{n} must be from 1 to 1000000"),
            ));
        }
    }
    Ok(())
}

fn validate_base_url(raw: &str) -> Result<String, ConfigError> {
    let key = "server.public_base_url";
    let url =
        reqwest::Url::parse(raw).map_err(|e| ConfigError::new(key, format!("{raw:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::new(
            key,
            format!("{raw:?} must be an http(s) URL with a host"),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(key, "must not have a query or fragment"));
    }
    let base = raw.trim_end_matches('/').to_string();
    if !is_gsm7(&base) {
        return Err(ConfigError::new(
            key,
            "must be GSM-7 text (it goes into SMS footers)",
        ));
    }
    Ok(base)
}

fn validate_tenant(i: usize, tc: &TenantConfig, rules: &RuleSet) -> Result<Tenant, ConfigError> {
    let key = |field: &str| format!("tenants[{i}].{field}");
    let id = TenantId::parse(&tc.id).map_err(|m| ConfigError::new(key("id"), m))?;
    let name = tc.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ConfigError::new(key("name"), "must be 1 to 64 characters"));
    }
    let api_key = match (&tc.api_key, &tc.api_key_sha256) {
        (Some(k), None) if !k.expose().trim().is_empty() => ApiKeyHash::of_key(k.expose()),
        (None, Some(h)) => {
            ApiKeyHash::from_hex(h).map_err(|m| ConfigError::new(key("api_key_sha256"), m))?
        }
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                key("api_key"),
                "set api_key or api_key_sha256, not both",
            ))
        }
        _ => {
            return Err(ConfigError::new(
                key("api_key"),
                "required (or api_key_sha256)",
            ))
        }
    };
    let keyword = match &tc.keyword {
        None => None,
        Some(k) => {
            let norm = normalize(k);
            if norm.is_empty() {
                return Err(ConfigError::new(
                    key("keyword"),
                    "must contain letters or digits",
                ));
            }
            let d = &rules.default_rules().keywords;
            let reserved: BTreeSet<&String> = d
                .stop
                .iter()
                .chain(&d.start)
                .chain(&d.help)
                .chain(&d.filler)
                .chain(&d.stopall)
                .chain(&d.yes)
                .collect();
            if reserved.contains(&norm) {
                return Err(ConfigError::new(
                    key("keyword"),
                    format!("{norm:?} is a reserved keyword"),
                ));
            }
            Some(norm)
        }
    };
    let uses_name = |t: &str| t.contains("{tenant}");
    if let Some(f) = &tc.footer {
        check_footer(&key("footer"), &f.replace("{tenant}", &name), "{shortcode}")
            .map_err(|m| ConfigError::new(key("footer"), m))?;
    }
    if let Some(f) = &tc.link_footer {
        check_footer(&key("link_footer"), &f.replace("{tenant}", &name), "{url}")
            .map_err(|m| ConfigError::new(key("link_footer"), m))?;
    }
    let rules_use_name = rules
        .countries()
        .iter()
        .map(|c| rules.for_country(*c))
        .chain([rules.default_rules()])
        .any(|r| uses_name(&r.link_footer) || r.shortcode_footer.as_deref().is_some_and(uses_name));
    if rules_use_name && !is_gsm7(&name) {
        return Err(ConfigError::new(
            key("name"),
            "a footer shows the tenant name, so it must be GSM-7 text",
        ));
    }
    let mut shortcodes = BTreeMap::new();
    for (c, code) in &tc.shortcodes {
        let k = key(&format!("shortcodes.{c}"));
        shortcodes.insert(
            parse_country(&k, c)?,
            ShortCode::parse(code).map_err(|m| ConfigError::new(&k, m))?,
        );
    }
    let send_windows = validate_send_windows(&key("send_windows"), tc, rules)?;
    let schedule = validate_schedule_policy(&key, tc)?;
    let webhook = tc
        .webhooks
        .as_ref()
        .map(|w| validate_webhook(&key("webhooks"), w))
        .transpose()?;
    let consent_ttl_days = tc.consent_ttl_days.unwrap_or(Tenant::CONSENT_TTL_DAYS);
    if !(1..=36_500).contains(&consent_ttl_days) {
        return Err(ConfigError::new(
            key("consent_ttl_days"),
            "must be 1 to 36500 days",
        ));
    }
    Ok(Tenant {
        id,
        name,
        api_key,
        keyword,
        footer: tc.footer.clone(),
        link_footer: tc.link_footer.clone(),
        shortcodes,
        send_windows,
        schedule,
        webhook,
        marketing_requires: tc.marketing_requires.unwrap_or_default(),
        consent_ttl_days,
    })
}

/// `quiet_hours` and `frequency_cap` of a tenant.
fn validate_schedule_policy(
    key: &dyn Fn(&str) -> String,
    tc: &TenantConfig,
) -> Result<SchedulePolicy, ConfigError> {
    let quiet_hours = match tc.quiet_hours.as_deref() {
        None | Some("defer") => QuietHours::Defer,
        Some("reject") => QuietHours::Reject,
        Some(other) => {
            return Err(ConfigError::new(
                key("quiet_hours"),
                format!("{other:?} is not one of defer, reject"),
            ))
        }
    };
    let frequency_cap = match tc.frequency_cap {
        None => None,
        Some(c) => {
            if !(1..=1_000).contains(&c.max) {
                return Err(ConfigError::new(
                    key("frequency_cap.max"),
                    format!("{} must be from 1 to 1000", c.max),
                ));
            }
            // A week at most: the ledger of one recipient stays small.
            if !(1..=168).contains(&c.per_hours) {
                return Err(ConfigError::new(
                    key("frequency_cap.per_hours"),
                    format!("{} must be from 1 to 168 (a week)", c.per_hours),
                ));
            }
            Some(FrequencyCap {
                max: c.max,
                per_ms: i64::from(c.per_hours) * 3_600_000,
            })
        }
    };
    Ok(SchedulePolicy {
        quiet_hours,
        frequency_cap,
    })
}

/// `[schedule]`: the releaser must leave the provider room for live sends.
fn validate_schedule(s: &ScheduleConfig, upstream: &UpstreamConfig) -> Result<(), ConfigError> {
    if s.release_concurrency > upstream.concurrency {
        return Err(ConfigError::new(
            "schedule.release_concurrency",
            format!(
                "{} must be at most upstream.concurrency ({}), or 0 for half of it",
                s.release_concurrency, upstream.concurrency
            ),
        ));
    }
    if !(10..=60_000).contains(&s.poll_ms) {
        return Err(ConfigError::new("schedule.poll_ms", "must be 10 to 60000"));
    }
    Ok(())
}

fn validate_webhook(key: &str, w: &WebhooksConfig) -> Result<Webhook, ConfigError> {
    let url = reqwest::Url::parse(&w.url)
        .map_err(|e| ConfigError::new(format!("{key}.url"), format!("{:?}: {e}", w.url)))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::new(
            format!("{key}.url"),
            "must be an http(s) URL with a host",
        ));
    }
    let events = match &w.events {
        None => WebhookEvent::ALL.into_iter().collect(),
        Some(names) => names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                WebhookEvent::parse(n).ok_or_else(|| {
                    ConfigError::new(
                        format!("{key}.events[{i}]"),
                        format!("{n:?} is not one of message.status, optout, optin"),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(Webhook {
        url: w.url.clone(),
        secret: Some(w.secret.expose())
            .filter(|s| !s.is_empty())
            .map(|s| WebhookSecret(s.to_string())),
        events,
    })
}

/// A country named must have a window to turn off: a typo (`UK`, `ES`)
/// would otherwise look like a switch that works.
fn validate_send_windows(
    key: &str,
    tc: &TenantConfig,
    rules: &RuleSet,
) -> Result<SendWindows, ConfigError> {
    let countries = match &tc.send_windows {
        None | Some(SendWindowsConfig::All(true)) => return Ok(SendWindows::On),
        Some(SendWindowsConfig::All(false)) => return Ok(SendWindows::Off),
        Some(SendWindowsConfig::Countries(m)) => m,
    };
    let mut off = BTreeSet::new();
    for (c, on) in countries {
        let k = format!("{key}.{c}");
        let country = parse_country(&k, c)?;
        if rules.send_window(country).is_none() {
            let with: Vec<String> = rules
                .window_countries()
                .iter()
                .map(|c| c.to_string())
                .collect();
            return Err(ConfigError::new(
                k,
                format!(
                    "{country} has no send window in the country rules (these have one: {})",
                    with.join(", ")
                ),
            ));
        }
        if !on {
            off.insert(country);
        }
    }
    Ok(if off.is_empty() {
        SendWindows::On
    } else {
        SendWindows::OffIn(off)
    })
}

fn startup_warnings(
    config: &Config,
    rules: &RuleSet,
    shortcodes: &BTreeMap<Country, ShortCode>,
    tenants: &[Arc<Tenant>],
) -> Vec<String> {
    let mut w = Vec::new();
    for c in rules.countries() {
        if rules.for_country(c).method != Method::Shortcode || shortcodes.contains_key(&c) {
            continue;
        }
        let without: Vec<&str> = tenants
            .iter()
            .filter(|t| !t.shortcodes.contains_key(&c))
            .map(|t| t.id.as_str())
            .collect();
        if !without.is_empty() {
            w.push(format!(
                "no short code configured for {c}: marketing to {c} from {} gets the link footer instead of STOP to a short code",
                without.join(", ")
            ));
        }
    }
    if config.inbound.secret.expose().is_empty() {
        w.push("inbound.secret is not set: /v1/inbound refuses every request".into());
    }
    if config.upstream.kind == UpstreamKind::Vonage
        && config.inbound.vonage_signature_secret.expose().is_empty()
    {
        w.push("inbound.vonage_signature_secret is not set: /dlr/vonage accepts unsigned delivery receipts (anyone who knows the URL can move message statuses)".into());
    }
    if config.upstream.kind == UpstreamKind::Cm
        && config.inbound.cm_status_token.expose().is_empty()
    {
        w.push("inbound.cm_status_token is not set: /dlr/cm refuses every status report".into());
    }
    if config.inbound.legacy_signature {
        w.push("inbound.legacy_signature = true: untimed sha256= signatures are accepted; a captured request can be replayed for up to 24 h. Migrate senders to t=...,v1=... and turn it off".into());
    }
    if tenants.is_empty() {
        w.push("no tenants configured: every API request will be refused".into());
    }
    if config.upstream.kind == UpstreamKind::Log {
        w.push("upstream.kind = \"log\": messages are logged, not sent (dry run)".into());
    }
    w
}

/// The tenant of the zero-config demo: its key is generated once and kept in
/// `demo-api-key` next to the store, so it survives restarts.
pub fn demo_tenant(storage_path: &Path) -> std::io::Result<(TenantConfig, String)> {
    let dir = storage_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file = dir.join("demo-api-key");
    let key = match std::fs::read_to_string(&file) {
        Ok(k) if !k.trim().is_empty() => k.trim().to_string(),
        _ => {
            let key = format!(
                "sk_demo_{}",
                crate::domain::LinkCode::generate().as_str().to_owned()
                    + crate::domain::LinkCode::generate().as_str()
            );
            write_private(&file, &key)?;
            key
        }
    };
    let tenant = TenantConfig {
        id: "demo".into(),
        name: "Demo Shop".into(),
        api_key: Some(Secret(key.clone())),
        keyword: Some("DEMO".into()),
        ..Default::default()
    };
    Ok((tenant, key))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_tenant(extra: &str) -> Result<Settings, ConfigError> {
        let toml = format!(
            r#"
[shortcodes]
FR = "36111"
[[tenants]]
id = "acme"
name = "ACME Shop"
api_key = "sk_acme_123"
{extra}
"#
        );
        let cfg: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(&toml))
            .extract()
            .map_err(|e| ConfigError::new(e.path.join("."), e.kind.to_string()))?;
        Settings::from_config(cfg)
    }

    #[test]
    fn the_design_example_is_valid() {
        let s = with_tenant("keyword = \"ACME\"").unwrap();
        assert_eq!(s.tenants[0].keyword.as_deref(), Some("ACME"));
        assert!(s
            .warnings
            .iter()
            .any(|w| w.contains("no short code configured for DE")));
        assert!(!s.warnings.iter().any(|w| w.contains("for FR")));
    }

    #[test]
    fn send_windows_apply_unless_turned_off() {
        let fr = Country::parse("FR").unwrap();
        let us = Country::parse("US").unwrap();
        let s = with_tenant("").unwrap();
        assert_eq!(s.tenants[0].send_windows, SendWindows::On);
        let s = with_tenant("send_windows = true").unwrap();
        assert_eq!(s.tenants[0].send_windows, SendWindows::On);
        let s = with_tenant("send_windows = false").unwrap();
        assert_eq!(s.tenants[0].send_windows, SendWindows::Off);
        assert!(!s.tenants[0].send_windows.applies_in(fr));
        let s = with_tenant("send_windows = { FR = false, US = true }").unwrap();
        let w = &s.tenants[0].send_windows;
        assert_eq!(w, &SendWindows::OffIn(BTreeSet::from([fr])));
        assert!(!w.applies_in(fr) && w.applies_in(us));
    }

    #[test]
    fn quiet_hours_and_frequency_caps_are_checked() {
        let s = with_tenant("").unwrap();
        assert_eq!(s.tenants[0].schedule, SchedulePolicy::default());
        assert_eq!(s.tenants[0].schedule.quiet_hours, QuietHours::Defer);
        let s =
            with_tenant("quiet_hours = \"reject\"\nfrequency_cap = { max = 3, per_hours = 24 }")
                .unwrap();
        assert_eq!(
            s.tenants[0].schedule,
            SchedulePolicy {
                quiet_hours: QuietHours::Reject,
                frequency_cap: Some(FrequencyCap {
                    max: 3,
                    per_ms: 24 * 3_600_000
                }),
            }
        );
        for (extra, key) in [
            ("quiet_hours = \"later\"", "tenants[0].quiet_hours"),
            (
                "frequency_cap = { max = 0, per_hours = 24 }",
                "tenants[0].frequency_cap.max",
            ),
            (
                "frequency_cap = { max = 3, per_hours = 0 }",
                "tenants[0].frequency_cap.per_hours",
            ),
            (
                "frequency_cap = { max = 3, per_hours = 200 }",
                "tenants[0].frequency_cap.per_hours",
            ),
        ] {
            let e = with_tenant(extra).unwrap_err();
            assert_eq!(e.key, key, "{extra}: {e}");
        }
        let e = with_tenant("frequency_cap = { max = 3 }").unwrap_err();
        assert!(e.key.contains("frequency_cap"), "{e}");
    }

    #[test]
    fn the_runtime_is_one_of_two_names() {
        let runtime = |v: &str| {
            Figment::from(Serialized::defaults(Config::default()))
                .merge(Toml::string(&format!("[server]\nruntime = {v:?}\n")))
                .extract::<Config>()
                .map(|c| c.server.runtime)
                .map_err(Box::new)
        };
        assert_eq!(Config::default().server.runtime, RuntimeMode::MultiThread);
        assert_eq!(runtime("multi_thread").unwrap(), RuntimeMode::MultiThread);
        assert_eq!(runtime("per_core").unwrap(), RuntimeMode::PerCore);
        let e = runtime("per-core").unwrap_err();
        assert_eq!(e.path.join("."), "server.runtime", "{e}");
        assert!(e.to_string().contains("per_core"), "{e}");
    }

    #[test]
    fn the_releaser_leaves_the_provider_room_for_live_sends() {
        let mut c = Config::default();
        assert_eq!(c.schedule.concurrency(&c.upstream), 32);
        c.upstream.concurrency = 8;
        assert_eq!(c.schedule.concurrency(&c.upstream), 4);
        c.upstream.concurrency = 1;
        assert_eq!(c.schedule.concurrency(&c.upstream), 1);
        c.schedule.release_concurrency = 2;
        let e = Settings::from_config(c.clone()).unwrap_err();
        assert_eq!(e.key, "schedule.release_concurrency", "{e}");
        c.upstream.concurrency = 64;
        c.schedule.poll_ms = 5;
        assert_eq!(
            Settings::from_config(c).unwrap_err().key,
            "schedule.poll_ms"
        );
    }

    #[test]
    fn send_windows_name_countries_that_have_one() {
        let e = with_tenant("send_windows = { ES = false }").unwrap_err();
        assert_eq!(e.key, "tenants[0].send_windows.ES", "{e}");
        assert!(e.message.contains("FR, US, ZA"), "{e}");
        let e = with_tenant("send_windows = { UK = false }").unwrap_err();
        assert_eq!(e.key, "tenants[0].send_windows.UK", "{e}");
        assert!(e.message.contains("GB"), "{e}");
        let e = with_tenant("send_windows = \"off\"").unwrap_err();
        assert!(e.key.contains("send_windows"), "{e}");
        assert!(e.message.contains("true, false, or a table"), "{e}");
        let e = with_tenant("send_windows = { FR = \"no\" }").unwrap_err();
        assert!(e.key.contains("send_windows"), "{e}");
    }

    #[test]
    fn an_empty_storage_path_is_refused() {
        for path in ["", "   ", "\t"] {
            let e = with_tenant(&format!("[storage]\npath = {path:?}")).unwrap_err();
            assert_eq!(e.key, "storage.path", "{path:?}: {e}");
        }
        assert!(with_tenant("[storage]\npath = \"db\"").is_ok());
    }

    #[test]
    fn errors_name_the_key() {
        let e = with_tenant("keyword = \"STOP\"").unwrap_err();
        assert_eq!(e.key, "tenants[0].keyword");
        let e = with_tenant("footer = \"Reply STOP\"").unwrap_err();
        assert_eq!(e.key, "tenants[0].footer");
        assert!(e.message.contains("{shortcode}"), "{}", e.message);
        let e = with_tenant("shortcodes = { UK = \"60777\" }").unwrap_err();
        assert_eq!(e.key, "tenants[0].shortcodes.UK");
        let e = with_tenant("colour = \"red\"").unwrap_err();
        assert!(e.message.contains("colour"), "{e}");
        let e = with_tenant("api_key_sha256 = \"abcd\"").unwrap_err();
        assert_eq!(e.key, "tenants[0].api_key");
    }

    #[test]
    fn inbound_sections_have_defaults_and_checked_values() {
        let s = with_tenant("").unwrap();
        assert_eq!(s.config.attribution.window_days, 30);
        assert_eq!(s.config.links.expire_days, 0);
        assert!(s.config.ratelimit.per_minute > 0 && s.config.ratelimit.burst > 0);
        let e = with_tenant("[ratelimit]\nper_minute = 0").unwrap_err();
        assert_eq!(e.key, "ratelimit.per_minute");
        let e =
            with_tenant("[ratelimit]\ntrusted_proxies = [\"10.0.0.1\", \"proxy\"]").unwrap_err();
        assert_eq!(e.key, "ratelimit.trusted_proxies[1]");
        let e = with_tenant("[attribution]\nwindow = 3").unwrap_err();
        assert!(e.message.contains("window"), "{e}");
    }

    #[test]
    fn the_outbox_lease_outlasts_every_delivery() {
        let s = with_tenant("").unwrap();
        assert_eq!(s.config.webhooks.lease_ms, 45_000);
        let s = with_tenant(
            "[webhooks]\ntimeout_ms = 1000\nlease_ms = 3000\n[upstream]\ntimeout_ms = 1000",
        )
        .unwrap();
        assert_eq!(s.config.webhooks.lease_ms, 3_000);
        for toml in [
            // Under twice the default provider timeout (10 s).
            "[webhooks]\nlease_ms = 20000",
            // The default webhook timeout is 10 s.
            "[webhooks]\nlease_ms = 10000\n[upstream]\ntimeout_ms = 1000",
            "[webhooks]\ntimeout_ms = 1000\nlease_ms = 3600001",
            // A confirmation SMS may take twice the provider's timeout.
            "[webhooks]\ntimeout_ms = 1000\nlease_ms = 3000\n[upstream]\ntimeout_ms = 1500",
        ] {
            let e = with_tenant(toml).unwrap_err();
            assert_eq!(e.key, "webhooks.lease_ms", "{toml}: {e}");
        }
    }

    #[test]
    fn listener_limits_have_defaults_and_checked_values() {
        let s = with_tenant("").unwrap();
        let server = &s.config.server;
        assert_eq!(server.header_read_timeout_ms, 10_000);
        assert_eq!(server.body_timeout_ms, 30_000);
        assert_eq!(server.idle_timeout_ms, 75_000);
        assert_eq!(server.api_max_connections, 4096);
        assert_eq!(server.public_max_connections, 1024);
        let s = with_tenant("[server]\nidle_timeout_ms = 500\npublic_max_connections = 8").unwrap();
        assert_eq!(s.config.server.idle_timeout_ms, 500);
        assert_eq!(s.config.server.public_max_connections, 8);
        for (toml, key) in [
            (
                "header_read_timeout_ms = 0",
                "server.header_read_timeout_ms",
            ),
            ("body_timeout_ms = 3600001", "server.body_timeout_ms"),
            ("idle_timeout_ms = 0", "server.idle_timeout_ms"),
            ("api_max_connections = 0", "server.api_max_connections"),
            (
                "public_max_connections = 0",
                "server.public_max_connections",
            ),
        ] {
            let e = with_tenant(&format!("[server]\n{toml}")).unwrap_err();
            assert_eq!(e.key, key, "{toml}: {e}");
        }
    }

    #[test]
    fn postgres_storage_is_checked_by_key_and_never_prints_its_password() {
        let s = with_tenant("").unwrap();
        assert_eq!(s.config.storage.kind, StorageKind::Sled, "the default");
        let pg = |extra: &str| {
            with_tenant(&format!(
                "[storage]\nkind = \"postgres\"\npath = \"\"\n{extra}"
            ))
        };
        assert_eq!(pg("").unwrap_err().key, "storage.url");
        let e = pg("url = \"postgres://u:hunter22@db:5432/x?sslmode=nonsense\"").unwrap_err();
        assert_eq!(e.key, "storage.url");
        assert!(!e.message.contains("hunter22"), "{e}");
        let e = pg("url = \"postgres://u@db/x?sslmode=require\"").unwrap_err();
        assert_eq!(e.key, "storage.url");
        assert!(e.message.contains("TLS"), "{e}");
        let url = "url = \"postgres://stopgate:hunter22@db.internal:6543/gw?sslmode=disable\"";
        for (extra, key) in [
            ("pool_size = 0", "storage.pool_size"),
            ("connect_timeout_ms = 0", "storage.connect_timeout_ms"),
            ("statement_timeout_ms = 0", "storage.statement_timeout_ms"),
            ("connect_retry_secs = 100000", "storage.connect_retry_secs"),
        ] {
            assert_eq!(pg(&format!("{url}\n{extra}")).unwrap_err().key, key);
        }
        // An empty path is fine: postgres does not use it.
        let s = pg(url).unwrap();
        let storage = &s.config.storage;
        assert_eq!(storage.pool_size, 16);
        assert_eq!(
            storage.describe(),
            "postgres database \"gw\" on db.internal:6543 as \"stopgate\""
        );
        assert!(!format!("{storage:?}").contains("hunter22"));
        assert!(!format!("{s:?}").contains("hunter22"));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = with_tenant("").unwrap();
        assert!(!format!("{:?}", s.config).contains("sk_acme_123"));
    }
}
