/// Bucket layouts of DTrace's distribution aggregations, shared by the code generator
/// (which must count into the same bucket index in the kernel) and the printer.
///
/// Public API:
///   PowerOfTwoBuckets.count / .zeroIndex / .bucket(for:) / .value(ofBucket:)   -- quantize()
///   LinearBuckets(low:high:step:) throws; .count, .bucket(for:), .label(ofBucket:)  -- lquantize()
///   LogLinearBuckets(factor:low:high:steps:) throws; .count, .bucket(for:)      -- llquantize()
///
/// Layouts follow the DTrace guide ("Aggregations") and libdtrace's bucket arithmetic:
/// quantize has 127 buckets, index 63 holds 0, index 64+k holds [2^k, 2^(k+1)) and index
/// 62-k holds (-2^(k+1), -2^k]; lquantize has an underflow bucket 0, `levels` buckets and an
/// overflow bucket; llquantize has an underflow bucket 0, then `steps` linear buckets per
/// order of magnitude (fewer while factor^order < steps), then an overflow bucket.
import LumosCore

public enum PowerOfTwoBuckets {
    public static let count = 127
    public static let zeroIndex = 63

    /// The bucket a value falls into.
    public static func bucket(for value: Int64) -> Int {
        if value == 0 { return zeroIndex }
        if value > 0 {
            return zeroIndex + 1 + (63 - value.leadingZeroBitCount)
        }
        let magnitude = value.magnitude
        let k = 63 - magnitude.leadingZeroBitCount  // floor(log2(|value|))
        return Swift.max(0, zeroIndex - 1 - k)
    }

    /// The value printed in the "value" column for a bucket (its lower bound by magnitude).
    public static func value(ofBucket index: Int) -> Int64 {
        if index < zeroIndex { return -(Int64(1) << Int64(zeroIndex - 1 - index)) }
        if index == zeroIndex { return 0 }
        return Int64(1) << Int64(index - zeroIndex - 1)
    }
}

/// lquantize(expr, low, high[, step]).
public struct LinearBuckets: Sendable, Hashable {
    public let low: Int32
    public let high: Int32
    public let step: UInt16
    /// Number of in-range buckets: (high - low) / step.
    public let levels: Int

    public init(low: Int64, high: Int64, step: Int64 = 1) throws {
        // Limits from the DTrace guide: base and limit are 32-bit, step 16-bit, at most
        // 65535 levels; the compiler reports these as D errors.
        guard step > 0, step <= Int64(UInt16.max) else {
            throw LumosError.invalid("lquantize() step must be between 1 and 65535, not \(step)")
        }
        guard low >= Int64(Int32.min), low <= Int64(Int32.max), high >= Int64(Int32.min), high <= Int64(Int32.max) else {
            throw LumosError.invalid("lquantize() lower and upper bounds must fit in 32 bits")
        }
        guard high > low else {
            throw LumosError.invalid("lquantize() upper bound \(high) must be greater than lower bound \(low)")
        }
        let levels = (high - low) / step
        guard levels > 0, levels <= Int64(UInt16.max) else {
            throw LumosError.invalid("lquantize() range \(low)..\(high) with step \(step) gives \(levels) levels; it must give 1 to 65535")
        }
        self.low = Int32(low)
        self.high = Int32(high)
        self.step = UInt16(step)
        self.levels = Int(levels)
    }

    /// Underflow + levels + overflow.
    public var count: Int { levels + 2 }

    public func bucket(for value: Int64) -> Int {
        let base = Int64(low)
        if value < base { return 0 }
        if value >= base + Int64(levels) * Int64(step) { return levels + 1 }
        return Int((value - base) / Int64(step)) + 1
    }

    /// The text in the "value" column: "< low", the bucket's lower bound, or ">= limit".
    public func label(ofBucket index: Int) -> String {
        if index == 0 { return "< \(low)" }
        if index == levels + 1 { return ">= \(Int64(low) + Int64(levels) * Int64(step))" }
        return "\(Int64(low) + Int64(index - 1) * Int64(step))"
    }

