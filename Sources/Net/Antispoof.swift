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
/// or deleting its elements, so other tenants' traffic is never disturbed (docs/architecture.md recipe:
/// prerouting priority -200, sets keyed by iifname . ether saddr [. ip saddr]).
///
/// Each allow_* property loosens exactly its own rule:
/// - allow_mac_spoofing: the port's MAC element becomes the full MAC range (addresses still checked).
/// - allow_ip_spoofing: the port's address elements become 0.0.0.0/0 and ::/0 (MAC still checked).
/// - allow_dhcp_spoofing: the port may send DHCP server messages: from UDP port 67/547, or to
///   a client's port 68/546 from any port (docs/security.md: a reply from port 6767 is still one).
/// - allow_restricted_traffic: ethertypes other than IPv4, IPv6 and ARP may pass.
///
/// Never allowed from a tenant, whatever its flags: IPv6 router advertisements, redirects and
/// router renumbering, and IPv4 ICMP redirects (a tenant is never its neighbours' router). A
/// port named like a tenant port (`lz...`) that has no elements drops everything: a NIC whose
/// elements were lost sends nothing rather than anything.
public enum Antispoof {
    public static let family = "bridge"
    public static let table = "lumos"
    /// Every tenant port's name starts with this (TenantNetwork.hostLinkName).
    public static let tenantPortPrefix = "lz"

    /// The table with its sets and chains, without elements.
    ///
    /// The common path is cheap (it runs for every packet a tenant sends, bench/net.sh): one
    /// verdict-map lookup of `iifname . ether type` sends a port's IPv4, IPv6 and ARP frames
    /// straight to their chain, one hash lookup of `iifname . ether saddr . ip saddr` (exact
    /// elements) checks the source, and `blocking` (ports that have blocked_outgoing_ports)
    /// lets every other port's packet out without looking up its destination port. Interval
    /// sets (`*_range_ok`) hold only what needs ranges (allowed_ips, and everything of a port
    /// that may spoof its MAC or IPs) and are consulted only when the exact lookup misses.
    /// Frames of other ethertypes from a port miss the map and take `@ports` → `tenant`.
    public static let tableText = """
    table bridge lumos {
    \tset ports { type ifname; }
    \tmap port_ethertypes { type ifname . ether_type : verdict; }
    \tset mac_ok { type ifname . ether_addr; }
    \tset mac_range_ok { type ifname . ether_addr; flags interval; }
    \tset v4_ok { type ifname . ether_addr . ipv4_addr; }
    \tset v4_range_ok { type ifname . ether_addr . ipv4_addr; flags interval; }
    \tset v6_ok { type ifname . ether_addr . ipv6_addr; }
    \tset v6_range_ok { type ifname . ether_addr . ipv6_addr; flags interval; }
    \tset nd_ok { typeof iifname . ether saddr . @th,64,128; flags interval; }
    \tset dhcp_server_ok { type ifname; }
    \tset restricted_ok { type ifname; }
    \tset blocking { type ifname; }
    \tset blocked_ports { type ifname . inet_service; }

    \tchain prerouting {
    \t\ttype filter hook prerouting priority -200; policy accept;
    \t\tiifname . ether type vmap @port_ethertypes
    \t\tiifname @ports jump tenant
    \t\tiifname "\(tenantPortPrefix)*" drop
    \t}

    \tchain tenant {
    \t\tether type ip goto tenant_ipv4
    \t\tether type ip6 goto tenant_ipv6
    \t\tether type arp goto tenant_arp
    \t\tiifname != @restricted_ok drop
    \t\tiifname . ether saddr @mac_ok accept
    \t\tiifname . ether saddr @mac_range_ok accept
    \t\tdrop
    \t}

    \tchain tenant_ipv4 {
    \t\tiifname . ether saddr . ip saddr @v4_ok goto tenant_l4
    \t\tiifname . ether saddr . ip saddr @v4_range_ok goto tenant_l4
    \t\tip saddr 0.0.0.0 udp sport 68 udp dport 67 iifname . ether saddr @mac_ok accept
    \t\tip saddr 0.0.0.0 udp sport 68 udp dport 67 iifname . ether saddr @mac_range_ok accept
    \t\tdrop
    \t}

    \tchain tenant_ipv6 {
    \t\tiifname . ether saddr . ip6 saddr @v6_ok goto tenant_nd
    \t\tiifname . ether saddr . ip6 saddr @v6_range_ok goto tenant_nd
    \t\tip6 saddr :: goto tenant_ipv6_unspecified
    \t\tdrop
    \t}

    \tchain tenant_nd {
    \t\ticmpv6 type { nd-router-advert, nd-redirect, router-renumbering } drop
    \t\ticmpv6 type nd-neighbor-advert iifname . ether saddr . @th,64,128 != @nd_ok drop
    \t\tgoto tenant_l4
    \t}

    \tchain tenant_ipv6_unspecified {
    \t\ticmpv6 type nd-neighbor-solicit iifname . ether saddr . @th,64,128 @nd_ok accept
    \t\ticmpv6 type mld2-listener-report iifname . ether saddr @mac_ok accept
    \t\ticmpv6 type mld2-listener-report iifname . ether saddr @mac_range_ok accept
    \t\tdrop
    \t}

    \tchain tenant_arp {
    \t\tiifname . ether saddr != @mac_ok iifname . ether saddr != @mac_range_ok drop
    \t\tarp saddr ip 0.0.0.0 accept
    \t\tiifname . arp saddr ether . arp saddr ip @v4_ok accept
    \t\tiifname . arp saddr ether . arp saddr ip @v4_range_ok accept
    \t\tdrop
    \t}

    \tchain tenant_l4 {
    \t\tudp sport { 67, 547 } iifname != @dhcp_server_ok drop
    \t\tudp dport { 68, 546 } iifname != @dhcp_server_ok drop
    \t\ticmp type redirect drop
    \t\tiifname != @blocking accept
    \t\tmeta l4proto { tcp, udp } iifname . th dport @blocked_ports drop
    \t\taccept
    \t}
    }

    """

