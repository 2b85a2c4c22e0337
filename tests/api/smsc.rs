//! The project's own loopback SMSC for the SMPP upstream's tests: it takes
//! binds, records every `submit_sm` as it arrived, answers as the test
//! scripted (an id, an error status, silence, a dropped connection), and
//! delivers `deliver_sm` (receipts, replies) on the session that receives,
//! reporting the `deliver_sm_resp` status stopgate answered. PDUs are
//! rusmpp-core's; framing is stopgate's `smpp::pdu` (a bounded reader).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use rusmpp_core::command::owned::Command;
use rusmpp_core::pdus::owned::{
    BindReceiverResp, BindTransceiverResp, BindTransmitterResp, DeliverSm, Pdu, SubmitSmResp,
};
use rusmpp_core::tlvs::owned::MessageDeliveryRequestTlvValue;
use rusmpp_core::types::owned::{COctetString, OctetString};
use rusmpp_core::values::{DataCoding, EsmClass, MessageState, Npi, Ton};
use rusmpp_core::{CommandId, CommandStatus};
use stopgate::smpp::pdu;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// How the SMSC answers one `submit_sm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `ESME_ROK` with the next message id.
    Accept,
    /// This `command_status`, no body.
    Status(u32),
    /// No answer, and the connection is closed once `n` submits are held.
    HoldThenDrop(usize),
}

/// How message ids are written in `submit_sm_resp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ids {
    /// `1A2B` (uppercase hex), as many SMSCs answer.
    Hex,
    Decimal,
}

/// One `submit_sm` as it arrived.
#[derive(Debug, Clone)]
pub struct Submit {
    pub session: usize,
    pub source_ton: u8,
    pub source: String,
    pub dest_ton: u8,
    pub dest: String,
    pub esm_class: u8,
    pub data_coding: u8,
    pub registered_delivery: u8,
    pub short_message: Vec<u8>,
    /// The id it was answered with, if accepted.
    pub message_id: Option<String>,
}

/// One bind as it arrived.
#[derive(Debug, Clone)]
pub struct BindSeen {
    pub command: u32,
    pub system_id: String,
    pub password: String,
    pub system_type: String,
    pub accepted: bool,
}

struct Session {
    receives: bool,
    out: mpsc::Sender<Command>,
    waiting: Arc<Mutex<HashMap<u32, oneshot::Sender<u32>>>>,
    next_seq: AtomicU64,
}

#[derive(Default)]
struct State {
    script: Mutex<VecDeque<Answer>>,
    submits: Mutex<Vec<Submit>>,
    binds: Mutex<Vec<BindSeen>>,
    sessions: Mutex<Vec<Arc<Session>>>,
    unbinds: AtomicUsize,
    next_id: AtomicU64,
    held: AtomicUsize,
}

#[derive(Clone)]
pub struct Smsc {
    pub addr: SocketAddr,
    system_id: String,
    password: String,
    ids: Ids,
    state: Arc<State>,
}

impl Smsc {
    pub async fn start(system_id: &str, password: &str, ids: Ids) -> Smsc {
        Self::start_with(system_id, password, ids, None).await
    }

