import Glibc

/// Compiles a D program to BPF programs: probe resolution, a type pass over every clause
/// (variables are typed by their first assignment anywhere in the program, as in D), then
/// code generation per clause and probe.
public final class DCompiler {
    let catalog: ProbeCatalog
    var maps: [MapSpec] = []
    var mapContents: [Int: [MapEntry]] = [:]
    var variables: [String: VariableSpec] = [:]
    var threadLocals: [String: VariableSpec] = [:]
    /// this-> variable types by name, from their assignments (for typing before codegen).
    var clauseLocalTypes: [String: DType] = [:]
    var aggregations: [String: AggregationSpec] = [:]
    var aggregationOrder: [String] = []
    var actions: [ActionSpec] = []
    var globalsSize = 0
    let ringBufferMap: Int
    /// Per-CPU drop counters: [0] records the ring buffer had no room for, [1] aggregation
    /// updates that found the aggregation's map full, [2] speculation() calls that found no
    /// free buffer.
    let dropsMap: Int
    /// [0] is non-zero once tracing has stopped: set by exit() in the kernel and by the
    /// runtime before END, and tested first by every probe's program when the script can
    /// exit, so nothing changes what END prints (docs/trace.md).
    let stateMap: Int
    /// Per-CPU scratch space for strings, keys and records (ClauseGenerator.alloc).
    let scratchMap: Int
    /// strsize: the most bytes (with the NUL) a string read from memory keeps, at most
    /// Layout.stringSize.
    public var stringLimit = Layout.stringSize
    var usesExit = false
    var globalsMap = -1
    var zeroMap = -1
    var zoneNameMap: Int?
    /// nspec: speculation buffers (slots 1...speculations of dt_spec, docs/trace.md).
    public var speculations = 1
    var speculationMap: Int?
    var syscallNameMap: Int?
    /// The process ustack() walks by .eh_frame (-p or -c; docs/trace.md "ustack() and
    /// .eh_frame"); its table is read when a clause first uses ustack().
    public var unwindTarget: Int32?
    /// The target is a -c command that has not exec'd yet: its table gets the most rows.
    public var unwindTargetIsCommand = false
    var userUnwind: UserUnwindTable?
    var unwindMaps: UnwindMaps?
    /// CLOCK_REALTIME - CLOCK_MONOTONIC, so walltimestamp = ktime_get_ns() + offset.
    let wallClockOffset: Int64
    /// task_struct offsets for ppid, from kernel BTF on first use (nil: not available).
    lazy var parentOffsets: (realParent: Int, tgid: Int)? = {
        guard let btf = try? KernelBTF.load(),
              let parent = btf.offset(of: "real_parent", inStruct: "task_struct"),
              let tgid = btf.offset(of: "tgid", inStruct: "task_struct") else { return nil }
        return (parent, tgid)
    }()
    /// Options: bufsize etc. do not change code; these do.
    public var destructiveAllowed = false
    public var aggregationEntries = 16384
    public var ringBufferBytes = 4 << 20
    /// The last program compiled, its probes by clause and every probe by id: what
    /// `compileLate` adds to.
    /// Called with every clause's probes once they are resolved, before any code is made
    /// (DTrace.run starts opening uprobes there).
    public var onResolved: (([[ResolvedProbe]]) -> Void)?
    var compiledProgram: DProgram?
    var compiledClauseProbes: [[ResolvedProbe]] = []
    var compiledProbes: [ResolvedProbe] = []

    /// Names by number, read only by programs that need them (probefunc of a multi-syscall probe).
    lazy var syscallNames: [Int: String] = {
        var names: [Int: String] = [:]
        for (name, n) in syscallNumbersSource() { names[n] = name }
        return names
    }()
    let syscallNumbersSource: () -> [String: Int]

