//! Wires the parts together: opens the store, builds the provider and the
//! pipeline, binds both listeners, and shuts down gracefully.
//!
//! Shutdown: on the signal every listener stops accepting, in-flight requests
//! get `server.shutdown_grace_secs` to finish (SMPP binds are answered, then
//! unbound; an SMPP upstream unbinds last), then the store is flushed.
//!
//! `server.runtime = "per_core"`: the caller's runtime is core 0 and runs
//! everything as usual; each other core gets an OS thread with its own
//! current-thread runtime serving its own API and public listeners (one
//! `SO_REUSEPORT` group per address, so the kernel spreads connections) on the
//! same [`AppState`]. Background work (outbox, scheduler, purges, SMPP) stays
//! on core 0. The upstream has one adapter per core (see
//! [`upstream::percore`]) behind the one guard.

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_util::task::TaskTracker;
use tower_http::catch_panic::CatchPanicLayer;

use crate::config::{RuntimeMode, Settings};
use crate::domain::{PhoneNumber, Tenant, TenantId};
use crate::http::{self, error::ApiError, serve};
use crate::inbound::Inbound;
use crate::outbound::Outbound;
use crate::outbox::{Dispatcher, GiveUp, Signal};
use crate::reports::Reports;
use crate::schedule::{ReleaseConfig, Scheduler};
use crate::smpp::front::Front;
use crate::store::{self, Store};
use crate::upstream;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub tenants: Arc<[Arc<Tenant>]>,
    pub store: Arc<dyn Store>,
    pub outbound: Arc<Outbound>,
    pub inbound: Arc<Inbound>,
    pub reports: Arc<Reports>,
    /// Wakes the outbox dispatcher after a write that notifies someone.
    pub outbox: Signal,
    /// Per-tenant request rate limit; `None` when disabled.
    pub tenant_limiter: Option<Arc<TenantLimiter>>,
    /// Releases and cancels held messages.
    pub scheduler: Arc<Scheduler>,
}

pub type TenantLimiter = governor::DefaultKeyedRateLimiter<TenantId>;

fn tenant_limiter(limits: &crate::config::LimitsConfig) -> Option<Arc<TenantLimiter>> {
    let rate = NonZeroU32::new(limits.tenant_requests_per_second)?;
    let burst = NonZeroU32::new(limits.tenant_burst).unwrap_or(rate);
    Some(Arc::new(governor::RateLimiter::keyed(
        governor::Quota::per_second(rate).allow_burst(burst),
    )))
}

pub struct App {
    state: AppState,
    api: TcpListener,
    public: TcpListener,
    dispatcher: Arc<Dispatcher>,
    smpp: Option<(TcpListener, Option<tokio_rustls::TlsAcceptor>, Arc<Front>)>,
    /// The SMSC sessions of an SMPP upstream.
    smpp_upstream: Option<upstream::smpp::Sessions>,
    /// Per core: the API and public listeners of cores 1.., deregistered
    /// from this runtime so that each core registers its own.
    cores: Vec<(std::net::TcpListener, std::net::TcpListener)>,
}

