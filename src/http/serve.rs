//! The accept loop of both listeners, with the limits `axum::serve` does not
//! have: a cap on open connections, and deadlines for the request head, the
//! request body and idle keep-alive. Without them a client that connects and
//! goes quiet holds a file descriptor forever, and the descriptors of the
//! process are shared by both listeners: a slow client on the public one
//! could starve the API listener, and with it every OTP.
//!
//! Plain HTTP/1.1 (stopgate runs behind a TLS proxy; no HTTP/2).
//!
//! Deadlines, as Go's `net/http` does them (`ReadHeaderTimeout`, `IdleTimeout`):
//! - **head**: from the accept, or from the first byte of a next request on a
//!   kept-alive connection, the whole head must arrive within
//!   `header_read`, however slowly it trickles in;
//! - **body**: from the head, the whole body must arrive within `body`
//!   (a streamed body may ask for the deadline between frames instead, see
//!   [`BodyPace`]); the handler then answers `408`;
//! - **idle**: after a response, the next request must start within `idle`.
//!
//! hyper's own `header_read_timeout` is not used: it also runs between
//! requests (hyper 1.12 restarts it as soon as a connection is idle), so a
//! kept-alive connection would be cut at the head deadline, not the idle one.
//!
//! At the cap a listener stops accepting until a connection closes: new
//! connections wait in the kernel's backlog, where they cost this process no
//! file descriptor.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::{sleep_until, Instant, Sleep};
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// The limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read: Duration,
    pub body: Duration,
    pub idle: Duration,
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops
/// accepting (the listening socket is closed), lets in-flight requests
/// finish, closes idle connections, and returns when every connection is
/// gone. The caller bounds that wait (`server.shutdown_grace_secs`).
///
/// Every request carries `ConnectInfo<SocketAddr>` of its peer.
pub async fn serve(
    listener: TcpListener,
    name: &'static str,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    serve_sharing(listener, name, router, limits, permits, shutdown).await
}

/// [`serve`] with the connection cap in `permits`, shared with the other
/// listeners of the same name (`server.runtime = "per_core"`: one listener
/// per core, one cap for them all).
pub async fn serve_sharing(
    listener: TcpListener,
    name: &'static str,
    router: Router,
    limits: Limits,
    permits: Arc<Semaphore>,
    shutdown: impl Future<Output = ()>,
) {
    let connections = TaskTracker::new();
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut last_cap_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    'accept: loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                metrics::counter!("stopgate_http_connection_cap_reached_total", "listener" => name)
                    .increment(1);
                // Once per 10 s at most: under a flood this would be every accept.
                if last_cap_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                    last_cap_warning = Some(Instant::now());
                    tracing::warn!(
                        listener = name,
                        max = limits.max_connections,
                        "connection cap reached: new connections wait until one closes"
                    );
                }
                tokio::select! {
                    biased;
                    _ = &mut shutdown => break 'accept,
                    p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                }
            }
        };
        let (stream, peer) = loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break 'accept,
                accepted = listener.accept() => match accepted {
                    Ok(a) => break a,
                    Err(e) => accept_error(name, e).await,
                },
            }
        };
        let router = router.clone();
        let drain = drain_rx.clone();
        connections.spawn(async move {
            metrics::gauge!("stopgate_http_connections", "listener" => name).increment(1.0);
            connection(name, stream, peer, router, limits, drain).await;
            metrics::gauge!("stopgate_http_connections", "listener" => name).decrement(1.0);
            drop(permit);
        });
    }
    drop(listener);
    let _ = drain_tx.send(true);
    connections.close();
    connections.wait().await;
}

