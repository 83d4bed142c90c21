#!/usr/bin/env bash
# Network benchmark, all inside network namespaces this script creates (nothing touches the
# host's own network):
#  1. TCP throughput between two tenants on an etherstub with anti-spoofing on, against a bare
#     veth pair and against the same bridge without the Lumos table, in the same run (iperf3,
#     medians of RUNS interleaved runs);
#  2. time from `lumos net attach` of one NIC to the tenant's first ping reply from the host
#     address on the switch (median of RUNS);
#  3. the rate a 10 Mbit/s cap lets through in each direction;
#  4. time from `vmadm create` of a busybox zone with one NIC to its first ping reply from
#     the host side of the switch (median of RUNS*4), and `vmadm create` alone.
# Usage: sudo bench/net.sh [RUNS]   (default 5 throughput runs, 20 setup runs)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
runs=${1:-5}
setup_runs=$((runs * 4))
lumos=$(lumos_bin)
(cd "$here/.." && swift build -c release --product lumos-init 2>&1 | tail -1) >&2
id="lumos-b-$$"
work=$(mktemp -d /tmp/lumos-bench-net.XXXXXX)
export LUMOS_ROOT=$work/state LUMOS_NET_NETNS=$id-h
pids=()
namespaces=()
mkns() { ip netns add "$1"; namespaces+=("$1"); ip -n "$1" link set lo up; }
cleanup() {
  for u in $("$lumos" vm list -H -o uuid 2>/dev/null); do "$lumos" vm delete "$u" >/dev/null 2>&1 || true; done
  "$lumos" pool destroy -f zones >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for t in $("$lumos" net show-vnic -p -o zone 2>/dev/null | sort -u); do "$lumos" net detach --force "$t" >/dev/null 2>&1 || true; done
  for n in "${namespaces[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

mkns "$id-h"
"$lumos" net create-etherstub stub0
"$lumos" net create-addr -a 10.88.0.1/24 stub0
nic() { echo "[{\"nic_tag\":\"stub0\",\"ips\":[\"$1/24\"],\"gateways\":[\"10.88.0.1\"],\"primary\":true${2:-}}]" > "$work/nic.json"; echo "$work/nic.json"; }

# Tenants with anti-spoofing.
mkns "$id-a"; mkns "$id-b"
"$lumos" net attach --tenant "aaaa0001-0000-4000-8000-$(printf %012d $$)" --netns "$id-a" -f "$(nic 10.88.0.10)" >/dev/null
"$lumos" net attach --tenant "bbbb0001-0000-4000-8000-$(printf %012d $$)" --netns "$id-b" -f "$(nic 10.88.0.11)" >/dev/null
# The same bridge without Lumos: two namespaces on plain veths, no nft table in their path.
mkns "$id-p"; mkns "$id-q"; mkns "$id-pq"
ip -n "$id-pq" link add br0 type bridge; ip -n "$id-pq" link set br0 up
for x in p q; do
  ip -n "$id-pq" link add v$x type veth peer name eth0 netns "$id-$x"
  ip -n "$id-pq" link set v$x master br0 up
done
ip -n "$id-p" addr add 10.89.0.10/24 dev eth0; ip -n "$id-p" link set eth0 up
ip -n "$id-q" addr add 10.89.0.11/24 dev eth0; ip -n "$id-q" link set eth0 up
# A bare veth pair.
mkns "$id-x"; mkns "$id-y"
ip -n "$id-x" link add eth0 type veth peer name eth0 netns "$id-y"
ip -n "$id-x" addr add 10.90.0.10/24 dev eth0; ip -n "$id-x" link set eth0 up
ip -n "$id-y" addr add 10.90.0.11/24 dev eth0; ip -n "$id-y" link set eth0 up

for s in "b 10.88.0.11" "q 10.89.0.11" "y 10.90.0.11"; do
  set -- $s
  ip netns exec "$id-$1" iperf3 -s -B "$2" >/dev/null 2>&1 & pids+=($!)
done
sleep 0.5
gbits() { ip netns exec "$1" iperf3 -c "$2" -t 3 -O 1 -J | python3 -c 'import json,sys; print("%.3f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'; }
lumos_t=(); bridge_t=(); veth_t=()
for i in $(seq "$runs"); do
  lumos_t+=("$(gbits "$id-a" 10.88.0.11)")
  bridge_t+=("$(gbits "$id-p" 10.89.0.11)")
  veth_t+=("$(gbits "$id-x" 10.90.0.11)")
done
l=$(printf '%s\n' "${lumos_t[@]}" | median); b=$(printf '%s\n' "${bridge_t[@]}" | median); v=$(printf '%s\n' "${veth_t[@]}" | median)

# Setup: attach one NIC, then ping the host address from the tenant until the first reply.
setup=(); attach=()
for i in $(seq "$setup_runs"); do
  ns="$id-s$i"; mkns "$ns"
  t="cccc$(printf %04d "$i")-0000-4000-8000-$(printf %012d $$)"
  t0=$(now_ns)
  "$lumos" net attach --tenant "$t" --netns "$ns" -f "$(nic 10.88.0.$((100 + i)))" >/dev/null
  attach+=("$(ms_since "$t0")")
  until ip netns exec "$ns" busybox ping -c 1 -W 1 10.88.0.1 >/dev/null 2>&1; do :; done
  setup+=("$(ms_since "$t0")")
  "$lumos" net detach "$t"
  ip netns del "$ns"
done
s=$(printf '%s\n' "${setup[@]}" | median); a=$(printf '%s\n' "${attach[@]}" | median)

# Caps: 10 Mbit/s each way on a third tenant.
mkns "$id-c"
"$lumos" net attach --tenant "dddd0001-0000-4000-8000-$(printf %012d $$)" --netns "$id-c" \
  -f "$(nic 10.88.0.12 ',"lumos_rx_maxbw_mbps":10,"lumos_tx_maxbw_mbps":10')" >/dev/null
mbits() { ip netns exec "$id-c" iperf3 -c 10.88.0.11 -t 4 -O 1 -J $1 | python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))'; }
up=$(mbits ""); down=$(mbits -R)

