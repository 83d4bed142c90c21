import Glibc
import LumosCore

/// Checks of single values, shared by the property table and the nic/filesystem entries.
public enum ValueChecks {
    public static func isUUID(_ s: String) -> Bool {
        let parts = s.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.map(\.count) == [8, 4, 4, 4, 12] else { return false }
        return parts.allSatisfy { $0.allSatisfy(\.isHexDigit) }
    }

    /// RFC 1123 host name: labels of letters, digits and '-', not starting or ending with '-'.
    static func isHostname(_ s: String) -> Bool {
        guard !s.isEmpty, s.utf8.count <= 253 else { return false }
        return s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.count <= 63 && label.first != "-" && label.last != "-" &&
                label.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" }
        }
    }

    static func isIPv4(_ s: String) -> Bool {
        var a = in_addr()
        return inet_pton(AF_INET, s, &a) == 1
    }

    static func isIPv6(_ s: String) -> Bool {
        var a = in6_addr()
        return inet_pton(AF_INET6, s, &a) == 1
    }

    static func isIP(_ s: String) -> Bool { isIPv4(s) || isIPv6(s) }

    /// `10.0.0.5/24` or `fd00::5/64`; the prefix is required.
    static func isCIDR(_ s: String) -> Bool {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let bits = Int(parts[1]), bits >= 0 else { return false }
        let addr = String(parts[0])
        if isIPv4(addr) { return bits <= 32 }
        if isIPv6(addr) { return bits <= 128 }
        return false
    }

    /// A unicast MAC written as six colon-separated hex octets.
    static func isUnicastMAC(_ s: String) -> Bool {
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6, parts.allSatisfy({ $0.count >= 1 && $0.count <= 2 && $0.allSatisfy(\.isHexDigit) }) else { return false }
        guard let first = UInt8(parts[0], radix: 16) else { return false }
        return first & 1 == 0 && s.lowercased() != "00:00:00:00:00:00"
    }

    static func hasControlCharacters(_ s: String) -> Bool {
        s.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f }
    }

    /// Shows a bad value in an error: strings quoted, others as JSON, long ones cut.
    static func show(_ v: JSONValue) -> String {
        var text = v.description
        if text.count > 60 { text = String(text.prefix(57)) + "..." }
        return text
    }
}