    public init(catalog: ProbeCatalog, syscallNumbers: @escaping @autoclosure () -> [String: Int] = [:], ringBufferBytes: Int = 4 << 20) {
        syscallNumbersSource = syscallNumbers
        self.catalog = catalog
        var rt = timespec(), mono = timespec()
        clock_gettime(CLOCK_REALTIME, &rt)
        clock_gettime(CLOCK_MONOTONIC, &mono)
        wallClockOffset = (Int64(rt.tv_sec) - Int64(mono.tv_sec)) * 1_000_000_000 + Int64(rt.tv_nsec) - Int64(mono.tv_nsec)
        var size = 4096
        while size < ringBufferBytes { size <<= 1 }
        self.ringBufferBytes = size
        ringBufferMap = 0
        maps.append(MapSpec(name: "dt_events", kind: .ringBuffer, keySize: 0, valueSize: 0, maxEntries: size))
        dropsMap = 1
        maps.append(MapSpec(name: "dt_drops", kind: .perCPUArray, keySize: 4, valueSize: 8, maxEntries: 3))
        stateMap = 2
        maps.append(MapSpec(name: "dt_state", kind: .array, keySize: 4, valueSize: 8, maxEntries: 1))
        scratchMap = 3
        maps.append(MapSpec(name: "dt_scratch", kind: .perCPUArray, keySize: 4, valueSize: ClauseGenerator.scratchSize, maxEntries: 1))
    }

    func addMap(_ spec: MapSpec) -> Int {
        maps.append(spec)
        return maps.count - 1
    }

    public func compile(_ program: DProgram) throws -> CompiledScript {
        // 1. Resolve every probe description.
        var clauseProbes: [[ResolvedProbe]] = []
        var matched: [(String, Int)] = []
        var probes: [ResolvedProbe] = []
        for clause in program.clauses {
            var list: [ResolvedProbe] = []
            for d in clause.probes {
                let (found, count) = try catalog.resolve(d)
                if count == 0 || found.isEmpty {
                    throw DCompileError(.probe, "probe description \(d) does not match any probes", at: d.location)
                }
                matched.append((d.description, count))
                for p in found where !list.contains(p) { list.append(p) }
            }
            for p in list where !probes.contains(p) { probes.append(p) }
            clauseProbes.append(list)
        }
        onResolved?(clauseProbes)
        usesExit = program.clauses.contains { c in (c.body ?? []).contains { Self.calls("exit", $0) } }
        // 2. Types of variables and aggregations.
        for d in program.declarations { try declare(d) }
        for clause in program.clauses { try SpeculationRules.check(clause) }
        for (i, clause) in program.clauses.enumerated() {
            let context = clauseProbes[i].first?.context ?? .none
            if let p = clause.predicate { try infer(p, context) }
            for s in clause.body ?? [] { try infer(s, context) }
        }
        globalsMap = addMap(MapSpec(name: "dt_globals", kind: .array, keySize: 4, valueSize: max(8, globalsSize), maxEntries: 1))
        let zeroSize = max(8, aggregations.values.map(\.valueSize).max() ?? 8, Layout.stringSize)
        zeroMap = addMap(MapSpec(name: "dt_zero", kind: .perCPUArray, keySize: 4, valueSize: zeroSize, maxEntries: 1))
        // 3. Code, one program per clause and attach point.
        var programs: [CompiledProgram] = []
        for (i, clause) in program.clauses.enumerated() {
            for probe in clauseProbes[i] {
                programs.append(try code(clause, i, probe, id: probes.firstIndex(of: probe) ?? 0))
            }
        }
        compiledProgram = program
        compiledClauseProbes = clauseProbes
        compiledProbes = probes
        return script(programs, mapContents: mapContents, matched: matched, probes: probes, pragmas: program.pragmas)
    }

    /// The program of one clause on one probe.
    func code(_ clause: Clause, _ index: Int, _ probe: ResolvedProbe, id: Int) throws -> CompiledProgram {
        var gen = ClauseGenerator(compiler: self, probe: probe, probeID: id)
        let instructions = try gen.generate(clause)
        return CompiledProgram(probe: probe, probeID: id, clause: index, kind: programKind(probe.attach),
                               instructions: instructions, lines: gen.asm.lines, mapRelocations: gen.asm.mapRelocations)
    }

    func script(_ programs: [CompiledProgram], mapContents: [Int: [MapEntry]], matched: [(String, Int)],
                probes: [ResolvedProbe], pragmas: [(String, String?)]) -> CompiledScript {
        CompiledScript(
            programs: programs, maps: maps, mapContents: mapContents,
            aggregations: aggregationOrder.compactMap { aggregations[$0] }, actions: actions,
            matched: matched, probes: probes, pragmas: pragmas,
            ringBufferMap: ringBufferMap, dropsMap: dropsMap, stateMap: stateMap, zoneNameMap: zoneNameMap,
            speculationMap: speculationMap, unwind: unwindMaps)
    }

