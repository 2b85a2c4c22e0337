//! The SMPP listener (`[smpp] listen`): applications bind to stopgate as
//! ESMEs and submit through the same pipeline as `POST /v1/messages`.
//!
//! Per connection: a [`Link`] (writer task, our requests and their
//! deadlines) and a reader loop here that answers the ESME's requests.
//! Binds authenticate with `[tenants.smpp]` (constant-time comparison of the
//! password's hash, a delay on failure), and are limited per tenant in
//! number and in submits per second. Each `submit_sm`/`data_sm` is handled
//! in a task of its own, at most `[smpp] window` unanswered per bind. Parts
//! of a concatenated message are held per bind until the last arrives,
//! then sent as one message (footered once) and every part is answered
//! with the same message id. A message with `registered_delivery` carries
//! its receipt request on its record (`Callback::Smpp`); receipts reach the
//! receiver binds through the outbox and [`Receivers`]. docs/smpp.md has
//! the status codes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusmpp_core::command::owned::Command;
use rusmpp_core::pdus::owned::{
    BindReceiverResp, BindTransceiverResp, BindTransmitterResp, DataSmResp, Pdu, SubmitSmResp,
};
use rusmpp_core::types::owned::COctetString;
use rusmpp_core::values::InterfaceVersion;
use rusmpp_core::{CommandId, CommandStatus};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::link::{count_in, FrameReader, Labels, Link, ReadError};
use super::message::{category_of_service_type, decode_text, Message, ReceiptWanted};
use super::pdu::{self, FrameError};
use super::receipts::Receivers;
use super::session::{BindMode, Event, Role, Session};
use super::udh::{Added, Reassembler, Refusal};
use crate::config::{BlockedMode, SmppAccount, SmppConfig};
use crate::domain::MessageStatus as Status;
use crate::domain::{ApiKeyHash, Callback, Category, SmppReceipts, TenantId};
use crate::outbound::{ErrorCode, Outbound, RecipientResult, SendRequest};

/// What our `bind_*_resp` calls us.
const SYSTEM_ID: &str = "stopgate";

/// Everything the listener needs, built once at startup.
pub struct Front {
    accounts: Vec<Arc<SmppAccount>>,
    limiters: HashMap<TenantId, governor::DefaultDirectRateLimiter>,
    binds: Mutex<HashMap<TenantId, usize>>,
    outbound: Arc<Outbound>,
    receivers: Arc<Receivers>,
    /// Numbers this listener's connections.
    connections: AtomicU64,
    config: SmppConfig,
    max_body_chars: usize,
}

impl Front {
    pub fn new(
        accounts: &[SmppAccount],
        outbound: Arc<Outbound>,
        config: SmppConfig,
        max_body_chars: usize,
    ) -> Front {
        let limiters = accounts
            .iter()
            .map(|a| {
                let rate = std::num::NonZeroU32::new(a.submits_per_second)
                    .unwrap_or(std::num::NonZeroU32::MIN);
                (
                    a.tenant.id.clone(),
                    governor::RateLimiter::direct(governor::Quota::per_second(rate)),
                )
            })
            .collect();
        Front {
            accounts: accounts.iter().cloned().map(Arc::new).collect(),
            limiters,
            binds: Mutex::new(HashMap::new()),
            outbound,
            receivers: Arc::new(Receivers::default()),
            connections: AtomicU64::new(0),
            config,
            max_body_chars,
        }
    }

    /// The receiver binds, which the outbox dispatcher delivers receipts to.
    pub fn receivers(&self) -> Arc<Receivers> {
        self.receivers.clone()
    }

