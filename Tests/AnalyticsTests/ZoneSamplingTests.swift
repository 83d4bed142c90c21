import Glibc
import LumosCore
import Testing
@testable import Analytics
import Trace
import Zones

/// A running busybox zone whose init's child spins (a busy process in a real zone: its own
/// cgroup, namespaces and uid range), as ZonesTests' BusyboxZone builds it (Debian's
/// busybox-static in a temporary rootfs). `close()` stops the zone and removes everything.
final class BusyZone {
    let uuid: String
    let dir: String
    let runtime: ZoneRuntime

    init(_ name: String) throws {
        uuid = "ca-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        var template = Array("/tmp/lumos-ca-\(name)-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw Errno(errno, "mkdtemp") }
        dir = String(cString: made)
        chmod(dir, 0o755)
        runtime = try ZoneRuntime()
        do {
            let rootfs = dir + "/root"
            for sub in ["bin", "etc", "tmp", "proc", "sys", "dev"] { try Files.makeDirectories("\(rootfs)/\(sub)") }
            try Exec.run(["cp", "/bin/busybox", "\(rootfs)/bin/busybox"])
            symlink("busybox", "\(rootfs)/bin/sh")
            try Files.writeAtomically("\(rootfs)/etc/passwd", "root:x:0:0:root:/:/bin/sh\n")
            // A random slot of uids, away from the other suites' zones.
            let range = ZoneIDRange(base: ZoneIDRange.firstBase + UInt32.random(in: 20_000..<40_000) * ZoneIDRange.size)
            try runtime.start(ZoneSpec(uuid: uuid, hostname: "ca-\(getpid())", rootfs: rootfs,
                                       initProcess: .lumos(command: ["/bin/sh", "-c", "while :; do :; done"]), idRange: range))
        } catch {
            close()
            throw error
        }
    }

    func close() {
        try? runtime.cleanup(uuid)
        _ = try? Exec.run(["rm", "-rf", "--one-file-system", dir], check: false)
    }
}

/// Polls `condition` every 200 ms for up to `seconds` (waits for data; nothing is timed).
func eventually(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
    let end = Monotonic.now + seconds
    while Monotonic.now < end {
        if try condition() { return true }
        usleep(200_000)
    }
    return try condition()
}

/// Runners for (id, instrumentation JSON) pairs, started, under `root` (zone names come from it); the
/// caller stops them (`for r in runners { r.stop() }`) in a defer.
func startedRunners(_ specs: [(id: String, json: String)], root: StateRoot = StateRoot("/tmp/lumos-ca-root-\(getpid())")) throws -> [InstrumentationRunner] {
    let runners = try specs.map { try InstrumentationRunner(id: $0.id, spec: try spec($0.json), stateRoot: root) }
    for r in runners { r.start() }
    return runners
}

extension InstrumentationRunner {
    /// Every count under `key` in the whole retention window.
    func total(_ key: String) -> Int64 {
        values(start: 0, duration: 1 << 40).reduce(0) { $0 + ($1.rows[key]?.reduce(0, +) ?? 0) }
    }
}

