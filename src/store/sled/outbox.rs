//! The outbox in sled: `outbox`, id (u64 big-endian, increasing) → JSON
//! [`OutboxItem`]; `outbox_failed`, tenant·id → JSON item (replies, which
//! have no tenant, under the empty tenant).
//!
//! One node owns a sled store, so claims only guard against this node's own
//! dispatcher tasks; the lease is kept all the same, as on PostgreSQL.

use std::collections::HashSet;

use async_trait::async_trait;

use super::{decode, encode, key, prefix, Live, SledStore};
use crate::domain::{now_millis, Notification, TenantId, UnixMillis};
use crate::store::{OutboxItem, OutboxStats, OutboxStore, Result};

/// Items looked at per claim: a claim never walks an outbox of millions.
const CLAIM_SCAN: usize = 10_000;
/// Due items a claim may pass over because the dispatcher cannot take them
/// now (their endpoint is busy). Past these it stops: a claim looks as far
/// as one of 64 items that were leased and handed back used to, so an idle
/// endpoint's item behind a busy one's backlog is reached as it was then
/// (`webhooks::a_hanging_receiver_slows_no_send_and_no_inbound_answer`).
const CLAIM_REFUSED: usize = 64;

impl Live {
    /// A new item's key and value. Ids come from a counter started past the
    /// highest id stored, so they increase in the order items are written;
    /// no sled call, so it may run inside a transaction.
    pub(super) fn outbox_entry(
        &self,
        n: &Notification,
        now: UnixMillis,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let id = self
            .next_outbox_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let item = OutboxItem::new(id, n.clone(), now);
        Ok((id.to_be_bytes().to_vec(), encode(&item)))
    }

    /// The first id the counter hands out after an open: past every id in
    /// the outbox and in the failed list (keyed tenant·id: any tenant).
    pub(super) fn first_outbox_id(outbox: &sled::Tree, failed: &sled::Tree) -> Result<u64> {
        let id_of = |k: &[u8]| -> u64 {
            k.len()
                .checked_sub(8)
                .map(|at| u64::from_be_bytes(k[at..].try_into().expect("8 bytes")))
                .unwrap_or(0)
        };
        let mut highest = outbox.last()?.map(|(k, _)| id_of(&k)).unwrap_or(0);
        for kv in failed.iter() {
            highest = highest.max(id_of(&kv?.0));
        }
        Ok(highest + 1)
    }

    fn outbox_item(&self, id: u64) -> Result<Option<(sled::IVec, OutboxItem)>> {
        match self.outbox.get(id.to_be_bytes())? {
            Some(v) => {
                let item = decode(&v)?;
                Ok(Some((v, item)))
            }
            None => Ok(None),
        }
    }

    /// Rewrites an item if no one else changed it meanwhile (the dispatcher's
    /// own tasks are the only writers: a lost race means "already done").
    fn update_item(&self, id: u64, f: impl Fn(&mut OutboxItem)) -> Result<()> {
        loop {
            let Some((old, mut item)) = self.outbox_item(id)? else {
                return Ok(());
            };
            f(&mut item);
            if self
                .outbox
                .compare_and_swap(id.to_be_bytes(), Some(old), Some(encode(&item)))?
                .is_ok()
            {
                return Ok(());
            }
        }
    }

    /// Leases up to `limit` due items that `admit` takes, oldest first; an
    /// item of an order key whose older item is still undelivered waits.
    fn claim_where(
        &self,
        now: UnixMillis,
        limit: usize,
        lease_ms: i64,
        admit: &dyn for<'n> Fn(&'n Notification) -> bool,
    ) -> Result<Vec<OutboxItem>> {
        let mut blocked: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        let mut refused = 0;
        for kv in self.outbox.iter().take(CLAIM_SCAN) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = kv?;
            let mut item: OutboxItem = decode(&v)?;
            let key = item.notification.order_key();
            let waiting = item.lease_until > now || item.due > now;
            let behind = key.as_ref().is_some_and(|k| blocked.contains(k));
            // The oldest undelivered item of a key holds the later ones back.
            if let Some(k) = key {
                blocked.insert(k);
            }
            if waiting || behind {
                continue;
            }
            if !admit(&item.notification) {
                refused += 1;
                if refused >= CLAIM_REFUSED {
                    break;
                }
                continue;
            }
            item.lease_until = now + lease_ms;
            if self
                .outbox
                .compare_and_swap(&k, Some(v), Some(encode(&item)))?
                .is_ok()
            {
                out.push(item);
            }
        }
        Ok(out)
    }
}

