import Daemon
import Foundation
import Hummingbird
import LumosCore

/// The running instrumentations of one daemon, by id ("1", "2", ...). Each definition is
/// also kept under the state root (`ca/instrumentations/ID.json`, docs/analytics.md,
/// "Restarts") and started again when the daemon starts; the values of the seconds before are
/// not kept.
public final class Instrumentations: @unchecked Sendable {
    private let lock = PthreadLock()
    private var runners: [String: InstrumentationRunner] = [:]
    private var nextID = 1
    /// Each is a set of BPF programs and maps; fuzzers and scripts should not pile them up.
    public static let limit = 16

    public init() {}

    /// Where a state root keeps the definitions.
    public static func directory(_ root: StateRoot) -> String { root.sub("ca", "instrumentations") }

    /// Compiles and starts one (blocking: the tracer's work; call it off the request's task),
    /// then records its definition.
    public func create(_ spec: InstrumentationSpec, stateRoot: StateRoot) throws -> InstrumentationRunner {
        let id = try lock.locked { () -> String in
            guard runners.count < Self.limit else {
                throw LumosError.busy("at most \(Self.limit) instrumentations run at once; DELETE /ca/instrumentations/ID one first")
            }
            defer { nextID += 1 }
            return "\(nextID)"
        }
        let runner = try start(id: id, spec: spec, stateRoot: stateRoot, created: nil)
        do {
            let dir = Self.directory(stateRoot)
            try Files.makeDirectories(dir, mode: 0o700)
            let record: JSONValue = ["id": .string(id), "crtime": .number(Double(runner.created)), "definition": spec.definition]
            try Files.writeAtomically("\(dir)/\(id).json", record.serialized() + "\n")
        } catch {
            lock.locked { _ = runners.removeValue(forKey: id) }
            runner.stop()
            throw error
        }
        return runner
    }

    private func start(id: String, spec: InstrumentationSpec, stateRoot: StateRoot, created: Int64?) throws -> InstrumentationRunner {
        let runner = try InstrumentationRunner(id: id, spec: spec, stateRoot: stateRoot, created: created)
        let full = lock.locked { () -> Bool in
            if runners.count >= Self.limit { return true }
            runners[id] = runner
            return false
        }
        if full {
            runner.stop()
            throw LumosError.busy("at most \(Self.limit) instrumentations run at once; DELETE /ca/instrumentations/ID one first")
        }
        runner.start()
        return runner
    }

    /// Starts the recorded definitions again (the daemon's start). One that fails (e.g.
    /// postgresql.queries with no server running yet) is reported and kept: the next start
    /// tries it again, DELETE removes it. Returns the ids started and the failures.
    @discardableResult
    public func restore(stateRoot: StateRoot) -> (started: [String], failed: [(String, String)]) {
        let dir = Self.directory(stateRoot)
        let ids = Files.list(dir).filter { $0.hasSuffix(".json") }.compactMap { Int($0.dropLast(5)) }.sorted()
        lock.locked { nextID = max(nextID, (ids.last ?? 0) + 1) }
        var started: [String] = [], failed: [(String, String)] = []
        for n in ids {
            let id = "\(n)"
            if lock.locked({ runners[id] != nil }) { continue }
            do {
                let record = try JSONValue.parse(try FD.readText("\(dir)/\(id).json"), what: "\(dir)/\(id).json")
                guard let definition = record.lookup("definition") else { throw LumosError.invalid("\(dir)/\(id).json has no definition") }
                let spec = try InstrumentationSpec(json: definition)
                _ = try start(id: id, spec: spec, stateRoot: stateRoot, created: record.lookup("crtime")?.intValue)
                started.append(id)
            } catch {
                failed.append((id, oneLine(error)))
            }
        }
        return (started, failed)
    }

    public func get(_ id: String) throws -> InstrumentationRunner {
        guard let r = lock.locked({ runners[id] }) else {
            throw LumosError.notFound("no instrumentation \(id); see GET /ca/instrumentations")
        }
        return r
    }

