//! A fast mock SMS provider for the benchmark harness (`bench/run`).
//!
//! It speaks stopgate's generic `http` upstream format (DESIGN.md §4):
//! `POST /messages` (any path but `/stats`) with `Authorization: Bearer
//! {token}` and `{"to", "from", "body", "reference"}`, answered `200
//! {"id": "mock-<n>"}`; and its batch form (docs/http-batch.md) on the same
//! paths: `{"messages": [{"to", "from", "body", "reference"}, ...]}`,
//! answered `200 {"results": [{"reference", "id": "mock-<n>"}, ...]}`. It
//! stores nothing and logs nothing, so that what the benchmark measures is
//! the thing in front of it, not the mock.
//!
//! `GET /stats` returns `{"accepted", "unauthorized", "malformed", "hooks",
//! "hook_events", "requests"}` so the harness can check that every message
//! it counted really arrived (`accepted` counts messages, `requests` the
//! requests that carried them).
//!
//! It is also the application's webhook receiver for the outbox benchmark:
//! `POST /hook` counts deliveries (`hooks`) and distinct
//! `X-Stopgate-Delivery` event ids (`hook_events`: at-least-once may repeat
//! one). `POST /hook/hold` makes it take deliveries without answering (an
//! endpoint that is down while the outbox fills, without failed attempts and
//! their backoff) and forgets the ids seen; `POST /hook/release` answers them
//! and every later one.
//!
//! ```sh
//! mock-provider --listen 127.0.0.1:9000 --token secret --threads 2
//! ```

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

struct Mock {
    /// `Bearer {token}`, or `None` to accept any Authorization.
    expected_auth: Option<Vec<u8>>,
    accepted: AtomicU64,
    /// Send requests answered 2xx (a batch is one).
    requests: AtomicU64,
    unauthorized: AtomicU64,
    malformed: AtomicU64,
    /// Webhook deliveries answered, and their distinct event ids.
    hooks: AtomicU64,
    hook_events: Mutex<HashSet<Vec<u8>>>,
    /// `true` while `/hook` holds deliveries unanswered.
    hold: tokio::sync::watch::Sender<bool>,
}

/// The generic wire format; borrowed, so parsing allocates nothing but escapes.
#[derive(Deserialize)]
#[allow(dead_code)] // parsed to check the shape, not used
struct Sms<'a> {
    #[serde(borrow)]
    to: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    from: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    body: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    reference: std::borrow::Cow<'a, str>,
}

/// The batch form.
#[derive(Deserialize)]
struct Batch<'a> {
    #[serde(borrow)]
    messages: Vec<Sms<'a>>,
}

async fn send(State(mock): State<Arc<Mock>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(expected) = &mock.expected_auth {
        let ok = headers
            .get(header::AUTHORIZATION)
            .is_some_and(|v| v.as_bytes() == expected.as_slice());
        if !ok {
            mock.unauthorized.fetch_add(1, Ordering::Relaxed);
            return (StatusCode::UNAUTHORIZED, "bad token").into_response();
        }
    }
    if serde_json::from_slice::<Sms>(&body).is_ok() {
        let n = mock.accepted.fetch_add(1, Ordering::Relaxed);
        mock.requests.fetch_add(1, Ordering::Relaxed);
        return (
            [(header::CONTENT_TYPE, "application/json")],
            format!("{{\"id\":\"mock-{n}\"}}"),
        )
            .into_response();
    }
    let Ok(batch) = serde_json::from_slice::<Batch>(&body) else {
        mock.malformed.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::BAD_REQUEST,
            "expected {to, from, body, reference} or {messages: [...]}",
        )
            .into_response();
    };
    let first = mock
        .accepted
        .fetch_add(batch.messages.len() as u64, Ordering::Relaxed);
    mock.requests.fetch_add(1, Ordering::Relaxed);
    let results: Vec<serde_json::Value> = batch
        .messages
        .iter()
        .zip(first..)
        .map(|(m, n)| serde_json::json!({"reference": m.reference, "id": format!("mock-{n}")}))
        .collect();
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "results": results }).to_string(),
    )
        .into_response()
}

async fn hook(State(mock): State<Arc<Mock>>, headers: HeaderMap) -> StatusCode {
    let mut held = mock.hold.subscribe();
    // Only an error if the sender is gone, which lives as long as `mock`.
    let _ = held.wait_for(|hold| !*hold).await;
    if let Some(id) = headers.get("x-stopgate-delivery") {
        let mut seen = mock.hook_events.lock().expect("not poisoned");
        if !seen.contains(id.as_bytes()) {
            seen.insert(id.as_bytes().to_vec());
        }
    }
    mock.hooks.fetch_add(1, Ordering::Relaxed);
    StatusCode::OK
}

/// Also forgets the event ids seen: each run's store numbers its events
/// afresh, so ids repeat from one stopgate to the next.
async fn hold(State(mock): State<Arc<Mock>>) -> StatusCode {
    mock.hook_events.lock().expect("not poisoned").clear();
    mock.hold.send_replace(true);
    StatusCode::NO_CONTENT
}

async fn release(State(mock): State<Arc<Mock>>) -> StatusCode {
    mock.hold.send_replace(false);
    StatusCode::NO_CONTENT
}

async fn stats(State(mock): State<Arc<Mock>>) -> Response {
    let hook_events = mock.hook_events.lock().expect("not poisoned").len();
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!(
            "{{\"accepted\":{},\"unauthorized\":{},\"malformed\":{},\"hooks\":{},\"hook_events\":{},\"requests\":{}}}",
            mock.accepted.load(Ordering::Relaxed),
            mock.unauthorized.load(Ordering::Relaxed),
            mock.malformed.load(Ordering::Relaxed),
            mock.hooks.load(Ordering::Relaxed),
            hook_events,
            mock.requests.load(Ordering::Relaxed),
        ),
    )
        .into_response()
}

struct Args {
    listen: SocketAddr,
    token: Option<String>,
    threads: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: "127.0.0.1:9000".parse().expect("literal address"),
        token: None,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                args.listen = v
                    .parse()
                    .map_err(|_| format!("--listen {v:?}: not an address"))?;
            }
            "--token" => args.token = Some(value()?),
            "--threads" => {
                let v = value()?;
                args.threads = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--threads {v:?}: not a positive number"))?;
            }
            "-h" | "--help" => {
                println!("mock-provider [--listen ADDR] [--token TOKEN] [--threads N]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mock-provider: {e}");
            std::process::exit(2);
        }
    };
    let mock = Arc::new(Mock {
        expected_auth: args.token.map(|t| format!("Bearer {t}").into_bytes()),
        accepted: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        unauthorized: AtomicU64::new(0),
        malformed: AtomicU64::new(0),
        hooks: AtomicU64::new(0),
        hook_events: Mutex::new(HashSet::new()),
        hold: tokio::sync::watch::Sender::new(false),
    });
    let app = Router::new()
        .route("/stats", get(stats))
        .route("/hook", post(hook))
        .route("/hook/hold", post(hold))
        .route("/hook/release", post(release))
        .fallback(send)
        .with_state(mock);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .expect("start the tokio runtime");
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("mock-provider: cannot listen on {}: {e}", args.listen);
                std::process::exit(1);
            }
        };
        println!(
            "mock-provider listening on {}",
            listener.local_addr().expect("bound")
        );
        let serve = axum::serve(listener, app);
        tokio::select! {
            r = serve => if let Err(e) = r { eprintln!("mock-provider: {e}") },
            _ = tokio::signal::ctrl_c() => {},
        }
    });
}
