//! `/v1/suppressions`, import/export, insights: every endpoint, tenant isolation.

use std::collections::{BTreeSet, HashMap};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

impl TestApp {
    pub async fn call(
        &self,
        method: reqwest::Method,
        key: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn import_csv(&self, key: &str, csv: String) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(format!("{}/v1/suppressions/import", self.api))
            .bearer_auth(key)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }

    pub async fn export_csv(&self, key: &str) -> String {
        let resp = self
            .client
            .get(format!("{}/v1/suppressions/export", self.api))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"));
        resp.text().await.unwrap()
    }

    /// Walks every page of the list and returns the numbers in order.
    pub async fn list_all(&self, key: &str, limit: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let path = format!(
                "/v1/suppressions?limit={limit}&after={}",
                after.replace('+', "%2B")
            );
            let (s, page) = self.call(reqwest::Method::GET, key, &path, None).await;
            assert_eq!(s, 200, "{page}");
            for item in page["items"].as_array().unwrap() {
                out.push(item["number"].as_str().unwrap().to_string());
            }
            match page["next"].as_str() {
                Some(n) => after = n.to_string(),
                None => return out,
            }
        }
    }
}

use reqwest::Method;

#[tokio::test]
async fn put_get_delete_with_history_and_proof() {
    let app = spawn_app().await;
    let path = "/v1/suppressions/%2B33612345678";

    let (s, v) = app.call(Method::GET, ACME_KEY, path, None).await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            v["suppressed"].as_bool(),
            v["history"].as_array().unwrap().len()
        ),
        (Some(false), 0)
    );

    let (s, v) = app
        .call(
            Method::PUT,
            ACME_KEY,
            path,
            Some(json!({"reason": "asked on the phone"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["suppressed"].as_bool(), v["changed"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(v["source"], "api");
    assert_eq!(v["country"], "FR");
    // Idempotent, and any spelling of the number is the same number.
    let (s, v) = app
        .call(
            Method::PUT,
            ACME_KEY,
            "/v1/suppressions/0033%206%2012%2034%2056%2078",
            None,
        )
        .await;
    assert_eq!((s.as_u16(), v["changed"].as_bool()), (200, Some(false)));
    let r = app
        .send_one(
            ACME_KEY,
            json!({"to": "+33612345678", "from": "ACME", "body": "Sale"}),
        )
        .await;
    assert_eq!(r["status"], "blocked");

    // Re-subscribing needs a proof.
    for body in [None, Some(json!({})), Some(json!({"proof": "  "}))] {
        let (s, v) = app.call(Method::DELETE, ACME_KEY, path, body.clone()).await;
        assert!(s == 422 || s == 400, "{body:?}: {s} {v}");
        assert!(
            ["proof_required", "invalid_field"].contains(&v["error"]["code"].as_str().unwrap()),
            "{v}"
        );
    }
    let (_, still) = app.call(Method::GET, ACME_KEY, path, None).await;
    assert_eq!(
        still["suppressed"], true,
        "a refused DELETE changes nothing"
    );

    let (s, v) = app
        .call(
            Method::DELETE,
            ACME_KEY,
            path,
            Some(json!({"proof": "signed form 2026-11-02"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["suppressed"], false);
    let history = v["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        (history[0]["action"].as_str(), history[0]["reason"].as_str()),
        (Some("opt_out"), Some("asked on the phone"))
    );
    assert_eq!(
        (history[1]["action"].as_str(), history[1]["source"].as_str()),
        (Some("opt_in"), Some("api"))
    );
    assert_eq!(history[1]["text"], "signed form 2026-11-02");
    assert!(history[0]["at"].as_str().unwrap().ends_with('Z'));
    let r = app
        .send_one(
            ACME_KEY,
            json!({"to": "+33612345678", "from": "ACME", "body": "Sale"}),
        )
        .await;
    assert_eq!(r["status"], "sent");
}

#[tokio::test]
async fn bad_requests_on_suppressions_are_json_errors() {
    let app = spawn_app().await;
    let (s, v) = app
        .call(Method::GET, ACME_KEY, "/v1/suppressions/0612345678", None)
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (422, Some("invalid_number"))
    );
    let (s, v) = app
        .call(Method::GET, ACME_KEY, "/v1/suppressions?limit=abc", None)
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (400, Some("invalid_field"))
    );
    let (s, v) = app
        .call(Method::GET, ACME_KEY, "/v1/suppressions?limit=0", None)
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (422, Some("invalid_field"))
    );
    let (s, v) = app
        .call(Method::GET, ACME_KEY, "/v1/suppressions?after=nope", None)
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (422, Some("invalid_number"))
    );
    let (s, v) = app
        .call(
            Method::PUT,
            ACME_KEY,
            "/v1/suppressions/%2B33612345678",
            Some(json!({"reason": 5})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (400, Some("invalid_field"))
    );
    let (s, _) = app
        .call(Method::GET, "sk_nope", "/v1/suppressions", None)
        .await;
    assert_eq!(s, 401);
    let resp = app
        .client
        .post(format!("{}/v1/suppressions/import", app.api))
        .bearer_auth(ACME_KEY)
        .json(&json!({"number": "+33612345678"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let (s, v) = app.import_csv(ACME_KEY, "name,email\nx,y\n".into()).await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (422, Some("invalid_csv"))
    );
}

#[tokio::test]
async fn tenant_b_can_neither_see_nor_change_tenant_a() {
    let app = spawn_app().await;
    let path = "/v1/suppressions/%2B447400123456";
    app.call(
        Method::PUT,
        ACME_KEY,
        path,
        Some(json!({"reason": "acme only"})),
    )
    .await;

    let (_, seen_by_beta) = app.call(Method::GET, BETA_KEY, path, None).await;
    assert_eq!(seen_by_beta["suppressed"], false);
    assert!(
        seen_by_beta["history"].as_array().unwrap().is_empty(),
        "{seen_by_beta}"
    );
    assert!(app.list_all(BETA_KEY, 100).await.is_empty());
    assert_eq!(
        app.export_csv(BETA_KEY).await.lines().count(),
        1,
        "header only"
    );

    // Beta's re-subscribe touches beta's state only.
    app.call(
        Method::DELETE,
        BETA_KEY,
        path,
        Some(json!({"proof": "beta's form"})),
    )
    .await;
    let (_, acme_view) = app.call(Method::GET, ACME_KEY, path, None).await;
    assert_eq!(acme_view["suppressed"], true);
    assert_eq!(acme_view["history"].as_array().unwrap().len(), 1);

    // Beta's import is beta's; beta's insights show nothing of acme's.
    app.import_csv(BETA_KEY, "number\n+33698765432\n".into())
        .await;
    let (_, acme_view) = app
        .call(
            Method::GET,
            ACME_KEY,
            "/v1/suppressions/%2B33698765432",
            None,
        )
        .await;
    assert_eq!(acme_view["suppressed"], false);
    app.send(
        ACME_KEY,
        json!({"to": "+12125550123", "from": "ACME", "body": "x", "campaign": "acme-secret"}),
    )
    .await;
    let (_, insights) = app
        .call(Method::GET, BETA_KEY, "/v1/insights/campaigns", None)
        .await;
    assert!(!insights.to_string().contains("acme-secret"), "{insights}");
}

#[tokio::test]
async fn import_reports_bad_lines_and_keeps_good_rows() {
    let app = spawn_app().await;
    let csv = "number,reason\n+33612345678,complaint\n06 12 34 56 78,\nnot-a-number,\n0044 7400 123456,\n\"+1 212 555 0123\",\"quoted, with comma\"\n+33612345678,dup\n";
    let (s, r) = app.import_csv(ACME_KEY, csv.into()).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (
            r["rows"].as_u64(),
            r["imported"].as_u64(),
            r["unchanged"].as_u64(),
            r["failed"].as_u64()
        ),
        (Some(6), Some(3), Some(1), Some(2))
    );
    let lines: Vec<u64> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [3, 4]);
    assert!(r["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("international"));
    assert_eq!(
        app.list_all(ACME_KEY, 100).await,
        ["+12125550123", "+33612345678", "+447400123456"]
    );
    let (_, v) = app
        .call(
            Method::GET,
            ACME_KEY,
            "/v1/suppressions/%2B12125550123",
            None,
        )
        .await;
    assert_eq!(
        (v["source"].as_str(), v["reason"].as_str()),
        (Some("import"), Some("quoted, with comma"))
    );
}

#[tokio::test]
async fn an_export_reimports_to_the_same_set() {
    let app = spawn_app().await;
    let numbers: Vec<String> = (0..2500).map(|i| format!("+1212555{i:04}")).collect();
    let (s, r) = app
        .import_csv(ACME_KEY, format!("number\n{}\n", numbers.join("\n")))
        .await;
    assert_eq!((s.as_u16(), r["imported"].as_u64()), (200, Some(2500)));
    app.call(
        Method::PUT,
        ACME_KEY,
        "/v1/suppressions/%2B33612345678",
        Some(json!({"reason": "x"})),
    )
    .await;

    let exported = app.export_csv(ACME_KEY).await;
    assert_eq!(exported.lines().count(), 2502, "header + every number");
    let (s, r) = app.import_csv(BETA_KEY, exported).await;
    assert_eq!(
        (s.as_u16(), r["imported"].as_u64(), r["failed"].as_u64()),
        (200, Some(2501), Some(0))
    );
    assert_eq!(
        app.list_all(ACME_KEY, 1000).await,
        app.list_all(BETA_KEY, 1000).await
    );
}

/// An export opened in a spreadsheet runs no formula and holds no control
/// character, whatever reasons the API and imports recorded; its numbers
/// (E.164, starting with `+`) are untouched and re-import as they were.
#[tokio::test]
async fn exports_neutralise_formulas_and_keep_numbers_importable() {
    let app = spawn_app().await;
    let put = [
        (
            "+33698765410",
            r#"=HYPERLINK("http://evil")"#,
            Some("@SUM(1)"),
        ),
        ("+33698765411", "-2", None),
        ("+33698765412", "+1+1", Some("=1+1")),
    ];
    for (number, reason, campaign) in put {
        let mut body = json!({"reason": reason});
        if let Some(c) = campaign {
            body["campaign"] = json!(c);
        }
        let path = format!("/v1/suppressions/{}", number.replace('+', "%2B"));
        let (s, v) = app.call(Method::PUT, ACME_KEY, &path, Some(body)).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["reason"], reason, "stored as given");
    }
    // Imports keep what the API refuses: NUL and ESC inside a reason.
    let csv = "number,reason\n\
        +33698765413,=cmd|' /C calc'!A0\n\
        +33698765414,@SUM(1)\n\
        +33698765415,\"\t=1+1\"\n\
        +33698765416,a\0b\u{1b}[31mc\n";
    let (s, r) = app.import_csv(ACME_KEY, csv.to_string()).await;
    assert_eq!((s.as_u16(), r["imported"].as_u64()), (200, Some(4)), "{r}");

    let exported = app.export_csv(ACME_KEY).await;
    assert!(
        !exported.contains(|c: char| c.is_control() && c != '\n'),
        "control characters in {exported:?}"
    );
    // As text: the quoted cells, `'` inside the CSV quoting.
    for cell in [
        r#""'=HYPERLINK(""http://evil"")""#,
        "'=cmd|' /C calc'!A0",
        ",'@SUM(1)",
        ",'-2,",
        ",'+1+1,'=1+1",
        ",a b [31mc,",
    ] {
        assert!(exported.contains(cell), "{cell} in {exported}");
    }
    let mut rows = csv::Reader::from_reader(exported.as_bytes());
    let cells: HashMap<String, (String, String)> = rows
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), (r[4].to_string(), r[5].to_string()))
        })
        .collect();
    let cell = |n: &str| cells[n].clone();
    let owned = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        cell("+33698765410"),
        owned(r#"'=HYPERLINK("http://evil")"#, "'@SUM(1)")
    );
    assert_eq!(cell("+33698765411"), owned("'-2", ""));
    assert_eq!(cell("+33698765412"), owned("'+1+1", "'=1+1"));
    assert_eq!(cell("+33698765413"), owned("'=cmd|' /C calc'!A0", ""));
    assert_eq!(cell("+33698765414"), owned("'@SUM(1)", ""));
    // The import trimmed the tab; the `=` after it still gets its `'`.
    assert_eq!(cell("+33698765415"), owned("'=1+1", ""));
    assert_eq!(cell("+33698765416"), owned("a b [31mc", ""));
    assert!(
        cells.keys().all(|n| n.starts_with("+336")),
        "numbers untouched: {cells:?}"
    );

    let (s, r) = app.import_csv(BETA_KEY, exported).await;
    assert_eq!(
        (s.as_u16(), r["imported"].as_u64(), r["failed"].as_u64()),
        (200, Some(7), Some(0)),
        "{r}"
    );
    assert_eq!(
        app.list_all(ACME_KEY, 100).await,
        app.list_all(BETA_KEY, 100).await
    );
}

#[tokio::test]
async fn pagination_stays_correct_while_entries_change() {
    let app = spawn_app().await;
    let initial: Vec<String> = (0..300).map(|i| format!("+1212555{:04}", i * 3)).collect();
    app.import_csv(ACME_KEY, format!("number\n{}\n", initial.join("\n")))
        .await;

    // While one client pages through, another keeps adding numbers between
    // and around the existing ones.
    let writer = {
        let client = app.client.clone();
        let api = app.api.clone();
        tokio::spawn(async move {
            for i in 0..150 {
                let n = format!("%2B1212555{:04}", i * 6 + 1);
                let r = client
                    .put(format!("{api}/v1/suppressions/{n}"))
                    .bearer_auth(ACME_KEY)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
        })
    };
    let listed = app.list_all(ACME_KEY, 7).await;
    writer.await.unwrap();

    let unique: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "no number is listed twice");
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, listed, "pages come in E.164 order");
    for n in &initial {
        assert!(
            unique.contains(n),
            "{n} was suppressed throughout but not listed"
        );
    }
    assert_eq!(app.list_all(ACME_KEY, 1000).await.len(), 450);
}

