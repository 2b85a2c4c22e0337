//! Message records in sled: `message_records`, tenant·id (16 bytes,
//! big-endian: sorted by creation) → the record (`record_codec.rs`); and
//! `message_records_by_provider`, provider·provider id → tenant·id.
//!
//! Keyed by tenant first, a tenant's listing reads the records themselves,
//! and a message costs two inserts, not three: the first layout (`messages`
//! by id, with a `messages_by_tenant` index) is moved into this one when a
//! store that has it is opened ([`migrate`]).

use std::ops::Bound;

use async_trait::async_trait;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::insights::counter_key;
use super::record_codec::{decode, encode};
use super::{key, prefix, read_u64, Live, SledStore};
use crate::domain::{MessageId, MessageStatus, Notification, TenantId, UnixMillis};
use crate::store::messages::SharedNotify;
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

/// Where a record is: tenant·id.
pub(super) fn message_key(tenant: &TenantId, id: &MessageId) -> Vec<u8> {
    key(&[tenant.as_str().as_bytes(), &id.to_bytes()])
}

/// The id at the end of a record's key.
fn id_of_key(k: &[u8]) -> Result<MessageId> {
    match k.len().checked_sub(16) {
        Some(at) => stored_id(&k[at..]),
        None => Err(StoreError::Corrupt("message key".into())),
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

/// Moves the records of the first layout (`messages` keyed by id, with
/// `messages_by_tenant` and `messages_by_provider` beside it) into
/// `message_records`, then drops the old trees. Each record is written
/// under its new key before its old key is removed, so a crash midway
/// loses none and the next open carries on. The values move as they are
/// (JSON, which `record_codec` still reads). Returns how many it moved.
pub(super) fn migrate(
    db: &sled::Db,
    records: &sled::Tree,
    by_provider: &sled::Tree,
) -> Result<u64> {
    let has = |name: &[u8]| db.tree_names().iter().any(|n| n.as_ref() == name);
    if !has(b"messages") {
        return Ok(0);
    }
    let old = db.open_tree("messages")?;
    let mut moved = 0;
    for kv in old.iter() {
        let (k, v) = kv?;
        let r = decode(&v)?;
        let new_key = message_key(&r.tenant, &r.id);
        for pk in provider_keys(&r) {
            by_provider.insert(pk, new_key.as_slice())?;
        }
        records.insert(new_key, v)?;
        old.remove(k)?;
        moved += 1;
    }
    for name in ["messages_by_tenant", "messages_by_provider", "messages"] {
        if has(name.as_bytes()) {
            db.drop_tree(name)?;
        }
    }
    if moved > 0 {
        tracing::info!(
            records = moved,
            "message records moved to the tenant-keyed layout"
        );
    }
    Ok(moved)
}

impl Live {
    pub(super) fn record(
        &self,
        tenant: &TenantId,
        id: &MessageId,
    ) -> Result<Option<MessageRecord>> {
        self.messages
            .get(message_key(tenant, id))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Writes records with their provider index, and notifications.
    pub(super) fn write_records(
        &self,
        records: &[MessageRecord],
        notifications: &[Notification],
    ) -> Result<()> {
        // Plain inserts, not `apply_batch`: a batch takes sled's
        // process-wide write lock and waits out every reader, and four per
        // request serialized the whole send path (bench rows 3 and 4 ran
        // at a quarter of their speed). Records are not fsynced one by one
        // anyway (docs/durability.md): a crash may lose the last ones, and
        // the order below keeps the index pointing at a record written
        // before it.
        let keys: Vec<Vec<u8>> = records
            .iter()
            .map(|r| message_key(&r.tenant, &r.id))
            .collect();
        for (r, k) in records.iter().zip(&keys) {
            self.messages.insert(k.as_slice(), encode(r))?;
        }
        for (r, k) in records.iter().zip(&keys) {
            for pk in provider_keys(r) {
                self.messages_by_provider.insert(pk, k.as_slice())?;
            }
        }
        let now = crate::domain::now_millis();
        for n in notifications {
            let (k, v) = self.outbox_entry(n, now)?;
            self.outbox.insert(k, v)?;
        }
        Ok(())
    }

    fn remove_record(&self, r: &MessageRecord) -> Result<()> {
        self.messages.remove(message_key(&r.tenant, &r.id))?;
        for k in provider_keys(r) {
            self.messages_by_provider.remove(k)?;
        }
        Ok(())
    }

    /// The records of one tenant, oldest first.
    pub(super) fn tenant_records(
        &self,
        tenant: &TenantId,
    ) -> impl Iterator<Item = Result<MessageRecord>> + '_ {
        self.messages
            .scan_prefix(prefix(&[tenant.as_str().as_bytes()]))
            .map(|kv| decode(&kv?.1))
    }
}

#[async_trait]
impl MessageStore for SledStore {
    async fn put_messages(
        &self,
        records: &[MessageRecord],
        notifications: &[Notification],
    ) -> Result<()> {
        self.with(|s| s.write_records(records, notifications))
    }

    async fn message(&self, tenant: &TenantId, id: &MessageId) -> Result<Option<MessageRecord>> {
        self.with(|s| s.record(tenant, id))
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
            for kv in s.messages.range((low, high)).rev() {
                if out.len() >= limit {
                    break;
                }
                let r = decode(&kv?.1)?;
                if filter.matches(&r) {
                    out.push(r);
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
        notify: SharedNotify,
    ) -> Result<Option<Reported>> {
        self.with(|s| {
            let Some(record_key) = s
                .messages_by_provider
                .get(provider_key(provider, provider_id))?
            else {
                return Ok(None);
            };
            // The record and its campaign's delivery counters, in one transaction
            // (sled runs it again if a concurrent report wrote the record first).
            let now = crate::domain::now_millis();
            let outcome = (&s.messages, &s.insights, &s.outbox).transaction(|(m, ins, outbox)| {
                let Some(old) = m.get(&record_key)? else {
                    return Ok(None);
                };
                let mut record = decode(&old).map_err(ConflictableTransactionError::Abort)?;
                let before = record.status();
                let applied = record.apply(change.clone());
                if applied != Applied::Duplicate {
                    m.insert(&record_key, encode(&record))?;
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
            // Tenant by tenant: each tenant's records are in creation order,
            // so its purge stops at its first record made at `before` or later.
            let mut purged = 0;
            let mut next_tenant: Vec<u8> = Vec::new();
            while purged < step {
                let Some(kv) = s.messages.range(next_tenant.as_slice()..).next() else {
                    break;
                };
                let (first, _) = kv?;
                let Some(tenant_len) = first.len().checked_sub(17) else {
                    return Err(StoreError::Corrupt("message key".into()));
                };
                let tenant_prefix = first[..=tenant_len].to_vec();
                for kv in s.messages.scan_prefix(&tenant_prefix) {
                    if purged >= step {
                        break;
                    }
                    let (k, v) = kv?;
                    if id_of_key(&k)?.created() >= before {
                        break;
                    }
                    let r = decode(&v)?;
                    s.remove_record(&r)?;
                    purged += 1;
                }
                // Just past every key of this tenant: its separator, plus one.
                next_tenant = tenant_prefix;
                *next_tenant.last_mut().expect("a separator") += 1;
            }
            Ok(purged)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::segments::Encoding;
    use crate::domain::Category;
    use std::sync::Arc;

    fn record(tenant: &str, to: &str, provider_id: &str) -> MessageRecord {
        MessageRecord {
            id: MessageId::generate(),
            tenant: TenantId::parse(tenant).unwrap(),
            to: to.into(),
            country: None,
            category: Category::Marketing,
            campaign: None,
            sender: "ACME".into(),
            encoding: Encoding::Gsm7,
            segments: 1,
            provider: Some("http".into()),
            provider_id: Some(provider_id.into()),
            body: None,
            callback: None,
            deliver_after: None,
            history: vec![StatusChange {
                status: MessageStatus::Sent,
                at: 1_000,
                error: None,
            }],
        }
    }

    /// A store written with the first layout opens with its records where
    /// the new one looks: by tenant and id, listed, and found by a report.
    #[tokio::test]
    async fn records_of_the_first_layout_are_moved_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let (a1, a2, b1) = (
            record("acme", "+33612345601", "p-a1"),
            record("acme", "+33612345602", "p-a2"),
            record("beta", "+33612345603", "p-b1"),
        );
        {
            let db = sled::open(&path).unwrap();
            let (old, by_tenant, by_provider) = (
                db.open_tree("messages").unwrap(),
                db.open_tree("messages_by_tenant").unwrap(),
                db.open_tree("messages_by_provider").unwrap(),
            );
            for r in [&a1, &a2, &b1] {
                let id = r.id.to_bytes();
                old.insert(id, serde_json::to_vec(r).unwrap()).unwrap();
                by_tenant
                    .insert(key(&[r.tenant.as_str().as_bytes(), &id]), &[])
                    .unwrap();
                for k in provider_keys(r) {
                    by_provider.insert(k, &id).unwrap();
                }
            }
            db.flush().unwrap();
        }
        let s = SledStore::open(&path, 16).unwrap();
        let acme = TenantId::parse("acme").unwrap();
        let listed = s
            .messages(&acme, &MessageFilter::default(), None, 10)
            .await
            .unwrap();
        assert_eq!(listed, [a2.clone(), a1.clone()], "newest first");
        assert_eq!(s.message(&acme, &b1.id).await.unwrap(), None);
        let got = s
            .report(
                "http",
                "p-b1",
                StatusChange {
                    status: MessageStatus::Delivered,
                    at: 2_000,
                    error: None,
                },
                Arc::new(|_: &MessageRecord| Vec::new()),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (got.record.id, got.applied),
            (b1.id.clone(), Applied::Changed)
        );
        let names = s.live().unwrap().db.tree_names();
        for old in ["messages", "messages_by_tenant", "messages_by_provider"] {
            assert!(
                !names.iter().any(|n| n.as_ref() == old.as_bytes()),
                "{old} was not dropped"
            );
        }
        drop(s);
        // Opened again, nothing is moved twice and nothing is lost.
        let s = SledStore::open(&path, 16).unwrap();
        let listed = s
            .messages(&acme, &MessageFilter::default(), None, 10)
            .await
            .unwrap();
        assert_eq!(listed.len(), 2);
    }

    #[tokio::test]
    async fn the_purge_goes_tenant_by_tenant_and_keeps_newer_records() {
        let (_d, s) = crate::store::sled::tests::open();
        let old = [
            record("acme", "+33612345611", "p1"),
            record("acme2", "+33612345612", "p2"),
            record("beta", "+33612345613", "p3"),
        ];
        s.put_messages(&old, &[]).await.unwrap();
        let cutoff = crate::domain::now_millis() + 1;
        std::thread::sleep(std::time::Duration::from_millis(3));
        let young = record("acme", "+33612345614", "p4");
        s.put_messages(std::slice::from_ref(&young), &[])
            .await
            .unwrap();
        // Two per round: the rounds together purge all three old ones.
        assert_eq!(s.purge_messages(cutoff, 2).await.unwrap(), 2);
        assert_eq!(s.purge_messages(cutoff, 2).await.unwrap(), 1);
        assert_eq!(s.purge_messages(cutoff, 2).await.unwrap(), 0);
        for r in &old {
            assert_eq!(s.message(&r.tenant, &r.id).await.unwrap(), None);
        }
        assert_eq!(
            s.message(&young.tenant, &young.id).await.unwrap().as_ref(),
            Some(&young)
        );
        let change = StatusChange {
            status: MessageStatus::Delivered,
            at: 2_000,
            error: None,
        };
        let gone = s
            .report(
                "http",
                "p2",
                change.clone(),
                Arc::new(|_: &MessageRecord| Vec::new()),
            )
            .await;
        assert!(gone.unwrap().is_none(), "the purged record's index is gone");
        let kept = s
            .report(
                "http",
                "p4",
                change,
                Arc::new(|_: &MessageRecord| Vec::new()),
            )
            .await;
        assert!(kept.unwrap().is_some());
    }
}
