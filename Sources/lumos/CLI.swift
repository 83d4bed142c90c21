import ArgumentParser
import Foundation
import Glibc
import LumosCore

/// Options every command shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "State root (default: $LUMOS_ROOT or /var/lib/lumos).")
    var root: String?

    var stateRoot: StateRoot { StateRoot.resolve(flag: root) }
}

enum CLI {
    /// How a command tree reports failures in its exit status.
    enum ExitCodes {
        /// 2 for bad input of any kind (zfs, zpool, dladm, ...).
        case invalidIsUsage
        /// vmadm(8) "EXIT STATUS": 1 for every error (an invalid payload included), 2 only for
        /// invalid usage of the command line.
        case vmadm
    }

    /// Parses and runs a command tree; every failure is one line on stderr and a non-zero exit.
    static func run(_ type: ParsableCommand.Type, _ args: [String], name: String, exitCodes: ExitCodes = .invalidIsUsage) -> Never {
        do {
            var command = try CommandShortcut.parse(type, args) ?? type.parseAsRoot(args)
            try command.run()
            exit(0)
        } catch let error as LumosError {
            let usage = error.kind == .usage || (exitCodes == .invalidIsUsage && error.kind == .invalidArgument)
            fail(name, error.message, code: usage ? 2 : 1)
        } catch let error as Errno {
            fail(name, error.description, code: 1)
        } catch let error as ExitCode {
            exit(error.rawValue)
        } catch {
            // Help, version and usage errors keep ArgumentParser's own text.
            let code = type.exitCode(for: error)
            if code == .success {
                print(type.fullMessage(for: error))
                exit(0)
            }
            fail(name, type.message(for: error), code: exitCodes == .vmadm ? 2 : code.rawValue)
        }
    }

    /// A group's name in usage and help: its SmartOS name when invoked as that (`vmadm`), else
    /// its name under `lumos` (`vm`).
    static func commandName(_ name: String, alias: String) -> String {
        Files.basename(CommandLine.arguments.first ?? "") == alias ? alias : name
    }

    static func fail(_ name: String, _ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data("\(name): \(oneLine(message))\n".utf8))
        exit(code == 0 ? 1 : code)
    }

    /// Prints a value as pretty JSON with sorted keys (the `--json` form of every read).
    static func printJSON<T: Encodable>(_ value: T) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try enc.encode(value)
        print(String(decoding: data, as: UTF8.self))
    }

    static var stdoutIsTerminal: Bool { isatty(1) == 1 }
    static var stderrIsTerminal: Bool { isatty(2) == 1 }
}
