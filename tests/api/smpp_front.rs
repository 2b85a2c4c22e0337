//! The SMPP front: applications bind to stopgate's SMPP listener.
//!
//! Two clients nobody here wrote the SMPP side of: python-smpplib (PyPI,
//! pinned; `tests/sdk/smpp_client.py`) for the application's view, and raw
//! bytes written by hand in this file for what no well-behaved client sends
//! (malformed PDUs, absurd lengths, a receiver that drops mid-receipt).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stopgate::config::{BlockedMode, Config, Secret, Settings, TenantSmppConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

const SYSTEM_ID: &str = "acme";
const PASSWORD: &str = "secret8";
const OPTED_OUT: &str = "+33698765432";

fn smpp_config(c: &mut Config, blocked: BlockedMode, per_second: u32) {
    c.smpp.listen = Some("127.0.0.1:0".into());
    c.smpp.auth_failure_delay_ms = 200;
    c.tenants[0].smpp = Some(TenantSmppConfig {
        system_id: SYSTEM_ID.into(),
        password: Some(Secret(PASSWORD.into())),
        password_sha256: None,
        max_binds: 4,
        submits_per_second: per_second,
        blocked,
        categories: BTreeMap::from([("ACMEOTP".into(), "otp".into())]),
    });
}

async fn spawn_smpp(blocked: BlockedMode, per_second: u32) -> TestApp {
    let app = spawn_app_with(|c| smpp_config(c, blocked, per_second)).await;
    app.suppress("acme", OPTED_OUT).await;
    app
}

fn python() -> std::path::PathBuf {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run ./scripts/install-test-deps.sh (./scripts/test.sh does)",
        p.display()
    );
    p
}

/// Runs one scenario of the smpplib script; its cases by name.
async fn smpplib(
    addr: SocketAddr,
    scenario: &str,
    extra: &[(&str, &str)],
) -> BTreeMap<String, Value> {
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/sdk/smpp_client.py"
    ))
    .env("SMPP_HOST", addr.ip().to_string())
    .env("SMPP_PORT", addr.port().to_string())
    .env("SYSTEM_ID", SYSTEM_ID)
    .env("PASSWORD", PASSWORD)
    .env("SCENARIO", scenario)
    .env("OPTED_OUT", OPTED_OUT);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the smpplib script finishes")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "smpplib script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("one JSON object per line"))
        .map(|v| (v["case"].as_str().unwrap().to_string(), v))
        .collect()
}

