//! Data subjects in sled: `erased`, tenant·hash (32 bytes) → JSON
//! [`ErasedOptOut`]; `erasures`, tenant·hash·seq (u64 big-endian) → JSON
//! [`Erasure`]; the hash key in `meta` under `subject_key`.
//!
//! An erasure reads what to remove (prefix scans, which sled cannot do in a
//! transaction), then removes it in one transaction that decides what opt-out
//! to keep from the rows it reads itself, so that a STOP racing with the
//! erasure is either erased and kept as a hash, or written after it: never
//! lost. A bulk-imported entry is removed from its chunk afterwards, once the
//! hash that keeps blocking the number is written.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError as Conflict, TransactionError};
use sled::Transactional;

use super::attribution::decode_send;
use super::consent::{record_key, Records};
use super::{decode, encode, key, prefix, utf8, Live, SledStore};
use crate::domain::{LinkCode, PhoneNumber, ShortCode, Source, TenantId, UnixMillis};
use crate::store::subjects::{new_subject_key, KeptOptOut, Removed, SubjectLink, SubjectSend};
use crate::store::{
    Erasure, LinkRecord, MessageRecord, PossibleOptOut, Result, StoreError, SubjectData,
    SubjectStore, Suppression,
};

/// What stays of an opt-out whose number was erased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ErasedOptOut {
    pub since: UnixMillis,
    pub source: Source,
    pub erased: UnixMillis,
}

impl ErasedOptOut {
    pub fn state(&self) -> Suppression {
        Suppression {
            suppressed: true,
            updated: self.since,
            source: self.source,
            reason: None,
            campaign: None,
            erased: Some(self.erased),
        }
    }
}

/// The store's hash key: drawn on the first open, kept in `meta`.
pub(super) fn subject_key(db: &sled::Db) -> Result<[u8; 32]> {
    let meta = db.open_tree("meta")?;
    let fresh = new_subject_key();
    // Insert-if-absent, then read back whichever won.
    let _ = meta.compare_and_swap(b"subject_key", None as Option<&[u8]>, Some(&fresh[..]))?;
    let v = meta
        .get(b"subject_key")?
        .ok_or_else(|| StoreError::Corrupt("subject key".into()))?;
    v.as_ref()
        .try_into()
        .map_err(|_| StoreError::Corrupt("subject key length".into()))
}

impl Live {
    pub(super) fn erased_key(&self, tenant: &TenantId, number: &PhoneNumber) -> Vec<u8> {
        let hash = self.subject_key.hash(tenant, number);
        key(&[tenant.as_str().as_bytes(), &hash])
    }

    /// [`Live::erased_key`] once the store holds any erased opt-out; until
    /// then `None`, and a check skips the hash and the look-up. Exact: an
    /// erasure raises the flag before its transaction, and a reader looks
    /// at it only after the suppression row that the erasure removes.
    pub(super) fn erased_key_if_any(
        &self,
        tenant: &TenantId,
        number: &PhoneNumber,
    ) -> Option<Vec<u8>> {
        self.any_erased
            .load(Ordering::SeqCst)
            .then(|| self.erased_key(tenant, number))
    }

    pub(super) fn erased_state(
        &self,
        tenant: &TenantId,
        number: &PhoneNumber,
    ) -> Result<Option<Suppression>> {
        let Some(k) = self.erased_key_if_any(tenant, number) else {
            return Ok(None);
        };
        Ok(self
            .erased
            .get(k)?
            .map(|v| decode::<ErasedOptOut>(&v))
            .transpose()?
            .map(|e| e.state()))
    }

