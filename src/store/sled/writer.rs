//! sled's batching writer for suppression changes: concurrent
//! `record_notifying` calls share one transaction.
//!
//! A sled transaction is costly beyond its writes: it takes sled's
//! process-wide write lock (every other store call waits) and, pinning the
//! log, writes out the log's I/O buffer twice (two `pwrite` +
//! `sync_file_range` on sled's I/O threads, `pagecache::pin_log`). One per
//! STOP made those the STOP storm's cost. Here one thread takes every call
//! queued so far, runs them as one transaction in their order, and answers
//! each caller with its own result; a call that arrives while a batch runs
//! goes into the next one, so the batch grows with the load, as the group
//! commit does. Durability is unchanged: callers still wait for the group
//! commit afterwards.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Weak};

use tokio::sync::oneshot;

use super::{Shared, SledStore};
use crate::domain::{Event, Notification};
use crate::store::{Result, StoreError};

/// Changes per transaction beyond which the rest waits for the next batch
/// (the size `record_notifying` runs off the async worker at).
const MAX_CHANGES: usize = super::suppressions::BIG_BATCH;

type Changes = Vec<(Event, Vec<Notification>)>;
type Job = (Changes, oneshot::Sender<Result<Vec<bool>>>);

pub(super) struct EventWriter {
    queue: mpsc::Sender<Job>,
    #[cfg_attr(not(test), allow(dead_code))]
    transactions: Arc<AtomicU64>,
}

impl EventWriter {
    /// Starts the writer thread. It holds the store only while it runs a
    /// batch, and ends when the store (with this writer) is dropped.
    pub(super) fn start(store: Weak<Shared>) -> EventWriter {
        let (queue, jobs) = mpsc::channel::<Job>();
        let transactions = Arc::new(AtomicU64::new(0));
        let count = transactions.clone();
        std::thread::Builder::new()
            .name("stopgate-events".into())
            .spawn(move || run(store, jobs, count))
            .expect("spawn the event writer thread");
        EventWriter {
            queue,
            transactions,
        }
    }

    /// Queues `changes` and waits for their outcome.
    pub(super) async fn submit(&self, changes: Changes) -> Result<Vec<bool>> {
        let (tx, rx) = oneshot::channel();
        let stopped = || StoreError::Unavailable("the event writer has stopped".into());
        self.queue.send((changes, tx)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Transactions run so far.
    #[cfg(test)]
    pub(super) fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::SeqCst)
    }
}

fn run(store: Weak<Shared>, jobs: mpsc::Receiver<Job>, transactions: Arc<AtomicU64>) {
    while let Ok(first) = jobs.recv() {
        let mut size = first.0.len();
        let mut batch = vec![first];
        while size < MAX_CHANGES {
            match jobs.try_recv() {
                Ok(job) => {
                    size += job.0.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        // A caller that gave up (its request cancelled) is still written:
        // a STOP that reached us is honoured, whether or not its sender
        // heard the answer.
        let Some(shared) = store.upgrade() else {
            return;
        };
        let outcomes = write(&SledStore { shared }, &batch, &transactions);
        // The store is let go before anyone is answered, so a caller that
        // drops it next finds it closed.
        for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
            let _ = reply.send(outcome);
        }
    }
}

/// One outcome per job of `batch`, in one transaction if it can be.
fn write(store: &SledStore, batch: &[Job], transactions: &AtomicU64) -> Vec<Result<Vec<bool>>> {
    // Not `SledStore::with`: a storage error starts the reopen from the
    // caller's side (`SledStore::noticed`), on its runtime.
    let live = match store.live() {
        Ok(live) => live,
        Err(e) => return batch.iter().map(|_| Err(copy(&e))).collect(),
    };
    let all: Changes = batch.iter().flat_map(|(c, _)| c.iter().cloned()).collect();
    let started = std::time::Instant::now();
    let outcome = live.record_batch(&all);
    metrics::histogram!("stopgate_store_batch_seconds", "writer" => "events")
        .record(started.elapsed().as_secs_f64());
    metrics::histogram!("stopgate_store_batch_size", "writer" => "events").record(all.len() as f64);
    match outcome {
        Ok(changed) => {
            transactions.fetch_add(1, Ordering::SeqCst);
            let mut changed = changed.into_iter();
            batch
                .iter()
                .map(|(changes, _)| Ok(changed.by_ref().take(changes.len()).collect()))
                .collect()
        }
        // Nothing of a failed transaction was written. Alone, each call
        // gets its own outcome: one corrupt row fails only its caller.
        Err(_) if batch.len() > 1 => batch
            .iter()
            .map(|(changes, _)| {
                transactions.fetch_add(1, Ordering::SeqCst);
                live.record_batch(changes)
            })
            .collect(),
        Err(e) => vec![Err(e)],
    }
}

fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        StoreError::InUse(p) => StoreError::InUse(p.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Action, PhoneNumber, Source, TenantId};
    use crate::store::SuppressionStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_changes_share_transactions_and_each_gets_its_own_answer() {
        let (_d, store) = crate::store::sled::tests::open();
        let before = store.shared.events.transactions();
        let event = |i: usize, action| {
            let num = PhoneNumber::parse(&format!("+3361234{i:04}")).unwrap();
            Event::new(TenantId::parse("acme").unwrap(), &num, action, Source::Sms)
        };
        // Each of 100 numbers STOPped twice at once (one of the two changes
        // it), and 100 STARTs of numbers never suppressed (none changes).
        let events: Vec<(usize, Event)> = (0..200)
            .flat_map(|i| {
                let action = if i < 100 {
                    Action::OptOut
                } else {
                    Action::OptIn
                };
                let copies = if i < 100 { 2 } else { 1 };
                std::iter::repeat_n((i, event(i, action)), copies)
            })
            .collect();
        let outcomes = futures::future::join_all(events.iter().map(|(_, e)| store.record(e))).await;
        let mut changes = vec![0; 200];
        for ((i, _), outcome) in events.iter().zip(outcomes) {
            changes[*i] += usize::from(outcome.unwrap());
        }
        assert!(changes[..100].iter().all(|&c| c == 1), "{changes:?}");
        assert!(changes[100..].iter().all(|&c| c == 0), "{changes:?}");
        let transactions = store.shared.events.transactions() - before;
        assert!(
            transactions < events.len() as u64 / 2,
            "{} callers took {transactions} transactions",
            events.len()
        );
    }
}
