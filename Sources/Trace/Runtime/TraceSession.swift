import Glibc
import LumosCore

/// One tracing session: creates the maps, loads and attaches the compiled programs,
/// runs BEGIN, turns ring-buffer records into DTrace's output, and at the end runs END
/// and prints the aggregations (DTrace guide, "BEGIN and END probes", "Aggregations").
public final class TraceSession {
    /// Probes and actions grow when `attachLate` adds programs.
    public private(set) var script: CompiledScript
    public let options: TraceOptions
    let output: Int32
    var maps: [BPFMap] = []
    var loaded: [(CompiledProgram, BPFProgram)] = []
    var attachments: [ProbeLink] = []
    var tracefs: Tracefs?
    var ring: RingBuffer?
    var printedHeading = false
    var printed: Set<String> = []
    var normals: [String: Int64] = [:]
    var formats: [Int: PrintfFormat] = [:]
    let symbols = StackSymbols()
    /// Set when a clause called exit(): tracing stops with this status.
    public private(set) var exitStatus: Int32?
    /// Uprobes opened ahead, in the order `attach` takes them (UprobeOpener).
    public var preopened: UprobeOpener?
    private var unwindWarned = false
    /// Zone names by cgroup v2 id, written to the zonename map before tracing starts.
    public var zoneNames: [UInt64: String] = [:]

    public init(script: CompiledScript, options: TraceOptions, output: Int32 = 1) throws {
        self.script = script
        self.options = options
        self.output = output
        try parseFormats()
    }

    /// The printf and printa formats of actions not parsed yet.
    func parseFormats() throws {
        for (i, a) in script.actions.enumerated() where formats[i] == nil && (a.kind == .printf || (a.kind == .printa && !a.format.isEmpty)) {
            do {
                formats[i] = try PrintfFormat(a.format)
            } catch {
                throw DCompileError(.type, "\(a.kind == .printf ? "printf" : "printa")( ): \(oneLine(error))", at: a.location)
            }
        }
    }

    /// Number of programs loaded.
    public var programCount: Int { loaded.count }

    // MARK: Load and attach

    /// Creates the maps and loads every program; a verifier rejection becomes a D error
    /// at the source line of the instruction the verifier stopped at.
    public func load() throws {
        for spec in script.maps {
            maps.append(try BPFMap(spec.kind, name: spec.name, keySize: spec.keySize, valueSize: spec.valueSize, maxEntries: spec.maxEntries))
        }
        for (index, entries) in script.mapContents {
            for e in entries { try maps[index].update(e.key, e.value) }
        }
        if let z = script.zoneNameMap {
            for (id, name) in zoneNames { try maps[z].update(le64(id), paddedString(name)) }
        }
        if let w = script.unwind?.source.warning {
            unwindWarned = true
            FD.writeAll(2, Array("\(options.programName): \(w)\n".utf8))
        }
        for p in script.programs { loaded.append((p, try loadProgram(p))) }
    }

    /// Re-reads the target's mappings and process set for ustack()'s table and updates
    /// dt_unwind and dt_unwind_pids when they changed (UserUnwindTable.refresh). A warning
    /// (rows past the table's size) is printed once.
    public func refreshUnwind() {
        guard let u = script.unwind, u.table < maps.count, u.pids < maps.count else { return }
        let before = Set(u.source.pids)
        guard u.source.refresh() else { return }
        try? maps[u.table].update(le32(0), u.source.bytes)
        let now = Set(u.source.pids)
        for gone in before.subtracting(now) { maps[u.pids].delete(le32(UInt32(bitPattern: gone))) }
        for new in now.subtracting(before) { try? maps[u.pids].update(le32(UInt32(bitPattern: new)), le64(1)) }
        if let w = u.source.warning, !unwindWarned {
            unwindWarned = true
            FD.writeAll(2, Array("\(options.programName): \(w)\n".utf8))
        }
    }

