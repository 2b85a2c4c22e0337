//! Delivery receipts on their way to a tenant's receiver binds.
//!
//! [`Receipts::deliver_receipt`] queues a receipt for a tenant; every bind
//! of that tenant that can receive (receiver, transceiver) runs a pump that
//! takes receipts from the queue and sends them as `deliver_sm`. A receipt
//! leaves the queue for good only when a bind answers `deliver_sm_resp`
//! with `ESME_ROK`; if the bind drops, times out or answers with a
//! temporary error, it goes back to the front of the queue for the next
//! bind. The queue is in memory and bounded per tenant (the oldest receipt
//! is dropped, and counted, when it is full): the durable outbox is to come.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use futures::stream::{FuturesUnordered, StreamExt};
use rusmpp_core::pdus::owned::{DeliverSm, Pdu};
use rusmpp_core::tlvs::owned::MessageDeliveryRequestTlvValue;
use rusmpp_core::types::owned::{COctetString, OctetString};
use rusmpp_core::values::{DataCoding, EsmClass, MessageState, Npi, Ton};
use rusmpp_core::CommandStatus;
use tokio::sync::Notify;

use super::link::{Link, LinkError};
use super::message::Address;
use super::receipt::{ReceiptText, Stamp, Stat};
use crate::domain::{PhoneNumber, TenantId, UnixMillis};

/// One receipt for one message, in stopgate's terms.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The id the `submit_sm_resp` carried (stopgate's message id).
    pub message_id: String,
    /// The message's recipient: the receipt's `source_addr`.
    pub recipient: PhoneNumber,
    /// The message's sender, as the ESME gave it: the receipt's `destination_addr`.
    pub sender: Address,
    pub stat: Stat,
    /// The `err:` code (docs/smpp.md lists stopgate's).
    pub err: u16,
    pub submitted_at: UnixMillis,
    pub done_at: UnixMillis,
}

impl Receipt {
    pub fn text(&self) -> ReceiptText {
        let delivered = u16::from(self.stat == Stat::Delivered);
        ReceiptText {
            id: self.message_id.clone(),
            submitted: 1,
            delivered,
            submit_date: Stamp::from_millis(self.submitted_at),
            done_date: Stamp::from_millis(self.done_at),
            stat: self.stat,
            err: self.err,
            // Bodies may be OTPs: a receipt never echoes one.
            text: String::new(),
        }
    }

    /// The `deliver_sm` that carries it (esm_class: SMSC delivery receipt).
    pub fn to_pdu(&self) -> Option<Pdu> {
        let digits = self.recipient.as_str().trim_start_matches('+').to_string();
        let text = self.text().to_string();
        let id = COctetString::from_string(self.message_id.clone()).ok()?;
        let sm = DeliverSm::builder()
            .source_addr_ton(Ton::International)
            .source_addr_npi(Npi::Isdn)
            .source_addr(COctetString::from_string(digits).ok()?)
            .dest_addr_ton(Ton::from(self.sender.ton))
            .dest_addr_npi(Npi::from(self.sender.npi))
            .destination_addr(COctetString::from_string(self.sender.addr.clone()).ok()?)
            .esm_class(EsmClass::from(0x04))
            .data_coding(DataCoding::McSpecific)
            .short_message(OctetString::from_vec(text.into_bytes()).ok()?)
            .push_tlv(MessageDeliveryRequestTlvValue::ReceiptedMessageId(id))
            .push_tlv(MessageDeliveryRequestTlvValue::MessageState(
                MessageState::from(self.stat.message_state()),
            ))
            .build();
        Some(Pdu::DeliverSm(sm))
    }
}

struct Queue {
    items: VecDeque<Receipt>,
    notify: Arc<Notify>,
}

/// Every tenant's receipts waiting for a receiver bind.
pub struct Receipts {
    queues: Mutex<HashMap<TenantId, Queue>>,
    capacity: usize,
}

