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
        inv.sources = [(text: "syscall::getppid:entry /pid == $target/ { @[probefunc] = count(); }", file: nil)]
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
