//! The outbox in sled: `outbox`, id (u64 big-endian, increasing) → a
//! header and the JSON [`OutboxItem`] (see [`encode_item`]);
//! `outbox_failed`, tenant·id → JSON item (replies, which have no tenant,
//! under the empty tenant).
//!
//! One node owns a sled store, so claims only guard against this node's own
//! dispatcher tasks; the lease is kept all the same, as on PostgreSQL.

use std::borrow::Cow;
use std::collections::HashSet;

use async_trait::async_trait;

use super::{decode, encode, key, prefix, Live, SledStore};
use crate::domain::{now_millis, Notification, TenantId, UnixMillis};
use crate::store::{OutboxItem, OutboxStats, OutboxStore, Result, StoreError};

/// Items looked at per claim: a claim never walks an outbox of millions.
const CLAIM_SCAN: usize = 10_000;
/// Due items a claim may pass over because the dispatcher cannot take them
/// now (their endpoint is busy). Past these it stops: a claim looks as far
/// as one of 64 items that were leased and handed back used to, so an idle
/// endpoint's item behind a busy one's backlog is reached as it was then
/// (`webhooks::a_hanging_receiver_slows_no_send_and_no_inbound_answer`).
const CLAIM_REFUSED: usize = 64;

/// The first byte of an `outbox` value with a header. Values written before
/// the header are plain JSON and start with `{`.
const HEADER_TAG: u8 = 1;
/// Tag, due, lease_until, order key length.
const HEADER_LEN: usize = 1 + 8 + 8 + 4;

/// What a claim needs to know of an item to pass over it.
struct Peek<'v> {
    due: UnixMillis,
    lease_until: UnixMillis,
    order_key: Option<Cow<'v, str>>,
}

/// An `outbox` value: a header (tag, due and lease_until as i64
/// big-endian, the order key's length as u32 big-endian and its UTF-8
/// bytes, empty for none) and the JSON item. A claim passes over leased
/// and waiting items by their header alone: decoding each one's JSON, phone
/// numbers re-validated, was an eighth of a STOP's instructions (issue 16).
/// The header is derived from the item it is written with, so the two
/// cannot disagree.
pub(super) fn encode_item(item: &OutboxItem) -> Vec<u8> {
    let order_key = item.notification.order_key().unwrap_or_default();
    let mut v = Vec::with_capacity(HEADER_LEN + order_key.len() + 256);
    v.push(HEADER_TAG);
    v.extend_from_slice(&item.due.to_be_bytes());
    v.extend_from_slice(&item.lease_until.to_be_bytes());
    let len = u32::try_from(order_key.len()).expect("order keys are short");
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(order_key.as_bytes());
    v.extend_from_slice(&encode(item));
    v
}

/// The header and the JSON of a value with a header; `None` for a plain
/// JSON value from before the header.
fn split(v: &[u8]) -> Result<Option<(Peek<'_>, &[u8])>> {
    if v.first() != Some(&HEADER_TAG) {
        return Ok(None);
    }
    let corrupt = || StoreError::Corrupt("outbox item header cut short".into());
    let i64_at = |at: usize| i64::from_be_bytes(v[at..at + 8].try_into().expect("8 bytes"));
    if v.len() < HEADER_LEN {
        return Err(corrupt());
    }
    let len = u32::from_be_bytes(v[17..21].try_into().expect("4 bytes")) as usize;
    let json_at = HEADER_LEN
        .checked_add(len)
        .filter(|&e| e <= v.len())
        .ok_or_else(corrupt)?;
    let order_key = std::str::from_utf8(&v[HEADER_LEN..json_at])
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let peek = Peek {
        due: i64_at(1),
        lease_until: i64_at(9),
        order_key: (!order_key.is_empty()).then_some(Cow::Borrowed(order_key)),
    };
    Ok(Some((peek, &v[json_at..])))
}

pub(super) fn decode_item(v: &[u8]) -> Result<OutboxItem> {
    match split(v)? {
        Some((_, json)) => decode(json),
        None => decode(v),
    }
}