    /// With `tls`, the listener speaks TLS only (rustls, as stopgate's front).
    pub async fn start_with(
        system_id: &str,
        password: &str,
        ids: Ids,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Smsc {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let smsc = Smsc {
            addr: listener.local_addr().unwrap(),
            system_id: system_id.into(),
            password: password.into(),
            ids,
            state: Arc::new(State {
                next_id: AtomicU64::new(0x1A2B),
                ..Default::default()
            }),
        };
        let s = smsc.clone();
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                n += 1;
                let s = s.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => s.serve(socket, n).await,
                        Some(acceptor) => {
                            if let Ok(t) = acceptor.accept(socket).await {
                                s.serve(t, n).await
                            }
                        }
                    }
                });
            }
        });
        smsc
    }

    /// Answers for the next submits, in order; then `Accept` again.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        let mut s = self.state.script.lock().unwrap();
        s.clear();
        s.extend(answers);
    }

    pub fn submits(&self) -> Vec<Submit> {
        self.state.submits.lock().unwrap().clone()
    }

    pub fn binds(&self) -> Vec<BindSeen> {
        self.state.binds.lock().unwrap().clone()
    }

    pub fn unbinds(&self) -> usize {
        self.state.unbinds.load(Ordering::SeqCst)
    }

    /// Waits (up to 10 s) until `f` holds.
    pub async fn until(&self, what: &str, f: impl Fn(&Smsc) -> bool) {
        for _ in 0..1000 {
            if f(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the SMSC never saw {what}");
    }

    /// Bound sessions that can receive, now.
    pub fn receivers(&self) -> usize {
        self.state
            .sessions
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.receives && !s.out.is_closed())
            .count()
    }

    /// Sends a `deliver_sm` on the newest session that receives; the
    /// `deliver_sm_resp` status, or `None` if none came within 10 s.
    pub async fn deliver(&self, sm: DeliverSm) -> Option<u32> {
        let session = self
            .state
            .sessions
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|s| s.receives && !s.out.is_closed())
            .cloned()
            .expect("a session that receives");
        let seq = session.next_seq.fetch_add(1, Ordering::SeqCst) as u32;
        let (tx, rx) = oneshot::channel();
        session.waiting.lock().unwrap().insert(seq, tx);
        session
            .out
            .send(Command::new(
                CommandStatus::EsmeRok,
                seq,
                Pdu::DeliverSm(sm),
            ))
            .await
            .ok()?;
        tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .ok()?
            .ok()
    }

    fn next_answer(&self) -> Answer {
        self.state
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Answer::Accept)
    }

    fn new_id(&self) -> String {
        let n = self.state.next_id.fetch_add(1, Ordering::SeqCst);
        match self.ids {
            Ids::Hex => format!("{n:X}"),
            Ids::Decimal => n.to_string(),
        }
    }

    async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(self, io: S, id: usize) {
        let (mut rd, mut wr) = tokio::io::split(io);
        let (out, mut rx) = mpsc::channel::<Command>(1024);
        let writer = tokio::spawn(async move {
            while let Some(c) = rx.recv().await {
                if wr.write_all(&pdu::encoded(&c)).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        let waiting: Arc<Mutex<HashMap<u32, oneshot::Sender<u32>>>> = Default::default();
        let mut session: Option<Arc<Session>> = None;
        let mut buf = BytesMut::with_capacity(4096);
        'conn: loop {
            let frame = loop {
                match pdu::take_frame(&mut buf) {
                    Ok(Some(f)) => break f,
                    Ok(None) => {}
                    Err(_) => break 'conn,
                }
                match rd.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => break 'conn,
                    Ok(_) => {}
                }
            };
            let (header, body) = frame;
            let Ok(c) = pdu::decode(header, body) else {
                break;
            };
            let seq = c.sequence_number();
            if header.is_response() {
                if let Some(w) = waiting.lock().unwrap().remove(&seq) {
                    let _ = w.send(u32::from(c.status()));
                }
                continue;
            }
            let reply = match c.pdu() {
                Some(Pdu::BindTransmitter(b)) => {
                    self.bind(0x02, &b.system_id, &b.password, &b.system_type, seq)
                }
                Some(Pdu::BindReceiver(b)) => {
                    self.bind(0x01, &b.system_id, &b.password, &b.system_type, seq)
                }
                Some(Pdu::BindTransceiver(b)) => {
                    self.bind(0x09, &b.system_id, &b.password, &b.system_type, seq)
                }
                Some(Pdu::EnquireLink) => {
                    Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLinkResp)
                }
                Some(Pdu::Unbind) => {
                    self.state.unbinds.fetch_add(1, Ordering::SeqCst);
                    let _ = out
                        .send(Command::new(CommandStatus::EsmeRok, seq, Pdu::UnbindResp))
                        .await;
                    break;
                }
                Some(Pdu::SubmitSm(sm)) => {
                    let answer = self.next_answer();
                    let message_id = (answer == Answer::Accept).then(|| self.new_id());
                    self.state.submits.lock().unwrap().push(Submit {
                        session: id,
                        source_ton: sm.source_addr_ton.into(),
                        source: sm.source_addr.as_str().into(),
                        dest_ton: sm.dest_addr_ton.into(),
                        dest: sm.destination_addr.as_str().into(),
                        esm_class: sm.esm_class.into(),
                        data_coding: sm.data_coding.into(),
                        registered_delivery: sm.registered_delivery.into(),
                        short_message: sm.short_message().as_ref().to_vec(),
                        message_id: message_id.clone(),
                    });
                    match answer {
                        Answer::Accept => {
                            let id = COctetString::from_string(message_id.unwrap()).unwrap();
                            Command::new(
                                CommandStatus::EsmeRok,
                                seq,
                                SubmitSmResp::new(id, Vec::new()),
                            )
                        }
                        Answer::Status(s) => {
                            pdu::bare_response(CommandId::SubmitSmResp, CommandStatus::from(s), seq)
                        }
                        Answer::HoldThenDrop(n) => {
                            if self.state.held.fetch_add(1, Ordering::SeqCst) + 1 >= n {
                                self.state.held.store(0, Ordering::SeqCst);
                                break;
                            }
                            continue;
                        }
                    }
                }
                _ => pdu::generic_nack(CommandStatus::EsmeRinvcmdid, seq),
            };
            if let Some(Pdu::BindTransmitter(_) | Pdu::BindReceiver(_) | Pdu::BindTransceiver(_)) =
                c.pdu()
            {
                if reply.status() == CommandStatus::EsmeRok {
                    let s = Arc::new(Session {
                        receives: c.id() != CommandId::BindTransmitter,
                        out: out.clone(),
                        waiting: waiting.clone(),
                        next_seq: AtomicU64::new(1),
                    });
                    self.state.sessions.lock().unwrap().push(s.clone());
                    session = Some(s);
                }
            }
            if out.send(reply).await.is_err() {
                break;
            }
        }
        if let Some(s) = session {
            self.state
                .sessions
                .lock()
                .unwrap()
                .retain(|x| !Arc::ptr_eq(x, &s));
        }
        // Answers already given reach stopgate before the connection closes:
        // a dropped session loses only what was held.
        drop(out);
        let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    }

    fn bind(
        &self,
        command: u32,
        system_id: &COctetString<1, 16>,
        password: &COctetString<1, 9>,
        system_type: &COctetString<1, 13>,
        seq: u32,
    ) -> Command {
        let accepted = system_id.as_str() == self.system_id && password.as_str() == self.password;
        self.state.binds.lock().unwrap().push(BindSeen {
            command,
            system_id: system_id.as_str().into(),
            password: password.as_str().into(),
            system_type: system_type.as_str().into(),
            accepted,
        });
        let id = CommandId::from(0x8000_0000 | command);
        if !accepted {
            return pdu::bare_response(id, CommandStatus::EsmeRinvpaswd, seq);
        }
        let name = COctetString::from_string("smsc".into()).unwrap();
        match command {
            0x02 => Command::new(
                CommandStatus::EsmeRok,
                seq,
                BindTransmitterResp::new(name, None),
            ),
            0x01 => Command::new(
                CommandStatus::EsmeRok,
                seq,
                BindReceiverResp::new(name, None),
            ),
            _ => Command::new(
                CommandStatus::EsmeRok,
                seq,
                BindTransceiverResp::new(name, None),
            ),
        }
    }
}