fn statuses(case: &Value) -> Vec<u64> {
    case["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_u64().unwrap())
        .collect()
}

fn message_id(case: &Value) -> String {
    case["answers"][0]["message_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn smpplib_binds_submits_and_gets_the_pipelines_answers() {
    let app = spawn_smpp(BlockedMode::Refuse, 1000).await;
    let started = Instant::now();
    let cases = smpplib(app.smpp.unwrap(), "main", &[]).await;

    // Wrong credentials: both codes, each after the delay.
    assert_eq!(cases["bad_password"]["status"], 0x0E, "ESME_RINVPASWD");
    assert_eq!(cases["bad_system_id"]["status"], 0x0F, "ESME_RINVSYSID");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(cases["bind"]["status"], 0);
    assert_eq!(cases["bind"]["system_id"], "stopgate");

    // Marketing to France: the short-code footer; the resp carries our id.
    assert_eq!(statuses(&cases["marketing_fr"]), [0]);
    let fr = app.mock.received_for("+33612345678");
    assert_eq!(fr.len(), 1);
    assert_eq!(fr[0]["body"], "Soldes -50% ce week-end !\nSTOP au 36111");
    assert_eq!(fr[0]["from"], "ACME");
    assert_eq!(
        fr[0]["reference"].as_str().unwrap(),
        message_id(&cases["marketing_fr"])
    );
    assert!(message_id(&cases["marketing_fr"]).starts_with("msg_"));

    // Marketing to the US: a link unique to the recipient.
    assert_eq!(statuses(&cases["marketing_us"]), [0]);
    let us = app.mock.received_for("+12125550123");
    let body = us[0]["body"].as_str().unwrap();
    assert!(body.starts_with("Black Friday: 50% off\n"), "{body}");
    assert!(body.contains(&format!("{BASE_URL}/")), "{body}");

    // OTPs pass untouched, by service_type or by the sender's rule.
    assert_eq!(statuses(&cases["otp"]), [0]);
    assert_eq!(
        app.mock.received_for("+33611111111")[0]["body"],
        "Your code: 482913"
    );
    assert_eq!(statuses(&cases["otp_by_sender"]), [0]);
    assert_eq!(
        app.mock.received_for("+33622222222")[0]["body"],
        "Code 771234"
    );

    // Three UCS-2 parts: one message upstream, footered once; every part
    // answered with the same id.
    let ucs2 = &cases["ucs2_parts"];
    assert_eq!(
        (ucs2["count"].as_u64(), ucs2["encoding"].as_u64()),
        (Some(3), Some(8))
    );
    assert_eq!(statuses(ucs2), [0, 0, 0]);
    let ids: Vec<&str> = ucs2["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["message_id"].as_str().unwrap())
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    let got = app.mock.received_for("+33633333333");
    assert_eq!(got.len(), 1, "reassembled before sending");
    let body = got[0]["body"].as_str().unwrap();
    let long_text: String = "Привет, это длинное сообщение! "
        .repeat(5)
        .chars()
        .take(150)
        .collect();
    assert_eq!(body, format!("{long_text}\nSTOP au 36111"));
    assert_eq!(got[0]["reference"].as_str().unwrap(), ids[0]);

    // A 16-bit reference in reverse order, SAR TLVs, message_payload.
    assert_eq!(statuses(&cases["udh16"]), [0, 0]);
    let got = app.mock.received_for("+33644444444");
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0]["body"],
        format!(
            "Deux parties, reference sur 16 bits: {}\nSTOP au 36111",
            "x".repeat(150)
        )
    );
    assert_eq!(cases["sar"]["count"], 3);
    assert_eq!(statuses(&cases["sar"]), [0, 0, 0]);
    let got = app.mock.received_for("+33655555555");
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0]["body"],
        format!("Trois morceaux en SAR: {}\nSTOP au 36111", "y".repeat(300))
    );
    assert_eq!(statuses(&cases["payload"]), [0]);
    assert_eq!(
        app.mock.received_for("+33666666666")[0]["body"],
        format!("Payload {}\nSTOP au 36111", "z".repeat(200))
    );

    // Opted out, blocked = "refuse": ESME_RX_P_APPN, and nothing forwarded.
    assert_eq!(statuses(&cases["blocked"]), [0x65]);
    assert!(app.mock.received_for(OPTED_OUT).is_empty());
    assert_eq!(statuses(&cases["national"]), [0x50], "ESME_RINVDSTTON");

    assert_eq!(cases["enquire_link"]["status"], 0);
    assert_eq!(cases["unbind"]["command"], "unbind_resp");
    assert_eq!(cases["unbind"]["status"], 0);
}

#[tokio::test]
async fn a_blocked_recipient_in_receipt_mode_is_accepted_and_reported_rejected() {
    let app = spawn_smpp(BlockedMode::Receipt, 1000).await;
    let cases = smpplib(app.smpp.unwrap(), "receipt", &[]).await;
    let accepted = &cases["blocked_accepted"];
    assert_eq!(statuses(accepted), [0]);
    let id = message_id(accepted);
    assert!(id.starts_with("msg_"), "{id}");
    assert!(
        app.mock.received_for(OPTED_OUT).is_empty(),
        "never forwarded"
    );

    let r = &cases["receipt"];
    assert_eq!(r["esm_class"], 0x04, "an SMSC delivery receipt");
    let text = r["short_message"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("id:{id} sub:001 dlvrd:000 submit date:")),
        "{text}"
    );
    assert!(text.contains(" stat:REJECTD err:101 text:"), "{text}");
    assert_eq!(r["receipted_message_id"], id.as_str());
    assert_eq!(r["message_state"], 8, "REJECTED");
    assert_eq!(r["source_addr"], OPTED_OUT.trim_start_matches('+'));
    assert_eq!(r["destination_addr"], "ACME");
}