fn tenant_key(n: &Notification) -> Vec<u8> {
    n.tenant()
        .map(|t| t.as_str().as_bytes().to_vec())
        .unwrap_or_default()
}

#[async_trait]
impl OutboxStore for SledStore {
    async fn enqueue(&self, notifications: &[Notification]) -> Result<()> {
        self.with(|s| {
            let now = now_millis();
            // One item (a STOP's confirmation) is a plain insert: a batch
            // takes sled's process-wide write lock and writes out the log's
            // I/O buffer, which one per STOP made the STOP storm pay for.
            if let [n] = notifications {
                let (k, v) = s.outbox_entry(n, now)?;
                s.outbox.insert(k, v)?;
                return Ok(());
            }
            let mut batch = sled::Batch::default();
            for n in notifications {
                let (k, v) = s.outbox_entry(n, now)?;
                batch.insert(k, v);
            }
            s.outbox.apply_batch(batch)?;
            Ok(())
        })
    }

    async fn claim(&self, now: UnixMillis, limit: usize, lease_ms: i64) -> Result<Vec<OutboxItem>> {
        self.with(|s| s.claim_where(now, limit, lease_ms, &|_: &Notification| true))
    }

    async fn claim_admitted(
        &self,
        now: UnixMillis,
        limit: usize,
        lease_ms: i64,
        admit: &(dyn for<'n> Fn(&'n Notification) -> bool + Send + Sync),
    ) -> Result<Vec<OutboxItem>> {
        self.with(|s| s.claim_where(now, limit, lease_ms, admit))
    }

    async fn complete(&self, id: u64) -> Result<()> {
        self.with(|s| {
            s.outbox.remove(id.to_be_bytes())?;
            Ok(())
        })
    }

    async fn retry(&self, id: u64, due: UnixMillis, error: &str) -> Result<()> {
        self.with(|s| {
            s.update_item(id, |item| {
                item.attempts += 1;
                item.due = due;
                item.lease_until = 0;
                item.last_error = Some(error.chars().take(300).collect());
            })
        })
    }

    async fn release(&self, id: u64) -> Result<()> {
        self.with(|s| s.update_item(id, |item| item.lease_until = 0))
    }

    async fn give_up(&self, id: u64, error: &str) -> Result<()> {
        self.with(|s| {
            let Some((_, mut item)) = s.outbox_item(id)? else {
                return Ok(());
            };
            item.attempts += 1;
            item.lease_until = 0;
            item.last_error = Some(error.chars().take(300).collect());
            s.outbox_failed.insert(
                key(&[&tenant_key(&item.notification), &id.to_be_bytes()]),
                encode(&item),
            )?;
            s.outbox.remove(id.to_be_bytes())?;
            Ok(())
        })
    }

    async fn failed_items(
        &self,
        tenant: &TenantId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<OutboxItem>> {
        self.with(|s| {
            let t = tenant.as_str().as_bytes();
            let start = match after {
                Some(a) => key(&[t, &a.saturating_add(1).to_be_bytes()]),
                None => prefix(&[t]),
            };
            let p = prefix(&[t]);
            let mut out = Vec::new();
            for kv in s.outbox_failed.range(start..) {
                let (k, v) = kv?;
                if !k.starts_with(&p) || out.len() >= limit {
                    break;
                }
                out.push(decode(&v)?);
            }
            Ok(out)
        })
    }

    async fn outbox_stats(&self) -> Result<OutboxStats> {
        self.with(|s| {
            let mut stats = OutboxStats {
                failed: s.outbox_failed.len() as u64,
                ..Default::default()
            };
            for kv in s.outbox.iter() {
                let (_, v) = kv?;
                let item: OutboxItem = decode(&v)?;
                stats.queued += 1;
                stats.retrying += u64::from(item.attempts > 0);
                stats.oldest = Some(stats.oldest.map_or(item.created, |o| o.min(item.created)));
            }
            Ok(stats)
        })
    }
}
