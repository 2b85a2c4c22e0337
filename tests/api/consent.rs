//! Consents: consent-only tenants, double opt-in by SMS and by link, STOP
//! after a consent, lapsed consents, CSV round trip with proof, the data
//! subject's access and erasure, tenant isolation. Black box: the real
//! gateway, the mock provider, signed MO webhooks, the public pages.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use stopgate::config::Config;
use stopgate::domain::{
    now_millis, ConsentAction, ConsentEvent, ConsentList, MarketingRequires, PhoneNumber,
    RequestVia, ShortCode, Source, TenantId,
};

use crate::helpers::*;

const FR: &str = "+33612345678";
const US: &str = "+12125550123";

/// acme needs consent for marketing; beta does not.
fn consent_only(c: &mut Config) {
    c.tenants[0].marketing_requires = Some(MarketingRequires::Consent);
}

impl TestApp {
    async fn marketing(&self, key: &str, to: &str) -> Value {
        self.send_one(
            key,
            json!({"to": to, "from": "ACME", "body": "Soldes -50%"}),
        )
        .await
    }

    async fn consent(&self, key: &str, number: &str) -> Value {
        let (s, v) = self
            .call(Method::GET, key, &format!("/v1/consents/{number}"), None)
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }

    async fn give(&self, key: &str, number: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            Method::PUT,
            key,
            &format!("/v1/consents/{number}"),
            Some(body),
        )
        .await
    }

    async fn ask(&self, key: &str, number: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            key,
            &format!("/v1/consents/{number}/request"),
            Some(body),
        )
        .await
    }

    async fn page(&self, method: Method, path: &str) -> (StatusCode, String) {
        let resp = self
            .client
            .request(method, format!("{}{path}", self.public))
            .header("accept-language", "en")
            .send()
            .await
            .unwrap();
        (resp.status(), resp.text().await.unwrap())
    }
}

fn status_of(result: &Value) -> (&str, Option<&str>) {
    (
        result["status"].as_str().unwrap(),
        result["error"]["code"].as_str(),
    )
}