impl Receipts {
    pub fn new(capacity_per_tenant: usize) -> Receipts {
        Receipts {
            queues: Mutex::new(HashMap::new()),
            capacity: capacity_per_tenant.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Queue>> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_queue<T>(&self, tenant: &TenantId, f: impl FnOnce(&mut Queue) -> T) -> T {
        let mut queues = self.lock();
        let q = queues.entry(tenant.clone()).or_insert_with(|| Queue {
            items: VecDeque::new(),
            notify: Arc::new(Notify::new()),
        });
        f(q)
    }

    /// Queues a receipt for the tenant's receiver binds. Async because the
    /// durable outbox that replaces this queue will write before returning.
    pub async fn deliver_receipt(&self, tenant: &TenantId, receipt: Receipt) {
        let dropped = self.with_queue(tenant, |q| {
            let dropped = if q.items.len() >= self.capacity {
                q.items.pop_front()
            } else {
                None
            };
            q.items.push_back(receipt);
            q.notify.notify_one();
            dropped
        });
        if let Some(old) = dropped {
            tracing::warn!(tenant = %tenant, message_id = %old.message_id, "receipt queue full: oldest receipt dropped");
            metrics::counter!("stopgate_smpp_receipts_dropped_total", "tenant" => tenant.to_string())
                .increment(1);
        }
    }

    /// Receipts waiting for this tenant.
    pub fn pending(&self, tenant: &TenantId) -> usize {
        self.lock().get(tenant).map_or(0, |q| q.items.len())
    }

    /// Puts a receipt back at the front (a bind did not take it).
    fn requeue(&self, tenant: &TenantId, receipt: Receipt) {
        self.with_queue(tenant, |q| {
            q.items.push_front(receipt);
            q.notify.notify_one();
        });
    }

    /// The next receipt for this tenant, waiting for one. Cancel safe: a
    /// receipt is taken only in the poll that returns it.
    async fn next(&self, tenant: &TenantId) -> Receipt {
        loop {
            let notify = self.with_queue(tenant, |q| q.notify.clone());
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(r) = self.with_queue(tenant, |q| q.items.pop_front()) {
                return r;
            }
            notified.await;
        }
    }

    /// Feeds this tenant's receipts to one receiver bind until the link
    /// closes, keeping up to `window` of them in flight.
    pub async fn pump(self: Arc<Self>, tenant: TenantId, link: Arc<Link>, window: usize) {
        let mut in_flight = FuturesUnordered::new();
        loop {
            tokio::select! {
                biased;
                _ = link.closed() => break,
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                r = self.next(&tenant), if in_flight.len() < window => {
                    in_flight.push(self.clone().send_one(tenant.clone(), link.clone(), r));
                }
            }
        }
        // The link is closed: the ones in flight fail at once and go back.
        while in_flight.next().await.is_some() {}
    }

    async fn send_one(self: Arc<Self>, tenant: TenantId, link: Arc<Link>, receipt: Receipt) {
        let Some(pdu) = receipt.to_pdu() else {
            tracing::warn!(tenant = %tenant, "a receipt does not fit in a deliver_sm: dropped");
            return;
        };
        match link.request(pdu).await {
            Ok(resp) if resp.status() == CommandStatus::EsmeRok => {
                metrics::counter!("stopgate_smpp_receipts_delivered_total", "tenant" => tenant.to_string())
                    .increment(1);
            }
            // The ESME cannot take it now: another bind (or this one) later.
            Ok(resp)
                if matches!(
                    resp.status(),
                    CommandStatus::EsmeRxTAppn
                        | CommandStatus::EsmeRthrottled
                        | CommandStatus::EsmeRmsgqful
                ) =>
            {
                // Not at once: the pump would hand it straight back.
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                self.requeue(&tenant, receipt);
            }
            Ok(resp) => {
                tracing::warn!(tenant = %tenant, status = %super::pdu::status_label(resp.status()), "the ESME refused a receipt: dropped");
            }
            Err(
                LinkError::Timeout
                | LinkError::Closed
                | LinkError::WindowFull
                | LinkError::NotBound,
            ) => {
                self.requeue(&tenant, receipt);
            }
        }
    }
}