    /// Finds the account of a bind: `Err(ESME_RINVSYSID)` for an unknown
    /// system_id, `Err(ESME_RINVPASWD)` for a wrong password. Every account's
    /// hash is compared, in constant time, whatever matches.
    fn authenticate(
        &self,
        system_id: &str,
        password: &str,
    ) -> Result<Arc<SmppAccount>, CommandStatus> {
        let presented = ApiKeyHash::of_key(password);
        let mut known = false;
        let mut found = None;
        for a in &self.accounts {
            let id_matches = a.system_id == system_id;
            known |= id_matches;
            if a.password.matches(&presented) & id_matches {
                found = Some(a.clone());
            }
        }
        match (found, known) {
            (Some(a), _) => Ok(a),
            (None, true) => Err(CommandStatus::EsmeRinvpaswd),
            (None, false) => Err(CommandStatus::EsmeRinvsysid),
        }
    }

    /// Takes one of the tenant's bind slots, if it has one left.
    fn take_bind(self: &Arc<Self>, account: &SmppAccount, mode: BindMode) -> Option<BindSlot> {
        let mut binds = self.binds.lock().unwrap_or_else(|e| e.into_inner());
        let n = binds.entry(account.tenant.id.clone()).or_insert(0);
        if *n >= account.max_binds {
            return None;
        }
        *n += 1;
        metrics::gauge!("stopgate_smpp_binds", "tenant" => account.tenant.id.to_string(), "mode" => mode.as_str())
            .increment(1.0);
        Some(BindSlot {
            front: self.clone(),
            tenant: account.tenant.id.clone(),
            mode,
        })
    }
}

/// A bind's place in its tenant's count; given back on drop.
struct BindSlot {
    front: Arc<Front>,
    tenant: TenantId,
    mode: BindMode,
}

impl Drop for BindSlot {
    fn drop(&mut self) {
        let mut binds = self.front.binds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = binds.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
        }
        metrics::gauge!("stopgate_smpp_binds", "tenant" => self.tenant.to_string(), "mode" => self.mode.as_str())
            .decrement(1.0);
    }
}

/// The TLS acceptor for `[smpp] tls_cert`/`tls_key`; errors name the key.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, (&'static str, String)> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let cert_pem = crate::config::read_pem("smpp.tls_cert", cert)?;
    let key_pem = crate::config::read_pem("smpp.tls_key", key)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| ("smpp.tls_cert", format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(("smpp.tls_cert", "holds no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| ("smpp.tls_key", format!("not a PEM private key: {e}")))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ("smpp.tls_cert", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            (
                "smpp.tls_key",
                format!("does not match the certificate: {e}"),
            )
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections until `stop` fires, then asks every bind to unbind
/// and waits for the connections to end (the caller bounds the wait).
pub async fn serve(
    listener: TcpListener,
    front: Arc<Front>,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) {
    let connections = TaskTracker::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(front.config.max_connections));
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            p = slots.clone().acquire_owned() => p.expect("never closed"),
        };
        let (socket, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "smpp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = socket.set_nodelay(true);
        let front = front.clone();
        let stop = stop.child_token();
        let tls = tls.clone();
        connections.spawn(async move {
            let _permit = permit;
            metrics::gauge!("stopgate_smpp_connections").increment(1.0);
            match tls {
                None => connection(socket, peer, front, stop).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        Duration::from_millis(front.config.bind_timeout_ms),
                        acceptor.accept(socket),
                    );
                    match handshake.await {
                        Ok(Ok(tls)) => connection(tls, peer, front, stop).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "smpp TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "smpp TLS handshake timed out"),
                    }
                }
            }
            metrics::gauge!("stopgate_smpp_connections").decrement(1.0);
        });
    }
    connections.close();
    connections.wait().await;
}

/// How a submitted request is answered.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Submit,
    Data,
}

/// One request waiting for its answer (a part of a long message, or a whole one).
#[derive(Debug)]
struct Pending {
    sequence: u32,
    kind: Kind,
}

type PartKey = (String, String, u16, bool);

struct Bound {
    account: Arc<SmppAccount>,
    _slot: BindSlot,
}

