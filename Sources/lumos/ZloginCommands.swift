import ArgumentParser
import Glibc
import LumosCore
import Zones

/// `zlogin UUID [command...]` (SmartOS zlogin(1)), also `lumos login`. Without a command it
/// opens an interactive login shell on a pseudo-terminal from the zone's own /dev/pts; with a
/// command it runs it on our stdin/stdout/stderr and exits with its status.
struct Zlogin: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: CLI.commandName("login", alias: "zlogin"),
        abstract: "Run a shell or a command inside a running zone (zlogin)."
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .customShort("l"), help: "Run as this user of the zone (through su).")
    var user: String?

    @Flag(name: .customShort("t"), help: "Allocate a pseudo-terminal even for a command.")
    var forceTerminal = false

    @Flag(name: .customShort("C"), help: "Attach to the zone's console, as vmadm console does (Ctrl-] or ~. detaches).")
    var console = false

    @Argument(help: "The zone's uuid.")
    var uuid: String

    @Argument(parsing: .captureForPassthrough, help: "Command and arguments to run (default: a login shell).")
    var command: [String] = []

    func run() throws {
        if console {
            guard command.isEmpty, user == nil else { throw LumosError.usage("zlogin -C attaches to the console; it takes no command and no -l") }
            let v = try openVmadm(global.stateRoot)
            return try ConsoleSession.attach(v, try v.store.resolve(uuid))
        }
        var argv = command
        if let user {
            argv = ["su", "-l", user] + (argv.isEmpty ? [] : ["-c", argv.joined(separator: " ")])
        } else if argv.isEmpty {
            argv = ["/bin/sh", "-l"]
        }
        // The caller's terminal type, so full-screen programs in the zone draw correctly.
        var environment = ZoneSpec.defaultEnvironment.filter { !$0.hasPrefix("TERM=") }
        environment.append("TERM=" + (getenv("TERM").map { String(cString: $0) } ?? "xterm"))
        let runtime = try ZoneRuntime()
        // A session gets the seccomp profile the zone was started with: a vmadm zone's manifest
        // may allow io_uring (zones of `lumos zone run` have no manifest and never do).
        let store = TenantStore(root: global.stateRoot)
        let allowIOUring = store.exists(uuid) ? try store.read(uuid).allowIOUring : false
        let status = try runtime.exec(uuid, argv, tty: command.isEmpty || forceTerminal, environment: environment,
                                      allowIOUring: allowIOUring)
        throw ExitCode(status)
    }
}
