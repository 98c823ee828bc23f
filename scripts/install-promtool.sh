#!/usr/bin/env bash
# Puts `promtool` (from Debian's `prometheus` package) at .tools/bin/promtool, for the metrics
# lint test and `make compose-check`. Only the binary is extracted: the package is downloaded,
# never installed, so no Prometheus server is set up or started (it would take port 9090).
# Uses an existing promtool on PATH when there is one.
set -euo pipefail

dest=.tools/bin/promtool
[ -x "$dest" ] && exit 0
mkdir -p .tools/bin
if command -v promtool >/dev/null; then
  ln -sf "$(command -v promtool)" "$dest"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download prometheus >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get download prometheus >/dev/null 2>&1 \
    || { echo "ERROR: cannot download Debian's prometheus package (for promtool)" >&2; exit 1; }
fi
dpkg-deb -x prometheus_*.deb root
cd - >/dev/null
cp "$work/root/usr/bin/promtool" "$dest"
"$dest" --version >/dev/null
echo "promtool: $("$dest" --version 2>&1 | head -n1)"
