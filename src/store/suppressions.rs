//! Suppressions: the state of each (tenant, number) and its append-only
//! history, and bulk imports of plain lists.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Result;
use crate::domain::{Campaign, Event, Notification, PhoneNumber, Source, TenantId, UnixMillis};

/// Current subscription state of one number for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    pub suppressed: bool,
    pub updated: UnixMillis,
    pub source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<Campaign>,
    /// When the number's data was erased (`DELETE /v1/subjects/{number}`):
    /// the opt-out is then held as a keyed hash of the number with only
    /// its time and source (see `SubjectStore`), and still blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased: Option<UnixMillis>,
}

#[async_trait]
pub trait SuppressionStore: Send + Sync {
    async fn suppression(
        &self,
        tenant: &TenantId,
        number: &PhoneNumber,
    ) -> Result<Option<Suppression>>;

    /// Whether each of `numbers` is suppressed for `tenant`, in order: one
    /// look-up for a whole request's recipients.
    async fn suppressed(&self, tenant: &TenantId, numbers: &[PhoneNumber]) -> Result<Vec<bool>>;

    /// Applies an opt-out or opt-in. If it changes the state, the event is
    /// appended to the history in the same transaction and `true` returned;
    /// a repeat (STOP when already suppressed) changes nothing. An opt-out
    /// that changes the state also withdraws the number's consents for the
    /// tenant, every list, in that transaction (`ConsentStore`). An erased
    /// opt-out counts as suppressed; an opt-in lifts it.
    async fn record(&self, event: &Event) -> Result<bool> {
        Ok(self.record_many(std::slice::from_ref(event)).await? == 1)
    }

    /// [`SuppressionStore::record`] for a batch, in one transaction. Returns
    /// how many events changed a state (and so were appended).
    async fn record_many(&self, events: &[Event]) -> Result<usize> {
        let changes: Vec<(Event, Vec<Notification>)> =
            events.iter().map(|e| (e.clone(), Vec::new())).collect();
        Ok(self
            .record_notifying(&changes)
            .await?
            .into_iter()
            .filter(|c| *c)
            .count())
    }

    /// [`SuppressionStore::record_many`], each event with the notifications
    /// to write to the outbox, in the same transaction, if (and only if) it
    /// changes the state. Returns, for each event, whether it did.
    async fn record_notifying(&self, changes: &[(Event, Vec<Notification>)]) -> Result<Vec<bool>>;

    /// The history of one number for one tenant, oldest first.
    async fn events(&self, tenant: &TenantId, number: &PhoneNumber) -> Result<Vec<Event>>;

    /// Numbers currently suppressed for `tenant`, in E.164 order, starting
    /// after `after`. The cursor is the number itself, so entries added or
    /// removed elsewhere never shift a page: nothing is skipped or repeated.
    async fn suppressed_page(
        &self,
        tenant: &TenantId,
        after: Option<&PhoneNumber>,
        limit: usize,
    ) -> Result<Vec<(PhoneNumber, Suppression)>>;

    /// Starts a bulk import of plain numbers for `tenant`.
    async fn bulk_import(&self, tenant: &TenantId) -> Result<Box<dyn BulkImport>>;
}

/// What a bulk import did with the numbers it was given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkCounts {
    /// Newly suppressed.
    pub imported: u64,
    /// Already suppressed, or repeated.
    pub unchanged: u64,
    /// Numbers that have a state of their own saying "subscribed" (a
    /// re-subscribe): not bulk-written; the caller records each as an
    /// ordinary `import` event, so its history stays in order.
    pub individual: Vec<PhoneNumber>,
}

/// A large import of suppressions (source `import`, no reason, no campaign),
/// written in bulk instead of one transaction per number. Its numbers are
/// suppressed when [`BulkImport::finish`] returns, and durable after the
/// next `Store::durable`. Their history shows one `import` event each.
#[async_trait]
pub trait BulkImport: Send {
    /// Queues numbers; the backend writes them in rounds of its choosing.
    async fn add(&mut self, numbers: Vec<PhoneNumber>) -> Result<()>;
    /// Writes everything still queued.
    async fn finish(self: Box<Self>) -> Result<BulkCounts>;
}
