import Dispatch
import Foundation
import Glibc
import LumosCore
import Trace

/// The values of one second: for each value of the discrete field ("" without one), the
/// counts: one number for a scalar, else one per bucket of the numeric field.
public struct SecondValues: Sendable, Equatable {
    public var time: Int64
    public var rows: [String: [Int64]]

    public init(time: Int64, rows: [String: [Int64]] = [:]) {
        self.time = time
        self.rows = rows
    }
}

/// A numeric field's buckets as value ranges [low, high), underflow and overflow included.
public struct BucketBounds: Sendable, Equatable {
    public var ranges: [ClosedRange<Int64>]

    /// lquantize: underflow [low - step, low), the levels, overflow [high, high + step).
    init(_ l: LinearBuckets) {
        let low = Int64(l.low), step = Int64(l.step)
        var r: [ClosedRange<Int64>] = [(low - step)...(low - 1)]
        for i in 0..<l.levels { r.append((low + Int64(i) * step)...(low + Int64(i + 1) * step - 1)) }
        let top = low + Int64(l.levels) * step
        r.append(top...(top + step - 1))
        ranges = r
    }

    /// llquantize: underflow [0, factor^low), each bucket up to the next one's lower bound,
    /// overflow [factor^(high+1), factor^(high+2)) (capped).
    init(_ l: LogLinearBuckets) {
        let labels = l.labels
        func number(_ s: String) -> Int64 { Int64(s.split(separator: " ").last.map(String.init) ?? "0") ?? 0 }
        let lows = labels.map(number)
        var r: [ClosedRange<Int64>] = [0...max(0, lows[0] - 1)]
        for i in 1..<(lows.count - 1) { r.append(lows[i]...max(lows[i], lows[i + 1] - 1)) }
        let top = lows[lows.count - 1]
        let (next, overflow) = top.multipliedReportingOverflow(by: Int64(l.factor))
        r.append(top...(overflow ? Int64.max : next - 1))
        ranges = r
    }

    init?(_ q: Quantization) {
        switch q {
        case let .linear(low, high, step): guard let b = try? LinearBuckets(low: low, high: high, step: step) else { return nil }; self.init(b)
        case let .logLinear(f, low, high, steps): guard let b = try? LogLinearBuckets(factor: f, low: low, high: high, steps: steps) else { return nil }; self.init(b)
        }
    }
}

/// Runs one instrumentation (docs/analytics.md, "Runner"): compiles its D program with the
/// tracer, attaches it, and once a second, just after each wall-clock second, reads the
/// aggregation into a retention ring of `SecondValues`.
///
/// The kernel's aggregation keeps running totals; each second's values are the differences
/// from the previous read (so nothing that fires between a read and a clear is lost, as it
/// would be with read-then-clear). Keys idle for `idleKeySeconds` are deleted from the kernel
/// map so that it does not fill up with exited processes. Zones started after the
/// instrumentation get their names: the zonename map is refreshed every second.
public final class InstrumentationRunner: @unchecked Sendable {
    public let id: String
    public let spec: InstrumentationSpec
    public let created: Int64
    public let bounds: BucketBounds?
    let stateRoot: StateRoot
    static let idleKeySeconds: Int64 = 60
    /// Aggregation keys (the kernel map's size) per instrumentation.
    public static let aggregationEntries = 1024

    private let lock = PthreadLock()
    private var ring: [SecondValues] = []
    private var session: TraceSession?
    private var totals: [[UInt8]: (counts: [Int64], changed: Int64)] = [:]
    private let stopSignal = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private var running = false
    private let devNull: Int32
    public private(set) var lastError: String?

    /// Compiles, loads and attaches the program; throws (nothing left behind) when the tracer or
    /// the kernel refuses it.
    public init(id: String, spec: InstrumentationSpec, stateRoot: StateRoot, created: Int64? = nil) throws {
        self.id = id
        self.spec = spec
        self.stateRoot = stateRoot
        self.created = created ?? Wallclock.seconds()
        self.bounds = spec.effectiveQuantization.flatMap(BucketBounds.init)
        devNull = open("/dev/null", O_WRONLY | O_CLOEXEC)
        let catalog = try KernelProbeCatalog()
        let compiler = DCompiler(catalog: catalog, syscallNumbers: catalog.syscallNumbers, ringBufferBytes: 64 << 10)
        compiler.aggregationEntries = Self.aggregationEntries
        var options = TraceOptions()
        options.quiet = true
        options.bufferSize = 64 << 10
        options.programName = "lumos analytics"
        do {
            let script = try compiler.compile(try Parser.parse(spec.dProgram))
            let session = try TraceSession(script: script, options: options, output: devNull)
            if script.zoneNameMap != nil { session.zoneNames = ZoneNameMap.load(stateRoot: stateRoot) }
            try session.load()
            try session.run(.begin)
            try session.attach()
            self.session = session
        } catch let e as DCompileError {
            close(devNull)
            if let absent = spec.metric.whenNoProbes, e.description.contains("does not match any probes") {
                throw LumosError.busy("instrumentation \(spec.metric.name): \(absent)")
            }
            throw LumosError.failed("instrumentation \(spec.metric.name): the tracer refused its D program: \(e.description)")
        } catch {
            close(devNull)
            throw error
        }
    }

