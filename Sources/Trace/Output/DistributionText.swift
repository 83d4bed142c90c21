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
        let data = padded(counts, to: PowerOfTwoBuckets.count)
        // The scan for the first row stops short of the last bucket, so data only there
        // counts as "no data" (rows around 0), as in libdtrace.
        let z = PowerOfTwoBuckets.zeroIndex
        let rows = rowRange(data, scanLimit: data.count - 1, empty: (z - 1)...(z + 1))
        return render(data, rows, normal: normal) { CText.format("%16lld ", PowerOfTwoBuckets.value(ofBucket: $0)) }
    }

    public static func lquantize(_ buckets: LinearBuckets, _ counts: [Int64], normal: Int64 = 1) -> String {
        let data = padded(counts, to: buckets.count)
        let rows = rowRange(data, scanLimit: data.count, empty: 0...2)
        return render(data, rows, normal: normal) { CText.pad(buckets.label(ofBucket: $0), 16) + " " }
    }

    public static func llquantize(_ buckets: LogLinearBuckets, _ counts: [Int64], normal: Int64 = 1) -> String {
        let data = padded(counts, to: buckets.count)
        let labels = buckets.labels
        let rows = rowRange(data, scanLimit: data.count, empty: 0...1)
        return render(data, rows, normal: normal) { CText.pad(labels[$0], 16) + " " }
    }

    static func padded(_ counts: [Int64], to n: Int) -> [Int64] {
        counts.count >= n ? counts : counts + [Int64](repeating: 0, count: n - counts.count)
    }

    /// The rows DTrace prints: from one below the first non-empty bucket to one above the
    /// last, or `empty` when no bucket before `scanLimit` has data.
    static func rowRange(_ data: [Int64], scanLimit: Int, empty: ClosedRange<Int>) -> ClosedRange<Int> {
        var first = 0
        while first < scanLimit && data[first] == 0 { first += 1 }
        if first == scanLimit { return empty }
        if first > 0 { first -= 1 }
        var last = data.count - 1
        while last > 0 && data[last] == 0 { last -= 1 }
        if last < data.count - 1 { last += 1 }
        return first...last
    }

    static func render(_ data: [Int64], _ rows: ClosedRange<Int>, normal: Int64, label: (Int) -> String) -> String {
        let bars = Bars(data[rows])
        var out = header
        for i in rows { out += label(i) + bars.line(data[i], normal: normal) }
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
