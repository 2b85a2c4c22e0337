//! The sled implementation of [`Store`].
//!
//! Trees and keys (`·` is a 0 byte; tenant ids and E.164 numbers never hold one):
//!
//! | tree          | key                               | value                      |
//! |---------------|-----------------------------------|----------------------------|
//! | suppressions  | tenant·e164                       | JSON [`Suppression`]       |
//! | events        | tenant·e164·seq (u64 big-endian)  | JSON [`Event`]             |
//! | links         | code                              | JSON [`LinkRecord`]        |
//! | link_index    | tenant·e164·campaign              | code                       |
//! | sends         | e164·shortcode·tenant             | last send: i64 big-endian time, then the campaign (UTF-8, may be absent) |
//! | possible_optouts | id (u64 big-endian)            | JSON [`PossibleOptOut`]    |
//! | requests      | tenant·reference                  | state, time, fingerprint, response |
//! | insights      | tenant·campaign·counter           | u64 big-endian             |
//!
//! Insights counters are `sent`, `optout:<source>` and `reason:<reason>`;
//! the empty campaign is "no campaign".
//!
//! Bulk-imported numbers live in the `bulk` and `imports` trees instead
//! (see [`super::bulk`]); a number's own row in `suppressions`, when it has
//! one, is authoritative over them.

use std::ops::Bound;
use std::path::Path;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::bulk::{self, Bulk, ImportInfo};
use super::commit::GroupCommit;
use super::{
    Attempt, BulkCounts, BulkImport, CampaignCounters, LinkRecord, MarketingSend, PossibleOptOut,
    Result, Store, StoreError, Suppression,
};
use crate::domain::{now_millis, Action, Event, Source, TenantId, UnixMillis};

/// A request still marked in progress after this long was abandoned by a
/// crash; a retry may take it over.
const STALE_ATTEMPT_MS: i64 = 60_000;

/// sled releases its file lock from a background thread after the last
/// handle is dropped (spacejam/sled#1234), so opening a store again in the
/// same process can find the lock still held for a moment. A lock held
/// longer than this belongs to another process.
const LOCK_WAIT: Duration = Duration::from_secs(2);

pub struct SledStore {
    db: sled::Db,
    suppressions: sled::Tree,
    events: sled::Tree,
    links: sled::Tree,
    link_index: sled::Tree,
    sends: sled::Tree,
    requests: sled::Tree,
    possible_optouts: sled::Tree,
    insights: sled::Tree,
    bulk: Bulk,
    import_round: usize,
    commit: GroupCommit,
}

fn key(parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(0);
        }
        k.extend_from_slice(p);
    }
    k
}

fn read_u64(v: &[u8]) -> u64 {
    v.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("store records serialize")
}

impl SledStore {
    /// Opens (or creates) the store. `cache_mb` bounds sled's page cache.
    pub fn open(path: &Path, cache_mb: u64) -> Result<SledStore> {
        Self::open_with(path, cache_mb, bulk::CHUNK, IMPORT_ROUND)
    }

    /// [`SledStore::open`] with the bulk chunk size and import round given,
    /// so that tests split chunks and run several merges with few numbers.
    pub(crate) fn open_with(
        path: &Path,
        cache_mb: u64,
        chunk: usize,
        round: usize,
    ) -> Result<SledStore> {
        let db = open_db(
            &sled::Config::new()
                .path(path)
                .cache_capacity(cache_mb * 1024 * 1024)
                .mode(sled::Mode::HighThroughput),
            path,
        )?;
        let flusher = db.clone();
        let commit =
            GroupCommit::start(move || flusher.flush().map(|_| ()).map_err(|e| e.to_string()));
        Ok(SledStore {
            suppressions: db.open_tree("suppressions")?,
            events: db.open_tree("events")?,
            links: db.open_tree("links")?,
            link_index: db.open_tree("link_index")?,
            sends: db.open_tree("sends")?,
            requests: db.open_tree("requests")?,
            possible_optouts: db.open_tree("possible_optouts")?,
            insights: db.open_tree("insights")?,
            bulk: Bulk::open(&db, chunk)?,
            import_round: round,
            commit,
            db,
        })
    }

