//! Send windows, `send_at`, cancel and frequency caps, black-box: the real
//! gateway on a manual clock (a test-only clock source: "Sunday 14:00 in
//! Paris" is a value, and the releaser sees the clock move), a mock
//! provider on loopback; two gateways on one PostgreSQL for the cluster
//! cases. A restart in the middle of a release runs the real binary.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use stopgate::clock::ManualClock;
use stopgate::config::{Config, FrequencyCapConfig};

use crate::helpers::*;

const FR: &str = "+33612345678";
const NEW_YORK: &str = "+12125550123";
const LOS_ANGELES: &str = "+12135550123";
const ZA: &str = "+27821234567";

/// The shipped send windows on (the test config turns them off, so that
/// other tests do not depend on the hour they run at); releases looked for
/// often, so a test never waits long.
fn quick(c: &mut Config) {
    for t in &mut c.tenants {
        t.send_windows = None;
    }
    c.schedule.poll_ms = 20;
}

async fn app_at(clock: &Arc<ManualClock>, tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_at(clock.clone(), |c| {
        quick(c);
        tweak(c);
    })
    .await
}

impl TestApp {
    async fn api_get(&self, key: &str, path: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.api))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn cancel(&self, key: &str, id: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .delete(format!("{}/v1/messages/{id}", self.api))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn record(&self, id: &str) -> Value {
        let (status, r) = self.api_get(ACME_KEY, &format!("/v1/messages/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        r
    }

    /// The record once it is no longer `scheduled` (10 s at most).
    async fn released(&self, id: &str) -> Value {
        for _ in 0..500 {
            let r = self.record(id).await;
            if r["status"] != "scheduled" {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{id} still scheduled after 10 s");
    }

    /// A campaign's insights counters.
    async fn campaign(&self, name: &str) -> Value {
        let (_, v) = self.api_get(ACME_KEY, "/v1/insights/campaigns").await;
        v["campaigns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["campaign"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    }
}

/// The marketing bodies the provider got for `e164` (confirmation replies
/// to STOPs left out).
fn marketing_for(app: &TestApp, e164: &str) -> Vec<Value> {
    app.mock
        .received_for(e164)
        .into_iter()
        .filter(|m| m["body"].as_str().unwrap().starts_with("Soldes"))
        .collect()
}

/// Several releaser polls, for "nothing happens".
async fn a_while() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

fn sale(to: Value) -> Value {
    json!({"to": to, "from": "ACME", "body": "Soldes -50%", "campaign": "spring"})
}

#[tokio::test]
async fn fr_marketing_on_a_sunday_is_held_and_released_on_monday_at_0800_paris() {
    // Sunday 15 March 2026, 14:00 in Paris (CET).
    let clock = ManualClock::at_rfc3339("2026-03-15T14:00:00+01:00");
    let app = app_at(&clock, |_| {}).await;
    let (status, resp) = app.send(ACME_KEY, sale(json!(FR))).await;
    assert_eq!(status, StatusCode::OK);
    let r = &resp["results"][0];
    assert_eq!(r["status"], "scheduled", "{resp}");
    assert_eq!(
        r["deliver_after"], "2026-03-16T07:00:00Z",
        "Monday 08:00 CET"
    );
    assert_eq!(r["body"], "Soldes -50%\nSTOP au 36111", "the footer is in");
    assert!(r.get("provider_id").is_none());
    assert_eq!(resp["summary"]["scheduled"], 1);
    assert_eq!(resp["summary"]["sent"], 0);
    let id = r["id"].as_str().unwrap();
    let rec = app.record(id).await;
    assert_eq!(rec["status"], "scheduled");
    assert_eq!(rec["deliver_after"], "2026-03-16T07:00:00Z");
    // Not counted as sent while it waits (the campaign has no counters yet).
    assert_eq!(
        app.campaign("spring").await["sent"].as_u64().unwrap_or(0),
        0
    );

    // Monday 07:59:59: still closed.
    clock.set_rfc3339("2026-03-16T07:59:59+01:00");
    a_while().await;
    assert!(app.mock.received().is_empty(), "nothing before the opening");
    assert_eq!(app.record(id).await["status"], "scheduled");

    clock.set_rfc3339("2026-03-16T08:00:00+01:00");
    let rec = app.released(id).await;
    assert_eq!(rec["status"], "sent", "{rec}");
    let got = app.mock.wait_for(FR, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["body"], "Soldes -50%\nSTOP au 36111");
    assert_eq!(got[0]["reference"], id);
    let history: Vec<(&str, &str)> = rec["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["status"].as_str().unwrap(), h["at"].as_str().unwrap()))
        .collect();
    assert_eq!(
        history,
        [
            ("scheduled", "2026-03-15T13:00:00Z"),
            ("sent", "2026-03-16T07:00:00Z")
        ]
    );
    assert_eq!(rec["provider_id"], format!("mock-{id}"));
    let spring = app.campaign("spring").await;
    assert_eq!(
        (spring["sent"].as_u64(), spring["segments"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(app.store.held_stats().await.unwrap().held, 0);
}

#[tokio::test]
async fn at_2130_eastern_new_york_waits_for_the_morning_and_los_angeles_gets_it_now() {
    // Tuesday 10 March 2026, 21:30 in New York (EDT): 18:30 in Los Angeles.
    let clock = ManualClock::at_rfc3339("2026-03-10T21:30:00-04:00");
    let app = app_at(&clock, |_| {}).await;
    let (_, resp) = app
        .send(ACME_KEY, sale(json!([NEW_YORK, LOS_ANGELES])))
        .await;
    let (ny, la) = (&resp["results"][0], &resp["results"][1]);
    assert_eq!(ny["status"], "scheduled", "{resp}");
    assert_eq!(ny["deliver_after"], "2026-03-11T12:00:00Z", "08:00 EDT");
    assert_eq!(la["status"], "sent", "{resp}");
    // Both carry their own opt-out link.
    assert_eq!(ny["optout"]["method"], "url");
    assert_ne!(ny["optout"]["url"], la["optout"]["url"]);
    assert_eq!(app.mock.wait_for(LOS_ANGELES, 1).await.len(), 1);
    assert!(app.mock.received_for(NEW_YORK).is_empty());
    clock.set_rfc3339("2026-03-11T08:00:00-04:00");
    let rec = app.released(ny["id"].as_str().unwrap()).await;
    assert_eq!(rec["status"], "sent");
    let got = app.mock.wait_for(NEW_YORK, 1).await;
    assert_eq!(got[0]["body"], ny["body"], "the link minted at the hold");
}

#[tokio::test]
async fn za_on_a_saturday_at_1330_waits_for_monday_0800() {
    // Saturday 14 March 2026, 12:59 in Johannesburg: open until 13:00.
    let clock = ManualClock::at_rfc3339("2026-03-14T12:59:00+02:00");
    let app = app_at(&clock, |_| {}).await;
    let early = app.send_one(ACME_KEY, sale(json!("+27821234500"))).await;
    assert_eq!(early["status"], "sent", "{early}");
    clock.set_rfc3339("2026-03-14T13:30:00+02:00");
    let r = app.send_one(ACME_KEY, sale(json!(ZA))).await;
    assert_eq!(r["status"], "scheduled", "{r}");
    // Sunday is closed all day: Monday 16 March, 08:00 SAST.
    assert_eq!(r["deliver_after"], "2026-03-16T06:00:00Z");
    clock.set_rfc3339("2026-03-15T12:00:00+02:00");
    a_while().await;
    assert!(app.mock.received_for(ZA).is_empty(), "not on the Sunday");
    clock.set_rfc3339("2026-03-16T08:00:00+02:00");
    assert_eq!(
        app.released(r["id"].as_str().unwrap()).await["status"],
        "sent"
    );
}

#[tokio::test]
async fn a_public_holiday_holds_marketing_until_the_next_open_day() {
    // Tuesday 14 July 2026, 10:00 in Paris: Bastille Day.
    let clock = ManualClock::at_rfc3339("2026-07-14T10:00:00+02:00");
    let app = app_at(&clock, |_| {}).await;
    let r = app.send_one(ACME_KEY, sale(json!(FR))).await;
    assert_eq!(r["status"], "scheduled", "{r}");
    assert_eq!(
        r["deliver_after"], "2026-07-15T06:00:00Z",
        "Wednesday 08:00 CEST"
    );
    clock.set_rfc3339("2026-07-15T08:00:00+02:00");
    assert_eq!(
        app.released(r["id"].as_str().unwrap()).await["status"],
        "sent"
    );
}

#[tokio::test]
async fn an_opt_out_during_the_hold_blocks_the_release_and_counts_as_blocked() {
    let clock = ManualClock::at_rfc3339("2026-03-15T14:00:00+01:00");
    let app = app_at(&clock, |_| {}).await;
    let r = app.send_one(ACME_KEY, sale(json!(FR))).await;
    assert_eq!(r["status"], "scheduled");
    // The recipient texts STOP on Sunday evening.
    let (status, answer) = app.mo(FR, "36111", "STOP").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["action"], "opted_out", "{answer}");
    clock.set_rfc3339("2026-03-16T08:00:00+01:00");
    let rec = app.released(r["id"].as_str().unwrap()).await;
    assert_eq!(rec["status"], "blocked", "{rec}");
    assert_eq!(rec["error"], "recipient_opted_out");
    a_while().await;
    assert!(marketing_for(&app, FR).is_empty(), "never forwarded");
    let spring = app.campaign("spring").await;
    assert_eq!(
        (spring["blocked"].as_u64(), spring["sent"].as_u64()),
        (Some(1), Some(0)),
        "{spring}"
    );
    // A send to an opted-out number is blocked at once, and counted too.
    let again = app.send_one(ACME_KEY, sale(json!(FR))).await;
    assert_eq!(again["status"], "blocked");
    assert_eq!(app.campaign("spring").await["blocked"], 2);
}

#[tokio::test]
async fn reject_mode_refuses_with_the_next_opening_and_never_holds_otps() {
    let clock = ManualClock::at_rfc3339("2026-03-15T14:00:00+01:00");
    let app = app_at(&clock, |c| c.tenants[0].quiet_hours = Some("reject".into())).await;
    let (_, resp) = app.send(ACME_KEY, sale(json!(FR))).await;
    let r = &resp["results"][0];
    assert_eq!(r["status"], "rejected", "{resp}");
    assert_eq!(r["error"]["code"], "outside_send_window");
    assert_eq!(r["error"]["next_open"], "2026-03-16T07:00:00Z");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("2026-03-16T07:00:00Z"));
    assert!(r.get("deliver_after").is_none());
    assert_eq!(resp["summary"]["rejected"], 1);
    assert_eq!(app.store.held_stats().await.unwrap().held, 0);
    // OTP and transactional go out on a Sunday, in either mode.
    for category in ["otp", "transactional"] {
        let r = app
            .send_one(
                ACME_KEY,
                json!({"to": FR, "from": "ACME", "body": "Code 123456", "category": category}),
            )
            .await;
        assert_eq!(r["status"], "sent", "{category}: {r}");
    }
    let defer = app
        .send_one(
            BETA_KEY,
            json!({"to": FR, "from": "BETA", "body": "Code 654321", "category": "otp"}),
        )
        .await;
    assert_eq!(defer["status"], "sent", "beta defers marketing, never OTPs");
    // Another tenant, `defer` (the default): held.
    let held = app
        .send_one(
            BETA_KEY,
            json!({"to": FR, "from": "BETA", "body": "Soldes"}),
        )
        .await;
    assert_eq!(held["status"], "scheduled");
    // With windows off for the tenant, marketing goes on a Sunday.
    let off = ManualClock::at_rfc3339("2026-03-15T14:00:00+01:00");
    let app = app_at(&off, |c| {
        c.tenants[0].send_windows = Some(stopgate::config::SendWindowsConfig::All(false))
    })
    .await;
    assert_eq!(
        app.send_one(ACME_KEY, sale(json!(FR))).await["status"],
        "sent"
    );
}

#[tokio::test]
async fn send_at_holds_transactional_and_marketing_and_refuses_otps() {
    // Monday 16 March 2026, 10:00 in Paris: the window is open.
    let clock = ManualClock::at_rfc3339("2026-03-16T10:00:00+01:00");
    let app = app_at(&clock, |_| {}).await;
    let tx = app
        .send_one(
            ACME_KEY,
            json!({"to": FR, "from": "ACME", "body": "Your parcel arrives at 16:00",
                   "category": "transactional", "send_at": "2026-03-16T15:00:00+01:00"}),
        )
        .await;
    assert_eq!(tx["status"], "scheduled", "{tx}");
    assert_eq!(tx["deliver_after"], "2026-03-16T14:00:00Z");
    // Marketing at 19:30 is inside the window; at 20:30 it waits for Tuesday.
    let evening = app
        .send_one(
            ACME_KEY,
            json!({"to": "+33612345001", "from": "ACME", "body": "Soldes", "send_at": "2026-03-16T19:30:00+01:00"}),
        )
        .await;
    assert_eq!(evening["deliver_after"], "2026-03-16T18:30:00Z");
    let late = app
        .send_one(
            ACME_KEY,
            json!({"to": "+33612345002", "from": "ACME", "body": "Soldes", "send_at": "2026-03-16T20:30:00+01:00"}),
        )
        .await;
    assert_eq!(
        late["deliver_after"], "2026-03-17T07:00:00Z",
        "Tuesday 08:00"
    );
    // A send_at already past goes now.
    let past = app
        .send_one(
            ACME_KEY,
            json!({"to": "+33612345003", "from": "ACME", "body": "Soldes", "send_at": "2026-03-16T09:00:00+01:00"}),
        )
        .await;
    assert_eq!(past["status"], "sent");
    // An OTP is now or never; malformed or too distant send_at: 422.
    for (send_at, category, code) in [
        ("2026-03-16T11:00:00+01:00", "otp", "send_at_not_allowed"),
        ("tomorrow", "transactional", "invalid_send_at"),
        ("2026-03-16 11:00", "transactional", "invalid_send_at"),
        (
            "2026-05-01T11:00:00+01:00",
            "transactional",
            "invalid_send_at",
        ),
    ] {
        let (status, body) = app
            .send(
                ACME_KEY,
                json!({"to": FR, "from": "ACME", "body": "x", "category": category, "send_at": send_at}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{send_at}: {body}"
        );
        assert_eq!(body["error"]["code"], code, "{send_at}");
    }
    let (status, body) = app
        .send(
            ACME_KEY,
            json!({"to": FR, "from": "ACME", "body": "x", "send_at": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(app.store.held_stats().await.unwrap().held, 3);
    clock.set_rfc3339("2026-03-16T14:59:59+01:00");
    a_while().await;
    assert!(app.mock.received_for(FR).is_empty());
    clock.set_rfc3339("2026-03-16T15:00:00+01:00");
    let rec = app.released(tx["id"].as_str().unwrap()).await;
    assert_eq!(rec["status"], "sent");
    assert!(
        rec.get("body").is_none(),
        "a transactional body is never kept"
    );
    assert_eq!(
        app.mock.wait_for(FR, 1).await[0]["body"],
        "Your parcel arrives at 16:00"
    );
    // Released: its held copy, body included, is gone.
    assert_eq!(app.store.held_stats().await.unwrap().held, 2);
}

#[tokio::test]
async fn a_held_message_can_be_canceled_until_it_goes() {
    let clock = ManualClock::at_rfc3339("2026-03-15T14:00:00+01:00");
    let app = app_at(&clock, |_| {}).await;
    let r = app.send_one(ACME_KEY, sale(json!(FR))).await;
    let id = r["id"].as_str().unwrap();
    // Not another tenant's to cancel; unknown ids are not found.
    assert_eq!(app.cancel(BETA_KEY, id).await.0, StatusCode::NOT_FOUND);
    let unknown = stopgate::domain::MessageId::generate();
    for other in [unknown.as_str(), "nope"] {
        let (status, body) = app.cancel(ACME_KEY, other).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    let (status, body) = app.cancel(ACME_KEY, id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "canceled");
    assert_eq!(app.record(id).await["status"], "canceled");
    let (status, body) = app.cancel(ACME_KEY, id).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "not_scheduled");
    // By its Twilio SID too.
    let other = app.send_one(ACME_KEY, sale(json!("+33612345009"))).await;
    let sid = stopgate::domain::MessageId::parse(other["id"].as_str().unwrap())
        .unwrap()
        .sid();
    assert_eq!(app.cancel(ACME_KEY, &sid).await.0, StatusCode::OK);
    clock.set_rfc3339("2026-03-16T08:00:00+01:00");
    a_while().await;
    assert!(app.mock.received().is_empty(), "nothing canceled goes out");
    // A message that went is no longer scheduled.
    let sent = app.send_one(ACME_KEY, sale(json!("+33612345010"))).await;
    assert_eq!(sent["status"], "sent");
    let (status, body) = app.cancel(ACME_KEY, sent["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("sent"),
        "{body}"
    );
}

#[tokio::test]
async fn the_frequency_cap_counts_sent_and_held_marketing_per_recipient() {
    let clock = ManualClock::at_rfc3339("2026-03-16T10:00:00+01:00");
    let app = app_at(&clock, |c| {
        c.tenants[0].frequency_cap = Some(FrequencyCapConfig {
            max: 2,
            per_hours: 24,
        })
    })
    .await;
    let status = |r: &Value| r["status"].as_str().unwrap().to_string();
    let one = app.send_one(ACME_KEY, sale(json!(FR))).await;
    clock.advance(3_600_000);
    let two = app.send_one(ACME_KEY, sale(json!(FR))).await;
    let three = app.send_one(ACME_KEY, sale(json!(FR))).await;
    assert_eq!(
        [status(&one), status(&two), status(&three)],
        ["sent", "sent", "rejected"]
    );
    assert_eq!(three["error"]["code"], "frequency_capped");
    // Another recipient, another tenant, other categories: not capped.
    assert_eq!(
        status(&app.send_one(ACME_KEY, sale(json!("+33612345001"))).await),
        "sent"
    );
    let beta = app
        .send_one(
            BETA_KEY,
            json!({"to": FR, "from": "BETA", "body": "Soldes"}),
        )
        .await;
    assert_eq!(status(&beta), "sent");
    let tx = app
        .send_one(
            ACME_KEY,
            json!({"to": FR, "from": "ACME", "body": "Order shipped", "category": "transactional"}),
        )
        .await;
    assert_eq!(status(&tx), "sent");
    // 24 h after the first, one slot is free again.
    clock.set_rfc3339("2026-03-17T10:00:00+01:00");
    assert_eq!(
        status(&app.send_one(ACME_KEY, sale(json!(FR))).await),
        "sent"
    );
    assert_eq!(
        status(&app.send_one(ACME_KEY, sale(json!(FR))).await),
        "rejected"
    );

    // A message the provider refused was not sent: it does not count.
    let n = "+33612345002";
    app.mock.set(Behaviour::Status(400));
    assert_eq!(
        status(&app.send_one(ACME_KEY, sale(json!(n))).await),
        "failed"
    );
    app.mock.set(Behaviour::Accept);
    assert_eq!(
        status(&app.send_one(ACME_KEY, sale(json!(n))).await),
        "sent"
    );
    assert_eq!(
        status(&app.send_one(ACME_KEY, sale(json!(n))).await),
        "sent"
    );

    // Held messages count at their release: Saturday night, three for Monday.
    clock.set_rfc3339("2026-03-21T21:00:00+01:00");
    let held = "+33612345003";
    let h: Vec<String> =
        futures::future::join_all((0..3).map(|_| app.send_one(ACME_KEY, sale(json!(held)))))
            .await
            .iter()
            .map(status)
            .collect();
    let mut sorted = h.clone();
    sorted.sort();
    assert_eq!(sorted, ["rejected", "scheduled", "scheduled"], "{h:?}");
    clock.set_rfc3339("2026-03-23T08:00:00+01:00");
    assert_eq!(app.mock.wait_for(held, 2).await.len(), 2);
    // Both released; a third on Monday morning is over the cap.
    clock.set_rfc3339("2026-03-23T09:00:00+01:00");
    let more = app.send_one(ACME_KEY, sale(json!(held))).await;
    assert_eq!(more["error"]["code"], "frequency_capped", "{more}");
    a_while().await;
    assert_eq!(marketing_for(&app, held).len(), 2);
}

/// Canceling a held message gives its slot back.
#[tokio::test]
async fn a_canceled_message_does_not_count_against_the_cap() {
    let clock = ManualClock::at_rfc3339("2026-03-15T14:00:00+01:00");
    let app = app_at(&clock, |c| {
        c.tenants[0].frequency_cap = Some(FrequencyCapConfig {
            max: 1,
            per_hours: 24,
        })
    })
    .await;
    let first = app.send_one(ACME_KEY, sale(json!(FR))).await;
    assert_eq!(first["status"], "scheduled");
    let second = app.send_one(ACME_KEY, sale(json!(FR))).await;
    assert_eq!(second["error"]["code"], "frequency_capped");
    assert_eq!(
        app.cancel(ACME_KEY, first["id"].as_str().unwrap()).await.0,
        StatusCode::OK
    );
    let third = app.send_one(ACME_KEY, sale(json!(FR))).await;
    assert_eq!(third["status"], "scheduled", "{third}");
}

/// Two gateways on one PostgreSQL database.
async fn cluster(
    clock: &Arc<ManualClock>,
    tweak: impl Fn(&mut Config) + Clone,
) -> (TestApp, TestApp) {
    let url = crate::pg::Cluster::shared().database().await;
    let node = |url: String| {
        let tweak = tweak.clone();
        move |c: &mut Config| {
            c.storage = crate::pg::storage(&url);
            quick(c);
            tweak(c);
        }
    };
    let a = spawn_app_at(clock.clone(), node(url.clone())).await;
    let b = spawn_app_at(clock.clone(), node(url)).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_sending_a_recipients_last_capped_message_at_once_let_one_through() {
    let clock = ManualClock::at_rfc3339("2026-03-16T10:00:00+01:00");
    let (a, b) = cluster(&clock, |c| {
        c.tenants[0].frequency_cap = Some(FrequencyCapConfig {
            max: 3,
            per_hours: 24,
        })
    })
    .await;
    for round in 0..10 {
        let number = format!("+336123450{round:02}");
        for _ in 0..2 {
            assert_eq!(
                a.send_one(ACME_KEY, sale(json!(number))).await["status"],
                "sent"
            );
        }
        // The 3rd and the 4th, one through each node, at the same moment.
        let (x, y) = tokio::join!(
            a.send_one(ACME_KEY, sale(json!(number))),
            b.send_one(ACME_KEY, sale(json!(number)))
        );
        let mut got = [x["status"].clone(), y["status"].clone()];
        got.sort_by_key(|s| s.to_string());
        assert_eq!(
            got,
            [json!("rejected"), json!("sent")],
            "round {round}: {x} {y}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_release_one_queue_each_message_exactly_once() {
    let clock = ManualClock::at_rfc3339("2026-03-15T14:00:00+01:00");
    // Few at a time and a slow provider, so that both nodes take part.
    let (a, b) = cluster(&clock, |c| c.schedule.release_concurrency = 4).await;
    a.mock.set(Behaviour::Delay(Duration::from_millis(30)));
    b.mock.set(Behaviour::Delay(Duration::from_millis(30)));
    let numbers: Vec<String> = (0..300).map(|i| format!("+3361234{i:04}")).collect();
    let (_, resp) = a.send(ACME_KEY, sale(json!(numbers))).await;
    assert_eq!(resp["summary"]["scheduled"], 300, "{}", resp["summary"]);
    let ids: BTreeSet<String> = resp["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    clock.set_rfc3339("2026-03-16T08:00:00+01:00");
    let received = || {
        let mut all: Vec<String> = Vec::new();
        for app in [&a, &b] {
            all.extend(
                app.mock
                    .received()
                    .iter()
                    .map(|m| m["reference"].as_str().unwrap().to_string()),
            );
        }
        all
    };
    for _ in 0..1500 {
        if received().len() >= 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a_while().await;
    let all = received();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &all {
        *counts.entry(id).or_default() += 1;
    }
    assert_eq!(counts.len(), 300, "every message released");
    assert!(counts.values().all(|c| *c == 1), "none sent twice");
    assert!(counts.keys().all(|id| ids.contains(*id)));
    let (by_a, by_b) = (a.mock.received().len(), b.mock.received().len());
    assert!(by_a > 0 && by_b > 0, "both nodes released: {by_a} + {by_b}");
    // Every record says sent, whichever node released it.
    for id in ids.iter().step_by(25) {
        assert_eq!(b.record(id).await["status"], "sent");
    }
}

/// The real binary, SIGKILLed while it releases 300 held messages, then
/// started again on the same store: nothing lost, nothing sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_in_the_middle_of_a_release_loses_nothing_and_sends_nothing_twice() {
    use crate::crash::{sigkill, start, write_config_with};
    let mock = MockProvider::start().await;
    mock.set(Behaviour::Delay(Duration::from_millis(20)));
    let dir = tempfile::tempdir().unwrap();
    // Windows off (as `write_config` has them), so that `send_at` alone
    // decides (the binary runs on the host's clock); 4 at a time: the
    // release takes over a second.
    let config = write_config_with(
        dir.path(),
        &mock,
        "[schedule]\nrelease_concurrency = 4\npoll_ms = 20\n",
    );
    let app = start(&config).await;
    let client = reqwest::Client::new();
    let ids = hold_for_two_seconds(&client, &app.api, "+3361234").await;
    // Killed once the release is well under way, not done.
    for _ in 0..1000 {
        if mock.received().len() >= 60 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let at_kill = mock.received().len();
    sigkill(app).await;
    assert!(
        (60..300).contains(&at_kill),
        "killed mid-release: {at_kill}"
    );
    let app = start(&config).await;
    // Everything accounted for: no record left scheduled.
    let records = released_records(&client, &app.api, ids.len(), Duration::from_secs(10)).await;
    let interrupted = sent_once_or_interrupted(&ids, &records, &mock);
    // At most the messages a round had marked begun when it was killed
    // (two workers, four each).
    assert!(interrupted <= 8, "{interrupted} interrupted");
    sigkill(app).await;
}

/// acme's message records through `api`, by id, once `count` of them exist
/// and none is still `scheduled` (or `within` has passed).
pub async fn released_records(
    client: &reqwest::Client,
    api: &str,
    count: usize,
    within: Duration,
) -> BTreeMap<String, Value> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let mut records: BTreeMap<String, Value> = BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let mut url = format!("{api}/v1/messages?limit=500");
            if let Some(a) = &after {
                url.push_str(&format!("&after={a}"));
            }
            let page: Value = client
                .get(url)
                .bearer_auth(ACME_KEY)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for r in page["items"].as_array().unwrap() {
                records.insert(r["id"].as_str().unwrap().into(), r.clone());
            }
            match page["next"].as_str() {
                Some(n) => after = Some(n.into()),
                None => break,
            }
        }
        let done = records.len() == count && records.values().all(|r| r["status"] != "scheduled");
        if done || std::time::Instant::now() > deadline {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks a release that was cut short: every message is `sent` and reached
/// the provider exactly once, or `failed` with `release_interrupted` (it was
/// begun when its node died: it may have gone out, and is never sent again).
/// Returns how many were interrupted.
pub fn sent_once_or_interrupted(
    ids: &[String],
    records: &BTreeMap<String, Value>,
    mock: &MockProvider,
) -> usize {
    assert_eq!(records.len(), ids.len(), "every message has its record");
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for m in mock.received() {
        *got.entry(m["reference"].as_str().unwrap().into())
            .or_default() += 1;
    }
    assert!(
        got.values().all(|c| *c == 1),
        "a message sent twice: {got:?}"
    );
    assert!(
        got.keys().all(|id| records.contains_key(id)),
        "only our messages"
    );
    let mut interrupted = 0;
    for id in ids {
        let r = &records[id];
        match r["status"].as_str().unwrap() {
            "sent" => assert!(got.contains_key(id), "{id} sent but never received"),
            "failed" => {
                assert_eq!(r["error"], "release_interrupted", "{r}");
                interrupted += 1;
            }
            other => panic!("{id}: {other}"),
        }
    }
    interrupted
}

/// 300 FR marketing messages to `prefix`0000 to `prefix`0299, held by
/// `send_at` two seconds ahead; their ids.
pub async fn hold_for_two_seconds(
    client: &reqwest::Client,
    api: &str,
    prefix: &str,
) -> Vec<String> {
    let numbers: Vec<String> = (0..300).map(|i| format!("{prefix}{i:04}")).collect();
    let send_at = stopgate::domain::rfc3339(stopgate::domain::now_millis() + 2_000);
    let resp: Value = client
        .post(format!("{api}/v1/messages"))
        .bearer_auth(ACME_KEY)
        .json(&json!({"to": numbers, "from": "ACME", "body": "Soldes", "send_at": send_at}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["summary"]["scheduled"], 300, "{}", resp["summary"]);
    resp["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}
