//! Coalescing: concurrent messages to a provider that has a batch call go
//! out as one upstream request.
//!
//! When the pipe is idle (no request in flight, nothing gathering) a message
//! goes at once, in the caller's task, without waiting. Otherwise it joins
//! the gathering batch, which leaves when `batch_wait` has passed since its
//! first message, when it holds `batch_max` messages, or when every message
//! the guard lets in at once (`upstream.concurrency`) is either in it or
//! already in flight, since nobody else can join before one of those ends.
//!
//! [`Coalescer`] sits inside [`super::guard::Guarded`], so the concurrency
//! bound, the `Retry-After` pause and the breaker still count messages, not
//! requests; that bound also bounds what can gather here.
//!
//! The deadline is kept by one plain thread per coalescer, not by tokio's
//! timer, whose 1 ms resolution would round a 500 µs wait up to as much as
//! 1.5 ms. Idle, the thread sleeps on a condition variable: no wake-ups.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::oneshot;

use super::{Accepted, OutboundSms, Provider, ProviderError};

type Verdict = Result<Accepted, ProviderError>;

/// An adapter whose provider takes many messages in one request.
#[async_trait]
pub trait BatchProvider: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Sends `batch` as one request. One result per message, in order: a
    /// message refused inside the batch is that message's `Rejected`; a
    /// failure of the whole request (429, 5xx, timeout, transport) is
    /// every message's.
    async fn send_batch(&self, batch: &[OutboundSms]) -> Vec<Verdict>;
}

pub struct Coalescer {
    shared: Arc<Shared>,
}

struct Shared {
    inner: Arc<dyn BatchProvider>,
    wait: Duration,
    max: usize,
    /// Messages the guard lets in at once.
    concurrency: usize,
    state: Mutex<State>,
    /// Wakes the deadline thread: a batch began gathering, or we are closing.
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// Upstream requests in flight (at once and gathered).
    requests: usize,
    /// The messages in those requests.
    messages: usize,
    gathering: Vec<Pending>,
    /// When the gathering batch must leave.
    deadline: Option<Instant>,
    /// The runtime of whoever began the gathering batch, to send it on.
    runtime: Option<tokio::runtime::Handle>,
    closed: bool,
}

struct Pending {
    sms: OutboundSms,
    answer: oneshot::Sender<Verdict>,
}

/// A batch taken out of the state, counted in flight until `done` drops.
struct Taken {
    pending: Vec<Pending>,
    runtime: Option<tokio::runtime::Handle>,
    done: Done,
}

