#!/usr/bin/env bash
# vmadmd against the CLI (docs/daemon.md): a busybox zone's create -> running through the API
# (`curl -X POST --unix-socket ... /tenants`, autoboot: the 201 comes once the zone runs) and
# through `vmadm create` (which returns once the zone runs), interleaved in the same run on the
# same state root, each checked running before it is deleted. Both include a client process
# start (curl, lumos). Also the round trip of GET /ping with curl (the HTTP floor) and of GET
# /tenants/UUID against `vmadm get UUID`. Prints markdown.
# Usage: sudo bench/daemon.sh [RUNS]   (default 15; everything lives in its own state root)
# LUMOS=/path/to/lumos skips the release build (e.g. .build/debug/lumos).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
runs=${1:-15}
if [[ -n ${LUMOS:-} ]]; then lumos=$LUMOS; else
  lumos=$(lumos_bin)
  (cd "$here/.." && swift build -c release --product lumos-init 2>&1 | tail -1) >&2
fi
work=$(mktemp -d /tmp/lumos-bench-daemon.XXXXXX)
chmod 755 "$work"
export LUMOS_ROOT=$work/state
sock=$work/vmadmd.sock
vmadm() { "$lumos" vm "$@"; }
api() { curl -sS --unix-socket "$sock" "$@"; }
daemon_pid=
cleanup() {
  [[ -n $daemon_pid ]] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  for u in $(vmadm list -H -o uuid 2>/dev/null); do vmadm delete "$u" >/dev/null 2>&1 || true; done
  "$lumos" pool destroy -f zones >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
"$lumos" pool create zones --size 8G >/dev/null
img=$("$lumos" img build busybox | awk '{print $3}')
payload='{"brand":"lx","image_uuid":"'$img'","max_physical_memory":64,"alias":"bench"}'
LUMOS_OPENAPI=$here/../docs/api/openapi.yaml "$lumos" daemon --socket "$sock" --no-autoboot 2>"$work/vmadmd.log" &
daemon_pid=$!
for _ in $(seq 300); do api -o /dev/null http://l/ping 2>/dev/null && break; sleep 0.1; done
api -f -o /dev/null http://l/ping || { echo "the daemon did not start: $(cat "$work/vmadmd.log")" >&2; exit 1; }

check_running() {  # $1 uuid
  [[ $(vmadm list -H -o state "uuid=$1") == running ]] || { echo "zone $1 is not running" >&2; exit 1; }
}
# One create of each first: the image's first clone and the daemon's first request are not measured.
u=$(api -f -X POST -H 'Content-Type: application/json' -d "$payload" http://l/tenants | sed -n 's/.*"uuid":"\([0-9a-f-]*\)".*/\1/p')
vmadm delete "$u" 2>/dev/null
echo "$payload" | vmadm create 2>/dev/null
vmadm delete "$(vmadm list -H -o uuid | head -1)" 2>/dev/null

cli=(); apis=(); pings=(); gets=(); cgets=()
for i in $(seq "$runs"); do
  t=$(now_ns); echo "$payload" | vmadm create 2>/dev/null; cli+=("$(ms_since "$t")")
  u=$(vmadm list -H -o uuid | head -1); check_running "$u"; vmadm delete "$u" 2>/dev/null
  t=$(now_ns); out=$(api -f -X POST -H 'Content-Type: application/json' -d "$payload" http://l/tenants); apis+=("$(ms_since "$t")")
  u=$(echo "$out" | sed -n 's/.*"uuid":"\([0-9a-f-]*\)".*/\1/p'); check_running "$u"
  t=$(now_ns); api -f -o /dev/null "http://l/tenants/$u"; gets+=("$(ms_since "$t")")
  t=$(now_ns); vmadm get "$u" >/dev/null; cgets+=("$(ms_since "$t")")
  vmadm delete "$u" 2>/dev/null
  t=$(now_ns); api -f -o /dev/null http://l/ping; pings+=("$(ms_since "$t")")
done
c=$(printf '%s\n' "${cli[@]}" | median)
a=$(printf '%s\n' "${apis[@]}" | median)
p=$(printf '%s\n' "${pings[@]}" | median)
g=$(printf '%s\n' "${gets[@]}" | median)
cg=$(printf '%s\n' "${cgets[@]}" | median)
range() { printf '%s\n' "$@" | sort -n | awk 'NR==1 {lo=$1} {hi=$1} END {print lo "–" hi}'; }
echo "| measure (ms, median of $runs, interleaved) | value |"
echo "|---|---|"
echo "| create → running, busybox zone, API (curl POST /tenants) | $a ($(range "${apis[@]}")) |"
echo "| create → running, busybox zone, CLI (vmadm create) | $c ($(range "${cli[@]}")) |"
echo "| API / CLI | $(ratio "$a" "$c") |"
echo "| GET /tenants/UUID (curl) | $g |"
echo "| vmadm get UUID | $cg |"
echo "| GET /ping (curl: the HTTP round trip and curl's start) | $p |"
