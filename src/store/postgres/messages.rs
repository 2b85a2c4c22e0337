//! Message records in PostgreSQL: `messages` (the record as JSON, with the
//! columns a listing filters on) and `message_providers` (the provider's ids
//! of a message, one per part). A request's records are written by a
//! batching writer, so concurrent sends share one commit; so are delivery
//! reports: each one's record under its row lock, the campaigns' delivery
//! counters and the reports' notifications, in one transaction per batch.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;

use super::batch::BatchWork;
use super::idempotency::{self, Kept};
use super::{corrupt, retrying, PgResult, PgStore};
use crate::domain::{MessageId, MessageStatus, Notification, TenantId, UnixMillis};
use crate::store::messages::SharedNotify;
use crate::store::{
    Applied, Attempt, MessageFilter, MessageRecord, MessageStore, Once, Replay, ReportAnswer,
    Reported, Result, StatusChange, StoreError,
};

pub(super) const INSERT_MESSAGES: &str = "
INSERT INTO messages (id, tenant, created, status, campaign, recipient, record)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])
ON CONFLICT (id) DO NOTHING";

pub(super) const INSERT_PROVIDERS: &str = "
INSERT INTO message_providers (provider, provider_id, id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
ON CONFLICT (provider, provider_id) DO UPDATE SET id = EXCLUDED.id";

/// The messages of a batch of reports, by the report's position (from 1),
/// locked in id order: two nodes' batches take their locks in one order.
/// PostgreSQL sorts before it locks (`ORDER BY` with `FOR UPDATE`).
const FIND_REPORTED: &str = "
SELECT r.position, m.id, m.record
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS r(provider, provider_id, position)
JOIN message_providers p ON p.provider = r.provider AND p.provider_id = r.provider_id
JOIN messages m ON m.id = p.id
ORDER BY m.id
FOR UPDATE OF m";

const UPDATE_REPORTED: &str = "
UPDATE messages m SET record = u.record, status = u.status
FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, record, status)
WHERE m.id = u.id";

pub(super) const COUNT: &str = "
INSERT INTO insights (tenant, campaign, counter, n) VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant, campaign, counter) DO UPDATE SET n = greatest(insights.n + EXCLUDED.n, 0)";

pub(super) fn encode(r: &MessageRecord) -> String {
    serde_json::to_string(r).expect("a record serializes")
}

pub(super) fn decode(s: &str) -> PgResult<MessageRecord> {
    serde_json::from_str(s).map_err(|e| corrupt("a message record", e))
}

/// The provider ids of a record (several for a message split into parts).
pub(super) fn provider_ids(r: &MessageRecord) -> Vec<(&str, &str)> {
    match (&r.provider, &r.provider_id) {
        (Some(p), Some(ids)) => ids
            .split(',')
            .filter(|id| !id.is_empty())
            .map(|id| (p.as_str(), id))
            .collect(),
        _ => Vec::new(),
    }
}

/// The campaign counter a marketing message in this status counts in (as
/// sled's `messages.rs`).
fn delivery_counter(status: MessageStatus) -> Option<&'static str> {
    match status {
        MessageStatus::Delivered => Some("delivered"),
        MessageStatus::Undelivered | MessageStatus::Failed => Some("undelivered"),
        _ => None,
    }
}

/// A delivery report for the batching writer.
pub(crate) struct ReportReq {
    provider: String,
    provider_id: String,
    change: StatusChange,
    notify: SharedNotify,
    /// A webhook's replay record, kept in the report's transaction.
    once: Option<(Replay, ReportAnswer)>,
}

impl ReportReq {
    pub(super) fn new(
        provider: &str,
        provider_id: &str,
        change: StatusChange,
        notify: SharedNotify,
        once: Option<(Replay, ReportAnswer)>,
    ) -> ReportReq {
        ReportReq {
            provider: provider.to_string(),
            provider_id: provider_id.to_string(),
            change,
            notify,
            once,
        }
    }
}

/// The batching writer of delivery reports: a DLR storm costs one commit
/// per batch, not one per report (issue 12: 1,217 reports/s at one each).
/// Locks are taken in one order in every batch, so two nodes' batches do
/// not deadlock: the records by message id, then the webhooks' replay
/// records by key, then the counters by key once every record is done.
pub(crate) struct ReportWork {
    pub pool: deadpool_postgres::Pool,
}

