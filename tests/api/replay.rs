//! Webhooks are acted on once: a captured request sent again changes
//! nothing (its first answer comes back, no second confirmation), whether
//! native (the signature's MAC, the MO `id`) or Twilio's (`MessageSid`). A
//! genuinely new STOP from a number already opted out is confirmed again at
//! most once per 24 h.

use reqwest::StatusCode;
use serde_json::json;
use stopgate::config::Secret;

use crate::helpers::*;

fn stop_body(from: &str, text: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"from": from, "to": "36111", "text": text})).unwrap()
}

#[tokio::test]
async fn a_replayed_start_does_not_resubscribe_and_a_replayed_stop_is_not_confirmed_again() {
    let app = spawn_app().await;
    let n = "+33612345611";
    let t0 = unix_now() - 10;
    let stop = stop_body(n, "STOP");
    let start = stop_body(n, "START");
    let stop_sig = sign_at(INBOUND_SECRET, t0, &stop);
    let start_sig = sign_at(INBOUND_SECRET, t0 + 1, &start);
    let post = |body: &Vec<u8>, sig: &str| {
        let (body, sig) = (body.clone(), sig.to_string());
        let app = &app;
        async move { app.post_inbound(body, Some(&sig), "application/json").await }
    };
    // STOP, START, then a new STOP (signed a second later than the first).
    assert_eq!(post(&stop, &stop_sig).await.1["action"], "opted_out");
    assert_eq!(post(&start, &start_sig).await.1["action"], "opted_in");
    let (_, third) = post(&stop, &sign_at(INBOUND_SECRET, t0 + 2, &stop)).await;
    assert_eq!(third["action"], "opted_out");
    assert_eq!(
        app.mock.wait_for(n, 3).await.len(),
        3,
        "three confirmations"
    );
    assert!(app.blocked(ACME_KEY, n).await);

    // The captured START again: its first answer, and nothing else.
    let (status, replayed) = post(&start, &start_sig).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        replayed,
        json!({"action": "opted_in", "tenants": ["acme", "beta"]})
    );
    assert!(
        app.blocked(ACME_KEY, n).await,
        "a replay re-subscribed the number"
    );
    // The captured STOP five times: no confirmation SMS.
    for _ in 0..5 {
        let (status, body) = post(&stop, &stop_sig).await;
        assert_eq!(
            (status, body["action"].as_str()),
            (StatusCode::OK, Some("opted_out"))
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        app.mock.received_for(n).len(),
        3,
        "a replay sent a confirmation"
    );
    let history: Vec<String> = app
        .events("acme", n)
        .await
        .iter()
        .map(|e| format!("{:?}", e.action))
        .collect();
    assert_eq!(history, ["OptOut", "OptIn", "OptOut"]);
}

#[tokio::test]
async fn an_mo_id_is_acted_on_once_even_when_signed_anew() {
    let app = spawn_app().await;
    let n = "+33612345612";
    let body =
        serde_json::to_vec(&json!({"from": n, "to": "36111", "text": "STOP", "id": "mo-8812"}))
            .unwrap();
    let now = unix_now();
    // The first delivery; the provider's retry, signed again; and the first
    // request replayed byte for byte (same signature). The id's record
    // answers the last two.
    let mut answers = Vec::new();
    for t in [now - 5, now, now - 5] {
        let signature = sign_at(INBOUND_SECRET, t, &body);
        let (status, answer) = app
            .post_inbound(body.clone(), Some(&signature), "application/json")
            .await;
        assert_eq!(status, StatusCode::OK, "signed at {t}: {answer}");
        answers.push(answer);
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], answers[2]);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.mock.received_for(n).len(), 1, "one confirmation");
    assert_eq!(app.events("acme", n).await.len(), 1, "one opt-out event");
    // The same id for another message is refused, not answered wrongly.
    let other =
        serde_json::to_vec(&json!({"from": n, "to": "36111", "text": "START", "id": "mo-8812"}))
            .unwrap();
    let (status, err) = app
        .post_inbound(
            other.clone(),
            Some(&sign(INBOUND_SECRET, &other)),
            "application/json",
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["error"]["code"], "id_reused");
    assert!(app.blocked(ACME_KEY, n).await);
}

