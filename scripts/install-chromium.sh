#!/usr/bin/env bash
# Makes sure Debian's Chromium is at /usr/bin/chromium for the console's browser tests
# (tests/e2e/test_console_browser.py drives it headless with Playwright's Python package;
# Playwright's own browser download cannot work here and is never used).
# Installs the `chromium` package when it is missing; fails with a clear message when it cannot.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "ERROR: /usr/bin/chromium is missing and installing it needs root:" >&2
  echo "       sudo apt-get install -y chromium" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq chromium >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -qq chromium >/dev/null 2>&1 \
    || { echo "ERROR: apt-get install -y chromium failed (Debian's chromium package is needed for the console's browser tests)" >&2; exit 1; }
fi
/usr/bin/chromium --version
