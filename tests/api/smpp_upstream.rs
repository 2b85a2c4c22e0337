//! The SMPP upstream: stopgate binds to an SMSC (the project's own loopback
//! SMSC, `smsc.rs`) and sends through it; receipts and replies come back
//! over the same bind.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stopgate::config::{Config, Secret, SmppBindMode, UpstreamKind, WebhooksConfig};

use crate::helpers::*;
use crate::mocks::{ProviderMock, Reply};
use crate::smsc::{mo, receipt, Answer, Ids, Smsc};

const SYSTEM_ID: &str = "stopgate";
const PASSWORD: &str = "smsc-pw";

fn upstream(c: &mut Config, smsc: &Smsc) {
    c.upstream.kind = UpstreamKind::Smpp;
    c.upstream.url = String::new();
    c.upstream.timeout_ms = 2_000;
    let s = &mut c.upstream.smpp;
    s.host = "127.0.0.1".into();
    s.port = smsc.addr.port();
    s.system_id = SYSTEM_ID.into();
    s.password = Secret(PASSWORD.into());
    s.system_type = "SG".into();
    s.reconnect_min_ms = 50;
    s.reconnect_max_ms = 200;
}

async fn spawn_on(smsc: &Smsc, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let s = smsc.clone();
    let app = spawn_app_with(move |c| {
        upstream(c, &s);
        tweak(c);
    })
    .await;
    smsc.until("a bind", |s| s.receivers() >= 1).await;
    app
}

