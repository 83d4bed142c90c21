/// Sizes as ZFS prints and accepts them: `10G`, `512M`, `1.5T`, `none`.
public enum Size {
    static let units: [Character] = ["K", "M", "G", "T", "P", "E"]

    /// Parses `1024`, `4k`, `10M`, `1.5G`, `2GiB`, `3GB` (all powers of 1024, as zfs does).
    public static func parse(_ text: String) -> UInt64? {
        var s = text.trimmingSpaces().uppercased()
        if s.hasSuffix("IB") { s.removeLast(2) } else if s.hasSuffix("B") && s.count > 1 && units.contains(s[s.index(s.endIndex, offsetBy: -2)]) { s.removeLast() }
        var mult: Double = 1
        if let last = s.last, let i = units.firstIndex(of: last) {
            mult = Double(UInt64(1) << (10 * UInt64(i + 1)))
            s.removeLast()
        } else if s.hasSuffix("B") {
            s.removeLast()
        }
        guard !s.isEmpty, let v = Double(s), v >= 0, v.isFinite else { return nil }
        let bytes = v * mult
        guard bytes < 1.8e19 else { return nil }
        return UInt64(bytes.rounded())
    }

    /// Formats like `zfs list`: 3 significant digits, suffix K/M/G/T.
    public static func format(_ bytes: UInt64) -> String {
        if bytes < 1024 { return "\(bytes)" }
        var v = Double(bytes)
        var i = -1
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        let text: String
        if v < 10 { text = fixed(v, 2) } else if v < 100 { text = fixed(v, 1) } else { text = fixed(v, 0) }
        return text + String(units[i])
    }

    static func fixed(_ v: Double, _ digits: Int) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let n = Int((v * scale).rounded(.down))
        if digits == 0 { return "\(n)" }
        var frac = String(n % Int(scale))
        while frac.count < digits { frac = "0" + frac }
        while frac.hasSuffix("0") { frac.removeLast() }
        return frac.isEmpty ? "\(n / Int(scale))" : "\(n / Int(scale)).\(frac)"
    }
}

extension String {
    public func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
