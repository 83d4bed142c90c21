import Glibc
import LumosCore

/// dtrace(1M)'s command line, parsed the way dtrace parses it (getopt): flags cluster
/// (`-qn PROG`, `-qnPROG`), an option's value is the rest of its word or the next word,
/// options may follow the program, words that are not options are the macro arguments
/// $1, $2, ..., and `--` ends the options.
///
/// Hand-written rather than declared with ArgumentParser: `dtrace` is the one command whose
/// start-up is measured against a peer (time to the first probe, bench/trace), and building
/// ArgumentParser's command model costs ~1 ms of a ~3 ms start.
public enum DTraceCommandLine {
    public enum Parsed: Sendable {
        case run(DTraceInvocation)
        case help
        case version
    }

    /// Flags without a value, and options that take one.
    static let flags: Set<Character> = ["l", "q", "w", "h", "V"]
    static let options: Set<Character> = ["n", "s", "p", "c", "o", "x", "b", "P", "m", "f"]
    /// dtrace(1M) flags Lumos does not implement: named in the error, not silently ignored.
    static let unsupported: Set<Character> = ["a", "A", "C", "D", "e", "F", "G", "H", "i", "I", "L", "S", "U", "v", "X", "Z", "3", "6"]

    /// `programName` prefixes notices and errors (`dtrace:` or `lumos:`); `command` is what
    /// the user typed to get here (`dtrace` or `lumos trace`), for usage and hints.
    public static func parse(_ args: [String], programName: String = "dtrace", command: String? = nil) throws -> Parsed {
        let command = command ?? programName
        var inv = DTraceInvocation()
        inv.programName = programName
        var i = 0
        var optionsEnded = false
        var help = false, version = false
        while i < args.count {
            let word = args[i]
            i += 1
            if optionsEnded || !word.hasPrefix("-") || word == "-" {
                inv.arguments.append(word)
                continue
            }
            if word == "--" { optionsEnded = true; continue }
            if word == "--help" { help = true; continue }
            if word.hasPrefix("--") {
                throw LumosError.invalid("unknown option \(word); see \(command) -h")
            }
            var chars = Substring(word.dropFirst())
            while let c = chars.first {
                chars = chars.dropFirst()
                if flags.contains(c) {
                    switch c {
                    case "l": inv.list = true
                    case "q": inv.quiet = true
                    case "w": inv.destructive = true
                    case "h":
                        // Alone it asks for help; with a script it is illumos dtrace's header
                        // generation (`dtrace -h -s prov.d -o prov.h`), which must not quietly
                        // print usage while a build goes on without its header.
                        guard args.count == 1 else {
                            throw LumosError.invalid("option -h (generate a header file from a provider definition) is not supported by this dtrace; use `\(command) -h` alone for help")
                        }
                        help = true
                    default: version = true
                    }
                    continue
                }
                guard options.contains(c) else {
                    if unsupported.contains(c) {
                        throw LumosError.invalid("option -\(c) is not supported by this dtrace; see \(command) -h")
                    }
                    throw LumosError.invalid("illegal option -- \(c); see \(command) -h")
                }
                let value: String
                if !chars.isEmpty {
                    value = String(chars)
                    chars = ""
                } else if i < args.count {
                    value = args[i]
                    i += 1
                } else {
                    throw LumosError.invalid("option -\(c) requires an argument; see \(command) -h")
                }
                try apply(c, value, to: &inv)
            }
        }
        if help { return .help }
        if version { return .version }
        return .run(inv)
    }

