//! The shared backend: one PostgreSQL database, any number of nodes.
//!
//! Tables (schema in `migrations/`, applied by [`migrate`]):
//!
//! | table            | key                          | file |
//! |------------------|------------------------------|------|
//! | suppressions     | tenant, number               | `suppressions.rs`, `bulk.rs` |
//! | events           | tenant, number, seq          | `suppressions.rs` |
//! | links            | code; unique tenant, number, campaign | `links.rs` |
//! | sends            | number, shortcode, tenant    | `attribution.rs` |
//! | possible_optouts | id (sequence `possible_optout_ids`) | `review.rs` |
//! | requests         | tenant, reference            | `idempotency.rs` |
//! | insights         | tenant, campaign, counter    | `insights.rs` |
//! | messages         | id; index tenant, id         | `messages.rs` |
//! | message_providers| provider, provider_id        | `messages.rs` |
//! | outbox           | id (sequence `outbox_ids`)   | `outbox.rs` |
//! | held             | id; index due, id            | `held.rs` |
//! | frequency        | tenant, number               | `frequency.rs` |
//! | consents         | tenant, number, list; unique request_code | `consent.rs` |
//! | consent_events   | id (sequence `consent_event_ids`) | `consent.rs` |
//! | erased           | tenant, hash                 | `subjects.rs`, `suppressions.rs` |
//! | erasures         | tenant, hash, id (sequence `erasure_ids`) | `subjects.rs` |
//! | store_secrets    | name                         | `subjects.rs` |
//! | heartbeat        | node                         | here (`ready`) |
//! | schema_migrations| version                      | `migrate.rs` |
//!
//! Durability: every write is committed before the call that made it
//! returns, and the server is required to run with `synchronous_commit` on
//! (checked at startup), so [`Store::durable`] has nothing left to do.
//! Concurrent writers still share commits: opt-outs and link mints go
//! through a batching writer ([`batch`]), one transaction per batch.
//!
//! Only SQL that PostgreSQL, CockroachDB and YugabyteDB share: no advisory
//! locks, no LISTEN/NOTIFY, no PL/pgSQL. Correctness rests on primary keys,
//! row locks (`ON CONFLICT ... DO UPDATE ... WHERE`, `UPDATE ... WHERE`) and
//! transactions; serialization failures and deadlocks are retried.

mod attribution;
mod batch;
mod bulk;
mod consent;
mod frequency;
mod held;
mod idempotency;
mod insights;
mod links;
mod messages;
pub mod migrate;
mod outbox;
mod review;
mod subjects;
mod suppressions;

use std::future::Future;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use super::messages::SharedNotify;
use super::subjects::SubjectKey;
use super::{Once, Replay, ReportAnswer, Reported, Result, StatusChange, Store, StoreError};
use crate::config::{describe_pg, StorageConfig};
use crate::domain::{now_millis, Event, Notification};

pub use batch::WriterStats;

/// Attempts of a transaction that the database aborted as a serialization
/// failure or a deadlock: the work is rolled back, so it is safe to redo.
const ATTEMPTS: u32 = 5;

/// Numbers per bulk-import round (see `bulk.rs`): sorted and deduplicated in
/// memory (8 bytes each), then written in one transaction of a few seconds,
/// so an import never holds row locks for long while opt-outs keep coming in.
const IMPORT_ROUND: usize = 1_000_000;

pub struct PgStore {
    pool: Pool,
    events: batch::Batcher<suppressions::RecordWork>,
    links: batch::Batcher<links::MintWork>,
    messages: batch::Batcher<messages::PutWork>,
    reports: batch::Batcher<messages::ReportWork>,
    begins: batch::Batcher<idempotency::BeginWork>,
    finishes: batch::Batcher<idempotency::FinishWork>,
    enqueues: batch::Batcher<outbox::EnqueueWork>,
    completions: batch::Batcher<outbox::CompleteWork>,
    counters: batch::Batcher<insights::CountWork>,
    sends: batch::Batcher<attribution::SendsWork>,
    /// This process's row in `heartbeat`.
    node: String,
    /// Keys the hashes of erased opt-outs (`subjects.rs`).
    subject_key: SubjectKey,
    import_round: usize,
}

