//! The cases of the store contract. Each takes a fresh backend.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use stopgate::domain::segments::Encoding;
use stopgate::domain::{
    Action, Campaign, Category, Event, FrequencyCap, LinkCode, MessageId, MessageStatus,
    Notification, PhoneNumber, ShortCode, Source, TenantId,
};
use stopgate::store::{
    Applied, Attempt, Cancel, CapEntry, Claimed, HeldMessage, HeldStats, MarketingSend,
    MessageFilter, MessageRecord, Once, PossibleOptOut, Release, Replay, ReportAnswer,
    StatusChange,
};

use crate::backends::Backend;
use stopgate::store::messages::SharedNotify;

mod consent;
pub use consent::*;

fn t(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

fn n(s: &str) -> PhoneNumber {
    PhoneNumber::parse(s).unwrap()
}

fn code(s: &str) -> ShortCode {
    ShortCode::parse(s).unwrap()
}

fn campaign(s: &str) -> Campaign {
    Campaign::parse(s).unwrap()
}

pub async fn record_changes_state_once_and_keeps_history(b: Backend) {
    let s = b.store.as_ref();
    let num = n("+33612345678");
    let stop = Event::new(t("acme"), &num, Action::OptOut, Source::Sms);
    assert!(s.record(&stop).await.unwrap());
    assert!(!s.record(&stop).await.unwrap(), "a repeat changes nothing");
    let state = s.suppression(&t("acme"), &num).await.unwrap().unwrap();
    assert!(state.suppressed);
    assert_eq!(state.source, Source::Sms);
    assert!(s.suppression(&t("other"), &num).await.unwrap().is_none());
    let mut start = Event::new(t("acme"), &num, Action::OptIn, Source::Api);
    start.text = Some("signed form 8812".into());
    assert!(s.record(&start).await.unwrap());
    assert!(
        !s.suppression(&t("acme"), &num)
            .await
            .unwrap()
            .unwrap()
            .suppressed
    );
    let history = s.events(&t("acme"), &num).await.unwrap();
    assert_eq!(
        history.iter().map(|e| e.action).collect::<Vec<_>>(),
        vec![Action::OptOut, Action::OptIn]
    );
    assert_eq!(history[1].text.as_deref(), Some("signed form 8812"));
    assert_eq!(history[0].number, num);
    s.durable().await.unwrap();
}

pub async fn suppressed_answers_for_a_whole_request(b: Backend) {
    let s = b.store.as_ref();
    let numbers: Vec<PhoneNumber> = (0..50).map(|i| n(&format!("+1212555{i:04}"))).collect();
    for (i, num) in numbers.iter().enumerate() {
        if i % 3 == 0 {
            s.record(&Event::new(t("acme"), num, Action::OptOut, Source::Api))
                .await
                .unwrap();
        }
        if i % 6 == 0 {
            s.record(&Event::new(t("acme"), num, Action::OptIn, Source::Api))
                .await
                .unwrap();
        }
    }
    let verdicts = s.suppressed(&t("acme"), &numbers).await.unwrap();
    let expected: Vec<bool> = (0..50).map(|i| i % 3 == 0 && i % 6 != 0).collect();
    assert_eq!(verdicts, expected);
    assert_eq!(
        s.suppressed(&t("beta"), &numbers).await.unwrap(),
        vec![false; 50]
    );
    assert!(s.suppressed(&t("acme"), &[]).await.unwrap().is_empty());
}

pub async fn pages_list_only_suppressed_numbers_after_the_cursor(b: Backend) {
    let s = b.store.as_ref();
    for num in [
        "+33612345678",
        "+33698765432",
        "+447400123456",
        "+12125550123",
    ] {
        s.record(&Event::new(t("acme"), &n(num), Action::OptOut, Source::Api))
            .await
            .unwrap();
    }
    s.record(&Event::new(
        t("beta"),
        &n("+33612345678"),
        Action::OptOut,
        Source::Api,
    ))
    .await
    .unwrap();
    s.record(&Event::new(
        t("acme"),
        &n("+33698765432"),
        Action::OptIn,
        Source::Api,
    ))
    .await
    .unwrap();

    let listed = |page: Vec<(PhoneNumber, _)>| -> Vec<String> {
        page.into_iter()
            .map(|(n, _)| n.as_str().to_string())
            .collect()
    };
    let page1 = s.suppressed_page(&t("acme"), None, 2).await.unwrap();
    assert_eq!(listed(page1), ["+12125550123", "+33612345678"]);
    let page2 = s
        .suppressed_page(&t("acme"), Some(&n("+33612345678")), 2)
        .await
        .unwrap();
    assert_eq!(listed(page2), ["+447400123456"]);
    assert_eq!(
        s.suppressed_page(&t("beta"), None, 10).await.unwrap().len(),
        1
    );
}

/// Numbers suppressed before a walk through the pages starts are each
/// listed exactly once, however many others are added meanwhile.
pub async fn pages_never_skip_or_repeat_under_concurrent_inserts(b: Backend) {
    let s = b.store.clone();
    let before: Vec<PhoneNumber> = (0..300)
        .map(|i| n(&format!("+1212555{:04}", i * 3)))
        .collect();
    let events: Vec<Event> = before
        .iter()
        .map(|num| Event::new(t("acme"), num, Action::OptOut, Source::Api))
        .collect();
    s.record_many(&events).await.unwrap();
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..300 {
                let num = n(&format!("+1212555{:04}", i * 3 + 1));
                s.record(&Event::new(t("acme"), &num, Action::OptOut, Source::Sms))
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let mut seen = Vec::new();
    let mut after: Option<PhoneNumber> = None;
    loop {
        let page = s
            .suppressed_page(&t("acme"), after.as_ref(), 7)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|(n, _)| n.clone());
        seen.extend(page.into_iter().map(|(n, _)| n));
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    let distinct: BTreeSet<&PhoneNumber> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "a number was listed twice");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "not in order");
    for num in &before {
        assert!(distinct.contains(num), "{num} was skipped");
    }
}

pub async fn counters_follow_events_and_sends(b: Backend) {
    let s = b.store.as_ref();
    let num = n("+12125550123");
    let bf = campaign("bf");
    s.count_marketing_sent(&t("acme"), Some(&bf), 10, 10 * 2)
        .await
        .unwrap();
    s.count_marketing_sent(&t("acme"), Some(&bf), 5, 5 * 2)
        .await
        .unwrap();
    s.count_marketing_sent(&t("acme"), None, 1, 3)
        .await
        .unwrap();
    let mut e = Event::new(t("acme"), &num, Action::OptOut, Source::Link);
    e.campaign = Some(bf.clone());
    e.reason = Some("too_many".into());
    s.record(&e).await.unwrap();
    s.record(&e).await.unwrap(); // a repeat counts nothing
    let mut imported = Event::new(
        t("acme"),
        &n("+12125550124"),
        Action::OptOut,
        Source::Import,
    );
    imported.campaign = Some(bf.clone());
    s.record(&imported).await.unwrap(); // an import is no campaign's cost
    let c = s.campaign_counters(&t("acme")).await.unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!((c[0].campaign.as_ref(), c[0].sent), (None, 1));
    assert_eq!((c[1].campaign.as_ref(), c[1].sent), (Some(&bf), 15));
    assert_eq!(c[1].optouts.get("link"), Some(&1));
    assert_eq!(c[1].optouts.get("import"), None);
    assert_eq!(c[1].reasons.get("too_many"), Some(&1));
    assert_eq!((c[0].segments, c[1].segments), (3, 30));
    assert!(s.campaign_counters(&t("beta")).await.unwrap().is_empty());
}

pub async fn counters_are_exact_under_concurrent_increments(b: Backend) {
    let bf = campaign("bf");
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let s = b.store.clone();
            let bf = bf.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    s.count_marketing_sent(&t("acme"), Some(&bf), 1, 2)
                        .await
                        .unwrap();
                    let num = n(&format!("+1212555{:04}", w * 100 + i));
                    let mut e = Event::new(t("acme"), &num, Action::OptOut, Source::Sms);
                    e.campaign = Some(bf.clone());
                    s.record(&e).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let c = b.store.campaign_counters(&t("acme")).await.unwrap();
    assert_eq!(c[0].sent, 400);
    assert_eq!(c[0].optouts.get("sms"), Some(&400));
}

pub async fn record_many_applies_a_batch_in_one_go(b: Backend) {
    let s = b.store.as_ref();
    let a = n("+33612345678");
    let batch = vec![
        Event::new(t("acme"), &a, Action::OptOut, Source::Import),
        Event::new(t("acme"), &a, Action::OptOut, Source::Import),
        Event::new(
            t("acme"),
            &n("+33698765432"),
            Action::OptOut,
            Source::Import,
        ),
    ];
    assert_eq!(
        s.record_many(&batch).await.unwrap(),
        2,
        "a duplicate in the batch changes nothing"
    );
    assert_eq!(s.events(&t("acme"), &a).await.unwrap().len(), 1);
}

