//! Upstream adapters against loopback mocks of Twilio, CM.com and Vonage:
//! the exact request each provider documents, its answers and error codes
//! mapped onto per-recipient results, 429 / Retry-After, timeouts, and the
//! resilience layer (circuit breaker, global concurrency bound).

use std::time::Duration;

use base64::prelude::{Engine, BASE64_STANDARD};
use serde_json::{json, Value};
use stopgate::config::{Config, Secret, UpstreamKind};

use crate::helpers::*;
use crate::mocks::{ProviderMock, Reply};

pub const TWILIO_SID: &str = "AC00000000000000000000000000000001";
pub const TWILIO_TOKEN: &str = "twilio-auth-token";
const CM_TOKEN: &str = "00000000-0000-0000-0000-00000000cafe";
const VONAGE_KEY: &str = "vonage-key";
const VONAGE_SECRET: &str = "vonage-secret";

pub async fn app_with(
    kind: UpstreamKind,
    mock: &ProviderMock,
    extra: impl FnOnce(&mut Config),
) -> TestApp {
    let url = mock.base_url();
    spawn_app_with(move |c| {
        c.upstream.kind = kind;
        c.upstream.url = url;
        c.upstream.account_sid = TWILIO_SID.into();
        c.upstream.auth_token = Secret(TWILIO_TOKEN.into());
        c.upstream.product_token = Secret(CM_TOKEN.into());
        c.upstream.api_key = VONAGE_KEY.into();
        c.upstream.api_secret = Secret(VONAGE_SECRET.into());
        extra(c);
    })
    .await
}

/// One transactional message (no footer) to `to`; returns its result.
pub async fn send(app: &TestApp, to: &str, body: &str) -> Value {
    app.send_one(
        ACME_KEY,
        json!({"to": to, "from": "ACME", "body": body, "category": "transactional"}),
    )
    .await
}

pub fn twilio_created() -> Reply {
    Reply::json(
        201,
        json!({"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued", "num_segments": "1"}),
    )
}

pub fn cm_accepted(reference: &str) -> Reply {
    Reply::json(
        200,
        json!({"details": "Created 1 message(s)", "errorCode": 0, "messages": [
            {"to": "0033612345678", "status": "Accepted", "reference": reference, "parts": 1,
             "messageDetails": null, "messageErrorCode": 0}]}),
    )
}

pub fn vonage_ok(ids: &[&str]) -> Reply {
    let messages: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"to": "33612345678", "message-id": id, "status": "0",
                         "remaining-balance": "3.14", "message-price": "0.03", "network": "20801"})
        })
        .collect();
    Reply::json(
        200,
        json!({"message-count": ids.len().to_string(), "messages": messages}),
    )
}

fn assert_failed(r: &Value, code: &str) {
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["code"], code, "{r}");
}

// ---------------------------------------------------------------- Twilio

#[tokio::test]
async fn twilio_gets_its_documented_request_and_its_sid_is_the_provider_id() {
    let mock = ProviderMock::start(twilio_created()).await;
    let app = app_with(UpstreamKind::Twilio, &mock, |_| {}).await;
    let r = app
        .send_one(
            ACME_KEY,
            json!({"to": "+33 6 12 34 56 78", "from": "ACME", "body": "Soldes & promos"}),
        )
        .await;
    assert_eq!(r["status"], "sent", "{r}");
    assert_eq!(r["provider_id"], "SM0123456789abcdef0123456789abcdef");

    let got = mock.recorded();
    assert_eq!(got.len(), 1);
    let req = &got[0];
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.path,
        format!("/2010-04-01/Accounts/{TWILIO_SID}/Messages.json")
    );
    assert_eq!(
        req.header("authorization"),
        format!(
            "Basic {}",
            BASE64_STANDARD.encode(format!("{TWILIO_SID}:{TWILIO_TOKEN}"))
        )
    );
    assert_eq!(
        req.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        req.form(),
        vec![
            ("To".to_string(), "+33612345678".to_string()),
            ("From".to_string(), "ACME".to_string()),
            (
                "Body".to_string(),
                "Soldes & promos\nSTOP au 36111".to_string()
            ),
            (
                "StatusCallback".to_string(),
                format!("{BASE_URL}/dlr/twilio")
            ),
        ],
        "the final body, footer included, and where the status callbacks go"
    );
}

