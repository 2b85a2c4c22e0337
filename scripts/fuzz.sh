#!/usr/bin/env bash
# Runs one cargo-fuzz target for a bounded time: scripts/fuzz.sh TARGET SECONDS;
# `scripts/fuzz.sh --build TARGET` only builds it.
# cargo-fuzz needs nightly features (coverage instrumentation flags);
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. No sanitizer: the
# code under test is safe Rust, so AddressSanitizer would only slow the build
# and the run; libFuzzer still finds panics, hangs and runaway memory. cargo-fuzz itself is installed into
# target/fuzz-tools by scripts/install-tools.sh. The build is the dev
# profile (`--dev`): the whole crate and its dependencies with coverage
# instrumentation, into fuzz/target. Optimised, that build was one of the
# longest steps of a clean CI run; unoptimised it builds faster, and 30 s
# still execute about 200,000 inputs (2026-12-02). A change to the crate
# rebuilds it; later runs reuse it. libFuzzer keeps what it finds in
# fuzz/corpus/TARGET (not committed) and starts from fuzz/seeds/TARGET too.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
# Same flags for the build and the run, so the run reuses the build.
flags=(--dev --sanitizer none)
if [ "${1:-}" = "--build" ]; then
  cd fuzz
  exec ../target/fuzz-tools/bin/cargo-fuzz build "${flags[@]}" "${2:?target}"
fi
target="${1:?target}"
secs="${2:-30}"
mkdir -p "fuzz/corpus/$target" "fuzz/seeds/$target"
cd fuzz
# libFuzzer writes a line per new input: kept in a log, its summary shown.
log="../target/fuzz-$target.log"
if ! ../target/fuzz-tools/bin/cargo-fuzz run "${flags[@]}" "$target" "corpus/$target" "seeds/$target" -- \
  -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
  tail -n 60 "$log"
  echo "fuzz target $target failed: see $log and fuzz/artifacts/$target/" >&2
  exit 1
fi
grep -E '^(Done|stat::)' "$log"
