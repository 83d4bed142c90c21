/// What one switch port (the host side of a tenant NIC) may send, as anti-spoofing sees it.
public struct PortPolicy: Sendable, Equatable {
    public var port: String
    public var mac: MACAddress
    public var ipv4: [IPNetwork]
    public var ipv6: [IPNetwork]
    public var allowMACSpoofing = false
    public var allowIPSpoofing = false
    public var allowDHCPSpoofing = false
    public var allowRestrictedTraffic = false
    public var blockedOutgoingPorts: [Int] = []

    public init(port: String, mac: MACAddress, ipv4: [IPNetwork] = [], ipv6: [IPNetwork] = []) {
        self.port = port
        self.mac = mac
        self.ipv4 = ipv4
        self.ipv6 = ipv6
    }

    /// The policy of a tenant NIC: its own addresses as host routes, allowed_ips as ranges,
    /// its EUI-64 link-local address, and each allow_* flag.
    public init(port: String, mac: MACAddress, spec: NicSpec) {
        self.port = port
        self.mac = mac
        let host = spec.addresses.map { IPNetwork(address: $0.address, prefix: $0.isIPv4 ? 32 : 128) }
        let allowed = spec.allowedNetworks.map { IPNetwork(address: $0.network, prefix: $0.prefix) }
        let all = host + allowed + [IPNetwork(address: mac.linkLocalIPv6, prefix: 128)]
        ipv4 = all.filter(\.isIPv4)
        ipv6 = all.filter { !$0.isIPv4 }
        allowMACSpoofing = spec.allowMACSpoofing ?? false
        allowIPSpoofing = spec.allowIPSpoofing ?? false
        allowDHCPSpoofing = spec.allowDHCPSpoofing ?? false
        allowRestrictedTraffic = spec.allowRestrictedTraffic ?? false
        blockedOutgoingPorts = spec.blockedOutgoingPorts
    }
}

/// The anti-spoofing ruleset: ONE nft table in the bridge family, owned by Lumos, whose chain
/// is fixed and whose per-port facts are set elements. A tenant is added or removed by adding
/// or deleting its elements, so other tenants' traffic is never disturbed (FACTS.md recipe:
/// prerouting priority -200, sets keyed by iifname . ether saddr [. ip saddr]).
///
/// Each allow_* property loosens exactly its own rule:
/// - allow_mac_spoofing: the port's MAC element becomes the full MAC range (addresses still checked).
/// - allow_ip_spoofing: the port's address elements become 0.0.0.0/0 and ::/0 (MAC still checked).
/// - allow_dhcp_spoofing: the port may send from UDP port 67/547 (DHCP server replies).
/// - allow_restricted_traffic: ethertypes other than IPv4, IPv6 and ARP may pass.
public enum Antispoof {
    public static let family = "bridge"
    public static let table = "lumos"

    /// The table with its sets and chains, without elements.
    public static let tableText = """
    table bridge lumos {
    \tset ports { type ifname; }
    \tset mac_ok { type ifname . ether_addr; flags interval; }
    \tset v4_ok { type ifname . ether_addr . ipv4_addr; flags interval; }
    \tset v6_ok { type ifname . ether_addr . ipv6_addr; flags interval; }
    \tset nd_ok { typeof iifname . ether saddr . @th,64,128; flags interval; }
    \tset dhcp_server_ok { type ifname; }
    \tset restricted_ok { type ifname; }
    \tset blocked_ports { type ifname . inet_service; }

    \tchain prerouting {
    \t\ttype filter hook prerouting priority -200; policy accept;
    \t\tiifname @ports jump tenant
    \t}

    \tchain tenant {
    \t\tiifname != @restricted_ok ether type != { ip, ip6, arp } drop
    \t\tiifname . ether saddr != @mac_ok drop
    \t\tudp sport { 67, 547 } iifname != @dhcp_server_ok drop
    \t\tmeta l4proto { tcp, udp } iifname . th dport @blocked_ports drop
    \t\tether type arp jump tenant_arp
    \t\tether type ip jump tenant_ipv4
    \t\tether type ip6 jump tenant_ipv6
    \t}

    \tchain tenant_arp {
    \t\tarp saddr ip 0.0.0.0 iifname . arp saddr ether @mac_ok accept
    \t\tiifname . arp saddr ether . arp saddr ip @v4_ok accept
    \t\tdrop
    \t}

    \tchain tenant_ipv4 {
    \t\tip saddr 0.0.0.0 udp sport 68 udp dport 67 accept
    \t\tiifname . ether saddr . ip saddr @v4_ok accept
    \t\tdrop
    \t}

    \tchain tenant_ipv6 {
    \t\tip6 saddr :: icmpv6 type nd-neighbor-solicit iifname . ether saddr . @th,64,128 @nd_ok accept
    \t\tip6 saddr :: icmpv6 type mld2-listener-report accept
    \t\tiifname . ether saddr . ip6 saddr != @v6_ok drop
    \t\ticmpv6 type nd-neighbor-advert iifname . ether saddr . @th,64,128 != @nd_ok drop
    \t}
    }

    """

