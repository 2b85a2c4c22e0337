//! Batching writer: concurrent writers share one transaction, so a STOP
//! storm or a campaign's link mints cost one commit per batch, not one per
//! request.
//!
//! Callers queue a request and wait for its own answer. One task takes
//! everything queued so far (up to [`MAX_WEIGHT`]), runs it as one
//! transaction (retried whole on a serialization failure or deadlock), and
//! answers every caller: each gets its own result, and a failed batch fails
//! each of its callers. A request that arrives while a batch runs goes into
//! the next one, so under load the batch size grows with the commit
//! latency, not with the request rate, exactly like group commit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use super::{again, retrying, PgResult};
use crate::store::{Result, StoreError};

/// Work per transaction (events, links) beyond which the rest waits for the
/// next batch: a transaction stays well under a second.
const MAX_WEIGHT: usize = 4_096;

/// What one batch transaction does with the requests it was given.
#[async_trait]
pub(crate) trait BatchWork: Send + Sync + 'static {
    type Req: Send + Sync + 'static;
    type Ans: Send + 'static;
    /// The metric label of this writer.
    const NAME: &'static str;
    /// How much work a request is (events in it).
    fn weight(req: &Self::Req) -> usize;
    /// Runs all of `reqs` in one transaction; one answer per request, in order.
    async fn run(&self, reqs: &[&Self::Req]) -> PgResult<Vec<Self::Ans>>;
}

/// What a writer has committed: transactions, and the requests' weight
/// (events) they carried. Counted after each commit, so a test that reads
/// fewer transactions than callers saw batching that really happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub transactions: u64,
    pub items: u64,
}

#[derive(Default)]
struct Counters {
    transactions: AtomicU64,
    items: AtomicU64,
}

type Job<W> = (
    <W as BatchWork>::Req,
    oneshot::Sender<Result<<W as BatchWork>::Ans>>,
);

pub(crate) struct Batcher<W: BatchWork> {
    queue: mpsc::UnboundedSender<Job<W>>,
    counters: Arc<Counters>,
}

impl<W: BatchWork> Batcher<W> {
    /// Starts the writer task on the current runtime; it ends when the
    /// batcher is dropped.
    pub fn start(work: W) -> Batcher<W> {
        let (queue, mut rx) = mpsc::unbounded_channel::<Job<W>>();
        let counters = Arc::new(Counters::default());
        let stats = counters.clone();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut weight = W::weight(&first.0);
                let mut jobs = vec![first];
                while weight < MAX_WEIGHT {
                    match rx.try_recv() {
                        Ok(job) => {
                            weight += W::weight(&job.0);
                            jobs.push(job);
                        }
                        Err(_) => break,
                    }
                }
                // A caller that gave up (its request cancelled) is still
                // written: a STOP that reached us is honoured, whether or not
                // its sender heard the answer, and a link or record more is
                // harmless.
                let reqs: Vec<&W::Req> = jobs.iter().map(|(r, _)| r).collect();
                let started = Instant::now();
                let outcome = retrying(|| work.run(&reqs)).await;
                metrics::histogram!("stopgate_store_batch_seconds", "writer" => W::NAME)
                    .record(started.elapsed().as_secs_f64());
                match outcome {
                    Ok(answers) => {
                        stats.transactions.fetch_add(1, Ordering::SeqCst);
                        stats.items.fetch_add(weight as u64, Ordering::SeqCst);
                        metrics::histogram!("stopgate_store_batch_size", "writer" => W::NAME)
                            .record(weight as f64);
                        debug_assert_eq!(answers.len(), jobs.len());
                        for ((_, reply), answer) in jobs.into_iter().zip(answers) {
                            let _ = reply.send(Ok(answer));
                        }
                    }
                    Err(e) => {
                        for (_, reply) in jobs {
                            let _ = reply.send(Err(again(&e)));
                        }
                    }
                }
            }
        });
        Batcher { queue, counters }
    }

    /// Queues `req` and waits for its answer (committed when `Ok`).
    pub async fn submit(&self, req: W::Req) -> Result<W::Ans> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send((req, tx))
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?
    }

    pub fn stats(&self) -> WriterStats {
        WriterStats {
            transactions: self.counters.transactions.load(Ordering::SeqCst),
            items: self.counters.items.load(Ordering::SeqCst),
        }
    }
}