fn peek(v: &[u8]) -> Result<Peek<'_>> {
    if let Some((peek, _)) = split(v)? {
        return Ok(peek);
    }
    let item = decode_item(v)?;
    Ok(Peek {
        due: item.due,
        lease_until: item.lease_until,
        order_key: item.notification.order_key().map(Cow::Owned),
    })
}

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
        Ok((id.to_be_bytes().to_vec(), encode_item(&item)))
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
                let item = decode_item(&v)?;
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
                .compare_and_swap(id.to_be_bytes(), Some(old), Some(encode_item(&item)))?
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
            let peek = peek(&v)?;
            let waiting = peek.lease_until > now || peek.due > now;
            let behind = peek
                .order_key
                .as_deref()
                .is_some_and(|k| blocked.contains(k));
            // The oldest undelivered item of a key holds the later ones back.
            if let (Some(k), false) = (peek.order_key, behind) {
                blocked.insert(k.into_owned());
            }
            if waiting || behind {
                continue;
            }
            let mut item = decode_item(&v)?;
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
                .compare_and_swap(&k, Some(v), Some(encode_item(&item)))?
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
                let item = decode_item(&v)?;
                stats.queued += 1;
                stats.retrying += u64::from(item.attempts > 0);
                stats.oldest = Some(stats.oldest.map_or(item.created, |o| o.min(item.created)));
            }
            Ok(stats)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Action, Event, PhoneNumber, ShortCode, Source};
    use crate::store::sled::tests::open;

    fn num(s: &str) -> PhoneNumber {
        PhoneNumber::parse(s).unwrap()
    }

    fn subscription(number: &str, action: Action) -> Notification {
        let tenant = TenantId::parse("acme").unwrap();
        Notification::Subscription(Event::new(tenant, &num(number), action, Source::Sms))
    }

    fn reply(to: &str) -> Notification {
        Notification::Reply {
            to: num(to),
            from: ShortCode::parse("36111").unwrap(),
            body: "STOP received".into(),
        }
    }

    #[test]
    fn the_header_is_what_the_item_says() {
        for n in [
            subscription("+33612345601", Action::OptOut),
            reply("+33612345602"),
        ] {
            let mut item = OutboxItem::new(7, n, 1_000);
            item.due = 5_000;
            item.lease_until = -3;
            let v = encode_item(&item);
            let p = peek(&v).unwrap();
            assert_eq!((p.due, p.lease_until), (5_000, -3));
            assert_eq!(
                p.order_key.map(Cow::into_owned),
                item.notification.order_key()
            );
            assert_eq!(decode_item(&v).unwrap(), item);
            // A value cut anywhere is an error, never a panic or a wrong item.
            for cut in 0..v.len() {
                assert!(decode_item(&v[..cut]).is_err(), "cut at {cut}");
            }
        }
    }

    #[tokio::test]
    async fn items_written_before_the_header_are_claimed_in_order() {
        let (_dir, s) = open();
        let items = [
            subscription("+33612345601", Action::OptOut),
            subscription("+33612345601", Action::OptIn),
            reply("+33612345603"),
        ];
        let live = s.live().unwrap();
        for (id, n) in (1u64..).zip(items) {
            let plain = encode(&OutboxItem::new(id, n, 0));
            assert_eq!(plain[0], b'{');
            live.outbox.insert(id.to_be_bytes(), plain).unwrap();
        }
        let first = s.claim(1, 10, 60_000).await.unwrap();
        assert_eq!(
            first.iter().map(|i| i.id).collect::<Vec<_>>(),
            [1, 3],
            "the opt-in waits behind its number's opt-out"
        );
        // Leased, they are written with a header and passed over by it.
        let leased = live.outbox.get(1u64.to_be_bytes()).unwrap().unwrap();
        assert_eq!(leased[0], HEADER_TAG);
        assert!(s.claim(1, 10, 60_000).await.unwrap().is_empty());
        s.complete(1).await.unwrap();
        let next = s.claim(1, 10, 60_000).await.unwrap();
        assert_eq!(next.iter().map(|i| i.id).collect::<Vec<_>>(), [2]);
    }
}