struct Conn {
    front: Arc<Front>,
    link: Arc<Link>,
    /// This connection's number, in [`Receivers`].
    id: u64,
    peer: SocketAddr,
    bound: Option<Bound>,
    parts: Reassembler<PartKey, Pending>,
    /// Requests of the ESME not answered yet (held parts included).
    unanswered: Arc<AtomicUsize>,
    tasks: JoinSet<()>,
}

/// Why the reader loop ended.
enum End {
    /// The peer closed, or the stream is unusable: nothing more to say.
    Gone,
    /// Close after flushing what is queued (a nack, an unbind_resp).
    Close,
    /// Shutting down: unbind first.
    Unbind,
}

async fn connection<S>(io: S, peer: SocketAddr, front: Arc<Front>, stop: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (rd, wr) = tokio::io::split(io);
    let cfg = &front.config;
    let session = Session::new(Role::Smsc, cfg.session_timers(), cfg.window, Instant::now());
    let (link, writer) = Link::spawn(
        wr,
        session,
        Labels {
            side: "front",
            tenant: "-".into(),
        },
    );
    let mut conn = Conn {
        parts: Reassembler::new(
            cfg.max_pending_parts,
            Duration::from_secs(cfg.reassembly_timeout_secs),
        ),
        front: front.clone(),
        link: link.clone(),
        id: front.connections.fetch_add(1, Ordering::Relaxed),
        peer,
        bound: None,
        unanswered: Arc::new(AtomicUsize::new(0)),
        tasks: JoinSet::new(),
    };
    let mut reader = FrameReader::new(rd);
    let end = loop {
        let deadline = conn
            .parts
            .next_deadline()
            .map_or(link.next_deadline(), |d| d.min(link.next_deadline()));
        tokio::select! {
            _ = stop.cancelled() => break End::Unbind,
            _ = link.closed() => break End::Gone,
            Some(_) = conn.tasks.join_next(), if !conn.tasks.is_empty() => {}
            _ = tokio::time::sleep_until(deadline.into()) => {
                if let Some(end) = conn.on_timers().await {
                    break end;
                }
            }
            frame = reader.next() => match frame {
                Ok(Some((header, body))) => {
                    if let Some(end) = conn.on_frame(header, body).await {
                        break end;
                    }
                }
                Ok(None) => break End::Gone,
                Err(ReadError::Frame(FrameError::Length { length, sequence })) => {
                    tracing::info!(%peer, command_length = length, "smpp: command_length out of bounds, closing");
                    let _ = link
                        .send(pdu::generic_nack(CommandStatus::EsmeRinvcmdlen, sequence.unwrap_or(0)))
                        .await;
                    break End::Close;
                }
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "smpp: connection lost");
                    break End::Gone;
                }
            },
        }
    };
    conn.finish(end).await;
    let _ = writer.await;
}

impl Conn {
    async fn respond(&self, command: Command) {
        let _ = self.link.send(command).await;
    }

    async fn on_timers(&mut self) -> Option<End> {
        for p in self.parts.expire(Instant::now()) {
            // The rest of the message never came.
            self.answer_error(&p, CommandStatus::EsmeRsubmitfail).await;
        }
        for e in self.link.poll() {
            match e {
                Event::EnquireLinkDue => {
                    // Begun here, so the next look at the timers sees it out;
                    // its timeout comes back as an event of its own. Not in
                    // `tasks`, which an unbind waits for.
                    if let Ok(started) = self.link.begin(Pdu::EnquireLink) {
                        let link = self.link.clone();
                        tokio::spawn(async move {
                            let _ = link.complete(started).await;
                        });
                    }
                }
                Event::TimedOut {
                    command: CommandId::EnquireLink,
                    ..
                } => {
                    tracing::info!(peer = %self.peer, "smpp: no enquire_link_resp, closing");
                    return Some(End::Gone);
                }
                Event::TimedOut { .. } => {}
                Event::Inactive => {
                    tracing::info!(peer = %self.peer, "smpp: peer silent too long, closing");
                    return Some(End::Gone);
                }
                Event::BindTimeout => {
                    tracing::info!(peer = %self.peer, "smpp: no bind in time, closing");
                    return Some(End::Gone);
                }
            }
        }
        None
    }

