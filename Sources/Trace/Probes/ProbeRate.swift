import LumosCore

/// profile-N and tick-N probe names (DTrace guide, "profile Provider"): N with an optional
/// unit — ns/nsec, us/usec, ms/msec, s/sec, m/min, h/hour, d/day for a period, hz for a
/// frequency; no unit means hz. profile fires on every CPU, tick on one.
///
/// Public API:
///   ProbeRate.parse(_ probeName:) throws -> TimedProbe?   -- nil when not profile-/tick-
///   ProbeRate.parse(rate:) throws -> ProbeRate             -- "99", "10ms", "1s", "4999hz"
///   ProbeRate: .hertz(n) / .period(nanoseconds:), .periodNanoseconds, .frequency
public enum ProbeRate: Sendable, Hashable {
    case hertz(UInt64)
    case period(nanoseconds: UInt64)

    public var periodNanoseconds: UInt64 {
        switch self {
        case let .hertz(h): return h == 0 ? 0 : 1_000_000_000 / h
        case let .period(ns): return ns
        }
    }

    /// Events per second (rounded down; at least 1 for any positive period).
    public var frequency: UInt64 {
        switch self {
        case let .hertz(h): return h
        case let .period(ns): return ns == 0 ? 0 : Swift.max(1, 1_000_000_000 / ns)
        }
    }

    static let units: [String: UInt64] = [
        "ns": 1, "nsec": 1, "us": 1_000, "usec": 1_000, "ms": 1_000_000, "msec": 1_000_000,
        "s": 1_000_000_000, "sec": 1_000_000_000, "m": 60_000_000_000, "min": 60_000_000_000,
        "h": 3_600_000_000_000, "hour": 3_600_000_000_000, "d": 86_400_000_000_000, "day": 86_400_000_000_000,
    ]

    public static func parse(rate text: String) throws -> ProbeRate {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        let unit = text.dropFirst(digits.count).lowercased()
        guard let n = UInt64(digits), n > 0 else {
            throw LumosError.invalid("invalid probe rate '\(text)': expected a positive number with an optional unit (hz, ns, us, ms, s, m, h, d)")
        }
        if unit.isEmpty || unit == "hz" { return .hertz(n) }
        guard let mult = units[unit] else {
            throw LumosError.invalid("invalid probe rate unit '\(unit)' in '\(text)': use hz, ns, nsec, us, usec, ms, msec, s, sec, m, min, h, hour, d or day")
        }
        let (ns, overflow) = n.multipliedReportingOverflow(by: mult)
        if overflow { throw LumosError.invalid("probe rate '\(text)' is too long") }
        return .period(nanoseconds: ns)
    }

    public enum Kind: String, Sendable { case profile, tick }

    public struct TimedProbe: Sendable, Hashable {
        public var kind: Kind
        public var rate: ProbeRate
    }

    /// "profile-99", "tick-1s", "profile-10ms" → kind and rate; nil for other names.
    public static func parse(_ probeName: String) throws -> TimedProbe? {
        for kind in [Kind.profile, .tick] {
            let prefix = kind.rawValue + "-"
            if probeName.hasPrefix(prefix) {
                return TimedProbe(kind: kind, rate: try parse(rate: String(probeName.dropFirst(prefix.count))))
            }
        }
        return nil
    }
}