#[tokio::test]
async fn twilio_gets_the_configured_messaging_service() {
    let mock = ProviderMock::start(twilio_created()).await;
    let app = app_with(UpstreamKind::Twilio, &mock, |c| {
        c.upstream.messaging_service_sid = "MG0000000000000000000000000000000a".into();
    })
    .await;
    send(&app, "+12125550123", "Hi").await;
    assert_eq!(
        mock.recorded()[0].field("MessagingServiceSid").as_deref(),
        Some("MG0000000000000000000000000000000a")
    );
}

#[tokio::test]
async fn twilio_errors_map_to_per_recipient_results() {
    let mock = ProviderMock::start(Reply::json(
        400,
        json!({"code": 21211, "message": "The 'To' number is not a valid phone number.",
               "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}),
    ))
    .await;
    let app = app_with(UpstreamKind::Twilio, &mock, |_| {}).await;
    let r = send(&app, "+12125550123", "Hi").await;
    assert_failed(&r, "upstream_rejected");
    assert_eq!(r["error"]["provider_code"], "21211");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not a valid phone number"));

    // Bad credentials fail every message alike: the provider is unusable.
    mock.reply([Reply::json(
        401,
        json!({"code": 20003, "message": "Authenticate", "status": 401}),
    )]);
    let r = send(&app, "+12125550123", "Hi").await;
    assert_failed(&r, "upstream_unavailable");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("upstream.auth_token"));
    assert!(
        !r.to_string().contains(TWILIO_TOKEN),
        "secrets never leak into results"
    );
}

#[tokio::test]
async fn a_provider_that_cannot_be_reached_is_unavailable() {
    // Nothing listens on port 9: the connect is retried, then given up.
    let app = spawn_app_with(|c| {
        c.upstream.kind = UpstreamKind::Vonage;
        c.upstream.url = "http://127.0.0.1:9".into();
        c.upstream.api_key = VONAGE_KEY.into();
        c.upstream.api_secret = Secret(VONAGE_SECRET.into());
    })
    .await;
    let r = send(&app, "+12125550123", "Hi").await;
    assert_failed(&r, "upstream_unavailable");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{r}"
    );
}

#[tokio::test]
async fn a_provider_that_comes_up_during_the_connect_retries_gets_the_message_once() {
    for (kind, ok) in each_provider() {
        let (mock, open) = ProviderMock::reserved(ok);
        // Attempts at about 0, 0.1, 0.3, 0.6, 1 and 1.5 s (the backoff grows by 100 ms).
        let app = app_with(kind, &mock, |c| c.upstream.connect_retries = 5).await;
        let sending = tokio::spawn(async move {
            let r = send(&app, "+12125550123", "Hi").await;
            (app, r)
        });
        // The first attempt is refused well before the provider listens.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !sending.is_finished(),
            "{kind:?}: no connect retry happened"
        );
        open();
        let (_app, r) = sending.await.unwrap();
        assert_eq!(r["status"], "sent", "{kind:?}: {r}");
        assert_eq!(mock.count(), 1, "{kind:?}: delivered exactly once");
    }
}

// ---------------------------------------------------------------- CM.com

#[tokio::test]
async fn cm_gets_its_documented_json_with_the_product_token_header() {
    let mock = ProviderMock::start(cm_accepted("placeholder")).await;
    let app = app_with(UpstreamKind::Cm, &mock, |_| {}).await;
    let r = send(&app, "+33612345678", "Votre colis arrive").await;
    assert_eq!(r["status"], "sent", "{r}");
    assert_eq!(
        r["provider_id"], "placeholder",
        "CM's echo of our reference"
    );

    let req = &mock.recorded()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v1.0/message");
    assert_eq!(req.header("x-cm-producttoken"), CM_TOKEN);
    assert_eq!(req.header("content-type"), "application/json");
    assert_eq!(
        req.json(),
        json!({"messages": {"msg": [{
            "allowedChannels": ["SMS"],
            "from": "ACME",
            "to": [{"number": "0033612345678"}],
            "body": {"content": "Votre colis arrive"},
            "reference": r["id"],
            "maximumNumberOfMessageParts": 1
        }]}})
    );
}

#[tokio::test]
async fn cm_gets_dcs_8_for_ucs2_and_the_part_count() {
    let mock = ProviderMock::start(cm_accepted("x")).await;
    let app = app_with(UpstreamKind::Cm, &mock, |_| {}).await;
    let body = "Ваш код подтверждения будет отправлен отдельным сообщением через минуту, спасибо";
    let r = send(&app, "+33612345678", body).await;
    assert_eq!(r["encoding"], "ucs2");
    assert_eq!(r["segments"], 2);
    let msg = &mock.recorded()[0].json()["messages"]["msg"][0];
    assert_eq!(msg["dcs"], 8);
    assert_eq!(msg["maximumNumberOfMessageParts"], 2);
    assert_eq!(msg["body"]["content"], body);
}