#[tokio::test]
async fn a_consent_only_tenant_blocks_marketing_without_consent_and_passes_otp() {
    let app = spawn_app_with(consent_only).await;
    let r = app.marketing(ACME_KEY, FR).await;
    assert_eq!(status_of(&r), ("blocked", Some("no_consent")), "{r}");
    let otp = app
        .send_one(
            ACME_KEY,
            json!({"to": FR, "from": "ACME", "body": "Code 482913", "category": "otp"}),
        )
        .await;
    assert_eq!(otp["status"], "sent", "{otp}");
    let txn = app
        .send_one(
            ACME_KEY,
            json!({"to": FR, "from": "ACME", "body": "Your order shipped", "category": "transactional"}),
        )
        .await;
    assert_eq!(txn["status"], "sent");
    let got = app.mock.received_for(FR);
    assert_eq!(
        got.len(),
        2,
        "only the OTP and the transactional message went out"
    );
    assert_eq!(got[0]["body"], "Code 482913", "OTP untouched");

    // A proof is required, and recorded with the consent.
    let (s, v) = app.give(ACME_KEY, FR, json!({})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_field")),
        "{v}"
    );
    let (s, v) = app.give(ACME_KEY, FR, json!({"proof": "  "})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("proof_required"))
    );
    let (s, v) = app
        .give(
            ACME_KEY,
            FR,
            json!({"proof": "web form /promo v3, IP 203.0.113.7", "recorded_by": "crm"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["changed"], true);
    let c = &v["consents"][0];
    assert_eq!(
        (
            c["list"].as_str(),
            c["status"].as_str(),
            c["valid"].as_bool()
        ),
        (Some("marketing"), Some("given"), Some(true))
    );
    assert_eq!(c["proof"], "web form /promo v3, IP 203.0.113.7");
    assert_eq!(c["recorded_by"], "crm");
    assert!(c["expires"].as_str().is_some());
    let r = app.marketing(ACME_KEY, FR).await;
    assert_eq!(r["status"], "sent", "{r}");

    // Another list is another consent.
    let r = app
        .send_one(
            ACME_KEY,
            json!({"to": FR, "from": "ACME", "body": "News", "list": "newsletter"}),
        )
        .await;
    assert_eq!(status_of(&r), ("blocked", Some("no_consent")));
    let (s, v) = app
        .send(
            ACME_KEY,
            json!({"to": FR, "from": "ACME", "body": "x", "list": "Bad List"}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_list"))
    );

    // A tenant with the default policy needs no consent.
    let r = app.marketing(BETA_KEY, "+33612345679").await;
    assert_eq!(r["status"], "sent");
    // Withdrawn: blocked again.
    let (s, v) = app
        .call(
            Method::DELETE,
            ACME_KEY,
            &format!("/v1/consents/{FR}"),
            Some(json!({"proof": "phone call"})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["changed"].as_bool()),
        (200, Some(true)),
        "{v}"
    );
    let r = app.marketing(ACME_KEY, FR).await;
    assert_eq!(status_of(&r), ("blocked", Some("no_consent")));
}

#[tokio::test]
async fn double_opt_in_by_sms_in_france() {
    let app = spawn_app_with(consent_only).await;
    let (s, v) = app
        .ask(ACME_KEY, FR, json!({"proof": "checkout page, box ticked"}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(
        (v["method"].as_str(), v["from"].as_str()),
        (Some("sms"), Some("36111"))
    );
    let sms = app.mock.wait_for(FR, 1).await;
    assert_eq!(
        sms.len(),
        1,
        "the confirmation request went out through the outbox"
    );
    assert_eq!(sms[0]["from"], "36111");
    let body = sms[0]["body"].as_str().unwrap();
    assert!(
        body.contains("ACME Shop") && body.contains("OUI") && body.contains("36111"),
        "{body}"
    );

    // Asked is not consented; asking again while open is refused.
    assert_eq!(
        status_of(&app.marketing(ACME_KEY, FR).await),
        ("blocked", Some("no_consent"))
    );
    let c = app.consent(ACME_KEY, FR).await;
    assert_eq!(c["consents"][0]["status"], "pending");
    assert_eq!(c["consents"][0]["request"]["open"], true);
    let (s, v) = app.ask(ACME_KEY, FR, json!({})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("request_pending"))
    );

    // The recipient answers OUI (any case, punctuation): consent, with the reply as proof.
    let (s, v) = app.mo(FR, "36111", "Oui !").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"action": "consented", "tenants": ["acme"]}));
    let sms = app.mock.wait_for(FR, 2).await;
    assert_eq!(sms.len(), 2);
    assert!(
        sms[1]["body"]
            .as_str()
            .unwrap()
            .starts_with("ACME Shop : merci"),
        "{}",
        sms[1]["body"]
    );
    let c = app.consent(ACME_KEY, FR).await;
    let given = &c["consents"][0];
    assert_eq!(
        (
            given["status"].as_str(),
            given["source"].as_str(),
            given["valid"].as_bool()
        ),
        (Some("given"), Some("sms"), Some(true))
    );
    assert!(
        given["proof"].as_str().unwrap().contains("\"Oui !\""),
        "{given}"
    );
    let actions: Vec<&str> = c["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["requested", "given"]);
    let sent = app.marketing(ACME_KEY, FR).await;
    assert_eq!(sent["status"], "sent", "{sent}");

    // A second OUI answers nothing: no second thanks.
    let (_, v) = app.mo(FR, "36111", "OUI").await;
    assert_eq!(v["action"], "none");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        app.mock.received_for(FR).len(),
        3,
        "request, thanks, the marketing message"
    );
}

