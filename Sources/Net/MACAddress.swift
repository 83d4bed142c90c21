import Glibc
import LumosCore

/// An Ethernet address, printed as vmadm prints nics[].mac: lower-case, colon separated.
public struct MACAddress: Sendable, Hashable, Codable, CustomStringConvertible {
    public var bytes: [UInt8]

    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var b: [UInt8] = []
        for p in parts {
            guard (1...2).contains(p.count), let v = UInt8(p, radix: 16) else { return nil }
            b.append(v)
        }
        bytes = b
    }

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 6)
        self.bytes = bytes
    }

    public var description: String {
        bytes.map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined(separator: ":")
    }

    public var isMulticast: Bool { bytes[0] & 1 == 1 }
    public var isZero: Bool { bytes.allSatisfy { $0 == 0 } }
    public var isLocallyAdministered: Bool { bytes[0] & 2 == 2 }

    /// A random locally administered unicast address (IEEE 802: bit 1 set, bit 0 clear),
    /// as vmadm generates when nics[].mac is absent. `avoiding` keeps it unique on the host.
    public static func generate(avoiding used: Set<MACAddress> = []) -> MACAddress {
        while true {
            var rng = SystemRandomNumberGenerator()
            var b = (0..<6).map { _ in UInt8.random(in: 0...255, using: &rng) }
            b[0] = (b[0] & 0xfc) | 0x02
            let mac = MACAddress(bytes: b)
            if !used.contains(mac) { return mac }
        }
    }

    /// The IPv6 link-local address the kernel derives from this MAC (RFC 4291 modified EUI-64),
    /// so anti-spoofing can allow exactly the NIC's own fe80:: address.
    public var linkLocalIPv6: IPAddress {
        var a = [UInt8](repeating: 0, count: 16)
        a[0] = 0xfe; a[1] = 0x80
        a[8] = bytes[0] ^ 0x02; a[9] = bytes[1]; a[10] = bytes[2]
        a[11] = 0xff; a[12] = 0xfe
        a[13] = bytes[3]; a[14] = bytes[4]; a[15] = bytes[5]
        return IPAddress(bytes: a)
    }

    public init(from decoder: Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let m = MACAddress(s) else { throw LumosError.invalid("\(s): not a MAC address (use aa:bb:cc:dd:ee:ff)") }
        self = m
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
