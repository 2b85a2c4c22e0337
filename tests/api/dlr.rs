//! Delivery reports in: the native `POST /v1/dlr` and each provider's own
//! webhook, authenticated as that provider does it, move the message record
//! (duplicates and out-of-order reports keep the most final status), and an
//! unknown provider id is answered 2xx and counted. Nothing they send gets
//! a 5xx.

use reqwest::StatusCode;
use serde_json::{json, Value};
use stopgate::config::{Secret, UpstreamKind, VonageSignatureMethod};

use crate::helpers::*;
use crate::mocks::ProviderMock;
use crate::providers::{app_with, cm_accepted, send, twilio_created, vonage_ok, TWILIO_TOKEN};

impl TestApp {
    async fn message(&self, id: &str) -> Value {
        self.client
            .get(format!("{}/v1/messages/{id}", self.api))
            .bearer_auth(ACME_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub(crate) async fn native_dlr(&self, body: Value) -> (StatusCode, Value) {
        let bytes = serde_json::to_vec(&body).unwrap();
        self.native_dlr_signed(&bytes, &sign(INBOUND_SECRET, &bytes))
            .await
    }

    /// `POST /v1/dlr` with the bytes and signature given (a captured request).
    pub(crate) async fn native_dlr_signed(&self, body: &[u8], sig: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .post(format!("{}/v1/dlr", self.public))
            .header("content-type", "application/json")
            .header("x-stopgate-signature", sig)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.api))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

fn statuses(m: &Value) -> Vec<String> {
    m["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap().to_string())
        .collect()
}

/// A captured report sent again, to `a` and then to `b` (one node or two
/// of a cluster): its first answer, and the record moved once; the same
/// report signed anew is a new request, and a duplicate.
pub(crate) async fn a_captured_report_gets_its_first_answer(a: &TestApp, b: &TestApp) {
    let r = a
        .send_one(
            ACME_KEY,
            json!({"to": "+12125550101", "from": "ACME", "body": "Sale", "campaign": "bf"}),
        )
        .await;
    let (id, pid) = (
        r["id"].as_str().unwrap(),
        r["provider_id"].as_str().unwrap(),
    );
    let body = serde_json::to_vec(&json!({"provider_id": pid, "status": "delivered"})).unwrap();
    // Two signing times that cannot meet, however long the test takes.
    let t0 = unix_now();
    let sig = sign_at(INBOUND_SECRET, t0 - 10, &body);
    for app in [a, b, a] {
        let (status, answer) = app.native_dlr_signed(&body, &sig).await;
        assert_eq!(
            (status, answer),
            (StatusCode::OK, json!({"result": "changed"})),
            "the first answer"
        );
    }
    let (status, anew) = b
        .native_dlr_signed(&body, &sign_at(INBOUND_SECRET, t0 - 20, &body))
        .await;
    assert_eq!(
        (status, anew),
        (StatusCode::OK, json!({"result": "duplicate"}))
    );
    assert_eq!(statuses(&a.message(id).await), ["sent", "delivered"]);
    assert!(
        a.metrics().await.contains("stopgate_webhook_replays_total"),
        "replays are counted"
    );
}

#[tokio::test]
async fn a_captured_native_report_gets_its_first_answer() {
    let app = spawn_app().await;
    a_captured_report_gets_its_first_answer(&app, &app).await;
}

#[tokio::test]
async fn native_reports_move_the_record_once_and_never_backwards() {
    let app = spawn_app().await;
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
    let (status, a) = app
        .native_dlr(json!({"provider_id": pid, "status": "delivered"}))
        .await;
    assert_eq!(
        (status, a["result"].as_str()),
        (StatusCode::OK, Some("changed"))
    );
    // The provider's retry (signed anew), then a late "sent", then an
    // "undelivered" after "delivered": the record stays delivered.
    let (_, again) = app
        .native_dlr(json!({"provider_id": pid, "status": "delivered"}))
        .await;
    assert_eq!(again["result"], "duplicate");
    let (_, late) = app
        .native_dlr(json!({"provider_id": pid, "status": "sent"}))
        .await;
    assert_eq!(late["result"], "duplicate");
    let (_, worse) = app
        .native_dlr(json!({"provider_id": pid, "status": "undelivered", "error": "30005"}))
        .await;
    assert_eq!(worse["result"], "kept");
    let m = app.message(id).await;
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(statuses(&m), ["sent", "delivered", "undelivered"]);
    // Insights: delivered once, the rate, the segments.
    let insights: Value = app
        .client
        .get(format!("{}/v1/insights/campaigns", app.api))
        .bearer_auth(ACME_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bf = insights["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["campaign"] == "bf")
        .unwrap()
        .clone();
    assert_eq!(
        (bf["sent"].as_u64(), bf["delivered"].as_u64()),
        (Some(1), Some(1)),
        "{bf}"
    );
    assert_eq!(bf["undelivered"], 0);
    assert_eq!(bf["delivery_rate"], 1.0);
    assert_eq!(bf["segments"], 1);
}

#[tokio::test]
async fn native_reports_for_unknown_ids_bad_input_and_bad_signatures() {
    let app = spawn_app().await;
    let (status, a) = app
        .native_dlr(json!({"provider_id": "never-sent", "status": "delivered"}))
        .await;
    assert_eq!(
        (status, a["result"].as_str()),
        (StatusCode::OK, Some("unknown"))
    );
    assert!(
        app.metrics().await.contains("outcome=\"unknown\""),
        "unknown ids are counted"
    );
    for (body, code) in [
        (
            json!({"provider_id": "x", "status": "lost"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"provider_id": "", "status": "delivered"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"status": "delivered"}), StatusCode::BAD_REQUEST),
        (
            json!({"provider_id": "x", "status": "sent", "extra": 1}),
            StatusCode::BAD_REQUEST,
        ),
        (json!(["x"]), StatusCode::BAD_REQUEST),
    ] {
        let (status, err) = app.native_dlr(body.clone()).await;
        assert_eq!(status, code, "{body}: {err}");
        assert!(err["error"]["code"].is_string(), "{err}");
    }
    let r = app
        .client
        .post(format!("{}/v1/dlr", app.public))
        .header("content-type", "application/json")
        .header("x-stopgate-signature", sign("wrong", b"{}"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .post(format!("{}/v1/dlr", app.public))
        .header("content-type", "application/json")
        .body("not json at all")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the signature is checked first");
}

/// Twilio's signature over the URL and the sorted parameters.
fn twilio_sign(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn twilio_status_callbacks_are_checked_and_applied() {
    let mock = ProviderMock::start(twilio_created()).await;
    let app = app_with(UpstreamKind::Twilio, &mock, |_| {}).await;
    let r = send(&app, "+12125550101", "Your parcel").await;
    let sid = r["provider_id"].as_str().unwrap();
    let url = format!("{BASE_URL}/dlr/twilio");
    let post = |params: Vec<(&'static str, &'static str)>, sig: String| {
        let app = &app;
        async move {
            app.client
                .post(format!("{}/dlr/twilio", app.public))
                .header("x-twilio-signature", sig)
                .form(&params)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let sid: &'static str = Box::leak(sid.to_string().into_boxed_str());
    let delivered = vec![
        ("MessageSid", sid),
        ("MessageStatus", "delivered"),
        ("AccountSid", "AC1"),
    ];
    let sending = vec![("MessageSid", sid), ("MessageStatus", "sending")];
    assert_eq!(
        post(sending.clone(), twilio_sign(TWILIO_TOKEN, &url, &sending)).await,
        204
    );
    // A wrong token or tampered field: refused, nothing changes.
    assert_eq!(
        post(delivered.clone(), twilio_sign("other", &url, &delivered)).await,
        401
    );
    let mut tampered = delivered.clone();
    tampered[1].1 = "undelivered";
    assert_eq!(
        post(tampered, twilio_sign(TWILIO_TOKEN, &url, &delivered)).await,
        401
    );
    assert_eq!(
        app.message(r["id"].as_str().unwrap()).await["status"],
        "sent"
    );
    assert_eq!(
        post(
            delivered.clone(),
            twilio_sign(TWILIO_TOKEN, &url, &delivered)
        )
        .await,
        204
    );
    assert_eq!(
        post(
            delivered.clone(),
            twilio_sign(TWILIO_TOKEN, &url, &delivered)
        )
        .await,
        204,
        "a duplicate"
    );
    let m = app.message(r["id"].as_str().unwrap()).await;
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(statuses(&m), ["sent", "delivered"]);
    let unknown = vec![
        ("MessageSid", "SMffffffffffffffffffffffffffffffff"),
        ("MessageStatus", "failed"),
    ];
    assert_eq!(
        post(unknown.clone(), twilio_sign(TWILIO_TOKEN, &url, &unknown)).await,
        204
    );
    let missing = vec![("MessageStatus", "failed")];
    assert_eq!(
        post(missing.clone(), twilio_sign(TWILIO_TOKEN, &url, &missing)).await,
        400
    );
}

fn vonage_sig(params: &[(&str, &str)], secret: &str) -> String {
    // Vonage's md5hash, computed here from its documented recipe.
    use md5::Digest;
    let mut sorted: Vec<&(&str, &str)> = params.iter().collect();
    sorted.sort();
    let mut data = String::new();
    for (k, v) in sorted {
        data.push_str(&format!("&{k}={}", v.replace(['&', '='], "_")));
    }
    hex::encode(md5::Md5::digest(format!("{data}{secret}").as_bytes()))
}

#[tokio::test]
async fn vonage_receipts_signed_and_unsigned_get_or_post() {
    let mock = ProviderMock::start(vonage_ok(&["0A0000001234"])).await;
    let signed = app_with(UpstreamKind::Vonage, &mock, |c| {
        c.inbound.vonage_signature_secret = Secret("vsecret".into());
        c.inbound.vonage_signature_method = VonageSignatureMethod::Md5hash;
    })
    .await;
    let r = send(&signed, "+33612345678", "Votre colis").await;
    assert_eq!(r["provider_id"], "0A0000001234");
    let ts = unix_now().to_string();
    let mut params = vec![
        ("messageId", "0A0000001234"),
        ("status", "delivered"),
        ("err-code", "0"),
        ("msisdn", "33612345678"),
        ("timestamp", ts.as_str()),
    ];
    let get = |params: Vec<(&'static str, String)>| {
        let app = &signed;
        async move {
            app.client
                .get(format!("{}/dlr/vonage", app.public))
                .query(&params)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let owned = |p: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        p.iter().map(|(k, v)| (*k, v.to_string())).collect()
    };
    // Unsigned or wrongly signed: refused.
    assert_eq!(get(owned(&params)).await, 401);
    let mut bad = owned(&params);
    bad.push(("sig", vonage_sig(&params, "other")));
    assert_eq!(get(bad).await, 401);
    let old_ts = (unix_now() - 3600).to_string();
    let mut stale = params.clone();
    stale[4].1 = old_ts.as_str();
    let mut stale_owned = owned(&stale);
    stale_owned.push(("sig", vonage_sig(&stale, "vsecret")));
    assert_eq!(get(stale_owned).await, 401, "an old timestamp is a replay");
    let mut good = owned(&params);
    good.push(("sig", vonage_sig(&params, "vsecret")));
    assert_eq!(get(good).await, 204);
    assert_eq!(
        signed.message(r["id"].as_str().unwrap()).await["status"],
        "delivered"
    );
    // POST as JSON, signed the same way.
    params[1].1 = "expired";
    let mut body = serde_json::Map::new();
    for (k, v) in &params {
        body.insert(k.to_string(), Value::String(v.to_string()));
    }
    body.insert(
        "sig".into(),
        Value::String(vonage_sig(&params, "vsecret").to_uppercase()),
    );
    let status = signed
        .client
        .post(format!("{}/dlr/vonage", signed.public))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    let m = signed.message(r["id"].as_str().unwrap()).await;
    assert_eq!(
        (m["status"].as_str(), statuses(&m).len()),
        (Some("delivered"), 3),
        "{m}"
    );

    // Without a secret, Vonage's default unsigned receipts are taken (POST form).
    let mock = ProviderMock::start(vonage_ok(&["0B0000001", "0B0000002"])).await;
    let unsigned = app_with(UpstreamKind::Vonage, &mock, |_| {}).await;
    let long = "x".repeat(200);
    let r = send(&unsigned, "+33612345678", &long).await;
    assert_eq!(r["provider_id"], "0B0000001,0B0000002");
    let status = unsigned
        .client
        .post(format!("{}/dlr/vonage", unsigned.public))
        .form(&[
            ("messageId", "0B0000002"),
            ("status", "failed"),
            ("err-code", "5"),
        ])
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204, "a report of any part counts");
    let m = unsigned.message(r["id"].as_str().unwrap()).await;
    assert_eq!(
        (m["status"].as_str(), m["error"].as_str()),
        (Some("undelivered"), Some("5"))
    );
    let status = unsigned
        .client
        .post(format!("{}/dlr/vonage", unsigned.public))
        .form(&[("status", "failed")])
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 400);
}

#[tokio::test]
async fn cm_status_reports_need_the_url_token() {
    let mock = ProviderMock::start(cm_accepted("placeholder")).await;
    let app = app_with(UpstreamKind::Cm, &mock, |c| {
        c.inbound.cm_status_token = Secret("cm-token-123".into());
    })
    .await;
    let r = send(&app, "+33612345678", "Votre colis").await;
    let pid = r["provider_id"].as_str().unwrap().to_string();
    let report = |code: &str| {
        json!({"messages": {"msg": {"received": "2026-12-01T10:00:00", "to": "0033612345678",
            "reference": pid, "status": {"code": code, "errorCode": "", "errorDescription": ""}}}})
    };
    let post = |token: &str, body: Value| {
        let app = &app;
        let url = format!("{}/dlr/cm?token={token}", app.public);
        async move {
            app.client
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(post("wrong", report("2")).await, 401);
    assert_eq!(post("", report("2")).await, 401);
    assert_eq!(
        post("cm-token-123", report("0")).await,
        204,
        "accepted: no change"
    );
    assert_eq!(
        app.message(r["id"].as_str().unwrap()).await["status"],
        "sent"
    );
    assert_eq!(post("cm-token-123", report("2")).await, 204);
    assert_eq!(
        app.message(r["id"].as_str().unwrap()).await["status"],
        "delivered"
    );
    assert_eq!(post("cm-token-123", json!({"messages": 3})).await, 400);
    let r = app
        .client
        .post(format!("{}/dlr/cm?token=cm-token-123", app.public))
        .body("<MESSAGES/>")
        .header("content-type", "text/xml")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        415,
        "the JSON format is the one to choose in CM's app"
    );
}
