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
        .get(format!("{}/v1/messages", app.api))
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