    public var all: [InstrumentationRunner] {
        lock.locked { runners.values.sorted { (Int($0.id) ?? 0) < (Int($1.id) ?? 0) } }
    }

    /// Stops one and forgets its definition (also one that could not be restored).
    public func delete(_ id: String, stateRoot: StateRoot) throws {
        let file = "\(Self.directory(stateRoot))/\(id).json"
        let r = lock.locked { runners.removeValue(forKey: id) }
        guard r != nil || (Int(id) != nil && Files.exists(file)) else {
            throw LumosError.notFound("no instrumentation \(id); see GET /ca/instrumentations")
        }
        unlink(file)
        r?.stop()
    }

    /// Stops every one (the daemon's end); their definitions stay for the next start.
    public func stopAll() {
        let all = lock.locked { () -> [InstrumentationRunner] in
            defer { runners.removeAll() }
            return Array(runners.values)
        }
        for r in all { r.stop() }
    }
}

/// vmadmd's Cloud Analytics API (docs/analytics.md, "API"): `/ca` (the metrics),
/// `/ca/instrumentations` (create, list, get, delete), their raw values, heatmap images and
/// heatmap details, and the page at `/ca/ui`. Added to the daemon by `lumos daemon`
/// (Sources/lumos/DaemonCommand.swift) as one of its modules.
public struct AnalyticsModule: DaemonModule {
    public let instrumentations: Instrumentations

    public init(instrumentations: Instrumentations = Instrumentations()) {
        self.instrumentations = instrumentations
    }

    public func run(daemon: DaemonEnvironment) async throws {
        // The definitions recorded before a restart start again; the probes stop with the daemon.
        let registry = instrumentations, root = daemon.root
        let (started, failed) = try await Detached.run { registry.restore(stateRoot: root) }
        if !started.isEmpty { Self.log("restored instrumentations \(started.joined(separator: ", "))") }
        for (id, why) in failed { Self.log("instrumentation \(id) not restored (kept for the next start; DELETE removes it): \(why)") }
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
        instrumentations.stopAll()
    }

    static func log(_ line: String) {
        FileHandle.standardError.write(Data("vmadmd: \(line)\n".utf8))
    }