    /// Code for probes found after attach (the deferred USDT scan, docs/trace.md "USDT
    /// start-up"): every clause naming a description in `found` gets a program for each of
    /// its probes that the clause has none for yet. The answer has only those programs, with
    /// every probe and action of the program (the earlier ids unchanged); nil when nothing
    /// is new. Late code may not need a map the first compile did not make.
    public func compileLate(_ found: [(description: ProbeDescription, probes: [ResolvedProbe])]) throws -> CompiledScript? {
        guard let program = compiledProgram else { return nil }
        let mapCount = maps.count
        var programs: [CompiledProgram] = []
        for (i, clause) in program.clauses.enumerated() {
            var fresh: [ResolvedProbe] = []
            for d in clause.probes {
                for (described, list) in found where described == d {
                    for p in list where !compiledClauseProbes[i].contains(where: { $0.attach == p.attach })
                        && !fresh.contains(where: { $0.attach == p.attach }) {
                        fresh.append(p)
                    }
                }
            }
            for probe in fresh {
                let id = compiledProbes.firstIndex { $0.attach == probe.attach } ?? {
                    compiledProbes.append(probe)
                    return compiledProbes.count - 1
                }()
                programs.append(try code(clause, i, probe, id: id))
                compiledClauseProbes[i].append(probe)
            }
        }
        guard maps.count == mapCount else {
            throw DCompileError(.probe, "probes found after attach need maps the program was not compiled with", at: SourceLocation(line: 0, column: 0))
        }
        if programs.isEmpty { return nil }
        return script(programs, mapContents: [:], matched: [], probes: compiledProbes, pragmas: program.pragmas)
    }

    /// Whether a statement calls a function (at any depth).
    static func calls(_ name: String, _ s: Statement) -> Bool {
        func expr(_ e: Expr) -> Bool {
            switch e.kind {
            case .call(let f, let args): return f == name || args.contains(where: expr)
            case .assign(_, let l, let r), .binary(_, let l, let r): return expr(l) || expr(r)
            case .ternary(let c, let a, let b): return expr(c) || expr(a) || expr(b)
            case .unary(_, let x), .postfix(_, let x), .cast(_, let x): return expr(x)
            default: return false
            }
        }
        switch s.kind {
        case .expression(let e): return expr(e)
        case .ifElse(let c, let a, let b): return expr(c) || a.contains { calls(name, $0) } || b.contains { calls(name, $0) }
        }
    }

    func programKind(_ a: ProbeAttachPoint) -> BPFProgram.Kind {
        switch a {
        case .begin, .end, .error: return .rawTracepoint
        case .tracepoint, .allSyscalls: return .tracepoint
        case .profile, .tick: return .perfEvent
        case .uprobe: return .kprobe
        }
    }

    // MARK: Maps created on demand

    /// An array map from syscall number to 1 for the numbers a syscall group matched.
    func syscallFilterMap(_ numbers: [Int]) -> Int {
        let idx = addMap(MapSpec(name: "dt_sysfilter", kind: .array, keySize: 4, valueSize: 8, maxEntries: 1024))
        mapContents[idx] = numbers.filter { $0 >= 0 && $0 < 1024 }.map {
            MapEntry(key: le32(UInt32($0)), value: le64(1))
        }
        return idx
    }

    /// Syscall number -> name, for probefunc under a syscall group.
    func syscallNamesMap() -> Int {
        if let m = syscallNameMap { return m }
        let idx = addMap(MapSpec(name: "dt_sysnames", kind: .array, keySize: 4, valueSize: Layout.stringSize, maxEntries: 1024))
        mapContents[idx] = syscallNames.filter { $0.key >= 0 && $0.key < 1024 }.map {
            MapEntry(key: le32(UInt32($0.key)), value: paddedString($0.value))
        }
        syscallNameMap = idx
        return idx
    }

