import Glibc
import LumosCore

/// An IPv4 or IPv6 address (4 or 16 bytes).
public struct IPAddress: Sendable, Hashable, Codable, CustomStringConvertible {
    public var bytes: [UInt8]

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 4 || bytes.count == 16)
        self.bytes = bytes
    }

    public init?(_ text: String) {
        if text.contains(":") {
            var a = in6_addr()
            guard inet_pton(AF_INET6, text, &a) == 1 else { return nil }
            bytes = withUnsafeBytes(of: &a) { Array($0) }
        } else {
            // inet_pton(AF_INET) rejects the short and octal forms inet_aton takes.
            var a = in_addr()
            guard inet_pton(AF_INET, text, &a) == 1 else { return nil }
            bytes = withUnsafeBytes(of: &a) { Array($0) }
        }
    }

    public var isIPv4: Bool { bytes.count == 4 }

    public var description: String {
        var buf = [CChar](repeating: 0, count: 64)
        var b = bytes
        let family = isIPv4 ? AF_INET : AF_INET6
        _ = b.withUnsafeMutableBytes { inet_ntop(family, $0.baseAddress, &buf, 64) }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The address as a 0x-prefixed hex integer, the form nft takes for raw payload keys.
    public var hex: String {
        "0x" + bytes.map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    public var uint32: UInt32 {
        precondition(isIPv4)
        return bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }

    public init(ipv4 v: UInt32) {
        bytes = [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)]
    }

    public init(from decoder: Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let a = IPAddress(s) else { throw LumosError.invalid("\(s): not an IP address") }
        self = a
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// An address with a prefix length: `10.0.0.5/24` (a NIC address) or `10.0.0.0/24` (a range).
public struct IPNetwork: Sendable, Hashable, Codable, CustomStringConvertible {
    public var address: IPAddress
    public var prefix: Int

    public init(address: IPAddress, prefix: Int) {
        self.address = address
        self.prefix = prefix
    }

    /// Parses `addr/len`; a bare address gets the full length when `bareIsHost`.
    public init?(_ text: String, bareIsHost: Bool = true) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let a = IPAddress(String(parts[0])) else { return nil }
        let maxLen = a.isIPv4 ? 32 : 128
        var len = maxLen
        if parts.count == 2 {
            guard let l = Int(parts[1]), (0...maxLen).contains(l), !parts[1].hasPrefix("+") else { return nil }
            len = l
        } else if !bareIsHost {
            return nil
        }
        address = a
        prefix = len
    }

    public var isIPv4: Bool { address.isIPv4 }
    public var description: String { "\(address)/\(prefix)" }

    /// The network part (host bits cleared).
    public var network: IPAddress {
        var b = address.bytes
        for i in 0..<b.count {
            let bitsHere = max(0, min(8, prefix - i * 8))
            b[i] &= bitsHere == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - bitsHere))
        }
        return IPAddress(bytes: b)
    }

    /// The last address in the range (all host bits set).
    public var last: IPAddress {
        var b = address.bytes
        for i in 0..<b.count {
            let bitsHere = max(0, min(8, prefix - i * 8))
            b[i] |= bitsHere >= 8 ? 0 : UInt8(0xff >> bitsHere)
        }
        return IPAddress(bytes: b)
    }

    /// The dotted netmask of an IPv4 network (DHCP option 1).
    public var netmask: IPAddress {
        precondition(isIPv4)
        return IPAddress(ipv4: prefix == 0 ? 0 : UInt32.max << (32 - prefix))
    }

    public func contains(_ a: IPAddress) -> Bool {
        guard a.isIPv4 == isIPv4 else { return false }
        return IPNetwork(address: a, prefix: prefix).network == network
    }

    public init(from decoder: Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let n = IPNetwork(s) else { throw LumosError.invalid("\(s): not an address with prefix (use 10.0.0.5/24)") }
        self = n
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
