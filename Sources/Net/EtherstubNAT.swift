import LumosCore

/// NAT from an etherstub to an uplink (Incus's `ipv4.nat`, libvirt's default network;
/// docs/net.md, "NAT"): the etherstub's gateway address is the zones' default route, and what
/// they send from the gateway's subnet out of the uplink leaves with the uplink's address.
///
/// ONE nft table, `table ip lumos` (the anti-spoofing table is `bridge lumos`, another family),
/// rebuilt whole from the switch records in one transaction whenever a NAT changes, and
/// removed when no etherstub has NAT. Only Lumos's interfaces are matched:
/// - forward: from a NAT bridge only to its uplink and only from its subnet; into a NAT bridge
///   only replies (conntrack established/related) from its uplink: the outside cannot open a
///   connection to a zone. A bridge's own traffic (bridged frames that br_netfilter sends
///   through this hook, iif = oif = the bridge) passes. An uplink whose forwarding Lumos turned
///   on forwards nothing else (before, it forwarded nothing at all).
/// - postrouting (srcnat): masquerade what leaves the uplink with a source in the subnet.
///
/// Forwarding is per interface (`net.ipv4.conf.IF.forwarding`, checked on the interface a
/// packet arrives on): on for the NAT bridge, and on for the uplink while a NAT uses it; the
/// host-wide `net.ipv4.ip_forward` and every other interface are left as they are.
public enum EtherstubNAT {
    public static let family = "ip"
    public static let table = "lumos"

    /// One etherstub with NAT: its bridge, the uplink and the gateway's subnet.
    public struct Route: Sendable, Equatable {
        public var bridge: String
        public var uplink: String
        public var subnet: IPNetwork

        public init(bridge: String, uplink: String, subnet: IPNetwork) {
            self.bridge = bridge; self.uplink = uplink; self.subnet = subnet
        }

        var subnetText: String { "\(subnet.network)/\(subnet.prefix)" }
    }

    /// The routes of every switch record with NAT.
    public static func routes(_ switches: [VirtualSwitch]) -> [Route] {
        switches.compactMap { sw in
            guard let up = sw.nat, let gw = sw.gatewayNetwork else { return nil }
            return Route(bridge: sw.bridge, uplink: up, subnet: gw)
        }
    }

    static func quoted(_ s: String) -> String { "\"\(s)\"" }

    /// Replaces the table with one for exactly `routes` (none: the table is removed). `guarded`
    /// lists the uplinks whose forwarding Lumos turned on.
    public static func rebuildScript(_ routes: [Route], guarded: [String]) -> String {
        let drop = "table ip lumos {}\ndelete table ip lumos\n"
        if routes.isEmpty { return drop }
        func elements(_ items: [String]) -> String { items.isEmpty ? "" : " elements = { \(items.joined(separator: ", ")) };" }
        let out = routes.map { "\(quoted($0.bridge)) . \(quoted($0.uplink)) . \($0.subnetText)" }
        let replies = routes.map { "\(quoted($0.uplink)) . \(quoted($0.bridge))" }
        let own = Set(routes.map(\.bridge)).sorted().map { "\(quoted($0)) . \(quoted($0))" }
        let stubs = Set(routes.map(\.bridge)).sorted().map(quoted)
        let masq = routes.map { "\(quoted($0.uplink)) . \($0.subnetText)" }
        let uplinks = Set(guarded).sorted().map(quoted)
        return drop + """
        table ip lumos {
        \tset stub_out { type ifname . ifname . ipv4_addr; flags interval;\(elements(out)) }
        \tset stub_reply { type ifname . ifname;\(elements(replies)) }
        \tset stub_own { type ifname . ifname;\(elements(own)) }
        \tset stubs { type ifname;\(elements(stubs)) }
        \tset masq { type ifname . ipv4_addr; flags interval;\(elements(masq)) }
        \tset guarded_uplinks { type ifname;\(elements(uplinks)) }

        \tchain forward {
        \t\ttype filter hook forward priority 0; policy accept;
        \t\tiifname . oifname @stub_own accept
        \t\tiifname . oifname . ip saddr @stub_out accept
        \t\tiifname . oifname @stub_reply ct state established,related accept
        \t\tiifname @stubs drop
        \t\toifname @stubs drop
        \t\tiifname @guarded_uplinks drop
        \t}

        \tchain postrouting {
        \t\ttype nat hook postrouting priority srcnat; policy accept;
        \t\toifname . ip saddr @masq masquerade
        \t}
        }

        """
    }

