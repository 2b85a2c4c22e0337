#!/usr/bin/env bash
# Installs the non-Rust things the test suite uses. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# The real-browser test of the opt-out page (tests/api/browser.rs): Debian's
# headless-capable Chromium and its WebDriver.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)

# The official Twilio SDK, for the real-client test (tests/sdk/). It lives in a
# virtualenv under target/, so `cargo clean` removes it and nothing leaks into
# the system Python. Pinned: the test asserts on the SDK's behaviour.
TWILIO_VERSION="9.13.0"
VENV="target/test-venv"
if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  need_apt+=(python3 python3-venv)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if ! "$VENV/bin/python" -c "import twilio, sys; sys.exit(twilio.__version__ != '$TWILIO_VERSION')" 2>/dev/null; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "twilio==$TWILIO_VERSION"
fi
