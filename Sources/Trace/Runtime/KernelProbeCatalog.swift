import Glibc
import LumosCore

/// Resolves probe descriptions against this kernel's tracefs: the dtrace, syscall,
/// profile, proc, sched and io providers, and every tracepoint category as a provider
/// of its own (`sched:::sched_switch`, `block:::block_rq_issue`).
public final class KernelProbeCatalog: ProbeCatalog, @unchecked Sendable {
    let root: String
    var formats: [String: [TracepointField]] = [:]
    /// $target: the -p process, or the -c command's pid (its binary is `targetCommand`'s).
    public var targetPID: Int32?
    public var targetCommand: String?
    let lock = PthreadMutex()
    /// USDT files read so far this session, by device and inode (docs/trace.md).
    public let usdt = USDTDiscovery()
    /// When set (a tracing run), a provider pattern that names no process is first resolved
    /// from the files this index lists, and the scan of every process waits for
    /// `completeUSDTDiscovery()` after attach (docs/trace.md, "USDT start-up").
    public var usdtIndex: USDTIndex?
    /// Whether anything will show a USDT probe's function: `probefunc` in the program, the
    /// default per-firing output (not -q), a listing. When not, and a description's function
    /// field matches every function, the function names are not looked up (a pass over the
    /// file's symbol table: 0.4 ms for postgres, before the first probe can fire).
    public var usdtFunctionsShown = true
    /// Descriptions resolved from the index alone, in order, until the scan.
    public private(set) var deferredUSDT: [ProbeDescription] = []
    /// Filled on first use: a program naming one syscall needs neither the list of 700-odd
    /// syscall tracepoints nor the header of syscall numbers, and start-up is the time to
    /// the first probe (bench/trace).
    private let syscallList: Lazy<[String]>
    private let syscallNumberTable = Lazy { KernelProbeCatalog.readSyscallNumbers() }

    public init() throws {
        let root = try Tracefs.locate().root
        self.root = root
        syscallList = Lazy {
            Files.list("\(root)/events/syscalls").filter { $0.hasPrefix("sys_enter_") }
                .map { String($0.dropFirst("sys_enter_".count)) }.sorted()
        }
    }

    /// Syscalls that have tracepoints, by name.
    public var syscalls: [String] { syscallList.value }

    /// Syscall numbers by name, from the installed kernel headers.
    public var syscallNumbers: [String: Int] { syscallNumberTable.value }

    /// The syscalls a probe's function field names: one access(2) for a plain name,
    /// the whole list only for a glob.
    func syscalls(matching function: String) -> [String] {
        if !function.isEmpty && !function.contains(where: { "*?[/".contains($0) }) {
            return exists("syscalls", "sys_enter_" + function) ? [function] : []
        }
        return syscalls.filter { globMatch(function, $0) }
    }

    /// `__NR_name number` from the installed kernel headers (x86_64).
    static func readSyscallNumbers() -> [String: Int] {
        var out: [String: Int] = [:]
        for path in ["/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h"] {
            guard let text = TextFile.read(path) else { continue }
            for line in text.split(separator: "\n") where line.hasPrefix("#define __NR_") {
                let parts = line.split(separator: " ")
                if parts.count == 3, let n = Int(parts[2]) { out[String(parts[1].dropFirst(5))] = n }
            }
            break
        }
        return out
    }

    public func fields(category: String, name: String) -> [TracepointField] {
        lock.locked {
            let key = "\(category)/\(name)"
            if let f = formats[key] { return f }
            let f = TracepointField.parseFormat(TextFile.read("\(root)/events/\(key)/format") ?? "")
            formats[key] = f
            return f
        }
    }

    func exists(_ category: String, _ name: String) -> Bool {
        access("\(root)/events/\(category)/\(name)/id", F_OK) == 0
    }

