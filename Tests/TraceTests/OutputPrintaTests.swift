import Testing
@testable import Trace

/// printa()'s default layout and DTrace's aggregation ordering.
@Suite struct OutputPrintaTests {
    static func pad(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: max(0, w - s.count)) }
    static func right(_ s: String, _ w: Int) -> String { String(repeating: " ", count: max(0, w - s.count)) + s }

    @Test func countsByExecnameSortedByValue() {
        let agg = Aggregation(records: [
            AggregationRecord(keys: [.string("sshd")], value: .count(6)),
            AggregationRecord(keys: [.string("bash")], value: .count(17)),
            AggregationRecord(keys: [.string("dtrace")], value: .count(1)),
        ])
        let expected =
            "  dtrace                                                            1\n"
            + "  sshd                                                              6\n"
            + "  bash                                                             17\n"
        #expect(AggregationText.defaultLayout(agg) == expected)
    }

    @Test func tiesAreOrderedByKey() {
        let agg = Aggregation(records: [
            AggregationRecord(keys: [.string("zsh")], value: .count(2)),
            AggregationRecord(keys: [.string("awk")], value: .count(2)),
            AggregationRecord(keys: [.string("aw")], value: .count(2)),
        ])
        let keys = agg.sorted().map { $0.keys }
        #expect(keys == [[.string("aw")], [.string("awk")], [.string("zsh")]])
    }

    @Test func integerKeysCompareUnsignedAndUseSizeWidths() {
        let agg = Aggregation(records: [
            AggregationRecord(keys: [.integer(-1, size: 4)], value: .sum(5)),
            AggregationRecord(keys: [.integer(7, size: 4)], value: .sum(5)),
        ])
        // -1 is 0xffffffff as a 4-byte key, so it sorts after 7; 4-byte keys print in 8 columns.
        let expected = "        7                5\n" + "       -1                5\n"
        #expect(AggregationText.defaultLayout(agg) == expected)
    }

    @Test func tupleKeys() {
        let agg = Aggregation(records: [
            AggregationRecord(keys: [.string("bash"), .integer(1234, size: 4), .integer(3, size: 8)], value: .count(9)),
            AggregationRecord(keys: [.string("sh"), .integer(99, size: 4), .integer(0, size: 8)], value: .count(2)),
        ])
        let expected =
            Self.pad("  sh", 52) + "       99" + Self.right("0", 17) + Self.right("2", 17) + "\n"
            + Self.pad("  bash", 52) + "     1234" + Self.right("3", 17) + Self.right("9", 17) + "\n"
        #expect(AggregationText.defaultLayout(agg) == expected)
    }

    @Test func unkeyedScalar() {
        let agg = Aggregation(records: [AggregationRecord(value: .sum(123456))])
        #expect(AggregationText.defaultLayout(agg) == "           123456\n")
    }

    @Test func averagesMinMaxStddev() {
        #expect(AggregationText.value(.avg(count: 3, total: 10)) == "                3")
        #expect(AggregationText.value(.avg(count: 0, total: 0)) == "                0")
        #expect(AggregationText.value(.min(-5)) == "               -5")
        #expect(AggregationText.value(.max(Int64.max)) == " 9223372036854775807")
        // values 2, 4, 4, 4, 5, 5, 7, 9: mean 5, population stddev 2.
        let xs: [Int64] = [2, 4, 4, 4, 5, 5, 7, 9]
        let sq = xs.reduce(UInt128(0)) { $0 + UInt128($1 * $1) }
        #expect(AggregationText.value(.stddev(count: 8, total: 40, sumOfSquares: sq)) == "                2")
        #expect(AggregationText.value(.count(10), normal: 4) == "                2")
    }

    @Test func sortsDistributionsByWeightedSum() {
        var small = [Int64](repeating: 0, count: PowerOfTwoBuckets.count)
        small[PowerOfTwoBuckets.bucket(for: 1000)] = 10
        var large = [Int64](repeating: 0, count: PowerOfTwoBuckets.count)
        large[PowerOfTwoBuckets.bucket(for: 100_000)] = 1
        let agg = Aggregation(records: [
            AggregationRecord(keys: [.string("large")], value: .quantize(large)),
            AggregationRecord(keys: [.string("small")], value: .quantize(small)),
        ])
        #expect(agg.sorted().map { $0.keys } == [[.string("small")], [.string("large")]])
    }

    @Test func stackKeysPrintFramesIndented() {
        let agg = Aggregation(records: [AggregationRecord(keys: [.stack(["libc.so.6`write+0x10", "bash`main"])], value: .count(3))])
        let expected = "\n              libc.so.6`write+0x10\n              bash`main\n                3\n"
        #expect(AggregationText.defaultLayout(agg) == expected)
    }

    @Test func joinedAggregationsShareKeys() {
        let a = Aggregation(name: "a", records: [
            AggregationRecord(keys: [.string("x")], value: .count(1)),
            AggregationRecord(keys: [.string("y")], value: .count(5)),
        ])
        let b = Aggregation(name: "b", records: [AggregationRecord(keys: [.string("y")], value: .sum(100))])
        let expected = Self.pad("  x", 52) + Self.right("1", 17) + Self.right("0", 17) + "\n"
            + Self.pad("  y", 52) + Self.right("5", 17) + Self.right("100", 17) + "\n"
        #expect(AggregationText.defaultLayout(joined: [a, b]) == expected)
    }

    @Test func truncKeepsLargest() {
        let agg = Aggregation(records: (1...5).map { AggregationRecord(keys: [.integer(Int64($0))], value: .count(Int64($0 * 10))) })
        #expect(agg.truncated(to: 2).sorted().map(\.value) == [.count(40), .count(50)])
        #expect(agg.truncated(to: -1).sorted().map(\.value) == [.count(10)])
        #expect(agg.truncated(to: 0).records.isEmpty)
        #expect(agg.cleared().records.allSatisfy { $0.value == .count(0) })
    }

    @Test func mergingPerCPUValues() {
        #expect(AggregationValue.count(2).merged(with: .count(3)) == .count(5))
        #expect(AggregationValue.min(2).merged(with: .min(-3)) == .min(-3))
        #expect(AggregationValue.max(2).merged(with: .max(-3)) == .max(2))
        #expect(AggregationValue.avg(count: 1, total: 4).merged(with: .avg(count: 2, total: 6)) == .avg(count: 3, total: 10))
        #expect(AggregationValue.quantize([1, 2]).merged(with: .quantize([3, 4])) == .quantize([4, 6]))
    }
}
