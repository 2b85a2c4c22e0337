//! The binary itself: config checking and the zero-config demo.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_stopgate");

#[tokio::test]
async fn check_config_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stopgate.toml");
    std::fs::write(
        &file,
        "[server]\napi_listen = \"nowhere\"\n[[tenants]]\nid = \"acme\"\nname = \"ACME\"\napi_key = \"k\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.api_listen") && err.contains("nowhere"),
        "{err}"
    );

    std::fs::write(&file, "[upstream]\nkind = \"carrier-pigeon\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("upstream.kind") && err.contains("carrier-pigeon"),
        "{err}"
    );

    std::fs::write(&file, "[shortcodes]\nFR = \"36111\"\n[[tenants]]\nid = \"acme\"\nname = \"ACME\"\napi_key = \"k\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("no short code configured for DE"));
}

#[tokio::test]
async fn check_config_refuses_an_empty_storage_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stopgate.toml");
    let tenant = "[[tenants]]\nid = \"acme\"\nname = \"ACME\"\napi_key = \"k\"\n";
    for (toml, env) in [
        (format!("[storage]\npath = \"\"\n{tenant}"), None),
        (format!("[storage]\npath = \"  \"\n{tenant}"), None),
        (tenant.to_string(), Some(" ")),
    ] {
        std::fs::write(&file, &toml).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["check-config", "--config"]).arg(&file);
        if let Some(v) = env {
            cmd.env("STOPGATE_STORAGE__PATH", v);
        }
        let out = cmd.output().await.unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{toml} {env:?}: {err}");
        assert!(err.contains("storage.path"), "{err}");
    }
}

#[tokio::test]
async fn env_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stopgate.toml");
    std::fs::write(&file, "[server]\napi_listen = \"127.0.0.1:8080\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&file)
        .env("STOPGATE_SERVER__API_LISTEN", "bad-address")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad-address"));
}

/// `stopgate` with no config: a working demo gateway whose key is printed,
/// which stops cleanly on SIGTERM.
#[tokio::test]
async fn zero_config_demo_starts_sends_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .current_dir(dir.path())
        .env("STOPGATE_SERVER__API_LISTEN", "127.0.0.1:0")
        .env("STOPGATE_SERVER__PUBLIC_LISTEN", "127.0.0.1:0")
        .env_remove("STOPGATE_CONFIG")
        .env("RUST_LOG", "stopgate=debug,info")
        .stdout(Stdio::piped())
        .stderr(crate::helpers::child_log("demo"))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut api, mut key) = (None, None);
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(v) = line.trim().strip_prefix("API:") {
                api = Some(v.trim().to_string());
            }
            if let Some(v) = line.trim().strip_prefix("demo tenant API key:") {
                key = Some(v.trim().to_string());
                break;
            }
        }
    })
    .await
    .expect("the demo banner is printed");
    let (api, key) = (api.unwrap(), key.unwrap());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("data/demo-api-key")).unwrap(),
        key
    );

    let resp: serde_json::Value = reqwest::Client::new()
        .post(format!("{api}/v1/messages"))
        .bearer_auth(&key)
        .json(&json!({"to": "+33612345678", "from": "DEMO", "body": "Hello"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The demo keeps the shipped send windows and runs on the host's clock:
    // outside FR's window (at night, on a Sunday) marketing is held, with
    // its footer already in and a release time ahead.
    let r = &resp["results"][0];
    match r["status"].as_str() {
        Some("sent") => assert!(r.get("deliver_after").is_none(), "{resp}"),
        Some("scheduled") => {
            let at: jiff::Timestamp = r["deliver_after"].as_str().unwrap().parse().unwrap();
            assert!(at > jiff::Timestamp::now(), "{resp}");
        }
        _ => panic!("neither sent nor held: {resp}"),
    }
    assert_eq!(r["body"], "Hello\nSTOP au 36111");

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("stops after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn the_example_production_config_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/stopgate.example.toml");
    let out = Command::new(BIN)
        .args(["check-config", "--config", example])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The operator CLI imports a CSV into a tenant's list and exports it back.
#[tokio::test]
async fn suppressions_cli_imports_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("stopgate.toml");
    std::fs::write(
        &cfg,
        format!(
            "[storage]\npath = \"{}\"\n[[tenants]]\nid = \"acme\"\nname = \"ACME\"\napi_key = \"k1\"\n[[tenants]]\nid = \"beta\"\nname = \"Beta\"\napi_key = \"k2\"\n",
            dir.path().join("db").display()
        ),
    )
    .unwrap();
    let csv = dir.path().join("in.csv");
    std::fs::write(
        &csv,
        "number,reason\n+33612345678,=1+1\n0044 7400 123456,\nbad,\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["suppressions", "import", "--tenant", "acme", "--config"])
        .arg(&cfg)
        .arg(&csv)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("rows: 3, imported: 2, unchanged: 0, failed: 1"),
        "{stdout}"
    );
    assert!(stdout.contains("line 4:"), "{stdout}");

    let exported = dir.path().join("out.csv");
    let out = Command::new(BIN)
        .args(["suppressions", "export", "--tenant", "acme", "--output"])
        .arg(&exported)
        .arg("--config")
        .arg(&cfg)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&exported).unwrap();
    let numbers: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(numbers, ["+33612345678", "+447400123456"]);
    // The CLI's export neutralises formulas like the API's (one function).
    assert!(text.lines().nth(1).unwrap().ends_with(",'=1+1,"), "{text}");

    let out = Command::new(BIN)
        .args(["suppressions", "export", "--tenant", "nobody", "--config"])
        .arg(&cfg)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Text logs written to a file carry no ANSI colour codes: colours are only
/// for a terminal (stderr here is a file, as under systemd or `2>log`).
#[tokio::test]
async fn text_logs_to_a_file_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("stopgate.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\napi_listen = \"127.0.0.1:0\"\npublic_listen = \"127.0.0.1:0\"\n[storage]\npath = \"{}\"\n[log]\nformat = \"text\"\nfilter = \"stopgate=debug,info\"\n[[tenants]]\nid = \"acme\"\nname = \"ACME\"\napi_key = \"k1\"\n",
            dir.path().join("db").display()
        ),
    )
    .unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .env_remove("RUST_LOG")
        .env_remove("STOPGATE_CONFIG")
        // Not what keeps the colours out: the test must fail without the fix.
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut text = String::new();
    for _ in 0..300 {
        text = std::fs::read_to_string(&log).unwrap();
        if text.contains("stopgate listening") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().await.unwrap();
    assert!(text.contains("stopgate listening"), "{text}");
    assert!(text.contains("INFO"), "text format with levels: {text}");
    assert!(
        !text.contains('\u{1b}'),
        "an ANSI escape in a log file: {text:?}"
    );
}
