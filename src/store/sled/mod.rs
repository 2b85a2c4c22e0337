//! The embedded backend: one sled database, one process.
//!
//! Trees and keys (`·` is a 0 byte; tenant ids and E.164 numbers never hold one):
//!
//! | tree             | key                               | value                      | file |
//! |------------------|-----------------------------------|----------------------------|------|
//! | suppressions     | tenant·e164                       | JSON [`Suppression`]       | `suppressions.rs` |
//! | events           | tenant·e164·seq (u64 big-endian)  | JSON [`Event`]             | `suppressions.rs` |
//! | bulk, imports    | see `bulk.rs`                     |                            | `bulk.rs` |
//! | links            | code                              | JSON [`LinkRecord`]        | `links.rs` |
//! | link_index       | tenant·e164·campaign              | code                       | `links.rs` |
//! | sends            | e164·shortcode·tenant             | i64 big-endian time, then the campaign (UTF-8, may be absent) | `attribution.rs` |
//! | possible_optouts | id (u64 big-endian)               | JSON [`PossibleOptOut`]    | `review.rs` |
//! | requests         | tenant·reference                  | state, time, fingerprint, response | `idempotency.rs` |
//! | insights         | tenant·campaign·counter           | u64 big-endian             | `insights.rs` |
//! | message_records  | tenant·id (16 bytes: sorted by creation) | [`MessageRecord`], binary (`record_codec.rs`) | `messages.rs` |
//! | message_records_by_provider | provider·provider id   | tenant·id                  | `messages.rs` |
//! | outbox           | id (u64 big-endian, increasing)   | header, JSON [`OutboxItem`] | `outbox.rs` |
//! | outbox_failed    | tenant·id                         | JSON [`OutboxItem`]        | `outbox.rs` |
//! | held             | due (i64 big-endian) · id         | JSON [`HeldMessage`]       | `held.rs` |
//! | held_ids         | id                                | its `held` key             | `held.rs` |
//! | held_begun       | id                                | lease (i64 big-endian)     | `held.rs` |
//! | frequency        | tenant·e164                       | JSON [`SendLedger`]        | `frequency.rs` |
//! | consents         | tenant·e164                       | JSON map list → [`ConsentState`] | `consent.rs` |
//! | consent_events   | tenant·e164·seq (u64 big-endian)  | JSON [`ConsentEvent`]      | `consent.rs` |
//! | consent_codes    | confirmation code                 | JSON (tenant, number, list) | `consent.rs` |
//! | erased           | tenant·hash (32 bytes)            | JSON erased opt-out        | `subjects.rs` |
//! | erasures         | tenant·hash·seq (u64 big-endian)  | JSON [`Erasure`]           | `subjects.rs` |
//! | meta             | `subject_key`                     | the hash key (32 bytes)    | `subjects.rs` |
//!
//! Bulk-imported numbers live in the `bulk` and `imports` trees (see
//! [`bulk`]); a number's own row in `suppressions`, when it has one, is
//! authoritative over them, and over an erased opt-out in `erased`, which is
//! authoritative over them too.
//!
//! Durability: sled's own flush ends with `sync_file_range`, which writes
//! the log's pages but neither the file's size nor the disk's cache, and it
//! never syncs blob files (values over a quarter of a segment). So
//! [`Store::durable`] runs sled's flush, then `fdatasync` of the log file and
//! an `fsync` of every blob written since the last one: after it returns,
//! the data survives a power loss, not only a killed process.
//!
//! [`Suppression`]: super::Suppression
//! [`Event`]: crate::domain::Event
//! [`LinkRecord`]: super::LinkRecord
//! [`PossibleOptOut`]: super::PossibleOptOut
//! [`MessageRecord`]: super::MessageRecord
//! [`OutboxItem`]: super::OutboxItem
//! [`HeldMessage`]: super::HeldMessage
//! [`SendLedger`]: crate::domain::frequency::SendLedger
//! [`ConsentState`]: crate::domain::ConsentState
//! [`ConsentEvent`]: crate::domain::ConsentEvent
//! [`Erasure`]: super::Erasure

