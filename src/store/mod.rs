//! Persistence: the `Store` port and its backends. Only this module knows
//! storage keys, tables and encodings.
//!
//! The port is cut by concern, one trait per file (suppressions and their
//! history, bulk imports, links, attribution of replies, possible opt-outs
//! for review, idempotency records, insights counters, message records,
//! the outbox, held messages and frequency-cap ledgers, consents, data
//! subjects' access and erasure); [`Store`] is all of
//! them plus durability. Backends implement every trait: [`sled`] (embedded,
//! one node) and `postgres` (many nodes on one database).
//!
//! Durability: a write may be buffered until [`Store::durable`], which
//! resolves once everything written before the call survives a power loss.
//! Callers write first, then await `durable()` before they acknowledge or
//! forward; concurrent callers share one flush (group commit).

pub mod attribution;
pub mod commit;
pub mod consent;
pub mod copy;
mod error;
pub mod frequency;
pub mod held;
pub mod idempotency;
pub mod insights;
pub mod links;
pub mod messages;
pub mod outbox;
pub mod postgres;
pub mod review;
pub mod sled;
pub mod subjects;
pub mod suppressions;

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{StorageConfig, StorageKind};
use crate::domain::{Event, Notification, TenantId};
use messages::SharedNotify;

pub use attribution::{AttributionStore, MarketingSend};
pub use consent::{ConsentCounts, ConsentOutcome, ConsentStore};
pub use error::{Result, StoreError};
pub use frequency::{CapEntry, FrequencyStore};
pub use held::{Cancel, Claimed, HeldMessage, HeldStats, HeldStore, Release};
pub use idempotency::{Attempt, IdempotencyStore, Once, Replay};
pub use insights::{CampaignCounters, InsightStore};
pub use links::{LinkRecord, LinkStore};
pub use messages::{
    Applied, Callback, MessageFilter, MessageRecord, MessageStore, ReportAnswer, Reported,
    StatusChange,
};
pub use outbox::{OutboxItem, OutboxStats, OutboxStore};
pub use review::{PossibleOptOut, ReviewStore};
pub use subjects::{Erasure, SubjectData, SubjectStore};
pub use suppressions::{BulkCounts, BulkImport, Suppression, SuppressionStore};

pub use self::postgres::PgStore;
pub use self::sled::SledStore;

/// Everything stopgate keeps, behind one handle (`Arc<dyn Store>`).
#[async_trait]
pub trait Store:
    SuppressionStore
    + LinkStore
    + AttributionStore
    + ReviewStore
    + IdempotencyStore
    + InsightStore
    + MessageStore
    + OutboxStore
    + HeldStore
    + FrequencyStore
    + ConsentStore
    + SubjectStore
    + Send
    + Sync
    + 'static
{
    /// Resolves once everything written before the call is on stable
    /// storage (fsync, or a committed transaction).
    async fn durable(&self) -> Result<()>;

    /// Whether the store can take writes now; `/readyz` asks this.
    async fn ready(&self) -> Result<()>;

    /// A STOP's or START's events with its confirmation:
    /// [`SuppressionStore::record_notifying`], and the confirmation cap
    /// `cap` marked ([`IdempotencyStore::mark_once`], scope
    /// [`TenantId::webhooks`]). The confirmation goes out if any event
    /// changed a state or the cap was not marked yet; then `reply`, if
    /// given, is written to the outbox. Returns, per event, whether it
    /// changed, and whether the confirmation goes out. The default writes
    /// one after the other, all durable with the next [`Store::durable`];
    /// a backend may write them in one transaction.
    async fn record_confirming(
        &self,
        changes: &[(Event, Vec<Notification>)],
        cap: &str,
        reply: Option<&Notification>,
    ) -> Result<(Vec<bool>, bool)> {
        let first = self.mark_once(&TenantId::webhooks(), cap).await?;
        let changed = self.record_notifying(changes).await?;
        let confirm = first || changed.contains(&true);
        if let Some(reply) = reply.filter(|_| confirm) {
            self.enqueue(std::slice::from_ref(reply)).await?;
        }
        Ok((changed, confirm))
    }

    /// A delivery report under a webhook's replay record: applied
    /// ([`MessageStore::report`]) only if `replay` is new, and then
    /// `answer`'s answer for it is kept as the record's. The default is
    /// [`idempotency::once`] (a begin, the report, a finish, all durable
    /// with the next [`Store::durable`]); a backend may keep the record in
    /// the report's own transaction.
    async fn report_once(
        &self,
        provider: &str,
        provider_id: &str,
        change: StatusChange,
        notify: SharedNotify,
        replay: &Replay,
        answer: ReportAnswer,
    ) -> Result<Once<Option<Reported>>> {
        idempotency::once(self, replay, || async {
            let reported = self.report(provider, provider_id, change, notify).await?;
            let answer = answer(reported.as_ref().map(|r| r.applied));
            Ok((reported, answer))
        })
        .await
    }

    /// A reply's events under its webhook's replay record, only if
    /// `replay` is new: with `confirm` (a cap and a reply) as
    /// [`Store::record_confirming`], else as
    /// [`SuppressionStore::record_notifying`] (confirmed: false); `answer`
    /// is kept as the record's answer. The default is [`idempotency::once`];
    /// a backend may keep the record in the events' transaction.
    async fn record_once(
        &self,
        changes: &[(Event, Vec<Notification>)],
        confirm: Option<(&str, Option<&Notification>)>,
        replay: &Replay,
        answer: Vec<u8>,
    ) -> Result<Once<(Vec<bool>, bool)>> {
        idempotency::once(self, replay, || async {
            let recorded = match confirm {
                Some((cap, reply)) => self.record_confirming(changes, cap, reply).await?,
                None => (self.record_notifying(changes).await?, false),
            };
            Ok((recorded, answer))
        })
        .await
    }
}

/// Opens the backend the config names.
pub async fn open(cfg: &StorageConfig) -> Result<Arc<dyn Store>> {
    match cfg.kind {
        StorageKind::Sled => {
            if let Some(dir) = cfg.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Unavailable(format!("creating {}: {e}", dir.display()))
                })?;
            }
            Ok(Arc::new(SledStore::open(&cfg.path, cfg.cache_mb)?))
        }
        StorageKind::Postgres => Ok(Arc::new(PgStore::open(cfg).await?)),
    }
}
