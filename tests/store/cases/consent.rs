//! The contract of consents (`ConsentStore`) and of data subjects'
//! erasure (`SubjectStore`), on every backend.

use std::collections::BTreeSet;
use std::sync::Arc;

use stopgate::domain::consent::Refusal;
use stopgate::domain::{
    Action, ConsentAction, ConsentEvent, ConsentList, ConsentStatus, Event, LinkCode, MessageId,
    MessageStatus, Notification, PhoneNumber, RequestVia, ShortCode, Source,
};
use stopgate::store::{MessageFilter, PossibleOptOut, Store};

use super::{n, record, t};
use crate::backends::Backend;

const DAY: i64 = 86_400_000;

fn list(s: &str) -> ConsentList {
    ConsentList::parse(s).unwrap()
}

fn ev(tenant: &str, num: &PhoneNumber, l: &str, action: ConsentAction, at: i64) -> ConsentEvent {
    let mut e = ConsentEvent::new(t(tenant), num, list(l), action, Source::Api, at);
    if action == ConsentAction::Given {
        e.proof = Some(format!("form {at}"));
    }
    e
}

fn sms_via() -> RequestVia {
    RequestVia::Sms {
        shortcode: ShortCode::parse("36111").unwrap(),
    }
}

fn request(tenant: &str, num: &PhoneNumber, via: RequestVia, at: i64) -> ConsentEvent {
    let mut e = ev(tenant, num, "marketing", ConsentAction::Requested, at);
    e.expires = Some(at + DAY);
    e.via = Some(via);
    e
}

fn answer(
    tenant: &str,
    num: &PhoneNumber,
    via: RequestVia,
    source: Source,
    at: i64,
) -> ConsentEvent {
    let mut e = ConsentEvent::new(
        t(tenant),
        num,
        list("marketing"),
        ConsentAction::Given,
        source,
        at,
    );
    e.via = Some(via);
    e.proof = Some("OUI".into());
    e
}

async fn record_one(s: &dyn Store, e: ConsentEvent) -> Result<bool, Refusal> {
    s.record_consents(&[(e, Vec::new())]).await.unwrap()[0]
}

