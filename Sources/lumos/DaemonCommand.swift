import Analytics
import ArgumentParser
import Daemon
import Dispatch
import LumosCore

/// `lumos daemon`: vmadmd in the foreground (docs/daemon.md).
struct DaemonCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Run vmadmd in the foreground: the REST API on a root-only unix socket (TCP only with TLS and a token), autoboot, recovery.")
    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: "Unix socket (mode 0600).") var socket = VmadmDaemon.defaultSocket
    @Option(name: .long, help: "Also serve HTTPS on HOST:PORT (needs --tls-cert, --tls-key and --token-file).") var listen: String?
    @Option(name: .long, help: "PEM certificate chain for --listen.") var tlsCert: String?
    @Option(name: .long, help: "PEM private key for --listen.") var tlsKey: String?
    @Option(name: .long, help: "File holding the bearer token TCP clients must send (mode 0600).") var tokenFile: String?
    @Flag(name: .long, help: "Do not start autoboot tenants.") var noAutoboot = false

    /// Modules beyond the standard API: Analytics' `/ca` routes and web page (docs/analytics.md).
    static func extraModules() -> [any DaemonModule] { [AnalyticsModule()] }

    func run() throws {
        var options = VmadmDaemon.Options(root: global.stateRoot)
        options.socket = socket
        options.listen = listen
        options.tlsCert = tlsCert
        options.tlsKey = tlsKey
        options.tokenFile = tokenFile
        options.autoboot = !noAutoboot
        let daemon = try VmadmDaemon(options: options, modules: VmadmDaemon.standardModules(options: options) + Self.extraModules())
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            do { try await daemon.run() } catch { outcome.error = error }
            done.signal()
        }
        done.wait()
        if let error = outcome.error { throw error }
    }

    final class Outcome: @unchecked Sendable { var error: (any Error)? }
}