impl Coalescer {
    pub fn new(
        inner: Arc<dyn BatchProvider>,
        wait: Duration,
        max: usize,
        concurrency: usize,
    ) -> std::io::Result<Coalescer> {
        let shared = Arc::new(Shared {
            inner,
            wait,
            max: max.max(1),
            concurrency: concurrency.max(1),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let timer = shared.clone();
        std::thread::Builder::new()
            .name("stopgate-batch".into())
            .spawn(move || timer.keep_deadlines())?;
        Ok(Coalescer { shared })
    }
}

impl Drop for Coalescer {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing here panics while holding the lock; stay usable if it did.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a request of `messages` in flight, until the guard drops.
    fn start(self: &Arc<Self>, state: &mut State, messages: usize) -> Done {
        state.requests += 1;
        state.messages += messages;
        Done {
            shared: self.clone(),
            messages,
        }
    }

    /// Takes the gathering batch and counts it in flight.
    fn take(self: &Arc<Self>, state: &mut State) -> Taken {
        let pending = std::mem::take(&mut state.gathering);
        state.deadline = None;
        Taken {
            done: self.start(state, pending.len()),
            pending,
            runtime: state.runtime.take(),
        }
    }

    /// The deadline thread: sends each gathering batch when its wait is over.
    fn keep_deadlines(self: Arc<Self>) {
        let mut state = self.lock();
        loop {
            if state.closed {
                return;
            }
            match state.deadline {
                None => state = self.wake.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(at) => {
                    let now = Instant::now();
                    if now < at {
                        state = self
                            .wake
                            .wait_timeout(state, at - now)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                        continue;
                    }
                    let taken = self.take(&mut state);
                    drop(state);
                    // Always set by whoever began the batch; without one the
                    // batch is dropped (before locking again: its `done`
                    // takes the lock) and its callers get an error.
                    match taken.runtime.clone() {
                        Some(rt) => drop(rt.spawn(send(self.clone(), taken))),
                        None => drop(taken),
                    }
                    state = self.lock();
                }
            }
        }
    }

    fn finish(&self, messages: usize) {
        let mut s = self.lock();
        s.requests -= 1;
        s.messages -= messages;
    }
}

/// Sends one gathered batch and answers each waiting caller. It stays
/// counted in flight until `taken.done` drops, also if this task is dropped
/// (runtime shutdown) before or while it runs.
async fn send(shared: Arc<Shared>, taken: Taken) {
    let Taken {
        pending,
        done: _done,
        ..
    } = taken;
    // A caller that went away before its batch left is not sent for:
    // the same as a cancelled single send that never reached the wire.
    let (sms, answers): (Vec<OutboundSms>, Vec<oneshot::Sender<Verdict>>) = pending
        .into_iter()
        .filter(|p| !p.answer.is_closed())
        .map(|p| (p.sms, p.answer))
        .unzip();
    if sms.is_empty() {
        return;
    }
    metrics::histogram!("stopgate_upstream_batch_size", "provider" => shared.inner.name())
        .record(sms.len() as f64);
    let verdicts = shared.inner.send_batch(&sms).await;
    for (answer, verdict) in answers.into_iter().zip(complete(verdicts, sms.len())) {
        // A caller that went away since is simply not answered.
        let _ = answer.send(verdict);
    }
}

/// Counts a request out of flight when it ends or is dropped.
struct Done {
    shared: Arc<Shared>,
    messages: usize,
}

impl Drop for Done {
    fn drop(&mut self) {
        self.shared.finish(self.messages);
    }
}

/// Exactly `n` verdicts: an adapter that answered fewer leaves the rest
/// without one, which is a protocol error, never someone else's result.
fn complete(mut verdicts: Vec<Verdict>, n: usize) -> Vec<Verdict> {
    verdicts.truncate(n);
    while verdicts.len() < n {
        verdicts.push(Err(ProviderError::Protocol(
            "no result for this message in the batch answer".into(),
        )));
    }
    verdicts
}

impl Coalescer {
    /// Where `sms` goes: the answer of the batch it joined, or (`Err`) at
    /// once, the pipe being idle, counted in flight until the guard drops.
    /// Synchronous, so no lock is ever held across an await.
    fn enter(&self, sms: &OutboundSms) -> Result<oneshot::Receiver<Verdict>, Done> {
        let shared = &self.shared;
        let mut state = shared.lock();
        if state.requests == 0 && state.gathering.is_empty() {
            return Err(shared.start(&mut state, 1));
        }
        let (tx, rx) = oneshot::channel();
        state.gathering.push(Pending {
            sms: sms.clone(),
            answer: tx,
        });
        let full = state.gathering.len() >= shared.max
            || state.gathering.len() + state.messages >= shared.concurrency;
        if full {
            let taken = shared.take(&mut state);
            drop(state);
            // Its own task: the batch must not depend on this caller staying.
            tokio::spawn(send(shared.clone(), taken));
        } else if state.gathering.len() == 1 {
            state.deadline = Some(Instant::now() + shared.wait);
            state.runtime = Some(tokio::runtime::Handle::current());
            drop(state);
            shared.wake.notify_one();
        }
        Ok(rx)
    }
}

#[async_trait]
impl Provider for Coalescer {
    fn name(&self) -> &'static str {
        self.shared.inner.name()
    }

    async fn send(&self, sms: &OutboundSms) -> Verdict {
        let answer = match self.enter(sms) {
            Ok(answer) => answer,
            Err(done) => {
                let verdict = self.at_once(sms).await;
                // Counted in flight until here, also if this caller is dropped.
                drop(done);
                return verdict;
            }
        };
        answer.await.unwrap_or_else(|_| {
            Err(ProviderError::Unavailable(
                "the upstream batch ended without an answer".into(),
            ))
        })
    }
}

impl Coalescer {
    /// Idle: at once, in the caller's task, like a single send.
    async fn at_once(&self, sms: &OutboundSms) -> Verdict {
        let shared = &self.shared;
        metrics::histogram!("stopgate_upstream_batch_size", "provider" => shared.inner.name())
            .record(1.0);
        let verdicts = shared.inner.send_batch(std::slice::from_ref(sms)).await;
        complete(verdicts, 1).pop().expect("one verdict")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::domain::segments::Encoding;
    use crate::domain::{Category, MessageId, PhoneNumber};

    /// A provider that records each batch, answers the first after
    /// `first` and the others after `rest`, and refuses numbers ending in 9.
    struct Recording {
        batches: Mutex<Vec<Vec<String>>>,
        first: Duration,
        rest: Duration,
        calls: AtomicUsize,
    }

    impl Recording {
        fn new(first: Duration, rest: Duration) -> Arc<Recording> {
            Arc::new(Recording {
                batches: Mutex::new(Vec::new()),
                first,
                rest,
                calls: AtomicUsize::new(0),
            })
        }
        fn sizes(&self) -> Vec<usize> {
            self.batches.lock().unwrap().iter().map(Vec::len).collect()
        }
    }

    #[async_trait]
    impl BatchProvider for Recording {
        fn name(&self) -> &'static str {
            "recording"
        }
        async fn send_batch(&self, batch: &[OutboundSms]) -> Vec<Verdict> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            self.batches
                .lock()
                .unwrap()
                .push(batch.iter().map(|m| m.to.as_str().to_string()).collect());
            tokio::time::sleep(if call == 0 { self.first } else { self.rest }).await;
            batch
                .iter()
                .map(|m| {
                    if m.to.as_str().ends_with('9') {
                        Err(ProviderError::Rejected {
                            code: "bad".into(),
                            message: "no".into(),
                        })
                    } else {
                        Ok(Accepted {
                            provider_id: format!("p-{}", m.to.as_str()),
                        })
                    }
                })
                .collect()
        }
    }

