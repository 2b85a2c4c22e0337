//! The async half of a session, shared by front and upstream: a bounded
//! frame reader, a writer task, and our requests matched to their responses.
//!
//! The reader loop belongs to the caller (front or upstream), which decides
//! what a request means; it feeds responses to [`Link::on_response`] and
//! calls [`Link::poll`] at [`Link::next_deadline`]. Anyone holding the link
//! may [`Link::request`] (waits for the response or its deadline) or
//! [`Link::send`] (a response, fire and forget).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::BytesMut;
use rusmpp_core::command::owned::Command;
use rusmpp_core::pdus::owned::Pdu;
use rusmpp_core::{CommandId, CommandStatus};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::pdu::{self, FrameError, Header};
use super::session::{Busy, Event, Session};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the session is closed")]
    Closed,
    #[error("no response in time")]
    Timeout,
    #[error("the window is full")]
    WindowFull,
    #[error("not bound for this request")]
    NotBound,
}

/// Reads whole PDUs, reserving at most one bounded frame at a time.
/// Cancel safe: bytes read stay in the buffer if the future is dropped.
pub struct FrameReader<R> {
    io: R,
    buf: BytesMut,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(io: R) -> Self {
        FrameReader {
            io,
            buf: BytesMut::with_capacity(4096),
        }
    }

    /// The next frame, or `Ok(None)` at a clean end of stream.
    pub async fn next(&mut self) -> Result<Option<(Header, BytesMut)>, ReadError> {
        loop {
            if let Some(frame) = pdu::take_frame(&mut self.buf)? {
                return Ok(Some(frame));
            }
            // Only once the length is known and checked is room made for it.
            self.buf.reserve(pdu::missing(&self.buf).max(64));
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into())
                };
            }
        }
    }
}

type Waiter = oneshot::Sender<Result<Command, LinkError>>;

/// A request with its sequence number, not written yet ([`Link::begin`]).
pub struct Started {
    command: Command,
    rx: oneshot::Receiver<Result<Command, LinkError>>,
}

struct Inner {
    session: Session,
    waiters: HashMap<u32, Waiter>,
}

/// Labels of a link's metrics: which listener or upstream, which tenant.
#[derive(Debug, Clone)]
pub struct Labels {
    pub side: &'static str,
    pub tenant: String,
}

pub struct Link {
    inner: Mutex<Inner>,
    out: mpsc::Sender<Command>,
    closed: CancellationToken,
    labels: Mutex<Labels>,
}

