import Testing
@testable import Trace

/// Golden tests of quantize() output. The first expectation is the example in the DTrace
/// guide ("quantize", write() latency per process), copied byte for byte including the
/// trailing spaces of the header and count columns.
@Suite struct OutputQuantizeTests {
    static let header = "\n           value  ------------- Distribution ------------- count    \n"

    static func counts(_ pairs: [Int64: Int64]) -> [Int64] {
        var c = [Int64](repeating: 0, count: PowerOfTwoBuckets.count)
        for (value, n) in pairs { c[PowerOfTwoBuckets.bucket(for: value)] += n }
        return c
    }

    @Test func guideExampleBash() {
        let agg = Aggregation(name: "time", records: [
            AggregationRecord(keys: [.string("bash")], value: .quantize(Self.counts([16384: 4, 131072: 1]))),
        ])
        let expected = "  bash                                              "
            + Self.header
            + "            8192 |                                         0        \n"
            + "           16384 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@         4        \n"
            + "           32768 |                                         0        \n"
            + "           65536 |                                         0        \n"
            + "          131072 |@@@@@@@@                                 1        \n"
            + "          262144 |                                         0        \n"
            + "\n"
        #expect(AggregationText.defaultLayout(agg) == expected)
    }

    @Test func guideExampleRoundsBars() {
        // 5, 5, 4, 1 of 15: 13.3 -> 13, 10.7 -> 11, 2.7 -> 3 columns.
        let text = DistributionText.quantize(Self.counts([8192: 5, 16384: 5, 32768: 4, 65536: 1]))
        let expected = Self.header
            + "            4096 |                                         0        \n"
            + "            8192 |@@@@@@@@@@@@@                            5        \n"
            + "           16384 |@@@@@@@@@@@@@                            5        \n"
            + "           32768 |@@@@@@@@@@@                              4        \n"
            + "           65536 |@@@                                      1        \n"
            + "          131072 |                                         0        \n"
        #expect(text == expected)
    }

    @Test func bucketsOfEdgeValues() {
        #expect(PowerOfTwoBuckets.bucket(for: 0) == 63)
        #expect(PowerOfTwoBuckets.bucket(for: 1) == 64)
        #expect(PowerOfTwoBuckets.bucket(for: 2) == 65)
        #expect(PowerOfTwoBuckets.bucket(for: 3) == 65)
        #expect(PowerOfTwoBuckets.bucket(for: 4) == 66)
        #expect(PowerOfTwoBuckets.bucket(for: -1) == 62)
        #expect(PowerOfTwoBuckets.bucket(for: -2) == 61)
        #expect(PowerOfTwoBuckets.bucket(for: -3) == 61)
        #expect(PowerOfTwoBuckets.bucket(for: -4) == 60)
        #expect(PowerOfTwoBuckets.bucket(for: Int64.max) == 126)
        #expect(PowerOfTwoBuckets.bucket(for: Int64.min) == 0)
        #expect(PowerOfTwoBuckets.value(ofBucket: 0) == -(Int64(1) << 62))
        #expect(PowerOfTwoBuckets.value(ofBucket: 126) == Int64(1) << 62)
        #expect(PowerOfTwoBuckets.value(ofBucket: 61) == -2)
    }

    @Test func zeroOnly() {
        let expected = Self.header
            + "              -1 |                                         0        \n"
            + "               0 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@ 3        \n"
            + "               1 |                                         0        \n"
        #expect(DistributionText.quantize(Self.counts([0: 3])) == expected)
    }

    @Test func valueOneShowsZeroAndTwo() {
        let expected = Self.header
            + "               0 |                                         0        \n"
            + "               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@ 1        \n"
            + "               2 |                                         0        \n"
        #expect(DistributionText.quantize(Self.counts([1: 1])) == expected)
    }

    @Test func singleBucket() {
        let expected = Self.header
            + "               2 |                                         0        \n"
            + "               4 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@ 7        \n"
            + "               8 |                                         0        \n"
        #expect(DistributionText.quantize(Self.counts([5: 7])) == expected)
    }

    @Test func emptyPrintsRowsAroundZero() {
        let expected = Self.header
            + "              -1 |                                         0        \n"
            + "               0 |                                         0        \n"
            + "               1 |                                         0        \n"
        #expect(DistributionText.quantize([]) == expected)
    }

    @Test func negativeValues() {
        // -3 lands in the -2 bucket (values in (-4, -2]); the row below the lowest and above
        // the highest non-empty bucket are printed as zero rows.
        let expected = Self.header
            + "              -4 |                                         0        \n"
            + "              -2 |@@@@@@@@@@                               1        \n"
            + "              -1 |@@@@@@@@@@                               1        \n"
            + "               0 |@@@@@@@@@@                               1        \n"
            + "               1 |@@@@@@@@@@                               1        \n"
            + "               2 |                                         0        \n"
        #expect(DistributionText.quantize(Self.counts([-3: 1, -1: 1, 0: 1, 1: 1])) == expected)
    }

    @Test func gapsBetweenBucketsArePrinted() {
        let text = DistributionText.quantize(Self.counts([2: 1, 64: 1]))
        let values = text.split(separator: "\n").dropFirst().map { $0.split(separator: " ").first.map(String.init) ?? "" }
        #expect(values == ["1", "2", "4", "8", "16", "32", "64", "128"])
    }

    @Test func negativeIncrementsDrawLeftBars() {
        // quantize(x, -1): only negative counts; bars grow leftwards into the value column side.
        var c = [Int64](repeating: 0, count: PowerOfTwoBuckets.count)
        c[PowerOfTwoBuckets.bucket(for: 4)] = -2
        let blank = String(repeating: " ", count: 40)
        let expected = Self.header
            + "               2 " + blank + "| 0        \n"
            + "               4 @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@| -2       \n"
            + "               8 " + blank + "| 0        \n"
        #expect(DistributionText.quantize(c) == expected)
    }

    @Test func normalizedCountsAreDivided() {
        let text = DistributionText.quantize(Self.counts([5: 10]), normal: 5)
        #expect(text.contains("               4 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@ 2        \n"))
    }

    @Test func seedTalkShape() {
        // The seed talk's MySQL latency histogram: 1024..33554432 with zero rows at both ends,
        // and bars scaled to the 3499 total (532 -> 6 columns, 428 -> 5, 33 -> none).
        let pairs: [Int64: Int64] = [2048: 16, 4096: 93, 8192: 19, 16384: 232, 32768: 172, 65536: 532,
                                     131072: 1513, 262144: 428, 524288: 258, 1048576: 127, 2097152: 47,
                                     4194304: 20, 8388608: 33, 16777216: 9]
        let lines = DistributionText.quantize(Self.counts(pairs)).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[2] == "            1024 |                                         0        ")
        #expect(lines[8] == "           65536 |@@@@@@                                   532      ")
        #expect(lines[10] == "          262144 |@@@@@                                    428      ")
        #expect(lines[15] == "         8388608 |                                         33       ")
        #expect(lines[17] == "        33554432 |                                         0        ")
        #expect(lines.count == 19)
    }
}
