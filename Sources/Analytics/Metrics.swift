import LumosCore
import Trace

/// The metric catalogue (docs/analytics.md, "Metrics"), after Cloud Analytics' (module.stat with
/// fields). Each metric knows the D clauses that measure it; an instrumentation fills in its
/// predicate and its aggregation (`Instrumentation.dProgram`).
///
/// Public API:
///   Metric.catalogue, Metric.named(module:stat:)
///   MetricField (discrete or numeric, with the D expression that yields it)
///   Quantization (.linear / .logLinear: the lquantize / llquantize of a numeric field)

/// How a numeric field is bucketed: lquantize(expr, low, high, step) or
/// llquantize(expr, factor, low, high, steps) (docs/trace.md, "Aggregations").
public enum Quantization: Sendable, Equatable {
    case linear(low: Int64, high: Int64, step: Int64)
    case logLinear(factor: Int64, low: Int64, high: Int64, steps: Int64)

    /// The D aggregating function applied to `expression`.
    func dFunction(of expression: String) -> String {
        switch self {
        case let .linear(low, high, step): return "lquantize(\(expression), \(low), \(high), \(step))"
        case let .logLinear(factor, low, high, steps): return "llquantize(\(expression), \(factor), \(low), \(high), \(steps))"
        }
    }

    /// Each bucket is 8 bytes per key per CPU in the kernel map.
    static let maxBuckets = 500

    /// Checked with the tracer's own bucket types, so a bad quantisation is a 400, not a
    /// compile error later.
    func check() throws {
        switch self {
        case let .linear(low, high, step):
            let b = try LinearBuckets(low: low, high: high, step: step)
            guard b.levels <= Self.maxBuckets else { throw LumosError.invalid("quantization: at most \(Self.maxBuckets) linear buckets, not \(b.levels)") }
        case let .logLinear(factor, low, high, steps):
            let b = try LogLinearBuckets(factor: factor, low: low, high: high, steps: steps)
            guard b.count <= Self.maxBuckets + 2 else { throw LumosError.invalid("quantization: at most \(Self.maxBuckets) log-linear buckets, not \(b.count - 2)") }
        }
    }

    var json: JSONValue {
        switch self {
        case let .linear(low, high, step):
            return ["kind": "linear", "low": .number(Double(low)), "high": .number(Double(high)), "step": .number(Double(step))]
        case let .logLinear(factor, low, high, steps):
            return ["kind": "log-linear", "factor": .number(Double(factor)), "low": .number(Double(low)),
                    "high": .number(Double(high)), "steps": .number(Double(steps))]
        }
    }
}

public struct MetricField: Sendable {
    public enum Arity: String, Sendable { case discrete, numeric }

    public let name: String
    public let label: String
    public let arity: Arity
    /// The unit of a numeric field ("milliseconds", "nanoseconds").
    public let unit: String?
    /// The D expression of the field in the clause that aggregates.
    let expression: String
    /// A string field (compared with string literals) or an integer one.
    let isString: Bool
    /// How a numeric field is bucketed unless the instrumentation says otherwise.
    let quantization: Quantization?

    static func discrete(_ name: String, _ label: String, _ expression: String, string: Bool = true) -> MetricField {
        MetricField(name: name, label: label, arity: .discrete, unit: nil, expression: expression, isString: string, quantization: nil)
    }

    static func numeric(_ name: String, _ label: String, unit: String, _ expression: String, _ q: Quantization) -> MetricField {
        MetricField(name: name, label: label, arity: .numeric, unit: unit, expression: expression, isString: false, quantization: q)
    }
}

public struct Metric: Sendable {
    public let module: String
    public let stat: String
    public let label: String
    /// What one count is ("samples", "syscalls", "operations").
    public let unit: String
    public let fields: [MetricField]
    /// The D program: given the predicate (a D expression, "1" for none) and the aggregating
    /// statement, the whole program text.
    let program: @Sendable (_ predicate: String, _ aggregate: String) -> String

    public var name: String { "\(module).\(stat)" }

    public func field(_ name: String) -> MetricField? { fields.first { $0.name == name } }

    public static func named(module: String, stat: String) -> Metric? {
        catalogue.first { $0.module == module && $0.stat == stat }
    }

    // Fields shared by every metric: the context of the thread the probe fires in.
    static let zonename = MetricField.discrete("zonename", "zone name", "zonename")
    static let execname = MetricField.discrete("execname", "application name", "execname")
    static let pid = MetricField.discrete("pid", "process identifier", "pid", string: false)

    /// Syscall-layer operations timed from entry to return with a thread-local timestamp.
    /// `probes`: the entry probes; the matching return probes are derived.
    static func timedSyscalls(_ entries: [String], returns: [String], variable: String) -> @Sendable (String, String) -> String {
        { predicate, aggregate in
            """
            \(entries.joined(separator: ",\n"))
            {
                self->\(variable) = timestamp;
            }

            \(returns.joined(separator: ",\n"))
            /self->\(variable) && (\(predicate))/
            {
                \(aggregate)
            }

            \(returns.joined(separator: ",\n"))
            {
                self->\(variable) = 0;
            }

            """
        }
    }

    static let fsOps = ["read", "write", "pread64", "pwrite64", "readv", "writev", "openat", "close", "fsync", "fdatasync", "newfstatat", "getdents64"]

    /// The catalogue: what `GET /ca` lists and instrumentations are made of.
    public static let catalogue: [Metric] = [
        Metric(
            module: "cpu", stat: "thread_samples", label: "thread samples", unit: "samples",
            fields: [
                zonename, execname, pid,
                .discrete("cpu", "CPU identifier", "cpu", string: false),
                .numeric("subsecond", "subsecond offset", unit: "milliseconds",
                         "(walltimestamp % 1000000000) / 1000000", .linear(low: 0, high: 1000, step: 10)),
            ],
            // DTrace's profile-99: every CPU 99 times a second; the idle task (pid 0) is no thread.
            program: { predicate, aggregate in
                """
                profile-99hz
                /pid != 0 && (\(predicate))/
                {
                    \(aggregate)
                }

                """
            }),
        Metric(
            module: "syscall", stat: "syscalls", label: "system calls", unit: "syscalls",
            fields: [
                zonename, execname, pid,
                .discrete("syscall", "system call", "probefunc"),
                .numeric("latency", "latency", unit: "nanoseconds", "(timestamp - self->ca_sys_ts)",
                         .logLinear(factor: 10, low: 2, high: 9, steps: 10)),
            ],
            program: timedSyscalls(["syscall:::entry"], returns: ["syscall:::return"], variable: "ca_sys_ts")),
        Metric(
            module: "fs", stat: "logical_ops", label: "logical filesystem operations (at the syscall layer)", unit: "operations",
            fields: [
                zonename, execname, pid,
                .discrete("optype", "operation type", "probefunc"),
                .numeric("latency", "latency", unit: "nanoseconds", "(timestamp - self->ca_fs_ts)",
                         .logLinear(factor: 10, low: 2, high: 9, steps: 10)),
            ],
            program: timedSyscalls(fsOps.map { "syscall::\($0):entry" }, returns: fsOps.map { "syscall::\($0):return" }, variable: "ca_fs_ts")),
    ]
}