    async fn on_frame(&mut self, header: pdu::Header, body: bytes::BytesMut) -> Option<End> {
        self.link.heard();
        let command = match pdu::decode(header, body) {
            Ok(c) => c,
            Err(_) => {
                metrics::counter!("stopgate_smpp_malformed_total", "side" => "front").increment(1);
                tracing::info!(peer = %self.peer, command_id = header.command_id, "smpp: malformed PDU, closing the session");
                self.respond(pdu::generic_nack(
                    CommandStatus::EsmeRinvcmdlen,
                    header.sequence_number,
                ))
                .await;
                return Some(End::Close);
            }
        };
        count_in(&self.link, command.id(), command.status());
        let sequence = command.sequence_number();
        if header.is_response() {
            if !self.link.on_response(command) {
                tracing::debug!(peer = %self.peer, sequence, "smpp: a response to nothing of ours, ignored");
            }
            return None;
        }
        if let CommandId::Other(_) = command.id() {
            self.respond(pdu::generic_nack(CommandStatus::EsmeRinvcmdid, sequence))
                .await;
            return None;
        }
        let allowed = self.link.with_session(|s| s.check_request(command.id()));
        if let Err(status) = allowed {
            let reply = match command.id() {
                // A command without a response of its own gets a generic_nack.
                CommandId::AlertNotification | CommandId::Outbind | CommandId::GenericNack => {
                    pdu::generic_nack(status, sequence)
                }
                _ if status == CommandStatus::EsmeRinvcmdid => pdu::generic_nack(status, sequence),
                id => pdu::bare_response(
                    CommandId::from(pdu::response_id(u32::from(id))),
                    status,
                    sequence,
                ),
            };
            self.respond(reply).await;
            return None;
        }
        match command.pdu() {
            Some(Pdu::BindTransmitter(b)) => {
                self.on_bind(
                    BindMode::Transmitter,
                    sequence,
                    b.system_id.as_str(),
                    b.password.as_str(),
                )
                .await
            }
            Some(Pdu::BindReceiver(b)) => {
                self.on_bind(
                    BindMode::Receiver,
                    sequence,
                    b.system_id.as_str(),
                    b.password.as_str(),
                )
                .await
            }
            Some(Pdu::BindTransceiver(b)) => {
                self.on_bind(
                    BindMode::Transceiver,
                    sequence,
                    b.system_id.as_str(),
                    b.password.as_str(),
                )
                .await
            }
            Some(Pdu::EnquireLink) => {
                self.respond(pdu::command(
                    CommandStatus::EsmeRok,
                    sequence,
                    Pdu::EnquireLinkResp,
                ))
                .await;
            }
            Some(Pdu::Unbind) => {
                self.link.with_session(|s| s.unbinding());
                self.settle().await;
                self.respond(pdu::command(
                    CommandStatus::EsmeRok,
                    sequence,
                    Pdu::UnbindResp,
                ))
                .await;
                return Some(End::Close);
            }
            Some(Pdu::SubmitSm(s)) => {
                self.on_message(sequence, Kind::Submit, Message::from_submit(s))
                    .await
            }
            Some(Pdu::DataSm(d)) => {
                self.on_message(sequence, Kind::Data, Message::from_data_sm(d))
                    .await
            }
            _ => {
                self.respond(pdu::generic_nack(CommandStatus::EsmeRinvcmdid, sequence))
                    .await;
            }
        }
        None
    }

