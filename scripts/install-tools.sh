#!/usr/bin/env bash
# Builds the tools the suite takes from crates.io, into target/ (so `cargo
# clean` removes them): `oha` (the benchmark smoke), `fuzz` (cargo-fuzz and
# the fuzz target's instrumented build), or both with no argument. Minutes
# of compiling on a clean checkout, so scripts/test.sh runs each in the
# background while the cargo suite runs. Idempotent: a tool of the pinned
# version is not built again.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"

# oha: the fixed-rate load of the benchmark's added-latency figure. Built from
# crates.io into target/ (bench/run looks there), pinned like bench/run's OHA_VERSION.
OHA_VERSION="1.16.0"
if [ "$what" != fuzz ] && ! target/bench-tools/bin/oha --version 2>/dev/null | grep -q " $OHA_VERSION"; then
  cargo install --locked --quiet oha --version "$OHA_VERSION" --root target/bench-tools
fi

# cargo-fuzz: the bounded fuzz run of scripts/test.sh (scripts/fuzz.sh), from
# crates.io into target/ like oha. It needs nightly features, which
# RUSTC_BOOTSTRAP=1 makes the stable toolchain accept.
CARGO_FUZZ_VERSION="0.13.1"
if [ "$what" != oha ] && ! target/fuzz-tools/bin/cargo-fuzz --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION"; then
  cargo install --locked --quiet cargo-fuzz --version "$CARGO_FUZZ_VERSION" --root target/fuzz-tools
fi

# The fuzz run's build (scripts/fuzz.sh builds it anyway when missing).
if [ "$what" != oha ]; then
  ./scripts/fuzz.sh --build smpp_pdu
fi
