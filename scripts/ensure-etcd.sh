#!/usr/bin/env bash
# Makes sure etcd and etcdctl (v3.4, Debian's etcd-server and etcd-client) are installed: the
# integration tests run a real etcd. Idempotent and silent when both are already on PATH.
# Needs root (apt-get); set ETCD_ENDPOINTS instead to test against an etcd running elsewhere.
set -euo pipefail

if command -v etcd >/dev/null 2>&1 && command -v etcdctl >/dev/null 2>&1; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-etcd: etcd/etcdctl missing and no apt-get here; install etcd 3.4+ or set ETCD_ENDPOINTS" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

echo "ensure-etcd: installing etcd-server and etcd-client" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends etcd-server etcd-client >/dev/null

etcd --version | head -1 >&2