#[tokio::test]
async fn the_untimed_signature_works_only_with_the_migration_switch() {
    let strict = spawn_app().await;
    let legacy = spawn_app_with(|c| c.inbound.legacy_signature = true).await;
    let n = "+33612345613";
    let body = stop_body(n, "STOP");
    let old = sign_legacy(INBOUND_SECRET, &body);
    let (status, err) = strict
        .post_inbound(body.clone(), Some(&old), "application/json")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("legacy_signature"),
        "{err}"
    );
    let (status, ok) = legacy
        .post_inbound(body.clone(), Some(&old), "application/json")
        .await;
    assert_eq!(
        (status, ok["action"].as_str()),
        (StatusCode::OK, Some("opted_out"))
    );
    // Replays of it are still acted on once.
    let (status, _) = legacy
        .post_inbound(body, Some(&old), "application/json")
        .await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(legacy.mock.received_for(n).len(), 1);
}

#[tokio::test]
async fn a_new_stop_from_an_opted_out_number_is_confirmed_at_most_once_a_day() {
    let app = spawn_app().await;
    let n = "+33612345614";
    let confirmations = || app.mock.received_for(n).len();
    // The opt-out, then an auto-responder sending STOP again and again.
    for i in 0..6 {
        let (_, body) = app.mo(n, "36111", "STOP").await;
        assert_eq!(body["action"], "opted_out", "{i}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(confirmations(), 1, "one confirmation for six STOPs");
    // A change of state is always confirmed.
    app.mo(n, "36111", "START").await;
    assert_eq!(app.mock.wait_for(n, 2).await.len(), 2);
    app.mo(n, "36111", "STOP").await;
    assert_eq!(app.mock.wait_for(n, 3).await.len(), 3);
    // HELP is always answered.
    app.mo(n, "36111", "HELP").await;
    app.mo(n, "36111", "HELP").await;
    assert_eq!(app.mock.wait_for(n, 5).await.len(), 5);
    let metrics = app
        .client
        .get(format!("{}/metrics", app.api))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("status=\"capped\""), "{metrics}");
}

const TWILIO_TOKEN: &str = "owner-account-auth-token";

/// Twilio's signature, computed as Twilio documents it: base64 HMAC-SHA1 of
/// the URL followed by every parameter's name and value, sorted by name.
fn twilio_sign(url: &str, params: &[(&str, &str)]) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(TWILIO_TOKEN.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn a_replayed_twilio_message_gets_its_first_twiml_and_changes_nothing() {
    let app = spawn_app_with(|c| c.inbound.twilio_auth_token = Secret(TWILIO_TOKEN.into())).await;
    let n = "+33612345615";
    let url = format!("{BASE_URL}/inbound/twilio");
    let post = |params: Vec<(&'static str, String)>| {
        let app = &app;
        let url = url.clone();
        async move {
            let borrowed: Vec<(&str, &str)> =
                params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let sig = twilio_sign(&url, &borrowed);
            let r = app
                .client
                .post(format!("{}/inbound/twilio", app.public))
                .header("x-twilio-signature", sig)
                .form(&params)
                .send()
                .await
                .unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    let msg = |sid: &str, body: &str| {
        vec![
            ("MessageSid", sid.to_string()),
            ("From", n.to_string()),
            ("To", "36111".to_string()),
            ("Body", body.to_string()),
        ]
    };
    let (_, first_stop) = post(msg("SM01", "STOP")).await;
    assert!(first_stop.contains("<Message>"), "{first_stop}");
    let (_, start) = post(msg("SM02", "START")).await;
    assert!(start.contains("<Message>"), "{start}");
    post(msg("SM03", "STOP")).await;
    assert!(app.blocked(ACME_KEY, n).await);
    // SM02 again (Twilio's retry, or a captured request): the first TwiML
    // back, and the number stays opted out.
    let (status, again) = post(msg("SM02", "START")).await;
    assert_eq!(status, 200);
    assert_eq!(again, start);
    assert!(
        app.blocked(ACME_KEY, n).await,
        "a replay re-subscribed the number"
    );
    let kinds: Vec<String> = app
        .events("acme", n)
        .await
        .iter()
        .map(|e| format!("{:?}", e.action))
        .collect();
    assert_eq!(kinds, ["OptOut", "OptIn", "OptOut"]);
}