    /// dt_unwind (the target's table, UserUnwindTable) and dt_unwind_pids (the processes it
    /// applies to), made on the first ustack() when there is a target; nil without one.
    func userUnwindMaps() -> UnwindMaps? {
        if let m = unwindMaps { return m }
        guard let pid = unwindTarget else { return nil }
        let table = UserUnwindTable(pid: pid, capacity: unwindTargetIsCommand ? UserUnwindTable.maxRows : nil)
        let t = addMap(MapSpec(name: "dt_unwind", kind: .array, keySize: 4, valueSize: table.capacity * UserUnwindTable.rowSize, maxEntries: 1))
        mapContents[t] = [MapEntry(key: le32(0), value: table.bytes)]
        let p = addMap(MapSpec(name: "dt_unwind_pids", kind: .hash, keySize: 4, valueSize: 8, maxEntries: UserUnwindTable.maxPids))
        mapContents[p] = table.pids.map { MapEntry(key: le32(UInt32(bitPattern: $0)), value: le64(1)) }
        userUnwind = table
        unwindMaps = UnwindMaps(table: t, pids: p, capacity: table.capacity, source: table)
        return unwindMaps
    }

    func zoneNamesMap() -> Int {
        if let m = zoneNameMap { return m }
        let idx = addMap(MapSpec(name: "dt_zonenames", kind: .hash, keySize: 8, valueSize: Layout.stringSize, maxEntries: 4096))
        zoneNameMap = idx
        return idx
    }

    // MARK: Type pass

    func declare(_ d: Declaration) throws {
        let type = DCompiler.type(named: d.type)
        switch d.scope {
        case .global:
            if variables[d.name] == nil { variables[d.name] = globalScalar(type) }
        case .threadLocal:
            if threadLocals[d.name] == nil { threadLocals[d.name] = threadLocal(type, name: d.name) }
        case .clauseLocal:
            break
        }
    }

    static func type(named t: TypeName) -> DType {
        if t.pointerDepth > 0 { return .uint64 }
        let n = t.name
        if n == "string" { return .string }
        let unsigned = n.hasPrefix("u") || n.contains("unsigned") || n == "size_t"
        let size: Int
        switch n {
        case "char", "signed char", "unsigned char", "int8_t", "uint8_t", "uchar_t": size = 1
        case "short", "unsigned short", "int16_t", "uint16_t", "ushort_t": size = 2
        case "int", "unsigned", "unsigned int", "int32_t", "uint32_t", "uint_t", "pid_t", "uid_t", "gid_t", "id_t", "u_int": size = 4
        default: size = 8
        }
        return .integer(signed: !unsigned, size: size)
    }

    func globalScalar(_ type: DType) -> VariableSpec {
        let off = globalsSize
        globalsSize += type.storageSize
        return VariableSpec(type: type, storage: .global(offset: off))
    }

    func threadLocal(_ type: DType, name: String) -> VariableSpec {
        let m = addMap(MapSpec(name: "self_\(name)", kind: .hash, keySize: 8, valueSize: type.storageSize, maxEntries: aggregationEntries * 4))
        return VariableSpec(type: type, storage: .threadLocal(map: m))
    }

    func infer(_ s: Statement, _ context: ProbeContext) throws {
        switch s.kind {
        case .expression(let e): try infer(e, context)
        case .ifElse(let c, let a, let b):
            try infer(c, context)
            for x in a + b { try infer(x, context) }
        }
    }

    /// Walks an expression and types every variable it assigns.
    func infer(_ e: Expr, _ context: ProbeContext) throws {
        switch e.kind {
        case .assign(let op, let lhs, let rhs):
            try infer(rhs, context)
            if case .aggregation = lhs.kind { try inferAggregation(lhs, rhs, context); return }
            if case .index(let b, _) = lhs.kind, case .aggregation = b.kind { try inferAggregation(lhs, rhs, context); return }
            let t = op == "=" ? try staticType(rhs, context) : .int64
            try define(lhs, t, context)
            if case .index(_, let keys) = lhs.kind { for k in keys { try infer(k, context) } }
        case .unary(let op, let x) where op == "++" || op == "--":
            try define(x, .int64, context)
        case .postfix(_, let x):
            try define(x, .int64, context)
        case .index(let b, let keys):
            try infer(b, context)
            for k in keys { try infer(k, context) }
        case .member(let b, _, _): try infer(b, context)
        case .call(_, let args): for a in args { try infer(a, context) }
        case .unary(_, let x), .cast(_, let x): try infer(x, context)
        case .binary(_, let a, let b):
            try infer(a, context)
            try infer(b, context)
        case .ternary(let c, let a, let b):
            try infer(c, context)
            try infer(a, context)
            try infer(b, context)
        default: break
        }
    }

