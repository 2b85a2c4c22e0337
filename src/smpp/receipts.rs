//! Delivery receipts on their way to a tenant's receiver binds.
//!
//! A receipt is owed when a message submitted with `registered_delivery`
//! reaches a final status: the outbox gets a `Notification::SmppReceipt` in
//! the same store call as the status change (at submit, or from a delivery
//! report of any provider), and the outbox dispatcher hands it to
//! [`Receivers`], its [`ReceiptSink`]. That sends it as a `deliver_sm` on one
//! of the tenant's receiver or transceiver binds (in turn) and says
//! delivered only on `deliver_sm_resp` `ESME_ROK`. No bind, no answer in
//! time, a dropped bind or a temporary refusal: the item stays in the
//! outbox and is tried again (so a bind that comes back later gets it);
//! another refusal gives it up (listed in `GET /v1/webhooks/failed`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusmpp_core::pdus::owned::{DeliverSm, Pdu};
use rusmpp_core::tlvs::owned::MessageDeliveryRequestTlvValue;
use rusmpp_core::types::owned::{COctetString, OctetString};
use rusmpp_core::values::{DataCoding, EsmClass, MessageState, Npi, Ton};
use rusmpp_core::CommandStatus;

use super::link::{Link, LinkError};
use super::message::Address;
use super::receipt::{ReceiptText, Stamp, Stat};
use crate::domain::{MessageStatus, SmppReceipt, TenantId, UnixMillis};
use crate::outbox::{DeliveryError, ReceiptSink};

/// One receipt for one message, in SMPP's terms.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The id the `submit_sm_resp` carried (stopgate's message id).
    pub message_id: String,
    /// The message's recipient: the receipt's `source_addr`.
    pub recipient: Address,
    /// The message's sender, as the ESME gave it: the receipt's `destination_addr`.
    pub sender: Address,
    pub stat: Stat,
    /// The `err:` code (docs/smpp.md lists stopgate's).
    pub err: u16,
    pub submitted_at: UnixMillis,
    pub done_at: UnixMillis,
}

/// The `stat:` and `err:` of a final status. Outcomes known at submit carry
/// the `command_status` the refuse mode would have answered, in decimal
/// (opted out 101, invalid number 11, refused by the provider 69); a
/// provider's report carries the provider's error code when it is a number
/// that fits, else 0. `None` for statuses that are not final.
pub fn stat_of(status: MessageStatus, error: Option<&str>) -> Option<(Stat, u16)> {
    let code = |s: CommandStatus| u32::from(s) as u16;
    let provider_err = || {
        error
            .and_then(|e| e.trim().parse::<u16>().ok())
            .unwrap_or(0)
    };
    Some(match status {
        MessageStatus::Scheduled | MessageStatus::Sent => return None,
        MessageStatus::Delivered => (Stat::Delivered, 0),
        MessageStatus::Blocked => (Stat::Rejected, code(super::front::BLOCKED_STATUS)),
        // Refused like an opt-out at submit (front::outcome): not the address's fault.
        MessageStatus::Rejected
            if matches!(error, Some("outside_send_window" | "frequency_capped")) =>
        {
            (Stat::Rejected, code(super::front::BLOCKED_STATUS))
        }
        MessageStatus::Rejected => (Stat::Rejected, code(CommandStatus::EsmeRinvdstadr)),
        MessageStatus::Failed if error == Some("upstream_rejected") => {
            (Stat::Undeliverable, code(CommandStatus::EsmeRsubmitfail))
        }
        MessageStatus::Undelivered | MessageStatus::Failed => (Stat::Undeliverable, provider_err()),
        MessageStatus::Canceled => (Stat::Deleted, 0),
    })
}

/// The receipt's source: the recipient as an international number when
/// it is one, else as given (an input that was not a number).
fn recipient_address(to: &str) -> Address {
    match to.strip_prefix('+') {
        Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => Address {
            ton: 1,
            npi: 1,
            addr: d.to_string(),
        },
        _ => Address {
            ton: 0,
            npi: 0,
            addr: to
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(20)
                .collect(),
        },
    }
}

impl Receipt {
    /// The receipt a notice stands for (`None` for a status that is not final).
    pub fn of(n: &SmppReceipt) -> Option<Receipt> {
        let (stat, err) = stat_of(n.status, n.error.as_deref())?;
        Some(Receipt {
            message_id: n.id.as_str().to_string(),
            recipient: recipient_address(&n.to),
            sender: Address {
                ton: n.esme.ton,
                npi: n.esme.npi,
                addr: n.esme.addr.clone(),
            },
            stat,
            err,
            submitted_at: n.submitted,
            done_at: n.done,
        })
    }

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
        let text = self.text().to_string();
        let id = COctetString::from_string(self.message_id.clone()).ok()?;
        let sm = DeliverSm::builder()
            .source_addr_ton(Ton::from(self.recipient.ton))
            .source_addr_npi(Npi::from(self.recipient.npi))
            .source_addr(COctetString::from_string(self.recipient.addr.clone()).ok()?)
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

/// A receiver bind as the registry knows it.
struct Receiver {
    conn: u64,
    link: Arc<Link>,
}

/// Every tenant's receiver and transceiver binds on this node, for the
/// outbox's receipts.
#[derive(Default)]
pub struct Receivers {
    binds: Mutex<HashMap<TenantId, Vec<Receiver>>>,
    /// Turns over the binds of a tenant, so receipts spread over them.
    turn: AtomicUsize,
}

impl Receivers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Vec<Receiver>>> {
        self.binds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A bind that may receive, from its bind to its end.
    pub fn add(&self, tenant: &TenantId, conn: u64, link: Arc<Link>) {
        self.lock()
            .entry(tenant.clone())
            .or_default()
            .push(Receiver { conn, link });
    }