#[tokio::test]
async fn double_opt_in_by_link_in_a_link_country() {
    let app = spawn_app_with(consent_only).await;
    let (s, v) = app.ask(ACME_KEY, US, json!({})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("sender_required"))
    );
    let (s, v) = app.ask(ACME_KEY, US, json!({"from": "ACME"})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["method"], "link");
    let sms = app.mock.wait_for(US, 1).await;
    assert_eq!(sms[0]["from"], "ACME");
    let body = sms[0]["body"].as_str().unwrap();
    let url = body
        .split_whitespace()
        .find(|w| w.starts_with(BASE_URL))
        .unwrap_or_else(|| panic!("no link in {body:?}"));
    let path = url.strip_prefix(BASE_URL).unwrap();
    assert!(path.starts_with("/c/") && path.len() == 11, "{path}");
    // The API never shows the code: only the recipient has it.
    let c = app.consent(ACME_KEY, US).await;
    assert!(!c.to_string().contains(&path[3..]), "{c}");

    // Opening the page (and a scanner's HEAD) gives no consent.
    let (s, html) = app.page(Method::GET, path).await;
    assert_eq!(s, 200);
    assert!(
        html.contains("ACME Shop") && html.contains("<form method=\"post\">"),
        "{html}"
    );
    let masked = PhoneNumber::parse(US).unwrap().masked();
    assert!(html.contains(&masked), "the number, masked: {html}");
    assert!(!html.contains(US));
    let (s, _) = app.page(Method::HEAD, path).await;
    assert_eq!(s, 200);
    assert_eq!(
        app.consent(ACME_KEY, US).await["consents"][0]["status"],
        "pending"
    );
    assert_eq!(
        status_of(&app.marketing(ACME_KEY, US).await),
        ("blocked", Some("no_consent"))
    );

    // The button gives it, once; a second click shows the same thanks.
    let (s, html) = app.page(Method::POST, path).await;
    assert_eq!(s, 200, "{html}");
    assert!(html.contains("id=\"done\""), "{html}");
    let c = app.consent(ACME_KEY, US).await;
    let given = &c["consents"][0];
    assert_eq!(
        (given["status"].as_str(), given["source"].as_str()),
        (Some("given"), Some("link"))
    );
    assert!(
        given["proof"]
            .as_str()
            .unwrap()
            .contains("confirmation page"),
        "{given}"
    );
    let (s, html) = app.page(Method::POST, path).await;
    assert_eq!(s, 200);
    assert!(html.contains("id=\"done\""));
    assert_eq!(
        app.consent(ACME_KEY, US).await["history"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let r = app.marketing(ACME_KEY, US).await;
    assert_eq!(r["status"], "sent", "{r}");

    // Unknown and malformed codes: the 404 page.
    for bad in ["/c/zzzzzzzz", "/c/short", "/c/%00%00%00%00%00%00%00%00"] {
        let (s, _) = app.page(Method::GET, bad).await;
        assert_eq!(s, 404, "{bad}");
        let (s, _) = app.page(Method::POST, bad).await;
        assert_eq!(s, 404, "{bad}");
    }
}

#[tokio::test]
async fn a_stop_after_a_consent_withdraws_it_for_good() {
    let app = spawn_app_with(consent_only).await;
    app.give(ACME_KEY, FR, json!({"proof": "paper form 8812"}))
        .await;
    assert_eq!(app.marketing(ACME_KEY, FR).await["status"], "sent");
    let (_, v) = app.mo(FR, "36111", "STOP").await;
    assert_eq!(v["action"], "opted_out");
    let c = app.consent(ACME_KEY, FR).await;
    let gone = &c["consents"][0];
    assert_eq!(
        (
            gone["status"].as_str(),
            gone["source"].as_str(),
            gone["proof"].as_str()
        ),
        (Some("withdrawn"), Some("sms"), Some("STOP"))
    );
    // The opt-out wins: blocked as opted out, and consent cannot be recorded over it.
    assert_eq!(
        status_of(&app.marketing(ACME_KEY, FR).await),
        ("blocked", Some("recipient_opted_out"))
    );
    let (s, v) = app.give(ACME_KEY, FR, json!({"proof": "form again"})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("recipient_opted_out"))
    );
    let (s, v) = app.ask(ACME_KEY, FR, json!({})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("recipient_opted_out"))
    );
    // START lifts the opt-out; the old consent does not come back.
    let (_, v) = app.mo(FR, "36111", "START").await;
    assert_eq!(v["action"], "opted_in");
    assert_eq!(
        status_of(&app.marketing(ACME_KEY, FR).await),
        ("blocked", Some("no_consent"))
    );
}

