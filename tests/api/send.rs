//! `POST /v1/messages`: footers, suppression, categories, segments.

use std::collections::HashSet;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn each_shortcode_country_gets_stop_to_its_shortcode_in_its_language() {
    let app = spawn_app().await;
    let cases = [
        ("+33612345678", "FR", "36111", "STOP au 36111"),
        (
            "+447400123456",
            "GB",
            "60777",
            "Text STOP to 60777 to opt out",
        ),
        ("+32470123456", "BE", "3669", "STOP au/naar 3669"),
        ("+31612345678", "NL", "4411", "Afmelden? Sms STOP naar 4411"),
        ("+4915123456789", "DE", "44744", "Abmelden: STOP an 44744"),
    ];
    for (to, country, code, footer) in cases {
        let r = app
            .send_one(
                ACME_KEY,
                json!({"to": to, "from": "ACME", "body": "Sale today!"}),
            )
            .await;
        assert_eq!(r["status"], "sent", "{r}");
        assert_eq!(r["country"], country);
        assert_eq!(r["body"], format!("Sale today!\n{footer}"));
        assert_eq!(
            r["optout"],
            json!({"method": "shortcode", "shortcode": code})
        );
        assert_eq!(r["encoding"], "gsm7");
        let got = app.mock.received_for(to);
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0]["body"], r["body"],
            "the provider gets the final body"
        );
        assert_eq!(got[0]["reference"], r["id"]);
        assert_eq!(got[0]["from"], "ACME");
        assert_eq!(
            r["provider_id"],
            format!("mock-{}", r["id"].as_str().unwrap())
        );
    }
}

#[tokio::test]
async fn shortcode_country_without_a_shortcode_falls_back_to_a_link() {
    // beta has no dedicated code for DE and there is no shared one.
    let app = spawn_app().await;
    let r = app
        .send_one(
            BETA_KEY,
            json!({"to": "+4915123456789", "from": "BETA", "body": "Angebot"}),
        )
        .await;
    assert_eq!(r["optout"]["method"], "url");
    let url = r["optout"]["url"].as_str().unwrap();
    assert!(
        r["body"]
            .as_str()
            .unwrap()
            .ends_with(&format!("\nAbmelden: {url}")),
        "{r}"
    );
}

#[tokio::test]
async fn link_countries_get_a_link_unique_per_recipient_and_stable_per_campaign() {
    let app = spawn_app().await;
    // Countries without a rules file of their own: the default English footer.
    let to = [
        "+12125550123",
        "+27711234567",
        "+64211234567",
        "+61412345678",
    ];
    let body = json!({"to": to, "from": "ACME", "body": "Deals", "campaign": "bf-2026"});
    let (_, first) = app.send(ACME_KEY, body.clone()).await;
    let urls: Vec<String> = first["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "sent", "{r}");
            assert_eq!(r["optout"]["method"], "url");
            let url = r["optout"]["url"].as_str().unwrap().to_string();
            let code = url
                .strip_prefix(&format!("{BASE_URL}/"))
                .expect("link under public_base_url");
            assert_eq!(code.len(), 8);
            assert!(code.bytes().all(|b| b.is_ascii_alphanumeric()), "{code}");
            assert_eq!(r["body"], format!("Deals\nOpt out: {url}"));
            url
        })
        .collect();
    assert_eq!(
        urls.iter().collect::<HashSet<_>>().len(),
        to.len(),
        "one link per recipient"
    );

    // A retry of the same campaign reuses each recipient's link.
    let (_, again) = app.send(ACME_KEY, body).await;
    for (r, url) in again["results"].as_array().unwrap().iter().zip(&urls) {
        assert_eq!(r["optout"]["url"], url.as_str());
    }
    // Another campaign, or another tenant, gets another link.
    let other = app
        .send_one(
            ACME_KEY,
            json!({"to": to[0], "from": "ACME", "body": "Deals", "campaign": "xmas"}),
        )
        .await;
    assert_ne!(other["optout"]["url"], urls[0].as_str());
    let beta = app
        .send_one(
            BETA_KEY,
            json!({"to": to[0], "from": "BETA", "body": "Deals", "campaign": "bf-2026"}),
        )
        .await;
    assert_ne!(beta["optout"]["url"], urls[0].as_str());

    // Every minted link resolves to its tenant, recipient and campaign.
    let code = urls[1].rsplit('/').next().unwrap();
    let link = app
        .store
        .link(&stopgate::domain::LinkCode::parse(code).unwrap())
        .await
        .unwrap()
        .expect("minted link is stored");
    assert_eq!(
        (
            link.tenant.as_str(),
            link.number.as_str(),
            link.campaign.as_ref().map(|c| c.as_str())
        ),
        ("acme", "+27711234567", Some("bf-2026"))
    );
}

