//! The frequency cap's ledgers: per tenant and recipient, when each counted
//! marketing message goes (see [`crate::domain::frequency`]). Changed
//! atomically per recipient, across nodes: of two requests racing for a
//! recipient's last slot, exactly one gets it.

use async_trait::async_trait;

use super::Result;
use crate::domain::{FrequencyCap, TenantId, UnixMillis};

/// One message to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapEntry {
    /// E.164.
    pub number: String,
    /// Chosen by the caller, unique per message.
    pub key: u64,
    /// When it goes out.
    pub at: UnixMillis,
}

#[async_trait]
pub trait FrequencyStore: Send + Sync {
    /// Counts each message at its `at` if `cap` allows (replacing the
    /// key's earlier entry: a move), in order, atomically per recipient;
    /// `false` for one over the cap (it is not counted). Committed when it
    /// returns on PostgreSQL; with the next `durable()` on sled.
    async fn cap_reserve(
        &self,
        tenant: &TenantId,
        cap: FrequencyCap,
        now: UnixMillis,
        entries: &[CapEntry],
    ) -> Result<Vec<bool>>;

    /// These messages do not count any more (not sent after all).
    async fn cap_forget(&self, tenant: &TenantId, entries: &[(String, u64)]) -> Result<()>;

    /// Removes ledgers whose newest entry is older than `before`; returns
    /// how many. In bounded steps, like the message purge.
    async fn cap_purge(&self, before: UnixMillis, step: usize) -> Result<usize>;
}