fn counting_mint() -> impl Fn() -> LinkCode + Send + Sync {
    let i = AtomicUsize::new(0);
    move || LinkCode::parse(&format!("code{:04}", i.fetch_add(1, Ordering::SeqCst))).unwrap()
}

pub async fn links_are_insert_if_absent_per_tenant_number_campaign(b: Backend) {
    let s = b.store.as_ref();
    let mint = counting_mint();
    let num = n("+12125550123");
    let (c1, c2) = (campaign("c1"), campaign("c2"));
    let (a, new_a) = s
        .link_for(&t("acme"), &num, Some(&c1), &mint)
        .await
        .unwrap();
    let (again, new_again) = s
        .link_for(&t("acme"), &num, Some(&c1), &mint)
        .await
        .unwrap();
    let (other_campaign, _) = s
        .link_for(&t("acme"), &num, Some(&c2), &mint)
        .await
        .unwrap();
    let (no_campaign, _) = s.link_for(&t("acme"), &num, None, &mint).await.unwrap();
    let (other_tenant, _) = s
        .link_for(&t("beta"), &num, Some(&c1), &mint)
        .await
        .unwrap();
    assert!(new_a && !new_again);
    assert_eq!(a, again);
    let all: BTreeSet<&LinkCode> = [&a, &other_campaign, &no_campaign, &other_tenant].into();
    assert_eq!(all.len(), 4, "each key has its own code");
    let record = s.link(&a).await.unwrap().unwrap();
    assert_eq!(record.campaign, Some(c1));
    assert_eq!((record.tenant, record.number), (t("acme"), num));
    assert_eq!(s.link(&no_campaign).await.unwrap().unwrap().campaign, None);
    assert!(s
        .link(&LinkCode::parse("zzzzzzzz").unwrap())
        .await
        .unwrap()
        .is_none());
}

