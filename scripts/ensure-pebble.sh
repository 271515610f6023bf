#!/usr/bin/env bash
# Makes sure pebble (Let's Encrypt's test ACME server) and pebble-challtestsrv (its DNS and
# challenge test server) are installed: the ACME tests run a real Pebble, offline, on loopback.
# Both ship in Debian's `pebble` package. Idempotent and silent when both are already on PATH.
set -euo pipefail

if command -v pebble >/dev/null 2>&1 && command -v pebble-challtestsrv >/dev/null 2>&1; then
  exit 0
fi

source "$(dirname "$0")/apt-install.sh"
apt_install ensure-pebble "pebble/pebble-challtestsrv missing and no apt-get here; install Pebble 2.4+" pebble

command -v pebble-challtestsrv >/dev/null
echo "ensure-pebble: $(command -v pebble)" >&2
