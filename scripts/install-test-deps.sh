#!/usr/bin/env bash
# Installs the non-Rust things the test suite uses. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# The real-browser test of the opt-out page (tests/api/browser.rs): Debian's
# headless-capable Chromium and its WebDriver.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
# Its screenshots of the page in Japanese need a CJK font (Debian's chromium
# brings DejaVu, which covers Latin, Greek, Cyrillic and Arabic only).
[ -n "$(fc-list :lang=ja 2>/dev/null)" ] || need_apt+=(fonts-droid-fallback)

# Durability and store-fault tests (tests/api/durability.rs, store_faults.rs):
# strace watches the binary's fsyncs; chattr makes the store unwritable.
command -v strace >/dev/null 2>&1 || need_apt+=(strace)
command -v chattr >/dev/null 2>&1 || need_apt+=(e2fsprogs)

# The benchmark smoke (bench/smoke_test.py, run by scripts/test.sh): wrk
# drives the load, nginx is the reverse proxy stopgate is compared with.
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)

# PostgreSQL for the store contract on the shared backend (tests/store) and
# the cluster tests: the tests start throwaway servers from the package's
# binaries (tests/support/pg.rs), as the `postgres` user it creates. The
# package's own service is not needed: it is stopped if the
# install started it, so it holds no port and no memory.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need_apt+=(postgresql)
  pg_installed_here=1
fi

# The official Twilio SDK and python-smpplib, for the real-client tests
# (tests/sdk/). They live in a virtualenv under target/, so `cargo clean`
# removes it and nothing leaks into the system Python. Pinned: the tests
# assert on the clients' behaviour.
TWILIO_VERSION="9.13.0"
SMPPLIB_VERSION="2.2.4"
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
if [ -n "${pg_installed_here:-}" ] && command -v pg_lsclusters >/dev/null 2>&1; then
  # Debian's postinst creates and starts a "main" cluster on 5432; the
  # tests never use it. Stopped where a service manager runs it.
  pg_lsclusters --no-header 2>/dev/null | while read -r version name _; do
    $SUDO pg_ctlcluster "$version" "$name" stop 2>/dev/null || true
  done
fi

if ! "$VENV/bin/python" -c "import twilio, sys; sys.exit(twilio.__version__ != '$TWILIO_VERSION')" 2>/dev/null; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "twilio==$TWILIO_VERSION"
fi
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('smpplib') != '$SMPPLIB_VERSION')" 2>/dev/null; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "smpplib==$SMPPLIB_VERSION"
fi
