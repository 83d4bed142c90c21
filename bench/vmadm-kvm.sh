#!/usr/bin/env bash
# brand kvm through vmadm (docs/vm.md): `vmadm create` of the small guest -> its first ping
# reply from the switch's host side (jail clone, disk clone, taps, DHCP responder, QEMU under
# TCG or KVM), the median of RUNS; the disk clone step alone on a small and a 16x larger image
# (O(1) in image size); QEMU's memory beyond the guest's ram. The peer, interleaved in the same
# run: the same image's disk (an O(1) clone, made before its clock starts) booted by hand with a
# plain qemu-system-x86_64 line (q35, same ram, SeaBIOS -> syslinux -> the same kernel, QEMU's
# defaults otherwise), on a tap on a plain bridge in the same namespace with busybox udhcpd
# giving the guest its address: the ratio is Lumos's own cost. Then bench/vm.sh (direct kernel
# boot through the VM module and by hand) for reference.
# Usage: sudo bench/vmadm-kvm.sh [RUNS]   (default 5; everything lives in its own state root
# and network namespace, removed at the end)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
runs=${1:-5}
(cd "$here/.." && swift build --product lumos 2>&1 | tail -1 && swift build --product lumos-init 2>&1 | tail -1) >&2
L="$here/../.build/debug/lumos"
tag=$$
export LUMOS_ROOT=/tmp/lumos-bench-kvm-$tag LUMOS_NET_NETNS=lumos-bench-kvm-$tag
bare_pids=()
cleanup() {
  for p in "${bare_pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for u in $("$L" vm list -H -o uuid 2>/dev/null); do "$L" vm delete "$u" >/dev/null 2>&1 || true; done
  "$L" net delete-etherstub bstub0 >/dev/null 2>&1 || true
  "$L" pool destroy -f zones >/dev/null 2>&1 || true
  ip netns del "$LUMOS_NET_NETNS" 2>/dev/null || true
  rm -rf --one-file-system "$LUMOS_ROOT"
}
trap cleanup EXIT
mkdir -p "$LUMOS_ROOT"
ip netns add "$LUMOS_NET_NETNS"
"$L" pool create --size 8G zones >/dev/null
"$L" net create-etherstub bstub0 >/dev/null
"$L" net create-addr -a 10.123.0.1/24 bstub0 >/dev/null
"$L" img build small-guest >/dev/null
"$L" img build small-guest --name big-guest --size 2048 >/dev/null
img=$("$L" img list -H -o uuid,name | awk '$2 == "small-guest" {print $1}')
big=$("$L" img list -H -o uuid,name | awk '$2 == "big-guest" {print $1}')
now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2] + a[NR/2+1]) / 2)}'; }

# The jail's root is made once per QEMU build: the first create pays for it, the runs do not.
echo "{\"brand\":\"kvm\",\"autoboot\":false,\"disks\":[{\"boot\":true,\"image_uuid\":\"$img\"}]}" | "$L" vm create >/dev/null 2>&1
# The by-hand peer's network: a plain bridge, a DHCP server with a static lease for its MAC.
ns() { ip netns exec "$LUMOS_NET_NETNS" "$@"; }
ns ip link add brbare type bridge
ns ip addr add 10.124.0.1/24 dev brbare
ns ip link set brbare up
bare_mac=52:54:00:be:0e:01
cat > "$LUMOS_ROOT/udhcpd.conf" <<CONF
start 10.124.0.10
end 10.124.0.20
interface brbare
static_lease $bare_mac 10.124.0.10
lease_file $LUMOS_ROOT/udhcpd.leases
pidfile $LUMOS_ROOT/udhcpd.pid
option subnet 255.255.255.0
CONF
touch "$LUMOS_ROOT/udhcpd.leases"
ip netns exec "$LUMOS_NET_NETNS" busybox udhcpd -f "$LUMOS_ROOT/udhcpd.conf" >/dev/null 2>&1 &  # not ns(): $! must be udhcpd
bare_pids+=("$!")
bare_times=(); bare_extra=()
bare() {  # $1: run number
  local i=$1 vol file qemu t0 t2
  vol=zones/bare-$i
  "$L" dataset clone "zones/$img@final" "$vol" >/dev/null
  # A volume has no mountpoint of its own: its file sits in the pool's tree (docs/architecture.md).
  file="$("$L" dataset get -H -o value mountpoint zones)/bare-$i/volume.raw"
  [[ -f $file ]] || { echo "by hand run $i: no volume file at $file" >&2; exit 1; }
  ns ip tuntap add dev tbare$i mode tap
  ns ip link set tbare$i master brbare up
  t0=$(now)
  rm -f "$LUMOS_ROOT/bare.pid"
  # Not through ns(): a function in the background is a subshell, and $! would be its pid.
  ip netns exec "$LUMOS_NET_NETNS" qemu-system-x86_64 -machine q35 -accel "${accel_arg:-tcg}" -m 128 -display none -nodefaults \
    -pidfile "$LUMOS_ROOT/bare.pid" \
    -drive "file=$file,format=raw,if=virtio" \
    -netdev tap,id=n0,ifname=tbare$i,script=no,downscript=no -device "virtio-net-pci,netdev=n0,mac=$bare_mac" \
    -serial "file:$LUMOS_ROOT/bare-$i.console" >/dev/null 2>&1 &
  qemu=$!
  bare_pids+=("$qemu")
  for _ in $(seq 1 1000); do [[ -s $LUMOS_ROOT/bare.pid ]] && break; sleep 0.01; done
  [[ $(cat "$LUMOS_ROOT/bare.pid") == "$qemu" ]] || { echo "by hand run $i: QEMU is $(cat "$LUMOS_ROOT/bare.pid"), not $qemu" >&2; exit 1; }
  until ns ping -c 1 -W 0.2 10.124.0.10 >/dev/null 2>&1; do
    (( $(ms "$t0" "$(now)") < 120000 )) || { echo "by hand run $i: no reply in 120 s; its console:" >&2; tail -c 2000 "$LUMOS_ROOT/bare-$i.console" >&2; exit 1; }
  done
  t2=$(now)
  bare_times+=("$(ms "$t0" "$t2")")
  local rss pss
  rss=$(awk '/^Rss:/ {print $2}' "/proc/$qemu/smaps_rollup")
  pss=$(awk '/^Pss:/ {print $2}' "/proc/$qemu/smaps_rollup")
  bare_extra+=("$(( rss / 1024 )) $(( pss / 1024 ))")
  kill -9 "$qemu"; wait "$qemu" 2>/dev/null || true
  ns ip link del tbare$i
  "$L" dataset destroy "$vol" >/dev/null
}

