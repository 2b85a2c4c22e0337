//! Test harness: a mock provider on loopback and `spawn_app()`, which starts
//! the real gateway on port 0 against it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use stopgate::app::App;
use stopgate::config::{Config, Secret, SendWindowsConfig, Settings, TenantConfig, UpstreamKind};
use stopgate::domain::{Action, Event, PhoneNumber, Source, TenantId};
use stopgate::store::Store;

pub const ACME_KEY: &str = "sk_acme_test_key";
pub const BETA_KEY: &str = "sk_beta_test_key";
pub const UPSTREAM_TOKEN: &str = "upstream-token-123";
pub const BASE_URL: &str = "https://stp.example";
pub const INBOUND_SECRET: &str = "whsec_test";

/// How the mock provider answers.
#[derive(Debug, Clone)]
pub enum Behaviour {
    Accept,
    Status(u16),
    RateLimited(u64),
    Delay(Duration),
}

/// A provider speaking stopgate's generic `http` wire format, recording
/// every request it gets.
#[derive(Clone)]
pub struct MockProvider {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Value>>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl MockProvider {
    pub async fn start() -> MockProvider {
        let received = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Mutex::new(Behaviour::Accept));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = (received.clone(), behaviour.clone());
        let app = Router::new()
            .route("/messages", post(mock_send))
            .with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        MockProvider {
            addr,
            received,
            behaviour,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/messages", self.addr)
    }

    pub fn set(&self, b: Behaviour) {
        *self.behaviour.lock().unwrap() = b;
    }

    /// Every message body the provider accepted or refused, in arrival order.
    pub fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }

    /// The messages for `e164` once there are at least `count` of them:
    /// confirmation replies are sent after the webhook answers. Gives up
    /// (returning what arrived) after 10 s.
    pub async fn wait_for(&self, e164: &str, count: usize) -> Vec<Value> {
        for _ in 0..1000 {
            let got = self.received_for(e164);
            if got.len() >= count {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.received_for(e164)
    }

    pub fn received_for(&self, e164: &str) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|m| m["to"] == e164)
            .collect()
    }
}

type MockState = (Arc<Mutex<Vec<Value>>>, Arc<Mutex<Behaviour>>);

async fn mock_send(
    State((received, behaviour)): State<MockState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    // The generic wire format: Bearer token and exactly these four fields.
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {UPSTREAM_TOKEN}"))
    {
        return (StatusCode::UNAUTHORIZED, "bad token").into_response();
    }
    let keys: Vec<&str> = body
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if keys != ["body", "from", "reference", "to"] {
        return (
            StatusCode::BAD_REQUEST,
            format!("unexpected fields {keys:?}"),
        )
            .into_response();
    }
    received.lock().unwrap().push(body.clone());
    let b = behaviour.lock().unwrap().clone();
    match b {
        Behaviour::Accept => {
            Json(json!({"id": format!("mock-{}", body["reference"].as_str().unwrap())}))
                .into_response()
        }
        Behaviour::Status(s) => {
            (StatusCode::from_u16(s).unwrap(), "provider says no").into_response()
        }
        Behaviour::RateLimited(secs) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", secs.to_string())],
            "slow down",
        )
            .into_response(),
        Behaviour::Delay(d) => {
            tokio::time::sleep(d).await;
            Json(json!({"id": "late"})).into_response()
        }
    }
}

pub struct TestApp {
    pub api: String,
    pub public: String,
    pub client: reqwest::Client,
    pub mock: MockProvider,
    pub store: Arc<dyn Store>,
    /// The SMPP listener, when the test config sets `[smpp] listen`.
    pub smpp: Option<SocketAddr>,
    _dir: tempfile::TempDir,
}

