#!/usr/bin/env bash
# Makes sure the offline checkers of the deploy/ files are installed (Debian packages), so the
# tests under test/deploy/ run them instead of skipping:
#   docker-compose   `docker-compose config` parses and validates docker-compose.yml (no engine needed)
#   promtool         `promtool check rules` / `promtool test rules` on deploy/prometheus/ (package prometheus)
#   systemd-analyze  `systemd-analyze verify` and `security --offline=yes` on deploy/systemd/ (package systemd)
# Idempotent and silent when all three are on PATH. Needs root (apt-get).
set -euo pipefail

missing=()
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
[ ${#missing[@]} -eq 0 ] && exit 0

source "$(dirname "$0")/apt-install.sh"
apt_install ensure-deploy-tools "missing ${missing[*]} and no apt-get here; install them to check deploy/" "${missing[@]}"
# Only promtool is wanted from the prometheus package: on a host that runs systemd, the package
# has just started a Prometheus server (on port 9090); stop it and keep it from starting at boot.
if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi
