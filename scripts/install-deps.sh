#!/usr/bin/env bash
# Installs everything Lumos needs on a fresh Debian 12 machine (run as root), then builds it.
# Swift itself is expected at /opt/swift or on PATH (see README).
set -euo pipefail
cd "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/.."

packages=(
  btrfs-progs libbtrfsutil-dev libseccomp-dev libcap-dev util-linux kmod
  nftables iproute2 iputils-ping iperf3
  busybox-static debootstrap runc crun curl   # curl: SystemdZoneTests asks whether the Debian mirror answers
  lxcfs   # the zones' views of their own limits in /proc and /sys (docs/architecture.md)
  bpftrace systemtap-sdt-dev postgresql postgresql-contrib
  zstd xz-utils bzip2 gzip hyperfine
  qemu-system-x86 qemu-utils lz4   # brand kvm (docs/vm.md): TCG here, KVM on real hosts; lz4 unpacks microvm's kernel
  syslinux syslinux-common mtools dosfstools   # imgadm build small-guest: a disk that boots by itself (docs/vm.md)
  libc6-dev libstdc++-12-dev   # static libraries for the single-executable release build
  zlib1g-dev   # the PNG heatmaps of Cloud Analytics (Sources/CZlib, docs/analytics.md)
  chromium socat   # the Cloud Analytics page tested headless, over a loopback proxy to the socket (Tests/DaemonTests)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
  [[ -x /opt/swift/usr/bin/swift ]] && export PATH=/opt/swift/usr/bin:$PATH
fi
command -v swift >/dev/null 2>&1 || { echo "swift not found: install Swift 6 to /opt/swift" >&2; exit 1; }

# vmadmd's API test (Tests/DaemonTests, docs/daemon.md): schemathesis against docs/api/openapi.yaml.
python3 -c 'import schemathesis' 2>/dev/null || python3 -m pip install -q "schemathesis==4.32.5" >/dev/null
