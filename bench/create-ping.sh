#!/usr/bin/env bash
# `vmadm create` of a busybox zone with one NIC (static address on an etherstub) until the first
# ping reply from the switch's host address: the README demo's measure, as a median of RUNS.
# The switch's host side lives in a network namespace this script creates; nothing touches the
# host's own network. With BASELINE=/path/to/lumos the same runs alternate with that binary
# (each with its own lumos-init next to it), for before/after numbers in one run.
# Usage: sudo bench/create-ping.sh [RUNS]   (default 15)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
runs=${1:-15}
lumos=$(lumos_bin)
(cd "$here/.." && swift build -c release --product lumos-init 2>&1 | tail -1) >&2
work=$(mktemp -d /tmp/lumos-bench-ping.XXXXXX)
chmod 755 "$work"
export LUMOS_ROOT=$work/state LUMOS_NET_NETNS="lumos-bp-$$"
ip netns add "$LUMOS_NET_NETNS"
cleanup() {
  for u in $("$lumos" vm list -H -o uuid 2>/dev/null); do "$lumos" vm delete "$u" >/dev/null 2>&1 || true; done
  "$lumos" pool destroy -f zones >/dev/null 2>&1 || true
  ip netns del "$LUMOS_NET_NETNS" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
"$lumos" pool create zones --size 4G >/dev/null
img=$("$lumos" img build busybox | awk '{print $3}')
"$lumos" net create-etherstub bench0 >/dev/null
"$lumos" net create-addr -a 10.97.0.1/24 bench0 >/dev/null

# create_ping BINARY ADDRESS: ms from create to the first reply; the zone is deleted after.
create_ping() {
  local bin=$1 ip=$2 t u
  local m="{\"brand\":\"lx\",\"alias\":\"ping\",\"image_uuid\":\"$img\",\"max_physical_memory\":128,\"quota\":1,\"nics\":[{\"nic_tag\":\"bench0\",\"ips\":[\"$ip/24\"],\"gateways\":[\"10.97.0.1\"],\"primary\":true}]}"
  t=$(now_ns)
  echo "$m" | "$bin" vm create 2>/dev/null
  until ip netns exec "$LUMOS_NET_NETNS" ping -c 1 -W 0.05 "$ip" >/dev/null 2>&1; do :; done
  ms_since "$t"
  u=$("$lumos" vm list -H -o uuid alias=ping | head -1)
  "$lumos" vm delete "$u" 2>/dev/null
}
ours=(); base=()
for i in $(seq "$runs"); do
  ours+=("$(create_ping "$lumos" 10.97.0.$((10 + i % 200)))")
  [[ -n ${BASELINE:-} ]] && base+=("$(create_ping "$BASELINE" 10.97.0.$((10 + i % 200)))")
done
o=$(printf '%s\n' "${ours[@]}" | median)
echo "| measure | value |"
echo "|---|---|"
echo "| vmadm create → first ping reply, one NIC (ms, median of $runs) | $o (min $(printf '%s\n' "${ours[@]}" | sort -n | head -1), max $(printf '%s\n' "${ours[@]}" | sort -n | tail -1)) |"
if [[ -n ${BASELINE:-} ]]; then
  b=$(printf '%s\n' "${base[@]}" | median)
  echo "| same with $BASELINE (ms, median of $runs) | $b (min $(printf '%s\n' "${base[@]}" | sort -n | head -1), max $(printf '%s\n' "${base[@]}" | sort -n | tail -1)) |"
fi
