//! Bulk imports into PostgreSQL: rounds of numbers, sorted and deduplicated
//! in memory (8 bytes each), written with `COPY`.
//!
//! Same contract as sled's bulk chunks: an imported number gets a row with
//! source `import`, `imported_at` and no event (its history shows one
//! synthesized `import` event); a number that already has a row is never
//! written: if that row says "subscribed", it is handed back in
//! [`BulkCounts::individual`] so the caller records it as an event.
//!
//! A round first tries the fast way: `COPY` straight into `suppressions`
//! (batched heap writes: 10M numbers in 19 s of database time here, where
//! `INSERT ... ON CONFLICT` takes 68 s). If any of its numbers has a row,
//! the primary key makes that COPY fail whole, and the round goes the
//! careful way: `COPY` into a session-local staging table, then one
//! `INSERT ... SELECT ... ON CONFLICT DO NOTHING`, then the re-subscribed
//! numbers read back.
//!
//! Each round is its own transaction: an import never holds row locks for
//! more than a round's seconds while opt-outs keep coming in. One round is
//! written in the background while the caller parses the next rows (two at
//! once contend on the same index pages and are slower). Rows go in number
//! order, the order every writer locks rows in, so an import and the
//! batching writer never deadlock.

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use futures::SinkExt;
use tokio::task::JoinSet;
use tokio_postgres::error::SqlState;

use super::suppressions::parse_number;
use super::{Failure, PgResult};
use crate::domain::{now_millis, PhoneNumber, TenantId, UnixMillis};
use crate::store::sled::bulk::{pack, unpack};
use crate::store::{BulkCounts, BulkImport, Result, StoreError};

/// The staging table lives as long as the session; `ON COMMIT DELETE ROWS`
/// empties it after every round (and a rolled-back round leaves nothing).
const STAGING: &str = "CREATE TEMP TABLE IF NOT EXISTS stopgate_import
    (number text NOT NULL) ON COMMIT DELETE ROWS";

/// Rows per COPY message.
const COPY_CHUNK: usize = 65_536;

/// Attempts of a round the database aborted (deadlock, serialization).
const ROUND_ATTEMPTS: u32 = 5;

/// Rounds in flight at once, each on its own session.
const PARALLEL_ROUNDS: usize = 1;

/// What one round did.
struct RoundCounts {
    queued: u64,
    inserted: u64,
    individual: Vec<PhoneNumber>,
}

pub(crate) struct PgImport {
    pool: deadpool_postgres::Pool,
    tenant: TenantId,
    at: UnixMillis,
    round: usize,
    /// Packed numbers (`sled::bulk::pack`): 8 bytes each, and their integer
    /// order is the numbers' order.
    queued: Vec<u64>,
    /// Dropping the import aborts them; each then closes its session.
    running: JoinSet<Result<RoundCounts>>,
    counts: BulkCounts,
}

impl PgImport {
    pub async fn begin(
        pool: &deadpool_postgres::Pool,
        tenant: TenantId,
        round: usize,
    ) -> Result<PgImport> {
        Ok(PgImport {
            pool: pool.clone(),
            tenant,
            at: now_millis(),
            round,
            queued: Vec::new(),
            running: JoinSet::new(),
            counts: BulkCounts::default(),
        })
    }

    /// Starts a round of the queued numbers, once fewer than
    /// [`PARALLEL_ROUNDS`] run.
    async fn launch(&mut self) -> Result<()> {
        if self.queued.is_empty() {
            return Ok(());
        }
        while self.running.len() >= PARALLEL_ROUNDS {
            self.collect_one().await?;
        }
        let numbers = std::mem::take(&mut self.queued);
        let (pool, tenant, at) = (self.pool.clone(), self.tenant.clone(), self.at);
        self.running
            .spawn(async move { round(pool, tenant, at, numbers).await });
        Ok(())
    }

    /// Waits for one running round and adds up what it did.
    async fn collect_one(&mut self) -> Result<()> {
        let Some(done) = self.running.join_next().await else {
            return Ok(());
        };
        let r = done.map_err(|e| StoreError::Unavailable(format!("import round: {e}")))??;
        let late = r.individual.len() as u64;
        self.counts.imported += r.inserted;
        self.counts.unchanged += r.queued - r.inserted - late;
        self.counts.individual.extend(r.individual);
        metrics::counter!("stopgate_suppression_changes_total", "action" => "opt_out", "source" => "import")
            .increment(r.inserted);
        Ok(())
    }
}

