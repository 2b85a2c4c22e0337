//! "Durable" means on stable storage: every acknowledged opt-out and every
//! forwarded link has an `fsync`/`fdatasync` of the store's files complete
//! between its request and its answer. Checked as the problem was found:
//! the real binary under `strace`, its sync calls set against each request's
//! wall-clock window. (A SIGKILL test cannot see this: the page cache
//! survives a killed process, not a power loss.)

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::crash::{sigkill, start_with, write_config};
use crate::helpers::*;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A completed `fsync`/`fdatasync` of a file: when it started and ended.
#[derive(Debug)]
struct Sync {
    path: String,
    start: f64,
    end: f64,
}

/// Reads `strace -f -ttt -T -y` output: `PID TIME call(FD</path>) = 0 <DUR>`,
/// or a call split by another thread's into `<unfinished ...>` and
/// `<... call resumed> ... <DUR>` (the duration counts from the start).
fn syncs(trace: &str) -> Vec<Sync> {
    let mut pending: std::collections::HashMap<&str, (f64, String)> = Default::default();
    let mut out = Vec::new();
    for line in trace.lines() {
        // strace pads the pid: `6318  1796161541.807168 fsync(...`.
        let mut words = line.split_whitespace();
        let (Some(pid), Some(ts)) = (words.next(), words.next()) else {
            continue;
        };
        let rest = line[line.find(ts).expect("a word of the line") + ts.len()..].trim_start();
        let Ok(ts) = ts.parse::<f64>() else { continue };
        let duration = |s: &str| -> Option<f64> {
            let d = s.rsplit_once('<')?.1.strip_suffix('>')?;
            d.parse().ok()
        };
        let ok = |s: &str| s.contains(") = 0 ");
        if rest.starts_with("fsync(") || rest.starts_with("fdatasync(") {
            let path = rest
                .split_once('<')
                .and_then(|(_, p)| p.split_once('>'))
                .map(|(p, _)| p.to_string())
                .unwrap_or_default();
            if rest.ends_with("<unfinished ...>") {
                pending.insert(pid, (ts, path));
            } else if let (true, Some(d)) = (ok(rest), duration(rest)) {
                out.push(Sync {
                    path,
                    start: ts,
                    end: ts + d,
                });
            }
        } else if rest.starts_with("<... fsync resumed>")
            || rest.starts_with("<... fdatasync resumed>")
        {
            if let (Some((start, path)), true, Some(d)) =
                (pending.remove(pid), ok(rest), duration(rest))
            {
                out.push(Sync {
                    path,
                    start,
                    end: start + d,
                });
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_has_an_fsync_of_the_store_before_its_answer() {
    assert!(
        std::process::Command::new("strace")
            .arg("-V")
            .output()
            .is_ok(),
        "strace is missing: run ./scripts/install-test-deps.sh (./scripts/test.sh does)"
    );
    let mock = MockProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &mock);
    let trace = dir.path().join("strace.out");
    let trace_arg = trace.display().to_string();
    let app = start_with(
        &[
            "strace",
            "-f",
            "-ttt",
            "-T",
            "-y",
            "-e",
            "trace=fsync,fdatasync,sync_file_range",
            "-o",
            &trace_arg,
        ],
        &config,
    )
    .await;
    let client = reqwest::Client::new();

    // 20 STOPs, then 10 sends whose link is minted (the US: a link country).
    let mut windows: Vec<(String, f64, f64)> = Vec::new();
    for i in 0..20 {
        let body = serde_json::to_vec(
            &json!({"from": format!("+336120000{i:02}"), "to": "36111", "text": "STOP"}),
        )
        .unwrap();
        let t0 = now();
        let resp = client
            .post(format!("{}/v1/inbound", app.public))
            .header("content-type", "application/json")
            .header("x-stopgate-signature", sign(INBOUND_SECRET, &body))
            .body(body)
            .send()
            .await
            .unwrap();
        let v: Value = resp.json().await.unwrap();
        let t1 = now();
        assert_eq!(v["action"], "opted_out", "{v}");
        windows.push((format!("STOP {i}"), t0, t1));
    }
    for i in 0..10 {
        let t0 = now();
        let resp: Value = client
            .post(format!("{}/v1/messages", app.api))
            .bearer_auth(ACME_KEY)
            .json(&json!({"to": format!("+1212555{i:04}"), "from": "ACME", "body": "Sale"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let t1 = now();
        assert_eq!(resp["results"][0]["status"], "sent", "{resp}");
        assert_eq!(resp["results"][0]["optout"]["method"], "url");
        windows.push((format!("link send {i}"), t0, t1));
    }
    // strace writes as calls return; give it a moment, then stop everything:
    // the traced binary first (a killed strace would leave it running).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let strace = app.child.id().expect("strace runs");
    let traced = std::fs::read_to_string(format!("/proc/{strace}/task/{strace}/children"))
        .unwrap_or_default();
    for pid in traced.split_whitespace() {
        let _ = std::process::Command::new("kill")
            .args(["-9", pid])
            .status();
    }
    sigkill(app).await;
    let text = std::fs::read_to_string(&trace).unwrap();
    let store = dir.path().join("db");
    let store = store.to_str().unwrap();
    let synced: Vec<Sync> = syncs(&text)
        .into_iter()
        .filter(|s| Path::new(&s.path).starts_with(store))
        .collect();
    assert!(!synced.is_empty(), "no fsync of the store at all:\n{text}");
    let unsynced: Vec<&str> = windows
        .iter()
        .filter(|(_, t0, t1)| !synced.iter().any(|s| s.start >= *t0 && s.end <= *t1))
        .map(|(what, _, _)| what.as_str())
        .collect();
    assert!(
        unsynced.is_empty(),
        "answered without an fsync of the store in between: {unsynced:?}"
    );
}

#[test]
fn strace_lines_are_read_whole_and_split() {
    let trace = "\
10    1700000000.100000 fdatasync(7</tmp/s/db/db>) = 0 <0.002000>
11 1700000000.200000 fsync(9</tmp/s/db/blobs/5> <unfinished ...>
10 1700000000.201000 sync_file_range(7</tmp/s/db/db>, 0, 4096, 7) = 0 <0.000100>
11 1700000000.205000 <... fsync resumed>) = 0 <0.010000>
12 1700000000.300000 fsync(3</tmp/other>) = -1 EIO (Input/output error) <0.000010>
";
    let s = syncs(trace);
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!(s[0].path, "/tmp/s/db/db");
    assert!((s[0].end - 1_700_000_000.102).abs() < 1e-6);
    assert_eq!(s[1].path, "/tmp/s/db/blobs/5");
    assert!((s[1].end - 1_700_000_000.210).abs() < 1e-6);
}
