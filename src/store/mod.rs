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
    /// `answer`'s answer for it is kept as the record's. The default begins
    /// the record, reports and finishes it, all durable with the next
    /// [`Store::durable`]; a backend may keep the record in the report's own
    /// transaction.
    async fn report_once(
        &self,
        provider: &str,
        provider_id: &str,
        change: StatusChange,
        notify: SharedNotify,
        replay: &Replay,
        answer: ReportAnswer,
    ) -> Result<Once<Option<Reported>>> {
        let scope = TenantId::webhooks();
        let (key, fingerprint) = (replay.key.as_str(), &replay.fingerprint);
        match self.begin_request(&scope, key, fingerprint).await? {
            Attempt::Fresh => {}
            seen => return Ok(Once::Seen(seen)),
        }
        let reported = match self.report(provider, provider_id, change, notify).await {
            Ok(reported) => reported,
            Err(e) => {
                // Nothing was done: the provider's retry does the work.
                if let Err(e) = self.abandon_request(&scope, key).await {
                    tracing::warn!(error = %e, "could not release a webhook's replay record");
                }
                return Err(e);
            }
        };
        let answer = answer(reported.as_ref().map(|r| r.applied));
        if let Err(e) = self.finish_request(&scope, key, fingerprint, &answer).await {
            // The report is applied; a replay within the stale window gets 503.
            tracing::error!(error = %e, "could not keep a webhook's answer");
        }
        Ok(Once::Done {
            value: reported,
            answer,
        })
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