    /// The lower bound of an in-range bucket, used for sorting.
    func lowerBound(ofBucket index: Int) -> Int64 {
        Int64(low) + Int64(index - 1) * Int64(step)
    }
}

/// llquantize(expr, factor, low, high, steps).
public struct LogLinearBuckets: Sendable, Hashable {
    public let factor: UInt16
    public let low: UInt16
    public let high: UInt16
    public let steps: UInt16
    /// Total buckets including the underflow and overflow buckets.
    public let count: Int

    public init(factor: Int64, low: Int64, high: Int64, steps: Int64) throws {
        // The same checks DTrace makes (see the guide's llquantize() section): factor >= 2,
        // low < high, steps a multiple of factor, and a power of factor divisible by steps.
        guard factor >= 2, factor <= Int64(UInt16.max) else {
            throw LumosError.invalid("llquantize() factor must be at least 2, not \(factor)")
        }
        guard low >= 0, high <= Int64(UInt16.max), low < high else {
            throw LumosError.invalid("llquantize() low magnitude \(low) must be below high magnitude \(high)")
        }
        guard steps >= factor, steps <= Int64(UInt16.max), steps % factor == 0 else {
            throw LumosError.invalid("llquantize() steps \(steps) must be a multiple of the factor \(factor)")
        }
        var v = factor
        while v < steps { v *= factor }
        guard v % steps == 0 else {
            throw LumosError.invalid("llquantize() steps \(steps) must evenly divide a power of the factor \(factor)")
        }
        var power: Int64 = 1
        for _ in 0..<(high + 1) {
            let (p, overflow) = power.multipliedReportingOverflow(by: factor)
            if overflow { throw LumosError.invalid("llquantize() factor \(factor) to the power \(high + 1) overflows 64 bits") }
            power = p
        }
        self.factor = UInt16(factor)
        self.low = UInt16(low)
        self.high = UInt16(high)
        self.steps = UInt16(steps)
        self.count = Self.bucketIndex(factor: factor, low: low, high: high, steps: steps, value: Int64.max) + 1
    }

    public func bucket(for value: Int64) -> Int {
        Self.bucketIndex(factor: Int64(factor), low: Int64(low), high: Int64(high), steps: Int64(steps), value: value)
    }

    /// Walks the orders of magnitude from factor^low to factor^(high+1); each order is split
    /// into min(steps, factor^order) buckets of which the first 1/factor were already covered
    /// by the previous order.
    static func bucketIndex(factor: Int64, low: Int64, high: Int64, steps: Int64, value: Int64) -> Int {
        var this: Int64 = 1
        for _ in 0..<low { this *= factor }
        var last = this
        if value < last { return 0 }
        this *= factor
        var base: Int64 = 1
        var order = low
        var v = value
        while order <= high {
            let nbuckets = this > steps ? steps : this
            let (next, overflow) = this.multipliedReportingOverflow(by: factor)
            if overflow { v = Swift.min(v, this - 1) }
            if v < this {
                return Int(base + (v - last) / (this / nbuckets))
            }
            base += nbuckets - nbuckets / factor
            last = this
            this = overflow ? Int64.max : next
            order += 1
        }
        return Int(base)
    }

    /// The rows DTrace prints: the value column for each bucket index (underflow "< x",
    /// then each bucket's lower bound, then ">= x").
    public var labels: [String] {
        var out: [String] = []
        var value: Int64 = 1
        for _ in 0..<Int(low) { value *= Int64(factor) }
        out.append("< \(value)")
        var next = value * Int64(factor)
        var step = next > Int64(steps) ? next / Int64(steps) : 1
        var order = Int(low)
        while order <= Int(high) {
            out.append("\(value)")
            value += step
            if value != next { continue }
            next = value &* Int64(factor)
            step = next > Int64(steps) ? next / Int64(steps) : 1
            order += 1
        }
        out.append(">= \(value)")
        return out
    }

    /// The lower bound of each bucket (the underflow bucket counts as 0), for sorting.
    func lowerBounds() -> [Int64] {
        labels.enumerated().map { i, s in
            if i == 0 { return 0 }
            return Int64(s.split(separator: " ").last.map(String.init) ?? "0") ?? 0
        }
    }
}
