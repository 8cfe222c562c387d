#!/usr/bin/env bash
# Install the headless browser the app's end-to-end test drives (tests/test_app.py):
# Debian's `chromium` package, via apt.  Playwright's own browser download is never used.
# Idempotent: does nothing when chromium is already there.  Needs root (or password-less sudo).
# Elsewhere, install Chromium/Chrome yourself and point the test at it with SIM_CHROMIUM=/path.
set -euo pipefail
have() { command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; }
if [ -n "${SIM_CHROMIUM:-}" ] && [ -x "${SIM_CHROMIUM}" ]; then
  echo "install_browser: using SIM_CHROMIUM=${SIM_CHROMIUM}"; exit 0
fi
if have; then
  echo "install_browser: $(chromium --version 2>/dev/null || echo chromium) already installed"; exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_browser: no apt-get here; install Chromium and set SIM_CHROMIUM=/path/to/chromium" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "install_browser: need root to apt-get install chromium" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
have || { echo "install_browser: chromium did not install" >&2; exit 1; }
echo "install_browser: $(chromium --version 2>/dev/null) installed"
