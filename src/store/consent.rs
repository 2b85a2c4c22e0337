//! Consents: per (tenant, number, list) the current consent and its
//! append-only history, beside the suppression state. The transitions are
//! `domain::consent::apply`, run by the backend under the record's lock.

use async_trait::async_trait;

use super::Result;
use crate::domain::consent::{GateFacts, Refusal};
use crate::domain::{
    ConsentEvent, ConsentList, ConsentState, LinkCode, Notification, PhoneNumber, TenantId,
    UnixMillis,
};

/// What one event did.
pub type ConsentOutcome = std::result::Result<bool, Refusal>;

/// How many records of one list are in each state, for insights.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsentCounts {
    /// Given and not lapsed.
    pub given: u64,
    /// Of those, lapsing before the horizon asked for (unless renewed).
    pub expiring: u64,
    /// Given once, lapsed without a renewal.
    pub lapsed: u64,
    /// Asked, not answered.
    pub pending: u64,
    pub withdrawn: u64,
}

#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// The number's consents for `tenant`, one per list it has a record for,
    /// by list name.
    async fn consents(
        &self,
        tenant: &TenantId,
        number: &PhoneNumber,
    ) -> Result<Vec<(ConsentList, ConsentState)>>;

    /// The number's consent history for `tenant` (every list), oldest first.
    async fn consent_events(
        &self,
        tenant: &TenantId,
        number: &PhoneNumber,
    ) -> Result<Vec<ConsentEvent>>;

    /// Applies events in order, each under its record's lock: an event that
    /// changes the record is appended to the history with its
    /// notifications, in one transaction; one that changes nothing (a
    /// withdrawal of nothing) is not; one that cannot apply (an answer
    /// without an open request) is refused. Durable after `durable()`.
    async fn record_consents(
        &self,
        changes: &[(ConsentEvent, Vec<Notification>)],
    ) -> Result<Vec<ConsentOutcome>>;

    /// For the send pipeline, one look-up for a request: per number, its
    /// consent for `list` and when its suppression state last changed.
    async fn consent_gates(
        &self,
        tenant: &TenantId,
        list: &ConsentList,
        numbers: &[PhoneNumber],
    ) -> Result<Vec<GateFacts>>;

    /// Records of `list` for `tenant`, in E.164 order after `after`.
    async fn consent_page(
        &self,
        tenant: &TenantId,
        list: &ConsentList,
        after: Option<&PhoneNumber>,
        limit: usize,
    ) -> Result<Vec<(PhoneNumber, ConsentState)>>;

    /// The open request a confirmation link code belongs to (expired or
    /// not), with its record.
    async fn consent_by_code(
        &self,
        code: &LinkCode,
    ) -> Result<Option<(TenantId, PhoneNumber, ConsentList, ConsentState)>>;

    /// Per list, the tenant's records by state. A consent given (or last
    /// renewed) after `valid_after` is valid (the caller passes now minus
    /// the tenant's ttl); valid ones given at or before `lapsing_until`
    /// count as expiring too.
    async fn consent_counts(
        &self,
        tenant: &TenantId,
        valid_after: UnixMillis,
        lapsing_until: UnixMillis,
    ) -> Result<Vec<(ConsentList, ConsentCounts)>>;
}