    func define(_ lhs: Expr, _ t: DType, _ context: ProbeContext) throws {
        switch lhs.kind {
        case .identifier(let name):
            if Builtins.isBuiltin(name) {
                throw DCompileError(.type, "operator = cannot be applied to built-in variable \(name)", at: lhs.location)
            }
            if variables[name] == nil { variables[name] = globalScalar(t) }
        case .index(let b, let keys):
            guard case .identifier(let name) = b.kind, !Builtins.isBuiltin(name) else {
                throw DCompileError(.type, "operator = requires a modifiable lvalue", at: lhs.location)
            }
            if variables[name] == nil {
                let keyTypes = try keys.map { try staticType($0, context) }
                let keySize = max(8, keyTypes.map(\.storageSize).reduce(0, +))
                let m = addMap(MapSpec(name: "arr_\(name)", kind: .hash, keySize: keySize, valueSize: t.storageSize, maxEntries: aggregationEntries * 4))
                variables[name] = VariableSpec(type: t, storage: .array(map: m, keyTypes: keyTypes))
            }
        case .selfVar(let name):
            if threadLocals[name] == nil { threadLocals[name] = threadLocal(t, name: name) }
        case .thisVar(let name):
            if clauseLocalTypes[name] == nil { clauseLocalTypes[name] = t }
        default:
            throw DCompileError(.type, "operator = requires a modifiable lvalue", at: lhs.location)
        }
    }

    func inferAggregation(_ lhs: Expr, _ rhs: Expr, _ context: ProbeContext) throws {
        var name = "", keys: [Expr] = []
        if case .aggregation(let n) = lhs.kind { name = n }
        if case .index(let b, let k) = lhs.kind, case .aggregation(let n) = b.kind { name = n; keys = k }
        guard case .call(let fname, let args) = rhs.kind, let fn = AggregatingFunction(rawValue: fname) else {
            throw DCompileError(.type, "@\(name): aggregations can only be assigned an aggregating function (count, sum, avg, min, max, stddev, quantize, lquantize, llquantize)", at: rhs.location)
        }
        let keyTypes = try keys.map { try staticType($0, context) }
        var params: [Int64] = []
        let expected: Int
        switch fn {
        case .count: expected = 0
        case .lquantize: expected = 4
        case .llquantize: expected = 5
        default: expected = 1
        }
        // quantize/lquantize/llquantize take an optional increment as the last argument.
        let extra = (fn == .quantize || fn == .lquantize || fn == .llquantize) ? 1 : 0
        if args.count < expected || args.count > expected + extra {
            throw DCompileError(.type, "\(fname)( ) requires \(expected) argument\(expected == 1 ? "" : "s")", at: rhs.location)
        }
        for a in args.dropFirst().prefix(max(0, expected - 1)) {
            guard let v = constantValue(a) else {
                throw DCompileError(.type, "\(fname)( ) parameters must be integer constants", at: a.location)
            }
            params.append(v)
        }
        let valueSize: Int
        switch fn {
        case .count, .sum: valueSize = 8
        case .avg, .min, .max: valueSize = 16
        case .stddev: valueSize = 32
        case .quantize: valueSize = 127 * 8
        case .lquantize:
            let (low, high, step) = (params[0], params[1], params[2])
            guard step > 0, high > low else {
                throw DCompileError(.type, "lquantize( ) upper bound must be greater than lower bound and step positive", at: rhs.location)
            }
            let (span, overflow) = high.subtractingReportingOverflow(low)
            let levels = overflow ? Int64.max : span / step
            guard levels >= 1 else {
                throw DCompileError(.type, "lquantize( ) step \(step) is larger than upper bound minus lower bound: there must be at least one level", at: rhs.location)
            }
            guard levels <= 1000 else { throw DCompileError(.type, "lquantize( ) has too many levels (\(overflow ? "more than 2^63" : String(levels)))", at: rhs.location) }
            valueSize = Int(levels + 2) * 8
        case .llquantize:
            let buckets = try LogLinearLayout(parameters: params, at: rhs.location).bucketCount
            valueSize = buckets * 8
        }
        if let existing = aggregations[name] {
            if existing.function != fn || existing.keyTypes.count != keyTypes.count || existing.parameters != params {
                throw DCompileError(.type, "@\(name): aggregation redefined with a different function or key signature", at: lhs.location)
            }
            return
        }
        let keySize = max(8, keyTypes.map(\.storageSize).reduce(0, +))
        let m = addMap(MapSpec(name: "agg_\(name.isEmpty ? "anon" : name)", kind: .perCPUHash, keySize: keySize, valueSize: valueSize, maxEntries: aggregationEntries))
        aggregations[name] = AggregationSpec(name: name, map: m, keyTypes: keyTypes, function: fn, parameters: params, valueSize: valueSize)
        aggregationOrder.append(name)
    }

