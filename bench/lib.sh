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
# A private PostgreSQL cluster (unix socket only) for pgbench: pg_start DIR sets pgbin, pgdir,
# port and starts it (returns 1 when PostgreSQL or its user is missing); pg_stop stops it.
# aspg CMD... runs as the postgres user.
aspg() { runuser -u postgres -- "$@"; }
pg_start() {
  local pgver; pgver=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
  pgbin=/usr/lib/postgresql/$pgver/bin
  [[ -n $pgver && -x $pgbin/postgres ]] && id postgres >/dev/null 2>&1 || return 1
  pgdir=$1/pg; port=$((45000 + $$ % 5000))
  mkdir -p "$pgdir"; chown postgres "$pgdir"; chmod 755 "$1"
  aspg "$pgbin/initdb" -D "$pgdir/data" -A trust >/dev/null
  aspg "$pgbin/pg_ctl" -D "$pgdir/data" -o "-k $pgdir -p $port -c listen_addresses=''" -l "$pgdir/log" -w start >/dev/null
}
pg_stop() { [[ -n ${pgdir:-} ]] && aspg "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1 || true; }
# zone_bench NAME: a bench of vmadm zones in a private state root. Builds lumos-init (release)
# beside lumos (call after lumos=$(lumos_bin)), makes the work dir (sets work, exports
# LUMOS_ROOT) and defines vmadm. zone_bench_cleanup deletes every zone, destroys the pool
# and removes the work dir.
zone_bench() {
  (cd "$(dirname "${BASH_SOURCE[0]}")/.." && swift build -c release --product lumos-init 2>&1 | tail -1) >&2
  work=$(mktemp -d "/tmp/lumos-bench-$1.XXXXXX")
  chmod 755 "$work"
  export LUMOS_ROOT=$work/state
}
vmadm() { "$lumos" vm "$@"; }
zone_bench_cleanup() {
  for u in $(vmadm list -H -o uuid 2>/dev/null); do vmadm delete "$u" >/dev/null 2>&1 || true; done
  "$lumos" pool destroy -f zones >/dev/null 2>&1 || true
  rm -rf "$work"
}