    func loadProgram(_ p: CompiledProgram) throws -> BPFProgram {
        var code = p.instructions
        for r in p.mapRelocations { code[r.instruction].imm = maps[r.map].fd }
        do {
            return try BPFProgram(p.kind, name: "dt_\(p.probe.name)", instructions: code)
        } catch let r as BPFProgram.Rejected {
            if getenv("LUMOS_TRACE_VERIFIER_LOG") != nil { FD.writeAll(2, Array(r.log.utf8)) }
            let line = r.instruction.flatMap { $0 < p.lines.count ? p.lines[$0] : nil } ?? 0
            throw DCompileError(.verifier, "the kernel verifier rejected the program for \(p.probe.fullName): \(r.reason)", at: SourceLocation(line: line, column: 0))
        }
    }

    /// Loads and attaches the programs `DCompiler.compileLate` made for probes found after
    /// attach (uprobes, so last clause first, as in `attach`), and takes its probes and
    /// actions. Nothing is attached when one fails to load.
    public func attachLate(_ late: CompiledScript) throws {
        var fresh: [(CompiledProgram, BPFProgram)] = []
        for p in late.programs { fresh.append((p, try loadProgram(p))) }
        script.probes = late.probes
        script.actions = late.actions
        script.programs += late.programs
        try parseFormats()
        try ExpeditedGracePeriods.shared.during {
            for (p, prog) in fresh.reversed() { try attach(p, prog) }
        }
        loaded += fresh
    }

    /// Attaches every program except BEGIN/END/ERROR with the probes layer's attach code,
    /// then maps the ring buffer. Programs on one probe must run in clause order (a clause
    /// sees what the ones before it did). Tracepoints and perf events run their programs
    /// in the order they were attached, uprobes in the reverse order (the kernel adds a
    /// uprobe's consumers at the head of its list), so uprobes are attached last to first.
    public func attach() throws {
        let uprobes = loaded.filter { if case .uprobe = $0.0.probe.attach { return true } else { return false } }
        let others = loaded.filter { if case .uprobe = $0.0.probe.attach { return false } else { return true } }
        for (p, prog) in others { try attach(p, prog) }
        // Registering a uprobe waits for an RCU grace period (ExpeditedGracePeriods).
        if !uprobes.isEmpty {
            try ExpeditedGracePeriods.shared.during {
                for (p, prog) in uprobes.reversed() { try attach(p, prog) }
            }
        }
        try openRing()
    }

    func attach(_ p: CompiledProgram, _ prog: BPFProgram) throws {
        switch p.probe.attach {
        case .begin, .end, .error:
            return
        case .tracepoint(let cat, let name):
            attachments.append(try ProbeAttach.tracepoint(TracepointName(category: cat, name: name), program: prog.fd, tracefs: try kernelTracefs()))
        case .allSyscalls(let entry, _):
            let tp = TracepointName(category: "raw_syscalls", name: entry ? "sys_enter" : "sys_exit")
            attachments.append(try ProbeAttach.tracepoint(tp, program: prog.fd, tracefs: try kernelTracefs()))
        case .profile(let hz):
            // Period mode, not frequency mode: the kernel's frequency adjustment starves an idle
            // CPU of samples, while DTrace's profile-N fires on every CPU at N Hz, busy or idle.
            attachments.append(try ProbeAttach.profile(.period(nanoseconds: 1_000_000_000 / max(1, hz)), program: prog.fd))
        case .tick(let period):
            attachments.append(try ProbeAttach.tick(.period(nanoseconds: period), program: prog.fd, cpu: OnlineCPUs.list().first ?? 0))
        case .uprobe(let path, let offset, let pid, let isReturn, let semaphore):
            if let key = UprobeOpener.Key(p.probe.attach), let fd = preopened?.take(key) {
                attachments.append(try ProbeAttach.uprobe(opened: fd, path: path, offset: offset, returnProbe: isReturn, program: prog.fd))
            } else {
                attachments.append(try ProbeAttach.uprobe(path: path, offset: offset, returnProbe: isReturn, program: prog.fd, pid: pid ?? -1, semaphoreOffset: semaphore))
            }
        }
    }

    func kernelTracefs() throws -> Tracefs {
        if let tracefs { return tracefs }
        let t = try Tracefs.locate()
        tracefs = t
        return t
    }

    public func detach() { attachments.removeAll() }