impl App {
    /// Opens the store and binds both listeners (port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        Self::build_with_clock(settings, crate::clock::system()).await
    }

    /// [`App::build`] on another clock (tests: a manual one).
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> anyhow::Result<App> {
        crate::telemetry::metrics_handle();
        PhoneNumber::load_metadata();
        let cfg = &settings.config;
        let store = store::open(&cfg.storage)
            .await
            .with_context(|| format!("opening the store ({})", cfg.storage.describe()))?;
        let cores = match cfg.server.runtime {
            RuntimeMode::MultiThread => None,
            RuntimeMode::PerCore => Some(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1),
            ),
        };
        let (provider, smpp_upstream) =
            upstream::from_config(&cfg.upstream, &settings.public_base_url, cores.unwrap_or(1))?;
        let tenants: Arc<[Arc<Tenant>]> = settings.tenants.clone().into();
        let rules = Arc::new(settings.rules.clone());
        let signal = Signal::default();
        let signal_for_state = signal.clone();
        let inbound = Arc::new(Inbound {
            store: store.clone(),
            rules: rules.clone(),
            tenants: tenants.clone(),
            shortcodes: settings.shortcodes.clone(),
            attribution_window: Duration::from_secs(
                u64::from(cfg.attribution.window_days) * 86_400,
            ),
            outbox: signal.clone(),
        });
        let outbound = Arc::new(Outbound {
            store: store.clone(),
            provider: provider.clone(),
            rules,
            shortcodes: settings.shortcodes.clone(),
            public_base_url: settings.public_base_url.clone(),
            concurrency: cfg.upstream.concurrency,
            keep_body: cfg.messages.keep_body,
            outbox: signal.clone(),
            clock: clock.clone(),
        });
        let scheduler = Arc::new(Scheduler::new(
            store.clone(),
            provider.clone(),
            outbound.rules.clone(),
            &tenants,
            clock,
            signal.clone(),
            ReleaseConfig {
                concurrency: cfg.schedule.concurrency(&cfg.upstream),
                per_second: cfg.schedule.release_per_second,
                poll: Duration::from_millis(cfg.schedule.poll_ms),
                upstream_timeout: Duration::from_millis(cfg.upstream.timeout_ms),
            },
        ));
        let reports = Arc::new(Reports {
            store: store.clone(),
            tenants: tenants.clone(),
            outbox: signal.clone(),
        });
        let notifier = Arc::new(http::notify::WebhookNotifier::new(
            &settings.tenants,
            &settings.twilio_accounts,
            Duration::from_millis(cfg.webhooks.timeout_ms),
        )?);
        let dispatcher = Dispatcher::new(
            store.clone(),
            notifier,
            provider.clone(),
            signal,
            GiveUp {
                webhooks: Duration::from_secs(cfg.webhooks.give_up_after_secs),
                replies: Duration::from_secs(cfg.webhooks.give_up_after_secs.min(3_600)),
            },
            Duration::from_millis(cfg.webhooks.lease_ms),
        );
        let (api, api_cores) = bind(settings.api_listen, cores)
            .await
            .with_context(|| format!("binding the API listener on {}", settings.api_listen))?;
        let (public, public_cores) =
            bind(settings.public_listen, cores).await.with_context(|| {
                format!("binding the public listener on {}", settings.public_listen)
            })?;
        let smpp = match &settings.smpp_listen {
            None => None,
            Some(l) => {
                let tls = match &l.tls {
                    None => None,
                    Some((cert, key)) => Some(
                        crate::smpp::front::tls_acceptor(cert, key)
                            .map_err(|(k, m)| anyhow::anyhow!("{k}: {m}"))?,
                    ),
                };
                let listener = TcpListener::bind(l.addr)
                    .await
                    .with_context(|| format!("binding the SMPP listener on {}", l.addr))?;
                let front = Arc::new(Front::new(
                    &settings.smpp_accounts,
                    outbound.clone(),
                    cfg.smpp.clone(),
                    cfg.limits.max_body_chars,
                ));
                Some((listener, tls, front))
            }
        };
        // Receipts go to this node's receiver binds.
        let dispatcher = Arc::new(match &smpp {
            Some((_, _, front)) => dispatcher.with_receipts(front.receivers()),
            None => dispatcher,
        });
        if let Some(w) = serve::open_files_limit().and_then(|limit| {
            // The store's files, the provider connections, logs.
            let reserve = 256 + cfg.upstream.concurrency;
            serve::fd_budget_warning(
                limit,
                cfg.server.api_max_connections,
                cfg.server.public_max_connections,
                reserve,
            )
        }) {
            tracing::warn!("{w}");
        }
        let state = AppState {
            tenant_limiter: tenant_limiter(&cfg.limits),
            tenants,
            settings: Arc::new(settings),
            store,
            outbound,
            inbound,
            reports,
            outbox: signal_for_state,
            scheduler,
        };
        Ok(App {
            state,
            api,
            public,
            dispatcher,
            smpp,
            smpp_upstream,
            cores: api_cores.into_iter().zip(public_cores).collect(),
        })
    }

    /// The SMPP listener's address, when `[smpp] listen` is set.
    pub fn smpp_addr(&self) -> Option<SocketAddr> {
        self.smpp
            .as_ref()
            .map(|(l, _, _)| l.local_addr().expect("bound listener has an address"))
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn public_addr(&self) -> SocketAddr {
        self.public
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The store, for operator tooling and tests that seed state.
    pub fn store(&self) -> Arc<dyn Store> {
        self.state.store.clone()
    }

    /// Serves until `shutdown` resolves, then drains and flushes.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let App {
            state,
            api,
            public,
            dispatcher,
            smpp,
            smpp_upstream,
            cores,
        } = self;
        let upkeep = tokio::spawn(crate::telemetry::metrics_upkeep());
        let grace = Duration::from_secs(state.settings.config.server.shutdown_grace_secs);
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let api_router =
            http::api::router(state.clone()).layer(CatchPanicLayer::custom(panic_response));
        let public_router =
            http::public::router(state.clone()).layer(CatchPanicLayer::custom(panic_response));
        let server = &state.settings.config.server;
        let limits = |max_connections| serve::Limits {
            header_read: Duration::from_millis(server.header_read_timeout_ms),
            body: Duration::from_millis(server.body_timeout_ms),
            idle: Duration::from_millis(server.idle_timeout_ms),
            max_connections,
        };
        // Serves one core's pair of listeners.
        let serve_both = {
            // One cap per address, shared by its listeners on every core.
            let api_permits = Arc::new(Semaphore::new(server.api_max_connections));
            let public_permits = Arc::new(Semaphore::new(server.public_max_connections));
            let (api_limits, public_limits) = (
                limits(server.api_max_connections),
                limits(server.public_max_connections),
            );
            let stop_rx = stop_rx.clone();
            move |api: TcpListener, public: TcpListener| {
                let api = serve::serve_sharing(
                    api,
                    "api",
                    api_router.clone(),
                    api_limits,
                    api_permits.clone(),
                    stopped(stop_rx.clone()),
                );
                let public = serve::serve_sharing(
                    public,
                    "public",
                    public_router.clone(),
                    public_limits,
                    public_permits.clone(),
                    stopped(stop_rx.clone()),
                );
                (api, public)
            }
        };
        let mut other_cores = Vec::with_capacity(cores.len());
        for (i, (api, public)) in cores.into_iter().enumerate() {
            let core = i + 1;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting a core's runtime")?;
            let serve_both = serve_both.clone();
            let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(format!("stopgate-core-{core}"))
                .spawn(move || {
                    upstream::percore::set_core(core);
                    runtime.block_on(async move {
                        // Registered with this core's reactor, not core 0's.
                        match (TcpListener::from_std(api), TcpListener::from_std(public)) {
                            (Ok(api), Ok(public)) => {
                                let (api, public) = serve_both(api, public);
                                tokio::join!(api, public);
                            }
                            (Err(e), _) | (_, Err(e)) => {
                                tracing::error!(core, error = %e, "a core could not take its listeners");
                            }
                        }
                    });
                    let _ = done_tx.send(());
                })
                .context("starting a core's thread")?;
            other_cores.push(done_rx);
        }
        let (api_server, public_server) = serve_both(api, public);
        let (api_server, public_server) = (tokio::spawn(api_server), tokio::spawn(public_server));
        let deliveries = TaskTracker::new();
        let outbox = tokio::spawn(dispatcher.run(stop_rx.clone(), deliveries.clone()));
        let releaser = tokio::spawn(state.scheduler.clone().run(stop_rx));
        let housekeeping = tokio::spawn(housekeeping(
            state.store.clone(),
            state.settings.config.messages.retention_days,
            state.outbound.clock.clone(),
        ));
        // Bound first: receipts and replies from the SMSC go to the services.
        let upstream_stop = tokio_util::sync::CancellationToken::new();
        let upstream_sessions = smpp_upstream.map(|s| {
            s.start(
                Arc::new(upstream::smpp::Deliveries {
                    reports: state.reports.clone(),
                    inbound: state.inbound.clone(),
                }),
                upstream_stop.clone(),
            )
        });
        let smpp_stop = tokio_util::sync::CancellationToken::new();
        let smpp_server = smpp.map(|(listener, tls, front)| {
            tokio::spawn(crate::smpp::front::serve(
                listener,
                front,
                tls,
                smpp_stop.clone(),
            ))
        });
        shutdown.await;
        housekeeping.abort();
        tracing::info!("shutting down: draining in-flight requests");
        let _ = stop_tx.send(true);
        smpp_stop.cancel();
        let drained = tokio::time::timeout(grace, async {
            let _ = api_server.await;
            let _ = public_server.await;
            for done in other_cores {
                let _ = done.await;
            }
            // Deliveries under way finish; what is left stays in the outbox.
            let _ = outbox.await;
            // A release round under way finishes; the rest stays held.
            let _ = releaser.await;
            deliveries.close();
            deliveries.wait().await;
            if let Some(s) = smpp_server {
                let _ = s.await;
            }
            // Last: what the others were sending is answered, then it unbinds.
            upstream_stop.cancel();
            if let Some(s) = upstream_sessions {
                let _ = s.await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "in-flight requests did not finish in time"
            );
        }
        state
            .store
            .durable()
            .await
            .context("final flush of the store")?;
        upkeep.abort();
        tracing::info!("stopped");
        Ok(())
    }
}

