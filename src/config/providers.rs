//! Provider-related configuration: the upstream adapters' keys and the
//! Twilio-compatible front's per-tenant credentials, checked at startup with
//! the bad key named.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret, TenantConfig, UpstreamConfig, UpstreamKind};
use crate::domain::{ApiKeyHash, Category, Sender, Tenant};

/// When to stop sending to a failing provider, and for how long.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Opens after this many failures in a row.
    pub consecutive_failures: u32,
    /// ... or when this share of the last `window` calls failed
    /// (once at least `min_calls` of them are known).
    pub failure_ratio: f64,
    pub window: usize,
    pub min_calls: usize,
    /// How long it stays open before one probe is let through.
    pub cooldown_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            consecutive_failures: 5,
            failure_ratio: 0.5,
            window: 20,
            min_calls: 10,
            cooldown_ms: 30_000,
        }
    }
}

/// How the SMPP upstream binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmppBindMode {
    /// One session that submits and receives.
    #[default]
    Transceiver,
    /// Two sessions: a transmitter for submits, a receiver for receipts and replies.
    TransmitterReceiver,
}

/// `[upstream.smpp]`: the SMSC stopgate binds to when `upstream.kind = "smpp"`.
/// `upstream.timeout_ms` is how long a `submit_sm` waits for its answer,
/// `upstream.connect_timeout_ms` bounds the connect and the bind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamSmppConfig {
    pub host: String,
    pub port: u16,
    pub system_id: String,
    /// `STOPGATE_UPSTREAM__SMPP__PASSWORD` in the environment overrides it.
    pub password: Secret,
    pub system_type: String,
    pub bind: SmppBindMode,
    /// `submit_sm` unanswered at once on the transmitting session.
    pub window: usize,
    /// `submit_sm` PDUs per second at most (each part counts); 0: no limit.
    pub messages_per_second: u32,
    /// Silence after which stopgate sends an enquire_link.
    pub enquire_link_secs: u64,
    /// Silence after which the session is dropped and bound again.
    pub inactivity_secs: u64,
    /// First wait before binding again after a lost or refused bind; it
    /// doubles up to `reconnect_max_ms`.
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    /// Speak TLS (rustls) to the SMSC.
    pub tls: bool,
    /// PEM certificates to trust instead of the public roots (webpki).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// The name the SMSC's certificate must carry (default: `host`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
}

impl Default for UpstreamSmppConfig {
    fn default() -> Self {
        UpstreamSmppConfig {
            host: String::new(),
            port: 2775,
            system_id: String::new(),
            password: Secret::default(),
            system_type: String::new(),
            bind: SmppBindMode::default(),
            window: 64,
            messages_per_second: 0,
            enquire_link_secs: 30,
            inactivity_secs: 120,
            reconnect_min_ms: 1_000,
            reconnect_max_ms: 60_000,
            tls: false,
            tls_ca: None,
            tls_server_name: None,
        }
    }
}

