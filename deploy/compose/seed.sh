#!/bin/sh
# The compose stack's seed job: writes the sample apps' records with etcdctl, as an operator
# would (docs/CONTRACT.md has the record formats). Idempotent: it only puts.
# Environment: ETCDCTL_ENDPOINTS (etcdctl reads it), PAAS_PREFIX (default /paas),
#   MANGO_INSTANCES  space-separated id=url pairs, e.g. "mango-1=http://mango-1:7001"
#   APPLE_INSTANCES  the same for the app apple
set -eu
prefix="${PAAS_PREFIX:-/paas}"

app() { # app <name> <routes JSON> <id=url pairs>
  etcdctl put "$prefix/apps/$1" "{\"routes\":$2,\"healthCheck\":{\"path\":\"/healthz\"}}"
  for pair in $3; do
    etcdctl put "$prefix/instances/$1/${pair%%=*}" "{\"url\":\"${pair#*=}\",\"state\":\"ready\",\"release\":\"v1\"}"
  done
}

app mango '[{"host":"mango.localhost"},{"path":"/mango"}]' "${MANGO_INSTANCES:-mango-1=http://mango-1:7001 mango-2=http://mango-2:7001}"
app apple '[{"host":"apple.localhost"},{"path":"/apple"}]' "${APPLE_INSTANCES:-apple-1=http://apple-1:7001}"
echo "seeded $prefix: apps mango and apple"