/// Like hyper 0.14 and axum: a failed handshake is the client's business; any
/// other error (EMFILE: out of file descriptors) is worth a pause, not a
/// busy loop.
async fn accept_error(name: &'static str, e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(listener = name, error = %e, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// One connection, until the client or a deadline closes it. Dropping the
/// hyper connection closes the socket.
async fn connection(
    name: &'static str,
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    mut drain: watch::Receiver<bool>,
) {
    let timing = Arc::new(Timing::new());
    let io = TokioIo::new(Watched {
        io: stream,
        timing: timing.clone(),
    });
    let service = {
        let timing = timing.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let busy = timing.request_started();
            let (mut parts, body) = req.into_parts();
            parts.extensions.insert(ConnectInfo(peer));
            let body = TimedBody::new(body, limits.body, name, &mut parts.extensions);
            let response = router
                .clone()
                .oneshot(hyper::Request::from_parts(parts, body));
            async move {
                let response = response.await?;
                Ok::<_, Infallible>(response.map(|body| Tracked { body, _busy: busy }))
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let overdue = overdue(&timing, limits);
    tokio::pin!(overdue);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(listener = name, error = %e, "connection ended with an error");
                }
                return;
            }
            reason = &mut overdue => {
                metrics::counter!("stopgate_http_timeouts_total", "listener" => name, "phase" => reason)
                    .increment(1);
                tracing::debug!(listener = name, reason, "closing a connection past its deadline");
                return;
            }
            _ = drain.wait_for(|d| *d), if !draining => {
                // Finishes the request in flight, then closes; closes at once when idle.
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Where a connection is, and since when: which deadline applies.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// A request head is arriving (or awaited on a new connection).
    Head(Instant),
    /// This many requests in hand: the body deadline and the handler own the time.
    Busy(usize),
    /// Between requests.
    Idle(Instant),
}

/// A connection's phase, shared by its socket, its service and [`overdue`].
struct Timing {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Timing {
    fn new() -> Timing {
        Timing {
            phase: Mutex::new(Phase::Head(Instant::now())),
            changed: Notify::new(),
        }
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, f: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        *phase = f(*phase);
        drop(phase);
        // One waiter; a stored permit only costs it one extra look.
        self.changed.notify_one();
    }

    /// Bytes came in: on an idle connection, a next request has started.
    fn bytes_arrived(&self) {
        if matches!(self.phase(), Phase::Idle(_)) {
            self.update(|p| match p {
                Phase::Idle(_) => Phase::Head(Instant::now()),
                other => other,
            });
        }
    }

    /// hyper has a whole request head: until the response is done, no
    /// connection deadline applies. (No notification: [`overdue`] finds out
    /// when its sleep ends.)
    fn request_started(self: &Arc<Self>) -> BusyGuard {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        *phase = match *phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        };
        BusyGuard(self.clone())
    }
}

/// Held by a request until its response body is done or dropped.
struct BusyGuard(Arc<Timing>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.update(|p| match p {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        });
    }
}

/// Resolves, with the name of the phase, once the connection has overstayed
/// its current phase's deadline.
async fn overdue(timing: &Timing, limits: Limits) -> &'static str {
    loop {
        let deadline = match timing.phase() {
            Phase::Head(since) => Some((since + limits.header_read, "header")),
            Phase::Idle(since) => Some((since + limits.idle, "idle")),
            Phase::Busy(_) => None,
        };
        match deadline {
            Some((at, phase)) if Instant::now() >= at => return phase,
            Some((at, _)) => {
                tokio::select! {
                    _ = sleep_until(at) => {}
                    _ = timing.changed.notified() => {}
                }
            }
            None => timing.changed.notified().await,
        }
    }
}

/// The socket, telling [`Timing`] when bytes arrive.
struct Watched {
    io: TcpStream,
    timing: Arc<Timing>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.timing.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A response body that keeps its request [`BusyGuard`] until it is done.
struct Tracked {
    body: axum::body::Body,
    _busy: BusyGuard,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The request body did not arrive in time; the body's readers see it as
/// their error (see [`is_body_timeout`]).
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(Duration);

/// Whether reading a body failed because of [`BodyTimeout`], however many
/// layers (axum, `http_body_util::Limited`) wrapped the error.
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if e.is::<BodyTimeout>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// In the extensions of a request with a body. By default the whole body
/// must arrive within `server.body_timeout_ms`; a handler that streams a
/// body of any size (the CSV import) calls [`BodyPace::streaming`] so the
/// deadline applies between frames instead.
#[derive(Debug, Clone)]
pub struct BodyPace(Arc<AtomicBool>);

impl BodyPace {
    pub fn streaming(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A request body with a deadline.
pub struct TimedBody<B> {
    inner: B,
    timeout: Duration,
    /// The head's arrival, then (when streaming) the last frame's.
    since: Instant,
    /// Created on the first wait only: most bodies arrive with their head.
    sleep: Option<Pin<Box<Sleep>>>,
    /// `None` for a body that is already complete (no body, or none left).
    streaming: Option<Arc<AtomicBool>>,
    listener: &'static str,
    timed_out: bool,
}

impl<B: Body> TimedBody<B> {
    pub fn new(
        inner: B,
        timeout: Duration,
        listener: &'static str,
        extensions: &mut axum::http::Extensions,
    ) -> TimedBody<B> {
        let streaming = (!inner.is_end_stream()).then(|| {
            let flag = Arc::new(AtomicBool::new(false));
            extensions.insert(BodyPace(flag.clone()));
            flag
        });
        TimedBody {
            inner,
            timeout,
            since: Instant::now(),
            sleep: None,
            streaming,
            listener,
            timed_out: false,
        }
    }

    fn is_streaming(&self) -> bool {
        self.streaming
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = &mut *self;
        // Every poll after the deadline fails too, whatever arrived since: a
        // reader must never take a cut body for a whole one.
        if this.timed_out {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))));
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if this.is_streaming() {
                this.since = Instant::now();
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.since + this.timeout;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(sleep_until(deadline)));
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        ready!(sleep.as_mut().poll(cx));
        this.timed_out = true;
        metrics::counter!("stopgate_http_timeouts_total", "listener" => this.listener, "phase" => "body")
            .increment(1);
        Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Descriptors both listeners may hold at their caps, plus `reserve` for the
/// rest of the process (store, provider connections), against the open-files
/// limit: when they do not fit, one listener can starve the other after all.
pub fn fd_budget_warning(
    open_files_limit: u64,
    api_max: usize,
    public_max: usize,
    reserve: usize,
) -> Option<String> {
    let needed = (api_max as u64)
        .saturating_add(public_max as u64)
        .saturating_add(reserve as u64);
    (needed > open_files_limit).then(|| {
        format!(
            "server.api_max_connections ({api_max}) + server.public_max_connections ({public_max}) \
             + {reserve} for the store and the provider exceed the open-files limit ({open_files_limit}): \
             a flood on one listener could leave the other without file descriptors; \
             raise the limit (LimitNOFILE, ulimit -n) or lower the caps"
        )
    })
}

/// The process's soft open-files limit, where the OS says it without a
/// system call of our own (Linux: `/proc/self/limits`).
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files_limit(&limits)
}

fn parse_open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body that yields `chunks` bytes, one every `every`, then ends, or
    /// stalls forever if `stall`.
    struct Drip {
        chunks: usize,
        every: Duration,
        stall: bool,
        sleep: Pin<Box<Sleep>>,
    }