    async fn on_bind(&mut self, mode: BindMode, sequence: u32, system_id: &str, password: &str) {
        let resp_id = match mode {
            BindMode::Transmitter => CommandId::BindTransmitterResp,
            BindMode::Receiver => CommandId::BindReceiverResp,
            BindMode::Transceiver => CommandId::BindTransceiverResp,
        };
        let account = match self.front.authenticate(system_id, password) {
            Ok(a) => a,
            Err(status) => {
                metrics::counter!("stopgate_smpp_bind_failures_total", "reason" => pdu::status_label(status))
                    .increment(1);
                tracing::info!(peer = %self.peer, status = %pdu::status_label(status), "smpp: bind refused: bad credentials");
                // Slows down guessing; this connection has nothing else to do.
                tokio::time::sleep(Duration::from_millis(
                    self.front.config.auth_failure_delay_ms,
                ))
                .await;
                self.respond(pdu::bare_response(resp_id, status, sequence))
                    .await;
                return;
            }
        };
        let Some(slot) = self.front.take_bind(&account, mode) else {
            tracing::info!(tenant = %account.tenant.id, "smpp: bind refused: the tenant has max_binds open");
            metrics::counter!("stopgate_smpp_bind_failures_total", "reason" => "max_binds")
                .increment(1);
            self.respond(pdu::bare_response(
                resp_id,
                CommandStatus::EsmeRbindfail,
                sequence,
            ))
            .await;
            return;
        };
        self.link.set_tenant(account.tenant.id.as_str());
        self.link.with_session(|s| s.bound(mode));
        let id = COctetString::from_string(SYSTEM_ID.into()).expect("a short ASCII id");
        let v = Some(InterfaceVersion::Smpp3_4);
        let body: Pdu = match mode {
            BindMode::Transmitter => BindTransmitterResp::new(id, v).into(),
            BindMode::Receiver => BindReceiverResp::new(id, v).into(),
            BindMode::Transceiver => BindTransceiverResp::new(id, v).into(),
        };
        self.respond(pdu::command(CommandStatus::EsmeRok, sequence, body))
            .await;
        tracing::info!(tenant = %account.tenant.id, mode = mode.as_str(), peer = %self.peer, "smpp: bound");
        if mode.receives() {
            self.front
                .receivers
                .add(&account.tenant.id, self.id, self.link.clone());
            // Receipts that waited for a bind need not wait for the next poll.
            self.front.outbound.outbox.wake();
        }
        self.bound = Some(Bound {
            account,
            _slot: slot,
        });
    }

    async fn answer_error(&self, p: &Pending, status: CommandStatus) {
        let left = self.unanswered.fetch_sub(1, Ordering::Relaxed) - 1;
        if let Some(b) = &self.bound {
            window_gauge(&b.account.tenant.id, left);
        }
        self.respond(pdu::bare_response(resp_id(p.kind), status, p.sequence))
            .await;
    }

    async fn on_message(&mut self, sequence: u32, kind: Kind, msg: Message) {
        let refuse = |status| pdu::bare_response(resp_id(kind), status, sequence);
        let Some(bound) = &self.bound else {
            self.respond(refuse(CommandStatus::EsmeRinvbndsts)).await;
            return;
        };
        let account = bound.account.clone();
        let tenant = &account.tenant.id;
        if self
            .front
            .limiters
            .get(tenant)
            .is_some_and(|l| l.check().is_err())
        {
            metrics::counter!("stopgate_smpp_throttled_total", "tenant" => tenant.to_string(), "reason" => "rate")
                .increment(1);
            self.respond(refuse(CommandStatus::EsmeRthrottled)).await;
            return;
        }
        if self.unanswered.load(Ordering::Relaxed) >= self.front.config.window {
            metrics::counter!("stopgate_smpp_throttled_total", "tenant" => tenant.to_string(), "reason" => "window")
                .increment(1);
            self.respond(refuse(CommandStatus::EsmeRthrottled)).await;
            return;
        }
        // Checked on every part, so a bad one is refused at once.
        let checked = msg
            .recipient()
            .and_then(|to| msg.sender().map(|from| (to, from)))
            .and_then(|_| msg.parts());
        let (concat, payload) = match checked {
            Ok(p) => p,
            Err(status) => {
                self.respond(refuse(status)).await;
                return;
            }
        };
        let in_use = self.unanswered.fetch_add(1, Ordering::Relaxed) + 1;
        window_gauge(tenant, in_use);
        let pending = Pending { sequence, kind };
        let Some(c) = concat else {
            self.dispatch(account, msg, payload, vec![pending]);
            return;
        };
        let key = (
            msg.source.addr.clone(),
            msg.dest.addr.clone(),
            c.reference,
            c.wide,
        );
        match self.parts.add(key, &c, payload, pending, Instant::now()) {
            Added::Held => {}
            Added::Complete { payload, tokens } => self.dispatch(account, msg, payload, tokens),
            Added::Refused(Refusal::Full, p) => {
                self.answer_error(&p, CommandStatus::EsmeRmsgqful).await
            }
            Added::Refused(Refusal::TotalMismatch, p) => {
                self.answer_error(&p, CommandStatus::EsmeRinvtlvval).await
            }
        }
    }

