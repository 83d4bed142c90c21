import Glibc
import LumosCore

/// What `dtrace` was asked to do: the parsed command line (dtrace(1M) flags).
public struct DTraceInvocation: Sendable {
    /// Program sources in order: `-n TEXT` (file nil) or `-s FILE` (its path).
    public var sources: [(text: String, file: String?)] = []
    public var list = false
    public var pid: Int32?
    public var command: String?
    public var quiet = false
    public var outputPath: String?
    public var options: [(String, String?)] = []
    public var destructive = false
    /// Positional macro arguments $1, $2, ...
    public var arguments: [String] = []
    public var programName = "dtrace"

    public init() {}
}

/// Runs a `dtrace` invocation end to end and returns its exit status.
public enum DTrace {
    public static func run(_ inv: DTraceInvocation) throws -> Int32 {
        var options = TraceOptions()
        options.quiet = inv.quiet
        options.destructive = inv.destructive
        for (k, v) in inv.options { try options.set(k, v) }

        let catalog = try KernelProbeCatalog()
        if inv.list {
            try listProbes(inv, catalog)
            return 0
        }
        guard !inv.sources.isEmpty else {
            throw LumosError.invalid("no program given: use -n 'probe { actions }' or -s script.d (or -l to list probes)")
        }

        // $target: the -c command (held until attach) or -p pid.
        var target: TargetProcess?
        var macros: [String: String] = ["pid": "\(getpid())", "ppid": "\(getppid())", "uid": "\(getuid())", "gid": "\(getgid())"]
        for (i, a) in inv.arguments.enumerated() { macros["\(i + 1)"] = a }
        if let cmd = inv.command {
            target = try TargetProcess(command: cmd)
            macros["target"] = "\(target!.pid)"
        } else if let p = inv.pid {
            guard kill(p, 0) == 0 || errno == EPERM else {
                throw LumosError.notFound("failed to grab pid \(p): no such process")
            }
            macros["target"] = "\(p)"
        }
        defer { target?.abandon() }

        // Parse each source on its own (errors name it), then compile them as one program.
        var merged = DProgram(clauses: [], declarations: [], pragmas: [])
        var descriptionsPerSource: [Int] = []
        for src in inv.sources {
            do {
                let p = try Parser.parse(src.text, macros: macros)
                merged.clauses += p.clauses
                merged.declarations += p.declarations
                merged.pragmas += p.pragmas
                descriptionsPerSource.append(p.clauses.reduce(0) { $0 + $1.probes.count })
            } catch {
                throw compileFailure(error, src)
            }
        }
        for (k, v) in merged.pragmas { try options.set(k, v) }
        let compiler = DCompiler(catalog: catalog, syscallNumbers: catalog.syscallNumbers, ringBufferBytes: options.bufferSize)
        compiler.destructiveAllowed = options.destructive
        compiler.aggregationEntries = options.aggregationEntries
        let script: CompiledScript
        do {
            script = try compiler.compile(merged)
        } catch let e as DCompileError {
            throw compileFailure(e, sourceOf(e, inv, merged))
        }

        var outFD: Int32 = 1
        if let path = inv.outputPath {
            outFD = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            if outFD < 0 { throw Errno(errno, "open", path) }
        }
        defer { if outFD != 1 { close(outFD) } }

        let session = try TraceSession(script: script, options: options, output: outFD)
        session.zoneNames = ZoneNames.current()
        do {
            try session.load()
        } catch let e as DCompileError {
            throw compileFailure(e, sourceOf(e, inv, merged))
        }

        // "dtrace: description '...' matched N probes", one line per -n / -s.
        if !options.quiet {
            var start = 0
            var notice = ""
            for (i, src) in inv.sources.enumerated() {
                let n = script.matched[start..<start + descriptionsPerSource[i]].reduce(0) { $0 + $1.count }
                start += descriptionsPerSource[i]
                if let file = src.file {
                    notice += TraceText.matched(script: file, count: n, programName: inv.programName)
                } else {
                    notice += TraceText.matched(description: src.text, count: n, programName: inv.programName)
                }
            }
            FD.writeAll(2, Array(notice.utf8))
        }

        Interrupt.install()
        try session.run(.begin)
        if session.exitStatus == nil {
            try session.attach()
            target?.release()
            let timeout = Int32(max(1, min(1000, 1000 / options.switchRateHz)))
            while session.exitStatus == nil && !Interrupt.requested {
                session.poll(timeoutMs: timeout)
                if let t = target, t.hasExited() {
                    session.drain()
                    if !options.quiet { FD.writeAll(2, Array("\(inv.programName): pid \(t.pid) has exited\n".utf8)) }
                    break
                }
                if let p = inv.pid, kill(p, 0) != 0, errno == ESRCH {
                    if !options.quiet { FD.writeAll(2, Array("\(inv.programName): pid \(p) has exited\n".utf8)) }
                    break
                }
            }
        }
        try session.finish()
        return session.exitStatus ?? 0
    }

