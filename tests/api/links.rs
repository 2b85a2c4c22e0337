//! The opt-out link pages: `GET|HEAD|POST /{code}` on the public listener.

use reqwest::header;
use serde_json::json;
use stopgate::domain::{Action, Source};

use crate::helpers::*;

/// Sends one marketing message and returns the link code in its footer.
async fn link_for(app: &TestApp, key: &str, to: &str, campaign: Option<&str>) -> String {
    let mut body = json!({"to": to, "from": "SHOP", "body": "Deals"});
    if let Some(c) = campaign {
        body["campaign"] = json!(c);
    }
    let r = app.send_one(key, body).await;
    assert_eq!(r["optout"]["method"], "url", "{r}");
    let url = r["optout"]["url"].as_str().unwrap();
    url.rsplit('/').next().unwrap().to_string()
}

async fn get(
    app: &TestApp,
    code: &str,
    accept_language: Option<&str>,
) -> (u16, String, header::HeaderMap) {
    let mut req = app.client.get(format!("{}/{code}", app.public));
    if let Some(l) = accept_language {
        req = req.header(header::ACCEPT_LANGUAGE, l);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.text().await.unwrap(), headers)
}

async fn post(app: &TestApp, code: &str, form: &str) -> (u16, String) {
    let resp = app
        .client
        .post(format!("{}/{code}", app.public))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form.to_string())
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn get_leaves_the_number_subscribed_and_post_suppresses_it() {
    let app = spawn_app().await;
    let n = "+12125550123";
    let code = link_for(&app, ACME_KEY, n, Some("bf-2026")).await;

    let (status, html, headers) = get(&app, &code, None).await;
    assert_eq!(status, 200);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert!(headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    assert!(html.contains("<html lang=\"en\">"), "{html}");
    assert!(html.contains("ACME Shop"));
    assert!(html.contains("+1 2•• ••• ••23"), "masked number shown");
    assert!(!html.contains("5550123"), "the full number never appears");
    assert_eq!(html.matches("<form method=\"post\"").count(), 1);
    assert_eq!(html.matches("<button").count(), 1, "one button");
    assert_eq!(html.matches("type=\"radio\" name=\"reason\"").count(), 4);
    for reason in ["not_interested", "too_many", "never_signed_up", "other"] {
        assert!(html.contains(&format!("value=\"{reason}\"")), "{reason}");
    }
    assert!(!html.to_lowercase().contains("<script"));
    assert!(html.len() < 8 * 1024, "{} bytes", html.len());

    // HEAD and repeated GETs (link scanners, SMS app previews) change nothing.
    let head = app
        .client
        .head(format!("{}/{code}", app.public))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.bytes().await.unwrap().is_empty());
    get(&app, &code, None).await;
    assert!(!app.blocked(ACME_KEY, n).await, "GET must not opt out");

    let (status, done) = post(&app, &code, "reason=too_many").await;
    assert_eq!(status, 200);
    assert!(done.contains("You are unsubscribed"), "{done}");
    assert!(done.contains("ACME Shop"));
    assert!(
        app.blocked(ACME_KEY, n).await,
        "the marketing send afterwards is blocked"
    );
    assert!(
        !app.blocked(BETA_KEY, n).await,
        "another tenant is not affected"
    );

    let events = app.events("acme", n).await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!((e.action, e.source), (Action::OptOut, Source::Link));
    assert_eq!(e.campaign.as_ref().map(|c| c.as_str()), Some("bf-2026"));
    assert_eq!(e.reason.as_deref(), Some("too_many"));

    // Idempotent: again, the same page, no second event.
    let (status, again) = post(&app, &code, "reason=other").await;
    assert_eq!(status, 200);
    assert!(again.contains("You are unsubscribed"));
    assert_eq!(app.events("acme", n).await.len(), 1);
}

