import LumosCore

/// One entry of a vmadm manifest's `nics[]` (vmadm(8) "nics.*" properties), plus two Lumos
/// extensions for bandwidth caps, which SmartOS set with `dladm set-linkprop -p maxbw`:
///
/// - `lumos_rx_maxbw_mbps`: cap, in Mbit/s, on what the tenant receives through this NIC.
/// - `lumos_tx_maxbw_mbps`: cap, in Mbit/s, on what the tenant sends through this NIC.
///
/// Unknown keys are kept out: vmadm owns the manifest; this is the part Net acts on.
public struct NicSpec: Sendable, Equatable, Codable {
    public var interface: String?
    public var nicTag: String
    public var mac: MACAddress?
    /// CIDR addresses, `dhcp` (IPv4 by DHCP) and `addrconf` (IPv6 SLAAC), as vmadm's nics.*.ips.
    public var ips: [String]
    public var gateways: [String]
    public var primary: Bool?
    public var mtu: Int?
    public var vlanID: Int?
    public var model: String?
    public var allowIPSpoofing: Bool?
    public var allowMACSpoofing: Bool?
    public var allowDHCPSpoofing: Bool?
    public var allowRestrictedTraffic: Bool?
    public var allowedIPs: [String]
    public var blockedOutgoingPorts: [Int]
    public var rxMaxbwMbps: Double?
    public var txMaxbwMbps: Double?

    public init(nicTag: String, ips: [String] = [], gateways: [String] = [], mac: MACAddress? = nil, interface: String? = nil,
                primary: Bool? = nil, mtu: Int? = nil, vlanID: Int? = nil,
                allowIPSpoofing: Bool? = nil, allowMACSpoofing: Bool? = nil, allowDHCPSpoofing: Bool? = nil,
                allowRestrictedTraffic: Bool? = nil, allowedIPs: [String] = [], blockedOutgoingPorts: [Int] = [],
                rxMaxbwMbps: Double? = nil, txMaxbwMbps: Double? = nil) {
        self.nicTag = nicTag; self.ips = ips; self.gateways = gateways; self.mac = mac; self.interface = interface
        self.primary = primary; self.mtu = mtu; self.vlanID = vlanID
        self.allowIPSpoofing = allowIPSpoofing; self.allowMACSpoofing = allowMACSpoofing
        self.allowDHCPSpoofing = allowDHCPSpoofing; self.allowRestrictedTraffic = allowRestrictedTraffic
        self.allowedIPs = allowedIPs; self.blockedOutgoingPorts = blockedOutgoingPorts
        self.rxMaxbwMbps = rxMaxbwMbps; self.txMaxbwMbps = txMaxbwMbps
    }

    enum CodingKeys: String, CodingKey {
        case interface, mac, ips, gateways, primary, mtu, model
        case nicTag = "nic_tag"
        case vlanID = "vlan_id"
        case allowIPSpoofing = "allow_ip_spoofing"
        case allowMACSpoofing = "allow_mac_spoofing"
        case allowDHCPSpoofing = "allow_dhcp_spoofing"
        case allowRestrictedTraffic = "allow_restricted_traffic"
        case allowedIPs = "allowed_ips"
        case blockedOutgoingPorts = "blocked_outgoing_ports"
        case rxMaxbwMbps = "lumos_rx_maxbw_mbps"
        case txMaxbwMbps = "lumos_tx_maxbw_mbps"
        // The pre-`ips` single-address form vmadm still accepts.
        case ip, netmask, gateway
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        nicTag = try c.decodeIfPresent(String.self, forKey: .nicTag) ?? ""
        interface = try c.decodeIfPresent(String.self, forKey: .interface)
        mac = try c.decodeIfPresent(MACAddress.self, forKey: .mac)
        ips = try c.decodeIfPresent([String].self, forKey: .ips) ?? []
        gateways = try c.decodeIfPresent([String].self, forKey: .gateways) ?? []
        if ips.isEmpty, let ip = try c.decodeIfPresent(String.self, forKey: .ip) {
            // vmadm: "ip" plus "netmask" is the old spelling of one ips[] entry.
            if let mask = try c.decodeIfPresent(String.self, forKey: .netmask), let m = IPAddress(mask), m.isIPv4, IPAddress(ip) != nil {
                ips = ["\(ip)/\(m.uint32.nonzeroBitCount)"]
            } else {
                ips = [ip]
            }
        }
        if gateways.isEmpty, let gw = try c.decodeIfPresent(String.self, forKey: .gateway) { gateways = [gw] }
        primary = try Self.flag(c, .primary)
        mtu = try c.decodeIfPresent(Int.self, forKey: .mtu)
        vlanID = try c.decodeIfPresent(Int.self, forKey: .vlanID)
        model = try c.decodeIfPresent(String.self, forKey: .model)
        allowIPSpoofing = try Self.flag(c, .allowIPSpoofing)
        allowMACSpoofing = try Self.flag(c, .allowMACSpoofing)
        allowDHCPSpoofing = try Self.flag(c, .allowDHCPSpoofing)
        allowRestrictedTraffic = try Self.flag(c, .allowRestrictedTraffic)
        allowedIPs = try c.decodeIfPresent([String].self, forKey: .allowedIPs) ?? []
        blockedOutgoingPorts = try c.decodeIfPresent([Int].self, forKey: .blockedOutgoingPorts) ?? []
        rxMaxbwMbps = try c.decodeIfPresent(Double.self, forKey: .rxMaxbwMbps)
        txMaxbwMbps = try c.decodeIfPresent(Double.self, forKey: .txMaxbwMbps)
    }