/// A batch's reports applied in memory, in arrival order (two reports of
/// one message apply as they came), with what they write.
struct Applying {
    /// Per report: `None` if it was not applied (its replay record said so).
    results: Vec<Option<Result<Option<Reported>>>>,
    records: HashMap<String, std::result::Result<MessageRecord, String>>,
    written: BTreeSet<String>,
    deltas: BTreeMap<(String, String, &'static str), i64>,
    notes: Vec<Notification>,
}

/// The batch's records as found (`FIND_REPORTED`): each report's message,
/// and each message's record. A record that does not decode fails the
/// reports of its message, not the batch.
#[allow(clippy::type_complexity)]
fn found(
    rows: &[tokio_postgres::Row],
    n: usize,
) -> PgResult<(
    Vec<Option<String>>,
    HashMap<String, std::result::Result<MessageRecord, String>>,
)> {
    let mut message_of: Vec<Option<String>> = vec![None; n];
    let mut records = HashMap::new();
    for row in rows {
        let position: i64 = row.try_get(0)?;
        let id: String = row.try_get(1)?;
        let slot = usize::try_from(position - 1)
            .ok()
            .and_then(|i| message_of.get_mut(i))
            .ok_or_else(|| corrupt("a report's position", position))?;
        if !records.contains_key(&id) {
            let raw: &str = row.try_get(2)?;
            let record = serde_json::from_str::<MessageRecord>(raw)
                .map_err(|e| format!("a message record: {e}"));
            records.insert(id.clone(), record);
        }
        *slot = Some(id);
    }
    Ok((message_of, records))
}

/// Applies every report but those `skip` marks to the records found.
fn apply(
    reqs: &[&ReportReq],
    rows: &[tokio_postgres::Row],
    skip: &[Option<Attempt>],
) -> PgResult<Applying> {
    let (message_of, records) = found(rows, reqs.len())?;
    let mut a = Applying {
        results: Vec::with_capacity(reqs.len()),
        records,
        written: BTreeSet::new(),
        deltas: BTreeMap::new(),
        notes: Vec::new(),
    };
    for ((r, id), skip) in reqs.iter().zip(&message_of).zip(skip) {
        if skip.is_some() {
            a.results.push(None);
            continue;
        }
        let Some(id) = id else {
            a.results.push(Some(Ok(None)));
            continue;
        };
        let record = match a.records.get_mut(id) {
            Some(Ok(record)) => record,
            Some(Err(e)) => {
                a.results.push(Some(Err(StoreError::Corrupt(e.clone()))));
                continue;
            }
            None => return Err(corrupt("a report's message", id)),
        };
        let before = record.status();
        let applied = record.apply(r.change.clone());
        if applied != Applied::Duplicate {
            a.written.insert(id.clone());
        }
        if applied == Applied::Changed {
            if record.category.is_marketing() {
                let campaign = record.campaign.as_ref().map_or("", |c| c.as_str());
                for (status, delta) in [(before, -1i64), (record.status(), 1)] {
                    if let Some(counter) = delivery_counter(status) {
                        *a.deltas
                            .entry((record.tenant.to_string(), campaign.to_string(), counter))
                            .or_default() += delta;
                    }
                }
            }
            a.notes.extend((r.notify)(record));
        }
        a.results.push(Some(Ok(Some(Reported {
            record: record.clone(),
            applied,
        }))));
    }
    Ok(a)
}

/// The answer each applied report's replay record keeps (`None`: no
/// record, or the report failed).
fn answers(reqs: &[&ReportReq], a: &Applying) -> Vec<Option<Vec<u8>>> {
    reqs.iter()
        .zip(&a.results)
        .map(|(r, result)| match (&r.once, result) {
            (Some((_, answer)), Some(Ok(reported))) => {
                Some(answer(reported.as_ref().map(|r| r.applied)))
            }
            _ => None,
        })
        .collect()
}

#[async_trait]
impl BatchWork for ReportWork {
    type Req = ReportReq;
    /// A record that does not decode fails its own report, not the batch.
    type Ans = Result<Once<Option<Reported>>>;
    const NAME: &'static str = "reports";

    fn weight(_: &Self::Req) -> usize {
        1
    }

    /// A fixed number of statements per batch, whatever its size: one
    /// look-up that locks every record, the replay records, one update,
    /// the counters, the notifications. (Two statements per report made a
    /// batch slower than the reports' own transactions on as many
    /// connections.)
    async fn run(&self, reqs: &[&Self::Req]) -> PgResult<Vec<Self::Ans>> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let providers: Vec<&str> = reqs.iter().map(|r| r.provider.as_str()).collect();
        let provider_ids: Vec<&str> = reqs.iter().map(|r| r.provider_id.as_str()).collect();
        let find = tx.prepare_cached(FIND_REPORTED).await?;
        let rows = tx.query(&find, &[&providers, &provider_ids]).await?;

