//! `POST /v1/inbound`: STOP/START/HELP replies on short codes, attribution,
//! signatures, confirmations, and what a reply changes for later sends.

use serde_json::{json, Value};
use stopgate::domain::{Action, Source, TenantId};

use crate::helpers::*;

/// A valid mobile number of `country`, distinct for each `i`.
fn num(country: &str, i: u32) -> String {
    let n = match country {
        "FR" => format!("+3361234{i:04}"),
        "GB" => format!("+4474001{i:05}"),
        "DE" => format!("+49151234{i:05}"),
        "NL" => format!("+3161234{i:04}"),
        "BE" => format!("+324701{i:05}"),
        "IT" => format!("+39347123{i:04}"),
        "US" => format!("+1212555{i:04}"),
        _ => unreachable!(),
    };
    stopgate::domain::PhoneNumber::parse(&n).unwrap_or_else(|e| panic!("{n}: {e}"));
    n
}

/// The short code a recipient of `country` texts in the test config.
fn code(country: &str) -> &'static str {
    match country {
        "FR" | "IT" => "36111",
        "GB" => "60777",
        "DE" => "44744",
        "NL" => "4411",
        "BE" => "3669",
        _ => unreachable!(),
    }
}

fn tenants(v: &Value) -> Vec<&str> {
    v["tenants"]
        .as_array()
        .unwrap_or_else(|| panic!("no tenants in {v}"))
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect()
}

