//! The outbox: notifications (webhooks to applications, confirmation SMS)
//! written in the same commit as the change they report, then delivered at
//! least once by a dispatcher, retried with backoff, in order per order key,
//! surviving restarts. Items a node has claimed are leased to it, so that
//! with several nodes on one database each item is out with one node at a
//! time, and a node that dies only delays its items until the lease ends.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Result;
use crate::domain::{Notification, TenantId, UnixMillis};

/// A notification in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// Increasing in the order items were written.
    pub id: u64,
    pub notification: Notification,
    pub created: UnixMillis,
    /// Not tried again before this.
    pub due: UnixMillis,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Claimed by a dispatcher until then.
    #[serde(default)]
    pub lease_until: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl OutboxItem {
    pub fn new(id: u64, notification: Notification, now: UnixMillis) -> OutboxItem {
        OutboxItem {
            id,
            notification,
            created: now,
            due: now,
            attempts: 0,
            lease_until: 0,
            last_error: None,
        }
    }
}

/// The outbox at a glance, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Waiting to be delivered (first try or retry).
    pub queued: u64,
    /// Of those, failed at least once.
    pub retrying: u64,
    /// Given up on, kept for `GET /v1/webhooks/failed`.
    pub failed: u64,
    /// Creation time of the oldest queued item.
    pub oldest: Option<UnixMillis>,
}

#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Writes notifications. Durable with the next `durable()`, which the
    /// caller awaits with the change they report.
    async fn enqueue(&self, notifications: &[Notification]) -> Result<()>;

    /// Claims up to `limit` items that are due at `now` and not leased,
    /// leasing them until `now + lease_ms`. Of the items sharing an order
    /// key only the oldest not yet delivered can be claimed, so they go out
    /// in order.
    async fn claim(&self, now: UnixMillis, limit: usize, lease_ms: i64) -> Result<Vec<OutboxItem>>;

    /// Like [`claim`](Self::claim), but leases only the items `admit`
    /// takes (the dispatcher's endpoints with room); the others are left as
    /// they are, and still hold back the later items of their order key.
    /// The default, for a backend that cannot filter as it claims, leases
    /// them all: the dispatcher then hands back what it cannot start, and
    /// by the time it gets to an item, a delivery may have made room for it.
    async fn claim_admitted(
        &self,
        now: UnixMillis,
        limit: usize,
        lease_ms: i64,
        _admit: &(dyn for<'n> Fn(&'n Notification) -> bool + Send + Sync),
    ) -> Result<Vec<OutboxItem>> {
        self.claim(now, limit, lease_ms).await
    }

    /// Delivered: the item leaves the outbox.
    async fn complete(&self, id: u64) -> Result<()>;

    /// Not delivered this time: counted, and due again at `due`.
    async fn retry(&self, id: u64, due: UnixMillis, error: &str) -> Result<()>;

    /// Hands a claimed item back untried (its endpoint is busy).
    async fn release(&self, id: u64) -> Result<()>;

    /// Given up: moved to the failed list.
    async fn give_up(&self, id: u64, error: &str) -> Result<()>;

    /// A tenant's given-up items, oldest first, after `after`.
    async fn failed_items(
        &self,
        tenant: &TenantId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<OutboxItem>>;

    async fn outbox_stats(&self) -> Result<OutboxStats>;
}
