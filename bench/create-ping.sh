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
# Each binary gets its own state root, pool, image and switch namespace: a baseline from before
# a change of on-disk layout (pool modes, mount flags) cannot share ours.
ns_ours="lumos-bp-$$" ns_base="lumos-bpb-$$"
cleanup() {
  for side in ours base; do
    local bin=$lumos root=$work/state ns=$ns_ours
    [[ $side == base ]] && { [[ -n ${BASELINE:-} ]] || continue; bin=$BASELINE root=$work/base ns=$ns_base; }
    for u in $(LUMOS_ROOT=$root LUMOS_NET_NETNS=$ns "$bin" vm list -H -o uuid 2>/dev/null); do
      LUMOS_ROOT=$root LUMOS_NET_NETNS=$ns "$bin" vm delete "$u" >/dev/null 2>&1 || true
    done
    LUMOS_ROOT=$root LUMOS_NET_NETNS=$ns "$bin" pool destroy -f zones >/dev/null 2>&1 || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
# setup BINARY ROOT NETNS SUBNET: prints the image uuid.
setup() {
  local bin=$1 root=$2 ns=$3 subnet=$4
  ip netns add "$ns"
  LUMOS_ROOT=$root LUMOS_NET_NETNS=$ns "$bin" pool create zones --size 4G >/dev/null
  LUMOS_ROOT=$root LUMOS_NET_NETNS=$ns "$bin" net create-etherstub bench0 >/dev/null
  LUMOS_ROOT=$root LUMOS_NET_NETNS=$ns "$bin" net create-addr -a "$subnet.1/24" bench0 >/dev/null
  LUMOS_ROOT=$root LUMOS_NET_NETNS=$ns "$bin" img build busybox | awk '{print $3}'
}
img_ours=$(setup "$lumos" "$work/state" "$ns_ours" 10.97.0)
[[ -n ${BASELINE:-} ]] && img_base=$(setup "$BASELINE" "$work/base" "$ns_base" 10.96.0)

# create_ping BINARY ROOT NETNS IMAGE ADDRESS: ms from create to the first reply; the zone is
# deleted after.
create_ping() {
  local bin=$1 root=$2 ns=$3 img=$4 ip=$5 t u
  local m="{\"brand\":\"lx\",\"alias\":\"ping\",\"image_uuid\":\"$img\",\"max_physical_memory\":128,\"quota\":1,\"nics\":[{\"nic_tag\":\"bench0\",\"ips\":[\"$ip/24\"],\"gateways\":[\"${ip%.*}.1\"],\"primary\":true}]}"
  t=$(now_ns)
  echo "$m" | LUMOS_ROOT=$root LUMOS_NET_NETNS=$ns "$bin" vm create 2>/dev/null
  until ip netns exec "$ns" ping -c 1 -W 0.05 "$ip" >/dev/null 2>&1; do :; done
  ms_since "$t"
  u=$(LUMOS_ROOT=$root LUMOS_NET_NETNS=$ns "$bin" vm list -H -o uuid alias=ping | head -1)
  LUMOS_ROOT=$root LUMOS_NET_NETNS=$ns "$bin" vm delete "$u" 2>/dev/null
}
ours=(); base=()
for i in $(seq "$runs"); do
  ours+=("$(create_ping "$lumos" "$work/state" "$ns_ours" "$img_ours" 10.97.0.$((10 + i % 200)))")
  [[ -n ${BASELINE:-} ]] && base+=("$(create_ping "$BASELINE" "$work/base" "$ns_base" "$img_base" 10.96.0.$((10 + i % 200)))")
done
# The same with another tenant already on the switch (the common case on a busy host: the
# anti-spoofing table exists; above, every create is the host's first tenant and makes it).
anchor() {
  local bin=$1 root=$2 ns=$3 img=$4 ip=$5
  echo "{\"brand\":\"lx\",\"alias\":\"anchor\",\"image_uuid\":\"$img\",\"max_physical_memory\":64,\"nics\":[{\"nic_tag\":\"bench0\",\"ips\":[\"$ip/24\"]}]}" \
    | LUMOS_ROOT=$root LUMOS_NET_NETNS=$ns "$bin" vm create 2>/dev/null
}
anchor "$lumos" "$work/state" "$ns_ours" "$img_ours" 10.97.0.250
[[ -n ${BASELINE:-} ]] && anchor "$BASELINE" "$work/base" "$ns_base" "$img_base" 10.96.0.250
ours2=(); base2=()
for i in $(seq "$runs"); do
  ours2+=("$(create_ping "$lumos" "$work/state" "$ns_ours" "$img_ours" 10.97.0.$((10 + i % 200)))")
  [[ -n ${BASELINE:-} ]] && base2+=("$(create_ping "$BASELINE" "$work/base" "$ns_base" "$img_base" 10.96.0.$((10 + i % 200)))")
done
stats() { local m; m=$(printf '%s\n' "$@" | median); echo "$m (min $(printf '%s\n' "$@" | sort -n | head -1), max $(printf '%s\n' "$@" | sort -n | tail -1))"; }
echo "| measure | value |"
echo "|---|---|"
echo "| vmadm create → first ping reply, one NIC, the host's first tenant (ms, median of $runs) | $(stats "${ours[@]}") |"
[[ -n ${BASELINE:-} ]] && echo "| same with $BASELINE | $(stats "${base[@]}") |"
echo "| vmadm create → first ping reply, one NIC, another tenant on the switch (ms, median of $runs) | $(stats "${ours2[@]}") |"
[[ -n ${BASELINE:-} ]] && echo "| same with $BASELINE | $(stats "${base2[@]}") |"
exit 0