    /// Runs the BEGIN (or END) clauses in this task, in order.
    public func run(_ point: ProbeAttachPoint, arguments: [UInt64] = []) throws {
        let context = (0..<6).flatMap { i in le64(i < arguments.count ? arguments[i] : 0) }
        var ran = false
        for (p, prog) in loaded where p.probe.attach == point {
            if !ran { try openRing() }
            try prog.testRun(context: context)
            ran = true
            if exitStatus != nil && point == .begin { break }
        }
        if ran { drain() }
    }

    // MARK: Records

    /// Waits up to `timeoutMs` for records and prints them. Returns the number handled.
    @discardableResult
    public func poll(timeoutMs: Int32) -> Int {
        ring?.wait(timeoutMs: timeoutMs)
        return drain()
    }

    /// Maps the ring buffer. Done after the programs are attached (DTrace.run) or before BEGIN's
    /// records are read, not at load: mapping populates the page tables for twice its size
    /// (4 MiB by default), and the probes can be firing meanwhile; their records wait in the
    /// kernel. A failure is an error of the session, not something to retry.
    public func openRing() throws {
        guard ring == nil, script.ringBufferMap < maps.count else { return }
        ring = try RingBuffer(map: maps[script.ringBufferMap])
    }

    @discardableResult
    public func drain() -> Int {
        guard let ring else { return 0 }
        var out = ""
        let n = ring.drain { record in out += self.render(record) }
        write(out)
        reportDrops()
        let errors = pendingErrorRuns
        pendingErrorRuns = []
        for args in errors where loaded.contains(where: { $0.0.probe.attach == .error }) {
            try? run(.error, arguments: args)
        }
        return n
    }

    // MARK: Speculations

    /// Records of an active speculation, in ring-buffer order (one ring for all CPUs, so
    /// this is the order they were written in), and their bytes (bounded by specsize).
    struct HeldSpeculation {
        var bytes = 0
        var records: [[UInt8]] = []
    }
    var held: [Int: HeldSpeculation] = [:]
    /// Each slot's current generation (the kernel advances it when commit() or discard()
    /// frees the slot). A record of an older one belongs to a use of the slot that has
    /// ended; one of a newer one means that use's commit or discard record was lost (ring
    /// buffer full), and its held records are dropped.
    var generations: [Int: UInt8] = [:]
    var replaying = false
    /// Records a full speculation had no room for (DTrace's "speculative drops").
    public private(set) var speculativeDrops: UInt64 = 0
    var speculativeDropsSeen: UInt64 = 0

    /// Whether `generation` is the slot's current one, moving to it when it is newer
    /// (at most 127 ahead, modulo 256).
    func current(slot: Int, _ generation: UInt8) -> Bool {
        let ahead = generation &- generations[slot, default: 0]
        if ahead == 0 { return true }
        guard ahead < 128 else { return false }
        generations[slot] = generation
        held[slot] = nil
        return true
    }

    func hold(_ record: UnsafeRawBufferPointer, slot: Int, generation: UInt8) {
        guard current(slot: slot, generation) else { return }
        guard (held[slot]?.bytes ?? 0) + record.count <= options.speculationSize else {
            speculativeDrops += 1
            return
        }
        // Mutated in place: a copy of the entry would copy its records on every append.
        held[slot, default: HeldSpeculation()].bytes += record.count
        held[slot, default: HeldSpeculation()].records.append(Array(record))
    }

    /// commit: the held records are printed as if they had just arrived; discard: dropped.
    /// The kernel has freed the slot; its next use has the next generation.
    func endSpeculation(slot: Int, generation: UInt8, commit: Bool) -> String {
        guard current(slot: slot, generation) else { return "" }
        var out = ""
        if let h = held.removeValue(forKey: slot), commit {
            replaying = true
            for r in h.records { out += r.withUnsafeBytes { render($0) } }
            replaying = false
        }
        generations[slot] = generation &+ 1
        return out
    }

    /// speculation() calls that returned 0 because every slot was active.
    public private(set) var failedSpeculations: UInt64 = 0

