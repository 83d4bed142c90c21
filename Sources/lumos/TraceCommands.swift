import ArgumentParser
import Glibc
import LumosCore
import Trace

/// `lumos trace` and `dtrace`: dtrace(1M)'s command line. main.swift hands both straight to
/// Trace.DTraceCommandLine (getopt-style flags, and no ArgumentParser model to build on the
/// path whose start-up is measured); this entry exists so `lumos --help` lists the group
/// and `lumos help trace` explains where the flags are.
struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Dynamic tracing with D programs compiled to eBPF (dtrace-compatible; `lumos trace -h` for flags).",
        discussion: "Examples:\n  dtrace -n 'syscall:::entry { @[execname] = count(); }'\n  dtrace -qs script.d -c 'ls /'\n  dtrace -l -n 'syscall::read*:'"
    )

    @Argument(parsing: .captureForPassthrough, help: "dtrace(1M) flags and macro arguments (see `lumos trace -h`).")
    var arguments: [String] = []

    /// Notices name the program as invoked: `dtrace: ...` or `lumos: ...`.
    static var programName: String { Files.basename(CommandLine.arguments.first ?? "lumos") == "dtrace" ? "dtrace" : "lumos" }

    mutating func run() throws {
        let status = DTraceCommandLine.main(arguments, programName: Self.programName, command: Self.programName == "dtrace" ? "dtrace" : "lumos trace")
        if status != 0 { throw ExitCode(status) }
    }
}