pub async fn concurrent_minting_of_one_key_gives_one_code(b: Backend) {
    let num = n("+12125550123");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = b.store.clone();
            let num = num.clone();
            tokio::spawn(async move {
                s.link_for(&t("acme"), &num, None, &LinkCode::generate)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut codes = Vec::new();
    for task in tasks {
        codes.push(task.await.unwrap());
    }
    let distinct: BTreeSet<&LinkCode> = codes.iter().map(|(c, _)| c).collect();
    assert_eq!(distinct.len(), 1, "one key, one code: {codes:?}");
    assert_eq!(
        codes.iter().filter(|(_, new)| *new).count(),
        1,
        "minted once"
    );
    let code = codes[0].0.clone();
    assert_eq!(b.store.link(&code).await.unwrap().unwrap().number, num);
}

pub async fn a_colliding_code_is_drawn_again(b: Backend) {
    let s = b.store.as_ref();
    let draws = Mutex::new(vec!["OTHER001", "SAME0001", "SAME0001"]);
    let mint = || LinkCode::parse(draws.lock().unwrap().pop().unwrap()).unwrap();
    let (a, _) = s
        .link_for(&t("acme"), &n("+12125550101"), None, &mint)
        .await
        .unwrap();
    let (b2, _) = s
        .link_for(&t("acme"), &n("+12125550102"), None, &mint)
        .await
        .unwrap();
    assert_eq!((a.as_str(), b2.as_str()), ("SAME0001", "OTHER001"));
    assert_eq!(
        s.link(&a).await.unwrap().unwrap().number,
        n("+12125550101"),
        "the first link keeps its number"
    );
}

pub async fn marketing_sends_are_listed_per_tenant(b: Backend) {
    let s = b.store.as_ref();
    let num = n("+33612345678");
    let sends = [(num.clone(), code("36111"))];
    s.note_marketing_sends(&t("acme"), None, 1_000, &sends)
        .await
        .unwrap();
    s.note_marketing_sends(&t("beta"), Some(&campaign("bf")), 5_000, &sends)
        .await
        .unwrap();
    s.note_marketing_sends(&t("gamma"), None, 5_000, &[(num.clone(), code("36222"))])
        .await
        .unwrap();
    // Every tenant's last send through the code, in tenant order, with its
    // time and campaign (a STOP's window and credit are read from them).
    let send = |at, campaign| MarketingSend { at, campaign };
    assert_eq!(
        s.marketing_sends(&num, &code("36111")).await.unwrap(),
        vec![
            (t("acme"), send(1_000, None)),
            (t("beta"), send(5_000, Some(campaign("bf")))),
        ]
    );
    assert_eq!(
        s.marketing_sends(&num, &code("36222")).await.unwrap(),
        vec![(t("gamma"), send(5_000, None))]
    );
    assert_eq!(
        s.marketing_sends(&n("+33612345679"), &code("36111"))
            .await
            .unwrap(),
        vec![]
    );
}

pub async fn the_last_marketing_send_keeps_its_campaign(b: Backend) {
    let s = b.store.as_ref();
    let num = n("+33612345678");
    let other = n("+33612345679");
    let sc = code("36111");
    assert_eq!(
        s.last_marketing_send(&num, &sc, &t("acme")).await.unwrap(),
        None
    );
    s.note_marketing_sends(
        &t("acme"),
        Some(&campaign("bf-2026")),
        1_000,
        &[(num.clone(), sc.clone()), (other.clone(), sc.clone())],
    )
    .await
    .unwrap();
    let last = s
        .last_marketing_send(&num, &sc, &t("acme"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((last.at, last.campaign), (1_000, Some(campaign("bf-2026"))));
    s.note_marketing_sends(&t("acme"), None, 2_000, &[(num.clone(), sc.clone())])
        .await
        .unwrap();
    let last = s
        .last_marketing_send(&num, &sc, &t("acme"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((last.at, last.campaign), (2_000, None));
    let untouched = s
        .last_marketing_send(&other, &sc, &t("acme"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(untouched.at, 1_000);
}

pub async fn possible_optouts_are_listed_in_order_after_a_cursor(b: Backend) {
    let s = b.store.as_ref();
    let rec = |text: &str| PossibleOptOut {
        at: 1,
        number: n("+33612345678"),
        shortcode: code("36111"),
        tenants: vec![t("acme")],
        text: text.into(),
    };
    let a = s.note_possible_optout(&rec("a")).await.unwrap();
    let b2 = s.note_possible_optout(&rec("b")).await.unwrap();
    let c = s.note_possible_optout(&rec("c")).await.unwrap();
    assert!(a < b2 && b2 < c);
    let all = s.possible_optouts(None, 10).await.unwrap();
    let texts: Vec<&str> = all.iter().map(|(_, r)| r.text.as_str()).collect();
    assert_eq!(texts, ["a", "b", "c"]);
    assert_eq!(
        s.possible_optouts(Some(a), 1).await.unwrap(),
        vec![(b2, rec("b"))]
    );
    assert!(s
        .possible_optouts(Some(u64::MAX), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.possible_optout(c).await.unwrap(), Some(rec("c")));
    assert_eq!(s.possible_optout(c + 1000).await.unwrap(), None);
}

pub async fn idempotent_requests(b: Backend) {
    let s = b.store.as_ref();
    let fp = [7u8; 32];
    assert_eq!(
        s.begin_request(&t("acme"), "r1", &fp).await.unwrap(),
        Attempt::Fresh
    );
    assert_eq!(
        s.begin_request(&t("acme"), "r1", &fp).await.unwrap(),
        Attempt::InProgress
    );
    assert_eq!(
        s.begin_request(&t("acme"), "r1", &[8u8; 32]).await.unwrap(),
        Attempt::Mismatch
    );
    assert_eq!(
        s.begin_request(&t("beta"), "r1", &[8u8; 32]).await.unwrap(),
        Attempt::Fresh
    );
    s.finish_request(&t("acme"), "r1", &fp, b"{}")
        .await
        .unwrap();
    assert_eq!(
        s.begin_request(&t("acme"), "r1", &fp).await.unwrap(),
        Attempt::Done(b"{}".to_vec())
    );
    s.abandon_request(&t("acme"), "r1").await.unwrap();
    assert_eq!(
        s.begin_request(&t("acme"), "r1", &fp).await.unwrap(),
        Attempt::Fresh
    );
}

pub async fn one_of_concurrent_attempts_is_fresh(b: Backend) {
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = b.store.clone();
            tokio::spawn(async move { s.begin_request(&t("acme"), "same", &[1u8; 32]).await })
        })
        .collect();
    let mut fresh = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            Attempt::Fresh => fresh += 1,
            Attempt::InProgress => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(fresh, 1);
}

pub async fn purged_requests_are_gone(b: Backend) {
    let s = b.store.as_ref();
    s.begin_request(&t("acme"), "old", &[1u8; 32])
        .await
        .unwrap();
    s.finish_request(&t("acme"), "old", &[1u8; 32], b"{}")
        .await
        .unwrap();
    let now = stopgate::domain::now_millis();
    assert_eq!(
        s.purge_requests(now - 60_000).await.unwrap(),
        0,
        "too young"
    );
    assert_eq!(s.purge_requests(now + 1_000).await.unwrap(), 1);
    assert_eq!(
        s.begin_request(&t("acme"), "old", &[2u8; 32])
            .await
            .unwrap(),
        Attempt::Fresh
    );
}

pub async fn marks_are_kept_once_until_purged(b: Backend) {
    let s = b.store.as_ref();
    let scope = TenantId::webhooks();
    assert!(s.mark_once(&scope, "confirm:a").await.unwrap());
    assert!(!s.mark_once(&scope, "confirm:a").await.unwrap(), "kept");
    assert!(
        s.mark_once(&t("acme"), "confirm:a").await.unwrap(),
        "per scope"
    );
    // A mark is a done record: a begin on it finds its (empty) answer.
    assert_eq!(
        s.begin_request(&scope, "confirm:a", &[0u8; 32])
            .await
            .unwrap(),
        Attempt::Done(Vec::new())
    );
    // A reference held by a request is not marked over.
    s.begin_request(&scope, "held", &[3u8; 32]).await.unwrap();
    assert!(!s.mark_once(&scope, "held").await.unwrap());
    assert_eq!(
        s.begin_request(&scope, "held", &[3u8; 32]).await.unwrap(),
        Attempt::InProgress
    );
    // Of concurrent marks of one reference, one is the first.
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = b.store.clone();
            tokio::spawn(async move { s.mark_once(&TenantId::webhooks(), "confirm:b").await })
        })
        .collect();
    let mut first = 0;
    for task in tasks {
        first += usize::from(task.await.unwrap().unwrap());
    }
    assert_eq!(first, 1);
    let later = stopgate::domain::now_millis() + 1_000;
    assert!(s.purge_requests(later).await.unwrap() >= 3);
    assert!(s.mark_once(&scope, "confirm:a").await.unwrap(), "purged");
}

/// A STOP's confirmation is recorded with its events and its cap: it goes
/// out if an event changed a state or the cap was not marked yet, and its
/// reply, if given, is in the outbox then, never otherwise.
pub async fn a_confirmation_goes_with_a_change_or_a_new_cap(b: Backend) {
    let s = b.store.as_ref();
    let num = n("+33612345640");
    let event = |action| vec![(Event::new(t("acme"), &num, action, Source::Sms), vec![])];
    let confirm = |action, cap: &'static str, body: Option<&'static str>| {
        let changes = event(action);
        let reply = body.map(|b| reply(num.as_str(), b));
        async move {
            s.record_confirming(&changes, cap, reply.as_ref())
                .await
                .unwrap()
        }
    };
    let (stop, start) = (Action::OptOut, Action::OptIn);
    for (action, cap, body, want) in [
        (stop, "confirm:x", Some("first"), ([true], true)),
        (stop, "confirm:x", Some("capped"), ([false], false)),
        (start, "confirm:x", Some("changed"), ([true], true)),
        (start, "confirm:y", Some("new cap"), ([false], true)),
        (start, "confirm:z", None, ([false], true)),
        (start, "confirm:z", None, ([false], false)),
    ] {
        let (changed, confirmed) = confirm(action, cap, body).await;
        assert_eq!(
            (changed.as_slice(), confirmed),
            (&want.0[..], want.1),
            "{cap} {body:?}"
        );
    }
    s.durable().await.unwrap();
    assert!(
        !s.suppression(&t("acme"), &num)
            .await
            .unwrap()
            .unwrap()
            .suppressed
    );
    // The caps are kept: marking them again finds them.
    for cap in ["confirm:x", "confirm:y", "confirm:z"] {
        assert!(
            !s.mark_once(&TenantId::webhooks(), cap).await.unwrap(),
            "{cap}"
        );
    }
    let now = stopgate::domain::now_millis() + 1_000;
    let bodies: Vec<String> = s
        .claim(now, 10, 60_000)
        .await
        .unwrap()
        .into_iter()
        .map(|i| match i.notification {
            Notification::Reply { body, .. } => body,
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(bodies, ["first", "changed", "new cap"]);
}

/// A reply's events under its webhook's replay record: recorded once, with
/// its confirmation; a replay, a pending record or other content under the
/// key records nothing; of concurrent attempts with one key exactly one
/// records.
pub async fn a_reply_under_a_replay_record_is_recorded_once(b: Backend) {
    let s = b.store.as_ref();
    let num = n("+33612345641");
    let event = |action| vec![(Event::new(t("acme"), &num, action, Source::Sms), vec![])];
    let key = |k: &str, content: u8| Replay {
        key: k.to_string(),
        fingerprint: [content; 32],
    };
    let confirmation = reply(num.as_str(), "confirmed");
    let confirm = Some(("confirm:once", Some(&confirmation)));
    let (stop, start) = (Action::OptOut, Action::OptIn);
    let once = |action, confirm, k: Replay, answer: &str| {
        let changes = event(action);
        let answer = answer.as_bytes().to_vec();
        async move { s.record_once(&changes, confirm, &k, answer).await.unwrap() }
    };
    assert_eq!(
        once(stop, confirm, key("mo:1", 1), "stopped").await,
        Once::Done {
            value: (vec![true], true),
            answer: b"stopped".to_vec()
        }
    );
    // A replay (here with a START, to show it is not recorded), other
    // content under the key, a key another attempt holds: nothing recorded.
    assert_eq!(
        once(start, confirm, key("mo:1", 1), "started").await,
        Once::Seen(Attempt::Done(b"stopped".to_vec()))
    );
    assert_eq!(
        once(start, confirm, key("mo:1", 2), "started").await,
        Once::Seen(Attempt::Mismatch)
    );
    let scope = TenantId::webhooks();
    assert_eq!(
        s.begin_request(&scope, "mo:2", &[2; 32]).await.unwrap(),
        Attempt::Fresh
    );
    assert_eq!(
        once(start, None, key("mo:2", 2), "started").await,
        Once::Seen(Attempt::InProgress)
    );
    s.durable().await.unwrap();
    assert!(
        s.suppression(&t("acme"), &num)
            .await
            .unwrap()
            .unwrap()
            .suppressed
    );
    // The answer is the replay record's: a begin finds it done.
    assert_eq!(
        s.begin_request(&scope, "mo:1", &[1; 32]).await.unwrap(),
        Attempt::Done(b"stopped".to_vec())
    );
    // Without a confirmation: the events only.
    match once(stop, None, key("mo:3", 3), "again").await {
        Once::Done { value, .. } => assert_eq!(value, (vec![false], false)),
        other => panic!("{other:?}"),
    }

    // Concurrent attempts with one key: one records its START.
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let s = b.store.clone();
            let changes = event(start);
            tokio::spawn(async move {
                s.record_once(&changes, None, &key("mo:4", 4), b"started".to_vec())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        match task.await.unwrap() {
            Once::Done { value, .. } => {
                done += 1;
                assert_eq!(value, (vec![true], false));
            }
            Once::Seen(Attempt::Done(answer)) => assert_eq!(answer, b"started"),
            Once::Seen(Attempt::InProgress) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(done, 1);
    s.durable().await.unwrap();
    let history = s.events(&t("acme"), &num).await.unwrap();
    assert_eq!(
        history.iter().map(|e| e.action).collect::<Vec<_>>(),
        [stop, start],
        "one STOP, one START"
    );
    // One confirmation: the first STOP's.
    let now = stopgate::domain::now_millis() + 1_000;
    assert_eq!(s.claim(now, 10, 60_000).await.unwrap().len(), 1);
}

pub async fn bulk_imports_show_in_state_history_and_pages(b: Backend) {
    let s = b.store.as_ref();
    let resubscribed = n("+12125550001");
    s.record(&Event::new(
        t("acme"),
        &resubscribed,
        Action::OptOut,
        Source::Sms,
    ))
    .await
    .unwrap();
    s.record(&Event::new(
        t("acme"),
        &resubscribed,
        Action::OptIn,
        Source::Api,
    ))
    .await
    .unwrap();
    let numbers: Vec<PhoneNumber> = (0..20).map(|i| n(&format!("+1212555{i:04}"))).collect();
    let mut import = s.bulk_import(&t("acme")).await.unwrap();
    import.add(numbers[..12].to_vec()).await.unwrap();
    import.add(numbers[8..].to_vec()).await.unwrap();
    let counts = import.finish().await.unwrap();
    s.durable().await.unwrap();
    assert_eq!(
        counts.imported, 19,
        "20 numbers, one re-subscribed by its own row"
    );
    assert_eq!(counts.unchanged, 4, "repeated in the two batches");
    assert_eq!(counts.individual, vec![resubscribed.clone()]);
    let state = s
        .suppression(&t("acme"), &numbers[5])
        .await
        .unwrap()
        .unwrap();
    assert!(state.suppressed);
    assert_eq!(state.source, Source::Import);
    let history = s.events(&t("acme"), &numbers[5]).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].action, history[0].source),
        (Action::OptOut, Source::Import)
    );
    assert!(
        !s.suppression(&t("acme"), &resubscribed)
            .await
            .unwrap()
            .unwrap()
            .suppressed,
        "the bulk import does not override a number's own row"
    );
    assert!(s
        .suppression(&t("beta"), &numbers[5])
        .await
        .unwrap()
        .is_none());
    let page = s.suppressed_page(&t("acme"), None, 100).await.unwrap();
    let listed: Vec<&PhoneNumber> = page.iter().map(|(n, _)| n).collect();
    let expected: Vec<&PhoneNumber> = numbers.iter().filter(|n| **n != resubscribed).collect();
    assert_eq!(listed, expected);
    // A STOP of an imported number changes nothing; a re-subscribe does.
    let stop = Event::new(t("acme"), &numbers[3], Action::OptOut, Source::Sms);
    assert!(!s.record(&stop).await.unwrap());
    let start = Event::new(t("acme"), &numbers[3], Action::OptIn, Source::Api);
    assert!(s.record(&start).await.unwrap());
    assert!(!s.suppressed(&t("acme"), &numbers[3..4]).await.unwrap()[0]);
    let history = s.events(&t("acme"), &numbers[3]).await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|e| (e.action, e.source))
            .collect::<Vec<_>>(),
        [
            (Action::OptOut, Source::Import),
            (Action::OptIn, Source::Api)
        ]
    );
}

pub async fn durable_data_survives_reopen(b: Backend) {
    let num = n("+447400123456");
    b.store
        .record(&Event::new(t("acme"), &num, Action::OptOut, Source::Link))
        .await
        .unwrap();
    let (code, _) = b
        .store
        .link_for(&t("acme"), &num, None, &LinkCode::generate)
        .await
        .unwrap();
    b.store.durable().await.unwrap();
    let b = b.reopen().await;
    assert!(
        b.store
            .suppression(&t("acme"), &num)
            .await
            .unwrap()
            .unwrap()
            .suppressed
    );
    assert_eq!(b.store.link(&code).await.unwrap().unwrap().number, num);
}

/// An erased opt-out keeps its number blocked, from the first check on and
/// after a restart, and only that number; a START lifts it.
pub async fn an_erased_opt_out_blocks_across_a_reopen_until_a_start(b: Backend) {
    let (kept, other) = (n("+447400123457"), n("+447400123458"));
    let before = b
        .store
        .suppressed(&t("acme"), std::slice::from_ref(&kept))
        .await
        .unwrap();
    assert_eq!(before, [false]);
    b.store
        .record(&Event::new(t("acme"), &kept, Action::OptOut, Source::Sms))
        .await
        .unwrap();
    let erasure = b
        .store
        .erase_subject(&t("acme"), &kept, Some("DSAR-7"), 5_000)
        .await
        .unwrap();
    assert!(
        erasure.kept_optout.is_some(),
        "the opt-out is kept, as a hash"
    );
    let check = |b: &Backend| {
        let s = b.store.clone();
        let (kept, other) = (kept.clone(), other.clone());
        async move {
            s.suppressed(&t("acme"), &[kept.clone(), other.clone()])
                .await
                .unwrap()
        }
    };
    assert_eq!(check(&b).await, [true, false]);
    assert_eq!(
        b.store
            .suppressed(&t("beta"), std::slice::from_ref(&kept))
            .await
            .unwrap(),
        [false],
        "per tenant"
    );
    b.store.durable().await.unwrap();
    let b = b.reopen().await;
    assert_eq!(check(&b).await, [true, false]);
    // A second STOP changes nothing; a START lifts the erased opt-out.
    let again = Event::new(t("acme"), &kept, Action::OptOut, Source::Sms);
    assert!(!b.store.record(&again).await.unwrap());
    let start = Event::new(t("acme"), &kept, Action::OptIn, Source::Sms);
    assert!(b.store.record(&start).await.unwrap());
    assert_eq!(check(&b).await, [false, false]);
}

/// The store against a model: see `model.rs`.
pub async fn bulk_and_individual_states_match_the_model(b: Backend) {
    crate::model::check(&b).await;
}

pub(crate) fn record(
    tenant: &str,
    id: MessageId,
    to: &str,
    status: MessageStatus,
    provider_id: Option<&str>,
) -> MessageRecord {
    MessageRecord {
        id,
        tenant: t(tenant),
        to: to.into(),
        country: PhoneNumber::parse(to).ok().map(|n| n.country()),
        category: Category::Marketing,
        campaign: Some(campaign("bf")),
        sender: "ACME".into(),
        encoding: Encoding::Gsm7,
        segments: 1,
        provider: provider_id.map(|_| "http".to_string()),
        provider_id: provider_id.map(str::to_string),
        body: None,
        callback: None,
        deliver_after: None,
        history: vec![StatusChange {
            status,
            at: 1_000,
            error: None,
        }],
    }
}

/// No notifications for a report's new status.
fn no_notes(_: &MessageRecord) -> Vec<Notification> {
    Vec::new()
}

pub(crate) fn change(status: MessageStatus, at: i64, error: Option<&str>) -> StatusChange {
    StatusChange {
        status,
        at,
        error: error.map(str::to_string),
    }
}

pub async fn messages_are_found_listed_and_reported(b: Backend) {
    let s = b.store.as_ref();
    let ids: Vec<MessageId> = (0..7).map(|i| MessageId::generate_at(10_000 + i)).collect();
    let mut records: Vec<MessageRecord> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            record(
                "acme",
                id.clone(),
                &format!("+1212555{i:04}"),
                MessageStatus::Sent,
                Some(&format!("p-{i}")),
            )
        })
        .collect();
    records[6].history[0].status = MessageStatus::Blocked;
    records[6].provider_id = None;
    records[6].provider = None;
    s.put_messages(&records, &[]).await.unwrap();
    s.put_messages(
        &[record(
            "beta",
            MessageId::generate_at(10_003),
            "+12125550999",
            MessageStatus::Sent,
            Some("p-beta"),
        )],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        s.message(&t("acme"), &ids[2]).await.unwrap().as_ref(),
        Some(&records[2])
    );
    assert_eq!(
        s.message(&t("beta"), &ids[2]).await.unwrap(),
        None,
        "tenant-scoped"
    );

    // Newest first, in pages, and filtered.
    let all = MessageFilter::default();
    let page1 = s.messages(&t("acme"), &all, None, 3).await.unwrap();
    let page2 = s
        .messages(&t("acme"), &all, Some(&page1[2].id), 3)
        .await
        .unwrap();
    let page3 = s
        .messages(&t("acme"), &all, Some(&page2[2].id), 3)
        .await
        .unwrap();
    let walked: Vec<&MessageId> = page1
        .iter()
        .chain(&page2)
        .chain(&page3)
        .map(|r| &r.id)
        .collect();
    let newest_first: Vec<&MessageId> = ids.iter().rev().collect();
    assert_eq!(walked, newest_first);
    let blocked = MessageFilter {
        status: Some(MessageStatus::Blocked),
        ..Default::default()
    };
    assert_eq!(
        s.messages(&t("acme"), &blocked, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // Reports: found by the provider's id, duplicates and less final ones change nothing.
    let r = s
        .report(
            "http",
            "p-1",
            change(MessageStatus::Delivered, 2_000, None),
            Arc::new(no_notes),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.applied, r.record.status()),
        (Applied::Changed, MessageStatus::Delivered)
    );
    let again = s
        .report(
            "http",
            "p-1",
            change(MessageStatus::Delivered, 2_500, None),
            Arc::new(no_notes),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.applied, Applied::Duplicate);
    let late_sent = s
        .report(
            "http",
            "p-1",
            change(MessageStatus::Sent, 1_500, None),
            Arc::new(no_notes),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(late_sent.applied, Applied::Duplicate, "it was sent already");
    let late = s
        .report(
            "http",
            "p-1",
            change(MessageStatus::Undelivered, 1_600, Some("30005")),
            Arc::new(no_notes),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (late.applied, late.record.status()),
        (Applied::Kept, MessageStatus::Delivered)
    );
    let stored = s.message(&t("acme"), &ids[1]).await.unwrap().unwrap();
    assert_eq!(stored.status(), MessageStatus::Delivered);
    assert_eq!(stored.history.len(), 3);
    let failed = s
        .report(
            "http",
            "p-2",
            change(MessageStatus::Undelivered, 2_000, Some("30003")),
            Arc::new(no_notes),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.record.current().error.as_deref(), Some("30003"));
    assert!(s
        .report(
            "http",
            "nope",
            change(MessageStatus::Delivered, 1, None),
            Arc::new(no_notes)
        )
        .await
        .unwrap()
        .is_none());
    assert!(
        s.report(
            "twilio",
            "p-1",
            change(MessageStatus::Delivered, 1, None),
            Arc::new(no_notes)
        )
        .await
        .unwrap()
        .is_none(),
        "per provider"
    );
    // The campaign's delivery counters moved with the reports, exactly once.
    let c = s.campaign_counters(&t("acme")).await.unwrap();
    let bf = c
        .iter()
        .find(|c| c.campaign == Some(campaign("bf")))
        .unwrap();
    assert_eq!((bf.delivered, bf.undelivered), (1, 1), "{bf:?}");
    let delivered = MessageFilter {
        status: Some(MessageStatus::Delivered),
        ..Default::default()
    };
    let listed = s.messages(&t("acme"), &delivered, None, 10).await.unwrap();
    assert_eq!(listed.iter().map(|r| &r.id).collect::<Vec<_>>(), [&ids[1]]);
}

pub async fn concurrent_reports_keep_the_most_final(b: Backend) {
    let id = MessageId::generate();
    b.store
        .put_messages(
            &[record(
                "acme",
                id.clone(),
                "+12125550100",
                MessageStatus::Sent,
                Some("p-x"),
            )],
            &[],
        )
        .await
        .unwrap();
    let statuses = [
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Undelivered,
    ];
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let s = b.store.clone();
            tokio::spawn(async move {
                s.report(
                    "http",
                    "p-x",
                    change(statuses[i % 3], 2_000 + i as i64, None),
                    Arc::new(no_notes),
                )
                .await
                .unwrap()
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let r = b.store.message(&t("acme"), &id).await.unwrap().unwrap();
    assert_eq!(r.status(), MessageStatus::Delivered);
    // One entry per distinct report: the first sent, and one of each other.
    assert_eq!(r.history.len(), 3, "{:?}", r.history);
    // Whatever the order, the counters say delivered once and nothing else.
    let c = b.store.campaign_counters(&t("acme")).await.unwrap();
    assert_eq!((c[0].delivered, c[0].undelivered), (1, 0), "{c:?}");
}

/// A webhook's report under its replay record: applied once, its answer
/// kept for a replay; a replay, a pending record or other content under the
/// key does nothing; of concurrent attempts with one key exactly one works.
pub async fn a_report_under_a_replay_record_is_applied_once(b: Backend) {
    let s = b.store.as_ref();
    let id = MessageId::generate();
    s.put_messages(
        &[record(
            "acme",
            id.clone(),
            "+12125550100",
            MessageStatus::Sent,
            Some("p-once"),
        )],
        &[],
    )
    .await
    .unwrap();
    let answer: ReportAnswer = Arc::new(|applied| format!("{applied:?}").into_bytes());
    let replay = |key: &str, content: u8| Replay {
        key: key.to_string(),
        fingerprint: [content; 32],
    };
    let report = |pid: &'static str, status, key: Replay| {
        let answer = answer.clone();
        async move {
            s.report_once(
                "http",
                pid,
                change(status, 2_000, None),
                Arc::new(no_notes),
                &key,
                answer,
            )
            .await
            .unwrap()
        }
    };
    let history = || async { s.message(&t("acme"), &id).await.unwrap().unwrap().history };

    match report("p-once", MessageStatus::Delivered, replay("dlr:1", 1)).await {
        Once::Done { value, answer } => {
            assert_eq!(value.unwrap().applied, Applied::Changed);
            assert_eq!(answer, b"Some(Changed)");
        }
        other => panic!("{other:?}"),
    }
    // The replay (here with another report, to show it is not applied):
    // the first answer, and the record as it was.
    assert_eq!(
        report("p-once", MessageStatus::Undelivered, replay("dlr:1", 1)).await,
        Once::Seen(Attempt::Done(b"Some(Changed)".to_vec()))
    );
    assert_eq!(
        report("p-once", MessageStatus::Undelivered, replay("dlr:1", 2)).await,
        Once::Seen(Attempt::Mismatch)
    );
    assert_eq!(history().await.len(), 2, "only the first report applied");
    // An unknown id is answered, and kept, like any other.
    assert_eq!(
        report("nope", MessageStatus::Delivered, replay("dlr:2", 1)).await,
        Once::Done {
            value: None,
            answer: b"None".to_vec()
        }
    );
    assert_eq!(
        report("nope", MessageStatus::Delivered, replay("dlr:2", 1)).await,
        Once::Seen(Attempt::Done(b"None".to_vec()))
    );
    // A key another attempt holds (begun, not finished) is in progress.
    let scope = TenantId::webhooks();
    assert_eq!(
        s.begin_request(&scope, "dlr:3", &[3; 32]).await.unwrap(),
        Attempt::Fresh
    );
    assert_eq!(
        report("p-once", MessageStatus::Undelivered, replay("dlr:3", 3)).await,
        Once::Seen(Attempt::InProgress)
    );
    // The answers are the replay records': a begin finds them done.
    assert_eq!(
        s.begin_request(&scope, "dlr:1", &[1; 32]).await.unwrap(),
        Attempt::Done(b"Some(Changed)".to_vec())
    );

    // Concurrent attempts with one key: one does the work.
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (s, answer) = (b.store.clone(), answer.clone());
            tokio::spawn(async move {
                s.report_once(
                    "http",
                    "p-once",
                    change(MessageStatus::Undelivered, 3_000, Some("30005")),
                    Arc::new(no_notes),
                    &Replay {
                        key: "dlr:4".into(),
                        fingerprint: [4; 32],
                    },
                    answer,
                )
                .await
                .unwrap()
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        match task.await.unwrap() {
            Once::Done { answer, .. } => {
                done += 1;
                assert_eq!(answer, b"Some(Kept)");
            }
            Once::Seen(Attempt::Done(answer)) => assert_eq!(answer, b"Some(Kept)"),
            Once::Seen(Attempt::InProgress) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(done, 1);
    assert_eq!(
        history().await.len(),
        3,
        "the concurrent report applied once"
    );
}

pub async fn purging_removes_old_records_only(b: Backend) {
    let s = b.store.as_ref();
    let old: Vec<MessageId> = (0..5).map(|i| MessageId::generate_at(1_000 + i)).collect();
    let new = MessageId::generate_at(50_000);
    let mut records: Vec<MessageRecord> = old
        .iter()
        .enumerate()
        .map(|(i, id)| {
            record(
                "acme",
                id.clone(),
                "+12125550100",
                MessageStatus::Sent,
                Some(&format!("old-{i}")),
            )
        })
        .collect();
    records.push(record(
        "acme",
        new.clone(),
        "+12125550100",
        MessageStatus::Sent,
        Some("new"),
    ));
    s.put_messages(&records, &[]).await.unwrap();
    assert_eq!(
        s.purge_messages(10_000, 2).await.unwrap(),
        2,
        "bounded steps"
    );
    assert_eq!(s.purge_messages(10_000, 100).await.unwrap(), 3);
    assert_eq!(s.purge_messages(10_000, 100).await.unwrap(), 0);
    assert!(s.message(&t("acme"), &old[0]).await.unwrap().is_none());
    assert!(s
        .report(
            "http",
            "old-1",
            change(MessageStatus::Delivered, 1, None),
            Arc::new(no_notes)
        )
        .await
        .unwrap()
        .is_none());
    assert!(s.message(&t("acme"), &new).await.unwrap().is_some());
    let listed = s
        .messages(&t("acme"), &MessageFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}

fn reply(to: &str, body: &str) -> Notification {
    Notification::Reply {
        to: n(to),
        from: code("36111"),
        body: body.into(),
    }
}

fn subscription(tenant: &str, number: &str, action: Action) -> Notification {
    Notification::Subscription(Event::new(t(tenant), &n(number), action, Source::Sms))
}

/// A claim that admits only some items leases only those: the others stay
/// claimable, and still hold back the later items of their order key.
pub async fn an_admitting_claim_leases_only_what_it_admits(b: Backend) {
    let s = b.store.as_ref();
    let now = stopgate::domain::now_millis() + 1_000;
    s.enqueue(&[
        subscription("acme", "+33612345601", Action::OptOut),
        subscription("acme", "+33612345601", Action::OptIn),
        reply("+33612345603", "first"),
        reply("+33612345603", "second"),
        reply("+33612345603", "third"),
    ])
    .await
    .unwrap();
    let taken = AtomicUsize::new(0);
    // Replies only, two at most (an endpoint with room for two).
    let admit = |n: &Notification| {
        matches!(n, Notification::Reply { .. }) && taken.fetch_add(1, Ordering::SeqCst) < 2
    };
    let admitted = s.claim_admitted(now, 10, 60_000, &admit).await.unwrap();
    let bodies: Vec<&str> = admitted
        .iter()
        .map(|i| match &i.notification {
            Notification::Reply { body, .. } => body.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(bodies, ["first", "second"]);
    assert!(admitted.iter().all(|i| i.lease_until == now + 60_000));
    let rest = s.claim(now, 10, 60_000).await.unwrap();
    let kinds: Vec<String> = rest
        .iter()
        .map(|i| match &i.notification {
            Notification::Subscription(e) => format!("{:?}", e.action),
            Notification::Reply { body, .. } => body.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        ["OptOut", "third"],
        "not leased; the opt-in still waits"
    );
}

pub async fn the_outbox_hands_out_items_in_order_per_key_under_leases(b: Backend) {
    let s = b.store.as_ref();
    // Items are due from when they are written.
    let now = stopgate::domain::now_millis() + 1_000;
    s.enqueue(&[
        subscription("acme", "+33612345601", Action::OptOut),
        subscription("acme", "+33612345601", Action::OptIn),
        subscription("acme", "+33612345602", Action::OptOut),
        reply("+33612345603", "first"),
        reply("+33612345603", "second"),
    ])
    .await
    .unwrap();
    let first = s.claim(now, 10, 60_000).await.unwrap();
    let kinds: Vec<String> = first
        .iter()
        .map(|i| match &i.notification {
            Notification::Subscription(e) => format!("{:?} {}", e.action, e.number.as_str()),
            Notification::Reply { body, .. } => body.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    // The opt-in waits behind its number's opt-out; replies have no order.
    assert_eq!(
        kinds,
        [
            "OptOut +33612345601",
            "OptOut +33612345602",
            "first",
            "second"
        ]
    );
    assert!(first.windows(2).all(|w| w[0].id < w[1].id));
    assert!(
        s.claim(now, 10, 60_000).await.unwrap().is_empty(),
        "all leased or waiting"
    );
    // Delivered: the next of its key comes up.
    s.complete(first[0].id).await.unwrap();
    let next = s.claim(now, 10, 60_000).await.unwrap();
    assert_eq!(next.len(), 1);
    assert!(
        matches!(&next[0].notification, Notification::Subscription(e) if e.action == Action::OptIn)
    );
    // Failed: due again later, counted; a lease that runs out frees an item.
    s.retry(first[1].id, now + 5_000, "HTTP 500").await.unwrap();
    assert!(s.claim(now + 4_999, 10, 60_000).await.unwrap().is_empty());
    let again = s.claim(now + 5_000, 10, 60_000).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempts), (first[1].id, 1));
    assert_eq!(again[0].last_error.as_deref(), Some("HTTP 500"));
    let expired = s.claim(now + 61_000, 10, 60_000).await.unwrap();
    assert_eq!(
        expired.len(),
        3,
        "the opt-in's and the replies' leases ran out: {expired:?}"
    );
    // Released untried: back at once, attempts unchanged.
    s.release(expired[0].id).await.unwrap();
    let back = s.claim(now + 61_000, 10, 60_000).await.unwrap();
    assert_eq!((back.len(), back[0].attempts), (1, 0));
    let stats = s.outbox_stats().await.unwrap();
    assert_eq!(
        (stats.queued, stats.retrying, stats.failed),
        (4, 1, 0),
        "{stats:?}"
    );
}

pub async fn given_up_items_are_listed_per_tenant(b: Backend) {
    let s = b.store.as_ref();
    s.enqueue(&[
        subscription("acme", "+33612345601", Action::OptOut),
        subscription("beta", "+33612345602", Action::OptOut),
        reply("+33612345603", "hi"),
    ])
    .await
    .unwrap();
    let items = s.claim(i64::MAX / 2, 10, 1_000).await.unwrap();
    assert_eq!(items.len(), 3);
    for i in &items {
        s.give_up(i.id, "HTTP 410").await.unwrap();
    }
    assert!(s.claim(i64::MAX / 2, 10, 1_000).await.unwrap().is_empty());
    let acme = s.failed_items(&t("acme"), None, 10).await.unwrap();
    assert_eq!(acme.len(), 1);
    assert_eq!(
        (acme[0].attempts, acme[0].last_error.as_deref()),
        (1, Some("HTTP 410"))
    );
    assert!(s
        .failed_items(&t("acme"), Some(acme[0].id), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.failed_items(&t("beta"), None, 10).await.unwrap().len(), 1);
    let stats = s.outbox_stats().await.unwrap();
    assert_eq!((stats.queued, stats.failed), (0, 3));
}

pub async fn notifications_are_written_with_the_change_only(b: Backend) {
    let s = b.store.as_ref();
    let num = n("+33612345699");
    let stop = Event::new(t("acme"), &num, Action::OptOut, Source::Sms);
    let note = Notification::Subscription(stop.clone());
    let changed = s
        .record_notifying(&[
            (stop.clone(), vec![note.clone()]),
            (stop.clone(), vec![note.clone()]),
        ])
        .await
        .unwrap();
    assert_eq!(changed, [true, false], "the second STOP changes nothing");
    let items = s.claim(i64::MAX / 2, 10, 1_000).await.unwrap();
    assert_eq!(items.len(), 1, "one notification, for the change");
    assert_eq!(items[0].notification, note);
    // A report writes its notifications only when it moves the status.
    let id = MessageId::generate();
    s.put_messages(
        &[record(
            "acme",
            id.clone(),
            "+12125550100",
            MessageStatus::Sent,
            Some("p-n"),
        )],
        &[reply("+12125550100", "written with the records")],
    )
    .await
    .unwrap();
    let notify: SharedNotify =
        Arc::new(|r: &MessageRecord| vec![Notification::MessageStatus(r.event())]);
    s.report(
        "http",
        "p-n",
        change(MessageStatus::Delivered, 2_000, None),
        notify.clone(),
    )
    .await
    .unwrap();
    s.report(
        "http",
        "p-n",
        change(MessageStatus::Delivered, 2_100, None),
        notify.clone(),
    )
    .await
    .unwrap();
    s.report(
        "http",
        "p-n",
        change(MessageStatus::Sent, 2_200, None),
        notify.clone(),
    )
    .await
    .unwrap();
    let items = s.claim(i64::MAX / 2, 10, 1_000).await.unwrap();
    let statuses: Vec<String> = items
        .iter()
        .map(|i| match &i.notification {
            Notification::MessageStatus(e) => e.status.as_str().to_string(),
            Notification::Reply { body, .. } => body.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(statuses, ["written with the records", "delivered"]);
}

/// A message an SMPP application asked receipts for keeps that request on
/// its record (`Callback::Smpp`), on every backend; a report that makes it
/// final writes the receipt into the outbox in the same call, and only
/// then (the outbox's `for_message` decides, as the app uses it).
pub async fn smpp_receipt_requests_live_on_the_record(b: Backend) {
    use stopgate::domain::{Callback, SmppReceipts};
    let s = b.store.as_ref();
    let esme = SmppReceipts {
        failures_only: false,
        unsent: true,
        ton: 5,
        npi: 0,
        addr: "ACME".into(),
    };
    let id = MessageId::generate();
    let mut r = record(
        "acme",
        id.clone(),
        "+12125550111",
        MessageStatus::Sent,
        Some("1A2B"),
    );
    r.callback = Some(Callback::Smpp(esme.clone()));
    let notify: SharedNotify = Arc::new(|r: &MessageRecord| stopgate::outbox::for_message(None, r));
    // "sent" is no outcome: nothing to deliver yet.
    s.put_messages(&[r.clone()], &notify(&r)).await.unwrap();
    assert_eq!(s.message(&t("acme"), &id).await.unwrap(), Some(r.clone()));
    assert!(s.claim(i64::MAX / 2, 10, 1_000).await.unwrap().is_empty());
    let reported = s
        .report(
            "http",
            "1A2B",
            change(MessageStatus::Undelivered, 2_000, Some("034")),
            notify.clone(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reported.record.callback, Some(Callback::Smpp(esme.clone())));
    let items = s.claim(i64::MAX / 2, 10, 1_000).await.unwrap();
    assert_eq!(items.len(), 1);
    match &items[0].notification {
        Notification::SmppReceipt(n) => {
            assert_eq!((&n.id, n.to.as_str()), (&id, "+12125550111"));
            assert_eq!(
                (n.status, n.error.as_deref()),
                (MessageStatus::Undelivered, Some("034"))
            );
            assert_eq!((n.submitted, n.done), (1_000, 2_000));
            assert_eq!(n.esme, esme);
        }
        other => panic!("{other:?}"),
    }
    // A record blocked at submit in receipt mode has its receipt written with it.
    let blocked_id = MessageId::generate();
    let mut blocked = record(
        "acme",
        blocked_id.clone(),
        "+12125550112",
        MessageStatus::Blocked,
        None,
    );
    blocked.callback = Some(Callback::Smpp(esme));
    s.put_messages(&[blocked.clone()], &notify(&blocked))
        .await
        .unwrap();
    let items = s.claim(i64::MAX / 2, 10, 1_000).await.unwrap();
    assert!(
        items.iter().any(|i| matches!(&i.notification, Notification::SmppReceipt(n) if n.id == blocked_id && n.status == MessageStatus::Blocked)),
        "{items:?}"
    );
}

// ---- Held messages (send windows, `send_at`) and frequency caps.

/// A held marketing message to `to`, due at `due`.
fn held(tenant: &str, to: &str, due: i64) -> HeldMessage {
    let mut r = record(
        tenant,
        MessageId::generate(),
        to,
        MessageStatus::Scheduled,
        None,
    );
    r.deliver_after = Some(due);
    r.segments = 2;
    HeldMessage {
        record: r,
        body: format!("Sale for {to}\nSTOP au 36111"),
        messaging_service: None,
        shortcode: Some(code("36111")),
        cap_key: Some(7),
        due,
        lease_until: 0,
        begun: false,
    }
}

fn released(h: &HeldMessage, status: MessageStatus, at: i64) -> Release {
    Release {
        claim: Claimed::from(h),
        change: change(status, at, None),
        provider: (status == MessageStatus::Sent).then(|| "http".to_string()),
        provider_id: (status == MessageStatus::Sent).then(|| format!("p-{}", h.id())),
    }
}

fn ids(items: &[HeldMessage]) -> Vec<MessageId> {
    items.iter().map(|h| h.id().clone()).collect()
}

pub async fn held_messages_are_claimed_by_due_under_leases_and_finished(b: Backend) {
    let s = b.store.as_ref();
    let (a, c, later) = (
        held("acme", "+33612345601", 5_000),
        held("acme", "+33612345602", 4_000),
        held("beta", "+33612345603", 9_000),
    );
    s.hold(&[a.clone(), c.clone(), later.clone()], &[])
        .await
        .unwrap();
    s.durable().await.unwrap();
    // The records are there at once, `scheduled`.
    let r = s.message(&t("acme"), a.id()).await.unwrap().unwrap();
    assert_eq!(r.status(), MessageStatus::Scheduled);
    assert_eq!(r.deliver_after, Some(5_000));
    assert_eq!(
        s.held_stats().await.unwrap(),
        HeldStats {
            held: 3,
            next_due: Some(4_000)
        }
    );
    assert!(s.claim_held(3_999, 10, 60_000).await.unwrap().is_empty());
    // Earliest due first; not the one due later.
    let got = s.claim_held(6_000, 10, 60_000).await.unwrap();
    assert_eq!(ids(&got), [c.id().clone(), a.id().clone()]);
    assert!(got.iter().all(|h| h.lease_until == 66_000 && !h.begun));
    assert_eq!(got[1].body, a.body);
    assert!(
        s.claim_held(6_000, 10, 60_000).await.unwrap().is_empty(),
        "leased"
    );
    let claims: Vec<Claimed> = got.iter().map(Claimed::from).collect();
    assert_eq!(s.begin_held(&claims).await.unwrap(), [true, true]);
    let notify: SharedNotify =
        Arc::new(|r: &MessageRecord| vec![Notification::MessageStatus(r.event())]);
    let out = s
        .finish_held(
            &[
                released(&got[0], MessageStatus::Sent, 6_100),
                released(&got[1], MessageStatus::Blocked, 6_200),
            ],
            &*notify,
        )
        .await
        .unwrap();
    assert_eq!(out[0].as_ref().unwrap().status(), MessageStatus::Sent);
    // The stored records moved on, with the provider's id.
    let sent = s.message(&t("acme"), c.id()).await.unwrap().unwrap();
    assert_eq!(
        sent.history.iter().map(|h| h.status).collect::<Vec<_>>(),
        [MessageStatus::Scheduled, MessageStatus::Sent]
    );
    assert_eq!(sent.provider_id, Some(format!("p-{}", c.id())));
    let blocked = s.message(&t("acme"), a.id()).await.unwrap().unwrap();
    assert_eq!(blocked.status(), MessageStatus::Blocked);
    // Found by delivery reports like any sent message.
    let rep = s
        .report(
            "http",
            &format!("p-{}", c.id()),
            change(MessageStatus::Delivered, 7_000, None),
            Arc::new(no_notes),
        )
        .await
        .unwrap();
    assert!(
        rep.is_some(),
        "the released message is found by its provider id"
    );
    // Counted in the campaign, in the same write: sent (2 parts) and blocked.
    let counters = s.campaign_counters(&t("acme")).await.unwrap();
    let bf = counters
        .iter()
        .find(|k| k.campaign == Some(campaign("bf")))
        .unwrap();
    assert_eq!((bf.sent, bf.segments, bf.blocked), (1, 2, 1), "{bf:?}");
    // The notifications of the new statuses are in the outbox.
    let notes = s.claim(i64::MAX / 2, 10, 1_000).await.unwrap();
    let statuses: Vec<&str> = notes
        .iter()
        .map(|i| match &i.notification {
            Notification::MessageStatus(e) => e.status.as_str(),
            _ => "other",
        })
        .collect();
    assert_eq!(statuses, ["sent", "blocked"]);
    // Gone from the queue; a second finish of the same claim does nothing.
    assert_eq!(s.held_stats().await.unwrap().held, 1);
    let again = s
        .finish_held(&[released(&got[0], MessageStatus::Failed, 8_000)], &*notify)
        .await
        .unwrap();
    assert_eq!(again, [None]);
    assert_eq!(
        s.message(&t("acme"), c.id())
            .await
            .unwrap()
            .unwrap()
            .status(),
        MessageStatus::Delivered
    );
}

pub async fn a_claim_that_ran_out_is_not_the_holders_any_more(b: Backend) {
    let s = b.store.as_ref();
    let h = held("acme", "+33612345611", 1_000);
    s.hold(std::slice::from_ref(&h), &[]).await.unwrap();
    let first = s.claim_held(2_000, 10, 1_000).await.unwrap();
    assert_eq!(first.len(), 1);
    // Lease over: another releaser takes it.
    let second = s.claim_held(3_001, 10, 1_000).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_ne!(first[0].lease_until, second[0].lease_until);
    let old = Claimed::from(&first[0]);
    assert_eq!(
        s.begin_held(std::slice::from_ref(&old)).await.unwrap(),
        [false]
    );
    let out = s
        .finish_held(
            &[released(&first[0], MessageStatus::Sent, 3_100)],
            &no_notes,
        )
        .await
        .unwrap();
    assert_eq!(out, [None], "the old claim changes nothing");
    s.postpone_held(&[(old, 50_000)]).await.unwrap();
    // The new holder's claim still stands.
    let new = Claimed::from(&second[0]);
    assert_eq!(
        s.begin_held(std::slice::from_ref(&new)).await.unwrap(),
        [true]
    );
}

pub async fn postponed_messages_are_due_again_later_and_not_begun(b: Backend) {
    let s = b.store.as_ref();
    let h = held("acme", "+33612345621", 1_000);
    s.hold(std::slice::from_ref(&h), &[]).await.unwrap();
    let got = s.claim_held(1_000, 10, 60_000).await.unwrap();
    let c = Claimed::from(&got[0]);
    assert_eq!(
        s.begin_held(std::slice::from_ref(&c)).await.unwrap(),
        [true]
    );
    // The provider asked for a pause: handed back unsent, due later.
    s.postpone_held(&[(c, 30_000)]).await.unwrap();
    assert!(s.claim_held(29_999, 10, 60_000).await.unwrap().is_empty());
    let back = s.claim_held(30_000, 10, 60_000).await.unwrap();
    assert_eq!(ids(&back), [h.id().clone()]);
    assert_eq!(back[0].due, 30_000);
    assert!(!back[0].begun, "postponed means not sent: not begun");
    assert_eq!(s.held_stats().await.unwrap().next_due, Some(30_000));
}

pub async fn a_begun_message_comes_back_begun_after_a_restart(b: Backend) {
    let s = b.store.clone();
    let (x, y) = (
        held("acme", "+33612345631", 1_000),
        held("acme", "+33612345632", 1_000),
    );
    s.hold(&[x.clone(), y.clone()], &[]).await.unwrap();
    let got = s.claim_held(1_000, 10, 60_000).await.unwrap();
    let claims: Vec<Claimed> = got.iter().map(Claimed::from).collect();
    // Only the first was about to be sent when the process died.
    s.begin_held(&claims[..1]).await.unwrap();
    s.durable().await.unwrap();
    drop(s);
    let b = b.reopen().await;
    let s = b.store.as_ref();
    // After its lease (at once on sled, whose leases die with the process).
    let back = s.claim_held(62_000, 10, 60_000).await.unwrap();
    assert_eq!(ids(&back), [x.id().clone(), y.id().clone()]);
    assert_eq!(
        back.iter().map(|h| h.begun).collect::<Vec<_>>(),
        [true, false]
    );
}

pub async fn cancel_wins_before_the_send_begins_and_not_after(b: Backend) {
    let s = b.store.as_ref();
    let (x, y, z) = (
        held("acme", "+33612345641", 1_000),
        held("acme", "+33612345642", 1_000),
        held("acme", "+33612345643", 9_000),
    );
    s.hold(&[x.clone(), y.clone(), z.clone()], &[])
        .await
        .unwrap();
    let got = s.claim_held(1_000, 10, 60_000).await.unwrap();
    assert_eq!(got.len(), 2);
    let notify: SharedNotify =
        Arc::new(|r: &MessageRecord| vec![Notification::MessageStatus(r.event())]);
    // Begun: too late to cancel.
    s.begin_held(&[Claimed::from(&got[1])]).await.unwrap();
    assert!(matches!(
        s.cancel_held(&t("acme"), y.id(), 1_500, &*notify).await.unwrap(),
        Cancel::NotScheduled(r) if r.status() == MessageStatus::Scheduled
    ));
    // Claimed but not begun: the cancel wins and the releaser finds nothing.
    match s
        .cancel_held(&t("acme"), x.id(), 1_500, &*notify)
        .await
        .unwrap()
    {
        Cancel::Canceled { record, held } => {
            assert_eq!(record.status(), MessageStatus::Canceled);
            assert_eq!(held.cap_key, Some(7));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.begin_held(&[Claimed::from(&got[0])]).await.unwrap(),
        [false]
    );
    // Not claimed at all.
    assert!(matches!(
        s.cancel_held(&t("acme"), z.id(), 1_500, &*notify)
            .await
            .unwrap(),
        Cancel::Canceled { .. }
    ));
    // Another tenant's, or no such message: not found; canceled: not scheduled.
    assert_eq!(
        s.cancel_held(&t("beta"), y.id(), 1_500, &*notify)
            .await
            .unwrap(),
        Cancel::NotFound
    );
    assert_eq!(
        s.cancel_held(&t("acme"), &MessageId::generate(), 1_500, &*notify)
            .await
            .unwrap(),
        Cancel::NotFound
    );
    assert!(matches!(
        s.cancel_held(&t("acme"), x.id(), 1_600, &*notify).await.unwrap(),
        Cancel::NotScheduled(r) if r.status() == MessageStatus::Canceled
    ));
    let stored = s.message(&t("acme"), z.id()).await.unwrap().unwrap();
    assert_eq!(stored.status(), MessageStatus::Canceled);
    assert_eq!(s.held_stats().await.unwrap().held, 1, "only the begun one");
    let notes = s.claim(i64::MAX / 2, 10, 1_000).await.unwrap();
    assert_eq!(notes.len(), 2, "one notification per cancel");
}

pub async fn a_release_rewrites_a_record_purged_meanwhile(b: Backend) {
    let s = b.store.as_ref();
    let mut old = held("acme", "+33612345651", 1_000);
    old.record.id = MessageId::generate_at(5);
    let fresh = held("acme", "+33612345652", 1_000);
    s.hold(&[old.clone(), fresh.clone()], &[]).await.unwrap();
    assert_eq!(s.purge_messages(10, 100).await.unwrap(), 1);
    assert!(s.message(&t("acme"), old.id()).await.unwrap().is_none());
    let got = s.claim_held(1_000, 10, 60_000).await.unwrap();
    let by_id = |id: &MessageId| got.iter().find(|h| h.id() == id).unwrap();
    let out = s
        .finish_held(
            &[
                released(by_id(old.id()), MessageStatus::Sent, 2_000),
                released(by_id(fresh.id()), MessageStatus::Failed, 2_000),
            ],
            &no_notes,
        )
        .await
        .unwrap();
    assert!(out.iter().all(Option::is_some));
    let back = s.message(&t("acme"), old.id()).await.unwrap().unwrap();
    assert_eq!(
        back.status(),
        MessageStatus::Sent,
        "written again from its copy"
    );
    assert_eq!(s.held_stats().await.unwrap().held, 0);
}

pub async fn concurrent_claims_never_share_a_held_message(b: Backend) {
    let s = b.store.clone();
    let all: Vec<HeldMessage> = (0..200)
        .map(|i| held("acme", &format!("+3361234{i:04}"), 1_000 + i))
        .collect();
    s.hold(&all, &[]).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = s.claim_held(10_000, 7, 60_000).await.unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(ids(&got));
                }
            })
        })
        .collect();
    let mut seen = BTreeSet::new();
    for task in tasks {
        for id in task.await.unwrap() {
            assert!(seen.insert(id), "a message claimed twice");
        }
    }
    assert_eq!(seen.len(), 200);
}

fn cap(max: u32, hours: i64) -> FrequencyCap {
    FrequencyCap {
        max,
        per_ms: hours * 3_600_000,
    }
}

fn entry(number: &str, key: u64, at: i64) -> CapEntry {
    CapEntry {
        number: number.into(),
        key,
        at,
    }
}

const H: i64 = 3_600_000;

pub async fn frequency_caps_count_move_and_forget_per_recipient(b: Backend) {
    let s = b.store.as_ref();
    let c = cap(2, 24);
    let (x, y) = ("+12125550101", "+12125550102");
    // In order within one call: the third for x is over, y is its own.
    let got = s
        .cap_reserve(
            &t("acme"),
            c,
            H,
            &[
                entry(x, 1, H),
                entry(x, 2, 2 * H),
                entry(x, 3, 3 * H),
                entry(y, 4, H),
            ],
        )
        .await
        .unwrap();
    assert_eq!(got, [true, true, false, true]);
    // Per tenant.
    assert_eq!(
        s.cap_reserve(&t("beta"), c, H, &[entry(x, 5, H)])
            .await
            .unwrap(),
        [true]
    );
    // Given back: room again.
    s.cap_forget(&t("acme"), &[(x.into(), 2)]).await.unwrap();
    assert_eq!(
        s.cap_reserve(&t("acme"), c, 4 * H, &[entry(x, 6, 4 * H)])
            .await
            .unwrap(),
        [true]
    );
    // A move keeps one entry per key: released later than planned.
    assert_eq!(
        s.cap_reserve(&t("acme"), c, 5 * H, &[entry(x, 6, 5 * H)])
            .await
            .unwrap(),
        [true]
    );
    assert_eq!(
        s.cap_reserve(&t("acme"), c, 5 * H, &[entry(x, 7, 5 * H)])
            .await
            .unwrap(),
        [false]
    );
    // A day after the first, one slot frees up.
    assert_eq!(
        s.cap_reserve(&t("acme"), c, 25 * H, &[entry(x, 8, 25 * H)])
            .await
            .unwrap(),
        [true]
    );
    // Ledgers nobody can need any more go; live ones stay.
    s.cap_reserve(&t("acme"), c, 100 * H, &[entry(y, 9, 100 * H)])
        .await
        .unwrap();
    let purged = s.cap_purge(50 * H, 100).await.unwrap();
    assert_eq!(purged, 2, "x of acme and x of beta");
    assert_eq!(
        s.cap_reserve(
            &t("acme"),
            c,
            100 * H,
            &[entry(y, 10, 100 * H), entry(y, 11, 100 * H)]
        )
        .await
        .unwrap(),
        [true, false],
        "y's ledger survived the purge"
    );
}

pub async fn concurrent_reservations_let_exactly_the_cap_through(b: Backend) {
    let s = b.store.clone();
    let c = cap(3, 24);
    let number = "+12125550199";
    // Two already counted; then 16 requests at once for the last slot.
    s.cap_reserve(
        &t("acme"),
        c,
        H,
        &[entry(number, 1, H), entry(number, 2, H)],
    )
    .await
    .unwrap();
    let tasks: Vec<_> = (0..16u64)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.cap_reserve(&t("acme"), c, H, &[entry(number, 100 + i, H + 1)])
                    .await
                    .unwrap()[0]
            })
        })
        .collect();
    let mut through = 0;
    for task in tasks {
        through += task.await.unwrap() as usize;
    }
    assert_eq!(through, 1, "exactly the 3rd got through");
}
