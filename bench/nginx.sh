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
#  - Also, to split what the path between the zones costs from what a zone costs: wrk inside the
#    server zone against its own 127.0.0.1:80 (the zone without the etherstub), and the copy's
#    nginx and wrk in namespaces made here, over a bare veth pair and over a plain bridge with
#    two veths and no table (an etherstub without Lumos's anti-spoofing).
#  - The peers run in a cgroup of their own with the zones' CPU weight, and each case reports
#    the CPU time its cgroups used per request (less dependent on other load than requests/s).
# Every case runs the same wrk (-t2 -cCONNS -dSECONDS) against Debian's default index page,
# ROUNDS rounds with the order of the cases rotated each round; client and server share the
# machine's 2 cores in every case (they compete), as does other work on the machine.
# Usage: sudo bench/nginx.sh [ROUNDS] [SECONDS] [CONNS]   (default 5 rounds of 10 s, 50 connections)
# LUMOS=/path/to/lumos skips the release build (e.g. .build/debug/lumos); NGINX_ACCESS_LOG=off
# turns nginx's access log off in every case; NGINX_CASES="zone bridge" runs only those cases
# (of zone host zonelo veth bridge; e.g. to profile one).
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
for c in ${NGINX_CASES:-}; do
  [[ " zone host zonelo veth bridge " == *" $c "* ]] || { echo "bench/nginx.sh: NGINX_CASES: unknown case '$c' (zone host zonelo veth bridge)" >&2; exit 2; }
