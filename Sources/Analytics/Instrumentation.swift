import LumosCore
import Trace

/// A Cloud Analytics predicate (CA's JSON form): `{}` (none), `{"eq": [field, value]}`, `ne`,
/// `lt`, `le`, `gt`, `ge` (numeric fields), `{"and": [p, ...]}`, `{"or": [p, ...]}`. It
/// becomes the D predicate of the instrumentation's aggregating clause.
public indirect enum Predicate: Sendable, Equatable {
    case none
    case compare(op: String, field: String, value: JSONValue)
    case and([Predicate])
    case or([Predicate])

    static let operators = ["eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="]

    /// Parses and checks against the metric's fields (a wrong field or value type is a 400).
    public init(json: JSONValue, metric: Metric, depth: Int = 0) throws {
        guard depth < 8 else { throw LumosError.invalid("predicate: nested more than 8 levels deep") }
        guard let o = json.objectValue else {
            throw LumosError.invalid("predicate: give a JSON object such as {\"eq\": [\"zonename\", \"web\"]}, not \(json.typeName)")
        }
        if o.isEmpty { self = .none; return }
        guard o.count == 1, let (op, arg) = o.first else {
            throw LumosError.invalid("predicate: one operator per object; combine with {\"and\": [...]} or {\"or\": [...]}")
        }
        switch op {
        case "and", "or":
            guard let list = arg.arrayValue, !list.isEmpty else {
                throw LumosError.invalid("predicate: \(op) takes a non-empty array of predicates")
            }
            let parts = try list.map { try Predicate(json: $0, metric: metric, depth: depth + 1) }
            self = op == "and" ? .and(parts) : .or(parts)
        default:
            guard Self.operators[op] != nil else {
                throw LumosError.invalid("predicate: unknown operator \(op) (use eq, ne, lt, le, gt, ge, and, or)")
            }
            guard let pair = arg.arrayValue, pair.count == 2, let name = pair[0].stringValue else {
                throw LumosError.invalid("predicate: \(op) takes [field, value], e.g. {\"\(op)\": [\"zonename\", \"web\"]}")
            }
            guard let field = metric.field(name) else {
                throw LumosError.invalid("predicate: \(metric.name) has no field \(name) (fields: \(metric.fields.map(\.name).joined(separator: ", ")))")
            }
            let value = pair[1]
            if field.isString {
                guard op == "eq" || op == "ne" else { throw LumosError.invalid("predicate: \(name) is a string; only eq and ne apply") }
                guard let s = value.stringValue else { throw LumosError.invalid("predicate: \(name) is compared with a string, not \(value.typeName)") }
                try Self.checkLiteral(s, field: name)
            } else {
                guard let n = value.numberValue, n == n.rounded(), abs(n) < 9e15 else {
                    throw LumosError.invalid("predicate: \(name) is compared with an integer, not \(value.plainText)")
                }
            }
            self = .compare(op: op, field: name, value: value)
        }
    }

    /// What may go between D's double quotes as it is: printable ASCII without quotes or
    /// backslashes, at most 255 bytes (the tracer's string size).
    static func checkLiteral(_ s: String, field: String) throws {
        let bytes = Array(s.utf8)
        guard bytes.count <= 255, !bytes.contains(where: { $0 < 0x20 || $0 > 0x7e || $0 == 0x22 || $0 == 0x5c }) else {
            throw LumosError.invalid("predicate: the \(field) value must be at most 255 printable ASCII characters without quotes or backslashes")
        }
    }

    /// Comparisons in the whole predicate: each string comparison is unrolled over 256 bytes in
    /// the BPF program, so the verifier's budget bounds how many one clause can hold.
    public static let maxComparisons = 8

    var comparisons: Int {
        switch self {
        case .none: return 0
        case .compare: return 1
        case .and(let p), .or(let p): return p.reduce(0) { $0 + $1.comparisons }
        }
    }

    /// The fields the predicate compares.
    var fields: Set<String> {
        switch self {
        case .none: return []
        case .compare(_, let field, _): return [field]
        case .and(let p), .or(let p): return p.reduce(into: Set<String>()) { $0.formUnion($1.fields) }
        }
    }

    /// Evaluated by the runner on a key's derived field values (every compared field is in
    /// `values`: derived fields are strings, compared with eq and ne).
    func matches(_ values: [String: String]) -> Bool {
        switch self {
        case .none: return true
        case let .compare(op, field, value):
            let equal = values[field] == value.stringValue
            return op == "eq" ? equal : !equal
        case .and(let p): return p.allSatisfy { $0.matches(values) }
        case .or(let p): return p.contains { $0.matches(values) }
        }
    }

    /// The D expression ("1" for none).
    func dExpression(_ metric: Metric) -> String {
        switch self {
        case .none: return "1"
        case let .compare(op, name, value):
            let field = metric.field(name)!
            let literal = field.isString ? "\"\(value.stringValue ?? "")\"" : "\(Int64(value.numberValue ?? 0))"
            return "\(field.expression) \(Self.operators[op]!) \(literal)"
        case .and(let parts): return parts.map { "(\($0.dExpression(metric)))" }.joined(separator: " && ")
        case .or(let parts): return parts.map { "(\($0.dExpression(metric)))" }.joined(separator: " || ")
        }
    }

    var json: JSONValue {
        switch self {
        case .none: return .object([:])
        case let .compare(op, field, value): return .object([op: .array([.string(field), value])])
        case .and(let p): return .object(["and": .array(p.map(\.json))])
        case .or(let p): return .object(["or": .array(p.map(\.json))])
        }
    }
}

