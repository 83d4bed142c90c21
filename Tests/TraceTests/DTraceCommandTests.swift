import Glibc
import LumosCore
import Testing
@testable import Trace

/// The `dtrace` command path end to end (DTrace.run: flags, macros, -c, -o, -q, errors).
@Suite(.serialized) struct DTraceCommandTests {
    func tempFile() -> String { "/tmp/lumos-dtrace-out-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

    @Test(.enabled(if: isRoot, "needs root")) func quietPrintfWithMacroToOutputFile() throws {
        let out = tempFile()
        defer { unlink(out) }
        var inv = DTraceInvocation()
        inv.sources = [(text: "BEGIN { printf(\"hello %s %d\\n\", $$1, $2); exit(0); }", file: nil)]
        inv.quiet = true
        inv.outputPath = out
        inv.arguments = ["world", "42"]
        #expect(try DTrace.run(inv) == 0)
        #expect(TextFile.read(out) == "hello world 42\n")
    }

    /// -c runs the command with probes enabled, $target is its pid, tracing ends when it
    /// exits, and the aggregations are printed as DTrace prints them at the end.
    @Test(.enabled(if: isRoot, "needs root")) func commandTargetAndEndOfTracingAggregations() throws {
        let prog = try TestProgram(["""
            #include <stdlib.h>
            #include <unistd.h>
            int main(int argc, char **argv) { for (int i = atoi(argv[1]); i > 0; i--) getppid(); return 0; }
            """], name: "calls")
        defer { prog.remove() }
        let out = tempFile()
        defer { unlink(out) }
        var inv = DTraceInvocation()
        // The gate shell may call getppid() itself after attach under load: count the program's.
        inv.sources = [(text: "syscall::getppid:entry /pid == $target && execname == \"calls\"/ { @[probefunc] = count(); }", file: nil)]
        inv.command = "\(prog.binary) 7"
        inv.outputPath = out
        #expect(try DTrace.run(inv) == 0)
        let expected = "\n" + AggregationText.endOfTracing([Aggregation(records: [AggregationRecord(keys: [.string("getppid")], value: .count(7))])])
        #expect(TextFile.read(out) == expected)
    }

    /// Without -q: the heading once, one probe column per clause firing, the records of that
    /// firing on its line, a newline closing it (dtrace's dt_consume layout).
    @Test(.enabled(if: isRoot, "needs root")) func defaultOutputLayout() throws {
        let out = tempFile()
        defer { unlink(out) }
        var inv = DTraceInvocation()
        inv.sources = [(text: "BEGIN { printf(\"a\"); printf(\"b\"); } BEGIN { exit(0); }", file: nil)]
        inv.outputPath = out
        #expect(try DTrace.run(inv) == 0)
        let text = TextFile.read(out) ?? ""
        let cpus = [0, 1, 2, 3]
        let possible = cpus.flatMap { c1 in cpus.map { c2 in
            TraceText.heading
                + TraceText.probeColumn(cpu: c1, id: 1, function: "", name: "BEGIN") + "ab" + TraceText.endOfFiring
                + TraceText.probeColumn(cpu: c2, id: 1, function: "", name: "BEGIN") + TraceText.endOfFiring
        } }
        #expect(possible.contains(text), "\(text)")
    }

    /// trunc(), normalize(), clear() and printa() act in order on the kernel aggregation.
    @Test(.enabled(if: isRoot, "needs root")) func aggregationActions() throws {
        let out = tempFile()
        defer { unlink(out) }
        var inv = DTraceInvocation()
        inv.sources = [(text: """
            BEGIN { @a["x"] = sum(10); @a["y"] = sum(20); @a["z"] = sum(30); @b["k"] = count(); }
            BEGIN { trunc(@a, 2); normalize(@a, 10); printa(@a); clear(@b); printa("%s=%@d\\n", @b); exit(0); }
            """, file: nil)]
        inv.quiet = true
        inv.outputPath = out
        #expect(try DTrace.run(inv) == 0)
        let a = Aggregation(name: "a", records: [
            AggregationRecord(keys: [.string("y")], value: .sum(20)),
            AggregationRecord(keys: [.string("z")], value: .sum(30)),
        ], normal: 10)
        #expect(TextFile.read(out) == AggregationText.defaultLayout(a) + "k=0\n")
    }

    /// Typed tracepoint fields: proc:::exec is sched:sched_process_exec, whose filename is
    /// a __data_loc string, and its pid field an int. (The gate shell's own exec can land
    /// after attaching under load, hence the execname filter.)
    @Test(.enabled(if: isRoot, "needs root")) func tracepointFieldsOnProcExec() throws {
        let out = tempFile()
        defer { unlink(out) }
        var inv = DTraceInvocation()
        inv.sources = [(text: "proc:::exec /pid == $target && execname != \"sh\"/ { printf(\"%s %s %d\", stringof(args->filename), execname, args->pid == pid); }", file: nil)]
        inv.command = "/bin/true"
        inv.quiet = true
        inv.outputPath = out
        #expect(try DTrace.run(inv) == 0)
        #expect(TextFile.read(out) == "/bin/true true 1")
    }

    @Test(.enabled(if: isRoot, "needs root")) func exitStatusFromExit() throws {
        var inv = DTraceInvocation()
        inv.sources = [(text: "BEGIN { exit(3); }", file: nil)]
        inv.quiet = true
        #expect(try DTrace.run(inv) == 3)
    }

    @Test(.enabled(if: isRoot, "needs root")) func errorsNameTheSpecifierOrScript() throws {
        var inv = DTraceInvocation()
        inv.sources = [(text: "BEGIN { x = ; }", file: nil)]
        #expect(throws: LumosError(.failed, "invalid probe specifier BEGIN { x = ; }: line 1: column 13: syntax error near \";\"")) {
            try DTrace.run(inv)
        }
        inv.sources = [(text: "BEGIN\n{\n  trace(nosuch);\n}\n", file: "x.d")]
        #expect(throws: LumosError(.failed, "failed to compile script x.d: line 3: column 9: failed to resolve nosuch: Unknown variable name")) {
            try DTrace.run(inv)
        }
        inv.sources = [(text: "BEGIN { exit(0); }", file: nil)]
        inv.options = [("bogus", "1")]
        #expect(throws: LumosError.self) { try DTrace.run(inv) }
    }
}

