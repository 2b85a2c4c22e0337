//! Bulk imports into PostgreSQL: rounds of numbers, sorted and deduplicated
//! in memory, `COPY`ed into a session-local staging table, then moved into
//! `suppressions` by one `INSERT ... SELECT ... ON CONFLICT DO NOTHING`.
//!
//! Same contract as sled's bulk chunks: an imported number gets a row with
//! source `import`, `imported_at` and no event (its history shows one
//! synthesized `import` event); a number that already has a row is never
//! written: if that row says "subscribed", it is handed back in
//! [`BulkCounts::individual`] so the caller records it as an event.
//!
//! Each round is its own transaction: a 10M-number import never holds row
//! locks for more than a round's seconds while opt-outs keep coming in.
//! Rounds go in number order, the order every writer locks rows in.

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use futures::SinkExt;

use super::suppressions::parse_number;
use super::{Failure, PgResult};
use crate::domain::{now_millis, PhoneNumber, TenantId, UnixMillis};
use crate::store::sled::bulk::{pack, unpack};
use crate::store::{BulkCounts, BulkImport, Result, StoreError};

/// The staging table lives as long as the session; `ON COMMIT DELETE ROWS`
/// empties it after every round (and a rolled-back round leaves nothing).
const STAGING: &str = "CREATE TEMP TABLE IF NOT EXISTS stopgate_import
    (k bigint NOT NULL, number text NOT NULL) ON COMMIT DELETE ROWS";

/// Rows per COPY message.
const COPY_CHUNK: usize = 65_536;

/// Attempts of a round the database aborted (deadlock, serialization).
const ROUND_ATTEMPTS: u32 = 5;

pub(crate) struct PgImport {
    /// One session for the whole import (the staging table is per session).
    client: Option<deadpool_postgres::Object>,
    tenant: TenantId,
    at: UnixMillis,
    round: usize,
    /// Packed numbers (`sled::bulk::pack`): 8 bytes each, and their integer
    /// order is the numbers' order.
    queued: Vec<u64>,
    counts: BulkCounts,
}

impl PgImport {
    pub async fn begin(
        pool: &deadpool_postgres::Pool,
        tenant: TenantId,
        round: usize,
    ) -> Result<PgImport> {
        let client = pool.get().await.map_err(Failure::from)?;
        client.batch_execute(STAGING).await.map_err(Failure::from)?;
        Ok(PgImport {
            client: Some(client),
            tenant,
            at: now_millis(),
            round,
            queued: Vec::new(),
            counts: BulkCounts::default(),
        })
    }

    /// Writes the queued numbers as one round.
    async fn flush(&mut self) -> Result<()> {
        if self.queued.is_empty() {
            return Ok(());
        }
        self.queued.sort_unstable();
        let queued = self.queued.len() as u64;
        self.queued.dedup();
        let mut attempt = 1;
        let (inserted, individual) = loop {
            match self.round_once().await {
                Ok(v) => break v,
                Err(f) if f.retryable() && attempt < ROUND_ATTEMPTS => attempt += 1,
                Err(f) => return Err(f.into()),
            }
        };
        let late = individual.len() as u64;
        self.counts.imported += inserted;
        self.counts.unchanged += queued - inserted - late;
        self.counts.individual.extend(individual);
        metrics::counter!("stopgate_suppression_changes_total", "action" => "opt_out", "source" => "import")
            .increment(inserted);
        self.queued.clear();
        Ok(())
    }

    /// One round's transaction: how many numbers were inserted, and those
    /// that have a row of their own saying "subscribed".
    async fn round_once(&mut self) -> PgResult<(u64, Vec<PhoneNumber>)> {
        let client = self
            .client
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("the import has ended".into()))?;
        let tx = client.transaction().await?;
        // A round of a million rows takes longer than an API statement may.
        tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
        let sink = tx
            .copy_in::<_, Bytes>("COPY stopgate_import (k, number) FROM STDIN")
            .await?;
        futures::pin_mut!(sink);
        let mut buf = BytesMut::with_capacity(COPY_CHUNK * 24);
        for chunk in self.queued.chunks(COPY_CHUNK) {
            for &k in chunk {
                // Numbers are `+` and digits: nothing to escape.
                buf.put_slice(k.to_string().as_bytes());
                buf.put_u8(b'\t');
                buf.put_slice(unpack(k).as_bytes());
                buf.put_u8(b'\n');
            }
            sink.send(buf.split().freeze()).await?;
        }
        sink.as_mut().finish().await?;
        let tenant = self.tenant.as_str();
        // In number order, so the primary key's pages fill one after another.
        let inserted = tx
            .execute(
                "INSERT INTO suppressions (tenant, number, suppressed, updated, source, imported_at)
                 SELECT $1, number, true, $2, 'import', $2 FROM stopgate_import ORDER BY k
                 ON CONFLICT (tenant, number) DO NOTHING",
                &[&tenant, &self.at],
            )
            .await?;
        let rows = tx
            .query(
                "SELECT i.number FROM stopgate_import i
                 JOIN suppressions s ON s.tenant = $1 AND s.number = i.number
                 WHERE NOT s.suppressed",
                &[&tenant],
            )
            .await?;
        let individual = rows
            .iter()
            .map(|r| parse_number(r.try_get(0)?))
            .collect::<PgResult<Vec<_>>>()?;
        tx.commit().await?;
        Ok((inserted, individual))
    }
}

#[async_trait]
impl BulkImport for PgImport {
    async fn add(&mut self, numbers: Vec<PhoneNumber>) -> Result<()> {
        for n in &numbers {
            // Every PhoneNumber is E.164, so it packs.
            self.queued.push(pack(n.as_str()).expect("E.164 packs"));
        }
        if self.queued.len() >= self.round {
            self.flush().await?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<BulkCounts> {
        self.flush().await?;
        if let Some(client) = self.client.take() {
            // The session goes back to the pool without its staging table.
            client
                .batch_execute("DROP TABLE IF EXISTS stopgate_import")
                .await
                .map_err(Failure::from)?;
        }
        Ok(std::mem::take(&mut self.counts))
    }
}

impl Drop for PgImport {
    /// An import given up midway may leave its session in any state (a
    /// COPY cut short): the connection is closed rather than reused.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}