    static func apply(_ c: Character, _ value: String, to inv: inout DTraceInvocation) throws {
        switch c {
        case "n":
            inv.sources.append((text: value, file: nil))
        case "P", "m", "f":
            // Probe descriptions by one field: -P provider, -m [provider:]module,
            // -f [[provider:]module:]function, as dtrace(1M) completes them.
            let fields = value.split(separator: ":", omittingEmptySubsequences: false).count
            let description: String
            switch c {
            case "P": description = "\(value):::"
            case "m": description = fields >= 2 ? "\(value)::" : ":\(value)::"
            default: description = String(repeating: ":", count: max(0, 3 - fields)) + value + ":"
            }
            inv.sources.append((text: description, file: nil))
        case "s":
            let fd = open(value, O_RDONLY | O_CLOEXEC)
            if fd < 0 { throw LumosError.notFound("failed to open \(value): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            inv.sources.append((text: String(decoding: FD.readAll(fd), as: UTF8.self), file: value))
        case "p":
            guard let pid = Int32(value), pid > 0 else {
                throw LumosError.invalid("invalid process ID for -p: \(value)")
            }
            guard inv.pid == nil && inv.command == nil else {
                throw LumosError.invalid("only one process can be traced: give one -p or one -c")
            }
            inv.pid = pid
        case "c":
            guard inv.pid == nil && inv.command == nil else {
                throw LumosError.invalid("only one process can be traced: give one -p or one -c")
            }
            inv.command = value
        case "o":
            inv.outputPath = value
        case "b":
            inv.options.append(("bufsize", value))
        default: // "x"
            if let eq = value.firstIndex(of: "=") {
                inv.options.append((String(value[..<eq]), String(value[value.index(after: eq)...])))
            } else {
                inv.options.append((value, nil))
            }
        }
    }

    public static func usage(command: String) -> String {
        """
        Usage: \(command) [-hlqVw] [-b bufsz] [-c cmd] [-o output] [-p pid] [-x opt[=val]]
        \t[-n name] [-s script] [-P provider] [-m module] [-f function] [args ...]

        Dynamic tracing with D programs compiled to eBPF (dtrace-compatible).

        \t-b  set trace buffer size (as -x bufsize=)
        \t-c  run specified command and exit upon its completion ($target is its pid)
        \t-f  enable or list probes matching the specified function name
        \t-h  print this help (alone; illumos's header generation is not supported)
        \t-l  list probes matching specified criteria
        \t-m  enable or list probes matching the specified module name
        \t-n  enable or list probes matching the specified probe name or program
        \t-o  append output to specified file
        \t-p  grab specified process-ID ($target) and stop when it exits
        \t-P  enable or list probes matching the specified provider name
        \t-q  set quiet mode (only output explicitly traced data)
        \t-s  enable or list probes according to the specified D script
        \t-V  report DTrace API version
        \t-w  permit destructive actions
        \t-x  enable or modify compiler and tracing options
        \t    (bufsize, aggsize, switchrate, aggrate, quiet, strsize, nspec, specsize, ...)

        Examples:
          \(command) -n 'syscall:::entry { @[execname] = count(); }'
          \(command) -qs script.d -c 'ls /'
          \(command) -l -n 'syscall::read*:'

        """
    }

    public static let versionText = "dtrace: Sun D 1.13 (Lumos, eBPF)\n"

    /// The whole `dtrace` command: parse, run, and report a failure as one line with a
    /// non-zero exit (2 for usage errors, as dtrace does). Returns the exit status.
    public static func main(_ args: [String], programName: String, command: String? = nil) -> Int32 {
        let command = command ?? programName
        do {
            switch try parse(args, programName: programName, command: command) {
            case .help:
                FD.writeAll(1, Array(usage(command: command).utf8))
                return 0
            case .version:
                FD.writeAll(1, Array(versionText.utf8))
                return 0
            case .run(let inv):
                if inv.sources.isEmpty && !inv.list && inv.command == nil && inv.pid == nil && inv.arguments.isEmpty {
                    FD.writeAll(2, Array(usage(command: command).utf8))
                    return 2
                }
                return try DTrace.run(inv)
            }
        } catch let e as LumosError {
            FD.writeAll(2, Array("\(programName): \(oneLine(e.message))\n".utf8))
            return e.kind == .invalidArgument ? 2 : 1
        } catch {
            FD.writeAll(2, Array("\(programName): \(oneLine(error))\n".utf8))
            return 1
        }
    }
}
