/// printa()'s default layout and the aggregations dtrace prints when tracing ends
/// (DTrace guide "Aggregations" / "Output Formatting"; libdtrace dt_print_aggs): one line
/// per record, sorted by value, each key printed as DTrace prints a traced datum of its
/// type and the value right-aligned in 16 columns:
///
///       bash                                                              3
///              1234               17
///
/// Public API:
///   AggregationText.defaultLayout(_ aggregation: Aggregation) -> String
///   AggregationText.defaultLayout(joined: [Aggregation]) -> String      -- printa(@a, @b)
///   AggregationText.endOfTracing(_ aggregations: [Aggregation]) -> String
///   AggregationText.key(_:) / value(_:normal:)                          -- single datums
public enum AggregationText {
    /// Every record of one aggregation in DTrace order; "" when it has no records.
    public static func defaultLayout(_ aggregation: Aggregation) -> String {
        var out = ""
        for r in aggregation.sorted() {
            for k in r.keys { out += key(k) }
            out += value(r.value, normal: aggregation.normal)
            out += "\n"
        }
        return out
    }

    /// printa(@a, @b, ...) without a format: the union of keys, each line the keys then every
    /// aggregation's value in order (zero where an aggregation has no such key), sorted by
    /// the first aggregation's value, then the next, then the keys.
    public static func defaultLayout(joined aggregations: [Aggregation]) -> String {
        guard aggregations.count > 1 else { return aggregations.first.map { defaultLayout($0) } ?? "" }
        let bundles = joinedBundles(aggregations)
        var out = ""
        for b in bundles {
            for k in b.keys { out += key(k) }
            for (i, v) in b.values.enumerated() { out += value(v, normal: aggregations[i].normal) }
            out += "\n"
        }
        return out
    }

    /// What dtrace prints after tracing stops: each aggregation not already printed, in
    /// the order given (declaration order). The caller prints the "\n" that precedes it.
    public static func endOfTracing(_ aggregations: [Aggregation]) -> String {
        aggregations.map { defaultLayout($0) }.joined()
    }

    /// A key as libdtrace dt_print_datum prints it in an aggregation line.
    public static func key(_ k: AggregationKey) -> String {
        switch k {
        case let .integer(v, size):
            return CText.format(" %*lld", width(forSize: size), IntegerSize.signed(v, size: size))
        case let .string(s):
            // dt_print_bytes with width -50: " " + " " + "%-50s".
            return "  " + CText.pad(s, -50)
        case let .stack(frames):
            return StackText.frames(frames)
        }
    }

    /// An aggregation value as printed in the default layout.
    public static func value(_ v: AggregationValue, normal: Int64 = 1) -> String {
        let n = Swift.max(normal, 1)
        switch v {
        case let .count(x), let .sum(x), let .min(x), let .max(x):
            return CText.format(" %16lld", x / n)
        case let .avg(c, t):
            return CText.format(" %16lld", c == 0 ? 0 : t / n / c)
        case let .stddev(c, t, s):
            return CText.format(" %16llu", Statistics.stddev(count: c, total: t, sumOfSquares: s, normal: n))
        case let .quantize(b):
            return DistributionText.quantize(b, normal: n)
        case let .lquantize(l, b):
            return DistributionText.lquantize(l, b, normal: n)
        case let .llquantize(l, b):
            return DistributionText.llquantize(l, b, normal: n)
        }
    }

    /// Column width of an integer datum by its size (libdtrace's fmttab).
    static func width(forSize size: Int) -> Int32 {
        switch size {
        case 1: return 3
        case 2: return 5
        case 4: return 8
        default: return 16
        }
    }

    struct Bundle {
        var keys: [AggregationKey]
        var values: [AggregationValue]
    }

    static func joinedBundles(_ aggregations: [Aggregation]) -> [Bundle] {
        var order: [[AggregationKey]] = []
        var table: [[AggregationKey]: [AggregationValue?]] = [:]
        for (i, a) in aggregations.enumerated() {
            for r in a.records {
                if table[r.keys] == nil {
                    table[r.keys] = [AggregationValue?](repeating: nil, count: aggregations.count)
                    order.append(r.keys)
                }
                table[r.keys]![i] = r.value
            }
        }
        // A zero of the right function for aggregations that lack a key.
        let zeros: [AggregationValue] = aggregations.map { $0.records.first?.value.cleared ?? .count(0) }
        var bundles = order.map { k in
            Bundle(keys: k, values: table[k]!.enumerated().map { $1 ?? zeros[$0] })
        }
        bundles.sort { a, b in
            for (x, y) in zip(a.values, b.values) {
                let c = AggregationOrder.compareValues(x, y)
                if c != 0 { return c < 0 }
            }
            return AggregationOrder.compareKeys(a.keys, b.keys) < 0
        }
        return bundles
    }
}

/// stack()/ustack() as DTrace prints them: a newline, then one frame per line indented by
/// the stackindent option (14).
public enum StackText {
    public static let indent = 14

    public static func frames(_ frames: [String], indent: Int = StackText.indent) -> String {
        var out = "\n"
        for f in frames { out += String(repeating: " ", count: indent) + f + "\n" }
        return out
    }
}
