//! The SMPP upstream (`[upstream] kind = "smpp"`, `[upstream.smpp]`):
//! stopgate binds to the provider's SMSC as an ESME and keeps the bind up.
//!
//! - **Sessions.** One transceiver, or a transmitter and a receiver
//!   (`bind = "transmitter_receiver"`), each on [`smpp::session`] (Role::Esme)
//!   and [`smpp::link`], optionally over TLS. A lost or refused bind is
//!   bound again after a backoff (`reconnect_min_ms` doubling to
//!   `reconnect_max_ms`); enquire_link after `enquire_link_secs` of silence;
//!   on shutdown the sessions unbind.
//! - **Sending** ([`Provider::send`]): the text as `submit_sm` parts
//!   ([`smpp::esme::parts`]: GSM 03.38 when it fits, else UCS-2; UDH parts
//!   beyond one), at most `window` unanswered and `messages_per_second`
//!   PDUs a second; answers classified into `ProviderError` causes behind
//!   the guard and breaker (throttling → rate limited). A `submit_sm` whose
//!   session drops before its answer is sent once more on the next bind;
//!   one already answered is never sent again. The provider id is the
//!   SMSC's message id (one per part, comma-separated).
//! - **Receiving** (`deliver_sm`, `data_sm`): receipts move the message's
//!   record through [`Reports`] (the id matched as given, then in its hex or
//!   decimal form); replies go to [`Inbound::handle_mo`] exactly as
//!   `/v1/inbound`'s do. `deliver_sm_resp` is written once that is durable:
//!   `ESME_ROK`; on a store error `ESME_RX_T_APPN`, so the SMSC delivers it
//!   again; for what stopgate can never act on (not a number, not one of its
//!   short codes, unreadable) `ESME_RX_P_APPN`.
//!
//! Logs name the session and the SMSC's host, never an address, a message
//! or the password.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::Rng;
use rusmpp_core::command::owned::Command;
use rusmpp_core::pdus::owned::{
    BindReceiver, BindTransceiver, BindTransmitter, DataSmResp, DeliverSmResp, Pdu, SubmitSm,
};
use rusmpp_core::types::owned::{COctetString, OctetString};
use rusmpp_core::values::owned::ServiceType;
use rusmpp_core::values::{DataCoding, EsmClass, InterfaceVersion, Npi, RegisteredDelivery, Ton};
use rusmpp_core::{CommandId, CommandStatus};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use super::{Accepted, OutboundSms, Provider, ProviderError};
use crate::config::{SmppBindMode, UpstreamConfig, UpstreamSmppConfig};
use crate::inbound::{Inbound, MoError, ReplyVia};
use crate::reports::{Report, Reports};
use crate::smpp::esme::{self, Submitted};
use crate::smpp::link::{count_in, FrameReader, Labels, Link, LinkError, ReadError};
use crate::smpp::message::{decode_text, Address, Message};
use crate::smpp::pdu::{self, FrameError};
use crate::smpp::session::{BindMode, Event, Role, Session, Timers};
use crate::smpp::udh::{Added, Reassembler};

/// `Provider::name`, and the provider of the records it sends.
const NAME: &str = "smpp";
/// Receipts and replies handled at once per session; the reader waits beyond.
const INCOMING: usize = 64;
/// How long a `submit_sm`'s other parts of a reply may take to arrive.
const REASSEMBLY: Duration = Duration::from_secs(60);
const MAX_HELD_PARTS: usize = 256;
/// How long a receipt for a message stopgate does not know yet waits for
/// its record (written once the whole request was forwarded) before it is
/// answered as unknown.
const RECORD_PATIENCE: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(300),
    Duration::from_millis(600),
    Duration::from_millis(1000),
];
/// How long an unbind waits for its `unbind_resp`.
const UNBIND_WAIT: Duration = Duration::from_secs(2);

/// The bound session that submits, and its window.
struct Bound {
    link: Arc<Link>,
    window: Semaphore,
}

