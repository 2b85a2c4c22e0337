//! Privacy audit of the suite's own logs: no log line may hold a full phone
//! number. The black-box tests write every log line (debug level, in-process
//! apps and spawned binaries) under `target/tmp/test-logs/`; this test reads
//! them afterwards. It is `#[ignore]`d so that it only runs when asked, after
//! the suite: `scripts/test.sh` runs it with `--ignored`.

use std::path::Path;

use regex::Regex;

#[test]
#[ignore = "reads the logs of a finished suite; scripts/test.sh runs it after `cargo test`"]
fn no_log_line_contains_a_full_phone_number() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-logs");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("no logs in {}: run the suite first ({e})", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        !files.is_empty(),
        "no log files in {}: run the suite first",
        dir.display()
    );

    // Any E.164-shaped run of digits, and every number the tests use, with or without its +.
    let e164 = Regex::new(r"\+\d{8,15}").unwrap();
    let known = test_numbers();
    assert!(
        known.len() >= 10,
        "the tests' numbers were found: {known:?}"
    );
    let mut lines = 0;
    let mut offending = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for line in text.lines() {
            lines += 1;
            let hit = e164
                .find(line)
                .map(|m| m.as_str().to_string())
                .or_else(|| known.iter().find(|n| line.contains(n.as_str())).cloned());
            if let Some(number) = hit {
                offending.push(format!("{}: {number}: {line}", f.display()));
            }
        }
    }
    assert!(
        lines > 100,
        "only {lines} log lines: was the suite run at debug level?"
    );
    assert!(
        offending.is_empty(),
        "{} log lines hold a phone number:\n{}",
        offending.len(),
        offending.join("\n")
    );
}

/// The digits of every international number written in the test sources.
fn test_numbers() -> Vec<String> {
    let number = Regex::new(r"\+\d[\d ]{7,18}\d").unwrap();
    let mut out = Vec::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if p.extension().is_some_and(|e| e == "rs" || e == "py") {
            let text = std::fs::read_to_string(&p).unwrap();
            for m in number.find_iter(&text) {
                let digits: String = m.as_str().chars().filter(char::is_ascii_digit).collect();
                if digits.len() >= 9 && !out.contains(&digits) {
                    out.push(digits);
                }
            }
        }
    }
    out
}
