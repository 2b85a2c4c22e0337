//! The store against a model: CSV imports (in bulk, with reasons, with
//! repeats and bad rows) interleaved with per-number opt-outs and
//! re-subscribes, checked after every step for state, history and the
//! paged listing. On sled the backend has bulk chunks of 3 and import
//! rounds of 5, so merges split chunks and one import runs several merges.
//!
//! Every generated case uses tenants of its own, so that all cases can share
//! one backend (a database per case would be slow on PostgreSQL).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use stopgate::domain::{Action, Event, PhoneNumber, Source, TenantId};
use stopgate::store::Store;
use stopgate::suppressions::import_csv;

use crate::backends::Backend;

#[derive(Debug, Clone)]
enum Op {
    /// (number index, reason?) rows, plus one bad row if `bad`.
    Import(usize, Vec<(usize, bool)>, bool),
    Event(usize, usize, Action, Source),
}

fn number(i: usize) -> String {
    // Numbers of different lengths and countries, so that string order and
    // packed order are both exercised.
    match i % 3 {
        0 => format!("+1212555{:04}", 100 + i),
        1 => format!("+336123456{:02}", i),
        _ => format!("+4474001234{:02}", i),
    }
}

fn op() -> impl Strategy<Value = Op> {
    let n = 0..24usize;
    prop_oneof![
        (
            0..2usize,
            prop::collection::vec((n.clone(), prop::bool::weighted(0.2)), 0..20),
            any::<bool>()
        )
            .prop_map(|(t, rows, bad)| Op::Import(t, rows, bad)),
        (
            0..2usize,
            n,
            prop_oneof![Just(Action::OptOut), Just(Action::OptIn)],
            prop_oneof![Just(Source::Sms), Just(Source::Api), Just(Source::Link)]
        )
            .prop_map(|(t, n, a, s)| Op::Event(t, n, a, s)),
    ]
}

type Model = BTreeMap<(usize, String), (bool, Vec<(Action, Source)>)>;

fn apply_model(model: &mut Model, t: usize, n: String, action: Action, source: Source) -> bool {
    let entry = model.entry((t, n)).or_insert((false, Vec::new()));
    let suppressed = action == Action::OptOut;
    if entry.0 == suppressed {
        return false;
    }
    entry.0 = suppressed;
    entry.1.push((action, source));
    true
}

async fn run(store: &dyn Store, case: usize, ops: Vec<Op>, page: usize) {
    let tenants = [
        TenantId::parse(&format!("m{case}a")).unwrap(),
        TenantId::parse(&format!("m{case}b")).unwrap(),
    ];
    let mut model = Model::new();
    for op in ops {
        match op {
            Op::Import(t, rows, bad) => {
                let mut csv = String::from("number,reason\n");
                let mut expected = 0;
                for (i, reason) in &rows {
                    csv.push_str(&number(*i));
                    csv.push_str(if *reason { ",asked\n" } else { ",\n" });
                    expected +=
                        apply_model(&mut model, t, number(*i), Action::OptOut, Source::Import)
                            as u64;
                }
                if bad {
                    csv.push_str("12,\n");
                }
                let report = import_csv(store, &tenants[t], csv.as_bytes())
                    .await
                    .unwrap();
                assert_eq!(report.imported, expected, "imported of {rows:?}");
                assert_eq!(report.imported + report.unchanged, rows.len() as u64);
                assert_eq!(report.failed, bad as u64);
            }
            Op::Event(t, i, action, source) => {
                let n = PhoneNumber::parse(&number(i)).unwrap();
                let changed = store
                    .record(&Event::new(tenants[t].clone(), &n, action, source))
                    .await
                    .unwrap();
                assert_eq!(
                    changed,
                    apply_model(&mut model, t, number(i), action, source)
                );
            }
        }
        for (t, tenant) in tenants.iter().enumerate() {
            for i in 0..24 {
                let n = PhoneNumber::parse(&number(i)).unwrap();
                let want = model.get(&(t, number(i)));
                let got = store.suppression(tenant, &n).await.unwrap();
                assert_eq!(
                    got.as_ref().is_some_and(|s| s.suppressed),
                    want.is_some_and(|w| w.0),
                    "{tenant} {n}"
                );
                let history: Vec<(Action, Source)> = store
                    .events(tenant, &n)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| (e.action, e.source))
                    .collect();
                assert_eq!(
                    history,
                    want.map(|w| w.1.clone()).unwrap_or_default(),
                    "{tenant} {n}"
                );
                if let (Some(s), Some(w)) = (&got, want) {
                    assert_eq!(Some(s.source), w.1.last().map(|h| h.1));
                }
            }
            let expected: Vec<String> = model
                .iter()
                .filter(|((mt, _), (s, _))| *mt == t && *s)
                .map(|((_, n), _)| n.clone())
                .collect();
            let mut listed = Vec::new();
            let mut after: Option<PhoneNumber> = None;
            loop {
                let p = store
                    .suppressed_page(tenant, after.as_ref(), page)
                    .await
                    .unwrap();
                assert!(p.len() <= page);
                listed.extend(p.iter().map(|(n, s)| {
                    assert!(s.suppressed);
                    n.as_str().to_string()
                }));
                if p.len() < page {
                    break;
                }
                after = p.last().map(|(n, _)| n.clone());
            }
            assert_eq!(listed, expected, "listing of {tenant} in pages of {page}");
        }
    }
}

/// 64 generated cases against one backend (a multi-thread runtime: each case
/// blocks this worker while it runs).
pub async fn check(b: &Backend) {
    let cases = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config::with_cases(64));
    let strategy = (prop::collection::vec(op(), 1..12), 1..6usize);
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| {
        runner.run(&strategy, |(ops, page)| {
            let case = cases.fetch_add(1, Ordering::SeqCst);
            handle.block_on(run(b.store.as_ref(), case, ops, page));
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
