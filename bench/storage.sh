#!/usr/bin/env bash
# Storage benchmark: snapshot and clone time for a 1 MiB and a 1 GiB dataset (should be flat:
# O(1) in size), and incremental send+receive of a 10 MiB change, each through lumos and
# through the raw btrfs CLI on the same pool in the same run. Prints a markdown table.
# Usage: sudo bench/storage.sh [RUNS]   (default 15 runs per figure)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
runs=${1:-15}
lumos=$(lumos_bin)
work=$(mktemp -d /tmp/lumos-bench-storage.XXXXXX)
export LUMOS_ROOT=$work/state
cleanup() { "$lumos" pool destroy -f bench >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
"$lumos" pool create bench --size 8G >/dev/null
mnt=$("$lumos" pool list -H -o mountpoint | head -1)

declare -A result
for size in 1M 1G; do
  ds=bench/d$size
  "$lumos" dataset create -o compression=off "$ds"
  dir=$mnt/d$size
  if [[ $size == 1M ]]; then head -c 1M /dev/urandom > "$dir/data"; else head -c 1G /dev/urandom > "$dir/data"; fi
  sync
  mkdir -p "$mnt/raw"
  l_snap=(); l_clone=(); b_snap=(); b_clone=()
  for i in $(seq "$runs"); do
    t=$(now_ns); "$lumos" dataset snapshot "$ds@s$i"; l_snap+=("$(ms_since "$t")")
    t=$(now_ns); "$lumos" dataset clone "$ds@s$i" "bench/c$size-$i"; l_clone+=("$(ms_since "$t")")
    t=$(now_ns); btrfs subvolume snapshot -r "$dir" "$mnt/raw/s$size-$i" >/dev/null; b_snap+=("$(ms_since "$t")")
    t=$(now_ns); btrfs subvolume snapshot "$mnt/raw/s$size-$i" "$mnt/raw/c$size-$i" >/dev/null; b_clone+=("$(ms_since "$t")")
  done
  result[snap_l_$size]=$(printf '%s\n' "${l_snap[@]}" | median)
  result[clone_l_$size]=$(printf '%s\n' "${l_clone[@]}" | median)
  result[snap_b_$size]=$(printf '%s\n' "${b_snap[@]}" | median)
  result[clone_b_$size]=$(printf '%s\n' "${b_clone[@]}" | median)
done

# Incremental send+receive of a 10 MiB change.
"$lumos" dataset create -o compression=off bench/inc
head -c 50M /dev/urandom > "$mnt/inc/base"
"$lumos" dataset snapshot bench/inc@0
"$lumos" dataset send bench/inc@0 | "$lumos" dataset receive bench/inc-copy 2>/dev/null
mkdir -p "$mnt/rawrecv" "$mnt/rawsrc"
btrfs subvolume snapshot -r "$mnt/inc" "$mnt/rawsrc/r0" >/dev/null
btrfs send -q "$mnt/rawsrc/r0" | btrfs receive -q "$mnt/rawrecv"
l_inc=(); b_inc=(); l_send=(); b_send=()
for i in $(seq "$runs"); do
  head -c 10M /dev/urandom > "$mnt/inc/change-$i"; sync
  "$lumos" dataset snapshot "bench/inc@$i"
  btrfs subvolume snapshot -r "$mnt/inc" "$mnt/rawsrc/r$i" >/dev/null
  sync
  t=$(now_ns); "$lumos" dataset send -i "@$((i-1))" "bench/inc@$i" > /dev/null; l_send+=("$(ms_since "$t")")
  t=$(now_ns); btrfs send -q -p "$mnt/rawsrc/r$((i-1))" "$mnt/rawsrc/r$i" > /dev/null; b_send+=("$(ms_since "$t")")
  t=$(now_ns); "$lumos" dataset send -i "@$((i-1))" "bench/inc@$i" | "$lumos" dataset receive bench/inc-copy 2>/dev/null; l_inc+=("$(ms_since "$t")")
  t=$(now_ns); btrfs send -q -p "$mnt/rawsrc/r$((i-1))" "$mnt/rawsrc/r$i" | btrfs receive -q "$mnt/rawrecv"; b_inc+=("$(ms_since "$t")")
done
result[inc_l]=$(printf '%s\n' "${l_inc[@]}" | median)
result[inc_b]=$(printf '%s\n' "${b_inc[@]}" | median)
result[send_l]=$(printf '%s\n' "${l_send[@]}" | median)
result[send_b]=$(printf '%s\n' "${b_send[@]}" | median)

echo "| operation | lumos (ms, median of $runs) | btrfs CLI (ms) | lumos / btrfs |"
echo "|---|---|---|---|"
for size in 1M 1G; do
  echo "| snapshot, $size dataset | ${result[snap_l_$size]} | ${result[snap_b_$size]} | $(ratio "${result[snap_l_$size]}" "${result[snap_b_$size]}") |"
  echo "| clone, $size dataset | ${result[clone_l_$size]} | ${result[clone_b_$size]} | $(ratio "${result[clone_l_$size]}" "${result[clone_b_$size]}") |"
done
echo "| incremental send only (to /dev/null), 10 MiB change | ${result[send_l]} | ${result[send_b]} | $(ratio "${result[send_l]}" "${result[send_b]}") |"
echo "| incremental send+receive, 10 MiB change | ${result[inc_l]} | ${result[inc_b]} | $(ratio "${result[inc_l]}" "${result[inc_b]}") |"
echo
echo "snapshot 1G / 1M time (flat = O(1)): lumos $(ratio "${result[snap_l_1G]}" "${result[snap_l_1M]}"), clone $(ratio "${result[clone_l_1G]}" "${result[clone_l_1M]}")"