    fn sms(i: usize) -> OutboundSms {
        OutboundSms {
            id: MessageId::generate(),
            to: PhoneNumber::parse(&format!("+1212555{i:04}")).unwrap(),
            from: "ACME".into(),
            body: "Hi".into(),
            encoding: Encoding::Gsm7,
            category: Category::Transactional,
            messaging_service: None,
        }
    }

    #[tokio::test]
    async fn an_idle_send_goes_at_once_without_waiting() {
        let p = Recording::new(Duration::ZERO, Duration::ZERO);
        // A wait far longer than the test: any wait at all would show.
        let c = Coalescer::new(p.clone(), Duration::from_secs(30), 100, 64).unwrap();
        let started = Instant::now();
        for i in 0..3 {
            let r = c.send(&sms(i)).await.unwrap();
            assert_eq!(r.provider_id, format!("p-+1212555{i:04}"));
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(p.sizes(), [1, 1, 1]);
    }

    #[tokio::test]
    async fn concurrent_sends_gather_and_each_gets_its_own_result() {
        let p = Recording::new(Duration::from_millis(50), Duration::from_millis(50));
        let c = Coalescer::new(p.clone(), Duration::from_millis(1), 100, 64).unwrap();
        let all: Vec<OutboundSms> = (0..20).map(sms).collect();
        let results = futures::future::join_all(all.iter().map(|m| c.send(m))).await;
        // The first alone (idle), the other 19 together.
        assert_eq!(p.sizes(), [1, 19]);
        for (m, r) in all.iter().zip(results) {
            if m.to.as_str().ends_with('9') {
                assert!(matches!(r, Err(ProviderError::Rejected { .. })), "{r:?}");
            } else {
                assert_eq!(r.unwrap().provider_id, format!("p-{}", m.to.as_str()));
            }
        }
    }

    #[tokio::test]
    async fn a_batch_leaves_when_full() {
        let p = Recording::new(Duration::from_millis(20), Duration::from_millis(20));
        // The wait would never end: only being full sends these.
        let c = Coalescer::new(p.clone(), Duration::from_secs(3600), 5, 64).unwrap();
        let all: Vec<OutboundSms> = (0..11).map(sms).collect();
        let results = futures::future::join_all(all.iter().map(|m| c.send(m))).await;
        // All but +12125550009, which this provider refuses.
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 10);
        assert_eq!(p.sizes(), [1, 5, 5]);
    }