fn validate_smpp(c: &UpstreamSmppConfig) -> Result<(), ConfigError> {
    let key = |k: &str| format!("upstream.smpp.{k}");
    if c.host.trim().is_empty() {
        return Err(ConfigError::new(
            key("host"),
            "required when upstream.kind = \"smpp\"",
        ));
    }
    if c.port == 0 {
        return Err(ConfigError::new(key("port"), "must be 1 to 65535"));
    }
    // SMPP 3.4 C strings: system_id 16 octets, password 9, system_type 13 (NUL included).
    let printable = |v: &str| v.bytes().all(|b| b.is_ascii_graphic());
    if c.system_id.is_empty() || c.system_id.len() > 15 || !printable(&c.system_id) {
        return Err(ConfigError::new(
            key("system_id"),
            "must be 1 to 15 printable ASCII characters (SMPP 3.4)",
        ));
    }
    let password = c.password.expose();
    if password.len() > 8 || !printable(password) {
        return Err(ConfigError::new(
            key("password"),
            "at most 8 printable ASCII characters (SMPP 3.4 allows no more)",
        ));
    }
    if c.system_type.len() > 12 || !printable(&c.system_type) {
        return Err(ConfigError::new(
            key("system_type"),
            "at most 12 printable ASCII characters (SMPP 3.4)",
        ));
    }
    for (k, v, lo, hi) in [
        ("window", c.window as u64, 1, 10_000),
        ("enquire_link_secs", c.enquire_link_secs, 1, 86_400),
        ("inactivity_secs", c.inactivity_secs, 1, 86_400),
        ("reconnect_min_ms", c.reconnect_min_ms, 1, 3_600_000),
        ("reconnect_max_ms", c.reconnect_max_ms, 1, 3_600_000),
    ] {
        if !(lo..=hi).contains(&v) {
            return Err(ConfigError::new(
                key(k),
                format!("{v} must be from {lo} to {hi}"),
            ));
        }
    }
    if c.inactivity_secs <= c.enquire_link_secs {
        return Err(ConfigError::new(
            key("inactivity_secs"),
            "must be longer than upstream.smpp.enquire_link_secs, so a silent SMSC is asked before it is dropped",
        ));
    }
    if c.reconnect_max_ms < c.reconnect_min_ms {
        return Err(ConfigError::new(
            key("reconnect_max_ms"),
            "must be at least upstream.smpp.reconnect_min_ms",
        ));
    }
    if !c.tls && (c.tls_ca.is_some() || c.tls_server_name.is_some()) {
        return Err(ConfigError::new(
            key("tls"),
            "tls_ca and tls_server_name need tls = true",
        ));
    }
    if c.tls {
        crate::upstream::smpp::tls_connector(c).map_err(|(k, m)| ConfigError::new(k, m))?;
    }
    Ok(())
}

/// `[tenants.twilio]`: how a tenant authenticates on the Twilio-compatible
/// front, and its default categories.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioFrontConfig {
    pub account_sid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token_sha256: Option<String>,
    /// Category for messages without `X-Stopgate-Category`, by `From` or by
    /// `MessagingServiceSid` (a `From` entry wins).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub categories: BTreeMap<String, String>,
    /// The sender to use when a request names a `MessagingServiceSid` but no `From`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub senders: BTreeMap<String, String>,
}

/// A tenant's checked Twilio-front credentials.
#[derive(Debug, Clone)]
pub struct TwilioAccount {
    pub tenant: Arc<Tenant>,
    pub account_sid: String,
    /// SHA-256 of the auth token, compared in constant time like API keys.
    pub auth_token: ApiKeyHash,
    /// The token itself, when the config holds it (not only its hash):
    /// `StatusCallback` deliveries are signed with it, as Twilio signs them.
    pub signing_token: Option<Secret>,
    pub categories: HashMap<String, Category>,
    pub senders: HashMap<String, Sender>,
}

/// `AC` or `MG` followed by 32 hex digits: Twilio's SID shape.
pub fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

