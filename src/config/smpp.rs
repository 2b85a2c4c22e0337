//! `[smpp]` (the SMPP listener) and `[tenants.smpp]` (a tenant's bind
//! credentials and limits), checked with the bad key named.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret, TenantConfig};
use crate::domain::{ApiKeyHash, Category, Tenant};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmppConfig {
    /// Where applications bind (`127.0.0.1:2775`); no listener when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// PEM certificate chain and private key: the listener speaks TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Requests a bind may have unanswered at once, either way.
    pub window: usize,
    /// Open SMPP connections at most; beyond, new ones wait in the backlog.
    pub max_connections: usize,
    /// A connection must bind within this.
    pub bind_timeout_ms: u64,
    /// Silence after which stopgate sends an enquire_link.
    pub enquire_link_secs: u64,
    /// Silence after which the session is closed.
    pub inactivity_secs: u64,
    /// How long stopgate waits for the ESME's answer to its own requests.
    pub response_timeout_ms: u64,
    /// Wait before answering a bind with wrong credentials.
    pub auth_failure_delay_ms: u64,
    /// A concatenated message must be complete within this of its first part.
    pub reassembly_timeout_secs: u64,
    /// Parts of incomplete messages held per bind.
    pub max_pending_parts: usize,
}

impl Default for SmppConfig {
    fn default() -> Self {
        SmppConfig {
            listen: None,
            tls_cert: None,
            tls_key: None,
            window: 64,
            max_connections: 1024,
            bind_timeout_ms: 10_000,
            enquire_link_secs: 30,
            inactivity_secs: 120,
            response_timeout_ms: 10_000,
            auth_failure_delay_ms: 1_000,
            reassembly_timeout_secs: 60,
            max_pending_parts: 256,
        }
    }
}

impl SmppConfig {
    pub fn session_timers(&self) -> crate::smpp::session::Timers {
        crate::smpp::session::Timers {
            response: Duration::from_millis(self.response_timeout_ms),
            enquire_link: Duration::from_secs(self.enquire_link_secs),
            inactivity: Duration::from_secs(self.inactivity_secs),
            bind: Duration::from_millis(self.bind_timeout_ms),
        }
    }
}

/// What a marketing message to an opted-out recipient gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockedMode {
    /// Refused in `submit_sm_resp` (`ESME_RX_P_APPN`, 0x65).
    #[default]
    Refuse,
    /// Accepted, then a receipt with `stat:REJECTD`.
    Receipt,
}

/// `[tenants.smpp]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSmppConfig {
    pub system_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_sha256: Option<String>,
    /// Binds of this tenant open at once.
    #[serde(default = "default_max_binds")]
    pub max_binds: usize,
    /// submit_sm/data_sm PDUs per second over all its binds (each part
    /// counts); `ESME_RTHROTTLED` beyond.
    #[serde(default = "default_submits_per_second")]
    pub submits_per_second: u32,
    #[serde(default)]
    pub blocked: BlockedMode,
    /// Category by source address, for messages whose `service_type` names none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub categories: BTreeMap<String, String>,
}

fn default_max_binds() -> usize {
    8
}

fn default_submits_per_second() -> u32 {
    1000
}

/// A tenant's checked SMPP credentials and limits.
#[derive(Debug, Clone)]
pub struct SmppAccount {
    pub tenant: Arc<Tenant>,
    pub system_id: String,
    /// SHA-256 of the password, compared in constant time like API keys.
    pub password: ApiKeyHash,
    pub max_binds: usize,
    pub submits_per_second: u32,
    pub blocked: BlockedMode,
    pub categories: HashMap<String, Category>,
}

/// The checked `[smpp]` listener settings.
#[derive(Debug, Clone)]
pub struct SmppListen {
    pub addr: SocketAddr,
    pub tls: Option<(PathBuf, PathBuf)>,
}

