//! The outbox dispatcher: delivers what the other services wrote to the
//! outbox (in the same commit as the change it reports), at least once.
//!
//! It claims due items (leased, so that each is out with one node at a time),
//! delivers each on a task of its own — webhooks through the [`Notifier`]
//! port, SMPP receipts through the [`ReceiptSink`] port, confirmation SMS
//! through the provider — and marks it delivered,
//! due again after a backoff, or given up once it is older than its kind
//! allows ([`GiveUp`]: a day for webhooks, an hour for an SMS). Items of one order key
//! (a message, a number) go out one at a time, in order. At most
//! [`PER_ENDPOINT`] deliveries run at once per endpoint, so a slow endpoint
//! delays only its own items; and nothing here is on the path of a send or
//! of a webhook's answer, which only write to the store.

pub mod backoff;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use tokio::sync::{watch, Notify};
use tokio_util::task::TaskTracker;

use crate::domain::segments::analyze;
use crate::domain::{
    now_millis, Action, Callback, Category, Event, MessageId, Notification, PhoneNumber,
    SmppReceipt, Source, Tenant, WebhookEvent,
};
use crate::store::{MessageRecord, OutboxItem, Store};
use crate::upstream::{OutboundSms, Provider, ProviderError};

/// Deliveries at once to one endpoint.
pub const PER_ENDPOINT: usize = 8;
/// Deliveries at once in all.
const MAX_IN_FLIGHT: usize = 256;
/// How long a claimed item is this node's, by default (`[webhooks]
/// lease_ms`): past any delivery's timeout, so that a live node's item is
/// never taken by another; short, so that a dead node's items are soon
/// delivered by the others.
pub const LEASE_MS: i64 = 45_000;
/// How often the outbox is looked at when nobody woke the dispatcher
/// (retries falling due, items written by other nodes).
const POLL: Duration = Duration::from_millis(500);
/// After a wake, how long the dispatcher waits for more before it claims:
/// a STOP storm's confirmations are claimed a few at a time (one statement
/// and one commit on PostgreSQL), not one claim per wake. Nothing it sends
/// is waited for by a person within milliseconds.
const GATHER: Duration = Duration::from_millis(2);
/// The longest wait between two tries of an SMPP receipt: it mostly waits
/// for the application to bind again, and a bind should not wait long for
/// what it missed.
const RECEIPT_RETRY_MAX_MS: i64 = 30_000;

/// Why a delivery did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Try again later (timeout, 5xx, connection refused, ...).
    #[error("{0}")]
    Retry(String),
    /// It will never work (no destination configured any more, a provider
    /// that refused the message itself).
    #[error("{0}")]
    Permanent(String),
}

/// Delivers webhooks to applications: the wire format and the signatures.
/// Implemented by `http::notify` (only `http/` knows our wire JSON).
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Where the item goes, for the per-endpoint bound (`None`: nowhere).
    fn endpoint(&self, n: &Notification) -> Option<String>;
    async fn deliver(&self, item: &OutboxItem) -> Result<(), DeliveryError>;
}

/// Delivers SMPP delivery receipts to a tenant's receiver binds: `Ok` once
/// a bind answered `deliver_sm_resp` `ESME_ROK`; `Retry` while no bind can
/// take it (none bound, no answer, a temporary refusal). Implemented by the
/// SMPP front (only `smpp/` knows the PDUs).
#[async_trait]
pub trait ReceiptSink: Send + Sync {
    async fn deliver_receipt(&self, receipt: &SmppReceipt) -> Result<(), DeliveryError>;
}

