//! Idempotency records in PostgreSQL: `requests`, one row per (tenant,
//! reference): pending or done, when, the request's fingerprint, the answer.
//!
//! `begin_request` is one insert-if-absent that also takes over a stale
//! pending record of the same request, under the row's lock, so only one
//! of concurrent attempts (on any node) is ever `Fresh`.
//!
//! Concurrent begins share one transaction, and so do concurrent finishes
//! (two batching writers): a webhook or an idempotent send costs two
//! commits per batch, not two per request. A begin the batch cannot settle
//! at once (a stale record to take over, a record gone meanwhile, the same
//! reference twice in one batch) is settled by its caller, one request at
//! a time, as before batching. A STOP's confirmation cap is not a begin: it
//! is marked in the events' transaction ([`mark_many`]).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;

use super::batch::BatchWork;
use super::{corrupt, retrying, PgResult, PgStore};
use crate::domain::{now_millis, TenantId, UnixMillis};
use crate::store::idempotency::{MARK, STALE_ATTEMPT_MS};
use crate::store::{Attempt, IdempotencyStore, Result};

/// Rounds of "not taken, yet gone when read" (a concurrent abandon or
/// purge) before the attempt is reported in progress.
const ROUNDS: usize = 8;

/// Takes each reference that is free (or stale, pending and the same
/// request); returns the ones taken.
const TAKE_MANY: &str = "
INSERT INTO requests AS r (tenant, reference, done, at, fingerprint)
SELECT u.tenant, u.reference, false, $3, u.fingerprint
FROM unnest($1::text[], $2::text[], $4::bytea[]) AS u(tenant, reference, fingerprint)
ON CONFLICT (tenant, reference) DO UPDATE SET at = EXCLUDED.at
WHERE NOT r.done AND r.at < $5 AND r.fingerprint = EXCLUDED.fingerprint
RETURNING r.tenant, r.reference";

const READ_MANY: &str = "
SELECT r.tenant, r.reference, r.done, r.at, r.fingerprint, r.response
FROM requests r
JOIN unnest($1::text[], $2::text[]) AS u(tenant, reference)
  ON r.tenant = u.tenant AND r.reference = u.reference";

const FINISH_MANY: &str = "
INSERT INTO requests (tenant, reference, done, at, fingerprint, response)
SELECT u.tenant, u.reference, true, $3, u.fingerprint, u.response
FROM unnest($1::text[], $2::text[], $4::bytea[], $5::bytea[])
  AS u(tenant, reference, fingerprint, response)
ON CONFLICT (tenant, reference) DO UPDATE
SET done = true, at = EXCLUDED.at, fingerprint = EXCLUDED.fingerprint,
    response = EXCLUDED.response";

/// Keeps done records with their answers in the webhooks' scope where no
/// record holds the reference (`$3`, sorted); returns the ones kept.
const KEEP_MANY: &str = "
INSERT INTO requests (tenant, reference, done, at, fingerprint, response)
SELECT $1, u.reference, true, $2, u.fingerprint, u.response
FROM unnest($3::text[], $4::bytea[], $5::bytea[]) AS u(reference, fingerprint, response)
ON CONFLICT (tenant, reference) DO NOTHING
RETURNING reference";

/// The webhooks' records of `$2`, under their row locks.
const READ_LOCKED: &str = "
SELECT reference, done, at, fingerprint, response FROM requests
WHERE tenant = $1 AND reference = ANY($2)
ORDER BY reference
FOR UPDATE";

/// A webhook's replay record kept in the transaction of its work
/// (`Store::report_once`): its key, fingerprint and answer.
pub(crate) type Kept<'a> = (&'a str, &'a [u8; 32], &'a [u8]);

/// Per request of a batch, by its replay key if it has one: a key an
/// earlier request of the batch has is in progress (the first may do the
/// work; the repeat's sender retries once it committed, as after a begin
/// of its own).
pub(crate) fn repeats<'a>(keys: impl IntoIterator<Item = Option<&'a str>>) -> Vec<Option<Attempt>> {
    let mut firsts = HashSet::new();
    keys.into_iter()
        .map(|key| {
            key.filter(|k| !firsts.insert(*k))
                .map(|_| Attempt::InProgress)
        })
        .collect()
}