    func constantValue(_ e: Expr) -> Int64? {
        switch e.kind {
        case .integer(let v): return Int64(bitPattern: v)
        case .unary("-", let x): return constantValue(x).map { 0 &- $0 }   // -(2^63) is Int64.min, as in C
        case .unary("+", let x): return constantValue(x)
        case .binary(let op, let a, let b):
            guard let x = constantValue(a), let y = constantValue(b) else { return nil }
            switch op {
            case "+": return x &+ y
            case "-": return x &- y
            case "*": return x &* y
            case "/": return y == 0 ? nil : x / y
            case "<<": return x << y
            default: return nil
            }
        default: return nil
        }
    }

    /// The type of an expression without generating code (used before code generation,
    /// so a variable is typed by its first assignment wherever it is).
    func staticType(_ e: Expr, _ context: ProbeContext) throws(DCompileError) -> DType {
        switch e.kind {
        case .string: return .string
        case .integer(let v): return v > UInt64(Int64.max) ? .uint64 : .int64
        case .identifier(let n):
            if let b = Builtins.type(n) { return b }
            return variables[n]?.type ?? .int64
        case .selfVar(let n): return threadLocals[n]?.type ?? .int64
        case .thisVar(let n): return clauseLocalTypes[n] ?? .int64
        case .index(let b, _):
            if case .identifier(let n) = b.kind {
                if n == "args" { return .int64 }
                return variables[n]?.type ?? .int64
            }
            return .int64
        case .member(let b, let f, _):
            if case .identifier("args") = b.kind, case .tracepoint(let fields) = context, let fd = fields.first(where: { $0.name == f }) {
                return fd.isCharArray || fd.isDataLocString ? .string : .integer(signed: fd.isSigned, size: fd.size)
            }
            return .int64
        case .call(let f, _) where f == "stack" || f == "ustack":
            return .stack(user: f == "ustack")
        case .call(let f, _):
            return ["copyinstr", "strjoin", "stringof", "lltostr", "basename", "dirname", "copyinstr"].contains(f) ? .string : .int64
        case .ternary(_, let a, _): return try staticType(a, context)
        case .assign(_, _, let r): return try staticType(r, context)
        case .cast(let t, _): return DCompiler.type(named: t)
        case .binary(let op, let a, let b):
            if ["==", "!=", "<", "<=", ">", ">=", "&&", "||", "^^"].contains(op) { return .int64 }
            let ta = try staticType(a, context), tb = try staticType(b, context)
            return ta.isSigned && tb.isSigned ? .int64 : .uint64
        default: return .int64
        }
    }
}

func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> ($0 * 8)) & 0xff) } }
func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8((v >> ($0 * 8)) & 0xff) } }

/// A string as the kernel side stores it: UTF-8, NUL-terminated, zero-padded to stringSize.
func paddedString(_ s: String) -> [UInt8] {
    var b = Array(s.utf8.prefix(Layout.stringSize - 1))
    b += [UInt8](repeating: 0, count: Layout.stringSize - b.count)
    return b
}