    public func addRoutes(to router: DaemonRouter, daemon: DaemonEnvironment) {
        let registry = instrumentations
        let root = daemon.root
        router.get("ca") { _, _ in JSONResponse(AnalyticsJSON.catalogue) }
        router.get("ca/instrumentations") { _, _ in
            JSONResponse(.array(registry.all.map(AnalyticsJSON.instrumentation)))
        }
        router.post("ca/instrumentations") { request, _ in
            var request = request
            let spec = try InstrumentationSpec(json: try await request.jsonBody())
            let runner = try await Detached.run { try registry.create(spec, stateRoot: root) }
            return JSONResponse(AnalyticsJSON.instrumentation(runner), status: .created)
        }
        router.get("ca/instrumentations/:id") { _, context in
            JSONResponse(AnalyticsJSON.instrumentation(try registry.get(try context.parameters.require("id"))))
        }
        router.delete("ca/instrumentations/:id") { _, context in
            let id = try context.parameters.require("id")
            try await Detached.run { try registry.delete(id, stateRoot: root) }
            return Response(status: .noContent)
        }
        router.get("ca/instrumentations/:id/value/raw") { request, context in
            let runner = try registry.get(try context.parameters.require("id"))
            return JSONResponse(try AnalyticsJSON.raw(runner, query: Self.query(request)))
        }
        router.get("ca/instrumentations/:id/value/heatmap/image") { request, context in
            let runner = try registry.get(try context.parameters.require("id"))
            let (map, _) = try Self.heatmap(runner, query: Self.query(request))
            let png = try PNG.encode(map.render())
            // Cloud Analytics' own answer for a client that asks for JSON: the PNG in base64
            // with the image's parameters and the values present; otherwise the PNG itself
            // (what an <img> asks for). docs/analytics.md, "API".
            if Self.wantsJSON(request.headers[.accept]) {
                return try JSONResponse(AnalyticsJSON.heatmapImage(map, png: png)).response(from: request, context: context)
            }
            return Response(status: .ok, headers: [.contentType: "image/png", .cacheControl: "no-store"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: png)))
        }
        router.get("ca/instrumentations/:id/value/heatmap/details") { request, context in
            let runner = try registry.get(try context.parameters.require("id"))
            let query = Self.query(request)
            let (map, seconds) = try Self.heatmap(runner, query: query)
            func coordinate(_ k: String) throws -> Int {
                guard let v = query.last(where: { $0.0 == k })?.1 else { throw LumosError.invalid("heatmap details: \(k) (a pixel of the image) is required") }
                guard let n = Int(v) else { throw LumosError.invalid("heatmap details: \(k) must be an integer pixel, not \(v)") }
                return n
            }
            let x = try coordinate("x"), y = try coordinate("y")
            guard let cell = map.cell(x: x, y: y) else {
                throw LumosError.invalid("heatmap details: (\(x), \(y)) is outside the \(map.parameters.width)x\(map.parameters.height) image")
            }
            let present = map.details(seconds, bounds: runner.bounds!, column: cell.column, bucket: cell.bucket)
            let range = map.valueRange(bucket: cell.bucket)
            return JSONResponse([
                "start_time": .number(Double(map.parameters.start + Int64(cell.column))), "duration": 1,
                "bucket_ymin": .number(range.low), "bucket_ymax": .number(range.high),
                "present": .object(present.mapValues { .number(($0 * 1000).rounded() / 1000) }),
                "total": .number((present.values.reduce(0, +) * 1000).rounded() / 1000),
            ])
        }
        router.get("ca/ui") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: AnalyticsPage.html)))
        }
    }

    static func query(_ request: Request) -> [(String, String)] {
        request.uri.queryParameters.map { (String($0.key), String($0.value)) }
    }

    /// An Accept header naming application/json before (or without) image/png.
    static func wantsJSON(_ accept: String?) -> Bool {
        guard let accept = accept?.lowercased(), let json = accept.range(of: "application/json") else { return false }
        guard let png = accept.range(of: "image/png") else { return true }
        return json.lowerBound < png.lowerBound
    }

    static func heatmap(_ runner: InstrumentationRunner, query: [(String, String)]) throws -> (Heatmap, [SecondValues]) {
        guard let bounds = runner.bounds else {
            throw LumosError.invalid("instrumentation \(runner.id) has no numeric decomposition to draw (decompose by e.g. subsecond or latency)")
        }
        let latest = runner.latest ?? Wallclock.seconds() - 1
        let p = try HeatmapParameters(query: query, latest: latest, retention: runner.spec.retention)
        var parameters = p
        // A linear field's range is known: the top is the field's top unless asked otherwise.
        if parameters.ymax == nil, case let .linear(_, high, _)? = runner.spec.effectiveQuantization { parameters.ymax = high }
        let seconds = runner.values(start: parameters.start, duration: parameters.duration)
        return (Heatmap(seconds, bounds: bounds, parameters), seconds)
    }
}

/// The JSON of the API's answers (shapes after Cloud Analytics' docs/index.md).
enum AnalyticsJSON {
    static var catalogue: JSONValue {
        var modules: [String: JSONValue] = [:]
        var fields: [String: JSONValue] = [:]
        var metrics: [JSONValue] = []
        for m in Metric.catalogue {
            modules[m.module] = ["label": .string(m.module)]
            for f in m.fields {
                var o: [String: JSONValue] = ["label": .string(f.label), "arity": .string(f.arity.rawValue),
                                              "type": .string(f.isString ? "string" : "number")]
                if let u = f.unit { o["unit"] = .string(u) }
                fields[f.name] = .object(o)
            }
            metrics.append([
                "module": .string(m.module), "stat": .string(m.stat), "label": .string(m.label),
                "unit": .string(m.unit), "interval": "interval",
                "fields": .array(m.fields.map { .string($0.name) }),
            ])
        }
        return ["modules": .object(modules), "fields": .object(fields), "metrics": .array(metrics)]
    }

