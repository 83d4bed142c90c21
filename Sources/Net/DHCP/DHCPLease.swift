/// What the built-in DHCP responder hands one NIC: its manifest address and nothing else.
public struct DHCPLease: Sendable, Equatable, Codable {
    public var mac: MACAddress
    public var address: IPNetwork
    public var gateway: IPAddress?
    public var resolvers: [IPAddress]
    public var hostname: String?
    /// Option 54; busybox udhcpc refuses offers without it (docs/architecture.md).
    public var serverID: IPAddress
    public var leaseSeconds: UInt32

    public init(mac: MACAddress, address: IPNetwork, gateway: IPAddress? = nil, resolvers: [IPAddress] = [], hostname: String? = nil,
                serverID: IPAddress, leaseSeconds: UInt32 = 86400) {
        self.mac = mac; self.address = address; self.gateway = gateway; self.resolvers = resolvers
        self.hostname = hostname; self.serverID = serverID; self.leaseSeconds = leaseSeconds
    }

    enum CodingKeys: String, CodingKey {
        case mac, address, gateway, resolvers, hostname
        case serverID = "server_id"
        case leaseSeconds = "lease_seconds"
    }

    /// The server identifier for a lease: the host's own address on the switch in that subnet,
    /// else the NIC's gateway, else the first host address of the subnet that is not the NIC's.
    public static func serverID(for address: IPNetwork, gateway: IPAddress?, hostAddresses: [IPNetwork]) -> IPAddress {
        if let h = hostAddresses.first(where: { $0.isIPv4 && $0.contains(address.address) }) { return h.address }
        if let gateway, gateway.isIPv4 { return gateway }
        let first = IPAddress(ipv4: address.network.uint32 &+ 1)
        return first == address.address ? IPAddress(ipv4: address.last.uint32 &- 1) : first
    }

    /// The reply to a client message, or nil when it must be ignored (RFC 2131 §4.3).
    public func reply(to request: DHCPPacket) -> DHCPPacket? {
        guard request.op == DHCPPacket.bootRequest, request.chaddr == mac, let type = request.messageType else { return nil }
        var r = DHCPPacket(op: DHCPPacket.bootReply, xid: request.xid, chaddr: mac)
        r.flags = request.flags
        r.giaddr = request.giaddr
        let answer: DHCPPacket.MessageType
        switch type {
        case .discover:
            answer = .offer
        case .request:
            // A REQUEST for another server's offer is not ours to answer.
            if let sid = request.address(.serverID), sid != serverID { return nil }
            let wanted = request.address(.requestedAddress) ?? (request.ciaddr.uint32 != 0 ? request.ciaddr : nil)
            answer = wanted == nil || wanted == address.address ? .ack : .nak
        case .inform:
            answer = .ack
        default:
            return nil
        }
        r.set(.messageType, [answer.rawValue])
        r.set(.serverID, serverID)
        if answer == .nak { return r }
        if type == .inform {
            r.ciaddr = request.ciaddr
        } else {
            r.yiaddr = address.address
            r.set(.leaseTime, leaseSeconds)
            r.set(.renewalTime, leaseSeconds / 2)
            r.set(.rebindingTime, leaseSeconds / 8 * 7)
        }
        r.set(.subnetMask, address.netmask)
        if let gateway { r.set(.router, gateway) }
        if !resolvers.isEmpty { r.set(.dnsServers, resolvers.flatMap(\.bytes)) }
        if let hostname, !hostname.isEmpty { r.set(.hostname, Array(hostname.utf8.prefix(255))) }
        return r
    }
}