/// Keeps `records` done, with their answers, in `tx`, where no record
/// holds their key; for the others (none, mostly), what the records that
/// hold them say ([`read_held`]).
pub(crate) async fn keep_answers(
    tx: &deadpool_postgres::Transaction<'_>,
    records: &[Kept<'_>],
) -> PgResult<HashMap<String, Option<Attempt>>> {
    let kept = keep_many(tx, records).await?;
    let held: Vec<Kept<'_>> = records
        .iter()
        .filter(|r| !kept.contains(r.0))
        .copied()
        .collect();
    if held.is_empty() {
        return Ok(HashMap::new());
    }
    read_held(tx, &held).await
}

/// Keeps `records` done, with their answers, in `tx`, where no record
/// holds their key; the keys kept.
async fn keep_many<'a>(
    tx: &deadpool_postgres::Transaction<'_>,
    records: &[Kept<'a>],
) -> PgResult<HashSet<&'a str>> {
    if records.is_empty() {
        return Ok(HashSet::new());
    }
    // Index entries are locked in key order, in every batch.
    let mut sorted: Vec<&Kept<'a>> = records.iter().collect();
    sorted.sort_unstable_by_key(|r| r.0);
    sorted.dedup_by_key(|r| r.0);
    let keys: Vec<&str> = sorted.iter().map(|r| r.0).collect();
    let fingerprints: Vec<&[u8]> = sorted.iter().map(|r| &r.1[..]).collect();
    let answers: Vec<&[u8]> = sorted.iter().map(|r| r.2).collect();
    let stmt = tx.prepare_cached(KEEP_MANY).await?;
    let scope = TenantId::webhooks();
    let rows = tx
        .query(
            &stmt,
            &[
                &scope.as_str(),
                &now_millis(),
                &keys,
                &fingerprints,
                &answers,
            ],
        )
        .await?;
    let wanted: HashSet<&'a str> = keys.into_iter().collect();
    let mut kept = HashSet::with_capacity(rows.len());
    for row in rows {
        if let Some(k) = wanted.get(row.try_get::<_, &str>(0)?) {
            kept.insert(*k);
        }
    }
    Ok(kept)
}

/// What the records that hold `records`' keys say to them, read under
/// their locks: `Some(attempt)` is not to be done; `None` is a stale
/// pending record of the same content, the caller's to take over (with
/// [`overwrite_many`] in the same transaction). A key whose record is
/// gone meanwhile is in progress: its sender's retry settles it.
async fn read_held(
    tx: &deadpool_postgres::Transaction<'_>,
    records: &[Kept<'_>],
) -> PgResult<HashMap<String, Option<Attempt>>> {
    let keys: Vec<&str> = records.iter().map(|r| r.0).collect();
    let stmt = tx.prepare_cached(READ_LOCKED).await?;
    let scope = TenantId::webhooks();
    let mut held: HashMap<String, Option<Attempt>> = keys
        .iter()
        .map(|k| (k.to_string(), Some(Attempt::InProgress)))
        .collect();
    for row in tx.query(&stmt, &[&scope.as_str(), &keys]).await? {
        let key: String = row.try_get(0)?;
        let Some(r) = records.iter().find(|r| r.0 == key) else {
            continue;
        };
        let said = settle(
            r.1,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
            row.try_get(4)?,
        )?;
        held.insert(key, said);
    }
    Ok(held)
}

/// Writes `records` done with their answers in `tx`, whatever holds them.
pub(crate) async fn overwrite_many(
    tx: &deadpool_postgres::Transaction<'_>,
    records: &[Kept<'_>],
) -> PgResult<()> {
    let mut sorted: Vec<&Kept<'_>> = records.iter().collect();
    sorted.sort_unstable_by_key(|r| r.0);
    sorted.dedup_by_key(|r| r.0);
    let scope = TenantId::webhooks();
    let tenants: Vec<&str> = sorted.iter().map(|_| scope.as_str()).collect();
    let keys: Vec<&str> = sorted.iter().map(|r| r.0).collect();
    let fingerprints: Vec<&[u8]> = sorted.iter().map(|r| &r.1[..]).collect();
    let answers: Vec<&[u8]> = sorted.iter().map(|r| r.2).collect();
    let stmt = tx.prepare_cached(FINISH_MANY).await?;
    tx.execute(
        &stmt,
        &[&tenants, &keys, &now_millis(), &fingerprints, &answers],
    )
    .await?;
    Ok(())
}

/// [`IdempotencyStore::mark_once`] for `references` in `tx`, the
/// transaction of the change they go with; the ones marked. A stale
/// pending record is not taken over: it counts as a mark (only a crash
/// between a begin and its finish leaves one).
pub(crate) async fn mark_many<'a>(
    tx: &deadpool_postgres::Transaction<'_>,
    references: &[&'a str],
) -> PgResult<HashSet<&'a str>> {
    // A mark is a done record with the empty answer, as `mark_once` keeps.
    let marks: Vec<Kept<'a>> = references.iter().map(|r| (*r, &MARK, &b""[..])).collect();
    keep_many(tx, &marks).await
}

/// A begun or finished request, for the batching writers.
pub(crate) struct RequestReq {
    tenant: String,
    reference: String,
    fingerprint: [u8; 32],
    /// The answer, for a finish.
    response: Vec<u8>,
}

type Key<'a> = (&'a str, &'a str);

fn key(r: &RequestReq) -> Key<'_> {
    (r.tenant.as_str(), r.reference.as_str())
}

