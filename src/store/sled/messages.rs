//! Message records in sled: `messages`, id (16 bytes, big-endian: sorted by
//! creation) → JSON record; `messages_by_tenant`, tenant·id → (); and
//! `messages_by_provider`, provider·provider id → id.

use std::ops::Bound;

use async_trait::async_trait;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::insights::counter_key;
use super::{decode, encode, key, prefix, read_u64, Live, SledStore};
use crate::domain::{MessageId, MessageStatus, Notification, TenantId, UnixMillis};
use crate::store::messages::Notify;
use crate::store::{
    Applied, MessageFilter, MessageRecord, MessageStore, Reported, Result, StatusChange, StoreError,
};

/// The campaign counter a marketing message in this status counts in.
fn delivery_counter(status: MessageStatus) -> Option<&'static str> {
    match status {
        MessageStatus::Delivered => Some("delivered"),
        MessageStatus::Undelivered | MessageStatus::Failed => Some("undelivered"),
        _ => None,
    }
}

fn stored_id(bytes: &[u8]) -> Result<MessageId> {
    let b: [u8; 16] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("message id".into()))?;
    Ok(MessageId::from_bytes(b))
}

fn provider_key(provider: &str, provider_id: &str) -> Vec<u8> {
    key(&[provider.as_bytes(), provider_id.as_bytes()])
}

/// The index keys of a record: one per provider id, since a message the
/// provider split into parts has one id per part (`id1,id2`), and a report
/// may name any of them.
pub(super) fn provider_keys(r: &MessageRecord) -> Vec<Vec<u8>> {
    match (&r.provider, &r.provider_id) {
        (Some(p), Some(ids)) => ids
            .split(',')
            .filter(|id| !id.is_empty())
            .map(|id| provider_key(p, id))
            .collect(),
        _ => Vec::new(),
    }
}

impl Live {
    fn record(&self, id: &MessageId) -> Result<Option<MessageRecord>> {
        self.messages
            .get(id.to_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    fn remove_record(&self, r: &MessageRecord) -> Result<()> {
        self.messages.remove(r.id.to_bytes())?;
        self.messages_by_tenant
            .remove(key(&[r.tenant.as_str().as_bytes(), &r.id.to_bytes()]))?;
        for k in provider_keys(r) {
            self.messages_by_provider.remove(k)?;
        }
        Ok(())
    }
}

#[async_trait]
impl MessageStore for SledStore {
    async fn put_messages(
        &self,
        records: &[MessageRecord],
        notifications: &[Notification],
    ) -> Result<()> {
        self.with(|s| {
            // Plain inserts, not `apply_batch`: a batch takes sled's
            // process-wide write lock and waits out every reader, and four
            // per request serialized the whole send path (bench rows 3 and
            // 4 ran at a quarter of their speed). Records are not fsynced
            // one by one anyway (docs/durability.md): a crash may lose the
            // last ones, and the order below keeps every index pointing at
            // a record that was written before it.
            for r in records {
                s.messages.insert(r.id.to_bytes(), encode(r))?;
            }
            for r in records {
                let id = r.id.to_bytes();
                s.messages_by_tenant
                    .insert(key(&[r.tenant.as_str().as_bytes(), &id]), &[])?;
                for k in provider_keys(r) {
                    s.messages_by_provider.insert(k, &id)?;
                }
            }
            let now = crate::domain::now_millis();
            for n in notifications {
                let (k, v) = s.outbox_entry(n, now)?;
                s.outbox.insert(k, v)?;
            }
            Ok(())
        })
    }

    async fn message(&self, tenant: &TenantId, id: &MessageId) -> Result<Option<MessageRecord>> {
        self.with(|s| Ok(s.record(id)?.filter(|r| &r.tenant == tenant)))
    }

    async fn messages(
        &self,
        tenant: &TenantId,
        filter: &MessageFilter,
        before: Option<&MessageId>,
        limit: usize,
    ) -> Result<Vec<MessageRecord>> {
        self.with(|s| {
            let t = tenant.as_str().as_bytes();
            let low = Bound::Included(prefix(&[t]));
            let high = match before {
                Some(id) => Bound::Excluded(key(&[t, &id.to_bytes()])),
                // Just past every id of this tenant.
                None => Bound::Excluded(key(&[t, &[0xff; 17]])),
            };
            let mut out = Vec::new();
            for kv in s.messages_by_tenant.range((low, high)).rev() {
                if out.len() >= limit {
                    break;
                }
                let (k, _) = kv?;
                let id = stored_id(&k[t.len() + 1..])?;
                // A record purged since its index was read: skip it.
                if let Some(r) = s.record(&id)? {
                    if filter.matches(&r) {
                        out.push(r);
                    }
                }
            }
            Ok(out)
        })
    }

    async fn report(
        &self,
        provider: &str,
        provider_id: &str,
        change: StatusChange,
        notify: Notify<'_>,
    ) -> Result<Option<Reported>> {
        self.with(|s| {
            let Some(id) = s
                .messages_by_provider
                .get(provider_key(provider, provider_id))?
            else {
                return Ok(None);
            };
            // The record and its campaign's delivery counters, in one transaction
            // (sled runs it again if a concurrent report wrote the record first).
            let now = crate::domain::now_millis();
            let outcome = (&s.messages, &s.insights, &s.outbox).transaction(|(m, ins, outbox)| {
                let Some(old) = m.get(&id)? else {
                    return Ok(None);
                };
                let mut record: MessageRecord = serde_json::from_slice(&old).map_err(|e| {
                    ConflictableTransactionError::Abort(StoreError::Corrupt(e.to_string()))
                })?;
                let before = record.status();
                let applied = record.apply(change.clone());
                if applied != Applied::Duplicate {
                    m.insert(&id, encode(&record))?;
                }
                if applied == Applied::Changed {
                    for n in notify(&record) {
                        let (k, v) = s
                            .outbox_entry(&n, now)
                            .map_err(ConflictableTransactionError::Abort)?;
                        outbox.insert(k, v)?;
                    }
                }
                if applied == Applied::Changed && record.category.is_marketing() {
                    let campaign = record.campaign.as_ref();
                    for (status, delta) in [(before, -1i64), (record.status(), 1)] {
                        let Some(counter) = delivery_counter(status) else {
                            continue;
                        };
                        let k = counter_key(&record.tenant, campaign, counter);
                        let n = ins.get(&k)?.map(|v| read_u64(&v)).unwrap_or(0) as i64;
                        ins.insert(k, &((n + delta).max(0) as u64).to_be_bytes())?;
                    }
                }
                Ok(Some(Reported { record, applied }))
            });
            match outcome {
                Ok(r) => Ok(r),
                Err(TransactionError::Abort(e)) => Err(e),
                Err(TransactionError::Storage(e)) => Err(e.into()),
            }
        })
    }

    async fn purge_messages(&self, before: UnixMillis, step: usize) -> Result<usize> {
        self.with(|s| {
            let mut purged = 0;
            for kv in s.messages.iter() {
                if purged >= step {
                    break;
                }
                let (k, v) = kv?;
                if stored_id(&k)?.created() >= before {
                    break;
                }
                let r: MessageRecord = decode(&v)?;
                s.remove_record(&r)?;
                purged += 1;
            }
            Ok(purged)
        })
    }
}
