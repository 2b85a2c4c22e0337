#!/usr/bin/env bash
# Installs the non-Rust things the test suite uses. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# The real-browser test of the opt-out page (tests/api/browser.rs): Debian's
# headless-capable Chromium and its WebDriver.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
# (later issues add: python venv for SDK tests)

if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
