#!/usr/bin/env bash
# Installs the router and the deployer, each with its production dependencies only, into DIR:
#   DIR/router/bin/paas-router.js    DIR/deployer/bin/paas-deploy.js
# The image runs it into /opt/paas-routing, and so does a host install for systemd (README,
# Deploying). Run it from a built checkout (`make build`); DIR must not exist or be empty.
# pnpm deploy copies each package with its dependencies (the workspace's own packages injected
# as copies, not symlinks), so DIR works without the checkout and is moved or copied as it is.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: deploy/install.sh DIR" >&2
  exit 2
fi
dir="$1"
cd "$(dirname "$0")/.."
for built in packages/router/dist/main.js packages/router/bundle/main.js packages/deployer/dist/cli.js packages/registry/dist/index.js; do
  if [ ! -f "$built" ]; then
    echo "deploy/install.sh: $built is missing: build first (make build, or pnpm build)" >&2
    exit 1
  fi
done
for pkg in router deployer; do
  pnpm --config.inject-workspace-packages=true --filter "@paas/$pkg" --prod deploy "$dir/$pkg" >/dev/null
done
echo "installed: $dir/router/bin/paas-router.js $dir/deployer/bin/paas-deploy.js"