    /// The source a compile error belongs to, found by its clause's line in the merged program.
    static func sourceOf(_ e: DCompileError, _ inv: DTraceInvocation, _ p: DProgram) -> (text: String, file: String?) {
        inv.sources.count == 1 ? inv.sources[0] : (inv.sources.first { $0.file != nil } ?? inv.sources[0])
    }

    /// DTrace's wording: `-n` errors name the probe specifier, `-s` errors the script.
    static func compileFailure(_ e: DCompileError, _ src: (text: String, file: String?)) -> LumosError {
        if let file = src.file {
            return LumosError(.failed, e.rendered(scriptName: file))
        }
        if e.kind == .probe {
            return LumosError(.failed, "invalid probe specifier \(src.text): \(e.description)")
        }
        return LumosError(.failed, e.rendered(scriptName: nil))
    }

    static func listProbes(_ inv: DTraceInvocation, _ catalog: KernelProbeCatalog) throws {
        var rows: [(String, String, String, String)] = []
        let descriptions: [ProbeDescription]
        if inv.sources.isEmpty {
            descriptions = [ProbeDescription(provider: "*", module: "", function: "", name: "", location: SourceLocation(line: 1, column: 1))]
        } else {
            var found: [ProbeDescription] = []
            for src in inv.sources {
                for part in src.text.split(separator: ",") {
                    found.append(try ProbeDescription.parse(Substring(part).trimmingBlanks, at: SourceLocation(line: 1, column: 1)))
                }
            }
            descriptions = found
        }
        for d in descriptions {
            for p in catalog.list(d) where !rows.contains(where: { $0 == p }) { rows.append(p) }
        }
        var out = ProbeListText.header
        for (i, r) in rows.enumerated() {
            out += ProbeListText.row(id: i + 1, provider: r.0, module: r.1, function: r.2, name: r.3)
        }
        FD.writeAll(1, Array(out.utf8))
    }
}

extension KernelProbeCatalog {
    /// Every probe a description matches, one row per DTrace probe (syscall groups expanded).
    func list(_ d: ProbeDescription) -> [(String, String, String, String)] {
        var out: [(String, String, String, String)] = []
        var all = d
        if d.provider == "*" && d.name.isEmpty {
            // Listing everything: each provider in turn.
            for prov in ["dtrace", "syscall", "profile", "proc", "sched", "io"] + Files.list("\(root)/events").filter({ $0 != "syscalls" }) {
                all.provider = prov
                all.name = prov == "profile" ? "" : "*"
                out += list(all)
            }
            return out
        }
        if globMatch(d.provider, "syscall") {
            for s in syscalls where globMatch(d.function, s) {
                for n in ["entry", "return"] where globMatch(d.name, n) { out.append(("syscall", "", s, n)) }
            }
        }
        if globMatch(d.provider, "profile") && !d.name.isEmpty && d.name != "*" {
            if (try? profileProbe(d)) != nil { out.append(("profile", "", "", d.name)) }
        } else if globMatch(d.provider, "profile") {
            for n in ["profile-97", "profile-199", "profile-499", "profile-997", "profile-1999", "profile-4001", "profile-4999", "tick-1", "tick-10", "tick-100", "tick-500", "tick-1000", "tick-5000"] {
                out.append(("profile", "", "", n))
            }
        }
        var rest = d
        if globMatch(d.provider, "syscall") && !d.provider.isEmpty && d.provider != "*" { return out }
        rest.location = d.location
        if let r = try? resolve(rest) {
            for p in r.probes where p.provider != "syscall" && p.provider != "profile" {
                out.append((p.provider, p.module, p.function, p.name))
            }
        }
        return out
    }
}