mod attribution;
pub(crate) mod bulk;
mod consent;
mod export;
mod frequency;
mod held;
mod idempotency;
pub(crate) mod insights;
mod links;
mod messages;
mod outbox;
mod record_codec;
mod review;
mod subjects;
mod suppressions;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::commit::GroupCommit;
use super::subjects::SubjectKey;
use super::{Result, Store, StoreError};
use bulk::Bulk;

/// sled releases its file lock from a background thread after the last
/// handle is dropped (spacejam/sled#1234), so opening a store again in the
/// same process can find the lock still held for a moment. A lock held
/// longer than this belongs to another process.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Numbers queued per bulk merge: 32 MiB of packed numbers, so a
/// 10M-line file is three sorted merges, not ten.
const IMPORT_ROUND: usize = 4_000_000;

/// The embedded store. A handle is cheap to clone: clones share one database.
///
/// After a storage error (a failing or full disk), sled fails every later
/// call until it is opened again, so the store reopens itself in the
/// background: meanwhile every call answers [`StoreError::Unavailable`]
/// (marketing fails closed, inbound answers 503, `/readyz` says 503), and
/// once the disk takes writes again it serves as before.
#[derive(Clone)]
pub struct SledStore {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    cache_mb: u64,
    chunk: usize,
    round: usize,
    /// `None` while the database is being reopened.
    live: RwLock<Option<Arc<Live>>>,
    recovering: AtomicBool,
    /// Shares transactions between concurrent suppression changes.
    events: writer::EventWriter,
}

/// One open database and its trees.
pub(crate) struct Live {
    db: sled::Db,
    suppressions: sled::Tree,
    events: sled::Tree,
    links: sled::Tree,
    link_index: sled::Tree,
    sends: sled::Tree,
    requests: sled::Tree,
    possible_optouts: sled::Tree,
    insights: sled::Tree,
    messages: sled::Tree,
    messages_by_provider: sled::Tree,
    outbox: sled::Tree,
    outbox_failed: sled::Tree,
    held: sled::Tree,
    held_ids: sled::Tree,
    held_begun: sled::Tree,
    held_state: held::HeldLock,
    frequency: sled::Tree,
    consents: sled::Tree,
    consent_events: sled::Tree,
    consent_codes: sled::Tree,
    erased: sled::Tree,
    erasures: sled::Tree,
    /// Keys erased opt-outs (see `subjects.rs`).
    subject_key: SubjectKey,
    /// Whether `erased` holds anything (see `subjects.rs`).
    any_erased: AtomicBool,
    next_outbox_id: std::sync::atomic::AtomicU64,
    bulk: Bulk,
    import_round: usize,
    commit: GroupCommit,
}

