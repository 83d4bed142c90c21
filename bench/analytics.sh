#!/usr/bin/env bash
# The cost of an active Cloud Analytics instrumentation (docs/analytics.md) on pgbench TPS:
# a private PostgreSQL cluster (unix socket) under `pgbench -S` (select-only, 2 clients,
# DURATION s), with no instrumentation, with cpu.thread_samples (by zonename and subsecond,
# unpredicated: 99 Hz on every CPU), with postgresql.queries by latency (two uprobes per query)
# and with postgresql.queries by query text and latency (pgbench -S's statements carry their
# literal, so every query is a new key: the 1024-key map fills and the rest are aggregation
# drops, the worst case), each created over the daemon's API (`lumos daemon` on a private state
# root and socket) 2 s before pgbench starts and deleted after. Interleaved in the same run,
# RUNS rounds; prints medians, min–max and the ratios to no instrumentation as markdown.
# TPS moves with the machine's load; the server's CPU time per transaction much less: the
# postmaster is moved into a cgroup v2 of its own, so its backends' time (the uprobes' handlers
# and BPF programs run in them) is that cgroup's cpu.stat usage_usec.
# Usage: sudo bench/analytics.sh [RUNS] [DURATION]   (defaults 5, 10)
# LUMOS=/path/to/lumos skips the release build (e.g. .build/debug/lumos).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
runs=${1:-5}
duration=${2:-10}
if [[ -n ${LUMOS:-} ]]; then lumos=$LUMOS; else lumos=$(lumos_bin); fi
work=$(mktemp -d /tmp/lumos-bench-ca.XXXXXX)
chmod 755 "$work"
export LUMOS_ROOT=$work/state
mkdir -p "$LUMOS_ROOT"
sock=$work/vmadmd.sock
api() { curl -sS --unix-socket "$sock" "$@"; }
daemon_pid=
cg=
cleanup() {
  [[ -n $daemon_pid ]] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  pg_stop
  [[ -n $cg ]] && { sleep 0.5; rmdir "$cg" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT
pg_start "$work" || { echo "bench/analytics.sh: PostgreSQL not installed (scripts/install-deps.sh)" >&2; exit 1; }
aspg "$pgbin/pgbench" -h "$pgdir" -p "$port" -i -s 1 postgres >/dev/null 2>&1
cg=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)/lumos-bench-ca-$$
mkdir "$cg"
for p in $(pgrep -P "$(head -1 "$pgdir/data/postmaster.pid")") $(head -1 "$pgdir/data/postmaster.pid"); do echo "$p" > "$cg/cgroup.procs"; done
usage() { awk '$1 == "usage_usec" {print $2}' "$cg/cpu.stat"; }
"$lumos" daemon --socket "$sock" --no-autoboot 2>"$work/vmadmd.log" &
daemon_pid=$!
for _ in $(seq 300); do api -o /dev/null http://l/ping 2>/dev/null && break; sleep 0.1; done
api -f -o /dev/null http://l/ping || { echo "the daemon did not start: $(cat "$work/vmadmd.log")" >&2; exit 1; }

# tps: "TPS CPU-µs-per-transaction" of one pgbench run.
tps() {
  local u0 out n
  u0=$(usage)
  out=$(aspg "$pgbin/pgbench" -h "$pgdir" -p "$port" -n -S -c 2 -T "$duration" postgres 2>/dev/null)
  n=$(echo "$out" | awk '/actually processed/ {split($NF, a, "/"); print a[1]}')
  echo "$(echo "$out" | awk '/^tps/ {printf "%.0f", $3; exit}') $(echo "scale=2; ($(usage) - $u0) / $n" | bc)"
}
# tps_with BODY: creates the instrumentation, checks it runs, measures, checks it saw
# something (a non-empty value over the run), deletes it.
tps_with() {
  local out id r seen
  out=$(api -f -X POST -H 'Content-Type: application/json' -d "$1" http://l/ca/instrumentations) \
    || { echo "create failed: $1" >&2; exit 1; }
  id=$(echo "$out" | sed -n 's/.*"id":"\([0-9]*\)".*/\1/p')
  sleep 2
  r=$(tps)
  seen=$(api -f "http://l/ca/instrumentations/$id/value/raw?duration=$duration")
  [[ $seen == *'[['* ]] || { echo "instrumentation $id saw nothing: $seen" >&2; exit 1; }
  api -f -X DELETE -o /dev/null "http://l/ca/instrumentations/$id"
  echo "$r"
}
samples='{"module":"cpu","stat":"thread_samples","decomposition":["zonename","subsecond"]}'
latency='{"module":"postgresql","stat":"queries","decomposition":["latency"]}'
queries='{"module":"postgresql","stat":"queries","decomposition":["query","latency"]}'
tps >/dev/null   # warm the cache; not counted
t_none=(); t_cpu=(); t_lat=(); t_pg=()
for i in $(seq "$runs"); do
  t_none+=("$(tps)")
  t_cpu+=("$(tps_with "$samples")")
  t_lat+=("$(tps_with "$latency")")
  t_pg+=("$(tps_with "$queries")")
done
range() { printf '%s\n' "$@" | sort -n | awk 'NR==1 {lo=$1} {hi=$1} END {print lo "–" hi}'; }
col() { local k=$1; shift; printf '%s\n' "$@" | awk -v k="$k" '{print $k}'; }  # col N "TPS CPU"...
row() {  # row LABEL RESULTS...
  local label=$1; shift
  local t c; t=$(col 1 "$@" | median); c=$(col 2 "$@" | median)
  echo "| $label | $t ($(range $(col 1 "$@"))) | $(ratio "$t" "$tn") | $c ($(range $(col 2 "$@"))) | $(echo "scale=2; $c - $cn" | bc) |"
}
tn=$(col 1 "${t_none[@]}" | median); cn=$(col 2 "${t_none[@]}" | median)
echo "| pgbench -S, 2 clients, ${duration} s (median of $runs, interleaved; min–max) | TPS | / none | server CPU µs per transaction | added µs |"
echo "|---|---|---|---|---|"
row "no instrumentation" "${t_none[@]}"
row "cpu.thread_samples by zonename, subsecond" "${t_cpu[@]}"
row "postgresql.queries by latency" "${t_lat[@]}"
row "postgresql.queries by query, latency (a key per statement: map full, drops)" "${t_pg[@]}"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
