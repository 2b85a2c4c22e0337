//! A store that fails says so and comes back by itself: the store's log file
//! is made immutable (`chattr +i`, as a failing or full disk refuses writes)
//! and writable again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// Makes a file immutable until dropped.
pub(crate) struct Immutable(PathBuf);

impl Immutable {
    pub(crate) fn set(path: &Path) -> Immutable {
        let status = std::process::Command::new("chattr")
            .arg("+i")
            .arg(path)
            .status()
            .expect("chattr runs");
        assert!(status.success(), "chattr +i {}", path.display());
        Immutable(path.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

/// chattr needs CAP_LINUX_IMMUTABLE (root). CI and these machines run as root.
pub(crate) fn can_chattr() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

async fn readyz(app: &TestApp) -> StatusCode {
    let status = app
        .client
        .get(format!("{}/readyz", app.api))
        .send()
        .await
        .unwrap()
        .status();
    StatusCode::from_u16(status.as_u16()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_write_is_not_ready_fails_closed_and_recovers_by_itself() {
    if !can_chattr() {
        panic!("this test needs root for chattr +i (CI runs as root)");
    }
    let app = spawn_app().await;
    assert_eq!(readyz(&app).await, StatusCode::OK);
    let fr = "+33612345601";
    let us = "+12125550199";

    let guard = Immutable::set(&app.store_path().join("db"));
    // A STOP is not acknowledged: the provider must retry it.
    let (status, _) = app.mo(fr, "36111", "STOP").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(readyz(&app).await, StatusCode::SERVICE_UNAVAILABLE);
    // Marketing fails closed; an OTP goes out as usual.
    let r = app
        .send_one(ACME_KEY, json!({"to": us, "from": "ACME", "body": "Sale"}))
        .await;
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["code"], "store_unavailable", "{r}");
    let r = app
        .send_one(
            ACME_KEY,
            json!({"to": us, "from": "ACME", "body": "Code 1234", "category": "otp"}),
        )
        .await;
    assert_eq!(r["status"], "sent", "{r}");
    assert_eq!(app.mock.received_for(us).len(), 1, "only the OTP went out");
    // Still failing a moment later: it does not pretend.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(readyz(&app).await, StatusCode::SERVICE_UNAVAILABLE);

    drop(guard);
    let mut ready = false;
    for _ in 0..100 {
        if readyz(&app).await == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the store did not come back within 10 s");
    // The provider's retry of the STOP now lands, and sticks.
    let (status, body) = app.mo(fr, "36111", "STOP").await;
    assert_eq!(
        (status, body["action"].as_str()),
        (StatusCode::OK, Some("opted_out"))
    );
    assert!(app.blocked(ACME_KEY, fr).await);
    let r = app
        .send_one(ACME_KEY, json!({"to": us, "from": "ACME", "body": "Sale"}))
        .await;
    assert_eq!(r["status"], "sent", "{r}");
    let metrics = app
        .client
        .get(format!("{}/metrics", app.api))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("stopgate_store_reopens_total"),
        "{metrics}"
    );
}