/// The receipts_later conversation: the script's lines by case; `on_line`
/// runs for each as it comes, and a `true` answer lets the script go on.
async fn smpplib_conversation(
    addr: SocketAddr,
    scenario: &str,
    mut on_line: impl AsyncFnMut(&Value) -> bool,
) -> BTreeMap<String, Value> {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/sdk/smpp_client.py"
        ))
        .env("SMPP_HOST", addr.ip().to_string())
        .env("SMPP_PORT", addr.port().to_string())
        .env("SYSTEM_ID", SYSTEM_ID)
        .env("PASSWORD", PASSWORD)
        .env("SCENARIO", scenario)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut cases = BTreeMap::new();
    let talk = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let v: Value = serde_json::from_str(&line).expect("one JSON object per line");
            if on_line(&v).await {
                stdin.write_all(b"go\n").await.unwrap();
            }
            cases.insert(v["case"].as_str().unwrap().to_string(), v);
        }
    };
    tokio::time::timeout(Duration::from_secs(60), talk)
        .await
        .expect("the smpplib script finishes");
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "smpplib script failed: {cases:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cases
}

#[tokio::test]
async fn smpplib_gets_receipts_after_the_report_and_after_binding_again() {
    let app = spawn_smpp(BlockedMode::Refuse, 1000).await;
    let app = &app;
    let mut away: Option<String> = None;
    let cases = smpplib_conversation(app.smpp.unwrap(), "receipts_later", async |v: &Value| {
        match v["case"].as_str().unwrap() {
            "submitted_live" => {
                // The provider reports after the submit_sm_resp, the bind still up.
                let id = message_id(v);
                let (s, _) = app
                    .native_dlr(json!({"provider_id": format!("mock-{id}"), "status": "delivered"}))
                    .await;
                assert_eq!(s, 200);
                true
            }
            "submitted_away" => {
                away = Some(message_id(v));
                false
            }
            "unbound" => {
                // The report comes while no bind can take the receipt.
                let id = away.clone().unwrap();
                let (s, _) = app
                    .native_dlr(json!({"provider_id": format!("mock-{id}"), "status": "undelivered", "error": "5"}))
                    .await;
                assert_eq!(s, 200);
                tokio::time::sleep(Duration::from_millis(1_500)).await;
                assert_eq!(app.store.outbox_stats().await.unwrap().queued, 1, "waiting for a bind");
                true
            }
            _ => false,
        }
    })
    .await;
    let live = message_id(&cases["submitted_live"]);
    let r = &cases["receipt_live"];
    assert_eq!(r["esm_class"], 0x04);
    assert_eq!(r["receipted_message_id"], live.as_str());
    assert_eq!(r["message_state"], 2, "DELIVERED");
    let text = r["short_message"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("id:{live} sub:001 dlvrd:001 ")),
        "{text}"
    );
    assert!(text.contains(" stat:DELIVRD err:000 text:"), "{text}");
    assert_eq!(r["source_addr"], "33612345678");
    assert_eq!(r["destination_addr"], "ACME");

    assert_eq!(cases["unbound"]["status"], 0);
    let away = message_id(&cases["submitted_away"]);
    let r = &cases["receipt_after_reconnect"];
    assert_eq!(r["receipted_message_id"], away.as_str());
    assert_eq!(r["message_state"], 5, "UNDELIVERABLE");
    assert!(
        r["short_message"]
            .as_str()
            .unwrap()
            .contains(" stat:UNDELIV err:005 "),
        "{r}"
    );
    assert_eq!(r["source_addr"], "33612345679");
}

