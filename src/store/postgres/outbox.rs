//! The outbox in PostgreSQL: `outbox`, one row per notification, with its
//! schedule (`due`, `attempts`), its lease (`lease_until`: which node has it
//! out) and `failed` for the ones given up on. Ids come from the sequence
//! `outbox_ids`, so they increase in the order items were written.
//!
//! A claim leases due items with one `UPDATE ... RETURNING`, each row's
//! lease re-checked under its lock, so two nodes claiming at once never
//! hand out one item twice. `FOR UPDATE SKIP LOCKED` lets them claim
//! different items without waiting for each other (PostgreSQL, YugabyteDB,
//! CockroachDB 23.1+: for speed only; without it they would wait, not err).
//! The dispatcher's claim (`claim_admitted`) reads the candidates under the
//! same locks and leases only those it admits, in one transaction.
//!
//! Notifications enqueued on their own (a HELP's answer; a STOP's
//! confirmation is written in its events' transaction instead) go through
//! a batching writer: concurrent enqueues share one transaction, in the
//! order they were queued. Deliveries done go through another: concurrent
//! completions are one delete.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use super::batch::BatchWork;
use super::{corrupt, retrying, PgResult, PgStore};
use crate::domain::{now_millis, Notification, TenantId, UnixMillis};
use crate::store::{OutboxItem, OutboxStats, OutboxStore, Result};

const INSERT: &str = "
INSERT INTO outbox (id, order_key, tenant, notification, created, due)
SELECT nextval('outbox_ids'), k, t, n, $4, $4
FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS x(k, t, n, i)
ORDER BY i";

const COLUMNS: &str = "id, notification, created, due, attempts, lease_until, last_error";

/// The items a claim may take from `outbox o` at `$1`, at most `$2`: due,
/// not leased, each the oldest of its order key, locked (`SKIP LOCKED`:
/// another node's claim takes others).
const CANDIDATES: &str = "
WHERE NOT o.failed AND o.due <= $1 AND o.lease_until <= $1
  AND NOT EXISTS (
    SELECT 1 FROM outbox p
    WHERE p.order_key = o.order_key AND NOT p.failed AND p.id < o.id)
ORDER BY o.id
LIMIT $2
FOR UPDATE SKIP LOCKED";

/// Writes notifications in `tx`, the transaction of the change they report.
pub(crate) async fn insert(
    tx: &Transaction<'_>,
    notes: &[&Notification],
    now: UnixMillis,
) -> PgResult<()> {
    if notes.is_empty() {
        return Ok(());
    }
    let mut keys: Vec<Option<String>> = Vec::with_capacity(notes.len());
    let mut tenants: Vec<Option<String>> = Vec::with_capacity(notes.len());
    let mut bodies: Vec<String> = Vec::with_capacity(notes.len());
    for n in notes {
        keys.push(n.order_key());
        tenants.push(n.tenant().map(|t| t.as_str().to_string()));
        bodies.push(serde_json::to_string(n).expect("a notification serializes"));
    }
    let stmt = tx.prepare_cached(INSERT).await?;
    tx.execute(&stmt, &[&keys, &tenants, &bodies, &now]).await?;
    Ok(())
}

/// The batching writer of enqueued notifications: every queued call's
/// notifications in one insert, in queue order.
pub(crate) struct EnqueueWork {
    pub pool: deadpool_postgres::Pool,
}

#[async_trait]
impl BatchWork for EnqueueWork {
    type Req = Vec<Notification>;
    type Ans = ();
    const NAME: &'static str = "outbox";

    fn weight(req: &Self::Req) -> usize {
        req.len()
    }

    async fn run(&self, reqs: &[&Self::Req]) -> PgResult<Vec<Self::Ans>> {
        let notes: Vec<&Notification> = reqs.iter().flat_map(|r| r.iter()).collect();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        insert(&tx, &notes, now_millis()).await?;
        tx.commit().await?;
        Ok(vec![(); reqs.len()])
    }
}

/// The batching writer of completions: the delivered items of every queued
/// call leave the outbox in one delete.
pub(crate) struct CompleteWork {
    pub pool: deadpool_postgres::Pool,
}

#[async_trait]
impl BatchWork for CompleteWork {
    type Req = u64;
    type Ans = ();
    const NAME: &'static str = "completions";

    fn weight(_: &Self::Req) -> usize {
        1
    }

    async fn run(&self, reqs: &[&Self::Req]) -> PgResult<Vec<Self::Ans>> {
        // Sorted: rows are locked in id order, as a claim locks them.
        let mut ids: Vec<i64> = reqs.iter().map(|&&id| db_id(id)).collect();
        ids.sort_unstable();
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("DELETE FROM outbox WHERE id = ANY($1::bigint[])")
            .await?;
        client.execute(&stmt, &[&ids]).await?;
        Ok(vec![(); reqs.len()])
    }
}

fn item(r: &Row) -> PgResult<OutboxItem> {
    let id: i64 = r.try_get(0)?;
    let body: &str = r.try_get(1)?;
    let attempts: i32 = r.try_get(4)?;
    Ok(OutboxItem {
        id: u64::try_from(id).map_err(|e| corrupt("an outbox id", e))?,
        notification: serde_json::from_str(body).map_err(|e| corrupt("a notification", e))?,
        created: r.try_get(2)?,
        due: r.try_get(3)?,
        attempts: u32::try_from(attempts).map_err(|e| corrupt("outbox attempts", e))?,
        lease_until: r.try_get(5)?,
        last_error: r.try_get(6)?,
    })
}

