#!/usr/bin/env bash
# Makes sure the pinned Node <version> is unpacked in .tools/node-<version>/bin/node and prints
# that bin directory (for PATH). Node's builds are published on npm as node-<os>-<cpu> packages
# (bin/node inside), so `npm pack` fetches them from the npm registry, integrity-checked against
# it; nothing is downloaded from anywhere else. Idempotent and silent when already there.
#
#   bash scripts/ensure-node.sh 24.22.3    # -> /repo/.tools/node-24.22.3/bin
set -euo pipefail

version="${1:?usage: ensure-node.sh <exact node version, e.g. 24.22.3>}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/.tools/node-$version"

if [ -x "$dir/bin/node" ] && [ "$("$dir/bin/node" --version 2>/dev/null)" = "v$version" ]; then
  echo "$dir/bin"
  exit 0
fi

case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) echo "ensure-node: no npm build of Node for $(uname -s); install Node $version yourself" >&2; exit 1 ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) cpu=x64 ;;
  aarch64 | arm64) cpu=arm64 ;;
  *) echo "ensure-node: no npm build of Node for $(uname -m); install Node $version yourself" >&2; exit 1 ;;
esac
pkg="node-$os-$cpu@$version"
if ! command -v npm >/dev/null 2>&1; then
  echo "ensure-node: npm (from any Node) is needed to fetch $pkg; install Node and npm, or Node $version" >&2
  exit 1
fi

echo "ensure-node: fetching $pkg from the npm registry" >&2
# Unpacked next to its final place, so the last step is a rename on the same file system: an
# interrupted run never leaves a half-written binary where the check above would trust it.
mkdir -p "$root/.tools"
tmp="$(mktemp -d "$root/.tools/.fetch-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
tarball="$(cd "$tmp" && npm pack --silent --no-fund --no-audit "$pkg" | tail -1)"
tar -xzf "$tmp/$tarball" -C "$tmp" package/bin/node
"$tmp/package/bin/node" --version >/dev/null

rm -rf "$dir"
mkdir -p "$tmp/out/bin"
mv "$tmp/package/bin/node" "$tmp/out/bin/node"
mv "$tmp/out" "$dir"
echo "ensure-node: $("$dir/bin/node" --version) in ${dir#"$root"/}" >&2
echo "$dir/bin"
