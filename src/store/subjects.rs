//! Data subjects (GDPR Art. 15 and 17): what else a tenant holds about a
//! number, for an access request, and the erasure of all of it except what
//! keeps an opt-out honoured.
//!
//! An erasure removes, for one (tenant, number): the suppression row and its
//! history (a bulk-imported entry too), the consents and their history, the
//! message records to it, its opt-out links, its marketing sends (reply
//! attribution), and the tenant from its possible opt-outs (the reply text is
//! removed once no tenant is left on it). If the number was opted out, what
//! remains is an *erased opt-out*: a keyed hash of the tenant and number
//! ([`SubjectKey::hash`]), the opt-out's time and source, and the erasure's time;
//! the suppression check hashes the numbers it is asked about, so the number
//! stays blocked. An audit record of the erasure (when, what was removed,
//! whether an opt-out was kept, the caller's reference) is kept under the
//! same hash. The key is drawn once per store and kept in it, so every node
//! (and a restored backup) hashes alike.
//!
//! Not erased: idempotency records of sends (they hold the response of a
//! send with a `reference`, and are purged after 24 hours), and
//! notifications already queued for delivery (a webhook to the tenant, a
//! confirmation SMS; delivered or given up within a day).

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{PossibleOptOut, Result};
use crate::domain::{Campaign, LinkCode, PhoneNumber, ShortCode, Source, TenantId, UnixMillis};

/// The key erased opt-outs are hashed under, keyed once: HMAC's key
/// schedule (two SHA-256 blocks) is done here, not on every suppression
/// check, which clones the prepared state instead.
#[derive(Clone)]
pub struct SubjectKey {
    raw: [u8; 32],
    mac: Hmac<Sha256>,
}

impl SubjectKey {
    pub fn new(raw: [u8; 32]) -> SubjectKey {
        SubjectKey {
            raw,
            mac: Hmac::<Sha256>::new_from_slice(&raw).expect("HMAC takes any key length"),
        }
    }

    /// The key itself, for a copy of the store to take along.
    pub fn raw(&self) -> [u8; 32] {
        self.raw
    }

    /// The hash an erased opt-out is kept under: HMAC-SHA256 of the tenant
    /// and the E.164 number. Per tenant, so that one person's erasures with
    /// two tenants cannot be linked.
    pub fn hash(&self, tenant: &TenantId, number: &PhoneNumber) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(b"stopgate-subject-v1\0");
        mac.update(tenant.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(number.as_str().as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectKey(..)")
    }
}

/// A fresh store key, from the CSPRNG.
pub fn new_subject_key() -> [u8; 32] {
    rand::random()
}

/// An opt-out link minted for the number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectLink {
    pub code: LinkCode,
    pub campaign: Option<Campaign>,
    pub created: UnixMillis,
}

/// The last marketing send to the number through a short code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectSend {
    pub shortcode: ShortCode,
    pub at: UnixMillis,
    pub campaign: Option<Campaign>,
}

/// What the other concerns do not answer per number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectData {
    pub links: Vec<SubjectLink>,
    pub sends: Vec<SubjectSend>,
    /// Replies that mention a stop keyword, shown to this tenant.
    pub possible_optouts: Vec<(u64, PossibleOptOut)>,
}

/// The opt-out an erasure kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptOptOut {
    /// When the number opted out (or was imported as opted out).
    pub since: UnixMillis,
    pub source: Source,
}

/// How many records of each kind an erasure removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// The suppression row (or bulk-imported entry): 0 or 1.
    pub suppression: u64,
    pub suppression_events: u64,
    pub consents: u64,
    pub consent_events: u64,
    pub messages: u64,
    pub links: u64,
    pub sends: u64,
    pub possible_optouts: u64,
}

/// The audit record of one erasure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    pub at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_optout: Option<KeptOptOut>,
    pub removed: Removed,
    /// The caller's reference for the request (a ticket id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

#[async_trait]
pub trait SubjectStore: Send + Sync {
    /// The number's links, marketing sends and possible opt-outs for `tenant`.
    async fn subject_data(&self, tenant: &TenantId, number: &PhoneNumber) -> Result<SubjectData>;

    /// Erases what `tenant` holds about `number` (see the module doc), in
    /// one transaction, and audits it. Durable after `durable()`. Erasing
    /// again removes what came since, and keeps the first erased opt-out.
    async fn erase_subject(
        &self,
        tenant: &TenantId,
        number: &PhoneNumber,
        reference: Option<&str>,
        at: UnixMillis,
    ) -> Result<Erasure>;

    /// The erasures of `number` for `tenant`, oldest first.
    async fn erasures(&self, tenant: &TenantId, number: &PhoneNumber) -> Result<Vec<Erasure>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_depends_on_key_tenant_and_number() {
        let n = |s: &str| PhoneNumber::parse(s).unwrap();
        let t = |s: &str| TenantId::parse(s).unwrap();
        let k = SubjectKey::new([7u8; 32]);
        let h = k.hash(&t("acme"), &n("+33612345678"));
        assert_eq!(h, k.hash(&t("acme"), &n("0033 6 12 34 56 78")));
        assert_ne!(h, k.hash(&t("beta"), &n("+33612345678")));
        assert_ne!(h, k.hash(&t("acme"), &n("+33612345679")));
        let other = SubjectKey::new([8u8; 32]);
        assert_ne!(h, other.hash(&t("acme"), &n("+33612345678")));
    }

    #[test]
    fn the_prepared_key_hashes_as_hmac_keyed_from_scratch() {
        // The stored hashes of erased opt-outs were made keyed from scratch:
        // the prepared state must give the very same bytes.
        let raw = [9u8; 32];
        let tenant = TenantId::parse("acme").unwrap();
        let number = PhoneNumber::parse("+33612345678").unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&raw).unwrap();
        mac.update(b"stopgate-subject-v1\0acme\0+33612345678");
        let expected: [u8; 32] = mac.finalize().into_bytes().into();
        let key = SubjectKey::new(raw);
        assert_eq!(key.hash(&tenant, &number), expected);
        // Cloning the prepared state leaves it unchanged for the next use.
        assert_eq!(key.hash(&tenant, &number), expected);
        assert_eq!(key.raw(), raw);
    }

    #[test]
    fn fresh_keys_differ() {
        assert_ne!(new_subject_key(), new_subject_key());
    }
}