#[tokio::test]
async fn beyond_its_rate_a_tenant_is_throttled() {
    let app = spawn_smpp(BlockedMode::Refuse, 2).await;
    let cases = smpplib(app.smpp.unwrap(), "throttle", &[]).await;
    let s: Vec<u64> = cases["throttle"]["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let ok = s.iter().filter(|x| **x == 0).count();
    let throttled = s.iter().filter(|x| **x == 0x58).count();
    assert_eq!(ok + throttled, 6, "{s:?}");
    assert!(
        (1..=3).contains(&ok),
        "the burst is the per-second rate: {s:?}"
    );
    assert_eq!(app.mock.received().len(), ok, "throttled ones are not sent");
}

#[tokio::test]
async fn the_listener_speaks_tls_when_given_a_certificate() {
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
        .args(["-days", "1", "-subj", "/CN=localhost"])
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (c2, k2) = (cert.clone(), key.clone());
    let app = spawn_app_with(move |c| {
        smpp_config(c, BlockedMode::Refuse, 1000);
        c.smpp.tls_cert = Some(c2);
        c.smpp.tls_key = Some(k2);
    })
    .await;
    let cases = smpplib(
        app.smpp.unwrap(),
        "tls",
        &[("CA_FILE", cert.to_str().unwrap())],
    )
    .await;
    assert_eq!(cases["tls"]["bind"], 0);
    assert_eq!(statuses(&cases["tls"]), [0]);
    assert_eq!(
        app.mock.received_for("+33612345678")[0]["body"],
        "Your code: 1234"
    );
    // Plain SMPP on a TLS listener gets nowhere (and does not hang the listener).
    let mut plain = TcpStream::connect(app.smpp.unwrap()).await.unwrap();
    plain
        .write_all(&bind_pdu(0x09, 1, SYSTEM_ID, PASSWORD))
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(5), plain.read(&mut buf)).await;
    assert!(!matches!(r, Ok(Ok(16))), "no bind_resp in clear text");
}

// ---- raw SMPP, written by hand from the SMPP 3.4 specification ----

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn pdu(command_id: u32, status: u32, sequence: u32, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + body.len());
    v.extend_from_slice(&(16 + body.len() as u32).to_be_bytes());
    v.extend_from_slice(&command_id.to_be_bytes());
    v.extend_from_slice(&status.to_be_bytes());
    v.extend_from_slice(&sequence.to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// bind_transmitter (2), bind_receiver (1) or bind_transceiver (9).
fn bind_pdu(command_id: u32, sequence: u32, system_id: &str, password: &str) -> Vec<u8> {
    let mut body = cstr(system_id);
    body.extend(cstr(password));
    body.extend(cstr(""));
    body.extend([0x34, 0, 0]);
    body.extend(cstr(""));
    pdu(command_id, 0, sequence, &body)
}

/// A submit_sm of GSM text (unpacked; ASCII letters are the same septets).
fn submit_pdu(sequence: u32, service_type: &str, to: &str, text: &str) -> Vec<u8> {
    submit_pdu_with(sequence, service_type, to, text, 0)
}

/// The same with a `registered_delivery`.
fn submit_pdu_with(
    sequence: u32,
    service_type: &str,
    to: &str,
    text: &str,
    registered_delivery: u8,
) -> Vec<u8> {
    let mut b = cstr(service_type);
    b.extend([5, 0]);
    b.extend(cstr("ACME"));
    b.extend([1, 1]);
    b.extend(cstr(to));
    b.extend([0, 0, 0]); // esm_class, protocol_id, priority_flag
    b.extend(cstr("")); // schedule_delivery_time
    b.extend(cstr("")); // validity_period
    b.extend([registered_delivery, 0, 0, 0]); // registered_delivery, replace_if_present, data_coding, sm_default_msg_id
    b.push(text.len() as u8);
    b.extend(text.as_bytes());
    pdu(0x04, 0, sequence, &b)
}

struct Raw {
    stream: TcpStream,
}

#[derive(Debug)]
struct RawPdu {
    id: u32,
    status: u32,
    sequence: u32,
    body: Vec<u8>,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.unwrap(),
        }
    }

    async fn bound(addr: SocketAddr, command_id: u32) -> Raw {
        let mut r = Raw::connect(addr).await;
        r.send(&bind_pdu(command_id, 1, SYSTEM_ID, PASSWORD)).await;
        let resp = r.read().await.expect("a bind_resp");
        assert_eq!(
            (resp.id, resp.status),
            (0x8000_0000 | command_id, 0),
            "{resp:?}"
        );
        r
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next PDU, or `None` once the peer has closed (within 10 s).
    async fn read(&mut self) -> Option<RawPdu> {
        let fut = async {
            let mut head = [0u8; 16];
            self.stream.read_exact(&mut head).await.ok()?;
            let word = |i: usize| u32::from_be_bytes(head[i..i + 4].try_into().unwrap());
            let mut body = vec![0u8; word(0) as usize - 16];
            self.stream.read_exact(&mut body).await.ok()?;
            Some(RawPdu {
                id: word(4),
                status: word(8),
                sequence: word(12),
                body,
            })
        };
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .expect("an answer or a close in time")
    }

    /// The next PDU that is not an enquire_link of stopgate's (answered).
    async fn read_answer(&mut self) -> Option<RawPdu> {
        loop {
            let p = self.read().await?;
            if p.id == 0x15 {
                self.send(&pdu(0x8000_0015, 0, p.sequence, &[])).await;
                continue;
            }
            return Some(p);
        }
    }
}