    impl Drip {
        fn new(chunks: usize, every: Duration, stall: bool) -> Drip {
            Drip {
                chunks,
                every,
                stall,
                sleep: Box::pin(tokio::time::sleep(every)),
            }
        }
    }

    impl Body for Drip {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            if self.chunks == 0 {
                return if self.stall {
                    Poll::Pending
                } else {
                    Poll::Ready(None)
                };
            }
            ready!(self.sleep.as_mut().poll(cx));
            self.chunks -= 1;
            let next = Instant::now() + self.every;
            self.sleep.as_mut().reset(next);
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
        }
    }

    /// Reads a drip of ten bytes 30 ms apart under a 150 ms body timeout.
    async fn read_drip(stall: bool, streaming: bool) -> Result<Bytes, axum::Error> {
        let mut ext = axum::http::Extensions::new();
        let drip = Drip::new(10, Duration::from_millis(30), stall);
        let body = TimedBody::new(drip, Duration::from_millis(150), "test", &mut ext);
        if streaming {
            ext.get::<BodyPace>()
                .expect("a body has a pace")
                .streaming();
        }
        axum::body::to_bytes(axum::body::Body::new(body), 1 << 20).await
    }

    #[tokio::test]
    async fn a_whole_body_must_arrive_within_the_timeout() {
        // 300 ms of drip against 150 ms for the whole body.
        let err = read_drip(false, false).await.unwrap_err();
        assert!(is_body_timeout(&err), "{err}");
    }

    #[tokio::test]
    async fn a_streamed_body_only_needs_each_chunk_within_the_timeout() {
        let got = read_drip(false, true).await.unwrap();
        assert_eq!(&got[..], b"xxxxxxxxxx");
        let started = Instant::now();
        let err = read_drip(true, true).await.unwrap_err();
        assert!(is_body_timeout(&err), "{err}");
        // Cut after the ten chunks (300 ms) and 150 ms of silence.
        assert!(started.elapsed() >= Duration::from_millis(450));
    }

    #[tokio::test]
    async fn a_body_that_arrives_in_time_is_untouched() {
        let mut ext = axum::http::Extensions::new();
        let full = axum::body::Body::from(&b"hello"[..]);
        let body = TimedBody::new(full, Duration::from_millis(500), "test", &mut ext);
        let got = axum::body::to_bytes(axum::body::Body::new(body), 1 << 20)
            .await
            .unwrap();
        assert_eq!(&got[..], b"hello");
    }

    #[test]
    fn an_empty_body_gets_no_pace() {
        let mut ext = axum::http::Extensions::new();
        let _ = TimedBody::new(
            axum::body::Body::empty(),
            Duration::from_secs(1),
            "test",
            &mut ext,
        );
        assert!(ext.get::<BodyPace>().is_none());
    }

    #[test]
    fn other_errors_are_not_timeouts() {
        let e = axum::Error::new(std::io::Error::other("reset by peer"));
        assert!(!is_body_timeout(&e));
    }

    #[test]
    fn the_fd_budget_counts_both_caps_and_the_reserve() {
        assert_eq!(fd_budget_warning(65_536, 4096, 1024, 320), None);
        assert_eq!(fd_budget_warning(5440, 4096, 1024, 320), None);
        let w = fd_budget_warning(1024, 4096, 1024, 320).unwrap();
        assert!(
            w.contains("(1024)") && w.contains("server.public_max_connections"),
            "{w}"
        );
        assert!(fd_budget_warning(5439, 4096, 1024, 320).is_some());
    }

    #[test]
    fn reads_the_soft_open_files_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             63408                63408                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_files_limit(limits), Some(1024));
        assert_eq!(
            parse_open_files_limit("Max open files  unlimited unlimited files"),
            None
        );
        assert_eq!(parse_open_files_limit(""), None);
    }
}
