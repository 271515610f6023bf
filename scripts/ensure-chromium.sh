#!/usr/bin/env bash
# Makes sure Debian's chromium is installed, so test/e2e/deployer-ui.test.ts drives the fleet page
# (paas-deploy ui) in a real browser through playwright-core, which ships no browser of its own.
# Idempotent and silent when `chromium` is on PATH. Needs root (apt-get).
set -euo pipefail

command -v chromium >/dev/null 2>&1 && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: chromium is missing and there is no apt-get here; install it to test the fleet page" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

echo "ensure-chromium: installing chromium" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
