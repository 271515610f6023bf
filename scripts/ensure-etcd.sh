#!/usr/bin/env bash
# Makes sure etcd and etcdctl (v3.4, Debian's etcd-server and etcd-client) are installed: the
# integration tests run a real etcd. Idempotent and silent when both are already on PATH.
# Needs root (apt-get); set ETCD_ENDPOINTS instead to test against an etcd running elsewhere.
set -euo pipefail

if command -v etcd >/dev/null 2>&1 && command -v etcdctl >/dev/null 2>&1; then
  exit 0
fi

source "$(dirname "$0")/apt-install.sh"
apt_install ensure-etcd "etcd/etcdctl missing and no apt-get here; install etcd 3.4+ or set ETCD_ENDPOINTS" etcd-server etcd-client

etcd --version | head -1 >&2
