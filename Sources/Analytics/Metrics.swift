import LumosCore
import Net
import Trace

/// The metric catalogue (docs/analytics.md, "Metrics"), after Cloud Analytics' (module.stat with
/// fields). Each metric knows the D clauses that measure it; an instrumentation fills in its
/// predicate and its aggregation (`Instrumentation.dProgram`).
///
/// Public API:
///   Metric.catalogue, Metric.named(module:stat:)
///   MetricField (discrete or numeric, with the D expression that yields it, or derived by the
///     runner from a kernel key: a NIC's tenant from its link name, a disk's name from its dev_t)
///   FieldContext (what derived fields are looked up in, loaded by the runner each second)
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
    /// A derived field: the kernel aggregates by `expression` (its source) and the runner turns
    /// each key's text into the field's value (nil: the key is no instance of the metric, e.g. a
    /// link that is no tenant's, and is left out). Predicates on derived fields are evaluated by
    /// the runner (docs/analytics.md, "Derived fields").
    let derive: (@Sendable (String, FieldContext) -> String?)?

    var isDerived: Bool { derive != nil }

    static func discrete(_ name: String, _ label: String, _ expression: String, string: Bool = true) -> MetricField {
        MetricField(name: name, label: label, arity: .discrete, unit: nil, expression: expression, isString: string, quantization: nil, derive: nil)
    }

    static func numeric(_ name: String, _ label: String, unit: String, _ expression: String, _ q: Quantization) -> MetricField {
        MetricField(name: name, label: label, arity: .numeric, unit: unit, expression: expression, isString: false, quantization: q, derive: nil)
    }

    static func derived(_ name: String, _ label: String, from source: String, _ derive: @escaping @Sendable (String, FieldContext) -> String?) -> MetricField {
        MetricField(name: name, label: label, arity: .discrete, unit: nil, expression: source, isString: true, quantization: nil, derive: derive)
    }
}

/// What derived fields are looked up in: the tenants by the prefix of their links' names
/// (`lz` + 8 uuid digits, Sources/Net/TenantNetwork.swift) and the block devices by dev_t.
/// The runner loads one each second (tenants come and go).
public struct FieldContext: Sendable {
    /// `lz<uuid8>` → the tenant's alias, else its uuid.
    public var tenantsByLinkPrefix: [String: String]
    /// The kernel's dev_t (major << 20 | minor) → the device's name ("loop3", "nvme0n1").
    public var disks: [UInt64: String]

    public init(tenantsByLinkPrefix: [String: String] = [:], disks: [UInt64: String] = [:]) {
        self.tenantsByLinkPrefix = tenantsByLinkPrefix
        self.disks = disks
    }

    public static func load(stateRoot: StateRoot) -> FieldContext {
        var tenants: [String: String] = [:]
        for (uuid, name) in ZoneNameMap.names(zonesDirectory: stateRoot.sub("zones")) {
            if let prefix = try? TenantNetwork.linkPrefix(tenant: uuid) { tenants[prefix] = name }
        }
        var disks: [UInt64: String] = [:]
        for entry in Files.list("/sys/dev/block") {
            let parts = entry.split(separator: ":")
            guard parts.count == 2, let major = UInt64(parts[0]), let minor = UInt64(parts[1]),
                  let uevent = try? FD.readText("/sys/dev/block/\(entry)/uevent"),
                  let line = uevent.split(separator: "\n").first(where: { $0.hasPrefix("DEVNAME=") }) else { continue }
            disks[major << 20 | minor] = String(line.dropFirst("DEVNAME=".count))
        }
        return FieldContext(tenantsByLinkPrefix: tenants, disks: disks)
    }

    /// A tenant's link (host side of a veth, or a VM's tap): the tenant's name; ifbs (the
    /// ingress side of a bandwidth cap, which sees the same packets again) and every other
    /// link: nil.
    func tenant(ofLink name: String) -> String? {
        guard TenantNetwork.isTenantLink(name), name.dropFirst(10).first != "i" else { return nil }
        return tenantsByLinkPrefix[String(name.prefix(10))]
    }
}

public struct Metric: Sendable {
    public let module: String
    public let stat: String
    public let label: String
    /// What one count is ("samples", "syscalls", "operations", "bytes").
    public let unit: String
    public let fields: [MetricField]
    /// What a key aggregates without a numeric field ("count()"; nic: the bytes' sum).
    var scalar = "count()"
    /// A derived field every instrumentation keys by, so that keys it derives nil for are left
    /// out (nic: links that are no tenant's).
    var alwaysKeyed: String?
    /// Why the probes may match nothing for now (a 409, not a 500): USDT probes need their
    /// process running.
    var whenNoProbes: String?
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

