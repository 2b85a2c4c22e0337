//! Frequency-cap ledgers in PostgreSQL: `frequency`, one row per tenant and
//! recipient with its ledger as JSON. A reservation is one transaction:
//! the rows made to exist (`INSERT ... ON CONFLICT DO NOTHING`, so two
//! first reservations of a number serialize on its key), then locked in
//! number order (`FOR UPDATE`: no lock cycles between requests), changed
//! and written back. So two nodes racing for a recipient's last slot
//! queue on its row, and the second sees the first's entry.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{corrupt, retrying, to_i64, PgResult, PgStore};
use crate::domain::frequency::SendLedger;
use crate::domain::{FrequencyCap, TenantId, UnixMillis};
use crate::store::{CapEntry, FrequencyStore, Result};

fn encode(l: &SendLedger) -> String {
    serde_json::to_string(l).expect("a ledger serializes")
}

fn decode(s: &str) -> PgResult<SendLedger> {
    serde_json::from_str(s).map_err(|e| corrupt("a frequency ledger", e))
}

/// Locks the ledgers of `numbers` (sorted, distinct) of `tenant`, lets `f`
/// change them, and writes them back, in one transaction.
async fn with_ledgers<T>(
    store: &PgStore,
    tenant: &TenantId,
    numbers: &[&str],
    create: bool,
    f: &(dyn Fn(&mut BTreeMap<String, SendLedger>) -> T + Sync),
) -> Result<T>
where
    T: Send,
{
    let pool = store.pool();
    retrying(|| async move {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        if create {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO frequency (tenant, number, newest, ledger)
                     SELECT $1, n, 0, '{\"entries\":[]}' FROM unnest($2::text[]) AS n
                     ON CONFLICT (tenant, number) DO NOTHING",
                )
                .await?;
            tx.execute(&stmt, &[&tenant.as_str(), &numbers]).await?;
        }
        let stmt = tx
            .prepare_cached(
                "SELECT number, ledger FROM frequency
                 WHERE tenant = $1 AND number = ANY($2)
                 ORDER BY number FOR UPDATE",
            )
            .await?;
        let mut ledgers = BTreeMap::new();
        for row in tx.query(&stmt, &[&tenant.as_str(), &numbers]).await? {
            ledgers.insert(row.try_get::<_, String>(0)?, decode(row.try_get(1)?)?);
        }
        let out = f(&mut ledgers);
        let mut cols: (Vec<&str>, Vec<String>, Vec<i64>) = Default::default();
        for (number, l) in &ledgers {
            cols.0.push(number);
            cols.1.push(encode(l));
            cols.2.push(l.newest().unwrap_or(0));
        }
        let stmt = tx
            .prepare_cached(
                "UPDATE frequency SET ledger = x.ledger, newest = x.newest
                 FROM unnest($2::text[], $3::text[], $4::bigint[]) AS x(number, ledger, newest)
                 WHERE frequency.tenant = $1 AND frequency.number = x.number",
            )
            .await?;
        tx.execute(&stmt, &[&tenant.as_str(), &cols.0, &cols.1, &cols.2])
            .await?;
        tx.commit().await?;
        Ok(out)
    })
    .await
}

#[async_trait]
impl FrequencyStore for PgStore {
    async fn cap_reserve(
        &self,
        tenant: &TenantId,
        cap: FrequencyCap,
        now: UnixMillis,
        entries: &[CapEntry],
    ) -> Result<Vec<bool>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut numbers: Vec<&str> = entries.iter().map(|e| e.number.as_str()).collect();
        numbers.sort_unstable();
        numbers.dedup();
        with_ledgers(self, tenant, &numbers, true, &|ledgers| {
            entries
                .iter()
                .map(|e| {
                    ledgers
                        .get_mut(&e.number)
                        .is_some_and(|l| l.reserve(e.key, e.at, cap, now))
                })
                .collect()
        })
        .await
    }

    async fn cap_forget(&self, tenant: &TenantId, entries: &[(String, u64)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut numbers: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        numbers.sort_unstable();
        numbers.dedup();
        with_ledgers(self, tenant, &numbers, false, &|ledgers| {
            for (number, key) in entries {
                if let Some(l) = ledgers.get_mut(number) {
                    l.forget(*key);
                }
            }
        })
        .await
    }

    async fn cap_purge(&self, before: UnixMillis, step: usize) -> Result<usize> {
        let pool = self.pool();
        let step = to_i64(step as u64);
        retrying(|| async move {
            let client = pool.get().await?;
            // `newest` is checked again on the row as locked: a ledger
            // written since the pick is kept.
            let stmt = client
                .prepare_cached(
                    "DELETE FROM frequency
                     WHERE newest < $1 AND (tenant, number) IN (
                        SELECT tenant, number FROM frequency WHERE newest < $1 LIMIT $2)",
                )
                .await?;
            Ok(client.execute(&stmt, &[&before, &step]).await? as usize)
        })
        .await
    }
}
