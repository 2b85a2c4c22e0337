#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the suite needs that cargo
# does not fetch, then runs every test. Safe to run again; installs are skipped
# when already present.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says how long it took, so a slow CI run shows where its time went.
start=$SECONDS
step() {
  local t=$SECONDS
  "$@"
  echo "==> $((SECONDS - t)) s: $* (total $((SECONDS - start)) s)" >&2
}

# Tools compiled from crates.io (oha for the benchmark smoke; cargo-fuzz and
# the fuzz target's instrumented build) took 6 minutes of a clean run before
# anything else could start. oha is built in the background at the lowest
# priority from the start, in the CPU the test build and the test run leave
# idle, and waited for before the smoke.
mkdir -p target
nice -n 19 ./scripts/install-tools.sh oha >target/tools-oha.log 2>&1 &
oha_job=$!
# An early failure leaves no build running behind it.
stop_tools() {
  local j
  for j in $(jobs -pr); do
    pkill -P "$j" 2>/dev/null || true
    kill "$j" 2>/dev/null || true
  done
}
trap stop_tools EXIT
ready() {
  if ! wait "$1"; then
    tail -n 40 "$2"
    echo "building a tool failed: see $2" >&2
    return 1
  fi
}

step ./scripts/install-test-deps.sh

step cargo fmt --check

# Clippy runs inside the test build: clippy-driver wraps rustc for this
# package's own crates, exactly what `cargo clippy` does, but on the real
# build rather than on a `cargo check` of every dependency of its own (which
# was 286 of a clean run's 1,792 s). CLIPPY_ARGS is how cargo-clippy hands
# clippy-driver what follows its `--`. Exported, so every later cargo call
# here sees the same wrapper and reuses the build.
RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver)"
export RUSTC_WORKSPACE_WRAPPER
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
step cargo test --locked --all-targets --no-run

# The suite writes its logs here; the privacy audit reads them afterwards.
rm -rf target/tmp/test-logs
step cargo test --locked --all-targets
step ready "$oha_job" target/tools-oha.log
# The benchmark harness in seconds (bench/run --smoke): it completes and
# writes every scenario. Behaviour, not speed.
step python3 bench/smoke_test.py
step cargo test --locked --test log_audit -- --ignored
# The SMPP decoder and session on arbitrary bytes, for a bounded time.
# (The fuzz crate is a workspace of its own, built with cargo-fuzz's flags:
# not linted here.)
# Its build runs here, after the smoke: built during the smoke at nice 19 it
# got little CPU, and the smoke once saw two non-2xx answers beside it.
step env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS ./scripts/install-tools.sh fuzz
step env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS ./scripts/fuzz.sh smpp_pdu 30
