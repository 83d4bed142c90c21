# Shared helpers for bench scripts: timing in milliseconds and medians.
now_ns() { date +%s%N; }
# ms_since START_NS
ms_since() { echo "scale=2; ($(now_ns) - $1) / 1000000" | bc; }
# median of numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END { if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2 }'; }
ratio() { echo "scale=2; $1 / $2" | bc; }
lumos_bin() {
  local root; root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  if [[ ! -x $root/.build/release/lumos || ${REBUILD:-1} == 1 ]]; then
    (cd "$root" && swift build -c release --product lumos -Xswiftc -static-executable 2>&1 | tail -1) >&2
  fi
  echo "$root/.build/release/lumos"
}