/// What to measure (docs/analytics.md, "Instrumentations"): a metric, a predicate, a
/// decomposition (at most one discrete and one numeric field, as in Cloud Analytics), the numeric
/// field's quantisation, and how many seconds of values to keep. An instrumentation *is* a D
/// program, as in Cloud Analytics: `dProgram` is the text the tracer compiles and runs.
public struct InstrumentationSpec: Sendable {
    public var metric: Metric
    public var predicate: Predicate
    /// The discrete field (the aggregation's key), when there is one.
    public var discrete: [MetricField]
    public var numeric: MetricField?
    public var quantization: Quantization?
    public var retention: Int
    public static let defaultRetention = 600
    public static let maxRetention = 86_400

    public init(metric: Metric, predicate: Predicate = .none, decomposition: [String] = [], quantization: Quantization? = nil,
                retention: Int = InstrumentationSpec.defaultRetention) throws {
        self.metric = metric
        self.predicate = predicate
        var discrete: [MetricField] = []
        var numeric: MetricField?
        for name in decomposition {
            guard let f = metric.field(name) else {
                throw LumosError.invalid("decomposition: \(metric.name) has no field \(name) (fields: \(metric.fields.map(\.name).joined(separator: ", ")))")
            }
            guard !discrete.contains(where: { $0.name == name }) && numeric?.name != name else {
                throw LumosError.invalid("decomposition: \(name) is given twice")
            }
            if f.arity == .numeric {
                guard numeric == nil else { throw LumosError.invalid("decomposition: at most one numeric field (\(numeric!.name) and \(name))") }
                numeric = f
            } else {
                discrete.append(f)
            }
        }
        guard discrete.count <= 1 else {
            throw LumosError.invalid("decomposition: at most one discrete field (\(discrete.map(\.name).joined(separator: " and ")))")
        }
        if let q = quantization {
            guard numeric != nil else { throw LumosError.invalid("quantization: the decomposition has no numeric field to quantize") }
            try q.check()
        }
        guard (1...Self.maxRetention).contains(retention) else {
            throw LumosError.invalid("retention-time: between 1 and \(Self.maxRetention) seconds, not \(retention)")
        }
        // A predicate is either the kernel's (D) or the runner's (derived fields only).
        let compared = predicate.fields.compactMap { metric.field($0) }
        if compared.contains(where: \.isDerived), let kernel = compared.first(where: { !$0.isDerived }) {
            let derived = compared.filter(\.isDerived).map(\.name).sorted()
            throw LumosError.invalid("predicate: \(derived.joined(separator: ", ")) of \(metric.name) is derived by the runner and cannot be combined with \(kernel.name), which the kernel compares")
        }
        self.discrete = discrete
        self.numeric = numeric
        self.quantization = quantization
        self.retention = retention
    }

