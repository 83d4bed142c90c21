import LumosCore

/// Checks a tenant's nics[] before anything is changed; every error is one line naming the
/// NIC and property, what is wrong and what to do (docs/architecture.md "Errors").
public enum NicValidation {
    static let interfaceLimit = 100
    /// vmadm(8) nics.*.mtu: 576 to 9000 on etherstubs and overlays.
    static let maxMTU = 9000

    /// Validates one NIC; `index` is its position in nics[] for the message.
    public static func validate(_ nic: NicSpec, index: Int) throws {
        let at = "nics[\(index)]"
        try validateValues(nic, at: at)
        if nic.usesDHCP && nic.ipv4Addresses.isEmpty && nic.allowedNetworks.filter(\.isIPv4).isEmpty && nic.allowIPSpoofing != true {
            throw LumosError.invalid("\(at).ips: dhcp without a static IPv4 address leaves anti-spoofing nothing to allow; add the address to ips (the built-in DHCP server hands it out), add the outside DHCP range to allowed_ips, or set allow_ip_spoofing")
        }
    }

    /// The values of one NIC (`at` names it in messages: nics[0], add_nics[1]): the one place
    /// their ranges and forms are checked, for vmadm's validation and for the network's.
    public static func validateValues(_ nic: NicSpec, at: String) throws {
        if nic.nicTag.isEmpty { throw LumosError.invalid("\(at).nic_tag: missing; name the switch (see `dladm show-etherstub`)") }
        if !SwitchName.isValid(nic.nicTag) {
            throw LumosError.invalid("\(at).nic_tag: \(nic.nicTag) is not a valid tag (1-15 characters a-z, 0-9, _ . -)")
        }
        if let i = nic.interface {
            guard i.hasPrefix("net"), let n = Int(i.dropFirst(3)), n >= 0, n < interfaceLimit, String(n) == String(i.dropFirst(3)) else {
                throw LumosError.invalid("\(at).interface: \(i) is not netN (N 0-\(interfaceLimit - 1))")
            }
        }
        if let mac = nic.mac, mac.isMulticast || mac.isZero {
            throw LumosError.invalid("\(at).mac: \(mac) is a multicast or zero address; use a unicast MAC or leave it out to generate one")
        }
        for ip in nic.ips where ip != "dhcp" && ip != "addrconf" {
            guard let net = IPNetwork(ip, bareIsHost: false) else {
                throw LumosError.invalid("\(at).ips: \(ip) is not an address with prefix, dhcp or addrconf (use 10.0.0.5/24)")
            }
            if net.address == net.network && net.prefix < (net.isIPv4 ? 31 : 127) {
                throw LumosError.invalid("\(at).ips: \(ip) is the network address of its subnet; use a host address")
            }
        }
        for gw in nic.gateways {
            guard let g = IPAddress(gw) else { throw LumosError.invalid("\(at).gateways: \(gw) is not an IP address") }
            if !nic.addresses.contains(where: { $0.contains(g) }) && !nic.usesDHCP && !(nic.usesAddrconf && !g.isIPv4) {
                throw LumosError.invalid("\(at).gateways: \(gw) is outside every subnet in ips; add a matching address or fix the gateway")
            }
        }
        for a in nic.allowedIPs where IPNetwork(a) == nil {
            throw LumosError.invalid("\(at).allowed_ips: \(a) is not an address or CIDR range")
        }
        if let mtu = nic.mtu, !(576...maxMTU).contains(mtu) {
            throw LumosError.invalid("\(at).mtu: \(mtu) is out of range (576-\(maxMTU))")
        }
        if let v = nic.vlanID, !(0...4094).contains(v) {
            throw LumosError.invalid("\(at).vlan_id: \(v) is out of range (0-4094)")
        }
        for p in nic.blockedOutgoingPorts where !(1...65535).contains(p) {
            throw LumosError.invalid("\(at).blocked_outgoing_ports: \(p) is not a port (1-65535)")
        }
        for (key, v) in [("lumos_rx_maxbw_mbps", nic.rxMaxbwMbps), ("lumos_tx_maxbw_mbps", nic.txMaxbwMbps)] {
            if let v, !(v > 0 && v <= 1_000_000) {
                throw LumosError.invalid("\(at).\(key): \(v) is not a rate in Mbit/s (more than 0, at most 1000000)")
            }
        }
    }

    /// Validates a whole nics[] list: each NIC, then what must hold across them.
    public static func validate(_ nics: [NicSpec]) throws {
        for (i, n) in nics.enumerated() { try validate(n, index: i) }
        try checkAcross(nics)
    }

    /// The rules between a VM's NICs, in one place for vmadm's validation and the network's:
    /// at most one primary (vmadm(8) nics.*.primary), distinct interfaces, MACs and addresses.
    public static func checkAcross(_ nics: [NicSpec]) throws {
        let primaries = nics.indices.filter { nics[$0].isPrimary }
        if primaries.count > 1 {
            throw LumosError.invalid("nics[\(primaries[1])].primary: nics[\(primaries[0])] is already primary; only one NIC may be primary")
        }
        var interfaces: [String: Int] = [:]
        var macs: [MACAddress: Int] = [:]
        for (i, n) in nics.enumerated() {
            if let name = n.interface {
                if let j = interfaces[name] { throw LumosError.invalid("nics[\(i)].interface: \(name) is already used by nics[\(j)]") }
                interfaces[name] = i
            }
            if let m = n.mac {
                if let j = macs[m] { throw LumosError.invalid("nics[\(i)].mac: \(m) is already used by nics[\(j)]") }
                macs[m] = i
            }
        }
        var addresses: [IPAddress: Int] = [:]
        for (i, n) in nics.enumerated() {
            for a in n.addresses {
                if let j = addresses[a.address], j != i { throw LumosError.invalid("nics[\(i)].ips: address \(a.address) is already on nics[\(j)]; use it once") }
                addresses[a.address] = i
            }
        }
    }
}