fn t(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

/// Sixty replies in six languages, each from its own number, with what
/// they must do; then, for every row, whether each tenant's next marketing
/// message to that number is blocked.
#[tokio::test]
async fn a_table_of_replies_does_what_it_says() {
    use Expect::*;
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Expect {
        Out,
        In,
        Help,
        Nothing,
    }
    let rows: &[(&str, &str, Expect)] = &[
        // French
        ("FR", "STOP", Out),
        ("FR", " stop. ", Out),
        ("FR", "Arrêt", Out),
        ("FR", "ARRET SVP", Out),
        ("FR", "Stop s'il vous plaît", Out),
        ("FR", "stop sms", Out),
        ("FR", "Désabonner merci", Out),
        ("FR", "STOP. Merci beaucoup", Out),
        ("FR", "STOP TOUT", Out),
        ("FR", "stop acme", Out),
        ("FR", "TSOP", Out),
        ("FR", "START", In),
        ("FR", "AIDE", Help),
        ("FR", "Je veux annuler ma commande", Nothing),
        ("FR", "Bonjour, vous ouvrez à quelle heure ?", Nothing),
        ("FR", "ABMELDEN", Nothing),
        // English
        ("GB", "STOP", Out),
        ("GB", "Stop please", Out),
        ("GB", "STOP. Thank you", Out),
        ("GB", "stop it!", Out),
        ("GB", "Unsubscribe", Out),
        ("GB", "opt out", Out),
        ("GB", "opt-out", Out),
        ("GB", "SOTP", Out),
        ("GB", "UNSUBSRCIBE", Out),
        ("GB", "STOPALL", Out),
        ("GB", "stop beta", Out),
        ("GB", "Stop texts cheers mate", Out),
        ("GB", "START", In),
        ("GB", "unstop", In),
        ("GB", "HELP", Help),
        ("GB", "info", Help),
        ("GB", "Cancel my order", Nothing),
        ("GB", "Please don't stop sending me deals", Nothing),
        ("GB", "STOP please thank you now now", Nothing),
        ("GB", "START please", Nothing),
        ("GB", "Hello", Nothing),
        ("GB", "", Nothing),
        ("GB", "🙂", Nothing),
        ("GB", "STO", Nothing),
        ("GB", "POTS", Nothing),
        ("GB", "ARRET", Nothing),
        // German
        ("DE", "Stopp bitte", Out),
        ("DE", "Abmelden, danke!", Out),
        ("DE", "KÜNDIGEN", Out),
        ("DE", "STOP", Out),
        ("DE", "Anmelden", In),
        ("DE", "Hilfe", Help),
        ("DE", "Wann kommt mein Paket?", Nothing),
        // Dutch
        ("NL", "Afmelden aub", Out),
        ("NL", "STOPPEN", Out),
        ("NL", "Uitschrijven, bedankt", Out),
        ("NL", "Aanmelden", In),
        ("NL", "hulp", Help),
        // Belgium: French and Dutch
        ("BE", "désinscription merci", Out),
        ("BE", "uitschrijven", Out),
        ("BE", "Stop alles", Out),
        // Italian (a roaming Italian SIM texting the French code)
        ("IT", "Basta grazie", Out),
        ("IT", "Disiscrivimi per favore", Out),
        ("IT", "CANCELLAMI", Out),
        ("IT", "Riattiva", In),
        ("IT", "Aiuto", Help),
        ("IT", "Grazie per lo sconto", Nothing),
    ];
    assert!(rows.len() >= 40);
    let app = spawn_app().await;
    let mut failures = Vec::new();
    for (i, (country, text, expect)) in rows.iter().enumerate() {
        let from = num(country, i as u32);
        let (status, body) = app.mo(&from, code(country), text).await;
        assert_eq!(status, 200, "{country} {text:?}: {body}");
        let action = body["action"].as_str().unwrap();
        let want = match expect {
            Out => "opted_out",
            In => "opted_in",
            Help => "help",
            Nothing => "none",
        };
        if action != want {
            failures.push(format!("{country} {text:?}: {action}, expected {want}"));
            continue;
        }
        let named = tenants(&body);
        if *expect == Nothing {
            assert!(named.is_empty(), "{body}");
        } else {
            assert!(!named.is_empty(), "{country} {text:?}: {body}");
        }
        for (tenant, key) in [("acme", ACME_KEY), ("beta", BETA_KEY)] {
            let should_block = *expect == Out && named.contains(&tenant);
            assert_eq!(
                app.blocked(key, &from).await,
                should_block,
                "{country} {text:?}: {tenant}"
            );
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn a_stop_on_a_shared_code_goes_to_whoever_sent_marketing_there() {
    let app = spawn_app().await;
    let n = num("FR", 1);
    // acme sends a campaign through the shared French code; beta does not.
    let r = app
        .send_one(
            ACME_KEY,
            json!({"to": n, "from": "ACME", "body": "Soldes", "campaign": "bf-2026"}),
        )
        .await;
    assert_eq!(r["optout"]["shortcode"], "36111");
    let (status, body) = app.mo(&n, "36111", "Stop").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"action": "opted_out", "tenants": ["acme"]}));
    assert!(app.blocked(ACME_KEY, &n).await);
    assert!(!app.blocked(BETA_KEY, &n).await);

    // The audit event: SMS, the raw text, and the campaign that prompted it.
    let events = app.events("acme", &n).await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!((e.action, e.source), (Action::OptOut, Source::Sms));
    assert_eq!(e.text.as_deref(), Some("Stop"));
    assert_eq!(e.campaign.as_ref().map(|c| c.as_str()), Some("bf-2026"));
    assert!(app.events("beta", &n).await.is_empty());

    // Both sent: both are out.
    let m = num("FR", 2);
    app.send_one(ACME_KEY, json!({"to": m, "from": "ACME", "body": "Soldes"}))
        .await;
    app.send_one(BETA_KEY, json!({"to": m, "from": "BETA", "body": "Taux"}))
        .await;
    let (_, body) = app.mo(&m, "36111", "STOP").await;
    assert_eq!(tenants(&body), ["acme", "beta"]);

    // Nobody sent: everyone on the code.
    let (_, body) = app.mo(&num("FR", 3), "36111", "STOP").await;
    assert_eq!(tenants(&body), ["acme", "beta"]);
}

#[tokio::test]
async fn a_tenant_keyword_beats_the_senders() {
    let app = spawn_app().await;
    let n = num("GB", 1);
    app.send_one(ACME_KEY, json!({"to": n, "from": "ACME", "body": "Deals"}))
        .await;
    let (_, body) = app.mo(&n, "60777", "STOP BETA please").await;
    assert_eq!(body, json!({"action": "opted_out", "tenants": ["beta"]}));
    assert!(!app.blocked(ACME_KEY, &n).await);
    assert!(app.blocked(BETA_KEY, &n).await);
}

#[tokio::test]
async fn a_dedicated_code_stops_its_tenant_only() {
    let app = spawn_app().await;
    let n = num("DE", 1);
    // beta reaches German numbers by link (it has no German code).
    let r = app
        .send_one(
            BETA_KEY,
            json!({"to": n, "from": "BETA", "body": "Angebot"}),
        )
        .await;
    assert_eq!(r["optout"]["method"], "url");
    let (_, body) = app.mo(&n, "44744", "STOP").await;
    assert_eq!(body, json!({"action": "opted_out", "tenants": ["acme"]}));
    assert!(app.blocked(ACME_KEY, &n).await);
    assert!(!app.blocked(BETA_KEY, &n).await);
}

#[tokio::test]
async fn a_tenant_with_its_own_code_is_not_on_the_shared_one() {
    let app = spawn_app_with(|c| {
        c.tenants[0].shortcodes.insert("FR".into(), "36222".into());
    })
    .await;
    let n = num("FR", 1);
    let r = app
        .send_one(ACME_KEY, json!({"to": n, "from": "ACME", "body": "Soldes"}))
        .await;
    assert_eq!(r["optout"]["shortcode"], "36222");
    // A STOP to the shared code cannot be for acme: its messages never named it.
    let (_, body) = app.mo(&n, "36111", "STOP").await;
    assert_eq!(tenants(&body), ["beta"]);
    assert!(!app.blocked(ACME_KEY, &n).await);
    let (_, body) = app.mo(&n, "36222", "STOP").await;
    assert_eq!(tenants(&body), ["acme"]);
    assert!(app.blocked(ACME_KEY, &n).await);
}

#[tokio::test]
async fn marketing_outside_the_window_does_not_attribute() {
    // A zero-day window: acme's send is already outside it.
    let app = spawn_app_with(|c| c.attribution.window_days = 0).await;
    let n = num("FR", 1);
    app.send_one(ACME_KEY, json!({"to": n, "from": "ACME", "body": "Soldes"}))
        .await;
    let (_, body) = app.mo(&n, "36111", "STOP").await;
    assert_eq!(tenants(&body), ["acme", "beta"]);
}

#[tokio::test]
async fn stopall_stops_every_tenant_on_the_code_and_says_so() {
    let app = spawn_app().await;
    let n = num("GB", 1);
    app.send_one(ACME_KEY, json!({"to": n, "from": "ACME", "body": "Deals"}))
        .await;
    let (_, body) = app.mo(&n, "60777", "STOPALL").await;
    assert_eq!(
        body,
        json!({"action": "opted_out", "tenants": ["acme", "beta"]})
    );
    assert!(app.blocked(ACME_KEY, &n).await);
    assert!(app.blocked(BETA_KEY, &n).await);
    // The marketing message, then the confirmation.
    let replies = app.mock.wait_for(&n, 2).await;
    let reply = replies.last().unwrap();
    assert_eq!(
        reply["body"],
        "You have been unsubscribed from all marketing texts sent via 60777 (ACME Shop, Beta Bank). Text START to opt back in."
    );
}

#[tokio::test]
async fn start_re_subscribes_and_is_audited() {
    let app = spawn_app().await;
    let n = num("FR", 1);
    app.send_one(ACME_KEY, json!({"to": n, "from": "ACME", "body": "Soldes"}))
        .await;
    app.mo(&n, "36111", "STOP").await;
    assert!(app.blocked(ACME_KEY, &n).await);
    let (status, body) = app.mo(&n, "36111", "start").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"action": "opted_in", "tenants": ["acme"]}));
    assert!(!app.blocked(ACME_KEY, &n).await);
    let history: Vec<(Action, Source, Option<String>)> = app
        .events("acme", &n)
        .await
        .into_iter()
        .map(|e| (e.action, e.source, e.text))
        .collect();
    assert_eq!(
        history,
        [
            (Action::OptOut, Source::Sms, Some("STOP".into())),
            (Action::OptIn, Source::Sms, Some("start".into()))
        ]
    );
    // "Soldes", the STOP's confirmation, the `blocked` probe's "Sale" (sent:
    // not blocked), the START's confirmation (from the outbox: it may come last).
    let received = app.mock.wait_for(&n, 4).await;
    let replies: Vec<_> = received.iter().filter(|m| m["from"] == "36111").collect();
    assert_eq!(
        replies.len(),
        2,
        "one confirmation for the STOP, one for the START: {received:?}"
    );
    assert!(
        replies.iter().any(|r| r["body"]
            == "ACME Shop : votre abonnement est réactivé. Pour vous désabonner, envoyez STOP au 36111."),
        "{replies:?}"
    );
}