    /// "dtrace: N failed speculations (no speculative buffer available)" and "dtrace: N
    /// speculative drops", as libdtrace words them (totals over all CPUs). DTrace's
    /// "(available buffer(s) still busy)" cannot happen here: commit() and discard() free
    /// the slot in the kernel.
    func speculationNotices() -> String {
        var notice = ""
        if let perCPU = maps[script.dropsMap].lookup(le32(2)) {
            let total = perCPU.reduce(UInt64(0)) { $0 + UInt64(bitPattern: AggregationDecoder.int($1, 0)) }
            if total > failedSpeculations {
                let n = total - failedSpeculations
                notice += "\(options.programName): \(n) failed speculation\(n == 1 ? "" : "s") (no speculative buffer available)\n"
                failedSpeculations = total
            }
        }
        if speculativeDrops > speculativeDropsSeen {
            let n = speculativeDrops - speculativeDropsSeen
            notice += "\(options.programName): \(n) speculative drop\(n == 1 ? "" : "s")\n"
            speculativeDropsSeen = speculativeDrops
        }
        return notice
    }

    var dropsSeen: [[UInt64]] = [[], []]
    /// Total drops so far: records the ring buffer had no room for, and aggregation drops.
    public private(set) var drops: (records: UInt64, aggregations: UInt64) = (0, 0)

    /// DTrace's notices: "dtrace: N drops on CPU C", "dtrace: N aggregation drops on CPU C".
    func reportDrops() {
        guard maps.count > script.dropsMap else { return }
        var notice = ""
        for index in 0..<2 {
            guard let perCPU = maps[script.dropsMap].lookup(le32(UInt32(index))) else { continue }
            let counts = perCPU.map { UInt64(bitPattern: AggregationDecoder.int($0, 0)) }
            let before = dropsSeen[index].count == counts.count ? dropsSeen[index] : [UInt64](repeating: 0, count: counts.count)
            for (cpu, (now, then)) in zip(counts, before).enumerated() where now > then {
                notice += "\(options.programName): \(now - then) \(index == 1 ? "aggregation " : "")drops on CPU \(cpu)\n"
                if index == 0 { drops.records += now - then } else { drops.aggregations += now - then }
            }
            dropsSeen[index] = counts
        }
        if script.speculationMap != nil { notice += speculationNotices() }
        if !notice.isEmpty { FD.writeAll(2, Array(notice.utf8)) }
    }

    func write(_ s: String) {
        if !s.isEmpty { FD.writeAll(output, Array(s.utf8)) }
    }

    /// True while the last firing's line is still open (not quiet): the next firing or the
    /// end of tracing closes it with a newline, as dtrace does after each firing's records.
    var firingOpen = false

    func closeFiring() -> String {
        guard firingOpen else { return "" }
        firingOpen = false
        return TraceText.endOfFiring
    }

