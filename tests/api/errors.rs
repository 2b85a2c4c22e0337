//! Request-level errors: one JSON shape, the right status, nothing sent.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

async fn raw(
    app: &TestApp,
    key: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut req = app
        .client
        .post(format!("{}/v1/messages", app.api))
        .body(body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    (
        status,
        resp.json().await.expect("error bodies are JSON"),
        headers,
    )
}

fn assert_error(status: StatusCode, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status.as_u16(), expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    assert_eq!(
        body.as_object().unwrap().len(),
        1,
        "only the error key: {body}"
    );
}

#[tokio::test]
async fn every_request_error_has_the_one_json_shape() {
    let app = spawn_app().await;
    let good = json!({"to": "+33612345678", "from": "ACME", "body": "Hi"});
    let json_ct = Some("application/json");
    let enc = |v: &Value| serde_json::to_vec(v).unwrap();

    let (s, b, h) = raw(&app, None, json_ct, enc(&good)).await;
    assert_error(s, &b, 401, "unauthorized");
    assert_eq!(h["www-authenticate"], "Bearer");
    let (s, b, _) = raw(&app, Some("sk_wrong"), json_ct, enc(&good)).await;
    assert_error(s, &b, 401, "unauthorized");

    let (s, b, _) = raw(&app, Some(ACME_KEY), json_ct, b"{\"to\": ".to_vec()).await;
    assert_error(s, &b, 400, "invalid_json");
    let (s, b, _) = raw(&app, Some(ACME_KEY), json_ct, b"not json at all".to_vec()).await;
    assert_error(s, &b, 400, "invalid_json");
    let (s, b, _) = raw(&app, Some(ACME_KEY), Some("text/plain"), enc(&good)).await;
    assert_error(s, &b, 415, "unsupported_media_type");
    let (s, b, _) = raw(&app, Some(ACME_KEY), None, enc(&good)).await;
    assert_error(s, &b, 415, "unsupported_media_type");

    let huge = json!({"to": "+33612345678", "from": "ACME", "body": "x".repeat(2 * 1024 * 1024)});
    let (s, b, _) = raw(&app, Some(ACME_KEY), json_ct, enc(&huge)).await;
    assert_error(s, &b, 413, "payload_too_large");

    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            json!({"to": 33612345678u64, "from": "ACME", "body": "Hi"}),
            400,
            "invalid_field",
            "to",
        ),
        (
            json!({"to": ["+33612345678", 5], "from": "ACME", "body": "Hi"}),
            400,
            "invalid_field",
            "to",
        ),
        (
            json!({"to": "+33612345678", "from": "ACME", "body": 12}),
            400,
            "invalid_field",
            "body",
        ),
        (
            json!({"to": "+33612345678", "from": "ACME"}),
            400,
            "invalid_field",
            "body",
        ),
        (
            json!({"to": "+33612345678", "from": "ACME", "body": "Hi", "categroy": "otp"}),
            400,
            "invalid_field",
            "categroy",
        ),
        (json!(["+33612345678"]), 400, "invalid_field", "map"),
        (
            json!({"to": "+33612345678", "from": "ACME", "body": "   "}),
            422,
            "empty_body",
            "body",
        ),
        (
            json!({"to": "+33612345678", "from": "ACME", "body": "Hi", "category": "promo"}),
            422,
            "invalid_category",
            "promo",
        ),
        (
            json!({"to": [], "from": "ACME", "body": "Hi"}),
            422,
            "no_recipients",
            "to",
        ),
        (
            json!({"to": vec!["+33612345678"; 1001], "from": "ACME", "body": "Hi"}),
            422,
            "too_many_recipients",
            "1000",
        ),
        (
            json!({"to": "+33612345678", "from": "ACME", "body": "x".repeat(1601)}),
            422,
            "body_too_long",
            "1600",
        ),
        (
            json!({"to": "+33612345678", "from": "ACME SHOP LTD", "body": "Hi"}),
            422,
            "invalid_sender",
            "from",
        ),
        (
            json!({"to": "+33612345678", "from": "ACME", "body": "Hi", "campaign": ""}),
            422,
            "invalid_campaign",
            "campaign",
        ),
        (
            json!({"to": "+33612345678", "from": "ACME", "body": "Hi", "reference": "x".repeat(200)}),
            422,
            "invalid_reference",
            "reference",
        ),
    ];
    for (body, status, code, mentions) in cases {
        let (s, b, _) = raw(&app, Some(ACME_KEY), json_ct, enc(&body)).await;
        assert_error(s, &b, status, code);
        let msg = b["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(mentions),
            "{code}: {msg:?} should mention {mentions:?}"
        );
    }
    assert!(
        app.mock.received().is_empty(),
        "no refused request sent anything"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(format!("{}/v1/nope", app.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );
    let r = app
        .client
        .put(format!("{}/v1/messages", app.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "method_not_allowed"
    );
}

#[tokio::test]
async fn the_public_listener_serves_no_api() {
    let app = spawn_app().await;
    let r = app
        .client
        .post(format!("{}/v1/messages", app.public))
        .bearer_auth(ACME_KEY)
        .json(&json!({"to": "+33612345678", "from": "ACME", "body": "Hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    for listener in [&app.api, &app.public] {
        let r = app
            .client
            .get(format!("{listener}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = app
        .client
        .get(format!("{}/readyz", app.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// One JSON value per body: whatever follows it (but whitespace) makes the
/// body invalid, on the API and on the signed webhook alike, and nothing is
/// acted on.
#[tokio::test]
async fn json_followed_by_anything_but_whitespace_is_invalid_json() {
    let app = spawn_app().await;
    let json_ct = Some("application/json");
    let good = r#"{"to": "+33612345678", "from": "ACME", "body": "Hi"}"#;
    for body in [
        format!("{good} xyz"),
        format!("{good}{good}"),
        format!("{good}\n{good}"),
        format!("{good}]"),
        r#"{"to": 5, "from": "ACME", "body": "Hi"} xyz"#.to_string(),
    ] {
        let (s, b, _) = raw(&app, Some(ACME_KEY), json_ct, body.clone().into_bytes()).await;
        assert_error(s, &b, 400, "invalid_json");
        assert!(
            b["error"]["message"].as_str().unwrap().contains("trailing"),
            "{body}: {b}"
        );
    }
    assert!(app.mock.received().is_empty(), "nothing was sent");
    let (s, b, _) = raw(
        &app,
        Some(ACME_KEY),
        json_ct,
        format!("{good} \r\n\t ").into_bytes(),
    )
    .await;
    assert_eq!(s, 200, "trailing whitespace is fine: {b}");
    assert_eq!(b["results"][0]["status"], "sent");

    // The signed webhook: a valid signature over the whole body does not
    // make the garbage after the first object acceptable.
    let stop = r#"{"from": "+33698765401", "to": "36111", "text": "STOP"}"#;
    for body in [format!("{stop} xyz"), format!("{stop}{stop}")] {
        let sig = sign(INBOUND_SECRET, body.as_bytes());
        let (s, b) = app
            .post_inbound(body.into_bytes(), Some(&sig), "application/json")
            .await;
        assert_error(s, &b, 400, "invalid_json");
    }
    assert!(
        !app.blocked(ACME_KEY, "+33698765401").await,
        "no opt-out was recorded"
    );
    let body = format!("{stop}\n");
    let sig = sign(INBOUND_SECRET, body.as_bytes());
    let (s, b) = app
        .post_inbound(body.into_bytes(), Some(&sig), "application/json")
        .await;
    assert_eq!(
        (s.as_u16(), b["action"].as_str()),
        (200, Some("opted_out")),
        "{b}"
    );

    // Every other JSON body route shares the parser.
    let resp = app
        .client
        .put(format!("{}/v1/suppressions/%2B33698765402", app.api))
        .bearer_auth(ACME_KEY)
        .header("content-type", "application/json")
        .body(r#"{"reason": "a"}{"reason": "b"}"#)
        .send()
        .await
        .unwrap();
    let s = resp.status();
    assert_error(s, &resp.json().await.unwrap(), 400, "invalid_json");
    assert!(!app.blocked(ACME_KEY, "+33698765402").await);
}

/// `Authorization` schemes are case-insensitive (RFC 9110 §11.1).
#[tokio::test]
async fn the_bearer_scheme_is_accepted_in_any_case() {
    let app = spawn_app().await;
    for auth in [
        format!("Bearer {ACME_KEY}"),
        format!("bearer {ACME_KEY}"),
        format!("BEARER {ACME_KEY}"),
        format!("bEaReR  {ACME_KEY}"),
    ] {
        let resp = app
            .client
            .get(format!("{}/v1/suppressions?limit=1", app.api))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{auth}");
    }
    for auth in [
        format!("Bearer{ACME_KEY}"),
        format!("Basic {ACME_KEY}"),
        "Bearer sk_wrong".to_string(),
        "bearer ".to_string(),
    ] {
        let resp = app
            .client
            .get(format!("{}/v1/suppressions?limit=1", app.api))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap();
        let s = resp.status();
        assert_error(s, &resp.json().await.unwrap(), 401, "unauthorized");
    }
}