async fn message(app: &TestApp, id: &str) -> Value {
    let resp = app
        .client
        .get(format!("{}/v1/messages/{id}", app.api))
        .bearer_auth(ACME_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Polls a message's record until `f` holds (10 s at most).
async fn message_until(app: &TestApp, id: &str, f: impl Fn(&Value) -> bool) -> Value {
    let mut m = Value::Null;
    for _ in 0..500 {
        m = message(app, id).await;
        if f(&m) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the record never got there: {m}");
}

/// The text of submits to `dest`, parts joined in UDH order.
fn joined(smsc: &Smsc, dest: &str) -> (Vec<crate::smsc::Submit>, Vec<u8>) {
    let mut parts: Vec<_> = smsc
        .submits()
        .into_iter()
        .filter(|s| s.dest == dest)
        .collect();
    parts.sort_by_key(|p| {
        if p.esm_class & 0x40 != 0 {
            p.short_message[5]
        } else {
            0
        }
    });
    let mut payload = Vec::new();
    for p in &parts {
        let data = if p.esm_class & 0x40 != 0 {
            let udhl = usize::from(p.short_message[0]);
            &p.short_message[1 + udhl..]
        } else {
            &p.short_message[..]
        };
        payload.extend_from_slice(data);
    }
    (parts, payload)
}

#[tokio::test]
async fn long_messages_go_as_udh_parts_in_the_right_coding() {
    let smsc = Smsc::start(SYSTEM_ID, PASSWORD, Ids::Hex).await;
    let app = spawn_on(&smsc, |_| {}).await;
    let b = &smsc.binds()[0];
    assert_eq!(
        (b.command, b.system_id.as_str(), b.system_type.as_str()),
        (0x09, SYSTEM_ID, "SG"),
        "a transceiver bind"
    );

    // GSM: 200 characters (one with an escape) in two parts of at most 153 septets.
    let text = format!("Votre code {} fin €", "x".repeat(180));
    let r = app
        .send_one(
            ACME_KEY,
            json!({"to": "+33612345678", "from": "ACME", "body": text, "category": "transactional"}),
        )
        .await;
    assert_eq!(r["status"], "sent", "{r}");
    let (parts, payload) = joined(&smsc, "33612345678");
    assert_eq!(parts.len(), 2);
    for (i, p) in parts.iter().enumerate() {
        assert_eq!((p.esm_class, p.data_coding), (0x40, 0), "UDHI, GSM 03.38");
        assert_eq!(
            &p.short_message[..6],
            &[5, 0, 3, parts[0].short_message[3], 2, i as u8 + 1]
        );
        assert!(p.short_message.len() - 6 <= 153);
        assert_eq!((p.source_ton, p.source.as_str()), (5, "ACME"));
        assert_eq!((p.dest_ton, p.registered_delivery), (1, 1));
    }
    assert_eq!(stopgate::smpp::gsm::decode(&payload).unwrap(), text);
    // The record names both parts' SMSC ids.
    let ids: Vec<String> = parts
        .iter()
        .map(|p| p.message_id.clone().unwrap())
        .collect();
    let m = message(&app, r["id"].as_str().unwrap()).await;
    assert_eq!(m["provider"], "smpp");
    let mut got: Vec<&str> = m["provider_id"].as_str().unwrap().split(',').collect();
    got.sort();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(got, want);

    // Cyrillic: UCS-2, 67 characters per part.
    let text = "Привет! ".repeat(12);
    let r = app
        .send_one(
            ACME_KEY,
            json!({"to": "+33622222222", "from": "ACME", "body": text, "category": "otp"}),
        )
        .await;
    assert_eq!(
        (r["status"].as_str(), r["encoding"].as_str()),
        (Some("sent"), Some("ucs2"))
    );
    let (parts, payload) = joined(&smsc, "33622222222");
    assert_eq!(parts.len(), 2);
    assert!(parts
        .iter()
        .all(|p| p.data_coding == 8 && p.esm_class == 0x40));
    assert_eq!(parts[0].short_message.len(), 6 + 134);
    let units: Vec<u16> = payload
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    assert_eq!(String::from_utf16(&units).unwrap(), text);

    // Short marketing: one part, no UDH, the footer appended once.
    let r = app
        .send_one(
            ACME_KEY,
            json!({"to": "+33633333333", "from": "ACME", "body": "Soldes -50%"}),
        )
        .await;
    assert_eq!(r["status"], "sent");
    let (parts, payload) = joined(&smsc, "33633333333");
    assert_eq!(
        (parts.len(), parts[0].esm_class, parts[0].data_coding),
        (1, 0, 0)
    );
    assert_eq!(
        stopgate::smpp::gsm::decode(&payload).unwrap(),
        "Soldes -50%\nSTOP au 36111"
    );
}

#[tokio::test]
async fn a_session_lost_mid_window_sends_its_unanswered_submits_once_more() {
    let smsc = Smsc::start(SYSTEM_ID, PASSWORD, Ids::Decimal).await;
    let app = spawn_on(&smsc, |_| {}).await;
    // Three answered, then three held until the SMSC drops the connection.
    smsc.script([
        Answer::Accept,
        Answer::Accept,
        Answer::Accept,
        Answer::HoldThenDrop(3),
        Answer::HoldThenDrop(3),
        Answer::HoldThenDrop(3),
    ]);
    let to: Vec<String> = (0..6).map(|i| format!("+3361234560{i}")).collect();
    let (status, body) = app
        .send(
            ACME_KEY,
            json!({"to": to, "from": "ACME", "body": "Code 1234", "category": "otp"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert!(
        results.iter().all(|r| r["status"] == "sent"),
        "every one sent in the end: {body}"
    );
    assert_eq!(smsc.binds().len(), 2, "bound again");
    let submits = smsc.submits();
    for n in &to {
        let d = n.trim_start_matches('+');
        let mine: Vec<_> = submits.iter().filter(|s| s.dest == d).collect();
        let answered = mine.iter().filter(|s| s.message_id.is_some()).count();
        assert_eq!(answered, 1, "{n}: answered exactly once: {mine:?}");
        // Answered on the first session: never sent again. Held: sent once more.
        match mine.len() {
            1 => assert_eq!(mine[0].session, 1, "{n}"),
            2 => {
                assert!(mine[0].message_id.is_none() && mine[0].session == 1, "{n}");
                assert_eq!(mine[1].session, 2, "{n}");
            }
            k => panic!("{n} sent {k} times"),
        }
    }
    assert_eq!(
        submits.len(),
        9,
        "three answered, three held and sent again"
    );
    // Each result carries the id of the answer that took it.
    for r in results {
        let d = r["to"].as_str().unwrap().trim_start_matches('+');
        let id = submits
            .iter()
            .find(|s| s.dest == d && s.message_id.is_some())
            .and_then(|s| s.message_id.clone());
        let m = message(&app, r["id"].as_str().unwrap()).await;
        assert_eq!(m["provider_id"].as_str(), id.as_deref());
    }
}

#[tokio::test]
async fn throttling_answers_pause_sending_and_failures_open_the_breaker() {
    let smsc = Smsc::start(SYSTEM_ID, PASSWORD, Ids::Hex).await;
    let app = spawn_on(&smsc, |c| {
        c.upstream.breaker.consecutive_failures = 3;
        c.upstream.breaker.cooldown_ms = 60_000;
    })
    .await;
    let otp = |to: &str| json!({"to": to, "from": "ACME", "body": "Code 1", "category": "otp"});

    // ESME_RTHROTTLED: the recipient fails as rate limited...
    smsc.script([Answer::Status(0x58)]);
    let r = app.send_one(ACME_KEY, otp("+33612345601")).await;
    assert_eq!(
        (r["status"].as_str(), r["error"]["code"].as_str()),
        (Some("failed"), Some("upstream_rate_limited")),
        "{r}"
    );
    // ... and sending pauses (the guard's default second): not even tried.
    let r = app.send_one(ACME_KEY, otp("+33612345602")).await;
    assert_eq!(r["error"]["code"], "upstream_rate_limited", "{r}");
    assert_eq!(smsc.submits().len(), 1, "paused: nothing sent");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // ESME_RMSGQFUL is throttling too.
    smsc.script([Answer::Status(0x14)]);
    let r = app.send_one(ACME_KEY, otp("+33612345603")).await;
    assert_eq!(r["error"]["code"], "upstream_rate_limited", "{r}");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let r = app.send_one(ACME_KEY, otp("+33612345604")).await;
    assert_eq!(r["status"], "sent", "after the pause: {r}");

    // A refusal of the message itself: failed as rejected, the SMSC is healthy.
    smsc.script([Answer::Status(0x0B)]);
    let r = app.send_one(ACME_KEY, otp("+33612345605")).await;
    assert_eq!(r["error"]["code"], "upstream_rejected", "{r}");
    assert_eq!(r["error"]["provider_code"], "0x0000000b", "{r}");

    // System errors: after three in a row the breaker opens and stops trying.
    smsc.script([
        Answer::Status(0x08),
        Answer::Status(0x08),
        Answer::Status(0x08),
    ]);
    for i in 0..3 {
        let r = app
            .send_one(ACME_KEY, otp(&format!("+3361234561{i}")))
            .await;
        assert_eq!(r["error"]["code"], "upstream_unavailable", "{r}");
    }
    let before = smsc.submits().len();
    let r = app.send_one(ACME_KEY, otp("+33612345620")).await;
    assert_eq!(r["error"]["code"], "upstream_unavailable", "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("circuit"),
        "{r}"
    );
    assert_eq!(
        smsc.submits().len(),
        before,
        "the open breaker does not send"
    );
}

#[tokio::test]
async fn receipts_from_the_smsc_move_records_and_reach_the_application() {
    let hooks = ProviderMock::start(Reply::json(200, json!({"ok": true}))).await;
    let smsc = Smsc::start(SYSTEM_ID, PASSWORD, Ids::Hex).await;
    let url = format!("{}/hooks", hooks.base_url());
    let app = spawn_on(&smsc, move |c| {
        c.tenants[0].webhooks = Some(WebhooksConfig {
            url,
            secret: Secret("whsec".into()),
            events: Some(vec!["message.status".into()]),
        });
    })
    .await;
    let otp = |to: &str| json!({"to": to, "from": "ACME", "body": "Code 1", "category": "otp"});
    let a = app.send_one(ACME_KEY, otp("+33612345601")).await;
    let b = app.send_one(ACME_KEY, otp("+33612345602")).await;
    let ids: Vec<String> = smsc
        .submits()
        .iter()
        .map(|s| s.message_id.clone().unwrap())
        .collect();
    // Answered in hex; the receipt names the id in decimal, in its text only.
    let decimal = u64::from_str_radix(&ids[0], 16).unwrap().to_string();
    assert_ne!(decimal, ids[0]);
    assert_eq!(
        smsc.deliver(receipt(&decimal, None, "DELIVRD", "000"))
            .await,
        Some(0)
    );
    let m = message_until(&app, a["id"].as_str().unwrap(), |m| {
        m["status"] == "delivered"
    })
    .await;
    assert_eq!(m["history"].as_array().unwrap().len(), 2, "{m}");
    // The TLVs name the second in hex: undelivered, with the SMSC's err.
    assert_eq!(
        smsc.deliver(receipt("0", Some(&ids[1]), "UNDELIV", "034"))
            .await,
        Some(0)
    );
    let m = message_until(&app, b["id"].as_str().unwrap(), |m| {
        m["status"] == "undelivered"
    })
    .await;
    assert_eq!(m["error"], "034", "{m}");
    // The application's webhook hears both.
    let mut statuses = Vec::new();
    for _ in 0..500 {
        statuses = hooks
            .recorded()
            .iter()
            .map(|r| r.json())
            .map(|e| {
                (
                    e["data"]["id"].as_str().unwrap().to_string(),
                    e["data"]["status"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>();
        if statuses.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        statuses.contains(&(a["id"].as_str().unwrap().into(), "delivered".into())),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&(b["id"].as_str().unwrap().into(), "undelivered".into())),
        "{statuses:?}"
    );
    // A receipt for nothing stopgate sent is taken (the SMSC stops), after a short wait.
    let started = Instant::now();
    assert_eq!(
        smsc.deliver(receipt("999999", None, "DELIVRD", "000"))
            .await,
        Some(0)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1_000),
        "it waited for a record"
    );
    // An intermediate one changes nothing.
    assert_eq!(
        smsc.deliver(receipt(&ids[0], None, "ENROUTE", "000")).await,
        Some(0)
    );
    assert_eq!(
        message(&app, a["id"].as_str().unwrap()).await["status"],
        "delivered"
    );
}

#[tokio::test]
async fn a_stop_over_the_bind_is_durable_before_its_answer_and_blocks_marketing() {
    let smsc = Smsc::start(SYSTEM_ID, PASSWORD, Ids::Hex).await;
    let app = spawn_on(&smsc, |c| {
        c.upstream.smpp.bind = SmppBindMode::TransmitterReceiver
    })
    .await;
    smsc.until("two binds", |s| s.binds().len() == 2).await;
    let modes: Vec<u32> = smsc.binds().iter().map(|b| b.command).collect();
    assert!(modes.contains(&0x02) && modes.contains(&0x01), "{modes:?}");
    let number = "+33698765401";
    assert!(!app.blocked(ACME_KEY, number).await);

    assert_eq!(smsc.deliver(mo(number, "36111", "Stop")).await, Some(0));
    assert!(
        app.is_suppressed("acme", number).await,
        "durable before the answer"
    );
    assert_eq!(
        app.events("acme", number)
            .await
            .last()
            .unwrap()
            .text
            .as_deref(),
        Some("Stop")
    );
    assert!(app.blocked(ACME_KEY, number).await);
    // The confirmation goes back through the SMSC, from the short code.
    smsc.until("the confirmation", |s| {
        s.submits()
            .iter()
            .any(|x| x.dest == "33698765401" && x.source == "36111")
    })
    .await;

    // Not one of stopgate's short codes, or not a number: refused for good.
    assert_eq!(smsc.deliver(mo(number, "99999", "STOP")).await, Some(0x65));
    assert_eq!(smsc.deliver(mo("ACME", "36111", "STOP")).await, Some(0x65));
    // Anything else is taken and changes nothing.
    assert_eq!(
        smsc.deliver(mo("+33698765402", "36111", "merci")).await,
        Some(0)
    );
    assert!(!app.is_suppressed("acme", "+33698765402").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_gets_a_temporary_error_while_the_store_cannot_write() {
    use crate::store_faults::{can_chattr, Immutable};
    if !can_chattr() {
        panic!("this test needs root for chattr +i (CI runs as root)");
    }
    let smsc = Smsc::start(SYSTEM_ID, PASSWORD, Ids::Hex).await;
    let app = spawn_on(&smsc, |_| {}).await;
    let number = "+33698765411";
    let guard = Immutable::set(&app.store_path().join("db"));
    // Not on disk: ESME_RX_T_APPN, so that the SMSC delivers it again.
    assert_eq!(smsc.deliver(mo(number, "36111", "STOP")).await, Some(0x64));
    drop(guard);
    // The SMSC's next tries land once the store is back, and stick.
    let mut answer = None;
    for _ in 0..100 {
        answer = smsc.deliver(mo(number, "36111", "STOP")).await;
        if answer == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer, Some(0), "taken within 10 s of the store's return");
    assert!(app.is_suppressed("acme", number).await);
    assert!(app.blocked(ACME_KEY, number).await);
}

#[tokio::test]
async fn the_password_comes_from_the_environment_and_the_sessions_unbind_on_shutdown() {
    let smsc = Smsc::start(SYSTEM_ID, "env-pw", Ids::Hex).await;
    let mock = MockProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "\n[upstream]\nkind = \"smpp\"\n[upstream.smpp]\nhost = \"127.0.0.1\"\nport = {}\nsystem_id = \"{SYSTEM_ID}\"\npassword = \"file-pw\"\n",
        smsc.addr.port()
    );
    // The config file's [upstream] is replaced: written by hand here.
    let config = crate::crash::write_config(dir.path(), &mock);
    let toml = std::fs::read_to_string(&config).unwrap();
    let start = toml.find("[upstream]").unwrap();
    let end = toml.find("[inbound]").unwrap();
    let toml = format!("{}{}{}", &toml[..start], &extra[1..], &toml[end..]);
    std::fs::write(&config, toml).unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_stopgate"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("STOPGATE_UPSTREAM__SMPP__PASSWORD", "env-pw")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    smsc.until("a bind", |s| s.receivers() == 1).await;
    let b = &smsc.binds()[0];
    assert!(
        b.accepted && b.password == "env-pw",
        "the environment wins: {b:?}"
    );
    // SIGTERM: the session unbinds before the process ends.
    let pid = child.id().unwrap() as i32;
    unsafe_kill(pid);
    let out = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
        .await
        .expect("it stops")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(smsc.unbinds(), 1);
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(logs.contains("smpp upstream: bound"), "{logs}");
    assert!(
        !logs.contains("env-pw") && !logs.contains("file-pw"),
        "no password in the logs"
    );
}

fn unsafe_kill(pid: i32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn a_wrong_password_is_retried_with_backoff_and_tls_is_spoken_when_asked() {
    // Wrong credentials: refused binds, again and again, and sends fail fast.
    let smsc = Smsc::start(SYSTEM_ID, "other", Ids::Hex).await;
    let app = spawn_app_with({
        let s = smsc.clone();
        move |c| upstream(c, &s)
    })
    .await;
    smsc.until("three refused binds", |s| s.binds().len() >= 3)
        .await;
    assert!(smsc.binds().iter().all(|b| !b.accepted));
    let r = app
        .send_one(
            ACME_KEY,
            json!({"to": "+33612345678", "from": "ACME", "body": "Code", "category": "otp"}),
        )
        .await;
    assert_eq!(r["error"]["code"], "upstream_unavailable", "{r}");

    // TLS with a private CA.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args([
            "-days",
            "1",
            "-subj",
            "/CN=smsc.test",
            "-addext",
            "subjectAltName=DNS:smsc.test",
        ])
        // webpki refuses a CA certificate as the server's own: a leaf, trusted as its own root.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let acceptor = stopgate::smpp::front::tls_acceptor(&cert, &key).unwrap();
    let smsc = Smsc::start_with(SYSTEM_ID, PASSWORD, Ids::Hex, Some(acceptor)).await;
    let app = spawn_on(&smsc, |c| {
        c.upstream.smpp.tls = true;
        c.upstream.smpp.tls_ca = Some(cert.clone());
        c.upstream.smpp.tls_server_name = Some("smsc.test".into());
    })
    .await;
    let r = app
        .send_one(
            ACME_KEY,
            json!({"to": "+33612345678", "from": "ACME", "body": "Code", "category": "otp"}),
        )
        .await;
    assert_eq!(r["status"], "sent", "{r}");
    assert_eq!(smsc.submits().len(), 1);
}

#[tokio::test]
async fn check_config_names_the_bad_upstream_smpp_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stopgate.toml");
    let tenant = "[[tenants]]\nid = \"acme\"\nname = \"ACME\"\napi_key = \"k\"\n";
    for (smpp, key) in [
        ("", "upstream.smpp.host"),
        ("host = \"smsc\"\n", "upstream.smpp.system_id"),
        (
            "host = \"smsc\"\nsystem_id = \"sg\"\npassword = \"nine-char\"\n",
            "upstream.smpp.password",
        ),
        (
            "host = \"smsc\"\nsystem_id = \"sg\"\nwindow = 0\n",
            "upstream.smpp.window",
        ),
        (
            "host = \"smsc\"\nsystem_id = \"sg\"\nbind = \"sideways\"\n",
            "upstream.smpp.bind",
        ),
        (
            "host = \"smsc\"\nsystem_id = \"sg\"\ntls = true\ntls_ca = \"/nonexistent.pem\"\n",
            "upstream.smpp.tls_ca",
        ),
        (
            "host = \"smsc\"\nsystem_id = \"sg\"\nenquire_link_secs = 60\ninactivity_secs = 30\n",
            "upstream.smpp.inactivity_secs",
        ),
    ] {
        std::fs::write(
            &file,
            format!("[upstream]\nkind = \"smpp\"\n[upstream.smpp]\n{smpp}{tenant}"),
        )
        .unwrap();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stopgate"))
            .args(["check-config", "--config"])
            .arg(&file)
            .output()
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{smpp}: {err}");
        assert!(err.contains(key), "{smpp}: wanted {key} in {err}");
    }
    std::fs::write(
        &file,
        format!("[upstream]\nkind = \"smpp\"\n[upstream.smpp]\nhost = \"smsc\"\nsystem_id = \"sg\"\npassword = \"hunter2\"\n{tenant}"),
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stopgate"))
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("hunter2"));
}
