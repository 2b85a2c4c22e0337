//! Message records: every recipient of every send has one, looked up by id
//! or listed per tenant, with its status history; OTP bodies never kept.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

impl TestApp {
    async fn get_json(&self, key: &str, path: &str) -> (StatusCode, Value) {
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
}

#[tokio::test]
async fn every_recipient_has_a_record_with_its_status_and_no_otp_body() {
    let app = spawn_app_with(|c| c.messages.keep_body = true).await;
    app.suppress("acme", "+33698765432").await;
    let (_, marketing) = app
        .send(
            ACME_KEY,
            json!({"to": ["+33612345678", "+33698765432", "+3361234", "+12125550123"],
                   "from": "ACME", "body": "Sale", "campaign": "bf-2026"}),
        )
        .await;
    let otp = app
        .send_one(
            ACME_KEY,
            json!({"to": "+33612345678", "from": "ACME", "body": "Your code: 482913", "category": "otp"}),
        )
        .await;
    let results = marketing["results"].as_array().unwrap();
    let mut expected: Vec<(&Value, &str, Option<&str>)> = vec![
        (&results[0], "sent", None),
        (&results[1], "blocked", Some("recipient_opted_out")),
        (&results[2], "rejected", Some("invalid_number")),
        (&results[3], "sent", None),
    ];
    expected.push((&otp, "sent", None));
    for (r, status, error) in expected {
        let id = r["id"].as_str().expect("every result has an id");
        let (code, m) = app.get_json(ACME_KEY, &format!("/v1/messages/{id}")).await;
        assert_eq!(code, StatusCode::OK, "{m}");
        assert_eq!(m["id"], id);
        assert_eq!(m["to"], r["to"]);
        assert_eq!(m["status"], status, "{m}");
        assert_eq!(m["error"].as_str(), error, "{m}");
        assert_eq!(m["history"].as_array().unwrap().len(), 1, "{m}");
        assert_eq!(m["history"][0]["status"], status);
        assert_eq!(m["segments"], r["segments"]);
        assert_eq!(m["encoding"], r["encoding"]);
        assert_eq!(m["from"], "ACME");
        if status == "sent" {
            assert_eq!(m["provider"], "http");
            assert_eq!(m["provider_id"], r["provider_id"]);
        } else {
            assert!(m["provider_id"].is_null(), "{m}");
        }
    }
    let (_, m) = app
        .get_json(
            ACME_KEY,
            &format!("/v1/messages/{}", results[0]["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(
        (m["category"].as_str(), m["campaign"].as_str()),
        (Some("marketing"), Some("bf-2026"))
    );
    assert_eq!(
        m["body"], results[0]["body"],
        "keep_body keeps marketing bodies"
    );
    assert_eq!(m["country"], "FR");
    let (_, o) = app
        .get_json(
            ACME_KEY,
            &format!("/v1/messages/{}", otp["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(o["category"], "otp");
    assert!(o["body"].is_null(), "an OTP body is never stored: {o}");
    // The Twilio SID form finds the same record.
    let id = stopgate::domain::MessageId::parse(otp["id"].as_str().unwrap()).unwrap();
    let (code, by_sid) = app
        .get_json(ACME_KEY, &format!("/v1/messages/{}", id.sid()))
        .await;
    assert_eq!((code, &by_sid["id"]), (StatusCode::OK, &otp["id"]));
}

#[tokio::test]
async fn bodies_are_not_kept_by_default() {
    let app = spawn_app().await;
    let r = app
        .send_one(
            ACME_KEY,
            json!({"to": "+33612345678", "from": "ACME", "body": "Sale"}),
        )
        .await;
    let (_, m) = app
        .get_json(
            ACME_KEY,
            &format!("/v1/messages/{}", r["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(m["status"], "sent");
    assert!(m["body"].is_null(), "{m}");
}

#[tokio::test]
async fn listings_are_newest_first_filtered_paged_and_tenant_scoped() {
    let app = spawn_app().await;
    app.suppress("acme", "+12125550105").await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let campaign = if i % 2 == 0 { "even" } else { "odd" };
        let r = app
            .send_one(
                ACME_KEY,
                json!({"to": format!("+1212555{:04}", 100 + i), "from": "ACME", "body": "Sale", "campaign": campaign}),
            )
            .await;
        ids.push(r["id"].as_str().unwrap().to_string());
    }
    app.send_one(
        BETA_KEY,
        json!({"to": "+12125550199", "from": "BETA", "body": "Hi"}),
    )
    .await;
    ids.reverse(); // newest first

    // Pages of 5 while more is sent: nothing skipped, nothing repeated.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/messages?limit=5&after={a}"),
            None => "/v1/messages?limit=5".into(),
        };
        let (code, page) = app.get_json(ACME_KEY, &path).await;
        assert_eq!(code, StatusCode::OK, "{page}");
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string()),
        );
        if seen.len() == 5 {
            app.send_one(
                ACME_KEY,
                json!({"to": "+12125550150", "from": "ACME", "body": "Late"}),
            )
            .await;
        }
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(
        seen, ids,
        "the walk lists the first twelve, newest first, once each"
    );

    let (_, odd) = app
        .get_json(ACME_KEY, "/v1/messages?campaign=odd&limit=100")
        .await;
    assert_eq!(odd["items"].as_array().unwrap().len(), 6);
    let (_, blocked) = app.get_json(ACME_KEY, "/v1/messages?status=blocked").await;
    let blocked = blocked["items"].as_array().unwrap();
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0]["to"], "+12125550105");
    // Beta sees its own message only, and none of acme's.
    let (_, beta) = app.get_json(BETA_KEY, "/v1/messages").await;
    assert_eq!(beta["items"].as_array().unwrap().len(), 1);
    let (code, _) = app
        .get_json(BETA_KEY, &format!("/v1/messages/{}", ids[0]))
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    // Bad parameters are 422s in the one shape; an unknown id is a 404.
    for bad in [
        "status=lost",
        "limit=0",
        "limit=501",
        "after=nope",
        "campaign=",
    ] {
        let (code, body) = app.get_json(ACME_KEY, &format!("/v1/messages?{bad}")).await;
        if bad == "campaign=" {
            assert_eq!(code, StatusCode::OK, "an empty filter is no filter");
            continue;
        }
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_field");
    }
    for id in [
        "msg_0000000000000000000000",
        "nope",
        "SM00000000000000000000000000000000",
    ] {
        let (code, body) = app.get_json(ACME_KEY, &format!("/v1/messages/{id}")).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{id}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
}
