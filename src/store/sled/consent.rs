//! Consents in sled: `consents`, tenant·e164 → JSON map of list →
//! [`ConsentState`] (one value per number, so that an opt-out withdraws
//! every list inside its own transaction, where sled cannot scan);
//! `consent_events`, tenant·e164·seq (u64 big-endian) → JSON
//! [`ConsentEvent`]; `consent_codes`, confirmation code → JSON (tenant,
//! number, list) of the open request it answers.

use std::collections::BTreeMap;
use std::ops::Bound;

use async_trait::async_trait;
use sled::transaction::{
    ConflictableTransactionError as Conflict, TransactionError, TransactionalTree,
};
use sled::Transactional;

use super::{decode, encode, key, prefix, utf8, Live, SledStore};
use crate::domain::consent::{apply, GateFacts};
use crate::domain::{
    ConsentAction, ConsentEvent, ConsentList, ConsentState, ConsentStatus, LinkCode, Notification,
    PhoneNumber, RequestVia, Source, TenantId, UnixMillis,
};
use crate::store::{ConsentCounts, ConsentOutcome, ConsentStore, Result, StoreError, Suppression};

/// A number's records, by list name.
pub(super) type Records = BTreeMap<String, ConsentState>;

type TxResult<T> = std::result::Result<T, Conflict<StoreError>>;

pub(super) fn record_key(tenant: &TenantId, number: &PhoneNumber) -> Vec<u8> {
    key(&[tenant.as_str().as_bytes(), number.as_str().as_bytes()])
}

fn abort(e: impl std::fmt::Display) -> Conflict<StoreError> {
    Conflict::Abort(StoreError::Corrupt(e.to_string()))
}

fn link_code(s: &ConsentState) -> Option<&LinkCode> {
    match s.request.as_ref().map(|r| &r.via) {
        Some(RequestVia::Link { code }) => Some(code),
        _ => None,
    }
}

/// The consent trees inside a transaction.
pub(super) struct ConsentTx<'a> {
    pub consents: &'a TransactionalTree,
    pub events: &'a TransactionalTree,
    pub codes: &'a TransactionalTree,
}

impl ConsentTx<'_> {
    fn records(&self, k: &[u8]) -> TxResult<Records> {
        match self.consents.get(k)? {
            Some(v) => serde_json::from_slice(&v).map_err(abort),
            None => Ok(Records::new()),
        }
    }

    /// Applies one event; writes the state, the event and the code index if
    /// it changes the record.
    pub fn apply(&self, e: &ConsentEvent) -> TxResult<ConsentOutcome> {
        let k = record_key(&e.tenant, &e.number);
        let mut records = self.records(&k)?;
        let old = records.get(e.list.as_str());
        let new = match apply(old, e) {
            Ok(Some(new)) => new,
            Ok(None) => return Ok(Ok(false)),
            Err(refusal) => return Ok(Err(refusal)),
        };
        if let Some(code) = old.and_then(link_code) {
            self.codes.remove(code.as_str().as_bytes())?;
        }
        if let Some(code) = link_code(&new) {
            let target = encode(&(&e.tenant, &e.number, &e.list));
            if self
                .codes
                .insert(code.as_str().as_bytes(), target)?
                .is_some()
            {
                return Err(abort("a confirmation code drawn twice"));
            }
        }
        records.insert(e.list.as_str().to_string(), new);
        self.consents.insert(k.as_slice(), encode(&records))?;
        // The transaction's own id source: `Db::generate_id` takes sled's
        // concurrency lock, which this transaction holds (a deadlock).
        let seq = self
            .events
            .generate_id()
            .map_err(|e| Conflict::Abort(e.into()))?;
        self.events
            .insert(key(&[&k, &seq.to_be_bytes()]), encode(e))?;
        Ok(Ok(true))
    }

    /// An opt-out withdraws every list's consent of the number.
    pub fn withdraw_all(
        &self,
        tenant: &TenantId,
        number: &PhoneNumber,
        at: UnixMillis,
        source: Source,
        proof: Option<String>,
    ) -> TxResult<()> {
        let records = self.records(&record_key(tenant, number))?;
        for (list, state) in records {
            if state.status == ConsentStatus::Withdrawn {
                continue;
            }
            let list = ConsentList::parse(&list).map_err(abort)?;
            let mut e = ConsentEvent::new(
                tenant.clone(),
                number,
                list,
                ConsentAction::Withdrawn,
                source,
                at,
            );
            e.proof = proof.clone();
            // A withdrawal never refuses.
            let _ = self.apply(&e)?;
        }
        Ok(())
    }
}

impl Live {
    fn records(&self, tenant: &TenantId, number: &PhoneNumber) -> Result<Records> {
        match self.consents.get(record_key(tenant, number))? {
            Some(v) => decode(&v),
            None => Ok(Records::new()),
        }
    }
}

#[async_trait]
impl ConsentStore for SledStore {
    async fn consents(
        &self,
        tenant: &TenantId,
        number: &PhoneNumber,
    ) -> Result<Vec<(ConsentList, ConsentState)>> {
        self.with(|s| {
            s.records(tenant, number)?
                .into_iter()
                .map(|(l, st)| {
                    Ok((
                        ConsentList::parse(&l).map_err(|e| StoreError::Corrupt(e.into()))?,
                        st,
                    ))
                })
                .collect()
        })
    }

