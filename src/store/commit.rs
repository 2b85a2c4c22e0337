//! Group commit: many writers, one fsync.
//!
//! A writer finishes its writes, then calls [`GroupCommit::wait`]. A single
//! committer thread takes every waiter queued so far, runs one flush, and
//! wakes them all. A waiter that arrives while a flush runs is served by the
//! next one, so a flush always covers every write made before its waiters
//! queued. Under a burst, the number of fsyncs grows with the flush latency,
//! not with the request rate.

use std::sync::mpsc;
use std::time::Instant;

use tokio::sync::oneshot;

use super::{Result, StoreError};

type Waiter = oneshot::Sender<std::result::Result<(), String>>;

pub struct GroupCommit {
    queue: Option<mpsc::Sender<Waiter>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for GroupCommit {
    /// Stops the committer and waits for it, so that whatever its flush
    /// closure holds (the database) is released when the store is dropped.
    fn drop(&mut self) {
        self.queue.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl GroupCommit {
    /// Starts the committer thread. It ends when every handle is dropped.
    pub fn start<F>(flush: F) -> GroupCommit
    where
        F: Fn() -> std::result::Result<(), String> + Send + 'static,
    {
        let (queue, rx) = mpsc::channel::<Waiter>();
        let thread = std::thread::Builder::new()
            .name("stopgate-commit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter());
                    let started = Instant::now();
                    let outcome = flush();
                    metrics::histogram!("stopgate_store_flush_seconds")
                        .record(started.elapsed().as_secs_f64());
                    metrics::histogram!("stopgate_store_flush_batch_size")
                        .record(batch.len() as f64);
                    for waiter in batch {
                        // The waiter may have given up (request cancelled); that is fine.
                        let _ = waiter.send(outcome.clone());
                    }
                }
            })
            .expect("spawn the commit thread");
        GroupCommit {
            queue: Some(queue),
            thread: Some(thread),
        }
    }

    /// Resolves once a flush that started after this call has completed.
    pub async fn wait(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .as_ref()
            .expect("queue is only taken on drop")
            .send(tx)
            .map_err(|_| StoreError::Unavailable("the commit thread has stopped".into()))?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Unavailable(format!("flush failed: {e}"))),
            Err(_) => Err(StoreError::Unavailable(
                "the commit thread has stopped".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_waiters_share_flushes() {
        let flushes = Arc::new(AtomicUsize::new(0));
        let f = flushes.clone();
        let gc = Arc::new(GroupCommit::start(move || {
            std::thread::sleep(Duration::from_millis(20));
            f.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }));
        let waits: Vec<_> = (0..200)
            .map(|_| {
                let gc = gc.clone();
                tokio::spawn(async move { gc.wait().await })
            })
            .collect();
        for w in waits {
            w.await.unwrap().unwrap();
        }
        let n = flushes.load(Ordering::SeqCst);
        assert!((1..50).contains(&n), "200 waiters took {n} flushes");
    }

    #[tokio::test]
    async fn a_waiter_is_covered_by_a_flush_that_starts_after_it() {
        let flushes = Arc::new(AtomicUsize::new(0));
        let f = flushes.clone();
        let gc = GroupCommit::start(move || {
            f.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        gc.wait().await.unwrap();
        let after_first = flushes.load(Ordering::SeqCst);
        gc.wait().await.unwrap();
        assert!(flushes.load(Ordering::SeqCst) > after_first);
    }

    #[tokio::test]
    async fn flush_errors_reach_every_waiter() {
        let gc = GroupCommit::start(|| Err("disk full".into()));
        let err = gc.wait().await.unwrap_err();
        assert!(err.to_string().contains("disk full"));
    }
}
