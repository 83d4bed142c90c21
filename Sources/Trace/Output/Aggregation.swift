/// The user-space view of an aggregation after the per-CPU kernel maps are merged: what the
/// printer needs to produce DTrace's output.
///
/// Public API:
///   AggregationKey      -- one tuple member: .integer(value, size:), .string, .stack(frames)
///   AggregationValue    -- the merged result of count/sum/min/max/avg/stddev/quantize/
///                          lquantize/llquantize, with `merged(with:)` to fold CPUs together
///   AggregationRecord   -- keys + value
///   Aggregation         -- name, records, normalization; `sorted()`, `truncated(to:)`
///
/// Sizes of integer keys matter: DTrace prints an 8-byte key in 16 columns, 4 bytes in 8,
/// 2 in 5 and 1 in 3 (libdtrace dt_print_datum), so the compiler passes the D type's size.

public enum AggregationKey: Sendable, Hashable {
    /// An integer tuple member; `size` is the D type's size in bytes (1, 2, 4 or 8).
    case integer(Int64, size: Int = 8)
    case string(String)
    /// A stack() / ustack() key, already symbolized, innermost frame first.
    case stack([String])
}

public enum AggregationValue: Sendable, Hashable {
    case count(Int64)
    case sum(Int64)
    case min(Int64)
    case max(Int64)
    case avg(count: Int64, total: Int64)
    /// sumOfSquares is 128-bit as in DTrace, so large values do not overflow.
    case stddev(count: Int64, total: Int64, sumOfSquares: UInt128)
    /// PowerOfTwoBuckets.count counts.
    case quantize([Int64])
    case lquantize(LinearBuckets, [Int64])
    case llquantize(LogLinearBuckets, [Int64])

    /// Combines the values of two CPUs (or two snapshots) of the same aggregation.
    public func merged(with other: AggregationValue) -> AggregationValue {
        switch (self, other) {
        case let (.count(a), .count(b)): return .count(a &+ b)
        case let (.sum(a), .sum(b)): return .sum(a &+ b)
        case let (.min(a), .min(b)): return .min(Swift.min(a, b))
        case let (.max(a), .max(b)): return .max(Swift.max(a, b))
        case let (.avg(c1, t1), .avg(c2, t2)): return .avg(count: c1 &+ c2, total: t1 &+ t2)
        case let (.stddev(c1, t1, s1), .stddev(c2, t2, s2)):
            return .stddev(count: c1 &+ c2, total: t1 &+ t2, sumOfSquares: s1 &+ s2)
        case let (.quantize(a), .quantize(b)): return .quantize(Self.add(a, b))
        case let (.lquantize(l, a), .lquantize(_, b)): return .lquantize(l, Self.add(a, b))
        case let (.llquantize(l, a), .llquantize(_, b)): return .llquantize(l, Self.add(a, b))
        default: return self
        }
    }

    private static func add(_ a: [Int64], _ b: [Int64]) -> [Int64] {
        var out = a
        if out.count < b.count { out += [Int64](repeating: 0, count: b.count - out.count) }
        for (i, v) in b.enumerated() { out[i] &+= v }
        return out
    }

    /// An empty value of the same function (what clear() leaves behind).
    public var cleared: AggregationValue {
        switch self {
        case .count: return .count(0)
        case .sum: return .sum(0)
        case .min: return .min(0)
        case .max: return .max(0)
        case .avg: return .avg(count: 0, total: 0)
        case .stddev: return .stddev(count: 0, total: 0, sumOfSquares: 0)
        case let .quantize(b): return .quantize([Int64](repeating: 0, count: b.count))
        case let .lquantize(l, b): return .lquantize(l, [Int64](repeating: 0, count: b.count))
        case let .llquantize(l, b): return .llquantize(l, [Int64](repeating: 0, count: b.count))
        }
    }
}

public struct AggregationRecord: Sendable, Hashable {
    public var keys: [AggregationKey]
    public var value: AggregationValue

    public init(keys: [AggregationKey] = [], value: AggregationValue) {
        self.keys = keys
        self.value = value
    }
}

public struct Aggregation: Sendable, Hashable {
    /// The name without '@' ("" for the anonymous `@`).
    public var name: String
    public var records: [AggregationRecord]
    /// normalize() factor; values are divided by it when printed (1 = denormalized).
    public var normal: Int64

    public init(name: String = "", records: [AggregationRecord] = [], normal: Int64 = 1) {
        self.name = name
        self.records = records
        self.normal = normal
    }

    /// Records in DTrace's default order: by value ascending, ties broken by the keys.
    public func sorted() -> [AggregationRecord] {
        records.sorted { AggregationOrder.compare($0, $1) < 0 }
    }

    /// trunc(@, n): keeps the n records with the largest values (n > 0), or the |n| smallest
    /// (n < 0); trunc(@) (n == 0) removes all records.
    public func truncated(to n: Int) -> Aggregation {
        var copy = self
        let s = sorted()
        if n == 0 { copy.records = [] }
        else if n > 0 { copy.records = Array(s.suffix(n)) }
        else { copy.records = Array(s.prefix(-n)) }
        return copy
    }

    /// clear(@): keeps the keys, zeroes the values.
    public func cleared() -> Aggregation {
        var copy = self
        copy.records = records.map { AggregationRecord(keys: $0.keys, value: $0.value.cleared) }
        return copy
    }
}
