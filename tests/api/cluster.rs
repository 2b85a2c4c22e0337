//! Two nodes, one truth: two gateways on one PostgreSQL database behave as
//! one. Most tests run two `App`s in this process (two real HTTP servers,
//! each with its own pool, batching writers, dispatcher and mock provider);
//! the outbox test runs two real binaries. Each test has a database of its
//! own on the binary's shared test server (`tests/support/pg.rs`).
//!
//! Also here, for `cluster_faults.rs`: [`Node`] (the real binary on
//! PostgreSQL) and [`Hook`] (a webhook receiver that notes which node
//! delivered what, and when).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, StatusCode, Uri};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::*;
use crate::pg::Cluster;

const BIN: &str = env!("CARGO_BIN_EXE_stopgate");
const HOOK_SECRET: &str = "whsec_cluster_hooks";

/// Taken by the tests that run storms against two nodes, so that they do
/// not run at once on this 2-core machine: each measures what a node does
/// under its own load, not under the other's.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Two nodes on one fresh database, each adjusted by its own tweak.
async fn two_nodes(
    tweak_a: impl FnOnce(&mut stopgate::config::Config),
    tweak_b: impl FnOnce(&mut stopgate::config::Config),
) -> (TestApp, TestApp, String) {
    let url = Cluster::shared().database().await;
    let a = spawn_app_on(&url, tweak_a).await;
    let b = spawn_app_on(&url, tweak_b).await;
    (a, b, url)
}

/// A plain session on the database, to count rows behind the nodes' backs.
async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

fn path_number(n: &str) -> String {
    n.replace('+', "%2B")
}

/// The link code in a result's `optout.url`.
fn code_of(result: &Value) -> String {
    result["optout"]["url"]
        .as_str()
        .and_then(|u| u.strip_prefix(&format!("{BASE_URL}/")))
        .unwrap_or_else(|| panic!("a link footer: {result}"))
        .to_string()
}

/// `POST /v1/messages`: status, headers and the raw body.
async fn send_raw(app: &TestApp, key: &str, body: &Value) -> (u16, HeaderMap, Vec<u8>) {
    let r = app
        .client
        .post(format!("{}/v1/messages", app.api))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let mut headers = HeaderMap::new();
    for (k, v) in r.headers() {
        headers.insert(k.clone(), v.clone());
    }
    (status, headers, r.bytes().await.unwrap().to_vec())
}

