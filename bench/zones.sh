#!/usr/bin/env bash
# Zones benchmark: `vmadm create` of a busybox zone until its init runs (create→running),
# `vmadm start` of a created zone against `runc run -d` (and crun, where it runs) of the same
# root file system in the same run, and density: N idle zones, host memory per zone and
# Lumos's own share (no daemon: only kernel objects). Prints markdown.
# Usage: sudo bench/zones.sh [RUNS] [ZONES]   (default 15 runs, 200 idle zones)
# With BASELINE=/path/to/lumos, `vmadm start` of that binary joins the interleaved start runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
runs=${1:-15}
zones=${2:-200}
lumos=$(lumos_bin)
zone_bench zones
cleanup() {
  runc delete -f lumos-bench-runc >/dev/null 2>&1 || true
  zone_bench_cleanup
}
trap cleanup EXIT
"$lumos" pool create zones --size 8G >/dev/null
img=$("$lumos" img build busybox | awk '{print $3}')
payload() { echo "{\"brand\":\"lx\",\"image_uuid\":\"$img\",\"max_physical_memory\":64,\"alias\":\"bench\"$1}"; }

# create → running
create=()
for i in $(seq "$runs"); do
  t=$(now_ns); payload "" | vmadm create 2>/dev/null; create+=("$(ms_since "$t")")
  u=$(vmadm list -H -o uuid | head -1)
  [[ $(vmadm list -H -o state "uuid=$u") == running ]] || { echo "zone $u is not running" >&2; exit 1; }
  vmadm delete "$u" 2>/dev/null
done

# start: vmadm vs runc on the same rootfs (a stopped zone's dataset)
payload ',"autoboot":false' | vmadm create 2>/dev/null
u=$(vmadm list -H -o uuid | head -1)
# runc gets a copy outside the pool: pools are mounted noexec and closed to other users
# (docs/security.md), and runc runs from a plain bind mount of its rootfs.
bundle=$work/bundle
mkdir -p "$bundle"
cp -a "$(vmadm get "$u" | sed -n 's/.*"zonepath": "\(.*\)".*/\1/p')/root" "$bundle/rootfs"
rootfs=$bundle/rootfs
(cd "$bundle" && runc spec)
python3 - "$bundle/config.json" "$rootfs" <<'PY'
import json, sys
p, root = sys.argv[1], sys.argv[2]
c = json.load(open(p))
c["root"] = {"path": root, "readonly": True}
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/sleep", "3600"]
json.dump(c, open(p, "w"))
PY
start=(); runcs=(); bases=(); crun_note="crun refused: $(cd "$bundle" && crun run -d lumos-bench-crun 2>&1 | head -1 || true)"
crun delete -f lumos-bench-crun >/dev/null 2>&1 || true
for i in $(seq "$runs"); do
  t=$(now_ns); vmadm start "$u" 2>/dev/null; start+=("$(ms_since "$t")")
  vmadm stop -F "$u" 2>/dev/null
  t=$(now_ns); (cd "$bundle" && runc run -d lumos-bench-runc >/dev/null 2>&1 </dev/null); runcs+=("$(ms_since "$t")")
  runc delete -f lumos-bench-runc >/dev/null 2>&1
  if [[ -n ${BASELINE:-} ]]; then
    t=$(now_ns); "$BASELINE" vm start "$u" 2>/dev/null; bases+=("$(ms_since "$t")")
    vmadm stop -F "$u" 2>/dev/null
  fi
done
vmadm delete "$u" 2>/dev/null

# density: idle zones. Lumos runs no daemon, so its own memory per zone is the kernel objects
# it creates (namespaces, cgroups, mounts): measured as the growth of the kernel's slab.
slab() { awk '/^Slab:/ {print $2}' /proc/meminfo; }
before=$(slab)
t=$(now_ns)
for i in $(seq "$zones"); do payload "" | vmadm create 2>/dev/null; done
density_s=$(echo "scale=1; $(ms_since "$t") / 1000" | bc)
running=$(vmadm list -H -o state state=running | wc -l)
sleep 2
after=$(slab)
rss=0; charged=0; logger_rss=0; loggers=0
for u in $(vmadm list -H -o uuid); do
  for p in $(cat /sys/fs/cgroup/pids/lumos/$u/cgroup.procs 2>/dev/null || cat /sys/fs/cgroup/lumos/$u/cgroup.procs 2>/dev/null); do
    r=$(awk '/VmRSS/ {print $2}' /proc/$p/status 2>/dev/null || echo 0)
    # The zone's console logger (lumos-init --console-log) is Lumos's, not the zone's. Its
    # proportional set size: the binary's pages are shared by every logger and lumos-init.
    if tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null | grep -q -- '--console-log'; then
      r=$(awk '/^Pss:/ {print $2}' /proc/$p/smaps_rollup 2>/dev/null || echo 0)
      logger_rss=$((logger_rss + ${r:-0})); loggers=$((loggers + 1))
    else
      rss=$((rss + ${r:-0}))
    fi
  done
  c=$(cat /sys/fs/cgroup/memory/lumos/$u/memory.usage_in_bytes 2>/dev/null || cat /sys/fs/cgroup/lumos/$u/memory.current 2>/dev/null || echo 0)
  charged=$((charged + c / 1024))
done
per_zone=$(echo "scale=0; ($after - $before) / $zones" | bc)
rss_zone=$(echo "scale=0; $rss / $zones" | bc)
logger_zone=$(echo "scale=0; $logger_rss / $zones" | bc)
charged_zone=$(echo "scale=0; $charged / $zones" | bc)
# Processes running this build of lumos (other users of the machine may run their own).
lumos_procs=0
for d in /proc/[0-9]*; do [[ $(readlink "$d/exe" 2>/dev/null) == "$lumos" ]] && lumos_procs=$((lumos_procs + 1)); done

c=$(printf '%s\n' "${create[@]}" | median)
s=$(printf '%s\n' "${start[@]}" | median)
r=$(printf '%s\n' "${runcs[@]}" | median)
echo "| measure | value |"
echo "|---|---|"
echo "| create→running, busybox zone (ms, median of $runs) | $c |"
echo "| vmadm start (ms, median of $runs) | $s |"
echo "| runc run -d, same rootfs (ms, median of $runs) | $r |"
echo "| vmadm start / runc run | $(ratio "$s" "$r") |"
if [[ -n ${BASELINE:-} ]]; then
  b=$(printf '%s\n' "${bases[@]}" | median)
  echo "| vmadm start of $BASELINE (ms, median of $runs) | $b |"
  echo "| that / runc run | $(ratio "$b" "$r") |"
fi
echo "| crun | ${crun_note} |"
echo "| idle zones created and running | $running of $zones in ${density_s} s |"
echo "| zone's own processes per idle zone (KiB RSS) | $rss_zone |"
echo "| charged to the zone's memory cgroup per idle zone (KiB) | $charged_zone |"
echo "| Lumos's own memory per idle zone: kernel slab growth (KiB) | $per_zone |"
echo "| Lumos's console logger per idle zone (KiB PSS; $loggers loggers) | $logger_zone |"
echo "| Lumos's own memory per idle zone, slab + logger (KiB) | $((per_zone + logger_zone)) |"
echo "| Lumos processes left running (no daemon) | $lumos_procs |"
