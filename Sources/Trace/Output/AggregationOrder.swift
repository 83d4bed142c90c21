/// DTrace's default aggregation sort (libdtrace dt_aggregate_varvalcmp): by value, then by
/// key. Values compare by their natural number (count/sum/min/max, the integer average,
/// the standard deviation, and for distributions the sum of bucket value × count, then the
/// count in the zero bucket). Keys compare member by member: integers as unsigned numbers of
/// their size, strings byte by byte.
enum AggregationOrder {
    static func compare(_ a: AggregationRecord, _ b: AggregationRecord) -> Int {
        let v = compareValues(a.value, b.value)
        if v != 0 { return v }
        return compareKeys(a.keys, b.keys)
    }

    static func compareValues(_ a: AggregationValue, _ b: AggregationValue) -> Int {
        let (ta, za) = weight(a)
        let (tb, zb) = weight(b)
        if ta < tb { return -1 }
        if ta > tb { return 1 }
        if za < zb { return -1 }
        if za > zb { return 1 }
        return 0
    }

    /// (primary weight, zero-bucket count).
    private static func weight(_ v: AggregationValue) -> (Double, Int64) {
        switch v {
        case let .count(x), let .sum(x), let .min(x), let .max(x): return (Double(x), 0)
        case let .avg(c, t): return (Double(c == 0 ? 0 : t / c), 0)
        case let .stddev(c, t, s): return (Double(Statistics.stddev(count: c, total: t, sumOfSquares: s, normal: 1)), 0)
        case let .quantize(buckets):
            var total = 0.0
            var zero: Int64 = 0
            for (i, n) in buckets.enumerated() {
                let bv = PowerOfTwoBuckets.value(ofBucket: i)
                if bv == 0 { zero = n }
                total += Double(bv) * Double(n)
            }
            return (total, zero)
        case let .lquantize(l, buckets):
            // As libdtrace: underflow counts at low-1, overflow at limit+1.
            var total = 0.0
            var zero: Int64 = 0
            for (i, n) in buckets.enumerated() {
                let bv: Int64
                if i == 0 { bv = Int64(l.low) - 1 }
                else if i == l.levels + 1 { bv = Int64(l.low) + Int64(l.levels) * Int64(l.step) + 1 }
                else { bv = l.lowerBound(ofBucket: i) }
                if bv == 0 { zero = n }
                total += Double(bv) * Double(n)
            }
            return (total, zero)
        case let .llquantize(l, buckets):
            let bounds = l.lowerBounds()
            var total = 0.0
            for (i, n) in buckets.enumerated() where i < bounds.count { total += Double(bounds[i]) * Double(n) }
            return (total, buckets.first ?? 0)
        }
    }

    static func compareKeys(_ a: [AggregationKey], _ b: [AggregationKey]) -> Int {
        if a.count != b.count { return a.count < b.count ? -1 : 1 }
        for (x, y) in zip(a, b) {
            let c = compareKey(x, y)
            if c != 0 { return c }
        }
        return 0
    }

    private static func compareKey(_ a: AggregationKey, _ b: AggregationKey) -> Int {
        switch (a, b) {
        case let (.integer(x, sx), .integer(y, sy)):
            if sx != sy { return sx < sy ? -1 : 1 }
            let ux = IntegerSize.unsigned(x, size: sx), uy = IntegerSize.unsigned(y, size: sy)
            return ux < uy ? -1 : (ux > uy ? 1 : 0)
        case let (.string(x), .string(y)):
            return bytes(Array(x.utf8), Array(y.utf8))
        case let (.stack(x), .stack(y)):
            for (fx, fy) in zip(x, y) {
                let c = bytes(Array(fx.utf8), Array(fy.utf8))
                if c != 0 { return c }
            }
            return x.count == y.count ? 0 : (x.count < y.count ? -1 : 1)
        default:
            return rank(a) < rank(b) ? -1 : 1
        }
    }

    private static func rank(_ k: AggregationKey) -> Int {
        switch k {
        case .integer: return 0
        case .string: return 1
        case .stack: return 2
        }
    }

    private static func bytes(_ x: [UInt8], _ y: [UInt8]) -> Int {
        for (cx, cy) in zip(x, y) where cx != cy { return cx < cy ? -1 : 1 }
        return x.count == y.count ? 0 : (x.count < y.count ? -1 : 1)
    }
}

/// Integers of a D type's size, as libdtrace reads them from a record.
enum IntegerSize {
    static func unsigned(_ v: Int64, size: Int) -> UInt64 {
        let u = UInt64(bitPattern: v)
        return size >= 8 ? u : u & ((UInt64(1) << UInt64(size * 8)) - 1)
    }

    static func signed(_ v: Int64, size: Int) -> Int64 {
        if size >= 8 { return v }
        let bits = UInt64(size * 8)
        let shift = 64 - bits
        return (v << Int64(shift)) >> Int64(shift)
    }
}

/// stddev() as libdtrace computes it: sqrt(avg(x²) − avg(x)²) in 128-bit integers.
public enum Statistics {
    public static func stddev(count: Int64, total: Int64, sumOfSquares: UInt128, normal: Int64) -> UInt64 {
        if count == 0 { return 0 }
        let n = UInt128(UInt64(bitPattern: Swift.max(normal, 1)))
        let avgOfSquares = sumOfSquares / n / UInt128(UInt64(bitPattern: count))
        let avg = total / Swift.max(normal, 1) / count
        let m = UInt128(avg.magnitude)
        let square = m * m
        guard avgOfSquares > square else { return 0 }
        return isqrt(avgOfSquares - square)
    }

    static func isqrt(_ x: UInt128) -> UInt64 {
        if x == 0 { return 0 }
        let guess = Swift.min(Double(x).squareRoot().rounded(.down), 18446744073709549568.0)
        var r = UInt128(UInt64(guess))
        while r * r > x { r -= 1 }
        while (r + 1) * (r + 1) <= x { r += 1 }
        return UInt64(r)
    }
}
