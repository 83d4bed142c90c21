#!/usr/bin/env bash
# Network benchmark, all inside network namespaces this script creates (nothing touches the
# host's own network):
#  1. TCP throughput between two tenants on an etherstub with anti-spoofing on (`lumos net
#     attach`), against a bare veth pair and against a plain Linux bridge with two veths and no
#     Lumos table (with br_netfilter off, as Lumos sets it in its switch namespace, and with the
#     kernel default on), in the same run. Fair comparison: the same iperf3 client (one TCP
#     stream, 1 s omitted, T seconds), client and server pinned to the same CPUs in every case,
#     ROUNDS rounds with the order of the four cases rotated each round. Reported: median and
#     min-max Gbit/s, the ratio of medians, the median of the per-round ratios (cases next to
#     each other in time share the machine's load), and CPU seconds per GB (client + server, from
#     iperf3's getrusage), which depends far less on other load than throughput does;
#  2. time from `lumos net attach` of one NIC to the tenant's first ping reply from the host
#     address on the switch (median of 4×ROUNDS);
#  3. the rate a 10 Mbit/s cap lets through in each direction;
#  4. time from `vmadm create` of a busybox zone with one NIC to its first ping reply from
#     the host side of the switch (median of 4×ROUNDS), and `vmadm create` alone.
# Usage: sudo bench/net.sh [ROUNDS] [T]   (default 7 rounds of 4 s)
# LUMOS_BIN=path runs another lumos build (e.g. main's, for a before/after comparison).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
runs=${1:-7}
secs=${2:-4}
setup_runs=$((runs * 4))
lumos=${LUMOS_BIN:-$(lumos_bin)}
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
# The same bridge without Lumos: two namespaces on plain veths, no nft table in their path;
# once with br_netfilter off (what Lumos sets in the namespace of its switches) and once with
# the kernel's default (on).
plainbridge() { # NAME SUBNET BRNF
  local n=$1; mkns "$id-$n"; mkns "$id-${n}1"; mkns "$id-${n}2"
  ip netns exec "$id-$n" sysctl -q -e -w net.bridge.bridge-nf-call-iptables="$3" net.bridge.bridge-nf-call-ip6tables="$3" net.bridge.bridge-nf-call-arptables="$3"
  ip -n "$id-$n" link add br0 type bridge; ip -n "$id-$n" link set br0 up
  for x in 1 2; do
    ip -n "$id-$n" link add v$x type veth peer name eth0 netns "$id-$n$x"
    ip -n "$id-$n" link set v$x master br0 up
    ip -n "$id-$n$x" addr add "$2.1$x/24" dev eth0; ip -n "$id-$n$x" link set eth0 up
  done
}
plainbridge p 10.89.0 0
plainbridge n 10.91.0 1
# A bare veth pair.
mkns "$id-x"; mkns "$id-y"
ip -n "$id-x" link add eth0 type veth peer name eth0 netns "$id-y"
ip -n "$id-x" addr add 10.90.0.10/24 dev eth0; ip -n "$id-x" link set eth0 up
ip -n "$id-y" addr add 10.90.0.11/24 dev eth0; ip -n "$id-y" link set eth0 up

cases=("lumos $id-a $id-b 10.88.0.11" "bridge $id-p1 $id-p2 10.89.0.12" "bridge_brnf $id-n1 $id-n2 10.91.0.12" "veth $id-x $id-y 10.90.0.11")
for c in "${cases[@]}"; do
  set -- $c
  ip netns exec "$3" iperf3 -s -B "$4" >/dev/null 2>&1 & pids+=($!)
