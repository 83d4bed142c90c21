#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds, then creates the
# embedded pool, a dataset, a snapshot and a clone, and shows them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
swift build -c release --product lumos 2>&1 | tail -1
lumos=$PWD/.build/release/lumos
export LUMOS_ROOT=${LUMOS_ROOT:-/var/lib/lumos}

pool=demo
"$lumos" pool list -H -o name 2>/dev/null | grep -qx "$pool" || "$lumos" pool create "$pool"
"$lumos" pool status "$pool"
ds=$pool/web-$(date +%s)
"$lumos" dataset create -p "$ds"
echo "hello from $ds" > "$("$lumos" dataset get -H -o value mountpoint "$ds")/index.html"
"$lumos" dataset snapshot "$ds@gold"
"$lumos" dataset clone "$ds@gold" "$ds-clone"
"$lumos" dataset list -r -t all "$pool"
cat "$("$lumos" dataset get -H -o value mountpoint "$ds-clone")/index.html"