/// A handset's reply (`deliver_sm`, GSM text) from `from` (international) to `to`.
pub fn mo(from: &str, to: &str, text: &str) -> DeliverSm {
    DeliverSm::builder()
        .source_addr_ton(Ton::International)
        .source_addr_npi(Npi::Isdn)
        .source_addr(COctetString::from_string(from.trim_start_matches('+').into()).unwrap())
        .dest_addr_ton(Ton::Unknown)
        .dest_addr_npi(Npi::Isdn)
        .destination_addr(COctetString::from_string(to.into()).unwrap())
        .data_coding(DataCoding::McSpecific)
        .short_message(OctetString::from_vec(text.as_bytes().to_vec()).unwrap())
        .build()
}

/// A delivery receipt for `id` with this `stat` and `err`, as the SMSC
/// writes it: the id in the text, and in `receipted_message_id` if given.
pub fn receipt(text_id: &str, tlv_id: Option<&str>, stat: &str, err: &str) -> DeliverSm {
    let text = format!(
        "id:{text_id} sub:001 dlvrd:{} submit date:2611231730 done date:2611231731 stat:{stat} err:{err} text:",
        if stat == "DELIVRD" { "001" } else { "000" }
    );
    let mut b = DeliverSm::builder()
        .source_addr_ton(Ton::International)
        .source_addr_npi(Npi::Isdn)
        .source_addr(COctetString::from_string("33612345678".into()).unwrap())
        .dest_addr_ton(Ton::Alphanumeric)
        .dest_addr_npi(Npi::Unknown)
        .destination_addr(COctetString::from_string("ACME".into()).unwrap())
        .esm_class(EsmClass::from(0x04))
        .short_message(OctetString::from_vec(text.into_bytes()).unwrap());
    if let Some(id) = tlv_id {
        let state = match stat {
            "DELIVRD" => 2,
            "UNDELIV" => 5,
            _ => 7,
        };
        b = b
            .push_tlv(MessageDeliveryRequestTlvValue::ReceiptedMessageId(
                COctetString::from_string(id.into()).unwrap(),
            ))
            .push_tlv(MessageDeliveryRequestTlvValue::MessageState(
                MessageState::from(state),
            ));
    }
    b.build()
}