# vmadm: create a busybox zone with one NIC, then ping it from the host side of the switch
# until the first reply (its NIC is wired before its init runs, so the first ping normally
# answers).
chmod 755 "$work"
"$lumos" pool create zones --size 4G >/dev/null
img=$("$lumos" img build busybox | awk '{print $3}')
vm_create=(); vm_ping=()
for i in $(seq "$setup_runs"); do
  ip=10.88.0.$((200 + i % 50))
  payload="{\"brand\":\"lx\",\"image_uuid\":\"$img\",\"max_physical_memory\":64,\"alias\":\"bench\",\"nics\":$(cat "$(nic "$ip")")}"
  t0=$(now_ns)
  echo "$payload" | "$lumos" vm create 2>/dev/null
  vm_create+=("$(ms_since "$t0")")
  until ip netns exec "$id-h" ping -c 1 -W 1 "$ip" >/dev/null 2>&1; do :; done
  vm_ping+=("$(ms_since "$t0")")
  "$lumos" vm delete "$("$lumos" vm list -H -o uuid | head -1)" 2>/dev/null
done
vc=$(printf '%s\n' "${vm_create[@]}" | median); vp=$(printf '%s\n' "${vm_ping[@]}" | median)

echo "| measure | lumos | peer | ratio |"
echo "|---|---|---|---|"
echo "| TCP Gbit/s, two tenants on an etherstub, anti-spoofing on vs bare veth pair | $l | $v | $(ratio "$l" "$v") |"
echo "| TCP Gbit/s, same vs bridge + veths without the Lumos table | $l | $b | $(ratio "$l" "$b") |"
echo "| \`lumos net attach\` of one NIC (ms, median of $setup_runs) | $a | | |"
echo "| attach → first ping reply from the host (ms, median of $setup_runs) | $s | | |"
echo "| \`vmadm create\` of a busybox zone with one NIC (ms, median of $setup_runs) | $vc | | |"
echo "| \`vmadm create\` → first ping reply from the host side (ms, median of $setup_runs; target < 150) | $vp | | |"
echo "| 10 Mbit/s cap, tenant sending (Mbit/s) | $up | 10 | $(ratio "$up" 10) |"
echo "| 10 Mbit/s cap, tenant receiving (Mbit/s) | $down | 10 | $(ratio "$down" 10) |"