/// Batched begins. `None` is an attempt the batch could not settle: its
/// caller settles it alone.
pub(crate) struct BeginWork {
    pub pool: deadpool_postgres::Pool,
}

#[async_trait]
impl BatchWork for BeginWork {
    type Req = RequestReq;
    type Ans = Option<Attempt>;
    const NAME: &'static str = "begins";

    fn weight(_: &Self::Req) -> usize {
        1
    }

    async fn run(&self, reqs: &[&Self::Req]) -> PgResult<Vec<Self::Ans>> {
        // The first of each reference, in key order (index locks are taken
        // in one order by every batch, on every node).
        let mut by_key: HashMap<Key<'_>, &RequestReq> = HashMap::new();
        for r in reqs {
            by_key.entry(key(r)).or_insert(r);
        }
        let mut firsts: Vec<&RequestReq> = by_key.values().copied().collect();
        firsts.sort_by_key(|r| key(r));
        let tenants: Vec<&str> = firsts.iter().map(|r| r.tenant.as_str()).collect();
        let references: Vec<&str> = firsts.iter().map(|r| r.reference.as_str()).collect();
        let fingerprints: Vec<&[u8]> = firsts.iter().map(|r| &r.fingerprint[..]).collect();
        let now = now_millis();
        let stale = now - STALE_ATTEMPT_MS;

        let mut client = self.pool.get().await?;
        // One transaction: a retried batch takes what it took before again.
        let tx = client.transaction().await?;
        let take = tx.prepare_cached(TAKE_MANY).await?;
        let mut settled: HashMap<Key<'_>, Attempt> = HashMap::new();
        for row in tx
            .query(&take, &[&tenants, &references, &now, &fingerprints, &stale])
            .await?
        {
            if let Some(r) = by_key.get(&(row.try_get(0)?, row.try_get(1)?)) {
                settled.insert(key(r), Attempt::Fresh);
            }
        }
        let others: Vec<&RequestReq> = firsts
            .into_iter()
            .filter(|r| !settled.contains_key(&key(r)))
            .collect();
        if !others.is_empty() {
            let tenants: Vec<&str> = others.iter().map(|r| r.tenant.as_str()).collect();
            let references: Vec<&str> = others.iter().map(|r| r.reference.as_str()).collect();
            let read = tx.prepare_cached(READ_MANY).await?;
            for row in tx.query(&read, &[&tenants, &references]).await? {
                let Some(r) = by_key.get(&(row.try_get(0)?, row.try_get(1)?)) else {
                    continue;
                };
                // A record that does not decode is left to its own caller,
                // who gets the error: the batch goes on.
                let found = settle(
                    &r.fingerprint,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                    row.try_get(5)?,
                );
                if let Ok(Some(attempt)) = found {
                    settled.insert(key(r), attempt);
                }
            }
        }
        tx.commit().await?;
        // The first of each reference takes its answer; a repeat in the same
        // batch finds none and is settled alone, after this batch committed.
        Ok(reqs.iter().map(|r| settled.remove(&key(r))).collect())
    }
}

/// What a stored record says to an attempt with `fingerprint` that could
/// not take it; `None` when it is stale and the same request (take it over).
fn settle(
    fingerprint: &[u8],
    done: bool,
    at: i64,
    stored: &[u8],
    response: Option<Vec<u8>>,
) -> PgResult<Option<Attempt>> {
    if stored.len() != 32 {
        return Err(corrupt("a request fingerprint", stored.len()));
    }
    if stored != fingerprint {
        return Ok(Some(Attempt::Mismatch));
    }
    if done {
        return Ok(Some(Attempt::Done(response.unwrap_or_default())));
    }
    if now_millis() - at < STALE_ATTEMPT_MS {
        return Ok(Some(Attempt::InProgress));
    }
    Ok(None)
}

/// Batched finishes: the answers of a batch in one statement.
pub(crate) struct FinishWork {
    pub pool: deadpool_postgres::Pool,
}

#[async_trait]
impl BatchWork for FinishWork {
    type Req = RequestReq;
    type Ans = ();
    const NAME: &'static str = "finishes";

    fn weight(_: &Self::Req) -> usize {
        1
    }

