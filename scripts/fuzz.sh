#!/usr/bin/env bash
# Runs one cargo-fuzz target for a bounded time: scripts/fuzz.sh TARGET SECONDS.
# cargo-fuzz needs nightly features (sanitizer flags); RUSTC_BOOTSTRAP=1 lets
# the stable toolchain accept them. cargo-fuzz itself is installed into
# target/fuzz-tools by scripts/install-test-deps.sh. The first build (the
# whole crate with AddressSanitizer, into fuzz/target, ~2 GB) takes about 6
# minutes on 2 cores; later runs reuse it. libFuzzer keeps what it finds in
# fuzz/corpus/TARGET (not committed) and starts from fuzz/seeds/TARGET too.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?target}"
secs="${2:-30}"
export RUSTC_BOOTSTRAP=1
mkdir -p "fuzz/corpus/$target" "fuzz/seeds/$target"
cd fuzz
exec ../target/fuzz-tools/bin/cargo-fuzz run "$target" "corpus/$target" "seeds/$target" -- \
  -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1
