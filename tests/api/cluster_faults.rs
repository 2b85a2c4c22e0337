//! Faults of a cluster on PostgreSQL: a database that is not there at
//! start, a database lost under load and back, a node SIGKILLed in the
//! middle of a STOP storm and a campaign while the other keeps serving.
//! The lost database is a server of the test's own (`Cluster::start`),
//! stopped and started again; the others use the binary's shared server.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

use crate::cluster::{duplicates, node_config, webhook_toml, Hook, Node, NodeSpec, HEAVY};
use crate::helpers::*;
use crate::pg::Cluster;

/// Blocking work (the test server's start and stop) on a runtime worker.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

async fn readyz(client: &reqwest::Client, api: &str) -> (u16, Value) {
    let r = client.get(format!("{api}/readyz")).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn ready_within(client: &reqwest::Client, api: &str, within: Duration) -> Duration {
    let started = Instant::now();
    while readyz(client, api).await.0 != 200 {
        assert!(
            started.elapsed() < within,
            "not ready again within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

/// A signed `POST /v1/inbound` STOP; the status and answer (`None` when
/// the node did not answer at all).
async fn stop(client: &reqwest::Client, public: &str, from: &str) -> Option<(u16, Value)> {
    let body = serde_json::to_vec(&json!({"from": from, "to": "36111", "text": "STOP"})).unwrap();
    let r = client
        .post(format!("{public}/v1/inbound"))
        .header("content-type", "application/json")
        .header("x-stopgate-signature", sign(INBOUND_SECRET, &body))
        .body(body)
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.unwrap_or(Value::Null)))
}

fn is_error_shape(v: &Value, code: &str) -> bool {
    v["error"]["code"] == code && v["error"]["message"].is_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_faults_a_database_unreachable_at_start_is_retried_with_backoff_until_it_comes() {
    let pg = Cluster::start();
    let url = pg.database().await;
    let db = url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    // The test server trusts every local user, so any password passes;
    // this one must never be printed.
    let password = "s3cr3t-Pa55word";
    let url = url.replace(
        "postgres://postgres@",
        &format!("postgres://postgres:{password}@"),
    );
    blocking(|| pg.stop());
    let mock = MockProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = node_config(
        dir.path(),
        "a",
        &mock,
        NodeSpec {
            storage: "connect_retry_secs = 60\nconnect_timeout_ms = 300",
            ..Default::default()
        },
    );
    let mut node = Node::spawn(&config, &url);
    let retries = |node: &Node| -> Vec<Value> {
        node.lines()
            .into_iter()
            .filter(|v| v["message"] == "database unreachable, retrying")
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while retries(&node).len() < 4 {
        assert!(
            Instant::now() < deadline,
            "no retries logged: {:?}",
            node.log.lock().unwrap()
        );
        assert!(node.child.try_wait().unwrap().is_none(), "gave up early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = retries(&node);
    let target = format!("127.0.0.1:{}", pg.port());
    for r in &seen {
        let database = r["database"].as_str().unwrap_or_default();
        assert!(database.contains(&db) && database.contains(&target), "{r}");
        assert!(r["level"] == "WARN", "{r}");
    }
    let pauses: Vec<u64> = seen
        .iter()
        .map(|r| r["retry_in_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(&pauses[..4], [250, 500, 1000, 2000], "backoff doubles");
    // The database comes: the node starts by itself, no restart of ours.
    let back = Instant::now();
    blocking(|| pg.restart());
    node.listening(Duration::from_secs(30)).await;
    eprintln!(
        "listening {:?} after the database came back",
        back.elapsed()
    );
    let client = reqwest::Client::new();
    assert_eq!(readyz(&client, &node.api).await.0, 200);
    let fr = "+33617000001";
    let (status, answer) = stop(&client, &node.public, fr).await.unwrap();
    assert_eq!(
        (status, answer["action"].as_str()),
        (200, Some("opted_out"))
    );
    let r: Value = client
        .post(format!("{}/v1/messages", node.api))
        .bearer_auth(ACME_KEY)
        .json(&json!({"to": fr, "from": "ACME", "body": "Sale"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["results"][0]["status"], "blocked", "{r}");
    node.sigkill().await;
    let log = node.log.lock().unwrap().join("\n");
    assert!(!log.contains(password), "the password was printed");
}

/// One marketing request of the load: to an opted-out number and a fresh
/// one; and one OTP.
struct Round {
    marketing: Value,
    otp: Value,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_faults_a_database_lost_under_load_fails_closed_for_marketing_and_comes_back_by_itself(
) {
    let pg = Cluster::start();
    let url = pg.database().await;
    let app = spawn_app_on(&url, |c| {
        c.storage.connect_timeout_ms = 500;
        c.storage.statement_timeout_ms = 2_000;
    })
    .await;
    let client = app.client.clone();
    let opted_out: Vec<String> = (0..10).map(|i| format!("+1212562{i:04}")).collect();
    for n in &opted_out {
        let (s, _) = app
            .call(
                Method::PUT,
                ACME_KEY,
                &format!("/v1/suppressions/{}", n.replace('+', "%2B")),
                None,
            )
            .await;
        assert_eq!(s, 200);
    }
    let linked = "+12125629999";
    let r = app
        .send_one(
            ACME_KEY,
            json!({"to": linked, "from": "ACME", "body": "Deals", "campaign": "faults"}),
        )
        .await;
    let code = r["optout"]["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(readyz(&client, &app.api).await.0, 200);

    // The load: every 20 ms, marketing to [an opted-out number, a fresh
    // one] and an OTP to another fresh one, until the scenario is over.
    let done = AtomicBool::new(false);
    let rounds: Mutex<Vec<Round>> = Mutex::new(Vec::new());
    let load = async {
        let started = Instant::now();
        let mut i = 0;
        while !done.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(60) {
            let marketing = json!({"to": [&opted_out[i % 10], format!("+1212563{i:04}")], "from": "ACME", "body": "Sale"});
            let otp = json!({"to": format!("+1212564{i:04}"), "from": "ACME", "body": "Code 1234", "category": "otp"});
            let ((sm, m), (so, o)) =
                tokio::join!(app.send(ACME_KEY, marketing), app.send(ACME_KEY, otp));
            assert_eq!((sm.as_u16(), so.as_u16()), (200, 200), "{m} {o}");
            rounds.lock().unwrap().push(Round {
                marketing: m,
                otp: o,
            });
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let scenario = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        blocking(|| pg.stop());
        let fr = "+33617000002";
        let us = "+12125650001";

        // Not ready, in the one error shape.
        let (status, v) = readyz(&client, &app.api).await;
        assert_eq!(status, 503);
        assert!(is_error_shape(&v, "not_ready"), "{v}");
        // Marketing fails closed, per recipient: a link country and a
        // short-code country; the provider gets neither.
        let (status, v) = app
            .send(
                ACME_KEY,
                json!({"to": [us, fr], "from": "ACME", "body": "Sale"}),
            )
            .await;
        assert_eq!(status.as_u16(), 200, "{v}");
        for r in v["results"].as_array().unwrap() {
            assert_eq!(
                (r["status"].as_str(), r["error"]["code"].as_str()),
                (Some("failed"), Some("store_unavailable")),
                "{r}"
            );
        }
        assert_eq!(v["summary"]["failed"], 2);
        assert!(app.mock.received_for(us).is_empty() && app.mock.received_for(fr).is_empty());
        // OTP and transactional without a reference go out as usual.
        for (to, category) in [("+12125650002", "otp"), ("+33617000003", "transactional")] {
            let r = app
                .send_one(
                    ACME_KEY,
                    json!({"to": to, "from": "ACME", "body": "Code 1234", "category": category}),
                )
                .await;
            assert_eq!(r["status"], "sent", "{category}: {r}");
            assert_eq!(app.mock.received_for(to).len(), 1, "{category}");
        }
        // With a reference the answer cannot be kept: the request is
        // refused whole (503, retry), and nothing goes out.
        let referenced = "+12125650003";
        let (status, v) = app
            .send(ACME_KEY, json!({"to": referenced, "from": "ACME", "body": "Code 1", "category": "otp", "reference": "r-1"}))
            .await;
        assert_eq!(status.as_u16(), 503, "{v}");
        assert!(is_error_shape(&v, "unavailable"), "{v}");
        assert!(app.mock.received_for(referenced).is_empty());
        // A STOP is not acknowledged: the provider must retry it.
        let (status, v) = stop(&client, &app.public, fr).await.unwrap();
        assert_eq!(status, 503, "{v}");
        assert!(is_error_shape(&v, "unavailable"), "{v}");
        // The link page and its button: 503, try again.
        for post in [false, true] {
            let req = if post {
                client
                    .post(format!("{}/{code}", app.public))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("")
            } else {
                client.get(format!("{}/{code}", app.public))
            };
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 503, "POST {post}");
            assert!(r.headers().contains_key("retry-after"));
        }
        // A delivery report is not acknowledged either.
        let body =
            serde_json::to_vec(&json!({"provider_id": "mock-x", "status": "delivered"})).unwrap();
        let r = client
            .post(format!("{}/v1/dlr", app.public))
            .header("content-type", "application/json")
            .header("x-stopgate-signature", sign(INBOUND_SECRET, &body))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        // Still down a moment later: nothing pretends.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(readyz(&client, &app.api).await.0, 503);
        let outage = rounds.lock().unwrap().len();

        blocking(|| pg.restart());
        let took = ready_within(&client, &app.api, Duration::from_secs(20)).await;
        eprintln!("ready {took:?} after the database came back");
        // The provider's retry of the STOP lands and sticks; the link's
        // button works; fresh marketing goes out again.
        let (status, v) = stop(&client, &app.public, fr).await.unwrap();
        assert_eq!(
            (status, v["action"].as_str()),
            (200, Some("opted_out")),
            "{v}"
        );
        assert!(app.blocked(ACME_KEY, fr).await);
        let r = client
            .post(format!("{}/{code}", app.public))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(app.blocked(ACME_KEY, linked).await);
        assert!(!app.blocked(ACME_KEY, us).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
        done.store(true, Ordering::SeqCst);
        outage
    };
    let ((), outage) = tokio::join!(load, scenario);

    // The load throughout: opted-out numbers were never forwarded, whatever
    // the database did; every marketing result is sent, blocked or
    // store_unavailable; every OTP was sent.
    let rounds = rounds.into_inner().unwrap();
    for n in &opted_out {
        assert!(app.mock.received_for(n).is_empty(), "{n} was forwarded");
    }
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for (i, round) in rounds.iter().enumerate() {
        let results = round.marketing["results"].as_array().unwrap();
        let (opted, fresh) = (&results[0], &results[1]);
        for (r, allowed) in [(opted, "blocked"), (fresh, "sent")] {
            let outcome = match (r["status"].as_str().unwrap(), r["error"]["code"].as_str()) {
                (s, _) if s == allowed => s.to_string(),
                ("failed", Some("store_unavailable")) => "store_unavailable".into(),
                other => panic!("round {i}: {other:?} {r}"),
            };
            *outcomes.entry(outcome).or_default() += 1;
        }
        assert_eq!(
            round.otp["results"][0]["status"], "sent",
            "round {i}: {}",
            round.otp
        );
    }
    eprintln!(
        "load: {} rounds ({outage} by the end of the outage), marketing outcomes {outcomes:?}",
        rounds.len()
    );
    assert!(
        outcomes.get("store_unavailable").copied().unwrap_or(0) >= 2,
        "the load ran into the outage"
    );
    let last = rounds.last().unwrap().marketing["results"]
        .as_array()
        .unwrap();
    assert_eq!(
        (last[0]["status"].as_str(), last[1]["status"].as_str()),
        (Some("blocked"), Some("sent")),
        "the load recovered"
    );
}

/// What one request of the storm got.
#[derive(Debug, Clone)]
struct Outcome {
    node: char,
    at: Instant,
    /// Answered 2xx with the expected result.
    ok: bool,
    /// The STOP's number, or the campaign request's recipients.
    numbers: Vec<String>,
    /// What came back, shown (`Debug`) when B failed one.
    #[allow(dead_code)]
    detail: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_faults_sigkill_of_one_node_mid_storm_loses_nothing_and_the_other_serves_throughout(
) {
    let _heavy = HEAVY.lock().await;
    let url = Cluster::shared().database().await;
    let mock = MockProvider::start().await;
    let hook = Hook::start(Duration::from_millis(20)).await;
    // The lease outlasts twice the provider's timeout (a confirmation SMS);
    // the timeout is roomy because the mock provider shares the test
    // process with the storm.
    const LEASE_MS: u64 = 7_000;
    let top = format!("[webhooks]\ntimeout_ms = 1500\nlease_ms = {LEASE_MS}\n");
    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str| {
        node_config(
            dir.path(),
            name,
            &mock,
            NodeSpec {
                top: &top,
                tenant: &webhook_toml(&hook, &format!("/{name}"), &["optout"]),
                upstream_timeout_ms: 3_000,
                ..Default::default()
            },
        )
    };
    let (config_a, config_b) = (config("a"), config("b"));
    let (mut a, b) = tokio::join!(Node::start(&config_a, &url), Node::start(&config_b, &url));
    let client = reqwest::Client::new();
    let (a_api, a_public) = (a.api.clone(), a.public.clone());
    let (b_api, b_public) = (b.api.clone(), b.public.clone());

    // The storm, paced so that it runs on after the kill: 600 STOPs (one
    // every 8 ms) and 80 campaign requests of 10 link-country recipients
    // (one every 60 ms), each alternating between the nodes.
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let mut tasks = Vec::new();
    let stops = {
        let (client, outcomes) = (client.clone(), outcomes.clone());
        let (a_public, b_public) = (a_public.clone(), b_public.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(8));
            let mut tasks = Vec::new();
            for i in 0..600 {
                tick.tick().await;
                let (node, public) = if i % 2 == 0 {
                    ('a', a_public.clone())
                } else {
                    ('b', b_public.clone())
                };
                let (client, outcomes) = (client.clone(), outcomes.clone());
                tasks.push(tokio::spawn(async move {
                    let n = format!("+3361600{i:04}");
                    let answer = stop(&client, &public, &n).await;
                    let ok = matches!(&answer, Some((200, v)) if v["action"] == "opted_out");
                    let detail = format!("{answer:?}");
                    outcomes.lock().unwrap().push(Outcome {
                        node,
                        at: Instant::now(),
                        ok,
                        numbers: vec![n],
                        detail,
                    });
                }));
            }
            futures::future::join_all(tasks).await;
        })
    };
    tasks.push(stops);
    let campaign = {
        let (client, outcomes) = (client.clone(), outcomes.clone());
        let (a_api, b_api) = (a_api.clone(), b_api.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(60));
            let mut tasks = Vec::new();
            for r in 0..80 {
                tick.tick().await;
                let (node, api) = if r % 2 == 0 {
                    ('a', a_api.clone())
                } else {
                    ('b', b_api.clone())
                };
                let (client, outcomes) = (client.clone(), outcomes.clone());
                tasks.push(tokio::spawn(async move {
                    let to: Vec<String> = (0..10).map(|i| format!("+1212566{:04}", r * 10 + i)).collect();
                    let answer = client
                        .post(format!("{api}/v1/messages"))
                        .bearer_auth(ACME_KEY)
                        .json(&json!({"to": to, "from": "ACME", "body": "Deals", "campaign": "storm"}))
                        .send()
                        .await;
                    let (ok, detail) = match answer {
                        Ok(resp) => {
                            let status = resp.status().as_u16();
                            let v: Value = resp.json().await.unwrap_or(Value::Null);
                            let failed: Vec<&Value> = v["results"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter(|r| r["status"] != "sent")
                                .collect();
                            (status == 200 && v["summary"]["sent"] == 10, format!("{status} {} {failed:?}", v["summary"]))
                        }
                        Err(e) => (false, e.to_string()),
                    };
                    outcomes.lock().unwrap().push(Outcome { node, at: Instant::now(), ok, numbers: to, detail });
                }));
            }
            futures::future::join_all(tasks).await;
        })
    };
    tasks.push(campaign);

    // Kill A once the storm is well under way and A has a webhook
    // delivery out: its receiver holds A's requests unanswered, so the
    // kill lands while A holds leased items.
    let acked = || {
        outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|o| o.ok && o.numbers.len() == 1)
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked() < 150 || mock.received().len() < 150 {
        assert!(Instant::now() < deadline, "the storm did not get going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    hook.hold("/a");
    let deadline = Instant::now() + Duration::from_secs(10);
    while hook.held() == 0 {
        assert!(Instant::now() < deadline, "A delivered no webhook");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    a.sigkill().await;
    let killed = Instant::now();
    let killed_wall = jiff::Timestamp::now();
    let held: Vec<_> = hook.arrivals().into_iter().filter(|x| x.held).collect();
    hook.release();
    for t in tasks {
        t.await.unwrap();
    }
    let outcomes = outcomes.lock().unwrap().clone();

    // B served throughout: every one of its requests succeeded, before
    // and after the kill.
    let on_b: Vec<&Outcome> = outcomes.iter().filter(|o| o.node == 'b').collect();
    let failed_b: Vec<_> = on_b.iter().filter(|o| !o.ok).collect();
    assert!(
        failed_b.is_empty(),
        "B failed {} requests: {failed_b:?}",
        failed_b.len()
    );
    let after = on_b.iter().filter(|o| o.at > killed).count();
    let refused_a = outcomes.iter().filter(|o| o.node == 'a' && !o.ok).count();
    eprintln!(
        "storm: B answered {} requests ({after} after the kill); A refused or dropped {refused_a}",
        on_b.len()
    );
    assert!(after > 50, "the storm ran on after the kill");
    assert!(refused_a > 0, "the kill landed mid-storm");

    // 0 acknowledged opt-outs lost: each is blocked through B.
    let acked: Vec<String> = outcomes
        .iter()
        .filter(|o| o.ok && o.numbers.len() == 1)
        .map(|o| o.numbers[0].clone())
        .collect();
    let statuses = |numbers: Vec<String>| {
        let (client, b_api) = (client.clone(), b_api.clone());
        async move {
            let mut out = Vec::new();
            for chunk in numbers.chunks(1000) {
                let v: Value = client
                    .post(format!("{b_api}/v1/messages"))
                    .bearer_auth(ACME_KEY)
                    .json(&json!({"to": chunk, "from": "ACME", "body": "Sale"}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                out.extend(v["results"].as_array().unwrap().iter().map(|r| {
                    (
                        r["to"].as_str().unwrap().to_string(),
                        r["status"].as_str().unwrap().to_string(),
                    )
                }));
            }
            out
        }
    };
    let lost: Vec<_> = statuses(acked.clone())
        .await
        .into_iter()
        .filter(|(_, s)| s != "blocked")
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged STOPs lost: {lost:?}",
        lost.len()
    );

    // 0 forwarded links dead: every link that reached the provider opens
    // and opts out through B.
    let prefix = format!("Deals\nOpt out: {BASE_URL}/");
    let delivered: BTreeMap<String, String> = mock
        .received()
        .iter()
        .filter_map(|m| {
            let code = m["body"].as_str()?.strip_prefix(&prefix)?;
            Some((m["to"].as_str()?.to_string(), code.to_string()))
        })
        .collect();
    assert!(delivered.len() >= 150, "{}", delivered.len());
    let dead: Vec<(String, u16, u16)> = futures::stream::iter(delivered.clone())
        .map(|(n, code)| {
            let (client, public) = (client.clone(), b_public.clone());
            async move {
                let shown = client
                    .get(format!("{public}/{code}"))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
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
        .filter(|(_, g, p)| futures::future::ready((*g, *p) != (200, 200)))
        .collect()
        .await;
    assert!(dead.is_empty(), "links dead after the kill: {dead:?}");
    let linked: Vec<String> = delivered.keys().cloned().collect();
    let unblocked: Vec<_> = statuses(linked)
        .await
        .into_iter()
        .filter(|(_, s)| s != "blocked")
        .collect();
    assert!(unblocked.is_empty(), "{unblocked:?}");

    // The outbox: every acknowledged opt-out's webhook arrives; what A
    // held when it died is delivered by B once the lease is over; nothing
    // arrives twice except what A had out at the kill.
    let want: BTreeSet<&str> = acked.iter().map(String::as_str).collect();
    let arrived = hook
        .wait(Duration::from_millis(LEASE_MS + 15_000), |got| {
            let numbers: BTreeSet<&str> = got
                .iter()
                .filter_map(|x| x.event["data"]["number"].as_str())
                .collect();
            want.is_subset(&numbers)
                && held.iter().all(|h| {
                    got.iter()
                        .any(|x| x.delivery == h.delivery && x.path == "/b")
                })
        })
        .await;
    let numbers: BTreeSet<&str> = arrived
        .iter()
        .filter_map(|x| x.event["data"]["number"].as_str())
        .collect();
    let missing: Vec<_> = want.difference(&numbers).collect();
    assert!(
        missing.is_empty(),
        "opt-out webhooks never delivered: {missing:?}"
    );
    assert!(!held.is_empty());
    for h in &held {
        let again = arrived
            .iter()
            .find(|x| x.delivery == h.delivery && x.path == "/b")
            .unwrap_or_else(|| panic!("{} held by A, never delivered by B", h.delivery));
        // A's lease began when A claimed the item: after it was written
        // (`created`), at some point before its request arrived here. So
        // B may take it no sooner than `created` + the lease.
        let created: jiff::Timestamp = h.event["created"].as_str().unwrap().parse().unwrap();
        let after = again.wall.as_millisecond() - created.as_millisecond();
        assert!(
            after >= LEASE_MS as i64,
            "B took {} {after} ms after it was written, within A's lease",
            h.delivery
        );
    }
    // At least once: an event may arrive twice only if it was written
    // while A lived (A may have had it claimed), never one written after
    // the kill, and never more than twice. Seen in runs under load: B
    // itself sending one of those twice, ~150 ms apart, after A's lease
    // (see the report of this change); events from two live nodes never
    // arrive twice (`cluster_two_binaries_deliver_each_outbox_item_once_one_node_at_a_time`).
    let twice = duplicates(&arrived);
    for (id, copies) in &twice {
        assert_eq!(copies.len(), 2, "{id}: {copies:#?}");
        let created: jiff::Timestamp = copies[0].event["created"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            created < killed_wall,
            "{id} written after the kill, twice: {copies:#?}"
        );
    }
    let by_b_twice = twice
        .values()
        .filter(|c| c.iter().all(|x| x.path == "/b"))
        .count();
    assert!(twice.len() <= 64, "{} duplicates", twice.len());
    eprintln!(
        "outbox: {} opt-out webhooks for {} acknowledged STOPs; A held {} at the kill; {} delivered twice across the crash ({by_b_twice} of them both times by B)",
        arrived.len(),
        acked.len(),
        held.len(),
        twice.len()
    );
    // Each acknowledged STOP gets its confirmation SMS (those A had
    // claimed, after the lease).
    let unconfirmed = || {
        let confirmed: BTreeSet<String> = mock
            .received()
            .iter()
            .filter(|m| m["from"] == "36111")
            .map(|m| m["to"].as_str().unwrap().to_string())
            .collect();
        acked
            .iter()
            .filter(|n| !confirmed.contains(*n))
            .cloned()
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_millis(LEASE_MS + 10_000);
    while !unconfirmed().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        unconfirmed().is_empty(),
        "no confirmation: {:?}",
        unconfirmed()
    );
}

/// Two nodes on one database, node A SIGKILLed while it releases 300 held
/// messages alone. Node B, started after the kill, releases what A had not
/// begun once A's leases end; what A had begun is never sent again. Every
/// message is accounted for, none reaches the provider twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_faults_a_node_killed_mid_release_loses_nothing_and_the_other_releases_the_rest() {
    // Not one of the HEAVY tests: 300 messages at 4 at a time, then a wait
    // for the lease. Its deadlines are loose enough to share the machine.
    let url = Cluster::shared().database().await;
    let mock = MockProvider::start().await;
    mock.set(Behaviour::Delay(Duration::from_millis(20)));
    let dir = tempfile::tempdir().unwrap();
    // A release lease is 2 × (upstream timeout + pacing) + 30 s: with a
    // 500 ms timeout, B takes A's over about 31 s after A took them.
    let config = |name: &str| {
        node_config(
            dir.path(),
            name,
            &mock,
            NodeSpec {
                top: "[schedule]\nrelease_concurrency = 4\npoll_ms = 20\n",
                upstream_timeout_ms: 500,
                ..Default::default()
            },
        )
    };
    let (config_a, config_b) = (config("a"), config("b"));
    let mut a = Node::start(&config_a, &url).await;
    let client = reqwest::Client::new();
    let ids = crate::schedule::hold_for_two_seconds(&client, &a.api, "+3361235").await;
    // Killed once its release is well under way, not done.
    let started = Instant::now();
    while mock.received().len() < 60 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.sigkill().await;
    let at_kill = mock.received().len();
    assert!(
        (60..300).contains(&at_kill),
        "killed mid-release: {at_kill}"
    );
    let b = Node::start(&config_b, &url).await;
    let records =
        crate::schedule::released_records(&client, &b.api, ids.len(), Duration::from_secs(120))
            .await;
    let interrupted = crate::schedule::sent_once_or_interrupted(&ids, &records, &mock);
    // At most what A's rounds had marked begun (two workers, four each).
    assert!(interrupted <= 8, "{interrupted} interrupted");
    let after_kill = mock.received().len() - at_kill;
    assert!(
        after_kill + interrupted >= 300 - at_kill,
        "B released the rest: {after_kill} after the kill, {interrupted} interrupted, {at_kill} before"
    );
    // Nothing more arrives later (a lease running out twice, say).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(mock.received().len(), at_kill + after_kill);
}