    pub fn remove(&self, tenant: &TenantId, conn: u64) {
        let mut binds = self.lock();
        if let Some(v) = binds.get_mut(tenant) {
            v.retain(|r| r.conn != conn);
            if v.is_empty() {
                binds.remove(tenant);
            }
        }
    }

    /// The tenant's open receiver binds, starting with the next one's turn.
    fn links(&self, tenant: &TenantId) -> Vec<Arc<Link>> {
        let binds = self.lock();
        let Some(v) = binds.get(tenant) else {
            return Vec::new();
        };
        let open: Vec<Arc<Link>> = v
            .iter()
            .filter(|r| !r.link.is_closed())
            .map(|r| r.link.clone())
            .collect();
        if open.is_empty() {
            return open;
        }
        let first = self.turn.fetch_add(1, Ordering::Relaxed) % open.len();
        open[first..]
            .iter()
            .chain(&open[..first])
            .cloned()
            .collect()
    }
}

#[async_trait]
impl ReceiptSink for Receivers {
    async fn deliver_receipt(&self, n: &SmppReceipt) -> Result<(), DeliveryError> {
        let Some(pdu) = Receipt::of(n).and_then(|r| r.to_pdu()) else {
            return Err(DeliveryError::Permanent(
                "the receipt does not fit in a deliver_sm".into(),
            ));
        };
        let links = self.links(&n.tenant);
        if links.is_empty() {
            return Err(DeliveryError::Retry("no receiver bind".into()));
        }
        let mut last = LinkError::NotBound;
        for link in links {
            // A bind whose window is full, or that closes now: the next one.
            match link.request(pdu.clone()).await {
                Ok(resp) if resp.status() == CommandStatus::EsmeRok => {
                    metrics::counter!("stopgate_smpp_receipts_delivered_total", "tenant" => n.tenant.to_string())
                        .increment(1);
                    return Ok(());
                }
                // The ESME cannot take it now: later (SMPP 3.4 §5.1.3).
                Ok(resp)
                    if matches!(
                        resp.status(),
                        CommandStatus::EsmeRxTAppn
                            | CommandStatus::EsmeRthrottled
                            | CommandStatus::EsmeRmsgqful
                    ) =>
                {
                    return Err(DeliveryError::Retry(format!(
                        "deliver_sm_resp {}",
                        super::pdu::status_label(resp.status())
                    )));
                }
                Ok(resp) => {
                    let status = super::pdu::status_label(resp.status());
                    tracing::warn!(tenant = %n.tenant, %status, "the ESME refused a receipt: given up");
                    return Err(DeliveryError::Permanent(format!(
                        "deliver_sm_resp {status}"
                    )));
                }
                Err(e @ (LinkError::WindowFull | LinkError::Closed | LinkError::NotBound)) => {
                    last = e
                }
                // No answer in time: it may have arrived; at least once allows a repeat.
                Err(LinkError::Timeout) => {
                    return Err(DeliveryError::Retry("no deliver_sm_resp in time".into()))
                }
            }
        }
        Err(DeliveryError::Retry(format!(
            "no receiver bind took it: {last}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_statuses_have_their_stat_and_err() {
        use MessageStatus::*;
        assert_eq!(stat_of(Sent, None), None);
        assert_eq!(stat_of(Scheduled, None), None);
        assert_eq!(stat_of(Delivered, None), Some((Stat::Delivered, 0)));
        assert_eq!(
            stat_of(Blocked, Some("recipient_opted_out")),
            Some((Stat::Rejected, 101))
        );
        assert_eq!(
            stat_of(Rejected, Some("invalid_number")),
            Some((Stat::Rejected, 11))
        );
        assert_eq!(
            stat_of(Failed, Some("upstream_rejected")),
            Some((Stat::Undeliverable, 69))
        );
        assert_eq!(
            stat_of(Undelivered, Some("034")),
            Some((Stat::Undeliverable, 34))
        );
        assert_eq!(
            stat_of(Undelivered, Some("EXPIRED")),
            Some((Stat::Undeliverable, 0))
        );
        assert_eq!(stat_of(Canceled, None), Some((Stat::Deleted, 0)));
    }

    #[test]
    fn a_receipts_source_is_the_recipient() {
        assert_eq!(
            recipient_address("+33612345678"),
            Address {
                ton: 1,
                npi: 1,
                addr: "33612345678".into()
            }
        );
        assert_eq!(recipient_address("06 12").addr, "0612");
    }
}
