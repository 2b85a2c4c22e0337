//! Coalescing concurrent messages into one upstream request (CM's many-`msg`
//! form, the generic `http` batch form), against a loopback provider that
//! records every request and answers each message of it: in reverse order,
//! so that a result matched by position lands on the wrong recipient.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use stopgate::config::{Config, Secret, UpstreamKind};

use crate::helpers::*;

const CM_TOKEN: &str = "00000000-0000-0000-0000-00000000cafe";
/// The number the provider refuses inside a batch.
const REFUSED: &str = "+12125550105";

/// One request as the provider got it.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    auth: String,
    body: Value,
    at: Instant,
}

impl Seen {
    /// The messages it carried, as (recipient in E.164, reference).
    fn messages(&self) -> Vec<(String, String)> {
        if let Some(msgs) = self.body["messages"]["msg"].as_array() {
            return msgs
                .iter()
                .map(|m| {
                    let n = m["to"][0]["number"].as_str().unwrap();
                    (
                        format!("+{}", &n[2..]),
                        m["reference"].as_str().unwrap().into(),
                    )
                })
                .collect();
        }
        self.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["to"].as_str().unwrap().into(),
                    m["reference"].as_str().unwrap().into(),
                )
            })
            .collect()
    }
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    /// Every answer waits this long.
    delay: Mutex<Duration>,
    /// Instead of answering each message: this status, with `Retry-After`.
    fail: Mutex<Option<(u16, Option<u64>)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