/// Why a database call failed, before it becomes a [`StoreError`]: the
/// database's own errors are kept so that a retry can look at their code.
#[derive(Debug)]
pub(crate) enum Failure {
    Db(tokio_postgres::Error),
    Pool(PoolError),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Db(e)
    }
}

impl From<PoolError> for Failure {
    fn from(e: PoolError) -> Self {
        Failure::Pool(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

pub(crate) type PgResult<T> = std::result::Result<T, Failure>;

impl Failure {
    fn retryable(&self) -> bool {
        matches!(self, Failure::Db(e) if e.code().is_some_and(|c| {
            *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
        }))
    }
}

impl From<Failure> for StoreError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Db(e) => db_error(&e),
            Failure::Pool(e) => pool_error(&e),
            Failure::Store(e) => e,
        }
    }
}

/// A database error by cause. Only the SQLSTATE and the server's primary
/// message are kept: its DETAIL may quote a row (a phone number).
fn db_error(e: &tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        return StoreError::Unavailable(format!(
            "database error {}: {}",
            db.code().code(),
            db.message()
        ));
    }
    let text = chain(e);
    // A row whose value does not decode into the type we read.
    if text.starts_with("error deserializing column") {
        return StoreError::Corrupt(text);
    }
    StoreError::Unavailable(text)
}

fn pool_error(e: &PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => db_error(e),
        PoolError::Timeout(_) => {
            StoreError::Unavailable("no database connection could be had in time".into())
        }
        other => StoreError::Unavailable(format!("database pool: {other}")),
    }
}

/// An error and its causes, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Runs `work` again while the database aborts it as a serialization
/// failure or deadlock (bounded, with a short jittered pause).
pub(crate) async fn retrying<T, F, Fut>(mut work: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = PgResult<T>>,
{
    let mut attempt = 1;
    loop {
        match work().await {
            Ok(v) => return Ok(v),
            Err(f) if f.retryable() && attempt < ATTEMPTS => {
                attempt += 1;
                let jitter = rand::random::<u64>() % 10;
                tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt) + jitter)).await;
            }
            Err(f) => return Err(f.into()),
        }
    }
}

/// A stored value that does not make a domain value.
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::Store(StoreError::Corrupt(format!("{what}: {e}")))
}