        let mut skip = idempotency::repeats(
            reqs.iter()
                .map(|r| r.once.as_ref().map(|(replay, _)| replay.key.as_str())),
        );
        let mut applying = apply(reqs, &rows, &skip)?;
        let mut kept = answers(reqs, &applying);
        let records: Vec<Kept<'_>> = reqs
            .iter()
            .zip(&kept)
            .filter_map(|(r, answer)| {
                let (replay, _) = r.once.as_ref()?;
                Some((replay.key.as_str(), &replay.fingerprint, answer.as_deref()?))
            })
            .collect();
        let said = idempotency::keep_answers(&tx, &records).await?;
        if !said.is_empty() {
            // Rare: a replay, or the same report on another node at once.
            // What holds each key decides: not done (the batch is applied
            // again without it), or a stale record of ours to take over.
            let mut overwrite: Vec<usize> = Vec::new();
            for (i, r) in reqs.iter().enumerate() {
                let Some((replay, _)) = &r.once else { continue };
                match said.get(&replay.key) {
                    Some(Some(attempt)) if skip[i].is_none() => skip[i] = Some(attempt.clone()),
                    Some(None) => overwrite.push(i),
                    _ => {}
                }
            }
            if said.values().any(Option::is_some) {
                applying = apply(reqs, &rows, &skip)?;
                // Without the skipped, a kept answer may differ: written again.
                let now = answers(reqs, &applying);
                for i in 0..reqs.len() {
                    if now[i] != kept[i] && skip[i].is_none() && now[i].is_some() {
                        overwrite.push(i);
                    }
                }
                kept = now;
            }
            let records: Vec<Kept<'_>> = overwrite
                .iter()
                .filter_map(|&i| {
                    let (replay, _) = reqs[i].once.as_ref()?;
                    Some((
                        replay.key.as_str(),
                        &replay.fingerprint,
                        kept[i].as_deref()?,
                    ))
                })
                .collect();
            if !records.is_empty() {
                idempotency::overwrite_many(&tx, &records).await?;
            }
        }

        let Applying {
            results,
            records,
            written,
            deltas,
            notes,
        } = applying;
        if !written.is_empty() {
            let mut ids: Vec<&str> = Vec::with_capacity(written.len());
            let mut bodies: Vec<String> = Vec::with_capacity(written.len());
            let mut statuses: Vec<&str> = Vec::with_capacity(written.len());
            for id in &written {
                if let Some(Ok(record)) = records.get(id) {
                    ids.push(id);
                    bodies.push(encode(record));
                    statuses.push(record.status().as_str());
                }
            }
            let update = tx.prepare_cached(UPDATE_REPORTED).await?;
            tx.execute(&update, &[&ids, &bodies, &statuses]).await?;
        }
        if !deltas.is_empty() {
            let count = tx.prepare_cached(COUNT).await?;
            // In key order: no lock cycles between batches.
            for ((tenant, campaign, counter), delta) in &deltas {
                if *delta != 0 {
                    tx.execute(&count, &[tenant, campaign, counter, delta])
                        .await?;
                }
            }
        }
        let notes: Vec<&Notification> = notes.iter().collect();
        super::outbox::insert(&tx, &notes, crate::domain::now_millis()).await?;
        tx.commit().await?;
        Ok(results
            .into_iter()
            .zip(skip)
            .zip(kept)
            .map(|((result, skip), answer)| match (result, skip) {
                (_, Some(attempt)) => Ok(Once::Seen(attempt)),
                (Some(Ok(value)), None) => Ok(Once::Done {
                    value,
                    answer: answer.unwrap_or_default(),
                }),
                (Some(Err(e)), None) => Err(e),
                (None, None) => Err(StoreError::Corrupt("a report left out of its batch".into())),
            })
            .collect())
    }
}

/// The batching writer's work: every queued request's records in one transaction.
pub(crate) struct PutWork {
    pub pool: deadpool_postgres::Pool,
}

#[async_trait]
impl BatchWork for PutWork {
    type Req = (Vec<MessageRecord>, Vec<Notification>);
    type Ans = ();
    const NAME: &'static str = "messages";

    fn weight(req: &Self::Req) -> usize {
        req.0.len().max(1)
    }