pub async fn consents_apply_in_order_and_keep_their_history(b: Backend) {
    let s = b.store.as_ref();
    let num = n("+33612345678");
    let now = stopgate::domain::now_millis();
    assert_eq!(
        record_one(
            s,
            ev("acme", &num, "marketing", ConsentAction::Withdrawn, now)
        )
        .await,
        Ok(false),
        "withdrawing nothing changes nothing"
    );
    assert_eq!(
        record_one(
            s,
            ev("acme", &num, "marketing", ConsentAction::Given, now + 1)
        )
        .await,
        Ok(true)
    );
    assert_eq!(
        record_one(s, ev("acme", &num, "news", ConsentAction::Given, now + 2)).await,
        Ok(true)
    );
    assert_eq!(
        record_one(
            s,
            ev("acme", &num, "marketing", ConsentAction::Given, now + 3)
        )
        .await,
        Ok(true),
        "given again: renewed"
    );
    let consents = s.consents(&t("acme"), &num).await.unwrap();
    let names: Vec<&str> = consents.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(names, ["marketing", "news"]);
    let m = &consents[0].1;
    assert_eq!(
        (m.status, m.since, m.given_at),
        (ConsentStatus::Given, now + 1, Some(now + 3))
    );
    assert_eq!(m.proof.as_deref(), Some(&*format!("form {}", now + 3)));
    assert!(
        s.consents(&t("beta"), &num).await.unwrap().is_empty(),
        "per tenant"
    );

    // Double opt-in by SMS: asked, answered once, before it expires.
    let other = n("+33612345679");
    assert_eq!(
        record_one(s, request("acme", &other, sms_via(), now)).await,
        Ok(true)
    );
    let late = answer("acme", &other, sms_via(), Source::Sms, now + DAY);
    assert_eq!(record_one(s, late).await, Err(Refusal::RequestExpired));
    let yes = answer("acme", &other, sms_via(), Source::Sms, now + 10);
    assert_eq!(record_one(s, yes.clone()).await, Ok(true));
    assert_eq!(record_one(s, yes).await, Err(Refusal::AlreadyAnswered));
    let state = &s.consents(&t("acme"), &other).await.unwrap()[0].1;
    assert_eq!(state.status, ConsentStatus::Given);
    assert_eq!(state.source, Source::Sms);
    assert_eq!(state.request.as_ref().unwrap().answered, Some(now + 10));
    let history = s.consent_events(&t("acme"), &other).await.unwrap();
    let actions: Vec<ConsentAction> = history.iter().map(|e| e.action).collect();
    assert_eq!(actions, [ConsentAction::Requested, ConsentAction::Given]);
    assert_eq!(history[0].expires, Some(now + DAY));
    assert_eq!(history[0].via, Some(sms_via()));
    assert_eq!(history[1].proof.as_deref(), Some("OUI"));

    // By link: the code finds its record, answered or not; a withdrawal ends it.
    let third = n("+12125550123");
    let code = LinkCode::parse("Cf4XyZ01").unwrap();
    let link = RequestVia::Link { code: code.clone() };
    assert!(s.consent_by_code(&code).await.unwrap().is_none());
    record_one(s, request("acme", &third, link.clone(), now))
        .await
        .unwrap();
    let (tenant, number, l, st) = s.consent_by_code(&code).await.unwrap().unwrap();
    assert_eq!(
        (tenant, number, l),
        (t("acme"), third.clone(), list("marketing"))
    );
    assert!(st.request.unwrap().open_at(now + 1));
    let wrong = answer("acme", &third, sms_via(), Source::Link, now + 5);
    assert_eq!(record_one(s, wrong).await, Err(Refusal::WrongChannel));
    record_one(s, answer("acme", &third, link, Source::Link, now + 5))
        .await
        .unwrap();
    let (.., st) = s.consent_by_code(&code).await.unwrap().unwrap();
    assert_eq!(st.status, ConsentStatus::Given);
    record_one(
        s,
        ev(
            "acme",
            &third,
            "marketing",
            ConsentAction::Withdrawn,
            now + 6,
        ),
    )
    .await
    .unwrap();
    assert!(s.consent_by_code(&code).await.unwrap().is_none());

    // The whole history of the first number, in order, every list.
    let history = s.consent_events(&t("acme"), &num).await.unwrap();
    let seen: Vec<(&str, i64)> = history.iter().map(|e| (e.list.as_str(), e.at)).collect();
    assert_eq!(
        seen,
        [
            ("marketing", now + 1),
            ("news", now + 2),
            ("marketing", now + 3)
        ]
    );

    // Pages of one list, in number order, after the cursor.
    let page = s
        .consent_page(&t("acme"), &list("marketing"), None, 2)
        .await
        .unwrap();
    let numbers: Vec<&str> = page.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(numbers, ["+12125550123", "+33612345678"]);
    let rest = s
        .consent_page(&t("acme"), &list("marketing"), Some(&page[1].0), 2)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].0, other);
    let news = s
        .consent_page(&t("acme"), &list("news"), None, 10)
        .await
        .unwrap();
    assert_eq!(news.len(), 1);
    s.durable().await.unwrap();
}

/// One batch of opt-outs: each number's lists withdrawn with its own
/// proof; a STOP, START and STOP of one number withdraw them once.
pub async fn a_batch_of_opt_outs_withdraws_each_numbers_lists(b: Backend) {
    let s = b.store.as_ref();
    let now = stopgate::domain::now_millis();
    let (a, c) = (n("+33612345681"), n("+33612345682"));
    for (tenant, num) in [("acme", &a), ("acme", &c), ("beta", &a)] {
        for l in ["marketing", "news"] {
            record_one(s, ev(tenant, num, l, ConsentAction::Given, now - 10))
                .await
                .unwrap();
        }
    }
    let stop = |tenant: &str, num: &PhoneNumber, text: &str| {
        let mut e = Event::new(t(tenant), num, Action::OptOut, Source::Sms);
        e.text = Some(text.into());
        e
    };
    let batch = vec![
        stop("acme", &c, "STOP c"),
        stop("acme", &a, "STOP a"),
        Event::new(t("acme"), &a, Action::OptIn, Source::Api),
        stop("acme", &a, "STOP a again"),
        stop("beta", &a, "ARRET"),
    ];
    assert_eq!(s.record_many(&batch).await.unwrap(), 5);
    for (tenant, num, proof) in [
        ("acme", &c, "STOP c"),
        ("acme", &a, "STOP a"),
        ("beta", &a, "ARRET"),
    ] {
        for (l, st) in s.consents(&t(tenant), num).await.unwrap() {
            assert_eq!(st.status, ConsentStatus::Withdrawn, "{tenant} {l}");
            assert_eq!(st.proof.as_deref(), Some(proof), "{tenant} {l}");
        }
        let withdrawn = s
            .consent_events(&t(tenant), num)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action == ConsentAction::Withdrawn)
            .count();
        assert_eq!(withdrawn, 2, "{tenant} {}", num.as_str());
    }
}

