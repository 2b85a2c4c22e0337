//! Delivery reports: what a provider says became of a message it took.
//!
//! Every provider-shaped webhook (and the SMPP upstream's receipts) turns its
//! wire format into a [`Report`] and calls [`Reports::report`], which moves the
//! message record on (never to a less final status: see
//! `MessageStatus::rank`) and counts the outcome. A report for a message we
//! do not know is answered like any other, so the provider stops retrying.

use std::sync::Arc;

use crate::domain::{now_millis, MessageStatus, Tenant, UnixMillis};
use crate::outbox::{for_message, Signal};
use crate::store::messages::SharedNotify;
use crate::store::{
    Applied, MessageRecord, Once, Replay, ReportAnswer, Reported, StatusChange, Store, StoreError,
};

/// One delivery report, in our terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The upstream that took the message (`Provider::name`).
    pub provider: &'static str,
    /// The provider's id of the message.
    pub provider_id: String,
    pub status: MessageStatus,
    /// The provider's error code, if any.
    pub error: Option<String>,
}

/// What a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The message's current status moved on.
    Changed(Box<MessageRecord>),
    /// Kept in the history; the current status is more final.
    Kept,
    /// Seen before.
    Duplicate,
    /// No message has this provider id (too old, or not ours).
    Unknown,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Changed(_) => "changed",
            Outcome::Kept => "kept",
            Outcome::Duplicate => "duplicate",
            Outcome::Unknown => "unknown",
        }
    }

    /// [`Outcome::as_str`] of a report that did `applied` (`None`: found
    /// no message), for an answer made inside the store's transaction.
    pub fn name(applied: Option<Applied>) -> &'static str {
        match applied {
            Some(Applied::Changed) => "changed",
            Some(Applied::Kept) => "kept",
            Some(Applied::Duplicate) => "duplicate",
            None => "unknown",
        }
    }

    fn of(reported: Option<Reported>) -> Outcome {
        match reported {
            None => Outcome::Unknown,
            Some(reported) => match reported.applied {
                Applied::Changed => Outcome::Changed(Box::new(reported.record)),
                Applied::Kept => Outcome::Kept,
                Applied::Duplicate => Outcome::Duplicate,
            },
        }
    }
}

pub struct Reports {
    pub store: Arc<dyn Store>,
    /// For each tenant's webhook subscriptions.
    pub tenants: Arc<[Arc<Tenant>]>,
    pub outbox: Signal,
}

impl Reports {
    pub async fn report(&self, r: Report) -> Result<Outcome, StoreError> {
        self.report_at(r, now_millis()).await
    }

    pub async fn report_at(&self, r: Report, at: UnixMillis) -> Result<Outcome, StoreError> {
        self.report_any(r, &[], at, &[]).await
    }

    /// A webhook's report under its replay record: applied only if
    /// `replay` is new, and then `answer`'s answer for it is kept with the
    /// report (in its transaction, where the store can).
    pub async fn report_once(
        &self,
        r: Report,
        replay: &Replay,
        answer: ReportAnswer,
    ) -> Result<Once<Outcome>, StoreError> {
        let change = StatusChange {
            status: r.status,
            at: now_millis(),
            error: r.error,
        };
        let done = self
            .store
            .report_once(
                r.provider,
                &r.provider_id,
                change,
                self.notify(),
                replay,
                answer,
            )
            .await?;
        Ok(match done {
            Once::Done { value, answer } => Once::Done {
                value: self.settle(r.provider, value).await?,
                answer,
            },
            Once::Seen(attempt) => Once::Seen(attempt),
        })
    }

    /// A report whose message may be known under another form of the
    /// provider's id (an SMSC's id in hex or in decimal): `r.provider_id`
    /// first, then each of `other_ids` until one finds a message. If none
    /// does, it looks again after each of `patience` (a receipt may overtake
    /// the record of its message, which is written once the whole request
    /// was forwarded) before calling the report unknown.
    pub async fn report_any(
        &self,
        r: Report,
        other_ids: &[String],
        at: UnixMillis,
        patience: &[std::time::Duration],
    ) -> Result<Outcome, StoreError> {
        let change = StatusChange {
            status: r.status,
            at,
            error: r.error,
        };
        let notify = self.notify();
        let mut reported = None;
        let mut waits = patience.iter();
        'found: loop {
            for id in std::iter::once(&r.provider_id).chain(other_ids) {
                reported = self
                    .store
                    .report(r.provider, id, change.clone(), notify.clone())
                    .await?;
                if reported.is_some() {
                    break 'found;
                }
            }
            match waits.next() {
                Some(w) => tokio::time::sleep(*w).await,
                None => break,
            }
        }
        self.settle(r.provider, reported).await
    }

    /// The notifications of a record's new status, for its tenant's subscriptions.
    fn notify(&self) -> SharedNotify {
        let tenants = self.tenants.clone();
        Arc::new(move |record: &MessageRecord| {
            let tenant = tenants.iter().find(|t| t.id == record.tenant);
            for_message(tenant.map(|t| t.as_ref()), record)
        })
    }

    /// What an applied report did, made durable, signalled and counted.
    async fn settle(
        &self,
        provider: &'static str,
        reported: Option<Reported>,
    ) -> Result<Outcome, StoreError> {
        // The provider hears 2xx only once the report is on disk: it will
        // not send it again.
        if reported.is_some() {
            self.store.durable().await?;
        }
        let outcome = Outcome::of(reported);
        if matches!(outcome, Outcome::Changed(_)) {
            self.outbox.wake();
        }
        metrics::counter!("stopgate_delivery_reports_total", "provider" => provider, "outcome" => outcome.as_str())
            .increment(1);
        if outcome == Outcome::Unknown {
            tracing::info!(provider, "delivery report for an unknown message");
        }
        Ok(outcome)
    }
}
