//! OpenAPI, metrics, logs, and what the public listener must not serve.

use serde_json::{json, Value};

use crate::helpers::*;

/// Fills path parameters with a plausible value.
fn concrete(path: &str) -> String {
    path.replace("{number}", "%2B33612345678")
        .replace("{code}", "aB3dE5gH")
        .replace("{id}", "1")
        .replace("{account_sid}", "AC00000000000000000000000000000000")
}

async fn openapi(app: &TestApp) -> Value {
    let r = app
        .client
        .get(format!("{}/openapi.json", app.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Every path and method in the document is served by the router (it does
/// not fall through to the 404/405 fallbacks), on the listener its tag says,
/// and every route DESIGN.md §4 lists is in the document.
#[tokio::test]
async fn openapi_lists_every_route_the_routers_serve() {
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut listed = Vec::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let public = op["tags"].as_array().unwrap().iter().any(|t| t == "public");
            listed.push(format!("{} {path}", method.to_uppercase()));
            let base = if public { &app.public } else { &app.api };
            let req = app
                .client
                .request(
                    method.to_uppercase().parse().unwrap(),
                    format!("{base}{}", concrete(path)),
                )
                .bearer_auth(ACME_KEY);
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            let fell_through = (status == 404 && body.contains("no such route")) || status == 405;
            assert!(
                !fell_through,
                "{method} {path} is documented but not served ({status} {body})"
            );
        }
    }
    for route in [
        "POST /v1/messages",
        "GET /v1/suppressions",
        "GET /v1/suppressions/{number}",
        "PUT /v1/suppressions/{number}",
        "DELETE /v1/suppressions/{number}",
        "POST /v1/suppressions/import",
        "GET /v1/suppressions/export",
        "GET /v1/insights/campaigns",
        "GET /v1/possible-optouts",
        "POST /v1/possible-optouts/{id}/confirm",
        "GET /metrics",
        "GET /healthz",
        "GET /readyz",
        "GET /openapi.json",
        "POST /2010-04-01/Accounts/{account_sid}/Messages.json",
        "POST /v1/inbound",
        "POST /inbound/twilio",
        "GET /{code}",
        "POST /{code}",
    ] {
        assert!(
            listed.iter().any(|l| l == route),
            "{route} is missing from /openapi.json: {listed:?}"
        );
    }
}

/// No API or admin route answers on the public listener.
#[tokio::test]
async fn the_public_listener_serves_no_admin_route() {
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op["tags"].as_array().unwrap().iter().any(|t| t == "public") {
                continue;
            }
            let resp = app
                .client
                .request(
                    method.to_uppercase().parse().unwrap(),
                    format!("{}{}", app.public, concrete(path)),
                )
                .bearer_auth(ACME_KEY)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            // /healthz exists on both; anything else must be unknown here.
            if path == "/healthz" {
                continue;
            }
            assert!(
                resp.status() == 404 || resp.status() == 405,
                "{method} {path} answered {} on the public listener",
                resp.status()
            );
        }
    }
}

#[tokio::test]
async fn metrics_expose_messages_upstream_latency_and_flushes() {
    let app = spawn_app().await;
    app.suppress("acme", "+33698765432").await;
    app.send(
        ACME_KEY,
        json!({"to": ["+12125550123", "+33698765432"], "from": "ACME", "body": "Sale"}),
    )
    .await;
    app.send(
        ACME_KEY,
        json!({"to": "+12125550123", "from": "ACME", "body": "1", "category": "otp"}),
    )
    .await;
    app.client
        .put(format!("{}/v1/suppressions/%2B33612345678", app.api))
        .bearer_auth(ACME_KEY)
        .send()
        .await
        .unwrap();
    let text = app
        .client
        .get(format!("{}/metrics", app.api))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        r#"stopgate_messages_total{category="marketing",status="sent"}"#,
        r#"stopgate_messages_total{category="marketing",status="blocked"}"#,
        r#"stopgate_messages_total{category="otp",status="sent"}"#,
        r#"stopgate_suppression_changes_total{action="opt_out",source="api"}"#,
        "stopgate_upstream_seconds_bucket",
        "stopgate_store_flush_seconds_bucket",
        "stopgate_http_requests_total",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
}

/// A numeric sender is a phone number: the dry-run provider's log line (the
/// line that prints a sender) masks it as it masks the recipient. The
/// suite's log audit (`tests/log_audit.rs`) reads this same file afterwards.
#[tokio::test]
async fn numeric_senders_are_masked_in_the_logs() {
    const SENDER: &str = "+33698765499";
    let app = spawn_app_with(|c| c.upstream.kind = stopgate::config::UpstreamKind::Log).await;
    let mut ids = Vec::new();
    for from in [SENDER, SENDER.trim_start_matches('+')] {
        for category in ["marketing", "otp"] {
            let r = app
                .send_one(
                    ACME_KEY,
                    json!({"to": "+33612345678", "from": from, "body": "Hi", "category": category}),
                )
                .await;
            assert_eq!(r["status"], "sent", "{r}");
            ids.push(r["id"].as_str().unwrap().to_string());
        }
    }
    let file = log_dir().join(format!("api-{}.log", std::process::id()));
    let log = std::fs::read_to_string(&file).unwrap();
    for id in &ids {
        let line = log
            .lines()
            .find(|l| l.contains(id.as_str()) && l.contains("upstream=log"))
            .unwrap_or_else(|| panic!("no dry-run line for {id} in {}", file.display()));
        let v: Value = serde_json::from_str(line).unwrap();
        let from = v["fields"]["from"].as_str().unwrap();
        assert!(from.ends_with("99") && !from.contains("698765"), "{from}");
        assert!(!line.contains(SENDER.trim_start_matches('+')), "{line}");
    }
}