#[tokio::test]
async fn cm_errors_map_to_per_recipient_results() {
    let mock = ProviderMock::start(Reply::json(
        400,
        json!({"details": "Created 0 message(s)", "errorCode": 201, "messages": [
            {"to": "0033612345678", "status": "Rejected", "reference": "r", "parts": 0,
             "messageDetails": "Gsm '0033612345678' is not a number.", "messageErrorCode": 303}]}),
    ))
    .await;
    let app = app_with(UpstreamKind::Cm, &mock, |_| {}).await;
    let r = send(&app, "+33612345678", "Hi").await;
    assert_failed(&r, "upstream_rejected");
    assert_eq!(r["error"]["provider_code"], "303");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("is not a number"));

    mock.reply([Reply::json(
        400,
        json!({"details": "No account found for the given authentication", "errorCode": 101, "messages": []}),
    )]);
    let r = send(&app, "+33612345678", "Hi").await;
    assert_failed(&r, "upstream_unavailable");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("product token"));

    mock.reply([Reply::json(200, json!("surprise"))]);
    let r = send(&app, "+33612345678", "Hi").await;
    assert_failed(&r, "upstream_error");
}

// ---------------------------------------------------------------- Vonage

#[tokio::test]
async fn vonage_gets_its_documented_form_and_type_unicode_for_ucs2() {
    let mock = ProviderMock::start(vonage_ok(&["0A0000000123ABCD1"])).await;
    let app = app_with(UpstreamKind::Vonage, &mock, |_| {}).await;
    let r = send(&app, "+33612345678", "Hello").await;
    assert_eq!(r["status"], "sent", "{r}");
    assert_eq!(r["provider_id"], "0A0000000123ABCD1");

    let req = &mock.recorded()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/sms/json");
    assert_eq!(
        req.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    let id = r["id"].as_str().unwrap();
    assert_eq!(
        req.form(),
        [
            ("api_key", VONAGE_KEY),
            ("api_secret", VONAGE_SECRET),
            ("from", "ACME"),
            ("to", "33612345678"),
            ("text", "Hello"),
            ("type", "text"),
            ("client-ref", id),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );

    send(&app, "+33612345678", "こんにちは").await;
    assert_eq!(mock.recorded()[1].field("type").as_deref(), Some("unicode"));
}

#[tokio::test]
async fn vonage_parts_are_all_kept_and_status_codes_are_mapped() {
    let mock = ProviderMock::start(vonage_ok(&["ID-PART-1", "ID-PART-2"])).await;
    let app = app_with(UpstreamKind::Vonage, &mock, |_| {}).await;
    let r = send(&app, "+33612345678", &"long ".repeat(50)).await;
    assert_eq!(r["provider_id"], "ID-PART-1,ID-PART-2");

    // Errors come back as HTTP 200 with a non-zero status per message.
    let error = |status: &str, text: &str| {
        Reply::json(
            200,
            json!({"message-count": "1", "messages": [{"status": status, "error-text": text}]}),
        )
    };
    for (status, code) in [
        ("3", "upstream_rejected"),
        ("6", "upstream_rejected"),
        ("4", "upstream_unavailable"),
        ("9", "upstream_unavailable"),
        ("1", "upstream_rate_limited"),
    ] {
        mock.reply([error(status, "Something about it")]);
        let r = send(&app, "+33612345678", "Hi").await;
        assert_failed(&r, code);
        if code == "upstream_rejected" {
            assert_eq!(r["error"]["provider_code"], status);
            assert!(r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Something about it"));
        }
    }
}

// ---------------------------------------------------------------- resilience

/// Every adapter, with the answer its provider gives for an accepted message.
fn each_provider() -> [(UpstreamKind, Reply); 3] {
    [
        (UpstreamKind::Twilio, twilio_created()),
        (UpstreamKind::Cm, cm_accepted("x")),
        (UpstreamKind::Vonage, vonage_ok(&["0A0000000123ABCD1"])),
    ]
}

#[tokio::test]
async fn a_429_honours_retry_after_and_pauses_sending() {
    for (kind, ok) in each_provider() {
        let mock = ProviderMock::start(
            Reply::json(429, json!({"message": "Too Many Requests"}))
                .with_header("retry-after", "120"),
        )
        .await;
        let app = app_with(kind, &mock, |_| {}).await;
        let r = send(&app, "+12125550123", "Hi").await;
        assert_failed(&r, "upstream_rate_limited");
        assert_eq!(r["error"]["retry_after"], 120, "{kind:?}");

        // While Retry-After runs nothing is sent: the next message fails fast.
        mock.reply([ok]);
        let r = send(&app, "+12125550124", "Hi").await;
        assert_failed(&r, "upstream_rate_limited");
        assert!(r["error"]["retry_after"].as_u64().unwrap() <= 120);
        assert_eq!(
            mock.count(),
            1,
            "{kind:?}: the provider saw only the first message"
        );
    }
}

#[tokio::test]
async fn a_timeout_is_reported_as_such_and_never_retried() {
    for (kind, ok) in each_provider() {
        let mock = ProviderMock::start(ok.after(Duration::from_secs(3))).await;
        let app = app_with(kind, &mock, |c| c.upstream.timeout_ms = 300).await;
        let r = send(&app, "+12125550123", "Hi").await;
        assert_failed(&r, "upstream_timeout");
        assert!(r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("may or may not have been sent"));
        assert_eq!(
            mock.count(),
            1,
            "{kind:?}: it may have been sent, so no retry"
        );
    }
}

#[tokio::test]
async fn server_errors_are_unavailable_and_not_retried() {
    for (kind, _) in each_provider() {
        let mock = ProviderMock::start(Reply::json(503, json!({"message": "down"}))).await;
        let app = app_with(kind, &mock, |_| {}).await;
        let r = send(&app, "+12125550123", "Hi").await;
        assert_failed(&r, "upstream_unavailable");
        assert_eq!(mock.count(), 1, "{kind:?}");
    }
}

#[tokio::test]
async fn an_open_circuit_fails_fast_without_calling_the_provider() {
    for (kind, ok) in each_provider() {
        let mock = ProviderMock::start(Reply::json(500, json!({}))).await;
        let app = app_with(kind, &mock, |c| {
            c.upstream.breaker.consecutive_failures = 3;
            c.upstream.breaker.cooldown_ms = 600_000;
        })
        .await;
        for i in 0..3 {
            let r = send(&app, &format!("+1212555012{i}"), "Hi").await;
            assert_failed(&r, "upstream_unavailable");
        }
        assert_eq!(mock.count(), 3);

        // Open: fast failures; the provider is left alone even once it recovers.
        mock.reply([ok]);
        let (status, json) = app
            .send(
                ACME_KEY,
                json!({"to": ["+12125550130", "+12125550131"], "from": "ACME", "body": "Hi", "category": "otp"}),
            )
            .await;
        assert_eq!(status, 200);
        for r in json["results"].as_array().unwrap() {
            assert_failed(r, "upstream_unavailable");
            assert!(r["error"]["message"].as_str().unwrap().contains("circuit"));
            assert!(r["error"]["retry_after"].as_u64().unwrap() > 500);
        }
        assert_eq!(mock.count(), 3, "{kind:?}");
    }
}

#[tokio::test]
async fn rejected_messages_do_not_open_the_circuit() {
    let mock = ProviderMock::start(Reply::json(
        200,
        json!({"message-count": "1", "messages": [{"status": "6", "error-text": "Unroutable"}]}),
    ))
    .await;
    let app = app_with(UpstreamKind::Vonage, &mock, |c| {
        c.upstream.breaker.consecutive_failures = 2;
    })
    .await;
    for i in 0..4 {
        let r = send(&app, &format!("+1212555012{i}"), "Hi").await;
        assert_failed(&r, "upstream_rejected");
    }
    assert_eq!(mock.count(), 4, "the provider answers: it is healthy");
}

#[tokio::test]
async fn concurrency_is_bounded_across_all_requests() {
    let mock = ProviderMock::start(twilio_created().after(Duration::from_millis(100))).await;
    let app = app_with(UpstreamKind::Twilio, &mock, |c| c.upstream.concurrency = 2).await;
    let batch = |first: u32| {
        let to: Vec<String> = (first..first + 4)
            .map(|i| format!("+1212555{i:04}"))
            .collect();
        json!({"to": to, "from": "ACME", "body": "Hi", "category": "otp"})
    };
    let (a, b) = tokio::join!(app.send(ACME_KEY, batch(0)), app.send(BETA_KEY, batch(10)));
    assert_eq!(a.1["summary"]["sent"], 4, "{}", a.1);
    assert_eq!(b.1["summary"]["sent"], 4, "{}", b.1);
    assert_eq!(mock.count(), 8);
    assert!(
        mock.max_in_flight() <= 2,
        "at most upstream.concurrency messages in flight, saw {}",
        mock.max_in_flight()
    );
}