#[tokio::test]
async fn expired_consents_and_requests_count_as_none() {
    let app = spawn_app_with(|c| {
        consent_only(c);
        c.tenants[0].consent_ttl_days = Some(30);
    })
    .await;
    let day = 86_400_000i64;
    let at = |days_ago: i64| stopgate::domain::rfc3339(now_millis() - days_ago * day);
    // Given 31 days ago, never renewed: lapsed.
    let (s, v) = app
        .give(
            ACME_KEY,
            FR,
            json!({"proof": "fair stand", "given_at": at(31)}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["consents"][0]["valid"], false);
    let r = app.marketing(ACME_KEY, FR).await;
    assert_eq!(status_of(&r), ("blocked", Some("no_consent")));
    assert!(
        r["error"]["message"].as_str().unwrap().contains("lapsed"),
        "{r}"
    );
    // Renewed (an interaction): valid again for 30 days.
    app.give(ACME_KEY, FR, json!({"proof": "renewed at the shop"}))
        .await;
    assert_eq!(app.marketing(ACME_KEY, FR).await["status"], "sent");
    let (s, v) = app
        .give(ACME_KEY, FR, json!({"proof": "x", "given_at": at(-1)}))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_field"))
    );

    // Insights: one given 10 days ago lapses within the next 30 days.
    app.give(
        ACME_KEY,
        "+33612345679",
        json!({"proof": "y", "given_at": at(10)}),
    )
    .await;
    let (s, v) = app
        .call(Method::GET, ACME_KEY, "/v1/insights/consents", None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["horizon_days"], 30);
    let m = &v["lists"][0];
    assert_eq!(
        (
            m["list"].as_str(),
            m["given"].as_u64(),
            m["expiring"].as_u64()
        ),
        (Some("marketing"), Some(2), Some(2)),
        "{v}"
    );

    // A request asked 4 days ago (stored with that time through the store
    // API) has expired: its OUI records nothing.
    let number = PhoneNumber::parse("+33612345670").unwrap();
    let mut asked = ConsentEvent::new(
        TenantId::parse("acme").unwrap(),
        &number,
        ConsentList::marketing(),
        ConsentAction::Requested,
        Source::Api,
        now_millis() - 4 * day,
    );
    asked.expires = Some(now_millis() - day);
    asked.via = Some(RequestVia::Sms {
        shortcode: ShortCode::parse("36111").unwrap(),
    });
    app.store
        .record_consents(&[(asked, Vec::new())])
        .await
        .unwrap();
    let (_, v) = app.mo(number.as_str(), "36111", "OUI").await;
    assert_eq!(v["action"], "none");
    let c = app.consent(ACME_KEY, number.as_str()).await;
    assert_eq!(c["consents"][0]["status"], "pending");
    assert_eq!(c["consents"][0]["request"]["open"], false);
    // Asking again is allowed once it expired.
    let (s, _) = app.ask(ACME_KEY, number.as_str(), json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn consents_round_trip_through_csv_with_their_proof() {
    let app = spawn_app_with(consent_only).await;
    let csv = "number,proof,given_at,recorded_by\n\
               +33612345678,\"=HYPERLINK(\"\"http://evil\"\")\",2026-01-02T03:04:05Z,shop 12\n\
               0033 6 12 34 56 79,signed form 8812,,\n\
               +33612345680,,2026-01-02T03:04:05Z,\n";
    let resp = app
        .client
        .post(format!("{}/v1/consents/import", app.api))
        .bearer_auth(ACME_KEY)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(
        (
            report["rows"].as_u64(),
            report["imported"].as_u64(),
            report["failed"].as_u64()
        ),
        (Some(3), Some(2), Some(1)),
        "{report}"
    );
    assert_eq!(report["errors"][0]["line"], 4);
    let resp = app
        .client
        .get(format!("{}/v1/consents/export", app.api))
        .bearer_auth(ACME_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let exported = resp.text().await.unwrap();
    let lines: Vec<&str> = exported.lines().collect();
    assert_eq!(
        lines[0],
        "number,country,list,status,since,given_at,expires,source,proof,recorded_by"
    );
    assert_eq!(lines.len(), 3, "{exported}");
    assert!(
        lines[1].starts_with(
            "+33612345678,FR,marketing,given,2026-01-02T03:04:05Z,2026-01-02T03:04:05Z,"
        ),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].contains(",import,\"'=HYPERLINK(\"\"http://evil\"\")\",shop 12"),
        "formula neutralized: {}",
        lines[1]
    );
    assert!(lines[2].contains("signed form 8812"));

    // Read back by another tenant: the same consents, times and proof.
    let resp = app
        .client
        .post(format!("{}/v1/consents/import", app.api))
        .bearer_auth(BETA_KEY)
        .header("content-type", "text/csv")
        .body(exported.clone())
        .send()
        .await
        .unwrap();
    let report: Value = resp.json().await.unwrap();
    assert_eq!(
        (report["imported"].as_u64(), report["failed"].as_u64()),
        (Some(2), Some(0)),
        "{report}"
    );
    let a = app.consent(ACME_KEY, FR).await;
    let b = app.consent(BETA_KEY, FR).await;
    for field in ["status", "given_at", "expires", "recorded_by"] {
        assert_eq!(a["consents"][0][field], b["consents"][0][field], "{field}");
    }
    assert_eq!(b["consents"][0]["proof"], "'=HYPERLINK(\"http://evil\")");
    // An import never records consent over an opt-out.
    app.suppress("acme", "+33612345690").await;
    let resp = app
        .client
        .post(format!("{}/v1/consents/import", app.api))
        .bearer_auth(ACME_KEY)
        .header("content-type", "text/csv")
        .body("number,proof\n+33612345690,form\n")
        .send()
        .await
        .unwrap();
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["failed"], 1, "{report}");
}

#[tokio::test]
async fn access_shows_everything_and_erasure_keeps_only_the_block() {
    let app = spawn_app_with(consent_only).await;
    app.give(ACME_KEY, FR, json!({"proof": "web form 77"}))
        .await;
    let sent = app.marketing(ACME_KEY, FR).await;
    assert_eq!(sent["status"], "sent");
    app.marketing(ACME_KEY, US).await;
    let (_, v) = app.mo(FR, "36111", "STOP").await;
    assert_eq!(v["action"], "opted_out");
    app.mo(FR, "36111", "stop sending me those please").await;
    app.give(BETA_KEY, FR, json!({"proof": "beta's own"})).await;

    let (s, doc) = app
        .call(Method::GET, ACME_KEY, &format!("/v1/subjects/{FR}"), None)
        .await;
    assert_eq!(s, 200, "{doc}");
    assert_eq!(
        (doc["number"].as_str(), doc["tenant"].as_str()),
        (Some(FR), Some("acme"))
    );
    assert_eq!(doc["suppression"]["suppressed"], true);
    assert_eq!(doc["suppression"]["history"][0]["text"], "STOP");
    let actions: Vec<&str> = doc["consent"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["given", "withdrawn"]);
    let messages = doc["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{doc}");
    assert!(messages.iter().any(|m| m["id"] == sent["id"]));
    assert_eq!(doc["marketing_sends"][0]["shortcode"], "36111");
    assert_eq!(
        doc["replies_for_review"][0]["text"],
        "stop sending me those please"
    );
    assert!(
        !doc.to_string().contains("beta's own"),
        "only this tenant's"
    );

    let (s, v) = app
        .call(
            Method::DELETE,
            ACME_KEY,
            &format!("/v1/subjects/{FR}"),
            Some(json!({"reference": "DSAR-2026-0042"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["erasure"]["kept_optout"]["source"], "sms");
    assert_eq!(v["erasure"]["removed"]["messages"], 1);
    assert!(v["remains"].as_str().unwrap().contains("keyed hash"));

    // Still blocked, and nothing else about it is returned.
    let r = app.marketing(ACME_KEY, FR).await;
    assert_eq!(
        status_of(&r),
        ("blocked", Some("recipient_opted_out")),
        "{r}"
    );
    let (_, doc) = app
        .call(Method::GET, ACME_KEY, &format!("/v1/subjects/{FR}"), None)
        .await;
    let sup = &doc["suppression"];
    assert_eq!(sup["suppressed"], true);
    assert!(sup["erased"].as_str().is_some());
    assert_eq!(sup["history"], json!([]));
    assert!(sup.get("reason").is_none() && sup.get("campaign").is_none());
    assert_eq!(doc["consent"]["consents"], json!([]));
    assert_eq!(doc["consent"]["history"], json!([]));
    // The blocked send just now is a new record: only it is there.
    assert_eq!(doc["messages"].as_array().unwrap().len(), 1);
    assert_eq!(doc["messages"][0]["id"], r["id"]);
    assert_eq!(doc["marketing_sends"], json!([]));
    assert_eq!(doc["replies_for_review"], json!([]));
    assert_eq!(doc["erasures"][0]["reference"], "DSAR-2026-0042");
    let (_, list) = app
        .call(Method::GET, ACME_KEY, "/v1/suppressions", None)
        .await;
    assert!(!list.to_string().contains(FR), "{list}");
    assert!(!app.export_csv(ACME_KEY).await.contains(FR));
    let (_, msgs) = app
        .call(
            Method::GET,
            ACME_KEY,
            &format!("/v1/messages/{}", sent["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(msgs["error"]["code"], "not_found");

    // The other tenant's data is its own.
    let b = app.consent(BETA_KEY, FR).await;
    assert_eq!(b["consents"][0]["proof"], "beta's own");
    // And a number with no opt-out is erased whole.
    let (_, v) = app
        .call(
            Method::DELETE,
            ACME_KEY,
            &format!("/v1/subjects/{US}"),
            None,
        )
        .await;
    assert!(v["erasure"]["kept_optout"].is_null(), "{v}");
    let (_, doc) = app
        .call(Method::GET, ACME_KEY, &format!("/v1/subjects/{US}"), None)
        .await;
    assert_eq!(doc["suppression"]["suppressed"], false);
    assert_eq!(doc["messages"], json!([]));
    assert_eq!(doc["links"], json!([]));
}

#[tokio::test]
async fn tenants_see_and_change_only_their_own_consents() {
    let app = spawn_app_with(|c| {
        c.tenants[0].marketing_requires = Some(MarketingRequires::Consent);
        c.tenants[1].marketing_requires = Some(MarketingRequires::Consent);
    })
    .await;
    app.give(ACME_KEY, FR, json!({"proof": "acme form"})).await;
    assert_eq!(app.marketing(ACME_KEY, FR).await["status"], "sent");
    assert_eq!(
        status_of(&app.marketing(BETA_KEY, FR).await),
        ("blocked", Some("no_consent"))
    );
    assert_eq!(app.consent(BETA_KEY, FR).await["consents"], json!([]));
    let (_, list) = app.call(Method::GET, BETA_KEY, "/v1/consents", None).await;
    assert_eq!(list["items"], json!([]));
    // beta's withdrawal, request answer and erasure leave acme's consent alone.
    app.call(
        Method::DELETE,
        BETA_KEY,
        &format!("/v1/consents/{FR}"),
        None,
    )
    .await;
    let (s, _) = app.ask(BETA_KEY, FR, json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (_, v) = app.mo(FR, "36111", "OUI").await;
    assert_eq!(v["tenants"], json!(["beta"]), "only the tenant that asked");
    app.call(
        Method::DELETE,
        BETA_KEY,
        &format!("/v1/subjects/{FR}"),
        None,
    )
    .await;
    let a = app.consent(ACME_KEY, FR).await;
    assert_eq!(a["consents"][0]["proof"], "acme form");
    assert_eq!(a["history"].as_array().unwrap().len(), 1);
    let (_, list) = app
        .call(Method::GET, ACME_KEY, "/v1/consents?limit=10", None)
        .await;
    assert_eq!(list["items"][0]["number"], FR);
    assert_eq!(list["items"][0]["status"], "given");
    // Unauthenticated: the JSON 401.
    let (s, v) = app
        .call(Method::GET, "nope", &format!("/v1/subjects/{FR}"), None)
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (s, v) = app
        .call(Method::GET, ACME_KEY, "/v1/consents/not-a-number", None)
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (422, Some("invalid_number"))
    );
}