    public func resolve(_ d: ProbeDescription) throws -> (probes: [ResolvedProbe], matched: Int) {
        var probes: [ResolvedProbe] = []
        var matched = 0
        func add(_ p: ResolvedProbe) { probes.append(p); matched += 1 }
        let anyProvider = d.provider.isEmpty || d.provider == "*"

        // dtrace provider.
        if globMatch(d.provider, "dtrace"), d.module.isEmpty || d.module == "*", d.function.isEmpty || d.function == "*" {
            for (n, a) in [("BEGIN", ProbeAttachPoint.begin), ("END", .end), ("ERROR", .error)] where globMatch(d.name, n) && !(d.name.isEmpty && anyProvider) {
                add(ResolvedProbe(provider: "dtrace", name: n, attach: a, context: .none))
            }
        }
        // profile provider.
        if globMatch(d.provider, "profile"), let p = try profileProbe(d) {
            add(p)
        }
        // syscall provider.
        if globMatch(d.provider, "syscall") && !(anyProvider && d.name.isEmpty && d.function.isEmpty) {
            for (entry, name) in [(true, "entry"), (false, "return")] where globMatch(d.name, name) {
                let fns = syscalls(matching: d.function)
                guard !fns.isEmpty else { continue }
                if fns.count == 1 {
                    probes.append(ResolvedProbe(provider: "syscall", function: fns[0], name: name,
                        attach: .tracepoint(category: "syscalls", name: (entry ? "sys_enter_" : "sys_exit_") + fns[0]),
                        context: .syscall(entry: entry, function: fns[0])))
                } else {
                    let numbers = fns.count == syscalls.count ? nil : fns.compactMap { syscallNumbers[$0] }
                    probes.append(ResolvedProbe(provider: "syscall", function: "", name: name,
                        attach: .allSyscalls(entry: entry, numbers: numbers), context: .syscall(entry: entry, function: nil)))
                }
                matched += fns.count
            }
        }
        // Stable providers over tracepoints (proc, sched, io), as the probes layer maps them.
        for (probe, tp) in ProbeList.stableProbes where !anyProvider && globMatch(d.provider, probe.provider) && globMatch(d.name, probe.name) && exists(tp.category, tp.name) {
            add(ResolvedProbe(provider: probe.provider, function: "", name: probe.name,
                attach: .tracepoint(category: tp.category, name: tp.name), context: .tracepoint(fields(category: tp.category, name: tp.name))))
        }
        // Every tracepoint category as a provider: category:::name.
        if !anyProvider, d.module.isEmpty || d.module == "*", d.function.isEmpty || d.function == "*" {
            let cats = Files.list("\(root)/events").filter { globMatch(d.provider, $0) && $0 != "syscalls" }
            for cat in cats.sorted() {
                for tp in Files.list("\(root)/events/\(cat)").sorted() where globMatch(d.name, tp) && exists(cat, tp) {
                    add(ResolvedProbe(provider: cat, name: tp, attach: .tracepoint(category: cat, name: tp),
                        context: .tracepoint(fields(category: cat, name: tp))))
                }
            }
        }
        if probes.isEmpty && !anyProvider {
            for p in try userProbes(d) { add(p) }
        }
        return (probes, matched)
    }

    /// pid<PID>::function:entry|return and USDT providers.
    func userProbes(_ d: ProbeDescription) throws -> [ResolvedProbe] {
        if d.provider.hasPrefix("pid"), let pid = Int32(d.provider.dropFirst(3)) {
            return try functionProbes(pid: pid, d)
        }
        if usdtIndex != nil, !usdt.hasScannedHost, scansHost(d.provider) {
            let found = usdtProbes(d, candidates: indexedProbes(d.provider))
            if !found.isEmpty {
                deferredUSDT.append(d)
                return found
            }
        }
        return usdtProbes(d, candidates: usdtCandidates(d.provider))
    }

    /// The probes of the files the index names for a provider pattern, each read now (its
    /// notes, not the index, give offsets) and only if it is still the file indexed.
    func indexedProbes(_ provider: String) -> [USDTProbe] {
        guard let index = usdtIndex else { return [] }
        var out: [USDTProbe] = []
        for e in index.files(providerMatching: provider) where FileID(path: e.path) == e.id {
            out += (try? usdt.probes(inFile: e.path)) ?? []
        }
        return out
    }