    async fn run(&self, reqs: &[&Self::Req]) -> PgResult<Vec<()>> {
        let records: Vec<&MessageRecord> = reqs.iter().flat_map(|r| r.0.iter()).collect();
        let notes: Vec<&Notification> = reqs.iter().flat_map(|r| r.1.iter()).collect();
        let mut cols: (
            Vec<&str>,
            Vec<&str>,
            Vec<i64>,
            Vec<&str>,
            Vec<Option<&str>>,
            Vec<&str>,
            Vec<String>,
        ) = Default::default();
        let mut providers: (Vec<&str>, Vec<&str>, Vec<&str>) = Default::default();
        for r in &records {
            cols.0.push(r.id.as_str());
            cols.1.push(r.tenant.as_str());
            // As sled does: by the id's time, which is when the message was made.
            cols.2.push(r.id.created());
            cols.3.push(r.status().as_str());
            cols.4.push(r.campaign.as_ref().map(|c| c.as_str()));
            cols.5.push(&r.to);
            cols.6.push(encode(r));
            for (p, pid) in provider_ids(r) {
                providers.0.push(p);
                providers.1.push(pid);
                providers.2.push(r.id.as_str());
            }
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if !records.is_empty() {
            let stmt = tx.prepare_cached(INSERT_MESSAGES).await?;
            tx.execute(
                &stmt,
                &[
                    &cols.0, &cols.1, &cols.2, &cols.3, &cols.4, &cols.5, &cols.6,
                ],
            )
            .await?;
        }
        if !providers.0.is_empty() {
            let stmt = tx.prepare_cached(INSERT_PROVIDERS).await?;
            tx.execute(&stmt, &[&providers.0, &providers.1, &providers.2])
                .await?;
        }
        super::outbox::insert(&tx, &notes, crate::domain::now_millis()).await?;
        tx.commit().await?;
        Ok(vec![(); reqs.len()])
    }
}

#[async_trait]
impl MessageStore for PgStore {
    async fn put_messages(
        &self,
        records: &[MessageRecord],
        notifications: &[Notification],
    ) -> Result<()> {
        if records.is_empty() && notifications.is_empty() {
            return Ok(());
        }
        self.messages
            .submit((records.to_vec(), notifications.to_vec()))
            .await
    }

    async fn message(&self, tenant: &TenantId, id: &MessageId) -> Result<Option<MessageRecord>> {
        let pool = self.pool();
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached("SELECT record FROM messages WHERE id = $1 AND tenant = $2")
                .await?;
            let row = client
                .query_opt(&stmt, &[&id.as_str(), &tenant.as_str()])
                .await?;
            row.map(|r| decode(r.try_get(0)?)).transpose()
        })
        .await
    }

    async fn messages(
        &self,
        tenant: &TenantId,
        filter: &MessageFilter,
        before: Option<&MessageId>,
        limit: usize,
    ) -> Result<Vec<MessageRecord>> {
        let pool = self.pool();
        let before = before.map(|b| b.as_str().to_string());
        let status = filter.status.map(|s| s.as_str());
        let campaign = filter.campaign.as_ref().map(|c| c.as_str());
        let to = filter.to.as_deref();
        let limit = super::to_i64(limit as u64);
        let (before, status, campaign, to) = (&before, &status, &campaign, &to);
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT record FROM messages
                     WHERE tenant = $1 AND ($2::text IS NULL OR id < $2)
                       AND ($3::text IS NULL OR status = $3)
                       AND ($4::text IS NULL OR campaign = $4)
                       AND ($5::text IS NULL OR recipient = $5)
                     ORDER BY id DESC LIMIT $6",
                )
                .await?;
            let rows = client
                .query(
                    &stmt,
                    &[&tenant.as_str(), before, status, campaign, to, &limit],
                )
                .await?;
            rows.iter().map(|r| decode(r.try_get(0)?)).collect()
        })
        .await
    }

    async fn report(
        &self,
        provider: &str,
        provider_id: &str,
        change: StatusChange,
        notify: SharedNotify,
    ) -> Result<Option<Reported>> {
        let req = ReportReq::new(provider, provider_id, change, notify, None);
        self.reports.submit(req).await??.done()
    }

    async fn purge_messages(&self, before: UnixMillis, step: usize) -> Result<usize> {
        let pool = self.pool();
        let step = super::to_i64(step as u64);
        retrying(|| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            let ids = tx
                .prepare_cached(
                    "SELECT id FROM messages WHERE created < $1 ORDER BY created LIMIT $2",
                )
                .await?;
            let ids: Vec<String> = tx
                .query(&ids, &[&before, &step])
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<std::result::Result<_, _>>()?;
            if !ids.is_empty() {
                let providers = tx
                    .prepare_cached("DELETE FROM message_providers WHERE id = ANY($1)")
                    .await?;
                tx.execute(&providers, &[&ids]).await?;
                let messages = tx
                    .prepare_cached("DELETE FROM messages WHERE id = ANY($1)")
                    .await?;
                tx.execute(&messages, &[&ids]).await?;
            }
            tx.commit().await?;
            Ok(ids.len())
        })
        .await
    }
}