    /// Sends a whole message through the pipeline in a task of its own and
    /// answers every request it came in.
    fn dispatch(
        &mut self,
        account: Arc<SmppAccount>,
        msg: Message,
        payload: Vec<u8>,
        pending: Vec<Pending>,
    ) {
        let front = self.front.clone();
        let link = self.link.clone();
        let unanswered = self.unanswered.clone();
        self.tasks.spawn(async move {
            let answers = submit(&front, &account, &msg, &payload).await;
            let n = pending.len();
            for p in &pending {
                let reply = match &answers.message_id {
                    Some(id) if answers.status == CommandStatus::EsmeRok => accepted(p, id),
                    _ => pdu::bare_response(resp_id(p.kind), answers.status, p.sequence),
                };
                let _ = link.send(reply).await;
            }
            let left = unanswered.fetch_sub(n, Ordering::Relaxed) - n;
            window_gauge(&account.tenant.id, left);
        });
    }

    /// Waits for every request in progress to be answered, and answers the
    /// parts still waiting for their message.
    async fn settle(&mut self) {
        for p in self.parts.drain() {
            self.answer_error(&p, CommandStatus::EsmeRsubmitfail).await;
        }
        while self.tasks.join_next().await.is_some() {}
    }

    async fn finish(mut self, end: End) {
        match end {
            End::Gone => {
                self.link.close();
                self.parts.drain();
            }
            End::Close => self.settle().await,
            End::Unbind => {
                self.settle().await;
                if self.bound.is_some() {
                    self.link.with_session(|s| s.unbinding());
                    let wait =
                        Duration::from_millis(self.front.config.response_timeout_ms.min(2_000));
                    let _ = tokio::time::timeout(wait, self.link.request(Pdu::Unbind)).await;
                }
            }
        }
        self.link.close();
        if let Some(b) = &self.bound {
            // Receipts on their way over this bind fail and stay in the outbox.
            self.front.receivers.remove(&b.account.tenant.id, self.id);
        }
        // A message half-way through the pipeline is not cut off, even when
        // its answer can no longer be written.
        while self.tasks.join_next().await.is_some() {}
        if let Some(b) = &self.bound {
            tracing::info!(tenant = %b.account.tenant.id, peer = %self.peer, "smpp: unbound");
        }
    }
}

/// The application's requests unanswered on the bind that changed last.
fn window_gauge(tenant: &TenantId, n: usize) {
    metrics::gauge!("stopgate_smpp_window_in_use", "side" => "front", "tenant" => tenant.to_string(), "direction" => "in")
        .set(n as f64);
}

fn resp_id(kind: Kind) -> CommandId {
    match kind {
        Kind::Submit => CommandId::SubmitSmResp,
        Kind::Data => CommandId::DataSmResp,
    }
}

fn accepted(p: &Pending, id: &str) -> Command {
    let id = COctetString::from_string(id.to_string()).unwrap_or_else(|_| COctetString::empty());
    let body: Pdu = match p.kind {
        Kind::Submit => SubmitSmResp::new(id, Vec::new()).into(),
        Kind::Data => DataSmResp::new(id, Vec::new()).into(),
    };
    pdu::command(CommandStatus::EsmeRok, p.sequence, body)
}

