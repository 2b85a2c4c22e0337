//! Held messages in sled: `held`, due (i64 big-endian) · id (16 bytes) →
//! JSON [`HeldMessage`] (so a claim reads the earliest due first);
//! `held_ids`, id → its `held` key; `held_begun`, id → () for the ones a
//! releaser began sending.
//!
//! One process owns a sled store, so leases live in memory: a crash ends
//! every claim with the process, and after a restart every message is
//! claimable again (a begun one comes back begun, from `held_begun`). Every
//! change of a held message runs under one lock, so a cancel and a
//! release of the same message never interleave, and a hold's rows and
//! records are written before any releaser can see them.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{decode, encode, Live, SledStore};
use crate::domain::{MessageId, MessageStatus, Notification, TenantId, UnixMillis};
use crate::store::messages::Notify;
use crate::store::{
    Cancel, Claimed, HeldMessage, HeldStats, HeldStore, MessageRecord, Release, Result,
    StatusChange,
};

/// In-memory state of the held messages: claims, and how many there are.
#[derive(Default)]
pub(crate) struct HeldState {
    /// id → lease_until of its claim.
    leases: HashMap<[u8; 16], UnixMillis>,
    count: u64,
}

pub(crate) type HeldLock = Mutex<HeldState>;

fn held_key(due: UnixMillis, id: &[u8; 16]) -> Vec<u8> {
    let mut k = Vec::with_capacity(24);
    k.extend_from_slice(&due.to_be_bytes());
    k.extend_from_slice(id);
    k
}

/// Due instants are after 1970, so their big-endian bytes sort like the
/// numbers.
fn key_due(k: &[u8]) -> UnixMillis {
    k.get(..8)
        .and_then(|b| b.try_into().ok())
        .map(i64::from_be_bytes)
        .unwrap_or(0)
}

impl Live {
    /// Counts the held messages once, at open.
    pub(super) fn count_held(held: &sled::Tree) -> HeldState {
        HeldState {
            leases: HashMap::new(),
            count: held.len() as u64,
        }
    }

    fn lock_held(&self) -> std::sync::MutexGuard<'_, HeldState> {
        self.held_state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The held row of `id`, with its key.
    fn held_row(&self, id: &[u8; 16]) -> Result<Option<(sled::IVec, HeldMessage)>> {
        let Some(k) = self.held_ids.get(id)? else {
            return Ok(None);
        };
        match self.held.get(&k)? {
            Some(v) => Ok(Some((k, decode(&v)?))),
            None => Ok(None),
        }
    }

    fn forget_held(&self, state: &mut HeldState, k: &[u8], id: &[u8; 16]) -> Result<()> {
        if self.held.remove(k)?.is_some() {
            state.count = state.count.saturating_sub(1);
        }
        self.held_ids.remove(id)?;
        self.held_begun.remove(id)?;
        state.leases.remove(id);
        Ok(())
    }

    /// Writes a record with its indexes and notifications (as
    /// `put_messages` does for one).
    fn write_record(&self, r: &MessageRecord, notes: &[Notification]) -> Result<()> {
        self.write_records(std::slice::from_ref(r), notes)
    }

    /// The stored record of a held message, or the copy it carries.
    fn record_of(&self, held: &HeldMessage) -> Result<MessageRecord> {
        Ok(self
            .record(&held.record.tenant, &held.record.id)?
            .unwrap_or_else(|| held.record.clone()))
    }

    fn claim_is(&self, state: &HeldState, c: &Claimed) -> bool {
        state.leases.get(&c.id.to_bytes()) == Some(&c.lease_until)
    }
}

/// The counters a release adds to, as (counter, n).
pub(super) fn release_counters(r: &MessageRecord) -> Vec<(&'static str, u64)> {
    if !r.category.is_marketing() {
        return Vec::new();
    }
    match r.status() {
        MessageStatus::Sent => vec![("sent", 1), ("segments", r.segments as u64)],
        MessageStatus::Blocked => vec![("blocked", 1)],
        _ => Vec::new(),
    }
}

#[async_trait]
impl HeldStore for SledStore {
    async fn hold(&self, held: &[HeldMessage], notifications: &[Notification]) -> Result<()> {
        self.with(|s| {
            let mut state = s.lock_held();
            let mut rows = sled::Batch::default();
            let mut ids = sled::Batch::default();
            for h in held {
                let id = h.record.id.to_bytes();
                let k = held_key(h.due, &id);
                let mut h = h.clone();
                h.lease_until = 0;
                h.begun = false;
                rows.insert(k.clone(), encode(&h));
                ids.insert(&id, k);
            }
            // The rows before their records: a crash in between leaves a
            // held message whose release writes its record from its copy,
            // never a `scheduled` record that nothing will release.
            s.held.apply_batch(rows)?;
            s.held_ids.apply_batch(ids)?;
            state.count += held.len() as u64;
            let records: Vec<MessageRecord> = held.iter().map(|h| h.record.clone()).collect();
            for r in &records {
                s.write_record(r, &[])?;
            }
            let now = crate::domain::now_millis();
            let mut outbox = sled::Batch::default();
            for n in notifications {
                let (k, v) = s.outbox_entry(n, now)?;
                outbox.insert(k, v);
            }
            s.outbox.apply_batch(outbox)?;
            Ok(())
        })
    }