#[tokio::test]
async fn transactional_and_otp_pass_untouched() {
    let app = spawn_app().await;
    for (category, to) in [("transactional", "+33612345678"), ("otp", "+12125550123")] {
        let body = "Your code is 123456";
        let r = app
            .send_one(
                ACME_KEY,
                json!({"to": to, "from": "ACME", "body": body, "category": category}),
            )
            .await;
        assert_eq!(r["status"], "sent");
        assert_eq!(r["body"], body);
        assert!(r.get("optout").is_none(), "{r}");
        assert_eq!(app.mock.received_for(to)[0]["body"], body);
    }
}

#[tokio::test]
async fn marketing_to_an_opted_out_number_is_blocked_and_never_reaches_the_provider() {
    let app = spawn_app().await;
    app.suppress("acme", "+33612345678").await;
    let r = app
        .send_one(
            ACME_KEY,
            json!({"to": "+33612345678", "from": "ACME", "body": "Sale"}),
        )
        .await;
    assert_eq!(r["status"], "blocked");
    assert_eq!(r["error"]["code"], "recipient_opted_out");
    assert!(
        app.mock.received().is_empty(),
        "blocked marketing reached the provider"
    );

    // Any spelling of the number is the same person.
    let (_, many) = app
        .send(ACME_KEY, json!({"to": ["0033 6 12 34 56 78", "+33 (0)6 12-34-56-78", "+33698765432"], "from": "ACME", "body": "Sale"}))
        .await;
    let statuses: Vec<&str> = many["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["blocked", "rejected", "sent"]);
    assert_eq!(many["results"][1]["error"]["code"], "duplicate_recipient");
    assert_eq!(
        many["summary"],
        json!({"sent": 1, "blocked": 1, "rejected": 1, "failed": 0})
    );
    assert_eq!(app.mock.received().len(), 1);

    // OTP and transactional to the same number still pass.
    for category in ["otp", "transactional"] {
        let r = app
            .send_one(ACME_KEY, json!({"to": "+33612345678", "from": "ACME", "body": "Code 998877", "category": category}))
            .await;
        assert_eq!(r["status"], "sent", "{category}");
    }
    assert_eq!(app.mock.received_for("+33612345678").len(), 2);
}

#[tokio::test]
async fn opt_outs_are_scoped_to_one_tenant() {
    let app = spawn_app().await;
    app.suppress("acme", "+447400123456").await;
    let acme = app
        .send_one(
            ACME_KEY,
            json!({"to": "+447400123456", "from": "ACME", "body": "Hi"}),
        )
        .await;
    let beta = app
        .send_one(
            BETA_KEY,
            json!({"to": "+447400123456", "from": "BETA", "body": "Hi"}),
        )
        .await;
    assert_eq!(acme["status"], "blocked");
    assert_eq!(beta["status"], "sent");
    assert_eq!(app.mock.received_for("+447400123456").len(), 1);
}

#[tokio::test]
async fn numbers_are_echoed_in_e164_and_bad_ones_rejected_alone() {
    let app = spawn_app().await;
    let (status, json) = app
        .send(ACME_KEY, json!({"to": ["0033 6 12 34 56 78", "06 12 34 56 78", "+1 555 555 5555", "+44 7400 123456"], "from": "ACME", "body": "Hi", "category": "transactional"}))
        .await;
    assert_eq!(status, 200);
    let r = json["results"].as_array().unwrap();
    assert_eq!(
        (r[0]["to"].as_str(), r[0]["status"].as_str()),
        (Some("+33612345678"), Some("sent"))
    );
    assert_eq!(r[1]["status"], "rejected");
    assert_eq!(r[1]["error"]["code"], "invalid_number");
    assert!(r[1]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("international"));
    assert_eq!(r[2]["error"]["code"], "invalid_number");
    assert_eq!(
        (r[3]["to"].as_str(), r[3]["country"].as_str()),
        (Some("+447400123456"), Some("GB"))
    );
    assert_eq!(app.mock.received().len(), 2);
}

/// Italian fixed lines keep their trunk 0 in E.164 (`+39 02 ...`), and the
/// Vatican shares +39 (06 698 ...): both have a country, so marketing to
/// them gets a footer instead of "does not belong to a country".
#[tokio::test]
async fn italian_and_vatican_fixed_lines_are_sent_with_their_country() {
    let app = spawn_app().await;
    let (status, json) = app
        .send(
            ACME_KEY,
            json!({"to": ["+39 02 1234 5678", "+39 06 698 12345"], "from": "ACME", "body": "Saldi"}),
        )
        .await;
    assert_eq!(status, 200, "{json}");
    let r = json["results"].as_array().unwrap();
    for (r, to, country, footer) in [
        (&r[0], "+390212345678", "IT", "Disiscriviti: "),
        (&r[1], "+390669812345", "VA", "Disiscriviti: "),
    ] {
        assert_eq!(r["status"], "sent", "{r}");
        assert_eq!(
            (r["to"].as_str(), r["country"].as_str()),
            (Some(to), Some(country)),
            "{r}"
        );
        let url = r["optout"]["url"].as_str().expect("a link country");
        assert_eq!(r["body"], format!("Saldi\n{footer}{url}"));
        let got = app.mock.received_for(to);
        assert_eq!(got.len(), 1, "{to} reaches the provider in E.164");
        assert_eq!(got[0]["body"], r["body"]);
    }
}

#[tokio::test]
async fn segment_counts_follow_gsm7_and_ucs2() {
    let app = spawn_app().await;
    let exactly_160 = "a".repeat(160);
    let r = app
        .send_one(ACME_KEY, json!({"to": "+33612345678", "from": "ACME", "body": exactly_160, "category": "transactional"}))
        .await;
    assert_eq!(
        (r["encoding"].as_str(), r["segments"].as_u64()),
        (Some("gsm7"), Some(1))
    );
    // The same body as marketing: the footer pushes it to two parts.
    let r = app
        .send_one(
            ACME_KEY,
            json!({"to": "+33612345678", "from": "ACME", "body": exactly_160}),
        )
        .await;
    assert_eq!(
        (r["encoding"].as_str(), r["segments"].as_u64()),
        (Some("gsm7"), Some(2))
    );
    // Extension characters count twice: 80 euro signs fill one part.
    let r = app
        .send_one(ACME_KEY, json!({"to": "+33612345678", "from": "ACME", "body": "€".repeat(80), "category": "otp"}))
        .await;
    assert_eq!(
        (r["encoding"].as_str(), r["segments"].as_u64()),
        (Some("gsm7"), Some(1))
    );
    // UCS-2: 70 per single part; the footer (GSM-7 itself) adds units, not a new encoding.
    let cyrillic = "Скидки".repeat(10); // 60 units
    let r = app
        .send_one(
            ACME_KEY,
            json!({"to": "+447400123456", "from": "ACME", "body": cyrillic, "category": "otp"}),
        )
        .await;
    assert_eq!(
        (r["encoding"].as_str(), r["segments"].as_u64()),
        (Some("ucs2"), Some(1))
    );
    let r = app
        .send_one(
            ACME_KEY,
            json!({"to": "+447400123456", "from": "ACME", "body": cyrillic}),
        )
        .await;
    // 60 + newline + 29-char footer = 90 units: two UCS-2 parts.
    assert_eq!(
        (r["encoding"].as_str(), r["segments"].as_u64()),
        (Some("ucs2"), Some(2))
    );
}

#[tokio::test]
async fn the_footer_is_not_appended_twice() {
    let app = spawn_app().await;
    let body = "Sale!\nSTOP au 36111";
    let r = app
        .send_one(
            ACME_KEY,
            json!({"to": "+33612345678", "from": "ACME", "body": body}),
        )
        .await;
    assert_eq!(r["body"], body);
}

#[tokio::test]
async fn a_tenant_can_override_the_footer() {
    let app = spawn_app_with(|c| {
        c.tenants[1].footer = Some("{tenant}: STOP {shortcode}".into());
        c.tenants[1].link_footer = Some("Unsubscribe: {url}".into());
    })
    .await;
    let r = app
        .send_one(
            BETA_KEY,
            json!({"to": "+33612345678", "from": "BETA", "body": "Taux"}),
        )
        .await;
    assert_eq!(r["body"], "Taux\nBeta Bank: STOP 36111");
    let r = app
        .send_one(
            BETA_KEY,
            json!({"to": "+12125550123", "from": "BETA", "body": "Rates"}),
        )
        .await;
    assert_eq!(
        r["body"],
        format!(
            "Rates\nUnsubscribe: {}",
            r["optout"]["url"].as_str().unwrap()
        )
    );
}

#[tokio::test]
async fn a_reference_makes_a_retry_idempotent() {
    let app = spawn_app().await;
    let body = json!({"to": ["+33612345678", "+12125550123"], "from": "ACME", "body": "Sale", "reference": "order-42"});
    let (s1, first) = app.send(ACME_KEY, body.clone()).await;
    let (s2, second) = app.send(ACME_KEY, body.clone()).await;
    assert_eq!((s1.as_u16(), s2.as_u16()), (200, 200));
    assert_eq!(first, second, "a retry returns the first answer");
    assert_eq!(app.mock.received().len(), 2, "and sends nothing again");

    // The same reference for another request is refused; another tenant's reference space is its own.
    let mut changed = body.clone();
    changed["body"] = json!("Other sale");
    let (s3, err) = app.send(ACME_KEY, changed).await;
    assert_eq!(s3, 422);
    assert_eq!(err["error"]["code"], "reference_reused");
    let (s4, _) = app.send(BETA_KEY, body).await;
    assert_eq!(s4, 200);
    assert_eq!(app.mock.received().len(), 4);
}

#[tokio::test]
async fn provider_errors_are_per_recipient_failures_not_500s() {
    let app = spawn_app().await;
    // The rate limit comes last: its Retry-After pauses sending.
    for (behaviour, code) in [
        (Behaviour::Status(500), "upstream_unavailable"),
        (Behaviour::Status(400), "upstream_rejected"),
        (
            Behaviour::Delay(std::time::Duration::from_millis(1500)),
            "upstream_timeout",
        ),
        (Behaviour::RateLimited(3), "upstream_rate_limited"),
    ] {
        app.mock.set(behaviour.clone());
        let (status, json) = app
            .send(ACME_KEY, json!({"to": "+12125550123", "from": "ACME", "body": "Hi", "category": "transactional"}))
            .await;
        assert_eq!(status, 200, "{behaviour:?}");
        let r = &json["results"][0];
        assert_eq!(r["status"], "failed", "{behaviour:?}");
        assert_eq!(r["error"]["code"], code, "{behaviour:?}");
        assert_eq!(json["summary"]["failed"], 1);
    }
}

#[tokio::test]
async fn an_unreachable_provider_is_a_per_recipient_failure() {
    let app = spawn_app_with(|c| c.upstream.url = "http://127.0.0.1:9/messages".into()).await;
    let r = app
        .send_one(
            ACME_KEY,
            json!({"to": "+12125550123", "from": "ACME", "body": "Hi"}),
        )
        .await;
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["code"], "upstream_unavailable");
}

#[tokio::test]
async fn a_batch_of_1000_recipients_gets_1000_results_in_order() {
    let app = spawn_app().await;
    let to: Vec<String> = (0..1000).map(|i| format!("+1212555{:04}", i)).collect();
    let (status, json) = app
        .send(
            ACME_KEY,
            json!({"to": to, "from": "ACME", "body": "Deals", "campaign": "big"}),
        )
        .await;
    assert_eq!(status, 200);
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), 1000);
    for (r, n) in results.iter().zip(&to) {
        assert_eq!(&r["to"], n.as_str());
    }
    assert_eq!(json["summary"]["sent"], 1000);
    assert_eq!(app.mock.received().len(), 1000);
}