fn db_id(id: u64) -> i64 {
    super::to_i64(id)
}

#[async_trait]
impl OutboxStore for PgStore {
    async fn enqueue(&self, notifications: &[Notification]) -> Result<()> {
        if notifications.is_empty() {
            return Ok(());
        }
        self.enqueues.submit(notifications.to_vec()).await
    }

    async fn claim(&self, now: UnixMillis, limit: usize, lease_ms: i64) -> Result<Vec<OutboxItem>> {
        let pool = self.pool();
        let limit = super::to_i64(limit as u64);
        let sql = format!(
            "WITH candidates AS (SELECT o.id FROM outbox o {CANDIDATES})
            UPDATE outbox SET lease_until = $1 + $3
            FROM candidates
            WHERE outbox.id = candidates.id AND outbox.lease_until <= $1
            RETURNING {}",
            COLUMNS
                .split(", ")
                .map(|c| format!("outbox.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let sql = &sql;
        let mut items = retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client.prepare_cached(sql).await?;
            let rows = client.query(&stmt, &[&now, &limit, &lease_ms]).await?;
            rows.iter().map(item).collect::<PgResult<Vec<_>>>()
        })
        .await?;
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    /// One transaction: the candidates read under their row locks, then
    /// only the admitted leased. Those not admitted were never leased, so
    /// nothing is handed back (a release each, one commit each, which a
    /// STOP storm's claims paid for: their endpoint was at its bound).
    async fn claim_admitted(
        &self,
        now: UnixMillis,
        limit: usize,
        lease_ms: i64,
        admit: &(dyn for<'n> Fn(&'n Notification) -> bool + Send + Sync),
    ) -> Result<Vec<OutboxItem>> {
        let pool = self.pool();
        let limit = super::to_i64(limit as u64);
        let read = format!("SELECT {COLUMNS} FROM outbox o {CANDIDATES}");
        let read = &read;
        retrying(|| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            let stmt = tx.prepare_cached(read).await?;
            let mut items = Vec::new();
            for row in tx.query(&stmt, &[&now, &limit]).await? {
                let mut item = item(&row)?;
                if admit(&item.notification) {
                    item.lease_until = now + lease_ms;
                    items.push(item);
                }
            }
            if !items.is_empty() {
                let ids: Vec<i64> = items.iter().map(|i| db_id(i.id)).collect();
                let lease = tx
                    .prepare_cached(
                        "UPDATE outbox SET lease_until = $2 WHERE id = ANY($1::bigint[])",
                    )
                    .await?;
                tx.execute(&lease, &[&ids, &(now + lease_ms)]).await?;
            }
            tx.commit().await?;
            Ok(items)
        })
        .await
    }

    async fn complete(&self, id: u64) -> Result<()> {
        self.completions.submit(id).await
    }

    async fn retry(&self, id: u64, due: UnixMillis, error: &str) -> Result<()> {
        self.outbox_execute(
            "UPDATE outbox SET attempts = attempts + 1, due = $2, lease_until = 0, last_error = $3
             WHERE id = $1",
            &[&db_id(id), &due, &clip(error)],
        )
        .await
    }

    async fn release(&self, id: u64) -> Result<()> {
        self.outbox_execute(
            "UPDATE outbox SET lease_until = 0 WHERE id = $1",
            &[&db_id(id)],
        )
        .await
    }

    async fn give_up(&self, id: u64, error: &str) -> Result<()> {
        self.outbox_execute(
            "UPDATE outbox SET failed = true, attempts = attempts + 1, lease_until = 0,
                 last_error = $2
             WHERE id = $1",
            &[&db_id(id), &clip(error)],
        )
        .await
    }

    async fn failed_items(
        &self,
        tenant: &TenantId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<OutboxItem>> {
        let pool = self.pool();
        let after = after.map_or(-1, db_id);
        let limit = super::to_i64(limit as u64);
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox WHERE failed AND tenant = $1 AND id > $2
             ORDER BY id LIMIT $3"
        );
        let sql = &sql;
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client.prepare_cached(sql).await?;
            let rows = client
                .query(&stmt, &[&tenant.as_str(), &after, &limit])
                .await?;
            rows.iter().map(item).collect()
        })
        .await
    }

    async fn outbox_stats(&self) -> Result<OutboxStats> {
        let pool = self.pool();
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT count(*) FILTER (WHERE NOT failed),
                            count(*) FILTER (WHERE NOT failed AND attempts > 0),
                            count(*) FILTER (WHERE failed),
                            min(created) FILTER (WHERE NOT failed)
                     FROM outbox",
                )
                .await?;
            let r = client.query_one(&stmt, &[]).await?;
            let n = |i: usize| -> PgResult<u64> {
                let v: i64 = r.try_get(i)?;
                u64::try_from(v).map_err(|e| corrupt("an outbox count", e))
            };
            Ok(OutboxStats {
                queued: n(0)?,
                retrying: n(1)?,
                failed: n(2)?,
                oldest: r.try_get(3)?,
            })
        })
        .await
    }
}

fn clip(error: &str) -> String {
    error.chars().take(300).collect()
}

impl PgStore {
    /// One statement on one item.
    async fn outbox_execute(
        &self,
        sql: &'static str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<()> {
        let pool = self.pool();
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client.prepare_cached(sql).await?;
            client.execute(&stmt, params).await?;
            Ok(())
        })
        .await
    }
}
