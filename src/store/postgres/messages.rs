//! Message records in PostgreSQL: `messages` (the record as JSON, with the
//! columns a listing filters on) and `message_providers` (the provider's ids
//! of a message, one per part). A request's records are written by a
//! batching writer, so concurrent sends share one commit; so are delivery
//! reports: each one's record under its row lock, the campaigns' delivery
//! counters and the reports' notifications, in one transaction per batch.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;

use super::batch::BatchWork;
use super::{corrupt, retrying, PgResult, PgStore};
use crate::domain::{MessageId, MessageStatus, Notification, TenantId, UnixMillis};
use crate::store::messages::SharedNotify;
use crate::store::{
    Applied, MessageFilter, MessageRecord, MessageStore, Reported, Result, StatusChange, StoreError,
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
}

/// The batching writer of delivery reports: a DLR storm costs one commit
/// per batch, not one per report (issue 12: 1,217 reports/s at one each).
/// Locks are taken in one order in every batch, so two nodes' batches do
/// not deadlock: the records by message id, then the counters by key once
/// every record is done.
pub(crate) struct ReportWork {
    pub pool: deadpool_postgres::Pool,
}

#[async_trait]
impl BatchWork for ReportWork {
    type Req = ReportReq;
    /// A record that does not decode fails its own report, not the batch.
    type Ans = Result<Option<Reported>>;
    const NAME: &'static str = "reports";

    fn weight(_: &Self::Req) -> usize {
        1
    }

    /// A fixed number of statements per batch, whatever its size: one
    /// look-up that locks every record, one update, the counters, the
    /// notifications. (Two statements per report made a batch slower than
    /// the reports' own transactions on as many connections.)
    async fn run(&self, reqs: &[&Self::Req]) -> PgResult<Vec<Self::Ans>> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let providers: Vec<&str> = reqs.iter().map(|r| r.provider.as_str()).collect();
        let provider_ids: Vec<&str> = reqs.iter().map(|r| r.provider_id.as_str()).collect();
        let find = tx.prepare_cached(FIND_REPORTED).await?;
        let rows = tx.query(&find, &[&providers, &provider_ids]).await?;
        // Report (by position) -> its message, and each message's record.
        let mut message_of: Vec<Option<String>> = vec![None; reqs.len()];
        let mut records: HashMap<String, std::result::Result<MessageRecord, String>> =
            HashMap::new();
        for row in &rows {
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
        let mut answers: Vec<Self::Ans> = Vec::with_capacity(reqs.len());
        let mut written: BTreeSet<String> = BTreeSet::new();
        let mut deltas: BTreeMap<(String, String, &'static str), i64> = BTreeMap::new();
        let mut notes: Vec<Notification> = Vec::new();
        // In arrival order: two reports of one message apply as they came.
        for (r, id) in reqs.iter().zip(&message_of) {
            let Some(id) = id else {
                answers.push(Ok(None));
                continue;
            };
            let record = match records.get_mut(id) {
                Some(Ok(record)) => record,
                Some(Err(e)) => {
                    answers.push(Err(StoreError::Corrupt(e.clone())));
                    continue;
                }
                None => return Err(corrupt("a report's message", id)),
            };
            let before = record.status();
            let applied = record.apply(r.change.clone());
            if applied != Applied::Duplicate {
                written.insert(id.clone());
            }
            if applied == Applied::Changed {
                if record.category.is_marketing() {
                    let campaign = record.campaign.as_ref().map_or("", |c| c.as_str());
                    for (status, delta) in [(before, -1i64), (record.status(), 1)] {
                        if let Some(counter) = delivery_counter(status) {
                            *deltas
                                .entry((record.tenant.to_string(), campaign.to_string(), counter))
                                .or_default() += delta;
                        }
                    }
                }
                notes.extend((r.notify)(record));
            }
            answers.push(Ok(Some(Reported {
                record: record.clone(),
                applied,
            })));
        }
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
        Ok(answers)
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
        self.reports
            .submit(ReportReq {
                provider: provider.to_string(),
                provider_id: provider_id.to_string(),
                change,
                notify,
            })
            .await?
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
