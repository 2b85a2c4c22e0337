//! Crash tests on the real binary: an acknowledged opt-out, and a link that
//! reached the provider, survive SIGKILL.
//!
//! The binary runs with a config file in a tempdir, both listeners on port
//! 0 and JSON logs; its addresses come from the `stopgate listening` log
//! line. It is killed with SIGKILL in the middle of a burst and restarted on
//! the same store.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_stopgate");

pub struct Running {
    pub child: Child,
    pub api: String,
    pub public: String,
}

pub fn write_config(dir: &Path, mock: &MockProvider) -> std::path::PathBuf {
    write_config_with(dir, mock, "")
}

/// [`write_config`] with `extra` TOML at the end (it extends the acme tenant).
pub fn write_config_with(dir: &Path, mock: &MockProvider, extra: &str) -> std::path::PathBuf {
    let path = dir.join("stopgate.toml");
    let toml = format!(
        r#"
[server]
api_listen = "127.0.0.1:0"
public_listen = "127.0.0.1:0"
public_base_url = "{BASE_URL}"
[storage]
path = "{db}"
cache_mb = 32
[upstream]
kind = "http"
url = "{url}"
token = "{UPSTREAM_TOKEN}"
timeout_ms = 5000
[inbound]
secret = "{INBOUND_SECRET}"
[shortcodes]
FR = "36111"
[ratelimit]
per_minute = 1000000
burst = 1000000
[log]
format = "json"
filter = "stopgate=debug,info"
[[tenants]]
id = "acme"
name = "ACME Shop"
api_key = "{ACME_KEY}"
keyword = "ACME"
# Send windows off: a test must not depend on the hour it runs at.
send_windows = false
{extra}
"#,
        db = dir.join("db").display(),
        url = mock.url(),
    );
    std::fs::write(&path, toml).unwrap();
    path
}

/// Starts the binary and waits for its `stopgate listening` log line.
pub async fn start(config: &Path) -> Running {
    start_with(&[], config).await
}

/// [`start`], the binary run by `wrapper` (`strace ...`), if any.
pub async fn start_with(wrapper: &[&str], config: &Path) -> Running {
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    let mut child = command
        .args(["serve", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .env_remove("STOPGATE_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // Every line also goes to the suite's log directory, for the privacy audit.
    std::fs::create_dir_all(log_dir()).unwrap();
    let mut log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log_dir().join(format!("crash-{}.log", std::process::id())))
        .unwrap();
    let addrs = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            writeln!(log, "{line}").unwrap();
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["message"] == "stopgate listening" {
                return (
                    v["api"].as_str().unwrap().to_string(),
                    v["public"].as_str().unwrap().to_string(),
                );
            }
        }
        panic!("stopgate exited before listening");
    })
    .await
    .expect("stopgate logs `stopgate listening`");
    // Keep draining the log so the child never blocks on a full pipe.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = writeln!(log, "{line}");
        }
    });
    Running {
        child,
        api: format!("http://{}", addrs.0),
        public: format!("http://{}", addrs.1),
    }
}

pub async fn sigkill(mut r: Running) {
    r.child.start_kill().unwrap(); // SIGKILL on unix
    r.child.wait().await.unwrap();
}

