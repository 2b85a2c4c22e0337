//! Persistence. Only this module knows storage keys and encodings.
//!
//! Writes land in sled's in-memory log at once; [`Store::durable`] waits
//! until everything written before the call is fsynced. Callers write first,
//! then await `durable()` before they acknowledge or forward, and concurrent
//! callers share one fsync (group commit, see [`commit`]).

mod bulk;
pub mod commit;
pub mod sled;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::domain::{Event, Source, TenantId, UnixMillis};

pub use self::sled::SledStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage backend: {0}")]
    Backend(String),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("the store at {} is locked by another process (is stopgate running?)", .0.display())]
    InUse(std::path::PathBuf),
}

impl From<::sled::Error> for StoreError {
    fn from(e: ::sled::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl<T: std::fmt::Display> From<::sled::transaction::TransactionError<T>> for StoreError {
    fn from(e: ::sled::transaction::TransactionError<T>) -> Self {
        StoreError::Backend(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Current subscription state of one number for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    pub suppressed: bool,
    pub updated: UnixMillis,
    pub source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
}

/// Per-campaign counters, kept as events happen (never by scanning).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignCounters {
    /// `None` for messages sent without a campaign.
    pub campaign: Option<String>,
    /// Marketing messages accepted by the provider.
    pub sent: u64,
    /// Opt-outs by source (`sms`, `link`, `api`). Imports are not counted:
    /// a list moved in from elsewhere says nothing about a campaign.
    pub optouts: BTreeMap<String, u64>,
    /// Reasons picked on the link page.
    pub reasons: BTreeMap<String, u64>,
}

/// A minted opt-out link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    pub tenant: TenantId,
    /// E.164.
    pub number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    pub created: UnixMillis,
}

/// The last marketing send from one tenant to one number through one short code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketingSend {
    pub at: UnixMillis,
    /// The campaign of that send, so a STOP can be credited to it.
    pub campaign: Option<String>,
}

/// A reply that mentions a stop keyword but is not an opt-out by the rules
/// (`please don't stop the deals`), kept for a human to review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PossibleOptOut {
    pub at: UnixMillis,
    /// E.164 of the sender.
    pub number: String,
    /// The short code it was sent to.
    pub shortcode: String,
    /// The tenants on that short code: whoever reviews it decides for which.
    pub tenants: Vec<TenantId>,
    pub text: String,
}

/// What a bulk import did with the numbers it queued.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkCounts {
    /// Newly suppressed.
    pub imported: u64,
    /// Already suppressed, or repeated.
    pub unchanged: u64,
    /// Numbers that have a state of their own saying "subscribed" (a
    /// re-subscribe): not bulk-written; the caller records each as an
    /// ordinary `import` event, so its history stays in order.
    pub individual: Vec<String>,
}

/// A large import of suppressions (source `import`, no reason, no campaign),
/// written in sorted bulk instead of one transaction per number. Its numbers
/// are suppressed when [`BulkImport::finish`] returns, and durable after the
/// next [`Store::durable`]. Their history shows one `import` event each.
pub trait BulkImport: Send {
    /// Queues one E.164 number.
    fn add(&mut self, number: &str) -> Result<()>;
    /// Writes everything still queued.
    fn finish(self: Box<Self>) -> Result<BulkCounts>;
}

