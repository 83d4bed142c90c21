import ArgumentParser
import Glibc
import LumosCore
import Trace

/// `lumos trace` and `dtrace`: dtrace(1M)'s flags; the work happens in Trace.DTrace.
struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Dynamic tracing with D programs compiled to eBPF (dtrace-compatible).",
        discussion: "Examples:\n  dtrace -n 'syscall:::entry { @[execname] = count(); }'\n  dtrace -qs script.d -c 'ls /'\n  dtrace -l -n 'syscall::read*:'"
    )

    @Option(name: .customShort("n"), help: "A D program (probe descriptions, predicate, actions). May repeat.")
    var programs: [String] = []

    @Option(name: .customShort("s"), help: "A D script file.")
    var scripts: [String] = []

    @Flag(name: .customShort("l"), help: "List probes (matching -n descriptions if given) instead of tracing.")
    var list = false

    @Option(name: .customShort("p"), help: "Trace process PID ($target) and stop when it exits.")
    var pid: Int32?

    @Option(name: .customShort("c"), help: "Run CMD ($target) with the probes enabled and stop when it exits.")
    var command: String?

    @Flag(name: .customShort("q"), help: "Quiet: print only what the program prints (no headings or notices).")
    var quiet = false

    @Option(name: .customShort("o"), help: "Append output to FILE.")
    var output: String?

    @Option(name: .customShort("x"), help: "Set an option: bufsize=SIZE, aggsize=SIZE, switchrate=RATE, aggrate=RATE, quiet.")
    var options: [String] = []

    @Flag(name: .customShort("w"), help: "Allow destructive actions.")
    var destructive = false

    @Argument(help: "Macro arguments for $1, $2, ...")
    var arguments: [String] = []

    /// Notices name the program as invoked: `dtrace: ...` or `lumos: ...`.
    static var programName: String { Files.basename(CommandLine.arguments.first ?? "lumos") == "dtrace" ? "dtrace" : "lumos" }

    mutating func run() throws {
        var inv = DTraceInvocation()
        inv.programName = Self.programName
        inv.sources = programs.map { (text: $0, file: nil) }
        for path in scripts {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 { throw LumosError.notFound("failed to open \(path): \(String(cString: strerror(errno)))") }
            let text = String(decoding: FD.readAll(fd), as: UTF8.self)
            close(fd)
            inv.sources.append((text: text, file: path))
        }
        inv.list = list
        inv.pid = pid
        inv.command = command
        inv.quiet = quiet
        inv.outputPath = output
        inv.destructive = destructive
        inv.arguments = arguments
        inv.options = options.map { opt in
            guard let eq = opt.firstIndex(of: "=") else { return (opt, nil) }
            return (String(opt[..<eq]), String(opt[opt.index(after: eq)...]))
        }
        let status = try DTrace.run(inv)
        if status != 0 { throw ExitCode(status) }
    }
}
