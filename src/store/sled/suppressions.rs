//! Suppressions in sled: the `suppressions` and `events` trees, and bulk
//! imports into [`super::bulk`].

use std::ops::Bound;

use async_trait::async_trait;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::bulk::{self, Bulk, ImportInfo};
use super::consent::ConsentTx;
use super::{decode, encode, key, prefix, Live, SledStore};
use crate::domain::{now_millis, Action, Event, Notification, PhoneNumber, Source, TenantId};
use crate::store::{BulkCounts, BulkImport, Result, StoreError, Suppression, SuppressionStore};

/// The state of a number that only a bulk import holds.
fn imported(import: &ImportInfo) -> Suppression {
    Suppression {
        suppressed: true,
        updated: import.at,
        source: Source::Import,
        reason: None,
        campaign: None,
        erased: None,
    }
}

fn state_key(tenant: &TenantId, number: &PhoneNumber) -> Vec<u8> {
    key(&[tenant.as_str().as_bytes(), number.as_str().as_bytes()])
}

/// The key of an opt-out counter in the `insights` tree (see `insights.rs`).
fn optout_counters(event: &Event) -> Vec<Vec<u8>> {
    // An import says nothing about a campaign: not counted.
    if event.action != Action::OptOut || event.source == Source::Import {
        return Vec::new();
    }
    let tenant = event.tenant.as_str().as_bytes();
    let campaign = event
        .campaign
        .as_ref()
        .map_or("", |c| c.as_str())
        .as_bytes();
    let mut counters = vec![key(&[
        tenant,
        campaign,
        format!("optout:{}", event.source.as_str()).as_bytes(),
    ])];
    if let (Source::Link, Some(reason)) = (event.source, &event.reason) {
        counters.push(key(&[
            tenant,
            campaign,
            format!("reason:{reason}").as_bytes(),
        ]));
    }
    counters
}

/// Event batches above this size (imports) run off the async worker.
pub(super) const BIG_BATCH: usize = 64;