    #[tokio::test]
    async fn a_batch_leaves_when_nobody_else_can_join() {
        let p = Recording::new(Duration::from_millis(20), Duration::from_millis(20));
        // The guard lets 4 messages in at once: once 1 is in flight and 3
        // gather, no fifth can come, so waiting longer would only cost time.
        let c = Coalescer::new(p.clone(), Duration::from_secs(3600), 100, 4).unwrap();
        let all: Vec<OutboundSms> = (0..4).map(sms).collect();
        let results = futures::future::join_all(all.iter().map(|m| c.send(m))).await;
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(p.sizes(), [1, 3]);
    }

    #[tokio::test]
    async fn a_gathering_batch_leaves_after_the_wait() {
        let p = Recording::new(Duration::from_millis(300), Duration::ZERO);
        let c = Arc::new(Coalescer::new(p.clone(), Duration::from_millis(20), 100, 64).unwrap());
        let first = tokio::spawn({
            let c = c.clone();
            async move { c.send(&sms(0)).await }
        });
        while p.calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // The first is in flight for 300 ms; the second waits its 20 ms
        // for company, then leaves without waiting for the first.
        let started = Instant::now();
        c.send(&sms(1)).await.unwrap();
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(20), "{took:?}");
        assert!(took < Duration::from_millis(200), "{took:?}");
        assert_eq!(p.sizes(), [1, 1]);
        first.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_caller_that_went_away_is_not_sent_and_the_others_are_sent_once() {
        let p = Recording::new(Duration::from_millis(50), Duration::ZERO);
        let c = Arc::new(Coalescer::new(p.clone(), Duration::from_millis(30), 100, 64).unwrap());
        let first = tokio::spawn({
            let c = c.clone();
            async move { c.send(&sms(0)).await }
        });
        while p.calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let gone = tokio::spawn({
            let c = c.clone();
            async move { c.send(&sms(1)).await }
        });
        let stays = tokio::spawn({
            let c = c.clone();
            async move { c.send(&sms(2)).await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        gone.abort();
        assert!(gone.await.unwrap_err().is_cancelled());
        assert_eq!(stays.await.unwrap().unwrap().provider_id, "p-+12125550002");
        first.await.unwrap().unwrap();
        let batches = p.batches.lock().unwrap().clone();
        assert_eq!(batches, [vec!["+12125550000"], vec!["+12125550002"]]);
        // Nothing left counted in flight: the next send is idle again.
        assert_eq!(c.shared.lock().requests, 0);
        assert_eq!(c.shared.lock().messages, 0);
    }

    #[test]
    fn a_batch_whose_runtime_is_gone_is_counted_out_of_flight() {
        let p = Recording::new(Duration::from_millis(300), Duration::ZERO);
        let c = Arc::new(Coalescer::new(p.clone(), Duration::from_millis(50), 100, 64).unwrap());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let first = c.clone();
            tokio::spawn(async move { first.send(&sms(0)).await });
            while p.calls.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
            let second = c.clone();
            tokio::spawn(async move { second.send(&sms(1)).await });
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(c.shared.lock().gathering.len(), 1);
        });
        // Gone mid-request and mid-gathering; the deadline then finds no
        // runtime to send on.
        drop(rt);
        std::thread::sleep(Duration::from_millis(200));
        let state = c.shared.lock();
        assert_eq!((state.requests, state.messages), (0, 0));
        assert!(state.gathering.is_empty());
        assert_eq!(p.calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn missing_verdicts_are_protocol_errors_and_extra_ones_are_dropped() {
        let ok = || {
            Ok(Accepted {
                provider_id: "x".into(),
            })
        };
        let v = complete(vec![ok()], 3);
        assert!(v[0].is_ok());
        assert!(matches!(v[1], Err(ProviderError::Protocol(_))));
        assert!(matches!(v[2], Err(ProviderError::Protocol(_))));
        assert_eq!(complete(vec![ok(), ok(), ok()], 2).len(), 2);
    }
}
