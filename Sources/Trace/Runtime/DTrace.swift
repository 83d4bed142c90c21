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

/// The hold on expedited grace periods a run takes when its probes are resolved.
final class ExpeditedHoldBox: @unchecked Sendable {
    var hold: ExpeditedGracePeriods.Hold?
}

/// Runs a `dtrace` invocation end to end and returns its exit status.
public enum DTrace {
    public static func run(_ inv: DTraceInvocation) throws -> Int32 {
        TraceTiming.mark("run")
        ExpeditedGracePeriods.shared.recoverIfLeft()
        var options = TraceOptions()
        options.quiet = inv.quiet
        options.destructive = inv.destructive
        options.programName = inv.programName
        for (k, v) in inv.options { try options.set(k, v) }

        let catalog = try KernelProbeCatalog()
        TraceTiming.mark("catalog")
        if inv.list {
            FD.writeAll(1, Array(try listing(inv, catalog).utf8))
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
        catalog.targetPID = target?.pid ?? inv.pid
        catalog.targetCommand = inv.command
        if getenv("LUMOS_TRACE_NO_INDEX") == nil { catalog.usdtIndex = USDTIndex() }

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
        TraceTiming.mark("parsed")
        for (k, v) in merged.pragmas { try options.set(k, v) }
        // A program that never shows a function name (-q, no probefunc anywhere in its text)
        // does without the USDT probes' names.
        catalog.usdtFunctionsShown = !options.quiet || inv.sources.contains { $0.text.contains("probefunc") }
        let compiler = DCompiler(catalog: catalog, syscallNumbers: catalog.syscallNumbers, ringBufferBytes: options.bufferSize)
        compiler.destructiveAllowed = options.destructive
        compiler.aggregationEntries = options.aggregationEntries
        compiler.stringLimit = options.stringSize
        compiler.speculations = options.speculations
        compiler.unwindTarget = target?.pid ?? inv.pid
        compiler.unwindTargetIsCommand = target != nil
        // The uprobes, in the order TraceSession.attach opens them (one per clause and probe,
        // last first), are opened while the code is made and loaded.
        // The grace periods stay expedited (ExpeditedGracePeriods) from then until the
        // session has attached them, in one window.
        let opener = UprobeOpener()
        let expedited = ExpeditedHoldBox()
        compiler.onResolved = { clauses in
            TraceTiming.mark("resolved")
            let keys = clauses.flatMap { $0.compactMap { UprobeOpener.Key($0.attach) } }
            if !keys.isEmpty { expedited.hold = ExpeditedGracePeriods.shared.hold() }
            opener.start(keys.reversed())
        }
        defer { expedited.hold?.release() }
        let script: CompiledScript
        do {
            script = try compiler.compile(merged)
        } catch let e as DCompileError {
            throw compileFailure(e, sourceOf(e, inv, merged))
        }

        TraceTiming.mark("compiled")
        var outFD: Int32 = 1
        if let path = inv.outputPath {
            outFD = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            if outFD < 0 { throw Errno(errno, "open", path) }
        }
        defer { if outFD != 1 { close(outFD) } }

        let session = try TraceSession(script: script, options: options, output: outFD)
        session.preopened = opener
        if script.zoneNameMap != nil { session.zoneNames = ZoneNameMap.load() }
        do {
            try session.load()
        } catch let e as DCompileError {
            throw compileFailure(e, sourceOf(e, inv, merged))
        }

        TraceTiming.mark("loaded")
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

        let previousHandlers = Interrupt.install()
        defer { Interrupt.restore(previousHandlers) }
        try session.run(.begin)
        if session.exitStatus == nil {
            TraceTiming.mark("begun")
            try session.attach()
            TraceTiming.mark("attached")
            expedited.hold?.release()
            target?.release()
            do {
                try attachLate(catalog, compiler, session)
                TraceTiming.mark("scanned")
            } catch let e as DCompileError {
                throw compileFailure(e, sourceOf(e, inv, merged))
            }
            let timeout = Int32(max(1, min(1000, 1000 / options.switchRateHz)))
            var unwindCheck = Monotonic.now
            while session.exitStatus == nil && !Interrupt.requested {
                session.poll(timeoutMs: timeout)
                // The target's libraries (after -c's exec, a dlopen) and forked children, for
                // ustack()'s table, twice a second.
                if script.unwind != nil, Monotonic.now - unwindCheck > 0.5 {
                    unwindCheck = Monotonic.now
                    session.refreshUnwind()
                }
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

    /// The scan of every process that the USDT index put off, once the indexed probes are
    /// attached (docs/trace.md, "USDT start-up"): probes it finds that are not attached yet
    /// get their programs now. A late program the verifier rejects is an error as at start.
    static func attachLate(_ catalog: KernelProbeCatalog, _ compiler: DCompiler, _ session: TraceSession) throws {
        let found = catalog.completeUSDTDiscovery()
        guard !found.isEmpty, let late = try compiler.compileLate(found) else { return }
        try session.attachLate(late)
    }

    /// The source a compile error belongs to, found by its clause's line in the merged program.
    static func sourceOf(_ e: DCompileError, _ inv: DTraceInvocation, _ p: DProgram) -> (text: String, file: String?) {
        inv.sources.count == 1 ? inv.sources[0] : (inv.sources.first { $0.file != nil } ?? inv.sources[0])
    }

    /// DTrace's wording: `-n` errors name the probe specifier (`invalid probe specifier
    /// TEXT: ...`), `-s` errors the script (`failed to compile script FILE: line N: ...`);
    /// both carry the line and column here.
    static func compileFailure(_ e: DCompileError, _ src: (text: String, file: String?)) -> LumosError {
        if let file = src.file {
            return LumosError(.failed, e.rendered(scriptName: file))
        }
        // One line: a multi-line -n program is shown with its newlines as spaces.
        let text = src.text.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: " ")
        return LumosError(.failed, "invalid probe specifier \(text): \(e.description)")
    }

    /// `dtrace -l [-n pattern ...] [-p pid]`: the probes layer's listing, with the USDT
    /// probes of the -p process, or without -p of every running process.
    static func listing(_ inv: DTraceInvocation, _ catalog: KernelProbeCatalog) throws -> String {
        var patterns: [ProbePattern] = []
        for src in inv.sources {
            for part in src.text.split(separator: ",") {
                patterns.append(try ProbePattern(parsing: Substring(part).trimmingBlanks))
            }
        }
        // A pattern whose module is a path lists that binary's probes (as bpftrace's
        // `usdt:PATH:*`); the module column then shows the path.
        var files: [ProbeIdentity] = []
        for i in patterns.indices where patterns[i].module.hasPrefix("/") {
            let path = patterns[i].module
            guard Files.exists(path) else { throw LumosError.notFound("\(path): no such file") }
            files += try ProbeList.usdt(file: path, discovery: catalog.usdt)
        }
        let kernel = ProbeList.kernel(tracefs: try Tracefs.locate())
        // Reading every process's maps is skipped when each pattern names a kernel provider.
        let kernelProviders = Set(kernel.map(\.provider))
        let wantsUSDT = inv.pid != nil || patterns.isEmpty
            || patterns.contains { !(ProbePattern.isLiteral($0.provider) && kernelProviders.contains($0.provider)) && !$0.module.hasPrefix("/") }
        let probes = kernel + files
            + (wantsUSDT ? ProbeList.usdt(pids: inv.pid.map { [$0] } ?? [], discovery: catalog.usdt) : [])
        return ProbeList.render(probes, matching: patterns)
    }
}

/// `LUMOS_TRACE_TIMING=1`: one line on stderr per phase of a run, `timing PHASE NS` with
/// CLOCK_MONOTONIC in nanoseconds, to subtract from a launcher's own clock reading
/// (docs/trace.md, "USDT start-up", has a breakdown made with it).
enum TraceTiming {
    static let enabled = getenv("LUMOS_TRACE_TIMING").map { String(cString: $0) != "0" } ?? false

    static func mark(_ phase: String) {
        guard enabled else { return }
        FD.writeAll(2, Array("timing \(phase) \(Monotonic.nanoseconds)\n".utf8))
    }
}