    /// From the body of POST /ca/instrumentations: CA's `module`, `stat`, `predicate`,
    /// `decomposition`, `granularity` (1 only) and `retention-time`, plus `quantization`.
    public init(json: JSONValue) throws {
        guard let o = json.objectValue else { throw LumosError.invalid("the body must be a JSON object with module and stat") }
        let known: Set<String> = ["module", "stat", "predicate", "decomposition", "granularity", "retention-time", "quantization"]
        if let bad = o.keys.sorted().first(where: { !known.contains($0) }) {
            throw LumosError.invalid("unknown property \(bad) (known: \(known.sorted().joined(separator: ", ")))")
        }
        guard let module = o["module"]?.stringValue, let stat = o["stat"]?.stringValue else {
            throw LumosError.invalid("module and stat are required strings, e.g. {\"module\": \"cpu\", \"stat\": \"thread_samples\"}; see GET /ca")
        }
        guard let metric = Metric.named(module: module, stat: stat) else {
            throw LumosError.invalid("no metric \(module).\(stat) (metrics: \(Metric.catalogue.map(\.name).joined(separator: ", ")))")
        }
        let predicate = try o["predicate"].map { try Predicate(json: $0, metric: metric) } ?? .none
        guard predicate.comparisons <= Predicate.maxComparisons else {
            throw LumosError.invalid("predicate: at most \(Predicate.maxComparisons) comparisons, not \(predicate.comparisons)")
        }
        var decomposition: [String] = []
        if let d = o["decomposition"] {
            guard let list = d.arrayValue, list.allSatisfy({ $0.stringValue != nil }) else {
                throw LumosError.invalid("decomposition: an array of field names, e.g. [\"zonename\", \"subsecond\"]")
            }
            decomposition = list.compactMap(\.stringValue)
        }
        if let g = o["granularity"], g.intValue != 1 {
            throw LumosError.invalid("granularity: only 1 (second) is supported")
        }
        var retention = Self.defaultRetention
        if let r = o["retention-time"] {
            guard let n = r.intValue else { throw LumosError.invalid("retention-time: an integer number of seconds") }
            guard (1...Int64(Self.maxRetention)).contains(n) else {
                throw LumosError.invalid("retention-time: between 1 and \(Self.maxRetention) seconds, not \(n)")
            }
            retention = Int(n)
        }
        let quantization = try o["quantization"].map(Self.quantization(_:))
        try self.init(metric: metric, predicate: predicate, decomposition: decomposition, quantization: quantization, retention: retention)
    }

    static func quantization(_ j: JSONValue) throws -> Quantization {
        func int(_ k: String) throws -> Int64 {
            guard let v = j.lookup(k)?.intValue else { throw LumosError.invalid("quantization: \(k) is a required integer") }
            return v
        }
        switch j.lookup("kind")?.stringValue {
        case "linear": return .linear(low: try int("low"), high: try int("high"), step: try int("step"))
        case "log-linear": return .logLinear(factor: try int("factor"), low: try int("low"), high: try int("high"), steps: try int("steps"))
        default: throw LumosError.invalid("quantization: {\"kind\": \"linear\", low, high, step} or {\"kind\": \"log-linear\", factor, low, high, steps}")
        }
    }