#[tokio::test]
async fn a_bare_start_on_a_shared_code_undoes_sms_opt_outs_only() {
    let app = spawn_app().await;
    let n = num("GB", 1);
    // beta's opt-out came from elsewhere (an import); acme's from a STOP.
    app.suppress("beta", &n).await;
    app.send_one(ACME_KEY, json!({"to": n, "from": "ACME", "body": "Deals"}))
        .await;
    app.mo(&n, "60777", "STOP").await;
    let (_, body) = app.mo(&n, "60777", "START").await;
    assert_eq!(tenants(&body), ["acme"]);
    assert!(!app.blocked(ACME_KEY, &n).await);
    assert!(app.blocked(BETA_KEY, &n).await);
    // Naming the tenant re-subscribes it whatever the opt-out's source.
    let (_, body) = app.mo(&n, "60777", "START BETA").await;
    assert_eq!(body, json!({"action": "opted_in", "tenants": ["beta"]}));
    assert!(!app.blocked(BETA_KEY, &n).await);
}

#[tokio::test]
async fn every_stop_gets_one_confirmation_in_the_recipients_language() {
    let app = spawn_app().await;
    let cases = [
        (
            num("FR", 1),
            "36111",
            "ACME Shop, Beta Bank : vous ne recevrez plus de SMS marketing. Pour vous réabonner, envoyez START au 36111.",
        ),
        (
            num("DE", 1),
            "44744",
            "ACME Shop: Sie sind abgemeldet und erhalten keine Werbe-SMS mehr. START an 44744, um sich wieder anzumelden.",
        ),
        (
            num("NL", 1),
            "4411",
            "ACME Shop: u bent afgemeld en ontvangt geen marketing-sms meer. Sms START naar 4411 om u opnieuw aan te melden.",
        ),
        (
            num("IT", 1),
            "36111",
            "ACME Shop, Beta Bank: non riceverai più SMS promozionali. Invia START al 36111 per riattivarli.",
        ),
    ];
    for (n, code, text) in cases {
        let (status, _) = app.mo(&n, code, "STOP").await;
        assert_eq!(status, 200);
        let got = app.mock.wait_for(&n, 1).await;
        assert_eq!(got.len(), 1, "one reply for {n}, whatever the tenant count");
        assert_eq!(got[0]["from"], code, "sent from the short code");
        assert_eq!(got[0]["body"], text);
    }
    // HELP names every tenant on the code; nothing changes.
    let n = num("GB", 1);
    let (_, body) = app.mo(&n, "60777", "HELP").await;
    assert_eq!(body, json!({"action": "help", "tenants": ["acme", "beta"]}));
    assert_eq!(
        app.mock.wait_for(&n, 1).await[0]["body"],
        "ACME Shop, Beta Bank: marketing texts. Text STOP to 60777 to opt out. Standard network charges apply."
    );
    assert!(!app.blocked(ACME_KEY, &n).await);
}