    /// The scan of every process, put off by the index, and the index rewritten from it:
    /// returns each deferred description with all the probes it matches now (those attached
    /// already among them; `DCompiler.compileLate` keeps the new ones). A tracing run calls
    /// this once it has attached.
    public func completeUSDTDiscovery() -> [(description: ProbeDescription, probes: [ResolvedProbe])] {
        let deferred = deferredUSDT
        deferredUSDT = []
        guard let index = usdtIndex, !deferred.isEmpty || usdt.hasScannedHost else { return [] }
        let all = usdt.hostProbes()
        index.record(all)
        return deferred.map { ($0, usdtProbes($0, candidates: all)) }
    }

    /// Whether `usdtCandidates` answers a provider with the scan of every process.
    func scansHost(_ provider: String) -> Bool {
        targetPID == nil && targetCommand == nil && !(provider.last?.isNumber ?? false)
    }

    func usdtProbes(_ d: ProbeDescription, candidates: [USDTProbe]) -> [ResolvedProbe] {
        var out: [ResolvedProbe] = []
        var seen = Set<String>()
        // Provider, module and name first; function names are looked up only for the
        // probes left (one pass over each of their files' symbol tables).
        let matching = candidates.filter { p in
            (globMatch(d.provider, p.provider) || globMatch(d.provider, p.dtraceProvider))
                && globMatch(d.module, p.module) && (globMatch(d.name, p.dtraceName) || globMatch(d.name, p.name))
        }
        let named = usdtFunctionsShown || !(d.function.isEmpty || d.function == "*")
        for p in usdt.matched(matching, functions: named) where globMatch(d.function, p.function) {
            let key = "\(p.attachPath):\(p.fileOffset):\(p.pid ?? -1)"
            if !seen.insert(key).inserted { continue }
            out.append(ResolvedProbe(provider: p.dtraceProvider, module: p.module, function: p.function, name: p.dtraceName,
                attach: .uprobe(path: p.attachPath, offset: p.fileOffset, pid: p.pid, isReturn: false, semaphore: p.semaphoreOffset),
                context: .usdt(p.arguments, symbolOffsets: symbolOffsets(p))))
        }
        return out
    }

    /// For RIP-relative arguments: each named symbol's value minus the probe's address.
    func symbolOffsets(_ p: USDTProbe) -> [String: Int64] {
        var out: [String: Int64] = [:]
        for a in p.arguments {
            guard case .memory(_, _, _, _, let symbol?) = a.location, let value = usdt.symbolValue(p, named: symbol) else { continue }
            out[symbol] = Int64(bitPattern: value &- p.address)
        }
        return out
    }

    /// USDT probes a provider pattern may name: NAME<pid> in that process; the -c command's
    /// binary or the -p process; else every file mapped by a running process (attached
    /// for all processes, so `postgresql*` covers every backend).
    func usdtCandidates(_ provider: String) -> [USDTProbe] {
        let digits = String(provider.reversed().prefix(while: { $0.isNumber }).reversed())
        // The -c command is still a shell waiting to exec it: read its binary instead.
        if !digits.isEmpty, let pid = Int32(digits), pid != targetPID || targetCommand == nil,
           let found = try? usdt.probes(inProcess: pid), !found.isEmpty {
            return found
        }
        if let cmd = targetCommand, let word = cmd.split(separator: " ").first,
           let found = try? usdt.probes(forCommand: String(word)), !found.isEmpty {
            return found.map { var p = $0; p.pid = targetPID; return p }
        }
        if let pid = targetPID, let found = try? usdt.probes(inProcess: pid), !found.isEmpty {
            return found
        }
        return usdt.hostProbes()
    }