done
cache=${NGINX_IMAGE_CACHE:-/var/tmp/lumos-bench-nginx-image}
id="lumos-b-ngx-$$"
work=$(mktemp -d /tmp/lumos-bench-nginx.XXXXXX)
chmod 755 "$work"
export LUMOS_ROOT=$work/state LUMOS_NET_NETNS=$id-h
vmadm() { "$lumos" vm "$@"; }
nginx_started=()  # pid files of the nginx this script starts on the host
cgroups_made=()
cleanup() {
  for f in "${nginx_started[@]}"; do
    p=$(cat "$f" 2>/dev/null) || continue
    kill "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  # Whatever else still runs in the peers' cgroups is ours too (a wrk of an interrupted run).
  for d in "${cgroups_made[@]}"; do
    for p in $(cat "$d/cgroup.procs" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  done
  wait 2>/dev/null || true
  for d in "${cgroups_made[@]}"; do
    for _ in $(seq 50); do rmdir "$d" 2>/dev/null && break; sleep 0.1; done
  done
  for u in $(vmadm list -H -o uuid 2>/dev/null); do vmadm delete "$u" >/dev/null 2>&1 || true; done
  "$lumos" net delete-etherstub stub0 >/dev/null 2>&1 || true
  "$lumos" pool destroy -f zones >/dev/null 2>&1 || true
  for n in h vs vc bs bc bb; do ip netns del "$id-$n" 2>/dev/null || true; done
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

# The peers' copy of the server's root, before systemd's first boot changes anything in it.
zroot=$(vmadm get "$server" | sed -n 's/.*"zonepath": "\(.*\)".*/\1/p')/root
hroot=$work/hostroot
# NGINX_ACCESS_LOG=off turns Debian's access log off in both (each request appends a line to
# /var/log/nginx/access.log: in the zone a file on its dataset, in the copy one on /tmp).
if [[ ${NGINX_ACCESS_LOG:-on} == off ]]; then
  sed -i 's#^\(\s*\)access_log /var/log/nginx/access.log;#\1access_log off;#' "$zroot/etc/nginx/nginx.conf"
  grep -q 'access_log off;' "$zroot/etc/nginx/nginx.conf" || fail "no access_log line in the image's nginx.conf"
fi
cp -a "$zroot" "$hroot"
# On the host's loopback nginx listens on 127.0.0.1 and a free port, never on the host's other
# addresses: a copy of Debian's default site with only its listen lines changed is mounted over
# it (sites-enabled/default is a symlink to /etc/nginx/sites-available/default in the root).
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -e "s/^\(\s*\)listen 80 default_server;/\1listen 127.0.0.1:$port default_server;/" -e '/listen \[::\]:80/d' \
  "$hroot/etc/nginx/sites-available/default" > "$work/site-loopback"
grep -q "listen 127.0.0.1:$port" "$work/site-loopback" || fail "the image's default site has no 'listen 80 default_server'"
# chroot into the copy, in a mount namespace of its own (gone with its processes), in the host's
# network namespace or NETNS: the host's /dev, a /proc, RUN as /run (each nginx its own, so its
# pid file is on the host: $work/NAME.run/nginx.pid), SITE (unless -) over the default site.
inroot() { # NETNS|- RUN SITE|- COMMAND...
  local ns=(); [[ $1 != - ]] && ns=(ip netns exec "$1"); shift
  mkdir -p "$1"
  "${ns[@]}" unshare --mount --propagation private sh -c 'mount --bind /dev "$0/dev" && mount -t proc proc "$0/proc" && mount --bind "$1" "$0/run" &&
    { [ "$2" = - ] || mount --bind "$2" "$0/etc/nginx/sites-available/default"; } && shift 2 && exec chroot "$0" "$@"' "$hroot" "$@"
}
# The peers' processes (their nginx and wrk) run in a cgroup of their own, as the zones' do
# (ROOT/lumos/UUID): on a busy machine a cgroup competes for CPU as one weight beside the
# host's other processes, so peers left in the root cgroup would get far more of it than the
# zones. In the cgroup2 hierarchy (its cpu.stat counts CPU time on any host) and, where the cpu
# controller is a v1 hierarchy (this hybrid host), there too, with the weight of `lumos`.
cg2=$(findmnt -n -t cgroup2 -o TARGET | head -1)
cgv1=$(findmnt -n -t cgroup -o TARGET,OPTIONS | awk '$2 ~ /(^|,)cpu(,|$)/ {print $1; exit}')
peercg=("$cg2/$id")
[[ -n $cgv1 && -d $cgv1/lumos ]] && peercg+=("$cgv1/$id")
for d in "${peercg[@]}"; do mkdir "$d"; cgroups_made+=("$d"); done
[[ ${#peercg[@]} == 2 ]] && cat "$cgv1/lumos/cpu.shares" > "$cgv1/$id/cpu.shares"
# Runs COMMAND in the peers' cgroups.
inpeer() { for d in "${peercg[@]}"; do echo "$BASHPID" > "$d/cgroup.procs"; done; "$@"; }
# CPU time (µs) used so far in the cgroup2 directories given.
cpu_us() { cat "${@/%//cpu.stat}" | awk '$1 == "usage_usec" {t += $2} END {print t + 0}'; }
# nginx -g 'daemon off;' in the background (NAME: loopback, veth); its master's pid once it runs.
start_nginx() { # NAME NETNS|- SITE|-
  inpeer inroot "$2" "$work/$1.run" "$3" /usr/sbin/nginx -g 'daemon off;' </dev/null >"$work/$1.log" 2>&1 &
  nginx_started+=("$work/$1.run/nginx.pid")
}
nginx_pid() { cat "$work/$1.run/nginx.pid" 2>/dev/null; }
start_nginx loopback - "$work/site-loopback"
# Two peers for the path between the zones, each between namespaces made here with the same
# nginx (Debian's site unchanged, port 80) in one and wrk in the other: a bare veth pair (the
# kernel's cheapest path), and a plain Linux bridge with two veths and no table, br_netfilter off
# (what a Lumos etherstub is, without Lumos: its anti-spoofing table, docs/net.md).
ip netns add "$id-vs"; ip netns add "$id-vc"
ip -n "$id-vs" link add eth0 type veth peer name eth0 netns "$id-vc"
ip netns add "$id-bs"; ip netns add "$id-bc"; ip netns add "$id-bb"
ip netns exec "$id-bb" sysctl -q -e -w net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0 net.bridge.bridge-nf-call-arptables=0
ip -n "$id-bb" link add br0 type bridge; ip -n "$id-bb" link set br0 up
for x in bs bc; do ip -n "$id-bb" link add "$x" type veth peer name eth0 netns "$id-$x"; ip -n "$id-bb" link set "$x" master br0 up; done
for x in "vs 78 10" "vc 78 11" "bs 79 10" "bc 79 11"; do
  set -- $x
  ip -n "$id-$1" addr add "10.$2.0.$3/24" dev eth0; ip -n "$id-$1" link set eth0 up; ip -n "$id-$1" link set lo up
done
start_nginx veth "$id-vs" -
start_nginx bridge "$id-bs" -

vmadm start "$server" 2>/dev/null
# systemd starts nginx: wait until it answers on the etherstub (from the switch's host side).
answers() { ip netns exec "$id-h" curl -sf -o /dev/null --max-time 2 http://10.77.0.10/; }
for _ in $(seq 300); do answers && break; sleep 0.5; done
answers || fail "nginx in the server zone does not answer: $("$lumos" login "$server" systemctl status nginx 2>&1 | tail -5)"
for _ in $(seq 100); do curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/" && break; sleep 0.1; done
curl -sf -o /dev/null "http://127.0.0.1:$port/" || fail "nginx on the host's loopback does not answer: $(cat "$work/loopback.log")"
for x in "vc 78 veth" "bc 79 bridge"; do
  set -- $x
  for _ in $(seq 100); do ip netns exec "$id-$1" curl -sf -o /dev/null --max-time 2 "http://10.$2.0.10/" && break; sleep 0.1; done
  ip netns exec "$id-$1" curl -sf -o /dev/null "http://10.$2.0.10/" || fail "nginx on the $3 peer does not answer: $(cat "$work/$3.log")"
done
# The client: systemd's own nginx there is stopped (only wrk runs in it); it reaches the server.
"$lumos" login "$client" /bin/sh -c 'for i in $(seq 600); do test -S /run/systemd/private && break; sleep 0.1; done; systemctl stop nginx' >/dev/null 2>&1 || true
page=$("$lumos" login "$client" /bin/bash -c 'exec 3<>/dev/tcp/10.77.0.10/80 && printf "GET / HTTP/1.0\r\n\r\n" >&3 && cat <&3' 2>/dev/null || true)
[[ $page == *"Welcome to nginx!"* ]] || fail "the client zone does not reach nginx in the server zone: ${page:0:200}"
[[ $(curl -s "http://127.0.0.1:$port/") == "$(ip netns exec "$id-h" curl -s http://10.77.0.10/)" ]] || fail "the two nginx serve different pages"

# nginx worker processes: in a zone (its /proc), or the children of a master started here.
workers() { # zone UUID | pid PID
  if [[ $1 == pid ]]; then ps --ppid "$2" -o args= | grep -c '^nginx: worker' || true
  else "$lumos" login "$2" /bin/bash -c 'for p in /proc/[0-9]*; do cat $p/cmdline 2>/dev/null | tr "\0" " "; echo; done' 2>/dev/null | grep -c '^nginx: worker' || true; fi
}
wrk_args=(-t2 "-c$conns" "-d${secs}s")
# One wrk run of CASE: "requests/s mean-latency-ms CPU-µs-per-request"; non-2xx answers or socket
# errors fail the run. The CPU time is all the case's cgroups used during the run (both zones'
# for the zone cases, whatever else they run included; the peers' cgroup for the others) over
# the requests wrk completed.
measure() { # CASE (the port in each URL: minbase has no /etc/services for wrk to look "http" up in)
  local out t0 cgs=("$cg2/lumos/$server" "$cg2/lumos/$client")
  [[ $1 == host || $1 == veth || $1 == bridge ]] && cgs=("$cg2/$id")
  t0=$(cpu_us "${cgs[@]}")
  case $1 in
    zone) out=$("$lumos" login "$client" wrk "${wrk_args[@]}" http://10.77.0.10:80/ 2>&1) ;;
    zonelo) out=$("$lumos" login "$server" wrk "${wrk_args[@]}" http://127.0.0.1:80/ 2>&1) ;;
    host) out=$(inpeer inroot - "$work/wrk.run" - wrk "${wrk_args[@]}" "http://127.0.0.1:$port/" 2>&1) ;;
    veth) out=$(inpeer inroot "$id-vc" "$work/wrk.run" - wrk "${wrk_args[@]}" http://10.78.0.10:80/ 2>&1) ;;
    bridge) out=$(inpeer inroot "$id-bc" "$work/wrk.run" - wrk "${wrk_args[@]}" http://10.79.0.10:80/ 2>&1) ;;
  esac
  local used=$(( $(cpu_us "${cgs[@]}") - t0 ))
  grep -q 'Requests/sec' <<<"$out" || fail "wrk ($1): $out"
  if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then fail "wrk ($1) saw errors: $out"; fi
  # wrk prints the mean latency with a unit (us, ms, s): in ms.
  awk -v used="$used" '/^Requests\/sec/ {r = $2} / requests in / {n = $1}
    /^ *Latency/ && !l { v = $2 + 0; u = $2; sub(/^[0-9.]+/, "", u); l = (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v }
    END { printf "%s %.2f %.1f\n", r, l, used / n }' <<<"$out"
}
cases=(${NGINX_CASES:-zone host zonelo veth bridge})
declare -A rps lat cpu
for i in $(seq "$runs"); do
  for k in "${!cases[@]}"; do
    c=${cases[$(( (i + k) % ${#cases[@]} ))]}
    out=$(measure "$c"); read -r r l u <<<"$out"
    rps[$c]+="$r "; lat[$c]+="$l "; cpu[$c]+="$u "
  done
done

med() { printf '%s\n' $1 | median; }
spread() { printf '%s\n' $1 | sort -n | sed -n '1p;$p' | paste -sd- | sed 's/-/–/'; }
# median over rounds of A[i]/B[i] (cases next to each other in time share the machine's load)
pairedratio() { paste <(printf '%s\n' $1) <(printf '%s\n' $2) | awk '{printf "%.4f\n", $1/$2}' | median | xargs printf '%.2f'; }
r2() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
h=$(med "${rps[host]:-}")
version=$(inroot - "$work/wrk.run" - /usr/sbin/nginx -v 2>&1 | sed 's/^nginx version: //')
echo "| wrk ${wrk_args[*]} GET / ($version, Debian's default site$([[ ${NGINX_ACCESS_LOG:-on} == off ]] && echo ", access log off"); $runs rounds, order rotated) | requests/s, median (min–max) | mean latency (ms, median) | ratio of medians to the host's loopback | median per-round ratio | CPU µs per request (median) |"
echo "|---|---|---|---|---|---|"
row() { # CASE LABEL
  [[ -n ${rps[$1]:-} ]] || return 0
  local m r="" p=""; m=$(med "${rps[$1]}")
  [[ $1 != host && -n ${rps[host]:-} ]] && { r=$(r2 "$m" "$h"); p=$(pairedratio "${rps[$1]}" "${rps[host]}"); }
  echo "| $2 | $m ($(spread "${rps[$1]}")) | $(med "${lat[$1]}") | $r | $p | $(med "${cpu[$1]}") |"
}
row zone "zone to zone over a Lumos etherstub (wrk in the client zone, nginx under systemd in the server zone)"
row host "the same nginx on the host's loopback (chroot into a copy of the server zone's root, wrk from it)"
row zonelo "inside the server zone, its own loopback (wrk in the zone)"
row veth "the same nginx over a bare veth pair between two namespaces (no Lumos)"
row bridge "the same nginx over a plain bridge and two veths, no table (an etherstub without Lumos)"
echo
for x in "veth:the bare veth pair" "bridge:the plain bridge"; do
  c=${x%%:*}
  [[ -n ${rps[zone]:-} && -n ${rps[$c]:-} ]] || continue
  echo "Zone to zone / ${x#*:}: $(r2 "$(med "${rps[zone]}")" "$(med "${rps[$c]}")") requests/s (median per-round ratio $(pairedratio "${rps[zone]}" "${rps[$c]}")), $(r2 "$(med "${cpu[zone]}")" "$(med "${cpu[$c]}")") CPU per request."
done
echo "nginx workers (worker_processes auto): $(workers zone "$server") in the server zone, $(workers pid "$(nginx_pid loopback)") on the host's loopback, $(workers pid "$(nginx_pid veth)") on the veth pair, $(workers pid "$(nginx_pid bridge)") behind the plain bridge; client and server share the machine's $(nproc) cores in every case (they compete); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