/// u64 counts and ids are bigint in the database.
pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl PgStore {
    /// Connects (retrying with backoff for `connect_retry_secs`), checks the
    /// server's durability setting, applies the schema migrations this
    /// binary carries, and starts the batching writers.
    pub async fn open(cfg: &StorageConfig) -> Result<PgStore> {
        Self::open_with(cfg, IMPORT_ROUND).await
    }

    /// [`PgStore::open`] with the bulk-import round given, so that tests run
    /// several rounds with a few numbers.
    pub async fn open_with(cfg: &StorageConfig, import_round: usize) -> Result<PgStore> {
        let pool = connect(cfg).await?;
        check_synchronous_commit(&pool).await?;
        migrate::run(&pool).await?;
        let subject_key = SubjectKey::new(subjects::subject_key(&pool).await?);
        Ok(PgStore {
            events: batch::Batcher::start(suppressions::RecordWork {
                pool: pool.clone(),
                key: subject_key.clone(),
            }),
            subject_key,
            links: batch::Batcher::start(links::MintWork { pool: pool.clone() }),
            messages: batch::Batcher::start(messages::PutWork { pool: pool.clone() }),
            reports: batch::Batcher::start(messages::ReportWork { pool: pool.clone() }),
            begins: batch::Batcher::start(idempotency::BeginWork { pool: pool.clone() }),
            finishes: batch::Batcher::start(idempotency::FinishWork { pool: pool.clone() }),
            enqueues: batch::Batcher::start(outbox::EnqueueWork { pool: pool.clone() }),
            completions: batch::Batcher::start(outbox::CompleteWork { pool: pool.clone() }),
            counters: batch::Batcher::start(insights::CountWork { pool: pool.clone() }),
            sends: batch::Batcher::start(attribution::SendsWork { pool: pool.clone() }),
            node: node_id(),
            import_round: import_round.max(1),
            pool,
        })
    }

    /// Connects and applies the migrations the database lacks (`stopgate
    /// migrate`), without starting a store.
    pub async fn migrate(cfg: &StorageConfig) -> Result<migrate::Report> {
        let pool = connect(cfg).await?;
        migrate::run(&pool).await
    }

    /// What the batching writer of opt-outs has committed so far (tests,
    /// metrics): its transactions and the events they carried.
    pub fn writer_stats(&self) -> WriterStats {
        self.events.stats()
    }

    /// The same for the batching writer of link mints.
    pub fn link_writer_stats(&self) -> WriterStats {
        self.links.stats()
    }

    /// The same for the batching writer of delivery reports.
    pub fn report_writer_stats(&self) -> WriterStats {
        self.reports.stats()
    }

    /// The same for the batching writers of idempotency records: begun,
    /// finished.
    pub fn request_writer_stats(&self) -> (WriterStats, WriterStats) {
        (self.begins.stats(), self.finishes.stats())
    }

    /// The same for the batching writers of the outbox: enqueued
    /// notifications, completed deliveries.
    pub fn outbox_writer_stats(&self) -> (WriterStats, WriterStats) {
        (self.enqueues.stats(), self.completions.stats())
    }

    /// The same for the batching writers of send counters and of
    /// marketing sends through short codes.
    pub fn counter_writer_stats(&self) -> (WriterStats, WriterStats) {
        (self.counters.stats(), self.sends.stats())
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }
}

