//! The Twilio-compatible front: `POST /2010-04-01/Accounts/{sid}/Messages.json`,
//! over raw HTTP and through the official Twilio Python SDK.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use stopgate::config::{Secret, TwilioFrontConfig, UpstreamKind};

use crate::helpers::*;
use crate::mocks::{ProviderMock, Reply};

const ACME_SID: &str = "AC0123456789abcdef0123456789abcdef";
const ACME_TOKEN: &str = "acme-twilio-auth-token";
const SERVICE: &str = "MG0123456789abcdef0123456789abcdef";
const OPTED_OUT: &str = "+33698765432";

fn front_config() -> TwilioFrontConfig {
    TwilioFrontConfig {
        account_sid: ACME_SID.into(),
        auth_token: Some(Secret(ACME_TOKEN.into())),
        auth_token_sha256: None,
        categories: BTreeMap::from([
            ("ACMEOTP".into(), "otp".into()),
            (SERVICE.into(), "transactional".into()),
        ]),
        senders: BTreeMap::from([(SERVICE.into(), "ACME".into())]),
    }
}

/// The Twilio account that owns the short codes signs its webhooks with this.
const WEBHOOK_TOKEN: &str = "owner-account-auth-token";

async fn spawn_front() -> TestApp {
    spawn_app_with(|c| {
        c.tenants[0].twilio = Some(front_config());
        c.inbound.twilio_auth_token = Secret(WEBHOOK_TOKEN.into());
    })
    .await
}

fn url(app: &TestApp, sid: &str) -> String {
    format!("{}/2010-04-01/Accounts/{sid}/Messages.json", app.api)
}

/// A form POST as the Twilio SDKs send it.
async fn post(
    app: &TestApp,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .post(url(app, ACME_SID))
        .basic_auth(ACME_SID, Some(ACME_TOKEN))
        .form(form);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    (resp.status(), resp.json().await.unwrap_or(Value::Null))
}

fn assert_twilio_error(status: StatusCode, body: &Value, http: u16, code: u32) {
    assert_eq!(status.as_u16(), http, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], http);
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn marketing_gets_the_footer_and_twilios_message_resource() {
    let app = spawn_front().await;
    let (status, m) = post(
        &app,
        &[
            ("To", "+33 6 12 34 56 78"),
            ("From", "ACME"),
            ("Body", "Soldes !"),
        ],
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    let sid = m["sid"].as_str().unwrap();
    assert!(sid.starts_with("SM") && sid.len() == 34, "{sid}");
    assert_eq!(m["account_sid"], ACME_SID);
    assert_eq!(m["to"], "+33612345678");
    assert_eq!(m["from"], "ACME");
    assert_eq!(m["body"], "Soldes !\nSTOP au 36111");
    assert_eq!(m["status"], "queued");
    assert_eq!(m["num_segments"], "1", "a string, as Twilio sends it");
    assert_eq!(m["num_media"], "0");
    assert_eq!(m["direction"], "outbound-api");
    assert_eq!(m["api_version"], "2010-04-01");
    assert_eq!(m["error_code"], Value::Null);
    assert_eq!(m["price"], Value::Null);
    assert_eq!(m["messaging_service_sid"], Value::Null);
    assert_eq!(
        m["uri"],
        format!("/2010-04-01/Accounts/{ACME_SID}/Messages/{sid}.json")
    );
    // RFC 2822 in GMT, like "Tue, 26 Jul 2016 12:50:07 +0000" (the SDK test parses it).
    let date = m["date_created"].as_str().unwrap();
    assert!(
        date.ends_with(" +0000") && date.split(' ').count() == 6 && date.as_bytes()[3] == b',',
        "RFC 2822: {date}"
    );
    let got = app.mock.received_for("+33612345678");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["body"], m["body"]);
}