pub async fn an_opt_out_withdraws_every_list_in_its_transaction(b: Backend) {
    let s = b.store.as_ref();
    let num = n("+33612345678");
    let now = stopgate::domain::now_millis();
    for l in ["marketing", "news"] {
        record_one(s, ev("acme", &num, l, ConsentAction::Given, now - 10))
            .await
            .unwrap();
    }
    record_one(
        s,
        ev("beta", &num, "marketing", ConsentAction::Given, now - 10),
    )
    .await
    .unwrap();
    let gates = s
        .consent_gates(&t("acme"), &list("marketing"), std::slice::from_ref(&num))
        .await
        .unwrap();
    assert_eq!(
        gates[0].consent.as_ref().unwrap().status,
        ConsentStatus::Given
    );
    assert_eq!(gates[0].suppression_changed, None);

    let mut stop = Event::new(t("acme"), &num, Action::OptOut, Source::Sms);
    stop.text = Some("STOP".into());
    assert!(s.record(&stop).await.unwrap());
    for (l, st) in s.consents(&t("acme"), &num).await.unwrap() {
        assert_eq!(st.status, ConsentStatus::Withdrawn, "{l}");
        assert_eq!(st.source, Source::Sms, "{l}");
        assert_eq!(st.proof.as_deref(), Some("STOP"), "{l}");
    }
    let history = s.consent_events(&t("acme"), &num).await.unwrap();
    let withdrawn: Vec<&ConsentEvent> = history
        .iter()
        .filter(|e| e.action == ConsentAction::Withdrawn)
        .collect();
    assert_eq!(withdrawn.len(), 2);
    assert!(withdrawn
        .iter()
        .all(|e| e.source == Source::Sms && e.at == stop.at));
    assert_eq!(
        s.consents(&t("beta"), &num).await.unwrap()[0].1.status,
        ConsentStatus::Given,
        "another tenant's consent stays"
    );
    // A repeated STOP changes nothing and writes nothing.
    assert!(!s.record(&stop).await.unwrap());
    assert_eq!(s.consent_events(&t("acme"), &num).await.unwrap().len(), 4);

    // Re-subscribed: the consent stays withdrawn, and the gate knows when.
    let mut start = Event::new(t("acme"), &num, Action::OptIn, Source::Api);
    start.text = Some("signed form".into());
    assert!(s.record(&start).await.unwrap());
    let gates = s
        .consent_gates(&t("acme"), &list("marketing"), std::slice::from_ref(&num))
        .await
        .unwrap();
    assert_eq!(
        gates[0].consent.as_ref().unwrap().status,
        ConsentStatus::Withdrawn
    );
    assert_eq!(gates[0].suppression_changed, Some(start.at));
}