/// Binds `addr`. Per core (`cores` is `Some`), one listener per core, all
/// in one `SO_REUSEPORT` group on the port the first got (port 0 works):
/// the first for this runtime, the others deregistered, for their cores.
async fn bind(
    addr: SocketAddr,
    cores: Option<usize>,
) -> std::io::Result<(TcpListener, Vec<std::net::TcpListener>)> {
    let Some(n) = cores else {
        return Ok((TcpListener::bind(addr).await?, Vec::new()));
    };
    let first = reuseport_listener(addr)?;
    let addr = first.local_addr()?;
    let others = (1..n)
        .map(|_| reuseport_listener(addr)?.into_std())
        .collect::<std::io::Result<_>>()?;
    Ok((first, others))
}

#[cfg(unix)]
fn reuseport_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // As `TcpListener::bind` does, plus the port shared by every core.
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

#[cfg(not(unix))]
fn reuseport_listener(_: SocketAddr) -> std::io::Result<TcpListener> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "server.runtime = \"per_core\" needs SO_REUSEPORT (unix)",
    ))
}

/// How long a `reference` makes a retry idempotent.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Periodic clean-up of records that only matter for a while.
async fn housekeeping(
    store: Arc<dyn Store>,
    retention_days: u32,
    clock: Arc<dyn crate::clock::Clock>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        purge_messages(store.as_ref(), retention_days).await;
        purge_caps(store.as_ref(), clock.now()).await;
        let before = crate::domain::now_millis() - IDEMPOTENCY_WINDOW.as_millis() as i64;
        match store.purge_requests(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "expired idempotency records removed"),
            Err(e) => tracing::warn!(error = %e, "idempotency clean-up failed"),
        }
    }
}

/// Removes expired message records in steps, yielding between them, so a
/// large purge never holds the store for long.
async fn purge_messages(store: &dyn Store, retention_days: u32) {
    const STEP: usize = 5_000;
    let before = crate::domain::now_millis() - i64::from(retention_days) * 86_400_000;
    let mut total = 0;
    loop {
        match store.purge_messages(before, STEP).await {
            Ok(n) => {
                total += n;
                if n < STEP {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "message record purge failed");
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!(purged = total, "expired message records removed");
    }
}

/// Removes frequency-cap ledgers no cap can need any more (the longest
/// `per_hours` is a week).
async fn purge_caps(store: &dyn Store, now: crate::domain::UnixMillis) {
    const STEP: usize = 5_000;
    let before = now - 8 * 86_400_000;
    loop {
        match store.cap_purge(before, STEP).await {
            Ok(n) if n >= STEP => tokio::time::sleep(Duration::from_millis(10)).await,
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, "frequency ledger purge failed");
                break;
            }
        }
    }
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    tracing::error!("a request handler panicked");
    ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "internal error",
    )
    .into_response()
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
