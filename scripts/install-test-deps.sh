#!/usr/bin/env bash
# Installs the non-Rust things the test suite uses. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# (later issues add: chromium for the browser test, python venv for SDK tests)

if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
