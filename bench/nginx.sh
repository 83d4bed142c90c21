#!/usr/bin/env bash
# nginx in a systemd zone, reached from a second zone over an etherstub (issue 11), against the
# same nginx on the host's loopback in the same run. Prints markdown.
#  - The image: `imgadm build debian --init systemd --packages nginx,wrk` (debootstrap from the
#    host's Debian mirror, docs/vmadm.md "Zones with systemd"); its manifest and file are kept
#    in $NGINX_IMAGE_CACHE (default /var/tmp/lumos-bench-nginx-image) and imported from there
#    by later runs (delete the directory to build afresh).
#  - Two zones from it on a fresh etherstub (its host side in a network namespace this script
#    creates), static addresses: the server, where systemd starts nginx (Debian's unit and
#    config, port 80), and the client, whose own nginx is stopped; `wrk` runs in the client
#    through zlogin.
#  - The peer: the same nginx binary and config, copied from the server zone's root before its
#    first boot, run on the host's 127.0.0.1 (a free port; the listen lines are the only change)
#    by chroot into that copy, and wrk from the same copy (the host has no wrk) on the host.
#  - Also wrk inside the server zone against its own 127.0.0.1:80: the zone without the
#    etherstub, to split what the path between the zones costs from what the zone costs.
# Every case runs the same wrk (-t2 -cCONNS -dSECONDS) against Debian's default index page,
# ROUNDS rounds with the order of the cases rotated each round; client and server share the
# machine's 2 cores in every case (they compete), as does other work on the machine.
# Usage: sudo bench/nginx.sh [ROUNDS] [SECONDS] [CONNS]   (default 5 rounds of 10 s, 50 connections)
# LUMOS=/path/to/lumos skips the release build (e.g. .build/debug/lumos).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
runs=${1:-5}
secs=${2:-10}
conns=${3:-50}
if [[ -n ${LUMOS:-} ]]; then lumos=$LUMOS; else
  lumos=$(lumos_bin)
  (cd "$here/.." && swift build -c release --product lumos-init 2>&1 | tail -1) >&2