struct Shared {
    cfg: UpstreamSmppConfig,
    /// How long a `submit_sm` waits for its answer.
    response_timeout: Duration,
    /// Bounds the connect, the TLS handshake and the bind, and how long a
    /// message waits for a bind.
    connect_timeout: Duration,
    tls: Option<(TlsConnector, rustls_pki_types::ServerName<'static>)>,
    current: watch::Sender<Option<Arc<Bound>>>,
    limiter: Option<governor::DefaultDirectRateLimiter>,
    reference: AtomicU32,
}

/// The adapter: [`Provider`] over the SMSC session that transmits.
pub struct SmppProvider {
    shared: Arc<Shared>,
}

/// The sessions, started by the app once the services that take what the
/// SMSC delivers exist.
pub struct Sessions {
    shared: Arc<Shared>,
}

/// Where receipts and replies from the SMSC go.
pub struct Deliveries {
    pub reports: Arc<Reports>,
    pub inbound: Arc<Inbound>,
}

/// The TLS connector for `[upstream.smpp] tls`; errors name the key.
pub fn tls_connector(
    c: &UpstreamSmppConfig,
) -> Result<(TlsConnector, rustls_pki_types::ServerName<'static>), (&'static str, String)> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    match &c.tls_ca {
        Some(path) => {
            let pem = crate::config::read_pem("upstream.smpp.tls_ca", path)?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| ("upstream.smpp.tls_ca", format!("not PEM certificates: {e}")))?;
            if certs.is_empty() {
                return Err(("upstream.smpp.tls_ca", "holds no certificate".into()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| ("upstream.smpp.tls_ca", e.to_string()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let name = c.tls_server_name.clone().unwrap_or_else(|| c.host.clone());
    let server_name = rustls_pki_types::ServerName::try_from(name.clone()).map_err(|_| {
        (
            "upstream.smpp.tls_server_name",
            format!("{name:?} is not a DNS name or an IP address"),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ("upstream.smpp.tls", e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((TlsConnector::from(Arc::new(config)), server_name))
}

impl SmppProvider {
    pub fn new(cfg: &UpstreamConfig) -> anyhow::Result<(SmppProvider, Sessions)> {
        let c = cfg.smpp.clone();
        let tls = if c.tls {
            Some(tls_connector(&c).map_err(|(k, m)| anyhow::anyhow!("{k}: {m}"))?)
        } else {
            None
        };
        let limiter = std::num::NonZeroU32::new(c.messages_per_second)
            .map(|n| governor::RateLimiter::direct(governor::Quota::per_second(n)));
        let shared = Arc::new(Shared {
            response_timeout: Duration::from_millis(cfg.timeout_ms),
            connect_timeout: Duration::from_millis(cfg.connect_timeout_ms),
            tls,
            current: watch::Sender::new(None),
            limiter,
            reference: AtomicU32::new(rand::rng().random()),
            cfg: c,
        });
        Ok((
            SmppProvider {
                shared: shared.clone(),
            },
            Sessions { shared },
        ))
    }
}

impl Shared {
    /// The transmitting session once it is bound, waiting for it up to
    /// `connect_timeout`.
    async fn bound(&self) -> Result<Arc<Bound>, ProviderError> {
        let mut rx = self.current.subscribe();
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        loop {
            if let Some(b) = rx.borrow_and_update().clone() {
                if !b.link.is_closed() {
                    return Ok(b);
                }
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return Err(ProviderError::Unavailable("not bound to the SMSC".into()));
            }
        }
    }

    /// One `submit_sm`: the SMSC's message id, or why not. A session that
    /// drops with it unanswered sends it once more on the next bind.
    async fn submit(&self, pdu: Pdu) -> Result<String, ProviderError> {
        if let Some(l) = &self.limiter {
            if tokio::time::timeout(self.response_timeout, l.until_ready())
                .await
                .is_err()
            {
                return Err(ProviderError::RateLimited { retry_after: None });
            }
        }
        let mut retried = false;
        loop {
            let bound = self.bound().await?;
            let Ok(Ok(_permit)) =
                tokio::time::timeout(self.response_timeout, bound.window.acquire()).await
            else {
                return Err(ProviderError::Timeout);
            };
            let lost = match bound.link.begin(pdu.clone()) {
                Ok(started) => match bound.link.complete(started).await {
                    Ok(resp) => return answer(&resp),
                    Err(LinkError::Timeout) => return Err(ProviderError::Timeout),
                    Err(e) => e,
                },
                // Closed between the look and the write: not sent.
                Err(e) => e,
            };
            if retried {
                return Err(ProviderError::Unavailable(format!(
                    "the SMSC session was lost twice: {lost}"
                )));
            }
            retried = true;
            metrics::counter!("stopgate_smpp_upstream_resubmitted_total").increment(1);
            tracing::info!(host = %self.cfg.host, "smpp upstream: session lost with a submit_sm unanswered; sending it again on the next bind");
        }
    }

    fn next_reference(&self) -> u8 {
        self.reference.fetch_add(1, Ordering::Relaxed) as u8
    }
}

/// A `submit_sm_resp` (or a `generic_nack` in its place) as a result.
fn answer(resp: &Command) -> Result<String, ProviderError> {
    if resp.id() == CommandId::GenericNack {
        return Err(ProviderError::Protocol(format!(
            "generic_nack {} to a submit_sm",
            pdu::status_label(resp.status())
        )));
    }
    let id = match resp.pdu() {
        Some(Pdu::SubmitSmResp(r)) => r.message_id().as_str(),
        _ => "",
    };
    match esme::classify(resp.status(), id) {
        Submitted::Accepted(id) => Ok(id),
        Submitted::Throttled => {
            metrics::counter!("stopgate_smpp_throttled_total", "tenant" => "upstream", "reason" => "smsc")
                .increment(1);
            Err(ProviderError::RateLimited { retry_after: None })
        }
        Submitted::Temporary(s) => Err(ProviderError::Unavailable(format!(
            "submit_sm_resp {}",
            pdu::status_label(s)
        ))),
        Submitted::Rejected(s) => Err(ProviderError::Rejected {
            code: pdu::status_label(s),
            message: format!("submit_sm_resp {s:?}"),
        }),
    }
}

fn c_string<const N: usize>(s: &str) -> Result<COctetString<1, N>, ProviderError> {
    COctetString::from_string(s.to_string()).map_err(|_| ProviderError::Rejected {
        code: "address".into(),
        message: "an address does not fit in a submit_sm".into(),
    })
}

#[async_trait]
impl Provider for SmppProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ProviderError> {
        let s = &self.shared;
        let parts = esme::parts(&sms.body, sms.encoding, s.next_reference()).ok_or_else(|| {
            ProviderError::Rejected {
                code: "too_long".into(),
                message: "the text needs more than 255 parts".into(),
            }
        })?;
        let from = Address::for_sender(&sms.from);
        let source: COctetString<1, 21> = c_string(&from.addr)?;
        let dest: COctetString<1, 21> = c_string(sms.to.as_str().trim_start_matches('+'))?;
        let pdus: Vec<Pdu> = parts
            .into_iter()
            .map(|p| {
                let sm = SubmitSm::builder()
                    .service_type(ServiceType::null())
                    .source_addr_ton(Ton::from(from.ton))
                    .source_addr_npi(Npi::from(from.npi))
                    .source_addr(source.clone())
                    .dest_addr_ton(Ton::International)
                    .dest_addr_npi(Npi::Isdn)
                    .destination_addr(dest.clone())
                    .esm_class(EsmClass::from(p.esm_class))
                    // A receipt for every outcome: it moves the message's record.
                    .registered_delivery(RegisteredDelivery::from(1))
                    .data_coding(DataCoding::from(p.data_coding))
                    .short_message(
                        OctetString::from_vec(p.short_message).expect("a part fits in 255 octets"),
                    )
                    .build();
                Pdu::SubmitSm(sm)
            })
            .collect();
        // Parts go out at once: the handset reassembles them in any order.
        let ids = futures::future::join_all(pdus.into_iter().map(|p| s.submit(p))).await;
        let ids: Vec<String> = ids.into_iter().collect::<Result<_, _>>()?;
        Ok(Accepted {
            provider_id: ids.join(","),
        })
    }
}

impl Sessions {
    /// Binds and keeps the sessions bound until `stop`, then unbinds them.
    pub fn start(
        self,
        deliveries: Arc<Deliveries>,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let shared = self.shared;
        tokio::spawn(async move {
            let modes: &[(BindMode, bool)] = match shared.cfg.bind {
                SmppBindMode::Transceiver => &[(BindMode::Transceiver, true)],
                SmppBindMode::TransmitterReceiver => {
                    &[(BindMode::Transmitter, true), (BindMode::Receiver, false)]
                }
            };
            let mut sessions = JoinSet::new();
            for &(mode, transmits) in modes {
                sessions.spawn(keep_bound(
                    shared.clone(),
                    mode,
                    transmits,
                    deliveries.clone(),
                    stop.clone(),
                ));
            }
            while sessions.join_next().await.is_some() {}
        })
    }
}

/// Binds again and again (with backoff) until `stop`.
async fn keep_bound(
    shared: Arc<Shared>,
    mode: BindMode,
    transmits: bool,
    deliveries: Arc<Deliveries>,
    stop: CancellationToken,
) {
    let cfg = &shared.cfg;
    let mut wait = cfg.reconnect_min_ms;
    loop {
        let ended = session(&shared, mode, transmits, &deliveries, &stop).await;
        metrics::gauge!("stopgate_smpp_upstream_bound", "bind" => mode.as_str()).set(0.0);
        match ended {
            Ok(()) if stop.is_cancelled() => break,
            Ok(()) => {
                tracing::warn!(host = %cfg.host, bind = mode.as_str(), "smpp upstream: session ended; binding again");
                wait = cfg.reconnect_min_ms;
            }
            Err(why) => {
                metrics::counter!("stopgate_smpp_upstream_bind_failures_total", "bind" => mode.as_str())
                    .increment(1);
                tracing::warn!(host = %cfg.host, bind = mode.as_str(), error = %why, retry_ms = wait, "smpp upstream: no session");
            }
        }
        // Jitter, so that nodes (or sessions) do not reconnect in step.
        let pause = wait / 2 + rand::rng().random_range(0..=wait / 2);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(pause)) => {}
        }
        wait = (wait * 2).min(cfg.reconnect_max_ms);
    }
}

/// Connects, binds and serves one session; `Ok` once a bound session
/// ended, `Err` if it never bound.
async fn session(
    shared: &Arc<Shared>,
    mode: BindMode,
    transmits: bool,
    deliveries: &Arc<Deliveries>,
    stop: &CancellationToken,
) -> Result<(), String> {
    let cfg = &shared.cfg;
    let connect = TcpStream::connect((cfg.host.as_str(), cfg.port));
    let tcp = tokio::select! {
        _ = stop.cancelled() => return Ok(()),
        r = tokio::time::timeout(shared.connect_timeout, connect) => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(format!("connect: {e}")),
            Err(_) => return Err("connect: timed out".into()),
        },
    };
    let _ = tcp.set_nodelay(true);
    match &shared.tls {
        None => run(tcp, shared, mode, transmits, deliveries, stop).await,
        Some((connector, name)) => {
            let tls =
                tokio::time::timeout(shared.connect_timeout, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| "TLS handshake: timed out".to_string())?
                    .map_err(|e| format!("TLS handshake: {e}"))?;
            run(tls, shared, mode, transmits, deliveries, stop).await
        }
    }
}

fn bind_pdu(cfg: &UpstreamSmppConfig, mode: BindMode) -> Result<Pdu, String> {
    let bad = |k: &str| format!("upstream.smpp.{k} does not fit in a bind");
    let system_id =
        COctetString::from_string(cfg.system_id.clone()).map_err(|_| bad("system_id"))?;
    let password = COctetString::from_string(cfg.password.expose().to_string())
        .map_err(|_| bad("password"))?;
    let system_type =
        COctetString::from_string(cfg.system_type.clone()).map_err(|_| bad("system_type"))?;
    let v = InterfaceVersion::Smpp3_4;
    let range = COctetString::empty();
    Ok(match mode {
        BindMode::Transmitter => BindTransmitter::new(
            system_id,
            password,
            system_type,
            v,
            Ton::Unknown,
            Npi::Unknown,
            range,
        )
        .into(),
        BindMode::Receiver => BindReceiver::new(
            system_id,
            password,
            system_type,
            v,
            Ton::Unknown,
            Npi::Unknown,
            range,
        )
        .into(),
        BindMode::Transceiver => BindTransceiver::new(
            system_id,
            password,
            system_type,
            v,
            Ton::Unknown,
            Npi::Unknown,
            range,
        )
        .into(),
    })
}

/// A reply's part held for the rest of its message.
#[derive(Debug)]
struct HeldPart {
    sequence: u32,
    data_sm: bool,
}

type PartKey = (String, String, u16, bool);

async fn run<S>(
    io: S,
    shared: &Arc<Shared>,
    mode: BindMode,
    transmits: bool,
    deliveries: &Arc<Deliveries>,
    stop: &CancellationToken,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cfg = &shared.cfg;
    let (rd, wr) = tokio::io::split(io);
    let timers = Timers {
        response: shared.response_timeout,
        enquire_link: Duration::from_secs(cfg.enquire_link_secs),
        inactivity: Duration::from_secs(cfg.inactivity_secs),
        bind: shared.connect_timeout,
    };
    // Room beyond the submit window for an enquire_link and the unbind.
    let session = Session::new(Role::Esme, timers, cfg.window + 2, Instant::now());
    let (link, writer) = Link::spawn(
        wr,
        session,
        Labels {
            side: "upstream",
            tenant: mode.as_str().into(),
        },
    );
    let mut reader = FrameReader::new(rd);
    let bound = bind(&link, &mut reader, cfg, mode, shared.connect_timeout).await;
    if let Err(e) = bound {
        link.close();
        let _ = writer.await;
        return Err(e);
    }
    link.with_session(|s| s.bound(mode));
    metrics::gauge!("stopgate_smpp_upstream_bound", "bind" => mode.as_str()).set(1.0);
    metrics::counter!("stopgate_smpp_upstream_binds_total", "bind" => mode.as_str()).increment(1);
    tracing::info!(host = %cfg.host, bind = mode.as_str(), tls = shared.tls.is_some(), "smpp upstream: bound");
    if transmits {
        shared.current.send_replace(Some(Arc::new(Bound {
            link: link.clone(),
            window: Semaphore::new(cfg.window),
        })));
    }
    let mut conn = Incoming {
        link: link.clone(),
        deliveries: deliveries.clone(),
        tasks: JoinSet::new(),
        permits: Arc::new(Semaphore::new(INCOMING)),
        parts: Reassembler::new(MAX_HELD_PARTS, REASSEMBLY),
    };
    let mut unbind: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> = None;
    loop {
        let deadline = conn
            .parts
            .next_deadline()
            .map_or(link.next_deadline(), |d| d.min(link.next_deadline()));
        tokio::select! {
            _ = stop.cancelled(), if unbind.is_none() => {
                // No new submit on this session; the ones in flight are answered first.
                if transmits {
                    shared.current.send_replace(None);
                }
                link.with_session(|s| s.unbinding());
                let l = link.clone();
                unbind = Some(Box::pin(async move {
                    let _ = tokio::time::timeout(UNBIND_WAIT, l.request(Pdu::Unbind)).await;
                }));
            }
            _ = async { unbind.as_mut().expect("guarded").await }, if unbind.is_some() => {
                tracing::info!(host = %cfg.host, bind = mode.as_str(), "smpp upstream: unbound");
                break;
            }
            _ = link.closed() => break,
            Some(_) = conn.tasks.join_next(), if !conn.tasks.is_empty() => {}
            _ = tokio::time::sleep_until(deadline.into()) => {
                if conn.on_timers().await {
                    break;
                }
            }
            frame = reader.next() => match frame {
                Ok(Some((header, body))) => {
                    if conn.on_frame(header, body).await {
                        break;
                    }
                }
                Ok(None) => break,
                Err(ReadError::Frame(FrameError::Length { length, .. })) => {
                    tracing::warn!(host = %cfg.host, command_length = length, "smpp upstream: the SMSC sent a bad command_length; dropping the session");
                    break;
                }
                Err(e) => {
                    tracing::info!(host = %cfg.host, error = %e, "smpp upstream: connection lost");
                    break;
                }
            },
        }
    }
    if transmits {
        shared.current.send_if_modified(|c| match c {
            Some(b) if Arc::ptr_eq(&b.link, &link) => {
                *c = None;
                true
            }
            _ => false,
        });
    }
    // Receipts and replies under way finish (their store writes stand);
    // an answer that can no longer be written makes the SMSC deliver again.
    while conn.tasks.join_next().await.is_some() {}
    link.close();
    let _ = writer.await;
    Ok(())
}

/// Sends the bind and reads until its answer.
async fn bind<R: AsyncRead + Unpin>(
    link: &Arc<Link>,
    reader: &mut FrameReader<R>,
    cfg: &UpstreamSmppConfig,
    mode: BindMode,
    within: Duration,
) -> Result<(), String> {
    let started = link
        .begin(bind_pdu(cfg, mode)?)
        .map_err(|e| e.to_string())?;
    let answer = link.complete(started);
    tokio::pin!(answer);
    let deadline = tokio::time::Instant::now() + within;
    let resp = loop {
        tokio::select! {
            r = &mut answer => break r.map_err(|e| format!("bind: {e}"))?,
            _ = tokio::time::sleep_until(deadline) => return Err("bind: no answer in time".into()),
            frame = reader.next() => match frame {
                Ok(Some((header, body))) => {
                    let command = pdu::decode(header, body).map_err(|e| e.to_string())?;
                    count_in(link, command.id(), command.status());
                    if header.is_response() {
                        link.on_response(command);
                    } else {
                        let _ = link
                            .send(pdu::generic_nack(CommandStatus::EsmeRinvbndsts, command.sequence_number()))
                            .await;
                    }
                }
                Ok(None) => return Err("bind: the SMSC closed the connection".into()),
                Err(e) => return Err(format!("bind: {e}")),
            },
        }
    };
    match resp.status() {
        CommandStatus::EsmeRok => Ok(()),
        s => Err(format!(
            "bind refused: {} ({s:?}); check upstream.smpp.system_id and password",
            pdu::status_label(s)
        )),
    }
}

/// The receiving half of a bound session.
struct Incoming {
    link: Arc<Link>,
    deliveries: Arc<Deliveries>,
    tasks: JoinSet<()>,
    permits: Arc<Semaphore>,
    parts: Reassembler<PartKey, HeldPart>,
}

impl Incoming {
    /// Runs the timers; `true` if the session must end.
    async fn on_timers(&mut self) -> bool {
        for p in self.parts.expire(Instant::now()) {
            // The rest of the reply never came: the SMSC may deliver it again.
            self.answer(p.sequence, p.data_sm, CommandStatus::EsmeRxTAppn)
                .await;
        }
        for e in self.link.poll() {
            match e {
                Event::EnquireLinkDue => {
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
                    tracing::warn!("smpp upstream: no enquire_link_resp; dropping the session");
                    return true;
                }
                Event::TimedOut { .. } | Event::BindTimeout => {}
                Event::Inactive => {
                    tracing::warn!("smpp upstream: the SMSC is silent; dropping the session");
                    return true;
                }
            }
        }
        false
    }

    async fn answer(&self, sequence: u32, data_sm: bool, status: CommandStatus) {
        let _ = self.link.send(response(sequence, data_sm, status)).await;
    }

    /// A PDU from the SMSC; `true` if the session must end.
    async fn on_frame(&mut self, header: pdu::Header, body: bytes::BytesMut) -> bool {
        self.link.heard();
        let command = match pdu::decode(header, body) {
            Ok(c) => c,
            Err(_) => {
                metrics::counter!("stopgate_smpp_malformed_total", "side" => "upstream")
                    .increment(1);
                tracing::warn!(
                    command_id = header.command_id,
                    "smpp upstream: a PDU that does not decode; dropping the session"
                );
                let _ = self
                    .link
                    .send(pdu::generic_nack(
                        CommandStatus::EsmeRinvcmdlen,
                        header.sequence_number,
                    ))
                    .await;
                return true;
            }
        };
        count_in(&self.link, command.id(), command.status());
        let sequence = command.sequence_number();
        if header.is_response() {
            if !self.link.on_response(command) {
                tracing::debug!(sequence, "smpp upstream: a response to nothing of ours");
            }
            return false;
        }
        if let Err(status) = self.link.with_session(|s| s.check_request(command.id())) {
            let reply = match command.id() {
                CommandId::DeliverSm | CommandId::DataSm | CommandId::Unbind => pdu::bare_response(
                    CommandId::from(pdu::response_id(u32::from(command.id()))),
                    status,
                    sequence,
                ),
                _ => pdu::generic_nack(status, sequence),
            };
            let _ = self.link.send(reply).await;
            return false;
        }
        match command.pdu() {
            Some(Pdu::EnquireLink) => {
                let _ = self
                    .link
                    .send(pdu::command(
                        CommandStatus::EsmeRok,
                        sequence,
                        Pdu::EnquireLinkResp,
                    ))
                    .await;
            }
            Some(Pdu::Unbind) => {
                tracing::info!("smpp upstream: the SMSC unbinds");
                self.link.with_session(|s| s.unbinding());
                while self.tasks.join_next().await.is_some() {}
                let _ = self
                    .link
                    .send(pdu::command(
                        CommandStatus::EsmeRok,
                        sequence,
                        Pdu::UnbindResp,
                    ))
                    .await;
                return true;
            }
            Some(Pdu::DeliverSm(d)) => {
                let msg = Message::from_deliver(d);
                self.on_message(sequence, false, msg).await;
            }
            Some(Pdu::DataSm(d)) => {
                let msg = Message::from_data_sm(d);
                self.on_message(sequence, true, msg).await;
            }
            _ => {
                let _ = self
                    .link
                    .send(pdu::generic_nack(CommandStatus::EsmeRinvcmdid, sequence))
                    .await;
            }
        }
        false
    }

    async fn on_message(&mut self, sequence: u32, data_sm: bool, msg: Message) {
        if esme::is_receipt(msg.esm_class) || msg.tlvs.receipted_message_id.is_some() {
            let held = vec![HeldPart { sequence, data_sm }];
            self.spawn(held, move |d| async move { receipt(&d, &msg).await })
                .await;
            return;
        }
        let (concat, payload) = match msg.parts() {
            Ok(p) => p,
            Err(_) => {
                self.answer(sequence, data_sm, CommandStatus::EsmeRxPAppn)
                    .await;
                return;
            }
        };
        let part = HeldPart { sequence, data_sm };
        let (payload, held) = match concat {
            None => (payload, vec![part]),
            Some(c) => {
                let key = (
                    msg.source.addr.clone(),
                    msg.dest.addr.clone(),
                    c.reference,
                    c.wide,
                );
                match self.parts.add(key, &c, payload, part, Instant::now()) {
                    Added::Held => return,
                    Added::Complete { payload, tokens } => (payload, tokens),
                    Added::Refused(_, p) => {
                        self.answer(p.sequence, p.data_sm, CommandStatus::EsmeRxTAppn)
                            .await;
                        return;
                    }
                }
            }
        };
        self.spawn(
            held,
            move |d| async move { reply(&d, &msg, &payload).await },
        )
        .await;
    }

    /// Handles one receipt or reply on a task of its own (at most
    /// [`INCOMING`] at once: beyond, the reader waits) and answers every
    /// PDU it came in once it is done.
    async fn spawn<F, Fut>(&mut self, held: Vec<HeldPart>, work: F)
    where
        F: FnOnce(Arc<Deliveries>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = CommandStatus> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        let deliveries = self.deliveries.clone();
        let link = self.link.clone();
        self.tasks.spawn(async move {
            let status = work(deliveries).await;
            drop(permit);
            for p in held {
                let _ = link.send(response(p.sequence, p.data_sm, status)).await;
            }
        });
    }
}

/// The `deliver_sm_resp` (or `data_sm_resp`): an empty body when taken,
/// no body at all with an error status (SMPP 3.4 §4.1.4).
fn response(sequence: u32, data_sm: bool, status: CommandStatus) -> Command {
    match (status, data_sm) {
        (CommandStatus::EsmeRok, true) => pdu::command(
            status,
            sequence,
            DataSmResp::new(COctetString::empty(), Vec::new()),
        ),
        (CommandStatus::EsmeRok, false) => pdu::command(
            status,
            sequence,
            DeliverSmResp::new(COctetString::empty(), Vec::new()),
        ),
        (_, true) => pdu::bare_response(CommandId::DataSmResp, status, sequence),
        (_, false) => pdu::bare_response(CommandId::DeliverSmResp, status, sequence),
    }
}

/// A delivery receipt: the record moves on, durably, before `ESME_ROK`.
async fn receipt(d: &Deliveries, msg: &Message) -> CommandStatus {
    let text = msg
        .tlvs
        .message_payload
        .as_deref()
        .filter(|_| msg.short_message.is_empty())
        .unwrap_or(&msg.short_message);
    let Some(dlr) = esme::read_receipt(
        text,
        msg.tlvs.receipted_message_id.as_deref(),
        msg.tlvs.message_state,
    ) else {
        metrics::counter!("stopgate_smpp_upstream_receipts_total", "outcome" => "unreadable")
            .increment(1);
        tracing::info!("smpp upstream: a receipt names no message; refused");
        return CommandStatus::EsmeRxPAppn;
    };
    let Some(status) = dlr.status else {
        // Enroute, accepted: nothing the record needs.
        metrics::counter!("stopgate_smpp_upstream_receipts_total", "outcome" => "intermediate")
            .increment(1);
        return CommandStatus::EsmeRok;
    };
    let mut forms = esme::id_forms(&dlr.id);
    let first = forms.remove(0);
    let report = Report {
        provider: NAME,
        provider_id: first,
        status,
        error: dlr.error,
    };
    match d
        .reports
        .report_any(
            report,
            &forms,
            crate::domain::now_millis(),
            &RECORD_PATIENCE,
        )
        .await
    {
        Ok(outcome) => {
            metrics::counter!("stopgate_smpp_upstream_receipts_total", "outcome" => outcome.as_str())
                .increment(1);
            CommandStatus::EsmeRok
        }
        Err(e) => {
            tracing::warn!(error = %e, "smpp upstream: receipt not recorded (store); the SMSC will deliver it again");
            CommandStatus::EsmeRxTAppn
        }
    }
}

/// A reply from a handset: through the inbound pipeline, durable before `ESME_ROK`.
async fn reply(d: &Deliveries, msg: &Message, payload: &[u8]) -> CommandStatus {
    let Ok(text) = decode_text(msg.data_coding, payload) else {
        metrics::counter!("stopgate_smpp_upstream_replies_total", "outcome" => "unreadable")
            .increment(1);
        return CommandStatus::EsmeRxPAppn;
    };
    let from = match msg.source.ton {
        1 => format!("+{}", msg.source.addr.trim_start_matches('+')),
        _ => msg.source.addr.clone(),
    };
    match d
        .inbound
        .handle_mo(&from, &msg.dest.addr, &text, ReplyVia::Upstream)
        .await
    {
        Ok(outcome) => {
            metrics::counter!("stopgate_smpp_upstream_replies_total", "outcome" => outcome.action.as_str())
                .increment(1);
            CommandStatus::EsmeRok
        }
        Err(MoError::Store(e)) => {
            metrics::counter!("stopgate_smpp_upstream_replies_total", "outcome" => "store_unavailable")
                .increment(1);
            tracing::warn!(error = %e, "smpp upstream: reply not recorded (store); the SMSC will deliver it again");
            CommandStatus::EsmeRxTAppn
        }
        Err(e) => {
            metrics::counter!("stopgate_smpp_upstream_replies_total", "outcome" => "refused")
                .increment(1);
            let why = crate::domain::phone::scrub_numbers(&e.to_string());
            tracing::info!(error = %why, "smpp upstream: a reply stopgate cannot act on; refused");
            CommandStatus::EsmeRxPAppn
        }
    }
}
