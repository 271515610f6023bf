#!/usr/bin/env bash
# Makes sure promtool (Debian's prometheus package) is installed: `make test` checks the
# router's /metrics exposition with `promtool check metrics`. Idempotent and silent when it is
# already on PATH. Needs root (apt-get) to install.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-promtool: promtool missing and no apt-get here; install Prometheus' promtool" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

echo "ensure-promtool: installing prometheus (for promtool)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# The package's service is not wanted: only the promtool binary it ships.
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null

# On a host that runs systemd the package has just started a Prometheus server (port 9090): stop
# it and keep it from starting at boot.
if [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi

promtool --version 2>&1 | head -1 >&2