fi
cache=${NGINX_IMAGE_CACHE:-/var/tmp/lumos-bench-nginx-image}
id="lumos-b-ngx-$$"
work=$(mktemp -d /tmp/lumos-bench-nginx.XXXXXX)
chmod 755 "$work"
export LUMOS_ROOT=$work/state LUMOS_NET_NETNS=$id-h
vmadm() { "$lumos" vm "$@"; }
host_nginx=
cleanup() {
  if [[ -n $host_nginx ]]; then kill "$host_nginx" 2>/dev/null || true; wait "$host_nginx" 2>/dev/null || true; fi
  for u in $(vmadm list -H -o uuid 2>/dev/null); do vmadm delete "$u" >/dev/null 2>&1 || true; done
  "$lumos" net delete-etherstub stub0 >/dev/null 2>&1 || true
  "$lumos" pool destroy -f zones >/dev/null 2>&1 || true
  ip netns del "$id-h" 2>/dev/null || true
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
fail() { echo "bench/nginx.sh: $*" >&2; exit 1; }

"$lumos" pool create zones --size 8G >/dev/null
manifest=$(ls "$cache"/*.json 2>/dev/null | head -1 || true)
if [[ -z $manifest ]]; then
  mkdir -p "$cache"
  echo "building the image (debootstrap: a few minutes) into $cache" >&2
  "$lumos" img build debian --init systemd --packages nginx,wrk -o "$cache" >/dev/null
  manifest=$(ls "$cache"/*.json | head -1)
else
  file=$(ls "$cache"/* | grep -v '\.json$' | head -1)
  "$lumos" img import -q -m "$manifest" -f "$file" >/dev/null
fi
img=$("$lumos" img list -H -o uuid,name | awk '$2 == "debian-bookworm-systemd" {print $1; exit}')
[[ -n $img ]] || fail "no debian-bookworm-systemd image after the build/import"

ip netns add "$id-h"
"$lumos" net create-etherstub stub0 >/dev/null
"$lumos" net create-addr -a 10.77.0.1/24 stub0 >/dev/null
zone() { # ALIAS IP AUTOBOOT
  echo "{\"brand\":\"lx\",\"alias\":\"$1\",\"image_uuid\":\"$img\",\"max_physical_memory\":512,\"autoboot\":$3,\"nics\":[{\"nic_tag\":\"stub0\",\"ips\":[\"$2/24\"],\"primary\":true}]}" | vmadm create 2>/dev/null
  vmadm list -H -o uuid "alias=$1"
}
server=$(zone ngx-server 10.77.0.10 false)
client=$(zone ngx-client 10.77.0.11 true)
[[ ${#server} == 36 && ${#client} == 36 ]] || fail "vmadm create failed (server '$server', client '$client')"

# The peer's copy of the server's root, before systemd's first boot changes anything in it.
zroot=$(vmadm get "$server" | sed -n 's/.*"zonepath": "\(.*\)".*/\1/p')/root
hroot=$work/hostroot
cp -a "$zroot" "$hroot"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -i -e "s/^\(\s*\)listen 80 default_server;/\1listen 127.0.0.1:$port default_server;/" -e '/listen \[::\]:80/d' \
  "$hroot/etc/nginx/sites-enabled/default"
grep -q "listen 127.0.0.1:$port" "$hroot/etc/nginx/sites-enabled/default" || fail "the image's default site has no 'listen 80 default_server'"
# In a mount namespace of its own (gone with its processes): the host's /dev and a /proc.
inroot() { unshare --mount --propagation private sh -c 'mount --bind /dev "$0/dev" && mount -t proc proc "$0/proc" && exec chroot "$0" "$@"' "$hroot" "$@"; }
inroot /usr/sbin/nginx -g 'daemon off;' </dev/null >"$work/host-nginx.log" 2>&1 &
host_nginx=$!

vmadm start "$server" 2>/dev/null
# systemd starts nginx: wait until it answers on the etherstub (from the switch's host side).
answers() { ip netns exec "$id-h" curl -sf -o /dev/null --max-time 2 http://10.77.0.10/; }
for _ in $(seq 300); do answers && break; sleep 0.5; done
answers || fail "nginx in the server zone does not answer: $("$lumos" login "$server" systemctl status nginx 2>&1 | tail -5)"
for _ in $(seq 100); do curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/" && break; sleep 0.1; done
curl -sf -o /dev/null "http://127.0.0.1:$port/" || fail "nginx on the host's loopback does not answer: $(cat "$work/host-nginx.log")"
# The client: systemd's own nginx there is stopped (only wrk runs in it); it reaches the server.
"$lumos" login "$client" /bin/sh -c 'for i in $(seq 600); do test -S /run/systemd/private && break; sleep 0.1; done; systemctl stop nginx' >/dev/null 2>&1 || true
page=$("$lumos" login "$client" /bin/bash -c 'exec 3<>/dev/tcp/10.77.0.10/80 && printf "GET / HTTP/1.0\r\n\r\n" >&3 && cat <&3' 2>/dev/null || true)
[[ $page == *"Welcome to nginx!"* ]] || fail "the client zone does not reach nginx in the server zone: ${page:0:200}"
[[ $(curl -s "http://127.0.0.1:$port/") == "$(ip netns exec "$id-h" curl -s http://10.77.0.10/)" ]] || fail "the two nginx serve different pages"

workers() { # "zone UUID" | host: nginx worker processes
  local list='for p in /proc/[0-9]*; do tr "\0" " " < $p/cmdline 2>/dev/null; echo; done'
  if [[ $1 == host ]]; then bash -c "$list" | grep -c '^nginx: worker' || true
  else "$lumos" login "$2" /bin/bash -c "$list" 2>/dev/null | grep -c '^nginx: worker' || true; fi
}
wrk_args=(-t2 "-c$conns" "-d${secs}s")
# "requests/s latency-avg" of one wrk run; non-2xx answers or socket errors fail the run.
parse() {
  local out=$1
  grep -q 'Requests/sec' <<<"$out" || fail "wrk: $out"
  if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then fail "wrk saw errors: $out"; fi
  # wrk prints the mean latency with a unit (us, ms, s): in ms.
  echo "$(awk '/^Requests\/sec/ {print $2}' <<<"$out") $(awk '/^ *Latency/ { v = $2 + 0; u = $2; sub(/^[0-9.]+/, "", u)
    printf "%.2f", (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v; exit }' <<<"$out")"
}
measure() { # CASE
  case $1 in
    zone) parse "$("$lumos" login "$client" wrk "${wrk_args[@]}" http://10.77.0.10/ 2>&1)" ;;
    zonelo) parse "$("$lumos" login "$server" wrk "${wrk_args[@]}" http://127.0.0.1/ 2>&1)" ;;
    host) parse "$(inroot wrk "${wrk_args[@]}" "http://127.0.0.1:$port/" 2>&1)" ;;
  esac
}
cases=(zone host zonelo)
declare -A rps lat
for i in $(seq "$runs"); do
  for k in 0 1 2; do
    c=${cases[$(( (i + k) % 3 ))]}
    out=$(measure "$c"); read -r r l <<<"$out"
    rps[$c]+="$r "; lat[$c]+="$l "
  done
done

med() { printf '%s\n' $1 | median; }
spread() { printf '%s\n' $1 | sort -n | sed -n '1p;$p' | paste -sd- | sed 's/-/–/'; }
pairedratio() { paste <(printf '%s\n' $1) <(printf '%s\n' $2) | awk '{printf "%.4f\n", $1/$2}' | median | xargs printf '%.2f'; }
r2() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
z=$(med "${rps[zone]}"); h=$(med "${rps[host]}"); zl=$(med "${rps[zonelo]}")
version=$(inroot /usr/sbin/nginx -v 2>&1 | sed 's/^nginx version: //')
wz=$(workers zone "$server"); wh=$(workers host)
echo "| wrk ${wrk_args[*]}, GET / ($version, Debian's default site; $runs rounds, order rotated) | requests/s median (min–max) | mean latency, median of rounds | ratio of medians to the host's loopback | median per-round ratio |"
echo "|---|---|---|---|---|"
echo "| zone to zone over the etherstub (wrk in the client zone, nginx under systemd in the server zone) | $z ($(spread "${rps[zone]}")) | $(med "${lat[zone]}") ms | $(r2 "$z" "$h") | $(pairedratio "${rps[zone]}" "${rps[host]}") |"
echo "| the same nginx on the host's loopback (chroot into a copy of the zone's root; wrk from it) | $h ($(spread "${rps[host]}")) | $(med "${lat[host]}") ms | | |"
echo "| inside the server zone, its own loopback (wrk and nginx in the zone) | $zl ($(spread "${rps[zonelo]}")) | $(med "${lat[zonelo]}") ms | $(r2 "$zl" "$h") | $(pairedratio "${rps[zonelo]}" "${rps[host]}") |"
echo
echo "nginx workers: $wz in the zone, $wh on the host (worker_processes auto); client and server share the machine's $(nproc) cores in every case (they compete), load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