/// Marketing sends to `numbers` as acme: the status of each, in order.
async fn statuses(client: &reqwest::Client, api: &str, numbers: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for chunk in numbers.chunks(1000) {
        let resp: Value = client
            .post(format!("{api}/v1/messages"))
            .bearer_auth(ACME_KEY)
            .json(&json!({"to": chunk, "from": "ACME", "body": "Sale"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        out.extend(
            resp["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["status"].as_str().unwrap().to_string()),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_stop_survives_sigkill() {
    let mock = MockProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &mock);
    let app = start(&config).await;
    let client = reqwest::Client::new();

    const TOTAL: usize = 1500;
    const KILL_AFTER: usize = 150;
    let numbers: Vec<String> = (0..TOTAL).map(|i| format!("+3361{i:07}")).collect();
    let acked = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(Notify::new());
    let url = format!("{}/v1/inbound", app.public);
    let burst = {
        let (client, acked, enough) = (client.clone(), acked.clone(), enough.clone());
        let numbers = numbers.clone();
        tokio::spawn(async move {
            futures::stream::iter(numbers)
                .map(|n| {
                    let (client, url, acked, enough) =
                        (client.clone(), url.clone(), acked.clone(), enough.clone());
                    async move {
                        let body =
                            serde_json::to_vec(&json!({"from": n, "to": "36111", "text": "STOP"}))
                                .unwrap();
                        let resp = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .header("x-stopgate-signature", sign(INBOUND_SECRET, &body))
                            .body(body)
                            .send()
                            .await;
                        let ok = match resp {
                            Ok(r) if r.status().is_success() => {
                                let v: Value = r.json().await.unwrap_or(Value::Null);
                                v["action"] == "opted_out"
                            }
                            _ => false,
                        };
                        if ok && acked.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
                            enough.notify_one();
                        }
                        (n, ok)
                    }
                })
                .buffer_unordered(64)
                .collect::<Vec<(String, bool)>>()
                .await
        })
    };
    tokio::time::timeout(Duration::from_secs(120), enough.notified())
        .await
        .expect("the burst gets going");
    sigkill(app).await;
    let results = burst.await.unwrap();
    let acked: Vec<String> = results
        .iter()
        .filter(|(_, ok)| *ok)
        .map(|(n, _)| n.clone())
        .collect();
    let refused = results.len() - acked.len();
    eprintln!(
        "stop burst: {} acknowledged, {refused} not, out of {TOTAL}",
        acked.len()
    );
    assert!(acked.len() >= KILL_AFTER);
    assert!(refused > 0, "the kill did not land mid-burst");

    let app = start(&config).await;
    let st = statuses(&client, &app.api, &acked).await;
    let lost: Vec<&String> = acked
        .iter()
        .zip(&st)
        .filter(|(_, s)| *s != "blocked")
        .map(|(n, _)| n)
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged STOPs lost: {lost:?}",
        lost.len()
    );
    sigkill(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_link_that_reached_the_provider_survives_sigkill() {
    let mock = MockProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &mock);
    let app = start(&config).await;
    let client = reqwest::Client::new();

    // 100 requests of 20 US recipients each (a link country).
    const KILL_AFTER: usize = 200;
    let batches: Vec<Vec<String>> = (0..100)
        .map(|b| {
            (0..20)
                .map(|i| format!("+1212555{:04}", b * 20 + i))
                .collect()
        })
        .collect();
    let api = app.api.clone();
    let burst = {
        let client = client.clone();
        tokio::spawn(async move {
            futures::stream::iter(batches)
                .map(|to| {
                    let (client, api) = (client.clone(), api.clone());
                    async move {
                        let _ = client
                            .post(format!("{api}/v1/messages"))
                            .bearer_auth(ACME_KEY)
                            .json(&json!({"to": to, "from": "ACME", "body": "Deals", "campaign": "crash"}))
                            .send()
                            .await;
                    }
                })
                .buffer_unordered(8)
                .collect::<Vec<()>>()
                .await
        })
    };
    tokio::time::timeout(Duration::from_secs(120), async {
        while mock.received().len() < KILL_AFTER {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the provider gets messages");
    sigkill(app).await;
    burst.await.unwrap();

    let prefix = format!("Deals\nOpt out: {BASE_URL}/");
    let delivered: Vec<(String, String)> = mock
        .received()
        .iter()
        .map(|m| {
            let code = m["body"]
                .as_str()
                .unwrap()
                .strip_prefix(&prefix)
                .expect("a link footer");
            (m["to"].as_str().unwrap().to_string(), code.to_string())
        })
        .collect();
    eprintln!("links: {} reached the provider of 2000", delivered.len());
    assert!(delivered.len() >= KILL_AFTER && delivered.len() < 2000);

    let app = start(&config).await;
    let checks = futures::stream::iter(delivered.clone())
        .map(|(n, code)| {
            let (client, public) = (client.clone(), app.public.clone());
            async move {
                let page = client.get(format!("{public}/{code}")).send().await.unwrap();
                let shown = page.status().as_u16();
                let done = client
                    .post(format!("{public}/{code}"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("reason=other")
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                (n, shown, done)
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let broken: Vec<&(String, u16, u16)> = checks
        .iter()
        .filter(|(_, g, p)| (*g, *p) != (200, 200))
        .collect();
    assert!(broken.is_empty(), "links lost in the crash: {broken:?}");
    let numbers: Vec<String> = delivered.into_iter().map(|(n, _)| n).collect();
    let st = statuses(&client, &app.api, &numbers).await;
    assert!(st.iter().all(|s| s == "blocked"), "{st:?}");
    sigkill(app).await;
}