/// How a whole message is answered.
struct Answers {
    status: CommandStatus,
    message_id: Option<String>,
}

impl Answers {
    fn refused(status: CommandStatus) -> Answers {
        Answers {
            status,
            message_id: None,
        }
    }
}

/// The status that refuses a marketing message to an opted-out recipient:
/// `ESME_RX_P_APPN`, the ESME-side "permanent application error", which
/// clients treat as final (no retry), unlike throttling or system errors.
pub const BLOCKED_STATUS: CommandStatus = CommandStatus::EsmeRxPAppn;

async fn submit(front: &Front, account: &SmppAccount, msg: &Message, payload: &[u8]) -> Answers {
    let body = match decode_text(msg.data_coding, payload) {
        Ok(b) => b,
        Err(status) => return Answers::refused(status),
    };
    if body.trim().is_empty() || body.chars().count() > front.max_body_chars {
        return Answers::refused(CommandStatus::EsmeRinvmsglen);
    }
    let (Ok(to), Ok(from)) = (msg.recipient(), msg.sender()) else {
        return Answers::refused(CommandStatus::EsmeRinvdstadr);
    };
    let category = category_of_service_type(&msg.service_type)
        .or_else(|| account.categories.get(msg.source.addr.trim()).copied())
        .unwrap_or(Category::Marketing);
    let wanted = msg.receipt_wanted();
    // Kept on the message's record, so that every later status change
    // (a delivery report from any provider path) finds its way back.
    let callback = (wanted != ReceiptWanted::No).then(|| {
        Callback::Smpp(SmppReceipts {
            failures_only: wanted == ReceiptWanted::OnFailure,
            unsent: account.blocked == BlockedMode::Receipt,
            ton: msg.source.ton,
            npi: msg.source.npi,
            addr: msg.source.addr.clone(),
        })
    });
    let request = SendRequest {
        tenant: account.tenant.clone(),
        to: vec![to],
        from,
        body,
        category,
        campaign: None,
        messaging_service: None,
        callback,
        send_at: None,
        list: crate::domain::ConsentList::marketing(),
    };
    let result = front
        .outbound
        .send(&request)
        .await
        .pop()
        .expect("one recipient gives one result");
    let status = outcome(&result, account.blocked);
    tracing::info!(
        tenant = %account.tenant.id,
        category = %category,
        status = result.status.as_str(),
        smpp_status = %pdu::status_label(status),
        "smpp submit handled"
    );
    let message_id = match status {
        CommandStatus::EsmeRok => Some(result.id.as_str().to_string()),
        _ => None,
    };
    Answers { status, message_id }
}

