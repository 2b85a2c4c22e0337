//! Deadlines and connection caps on both listeners, with raw sockets on
//! loopback: silent, trickling and stalled clients are closed on time while
//! normal clients are served; a full public listener leaves the API alone.

use std::future::Future;
use std::time::Duration;

use serde_json::{json, Value};
use stopgate::app::App;
use stopgate::config::{Config, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::helpers::{
    sign, spawn_app_with, test_config, Behaviour, MockProvider, TestApp, ACME_KEY, INBOUND_SECRET,
};

const HEADER: Duration = Duration::from_millis(300);
const BODY: Duration = Duration::from_millis(500);
/// Longer than HEADER, so the tests tell the two apart.
const IDLE: Duration = Duration::from_millis(1000);
/// Scheduling slack on a loaded 2-core machine.
const MARGIN: Duration = Duration::from_millis(700);

fn short_timeouts(c: &mut Config) {
    c.server.header_read_timeout_ms = HEADER.as_millis() as u64;
    c.server.body_timeout_ms = BODY.as_millis() as u64;
    c.server.idle_timeout_ms = IDLE.as_millis() as u64;
}

async fn connect(base: &str) -> TcpStream {
    TcpStream::connect(base.strip_prefix("http://").unwrap())
        .await
        .unwrap()
}

/// Waits until the server closes `s` (EOF or reset), at most until
/// `since + limit`: what it sent first, and when it closed, since `since`.
async fn closed(
    s: &mut (impl tokio::io::AsyncRead + Unpin),
    since: Instant,
    limit: Duration,
) -> (String, Duration) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(since + limit, s.read(&mut buf)).await {
            Err(_) => panic!(
                "still open after {limit:?}, having sent {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (String::from_utf8_lossy(&got).into(), since.elapsed())
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Asserts the connection was closed by a deadline of `deadline`: not
/// before it, and not long after.
fn assert_closed_at(what: &str, elapsed: Duration, deadline: Duration) {
    assert!(
        elapsed >= deadline && elapsed <= deadline + MARGIN,
        "{what}: closed after {elapsed:?}, deadline {deadline:?}"
    );
}

/// One normal client's round on the API listener: an OTP sent, the health check.
async fn api_round(app: &TestApp) {
    let r = app
        .send_one(
            ACME_KEY,
            json!({"to": "+33612345678", "from": "ACME", "body": "Your code is 1234", "category": "otp"}),
        )
        .await;
    assert_eq!(r["status"], "sent", "{r}");
    let resp = app
        .client
        .get(format!("{}/healthz", app.api))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// One normal client's round on both listeners.
async fn serve_one(app: &TestApp) {
    api_round(app).await;
    let resp = app
        .client
        .get(format!("{}/healthz", app.public))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// Runs `until` while a normal client keeps being served; its output and
/// how many rounds the client completed meanwhile (each bounded by `until`).
async fn while_serving<T>(app: &TestApp, until: impl Future<Output = T>) -> (T, usize) {
    tokio::pin!(until);
    let mut served = 0;
    loop {
        tokio::select! {
            out = &mut until => return (out, served),
            _ = serve_one(app) => served += 1,
        }
    }
}

/// Reads one response (head and a `Content-Length` body) from a connection
/// that stays open: its status and body.
async fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end];
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().unwrap())
                })
                .expect("a Content-Length");
            if got.len() >= end + 4 + len {
                let status = head[9..12].parse().unwrap();
                return (status, text[end + 4..end + 4 + len].to_string());
            }
        }
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .expect("a response in time")
            .unwrap();
        assert!(
            n > 0,
            "closed mid-response: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

/// The status and JSON body of the one response in `raw`.
fn parse(raw: &str) -> (u16, Value) {
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    (
        head[9..12].parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn silent_connections_are_closed_at_the_header_deadline_while_others_are_served() {
    let app = spawn_app_with(short_timeouts).await;
    let since = Instant::now();
    let mut api = connect(&app.api).await;
    let mut public = connect(&app.public).await;
    let ((api_closed, public_closed), served) = while_serving(&app, async {
        let a = closed(&mut api, since, HEADER + MARGIN).await;
        let p = closed(&mut public, since, HEADER + MARGIN).await;
        (a, p)
    })
    .await;
    assert!(served >= 1, "the normal client was served meanwhile");
    for (what, (sent, elapsed)) in [("api", api_closed), ("public", public_closed)] {
        assert_eq!(sent, "", "{what}: nothing is answered to nothing");
        assert_closed_at(what, elapsed, HEADER);
    }
}

#[tokio::test]
async fn partial_and_trickling_headers_are_cut_at_the_header_deadline() {
    let app = spawn_app_with(short_timeouts).await;
    let since = Instant::now();
    let mut partial = connect(&app.api).await;
    partial
        .write_all(b"POST /v1/messages HTTP/1.1\r\nHost: stopgate\r\nContent-Ty")
        .await
        .unwrap();
    // A header byte every 50 ms: the head keeps arriving, but never whole.
    let drip = connect(&app.public).await;
    let (mut drip_read, mut drip_write) = drip.into_split();
    let dripping = tokio::spawn(async move {
        drip_write
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: stopgate\r\n")
            .await
            .unwrap();
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if drip_write.write_all(b"X").await.is_err() {
                return true;
            }
        }
        false
    });
    let ((partial_closed, drip_closed), served) = while_serving(&app, async {
        let p = closed(&mut partial, since, HEADER + MARGIN).await;
        let d = closed(&mut drip_read, since, HEADER + MARGIN).await;
        (p, d)
    })
    .await;
    assert!(served >= 1, "the normal client was served meanwhile");
    assert_eq!(partial_closed.0, "");
    assert_closed_at("partial head", partial_closed.1, HEADER);
    assert_eq!(drip_closed.0, "", "no answer to a head that never ends");
    assert_closed_at("trickling head", drip_closed.1, HEADER);
    assert!(
        tokio::time::timeout(Duration::from_secs(2), dripping)
            .await
            .unwrap()
            .unwrap(),
        "the dripping client's writes fail once it is cut"
    );
}

#[tokio::test]
async fn a_stalled_or_trickling_body_gets_408_at_the_body_deadline() {
    let app = spawn_app_with(short_timeouts).await;
    let since = Instant::now();
    // API: a send whose body stops halfway.
    let mut api = connect(&app.api).await;
    api.write_all(
        format!(
            "POST /v1/messages HTTP/1.1\r\nHost: stopgate\r\nAuthorization: Bearer {ACME_KEY}\r\n\
             Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"to\": \"+336"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // Public: a signed webhook whose body trickles in, a byte every 50 ms.
    let body = serde_json::to_vec(&json!({"from": "+33612345678", "to": "36111", "text": "STOP"}))
        .unwrap();
    let head = format!(
        "POST /v1/inbound HTTP/1.1\r\nHost: stopgate\r\nContent-Type: application/json\r\n\
         X-Stopgate-Signature: {}\r\nContent-Length: {}\r\n\r\n",
        sign(INBOUND_SECRET, &body),
        body.len()
    );
    let public = connect(&app.public).await;
    let (mut public_read, mut public_write) = public.into_split();
    public_write.write_all(head.as_bytes()).await.unwrap();
    let trickle = tokio::spawn(async move {
        // At most `body.len()` writes, 50 ms apart: longer than the deadline.
        for b in body {
            if public_write.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let ((api_closed, public_closed), served) = while_serving(&app, async {
        let a = closed(&mut api, since, BODY + MARGIN).await;
        let p = closed(&mut public_read, since, BODY + MARGIN).await;
        (a, p)
    })
    .await;
    trickle.abort();
    assert!(served >= 1, "the normal client was served meanwhile");
    for (what, (raw, elapsed)) in [("api", api_closed), ("public", public_closed)] {
        let (status, json) = parse(&raw);
        assert_eq!(status, 408, "{what}: {raw}");
        assert_eq!(json["error"]["code"], "request_timeout", "{what}: {raw}");
        assert_closed_at(what, elapsed, BODY);
    }
    // The trickled STOP was never acted on.
    assert!(!app.blocked(ACME_KEY, "+33612345678").await);
}

#[tokio::test]
async fn a_kept_alive_connection_lives_until_the_idle_deadline_not_the_header_one() {
    let app = spawn_app_with(short_timeouts).await;
    let mut s = connect(&app.api).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: stopgate\r\n\r\n";
    s.write_all(request).await.unwrap();
    assert_eq!(read_response(&mut s).await.0, 200);
    // Quiet for twice the header deadline: still open...
    let mut buf = [0u8; 16];
    assert!(
        tokio::time::timeout(2 * HEADER, s.read(&mut buf))
            .await
            .is_err(),
        "closed before the idle deadline"
    );
    // ...and usable.
    s.write_all(request).await.unwrap();
    assert_eq!(read_response(&mut s).await.0, 200);
    let since = Instant::now();
    let (sent, elapsed) = closed(&mut s, since, IDLE + MARGIN).await;
    assert_eq!(sent, "");
    // `since` is taken just after the response: allow the time it took to read it.
    assert!(
        elapsed + Duration::from_millis(100) >= IDLE && elapsed <= IDLE + MARGIN,
        "idle connection closed after {elapsed:?}, idle deadline {IDLE:?}"
    );
}

#[tokio::test]
async fn a_full_public_listener_leaves_the_api_listener_serving() {
    const CAP: usize = 4;
    let app = spawn_app_with(|c| {
        short_timeouts(c);
        c.server.public_max_connections = CAP;
        c.server.api_max_connections = CAP;
    })
    .await;
    let since = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..CAP {
        stalled.push(connect(&app.public).await);
    }
    // Let the server accept them all, so the next one waits for a slot.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let fresh = reqwest::Client::new();
    let public = app.public.clone();
    let waiting = tokio::spawn(async move {
        let resp = fresh.get(format!("{public}/healthz")).send().await.unwrap();
        (resp.status().as_u16(), since.elapsed())
    });
    // The API listener has its own connections: served at once, every time.
    for _ in 0..3 {
        let started = Instant::now();
        api_round(&app).await;
        assert!(
            started.elapsed() < HEADER,
            "API round took {:?}",
            started.elapsed()
        );
    }
    assert!(
        !waiting.is_finished(),
        "the public listener is full, so its next client waits"
    );
    // Once the stalled ones are closed at their deadline, it serves again.
    let (status, at) = tokio::time::timeout(HEADER + MARGIN + MARGIN, waiting)
        .await
        .expect("served once slots free up")
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        at >= HEADER,
        "served after {at:?}, before any slot was free"
    );
    for mut s in stalled {
        let (_, elapsed) = closed(&mut s, since, HEADER + MARGIN).await;
        assert_closed_at("stalled", elapsed, HEADER);
    }
}

#[tokio::test]
async fn a_streamed_import_may_outlast_the_body_deadline() {
    let app = spawn_app_with(short_timeouts).await;
    let rows: Vec<String> = (0..8).map(|i| format!("+1212555{i:04}\n")).collect();
    let body_len = "number\n".len() + rows.iter().map(String::len).sum::<usize>();
    let mut s = connect(&app.api).await;
    s.write_all(
        format!(
            "POST /v1/suppressions/import HTTP/1.1\r\nHost: stopgate\r\nAuthorization: Bearer {ACME_KEY}\r\n\
             Content-Type: text/csv\r\nContent-Length: {body_len}\r\n\r\nnumber\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // A row every 150 ms: 1.2 s in all, more than twice the body deadline.
    let started = Instant::now();
    for row in &rows {
        tokio::time::sleep(Duration::from_millis(150)).await;
        s.write_all(row.as_bytes()).await.unwrap();
    }
    let (status, body) = read_response(&mut s).await;
    assert!(started.elapsed() > 2 * BODY);
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["imported"], 8, "{report}");
}

#[tokio::test]
async fn a_stalled_import_is_cut_at_the_body_deadline_after_its_last_chunk() {
    let app = spawn_app_with(short_timeouts).await;
    let mut s = connect(&app.api).await;
    s.write_all(
        format!(
            "POST /v1/suppressions/import HTTP/1.1\r\nHost: stopgate\r\nAuthorization: Bearer {ACME_KEY}\r\n\
             Content-Type: text/csv\r\nContent-Length: 1000\r\n\r\nnumber\n+12125550001\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let since = Instant::now();
    let (raw, elapsed) = closed(&mut s, since, BODY + MARGIN).await;
    assert_closed_at("stalled import", elapsed, BODY);
    // The import keeps the rows it read and reports where the upload was cut.
    let (status, report) = parse(&raw);
    assert_eq!(status, 200, "{raw}");
    assert_eq!(
        (report["imported"].as_u64(), report["failed"].as_u64()),
        (Some(1), Some(1)),
        "{report}"
    );
    let error = report["errors"][0]["message"].as_str().unwrap();
    assert!(error.contains("did not arrive within"), "{report}");
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_closes_idle_connections() {
    let mock = MockProvider::start().await;
    mock.set(Behaviour::Delay(Duration::from_millis(600)));
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&mock, dir.path());
    // Long deadlines: what closes connections here is the shutdown.
    config.server.idle_timeout_ms = 60_000;
    config.server.header_read_timeout_ms = 60_000;
    let app = App::build(Settings::from_config(config).unwrap())
        .await
        .unwrap();
    let api = format!("http://{}", app.api_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    // An idle kept-alive connection...
    let mut idle = connect(&api).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: stopgate\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut idle).await.0, 200);
    // ...and a send in flight at the provider.
    let client = reqwest::Client::new();
    let in_flight = tokio::spawn({
        let (client, api) = (client.clone(), api.clone());
        async move {
            let resp = client
                .post(format!("{api}/v1/messages"))
                .bearer_auth(ACME_KEY)
                .json(&json!({"to": "+33612345678", "from": "ACME", "body": "code 1", "category": "otp"}))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let since = Instant::now();
    stop.send(()).unwrap();
    // The idle connection goes at once, not after its 60 s.
    closed(&mut idle, since, MARGIN).await;
    // The in-flight send finishes.
    let (status, json) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["results"][0]["status"], "sent", "{json}");
    // New connections are refused, and the app stops.
    assert!(TcpStream::connect(api.strip_prefix("http://").unwrap())
        .await
        .is_err());
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("stops within the grace period")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_twilio_shaped_endpoints_answer_a_stalled_body_in_their_own_shape() {
    const SID: &str = "AC0123456789abcdef0123456789abcdef";
    let app = spawn_app_with(|c| {
        short_timeouts(c);
        c.tenants[0].twilio = Some(stopgate::config::TwilioFrontConfig {
            account_sid: SID.into(),
            auth_token: Some(stopgate::config::Secret("front-token".into())),
            ..Default::default()
        });
        c.inbound.twilio_auth_token = stopgate::config::Secret("webhook-token".into());
    })
    .await;
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{SID}:front-token"));
    let since = Instant::now();
    let mut front = connect(&app.api).await;
    front
        .write_all(
            format!(
                "POST /2010-04-01/Accounts/{SID}/Messages.json HTTP/1.1\r\nHost: stopgate\r\n\
                 Authorization: Basic {basic}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: 100\r\n\r\nTo=%2B3361"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut inbound = connect(&app.public).await;
    inbound
        .write_all(
            b"POST /inbound/twilio HTTP/1.1\r\nHost: stopgate\r\nX-Twilio-Signature: abc=\r\n\
              Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nFrom=",
        )
        .await
        .unwrap();
    let (front_raw, front_at) = closed(&mut front, since, BODY + MARGIN).await;
    let (inbound_raw, inbound_at) = closed(&mut inbound, since, BODY + MARGIN).await;
    let (status, json) = parse(&front_raw);
    assert_eq!(
        (status, json["code"].as_u64()),
        (408, Some(20408)),
        "{front_raw}"
    );
    assert_closed_at("twilio front", front_at, BODY);
    let (status, json) = parse(&inbound_raw);
    assert_eq!(status, 408, "{inbound_raw}");
    assert_eq!(json["error"]["code"], "request_timeout", "{inbound_raw}");
    assert_closed_at("twilio inbound", inbound_at, BODY);
}