pub(super) fn validate_listener(c: &SmppConfig) -> Result<Option<SmppListen>, ConfigError> {
    for (key, v, lo, hi) in [
        ("smpp.window", c.window as u64, 1, 10_000),
        (
            "smpp.max_connections",
            c.max_connections as u64,
            1,
            1_000_000,
        ),
        ("smpp.bind_timeout_ms", c.bind_timeout_ms, 1, 3_600_000),
        ("smpp.enquire_link_secs", c.enquire_link_secs, 1, 86_400),
        ("smpp.inactivity_secs", c.inactivity_secs, 1, 86_400),
        (
            "smpp.response_timeout_ms",
            c.response_timeout_ms,
            1,
            3_600_000,
        ),
        (
            "smpp.auth_failure_delay_ms",
            c.auth_failure_delay_ms,
            0,
            60_000,
        ),
        (
            "smpp.reassembly_timeout_secs",
            c.reassembly_timeout_secs,
            1,
            86_400,
        ),
        (
            "smpp.max_pending_parts",
            c.max_pending_parts as u64,
            1,
            1_000_000,
        ),
    ] {
        if !(lo..=hi).contains(&v) {
            return Err(ConfigError::new(
                key,
                format!("{v} must be from {lo} to {hi}"),
            ));
        }
    }
    if c.inactivity_secs <= c.enquire_link_secs {
        return Err(ConfigError::new(
            "smpp.inactivity_secs",
            "must be longer than smpp.enquire_link_secs, so a silent peer is asked before it is dropped",
        ));
    }
    let tls = match (&c.tls_cert, &c.tls_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            crate::smpp::front::tls_acceptor(cert, key).map_err(|(k, m)| ConfigError::new(k, m))?;
            Some((cert.clone(), key.clone()))
        }
        (Some(_), None) => {
            return Err(ConfigError::new(
                "smpp.tls_key",
                "required with smpp.tls_cert",
            ))
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                "smpp.tls_cert",
                "required with smpp.tls_key",
            ))
        }
    };
    let Some(listen) = &c.listen else {
        return Ok(None);
    };
    let addr = listen.parse::<SocketAddr>().map_err(|_| {
        ConfigError::new(
            "smpp.listen",
            format!("{listen:?} is not an address like 127.0.0.1:2775"),
        )
    })?;
    Ok(Some(SmppListen { addr, tls }))
}

/// Checks every `[tenants.smpp]`; `tenants` are the validated tenants in
/// the same order as `configs`.
pub(super) fn accounts(
    configs: &[TenantConfig],
    tenants: &[Arc<Tenant>],
) -> Result<Vec<SmppAccount>, ConfigError> {
    let mut accounts: Vec<SmppAccount> = Vec::new();
    for (i, (tc, tenant)) in configs.iter().zip(tenants).enumerate() {
        let Some(s) = &tc.smpp else { continue };
        let key = |field: &str| format!("tenants[{i}].smpp.{field}");
        // SMPP 3.4: system_id is a C string of at most 16 octets, password of 9.
        let id = s.system_id.trim();
        if id.is_empty() || id.len() > 15 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::new(
                key("system_id"),
                "must be 1 to 15 printable ASCII characters (SMPP 3.4)",
            ));
        }
        if accounts.iter().any(|a| a.system_id == id) {
            return Err(ConfigError::new(
                key("system_id"),
                "is used by another tenant",
            ));
        }
        let password = match (&s.password, &s.password_sha256) {
            (Some(p), None) => {
                let p = p.expose();
                if p.is_empty() || p.len() > 8 || !p.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(ConfigError::new(
                        key("password"),
                        "must be 1 to 8 printable ASCII characters (SMPP 3.4 allows no more)",
                    ));
                }
                ApiKeyHash::of_key(p)
            }
            (None, Some(h)) => ApiKeyHash::from_hex(h).map_err(|_| {
                ConfigError::new(key("password_sha256"), "must be 64 hex characters")
            })?,
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    key("password"),
                    "set password or password_sha256, not both",
                ))
            }
            (None, None) => {
                return Err(ConfigError::new(
                    key("password"),
                    "required (or password_sha256)",
                ))
            }
        };
        if !(1..=10_000).contains(&s.max_binds) {
            return Err(ConfigError::new(
                key("max_binds"),
                "must be from 1 to 10000",
            ));
        }
        if s.submits_per_second == 0 {
            return Err(ConfigError::new(
                key("submits_per_second"),
                "must be at least 1",
            ));
        }
        let mut categories = HashMap::new();
        for (who, c) in &s.categories {
            let category = Category::parse(c).ok_or_else(|| {
                ConfigError::new(
                    key(&format!("categories.{who}")),
                    format!("{c:?} is not one of marketing, transactional, otp"),
                )
            })?;
            categories.insert(who.trim().to_string(), category);
        }
        accounts.push(SmppAccount {
            tenant: tenant.clone(),
            system_id: id.to_string(),
            password,
            max_binds: s.max_binds,
            submits_per_second: s.submits_per_second,
            blocked: s.blocked,
            categories,
        });
    }
    Ok(accounts)
}