#[tokio::test]
async fn a_failed_reply_never_undoes_the_opt_out_and_a_repeat_is_confirmed_again() {
    let app = spawn_app().await;
    let n = num("FR", 1);
    app.mock.set(Behaviour::Status(500));
    let (status, body) = app.mo(&n, "36111", "STOP").await;
    assert_eq!(status, 200);
    assert_eq!(body["action"], "opted_out");
    assert_eq!(
        app.mock.wait_for(&n, 1).await.len(),
        1,
        "the reply was tried"
    );
    app.mock.set(Behaviour::Accept);
    assert!(app.blocked(ACME_KEY, &n).await);

    // Already suppressed: still confirmed, still one event per tenant.
    let (_, body) = app.mo(&n, "36111", "STOP").await;
    assert_eq!(body["action"], "opted_out");
    assert_eq!(app.mock.wait_for(&n, 2).await.len(), 2);
    assert_eq!(app.events("acme", &n).await.len(), 1);
}

#[tokio::test]
async fn concurrent_duplicate_stops_record_one_event() {
    let app = spawn_app().await;
    let n = num("GB", 7);
    let all = futures::future::join_all((0..20).map(|_| app.mo(&n, "60777", "STOP"))).await;
    for (status, body) in &all {
        assert_eq!(*status, 200);
        assert_eq!(body["action"], "opted_out");
    }
    assert_eq!(app.events("acme", &n).await.len(), 1);
    assert_eq!(app.events("beta", &n).await.len(), 1);
}

