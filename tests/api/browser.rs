//! A real browser on the opt-out page: Debian's headless Chromium through
//! chromedriver (WebDriver, via fantoccini). It loads the page at phone
//! width, picks a reason, presses the one button, and the number is
//! suppressed; once per script the pages are written in (Latin, Cyrillic,
//! Greek, Arabic right to left, CJK). Screenshots land in
//! `target/screenshots/` (`optout-<script>-<lang>.png`, `done-...`) for review.
//!
//! Chromium and chromedriver come from `scripts/install-test-deps.sh`; the
//! test fails (it does not skip) when they are missing.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::error::{CmdError, ErrorStatus};
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::*;
use crate::languages::example_mobile;

/// Phone width in CSS pixels (an iPhone 12-15).
const WIDTH: u32 = 390;
const HEIGHT: u32 = 844;

fn find_program(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().find_map(|c| {
        let p = Path::new(c);
        if p.is_absolute() {
            p.is_file().then(|| p.to_path_buf())
        } else {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(c))
                    .find(|f| f.is_file())
            })
        }
    })
}

fn required(what: &str, candidates: &[&str]) -> PathBuf {
    find_program(candidates).unwrap_or_else(|| {
        panic!(
            "{what} not found (looked for {candidates:?}): run scripts/install-test-deps.sh \
             (it installs Debian's chromium and chromium-driver)"
        )
    })
}

/// chromedriver on a free port; the port is read from its banner.
async fn start_chromedriver(bin: &Path) -> (Child, u16) {
    let mut child = Command::new(bin)
        .arg("--port=0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromedriver");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(p) = line.split("started successfully on port ").nth(1) {
                return p.trim().trim_end_matches('.').parse::<u16>().unwrap();
            }
        }
        panic!("chromedriver exited without starting");
    })
    .await
    .expect("chromedriver starts");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, port)
}