impl Live {
    /// Applies events in one transaction, with the outbox entries of those
    /// that change a state (see `SuppressionStore::record_notifying`).
    pub(super) fn record_batch(&self, changes: &[(Event, Vec<Notification>)]) -> Result<Vec<bool>> {
        struct Prepared {
            state_key: Vec<u8>,
            /// Held by a bulk import (only asked when there is no row of its
            /// own, which then stays so: rows are never removed).
            imported: bool,
            /// Where an erased opt-out of the number would be (`None`:
            /// the store had none when this was prepared).
            erased_key: Option<Vec<u8>>,
            event_key: Vec<u8>,
            suppressed: bool,
            state: Vec<u8>,
            body: Vec<u8>,
            counters: Vec<Vec<u8>>,
            outbox: Vec<(Vec<u8>, Vec<u8>)>,
        }
        let now = crate::domain::now_millis();
        let mut prepared = Vec::with_capacity(changes.len());
        for (event, notifications) in changes {
            let seq = self.db.generate_id()?;
            let state_key = state_key(&event.tenant, &event.number);
            // Read before the transaction: sled deadlocks on a plain read
            // of another tree inside one.
            let imported = !self.suppressions.contains_key(&state_key)?
                && self
                    .bulk
                    .lookup(&event.tenant, event.number.as_str())?
                    .is_some();
            let suppressed = event.action == Action::OptOut;
            prepared.push(Prepared {
                erased_key: self.erased_key_if_any(&event.tenant, &event.number),
                event_key: key(&[&state_key, &seq.to_be_bytes()]),
                state_key,
                imported,
                suppressed,
                state: encode(&Suppression {
                    suppressed,
                    updated: event.at,
                    source: event.source,
                    reason: event.reason.clone(),
                    campaign: event.campaign.clone(),
                    erased: None,
                }),
                body: encode(event),
                counters: optout_counters(event),
                outbox: notifications
                    .iter()
                    .map(|n| self.outbox_entry(n, now))
                    .collect::<Result<_>>()?,
            });
        }
        let changed = (
            &self.suppressions,
            &self.events,
            &self.insights,
            &self.outbox,
            &self.erased,
            &self.consents,
            &self.consent_events,
            &self.consent_codes,
        )
            .transaction(|(sup, ev, ins, outbox, erased, cons, cev, codes)| {
                let consents = ConsentTx {
                    consents: cons,
                    events: cev,
                    codes,
                };
                let mut changed = vec![false; prepared.len()];
                for (i, p) in prepared.iter().enumerate() {
                    let event = &changes[i].0;
                    // An erasure since the preparation: transactions run
                    // one at a time, so the flag read here is exact.
                    let erased_key = match &p.erased_key {
                        Some(k) => Some(std::borrow::Cow::Borrowed(k)),
                        None => self
                            .erased_key_if_any(&event.tenant, &event.number)
                            .map(std::borrow::Cow::Owned),
                    };
                    let was_suppressed = match sup.get(&p.state_key)? {
                        Some(v) => {
                            serde_json::from_slice::<Suppression>(&v)
                                .map_err(|e| {
                                    ConflictableTransactionError::Abort(StoreError::Corrupt(
                                        e.to_string(),
                                    ))
                                })?
                                .suppressed
                        }
                        None => {
                            p.imported
                                || match &erased_key {
                                    Some(k) => erased.get(k.as_slice())?.is_some(),
                                    None => false,
                                }
                        }
                    };
                    if was_suppressed == p.suppressed {
                        continue;
                    }
                    if p.suppressed {
                        consents.withdraw_all(
                            &event.tenant,
                            &event.number,
                            event.at,
                            event.source,
                            event.text.clone().or_else(|| event.reason.clone()),
                        )?;
                    } else {
                        // Re-subscribed: an erased opt-out is lifted with it.
                        if let Some(k) = &erased_key {
                            erased.remove(k.as_slice())?;
                        }
                    }
                    sup.insert(p.state_key.as_slice(), p.state.as_slice())?;
                    ev.insert(p.event_key.as_slice(), p.body.as_slice())?;
                    for c in &p.counters {
                        let n = ins.get(c)?.map(|v| super::read_u64(&v)).unwrap_or(0);
                        ins.insert(c.as_slice(), &(n + 1).to_be_bytes())?;
                    }
                    for (k, v) in &p.outbox {
                        outbox.insert(k.as_slice(), v.as_slice())?;
                    }
                    changed[i] = true;
                }
                Ok(changed)
            });
        match changed {
            Ok(changed) => {
                for (i, c) in changed.iter().enumerate() {
                    if *c {
                        count_change(&changes[i].0);
                    }
                }
                Ok(changed)
            }
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    fn state(&self, tenant: &TenantId, number: &PhoneNumber) -> Result<Option<Suppression>> {
        if let Some(v) = self.suppressions.get(state_key(tenant, number))? {
            return decode(&v).map(Some);
        }
        if let Some(erased) = self.erased_state(tenant, number)? {
            return Ok(Some(erased));
        }
        Ok(self
            .bulk
            .lookup(tenant, number.as_str())?
            .map(|import| imported(&import)))
    }
}

#[async_trait]
impl SuppressionStore for SledStore {
    async fn suppression(
        &self,
        tenant: &TenantId,
        number: &PhoneNumber,
    ) -> Result<Option<Suppression>> {
        self.with(|s| s.state(tenant, number))
    }

    async fn suppressed(&self, tenant: &TenantId, numbers: &[PhoneNumber]) -> Result<Vec<bool>> {
        self.with(|s| {
            numbers
                .iter()
                .map(|n| Ok(s.state(tenant, n)?.is_some_and(|s| s.suppressed)))
                .collect()
        })
    }

    async fn record_notifying(&self, changes: &[(Event, Vec<Notification>)]) -> Result<Vec<bool>> {
        if changes.len() > BIG_BATCH {
            return self.with(|s| super::off_the_worker(|| s.record_batch(changes)));
        }
        let outcome = self.shared.events.submit(changes.to_vec()).await;
        self.noticed(outcome)
    }

    async fn events(&self, tenant: &TenantId, number: &PhoneNumber) -> Result<Vec<Event>> {
        self.with(|s| {
            // A bulk import only takes numbers without a row of their own, so it
            // comes before every event kept per number.
            let mut history: Vec<Event> = Vec::new();
            if let Some(import) = s.bulk.lookup(tenant, number.as_str())? {
                let mut e = Event::new(tenant.clone(), number, Action::OptOut, Source::Import);
                e.at = import.at;
                history.push(e);
            }
            for kv in s.events.scan_prefix(prefix(&[
                tenant.as_str().as_bytes(),
                number.as_str().as_bytes(),
            ])) {
                history.push(decode(&kv?.1)?);
            }
            Ok(history)
        })
    }

    async fn suppressed_page(
        &self,
        tenant: &TenantId,
        after: Option<&PhoneNumber>,
        limit: usize,
    ) -> Result<Vec<(PhoneNumber, Suppression)>> {
        self.with(|s| {
            let t = tenant.as_str().as_bytes();
            let prefix = prefix(&[t]);
            let start = match after {
                Some(a) => Bound::Excluded(key(&[t, a.as_str().as_bytes()])),
                None => Bound::Included(prefix.clone()),
            };
            let mut rows = Vec::new();
            for kv in s.suppressions.range((start, Bound::Unbounded)) {
                let (k, v) = kv?;
                if !k.starts_with(&prefix) || rows.len() >= limit {
                    break;
                }
                let state: Suppression = decode(&v)?;
                if state.suppressed {
                    rows.push((super::utf8(&k[prefix.len()..])?.to_string(), state));
                }
            }
            // Imported numbers that have no row of their own, merged in order.
            let after = after.map(PhoneNumber::as_str);
            let imports = s.bulk.page(tenant, after, limit, |n| {
                Ok(!s.suppressions.contains_key(key(&[t, n.as_bytes()]))?)
            })?;
            let mut infos: Vec<ImportInfo> = Vec::new();
            let mut out = Vec::with_capacity(limit.min(rows.len() + imports.len()));
            let (mut rows, mut imports) =
                (rows.into_iter().peekable(), imports.into_iter().peekable());
            while out.len() < limit {
                let take_import = match (rows.peek(), imports.peek()) {
                    (Some(r), Some(i)) => i.0 < r.0,
                    (None, Some(_)) => true,
                    (Some(_), None) => false,
                    (None, None) => break,
                };
                let (number, state) = if take_import {
                    let (number, id) = imports.next().expect("peeked");
                    let info = match infos.iter().find(|i| i.id == id) {
                        Some(i) => i.clone(),
                        None => {
                            let i = s.bulk.import_info(id)?;
                            infos.push(i.clone());
                            i
                        }
                    };
                    (number, imported(&info))
                } else {
                    rows.next().expect("peeked")
                };
                let number = PhoneNumber::parse(&number)
                    .map_err(|e| StoreError::Corrupt(format!("a stored number: {e}")))?;
                out.push((number, state));
            }
            Ok(out)
        })
    }

    async fn bulk_import(&self, tenant: &TenantId) -> Result<Box<dyn BulkImport>> {
        self.with(|s| -> Result<Box<dyn BulkImport>> {
            Ok(Box::new(SledImport {
                state: Some(ImportState {
                    id: s.bulk.begin(&s.db, tenant, now_millis())?,
                    bulk: s.bulk.clone(),
                    rows: s.suppressions.clone(),
                    tenant: tenant.clone(),
                    queued: Vec::new(),
                    round: s.import_round,
                    counts: BulkCounts::default(),
                }),
            }))
        })
    }
}

fn count_change(e: &Event) {
    let action = match e.action {
        Action::OptOut => "opt_out",
        Action::OptIn => "opt_in",
    };
    metrics::counter!("stopgate_suppression_changes_total", "action" => action, "source" => e.source.as_str())
        .increment(1);
}

/// A bulk import: numbers are queued packed, and merged into the chunks a
/// round at a time on the blocking pool (a round is seconds of sorting and
/// writing).
struct SledImport {
    /// `None` only while a round runs on the blocking pool.
    state: Option<ImportState>,
}

struct ImportState {
    id: u64,
    bulk: Bulk,
    rows: sled::Tree,
    tenant: TenantId,
    queued: Vec<u64>,
    round: usize,
    counts: BulkCounts,
}

impl SledImport {
    async fn merge(&mut self) -> Result<()> {
        let mut state = self
            .state
            .take()
            .ok_or_else(|| StoreError::Unavailable("an earlier merge did not return".into()))?;
        let (state, outcome) = tokio::task::spawn_blocking(move || {
            let outcome = state.merge_queued();
            (state, outcome)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("bulk merge task: {e}")))?;
        self.state = Some(state);
        outcome
    }
}

impl ImportState {
    fn merge_queued(&mut self) -> Result<()> {
        if self.queued.is_empty() {
            return Ok(());
        }
        self.queued.sort_unstable();
        let queued = self.queued.len() as u64;
        self.queued.dedup();
        // A number with a row of its own is never bulk-written (see bulk.rs).
        let tenant = self.tenant.as_str().as_bytes();
        let late_before = self.counts.individual.len();
        let mut keep = Vec::with_capacity(self.queued.len());
        for &n in &self.queued {
            let number = bulk::unpack(n);
            match self.rows.get(key(&[tenant, number.as_bytes()]))? {
                None => keep.push(n),
                Some(v) => {
                    if !decode::<Suppression>(&v)?.suppressed {
                        let number = PhoneNumber::parse(&number)
                            .map_err(|e| StoreError::Corrupt(format!("a stored number: {e}")))?;
                        self.counts.individual.push(number);
                    }
                }
            }
        }
        let added = self.bulk.merge(&self.tenant, &keep, self.id)?;
        self.counts.imported += added;
        let late = (self.counts.individual.len() - late_before) as u64;
        // Repeats, numbers already suppressed (in bulk or on their own row).
        self.counts.unchanged += queued - added - late;
        metrics::counter!("stopgate_suppression_changes_total", "action" => "opt_out", "source" => "import")
            .increment(added);
        self.queued.clear();
        Ok(())
    }
}

#[async_trait]
impl BulkImport for SledImport {
    async fn add(&mut self, numbers: Vec<PhoneNumber>) -> Result<()> {
        let state = self
            .state
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("an earlier merge did not return".into()))?;
        for n in &numbers {
            // Every PhoneNumber is E.164, so it packs.
            state
                .queued
                .push(bulk::pack(n.as_str()).expect("E.164 packs"));
        }
        if state.queued.len() >= state.round {
            self.merge().await?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<BulkCounts> {
        self.merge().await?;
        let state = self.state.take().expect("merge puts it back");
        Ok(state.counts)
    }
}
