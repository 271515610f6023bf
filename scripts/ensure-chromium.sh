#!/usr/bin/env bash
# Makes sure Debian's chromium is installed, so test/e2e/deployer-ui.test.ts drives the fleet page
# (paas-deploy ui) in a real browser through playwright-core, which ships no browser of its own.
# Idempotent and silent when `chromium` is on PATH. Needs root (apt-get).
set -euo pipefail

command -v chromium >/dev/null 2>&1 && exit 0

source "$(dirname "$0")/apt-install.sh"
apt_install ensure-chromium "chromium is missing and there is no apt-get here; install it to test the fleet page" chromium