    /// A blocking flush, for shutdown.
    pub fn flush_blocking(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

/// Opens the database, waiting up to [`LOCK_WAIT`] for its file lock.
fn open_db(config: &sled::Config, path: &Path) -> Result<sled::Db> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            Err(sled::Error::Io(e)) if is_lock_held(&e) => {
                if Instant::now() >= deadline {
                    return Err(StoreError::InUse(path.to_path_buf()));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

/// sled reports a held lock as an `Other` I/O error; its text is the only sign.
fn is_lock_held(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

/// A `sends` value: the time, then the campaign. Values written before the
/// campaign was kept are the 8 time bytes alone.
fn decode_send(v: &[u8]) -> Result<MarketingSend> {
    if v.len() < 8 {
        return Err(StoreError::Corrupt("send time".into()));
    }
    let (at, campaign) = v.split_at(8);
    let campaign = std::str::from_utf8(campaign).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(MarketingSend {
        at: i64::from_be_bytes(at.try_into().expect("8 bytes")),
        campaign: (!campaign.is_empty()).then(|| campaign.to_string()),
    })
}

/// The state of a number that only a bulk import holds.
fn imported(import: &ImportInfo) -> Suppression {
    Suppression {
        suppressed: true,
        updated: import.at,
        source: Source::Import,
        reason: None,
        campaign: None,
    }
}

/// Numbers queued per bulk merge: 32 MiB of packed numbers, so a
/// 10M-line file is three sorted merges, not ten.
const IMPORT_ROUND: usize = 4_000_000;

struct SledImport {
    id: u64,
    bulk: Bulk,
    rows: sled::Tree,
    tenant: TenantId,
    queued: Vec<u64>,
    round: usize,
    counts: BulkCounts,
}

impl SledImport {
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

impl BulkImport for SledImport {
    fn add(&mut self, number: &str) -> Result<()> {
        // The number itself stays out of the message: errors get logged.
        let n = bulk::pack(number).ok_or_else(|| {
            StoreError::Corrupt(format!("a {}-character number is not E.164", number.len()))
        })?;
        self.queued.push(n);
        if self.queued.len() >= self.round {
            self.merge_queued()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<BulkCounts> {
        self.merge_queued()?;
        Ok(std::mem::take(&mut self.counts))
    }
}

/// Layout of a `requests` value: state byte, time (i64 BE), fingerprint, response.
const REQ_PENDING: u8 = 0;
const REQ_DONE: u8 = 1;

fn request_value(state: u8, fingerprint: &[u8; 32], response: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(41 + response.len());
    v.push(state);
    v.extend_from_slice(&now_millis().to_be_bytes());
    v.extend_from_slice(fingerprint);
    v.extend_from_slice(response);
    v
}

#[async_trait]
impl Store for SledStore {
    fn suppression(&self, tenant: &TenantId, number: &str) -> Result<Option<Suppression>> {
        let k = key(&[tenant.as_str().as_bytes(), number.as_bytes()]);
        if let Some(v) = self.suppressions.get(k)? {
            return decode(&v).map(Some);
        }
        Ok(self
            .bulk
            .lookup(tenant, number)?
            .map(|import| imported(&import)))
    }

    fn bulk_import(&self, tenant: &TenantId) -> Result<Box<dyn BulkImport>> {
        Ok(Box::new(SledImport {
            id: self.bulk.begin(&self.db, tenant, now_millis())?,
            bulk: self.bulk.clone(),
            rows: self.suppressions.clone(),
            tenant: tenant.clone(),
            queued: Vec::new(),
            round: self.import_round,
            counts: BulkCounts::default(),
        }))
    }

    fn record_many(&self, events: &[Event]) -> Result<usize> {
        struct Prepared {
            state_key: Vec<u8>,
            /// Held by a bulk import (only asked when there is no row of its
            /// own, which then stays so: rows are never removed).
            imported: bool,
            event_key: Vec<u8>,
            suppressed: bool,
            state: Vec<u8>,
            body: Vec<u8>,
            counters: Vec<Vec<u8>>,
        }
        let mut prepared = Vec::with_capacity(events.len());
        for event in events {
            let tenant = event.tenant.as_str().as_bytes();
            let seq = self.db.generate_id()?;
            let suppressed = event.action == Action::OptOut;
            let mut counters = Vec::new();
            // An import says nothing about a campaign: not counted.
            if suppressed && event.source != Source::Import {
                let campaign = event.campaign.as_deref().unwrap_or("").as_bytes();
                let source = format!("optout:{}", event.source.as_str());
                counters.push(key(&[tenant, campaign, source.as_bytes()]));
                if let (Source::Link, Some(reason)) = (event.source, &event.reason) {
                    counters.push(key(&[
                        tenant,
                        campaign,
                        format!("reason:{reason}").as_bytes(),
                    ]));
                }
            }
            let state_key = key(&[tenant, event.number.as_bytes()]);
            // Read before the transaction: sled deadlocks on a plain read
            // of another tree inside one.
            let imported = !self.suppressions.contains_key(&state_key)?
                && self.bulk.lookup(&event.tenant, &event.number)?.is_some();
            prepared.push(Prepared {
                state_key,
                imported,
                event_key: key(&[tenant, event.number.as_bytes(), &seq.to_be_bytes()]),
                suppressed,
                state: encode(&Suppression {
                    suppressed,
                    updated: event.at,
                    source: event.source,
                    reason: event.reason.clone(),
                    campaign: event.campaign.clone(),
                }),
                body: encode(event),
                counters,
            });
        }
        let changed =
            (&self.suppressions, &self.events, &self.insights).transaction(|(sup, ev, ins)| {
                let mut changed = Vec::new();
                for (i, p) in prepared.iter().enumerate() {
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
                        None => p.imported,
                    };
                    if was_suppressed == p.suppressed {
                        continue;
                    }
                    sup.insert(p.state_key.as_slice(), p.state.as_slice())?;
                    ev.insert(p.event_key.as_slice(), p.body.as_slice())?;
                    for c in &p.counters {
                        let n = ins.get(c)?.map(|v| read_u64(&v)).unwrap_or(0);
                        ins.insert(c.as_slice(), &(n + 1).to_be_bytes())?;
                    }
                    changed.push(i);
                }
                Ok(changed)
            });
        match changed {
            Ok(changed) => {
                for i in &changed {
                    let e = &events[*i];
                    let action = match e.action {
                        Action::OptOut => "opt_out",
                        Action::OptIn => "opt_in",
                    };
                    metrics::counter!("stopgate_suppression_changes_total", "action" => action, "source" => e.source.as_str())
                        .increment(1);
                }
                Ok(changed.len())
            }
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    fn suppressed_page(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Suppression)>> {
        let t = tenant.as_str().as_bytes();
        let mut prefix = t.to_vec();
        prefix.push(0);
        let start = match after {
            Some(a) => Bound::Excluded(key(&[t, a.as_bytes()])),
            None => Bound::Included(prefix.clone()),
        };
        let mut rows = Vec::new();
        for kv in self.suppressions.range((start, Bound::Unbounded)) {
            let (k, v) = kv?;
            if !k.starts_with(&prefix) || rows.len() >= limit {
                break;
            }
            let state: Suppression = decode(&v)?;
            if state.suppressed {
                let number = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                rows.push((number, state));
            }
        }
        // Imported numbers that have no row of their own, merged in order.
        let imports = self.bulk.page(tenant, after, limit, |n| {
            Ok(!self.suppressions.contains_key(key(&[t, n.as_bytes()]))?)
        })?;
        let mut infos: Vec<ImportInfo> = Vec::new();
        let mut out = Vec::with_capacity(limit.min(rows.len() + imports.len()));
        let (mut rows, mut imports) = (rows.into_iter().peekable(), imports.into_iter().peekable());
        while out.len() < limit {
            let take_import = match (rows.peek(), imports.peek()) {
                (Some(r), Some(i)) => i.0 < r.0,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (None, None) => break,
            };
            if take_import {
                let (number, id) = imports.next().expect("peeked");
                let info = match infos.iter().find(|i| i.id == id) {
                    Some(i) => i.clone(),
                    None => {
                        let i = self.bulk.import_info(id)?;
                        infos.push(i.clone());
                        i
                    }
                };
                out.push((number, imported(&info)));
            } else {
                out.push(rows.next().expect("peeked"));
            }
        }
        Ok(out)
    }

    fn count_marketing_sent(
        &self,
        tenant: &TenantId,
        campaign: Option<&str>,
        n: u64,
    ) -> Result<()> {
        let k = key(&[
            tenant.as_str().as_bytes(),
            campaign.unwrap_or("").as_bytes(),
            b"sent",
        ]);
        self.insights.fetch_and_update(k, |old| {
            let current = old.map(read_u64).unwrap_or(0);
            Some((current + n).to_be_bytes().to_vec())
        })?;
        Ok(())
    }

    fn campaign_counters(&self, tenant: &TenantId) -> Result<Vec<CampaignCounters>> {
        let mut prefix = tenant.as_str().as_bytes().to_vec();
        prefix.push(0);
        let mut by_campaign: Vec<CampaignCounters> = Vec::new();
        for kv in self.insights.scan_prefix(&prefix) {
            let (k, v) = kv?;
            let rest = &k[prefix.len()..];
            let split = rest
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(|| StoreError::Corrupt("insights key".into()))?;
            let campaign = String::from_utf8_lossy(&rest[..split]).into_owned();
            let counter = String::from_utf8_lossy(&rest[split + 1..]).into_owned();
            let campaign = (!campaign.is_empty()).then_some(campaign);
            if by_campaign.last().is_none_or(|c| c.campaign != campaign) {
                by_campaign.push(CampaignCounters {
                    campaign: campaign.clone(),
                    ..Default::default()
                });
            }
            let entry = by_campaign.last_mut().expect("pushed above");
            let n = read_u64(&v);
            if counter == "sent" {
                entry.sent = n;
            } else if let Some(source) = counter.strip_prefix("optout:") {
                entry.optouts.insert(source.to_string(), n);
            } else if let Some(reason) = counter.strip_prefix("reason:") {
                entry.reasons.insert(reason.to_string(), n);
            }
        }
        Ok(by_campaign)
    }

    fn events(&self, tenant: &TenantId, number: &str) -> Result<Vec<Event>> {
        let mut prefix = key(&[tenant.as_str().as_bytes(), number.as_bytes()]);
        prefix.push(0);
        // A bulk import only takes numbers without a row of their own, so it
        // comes before every event kept per number.
        let mut history: Vec<Event> = Vec::new();
        if let Some(import) = self.bulk.lookup(tenant, number)? {
            history.push(Event {
                at: import.at,
                tenant: tenant.clone(),
                number: number.to_string(),
                action: Action::OptOut,
                source: Source::Import,
                campaign: None,
                reason: None,
                text: None,
            });
        }
        for kv in self.events.scan_prefix(prefix) {
            history.push(decode(&kv?.1)?);
        }
        Ok(history)
    }

    fn link_for(
        &self,
        tenant: &TenantId,
        number: &str,
        campaign: Option<&str>,
        mint: &mut dyn FnMut() -> String,
    ) -> Result<(String, bool)> {
        let index_key = key(&[
            tenant.as_str().as_bytes(),
            number.as_bytes(),
            campaign.unwrap_or("").as_bytes(),
        ]);
        if let Some(code) = self.link_index.get(&index_key)? {
            return Ok((String::from_utf8_lossy(&code).into_owned(), false));
        }
        let record = encode(&LinkRecord {
            tenant: tenant.clone(),
            number: number.to_string(),
            campaign: campaign.map(str::to_string),
            created: now_millis(),
        });
        // Insert-if-absent on the code: a collision (or a concurrent minter
        // of the same code) just draws again.
        let code = loop {
            let code = mint();
            if self
                .links
                .compare_and_swap(
                    code.as_bytes(),
                    None as Option<&[u8]>,
                    Some(record.as_slice()),
                )?
                .is_ok()
            {
                break code;
            }
        };
        // Two concurrent sends to the same recipient and campaign: the first
        // index entry wins and the loser's code is withdrawn before anyone saw it.
        match self.link_index.compare_and_swap(
            &index_key,
            None as Option<&[u8]>,
            Some(code.as_bytes()),
        )? {
            Ok(()) => Ok((code, true)),
            Err(conflict) => {
                self.links.remove(code.as_bytes())?;
                let winner = conflict
                    .current
                    .expect("a failed insert-if-absent saw a value");
                Ok((String::from_utf8_lossy(&winner).into_owned(), false))
            }
        }
    }

    fn link(&self, code: &str) -> Result<Option<LinkRecord>> {
        self.links
            .get(code.as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    fn note_marketing_send(
        &self,
        number: &str,
        shortcode: &str,
        tenant: &TenantId,
        at: UnixMillis,
        campaign: Option<&str>,
    ) -> Result<()> {
        let k = key(&[
            number.as_bytes(),
            shortcode.as_bytes(),
            tenant.as_str().as_bytes(),
        ]);
        let mut v = at.to_be_bytes().to_vec();
        v.extend_from_slice(campaign.unwrap_or("").as_bytes());
        self.sends.insert(k, v)?;
        Ok(())
    }

    fn last_marketing_send(
        &self,
        number: &str,
        shortcode: &str,
        tenant: &TenantId,
    ) -> Result<Option<MarketingSend>> {
        let k = key(&[
            number.as_bytes(),
            shortcode.as_bytes(),
            tenant.as_str().as_bytes(),
        ]);
        self.sends.get(k)?.map(|v| decode_send(&v)).transpose()
    }

    fn marketing_senders(
        &self,
        number: &str,
        shortcode: &str,
        since: UnixMillis,
    ) -> Result<Vec<TenantId>> {
        let mut prefix = key(&[number.as_bytes(), shortcode.as_bytes()]);
        prefix.push(0);
        let mut out = Vec::new();
        for kv in self.sends.scan_prefix(&prefix) {
            let (k, v) = kv?;
            if decode_send(&v)?.at >= since {
                let tenant = std::str::from_utf8(&k[prefix.len()..])
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                out.push(TenantId::parse(tenant).map_err(StoreError::Corrupt)?);
            }
        }
        Ok(out)
    }

    fn note_possible_optout(&self, record: &PossibleOptOut) -> Result<u64> {
        let id = self.db.generate_id()?;
        self.possible_optouts
            .insert(id.to_be_bytes(), encode(record))?;
        Ok(id)
    }

    fn possible_optout(&self, id: u64) -> Result<Option<PossibleOptOut>> {
        self.possible_optouts
            .get(id.to_be_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    fn possible_optouts(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, PossibleOptOut)>> {
        let start = match after {
            Some(a) => match a.checked_add(1) {
                Some(s) => s,
                None => return Ok(Vec::new()),
            },
            None => 0,
        };
        self.possible_optouts
            .range(start.to_be_bytes()..)
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                let id = u64::from_be_bytes(
                    k.as_ref()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("possible opt-out id".into()))?,
                );
                Ok((id, decode(&v)?))
            })
            .collect()
    }

    fn begin_request(
        &self,
        tenant: &TenantId,
        reference: &str,
        fingerprint: &[u8; 32],
    ) -> Result<Attempt> {
        let k = key(&[tenant.as_str().as_bytes(), reference.as_bytes()]);
        let pending = request_value(REQ_PENDING, fingerprint, &[]);
        loop {
            let current = self.requests.get(&k)?;
            if let Some(v) = &current {
                if v.len() < 41 {
                    return Err(StoreError::Corrupt("request record".into()));
                }
                let at = i64::from_be_bytes(v[1..9].try_into().expect("8 bytes"));
                if &v[9..41] != fingerprint {
                    return Ok(Attempt::Mismatch);
                }
                if v[0] == REQ_DONE {
                    return Ok(Attempt::Done(v[41..].to_vec()));
                }
                if now_millis() - at < STALE_ATTEMPT_MS {
                    return Ok(Attempt::InProgress);
                }
            }
            if self
                .requests
                .compare_and_swap(&k, current, Some(pending.as_slice()))?
                .is_ok()
            {
                return Ok(Attempt::Fresh);
            }
        }
    }

    fn finish_request(
        &self,
        tenant: &TenantId,
        reference: &str,
        fingerprint: &[u8; 32],
        response: &[u8],
    ) -> Result<()> {
        let k = key(&[tenant.as_str().as_bytes(), reference.as_bytes()]);
        self.requests
            .insert(k, request_value(REQ_DONE, fingerprint, response))?;
        Ok(())
    }

    fn abandon_request(&self, tenant: &TenantId, reference: &str) -> Result<()> {
        self.requests
            .remove(key(&[tenant.as_str().as_bytes(), reference.as_bytes()]))?;
        Ok(())
    }

    fn purge_requests(&self, before: UnixMillis) -> Result<usize> {
        let mut purged = 0;
        for kv in self.requests.iter() {
            let (k, v) = kv?;
            let at = v
                .get(1..9)
                .map(|b| i64::from_be_bytes(b.try_into().expect("8 bytes")))
                .unwrap_or(0);
            if at < before {
                // Only if unchanged since we looked: a retry may have just refreshed it.
                if self
                    .requests
                    .compare_and_swap(&k, Some(v), None as Option<&[u8]>)?
                    .is_ok()
                {
                    purged += 1;
                }
            }
        }
        Ok(purged)
    }

    async fn durable(&self) -> Result<()> {
        self.commit.wait().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PhoneNumber, Source};

    fn open() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&dir.path().join("db"), 16).unwrap();
        (dir, store)
    }

    fn t(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    #[tokio::test]
    async fn record_changes_state_once_and_keeps_history() {
        let (_d, s) = open();
        let n = PhoneNumber::parse("+33612345678").unwrap();
        let stop = Event::new(t("acme"), &n, Action::OptOut, Source::Sms);
        assert!(s.record(&stop).unwrap());
        assert!(!s.record(&stop).unwrap(), "a repeat changes nothing");
        assert!(s.is_suppressed(&t("acme"), n.as_str()).unwrap());
        assert!(!s.is_suppressed(&t("other"), n.as_str()).unwrap());
        let start = Event::new(t("acme"), &n, Action::OptIn, Source::Api);
        assert!(s.record(&start).unwrap());
        assert!(!s.is_suppressed(&t("acme"), n.as_str()).unwrap());
        let history = s.events(&t("acme"), n.as_str()).unwrap();
        assert_eq!(
            history.iter().map(|e| e.action).collect::<Vec<_>>(),
            vec![Action::OptOut, Action::OptIn]
        );
        s.durable().await.unwrap();
    }

    #[test]
    fn pages_list_only_suppressed_numbers_after_the_cursor() {
        let (_d, s) = open();
        let numbers = [
            "+33612345678",
            "+33698765432",
            "+447400123456",
            "+12125550123",
        ];
        for n in numbers {
            let n = PhoneNumber::parse(n).unwrap();
            s.record(&Event::new(t("acme"), &n, Action::OptOut, Source::Api))
                .unwrap();
        }
        let other = PhoneNumber::parse("+33612345678").unwrap();
        s.record(&Event::new(t("beta"), &other, Action::OptOut, Source::Api))
            .unwrap();
        let resub = PhoneNumber::parse("+33698765432").unwrap();
        s.record(&Event::new(t("acme"), &resub, Action::OptIn, Source::Api))
            .unwrap();

        let page1 = s.suppressed_page(&t("acme"), None, 2).unwrap();
        let numbers1: Vec<&str> = page1.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(numbers1, ["+12125550123", "+33612345678"]);
        let page2 = s
            .suppressed_page(&t("acme"), Some("+33612345678"), 2)
            .unwrap();
        let numbers2: Vec<&str> = page2.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(numbers2, ["+447400123456"]);
        assert_eq!(s.suppressed_page(&t("beta"), None, 10).unwrap().len(), 1);
    }

    #[test]
    fn counters_follow_events_and_sends() {
        let (_d, s) = open();
        let n = PhoneNumber::parse("+12125550123").unwrap();
        s.count_marketing_sent(&t("acme"), Some("bf"), 10).unwrap();
        s.count_marketing_sent(&t("acme"), Some("bf"), 5).unwrap();
        s.count_marketing_sent(&t("acme"), None, 1).unwrap();
        let mut e = Event::new(t("acme"), &n, Action::OptOut, Source::Link);
        e.campaign = Some("bf".into());
        e.reason = Some("too_many".into());
        s.record(&e).unwrap();
        s.record(&e).unwrap(); // a repeat counts nothing
        let c = s.campaign_counters(&t("acme")).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].campaign.as_deref(), c[0].sent), (None, 1));
        assert_eq!((c[1].campaign.as_deref(), c[1].sent), (Some("bf"), 15));
        assert_eq!(c[1].optouts.get("link"), Some(&1));
        assert_eq!(c[1].reasons.get("too_many"), Some(&1));
        assert!(s.campaign_counters(&t("beta")).unwrap().is_empty());
    }

    #[test]
    fn record_many_applies_a_batch_in_one_go() {
        let (_d, s) = open();
        let a = PhoneNumber::parse("+33612345678").unwrap();
        let b = PhoneNumber::parse("+33698765432").unwrap();
        let batch = vec![
            Event::new(t("acme"), &a, Action::OptOut, Source::Import),
            Event::new(t("acme"), &a, Action::OptOut, Source::Import),
            Event::new(t("acme"), &b, Action::OptOut, Source::Import),
        ];
        assert_eq!(
            s.record_many(&batch).unwrap(),
            2,
            "a duplicate in the batch changes nothing"
        );
        assert_eq!(s.events(&t("acme"), a.as_str()).unwrap().len(), 1);
    }

    #[test]
    fn links_are_insert_if_absent_per_tenant_number_campaign() {
        let (_d, s) = open();
        let mut i = 0;
        let mut mint = || {
            i += 1;
            format!("code{i:04}")
        };
        let (a, new_a) = s.link_for(&t("acme"), "+1", Some("c1"), &mut mint).unwrap();
        let (b, new_b) = s.link_for(&t("acme"), "+1", Some("c1"), &mut mint).unwrap();
        let (c, _) = s.link_for(&t("acme"), "+1", Some("c2"), &mut mint).unwrap();
        let (d, _) = s.link_for(&t("beta"), "+1", Some("c1"), &mut mint).unwrap();
        assert!(new_a && !new_b);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_eq!(s.link(&a).unwrap().unwrap().campaign.as_deref(), Some("c1"));
    }

    #[test]
    fn a_colliding_code_is_drawn_again() {
        let (_d, s) = open();
        let mut draws = vec![
            "SAME0001".to_string(),
            "SAME0001".to_string(),
            "OTHER001".to_string(),
        ]
        .into_iter();
        let mut mint = || draws.next().unwrap();
        let (a, _) = s.link_for(&t("acme"), "+1", None, &mut mint).unwrap();
        let (b, _) = s.link_for(&t("acme"), "+2", None, &mut mint).unwrap();
        assert_eq!((a.as_str(), b.as_str()), ("SAME0001", "OTHER001"));
    }

    #[test]
    fn marketing_senders_respect_the_window() {
        let (_d, s) = open();
        s.note_marketing_send("+33612345678", "36111", &t("acme"), 1_000, None)
            .unwrap();
        s.note_marketing_send("+33612345678", "36111", &t("beta"), 5_000, Some("bf"))
            .unwrap();
        s.note_marketing_send("+33612345678", "36222", &t("gamma"), 5_000, None)
            .unwrap();
        assert_eq!(
            s.marketing_senders("+33612345678", "36111", 2_000).unwrap(),
            vec![t("beta")]
        );
        assert_eq!(
            s.marketing_senders("+33612345678", "36111", 0)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn the_last_marketing_send_keeps_its_campaign_and_reads_old_values() {
        let (_d, s) = open();
        let n = "+33612345678";
        assert_eq!(s.last_marketing_send(n, "36111", &t("acme")).unwrap(), None);
        s.note_marketing_send(n, "36111", &t("acme"), 1_000, Some("bf-2026"))
            .unwrap();
        let last = s
            .last_marketing_send(n, "36111", &t("acme"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (last.at, last.campaign.as_deref()),
            (1_000, Some("bf-2026"))
        );
        s.note_marketing_send(n, "36111", &t("acme"), 2_000, None)
            .unwrap();
        let last = s
            .last_marketing_send(n, "36111", &t("acme"))
            .unwrap()
            .unwrap();
        assert_eq!((last.at, last.campaign), (2_000, None));
        // A value from before campaigns were kept: the time alone.
        let k = key(&[n.as_bytes(), b"36111", b"beta"]);
        s.sends.insert(k, &3_000i64.to_be_bytes()).unwrap();
        let old = s
            .last_marketing_send(n, "36111", &t("beta"))
            .unwrap()
            .unwrap();
        assert_eq!((old.at, old.campaign), (3_000, None));
        assert_eq!(s.marketing_senders(n, "36111", 1_500).unwrap().len(), 2);
    }

    #[test]
    fn possible_optouts_are_listed_in_order_after_a_cursor() {
        let (_d, s) = open();
        let rec = |text: &str| PossibleOptOut {
            at: 1,
            number: "+33612345678".into(),
            shortcode: "36111".into(),
            tenants: vec![t("acme")],
            text: text.into(),
        };
        let a = s.note_possible_optout(&rec("a")).unwrap();
        let b = s.note_possible_optout(&rec("b")).unwrap();
        let c = s.note_possible_optout(&rec("c")).unwrap();
        assert!(a < b && b < c);
        let all = s.possible_optouts(None, 10).unwrap();
        let texts: Vec<&str> = all.iter().map(|(_, r)| r.text.as_str()).collect();
        assert_eq!(texts, ["a", "b", "c"]);
        let page = s.possible_optouts(Some(a), 1).unwrap();
        assert_eq!(page, vec![(b, rec("b"))]);
        assert!(s.possible_optouts(Some(u64::MAX), 10).unwrap().is_empty());
    }

    #[test]
    fn idempotent_requests() {
        let (_d, s) = open();
        let fp = [7u8; 32];
        assert_eq!(
            s.begin_request(&t("acme"), "r1", &fp).unwrap(),
            Attempt::Fresh
        );
        assert_eq!(
            s.begin_request(&t("acme"), "r1", &fp).unwrap(),
            Attempt::InProgress
        );
        assert_eq!(
            s.begin_request(&t("acme"), "r1", &[8u8; 32]).unwrap(),
            Attempt::Mismatch
        );
        assert_eq!(
            s.begin_request(&t("beta"), "r1", &[8u8; 32]).unwrap(),
            Attempt::Fresh
        );
        s.finish_request(&t("acme"), "r1", &fp, b"{}").unwrap();
        assert_eq!(
            s.begin_request(&t("acme"), "r1", &fp).unwrap(),
            Attempt::Done(b"{}".to_vec())
        );
        s.abandon_request(&t("acme"), "r1").unwrap();
        assert_eq!(
            s.begin_request(&t("acme"), "r1", &fp).unwrap(),
            Attempt::Fresh
        );
    }

    #[tokio::test]
    async fn durable_data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let n = PhoneNumber::parse("+447400123456").unwrap();
        {
            let s = SledStore::open(&dir.path().join("db"), 16).unwrap();
            s.record(&Event::new(t("acme"), &n, Action::OptOut, Source::Link))
                .unwrap();
            s.durable().await.unwrap();
        }
        let s = SledStore::open(&dir.path().join("db"), 16).unwrap();
        assert!(s.is_suppressed(&t("acme"), n.as_str()).unwrap());
    }

    #[test]
    fn a_store_held_open_is_reported_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let _held = SledStore::open(&path, 16).unwrap();
        match SledStore::open(&path, 16) {
            Err(StoreError::InUse(p)) => assert_eq!(p, path),
            Err(e) => panic!("expected InUse, got {e}"),
            Ok(_) => panic!("a second open of a held store succeeded"),
        }
    }
}
