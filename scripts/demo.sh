#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds, then creates the
# embedded pool (a sparse file under the state root), a dataset, a snapshot and a clone,
# and shows them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
swift build -c release --product lumos --static-swift-stdlib 2>&1 | tail -1
lumos=$PWD/.build/release/lumos
export LUMOS_ROOT=${LUMOS_ROOT:-/var/lib/lumos}

pool=zones
if ! "$lumos" pool list -H -o name | grep -qx "$pool"; then
  "$lumos" pool create "$pool"
fi
"$lumos" pool status "$pool"
ds=$pool/demo-$(date +%s)
"$lumos" dataset create -o quota=1G "$ds"
echo "hello from $ds" > "$("$lumos" dataset get -H -o value mountpoint "$ds")/index.html"
"$lumos" dataset snapshot "$ds@gold"
"$lumos" dataset clone "$ds@gold" "$ds-clone"
echo
"$lumos" dataset list -r -t all -o name,used,avail,refer,origin,quota "$pool"
echo
echo "clone content: $(cat "$("$lumos" dataset get -H -o value mountpoint "$ds-clone")/index.html")"