/// The notifications of a message's current status: the tenant's webhook
/// if it takes `message.status`, and the message's own callback (an SMPP
/// receipt only for the outcomes its application asked for).
pub fn for_message(tenant: Option<&Tenant>, record: &MessageRecord) -> Vec<Notification> {
    let event = record.event();
    let mut out = Vec::new();
    if tenant
        .and_then(|t| t.webhook.as_ref())
        .is_some_and(|w| w.wants(WebhookEvent::MessageStatus))
    {
        out.push(Notification::MessageStatus(event.clone()));
    }
    match &record.callback {
        None => {}
        Some(Callback::Smpp(esme)) => {
            let c = record.current();
            if esme.wants(record.history.len() == 1, c.status, c.error.as_deref()) {
                out.push(Notification::SmppReceipt(SmppReceipt {
                    tenant: record.tenant.clone(),
                    id: record.id.clone(),
                    to: record.to.clone(),
                    esme: esme.clone(),
                    status: c.status,
                    error: c.error.clone(),
                    submitted: record.created(),
                    done: c.at,
                }));
            }
        }
        Some(callback) => out.push(Notification::MessageCallback {
            event,
            callback: callback.clone(),
        }),
    }
    out
}

/// The notification of an opt-out or opt-in, if the tenant's webhook takes
/// it. Imports notify nothing: a list moved in is no news to its owner.
pub fn for_subscription(tenant: Option<&Tenant>, event: &Event) -> Vec<Notification> {
    let kind = match event.action {
        Action::OptOut => WebhookEvent::OptOut,
        Action::OptIn => WebhookEvent::OptIn,
    };
    let wanted = event.source != Source::Import
        && tenant
            .and_then(|t| t.webhook.as_ref())
            .is_some_and(|w| w.wants(kind));
    if wanted {
        vec![Notification::Subscription(event.clone())]
    } else {
        Vec::new()
    }
}

/// Wakes the dispatcher when something was written, so that a delivery
/// does not wait for the next poll. Cheap to clone.
#[derive(Clone, Default)]
pub struct Signal(Arc<Notify>);

impl Signal {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// How long delivery is tried before an item is given up.
#[derive(Debug, Clone, Copy)]
pub struct GiveUp {
    /// Webhooks to applications (`[webhooks] give_up_after_secs`, a day).
    pub webhooks: Duration,
    /// Confirmation SMS: later than an hour, a confirmation only confuses.
    pub replies: Duration,
}

impl GiveUp {
    fn after_ms(&self, n: &Notification) -> i64 {
        let d = match n {
            Notification::Reply { .. } | Notification::ConsentRequest { .. } => self.replies,
            _ => self.webhooks,
        };
        d.as_millis() as i64
    }
}

pub struct Dispatcher {
    pub store: Arc<dyn Store>,
    pub notifier: Arc<dyn Notifier>,
    /// Sends the confirmation SMS.
    pub provider: Arc<dyn Provider>,
    /// Delivers SMPP receipts (`None`: no SMPP listener).
    receipts: Option<Arc<dyn ReceiptSink>>,
    pub signal: Signal,
    give_up: GiveUp,
    lease_ms: i64,
    busy: Mutex<HashMap<String, usize>>,
    /// Items this node is delivering right now. A lease can run out while
    /// its delivery waits (for a database connection, say), and the next
    /// claim then hands the same item back: it must not go out twice from
    /// here (that claim renewed the lease, which is all it should do).
    mine: Mutex<HashSet<u64>>,
    /// A claim passed over due items because their endpoint was at its
    /// bound: the next delivery to end wakes the loop to claim them.
    starved: AtomicBool,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        notifier: Arc<dyn Notifier>,
        provider: Arc<dyn Provider>,
        signal: Signal,
        give_up: GiveUp,
        lease: Duration,
    ) -> Dispatcher {
        Dispatcher {
            store,
            notifier,
            provider,
            receipts: None,
            signal,
            give_up,
            lease_ms: i64::try_from(lease.as_millis()).unwrap_or(LEASE_MS),
            busy: Mutex::new(HashMap::new()),
            mine: Mutex::new(HashSet::new()),
            starved: AtomicBool::new(false),
        }
    }

    /// Where SMPP receipts go (the SMPP front).
    pub fn with_receipts(mut self, receipts: Arc<dyn ReceiptSink>) -> Dispatcher {
        self.receipts = Some(receipts);
        self
    }

