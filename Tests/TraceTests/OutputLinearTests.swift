import Testing
@testable import Trace

/// Golden tests of lquantize() and llquantize() output.
@Suite struct OutputLinearTests {
    static let header = "\n           value  ------------- Distribution ------------- count    \n"

    static func counts(_ b: LinearBuckets, _ values: [Int64]) -> [Int64] {
        var c = [Int64](repeating: 0, count: b.count)
        for v in values { c[b.bucket(for: v)] += 1 }
        return c
    }

    @Test func guideExampleGnomeSession() throws {
        // DTrace guide, lquantize(arg0, 0, 100, 1) of write() file descriptors.
        let b = try LinearBuckets(low: 0, high: 100, step: 1)
        let agg = Aggregation(name: "fds", records: [
            AggregationRecord(keys: [.string("gnome-session")], value: .lquantize(b, Self.counts(b, Array(repeating: 26, count: 9)))),
        ])
        let expected = "  gnome-session                                     "
            + Self.header
            + "              25 |                                         0        \n"
            + "              26 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@ 9        \n"
            + "              27 |                                         0        \n"
            + "\n"
        #expect(AggregationText.defaultLayout(agg) == expected)
    }

    @Test func underflowAndOverflowRows() throws {
        let b = try LinearBuckets(low: 0, high: 10, step: 2)
        #expect(b.levels == 5)
        #expect(b.count == 7)
        let text = DistributionText.lquantize(b, Self.counts(b, [-5, 3, 100, 100]))
        let expected = Self.header
            + "             < 0 |@@@@@@@@@@                               1        \n"
            + "               0 |                                         0        \n"
            + "               2 |@@@@@@@@@@                               1        \n"
            + "               4 |                                         0        \n"
            + "               6 |                                         0        \n"
            + "               8 |                                         0        \n"
            + "           >= 10 |@@@@@@@@@@@@@@@@@@@@                     2        \n"
        #expect(text == expected)
    }

    @Test func onlyUnderflow() throws {
        let b = try LinearBuckets(low: 10, high: 20, step: 5)
        let expected = Self.header
            + "            < 10 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@ 4        \n"
            + "              10 |                                         0        \n"
        #expect(DistributionText.lquantize(b, Self.counts(b, [1, 2, 3, 4])) == expected)
    }

    @Test func emptyShowsFirstThreeRows() throws {
        let b = try LinearBuckets(low: -10, high: 10, step: 10)
        let expected = Self.header
            + "           < -10 |                                         0        \n"
            + "             -10 |                                         0        \n"
            + "               0 |                                         0        \n"
        #expect(DistributionText.lquantize(b, []) == expected)
    }

    @Test func rejectsBadRanges() {
        #expect(throws: (any Error).self) { try LinearBuckets(low: 10, high: 10) }
        #expect(throws: (any Error).self) { try LinearBuckets(low: 0, high: 10, step: 0) }
        #expect(throws: (any Error).self) { try LinearBuckets(low: 0, high: 10, step: 20) }
    }

    @Test func logLinearLayout() throws {
        let b = try LogLinearBuckets(factor: 10, low: 0, high: 2, steps: 10)
        #expect(b.count == 29)
        #expect(b.bucket(for: 0) == 0)
        #expect(b.bucket(for: 1) == 1)
        #expect(b.bucket(for: 5) == 5)
        #expect(b.bucket(for: 9) == 9)
        #expect(b.bucket(for: 10) == 10)
        #expect(b.bucket(for: 55) == 14)
        #expect(b.bucket(for: 999) == 27)
        #expect(b.bucket(for: 1000) == 28)
        #expect(b.bucket(for: Int64.max) == 28)
        #expect(b.labels.first == "< 1")
        #expect(b.labels[14] == "50")
        #expect(b.labels.last == ">= 1000")
    }

    @Test func logLinearRows() throws {
        let b = try LogLinearBuckets(factor: 10, low: 0, high: 2, steps: 10)
        var c = [Int64](repeating: 0, count: b.count)
        for v: Int64 in [7, 55, 55, 5000] { c[b.bucket(for: v)] += 1 }
        let text = DistributionText.llquantize(b, c)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[1] == "           value  ------------- Distribution ------------- count    ")
        #expect(lines[2] == "               6 |                                         0        ")
        #expect(lines[3] == "               7 |@@@@@@@@@@                               1        ")
        #expect(lines.contains("              50 |@@@@@@@@@@@@@@@@@@@@                     2        "))
        #expect(lines[lines.count - 2] == "         >= 1000 |@@@@@@@@@@                               1        ")
        #expect(lines.last == "")
        // 6 through 9, 10 through 90, 100 through 900, then the overflow row.
        #expect(lines.count == 2 + 4 + 9 + 9 + 1 + 1)
    }

    @Test func logLinearUnderflowAndCoarseLowOrders() throws {
        // factor 2, steps 4: each order [2^k, 2^(k+1)) gets the upper half of a 4-way split
        // of [0, 2^(k+1)), so 2 new buckets per order; the lowest order is limited to 2 values.
        let b = try LogLinearBuckets(factor: 2, low: 1, high: 3, steps: 4)
        #expect(b.labels == ["< 2", "2", "3", "4", "6", "8", "12", ">= 16"])
        #expect(b.count == 8)
        #expect(b.bucket(for: 1) == 0)
        #expect(b.bucket(for: 3) == 2)
        #expect(b.bucket(for: 7) == 4)
        #expect(b.bucket(for: 11) == 5)
        #expect(b.bucket(for: 16) == 7)
        var c = [Int64](repeating: 0, count: b.count)
        c[0] = 1
        let expected = Self.header
            + "             < 2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@ 1        \n"
            + "               2 |                                         0        \n"
        #expect(DistributionText.llquantize(b, c) == expected)
    }

    @Test func rejectsBadLogLinear() {
        #expect(throws: (any Error).self) { try LogLinearBuckets(factor: 1, low: 0, high: 2, steps: 10) }
        #expect(throws: (any Error).self) { try LogLinearBuckets(factor: 10, low: 3, high: 2, steps: 10) }
        #expect(throws: (any Error).self) { try LogLinearBuckets(factor: 10, low: 0, high: 2, steps: 15) }
        #expect(throws: (any Error).self) { try LogLinearBuckets(factor: 10, low: 0, high: 30, steps: 10) }
    }
}