/// The test configuration: two tenants, short codes for FR and GB shared,
/// BE, NL and DE dedicated to acme, the mock provider upstream.
pub fn test_config(mock: &MockProvider, dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.server.api_listen = "127.0.0.1:0".into();
    c.server.public_listen = "127.0.0.1:0".into();
    c.server.public_base_url = BASE_URL.into();
    c.storage.path = dir.join("db");
    c.storage.cache_mb = 32;
    c.upstream.kind = UpstreamKind::Http;
    c.upstream.url = mock.url();
    c.upstream.token = Secret(UPSTREAM_TOKEN.into());
    c.upstream.timeout_ms = 1_000;
    c.inbound.secret = Secret(INBOUND_SECRET.into());
    // Far above anything a test does; the 429 test sets its own.
    c.ratelimit.per_minute = 1_000_000;
    c.ratelimit.burst = 1_000_000;
    c.shortcodes = BTreeMap::from([("FR".into(), "36111".into()), ("GB".into(), "60777".into())]);
    c.tenants = vec![
        TenantConfig {
            id: "acme".into(),
            name: "ACME Shop".into(),
            api_key: Some(Secret(ACME_KEY.into())),
            keyword: Some("ACME".into()),
            shortcodes: BTreeMap::from([
                ("BE".into(), "3669".into()),
                ("NL".into(), "4411".into()),
                ("DE".into(), "44744".into()),
            ]),
            // Off, so that a test does not depend on the hour it runs at
            // (at night in Paris, marketing to FR is held): `schedule.rs`
            // turns them on, on a manual clock.
            send_windows: Some(SendWindowsConfig::All(false)),
            ..Default::default()
        },
        TenantConfig {
            id: "beta".into(),
            name: "Beta Bank".into(),
            api_key: Some(Secret(BETA_KEY.into())),
            keyword: Some("BETA".into()),
            send_windows: Some(SendWindowsConfig::All(false)),
            ..Default::default()
        },
    ];
    c
}

/// Where every test process writes its logs; `tests/log_audit.rs` reads them
/// after the suite to prove no line holds a full phone number.
pub fn log_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-logs")
}

/// Sends this process's logs (JSON, debug level) to a file in [`log_dir`].
fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::fs::create_dir_all(log_dir()).unwrap();
        let file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(log_dir().join(format!("api-{}.log", std::process::id())))
            .unwrap();
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter("stopgate=debug,info")
            .with_writer(Mutex::new(file))
            .try_init();
    });
}

/// A log file for a child process's stderr.
pub fn child_log(name: &str) -> std::process::Stdio {
    std::fs::create_dir_all(log_dir()).unwrap();
    let file = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log_dir().join(format!("{name}-{}.log", std::process::id())))
        .unwrap();
    std::process::Stdio::from(file)
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the gateway with the test config, adjusted by `tweak`.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_at(stopgate::clock::system(), tweak).await
}

/// [`spawn_app_with`] on the given clock (a `ManualClock` for send windows).
pub async fn spawn_app_at(
    clock: Arc<dyn stopgate::clock::Clock>,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    init_logging();
    let mock = MockProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&mock, dir.path());
    tweak(&mut config);
    let settings = Settings::from_config(config).expect("test config is valid");
    let app = App::build_with_clock(settings, clock)
        .await
        .expect("app builds");
    let api = format!("http://{}", app.api_addr());
    let public = format!("http://{}", app.public_addr());
    let store = app.store();
    let smpp = app.smpp_addr();
    tokio::spawn(app.run(std::future::pending()));
    TestApp {
        smpp,
        api,
        public,
        client: reqwest::Client::new(),
        mock,
        store,
        _dir: dir,
    }
}

/// The `[storage]` of a node on the PostgreSQL database at `url`. Startup
/// does not wait for a database that is not there: tests start it first.
pub fn postgres_storage(url: &str) -> stopgate::config::StorageConfig {
    stopgate::config::StorageConfig {
        kind: stopgate::config::StorageKind::Postgres,
        url: Secret(url.to_string()),
        // Room for the three batching writers and the request handlers,
        // while many tests share one server.
        pool_size: 8,
        connect_retry_secs: 0,
        ..Default::default()
    }
}