    async fn consent_events(
        &self,
        tenant: &TenantId,
        number: &PhoneNumber,
    ) -> Result<Vec<ConsentEvent>> {
        self.with(|s| {
            s.consent_events
                .scan_prefix(prefix(&[
                    tenant.as_str().as_bytes(),
                    number.as_str().as_bytes(),
                ]))
                .map(|kv| decode(&kv?.1))
                .collect()
        })
    }

    async fn record_consents(
        &self,
        changes: &[(ConsentEvent, Vec<Notification>)],
    ) -> Result<Vec<ConsentOutcome>> {
        self.with(|s| {
            let now = crate::domain::now_millis();
            let mut outbox = Vec::with_capacity(changes.len());
            for (_, notes) in changes {
                outbox.push(
                    notes
                        .iter()
                        .map(|n| s.outbox_entry(n, now))
                        .collect::<Result<Vec<_>>>()?,
                );
            }
            let work = || {
                [&s.consents, &s.consent_events, &s.consent_codes, &s.outbox].transaction(|t| {
                    let tx = ConsentTx {
                        consents: &t[0],
                        events: &t[1],
                        codes: &t[2],
                    };
                    let mut outcomes = Vec::with_capacity(changes.len());
                    for ((e, _), entries) in changes.iter().zip(&outbox) {
                        let outcome = tx.apply(e)?;
                        if outcome == Ok(true) {
                            for (k, v) in entries {
                                t[3].insert(k.as_slice(), v.as_slice())?;
                            }
                        }
                        outcomes.push(outcome);
                    }
                    Ok(outcomes)
                })
            };
            let outcome = if changes.len() > 64 {
                super::off_the_worker(work)
            } else {
                work()
            };
            match outcome {
                Ok(o) => Ok(o),
                Err(TransactionError::Abort(e)) => Err(e),
                Err(TransactionError::Storage(e)) => Err(e.into()),
            }
        })
    }

    async fn consent_gates(
        &self,
        tenant: &TenantId,
        list: &ConsentList,
        numbers: &[PhoneNumber],
    ) -> Result<Vec<GateFacts>> {
        self.with(|s| {
            numbers
                .iter()
                .map(|n| {
                    let consent = s.records(tenant, n)?.remove(list.as_str());
                    // A bulk-imported number has no row of its own: its
                    // import is its last change (on PostgreSQL it is a row).
                    let suppression_changed = match s.suppressions.get(record_key(tenant, n))? {
                        Some(v) => Some(decode::<Suppression>(&v)?.updated),
                        None => s.bulk.lookup(tenant, n.as_str())?.map(|i| i.at),
                    };
                    Ok(GateFacts {
                        consent,
                        suppression_changed,
                    })
                })
                .collect()
        })
    }

    async fn consent_page(
        &self,
        tenant: &TenantId,
        list: &ConsentList,
        after: Option<&PhoneNumber>,
        limit: usize,
    ) -> Result<Vec<(PhoneNumber, ConsentState)>> {
        self.with(|s| {
            let t = tenant.as_str().as_bytes();
            let p = prefix(&[t]);
            let start = match after {
                Some(a) => Bound::Excluded(key(&[t, a.as_str().as_bytes()])),
                None => Bound::Included(p.clone()),
            };
            let mut out = Vec::new();
            for kv in s.consents.range((start, Bound::Unbounded)) {
                let (k, v) = kv?;
                if !k.starts_with(&p) || out.len() >= limit {
                    break;
                }
                let mut records: Records = decode(&v)?;
                if let Some(state) = records.remove(list.as_str()) {
                    let number = PhoneNumber::parse(utf8(&k[p.len()..])?)
                        .map_err(|e| StoreError::Corrupt(format!("a stored number: {e}")))?;
                    out.push((number, state));
                }
            }
            Ok(out)
        })
    }

    async fn consent_by_code(
        &self,
        code: &LinkCode,
    ) -> Result<Option<(TenantId, PhoneNumber, ConsentList, ConsentState)>> {
        self.with(|s| {
            let Some(v) = s.consent_codes.get(code.as_str().as_bytes())? else {
                return Ok(None);
            };
            let (tenant, number, list): (TenantId, PhoneNumber, ConsentList) = decode(&v)?;
            let state = s.records(&tenant, &number)?.remove(list.as_str());
            Ok(state.map(|st| (tenant, number, list, st)))
        })
    }

    async fn consent_counts(
        &self,
        tenant: &TenantId,
        valid_after: UnixMillis,
        lapsing_until: UnixMillis,
    ) -> Result<Vec<(ConsentList, ConsentCounts)>> {
        self.with(|s| {
            let mut by_list: BTreeMap<String, ConsentCounts> = BTreeMap::new();
            for kv in s
                .consents
                .scan_prefix(prefix(&[tenant.as_str().as_bytes()]))
            {
                let records: Records = decode(&kv?.1)?;
                for (list, st) in records {
                    let c = by_list.entry(list).or_default();
                    match st.status {
                        ConsentStatus::Pending => c.pending += 1,
                        ConsentStatus::Withdrawn => c.withdrawn += 1,
                        ConsentStatus::Given => {
                            let given = st.given_at.unwrap_or(st.since);
                            if given > valid_after {
                                c.given += 1;
                                if given <= lapsing_until {
                                    c.expiring += 1;
                                }
                            } else {
                                c.lapsed += 1;
                            }
                        }
                    }
                }
            }
            by_list
                .into_iter()
                .map(|(l, c)| {
                    Ok((
                        ConsentList::parse(&l).map_err(|e| StoreError::Corrupt(e.into()))?,
                        c,
                    ))
                })
                .collect()
        })
    }
}