pub async fn consent_gates_answer_for_a_whole_request(b: Backend) {
    let s = b.store.as_ref();
    let now = stopgate::domain::now_millis();
    let numbers: Vec<PhoneNumber> = (0..30).map(|i| n(&format!("+1212555{i:04}"))).collect();
    let changes: Vec<(ConsentEvent, Vec<Notification>)> = numbers
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 == 0)
        .map(|(i, num)| {
            (
                ev(
                    "acme",
                    num,
                    "marketing",
                    ConsentAction::Given,
                    now + i as i64,
                ),
                Vec::new(),
            )
        })
        .collect();
    let outcomes = s.record_consents(&changes).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == Ok(true)));
    for num in numbers.iter().step_by(5) {
        s.record(&Event::new(t("acme"), num, Action::OptOut, Source::Api))
            .await
            .unwrap();
    }
    let gates = s
        .consent_gates(&t("acme"), &list("marketing"), &numbers)
        .await
        .unwrap();
    assert_eq!(gates.len(), numbers.len());
    for (i, g) in gates.iter().enumerate() {
        let status = g.consent.as_ref().map(|c| c.status);
        let expected = match (i % 3 == 0, i % 5 == 0) {
            (true, true) => Some(ConsentStatus::Withdrawn),
            (true, false) => Some(ConsentStatus::Given),
            (false, _) => None,
        };
        assert_eq!(status, expected, "{i}");
        assert_eq!(g.suppression_changed.is_some(), i % 5 == 0, "{i}");
    }
    let other = s
        .consent_gates(&t("acme"), &list("news"), &numbers[..3])
        .await
        .unwrap();
    assert!(other.iter().all(|g| g.consent.is_none()), "per list");
}

pub async fn consent_counts_by_state(b: Backend) {
    let s = b.store.as_ref();
    let now = stopgate::domain::now_millis();
    let ttl = 100 * DAY;
    // Given 99, 80 and 10 days ago, and 200 days ago (lapsed).
    for (i, age) in [99, 80, 10, 200].iter().enumerate() {
        let num = n(&format!("+1212555000{i}"));
        record_one(
            s,
            ev(
                "acme",
                &num,
                "marketing",
                ConsentAction::Given,
                now - age * DAY,
            ),
        )
        .await
        .unwrap();
    }
    record_one(s, request("acme", &n("+12125550010"), sms_via(), now))
        .await
        .unwrap();
    let gone = n("+12125550011");
    record_one(s, ev("acme", &gone, "marketing", ConsentAction::Given, now))
        .await
        .unwrap();
    record_one(
        s,
        ev(
            "acme",
            &gone,
            "marketing",
            ConsentAction::Withdrawn,
            now + 1,
        ),
    )
    .await
    .unwrap();
    record_one(s, ev("acme", &gone, "news", ConsentAction::Given, now))
        .await
        .unwrap();
    record_one(s, ev("beta", &gone, "marketing", ConsentAction::Given, now))
        .await
        .unwrap();

    let valid_after = now - ttl;
    let counts = s
        .consent_counts(&t("acme"), valid_after, valid_after + 30 * DAY)
        .await
        .unwrap();
    assert_eq!(counts.len(), 2);
    let (l, c) = &counts[0];
    assert_eq!(l.as_str(), "marketing");
    assert_eq!(
        (c.given, c.expiring, c.lapsed, c.pending, c.withdrawn),
        (3, 2, 1, 1, 1),
        "{c:?}"
    );
    assert_eq!((counts[1].0.as_str(), counts[1].1.given), ("news", 1));
}

pub async fn concurrent_writers_of_one_new_record_all_apply(b: Backend) {
    let store: Arc<dyn Store> = b.store.clone();
    let num = n("+33612345678");
    let now = stopgate::domain::now_millis();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (store, num) = (store.clone(), num.clone());
            tokio::spawn(async move {
                let e = ev("acme", &num, "marketing", ConsentAction::Given, now + i);
                store.record_consents(&[(e, Vec::new())]).await.unwrap()[0]
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), Ok(true));
    }
    let history = store.consent_events(&t("acme"), &num).await.unwrap();
    assert_eq!(history.len(), 16, "every renewal kept, none lost to a race");
    let consents = store.consents(&t("acme"), &num).await.unwrap();
    assert_eq!(consents.len(), 1);
}

/// Everything a tenant holds about a number, for the erasure cases.
async fn seed(s: &dyn Store, tenant: &str, num: &PhoneNumber) {
    let now = stopgate::domain::now_millis();
    record_one(
        s,
        ev(tenant, num, "marketing", ConsentAction::Given, now - 5),
    )
    .await
    .unwrap();
    s.put_messages(
        &[record(
            tenant,
            MessageId::generate(),
            num.as_str(),
            MessageStatus::Sent,
            Some(&format!("p-{tenant}-{}", num.as_str())),
        )],
        &[],
    )
    .await
    .unwrap();
    let mint = || LinkCode::generate();
    s.link_for(&t(tenant), num, None, &mint).await.unwrap();
    s.note_marketing_sends(
        &t(tenant),
        None,
        now,
        &[(num.clone(), ShortCode::parse("36111").unwrap())],
    )
    .await
    .unwrap();
}