/// The `command_status` of a result. With `blocked = "receipt"` the
/// permanent outcomes are accepted instead, and reported by the receipt
/// the record's `Callback::Smpp` asks for (`SmppReceipts::wants` decides
/// alike), whose `err` is this code in decimal (`receipts::stat_of`).
fn outcome(r: &RecipientResult, blocked: BlockedMode) -> CommandStatus {
    let code = r.error.as_ref().map(|e| e.code);
    let (status, permanent) = match (r.status, code) {
        // Held for its send window: accepted, its outcome not known yet.
        (Status::Sent | Status::Scheduled, _) => return CommandStatus::EsmeRok,
        (Status::Blocked, _) => (BLOCKED_STATUS, true),
        // Permanent, like an opt-out: not the address's fault.
        (Status::Rejected, Some(ErrorCode::OutsideSendWindow | ErrorCode::FrequencyCapped)) => {
            (BLOCKED_STATUS, true)
        }
        (Status::Rejected, _) => (CommandStatus::EsmeRinvdstadr, true),
        (_, Some(ErrorCode::UpstreamRejected)) => (CommandStatus::EsmeRsubmitfail, true),
        (_, Some(ErrorCode::UpstreamRateLimited)) => (CommandStatus::EsmeRthrottled, false),
        // Temporary: the ESME retries on these, so they are never hidden in a receipt.
        _ => (CommandStatus::EsmeRsyserr, false),
    };
    if permanent && blocked == BlockedMode::Receipt {
        CommandStatus::EsmeRok
    } else {
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::segments::Encoding;
    use crate::outbound::Failure;

    fn result(status: Status, code: Option<ErrorCode>) -> RecipientResult {
        RecipientResult {
            to: "+33612345678".into(),
            status,
            id: crate::domain::MessageId::generate(),
            forwarded: false,
            country: None,
            body: String::new(),
            encoding: Encoding::Gsm7,
            segments: 1,
            optout: None,
            provider_id: None,
            deliver_after: None,
            error: code.map(|code| Failure {
                code,
                message: String::new(),
                provider_code: None,
                retry_after: None,
            }),
        }
    }

    #[test]
    fn outcomes_by_mode() {
        let ok = CommandStatus::EsmeRok;
        assert_eq!(
            outcome(&result(Status::Sent, None), BlockedMode::Refuse),
            ok
        );
        let blocked = result(Status::Blocked, Some(ErrorCode::RecipientOptedOut));
        assert_eq!(u32::from(outcome(&blocked, BlockedMode::Refuse)), 0x65);
        assert_eq!(outcome(&blocked, BlockedMode::Receipt), ok);
        let invalid = result(Status::Rejected, Some(ErrorCode::InvalidNumber));
        assert_eq!(
            outcome(&invalid, BlockedMode::Refuse),
            CommandStatus::EsmeRinvdstadr
        );
        assert_eq!(outcome(&invalid, BlockedMode::Receipt), ok);
        let refused = result(Status::Failed, Some(ErrorCode::UpstreamRejected));
        assert_eq!(
            outcome(&refused, BlockedMode::Refuse),
            CommandStatus::EsmeRsubmitfail
        );
        assert_eq!(outcome(&refused, BlockedMode::Receipt), ok);
        for temporary in [
            ErrorCode::UpstreamUnavailable,
            ErrorCode::StoreUnavailable,
            ErrorCode::UpstreamTimeout,
            ErrorCode::UpstreamRateLimited,
        ] {
            let s = outcome(
                &result(Status::Failed, Some(temporary)),
                BlockedMode::Receipt,
            );
            assert_ne!(s, ok, "{temporary:?} is never accepted");
        }
    }

    /// What the front accepts without sending is exactly what the record's
    /// receipt request reports, with the err the refusal would have carried.
    #[test]
    fn accepted_unsent_outcomes_are_the_ones_a_receipt_reports() {
        let codes = [
            None,
            Some(ErrorCode::RecipientOptedOut),
            Some(ErrorCode::InvalidNumber),
            Some(ErrorCode::UpstreamRejected),
            Some(ErrorCode::UpstreamRateLimited),
            Some(ErrorCode::UpstreamUnavailable),
            Some(ErrorCode::UpstreamTimeout),
            Some(ErrorCode::UpstreamError),
            Some(ErrorCode::StoreUnavailable),
        ];
        let wants = SmppReceipts {
            failures_only: false,
            unsent: true,
            ton: 5,
            npi: 0,
            addr: "ACME".into(),
        };
        for status in [Status::Blocked, Status::Rejected, Status::Failed] {
            for code in codes {
                let r = result(status, code);
                let error = code.map(|c| c.as_str());
                let accepted = outcome(&r, BlockedMode::Receipt) == CommandStatus::EsmeRok;
                assert_eq!(
                    accepted,
                    wants.wants(true, status, error),
                    "{status} {code:?}"
                );
                if accepted {
                    let refused = outcome(&r, BlockedMode::Refuse);
                    let (_, err) = super::super::receipts::stat_of(status, error).unwrap();
                    assert_eq!(u32::from(refused), u32::from(err), "{status} {code:?}");
                }
            }
        }
    }
}