#[tokio::test]
async fn malformed_input_closes_only_its_own_session() {
    let app = spawn_smpp(BlockedMode::Refuse, 1000).await;
    let addr = app.smpp.unwrap();
    let mut good = Raw::bound(addr, 0x09).await;
    let mut bad = Raw::bound(addr, 0x09).await;

    // An unknown command: generic_nack ESME_RINVCMDID, and the session goes on.
    bad.send(&pdu(0x0000_1234, 0, 7, &[])).await;
    let nack = bad.read_answer().await.unwrap();
    assert_eq!(
        (nack.id, nack.status, nack.sequence),
        (0x8000_0000, 0x03, 7)
    );
    bad.send(&pdu(0x15, 0, 8, &[])).await;
    assert_eq!(bad.read_answer().await.unwrap().id, 0x8000_0015);

    // A submit_sm whose body stops in the middle of its fields.
    bad.send(&pdu(0x04, 0, 9, b"OTP\0\x05\x00AC")).await;
    let nack = bad.read_answer().await.unwrap();
    assert_eq!(
        (nack.id, nack.status, nack.sequence),
        (0x8000_0000, 0x02, 9),
        "ESME_RINVCMDLEN"
    );
    assert!(bad.read().await.is_none(), "that session is closed");

    // The other bind is untouched.
    good.send(&pdu(0x15, 0, 2, &[])).await;
    let r = good.read_answer().await.unwrap();
    assert_eq!((r.id, r.status, r.sequence), (0x8000_0015, 0, 2));
    good.send(&submit_pdu(3, "OTP", "33612345678", "Code 1234"))
        .await;
    let r = good.read_answer().await.unwrap();
    assert_eq!((r.id, r.status, r.sequence), (0x8000_0004, 0, 3), "{r:?}");
    assert!(r.body.starts_with(b"msg_"));
    assert_eq!(
        app.mock.received_for("+33612345678")[0]["body"],
        "Code 1234"
    );
}

#[tokio::test]
async fn an_oversized_command_length_is_refused_before_anything_is_read() {
    let app = spawn_smpp(BlockedMode::Refuse, 1000).await;
    let addr = app.smpp.unwrap();
    for len in [0x0010_0000u32, 0xFFFF_FFFF, 8] {
        let mut raw = Raw::connect(addr).await;
        // Only the header: were the length believed, the read would wait for more.
        let mut head = len.to_be_bytes().to_vec();
        head.extend([0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 42]);
        raw.send(&head).await;
        let nack = raw.read().await.expect("a generic_nack first");
        // The sequence number is known when the rest of the header came with it.
        assert!(matches!(nack.sequence, 0 | 42), "{nack:?}");
        assert_eq!((nack.id, nack.status), (0x8000_0000, 0x02), "{len:#x}");
        assert!(raw.read().await.is_none(), "then the session is closed");
    }
    // The listener still serves.
    let mut ok = Raw::bound(addr, 0x02).await;
    ok.send(&pdu(0x15, 0, 5, &[])).await;
    assert_eq!(ok.read_answer().await.unwrap().id, 0x8000_0015);
}