    /// The tenant's message records to `number`.
    fn messages_to(&self, tenant: &TenantId, number: &PhoneNumber) -> Result<Vec<MessageRecord>> {
        let mut out = Vec::new();
        for r in self.tenant_records(tenant) {
            let r = r?;
            if r.to == number.as_str() {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// (index key, code) of the tenant's links to `number`.
    fn links_to(&self, tenant: &TenantId, number: &PhoneNumber) -> Result<Vec<(Vec<u8>, String)>> {
        self.link_index
            .scan_prefix(prefix(&[
                tenant.as_str().as_bytes(),
                number.as_str().as_bytes(),
            ]))
            .map(|kv| {
                let (k, v) = kv?;
                Ok((k.to_vec(), utf8(&v)?.to_string()))
            })
            .collect()
    }

    /// (key, send) of the tenant's marketing sends to `number`.
    fn sends_to(
        &self,
        tenant: &TenantId,
        number: &PhoneNumber,
    ) -> Result<Vec<(Vec<u8>, ShortCode, crate::store::MarketingSend)>> {
        let p = prefix(&[number.as_str().as_bytes()]);
        let mut out = Vec::new();
        for kv in self.sends.scan_prefix(&p) {
            let (k, v) = kv?;
            let rest = utf8(&k[p.len()..])?;
            let Some((code, t)) = rest.split_once('\0') else {
                continue;
            };
            if t == tenant.as_str() {
                let code = ShortCode::parse(code).map_err(StoreError::Corrupt)?;
                out.push((k.to_vec(), code, decode_send(&v)?));
            }
        }
        Ok(out)
    }

    fn possible_optouts_of(
        &self,
        tenant: &TenantId,
        number: &PhoneNumber,
    ) -> Result<Vec<(u64, PossibleOptOut)>> {
        let mut out = Vec::new();
        for kv in self.possible_optouts.iter() {
            let (k, v) = kv?;
            let p: PossibleOptOut = decode(&v)?;
            if &p.number == number && p.tenants.contains(tenant) {
                let id = super::read_u64(&k);
                out.push((id, p));
            }
        }
        Ok(out)
    }

    fn erase(
        &self,
        tenant: &TenantId,
        number: &PhoneNumber,
        reference: Option<&str>,
        at: UnixMillis,
    ) -> Result<Erasure> {
        let t = tenant.as_str().as_bytes();
        let e164 = number.as_str().as_bytes();
        let row_key = record_key(tenant, number);
        self.any_erased.store(true, Ordering::SeqCst);
        let erased_key = self.erased_key(tenant, number);
        let bulk = self.bulk.lookup(tenant, number.as_str())?;
        let events: Vec<sled::IVec> = self
            .events
            .scan_prefix(prefix(&[t, e164]))
            .keys()
            .collect::<std::result::Result<_, _>>()?;
        let consent_events: Vec<sled::IVec> = self
            .consent_events
            .scan_prefix(prefix(&[t, e164]))
            .keys()
            .collect::<std::result::Result<_, _>>()?;
        let links = self.links_to(tenant, number)?;
        let sends = self.sends_to(tenant, number)?;
        let messages = self.messages_to(tenant, number)?;
        let reviews = self.possible_optouts_of(tenant, number)?;
        let audit_key = key(&[&erased_key, &self.db.generate_id()?.to_be_bytes()]);
        let trees = [
            &self.suppressions,
            &self.events,
            &self.consents,
            &self.consent_events,
            &self.consent_codes,
            &self.erased,
            &self.erasures,
            &self.links,
            &self.link_index,
            &self.sends,
            &self.messages,
            &self.messages_by_provider,
            &self.possible_optouts,
        ];
        let work = || {
            trees.transaction(|tx| {
                let corrupt =
                    |e: serde_json::Error| Conflict::Abort(StoreError::Corrupt(e.to_string()));
                let (sup, ev, cons, cev, codes, erased, erasures) =
                    (&tx[0], &tx[1], &tx[2], &tx[3], &tx[4], &tx[5], &tx[6]);
                let (links_t, index_t, sends_t) = (&tx[7], &tx[8], &tx[9]);
                let (msgs, by_provider, reviews_t) = (&tx[10], &tx[11], &tx[12]);
                let mut removed = Removed::default();
                // What keeps blocking, decided on what this transaction reads.
                let row: Option<Suppression> = sup
                    .get(&row_key)?
                    .map(|v| serde_json::from_slice(&v))
                    .transpose()
                    .map_err(corrupt)?;
                let before: Option<ErasedOptOut> = erased
                    .get(&erased_key)?
                    .map(|v| serde_json::from_slice(&v))
                    .transpose()
                    .map_err(corrupt)?;
                let kept = match &row {
                    Some(r) if !r.suppressed => None,
                    _ => before
                        .as_ref()
                        .map(|b| KeptOptOut {
                            since: b.since,
                            source: b.source,
                        })
                        .or_else(|| {
                            row.as_ref().map(|r| KeptOptOut {
                                since: r.updated,
                                source: r.source,
                            })
                        })
                        .or_else(|| {
                            bulk.as_ref().map(|i| KeptOptOut {
                                since: i.at,
                                source: Source::Import,
                            })
                        }),
                };
                if sup.remove(row_key.as_slice())?.is_some() || bulk.is_some() {
                    removed.suppression = 1;
                }
                for k in &events {
                    if ev.remove(&k[..])?.is_some() {
                        removed.suppression_events += 1;
                    }
                }
                if let Some(v) = cons.remove(row_key.as_slice())? {
                    let records: Records = serde_json::from_slice(&v).map_err(corrupt)?;
                    removed.consents = records.len() as u64;
                    for st in records.values() {
                        if let Some(crate::domain::RequestVia::Link { code }) =
                            st.request.as_ref().map(|r| &r.via)
                        {
                            codes.remove(code.as_str().as_bytes())?;
                        }
                    }
                }
                for k in &consent_events {
                    if cev.remove(&k[..])?.is_some() {
                        removed.consent_events += 1;
                    }
                }
                for (index_key, code) in &links {
                    index_t.remove(index_key.as_slice())?;
                    if links_t.remove(code.as_bytes())?.is_some() {
                        removed.links += 1;
                    }
                }
                for (k, _, _) in &sends {
                    if sends_t.remove(k.as_slice())?.is_some() {
                        removed.sends += 1;
                    }
                }
                for r in &messages {
                    if msgs
                        .remove(super::messages::message_key(tenant, &r.id))?
                        .is_some()
                    {
                        removed.messages += 1;
                    }
                    for k in super::messages::provider_keys(r) {
                        by_provider.remove(k)?;
                    }
                }
                for (id, p) in &reviews {
                    let others: Vec<TenantId> =
                        p.tenants.iter().filter(|x| *x != tenant).cloned().collect();
                    if others.is_empty() {
                        reviews_t.remove(&id.to_be_bytes()[..])?;
                    } else {
                        let kept = PossibleOptOut {
                            tenants: others,
                            ..p.clone()
                        };
                        reviews_t.insert(&id.to_be_bytes()[..], encode(&kept))?;
                    }
                    removed.possible_optouts += 1;
                }
                match &kept {
                    Some(k) => {
                        let e = ErasedOptOut {
                            since: k.since,
                            source: k.source,
                            erased: before.as_ref().map_or(at, |b| b.erased),
                        };
                        erased.insert(erased_key.as_slice(), encode(&e))?;
                    }
                    None => {
                        erased.remove(erased_key.as_slice())?;
                    }
                }
                let erasure = Erasure {
                    at,
                    kept_optout: kept,
                    removed,
                    reference: reference.map(str::to_string),
                };
                erasures.insert(audit_key.as_slice(), encode(&erasure))?;
                Ok(erasure)
            })
        };
        let erasure = match super::off_the_worker(work) {
            Ok(e) => e,
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        };
        // The hash blocks the number now: the plain entry can go.
        if bulk.is_some() {
            self.bulk.remove(tenant, number.as_str())?;
        }
        Ok(erasure)
    }
}

#[async_trait]
impl SubjectStore for SledStore {
    async fn subject_data(&self, tenant: &TenantId, number: &PhoneNumber) -> Result<SubjectData> {
        self.with(|s| {
            let mut links = Vec::new();
            for (_, code) in s.links_to(tenant, number)? {
                let Some(v) = s.links.get(code.as_bytes())? else {
                    continue;
                };
                let record: LinkRecord = decode(&v)?;
                links.push(SubjectLink {
                    code: LinkCode::parse(&code)
                        .ok_or_else(|| StoreError::Corrupt("link code".into()))?,
                    campaign: record.campaign,
                    created: record.created,
                });
            }
            let sends = s
                .sends_to(tenant, number)?
                .into_iter()
                .map(|(_, shortcode, send)| SubjectSend {
                    shortcode,
                    at: send.at,
                    campaign: send.campaign,
                })
                .collect();
            Ok(SubjectData {
                links,
                sends,
                possible_optouts: s.possible_optouts_of(tenant, number)?,
            })
        })
    }

    async fn erase_subject(
        &self,
        tenant: &TenantId,
        number: &PhoneNumber,
        reference: Option<&str>,
        at: UnixMillis,
    ) -> Result<Erasure> {
        self.with(|s| s.erase(tenant, number, reference, at))
    }

    async fn erasures(&self, tenant: &TenantId, number: &PhoneNumber) -> Result<Vec<Erasure>> {
        self.with(|s| {
            let mut p = s.erased_key(tenant, number);
            p.push(0);
            s.erasures.scan_prefix(p).map(|kv| decode(&kv?.1)).collect()
        })
    }
}