done
sleep 0.5
pin=(); [[ $(nproc) -ge 2 ]] && pin=(-A 0,1)
# "Gbit/s CPU-s/GB" of one run
tcp() { local out; for _ in 1 2 3; do out=$(tcp1 "$@" 2>/dev/null) && { echo "$out"; return; }; sleep 1; done; return 1; }
tcp1() { ip netns exec "$1" iperf3 -c "$2" -t "$secs" -O 1 "${pin[@]}" -J | python3 -c '
import json, sys
e = json.load(sys.stdin)["end"]; r = e["sum_received"]; c = e["cpu_utilization_percent"]
print("%.3f %.3f" % (r["bits_per_second"] / 1e9, (c["host_total"] + c["remote_total"]) / 100 * r["seconds"] / (r["bytes"] / 1e9)))'; }
declare -A gbit cpu
for i in $(seq "$runs"); do
  for k in 0 1 2 3; do
    set -- ${cases[$(( (i + k) % 4 ))]}
    read -r g u < <(tcp "$2" "$4")
    gbit[$1]+="$g "; cpu[$1]+="$u "
  done
done
r2() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
med() { printf '%s\n' $1 | median; }
spread() { printf '%s\n' $1 | sort -n | sed -n '1p;$p' | paste -sd- | sed 's/-/–/'; }
# median over rounds of A[i]/B[i]
pairedratio() { paste <(printf '%s\n' $1) <(printf '%s\n' $2) | awk '{printf "%.4f\n", $1/$2}' | median | xargs printf '%.2f'; }
l=$(med "${gbit[lumos]}"); b=$(med "${gbit[bridge]}"); bn=$(med "${gbit[bridge_brnf]}"); v=$(med "${gbit[veth]}")
lc=$(med "${cpu[lumos]}"); bc=$(med "${cpu[bridge]}"); bnc=$(med "${cpu[bridge_brnf]}"); vc=$(med "${cpu[veth]}")

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
# The server may still be finishing the previous test ("busy"): try again after a pause.
mbits() {
  local out
  for _ in 1 2 3; do
    out=$(ip netns exec "$id-c" iperf3 -c 10.88.0.11 -t 4 -O 1 -J $1 | python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))' 2>/dev/null) && { echo "$out"; return; }
    sleep 1
  done
  echo "iperf3 to the capped tenant failed 3 times" >&2; return 1
}
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
vmc=$(printf '%s\n' "${vm_create[@]}" | median); vmp=$(printf '%s\n' "${vm_ping[@]}" | median)

echo "| TCP, one stream, $runs rounds of ${secs} s | Gbit/s median (min–max) | ratio of medians to lumos | median per-round ratio | CPU s/GB | efficiency ratio |"
echo "|---|---|---|---|---|---|"
row() { # NAME LABEL MEDIAN CPUMEDIAN
  local r p e
  r=$(r2 "$l" "$3"); p=$(pairedratio "${gbit[lumos]}" "${gbit[$1]}"); e=$(r2 "$4" "$lc")
  [[ $1 == lumos ]] && { r=; p=; e=; }
  echo "| $2 | $3 ($(spread "${gbit[$1]}")) | $r | $p | $4 | $e |"
}
row lumos "two tenants on an etherstub, anti-spoofing on (lumos)" "$l" "$lc"
row veth "bare veth pair" "$v" "$vc"
row bridge "bridge + 2 veths, no table, br_netfilter off" "$b" "$bc"
row bridge_brnf "bridge + 2 veths, no table, br_netfilter on (kernel default)" "$bn" "$bnc"
echo
echo "Ratios are lumos / peer (≥ 0.9 against the bare veth pair is the target); efficiency ratio is peer CPU s/GB / lumos CPU s/GB."
echo
echo "| measure | lumos | peer | ratio |"
echo "|---|---|---|---|"
echo "| \`lumos net attach\` of one NIC (ms, median of $setup_runs) | $a | | |"
echo "| attach → first ping reply from the host (ms, median of $setup_runs) | $s | | |"
echo "| \`vmadm create\` of a busybox zone with one NIC (ms, median of $setup_runs) | $vmc | | |"
echo "| \`vmadm create\` → first ping reply from the host side (ms, median of $setup_runs; target < 150) | $vmp | | |"
echo "| 10 Mbit/s cap, tenant sending (Mbit/s) | $up | 10 | $(r2 "$up" 10) |"
echo "| 10 Mbit/s cap, tenant receiving (Mbit/s) | $down | 10 | $(r2 "$down" 10) |"
