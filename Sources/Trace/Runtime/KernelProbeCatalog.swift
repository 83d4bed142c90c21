import Glibc
import LumosCore

/// Resolves probe descriptions against this kernel's tracefs: the dtrace, syscall,
/// profile, proc, sched and io providers, and every tracepoint category as a provider
/// of its own (`sched:::sched_switch`, `block:::block_rq_issue`).
public final class KernelProbeCatalog: ProbeCatalog, @unchecked Sendable {
    let root: String
    /// Syscalls that have tracepoints, by name, with their numbers when known.
    public let syscalls: [String]
    public let syscallNumbers: [String: Int]
    var formats: [String: [TracepointField]] = [:]
    let lock = NSLockish()

    public init() throws {
        root = try TraceFS.root()
        let names = Files.list("\(root)/events/syscalls")
        syscalls = names.filter { $0.hasPrefix("sys_enter_") }.map { String($0.dropFirst("sys_enter_".count)) }.sorted()
        syscallNumbers = KernelProbeCatalog.readSyscallNumbers()
    }

    /// `__NR_name number` from the installed kernel headers (x86_64).
    static func readSyscallNumbers() -> [String: Int] {
        var out: [String: Int] = [:]
        for path in ["/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h"] {
            guard let text = TraceFS.read(path) else { continue }
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
            let f = TracepointField.parseFormat(TraceFS.read("\(root)/events/\(key)/format") ?? "")
            formats[key] = f
            return f
        }
    }

    func exists(_ category: String, _ name: String) -> Bool {
        access("\(root)/events/\(category)/\(name)/id", F_OK) == 0
    }

    /// DTrace's stable providers mapped onto tracepoints.
    static let aliases: [String: [String: (String, String)]] = [
        "proc": ["exec": ("sched", "sched_process_exec"), "exit": ("sched", "sched_process_exit"), "create": ("sched", "sched_process_fork")],
        "sched": ["on-cpu": ("sched", "sched_switch"), "off-cpu": ("sched", "sched_switch")],
        "io": ["start": ("block", "block_rq_issue"), "done": ("block", "block_rq_complete")],
    ]

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
                let fns = syscalls.filter { globMatch(d.function, $0) }
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
        // Stable providers over tracepoints.
        for (provider, names) in KernelProbeCatalog.aliases where globMatch(d.provider, provider) && !anyProvider {
            for (name, (cat, tp)) in names.sorted(by: { $0.key < $1.key }) where globMatch(d.name, name) && exists(cat, tp) {
                add(ResolvedProbe(provider: provider, function: "", name: name,
                    attach: .tracepoint(category: cat, name: tp), context: .tracepoint(fields(category: cat, name: tp))))
            }
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
        return (probes, matched)
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

/// A pthread mutex wrapper (Foundation-free) for the format cache.
final class NSLockish: @unchecked Sendable {
    var m = pthread_mutex_t()
    init() { pthread_mutex_init(&m, nil) }
    deinit { pthread_mutex_destroy(&m) }
    func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&m)
        defer { pthread_mutex_unlock(&m) }
        return body()
    }
}