    /// Runs until `stop` turns true; deliveries under way are left to
    /// `tasks` (shutdown waits for them within its grace period). An item
    /// cut short by a crash is leased, not lost: it is delivered again once
    /// its lease ends.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>, tasks: TaskTracker) {
        let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
        let mut stats = tokio::time::interval(Duration::from_secs(5));
        loop {
            if *stop.borrow() {
                return;
            }
            let room = in_flight.available_permits();
            let claimed = if room == 0 {
                Vec::new()
            } else {
                // Only what can start now is leased: an item whose endpoint is
                // at its bound stays in the outbox (leasing and handing it
                // back spun this loop on the store through a burst of
                // confirmations).
                let planned: Mutex<HashMap<String, usize>> = Mutex::new(HashMap::new());
                let admit = |n: &Notification| {
                    let endpoint = self.endpoint(n);
                    let running = self
                        .busy
                        .lock()
                        .expect("not poisoned")
                        .get(&endpoint)
                        .copied();
                    let mut planned = planned.lock().expect("not poisoned");
                    let more = planned.entry(endpoint).or_insert(0);
                    if running.unwrap_or(0) + *more >= PER_ENDPOINT {
                        self.starved.store(true, Ordering::Relaxed);
                        return false;
                    }
                    *more += 1;
                    true
                };
                match self
                    .store
                    .claim_admitted(now_millis(), room.min(64), self.lease_ms, &admit)
                    .await
                {
                    Ok(items) => items,
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox claim failed");
                        Vec::new()
                    }
                }
            };
            let full = claimed.len() == room.min(64) && room > 0;
            for item in claimed {
                if !self.mine.lock().expect("not poisoned").insert(item.id) {
                    continue;
                }
                let endpoint = self.endpoint(&item.notification);
                if !self.take(&endpoint) {
                    // Its endpoint is at its bound: back for the next round.
                    let _ = self.store.release(item.id).await;
                    self.mine.lock().expect("not poisoned").remove(&item.id);
                    continue;
                }
                let permit = in_flight
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("never closed");
                let this = self.clone();
                tasks.spawn(async move {
                    let id = item.id;
                    this.deliver(item).await;
                    this.mine.lock().expect("not poisoned").remove(&id);
                    this.done(&endpoint);
                    drop(permit);
                    if this.starved.swap(false, Ordering::Relaxed) {
                        this.signal.wake();
                    }
                });
            }
            if full {
                continue;
            }
            tokio::select! {
                _ = self.signal.0.notified() => tokio::time::sleep(GATHER).await,
                _ = tokio::time::sleep(POLL) => {}
                _ = stats.tick() => self.publish_stats().await,
                _ = stop.changed() => {}
            }
        }
    }

    fn endpoint(&self, n: &Notification) -> String {
        match n {
            Notification::Reply { .. } | Notification::ConsentRequest { .. } => "sms".into(),
            Notification::SmppReceipt(r) => format!("smpp:{}", r.tenant),
            other => self
                .notifier
                .endpoint(other)
                .unwrap_or_else(|| "none".into()),
        }
    }

    fn take(&self, endpoint: &str) -> bool {
        let mut busy = self.busy.lock().expect("not poisoned");
        let n = busy.entry(endpoint.to_string()).or_insert(0);
        if *n >= PER_ENDPOINT {
            return false;
        }
        *n += 1;
        true
    }

    fn done(&self, endpoint: &str) {
        let mut busy = self.busy.lock().expect("not poisoned");
        if let Some(n) = busy.get_mut(endpoint) {
            *n -= 1;
            if *n == 0 {
                busy.remove(endpoint);
            }
        }
    }

    async fn deliver(&self, item: OutboxItem) {
        let kind = kind(&item.notification);
        let outcome = match &item.notification {
            Notification::Reply { to, from, body } => self.sms(to, from.as_str(), body).await,
            Notification::ConsentRequest { to, from, body, .. } => self.sms(to, from, body).await,
            Notification::SmppReceipt(r) => match &self.receipts {
                Some(sink) => sink.deliver_receipt(r).await,
                None => Err(DeliveryError::Permanent(
                    "no SMPP listener to deliver the receipt".into(),
                )),
            },
            _ => self.notifier.deliver(&item).await,
        };
        self.settle(item, kind, outcome).await;
    }

    /// A transactional SMS (a confirmation, a double opt-in request)
    /// through the provider.
    async fn sms(&self, to: &PhoneNumber, from: &str, body: &str) -> Result<(), DeliveryError> {
        let sms = OutboundSms {
            id: MessageId::generate(),
            to: to.clone(),
            from: from.to_string(),
            encoding: analyze(body).encoding,
            body: body.to_string(),
            category: Category::Transactional,
            messaging_service: None,
        };
        match self.provider.send(&sms).await {
            Ok(_) => Ok(()),
            // The provider refused this message: trying again changes nothing.
            Err(e @ ProviderError::Rejected { .. }) => Err(DeliveryError::Permanent(e.to_string())),
            Err(e) => Err(DeliveryError::Retry(e.to_string())),
        }
    }

    /// Marks a delivery done, due again, or given up.
    async fn settle(
        &self,
        item: OutboxItem,
        kind: &'static str,
        outcome: Result<(), DeliveryError>,
    ) {
        let store = self.store.as_ref();
        let written = match outcome {
            Ok(()) => {
                metrics::counter!("stopgate_outbox_delivered_total", "kind" => kind).increment(1);
                store.complete(item.id).await
            }
            Err(e) => {
                let age = now_millis() - item.created;
                let permanent = matches!(e, DeliveryError::Permanent(_));
                if permanent || age >= self.give_up.after_ms(&item.notification) {
                    metrics::counter!("stopgate_outbox_failed_total", "kind" => kind).increment(1);
                    tracing::warn!(id = item.id, kind, attempts = item.attempts + 1, error = %e, "notification given up");
                    store.give_up(item.id, &e.to_string()).await
                } else {
                    metrics::counter!("stopgate_outbox_retries_total", "kind" => kind).increment(1);
                    let mut delay = backoff::delay_ms(item.attempts + 1, rand::rng().random());
                    if matches!(item.notification, Notification::SmppReceipt(_)) {
                        delay = delay.min(RECEIPT_RETRY_MAX_MS);
                    }
                    tracing::debug!(id = item.id, kind, attempts = item.attempts + 1, error = %e, delay_ms = delay, "notification to be tried again");
                    store
                        .retry(item.id, now_millis() + delay, &e.to_string())
                        .await
                }
            }
        };
        if let Err(e) = written {
            // The lease runs out and the item is tried again: at least once.
            tracing::warn!(error = %e, id = item.id, "outbox bookkeeping failed");
        }
    }

    async fn publish_stats(&self) {
        match self.store.outbox_stats().await {
            Ok(s) => {
                metrics::gauge!("stopgate_outbox_queued").set(s.queued as f64);
                metrics::gauge!("stopgate_outbox_retrying").set(s.retrying as f64);
                metrics::gauge!("stopgate_outbox_failed").set(s.failed as f64);
                let age = s.oldest.map_or(0, |o| now_millis() - o).max(0);
                metrics::gauge!("stopgate_outbox_oldest_age_seconds").set(age as f64 / 1000.0);
            }
            Err(e) => tracing::warn!(error = %e, "outbox stats unavailable"),
        }
    }
}

fn kind(n: &Notification) -> &'static str {
    match n {
        Notification::MessageStatus(_) => "message.status",
        Notification::MessageCallback { .. } => "callback",
        Notification::Subscription(e) if e.action == Action::OptOut => "optout",
        Notification::Subscription(_) => "optin",
        Notification::SmppReceipt(_) => "smpp.receipt",
        Notification::Reply { .. } => "reply",
        Notification::ConsentRequest { .. } => "consent_request",
    }
}