    static func forwardingKey(_ link: String) -> String { "net.ipv4.conf.\(link).forwarding" }
}

/// An uplink whose IPv4 forwarding Lumos turned on for NAT (it was off): turned off again when
/// the last NAT over it goes. Recorded so a re-apply after a reboot does not forget it.
struct NATUplink: Sendable, Equatable, Codable {
    var name: String
}

extension NetStore {
    func natUplinks() throws -> [NATUplink] { try all(NATUplink.self, "nat-uplinks") }
    func save(_ u: NATUplink) throws { try save(u, "nat-uplinks", u.name) }
    func removeNATUplink(_ name: String) { remove("nat-uplinks", name) }
}

extension NetworkHost {
    /// Reads a per-interface sysctl in the switch namespace (nil when the key is missing).
    func readSysctl(_ key: String) throws -> String? {
        let path = "/proc/sys/" + key.split(separator: ".", omittingEmptySubsequences: false).joined(separator: "/")
        func read() -> String? { (try? FD.readText(path))?.trimmingSpaces() }
        guard let ns = namespace.path else { return read() }
        return try NetTools.withThread(inNamespace: ns) { read() }
    }

    /// Brings forwarding and the NAT table in line with the switch records (lock held by the
    /// caller): forwarding on for NAT bridges and their uplinks (recording the uplinks it had to
    /// turn on), off again on uplinks no NAT uses any more, then the table, in one transaction.
    func applyNAT() throws {
        let switches = try store.switches()
        let routes = EtherstubNAT.routes(switches)
        let uplinks = Set(routes.map(\.uplink))
        var guarded = Set(try store.natUplinks().map(\.name))
        var settings: [(key: String, value: String)] = []
        for up in uplinks.sorted() where try tools.linkExists(up) {
            if !guarded.contains(up), try readSysctl(EtherstubNAT.forwardingKey(up)) == "0" {
                try store.save(NATUplink(name: up))
                guarded.insert(up)
            }
            settings.append((EtherstubNAT.forwardingKey(up), "1"))
        }
        for r in routes where try tools.linkExists(r.bridge) { settings.append((EtherstubNAT.forwardingKey(r.bridge), "1")) }
        // A NAT bridge is plumbed before this runs; the table goes in before forwarding turns on.
        let present = try routes.filter { try tools.linkExists($0.bridge) && tools.linkExists($0.uplink) }
        try tools.nft(EtherstubNAT.rebuildScript(present, guarded: guarded.filter { uplinks.contains($0) }.sorted()))
        try tools.writeSysctls(settings)
        for up in guarded.subtracting(uplinks).sorted() {
            if try tools.linkExists(up) { try tools.writeSysctls([(EtherstubNAT.forwardingKey(up), "0")]) }
            store.removeNATUplink(up)
        }
    }