    async fn claim_held(
        &self,
        now: UnixMillis,
        limit: usize,
        lease_ms: i64,
    ) -> Result<Vec<HeldMessage>> {
        self.with(|s| {
            let mut state = s.lock_held();
            let mut out = Vec::new();
            for kv in s.held.iter() {
                if out.len() >= limit {
                    break;
                }
                let (k, v) = kv?;
                if key_due(&k) > now {
                    break;
                }
                let Ok(id): std::result::Result<[u8; 16], _> = k[8..].try_into() else {
                    continue;
                };
                if state.leases.get(&id).is_some_and(|l| *l > now) {
                    continue;
                }
                let mut h: HeldMessage = decode(&v)?;
                h.lease_until = now + lease_ms;
                h.begun = s.held_begun.contains_key(id)?;
                state.leases.insert(id, h.lease_until);
                out.push(h);
            }
            Ok(out)
        })
    }

    async fn begin_held(&self, claims: &[Claimed]) -> Result<Vec<bool>> {
        self.with(|s| {
            let state = s.lock_held();
            let mut out = Vec::with_capacity(claims.len());
            for c in claims {
                let id = c.id.to_bytes();
                let ours = s.claim_is(&state, c) && s.held_ids.contains_key(id)?;
                if ours {
                    s.held_begun.insert(id, &c.lease_until.to_be_bytes())?;
                }
                out.push(ours);
            }
            Ok(out)
        })
    }

    async fn postpone_held(&self, claims: &[(Claimed, UnixMillis)]) -> Result<()> {
        self.with(|s| {
            let mut state = s.lock_held();
            for (c, due) in claims {
                if !s.claim_is(&state, c) {
                    continue;
                }
                let id = c.id.to_bytes();
                let Some((k, mut h)) = s.held_row(&id)? else {
                    continue;
                };
                h.due = *due;
                h.lease_until = 0;
                h.begun = false;
                let new = held_key(*due, &id);
                s.held.remove(&k)?;
                s.held.insert(new.clone(), encode(&h))?;
                s.held_ids.insert(id, new)?;
                s.held_begun.remove(id)?;
                state.leases.remove(&id);
            }
            Ok(())
        })
    }

    async fn finish_held(
        &self,
        releases: &[Release],
        notify: Notify<'_>,
    ) -> Result<Vec<Option<MessageRecord>>> {
        self.with(|s| {
            let mut state = s.lock_held();
            let mut out = Vec::with_capacity(releases.len());
            for r in releases {
                let id = r.claim.id.to_bytes();
                if !s.claim_is(&state, &r.claim) {
                    out.push(None);
                    continue;
                }
                let Some((k, held)) = s.held_row(&id)? else {
                    state.leases.remove(&id);
                    out.push(None);
                    continue;
                };
                let mut record = s.record_of(&held)?;
                // Written before a crash that left the row behind: as it is.
                if record.status() == MessageStatus::Scheduled {
                    record.apply(r.change.clone());
                    record.provider = r.provider.clone();
                    record.provider_id = r.provider_id.clone();
                    let notes = notify(&record);
                    s.write_record(&record, &notes)?;
                    for (counter, n) in release_counters(&record) {
                        let k = super::insights::counter_key(
                            &record.tenant,
                            record.campaign.as_ref(),
                            counter,
                        );
                        s.add_counter(&k, n)?;
                    }
                }
                s.forget_held(&mut state, &k, &id)?;
                out.push(Some(record));
            }
            Ok(out)
        })
    }

    async fn cancel_held(
        &self,
        tenant: &TenantId,
        id: &MessageId,
        at: UnixMillis,
        notify: Notify<'_>,
    ) -> Result<Cancel> {
        self.with(|s| {
            let mut state = s.lock_held();
            let bytes = id.to_bytes();
            let Some((k, held)) = s.held_row(&bytes)? else {
                return Ok(match s.record(tenant, id)? {
                    Some(r) => Cancel::NotScheduled(r),
                    None => Cancel::NotFound,
                });
            };
            if held.tenant() != tenant {
                return Ok(Cancel::NotFound);
            }
            let mut record = s.record_of(&held)?;
            if s.held_begun.contains_key(bytes)? || record.status() != MessageStatus::Scheduled {
                return Ok(Cancel::NotScheduled(record));
            }
            record.apply(StatusChange {
                status: MessageStatus::Canceled,
                at,
                error: None,
            });
            let notes = notify(&record);
            s.write_record(&record, &notes)?;
            s.forget_held(&mut state, &k, &bytes)?;
            Ok(Cancel::Canceled {
                record,
                held: Box::new(held),
            })
        })
    }

    async fn held_stats(&self) -> Result<HeldStats> {
        self.with(|s| {
            let state = s.lock_held();
            Ok(HeldStats {
                held: state.count,
                next_due: s.held.first()?.map(|(k, _)| key_due(&k)),
            })
        })
    }
}