pub async fn an_erasure_keeps_only_the_opt_out_and_it_still_blocks(b: Backend) {
    let num = n("+33612345678");
    let now = stopgate::domain::now_millis();
    let mut stop = Event::new(t("acme"), &num, Action::OptOut, Source::Sms);
    stop.text = Some("STOP".into());
    {
        let s = b.store.as_ref();
        seed(s, "acme", &num).await;
        seed(s, "beta", &num).await;
        s.record(&stop).await.unwrap();
        s.note_possible_optout(&PossibleOptOut {
            at: now,
            number: num.clone(),
            shortcode: ShortCode::parse("36111").unwrap(),
            tenants: vec![t("acme"), t("beta")],
            text: "please stop the deals".into(),
        })
        .await
        .unwrap();
        let e = s
            .erase_subject(&t("acme"), &num, Some("DSAR-7"), now + 1)
            .await
            .unwrap();
        s.durable().await.unwrap();
        let kept = e.kept_optout.expect("the opt-out is kept");
        assert_eq!((kept.since, kept.source), (stop.at, Source::Sms));
        let r = &e.removed;
        assert_eq!(
            (
                r.suppression,
                r.suppression_events,
                r.consents,
                r.consent_events,
                r.messages,
                r.links,
                r.sends,
                r.possible_optouts
            ),
            (1, 1, 1, 2, 1, 1, 1, 1),
            "{r:?}"
        );
    }
    // After a restart too: blocked, and nothing else about it is there.
    let b = b.reopen().await;
    let s = b.store.as_ref();
    assert_eq!(
        s.suppressed(&t("acme"), std::slice::from_ref(&num))
            .await
            .unwrap(),
        [true]
    );
    let state = s.suppression(&t("acme"), &num).await.unwrap().unwrap();
    assert!(state.suppressed);
    assert_eq!(state.erased, Some(now + 1));
    assert_eq!(state.source, Source::Sms);
    assert!(state.reason.is_none() && state.campaign.is_none());
    assert!(s.events(&t("acme"), &num).await.unwrap().is_empty());
    assert!(s.consents(&t("acme"), &num).await.unwrap().is_empty());
    assert!(s.consent_events(&t("acme"), &num).await.unwrap().is_empty());
    let filter = MessageFilter {
        to: Some(num.as_str().into()),
        ..MessageFilter::default()
    };
    assert!(s
        .messages(&t("acme"), &filter, None, 100)
        .await
        .unwrap()
        .is_empty());
    let data = s.subject_data(&t("acme"), &num).await.unwrap();
    assert!(data.links.is_empty() && data.sends.is_empty() && data.possible_optouts.is_empty());
    assert!(s
        .last_marketing_send(&num, &ShortCode::parse("36111").unwrap(), &t("acme"))
        .await
        .unwrap()
        .is_none());
    assert!(
        s.suppressed_page(&t("acme"), None, 100)
            .await
            .unwrap()
            .is_empty(),
        "an erased number is not listed: it is not known any more"
    );
    let audit = s.erasures(&t("acme"), &num).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].reference.as_deref(), Some("DSAR-7"));

    // The other tenant keeps all of its own.
    assert_eq!(s.consents(&t("beta"), &num).await.unwrap().len(), 1);
    assert_eq!(
        s.messages(&t("beta"), &filter, None, 100)
            .await
            .unwrap()
            .len(),
        1
    );
    let beta = s.subject_data(&t("beta"), &num).await.unwrap();
    assert_eq!(
        (
            beta.links.len(),
            beta.sends.len(),
            beta.possible_optouts.len()
        ),
        (1, 1, 1)
    );
    assert!(s.erasures(&t("beta"), &num).await.unwrap().is_empty());
    let left = s.possible_optouts(None, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].1.tenants, vec![t("beta")]);

    // A STOP again changes nothing (and brings no row back); consent stays refused.
    let again = Event::new(t("acme"), &num, Action::OptOut, Source::Sms);
    assert!(!s.record(&again).await.unwrap());
    assert!(s.events(&t("acme"), &num).await.unwrap().is_empty());
    // Erasing again keeps the first erased opt-out.
    let second = s
        .erase_subject(&t("acme"), &num, None, now + 2)
        .await
        .unwrap();
    assert_eq!(second.kept_optout.unwrap().since, stop.at);
    assert_eq!(
        s.suppression(&t("acme"), &num)
            .await
            .unwrap()
            .unwrap()
            .erased,
        Some(now + 1)
    );
    assert_eq!(s.erasures(&t("acme"), &num).await.unwrap().len(), 2);

    // A re-subscribe lifts it, like any opt-out; a STOP then blocks again.
    let mut start = Event::new(t("acme"), &num, Action::OptIn, Source::Sms);
    start.text = Some("START".into());
    assert!(s.record(&start).await.unwrap());
    assert_eq!(
        s.suppressed(&t("acme"), std::slice::from_ref(&num))
            .await
            .unwrap(),
        [false]
    );
    let history = s.events(&t("acme"), &num).await.unwrap();
    assert_eq!(
        history.iter().map(|e| e.action).collect::<Vec<_>>(),
        [Action::OptIn]
    );
    assert!(s
        .record(&Event::new(t("acme"), &num, Action::OptOut, Source::Sms))
        .await
        .unwrap());
    assert_eq!(
        s.suppressed(&t("acme"), std::slice::from_ref(&num))
            .await
            .unwrap(),
        [true]
    );
}

