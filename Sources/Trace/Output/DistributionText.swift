/// The ASCII distributions of quantize(), lquantize() and llquantize(), byte for byte as
/// DTrace prints them (DTrace guide, "Aggregations"; libdtrace dt_print_quantize and
/// friends):
///
///                value  ------------- Distribution ------------- count
///                 1024 |                                         0
///                 2048 |@@@@@@@@@@@@@@@@@@@@                     2
///                 4096 |                                         0
///
/// Public API:
///   DistributionText.quantize(_ counts:, normal:) -> String
///   DistributionText.lquantize(_ buckets:, _ counts:, normal:) -> String
///   DistributionText.llquantize(_ buckets:, _ counts:, normal:) -> String
/// Each result starts with "\n" (the header follows the keys on a new line) and ends with
/// the last row's "\n", exactly as DTrace writes it.
public enum DistributionText {
    /// Header: "%16s %41s %-9s" of "value", the ruler and "count" (the ruler is 40 wide,
    /// so it gets one leading space, and "count" is padded to 9).
    static let header = "\n" + CText.pad("value", 16) + " " + CText.pad("------------- Distribution -------------", 41)
        + " " + CText.pad("count", -9) + "\n"

    public static func quantize(_ counts: [Int64], normal: Int64 = 1) -> String {
        var data = counts
        if data.count < PowerOfTwoBuckets.count {
            data += [Int64](repeating: 0, count: PowerOfTwoBuckets.count - data.count)
        }
        let n = PowerOfTwoBuckets.count
        var first = 0, last = n - 1
        while first < n - 1 && data[first] == 0 { first += 1 }
        if first == n - 1 {
            // No data (cleared, or only negative increments): DTrace shows the rows around 0.
            first = PowerOfTwoBuckets.zeroIndex - 1
            last = PowerOfTwoBuckets.zeroIndex + 1
        } else {
            if first > 0 { first -= 1 }
            while last > 0 && data[last] == 0 { last -= 1 }
            if last < n - 1 { last += 1 }
        }
        let bars = Bars(data[first...last])
        var out = header
        for i in first...last {
            out += CText.format("%16lld ", PowerOfTwoBuckets.value(ofBucket: i))
            out += bars.line(data[i], normal: normal)
        }
        return out
    }

    public static func lquantize(_ buckets: LinearBuckets, _ counts: [Int64], normal: Int64 = 1) -> String {
        var data = counts
        if data.count < buckets.count { data += [Int64](repeating: 0, count: buckets.count - data.count) }
        let levels = buckets.levels
        var first = 0, last = levels + 1
        while first <= levels + 1 && data[first] == 0 { first += 1 }
        if first > levels + 1 {
            first = 0
            last = 2
        } else {
            if first > 0 { first -= 1 }
            while last > 0 && data[last] == 0 { last -= 1 }
            if last < levels + 1 { last += 1 }
        }
        let bars = Bars(data[first...last])
        var out = header
        for i in first...last {
            out += CText.pad(buckets.label(ofBucket: i), 16) + " "
            out += bars.line(data[i], normal: normal)
        }
        return out
    }

    public static func llquantize(_ buckets: LogLinearBuckets, _ counts: [Int64], normal: Int64 = 1) -> String {
        var data = counts
        if data.count < buckets.count { data += [Int64](repeating: 0, count: buckets.count - data.count) }
        let levels = buckets.count
        var first = 0, last = levels - 1
        while first < levels && data[first] == 0 { first += 1 }
        if first == levels {
            first = 0
            last = 1
        } else {
            if first > 0 { first -= 1 }
            while last > 0 && data[last] == 0 { last -= 1 }
            if last < levels - 1 { last += 1 }
        }
        let labels = buckets.labels
        let bars = Bars(data[first...last])
        var out = header
        for i in first...last {
            out += CText.pad(labels[i], 16) + " "
            out += bars.line(data[i], normal: normal)
        }
        return out
    }
}

/// One row's bar and count (libdtrace dt_print_quantline): 40 columns of '@' scaled to the
/// total of the printed rows; when counts of both signs exist (negative increments) the bar
/// is split in two 20-column halves around a centre line.
struct Bars {
    let total: Double
    let positives: Bool
    let negatives: Bool
    static let width = 40

    init(_ rows: ArraySlice<Int64>) {
        var t = 0.0
        var p = false, n = false
        for v in rows {
            t += Double(v.magnitude)
            if v > 0 { p = true }
            if v < 0 { n = true }
        }
        total = t
        positives = p
        negatives = n
    }

    func line(_ value: Int64, normal: Int64) -> String {
        let shown = value / Swift.max(normal, 1)
        let count = CText.format("%-9lld", shown)
        func depth(_ len: Int) -> Int {
            guard total > 0 else { return 0 }
            return Int((Double(value.magnitude) * Double(len)) / total + 0.5)
        }
        func at(_ n: Int) -> String { String(repeating: "@", count: n) }
        func sp(_ n: Int) -> String { String(repeating: " ", count: n) }
        let len = Bars.width
        if !negatives {
            let d = positives ? depth(len) : 0
            return "|" + at(d) + sp(len - d) + " " + count + "\n"
        }
        if !positives {
            let d = depth(len)
            return sp(len - d) + at(d) + "| " + count + "\n"
        }
        let half = len / 2
        let d = depth(half)
        if value <= 0 {
            return sp(half - d) + at(d) + "|" + sp(half) + " " + count + "\n"
        }
        return sp(20) + "|" + at(d) + sp(half - d) + " " + count + "\n"
    }
}
