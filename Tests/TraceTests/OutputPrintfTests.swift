import Glibc
import Testing
@testable import Trace

/// printf()/printa() format strings, trace() and the dtrace notices.
@Suite struct OutputPrintfTests {
    func f(_ format: String, _ args: TraceValue...) throws -> String {
        try PrintfFormat(format).render(args)
    }

    @Test func integerConversions() throws {
        #expect(try f("%d|%i|%u", .integer(-5), .integer(7), .integer(-1)) == "-5|7|18446744073709551615")
        #expect(try f("%x %X %o", .integer(255), .integer(255), .integer(8)) == "ff FF 10")
        #expect(try f("%x", .integer(-1, size: 4, signed: true)) == "ffffffff")
        #expect(try f("%d", .integer(-1, size: 4, signed: false)) == "4294967295")
        #expect(try f("%5d|%-5d|%05d", .integer(42), .integer(42), .integer(42)) == "   42|42   |00042")
        #expect(try f("%p", .integer(0xffff_8000_1234)) == "ffff80001234")
        #expect(try f("%c%c", .integer(104), .integer(105)) == "hi")
        #expect(try f("%lld %llu %hd", .integer(1), .integer(2), .integer(3)) == "1 2 3")
        #expect(try f("%*d|%-*d", .integer(4), .integer(1), .integer(3), .integer(2)) == "   1|2  ")
        #expect(try f("100%%") == "100%")
    }

    @Test func stringConversions() throws {
        #expect(try f("%s", .string("bash")) == "bash")
        #expect(try f("%-10s|", .string("bash")) == "bash      |")
        #expect(try f("%10s|", .string("bash")) == "      bash|")
        #expect(try f("%.2s", .string("bash")) == "ba")
        #expect(try f("%S", .string("a\tb\n\u{1}")) == "a\\tb\\n\\001")
    }

    @Test func floatConversions() throws {
        #expect(try f("%e", .integer(1500)) == "1.500000e+03")
        #expect(try f("%.1f", .integer(3)) == "3.0")
        #expect(try f("%g", .integer(100000)) == "100000")
    }

    @Test func symbolFallbacks() throws {
        #expect(try f("%a", .integer(0x1234)) == "0x1234")
        let fmt = try PrintfFormat("%A")
        #expect(fmt.render([.integer(0x401000)], symbols: { $0 == 0x401000 ? "a.out`main" : nil }) == "a.out`main")
    }

    @Test func walltimeIsYearFirst() throws {
        setenv("TZ", "UTC", 1)
        tzset()
        // 2026-11-25 09:07:54 UTC; %Y prints as DTrace's adb-style "2026 Nov 25 09:07:54".
        #expect(try f("%Y", .integer(1_795_597_674 * 1_000_000_000)) == "2026 Nov 25 09:07:54")
        // Single-digit days are space-padded, as ctime() does.
        #expect(try f("%Y", .integer(1_764_637_200 * 1_000_000_000)) == "2025 Dec  2 01:00:00")
    }

    @Test func argumentCounts() throws {
        #expect(try PrintfFormat("%s %d %*d %%\n").valueArgumentCount == 4)
        #expect(try PrintfFormat("%-20s %@d\n").valueArgumentCount == 1)
        #expect(try PrintfFormat("%@d").conversions.first?.aggregation == true)
    }

    @Test func undefinedConversionIsAnError() {
        #expect(throws: (any Error).self) { try PrintfFormat("%z") }
        #expect(throws: (any Error).self) { try PrintfFormat("abc %") }
        #expect(throws: (any Error).self) { try PrintfFormat("%1$d") }
    }

    @Test func printaWithFormat() throws {
        let agg = Aggregation(records: [
            AggregationRecord(keys: [.string("bash"), .integer(12, size: 4)], value: .count(3)),
            AggregationRecord(keys: [.string("sh"), .integer(7, size: 4)], value: .count(1)),
        ])
        let fmt = try PrintfFormat("%-8s %5d %@8d\n")
        #expect(fmt.renderAggregation(agg) == "sh           7        1\nbash        12        3\n")
    }

    @Test func printaQuantizeWithFormat() throws {
        var b = [Int64](repeating: 0, count: PowerOfTwoBuckets.count)
        b[PowerOfTwoBuckets.bucket(for: 5)] = 1
        let agg = Aggregation(records: [AggregationRecord(keys: [.string("read")], value: .quantize(b))])
        let text = try PrintfFormat("%s%@d\n").renderAggregation(agg)
        #expect(text.hasPrefix("read\n           value  ------------- Distribution ------------- count    \n"))
        #expect(text.hasSuffix("               8 |                                         0        \n\n"))
    }

    @Test func traceLayouts() {
        #expect(TraceText.trace(.integer(42), quiet: false) == "               42")
        #expect(TraceText.trace(.integer(42), quiet: true) == "42")
        #expect(TraceText.trace(.integer(-1, size: 4), quiet: false) == "       -1")
        #expect(TraceText.trace(.string("hello"), quiet: false) == "  hello                            ")
        #expect(TraceText.trace(.string("hello"), quiet: true) == "hello")
    }

    @Test func headingAndProbeColumns() {
        #expect(TraceText.heading == "CPU     ID                    FUNCTION:NAME\n")
        #expect(TraceText.probeColumn(cpu: 0, id: 1, function: "", name: "BEGIN") == "  0      1                           :BEGIN ")
        #expect(TraceText.probeColumn(cpu: 1, id: 312, function: "read", name: "entry") == "  1    312                       read:entry ")
    }

    @Test func matchedNotice() {
        #expect(TraceText.matched(description: "syscall:::entry { @[execname] = count(); }", count: 233)
                == "dtrace: description 'syscall:::entry ' matched 233 probes\n")
        #expect(TraceText.matched(description: "BEGIN", count: 1) == "dtrace: description 'BEGIN' matched 1 probe\n")
        #expect(TraceText.matched(description: "syscall::read:entry/pid == 1/{}", count: 1)
                == "dtrace: description 'syscall::read:entry' matched 1 probe\n")
        #expect(TraceText.matched(script: "./wrquantize.d", count: 2) == "dtrace: script './wrquantize.d' matched 2 probes\n")
    }

    @Test func probeListing() {
        #expect(ProbeListText.header == "   ID   PROVIDER            MODULE                          FUNCTION NAME\n")
        #expect(ProbeListText.row(id: 1, provider: "dtrace", module: "", function: "", name: "BEGIN")
                == "    1     dtrace                                                     BEGIN\n")
    }
}