    /// value/heatmap/image as CA answers it (its docs' GetInstrumentationHeatmap): the image
    /// in base64 and what it was drawn with.
    static func heatmapImage(_ map: Heatmap, png: [UInt8]) -> JSONValue {
        let p = map.parameters
        return [
            "nbuckets": .number(Double(p.nbuckets)), "width": .number(Double(p.width)), "height": .number(Double(p.height)),
            "ymin": .number(Double(p.ymin)), "ymax": .number(Double(map.ymax)),
            "present": .array(map.present.keys.sorted().map { .string($0) }),
            "transformations": .object([:]),
            "image": .string(Data(png).base64EncodedString()),
            "start_time": .number(Double(p.start)), "duration": .number(Double(p.duration)),
            "nsources": 1, "minreporting": 1,
            "requested_start_time": .number(Double(p.start)), "requested_duration": .number(Double(p.duration)),
            "requested_end_time": .number(Double(p.start + p.duration)),
        ]
    }

    static func instrumentation(_ r: InstrumentationRunner) -> JSONValue {
        guard case .object(var o) = r.spec.json else { return .null }
        o["id"] = .string(r.id)
        o["uri"] = .string("/ca/instrumentations/\(r.id)")
        o["crtime"] = .number(Double(r.created) * 1000)
        o["enabled"] = .bool(r.isRunning)
        o["d-program"] = .string(r.spec.dProgram)
        o["uris"] = .array([
            ["uri": .string("/ca/instrumentations/\(r.id)/value/raw"), "name": "value_raw"],
        ] + (r.bounds == nil ? [] : [
            ["uri": .string("/ca/instrumentations/\(r.id)/value/heatmap/image"), "name": "value_heatmap"],
            ["uri": .string("/ca/instrumentations/\(r.id)/value/heatmap/details"), "name": "details_heatmap"],
        ]))
        return .object(o)
    }

    /// value/raw: start_time (default: the last second read) and duration (default 1): the
    /// seconds' values summed. A scalar is a number, a discrete decomposition an object of
    /// numbers, a numeric one an array of [[low, high], count], both an object of such arrays.
    static func raw(_ r: InstrumentationRunner, query: [(String, String)]) throws -> JSONValue {
        var start: Int64?
        var duration: Int64 = 1
        for (k, v) in query {
            switch k {
            case "start_time":
                guard let n = Int64(v), HeatmapParameters.startTimes.contains(n) else {
                    throw LumosError.invalid("value/raw: start_time is a unix time in seconds (0...\(HeatmapParameters.startTimes.upperBound)), not \(v)")
                }
                start = n
            case "duration":
                guard let n = Int64(v), n >= 1, n <= Int64(r.spec.retention) else {
                    throw LumosError.invalid("value/raw: duration is 1...\(r.spec.retention) seconds, not \(v)")
                }
                duration = n
            default: throw LumosError.invalid("value/raw: unknown parameter \(k) (known: duration, start_time)")
            }
        }
        let from = start ?? ((r.latest ?? Wallclock.seconds() - 1) - duration + 1)
        var sum: [String: [Int64]] = [:]
        for s in r.values(start: from, duration: duration) {
            for (k, row) in s.rows {
                if var have = sum[k], have.count == row.count {
                    for i in have.indices { have[i] += row[i] }
                    sum[k] = have
                } else {
                    sum[k] = row
                }
            }
        }
        func value(_ row: [Int64]?) -> JSONValue {
            guard let bounds = r.bounds else { return .number(Double(row?.first ?? 0)) }
            var out: [JSONValue] = []
            for (i, c) in (row ?? []).enumerated() where c != 0 && i < bounds.ranges.count {
                let range = bounds.ranges[i]
                out.append([[.number(Double(range.lowerBound)), .number(Double(range.upperBound))], .number(Double(c))])
            }
            return .array(out)
        }
        let v: JSONValue = r.spec.discrete.isEmpty ? value(sum[""]) : .object(sum.mapValues { value($0) })
        return ["start_time": .number(Double(from)), "duration": .number(Double(duration)), "value": v,
                "oldest_time": r.oldest.map { .number(Double($0)) } ?? .null]
    }
}
