import Glibc

/// %S / %C escaping (libdtrace strchr2esc): C escapes for the usual control characters,
/// octal for other unprintable bytes.
enum Escaping {
    static func escape(_ bytes: [UInt8]) -> String {
        var out = ""
        for b in bytes {
            if b == 0 { break }
            switch b {
            case 0x07: out += "\\a"
            case 0x08: out += "\\b"
            case 0x0c: out += "\\f"
            case 0x0a: out += "\\n"
            case 0x0d: out += "\\r"
            case 0x09: out += "\\t"
            case 0x0b: out += "\\v"
            case 0x5c: out += "\\\\"
            case 0x22: out += "\\\""
            case 0x27: out += "\\'"
            case 0x20...0x7e: out.unicodeScalars.append(Unicode.Scalar(b))
            default: out += CText.format("\\%03o", UInt32(b))
            }
        }
        return out
    }
}

/// Wall-clock renderings of a nanosecond timestamp, in local time as DTrace prints them.
public enum TimeText {
    /// %Y: ctime(3) rearranged to "2026 Nov 25 09:07:54" (year first, day space-padded).
    public static func walltime(_ nanoseconds: Int64) -> String {
        var t = time_t(nanoseconds / 1_000_000_000)
        var buf = [CChar](repeating: 0, count: 32)
        guard ctime_r(&t, &buf) != nil else { return "" }
        let s = buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        guard s.count >= 24 else { return "" }
        return String(decoding: s[20..<24], as: UTF8.self) + String(decoding: s[3..<19], as: UTF8.self)
    }

    /// %T: RFC 822 ("Wed, 25 Nov 2026 09:07:54 UTC").
    public static func rfc822(_ nanoseconds: Int64) -> String {
        var t = time_t(nanoseconds / 1_000_000_000)
        var tmv = tm()
        localtime_r(&t, &tmv)
        var buf = [CChar](repeating: 0, count: 64)
        let n = strftime(&buf, buf.count, "%a, %d %b %G %T %Z", &tmv)
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
