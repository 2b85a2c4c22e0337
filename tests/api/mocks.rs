//! A loopback stand-in for a real provider's API: records every request as
//! it arrived on the wire (method, path, headers, raw body) and answers with
//! whatever the test scripted. Each test checks the recorded request against
//! the provider's documented format.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// One request as the provider saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The body as form fields, in order.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.body.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    pub fn field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Option<Duration>,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
            delay: None,
        }
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub fn after(mut self, d: Duration) -> Reply {
        self.delay = Some(d);
        self
    }
}

#[derive(Default)]
struct Shared {
    recorded: Mutex<Vec<Recorded>>,
    /// Replies used in order; the last one repeats.
    script: Mutex<VecDeque<Reply>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

#[derive(Clone)]
pub struct ProviderMock {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl ProviderMock {
    /// Answers every path with `reply` until told otherwise.
    pub async fn start(reply: Reply) -> ProviderMock {
        let shared = Arc::new(Shared::default());
        shared.script.lock().unwrap().push_back(reply);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        serve(listener, shared.clone());
        ProviderMock { addr, shared }
    }

    /// A mock whose port is chosen now but which listens only once `open`
    /// is called: until then a connection to it is refused. (The port is
    /// free in between; only the connect-retry test needs this.)
    pub fn reserved(reply: Reply) -> (ProviderMock, impl FnOnce()) {
        let shared = Arc::new(Shared::default());
        shared.script.lock().unwrap().push_back(reply);
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let serving = shared.clone();
        let open = move || {
            let listener = std::net::TcpListener::bind(addr).unwrap();
            listener.set_nonblocking(true).unwrap();
            serve(
                tokio::net::TcpListener::from_std(listener).unwrap(),
                serving,
            );
        };
        (ProviderMock { addr, shared }, open)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the script: these replies in order, the last one repeating.
    pub fn reply(&self, replies: impl IntoIterator<Item = Reply>) {
        let mut s = self.shared.script.lock().unwrap();
        s.clear();
        s.extend(replies);
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.shared.recorded.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.shared.recorded.lock().unwrap().len()
    }

    /// The most requests that were ever being answered at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }
}

/// A request being answered, counted in `count` (and its peak in `max`)
/// until dropped: even when the client gives up and the handler is dropped.
pub struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    pub fn enter(count: &'a AtomicUsize, max: &AtomicUsize) -> InFlight<'a> {
        let now = count.fetch_add(1, Ordering::SeqCst) + 1;
        max.fetch_max(now, Ordering::SeqCst);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let app = Router::new().fallback(handle).with_state(shared);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _in_flight = InFlight::enter(&shared.in_flight, &shared.max_in_flight);
    shared.recorded.lock().unwrap().push(Recorded {
        method,
        path: uri.path().to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let reply = {
        let mut s = shared.script.lock().unwrap();
        if s.len() > 1 {
            s.pop_front().unwrap()
        } else {
            s.front().cloned().expect("a scripted reply")
        }
    };
    if let Some(d) = reply.delay {
        tokio::time::sleep(d).await;
    }
    let mut resp = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (k, v) in reply.headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}