#[tokio::test]
async fn requests_out_of_state_get_their_codes() {
    let app = spawn_smpp(BlockedMode::Refuse, 1000).await;
    let addr = app.smpp.unwrap();
    let mut raw = Raw::connect(addr).await;
    // submit_sm before binding.
    raw.send(&submit_pdu(1, "", "33612345678", "hi")).await;
    let r = raw.read_answer().await.unwrap();
    assert_eq!((r.id, r.status), (0x8000_0004, 0x04), "ESME_RINVBNDSTS");
    // A receiver may not submit.
    let mut rx = Raw::bound(addr, 0x01).await;
    rx.send(&submit_pdu(2, "", "33612345678", "hi")).await;
    let r = rx.read_answer().await.unwrap();
    assert_eq!((r.id, r.status), (0x8000_0004, 0x04));
    // Binding twice.
    rx.send(&bind_pdu(0x09, 3, SYSTEM_ID, PASSWORD)).await;
    let r = rx.read_answer().await.unwrap();
    assert_eq!((r.id, r.status), (0x8000_0009, 0x05), "ESME_RALYBND");
    // max_binds = 4: two more binds fill the tenant's slots, the fifth is refused.
    let _b = Raw::bound(addr, 0x02).await;
    let _c = Raw::bound(addr, 0x02).await;
    let _d = Raw::bound(addr, 0x02).await;
    let mut e = Raw::connect(addr).await;
    e.send(&bind_pdu(0x02, 1, SYSTEM_ID, PASSWORD)).await;
    let r = e.read_answer().await.unwrap();
    assert_eq!((r.id, r.status), (0x8000_0002, 0x0D), "ESME_RBINDFAIL");
    assert!(app.mock.received().is_empty());
}

/// The receipt text of a deliver_sm, read from its bytes.
fn receipt_text(p: &RawPdu) -> String {
    assert_eq!(p.id, 0x05, "a deliver_sm: {p:?}");
    String::from_utf8_lossy(&p.body).to_string()
}

/// The message id in a submit_sm_resp body (a C string).
fn resp_id(p: &RawPdu) -> String {
    String::from_utf8(p.body[..p.body.len() - 1].to_vec()).unwrap()
}

#[tokio::test]
async fn a_receipt_waits_in_the_outbox_for_a_receiver_and_survives_one_that_drops() {
    let app = spawn_app_with(|c| {
        smpp_config(c, BlockedMode::Refuse, 1000);
        c.smpp.response_timeout_ms = 2_000;
    })
    .await;
    let addr = app.smpp.unwrap();
    // Submitted with registered_delivery on a transmitter: no receiver yet.
    let mut tx = Raw::bound(addr, 0x02).await;
    tx.send(&submit_pdu_with(2, "OTP", "33612345678", "Code 1234", 1))
        .await;
    let r = tx.read_answer().await.unwrap();
    assert_eq!((r.id, r.status), (0x8000_0004, 0));
    let first = resp_id(&r);
    // The provider's report makes the receipt due; it waits in the outbox.
    let (status, _) = app
        .native_dlr(json!({"provider_id": format!("mock-{first}"), "status": "delivered"}))
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.store.outbox_stats().await.unwrap().queued, 1);

    // A receiver gets it, never answers and drops the connection.
    let mut a = Raw::bound(addr, 0x01).await;
    let d = a.read_answer().await.unwrap();
    let text = receipt_text(&d);
    assert!(
        text.contains(&format!("id:{first} sub:001 dlvrd:001 submit date:")),
        "{text}"
    );
    assert!(text.contains(" stat:DELIVRD err:000 text:"), "{text}");
    drop(a);

    // The next receiver gets the same receipt and takes it.
    let mut b = Raw::bound(addr, 0x09).await;
    let d = b.read_answer().await.unwrap();
    assert!(receipt_text(&d).contains(&format!("id:{first} ")));
    b.send(&pdu(0x8000_0005, 0, d.sequence, b"\0")).await;
    // Then the next one, once: an undelivered message.
    b.send(&submit_pdu_with(3, "OTP", "33612345679", "Code 5678", 1))
        .await;
    let second = resp_id(&b.read_answer().await.unwrap());
    let (status, _) = app
        .native_dlr(json!({"provider_id": format!("mock-{second}"), "status": "undelivered", "error": "27"}))
        .await;
    assert_eq!(status, 200);
    let d = b.read_answer().await.unwrap();
    let text = receipt_text(&d);
    assert!(text.contains(&format!("id:{second} ")), "{text}");
    assert!(text.contains(" stat:UNDELIV err:027 "), "{text}");
    b.send(&pdu(0x8000_0005, 0, d.sequence, b"\0")).await;
    for _ in 0..100 {
        if app.store.outbox_stats().await.unwrap().queued == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.store.outbox_stats().await.unwrap().queued, 0);
    // An enquire_link answered proves nothing else is on the way.
    b.send(&pdu(0x15, 0, 40, &[])).await;
    assert_eq!(b.read_answer().await.unwrap().id, 0x8000_0015);
}