/// A session that is closed, not put back in the pool, unless the work on
/// it finished: a round cut short (an error, an aborted import) may leave
/// it in the middle of a COPY.
struct Session(Option<deadpool_postgres::Object>);

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// One round: sorted and deduplicated, then written (retried whole when
/// the database aborts it).
async fn round(
    pool: deadpool_postgres::Pool,
    tenant: TenantId,
    at: UnixMillis,
    mut numbers: Vec<u64>,
) -> Result<RoundCounts> {
    let queued = numbers.len() as u64;
    numbers.sort_unstable();
    numbers.dedup();
    let mut session = Session(Some(pool.get().await.map_err(Failure::from)?));
    let client = session.0.as_mut().expect("just set");
    let mut attempt = 1;
    let mut direct = true;
    let (inserted, individual) = loop {
        let outcome = if direct {
            copy_direct(client, &tenant, at, &numbers)
                .await
                .map(|n| (n, Vec::new()))
        } else {
            round_once(client, &tenant, at, &numbers).await
        };
        match outcome {
            Ok(v) => break v,
            // Some number of the round has a row already (or got one
            // meanwhile): the round goes the careful way.
            Err(Failure::Db(e)) if direct && e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                direct = false;
            }
            Err(f) if f.retryable() && attempt < ROUND_ATTEMPTS => attempt += 1,
            Err(f) => return Err(f.into()),
        }
    };
    // Done cleanly: the session may serve others.
    drop(session.0.take());
    Ok(RoundCounts {
        queued,
        inserted,
        individual,
    })
}

/// The fast way, for numbers that have no row yet (a first import): COPY
/// straight into `suppressions`, which writes heap pages in batches
/// (a quarter of the cost of inserting row by row). Any number that has a
/// row makes the whole COPY fail on the primary key, and nothing is written.
async fn copy_direct(
    client: &mut deadpool_postgres::Object,
    tenant: &TenantId,
    at: UnixMillis,
    numbers: &[u64],
) -> PgResult<u64> {
    let tx = client.transaction().await?;
    tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
    let sink = tx
        .copy_in::<_, Bytes>(
            "COPY suppressions (tenant, number, suppressed, updated, source, imported_at) FROM STDIN",
        )
        .await?;
    futures::pin_mut!(sink);
    // Everything but the number is the same on every row.
    let prefix = format!("{}\t", tenant.as_str());
    let suffix = format!("\tt\t{at}\timport\t{at}\n");
    let mut buf = BytesMut::with_capacity(COPY_CHUNK * (prefix.len() + suffix.len() + 16));
    for chunk in numbers.chunks(COPY_CHUNK) {
        for &k in chunk {
            buf.put_slice(prefix.as_bytes());
            buf.put_slice(unpack(k).as_bytes());
            buf.put_slice(suffix.as_bytes());
        }
        sink.send(buf.split().freeze()).await?;
    }
    let inserted = sink.as_mut().finish().await?;
    tx.commit().await?;
    Ok(inserted)
}

/// The careful way, when some numbers have a row: COPY into the staging
/// table, then insert those without one. Returns how many numbers were
/// inserted, and those that have a row of their own saying "subscribed".
async fn round_once(
    client: &mut deadpool_postgres::Object,
    tenant: &TenantId,
    at: UnixMillis,
    numbers: &[u64],
) -> PgResult<(u64, Vec<PhoneNumber>)> {
    let tx = client.transaction().await?;
    // A round of a million rows takes longer than an API statement may;
    // the staging table's notice when it exists already is noise.
    tx.batch_execute("SET LOCAL statement_timeout = 0; SET LOCAL client_min_messages = warning")
        .await?;
    tx.batch_execute(STAGING).await?;
    let sink = tx
        .copy_in::<_, Bytes>("COPY stopgate_import (number) FROM STDIN")
        .await?;
    futures::pin_mut!(sink);
    let mut buf = BytesMut::with_capacity(COPY_CHUNK * 17);
    for chunk in numbers.chunks(COPY_CHUNK) {
        for &k in chunk {
            // Numbers are `+` and digits: nothing to escape.
            buf.put_slice(unpack(k).as_bytes());
            buf.put_u8(b'\n');
        }
        sink.send(buf.split().freeze()).await?;
    }
    sink.as_mut().finish().await?;
    let tenant = tenant.as_str();
    // Copied in number order into a fresh session-local table, which a scan
    // reads back in that order (no synchronized scans on local tables):
    // the primary key's pages fill one after another, without a sort.
    let inserted = tx
        .execute(
            "INSERT INTO suppressions (tenant, number, suppressed, updated, source, imported_at)
             SELECT $1, number, true, $2, 'import', $2 FROM stopgate_import
             ON CONFLICT (tenant, number) DO NOTHING",
            &[&tenant, &at],
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

#[async_trait]
impl BulkImport for PgImport {
    async fn add(&mut self, numbers: Vec<PhoneNumber>) -> Result<()> {
        for n in &numbers {
            // Every PhoneNumber is E.164, so it packs.
            self.queued.push(pack(n.as_str()).expect("E.164 packs"));
        }
        if self.queued.len() >= self.round {
            self.launch().await?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<BulkCounts> {
        self.launch().await?;
        while !self.running.is_empty() {
            self.collect_one().await?;
        }
        Ok(std::mem::take(&mut self.counts))
    }
}
