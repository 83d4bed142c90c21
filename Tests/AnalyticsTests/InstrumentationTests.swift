import Glibc
import LumosCore
import PostgresSupport
import Testing
@testable import Analytics
import Trace

let isRoot = getuid() == 0

func spec(_ json: String) throws -> InstrumentationSpec {
    try InstrumentationSpec(json: try JSONValue.parse(json, what: "test"))
}

/// An instrumentation is a D program: what each metric, predicate and decomposition generates.
@Suite struct DGenerationTests {
    @Test func threadSamplesBySubsecondPredicatedOnAZone() throws {
        let s = try spec(#"{"module": "cpu", "stat": "thread_samples", "predicate": {"eq": ["zonename", "web-1"]}, "decomposition": ["zonename", "subsecond"]}"#)
        #expect(s.dProgram == """
            profile-99hz
            /pid != 0 && (zonename == "web-1")/
            {
                @ca[zonename] = lquantize((walltimestamp % 1000000000) / 1000000, 0, 1000, 10);
            }

            """)
        #expect(s.decomposition == ["zonename", "subsecond"])
        #expect(s.effectiveQuantization == .linear(low: 0, high: 1000, step: 10))
    }

    @Test func scalarAndDiscreteForms() throws {
        let scalar = try spec(#"{"module": "cpu", "stat": "thread_samples"}"#)
        #expect(scalar.dProgram.contains("/pid != 0 && (1)/"))
        #expect(scalar.dProgram.contains("@ca = count();"))
        let byExec = try spec(#"{"module": "cpu", "stat": "thread_samples", "decomposition": ["execname"]}"#)
        #expect(byExec.dProgram.contains("@ca[execname] = count();"))
        #expect(byExec.effectiveQuantization == nil)
    }

    @Test func syscallLatencyIsTimedFromEntryToReturn() throws {
        let s = try spec(#"{"module": "syscall", "stat": "syscalls", "decomposition": ["syscall", "latency"], "predicate": {"and": [{"eq": ["zonename", "z"]}, {"gt": ["latency", 1000]}]}}"#)
        #expect(s.dProgram == """
            syscall:::entry
            {
                self->ca_sys_ts = timestamp;
            }

            syscall:::return
            /self->ca_sys_ts && ((zonename == "z") && ((timestamp - self->ca_sys_ts) > 1000))/
            {
                @ca[probefunc] = llquantize((timestamp - self->ca_sys_ts), 10, 2, 9, 10);
            }

            syscall:::return
            {
                self->ca_sys_ts = 0;
            }

            """)
    }

    @Test func quantizationAndOrPredicates() throws {
        let s = try spec(#"{"module": "fs", "stat": "logical_ops", "decomposition": ["latency"], "quantization": {"kind": "linear", "low": 0, "high": 100000, "step": 1000}, "predicate": {"or": [{"eq": ["execname", "cat"]}, {"eq": ["pid", 42]}]}}"#)
        #expect(s.dProgram.contains("/self->ca_fs_ts && ((execname == \"cat\") || (pid == 42))/"))
        #expect(s.dProgram.contains("@ca = lquantize((timestamp - self->ca_fs_ts), 0, 100000, 1000);"))
        #expect(s.dProgram.contains("syscall::read:entry,\nsyscall::write:entry"))
    }

    /// Every metric with each decomposition the API allows parses and compiles with the tracer
    /// (not loaded: the verifier runs in the integration test). postgresql.queries' USDT probes
    /// need a running server: a private cluster runs meanwhile when PostgreSQL is installed.
    @Test(.enabled(if: isRoot, "the probe catalogue reads tracefs")) func everyMetricCompiles() throws {
        let pg = canRunPostgres ? try PostgresCluster("ca-compile") : nil
        defer { pg?.stop() }
        let catalog = try KernelProbeCatalog()
        for m in Metric.catalogue where m.whenNoProbes == nil || pg != nil {
            let discrete = [nil] + m.fields.filter { $0.arity == .discrete }.map(\.name)
            let numeric = [nil] + m.fields.filter { $0.arity == .numeric }.map(\.name)
            for d in discrete {
                for n in numeric {
                    let s = try InstrumentationSpec(metric: m, predicate: .none, decomposition: [d, n].compactMap { $0 })
                    let compiler = DCompiler(catalog: catalog, syscallNumbers: catalog.syscallNumbers)
                    let script = try compiler.compile(try Parser.parse(s.dProgram))
                    #expect(script.aggregations.map(\.name) == ["ca"], "\(m.name) \(s.decomposition)")
                }
            }
        }
    }

    @Test func badInstrumentationsAreRefusedWithOneLine() throws {
        let bad = [
            #"{"module": "cpu"}"#,
            #"{"module": "cpu", "stat": "nope"}"#,
            #"{"module": "cpu", "stat": "thread_samples", "decomposition": ["nope"]}"#,
            #"{"module": "cpu", "stat": "thread_samples", "decomposition": ["zonename", "execname"]}"#,
            #"{"module": "cpu", "stat": "thread_samples", "decomposition": ["subsecond", "subsecond"]}"#,
            #"{"module": "cpu", "stat": "thread_samples", "predicate": {"eq": ["zonename", "a\"b"]}}"#,
            #"{"module": "cpu", "stat": "thread_samples", "predicate": {"eq": ["zonename", "a\\b"]}}"#,
            #"{"module": "cpu", "stat": "thread_samples", "predicate": {"lt": ["zonename", "a"]}}"#,
            #"{"module": "cpu", "stat": "thread_samples", "predicate": {"eq": ["pid", "one"]}}"#,
            #"{"module": "cpu", "stat": "thread_samples", "predicate": {"eq": ["pid", 1.5]}}"#,
            #"{"module": "cpu", "stat": "thread_samples", "predicate": {"xor": ["pid", 1]}}"#,
            #"{"module": "cpu", "stat": "thread_samples", "predicate": {"and": []}}"#,
            #"{"module": "cpu", "stat": "thread_samples", "predicate": "zonename == x"}"#,
            #"{"module": "cpu", "stat": "thread_samples", "granularity": 5}"#,
            #"{"module": "cpu", "stat": "thread_samples", "retention-time": 0}"#,
            #"{"module": "cpu", "stat": "thread_samples", "bogus": 1}"#,
            #"{"module": "cpu", "stat": "thread_samples", "quantization": {"kind": "linear", "low": 0, "high": 10, "step": 1}}"#,
            #"{"module": "cpu", "stat": "thread_samples", "decomposition": ["subsecond"], "quantization": {"kind": "linear", "low": 10, "high": 0, "step": 1}}"#,
            #"[1]"#,
        ]
        for text in bad {
            do {
                _ = try spec(text)
                Issue.record("accepted: \(text)")
            } catch let e as LumosError {
                #expect(e.kind == .invalidArgument, "\(text): \(e)")
                #expect(!e.message.contains("\n") && !e.message.isEmpty, "\(text): \(e.message)")
            }
        }
    }
}

/// Values, heatmaps and their details from known seconds (no kernel).
@Suite struct HeatmapTests {
    /// Two zones over three seconds of subsecond samples (10 ms buckets: index 1 is 0-9 ms).
    static func seconds(at t0: Int64) -> [SecondValues] {
        var a = [Int64](repeating: 0, count: 102), b = a
        a[1] = 5      // 0-9 ms
        a[51] = 2     // 500-509 ms
        b[100] = 7    // 990-999 ms
        return [SecondValues(time: t0, rows: ["alpha": a]), SecondValues(time: t0 + 2, rows: ["alpha": a, "beta": b])]
    }

    static let bounds = BucketBounds(.linear(low: 0, high: 1000, step: 10))!

    @Test func countsLandInTheirCells() throws {
        var p = HeatmapParameters(start: 1000, duration: 4)
        p.width = 40
        p.height = 100
        p.ymax = 1000
        p.nbuckets = 10
        let map = Heatmap(Self.seconds(at: 1000), bounds: Self.bounds, p)
        // 100 ms rows: 0-9 ms in row 0, 500-509 in row 5, 990-999 in row 9.
        #expect(map.counts[0][0][0] == 5)
        #expect(map.counts[0][0][5] == 2)
        #expect(map.counts[0][1].allSatisfy { $0 == 0 })
        #expect(map.counts[0][2][9] == 7)
        #expect(map.present == ["alpha": 14, "beta": 7])
        // Pixel (25, 2): column 2 (x 20-29), the top row (990-999 ms).
        let cell = try #require(map.cell(x: 25, y: 2))
        #expect(cell.column == 2 && cell.bucket == 9)
        #expect(map.details(Self.seconds(at: 1000), bounds: Self.bounds, column: 2, bucket: 9) == ["beta": 7])
        #expect(map.details(Self.seconds(at: 1000), bounds: Self.bounds, column: 2, bucket: 0) == ["alpha": 5])
        #expect(map.valueRange(bucket: 9) == (900, 1000))
        #expect(map.cell(x: 40, y: 0) == nil)
    }

    @Test func aBucketWiderThanARowIsSpread() {
        var p = HeatmapParameters(start: 0, duration: 1)
        p.ymax = 1000
        p.nbuckets = 200   // 5 ms rows: each 10 ms bucket covers two
        let map = Heatmap(Self.seconds(at: 0), bounds: Self.bounds, p)
        #expect(map.counts[0][0][0] == 2.5 && map.counts[0][0][1] == 2.5)
    }

    @Test func imageIsAValidPNGWithColouredCells() throws {
        var p = HeatmapParameters(start: 1000, duration: 4)
        p.width = 40
        p.height = 100
        p.ymax = 1000
        p.nbuckets = 10
        let png = try PNG.encode(Heatmap(Self.seconds(at: 1000), bounds: Self.bounds, p).render())
        let image = try PNG.decode(png)
        #expect(image.width == 40 && image.height == 100)
        #expect(image[25, 2] != (255, 255, 255))     // beta's cell
        #expect(image[15, 50] == (255, 255, 255))    // second 1001: nothing
        #expect(image[5, 95] != (255, 255, 255))     // alpha, 0-9 ms

        // Isolating beta leaves only its cell; excluding it leaves alpha's; selecting it
        // changes its hue and nothing else's presence.
        p.selected = ["beta"]
        let selected = try PNG.decode(try PNG.encode(Heatmap(Self.seconds(at: 1000), bounds: Self.bounds, p).render()))
        #expect(selected[25, 2] != image[25, 2])
        p.isolate = true
        let isolated = try PNG.decode(try PNG.encode(Heatmap(Self.seconds(at: 1000), bounds: Self.bounds, p).render()))
        #expect(isolated[5, 95] == (255, 255, 255) && isolated[25, 2] != (255, 255, 255))
        p.isolate = false
        p.exclude = true
        let excluded = try PNG.decode(try PNG.encode(Heatmap(Self.seconds(at: 1000), bounds: Self.bounds, p).render()))
        #expect(excluded[5, 95] != (255, 255, 255) && excluded[25, 2] == (255, 255, 255))
    }

    @Test func pngChecksAreReal() throws {
        var png = try PNG.encode(RGBImage(width: 3, height: 2, fill: (1, 2, 3)))
        #expect(try PNG.decode(png) == RGBImage(width: 3, height: 2, fill: (1, 2, 3)))
        // IHDR: length 13, then type, width 3, height 2, 8-bit RGB.
        #expect(Array(png[8..<16]) == [0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52])
        #expect(Array(png[16..<24]) == [0, 0, 0, 3, 0, 0, 0, 2])
        png[18] ^= 1
        #expect(throws: LumosError.self) { try PNG.decode(png) }
    }

    @Test func queryParametersAreChecked() throws {
        let ok = try HeatmapParameters(query: [("duration", "30"), ("selected", "a,b"), ("selected", "c"), ("isolate", "true")], latest: 2000, retention: 600)
        #expect(ok.start == 1971 && ok.duration == 30 && ok.selected == ["a", "b", "c"] && ok.isolate)
        let bad: [[(String, String)]] = [
            [("duration", "0")], [("duration", "601")], [("width", "x")], [("height", "5")], [("nbuckets", "1000")],
            [("isolate", "yes")], [("isolate", "true"), ("exclude", "true")], [("ymin", "10"), ("ymax", "5")],
            [("hues", "400")], [("coloring", "rainbow")], [("nope", "1")], [("width", "20"), ("width", "30")],
        ]
        for q in bad {
            #expect(throws: LumosError.self, "\(q)") { try HeatmapParameters(query: q, latest: 2000, retention: 600) }
        }
    }

    @Test func logLinearBoundsAreContiguous() throws {
        let b = try #require(BucketBounds(.logLinear(factor: 10, low: 2, high: 9, steps: 10)))
        #expect(b.ranges.first == 0...99)
        #expect(b.ranges[1] == 100...199)
        for i in 1..<b.ranges.count { #expect(b.ranges[i].lowerBound == b.ranges[i - 1].upperBound + 1) }
    }
}