    static let anyMAC = "00:00:00:00:00:00-ff:ff:ff:ff:ff:ff"

    /// Set name → elements, in a fixed order, for the given ports.
    public static func elements(_ ports: [PortPolicy]) -> [(set: String, elements: [String])] {
        var sets: [(String, [String])] = [
            ("ports", []), ("mac_ok", []), ("v4_ok", []), ("v6_ok", []), ("nd_ok", []),
            ("dhcp_server_ok", []), ("restricted_ok", []), ("blocked_ports", []),
        ]
        func add(_ i: Int, _ e: String) { sets[i].1.append(e) }
        for p in ports {
            let port = "\"\(p.port)\""
            let mac = p.allowMACSpoofing ? anyMAC : p.mac.description
            add(0, port)
            add(1, "\(port) . \(mac)")
            let v4 = p.allowIPSpoofing ? [IPNetwork(address: IPAddress(ipv4: 0), prefix: 0)] : disjoint(p.ipv4)
            let v6 = p.allowIPSpoofing ? [IPNetwork(address: IPAddress(bytes: [UInt8](repeating: 0, count: 16)), prefix: 0)] : disjoint(p.ipv6)
            for n in v4 { add(2, "\(port) . \(mac) . \(nftText(n))") }
            for n in v6 {
                add(3, "\(port) . \(mac) . \(nftText(n))")
                let raw = n.prefix == 128 ? n.address.hex : "\(n.network.hex)-\(n.last.hex)"
                add(4, "\(port) . \(mac) . \(raw)")
            }
            if p.allowDHCPSpoofing { add(5, port) }
            if p.allowRestrictedTraffic { add(6, port) }
            for b in Set(p.blockedOutgoingPorts).sorted() { add(7, "\(port) . \(b)") }
        }
        return sets.filter { !$0.1.isEmpty }.map { (set: $0.0, elements: $0.1) }
    }

    /// nft writes a host address without /32 or /128.
    static func nftText(_ n: IPNetwork) -> String {
        n.prefix == (n.isIPv4 ? 32 : 128) ? n.address.description : "\(n.network)/\(n.prefix)"
    }

    /// Drops ranges already covered by a wider one: interval sets reject overlapping elements.
    static func disjoint(_ nets: [IPNetwork]) -> [IPNetwork] {
        var out: [IPNetwork] = []
        for n in nets.sorted(by: { $0.prefix < $1.prefix }) {
            if out.contains(where: { $0.prefix <= n.prefix && $0.contains(n.address) }) { continue }
            out.append(IPNetwork(address: n.prefix == (n.isIPv4 ? 32 : 128) ? n.address : n.network, prefix: n.prefix))
        }
        return out
    }

    /// One `add element` (or `delete element`) line per set.
    static func elementLines(_ verb: String, _ ports: [PortPolicy]) -> String {
        elements(ports).map { "\(verb) element bridge lumos \($0.set) { \($0.elements.joined(separator: ", ")) }\n" }.joined()
    }

    /// Adds ports to a table that exists; `add` of an element already present is not an error.
    public static func addScript(_ ports: [PortPolicy]) -> String { elementLines("add", ports) }

    /// Deletes ports; fails as a whole when an element is missing (then rebuild instead).
    public static func deleteScript(_ ports: [PortPolicy]) -> String { elementLines("delete", ports) }

    /// Replaces the table with one that holds exactly `ports`, in one transaction: the
    /// `table {}` line makes the delete valid when the table does not exist yet.
    public static func rebuildScript(_ ports: [PortPolicy]) -> String {
        "table bridge lumos {}\ndelete table bridge lumos\n" + tableText + addScript(ports)
    }
}