    /// Operations timed from a start probe to a done probe with a thread-local timestamp
    /// (syscall entry to return, a PostgreSQL query's start to done).
    static func timed(_ entries: [String], returns: [String], variable: String) -> @Sendable (String, String) -> String {
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
            program: timed(["syscall:::entry"], returns: ["syscall:::return"], variable: "ca_sys_ts")),
        Metric(
            module: "fs", stat: "logical_ops", label: "logical filesystem operations (at the syscall layer)", unit: "operations",
            fields: [
                zonename, execname, pid,
                .discrete("optype", "operation type", "probefunc"),
                .numeric("latency", "latency", unit: "nanoseconds", "(timestamp - self->ca_fs_ts)",
                         .logLinear(factor: 10, low: 2, high: 9, steps: 10)),
            ],
            program: timed(fsOps.map { "syscall::\($0):entry" }, returns: fsOps.map { "syscall::\($0):return" }, variable: "ca_fs_ts")),
        // The server's USDT probes (docs/trace.md, "USDT discovery"): found in the running
        // processes when the instrumentation is created, then attached to their binaries, so
        // backends forked later count too.
        Metric(
            module: "postgresql", stat: "queries", label: "PostgreSQL queries (USDT query-start to query-done)", unit: "queries",
            fields: [
                zonename, execname, pid,
                .discrete("query", "query text", "copyinstr(arg0)"),
                .numeric("latency", "latency", unit: "nanoseconds", "(timestamp - self->ca_pg_ts)",
                         .logLinear(factor: 10, low: 3, high: 9, steps: 10)),
            ],
            whenNoProbes: "no running process has the postgresql USDT provider (query-start); start the PostgreSQL server first",
            program: timed(["postgresql*:::query-start"], returns: ["postgresql*:::query-done"], variable: "ca_pg_ts")),
        // Packets through the host side of each tenant's NIC (a veth's peer or a VM's tap):
        // what the switch sends to that link the tenant receives, what arrives on it the tenant
        // sent. The kernel keys by link name and probe; the runner names the tenant.
        Metric(
            module: "nic", stat: "vnic_bytes", label: "bytes through tenants' virtual NICs", unit: "bytes",
            fields: [
                .derived("zonename", "zone name", from: "args->name") { link, c in c.tenant(ofLink: link) },
                .derived("vnic", "virtual NIC (its host link)", from: "args->name") { link, c in c.tenant(ofLink: link) == nil ? nil : link },
                .derived("direction", "direction (as the tenant sees it)", from: "probename") { p, _ in
                    p == "net_dev_xmit" ? "received" : p == "netif_receive_skb" ? "sent" : nil
                },
            ],
            scalar: "sum(args->len)", alwaysKeyed: "vnic",
            program: { predicate, aggregate in
                """
                net:::net_dev_xmit
                /\(predicate)/
                {
                    \(aggregate)
                }

                net:::netif_receive_skb
                /\(predicate)/
                {
                    \(aggregate)
                }

                """
            }),
        // Block requests from issue to completion (io:::start / io:::done over block_rq_issue
        // and block_rq_complete), matched by device and sector.
        Metric(
            module: "disk", stat: "physio_ops", label: "physical disk I/O operations (block requests)", unit: "operations",
            fields: [
                .derived("disk", "device", from: "args->dev") { dev, c in UInt64(dev).flatMap { c.disks[$0] } ?? "dev-\(dev)" },
                .discrete("optype", "operation type", "args->rwbs"),  // rwbs: R read, W write, S sync, F flush, D discard
                .numeric("latency", "latency", unit: "nanoseconds", "(timestamp - ca_io_ts[args->dev, args->sector])",
                         .logLinear(factor: 10, low: 3, high: 10, steps: 10)),
                .numeric("size", "size", unit: "bytes", "(args->nr_sector * 512)", .logLinear(factor: 2, low: 9, high: 24, steps: 2)),
            ],
            program: { predicate, aggregate in
                """
                io:::start
                {
                    ca_io_ts[args->dev, args->sector] = timestamp;
                }

                io:::done
                /ca_io_ts[args->dev, args->sector] && (\(predicate))/
                {
                    \(aggregate)
                }

                io:::done
                {
                    ca_io_ts[args->dev, args->sector] = 0;
                }

                """
            }),
    ]
}