#[tokio::test]
async fn a_possible_opt_out_is_kept_for_review_and_changes_nothing() {
    let app = spawn_app().await;
    let n = num("GB", 1);
    let text = "Stop sending me this rubbish";
    let (status, body) = app.mo(&n, "60777", text).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"action": "none", "tenants": []}));
    assert!(app.mock.received_for(&n).is_empty(), "no reply");
    assert!(!app.blocked(ACME_KEY, &n).await);
    let kept = app.store.possible_optouts(None, 10).await.unwrap();
    assert_eq!(kept.len(), 1);
    let (_, p) = &kept[0];
    assert_eq!(
        (p.number.as_str(), p.shortcode.as_str(), p.text.as_str()),
        (n.as_str(), "60777", text)
    );
    assert_eq!(p.tenants, [t("acme"), t("beta")]);
    // Plain chatter is not kept.
    app.mo(&n, "60777", "Thanks, see you soon").await;
    assert_eq!(app.store.possible_optouts(None, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn unsigned_or_badly_signed_requests_get_401_and_change_nothing() {
    let app = spawn_app().await;
    let n = num("FR", 1);
    let body = serde_json::to_vec(&json!({"from": n, "to": "36111", "text": "STOP"})).unwrap();
    let good = sign(INBOUND_SECRET, &body);
    let tampered =
        serde_json::to_vec(&json!({"from": num("FR", 2), "to": "36111", "text": "STOP"})).unwrap();
    let mac = good.rsplit_once("v1=").unwrap().1.to_string();
    let now = unix_now();
    let cases: Vec<(Vec<u8>, Option<String>)> = vec![
        (body.clone(), None),
        (body.clone(), Some(sign("wrong-secret", &body))),
        (tampered, Some(good.clone())),
        (body.clone(), Some(mac.clone())),
        (body.clone(), Some(format!("v1={mac}"))),
        (body.clone(), Some(format!("t={now},v1=not-hex"))),
        (body.clone(), Some(format!("t={},v1={mac}", now + 1))),
        (body.clone(), Some(format!("sha1={}", &mac[..40]))),
        (body.clone(), Some(String::new())),
        // Old enough to be a captured request; or from the future.
        (
            body.clone(),
            Some(sign_at(INBOUND_SECRET, now - 301, &body)),
        ),
        (
            body.clone(),
            Some(sign_at(INBOUND_SECRET, now + 301, &body)),
        ),
        // The untimed form is refused unless the migration switch is on.
        (body.clone(), Some(sign_legacy(INBOUND_SECRET, &body))),
    ];
    for (b, sig) in cases {
        let (status, err) = app
            .post_inbound(b, sig.as_deref(), "application/json")
            .await;
        assert_eq!(status, 401, "{sig:?}");
        assert_eq!(err["error"]["code"], "unauthorized", "{err}");
    }
    assert!(app.mock.received().is_empty(), "no reply was sent");
    assert!(!app.blocked(ACME_KEY, &n).await);
    assert!(!app.blocked(ACME_KEY, &num("FR", 2)).await);
    assert!(app.events("acme", &n).await.is_empty());
    // The good signature works (the cases above failed for their reason).
    let (status, _) = app
        .post_inbound(body, Some(&good), "application/json")
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn without_a_secret_the_webhook_refuses_everything() {
    let app = spawn_app_with(|c| c.inbound.secret = Default::default()).await;
    let body =
        serde_json::to_vec(&json!({"from": num("FR", 1), "to": "36111", "text": "STOP"})).unwrap();
    let (status, err) = app
        .post_inbound(body.clone(), Some(&sign("", &body)), "application/json")
        .await;
    assert_eq!(status, 401);
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("inbound.secret"));
}

#[tokio::test]
async fn bad_requests_get_the_json_error_shape_never_a_500() {
    let app = spawn_app().await;
    let signed = |body: &[u8]| (body.to_vec(), sign(INBOUND_SECRET, body));
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (
            b"not json".to_vec(),
            "application/json",
            400,
            "invalid_json",
        ),
        (
            br#"{"from": "+33612345678", "to": "36111"}"#.to_vec(),
            "application/json",
            400,
            "invalid_field",
        ),
        (
            br#"{"from": 33612345678, "to": "36111", "text": "STOP"}"#.to_vec(),
            "application/json",
            400,
            "invalid_field",
        ),
        (
            br#"["STOP"]"#.to_vec(),
            "application/json",
            400,
            "invalid_field",
        ),
        (
            br#"{"from": "+33612345678", "to": "36111", "text": "STOP"}"#.to_vec(),
            "text/plain",
            415,
            "unsupported_media_type",
        ),
        (
            br#"{"from": "0612345678", "to": "36111", "text": "STOP"}"#.to_vec(),
            "application/json",
            422,
            "invalid_number",
        ),
        (
            br#"{"from": "ACME", "to": "36111", "text": "STOP"}"#.to_vec(),
            "application/json",
            422,
            "invalid_number",
        ),
        (
            br#"{"from": "+33612345678", "to": "99999", "text": "STOP"}"#.to_vec(),
            "application/json",
            422,
            "unknown_shortcode",
        ),
        (
            br#"{"from": "+33612345678", "to": "<script>", "text": "STOP"}"#.to_vec(),
            "application/json",
            422,
            "unknown_shortcode",
        ),
        (
            vec![b' '; 70_000],
            "application/json",
            413,
            "payload_too_large",
        ),
    ];
    for (body, ct, want_status, want_code) in cases {
        let (b, sig) = signed(&body);
        let (status, err) = app.post_inbound(b, Some(&sig), ct).await;
        assert_eq!(
            status.as_u16(),
            want_status,
            "{}: {err}",
            String::from_utf8_lossy(&body[..body.len().min(60)])
        );
        assert_eq!(err["error"]["code"], want_code, "{err}");
        assert!(err["error"]["message"].is_string());
    }
    // Odd but valid: extra fields, an MSISDN without +, long and strange texts.
    let long = "STOP ".repeat(2000);
    let odd: [Value; 4] = [
        json!({"from": "33612345678", "to": "36111", "text": "STOP", "id": "SM123"}),
        json!({"from": "+33612345678", "to": "36111", "text": long}),
        json!({"from": "+33612345678", "to": "+36111", "text": "\u{0}\u{202e}STOP\u{feff}"}),
        json!({"from": "+33612345678", "to": "36111", "text": "ＳＴＯＰ"}),
    ];
    for v in odd {
        let body = serde_json::to_vec(&v).unwrap();
        let sig = sign(INBOUND_SECRET, &body);
        let (status, resp) = app.post_inbound(body, Some(&sig), "application/json").await;
        assert_eq!(status, 200, "{v}: {resp}");
    }
    // A JSON route on the public listener still answers JSON for unknown paths.
    let resp = app
        .client
        .get(format!("{}/v1/inbound", app.public))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn the_webhook_is_not_rate_limited() {
    // The link pages allow one request here; a provider relaying a burst of
    // STOPs from one address must never be shed.
    let app = spawn_app_with(|c| {
        c.ratelimit.per_minute = 1;
        c.ratelimit.burst = 1;
    })
    .await;
    for i in 0..30 {
        let (status, body) = app.mo(&num("GB", i), "60777", "STOP").await;
        assert_eq!(status, 200, "{body}");
    }
}
