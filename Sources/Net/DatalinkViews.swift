import LumosCore

/// A row of `dladm show-link`.
public struct LinkView: Sendable, Equatable, Codable {
    public var link: String
    public var linkClass: String
    public var mtu: Int
    public var state: String
    public var bridge: String?
    public var over: String?

    enum CodingKeys: String, CodingKey {
        case link, mtu, state, bridge, over
        case linkClass = "class"
    }

    public var columns: [String: String] {
        ["link": link, "class": linkClass, "mtu": String(mtu), "state": state, "bridge": bridge ?? "--", "over": over ?? "--"]
    }
    public static let fields = ["link", "class", "mtu", "state", "bridge", "over"]
}

/// A row of `dladm show-vnic`: a tenant NIC or a hand-made VNIC, with the kernel's counters
/// seen from the VNIC's owner (ipackets/rbytes: what the tenant received).
public struct VNICView: Sendable, Equatable, Codable {
    public var link: String
    public var over: String
    public var macAddress: String
    public var macAddressType: String
    public var vid: Int
    public var zone: String?
    public var interface: String?
    public var ips: [String]
    public var state: String
    public var ipackets: UInt64
    public var rbytes: UInt64
    public var opackets: UInt64
    public var obytes: UInt64

    enum CodingKeys: String, CodingKey {
        case link, over, vid, zone, interface, ips, state, ipackets, rbytes, opackets, obytes
        case macAddress = "macaddress"
        case macAddressType = "macaddrtype"
    }

    public var columns: [String: String] {
        ["link": link, "over": over, "macaddress": macAddress, "macaddrtype": macAddressType, "vid": String(vid),
         "zone": zone ?? "--", "interface": interface ?? "--", "ips": ips.isEmpty ? "--" : ips.joined(separator: ","),
         "state": state, "ipackets": String(ipackets), "rbytes": String(rbytes), "opackets": String(opackets), "obytes": String(obytes)]
    }
    public static let fields = ["link", "over", "macaddress", "macaddrtype", "vid", "zone", "interface", "ips", "state", "ipackets", "rbytes", "opackets", "obytes"]
}

/// A row of `dladm show-etherstub` (Lumos shows every switch, with its uplink when it has one).
public struct SwitchView: Sendable, Equatable, Codable {
    public var link: String
    public var uplink: String?
    public var state: String
    public var ports: Int
    public var hostAddresses: [String]
    public var dhcpd: Int32?
    public var gateway: String?
    public var nat: String?

    enum CodingKeys: String, CodingKey {
        case link, uplink, state, ports, dhcpd, gateway, nat
        case hostAddresses = "host_addresses"
    }

    public var columns: [String: String] {
        ["link": link, "uplink": uplink ?? "--", "state": state, "ports": String(ports),
         "host_addresses": hostAddresses.isEmpty ? "--" : hostAddresses.joined(separator: ","), "dhcpd": dhcpd.map { String($0) } ?? "--",
         "gateway": gateway ?? "--", "nat": nat ?? "--"]
    }
    public static let fields = ["link", "uplink", "state", "ports", "host_addresses", "dhcpd", "gateway", "nat"]
}

extension NetworkHost {
    public func linkViews() throws -> [LinkView] {
        let links = try tools.links()
        let switches = Dictionary(try store.switches().map { ($0.bridge, $0) }, uniquingKeysWith: { a, _ in a })
        let vnics = Dictionary(try store.vnics().map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let vnicPorts = Set(try store.vnics().map(\.port))
        var out: [LinkView] = []
        for l in links {
            // Lumos's plumbing (ifbs of tenants, the switch side of hand-made VNICs) is not a datalink.
            if vnicPorts.contains(l.name) || (TenantNetwork.isTenantLink(l.name) && l.kind == "ifb") { continue }
            let cls: String
            var over: String? = nil
            if let sw = switches[l.name] {
                cls = sw.isEtherstub ? "etherstub" : "bridge"
                over = sw.uplink
            } else if let v = vnics[l.name] {
                cls = "vnic"; over = v.switchName
            } else if TenantNetwork.isTenantLink(l.name) {
                cls = "vnic"; over = l.master
            } else if l.name == "lo" {
                cls = "loopback"
            } else {
                cls = l.kind.isEmpty ? "phys" : l.kind
            }
            out.append(LinkView(link: l.name, linkClass: cls, mtu: l.mtu, state: l.state, bridge: switches[l.name] == nil ? l.master : nil, over: over))
        }
        return out
    }

    public func vnicViews() throws -> [VNICView] {
        let links = Dictionary(try tools.links().map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var out: [VNICView] = []
        for t in try store.tenants() {
            for n in t.nics {
                let l = links[n.hostLink]
                // The host side's transmit is the tenant's receive.
                out.append(VNICView(link: n.hostLink, over: n.switchName, macAddress: n.mac.description,
                                    macAddressType: n.macGenerated ? "random" : "fixed", vid: n.spec.vlanID ?? 0,
                                    zone: t.uuid, interface: n.interface, ips: n.spec.ips, state: l?.state ?? "missing",
                                    ipackets: l?.txPackets ?? 0, rbytes: l?.txBytes ?? 0, opackets: l?.rxPackets ?? 0, obytes: l?.rxBytes ?? 0))
            }
        }
        let addrs = (try? tools.addresses()) ?? [:]
        for v in try store.vnics() {
            let l = links[v.name]
            out.append(VNICView(link: v.name, over: v.switchName, macAddress: v.mac.description, macAddressType: "fixed", vid: 0,
                                zone: nil, interface: nil, ips: addrs[v.name] ?? [], state: l?.state ?? "missing",
                                ipackets: l?.rxPackets ?? 0, rbytes: l?.rxBytes ?? 0, opackets: l?.txPackets ?? 0, obytes: l?.txBytes ?? 0))
        }
        return out
    }

    public func switchViews() throws -> [SwitchView] {
        let links = try tools.links()
        let dhcp = DHCPService(host: self)
        return try store.switches().map { sw in
            SwitchView(link: sw.name, uplink: sw.uplink,
                       state: links.first { $0.name == sw.bridge }?.state ?? "missing",
                       ports: links.filter { $0.master == sw.bridge && $0.name != sw.uplink }.count,
                       hostAddresses: sw.hostAddresses, dhcpd: dhcp.runningPid(switchName: sw.name),
                       gateway: sw.gateway, nat: sw.nat)
        }
    }
}
