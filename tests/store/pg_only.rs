//! PostgreSQL-only behaviour: migrations racing on a fresh database, the
//! batching writer, the durability and readiness checks, error causes, and
//! the password kept out of every text.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stopgate::domain::{Action, Event, LinkCode, PhoneNumber, Source, TenantId};
use stopgate::store::postgres::migrate::MIGRATIONS;
use stopgate::store::{InsightStore, LinkStore, PgStore, Store, StoreError, SuppressionStore};

use crate::pg::{self, Cluster};

fn t(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

fn n(s: &str) -> PhoneNumber {
    PhoneNumber::parse(s).unwrap()
}

/// A plain session on `url`, to look at the database behind the store's back.
async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_at_once_on_a_fresh_database_migrate_it_once() {
    let url = Cluster::shared().database().await;
    let cfg = pg::storage(&url);
    // Six nodes at the same moment: each creates schema_migrations and
    // races for every version row.
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let cfg = cfg.clone();
            tokio::spawn(async move { PgStore::open(&cfg).await })
        })
        .collect();
    let mut stores = Vec::new();
    for o in opens {
        stores.push(o.await.unwrap().expect("every node starts"));
    }
    let db = sql(&url).await;
    let rows = db
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    let versions: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let known: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(versions, known, "each migration recorded once");
    // The schema is whole: every node can write and read.
    for (i, s) in stores.iter().enumerate() {
        let num = n(&format!("+1212555{i:04}"));
        let e = Event::new(t("acme"), &num, Action::OptOut, Source::Sms);
        assert!(s.record(&e).await.unwrap());
        assert!(stores[0].suppressed(&t("acme"), &[num]).await.unwrap()[0]);
    }
    // Run again (`stopgate migrate`): nothing left to apply.
    let report = PgStore::migrate(&cfg).await.unwrap();
    assert!(report.applied.is_empty(), "{report:?}");
    assert_eq!(Some(&report.current), known.last());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_opt_outs_share_transactions_and_each_gets_its_own_answer() {
    let url = Cluster::shared().database().await;
    let store = Arc::new(PgStore::open(&pg::storage(&url)).await.unwrap());
    let before = store.writer_stats();
    // 150 numbers, each STOPped by two callers at once, and 100 START
    // callers for numbers that were never suppressed: 400 callers.
    let mut calls = Vec::new();
    for i in 0..150 {
        for _ in 0..2 {
            calls.push((i, Action::OptOut));
        }
    }
    for i in 150..250 {
        calls.push((i, Action::OptIn));
    }
    let tasks: Vec<_> = calls
        .iter()
        .map(|&(i, action)| {
            let s = store.clone();
            tokio::spawn(async move {
                let num = n(&format!("+3361234{i:04}"));
                let changed = s
                    .record(&Event::new(t("acme"), &num, action, Source::Sms))
                    .await
                    .unwrap();
                (i, changed)
            })
        })
        .collect();
    let mut changes: BTreeMap<usize, usize> = BTreeMap::new();
    for task in tasks {
        let (i, changed) = task.await.unwrap();
        *changes.entry(i).or_default() += changed as usize;
    }
    for i in 0..150 {
        assert_eq!(changes[&i], 1, "one of the two STOPs of {i} changed it");
    }
    for i in 150..250 {
        assert_eq!(changes[&i], 0, "a START of a number never suppressed");
    }
    let after = store.writer_stats();
    let transactions = after.transactions - before.transactions;
    assert_eq!(after.items - before.items, calls.len() as u64);
    assert!(
        transactions < calls.len() as u64 / 4,
        "{} callers took {transactions} transactions",
        calls.len()
    );
    // The database's own witness: the distinct transactions (xmin) that
    // wrote the 150 events are the writer's batches, not one per caller.
    let db = sql(&url).await;
    let row = db
        .query_one(
            "SELECT count(*), count(DISTINCT xmin::text) FROM events",
            &[],
        )
        .await
        .unwrap();
    let (events, writers): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(events, 150);
    assert!(
        writers as u64 <= transactions && writers < 150 / 4,
        "150 events written by {writers} transactions"
    );
    // Counters were updated in those same transactions, exactly.
    let c = store.campaign_counters(&t("acme")).await.unwrap();
    assert_eq!(c[0].optouts.get("sms"), Some(&150));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_link_mints_share_transactions() {
    let url = Cluster::shared().database().await;
    let store = Arc::new(PgStore::open(&pg::storage(&url)).await.unwrap());
    let campaign = stopgate::domain::Campaign::parse("bf").unwrap();
    // 300 recipients of one campaign at once (a 1000-recipient request's
    // links are asked for together), each number twice.
    let tasks: Vec<_> = (0..600)
        .map(|i| {
            let s = store.clone();
            let campaign = campaign.clone();
            tokio::spawn(async move {
                let num = n(&format!("+1212555{:04}", i % 300));
                let (code, new) = s
                    .link_for(&t("acme"), &num, Some(&campaign), &LinkCode::generate)
                    .await
                    .unwrap();
                (i % 300, code, new)
            })
        })
        .collect();
    let mut codes: BTreeMap<usize, Vec<(LinkCode, bool)>> = BTreeMap::new();
    for task in tasks {
        let (i, code, new) = task.await.unwrap();
        codes.entry(i).or_default().push((code, new));
    }
    for (i, c) in &codes {
        assert_eq!(c[0].0, c[1].0, "one code for {i}");
        assert_eq!(
            c.iter().filter(|(_, new)| *new).count(),
            1,
            "minted once: {i}"
        );
    }
    let stats = store.link_writer_stats();
    assert_eq!(stats.items, 600);
    assert!(stats.transactions < 600 / 4, "600 mints took {stats:?}");
    let db = sql(&url).await;
    let row = db
        .query_one(
            "SELECT count(*), count(DISTINCT xmin::text) FROM links",
            &[],
        )
        .await
        .unwrap();
    let (links, writers): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(links, 300);
    assert!(
        writers < 300 / 4,
        "300 links written by {writers} transactions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_fails_every_caller_then_the_pool_reconnects_by_itself() {
    let cluster = Cluster::start();
    let url = cluster.database().await;
    let mut cfg = pg::storage(&url);
    cfg.connect_timeout_ms = 500;
    let store = Arc::new(PgStore::open(&cfg).await.unwrap());
    store.ready().await.unwrap();
    cluster.stop();
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let s = store.clone();
            tokio::spawn(async move {
                let num = n(&format!("+4474001234{i:02}"));
                s.record(&Event::new(t("acme"), &num, Action::OptOut, Source::Sms))
                    .await
            })
        })
        .collect();
    for task in tasks {
        match task.await.unwrap() {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("a write with the database down: {other:?}"),
        }
    }
    assert!(matches!(
        store.ready().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(store
        .suppressed(&t("acme"), &[n("+447400123400")])
        .await
        .is_err());
    cluster.restart();
    // Broken connections are dropped and new ones made: no restart of ours.
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.ready().await.is_err() {
        assert!(Instant::now() < deadline, "the store did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let num = n("+447400123400");
    assert!(store
        .record(&Event::new(t("acme"), &num, Action::OptOut, Source::Sms))
        .await
        .unwrap());
    assert!(store.suppressed(&t("acme"), &[num]).await.unwrap()[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_is_in_no_description_debug_or_error() {
    let password = "s3cr3t-Pa55word";
    // Port 1 on the loopback: nothing listens, the connection is refused.
    let url = format!("postgres://stopgate:{password}@127.0.0.1:1/stopgate_prod?sslmode=disable");
    let mut cfg = pg::storage(&url);
    let described = cfg.describe();
    assert!(!described.contains(password), "{described}");
    assert!(
        described.contains("127.0.0.1:1") && described.contains("stopgate_prod"),
        "{described}"
    );
    let debug = format!("{cfg:?}");
    assert!(!debug.contains(password), "{debug}");
    let settings = format!(
        "{:?}",
        stopgate::config::Config {
            storage: cfg.clone(),
            ..Default::default()
        }
    );
    assert!(!settings.contains(password));

    // Unreachable at start: retried with backoff for connect_retry_secs,
    // then an error naming host and database, never the password.
    cfg.connect_retry_secs = 2;
    let started = Instant::now();
    let err = match PgStore::open(&cfg).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("opened a store on a closed port"),
    };
    let waited = started.elapsed();
    assert!(!err.contains(password), "{err}");
    assert!(
        err.contains("127.0.0.1:1") && err.contains("stopgate_prod"),
        "{err}"
    );
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_secs(10),
        "retried for {waited:?}"
    );

    // The key=value spelling of a URL too.
    let mut kv = pg::storage(&format!(
        "host=127.0.0.1 port=1 user=stopgate password={password} dbname=stopgate_prod"
    ));
    assert!(!kv.describe().contains(password));
    kv.connect_retry_secs = 0;
    let err = PgStore::open(&kv).await.err().unwrap().to_string();
    assert!(
        !err.contains(password) && err.contains("stopgate_prod"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_without_synchronous_commit_is_refused() {
    let url = Cluster::shared().database().await;
    let db = sql(&url).await;
    let name: String = db
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    db.batch_execute(&format!(
        "ALTER DATABASE {name} SET synchronous_commit = off"
    ))
    .await
    .unwrap();
    let err = PgStore::open(&pg::storage(&url)).await.err().unwrap();
    assert!(err.to_string().contains("synchronous_commit"), "{err}");
    db.batch_execute(&format!(
        "ALTER DATABASE {name} SET synchronous_commit = local"
    ))
    .await
    .unwrap();
    PgStore::open(&pg::storage(&url))
        .await
        .expect("local flushes the WAL before it acknowledges");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_a_write_that_a_read_only_database_refuses() {
    let url = Cluster::shared().database().await;
    let store = PgStore::open(&pg::storage(&url)).await.unwrap();
    store.ready().await.unwrap();
    let db = sql(&url).await;
    let name: String = db
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    db.batch_execute(&format!(
        "ALTER DATABASE {name} SET default_transaction_read_only = on"
    ))
    .await
    .unwrap();
    // The setting applies to new sessions: open a store that has only those.
    let read_only = PgStore::open(&pg::storage(&url)).await;
    // Migrations already applied, so the open itself only reads.
    let read_only = read_only.expect("opens: nothing to migrate");
    assert!(matches!(
        read_only.ready().await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_rows_are_corrupt_and_long_statements_unavailable() {
    let url = Cluster::shared().database().await;
    let mut cfg = pg::storage(&url);
    cfg.statement_timeout_ms = 300;
    let store = PgStore::open(&cfg).await.unwrap();
    let db = sql(&url).await;
    db.batch_execute(
        "INSERT INTO suppressions (tenant, number, suppressed, updated, source)
         VALUES ('acme', '+33612345678', true, 1, 'carrier-pigeon')",
    )
    .await
    .unwrap();
    match store.suppression(&t("acme"), &n("+33612345678")).await {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("source"), "{m}"),
        other => panic!("{other:?}"),
    }
    // A row held by another session: the statement gives up after
    // statement_timeout_ms, as the database being unavailable.
    let mut holder = sql(&url).await;
    let tx = holder.transaction().await.unwrap();
    tx.batch_execute("UPDATE suppressions SET suppressed = false WHERE number = '+33612345678'")
        .await
        .unwrap();
    let started = Instant::now();
    let e = Event::new(t("acme"), &n("+33612345678"), Action::OptIn, Source::Api);
    match store.record(&e).await {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("57014"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    tx.rollback().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_never_prints_the_password_and_exits_when_the_database_stays_away() {
    const BIN: &str = env!("CARGO_BIN_EXE_stopgate");
    let password = "s3cr3t-Pa55word";
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("stopgate.toml");
    std::fs::write(
        &config,
        "[server]\napi_listen = \"127.0.0.1:0\"\npublic_listen = \"127.0.0.1:0\"\n\
         [storage]\nkind = \"postgres\"\nconnect_retry_secs = 1\nconnect_timeout_ms = 300\n\
         [[tenants]]\nid = \"acme\"\nname = \"ACME\"\napi_key = \"k\"\n",
    )
    .unwrap();
    let url = format!("postgres://stopgate:{password}@127.0.0.1:1/stopgate_prod?sslmode=disable");
    let run = |command: &str| {
        let out = std::process::Command::new(BIN)
            .args([command, "--config"])
            .arg(&config)
            .env("STOPGATE_STORAGE__URL", &url)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, out) = run("check-config");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("127.0.0.1:1") && out.contains("stopgate_prod"),
        "{out}"
    );
    assert!(!out.contains(password), "{out}");
    let started = Instant::now();
    let (code, out) = run("serve");
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("cannot reach") && out.contains("stopgate_prod"),
        "{out}"
    );
    assert!(out.contains("retrying"), "each retry is logged: {out}");
    assert!(!out.contains(password), "{out}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let (code, out) = run("migrate");
    assert_eq!(code, Some(1), "{out}");
    assert!(!out.contains(password), "{out}");
}

/// Two nodes on one database, each asked for a recipient's 3rd and 4th
/// marketing message at the same moment, many times over: each time
/// exactly one of the two gets through (a cap of 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_for_a_recipients_last_slot_let_exactly_one_through() {
    use stopgate::domain::FrequencyCap;
    use stopgate::store::{CapEntry, FrequencyStore};
    let url = Cluster::shared().database().await;
    let a = Arc::new(PgStore::open(&pg::storage(&url)).await.unwrap());
    let b = Arc::new(PgStore::open(&pg::storage(&url)).await.unwrap());
    let cap = FrequencyCap {
        max: 3,
        per_ms: 24 * 3_600_000,
    };
    let now = 1_000_000;
    let entry = move |number: &str, key: u64| CapEntry {
        number: number.into(),
        key,
        at: now,
    };
    for round in 0..40u64 {
        let number = format!("+1212555{round:04}");
        let two = [entry(&number, 1), entry(&number, 2)];
        assert_eq!(
            a.cap_reserve(&t("acme"), cap, now, &two).await.unwrap(),
            [true, true]
        );
        let (x, y) = (a.clone(), b.clone());
        let (n1, n2) = (number.clone(), number.clone());
        let third = tokio::spawn(async move {
            x.cap_reserve(&t("acme"), cap, now, &[entry(&n1, 3)])
                .await
                .unwrap()[0]
        });
        let fourth = tokio::spawn(async move {
            y.cap_reserve(&t("acme"), cap, now, &[entry(&n2, 4)])
                .await
                .unwrap()[0]
        });
        let (third, fourth) = (third.await.unwrap(), fourth.await.unwrap());
        assert!(third ^ fourth, "round {round}: 3rd {third}, 4th {fourth}");
    }
    // A first message of a number nobody has a ledger for yet, from both
    // nodes at once with a cap of one: one of them.
    let one = FrequencyCap { max: 1, ..cap };
    for round in 0..20u64 {
        let number = format!("+1212556{round:04}");
        let (x, y) = (a.clone(), b.clone());
        let (n1, n2) = (number.clone(), number.clone());
        let first = tokio::spawn(async move {
            x.cap_reserve(&t("acme"), one, now, &[entry(&n1, 1)])
                .await
                .unwrap()[0]
        });
        let second = tokio::spawn(async move {
            y.cap_reserve(&t("acme"), one, now, &[entry(&n2, 2)])
                .await
                .unwrap()[0]
        });
        let (first, second) = (first.await.unwrap(), second.await.unwrap());
        assert!(first ^ second, "round {round}: {first} {second}");
    }
}

/// Two nodes claiming one queue at once: every message goes to one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_claim_a_held_queue_without_sharing_a_message() {
    use stopgate::domain::segments::Encoding;
    use stopgate::domain::{Category, MessageId, MessageStatus};
    use stopgate::store::{HeldMessage, HeldStore, MessageRecord, StatusChange};
    let url = Cluster::shared().database().await;
    let a = Arc::new(PgStore::open(&pg::storage(&url)).await.unwrap());
    let b = Arc::new(PgStore::open(&pg::storage(&url)).await.unwrap());
    let held: Vec<HeldMessage> = (0..500)
        .map(|i| HeldMessage {
            record: MessageRecord {
                id: MessageId::generate(),
                tenant: t("acme"),
                to: format!("+1212555{i:04}"),
                country: None,
                category: Category::Transactional,
                campaign: None,
                sender: "ACME".into(),
                encoding: Encoding::Gsm7,
                segments: 1,
                provider: None,
                provider_id: None,
                body: None,
                callback: None,
                deliver_after: Some(1_000),
                history: vec![StatusChange {
                    status: MessageStatus::Scheduled,
                    at: 1,
                    error: None,
                }],
            },
            body: "Your parcel arrives today".into(),
            messaging_service: None,
            shortcode: None,
            cap_key: None,
            due: 1_000,
            lease_until: 0,
            begun: false,
        })
        .collect();
    a.hold(&held, &[]).await.unwrap();
    let claimer = |s: Arc<PgStore>| {
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s.claim_held(2_000, 16, 60_000).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|h| h.record.id));
            }
        })
    };
    let (from_a, from_b) = (claimer(a.clone()), claimer(b.clone()));
    let (from_a, from_b) = (from_a.await.unwrap(), from_b.await.unwrap());
    let mut all: Vec<_> = from_a.iter().chain(&from_b).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 500, "every message claimed once");
    assert_eq!(from_a.len() + from_b.len(), 500, "none claimed twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_delivery_reports_share_transactions_and_each_gets_its_own_answer() {
    use stopgate::domain::{MessageId, MessageStatus, Notification};
    use stopgate::store::messages::SharedNotify;
    use stopgate::store::{Applied, MessageRecord, MessageStore, OutboxStore};

    use crate::cases::{change, record};

    let url = Cluster::shared().database().await;
    let store = Arc::new(PgStore::open(&pg::storage(&url)).await.unwrap());
    let records: Vec<MessageRecord> = (0..100)
        .map(|i| {
            record(
                "acme",
                MessageId::generate_at(10_000 + i),
                &format!("+1212555{i:04}"),
                MessageStatus::Sent,
                Some(&format!("p-{i}")),
            )
        })
        .collect();
    store.put_messages(&records, &[]).await.unwrap();
    // A message sent in two parts, and one whose record no longer decodes.
    let parts = record(
        "acme",
        MessageId::generate_at(20_000),
        "+12125559999",
        MessageStatus::Sent,
        Some("q-a,q-b"),
    );
    let broken = record(
        "acme",
        MessageId::generate_at(20_001),
        "+12125559998",
        MessageStatus::Sent,
        Some("bad"),
    );
    store
        .put_messages(&[parts.clone(), broken.clone()], &[])
        .await
        .unwrap();
    sql(&url)
        .await
        .execute(
            "UPDATE messages SET record = '{' WHERE id = $1",
            &[&broken.id.as_str()],
        )
        .await
        .unwrap();
    let notify: SharedNotify =
        Arc::new(|r: &MessageRecord| vec![Notification::MessageStatus(r.event())]);
    // Every message reported delivered twice, 100 reports of ids no
    // message has, both parts of one message and the broken one: 303
    // reports at once.
    let tasks: Vec<_> = (0..303)
        .map(|i| {
            let s = store.clone();
            let notify = notify.clone();
            tokio::spawn(async move {
                let id = match i {
                    0..=199 => format!("p-{}", i % 100),
                    300 => "q-a".to_string(),
                    301 => "q-b".to_string(),
                    302 => "bad".to_string(),
                    _ => format!("nobody-{i}"),
                };
                let got = s
                    .report(
                        "http",
                        &id,
                        change(MessageStatus::Delivered, 5_000, None),
                        notify,
                    )
                    .await;
                (id, got.map(|r| r.map(|r| (r.record.id, r.applied))))
            })
        })
        .collect();
    let mut answers: BTreeMap<String, Vec<Applied>> = BTreeMap::new();
    let mut of_parts = Vec::new();
    for task in tasks {
        let (id, got) = task.await.unwrap();
        if id == "bad" {
            assert!(matches!(got, Err(StoreError::Corrupt(_))), "{got:?}");
            continue;
        }
        match got.unwrap() {
            Some((msg, applied)) if id.starts_with("q-") => {
                assert_eq!(msg, parts.id, "{id}");
                of_parts.push(applied);
            }
            Some((msg, applied)) => {
                let want = &records[id[2..].parse::<usize>().unwrap()].id;
                assert_eq!(&msg, want, "{id} answered with another message");
                answers.entry(id).or_default().push(applied);
            }
            None => assert!(id.starts_with("nobody-"), "{id} not found"),
        }
    }
    assert_eq!(answers.len(), 100);
    // The second part's report finds the message delivered already.
    of_parts.sort_by_key(|a| format!("{a:?}"));
    assert_eq!(of_parts, [Applied::Changed, Applied::Duplicate]);
    for (id, mut applied) in answers {
        applied.sort_by_key(|a| format!("{a:?}"));
        assert_eq!(applied, [Applied::Changed, Applied::Duplicate], "{id}");
    }
    let stats = store.report_writer_stats();
    assert_eq!(stats.items, 303);
    assert!(stats.transactions < 300 / 4, "303 reports took {stats:?}");
    let c = store.campaign_counters(&t("acme")).await.unwrap();
    assert_eq!((c[0].delivered, c[0].undelivered), (101, 0), "{c:?}");
    // One notification per change, written with it.
    assert_eq!(store.outbox_stats().await.unwrap().queued, 101);
    let r = store.message(&t("acme"), &parts.id).await.unwrap().unwrap();
    assert_eq!(r.status(), MessageStatus::Delivered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_idempotent_requests_share_transactions_and_each_is_settled_once() {
    use stopgate::store::{Attempt, IdempotencyStore};

    let url = Cluster::shared().database().await;
    let store = Arc::new(PgStore::open(&pg::storage(&url)).await.unwrap());
    // A finished request, one whose stored fingerprint no longer decodes,
    // and one begun by another request: their attempts are not fresh.
    store
        .begin_request(&t("acme"), "done", &[1u8; 32])
        .await
        .unwrap();
    store
        .finish_request(&t("acme"), "done", &[1u8; 32], b"first answer")
        .await
        .unwrap();
    sql(&url)
        .await
        .batch_execute(
            "INSERT INTO requests (tenant, reference, done, at, fingerprint)
             VALUES ('acme', 'short', false, 0, '\\x01')",
        )
        .await
        .unwrap();
    store
        .begin_request(&t("acme"), "other", &[2u8; 32])
        .await
        .unwrap();
    // 200 references begun three times each at once, and the three above.
    let tasks: Vec<_> = (0..603)
        .map(|i| {
            let s = store.clone();
            tokio::spawn(async move {
                let (reference, fp) = match i {
                    600 => ("done".to_string(), [1u8; 32]),
                    601 => ("short".to_string(), [1u8; 32]),
                    602 => ("other".to_string(), [3u8; 32]),
                    _ => (format!("r-{}", i % 200), [9u8; 32]),
                };
                let got = s.begin_request(&t("acme"), &reference, &fp).await;
                (reference, got)
            })
        })
        .collect();
    let mut fresh: BTreeMap<String, usize> = BTreeMap::new();
    for task in tasks {
        let (reference, got) = task.await.unwrap();
        match reference.as_str() {
            "done" => assert_eq!(got.unwrap(), Attempt::Done(b"first answer".to_vec())),
            "short" => assert!(matches!(got, Err(StoreError::Corrupt(_))), "{got:?}"),
            "other" => assert_eq!(got.unwrap(), Attempt::Mismatch),
            _ => match got.unwrap() {
                Attempt::Fresh => *fresh.entry(reference).or_default() += 1,
                Attempt::InProgress => {}
                a => panic!("{reference}: {a:?}"),
            },
        }
    }
    assert_eq!(fresh.len(), 200, "every reference begun once");
    assert!(fresh.values().all(|&n| n == 1), "{fresh:?}");
    // The answers, all at once; each read back as it was given.
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let s = store.clone();
            tokio::spawn(async move {
                s.finish_request(
                    &t("acme"),
                    &format!("r-{i}"),
                    &[9u8; 32],
                    format!("answer {i}").as_bytes(),
                )
                .await
                .unwrap()
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    for i in [0, 57, 199] {
        let got = store
            .begin_request(&t("acme"), &format!("r-{i}"), &[9u8; 32])
            .await
            .unwrap();
        assert_eq!(got, Attempt::Done(format!("answer {i}").into_bytes()));
    }
    let (begins, finishes) = store.request_writer_stats();
    assert!(begins.transactions < 600 / 4, "603 begins took {begins:?}");
    assert!(
        finishes.transactions < 200 / 4,
        "200 finishes took {finishes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_and_completions_share_transactions_and_keep_each_callers_order() {
    use stopgate::domain::{Notification, Source};
    use stopgate::store::OutboxStore;

    let url = Cluster::shared().database().await;
    let store = Arc::new(PgStore::open(&pg::storage(&url)).await.unwrap());
    // Each caller enqueues an opt-out and then an opt-in of its own number:
    // the opt-in must wait behind the opt-out, whatever batch they fell in.
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let s = store.clone();
            tokio::spawn(async move {
                let number = n(&format!("+33612{i:06}"));
                let note = |action| {
                    Notification::Subscription(Event::new(t("acme"), &number, action, Source::Sms))
                };
                s.enqueue(&[note(Action::OptOut), note(Action::OptIn)])
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.outbox_stats().await.unwrap().queued, 400);
    let now = stopgate::domain::now_millis() + 1_000;
    let claimed = store.claim(now, 1_000, 60_000).await.unwrap();
    assert_eq!(claimed.len(), 200, "one item per number: its first");
    for item in &claimed {
        match &item.notification {
            Notification::Subscription(e) => assert_eq!(e.action, Action::OptOut, "{e:?}"),
            other => panic!("{other:?}"),
        }
    }
    let (enqueued, _) = store.outbox_writer_stats();
    assert_eq!(enqueued.items, 400);
    assert!(
        enqueued.transactions < 200 / 4,
        "200 enqueues took {enqueued:?}"
    );

    // The 200 deliveries done at once: each item leaves the outbox, and the
    // opt-in queued behind it becomes the one to claim.
    let done: Vec<_> = claimed
        .iter()
        .map(|item| {
            let (s, id) = (store.clone(), item.id);
            tokio::spawn(async move { s.complete(id).await.unwrap() })
        })
        .collect();
    for task in done {
        task.await.unwrap();
    }
    assert_eq!(store.outbox_stats().await.unwrap().queued, 200);
    let next = store.claim(now, 1_000, 60_000).await.unwrap();
    assert_eq!(next.len(), 200);
    assert!(next.iter().all(|i| matches!(
        &i.notification,
        Notification::Subscription(e) if e.action == Action::OptIn
    )));
    let (_, completed) = store.outbox_writer_stats();
    assert_eq!(completed.items, 200);
    assert!(
        completed.transactions < 200 / 4,
        "200 completions took {completed:?}"
    );
}

/// A STOP's confirmation and its cap cost no commit of their own: both are
/// written in the events' transaction. Concurrent STOPs from one number
/// take its cap once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_and_its_cap_share_their_events_commit() {
    use stopgate::domain::{Notification, ShortCode};
    use stopgate::store::OutboxStore;

    let url = Cluster::shared().database().await;
    let store = Arc::new(PgStore::open(&pg::storage(&url)).await.unwrap());
    let num = n("+33612345641");
    let reply = Notification::Reply {
        to: num.clone(),
        from: ShortCode::parse("36111").unwrap(),
        body: "STOP recu".into(),
    };
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (s, reply) = (store.clone(), reply.clone());
            let stop = vec![(
                Event::new(t("acme"), &num, Action::OptOut, Source::Sms),
                vec![],
            )];
            tokio::spawn(async move {
                s.record_confirming(&stop, "confirm:x", Some(&reply))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut confirmed = 0;
    for task in tasks {
        let (changed, c) = task.await.unwrap();
        // The one that changed the state is confirmed, and no other.
        assert_eq!(changed == [true], c);
        confirmed += usize::from(c);
    }
    assert_eq!(confirmed, 1);
    let (begins, finishes) = store.request_writer_stats();
    assert_eq!(
        (begins.items, finishes.items),
        (0, 0),
        "{begins:?} {finishes:?}"
    );
    let (enqueues, _) = store.outbox_writer_stats();
    assert_eq!(enqueues.items, 0, "{enqueues:?}");
    let events = store.writer_stats();
    assert!(events.transactions < 16, "{events:?}");
    // The reply was committed with the opt-out.
    let now = stopgate::domain::now_millis() + 1_000;
    let claimed = store.claim(now, 10, 60_000).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].notification, reply);
}

/// A replay record kept in its report's batch (`Store::report_once`): when
/// a report of the batch turns out to be a replay, the batch is applied
/// again without it, and the answer another report keeps follows. Here the
/// replay came first in the batch: without it, the next report of the same
/// message is the one that changes it. A stale pending record of the same
/// content is taken over in the same transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_in_a_batch_of_reports_leaves_the_others_answers_right() {
    use stopgate::domain::{MessageId, MessageStatus};
    use stopgate::store::{
        Attempt, IdempotencyStore, MessageRecord, MessageStore, Once, Replay, ReportAnswer,
    };

    use crate::cases::{change, record};

    let url = Cluster::shared().database().await;
    let store = Arc::new(PgStore::open(&pg::storage(&url)).await.unwrap());
    let (blocker, m) = (MessageId::generate_at(1), MessageId::generate_at(2));
    store
        .put_messages(
            &[
                record(
                    "acme",
                    blocker.clone(),
                    "+12125550001",
                    MessageStatus::Sent,
                    Some("p-block"),
                ),
                record(
                    "acme",
                    m.clone(),
                    "+12125550002",
                    MessageStatus::Sent,
                    Some("p-m"),
                ),
            ],
            &[],
        )
        .await
        .unwrap();
    let scope = TenantId::webhooks();
    // "old" answered before (with another status: it must not be applied
    // now); "stale" begun by a crashed attempt long ago.
    store.begin_request(&scope, "old", &[1; 32]).await.unwrap();
    store
        .finish_request(&scope, "old", &[1; 32], b"first")
        .await
        .unwrap();
    let raw = sql(&url).await;
    raw.execute(
        "INSERT INTO requests (tenant, reference, done, at, fingerprint) VALUES ($1, 'stale', false, 0, $2)",
        &[&scope.as_str(), &&[3u8; 32][..]],
    )
    .await
    .unwrap();
    let answer: ReportAnswer = Arc::new(|applied| format!("{applied:?}").into_bytes());
    let report = |pid: &'static str, key: &'static str, content: u8| {
        let (s, answer) = (store.clone(), answer.clone());
        tokio::spawn(async move {
            let replay = Replay {
                key: key.into(),
                fingerprint: [content; 32],
            };
            let delivered = change(MessageStatus::Delivered, 5_000, None);
            s.report_once(
                "http",
                pid,
                delivered,
                Arc::new(|_: &MessageRecord| vec![]),
                &replay,
                answer,
            )
            .await
            .unwrap()
        })
    };
    // The writer is held on a locked record while the next batch queues.
    let mut lock = sql(&url).await;
    let tx = lock.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM messages WHERE id = $1 FOR UPDATE",
        &[&blocker.as_str()],
    )
    .await
    .unwrap();
    let held = report("p-block", "block", 9);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let replayed = report("p-m", "old", 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fresh = report("p-m", "new", 2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stale = report("nobody", "stale", 3);
    tokio::time::sleep(Duration::from_millis(100)).await;
    tx.rollback().await.unwrap();

    assert!(matches!(held.await.unwrap(), Once::Done { .. }));
    assert_eq!(
        replayed.await.unwrap(),
        Once::Seen(Attempt::Done(b"first".to_vec()))
    );
    match fresh.await.unwrap() {
        Once::Done { value, answer } => {
            assert_eq!(answer, b"Some(Changed)", "the replay was not applied");
            assert_eq!(value.unwrap().record.status(), MessageStatus::Delivered);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        stale.await.unwrap(),
        Once::Done {
            value: None,
            answer: b"None".to_vec()
        }
    );
    // What the records keep, as a replay would find it.
    for (key, content, kept) in [("new", 2, &b"Some(Changed)"[..]), ("stale", 3, b"None")] {
        assert_eq!(
            store
                .begin_request(&scope, key, &[content; 32])
                .await
                .unwrap(),
            Attempt::Done(kept.to_vec()),
            "{key}"
        );
    }
    // The second batch was one transaction: the replay, the report and the take-over.
    assert_eq!(store.report_writer_stats().transactions, 2);
    let r = store.message(&t("acme"), &m).await.unwrap().unwrap();
    assert_eq!(r.history.len(), 2);
}

/// A reply's replay record left pending by a crash long ago is taken over
/// in the events' transaction: the reply is recorded, and the record keeps
/// its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_replay_record_of_a_reply_is_taken_over_in_its_events_write() {
    use stopgate::store::{Attempt, IdempotencyStore, Once, Replay};

    let url = Cluster::shared().database().await;
    let store = PgStore::open(&pg::storage(&url)).await.unwrap();
    let scope = TenantId::webhooks();
    sql(&url)
        .await
        .execute(
            "INSERT INTO requests (tenant, reference, done, at, fingerprint) VALUES ($1, 'mo:stale', false, 0, $2)",
            &[&scope.as_str(), &&[7u8; 32][..]],
        )
        .await
        .unwrap();
    let stop = Event::new(t("acme"), &n("+33612345642"), Action::OptOut, Source::Sms);
    let replay = Replay {
        key: "mo:stale".into(),
        fingerprint: [7; 32],
    };
    let recorded = store
        .record_once(&[(stop, vec![])], None, &replay, b"stopped".to_vec())
        .await
        .unwrap();
    assert_eq!(
        recorded,
        Once::Done {
            value: (vec![true], false),
            answer: b"stopped".to_vec()
        }
    );
    assert_eq!(
        store
            .begin_request(&scope, "mo:stale", &[7; 32])
            .await
            .unwrap(),
        Attempt::Done(b"stopped".to_vec())
    );
}

/// Send counters go through a batching writer: concurrent requests' increments
/// of one campaign share transactions, and the sums are exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_send_counters_share_transactions_and_stay_exact() {
    use stopgate::domain::Campaign;

    let url = Cluster::shared().database().await;
    let store = Arc::new(PgStore::open(&pg::storage(&url)).await.unwrap());
    let bf = Campaign::parse("bf").unwrap();
    let tasks: Vec<_> = (0..200u64)
        .map(|i| {
            let (s, bf) = (store.clone(), bf.clone());
            tokio::spawn(async move {
                if i % 4 == 0 {
                    s.count_marketing_blocked(&t("acme"), Some(&bf), 1).await
                } else {
                    s.count_marketing_sent(&t("acme"), Some(&bf), 2, 3).await
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let c = store.campaign_counters(&t("acme")).await.unwrap();
    let bf = c.iter().find(|c| c.campaign.is_some()).unwrap();
    assert_eq!((bf.sent, bf.segments, bf.blocked), (300, 450, 50), "{bf:?}");
    let (stats, _) = store.counter_writer_stats();
    assert_eq!(stats.items, 200);
    assert!(
        stats.transactions < 200 / 4,
        "200 increments took {stats:?}"
    );
}

/// Marketing sends through short codes go through a batching writer: a
/// number sent to by two concurrent requests keeps one row (the last
/// queued), and the requests share transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_marketing_sends_share_transactions_and_keep_one_row_per_number() {
    use stopgate::domain::{Campaign, ShortCode};
    use stopgate::store::AttributionStore;

    let url = Cluster::shared().database().await;
    let store = Arc::new(PgStore::open(&pg::storage(&url)).await.unwrap());
    let code = ShortCode::parse("36111").unwrap();
    let tasks: Vec<_> = (0..100i64)
        .map(|i| {
            let (s, code) = (store.clone(), code.clone());
            tokio::spawn(async move {
                // Every request sends to +33612340000 and to a number of its own.
                let sends = [
                    (n("+33612340000"), code.clone()),
                    (n(&format!("+3361235{i:04}")), code.clone()),
                    (n(&format!("+3361235{i:04}")), code),
                ];
                let campaign = Campaign::parse(&format!("c{i}")).unwrap();
                s.note_marketing_sends(&t("acme"), Some(&campaign), 1_000 + i, &sends)
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let shared = store
        .last_marketing_send(&n("+33612340000"), &code, &t("acme"))
        .await
        .unwrap()
        .unwrap();
    assert!((1_000..1_100).contains(&shared.at), "{shared:?}");
    assert_eq!(
        shared.campaign.as_ref().map(|c| c.as_str().to_string()),
        Some(format!("c{}", shared.at - 1_000)),
        "the row is one request's send, whole"
    );
    for i in [0, 57, 99] {
        let own = store
            .last_marketing_send(&n(&format!("+3361235{i:04}")), &code, &t("acme"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(own.at, 1_000 + i);
    }
    let (_, stats) = store.counter_writer_stats();
    assert_eq!(stats.items, 300);
    assert!(stats.transactions < 100 / 4, "100 requests took {stats:?}");
}
