#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds, and provisions a zone
# from a locally built busybox image and a hardware VM (brand kvm, the small guest; TCG when the
# host has no hardware KVM) with NICs on the same etherstub, then pings both from the host side
# of the switch and prints the time from each `vmadm create` to its first reply.
#
# The switch's host side (the global zone's admin network) lives in a network namespace,
# `lumos-demo`, so the demo never touches the machine's real interfaces; on a real host leave
# LUMOS_NET_NETNS unset and the switch lives in the host's own namespace.
set -euo pipefail
cd "$(dirname "$(realpath "$0")")/.."
source scripts/install-deps.sh
swift build -c release --product lumos -Xswiftc -static-executable 2>&1 | tail -1
swift build -c release --product lumos-init 2>&1 | tail -1
install -m 0755 .build/release/lumos /usr/local/bin/lumos
install -D -m 0755 .build/release/lumos-init /usr/local/lib/lumos/lumos-init
for alias in vmadm imgadm zlogin dladm dtrace zfs zpool; do ln -sf lumos "/usr/local/bin/$alias"; done
# vmadmd (docs/daemon.md): its unit and API document are installed, not enabled or started.
install -D -m 0644 scripts/systemd/lumos-vmadmd.service /etc/systemd/system/lumos-vmadmd.service
install -D -m 0644 docs/api/openapi.yaml /usr/local/share/lumos/openapi.yaml

export LUMOS_ROOT=${LUMOS_ROOT:-/var/lib/lumos}
export LUMOS_NET_NETNS=${LUMOS_NET_NETNS:-lumos-demo}
subnet=10.99.0

ip netns list | grep -qw "$LUMOS_NET_NETNS" || ip netns add "$LUMOS_NET_NETNS"
zpool list -H -o name | grep -qx zones || zpool create zones
image=$(imgadm list -H -o uuid,name | awk '$2 == "busybox" {print $1; exit}')
[[ -n $image ]] || { imgadm build busybox >/dev/null; image=$(imgadm list -H -o uuid,name | awk '$2 == "busybox" {print $1; exit}'); }
dladm show-etherstub -p -o link 2>/dev/null | grep -qx demo0 || dladm create-etherstub demo0
lumos net show-addr 2>/dev/null | grep -q "$subnet.1/" || lumos net create-addr -a "$subnet.1/24" demo0

# The first free address on the demo network.
used=$(vmadm list -H -o nics.0.ips 2>/dev/null || true)
for n in $(seq 10 250); do grep -q "$subnet.$n/" <<<"$used" || { ip=$subnet.$n; break; }; done

manifest=$(cat <<JSON
{
  "brand": "lx",
  "alias": "web-$n",
  "hostname": "web-$n",
  "image_uuid": "$image",
  "max_physical_memory": 128,
  "quota": 1,
  "nics": [{"nic_tag": "demo0", "ips": ["$ip/24"], "gateways": ["$subnet.1"], "primary": true}]
}
JSON
)
echo "$manifest"
start=$(date +%s%N)
echo "$manifest" | vmadm create
until ip netns exec "$LUMOS_NET_NETNS" ping -c 1 -W 0.05 "$ip" >/dev/null 2>&1; do :; done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo
echo "vmadm create -> first ping reply from $ip: ${ms} ms"
echo
vmadm list
echo
dladm show-vnic
echo
ip netns exec "$LUMOS_NET_NETNS" ping -c 3 "$ip"
uuid=$(vmadm lookup -1 alias="web-$n")
echo
echo "inside the zone: zlogin $uuid ps"
zlogin "$uuid" ps

# A hardware VM on the same switch: the guest takes its address from the switch's DHCP responder.
vmimage=$(imgadm list -H -o uuid,name | awk '$2 == "small-guest" {print $1; exit}')
[[ -n $vmimage ]] || { imgadm build small-guest >/dev/null; vmimage=$(imgadm list -H -o uuid,name | awk '$2 == "small-guest" {print $1; exit}'); }
used=$(vmadm list -H -o nics.0.ips 2>/dev/null || true)
for m in $(seq 10 250); do grep -q "$subnet.$m/" <<<"$used" || { vmip=$subnet.$m; break; }; done
vmmanifest=$(cat <<JSON
{
  "brand": "kvm",
  "alias": "vm-$m",
  "ram": 128,
  "disks": [{"boot": true, "image_uuid": "$vmimage", "model": "virtio"}, {"size": 64}],
  "nics": [{"nic_tag": "demo0", "ips": ["$vmip/24"], "gateways": ["$subnet.1"], "model": "virtio", "primary": true}]
}
JSON
)
echo
echo "$vmmanifest"
start=$(date +%s%N)
echo "$vmmanifest" | vmadm create
until ip netns exec "$LUMOS_NET_NETNS" ping -c 1 -W 0.2 "$vmip" >/dev/null 2>&1; do
  (( ($(date +%s%N) - start) / 1000000000 < 120 )) || { echo "the VM did not answer in 120 s" >&2; exit 1; }
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
vm=$(vmadm lookup -1 alias="vm-$m")
echo
echo "vmadm create -> first ping reply from the VM at $vmip: ${ms} ms ($(vmadm get "$vm" | grep -o '"lumos_accelerator": "[a-z]*' | cut -d'"' -f4))"
echo
vmadm list
echo
echo "both tenants on demo0 answer:"
ip netns exec "$LUMOS_NET_NETNS" ping -c 2 "$ip"
ip netns exec "$LUMOS_NET_NETNS" ping -c 2 "$vmip"
echo
echo "the VM's serial console: vmadm console $vm (Ctrl-] detaches)"
echo "remove them with: vmadm delete $uuid; vmadm delete $vm"