@Suite(.serialized) struct ZoneSamplingTests {
    /// cpu.thread_samples predicated on a busy zone and decomposed by zonename and subsecond
    /// offset, run by the tracer for real: samples appear, only for that zone, at many
    /// subsecond offsets; the heatmap PNG decodes and has coloured cells; isolating the zone or
    /// another value changes the image. An unpredicated instrumentation sees the zone and the
    /// global zone side by side.
    @Test(.enabled(if: isRoot, "needs root: bpf and zones")) func threadSamplesOfABusyZone() throws {
        let zone = try BusyZone("busy")
        defer { zone.close() }
        let runners = try startedRunners([
            ("1", #"{"module": "cpu", "stat": "thread_samples", "predicate": {"eq": ["zonename", "\#(zone.uuid)"]}, "decomposition": ["zonename", "subsecond"]}"#),
            ("2", #"{"module": "cpu", "stat": "thread_samples", "decomposition": ["zonename"]}"#),
        ])
        defer { for r in runners { r.stop() } }
        let (predicated, everyZone) = (runners[0], runners[1])
        // Three seconds with samples of the zone.
        let seen = eventually(30) {
            predicated.values(start: 0, duration: 1 << 40).filter { !$0.rows.isEmpty }.count >= 3
        }
        #expect(seen, "no samples of zone \(zone.uuid)")
        let seconds = predicated.values(start: 0, duration: 1 << 40)
        let names = Set(seconds.flatMap { $0.rows.keys })
        #expect(names == [zone.uuid])
        let total = seconds.flatMap { $0.rows.values }.reduce(0) { $0 + $1.reduce(0, +) }
        #expect(total > 0)
        // A spinning thread is sampled all through each second: many 10 ms offsets.
        var offsets = Set<Int>()
        for s in seconds { for row in s.rows.values { for i in row.indices where row[i] > 0 { offsets.insert(i) } } }
        #expect(offsets.count > 10, "offsets \(offsets.sorted())")

        #expect(eventually(10) { Set(everyZone.values(start: 0, duration: 1 << 40).flatMap { $0.rows.keys }).isSuperset(of: [zone.uuid, "global"]) })

        // The heatmap of the last seconds.
        let latest = try #require(predicated.latest)
        let query = [("start_time", "\(latest - 9)"), ("duration", "10"), ("width", "200"), ("height", "100")]
        let (map, shown) = try AnalyticsModule.heatmap(predicated, query: query)
        let png = try PNG.encode(map.render())
        let image = try PNG.decode(png)
        #expect(image.width == 200 && image.height == 100)
        var coloured = 0
        for y in 0..<100 { for x in 0..<200 where image[x, y] != (255, 255, 255) { coloured += 1 } }
        #expect(coloured > 0)
        // A coloured pixel's details name the zone only.
        var detail: [String: Double] = [:]
        outer: for y in 0..<100 {
            for x in 0..<200 where image[x, y] != (255, 255, 255) {
                let cell = try #require(map.cell(x: x, y: y))
                detail = map.details(shown, bounds: predicated.bounds!, column: cell.column, bucket: cell.bucket)
                break outer
            }
        }
        #expect(Array(detail.keys) == [zone.uuid] && (detail[zone.uuid] ?? 0) > 0, "\(detail)")

        let (isolatedZone, _) = try AnalyticsModule.heatmap(predicated, query: query + [("selected", zone.uuid), ("isolate", "true")])
        let (isolatedOther, _) = try AnalyticsModule.heatmap(predicated, query: query + [("selected", "global"), ("isolate", "true")])
        let zonePNG = try PNG.encode(isolatedZone.render()), otherPNG = try PNG.encode(isolatedOther.render())
        #expect(zonePNG != png)           // the zone is drawn in its selected hue
        #expect(zonePNG != otherPNG)      // and "global" isolated is an empty image
        #expect(try PNG.decode(otherPNG).pixels.allSatisfy { $0 == 255 })

        // Raw values: an object keyed by zone of [[low, high], count] arrays.
        let raw = try AnalyticsJSON.raw(predicated, query: [("start_time", "\(latest - 9)"), ("duration", "10")])
        let buckets = try #require(raw.lookup("value")?.objectValue?[zone.uuid]?.arrayValue)
        #expect(!buckets.isEmpty)
        #expect(raw.lookup("value")?.objectValue?.count == 1)
    }

    /// syscall.syscalls decomposed by syscall and latency counts this process's own calls.
    @Test(.enabled(if: isRoot, "needs root: bpf")) func syscallLatencyOfThisProcess() throws {
        let runners = try startedRunners([
            ("3", #"{"module": "syscall", "stat": "syscalls", "predicate": {"eq": ["pid", \#(getpid())]}, "decomposition": ["syscall", "latency"]}"#),
        ])
        defer { for r in runners { r.stop() } }
        let runner = runners[0]
        let seen = eventually(30) {
            for _ in 0..<200 { _ = getppid() }
            return runner.values(start: 0, duration: 1 << 40).contains { ($0.rows["getppid"]?.reduce(0, +) ?? 0) > 0 }
        }
        #expect(seen)
        let keys = Set(runner.values(start: 0, duration: 1 << 40).flatMap { $0.rows.keys })
        #expect(keys.contains("getppid"))
    }
}