#[tokio::test]
async fn the_reason_is_optional_and_any_body_still_opts_out() {
    let app = spawn_app().await;
    let bodies: [(&str, Vec<u8>); 5] = [
        ("application/x-www-form-urlencoded", b"".to_vec()),
        (
            "application/x-www-form-urlencoded",
            b"reason=<script>alert(1)</script>".to_vec(),
        ),
        ("application/json", br#"{"reason": "too_many"}"#.to_vec()),
        (
            "application/octet-stream",
            vec![0xff, 0x00, 0xfe, 0x26, 0x3d],
        ),
        ("application/x-www-form-urlencoded", vec![b'a'; 100_000]),
    ];
    for (i, (ct, body)) in bodies.into_iter().enumerate() {
        let n = format!("+1212555{:04}", 100 + i);
        let code = link_for(&app, BETA_KEY, &n, None).await;
        let resp = app
            .client
            .post(format!("{}/{code}", app.public))
            .header(header::CONTENT_TYPE, ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{ct}");
        assert!(app.blocked(BETA_KEY, &n).await, "{ct}");
        let e = &app.events("beta", &n).await[0];
        assert_eq!(e.reason, None, "only our reason codes are kept");
    }
}

#[tokio::test]
async fn the_page_speaks_the_recipients_language_then_the_browsers() {
    // No shared French or Dutch code here, so those countries get links too.
    let app = spawn_app_with(|c| {
        c.shortcodes.remove("FR");
    })
    .await;
    let cases = [
        // (tenant key, number, Accept-Language, lang, button)
        (
            ACME_KEY,
            "+33612345678",
            Some("en-US,en;q=0.9"),
            "fr",
            "Me désinscrire",
        ),
        (BETA_KEY, "+4915123456789", None, "de", "Abmelden"),
        (BETA_KEY, "+31612345678", Some("fr"), "nl", "Afmelden"),
        (BETA_KEY, "+32470123456", None, "fr", "Me désinscrire"),
        (
            BETA_KEY,
            "+32470123457",
            Some("nl-BE,nl;q=0.9,fr;q=0.8"),
            "nl",
            "Afmelden",
        ),
        (ACME_KEY, "+393471234567", Some("en"), "it", "Disiscrivimi"),
        (
            ACME_KEY,
            "+12125550123",
            Some("nl-NL,nl;q=0.9,en;q=0.5"),
            "nl",
            "Afmelden",
        ),
        (ACME_KEY, "+12125550124", Some("de-AT"), "de", "Abmelden"),
        (
            ACME_KEY,
            "+12125550125",
            Some("es-ES, ja"),
            "es",
            "Darme de baja",
        ),
        (
            ACME_KEY,
            "+12125550126",
            Some("uk-UA, eo"),
            "en",
            "Unsubscribe",
        ),
        (ACME_KEY, "+436641234567", None, "de", "Abmelden"),
    ];
    for (key, n, accept, lang, button) in cases {
        let code = link_for(&app, key, n, None).await;
        let (status, html, headers) = get(&app, &code, accept).await;
        assert_eq!(status, 200);
        assert!(
            html.contains(&format!("<html lang=\"{lang}\">")),
            "{n} {accept:?}: {html}"
        );
        assert_eq!(headers[header::CONTENT_LANGUAGE], lang);
        assert!(html.contains(&format!(">{button}</button>")), "{n}: {html}");
    }
}

#[tokio::test]
async fn everything_shown_is_escaped() {
    let app = spawn_app_with(|c| c.tenants[1].name = "Tom & Jerry <Deals>\"".into()).await;
    let code = link_for(&app, BETA_KEY, "+12125550123", None).await;
    let (_, html, _) = get(&app, &code, None).await;
    assert!(
        html.contains("Tom &amp; Jerry &lt;Deals&gt;&quot;"),
        "{html}"
    );
    assert!(!html.contains("<Deals>"));
    let (_, done) = post(&app, &code, "").await;
    assert!(done.contains("Tom &amp; Jerry &lt;Deals&gt;"));
}

#[tokio::test]
async fn an_unknown_code_is_a_404_page_that_says_how_else_to_opt_out() {
    let app = spawn_app().await;
    for path in [
        "ZZZZZZZZ",
        "abc",
        "aB3dE5gH",
        "favicon.ico",
        "%E2%82%AC%00",
        "12345678",
    ] {
        let (status, html, headers) = get(&app, path, None).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(html.contains("reply STOP"), "{html}");
        assert!(html.contains("contact the sender"));
    }
    let (status, html, _) = get(&app, "ZZZZZZZZ", Some("fr-FR,fr")).await;
    assert_eq!(status, 404);
    assert!(html.contains("répondez STOP"), "{html}");
    let (status, _) = post(&app, "ZZZZZZZZ", "reason=other").await;
    assert_eq!(status, 404);
    // JSON routes on the same listener keep the JSON error shape.
    let resp = app
        .client
        .get(format!("{}/v1/nothing/here", app.public))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let err: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "not_found");
}

#[tokio::test]
async fn too_many_requests_from_one_client_get_429_with_retry_after() {
    let app = spawn_app_with(|c| {
        c.ratelimit.per_minute = 1;
        c.ratelimit.burst = 3;
    })
    .await;
    let code = link_for(&app, ACME_KEY, "+12125550123", None).await;
    for _ in 0..3 {
        let (status, _, _) = get(&app, &code, None).await;
        assert_eq!(status, 200);
    }
    let (status, html, headers) = get(&app, "ZZZZZZZZ", Some("de")).await;
    assert_eq!(
        status, 429,
        "unknown codes count too: that is what enumeration looks like"
    );
    let retry: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(html.contains("Zu viele Anfragen"), "{html}");
    assert_eq!(post(&app, &code, "").await.0, 429);
    assert!(
        !app.blocked(ACME_KEY, "+12125550123").await,
        "a limited POST changed nothing"
    );
    // A forwarded-for header from an untrusted peer is not a way out.
    let resp = app
        .client
        .get(format!("{}/{code}", app.public))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    // Other routes are not limited.
    let health = app
        .client
        .get(format!("{}/healthz", app.public))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let app = spawn_app_with(|c| {
        c.ratelimit.per_minute = 1;
        c.ratelimit.burst = 1;
        c.ratelimit.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let code = link_for(&app, ACME_KEY, "+12125550123", None).await;
    let get_as = |client: &'static str| {
        let req = app
            .client
            .get(format!("{}/{code}", app.public))
            .header("x-forwarded-for", client);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get_as("203.0.113.1").await, 200);
    assert_eq!(get_as("203.0.113.1").await, 429);
    assert_eq!(get_as("203.0.113.2").await, 200);
    assert_eq!(get_as("2001:db8::1").await, 200);
    assert_eq!(
        get_as("2001:db8::2").await,
        429,
        "one IPv6 /64 is one client"
    );
}

#[tokio::test]
async fn a_link_opened_after_its_opt_out_says_you_are_unsubscribed() {
    let app = spawn_app().await;
    let n = "+12125550123";
    let path = "/v1/suppressions/%2B12125550123";
    let code = link_for(&app, ACME_KEY, n, Some("bf-2026")).await;
    let beta_code = link_for(&app, BETA_KEY, n, None).await;
    let (_, html, _) = get(&app, &code, None).await;
    assert_eq!(html.matches("<button").count(), 1, "subscribed: the form");

    // Opted out some other way (here the API; a STOP or an import alike).
    let (status, _) = app
        .call(
            reqwest::Method::PUT,
            ACME_KEY,
            path,
            Some(json!({"reason": "asked by phone"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, html, headers) = get(&app, &code, None).await;
    assert_eq!(status, 200);
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert!(html.contains("You are unsubscribed"), "{html}");
    assert!(html.contains("ACME Shop") && html.contains("+1 2•• ••• ••23"));
    assert!(
        !html.contains("<form") && !html.contains("<button"),
        "{html}"
    );
    let head = app
        .client
        .head(format!("{}/{code}", app.public))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        app.events("acme", n).await.len(),
        1,
        "GET and HEAD recorded nothing"
    );
    // Per tenant: the other tenant's link still offers the button.
    let (_, html, _) = get(&app, &beta_code, None).await;
    assert_eq!(html.matches("<button").count(), 1, "{html}");

    // Re-subscribed (with proof): the form is back, read live.
    let (status, _) = app
        .call(
            reqwest::Method::DELETE,
            ACME_KEY,
            path,
            Some(json!({"proof": "signed form 8812"})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, html, _) = get(&app, &code, None).await;
    assert_eq!(html.matches("<button").count(), 1, "{html}");

    // The link's own opt-out, then the link opened again: the done state,
    // in the recipient's language.
    let es = "+34612345678";
    let code = link_for(&app, BETA_KEY, es, None).await;
    assert_eq!(post(&app, &code, "").await.0, 200);
    let (status, html, _) = get(&app, &code, Some("en")).await;
    assert_eq!(status, 200);
    assert!(html.contains("<html lang=\"es\">"), "{html}");
    assert!(html.contains("Se ha dado de baja"), "{html}");
    assert!(!html.contains("<button"));
    assert_eq!(app.events("beta", es).await.len(), 1);
}