pub(super) fn validate_upstream(u: &UpstreamConfig) -> Result<(), ConfigError> {
    let kind = match u.kind {
        UpstreamKind::Log | UpstreamKind::Http | UpstreamKind::Smpp => None,
        UpstreamKind::Twilio => Some("twilio"),
        UpstreamKind::Cm => Some("cm"),
        UpstreamKind::Vonage => Some("vonage"),
    };
    if !u.url.is_empty() {
        let url = reqwest::Url::parse(&u.url)
            .map_err(|e| ConfigError::new("upstream.url", format!("{:?}: {e}", u.url)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(ConfigError::new(
                "upstream.url",
                "must be an http(s) URL with a host",
            ));
        }
        if kind.is_some() && (url.query().is_some() || url.path() != "/") {
            return Err(ConfigError::new(
                "upstream.url",
                format!(
                    "for kind = {:?} this is the provider's base URL (scheme and host, e.g. https://api.twilio.com), without a path",
                    kind.unwrap_or_default()
                ),
            ));
        }
    }
    let required = |key: &str, empty: bool| {
        if empty {
            Err(ConfigError::new(
                format!("upstream.{key}"),
                format!(
                    "required when upstream.kind = {:?}",
                    kind.unwrap_or_default()
                ),
            ))
        } else {
            Ok(())
        }
    };
    match u.kind {
        UpstreamKind::Log | UpstreamKind::Http => {}
        UpstreamKind::Smpp => validate_smpp(&u.smpp)?,
        UpstreamKind::Twilio => {
            required("account_sid", u.account_sid.is_empty())?;
            if !is_sid(&u.account_sid, "AC") {
                return Err(ConfigError::new(
                    "upstream.account_sid",
                    "must be AC followed by 32 hex digits",
                ));
            }
            required("auth_token", u.auth_token.expose().is_empty())?;
            if !u.messaging_service_sid.is_empty() && !is_sid(&u.messaging_service_sid, "MG") {
                return Err(ConfigError::new(
                    "upstream.messaging_service_sid",
                    "must be MG followed by 32 hex digits",
                ));
            }
        }
        UpstreamKind::Cm => required("product_token", u.product_token.expose().is_empty())?,
        UpstreamKind::Vonage => {
            required("api_key", u.api_key.is_empty())?;
            required("api_secret", u.api_secret.expose().is_empty())?;
        }
    }
    let b = &u.breaker;
    if b.consecutive_failures == 0 {
        return Err(ConfigError::new(
            "upstream.breaker.consecutive_failures",
            "must be at least 1",
        ));
    }
    if !(b.failure_ratio > 0.0 && b.failure_ratio <= 1.0) {
        return Err(ConfigError::new(
            "upstream.breaker.failure_ratio",
            "must be above 0 and at most 1",
        ));
    }
    if b.window == 0 || b.min_calls == 0 || b.min_calls > b.window {
        return Err(ConfigError::new(
            "upstream.breaker.min_calls",
            "window and min_calls must be at least 1, and min_calls at most window",
        ));
    }
    if u.timeout_ms == 0 || u.connect_timeout_ms == 0 {
        return Err(ConfigError::new(
            "upstream.timeout_ms",
            "timeouts must be at least 1 ms",
        ));
    }
    validate_batching(u)
}

/// Most messages in one batch request; CM takes many `msg` entries, and a
/// bigger request only makes one failure cost more messages.
pub const MAX_BATCH: usize = 1000;

fn validate_batching(u: &UpstreamConfig) -> Result<(), ConfigError> {
    if u.batch_wait_us > 1000 {
        return Err(ConfigError::new(
            "upstream.batch_wait_us",
            format!(
                "{} is too long: a message waits at most 1000 µs for others to share its request (0: no coalescing)",
                u.batch_wait_us
            ),
        ));
    }
    if !(1..=MAX_BATCH).contains(&u.batch_max) {
        return Err(ConfigError::new(
            "upstream.batch_max",
            format!("must be 1 to {MAX_BATCH} messages per request"),
        ));
    }
    if u.batch_url.is_empty() {
        return Ok(());
    }
    if u.kind != UpstreamKind::Http {
        return Err(ConfigError::new(
            "upstream.batch_url",
            "only for kind = \"http\" (CM batches on its own endpoint; Twilio and Vonage have no batch call)",
        ));
    }
    let url = reqwest::Url::parse(&u.batch_url)
        .map_err(|e| ConfigError::new("upstream.batch_url", format!("{:?}: {e}", u.batch_url)))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::new(
            "upstream.batch_url",
            "must be an http(s) URL with a host",
        ));
    }
    Ok(())
}

