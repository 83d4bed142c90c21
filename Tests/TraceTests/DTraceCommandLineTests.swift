import Glibc
import LumosCore
import Testing
@testable import Trace

/// dtrace(1M)'s getopt-style command line.
@Suite struct DTraceCommandLineTests {
    func invocation(_ args: [String]) throws -> DTraceInvocation {
        guard case .run(let inv) = try DTraceCommandLine.parse(args) else {
            Issue.record("\(args) did not parse to a run")
            return DTraceInvocation()
        }
        return inv
    }

    func texts(_ inv: DTraceInvocation) -> [String] { inv.sources.map(\.text) }

    @Test func clusteredFlagsAndValues() throws {
        let a = try invocation(["-qn", "BEGIN { exit(0); }"])
        #expect(a.quiet && texts(a) == ["BEGIN { exit(0); }"])
        let b = try invocation(["-qwnBEGIN{}"])
        #expect(b.quiet && b.destructive && texts(b) == ["BEGIN{}"])
        let c = try invocation(["-n", "a", "-n", "b", "-x", "bufsize=1m", "-xquiet", "-b", "64k", "-o", "/tmp/o", "-p", "42"])
        #expect(texts(c) == ["a", "b"])
        #expect(c.options.map(\.0) == ["bufsize", "quiet", "bufsize"] && c.options.map(\.1) == ["1m", nil, "64k"])
        #expect(c.outputPath == "/tmp/o" && c.pid == 42 && !c.quiet)
    }

    @Test func optionsAnywhereArgumentsAndDoubleDash() throws {
        let a = try invocation(["-n", "BEGIN { trace($1); }", "one", "-q", "two", "--", "-3", "-q"])
        #expect(a.quiet)
        #expect(a.arguments == ["one", "two", "-3", "-q"])
        let c = try invocation(["-c", "ls -l /", "-s", "/dev/null"])
        #expect(c.command == "ls -l /" && c.sources.map(\.file) == ["/dev/null"])
    }

    @Test func probeFieldShorthands() throws {
        #expect(texts(try invocation(["-P", "syscall"])) == ["syscall:::"])
        #expect(texts(try invocation(["-m", "kernel"])) == [":kernel::"])
        #expect(texts(try invocation(["-m", "pid1:a.out"])) == ["pid1:a.out::"])
        #expect(texts(try invocation(["-f", "read"])) == ["::read:"])
        #expect(texts(try invocation(["-f", "syscall::read"])) == ["syscall::read:"])
        #expect(try invocation(["-l", "-f", "read"]).list)
    }

    @Test func helpAndVersion() throws {
        guard case .help = try DTraceCommandLine.parse(["-h"]) else { Issue.record("-h"); return }
        guard case .help = try DTraceCommandLine.parse(["-q", "--help"]) else { Issue.record("--help"); return }
        guard case .version = try DTraceCommandLine.parse(["-V"]) else { Issue.record("-V"); return }
        #expect(DTraceCommandLine.usage(command: "dtrace").hasPrefix("Usage: dtrace [-hlqVw]"))
    }

    @Test func badCommandLinesAreOneLineUsageErrors() throws {
        let cases: [([String], String)] = [
            (["-n"], "option -n requires an argument; see dtrace -h"),
            (["-qn"], "option -n requires an argument; see dtrace -h"),
            (["-k"], "illegal option -- k; see dtrace -h"),
            (["-Z", "-n", "x"], "option -Z is not supported by this dtrace; see dtrace -h"),
            (["--verbose"], "unknown option --verbose; see dtrace -h"),
            (["-p", "abc"], "invalid process ID for -p: abc"),
            (["-p", "0"], "invalid process ID for -p: 0"),
            (["-p", "1", "-p", "2"], "only one process can be traced: give one -p or one -c"),
            (["-c", "ls", "-p", "2"], "only one process can be traced: give one -p or one -c"),
            (["-h", "-s", "prov.d", "-o", "prov.h"], "option -h (generate a header file from a provider definition) is not supported by this dtrace; use `dtrace -h` alone for help"),
        ]
        for (args, message) in cases {
            #expect(throws: LumosError(.invalidArgument, message), "\(args)") { try DTraceCommandLine.parse(args) }
        }
        #expect(throws: LumosError.self) { try DTraceCommandLine.parse(["-s", "/nonexistent/\(getpid()).d"]) }
        // Under `lumos trace`, hints and usage name that command.
        #expect(throws: LumosError(.invalidArgument, "illegal option -- k; see lumos trace -h")) {
            try DTraceCommandLine.parse(["-k"], programName: "lumos", command: "lumos trace")
        }
        #expect(DTraceCommandLine.usage(command: "lumos trace").hasPrefix("Usage: lumos trace [-hlqVw]"))
    }

    /// The whole command: usage errors exit 2 with one line, no program prints the usage.
    @Test func mainExitStatuses() throws {
        #expect(DTraceCommandLine.main(["-k"], programName: "dtrace") == 2)
        #expect(DTraceCommandLine.main([], programName: "dtrace") == 2)
        #expect(DTraceCommandLine.main(["-V"], programName: "dtrace") == 0)
    }
}