    /// pid<PID>:module:function:entry|return: a uprobe on a function symbol of the
    /// process's executable (module empty) or of the mapped files whose name matches.
    func functionProbes(pid: Int32, _ d: ProbeDescription) throws -> [ResolvedProbe] {
        var exe: String
        var files: [String]
        if pid == targetPID, let cmd = targetCommand, let word = cmd.split(separator: " ").first,
           let path = ProcessMaps.resolveCommand(String(word)) {
            // The -c command has not exec'd yet: its functions are in the binary it will run.
            exe = path
            files = [path]
        } else {
            var exeBuf = [CChar](repeating: 0, count: 4096)
            let n = readlink("/proc/\(pid)/exe", &exeBuf, 4095)
            guard n > 0 else { throw DCompileError(.probe, "failed to grab pid \(pid): no such process", at: d.location) }
            exe = String(decoding: exeBuf.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            files = ProcessMaps.mappedFiles(pid: pid)
        }
        var out: [ResolvedProbe] = []
        for f in files where d.module.isEmpty ? f == exe : globMatch(d.module, Files.basename(f)) {
            let attach = files.count == 1 && f == exe && pid == targetPID && targetCommand != nil ? f : ProcessMaps.attachPath(pid: pid, path: f)
            guard let elf = try? ELFFile(path: attach), let symbols = try? elf.symbols() else { continue }
            var seen = Set<UInt64>()
            for sym in symbols where sym.kind == .function && sym.value != 0 && globMatch(d.function, sym.name) {
                guard let offset = elf.fileOffset(forAddress: sym.value), seen.insert(offset).inserted else { continue }
                for (isReturn, name) in [(false, "entry"), (true, "return")] where globMatch(d.name, name) {
                    out.append(ResolvedProbe(provider: "pid\(pid)", module: Files.basename(f), function: sym.name, name: name,
                        attach: .uprobe(path: attach, offset: offset, pid: pid, isReturn: isReturn, semaphore: nil),
                        context: .userFunction(isReturn: isReturn)))
                }
            }
        }
        if out.count > 1000 {
            throw DCompileError(.probe, "probe description \(d) matches \(out.count) functions; narrow it (at most 1000)", at: d.location)
        }
        return out
    }

    /// profile-N / tick-N with DTrace's units (ns, us, ms, s, m, h, d, hz; default hz).
    func profileProbe(_ d: ProbeDescription) throws -> ResolvedProbe? {
        let n = d.name
        let isTick = n.hasPrefix("tick-")
        guard isTick || n.hasPrefix("profile-") else { return nil }
        let spec = n.dropFirst(isTick ? 5 : 8)
        let digits = spec.prefix(while: { $0.isNumber })
        let unit = spec.dropFirst(digits.count).lowercased()
        guard let value = UInt64(digits), value > 0 else {
            throw DCompileError(.probe, "invalid probe description \"\(d)\": \(n) needs a positive rate", at: d.location)
        }
        let nsPer: [String: UInt64] = ["ns": 1, "nsec": 1, "us": 1_000, "usec": 1_000, "ms": 1_000_000, "msec": 1_000_000,
                                       "s": 1_000_000_000, "sec": 1_000_000_000, "m": 60_000_000_000, "min": 60_000_000_000,
                                       "h": 3_600_000_000_000, "hour": 3_600_000_000_000, "d": 86_400_000_000_000, "day": 86_400_000_000_000]
        var hz: UInt64?
        var period: UInt64?
        if unit.isEmpty || unit == "hz" {
            hz = value
            period = 1_000_000_000 / value
        } else if let m = nsPer[unit] {
            period = value * m
        } else {
            throw DCompileError(.probe, "invalid probe description \"\(d)\": unknown time unit \"\(unit)\"", at: d.location)
        }
        let attach: ProbeAttachPoint = isTick ? .tick(periodNs: period!) : (hz.map { .profile(hz: $0) } ?? .profile(hz: max(1, 1_000_000_000 / period!)))
        return ResolvedProbe(provider: "profile", name: n, attach: attach, context: .perfEvent)
    }
}

/// A pthread mutex (Foundation-free) guarding the format cache.
final class PthreadMutex: @unchecked Sendable {
    var m = pthread_mutex_t()
    init() { pthread_mutex_init(&m, nil) }
    deinit { pthread_mutex_destroy(&m) }
    func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&m)
        defer { pthread_mutex_unlock(&m) }
        return body()
    }
}