/// Reads a PEM file for the TLS check, naming the key on failure.
pub(crate) fn read_pem(key: &'static str, path: &Path) -> Result<Vec<u8>, (&'static str, String)> {
    std::fs::read(path).map_err(|e| (key, format!("cannot read {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use figment::providers::{Format, Serialized, Toml};
    use figment::Figment;

    use super::super::{Config, Settings};
    use super::*;

    fn settings(toml: &str) -> Result<Settings, ConfigError> {
        let cfg: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(toml))
            .extract()
            .map_err(|e| ConfigError::new(e.path.join("."), e.kind.to_string()))?;
        Settings::from_config(cfg)
    }

    fn tenant(smpp: &str) -> String {
        format!("[[tenants]]\nid = \"acme\"\nname = \"ACME\"\napi_key = \"k\"\n[tenants.smpp]\n{smpp}\n")
    }

    #[test]
    fn the_listener_is_optional_and_checked() {
        let s = settings("").unwrap();
        assert!(s.smpp_listen.is_none());
        let s = settings("[smpp]\nlisten = \"127.0.0.1:2775\"").unwrap();
        assert_eq!(s.smpp_listen.unwrap().addr.port(), 2775);
        for (toml, key) in [
            ("listen = \"localhost\"", "smpp.listen"),
            ("window = 0", "smpp.window"),
            (
                "enquire_link_secs = 60\ninactivity_secs = 60",
                "smpp.inactivity_secs",
            ),
            ("tls_cert = \"/nonexistent.pem\"", "smpp.tls_key"),
            (
                "tls_cert = \"/nonexistent.pem\"\ntls_key = \"/nonexistent.key\"",
                "smpp.tls_cert",
            ),
            ("max_pending_parts = 0", "smpp.max_pending_parts"),
            ("port = 1", "smpp.port"),
        ] {
            let e = settings(&format!("[smpp]\n{toml}")).unwrap_err();
            assert_eq!(e.key, key, "{toml}: {e}");
        }
    }

    #[test]
    fn tenant_credentials_are_checked() {
        let s = settings(&tenant(
            "system_id = \"acme\"\npassword = \"secret8\"\nblocked = \"receipt\"\ncategories = { \"ACMEOTP\" = \"otp\" }",
        ))
        .unwrap();
        let a = &s.smpp_accounts[0];
        assert_eq!(
            (a.system_id.as_str(), a.blocked, a.max_binds),
            ("acme", BlockedMode::Receipt, 8)
        );
        assert!(a.password.matches(&ApiKeyHash::of_key("secret8")));
        assert_eq!(a.categories.get("ACMEOTP"), Some(&Category::Otp));
        for (toml, key) in [
            (
                "system_id = \"\"\npassword = \"p\"",
                "tenants[0].smpp.system_id",
            ),
            (
                "system_id = \"a-very-long-system-id\"\npassword = \"p\"",
                "tenants[0].smpp.system_id",
            ),
            ("system_id = \"acme\"", "tenants[0].smpp.password"),
            (
                "system_id = \"acme\"\npassword = \"ninechars\"",
                "tenants[0].smpp.password",
            ),
            (
                "system_id = \"acme\"\npassword_sha256 = \"abc\"",
                "tenants[0].smpp.password_sha256",
            ),
            (
                "system_id = \"acme\"\npassword = \"p\"\ncategories = { \"X\" = \"promo\" }",
                "tenants[0].smpp.categories.X",
            ),
            (
                "system_id = \"acme\"\npassword = \"p\"\nsubmits_per_second = 0",
                "tenants[0].smpp.submits_per_second",
            ),
        ] {
            let e = settings(&tenant(toml)).unwrap_err();
            assert_eq!(e.key, key, "{toml}: {e}");
        }
        let e = settings(&tenant(
            "system_id = \"acme\"\npassword = \"p\"\nblocked = \"drop\"",
        ))
        .unwrap_err();
        assert!(e.key.contains("blocked"), "{e}");
        let two = format!(
            "{}[[tenants]]\nid = \"beta\"\nname = \"Beta\"\napi_key = \"k2\"\n[tenants.smpp]\nsystem_id = \"acme\"\npassword = \"p\"\n",
            tenant("system_id = \"acme\"\npassword = \"p\"")
        );
        assert_eq!(settings(&two).unwrap_err().key, "tenants[1].smpp.system_id");
        let printed = format!(
            "{:?}",
            settings(&tenant("system_id = \"acme\"\npassword = \"hunter2\"")).unwrap()
        );
        assert!(!printed.contains("hunter2"));
    }
}