#[derive(Clone)]
struct BatchMock {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl BatchMock {
    async fn start() -> BatchMock {
        let shared = Arc::new(Shared::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(answer).with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        BatchMock { addr, shared }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn delay(&self, d: Duration) {
        *self.shared.delay.lock().unwrap() = d;
    }

    fn fail(&self, status: u16, retry_after: Option<u64>) {
        *self.shared.fail.lock().unwrap() = Some((status, retry_after));
    }

    fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _in_flight = crate::mocks::InFlight::enter(&shared.in_flight, &shared.max_in_flight);
    let seen = Seen {
        path: uri.path().to_string(),
        auth: headers
            .get("authorization")
            .or_else(|| headers.get("x-cm-producttoken"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        at: Instant::now(),
    };
    shared.seen.lock().unwrap().push(seen.clone());
    let delay = *shared.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    if let Some((status, retry_after)) = *shared.fail.lock().unwrap() {
        let mut resp = (
            StatusCode::from_u16(status).unwrap(),
            json!({"message": "no"}).to_string(),
        )
            .into_response();
        if let Some(s) = retry_after {
            resp.headers_mut()
                .insert("retry-after", s.to_string().parse().unwrap());
        }
        return resp;
    }
    let mut messages = seen.messages();
    messages.reverse();
    let cm = seen.body["messages"]["msg"].is_array();
    let body = if cm {
        let answers: Vec<Value> = messages
            .iter()
            .map(|(to, reference)| {
                if to == REFUSED {
                    json!({"to": format!("00{}", &to[1..]), "status": "Rejected", "reference": reference,
                           "parts": 0, "messageDetails": "Gsm is not a number.", "messageErrorCode": 303})
                } else {
                    json!({"to": format!("00{}", &to[1..]), "status": "Accepted", "reference": reference,
                           "parts": 1, "messageDetails": null, "messageErrorCode": 0})
                }
            })
            .collect();
        json!({"details": "Created messages", "errorCode": 0, "messages": answers})
    } else {
        let results: Vec<Value> = messages
            .iter()
            .map(|(to, reference)| {
                if to == REFUSED {
                    json!({"reference": reference,
                           "error": {"code": "invalid_number", "message": "no such number"}})
                } else {
                    // Derived from the reference, not the number: ids are logged as they are.
                    json!({"reference": reference, "id": format!("prov-{reference}")})
                }
            })
            .collect();
        json!({ "results": results })
    };
    ([("content-type", "application/json")], body.to_string()).into_response()
}

async fn cm_app(mock: &BatchMock, extra: impl FnOnce(&mut Config)) -> TestApp {
    let url = mock.base_url();
    spawn_app_with(move |c| {
        c.upstream.kind = UpstreamKind::Cm;
        c.upstream.url = url;
        c.upstream.product_token = Secret(CM_TOKEN.into());
        c.upstream.batch_wait_us = 1000;
        extra(c);
    })
    .await
}

async fn http_batch_app(mock: &BatchMock, extra: impl FnOnce(&mut Config)) -> TestApp {
    let base = mock.base_url();
    spawn_app_with(move |c| {
        c.upstream.kind = UpstreamKind::Http;
        c.upstream.url = format!("{base}/messages");
        c.upstream.batch_url = format!("{base}/batch");
        c.upstream.batch_wait_us = 1000;
        extra(c);
    })
    .await
}

/// `n` US numbers from +12125550100, one request (its recipients go to the
/// provider concurrently); the results.
async fn send_many(app: &TestApp, n: u32) -> Vec<Value> {
    let to: Vec<String> = (0..n).map(|i| format!("+1212555{:04}", 100 + i)).collect();
    let (status, answer) = app
        .send(
            ACME_KEY,
            json!({"to": to, "from": "ACME", "body": "Your code is 1234", "category": "otp"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    answer["results"].as_array().unwrap().clone()
}

/// Every message reached the provider exactly once, in fewer requests than
/// messages, at least one of them carrying several.
fn assert_coalesced(seen: &[Seen], n: usize) -> HashMap<String, String> {
    let mut by_reference = HashMap::new();
    for s in seen {
        for (to, reference) in s.messages() {
            assert!(
                by_reference.insert(reference, to).is_none(),
                "a message sent twice"
            );
        }
    }
    assert_eq!(by_reference.len(), n, "every message sent once");
    assert!(
        seen.len() < n,
        "{n} messages in {} requests: not coalesced",
        seen.len()
    );
    assert!(seen.iter().any(|s| s.messages().len() > 1));
    by_reference
}

fn assert_failed(r: &Value, code: &str) {
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["code"], code, "{r}");
}

#[tokio::test]
async fn cm_concurrent_sends_share_requests_and_each_recipient_gets_its_own_verdict() {
    let mock = BatchMock::start().await;
    // Each request is answered slowly, so that the others gather meanwhile.
    mock.delay(Duration::from_millis(200));
    let app = cm_app(&mock, |_| {}).await;
    let results = send_many(&app, 12).await;

    let seen = mock.seen();
    let to_of = assert_coalesced(&seen, 12);
    assert!(
        seen.iter().any(|s| s.messages().len() == 1),
        "the first found the pipe idle and went alone"
    );
    for s in &seen {
        assert_eq!(s.path, "/v1.0/message");
        assert_eq!(s.auth, CM_TOKEN);
        for m in s.body["messages"]["msg"].as_array().unwrap() {
            assert_eq!(m["allowedChannels"], json!(["SMS"]));
            assert_eq!(m["body"]["content"], "Your code is 1234");
        }
    }
    for r in &results {
        let id = r["id"].as_str().unwrap();
        assert_eq!(
            to_of[id], r["to"],
            "the message with this id went to this recipient"
        );
        if r["to"] == REFUSED {
            assert_failed(r, "upstream_rejected");
            assert_eq!(r["error"]["provider_code"], "303", "{r}");
        } else {
            assert_eq!(r["status"], "sent", "{r}");
            // CM's id is our reference, echoed in its verdict for this message.
            assert_eq!(r["provider_id"], r["id"], "{r}");
        }
    }
}

#[tokio::test]
async fn an_idle_send_goes_alone_and_does_not_wait() {
    let mock = BatchMock::start().await;
    let app = cm_app(&mock, |_| {}).await;
    let mut fastest = Duration::MAX;
    // The fastest of many, so that a busy machine does not decide it.
    for i in 0..50 {
        let started = Instant::now();
        let r = send_many_one(&app, i).await;
        assert_eq!(r["status"], "sent", "{r}");
        let seen = mock.seen();
        let last = seen.last().unwrap();
        assert_eq!(last.messages().len(), 1);
        fastest = fastest.min(last.at - started);
    }
    assert_eq!(mock.seen().len(), 50, "one request per idle message");
    // A gathered message waits its full batch_wait_us (1 ms) before leaving.
    assert!(
        fastest < Duration::from_micros(1000),
        "the fastest idle message reached the provider {fastest:?} after it was sent"
    );
}

async fn send_many_one(app: &TestApp, i: u32) -> Value {
    app.send_one(
        ACME_KEY,
        json!({"to": format!("+1212555{:04}", 300 + i), "from": "ACME", "body": "Hi", "category": "otp"}),
    )
    .await
}

#[tokio::test]
async fn batch_wait_0_sends_one_request_per_message() {
    let mock = BatchMock::start().await;
    mock.delay(Duration::from_millis(100));
    let app = cm_app(&mock, |c| c.upstream.batch_wait_us = 0).await;
    let results = send_many(&app, 8).await;
    assert!(results.iter().filter(|r| r["status"] == "sent").count() == 7);
    let seen = mock.seen();
    assert_eq!(seen.len(), 8);
    assert!(seen.iter().all(|s| s.messages().len() == 1));
    assert!(
        mock.max_in_flight() > 1,
        "they were concurrent, so they could have been coalesced"
    );
}

#[tokio::test]
async fn a_429_on_a_batch_fails_its_messages_and_pauses_sending() {
    let mock = BatchMock::start().await;
    mock.delay(Duration::from_millis(200));
    mock.fail(429, Some(120));
    let app = cm_app(&mock, |_| {}).await;
    let results = send_many(&app, 6).await;
    for r in &results {
        assert_failed(r, "upstream_rate_limited");
        assert_eq!(r["error"]["retry_after"], 120, "{r}");
    }
    let requests = mock.seen().len();
    assert!(requests < 6, "{requests} requests for 6 messages");

    // While Retry-After runs nothing is sent: the next messages fail fast.
    let results = send_many(&app, 3).await;
    for r in &results {
        assert_failed(r, "upstream_rate_limited");
        assert!(r["error"]["retry_after"].as_u64().unwrap() <= 120, "{r}");
    }
    assert_eq!(mock.seen().len(), requests, "no request during the pause");
}

#[tokio::test]
async fn a_5xx_fails_every_message_of_the_batch_and_the_breaker_counts_each() {
    let mock = BatchMock::start().await;
    mock.delay(Duration::from_millis(100));
    mock.fail(503, None);
    let app = cm_app(&mock, |c| {
        c.upstream.breaker.consecutive_failures = 5;
        c.upstream.breaker.cooldown_ms = 600_000;
    })
    .await;
    let results = send_many(&app, 6).await;
    for r in &results {
        assert_failed(r, "upstream_unavailable");
    }
    let requests = mock.seen().len();
    assert!(requests < 5, "{requests} requests for 6 messages");

    // Six failed messages, in fewer than five requests: the breaker counts
    // messages, as it always has, and is open now.
    let results = send_many(&app, 2).await;
    for r in &results {
        assert_failed(r, "upstream_unavailable");
        assert!(
            r["error"]["message"].as_str().unwrap().contains("circuit"),
            "{r}"
        );
    }
    assert_eq!(mock.seen().len(), requests, "an open circuit sends nothing");
}

#[tokio::test]
async fn the_http_batch_form_coalesces_and_maps_results_by_reference() {
    let mock = BatchMock::start().await;
    mock.delay(Duration::from_millis(200));
    let app = http_batch_app(&mock, |_| {}).await;
    let results = send_many(&app, 12).await;

    let seen = mock.seen();
    let to_of = assert_coalesced(&seen, 12);
    assert!(
        seen.iter().any(|s| s.messages().len() == 1),
        "the idle first went alone"
    );
    for s in &seen {
        assert_eq!(s.path, "/batch");
        assert_eq!(s.auth, format!("Bearer {UPSTREAM_TOKEN}"));
        let keys: Vec<&String> = s.body.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["messages"]);
        for m in s.body["messages"].as_array().unwrap() {
            let keys: Vec<&String> = m.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["body", "from", "reference", "to"]);
            assert_eq!(m["from"], "ACME");
        }
    }
    let numbers: HashSet<&str> = results.iter().map(|r| r["to"].as_str().unwrap()).collect();
    assert_eq!(numbers.len(), 12);
    for r in &results {
        assert_eq!(to_of[r["id"].as_str().unwrap()], r["to"]);
        if r["to"] == REFUSED {
            assert_failed(r, "upstream_rejected");
            assert_eq!(r["error"]["provider_code"], "invalid_number", "{r}");
            assert!(r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no such number"));
        } else {
            assert_eq!(r["status"], "sent", "{r}");
            // The provider's own id for this recipient's message.
            assert_eq!(
                r["provider_id"],
                format!("prov-{}", r["id"].as_str().unwrap()),
                "{r}"
            );
        }
    }
}

#[tokio::test]
async fn the_http_batch_form_fails_a_batch_as_a_whole_on_5xx_and_pauses_on_429() {
    let mock = BatchMock::start().await;
    mock.delay(Duration::from_millis(100));
    mock.fail(502, None);
    let app = http_batch_app(&mock, |c| {
        c.upstream.breaker.consecutive_failures = 100;
        c.upstream.breaker.min_calls = 100;
        c.upstream.breaker.window = 100;
    })
    .await;
    let results = send_many(&app, 6).await;
    for r in &results {
        assert_failed(r, "upstream_unavailable");
    }
    assert!(mock.seen().len() < 6);

    mock.fail(429, Some(60));
    let results = send_many(&app, 6).await;
    for r in &results {
        assert_failed(r, "upstream_rate_limited");
    }
    let requests = mock.seen().len();
    let r = send_many_one(&app, 0).await;
    assert_failed(&r, "upstream_rate_limited");
    assert_eq!(mock.seen().len(), requests, "paused: nothing sent");
}
