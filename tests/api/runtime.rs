//! `server.runtime`: both modes serve the API and public listeners and drain
//! on shutdown. Per core, each address is several `SO_REUSEPORT` listeners
//! (one per core); the kernel spreads new connections over them, so every
//! request here comes on a fresh connection: a core whose listener is not
//! served would leave some of them unanswered.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use stopgate::app::App;
use stopgate::config::{RuntimeMode, Settings};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::helpers::{test_config, Behaviour, MockProvider, ACME_KEY};

const REQUESTS: usize = 16;

/// A client that opens a new connection for every request.
fn fresh_connections() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn send_otp(client: &reqwest::Client, api: &str, n: usize) -> (u16, Value) {
    let resp = client
        .post(format!("{api}/v1/messages"))
        .bearer_auth(ACME_KEY)
        .json(&json!({"to": format!("+336123456{n:02}"), "from": "ACME", "body": "code 1", "category": "otp"}))
        .send()
        .await
        .expect("answered in time");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn serves_then_drains(mode: RuntimeMode) {
    let mock = MockProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&mock, dir.path());
    config.server.runtime = mode;
    let app = App::build(Settings::from_config(config).unwrap())
        .await
        .unwrap();
    let (api, public) = (
        format!("http://{}", app.api_addr()),
        format!("http://{}", app.public_addr()),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    let client = fresh_connections();
    let sends = (0..REQUESTS).map(|n| send_otp(&client, &api, n));
    for (status, json) in futures::future::join_all(sends).await {
        assert_eq!(status, 200, "{mode:?}: {json}");
        assert_eq!(json["results"][0]["status"], "sent", "{mode:?}: {json}");
    }
    assert_eq!(mock.received().len(), REQUESTS, "{mode:?}");
    for _ in 0..REQUESTS {
        let resp = client.get(format!("{public}/healthz")).send().await;
        assert_eq!(resp.expect("answered in time").status(), 200, "{mode:?}");
    }

    // Sends in flight at the provider when the stop comes all finish.
    mock.set(Behaviour::Delay(Duration::from_millis(600)));
    let in_flight: Vec<_> = (0..8)
        .map(|n| {
            let (client, api) = (client.clone(), api.clone());
            tokio::spawn(async move { send_otp(&client, &api, 50 + n).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    for sent in in_flight {
        let (status, json) = sent.await.unwrap();
        assert_eq!(status, 200, "{mode:?}: {json}");
        assert_eq!(json["results"][0]["status"], "sent", "{mode:?}: {json}");
    }
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("stops within the grace period")
        .unwrap()
        .unwrap();
    // Every core's listener is closed: no new connection is taken.
    for _ in 0..REQUESTS {
        assert!(
            tokio::net::TcpStream::connect(api.strip_prefix("http://").unwrap())
                .await
                .is_err(),
            "{mode:?}"
        );
    }
}

#[tokio::test]
async fn multi_thread_serves_and_drains_on_shutdown() {
    serves_then_drains(RuntimeMode::MultiThread).await;
}

#[tokio::test]
async fn per_core_serves_every_listener_and_drains_on_shutdown() {
    serves_then_drains(RuntimeMode::PerCore).await;
}

/// The binary per core (its own runtime on the main thread): the demo
/// starts, answers on fresh connections, and stops on SIGTERM.
#[tokio::test]
async fn the_binary_per_core_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stopgate"))
        .current_dir(dir.path())
        .env("STOPGATE_SERVER__API_LISTEN", "127.0.0.1:0")
        .env("STOPGATE_SERVER__PUBLIC_LISTEN", "127.0.0.1:0")
        .env("STOPGATE_SERVER__RUNTIME", "per_core")
        .env_remove("STOPGATE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(crate::helpers::child_log("per-core"))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut api, mut key) = (None, None);
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(v) = line.trim().strip_prefix("API:") {
                api = Some(v.trim().to_string());
            }
            if let Some(v) = line.trim().strip_prefix("demo tenant API key:") {
                key = Some(v.trim().to_string());
                break;
            }
        }
    })
    .await
    .expect("the demo banner is printed");
    let (api, key) = (api.unwrap(), key.unwrap());
    let client = fresh_connections();
    for _ in 0..REQUESTS {
        let resp = client
            .post(format!("{api}/v1/messages"))
            .bearer_auth(&key)
            .json(
                &json!({"to": "+33612345678", "from": "DEMO", "body": "code 1", "category": "otp"}),
            )
            .send()
            .await
            .expect("answered in time");
        assert_eq!(resp.status(), 200);
    }
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("stops after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}