    func render(_ record: UnsafeRawBufferPointer) -> String {
        guard record.count >= Layout.recordHeader else { return "" }
        let word0 = record.loadUnaligned(fromByteOffset: 0, as: UInt32.self)
        let kindRaw = word0 & 0xffff
        let sequence = word0 >> 16
        let id = Int(record.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        // Word 8: the CPU, and above it the speculation tag of records written under speculate().
        let word8 = record.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        let cpu = Int(word8 & 0xffff)
        let tag = word8 >> 16
        let probeID = Int(record.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        guard let kind = RecordKind(rawValue: kindRaw) else { return "" }
        if kind == .commit || kind == .discard {
            return endSpeculation(slot: Int(tag & 0xff), generation: UInt8(tag >> 8), commit: kind == .commit)
        }
        if tag != 0 && !replaying {
            hold(record, slot: Int(tag & 0xff), generation: UInt8(tag >> 8))
            return ""
        }
        let probe = probeID < script.probes.count ? script.probes[probeID] : nil
        var prefix = ""
        if kind == .fault {
            return fault(id: id, probeID: probeID, record: record)
        }
        // A firing's aggregation actions share one snapshot (per CPU: records of firings
        // on different CPUs interleave in the ring).
        if sequence == 0 { views[cpu] = nil }
        if !options.quiet && sequence == 0 {
            prefix += closeFiring()
            if !printedHeading {
                prefix += TraceText.heading
                printedHeading = true
            }
            prefix += TraceText.probeColumn(cpu: cpu, id: probeID + 1, function: probe?.function ?? "", name: probe?.name ?? "")
            firingOpen = true
        }
        if kind == .probeFired { return prefix }
        guard id < script.actions.count else { return "" }
        let action = script.actions[id]
        let values = decode(record, action.argumentTypes)
        // printa's lines start below the probe column.
        let suffix = prefix.isEmpty ? "" : "\n"
        switch kind {
        case .printf:
            return prefix + (formats[id]?.render(values, symbols: addressSymbolizer) ?? "")
        case .trace:
            return prefix + TraceText.trace(values[0], quiet: options.quiet)
        case .exit:
            if case .integer(let v, _, _)? = values.first { exitStatus = Int32(truncatingIfNeeded: v) }
            return prefix
        case .printa:
            let names = action.joined.isEmpty ? [action.aggregation ?? ""] : action.joined
            for n in names { printed.insert(n) }
            let aggs = names.map { view($0, cpu: cpu) }
            if aggs.count > 1 {
                if let f = formats[id] { return prefix + suffix + f.renderAggregations(aggs, symbols: addressSymbolizer) }
                return prefix + suffix + AggregationText.defaultLayout(joined: aggs)
            }
            if let f = formats[id] { return prefix + suffix + f.renderAggregation(aggs[0], symbols: addressSymbolizer) }
            return prefix + suffix + AggregationText.defaultLayout(aggs[0])
        case .clear:
            clear(action.aggregation ?? "", cpu: cpu)
            return prefix
        case .trunc:
            var n = 0
            if case .integer(let v, _, _)? = values.first { n = Int(v) }
            trunc(action.aggregation ?? "", keep: n, cpu: cpu)
            return prefix
        case .normalize:
            if case .integer(let v, _, _)? = values.first, v != 0 { normals[action.aggregation ?? ""] = v }
            return prefix
        case .denormalize:
            normals[action.aggregation ?? ""] = 1
            return prefix
        case .probeFired, .fault, .commit, .discard:
            return ""
        }
    }

    /// %a / %A: kernel addresses resolve through kallsyms; user addresses (which need the
    /// process that recorded them) print as hex.
    var addressSymbolizer: AddressSymbolizer {
        let kernel = symbols.kernelSymbols
        return { address in address >= 0xffff_8000_0000_0000 ? kernel.value.symbolize(address) : nil }
    }

    /// Faults counted so far (reported on stderr as DTrace does).
    public private(set) var faults = 0
    var pendingErrorRuns: [[UInt64]] = []

    /// "dtrace: error on enabled probe ID N (ID N: p:m:f:n): invalid address (0x0) in
    /// action #K at DIF offset 0" (no DIF here: the offset is always 0); ERROR clauses run
    /// after the current batch of records.
    func fault(id: Int, probeID: Int, record: UnsafeRawBufferPointer) -> String {
        faults += 1
        guard id < script.actions.count, record.count >= Layout.recordHeader + 8 else { return "" }
        let action = script.actions[id]
        let address = record.loadUnaligned(fromByteOffset: Layout.recordHeader, as: UInt64.self)
        let name = probeID < script.probes.count ? script.probes[probeID].fullName : "?"
        // Only a bad address is printed with its value (libdtrace's dt_handle_err).
        let details = action.faultCode == 1 ? " (0x\(String(address, radix: 16)))" : ""
        let message = "\(options.programName): error on enabled probe ID \(probeID + 1) (ID \(probeID + 1): \(name)): \(action.format)\(details) in action #\(action.actionNumber) at DIF offset 0\n"
        FD.writeAll(2, Array(message.utf8))
        pendingErrorRuns.append([0, UInt64(probeID + 1), UInt64(action.actionNumber), 0, UInt64(action.faultCode), action.faultCode == 1 ? address : 0])
        return ""
    }

    func decode(_ record: UnsafeRawBufferPointer, _ types: [DType]) -> [TraceValue] {
        var off = Layout.recordHeader
        var out: [TraceValue] = []
        for t in types {
            guard off + t.storageSize <= record.count else { break }
            switch t {
            case .stack(let user):
                out.append(.stack(symbols.frames(record[off..<off + t.storageSize], user: user)))
            case .string:
                let bytes = record[off..<off + Layout.stringSize].prefix(while: { $0 != 0 })
                out.append(.string(String(decoding: bytes, as: UTF8.self)))
            case .integer(let signed, let size):
                let v = record.loadUnaligned(fromByteOffset: off, as: Int64.self)
                out.append(.integer(v, size: size, signed: signed))
            }
            off += t.storageSize
        }
        return out
    }

    // MARK: Aggregations

    /// The merged (all CPUs) contents of an aggregation now.
    public func snapshot(_ name: String) -> Aggregation {
        guard let spec = script.aggregations.first(where: { $0.name == name }) else { return Aggregation(name: name) }
        let map = maps[spec.map]
        var records: [AggregationRecord] = []
        for key in map.keys() {
            guard let perCPU = map.lookup(key) else { continue }
            var merged: AggregationValue?
            for bytes in perCPU {
                guard let v = AggregationDecoder.value(spec, bytes) else { continue }
                merged = merged.map { $0.merged(with: v) } ?? v
            }
            if let merged {
                records.append(AggregationRecord(keys: AggregationDecoder.keys(spec, key, symbols), value: merged))
            }
        }
        return Aggregation(name: name, records: records, normal: normals[name] ?? 1)
    }

    /// One read of an aggregation with the kernel's key bytes, for a consumer that keeps its
    /// own state between reads (Analytics turns running totals into per-second values and
    /// deletes idle keys: docs/analytics.md).
    public func rows(_ name: String) -> [(key: [UInt8], record: AggregationRecord)] {
        guard let spec = script.aggregations.first(where: { $0.name == name }) else { return [] }
        return read(spec)
    }

    /// Deletes one key (bytes from `rows`) from an aggregation's map.
    public func deleteKey(_ name: String, _ key: [UInt8]) {
        guard let spec = script.aggregations.first(where: { $0.name == name }) else { return }
        maps[spec.map].delete(key)
    }

    /// Adds names to the zonename map of a loaded session (zones started since `load`).
    public func addZoneNames(_ names: [UInt64: String]) {
        guard let z = script.zoneNameMap, z < maps.count else { return }
        for (id, name) in names where zoneNames[id] != name {
            if (try? maps[z].update(le64(id), paddedString(name))) != nil { zoneNames[id] = name }
        }
    }

    /// One read of an aggregation: its keys as the kernel holds them with the merged records.
    func read(_ spec: AggregationSpec) -> [(key: [UInt8], record: AggregationRecord)] {
        let map = maps[spec.map]
        var rows: [(key: [UInt8], record: AggregationRecord)] = []
        for key in map.keys() {
            guard let perCPU = map.lookup(key) else { continue }
            var v: AggregationValue?
            for b in perCPU {
                guard let x = AggregationDecoder.value(spec, b) else { continue }
                v = v.map { $0.merged(with: x) } ?? x
            }
            if let v { rows.append((key, AggregationRecord(keys: AggregationDecoder.keys(spec, key, symbols), value: v))) }
        }
        return rows
    }

    /// Snapshots taken by the aggregation actions of the firing now being printed, per CPU
    /// and aggregation: trunc(), clear(), printa() and normalize() of one firing act on the
    /// same contents, whatever probes add meanwhile (as DTrace's consumer acts on its copy).
    var views: [Int: [String: [(key: [UInt8], record: AggregationRecord)]]] = [:]

    func viewRows(_ spec: AggregationSpec, cpu: Int) -> [(key: [UInt8], record: AggregationRecord)] {
        if let v = views[cpu]?[spec.name] { return v }
        let rows = read(spec)
        views[cpu, default: [:]][spec.name] = rows
        return rows
    }

    func view(_ name: String, cpu: Int) -> Aggregation {
        guard let spec = script.aggregations.first(where: { $0.name == name }) else { return Aggregation(name: name) }
        return Aggregation(name: name, records: viewRows(spec, cpu: cpu).map(\.record), normal: normals[name] ?? 1)
    }

    /// Zeroes the values of the snapshot's keys (the keys stay, as in DTrace).
    func clear(_ name: String, cpu: Int) {
        guard let spec = script.aggregations.first(where: { $0.name == name }) else { return }
        let map = maps[spec.map]
        let zero = [UInt8](repeating: 0, count: spec.valueSize)
        let rows = viewRows(spec, cpu: cpu)
        for r in rows { try? map.update(r.key, zero) }
        views[cpu, default: [:]][name] = rows.compactMap { r in
            AggregationDecoder.value(spec, zero).map { (r.key, AggregationRecord(keys: r.record.keys, value: $0)) }
        }
    }

    /// Keeps the snapshot's top n (bottom -n) keys and deletes the others from the kernel;
    /// keys probes add after the snapshot stay for the next one.
    func trunc(_ name: String, keep n: Int, cpu: Int) {
        guard let spec = script.aggregations.first(where: { $0.name == name }) else { return }
        let map = maps[spec.map]
        let rows = viewRows(spec, cpu: cpu)
        var kept: [(key: [UInt8], record: AggregationRecord)] = []
        if n != 0 {
            let order = Aggregation(name: spec.name, records: rows.map(\.record)).sorted()
            let keep = n > 0 ? Array(order.suffix(n)) : Array(order.prefix(-n))
            var left = keep
            for r in rows {
                if let i = left.firstIndex(of: r.record) { left.remove(at: i); kept.append(r) }
            }
        }
        let keptKeys = Set(kept.map(\.key))
        for r in rows where !keptKeys.contains(r.key) { map.delete(r.key) }
        views[cpu, default: [:]][name] = kept
    }

    /// Runs END, drains the last records, and prints the aggregations not yet printed.
    public func finish() throws {
        // Disabling is immediate; closing a tracepoint's perf event waits for an RCU grace
        // period (~80 ms here), so the output is printed first and the events closed last.
        // Stopped first: a probe that fires while the links are being disabled changes
        // nothing END prints.
        if script.stateMap < maps.count { try? maps[script.stateMap].update(le32(0), le64(1)) }
        for link in attachments { link.disable() }
        defer { detach() }
        drain()
        try run(.end)
        write(closeFiring())
        let rest = script.aggregations.filter { !printed.contains($0.name) }.map { snapshot($0.name) }.filter { !$0.records.isEmpty }
        if !rest.isEmpty {
            write("\n" + AggregationText.endOfTracing(rest))
        }
    }
}

/// Turns kernel map bytes into the output layer's aggregation values.
enum AggregationDecoder {
    static func int(_ b: [UInt8], _ off: Int) -> Int64 {
        var v: UInt64 = 0
        for i in 0..<8 where off + i < b.count { v |= UInt64(b[off + i]) << (8 * UInt64(i)) }
        return Int64(bitPattern: v)
    }

    static func value(_ spec: AggregationSpec, _ b: [UInt8]) -> AggregationValue? {
        switch spec.function {
        case .count: return .count(int(b, 0))
        case .sum: return .sum(int(b, 0))
        case .avg: return .avg(count: int(b, 0), total: int(b, 8))
        case .min: return int(b, 0) == 0 ? nil : .min(int(b, 8))
        case .max: return int(b, 0) == 0 ? nil : .max(int(b, 8))
        case .stddev:
            let squares = UInt128(UInt64(bitPattern: int(b, 24))) << 64 | UInt128(UInt64(bitPattern: int(b, 16)))
            return .stddev(count: int(b, 0), total: int(b, 8), sumOfSquares: squares)
        case .quantize:
            return .quantize((0..<PowerOfTwoBuckets.count).map { int(b, $0 * 8) })
        case .lquantize:
            let p = spec.parameters
            guard let l = try? LinearBuckets(low: p[0], high: p[1], step: p[2]) else { return nil }
            return .lquantize(l, (0..<l.count).map { int(b, $0 * 8) })
        case .llquantize:
            let p = spec.parameters
            guard let l = try? LogLinearBuckets(factor: p[0], low: p[1], high: p[2], steps: p[3]) else { return nil }
            return .llquantize(l, (0..<l.count).map { int(b, $0 * 8) })
        }
    }

    static func keys(_ spec: AggregationSpec, _ key: [UInt8], _ symbols: StackSymbols) -> [AggregationKey] {
        var off = 0
        var out: [AggregationKey] = []
        for t in spec.keyTypes {
            switch t {
            case .stack(let user):
                out.append(.stack(symbols.frames(key[off..<min(key.count, off + t.storageSize)], user: user)))
            case .string:
                let bytes = key[off..<min(key.count, off + Layout.stringSize)].prefix(while: { $0 != 0 })
                out.append(.string(String(decoding: bytes, as: UTF8.self)))
            case .integer(_, let size):
                out.append(.integer(int(key, off), size: size))
            }
            off += t.storageSize
        }
        return out
    }
}
