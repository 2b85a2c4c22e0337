//! `stopgate store copy`: a sled store with every kind of record (a bulk
//! import too) copied into PostgreSQL reads back the same through the Store
//! API; then the same through the binary.

use std::collections::BTreeSet;

use stopgate::domain::{
    Action, Campaign, ConsentAction, ConsentEvent, ConsentList, Event, LinkCode, PhoneNumber,
    RequestVia, ShortCode, Source, TenantId,
};
use stopgate::store::copy::copy;
use stopgate::store::{
    AttributionStore, ConsentStore, IdempotencyStore, InsightStore, LinkStore, PgStore,
    PossibleOptOut, ReviewStore, SledStore, Store, SubjectStore, SuppressionStore,
};
use stopgate::suppressions::import_csv;

use crate::pg::{self, Cluster};

fn t(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

fn n(s: &str) -> PhoneNumber {
    PhoneNumber::parse(s).unwrap()
}

fn numbers() -> Vec<PhoneNumber> {
    (0..40).map(|i| n(&format!("+1212555{i:04}"))).collect()
}

/// Every kind of record, on purpose in the combinations that matter: a
/// number imported in bulk and then re-subscribed, one re-subscribed before
/// an import, rows with reasons, links with and without a campaign.
async fn fill(s: &SledStore) -> Vec<LinkCode> {
    let all = numbers();
    let acme = t("acme");
    // Re-subscribed before the import: the import records it as an event.
    s.record(&Event::new(
        acme.clone(),
        &all[1],
        Action::OptOut,
        Source::Sms,
    ))
    .await
    .unwrap();
    s.record(&Event::new(
        acme.clone(),
        &all[1],
        Action::OptIn,
        Source::Api,
    ))
    .await
    .unwrap();
    let mut csv = String::from("number,reason\n");
    for (i, num) in all[..30].iter().enumerate() {
        csv.push_str(num.as_str());
        csv.push_str(if i == 7 { ",complaint\n" } else { ",\n" });
    }
    let report = import_csv(s, &acme, csv.as_bytes()).await.unwrap();
    assert_eq!(report.imported, 30);
    // Imported in bulk, then re-subscribed and opted out again by link.
    let mut start = Event::new(acme.clone(), &all[3], Action::OptIn, Source::Api);
    start.text = Some("signed form\twith a tab".into());
    assert!(s.record(&start).await.unwrap());
    let mut stop = Event::new(acme.clone(), &all[3], Action::OptOut, Source::Link);
    stop.campaign = Some(Campaign::parse("bf").unwrap());
    stop.reason = Some("too_many".into());
    assert!(s.record(&stop).await.unwrap());
    // Another tenant, its own rows only.
    for num in &all[30..] {
        let mut e = Event::new(t("beta"), num, Action::OptOut, Source::Sms);
        e.text = Some("STOP\nplease".into());
        s.record(&e).await.unwrap();
    }
    s.count_marketing_sent(&acme, Some(&Campaign::parse("bf").unwrap()), 12, 12)
        .await
        .unwrap();
    s.count_marketing_sent(&acme, None, 3, 3).await.unwrap();
    let sc = ShortCode::parse("36111").unwrap();
    s.note_marketing_sends(
        &acme,
        Some(&Campaign::parse("bf").unwrap()),
        1_000,
        &[(all[35].clone(), sc.clone())],
    )
    .await
    .unwrap();
    s.note_marketing_sends(&t("beta"), None, 2_000, &[(all[35].clone(), sc.clone())])
        .await
        .unwrap();
    for text in ["please stop the deals", "stop it? no"] {
        s.note_possible_optout(&PossibleOptOut {
            at: 5,
            number: all[36].clone(),
            shortcode: sc.clone(),
            tenants: vec![acme.clone(), t("beta")],
            text: text.into(),
        })
        .await
        .unwrap();
    }
    let mut codes = Vec::new();
    for (num, campaign) in [(&all[37], Some("bf")), (&all[37], None), (&all[38], None)] {
        let campaign = campaign.map(|c| Campaign::parse(c).unwrap());
        let (code, _) = s
            .link_for(&acme, num, campaign.as_ref(), &LinkCode::generate)
            .await
            .unwrap();
        codes.push(code);
    }
    // Consents, a request of each kind, an opt-out's withdrawal, erasures.
    let now = stopgate::domain::now_millis();
    let consent = |tenant: &TenantId, num: &PhoneNumber, list: &str, action, source, at| {
        let mut e = ConsentEvent::new(
            tenant.clone(),
            num,
            ConsentList::parse(list).unwrap(),
            action,
            source,
            at,
        );
        e.proof = Some(format!("proof\t{at}"));
        e.recorded_by = Some("crm".into());
        e
    };
    let mut events = vec![
        consent(
            &acme,
            &all[35],
            "marketing",
            ConsentAction::Given,
            Source::Api,
            now - 10,
        ),
        consent(
            &acme,
            &all[35],
            "news",
            ConsentAction::Given,
            Source::Import,
            now - 9,
        ),
        consent(
            &t("beta"),
            &all[33],
            "marketing",
            ConsentAction::Given,
            Source::Api,
            now - 8,
        ),
    ];
    for (num, via) in [
        (
            &all[36],
            RequestVia::Link {
                code: consent_code(),
            },
        ),
        (
            &all[34],
            RequestVia::Sms {
                shortcode: sc.clone(),
            },
        ),
    ] {
        let mut e = consent(
            &acme,
            num,
            "marketing",
            ConsentAction::Requested,
            Source::Api,
            now - 7,
        );
        e.expires = Some(now + 86_400_000);
        e.via = Some(via.clone());
        events.push(e);
    }
    let mut yes = consent(
        &acme,
        &all[34],
        "marketing",
        ConsentAction::Given,
        Source::Sms,
        now - 6,
    );
    yes.via = Some(RequestVia::Sms {
        shortcode: sc.clone(),
    });
    events.push(yes);
    let changes: Vec<_> = events.into_iter().map(|e| (e, Vec::new())).collect();
    let outcomes = s.record_consents(&changes).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == Ok(true)), "{outcomes:?}");
    s.record(&Event::new(t("beta"), &all[33], Action::OptIn, Source::Api))
        .await
        .unwrap();
    s.record(&Event::new(
        t("beta"),
        &all[33],
        Action::OptOut,
        Source::Sms,
    ))
    .await
    .unwrap();
    // A bulk-imported number and one with a row of its own: both stay blocked.
    s.erase_subject(&acme, &all[20], Some("DSAR-1"), now)
        .await
        .unwrap();
    s.erase_subject(&t("beta"), &all[39], None, now)
        .await
        .unwrap();

    // Not moved: idempotency records only matter for a day.
    s.begin_request(&acme, "r1", &[1; 32]).await.unwrap();
    s.durable().await.unwrap();
    codes
}