impl From<::sled::Error> for StoreError {
    fn from(e: ::sled::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

impl<T: std::fmt::Display> From<::sled::transaction::TransactionError<T>> for StoreError {
    fn from(e: ::sled::transaction::TransactionError<T>) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// A key of 0-separated parts.
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

/// `key(parts)` followed by the separator: the prefix of everything under it.
fn prefix(parts: &[&[u8]]) -> Vec<u8> {
    let mut k = key(parts);
    k.push(0);
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

/// Runs a long synchronous sled call (a transaction of thousands of rows
/// takes tens of milliseconds) so that the worker's other tasks (sends,
/// webhooks) move to another thread meanwhile. On a current-thread runtime
/// (tests) it just runs.
fn off_the_worker<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn utf8(bytes: &[u8]) -> Result<&str> {
    std::str::from_utf8(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl SledStore {
    /// Opens (or creates) the store. `cache_mb` bounds sled's page cache.
    pub fn open(path: &Path, cache_mb: u64) -> Result<SledStore> {
        Self::open_with(path, cache_mb, bulk::CHUNK, IMPORT_ROUND)
    }

    /// [`SledStore::open`] with the bulk chunk size and import round given,
    /// so that tests split chunks and run several merges with few numbers.
    pub fn open_with(path: &Path, cache_mb: u64, chunk: usize, round: usize) -> Result<SledStore> {
        let live = Live::open(path, cache_mb, chunk, round)?;
        metrics::gauge!("stopgate_store_up").set(1.0);
        Ok(SledStore {
            shared: Arc::new_cyclic(|shared| Shared {
                path: path.to_path_buf(),
                cache_mb,
                chunk,
                round,
                live: RwLock::new(Some(Arc::new(live))),
                recovering: AtomicBool::new(false),
                events: writer::EventWriter::start(shared.clone()),
            }),
        })
    }

    fn live(&self) -> Result<Arc<Live>> {
        self.shared
            .live
            .read()
            .expect("not poisoned")
            .clone()
            .ok_or_else(|| {
                StoreError::Unavailable("the store is being reopened after a storage error".into())
            })
    }

    /// Runs `f` on the open database; a storage error starts a reopen.
    fn with<T>(&self, f: impl FnOnce(&Live) -> Result<T>) -> Result<T> {
        self.noticed(f(&*self.live()?))
    }

    /// `outcome`, after starting a reopen if it is a storage error.
    fn noticed<T>(&self, outcome: Result<T>) -> Result<T> {
        if let Err(StoreError::Unavailable(e)) = &outcome {
            self.failed(e);
        }
        outcome
    }

    /// Starts the background reopen, once.
    fn failed(&self, cause: &str) {
        if self.shared.recovering.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::error!(error = cause, path = %self.shared.path.display(), "storage error: reopening the store");
        metrics::gauge!("stopgate_store_up").set(0.0);
        let shared = self.shared.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(recover(shared));
            }
            // No runtime (a CLI command past its end): nothing to recover for.
            Err(_) => shared.recovering.store(false, Ordering::SeqCst),
        }
    }
}

/// Drops the failed database, then opens it again until that works.
async fn recover(shared: Arc<Shared>) {
    let old = shared.live.write().expect("not poisoned").take();
    if let Some(old) = old {
        // Calls in flight still hold it; its file lock goes with the last.
        for _ in 0..100 {
            if Arc::strong_count(&old) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Dropping joins the commit thread: not on an async worker.
        let _ = tokio::task::spawn_blocking(move || drop(old)).await;
    }
    let mut delay = Duration::from_millis(100);
    loop {
        let s = shared.clone();
        let opened =
            tokio::task::spawn_blocking(move || Live::open(&s.path, s.cache_mb, s.chunk, s.round))
                .await;
        match opened {
            Ok(Ok(live)) => {
                *shared.live.write().expect("not poisoned") = Some(Arc::new(live));
                shared.recovering.store(false, Ordering::SeqCst);
                metrics::gauge!("stopgate_store_up").set(1.0);
                metrics::counter!("stopgate_store_reopens_total").increment(1);
                tracing::info!(path = %shared.path.display(), "store reopened: serving again");
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, retry_ms = delay.as_millis() as u64, "store still cannot be opened");
            }
            Err(e) => tracing::warn!(error = %e, "store reopen task failed"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

impl Live {
    fn open(path: &Path, cache_mb: u64, chunk: usize, round: usize) -> Result<Live> {
        let db = open_db(
            &sled::Config::new()
                .path(path)
                .cache_capacity(cache_mb * 1024 * 1024)
                .mode(sled::Mode::HighThroughput),
            path,
        )?;
        let files = StoreFiles::open(path)?;
        let flusher = db.clone();
        let commit = GroupCommit::start(move || {
            flusher.flush().map_err(|e| e.to_string())?;
            files.sync().map_err(|e| e.to_string())
        });
        let outbox = db.open_tree("outbox")?;
        release_leases(&outbox)?;
        let held = db.open_tree("held")?;
        let messages = db.open_tree("message_records")?;
        let messages_by_provider = db.open_tree("message_records_by_provider")?;
        messages::migrate(&db, &messages, &messages_by_provider)?;
        Ok(Live {
            held_state: std::sync::Mutex::new(Live::count_held(&held)),
            held,
            held_ids: db.open_tree("held_ids")?,
            held_begun: db.open_tree("held_begun")?,
            frequency: db.open_tree("frequency")?,
            suppressions: db.open_tree("suppressions")?,
            events: db.open_tree("events")?,
            links: db.open_tree("links")?,
            link_index: db.open_tree("link_index")?,
            sends: db.open_tree("sends")?,
            requests: db.open_tree("requests")?,
            possible_optouts: db.open_tree("possible_optouts")?,
            insights: db.open_tree("insights")?,
            messages,
            messages_by_provider,
            next_outbox_id: std::sync::atomic::AtomicU64::new(Live::first_outbox_id(
                &outbox,
                &db.open_tree("outbox_failed")?,
            )?),
            outbox,
            outbox_failed: db.open_tree("outbox_failed")?,
            consents: db.open_tree("consents")?,
            consent_events: db.open_tree("consent_events")?,
            consent_codes: db.open_tree("consent_codes")?,
            any_erased: AtomicBool::new(!db.open_tree("erased")?.is_empty()),
            erased: db.open_tree("erased")?,
            erasures: db.open_tree("erasures")?,
            subject_key: SubjectKey::new(subjects::subject_key(&db)?),
            bulk: Bulk::open(&db, chunk)?,
            import_round: round,
            commit,
            db,
        })
    }
}

/// The files sled leaves unsynced, and what we do about each.
struct StoreFiles {
    /// sled's log (`<path>/db`): every write lands here.
    log: File,
    blobs: PathBuf,
    /// The highest blob id fsynced so far (blob names are increasing log
    /// sequence numbers).
    synced_blob: std::sync::Mutex<i64>,
}

impl StoreFiles {
    fn open(path: &Path) -> Result<StoreFiles> {
        let io = |e: std::io::Error| StoreError::Unavailable(e.to_string());
        let log = File::open(path.join("db")).map_err(io)?;
        // The directory entries of the files sled just created.
        File::open(path).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(StoreFiles {
            log,
            blobs: path.join("blobs"),
            synced_blob: std::sync::Mutex::new(-1),
        })
    }

    /// After sled's flush: the log's data and size on disk, and every blob
    /// written since the last call, with the directory that names them.
    fn sync(&self) -> std::io::Result<()> {
        self.log.sync_data()?;
        let mut synced = self.synced_blob.lock().expect("not poisoned");
        let mut newest = *synced;
        let entries = match std::fs::read_dir(&self.blobs) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i64>().ok())
            else {
                continue;
            };
            if id <= *synced {
                continue;
            }
            match File::open(entry.path()) {
                Ok(f) => f.sync_all()?,
                // Collected by sled since it was listed: nothing to keep.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            newest = newest.max(id);
        }
        if newest > *synced {
            File::open(&self.blobs)?.sync_all()?;
            *synced = newest;
        }
        Ok(())
    }
}

/// One process owns a sled store, so the leases in its outbox belong to a
/// run that has ended (a crash): they are released, not waited out.
fn release_leases(outbox: &sled::Tree) -> Result<()> {
    for kv in outbox.iter() {
        let (k, v) = kv?;
        let mut item = outbox::decode_item(&v)?;
        if item.lease_until != 0 {
            item.lease_until = 0;
            outbox.insert(k, outbox::encode_item(&item))?;
        }
    }
    Ok(())
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

#[async_trait]
impl Store for SledStore {
    async fn durable(&self) -> Result<()> {
        let outcome = self.live()?.commit.wait().await;
        if let Err(StoreError::Unavailable(e)) = &outcome {
            self.failed(e);
        }
        outcome
    }

    async fn ready(&self) -> Result<()> {
        // A write that must reach the disk: what a failing or full disk refuses.
        self.with(|s| {
            s.db.insert(b"ready", &crate::domain::now_millis().to_be_bytes())?;
            Ok(())
        })?;
        self.durable().await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn open() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&dir.path().join("db"), 16).unwrap();
        (dir, store)
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

    #[tokio::test]
    async fn durable_syncs_new_blobs() {
        let (dir, s) = open();
        // A value over a quarter of a segment (512 KiB) is a blob file.
        s.live()
            .unwrap()
            .db
            .insert(b"big", vec![7u8; 300 * 1024])
            .unwrap();
        s.durable().await.unwrap();
        let blobs = dir.path().join("db").join("blobs");
        let names: Vec<i64> = std::fs::read_dir(&blobs)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().to_str()?.parse().ok())
            .collect();
        assert!(!names.is_empty(), "the value was not written as a blob");
        let files = StoreFiles::open(&dir.path().join("db")).unwrap();
        files.sync().unwrap();
        assert_eq!(
            *files.synced_blob.lock().unwrap(),
            *names.iter().max().unwrap()
        );
    }
}
