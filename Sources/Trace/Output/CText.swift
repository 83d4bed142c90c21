import Glibc

/// C printf(3) formatting for the DTrace output layer.
///
/// DTrace's consumer prints everything through printf(3) format strings ("%16lld ", "%-9lld",
/// " %s%*s"); to be byte-for-byte identical we run the same conversions through vsnprintf
/// instead of imitating them in Swift.
///
///     CText.format("%16lld ", Int64(5))          // "               5 "
///     CText.format("%-50s", string: "bash")
///     CText.pad("value", 16)                      // right-aligned like "%16s"
enum CText {
    /// Formats with C varargs (integers, unsigned, double); any length.
    static func format(_ fmt: String, _ args: CVarArg...) -> String {
        render(fmt, args)
    }

    /// Formats one Swift string with a `%s`-style format.
    static func format(_ fmt: String, string: String) -> String {
        string.withCString { p in render(fmt, [p]) }
    }

    private static func render(_ fmt: String, _ args: [CVarArg]) -> String {
        fmt.withCString { f in
            let n = withVaList(args) { vsnprintf(nil, 0, f, $0) }
            if n <= 0 { return "" }
            var buf = [CChar](repeating: 0, count: Int(n) + 1)
            _ = withVaList(args) { vsnprintf(&buf, buf.count, f, $0) }
            return String(decoding: buf[0..<Int(n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// `%*s`: right-aligned in `width` columns when positive, left-aligned when negative.
    static func pad(_ s: String, _ width: Int) -> String {
        let len = s.utf8.count
        let w = abs(width)
        if len >= w { return s }
        let fill = String(repeating: " ", count: w - len)
        return width < 0 ? s + fill : fill + s
    }
}