    /// vmadm writes booleans as true/false and, in older manifests, as "1"/"true" strings.
    static func flag(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> Bool? {
        if let b = try? c.decodeIfPresent(Bool.self, forKey: key) { return b }
        guard let s = try c.decodeIfPresent(String.self, forKey: key) else { return nil }
        switch s.lowercased() {
        case "true", "1": return true
        case "false", "0": return false
        default: throw LumosError.invalid("\(key.rawValue): \(s) is not a boolean (use true or false)")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(interface, forKey: .interface)
        try c.encode(nicTag, forKey: .nicTag)
        try c.encodeIfPresent(mac, forKey: .mac)
        try c.encode(ips, forKey: .ips)
        if !gateways.isEmpty { try c.encode(gateways, forKey: .gateways) }
        try c.encodeIfPresent(primary, forKey: .primary)
        try c.encodeIfPresent(mtu, forKey: .mtu)
        try c.encodeIfPresent(vlanID, forKey: .vlanID)
        try c.encodeIfPresent(model, forKey: .model)
        try c.encodeIfPresent(allowIPSpoofing, forKey: .allowIPSpoofing)
        try c.encodeIfPresent(allowMACSpoofing, forKey: .allowMACSpoofing)
        try c.encodeIfPresent(allowDHCPSpoofing, forKey: .allowDHCPSpoofing)
        try c.encodeIfPresent(allowRestrictedTraffic, forKey: .allowRestrictedTraffic)
        if !allowedIPs.isEmpty { try c.encode(allowedIPs, forKey: .allowedIPs) }
        if !blockedOutgoingPorts.isEmpty { try c.encode(blockedOutgoingPorts, forKey: .blockedOutgoingPorts) }
        try c.encodeIfPresent(rxMaxbwMbps, forKey: .rxMaxbwMbps)
        try c.encodeIfPresent(txMaxbwMbps, forKey: .txMaxbwMbps)
    }

    // MARK: Derived views

    /// The static addresses (ips[] minus `dhcp` and `addrconf`).
    public var addresses: [IPNetwork] { ips.compactMap { IPNetwork($0) } }
    public var ipv4Addresses: [IPNetwork] { addresses.filter(\.isIPv4) }
    public var ipv6Addresses: [IPNetwork] { addresses.filter { !$0.isIPv4 } }
    public var usesDHCP: Bool { ips.contains("dhcp") }
    public var usesAddrconf: Bool { ips.contains("addrconf") }
    public var gatewayAddresses: [IPAddress] { gateways.compactMap { IPAddress($0) } }
    public var allowedNetworks: [IPNetwork] { allowedIPs.compactMap { IPNetwork($0) } }
    public var isPrimary: Bool { primary ?? false }
}