    static let anyMAC = "00:00:00:00:00:00-ff:ff:ff:ff:ff:ff"
    static let setOrder = ["ports", "port_ethertypes", "mac_ok", "mac_range_ok", "v4_ok", "v4_range_ok", "v6_ok", "v6_range_ok", "nd_ok",
                           "dhcp_server_ok", "restricted_ok", "blocking", "blocked_ports"]

    /// Set (or map) name → elements, in a fixed order, for the given ports.
    public static func elements(_ ports: [PortPolicy]) -> [(set: String, elements: [String])] {
        var sets: [String: [String]] = [:]
        func add(_ set: String, _ e: String) { sets[set, default: []].append(e) }
        for p in ports {
            let port = "\"\(p.port)\""
            let mac = p.allowMACSpoofing ? anyMAC : p.mac.description
            add("ports", port)
            for (type, chain) in [("ip", "tenant_ipv4"), ("ip6", "tenant_ipv6"), ("arp", "tenant_arp")] {
                add("port_ethertypes", "\(port) . \(type) : goto \(chain)")
            }
            add(p.allowMACSpoofing ? "mac_range_ok" : "mac_ok", "\(port) . \(mac)")
            let v4 = p.allowIPSpoofing ? [IPNetwork(address: IPAddress(ipv4: 0), prefix: 0)] : disjoint(p.ipv4)
            let v6 = p.allowIPSpoofing ? [IPNetwork(address: IPAddress(bytes: [UInt8](repeating: 0, count: 16)), prefix: 0)] : disjoint(p.ipv6)
            for n in v4 + v6 {
                let family = n.isIPv4 ? "v4" : "v6"
                let exact = !p.allowMACSpoofing && n.prefix == (n.isIPv4 ? 32 : 128)
                add(exact ? "\(family)_ok" : "\(family)_range_ok", "\(port) . \(mac) . \(nftText(n))")
            }
            for n in v6 {
                let raw = n.prefix == 128 ? n.address.hex : "\(n.network.hex)-\(n.last.hex)"
                add("nd_ok", "\(port) . \(mac) . \(raw)")
            }
            if p.allowDHCPSpoofing { add("dhcp_server_ok", port) }
            if p.allowRestrictedTraffic { add("restricted_ok", port) }
            if !p.blockedOutgoingPorts.isEmpty { add("blocking", port) }
            for b in Set(p.blockedOutgoingPorts).sorted() { add("blocked_ports", "\(port) . \(b)") }
        }
        return setOrder.compactMap { name in sets[name].map { (set: name, elements: $0) } }
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
    /// No ports: the table is removed (nothing of Lumos stays in the firewall when no tenant
    /// needs it).
    public static func rebuildScript(_ ports: [PortPolicy]) -> String {
        let drop = "table bridge lumos {}\ndelete table bridge lumos\n"
        return ports.isEmpty ? drop : drop + tableText + addScript(ports)
    }
}