    async fn run(&self, reqs: &[&Self::Req]) -> PgResult<Vec<Self::Ans>> {
        // One row per reference (a statement may not upsert a row twice):
        // the last answer given, in key order.
        let mut last: HashMap<Key<'_>, &RequestReq> = HashMap::new();
        for r in reqs {
            last.insert(key(r), r);
        }
        let mut rows: Vec<&RequestReq> = last.into_values().collect();
        rows.sort_by_key(|r| key(r));
        let tenants: Vec<&str> = rows.iter().map(|r| r.tenant.as_str()).collect();
        let references: Vec<&str> = rows.iter().map(|r| r.reference.as_str()).collect();
        let fingerprints: Vec<&[u8]> = rows.iter().map(|r| &r.fingerprint[..]).collect();
        let responses: Vec<&[u8]> = rows.iter().map(|r| r.response.as_slice()).collect();
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(FINISH_MANY).await?;
        client
            .execute(
                &stmt,
                &[
                    &tenants,
                    &references,
                    &now_millis(),
                    &fingerprints,
                    &responses,
                ],
            )
            .await?;
        Ok(vec![(); reqs.len()])
    }
}

impl PgStore {
    /// One attempt settled alone: take the record, or read what it says,
    /// in rounds while it is taken and released under our feet.
    async fn begin_one(
        &self,
        tenant: &TenantId,
        reference: &str,
        fingerprint: &[u8],
    ) -> Result<Attempt> {
        let pool = self.pool();
        retrying(|| async move {
            let client = pool.get().await?;
            let (take, read) = futures::try_join!(
                client.prepare_cached(
                    "INSERT INTO requests AS r (tenant, reference, done, at, fingerprint)
                     VALUES ($1, $2, false, $3, $4)
                     ON CONFLICT (tenant, reference) DO UPDATE SET at = EXCLUDED.at
                     WHERE NOT r.done AND r.at < $5 AND r.fingerprint = EXCLUDED.fingerprint
                     RETURNING true"
                ),
                client.prepare_cached(
                    "SELECT done, at, fingerprint, response FROM requests
                     WHERE tenant = $1 AND reference = $2"
                ),
            )?;
            for _ in 0..ROUNDS {
                let now = now_millis();
                let stale = now - STALE_ATTEMPT_MS;
                let taken = client
                    .query_opt(
                        &take,
                        &[&tenant.as_str(), &reference, &now, &fingerprint, &stale],
                    )
                    .await?;
                if taken.is_some() {
                    return Ok(Attempt::Fresh);
                }
                let Some(row) = client
                    .query_opt(&read, &[&tenant.as_str(), &reference])
                    .await?
                else {
                    continue; // abandoned meanwhile: try to take it again
                };
                let settled = settle(
                    fingerprint,
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                )?;
                if let Some(attempt) = settled {
                    return Ok(attempt);
                }
                // Stale and the same request: another round takes it over.
            }
            Ok(Attempt::InProgress)
        })
        .await
    }
}

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn begin_request(
        &self,
        tenant: &TenantId,
        reference: &str,
        fingerprint: &[u8; 32],
    ) -> Result<Attempt> {
        let batched = self
            .begins
            .submit(RequestReq {
                tenant: tenant.to_string(),
                reference: reference.to_string(),
                fingerprint: *fingerprint,
                response: Vec::new(),
            })
            .await?;
        match batched {
            Some(attempt) => Ok(attempt),
            None => self.begin_one(tenant, reference, fingerprint).await,
        }
    }

    async fn finish_request(
        &self,
        tenant: &TenantId,
        reference: &str,
        fingerprint: &[u8; 32],
        response: &[u8],
    ) -> Result<()> {
        self.finishes
            .submit(RequestReq {
                tenant: tenant.to_string(),
                reference: reference.to_string(),
                fingerprint: *fingerprint,
                response: response.to_vec(),
            })
            .await
    }

    async fn abandon_request(&self, tenant: &TenantId, reference: &str) -> Result<()> {
        let pool = self.pool();
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached("DELETE FROM requests WHERE tenant = $1 AND reference = $2")
                .await?;
            client
                .execute(&stmt, &[&tenant.as_str(), &reference])
                .await?;
            Ok(())
        })
        .await
    }

    async fn purge_requests(&self, before: UnixMillis) -> Result<usize> {
        let pool = self.pool();
        retrying(|| async move {
            let client = pool.get().await?;
            // The condition is checked again on each row under its lock: a
            // retry that refreshed a record meanwhile keeps it.
            let stmt = client
                .prepare_cached("DELETE FROM requests WHERE at < $1")
                .await?;
            Ok(client.execute(&stmt, &[&before]).await? as usize)
        })
        .await
    }
}