/// The built `lumos` executable next to the test bundle, invoked as `dtrace`.
@Suite(.serialized) struct DTraceExecutableTests {
    static var lumos: String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, 4095)
        guard n > 0 else { return nil }
        let dir = Files.parent(String(decoding: buf.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self))
        return Files.exists("\(dir)/lumos") ? "\(dir)/lumos" : nil
    }

    /// SIGINT ends tracing like Ctrl-C: END runs and the aggregations are printed.
    @Test(.enabled(if: isRoot && lumos != nil, "needs root and the built lumos binary"))
    func interruptPrintsAggregations() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        // This thread only: other suites may run in parallel in this process.
        let me = currentTid()
        let pid = try Exec.spawn([Self.lumos!, "trace", "-q", "-n",
            "syscall::getppid:entry /tid == \(me)/ { @calls = count(); } syscall::getpgrp:entry /tid == \(me) && !ready/ { ready = 1; printf(\"ready\\n\"); } END { printf(\"end\\n\"); }",
            ],
            stdout: .fd(fds[1]))
        close(fds[1])
        defer { close(fds[0]) }
        // Call getpgrp() until the tracer reports it fired: then every probe is attached.
        var seen: [UInt8] = []
        var byte: UInt8 = 0
        var pfd = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
        for _ in 0..<1000 where !seen.ends(with: Array("ready\n".utf8)) {
            _ = getpgrp()
            while poll(&pfd, 1, 10) == 1, read(fds[0], &byte, 1) == 1 {
                seen.append(byte)
                if seen.ends(with: Array("ready\n".utf8)) { break }
            }
        }
        for _ in 0..<50 { _ = getppid() }
        kill(pid, SIGINT)
        let rest = FD.readAll(fds[0])
        #expect(Exec.wait(pid) == 0)
        let calls = AggregationText.endOfTracing([Aggregation(name: "calls", records: [AggregationRecord(value: .count(50))])])
        #expect(String(decoding: seen + rest, as: UTF8.self) == "ready\nend\n\n" + calls)
    }
}

extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool { count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix }
}
