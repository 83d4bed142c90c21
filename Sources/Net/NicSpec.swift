import LumosCore

/// One entry of a vmadm manifest's `nics[]` (vmadm(8) "nics.*" properties), plus two Lumos
/// extensions for bandwidth caps, which SmartOS set with `dladm set-linkprop -p maxbw`:
///
/// - `lumos_rx_maxbw_mbps`: cap, in Mbit/s, on what the tenant receives through this NIC.
/// - `lumos_tx_maxbw_mbps`: cap, in Mbit/s, on what the tenant sends through this NIC.
///
/// This is the one NIC schema: vmadm's manifest validation accepts exactly `fieldNames`, and
/// a manifest's nics[] entries become NicSpecs with `init(json:)` (no encode/decode round trip).
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

    enum CodingKeys: String, CodingKey, CaseIterable {
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

    /// Every key a NIC object may have (vmadm's nics.* properties Lumos acts on, the old
    /// ip/netmask/gateway spelling, and the Lumos bandwidth caps).
    public static let fieldNames: [String] = CodingKeys.allCases.map(\.rawValue)
    /// The fields that are booleans, and the bandwidth caps (Mbit/s).
    public static let flagFields: [String] = [CodingKeys.primary, .allowIPSpoofing, .allowMACSpoofing, .allowDHCPSpoofing,
                                              .allowRestrictedTraffic].map(\.rawValue)
    public static let bandwidthFields: [String] = [CodingKeys.rxMaxbwMbps, .txMaxbwMbps].map(\.rawValue)

    public init(from decoder: Decoder) throws {
        try self.init(json: try decoder.singleValueContainer().decode([String: JSONValue].self))
    }

    /// A NIC from its manifest object. Types are checked (a wrong one is a one-line error
    /// naming the field); values are NicValidation's job.
    public init(json o: [String: JSONValue]) throws {
        func string(_ k: CodingKeys) throws -> String? {
            guard let v = o[k.rawValue], v != .null else { return nil }
            guard let s = v.stringValue else { throw LumosError.invalid("\(k.rawValue): expected a string, got \(v.typeName)") }
            return s
        }
        func strings(_ k: CodingKeys) throws -> [String] {
            guard let v = o[k.rawValue], v != .null else { return [] }
            guard let a = v.arrayValue, a.allSatisfy({ $0.stringValue != nil }) else {
                throw LumosError.invalid("\(k.rawValue): expected an array of strings, got \(v.typeName)")
            }
            return a.compactMap(\.stringValue)
        }
        func int(_ k: CodingKeys) throws -> Int? {
            guard let v = o[k.rawValue], v != .null else { return nil }
            guard let n = v.intValue, let i = Int(exactly: n) else { throw LumosError.invalid("\(k.rawValue): expected a whole number, got \(v.typeName)") }
            return i
        }
        func number(_ k: CodingKeys) throws -> Double? {
            guard let v = o[k.rawValue], v != .null else { return nil }
            guard let d = v.numberValue else { throw LumosError.invalid("\(k.rawValue): expected a number, got \(v.typeName)") }
            return d
        }
        nicTag = try string(.nicTag) ?? ""
        interface = try string(.interface)
        if let m = try string(.mac) {
            guard let mac = MACAddress(m) else { throw LumosError.invalid("mac: \(m) is not a MAC address") }
            self.mac = mac
        } else {
            mac = nil
        }
        ips = try strings(.ips)
        gateways = try strings(.gateways)
        if ips.isEmpty, let ip = try string(.ip) {
            // vmadm: "ip" plus "netmask" is the old spelling of one ips[] entry.
            if let mask = try string(.netmask), let m = IPAddress(mask), m.isIPv4, IPAddress(ip) != nil {
                ips = ["\(ip)/\(m.uint32.nonzeroBitCount)"]
            } else {
                ips = [ip]
            }
        }
        if gateways.isEmpty, let gw = try string(.gateway) { gateways = [gw] }
        primary = try Self.flag(o, .primary)
        mtu = try int(.mtu)
        vlanID = try int(.vlanID)
        model = try string(.model)
        allowIPSpoofing = try Self.flag(o, .allowIPSpoofing)
        allowMACSpoofing = try Self.flag(o, .allowMACSpoofing)
        allowDHCPSpoofing = try Self.flag(o, .allowDHCPSpoofing)
        allowRestrictedTraffic = try Self.flag(o, .allowRestrictedTraffic)
        allowedIPs = try strings(.allowedIPs)
        if let v = o[CodingKeys.blockedOutgoingPorts.rawValue], v != .null {
            guard let a = v.arrayValue, let ports = Optional(a.compactMap { $0.intValue.flatMap { Int(exactly: $0) } }), ports.count == a.count else {
                throw LumosError.invalid("blocked_outgoing_ports: expected an array of port numbers")
            }
            blockedOutgoingPorts = ports
        } else {
            blockedOutgoingPorts = []
        }
        rxMaxbwMbps = try number(.rxMaxbwMbps)
        txMaxbwMbps = try number(.txMaxbwMbps)
    }

    /// vmadm writes booleans as true/false and, in older manifests, as "1"/"true" strings.
    static func flag(_ o: [String: JSONValue], _ key: CodingKeys) throws -> Bool? {
        guard let v = o[key.rawValue], v != .null else { return nil }
        if let b = v.boolValue { return b }
        switch v.stringValue?.lowercased() {
        case "true", "1": return true
        case "false", "0": return false
        default: throw LumosError.invalid("\(key.rawValue): \(v) is not a boolean (use true or false)")
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