    /// Checks a gateway and a NAT uplink for switch `sw` (one-line errors; nothing changes).
    func validateNAT(_ sw: VirtualSwitch, others: [VirtualSwitch]) throws {
        if let gw = sw.gateway {
            guard let net = IPNetwork(gw, bareIsHost: false), net.isIPv4 else {
                throw LumosError.invalid("gateway=\(gw): not an IPv4 address with prefix (use 10.0.0.1/24)")
            }
            guard (8...30).contains(net.prefix) else { throw LumosError.invalid("gateway=\(gw): prefix must be 8 to 30") }
            if net.address == net.network || net.address == net.last {
                throw LumosError.invalid("gateway=\(gw): is the subnet's network or broadcast address; use a host address such as \(IPAddress(ipv4: net.network.uint32 + 1))/\(net.prefix)")
            }
            if sw.hostAddresses.contains(where: { IPNetwork($0)?.address == net.address }) {
                throw LumosError.exists("gateway=\(gw): \(sw.name) already has this host address; remove it with `lumos net delete-addr` first")
            }
            for o in others {
                guard let og = o.gatewayNetwork else { continue }
                if og.contains(net.address) || net.contains(og.address) {
                    throw LumosError.exists("gateway=\(gw): overlaps the gateway subnet \(og) of \(o.name)")
                }
            }
        }
        guard let up = sw.nat else { return }
        guard sw.isEtherstub else { throw LumosError.invalid("nat=\(up): \(sw.name) has uplink \(sw.uplink ?? ""); NAT is for etherstubs") }
        guard sw.gateway != nil else { throw LumosError.invalid("nat=\(up): \(sw.name) needs a gateway first (-p gateway=10.0.0.1/24)") }
        if up == sw.bridge { throw LumosError.invalid("nat=\(up): an etherstub cannot be its own uplink") }
        if TenantNetwork.isTenantLink(up) { throw LumosError.invalid("nat=\(up): a tenant's link cannot be an uplink") }
        guard let link = try tools.link(up) else { throw LumosError.notFound("nat=\(up): no such link; see `dladm show-link`") }
        if let m = link.master { throw LumosError.invalid("nat=\(up): \(up) is a port of \(m); use \(m) as the uplink") }
        if let o = others.first(where: { $0.bridge == up && $0.nat != nil }) {
            throw LumosError.invalid("nat=\(up): \(o.name) is itself an etherstub with NAT")
        }
    }

    /// `dladm set-etherstub -p gateway=CIDR|none -p nat=UPLINK|none NAME`: nil leaves a
    /// property as it is, "" (or none) removes it. Validated before anything changes; on a
    /// failure midway the old configuration is applied again.
    public func setEtherstub(_ name: String, gateway: String?, nat: String?) throws {
        let lock = try store.lock()
        defer { withExtendedLifetime(lock) {} }
        try namespace.check()
        guard let old = try store.switchConfig(name) else { throw LumosError.notFound("etherstub \(name) does not exist; see `dladm show-etherstub`") }
        var sw = old
        if let gateway { sw.gateway = gateway.isEmpty || gateway == "none" ? nil : gateway }
        if let nat { sw.nat = nat.isEmpty || nat == "none" ? nil : nat }
        if let g = sw.gateway, let n = IPNetwork(g, bareIsHost: false) { sw.gateway = n.description }
        if sw.gateway == nil, sw.nat != nil, gateway != nil {
            throw LumosError.invalid("gateway=none: \(name) has nat=\(sw.nat!); remove it in the same command (-p nat=none)")
        }
        try validateNAT(sw, others: try store.switches().filter { $0.name != name })
        if sw == old { return }
        _ = try ensureSwitch(name)
        do {
            try store.save(sw)
            try replumbGateway(from: old, to: sw)
            try applyNAT()
        } catch {
            try? store.save(old)
            try? replumbGateway(from: sw, to: old)
            try? applyNAT()
            throw error
        }
    }

    /// Moves the bridge's gateway address and forwarding from one configuration to the next.
    func replumbGateway(from old: VirtualSwitch, to new: VirtualSwitch) throws {
        var lines: [String] = []
        if let g = old.gateway, g != new.gateway { lines.append("addr del \(g) dev \(new.bridge)") }
        if let g = new.gateway, g != old.gateway { lines.append("addr replace \(g) dev \(new.bridge)") }
        try tools.ipBatch(lines)
        if old.nat != nil && new.nat == nil, try tools.linkExists(new.bridge) {
            try tools.writeSysctls([(EtherstubNAT.forwardingKey(new.bridge), "0")])
        }
    }
}