#[tokio::test]
async fn insights_match_the_events() {
    let app = spawn_app().await;
    let recipients: Vec<String> = (0..10).map(|i| format!("+1212555{i:04}")).collect();
    let (_, sent) = app
        .send(
            ACME_KEY,
            json!({"to": recipients, "from": "ACME", "body": "Deals", "campaign": "bf-2026"}),
        )
        .await;
    assert_eq!(sent["summary"]["sent"], 10);
    app.send(
        ACME_KEY,
        json!({"to": "+33612345678", "from": "ACME", "body": "Soldes"}),
    )
    .await;
    // OTPs are not marketing and count nowhere.
    app.send(
        ACME_KEY,
        json!({"to": "+33612345678", "from": "ACME", "body": "123", "category": "otp"}),
    )
    .await;
    for n in ["%2B12125550001", "%2B12125550002"] {
        app.call(
            Method::PUT,
            ACME_KEY,
            &format!("/v1/suppressions/{n}"),
            Some(json!({"campaign": "bf-2026"})),
        )
        .await;
    }
    // Blocked marketing is not "sent".
    app.send(
        ACME_KEY,
        json!({"to": "+12125550001", "from": "ACME", "body": "Deals", "campaign": "bf-2026"}),
    )
    .await;

    let (s, v) = app
        .call(Method::GET, ACME_KEY, "/v1/insights/campaigns", None)
        .await;
    assert_eq!(s, 200);
    let by_name: HashMap<Option<String>, Value> = v["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["campaign"].as_str().map(str::to_string), c.clone()))
        .collect();
    let bf = &by_name[&Some("bf-2026".to_string())];
    assert_eq!(bf["sent"], 10);
    assert_eq!(bf["optouts"], json!({"api": 2}));
    assert_eq!(bf["optouts_total"], 2);
    assert_eq!(bf["optout_rate"], 0.2);
    assert_eq!(by_name[&None]["sent"], 1);
}

#[tokio::test]
async fn a_tenant_over_its_rate_gets_429_with_retry_after() {
    let app = spawn_app_with(|c| {
        c.limits.tenant_requests_per_second = 1;
        c.limits.tenant_burst = 2;
    })
    .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let r = app
            .client
            .get(format!("{}/v1/suppressions", app.api))
            .bearer_auth(ACME_KEY)
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "rate_limited");
            statuses.push(429);
        } else {
            statuses.push(r.status().as_u16());
        }
    }
    assert_eq!(&statuses[..2], [200, 200]);
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
    // Another tenant has its own budget.
    let r = app
        .client
        .get(format!("{}/v1/suppressions", app.api))
        .bearer_auth(BETA_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn possible_opt_outs_are_listed_for_review_and_can_be_confirmed() {
    let app = spawn_app().await;
    let number = "+33612345678";
    app.send(
        ACME_KEY,
        json!({"to": number, "from": "ACME", "body": "Soldes", "campaign": "spring"}),
    )
    .await;
    let (s, v) = app.mo(number, "36111", "Cancel my order please").await;
    assert_eq!((s.as_u16(), v["action"].as_str()), (200, Some("none")));

    let (s, list) = app
        .call(Method::GET, ACME_KEY, "/v1/possible-optouts", None)
        .await;
    assert_eq!(s, 200, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(
        (items[0]["number"].as_str(), items[0]["text"].as_str()),
        (Some(number), Some("Cancel my order please"))
    );
    assert_eq!(
        (
            items[0]["shortcode"].as_str(),
            items[0]["suppressed"].as_bool()
        ),
        (Some("36111"), Some(false))
    );
    let id = items[0]["id"].as_str().unwrap().to_string();

    // beta shares the FR code but never wrote to this number: it sees nothing and can do nothing.
    let (_, beta_list) = app
        .call(Method::GET, BETA_KEY, "/v1/possible-optouts", None)
        .await;
    assert!(
        beta_list["items"].as_array().unwrap().is_empty(),
        "{beta_list}"
    );
    let (s, e) = app
        .call(
            Method::POST,
            BETA_KEY,
            &format!("/v1/possible-optouts/{id}/confirm"),
            None,
        )
        .await;
    assert_eq!(
        (s.as_u16(), e["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    let (s, v) = app
        .call(
            Method::POST,
            ACME_KEY,
            &format!("/v1/possible-optouts/{id}/confirm"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["suppressed"].as_bool(), v["changed"].as_bool()),
        (Some(true), Some(true))
    );
    let event = &v["history"][0];
    assert_eq!(
        (event["source"].as_str(), event["reason"].as_str()),
        (Some("sms"), Some("confirmed_on_review"))
    );
    assert_eq!(
        (event["text"].as_str(), event["campaign"].as_str()),
        (Some("Cancel my order please"), Some("spring"))
    );
    assert!(app.blocked(ACME_KEY, number).await);
    let (_, again) = app
        .call(
            Method::POST,
            ACME_KEY,
            &format!("/v1/possible-optouts/{id}/confirm"),
            None,
        )
        .await;
    assert_eq!(again["changed"], false);
    let (_, list) = app
        .call(Method::GET, ACME_KEY, "/v1/possible-optouts", None)
        .await;
    assert_eq!(list["items"][0]["suppressed"], true);

    for (path, status) in [
        ("/v1/possible-optouts/999999/confirm", 404),
        ("/v1/possible-optouts/abc/confirm", 404),
    ] {
        let (s, e) = app.call(Method::POST, ACME_KEY, path, None).await;
        assert_eq!(s.as_u16(), status, "{path}: {e}");
        assert!(e["error"]["code"].is_string());
    }
    for path in [
        "/v1/possible-optouts?limit=0",
        "/v1/possible-optouts?after=abc",
    ] {
        let (s, e) = app.call(Method::GET, ACME_KEY, path, None).await;
        assert_eq!(
            (s.as_u16(), e["error"]["code"].as_str()),
            (422, Some("invalid_field")),
            "{path}"
        );
    }
}

/// SMS and link opt-outs land in their campaign's counters, reasons included.
#[tokio::test]
async fn insights_count_sms_and_link_opt_outs_by_campaign() {
    let app = spawn_app().await;
    let (_, sent) = app
        .send(ACME_KEY, json!({"to": ["+33612345678", "+12125550123", "+12125550124"], "from": "ACME", "body": "Deals", "campaign": "bf"}))
        .await;
    assert_eq!(sent["summary"]["sent"], 3);
    let (s, v) = app.mo("+33612345678", "36111", "STOP").await;
    assert_eq!((s.as_u16(), v["action"].as_str()), (200, Some("opted_out")));
    let url = sent["results"][1]["optout"]["url"].as_str().unwrap();
    let code = url.rsplit('/').next().unwrap();
    let r = app
        .client
        .post(format!("{}/{code}", app.public))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("reason=too_many")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let (_, v) = app
        .call(Method::GET, ACME_KEY, "/v1/insights/campaigns", None)
        .await;
    let bf = v["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["campaign"] == "bf")
        .unwrap()
        .clone();
    assert_eq!(bf["sent"], 3);
    assert_eq!(bf["optouts"], json!({"link": 1, "sms": 1}));
    assert_eq!(bf["reasons"], json!({"too_many": 1}));
    assert_eq!(bf["optouts_total"], 2);
    assert!((bf["optout_rate"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
}

/// A plain list goes in bulk; each number still has a state, a history, a
/// place in the listing, and blocks marketing. A re-subscribe overrides the
/// import, and importing the list again suppresses that number again.
#[tokio::test]
async fn a_bulk_imported_list_behaves_like_any_opt_out() {
    let app = spawn_app().await;
    let numbers: Vec<String> = (0..3000).map(|i| format!("+1212555{i:04}")).collect();
    let csv = format!("number\n{}\n", numbers.join("\n"));
    let (status, report) = app.import_csv(ACME_KEY, csv.clone()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["imported"].as_u64(), report["unchanged"].as_u64()),
        (Some(3000), Some(0))
    );

    let path = "/v1/suppressions/%2B12125551234";
    let (_, view) = app.call(reqwest::Method::GET, ACME_KEY, path, None).await;
    assert_eq!(view["suppressed"], true, "{view}");
    assert_eq!(view["source"], "import", "{view}");
    let history = view["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "{view}");
    assert_eq!(
        (history[0]["action"].as_str(), history[0]["source"].as_str()),
        (Some("opt_out"), Some("import"))
    );

    let blocked = app
        .send_one(
            ACME_KEY,
            json!({"to": "+12125551234", "from": "ACME", "body": "Sale"}),
        )
        .await;
    assert_eq!(blocked["status"], "blocked", "{blocked}");
    assert_eq!(app.list_all(ACME_KEY, 700).await, numbers);
    assert!(
        app.list_all(BETA_KEY, 100).await.is_empty(),
        "another tenant's list"
    );

    let (status, _) = app
        .call(
            reqwest::Method::DELETE,
            ACME_KEY,
            path,
            Some(json!({"proof": "signed form 42"})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, view) = app.call(reqwest::Method::GET, ACME_KEY, path, None).await;
    assert_eq!(view["suppressed"], false, "{view}");
    let actions: Vec<&str> = view["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["opt_out", "opt_in"]);
    let listed = app.list_all(ACME_KEY, 1000).await;
    assert_eq!(listed.len(), 2999);
    assert!(!listed.contains(&"+12125551234".to_string()));
    let sent = app
        .send_one(
            ACME_KEY,
            json!({"to": "+12125551234", "from": "ACME", "body": "Sale"}),
        )
        .await;
    assert_eq!(sent["status"], "sent", "{sent}");

    let (_, again) = app.import_csv(ACME_KEY, csv).await;
    assert_eq!(
        (again["imported"].as_u64(), again["unchanged"].as_u64()),
        (Some(1), Some(2999)),
        "{again}"
    );
    let (_, view) = app.call(reqwest::Method::GET, ACME_KEY, path, None).await;
    assert_eq!(view["suppressed"], true, "{view}");
    assert_eq!(view["history"].as_array().unwrap().len(), 3, "{view}");
    assert_eq!(app.list_all(ACME_KEY, 1000).await.len(), 3000);

    let (_, insights) = app
        .call(
            reqwest::Method::GET,
            ACME_KEY,
            "/v1/insights/campaigns",
            None,
        )
        .await;
    assert!(
        !insights.to_string().contains("import"),
        "imports are no campaign's cost: {insights}"
    );
}