#[tokio::test]
async fn a_receipt_from_an_smpp_upstream_reaches_the_bound_application() {
    use crate::smsc::{receipt, Ids, Smsc};
    let smsc = Smsc::start("sg", "pw", Ids::Decimal).await;
    let port = smsc.addr.port();
    let app = spawn_app_with(move |c| {
        smpp_config(c, BlockedMode::Refuse, 1000);
        c.upstream.kind = stopgate::config::UpstreamKind::Smpp;
        c.upstream.smpp.host = "127.0.0.1".into();
        c.upstream.smpp.port = port;
        c.upstream.smpp.system_id = "sg".into();
        c.upstream.smpp.password = Secret("pw".into());
    })
    .await;
    smsc.until("a bind", |s| s.receivers() == 1).await;
    let mut trx = Raw::bound(app.smpp.unwrap(), 0x09).await;
    trx.send(&submit_pdu_with(2, "", "12125550123", "Black Friday", 1))
        .await;
    let r = trx.read_answer().await.unwrap();
    assert_eq!((r.id, r.status), (0x8000_0004, 0));
    let id = resp_id(&r);
    // The SMSC got it with the link footer; its receipt comes back to the application.
    let sent = smsc.submits().pop().unwrap();
    let body = stopgate::smpp::gsm::decode(&sent.short_message).unwrap();
    assert!(
        body.starts_with("Black Friday\n") && body.contains(BASE_URL),
        "{body}"
    );
    let smsc_id = sent.message_id.unwrap();
    assert_eq!(
        smsc.deliver(receipt(&smsc_id, None, "UNDELIV", "001"))
            .await,
        Some(0)
    );
    let d = trx.read_answer().await.unwrap();
    let text = receipt_text(&d);
    assert!(text.contains(&format!("id:{id} ")), "stopgate's id: {text}");
    assert!(text.contains(" stat:UNDELIV err:001 "), "{text}");
    trx.send(&pdu(0x8000_0005, 0, d.sequence, b"\0")).await;
}