/// `GET` or `POST` of a link page on the public listener of `public`.
async fn link_page(
    client: &reqwest::Client,
    public: &str,
    code: &str,
    post: bool,
) -> (u16, String) {
    let r = if post {
        client
            .post(format!("{public}/{code}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("reason=too_many")
    } else {
        client.get(format!("{public}/{code}"))
    }
    .send()
    .await
    .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A signed native delivery report.
async fn dlr(app: &TestApp, provider_id: &str, status: &str) -> (u16, Value) {
    let body = serde_json::to_vec(&json!({"provider_id": provider_id, "status": status})).unwrap();
    let r = app
        .client
        .post(format!("{}/v1/dlr", app.public))
        .header("content-type", "application/json")
        .header("x-stopgate-signature", sign(INBOUND_SECRET, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn tenants_of(answer: &Value) -> BTreeSet<String> {
    answer["tenants"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_an_opt_out_taken_by_one_node_blocks_marketing_through_the_other_at_once() {
    let (a, b, _) = two_nodes(|_| {}, |_| {}).await;
    // STOPs on A, each followed at once (no pause, no retry) by a send
    // through B: twenty times, so a cache or a lagging replica would show.
    for i in 0..20 {
        let fr = format!("+3361200{i:04}");
        assert!(!b.blocked(ACME_KEY, &fr).await, "not yet opted out");
        let (status, answer) = a.mo(&fr, "36111", "STOP ACME").await;
        assert_eq!(
            (status.as_u16(), answer["action"].as_str()),
            (200, Some("opted_out"))
        );
        assert!(
            b.blocked(ACME_KEY, &fr).await,
            "{fr}: B sent after A's STOP"
        );
        // The other tenant's marketing is not the STOP's business.
        assert!(!b.blocked(BETA_KEY, &fr).await);
    }
    // The API on B, the other way round.
    let us = "+12125550001";
    let (status, v) = b
        .call(
            Method::PUT,
            ACME_KEY,
            &format!("/v1/suppressions/{}", path_number(us)),
            Some(json!({"reason": "asked by phone"})),
        )
        .await;
    assert_eq!((status.as_u16(), &v["changed"]), (200, &json!(true)), "{v}");
    assert!(a.blocked(ACME_KEY, us).await);
    // A START through B re-subscribes on A; the history reads the same on both.
    let fr = "+33612000000";
    let (status, answer) = b.mo(fr, "36111", "START ACME").await;
    assert_eq!(
        (status.as_u16(), answer["action"].as_str()),
        (200, Some("opted_in"))
    );
    assert!(!a.blocked(ACME_KEY, fr).await);
    let path = format!("/v1/suppressions/{}", path_number(fr));
    let (_, on_a) = a.call(Method::GET, ACME_KEY, &path, None).await;
    let (_, on_b) = b.call(Method::GET, ACME_KEY, &path, None).await;
    assert_eq!(on_a, on_b);
    let history: Vec<(&str, &str)> = on_a["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["source"].as_str().unwrap()))
        .collect();
    assert_eq!(history, [("opt_out", "sms"), ("opt_in", "sms")], "{on_a}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_a_link_minted_through_one_node_opens_and_opts_out_through_the_other() {
    let (a, b, _) = two_nodes(|_| {}, |_| {}).await;
    let us = "+12125550100";
    let r = a
        .send_one(
            ACME_KEY,
            json!({"to": us, "from": "ACME", "body": "Deals", "campaign": "spring"}),
        )
        .await;
    assert_eq!(r["status"], "sent", "{r}");
    let code = code_of(&r);
    // The page on B: A's tenant and the masked number; a GET changes nothing.
    let (status, page) = link_page(&b.client, &b.public, &code, false).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("ACME Shop"), "{page}");
    assert!(!page.contains("5550100"), "the number is masked");
    assert!(!a.is_suppressed("acme", us).await);
    let (status, page) = link_page(&b.client, &b.public, &code, true).await;
    assert_eq!(status, 200, "{page}");
    // In force on both nodes, with the campaign and reason the link carried.
    assert!(a.blocked(ACME_KEY, us).await);
    assert!(b.blocked(ACME_KEY, us).await);
    let events = a.events("acme", us).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].source.as_str(), "link");
    assert_eq!(
        events[0].campaign.as_ref().map(|c| c.as_str()),
        Some("spring")
    );
    assert_eq!(events[0].reason.as_deref(), Some("too_many"));
    // A second POST (on A) is idempotent: no second event.
    let (status, _) = link_page(&a.client, &a.public, &code, true).await;
    assert_eq!(status, 200);
    assert_eq!(b.events("acme", us).await.len(), 1);
    // Another recipient: the link B gives for A's (tenant, number, campaign)
    // is A's, not a second one.
    let other = "+12125550101";
    let on_a = a
        .send_one(
            ACME_KEY,
            json!({"to": other, "from": "ACME", "body": "Deals", "campaign": "spring"}),
        )
        .await;
    let on_b = b
        .send_one(
            ACME_KEY,
            json!({"to": other, "from": "ACME", "body": "Deals", "campaign": "spring"}),
        )
        .await;
    assert_eq!(code_of(&on_a), code_of(&on_b));
    // An unknown code is a 404 on both.
    for app in [&a, &b] {
        assert_eq!(
            link_page(&app.client, &app.public, "Zz9Zz9Zz", false)
                .await
                .0,
            404
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_a_reference_answered_by_one_node_is_answered_the_same_by_the_other() {
    // A's provider is slow, so A is still working when B is asked.
    let (a, b, _) = two_nodes(|c| c.upstream.timeout_ms = 5_000, |_| {}).await;
    a.mock.set(Behaviour::Delay(Duration::from_millis(1_500)));
    let body = json!({
        "to": ["+12125550200", "+33612300200"], "from": "ACME",
        "body": "Your order shipped", "category": "transactional", "reference": "order-77",
    });
    let on_a = send_raw(&a, ACME_KEY, &body);
    let on_b_meanwhile = async {
        let deadline = Instant::now() + Duration::from_secs(10);
        while a.mock.received().is_empty() {
            assert!(Instant::now() < deadline, "A never reached its provider");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        send_raw(&b, ACME_KEY, &body).await
    };
    let ((status_a, _, answer_a), (status_b, _, busy)) = tokio::join!(on_a, on_b_meanwhile);
    let busy: Value = serde_json::from_slice(&busy).unwrap();
    assert_eq!(status_b, 409, "{busy}");
    assert_eq!(busy["error"]["code"], "request_in_progress", "{busy}");
    assert_eq!(status_a, 200);
    // Done: B answers A's answer, byte for byte, and sends nothing.
    let (status, headers, replayed) = send_raw(&b, ACME_KEY, &body).await;
    assert_eq!(status, 200);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(
        String::from_utf8_lossy(&replayed),
        String::from_utf8_lossy(&answer_a)
    );
    let answer: Value = serde_json::from_slice(&answer_a).unwrap();
    assert_eq!(answer["summary"]["sent"], 2, "{answer}");
    assert!(
        b.mock.received().is_empty(),
        "B forwarded a replayed request"
    );
    assert_eq!(
        a.mock.received().len(),
        2,
        "A forwarded each recipient once"
    );
    // The same reference for another request is refused on both.
    let mut other = body.clone();
    other["body"] = json!("Something else");
    for app in [&a, &b] {
        let (status, _, e) = send_raw(app, ACME_KEY, &other).await;
        let e: Value = serde_json::from_slice(&e).unwrap();
        assert_eq!(
            (status, &e["error"]["code"]),
            (422, &json!("reference_reused"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_a_stop_on_a_shared_short_code_goes_to_the_tenants_whose_marketing_went_through_either_node(
) {
    let (a, b, _) = two_nodes(|_| {}, |_| {}).await;
    let marketing = |to: &str| json!({"to": to, "from": "SHOP", "body": "Soldes"});
    // FR's 36111 is shared by acme and beta.
    let both = "+33612400001"; // acme through A, beta through B
    let acme_via_b = "+33612400002";
    let beta_via_a = "+33612400003";
    let nobody = "+33612400004";
    for (app, key, to) in [
        (&a, ACME_KEY, both),
        (&b, BETA_KEY, both),
        (&b, ACME_KEY, acme_via_b),
        (&a, BETA_KEY, beta_via_a),
    ] {
        let r = app.send_one(key, marketing(to)).await;
        assert_eq!(
            (r["status"].as_str(), r["optout"]["shortcode"].as_str()),
            (Some("sent"), Some("36111")),
            "{r}"
        );
    }
    for (node, to, expected) in [
        (&a, both, set(&["acme", "beta"])),
        (&a, acme_via_b, set(&["acme"])),
        (&b, beta_via_a, set(&["beta"])),
        // No marketing in the window: every tenant on the code.
        (&b, nobody, set(&["acme", "beta"])),
    ] {
        let (status, answer) = node.mo(to, "36111", "STOP").await;
        assert_eq!(status.as_u16(), 200, "{answer}");
        assert_eq!(answer["action"], "opted_out");
        assert_eq!(tenants_of(&answer), expected, "{to}");
    }
    assert!(a.is_suppressed("acme", acme_via_b).await);
    assert!(!a.is_suppressed("beta", acme_via_b).await);
    assert!(!b.is_suppressed("acme", beta_via_a).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_insights_counters_are_exact_when_both_nodes_update_them_at_once() {
    let _heavy = HEAVY.lock().await;
    let (a, b, _) = two_nodes(|_| {}, |_| {}).await;
    let nodes = [&a, &b];
    // 40 requests of 10 link-country recipients, half on each node, 8 at a time.
    let batch = |r: usize| -> Vec<String> {
        (0..10)
            .map(|i| format!("+1212556{:04}", r * 10 + i))
            .collect()
    };
    let sent: Vec<Value> = futures::stream::iter(0..40)
        .map(|r| {
            let node = nodes[r % 2];
            async move {
                let (status, v) = node
                    .send(ACME_KEY, json!({"to": batch(r), "from": "ACME", "body": "Deals", "campaign": "summer"}))
                    .await;
                assert_eq!(status.as_u16(), 200, "{v}");
                v
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let results: Vec<&Value> = sent
        .iter()
        .flat_map(|v| v["results"].as_array().unwrap())
        .collect();
    assert!(results.iter().all(|r| r["status"] == "sent"));
    // Then, at once on both nodes: 60 link opt-outs (each code POSTed on
    // both nodes), 20 API opt-outs of other numbers (each PUT on both
    // nodes), and 20 more requests of 10.
    let codes: Vec<String> = results.iter().take(60).map(|r| code_of(r)).collect();
    let api_numbers: Vec<String> = results
        .iter()
        .skip(100)
        .take(20)
        .map(|r| r["to"].as_str().unwrap().to_string())
        .collect();
    enum Op {
        Link(String),
        Put(String),
        Send(usize),
    }
    let mut ops: Vec<Op> = Vec::new();
    ops.extend(
        codes
            .iter()
            .flat_map(|c| [Op::Link(c.clone()), Op::Link(c.clone())]),
    );
    ops.extend(
        api_numbers
            .iter()
            .flat_map(|n| [Op::Put(n.clone()), Op::Put(n.clone())]),
    );
    ops.extend((40..60).map(Op::Send));
    let outcomes: Vec<bool> = futures::stream::iter(ops.into_iter().enumerate())
        .map(|(i, op)| {
            let node = nodes[i % 2];
            async move {
                match op {
                    Op::Link(code) => link_page(&node.client, &node.public, &code, true).await.0 == 200,
                    Op::Put(n) => {
                        let path = format!("/v1/suppressions/{}", path_number(&n));
                        let (s, _) = node
                            .call(Method::PUT, ACME_KEY, &path, Some(json!({"campaign": "summer"})))
                            .await;
                        s == 200
                    }
                    Op::Send(r) => {
                        let (s, v) = node
                            .send(ACME_KEY, json!({"to": batch(r), "from": "ACME", "body": "Deals", "campaign": "summer"}))
                            .await;
                        s.as_u16() == 200 && v["summary"]["sent"] == 10
                    }
                }
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(outcomes.iter().all(|ok| *ok), "every request succeeded");
    let expected = json!({
        "campaign": "summer", "sent": 600, "optouts": {"api": 20, "link": 60},
        "optouts_total": 80, "reasons": {"too_many": 60},
    });
    for node in nodes {
        let (s, v) = node
            .call(Method::GET, ACME_KEY, "/v1/insights/campaigns", None)
            .await;
        assert_eq!(s, 200);
        let summer = v["campaigns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["campaign"] == "summer")
            .unwrap_or_else(|| panic!("{v}"));
        for key in ["campaign", "sent", "optouts", "optouts_total", "reasons"] {
            assert_eq!(summer[key], expected[key], "{key}: {summer}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_a_csv_import_on_one_node_is_in_force_on_the_other() {
    let (a, b, _) = two_nodes(|_| {}, |_| {}).await;
    let numbers: Vec<String> = (0..1000)
        .map(|i| format!("+3361300{i:04}"))
        .chain((0..1000).map(|i| format!("+1212557{i:04}")))
        .collect();
    // One row with a reason (a state of its own), the rest plain (bulk).
    let mut csv = String::from("number,reason\n");
    for (i, n) in numbers.iter().enumerate() {
        csv.push_str(n);
        csv.push_str(if i == 7 { ",complaint\n" } else { ",\n" });
    }
    let (status, report) = a.import_csv(ACME_KEY, csv).await;
    assert_eq!(
        (status.as_u16(), report["imported"].as_u64()),
        (200, Some(2000)),
        "{report}"
    );
    for chunk in numbers.chunks(1000) {
        let (status, v) = b
            .send(
                ACME_KEY,
                json!({"to": chunk, "from": "ACME", "body": "Sale"}),
            )
            .await;
        assert_eq!(status.as_u16(), 200);
        assert_eq!(v["summary"]["blocked"], 1000, "{}", v["summary"]);
    }
    assert!(b.mock.received().is_empty(), "B forwarded imported numbers");
    let (_, state) = b
        .call(
            Method::GET,
            ACME_KEY,
            &format!("/v1/suppressions/{}", path_number(&numbers[7])),
            None,
        )
        .await;
    assert_eq!(
        (state["source"].as_str(), state["reason"].as_str()),
        (Some("import"), Some("complaint")),
        "{state}"
    );
    // Beta's marketing is not blocked by acme's list.
    assert!(!b.blocked(BETA_KEY, &numbers[0]).await);
    // B's export holds A's import.
    let exported = b.export_csv(ACME_KEY).await;
    assert_eq!(exported.lines().count(), 2001, "a header and every number");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_concurrent_sends_through_both_nodes_mint_one_link_and_run_one_reference() {
    let (a, b, url) = two_nodes(|_| {}, |_| {}).await;
    // The same 200-recipient request of one campaign on both nodes at the
    // same moment, three times over: both mint the same keys at once.
    let to: Vec<String> = (0..200).map(|i| format!("+1212558{i:04}")).collect();
    let body = json!({"to": to, "from": "ACME", "body": "Launch", "campaign": "launch"});
    let mut codes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for _ in 0..3 {
        let ((sa, va), (sb, vb)) = tokio::join!(
            a.send(ACME_KEY, body.clone()),
            b.send(ACME_KEY, body.clone())
        );
        assert_eq!((sa.as_u16(), sb.as_u16()), (200, 200));
        for r in va["results"]
            .as_array()
            .unwrap()
            .iter()
            .chain(vb["results"].as_array().unwrap())
        {
            assert_eq!(r["status"], "sent", "{r}");
            codes
                .entry(r["to"].as_str().unwrap().to_string())
                .or_default()
                .insert(code_of(r));
        }
    }
    assert_eq!(codes.len(), 200);
    let twice: Vec<_> = codes.iter().filter(|(_, c)| c.len() != 1).collect();
    assert!(twice.is_empty(), "minted twice: {twice:?}");
    let db = sql(&url).await;
    let links: i64 = db
        .query_one("SELECT count(*) FROM links", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(links, 200);

    // 20 references, each sent through both nodes at the same moment:
    // exactly one of each pair does the work.
    let mut outcomes = Vec::new();
    for i in 0..20 {
        let body = json!({
            "to": [format!("+1212559{i:04}"), format!("+3361400{i:04}")], "from": "ACME",
            "body": "Code 1234", "category": "otp", "reference": format!("login-{i}"),
        });
        let (ra, rb) = tokio::join!(send_raw(&a, ACME_KEY, &body), send_raw(&b, ACME_KEY, &body));
        outcomes.push((ra, rb));
    }
    let forwarded = a.mock.received().len() + b.mock.received().len() - 1200;
    assert_eq!(
        forwarded, 40,
        "each reference's two recipients forwarded once"
    );
    for ((sa, ha, ba), (sb, hb, bb)) in &outcomes {
        let fresh = [(sa, ha), (sb, hb)]
            .iter()
            .filter(|(s, h)| **s == 200 && !h.contains_key("idempotent-replayed"))
            .count();
        assert_eq!(
            fresh,
            1,
            "{} / {}",
            String::from_utf8_lossy(ba),
            String::from_utf8_lossy(bb)
        );
        for (s, body) in [(sa, ba), (sb, bb)] {
            let v: Value = serde_json::from_slice(body).unwrap();
            assert!(
                *s == 200 || (*s == 409 && v["error"]["code"] == "request_in_progress"),
                "{s} {v}"
            );
        }
    }
}

/// A STOP's replay record is kept in its events' transaction on
/// PostgreSQL: the captured STOP sent to either node gets the first answer,
/// and neither node records or confirms it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_a_stop_captured_on_one_node_is_not_acted_on_again_by_the_other() {
    let (a, b, _) = two_nodes(|_| {}, |_| {}).await;
    let n = "+33612345698";
    let body = serde_json::to_vec(&json!({"from": n, "to": "36111", "text": "STOP"})).unwrap();
    let sig = sign_at(INBOUND_SECRET, unix_now() - 10, &body);
    let (status, first) = a
        .post_inbound(body.clone(), Some(&sig), "application/json")
        .await;
    assert_eq!(
        (status.as_u16(), first["action"].as_str()),
        (200, Some("opted_out")),
        "{first}"
    );
    for app in [&b, &a, &b] {
        let (status, again) = app
            .post_inbound(body.clone(), Some(&sig), "application/json")
            .await;
        assert_eq!((status.as_u16(), &again), (200, &first));
    }
    // Either node's dispatcher may send the one confirmation.
    let deadline = Instant::now() + Duration::from_secs(10);
    let sent = || a.mock.received_for(n).len() + b.mock.received_for(n).len();
    while sent() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sent(), 1, "one confirmation for one STOP");
    assert_eq!(a.events("acme", n).await.len(), 1, "one opt-out recorded");
}

/// The replay record is kept in the report's transaction on PostgreSQL:
/// a captured report sent to the other node gets the first node's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_a_report_captured_on_one_node_gets_its_first_answer_from_the_other() {
    let (a, b, _) = two_nodes(|_| {}, |_| {}).await;
    crate::dlr::a_captured_report_gets_its_first_answer(&a, &b).await;
    // On one node too.
    crate::dlr::a_captured_report_gets_its_first_answer(&b, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_message_records_written_by_one_node_are_read_and_moved_through_the_other() {
    let (a, b, _) = two_nodes(|_| {}, |_| {}).await;
    let (status, v) = a
        .send(
            ACME_KEY,
            json!({"to": ["+12125550300", "+12125550301"], "from": "ACME", "body": "Deals", "campaign": "records"}),
        )
        .await;
    assert_eq!(status.as_u16(), 200);
    let results = v["results"].as_array().unwrap();
    let get = |app: &TestApp, id: String| {
        let req = app
            .client
            .get(format!("{}/v1/messages/{id}", app.api))
            .bearer_auth(ACME_KEY);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let history = |m: &Value| -> Vec<String> {
        m["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["status"].as_str().unwrap().to_string())
            .collect()
    };
    let (id, pid) = (
        results[0]["id"].as_str().unwrap().to_string(),
        results[0]["provider_id"].as_str().unwrap().to_string(),
    );
    // Records are committed before the send answers: B finds them at once.
    let (status, m) = get(&b, id.clone()).await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(
        (m["status"].as_str(), m["campaign"].as_str()),
        (Some("sent"), Some("records")),
        "{m}"
    );
    let (status, list) = b
        .call(Method::GET, ACME_KEY, "/v1/messages?campaign=records", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2), "{list}");
    // A report to B moves A's record; a late "sent" to A does not undo it.
    assert_eq!(dlr(&b, &pid, "delivered").await.0, 200);
    let (_, m) = get(&a, id.clone()).await;
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(dlr(&a, &pid, "sent").await.0, 200);
    let (_, m) = get(&b, id.clone()).await;
    assert_eq!(history(&m), ["sent", "delivered"], "{m}");
    // The record's counters follow, whichever node took the report.
    let (_, v) = a
        .call(Method::GET, ACME_KEY, "/v1/insights/campaigns", None)
        .await;
    let c = v["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["campaign"] == "records")
        .cloned()
        .unwrap();
    assert_eq!(
        (c["sent"].as_u64(), c["delivered"].as_u64()),
        (Some(2), Some(1)),
        "{c}"
    );
    // Another tenant sees none of it through either node.
    let r = b
        .client
        .get(format!("{}/v1/messages/{id}", b.api))
        .bearer_auth(BETA_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

// ---------------------------------------------------------------------------
// The real binary on PostgreSQL, and a webhook receiver that tells nodes apart.

/// A `stopgate serve` process; its stderr (JSON logs) is kept in memory
/// and copied to the suite's log directory (the privacy audit reads it).
pub struct Node {
    pub child: Child,
    pub api: String,
    pub public: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

/// The settings of a node's config file that tests vary.
#[derive(Default)]
pub struct NodeSpec<'a> {
    /// Extra `[storage]` keys.
    pub storage: &'a str,
    /// Extra top-level tables (`[webhooks]`, ...).
    pub top: &'a str,
    /// Appended to the acme tenant (`[tenants.webhooks]`, ...).
    pub tenant: &'a str,
    /// `upstream.timeout_ms` (1000 when 0): the mock provider runs in the
    /// test process, which a storm keeps busy.
    pub upstream_timeout_ms: u64,
}

/// Writes `dir/<name>.toml`: both listeners on port 0, the store on
/// PostgreSQL (its URL comes from the environment, as in production), the
/// mock provider upstream, one tenant on FR's short code.
pub fn node_config(dir: &Path, name: &str, mock: &MockProvider, spec: NodeSpec) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let toml = format!(
        r#"
[server]
api_listen = "127.0.0.1:0"
public_listen = "127.0.0.1:0"
public_base_url = "{BASE_URL}"
shutdown_grace_secs = 2
[storage]
kind = "postgres"
pool_size = 8
{storage}
[upstream]
kind = "http"
url = "{url}"
token = "{UPSTREAM_TOKEN}"
timeout_ms = {upstream_timeout}
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
{top}
[[tenants]]
id = "acme"
name = "ACME Shop"
api_key = "{ACME_KEY}"
keyword = "ACME"
# The hour the suite runs at must not hold marketing (tests/api/schedule.rs tests windows).
send_windows = false
{tenant}
"#,
        url = mock.url(),
        storage = spec.storage,
        top = spec.top,
        tenant = spec.tenant,
        upstream_timeout = if spec.upstream_timeout_ms == 0 {
            1000
        } else {
            spec.upstream_timeout_ms
        },
    );
    std::fs::write(&path, toml).unwrap();
    path
}

impl Node {
    /// Starts the binary on `config` with the database at `db_url`; does
    /// not wait for it to listen (see [`Node::listening`]).
    pub fn spawn(config: &Path, db_url: &str) -> Node {
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .env_remove("STOPGATE_CONFIG")
            .env("STOPGATE_STORAGE__URL", db_url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        std::fs::create_dir_all(log_dir()).unwrap();
        let mut file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(log_dir().join(format!("cluster-{}.log", std::process::id())))
            .unwrap();
        let kept = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = writeln!(file, "{line}");
                kept.lock().unwrap().push(line);
            }
        });
        Node {
            child,
            api: String::new(),
            public: String::new(),
            log,
        }
    }

    /// [`Node::spawn`], then waits until it listens.
    pub async fn start(config: &Path, db_url: &str) -> Node {
        let mut node = Node::spawn(config, db_url);
        node.listening(Duration::from_secs(60)).await;
        node
    }

    /// Waits for the `stopgate listening` line and takes the addresses from it.
    pub async fn listening(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(v) = self
                .lines()
                .into_iter()
                .find(|v| v["message"] == "stopgate listening")
            {
                self.api = format!("http://{}", v["api"].as_str().unwrap());
                self.public = format!("http://{}", v["public"].as_str().unwrap());
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "stopgate exited ({status}) before listening: {:?}",
                    self.log.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "stopgate did not listen in {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The JSON log lines so far.
    pub fn lines(&self) -> Vec<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub async fn sigkill(&mut self) {
        self.child.start_kill().unwrap(); // SIGKILL on unix
        self.child.wait().await.unwrap();
    }

    /// `stopgate_outbox_delivered_total` of `kind`, from this node's `/metrics`.
    pub async fn delivered(&self, client: &reqwest::Client, kind: &str) -> u64 {
        let text = client
            .get(format!("{}/metrics", self.api))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let prefix = format!("stopgate_outbox_delivered_total{{kind=\"{kind}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |n| n.trim().parse::<f64>().unwrap() as u64)
    }
}

/// One webhook delivery as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The node's webhook path (`/a`, `/b`): which node delivered it.
    pub path: String,
    /// `X-Stopgate-Delivery`: the event's id, the same on every attempt.
    pub delivery: String,
    pub event: Value,
    /// When it arrived, on the wall clock (to compare with the nodes' times).
    pub wall: jiff::Timestamp,
    /// Held unanswered (see [`Hook::hold`]).
    pub held: bool,
    /// The connection it came on, and its signature (with its time): in a
    /// failure's `Debug` output they tell a second send by a node from one
    /// request seen twice.
    #[allow(dead_code)]
    pub peer: SocketAddr,
    #[allow(dead_code)]
    pub signature: String,
}

#[derive(Default)]
struct HookState {
    arrivals: Vec<Arrival>,
    /// Requests on this path are held (not answered) while it is set.
    hold: Option<String>,
    held: usize,
}

/// A webhook receiver for a cluster's tenants. Each node's config points
/// its tenant webhook at its own path, so the receiver knows which node
/// delivered each event (in production every node has the same URL).
/// Answers 200 after `delay`; can hold one path's requests unanswered.
#[derive(Clone)]
pub struct Hook {
    pub addr: SocketAddr,
    state: Arc<Mutex<HookState>>,
    released: Arc<tokio::sync::Notify>,
}

impl Hook {
    pub async fn start(delay: Duration) -> Hook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hook = Hook {
            addr,
            state: Arc::new(Mutex::new(HookState::default())),
            released: Arc::new(tokio::sync::Notify::new()),
        };
        let h = hook.clone();
        let app = axum::Router::new().fallback(
            move |ConnectInfo(peer): ConnectInfo<SocketAddr>,
                  uri: Uri,
                  headers: HeaderMap,
                  body: Bytes| {
                let h = h.clone();
                async move { h.arrive(peer, uri, headers, body, delay).await }
            },
        );
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap()
        });
        hook
    }

    async fn arrive(
        &self,
        peer: SocketAddr,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
        delay: Duration,
    ) -> StatusCode {
        let path = uri.path().to_string();
        let arrival = Arrival {
            path: path.clone(),
            delivery: headers
                .get("x-stopgate-delivery")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
            event: serde_json::from_slice(&body).unwrap_or(Value::Null),
            wall: jiff::Timestamp::now(),
            held: false,
            peer,
            signature: headers
                .get("x-stopgate-signature")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
        };
        let held = {
            let mut s = self.state.lock().unwrap();
            let held = s.hold.as_deref() == Some(path.as_str());
            s.arrivals.push(Arrival { held, ..arrival });
            s.held += usize::from(held);
            held
        };
        if held {
            // Bounded: a test that forgets to release still ends.
            let _ = tokio::time::timeout(Duration::from_secs(30), async {
                loop {
                    let notified = self.released.notified();
                    if self.state.lock().unwrap().hold.is_none() {
                        return;
                    }
                    notified.await;
                }
            })
            .await;
            self.state.lock().unwrap().held -= 1;
        }
        tokio::time::sleep(delay).await;
        StatusCode::OK
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn arrivals(&self) -> Vec<Arrival> {
        self.state.lock().unwrap().arrivals.clone()
    }

    /// Holds every request on `path` unanswered until [`Hook::release`].
    pub fn hold(&self, path: &str) {
        self.state.lock().unwrap().hold = Some(path.to_string());
    }

    /// Requests being held now.
    pub fn held(&self) -> usize {
        self.state.lock().unwrap().held
    }

    pub fn release(&self) {
        self.state.lock().unwrap().hold = None;
        self.released.notify_waiters();
    }

    /// Waits until `done` holds for the arrivals (at most `within`).
    pub async fn wait(&self, within: Duration, done: impl Fn(&[Arrival]) -> bool) -> Vec<Arrival> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.arrivals();
            if done(&got) || Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `[tenants.webhooks]` of a node: the hook's `path`, `events` only.
pub fn webhook_toml(hook: &Hook, path: &str, events: &[&str]) -> String {
    format!(
        "[tenants.webhooks]\nurl = \"{}\"\nsecret = \"{HOOK_SECRET}\"\nevents = {:?}\n",
        hook.url(path),
        events
    )
}

/// Delivery ids that arrived more than once, with their arrivals.
pub fn duplicates(arrivals: &[Arrival]) -> HashMap<String, Vec<Arrival>> {
    let mut by_id: HashMap<String, Vec<Arrival>> = HashMap::new();
    for a in arrivals {
        by_id.entry(a.delivery.clone()).or_default().push(a.clone());
    }
    by_id.retain(|_, v| v.len() > 1);
    by_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_two_binaries_deliver_each_outbox_item_once_one_node_at_a_time() {
    let _heavy = HEAVY.lock().await;
    let url = Cluster::shared().database().await;
    let mock = MockProvider::start().await;
    // A slow receiver: each delivery takes 400 ms, while both dispatchers
    // poll every 500 ms and the lease is 3 s. A node that took an item
    // another node has out would show as a second arrival.
    let hook = Hook::start(Duration::from_millis(400)).await;
    let dir = tempfile::tempdir().unwrap();
    let top = "[webhooks]\ntimeout_ms = 2000\nlease_ms = 3000\n";
    let events = ["optout", "message.status"];
    let config = |name: &str, path: &str| {
        node_config(
            dir.path(),
            name,
            &mock,
            NodeSpec {
                top,
                tenant: &webhook_toml(&hook, path, &events),
                ..Default::default()
            },
        )
    };
    let (config_a, config_b) = (config("a", "/a"), config("b", "/b"));
    let (a, b) = tokio::join!(Node::start(&config_a, &url), Node::start(&config_b, &url));
    let client = reqwest::Client::new();
    // 60 STOPs and 60 marketing sends, alternating nodes, paced over ~3 s.
    const N: usize = 60;
    let stops: Vec<String> = (0..N).map(|i| format!("+3361500{i:04}")).collect();
    let sends: Vec<String> = (0..N).map(|i| format!("+1212560{i:04}")).collect();
    let mut tick = tokio::time::interval(Duration::from_millis(25));
    for i in 0..N {
        tick.tick().await;
        let node = if i % 2 == 0 { &a } else { &b };
        let body =
            serde_json::to_vec(&json!({"from": stops[i], "to": "36111", "text": "STOP"})).unwrap();
        let r = client
            .post(format!("{}/v1/inbound", node.public))
            .header("content-type", "application/json")
            .header("x-stopgate-signature", sign(INBOUND_SECRET, &body))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r: Value = client
            .post(format!("{}/v1/messages", node.api))
            .bearer_auth(ACME_KEY)
            .json(&json!({"to": sends[i], "from": "ACME", "body": "Deals"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["summary"]["sent"], 1, "{r}");
    }
    let expected = 2 * N;
    let arrived = hook
        .wait(Duration::from_secs(30), |got| {
            got.iter()
                .map(|a| &a.delivery)
                .collect::<BTreeSet<_>>()
                .len()
                >= expected
        })
        .await;
    // Two more leases: anything handed out twice would have arrived by now.
    tokio::time::sleep(Duration::from_millis(6_500)).await;
    let arrived = if arrived.len() >= expected {
        hook.arrivals()
    } else {
        arrived
    };
    let twice = duplicates(&arrived);
    assert!(twice.is_empty(), "delivered twice: {twice:#?}");
    assert_eq!(arrived.len(), expected, "every event once");
    let optouts: BTreeSet<&str> = arrived
        .iter()
        .filter(|a| a.event["type"] == "optout")
        .map(|a| a.event["data"]["number"].as_str().unwrap())
        .collect();
    assert_eq!(optouts, stops.iter().map(String::as_str).collect());
    let statuses: BTreeSet<&str> = arrived
        .iter()
        .filter(|a| a.event["type"] == "message.status")
        .map(|a| a.event["data"]["to"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, sends.iter().map(String::as_str).collect());
    // Both dispatchers worked, and their own counters add up.
    let on = |p: &str| arrived.iter().filter(|a| a.path == p).count();
    let (via_a, via_b) = (on("/a"), on("/b"));
    eprintln!("outbox: {via_a} events delivered by A, {via_b} by B");
    assert!(via_a > 0 && via_b > 0, "A {via_a}, B {via_b}");
    let counted_a =
        a.delivered(&client, "optout").await + a.delivered(&client, "message.status").await;
    let counted_b =
        b.delivered(&client, "optout").await + b.delivered(&client, "message.status").await;
    assert_eq!((counted_a as usize, counted_b as usize), (via_a, via_b));
    // Each STOP's confirmation SMS went out once, from one node.
    for n in &stops {
        let replies = mock.received_for(n);
        assert_eq!(replies.len(), 1, "{n}: {replies:?}");
        assert_eq!(replies[0]["from"], "36111");
    }
}
