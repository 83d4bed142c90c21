/// A DHCP message (RFC 2131) with its options (RFC 2132): just what a responder needs.
public struct DHCPPacket: Sendable, Equatable {
    public enum MessageType: UInt8, Sendable {
        case discover = 1, offer, request, decline, ack, nak, release, inform
    }

    /// Option codes Lumos reads or writes.
    public enum Option: UInt8, Sendable {
        case subnetMask = 1, router = 3, dnsServers = 6, hostname = 12, requestedAddress = 50
        case leaseTime = 51, messageType = 53, serverID = 54, renewalTime = 58, rebindingTime = 59
        case end = 255
    }

    static let magicCookie: [UInt8] = [99, 130, 83, 99]
    public static let bootRequest: UInt8 = 1
    public static let bootReply: UInt8 = 2

    public var op: UInt8
    public var xid: UInt32
    public var secs: UInt16 = 0
    public var flags: UInt16 = 0
    public var ciaddr = IPAddress(ipv4: 0)
    public var yiaddr = IPAddress(ipv4: 0)
    public var siaddr = IPAddress(ipv4: 0)
    public var giaddr = IPAddress(ipv4: 0)
    public var chaddr: MACAddress
    /// Options in order, without pad and end.
    public var options: [(code: UInt8, value: [UInt8])] = []

    public init(op: UInt8, xid: UInt32, chaddr: MACAddress) {
        self.op = op
        self.xid = xid
        self.chaddr = chaddr
    }

    public static func == (a: DHCPPacket, b: DHCPPacket) -> Bool {
        a.op == b.op && a.xid == b.xid && a.secs == b.secs && a.flags == b.flags && a.ciaddr == b.ciaddr
            && a.yiaddr == b.yiaddr && a.siaddr == b.siaddr && a.giaddr == b.giaddr && a.chaddr == b.chaddr
            && a.options.map(\.code) == b.options.map(\.code) && a.options.map(\.value) == b.options.map(\.value)
    }

    public var broadcastFlag: Bool { flags & 0x8000 != 0 }

    public func option(_ o: Option) -> [UInt8]? { options.first { $0.code == o.rawValue }?.value }

    public var messageType: MessageType? { option(.messageType).flatMap { $0.count == 1 ? MessageType(rawValue: $0[0]) : nil } }

    public func address(_ o: Option) -> IPAddress? {
        guard let v = option(o), v.count == 4 else { return nil }
        return IPAddress(bytes: v)
    }

    public mutating func set(_ o: Option, _ value: [UInt8]) { options.append((o.rawValue, value)) }
    public mutating func set(_ o: Option, _ a: IPAddress) { set(o, a.bytes) }
    public mutating func set(_ o: Option, _ v: UInt32) { set(o, [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)]) }

    /// Decodes a BOOTP/DHCP payload (the UDP data); nil when it is not DHCP over Ethernet.
    public static func decode(_ b: [UInt8]) -> DHCPPacket? {
        guard b.count >= 240, b[1] == 1, b[2] == 6, Array(b[236..<240]) == magicCookie else { return nil }
        func u32(_ i: Int) -> UInt32 { UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3]) }
        var p = DHCPPacket(op: b[0], xid: u32(4), chaddr: MACAddress(bytes: Array(b[28..<34])))
        p.secs = UInt16(b[8]) << 8 | UInt16(b[9])
        p.flags = UInt16(b[10]) << 8 | UInt16(b[11])
        p.ciaddr = IPAddress(bytes: Array(b[12..<16]))
        p.yiaddr = IPAddress(bytes: Array(b[16..<20]))
        p.siaddr = IPAddress(bytes: Array(b[20..<24]))
        p.giaddr = IPAddress(bytes: Array(b[24..<28]))
        var i = 240
        while i < b.count {
            let code = b[i]
            if code == 0 { i += 1; continue }
            if code == 255 { break }
            guard i + 1 < b.count else { return nil }
            let len = Int(b[i + 1])
            guard i + 2 + len <= b.count else { return nil }
            p.options.append((code, Array(b[(i + 2)..<(i + 2 + len)])))
            i += 2 + len
        }
        return p
    }

    /// Encodes the payload; padded to the 300-byte BOOTP minimum some clients expect.
    public func encode() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 240)
        b[0] = op; b[1] = 1; b[2] = 6; b[3] = 0
        func put32(_ i: Int, _ v: UInt32) { b[i] = UInt8(v >> 24); b[i + 1] = UInt8((v >> 16) & 0xff); b[i + 2] = UInt8((v >> 8) & 0xff); b[i + 3] = UInt8(v & 0xff) }
        put32(4, xid)
        b[8] = UInt8(secs >> 8); b[9] = UInt8(secs & 0xff)
        b[10] = UInt8(flags >> 8); b[11] = UInt8(flags & 0xff)
        b.replaceSubrange(12..<16, with: ciaddr.bytes)
        b.replaceSubrange(16..<20, with: yiaddr.bytes)
        b.replaceSubrange(20..<24, with: siaddr.bytes)
        b.replaceSubrange(24..<28, with: giaddr.bytes)
        b.replaceSubrange(28..<34, with: chaddr.bytes)
        b.replaceSubrange(236..<240, with: Self.magicCookie)
        for o in options {
            b.append(o.code)
            b.append(UInt8(o.value.count))
            b += o.value
        }
        b.append(255)
        if b.count < 300 { b += [UInt8](repeating: 0, count: 300 - b.count) }
        return b
    }
}