/// Checks every `[tenants.twilio]`; `tenants` are the already-validated
/// tenants, in the same order as `configs`.
pub(super) fn twilio_accounts(
    configs: &[TenantConfig],
    tenants: &[Arc<Tenant>],
) -> Result<Vec<TwilioAccount>, ConfigError> {
    let mut accounts: Vec<TwilioAccount> = Vec::new();
    for (i, (tc, tenant)) in configs.iter().zip(tenants).enumerate() {
        let Some(t) = &tc.twilio else { continue };
        let key = |field: &str| format!("tenants[{i}].twilio.{field}");
        if !is_sid(&t.account_sid, "AC") {
            return Err(ConfigError::new(
                key("account_sid"),
                "must be AC followed by 32 hex digits, like a Twilio account SID",
            ));
        }
        if accounts.iter().any(|a| a.account_sid == t.account_sid) {
            return Err(ConfigError::new(
                key("account_sid"),
                "is used by another tenant",
            ));
        }
        let auth_token = match (&t.auth_token, &t.auth_token_sha256) {
            (Some(tok), None) if !tok.expose().trim().is_empty() => {
                ApiKeyHash::of_key(tok.expose())
            }
            (None, Some(h)) => ApiKeyHash::from_hex(h).map_err(|_| {
                ConfigError::new(key("auth_token_sha256"), "must be 64 hex characters")
            })?,
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    key("auth_token"),
                    "set auth_token or auth_token_sha256, not both",
                ))
            }
            _ => {
                return Err(ConfigError::new(
                    key("auth_token"),
                    "required (or auth_token_sha256)",
                ))
            }
        };
        let mut categories = HashMap::new();
        for (who, c) in &t.categories {
            let category = Category::parse(c).ok_or_else(|| {
                ConfigError::new(
                    key(&format!("categories.{who}")),
                    format!("{c:?} is not one of marketing, transactional, otp"),
                )
            })?;
            categories.insert(who.trim().to_string(), category);
        }
        let mut senders = HashMap::new();
        for (service, from) in &t.senders {
            let k = key(&format!("senders.{service}"));
            if !is_sid(service, "MG") {
                return Err(ConfigError::new(
                    k,
                    "the key must be a Messaging Service SID (MG followed by 32 hex digits)",
                ));
            }
            let sender = Sender::parse(from).map_err(|m| ConfigError::new(&k, m))?;
            senders.insert(service.clone(), sender);
        }
        accounts.push(TwilioAccount {
            tenant: tenant.clone(),
            account_sid: t.account_sid.clone(),
            auth_token,
            signing_token: t.auth_token.clone().filter(|s| !s.expose().is_empty()),
            categories,
            senders,
        });
    }
    Ok(accounts)
}

#[cfg(test)]
mod tests {
    use figment::providers::{Format, Serialized, Toml};
    use figment::Figment;

    use super::super::{Config, Settings};
    use super::*;

    const SID: &str = "AC0123456789abcdef0123456789abcdef";