/// The pool, with a first connection made: at startup an unreachable
/// database is retried with backoff for `connect_retry_secs`, then reported
/// naming host and database (never the password). At run time the pool
/// opens new connections by itself when the database is back.
pub(crate) async fn connect(cfg: &StorageConfig) -> Result<Pool> {
    let mut pg = cfg
        .pg_config()
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let target = describe_pg(&pg);
    let timeout = Duration::from_millis(cfg.connect_timeout_ms);
    pg.connect_timeout(timeout);
    // The server cancels a runaway statement; the URL's own options stay.
    let options = format!(
        "{} -c statement_timeout={}",
        pg.get_options().unwrap_or(""),
        cfg.statement_timeout_ms
    );
    pg.options(options.trim());
    if pg.get_application_name().is_none() {
        pg.application_name("stopgate");
    }
    // A peer that vanished (a failed-over host) is noticed in seconds.
    pg.keepalives_idle(Duration::from_secs(15));
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(cfg.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()
        .map_err(|e| StoreError::Unavailable(format!("database pool: {e}")))?;

    let budget = Duration::from_secs(cfg.connect_retry_secs);
    let started = Instant::now();
    let mut pause = Duration::from_millis(250);
    loop {
        match pool.get().await {
            Ok(_) => return Ok(pool),
            Err(e) => {
                let cause = match &e {
                    PoolError::Backend(e) => chain(e),
                    PoolError::Timeout(_) => format!("no answer within {} ms", timeout.as_millis()),
                    other => other.to_string(),
                };
                let waited = started.elapsed();
                if waited + pause > budget {
                    return Err(StoreError::Unavailable(format!(
                        "cannot reach the {target}: {cause} (tried for {} s)",
                        waited.as_secs()
                    )));
                }
                tracing::warn!(
                    database = %target,
                    error = %cause,
                    retry_in_ms = pause.as_millis() as u64,
                    "database unreachable, retrying"
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// An acknowledged opt-out must survive a crash of the database server, so
/// `synchronous_commit = off` (which acknowledges commits before their WAL
/// is flushed) is refused. `local`, `remote_write`, `on` and
/// `remote_apply` all flush locally first.
async fn check_synchronous_commit(pool: &Pool) -> Result<()> {
    let value: String = async {
        let client = pool.get().await?;
        let row = client.query_one("SHOW synchronous_commit", &[]).await?;
        Ok::<_, Failure>(row.try_get::<_, String>(0)?)
    }
    .await?;
    if value.eq_ignore_ascii_case("off") {
        return Err(StoreError::Unavailable(
            "the database runs with synchronous_commit = off, so a commit is acknowledged before it is on disk and an acknowledged opt-out could be lost; set it to on (ALTER DATABASE ... SET synchronous_commit = on, or in postgresql.conf)".into(),
        ));
    }
    Ok(())
}

/// `host-pid-random`: this process's row in `heartbeat`.
fn node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "node".into());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

#[async_trait]
impl Store for PgStore {
    /// Every write is committed (with `synchronous_commit` on) before its
    /// call returns: nothing is left to flush.
    async fn durable(&self) -> Result<()> {
        Ok(())
    }

    /// The cap and the reply are written in the events' transaction: one
    /// commit for all three.
    async fn record_confirming(
        &self,
        changes: &[(Event, Vec<Notification>)],
        cap: &str,
        reply: Option<&Notification>,
    ) -> Result<(Vec<bool>, bool)> {
        self.events
            .submit(suppressions::RecordReq {
                changes: changes.to_vec(),
                confirm: Some(suppressions::Confirm {
                    cap: cap.to_string(),
                    reply: reply.cloned(),
                }),
                replay: None,
            })
            .await?
            .done()
    }

    /// The replay record goes in the events' batch too, before their rows
    /// are locked: a STOP is one commit, not a begin's, its events' and a
    /// finish's.
    async fn record_once(
        &self,
        changes: &[(Event, Vec<Notification>)],
        confirm: Option<(&str, Option<&Notification>)>,
        replay: &Replay,
        answer: Vec<u8>,
    ) -> Result<Once<(Vec<bool>, bool)>> {
        self.events
            .submit(suppressions::RecordReq {
                changes: changes.to_vec(),
                confirm: confirm.map(|(cap, reply)| suppressions::Confirm {
                    cap: cap.to_string(),
                    reply: reply.cloned(),
                }),
                replay: Some((replay.clone(), answer)),
            })
            .await
    }

    async fn report_once(
        &self,
        provider: &str,
        provider_id: &str,
        change: StatusChange,
        notify: SharedNotify,
        replay: &Replay,
        answer: ReportAnswer,
    ) -> Result<Once<Option<Reported>>> {
        // The replay record is kept in the report's batch: one commit, not three.
        let once = Some((replay.clone(), answer));
        let req = messages::ReportReq::new(provider, provider_id, change, notify, once);
        self.reports.submit(req).await?
    }

    /// A tiny committed write: what a database that cannot write refuses.
    async fn ready(&self) -> Result<()> {
        let pool = &self.pool;
        let node = &self.node;
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "INSERT INTO heartbeat (node, at) VALUES ($1, $2)
                     ON CONFLICT (node) DO UPDATE SET at = EXCLUDED.at",
                )
                .await?;
            client.execute(&stmt, &[node, &now_millis()]).await?;
            Ok(())
        })
        .await
    }
}

/// A [`StoreError`] again, for each caller of a failed batch.
pub(crate) fn again(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        StoreError::InUse(p) => StoreError::InUse(p.clone()),
    }
}

/// The insights counters an applied event adds one to, as (campaign or
/// `""`, counter): the same names sled keeps (see `insights.rs`).
pub(crate) fn optout_counters(event: &crate::domain::Event) -> Vec<(String, String)> {
    use crate::domain::{Action, Source};
    // An import says nothing about a campaign: not counted.
    if event.action != Action::OptOut || event.source == Source::Import {
        return Vec::new();
    }
    let campaign = event
        .campaign
        .as_ref()
        .map_or(String::new(), |c| c.as_str().to_string());
    let mut counters = vec![(
        campaign.clone(),
        format!("optout:{}", event.source.as_str()),
    )];
    if let (Source::Link, Some(reason)) = (event.source, &event.reason) {
        counters.push((campaign, format!("reason:{reason}")));
    }
    counters
}
