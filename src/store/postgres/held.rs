//! Held messages in PostgreSQL: `held`, one row per message with its
//! schedule (`due`), its claim (`lease_until`, which is also the claim's
//! token) and `begun`; the message itself as JSON.
//!
//! A claim leases due rows with one `UPDATE ... RETURNING` over rows picked
//! `FOR UPDATE SKIP LOCKED`, each row's lease re-checked under its lock, as
//! the outbox does: two nodes claiming at once never get one message both.
//! Every later step names its claim (`WHERE lease_until = <token>`), so a
//! node whose lease ran out changes nothing. A release is one transaction:
//! the row deleted, the record moved on, counters and notifications.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use tokio_postgres::Row;

use super::messages::{decode as decode_record, encode as encode_record, provider_ids};
use super::{corrupt, retrying, to_i64, PgResult, PgStore};
use crate::domain::{MessageId, MessageStatus, Notification, TenantId, UnixMillis};
use crate::store::messages::Notify;
use crate::store::{
    Cancel, Claimed, HeldMessage, HeldStats, HeldStore, MessageRecord, Release, Result,
    StatusChange,
};

const UPSERT_MESSAGES: &str = "
INSERT INTO messages (id, tenant, created, status, campaign, recipient, record)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])
ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record, status = EXCLUDED.status";

fn encode(h: &HeldMessage) -> String {
    serde_json::to_string(h).expect("a held message serializes")
}

fn decode(s: &str) -> PgResult<HeldMessage> {
    serde_json::from_str(s).map_err(|e| corrupt("a held message", e))
}

/// The columns of `messages` for a batch of records, as `unnest` takes them.
type RecordColumns<'a> = (
    Vec<&'a str>,
    Vec<&'a str>,
    Vec<i64>,
    Vec<&'a str>,
    Vec<Option<&'a str>>,
    Vec<&'a str>,
    Vec<String>,
);

/// A claimed row: the message with its schedule columns.
fn claimed(r: &Row) -> PgResult<HeldMessage> {
    let mut h = decode(r.try_get(0)?)?;
    h.due = r.try_get(1)?;
    h.lease_until = r.try_get(2)?;
    h.begun = r.try_get(3)?;
    Ok(h)
}

/// Records, written (inserted, or over the stored one) in one statement.
async fn upsert_records(
    tx: &deadpool_postgres::Transaction<'_>,
    records: &[&MessageRecord],
) -> PgResult<()> {
    if records.is_empty() {
        return Ok(());
    }
    let mut cols: RecordColumns = Default::default();
    // One row per provider id: a provider that gave two messages one id
    // (the last wins, as it would one statement at a time) must not fail
    // the statement, and with it the whole release.
    let mut by_provider_id: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for r in records {
        cols.0.push(r.id.as_str());
        cols.1.push(r.tenant.as_str());
        cols.2.push(r.id.created());
        cols.3.push(r.status().as_str());
        cols.4.push(r.campaign.as_ref().map(|c| c.as_str()));
        cols.5.push(&r.to);
        cols.6.push(encode_record(r));
        for (p, pid) in provider_ids(r) {
            by_provider_id.insert((p, pid), r.id.as_str());
        }
    }
    let mut providers: (Vec<&str>, Vec<&str>, Vec<&str>) = Default::default();
    for ((p, pid), id) in by_provider_id {
        providers.0.push(p);
        providers.1.push(pid);
        providers.2.push(id);
    }
    let stmt = tx.prepare_cached(UPSERT_MESSAGES).await?;
    tx.execute(
        &stmt,
        &[
            &cols.0, &cols.1, &cols.2, &cols.3, &cols.4, &cols.5, &cols.6,
        ],
    )
    .await?;
    if !providers.0.is_empty() {
        let stmt = tx.prepare_cached(super::messages::INSERT_PROVIDERS).await?;
        tx.execute(&stmt, &[&providers.0, &providers.1, &providers.2])
            .await?;
    }
    Ok(())
}

/// The counters a release adds to, as sled's `held.rs` counts them.
fn release_counters(r: &MessageRecord) -> Vec<(&'static str, i64)> {
    if !r.category.is_marketing() {
        return Vec::new();
    }
    match r.status() {
        MessageStatus::Sent => vec![("sent", 1), ("segments", r.segments as i64)],
        MessageStatus::Blocked => vec![("blocked", 1)],
        _ => Vec::new(),
    }
}