fn consent_code() -> LinkCode {
    LinkCode::parse("Cnsnt001").unwrap()
}

/// Everything `a` answers, `b` answers the same.
async fn same(a: &dyn Store, b: &dyn Store, codes: &[LinkCode]) {
    let sc = ShortCode::parse("36111").unwrap();
    assert_eq!(
        a.consent_by_code(&consent_code()).await.unwrap(),
        b.consent_by_code(&consent_code()).await.unwrap()
    );
    assert!(b.consent_by_code(&consent_code()).await.unwrap().is_some());
    for tenant in [t("acme"), t("beta"), t("gamma")] {
        assert_eq!(
            a.consent_gates(&tenant, &ConsentList::marketing(), &numbers())
                .await
                .unwrap(),
            b.consent_gates(&tenant, &ConsentList::marketing(), &numbers())
                .await
                .unwrap()
        );
        assert_eq!(
            a.consent_page(&tenant, &ConsentList::marketing(), None, 100)
                .await
                .unwrap(),
            b.consent_page(&tenant, &ConsentList::marketing(), None, 100)
                .await
                .unwrap()
        );
        for num in numbers() {
            assert_eq!(
                a.consents(&tenant, &num).await.unwrap(),
                b.consents(&tenant, &num).await.unwrap(),
                "{tenant} {num}"
            );
            assert_eq!(
                a.consent_events(&tenant, &num).await.unwrap(),
                b.consent_events(&tenant, &num).await.unwrap(),
                "{tenant} {num}"
            );
            assert_eq!(
                a.erasures(&tenant, &num).await.unwrap(),
                b.erasures(&tenant, &num).await.unwrap(),
                "{tenant} {num}"
            );
        }
        for num in numbers() {
            assert_eq!(
                a.suppression(&tenant, &num).await.unwrap(),
                b.suppression(&tenant, &num).await.unwrap(),
                "{tenant} {num}"
            );
            assert_eq!(
                a.events(&tenant, &num).await.unwrap(),
                b.events(&tenant, &num).await.unwrap(),
                "{tenant} {num}"
            );
            assert_eq!(
                a.last_marketing_send(&num, &sc, &tenant).await.unwrap(),
                b.last_marketing_send(&num, &sc, &tenant).await.unwrap()
            );
        }
        assert_eq!(
            a.suppressed(&tenant, &numbers()).await.unwrap(),
            b.suppressed(&tenant, &numbers()).await.unwrap()
        );
        assert_eq!(
            a.suppressed_page(&tenant, None, 1000).await.unwrap(),
            b.suppressed_page(&tenant, None, 1000).await.unwrap()
        );
        assert_eq!(
            a.campaign_counters(&tenant).await.unwrap(),
            b.campaign_counters(&tenant).await.unwrap()
        );
    }
    for num in numbers() {
        assert_eq!(
            a.marketing_sends(&num, &sc).await.unwrap(),
            b.marketing_sends(&num, &sc).await.unwrap()
        );
    }
    for code in codes {
        let record = a.link(code).await.unwrap();
        assert!(record.is_some());
        assert_eq!(record, b.link(code).await.unwrap());
    }
    assert_eq!(
        a.possible_optouts(None, 100).await.unwrap(),
        b.possible_optouts(None, 100).await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_store_answers_as_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let sled = SledStore::open_with(&dir.path().join("db"), 16, 3, 5).unwrap();
    let codes = fill(&sled).await;
    let url = Cluster::shared().database().await;
    let pg = PgStore::open(&pg::storage(&url)).await.unwrap();
    let report = copy(&sled, &pg, &indicatif::ProgressBar::hidden())
        .await
        .unwrap();
    assert!(report.matches(), "{report}");
    // The copy brought sled's subject key along: a handle opened after it
    // hashes as sled did.
    let pg = PgStore::open(&pg::storage(&url)).await.unwrap();
    let count = |kind: &str| {
        report
            .kinds
            .iter()
            .find(|k| k.kind == kind)
            .map(|k| k.postgres)
            .unwrap()
    };
    // 30 imported: 27 in bulk only; +12125550001 and +12125550007 (reason)
    // recorded as events, +12125550003 re-subscribed after: its own row.
    assert_eq!(count("bulk-imported numbers"), 27 - 1, "one erased");
    assert_eq!(count("suppressions (own rows)"), 3 + 10 - 1, "one erased");
    assert_eq!(count("consents"), 5);
    assert_eq!(
        count("consent events"),
        7,
        "six, and beta's STOP withdrew one"
    );
    assert_eq!(count("erased opt-outs"), 2);
    assert_eq!(count("erasures"), 2);
    for (tenant, i) in [("acme", 20), ("beta", 39)] {
        let num = &numbers()[i];
        assert_eq!(
            pg.suppressed(&t(tenant), std::slice::from_ref(num))
                .await
                .unwrap(),
            [true]
        );
        assert!(pg
            .suppression(&t(tenant), num)
            .await
            .unwrap()
            .unwrap()
            .erased
            .is_some());
    }
    assert_eq!(count("links"), 3);
    assert_eq!(count("possible opt-outs"), 2);
    assert_eq!(count("marketing sends"), 2);
    same(&sled, &pg, &codes).await;

    // The imported-then-re-subscribed number keeps the import first.
    let history = pg.events(&t("acme"), &numbers()[3]).await.unwrap();
    let kinds: Vec<(Action, Source)> = history.iter().map(|e| (e.action, e.source)).collect();
    assert_eq!(
        kinds,
        [
            (Action::OptOut, Source::Import),
            (Action::OptIn, Source::Api),
            (Action::OptOut, Source::Link)
        ]
    );
    // New records continue after the copied ones.
    let last = pg
        .possible_optouts(None, 100)
        .await
        .unwrap()
        .last()
        .unwrap()
        .0;
    let next = pg
        .note_possible_optout(&PossibleOptOut {
            at: 9,
            number: numbers()[36].clone(),
            shortcode: ShortCode::parse("36111").unwrap(),
            tenants: vec![t("acme")],
            text: "after".into(),
        })
        .await
        .unwrap();
    assert!(next > last);
    let e = Event::new(t("acme"), &numbers()[3], Action::OptIn, Source::Api);
    assert!(
        pg.record(&e).await.unwrap(),
        "the copied state takes new events"
    );
    assert_eq!(pg.events(&t("acme"), &numbers()[3]).await.unwrap().len(), 4);

    // A second copy would double counters and clash on keys: refused.
    let err = copy(&sled, &pg, &indicatif::ProgressBar::hidden())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already holds"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_migrates_and_copies_and_prints_the_counts() {
    const BIN: &str = env!("CARGO_BIN_EXE_stopgate");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let codes = {
        let sled = SledStore::open(&path, 16).unwrap();
        fill(&sled).await
    };
    let url = Cluster::shared().database().await;
    let config = dir.path().join("stopgate.toml");
    std::fs::write(
        &config,
        "[storage]\nkind = \"postgres\"\n[[tenants]]\nid = \"acme\"\nname = \"ACME\"\napi_key = \"k\"\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(args)
            .env("STOPGATE_STORAGE__URL", &url)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let config = config.to_str().unwrap();
    let (code, out, err) = run(&["migrate", "--config", config]);
    assert_eq!(code, Some(0), "{out}{err}");
    let every: Vec<i64> = stopgate::store::postgres::migrate::MIGRATIONS
        .iter()
        .map(|m| m.version)
        .collect();
    assert!(out.contains(&format!("applied {every:?}")), "{out}");
    let (code, out, _) = run(&["migrate", "--config", config]);
    assert_eq!(code, Some(0));
    assert!(out.contains("nothing to apply"), "{out}");

    let from = path.to_str().unwrap();
    let (code, out, err) = run(&["store", "copy", "--from", from]);
    assert_eq!(code, Some(0), "{out}{err}");
    // Not a terminal: no progress bar, only the result.
    assert!(!err.contains("rows ("), "{err}");
    let events = out
        .lines()
        .find(|l| l.starts_with("events"))
        .unwrap_or_else(|| panic!("{out}"));
    let cells: Vec<&str> = events.split_whitespace().collect();
    assert_eq!(cells[1], cells[2], "{events}");
    assert!(!out.contains("MISMATCH"), "{out}");
    let sled = SledStore::open(&path, 16).unwrap();
    let pg = PgStore::open(&pg::storage(&url)).await.unwrap();
    same(&sled, &pg, &codes).await;
    drop(sled);
    let distinct: BTreeSet<&LinkCode> = codes.iter().collect();
    assert_eq!(distinct.len(), 3);

    // Into a database that holds data: refused, exit 1.
    let (code, _, err) = run(&["store", "copy", "--from", from]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("already holds"), "{err}");
}