    fn settings(toml: &str) -> Result<Settings, ConfigError> {
        let cfg: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(toml))
            .extract()
            .map_err(|e| ConfigError::new(e.path.join("."), e.kind.to_string()))?;
        Settings::from_config(cfg)
    }

    fn tenant(twilio: &str) -> String {
        format!(
            "[[tenants]]\nid = \"acme\"\nname = \"ACME\"\napi_key = \"k\"\n[tenants.twilio]\n{twilio}\n"
        )
    }

    #[test]
    fn upstream_keys_are_required_per_kind() {
        let e = settings("[upstream]\nkind = \"twilio\"").unwrap_err();
        assert_eq!(e.key, "upstream.account_sid");
        let e = settings(&format!(
            "[upstream]\nkind = \"twilio\"\naccount_sid = \"{SID}\""
        ))
        .unwrap_err();
        assert_eq!(e.key, "upstream.auth_token");
        assert!(e.message.contains("\"twilio\""), "{e}");
        let e = settings("[upstream]\nkind = \"cm\"").unwrap_err();
        assert_eq!(e.key, "upstream.product_token");
        let e = settings("[upstream]\nkind = \"vonage\"\napi_key = \"k\"").unwrap_err();
        assert_eq!(e.key, "upstream.api_secret");
        let e = settings(
            "[upstream]\nkind = \"vonage\"\napi_key = \"k\"\napi_secret = \"s\"\nurl = \"https://rest.nexmo.com/sms/json\"",
        )
        .unwrap_err();
        assert_eq!(e.key, "upstream.url");
        assert!(settings(
            "[upstream]\nkind = \"vonage\"\napi_key = \"k\"\napi_secret = \"s\"\nurl = \"http://127.0.0.1:9000\""
        )
        .is_ok());
        let e = settings("[upstream.breaker]\nfailure_ratio = 0").unwrap_err();
        assert_eq!(e.key, "upstream.breaker.failure_ratio");
    }

    #[test]
    fn batching_keys_are_bounded() {
        let http = "[upstream]\nkind = \"http\"\nurl = \"http://127.0.0.1:9000/messages\"\n";
        assert!(settings(&format!("{http}batch_wait_us = 1000\nbatch_max = 1000")).is_ok());
        assert!(settings(&format!("{http}batch_wait_us = 0\nbatch_max = 1")).is_ok());
        let e = settings(&format!("{http}batch_wait_us = 1001")).unwrap_err();
        assert_eq!(e.key, "upstream.batch_wait_us");
        assert!(e.message.contains("1000 µs"), "{e}");
        for max in [0, 1001] {
            let e = settings(&format!("{http}batch_max = {max}")).unwrap_err();
            assert_eq!(e.key, "upstream.batch_max", "{max}");
        }
        assert!(settings(&format!(
            "{http}batch_url = \"http://127.0.0.1:9000/batch\""
        ))
        .is_ok());
        let e = settings(&format!("{http}batch_url = \"ftp://x/batch\"")).unwrap_err();
        assert_eq!(e.key, "upstream.batch_url");
        let e = settings(
            "[upstream]\nkind = \"cm\"\nproduct_token = \"t\"\nbatch_url = \"http://127.0.0.1:9000/b\"",
        )
        .unwrap_err();
        assert_eq!(e.key, "upstream.batch_url");
        assert!(e.message.contains("only for kind"), "{e}");
    }

    #[test]
    fn twilio_front_config_is_checked() {
        let ok = settings(&tenant(&format!(
            "account_sid = \"{SID}\"\nauth_token = \"tok\"\ncategories = {{ \"ACMEOTP\" = \"otp\" }}\nsenders = {{ \"MG0123456789abcdef0123456789abcdef\" = \"ACME\" }}"
        )))
        .unwrap();
        assert_eq!(ok.twilio_accounts.len(), 1);
        assert_eq!(
            ok.twilio_accounts[0].categories.get("ACMEOTP"),
            Some(&Category::Otp)
        );
        assert!(ok.twilio_accounts[0]
            .auth_token
            .matches(&ApiKeyHash::of_key("tok")));

        let e = settings(&tenant("account_sid = \"AC12\"\nauth_token = \"t\"")).unwrap_err();
        assert_eq!(e.key, "tenants[0].twilio.account_sid");
        let e = settings(&tenant(&format!("account_sid = \"{SID}\""))).unwrap_err();
        assert_eq!(e.key, "tenants[0].twilio.auth_token");
        let e = settings(&tenant(&format!(
            "account_sid = \"{SID}\"\nauth_token = \"t\"\ncategories = {{ \"ACME\" = \"promo\" }}"
        )))
        .unwrap_err();
        assert_eq!(e.key, "tenants[0].twilio.categories.ACME");
        let e = settings(&tenant(&format!(
            "account_sid = \"{SID}\"\nauth_token = \"t\"\nsenders = {{ \"ACME\" = \"ACME\" }}"
        )))
        .unwrap_err();
        assert_eq!(e.key, "tenants[0].twilio.senders.ACME");
    }

    #[test]
    fn provider_secrets_do_not_print() {
        let s = settings(&format!(
            "[upstream]\nkind = \"twilio\"\naccount_sid = \"{SID}\"\nauth_token = \"very-secret\"\n{}",
            tenant(&format!("account_sid = \"{SID}\"\nauth_token = \"front-secret\""))
        ))
        .unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("very-secret") && !printed.contains("front-secret"));
    }
}