#[tokio::test]
async fn an_opted_out_recipient_is_twilios_21610_and_nothing_is_sent() {
    let app = spawn_front().await;
    app.suppress("acme", OPTED_OUT).await;
    let (status, e) = post(
        &app,
        &[("To", OPTED_OUT), ("From", "ACME"), ("Body", "Soldes !")],
        &[],
    )
    .await;
    assert_twilio_error(status, &e, 400, 21610);
    assert_eq!(e["more_info"], "https://www.twilio.com/docs/errors/21610");
    assert!(app.mock.received().is_empty());

    // Opt-outs are per tenant, and transactional messages pass.
    let (status, _) = post(
        &app,
        &[("To", OPTED_OUT), ("From", "ACME"), ("Body", "Votre colis")],
        &[("X-Stopgate-Category", "transactional")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn the_category_comes_from_the_header_then_the_sender_or_service_defaults() {
    let app = spawn_front().await;
    let (_, m) = post(
        &app,
        &[
            ("To", "+33612345678"),
            ("From", "ACME"),
            ("Body", "Code: 1234"),
        ],
        &[("X-Stopgate-Category", "otp")],
    )
    .await;
    assert_eq!(m["body"], "Code: 1234", "an OTP is untouched");

    let (_, m) = post(
        &app,
        &[
            ("To", "+33612345678"),
            ("From", "ACMEOTP"),
            ("Body", "Code: 5678"),
        ],
        &[],
    )
    .await;
    assert_eq!(m["body"], "Code: 5678", "the per-sender default");

    // A Messaging Service without From: its configured sender and category.
    let (status, m) = post(
        &app,
        &[
            ("To", "+33612345678"),
            ("MessagingServiceSid", SERVICE),
            ("Body", "Colis"),
        ],
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    assert_eq!(m["body"], "Colis");
    assert_eq!(m["from"], "ACME");
    assert_eq!(m["messaging_service_sid"], SERVICE);
    assert_eq!(m["status"], "accepted");

    // The header wins over the defaults; an unknown category is refused.
    let (_, m) = post(
        &app,
        &[
            ("To", "+33612345678"),
            ("From", "ACMEOTP"),
            ("Body", "Promo"),
        ],
        &[("X-Stopgate-Category", "marketing")],
    )
    .await;
    assert_eq!(m["body"], "Promo\nSTOP au 36111");
    let (status, e) = post(
        &app,
        &[("To", "+33612345678"), ("From", "ACME"), ("Body", "x")],
        &[("X-Stopgate-Category", "promo")],
    )
    .await;
    assert_twilio_error(status, &e, 400, 90001);
}

#[tokio::test]
async fn authentication_failures_are_twilios_20003() {
    let app = spawn_front().await;
    let form = [("To", "+33612345678"), ("From", "ACME"), ("Body", "Hi")];
    let cases = [
        (url(&app, ACME_SID), None),
        (url(&app, ACME_SID), Some((ACME_SID, "wrong-token"))),
        (
            url(&app, "AC99999999999999999999999999999999"),
            Some((ACME_SID, ACME_TOKEN)),
        ),
        (
            url(&app, "AC99999999999999999999999999999999"),
            Some(("AC99999999999999999999999999999999", ACME_TOKEN)),
        ),
    ];
    for (u, creds) in cases {
        let mut req = app.client.post(&u).form(&form);
        if let Some((user, pass)) = creds {
            req = req.basic_auth(user, Some(pass));
        }
        let resp = req.send().await.unwrap();
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Basic realm=\"Twilio API\""
        );
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_twilio_error(status, &body, 401, 20003);
    }
    // The tenant's Bearer API key is not a Twilio credential.
    let resp = app
        .client
        .post(url(&app, ACME_SID))
        .bearer_auth(ACME_KEY)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(app.mock.received().is_empty());
}

#[tokio::test]
async fn bad_input_gets_twilios_error_codes_never_a_500() {
    let app = spawn_front().await;
    let cases: [(&[(&str, &str)], u32); 7] = [
        (
            &[("To", "+3361234"), ("From", "ACME"), ("Body", "Hi")],
            21211,
        ),
        (
            &[("To", "0612345678"), ("From", "ACME"), ("Body", "Hi")],
            21211,
        ),
        (&[("From", "ACME"), ("Body", "Hi")], 21604),
        (&[("To", "+33612345678"), ("From", "ACME")], 21602),
        (&[("To", "+33612345678"), ("Body", "Hi")], 21603),
        (
            &[
                ("To", "+33612345678"),
                ("From", "ACME SHOP LIMITED"),
                ("Body", "Hi"),
            ],
            21212,
        ),
        (
            &[
                ("To", "+33612345678"),
                ("MessagingServiceSid", "MGnope"),
                ("Body", "Hi"),
            ],
            21701,
        ),
    ];
    for (form, code) in cases {
        let (status, e) = post(&app, form, &[]).await;
        assert_twilio_error(status, &e, 400, code);
    }
    let long = "x".repeat(1601);
    let (status, e) = post(
        &app,
        &[("To", "+33612345678"), ("From", "ACME"), ("Body", &long)],
        &[],
    )
    .await;
    assert_twilio_error(status, &e, 400, 21617);

    // Garbage bodies are just missing fields.
    let resp = app
        .client
        .post(url(&app, ACME_SID))
        .basic_auth(ACME_SID, Some(ACME_TOKEN))
        .header("content-type", "application/octet-stream")
        .body(vec![0xff_u8, 0xfe, 0x00, b'&', b'='])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(app.mock.received().is_empty());
}

#[tokio::test]
async fn provider_trouble_gets_twilios_retryable_errors() {
    let mock = ProviderMock::start(
        Reply::json(
            429,
            json!({"code": 20429, "message": "slow down", "status": 429}),
        )
        .with_header("retry-after", "7"),
    )
    .await;
    let url = mock.base_url();
    let app = spawn_app_with(move |c| {
        c.tenants[0].twilio = Some(front_config());
        c.upstream.kind = UpstreamKind::Twilio;
        c.upstream.url = url;
        c.upstream.account_sid = "AC00000000000000000000000000000001".into();
        c.upstream.auth_token = Secret("upstream".into());
    })
    .await;
    let form = [("To", "+12125550123"), ("From", "ACME"), ("Body", "Hi")];
    let resp = app
        .client
        .post(url_for(&app))
        .basic_auth(ACME_SID, Some(ACME_TOKEN))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["code"], 20429);

    // Behind a Twilio upstream, Twilio's own refusal passes through unchanged.
    let app = {
        let mock = ProviderMock::start(Reply::json(
            400,
            json!({"code": 21408, "message": "Permission to send an SMS has not been enabled for the region", "status": 400}),
        ))
        .await;
        let url = mock.base_url();
        spawn_app_with(move |c| {
            c.tenants[0].twilio = Some(front_config());
            c.upstream.kind = UpstreamKind::Twilio;
            c.upstream.url = url;
            c.upstream.account_sid = "AC00000000000000000000000000000001".into();
            c.upstream.auth_token = Secret("upstream".into());
        })
        .await
    };
    let (status, e) = post(&app, &form, &[]).await;
    assert_twilio_error(status, &e, 400, 21408);
}

fn url_for(app: &TestApp) -> String {
    url(app, ACME_SID)
}

/// The official `twilio` package from PyPI, in the virtualenv that
/// `scripts/install-test-deps.sh` makes.
pub fn sdk_python() -> std::path::PathBuf {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run ./scripts/install-test-deps.sh (./scripts/test.sh does)",
        p.display()
    );
    p
}

#[tokio::test]
async fn the_official_twilio_python_sdk_works_unchanged() {
    let app = spawn_front().await;
    app.suppress("acme", OPTED_OUT).await;
    // Twilio signs the URL set in its console: our public_base_url, as seen
    // through the operator's TLS proxy, not the loopback address.
    let sign_url = format!("{BASE_URL}/inbound/twilio");
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(sdk_python())
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/sdk/twilio_sdk.py"
            ))
            .env("STOPGATE_URL", &app.api)
            .env("ACCOUNT_SID", ACME_SID)
            .env("AUTH_TOKEN", ACME_TOKEN)
            .env("WEBHOOK_TOKEN", WEBHOOK_TOKEN)
            .env("OPTED_OUT", OPTED_OUT)
            .env("SIGN_URL", &sign_url)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .output(),
    )
    .await
    .expect("the SDK script finishes")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "SDK script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cases: BTreeMap<String, Value> = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("one JSON object per line"))
        .map(|v| (v["case"].as_str().unwrap().to_string(), v))
        .collect();

    let m = &cases["marketing"];
    assert_eq!(m["body"], "Soldes -50% ce week-end !\nSTOP au 36111", "{m}");
    assert_eq!(m["status"], "queued");
    assert_eq!(m["num_segments"], "1");
    assert_eq!(m["account_sid"], ACME_SID);
    assert_eq!(m["direction"], "outbound-api");
    assert_eq!(m["date_created_parsed"], true, "the SDK parsed our date");
    assert!(m["sid"].as_str().unwrap().starts_with("SM"));

    let e = &cases["opted_out"]["error"];
    assert_eq!(
        e["code"], 21610,
        "TwilioRestException with Twilio's code: {e}"
    );
    assert_eq!(e["status"], 400);

    assert_eq!(cases["otp_header"]["body"], "Your code: 482913");
    assert_eq!(cases["otp_sender_default"]["body"], "Your code: 771234");
    assert_eq!(cases["invalid_to"]["error"]["code"], 21211);

    // fetch(), list() and stream() read stopgate's message records.
    let f = &cases["fetch"];
    assert_eq!(f["sid"], m["sid"], "{f}");
    assert_eq!(
        (f["status"].as_str(), f["to"].as_str()),
        (Some("sent"), Some("+33612345678"))
    );
    assert_eq!(
        (f["from"].as_str(), f["num_segments"].as_str()),
        (Some("ACME"), Some("1"))
    );
    assert_eq!(f["date_created_parsed"], true);
    assert_eq!(
        cases["fetch_unknown"]["error"]["code"], 20404,
        "{}",
        cases["fetch_unknown"]
    );
    assert_eq!(cases["fetch_unknown"]["error"]["status"], 404);
    let listed = cases["list"]["messages"].as_array().unwrap();
    assert_eq!(listed.len(), 5, "every recipient has a record: {listed:?}");
    assert_eq!(
        listed[4]["sid"], m["sid"],
        "newest first; the marketing one was first sent"
    );
    let blocked = listed.iter().find(|l| l["to"] == OPTED_OUT).unwrap();
    assert_eq!(
        (blocked["status"].as_str(), blocked["error_code"].as_i64()),
        (Some("failed"), Some(21610))
    );
    let invalid = listed.iter().find(|l| l["to"] == "+3361234").unwrap();
    assert_eq!(
        (invalid["status"].as_str(), invalid["error_code"].as_i64()),
        (Some("failed"), Some(21211))
    );
    let streamed: Vec<&Value> = cases["stream"]["sids"].as_array().unwrap().iter().collect();
    let listed_sids: Vec<&Value> = listed.iter().map(|l| &l["sid"]).collect();
    assert_eq!(
        streamed, listed_sids,
        "stream() pages (2 a page) give the same messages"
    );
    assert_eq!(
        cases["list_to"]["sids"].as_array().unwrap(),
        &[blocked["sid"].clone()]
    );

    let sent = app.mock.received();
    assert_eq!(
        sent.len(),
        3,
        "marketing and two OTPs; nothing to the opted-out number"
    );
    assert!(app.mock.received_for(OPTED_OUT).is_empty());

    // The SDK's RequestValidator signature is accepted; a wrong one is not.
    let s = &cases["signature"];
    assert_eq!(s["url"], sign_url);
    let params: Vec<(String, String)> = s["params"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let sig = s["signature"].as_str().unwrap();
    use stopgate::http::twilio::signature::validate;
    assert!(validate(WEBHOOK_TOKEN, &sign_url, &params, sig));
    assert!(!validate("another-token", &sign_url, &params, sig));
    let mut tampered = params.clone();
    tampered.iter_mut().find(|(k, _)| k == "Body").unwrap().1 = "START".into();
    assert!(!validate(WEBHOOK_TOKEN, &sign_url, &tampered, sig));
    assert!(!validate(
        WEBHOOK_TOKEN,
        &sign_url,
        &params,
        "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
    ));

    // Over the wire: a tampered or wrong signature is refused and changes nothing...
    let webhook = format!("{}/inbound/twilio", app.public);
    for (form, signature) in [(&tampered, sig), (&params, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")] {
        let r = app
            .client
            .post(&webhook)
            .header("x-twilio-signature", signature)
            .form(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    assert!(
        !app.is_suppressed("acme", "+33612345678").await,
        "a refused webhook changed nothing"
    );
    // ...and the SDK-signed STOP opts the number out, answering TwiML with the
    // confirmation, which Twilio then sends from the short code.
    let r = app
        .client
        .post(&webhook)
        .header("x-twilio-signature", sig)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/xml"));
    let xml = r.text().await.unwrap();
    assert!(
        xml.contains("<Response><Message>ACME Shop : vous ne recevrez plus de SMS marketing"),
        "{xml}"
    );
    assert!(app.is_suppressed("acme", "+33612345678").await);
    assert_eq!(
        app.mock.received().len(),
        3,
        "the confirmation went back in TwiML, not through the upstream"
    );
}

/// HTTP clients differ in how they spell the scheme; RFC 9110 makes it
/// case-insensitive, so `basic`/`BASIC` are Twilio credentials too.
#[tokio::test]
async fn the_basic_scheme_is_accepted_in_any_case() {
    use base64::prelude::{Engine, BASE64_STANDARD};
    let app = spawn_front().await;
    let creds = BASE64_STANDARD.encode(format!("{ACME_SID}:{ACME_TOKEN}"));
    let form = [
        ("To", "+33612345678"),
        ("From", "ACMEOTP"),
        ("Body", "Code 1234"),
    ];
    for scheme in ["Basic", "basic", "BASIC", "bAsIc"] {
        let resp = app
            .client
            .post(url(&app, ACME_SID))
            .header("authorization", format!("{scheme} {creds}"))
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 201, "{scheme}: {body}");
        assert_eq!(body["status"], "queued", "{body}");
    }
    assert_eq!(app.mock.received_for("+33612345678").len(), 4);
    let resp = app
        .client
        .post(url(&app, ACME_SID))
        .header("authorization", format!("Basically {creds}"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    assert_twilio_error(status, &resp.json().await.unwrap(), 401, 20003);
}