fn screenshot_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp, whatever the target directory is.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_opts_out_with_one_click() {
    let chromium = required(
        "chromium",
        &["/usr/lib/chromium/chromium", "chromium", "chromium-browser"],
    );
    let chromedriver = required("chromedriver", &["chromedriver"]);
    // Without a font for a script, the screenshot shows boxes and proves nothing.
    for lang in ["ru", "el", "ar", "ja"] {
        let fonts = std::process::Command::new("fc-list")
            .arg(format!(":lang={lang}"))
            .output()
            .expect("fc-list (fontconfig, installed with chromium)");
        assert!(
            !fonts.stdout.is_empty(),
            "no font for {lang}: run scripts/install-test-deps.sh"
        );
    }

    // No shared French code, so French numbers get links (the fallback).
    let app = spawn_app_with(|c| {
        c.shortcodes.remove("FR");
    })
    .await;
    let (mut driver, port) = start_chromedriver(&chromedriver).await;
    let profile = tempfile::tempdir().unwrap();
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--hide-scrollbars",
                format!("--user-data-dir={}", profile.path().display()),
                format!("--window-size={WIDTH},{HEIGHT}"),
            ],
            "mobileEmulation": {
                "deviceMetrics": {"width": WIDTH, "height": HEIGHT, "pixelRatio": 2.0}
            },
        },
    });
    let caps = match caps {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let browser = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session with headless chromium");

    let shots = screenshot_dir();
    // One case per script the pages are written in (DESIGN.md §3: the page
    // is in the recipient's language); each leaves two screenshots.
    let ar = example_mobile("EG");
    let ru = example_mobile("RU");
    let el = example_mobile("GR");
    let ja = example_mobile("JP");
    let cases = [
        // (script, lang, number, campaign, reason to pick, button, done title)
        (
            "latin",
            "fr",
            "+33612345678",
            "soldes-ete",
            Some("too_many"),
            "Me désinscrire",
            "Vous êtes désinscrit",
        ),
        (
            "latin",
            "en",
            "+12125550123",
            "bf-2026",
            None,
            "Unsubscribe",
            "You are unsubscribed",
        ),
        (
            "cyrillic",
            "ru",
            ru.as_str(),
            "leto",
            Some("not_interested"),
            "Отписаться",
            "Вы отписались",
        ),
        (
            "greek",
            "el",
            el.as_str(),
            "kalokairi",
            None,
            "Διαγραφή",
            "Η διαγραφή σας ολοκληρώθηκε",
        ),
        (
            "arabic",
            "ar",
            ar.as_str(),
            "ramadan",
            Some("never_signed_up"),
            "إلغاء الاشتراك",
            "تم إلغاء اشتراكك",
        ),
        (
            "cjk",
            "ja",
            ja.as_str(),
            "natsu",
            Some("other"),
            "配信を停止する",
            "配信を停止しました",
        ),
    ];
    // Run the checks, then always end the session (so chromium exits) before
    // reporting a failure.
    let outcome = std::panic::AssertUnwindSafe(async {
        for (script, lang, number, campaign, reason, button, done_title) in cases {
            let r = app
                .send_one(
                    ACME_KEY,
                    json!({"to": number, "from": "ACME", "body": "Deals", "campaign": campaign}),
                )
                .await;
            let url = r["optout"]["url"].as_str().expect("a link footer");
            let page = url.replace(BASE_URL, &app.public);

            browser.goto(&page).await.unwrap();
            browser
                .find(Locator::Css(&format!("html[lang={lang}]")))
                .await
                .unwrap_or_else(|_| panic!("the page is in {lang}"));
            let btn = browser
                .find(Locator::Css("button[type=submit]"))
                .await
                .unwrap();
            assert_eq!(btn.text().await.unwrap(), button);
            let width = browser
                .find(Locator::Css("body"))
                .await
                .unwrap()
                .rectangle()
                .await
                .unwrap()
                .2;
            assert!(
                width <= f64::from(WIDTH),
                "no horizontal scrolling: body is {width}px"
            );
            // Laid out in the script's direction: the radio button starts
            // each reason's row, on the left, or on the right in Arabic.
            let dir = browser
                .find(Locator::Css("html"))
                .await
                .unwrap()
                .attr("dir")
                .await
                .unwrap();
            let radio_x = browser
                .find(Locator::Css("input[name=reason]"))
                .await
                .unwrap()
                .rectangle()
                .await
                .unwrap()
                .0;
            let label_x = browser
                .find(Locator::Css("label span"))
                .await
                .unwrap()
                .rectangle()
                .await
                .unwrap()
                .0;
            if lang == "ar" {
                assert_eq!(dir.as_deref(), Some("rtl"));
                assert!(radio_x > label_x, "{lang}: radio {radio_x}, text {label_x}");
                // The number inside the Arabic sentence still reads left to
                // right: its `+` is left of its last digit.
                let xs = browser
                    .execute(
                        "const t = document.querySelector('strong.n').firstChild;\
                         const r = document.createRange();\
                         const x = i => { r.setStart(t, i); r.setEnd(t, i + 1);\
                           return r.getBoundingClientRect().x; };\
                         return [x(0), x(t.length - 1)];",
                        vec![],
                    )
                    .await
                    .unwrap();
                let (plus, last) = (xs[0].as_f64().unwrap(), xs[1].as_f64().unwrap());
                assert!(
                    plus < last,
                    "the number is reversed: + at {plus}, last digit at {last}"
                );
            } else {
                assert_eq!(dir, None, "{lang}");
                assert!(radio_x < label_x, "{lang}: radio {radio_x}, text {label_x}");
            }
            let png = browser.screenshot().await.unwrap();
            std::fs::write(shots.join(format!("optout-{script}-{lang}.png")), &png).unwrap();
            assert!(
                !app.blocked(ACME_KEY, number).await,
                "loading the page opted out"
            );

            if let Some(reason) = reason {
                browser
                    .find(Locator::Css(&format!("input[name=reason][value={reason}]")))
                    .await
                    .unwrap()
                    .click()
                    .await
                    .unwrap();
            }
            btn.click().await.unwrap();
            let done = wait_for_id(&browser, "done").await;
            assert_eq!(done.text().await.unwrap(), done_title);
            let png = browser.screenshot().await.unwrap();
            std::fs::write(shots.join(format!("done-{script}-{lang}.png")), &png).unwrap();

            assert!(
                app.blocked(ACME_KEY, number).await,
                "{lang}: the click opted out"
            );
            let events = app.events("acme", number).await;
            assert_eq!(events.len(), 1);
            assert_eq!(
                events[0].campaign.as_ref().map(|c| c.as_str()),
                Some(campaign)
            );
            assert_eq!(events[0].reason.as_deref(), reason);
        }
    })
    .catch_unwind()
    .await;
    let _ = browser.close().await;
    let _ = driver.start_kill();
    let _ = driver.wait().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The element `id` of the page a click navigates to, once it has loaded.
/// Chromedriver answers a look-up made while the navigation is still under
/// way with "aborted by navigation", which is not a W3C error, so
/// fantoccini's own wait gives up on it (a loaded CI machine hit it): here
/// it is waited out like a missing element.
async fn wait_for_id(browser: &Client, id: &str) -> Element {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match browser.find(Locator::Id(id)).await {
            Ok(element) => return element,
            Err(CmdError::Standard(e)) if e.error == ErrorStatus::NoSuchElement => {}
            Err(CmdError::NotW3C(serde_json::Value::String(s))) if s == "aborted by navigation" => {
            }
            Err(e) => panic!("waiting for #{id}: {e}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no #{id} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