#[tokio::test]
async fn shutdown_unbinds_every_session() {
    let mock = MockProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&mock, dir.path());
    smpp_config(&mut config, BlockedMode::Refuse, 1000);
    let app = stopgate::app::App::build(Settings::from_config(config).unwrap())
        .await
        .unwrap();
    let addr = app.smpp_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    let mut raw = Raw::bound(addr, 0x09).await;
    stop.send(()).unwrap();
    let unbind = raw.read_answer().await.expect("an unbind");
    assert_eq!(unbind.id, 0x06);
    raw.send(&pdu(0x8000_0006, 0, unbind.sequence, &[])).await;
    assert!(raw.read().await.is_none(), "then closed");
    let result = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("run returns")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn data_sm_with_a_message_payload_goes_through_the_pipeline() {
    let app = spawn_smpp(BlockedMode::Refuse, 1000).await;
    let mut raw = Raw::bound(app.smpp.unwrap(), 0x02).await;
    let text = "Soldes d'hiver: tout a -30% ce samedi seulement, en magasin et en ligne.";
    let mut b = cstr("");
    b.extend([5, 0]);
    b.extend(cstr("ACME"));
    b.extend([1, 1]);
    b.extend(cstr("33612345678"));
    b.extend([0, 0, 0]); // esm_class, registered_delivery, data_coding
    b.extend(0x0424u16.to_be_bytes()); // message_payload
    b.extend((text.len() as u16).to_be_bytes());
    b.extend(text.as_bytes());
    raw.send(&pdu(0x0103, 0, 11, &b)).await;
    let r = raw.read_answer().await.unwrap();
    assert_eq!((r.id, r.status, r.sequence), (0x8000_0103, 0, 11), "{r:?}");
    let id = String::from_utf8(r.body[..r.body.len() - 1].to_vec()).unwrap();
    let got = app.mock.received_for("+33612345678");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["body"], format!("{text}\nSTOP au 36111"));
    assert_eq!(got[0]["reference"], id.as_str());
}

#[tokio::test]
async fn a_silent_peer_is_asked_then_dropped_when_it_does_not_answer() {
    let app = spawn_app_with(|c| {
        smpp_config(c, BlockedMode::Refuse, 1000);
        c.smpp.enquire_link_secs = 1;
        c.smpp.inactivity_secs = 30;
        c.smpp.response_timeout_ms = 500;
    })
    .await;
    let mut raw = Raw::bound(app.smpp.unwrap(), 0x09).await;
    let started = Instant::now();
    let e = raw.read().await.expect("an enquire_link");
    assert_eq!(e.id, 0x15);
    assert!(started.elapsed() >= Duration::from_millis(900));
    raw.send(&pdu(0x8000_0015, 0, e.sequence, &[])).await;
    // Answered: the session stays; a second one comes after another silence.
    let e2 = raw.read().await.expect("a second enquire_link");
    assert_eq!(e2.id, 0x15);
    assert_ne!(e2.sequence, e.sequence);
    // Not answered: closed once the response is late.
    let asked = Instant::now();
    let after = raw.read().await;
    assert!(after.is_none(), "closed, not {after:?}");
    assert!(asked.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn check_config_names_the_bad_smpp_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stopgate.toml");
    let tenant = "[[tenants]]\nid = \"acme\"\nname = \"ACME\"\napi_key = \"k\"\n";
    for (toml, key) in [
        ("[smpp]\nlisten = \"port 2775\"\n".to_string(), "smpp.listen"),
        (
            "[smpp]\nlisten = \"127.0.0.1:2775\"\ntls_cert = \"/nonexistent/cert.pem\"\ntls_key = \"/nonexistent/key.pem\"\n".into(),
            "smpp.tls_cert",
        ),
        (
            format!("{tenant}[tenants.smpp]\nsystem_id = \"acme\"\npassword = \"longer-than-8\"\n"),
            "tenants[0].smpp.password",
        ),
        (
            format!("{tenant}[tenants.smpp]\nsystem_id = \"acme\"\npassword = \"p\"\ncategories = {{ \"ACMEOTP\" = \"urgent\" }}\n"),
            "tenants[0].smpp.categories.ACMEOTP",
        ),
    ] {
        let toml = if toml.contains("[[tenants]]") { toml } else { format!("{toml}{tenant}") };
        std::fs::write(&file, &toml).unwrap();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stopgate"))
            .args(["check-config", "--config"])
            .arg(&file)
            .output()
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{toml}: {err}");
        assert!(err.contains(key), "{key}: {err}");
    }
    std::fs::write(
        &file,
        format!("[smpp]\nlisten = \"127.0.0.1:2775\"\n{tenant}[tenants.smpp]\nsystem_id = \"acme\"\npassword = \"secret8\"\n"),
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stopgate"))
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
