//! The cases of the store contract. Each takes a fresh backend.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use stopgate::domain::{
    Action, Campaign, Event, LinkCode, PhoneNumber, ShortCode, Source, TenantId,
};
use stopgate::store::{Attempt, PossibleOptOut};

use crate::backends::Backend;

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
    s.count_marketing_sent(&t("acme"), Some(&bf), 10)
        .await
        .unwrap();
    s.count_marketing_sent(&t("acme"), Some(&bf), 5)
        .await
        .unwrap();
    s.count_marketing_sent(&t("acme"), None, 1).await.unwrap();
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
                    s.count_marketing_sent(&t("acme"), Some(&bf), 1)
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

pub async fn marketing_senders_respect_the_window(b: Backend) {
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
    assert_eq!(
        s.marketing_senders(&num, &code("36111"), 2_000)
            .await
            .unwrap(),
        vec![t("beta")]
    );
    let mut all = s.marketing_senders(&num, &code("36111"), 0).await.unwrap();
    all.sort();
    assert_eq!(all, vec![t("acme"), t("beta")]);
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

/// The store against a model: see `model.rs`.
pub async fn bulk_and_individual_states_match_the_model(b: Backend) {
    crate::model::check(&b).await;
}