impl Link {
    /// Starts the writer task on `io` and returns the link. The writer ends
    /// (flushing and shutting the socket down) once the link is closed and
    /// what was queued is written.
    pub fn spawn<W: AsyncWrite + Unpin + Send + 'static>(
        io: W,
        session: Session,
        labels: Labels,
    ) -> (Arc<Link>, tokio::task::JoinHandle<()>) {
        // Requests are bounded by the window; responses by the peer's window
        // (the caller bounds the requests it answers).
        let (out, rx) = mpsc::channel(session.window() * 2 + 16);
        let link = Arc::new(Link {
            inner: Mutex::new(Inner {
                session,
                waiters: HashMap::new(),
            }),
            out,
            closed: CancellationToken::new(),
            labels: Mutex::new(labels),
        });
        let writer = tokio::spawn(write_loop(io, rx, link.clone()));
        (link, writer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn labels(&self) -> Labels {
        self.labels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Names the tenant once the bind has told us who it is.
    pub fn set_tenant(&self, tenant: &str) {
        self.labels.lock().unwrap_or_else(|e| e.into_inner()).tenant = tenant.to_string();
    }

    pub fn with_session<T>(&self, f: impl FnOnce(&mut Session) -> T) -> T {
        f(&mut self.lock().session)
    }

    /// Resolves once the link is closed.
    pub async fn closed(&self) {
        self.closed.cancelled().await
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Queues a PDU (a response, usually). Waits only while the writer is
    /// behind; fails once the link is closed.
    pub async fn send(&self, command: Command) -> Result<(), LinkError> {
        if self.is_closed() {
            return Err(LinkError::Closed);
        }
        self.out.send(command).await.map_err(|_| LinkError::Closed)
    }

    /// Sends a request and waits for its response (or a `generic_nack`).
    pub async fn request(&self, body: Pdu) -> Result<Command, LinkError> {
        let started = self.begin(body)?;
        self.complete(started).await
    }

    /// The synchronous half of [`Link::request`]: the request has its
    /// sequence number and counts in the window from now on, so a timer
    /// looking at the session right after sees it outstanding.
    pub fn begin(&self, body: Pdu) -> Result<Started, LinkError> {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        if self.is_closed() {
            return Err(LinkError::Closed);
        }
        let sequence = inner
            .session
            .begin_request(body.command_id(), Instant::now())
            .map_err(|b| match b {
                Busy::WindowFull => LinkError::WindowFull,
                Busy::NotBound => LinkError::NotBound,
            })?;
        inner.waiters.insert(sequence, tx);
        let window = inner.session.in_flight();
        let l = self.labels();
        metrics::gauge!("stopgate_smpp_window_in_use", "side" => l.side, "tenant" => l.tenant, "direction" => "out")
            .set(window as f64);
        Ok(Started {
            command: pdu::command(CommandStatus::EsmeRok, sequence, body),
            rx,
        })
    }

    /// Writes a begun request and waits for its response.
    pub async fn complete(&self, started: Started) -> Result<Command, LinkError> {
        let Started { command, rx } = started;
        let sequence = command.sequence_number();
        if self.out.send(command).await.is_err() {
            self.fail(sequence, LinkError::Closed);
        }
        rx.await.unwrap_or(Err(LinkError::Closed))
    }

    fn fail(&self, sequence: u32, why: LinkError) {
        let waiter = {
            let mut inner = self.lock();
            inner.session.on_response(sequence, CommandId::GenericNack);
            inner.waiters.remove(&sequence)
        };
        if let Some(w) = waiter {
            let _ = w.send(Err(why));
        }
    }

    /// A response from the peer. `false` if it answers nothing of ours
    /// (late, duplicate or invented): the caller logs and drops it.
    pub fn on_response(&self, command: Command) -> bool {
        let waiter = {
            let mut inner = self.lock();
            let known = inner
                .session
                .on_response(command.sequence_number(), command.id());
            known.and_then(|_| inner.waiters.remove(&command.sequence_number()))
        };
        match waiter {
            Some(w) => {
                let _ = w.send(Ok(command));
                true
            }
            None => false,
        }
    }

    /// The peer sent something: it is alive.
    pub fn heard(&self) {
        self.lock().session.heard(Instant::now());
    }

    pub fn next_deadline(&self) -> Instant {
        self.lock().session.next_deadline()
    }

    /// Runs the session's timers: requests past their deadline fail with
    /// [`LinkError::Timeout`]; the other events are the caller's to act on.
    pub fn poll(&self) -> Vec<Event> {
        let (events, late) = {
            let mut inner = self.lock();
            let events = inner.session.poll(Instant::now());
            let late: Vec<Waiter> = events
                .iter()
                .filter_map(|e| match e {
                    Event::TimedOut { sequence, .. } => inner.waiters.remove(sequence),
                    _ => None,
                })
                .collect();
            (events, late)
        };
        for w in late {
            let _ = w.send(Err(LinkError::Timeout));
        }
        events
    }

    /// Closes the session: every waiting request fails with `Closed`, and
    /// the writer stops after what is already queued.
    pub fn close(&self) {
        let waiters: Vec<Waiter> = {
            let mut inner = self.lock();
            inner.session.close();
            inner.waiters.drain().map(|(_, w)| w).collect()
        };
        self.closed.cancel();
        for w in waiters {
            let _ = w.send(Err(LinkError::Closed));
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut io: W,
    mut rx: mpsc::Receiver<Command>,
    link: Arc<Link>,
) {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let first = tokio::select! {
            c = rx.recv() => c,
            _ = link.closed() => {
                // Write what was queued before the close, then stop.
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { break };
        count_out(&link, &first);
        pdu::encode(&first, &mut buf);
        // Batch whatever else is ready into one write.
        while buf.len() < 64 * 1024 {
            match rx.try_recv() {
                Ok(c) => {
                    count_out(&link, &c);
                    pdu::encode(&c, &mut buf);
                }
                Err(_) => break,
            }
        }
        if io.write_all(&buf).await.is_err() || io.flush().await.is_err() {
            link.close();
            break;
        }
        buf.clear();
    }
    let _ = io.shutdown().await;
}

fn count_out(link: &Link, c: &Command) {
    let l = link.labels();
    metrics::counter!("stopgate_smpp_pdus_total", "side" => l.side, "tenant" => l.tenant,
        "direction" => "out", "command" => pdu::command_name(c.id()), "status" => pdu::status_label(c.status()))
    .increment(1);
}

/// Counts a PDU read from the peer.
pub fn count_in(link: &Link, id: CommandId, status: CommandStatus) {
    let l = link.labels();
    metrics::counter!("stopgate_smpp_pdus_total", "side" => l.side, "tenant" => l.tenant,
        "direction" => "in", "command" => pdu::command_name(id), "status" => pdu::status_label(status))
    .increment(1);
}
