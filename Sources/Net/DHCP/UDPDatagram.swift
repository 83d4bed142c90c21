/// IPv4 + UDP headers around a DHCP payload. The responder talks through a packet socket so it
/// can answer clients that have no address yet (and reach them as busybox udhcpc listens: raw).
public enum UDPDatagram {
    /// Builds an IPv4 packet carrying one UDP datagram, with both checksums.
    public static func ipv4(source: IPAddress, destination: IPAddress, sourcePort: UInt16, destinationPort: UInt16, payload: [UInt8], ttl: UInt8 = 64) -> [UInt8] {
        let udpLen = 8 + payload.count
        let total = 20 + udpLen
        var ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0, 0, 0x40, 0, ttl, 17, 0, 0]
        ip += source.bytes + destination.bytes
        let ipSum = checksum(ip)
        ip[10] = UInt8(ipSum >> 8); ip[11] = UInt8(ipSum & 0xff)
        var udp: [UInt8] = [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xff), UInt8(destinationPort >> 8), UInt8(destinationPort & 0xff),
                            UInt8(udpLen >> 8), UInt8(udpLen & 0xff), 0, 0]
        udp += payload
        let pseudo = source.bytes + destination.bytes + [0, 17, UInt8(udpLen >> 8), UInt8(udpLen & 0xff)]
        var udpSum = checksum(pseudo + udp)
        if udpSum == 0 { udpSum = 0xffff }  // RFC 768: a computed zero is sent as all ones
        udp[6] = UInt8(udpSum >> 8); udp[7] = UInt8(udpSum & 0xff)
        return ip + udp
    }

    /// The UDP payload of an IPv4 packet addressed to `port`, with the IP source; nil otherwise.
    public static func parseIPv4(_ p: [UInt8], port: UInt16) -> (source: IPAddress, payload: [UInt8])? {
        guard p.count >= 28, p[0] >> 4 == 4, p[9] == 17 else { return nil }
        let ihl = Int(p[0] & 0x0f) * 4
        let total = Int(p[2]) << 8 | Int(p[3])
        // Fragments are not DHCP as clients send it.
        guard ihl >= 20, total <= p.count, total >= ihl + 8, (Int(p[6]) << 8 | Int(p[7])) & 0x3fff == 0 else { return nil }
        let dport = UInt16(p[ihl + 2]) << 8 | UInt16(p[ihl + 3])
        let udpLen = Int(p[ihl + 4]) << 8 | Int(p[ihl + 5])
        guard dport == port, udpLen >= 8, ihl + udpLen <= total else { return nil }
        return (IPAddress(bytes: Array(p[12..<16])), Array(p[(ihl + 8)..<(ihl + udpLen)]))
    }

    /// The Internet checksum (RFC 1071).
    public static func checksum(_ b: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < b.count { sum += UInt32(b[i]) << 8 | UInt32(b[i + 1]); i += 2 }
        if i < b.count { sum += UInt32(b[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }
}