/// [`spawn_app_with`] on the PostgreSQL database at `url` instead of an
/// embedded store. Call it twice with one URL for two nodes of one
/// cluster: each has its own listeners, mock provider, pool and dispatcher.
pub async fn spawn_app_on(url: &str, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let url = url.to_string();
    spawn_app_with(move |c| {
        c.storage = postgres_storage(&url);
        tweak(c);
    })
    .await
}

impl TestApp {
    /// The directory of the embedded store.
    pub fn store_path(&self) -> std::path::PathBuf {
        self._dir.path().join("db")
    }

    /// `POST /v1/messages` as a tenant; returns status and JSON body.
    pub async fn send(&self, key: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(format!("{}/v1/messages", self.api))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Sends and returns the single recipient's result, asserting a 200.
    pub async fn send_one(&self, key: &str, body: Value) -> Value {
        let (status, json) = self.send(key, body).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        json["results"][0].clone()
    }

    /// Seeds an opt-out straight into the store (until the API for it exists).
    pub async fn suppress(&self, tenant: &str, number: &str) {
        let n = PhoneNumber::parse(number).unwrap();
        let e = Event::new(
            TenantId::parse(tenant).unwrap(),
            &n,
            Action::OptOut,
            Source::Import,
        );
        self.store.record(&e).await.unwrap();
    }

    /// A number's history for a tenant, read from the store.
    pub async fn events(&self, tenant: &str, number: &str) -> Vec<Event> {
        self.store
            .events(
                &TenantId::parse(tenant).unwrap(),
                &PhoneNumber::parse(number).unwrap(),
            )
            .await
            .unwrap()
    }

    /// Whether the store holds `number` as suppressed for `tenant`.
    pub async fn is_suppressed(&self, tenant: &str, number: &str) -> bool {
        self.store
            .suppression(
                &TenantId::parse(tenant).unwrap(),
                &PhoneNumber::parse(number).unwrap(),
            )
            .await
            .unwrap()
            .is_some_and(|s| s.suppressed)
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>">` under `secret`, computed as a
/// provider would (independently of stopgate's own code).
pub fn sign_at(secret: &str, t: i64, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The old untimed `sha256=<hex>` form.
pub fn sign_legacy(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A fresh signature of `body`: now, or a second later than the last one
/// given for the same body, so that two sends of one body are two requests
/// (the same signature twice is a replay, and is not acted on again).
pub fn sign(secret: &str, body: &[u8]) -> String {
    static LAST: Mutex<Option<std::collections::HashMap<Vec<u8>, i64>>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap();
    let seen = last.get_or_insert_with(Default::default);
    let t = match seen.get(body) {
        Some(prev) => (*prev + 1).max(unix_now()),
        None => unix_now(),
    };
    seen.insert(body.to_vec(), t);
    sign_at(secret, t, body)
}

impl TestApp {
    /// A signed `POST /v1/inbound` of `{"from", "to", "text"}`.
    pub async fn mo(&self, from: &str, to: &str, text: &str) -> (StatusCode, Value) {
        let body = serde_json::to_vec(&json!({"from": from, "to": to, "text": text})).unwrap();
        let sig = sign(INBOUND_SECRET, &body);
        self.post_inbound(body, Some(&sig), "application/json")
            .await
    }

    /// `POST /v1/inbound` with exactly this body, signature header and content type.
    pub async fn post_inbound(
        &self,
        body: Vec<u8>,
        signature: Option<&str>,
        content_type: &str,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .post(format!("{}/v1/inbound", self.public))
            .header("content-type", content_type)
            .body(body);
        if let Some(sig) = signature {
            req = req.header("x-stopgate-signature", sig);
        }
        let resp = req.send().await.unwrap();
        let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Sends one marketing message as the tenant with `key`; whether it was blocked.
    pub async fn blocked(&self, key: &str, number: &str) -> bool {
        let r = self
            .send_one(key, json!({"to": number, "from": "SHOP", "body": "Sale"}))
            .await;
        match r["status"].as_str() {
            Some("blocked") => true,
            Some("sent") => false,
            _ => panic!("unexpected result {r}"),
        }
    }
}
