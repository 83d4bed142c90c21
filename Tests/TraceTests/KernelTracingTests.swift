import Glibc
import LumosCore
import Testing
@testable import Trace

/// Compiles and loads a D program against the real kernel, runs `workload` with the
/// probes attached, then returns the session (probes detached) for inspection.
func traced(_ source: String, output: Int32 = -1, _ workload: () throws -> Void) throws -> TraceSession {
    let catalog = try KernelProbeCatalog()
    let compiler = DCompiler(catalog: catalog, syscallNumbers: catalog.syscallNumbers)
    let script = try compiler.compile(try Parser.parse(source))
    var options = TraceOptions()
    options.quiet = true
    let devNull = open("/dev/null", O_WRONLY | O_CLOEXEC)
    let session = try TraceSession(script: script, options: options, output: output >= 0 ? output : devNull)
    try session.load()
    try session.run(.begin)
    try session.attach()
    try workload()
    session.detach()
    session.drain()
    return session
}

/// This thread's id, from /proc/thread-self -> "PID/task/TID".
func currentTid() -> Int32 {
    var buf = [CChar](repeating: 0, count: 64)
    let n = readlink("/proc/thread-self", &buf, 63)
    let text = String(decoding: buf.prefix(max(0, n)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return Int32(text.split(separator: "/").last ?? "") ?? -1
}

func ownComm() -> String {
    (TraceFS.read("/proc/self/task/\(currentTid())/comm") ?? "").split(separator: "\n").first.map(String.init) ?? ""
}

@Suite(.serialized) struct KernelTracingTests {
    /// Known workload: this thread makes exactly 321 getppid() and 123 getpgrp() calls.
    /// The per-syscall tracepoints and the raw_syscalls group (syscall:::entry) must both
    /// count them exactly, keyed by execname and probefunc.
    @Test(.enabled(if: isRoot, "needs root")) func syscallCountsByExecname() throws {
        let tid = currentTid()
        let session = try traced("""
            syscall::getppid:entry, syscall::getpgrp:entry /tid == \(tid)/ { @calls[execname, probefunc] = count(); }
            syscall:::entry /tid == \(tid)/ { @all[probefunc] = count(); }
            """) {
            for _ in 0..<321 { _ = getppid() }
            for _ in 0..<123 { _ = getpgrp() }
        }
        let comm = ownComm()
        let calls = session.snapshot("calls")
        #expect(calls.records.count == 2)
        #expect(calls.records.first { $0.keys == [.string(comm), .string("getppid")] }?.value == .count(321))
        #expect(calls.records.first { $0.keys == [.string(comm), .string("getpgrp")] }?.value == .count(123))
        let all = session.snapshot("all")
        #expect(all.records.first { $0.keys == [.string("getppid")] }?.value == .count(321))
        #expect(all.records.first { $0.keys == [.string("getpgrp")] }?.value == .count(123))
    }

    /// quantize() of read latency with self-> timing: the distribution's total equals the
    /// number of reads this thread made.
    @Test(.enabled(if: isRoot, "needs root")) func readLatencyQuantizeTotalsReads() throws {
        let tid = currentTid()
        let fd = open("/dev/zero", O_RDONLY | O_CLOEXEC)
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 4096)
        let session = try traced("""
            syscall::read:entry /tid == \(tid)/ { self->ts = timestamp; }
            syscall::read:return /self->ts/ { @lat = quantize(timestamp - self->ts); @bytes = sum(arg0); self->ts = 0; }
            """) {
            for i in 0..<200 { _ = read(fd, &buf, 1 + i * 10) }
        }
        guard case .quantize(let buckets) = session.snapshot("lat").records.first?.value else {
            Issue.record("no quantize record")
            return
        }
        #expect(buckets.reduce(0, +) == 200)
        var expected: Int64 = 0
        for i in 0..<200 { expected += 1 + Int64(i) * 10 }
        #expect(session.snapshot("bytes").records.first?.value == .sum(expected))
    }

    /// profile-99 fires about 99 times per second on each CPU.
    @Test(.enabled(if: isRoot, "needs root")) func profileSamplesAtItsRate() throws {
        var start = timespec(), end = timespec()
        let session = try traced("profile-99 { @s[cpu] = count(); }") {
            clock_gettime(CLOCK_MONOTONIC, &start)
            usleep(2_000_000)
            clock_gettime(CLOCK_MONOTONIC, &end)
        }
        let seconds = Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) / 1e9
        let perCPU = session.snapshot("s").records.map { r -> Double in
            if case .count(let n) = r.value { return Double(n) / seconds }
            return 0
        }
        #expect(!perCPU.isEmpty)
        for rate in perCPU { #expect(rate > 80 && rate < 120, "samples per second per CPU: \(rate)") }
    }

    /// printf records come back through the ring buffer formatted as DTrace prints them;
    /// exit() in BEGIN stops before any probe is attached.
    @Test(.enabled(if: isRoot, "needs root")) func printfAndExitFromBEGIN() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let session = try traced("""
            BEGIN { x = 40; s = "forty"; printf("%s+2=%d %5s|\\n", s, x + 2, execname == "nope" ? "a" : "bc"); exit(3); }
            """, output: fds[1]) {}
        close(fds[1])
        #expect(session.exitStatus == 3)
        #expect(String(decoding: FD.readAll(fds[0]), as: UTF8.self) == "forty+2=42    bc|\n")
    }

    /// A program the kernel verifier rejects is reported against the D line whose code
    /// the verifier stopped at. The rejection is made on purpose: the instructions of
    /// line 3's statement are preceded by a read of a register nothing wrote.
    @Test(.enabled(if: isRoot, "needs root")) func verifierRejectionNamesTheDLine() throws {
        let catalog = try KernelProbeCatalog()
        let compiler = DCompiler(catalog: catalog, syscallNumbers: catalog.syscallNumbers)
        var script = try compiler.compile(try Parser.parse("syscall::getppid:entry\n{\n  @c = count();\n}\n"))
        var p = script.programs[0]
        let at = p.lines.firstIndex(of: 3)!
        p.instructions.insert(BPFInstruction(code: Op.alu64 | ALUOp.mov.rawValue | Op.x, dst: 1, src: 5), at: at)
        p.instructions.insert(BPFInstruction(code: Op.alu64 | ALUOp.mov.rawValue | Op.x, dst: 0, src: 1), at: at + 1)
        p.lines.insert(contentsOf: [3, 3], at: at)
        p.mapRelocations = p.mapRelocations.map { MapRelocation(instruction: $0.instruction >= at ? $0.instruction + 2 : $0.instruction, map: $0.map) }
        // Jumps from before the insertion to past the statement's first instruction move by two.
        for i in 0..<at where Op.jmp == p.instructions[i].code & 0x07 && p.instructions[i].code & 0xf0 != JumpOp.call.rawValue && p.instructions[i].code & 0xf0 != JumpOp.exit.rawValue {
            if i + 1 + Int(p.instructions[i].offset) > at { p.instructions[i].offset += 2 }
        }
        script.programs[0] = p
        let session = try TraceSession(script: script, options: TraceOptions())
        let e = #expect(throws: DCompileError.self) { try session.load() }
        #expect(e?.kind == .verifier)
        #expect(e?.location.line == 3)
        #expect(e?.description.contains("R5 !read_ok") == true)
    }
}
