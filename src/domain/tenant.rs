use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Country, ShortCode};

/// A tenant id from the config: `[a-z0-9_-]{1,64}`, so it is safe in store
/// keys, URLs and logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    /// The scope of provider webhooks' replay records (signatures and
    /// message ids seen), kept beside the tenants' idempotency records. No
    /// configured tenant can have it: `#` is not allowed in ids.
    pub fn webhooks() -> TenantId {
        TenantId("#webhooks".into())
    }

    pub fn parse(s: &str) -> Result<TenantId, String> {
        if !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            Ok(TenantId(s.to_string()))
        } else {
            Err(format!(
                "tenant id {s:?} must be 1 to 64 characters of a-z, 0-9, - and _"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        TenantId::parse(&s)
    }
}

impl From<TenantId> for String {
    fn from(t: TenantId) -> String {
        t.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// SHA-256 of an API key. Keys are only ever compared as hashes, in constant
/// time, so a config file may hold the hash instead of the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyHash([u8; 32]);

impl ApiKeyHash {
    pub fn of_key(key: &str) -> ApiKeyHash {
        ApiKeyHash(Sha256::digest(key.as_bytes()).into())
    }

    pub fn from_hex(hex_str: &str) -> Result<ApiKeyHash, String> {
        let bytes = hex::decode(hex_str.trim())
            .map_err(|_| "api_key_sha256 must be 64 hex characters".to_string())?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "api_key_sha256 must be 64 hex characters".to_string())?;
        Ok(ApiKeyHash(arr))
    }

    pub fn matches(&self, other: &ApiKeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeyHash(..)")
    }
}

/// A company sending through stopgate. Opt-outs are scoped to it.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    /// Shown to recipients on the opt-out page and in confirmations.
    pub name: String,
    pub api_key: ApiKeyHash,
    /// Normalized keyword that targets this tenant in `STOP <KEYWORD>`.
    pub keyword: Option<String>,
    /// Footer template for short-code countries (must contain `{shortcode}`).
    pub footer: Option<String>,
    /// Footer template for link countries (must contain `{url}`).
    pub link_footer: Option<String>,
    /// Short codes dedicated to this tenant, by country.
    pub shortcodes: BTreeMap<Country, ShortCode>,
    /// Which countries' send windows hold this tenant's marketing.
    pub send_windows: SendWindows,
    /// Outside a window: hold or refuse; and the frequency cap.
    pub schedule: SchedulePolicy,
    /// `[tenants.webhooks]`: where this tenant's events go, if anywhere.
    pub webhook: Option<super::Webhook>,
    /// What marketing needs besides the absence of an opt-out.
    pub marketing_requires: MarketingRequires,
    /// A consent lapses this many days after it was last given or renewed.
    pub consent_ttl_days: u32,
}

/// `[[tenants]] marketing_requires`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarketingRequires {
    /// Anyone who has not opted out (the default).
    #[default]
    NoOptout,
    /// Only numbers with confirmed, unexpired consent for the message's list.
    Consent,
}

impl Tenant {
    /// The default `consent_ttl_days`: the CNIL's three years without contact.
    pub const CONSENT_TTL_DAYS: u32 = 1095;

    pub fn consent_ttl_ms(&self) -> i64 {
        i64::from(self.consent_ttl_days) * 86_400_000
    }
}

/// `[[tenants]] send_windows`: the country rules' send windows apply to a
/// tenant's marketing unless its operator turned them off, for every
/// country or for some.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SendWindows {
    #[default]
    On,
    Off,
    OffIn(BTreeSet<Country>),
}

impl SendWindows {
    /// Whether the window of `country` (if it has one) applies.
    pub fn applies_in(&self, country: Country) -> bool {
        match self {
            SendWindows::On => true,
            SendWindows::Off => false,
            SendWindows::OffIn(off) => !off.contains(&country),
        }
    }
}

/// `[[tenants]] quiet_hours`: what becomes of marketing outside its
/// country's send window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QuietHours {
    /// Held (`scheduled`) and released when the window opens.
    #[default]
    Defer,
    /// Refused (`rejected`, `outside_send_window`) with the next opening.
    Reject,
}

/// `[[tenants]] frequency_cap`: at most `max` marketing messages per
/// recipient in any rolling window of `per_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrequencyCap {
    pub max: u32,
    pub per_ms: i64,
}

/// When a tenant's messages may go: what the send windows do to its
/// marketing, and how much marketing one recipient may get.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedulePolicy {
    pub quiet_hours: QuietHours,
    pub frequency_cap: Option<FrequencyCap>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_restricted() {
        assert!(TenantId::parse("acme").is_ok());
        assert!(TenantId::parse("acme-2_b").is_ok());
        assert!(TenantId::parse("Acme").is_err());
        assert!(TenantId::parse("a\0b").is_err());
        assert!(TenantId::parse("").is_err());
    }

    #[test]
    fn key_hash_matches_only_its_key() {
        let h = ApiKeyHash::of_key("sk_acme_123");
        assert!(h.matches(&ApiKeyHash::of_key("sk_acme_123")));
        assert!(!h.matches(&ApiKeyHash::of_key("sk_acme_124")));
        let hex = hex::encode(Sha256::digest(b"sk_acme_123"));
        assert!(ApiKeyHash::from_hex(&hex).unwrap().matches(&h));
        assert!(ApiKeyHash::from_hex("abc").is_err());
    }
}
