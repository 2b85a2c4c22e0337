//! Webhooks to applications: the tenant's webhook hears message statuses,
//! opt-outs and opt-ins, signed and in order per message; a receiver that
//! fails gets every event after retries, one that hangs slows no send and
//! no inbound answer; events given up on are listed; a Twilio
//! `StatusCallback` passes Twilio's own `RequestValidator`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stopgate::config::{Secret, TwilioFrontConfig, WebhooksConfig};

use crate::helpers::*;
use crate::helpers::{Behaviour, MockProvider};
use crate::mocks::{ProviderMock, Recorded, Reply};

const ACME_HOOK_SECRET: &str = "whsec_acme_hooks";

fn ok() -> Reply {
    Reply::json(200, json!({"ok": true}))
}

fn hooked(url: String) -> impl FnOnce(&mut stopgate::config::Config) {
    move |c| {
        c.tenants[0].webhooks = Some(WebhooksConfig {
            url,
            secret: Secret(ACME_HOOK_SECRET.into()),
            events: None,
        });
    }
}

/// Waits until `mock` has at least `n` requests (10 s at most).
async fn received(mock: &ProviderMock, n: usize) -> Vec<Recorded> {
    for _ in 0..1000 {
        if mock.count() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    mock.recorded()
}

/// Checks `X-Stopgate-Signature` as a receiver would, from the docs.
fn signed_by(r: &Recorded, secret: &str) -> bool {
    use hmac::{Hmac, Mac};
    let header = r.header("x-stopgate-signature");
    let Some((t, v1)) = header
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
    else {
        return false;
    };
    let age = unix_now() - t.parse::<i64>().unwrap_or(0);
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(r.body.as_bytes());
    age.abs() <= 300
        && mac
            .verify_slice(&hex::decode(v1).unwrap_or_default())
            .is_ok()
}

fn dlr(app: &TestApp, provider_id: &str, status: &str) -> impl std::future::Future<Output = ()> {
    let body = serde_json::to_vec(&json!({"provider_id": provider_id, "status": status})).unwrap();
    let sig = sign(INBOUND_SECRET, &body);
    let req = app
        .client
        .post(format!("{}/v1/dlr", app.public))
        .header("content-type", "application/json")
        .header("x-stopgate-signature", sig)
        .body(body);
    async move {
        assert_eq!(req.send().await.unwrap().status(), 200);
    }
}

#[tokio::test]
async fn the_tenant_webhook_hears_statuses_and_opt_outs_signed_and_in_order() {
    let hook = ProviderMock::start(ok()).await;
    let app = spawn_app_with(hooked(format!("{}/hooks", hook.base_url()))).await;
    let r = app
        .send_one(
            ACME_KEY,
            json!({"to": "+12125550100", "from": "ACME", "body": "Sale", "campaign": "bf"}),
        )
        .await;
    let (id, pid) = (
        r["id"].as_str().unwrap(),
        r["provider_id"].as_str().unwrap(),
    );
    dlr(&app, pid, "delivered").await;
    app.mo("+33612345678", "36111", "STOP ACME").await;
    app.mo("+33612345678", "36111", "START ACME").await;
    // Beta has no webhook: its message tells nobody.
    app.send_one(
        BETA_KEY,
        json!({"to": "+12125550101", "from": "BETA", "body": "Hi"}),
    )
    .await;
    let got = received(&hook, 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = if got.len() == 4 { hook.recorded() } else { got };
    assert_eq!(got.len(), 4, "{got:#?}");
    for r in &got {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hooks"));
        assert!(signed_by(r, ACME_HOOK_SECRET), "a valid signature: {r:?}");
        assert!(!signed_by(r, "another secret"));
        assert_eq!(r.header("x-stopgate-delivery"), r.json()["id"], "{r:?}");
    }
    let events: Vec<Value> = got.iter().map(Recorded::json).collect();
    let of = |kind: &str| -> Vec<&Value> { events.iter().filter(|e| e["type"] == kind).collect() };
    let statuses = of("message.status");
    assert_eq!(
        statuses
            .iter()
            .map(|e| e["data"]["status"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["sent", "delivered"],
        "in order"
    );
    assert!(statuses
        .iter()
        .all(|e| e["data"]["id"] == id && e["data"]["campaign"] == "bf"));
    assert_eq!(got[0].header("x-stopgate-event"), "message.status");
    let optout = of("optout");
    assert_eq!(optout.len(), 1);
    assert_eq!(optout[0]["data"]["number"], "+33612345678");
    assert_eq!(optout[0]["data"]["source"], "sms");
    assert_eq!(of("optin").len(), 1);
    assert!(
        !events
            .iter()
            .any(|e| e.to_string().contains("+12125550101")),
        "no event of another tenant"
    );
}

#[tokio::test]
async fn a_failing_receiver_gets_every_event_after_retries() {
    let hook = ProviderMock::start(Reply::json(500, json!({}))).await;
    hook.reply([
        Reply::json(500, json!({})),
        Reply::json(503, json!({})),
        ok(),
    ]);
    let app = spawn_app_with(hooked(hook.base_url())).await;
    app.mo("+33612345679", "36111", "STOP ACME").await;
    let got = received(&hook, 3).await;
    assert!(got.len() >= 3, "retried until it answered 2xx: {got:?}");
    let ids: Vec<&str> = got
        .iter()
        .map(|r| r.header("x-stopgate-delivery"))
        .collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "one event, delivered again: {ids:?}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(hook.count(), 3, "nothing more once delivered");
}

#[tokio::test]
async fn a_hanging_receiver_slows_no_send_and_no_inbound_answer() {
    let hanging = ProviderMock::start(ok().after(Duration::from_secs(60))).await;
    let beta_hook = ProviderMock::start(ok()).await;
    let beta_url = beta_hook.base_url();
    let app = spawn_app_with(move |c| {
        hooked(hanging.base_url())(c);
        c.tenants[1].webhooks = Some(WebhooksConfig {
            url: beta_url,
            secret: Secret::default(),
            events: None,
        });
        c.webhooks.timeout_ms = 20_000;
    })
    .await;
    let started = Instant::now();
    for i in 0..30 {
        let r = app
            .send_one(
                ACME_KEY,
                json!({"to": format!("+1212555{:04}", 200 + i), "from": "ACME", "body": "Sale"}),
            )
            .await;
        assert_eq!(r["status"], "sent");
        let (status, _) = app
            .mo(&format!("+336123457{i:02}"), "36111", "STOP ACME")
            .await;
        assert_eq!(status, 200);
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "60 requests behind a hanging webhook took {took:?}"
    );
    // Another tenant's endpoint is served meanwhile.
    app.send_one(
        BETA_KEY,
        json!({"to": "+12125550300", "from": "BETA", "body": "Hi"}),
    )
    .await;
    let got = received(&beta_hook, 1).await;
    assert_eq!(got.len(), 1, "the other endpoint was not held up");
    assert!(
        got[0].header("x-stopgate-signature").is_empty(),
        "no secret, no signature"
    );
}

#[tokio::test]
async fn a_callback_url_hears_its_message() {
    let hook = ProviderMock::start(ok()).await;
    let app = spawn_app_with(hooked(format!("{}/tenant", hook.base_url()))).await;
    let callback = format!("{}/this-message", hook.base_url());
    let r = app
        .send_one(
            ACME_KEY,
            json!({"to": "+12125550400", "from": "ACME", "body": "Code 1", "category": "otp", "callback_url": callback}),
        )
        .await;
    let got = received(&hook, 2).await;
    let to_callback: Vec<&Recorded> = got.iter().filter(|r| r.path == "/this-message").collect();
    assert_eq!(to_callback.len(), 1, "{got:?}");
    let e = to_callback[0].json();
    assert_eq!(
        (e["type"].as_str(), e["data"]["id"].as_str()),
        (Some("message.status"), r["id"].as_str())
    );
    assert_eq!(e["data"]["category"], "otp");
    assert!(signed_by(to_callback[0], ACME_HOOK_SECRET));
    let (status, err) = app
        .send(
            ACME_KEY,
            json!({"to": "+12125550401", "from": "ACME", "body": "x", "callback_url": "ftp://x"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(err["error"]["code"], "invalid_callback_url");
}

#[tokio::test]
async fn events_given_up_on_are_listed_for_their_tenant() {
    let hook = ProviderMock::start(Reply::json(500, json!({}))).await;
    let url = hook.base_url();
    let app = spawn_app_with(move |c| {
        hooked(url)(c);
        c.webhooks.give_up_after_secs = 1;
    })
    .await;
    app.mo("+33612345680", "36111", "STOP ACME").await;
    let mut items = Vec::new();
    for _ in 0..100 {
        let list: Value = app
            .client
            .get(format!("{}/v1/webhooks/failed", app.api))
            .bearer_auth(ACME_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        items = list["items"].as_array().unwrap().clone();
        if !items.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(items.len(), 1, "given up after a second of failures");
    let item = &items[0];
    assert_eq!(
        (item["type"].as_str(), item["number"].as_str()),
        (Some("optout"), Some("+33612345680"))
    );
    assert!(item["attempts"].as_u64().unwrap() >= 1);
    assert_eq!(item["last_error"], "HTTP 500");
    let beta: Value = app
        .client
        .get(format!("{}/v1/webhooks/failed", app.api))
        .bearer_auth(BETA_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        beta["items"].as_array().unwrap().is_empty(),
        "tenant-scoped"
    );
    let metrics = app
        .client
        .get(format!("{}/metrics", app.api))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("stopgate_outbox_failed_total"),
        "{metrics}"
    );
}

const SID: &str = "AC0000000000000000000000000000beef";
const TOKEN: &str = "acme-twilio-token";

#[tokio::test]
async fn a_status_callback_passes_twilios_request_validator() {
    let hook = ProviderMock::start(ok()).await;
    let app = spawn_app_with(|c| {
        c.tenants[0].twilio = Some(TwilioFrontConfig {
            account_sid: SID.into(),
            auth_token: Some(Secret(TOKEN.into())),
            ..Default::default()
        });
    })
    .await;
    let callback = format!("{}/twilio-status?x=1", hook.base_url());
    let r = app
        .client
        .post(format!(
            "{}/2010-04-01/Accounts/{SID}/Messages.json",
            app.api
        ))
        .basic_auth(SID, Some(TOKEN))
        .form(&[
            ("To", "+12125550500"),
            ("From", "ACME"),
            ("Body", "Sale"),
            ("StatusCallback", &callback),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let got = received(&hook, 1).await;
    assert_eq!(got.len(), 1);
    let cb = &got[0];
    assert_eq!(cb.field("MessageSid").as_deref(), created["sid"].as_str());
    assert_eq!(cb.field("MessageStatus").as_deref(), Some("sent"));
    assert_eq!(cb.field("AccountSid").as_deref(), Some(SID));
    let params: serde_json::Map<String, Value> = cb
        .form()
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let check = |token: &str| {
        let case = json!({"url": callback, "params": params, "signature": cb.header("x-twilio-signature"), "token": token});
        async move {
            use tokio::io::AsyncWriteExt;
            let mut child = tokio::process::Command::new(crate::twilio_front::sdk_python())
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/sdk/twilio_validate.py"
                ))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(case.to_string().as_bytes())
                .await
                .unwrap();
            let out = child.wait_with_output().await.unwrap();
            let v: Value = serde_json::from_slice(&out.stdout).expect("the validator's answer");
            v["valid"].as_bool().unwrap()
        }
    };
    assert!(check(TOKEN).await, "Twilio's RequestValidator accepts it");
    assert!(!check("another-token").await, "and would refuse a forgery");
}

/// SIGKILL with a full outbox: opt-outs acknowledged while the tenant's
/// receiver and the provider are both down leave their webhooks and their
/// confirmation SMS in the outbox; after a restart every one arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigkill_with_a_full_outbox_loses_no_event_and_no_confirmation() {
    use crate::crash::{sigkill, start, write_config_with};
    let provider = MockProvider::start().await;
    provider.set(Behaviour::Status(500));
    let (hook, open_hook) = ProviderMock::reserved(ok());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with(
        dir.path(),
        &provider,
        &format!(
            "[tenants.webhooks]\nurl = \"{}/hooks\"\nsecret = \"{ACME_HOOK_SECRET}\"\n",
            hook.base_url()
        ),
    );
    let app = start(&config).await;
    let client = reqwest::Client::new();
    let numbers: Vec<String> = (0..40).map(|i| format!("+336123458{i:02}")).collect();
    for n in &numbers {
        let body = serde_json::to_vec(&json!({"from": n, "to": "36111", "text": "STOP"})).unwrap();
        let r = client
            .post(format!("{}/v1/inbound", app.public))
            .header("content-type", "application/json")
            .header("x-stopgate-signature", sign(INBOUND_SECRET, &body))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Some deliveries are tried and fail meanwhile; then the process dies.
    tokio::time::sleep(Duration::from_millis(800)).await;
    sigkill(app).await;
    assert_eq!(hook.count(), 0, "the receiver was down");

    open_hook();
    provider.set(Behaviour::Accept);
    let app = start(&config).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut optouts, mut replies) = (Vec::new(), Vec::new());
    while Instant::now() < deadline {
        optouts = hook
            .recorded()
            .iter()
            .filter(|r| signed_by(r, ACME_HOOK_SECRET))
            .map(|r| {
                r.json()["data"]["number"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        replies = provider
            .received()
            .iter()
            .filter(|m| m["from"] == "36111")
            .map(|m| m["to"].as_str().unwrap().to_string())
            .collect();
        if numbers
            .iter()
            .all(|n| optouts.contains(n) && replies.contains(n))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lost_events: Vec<&String> = numbers.iter().filter(|n| !optouts.contains(n)).collect();
    let lost_replies: Vec<&String> = numbers.iter().filter(|n| !replies.contains(n)).collect();
    assert!(
        lost_events.is_empty(),
        "webhook events lost: {lost_events:?}"
    );
    assert!(
        lost_replies.is_empty(),
        "confirmations lost: {lost_replies:?}"
    );
    eprintln!(
        "after the restart: {} events ({} distinct), {} confirmations",
        optouts.len(),
        numbers.len(),
        replies.len()
    );
    sigkill(app).await;
}