    /// The numeric field's buckets (nil without a numeric field).
    public var effectiveQuantization: Quantization? { numeric.map { quantization ?? $0.quantization! } }

    /// The decomposition as given: discrete fields, then the numeric one.
    public var decomposition: [String] { discrete.map(\.name) + (numeric.map { [$0.name] } ?? []) }

    /// The aggregation every instrumentation writes.
    static let aggregation = "ca"

    /// The derived fields the runner needs: the discrete one, those the predicate compares
    /// and the metric's `alwaysKeyed` one.
    var derivedFields: [MetricField] {
        var names = discrete.filter(\.isDerived).map(\.name)
        names += predicate.fields.sorted().filter { metric.field($0)?.isDerived == true }
        if let k = metric.alwaysKeyed { names.append(k) }
        var seen = Set<String>()
        return names.filter { seen.insert($0).inserted }.compactMap { metric.field($0) }
    }

    /// The aggregation's key expressions: the discrete field's (its source if it is derived),
    /// then the sources of the other derived fields, each once.
    var kernelKeys: [String] {
        var keys = discrete.map(\.expression)
        for f in derivedFields where !keys.contains(f.expression) { keys.append(f.expression) }
        return keys
    }

    /// A predicate on derived fields is the runner's (it compares nothing else: init checks).
    var predicateIsTheRunners: Bool { predicate.fields.contains { metric.field($0)?.isDerived == true } }

    /// The predicate the kernel evaluates: none when it is the runner's.
    var kernelPredicate: Predicate { predicateIsTheRunners ? .none : predicate }

    /// The statement that aggregates: `@ca[k...] = count();` or `= lquantize(...)`.
    var aggregateStatement: String {
        let keys = kernelKeys.isEmpty ? "" : "[" + kernelKeys.joined(separator: ", ") + "]"
        let function = numeric.map { effectiveQuantization!.dFunction(of: $0.expression) } ?? metric.scalar
        return "@\(Self.aggregation)\(keys) = \(function);"
    }

    /// The D program of this instrumentation (docs/analytics.md shows examples).
    public var dProgram: String { metric.program(kernelPredicate.dExpression(metric), aggregateStatement) }

    /// The row a kernel key (its values as text, in `kernelKeys` order) counts in: the
    /// discrete field's value ("" without one), or nil when a derived field has no value for
    /// it or the runner's predicate is false.
    func row(_ keys: [String], _ context: FieldContext) -> String? {
        let derived = derivedFields
        if derived.isEmpty { return keys.first ?? "" }
        let order = kernelKeys
        var values: [String: String] = [:]
        for f in derived {
            guard let i = order.firstIndex(of: f.expression), i < keys.count, let v = f.derive!(keys[i], context) else { return nil }
            values[f.name] = v
        }
        if predicateIsTheRunners, !predicate.matches(values) { return nil }
        guard let d = discrete.first else { return "" }
        return d.isDerived ? values[d.name] : keys.first
    }

    /// The body that creates this instrumentation again (what a restart restores).
    public var definition: JSONValue {
        var o: [String: JSONValue] = [
            "module": .string(metric.module), "stat": .string(metric.stat), "predicate": predicate.json,
            "decomposition": .array(decomposition.map { .string($0) }), "retention-time": .number(Double(retention)),
        ]
        if let q = quantization { o["quantization"] = q.json }
        return .object(o)
    }

    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "module": .string(metric.module), "stat": .string(metric.stat),
            "predicate": predicate.json,
            "decomposition": .array(decomposition.map { .string($0) }),
            "granularity": 1, "retention-time": .number(Double(retention)),
            "value-dimension": .number(Double(decomposition.count + 1)),
            "value-arity": .string(numeric != nil ? "numeric-decomposition" : discrete.isEmpty ? "scalar" : "discrete-decomposition"),
        ]
        if let q = effectiveQuantization { o["quantization"] = q.json }
        return .object(o)
    }
}