times=(); creates=(); extra=()
for i in $(seq 1 "$runs"); do
  # Interleaved, alternating which goes first, so neither always finds a warmer cache.
  if (( i % 2 == 0 )); then bare "$i"; fi
  ip=10.123.0.$((20 + i))
  json="{\"brand\":\"kvm\",\"alias\":\"b$i\",\"ram\":128,\"disks\":[{\"boot\":true,\"image_uuid\":\"$img\"},{\"size\":64}],\"nics\":[{\"nic_tag\":\"bstub0\",\"ips\":[\"$ip/24\"],\"primary\":true}]}"
  t0=$(now)
  echo "$json" | "$L" vm create >/dev/null 2>&1
  t1=$(now)
  until ip netns exec "$LUMOS_NET_NETNS" ping -c 1 -W 0.2 "$ip" >/dev/null 2>&1; do
    (( $(ms "$t0" "$(now)") < 120000 )) || { echo "run $i: no reply in 120 s" >&2; exit 1; }
  done
  t2=$(now)
  times+=("$(ms "$t0" "$t2")"); creates+=("$(ms "$t0" "$t1")")
  uuid=$("$L" vm lookup -1 alias="b$i")
  # The accelerator vmadm chose (run 1 is vmadm's first), for the peer too.
  accel_arg=$("$L" vm get "$uuid" | awk -F'"' '/lumos_accelerator/ {print $4}' | cut -d' ' -f1)
  pid=$("$L" vm get "$uuid" | awk -F': ' '/"pid"/ {gsub(/,/, "", $2); print $2}')
  rss=$(awk '/^Rss:/ {print $2}' "/proc/$pid/smaps_rollup")
  pss=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup")
  extra+=("$(( rss / 1024 )) $(( pss / 1024 ))")
  "$L" vm delete "$uuid" >/dev/null
  if (( i % 2 == 1 )); then bare "$i"; fi
done
clone() {  # ms of the disk clone alone (an image's @final to a volume), median of 5
  for i in 1 2 3 4 5; do
    t0=$(now); "$L" dataset clone "zones/$1@final" "zones/clone-$i" >/dev/null; t1=$(now)
    ms "$t0" "$t1"; "$L" dataset destroy "zones/clone-$i" >/dev/null
  done | median
}
accel=$("$L" vm list -H -o uuid | head -1 | xargs -r "$L" vm get | awk -F'"' '/lumos_accelerator/ {print $4}' | cut -d' ' -f1)
echo "## vmadm create -> first ping, brand kvm (small guest, q35, 128 MiB, ${accel:-tcg}), $runs runs"
echo
echo "| measure | median | runs |"
echo "|---|---|---|"
echo "| vmadm create returns (jail, clones, taps, QEMU answering QMP, console relay) | $(printf '%s\n' "${creates[@]}" | median) ms | ${creates[*]} |"
lm=$(printf '%s\n' "${times[@]}" | median); bm=$(printf '%s\n' "${bare_times[@]}" | median)
echo "| vmadm create -> first ping reply | $lm ms | ${times[*]} |"
echo "| plain qemu-system-x86_64 by hand, same disk (BIOS boot), start -> first ping reply | $bm ms | ${bare_times[*]} |"
echo "| ratio vmadm / by hand | $(awk -v a="$lm" -v b="$bm" 'BEGIN {printf "%.2f", a / b}') | |"
echo "| disk clone of the 128 MiB image | $(clone "$img") ms | |"
echo "| disk clone of the 2048 MiB image | $(clone "$big") ms | |"
echo "| QEMU's RSS / PSS with a 128 MiB guest (MiB) | | $(printf '%s; ' "${extra[@]}") |"
echo "| by-hand QEMU's RSS / PSS (MiB) | | $(printf '%s; ' "${bare_extra[@]}") |"
echo
echo "Plain qemu-system-x86_64 on the same kernel and root, same run (bench/vm.sh):"
echo
"$here/vm.sh" 3