#[async_trait]
impl HeldStore for PgStore {
    async fn hold(&self, held: &[HeldMessage], notifications: &[Notification]) -> Result<()> {
        if held.is_empty() && notifications.is_empty() {
            return Ok(());
        }
        let pool = self.pool();
        let mut cols: (Vec<&str>, Vec<&str>, Vec<i64>, Vec<String>) = Default::default();
        for h in held {
            cols.0.push(h.record.id.as_str());
            cols.1.push(h.record.tenant.as_str());
            cols.2.push(h.due);
            cols.3.push(encode(h));
        }
        let records: Vec<&MessageRecord> = held.iter().map(|h| &h.record).collect();
        let notes: Vec<&Notification> = notifications.iter().collect();
        let (cols, records, notes) = (&cols, &records, &notes);
        retrying(|| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO held (id, tenant, due, message)
                     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[])
                     ON CONFLICT (id) DO NOTHING",
                )
                .await?;
            tx.execute(&stmt, &[&cols.0, &cols.1, &cols.2, &cols.3])
                .await?;
            // Only new records: a message is held once, before anyone can release it.
            let mut fields: (
                Vec<&str>,
                Vec<&str>,
                Vec<i64>,
                Vec<&str>,
                Vec<Option<&str>>,
                Vec<&str>,
                Vec<String>,
            ) = Default::default();
            for r in records {
                fields.0.push(r.id.as_str());
                fields.1.push(r.tenant.as_str());
                fields.2.push(r.id.created());
                fields.3.push(r.status().as_str());
                fields.4.push(r.campaign.as_ref().map(|c| c.as_str()));
                fields.5.push(&r.to);
                fields.6.push(encode_record(r));
            }
            if !records.is_empty() {
                let stmt = tx.prepare_cached(super::messages::INSERT_MESSAGES).await?;
                tx.execute(
                    &stmt,
                    &[
                        &fields.0, &fields.1, &fields.2, &fields.3, &fields.4, &fields.5, &fields.6,
                    ],
                )
                .await?;
            }
            super::outbox::insert(&tx, notes, crate::domain::now_millis()).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn claim_held(
        &self,
        now: UnixMillis,
        limit: usize,
        lease_ms: i64,
    ) -> Result<Vec<HeldMessage>> {
        let pool = self.pool();
        let limit = to_i64(limit as u64);
        let mut out = retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "WITH candidates AS (
                        SELECT id FROM held
                        WHERE due <= $1 AND lease_until <= $1
                        ORDER BY due, id
                        LIMIT $2
                        FOR UPDATE SKIP LOCKED
                    )
                    UPDATE held SET lease_until = $1 + $3
                    FROM candidates
                    WHERE held.id = candidates.id AND held.lease_until <= $1
                    RETURNING held.message, held.due, held.lease_until, held.begun",
                )
                .await?;
            let rows = client.query(&stmt, &[&now, &limit, &lease_ms]).await?;
            rows.iter().map(claimed).collect::<PgResult<Vec<_>>>()
        })
        .await?;
        out.sort_by(|a, b| (a.due, a.id()).cmp(&(b.due, b.id())));
        Ok(out)
    }

    async fn begin_held(&self, claims: &[Claimed]) -> Result<Vec<bool>> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let pool = self.pool();
        let ids: Vec<&str> = claims.iter().map(|c| c.id.as_str()).collect();
        let leases: Vec<i64> = claims.iter().map(|c| c.lease_until).collect();
        let (ids, leases) = (&ids, &leases);
        let begun: Vec<String> = retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "UPDATE held SET begun = true
                     FROM unnest($1::text[], $2::bigint[]) AS x(id, lease)
                     WHERE held.id = x.id AND held.lease_until = x.lease
                     RETURNING held.id",
                )
                .await?;
            let rows = client.query(&stmt, &[ids, leases]).await?;
            rows.iter()
                .map(|r| r.try_get::<_, String>(0).map_err(Into::into))
                .collect::<PgResult<Vec<_>>>()
        })
        .await?;
        Ok(ids.iter().map(|id| begun.iter().any(|b| b == id)).collect())
    }

    async fn postpone_held(&self, claims: &[(Claimed, UnixMillis)]) -> Result<()> {
        if claims.is_empty() {
            return Ok(());
        }
        let pool = self.pool();
        let ids: Vec<&str> = claims.iter().map(|(c, _)| c.id.as_str()).collect();
        let leases: Vec<i64> = claims.iter().map(|(c, _)| c.lease_until).collect();
        let dues: Vec<i64> = claims.iter().map(|(_, d)| *d).collect();
        let (ids, leases, dues) = (&ids, &leases, &dues);
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "UPDATE held SET due = x.due, lease_until = 0, begun = false
                     FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS x(id, lease, due)
                     WHERE held.id = x.id AND held.lease_until = x.lease",
                )
                .await?;
            client.execute(&stmt, &[ids, leases, dues]).await?;
            Ok(())
        })
        .await
    }

    async fn finish_held(
        &self,
        releases: &[Release],
        notify: Notify<'_>,
    ) -> Result<Vec<Option<MessageRecord>>> {
        if releases.is_empty() {
            return Ok(Vec::new());
        }
        let pool = self.pool();
        let ids: Vec<&str> = releases.iter().map(|r| r.claim.id.as_str()).collect();
        let leases: Vec<i64> = releases.iter().map(|r| r.claim.lease_until).collect();
        let (ids, leases) = (&ids, &leases);
        retrying(|| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            // The rows still ours, gone with their bodies.
            let stmt = tx
                .prepare_cached(
                    "DELETE FROM held USING unnest($1::text[], $2::bigint[]) AS x(id, lease)
                     WHERE held.id = x.id AND held.lease_until = x.lease
                     RETURNING held.id, held.message",
                )
                .await?;
            let mut owned: HashMap<String, HeldMessage> = HashMap::new();
            for row in tx.query(&stmt, &[ids, leases]).await? {
                owned.insert(row.try_get(0)?, decode(row.try_get(1)?)?);
            }
            let mine: Vec<&str> = owned.keys().map(String::as_str).collect();
            let stmt = tx
                .prepare_cached("SELECT id, record FROM messages WHERE id = ANY($1) FOR UPDATE")
                .await?;
            let mut stored: HashMap<String, MessageRecord> = HashMap::new();
            for row in tx.query(&stmt, &[&mine]).await? {
                stored.insert(row.try_get(0)?, decode_record(row.try_get(1)?)?);
            }
            let mut out = Vec::with_capacity(releases.len());
            let mut changed: Vec<MessageRecord> = Vec::new();
            let mut notes: Vec<Notification> = Vec::new();
            let mut counters: BTreeMap<(String, String, &'static str), i64> = BTreeMap::new();
            for r in releases {
                let Some(held) = owned.get(r.claim.id.as_str()) else {
                    out.push(None);
                    continue;
                };
                let mut record = stored
                    .remove(r.claim.id.as_str())
                    .unwrap_or_else(|| held.record.clone());
                // Written before a crash that left the row behind: as it is.
                if record.status() == MessageStatus::Scheduled {
                    record.apply(r.change.clone());
                    record.provider = r.provider.clone();
                    record.provider_id = r.provider_id.clone();
                    notes.extend(notify(&record));
                    let campaign = record.campaign.as_ref().map_or("", |c| c.as_str());
                    for (counter, n) in release_counters(&record) {
                        *counters
                            .entry((record.tenant.as_str().into(), campaign.into(), counter))
                            .or_default() += n;
                    }
                    changed.push(record.clone());
                }
                out.push(Some(record));
            }
            upsert_records(&tx, &changed.iter().collect::<Vec<_>>()).await?;
            // In key order: no lock cycles with other writers of counters.
            let count = tx.prepare_cached(super::messages::COUNT).await?;
            for ((tenant, campaign, counter), n) in &counters {
                tx.execute(&count, &[tenant, campaign, counter, n]).await?;
            }
            let notes: Vec<&Notification> = notes.iter().collect();
            super::outbox::insert(&tx, &notes, crate::domain::now_millis()).await?;
            tx.commit().await?;
            Ok(out)
        })
        .await
    }

    async fn cancel_held(
        &self,
        tenant: &TenantId,
        id: &MessageId,
        at: UnixMillis,
        notify: Notify<'_>,
    ) -> Result<Cancel> {
        let pool = self.pool();
        retrying(|| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            let stmt = tx
                .prepare_cached("SELECT message, begun FROM held WHERE id = $1 FOR UPDATE")
                .await?;
            let held = tx.query_opt(&stmt, &[&id.as_str()]).await?;
            let stmt = tx
                .prepare_cached("SELECT record FROM messages WHERE id = $1 FOR UPDATE")
                .await?;
            let stored = match tx.query_opt(&stmt, &[&id.as_str()]).await? {
                Some(row) => Some(decode_record(row.try_get(0)?)?),
                None => None,
            };
            let Some(row) = held else {
                return Ok(match stored {
                    Some(r) if &r.tenant == tenant => Cancel::NotScheduled(r),
                    _ => Cancel::NotFound,
                });
            };
            let held = decode(row.try_get(0)?)?;
            let begun: bool = row.try_get(1)?;
            if held.tenant() != tenant {
                return Ok(Cancel::NotFound);
            }
            let mut record = stored.unwrap_or_else(|| held.record.clone());
            if begun || record.status() != MessageStatus::Scheduled {
                return Ok(Cancel::NotScheduled(record));
            }
            record.apply(StatusChange {
                status: MessageStatus::Canceled,
                at,
                error: None,
            });
            let stmt = tx.prepare_cached("DELETE FROM held WHERE id = $1").await?;
            tx.execute(&stmt, &[&id.as_str()]).await?;
            upsert_records(&tx, &[&record]).await?;
            let notes = notify(&record);
            let notes: Vec<&Notification> = notes.iter().collect();
            super::outbox::insert(&tx, &notes, crate::domain::now_millis()).await?;
            tx.commit().await?;
            Ok(Cancel::Canceled {
                record,
                held: Box::new(held),
            })
        })
        .await
    }

    async fn held_stats(&self) -> Result<HeldStats> {
        let pool = self.pool();
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached("SELECT count(*), min(due) FROM held")
                .await?;
            let r = client.query_one(&stmt, &[]).await?;
            let n: i64 = r.try_get(0)?;
            Ok(HeldStats {
                held: u64::try_from(n).map_err(|e| corrupt("a held count", e))?,
                next_due: r.try_get(1)?,
            })
        })
        .await
    }
}
