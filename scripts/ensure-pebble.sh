#!/usr/bin/env bash
# Makes sure pebble (Let's Encrypt's test ACME server) and pebble-challtestsrv (its DNS and
# challenge test server) are installed: the ACME tests run a real Pebble, offline, on loopback.
# Both ship in Debian's `pebble` package. Idempotent and silent when both are already on PATH.
set -euo pipefail

if command -v pebble >/dev/null 2>&1 && command -v pebble-challtestsrv >/dev/null 2>&1; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-pebble: pebble/pebble-challtestsrv missing and no apt-get here; install Pebble 2.4+" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

echo "ensure-pebble: installing pebble" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends pebble >/dev/null

command -v pebble-challtestsrv >/dev/null
echo "ensure-pebble: $(command -v pebble)" >&2
