#!/usr/bin/env bash
# What `df in a zone` costs (docs/architecture.md, "df in a zone"): statfs(2) in a vmadm zone
# goes to the zone's seccomp supervisor (`lumos-init --statfs-server`), which answers from the
# dataset's qgroup. Measured in the same run: ns per statfs("/") and per fstatfs of an open
# file, by a static C loop on the host (the kernel answers) and in a busybox zone with a quota
# (the supervisor answers); and the time of `vmadm start` of that zone (the supervisor is
# started with it). Prints markdown.
# Usage: sudo bench/statfs.sh [RUNS] [CALLS]   (defaults 7, 20000)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
runs=${1:-7}
calls=${2:-20000}
lumos=$(lumos_bin)
zone_bench statfs
cleanup() { zone_bench_cleanup; }
trap cleanup EXIT

# loop N [f]: N statfs("/") calls (with f: fstatfs of an open /), prints ns per call.
cat > "$work/loop.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/vfs.h>
#include <time.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]); int f = argc > 2; struct statfs s; struct timespec a, b;
    int fd = open("/", O_RDONLY | O_DIRECTORY);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) if ((f ? fstatfs(fd, &s) : statfs("/", &s)) != 0) { perror("statfs"); return 1; }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.0f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
    return 0;
}
C
cc -O2 -static -o "$work/loop" "$work/loop.c"

"$lumos" pool create zones --size 4G >/dev/null
img=$("$lumos" img build busybox | awk '{print $3}')
echo "{\"brand\":\"lx\",\"image_uuid\":\"$img\",\"max_physical_memory\":64,\"quota\":1,\"alias\":\"statfs\"}" | vmadm create 2>/dev/null
u=$(vmadm list -H -o uuid | head -1)
[[ $(vmadm list -H -o state "uuid=$u") == running ]] || { echo "bench/statfs: zone $u is not running" >&2; exit 1; }
root=$(vmadm get "$u" | sed -n 's/.*"zonepath": "\(.*\)".*/\1/p')/root
install -m 755 "$work/loop" "$root/statfs-loop"
# The supervisor answers: the zone's / shows its 1 GiB quota, not the pool's 4 GiB.
size=$("$lumos" login "$u" /bin/df -k / | awk 'NR == 2 {print $2}')
[[ $size == 1048576 ]] || { echo "bench/statfs: df in the zone shows $size KiB, not the quota's 1048576" >&2; exit 1; }

host=(); zone=(); hostf=(); zonef=(); start=()
for i in $(seq "$runs"); do
  host+=("$("$work/loop" "$calls")")
  zone+=("$("$lumos" login "$u" /statfs-loop "$calls")")
  hostf+=("$("$work/loop" "$calls" f)")
  zonef+=("$("$lumos" login "$u" /statfs-loop "$calls" f)")
  vmadm stop "$u" >/dev/null 2>&1
  t=$(now_ns); vmadm start "$u" >/dev/null 2>&1; start+=("$(ms_since "$t")")
done
h=$(printf '%s\n' "${host[@]}" | median); z=$(printf '%s\n' "${zone[@]}" | median)
hf=$(printf '%s\n' "${hostf[@]}" | median); zf=$(printf '%s\n' "${zonef[@]}" | median)
s=$(printf '%s\n' "${start[@]}" | median)
echo "| measure (median of $runs) | in the zone (supervisor) | on the host (kernel) | zone / host |"
echo "|---|---|---|---|"
echo "| statfs(\"/\"), ns per call ($calls calls) | $z | $h | $(ratio "$z" "$h") |"
echo "| fstatfs(fd of /), ns per call | $zf | $hf | $(ratio "$zf" "$hf") |"
echo "| vmadm start of the zone (supervisor started with it), ms | $s | | |"
