#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the suite needs that cargo
# does not fetch, then runs every test. Safe to run again; installs are skipped
# when already present.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-test-deps.sh

cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings

# The suite writes its logs here; the privacy audit reads them afterwards.
rm -rf target/tmp/test-logs
cargo test --locked --all-targets
# The benchmark harness in seconds (bench/run --smoke): it completes and
# writes every scenario. Behaviour, not speed.
python3 bench/smoke_test.py
cargo test --locked --test log_audit -- --ignored
# The SMPP decoder and session on arbitrary bytes, for a bounded time.
./scripts/fuzz.sh smpp_pdu 30