    deinit { stop() }

    /// Starts the once-a-second reads on a thread of their own.
    public func start() {
        lock.locked { running = true }
        let thread = Thread { [self] in
            loop()
            finished.signal()
        }
        thread.start()
    }

    /// Detaches the probes and ends the reads (the values stay readable).
    public func stop() {
        let wasRunning = lock.locked { () -> Bool in
            let r = running
            running = false
            return r
        }
        if wasRunning {
            stopSignal.signal()
            finished.wait()
        }
        lock.locked {
            if session != nil {
                session?.detach()
                session = nil
                close(devNull)
            }
        }
    }

    private func loop() {
        while true {
            // Wake just after the next wall-clock second, then read the second that ended.
            let now = Wallclock.nanoseconds()
            let next = (now / 1_000_000_000 + 1) * 1_000_000_000 + 3_000_000
            if stopSignal.wait(timeout: .now() + .nanoseconds(Int(next - now))) == .success { return }
            tick(second: next / 1_000_000_000 - 1)
        }
    }

    /// Reads the aggregation and appends the second's values (also called by tests).
    func tick(second: Int64) {
        lock.locked {
            guard let session else { return }
            if session.script.zoneNameMap != nil { session.addZoneNames(ZoneNameMap.load(stateRoot: stateRoot)) }
            session.drain()
            var values = SecondValues(time: second)
            let context = spec.derivedFields.isEmpty ? FieldContext() : FieldContext.load(stateRoot: stateRoot)
            for (key, record) in session.rows(InstrumentationSpec.aggregation) {
                let counts = Self.counts(record.value)
                let previous = totals[key]
                var delta = counts
                if let p = previous?.counts, p.count == counts.count {
                    for i in delta.indices { delta[i] -= p[i] }
                }
                if delta.contains(where: { $0 != 0 }) {
                    if let name = spec.row(record.keys.map(Self.text), context) {
                        if var row = values.rows[name], row.count == delta.count {
                            for i in row.indices { row[i] += delta[i] }
                            values.rows[name] = row
                        } else {
                            values.rows[name] = delta
                        }
                    }
                    totals[key] = (counts, second)
                } else if let p = previous, second - p.changed >= Self.idleKeySeconds {
                    session.deleteKey(InstrumentationSpec.aggregation, key)
                    totals[key] = nil
                } else {
                    totals[key] = (counts, previous?.changed ?? second)
                }
            }
            ring.append(values)
            let oldest = second - Int64(spec.retention) + 1
            if let first = ring.firstIndex(where: { $0.time >= oldest }), first > 0 { ring.removeFirst(first) }
        }
    }

    static func counts(_ v: AggregationValue) -> [Int64] {
        switch v {
        case .count(let n), .sum(let n), .min(let n), .max(let n): return [n]
        case .avg(let c, _), .stddev(let c, _, _): return [c]
        case .quantize(let b), .lquantize(_, let b), .llquantize(_, let b): return b
        }
    }

    static func text(_ k: AggregationKey) -> String {
        switch k {
        case .string(let s): return s
        case .integer(let v, _): return "\(v)"
        case .stack(let frames): return frames.joined(separator: "\n")
        }
    }

    /// The seconds in [start, start + duration) that were read (missing seconds are absent).
    public func values(start: Int64, duration: Int64) -> [SecondValues] {
        lock.locked { ring.filter { $0.time >= start && $0.time < start + duration } }
    }

    /// The last second read, if any.
    public var latest: Int64? { lock.locked { ring.last?.time } }

    /// The oldest second still kept.
    public var oldest: Int64? { lock.locked { ring.first?.time } }

    public var isRunning: Bool { lock.locked { session != nil } }
}

/// A pthread mutex with a closure API.
final class PthreadLock: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }

    func locked<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }
}

enum Wallclock {
    static func nanoseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    static func seconds() -> Int64 { nanoseconds() / 1_000_000_000 }
}