/// What a request's idempotency `reference` says about a new attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// First time: go ahead (the reference is now held).
    Fresh,
    /// Another attempt with this reference is running.
    InProgress,
    /// Already answered: here is the stored response.
    Done(Vec<u8>),
    /// The reference was used for a different request.
    Mismatch,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn suppression(&self, tenant: &TenantId, number: &str) -> Result<Option<Suppression>>;

    fn is_suppressed(&self, tenant: &TenantId, number: &str) -> Result<bool> {
        Ok(self
            .suppression(tenant, number)?
            .is_some_and(|s| s.suppressed))
    }

    /// Applies an opt-out or opt-in. If it changes the state, the event is
    /// appended to the audit log in the same transaction and `true` returned;
    /// a repeat (STOP when already suppressed) changes nothing.
    fn record(&self, event: &Event) -> Result<bool> {
        Ok(self.record_many(std::slice::from_ref(event))? == 1)
    }

    /// [`Store::record`] for a batch, in one transaction (imports). Returns
    /// how many events changed a state (and so were appended).
    fn record_many(&self, events: &[Event]) -> Result<usize>;

    /// Starts a bulk import for `tenant`. Blocking: call it off the async workers.
    fn bulk_import(&self, tenant: &TenantId) -> Result<Box<dyn BulkImport>>;

    /// Numbers currently suppressed for `tenant`, in E.164 order, starting
    /// after `after`. The cursor is the number itself, so entries added or
    /// removed elsewhere never shift a page: nothing is skipped or repeated.
    fn suppressed_page(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Suppression)>>;

    /// Adds `n` marketing messages sent to a campaign's counters.
    fn count_marketing_sent(&self, tenant: &TenantId, campaign: Option<&str>, n: u64)
        -> Result<()>;

    /// Every campaign's counters for a tenant.
    fn campaign_counters(&self, tenant: &TenantId) -> Result<Vec<CampaignCounters>>;

    /// The audit history of one number for one tenant, oldest first.
    fn events(&self, tenant: &TenantId, number: &str) -> Result<Vec<Event>>;

    /// The link code for (tenant, number, campaign): the existing one, or
    /// one made by `mint` and inserted only if absent. `true` if new.
    fn link_for(
        &self,
        tenant: &TenantId,
        number: &str,
        campaign: Option<&str>,
        mint: &mut dyn FnMut() -> String,
    ) -> Result<(String, bool)>;

    fn link(&self, code: &str) -> Result<Option<LinkRecord>>;

    /// Remembers that `tenant` sent marketing to `number` through `shortcode`
    /// (for attribution of a later STOP), and in which campaign (so the
    /// opt-out event can name it).
    fn note_marketing_send(
        &self,
        number: &str,
        shortcode: &str,
        tenant: &TenantId,
        at: UnixMillis,
        campaign: Option<&str>,
    ) -> Result<()>;

    /// The last marketing send noted for (number, short code, tenant).
    fn last_marketing_send(
        &self,
        number: &str,
        shortcode: &str,
        tenant: &TenantId,
    ) -> Result<Option<MarketingSend>>;

    /// Tenants that sent marketing to `number` through `shortcode` since `since`.
    fn marketing_senders(
        &self,
        number: &str,
        shortcode: &str,
        since: UnixMillis,
    ) -> Result<Vec<TenantId>>;

    /// Keeps a possible opt-out for review; returns its id (increasing).
    fn note_possible_optout(&self, record: &PossibleOptOut) -> Result<u64>;

    /// Possible opt-outs in id order, those after `after` (exclusive), at most `limit`.
    /// One possible opt-out by id.
    fn possible_optout(&self, id: u64) -> Result<Option<PossibleOptOut>>;

    fn possible_optouts(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, PossibleOptOut)>>;

    /// Starts an idempotent request; `fingerprint` identifies its content.
    fn begin_request(
        &self,
        tenant: &TenantId,
        reference: &str,
        fingerprint: &[u8; 32],
    ) -> Result<Attempt>;

    /// Stores the response of a request begun with [`Store::begin_request`].
    fn finish_request(
        &self,
        tenant: &TenantId,
        reference: &str,
        fingerprint: &[u8; 32],
        response: &[u8],
    ) -> Result<()>;

    /// Releases a reference whose request failed before doing anything, so a retry may run.
    fn abandon_request(&self, tenant: &TenantId, reference: &str) -> Result<()>;

    /// Forgets idempotency records older than `before`; returns how many.
    fn purge_requests(&self, before: UnixMillis) -> Result<usize>;

    /// Resolves once everything written before the call is on disk.
    async fn durable(&self) -> Result<()>;
}