pub async fn an_erasure_of_a_bulk_imported_number_keeps_it_blocked(b: Backend) {
    let s = b.store.as_ref();
    let numbers: Vec<PhoneNumber> = (0..12).map(|i| n(&format!("+1212555{i:04}"))).collect();
    let mut import = s.bulk_import(&t("acme")).await.unwrap();
    import.add(numbers.clone()).await.unwrap();
    import.finish().await.unwrap();
    s.durable().await.unwrap();
    // The first and a middle one: each at a chunk's start on sled, or not.
    let now = stopgate::domain::now_millis();
    for i in [0, 3, 7] {
        let e = s
            .erase_subject(&t("acme"), &numbers[i], None, now)
            .await
            .unwrap();
        assert_eq!(e.kept_optout.unwrap().source, Source::Import);
        assert_eq!(e.removed.suppression, 1);
    }
    s.durable().await.unwrap();
    let verdicts = s.suppressed(&t("acme"), &numbers).await.unwrap();
    assert!(verdicts.iter().all(|v| *v), "every number still blocked");
    let listed: BTreeSet<String> = s
        .suppressed_page(&t("acme"), None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n.as_str().to_string())
        .collect();
    let expected: BTreeSet<String> = numbers
        .iter()
        .enumerate()
        .filter(|(i, _)| ![0, 3, 7].contains(i))
        .map(|(_, n)| n.as_str().to_string())
        .collect();
    assert_eq!(listed, expected);
    for i in [0, 3, 7] {
        let state = s
            .suppression(&t("acme"), &numbers[i])
            .await
            .unwrap()
            .unwrap();
        assert!(state.erased.is_some() && state.suppressed);
        assert!(s.events(&t("acme"), &numbers[i]).await.unwrap().is_empty());
    }
}

pub async fn an_erasure_of_a_number_never_opted_out_keeps_nothing(b: Backend) {
    let s = b.store.as_ref();
    let num = n("+12125550123");
    seed(s, "acme", &num).await;
    let e = s
        .erase_subject(&t("acme"), &num, None, stopgate::domain::now_millis())
        .await
        .unwrap();
    assert!(e.kept_optout.is_none());
    assert_eq!(
        (e.removed.consents, e.removed.messages, e.removed.links),
        (1, 1, 1)
    );
    assert_eq!(
        s.suppressed(&t("acme"), std::slice::from_ref(&num))
            .await
            .unwrap(),
        [false]
    );
    assert!(s.suppression(&t("acme"), &num).await.unwrap().is_none());
    assert_eq!(s.erasures(&t("acme"), &num).await.unwrap().len(), 1);
    // The tenant may then send to it and record it again, as a new subject.
    record_one(
        s,
        ev(
            "acme",
            &num,
            "marketing",
            ConsentAction::Given,
            stopgate::domain::now_millis(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(s.consents(&t("acme"), &num).await.unwrap().len(), 1);
}
